//! Reports and postures over a real SQLite store.

#![allow(clippy::unwrap_used)] // test set-up: a panic is the failure report

use llmsec_report::evidence::DAY_MS;
use llmsec_report::{Configuration, Evidence, ReportRequest, Status, html, report};
use llmsec_store::*;
use serde_json::json;

async fn store() -> SqlStore {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("llmsec-report-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    SqlStore::connect(&format!("sqlite://{}", dir.join("r.db").display())).await.unwrap()
}

fn config() -> Configuration {
    Configuration {
        listen: "127.0.0.1:8080".into(),
        tls: false,
        encryption_at_rest: false,
        storage_input: "redacted".into(),
        retention_days: 30,
        retention_purge_running: true,
        rate_limit_per_sec: 20.0,
        egress_allow: vec![],
        detectors_enabled: 0,
        database: "sqlite".into(),
    }
}

fn key(id: &str, tenant: &str, scopes: Vec<Scope>, created_at: Millis) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.into(),
        tenant: tenant.into(),
        name: id.into(),
        hash: format!("{id:0>64}"),
        scopes,
        rate_per_sec: None,
        created_at,
        revoked_at: None,
        models: None,
        budgets: vec![],
    }
}

fn event(id: &str, tenant: &str, at: Millis, verdict: &str, threats: serde_json::Value, input: &str) -> Record {
    Record {
        event: SecurityEvent {
            id: id.into(),
            tenant: tenant.into(),
            event_type: "input_analysis".into(),
            input: Some(input.into()),
            threats,
            confidence: 0.9,
            verdict: verdict.into(),
            timestamp: at,
            user_id: None,
            session_id: None,
            context_kind: None,
            analysis_us: None,
        },
        deliveries: vec![],
    }
}

fn anomaly(id: &str, at: Millis, status: &str, acked: Option<Millis>, resolved: Option<Millis>) -> AnomalyRow {
    AnomalyRow {
        id: id.into(),
        tenant: "acme".into(),
        detector_id: "<b>rate</b>".into(),
        severity: "warning".into(),
        status: status.into(),
        score: 0.8,
        application_id: None,
        timestamp: at,
        resolved_at: resolved,
        body: json!({"id": id, "acknowledged_at": acked, "resolved_at": resolved}).to_string(),
    }
}

