//! The web dashboard served at `/`: its sign-in [`session`]s, and its
//! pages ([`assets`]: HTML, CSS and JavaScript written in this repository
//! and embedded in the binary). The pages call the same REST and GraphQL
//! routes as any client, with the session cookie in place of the key.

pub mod assets;
pub mod session;

use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use llmsec_store::Scope;
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, Json};
use crate::service::{Caller, ServiceError};
use crate::state::AppState;

/// `POST /dashboard/session`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    /// The API key, pasted once.
    key: String,
}

fn scopes(caller: &Caller) -> Vec<&'static str> {
    caller.scopes.iter().map(|s| s.as_str()).collect()
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Signs in: the key must authenticate and hold `read`.
async fn sign_in(
    State(state): State<AppState>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    uri: Uri,
    headers: HeaderMap,
    Json(req): Json<SignIn>,
) -> Result<Response, ApiError> {
    let key = req.key.trim();
    if key.is_empty() {
        return Err(ApiError::field("key", "paste an API key"));
    }
    let peer = peer.map(|p| p.0.0.ip());
    let caller = match crate::auth::authenticate_key(&state, peer, Some(key)).await {
        Ok(c) => c,
        Err(ServiceError::Unauthenticated) => return Err(ApiError::field("key", "not a valid, live API key")),
        Err(e) => return Err(e.into()),
    };
    caller.require(Scope::Read)?;
    let (id, csrf) = state.http.sessions.create(caller.clone(), Instant::now());
    let dash = &state.config.dashboard;
    let body = json!({
        "signed_in": true,
        "tenant": caller.tenant,
        "key_id": caller.key_id,
        "scopes": scopes(&caller),
        "csrf_token": csrf,
        "idle_timeout_ms": dash.idle_timeout_ms,
        "absolute_timeout_ms": dash.absolute_timeout_ms,
    });
    let mut r = (StatusCode::CREATED, axum::Json(body)).into_response();
    r.headers_mut().insert(header::SET_COOKIE, session::set_cookie(&id, session::over_tls(&uri, &headers)));
    Ok(no_store(r))
}

/// The session the cookie names: `{"signed_in": false}` without one (a 200,
/// so that a signed-out page load logs no failed request).
async fn current(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let body = match session_caller(&state, &Method::GET, &headers).await {
        Some(Ok(SessionAuth { caller, csrf, .. })) => json!({
            "signed_in": true,
            "tenant": caller.tenant,
            "key_id": caller.key_id,
            "scopes": scopes(&caller),
            "csrf_token": csrf,
        }),
        _ => json!({"signed_in": false}),
    };
    no_store(axum::Json(body).into_response())
}

/// Signs out (the CSRF token is required while the session is open).
async fn sign_out(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    if let Some(id) = session::cookie(&headers)
        && state.http.sessions.peek(id, Instant::now()).is_some()
    {
        match session_caller(&state, &Method::DELETE, &headers).await {
            // Only the CSRF refusal stops a sign-out: an ended session
            // (its key revoked meanwhile) is cleared all the same.
            Some(Err(refusal)) if refusal.status() == StatusCode::FORBIDDEN => return refusal,
            _ => state.http.sessions.remove(id),
        }
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(header::SET_COOKIE, session::clear_cookie(session::over_tls(&uri, &headers)));
    no_store(r)
}

fn ended() -> Response {
    let body = json!({"error": {"code": "unauthorized", "message": "the dashboard session has ended; sign in again"}});
    (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
}

/// A request authenticated by its session cookie.
#[derive(Debug, Clone)]
pub(crate) struct SessionAuth {
    /// The key's caller.
    pub caller: Caller,
    /// The cookie's value.
    pub id: String,
    /// The session's CSRF token.
    pub csrf: String,
}

/// The caller a request's session cookie stands for: `None` without the
/// cookie; a 401 when the session has ended (or its key was revoked); a
/// 403 when a mutating request lacks the CSRF token. The key is looked up
/// again once per key-cache time to live.
pub(crate) async fn session_caller(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Option<Result<SessionAuth, Response>> {
    let id = session::cookie(headers)?;
    let now = Instant::now();
    let Some(signed) = state.http.sessions.get(id, now) else { return Some(Err(ended())) };
    if signed.stale {
        match key_live(state, &signed.caller.key_id).await {
            Ok(true) => state.http.sessions.confirmed(id, now),
            Ok(false) => {
                state.http.sessions.end_key(&signed.caller.key_id);
                return Some(Err(ended()));
            }
            Err(e) => return Some(Err(ApiError::from(e).into_response())),
        }
    }
    if session::mutating(method) && !session::csrf_ok(headers, &signed.csrf) {
        return Some(Err(session::csrf_refusal()));
    }
    Some(Ok(SessionAuth { caller: signed.caller, id: id.to_owned(), csrf: signed.csrf }))
}

async fn key_live(state: &AppState, key_id: &str) -> Result<bool, ServiceError> {
    Ok(state.store.key(key_id).await?.is_some_and(|k| k.revoked_at.is_none()))
}

/// Whether a session is still open for a live view (a WebSocket), without
/// counting as use.
pub(crate) async fn session_alive(state: &AppState, id: &str) -> bool {
    let now = Instant::now();
    match state.http.sessions.peek(id, now) {
        None => false,
        Some(false) => true,
        Some(true) => {
            let key_id = match state.http.sessions.get(id, now) {
                Some(s) => s.caller.key_id,
                None => return false,
            };
            match key_live(state, &key_id).await {
                Ok(true) => {
                    state.http.sessions.confirmed(id, now);
                    true
                }
                Ok(false) => {
                    state.http.sessions.end_key(&key_id);
                    false
                }
                // The store is down: keep the view; the next check decides.
                Err(_) => true,
            }
        }
    }
}

/// Whether a browser request comes from a page of this server: its
/// `Origin`, when it has one, names the `Host` it was sent to.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else { return false };
    let rest = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    rest == Some(host)
}

/// The dashboard's routes; they authenticate themselves (sign-in takes a
/// key in its body, the rest the cookie).
pub fn router() -> Router<AppState> {
    Router::new().route("/dashboard/session", get(current).post(sign_in).delete(sign_out)).merge(assets::router())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h), "no Origin: not a cross-site browser request");
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(!same_origin(&h), "an Origin without a Host");
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
    }
}
