//! What administrators do to a tenant: its keys, its webhook
//! subscriptions and their deliveries, erasing one of its users, and the
//! audit log every change is appended to before it is answered.
//!
//! A tenant's `admin` manages that tenant; `operator` alone makes keys for
//! other tenants (which is how a tenant comes to exist), manages any
//! tenant, makes or revokes `operator` keys, and reads the server-wide
//! audit log.

use llm_security::WebhookConfig;
use llmsec_store::{
    ApiKeyRecord, AuditEntry, Budget, Delivery, DeliveryStatus, KeyUsage, NewAudit, Removed, Scope, Webhook, now_millis,
};
use serde::{Deserialize, Deserializer};
use serde_json::json;

use super::keys::{generate_key, hash_key};
use super::{Caller, ServiceError, Services, check_id, check_tenant};

/// Appends to the audit log, as `caller`.
pub async fn audit(
    svc: &Services,
    caller: &Caller,
    action: &str,
    target: &str,
    details: serde_json::Value,
) -> Result<AuditEntry, ServiceError> {
    let entry = NewAudit { actor: caller.key_id.clone(), action: action.into(), target: target.into(), details };
    Ok(svc.store.append_audit(entry, now_millis()).await?)
}

/// The tenant an admin request works on: `asked` (checked) or the caller's
/// own, which the caller must administer (its own with `admin`, another
/// with `operator`).
pub fn administered_tenant(caller: &Caller, asked: Option<&str>) -> Result<String, ServiceError> {
    caller.require(Scope::Admin)?;
    let tenant = match asked {
        Some(t) => {
            check_tenant("tenant", t)?;
            t.to_owned()
        }
        None => caller.tenant.clone(),
    };
    caller.require_in(Scope::Admin, &tenant)?;
    Ok(tenant)
}

/// A key to make.
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
    /// The models it may call through the gateway (names, or prefixes
    /// ending in `*`); absent: any model.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Its gateway budgets, at most one per period.
    #[serde(default)]
    pub budgets: Vec<Budget>,
}

/// A change to a key's gateway limits: a field left out stays as it is.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    /// The new model allow-list; `null`: any model.
    #[serde(default, deserialize_with = "present")]
    pub models: Option<Option<Vec<String>>>,
    /// The new budgets (`[]`: none).
    #[serde(default)]
    pub budgets: Option<Vec<Budget>>,
}

/// A field that is present, possibly `null` (`Some(None)`), as opposed to
/// left out (`None`, through `#[serde(default)]`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Most entries of a key's model allow-list.
const MAX_MODELS: usize = 1000;

/// Checks a key's gateway limits; errors name the field.
fn check_limits(models: Option<&[String]>, budgets: &[Budget]) -> Result<(), ServiceError> {
    if let Some(models) = models {
        if models.is_empty() {
            return Err(ServiceError::field("models", "must name at least one model (leave it out or null for any)"));
        }
        if models.len() > MAX_MODELS {
            return Err(ServiceError::field("models", format!("must name at most {MAX_MODELS} models")));
        }
        for (i, m) in models.iter().enumerate() {
            if m.trim().is_empty() || m.len() > 200 || m.trim() != m {
                return Err(ServiceError::field(
                    format!("models[{i}]"),
                    "must be 1-200 characters without surrounding spaces",
                ));
            }
        }
    }
    for (i, b) in budgets.iter().enumerate() {
        if budgets[..i].iter().any(|o| o.period == b.period) {
            return Err(ServiceError::field(format!("budgets[{i}].period"), "another budget has this period"));
        }
        if b.tokens.is_none() && b.cost.is_none() {
            return Err(ServiceError::field(format!("budgets[{i}]"), "must set tokens, cost or both"));
        }
        if b.tokens == Some(0) {
            return Err(ServiceError::field(format!("budgets[{i}].tokens"), "must be positive"));
        }
        if let Some(c) = b.cost
            && !(c > 0.0 && c.is_finite())
        {
            return Err(ServiceError::field(format!("budgets[{i}].cost"), "must be a positive number"));
        }
    }
    Ok(())
}

