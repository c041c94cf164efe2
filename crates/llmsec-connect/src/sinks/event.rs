//! The outbox envelope a sink receives, read into what the wire formats need.
//!
//! The server writes one JSON envelope per delivery (the same as Kafka's):
//!
//! ```json
//! {"id": "<delivery id>", "event": "security_event", "created_at": "…", "tenant": "acme",
//!  "key": "…", "data": {…}}
//! ```
//!
//! `data` is, for `security_event`, the event's id, type, verdict,
//! confidence, threats, user and session ids and time (RFC 3339); for
//! `anomaly.*`, the anomaly as Sentinel serialises it.

use llm_sentinel::Anomaly;
use serde::Deserialize;
use serde_json::Value;

use super::{EventName, Level};
use crate::publish::{OutboxRecord, PublishError};

/// One delivery, read.
#[derive(Debug, Clone)]
pub struct SinkEvent {
    /// The delivery id: the same on every attempt (the idempotency key).
    pub id: String,
    /// The event.
    pub event: EventName,
    /// The tenant.
    pub tenant: String,
    /// What it is about.
    pub subject: Subject,
}

/// What a delivery is about.
#[derive(Debug, Clone)]
pub enum Subject {
    /// A stored analysis.
    Security(SecurityData),
    /// An anomaly (as it stands after the change).
    Anomaly(Box<Anomaly>),
}

/// A security event as the envelope carries it.
#[derive(Debug, Clone, Deserialize)]
pub struct SecurityData {
    /// The event's id.
    pub event_id: String,
    /// `prompt_injection`, …, or `clean`.
    #[serde(default)]
    pub event_type: String,
    /// `allow`, `sanitize`, `block`.
    pub verdict: String,
    /// The engine's confidence.
    #[serde(default)]
    pub confidence: f64,
    /// The threats found (as the engine serialises them).
    #[serde(default)]
    pub threats: Value,
    /// The end user.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The session.
    #[serde(default)]
    pub session_id: Option<String>,
    /// When it was analysed (RFC 3339).
    pub timestamp: String,
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    event: String,
    tenant: String,
    data: Value,
}

impl SinkEvent {
    /// Reads a record's envelope; an envelope that does not read is a failed
    /// publish (it is retried, then dead-lettered, never dropped silently).
    pub fn from_record(r: &OutboxRecord<'_>) -> Result<SinkEvent, PublishError> {
        let bad = |why: String| PublishError(format!("delivery {}: {why}", r.idempotency_key));
        let env: Envelope = serde_json::from_slice(r.payload).map_err(|e| bad(format!("envelope: {e}")))?;
        let event = EventName::parse(&env.event).ok_or_else(|| bad(format!("unknown event {:?}", env.event)))?;
        let subject = if event.is_anomaly() {
            Subject::Anomaly(Box::new(serde_json::from_value(env.data).map_err(|e| bad(format!("anomaly: {e}")))?))
        } else {
            Subject::Security(serde_json::from_value(env.data).map_err(|e| bad(format!("security event: {e}")))?)
        };
        Ok(SinkEvent { id: env.id, event, tenant: env.tenant, subject })
    }

    /// When it happened, in milliseconds since the epoch: the analysis's
    /// time, or the anomaly's latest finding (its status change has no time
    /// of its own in the envelope, and the resolution time when resolved).
    pub fn time_ms(&self) -> i64 {
        match &self.subject {
            Subject::Security(s) => {
                chrono::DateTime::parse_from_rfc3339(&s.timestamp).map(|t| t.timestamp_millis()).unwrap_or_default()
            }
            Subject::Anomaly(a) => match self.event {
                EventName::AnomalyDetected => a.timestamp,
                EventName::AnomalyAcknowledged => a.acknowledged_at.unwrap_or(a.last_seen),
                EventName::AnomalyResolved => a.resolved_at.unwrap_or(a.last_seen),
                _ => a.last_seen,
            },
        }
    }

    /// The level (a security event without threats has none).
    pub fn level(&self) -> Option<Level> {
        match &self.subject {
            Subject::Security(s) => Level::of_threats(&s.threats),
            Subject::Anomaly(a) => Some(Level::of_anomaly(a.severity)),
        }
    }

    /// The id of what it is about (the security event's or the anomaly's).
    pub fn subject_id(&self) -> &str {
        match &self.subject {
            Subject::Security(s) => &s.event_id,
            Subject::Anomaly(a) => &a.id,
        }
    }

