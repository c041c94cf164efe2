//! Plugin detectors inside the server: `updateDetector` keeps a plugin a
//! plugin, and a tenant whose detectors fail to build makes the server
//! not ready instead of running without them. (Needs `python3`.)

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

/// Flags every event's user; the finding's `threshold` metric is the one
/// its config holds, so a test sees which config the running process got.
const FLAGGER: &str = r#"import json, sys
def say(m): print(json.dumps(m), flush=True)
threshold = None
for line in sys.stdin:
    m = json.loads(line)
    if m['type'] == 'init':
        threshold = m['config'].get('threshold')
        say({'type': 'ready'})
        continue
    e = m['event']
    say({'type': 'results', 'results': [{'score': 0.9, 'title': 'flagged by the plugin',
        'affected_entity': {'type': 'user', 'id': e['metadata']['user_id']}, 'metrics': {'threshold': threshold}}]})
"#;

/// Refuses to start, as a plugin missing a file it needs would.
const REFUSER: &str = r#"import json, sys
for line in sys.stdin:
    print(json.dumps({'type': 'error', 'message': 'no licence file'}), flush=True)
"#;

/// A detectors file with one plugin detector running `FLAGGER`; returns
/// the file and the plugin's path.
fn plugin_detectors() -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = temp_dir();
    let plugin = dir.join("flagger.py");
    std::fs::write(&plugin, FLAGGER).unwrap();
    let detectors = dir.join("detectors.yaml");
    let yaml = format!(
        "detectors:\n  - id: flagger\n    type: custom_behavioral\n    plugin: {}\n    timeout_ms: 3000\n    \
         config: {{threshold: 0.5}}\n",
        plugin.display()
    );
    std::fs::write(&detectors, yaml).unwrap();
    (detectors, plugin)
}

fn event(id: &str, user: &str) -> Value {
    json!({"event_id": id, "timestamp": "2026-11-26T10:00:00Z", "event_type": "llm.request",
           "application_id": "chatbot", "data": {"model": "gpt-4o"}, "metadata": {"user_id": user}})
}

