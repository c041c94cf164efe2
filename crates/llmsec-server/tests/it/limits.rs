//! Denial of service with any key or none: connections that hold slots
//! without finishing, WebSockets that never authenticate or send oversized
//! frames, revoked keys that keep their socket, GraphQL aliases that multiply
//! work, work that outlives its 408, pages without a byte bound, and
//! unthrottled failed authentication. Connection-level checks go over real
//! sockets on loopback (127.0.0.2 is a second client address there).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{Method, StatusCode};
use futures_util::{SinkExt, StreamExt};
use llmsec_server::config::ServerConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::*;

/// A server on a real socket; the router shares its state.
struct Served {
    addr: SocketAddr,
    router: Router,
}

async fn serve_with(f: impl FnOnce(&mut ServerConfig)) -> Served {
    let mut c = config();
    f(&mut c);
    let server = llmsec_server::Server::start(c, Some(ADMIN.into())).await.unwrap();
    let router = server.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.serve(listener, std::future::pending()));
    Served { addr, router }
}

/// A connection to `addr` from the loopback address `from`.
async fn connect_from(from: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(addr).await.unwrap()
}

/// One HTTP/1.1 GET from `from`: the status and the raw answer.
async fn get_from(from: [u8; 4], addr: SocketAddr, path: &str, key: Option<&str>) -> (u16, String) {
    get_from_with(from, addr, path, key, "").await
}

/// [`get_from`] with extra header lines (each ending in `\r\n`).
async fn get_from_with(from: [u8; 4], addr: SocketAddr, path: &str, key: Option<&str>, extra: &str) -> (u16, String) {
    let mut c = connect_from(from, addr).await;
    let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}{extra}Connection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut out)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// Waits until the peer closes `c` (or resets it); false after `secs`.
async fn closed_within(c: &mut TcpStream, secs: u64) -> bool {
    let mut sink = Vec::new();
    tokio::time::timeout(Duration::from_secs(secs), c.read_to_end(&mut sink)).await.is_ok()
}

#[tokio::test]
async fn half_sent_headers_from_one_address_neither_lock_others_out_nor_stay_open() {
    let s = serve_with(|c| {
        c.limits.max_connections = 16;
        c.limits.max_connections_per_ip = 3;
        c.limits.header_read_timeout_ms = 300;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = connect_from([127, 0, 0, 1], s.addr).await;
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Unfinished: ").await.unwrap();
        held.push(c);
    }
    // The kernel hands connections over in order: a fourth from the same
    // address comes after the three and is closed unanswered.
    let mut fourth = connect_from([127, 0, 0, 1], s.addr).await;
    let _ = fourth.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), fourth.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the fourth connection from one address was kept open");
    assert!(out.is_empty(), "served past the per-address cap: {}", String::from_utf8_lossy(&out));
    // Meanwhile another address is served: health checks keep working.
    let (status, text) = get_from([127, 0, 0, 2], s.addr, "/healthz", None).await;
    assert_eq!(status, 200, "{text}");
    // The unfinished headers are dropped after the header timeout…
    let started = Instant::now();
    for c in &mut held {
        assert!(closed_within(c, 3).await, "a half-sent header kept its connection");
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    // …and the address is served again.
    let (status, text) = get_from([127, 0, 0, 1], s.addr, "/healthz", None).await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test]
async fn silent_connections_are_closed_after_the_idle_timeout() {
    let s = serve_with(|c| {
        c.limits.request_timeout_ms = 200;
        c.limits.idle_timeout_ms = 500;
    })
    .await;
    let started = Instant::now();
    // Not a byte: the server cannot even tell HTTP/1 from HTTP/2.
    let mut silent = connect_from([127, 0, 0, 1], s.addr).await;
    assert!(closed_within(&mut silent, 3).await, "a silent connection stayed open");
    assert!(started.elapsed() >= Duration::from_millis(400), "closed before the idle timeout");
    // An idle kept-alive connection goes the same way.
    let mut kept = connect_from([127, 0, 0, 1], s.addr).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 512];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_within(&mut kept, 3).await, "an idle kept-alive connection stayed open");
}

