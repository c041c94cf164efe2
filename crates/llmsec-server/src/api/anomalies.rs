//! Sentinel's REST query API: anomalies and their lifecycle
//! (acknowledge, resolve, suppress: scope `triage`, which `admin`
//! includes), enforcements in force, and the Shield callback. Everything
//! is the caller's tenant's: another tenant's anomaly id is not found.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use llm_sentinel::action::anomaly_view;
use llm_sentinel::{Anomaly, AnomalyStatus};
use llmsec_store::{AnomalyQuery, Scope};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::AppState;
use crate::api::admin::audit;
use crate::api::events::parse_time;
use crate::auth::Caller;
use crate::error::{ApiError, Json, Params};
use crate::sentinel::TransitionError;
use crate::time::rfc3339;

fn view(body: &str) -> Result<serde_json::Value, ApiError> {
    let a: Anomaly = serde_json::from_str(body).map_err(|e| ApiError::Internal(format!("stored anomaly: {e}")))?;
    Ok(anomaly_view(&a)["anomaly"].clone())
}

fn list_param(
    q: &std::collections::HashMap<String, String>,
    name: &str,
    allowed: &[&str],
) -> Result<Vec<String>, ApiError> {
    let Some(v) = q.get(name) else { return Ok(Vec::new()) };
    let items: Vec<String> = v.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect();
    if !allowed.is_empty()
        && let Some(bad) = items.iter().find(|s| !allowed.contains(&s.as_str()))
    {
        return Err(ApiError::field(name, format!("{bad:?} is not one of {}", allowed.join(", "))));
    }
    Ok(items)
}

const KNOWN: &[&str] = &[
    "start",
    "end",
    "severity",
    "status",
    "detector_id",
    "application_id",
    "score_min",
    "score_max",
    "limit",
    "offset",
];

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Read)?;
    crate::error::only_params(&q, KNOWN)?;
    let num = |name: &str| -> Result<Option<f64>, ApiError> {
        q.get(name)
            .map(|v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| (0.0..=1.0).contains(x))
                    .ok_or_else(|| ApiError::field(name, "must be a number in [0, 1]"))
            })
            .transpose()
    };
    let query = AnomalyQuery {
        tenant: caller.tenant.clone(),
        start: q.get("start").map(|v| parse_time("start", v)).transpose()?,
        end: q.get("end").map(|v| parse_time("end", v)).transpose()?,
        severities: list_param(&q, "severity", &["info", "warning", "critical"])?,
        statuses: list_param(&q, "status", &["active", "acknowledged", "resolved", "suppressed"])?,
        detector_ids: q.get("detector_id").map(|v| v.split(',').map(str::to_owned).collect()).unwrap_or_default(),
        application_ids: q.get("application_id").map(|v| v.split(',').map(str::to_owned).collect()).unwrap_or_default(),
        score_min: num("score_min")?,
        score_max: num("score_max")?,
        limit: crate::error::limit_param(&q, 100)?,
        offset: match q.get("offset") {
            Some(v) => v.parse::<u32>().map_err(|_| ApiError::field("offset", "must be a non-negative integer"))?,
            None => 0,
        },
    };
    let (rows, total) = state.store.anomalies(&query).await?;
    let anomalies = rows.iter().map(|r| view(&r.body)).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "anomalies": anomalies, "total_count": total })))
}

async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Read)?;
    let row = state
        .store
        .anomaly(&caller.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no anomaly {id:?}")))?;
    Ok(Json(view(&row.body)?))
}

/// `POST /api/v1/anomalies/{id}/acknowledge`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acknowledge {
    /// Who.
    pub acknowledged_by: String,
    /// Why, or what is being done.
    #[serde(default)]
    pub note: Option<String>,
}

fn lifecycle_error(id: &str, e: TransitionError) -> ApiError {
    match e {
        TransitionError::NotFound => ApiError::NotFound(format!("no anomaly {id:?}")),
        TransitionError::Store(e) => e.into(),
        e => ApiError::field("status", e.to_string()),
    }
}

async fn acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<Acknowledge>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Triage)?;
    if req.acknowledged_by.trim().is_empty() || req.acknowledged_by.len() > 256 {
        return Err(ApiError::field("acknowledged_by", "must be 1-256 characters"));
    }
    let a = state
        .sentinel
        .acknowledge(&caller.tenant, &id, req.acknowledged_by.trim(), req.note)
        .await
        .map_err(|e| lifecycle_error(&id, e))?;
    audit(&state, &caller, "anomaly.acknowledge", &id, json!({"tenant": caller.tenant, "by": a.acknowledged_by}))
        .await?;
    Ok(Json(anomaly_view(&a)["anomaly"].clone()))
}