async fn gql(router: &axum::Router, query: &str) -> Value {
    let r = post(router, "/graphql", ADMIN, json!({"query": query})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

/// Waits until Sentinel has processed every stored event.
async fn processed(state: &llmsec_server::AppState) {
    eventually(10, || {
        let store = state.store.clone();
        async move { store.pending_telemetry(10).await.unwrap().is_empty().then_some(()) }
    })
    .await
}

async fn anomalies(router: &axum::Router, key: &str) -> Vec<Value> {
    let r = get(router, "/api/v1/anomalies", key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["anomalies"].as_array().unwrap().clone()
}

#[tokio::test]
async fn update_detector_keeps_a_plugin_detector_running_its_plugin() {
    let (detectors, plugin) = plugin_detectors();
    let t = app_with(|c| c.sentinel.detectors = Some(detectors.clone())).await;

    let r =
        gql(&t.router, "mutation { updateDetector(id: \"flagger\", config: {enabled: false}) { id type enabled } }")
            .await;
    assert_eq!(r["data"]["updateDetector"], json!({"id": "flagger", "type": "PLUGIN", "enabled": false}), "{r}");
    post(&t.router, "/api/v1/telemetry/events", ADMIN, event("e1", "alice")).await;
    processed(t.server.state()).await;
    assert!(anomalies(&t.router, ADMIN).await.is_empty(), "a disabled detector sees nothing");

    let r = gql(
        &t.router,
        "mutation { updateDetector(id: \"flagger\", config: {enabled: true, config: {threshold: 0.8}}) { id type enabled } }",
    )
    .await;
    assert_eq!(r["data"]["updateDetector"], json!({"id": "flagger", "type": "PLUGIN", "enabled": true}), "{r}");
    // The plugin and its runner keys are kept.
    let spec =
        t.server.state().sentinel.config_for("default").detectors.into_iter().find(|d| d.id == "flagger").unwrap();
    assert_eq!(spec.plugin.as_deref(), Some(plugin.to_str().unwrap()));
    assert_eq!(spec.plugin_settings.map(|s| s.timeout_ms), Some(3000));

    post(&t.router, "/api/v1/telemetry/events", ADMIN, event("e2", "bob")).await;
    let found = eventually(10, || {
        let router = t.router.clone();
        async move { Some(anomalies(&router, ADMIN).await).filter(|a| !a.is_empty()) }
    })
    .await;
    assert_eq!(found.len(), 1, "{found:?}");
    let a = &found[0];
    assert_eq!((a["detector_id"].as_str(), a["affected_entity"]["id"].as_str()), (Some("flagger"), Some("bob")));
    assert_eq!(a["title"], "flagged by the plugin");
    assert_eq!(a["metrics"]["threshold"], 0.8, "the restarted plugin got the new config: {a}");
    let r = gql(&t.router, "{ detectors { id type enabled } }").await;
    assert_eq!(r["data"]["detectors"], json!([{"id": "flagger", "type": "PLUGIN", "enabled": true}]), "{r}");
}

#[tokio::test]
async fn a_tenant_whose_detectors_fail_to_build_makes_the_server_not_ready() {
    let (detectors, plugin) = plugin_detectors();
    let mut c = config();
    c.sentinel.detectors = Some(detectors);
    let restart_config = c.clone();
    let clock = Arc::new(llm_sentinel::ManualClock::new(1_764_150_000_000));
    let store: Arc<dyn llmsec_store::Store> =
        Arc::new(llmsec_store::SqlStore::connect(&c.database_url()).await.unwrap());
    let engine = llm_security::SecurityEngine::with_config(c.security_config().unwrap());
    let server = llmsec_server::Server::with_clock(c, engine, store, Some(ADMIN.into()), clock.clone()).await.unwrap();
    let router = server.router();
    let state = server.state().clone();
    let key = make_key(&router, "acme", &["ingest", "read"]).await;
    let ready = send(&router, axum::http::Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);

    // The plugin now refuses to start: acme's first event builds its detectors, and that fails.
    std::fs::write(&plugin, REFUSER).unwrap();
    post(&router, "/api/v1/telemetry/events", &key, event("e1", "alice")).await;
    let not_ready = eventually(10, || {
        let router = router.clone();
        async move {
            let r = send(&router, axum::http::Method::GET, "/readyz", None, None).await;
            (r.status == StatusCode::SERVICE_UNAVAILABLE).then_some(r)
        }
    })
    .await;
    // A probe (no key) learns how many tenants failed, not which or why.
    assert_eq!(not_ready.body["error"]["code"], "unavailable");
    assert!(not_ready.body["error"]["message"].as_str().unwrap().contains("1 tenant"), "{}", not_ready.text);
    assert!(!not_ready.text.contains("acme") && !not_ready.text.contains("licence"), "{}", not_ready.text);
    // An operator sees the tenant and the reason.
    let detailed = send(&router, axum::http::Method::GET, "/readyz", Some(ADMIN), None).await;
    assert_eq!(detailed.status, StatusCode::SERVICE_UNAVAILABLE);
    let failures = &detailed.body["sentinel_failures"];
    assert_eq!(failures.as_array().map(Vec::len), Some(1), "{}", detailed.text);
    assert_eq!(failures[0]["tenant"], "acme");
    let reason = failures[0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("detectors (flagger).plugin: ") && reason.contains("no licence file"), "{reason}");
    // A tenant's key does not.
    let tenant_view = send(&router, axum::http::Method::GET, "/readyz", Some(&key), None).await;
    assert!(tenant_view.body["sentinel_failures"].is_null(), "{}", tenant_view.text);
    // The event was not run without detectors: it waits, unprocessed.
    let pending = state.store.pending_telemetry(10).await.unwrap();
    assert_eq!(pending.iter().map(|r| r.event_id.as_str()).collect::<Vec<_>>(), ["e1"]);
    assert!(anomalies(&router, &key).await.is_empty());

    // Fixed: the next event after the retry delay builds the detectors again.
    std::fs::write(&plugin, FLAGGER).unwrap();
    clock.advance(llmsec_server::sentinel::REBUILD_AFTER_MS);
    post(&router, "/api/v1/telemetry/events", &key, event("e2", "bob")).await;
    eventually(10, || {
        let router = router.clone();
        async move {
            let r = send(&router, axum::http::Method::GET, "/readyz", None, None).await;
            (r.status == StatusCode::OK).then_some(())
        }
    })
    .await;
    let found = eventually(10, || {
        let router = router.clone();
        let key = key.clone();
        async move { Some(anomalies(&router, &key).await).filter(|a| !a.is_empty()) }
    })
    .await;
    assert_eq!(found[0]["affected_entity"]["id"], "bob");

    // The waiting event is run at the next start.
    drop((router, state));
    server.shutdown().await;
    let server = llmsec_server::Server::start(restart_config, Some(ADMIN.into())).await.unwrap();
    let router = server.router();
    let users = eventually(10, || {
        let router = router.clone();
        let key = key.clone();
        async move {
            let mut users: Vec<String> = anomalies(&router, &key)
                .await
                .iter()
                .map(|a| a["affected_entity"]["id"].as_str().unwrap().to_owned())
                .collect();
            users.sort();
            (users.len() == 2).then_some(users)
        }
    })
    .await;
    assert_eq!(users, ["alice", "bob"]);
}
