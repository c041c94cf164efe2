//! Per-key gateway limits over real HTTP: the model allow-list (`403
//! model_not_allowed`, `/v1/models` filtered) and token and cost budgets
//! counted in the store from each call's usage (`429 budget_exceeded`
//! before any upstream call), set when a key is made and changed with
//! `PATCH /api/admin/keys/{id}`, shown in key listings, and confined to
//! the key's tenant.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{self, ADMIN, Gw};

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "What is the capital of France?"}]})
}

/// The listing entry of key `id`, as the admin API shows it.
async fn listed(gw: &Gw, id: &str) -> Value {
    let r = gw.send(Method::GET, "/api/admin/keys", ADMIN, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["keys"].as_array().unwrap().iter().find(|k| k["id"] == id).cloned().unwrap()
}

/// Waits until the listing shows `tokens` used in the key's day budget
/// (usage is counted off the request path).
async fn day_usage_reaches(gw: &Gw, id: &str, tokens: u64) -> Value {
    for _ in 0..100 {
        let k = listed(gw, id).await;
        if k["budgets"][0]["used_tokens"].as_u64() >= Some(tokens) {
            return k;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the day budget never showed {tokens} tokens used: {}", listed(gw, id).await);
}

#[tokio::test]
async fn a_model_outside_the_keys_list_is_refused_and_not_listed() {
    let gw = common::start_with(|g| g.upstreams[0].models = vec!["gpt-4o-mini".into(), "gpt-4o".into()]).await;
    let made = gw
        .make_key_with(&json!({"name": "mini-only", "scopes": ["proxy"], "models": ["gpt-4o-mini", "claude-3*"]}))
        .await;
    let (key, id) = (made["key"].as_str().unwrap(), made["id"].as_str().unwrap());
    assert_eq!(made["models"], json!(["gpt-4o-mini", "claude-3*"]));

    let r = gw.post_with("/v1/chat/completions", key, &chat("gpt-4o"), &[]).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(
        (r.body["error"]["code"].as_str(), r.body["error"]["param"].as_str()),
        (Some("model_not_allowed"), Some("model"))
    );
    assert_eq!(r.body["error"]["type"], "permission_error");
    assert_eq!(gw.mock.calls(), 0, "refused before the upstream");
    let r = gw.post_with("/v1/chat/completions", key, &chat("gpt-4o-mini"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A prefix entry admits Anthropic models it starts, on /v1/messages too.
    let msg = json!({"model": "claude-3-haiku", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(gw.post_with("/v1/messages", key, &msg, &[]).await.status, 200);
    let msg = json!({"model": "claude-2", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let r = gw.post_with("/v1/messages", key, &msg, &[]).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (403, Some("model_not_allowed")), "{}", r.text);

    let models = gw.send(Method::GET, "/v1/models", key, None).await;
    let ids: Vec<&str> = models.body["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, ["gpt-4o-mini"]);
    let all = gw.send(Method::GET, "/v1/models", &gw.key, None).await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 2, "a key without a list sees every model");

    // Shown in the listing; lifted with `null`, which the next call sees.
    assert_eq!(listed(&gw, id).await["models"], json!(["gpt-4o-mini", "claude-3*"]));
    let r = gw.send(Method::PATCH, &format!("/api/admin/keys/{id}"), ADMIN, Some(&json!({"models": null}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["models"], Value::Null);
    assert_eq!(gw.post_with("/v1/chat/completions", key, &chat("gpt-4o"), &[]).await.status, 200);
    let events = gw.telemetry(5).await;
    assert!(events.iter().any(|e| e["data"]["error"] == "model_not_allowed"), "refusals are recorded");
}

#[tokio::test]
async fn a_used_up_token_budget_refuses_before_the_upstream_until_raised() {
    let gw = common::start().await;
    let made = gw
        .make_key_with(&json!({"name": "budgeted", "scopes": ["proxy"], "budgets": [{"period": "day", "tokens": 30}]}))
        .await;
    let (key, id) = (made["key"].as_str().unwrap(), made["id"].as_str().unwrap());
    assert_eq!(made["budgets"][0]["tokens"], 30);
    assert_eq!(made["budgets"][0]["used_tokens"], 0);

    // The mock answers with 18 tokens of usage: the first call leaves 12.
    assert_eq!(gw.post_with("/v1/chat/completions", key, &chat("gpt-4o-mini"), &[]).await.status, 200);
    day_usage_reaches(&gw, id, 18).await;
    // A streamed call counts the usage of its final chunk.
    let mut streamed = chat("gpt-4o-mini");
    streamed["stream"] = json!(true);
    streamed["x_chunks"] = json!(["Paris", " it is."]);
    let r = gw.post_with("/v1/chat/completions", key, &streamed, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let k = day_usage_reaches(&gw, id, 36).await;
    assert_eq!(k["budgets"][0]["used_tokens"], 36);
    assert!(k["budgets"][0]["resets_at"].as_str().unwrap().ends_with("T00:00:00.000Z"), "{k}");

    let calls = gw.mock.calls();
    let r = gw.post_with("/v1/chat/completions", key, &chat("gpt-4o-mini"), &[]).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "budget_exceeded");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("day budget of 30 tokens"), "{}", r.text);
    assert_eq!(gw.mock.calls(), calls, "refused before the upstream");
    let other = gw.post("/v1/chat/completions", &chat("gpt-4o-mini")).await;
    assert_eq!(other.status, 200, "another key of the tenant has its own budget (none)");

    // Raising the budget lets calls through again; the usage counted stays.
    let patch = json!({"budgets": [{"period": "day", "tokens": 100}, {"period": "month", "cost": 5.0}]});
    let r = gw.send(Method::PATCH, &format!("/api/admin/keys/{id}"), ADMIN, Some(&patch)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["budgets"][0]["used_tokens"], 36);
    assert_eq!(r.body["budgets"][1]["cost"], 5.0);
    assert_eq!(gw.post_with("/v1/chat/completions", key, &chat("gpt-4o-mini"), &[]).await.status, 200);
    day_usage_reaches(&gw, id, 54).await;
}

#[tokio::test]
async fn a_retry_after_header_comes_with_budget_exceeded() {
    let gw = common::start().await;
    let made = gw
        .make_key_with(&json!({"name": "tiny", "scopes": ["proxy"], "budgets": [{"period": "month", "tokens": 20}]}))
        .await;
    let (key, id) = (made["key"].as_str().unwrap(), made["id"].as_str().unwrap());
    assert_eq!(gw.post_with("/v1/chat/completions", key, &chat("gpt-4o-mini"), &[]).await.status, 200);
    for _ in 0..100 {
        if listed(&gw, id).await["budgets"][0]["used_tokens"].as_u64() >= Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(chat("gpt-4o-mini").to_string())
        .send()
        .await
        .unwrap();
    // 18 used, and the call's own prompt does not fit the 2 left: nothing
    // is in flight, so only the month's end makes room.
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait > 1 && wait <= 31 * 86_400, "until the month ends: {wait}");
}

#[tokio::test]
async fn key_limits_are_checked_named_and_confined_to_the_tenant() {
    let gw = common::start().await;
    for (body, field) in [
        (json!({"models": []}), "models"),
        (json!({"models": [" gpt"]}), "models[0]"),
        (json!({"budgets": [{"period": "day"}]}), "budgets[0]"),
        (json!({"budgets": [{"period": "day", "tokens": 0}]}), "budgets[0].tokens"),
        (json!({"budgets": [{"period": "day", "cost": -1.0}]}), "budgets[0].cost"),
        (json!({"budgets": [{"period": "day", "tokens": 5}, {"period": "day", "cost": 1.0}]}), "budgets[1].period"),
        (json!({"budgets": [{"period": "week", "tokens": 5}]}), "budgets[0].period"),
    ] {
        let mut create = json!({"name": "x", "scopes": ["proxy"]});
        for (k, v) in body.as_object().unwrap() {
            create[k] = v.clone();
        }
        let r = gw.post_with("/api/admin/keys", ADMIN, &create, &[]).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.body["error"]["field"], field, "{body}: {}", r.text);
    }

    // A tenant's admin cannot see or change another tenant's key.
    let other = gw.make_key_with(&json!({"tenant": "globex", "name": "g", "scopes": ["proxy"]})).await;
    let globex_admin = gw.make_key_with(&json!({"tenant": "globex", "name": "ga", "scopes": ["admin"]})).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let acme_admin = gw.make_key_with(&json!({"tenant": "acme", "name": "aa", "scopes": ["admin"]})).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/admin/keys/{}", other["id"].as_str().unwrap());
    let patch = json!({"models": ["gpt-4o-mini"]});
    let r = gw.send(Method::PATCH, &path, &acme_admin, Some(&patch)).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = gw.send(Method::PATCH, &path, &globex_admin, Some(&patch)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = gw.send(Method::PATCH, &path, &globex_admin, Some(&json!({"name": "renamed"}))).await;
    assert_eq!((r.status, r.body["error"]["field"].as_str()), (400, Some("name")), "{}", r.text);
    let r = gw.send(Method::GET, "/api/admin/audit", ADMIN, None).await;
    assert!(r.body["entries"].as_array().unwrap().iter().any(|e| e["action"] == "key.update"), "{}", r.text);
}

#[tokio::test]
async fn calls_in_flight_hold_their_expected_tokens_so_concurrent_calls_cannot_overrun_a_budget() {
    let gw = common::start().await;
    let made = gw
        .make_key_with(&json!({"name": "tight", "scopes": ["proxy"], "budgets": [{"period": "day", "tokens": 100}]}))
        .await;
    let (key, id) = (made["key"].as_str().unwrap().to_owned(), made["id"].as_str().unwrap().to_owned());
    // A long streamed call that may write up to 85 tokens: it holds them
    // (plus its prompt, 11 estimated: 96 of 100) while it runs.
    let mut long = chat("gpt-4o-mini");
    long["stream"] = json!(true);
    long["x_slow"] = json!(true);
    long["max_tokens"] = json!(85);
    let mut running = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(long.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(running.status().as_u16(), 200);
    let first = tokio::time::timeout(Duration::from_secs(10), running.chunk()).await.unwrap().unwrap();
    assert!(first.is_some());

    // Nothing is used yet, but what is held leaves no room: refused before the upstream.
    assert_eq!(listed(&gw, &id).await["budgets"][0]["used_tokens"], 0);
    let calls = gw.mock.calls();
    let r = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(chat("gpt-4o-mini").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1", "the calls in flight end soon");
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "budget_exceeded");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("0 used") && msg.contains("held by calls in flight"), "{msg}");
    assert_eq!(gw.mock.calls(), calls, "refused before the upstream");

    // The long call ends (its client goes away): what it used is counted,
    // what it held is released, and the next call passes.
    drop(running);
    let mut passed = false;
    for _ in 0..100 {
        let r = gw.post_with("/v1/chat/completions", &key, &chat("gpt-4o-mini"), &[]).await;
        if r.status == 200 {
            passed = true;
            break;
        }
        assert_eq!(r.status, 429, "{}", r.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(passed, "the hold was not released after the call ended");
    let used = listed(&gw, &id).await["budgets"][0]["used_tokens"].as_u64().unwrap();
    assert!(used > 0 && used < 100, "the ended call's own usage is counted: {used}");
}

/// Sends `n` chat calls with `max_tokens` set at once, through the
/// gateways in `gws` in turn, and returns how many passed and how many
/// were refused with `budget_exceeded`.
async fn burst(gws: &[&Gw], key: &str, n: usize, max_tokens: u64) -> (usize, usize) {
    let mut body = chat("gpt-4o-mini");
    body["max_tokens"] = json!(max_tokens);
    let calls = (0..n).map(|i| {
        let (gw, body) = (gws[i % gws.len()], body.clone());
        async move { gw.post_with("/v1/chat/completions", key, &body, &[]).await }
    });
    let (mut passed, mut refused) = (0, 0);
    for r in futures_util::future::join_all(calls).await {
        match r.status {
            200 => passed += 1,
            429 => {
                assert_eq!(r.body["error"]["code"], "budget_exceeded", "{}", r.text);
                refused += 1;
            }
            s => panic!("unexpected {s}: {}", r.text),
        }
    }
    (passed, refused)
}

/// Waits until the key's day usage stops changing and returns it.
async fn settled_usage(gw: &Gw, id: &str, expect: u64) -> u64 {
    for _ in 0..100 {
        let used = listed(gw, id).await["budgets"][0]["used_tokens"].as_u64().unwrap();
        if used >= expect {
            return used;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    listed(gw, id).await["budgets"][0]["used_tokens"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_calls_never_use_more_than_the_budget() {
    let gw = common::start().await;
    let made = gw
        .make_key_with(&json!({"name": "burst", "scopes": ["proxy"], "budgets": [{"period": "day", "tokens": 100}]}))
        .await;
    let (key, id) = (made["key"].as_str().unwrap(), made["id"].as_str().unwrap());
    // Each call holds its prompt (11 tokens estimated) plus max_tokens 10,
    // and uses 18 (the mock's usage): at most 100 / 21 calls hold at once,
    // and what they use never passes what they held.
    let upstream_before = gw.mock.calls();
    let (passed, refused) = burst(&[&gw], key, 24, 10).await;
    assert!(passed >= 1 && refused >= 1, "passed {passed}, refused {refused}");
    assert_eq!(gw.mock.calls() - upstream_before, passed, "refused calls never reached the upstream");
    let used = settled_usage(&gw, id, 18 * passed as u64).await;
    assert_eq!(used, 18 * passed as u64, "every call that passed is counted once");
    assert!(used <= 100, "the budget of 100 was passed: {used} used by {passed} calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateway_replicas_on_one_database_share_the_holds() {
    let dir = common::temp_dir();
    let a = common::start_server_with(|c| c.data_dir = dir.clone(), |_| {}).await;
    let b = common::start_server_with(|c| c.data_dir = dir.clone(), |_| {}).await;
    let made = a
        .make_key_with(&json!({"name": "shared", "scopes": ["proxy"], "budgets": [{"period": "day", "tokens": 100}]}))
        .await;
    let (key, id) = (made["key"].as_str().unwrap(), made["id"].as_str().unwrap());
    let (passed, refused) = burst(&[&a, &b], key, 24, 10).await;
    assert!(passed >= 1 && refused >= 1, "passed {passed}, refused {refused}");
    assert_eq!(a.mock.calls() + b.mock.calls(), passed);
    let used = settled_usage(&a, id, 18 * passed as u64).await;
    assert_eq!(used, 18 * passed as u64);
    assert!(used <= 100, "the replicas together passed the budget of 100: {used} used by {passed} calls");
    assert_eq!(listed(&b, id).await["budgets"][0]["used_tokens"], used, "both replicas read one usage");
}

#[tokio::test]
async fn a_hold_is_released_when_the_upstream_fails() {
    let gw = common::start().await;
    let made = gw
        .make_key_with(&json!({"name": "fails", "scopes": ["proxy"], "budgets": [{"period": "day", "tokens": 100}]}))
        .await;
    let (key, id) = (made["key"].as_str().unwrap(), made["id"].as_str().unwrap());
    // Holds 11 + 80: the whole budget but 9, while it runs.
    let mut failing = chat("error-model");
    failing["max_tokens"] = json!(80);
    let r = gw.post_with("/v1/chat/completions", key, &failing, &[]).await;
    assert_eq!(r.status, 500, "the upstream's own error passes through: {}", r.text);
    // Once the failed call is recorded its hold is gone and another call of
    // the same size fits; the failed call used nothing.
    let mut next = chat("gpt-4o-mini");
    next["max_tokens"] = json!(80);
    let mut passed = false;
    for _ in 0..100 {
        let r = gw.post_with("/v1/chat/completions", key, &next, &[]).await;
        if r.status == 200 {
            passed = true;
            break;
        }
        assert_eq!(r.body["error"]["code"], "budget_exceeded", "{}", r.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(passed, "the failed call's hold was never released");
    assert_eq!(settled_usage(&gw, id, 18).await, 18, "only the call that was answered is counted");
}

#[tokio::test]
async fn a_call_without_a_cap_holds_the_configured_completion_tokens() {
    let gw = common::start_with(|g| g.budget_hold_tokens = 200).await;
    let made = gw
        .make_key_with(&json!({"name": "capless", "scopes": ["proxy"], "budgets": [{"period": "day", "tokens": 100}]}))
        .await;
    let key = made["key"].as_str().unwrap();
    let calls = gw.mock.calls();
    let r = gw.post_with("/v1/chat/completions", key, &chat("gpt-4o-mini"), &[]).await;
    assert_eq!(r.status, 429, "11 prompt tokens + 200 held do not fit 100: {}", r.text);
    let msg = r.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("no room for this call's 211 tokens") && msg.contains("resets at"), "{msg}");
    assert_eq!(gw.mock.calls(), calls, "refused before the upstream");
    let mut capped = chat("gpt-4o-mini");
    capped["max_tokens"] = json!(50);
    assert_eq!(gw.post_with("/v1/chat/completions", key, &capped, &[]).await.status, 200, "its own cap wins");
}
