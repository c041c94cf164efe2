//! Dashboard sign-in sessions: the key is pasted once, and the browser
//! holds only an opaque session cookie.
//!
//! `POST /dashboard/session` with `{"key": "lsk_…"}` checks the key as every
//! route does (the same failed-authentication throttle), and answers with
//! a CSRF token and a `llmsec_session` cookie: `HttpOnly; SameSite=Strict;
//! Path=/`, and `Secure` when the request came over TLS (as a TLS-ending
//! proxy reports with `X-Forwarded-Proto: https`). The cookie is 32 random
//! bytes; the server keeps, under its SHA-256, the key's id, tenant and
//! scopes — never the key. With the cookie, the REST and GraphQL routes
//! see the same [`Caller`] the key would give, and every request but
//! `GET`/`HEAD`/`OPTIONS` must carry the CSRF token in `X-CSRF-Token`
//! (else a JSON 403 naming the header).
//!
//! A session ends on `DELETE /dashboard/session`, after
//! `dashboard.idle_timeout_ms` without use, `dashboard.absolute_timeout_ms`
//! after sign-in, and when its key is revoked: at once through this server,
//! otherwise at the next look-up of the key (every 5 s while in use, the
//! key cache's time to live). Sessions live in this
//! process's memory: a restart signs everyone out, and replicas behind a
//! load balancer need sticky sessions.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

use crate::config::DashboardConfig;
use crate::service::Caller;
use crate::service::keys::{CACHE_TTL, ENV_ADMIN_ID};

/// The session cookie's name.
pub const COOKIE: &str = "llmsec_session";
/// The header a cookie-authenticated mutating request carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// One signed-in browser.
#[derive(Debug, Clone)]
struct Entry {
    caller: Caller,
    csrf: String,
    created: Instant,
    seen: Instant,
    /// When the key was last confirmed live in the store.
    checked: Instant,
    /// Look the key up before it is next trusted, whatever `checked` says.
    recheck: bool,
}

/// What a valid cookie stands for.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The key's caller.
    pub caller: Caller,
    /// The session's CSRF token.
    pub csrf: String,
    /// Whether the key should be looked up again before it is trusted.
    pub stale: bool,
    /// When the session ends at the latest, counted from now.
    pub ends_in: Duration,
}

/// The open sessions.
#[derive(Debug)]
pub struct Sessions {
    by_hash: Mutex<HashMap<String, Entry>>,
    idle: Duration,
    absolute: Duration,
    max: usize,
    /// Keys revoked through this server, drained on every look-up.
    revoked: Mutex<broadcast::Receiver<String>>,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // As for keys: no entropy source means no sessions.
    getrandom::fill(&mut buf).expect("the OS random source is unavailable");
    hex::encode(buf)
}

