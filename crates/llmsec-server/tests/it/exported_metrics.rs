//! The metrics the Grafana dashboards read appear at `/metrics` after real
//! traffic: analyses that block and pass, a replay, telemetry with a role,
//! an address, tool calls and logprobs that Sentinel turns into an anomaly.

use serde_json::json;

use crate::common::*;

/// The value of the first sample line starting with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(prefix)).and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn dashboard_metrics_appear_after_traffic() {
    let dir = temp_dir();
    let detectors = dir.join("d.yaml");
    std::fs::write(&detectors, "detectors:\n  - id: pi\n    type: ml\n    threshold: 0.5\n").unwrap();
    let t = app_with(|c| c.sentinel.detectors = Some(detectors.clone())).await;
    let key = make_key(&t.router, "default", &["analyze", "ingest", "read"]).await;

    assert_eq!(post(&t.router, "/api/security/analyze", &key, json!({"input": ATTACK})).await.status, 200);
    assert_eq!(post(&t.router, "/api/security/analyze", &key, json!({"input": BENIGN})).await.status, 200);
    let r = post(&t.router, "/api/security/analyze/dry-run", &key, json!({"input": ATTACK})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let event = json!({
        "event_id": format!("m-{}", uuid::Uuid::new_v4()),
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "event_type": "llm.request",
        "application_id": "metrics-app",
        "data": {"model": "gpt-4o", "prompt": ATTACK, "status": "success", "logprobs": [-0.1, -0.2, -0.05]},
        "metadata": {"user_id": "metrics-user", "role": "analyst", "ip": "10.1.2.3", "tool_calls": ["search", "search"]}
    });
    let r = post(&t.router, "/api/v1/telemetry/events", &key, event).await;
    assert!(r.status.is_success(), "{}", r.text);

    // Sentinel processes the event in the background (an `ml` detector is
    // of type `threat`); the outbox gauges
    // are set when the delivery worker starts.
    let text = eventually(15, || {
        let router = t.router.clone();
        let key = key.clone();
        async move {
            let text = get(&router, "/metrics", &key).await.text;
            let done = text.contains("llm_security_anomalies_detected_total{detector_type=\"threat\",")
                && text.contains("llm_security_sentinel_processing_lag_seconds_count ");
            done.then_some(text)
        }
    })
    .await;

    for (prefix, at_least) in [
        ("llm_security_attacks_total{category=\"prompt_injection\",outcome=\"blocked\"} ", 1.0),
        ("llm_security_replays_total{verdict=\"block\"} ", 1.0),
        ("llm_security_llm_calls_total{role=\"analyst\",ip_class=\"private\",status=\"success\"} ", 1.0),
        ("llm_security_tool_calls_total{user=\"metrics-user\",tool=\"search\"} ", 2.0),
        ("llm_security_output_entropy_nats_count{model=\"gpt-4o\"} ", 1.0),
        ("llm_security_sentinel_events_processed_total ", 1.0),
        ("llm_security_sentinel_processing_lag_seconds_count ", 1.0),
    ] {
        let v = sample(&text, prefix);
        assert!(v.is_some_and(|v| v >= at_least), "{prefix}: {v:?} (want >= {at_least}) in\n{text}");
    }
    for gauge in [
        "llm_security_outbox_deliveries{status=\"pending\"} ",
        "llm_security_outbox_deliveries{status=\"dead\"} ",
        "llm_security_sentinel_queued_events ",
    ] {
        assert!(sample(&text, gauge).is_some(), "missing {gauge} in\n{text}");
    }
    // Every family exported is listed (and described) in the metrics module.
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = line.split(' ').next().unwrap_or_default();
        let family = llmsec_server::metrics::FAMILIES.iter().find(|f| f.name == name);
        assert!(family.is_some(), "{name} is exported but not listed in metrics::FAMILIES");
        assert!(text.contains(&format!("# HELP {name} ")), "{name} has no HELP line");
    }
}
