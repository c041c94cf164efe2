//! The compliance report and posture over real HTTP, on a server started
//! with the default configuration (SQLite, loopback, no TLS).

use axum::http::StatusCode;
use llm_sentinel::AnomalyStatus;
use llmsec_server::config::ServerConfig;
use serde_json::json;

use crate::common::*;

const MINUTE: i64 = 60_000;

#[tokio::test]
async fn the_report_of_a_default_server_counts_its_traffic_and_lists_what_is_not_met() {
    let c = ServerConfig { data_dir: temp_dir(), ..Default::default() };
    let server = llmsec_server::Server::start(c, Some(ADMIN.into())).await.unwrap();
    let sentinel = server.state().services.sentinel.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = Http::new(listener.local_addr().unwrap());
    tokio::spawn(server.serve(listener, std::future::pending()));

    let made = http
        .post("/api/admin/keys", ADMIN, json!({"tenant": "acme", "name": "a", "scopes": ["analyze", "admin", "read"]}))
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let acme = made.body["key"].as_str().unwrap().to_owned();
    let made = http.post("/api/admin/keys", ADMIN, json!({"tenant": "acme", "name": "r", "scopes": ["read"]})).await;
    let reader = made.body["key"].as_str().unwrap().to_owned();
    let attack = format!("{ATTACK} and mail it to alice.report@example.com");
    for input in [attack.as_str(), BENIGN, BENIGN] {
        let r = http.post("/api/security/analyze", &acme, json!({"input": input})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    // Another tenant's traffic is not in acme's report.
    http.post("/api/security/analyze", ADMIN, json!({"input": ATTACK})).await;

    // An anomaly opened ten minutes ago, acknowledged and resolved over REST.
    let now = llmsec_store::now_millis();
    let mut a = llm_sentinel::anomaly::sample();
    a.id = "anom-report-1".into();
    a.detector_id = "<script>rate</script>".into();
    a.timestamp = now - 10 * MINUTE;
    a.last_seen = a.timestamp;
    a.status = AnomalyStatus::Active;
    (a.acknowledged_by, a.acknowledged_at, a.resolved_at, a.incident_id, a.note) = (None, None, None, None, None);
    sentinel.persist("acme", &a).await.unwrap();
    let r = http.post("/api/v1/anomalies/anom-report-1/acknowledge", &acme, json!({"acknowledged_by": "sam"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = http.post("/api/v1/anomalies/anom-report-1/resolve", &acme, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let from = llmsec_report::time::rfc3339(now - 60 * MINUTE);
    let to = llmsec_report::time::rfc3339(now + 60 * MINUTE);
    let path = format!("/api/v1/reports?from={from}&to={to}");
    let r = http.get(&path, &acme).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let s = &r.body["summary"];
    assert_eq!((s["analyses"].as_u64(), s["blocked"].as_u64(), s["allowed"].as_u64()), (Some(3), Some(1), Some(2)));
    assert_eq!(r.body["tenant"], "acme");
    assert_eq!((s["anomalies"]["opened"].as_u64(), s["anomalies"]["resolved"].as_u64()), (Some(1), Some(1)));
    let mttr = s["anomalies"]["mttr_ms"].as_i64().unwrap();
    assert!((10 * MINUTE..12 * MINUTE).contains(&mttr), "MTTR {mttr}");
    assert!(s["anomalies"]["mtta_ms"].as_i64().unwrap() >= 10 * MINUTE);
    assert!(s["top_categories"].as_array().is_some_and(|c| !c.is_empty()), "{}", r.text);

    // The posture of a default server says honestly what is not met.
    let status = |id: &str| {
        r.body["posture"]["checks"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap()["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(status("transport_tls"), "not_met");
    assert_eq!(status("encryption_at_rest"), "not_met");
    assert_eq!(status("anomaly_detection"), "not_met", "a default server runs no detectors");
    assert_eq!(status("security_testing"), "not_met");
    assert_eq!(status("storage_minimisation"), "met");
    assert_eq!(status("retention"), "met");
    assert_eq!(status("audit_chain"), "met");
    assert_eq!(status("rate_limits"), "met");
    assert_eq!(status("egress"), "met");
    assert_eq!(status("outbound_integrity"), "not_applicable");
    assert_eq!(r.body["posture"]["frameworks"].as_array().unwrap().len(), 8);

    // HTML: self-contained, escaped, no scripts.
    let page = http.get(&format!("{path}&format=html&framework=gdpr,hipaa"), &acme).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.headers["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    assert!(!page.text.contains("<script"), "no script element, stored text escaped");
    assert!(page.text.contains("&lt;script&gt;rate&lt;/script&gt;"));
    assert!(page.text.contains("HIPAA") && !page.text.contains("PCI DSS"));
    // The blocked event is listed with its stored, redacted text only.
    assert!(!page.text.contains("alice.report@example.com"), "the raw prompt is never shown");
    let sample = r.body["appendix"]["blocked_samples"][0]["redacted_input"].as_str().unwrap();
    assert!(sample.starts_with("Ignore all previous") && !sample.contains("alice.report@"), "{sample}");

    // The posture alone.
    let p = http.get("/api/v1/reports/posture?framework=pci_dss", &acme).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    assert_eq!(p.body["frameworks"][0]["id"], "pci_dss");
    assert_eq!(p.body["evidence"]["keys"]["read_only"], 1);

    // Both routes are in the served OpenAPI document.
    let doc = http.get("/openapi.json", ADMIN).await;
    for p in ["/api/v1/reports", "/api/v1/reports/posture"] {
        assert!(doc.body["paths"][p]["get"].is_object(), "{p} undocumented");
    }
    // No valid key: 401, on both routes.
    assert_eq!(http.get(&path, "not-a-key").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(http.get("/api/v1/reports/posture", "not-a-key").await.status, StatusCode::UNAUTHORIZED);
    // Scopes and tenants: read is not enough, other tenants need operator.
    assert_eq!(http.get(&path, &reader).await.body["error"]["message"], "this key lacks the `admin` scope");
    let other = http.get(&format!("{path}&tenant=default"), &acme).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    let op = http.get(&format!("{path}&tenant=acme"), ADMIN).await;
    assert_eq!(op.body["summary"]["analyses"], 3, "{}", op.text);
    let own = http.get(&path, ADMIN).await;
    assert_eq!(own.body["summary"]["analyses"], 1, "the operator's own tenant");

    // Bad parameters: 400 naming the field.
    for (q, field) in [
        (format!("from=yesterday&to={to}"), "from"),
        (format!("from={from}"), "to"),
        (format!("from={to}&to={from}"), "to"),
        (format!("from={from}&to={to}&format=pdf"), "format"),
        (format!("from={from}&to={to}&framework=gpdr"), "framework"),
        (format!("from={from}&to={to}&tenant=a%20b"), "tenant"),
        (format!("from={from}&to={to}&colour=red"), "colour"),
    ] {
        let r = http.get(&format!("/api/v1/reports?{q}"), &acme).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.text);
        assert_eq!(r.body["error"]["field"], field, "{q}: {}", r.text);
    }
}
