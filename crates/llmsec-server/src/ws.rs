//! A `/graphql/ws` session.
//!
//! Until the key is known only one message is read: the first, which must
//! come within `limits.ws_init_timeout_ms` (else the socket is closed with
//! 4408) and be `connection_init` (else 4400); frames and messages are
//! capped at `limits.ws_max_message_bytes` from the upgrade on. The key
//! comes from the upgrade request's header or the `connection_init`
//! payload and passes the same failed-authentication limit as every route.
//! An authenticated session is closed with 4403 as soon as its key is
//! revoked through this server, and within the key cache's time to live
//! when another replica revokes it. The server pings every half idle
//! timeout and closes (1001) a session that has sent nothing, not even a
//! pong, for `limits.idle_timeout_ms`.

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::http::{WebSocketProtocols, WsMessage};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::graphql::AppSchema;
use crate::service::{Caller, ServiceError};
use crate::state::AppState;

/// Everything a session needs, gathered before the upgrade.
pub struct Session {
    /// The app.
    pub state: AppState,
    /// The schema operations run on.
    pub schema: AppSchema,
    /// The subprotocol the client asked for.
    pub protocol: WebSocketProtocols,
    /// The client's address, when served over a socket.
    pub peer: Option<IpAddr>,
    /// The caller and key from the upgrade request's header, when it had one.
    pub from_header: Option<(Caller, String)>,
    /// The caller and session id from the dashboard's session cookie, when
    /// the upgrade request had no key but an open session.
    pub from_cookie: Option<(Caller, String)>,
    /// Revocations, subscribed to before the key was checked.
    pub revocations: broadcast::Receiver<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("protocol", &self.protocol)
            .field("peer", &self.peer)
            .field("caller", &self.from_header.as_ref().or(self.from_cookie.as_ref()).map(|(c, _)| c))
            .finish_non_exhaustive()
    }
}

/// The GraphQL subprotocol a `Sec-WebSocket-Protocol` header asks for.
pub fn protocol(headers: &axum::http::HeaderMap) -> Option<WebSocketProtocols> {
    headers
        .get(axum::http::header::SEC_WEBSOCKET_PROTOCOL)?
        .to_str()
        .ok()?
        .split(',')
        .find_map(|p| WebSocketProtocols::from_str(p.trim()).ok())
}

