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
    SqlStore::connect(&postgres_url().await).await.expect("open test database")
}

/// A fresh database on the test PostgreSQL server.
#[cfg(feature = "postgres")]
async fn postgres_url() -> String {
    use sqlx::Executor;
    let base = std::env::var("LLMSEC_TEST_POSTGRES_URL")
        .expect("LLMSEC_TEST_POSTGRES_URL must name a PostgreSQL server (scripts/test.sh starts one)");
    let admin = SqlStore::connect(&base).await.expect("connect to test PostgreSQL");
    let db = format!("t_{}", uuid::Uuid::new_v4().simple());
    admin.pool().execute(format!("CREATE DATABASE {db}").as_str()).await.expect("create database");
    match base.rfind('/') {
        Some(i) if base[..i].ends_with(|c: char| c != '/') => format!("{}/{db}", &base[..i]),
        _ => format!("{base}/{db}"),
    }
}

fn event(tenant: &str, id: &str, ts: Millis, user: Option<&str>) -> SecurityEvent {
    SecurityEvent {
        id: id.into(),
        tenant: tenant.into(),
        event_type: "input_analysis".into(),
        input: Some("[REDACTED_EMAIL] hello".into()),
        threats: json!([{"type": "prompt_injection", "category": "direct_injection", "severity": "high",
            "evidence": "said \"type\":\"jailbreak\""}]),
        confidence: 0.9,
        verdict: "block".into(),
        timestamp: ts,
        user_id: user.map(str::to_owned),
        session_id: Some("s1".into()),
        context_kind: Some("email".into()),
        analysis_us: Some(42),
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
        models: None,
        budgets: vec![],
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
    assert!(!s.set_key_limits("abc", None, &[]).await.unwrap(), "a revoked key's limits stay as they are");
}

/// A key's gateway limits round-trip, change, and the usage counted
/// against them adds up per period and stays within its tenant.
async fn key_limits_and_usage(s: &dyn Store) {
    let budgets = vec![
        Budget { period: BudgetPeriod::Day, tokens: Some(1000), cost: None },
        Budget { period: BudgetPeriod::Month, tokens: None, cost: Some(2.5) },
    ];
    let k = ApiKeyRecord {
        id: "gw1".into(),
        tenant: "acme".into(),
        name: "gateway".into(),
        hash: "11".repeat(32),
        scopes: vec![Scope::Proxy],
        rate_per_sec: None,
        created_at: 1,
        revoked_at: None,
        models: Some(vec!["gpt-4o-mini".into(), "claude-*".into()]),
        budgets: budgets.clone(),
    };
    s.insert_key(&k).await.unwrap();
    assert_eq!(s.key("gw1").await.unwrap(), Some(k.clone()));
    assert!(s.set_key_limits("gw1", Some(&["o3".to_owned()]), &budgets[..1]).await.unwrap());
    let got = s.key("gw1").await.unwrap().unwrap();
    assert_eq!((got.models, got.budgets), (Some(vec!["o3".to_owned()]), budgets[..1].to_vec()));
    assert!(s.set_key_limits("gw1", None, &[]).await.unwrap());
    let got = s.key("gw1").await.unwrap().unwrap();
    assert_eq!((got.models, got.budgets), (None, vec![]));
    assert!(!s.set_key_limits("nope", None, &[]).await.unwrap());

    // 2026-03-31T23:00:00Z and, an hour later, the next day and month.
    let late = 1_774_998_000_000;
    let next = late + 3_600_000;
    assert_eq!(s.key_usage("acme", "gw1", late).await.unwrap().iter().map(|u| u.tokens).sum::<u64>(), 0);
    s.add_key_usage("acme", "gw1", late, 100, 0.25).await.unwrap();
    s.add_key_usage("acme", "gw1", late + 1, 50, 0.5).await.unwrap();
    s.add_key_usage("acme", "gw1", next, 7, 0.0).await.unwrap();
    let u = s.key_usage("acme", "gw1", late).await.unwrap();
    assert_eq!(
        u.iter().map(|u| (u.period, u.tokens)).collect::<Vec<_>>(),
        [(BudgetPeriod::Day, 150), (BudgetPeriod::Month, 150)]
    );
    assert!((u[0].cost - 0.75).abs() < 1e-9 && (u[1].cost - 0.75).abs() < 1e-9, "{u:?}");
    assert_eq!(u[0].start, BudgetPeriod::Day.start(late));
    let u = s.key_usage("acme", "gw1", next).await.unwrap();
    assert_eq!(u.iter().map(|u| u.tokens).collect::<Vec<_>>(), [7, 7], "a new day and a new month start at zero");
    let other = s.key_usage("globex", "gw1", late).await.unwrap();
    assert!(other.iter().all(|u| u.tokens == 0 && u.cost == 0.0), "usage stays in its tenant");
}

fn hold(id: &str, tokens: u64, cost: f64, expires_at: Millis) -> BudgetHold {
    BudgetHold { id: id.into(), tokens, cost, expires_at }
}

/// Holds on a key's budgets: one fits only when used + held + it is within
/// each limit; settling adds the usage and releases the hold once; a lapsed
/// hold is reclaimed; a refusal holds nothing.
async fn budget_holds(s: &dyn Store) {
    let at = 1_774_998_000_000; // 2026-03-31T23:00:00Z
    let budgets = [
        Budget { period: BudgetPeriod::Day, tokens: Some(100), cost: None },
        Budget { period: BudgetPeriod::Month, tokens: None, cost: Some(1.0) },
    ];
    let far = at + 3_600_000;
    assert_eq!(s.hold_key_budget("acme", "h1", at, &budgets, &hold("a", 60, 0.1, far)).await.unwrap(), None);
    // 60 held: 41 more does not fit the day's 100, 40 does.
    let short = s.hold_key_budget("acme", "h1", at, &budgets, &hold("b", 41, 0.1, far)).await.unwrap().unwrap();
    assert_eq!(short.budget, budgets[0]);
    assert_eq!((short.used_tokens, short.held_tokens), (0, 60));
    assert_eq!(s.hold_key_budget("acme", "h1", at, &budgets, &hold("c", 40, 0.1, far)).await.unwrap(), None);
    // The month's cost bound refuses too: 0.2 held, 0.81 more is over 1.0.
    let short = s.hold_key_budget("acme", "h1", at, &[budgets[1].clone()], &hold("d", 1, 0.81, far)).await.unwrap();
    let short = short.unwrap();
    assert_eq!(short.budget, budgets[1]);
    assert!((short.held_cost - 0.2).abs() < 1e-9, "{short:?}");

    // Settling "a" with less than it held: its usage counts, its hold goes.
    s.settle_key_usage("acme", "h1", at, 25, 0.05, &["a".into()]).await.unwrap();
    assert_eq!(s.key_usage("acme", "h1", at).await.unwrap()[0].tokens, 25);
    // Settling it again adds usage but releases nothing twice: 25 + 40 held
    // + 36 is over 100, 35 fits.
    s.settle_key_usage("acme", "h1", at, 0, 0.0, &["a".into()]).await.unwrap();
    assert!(s.hold_key_budget("acme", "h1", at, &budgets, &hold("e", 36, 0.0, far)).await.unwrap().is_some());
    assert_eq!(s.hold_key_budget("acme", "h1", at, &budgets, &hold("e", 35, 0.0, far)).await.unwrap(), None);
    s.settle_key_usage("acme", "h1", at, 0, 0.0, &["c".into(), "e".into()]).await.unwrap();
    assert_eq!(s.key_usage("acme", "h1", at).await.unwrap()[0].tokens, 25, "a release alone adds no usage");

    // A hold that is never settled lapses at its expiry: the next hold
    // after that reclaims it.
    assert_eq!(s.hold_key_budget("acme", "h1", at, &budgets, &hold("f", 75, 0.0, at + 10)).await.unwrap(), None);
    assert!(s.hold_key_budget("acme", "h1", at + 5, &budgets, &hold("g", 1, 0.0, far)).await.unwrap().is_some());
    assert_eq!(s.hold_key_budget("acme", "h1", at + 10, &budgets, &hold("g", 75, 0.0, far)).await.unwrap(), None);
    s.settle_key_usage("acme", "h1", at, 0, 0.0, &["f".into()]).await.unwrap();
    assert!(
        s.hold_key_budget("acme", "h1", at + 10, &budgets, &hold("h", 1, 0.0, far)).await.unwrap().is_some(),
        "settling the lapsed hold released nothing again: g still holds 75"
    );
    s.settle_key_usage("acme", "h1", at, 0, 0.0, &["g".into()]).await.unwrap();

    // A used-up budget refuses even a hold of nothing; another key and a
    // key without budgets are not touched.
    s.add_key_usage("acme", "h1", at, 75, 0.0).await.unwrap();
    let short = s.hold_key_budget("acme", "h1", at, &budgets, &hold("i", 0, 0.0, far)).await.unwrap().unwrap();
    assert_eq!((short.used_tokens, short.held_tokens), (100, 0));
    assert_eq!(s.hold_key_budget("acme", "h2", at, &budgets, &hold("j", 100, 0.0, far)).await.unwrap(), None);
    assert_eq!(s.hold_key_budget("acme", "h3", at, &[], &hold("k", 1_000_000_000, 1e9, far)).await.unwrap(), None);
    // An hour later is a new day and a new month, with rows of their own.
    let next = at + 3_600_000;
    assert_eq!(s.hold_key_budget("acme", "h1", next, &budgets, &hold("l", 100, 0.0, far)).await.unwrap(), None);
    // Retention drops lapsed holds.
    assert!(s.purge_expired(far + 1).await.unwrap().key_usage >= 3);
}

/// Two handles on one database (two replicas): many holds raced against a
/// budget with room for a few never hold more than it.
async fn concurrent_holds_never_pass_a_budget(a: SqlStore, b: SqlStore) {
    let at = 1_774_998_000_000;
    let budgets = [Budget { period: BudgetPeriod::Day, tokens: Some(100), cost: None }];
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let mut tasks = Vec::new();
    for i in 0..24 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let budgets = budgets.clone();
        tasks.push(tokio::spawn(async move {
            let h = hold(&format!("r{i}"), 30, 0.0, at + 60_000);
            s.hold_key_budget("acme", "race", at, &budgets, &h).await.unwrap().is_none()
        }));
    }
    let mut held = 0;
    for t in tasks {
        held += usize::from(t.await.unwrap());
    }
    assert_eq!(held, 3, "30 tokens each fit 3 times in 100");
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
    // By threat type or category, exactly: no prefix, no LIKE wildcard, not in other strings.
    let threat = |t: &str| EventQuery { tenant: "a".into(), threat: Some(t.into()), limit: 100, ..Default::default() };
    assert_eq!(s.count_events(&threat("prompt_injection")).await.unwrap(), 20);
    assert_eq!(s.count_events(&threat("direct_injection")).await.unwrap(), 20);
    for miss in ["prompt", "prompt_injectio", "prompt%", "prompt_injectio_", "jailbreak", "high"] {
        assert_eq!(s.count_events(&threat(miss)).await.unwrap(), 0, "{miss}");
    }
    // Erase by user stays in the tenant.
    assert_eq!(s.erase_user("a", "u1").await.unwrap().events, 10);
    assert_eq!(s.count_events(&EventQuery { tenant: "b".into(), ..Default::default() }).await.unwrap(), 5);
    // Retention.
    // Left: a's odd ids (8 before 1020) and b's 0, 5, 10, 15 (4 before 1020).
    assert_eq!(s.purge_expired(1020).await.unwrap().events, 12);
}

