//! Canary tokens: random markers to plant in a system prompt. A completion
//! that contains one has leaked the system prompt.
//!
//! A token is `LLMSEC-CANARY-<r>-<m>`: `r` is 8 random bytes in hex and `m`
//! the first 8 bytes of HMAC-SHA256(key, `r`) in hex. Only an issuer holding
//! the same key recognises it, so a token made up by the model, copied from
//! another deployment or forged by an attacker does not count, and nothing
//! needs to be stored per token. The key is SHA-256 of the configured
//! `canary_secret` (replicas sharing the secret recognise each other's
//! tokens) or 32 random bytes per engine.
//!
//! ```
//! use llm_security::canary::CanaryIssuer;
//!
//! let issuer = CanaryIssuer::new(Some("shared secret"));
//! let token = issuer.issue();
//! let reply = format!("My instructions say: {token}");
//! assert_eq!(issuer.find(&reply).len(), 1);
//! assert!(CanaryIssuer::new(Some("other secret")).find(&reply).is_empty());
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::types::Span;

/// The fixed prefix of every token.
pub const CANARY_PREFIX: &str = "LLMSEC-CANARY-";

/// Length of a token: prefix, 16 hex, `-`, 16 hex.
pub const CANARY_LEN: usize = CANARY_PREFIX.len() + 16 + 1 + 16;

type HmacSha256 = Hmac<Sha256>;

/// Issues canary tokens and recognises its own.
#[derive(Clone)]
pub struct CanaryIssuer {
    key: [u8; 32],
}

impl fmt::Debug for CanaryIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CanaryIssuer").finish_non_exhaustive()
    }
}

impl CanaryIssuer {
    /// An issuer keyed by SHA-256 of `secret`, or by 32 random bytes when
    /// `secret` is `None` (tokens are then recognised by this issuer and
    /// its clones only).
    pub fn new(secret: Option<&str>) -> CanaryIssuer {
        let key = match secret {
            Some(s) => Sha256::digest(s.as_bytes()).into(),
            None => {
                let mut k = [0u8; 32];
                fill_random(&mut k);
                k
            }
        };
        CanaryIssuer { key }
    }

    /// A fresh token, e.g. `LLMSEC-CANARY-9f86d081884c7d65-2c26b46b68ffc68f`.
    pub fn issue(&self) -> String {
        let mut r = [0u8; 8];
        fill_random(&mut r);
        let r = hex::encode(r);
        let tag = self.mac(r.as_bytes());
        format!("{CANARY_PREFIX}{r}-{}", hex::encode(&tag[..8]))
    }

    /// True when `token` is exactly a token this issuer's key signed
    /// (hex digits and the prefix in either case).
    pub fn verify(&self, token: &str) -> bool {
        token.len() == CANARY_LEN
            && token.is_char_boundary(CANARY_PREFIX.len())
            && token[..CANARY_PREFIX.len()].eq_ignore_ascii_case(CANARY_PREFIX)
            && self.verify_parts(&token[CANARY_PREFIX.len()..])
    }

    /// Where this issuer's tokens occur in `text`, in order. Tokens whose
    /// MAC does not verify are skipped.
    pub fn find(&self, text: &str) -> Vec<Span> {
        let mut out = Vec::new();
        let b = text.as_bytes();
        let body_len = CANARY_LEN - CANARY_PREFIX.len();
        // The prefix's first `-` is its seventh byte: search for `-` (memchr)
        // and compare the prefix around it case-insensitively.
        for (dash, _) in text.match_indices('-') {
            let Some(start) = dash.checked_sub(6) else {
                continue;
            };
            let end = start + CANARY_PREFIX.len();
            let is_prefix = b.get(start..end).is_some_and(|p| p.eq_ignore_ascii_case(CANARY_PREFIX.as_bytes()));
            if !is_prefix || b.len() < end + body_len {
                continue;
            }
            // A longer hex run is another token format, not ours.
            let glued = b.get(end + body_len).is_some_and(|c| c.is_ascii_alphanumeric());
            let Ok(body) = std::str::from_utf8(&b[end..end + body_len]) else {
                continue;
            };
            if !glued && self.verify_parts(body) {
                out.push(Span::new(start, end + body_len));
            }
        }
        out
    }

