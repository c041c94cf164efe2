//! `GET /api/v1/privacy/processing`: the tenant's record of processing
//! (`admin`; `operator` may name another `tenant`), as JSON or, with
//! `format=markdown`, as a Markdown page, over [`crate::service::privacy`].

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::{ApiError, Json, Params, only_params};
use crate::service::{Caller, Services, privacy};
use crate::state::AppState;

async fn processing(State(svc): State<Services>, caller: Caller, Params(q): Params) -> Result<Response, ApiError> {
    only_params(&q, &["format", "tenant"])?;
    let markdown = match q.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("markdown") => true,
        Some(other) => return Err(ApiError::field("format", format!("{other:?} is not one of json, markdown"))),
    };
    let r = privacy::processing(&svc, &caller, q.get("tenant").map(String::as_str)).await?;
    if markdown {
        let mut resp = privacy::markdown(&r).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/markdown; charset=utf-8"));
        return Ok(resp);
    }
    let v = serde_json::to_value(&r).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(v).into_response())
}

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/privacy/processing", get(processing))
}
