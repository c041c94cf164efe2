//! What the server keeps of users' text, over real HTTP: storage redaction
//! whatever the verdict, secrets and PII reported on prompts, telemetry
//! content under the storage setting, and erasure that leaves no row
//! naming the user in any table.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

/// A served app and a client for it.
struct Served {
    t: TestApp,
    http: Http,
}

impl Served {
    async fn start(f: impl FnOnce(&mut llmsec_server::config::ServerConfig)) -> Served {
        let t = app_with(f).await;
        let http = Http::new(crate::grpc::serve(t.router.clone()).await);
        Served { t, http }
    }
}

const EMAIL: &str = "wren.okafor@example.org";
const KEY: &str = "sk-proj-Tq4Lw9Zx2Vb7Nm3Kc8Rf1Hy6Gd5Js0Pa";

fn kinds(r: &Resp) -> Vec<String> {
    r.body["threats"].as_array().unwrap().iter().map(|t| t["type"].as_str().unwrap().to_owned()).collect()
}

/// Everything the SQLite files of a test server hold, as text.
fn database_bytes(dir: &std::path::Path) -> String {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("llmsec.db")) {
            all.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(!all.is_empty(), "no database file in {}", dir.display());
    String::from_utf8_lossy(&all).into_owned()
}

#[tokio::test]
async fn stored_text_is_redacted_whatever_the_verdict() {
    let s = Served::start(|_| {}).await;
    let key = make_key(&s.t.router, "acme", &["analyze", "read"]).await;
    // Three zero-width spaces alone give a `sanitize` verdict whose text
    // only loses them: the address and the key must still not be stored.
    let prompt = format!("Please mail {EMAIL} the report.\u{200b}\u{200b}\u{200b} My key is {KEY}.");
    for (path, field) in [("/api/security/analyze", "input"), ("/api/security/validate", "output")] {
        for text in [prompt.clone(), prompt.replace('\u{200b}', "")] {
            let r = s.http.post(path, &key, json!({ field: text })).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            let found = kinds(&r);
            assert!(
                found.iter().any(|k| k == "secret_leak") && found.iter().any(|k| k == "sensitive_data"),
                "{path}: secrets and PII are reported: {found:?}"
            );
            let id = r.body["event_id"].as_str().unwrap();
            let list = s.http.get("/api/security/events?limit=100", &key).await;
            let ev = list.body["events"].as_array().unwrap().iter().find(|e| e["id"] == id).unwrap().clone();
            let stored = ev["input"].as_str().unwrap_or_default();
            assert!(stored.contains("[REDACTED_EMAIL_1]"), "{path}: {stored}");
            assert!(!stored.contains(EMAIL) && !stored.contains("sk-proj-"), "{path} kept it in clear: {stored}");
            assert!(!stored.contains('\u{200b}'));
        }
    }
    // Nothing in clear in the database file either.
    s.t.server.state().store.ping().await.unwrap();
    let db = database_bytes(&s.t.server.state().config.data_dir);
    assert!(!db.contains(EMAIL) && !db.contains(KEY));
}

#[tokio::test]
async fn secrets_in_prompts_follow_the_input_data_action() {
    let dir = temp_dir();
    let engine = dir.join("engine.toml");
    std::fs::write(&engine, "[input_data]\naction = \"sanitize\"\n").unwrap();
    let s = Served::start(|c| c.engine_config = Some(engine.clone())).await;
    let key = make_key(&s.t.router, "acme", &["analyze"]).await;
    let r = s.http.post("/api/security/analyze", &key, json!({"input": format!("Use {KEY} to call the API")})).await;
    assert_eq!(r.body["verdict"], "sanitize", "{}", r.text);
    assert!(!r.body["sanitized"].as_str().unwrap().contains("sk-proj-"), "{}", r.text);
    // By default a secret in a prompt is reported, not acted on.
    let plain = Served::start(|_| {}).await;
    let key = make_key(&plain.t.router, "acme", &["analyze"]).await;
    let r =
        plain.http.post("/api/security/analyze", &key, json!({"input": format!("Use {KEY} to call the API")})).await;
    assert_eq!((r.body["verdict"].as_str(), r.body["is_secure"].as_bool()), (Some("allow"), Some(true)), "{}", r.text);
    assert!(kinds(&r).contains(&"secret_leak".to_owned()));
}

fn telemetry(id: &str, user: &str, prompt: &str) -> Value {
    json!({
        "event_id": id,
        "timestamp": "2026-12-01T10:00:00Z",
        "event_type": "llm.request",
        "application_id": "chatbot-prod",
        "data": {"model": "gpt-4o", "prompt": prompt, "completion": format!("Sure, {EMAIL}"), "error": format!("upstream echoed {KEY}")},
        "metadata": {"user_id": user}
    })
}

