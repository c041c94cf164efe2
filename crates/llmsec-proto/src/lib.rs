//! The telemetry wire schema (`sentinel.v1`), compiled once: the gRPC
//! ingestion service of the server and the Kafka source's protobuf format
//! read the same generated messages, and [`to_event`] is the one
//! conversion from them to the event model.
#![deny(missing_docs)]

/// The well-known types the messages use (`Timestamp`), for callers that build messages.
pub use prost_types;

use llm_sentinel::event::{EventData, EventMetadata, EventType, Source, TelemetryEvent};

/// The generated messages, the `TelemetryIngestion` service and its client.
#[allow(missing_docs, missing_debug_implementations, clippy::all, clippy::unwrap_used)]
pub mod v1 {
    tonic::include_proto!("sentinel.v1");
}

/// A message that is no valid event: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field, as named in the JSON form of the event.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError { field, message: message.into() }
}

/// proto3 has no "absent" for scalars: the empty string means not set.
fn opt(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Token counts: zero (or a negative count) means not set.
fn pos(v: i32) -> Option<u64> {
    (v > 0).then_some(v as u64)
}

/// Converts a protobuf event into the event model. Only the shape is
/// checked here (event type, timestamp); the event's own rules
/// ([`TelemetryEvent::validate`]) are the caller's, as for JSON.
pub fn to_event(m: v1::TelemetryEvent) -> Result<TelemetryEvent, FieldError> {
    let event_type = match m.event_type.as_str() {
        "llm.request" => EventType::Request,
        "llm.response" => EventType::Response,
        "llm.error" => EventType::Error,
        other => {
            return Err(invalid("event_type", format!("{other:?} is not llm.request, llm.response or llm.error")));
        }
    };
    let ts = m.timestamp.ok_or_else(|| invalid("timestamp", "required"))?;
    // Negative nanos (invalid in protobuf's Timestamp) count as zero.
    let nanos = u32::try_from(ts.nanos).unwrap_or(0);
    let timestamp =
        chrono::DateTime::from_timestamp(ts.seconds, nanos).ok_or_else(|| invalid("timestamp", "out of range"))?;
    let mut data = EventData::default();
    match m.payload {
        Some(v1::telemetry_event::Payload::Request(r)) => {
            data.model = opt(r.model);
            data.prompt = opt(r.prompt);
            data.prompt_tokens = pos(r.prompt_tokens);
        }
        Some(v1::telemetry_event::Payload::Response(r)) => {
            data.status = opt(r.status);
            data.completion_tokens = pos(r.completion_tokens);
            data.total_tokens = pos(r.total_tokens);
            data.prompt_tokens = pos(r.prompt_tokens);
            data.latency_ms = (r.latency_ms != 0.0).then_some(r.latency_ms);
            data.cost = (r.cost != 0.0).then_some(r.cost);
            data.model = opt(r.model);
            data.completion = opt(r.completion);
            data.prompt = opt(r.prompt);
            data.finish_reason = opt(r.finish_reason);
            data.logprobs = (!r.logprobs.is_empty()).then_some(r.logprobs);
        }
        Some(v1::telemetry_event::Payload::Error(r)) => {
            data.model = opt(r.model);
            data.error = opt(r.error);
            data.latency_ms = (r.latency_ms != 0.0).then_some(r.latency_ms);
            data.status = opt(r.status).or(Some("error".into()));
        }
        None => {}
    }
    let metadata = m
        .metadata
        .map(|md| EventMetadata {
            user_id: opt(md.user_id),
            session_id: opt(md.session_id),
            ip: opt(md.ip),
            role: opt(md.role),
            tool_calls: (!md.tool_calls.is_empty()).then_some(md.tool_calls),
            extra: md.extra.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect(),
        })
        .unwrap_or_default();
    let source = m.source.map(|s| Source { service: opt(s.service), host: opt(s.host), version: opt(s.version) });
    Ok(TelemetryEvent {
        event_id: m.event_id,
        timestamp,
        event_type,
        application_id: m.application_id,
        tenant_id: opt(m.tenant_id),
        source,
        data,
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_maps_request_response_and_error_payloads() {
        let m = v1::TelemetryEvent {
            event_id: "e1".into(),
            timestamp: Some(prost_types::Timestamp { seconds: 1_764_000_000, nanos: 5_000_000 }),
            event_type: "llm.response".into(),
            application_id: "chatbot".into(),
            tenant_id: String::new(),
            payload: Some(v1::telemetry_event::Payload::Response(v1::ResponseData {
                status: "success".into(),
                completion_tokens: 75,
                total_tokens: 225,
                latency_ms: 1234.5,
                cost: 0.045,
                ..Default::default()
            })),
            metadata: Some(v1::Metadata { user_id: "u1".into(), ..Default::default() }),
            source: None,
        };
        let e = to_event(m).unwrap();
        assert_eq!(e.millis(), 1_764_000_000_005);
        assert_eq!((e.data.total_tokens, e.data.cost, e.data.model.as_deref()), (Some(225), Some(0.045), None));
        assert_eq!(e.metadata.user_id.as_deref(), Some("u1"));
        assert_eq!(e.tenant_id, None);

        let err = v1::TelemetryEvent {
            event_type: "llm.error".into(),
            timestamp: Some(prost_types::Timestamp { seconds: 1, nanos: 0 }),
            payload: Some(v1::telemetry_event::Payload::Error(v1::ErrorData {
                error: "upstream timeout".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let e = to_event(err).unwrap();
        assert_eq!((e.data.error.as_deref(), e.data.status.as_deref()), (Some("upstream timeout"), Some("error")));
    }

    #[test]
    fn bad_messages_name_the_field() {
        let base = v1::TelemetryEvent {
            event_id: "e".into(),
            timestamp: Some(prost_types::Timestamp { seconds: 1, nanos: 0 }),
            event_type: "llm.request".into(),
            application_id: "a".into(),
            ..Default::default()
        };
        let mut m = base.clone();
        m.event_type = "llm.maybe".into();
        assert_eq!(to_event(m).unwrap_err().field, "event_type");
        let mut m = base.clone();
        m.timestamp = None;
        assert_eq!(to_event(m).unwrap_err().to_string(), "timestamp: required");
        let mut m = base;
        m.timestamp = Some(prost_types::Timestamp { seconds: i64::MAX, nanos: 0 });
        assert_eq!(to_event(m).unwrap_err().to_string(), "timestamp: out of range");
    }
}