async fn outbox(s: &dyn Store) {
    let rec = Record {
        event: event("a", "ev1", 10, None),
        deliveries: vec![delivery("d1", "a", 10), delivery("d2", "b", 10)],
    };
    s.record(&[rec]).await.unwrap();
    // The backlog counts every tenant's deliveries.
    assert_eq!(s.count_deliveries(DeliveryStatus::Pending).await.unwrap(), 2);
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
    let counts =
        [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Dead].map(|st| s.count_deliveries(st));
    let [pending, delivered, dead_letters] = counts;
    assert_eq!(
        (pending.await.unwrap(), delivered.await.unwrap(), dead_letters.await.unwrap()),
        (0, 1, 1),
        "d1 delivered, d2 dead"
    );
    assert!(s.deliveries("a", Some(DeliveryStatus::Dead), 10).await.unwrap().is_empty(), "tenant a cannot see b's");
    assert!(!s.redeliver("a", "d2", 140).await.unwrap(), "only the owner tenant may redeliver");
    assert!(s.redeliver("b", "d2", 140).await.unwrap());
    assert_eq!(s.claim_deliveries(140, 240, 10).await.unwrap().len(), 1);
    let purged = s.purge_expired(1000).await.unwrap();
    assert_eq!((purged.deliveries, purged.events), (1, 1), "d1 delivered; d2 queued again stays");
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
        user_id: None,
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
    // By application: what a replica owning some applications reads.
    let mut other_app = telemetry("a", "e4", 5);
    other_app.application_id = "search".into();
    s.ingest(&[other_app]).await.unwrap();
    let apps = s.pending_applications().await.unwrap();
    assert_eq!(apps, [("a".to_owned(), "chatbot".to_owned()), ("a".to_owned(), "search".to_owned())]);
    let of = |apps: &[(&str, &str)]| apps.iter().map(|(t, a)| ((*t).to_owned(), (*a).to_owned())).collect::<Vec<_>>();
    let ids = |rows: Vec<TelemetryRow>| rows.into_iter().map(|r| r.event_id).collect::<Vec<_>>();
    assert_eq!(ids(s.pending_telemetry_of(&of(&[("a", "chatbot")]), 100).await.unwrap()), ["e2", "e3"]);
    assert_eq!(ids(s.pending_telemetry_of(&of(&[("a", "search"), ("a", "chatbot")]), 2).await.unwrap()), ["e4", "e2"]);
    assert!(s.pending_telemetry_of(&of(&[("b", "search")]), 100).await.unwrap().is_empty(), "another tenant's");
    s.mark_processed(&[("a".into(), "e4".into())]).await.unwrap();
    assert_eq!(s.pending_applications().await.unwrap().len(), 1);

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
    // Read back by id in its tenant only, and ended early.
    assert_eq!(s.enforcement("a", "en1").await.unwrap(), Some(e.clone()));
    assert_eq!(s.enforcement("b", "en1").await.unwrap(), None);
    assert!(!s.end_enforcement("b", "en1", 600).await.unwrap(), "other tenant");
    assert!(s.end_enforcement("a", "en1", 600).await.unwrap());
    assert!(!s.end_enforcement("a", "en1", 700).await.unwrap(), "already ended");
    assert_eq!(s.enforcement("a", "en1").await.unwrap().unwrap().expires_at, 600);
    assert!(s.active_enforcements("a", &[("user", "u1")], 650).await.unwrap().is_empty());

    // Red-team runs: by tenant and time, newest first, figures as stored.
    let run = |id: &str, tenant: &str, ts: i64, asr: f64| RedteamRun {
        id: id.into(),
        tenant: tenant.into(),
        timestamp: ts,
        target: "engine".into(),
        trials: 100,
        errors: 2,
        successes: (asr * 98.0) as u64,
        asr,
        summary: json!({"by_category": {"jailbreak": {"trials": 50, "successes": 5, "rate": 0.1}}}),
    };
    for r in [run("r1", "a", 100, 0.2), run("r2", "a", 200, 0.1), run("r3", "b", 150, 0.5)] {
        s.insert_redteam_run(&r).await.unwrap();
    }
    let got = s.redteam_runs("a", 0, 1000, 10).await.unwrap();
    assert_eq!(got.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["r2", "r1"]);
    assert_eq!(got[1], run("r1", "a", 100, 0.2));
    assert_eq!(s.redteam_runs("a", 150, 1000, 10).await.unwrap().len(), 1);
    assert_eq!(s.redteam_run("a", "r3").await.unwrap(), None, "other tenant");
    assert_eq!(s.redteam_run("b", "r3").await.unwrap().unwrap().asr, 0.5);
}

