//! `GET /api/v1/insights`: the dashboard's security charts from stored
//! analyses and telemetry, confined to the caller's tenant.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::common::{ADMIN, ATTACK, BENIGN, app, get, make_key, post};

fn call(id: &str, user: &str, ip: &str, role: &str, tools: &[&str], status: &str, logprobs: &[f64]) -> Value {
    let now = chrono::Utc::now().to_rfc3339();
    json!({
        "event_id": id, "timestamp": now,
        "event_type": if status == "success" { "llm.response" } else { "llm.error" },
        "application_id": "agent",
        "data": {"model": "gpt-4o", "status": status, "logprobs": logprobs},
        "metadata": {"user_id": user, "ip": ip, "role": role, "tool_calls": tools}
    })
}

#[tokio::test]
async fn insights_count_attacks_tools_and_abuse_of_the_callers_tenant() {
    let t = app().await;
    for input in [ATTACK, ATTACK, BENIGN] {
        let r = post(&t.router, "/api/security/analyze", ADMIN, json!({"input": input})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let calls = [
        call("c1", "alice", "203.0.113.7", "agent", &["search", "shell"], "success", &[-0.1, -0.3]),
        call("c2", "alice", "203.0.113.7", "agent", &["shell"], "success", &[-0.2]),
        call("c3", "bob", "198.51.100.1", "user", &["search"], "blocked", &[]),
    ];
    for c in calls {
        let r = post(&t.router, "/api/v1/telemetry/events", ADMIN, c).await;
        assert!(r.status.is_success(), "{}", r.text);
    }
    let start = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let end = (chrono::Utc::now() + chrono::Duration::minutes(1)).to_rfc3339();
    let path = format!("/api/v1/insights?start={}&end={}&granularity=2h", urlencode(&start), urlencode(&end));
    let r = get(&t.router, &path, ADMIN).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let b = &r.body;
    assert_eq!(b["security"].as_array().unwrap().len(), 1);
    let p = &b["security"][0];
    assert_eq!((p["analyses"].as_u64(), p["blocked"].as_u64()), (Some(3), Some(2)));
    assert_eq!((p["attacks"].as_u64(), p["attacks_passed"].as_u64()), (Some(2), Some(0)));
    assert_eq!(p["attack_success_rate"].as_f64(), Some(0.0));
    assert!(p["analysis_us_p50"].as_f64().unwrap() > 0.0);
    assert!(p["analysis_us_p99"].as_f64().unwrap() >= p["analysis_us_p50"].as_f64().unwrap());
    // Two completions had logprobs: mean entropy of 0.2 and 0.2 nats.
    assert_eq!(b["entropy"][0]["completions"].as_u64(), Some(2));
    assert!((b["entropy"][0]["mean_entropy"].as_f64().unwrap() - 0.2).abs() < 1e-9);
    assert_eq!(b["tool_heatmap"]["users"], json!(["alice", "bob"]));
    assert_eq!(b["tool_heatmap"]["tools"], json!(["search", "shell"]));
    assert_eq!(b["tool_heatmap"]["counts"], json!([[1, 2], [1, 0]]));
    // The refused caller first.
    assert_eq!(b["by_ip"][0]["key"], "198.51.100.1");
    assert_eq!(b["by_ip"][0]["blocked"], 1);
    assert_eq!(b["by_ip"][1]["requests"], 2);
    assert_eq!(b["by_role"].as_array().unwrap().len(), 2);
    assert_eq!((b["events_read"].as_u64(), b["telemetry_read"].as_u64()), (Some(3), Some(3)));
    assert_eq!(b["truncated"], false);

    // Another tenant's reader sees none of it.
    let other = make_key(&t.router, "acme", &["read"]).await;
    let r = get(&t.router, &path, &other).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["security"][0]["analyses"], 0);
    assert_eq!(r.body["telemetry_read"], 0);
    assert_eq!(r.body["tool_heatmap"]["users"], json!([]));
}

#[tokio::test]
async fn bad_insights_parameters_are_named() {
    let t = app().await;
    for (path, field) in [
        ("/api/v1/insights?end=2026-01-01T00:00:00Z", "start"),
        ("/api/v1/insights?start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z", "end"),
        ("/api/v1/insights?start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z&granularity=1ms", "granularity"),
        ("/api/v1/insights?start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z&granularity=soon", "granularity"),
        ("/api/v1/insights?start=yesterday&end=2026-01-02T00:00:00Z", "start"),
        ("/api/v1/insights?start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z&tenant=x", "tenant"),
    ] {
        let r = get(&t.router, path, ADMIN).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text);
        assert_eq!(r.body["error"]["field"], field, "{path}: {}", r.text);
    }
    // A key without `read` is refused.
    let ingest = make_key(&t.router, "default", &["ingest"]).await;
    let r = get(&t.router, "/api/v1/insights?start=0&end=1000", &ingest).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}
