//! Threat quarantine over real HTTP: an analysis that meets the hold rule
//! is answered with `quarantined` and queued whole; `read` keys list it,
//! `triage` keys release or discard it (once: the first decision stands),
//! each decision audited; another tenant never sees it; GraphQL does the
//! same; a hold nobody decides ends by `on_expiry` on Sentinel's clock.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

const HOLD_SECS: u64 = 60;

async fn server(on_expiry: &str) -> (llmsec_server::Server, Http, Arc<llm_sentinel::ManualClock>) {
    let mut c = config();
    c.quarantine = toml::from_str(&format!(
        "enabled = true\nverdicts = [\"block\"]\nhold_secs = {HOLD_SECS}\non_expiry = \"{on_expiry}\"\n"
    ))
    .unwrap();
    // Sentinel's clock starts at the real time: the server's retention
    // pass (real clock, run once at start and hourly) would otherwise find
    // every decided item older than the retention and purge it whenever it
    // happens to run, which under load was after the test decided one.
    let clock = Arc::new(llm_sentinel::ManualClock::new(llmsec_store::now_millis()));
    let store: Arc<dyn llmsec_store::Store> =
        Arc::new(llmsec_store::SqlStore::connect(&c.database_url()).await.unwrap());
    let engine = llm_security::SecurityEngine::with_config(c.security_config().unwrap());
    let server = llmsec_server::Server::with_clock(c, engine, store, Some(ADMIN.into()), clock.clone()).await.unwrap();
    let addr = crate::grpc::serve(server.router()).await;
    (server, Http::new(addr), clock)
}

