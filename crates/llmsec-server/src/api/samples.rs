//! `GET /api/v1/anomalies/{id}/events`: the telemetry events an anomaly
//! names as its samples, over [`service::samples`](crate::service::samples).

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde_json::json;

use crate::error::{ApiError, Json};
use crate::service::samples::sample_events;
use crate::service::{Caller, Services};
use crate::state::AppState;

async fn events(
    State(svc): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let events = sample_events(&svc, &caller, &id).await?;
    Ok(Json(json!({ "anomaly_id": id, "events": events })))
}

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/anomalies/{id}/events", get(events))
}
