//! Webhook subscriptions and their deliveries (the outbox, dead letters included).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use llm_security::WebhookConfig;
use llmsec_store::{Delivery, DeliveryStatus, Scope, Webhook};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{ApiError, Json, Params};
use crate::service::tenants;
use crate::service::{Caller, Services};
use crate::state::AppState;
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

async fn create(
    State(svc): State<Services>,
    caller: Caller,
    Json(req): Json<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookView>), ApiError> {
    let cfg = WebhookConfig::new().with_url(req.url).with_secret(req.secret).with_events(req.events);
    let w = tenants::create_webhook(&svc, &caller, req.tenant.as_deref(), cfg).await?;
    Ok((StatusCode::CREATED, Json(w.into())))
}

async fn list(
    State(svc): State<Services>,
    caller: Caller,
    Params(q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    let hooks = tenants::list_webhooks(&svc, &caller, q.get("tenant").map(String::as_str)).await?;
    let hooks: Vec<WebhookView> = hooks.into_iter().map(Into::into).collect();
    Ok(Json(json!({ "webhooks": hooks })))
}

async fn remove(
    State(svc): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
    Params(q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    tenants::delete_webhook(&svc, &caller, q.get("tenant").map(String::as_str), &id).await?;
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
    State(svc): State<Services>,
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
    let list = tenants::deliveries(&svc, &caller, status, limit).await?;
    let list: Vec<DeliveryView> = list.into_iter().map(Into::into).collect();
    Ok(Json(json!({ "deliveries": list })))
}

async fn redeliver(
    State(svc): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    tenants::redeliver(&svc, &caller, &id).await?;
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
