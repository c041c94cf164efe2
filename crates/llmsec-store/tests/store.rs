//! The same behaviour checks against every backend: SQLite always, and
//! PostgreSQL when the `postgres` feature is on. With the feature on, the
//! PostgreSQL tests need `LLMSEC_TEST_POSTGRES_URL` (scripts/test.sh starts
//! a server and sets it) and fail without it: never silently skipped.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use llmsec_store::audit::verify_chain;
use llmsec_store::*;
use serde_json::json;

async fn sqlite() -> SqlStore {
    let dir = std::env::temp_dir().join(format!("llmsec-store-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    SqlStore::connect(&format!("sqlite://{}", dir.join("t.db").display())).await.expect("open sqlite")
}

#[cfg(feature = "postgres")]
async fn postgres() -> SqlStore {
    use sqlx::Executor;
    let base = std::env::var("LLMSEC_TEST_POSTGRES_URL")
        .expect("LLMSEC_TEST_POSTGRES_URL must name a PostgreSQL server (scripts/test.sh starts one)");
    let admin = SqlStore::connect(&base).await.expect("connect to test PostgreSQL");
    let db = format!("t_{}", uuid::Uuid::new_v4().simple());
    admin.pool().execute(format!("CREATE DATABASE {db}").as_str()).await.expect("create database");
    let url = match base.rfind('/') {
        Some(i) if base[..i].ends_with(|c: char| c != '/') => format!("{}/{db}", &base[..i]),
        _ => format!("{base}/{db}"),
    };
    SqlStore::connect(&url).await.expect("open test database")
}

fn event(tenant: &str, id: &str, ts: Millis, user: Option<&str>) -> SecurityEvent {
    SecurityEvent {
        id: id.into(),
        tenant: tenant.into(),
        event_type: "input_analysis".into(),
        input: Some("[REDACTED_EMAIL] hello".into()),
        threats: json!([{"type": "prompt_injection", "severity": "high"}]),
        confidence: 0.9,
        verdict: "block".into(),
        timestamp: ts,
        user_id: user.map(str::to_owned),
        session_id: Some("s1".into()),
    }
}

fn delivery(id: &str, tenant: &str, due: Millis) -> Delivery {
    Delivery {
        id: id.into(),
        webhook_id: "wh1".into(),
        tenant: tenant.into(),
        event: "threat.detected".into(),
        payload: r#"{"event":"threat.detected"}"#.into(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: due,
        last_error: None,
        last_status: None,
        created_at: due,
        updated_at: due,
    }
}

async fn keys(s: &dyn Store) {
    let k = ApiKeyRecord {
        id: "abc".into(),
        tenant: "acme".into(),
        name: "ci".into(),
        hash: "00".repeat(32),
        scopes: vec![Scope::Analyze, Scope::Read],
        rate_per_sec: Some(50.0),
        created_at: 1,
        revoked_at: None,
    };
    s.insert_key(&k).await.unwrap();
    assert!(matches!(s.insert_key(&k).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.key("abc").await.unwrap(), Some(k.clone()));
    assert_eq!(s.key("nope").await.unwrap(), None);
    assert_eq!(s.list_keys(Some("acme")).await.unwrap().len(), 1);
    assert_eq!(s.list_keys(Some("other")).await.unwrap().len(), 0);
    assert!(s.revoke_key("abc", 5).await.unwrap());
    assert!(!s.revoke_key("abc", 6).await.unwrap(), "revoking twice is a no-op");
    assert_eq!(s.key("abc").await.unwrap().unwrap().revoked_at, Some(5));
}

async fn events_and_isolation(s: &dyn Store) {
    let batch: Vec<Record> = (0..25)
        .map(|i| Record {
            event: event(
                if i % 5 == 0 { "b" } else { "a" },
                &format!("e{i:03}"),
                1000 + i,
                Some(if i % 2 == 0 { "u1" } else { "u2" }),
            ),
            deliveries: vec![],
        })
        .collect();
    s.record(&batch).await.unwrap();
    let q = EventQuery { tenant: "a".into(), limit: 7, ..Default::default() };
    assert_eq!(s.count_events(&q).await.unwrap(), 20);
    // Cursor pagination walks every event of the tenant once, newest first.
    let mut seen = Vec::new();
    let mut q2 = q.clone();
    loop {
        let page = s.events(&q2).await.unwrap();
        if page.is_empty() {
            break;
        }
        let last = page.last().unwrap();
        q2.before = Some((last.timestamp, last.id.clone()));
        seen.extend(page);
    }
    assert_eq!(seen.len(), 20);
    assert!(seen.windows(2).all(|w| w[0].timestamp > w[1].timestamp));
    assert!(seen.iter().all(|e| e.tenant == "a"), "tenant a sees only its own events");
    assert_eq!(seen[0], event("a", "e024", 1024, Some("u1")));
    // Filters.
    let by_user = EventQuery { tenant: "a".into(), user_id: Some("u2".into()), limit: 100, ..Default::default() };
    assert_eq!(s.count_events(&by_user).await.unwrap(), 10);
    let window =
        EventQuery { tenant: "a".into(), since: Some(1010), until: Some(1015), limit: 100, ..Default::default() };
    assert_eq!(s.events(&window).await.unwrap().len(), 4, "1011..1014 in tenant a (1010 is tenant b)");
    // Erase by user stays in the tenant.
    assert_eq!(s.erase_user("a", "u1").await.unwrap(), 10);
    assert_eq!(s.count_events(&EventQuery { tenant: "b".into(), ..Default::default() }).await.unwrap(), 5);
    // Retention.
    // Left: a's odd ids (8 before 1020) and b's 0, 5, 10, 15 (4 before 1020).
    assert_eq!(s.purge_events(1020).await.unwrap(), 12);
}

async fn outbox(s: &dyn Store) {
    let rec = Record {
        event: event("a", "ev1", 10, None),
        deliveries: vec![delivery("d1", "a", 10), delivery("d2", "b", 10)],
    };
    s.record(&[rec]).await.unwrap();
    // Not yet due.
    assert!(s.claim_deliveries(9, 100, 10).await.unwrap().is_empty());
    let claimed = s.claim_deliveries(10, 100, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    // Leased: a second worker finds nothing until the lease ends.
    assert!(s.claim_deliveries(50, 150, 10).await.unwrap().is_empty());
    // A worker that "died" holding d2: it comes back after the lease.
    s.finish_attempt("d1", &Attempt::Failed { status: Some(500), error: "HTTP 500".into(), retry_at: Some(120) }, 20)
        .await
        .unwrap();
    let again = s.claim_deliveries(120, 200, 10).await.unwrap();
    let ids: Vec<_> = again.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let d1 = again.iter().find(|d| d.id == "d1").unwrap();
    assert_eq!((d1.attempts, d1.last_status, d1.last_error.as_deref()), (1, Some(500), Some("HTTP 500")));
    s.finish_attempt("d1", &Attempt::Delivered { status: 204 }, 130).await.unwrap();
    s.finish_attempt("d2", &Attempt::Failed { status: None, error: "refused".into(), retry_at: None }, 130)
        .await
        .unwrap();
    assert!(s.claim_deliveries(10_000, 10_100, 10).await.unwrap().is_empty());
    let dead = s.deliveries("b", Some(DeliveryStatus::Dead), 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(s.deliveries("a", Some(DeliveryStatus::Dead), 10).await.unwrap().is_empty(), "tenant a cannot see b's");
    assert!(!s.redeliver("a", "d2", 140).await.unwrap(), "only the owner tenant may redeliver");
    assert!(s.redeliver("b", "d2", 140).await.unwrap());
    assert_eq!(s.claim_deliveries(140, 240, 10).await.unwrap().len(), 1);
    assert_eq!(s.purge_deliveries(1000).await.unwrap(), 1);
    // Deliveries without an event (Sentinel actions).
    s.enqueue(&[delivery("d3", "a", 500), delivery("d4", "a", 500)]).await.unwrap();
    assert_eq!(s.claim_deliveries(500, 600, 10).await.unwrap().len(), 3, "d3, d4 and the redelivered d2");
}

async fn webhooks(s: &dyn Store) {
    let w = Webhook {
        id: "wh1".into(),
        tenant: "a".into(),
        url: "http://127.0.0.1:9/hook".into(),
        secret: "s3cret".into(),
        events: vec!["threat.detected".into(), "analysis.completed".into()],
        created_at: 1,
    };
    s.insert_webhook(&w).await.unwrap();
    let mut changed = w.clone();
    changed.url = "http://elsewhere/".into();
    s.ensure_webhook(&changed).await.unwrap();
    assert_eq!(s.webhooks(Some("a")).await.unwrap(), vec![w.clone()], "ensure_webhook leaves an existing id alone");
    assert!(s.webhooks(Some("b")).await.unwrap().is_empty());
    assert!(!s.delete_webhook("b", "wh1").await.unwrap());
    assert!(s.delete_webhook("a", "wh1").await.unwrap());
}

async fn audit(s: &dyn Store) {
    for i in 0..5 {
        let e = s
            .append_audit(
                NewAudit {
                    actor: "admin".into(),
                    action: "key.create".into(),
                    target: format!("k{i}"),
                    details: json!({"i": i}),
                },
                100 + i,
            )
            .await
            .unwrap();
        assert_eq!(e.seq, i + 1);
    }
    let log = s.audit_log(0, 100).await.unwrap();
    assert_eq!(verify_chain(&log), Ok(5));
    assert_eq!(s.audit_log(3, 100).await.unwrap().len(), 2);
}

fn telemetry(tenant: &str, id: &str, ts: Millis) -> TelemetryRow {
    TelemetryRow {
        tenant: tenant.into(),
        event_id: id.into(),
        application_id: "chatbot".into(),
        event_type: "llm.response".into(),
        timestamp: ts,
        body: format!(r#"{{"event_id":"{id}"}}"#),
        received_at: ts,
    }
}

fn anomaly(tenant: &str, id: &str, ts: Millis, severity: &str, status: &str, score: f64) -> AnomalyRow {
    AnomalyRow {
        id: id.into(),
        tenant: tenant.into(),
        detector_id: "cost".into(),
        severity: severity.into(),
        status: status.into(),
        score,
        application_id: Some("chatbot".into()),
        timestamp: ts,
        resolved_at: None,
        body: format!(r#"{{"id":"{id}"}}"#),
    }
}

async fn sentinel_tables(s: &dyn Store) {
    // Idempotent on (tenant, event_id): the same id in another tenant is another event.
    let fresh =
        s.ingest(&[telemetry("a", "e1", 10), telemetry("a", "e2", 20), telemetry("b", "e1", 30)]).await.unwrap();
    assert_eq!(fresh, [true, true, true]);
    let again = s.ingest(&[telemetry("a", "e1", 10), telemetry("a", "e3", 40)]).await.unwrap();
    assert_eq!(again, [false, true]);
    assert_eq!(s.count_telemetry("a", None).await.unwrap(), 3);
    assert_eq!(s.count_telemetry("a", Some(20)).await.unwrap(), 2);
    assert_eq!(s.telemetry("a", 0, 35, 100).await.unwrap().len(), 2);
    let pending = s.pending_telemetry(100).await.unwrap();
    assert_eq!(pending.len(), 4);
    s.mark_processed(&[("a".into(), "e1".into()), ("b".into(), "e1".into())]).await.unwrap();
    let left: Vec<String> = s.pending_telemetry(100).await.unwrap().into_iter().map(|r| r.event_id).collect();
    assert_eq!(left, ["e2", "e3"]);

    // Anomalies: upsert, filters, pagination, isolation.
    s.put_anomaly(&anomaly("a", "x1", 100, "critical", "active", 0.9)).await.unwrap();
    s.put_anomaly(&anomaly("a", "x2", 200, "warning", "active", 0.6)).await.unwrap();
    s.put_anomaly(&anomaly("b", "x3", 300, "critical", "active", 0.9)).await.unwrap();
    let mut acked = anomaly("a", "x1", 100, "critical", "acknowledged", 0.95);
    acked.resolved_at = None;
    s.put_anomaly(&acked).await.unwrap();
    assert_eq!(s.anomaly("a", "x1").await.unwrap().unwrap().status, "acknowledged");
    assert_eq!(s.anomaly("b", "x1").await.unwrap(), None, "tenant b cannot read a's anomaly");
    let q = AnomalyQuery { tenant: "a".into(), limit: 10, ..Default::default() };
    let (page, total) = s.anomalies(&q).await.unwrap();
    assert_eq!((page.len(), total), (2, 2));
    assert_eq!(page[0].id, "x2", "newest first");
    let crit = AnomalyQuery { severities: vec!["critical".into()], statuses: vec!["acknowledged".into()], ..q.clone() };
    assert_eq!(s.anomalies(&crit).await.unwrap().1, 1);
    let window = AnomalyQuery { start: Some(150), end: Some(250), score_min: Some(0.5), ..q.clone() };
    assert_eq!(s.anomalies(&window).await.unwrap().0[0].id, "x2");
    assert_eq!(s.open_anomalies(100).await.unwrap().len(), 3, "all tenants");
    let second = AnomalyQuery { limit: 1, offset: 1, ..q };
    let (p2, t2) = s.anomalies(&second).await.unwrap();
    assert_eq!((p2[0].id.as_str(), t2), ("x1", 2));

    // Enforcements in force until they expire.
    let e = Enforcement {
        id: "en1".into(),
        tenant: "a".into(),
        entity_kind: "user".into(),
        entity_id: "u1".into(),
        action: "block".into(),
        rate_limit: None,
        window_ms: None,
        reason: "prompt injection".into(),
        anomaly_id: Some("x1".into()),
        created_at: 100,
        expires_at: 1000,
    };
    s.insert_enforcement(&e).await.unwrap();
    assert_eq!(
        s.active_enforcements("a", &[("user", "u1"), ("application", "chatbot")], 500).await.unwrap(),
        vec![e.clone()]
    );
    assert!(s.active_enforcements("a", &[("user", "u1")], 1000).await.unwrap().is_empty(), "expired");
    assert!(s.active_enforcements("b", &[("user", "u1")], 500).await.unwrap().is_empty(), "other tenant");
    assert!(s.active_enforcements("a", &[("user", "u2")], 500).await.unwrap().is_empty());
    assert_eq!(s.enforcements_in_force(500).await.unwrap().len(), 1);
    assert!(s.enforcements_in_force(1000).await.unwrap().is_empty());
}

async fn all(s: &dyn Store) {
    s.ping().await.unwrap();
    keys(s).await;
    events_and_isolation(s).await;
    outbox(s).await;
    webhooks(s).await;
    audit(s).await;
    sentinel_tables(s).await;
}

#[tokio::test]
async fn sqlite_store() {
    all(&sqlite().await).await;
}

#[tokio::test]
async fn sqlite_in_memory_store() {
    all(&SqlStore::connect("sqlite::memory:").await.unwrap()).await;
}

#[tokio::test]
async fn sqlite_reopen_keeps_data_and_skips_migrations() {
    let dir = std::env::temp_dir().join(format!("llmsec-store-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("t.db").display());
    let s = SqlStore::connect(&url).await.unwrap();
    s.record(&[Record { event: event("a", "x", 1, None), deliveries: vec![] }]).await.unwrap();
    drop(s);
    let s = SqlStore::connect(&url).await.unwrap();
    assert_eq!(s.count_events(&EventQuery { tenant: "a".into(), ..Default::default() }).await.unwrap(), 1);
}

#[tokio::test]
async fn bad_urls_are_named() {
    let e = SqlStore::connect("mysql://u:pw@h/db").await.unwrap_err().to_string();
    assert!(e.contains("mysql://u:***@h/db") && !e.contains("pw"), "{e}");
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_store() {
    all(&postgres().await).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_concurrent_claims_never_share_a_delivery() {
    let s = postgres().await;
    let recs: Vec<Record> = (0..40)
        .map(|i| Record {
            event: event("a", &format!("e{i}"), 1, None),
            deliveries: vec![delivery(&format!("d{i}"), "a", 1)],
        })
        .collect();
    s.record(&recs).await.unwrap();
    let (a, b) = tokio::join!(s.claim_deliveries(5, 100, 25), s.claim_deliveries(5, 100, 25));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), 40);
    assert!(a.iter().all(|d| !b.iter().any(|e| e.id == d.id)));
}

/// The database holds webhook secrets and stored prompts: its file and
/// SQLite's `-wal` and `-shm` beside it are owner-only, and a run that
/// finds them open to others closes them.
#[cfg(unix)]
#[tokio::test]
async fn sqlite_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("llmsec-store-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("t.db");
    let url = format!("sqlite://{}", db.display());
    let mode = |suffix: &str| {
        let p = dir.join(format!("t.db{suffix}"));
        std::fs::metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
    };
    let store = SqlStore::connect(&url).await.unwrap();
    store.record(&[Record { event: event("acme", "e1", 1, None), deliveries: vec![] }]).await.unwrap();
    assert_eq!((mode(""), mode("-wal"), mode("-shm")), (0o600, 0o600, 0o600));
    store.pool().close().await;

    // As an older version left them (empty -wal and -shm are valid states).
    for suffix in ["", "-wal", "-shm"] {
        let p = dir.join(format!("t.db{suffix}"));
        std::fs::OpenOptions::new().create(true).append(true).open(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let store = SqlStore::connect(&url).await.unwrap();
    store.record(&[Record { event: event("acme", "e2", 2, None), deliveries: vec![] }]).await.unwrap();
    assert_eq!((mode(""), mode("-wal"), mode("-shm")), (0o600, 0o600, 0o600));
    let _ = std::fs::remove_dir_all(&dir);
}
