//! `POST /api/v1/metrics/query` over [`crate::service::series`].

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use llmsec_store::Scope;
use serde_json::json;

use crate::error::{ApiError, Json};
use crate::service::series::{MetricsQuery, compute};
use crate::service::{Caller, Services};
use crate::state::AppState;

async fn query(
    State(svc): State<Services>,
    caller: Caller,
    Json(q): Json<MetricsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Read)?;
    let (series, read, truncated) = compute(&svc, &caller, &q, &[]).await?;
    Ok(Json(json!({ "series": series, "events_read": read, "truncated": truncated })))
}

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/metrics/query", post(query))
}
