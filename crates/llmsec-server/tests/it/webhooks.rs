//! Webhook delivery against a local receiver over real HTTP: signatures,
//! idempotency keys, retries, dead letters, redelivery, and restart.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post as post_route;
use llm_security::webhook::verify;
use serde_json::{Value, json};

use crate::common::*;

const SECRET: &str = "receiver-secret-0123";

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    /// Status codes to answer with, in order; 200 once they run out.
    plan: Arc<Mutex<Vec<u16>>>,
}

impl Receiver {
    async fn start(plan: Vec<u16>) -> (Receiver, String) {
        Receiver::start_on(0, plan).await
    }

    async fn start_on(port: u16, plan: Vec<u16>) -> (Receiver, String) {
        let r = Receiver { got: Default::default(), plan: Arc::new(Mutex::new(plan)) };
        let state = r.clone();
        let app = axum::Router::new().route(
            "/hook",
            post_route(move |headers: HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    state.got.lock().unwrap().push((headers, body));
                    let mut plan = state.plan.lock().unwrap();
                    let code = if plan.is_empty() { 200 } else { plan.remove(0) };
                    StatusCode::from_u16(code).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }

    fn received(&self) -> Vec<(HeaderMap, String)> {
        self.got.lock().unwrap().clone()
    }
}

async fn subscribe(router: &axum::Router, key: &str, url: &str, events: &[&str]) -> String {
    let r = post(router, "/api/webhooks", key, json!({"url": url, "secret": SECRET, "events": events})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(r.body.get("secret").is_none(), "the secret is never echoed");
    r.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn deliveries_are_signed_and_carry_an_idempotency_key() {
    let (rx, url) = Receiver::start(vec![]).await;
    let t = app().await;
    let key = make_key(&t.router, "acme", &["analyze", "read", "admin"]).await;
    subscribe(&t.router, &key, &url, &["threat.detected", "threat.mitigated"]).await;
    let a = post(&t.router, "/api/security/analyze", &key, json!({"input": ATTACK, "user_id": "u9"})).await;
    post(&t.router, "/api/security/analyze", &key, json!({"input": BENIGN})).await;

    let got = eventually(10, || {
        let rx = rx.clone();
        async move { (rx.received().len() >= 2).then(|| rx.received()) }
    })
    .await;
    let mut events: Vec<String> = Vec::new();
    let now = chrono::Utc::now().timestamp();
    for (h, body) in &got {
        let sig = h["x-llmsec-signature"].to_str().unwrap();
        verify(SECRET, sig, body.as_bytes(), now, 300).expect("valid signature");
        assert!(verify("some-other-secret-000", sig, body.as_bytes(), now, 300).is_err());
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(h["idempotency-key"].to_str().unwrap(), v["id"].as_str().unwrap());
        assert_eq!(h["x-llmsec-delivery"], h["idempotency-key"]);
        assert_eq!(h["x-llmsec-event"].to_str().unwrap(), v["event"].as_str().unwrap());
        assert_eq!(v["data"]["event_id"], a.body["event_id"], "the benign analysis raised no subscribed event");
        assert_eq!(v["data"]["user_id"], "u9");
        events.push(v["event"].as_str().unwrap().to_owned());
    }
    events.sort();
    assert_eq!(events, ["threat.detected", "threat.mitigated"]);
    // Both show as delivered.
    let d = eventually(5, || {
        let router = t.router.clone();
        let key = key.clone();
        async move {
            let d = get(&router, "/api/webhooks/deliveries?status=delivered", &key).await;
            (d.body["deliveries"].as_array().unwrap().len() == 2).then_some(d)
        }
    })
    .await;
    assert_eq!(d.body["deliveries"][0]["attempts"], 1);
}

#[tokio::test]
async fn failures_are_retried_with_the_same_idempotency_key() {
    let (rx, url) = Receiver::start(vec![500, 503]).await;
    let t = app().await;
    let key = make_key(&t.router, "acme", &["analyze", "read", "admin"]).await;
    subscribe(&t.router, &key, &url, &["analysis.completed"]).await;
    post(&t.router, "/api/security/analyze", &key, json!({"input": BENIGN})).await;
    let got = eventually(10, || {
        let rx = rx.clone();
        async move { (rx.received().len() >= 3).then(|| rx.received()) }
    })
    .await;
    let ids: Vec<&str> = got.iter().map(|(h, _)| h["idempotency-key"].to_str().unwrap()).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    assert!(got.iter().all(|(_, b)| *b == got[0].1), "every attempt sends the same body");
    let d = eventually(5, || {
        let router = t.router.clone();
        let key = key.clone();
        async move {
            let d = get(&router, "/api/webhooks/deliveries?status=delivered", &key).await;
            d.body["deliveries"].as_array().unwrap().first().cloned()
        }
    })
    .await;
    assert_eq!(d["attempts"], 3);
    assert_eq!(d["last_status"], 200);
}

#[tokio::test]
async fn exhausted_deliveries_go_dead_and_can_be_redelivered() {
    let (rx, url) = Receiver::start(vec![500, 500, 500]).await;
    let t = app_with(|c| c.delivery.max_attempts = 3).await;
    let key = make_key(&t.router, "acme", &["analyze", "read", "admin"]).await;
    subscribe(&t.router, &key, &url, &["analysis.completed"]).await;
    post(&t.router, "/api/security/analyze", &key, json!({"input": BENIGN})).await;
    let dead = eventually(10, || {
        let router = t.router.clone();
        let key = key.clone();
        async move {
            let d = get(&router, "/api/webhooks/deliveries?status=dead", &key).await;
            d.body["deliveries"].as_array().unwrap().first().cloned()
        }
    })
    .await;
    assert_eq!((dead["attempts"].as_u64(), dead["last_status"].as_u64()), (Some(3), Some(500)));
    assert_eq!(dead["last_error"], "HTTP 500 Internal Server Error");
    assert_eq!(rx.received().len(), 3);
    let id = dead["id"].as_str().unwrap();
    // Redeliver: the receiver now answers 200.
    let r = post(&t.router, &format!("/api/webhooks/deliveries/{id}/redeliver"), &key, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    eventually(10, || {
        let rx = rx.clone();
        async move { (rx.received().len() == 4).then_some(()) }
    })
    .await;
    let again = post(&t.router, &format!("/api/webhooks/deliveries/{id}/redeliver"), &key, json!({})).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "only dead deliveries can be redelivered");
}

#[tokio::test]
async fn pending_deliveries_survive_a_restart() {
    // First life: the receiver is down (nothing listens), so the delivery stays pending.
    let dead_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = temp_dir();
    let mut c = config();
    c.data_dir = dir.clone();
    c.delivery.initial_backoff_ms = 200;
    c.delivery.max_backoff_ms = 200;
    c.webhooks.push(llmsec_server::config::ConfiguredWebhook {
        tenant: "default".into(),
        webhook: llm_security::WebhookConfig::new()
            .with_url(format!("http://127.0.0.1:{dead_port}/hook"))
            .with_secret(SECRET.into())
            .with_events(vec!["analysis.completed".into()]),
    });
    let server = llmsec_server::Server::start(c.clone(), Some(ADMIN.into())).await.unwrap();
    let router = server.router();
    let r = post(&router, "/api/security/analyze", ADMIN, json!({"input": BENIGN})).await;
    assert_eq!(r.status, StatusCode::OK);
    eventually(5, || {
        let router = router.clone();
        async move {
            let d = get(&router, "/api/webhooks/deliveries", ADMIN).await;
            d.body["deliveries"].as_array().unwrap().first().filter(|d| d["attempts"].as_u64() >= Some(1)).cloned()
        }
    })
    .await;
    drop(router);
    server.shutdown().await;

    // Second life: same database; the receiver is up now, on the same address.
    let (rx, _) = Receiver::start_on(dead_port, vec![]).await;
    let server = llmsec_server::Server::start(c, Some(ADMIN.into())).await.unwrap();
    assert_eq!(
        server.state().store.webhooks(Some("default")).await.unwrap().len(),
        1,
        "config webhooks are not duplicated"
    );
    let got = eventually(10, || {
        let rx = rx.clone();
        async move { (!rx.received().is_empty()).then(|| rx.received()) }
    })
    .await;
    let v: Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(v["data"]["event_id"], r.body["event_id"]);
    verify(
        SECRET,
        got[0].0["x-llmsec-signature"].to_str().unwrap(),
        got[0].1.as_bytes(),
        chrono::Utc::now().timestamp(),
        300,
    )
    .unwrap();
}
