//! Admin routes: keys, the audit log, erasure by user, over
//! [`crate::service::tenants`] (which says who may do what).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use llmsec_store::{ApiKeyRecord, Scope};
use serde::Serialize;
use serde_json::json;

use crate::error::{ApiError, Json, Params};
use crate::service::tenants::{self, CreateKey};
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
    /// The whole key: only in the answer that creates it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl From<ApiKeyRecord> for KeyView {
    fn from(k: ApiKeyRecord) -> KeyView {
        KeyView {
            id: k.id,
            tenant: k.tenant,
            name: k.name,
            scopes: k.scopes,
            rate_per_sec: k.rate_per_sec,
            created_at: rfc3339(k.created_at),
            revoked_at: k.revoked_at.and_then(rfc3339),
            key: None,
        }
    }
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
    let keys: Vec<KeyView> = keys.into_iter().map(KeyView::from).collect();
    Ok(Json(json!({ "keys": keys })))
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
        .route("/api/admin/keys/{id}", delete(revoke_key))
        .route("/api/admin/audit", get(audit_log))
        .route("/api/security/users/{user_id}/events", delete(erase_user))
}