#[tokio::test]
async fn telemetry_text_is_stored_under_the_storage_setting() {
    for (mode, kept) in [
        (llmsec_server::config::InputRetention::Redacted, Some("[REDACTED_EMAIL_1]")),
        (llmsec_server::config::InputRetention::None, None),
        (llmsec_server::config::InputRetention::Full, Some(EMAIL)),
    ] {
        let s = Served::start(|c| c.storage.input = mode).await;
        let key = make_key(&s.t.router, "acme", &["ingest"]).await;
        let r =
            s.http.post("/api/v1/telemetry/events", &key, telemetry("t1", "u1", &format!("Write to {EMAIL}"))).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        let rows = s.t.server.state().store.telemetry("acme", 0, i64::MAX, 10).await.unwrap();
        let body: Value = serde_json::from_str(&rows[0].body).unwrap();
        let data = &body["data"];
        assert_eq!(rows[0].user_id.as_deref(), Some("u1"));
        match kept {
            Some(marker) => {
                assert!(data["prompt"].as_str().unwrap().contains(marker), "{mode:?}: {data}");
                assert!(data["completion"].as_str().unwrap().contains(marker), "{mode:?}: {data}");
            }
            None => assert!(data["prompt"].is_null() && data["completion"].is_null(), "{mode:?}: {data}"),
        }
        if mode != llmsec_server::config::InputRetention::Full {
            assert!(!rows[0].body.contains(EMAIL) && !rows[0].body.contains(KEY), "{mode:?}: {}", rows[0].body);
        }
    }
}

#[tokio::test]
async fn erasing_a_user_leaves_no_row_that_names_them() {
    const USER: &str = "erin-5521-vq";
    const MARK: &str = "zebra-quasar-7731";
    const OTHER: &str = "ola-8812-kt";
    let dir = temp_dir();
    let detectors = dir.join("detectors.yaml");
    std::fs::write(
        &detectors,
        "detectors:\n  - id: injection\n    type: ml\n    model: prompt-injection-v2\n    threshold: 0.5\n    actions:\n      - type: shield\n        config: {action: block, duration: 1h, reason: injection}\n",
    )
    .unwrap();
    let s = Served::start(|c| {
        c.storage.input = llmsec_server::config::InputRetention::Full;
        c.sentinel.detectors = Some(detectors.clone());
    })
    .await;
    let key = make_key(&s.t.router, "acme", &["analyze", "ingest", "read", "admin"]).await;
    // A subscription whose deliveries quote the events (nothing listens there).
    let hook = s
        .http
        .post("/api/webhooks", &key, json!({"url": "http://localhost:9/hook", "events": ["threat.detected"], "secret": "whsec-0123456789abcdef"}))
        .await;
    assert_eq!(hook.status, StatusCode::CREATED, "{}", hook.text);
    for user in [USER, OTHER] {
        let r = s
            .http
            .post(
                "/api/security/analyze",
                &key,
                json!({"input": format!("{ATTACK}. {MARK} {user}"), "user_id": user, "session_id": "s-1"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let ev = telemetry(&format!("ev-{}", &user[..3]), user, &format!("{ATTACK}. {MARK} {user}"));
        let r = s.http.post("/api/v1/telemetry/events", &key, ev).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    }
    // Sentinel opened an anomaly about each and blocked both.
    eventually(15, || async {
        let r = s.http.get("/api/v1/enforcements", &key).await;
        (r.body["enforcements"].as_array().map_or(0, Vec::len) >= 2).then_some(())
    })
    .await;
    let blocked = s.http.post("/api/security/analyze", &key, json!({"input": "hello", "user_id": USER})).await;
    assert_eq!(blocked.status, StatusCode::FORBIDDEN);
    let before = database_bytes(&s.t.server.state().config.data_dir);
    assert!(before.contains(USER), "the test stores the user's id before erasure");

    let r = s.http.delete(&format!("/api/security/users/{USER}/events"), &key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let removed = &r.body["removed"];
    for table in ["events", "telemetry", "anomalies", "deliveries", "enforcements"] {
        assert!(removed[table].as_u64().unwrap() >= 1, "{table}: {removed}");
    }
    let after = database_bytes(&s.t.server.state().config.data_dir);
    assert!(!after.contains(USER), "a row still names the erased user");
    assert!(after.contains(OTHER), "another user's rows stay");
    // The block on the erased user is gone too; the other stays blocked.
    let r = s.http.post("/api/security/analyze", &key, json!({"input": "hello", "user_id": USER})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = s.http.post("/api/security/analyze", &key, json!({"input": "hello", "user_id": OTHER})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The audit log records the erasure without the id.
    let audit = s.http.get("/api/admin/audit", ADMIN).await;
    let last = audit.body["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "user.erase");
    assert!(!last.to_string().contains(USER), "{last}");
}
