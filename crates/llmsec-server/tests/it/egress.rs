//! Outbound HTTP under the egress policy, over real sockets: internal
//! targets refused at registration (IP literals) and at connect time (host
//! names), errors shown to tenants that name no host or address, the
//! allow-list, redirects not followed.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::common::*;

const SECRET: &str = "egress-test-secret-0123";

/// A receiver on 127.0.0.1 recording the paths asked for: `/redirect`
/// answers 307 to `/trap`, anything else 200.
#[derive(Clone, Default)]
struct Receiver {
    paths: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    async fn start() -> (Receiver, u16) {
        let r = Receiver::default();
        let s = r.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let s = s.clone();
            async move {
                let path = req.uri().path().to_owned();
                s.paths.lock().unwrap().push(path.clone());
                if path == "/redirect" {
                    (StatusCode::TEMPORARY_REDIRECT, [("location", "/trap")]).into_response()
                } else {
                    StatusCode::OK.into_response()
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, port)
    }

    fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

async fn subscribe(router: &axum::Router, key: &str, url: &str) -> Resp {
    post(router, "/api/webhooks", key, json!({"url": url, "secret": SECRET, "events": ["analysis.completed"]})).await
}

/// The first delivery of the caller's tenant with `status`, waited for.
async fn delivery(router: &axum::Router, key: &str, status: &str) -> Value {
    eventually(10, || {
        let router = router.clone();
        let key = key.to_owned();
        let path = format!("/api/webhooks/deliveries?status={status}");
        async move { get(&router, &path, &key).await.body["deliveries"].as_array()?.first().cloned() }
    })
    .await
}

#[tokio::test]
async fn registering_a_webhook_to_an_internal_address_is_refused_naming_url() {
    let t = app_with(|c| c.egress.allow.clear()).await;
    let key = make_key(&t.router, "acme", &["admin"]).await;
    for url in [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://127.0.0.1:9/hook",
        "http://2130706433/hook",
        "http://[::1]/hook",
        "http://0.0.0.0:8080/hook",
    ] {
        let r = subscribe(&t.router, &key, url).await;
        assert_eq!(
            (r.status, r.body["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("url")),
            "{url}: {}",
            r.text
        );
        assert!(r.body["error"]["message"].as_str().unwrap().contains("egress"), "{}", r.text);
    }
    assert!(get(&t.router, "/api/webhooks", &key).await.body["webhooks"].as_array().unwrap().is_empty());
    // A host name is checked when a delivery connects, not now.
    assert_eq!(subscribe(&t.router, &key, "http://localhost:9/hook").await.status, StatusCode::CREATED);

    // Allowing loopback does not allow the metadata address.
    let t = app().await;
    let r = subscribe(&t.router, ADMIN, "http://169.254.169.254/latest/meta-data/").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(subscribe(&t.router, ADMIN, "http://127.0.0.1:9/hook").await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_host_name_resolving_to_loopback_is_not_delivered_and_its_error_names_no_address() {
    let (rx, port) = Receiver::start().await;
    let t = app_with(|c| c.egress.allow.clear()).await;
    let key = make_key(&t.router, "acme", &["analyze", "read", "admin"]).await;
    let r = subscribe(&t.router, &key, &format!("http://localhost:{port}/hook")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    post(&t.router, "/api/security/analyze", &key, json!({"input": BENIGN})).await;

    // Refused at connect time: dead at once, with a category for an error.
    let dead = delivery(&t.router, &key, "dead").await;
    assert_eq!(dead["last_error"], "egress refused", "{dead}");
    assert_eq!((dead["attempts"].as_u64(), dead["last_status"].as_u64()), (Some(1), None));
    assert!(rx.paths().is_empty(), "nothing reached the receiver: {:?}", rx.paths());
    let reader = make_key(&t.router, "acme", &["read"]).await;
    let listing = get(&t.router, "/api/webhooks/deliveries", &reader).await;
    assert_eq!(listing.body["deliveries"][0]["last_error"], "egress refused", "{}", listing.text);
    for leak in ["127.0.0.1", "::1", "localhost", "Connection refused", "tcp connect"] {
        assert!(!listing.text.contains(leak), "{leak} in {}", listing.text);
    }
}

#[tokio::test]
async fn with_the_allow_list_a_host_name_resolving_to_loopback_is_delivered() {
    for allow in [vec!["127.0.0.0/8", "::1"], vec!["localhost"]] {
        let (rx, port) = Receiver::start().await;
        let t = app_with(|c| c.egress.allow = allow.iter().map(|s| s.to_string()).collect()).await;
        let key = make_key(&t.router, "acme", &["analyze", "read", "admin"]).await;
        let r = subscribe(&t.router, &key, &format!("http://localhost:{port}/hook")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        post(&t.router, "/api/security/analyze", &key, json!({"input": BENIGN})).await;
        let done = delivery(&t.router, &key, "delivered").await;
        assert_eq!(done["last_status"], 200, "{allow:?}: {done}");
        assert_eq!(rx.paths(), ["/hook"], "{allow:?}");
    }
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (rx, port) = Receiver::start().await;
    let t = app_with(|c| c.delivery.max_attempts = 1).await;
    let key = make_key(&t.router, "acme", &["analyze", "read", "admin"]).await;
    let r = subscribe(&t.router, &key, &format!("http://127.0.0.1:{port}/redirect")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    post(&t.router, "/api/security/analyze", &key, json!({"input": BENIGN})).await;
    let dead = delivery(&t.router, &key, "dead").await;
    assert_eq!(
        (dead["last_status"].as_u64(), dead["last_error"].as_str()),
        (Some(307), Some("HTTP 307 Temporary Redirect"))
    );
    assert_eq!(rx.paths(), ["/redirect"], "the Location was not followed");
}

fn attack_event(id: &str) -> Value {
    json!({
        "event_id": id,
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "event_type": "llm.request",
        "application_id": "chatbot-prod",
        "data": {"model": "gpt-4o", "prompt": ATTACK},
        "metadata": {"user_id": "mallory"}
    })
}

#[tokio::test]
async fn a_detector_webhook_to_a_name_resolving_to_loopback_is_refused_and_reported_generically() {
    let (rx, port) = Receiver::start().await;
    let dir = temp_dir();
    let detectors = dir.join("d.yaml");
    std::fs::write(
        &detectors,
        format!(
            "detectors:\n  - id: pi\n    type: ml\n    threshold: 0.5\n    actions:\n      - type: webhook\n        config: {{url: 'http://localhost:{port}/hook?token=abc', secret: '{SECRET}'}}\n"
        ),
    )
    .unwrap();
    let t = app_with(|c| {
        c.egress.allow.clear();
        c.sentinel.detectors = Some(detectors.clone());
    })
    .await;
    let key = make_key(&t.router, "acme", &["ingest", "read"]).await;
    let r = post(&t.router, "/api/v1/telemetry/events", &key, attack_event("e1")).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let anomaly = eventually(15, || {
        let router = t.router.clone();
        let key = key.clone();
        async move { get(&router, "/api/v1/anomalies", &key).await.body["anomalies"].as_array()?.first().cloned() }
    })
    .await;
    let action = &anomaly["actions_taken"][0];
    assert_eq!(action["type"], "webhook", "{anomaly}");
    assert_eq!(action["message"], format!("queued for http://localhost:{port}/***?***"), "{anomaly}");
    let dead = delivery(&t.router, &key, "dead").await;
    assert_eq!(dead["last_error"], "egress refused", "{dead}");
    assert!(rx.paths().is_empty());
}

#[tokio::test]
async fn detector_actions_to_internal_addresses_are_refused_at_start_and_at_update() {
    let dir = temp_dir();
    let detectors = dir.join("d.yaml");
    std::fs::write(
        &detectors,
        "detectors:\n  - id: pi\n    type: ml\n    threshold: 0.5\n    actions:\n      - type: webhook\n        config: {url: 'http://169.254.169.254/latest/meta-data/'}\n",
    )
    .unwrap();
    let mut c = config();
    c.sentinel.detectors = Some(detectors.clone());
    let e = llmsec_server::Server::start(c, Some(ADMIN.into())).await.unwrap_err().to_string();
    assert!(e.contains("detectors (pi).actions[0].config.url") && e.contains("metadata"), "{e}");
    let mut c = config();
    c.sentinel.incidents_url = Some("http://10.0.0.5:8080".into());
    let e = llmsec_server::Server::start(c, Some(ADMIN.into())).await.unwrap_err().to_string();
    assert!(e.contains("sentinel.incidents_url"), "{e}");

    std::fs::write(&detectors, "detectors:\n  - id: pi\n    type: ml\n    threshold: 0.5\n").unwrap();
    let t = app_with(|c| c.sentinel.detectors = Some(detectors.clone())).await;
    for action in [
        r#"{type: "webhook", config: {url: "http://169.254.169.254/x"}}"#,
        r#"{type: "incident", config: {url: "http://[fd00:ec2::254]"}}"#,
    ] {
        let q = format!("mutation {{ updateDetector(id: \"pi\", config: {{actions: [{action}]}}) {{ id }} }}");
        let r = post(&t.router, "/graphql", ADMIN, json!({"query": q})).await;
        let err = &r.body["errors"][0];
        assert_eq!(err["extensions"]["field"], "config", "{}", r.text);
        assert!(err["message"].as_str().unwrap().contains("actions[0].config.url"), "{}", r.text);
    }
    let r = post(&t.router, "/graphql", ADMIN, json!({"query": "{ detectors { id actions } }"})).await;
    assert_eq!(r.body["data"]["detectors"][0]["actions"], json!([]), "nothing changed: {}", r.text);
}