/// Erasure reaches every table that holds a user's content, and only that
/// user's rows of that tenant; retention purges every such table.
async fn erasure_and_retention(s: &dyn Store) {
    let user = "ada_%\\\"x";
    let mut ev = event("t", "ev-ada", 10, Some(user));
    ev.input = Some("ada's prompt".into());
    s.record(&[Record { event: ev, deliveries: Vec::new() }]).await.unwrap();
    s.record(&[Record { event: event("t", "ev-bob", 10, Some("ada_")), deliveries: Vec::new() }]).await.unwrap();
    let body = |id: &str, u: &str| json!({"event_id": id, "metadata": {"user_id": u}}).to_string();
    let mut tel =
        vec![telemetry("t", "t1", 10), telemetry("t", "t2", 10), telemetry("t", "t3", 10), telemetry("u", "t1", 10)];
    tel[0].user_id = Some(user.into());
    tel[0].body = body("t1", user);
    // Stored before the user_id column: found through its body.
    tel[1].body = body("t2", user);
    tel[2].body = body("t3", "ada_");
    tel[3].user_id = Some(user.into());
    tel[3].body = body("t1", user);
    s.ingest(&tel).await.unwrap();
    let mut about = anomaly("t", "an-ada", 10, "warning", "active", 0.5);
    about.body = json!({"id": "an-ada", "affected_entity": {"type": "user", "id": user}}).to_string();
    s.put_anomaly(&about).await.unwrap();
    let mut other = anomaly("t", "an-bob", 10, "warning", "active", 0.5);
    other.body =
        json!({"id": "an-bob", "title": format!("not {user}"), "affected_entity": {"type": "user", "id": "ada_"}})
            .to_string();
    s.put_anomaly(&other).await.unwrap();
    let mut quoting = delivery("dl-ada", "t", 10);
    quoting.payload = json!({"event": {"user_id": user, "input": "ada's prompt"}}).to_string();
    s.enqueue(&[quoting, delivery("dl-other", "t", 10)]).await.unwrap();
    let block = |id: &str, who: &str| Enforcement {
        id: id.into(),
        tenant: "t".into(),
        entity_kind: "user".into(),
        entity_id: who.into(),
        action: "block".into(),
        rate_limit: None,
        window_ms: None,
        reason: "abuse".into(),
        anomaly_id: None,
        created_at: 10,
        expires_at: 10_000,
    };
    s.insert_enforcement(&block("en-ada", user)).await.unwrap();
    s.insert_enforcement(&block("en-bob", "ada_")).await.unwrap();

    let removed = s.erase_user("t", user).await.unwrap();
    assert_eq!(
        removed,
        Removed {
            events: 1,
            telemetry: 2,
            anomalies: 1,
            deliveries: 1,
            enforcements: 1,
            key_usage: 0,
            quarantine: 0,
            campaigns: 0
        },
        "LIKE wildcards in the id match nothing else"
    );
    let q = EventQuery { tenant: "t".into(), limit: 10, ..Default::default() };
    assert_eq!(s.events(&q).await.unwrap().len(), 1);
    let left: Vec<String> = s.telemetry("t", 0, 100, 10).await.unwrap().into_iter().map(|r| r.event_id).collect();
    assert_eq!(left, ["t3"]);
    assert_eq!(s.count_telemetry("u", None).await.unwrap(), 1, "another tenant's rows stay");
    assert!(s.anomaly("t", "an-ada").await.unwrap().is_none());
    assert!(s.anomaly("t", "an-bob").await.unwrap().is_some());
    assert!(s.active_enforcements("t", &[("user", user)], 20).await.unwrap().is_empty());
    assert_eq!(s.active_enforcements("t", &[("user", "ada_")], 20).await.unwrap().len(), 1);
    assert_eq!(s.erase_user("t", user).await.unwrap(), Removed::default(), "erasing twice finds nothing");
    // Erased events no longer wait for Sentinel; the others of the tenant do.
    let waiting: Vec<String> =
        s.pending_telemetry(1000).await.unwrap().into_iter().filter(|r| r.tenant == "t").map(|r| r.event_id).collect();
    assert_eq!(waiting, ["t3"]);

    // Retention: unprocessed telemetry and open anomalies stay.
    s.mark_processed(&[("t".into(), "t3".into())]).await.unwrap();
    let mut done = anomaly("t", "an-old", 10, "warning", "resolved", 0.5);
    done.resolved_at = Some(20);
    s.put_anomaly(&done).await.unwrap();
    // (Earlier tests left rows of other tenants: check this tenant's.)
    let pending_before: Vec<(String, String)> =
        s.pending_telemetry(1000).await.unwrap().into_iter().map(|r| (r.tenant, r.event_id)).collect();
    let purged = s.purge_expired(100_000).await.unwrap();
    assert!(purged.events >= 1 && purged.telemetry >= 1 && purged.anomalies >= 1 && purged.enforcements >= 1);
    let pending_after: Vec<(String, String)> =
        s.pending_telemetry(1000).await.unwrap().into_iter().map(|r| (r.tenant, r.event_id)).collect();
    assert_eq!(pending_after, pending_before, "retention never deletes an event still pending");
    assert!(s.events(&q).await.unwrap().is_empty());
    assert!(s.telemetry("t", 0, 100, 10).await.unwrap().is_empty());
    assert_eq!(s.count_telemetry("u", None).await.unwrap(), 1, "not yet run through the detectors");
    assert!(s.anomaly("t", "an-old").await.unwrap().is_none());
    assert!(s.anomaly("t", "an-bob").await.unwrap().is_some(), "still open");
    assert!(s.active_enforcements("t", &[("user", "ada_")], 20).await.unwrap().is_empty(), "expired ones go");
    // Budget usage: the period holding the cutoff stays, ended ones go.
    const DAY: i64 = 86_400_000;
    let cutoff = 40 * DAY + 5;
    s.add_key_usage("t", "k-budget", DAY + 1, 10, 0.5).await.unwrap(); // day 1 and month 1: ended
    s.add_key_usage("t", "k-budget", 40 * DAY + 1, 7, 0.1).await.unwrap(); // day 40, month 2: current
    assert_eq!(s.key_usage("t", "k-budget", 40 * DAY + 1).await.unwrap().iter().map(|u| u.tokens).max(), Some(7));
    let purged_usage = s.purge_expired(cutoff).await.unwrap().key_usage;
    assert!(purged_usage >= 2, "the ended day and month rows: {purged_usage}");
    let left = s.key_usage("t", "k-budget", 40 * DAY + 1).await.unwrap();
    assert!(!left.is_empty() && left.iter().all(|u| u.tokens == 7), "{left:?}");
}