/// Runs one session to its end.
pub async fn session(socket: WebSocket, s: Session) {
    let Session { state, schema, protocol, peer, from_header, from_cookie, mut revocations } = s;
    let limits = &state.config.limits;
    let idle = Duration::from_millis(limits.idle_timeout_ms);
    let (mut sink, mut stream) = socket.split();

    let init_timeout = Duration::from_millis(limits.ws_init_timeout_ms);
    let first = match tokio::time::timeout(init_timeout, first_message(&mut stream)).await {
        Ok(Some(m)) => m,
        Ok(None) => return,
        Err(_) => return close(&mut sink, 4408, "connection initialisation timeout").await,
    };
    let Some(payload) = init_payload(&first) else {
        return close(&mut sink, 4400, "the first message must be connection_init").await;
    };
    let authed: Result<(Caller, Credential), String> = match (from_header, from_cookie) {
        (Some((c, key)), _) => Ok((c, Credential::Key(key))),
        (None, Some((c, id))) => Ok((c, Credential::Session(id))),
        (None, None) => match payload_key(&payload) {
            None => Err("missing API key".into()),
            Some(key) => match crate::auth::authenticate_key(&state, peer, Some(&key)).await {
                Ok(c) => Ok((c, Credential::Key(key))),
                Err(ServiceError::Unauthenticated) => Err("invalid API key".into()),
                Err(e) => Err(e.to_string()),
            },
        },
    };

    // async-graphql answers the connection_init (ack, or the protocol's
    // error) from what was decided here.
    let init = authed.as_ref().map(|(c, _)| c.clone()).map_err(Clone::clone);
    let heard = Arc::new(Mutex::new(Instant::now()));
    let input = {
        let heard = heard.clone();
        let rest = stream.take_while(|m| std::future::ready(m.is_ok())).filter_map(move |m| {
            *heard.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
            std::future::ready(match m {
                Ok(m @ (Message::Text(_) | Message::Binary(_))) => Some(m.into_data()),
                _ => None,
            })
        });
        futures_util::stream::once(std::future::ready(first)).chain(rest)
    };
    let mut out =
        async_graphql::http::WebSocket::new(schema, input, protocol).on_connection_init(move |_| async move {
            let caller = init.map_err(async_graphql::Error::new)?;
            let mut data = async_graphql::Data::default();
            data.insert(caller);
            Ok(data)
        });

    let revoked = async {
        match &authed {
            Ok((caller, Credential::Key(key))) => until_revoked(&state, &mut revocations, &caller.key_id, key).await,
            Ok((_, Credential::Session(id))) => until_session_ends(&state, id).await,
            Err(_) => std::future::pending().await,
        }
    };
    let ended = match &authed {
        Ok((_, Credential::Session(_))) => "dashboard session ended",
        _ => "API key revoked",
    };
    let mut revoked = std::pin::pin!(revoked);
    let mut ping = tokio::time::interval(idle / 2);
    ping.tick().await;
    loop {
        tokio::select! {
            msg = out.next() => {
                let Some(msg) = msg else { return };
                if sink.send(to_axum(msg)).await.is_err() {
                    return;
                }
            }
            () = &mut revoked => return close(&mut sink, 4403, ended).await,
            _ = ping.tick() => {
                if heard.lock().unwrap_or_else(|p| p.into_inner()).elapsed() >= idle {
                    return close(&mut sink, 1001, "idle").await;
                }
                if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The first text or binary message; `None` when the peer closes first.
/// Pings are answered by the socket itself.
async fn first_message(stream: &mut SplitStream<WebSocket>) -> Option<Bytes> {
    while let Some(Ok(m)) = stream.next().await {
        match m {
            Message::Text(_) | Message::Binary(_) => return Some(m.into_data()),
            Message::Close(_) => return None,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
    None
}

/// The payload of a `connection_init` message.
fn init_payload(message: &[u8]) -> Option<serde_json::Value> {
    #[derive(serde::Deserialize)]
    struct Init {
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        payload: Option<serde_json::Value>,
    }
    let init: Init = serde_json::from_slice(message).ok()?;
    (init.kind == "connection_init").then(|| init.payload.unwrap_or_default())
}

/// The key in a `connection_init` payload.
fn payload_key(payload: &serde_json::Value) -> Option<String> {
    let get = |k: &str| payload.get(k).and_then(|v| v.as_str());
    if let Some(v) = get("Authorization").or_else(|| get("authorization")) {
        let v = v.trim();
        return Some(v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).unwrap_or(v).trim().to_owned());
    }
    get("apiKey").or_else(|| get("x-api-key")).map(|v| v.trim().to_owned())
}

/// What a session authenticated with.
enum Credential {
    /// An API key.
    Key(String),
    /// A dashboard session (its cookie value).
    Session(String),
}

/// How often a WebSocket opened with a dashboard session checks that the
/// session is still open (signed out, expired, or its key revoked).
const SESSION_CHECK: Duration = Duration::from_secs(1);

/// Completes when the dashboard session `id` has ended.
async fn until_session_ends(state: &AppState, id: &str) {
    let mut tick = tokio::time::interval(SESSION_CHECK);
    loop {
        tick.tick().await;
        if !crate::dashboard::session_alive(state, id).await {
            return;
        }
    }
}

/// Completes when `key` (of the key id `key_id`) no longer authenticates:
/// at once on a revocation through this server, otherwise at the next
/// recheck through the key cache.
async fn until_revoked(state: &AppState, revocations: &mut broadcast::Receiver<String>, key_id: &str, key: &str) {
    let still_valid =
        || async { !matches!(state.keys.resolve(state.store.as_ref(), key).await, Err(ServiceError::Unauthenticated)) };
    let mut recheck = tokio::time::interval(crate::service::keys::CACHE_TTL);
    recheck.tick().await;
    let mut listening = true;
    loop {
        tokio::select! {
            r = revocations.recv(), if listening => match r {
                Ok(id) if id == key_id => return,
                Ok(_) => {}
                // Missed some: look the key up rather than guess.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if !still_valid().await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => listening = false,
            },
            _ = recheck.tick() => {
                if !still_valid().await {
                    return;
                }
            }
        }
    }
}

async fn close(sink: &mut SplitSink<WebSocket, Message>, code: u16, reason: &str) {
    // The peer may be gone already; there is nobody to tell then.
    let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
}

fn to_axum(msg: WsMessage) -> Message {
    match msg {
        WsMessage::Text(text) => Message::Text(text.into()),
        WsMessage::Close(code, reason) => Message::Close(Some(CloseFrame { code, reason: reason.into() })),
    }
}

/// `GET /graphql/ws`: the WebSocket upgrade for subscriptions.
///
/// The key comes in the upgrade request's `Authorization` / `X-API-Key`
/// header (checked before upgrading: a bad one is a 401), or, for browsers,
/// which cannot set headers on a WebSocket, in the `connection_init`
/// payload as `{"Authorization": "Bearer lsk_…"}` or `{"apiKey": "lsk_…"}`,
/// or, from the dashboard's own pages, with its session cookie.
/// Frames and messages are capped at `limits.ws_max_message_bytes`; the
/// session itself is [`session`].
pub async fn graphql_ws(
    State(state): State<AppState>,
    Extension(schema): Extension<AppSchema>,
    peer: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(protocol) = protocol(&headers) else {
        return ApiError::field("sec-websocket-protocol", "must name graphql-transport-ws or graphql-ws")
            .into_response();
    };
    let peer = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
    // Before the key is checked, so that a revocation in between is seen.
    let revocations = state.keys.revocations();
    let from_cookie = match crate::auth::presented_key(&headers) {
        Some(_) => None,
        // Browsers send cookies on a WebSocket upgrade from any page: only
        // one of this server's own pages may use the session.
        None if !crate::dashboard::same_origin(&headers) => None,
        None => match crate::dashboard::session_caller(&state, &axum::http::Method::GET, &headers).await {
            Some(Ok(s)) => Some((s.caller, s.id)),
            // An ended session: the key may still come in connection_init.
            Some(Err(_)) | None => None,
        },
    };
    let from_header = match crate::auth::presented_key(&headers) {
        Some(k) => match crate::auth::authenticate_key(&state, peer, Some(k)).await {
            Ok(c) => Some((c, k.to_owned())),
            Err(e) => return ApiError::from(e).into_response(),
        },
        None => None,
    };
    let max = state.config.limits.ws_max_message_bytes;
    let session = Session { state, schema, protocol, peer, from_header, from_cookie, revocations };
    ws.max_message_size(max)
        .max_frame_size(max)
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| self::session(socket, session))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_messages_and_their_keys() {
        let p = init_payload(br#"{"type":"connection_init","payload":{"Authorization":"Bearer k1"}}"#).unwrap();
        assert_eq!(payload_key(&p).as_deref(), Some("k1"));
        let p = init_payload(br#"{"type":"connection_init"}"#).unwrap();
        assert_eq!(payload_key(&p), None);
        assert_eq!(payload_key(&serde_json::json!({"apiKey": " k2 "})).as_deref(), Some("k2"));
        assert!(init_payload(br#"{"type":"subscribe","id":"1"}"#).is_none());
        assert!(init_payload(b"not json").is_none());
    }
}