/// Makes a key; the answer holds the whole key, the only time it is seen.
pub async fn create_key(
    svc: &Services,
    caller: &Caller,
    req: CreateKey,
) -> Result<(ApiKeyRecord, String), ServiceError> {
    let tenant = administered_tenant(caller, req.tenant.as_deref())?;
    if req.name.trim().is_empty() || req.name.len() > 200 {
        return Err(ServiceError::field("name", "must be 1-200 characters"));
    }
    if req.scopes.is_empty() {
        let names: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        return Err(ServiceError::field("scopes", format!("must name at least one of {}", names.join(", "))));
    }
    if req.scopes.contains(&Scope::Operator) {
        caller.require(Scope::Operator)?;
    }
    if let Some(r) = req.rate_per_sec
        && !(r > 0.0 && r.is_finite())
    {
        return Err(ServiceError::field("rate_per_sec", "must be a positive number"));
    }
    check_limits(req.models.as_deref(), &req.budgets)?;
    let mut scopes = req.scopes;
    scopes.sort();
    scopes.dedup();
    let mut new = generate_key(&tenant, req.name.trim(), scopes, req.rate_per_sec, now_millis());
    new.record.models = req.models;
    new.record.budgets = req.budgets;
    let mut details = json!({"tenant": tenant, "name": new.record.name, "scopes": new.record.scopes});
    if new.record.models.is_some() || !new.record.budgets.is_empty() {
        details["models"] = json!(new.record.models);
        details["budgets"] = json!(new.record.budgets);
    }
    audit(svc, caller, "key.create", &new.record.id, details).await?;
    svc.store.insert_key(&new.record).await?;
    Ok((new.record, new.key))
}

/// Lists keys: of `tenant` when given (which the caller must administer);
/// otherwise every tenant's for an operator, the caller's own tenant's for
/// an admin.
pub async fn list_keys(
    svc: &Services,
    caller: &Caller,
    tenant: Option<&str>,
) -> Result<Vec<ApiKeyRecord>, ServiceError> {
    caller.require(Scope::Admin)?;
    let tenant = match tenant {
        Some(t) => Some(administered_tenant(caller, Some(t))?),
        None if caller.has(Scope::Operator) => None,
        None => Some(caller.tenant.clone()),
    };
    Ok(svc.store.list_keys(tenant.as_deref()).await?)
}

/// Revokes a live key. Another tenant's key is not found (rather than
/// forbidden) unless the caller is an operator: ids do not leak.
pub async fn revoke_key(svc: &Services, caller: &Caller, id: &str) -> Result<(), ServiceError> {
    let key = administered_key(svc, caller, id).await?;
    audit(svc, caller, "key.revoke", id, json!({"tenant": key.tenant})).await?;
    svc.store.revoke_key(id, now_millis()).await?;
    svc.keys.invalidate(id);
    svc.limiter.forget(id);
    Ok(())
}

/// A live key the caller administers: another tenant's is not found
/// (rather than forbidden) unless the caller is an operator, so ids do not
/// leak; an `operator` key needs `operator`.
async fn administered_key(svc: &Services, caller: &Caller, id: &str) -> Result<ApiKeyRecord, ServiceError> {
    caller.require(Scope::Admin)?;
    let key = svc
        .store
        .key(id)
        .await?
        .filter(|k| k.revoked_at.is_none() && (k.tenant == caller.tenant || caller.has(Scope::Operator)))
        .ok_or_else(|| ServiceError::NotFound(format!("no live key {id:?}")))?;
    if key.scopes.contains(&Scope::Operator) {
        caller.require(Scope::Operator)?;
    }
    Ok(key)
}

/// Changes a live key's gateway limits (model allow-list, budgets). This
/// server uses them from the next request; other replicas within the key
/// cache's time to live (5 s). Usage already counted is kept.
pub async fn update_key(
    svc: &Services,
    caller: &Caller,
    id: &str,
    req: UpdateKey,
) -> Result<ApiKeyRecord, ServiceError> {
    let key = administered_key(svc, caller, id).await?;
    let models = req.models.unwrap_or_else(|| key.models.clone());
    let budgets = req.budgets.unwrap_or_else(|| key.budgets.clone());
    check_limits(models.as_deref(), &budgets)?;
    let details = json!({"tenant": key.tenant, "models": models, "budgets": budgets});
    audit(svc, caller, "key.update", id, details).await?;
    if !svc.store.set_key_limits(id, models.as_deref(), &budgets).await? {
        return Err(ServiceError::NotFound(format!("no live key {id:?}")));
    }
    svc.keys.refresh(id);
    Ok(ApiKeyRecord { models, budgets, ..key })
}

/// What a key used through the gateway in the current day and month
/// (zeros when it has no budgets: usage is counted only against budgets).
pub async fn key_usage(svc: &Services, key: &ApiKeyRecord) -> Result<Vec<KeyUsage>, ServiceError> {
    Ok(svc.store.key_usage(&key.tenant, &key.id, now_millis()).await?)
}

/// The server-wide audit log (every tenant's changes): `operator` only.
pub async fn audit_log(
    svc: &Services,
    caller: &Caller,
    after: i64,
    limit: u32,
) -> Result<Vec<AuditEntry>, ServiceError> {
    caller.require(Scope::Operator)?;
    Ok(svc.store.audit_log(after, limit).await?)
}

