//! Rego policies (`[policy]`) over real HTTP: the decision replaces the
//! engine's verdict with reasons and obligations, sees the request's
//! tenant and application, is stored with the event, reloads when the
//! files change, and keeps the policy in force when a change breaks it.

use axum::http::StatusCode;
use serde_json::json;

use crate::common::*;

const POLICY: &str = r#"package llmsec

default decision := {"action": "allow"}

# The engine's block stands.
decision := {"action": "block", "reasons": ["the engine blocked it"]} if input.analysis.verdict == "block"

# The children's tutor also blocks what the engine only noticed.
decision := {"action": "block", "reasons": [sprintf("strict application %v", [input.request.application])]} if {
    input.analysis.verdict != "block"
    input.request.application == "kids-tutor"
    count(input.analysis.threats) > 0
}

# Personal data from the EU tenant is redacted.
decision := {"action": "sanitize", "reasons": ["gdpr"], "obligations": {"redact": ["personal_data"]}} if {
    input.analysis.verdict != "block"
    input.request.tenant == "eu"
    not input.request.application == "kids-tutor"
    some t in input.analysis.threats
    t.type == "sensitive_data"
}
"#;

async fn served(dir: &std::path::Path) -> (TestApp, Http) {
    let rego = dir.join("llmsec.rego");
    let t = app_with(|c| {
        c.policy = Some(llmsec_server::config::RegoPolicyConfig { rego: vec![rego], reload_secs: 1 });
    })
    .await;
    let http = Http::new(crate::grpc::serve(t.router.clone()).await);
    (t, http)
}

