//! OTLP/HTTP trace ingestion: `POST /v1/traces`, scope `ingest`.
//!
//! Takes an `ExportTraceServiceRequest` as binary protobuf
//! (`Content-Type: application/x-protobuf`) or in the OTLP/JSON mapping
//! (`application/json`), uncompressed (`Content-Encoding` other than
//! `identity` is 415). Spans that carry OpenTelemetry GenAI attributes
//! (any `gen_ai.*` attribute, or a `gen_ai.*` span event) become
//! [`TelemetryEvent`](llm_sentinel::event::TelemetryEvent)s; other spans are skipped, so an application may
//! export all of its traces here. Each event is checked as the REST
//! ingestion checks it, stored (idempotent on its id,
//! `hex(trace_id)-hex(span_id)`) and handed to Sentinel before the answer.
//!
//! The answer is OTLP's `ExportTraceServiceResponse`, in the request's
//! encoding: `{}` when every GenAI span was taken, else
//! `{"partialSuccess": {"rejectedSpans": N, "errorMessage": "…"}}` naming
//! what was wrong with the rejected ones.
//!
//! | event field | from |
//! |---|---|
//! | `event_id` | `hex(traceId)-hex(spanId)` |
//! | `timestamp` | `endTimeUnixNano` (else `startTimeUnixNano`) |
//! | `event_type` | `llm.error` when `status.code` is ERROR or `error.type` is set, else `llm.response` |
//! | `application_id` | resource `service.name` (required) |
//! | `source.service` / `.host` / `.version` | resource `service.name` / `host.name` / `service.version` |
//! | `data.model` | `gen_ai.response.model`, else `gen_ai.request.model` |
//! | `data.prompt` | `gen_ai.input.messages`, `gen_ai.prompt`, span event `gen_ai.content.prompt`, `gen_ai.prompt.N.content` |
//! | `data.completion` | `gen_ai.output.messages`, `gen_ai.completion`, span event `gen_ai.content.completion`, `gen_ai.completion.N.content` |
//! | `data.prompt_tokens` / `completion_tokens` | `gen_ai.usage.input_tokens` / `output_tokens` (or the older `prompt_tokens` / `completion_tokens`) |
//! | `data.total_tokens` | `gen_ai.usage.total_tokens`, else their sum |
//! | `data.latency_ms` | end − start |
//! | `data.cost` | `gen_ai.usage.cost` |
//! | `data.status` / `data.error` | `error` or `success` / `status.message`, else `error.type` |
//! | `data.finish_reason` | the first of `gen_ai.response.finish_reasons` |
//! | `metadata.user_id` | `user.id`, else `enduser.id` |
//! | `metadata.session_id` | `gen_ai.conversation.id`, else `session.id` |
//! | `metadata.ip` | `client.address` |
//! | `metadata.provider` / `operation` / `server_address` / `error_type` | `gen_ai.provider.name` (else `gen_ai.system`) / `gen_ai.operation.name` / `server.address` / `error.type` |
//! | `metadata.trace_id` / `span_id` / `span_name` | the span's ids (hex) and name |
//!
//! Attributes are looked up on the span first, then on its resource.

mod genai;
mod schema;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use llmsec_store::Scope;
use prost::Message as _;
use serde_json::json;

pub use self::schema::proto;

use self::genai::{Mapped, map_request};
use self::proto::{ExportTracePartialSuccess, ExportTraceServiceResponse};
use self::schema::decode;
use crate::api::telemetry::MAX_BATCH;
use crate::error::ApiError;
use crate::service::telemetry::accept;
use crate::service::{Caller, Services};
use crate::state::AppState;

/// Most distinct reasons quoted in `errorMessage`.
const MAX_REASONS: usize = 5;

/// The request's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

