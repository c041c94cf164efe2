//! API keys: their format, hashing, and lookup with a short cache.
//!
//! A key reads `lsk_<id>_<secret>`: 12 hex digits of public id, then 32
//! random bytes as hex. Only the SHA-256 of the whole key is stored. A
//! plain hash is the right tool here, not a password hash: the secret is
//! 256 random bits, so there is nothing to brute-force, and lookups stay
//! microseconds on every request.
//!
//! Ids the store does not know are cached apart from found keys, so that
//! made-up ids cannot push real keys out.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use llmsec_store::{ApiKeyRecord, Scope};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

use crate::config::DEFAULT_TENANT;
use crate::service::{Caller, ServiceError, Services};

/// The id the `LLMSEC_ADMIN_KEY` key is known by (in the audit log).
pub const ENV_ADMIN_ID: &str = "env-admin";
/// How long a looked-up key is trusted before the store is asked again.
/// Revocation through this server takes effect at once; through another
/// replica, within this time.
pub(crate) const CACHE_TTL: Duration = Duration::from_secs(5);
/// Keys the cache holds at most, and, apart, unknown ids.
const CACHE_CAPACITY: usize = 100_000;

/// A newly made key: the only time its secret is seen.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The full key to hand to the client.
    pub key: String,
    /// What is stored.
    pub record: ApiKeyRecord,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // getrandom fails only where the OS has no entropy source; refusing to
    // make keys there is right.
    getrandom::fill(&mut buf).expect("the OS random source is unavailable");
    hex::encode(buf)
}

/// Hex SHA-256 of a key string.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Makes a key for `tenant` with `scopes`.
pub fn generate_key(tenant: &str, name: &str, scopes: Vec<Scope>, rate_per_sec: Option<f64>, now: i64) -> NewKey {
    let id = random_hex(6);
    let key = format!("lsk_{id}_{}", random_hex(32));
    let record = ApiKeyRecord {
        id,
        tenant: tenant.to_owned(),
        name: name.to_owned(),
        hash: hash_key(&key),
        scopes,
        rate_per_sec,
        created_at: now,
        revoked_at: None,
        models: None,
        budgets: Vec::new(),
    };
    NewKey { key, record }
}

/// The id part of a well-formed key.
fn key_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("lsk_")?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 12 && secret.len() == 64 && id.bytes().chain(secret.bytes()).all(|b| b.is_ascii_hexdigit()))
        .then_some(id)
}

/// Equality that takes the same time wherever the inputs differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Resolves presented keys to callers.
#[derive(Debug)]
pub struct KeyCache {
    /// Keys the store has (live or revoked), with when they were read.
    found: RwLock<HashMap<String, (ApiKeyRecord, Instant)>>,
    /// Ids the store does not have, least recently seen dropped first.
    missing: Mutex<lru::LruCache<String, Instant>>,
    capacity: usize,
    /// SHA-256 of `LLMSEC_ADMIN_KEY`, when set.
    env_admin: Option<String>,
    /// Ids of keys revoked through this server, for open WebSockets.
    revoked: broadcast::Sender<String>,
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache::new(None)
    }
}

impl KeyCache {
    /// A cache that also accepts the `LLMSEC_ADMIN_KEY` value (any string
    /// of 16 bytes or more) as an admin key of the default tenant.
    pub fn new(env_admin_key: Option<&str>) -> KeyCache {
        KeyCache::with_capacity(env_admin_key, CACHE_CAPACITY)
    }

