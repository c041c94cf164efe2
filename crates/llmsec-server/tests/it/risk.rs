//! Risk scores end to end: attacks raise a user's and session's score,
//! `GET /api/v1/risk` and GraphQL `riskScores` rank them, the Rego policy
//! reads them (`input.request.risk`), and `[risk] block_above` refuses a
//! subject at or above it while others pass.

use axum::http::StatusCode;
use serde_json::json;

use crate::common::*;

const RISK_POLICY: &str = r#"package llmsec

default decision := {"action": "allow"}

decision := {"action": "block", "reasons": [sprintf("user risk %v", [input.request.risk.user])]} if {
    input.request.risk.user >= 30
}
"#;

#[tokio::test]
async fn attacks_raise_scores_that_rank_block_above_the_limit_and_reach_the_policy() {
    let t = app_with(|c| c.risk.block_above = Some(60.0)).await;
    let reader = make_key(&t.router, "default", &["read"]).await;
    let attack = |user: &str| json!({"input": ATTACK, "user_id": user, "session_id": format!("{user}-s1")});

    let first = post(&t.router, "/api/security/analyze", ADMIN, attack("mallory")).await;
    assert_eq!(first.body["verdict"], "block", "{}", first.text);
    let one = get(&t.router, "/api/v1/risk/user/mallory", &reader).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    let after_one = one.body["score"].as_f64().unwrap();
    assert!(after_one > 0.0 && after_one < 60.0, "{}", one.text);
    assert_eq!(one.body["threats"], 1);

    // More attacks push mallory past the limit: refused before analysis.
    let mut refused = None;
    for _ in 0..20 {
        let r = post(&t.router, "/api/security/analyze", ADMIN, attack("mallory")).await;
        if r.status == StatusCode::FORBIDDEN {
            refused = Some(r);
            break;
        }
    }
    let refused = refused.expect("the risk limit was never reached");
    assert!(refused.text.contains("risk score of user mallory"), "{}", refused.text);
    assert!(refused.text.contains("risk.block_above (60)"), "{}", refused.text);
    // Another user is not held to mallory's score.
    let ok = post(&t.router, "/api/security/analyze", ADMIN, json!({"input": BENIGN, "user_id": "alice"})).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);

    let top = get(&t.router, "/api/v1/risk?kind=user&limit=5", &reader).await;
    assert_eq!(top.body["scores"][0]["id"], "mallory", "{}", top.text);
    assert!(top.body["scores"][0]["score"].as_f64().unwrap() >= 60.0);
    assert_eq!(top.body["block_above"], 60.0);
    let sessions = get(&t.router, "/api/v1/risk?kind=session", &reader).await;
    assert_eq!(sessions.body["scores"][0]["id"], "mallory-s1", "{}", sessions.text);
    let alice = get(&t.router, "/api/v1/risk/user/alice", &reader).await;
    assert_eq!(alice.body["score"], 0.0, "{}", alice.text);
    let bad = get(&t.router, "/api/v1/risk?kind=tenant", &reader).await;
    assert_eq!((bad.status, bad.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("kind")));
    let bad = get(&t.router, "/api/v1/risk?limit=0", &reader).await;
    assert_eq!(bad.body["error"]["field"], "limit", "{}", bad.text);
    let other = make_key(&t.router, "acme", &["read"]).await;
    let theirs = get(&t.router, "/api/v1/risk?kind=user", &other).await;
    assert_eq!(theirs.body["scores"], json!([]), "scores stay in their tenant");

    let q = post(
        &t.router,
        "/graphql",
        &reader,
        json!({"query": "{ riskScores(kind: \"user\", limit: 1) { id score threats } }"}),
    )
    .await;
    assert_eq!(q.body["data"]["riskScores"][0]["id"], "mallory", "{}", q.text);
    assert!(q.body["data"]["riskScores"][0]["threats"].as_u64().unwrap() >= 2);
}

#[tokio::test]
async fn the_policy_reads_the_callers_risk() {
    let dir = temp_dir();
    let rego = dir.join("llmsec.rego");
    std::fs::write(&rego, RISK_POLICY).unwrap();
    let t = app_with(|c| {
        c.policy = Some(llmsec_server::config::RegoPolicyConfig { rego: vec![rego], reload_secs: 0 });
    })
    .await;
    let benign = |user: &str| json!({"input": BENIGN, "user_id": user});
    let r = post(&t.router, "/api/security/analyze", ADMIN, benign("bob")).await;
    assert_eq!(r.body["verdict"], "allow", "{}", r.text);
    // Bob attacks (the policy allows what the engine would block while his
    // risk is low, so the engine's findings count), then his benign
    // question is blocked by the policy on his risk alone.
    for _ in 0..6 {
        post(&t.router, "/api/security/analyze", ADMIN, json!({"input": ATTACK, "user_id": "bob"})).await;
    }
    let r = post(&t.router, "/api/security/analyze", ADMIN, benign("bob")).await;
    assert_eq!(r.body["verdict"], "block", "{}", r.text);
    assert!(r.body["policy"]["reasons"][0].as_str().unwrap().starts_with("user risk "), "{}", r.text);
    let r = post(&t.router, "/api/security/analyze", ADMIN, benign("carol")).await;
    assert_eq!(r.body["verdict"], "allow", "{}", r.text);
}

#[test]
fn a_risk_section_with_a_bad_value_is_refused_naming_it() {
    let c: llmsec_server::config::ServerConfig = toml::from_str("[risk]\nblock_above = 150\n").unwrap();
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("risk.block_above"), "{e}");
    let e = toml::from_str::<llmsec_server::config::ServerConfig>("[risk]\nhalf_life = 3\n").unwrap_err().to_string();
    assert!(e.contains("half_life"), "{e}");
}

#[tokio::test]
async fn scores_are_rebuilt_from_the_store_after_a_restart() {
    let dir = temp_dir();
    let t = app_with(|c| c.data_dir = dir.clone()).await;
    for _ in 0..3 {
        post(&t.router, "/api/security/analyze", ADMIN, json!({"input": ATTACK, "user_id": "mallory"})).await;
    }
    let reader = make_key(&t.router, "default", &["read"]).await;
    let before = get(&t.router, "/api/v1/risk/user/mallory", &reader).await.body["score"].as_f64().unwrap();
    assert!(before > 0.0);
    t.server.shutdown().await;

    let t = app_with(|c| c.data_dir = dir.clone()).await;
    let after = get(&t.router, "/api/v1/risk/user/mallory", &reader).await;
    let score = after.body["score"].as_f64().unwrap();
    assert!((score - before).abs() < 1.0, "rebuilt {score} vs {before}: {}", after.text);
    assert_eq!(after.body["threats"], 3);
}