#[tokio::test]
async fn the_policy_decides_with_the_request_context_and_reloads() {
    let dir = temp_dir();
    std::fs::write(dir.join("llmsec.rego"), POLICY).unwrap();
    let (t, http) = served(&dir).await;
    let eu = make_key(&t.router, "eu", &["analyze", "read"]).await;

    let r = http.post("/api/security/analyze", ADMIN, json!({"input": ATTACK})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["verdict"], "block");
    assert_eq!(r.body["policy"]["reasons"], json!(["the engine blocked it"]));

    // A prompt with an e-mail address: the engine reports it and allows it;
    // the policy blocks it for the tutor and redacts it for the EU tenant.
    let text = "Please write to wren.okafor@example.org about my order";
    let r = http.post("/api/security/analyze", ADMIN, json!({"input": text})).await;
    assert_eq!(r.body["verdict"], "allow", "{}", r.text);
    let r = http.post("/api/security/analyze", ADMIN, json!({"input": text, "application_id": "kids-tutor"})).await;
    assert_eq!(r.body["verdict"], "block", "{}", r.text);
    assert_eq!(r.body["is_secure"], false);
    assert_eq!(r.body["policy"]["reasons"], json!(["strict application kids-tutor"]));
    let r = http.post("/api/security/analyze", &eu, json!({"input": text})).await;
    assert_eq!(r.body["verdict"], "sanitize", "{}", r.text);
    assert_eq!(r.body["policy"]["obligations"]["redact"], json!(["personal_data"]));
    let sanitized = r.body["sanitized"].as_str().unwrap();
    assert!(!sanitized.contains("wren.okafor@example.org"), "{sanitized}");
    // The stored event carries the policy's verdict.
    let events = http.get("/api/security/events", &eu).await;
    assert_eq!(events.body["events"][0]["verdict"], "sanitize", "{}", events.text);

    // The replay's dry run follows the policy too, and stores nothing.
    let dry =
        http.post("/api/security/analyze/dry-run", ADMIN, json!({"input": text, "application_id": "kids-tutor"})).await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.text);
    assert_eq!(dry.body["verdict"], "block", "{}", dry.text);
    assert_eq!(dry.body["policy"]["reasons"], json!(["strict application kids-tutor"]));

    // A change that does not compile leaves the policy in force…
    std::fs::write(dir.join("llmsec.rego"), "package llmsec\ndecision := {\n").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let r = http.post("/api/security/analyze", ADMIN, json!({"input": text, "application_id": "kids-tutor"})).await;
    assert_eq!(r.body["verdict"], "block", "the broken change replaced the policy: {}", r.text);
    // …and a good one takes over.
    std::fs::write(
        dir.join("llmsec.rego"),
        "package llmsec\ndecision := {\"action\": \"allow\", \"reasons\": [\"open day\"]}\n",
    )
    .unwrap();
    eventually(10, || async {
        let r = http.post("/api/security/analyze", ADMIN, json!({"input": ATTACK})).await;
        (r.body["verdict"] == "allow").then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_policy_that_does_not_load_stops_the_start_naming_the_file() {
    let dir = temp_dir();
    std::fs::write(dir.join("bad.rego"), "package llmsec\ndecision := {\n").unwrap();
    let mut c = config();
    c.policy = Some(llmsec_server::config::RegoPolicyConfig { rego: vec![dir.join("bad.rego")], reload_secs: 0 });
    let e = llmsec_server::Server::start(c, Some(ADMIN.into())).await.expect_err("bad policy");
    assert!(e.to_string().contains("bad.rego"), "{e}");
    let mut c = config();
    c.policy = Some(llmsec_server::config::RegoPolicyConfig { rego: vec![], reload_secs: 0 });
    let e = llmsec_server::Server::start(c, Some(ADMIN.into())).await.expect_err("empty");
    assert!(e.to_string().contains("policy.rego"), "{e}");
}

const TOOLS_POLICY: &str = r#"package llmsec

default decision := {"action": "allow"}

# Only admins may hand a model the shell tool, and only on gpt-4o.
decision := {"action": "block", "reasons": [sprintf("%v may not offer the shell tool", [input.request.role])]} if {
    "shell" in input.request.tools
    input.request.role != "admin"
}

decision := {"action": "block", "reasons": ["shell only on gpt-4o"]} if {
    "shell" in input.request.tools
    input.request.role == "admin"
    input.request.model != "gpt-4o"
}
"#;

#[tokio::test]
async fn the_policy_sees_the_role_model_and_tools_a_request_names() {
    let dir = temp_dir();
    std::fs::write(dir.join("llmsec.rego"), TOOLS_POLICY).unwrap();
    let (_t, http) = served(&dir).await;
    let ask = |role: &str, model: &str, tools: Vec<&str>| json!({"input": BENIGN, "user_id": "u1", "role": role, "model": model, "tools": tools});
    let r = http.post("/api/security/analyze", ADMIN, ask("guest", "gpt-4o", vec!["search", "shell"])).await;
    assert_eq!((r.status, r.body["verdict"].as_str()), (StatusCode::OK, Some("block")), "{}", r.text);
    assert_eq!(r.body["policy"]["reasons"], json!(["guest may not offer the shell tool"]));
    let r = http.post("/api/security/analyze", ADMIN, ask("admin", "gpt-4o", vec!["shell"])).await;
    assert_eq!(r.body["verdict"], "allow", "{}", r.text);
    let r = http.post("/api/security/analyze", ADMIN, ask("admin", "gpt-3.5", vec!["shell"])).await;
    assert_eq!(r.body["verdict"], "block", "{}", r.text);
    let r = http.post("/api/security/analyze", ADMIN, ask("guest", "gpt-4o", vec!["search"])).await;
    assert_eq!(r.body["verdict"], "allow", "{}", r.text);
    // Bad facts are named.
    let r = http.post("/api/security/analyze", ADMIN, ask("guest", "gpt-4o", vec![""])).await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("tools[0]")),
        "{}",
        r.text
    );
    let r = http.post("/api/security/analyze", ADMIN, ask("line\nbreak", "gpt-4o", vec![])).await;
    assert_eq!(r.body["error"]["field"], "role", "{}", r.text);
}
