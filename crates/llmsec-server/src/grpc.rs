//! gRPC: `sentinel.v1.TelemetryIngestion/StreamTelemetry` (client
//! streaming, `proto/sentinel/v1/telemetry.proto`), served on the same
//! port as REST (HTTP/2). The key comes in the `authorization` metadata
//! (scope `ingest`). Events are validated like REST events, stored in
//! chunks as they arrive (each chunk durable before the next is read), and
//! the one answer comes after the last chunk is stored.

use std::sync::Arc;

use llm_sentinel::event::TelemetryEvent;
use llmsec_store::Scope;
use tonic::{Request, Response, Status, Streaming};

use crate::service::{Caller, ServiceError, Services};

/// The generated messages, service and client (compiled once, in `llmsec-proto`).
pub use llmsec_proto::v1 as pb;

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

/// Converts a protobuf event into the event model; an error names the field.
pub fn convert(m: pb::TelemetryEvent) -> Result<TelemetryEvent, ServiceError> {
    llmsec_proto::to_event(m).map_err(|e| ServiceError::field(e.field, e.message))
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
    fn a_bad_message_is_an_invalid_field() {
        let m = pb::TelemetryEvent { event_type: "llm.maybe".into(), ..Default::default() };
        assert!(matches!(convert(m), Err(ServiceError::Invalid { field: Some(f), .. }) if f == "event_type"));
    }
}
