//! Plugin detectors inside the server: `updateDetector` keeps a plugin a
//! plugin. (Needs `python3`.)

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
    let spec = t.server.state().sentinel.config().detectors.into_iter().find(|d| d.id == "flagger").unwrap();
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
