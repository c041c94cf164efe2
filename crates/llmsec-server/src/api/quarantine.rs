//! The review API over [`crate::service::quarantine`]: the caller's
//! tenant's held items (scope `read`) and the decisions on them (scope
//! `triage`).
//!
//! - `GET /api/v1/quarantine?status=pending|released|discarded|expired&limit&offset`
//! - `GET /api/v1/quarantine/{id}`
//! - `POST /api/v1/quarantine/{id}/release` and `/discard`, body optional: `{"reason": "…"}`

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use llmsec_store::{QuarantineItem, QuarantineStatus, Scope};
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, Json, Params};
use crate::service::quarantine::{self, Decision};
use crate::service::{Caller, Services};
use crate::state::AppState;
use crate::time::rfc3339;

/// An item as answered: everything stored, the held text whole.
pub fn view(i: &QuarantineItem) -> serde_json::Value {
    json!({
        "id": i.id, "source": i.source, "kind": i.kind, "content": i.content, "verdict": i.verdict,
        "severity": i.severity, "findings": i.findings, "event_id": i.event_id, "user_id": i.user_id,
        "session_id": i.session_id, "status": i.status.as_str(), "created_at": rfc3339(i.created_at),
        "expires_at": rfc3339(i.expires_at), "decided_at": i.decided_at.and_then(rfc3339),
        "decided_by": i.decided_by, "reason": i.reason,
    })
}

/// The `status` parameter.
pub fn parse_status(v: &str) -> Result<QuarantineStatus, ApiError> {
    QuarantineStatus::parse(v.trim())
        .ok_or_else(|| ApiError::field("status", "must be pending, released, discarded or expired"))
}

async fn list(
    State(svc): State<Services>,
    caller: Caller,
    Params(q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Read)?;
    crate::error::only_params(&q, &["status", "limit", "offset"])?;
    let status = q.get("status").map(|v| parse_status(v)).transpose()?;
    let limit = crate::error::limit_param(&q, 100)?;
    let offset = crate::error::offset_param(&q)?;
    let (items, total) = quarantine::list(&svc, &caller, status, limit, offset).await?;
    Ok(Json(json!({ "items": items.iter().map(view).collect::<Vec<_>>(), "total_count": total })))
}

async fn one(
    State(svc): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(view(&quarantine::get(&svc, &caller, &id).await?)))
}

/// The optional body of a decision.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    /// Why (at most 1024 bytes), kept with the item and in the audit log.
    #[serde(default)]
    reason: Option<String>,
}

/// An empty body is no reason; anything else must be the JSON object.
fn decision_body(body: &Bytes) -> Result<DecisionBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DecisionBody::default());
    }
    crate::error::parse_json(body)
}

async fn decide(
    svc: Services,
    caller: Caller,
    id: String,
    body: Bytes,
    d: Decision,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = decision_body(&body)?;
    let item = quarantine::decide(&svc, &caller, &id, d, body.reason.as_deref()).await?;
    Ok(Json(view(&item)))
}

/// `POST /api/v1/quarantine/{id}/release` (scope `triage`).
async fn release(
    State(svc): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    decide(svc, caller, id, body, Decision::Release).await
}

/// `POST /api/v1/quarantine/{id}/discard` (scope `triage`).
async fn discard(
    State(svc): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    decide(svc, caller, id, body, Decision::Discard).await
}

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/quarantine", get(list))
        .route("/api/v1/quarantine/{id}", get(one))
        .route("/api/v1/quarantine/{id}/release", post(release))
        .route("/api/v1/quarantine/{id}/discard", post(discard))
}
