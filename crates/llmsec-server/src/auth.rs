//! API keys: their format, hashing, lookup (with a short cache), the
//! middleware that authenticates every route but health, and scope checks.
//!
//! Failed authentications are counted per client address: once an address
//! has spent its burst, it is answered 429 without a store lookup, except
//! for keys the cache already holds. Ids the store does not know are cached
//! apart from found keys, so that made-up ids cannot push real keys out.
//!
//! A key reads `lsk_<id>_<secret>`: 12 hex digits of public id, then 32
//! random bytes as hex. Only the SHA-256 of the whole key is stored. A
//! plain hash is the right tool here, not a password hash: the secret is
//! 256 random bits, so there is nothing to brute-force, and lookups stay
//! microseconds on every request.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use llmsec_store::{ApiKeyRecord, Scope};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

use crate::AppState;
use crate::error::ApiError;

pub use crate::config::DEFAULT_TENANT;
/// The id the `LLMSEC_ADMIN_KEY` key is known by (in the audit log).
pub const ENV_ADMIN_ID: &str = "env-admin";
/// How long a looked-up key is trusted before the store is asked again.
/// Revocation through this server takes effect at once; through another
/// replica, within this time.
pub(crate) const CACHE_TTL: Duration = Duration::from_secs(5);
/// Keys the cache holds at most, and, apart, unknown ids.
const CACHE_CAPACITY: usize = 100_000;

/// Who is calling: what the handlers see.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key's id.
    pub key_id: String,
    /// The key's tenant: all data access is confined to it.
    pub tenant: String,
    /// What the key may do.
    pub scopes: Vec<Scope>,
    /// The key's own rate, if it has one.
    pub rate_per_sec: Option<f64>,
}

impl Caller {
    /// Whether the key holds `scope`, or a scope that includes it
    /// (`operator` includes `admin`, which includes `triage`).
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| s.grants(scope))
    }

    /// `Ok` when the key [has](Self::has) `scope`; `403` naming it otherwise.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.has(scope) { Ok(()) } else { Err(ApiError::Forbidden(scope.as_str())) }
    }

    /// [`require`](Self::require) for work on `tenant`'s data: on the
    /// caller's own tenant, `scope`; on any other, `operator` (`403` naming
    /// `operator` otherwise).
    pub fn require_in(&self, scope: Scope, tenant: &str) -> Result<(), ApiError> {
        if tenant == self.tenant { self.require(scope) } else { self.require(Scope::Operator) }
    }
}

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
    pub async fn resolve(&self, store: &dyn llmsec_store::Store, presented: &str) -> Result<Caller, ApiError> {
        if let Some(h) = &self.env_admin
            && ct_eq(hash_key(presented).as_bytes(), h.as_bytes())
        {
            return Ok(Caller {
                key_id: ENV_ADMIN_ID.into(),
                tenant: DEFAULT_TENANT.into(),
                scopes: Scope::ALL.to_vec(),
                rate_per_sec: None,
            });
        }
        let id = key_id(presented).ok_or(ApiError::Unauthorized)?;
        let record = match self.cached(id) {
            Some(r) => r,
            None => {
                let r = store.key(id).await?;
                self.remember(id, r.as_ref());
                r
            }
        };
        let record = record.ok_or(ApiError::Unauthorized)?;
        if record.revoked_at.is_some() || !ct_eq(hash_key(presented).as_bytes(), record.hash.as_bytes()) {
            return Err(ApiError::Unauthorized);
        }
        Ok(Caller {
            key_id: record.id,
            tenant: record.tenant,
            scopes: record.scopes,
            rate_per_sec: record.rate_per_sec,
        })
    }
}

/// The key a request presents: `Authorization: Bearer <key>` or `X-API-Key: <key>`.
pub fn presented_key(headers: &axum::http::HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if let Some(k) = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")) {
            return Some(k.trim());
        }
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim)
}