async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Triage)?;
    let a = state.sentinel.resolve(&caller.tenant, &id).await.map_err(|e| lifecycle_error(&id, e))?;
    audit(&state, &caller, "anomaly.resolve", &id, json!({"tenant": caller.tenant})).await?;
    Ok(Json(anomaly_view(&a)["anomaly"].clone()))
}

async fn suppress(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Triage)?;
    let a = state.sentinel.suppress(&caller.tenant, &id).await.map_err(|e| lifecycle_error(&id, e))?;
    audit(&state, &caller, "anomaly.suppress", &id, json!({"tenant": caller.tenant})).await?;
    Ok(Json(anomaly_view(&a)["anomaly"].clone()))
}

async fn enforcements(State(state): State<AppState>, caller: Caller) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Read)?;
    let now = state.sentinel.now();
    let list: Vec<serde_json::Value> = state
        .store
        .enforcements_in_force(now)
        .await?
        .into_iter()
        .filter(|e| e.tenant == caller.tenant)
        .map(|e| {
            json!({
                "id": e.id, "entity": {"type": e.entity_kind, "id": e.entity_id}, "action": e.action,
                "rate_limit": e.rate_limit, "window_ms": e.window_ms, "reason": e.reason, "anomaly_id": e.anomaly_id,
                "created_at": rfc3339(e.created_at), "expires_at": rfc3339(e.expires_at),
            })
        })
        .collect();
    Ok(Json(json!({ "enforcements": list })))
}

/// The body the Shield gateway posts when it enforces an action.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShieldCallback {
    /// The anomaly.
    pub anomaly_id: String,
    /// The action (an `actions_taken[].id`).
    pub action_id: String,
    /// `succeeded`, `failed`, …
    pub status: String,
    /// Details.
    #[serde(default)]
    pub message: String,
    /// When (RFC 3339).
    #[serde(default)]
    pub timestamp: Option<String>,
}

async fn shield_callback(
    State(state): State<AppState>,
    caller: Caller,
    Json(cb): Json<ShieldCallback>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Ingest)?;
    let row = state
        .store
        .anomaly(&caller.tenant, &cb.anomaly_id)
        .await?
        .ok_or_else(|| ApiError::field("anomaly_id", format!("no anomaly {:?}", cb.anomaly_id)))?;
    let mut a: Anomaly = serde_json::from_str(&row.body).map_err(|e| ApiError::Internal(e.to_string()))?;
    let action = a.actions_taken.iter_mut().find(|x| x.id == cb.action_id).ok_or_else(|| {
        ApiError::field("action_id", format!("anomaly {} has no action {:?}", cb.anomaly_id, cb.action_id))
    })?;
    action.status = cb.status.clone();
    action.message = cb.message.clone();
    if cb.status == "failed" {
        // Escalate: the anomaly goes back to ACTIVE at critical so someone looks.
        tracing::error!(anomaly = %a.id, action = %cb.action_id, message = %cb.message, "shield action failed; escalating");
        a.severity = llm_sentinel::Severity::Critical;
        if a.status == AnomalyStatus::Acknowledged {
            a.status = AnomalyStatus::Active;
        }
    }
    state.sentinel.persist(&caller.tenant, &a).await?;
    Ok(Json(json!({"status": "ok"})))
}

/// A count per key.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Count {
    /// The key (detector id, severity, application, `kind:id` of an entity).
    pub key: String,
    /// How many anomalies.
    pub count: u64,
}

/// The statistics of a tenant's anomalies opened in a range.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Stats {
    /// Anomalies in the range.
    pub total_anomalies: u64,
    /// By detector, most first.
    pub anomalies_by_detector: Vec<Count>,
    /// By severity.
    pub anomalies_by_severity: Vec<Count>,
    /// By application.
    pub anomalies_by_application: Vec<Count>,
    /// By affected entity (`kind:id`), top 100.
    pub top_affected_entities: Vec<Count>,
    /// Anomalies per 1,000 telemetry events.
    pub detection_rate: f64,
    /// Mean score.
    pub average_score: f64,
    /// Mean time to resolution, seconds, over those resolved.
    pub mttr: Option<f64>,
    /// Telemetry events in the range.
    pub telemetry_events: u64,
}

