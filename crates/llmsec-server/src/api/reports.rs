//! `GET /api/v1/reports` (the compliance report of a time range) and
//! `GET /api/v1/reports/posture` (the posture alone), as JSON or as one
//! self-contained HTML page, over [`crate::service::reports`].

use std::collections::HashMap;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::{ApiError, Json, Params, only_params};
use crate::service::{Caller, Services, parse_time, reports};
use crate::state::AppState;

/// The page's policy: its own inline styles, nothing else (it has no scripts).
const HTML_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'";

enum Format {
    Json,
    Html,
}

fn format(q: &HashMap<String, String>) -> Result<Format, ApiError> {
    match q.get("format").map(String::as_str) {
        None | Some("json") => Ok(Format::Json),
        Some("html") => Ok(Format::Html),
        Some(other) => Err(ApiError::field("format", format!("{other:?} is not one of json, html"))),
    }
}

fn frameworks(q: &HashMap<String, String>) -> Option<Vec<String>> {
    q.get("framework").map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect())
}

fn html(page: String) -> Response {
    let mut r = page.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(HTML_CSP));
    r
}

fn json_body<T: serde::Serialize>(v: &T) -> Result<Response, ApiError> {
    let v = serde_json::to_value(v).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(v).into_response())
}

async fn report(State(svc): State<Services>, caller: Caller, Params(q): Params) -> Result<Response, ApiError> {
    only_params(&q, &["from", "to", "format", "tenant", "framework"])?;
    let fmt = format(&q)?;
    let time = |name: &str| -> Result<i64, ApiError> {
        let v = q.get(name).ok_or_else(|| ApiError::field(name, "required (RFC 3339 or Unix milliseconds)"))?;
        Ok(parse_time(name, v)?)
    };
    let (from, to) = (time("from")?, time("to")?);
    let r = reports::report(&svc, &caller, q.get("tenant").map(String::as_str), from, to, frameworks(&q)).await?;
    match fmt {
        Format::Json => json_body(&r),
        Format::Html => Ok(html(llmsec_report::html::report(&r))),
    }
}

async fn posture(State(svc): State<Services>, caller: Caller, Params(q): Params) -> Result<Response, ApiError> {
    only_params(&q, &["format", "tenant", "framework"])?;
    let fmt = format(&q)?;
    let p = reports::posture(&svc, &caller, q.get("tenant").map(String::as_str), frameworks(&q)).await?;
    match fmt {
        Format::Json => json_body(&p),
        Format::Html => Ok(html(llmsec_report::html::posture(&p))),
    }
}

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/reports", get(report)).route("/api/v1/reports/posture", get(posture))
}