    /// Like [`new`](Self::new), holding at most `capacity` keys and, apart,
    /// `capacity` unknown ids.
    pub fn with_capacity(env_admin_key: Option<&str>, capacity: usize) -> KeyCache {
        let capacity = capacity.max(1);
        KeyCache {
            found: RwLock::default(),
            missing: Mutex::new(lru::LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN))),
            capacity,
            env_admin: env_admin_key.map(hash_key),
            revoked: broadcast::channel(64).0,
        }
    }

    /// Drops a key from the cache after its revocation, and tells the open
    /// WebSockets that authenticated with it.
    pub fn invalidate(&self, id: &str) {
        self.found.write().unwrap_or_else(|p| p.into_inner()).remove(id);
        self.missing.lock().unwrap_or_else(|p| p.into_inner()).pop(id);
        // No receiver means no open WebSocket: nothing to tell.
        let _ = self.revoked.send(id.to_owned());
    }

    /// Drops a key from the cache after a change to it (its gateway limits),
    /// so the next request reads it again; open WebSockets are not told.
    pub fn refresh(&self, id: &str) {
        self.found.write().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// Ids of keys revoked through this server from now on.
    pub fn revocations(&self) -> broadcast::Receiver<String> {
        self.revoked.subscribe()
    }

    /// True for the env admin key and for live keys the cache holds (even
    /// past their time to live): keys that need no store lookup to trust.
    pub fn knows(&self, presented: &str) -> bool {
        let hash = hash_key(presented);
        if self.env_admin.as_ref().is_some_and(|h| ct_eq(hash.as_bytes(), h.as_bytes())) {
            return true;
        }
        let Some(id) = key_id(presented) else { return false };
        self.found
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .is_some_and(|(r, _)| r.revoked_at.is_none() && ct_eq(hash.as_bytes(), r.hash.as_bytes()))
    }

    /// The cached answer for `id` within its time to live: `Some(None)` for
    /// an id the store does not have.
    fn cached(&self, id: &str) -> Option<Option<ApiKeyRecord>> {
        let found = self.found.read().unwrap_or_else(|p| p.into_inner());
        if let Some((r, at)) = found.get(id) {
            return (at.elapsed() < CACHE_TTL).then(|| Some(r.clone()));
        }
        drop(found);
        let mut missing = self.missing.lock().unwrap_or_else(|p| p.into_inner());
        match missing.get(id) {
            Some(at) if at.elapsed() < CACHE_TTL => Some(None),
            _ => None,
        }
    }

    fn remember(&self, id: &str, record: Option<&ApiKeyRecord>) {
        let now = Instant::now();
        match record {
            Some(r) => {
                self.missing.lock().unwrap_or_else(|p| p.into_inner()).pop(id);
                let mut found = self.found.write().unwrap_or_else(|p| p.into_inner());
                if found.len() >= self.capacity && !found.contains_key(id) {
                    found.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
                    // Only more live keys in use than the capacity get here.
                    if found.len() >= self.capacity {
                        found.clear();
                    }
                }
                found.insert(id.to_owned(), (r.clone(), now));
            }
            None => {
                self.missing.lock().unwrap_or_else(|p| p.into_inner()).put(id.to_owned(), now);
            }
        }
    }

    /// Finds the caller a presented key belongs to.
    pub async fn resolve(&self, store: &dyn llmsec_store::Store, presented: &str) -> Result<Caller, ServiceError> {
        if let Some(h) = &self.env_admin
            && ct_eq(hash_key(presented).as_bytes(), h.as_bytes())
        {
            return Ok(Caller {
                key_id: ENV_ADMIN_ID.into(),
                tenant: DEFAULT_TENANT.into(),
                scopes: Scope::ALL.to_vec(),
                rate_per_sec: None,
                models: None,
                budgets: Vec::new(),
            });
        }
        let id = key_id(presented).ok_or(ServiceError::Unauthenticated)?;
        let record = match self.cached(id) {
            Some(r) => r,
            None => {
                let r = store.key(id).await?;
                self.remember(id, r.as_ref());
                r
            }
        };
        let record = record.ok_or(ServiceError::Unauthenticated)?;
        if record.revoked_at.is_some() || !ct_eq(hash_key(presented).as_bytes(), record.hash.as_bytes()) {
            return Err(ServiceError::Unauthenticated);
        }
        Ok(Caller {
            key_id: record.id,
            tenant: record.tenant,
            scopes: record.scopes,
            rate_per_sec: record.rate_per_sec,
            models: record.models,
            budgets: record.budgets,
        })
    }
}

/// Takes one token from the caller's bucket (its own rate, or the
/// server's): `RateLimited` when it is empty.
pub fn take_token(svc: &Services, caller: &Caller) -> Result<(), ServiceError> {
    take_tokens(svc, caller, 1)
}

/// Takes `n` tokens at once from the caller's bucket (a batch costs one per
/// item; at most the burst): `RateLimited`, taking none, when they are not there.
pub fn take_tokens(svc: &Services, caller: &Caller, n: u32) -> Result<(), ServiceError> {
    if n == 0 {
        return Ok(());
    }
    let limits = &svc.config.limits;
    let rate = caller.rate_per_sec.unwrap_or(limits.rate_per_sec);
    let burst = limits.burst.max(rate);
    svc.limiter.check_n(&caller.key_id, n, rate, burst, Instant::now()).map_err(|wait| {
        metrics::counter!(crate::metrics::RATE_LIMITED).increment(1);
        ServiceError::retry_after(wait)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_hash() {
        let k = generate_key("acme", "ci", vec![Scope::Analyze], None, 1);
        assert_eq!(key_id(&k.key), Some(k.record.id.as_str()));
        assert_eq!(k.record.hash, hash_key(&k.key));
        assert!(!k.record.hash.contains(&k.key[17..]), "the secret is not stored");
        let other = generate_key("acme", "ci", vec![], None, 1);
        assert_ne!(k.key, other.key);
    }

    #[test]
    fn malformed_keys_have_no_id() {
        for k in ["", "lsk_", "lsk_abc_def", "sk-123", &format!("lsk_{}_{}", "g".repeat(12), "0".repeat(64))] {
            assert_eq!(key_id(k), None, "{k}");
        }
    }

    #[test]
    fn constant_time_eq() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }

    #[tokio::test]
    async fn unknown_key_floods_do_not_evict_good_keys() {
        let store = llmsec_store::SqlStore::connect("sqlite::memory:").await.unwrap();
        let cache = KeyCache::with_capacity(None, 50);
        let good = generate_key("acme", "ci", vec![Scope::Analyze], None, 1);
        llmsec_store::Store::insert_key(&store, &good.record).await.unwrap();
        assert_eq!(cache.resolve(&store, &good.key).await.unwrap().key_id, good.record.id);
        // Three times the capacity in made-up, well-formed keys.
        for i in 0..150u32 {
            let made_up = format!("lsk_{i:012x}_{}", "0".repeat(64));
            assert!(matches!(cache.resolve(&store, &made_up).await, Err(ServiceError::Unauthenticated)));
        }
        assert!(cache.missing.lock().unwrap().len() <= 50, "unknown ids are bounded");
        // Revoked behind the cache's back: a key still cached keeps resolving
        // until its time to live ends; one pushed out would be looked up again.
        llmsec_store::Store::revoke_key(&store, &good.record.id, 2).await.unwrap();
        assert!(cache.resolve(&store, &good.key).await.is_ok(), "the good key was pushed out of the cache");
        assert!(cache.knows(&good.key));
        assert!(!cache.knows(&format!("lsk_{}_{}", good.record.id, "0".repeat(64))), "a wrong secret is not known");
    }
}
