//! API keys: their format, hashing, lookup (with a short cache), the
//! middleware that authenticates every route but health, and scope checks.
//!
//! A key reads `lsk_<id>_<secret>`: 12 hex digits of public id, then 32
//! random bytes as hex. Only the SHA-256 of the whole key is stored. A
//! plain hash is the right tool here, not a password hash: the secret is
//! 256 random bits, so there is nothing to brute-force, and lookups stay
//! microseconds on every request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use llmsec_store::{ApiKeyRecord, Scope};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

/// The tenant of the bootstrap operator key and of config webhooks that name none.
pub const DEFAULT_TENANT: &str = "default";
/// The id the `LLMSEC_ADMIN_KEY` key is known by (in the audit log).
pub const ENV_ADMIN_ID: &str = "env-admin";
/// How long a looked-up key is trusted before the store is asked again.
/// Revocation through this server takes effect at once; through another
/// replica, within this time.
const CACHE_TTL: Duration = Duration::from_secs(5);

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
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: RwLock<HashMap<String, (Option<ApiKeyRecord>, Instant)>>,
    /// SHA-256 of `LLMSEC_ADMIN_KEY`, when set.
    env_admin: Option<String>,
}

impl KeyCache {
    /// A cache that also accepts the `LLMSEC_ADMIN_KEY` value (any string
    /// of 16 bytes or more) as an admin key of the default tenant.
    pub fn new(env_admin_key: Option<&str>) -> KeyCache {
        KeyCache { entries: RwLock::default(), env_admin: env_admin_key.map(hash_key) }
    }

    /// Drops a key from the cache (after revocation).
    pub fn invalidate(&self, id: &str) {
        self.entries.write().unwrap_or_else(|p| p.into_inner()).remove(id);
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
        let cached = self
            .entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(r, _)| r.clone());
        let record = match cached {
            Some(r) => r,
            None => {
                let r = store.key(id).await?;
                let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
                if map.len() > 100_000 {
                    map.clear();
                }
                map.insert(id.to_owned(), (r.clone(), Instant::now()));
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
    let Some(key) = presented_key(req.headers()) else {
        return refuse(ApiError::Unauthorized);
    };
    let caller = match state.keys.resolve(state.store.as_ref(), key).await {
        Ok(c) => c,
        Err(e) => return refuse(e),
    };
    let limits = &state.config.limits;
    let rate = caller.rate_per_sec.unwrap_or(limits.rate_per_sec);
    let burst = limits.burst.max(rate);
    if let Err(wait) = state.limiter.check(&caller.key_id, rate, burst, Instant::now()) {
        metrics::counter!("llm_security_rate_limited_total").increment(1);
        return refuse(ApiError::RateLimited { retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64 });
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