fn hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// Equality that takes the same time wherever the inputs differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    /// Sessions held to `config`, ended when a key id arrives on `revocations`.
    pub fn new(config: &DashboardConfig, revocations: broadcast::Receiver<String>) -> Sessions {
        Sessions {
            by_hash: Mutex::default(),
            idle: Duration::from_millis(config.idle_timeout_ms),
            absolute: Duration::from_millis(config.absolute_timeout_ms),
            max: config.max_sessions.max(1),
            revoked: Mutex::new(revocations),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.by_hash.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the sessions of keys revoked through this server since the
    /// last call; when some revocations were missed, every session's key is
    /// looked up again before it is next trusted.
    fn drain_revocations(&self) {
        let mut rx = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match rx.try_recv() {
                Ok(id) => self.end_key(&id),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    let mut map = self.map();
                    for e in map.values_mut() {
                        e.recheck = true;
                    }
                }
                Err(_) => return,
            }
        }
    }

    /// Opens a session for `caller`: `(cookie value, CSRF token)`. When
    /// `dashboard.max_sessions` are open, expired ones are dropped first,
    /// then the oldest.
    pub fn create(&self, caller: Caller, now: Instant) -> (String, String) {
        let id = random_hex(32);
        let csrf = random_hex(32);
        let mut map = self.map();
        if map.len() >= self.max {
            let (idle, absolute) = (self.idle, self.absolute);
            map.retain(|_, e| now.duration_since(e.seen) < idle && now.duration_since(e.created) < absolute);
            if map.len() >= self.max
                && let Some(oldest) = map.iter().min_by_key(|(_, e)| e.created).map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            hash(&id),
            Entry { caller, csrf: csrf.clone(), created: now, seen: now, checked: now, recheck: false },
        );
        (id, csrf)
    }

    /// The session a cookie value names, if it is open; using it restarts
    /// its idle time.
    pub fn get(&self, id: &str, now: Instant) -> Option<Signed> {
        self.drain_revocations();
        let h = hash(id);
        let mut map = self.map();
        let e = map.get_mut(&h)?;
        if now.duration_since(e.seen) >= self.idle || now.duration_since(e.created) >= self.absolute {
            map.remove(&h);
            return None;
        }
        e.seen = now;
        let stale = e.caller.key_id != ENV_ADMIN_ID && (e.recheck || now.duration_since(e.checked) >= CACHE_TTL);
        let ends_in = self.absolute.saturating_sub(now.duration_since(e.created)).min(self.idle);
        Some(Signed { caller: e.caller.clone(), csrf: e.csrf.clone(), stale, ends_in })
    }

    /// Whether the session is open at `now`, without restarting its idle
    /// time (an open live view does not keep a session alive by itself):
    /// `Some(stale)` when open.
    pub fn peek(&self, id: &str, now: Instant) -> Option<bool> {
        self.drain_revocations();
        let map = self.map();
        let e = map.get(&hash(id))?;
        let open = now.duration_since(e.seen) < self.idle && now.duration_since(e.created) < self.absolute;
        open.then(|| e.caller.key_id != ENV_ADMIN_ID && (e.recheck || now.duration_since(e.checked) >= CACHE_TTL))
    }

    /// Records that the session's key was found live at `now`.
    pub fn confirmed(&self, id: &str, now: Instant) {
        if let Some(e) = self.map().get_mut(&hash(id)) {
            e.checked = now;
            e.recheck = false;
        }
    }

    /// Ends one session.
    pub fn remove(&self, id: &str) {
        self.map().remove(&hash(id));
    }

    /// Ends every session of the key `key_id`.
    pub fn end_key(&self, key_id: &str) {
        self.map().retain(|_, e| e.caller.key_id != key_id);
    }

    /// How many sessions are held (expired ones included until next touched).
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The `llmsec_session` cookie's value in a request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// Whether the request reached the server over TLS: the URI's scheme, or a
/// TLS-ending proxy's `X-Forwarded-Proto` / `Forwarded: proto=https`.
pub fn over_tls(uri: &axum::http::Uri, headers: &HeaderMap) -> bool {
    if uri.scheme_str() == Some("https") {
        return true;
    }
    let forwarded_proto =
        headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() == "https");
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split([';', ',']).any(|p| p.trim().eq_ignore_ascii_case("proto=https")));
    forwarded_proto || forwarded
}

/// The `Set-Cookie` value that opens a session (a browser-session cookie:
/// the server ends it, so it carries no `Max-Age`).
pub fn set_cookie(id: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    // The id is hex, so the value is always a valid header.
    HeaderValue::from_str(&format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/{secure}"))
        .unwrap_or_else(|_| HeaderValue::from_static("llmsec_session=; Max-Age=0; Path=/"))
}

/// The `Set-Cookie` value that drops the cookie.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    if secure {
        HeaderValue::from_static("llmsec_session=; Max-Age=0; HttpOnly; SameSite=Strict; Path=/; Secure")
    } else {
        HeaderValue::from_static("llmsec_session=; Max-Age=0; HttpOnly; SameSite=Strict; Path=/")
    }
}

/// Whether a method changes something, and so needs the CSRF token.
pub fn mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether the request carries the session's CSRF token.
pub fn csrf_ok(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| ct_eq(v.trim().as_bytes(), expected.as_bytes()))
}