async fn detector_overrides(s: &dyn Store) {
    let o = |tenant: &str, id: &str, fields: serde_json::Value, at: Millis| DetectorOverride {
        tenant: tenant.into(),
        detector_id: id.into(),
        fields: fields.to_string(),
        updated_at: at,
    };
    s.put_detector_override(&o("b", "pi", json!({"enabled": false}), 1)).await.unwrap();
    s.put_detector_override(&o("a", "pi", json!({"enabled": false}), 1)).await.unwrap();
    // A second change to the same detector replaces the first.
    s.put_detector_override(&o("a", "pi", json!({"enabled": true, "config": {"threshold": 0.9}}), 2)).await.unwrap();
    s.put_detector_override(&o("a", "cost", json!({"severity": "critical"}), 3)).await.unwrap();
    let a = s.detector_overrides(Some("a")).await.unwrap();
    assert_eq!(
        a,
        vec![
            o("a", "cost", json!({"severity": "critical"}), 3),
            o("a", "pi", json!({"enabled": true, "config": {"threshold": 0.9}}), 2)
        ]
    );
    assert_eq!(s.detector_overrides(Some("b")).await.unwrap(), vec![o("b", "pi", json!({"enabled": false}), 1)]);
    assert!(s.detector_overrides(Some("c")).await.unwrap().is_empty());
    assert_eq!(s.detector_overrides(None).await.unwrap().len(), 3);
    // Dropping one leaves the others; dropping it again finds nothing.
    assert!(s.delete_detector_override("a", "pi").await.unwrap());
    assert!(!s.delete_detector_override("a", "pi").await.unwrap());
    assert_eq!(
        s.detector_overrides(Some("a")).await.unwrap(),
        vec![o("a", "cost", json!({"severity": "critical"}), 3)]
    );
    assert_eq!(s.detector_overrides(Some("b")).await.unwrap().len(), 1);
}

/// `for_each_event` walks every page of a range, or stops at its bound.
async fn event_scan(s: &dyn Store) {
    let batch: Vec<Record> = (0..1500)
        .map(|i| Record { event: event("scan", &format!("s{i:04}"), 5000 + i, None), deliveries: vec![] })
        .collect();
    s.record(&batch).await.unwrap();
    let q = EventQuery { tenant: "scan".into(), since: Some(5100), until: Some(7000), ..Default::default() };
    let mut seen = Vec::new();
    let (read, more) = for_each_event(s, &q, None, |e| seen.push(e.timestamp)).await.unwrap();
    assert_eq!((read, more, seen.len()), (1400, false, 1400));
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first, no repeats across pages");
    let (read, more) = for_each_event(s, &q, Some(1000), |_| {}).await.unwrap();
    assert_eq!((read, more), (1000, true));
    let other = EventQuery { tenant: "nobody".into(), ..Default::default() };
    assert_eq!(for_each_event(s, &other, Some(10), |_| {}).await.unwrap(), (0, false));
}

/// Export positions round-trip, a pending window clears, and the export
/// scans find the first row and the tenants of a window across tenants.
async fn export_positions(s: &dyn Store) {
    assert_eq!(s.export_position("events").await.unwrap(), None);
    let mut p = ExportPosition { stream: "events".into(), position: 1000, pending_to: Some(2000), updated_at: 5 };
    s.set_export_position(&p).await.unwrap();
    assert_eq!(s.export_position("events").await.unwrap().as_ref(), Some(&p));
    p = ExportPosition { position: 2000, pending_to: None, updated_at: 6, ..p };
    s.set_export_position(&p).await.unwrap();
    assert_eq!(s.export_position("events").await.unwrap().as_ref(), Some(&p), "replaced, pending cleared");
    assert_eq!(s.export_position("anomalies").await.unwrap(), None, "streams are separate");

    let recs: Vec<Record> = [("xb", "e1", 90_000), ("xa", "e2", 90_500), ("xa", "e3", 95_000)]
        .iter()
        .map(|(t, id, ts)| Record { event: event(t, id, *ts, None), deliveries: vec![] })
        .collect();
    s.record(&recs).await.unwrap();
    assert_eq!(s.first_time_from(ExportSource::Events, 89_000).await.unwrap(), Some(90_000));
    assert_eq!(s.first_time_from(ExportSource::Events, 90_001).await.unwrap(), Some(90_500));
    assert_eq!(s.first_time_from(ExportSource::Events, i64::MAX - 1).await.unwrap(), None);
    assert_eq!(s.tenants_between(ExportSource::Events, 90_000, 95_000).await.unwrap(), ["xa", "xb"]);
    assert_eq!(
        s.tenants_between(ExportSource::Events, 90_001, 96_000).await.unwrap(),
        ["xa"],
        "to is exclusive, from inclusive"
    );
    s.put_anomaly(&anomaly("xc", "ax1", 91_000, "warning", "active", 0.5)).await.unwrap();
    assert_eq!(s.first_time_from(ExportSource::Anomalies, 90_900).await.unwrap(), Some(91_000));
    assert_eq!(s.tenants_between(ExportSource::Anomalies, 91_000, 91_001).await.unwrap(), ["xc"]);
}

