//! Outbox deliveries meant for a broker topic rather than a webhook.
//!
//! A broker delivery is an ordinary outbox row (written with what causes
//! it, leased, retried, dead-lettered like a webhook delivery) whose
//! `webhook_id` is `kafka:<topic>`: the delivery worker hands it to the
//! configured [`OutboxPublisher`](llmsec_connect::OutboxPublisher) instead
//! of POSTing it. Its body is a JSON envelope:
//!
//! ```json
//! {"id": "<delivery id: the idempotency key>", "event": "anomaly.detected",
//!  "created_at": "…", "tenant": "acme", "key": "<partition key>", "data": {…}}
//! ```
//!
//! The delivery id is the same on every attempt (and in the record's
//! `idempotency-key` header), so a consumer recognises the duplicates that
//! at-least-once delivery allows.

use llm_sentinel::Change;
use llm_sentinel::anomaly::Anomaly;
use llmsec_store::{Delivery, Millis, SecurityEvent};
use serde_json::{Value, json};

/// The `webhook_id` prefix of deliveries for a Kafka topic.
pub const KAFKA_TARGET: &str = "kafka:";

/// The topic a delivery is for, when it is a broker delivery.
pub fn topic_of(d: &Delivery) -> Option<&str> {
    d.webhook_id.strip_prefix(KAFKA_TARGET)
}

/// The partition key a broker delivery carries (its envelope's `key`), or its tenant.
pub fn key_of(d: &Delivery) -> String {
    serde_json::from_str::<Value>(&d.payload)
        .ok()
        .and_then(|v| v.get("key").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| d.tenant.clone())
}

/// A pending delivery of `data` to `topic`, keyed by `key`.
pub fn delivery(topic: &str, tenant: &str, key: &str, event: &str, data: Value, now: Millis) -> Delivery {
    envelope(format!("{KAFKA_TARGET}{topic}"), tenant, key, event, data, now)
}

/// A pending delivery to `target` (the `webhook_id` of a broker or sink
/// delivery) whose body is the JSON envelope above, with a fresh id.
pub fn envelope(target: String, tenant: &str, key: &str, event: &str, data: Value, now: Millis) -> Delivery {
    let id = uuid::Uuid::now_v7().to_string();
    let body = json!({
        "id": id,
        "event": event,
        "created_at": crate::time::rfc3339(now),
        "tenant": tenant,
        "key": key,
        "data": data,
    });
    Delivery::pending(id, target, tenant, event, body.to_string(), now)
}

/// The `data` of a security event's envelope.
pub fn security_event_data(ev: &SecurityEvent) -> Value {
    json!({
        "event_id": ev.id,
        "event_type": ev.event_type,
        "verdict": ev.verdict,
        "confidence": ev.confidence,
        "threats": ev.threats,
        "user_id": ev.user_id,
        "session_id": ev.session_id,
        "timestamp": crate::time::rfc3339(ev.timestamp),
    })
}

/// The delivery of a stored security event to `topic` (`security_event`, keyed by tenant).
pub fn security_event(topic: &str, ev: &SecurityEvent, now: Millis) -> Delivery {
    delivery(topic, &ev.tenant, &ev.tenant, "security_event", security_event_data(ev), now)
}

/// The event name of an anomaly change: `anomaly.detected`, `anomaly.acknowledged`,
/// `anomaly.resolved`, `anomaly.suppressed`; `None` for an update that changed no status.
pub fn anomaly_event(change: Change) -> Option<&'static str> {
    match change {
        Change::Created => Some("anomaly.detected"),
        Change::Acknowledged => Some("anomaly.acknowledged"),
        Change::Resolved => Some("anomaly.resolved"),
        Change::Suppressed => Some("anomaly.suppressed"),
        Change::Updated => None,
    }
}

/// The delivery of an anomaly change, keyed by the anomaly's application
/// (its tenant when it names none); the data is the anomaly as webhooks carry it.
pub fn anomaly(topic: &str, tenant: &str, event: &str, a: &Anomaly, now: Millis) -> Delivery {
    anomaly_to(format!("{KAFKA_TARGET}{topic}"), tenant, event, a, now)
}

/// The delivery of an anomaly change to `target` (see [`anomaly`]).
pub fn anomaly_to(target: String, tenant: &str, event: &str, a: &Anomaly, now: Millis) -> Delivery {
    let key = a.context.application_id.clone().unwrap_or_else(|| tenant.to_owned());
    let data = serde_json::to_value(a).unwrap_or(Value::Null);
    envelope(target, tenant, &key, event, data, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_delivery_names_its_topic_key_and_idempotency_key() {
        let d = delivery("llmsec-anomalies", "acme", "app-1", "anomaly.detected", json!({"x": 1}), 1_700_000_000_000);
        assert_eq!(topic_of(&d), Some("llmsec-anomalies"));
        assert_eq!(key_of(&d), "app-1");
        let body: Value = serde_json::from_str(&d.payload).expect("json");
        assert_eq!(body["id"], d.id.as_str(), "the envelope carries the delivery id");
        assert_eq!((body["event"].as_str(), body["tenant"].as_str()), (Some("anomaly.detected"), Some("acme")));
        assert_eq!(body["data"]["x"], 1);
        let mut hook = d.clone();
        hook.webhook_id = "cfg_abc".into();
        assert_eq!(topic_of(&hook), None, "webhook deliveries are not broker deliveries");
        hook.payload = "not json".into();
        assert_eq!(key_of(&hook), "acme", "no envelope: the tenant");
    }

    #[test]
    fn only_status_changes_are_published() {
        assert_eq!(anomaly_event(Change::Created), Some("anomaly.detected"));
        assert_eq!(anomaly_event(Change::Resolved), Some("anomaly.resolved"));
        assert_eq!(anomaly_event(Change::Updated), None);
    }
}