/// Computes [`Stats`] (at most 100,000 anomalies are read).
pub(crate) async fn compute_stats(
    state: &AppState,
    tenant: &str,
    start: Option<i64>,
    end: Option<i64>,
) -> Result<Stats, ApiError> {
    let mut rows = Vec::new();
    let mut offset = 0;
    loop {
        let query = AnomalyQuery { tenant: tenant.to_owned(), start, end, limit: 1000, offset, ..Default::default() };
        let (page, total) = state.store.anomalies(&query).await?;
        offset += page.len() as u32;
        let done = page.is_empty() || u64::from(offset) >= total || offset >= 100_000;
        rows.extend(page);
        if done {
            break;
        }
    }
    let anomalies: Vec<Anomaly> = rows.iter().filter_map(|r| serde_json::from_str(&r.body).ok()).collect();
    let count_by = |key: &dyn Fn(&Anomaly) -> String| -> Vec<Count> {
        let mut m: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
        for a in &anomalies {
            *m.entry(key(a)).or_default() += 1;
        }
        let mut v: Vec<Count> = m.into_iter().map(|(key, count)| Count { key, count }).collect();
        v.sort_by(|x, y| y.count.cmp(&x.count).then_with(|| x.key.cmp(&y.key)));
        v.truncate(100);
        v
    };
    let resolved: Vec<i64> = anomalies.iter().filter_map(Anomaly::time_to_resolve).collect();
    let events = state.store.count_telemetry(tenant, start).await?;
    let n = anomalies.len() as f64;
    Ok(Stats {
        total_anomalies: anomalies.len() as u64,
        anomalies_by_detector: count_by(&|a| a.detector_id.clone()),
        anomalies_by_severity: count_by(&|a| a.severity.as_str().to_owned()),
        anomalies_by_application: count_by(&|a| a.context.application_id.clone().unwrap_or_default()),
        top_affected_entities: count_by(&|a| format!("{}:{}", a.affected_entity.kind.as_str(), a.affected_entity.id)),
        detection_rate: if events == 0 { 0.0 } else { n * 1000.0 / events as f64 },
        average_score: if anomalies.is_empty() { 0.0 } else { anomalies.iter().map(|a| a.score).sum::<f64>() / n },
        mttr: (!resolved.is_empty()).then(|| resolved.iter().sum::<i64>() as f64 / resolved.len() as f64 / 1000.0),
        telemetry_events: events,
    })
}

/// `GET /api/v1/statistics?start&end&group_by=detector_id,severity,application_id,entity`:
/// counts by detector, severity, application and entity, the detection
/// rate (anomalies per 1,000 telemetry events), the mean score and the
/// mean time to resolution (seconds) of the anomalies opened in the range.
async fn statistics(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Read)?;
    crate::error::only_params(&q, &["start", "end", "group_by"])?;
    let start = q.get("start").map(|v| parse_time("start", v)).transpose()?;
    let end = q.get("end").map(|v| parse_time("end", v)).transpose()?;
    let groups = list_param(&q, "group_by", &["detector_id", "severity", "application_id", "entity"])?;
    let wants = |g: &str| groups.is_empty() || groups.iter().any(|x| x == g);
    let s = compute_stats(&state, &caller.tenant, start, end).await?;
    let named = |v: &[Count], name: &str| -> serde_json::Value {
        serde_json::Value::Array(v.iter().map(|c| json!({ name: c.key, "count": c.count })).collect())
    };
    let mut out = json!({
        "total_anomalies": s.total_anomalies,
        "detection_rate": s.detection_rate,
        "average_score": s.average_score,
        "mttr": s.mttr,
        "telemetry_events": s.telemetry_events,
    });
    if wants("detector_id") {
        out["anomalies_by_detector"] = named(&s.anomalies_by_detector, "detector_id");
    }
    if wants("severity") {
        out["anomalies_by_severity"] = named(&s.anomalies_by_severity, "severity");
    }
    if wants("application_id") {
        out["anomalies_by_application"] = named(&s.anomalies_by_application, "application_id");
    }
    if wants("entity") {
        out["top_affected_entities"] = named(&s.top_affected_entities, "entity");
    }
    Ok(Json(out))
}

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/anomalies", get(list))
        .route("/api/v1/anomalies/{id}", get(one))
        .route("/api/v1/anomalies/{id}/acknowledge", post(acknowledge))
        .route("/api/v1/anomalies/{id}/resolve", post(resolve))
        .route("/api/v1/anomalies/{id}/suppress", post(suppress))
        .route("/api/v1/enforcements", get(enforcements))
        .route("/api/v1/statistics", get(statistics))
        .route("/api/v1/shield/callback", post(shield_callback))
}
