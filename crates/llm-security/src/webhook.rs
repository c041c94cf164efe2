//! Webhook subscriptions and their signatures.
//!
//! The server POSTs each delivery with these headers:
//!
//! | header | value |
//! |---|---|
//! | `X-Llmsec-Signature` | `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` |
//! | `X-Llmsec-Event` | the event, e.g. `threat.detected` |
//! | `X-Llmsec-Delivery` / `Idempotency-Key` | the delivery id, the same on every retry |
//!
//! A receiver checks the signature with [`verify`]: the MAC is compared in
//! constant time and a timestamp outside the tolerance is refused, so a
//! captured request cannot be replayed later. Signing the timestamp with
//! the body (as Stripe does) is what makes the tolerance binding. Several
//! `v1=` entries may appear while a secret is being rotated; any one that
//! matches is enough.
//!
//! ```
//! use llm_security::webhook::{sign_header, verify};
//! let body = br#"{"event":"threat.detected"}"#;
//! let header = sign_header("whsec", 1_700_000_000, body);
//! assert!(verify("whsec", &header, body, 1_700_000_100, 300).is_ok());
//! assert!(verify("whsec", &header, body, 1_700_009_999, 300).is_err()); // too old: replay
//! ```

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The events a webhook can subscribe to. `campaign.detected` is sent by
/// the server when it correlates threats of several users or sessions into
/// a campaign.
pub const EVENTS: [&str; 4] = ["threat.detected", "threat.mitigated", "analysis.completed", "campaign.detected"];

/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "X-Llmsec-Signature";

/// Where and what to deliver: the endpoint URL, the signing secret and the
/// events subscribed to.
///
/// ```
/// use llm_security::WebhookConfig;
/// let w = WebhookConfig::new()
///     .with_url("https://your-system.com/webhook".to_string())
///     .with_secret("webhook-secret-0123".to_string()) // 16 bytes or more
///     .with_events(vec!["threat.detected".to_string()]);
/// assert!(w.validate().is_ok());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The receiver's URL (`http` or `https`).
    pub url: String,
    /// The HMAC key shared with the receiver.
    pub secret: String,
    /// The events to deliver; empty means all of [`EVENTS`].
    #[serde(default)]
    pub events: Vec<String>,
}

/// Why a webhook config is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookConfigError {
    /// The URL does not parse or is not http(s).
    #[error("url: {0}")]
    Url(String),
    /// The secret is too short to be a key.
    #[error("secret: must be at least 16 bytes")]
    Secret,
    /// An event name that does not exist.
    #[error(
        "events: unknown event {0:?} (expected one of threat.detected, threat.mitigated, analysis.completed, campaign.detected)"
    )]
    Event(String),
}

impl WebhookConfig {
    /// An empty config; set at least the URL and the secret.
    pub fn new() -> WebhookConfig {
        WebhookConfig::default()
    }

    /// Sets the receiver's URL.
    pub fn with_url(mut self, url: String) -> WebhookConfig {
        self.url = url;
        self
    }

    /// Sets the shared secret.
    pub fn with_secret(mut self, secret: String) -> WebhookConfig {
        self.secret = secret;
        self
    }

    /// Sets the events to deliver.
    pub fn with_events(mut self, events: Vec<String>) -> WebhookConfig {
        self.events = events;
        self
    }

    /// Checks the URL, the secret's length and the event names.
    pub fn validate(&self) -> Result<(), WebhookConfigError> {
        let u = url::Url::parse(&self.url).map_err(|e| WebhookConfigError::Url(e.to_string()))?;
        if !matches!(u.scheme(), "http" | "https") || u.host().is_none() {
            return Err(WebhookConfigError::Url(format!("{:?} is not an http(s) URL", self.url)));
        }
        if self.secret.len() < 16 {
            return Err(WebhookConfigError::Secret);
        }
        if let Some(e) = self.events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
            return Err(WebhookConfigError::Event(e.clone()));
        }
        Ok(())
    }

    /// Whether this webhook wants `event`.
    pub fn wants(&self, event: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == event)
    }
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; new_from_slice cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The hex HMAC-SHA256 of `"<timestamp>.<body>"`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
}

/// The `X-Llmsec-Signature` header value for a delivery.
pub fn sign_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", sign(secret, timestamp, body))
}

