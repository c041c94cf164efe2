//! `GET /api/security/events`: the caller's tenant's stored analyses, newest
//! first, with filters and an opaque cursor. A page holds `limit` events at
//! most, and stops early, with a cursor, before it would pass
//! `limits.page_bytes`; it is read from the store in chunks sized to that
//! budget, so a page of large events is never held whole.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use llmsec_store::{Scope, SecurityEvent};
use serde::Serialize;

use crate::error::{ApiError, Json, Params};
use crate::service::events::{Filters, cursor_of, page, parse_cursor};
use crate::service::{Caller, Services, parse_time};
use crate::state::AppState;
use crate::time::rfc3339;

/// An event as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    /// Its id.
    pub id: String,
    /// `input_analysis`, `context_analysis` or `output_validation`.
    pub event_type: String,
    /// The text as retained (absent with retention `none`).
    pub input: Option<String>,
    /// The threats found.
    pub threats: serde_json::Value,
    /// The analysis confidence.
    pub confidence: f64,
    /// The verdict.
    pub verdict: String,
    /// When (RFC 3339).
    pub timestamp: Option<String>,
    /// The caller's user id.
    pub user_id: Option<String>,
    /// The caller's session id.
    pub session_id: Option<String>,
    /// For content analysed as untrusted (`context`): its kind.
    pub context_kind: Option<String>,
    /// The engine's time on the analysis, in microseconds.
    pub analysis_us: Option<i64>,
}

impl From<SecurityEvent> for EventView {
    fn from(e: SecurityEvent) -> Self {
        EventView {
            id: e.id,
            event_type: e.event_type,
            input: e.input,
            threats: e.threats,
            confidence: e.confidence,
            verdict: e.verdict,
            timestamp: rfc3339(e.timestamp),
            user_id: e.user_id,
            session_id: e.session_id,
            context_kind: e.context_kind,
            analysis_us: e.analysis_us,
        }
    }
}

const KNOWN: &[&str] = &[
    "event_type",
    "user_id",
    "session_id",
    "verdict",
    "min_confidence",
    "since",
    "until",
    "threat",
    "cursor",
    "limit",
];

async fn list(
    State(svc): State<Services>,
    caller: Caller,
    Params(q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Read)?;
    crate::error::only_params(&q, KNOWN)?;
    let filters = Filters {
        event_type: q.get("event_type").cloned(),
        user_id: q.get("user_id").cloned(),
        session_id: q.get("session_id").cloned(),
        verdict: q.get("verdict").cloned(),
        min_confidence: q
            .get("min_confidence")
            .map(|v| v.parse::<f64>().map_err(|_| ApiError::field("min_confidence", "must be a number in [0, 1]")))
            .transpose()?,
        since: q.get("since").map(|v| parse_time("since", v)).transpose()?,
        until: q.get("until").map(|v| parse_time("until", v)).transpose()?,
        threat: q.get("threat").cloned(),
    };
    filters.validate("")?;
    crate::service::check_id("user_id", filters.user_id.as_deref())?;
    crate::service::check_id("session_id", filters.session_id.as_deref())?;
    let before = match q.get("cursor") {
        Some(c) => Some(parse_cursor(c).ok_or_else(|| ApiError::field("cursor", "not a cursor this API returned"))?),
        None => None,
    };
    let limit = crate::error::limit_param(&q, 50)?;
    let query = filters.query(&caller.tenant, before, limit);
    let total = svc.store.count_events(&query).await?;
    let mut bytes = svc.config.limits.page_bytes;
    let page = page(svc.store.as_ref(), query, limit, &mut bytes, true, "limit").await?;
    let next = if page.more { page.events.last().map(cursor_of) } else { None };
    let events: Vec<EventView> = page.events.into_iter().map(Into::into).collect();
    Ok(Json(serde_json::json!({ "events": events, "next_cursor": next, "total_count": total })))
}

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/security/events", get(list))
}
