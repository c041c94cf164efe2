//! Admin routes: keys, the audit log, erasure by user. Every change is
//! appended to the hash-chained audit log before it is answered.
//!
//! A tenant's `admin` manages that tenant's keys; `operator` alone makes
//! keys for other tenants (which is how a tenant comes to exist), manages
//! any tenant's keys, makes or revokes `operator` keys, and reads the
//! server-wide audit log.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use llmsec_store::{ApiKeyRecord, AuditEntry, NewAudit, Scope, now_millis};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::AppState;
use crate::auth::{Caller, generate_key};
use crate::error::{ApiError, Json, Params};
use crate::time::rfc3339;

/// `POST /api/admin/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// The tenant the key belongs to (default: the caller's; another
    /// tenant needs scope `operator`).
    #[serde(default)]
    pub tenant: Option<String>,
    /// A label.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Its own request rate per second.
    #[serde(default)]
    pub rate_per_sec: Option<f64>,
}

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

/// Tenant names: 1–64 of `[A-Za-z0-9_.-]`.
pub(crate) fn check_tenant(field: &str, t: &str) -> Result<(), ApiError> {
    if t.is_empty() || t.len() > 64 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
        return Err(ApiError::field(field, "must be 1-64 characters of A-Z a-z 0-9 _ . -"));
    }
    Ok(())
}

/// Appends to the audit log.
pub(crate) async fn audit(
    state: &AppState,
    caller: &Caller,
    action: &str,
    target: &str,
    details: serde_json::Value,
) -> Result<AuditEntry, ApiError> {
    let entry = NewAudit { actor: caller.key_id.clone(), action: action.into(), target: target.into(), details };
    Ok(state.store.append_audit(entry, now_millis()).await?)
}

async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateKey>,
) -> Result<(StatusCode, Json<KeyView>), ApiError> {
    caller.require(Scope::Admin)?;
    let tenant = req.tenant.unwrap_or_else(|| caller.tenant.clone());
    check_tenant("tenant", &tenant)?;
    caller.require_in(Scope::Admin, &tenant)?;
    if req.name.trim().is_empty() || req.name.len() > 200 {
        return Err(ApiError::field("name", "must be 1-200 characters"));
    }
    if req.scopes.is_empty() {
        let names: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        return Err(ApiError::field("scopes", format!("must name at least one of {}", names.join(", "))));
    }
    if req.scopes.contains(&Scope::Operator) {
        caller.require(Scope::Operator)?;
    }
    if let Some(r) = req.rate_per_sec
        && !(r > 0.0 && r.is_finite())
    {
        return Err(ApiError::field("rate_per_sec", "must be a positive number"));
    }
    let mut scopes = req.scopes;
    scopes.sort();
    scopes.dedup();
    let new = generate_key(&tenant, req.name.trim(), scopes, req.rate_per_sec, now_millis());
    audit(
        &state,
        &caller,
        "key.create",
        &new.record.id,
        json!({"tenant": tenant, "name": new.record.name, "scopes": new.record.scopes}),
    )
    .await?;
    state.store.insert_key(&new.record).await?;
    let mut view = KeyView::from(new.record);
    view.key = Some(new.key);
    Ok((StatusCode::CREATED, Json(view)))
}

async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Admin)?;
    // Without `tenant`: every tenant's keys for an operator, the caller's own tenant's otherwise.
    let tenant = match q.get("tenant") {
        Some(t) => {
            check_tenant("tenant", t)?;
            caller.require_in(Scope::Admin, t)?;
            Some(t.as_str())
        }
        None if caller.has(Scope::Operator) => None,
        None => Some(caller.tenant.as_str()),
    };
    let keys: Vec<KeyView> = state.store.list_keys(tenant).await?.into_iter().map(KeyView::from).collect();
    Ok(Json(json!({ "keys": keys })))
}

async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Admin)?;
    // Another tenant's key is not found (rather than forbidden): ids do not leak.
    let key = state
        .store
        .key(&id)
        .await?
        .filter(|k| k.revoked_at.is_none() && (k.tenant == caller.tenant || caller.has(Scope::Operator)))
        .ok_or_else(|| ApiError::NotFound(format!("no live key {id:?}")))?;
    if key.scopes.contains(&Scope::Operator) {
        caller.require(Scope::Operator)?;
    }
    audit(&state, &caller, "key.revoke", &id, json!({"tenant": key.tenant})).await?;
    state.store.revoke_key(&id, now_millis()).await?;
    state.keys.invalidate(&id);
    state.limiter.forget(&id);
    Ok(Json(json!({ "id": id, "revoked": true })))
}

async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    // The log is server-wide: every tenant's changes.
    caller.require(Scope::Operator)?;
    let after = match q.get("after") {
        Some(v) => v.parse::<i64>().map_err(|_| ApiError::field("after", "must be an integer sequence number"))?,
        None => 0,
    };
    let limit = crate::error::limit_param(&q, 100)?;
    let entries = state.store.audit_log(after, limit).await?;
    Ok(Json(json!({ "entries": entries })))
}

async fn erase_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Admin)?;
    crate::error::check_id("user_id", Some(&user_id))?;
    // The audit log is hash-chained and never rewritten, so it names the
    // erased user by a digest, not by id.
    let subject = format!("user:{}", &crate::auth::hash_key(&format!("{}\n{user_id}", caller.tenant))[..16]);
    state.sentinel.forget_user(&caller.tenant, &user_id);
    let removed = state.store.erase_user(&caller.tenant, &user_id).await?;
    audit(&state, &caller, "user.erase", &subject, json!({"tenant": caller.tenant, "removed": removed})).await?;
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
