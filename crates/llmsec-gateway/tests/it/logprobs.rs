//! Logprobs over real HTTP: read into telemetry when the client asked for
//! them, so Sentinel's entropy detector fires on gateway traffic; never
//! spelling out text the gateway held back or rewrote.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{self, ADMIN};

const KEY: &str = "sk-proj-Zq8vN2mXk4Lp7Rt1Wy5Hc9Bd3Fg6Js0Qe";

#[tokio::test]
async fn an_entropy_detector_fires_on_gateway_calls_that_asked_for_logprobs() {
    let detectors = common::temp_dir().join("detectors.yaml");
    std::fs::write(
        &detectors,
        "detectors:\n  - id: unsure-model\n    type: entropy\n    config:\n      threshold: 2.5\n",
    )
    .unwrap();
    let gw = common::start_server_with(|c| c.sentinel.detectors = Some(detectors), |_| {}).await;
    // Without logprobs: nothing for the detector.
    let calm =
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is the capital of France?"}]});
    assert_eq!(gw.post("/v1/chat/completions", &calm).await.status, 200);
    // Asked for: a completion whose tokens each had a probability around 5 %.
    let mut unsure = calm.clone();
    unsure["logprobs"] = json!(true);
    unsure["x_logprobs"] = json!([-3.0, -2.9, -3.4]);
    let r = gw.post("/v1/chat/completions", &unsure).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["choices"][0]["logprobs"]["content"][0]["token"], "Paris ", "unchanged text keeps its logprobs");

    let events = gw.telemetry(2).await;
    let with: Vec<&Value> = events.iter().filter(|e| e["data"].get("logprobs").is_some_and(|l| !l.is_null())).collect();
    assert_eq!(with.len(), 1, "only the call that asked carries logprobs: {events:?}");
    // "Paris is the capital of France." is six words: six values.
    assert_eq!(with[0]["data"]["logprobs"], json!([-3.0, -2.9, -3.4, -3.0, -2.9, -3.4]));

    for _ in 0..100 {
        let r = gw.send(Method::GET, "/api/v1/anomalies", ADMIN, None).await;
        let found = r.body["anomalies"].as_array().into_iter().flatten().find(|a| a["detector_id"] == "unsure-model");
        if let Some(a) = found {
            assert_eq!(a["affected_entity"]["id"], "gpt-4o-mini", "{a}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the entropy detector never fired on the gateway's event");
}

#[tokio::test]
async fn a_redacted_completion_loses_its_logprobs_but_telemetry_keeps_the_numbers() {
    let gw = common::start().await;
    let body = json!({"model": "gpt-4o-mini", "logprobs": true, "x_reply": format!("the key is {KEY} ok"),
        "messages": [{"role": "user", "content": "Show me the deployment config"}]});
    let r = gw.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["choices"][0]["message"]["content"], "the key is [REDACTED_OPENAI_API_KEY_1] ok");
    assert!(r.body["choices"][0]["logprobs"].is_null(), "{}", r.text);
    assert!(!r.text.contains(&KEY[8..]), "{}", r.text);
    let e = gw.telemetry(1).await.pop().unwrap();
    assert_eq!(e["data"]["logprobs"].as_array().map(Vec::len), Some(5));
}

#[tokio::test]
async fn streamed_logprobs_reach_telemetry_with_their_token_text_blanked() {
    let gw = common::start().await;
    let pieces = ["Your key: ", &KEY[..10], &KEY[10..24], &KEY[24..], " done."];
    let body = json!({"model": "gpt-4o-mini", "stream": true, "logprobs": true, "x_logprobs": [-0.25],
        "x_chunks": pieces, "messages": [{"role": "user", "content": "Show me the deployment config"}]});
    let r = gw.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!r.text.contains(&KEY[10..24]) && !r.text.contains(&KEY[24..]), "{}", r.text);
    let datas = common::sse_data(&r.text);
    assert!(common::streamed_content(&datas).contains("[REDACTED_OPENAI_API_KEY_1]"));
    // The numbers still reach the client, without the token text.
    let sent: Vec<Value> = datas
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v.pointer("/choices/0/logprobs/content/0").cloned())
        .collect();
    assert_eq!(sent.len(), pieces.len());
    assert!(sent.iter().all(|t| t["token"] == "" && t["bytes"].is_null() && t["logprob"] == -0.25), "{sent:?}");
    let e = gw.telemetry(1).await.pop().unwrap();
    assert_eq!(e["data"]["logprobs"], json!(vec![-0.25; 5]));
}