fn held(tenant: &str, id: &str, at: Millis, user: Option<&str>) -> QuarantineItem {
    QuarantineItem {
        id: id.into(),
        tenant: tenant.into(),
        source: "gateway".into(),
        kind: "chat.completion".into(),
        content: format!("{{\"text\": \"held {id}\"}}"),
        verdict: "block".into(),
        severity: "critical".into(),
        findings: json!([{"type": "secret_leak", "severity": "critical"}]),
        event_id: None,
        key_id: "k1".into(),
        user_id: user.map(str::to_owned),
        session_id: None,
        status: QuarantineStatus::Pending,
        created_at: at,
        expires_at: at + 60_000,
        decided_at: None,
        decided_by: None,
        reason: None,
    }
}

async fn quarantine(s: &dyn Store) {
    let a = held("qa", "q1", 1_000, Some("u1"));
    s.put_quarantine(&a).await.unwrap();
    s.put_quarantine(&held("qa", "q2", 2_000, None)).await.unwrap();
    s.put_quarantine(&held("qb", "q3", 3_000, None)).await.unwrap();
    assert!(matches!(s.put_quarantine(&a).await, Err(StoreError::Conflict(_))), "an id is stored once");
    // Stored whole, read back as put; another tenant's id is not found.
    assert_eq!(s.quarantined("qa", "q1").await.unwrap(), Some(a.clone()));
    assert_eq!(s.quarantined("qb", "q1").await.unwrap(), None);
    let page = |status, limit, offset| QuarantineQuery { tenant: "qa".into(), status, limit, offset };
    let (items, total) = s.list_quarantine(&page(None, 10, 0)).await.unwrap();
    assert_eq!((items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), total), (vec!["q2", "q1"], 2));
    let (items, total) = s.list_quarantine(&page(None, 1, 1)).await.unwrap();
    assert_eq!((items.len(), items[0].id.as_str(), total), (1, "q1", 2), "paged newest first");
    assert_eq!(s.count_pending_quarantine().await.unwrap(), 3);

    // Compare-and-set: the first decision wins, a second finds it decided.
    let release = QuarantineDecision {
        status: QuarantineStatus::Released,
        by: "k9".into(),
        at: 5_000,
        reason: Some("benign".into()),
    };
    let discard = QuarantineDecision { status: QuarantineStatus::Discarded, ..release.clone() };
    assert!(!s.decide_quarantine("qb", "q1", &release).await.unwrap(), "not another tenant's item");
    assert!(s.decide_quarantine("qa", "q1", &release).await.unwrap());
    assert!(!s.decide_quarantine("qa", "q1", &discard).await.unwrap());
    let got = s.quarantined("qa", "q1").await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.decided_by.as_deref(), got.decided_at, got.reason.as_deref()),
        (QuarantineStatus::Released, Some("k9"), Some(5_000), Some("benign"))
    );
    let pending = page(Some(QuarantineStatus::Pending), 10, 0);
    let (items, total) = s.list_quarantine(&pending).await.unwrap();
    assert_eq!((items.len(), items[0].id.as_str(), total), (1, "q2", 1));
    assert_eq!(s.count_pending_quarantine().await.unwrap(), 2);
    let pend = QuarantineDecision { status: QuarantineStatus::Pending, ..release.clone() };
    assert!(s.decide_quarantine("qa", "q2", &pend).await.is_err(), "a decision leaves pending");

    // Due: pending items whose hold has ended, of every tenant, oldest first.
    let due: Vec<String> = s.quarantine_due(63_000, 10).await.unwrap().into_iter().map(|i| i.id).collect();
    assert_eq!(due, ["q2", "q3"]);
    assert!(s.quarantine_due(61_999, 10).await.unwrap().is_empty());

    // Erasure removes a user's items; retention only decided ones.
    s.put_quarantine(&held("qa", "q4", 4_000, Some("u2"))).await.unwrap();
    assert_eq!(s.erase_user("qa", "u2").await.unwrap().quarantine, 1);
    assert_eq!(s.quarantined("qa", "q4").await.unwrap(), None);
    assert_eq!(s.purge_expired(10_000).await.unwrap().quarantine, 1, "only the decided q1");
    assert_eq!(s.quarantined("qa", "q1").await.unwrap(), None);
    assert!(s.quarantined("qa", "q2").await.unwrap().is_some());
}

fn campaign(tenant: &str, id: &str, kind: &str, status: &str, last_seen: Millis) -> CampaignRow {
    CampaignRow {
        id: id.into(),
        tenant: tenant.into(),
        kind: kind.into(),
        key: format!("key-{id}"),
        status: status.into(),
        severity: "high".into(),
        first_seen: last_seen - 10,
        last_seen,
        events: 3,
        body: format!("{{\"id\":\"{id}\"}}"),
    }
}