#[tokio::test]
async fn failed_authentication_is_throttled_per_address() {
    let s = serve_with(|c| {
        c.limits.auth_failure_burst = 3.0;
        c.limits.auth_failures_per_sec = 0.01;
    })
    .await;
    let good = make_key(&s.router, "acme", &["read"]).await;
    let path = "/api/security/events?limit=1";
    assert_eq!(get_from([127, 0, 0, 1], s.addr, path, Some(&good)).await.0, 200);
    let made_up = |i: u32| format!("lsk_{i:012x}_{}", "ab".repeat(32));
    for i in 0..3 {
        let (status, text) = get_from([127, 0, 0, 1], s.addr, path, Some(&made_up(i))).await;
        assert_eq!(status, 401, "{text}");
    }
    // The burst is spent: refused without a lookup, with a JSON error and Retry-After.
    let (status, text) = get_from([127, 0, 0, 1], s.addr, path, Some(&made_up(3))).await;
    assert_eq!(status, 429, "{text}");
    let lower = text.to_ascii_lowercase();
    let retry: u64 = lower
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After: {text}"));
    assert!(retry >= 1, "{text}");
    let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // A key the server already trusts still works from that address…
    assert_eq!(get_from([127, 0, 0, 1], s.addr, path, Some(&good)).await.0, 200);
    // …and other addresses are not held to its failures.
    assert_eq!(get_from([127, 0, 0, 2], s.addr, path, Some(&made_up(4))).await.0, 401);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_throttled_not_the_proxy() {
    let s = serve_with(|c| {
        c.limits.auth_failure_burst = 2.0;
        c.limits.auth_failures_per_sec = 0.01;
        c.limits.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let path = "/api/security/events?limit=1";
    let made_up = |i: u32| format!("lsk_{i:012x}_{}", "cd".repeat(32));
    let via_proxy = |client: &str| format!("X-Forwarded-For: 198.51.100.77, {client}\r\n");
    // One client behind the proxy spends its burst…
    for i in 0..2 {
        let (status, text) =
            get_from_with([127, 0, 0, 1], s.addr, path, Some(&made_up(i)), &via_proxy("203.0.113.1")).await;
        assert_eq!(status, 401, "{text}");
    }
    let (status, text) =
        get_from_with([127, 0, 0, 1], s.addr, path, Some(&made_up(2)), &via_proxy("203.0.113.1")).await;
    assert_eq!(status, 429, "{text}");
    // …another client behind the same proxy is not held to it…
    let (status, text) =
        get_from_with([127, 0, 0, 1], s.addr, path, Some(&made_up(3)), &via_proxy("203.0.113.2")).await;
    assert_eq!(status, 401, "{text}");
    // …and a peer that is not a trusted proxy cannot borrow an address:
    // 127.0.0.2 is throttled as itself, whatever it writes.
    for i in 4..6 {
        let (status, text) =
            get_from_with([127, 0, 0, 2], s.addr, path, Some(&made_up(i)), &via_proxy("203.0.113.3")).await;
        assert_eq!(status, 401, "{text}");
    }
    let (status, _) = get_from_with([127, 0, 0, 2], s.addr, path, Some(&made_up(6)), &via_proxy("203.0.113.4")).await;
    assert_eq!(status, 429, "127.0.0.2 spent its own burst");
}

fn ws_request(addr: SocketAddr, key: Option<&str>) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = format!("ws://{addr}/graphql/ws").into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    if let Some(k) = key {
        req.headers_mut().insert("authorization", format!("Bearer {k}").parse().unwrap());
    }
    req
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// The next message that is not a ping or pong, within `secs`.
async fn next_message(ws: &mut Ws, secs: u64) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    tokio::time::timeout(Duration::from_secs(secs), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("no message and no close in time")
}

fn close_code(msg: &Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) -> Option<u16> {
    match msg {
        Some(Ok(Message::Close(Some(frame)))) => Some(u16::from(frame.code)),
        _ => None,
    }
}

#[tokio::test]
async fn websockets_that_never_initialise_are_closed() {
    let s = serve_with(|c| c.limits.ws_init_timeout_ms = 300).await;
    // Nothing after the upgrade: closed with 4408 at the deadline.
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_request(s.addr, None)).await.unwrap();
    let started = Instant::now();
    let msg = next_message(&mut ws, 3).await;
    assert_eq!(close_code(&msg), Some(4408), "{msg:?}");
    assert!(started.elapsed() >= Duration::from_millis(250));
    // Anything but connection_init first: closed with 4400, even with a key.
    let key = make_key(&s.router, "acme", &["read"]).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_request(s.addr, Some(&key))).await.unwrap();
    let sub =
        json!({"id": "1", "type": "subscribe", "payload": {"query": "subscription { threatDetected { eventId } }"}});
    ws.send(Message::text(sub.to_string())).await.unwrap();
    let msg = next_message(&mut ws, 3).await;
    assert_eq!(close_code(&msg), Some(4400), "{msg:?}");
}

#[tokio::test]
async fn websocket_messages_are_capped_before_authentication() {
    let s = serve_with(|c| c.limits.ws_max_message_bytes = 16 * 1024).await;
    let key = make_key(&s.router, "acme", &["read"]).await;
    // A valid key padded past the cap: refused unread, no ack.
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_request(s.addr, None)).await.unwrap();
    let init = json!({"type": "connection_init", "payload": {"apiKey": key, "padding": "x".repeat(100_000)}});
    let _ = ws.send(Message::text(init.to_string())).await;
    let msg = tokio::time::timeout(Duration::from_secs(3), ws.next()).await.expect("the oversized message was held");
    let acked = matches!(&msg, Some(Ok(Message::Text(t))) if t.contains("connection_ack"));
    assert!(!acked, "an oversized connection_init was accepted: {msg:?}");
    // The same key without the padding is acknowledged.
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_request(s.addr, None)).await.unwrap();
    let init = json!({"type": "connection_init", "payload": {"apiKey": key}});
    ws.send(Message::text(init.to_string())).await.unwrap();
    let msg = next_message(&mut ws, 3).await;
    assert!(matches!(&msg, Some(Ok(Message::Text(t))) if t.contains("connection_ack")), "{msg:?}");
}