    /// Checks `<16 hex>-<16 hex>` in constant time over the MAC.
    fn verify_parts(&self, body: &str) -> bool {
        let b = body.as_bytes();
        if b.len() != 33 || b[16] != b'-' {
            return false;
        }
        let r = &body[..16];
        let (Some(r_bytes), Some(tag)) = (hex::decode(r).ok(), hex::decode(&body[17..]).ok()) else {
            return false;
        };
        // Tokens are issued with lowercase hex; the MAC is over that form.
        let r = hex::encode(&r_bytes);
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.key) else {
            return false;
        };
        mac.update(r.as_bytes());
        mac.verify_truncated_left(&tag).is_ok()
    }

    fn mac(&self, msg: &[u8]) -> [u8; 32] {
        match HmacSha256::new_from_slice(&self.key) {
            Ok(mut mac) => {
                mac.update(msg);
                mac.finalize().into_bytes().into()
            }
            // HMAC accepts keys of any length; this arm is unreachable.
            Err(_) => [0u8; 32],
        }
    }
}

/// Fills `buf` from the OS random source. Should that fail (a sandbox
/// without `getrandom`), falls back to SHA-256 of the time, the process id,
/// a counter and a stack address: unpredictable enough for canaries, which
/// are markers, not secrets.
fn fill_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_ok() {
        return;
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    h.update(now.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let local = 0u8;
    h.update((std::ptr::addr_of!(local) as usize).to_le_bytes());
    let d = h.finalize();
    for (o, i) in buf.iter_mut().zip(d.iter().cycle()) {
        *o = *i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_are_found() {
        let c = CanaryIssuer::new(None);
        let t = c.issue();
        assert_eq!(t.len(), CANARY_LEN);
        assert!(t.starts_with(CANARY_PREFIX));
        assert!(c.verify(&t));
        assert_ne!(t, c.issue(), "tokens are random");
        let text = format!("a {t} b {} c", c.issue());
        let spans = c.find(&text);
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].slice(&text), t);
    }

    #[test]
    fn shared_secret_is_shared_and_others_are_not() {
        let a = CanaryIssuer::new(Some("s3cret"));
        let b = CanaryIssuer::new(Some("s3cret"));
        let other = CanaryIssuer::new(Some("different"));
        let random = CanaryIssuer::new(None);
        let t = a.issue();
        assert_eq!(b.find(&t).len(), 1, "replicas with one secret agree");
        assert!(other.find(&t).is_empty(), "another deployment's token");
        assert!(random.find(&t).is_empty());
        // Clones of a random issuer keep its key.
        let r = random.issue();
        assert!(random.clone().verify(&r));
    }

    #[test]
    fn forged_and_mangled_tokens_do_not_count() {
        let c = CanaryIssuer::new(Some("k"));
        let t = c.issue();
        let forged = format!("{CANARY_PREFIX}0000000000000000-0000000000000000");
        let mut flipped = t.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap_or_default();
        for bad in [
            forged.as_str(),
            flipped.as_str(),
            &t[..t.len() - 1],
            &format!("{t}7"),
            "LLMSEC-CANARY-",
            "LLMSEC-CANARY-zzzzzzzzzzzzzzzz-zzzzzzzzzzzzzzzz",
        ] {
            assert!(c.find(bad).is_empty(), "{bad}");
            assert!(!c.verify(bad), "{bad}");
        }
    }

    #[test]
    fn case_changes_are_still_found() {
        // A model that upper-cases the text still leaks the token.
        let c = CanaryIssuer::new(Some("k"));
        let t = c.issue();
        let upper = t.to_ascii_uppercase();
        assert_eq!(c.find(&upper).len(), 1);
        let lower = t.to_ascii_lowercase();
        assert_eq!(c.find(&lower).len(), 1);
    }

    #[test]
    fn find_never_panics_on_multibyte_text() {
        let c = CanaryIssuer::new(None);
        let t = c.issue();
        let text = format!("LLMSEC-CANARY-é✓{}", "ü".repeat(20));
        assert!(c.find(&text).is_empty());
        let text = format!("✓{t}✓");
        assert_eq!(c.find(&text).len(), 1);
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let c = CanaryIssuer::new(Some("k"));
        assert_eq!(format!("{c:?}"), "CanaryIssuer { .. }");
    }
}