async fn campaigns(s: &dyn Store) {
    for c in [
        campaign("ca", "c1", "template", "active", 100),
        campaign("ca", "c2", "indicator", "active", 200),
        campaign("ca", "c3", "template", "closed", 300),
        campaign("cb", "c4", "ip_range", "active", 400),
    ] {
        s.put_campaign(&c).await.unwrap();
    }
    let mut changed = campaign("ca", "c1", "template", "active", 250);
    changed.events = 7;
    s.put_campaign(&changed).await.unwrap();
    assert_eq!(s.campaign("ca", "c1").await.unwrap().map(|c| (c.events, c.last_seen)), Some((7, 250)));
    assert_eq!(s.campaign("cb", "c1").await.unwrap(), None, "another tenant's campaign is not found");
    let q = |status: Option<&str>, kind: Option<&str>, since: Option<Millis>| CampaignQuery {
        tenant: "ca".into(),
        status: status.map(str::to_owned),
        kind: kind.map(str::to_owned),
        since,
        limit: 10,
        offset: 0,
    };
    let (all, total) = s.campaigns(&q(None, None, None)).await.unwrap();
    assert_eq!((all.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), total), (vec!["c3", "c1", "c2"], 3));
    let (active, _) = s.campaigns(&q(Some("active"), Some("template"), None)).await.unwrap();
    assert_eq!(active.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["c1"]);
    let (recent, n) = s.campaigns(&q(None, None, Some(260))).await.unwrap();
    assert_eq!((recent.len(), n), (1, 1));
    let (page, n) = s.campaigns(&CampaignQuery { limit: 1, offset: 1, ..q(None, None, None) }).await.unwrap();
    assert_eq!((page[0].id.as_str(), n), ("c1", 3));
    let restored: Vec<String> = s.active_campaigns(150, 10).await.unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(restored, ["c4", "c1", "c2"]);
    // Retention deletes those last seen before the cutoff.
    assert_eq!(s.purge_expired(260).await.unwrap().campaigns, 2);
    let left: Vec<String> = s.campaigns(&q(None, None, None)).await.unwrap().0.into_iter().map(|c| c.id).collect();
    assert_eq!(left, ["c3"]);
}

async fn all(s: &dyn Store) {
    s.ping().await.unwrap();
    keys(s).await;
    key_limits_and_usage(s).await;
    budget_holds(s).await;
    events_and_isolation(s).await;
    outbox(s).await;
    webhooks(s).await;
    audit(s).await;
    sentinel_tables(s).await;
    erasure_and_retention(s).await;
    detector_overrides(s).await;
    event_scan(s).await;
    export_positions(s).await;
    quarantine(s).await;
    campaigns(s).await;
}

