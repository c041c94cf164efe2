//! Campaigns and the on-call view over REST, over
//! [`crate::service::campaigns`].

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use llmsec_store::CampaignQuery;
use serde_json::json;

use crate::campaigns::{CampaignKind, CampaignStatus};
use crate::error::{ApiError, Json, Params};
use crate::service::campaigns::{self, CampaignPatch};
use crate::service::parse_time;
use crate::service::{Caller, Services};
use crate::state::AppState;

const KNOWN: &[&str] = &["status", "kind", "since", "limit", "offset"];

/// `GET /api/v1/campaigns?status=&kind=&since=&limit=&offset=`: most
/// recently seen first.
async fn list(
    State(svc): State<Services>,
    caller: Caller,
    Params(q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    crate::error::only_params(&q, KNOWN)?;
    let status = match q.get("status") {
        Some(s) => Some(
            CampaignStatus::parse(s)
                .ok_or_else(|| ApiError::field("status", "must be `active` or `closed`"))?
                .as_str()
                .to_owned(),
        ),
        None => None,
    };
    let kind = match q.get("kind") {
        Some(k) => Some(
            CampaignKind::parse(k)
                .ok_or_else(|| ApiError::field("kind", "must be `template`, `indicator` or `ip_range`"))?
                .as_str()
                .to_owned(),
        ),
        None => None,
    };
    let query = CampaignQuery {
        tenant: caller.tenant.clone(),
        status,
        kind,
        since: q.get("since").map(|v| parse_time("since", v)).transpose()?,
        limit: crate::error::limit_param(&q, 100)?,
        offset: crate::error::offset_param(&q)?,
    };
    let (list, total) = campaigns::list(&svc, &caller, query).await?;
    let views: Vec<serde_json::Value> = list.iter().map(|c| c.view(false)).collect();
    Ok(Json(json!({ "campaigns": views, "total_count": total })))
}

/// `GET /api/v1/campaigns/{id}`: with its sample event and anomaly ids.
async fn one(
    State(svc): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(campaigns::get(&svc, &caller, &id).await?.view(true)))
}

/// `PATCH /api/v1/campaigns/{id}`: attribution and status (scope `triage`).
async fn update(
    State(svc): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
    Json(patch): Json<CampaignPatch>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(campaigns::update(&svc, &caller, &id, patch).await?.view(true)))
}

/// `GET /api/v1/oncall`.
async fn oncall(State(svc): State<Services>, caller: Caller) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(campaigns::oncall(&svc, &caller).await?))
}

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/campaigns", get(list))
        .route("/api/v1/campaigns/{id}", get(one).patch(update))
        .route("/api/v1/oncall", get(oncall))
}
