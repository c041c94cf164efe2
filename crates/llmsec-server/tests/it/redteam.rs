//! Red-team runs stored in the server: uploaded as `llmsec redteam --json`
//! writes them (figures only), listed over REST and GraphQL, charted by
//! the insights, and read by the posture's security-testing control.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

fn report(target: &str, trials: u64, successes: u64) -> Value {
    let rate = |t: u64, s: u64| json!({"trials": t, "successes": s, "rate": s as f64 / t as f64, "wilson": [0.0, 1.0], "bootstrap": [0.0, 1.0], "few_trials": t < 30});
    json!({
        "summary": {
            "target": target, "trials": trials + 2, "errors": 2, "overall": rate(trials, successes), "corrected": null,
            "groups": {"category": {"jailbreak": rate(trials / 2, successes), "prompt_injection": rate(trials / 2, 0)}}
        },
        "results": [{"id": "jb-1", "prompt": "SECRET-ATTACK-PROMPT-TEXT", "response": "SECRET-MODEL-ANSWER"}]
    })
}

#[tokio::test]
async fn runs_are_stored_as_figures_listed_charted_and_counted_by_the_posture() {
    let t = app().await;
    let ingest = make_key(&t.router, "default", &["ingest"]).await;
    let r = post(&t.router, "/api/v1/redteam/runs", &ingest, report("gpt-4o-mini via gateway", 100, 3)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert!((r.body["attack_success_rate"].as_f64().unwrap() - 0.03).abs() < 1e-9);
    assert_eq!((r.body["trials"].as_u64(), r.body["errors"].as_u64()), (Some(102), Some(2)));
    // The prompts and answers are not kept.
    assert!(!r.text.contains("SECRET-ATTACK-PROMPT-TEXT") && !r.text.contains("SECRET-MODEL-ANSWER"));
    let older = json!({"timestamp": "2026-01-01T00:00:00Z", "summary": report("engine", 60, 30)["summary"]});
    assert_eq!(post(&t.router, "/api/v1/redteam/runs", &ingest, older).await.status, StatusCode::CREATED);

    let list = get(&t.router, "/api/v1/redteam/runs", ADMIN).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let runs = list.body["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["id"], id.as_str(), "newest first");
    assert_eq!(runs[0]["summary"]["by_category"]["jailbreak"]["successes"], 3);
    let since = get(&t.router, "/api/v1/redteam/runs?since=2026-06-01T00:00:00Z", ADMIN).await;
    assert_eq!(since.body["runs"].as_array().unwrap().len(), 1);
    let one = get(&t.router, &format!("/api/v1/redteam/runs/{id}"), ADMIN).await;
    assert_eq!((one.status, one.body["target"].as_str()), (StatusCode::OK, Some("gpt-4o-mini via gateway")));
    let gql = post(
        &t.router,
        "/graphql",
        ADMIN,
        json!({"query": "{ redteamRuns(first: 5) { id target attackSuccessRate summary } }"}),
    )
    .await;
    let gruns = gql.body["data"]["redteamRuns"].as_array().unwrap_or_else(|| panic!("{}", gql.text));
    assert_eq!((gruns.len(), gruns[0]["id"].as_str()), (2, Some(id.as_str())));

    // The insights chart them; the posture's security testing is met by the recent run.
    let now = chrono::Utc::now();
    let path = format!(
        "/api/v1/insights?start={}&end={}&granularity=1d",
        (now - chrono::Duration::days(2)).timestamp_millis(),
        (now + chrono::Duration::hours(1)).timestamp_millis()
    );
    let ins = get(&t.router, &path, ADMIN).await;
    assert_eq!(ins.status, StatusCode::OK, "{}", ins.text);
    assert_eq!(ins.body["redteam"][0]["trials"], 100);
    let posture = get(&t.router, "/api/v1/reports/posture", ADMIN).await;
    assert_eq!(posture.status, StatusCode::OK, "{}", posture.text);
    let check =
        posture.body["checks"].as_array().unwrap().iter().find(|c| c["id"] == "security_testing").unwrap().clone();
    assert_eq!(check["status"], "met", "{check}");

    // Other tenants see none of it.
    let acme = make_key(&t.router, "acme", &["read"]).await;
    assert_eq!(get(&t.router, "/api/v1/redteam/runs", &acme).await.body["runs"], json!([]));
    assert_eq!(get(&t.router, &format!("/api/v1/redteam/runs/{id}"), &acme).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_runs_are_refused_naming_the_field() {
    let t = app().await;
    for (body, field) in [
        (json!({"results": []}), "summary"),
        (json!({"summary": {"target": "x"}}), "summary"),
        (json!({"summary": report("x", 10, 1)["summary"], "timestamp": "soon"}), "timestamp"),
        (json!({"summary": report("x", 10, 1)["summary"], "timestamp": true}), "timestamp"),
    ] {
        let r = post(&t.router, "/api/v1/redteam/runs", ADMIN, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert_eq!(r.body["error"]["field"], field, "{}", r.text);
    }
    let reader = make_key(&t.router, "default", &["read"]).await;
    let r = post(&t.router, "/api/v1/redteam/runs", &reader, report("x", 10, 1)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = get(&t.router, "/api/v1/redteam/runs?limit=0", ADMIN).await;
    assert_eq!(r.body["error"]["field"], "limit");
}
