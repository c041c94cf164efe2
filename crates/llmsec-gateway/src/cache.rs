//! Results of texts the gateway analysed recently. A chat client sends the
//! whole conversation on every call, and the application's system prompt
//! with it: without this cache every call would analyse and store every
//! earlier turn again (a conversation of n turns storing n² events). A
//! text's result is kept for a while under a key of its tenant, its scope
//! (the conversation or user it belongs to; none for system prompts, which
//! are the application's), its kind and a SHA-256 of the text, so a second
//! sight of it costs a hash and a lookup. The engine is deterministic, so a
//! kept result is what analysing the text again would give, until the
//! entry's time is up (then a changed configuration applies).

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use llm_security::ContextKind;
use sha2::{Digest, Sha256};

use crate::core::Scanned;

/// A cache key: SHA-256 over tenant, scope, kind and text.
pub(crate) type CacheKey = [u8; 32];

/// Results by key, least recently used dropped first, each for `ttl`.
#[derive(Debug)]
pub(crate) struct ScanCache {
    entries: Mutex<lru::LruCache<CacheKey, (Scanned, Instant)>>,
    ttl: Duration,
}

impl ScanCache {
    /// A cache of at most `capacity` results kept `ttl` each; `None` (no
    /// caching) when either is zero.
    pub fn new(capacity: usize, ttl: Duration) -> Option<ScanCache> {
        let capacity = NonZeroUsize::new(capacity)?;
        (!ttl.is_zero()).then(|| ScanCache { entries: Mutex::new(lru::LruCache::new(capacity)), ttl })
    }

    /// The key of `text` of `kind` in `tenant`'s `scope`. Lengths are
    /// hashed in, so no two different tuples share their bytes.
    pub fn key(tenant: &str, scope: &str, kind: Option<ContextKind>, text: &str) -> CacheKey {
        let kind = kind.map_or_else(String::new, |k| format!("{k:?}"));
        let mut h = Sha256::new();
        for part in [tenant, scope, kind.as_str(), text] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
    }

    /// The kept result, if its time is not up.
    pub fn get(&self, key: &CacheKey) -> Option<Scanned> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(key) {
            Some((s, at)) if at.elapsed() < self.ttl => Some(s.clone()),
            Some(_) => {
                entries.pop(key);
                None
            }
            None => None,
        }
    }

    /// Keeps a result.
    pub fn put(&self, key: CacheKey, scanned: Scanned) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).put(key, (scanned, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use llm_security::Verdict;

    use super::*;

    fn allow() -> Scanned {
        Scanned { verdict: Verdict::Allow, sanitized: None, threats: Vec::new(), event_id: None }
    }

    #[test]
    fn keys_separate_tenants_scopes_kinds_and_texts() {
        let k = ScanCache::key("acme", "s1", None, "hello");
        assert_eq!(k, ScanCache::key("acme", "s1", None, "hello"));
        for other in [
            ScanCache::key("globex", "s1", None, "hello"),
            ScanCache::key("acme", "s2", None, "hello"),
            ScanCache::key("acme", "s1", Some(ContextKind::ToolOutput), "hello"),
            ScanCache::key("acme", "s1", None, "hello!"),
            // Boundaries are hashed in: moving a byte from one part to the next changes the key.
            ScanCache::key("acme", "s", None, "1hello"),
        ] {
            assert_ne!(k, other);
        }
    }

    #[test]
    fn results_expire_and_the_oldest_go_first() {
        assert!(ScanCache::new(0, Duration::from_secs(1)).is_none());
        assert!(ScanCache::new(1, Duration::ZERO).is_none());
        let c = ScanCache::new(2, Duration::from_secs(600)).unwrap();
        let (a, b, d) = ([1; 32], [2; 32], [3; 32]);
        c.put(a, allow());
        c.put(b, allow());
        assert!(c.get(&a).is_some());
        c.put(d, allow());
        assert!(c.get(&b).is_none(), "the least recently used is dropped");
        assert!(c.get(&a).is_some() && c.get(&d).is_some());
        let short = ScanCache::new(2, Duration::from_millis(1)).unwrap();
        short.put(a, allow());
        std::thread::sleep(Duration::from_millis(5));
        assert!(short.get(&a).is_none(), "an entry past its time is not used");
    }
}
