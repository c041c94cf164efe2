//! Red-team runs over [`crate::service::redteam`]:
//! `POST /api/v1/redteam/runs` (scope `ingest`; a `llmsec redteam --json`
//! report, of which only the summary is kept), `GET /api/v1/redteam/runs`
//! (`since`, `until`, `limit`; scope `read`) and `GET /api/v1/redteam/runs/{id}`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use llmsec_store::RedteamRun;
use serde_json::{Value, json};

use crate::error::{ApiError, Json, Params, limit_param, only_params};
use crate::service::redteam;
use crate::service::{Caller, Services, parse_time};
use crate::state::AppState;
use crate::time::rfc3339;

/// A run as the API shows it.
fn view(r: &RedteamRun) -> Value {
    json!({
        "id": r.id, "timestamp": rfc3339(r.timestamp), "target": r.target, "trials": r.trials, "errors": r.errors,
        "successes": r.successes, "attack_success_rate": r.asr, "summary": r.summary,
    })
}

async fn create(
    State(svc): State<Services>,
    caller: Caller,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let run = redteam::record(&svc, &caller, &body).await?;
    Ok((StatusCode::CREATED, Json(view(&run))))
}

async fn list(State(svc): State<Services>, caller: Caller, Params(q): Params) -> Result<Json<Value>, ApiError> {
    only_params(&q, &["since", "until", "limit"])?;
    let since = q.get("since").map(|v| parse_time("since", v)).transpose()?.unwrap_or(0);
    let until = q.get("until").map(|v| parse_time("until", v)).transpose()?.unwrap_or(i64::MAX);
    let limit = limit_param(&q, 100)?;
    let runs = redteam::list(&svc, &caller, since, until, limit).await?;
    Ok(Json(json!({ "runs": runs.iter().map(view).collect::<Vec<_>>() })))
}

async fn one(State(svc): State<Services>, caller: Caller, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&redteam::get(&svc, &caller, &id).await?)))
}

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/redteam/runs", get(list).post(create)).route("/api/v1/redteam/runs/{id}", get(one))
}