#[tokio::test]
async fn sqlite_store() {
    all(&sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_holds_of_two_replicas_never_pass_a_budget() {
    let dir = std::env::temp_dir().join(format!("llmsec-store-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("t.db").display());
    let a = SqlStore::connect(&url).await.unwrap();
    let b = SqlStore::connect(&url).await.unwrap();
    concurrent_holds_never_pass_a_budget(a, b).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_holds_of_two_replicas_never_pass_a_budget() {
    let url = postgres_url().await;
    let a = SqlStore::connect(&url).await.unwrap();
    let b = SqlStore::connect(&url).await.unwrap();
    concurrent_holds_never_pass_a_budget(a, b).await;
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

/// A store left at schema version 2 by an older llmsec, opened by this one.
async fn bootstrap_key_upgrade(url: &str) {
    use sqlx::Executor;
    let s = SqlStore::connect(url).await.unwrap();
    // Back to schema version 2, with keys as that version wrote them.
    for undo in [
        "DROP TABLE telemetry_pending",
        "ALTER TABLE telemetry_events ADD COLUMN processed BIGINT NOT NULL DEFAULT 0",
        "CREATE INDEX telemetry_events_pending ON telemetry_events (processed, received_at)",
        "DROP INDEX telemetry_events_tenant_user",
        "DROP INDEX anomalies_resolved",
        "DROP INDEX enforcements_expires",
        "ALTER TABLE telemetry_events DROP COLUMN user_id",
        "DROP TABLE detector_overrides",
        "DROP TABLE key_usage",
        "ALTER TABLE api_keys DROP COLUMN models",
        "ALTER TABLE api_keys DROP COLUMN budgets",
        "ALTER TABLE security_events DROP COLUMN context_kind",
        "ALTER TABLE security_events DROP COLUMN analysis_us",
        "DROP TABLE redteam_runs",
        "DROP INDEX anomalies_ts",
        "DROP TABLE export_positions",
        "DROP TABLE quarantine",
        "ALTER TABLE security_events DROP COLUMN purpose",
        "ALTER TABLE telemetry_events DROP COLUMN purpose",
        "DROP TABLE campaigns",
        "DROP TABLE key_holds",
        "DELETE FROM schema_migrations WHERE version >= 3",
    ] {
        s.pool().execute(undo).await.unwrap();
    }
    // Inserted as that version did: its table has no gateway columns.
    for (id, tenant) in [("boot", "default"), ("acme-admin", "acme")] {
        sqlx::query(
            "INSERT INTO api_keys (id, tenant, name, hash, scopes, rate_per_sec, created_at, revoked_at) \
             VALUES ($1, $2, $1, $3, 'analyze,ingest,read,admin', NULL, 1, NULL)",
        )
        .bind(id)
        .bind(tenant)
        .bind("00".repeat(32))
        .execute(s.pool())
        .await
        .unwrap();
    }
    let boot = NewAudit {
        actor: "system".into(),
        action: "key.bootstrap".into(),
        target: "boot".into(),
        details: json!({"tenant": "default"}),
    };
    s.append_audit(boot, 1).await.unwrap();
    drop(s);
    let s = SqlStore::connect(url).await.unwrap();
    assert_eq!(
        s.key("boot").await.unwrap().unwrap().scopes,
        [Scope::Analyze, Scope::Ingest, Scope::Read, Scope::Admin, Scope::Operator]
    );
    assert_eq!(
        s.key("acme-admin").await.unwrap().unwrap().scopes,
        [Scope::Analyze, Scope::Ingest, Scope::Read, Scope::Admin]
    );
    assert!(s.detector_overrides(None).await.unwrap().is_empty(), "the new table exists");
    let boot = s.key("boot").await.unwrap().unwrap();
    assert_eq!((boot.models, boot.budgets), (None, vec![]), "older keys have no gateway limits");
    assert!(s.key_usage("default", "boot", 1).await.unwrap().iter().all(|u| u.tokens == 0));
    // Events gained their context kind and analysis time.
    s.record(&[Record { event: event("default", "e1", 5, None), deliveries: vec![] }]).await.unwrap();
    let got = s.events(&EventQuery { tenant: "default".into(), limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!((got[0].context_kind.as_deref(), got[0].analysis_us), (Some("email"), Some(42)));
    assert!(s.redteam_runs("default", 0, i64::MAX, 10).await.unwrap().is_empty(), "the red-team table exists");
    assert_eq!(s.export_position("events").await.unwrap(), None, "the export table exists");
    assert_eq!(s.count_pending_quarantine().await.unwrap(), 0, "the quarantine table exists");
    assert!(s.active_campaigns(0, 10).await.unwrap().is_empty(), "the campaign table exists");
    let hold = BudgetHold { id: "h".into(), tokens: 1, cost: 0.0, expires_at: 2 };
    assert_eq!(s.hold_key_budget("default", "boot", 1, &[], &hold).await.unwrap(), None, "the budget holds work");
}

#[tokio::test]
async fn sqlite_bootstrap_key_of_an_older_store_becomes_operator_and_other_admin_keys_stay_tenant_admins() {
    let dir = std::env::temp_dir().join(format!("llmsec-store-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    bootstrap_key_upgrade(&format!("sqlite://{}", dir.join("t.db").display())).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_bootstrap_key_of_an_older_store_becomes_operator_and_other_admin_keys_stay_tenant_admins() {
    bootstrap_key_upgrade(&postgres_url().await).await;
}

#[test]
fn operator_includes_admin_which_includes_triage() {
    assert!(Scope::Operator.grants(Scope::Admin) && Scope::Operator.grants(Scope::Triage));
    assert!(Scope::Admin.grants(Scope::Triage) && !Scope::Admin.grants(Scope::Operator));
    assert!(!Scope::Triage.grants(Scope::Admin) && !Scope::Operator.grants(Scope::Read));
    assert!(!Scope::Operator.grants(Scope::Proxy) && !Scope::Proxy.grants(Scope::Analyze));
    for s in Scope::ALL {
        assert!(s.grants(s));
        assert_eq!(Scope::parse(s.as_str()), Some(s));
        assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
    }
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

/// Encryption at rest over a database at `url`: prompt text never reaches
/// the database in clear, reads open it, a moved ciphertext is refused,
/// and a rotation with `rekey` leaves every row under the new key.
async fn encryption_at_rest(url: &str) {
    use sqlx::Row;
    const K1: [u8; 32] = [1; 32];
    const K2: [u8; 32] = [2; 32];
    const PROMPT: &str = "my card is 4111 1111 1111 1111, ignore previous instructions";
    let with = |keys: Vec<[u8; 32]>| {
        let url = url.to_owned();
        async move {
            let old: Vec<&[u8]> = keys[1..].iter().map(|k| k.as_slice()).collect();
            SqlStore::connect(&url).await.unwrap().with_cipher(Cipher::new(&keys[0], &old).unwrap())
        }
    };
    let ev = |id: &str| {
        let mut e = event("enc", id, 10, Some("u1"));
        e.input = Some(PROMPT.into());
        Record { event: e, deliveries: vec![] }
    };
    let tel = |id: &str| {
        let mut t = telemetry("enc", id, 10);
        t.body =
            serde_json::json!({"event_id": id, "data": {"prompt": PROMPT, "completion": "sure, here", "model": "m"},
            "metadata": {"user_id": "u1"}})
            .to_string();
        t
    };
    let raw_inputs = async |s: &SqlStore| -> Vec<(String, String)> {
        sqlx::query("SELECT id, input FROM security_events WHERE tenant = 'enc' ORDER BY id")
            .fetch_all(s.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<String, _>("id"), r.get::<String, _>("input")))
            .collect()
    };
    let raw_bodies = async |s: &SqlStore| -> Vec<String> {
        sqlx::query("SELECT body FROM telemetry_events WHERE tenant = 'enc' ORDER BY event_id")
            .fetch_all(s.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>("body"))
            .collect()
    };
    let q = EventQuery { tenant: "enc".into(), limit: 100, ..Default::default() };

    // Before encryption is turned on: plain rows (and a prompt that looks sealed).
    let plain = SqlStore::connect(url)
        .await
        .unwrap()
        .with_purposes(Purposes { events: Some("security_monitoring".into()), telemetry: Some("abuse".into()) });
    let mut looks_sealed = ev("e0b");
    looks_sealed.event.input = Some("enc:v1:abc:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into());
    plain.record(&[ev("e0"), looks_sealed]).await.unwrap();
    plain.ingest(&[tel("t0")]).await.unwrap();
    let purposes: Vec<Option<String>> = sqlx::query("SELECT purpose FROM security_events WHERE tenant = 'enc'")
        .fetch_all(plain.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("purpose"))
        .collect();
    assert_eq!(purposes, [Some("security_monitoring".to_owned()), Some("security_monitoring".to_owned())]);

    // Key 1.
    let s1 = with(vec![K1]).await;
    let kid1 = s1.cipher().unwrap().primary_kid().to_owned();
    s1.record(&[ev("e1")]).await.unwrap();
    s1.ingest(&[tel("t1")]).await.unwrap();
    let raw = raw_inputs(&s1).await;
    assert!(raw.iter().find(|(id, _)| id == "e1").unwrap().1.starts_with(&format!("enc:v1:{kid1}:")));
    assert!(raw.iter().filter(|(id, _)| id == "e1").all(|(_, i)| !i.contains("4111")));
    let bodies = raw_bodies(&s1).await;
    assert!(!bodies[1].contains("4111") && !bodies[1].contains("sure, here"), "{}", bodies[1]);
    assert!(bodies[1].contains("\"u1\""), "metadata stays searchable for erasure");
    let read = s1.events(&q).await.unwrap();
    assert_eq!(read.len(), 3);
    assert!(read.iter().filter(|e| e.id != "e0b").all(|e| e.input.as_deref() == Some(PROMPT)));
    assert!(read.iter().any(|e| e.input.as_deref().is_some_and(|i| i.starts_with("enc:v1:abc:"))));
    let t = s1.telemetry("enc", 0, 100, 10).await.unwrap();
    assert!(t.iter().all(|t| t.body.contains(PROMPT) && t.body.contains("sure, here")), "{t:?}");
    // A held item's text is sealed like an event's input.
    let mut item = held("enc", "h1", 10, Some("u1"));
    item.content = PROMPT.into();
    s1.put_quarantine(&item).await.unwrap();
    let raw_held: String = sqlx::query("SELECT content FROM quarantine WHERE id = 'h1'")
        .fetch_one(s1.pool())
        .await
        .unwrap()
        .get("content");
    assert!(raw_held.starts_with(&format!("enc:v1:{kid1}:")) && !raw_held.contains("4111"), "{raw_held}");
    assert_eq!(s1.quarantined("enc", "h1").await.unwrap().map(|i| i.content), Some(PROMPT.to_owned()));

    // A store without the key says which key it lacks.
    match plain.events(&q).await {
        Err(StoreError::Cipher(CipherError::UnknownKey { kid, .. })) => assert_eq!(kid, kid1),
        other => panic!("{other:?}"),
    }

    // A ciphertext moved to another row does not open there.
    let sealed = raw.iter().find(|(id, _)| id == "e1").unwrap().1.clone();
    s1.record(&[ev("e9")]).await.unwrap();
    sqlx::query("UPDATE security_events SET input = $1 WHERE id = 'e9'")
        .bind(&sealed)
        .execute(s1.pool())
        .await
        .unwrap();
    assert!(matches!(s1.events(&q).await, Err(StoreError::Cipher(CipherError::Tampered { .. }))));
    sqlx::query("DELETE FROM security_events WHERE id = 'e9'").execute(s1.pool()).await.unwrap();

    // Rotation: key 2 is primary, key 1 still opens.
    let s2 = with(vec![K2, K1]).await;
    let kid2 = s2.cipher().unwrap().primary_kid().to_owned();
    s2.record(&[ev("e2")]).await.unwrap();
    assert_eq!(s2.events(&q).await.unwrap().len(), 4);
    let mut batches = 0;
    let done = s2.rekey(2, |_| batches += 1).await.unwrap();
    assert!(batches >= 3, "{batches}");
    assert_eq!((done.events_scanned, done.events_rewritten), (4, 3));
    assert_eq!((done.telemetry_scanned, done.telemetry_rewritten), (2, 2));
    assert_eq!((done.quarantine_scanned, done.quarantine_rewritten), (1, 1));
    assert!(raw_inputs(&s2).await.iter().all(|(_, i)| cipher::is_sealed_with(i, &kid2)));
    assert!(raw_bodies(&s2).await.iter().all(|b| !b.contains("4111") && !b.contains(&kid1)));
    // Idempotent: a second run has nothing to do.
    let again = s2.rekey(100, |_| ()).await.unwrap();
    assert_eq!((again.events_rewritten, again.telemetry_rewritten), (0, 0));

    // Key 1 can go.
    let s3 = with(vec![K2]).await;
    let read = s3.events(&q).await.unwrap();
    assert_eq!(read.len(), 4);
    assert_eq!(read.iter().filter(|e| e.input.as_deref() == Some(PROMPT)).count(), 3);
    assert_eq!(s3.telemetry("enc", 0, 100, 10).await.unwrap().len(), 2);
    assert_eq!(s3.quarantined("enc", "h1").await.unwrap().map(|i| i.content), Some(PROMPT.to_owned()));

    // rekey without a key is an error, not a no-op.
    assert!(matches!(plain.rekey(10, |_| ()).await, Err(StoreError::Cipher(CipherError::Key { .. }))));
    // Erasure still finds the user's telemetry (its metadata is not sealed).
    let removed = s3.erase_user("enc", "u1").await.unwrap();
    assert_eq!((removed.events, removed.telemetry), (4, 2));
}

#[tokio::test]
async fn sqlite_encryption_at_rest() {
    let dir = std::env::temp_dir().join(format!("llmsec-store-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("t.db");
    encryption_at_rest(&format!("sqlite://{}", db.display())).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_encryption_at_rest() {
    encryption_at_rest(&postgres_url().await).await;
}

/// `tenant/event_id` of the pending events, in the order Sentinel gets them.
async fn pending_ids(s: &dyn Store) -> Vec<String> {
    s.pending_telemetry(100).await.unwrap().into_iter().map(|r| format!("{}/{}", r.tenant, r.event_id)).collect()
}

/// A store from before step 12 kept Sentinel's progress in a `processed`
/// column; opened by this version, its unprocessed events (and only those)
/// are pending, and retention still keeps them.
async fn pending_backfill(url: &str) {
    use sqlx::Executor;
    let s = SqlStore::connect(url).await.unwrap();
    // Back to schema version 11: the flag in the events table.
    for undo in [
        "DROP TABLE telemetry_pending",
        "ALTER TABLE telemetry_events ADD COLUMN processed BIGINT NOT NULL DEFAULT 0",
        "CREATE INDEX telemetry_events_pending ON telemetry_events (processed, received_at)",
        "DELETE FROM schema_migrations WHERE version = 12",
    ] {
        s.pool().execute(undo).await.unwrap();
    }
    // Rows as that version wrote them: `old-done` was run through the detectors.
    for (tenant, id, at, processed) in
        [("a", "old-late", 30_i64, 0_i64), ("a", "old-done", 10, 1), ("b", "old-early", 20, 0)]
    {
        sqlx::query(
            "INSERT INTO telemetry_events (tenant, event_id, application_id, event_type, ts, body, received_at, processed) \
             VALUES ($1, $2, 'chatbot', 'llm.response', $3, '{}', $3, $4)",
        )
        .bind(tenant)
        .bind(id)
        .bind(at)
        .bind(processed)
        .execute(s.pool())
        .await
        .unwrap();
    }
    drop(s);
    let s = SqlStore::connect(url).await.unwrap();
    assert_eq!(pending_ids(&s).await, ["b/old-early", "a/old-late"], "unprocessed rows only, oldest first");
    assert!(
        s.pool().execute("SELECT processed FROM telemetry_events").await.is_err(),
        "the flag is gone from the events table"
    );
    // New events wait too; marking one processed takes it out.
    assert_eq!(s.ingest(&[telemetry("a", "new", 40)]).await.unwrap(), [true]);
    s.mark_processed(&[("a".into(), "old-late".into())]).await.unwrap();
    assert_eq!(pending_ids(&s).await, ["b/old-early", "a/new"]);
    // Retention: processed rows older than the cutoff go, pending ones stay
    // however old, newer ones stay.
    assert_eq!(s.purge_expired(35).await.unwrap().telemetry, 2, "old-done and old-late");
    assert_eq!(s.count_telemetry("a", None).await.unwrap(), 1);
    assert_eq!(s.count_telemetry("b", None).await.unwrap(), 1);
    assert_eq!(pending_ids(&s).await, ["b/old-early", "a/new"]);
    s.mark_processed(&[("b".into(), "old-early".into()), ("a".into(), "new".into())]).await.unwrap();
    assert_eq!(s.purge_expired(35).await.unwrap().telemetry, 1, "old-early, now processed");
    assert_eq!(s.count_telemetry("a", None).await.unwrap(), 1, "received after the cutoff");
    assert!(s.pending_telemetry(100).await.unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_unprocessed_telemetry_of_an_older_store_is_pending() {
    let dir = std::env::temp_dir().join(format!("llmsec-store-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    pending_backfill(&format!("sqlite://{}", dir.join("t.db").display())).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_unprocessed_telemetry_of_an_older_store_is_pending() {
    pending_backfill(&postgres_url().await).await;
}

/// Steps are applied by what is recorded, not by the highest number: a
/// step numbered below one already applied (one that lands after a later
/// step was released) still runs.
#[tokio::test]
async fn a_missing_step_below_the_newest_still_runs() {
    use sqlx::Executor;
    let dir = std::env::temp_dir().join(format!("llmsec-store-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("t.db").display());
    let s = SqlStore::connect(&url).await.unwrap();
    s.pool().execute("DROP TABLE export_positions").await.unwrap();
    s.pool().execute("DROP INDEX anomalies_ts").await.unwrap();
    s.pool().execute("DELETE FROM schema_migrations WHERE version = 8").await.unwrap();
    drop(s);
    let s = SqlStore::connect(&url).await.unwrap();
    assert_eq!(s.export_position("events").await.unwrap(), None, "step 8 ran again");
    let _ = std::fs::remove_dir_all(&dir);
}