/// Why a signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The header is not `t=…,v1=…`.
    #[error("malformed signature header: {0}")]
    Malformed(&'static str),
    /// The timestamp is outside the tolerance (a replay, or a clock far off).
    #[error("timestamp {timestamp} is {skew} s away from now (tolerance {tolerance} s)")]
    Stale {
        /// The signed timestamp.
        timestamp: i64,
        /// How far it is from now, in seconds.
        skew: i64,
        /// The tolerance.
        tolerance: i64,
    },
    /// No `v1` signature matches the body.
    #[error("signature does not match")]
    Mismatch,
}

/// Checks a delivery's signature header against its raw body, at Unix time
/// `now` (seconds), allowing `tolerance` seconds of age or clock skew.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance: i64) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or(VerifyError::Malformed("expected key=value pairs"))?;
        match k {
            "t" => timestamp = Some(v.parse::<i64>().map_err(|_| VerifyError::Malformed("t is not an integer"))?),
            "v1" => sigs.push(decode_hex(v).ok_or(VerifyError::Malformed("v1 is not 64 hex digits"))?),
            _ => {} // other schemes: ignored, as receivers of versioned signatures do
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::Malformed("no t="))?;
    if sigs.is_empty() {
        return Err(VerifyError::Malformed("no v1="));
    }
    let skew = now.saturating_sub(timestamp).saturating_abs();
    if skew > tolerance {
        return Err(VerifyError::Stale { timestamp, skew, tolerance });
    }
    // verify_slice compares in constant time.
    if sigs.iter().any(|s| mac(secret, timestamp, body).verify_slice(s).is_ok()) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_750_000_000;

    #[test]
    fn signed_body_verifies() {
        let h = sign_header("0123456789abcdef", NOW, b"{}");
        assert_eq!(verify("0123456789abcdef", &h, b"{}", NOW + 299, 300), Ok(()));
        assert_eq!(verify("0123456789abcdef", &h, b"{}", NOW - 10, 300), Ok(()), "small clock skew is fine");
    }

    #[test]
    fn known_vector() {
        // HMAC-SHA256(key="key", "0.The quick brown fox jumps over the lazy dog"), computed with Python's hmac.
        assert_eq!(
            sign("key", 0, b"The quick brown fox jumps over the lazy dog"),
            "8511f28f7a1949f0c42772b447d68b2daf760f5f0439a20a17e3b4e7cd395763"
        );
    }

    #[test]
    fn tampering_and_replay_are_refused() {
        let h = sign_header("0123456789abcdef", NOW, b"{\"a\":1}");
        assert_eq!(verify("0123456789abcdef", &h, b"{\"a\":2}", NOW, 300), Err(VerifyError::Mismatch));
        assert_eq!(verify("another-secret-00", &h, b"{\"a\":1}", NOW, 300), Err(VerifyError::Mismatch));
        assert!(matches!(verify("0123456789abcdef", &h, b"{\"a\":1}", NOW + 301, 300), Err(VerifyError::Stale { .. })));
        // Moving the timestamp breaks the MAC.
        let moved = h.replace(&format!("t={NOW}"), &format!("t={}", NOW + 600));
        assert_eq!(verify("0123456789abcdef", &moved, b"{\"a\":1}", NOW + 600, 300), Err(VerifyError::Mismatch));
    }

    #[test]
    fn rotation_accepts_any_matching_v1() {
        let good = sign("new-secret-0000000", NOW, b"x");
        let h = format!("t={NOW},v1={},v1={good}", "0".repeat(64));
        assert_eq!(verify("new-secret-0000000", &h, b"x", NOW, 300), Ok(()));
    }

    #[test]
    fn malformed_headers_are_named() {
        for h in ["", "t=1", "v1=00", "t=x,v1=00", &format!("t={NOW},v1=zz"), "garbage"] {
            assert!(matches!(verify("k", h, b"", NOW, 300), Err(VerifyError::Malformed(_))), "{h}");
        }
    }

    #[test]
    fn config_validation() {
        let ok = WebhookConfig::new().with_url("https://h.example/x".into()).with_secret("s".repeat(16));
        assert_eq!(ok.validate(), Ok(()));
        assert!(ok.wants("analysis.completed"));
        assert!(matches!(ok.clone().with_url("ftp://h/x".into()).validate(), Err(WebhookConfigError::Url(_))));
        assert_eq!(ok.clone().with_secret("short".into()).validate(), Err(WebhookConfigError::Secret));
        let bad = ok.clone().with_events(vec!["threat.detected".into(), "threat.nope".into()]);
        assert_eq!(bad.validate(), Err(WebhookConfigError::Event("threat.nope".into())));
        let some = ok.with_events(vec!["threat.detected".into()]);
        assert!(some.wants("threat.detected") && !some.wants("analysis.completed"));
    }
}