/// The JSON 403 for a cookie-authenticated mutation without the right token.
pub fn csrf_refusal() -> Response {
    let body = serde_json::json!({"error": {
        "code": "csrf_token",
        "message": "a request signed in with the session cookie must carry the session's CSRF token in the X-CSRF-Token header",
        "header": CSRF_HEADER,
    }});
    (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmsec_store::Scope;

    fn caller(key: &str) -> Caller {
        Caller {
            key_id: key.into(),
            tenant: "acme".into(),
            scopes: vec![Scope::Read],
            rate_per_sec: None,
            models: None,
            budgets: Vec::new(),
        }
    }

    fn sessions(idle_ms: u64, absolute_ms: u64, max: usize) -> (Sessions, broadcast::Sender<String>) {
        let (tx, rx) = broadcast::channel(4);
        let cfg = DashboardConfig { idle_timeout_ms: idle_ms, absolute_timeout_ms: absolute_ms, max_sessions: max };
        (Sessions::new(&cfg, rx), tx)
    }

    #[test]
    fn idle_and_absolute_expiry() {
        let (s, _tx) = sessions(1_000, 2_500, 10);
        let t0 = Instant::now();
        let (id, csrf) = s.create(caller("k1"), t0);
        assert_ne!(id, csrf);
        assert_eq!(s.get(&id, t0 + Duration::from_millis(900)).unwrap().csrf, csrf);
        // Use restarts the idle time, not the absolute one.
        assert!(s.get(&id, t0 + Duration::from_millis(1_800)).is_some());
        assert!(s.get(&id, t0 + Duration::from_millis(2_500)).is_none(), "absolute limit");
        let (id2, _) = s.create(caller("k1"), t0);
        assert!(s.get(&id2, t0 + Duration::from_millis(1_000)).is_none(), "idle limit");
        assert!(s.is_empty());
    }

    #[test]
    fn revocation_ends_the_keys_sessions_only() {
        let (s, tx) = sessions(60_000, 60_000, 10);
        let now = Instant::now();
        let (a, _) = s.create(caller("k1"), now);
        let (b, _) = s.create(caller("k2"), now);
        tx.send("k1".into()).unwrap();
        assert!(s.get(&a, now).is_none());
        assert!(s.get(&b, now).is_some());
    }

    #[test]
    fn the_oldest_goes_when_full_and_unknown_ids_find_nothing() {
        let (s, _tx) = sessions(60_000, 60_000, 2);
        let t0 = Instant::now();
        let (a, _) = s.create(caller("k1"), t0);
        let (b, _) = s.create(caller("k1"), t0 + Duration::from_millis(1));
        let (c, _) = s.create(caller("k1"), t0 + Duration::from_millis(2));
        assert_eq!(s.len(), 2);
        assert!(s.get(&a, t0).is_none());
        assert!(s.get(&b, t0).is_some() && s.get(&c, t0).is_some());
        assert!(s.get("00", t0).is_none());
        assert!(!s.map().keys().any(|k| *k == b), "the map holds hashes, not cookie values");
    }

    #[test]
    fn stale_after_the_key_cache_time() {
        let (s, _tx) = sessions(60_000, 60_000, 2);
        let t0 = Instant::now();
        let (a, _) = s.create(caller("k1"), t0);
        assert!(!s.get(&a, t0).unwrap().stale);
        assert!(s.get(&a, t0 + CACHE_TTL).unwrap().stale);
        s.confirmed(&a, t0 + CACHE_TTL);
        assert!(!s.get(&a, t0 + CACHE_TTL).unwrap().stale);
    }

    #[test]
    fn cookie_header_parsing_and_flags() {
        let mut h = HeaderMap::new();
        assert_eq!(cookie(&h), None);
        h.insert(header::COOKIE, "a=1; llmsec_session=abc ; b=2".parse().unwrap());
        assert_eq!(cookie(&h), Some("abc"));
        h.insert(header::COOKIE, "llmsec_session=".parse().unwrap());
        assert_eq!(cookie(&h), None);
        let v = set_cookie("ab12", false);
        assert_eq!(v, "llmsec_session=ab12; HttpOnly; SameSite=Strict; Path=/");
        assert!(set_cookie("ab12", true).to_str().unwrap().ends_with("; Secure"));
        let uri: axum::http::Uri = "/dashboard/session".parse().unwrap();
        let mut h = HeaderMap::new();
        assert!(!over_tls(&uri, &h));
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(over_tls(&uri, &h));
        let mut h = HeaderMap::new();
        h.insert(header::FORWARDED, "for=1.2.3.4;proto=https".parse().unwrap());
        assert!(over_tls(&uri, &h));
    }

    #[test]
    fn the_dashboard_section_is_validated() {
        let mut c = crate::config::ServerConfig::default();
        assert!(c.validate().is_ok());
        c.dashboard.absolute_timeout_ms = c.dashboard.idle_timeout_ms - 1;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.starts_with("dashboard.absolute_timeout_ms"), "{e}");
        c.dashboard = DashboardConfig { idle_timeout_ms: 0, ..DashboardConfig::default() };
        assert!(c.validate().unwrap_err().to_string().starts_with("dashboard.idle_timeout_ms"));
        c.dashboard = DashboardConfig { max_sessions: 0, ..DashboardConfig::default() };
        assert!(c.validate().unwrap_err().to_string().starts_with("dashboard.max_sessions"));
        let parsed: crate::config::ServerConfig =
            toml::from_str("[dashboard]\nidle_timeout_ms = 60000\nabsolute_timeout_ms = 120000\n").unwrap();
        assert_eq!(parsed.dashboard.max_sessions, 10_000);
        assert!(toml::from_str::<crate::config::ServerConfig>("[dashboard]\nidle = 1\n").is_err(), "unknown keys");
    }

    #[test]
    fn csrf_check() {
        let mut h = HeaderMap::new();
        assert!(!csrf_ok(&h, "t0k"));
        h.insert(CSRF_HEADER, "t0k".parse().unwrap());
        assert!(csrf_ok(&h, "t0k"));
        assert!(!csrf_ok(&h, "t0K"));
        assert!(mutating(&Method::POST) && mutating(&Method::DELETE) && !mutating(&Method::GET));
    }
}