/// A 415 naming the header at fault (`ApiError` has no such kind: only
/// this endpoint negotiates encodings).
fn unsupported(header: &'static str, message: String) -> Response {
    let body = json!({"error": {"code": "unsupported_media_type", "message": message, "header": header}});
    (StatusCode::UNSUPPORTED_MEDIA_TYPE, axum::Json(body)).into_response()
}

/// The request's encoding from its headers, or the 415 to answer.
fn negotiate(headers: &HeaderMap) -> Result<Encoding, Box<Response>> {
    for v in headers.get_all(header::CONTENT_ENCODING) {
        let v = v.to_str().unwrap_or("?").trim().to_ascii_lowercase();
        if !v.is_empty() && v != "identity" {
            return Err(Box::new(unsupported(
                "Content-Encoding",
                format!("Content-Encoding `{v}` is not supported; send the body uncompressed (identity)"),
            )));
        }
    }
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        _ => Err(Box::new(unsupported(
            "Content-Type",
            format!("Content-Type `{ct}` is not supported; send application/x-protobuf or application/json"),
        ))),
    }
}

/// The body, with the body limit's 413 as an [`ApiError`].
async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    let limit = req.extensions().get::<crate::error::BodyLimit>().map_or(usize::MAX, |l| l.0);
    Bytes::from_request(req, &()).await.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::BadRequest { field: None, message: rej.body_text() }
        }
    })
}

/// The answer, in the request's encoding.
fn respond(encoding: Encoding, rejected: &[String]) -> Response {
    let partial_success = (!rejected.is_empty()).then(|| {
        let mut reasons: Vec<&str> = Vec::new();
        for r in rejected {
            if reasons.len() < MAX_REASONS && !reasons.contains(&r.as_str()) {
                reasons.push(r);
            }
        }
        let mut error_message = reasons.join("; ");
        if rejected.len() > reasons.len() {
            error_message.push_str(&format!("; and {} more", rejected.len() - reasons.len()));
        }
        ExportTracePartialSuccess { rejected_spans: i64::try_from(rejected.len()).unwrap_or(i64::MAX), error_message }
    });
    let answer = ExportTraceServiceResponse { partial_success };
    match encoding {
        Encoding::Protobuf => {
            ([(header::CONTENT_TYPE, "application/x-protobuf")], answer.encode_to_vec()).into_response()
        }
        Encoding::Json => axum::Json(answer).into_response(),
    }
}

async fn traces(State(svc): State<Services>, caller: Caller, req: Request) -> Result<Response, ApiError> {
    caller.require(Scope::Ingest)?;
    let encoding = match negotiate(req.headers()) {
        Ok(e) => e,
        Err(resp) => return Ok(*resp),
    };
    let body = read_body(req).await?;
    let export = decode(encoding, &body)?;
    drop(body);
    let Mapped { mut events, taken, skipped, rejected } = map_request(&caller, &export);
    drop(export);
    // Durable before the answer: `accept` returns once the store has committed.
    while !events.is_empty() {
        let rest = events.split_off(events.len().min(MAX_BATCH));
        accept(&svc, &caller, events).await?;
        events = rest;
    }
    let spans = |outcome: &'static str, n: usize| {
        metrics::counter!(crate::metrics::OTLP_SPANS, "outcome" => outcome).increment(n as u64);
    };
    spans("accepted", taken);
    spans("skipped", skipped);
    spans("rejected", rejected.len());
    Ok(respond(encoding, &rejected))
}

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/traces", post(traces))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_headers_are_negotiated() {
        let mut h = HeaderMap::new();
        assert!(negotiate(&h).is_err(), "a content type is required");
        h.insert(header::CONTENT_TYPE, "application/json; charset=utf-8".parse().unwrap());
        assert_eq!(negotiate(&h).ok(), Some(Encoding::Json));
        h.insert(header::CONTENT_TYPE, "application/x-protobuf".parse().unwrap());
        assert_eq!(negotiate(&h).ok(), Some(Encoding::Protobuf));
        h.insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        assert_eq!(negotiate(&h).unwrap_err().status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}
