//! `[export.s3]` against a real S3-compatible store (s3rver), when `LLMSEC_TEST_S3_URL` names one
//! (`scripts/s3.sh start DIR`; scripts/test.sh starts it). Without it
//! these tests print a skip line and pass. s3rver's account is
//! `S3RVER` / `S3RVER`, its bucket `exports`; the server reads them from
//! `LLMSEC_TEST_S3_ACCESS_KEY_ID` and `LLMSEC_TEST_S3_SECRET_ACCESS_KEY`,
//! which scripts/test.sh sets. Each test writes under a prefix of its own.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use llmsec_connect::s3::{S3Client, S3Error};
use llmsec_server::config::{ExportWhat, S3ExportConfig, ServerConfig};
use llmsec_server::export::{ExportPlan, Exporter};
use llmsec_store::{AnomalyRow, EventQuery, Record, SecurityEvent, Store, now_millis};
use serde_json::json;

use crate::common::*;

const DAY: i64 = 86_400_000;

fn s3_url() -> Option<String> {
    let url = std::env::var("LLMSEC_TEST_S3_URL").ok().filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("skipped: LLMSEC_TEST_S3_URL is not set (scripts/s3.sh start DIR prints one)");
    }
    url
}

/// s3rver's account.
fn creds(name: &str) -> Option<String> {
    match name {
        "TEST_KEY" | "TEST_SECRET" => Some("S3RVER".into()),
        _ => None,
    }
}

fn section(endpoint: &str, prefix: &str) -> S3ExportConfig {
    let toml = format!(
        "endpoint = {endpoint:?}\nbucket = \"exports\"\npath_style = true\nprefix = {prefix:?}\n\
         access_key_id_env = \"LLMSEC_TEST_S3_ACCESS_KEY_ID\"\nsecret_access_key_env = \"LLMSEC_TEST_S3_SECRET_ACCESS_KEY\"\n\
         interval_secs = 31536000\ngrace_secs = 60\nmax_rows_per_object = 4\nreport_frameworks = [\"gdpr\"]\n"
    );
    toml::from_str(&toml).unwrap()
}

fn client(endpoint: &str, secret_var: &str) -> S3Client {
    let mut s = section(endpoint, "x").settings();
    s.access_key_id_env = "TEST_KEY".into();
    s.secret_access_key_env = secret_var.into();
    S3Client::new(&s, &creds).unwrap()
}

fn event(tenant: &str, id: &str, ts: i64) -> Record {
    Record {
        event: SecurityEvent {
            id: id.into(),
            tenant: tenant.into(),
            event_type: "input_analysis".into(),
            input: None,
            threats: json!([]),
            confidence: 0.1,
            verdict: "allow".into(),
            timestamp: ts,
            user_id: None,
            session_id: None,
            context_kind: None,
            analysis_us: None,
        },
        deliveries: vec![],
    }
}

fn anomaly(tenant: &str, id: &str, ts: i64) -> AnomalyRow {
    AnomalyRow {
        id: id.into(),
        tenant: tenant.into(),
        detector_id: "rate".into(),
        severity: "warning".into(),
        status: "active".into(),
        score: 0.8,
        application_id: None,
        timestamp: ts,
        resolved_at: None,
        body: json!({"id": id, "detector_id": "rate"}).to_string(),
    }
}

/// Every object under `prefix`, gunzipped where it is gzip, by key.
async fn objects(c: &S3Client, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for key in c.list(prefix).await.unwrap() {
        let body = c.get(&key).await.unwrap().unwrap();
        let body = if key.ends_with(".gz") {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain).unwrap();
            plain
        } else {
            body
        };
        out.insert(key, body);
    }
    out
}

