//! The server's side of Kafka without a broker (scripts/kafka-e2e.sh runs
//! the real one): the ingestion path a source uses, broker deliveries from
//! the outbox through a publisher, and the `[kafka]` section.

use std::sync::{Arc, Mutex};

use llm_sentinel::event::TelemetryEvent;
use llmsec_connect::{Admission, OutboxPublisher, OutboxRecord, PublishError, TelemetryIngest};
use llmsec_server::config::{DeliveryConfig, ServerConfig};
use llmsec_server::deliver::{DeliveryWorker, WebhookRegistry};
use llmsec_server::egress::EgressPolicy;
use llmsec_store::{DeliveryStatus, Store, now_millis};
use serde_json::json;

use crate::common::*;

fn event(id: &str, tenant: Option<&str>, latency: f64) -> TelemetryEvent {
    let mut v = json!({
        "event_id": id, "timestamp": "2026-01-01T00:00:00Z", "event_type": "llm.request",
        "application_id": "app", "data": {"latency_ms": latency}
    });
    if let Some(t) = tenant {
        v["tenant_id"] = t.into();
    }
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn the_source_ingestion_path_stores_once_and_names_what_it_refuses() {
    let app = app().await;
    let svc = app.server.state().services.clone();
    let ingest = llmsec_server::kafka::Ingest::new(svc.clone());
    let got = ingest
        .ingest(
            "default",
            vec![
                event("k1", None, 5.0),
                event("k1", None, 5.0),
                event("k2", Some("default"), 5.0),
                event("k3", Some("globex"), 5.0),
                event("k4", None, -1.0),
            ],
        )
        .await
        .unwrap();
    assert_eq!(got[..3], [Admission::New, Admission::Duplicate, Admission::New]);
    assert!(matches!(&got[3], Admission::Rejected(r) if r.starts_with("tenant_id: names another tenant")), "{got:?}");
    assert!(matches!(&got[4], Admission::Rejected(r) if r.starts_with("data.latency_ms")), "{got:?}");
    // Redelivery of the whole batch after a crash changes nothing.
    let again = ingest.ingest("default", vec![event("k1", None, 5.0), event("k2", None, 5.0)]).await.unwrap();
    assert_eq!(again, [Admission::Duplicate, Admission::Duplicate]);
    assert_eq!(svc.store.count_telemetry("default", None).await.unwrap(), 2);
    assert_eq!(svc.store.count_telemetry("globex", None).await.unwrap(), 0, "never the message's tenant");
}

/// Records what it is asked to publish; fails while `down` is set.
#[derive(Debug, Default)]
struct FakeBroker {
    got: Mutex<Vec<(String, String, String, String)>>,
    down: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl OutboxPublisher for FakeBroker {
    async fn publish(&self, r: OutboxRecord<'_>) -> Result<(), PublishError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(PublishError("broker down".into()));
        }
        let value = String::from_utf8_lossy(r.payload).into_owned();
        self.got.lock().unwrap().push((r.topic.into(), r.key.into(), r.idempotency_key.into(), value));
        Ok(())
    }
}

#[tokio::test]
async fn broker_deliveries_go_to_the_publisher_with_key_and_idempotency_key_and_are_retried() {
    let c = config();
    let store: Arc<dyn Store> = Arc::new(llmsec_store::SqlStore::connect(&c.database_url()).await.unwrap());
    let broker = Arc::new(FakeBroker::default());
    let cfg = DeliveryConfig { initial_backoff_ms: 1, max_backoff_ms: 1, max_attempts: 3, ..Default::default() };
    let worker = DeliveryWorker::new(
        store.clone(),
        Arc::new(WebhookRegistry::default()),
        cfg,
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(EgressPolicy::default()),
    )
    .unwrap()
    .with_publisher(Some(broker.clone()));
    let d = llmsec_server::broker::delivery(
        "llmsec-anomalies",
        "acme",
        "app-1",
        "anomaly.detected",
        json!({"id": "an-1"}),
        now_millis(),
    );
    store.enqueue(std::slice::from_ref(&d)).await.unwrap();
    broker.down.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(worker.tick(now_millis()).await.unwrap(), 1);
    let pending = store.deliveries("acme", Some(DeliveryStatus::Pending), 10).await.unwrap();
    assert_eq!(pending.len(), 1, "a failed publish stays in the outbox");
    assert_eq!(pending[0].last_error.as_deref(), Some("publish failed"));
    broker.down.store(false, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(worker.tick(now_millis()).await.unwrap(), 1);
    let got = broker.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (topic, key, idem, value) = &got[0];
    assert_eq!((topic.as_str(), key.as_str(), idem.as_str()), ("llmsec-anomalies", "app-1", d.id.as_str()));
    let body: serde_json::Value = serde_json::from_str(value).unwrap();
    assert_eq!(body["id"], d.id.as_str(), "the value carries the idempotency key too");
    assert_eq!(body["data"]["id"], "an-1");
    assert_eq!(store.deliveries("acme", Some(DeliveryStatus::Delivered), 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn without_a_publisher_broker_deliveries_are_dead_lettered_in_the_end() {
    let c = config();
    let store: Arc<dyn Store> = Arc::new(llmsec_store::SqlStore::connect(&c.database_url()).await.unwrap());
    let cfg = DeliveryConfig { initial_backoff_ms: 1, max_backoff_ms: 1, max_attempts: 1, ..Default::default() };
    let worker = DeliveryWorker::new(
        store.clone(),
        Arc::new(WebhookRegistry::default()),
        cfg,
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(EgressPolicy::default()),
    )
    .unwrap();
    let d = llmsec_server::broker::delivery("t", "acme", "acme", "security_event", json!({}), now_millis());
    store.enqueue(&[d]).await.unwrap();
    worker.tick(now_millis()).await.unwrap();
    let dead = store.deliveries("acme", Some(DeliveryStatus::Dead), 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("no broker sink configured"));
}

#[test]
fn the_kafka_section_names_unknown_keys_and_bad_values() {
    let base = r#"
[kafka]
brokers = "127.0.0.1:9092"
[kafka.source]
topic = "t"
group_id = "g"
tenant = "default"
dead_letter_topic = "d"
"#;
    let err = toml::from_str::<ServerConfig>(&format!("{base}batch = 5\n")).unwrap_err();
    assert!(err.to_string().contains("batch"), "{err}");
    let c: ServerConfig =
        toml::from_str(&base.replace("dead_letter_topic = \"d\"", "dead_letter_topic = \"t\"")).unwrap();
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("kafka.source.dead_letter_topic"), "{err}");
    let c: ServerConfig = toml::from_str(base).unwrap();
    if cfg!(feature = "kafka") {
        c.validate().unwrap();
    } else {
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("this build has no Kafka support"), "{err}");
    }
}
