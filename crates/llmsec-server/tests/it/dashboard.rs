//! The dashboard's sign-in sessions over real HTTP: the cookie's flags,
//! the CSRF token on mutations, expiry, sign-out, revocation, tenant
//! confinement and scopes exactly as the key's; the embedded pages'
//! headers; the dry run that stores nothing.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use llmsec_server::config::ServerConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::*;

struct Dash {
    addr: SocketAddr,
    base: String,
    client: reqwest::Client,
}

async fn serve_with(f: impl FnOnce(&mut ServerConfig)) -> Dash {
    let mut c = config();
    f(&mut c);
    let server = llmsec_server::Server::start(c, Some(ADMIN.into())).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.serve(listener, std::future::pending()));
    Dash { addr, base: format!("http://{addr}"), client: reqwest::Client::new() }
}

/// A signed-in browser: its cookie and CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
    set_cookie: String,
    body: Value,
}

impl Dash {
    async fn key(&self, tenant: &str, scopes: &[&str]) -> String {
        let r = self
            .admin(
                reqwest::Method::POST,
                "/api/admin/keys",
                Some(json!({"tenant": tenant, "name": "t", "scopes": scopes})),
            )
            .await;
        assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
        r.1["key"].as_str().unwrap().to_owned()
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    async fn sign_in_raw(&self, key: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self.client.post(format!("{}/dashboard/session", self.base)).json(&json!({"key": key}));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    async fn sign_in(&self, key: &str) -> Browser {
        let r = self.sign_in_raw(key, &[]).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        let body: Value = r.json().await.unwrap();
        Browser { cookie, csrf: body["csrf_token"].as_str().unwrap().to_owned(), set_cookie, body }
    }

    async fn events(&self, b: &Browser) -> (StatusCode, Value) {
        self.call(b, reqwest::Method::GET, "/api/security/events", None, None).await
    }

    /// A request with the browser's cookie and, when `csrf`, its token.
    async fn call(
        &self,
        b: &Browser,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        csrf: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base)).header("cookie", &b.cookie);
        if let Some(t) = csrf {
            req = req.header("x-csrf-token", t);
        }
        if let Some(v) = body {
            req = req.json(&v);
        }
        let r = req.send().await.unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn sign_in_sets_an_http_only_strict_cookie_that_is_not_the_key() {
    let d = serve_with(|_| {}).await;
    let key = d.key("acme", &["read", "analyze", "triage"]).await;
    let b = d.sign_in(&key).await;
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(b.set_cookie.contains(flag), "{flag} missing: {}", b.set_cookie);
    }
    assert!(!b.set_cookie.contains("Secure"), "plain HTTP: no Secure flag");
    let value = b.cookie.strip_prefix("llmsec_session=").unwrap();
    assert_eq!(value.len(), 64);
    assert!(!b.set_cookie.contains(&key) && !key.contains(value), "the cookie is not the key");
    assert!(!b.body.to_string().contains(&key), "nor is the key echoed");
    assert_eq!(b.body["tenant"], "acme");
    assert_eq!(b.body["scopes"], json!(["analyze", "read", "triage"]));

    // Over TLS (as a TLS-ending proxy says) the cookie is Secure.
    let r = d.sign_in_raw(&key, &[("x-forwarded-proto", "https")]).await;
    assert!(r.headers()["set-cookie"].to_str().unwrap().ends_with("; Secure"));

    // The cookie alone authenticates reads, as the key would.
    let (s, v) = d.call(&b, reqwest::Method::GET, "/api/security/events", None, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = d.call(&b, reqwest::Method::GET, "/dashboard/session", None, None).await;
    assert_eq!((s, v["signed_in"].clone(), v["csrf_token"].clone()), (StatusCode::OK, json!(true), json!(b.csrf)));

    // Bad keys are refused naming the field; keys that cannot read are refused.
    let r = d.sign_in_raw("lsk_nope", &[]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["field"], "key");
    let ingest = d.key("acme", &["ingest"]).await;
    let r = d.sign_in_raw(&ingest, &[]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A made-up cookie is a 401 on the API and "signed out" on the session route.
    let fake = Browser {
        cookie: format!("llmsec_session={}", "0".repeat(64)),
        csrf: String::new(),
        set_cookie: String::new(),
        body: Value::Null,
    };
    assert_eq!(
        d.call(&fake, reqwest::Method::GET, "/api/security/events", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(d.call(&fake, reqwest::Method::GET, "/dashboard/session", None, None).await.1["signed_in"], false);
}

#[tokio::test]
async fn cookie_mutations_need_the_csrf_header() {
    let d = serve_with(|_| {}).await;
    let key = d.key("acme", &["read", "analyze"]).await;
    let b = d.sign_in(&key).await;
    let body = Some(json!({"input": ATTACK}));
    for token in [None, Some("wrong")] {
        let (s, v) = d.call(&b, reqwest::Method::POST, "/api/security/analyze", body.clone(), token).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        assert_eq!(v["error"]["header"], "x-csrf-token", "{v}");
        assert_eq!(v["error"]["code"], "csrf_token");
    }
    let (s, v) = d.call(&b, reqwest::Method::POST, "/api/security/analyze", body.clone(), Some(&b.csrf)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["verdict"], "block");
    // GraphQL over POST is a mutating method too.
    let q = Some(json!({"query": "{ __typename }"}));
    assert_eq!(d.call(&b, reqwest::Method::POST, "/graphql", q.clone(), None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(d.call(&b, reqwest::Method::POST, "/graphql", q, Some(&b.csrf)).await.0, StatusCode::OK);
    // Another session's token is not this one's.
    let other = d.sign_in(&key).await;
    assert_eq!(
        d.call(&b, reqwest::Method::POST, "/api/security/analyze", body, Some(&other.csrf)).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_read_only_session_cannot_mutate_and_sees_only_its_tenant() {
    let d = serve_with(|_| {}).await;
    let reader = d.key("acme", &["read"]).await;
    let other = d.key("globex", &["read", "analyze"]).await;
    let b = d.sign_in(&reader).await;
    // globex's event is not acme's.
    let g = d.sign_in(&other).await;
    let (s, _) = d
        .call(
            &g,
            reqwest::Method::POST,
            "/api/security/analyze",
            Some(json!({"input": ATTACK, "user_id": "gx"})),
            Some(&g.csrf),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = d.call(&b, reqwest::Method::GET, "/api/security/events", None, None).await;
    assert_eq!(v["total_count"], 0, "{v}");
    let (_, v) = d.call(&g, reqwest::Method::GET, "/api/security/events", None, None).await;
    assert_eq!(v["total_count"], 1, "{v}");

    let ack = Some(json!({"acknowledged_by": "me"}));
    let (s, v) = d.call(&b, reqwest::Method::POST, "/api/v1/anomalies/x/acknowledge", ack, Some(&b.csrf)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("triage"), "{v}");
    let (s, _) = d
        .call(&b, reqwest::Method::POST, "/api/security/analyze/dry-run", Some(json!({"input": "hi"})), Some(&b.csrf))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) =
        d.call(&b, reqwest::Method::PATCH, "/api/v1/detectors/x", Some(json!({"enabled": false})), Some(&b.csrf)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Admin routes answer 403 as they would for the key.
    let (s, _) = d.call(&b, reqwest::Method::GET, "/api/admin/keys", None, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn sessions_expire_when_idle_and_at_the_absolute_limit() {
    let d = serve_with(|c| {
        c.dashboard.idle_timeout_ms = 600;
        c.dashboard.absolute_timeout_ms = 1_500;
    })
    .await;
    let key = d.key("acme", &["read"]).await;
    let idle = d.sign_in(&key).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(d.events(&idle).await.0, StatusCode::UNAUTHORIZED, "idle past the limit");

    let busy = d.sign_in(&key).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(d.events(&busy).await.0, StatusCode::OK, "use keeps it open");
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (s, v) = d.events(&busy).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "past the absolute limit, used or not");
    assert!(v["error"]["message"].as_str().unwrap().contains("sign in again"), "{v}");
}

#[tokio::test]
async fn sign_out_needs_the_token_and_ends_the_session() {
    let d = serve_with(|_| {}).await;
    let key = d.key("acme", &["read"]).await;
    let b = d.sign_in(&key).await;
    let (s, v) = d.call(&b, reqwest::Method::DELETE, "/dashboard/session", None, None).await;
    assert_eq!((s, v["error"]["header"].clone()), (StatusCode::FORBIDDEN, json!("x-csrf-token")));
    assert_eq!(d.call(&b, reqwest::Method::GET, "/api/security/events", None, None).await.0, StatusCode::OK);
    let r = d
        .client
        .delete(format!("{}/dashboard/session", d.base))
        .header("cookie", &b.cookie)
        .header("x-csrf-token", &b.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(d.call(&b, reqwest::Method::GET, "/api/security/events", None, None).await.0, StatusCode::UNAUTHORIZED);
}

fn ws_request(
    addr: SocketAddr,
    cookie: &str,
    origin: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = format!("ws://{addr}/graphql/ws").into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    req.headers_mut().insert("origin", origin.parse().unwrap());
    req
}

#[tokio::test]
async fn revoking_the_key_ends_its_sessions_and_their_websockets() {
    let d = serve_with(|_| {}).await;
    let key = d.key("acme", &["read"]).await;
    let key_id = &key[4..16];
    let b = d.sign_in(&key).await;

    // A WebSocket from this server's own page uses the session...
    let (mut ws, _) =
        tokio_tungstenite::connect_async(ws_request(d.addr, &b.cookie, &format!("http://{}", d.addr))).await.unwrap();
    ws.send(Message::text(json!({"type": "connection_init"}).to_string())).await.unwrap();
    assert!(ws.next().await.unwrap().unwrap().to_text().unwrap().contains("connection_ack"));
    // ...one from another site's page does not.
    let (mut foreign, _) =
        tokio_tungstenite::connect_async(ws_request(d.addr, &b.cookie, "http://evil.example")).await.unwrap();
    foreign.send(Message::text(json!({"type": "connection_init"}).to_string())).await.unwrap();
    let refused = foreign.next().await.unwrap().unwrap();
    assert!(!refused.to_text().unwrap_or("").contains("connection_ack"), "{refused:?}");

    let (s, _) = d.admin(reqwest::Method::DELETE, &format!("/api/admin/keys/{key_id}"), None).await;
    assert!(s.is_success(), "{s}");
    assert_eq!(d.call(&b, reqwest::Method::GET, "/api/security/events", None, None).await.0, StatusCode::UNAUTHORIZED);
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(closed, Some(4403));
}

#[tokio::test]
async fn the_pages_are_embedded_with_a_strict_policy() {
    let d = serve_with(|_| {}).await;
    let r = d.client.get(format!("{}/", d.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline") && csp.contains("frame-ancestors 'none'")
    );
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let tag = r.headers()["etag"].clone();
    let html = r.text().await.unwrap();
    assert!(html.contains("/dashboard/assets/app.js"));
    let again = d.client.get(format!("{}/", d.base)).header("if-none-match", tag).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let js = d.client.get(format!("{}/dashboard/assets/app.js", d.base)).send().await.unwrap();
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
    let page = d.client.get(format!("{}/dashboard/assets/quarantine.js", d.base)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains("/api/v1/quarantine") && page.contains("/release") && page.contains("/discard"));
    assert!(html.contains("#/quarantine"), "the Quarantine page is in the navigation");
    let missing = d.client.get(format!("{}/dashboard/assets/nope.js", d.base)).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_dry_run_answers_without_storing_anything() {
    let d = serve_with(|_| {}).await;
    let (s, v) = d.admin(reqwest::Method::POST, "/api/security/analyze/dry-run", Some(json!({"input": ATTACK}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["verdict"], "block");
    assert!(v.get("event_id").is_none());
    assert!(!v["threats"].as_array().unwrap().is_empty());
    let (_, v) = d.admin(reqwest::Method::GET, "/api/security/events", None).await;
    assert_eq!(v["total_count"], 0, "nothing stored: {v}");
    let anonymous = d
        .client
        .post(format!("{}/api/security/analyze/dry-run", d.base))
        .json(&json!({"input": ATTACK}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "the dry run needs a key like every API route");
    let (s, v) = d
        .admin(reqwest::Method::POST, "/api/security/analyze/dry-run", Some(json!({"input": "x", "user_id": "\u{0}"})))
        .await;
    assert_eq!((s, v["error"]["field"].clone()), (StatusCode::BAD_REQUEST, json!("user_id")));
}

#[tokio::test]
async fn an_anomalys_sample_events_are_read_back_for_its_tenant_only() {
    let dir = temp_dir();
    let detectors = dir.join("detectors.yaml");
    std::fs::write(
        &detectors,
        "detectors:\n  - id: pi\n    type: ml\n    model: prompt-injection-v2\n    threshold: 0.5\n",
    )
    .unwrap();
    let d = serve_with(|c| c.sentinel.detectors = Some(detectors.clone())).await;
    let acme = d.key("acme", &["ingest", "read"]).await;
    let globex = d.key("globex", &["read"]).await;
    let event = json!({
        "event_id": "sample-1", "timestamp": chrono::Utc::now().to_rfc3339(), "event_type": "llm.request",
        "application_id": "chatbot", "data": {"model": "gpt-4o", "prompt": ATTACK, "latency_ms": 300.0},
        "metadata": {"user_id": "mallory"}
    });
    let r = d
        .client
        .post(format!("{}/api/v1/telemetry/events", d.base))
        .bearer_auth(&acme)
        .json(&event)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let get = |key: &str, path: String| {
        let req = d.client.get(format!("{}{path}", d.base)).bearer_auth(key);
        async move {
            let r = req.send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let id = eventually(15, || async {
        let (_, v) = get(&acme, "/api/v1/anomalies".into()).await;
        v["anomalies"][0]["id"].as_str().map(str::to_owned)
    })
    .await;
    let (s, v) = get(&acme, format!("/api/v1/anomalies/{id}/events")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["events"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["events"][0]["event_id"], "sample-1");
    assert_eq!(v["events"][0]["metadata"]["user_id"], "mallory");
    let (s, _) = get(&globex, format!("/api/v1/anomalies/{id}/events")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another tenant's anomaly is not found");
}
