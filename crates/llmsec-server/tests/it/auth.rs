//! Keys, scopes, tenant isolation, limits.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn every_api_route_needs_a_valid_key() {
    let t = app().await;
    for (m, p) in [
        (Method::POST, "/api/security/analyze"),
        (Method::GET, "/api/security/events"),
        (Method::POST, "/graphql"),
        (Method::GET, "/metrics"),
        (Method::GET, "/api/admin/keys"),
        (Method::GET, "/openapi.json"),
    ] {
        let r = send(&t.router, m.clone(), p, None, Some(Body::from("{}"))).await;
        assert_eq!(
            (r.status, r.body["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthorized")),
            "{m} {p}"
        );
        let bad = format!("lsk_{}_{}", "a".repeat(12), "b".repeat(64));
        let r = send(&t.router, m.clone(), p, Some(&bad), Some(Body::from("{}"))).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{m} {p} with an unknown key");
        let r = send(&t.router, m.clone(), p, Some("not-a-key"), Some(Body::from("{}"))).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{m} {p} with garbage");
    }
}

#[tokio::test]
async fn x_api_key_header_works_too() {
    let t = app().await;
    let key = make_key(&t.router, "acme", &["analyze"]).await;
    let req = axum::http::Request::post("/api/security/analyze")
        .header("x-api-key", &key)
        .body(Body::from(json!({"input": "hi"}).to_string()))
        .unwrap();
    let resp = tower::ServiceExt::oneshot(t.router.clone(), req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn scopes_are_enforced() {
    let t = app().await;
    let reader = make_key(&t.router, "acme", &["read"]).await;
    let analyst = make_key(&t.router, "acme", &["analyze"]).await;
    let r = post(&t.router, "/api/security/analyze", &reader, json!({"input": "hi"})).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    assert!(r.body["error"]["message"].as_str().unwrap().contains("analyze"));
    assert_eq!(get(&t.router, "/api/security/events", &analyst).await.status, StatusCode::FORBIDDEN);
    assert_eq!(get(&t.router, "/api/admin/keys", &reader).await.status, StatusCode::FORBIDDEN);
    let r = post(&t.router, "/api/admin/keys", &analyst, json!({"name": "x", "scopes": ["admin"]})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a non-admin key cannot mint keys");
}

#[tokio::test]
async fn keys_are_listed_without_secrets_and_revocation_is_immediate() {
    let t = app().await;
    let key = make_key(&t.router, "acme", &["analyze"]).await;
    let list = get(&t.router, "/api/admin/keys?tenant=acme", ADMIN).await;
    let keys = list.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].get("key").is_none() && keys[0].get("hash").is_none());
    assert!(!list.text.contains(&key[17..]), "the secret never comes back");
    let id = keys[0]["id"].as_str().unwrap();
    assert_eq!(post(&t.router, "/api/security/analyze", &key, json!({"input": "x"})).await.status, StatusCode::OK);
    let r = send(&t.router, Method::DELETE, &format!("/api/admin/keys/{id}"), Some(ADMIN), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        post(&t.router, "/api/security/analyze", &key, json!({"input": "x"})).await.status,
        StatusCode::UNAUTHORIZED
    );
    let again = send(&t.router, Method::DELETE, &format!("/api/admin/keys/{id}"), Some(ADMIN), None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn key_creation_checks_its_fields() {
    let t = app().await;
    for (body, field) in [
        (json!({"name": "x", "scopes": ["analyze", "root"]}), "scopes[1]"),
        (json!({"name": "x", "scopes": []}), "scopes"),
        (json!({"name": "", "scopes": ["read"]}), "name"),
        (json!({"name": "x", "scopes": ["read"], "tenant": "a b"}), "tenant"),
        (json!({"name": "x", "scopes": ["read"], "rate_per_sec": -1}), "rate_per_sec"),
        (json!({"scopes": ["read"]}), "name"),
    ] {
        let r = post(&t.router, "/api/admin/keys", ADMIN, body.clone()).await;
        assert_eq!(
            (r.status, r.body["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{body}: {}",
            r.text
        );
    }
}

#[tokio::test]
async fn tenant_a_reads_nothing_of_tenant_b() {
    let t = app().await;
    let a = make_key(&t.router, "tenant-a", &["analyze", "read", "admin"]).await;
    let b = make_key(&t.router, "tenant-b", &["analyze", "read", "admin"]).await;
    post(&t.router, "/api/security/analyze", &a, json!({"input": ATTACK, "user_id": "shared-user"})).await;
    post(&t.router, "/api/security/analyze", &b, json!({"input": BENIGN, "user_id": "shared-user"})).await;

    // REST events.
    let ev_b = get(&t.router, "/api/security/events?user_id=shared-user", &b).await;
    assert_eq!(ev_b.body["total_count"], 1);
    assert_eq!(ev_b.body["events"][0]["verdict"], "allow", "b sees only its own benign event");
    // A cursor made from a's events does not open b's view onto a's.
    let ev_a = get(&t.router, "/api/security/events", &a).await;
    assert_eq!(ev_a.body["total_count"], 1);
    // GraphQL events.
    let q = json!({"query": "{ securityEvents { totalCount edges { node { verdict userId } } } }"});
    let g = post(&t.router, "/graphql", &b, q).await;
    assert_eq!(g.body["data"]["securityEvents"]["totalCount"], 1, "{}", g.text);
    assert_eq!(g.body["data"]["securityEvents"]["edges"][0]["node"]["verdict"], "allow");
    // Erasure by b leaves a's events alone.
    let r = send(&t.router, Method::DELETE, "/api/security/users/shared-user/events", Some(&b), None).await;
    assert_eq!(r.body["deleted"], 1);
    assert_eq!(get(&t.router, "/api/security/events", &a).await.body["total_count"], 1);
    // Webhooks and deliveries.
    let w = post(&t.router, "/api/webhooks", &a, json!({"url": "http://127.0.0.1:9/x", "secret": "0123456789abcdef"}))
        .await;
    assert_eq!(w.status, StatusCode::CREATED, "{}", w.text);
    assert_eq!(get(&t.router, "/api/webhooks", &b).await.body["webhooks"].as_array().unwrap().len(), 0);
    let id = w.body["id"].as_str().unwrap();
    let del = send(&t.router, Method::DELETE, &format!("/api/webhooks/{id}"), Some(&b), None).await;
    assert_eq!(del.status, StatusCode::NOT_FOUND, "b cannot delete a's webhook");
    post(&t.router, "/api/security/analyze", &a, json!({"input": "x"})).await;
    let d_b = get(&t.router, "/api/webhooks/deliveries", &b).await;
    assert_eq!(d_b.body["deliveries"].as_array().unwrap().len(), 0);
    let d_a = get(&t.router, "/api/webhooks/deliveries", &a).await;
    assert!(!d_a.body["deliveries"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let t = app_with(|c| c.limits.body_bytes = 4096).await;
    let key = make_key(&t.router, "acme", &["analyze"]).await;
    let r = post(&t.router, "/api/security/analyze", &key, json!({"input": "a".repeat(5000)})).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")),
        "{}",
        r.text
    );
    let ok = post(&t.router, "/api/security/analyze", &key, json!({"input": "a".repeat(3000)})).await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let t = app_with(|c| {
        c.limits.rate_per_sec = 0.5;
        c.limits.burst = 2.0;
    })
    .await;
    let key = make_key(&t.router, "acme", &["analyze"]).await;
    for _ in 0..2 {
        assert_eq!(post(&t.router, "/api/security/analyze", &key, json!({"input": "x"})).await.status, StatusCode::OK);
    }
    let r = post(&t.router, "/api/security/analyze", &key, json!({"input": "x"})).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["error"]["code"], "rate_limited");
    let after: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&after), "{after}");
    // Another key has its own bucket; a key may carry its own, higher rate.
    let fast = make_key_with(
        &t.router,
        json!({"tenant": "acme", "name": "fast", "scopes": ["analyze"], "rate_per_sec": 1000}),
    )
    .await;
    for _ in 0..10 {
        assert_eq!(post(&t.router, "/api/security/analyze", &fast, json!({"input": "x"})).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn slow_requests_time_out_with_408() {
    // A 50 ms limit against a 900 KiB analysis: the engine takes longer than that.
    let t = app_with(|c| {
        c.limits.request_timeout_ms = 50;
        c.limits.body_bytes = 4 << 20;
    })
    .await;
    // The env admin key needs no store lookup, so only the analysis is timed.
    let big = "please ignore the noise ".repeat(38_000);
    let r = post(&t.router, "/api/security/analyze", ADMIN, json!({"input": big})).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (StatusCode::REQUEST_TIMEOUT, Some("timeout")),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn the_connection_cap_holds_extra_clients_back() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = config();
    c.limits.max_connections = 1;
    let server = llmsec_server::Server::start(c, Some(ADMIN.into())).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));
    let request = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    // The first client holds the only connection, idle.
    let mut first = tokio::net::TcpStream::connect(addr).await.unwrap();
    first.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 256];
    let n = first.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // The second is accepted by the kernel but not served while the first stays open.
    let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
    second.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let waited = tokio::time::timeout(std::time::Duration::from_millis(500), second.read_to_end(&mut out)).await;
    assert!(waited.is_err(), "served past the cap: {}", String::from_utf8_lossy(&out));
    // Once the first goes, the second is served.
    drop(first);
    tokio::time::timeout(std::time::Duration::from_secs(10), second.read_to_end(&mut out)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&out));
    // Graceful stop returns.
    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), serving).await.unwrap().unwrap().unwrap();
}
