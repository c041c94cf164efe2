//! `GET /api/v1/insights?start=&end=&granularity=` over
//! [`crate::service::insights`]: the dashboard's security charts (scope `read`).

use axum::Router;
use axum::extract::State;
use axum::routing::get;

use crate::error::{ApiError, Json, Params, only_params};
use crate::service::insights::{Insights, InsightsQuery, compute};
use crate::service::{Caller, Services};
use crate::state::AppState;

async fn insights(State(svc): State<Services>, caller: Caller, Params(q): Params) -> Result<Json<Insights>, ApiError> {
    only_params(&q, &["start", "end", "granularity"])?;
    let get = |k: &str| q.get(k).cloned().ok_or_else(|| ApiError::field(k.to_owned(), "is required"));
    let query = InsightsQuery {
        start: get("start")?,
        end: get("end")?,
        granularity: q.get("granularity").cloned().unwrap_or_else(|| "1h".into()),
    };
    Ok(Json(compute(&svc, &caller, &query).await?))
}

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/insights", get(insights))
}