    /// The rule that fired: the first threat's type and category, or the detector.
    pub fn rule(&self) -> Option<String> {
        match &self.subject {
            Subject::Security(s) => s.threats.as_array().and_then(|t| t.first()).map(|t| {
                let kind = t.get("type").and_then(Value::as_str).unwrap_or("threat");
                match t.get("category").and_then(Value::as_str) {
                    Some(c) if !c.is_empty() => format!("{kind}/{c}"),
                    _ => kind.to_owned(),
                }
            }),
            Subject::Anomaly(a) => Some(a.detector_id.clone()),
        }
    }

    /// The end user, when known.
    pub fn user(&self) -> Option<&str> {
        match &self.subject {
            Subject::Security(s) => s.user_id.as_deref(),
            Subject::Anomaly(a) => {
                (a.affected_entity.kind == llm_sentinel::detector::EntityKind::User).then_some(&*a.affected_entity.id)
            }
        }
    }

    /// The client address, when the anomaly is about one.
    pub fn source_ip(&self) -> Option<&str> {
        match &self.subject {
            Subject::Security(_) => None,
            Subject::Anomaly(a) => {
                (a.affected_entity.kind == llm_sentinel::detector::EntityKind::Ip).then_some(&*a.affected_entity.id)
            }
        }
    }

    /// One line for people.
    pub fn message(&self) -> String {
        match &self.subject {
            Subject::Security(s) => {
                let n = s.threats.as_array().map_or(0, Vec::len);
                let rule = self.rule().unwrap_or_else(|| "no threat".into());
                format!(
                    "llmsec {}: {} ({n} threat{}, first {rule})",
                    s.event_type,
                    s.verdict,
                    if n == 1 { "" } else { "s" }
                )
            }
            Subject::Anomaly(a) => format!("{}: {} ({})", self.event.as_str(), a.title, a.status_name()),
        }
    }

    /// The data as it came, for the vendor formats that carry it whole.
    pub fn data(&self) -> Value {
        match &self.subject {
            Subject::Security(s) => serde_json::json!({
                "event_id": s.event_id, "event_type": s.event_type, "verdict": s.verdict,
                "confidence": s.confidence, "threats": s.threats, "user_id": s.user_id,
                "session_id": s.session_id, "timestamp": s.timestamp,
            }),
            Subject::Anomaly(a) => serde_json::to_value(a).unwrap_or(Value::Null),
        }
    }
}

/// The name of an anomaly's status, for messages.
trait StatusName {
    fn status_name(&self) -> String;
}

impl StatusName for Anomaly {
    fn status_name(&self) -> String {
        serde_json::to_value(self.status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sinks::testing;

    #[test]
    fn security_and_anomaly_envelopes_read() {
        let payload = testing::security_envelope("d-1", "block");
        let e = SinkEvent::from_record(&testing::record("d-1", "security_event", &payload)).unwrap();
        assert_eq!((e.event, e.tenant.as_str(), e.subject_id()), (EventName::SecurityEvent, "acme", "ev-1"));
        assert_eq!(e.level(), Some(Level::High));
        assert_eq!(e.rule().as_deref(), Some("prompt_injection/direct_injection"));
        assert_eq!(e.user(), Some("alice"));
        assert_eq!(e.time_ms(), 1_796_601_600_500);
        let payload = testing::anomaly_envelope("d-2", "anomaly.resolved");
        let e = SinkEvent::from_record(&testing::record("d-2", "anomaly.resolved", &payload)).unwrap();
        assert_eq!(e.level(), Some(Level::Medium));
        assert_eq!(e.rule().as_deref(), Some("cost-spike-detector"));
        assert!(e.message().starts_with("anomaly.resolved: "), "{}", e.message());
    }

    #[test]
    fn a_bad_envelope_is_a_failed_publish_naming_the_delivery() {
        let e = SinkEvent::from_record(&testing::record("d-9", "security_event", b"{}")).unwrap_err();
        assert!(e.0.starts_with("delivery d-9: envelope"), "{e}");
        let e = SinkEvent::from_record(&testing::record(
            "d-9",
            "x",
            br#"{"id":"d-9","event":"threat.detected","tenant":"t","data":{}}"#,
        ))
        .unwrap_err();
        assert!(e.0.contains("unknown event"), "{e}");
    }
}