/// Erases everything the caller's tenant holds about `user_id`: stored
/// rows in every table that keeps user content, and Sentinel's open state.
/// The hash-chained audit log is never rewritten, so it names the erased
/// user by a digest, not by id.
pub async fn erase_user(svc: &Services, caller: &Caller, user_id: &str) -> Result<Removed, ServiceError> {
    caller.require(Scope::Admin)?;
    check_id("user_id", Some(user_id))?;
    let subject = format!("user:{}", &hash_key(&format!("{}\n{user_id}", caller.tenant))[..16]);
    svc.sentinel.forget_user(&caller.tenant, user_id);
    let mut removed = svc.store.erase_user(&caller.tenant, user_id).await?;
    removed.campaigns = super::campaigns::erase_user(svc, &caller.tenant, user_id).await?;
    audit(svc, caller, "user.erase", &subject, json!({"tenant": caller.tenant, "removed": removed})).await?;
    Ok(removed)
}

/// Registers a subscription (from the API or the config file), with `id`
/// or a new one, and reloads the delivery worker's view.
pub async fn register_webhook(
    svc: &Services,
    tenant: &str,
    cfg: WebhookConfig,
    id: Option<String>,
) -> Result<Webhook, ServiceError> {
    let w = Webhook {
        id: id.unwrap_or_else(|| format!("wh_{}", uuid::Uuid::now_v7().simple())),
        tenant: tenant.to_owned(),
        url: cfg.url,
        secret: cfg.secret,
        events: cfg.events,
        created_at: now_millis(),
    };
    svc.store.insert_webhook(&w).await?;
    svc.webhooks.reload(svc.store.as_ref()).await?;
    Ok(w)
}

/// Subscribes `tenant` (default: the caller's) to webhook deliveries. An
/// address the egress policy refuses is refused now; a host name is checked
/// each time a delivery connects.
pub async fn create_webhook(
    svc: &Services,
    caller: &Caller,
    tenant: Option<&str>,
    cfg: WebhookConfig,
) -> Result<Webhook, ServiceError> {
    let tenant = administered_tenant(caller, tenant)?;
    cfg.validate().map_err(|e| {
        let msg = e.to_string();
        let (field, rest) = msg.split_once(": ").unwrap_or(("url", msg.as_str()));
        ServiceError::field(field, rest)
    })?;
    svc.egress.check_url(&cfg.url).map_err(|e| ServiceError::field("url", e.to_string()))?;
    let id = format!("wh_{}", uuid::Uuid::now_v7().simple());
    audit(svc, caller, "webhook.create", &id, json!({"tenant": tenant, "url": cfg.url, "events": cfg.events})).await?;
    register_webhook(svc, &tenant, cfg, Some(id)).await
}

/// The subscriptions of `tenant` (default: the caller's).
pub async fn list_webhooks(
    svc: &Services,
    caller: &Caller,
    tenant: Option<&str>,
) -> Result<Vec<Webhook>, ServiceError> {
    let tenant = administered_tenant(caller, tenant)?;
    Ok(svc.store.webhooks(Some(&tenant)).await?)
}

/// Removes a subscription of `tenant` (default: the caller's).
pub async fn delete_webhook(
    svc: &Services,
    caller: &Caller,
    tenant: Option<&str>,
    id: &str,
) -> Result<(), ServiceError> {
    let tenant = administered_tenant(caller, tenant)?;
    if !svc.store.webhooks(Some(&tenant)).await?.iter().any(|w| w.id == id) {
        return Err(ServiceError::NotFound(format!("no webhook {id:?} in tenant {tenant:?}")));
    }
    audit(svc, caller, "webhook.delete", id, json!({"tenant": tenant})).await?;
    svc.store.delete_webhook(&tenant, id).await?;
    svc.webhooks.reload(svc.store.as_ref()).await?;
    Ok(())
}

/// The caller's tenant's deliveries, newest first.
pub async fn deliveries(
    svc: &Services,
    caller: &Caller,
    status: Option<DeliveryStatus>,
    limit: u32,
) -> Result<Vec<Delivery>, ServiceError> {
    caller.require(Scope::Read)?;
    Ok(svc.store.deliveries(&caller.tenant, status, limit).await?)
}

/// Queues a dead delivery of the caller's tenant again.
pub async fn redeliver(svc: &Services, caller: &Caller, id: &str) -> Result<(), ServiceError> {
    caller.require(Scope::Admin)?;
    if !svc.store.redeliver(&caller.tenant, id, now_millis()).await? {
        return Err(ServiceError::NotFound(format!("no dead delivery {id:?}")));
    }
    audit(svc, caller, "delivery.redeliver", id, json!({"tenant": caller.tenant})).await?;
    svc.delivery_notify.notify_one();
    Ok(())
}
