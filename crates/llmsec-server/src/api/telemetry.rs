//! Telemetry ingestion: `POST /api/v1/telemetry/events` (one
//! event) and `/api/v1/telemetry/batch` (`{"events": [...]}`), scope
//! `ingest`. An event is acknowledged once stored; ingestion is idempotent
//! on `event_id` per tenant; a batch answers per event, accepting the valid
//! ones and naming what is wrong with the others.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use llm_sentinel::event::TelemetryEvent;
use llmsec_store::Scope;
use serde::Serialize;
use serde_json::json;

use crate::error::{ApiError, Json, parse_json};
use crate::service::telemetry::{accept, admit};
use crate::service::{Caller, Services};
use crate::state::AppState;

pub use crate::service::telemetry::MAX_BATCH;

/// One event's fate in a batch.
#[derive(Debug, Serialize)]
pub struct EventResult {
    /// Its position in the batch.
    pub index: usize,
    /// Its id, when it had a readable one.
    pub event_id: Option<String>,
    /// `accepted`, `duplicate` (stored before; nothing changed) or `rejected`.
    pub status: &'static str,
    /// Why it was rejected: `{field, message}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
}

async fn one(
    State(svc): State<Services>,
    caller: Caller,
    Json(e): Json<TelemetryEvent>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    caller.require(Scope::Ingest)?;
    let e = admit(&caller, e, "")?;
    let id = e.event_id.clone();
    let fresh = accept(&svc, &caller, vec![e]).await?;
    let status = if fresh.first().copied().unwrap_or(false) { "accepted" } else { "duplicate" };
    Ok((StatusCode::ACCEPTED, Json(json!({"event_id": id, "status": status}))))
}

async fn batch(
    State(svc): State<Services>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    caller.require(Scope::Ingest)?;
    // Read the envelope loosely so each event can fail on its own.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Envelope {
        events: Vec<serde_json::Value>,
    }
    let env: Envelope = parse_json(&body)?;
    if env.events.is_empty() {
        return Err(ApiError::field("events", "must hold at least one event"));
    }
    if env.events.len() > MAX_BATCH {
        return Err(ApiError::field(
            "events",
            format!("holds {} events; at most {MAX_BATCH} per batch", env.events.len()),
        ));
    }
    let mut results: Vec<EventResult> = Vec::with_capacity(env.events.len());
    let mut admitted = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, raw) in env.events.into_iter().enumerate() {
        let id = raw.get("event_id").and_then(|v| v.as_str()).map(str::to_owned);
        let prefix = format!("events[{i}].");
        let parsed = parse_json::<TelemetryEvent>(raw.to_string().as_bytes()).map_err(|e| match e {
            ApiError::BadRequest { field, message } => {
                ApiError::BadRequest { field: Some(format!("{prefix}{}", field.unwrap_or_default())), message }
            }
            e => e,
        });
        match parsed.and_then(|e| admit(&caller, e, &prefix).map_err(ApiError::from)) {
            Ok(e) if !seen.insert(e.event_id.clone()) => {
                results.push(EventResult { index: i, event_id: id, status: "duplicate", error: None });
            }
            Ok(e) => {
                results.push(EventResult { index: i, event_id: id, status: "accepted", error: None });
                admitted.push((i, e));
            }
            Err(e) => {
                let body = e.body();
                results.push(EventResult {
                    index: i,
                    event_id: id,
                    status: "rejected",
                    error: Some(body["error"].clone()),
                });
            }
        }
    }
    let (indices, events): (Vec<usize>, Vec<TelemetryEvent>) = admitted.into_iter().unzip();
    let fresh = accept(&svc, &caller, events).await?;
    for (i, f) in indices.into_iter().zip(fresh) {
        if !f {
            results[i].status = "duplicate";
        }
    }
    let count = |s: &str| results.iter().filter(|r| r.status == s).count();
    let summary = json!({
        "accepted": count("accepted"),
        "duplicate": count("duplicate"),
        "rejected": count("rejected"),
        "results": results,
    });
    let status = if count("rejected") == 0 { StatusCode::ACCEPTED } else { StatusCode::MULTI_STATUS };
    Ok((status, Json(summary)))
}

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/telemetry/events", post(one)).route("/api/v1/telemetry/batch", post(batch))
}
