//! Sentinel's detectors over REST, as GraphQL has them: the caller's
//! tenant's detectors (`read`; secrets never shown, URLs masked without
//! `admin`), a change to one (`admin`; the same fields as `updateDetector`),
//! and dropping the tenant's change so the detectors file's entry runs
//! again (`admin`).

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{delete, get, patch};
use llmsec_store::Scope;
use serde_json::json;

use crate::error::{ApiError, Json};
use crate::service::anomalies;
use crate::service::{Caller, Services};
use crate::state::AppState;

/// A detector as a caller reads it.
fn view(d: llm_sentinel::DetectorInfo, admin: bool) -> serde_json::Value {
    let actions = serde_json::to_value(&d.actions).unwrap_or_default();
    json!({
        "id": d.id,
        "name": d.name,
        "type": d.kind,
        "enabled": d.enabled,
        "config": crate::redact::for_reader(d.config, admin),
        "actions": crate::redact::for_reader(actions, admin),
        "tracked_entities": d.tracked_entities,
    })
}

async fn list(State(svc): State<Services>, caller: Caller) -> Result<Json<serde_json::Value>, ApiError> {
    let admin = caller.has(Scope::Admin);
    let list: Vec<serde_json::Value> =
        anomalies::detectors(&svc, &caller)?.into_iter().map(|d| view(d, admin)).collect();
    Ok(Json(json!({ "detectors": list })))
}

/// `PATCH /api/v1/detectors/{id}` with any of `type`, `name`, `enabled`,
/// `severity`, `config`, `actions`.
async fn update(
    State(svc): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
    Json(fields): Json<serde_json::Map<String, serde_json::Value>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Admin)?;
    if fields.is_empty() {
        let known = crate::sentinel::TENANT_DETECTOR_KEYS.join(", ");
        return Err(ApiError::BadRequest { field: None, message: format!("name at least one of {known}") });
    }
    let info = anomalies::update_detector(&svc, &caller, &id, fields).await?;
    Ok(Json(view(info, true)))
}

async fn reset(
    State(svc): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let info = anomalies::reset_detector(&svc, &caller, &id).await?;
    Ok(Json(json!({ "id": id, "reset": true, "detector": info.map(|d| view(d, true)) })))
}

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/detectors", get(list))
        .route("/api/v1/detectors/{id}", patch(update))
        .route("/api/v1/detectors/{id}/override", delete(reset))
}