/// Makes a key through the admin API over `http`.
async fn key(http: &Http, tenant: &str, scopes: &[&str]) -> String {
    let r = http.post("/api/admin/keys", ADMIN, json!({"tenant": tenant, "name": "q", "scopes": scopes})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn held_analyses_are_listed_and_decided_once_by_triage_keys_of_their_tenant_only() {
    let (server, http, _clock) = server("discard").await;
    let app = key(&http, "acme", &["analyze"]).await;
    let reader = key(&http, "acme", &["read"]).await;
    let reviewer = key(&http, "acme", &["triage", "read"]).await;
    let other = key(&http, "globex", &["triage", "read"]).await;

    // A benign prompt is answered as before; an attack is blocked and held.
    let ok = http.post("/api/security/analyze", &app, json!({"input": BENIGN})).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert!(ok.body.get("quarantined").is_none(), "{}", ok.text);
    let r = http.post("/api/security/analyze", &app, json!({"input": ATTACK, "user_id": "u1"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["verdict"], "block", "the other fields are as without quarantine: {}", r.text);
    assert!(r.body["event_id"].is_string());
    assert_eq!(r.body["quarantined"]["status"], "pending", "{}", r.text);
    let id = r.body["quarantined"]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("q_"), "{id}");

    // Listed for read keys of the tenant, the prompt whole, findings without evidence.
    let list = http.get("/api/v1/quarantine?status=pending", &reader).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert_eq!(list.body["total_count"], 1, "{}", list.text);
    let item = &list.body["items"][0];
    assert_eq!(
        (item["id"].as_str(), item["content"].as_str(), item["source"].as_str(), item["user_id"].as_str()),
        (Some(id.as_str()), Some(ATTACK), Some("analyze"), Some("u1"))
    );
    assert_eq!(item["event_id"], r.body["event_id"]);
    assert!(item["findings"].as_array().is_some_and(|f| !f.is_empty()), "{item}");
    assert!(item["findings"][0].get("evidence").is_none(), "{item}");
    let one = http.get(&format!("/api/v1/quarantine/{id}"), &reader).await;
    assert_eq!((one.status, one.body["status"].as_str()), (StatusCode::OK, Some("pending")), "{}", one.text);

    // Another tenant sees nothing of it and cannot decide it.
    let theirs = http.get("/api/v1/quarantine", &other).await;
    assert_eq!(theirs.body["total_count"], 0, "{}", theirs.text);
    assert_eq!(http.get(&format!("/api/v1/quarantine/{id}"), &other).await.status, StatusCode::NOT_FOUND);
    let r = http.post(&format!("/api/v1/quarantine/{id}/release"), &other, json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    // A read-only key cannot decide; bad input names the field.
    let r = http.post(&format!("/api/v1/quarantine/{id}/release"), &reader, json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = http.post(&format!("/api/v1/quarantine/{id}/release"), &reviewer, json!({"why": "x"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.body["error"]["message"].as_str().is_some_and(|m| m.contains("unknown field `why`")), "{}", r.text);
    let r = http.post(&format!("/api/v1/quarantine/{id}/release"), &reviewer, json!({"reason": 7})).await;
    assert_eq!((r.status, r.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("reason")), "{}", r.text);
    let r =
        http.post(&format!("/api/v1/quarantine/{id}/release"), &reviewer, json!({"reason": "x".repeat(2000)})).await;
    assert_eq!(r.body["error"]["field"], "reason", "{}", r.text);
    let r = http.get("/api/v1/quarantine?status=maybe", &reader).await;
    assert_eq!((r.status, r.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("status")));

    // The first decision stands; a second is a conflict.
    let r = http.post(&format!("/api/v1/quarantine/{id}/release"), &reviewer, json!({"reason": "a drill"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!((r.body["status"].as_str(), r.body["reason"].as_str()), (Some("released"), Some("a drill")));
    assert!(r.body["decided_by"].is_string() && r.body["decided_at"].is_string(), "{}", r.text);
    let again = http.post(&format!("/api/v1/quarantine/{id}/discard"), &reviewer, json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert!(again.text.contains("released"), "{}", again.text);

    // A batch holds each item that meets the rule; discard takes no body.
    let batch = json!({"items": [{"input": BENIGN}, {"input": ATTACK}]});
    let r = http.post("/api/security/analyze/batch", &app, batch).await;
    assert!(r.body["results"][0].get("quarantined").is_none(), "{}", r.text);
    let id2 = r.body["results"][1]["quarantined"]["id"].as_str().unwrap().to_owned();
    let r = http.post_empty(&format!("/api/v1/quarantine/{id2}/discard"), &reviewer).await;
    assert_eq!((r.status, r.body["status"].as_str()), (StatusCode::OK, Some("discarded")), "{}", r.text);
    let pending = http.get("/api/v1/quarantine?status=pending", &reader).await;
    assert_eq!(pending.body["total_count"], 0, "{}", pending.text);
    let all = http.get("/api/v1/quarantine?limit=1", &reader).await;
    assert_eq!((all.body["total_count"].as_u64(), all.body["items"].as_array().map(Vec::len)), (Some(2), Some(1)));

    // Each decision is in the audit log.
    let audit = http.get("/api/admin/audit", ADMIN).await;
    for (action, target) in [("quarantine.release", &id), ("quarantine.discard", &id2)] {
        let found = audit.body["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["action"] == action && e["target"] == target.as_str());
        assert!(found, "{action} {target}: {}", audit.text);
    }

    // The metrics count holds and decisions, and the pending gauge is set.
    let metrics = http.get("/metrics", &reader).await.text;
    for line in [
        "llm_security_quarantine_total{outcome=\"held\"} ",
        "llm_security_quarantine_total{outcome=\"released\"} ",
        "llm_security_quarantine_total{outcome=\"discarded\"} ",
        "llm_security_quarantine_pending ",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    drop(server);
}

#[tokio::test]
async fn graphql_holds_lists_and_decides() {
    let (server, http, _clock) = server("discard").await;
    let app = key(&http, "acme", &["analyze"]).await;
    let reader = key(&http, "acme", &["read"]).await;
    let reviewer = key(&http, "acme", &["triage"]).await;
    let gql = |key: String, query: String| {
        let http = http.clone();
        async move { http.post("/graphql", &key, json!({"query": query})).await.body }
    };
    let q = format!("{{ analyzeInput(input: {ATTACK:?}) {{ verdict quarantined {{ id status }} }} }}");
    let r = gql(app.clone(), q).await;
    let held = &r["data"]["analyzeInput"]["quarantined"];
    assert_eq!(held["status"], "pending", "{r}");
    let id = held["id"].as_str().unwrap().to_owned();
    let r = gql(app.clone(), format!("{{ analyzeInput(input: {BENIGN:?}) {{ quarantined {{ id }} }} }}")).await;
    assert_eq!(r["data"]["analyzeInput"]["quarantined"], Value::Null, "{r}");

    let r =
        gql(reader.clone(), "{ quarantine(status: \"pending\") { totalCount items { id content source } } }".into())
            .await;
    assert_eq!(r["data"]["quarantine"]["totalCount"], 1, "{r}");
    assert_eq!(r["data"]["quarantine"]["items"][0]["content"], ATTACK);
    let r = gql(reader.clone(), format!("{{ quarantinedItem(id: \"{id}\") {{ status verdict }} }}")).await;
    assert_eq!(r["data"]["quarantinedItem"], json!({"status": "pending", "verdict": "block"}), "{r}");
    let r = gql(reader.clone(), "{ quarantine(status: \"later\") { totalCount } }".into()).await;
    assert_eq!(r["errors"][0]["extensions"]["field"], "status", "{r}");

    let denied = gql(reader.clone(), format!("mutation {{ discardQuarantined(id: \"{id}\") {{ status }} }}")).await;
    assert!(denied["errors"][0]["message"].as_str().unwrap_or("").contains("triage"), "{denied}");
    let m =
        format!("mutation {{ discardQuarantined(id: \"{id}\", reason: \"phishing\") {{ status reason decidedBy }} }}");
    let r = gql(reviewer.clone(), m).await;
    assert_eq!(r["data"]["discardQuarantined"]["status"], "discarded", "{r}");
    assert_eq!(r["data"]["discardQuarantined"]["reason"], "phishing");
    let r = gql(reviewer.clone(), format!("mutation {{ releaseQuarantined(id: \"{id}\") {{ status }} }}")).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "conflict", "{r}");
    drop(server);
}

#[tokio::test]
async fn a_hold_nobody_decides_ends_by_on_expiry_on_sentinels_clock() {
    for (on_expiry, status) in [("discard", "expired"), ("release", "released")] {
        let (server, http, clock) = server(on_expiry).await;
        let app = key(&http, "acme", &["analyze", "read"]).await;
        let r = http.post("/api/security/analyze", &app, json!({"input": ATTACK})).await;
        let id = r.body["quarantined"]["id"].as_str().unwrap().to_owned();
        let services = &server.state().services;

        // Not before the hold ends.
        clock.advance(HOLD_SECS as i64 * 1000 - 1);
        llmsec_server::service::quarantine::expire_due(services).await.unwrap();
        let one = http.get(&format!("/api/v1/quarantine/{id}"), &app).await;
        assert_eq!(one.body["status"], "pending", "{}", one.text);

        clock.advance(2);
        llmsec_server::service::quarantine::expire_due(services).await.unwrap();
        let one = http.get(&format!("/api/v1/quarantine/{id}"), &app).await;
        assert_eq!(one.body["status"], status, "{on_expiry}: {}", one.text);
        assert_eq!(one.body["decided_by"], "system", "{}", one.text);
        let audit = http.get("/api/admin/audit", ADMIN).await;
        let expired = audit.body["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["action"] == "quarantine.expire" && e["target"] == id.as_str());
        assert!(expired, "{}", audit.text);
        // Decided by expiry: a reviewer comes too late.
        let reviewer = key(&http, "acme", &["triage"]).await;
        let late = http.post(&format!("/api/v1/quarantine/{id}/discard"), &reviewer, json!({})).await;
        assert_eq!(late.status, StatusCode::CONFLICT, "{}", late.text);
        drop(server);
    }
}

#[test]
fn the_quarantine_section_is_checked_naming_its_keys() {
    let e = toml::from_str::<llmsec_server::config::ServerConfig>("[quarantine]\nenabled = true\nhold = 3\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("hold"), "{e}");
    let e = toml::from_str::<llmsec_server::config::ServerConfig>("[quarantine]\non_expiry = \"keep\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("keep"), "{e}");
    let c: llmsec_server::config::ServerConfig =
        toml::from_str("[quarantine]\nenabled = true\nhold_secs = 5\n").unwrap();
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("quarantine.hold_secs"), "{e}");
    let c: llmsec_server::config::ServerConfig =
        toml::from_str("[quarantine]\nenabled = true\nverdicts = []\n").unwrap();
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("quarantine.verdicts"), "{e}");
}
