//! gRPC: `sentinel.v1.TelemetryIngestion/StreamTelemetry` (client
//! streaming, `proto/sentinel/v1/telemetry.proto`), served on the same
//! port as REST (HTTP/2). The key comes in the `authorization` metadata
//! (scope `ingest`). Events are validated like REST events, stored in
//! chunks as they arrive (each chunk durable before the next is read), and
//! the one answer comes after the last chunk is stored.

use std::sync::Arc;

use llm_sentinel::event::{EventData, EventMetadata, EventType, Source, TelemetryEvent};
use llmsec_store::Scope;
use tonic::{Request, Response, Status, Streaming};

use crate::service::{Caller, ServiceError, Services};

/// The generated messages, service and client.
#[allow(missing_docs, clippy::all, clippy::unwrap_used)]
pub mod pb {
    tonic::include_proto!("sentinel.v1");
}

use pb::telemetry_ingestion_server::{TelemetryIngestion, TelemetryIngestionServer};

/// Events stored per chunk of a stream.
const CHUNK: usize = 500;
/// Refusals reported back at most.
const MAX_ERRORS: usize = 100;

/// The service.
#[derive(Debug, Clone)]
pub struct Ingestion {
    services: Services,
}

/// The gRPC routes — telemetry ingestion and the Shield action service
/// ([`crate::shield_grpc`]) — as one axum router to merge into the app.
pub fn router(services: Services) -> axum::Router {
    tonic::service::Routes::new(
        TelemetryIngestionServer::new(Ingestion { services: services.clone() }).max_decoding_message_size(4 << 20),
    )
    .add_service(crate::shield_grpc::service(services))
    .into_axum_router()
}