/// Resolves the key a client at `peer` presents. An address that has spent
/// its burst of failures is answered 429 (with `Retry-After`) without a
/// store lookup, unless the key is one the cache already trusts; each 401
/// counts as a failure of its address. Without a known peer (a router
/// driven without a socket) failures are not counted.
pub(crate) async fn authenticate_key(
    state: &AppState,
    peer: Option<IpAddr>,
    presented: Option<&str>,
) -> Result<Caller, ApiError> {
    let limits = &state.config.limits;
    let (rate, burst) = (limits.auth_failures_per_sec, limits.auth_failure_burst);
    let peer = peer.map(|ip| crate::listener::client_key(ip).to_string());
    if let Some(ip) = &peer
        && let Err(wait) = state.auth_failures.ready(ip, rate, burst, Instant::now())
        && !presented.is_some_and(|k| state.keys.knows(k))
    {
        metrics::counter!("llm_security_auth_throttled_total").increment(1);
        return Err(ApiError::RateLimited { retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64 });
    }
    let result = match presented {
        Some(key) => state.keys.resolve(state.store.as_ref(), key).await,
        None => Err(ApiError::Unauthorized),
    };
    if let (Err(ApiError::Unauthorized), Some(ip)) = (&result, &peer) {
        let _ = state.auth_failures.check(ip, rate, burst, Instant::now());
    }
    result
}

/// Takes one token from the caller's bucket: 429 when it is empty.
pub(crate) fn take_token(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    let limits = &state.config.limits;
    let rate = caller.rate_per_sec.unwrap_or(limits.rate_per_sec);
    let burst = limits.burst.max(rate);
    state.limiter.check(&caller.key_id, rate, burst, Instant::now()).map_err(|wait| {
        metrics::counter!("llm_security_rate_limited_total").increment(1);
        ApiError::RateLimited { retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64 }
    })
}

/// Middleware: authenticates the key, applies its rate limit, and puts the
/// [`Caller`] in the request's extensions.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    // gRPC clients read the status from `grpc-status`, not from HTTP.
    let grpc = req.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let refuse = |e: ApiError| -> Response {
        if !grpc {
            return e.into_response();
        }
        let status = match &e {
            ApiError::Unauthorized => tonic::Status::unauthenticated(e.to_string()),
            ApiError::RateLimited { .. } => tonic::Status::resource_exhausted(e.to_string()),
            ApiError::Forbidden(_) => tonic::Status::permission_denied(e.to_string()),
            _ => tonic::Status::unavailable(e.to_string()),
        };
        status.into_http()
    };
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let caller = match authenticate_key(&state, peer, presented_key(req.headers())).await {
        Ok(c) => c,
        Err(e) => return refuse(e),
    };
    if let Err(e) = take_token(&state, &caller) {
        return refuse(e);
    }
    req.extensions_mut().insert(Arc::new(caller));
    next.run(req).await
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Arc<Caller>>().map(|c| (**c).clone()).ok_or(ApiError::Unauthorized)
    }
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
    fn other_tenants_need_operator() {
        let caller =
            |scopes: Vec<Scope>| Caller { key_id: "k".into(), tenant: "acme".into(), scopes, rate_per_sec: None };
        let admin = caller(vec![Scope::Admin]);
        assert!(admin.require_in(Scope::Admin, "acme").is_ok() && admin.require(Scope::Triage).is_ok());
        assert!(matches!(admin.require_in(Scope::Admin, "globex"), Err(ApiError::Forbidden("operator"))));
        assert!(matches!(admin.require(Scope::Operator), Err(ApiError::Forbidden("operator"))));
        let operator = caller(vec![Scope::Operator]);
        assert!(
            operator.require_in(Scope::Admin, "globex").is_ok() && operator.require_in(Scope::Admin, "acme").is_ok()
        );
        assert!(matches!(operator.require(Scope::Read), Err(ApiError::Forbidden("read"))));
        let triage = caller(vec![Scope::Triage, Scope::Read]);
        assert!(triage.require(Scope::Triage).is_ok());
        assert!(matches!(triage.require_in(Scope::Admin, "acme"), Err(ApiError::Forbidden("admin"))));
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
            assert!(matches!(cache.resolve(&store, &made_up).await, Err(ApiError::Unauthorized)));
        }
        assert!(cache.missing.lock().unwrap().len() <= 50, "unknown ids are bounded");
        // Revoked behind the cache's back: a key still cached keeps resolving
        // until its time to live ends; one pushed out would be looked up again.
        llmsec_store::Store::revoke_key(&store, &good.record.id, 2).await.unwrap();
        assert!(cache.resolve(&store, &good.key).await.is_ok(), "the good key was pushed out of the cache");
        assert!(cache.knows(&good.key));
        assert!(!cache.knows(&format!("lsk_{}_{}", good.record.id, "0".repeat(64))), "a wrong secret is not known");
    }

    #[test]
    fn headers() {
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert("x-api-key", "k1".parse().unwrap());
        assert_eq!(presented_key(&h), Some("k1"));
        h.insert(header::AUTHORIZATION, "Bearer k2".parse().unwrap());
        assert_eq!(presented_key(&h), Some("k2"));
    }
}
