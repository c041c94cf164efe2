//! Encryption at rest, over real HTTP: with `[storage.encryption]` the
//! database files hold no submitted prompt in clear while the API answers
//! it decrypted; a rotation keeps old rows readable until `rekey` moves
//! them, after which the old key can go; a missing or malformed key
//! refuses the start; and the record of processing lists purposes,
//! recipients and the encryption in force.

use axum::http::StatusCode;
use base64::Engine as _;
use llmsec_server::config::{InputRetention, ServerConfig};
use llmsec_server::privacy::{Purpose, STORED_KINDS};
use llmsec_store::{EncryptionConfig, KeySource};
use serde_json::json;

use crate::common::*;

const MARK: &str = "zebra-quasar-7731";

/// Everything the SQLite files in `dir` hold, as text.
fn database_bytes(dir: &std::path::Path) -> String {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("llmsec.db")) {
            all.extend(std::fs::read(&path).unwrap());
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

/// A key file holding `byte` × 32, base64.
fn key_file(dir: &std::path::Path, name: &str, byte: u8) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, base64::engine::general_purpose::STANDARD.encode([byte; 32]) + "\n").unwrap();
    p
}

fn encryption(primary: &std::path::Path, old: &[&std::path::Path]) -> EncryptionConfig {
    EncryptionConfig {
        key_env: None,
        key_file: Some(primary.to_owned()),
        old_keys: old.iter().map(|p| KeySource { key_env: None, key_file: Some(p.to_path_buf()) }).collect(),
    }
}

struct Served {
    t: TestApp,
    http: Http,
}

async fn serve(c: ServerConfig) -> Served {
    let server = llmsec_server::Server::start(c, Some(ADMIN.into())).await.unwrap();
    let router = server.router();
    let http = Http::new(crate::grpc::serve(router.clone()).await);
    Served { t: TestApp { server, router }, http }
}

fn base(dir: &std::path::Path) -> ServerConfig {
    let mut c = config();
    c.data_dir = dir.to_owned();
    c.storage.input = InputRetention::Full;
    c
}