fn opt(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn pos(v: i32) -> Option<u64> {
    (v > 0).then_some(v as u64)
}

/// Converts a protobuf event into the event model; an error names the field.
pub fn convert(m: pb::TelemetryEvent) -> Result<TelemetryEvent, ServiceError> {
    let event_type = match m.event_type.as_str() {
        "llm.request" => EventType::Request,
        "llm.response" => EventType::Response,
        "llm.error" => EventType::Error,
        other => {
            return Err(ServiceError::field(
                "event_type",
                format!("{other:?} is not llm.request, llm.response or llm.error"),
            ));
        }
    };
    let ts = m.timestamp.ok_or_else(|| ServiceError::field("timestamp", "required"))?;
    let timestamp = chrono::DateTime::from_timestamp(ts.seconds, ts.nanos.max(0) as u32)
        .ok_or_else(|| ServiceError::field("timestamp", "out of range"))?;
    let mut data = EventData::default();
    match m.payload {
        Some(pb::telemetry_event::Payload::Request(r)) => {
            data.model = opt(r.model);
            data.prompt = opt(r.prompt);
            data.prompt_tokens = pos(r.prompt_tokens);
        }
        Some(pb::telemetry_event::Payload::Response(r)) => {
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
        Some(pb::telemetry_event::Payload::Error(r)) => {
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

/// A service error as a gRPC status; an invalid value names its field.
pub(crate) fn status_of(e: ServiceError) -> Status {
    match e {
        ServiceError::Unauthenticated => Status::unauthenticated(e.to_string()),
        ServiceError::Forbidden(_) => Status::permission_denied(e.to_string()),
        ServiceError::Unavailable(_) => Status::unavailable(e.to_string()),
        ServiceError::Invalid { field: Some(field), message } => {
            Status::invalid_argument(format!("{field}: {message}"))
        }
        ServiceError::Invalid { .. } => Status::invalid_argument(e.to_string()),
        e => Status::internal(e.to_string()),
    }
}

/// The caller the authentication middleware found for a gRPC request,
/// holding `scope`.
pub(crate) fn caller_of<T>(request: &Request<T>, scope: Scope) -> Result<Caller, Status> {
    let caller = request
        .extensions()
        .get::<Arc<Caller>>()
        .map(|c| (**c).clone())
        .ok_or_else(|| Status::unauthenticated("missing or invalid API key"))?;
    caller.require(scope).map_err(status_of)?;
    Ok(caller)
}

#[tonic::async_trait]
impl TelemetryIngestion for Ingestion {
    async fn stream_telemetry(
        &self,
        request: Request<Streaming<pb::TelemetryEvent>>,
    ) -> Result<Response<pb::StreamSummary>, Status> {
        let caller = caller_of(&request, Scope::Ingest)?;
        let mut stream = request.into_inner();
        let mut summary = pb::StreamSummary::default();
        let mut chunk: Vec<TelemetryEvent> = Vec::with_capacity(CHUNK);
        let mut index: u64 = 0;
        let refuse = |summary: &mut pb::StreamSummary, index: u64, id: &str, e: ServiceError| {
            summary.rejected += 1;
            if summary.errors.len() < MAX_ERRORS {
                let (field, message) = match e {
                    ServiceError::Invalid { field, message } => (field.unwrap_or_default(), message),
                    e => (String::new(), e.to_string()),
                };
                summary.errors.push(pb::EventError { index, event_id: id.to_owned(), field, message });
            }
        };
        loop {
            let next = stream.message().await;
            let msg = match next {
                Ok(Some(m)) => Some(m),
                Ok(None) => None,
                Err(s) => {
                    // The client broke the stream: what was stored stays stored
                    // (a resend is idempotent); say how far we got.
                    self.flush(&caller, &mut chunk, &mut summary).await?;
                    return Err(Status::new(
                        s.code(),
                        format!("{} (accepted {} events before the error)", s.message(), summary.accepted),
                    ));
                }
            };
            let Some(m) = msg else { break };
            let id = m.event_id.clone();
            match convert(m).and_then(|e| crate::service::telemetry::admit(&caller, e, "")) {
                Ok(e) => chunk.push(e),
                Err(e) => refuse(&mut summary, index, &id, e),
            }
            index += 1;
            if chunk.len() >= CHUNK {
                self.flush(&caller, &mut chunk, &mut summary).await?;
            }
        }
        self.flush(&caller, &mut chunk, &mut summary).await?;
        Ok(Response::new(summary))
    }
}

impl Ingestion {
    async fn flush(
        &self,
        caller: &Caller,
        chunk: &mut Vec<TelemetryEvent>,
        summary: &mut pb::StreamSummary,
    ) -> Result<(), Status> {
        if chunk.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(chunk);
        let fresh = crate::service::telemetry::accept(&self.services, caller, events).await.map_err(status_of)?;
        let new = fresh.iter().filter(|f| **f).count() as u64;
        summary.accepted += new;
        summary.duplicates += fresh.len() as u64 - new;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_maps_request_response_and_error_payloads() {
        let m = pb::TelemetryEvent {
            event_id: "e1".into(),
            timestamp: Some(prost_types::Timestamp { seconds: 1_764_000_000, nanos: 5_000_000 }),
            event_type: "llm.response".into(),
            application_id: "chatbot".into(),
            tenant_id: String::new(),
            payload: Some(pb::telemetry_event::Payload::Response(pb::ResponseData {
                status: "success".into(),
                completion_tokens: 75,
                total_tokens: 225,
                latency_ms: 1234.5,
                cost: 0.045,
                ..Default::default()
            })),
            metadata: Some(pb::Metadata { user_id: "u1".into(), ..Default::default() }),
            source: None,
        };
        let e = convert(m).unwrap();
        assert_eq!(e.millis(), 1_764_000_000_005);
        assert_eq!((e.data.total_tokens, e.data.cost, e.data.model.as_deref()), (Some(225), Some(0.045), None));
        assert_eq!(e.metadata.user_id.as_deref(), Some("u1"));
        assert_eq!(e.tenant_id, None);
    }

    #[test]
    fn bad_messages_name_the_field() {
        let base = pb::TelemetryEvent {
            event_id: "e".into(),
            timestamp: Some(prost_types::Timestamp { seconds: 1, nanos: 0 }),
            event_type: "llm.request".into(),
            application_id: "a".into(),
            ..Default::default()
        };
        let mut m = base.clone();
        m.event_type = "llm.maybe".into();
        assert!(matches!(convert(m), Err(ServiceError::Invalid { field: Some(f), .. }) if f == "event_type"));
        let mut m = base;
        m.timestamp = None;
        assert!(matches!(convert(m), Err(ServiceError::Invalid { field: Some(f), .. }) if f == "timestamp"));
    }
}
