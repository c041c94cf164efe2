//! Admin routes: keys, the audit log, erasure by user, over
//! [`crate::service::tenants`] (which says who may do what).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use llmsec_store::{ApiKeyRecord, BudgetPeriod, Scope};
use serde::Serialize;
use serde_json::json;

use crate::error::{ApiError, Json, Params};
use crate::service::tenants::{self, CreateKey, UpdateKey};
use crate::service::{Caller, Services};
use crate::state::AppState;
use crate::time::rfc3339;

/// A key as listed: never its hash.
#[derive(Debug, Serialize)]
pub struct KeyView {
    /// The public id.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// The label.
    pub name: String,
    /// The scopes.
    pub scopes: Vec<Scope>,
    /// Its rate, if it has its own.
    pub rate_per_sec: Option<f64>,
    /// When it was made (RFC 3339).
    pub created_at: Option<String>,
    /// When it was revoked.
    pub revoked_at: Option<String>,
    /// The models it may call through the gateway; `null`: any.
    pub models: Option<Vec<String>>,
    /// Its gateway budgets, with what was used in the current period.
    pub budgets: Vec<BudgetView>,
    /// The whole key: only in the answer that creates it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A key's budget for one period and its use so far.
#[derive(Debug, Serialize)]
pub struct BudgetView {
    /// `day` or `month` (UTC).
    pub period: BudgetPeriod,
    /// Most tokens per period, if limited.
    pub tokens: Option<u64>,
    /// Most cost per period, if limited.
    pub cost: Option<f64>,
    /// Tokens used in the current period.
    pub used_tokens: u64,
    /// Cost used in the current period.
    pub used_cost: f64,
    /// When the current period ends (RFC 3339).
    pub resets_at: Option<String>,
}

impl From<ApiKeyRecord> for KeyView {
    fn from(k: ApiKeyRecord) -> KeyView {
        let now = llmsec_store::now_millis();
        let budgets = k
            .budgets
            .iter()
            .map(|b| BudgetView {
                period: b.period,
                tokens: b.tokens,
                cost: b.cost,
                used_tokens: 0,
                used_cost: 0.0,
                resets_at: rfc3339(b.period.end(now)),
            })
            .collect();
        KeyView {
            id: k.id,
            tenant: k.tenant,
            name: k.name,
            scopes: k.scopes,
            rate_per_sec: k.rate_per_sec,
            created_at: rfc3339(k.created_at),
            revoked_at: k.revoked_at.and_then(rfc3339),
            models: k.models,
            budgets,
            key: None,
        }
    }
}

/// The view of a key, with its usage in the current periods when it is
/// live and has budgets.
async fn view(svc: &Services, k: ApiKeyRecord) -> Result<KeyView, ApiError> {
    let usage =
        if k.budgets.is_empty() || k.revoked_at.is_some() { Vec::new() } else { tenants::key_usage(svc, &k).await? };
    let mut v = KeyView::from(k);
    for b in &mut v.budgets {
        if let Some(u) = usage.iter().find(|u| u.period == b.period) {
            b.used_tokens = u.tokens;
            b.used_cost = u.cost;
        }
    }
    Ok(v)
}

async fn create_key(
    State(svc): State<Services>,
    caller: Caller,
    Json(req): Json<CreateKey>,
) -> Result<(StatusCode, Json<KeyView>), ApiError> {
    let (record, key) = tenants::create_key(&svc, &caller, req).await?;
    let mut view = KeyView::from(record);
    view.key = Some(key);
    Ok((StatusCode::CREATED, Json(view)))
}

async fn list_keys(
    State(svc): State<Services>,
    caller: Caller,
    Params(q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    let keys = tenants::list_keys(&svc, &caller, q.get("tenant").map(String::as_str)).await?;
    let mut views = Vec::with_capacity(keys.len());
    for k in keys {
        views.push(view(&svc, k).await?);
    }
    Ok(Json(json!({ "keys": views })))
}

async fn update_key(
    State(svc): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<UpdateKey>,
) -> Result<Json<KeyView>, ApiError> {
    let record = tenants::update_key(&svc, &caller, &id, req).await?;
    Ok(Json(view(&svc, record).await?))
}

async fn revoke_key(
    State(svc): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    tenants::revoke_key(&svc, &caller, &id).await?;
    Ok(Json(json!({ "id": id, "revoked": true })))
}

async fn audit_log(
    State(svc): State<Services>,
    caller: Caller,
    Params(q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Operator)?;
    let after = match q.get("after") {
        Some(v) => v.parse::<i64>().map_err(|_| ApiError::field("after", "must be an integer sequence number"))?,
        None => 0,
    };
    let limit = crate::error::limit_param(&q, 100)?;
    let entries = tenants::audit_log(&svc, &caller, after, limit).await?;
    Ok(Json(json!({ "entries": entries })))
}

async fn erase_user(
    State(svc): State<Services>,
    caller: Caller,
    Path(user_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let removed = tenants::erase_user(&svc, &caller, &user_id).await?;
    Ok(Json(json!({ "user_id": user_id, "deleted": removed.events, "removed": removed })))
}

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/keys", post(create_key).get(list_keys))
        .route("/api/admin/keys/{id}", delete(revoke_key).patch(update_key))
        .route("/api/admin/audit", get(audit_log))
        .route("/api/security/users/{user_id}/events", delete(erase_user))
}