/// `(id, tenant, timestamp)` of every row in the JSON-lines objects under
/// `stream/`, each checked against its key's tenant and date.
fn rows(objs: &BTreeMap<String, Vec<u8>>, prefix: &str, stream: &str) -> Vec<(String, String, i64)> {
    let mut out = vec![];
    for (key, body) in objs.iter().filter(|(k, _)| k.starts_with(&format!("{prefix}/{stream}/"))) {
        let rest = key.strip_prefix(&format!("{prefix}/{stream}/tenant=")).unwrap();
        let (tenant, rest) = rest.split_once("/dt=").unwrap();
        let (dt, name) = rest.split_once('/').unwrap();
        let (lo, hi) = name.trim_end_matches(".jsonl.gz").split_once('-').unwrap();
        let (lo, hi): (i64, i64) = (lo.parse().unwrap(), hi.parse().unwrap());
        for line in std::str::from_utf8(body).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let ts = v["timestamp"].as_i64().unwrap();
            assert_eq!(v["tenant"], tenant, "{key}");
            assert!((lo..hi).contains(&ts), "{key}: {ts} outside its range");
            let date = chrono::DateTime::from_timestamp_millis(ts).unwrap().format("%Y-%m-%d").to_string();
            assert_eq!(date, dt, "{key}");
            out.push((v["id"].as_str().unwrap().to_owned(), tenant.to_owned(), ts));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn served_events_and_anomalies_go_to_s3_once_each_partitioned_by_date() {
    let Some(url) = s3_url() else { return };
    for var in ["LLMSEC_TEST_S3_ACCESS_KEY_ID", "LLMSEC_TEST_S3_SECRET_ACCESS_KEY"] {
        assert!(std::env::var(var).is_ok(), "{var} must hold s3rver's account (S3RVER) with LLMSEC_TEST_S3_URL");
    }
    let prefix = format!("it-{}", uuid::Uuid::new_v4().simple());
    let mut c = config();
    c.export.s3 = Some(section(&url, &prefix));
    let server = llmsec_server::Server::start(c, Some(ADMIN.into())).await.unwrap();
    let router = server.router();
    let store = server.state().store.clone();
    let key = make_key(&router, "acme", &["analyze", "read"]).await;
    for input in [ATTACK, BENIGN, BENIGN, ATTACK, BENIGN, BENIGN] {
        assert_eq!(post(&router, "/api/security/analyze", &key, json!({"input": input})).await.status, 200);
    }
    // Older rows of another tenant across two earlier days, and anomalies.
    let now = now_millis();
    let old: Vec<Record> =
        (0..6).map(|i| event("globex", &format!("old{i}"), now - 2 * DAY + i * 4 * 3_600_000)).collect();
    store.record(&old).await.unwrap();
    store.put_anomaly(&anomaly("acme", "an-1", now - DAY)).await.unwrap();
    store.put_anomaly(&anomaly("globex", "an-2", now - 1000)).await.unwrap();

    let ex = server.exporter().unwrap();
    // Past the grace (60 s), and the minute the watermark rounds down to.
    let tick_at = now_millis() + 121_000;
    let results = ex.tick(tick_at).await;
    for (what, r) in &results {
        assert!(r.is_ok(), "{what:?}: {r:?}");
    }
    let s3 = client(&url, "TEST_SECRET");
    let objs = objects(&s3, &prefix).await;
    // Every stored event exactly once, in the object of its tenant and date.
    let mut want = vec![];
    for tenant in ["acme", "globex"] {
        let q = EventQuery { tenant: tenant.into(), ..Default::default() };
        llmsec_store::for_each_event(store.as_ref(), &q, None, |e| {
            want.push((e.id.clone(), e.tenant.clone(), e.timestamp))
        })
        .await
        .unwrap();
    }
    want.sort();
    assert_eq!(want.len(), 12);
    assert_eq!(rows(&objs, &prefix, "events"), want);
    let anomalies: Vec<String> = rows(&objs, &prefix, "anomalies").into_iter().map(|r| r.0).collect();
    assert_eq!(anomalies, ["an-1", "an-2"]);
    // Six acme events in one millisecond range or more: parts of at most 4
    // rows (plus rows of one millisecond) roll over.
    let acme_objects = objs.keys().filter(|k| k.contains("/events/tenant=acme/")).count();
    assert!(acme_objects >= 2, "{:?}", objs.keys().collect::<Vec<_>>());
    // Yesterday's reports, per tenant, JSON and HTML.
    let watermark = (tick_at - 60_000) / 60_000 * 60_000;
    let yesterday = chrono::DateTime::from_timestamp_millis(watermark - DAY).unwrap().format("%Y-%m-%d");
    let report = &objs[&format!("{prefix}/reports/tenant=acme/day/{yesterday}.json")];
    let report: serde_json::Value = serde_json::from_slice(report).unwrap();
    assert!(report["posture"]["frameworks"].is_array(), "{report}");
    let html = &objs[&format!("{prefix}/reports/tenant=acme/day/{yesterday}.html")];
    assert!(std::str::from_utf8(html).unwrap().contains("<html"));

    // A second tick with nothing new writes nothing.
    let again = ex.tick(tick_at + 1000).await;
    assert!(again.iter().all(|(_, r)| r.as_ref().map(|w| w.objects).ok() == Some(0)), "{again:?}");
    assert_eq!(s3.list(&prefix).await.unwrap().len(), objs.len());
    server.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_store_leaves_the_position_and_a_later_tick_exports_it_all() {
    let Some(url) = s3_url() else { return };
    let t = app().await;
    let store: Arc<dyn Store> = t.server.state().store.clone();
    let now = now_millis();
    let recs: Vec<Record> = (0..5).map(|i| event("acme", &format!("late{i}"), now - 10 * 60_000 + i)).collect();
    store.record(&recs).await.unwrap();
    let prefix = format!("it-{}", uuid::Uuid::new_v4().simple());
    let mut cfg = section(&url, &prefix);
    cfg.what = vec![ExportWhat::Events];
    let plan = ExportPlan::from_config(&cfg);
    let describe: llmsec_server::export::DescribeConfig =
        Arc::new(|_| llmsec_server::service::reports::configuration(&ServerConfig::default(), 0));

    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let down = Exporter::new(store.clone(), Arc::new(client(&closed, "TEST_SECRET")), plan.clone(), describe.clone());
    let r = down.tick(now).await;
    assert!(r[0].1.is_err(), "{r:?}");
    let pos = store.export_position("events").await.unwrap().unwrap();
    assert!(pos.pending_to.is_some() && pos.position <= now - 10 * 60_000, "{pos:?}");
    let metrics = get(&t.router, "/metrics", ADMIN).await.text;
    assert!(metrics.contains("llm_security_export_failures_total{stream=\"events\"} 1"), "{metrics}");

    let up = Exporter::new(store.clone(), Arc::new(client(&url, "TEST_SECRET")), plan, describe);
    let r = up.tick(now + 1000).await;
    assert_eq!(r[0].1.as_ref().unwrap().rows, 5, "{r:?}");
    let objs = objects(&client(&url, "TEST_SECRET"), &prefix).await;
    let ids: Vec<String> = rows(&objs, &prefix, "events").into_iter().map(|r| r.0).collect();
    assert_eq!(ids, (0..5).map(|i| format!("late{i}")).collect::<Vec<_>>());
    let metrics = get(&t.router, "/metrics", ADMIN).await.text;
    assert!(metrics.contains("llm_security_export_last_success_timestamp_seconds{stream=\"events\"}"), "{metrics}");
}

/// s3rver checks the access key of a presigned request but not its
/// SigV4 signature (its source says so; moto checks signatures only in
/// `Authorization` headers): the signature itself is checked by
/// llmsec-connect's unit tests, which recompute it from the specification.
#[tokio::test]
async fn the_store_refuses_an_unknown_access_key_and_serves_what_was_put() {
    let Some(url) = s3_url() else { return };
    let key = format!("it-{}/sig.json", uuid::Uuid::new_v4().simple());
    let mut s = section(&url, "x").settings();
    s.access_key_id_env = "OTHER_KEY".into();
    s.secret_access_key_env = "TEST_SECRET".into();
    let stranger = S3Client::new(&s, &|k| if k == "OTHER_KEY" { Some("NOT-S3RVER".into()) } else { creds(k) }).unwrap();
    match stranger.put(&key, b"{}".to_vec(), "application/json", None).await {
        Err(S3Error::Status { status: 403, body, .. }) => assert!(body.contains("InvalidAccessKeyId"), "{body}"),
        other => panic!("{other:?}"),
    }
    let right = client(&url, "TEST_SECRET");
    right.put(&key, b"{}".to_vec(), "application/json", None).await.unwrap();
    assert_eq!(right.get(&key).await.unwrap().as_deref(), Some(&b"{}"[..]));
    assert_eq!(right.get(&format!("{key}.missing")).await.unwrap(), None);
}

#[tokio::test]
async fn a_missing_credential_stops_the_start_naming_it() {
    let mut c = config();
    let mut s = section("http://127.0.0.1:9", "p");
    s.access_key_id_env = "LLMSEC_TEST_NO_SUCH_VARIABLE".into();
    c.export.s3 = Some(s);
    let e = llmsec_server::Server::start(c, Some(ADMIN.into())).await.unwrap_err().to_string();
    assert!(e.starts_with("export.s3.access_key_id_env: ") && e.contains("LLMSEC_TEST_NO_SUCH_VARIABLE"), "{e}");
}