#[tokio::test]
async fn revoked_keys_lose_their_websockets() {
    let s = serve_with(|_| {}).await;
    let key = make_key(&s.router, "acme", &["analyze", "read"]).await;
    let id = key[4..16].to_owned();
    // One socket keyed in the upgrade header, one in connection_init.
    let (mut by_header, _) = tokio_tungstenite::connect_async(ws_request(s.addr, Some(&key))).await.unwrap();
    by_header.send(Message::text(json!({"type": "connection_init"}).to_string())).await.unwrap();
    let (mut by_payload, _) = tokio_tungstenite::connect_async(ws_request(s.addr, None)).await.unwrap();
    let init = json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {key}")}});
    by_payload.send(Message::text(init.to_string())).await.unwrap();
    let sub =
        json!({"id": "1", "type": "subscribe", "payload": {"query": "subscription { threatDetected { eventId } }"}});
    for ws in [&mut by_header, &mut by_payload] {
        let ack = next_message(ws, 5).await;
        assert!(matches!(&ack, Some(Ok(Message::Text(t))) if t.contains("connection_ack")), "{ack:?}");
        ws.send(Message::text(sub.to_string())).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let r = send(&s.router, Method::DELETE, &format!("/api/admin/keys/{id}"), Some(ADMIN), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let revoked = Instant::now();
    for ws in [&mut by_header, &mut by_payload] {
        let msg = next_message(ws, 2).await;
        assert_eq!(close_code(&msg), Some(4403), "{msg:?}");
    }
    assert!(revoked.elapsed() < Duration::from_secs(1), "took {:?}", revoked.elapsed());
    // Threats published afterwards reach nobody through them.
    post(&s.router, "/api/security/analyze", ADMIN, json!({"input": ATTACK})).await;
    for ws in [&mut by_header, &mut by_payload] {
        let after = tokio::time::timeout(Duration::from_millis(300), ws.next()).await;
        assert!(!matches!(&after, Ok(Some(Ok(Message::Text(_))))), "{after:?}");
    }
}

#[tokio::test]
async fn failed_authentication_over_the_websocket_counts_too() {
    let s = serve_with(|c| {
        c.limits.auth_failure_burst = 1.0;
        c.limits.auth_failures_per_sec = 0.01;
    })
    .await;
    let made_up = format!("lsk_{:012x}_{}", 7, "cd".repeat(32));
    let err = tokio_tungstenite::connect_async(ws_request(s.addr, Some(&made_up))).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    let err = tokio_tungstenite::connect_async(ws_request(s.addr, Some(&made_up))).await.unwrap_err();
    assert!(err.to_string().contains("429"), "{err}");
    // In connection_init as well.
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_request(s.addr, None)).await.unwrap();
    ws.send(Message::text(json!({"type": "connection_init", "payload": {"apiKey": made_up}}).to_string()))
        .await
        .unwrap();
    let msg = next_message(&mut ws, 3).await;
    match msg {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert!(frame.reason.contains("rate limit"), "{frame:?}");
            assert_ne!(frame.code, CloseCode::Normal);
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn event_pages_stop_at_page_bytes_with_a_cursor() {
    let t = app_with(|c| {
        c.storage.input = llmsec_server::config::InputRetention::Full;
        c.limits.page_bytes = 6_000;
    })
    .await;
    let key = make_key(&t.router, "acme", &["analyze", "read"]).await;
    for i in 0..6 {
        let input = format!("{i} {}", "what a lovely day for a walk ".repeat(70));
        let r = post(&t.router, "/api/security/analyze", &key, json!({"input": input})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    // REST: limit=1000 still stops near 6 KB, and the cursor walks the rest.
    let mut path = "/api/security/events?limit=1000".to_owned();
    let mut seen = Vec::new();
    loop {
        let r = get(&t.router, &path, &key).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let events = r.body["events"].as_array().unwrap();
        assert!(!events.is_empty() && events.len() < 4, "{} events in one page", events.len());
        seen.extend(events.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        match r.body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/security/events?limit=1000&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    seen.dedup();
    assert_eq!(seen.len(), 6);
    // GraphQL: aliased pages share the budget; the one past it is refused.
    let q = "{ a: securityEvents(first: 1000) { pageInfo { hasNextPage endCursor } edges { node { id input } } }
               b: securityEvents(first: 1000) { edges { node { id input } } } }";
    let r = post(&t.router, "/graphql", &key, json!({"query": q})).await;
    let errors = r.body["errors"].as_array().unwrap_or_else(|| panic!("{}", r.text));
    assert_eq!(errors.len(), 1, "{}", r.text);
    assert_eq!(errors[0]["extensions"]["field"], "first", "{}", r.text);
    assert_eq!(errors[0]["path"][0], "b", "{}", r.text);
}

/// Events of tenant `default` (the admin key's), where the tests analyse.
async fn stored_events(router: &Router) -> u64 {
    get(router, "/api/security/events?limit=1", ADMIN).await.body["total_count"].as_u64().unwrap()
}

/// `n` aliased `analyzeInput`s of one variable.
fn aliased_analyses(n: usize) -> String {
    let fields: Vec<String> = (0..n).map(|i| format!("a{i}: analyzeInput(input: $x) {{ verdict }}")).collect();
    format!("query($x: String!) {{ {} }}", fields.join(" "))
}

#[tokio::test]
async fn graphql_documents_with_too_many_aliases_are_refused_before_any_work() {
    let t = app_with(|c| c.limits.graphql_aliases = 5).await;
    let key = make_key(&t.router, "default", &["analyze"]).await;
    let r = post(&t.router, "/graphql", &key, json!({"query": aliased_analyses(6), "variables": {"x": BENIGN}})).await;
    assert_eq!(r.body["errors"][0]["extensions"]["code"], "bad_request", "{}", r.text);
    assert_eq!(r.body["errors"][0]["extensions"]["field"], "query", "{}", r.text);
    assert_eq!(stored_events(&t.router).await, 0);
    let r = post(&t.router, "/graphql", &key, json!({"query": aliased_analyses(5), "variables": {"x": BENIGN}})).await;
    assert!(r.body["errors"].is_null(), "{}", r.text);
    assert_eq!(stored_events(&t.router).await, 5);
}

#[tokio::test]
async fn graphql_aliases_share_one_request_budget_of_analyses_and_bytes() {
    let t = app_with(|c| {
        c.limits.batch_items = 3;
        c.limits.body_bytes = 10_000;
    })
    .await;
    let key = make_key(&t.router, "default", &["analyze"]).await;
    // Five analyses where three are allowed.
    let r = post(&t.router, "/graphql", &key, json!({"query": aliased_analyses(5), "variables": {"x": BENIGN}})).await;
    let errors = r.body["errors"].as_array().unwrap_or_else(|| panic!("{}", r.text));
    assert_eq!(errors.len(), 2, "{}", r.text);
    assert!(errors.iter().all(|e| e["extensions"]["code"] == "bad_request"), "{}", r.text);
    assert_eq!(stored_events(&t.router).await, 3);
    // Two 6 KB texts where 10 KB are allowed: one runs.
    let x = "tell me about the weather ".repeat(240);
    let r = post(&t.router, "/graphql", &key, json!({"query": aliased_analyses(2), "variables": {"x": x}})).await;
    assert_eq!(r.body["errors"].as_array().map(Vec::len), Some(1), "{}", r.text);
    assert_eq!(stored_events(&t.router).await, 4);
}

#[tokio::test]
async fn every_graphql_analysis_takes_a_rate_limit_token() {
    let t = app_with(|c| {
        c.limits.rate_per_sec = 0.001;
        c.limits.burst = 4.0;
    })
    .await;
    let key = make_key(&t.router, "default", &["analyze"]).await;
    // The request takes one token and pays for the first analysis; the
    // other five need five more, of which three are left.
    let r = post(&t.router, "/graphql", &key, json!({"query": aliased_analyses(6), "variables": {"x": BENIGN}})).await;
    let errors = r.body["errors"].as_array().unwrap_or_else(|| panic!("{}", r.text));
    assert_eq!(errors.len(), 2, "{}", r.text);
    assert!(errors.iter().all(|e| e["extensions"]["code"] == "rate_limited"), "{}", r.text);
    assert_eq!(stored_events(&t.router).await, 4);
}

#[tokio::test]
async fn a_rest_batch_costs_a_rate_limit_token_per_item() {
    let t = app_with(|c| {
        c.limits.rate_per_sec = 0.001;
        c.limits.burst = 5.0;
    })
    .await;
    let key = make_key(&t.router, "default", &["analyze"]).await;
    let items: Vec<Value> = (0..4).map(|i| json!({"input": format!("{BENIGN} {i}")})).collect();
    // Four items take four of the five tokens.
    let r = post(&t.router, "/api/security/analyze/batch", &key, json!({"items": items})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(stored_events(&t.router).await, 4);
    // One token is left: another batch of four is refused whole, stores nothing, and says when to retry.
    let r = post(&t.router, "/api/security/analyze/batch", &key, json!({"items": items})).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "rate_limited");
    assert!(r.headers.contains_key("retry-after"), "{:?}", r.headers);
    assert_eq!(stored_events(&t.router).await, 4);
}

/// About 30 KB of benign text: analysed inline, not on the blocking pool.
fn thirty_kb(i: usize) -> String {
    format!("{i} {}", "the quarterly report covers sales in the northern region ".repeat(520))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answered_408_stores_nothing() {
    let t = app_with(|c| {
        c.limits.request_timeout_ms = 200;
        c.limits.body_bytes = 8 << 20;
    })
    .await;
    let items: Vec<Value> = (0..60).map(|i| json!({"input": thirty_kb(i)})).collect();
    let r = post(&t.router, "/api/security/analyze/batch", ADMIN, json!({"items": items})).await;
    assert_eq!(r.status, StatusCode::REQUEST_TIMEOUT, "{}", &r.text[..r.text.len().min(300)]);
    // Give a writer that was handed records time to commit them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stored_events(&t.router).await, 0, "events were stored for a request answered 408");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graphql_request_that_runs_out_of_time_stores_only_what_it_answers() {
    let t = app_with(|c| {
        c.limits.request_timeout_ms = 100;
        c.limits.body_bytes = 8 << 20;
    })
    .await;
    // As many analyses as one document may hold, each of its own 30 KB text
    // (3 MB in all): far more than 100 ms of work even on a fast machine.
    let n = 100;
    let fields: Vec<String> = (0..n).map(|i| format!("a{i}: analyzeInput(input: $x{i}) {{ verdict }}")).collect();
    let params: Vec<String> = (0..n).map(|i| format!("$x{i}: String!")).collect();
    let query = format!("query({}) {{ {} }}", params.join(", "), fields.join(" "));
    let variables: serde_json::Map<String, Value> = (0..n).map(|i| (format!("x{i}"), thirty_kb(i).into())).collect();
    let r = post(&t.router, "/graphql", ADMIN, json!({"query": query, "variables": variables})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored = stored_events(&t.router).await;
    match r.status {
        StatusCode::REQUEST_TIMEOUT => assert_eq!(stored, 0, "events were stored for a request answered 408"),
        StatusCode::OK => {
            // Part ran before the deadline; the rest stopped and says so.
            let errors = r.body["errors"].as_array().unwrap_or_else(|| panic!("{}", r.text));
            assert!(errors.iter().all(|e| e["extensions"]["code"] == "timeout"), "{}", r.text);
            assert_eq!(stored as usize, n - errors.len(), "stored events that the answer does not account for");
        }
        other => panic!("{other}: {}", r.text),
    }
    assert!(stored < n as u64, "every analysis ran although the request timed out");
}

/// One raw HTTP/1.1 request head from 127.0.0.1: the status and the body.
async fn raw_head(addr: SocketAddr, head: &str) -> (u16, Value) {
    let mut c = connect_from([127, 0, 0, 1], addr).await;
    c.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut out)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn oversized_request_heads_get_json_errors() {
    let s = serve_with(|_| {}).await;
    let long_path = format!("/api/security/events?q={}", "a".repeat(10_000));
    let (status, body) =
        raw_head(s.addr, &format!("GET {long_path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (414, Some("uri_too_long")), "{body}");
    let big = format!("X-Filler: {}\r\n", "b".repeat(70_000));
    let (status, body) =
        raw_head(s.addr, &format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{big}Connection: close\r\n\r\n")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (431, Some("headers_too_large")), "{body}");
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (status, body) =
        raw_head(s.addr, &format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (431, Some("headers_too_large")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("at most 100"), "{body}");
    // Within the limits, the same routes answer.
    let (status, _) = raw_head(s.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn graphql_depth_and_complexity_follow_the_limits() {
    let q = json!({"query": "{ securityEvents(first: 1) { edges { node { id verdict } } } }"});
    let t = app_with(|_| {}).await;
    let r = post(&t.router, "/graphql", ADMIN, q.clone()).await;
    assert!(r.body["errors"].is_null(), "the defaults allow it: {}", r.text);

    let t = app_with(|c| c.limits.graphql_depth = 3).await;
    let r = post(&t.router, "/graphql", ADMIN, q.clone()).await;
    let msg = r.body["errors"][0]["message"].as_str().unwrap_or_else(|| panic!("{}", r.text)).to_owned();
    assert!(msg.contains("nested too deep"), "{msg}");

    let t = app_with(|c| c.limits.graphql_complexity = 3).await;
    let r = post(&t.router, "/graphql", ADMIN, q).await;
    let msg = r.body["errors"][0]["message"].as_str().unwrap_or_else(|| panic!("{}", r.text)).to_owned();
    assert!(msg.contains("too complex"), "{msg}");
}
