//! Scopes and tenant isolation: what only `operator` may do, what a
//! tenant's `admin` and `triage` keys may do, another tenant's ids answered
//! 404 over REST and GraphQL, subscriptions over /graphql/ws that see only
//! their own tenant, and detector changes that stay in their tenant (and
//! survive a restart) without touching the detectors file.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::*;

/// The detectors file the Sentinel tests here run with.
const DETECTORS: &str = "detectors:\n  - id: pi\n    name: Prompt injection\n    type: ml\n    threshold: 0.5\n";

fn detectors_file(yaml: &str) -> std::path::PathBuf {
    let path = temp_dir().join("detectors.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// A telemetry event carrying a prompt injection by `user`.
fn attack(id: &str, user: &str) -> Value {
    json!({
        "event_id": id,
        "timestamp": "2026-11-26T10:00:00Z",
        "event_type": "llm.request",
        "application_id": "chatbot",
        "data": {"model": "gpt-4o", "prompt": ATTACK},
        "metadata": {"user_id": user},
    })
}

async fn gql(router: &axum::Router, key: &str, query: &str, variables: Value) -> Value {
    let r = post(router, "/graphql", key, json!({"query": query, "variables": variables})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

/// Ingests an attack by `user` and waits for the anomaly Sentinel opens.
async fn anomaly_of(router: &axum::Router, key: &str, event_id: &str, user: &str) -> Value {
    let r = post(router, "/api/v1/telemetry/events", key, attack(event_id, user)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    eventually(10, || {
        let (router, key, user) = (router.clone(), key.to_owned(), user.to_owned());
        async move {
            let r = get(&router, "/api/v1/anomalies", &key).await;
            r.body["anomalies"].as_array()?.iter().find(|a| a["affected_entity"]["id"] == user.as_str()).cloned()
        }
    })
    .await
}

fn forbidden_naming(r: &Resp, scope: &str) {
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{}", r.text);
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("`{scope}`")), "{message}");
}

#[tokio::test]
async fn a_tenant_admin_gets_403_naming_operator_for_cross_tenant_work() {
    let t = app().await;
    let admin = make_key(&t.router, "acme", &["admin"]).await;
    make_key(&t.router, "globex", &["read"]).await;

    // Keys for another tenant, existing or new (which would make the tenant).
    for tenant in ["globex", "newco"] {
        let r = post(&t.router, "/api/admin/keys", &admin, json!({"tenant": tenant, "name": "x", "scopes": ["read"]}))
            .await;
        forbidden_naming(&r, "operator");
    }
    forbidden_naming(&get(&t.router, "/api/admin/audit", &admin).await, "operator");
    forbidden_naming(&get(&t.router, "/api/admin/keys?tenant=globex", &admin).await, "operator");
    // An operator key, even in its own tenant.
    let r = post(&t.router, "/api/admin/keys", &admin, json!({"name": "x", "scopes": ["operator"]})).await;
    forbidden_naming(&r, "operator");
    // Another tenant's webhooks.
    let hook = json!({"tenant": "globex", "url": "http://127.0.0.1:9/x", "secret": "0123456789abcdef"});
    forbidden_naming(&post(&t.router, "/api/webhooks", &admin, hook).await, "operator");
    forbidden_naming(&get(&t.router, "/api/webhooks?tenant=globex", &admin).await, "operator");
    let r = send(&t.router, Method::DELETE, "/api/webhooks/wh_x?tenant=globex", Some(&admin), None).await;
    forbidden_naming(&r, "operator");

    // Its own tenant it manages: keys (listed for its tenant only), webhooks.
    let r = post(&t.router, "/api/admin/keys", &admin, json!({"name": "ci", "scopes": ["analyze", "admin"]})).await;
    assert_eq!((r.status, r.body["tenant"].as_str()), (StatusCode::CREATED, Some("acme")), "{}", r.text);
    let made = r.body["id"].as_str().unwrap().to_owned();
    let keys = get(&t.router, "/api/admin/keys", &admin).await;
    let tenants: Vec<&str> =
        keys.body["keys"].as_array().unwrap().iter().map(|k| k["tenant"].as_str().unwrap()).collect();
    assert_eq!(tenants, ["acme", "acme"], "{}", keys.text);
    let hook = json!({"url": "http://127.0.0.1:9/x", "secret": "0123456789abcdef"});
    assert_eq!(post(&t.router, "/api/webhooks", &admin, hook).await.status, StatusCode::CREATED);
    let r = send(&t.router, Method::DELETE, &format!("/api/admin/keys/{made}"), Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // A key without admin is refused naming admin, not operator.
    let reader = make_key(&t.router, "acme", &["read"]).await;
    forbidden_naming(
        &post(&t.router, "/api/admin/keys", &reader, json!({"name": "x", "scopes": ["read"]})).await,
        "admin",
    );

    // The operator does all of it; every tenant's keys are listed without `tenant`.
    let r =
        post(&t.router, "/api/admin/keys", ADMIN, json!({"tenant": "newco", "name": "x", "scopes": ["read"]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(get(&t.router, "/api/admin/audit", ADMIN).await.status, StatusCode::OK);
    let all = get(&t.router, "/api/admin/keys", ADMIN).await;
    for tenant in ["acme", "globex", "newco"] {
        assert!(all.body["keys"].as_array().unwrap().iter().any(|k| k["tenant"] == tenant), "{tenant}: {}", all.text);
    }

    // An operator key made by the operator: cross-tenant powers, no tenant data without its scopes.
    let r = post(&t.router, "/api/admin/keys", ADMIN, json!({"tenant": "acme", "name": "ops", "scopes": ["operator"]}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let (operator, operator_id) =
        (r.body["key"].as_str().unwrap().to_owned(), r.body["id"].as_str().unwrap().to_owned());
    let r = post(&t.router, "/api/admin/keys", &operator, json!({"tenant": "globex", "name": "x", "scopes": ["read"]}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(get(&t.router, "/api/admin/audit", &operator).await.status, StatusCode::OK);
    forbidden_naming(&get(&t.router, "/api/security/events", &operator).await, "read");
    // A tenant admin cannot revoke an operator key, even one of its own tenant.
    let r = send(&t.router, Method::DELETE, &format!("/api/admin/keys/{operator_id}"), Some(&admin), None).await;
    forbidden_naming(&r, "operator");
}

#[tokio::test]
async fn keys_stored_with_admin_before_the_split_are_tenant_admins() {
    let t = app().await;
    // The scope list such a key has in the store: written as names, read back as a tenant admin.
    let old = make_key(&t.router, "acme", &["analyze", "ingest", "read", "admin"]).await;
    let r = post(&t.router, "/api/admin/keys", &old, json!({"name": "x", "scopes": ["read"]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r =
        post(&t.router, "/api/admin/keys", &old, json!({"tenant": "globex", "name": "x", "scopes": ["read"]})).await;
    forbidden_naming(&r, "operator");
    forbidden_naming(&get(&t.router, "/api/admin/audit", &old).await, "operator");
}

#[tokio::test]
async fn triage_acknowledges_resolves_and_suppresses_and_manages_nothing_else() {
    let path = detectors_file(DETECTORS);
    let t = app_with(|c| c.sentinel.detectors = Some(path.clone())).await;
    let ingest = make_key(&t.router, "acme", &["ingest", "read"]).await;
    let triage = make_key(&t.router, "acme", &["triage", "read"]).await;
    let reader = make_key(&t.router, "acme", &["read"]).await;
    let first = anomaly_of(&t.router, &ingest, "e1", "mallory").await["id"].as_str().unwrap().to_owned();
    let second = anomaly_of(&t.router, &ingest, "e2", "trudy").await["id"].as_str().unwrap().to_owned();

    let ack = json!({"acknowledged_by": "soc"});
    forbidden_naming(
        &post(&t.router, &format!("/api/v1/anomalies/{first}/acknowledge"), &reader, ack.clone()).await,
        "triage",
    );
    let r = post(&t.router, &format!("/api/v1/anomalies/{first}/acknowledge"), &triage, ack).await;
    assert_eq!((r.status, r.body["status"].as_str()), (StatusCode::OK, Some("acknowledged")), "{}", r.text);
    let r = post(&t.router, &format!("/api/v1/anomalies/{first}/resolve"), &triage, json!({})).await;
    assert_eq!(r.body["status"], "resolved", "{}", r.text);
    let r = post(&t.router, &format!("/api/v1/anomalies/{second}/suppress"), &triage, json!({})).await;
    assert_eq!(r.body["status"], "suppressed", "{}", r.text);

    // GraphQL acknowledgeAnomaly is triage too; a tenant admin may triage as well.
    let third = anomaly_of(&t.router, &ingest, "e3", "oscar").await["id"].as_str().unwrap().to_owned();
    let m = "mutation($id: ID!) { acknowledgeAnomaly(id: $id, acknowledgedBy: \"soc\") { status } }";
    let r = gql(&t.router, &reader, m, json!({"id": third})).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "forbidden", "{r}");
    let r = gql(&t.router, &triage, m, json!({"id": third})).await;
    assert_eq!(r["data"]["acknowledgeAnomaly"]["status"], "ACKNOWLEDGED", "{r}");
    let admin = make_key(&t.router, "acme", &["admin"]).await;
    let r = post(&t.router, &format!("/api/v1/anomalies/{third}/resolve"), &admin, json!({})).await;
    assert_eq!(r.body["status"], "resolved", "{}", r.text);

    // Triage changes no detector, key or webhook.
    let r =
        gql(&t.router, &triage, "mutation { updateDetector(id: \"pi\", config: {enabled: false}) { id } }", json!({}))
            .await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "forbidden", "{r}");
    assert!(r["errors"][0]["message"].as_str().unwrap().contains("`admin`"), "{r}");
    forbidden_naming(
        &post(&t.router, "/api/admin/keys", &triage, json!({"name": "x", "scopes": ["read"]})).await,
        "admin",
    );
    let hook = json!({"url": "http://127.0.0.1:9/x", "secret": "0123456789abcdef"});
    forbidden_naming(&post(&t.router, "/api/webhooks", &triage, hook).await, "admin");
}

#[tokio::test]
async fn another_tenants_ids_are_not_found_over_rest_and_graphql() {
    let path = detectors_file(DETECTORS);
    let t = app_with(|c| {
        c.sentinel.detectors = Some(path.clone());
        c.delivery.max_attempts = 1;
    })
    .await;
    let scopes = ["analyze", "ingest", "read", "admin"];
    let a = make_key(&t.router, "acme", &scopes).await;
    let b = make_key(&t.router, "globex", &scopes).await;
    let not_found = |r: &Resp, what: &str| {
        assert_eq!(
            (r.status, r.body["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{what}: {}",
            r.text
        );
    };

    // Anomalies: read, acknowledge, resolve, suppress.
    let id = anomaly_of(&t.router, &a, "e1", "mallory").await["id"].as_str().unwrap().to_owned();
    not_found(&get(&t.router, &format!("/api/v1/anomalies/{id}"), &b).await, "anomaly");
    let ack = json!({"acknowledged_by": "x"});
    not_found(&post(&t.router, &format!("/api/v1/anomalies/{id}/acknowledge"), &b, ack).await, "acknowledge");
    not_found(&post(&t.router, &format!("/api/v1/anomalies/{id}/resolve"), &b, json!({})).await, "resolve");
    not_found(&post(&t.router, &format!("/api/v1/anomalies/{id}/suppress"), &b, json!({})).await, "suppress");
    let r = gql(&t.router, &b, "query($id: ID!) { anomaly(id: $id) { id } }", json!({"id": id})).await;
    assert_eq!(r["data"]["anomaly"], Value::Null, "{r}");
    let m = "mutation($id: ID!) { acknowledgeAnomaly(id: $id, acknowledgedBy: \"x\") { status } }";
    let r = gql(&t.router, &b, m, json!({"id": id})).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "not_found", "{r}");
    assert_eq!(get(&t.router, &format!("/api/v1/anomalies/{id}"), &a).await.body["status"], "active", "untouched");

    // Webhooks, and their dead deliveries.
    let hook = json!({"url": "http://127.0.0.1:9/x", "secret": "0123456789abcdef", "events": ["analysis.completed"]});
    let w = post(&t.router, "/api/webhooks", &a, hook).await;
    let hook_id = w.body["id"].as_str().unwrap().to_owned();
    not_found(&send(&t.router, Method::DELETE, &format!("/api/webhooks/{hook_id}"), Some(&b), None).await, "webhook");
    post(&t.router, "/api/security/analyze", &a, json!({"input": BENIGN})).await;
    let dead = eventually(10, || {
        let (router, a) = (t.router.clone(), a.clone());
        async move {
            let r = get(&router, "/api/webhooks/deliveries?status=dead", &a).await;
            r.body["deliveries"].as_array()?.first()?["id"].as_str().map(str::to_owned)
        }
    })
    .await;
    let path = format!("/api/webhooks/deliveries/{dead}/redeliver");
    not_found(&post(&t.router, &path, &b, json!({})).await, "delivery");
    assert!(get(&t.router, "/api/webhooks/deliveries", &b).await.body["deliveries"].as_array().unwrap().is_empty());
    assert_eq!(post(&t.router, &path, &a, json!({})).await.status, StatusCode::OK, "a's own redelivery works");

    // Keys.
    let keys = get(&t.router, "/api/admin/keys", &a).await;
    let key_id = keys.body["keys"][0]["id"].as_str().unwrap().to_owned();
    not_found(&send(&t.router, Method::DELETE, &format!("/api/admin/keys/{key_id}"), Some(&b), None).await, "key");
    assert_eq!(get(&t.router, "/api/security/events", &a).await.status, StatusCode::OK, "a's key still works");

    // Events: erasure by user id stays in the caller's tenant.
    post(&t.router, "/api/security/analyze", &a, json!({"input": BENIGN, "user_id": "shared"})).await;
    let r = send(&t.router, Method::DELETE, "/api/security/users/shared/events", Some(&b), None).await;
    assert_eq!(r.body["deleted"], 0, "{}", r.text);
    assert_eq!(get(&t.router, "/api/security/events?user_id=shared", &a).await.body["total_count"], 1);

    // Detectors: one a made for itself is no detector of b's.
    let make = "mutation { updateDetector(id: \"acme-only\", config: {type: \"ml\", config: {threshold: 0.9}}) { id enabled } }";
    let r = gql(&t.router, &a, make, json!({})).await;
    assert_eq!(r["data"]["updateDetector"], json!({"id": "acme-only", "enabled": true}), "{r}");
    let r = gql(
        &t.router,
        &b,
        "mutation { updateDetector(id: \"acme-only\", config: {enabled: false}) { id } }",
        json!({}),
    )
    .await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "not_found", "{r}");
    let data = json!([attack("t1", "x")]);
    let test = "mutation($d: JSON!) { testDetector(id: \"acme-only\", testData: $d) { eventsProcessed } }";
    let r = gql(&t.router, &b, test, json!({"d": data})).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "not_found", "{r}");
    assert_eq!(gql(&t.router, &a, test, json!({"d": data})).await["data"]["testDetector"]["eventsProcessed"], 1);
    let ids = |r: Value| -> Vec<String> {
        r["data"]["detectors"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(ids(gql(&t.router, &a, "{ detectors { id } }", json!({})).await), ["pi", "acme-only"]);
    assert_eq!(ids(gql(&t.router, &b, "{ detectors { id } }", json!({})).await), ["pi"]);
}

/// A GraphQL-over-WebSocket client (graphql-transport-ws) on `addr`,
/// keyed in the upgrade request's header or in `connection_init`.
async fn subscriber(
    addr: std::net::SocketAddr,
    key: &str,
    in_header: bool,
    query: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut req = format!("ws://{addr}/graphql/ws").into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    let mut init = json!({"type": "connection_init"});
    if in_header {
        req.headers_mut().insert("authorization", format!("Bearer {key}").parse().unwrap());
    } else {
        init["payload"] = json!({"apiKey": key});
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::text(init.to_string())).await.unwrap();
    let ack = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
    assert!(ack.to_text().unwrap().contains("connection_ack"), "{ack}");
    let sub = json!({"id": "1", "type": "subscribe", "payload": {"query": query}});
    ws.send(Message::text(sub.to_string())).await.unwrap();
    ws
}

/// The next `next` payload's data on `ws`, within 5 s.
async fn next_data(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
        let v: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        if v["type"] == "next" {
            return v["payload"]["data"].clone();
        }
        assert_ne!(v["type"], "error", "{v}");
    }
}

#[tokio::test]
async fn subscriptions_over_websocket_see_only_their_own_tenant() {
    let path = detectors_file(DETECTORS);
    let t = app_with(|c| c.sentinel.detectors = Some(path.clone())).await;
    let scopes = ["analyze", "ingest", "read"];
    let a = make_key(&t.router, "acme", &scopes).await;
    let b = make_key(&t.router, "globex", &scopes).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = t.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let threats = "subscription { threatDetected { userId } }";
    let anomalies = "subscription { anomalyDetected { affectedEntity { id } } }";
    let mut a_threats = subscriber(addr, &a, true, threats).await;
    let mut b_threats = subscriber(addr, &b, false, threats).await;
    let mut a_anomalies = subscriber(addr, &a, false, anomalies).await;
    let mut b_anomalies = subscriber(addr, &b, true, anomalies).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // b's activity first: a's subscribers' first message must still be a's own.
    post(&t.router, "/api/security/analyze", &b, json!({"input": ATTACK, "user_id": "b-user"})).await;
    post(&t.router, "/api/v1/telemetry/events", &b, attack("b1", "b-user")).await;
    post(&t.router, "/api/security/analyze", &a, json!({"input": ATTACK, "user_id": "a-user"})).await;
    post(&t.router, "/api/v1/telemetry/events", &a, attack("a1", "a-user")).await;

    assert_eq!(next_data(&mut a_threats).await["threatDetected"]["userId"], "a-user");
    assert_eq!(next_data(&mut b_threats).await["threatDetected"]["userId"], "b-user");
    assert_eq!(next_data(&mut a_anomalies).await["anomalyDetected"]["affectedEntity"]["id"], "a-user");
    assert_eq!(next_data(&mut b_anomalies).await["anomalyDetected"]["affectedEntity"]["id"], "b-user");
    // And nothing further: the other tenant's threat and anomaly never arrive.
    for ws in [&mut a_threats, &mut b_threats, &mut a_anomalies, &mut b_anomalies] {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
        while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
            assert!(!msg.is_text(), "another tenant's data was pushed: {msg}");
        }
    }
}

#[tokio::test]
async fn update_detector_changes_the_callers_tenant_only_survives_restart_and_leaves_the_file_alone() {
    let path = detectors_file(DETECTORS);
    let mut c = config();
    c.sentinel.detectors = Some(path.clone());
    let server = llmsec_server::Server::start(c.clone(), Some(ADMIN.into())).await.unwrap();
    let router = server.router();
    let scopes = ["ingest", "read", "admin"];
    let a = make_key(&router, "acme", &scopes).await;
    let b = make_key(&router, "globex", &scopes).await;

    let m = "mutation { updateDetector(id: \"pi\", config: {enabled: false, severity: WARNING}) { id name enabled } }";
    let r = gql(&router, &a, m, json!({})).await;
    assert_eq!(r["data"]["updateDetector"], json!({"id": "pi", "name": "Prompt injection", "enabled": false}), "{r}");
    let q = "{ detectors { id name enabled } }";
    let off = json!([{"id": "pi", "name": "Prompt injection", "enabled": false}]);
    let on = json!([{"id": "pi", "name": "Prompt injection", "enabled": true}]);
    assert_eq!(gql(&router, &a, q, json!({})).await["data"]["detectors"], off);
    assert_eq!(gql(&router, &b, q, json!({})).await["data"]["detectors"], on, "globex keeps the file's detector");
    // globex's detector still runs; acme's does not.
    anomaly_of(&router, &b, "b1", "eve").await;
    post(&router, "/api/v1/telemetry/events", &a, attack("a1", "mallory")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(&router, "/api/v1/anomalies", &a).await.body["total_count"], 0);
    // The audit log says who changed which tenant's detector.
    let audit = get(&router, "/api/admin/audit", ADMIN).await;
    let entry = audit.body["entries"].as_array().unwrap().iter().find(|e| e["action"] == "detector.update").cloned();
    let details: Value = serde_json::from_str(entry.unwrap()["details"].as_str().unwrap()).unwrap();
    assert_eq!(details, json!({"tenant": "acme", "fields": {"enabled": false, "severity": "warning"}}));
    drop(router);
    server.shutdown().await;

    assert_eq!(std::fs::read_to_string(&path).unwrap(), DETECTORS, "the detectors file is never written");
    let server = llmsec_server::Server::start(c, Some(ADMIN.into())).await.unwrap();
    let router = server.router();
    assert_eq!(gql(&router, &a, q, json!({})).await["data"]["detectors"], off, "acme's change survives a restart");
    assert_eq!(gql(&router, &b, q, json!({})).await["data"]["detectors"], on);
    // A later change keeps the earlier one's fields.
    let m = "mutation { updateDetector(id: \"pi\", config: {config: {threshold: 0.6}}) { enabled config } }";
    let r = gql(&router, &a, m, json!({})).await;
    assert_eq!(r["data"]["updateDetector"]["enabled"], false, "{r}");
    assert_eq!(r["data"]["updateDetector"]["config"]["threshold"], 0.6, "{r}");
    drop(router);
    server.shutdown().await;
}

#[tokio::test]
async fn a_plugin_detector_keeps_its_program_and_a_tenant_cannot_name_one() {
    let program = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/plugins/model_switching.py");
    let yaml = format!(
        "detectors:\n  - id: switching\n    type: custom_behavioral\n    plugin: {program}\n    timeout_ms: 2000\n    \
         config: {{threshold: 0.5}}\n"
    );
    let path = detectors_file(&yaml);
    let t = app_with(|c| c.sentinel.detectors = Some(path.clone())).await;
    let a = make_key(&t.router, "acme", &["read", "admin"]).await;
    let m = "mutation { updateDetector(id: \"switching\", config: {config: {threshold: 0.8}}) { type config } }";
    let r = gql(&t.router, &a, m, json!({})).await;
    assert_eq!(r["data"]["updateDetector"], json!({"type": "PLUGIN", "config": {"threshold": 0.8}}), "{r}");
    let spec = t.server.state().sentinel.config_for("acme").detectors.remove(0);
    assert_eq!((spec.plugin.as_deref(), spec.plugin_settings.unwrap().timeout_ms), (Some(program), 2000));
    // The service refuses `plugin:` and runner keys from a tenant: which programs run is the file's choice.
    for key in ["plugin", "interpreter", "timeout_ms"] {
        let mut fields = serde_json::Map::new();
        fields.insert(key.into(), json!("/bin/sh"));
        let e = t.server.state().sentinel.update_detector("acme", "switching", fields, false).await.unwrap_err();
        assert!(matches!(e, llmsec_server::sentinel::DetectorError::Invalid(_)), "{key}: {e}");
    }
}

/// A local receiver that records the bodies POSTed to it.
async fn sink() -> (Arc<Mutex<Vec<String>>>, String) {
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let bodies = got.clone();
    let app = axum::Router::new().fallback(move |body: String| {
        let bodies = bodies.clone();
        async move {
            bodies.lock().unwrap().push(body);
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (got, url)
}

#[tokio::test]
async fn a_tenants_webhook_action_never_receives_another_tenants_anomalies() {
    let (got, url) = sink().await;
    let path = detectors_file(DETECTORS);
    let t = app_with(|c| c.sentinel.detectors = Some(path.clone())).await;
    let scopes = ["ingest", "read", "admin"];
    let a = make_key(&t.router, "acme", &scopes).await;
    let b = make_key(&t.router, "globex", &scopes).await;
    let m = "mutation($a: JSON!) { updateDetector(id: \"pi\", config: {actions: $a}) { actions } }";
    let actions = json!([{"type": "webhook", "config": {"url": url}}]);
    let r = gql(&t.router, &a, m, json!({"a": actions})).await;
    assert!(r["errors"].is_null(), "{r}");

    // globex's anomaly runs globex's detector: no action, nothing sent.
    let theirs = anomaly_of(&t.router, &b, "b1", "globex-user").await;
    assert_eq!(theirs["actions_taken"], json!([]), "{theirs}");
    let ours = anomaly_of(&t.router, &a, "a1", "mallory").await;
    let id = ours["id"].as_str().unwrap().to_owned();
    let body = eventually(10, || {
        let got = got.clone();
        async move { got.lock().unwrap().first().cloned() }
    })
    .await;
    let sent: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(sent["anomaly"]["id"], id.as_str(), "{sent}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = got.lock().unwrap().clone();
    assert_eq!(all.len(), 1, "only acme's anomaly was sent: {all:?}");
    assert!(!all[0].contains("globex"), "{}", all[0]);
    assert!(get(&t.router, "/api/webhooks/deliveries", &b).await.body["deliveries"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_bootstrap_key_is_an_operator_made_while_no_operator_key_lives_and_the_env_key_is_one_too() {
    let c = config();
    let server = llmsec_server::Server::start(c.clone(), None).await.unwrap();
    let boot = server.bootstrap_key().unwrap().to_owned();
    let router = server.router();
    let r = post(&router, "/api/admin/keys", &boot, json!({"tenant": "newco", "name": "x", "scopes": ["admin"]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(get(&router, "/api/admin/audit", &boot).await.status, StatusCode::OK);
    assert_eq!(post(&router, "/api/security/analyze", &boot, json!({"input": BENIGN})).await.status, StatusCode::OK);
    drop(router);
    server.shutdown().await;

    // A live operator key: no second one.
    let server = llmsec_server::Server::start(c.clone(), None).await.unwrap();
    assert_eq!(server.bootstrap_key(), None);
    let router = server.router();
    let id = boot.split('_').nth(1).unwrap();
    let r = send(&router, Method::DELETE, &format!("/api/admin/keys/{id}"), Some(&boot), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    drop(router);
    server.shutdown().await;
    // Only a tenant admin key left, which is no operator: a new operator key is made.
    let server = llmsec_server::Server::start(c, None).await.unwrap();
    assert!(server.bootstrap_key().is_some());
    server.shutdown().await;

    // The env key: operator, every scope, tenant default.
    let t = app().await;
    let r = post(&t.router, "/api/admin/keys", ADMIN, json!({"tenant": "newco", "name": "x", "scopes": ["operator"]}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(get(&t.router, "/api/security/events", ADMIN).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_tenant_admin_names_only_receivers_open_to_its_tenant() {
    let path = detectors_file(
        "detectors:\n  - id: pi\n    name: Prompt injection\n    type: ml\n    threshold: 0.5\n    actions:\n      - type: alert\n        config: {receivers: [oncall]}\n",
    );
    let receiver = |name: &str, tenants: &[&str]| llmsec_server::sentinel::Receiver {
        name: name.into(),
        kind: llmsec_server::sentinel::ReceiverKind::Log,
        url: None,
        secret: None,
        routing_key: None,
        tenants: tenants.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    };
    let t = app_with(|c| {
        c.sentinel.detectors = Some(path.clone());
        c.sentinel.receivers =
            vec![receiver("operator-pager", &[]), receiver("oncall", &[]), receiver("acme-desk", &["acme"])];
    })
    .await;
    let a = make_key(&t.router, "acme", &["admin"]).await;
    let g = make_key(&t.router, "globex", &["admin"]).await;
    let m = "mutation($a: JSON!) { updateDetector(id: \"pi\", config: {actions: $a}) { actions } }";
    let alert = |r: &str| json!([{"type": "alert", "config": {"receivers": [r]}}]);

    // The operator's own receiver: refused for a tenant admin, naming why.
    let r = gql(&t.router, &a, m, json!({"a": alert("operator-pager")})).await;
    assert_eq!(r["errors"][0]["extensions"]["field"], "config", "{r}");
    assert!(r["errors"][0]["message"].as_str().unwrap().contains("not open to tenant \"acme\""), "{r}");
    // One opened to acme: acme may, globex may not.
    assert!(gql(&t.router, &a, m, json!({"a": alert("acme-desk")})).await["errors"].is_null());
    let r = gql(&t.router, &g, m, json!({"a": alert("acme-desk")})).await;
    assert!(r["errors"][0]["message"].as_str().unwrap().contains("not open"), "{r}");
    // One the file's own entry already names stays usable.
    assert!(gql(&t.router, &g, m, json!({"a": alert("oncall")})).await["errors"].is_null());
    // Changes that leave the file's actions alone are untouched by the check.
    let r =
        gql(&t.router, &g, "mutation { updateDetector(id: \"pi\", config: {enabled: false}) { enabled } }", json!({}))
            .await;
    assert!(r["errors"].is_null(), "{r}");
    // The operator may name any receiver.
    let r = gql(&t.router, ADMIN, m, json!({"a": alert("operator-pager")})).await;
    assert!(r["errors"].is_null(), "{r}");
}

#[tokio::test]
async fn detectors_over_rest_change_and_reset_for_the_callers_tenant_only() {
    let path = detectors_file(DETECTORS);
    let t = app_with(|c| c.sentinel.detectors = Some(path.clone())).await;
    let a = make_key(&t.router, "acme", &["read", "admin"]).await;
    let g = make_key(&t.router, "globex", &["read"]).await;
    let patch = |key: &str, id: &str, body: Value| {
        let (router, key, path) = (t.router.clone(), key.to_owned(), format!("/api/v1/detectors/{id}"));
        async move { send(&router, Method::PATCH, &path, Some(&key), Some(body.to_string().into())).await }
    };
    let reset = |key: &str, id: &str| {
        let (router, key, path) = (t.router.clone(), key.to_owned(), format!("/api/v1/detectors/{id}/override"));
        async move { send(&router, Method::DELETE, &path, Some(&key), None).await }
    };
    let enabled = |key: &str| {
        let (router, key) = (t.router.clone(), key.to_owned());
        async move {
            let r = get(&router, "/api/v1/detectors", &key).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            r.body["detectors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| (d["id"].as_str().unwrap().to_owned(), d["enabled"].as_bool().unwrap()))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(enabled(&g).await, vec![("pi".to_owned(), true)]);
    forbidden_naming(&patch(&g, "pi", json!({"enabled": false})).await, "admin");

    let r = patch(&a, "pi", json!({"enabled": false})).await;
    assert_eq!((r.status, &r.body["enabled"]), (StatusCode::OK, &json!(false)), "{}", r.text);
    assert_eq!(enabled(&a).await, vec![("pi".to_owned(), false)]);
    assert_eq!(enabled(&g).await, vec![("pi".to_owned(), true)], "globex keeps the file's detector");
    let r = patch(&a, "pi", json!({"plugin": "/bin/sh"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.body["error"]["field"], "config", "{}", r.text);
    assert_eq!(patch(&a, "pi", json!({})).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(patch(&a, "nope", json!({"enabled": false})).await.status, StatusCode::NOT_FOUND);

    // Reset: the file's entry runs again; a second reset finds nothing to drop.
    let r = reset(&a, "pi").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["detector"]["enabled"], true, "{}", r.text);
    assert_eq!(enabled(&a).await, vec![("pi".to_owned(), true)]);
    assert_eq!(reset(&a, "pi").await.status, StatusCode::NOT_FOUND);
    forbidden_naming(&reset(&g, "pi").await, "admin");
    // A detector acme made itself is gone after its reset.
    let r = patch(&a, "mine", json!({"type": "ml", "config": {"threshold": 0.7}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(enabled(&a).await.len(), 2);
    let r = reset(&a, "mine").await;
    assert_eq!((r.status, &r.body["detector"]), (StatusCode::OK, &Value::Null), "{}", r.text);
    assert_eq!(enabled(&a).await, vec![("pi".to_owned(), true)]);

    // Over GraphQL too, and a change dropped behind this server's back (by
    // another replica, straight in the store) is dropped here at the next tick.
    let m = "mutation { updateDetector(id: \"pi\", config: {enabled: false}) { enabled } }";
    assert!(gql(&t.router, &a, m, json!({})).await["errors"].is_null());
    let r = gql(&t.router, &a, "mutation { resetDetector(id: \"pi\") { id enabled } }", json!({})).await;
    assert_eq!(r["data"]["resetDetector"], json!({"id": "pi", "enabled": true}), "{r}");
    assert!(gql(&t.router, &a, m, json!({})).await["errors"].is_null());
    assert!(t.server.state().store.delete_detector_override("acme", "pi").await.unwrap());
    eventually(10, || {
        let enabled = enabled(&a);
        async move { (enabled.await == vec![("pi".to_owned(), true)]).then_some(()) }
    })
    .await;
    let audit = get(&t.router, "/api/admin/audit", ADMIN).await;
    assert!(audit.text.contains("detector.reset"), "{}", audit.text);
}

#[tokio::test]
async fn action_messages_stored_with_full_urls_are_masked_when_read() {
    let path = detectors_file(DETECTORS);
    let t = app_with(|c| c.sentinel.detectors = Some(path.clone())).await;
    let a = make_key(&t.router, "acme", &["ingest", "read"]).await;
    let id = anomaly_of(&t.router, &a, "a1", "mallory").await["id"].as_str().unwrap().to_owned();
    // A row as an older version stored it: the target URL in full in the message.
    let store = &t.server.state().store;
    let mut row = store.anomaly("acme", &id).await.unwrap().unwrap();
    let mut body: Value = serde_json::from_str(&row.body).unwrap();
    body["actions_taken"] = json!([{"id": "d1", "type": "webhook", "status": "pending",
        "message": "queued for https://hooks.internal.example/t/SECRET?token=abc", "at": 1}]);
    row.body = body.to_string();
    store.put_anomaly(&row).await.unwrap();

    let r = get(&t.router, &format!("/api/v1/anomalies/{id}"), &a).await;
    assert_eq!(
        r.body["actions_taken"][0]["message"], "queued for https://hooks.internal.example/***?***",
        "{}",
        r.text
    );
    let q = format!("{{ anomaly(id: \"{id}\") {{ actionsTaken {{ message }} }} }}");
    let g = gql(&t.router, &a, &q, json!({})).await;
    let msg = g["data"]["anomaly"]["actionsTaken"][0]["message"].as_str().unwrap_or_else(|| panic!("{g}")).to_owned();
    assert_eq!(msg, "queued for https://hooks.internal.example/***?***");
    assert!(!r.text.contains("SECRET") && !g.to_string().contains("token=abc"));
}
