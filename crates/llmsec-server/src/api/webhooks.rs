//! Webhook subscriptions and their deliveries (the outbox, dead letters included).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use llm_security::WebhookConfig;
use llmsec_store::{Delivery, DeliveryStatus, Scope, Webhook, now_millis};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::AppState;
use crate::api::admin::{audit, check_tenant};
use crate::auth::Caller;
use crate::error::{ApiError, Json, Params};
use crate::time::rfc3339;

/// `POST /api/webhooks`: a `WebhookConfig` (url, secret, events), plus an optional tenant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// The tenant whose events it receives (default: the caller's; another
    /// tenant needs scope `operator`).
    #[serde(default)]
    pub tenant: Option<String>,
    /// Receiver URL.
    pub url: String,
    /// HMAC secret (16 bytes or more).
    pub secret: String,
    /// Events; empty means all.
    #[serde(default)]
    pub events: Vec<String>,
}

/// A subscription as listed: never its secret.
#[derive(Debug, Serialize)]
pub struct WebhookView {
    /// Its id.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// Receiver URL.
    pub url: String,
    /// Events (empty: all).
    pub events: Vec<String>,
    /// When it was made.
    pub created_at: Option<String>,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
        WebhookView { id: w.id, tenant: w.tenant, url: w.url, events: w.events, created_at: rfc3339(w.created_at) }
    }
}

/// Registers a subscription (from the API or the config file).
pub(crate) async fn register(
    state: &AppState,
    tenant: &str,
    cfg: WebhookConfig,
    id: Option<String>,
) -> Result<Webhook, ApiError> {
    let w = Webhook {
        id: id.unwrap_or_else(|| format!("wh_{}", uuid::Uuid::now_v7().simple())),
        tenant: tenant.to_owned(),
        url: cfg.url,
        secret: cfg.secret,
        events: cfg.events,
        created_at: now_millis(),
    };
    state.store.insert_webhook(&w).await?;
    state.webhooks.reload(state.store.as_ref()).await?;
    Ok(w)
}

/// The `tenant` parameter (default: the caller's), which the caller must
/// administer: its own tenant with `admin`, another with `operator`.
fn tenant_param(caller: &Caller, q: &std::collections::HashMap<String, String>) -> Result<String, ApiError> {
    caller.require(Scope::Admin)?;
    let tenant = match q.get("tenant") {
        Some(t) => {
            check_tenant("tenant", t)?;
            t.clone()
        }
        None => caller.tenant.clone(),
    };
    caller.require_in(Scope::Admin, &tenant)?;
    Ok(tenant)
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookView>), ApiError> {
    caller.require(Scope::Admin)?;
    let tenant = req.tenant.unwrap_or_else(|| caller.tenant.clone());
    check_tenant("tenant", &tenant)?;
    caller.require_in(Scope::Admin, &tenant)?;
    let cfg = WebhookConfig::new().with_url(req.url).with_secret(req.secret).with_events(req.events);
    cfg.validate().map_err(|e| {
        let msg = e.to_string();
        let (field, rest) = msg.split_once(": ").unwrap_or(("url", msg.as_str()));
        ApiError::field(field, rest)
    })?;
    // An address the egress policy refuses is refused now; a host name is
    // checked each time a delivery connects.
    state.egress.check_url(&cfg.url).map_err(|e| ApiError::field("url", e.to_string()))?;
    let id = format!("wh_{}", uuid::Uuid::now_v7().simple());
    audit(&state, &caller, "webhook.create", &id, json!({"tenant": tenant, "url": cfg.url, "events": cfg.events}))
        .await?;
    let w = register(&state, &tenant, cfg, Some(id)).await?;
    Ok((StatusCode::CREATED, Json(w.into())))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    let tenant = tenant_param(&caller, &q)?;
    let hooks: Vec<WebhookView> = state.store.webhooks(Some(&tenant)).await?.into_iter().map(Into::into).collect();
    Ok(Json(json!({ "webhooks": hooks })))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Params(q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    let tenant = tenant_param(&caller, &q)?;
    if !state.store.webhooks(Some(&tenant)).await?.iter().any(|w| w.id == id) {
        return Err(ApiError::NotFound(format!("no webhook {id:?} in tenant {tenant:?}")));
    }
    audit(&state, &caller, "webhook.delete", &id, json!({"tenant": tenant})).await?;
    state.store.delete_webhook(&tenant, &id).await?;
    state.webhooks.reload(state.store.as_ref()).await?;
    Ok(Json(json!({ "id": id, "deleted": true })))
}

/// A delivery as listed.
#[derive(Debug, Serialize)]
pub struct DeliveryView {
    /// Its id (the receiver's idempotency key).
    pub id: String,
    /// The subscription.
    pub webhook_id: String,
    /// The event.
    pub event: String,
    /// `pending`, `delivered` or `dead`.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due.
    pub next_attempt_at: Option<String>,
    /// The last failure: a category (`egress refused`, `connect failed`,
    /// `timeout`, `request failed`, `HTTP <status>`), never the connection error.
    pub last_error: Option<String>,
    /// The last HTTP status.
    pub last_status: Option<u16>,
    /// When it was queued.
    pub created_at: Option<String>,
    /// The body sent.
    pub payload: serde_json::Value,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        DeliveryView {
            id: d.id,
            webhook_id: d.webhook_id,
            event: d.event,
            status: d.status,
            attempts: d.attempts,
            next_attempt_at: (d.status == DeliveryStatus::Pending).then(|| rfc3339(d.next_attempt_at)).flatten(),
            last_error: d.last_error.as_deref().map(|e| crate::deliver::public_error(e).to_owned()),
            last_status: d.last_status,
            created_at: rfc3339(d.created_at),
            payload: serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null),
        }
    }
}

async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Read)?;
    let status = match q.get("status") {
        Some(s) => Some(
            DeliveryStatus::parse(s).ok_or_else(|| ApiError::field("status", "must be pending, delivered or dead"))?,
        ),
        None => None,
    };
    let limit = crate::error::limit_param(&q, 100)?;
    let list: Vec<DeliveryView> =
        state.store.deliveries(&caller.tenant, status, limit).await?.into_iter().map(Into::into).collect();
    Ok(Json(json!({ "deliveries": list })))
}

async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Admin)?;
    if !state.store.redeliver(&caller.tenant, &id, now_millis()).await? {
        return Err(ApiError::NotFound(format!("no dead delivery {id:?}")));
    }
    audit(&state, &caller, "delivery.redeliver", &id, json!({"tenant": caller.tenant})).await?;
    state.delivery_notify.notify_one();
    Ok(Json(json!({ "id": id, "status": "pending" })))
}

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/webhooks", post(create).get(list))
        .route("/api/webhooks/{id}", delete(remove))
        .route("/api/webhooks/deliveries", get(deliveries))
        .route("/api/webhooks/deliveries/{id}/redeliver", post(redeliver))
}