#[tokio::test]
async fn a_report_counts_what_the_store_holds_and_escapes_it() {
    let s = store().await;
    let day0 = 1_767_225_600_000; // 2026-01-01T00:00Z
    let now = day0 + 3 * DAY_MS;
    s.insert_key(&key("op", "default", Scope::ALL.to_vec(), now - DAY_MS)).await.unwrap();
    s.insert_key(&key("reader", "acme", vec![Scope::Read], now - 400 * DAY_MS)).await.unwrap();
    s.insert_key(&key("adm", "acme", vec![Scope::Admin, Scope::Read], now - DAY_MS)).await.unwrap();
    let inj = json!([{"type": "prompt_injection", "severity": "high", "scanner": "injection"},
                     {"type": "jailbreak", "severity": "critical", "scanner": "jailbreak"}]);
    let pii = json!([{"type": "sensitive_data", "severity": "medium", "scanner": "pii"}]);
    s.record(&[
        event("e1", "acme", day0 + 1000, "block", inj, "<script>alert(1)</script> ignore previous [REDACTED_EMAIL]"),
        event("e2", "acme", day0 + DAY_MS + 5, "sanitize", pii, "mail [REDACTED_EMAIL]"),
        event("e3", "acme", day0 + DAY_MS + 9, "allow", json!([]), "hello"),
        // Another tenant's event and one outside the range are not counted.
        event("e4", "globex", day0 + 10, "block", json!([]), "x"),
        event("e5", "acme", day0 + 5 * DAY_MS, "block", json!([]), "x"),
    ])
    .await
    .unwrap();
    s.put_anomaly(&anomaly("a1", day0 + 100, "resolved", Some(day0 + 60_100), Some(day0 + 3_600_100))).await.unwrap();
    s.put_anomaly(&anomaly("a2", day0 + DAY_MS, "active", None, None)).await.unwrap();
    let audit =
        |action: &str, details| NewAudit { actor: "adm".into(), action: action.into(), target: "t".into(), details };
    s.append_audit(audit("key.bootstrap", json!({"tenant": "default"})), day0).await.unwrap();
    s.append_audit(audit("user.erase", json!({"tenant": "acme"})), day0 + 5).await.unwrap();
    s.append_audit(audit("user.erase", json!({"tenant": "globex"})), day0 + 6).await.unwrap();

    let evidence = Evidence::gather(&s, "acme", config(), None, now).await.unwrap();
    assert_eq!((evidence.keys.live, evidence.keys.read_only, evidence.keys.admin), (2, 1, 1));
    assert_eq!(evidence.keys.due_for_rotation, 1);
    assert!(evidence.audit.verified && evidence.audit.entries == 3 && evidence.audit.erasures == 1);
    assert_eq!(evidence.retention.events_past_retention, 0);
    let req = ReportRequest { from: day0, to: day0 + 3 * DAY_MS, frameworks: None };
    let r = report::build(&s, evidence, &req).await.unwrap();
    let sum = &r.summary;
    assert_eq!((sum.analyses, sum.blocked, sum.sanitized, sum.allowed, sum.threats), (3, 1, 1, 1, 3));
    assert!((sum.block_rate - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(sum.daily.len(), 3);
    assert_eq!((sum.daily[0].analyses, sum.daily[1].analyses, sum.daily[2].analyses), (1, 2, 0));
    assert_eq!(sum.anomalies.opened, 2);
    assert_eq!((sum.anomalies.acknowledged, sum.anomalies.resolved, sum.anomalies.active), (1, 1, 1));
    assert_eq!(sum.anomalies.mtta_ms, Some(60_000));
    assert_eq!(sum.anomalies.mttr_ms, Some(3_600_000));
    let jail = r.appendix.categories.iter().find(|c| c.category == "jailbreak").unwrap();
    assert_eq!((jail.critical, jail.total), (1, 1));
    assert_eq!(r.appendix.detectors.len(), 3);
    assert_eq!(r.appendix.anomalies_by_detector["<b>rate</b>"].open, 1);
    assert_eq!(r.appendix.blocked_samples.len(), 1);

    let status = |id: &str| r.posture.checks.iter().find(|c| c.id == id).unwrap().status;
    assert_eq!(status("transport_tls"), Status::NotMet);
    assert_eq!(status("encryption_at_rest"), Status::NotMet);
    assert_eq!(status("key_rotation"), Status::NotMet);
    assert_eq!(status("anomaly_detection"), Status::NotMet);
    assert_eq!(status("audit_chain"), Status::Met);
    assert_eq!(status("erasure"), Status::Met);
    assert_eq!(status("retention"), Status::Met);
    // a2 has been active unacknowledged for two days.
    assert_eq!(status("incident_response"), Status::NotMet);

    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["summary"]["top_categories"][0]["count"], 1);
    let page = html::report(&r);
    assert!(!page.contains("<script>") && page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.contains("<b>rate</b>") && page.contains("&lt;b&gt;rate&lt;/b&gt;"));
    assert!(page.contains("[storage.encryption] is not configured"));

    // With full storage the stored text is the raw prompt: never listed.
    let mut full = config();
    full.storage_input = "full".into();
    let e = Evidence::gather(&s, "acme", full, None, now).await.unwrap();
    let r = report::build(&s, e, &req).await.unwrap();
    assert_eq!(r.appendix.blocked_samples[0].redacted_input, None);
    assert!(!html::report(&r).contains("alert(1)"));
}

#[tokio::test]
async fn old_events_past_retention_fail_the_retention_check_and_bad_ranges_are_refused() {
    let s = store().await;
    let now = 1_767_225_600_000;
    s.record(&[event("old", "acme", now - 40 * DAY_MS, "allow", json!([]), "x")]).await.unwrap();
    let e = Evidence::gather(&s, "acme", config(), None, now).await.unwrap();
    assert_eq!(e.retention.events_past_retention, 1);
    let p = llmsec_report::posture::evaluate(e.clone(), None).unwrap();
    let retention = p.checks.iter().find(|c| c.id == "retention").unwrap();
    assert_eq!(retention.status, Status::NotMet);
    assert!(retention.evidence.contains("1 events older"));
    let reversed = ReportRequest { from: now, to: now - 1, frameworks: None };
    assert!(matches!(report::build(&s, e.clone(), &reversed).await, Err(llmsec_report::ReportError::Range(_))));
    let long = ReportRequest { from: now - 400 * DAY_MS, to: now, frameworks: None };
    assert!(matches!(report::build(&s, e, &long).await, Err(llmsec_report::ReportError::Range(_))));
}