async fn analyze(s: &Served, key: &str, n: usize) -> String {
    let r = s
        .http
        .post("/api/security/analyze", key, json!({"input": format!("{ATTACK}. {MARK} number {n}"), "user_id": "u-1"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["event_id"].as_str().unwrap().to_owned()
}

async fn inputs(s: &Served, key: &str) -> Vec<String> {
    let r = s.http.get("/api/security/events?limit=100", key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["events"].as_array().unwrap().iter().map(|e| e["input"].as_str().unwrap_or_default().to_owned()).collect()
}

#[tokio::test]
async fn stored_prompts_are_encrypted_on_disk_and_answered_in_clear() {
    let dir = temp_dir();
    let k1 = key_file(&dir, "k1", 1);
    let mut c = base(&dir);
    c.storage.encryption = Some(encryption(&k1, &[]));
    let s = serve(c).await;
    let key = make_key(&s.t.router, "acme", &["analyze", "ingest", "read", "admin"]).await;
    analyze(&s, &key, 1).await;
    let ev = json!({
        "event_id": "tel-1", "timestamp": "2026-12-01T10:00:00Z", "event_type": "llm.response",
        "application_id": "chatbot", "data": {"model": "m", "prompt": format!("tell {MARK} a joke"),
        "completion": format!("{MARK} walks into a bar")}, "metadata": {"user_id": "u-1"}
    });
    let r = s.http.post("/api/v1/telemetry/events", &key, ev).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);

    // The API answers the text as submitted.
    assert!(inputs(&s, &key).await.iter().any(|i| i.contains(MARK)));
    let rows = s.t.server.state().store.telemetry("acme", 0, i64::MAX, 10).await.unwrap();
    assert!(rows[0].body.contains(&format!("tell {MARK} a joke")), "{}", rows[0].body);

    // The files on disk do not hold it.
    let db = database_bytes(&dir);
    assert!(!db.is_empty());
    assert!(!db.contains(MARK), "a prompt is stored in clear");
    assert!(db.contains("enc:v1:"), "stored text is sealed");

    // The posture says so, from the setting.
    let p = s.http.get("/api/v1/reports/posture", &key).await;
    let check = p.body["checks"].as_array().unwrap().iter().find(|c| c["id"] == "encryption_at_rest").unwrap();
    assert_eq!(check["status"], "met", "{check}");
}

#[tokio::test]
async fn rotation_keeps_old_rows_readable_until_rekey_moves_them() {
    let dir = temp_dir();
    let (k1, k2) = (key_file(&dir, "k1", 1), key_file(&dir, "k2", 2));
    let mut c1 = base(&dir);
    c1.storage.encryption = Some(encryption(&k1, &[]));
    let s1 = serve(c1).await;
    let key = make_key(&s1.t.router, "acme", &["analyze", "read"]).await;
    for n in 0..3 {
        analyze(&s1, &key, n).await;
    }

    // Key 2 alone cannot read what key 1 sealed: the start (which rebuilds
    // risk scores from recent events) is refused, naming the key id.
    let mut only2 = base(&dir);
    only2.storage.encryption = Some(encryption(&k2, &[]));
    let e = llmsec_server::Server::start(only2.clone(), Some(ADMIN.into())).await.unwrap_err().to_string();
    assert!(e.contains("key id") && e.contains("storage.encryption.old_keys"), "{e}");
    assert!(!e.contains(MARK), "{e}");

    // Key 2 primary, key 1 old: everything reads, new rows use key 2.
    let mut rotated = base(&dir);
    rotated.storage.encryption = Some(encryption(&k2, &[&k1]));
    let s2 = serve(rotated.clone()).await;
    analyze(&s2, &key, 3).await;
    let read = inputs(&s2, &key).await;
    assert_eq!(read.len(), 4);
    assert!(read.iter().all(|i| i.contains(MARK)), "{read:?}");

    // A row sealed with a key the running server lacks answers a clear 503.
    let mut other = base(&dir);
    other.storage.encryption = Some(encryption(&key_file(&dir, "k3", 3), &[]));
    let foreign = llmsec_server::open_store(&other).await.unwrap();
    let kid3 = foreign.cipher().unwrap().primary_kid().to_owned();
    use llmsec_store::Store as _;
    let err = foreign
        .events(&llmsec_store::EventQuery { tenant: "acme".into(), limit: 1, ..Default::default() })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("key id"), "a store without the keys cannot read: {err}");
    let row = llmsec_store::SecurityEvent {
        id: "zz-foreign".into(),
        tenant: "acme".into(),
        event_type: "input_analysis".into(),
        input: Some(format!("{MARK} sealed elsewhere")),
        threats: json!([]),
        confidence: 0.0,
        verdict: "allow".into(),
        timestamp: 1,
        user_id: None,
        session_id: None,
        context_kind: None,
        analysis_us: None,
    };
    foreign.record(&[llmsec_store::Record { event: row, deliveries: vec![] }]).await.unwrap();
    let r = s2.http.get("/api/security/events?limit=100", &key).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    let msg = r.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains(&kid3) && msg.contains("storage.encryption.old_keys"), "{msg}");
    assert!(!msg.contains(MARK));
    sqlx::query("DELETE FROM security_events WHERE id = 'zz-foreign'").execute(foreign.pool()).await.unwrap();

    // rekey moves the three old rows; a second run finds nothing to do.
    let store = llmsec_server::open_store(&rotated).await.unwrap();
    let done = store.rekey(2, |_| ()).await.unwrap();
    assert_eq!((done.events_scanned, done.events_rewritten), (4, 3));
    assert_eq!(store.rekey(2, |_| ()).await.unwrap().events_rewritten, 0);

    // Key 1 can go.
    let s3 = serve(only2).await;
    let read = inputs(&s3, &key).await;
    assert_eq!(read.len(), 4);
    assert!(read.iter().all(|i| i.contains(MARK)), "{read:?}");
    assert!(!database_bytes(&dir).contains(MARK));
}

#[tokio::test]
async fn a_missing_or_malformed_key_refuses_the_start_naming_its_source() {
    let dir = temp_dir();
    let mut c = base(&dir);
    c.storage.encryption =
        Some(EncryptionConfig { key_env: Some("LLMSEC_TEST_KEY_THAT_IS_NEVER_SET".into()), ..Default::default() });
    let e = llmsec_server::Server::start(c, Some(ADMIN.into())).await.unwrap_err().to_string();
    assert!(
        e.contains("storage.encryption.key_env (LLMSEC_TEST_KEY_THAT_IS_NEVER_SET)") && e.contains("not set"),
        "{e}"
    );

    let short = dir.join("short");
    let secret = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
    std::fs::write(&short, &secret).unwrap();
    let mut c = base(&dir);
    c.storage.encryption = Some(EncryptionConfig {
        old_keys: vec![KeySource { key_env: None, key_file: Some(short.clone()) }],
        ..encryption(&key_file(&dir, "k1", 1), &[])
    });
    let e = llmsec_server::Server::start(c, Some(ADMIN.into())).await.unwrap_err().to_string();
    assert!(e.contains("storage.encryption.old_keys[0].key_file") && e.contains("decodes to 16 bytes"), "{e}");
    assert!(!e.contains(&secret), "the key is never echoed: {e}");
}

#[tokio::test]
async fn the_record_of_processing_lists_purposes_recipients_and_encryption() {
    let dir = temp_dir();
    let mut c = base(&dir);
    c.privacy.require_purpose = true;
    // A stored kind without a purpose refuses the start.
    let e = llmsec_server::Server::start(c.clone(), Some(ADMIN.into())).await.unwrap_err().to_string();
    assert!(e.starts_with("privacy.purposes.security_events:"), "{e}");

    c.privacy.controller = Some("Example Ltd, privacy@example.org".into());
    for kind in STORED_KINDS {
        let tag = if kind == "audit_log" { "accountability" } else { "security_monitoring" };
        c.privacy.purposes.insert(
            kind.into(),
            Purpose { purpose: tag.into(), lawful_basis: "legitimate_interests".into(), description: None },
        );
    }
    c.storage.encryption = Some(encryption(&key_file(&dir, "k1", 1), &[]));
    let s = serve(c).await;
    let admin = make_key(&s.t.router, "acme", &["analyze", "read", "admin"]).await;
    let reader = make_key(&s.t.router, "acme", &["read"]).await;
    let hook = s
        .http
        .post("/api/webhooks", &admin, json!({"url": "http://127.0.0.1:9/private/path?token=x", "events": ["threat.detected"], "secret": "whsec-0123456789abcdef"}))
        .await;
    assert_eq!(hook.status, StatusCode::CREATED, "{}", hook.text);
    analyze(&s, &admin, 1).await;

    let r = s.http.get("/api/v1/privacy/processing", &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["tenant"], "acme");
    assert_eq!(r.body["controller"], "Example Ltd, privacy@example.org");
    let acts = r.body["activities"].as_array().unwrap();
    assert_eq!(acts.len(), STORED_KINDS.len());
    let events = acts.iter().find(|a| a["kind"] == "security_events").unwrap();
    assert_eq!(
        (events["purpose"].as_str(), events["retention_days"].as_u64()),
        (Some("security_monitoring"), Some(30))
    );
    assert_eq!(acts.iter().find(|a| a["kind"] == "audit_log").unwrap()["purpose"], "accountability");
    let recipients = r.body["recipients"].as_array().unwrap();
    assert!(
        recipients.iter().any(|x| x["kind"] == "webhook" && x["destination"] == "http://127.0.0.1:9"),
        "{recipients:?}"
    );
    assert!(!r.text.contains("private/path") && !r.text.contains("token=x"), "{}", r.text);
    assert_eq!(r.body["security_measures"]["encryption_at_rest"], true);

    // The stored event carries its purpose.
    let purpose: String = sqlx::query_scalar("SELECT purpose FROM security_events LIMIT 1")
        .fetch_one(llmsec_server::open_store(&s.t.server.state().config).await.unwrap().pool())
        .await
        .unwrap();
    assert_eq!(purpose, "security_monitoring");

    let md = s.http.get("/api/v1/privacy/processing?format=markdown", &admin).await;
    assert_eq!(md.status, StatusCode::OK);
    assert!(md.text.contains("| security_events | security_monitoring | legitimate_interests |"), "{}", md.text);
    let bad = s.http.get("/api/v1/privacy/processing?format=pdf", &admin).await;
    assert_eq!((bad.status, bad.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("format")));
    assert_eq!(s.http.get("/api/v1/privacy/processing", &reader).await.status, StatusCode::FORBIDDEN);
}
