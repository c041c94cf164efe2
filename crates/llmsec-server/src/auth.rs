//! The middleware that authenticates every route but health: it resolves
//! the presented key (see [`crate::service::keys`]) or, without one, the
//! dashboard's session cookie (see [`crate::dashboard::session`]), applies
//! the key's rate limit, and hands the [`Caller`] to the route.
//!
//! Failed authentications are counted per client address: once an address
//! has spent its burst, it is answered 429 without a store lookup, except
//! for keys the cache already holds.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::service::{Caller, ServiceError};
use crate::state::AppState;

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
) -> Result<Caller, ServiceError> {
    let limits = &state.config.limits;
    let (rate, burst) = (limits.auth_failures_per_sec, limits.auth_failure_burst);
    let peer = peer.map(|ip| crate::listener::client_key(ip).to_string());
    if let Some(ip) = &peer
        && let Err(wait) = state.http.auth_failures.ready(ip, rate, burst, Instant::now())
        && !presented.is_some_and(|k| state.keys.knows(k))
    {
        metrics::counter!(crate::metrics::AUTH_THROTTLED).increment(1);
        return Err(ServiceError::retry_after(wait));
    }
    let result = match presented {
        Some(key) => state.keys.resolve(state.store.as_ref(), key).await,
        None => Err(ServiceError::Unauthenticated),
    };
    if let (Err(ServiceError::Unauthenticated), Some(ip)) = (&result, &peer) {
        let _ = state.http.auth_failures.check(ip, rate, burst, Instant::now());
    }
    result
}

/// Middleware: authenticates the key, applies its rate limit, and puts the
/// [`Caller`] in the request's extensions.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    // gRPC clients read the status from `grpc-status`, not from HTTP.
    let grpc = req.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let refuse = |e: ServiceError| -> Response {
        if !grpc {
            return ApiError::from(e).into_response();
        }
        let status = match &e {
            ServiceError::Unauthenticated => tonic::Status::unauthenticated(e.to_string()),
            ServiceError::RateLimited { .. } => tonic::Status::resource_exhausted(e.to_string()),
            ServiceError::Forbidden(_) => tonic::Status::permission_denied(e.to_string()),
            _ => tonic::Status::unavailable(e.to_string()),
        };
        status.into_http()
    };
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let key = presented_key(req.headers());
    // Without a key, the dashboard's session cookie (and, on a mutating
    // request, its CSRF token) stands for the key it was signed in with.
    let session = match key {
        Some(_) => None,
        None => crate::dashboard::session_caller(&state, req.method(), req.headers()).await,
    };
    let caller = match session {
        Some(Ok(s)) => s.caller,
        Some(Err(refusal)) => return refusal,
        None => match authenticate_key(&state, peer, key).await {
            Ok(c) => c,
            Err(e) => return refuse(e),
        },
    };
    if let Err(e) = crate::service::keys::take_token(&state.services, &caller) {
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
    fn headers() {
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert("x-api-key", "k1".parse().unwrap());
        assert_eq!(presented_key(&h), Some("k1"));
        h.insert(header::AUTHORIZATION, "Bearer k2".parse().unwrap());
        assert_eq!(presented_key(&h), Some("k2"));
    }
}
