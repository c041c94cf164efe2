//! Sentinel's REST query API over [`crate::service::anomalies`]: anomalies
//! and their lifecycle, enforcements in force, statistics, and the Shield
//! callback.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{delete, get, post};
use llm_sentinel::Anomaly;
use llm_sentinel::action::anomaly_view;
use llmsec_store::{AnomalyQuery, Enforcement, Scope};
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, Json, Params};
use crate::service::anomalies::{self, Count, ShieldCallback};
use crate::service::parse_time;
use crate::service::{Caller, Services};
use crate::state::AppState;
use crate::time::rfc3339;

/// An anomaly as answered. Action messages stored before they were masked
/// may name a URL in full: masked here too.
fn view(a: &Anomaly) -> serde_json::Value {
    let mut v = anomaly_view(a)["anomaly"].clone();
    if let Some(actions) = v.get_mut("actions_taken").and_then(serde_json::Value::as_array_mut) {
        for m in actions.iter_mut().filter_map(|x| x.get_mut("message")) {
            if let Some(text) = m.as_str() {
                *m = crate::redact::mask_urls_in_text(text).into();
            }
        }
    }
    v
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
    State(svc): State<Services>,
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
        offset: crate::error::offset_param(&q)?,
    };
    let (rows, total) = anomalies::list(&svc, &caller, query).await?;
    let anomalies: Vec<serde_json::Value> = rows.iter().map(view).collect();
    Ok(Json(json!({ "anomalies": anomalies, "total_count": total })))
}

async fn one(
    State(svc): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(view(&anomalies::get(&svc, &caller, &id).await?)))
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

async fn acknowledge(
    State(svc): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<Acknowledge>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let a = anomalies::acknowledge(&svc, &caller, &id, &req.acknowledged_by, req.note).await?;
    Ok(Json(view(&a)))
}

async fn resolve(
    State(svc): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(view(&anomalies::resolve(&svc, &caller, &id).await?)))
}

async fn suppress(
    State(svc): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(view(&anomalies::suppress(&svc, &caller, &id).await?)))
}

/// An enforcement as answered.
fn enforcement_view(e: &Enforcement) -> serde_json::Value {
    json!({
        "id": e.id, "entity": {"type": e.entity_kind, "id": e.entity_id}, "action": e.action,
        "rate_limit": e.rate_limit, "window_ms": e.window_ms, "reason": e.reason, "anomaly_id": e.anomaly_id,
        "created_at": rfc3339(e.created_at), "expires_at": rfc3339(e.expires_at),
    })
}

async fn enforcements(State(svc): State<Services>, caller: Caller) -> Result<Json<serde_json::Value>, ApiError> {
    let list: Vec<serde_json::Value> =
        anomalies::enforcements(&svc, &caller).await?.iter().map(enforcement_view).collect();
    Ok(Json(json!({ "enforcements": list })))
}

/// `DELETE /api/v1/enforcements/{id}`: ends one now (scope `triage`).
async fn end_enforcement(
    State(svc): State<Services>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ended = anomalies::end_enforcement(&svc, &caller, &id).await?;
    Ok(Json(json!({ "id": id, "ended": ended })))
}

/// `GET /api/v1/risk?kind=user|session|application&limit=N`: the caller's
/// tenant's riskiest subjects now, highest first (default 20, at most 1000).
async fn risk_top(
    State(svc): State<Services>,
    caller: Caller,
    Params(q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Read)?;
    crate::error::only_params(&q, &["kind", "limit"])?;
    let kind = match q.get("kind") {
        None => None,
        Some(k) => Some(crate::risk::RiskKind::parse(k).ok_or_else(|| {
            ApiError::from(crate::service::ServiceError::field("kind", "must be user, session or application"))
        })?),
    };
    let limit = match q.get("limit") {
        None => 20,
        Some(l) => l.parse::<usize>().ok().filter(|l| (1..=1000).contains(l)).ok_or_else(|| {
            ApiError::from(crate::service::ServiceError::field("limit", "must be a whole number from 1 to 1000"))
        })?,
    };
    let list = svc.sentinel.risk().top(&caller.tenant, kind, limit, svc.sentinel.now());
    Ok(Json(
        json!({ "scores": list, "half_life_secs": svc.config.risk.half_life_secs, "block_above": svc.config.risk.block_above }),
    ))
}

/// `GET /api/v1/risk/{kind}/{id}`: one subject's score now (zero when
/// nothing was counted).
async fn risk_one(
    State(svc): State<Services>,
    caller: Caller,
    Path((kind, id)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Read)?;
    let kind = crate::risk::RiskKind::parse(&kind).ok_or_else(|| {
        ApiError::from(crate::service::ServiceError::field("kind", "must be user, session or application"))
    })?;
    let r = svc.sentinel.risk().get(&caller.tenant, kind, &id, svc.sentinel.now());
    Ok(Json(serde_json::to_value(r).unwrap_or_default()))
}

/// The body of `POST /api/v1/lockdown`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockdownBody {
    /// Why (shown to refused callers).
    #[serde(default)]
    reason: Option<String>,
    /// How long, in seconds (default one hour, at most 30 days).
    #[serde(default)]
    duration_secs: Option<u64>,
}

/// `GET /api/v1/lockdown`: whether the caller's tenant is locked down.
async fn lockdown_state(State(svc): State<Services>, caller: Caller) -> Result<Json<serde_json::Value>, ApiError> {
    let e = anomalies::lockdown_state(&svc, &caller).await?;
    Ok(Json(json!({ "locked_down": e.is_some(), "enforcement": e.as_ref().map(enforcement_view) })))
}

/// `POST /api/v1/lockdown`: locks the caller's tenant down (scope
/// `triage`); 201 when it starts one, 200 with the one in force.
async fn lockdown(
    State(svc): State<Services>,
    caller: Caller,
    Json(body): Json<LockdownBody>,
) -> Result<(axum::http::StatusCode, Json<serde_json::Value>), ApiError> {
    let (e, new) = anomalies::lockdown(&svc, &caller, body.reason.as_deref(), body.duration_secs).await?;
    let status = if new { axum::http::StatusCode::CREATED } else { axum::http::StatusCode::OK };
    Ok((status, Json(json!({ "locked_down": true, "enforcement": enforcement_view(&e) }))))
}

/// `DELETE /api/v1/lockdown`: lifts it (scope `triage`).
async fn lift_lockdown(State(svc): State<Services>, caller: Caller) -> Result<Json<serde_json::Value>, ApiError> {
    let ended = anomalies::lift_lockdown(&svc, &caller).await?;
    Ok(Json(json!({ "locked_down": false, "ended": ended })))
}

async fn shield_callback(
    State(svc): State<Services>,
    caller: Caller,
    Json(cb): Json<ShieldCallback>,
) -> Result<Json<serde_json::Value>, ApiError> {
    anomalies::shield_callback(&svc, &caller, cb).await?;
    Ok(Json(json!({"status": "ok"})))
}

/// `GET /api/v1/statistics?start&end&group_by=detector_id,severity,application_id,entity`:
/// counts by detector, severity, application and entity, the detection
/// rate (anomalies per 1,000 telemetry events), the mean score and the
/// mean time to resolution (seconds) of the anomalies opened in the range.
async fn statistics(
    State(svc): State<Services>,
    caller: Caller,
    Params(q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Read)?;
    crate::error::only_params(&q, &["start", "end", "group_by"])?;
    let start = q.get("start").map(|v| parse_time("start", v)).transpose()?;
    let end = q.get("end").map(|v| parse_time("end", v)).transpose()?;
    let groups = list_param(&q, "group_by", &["detector_id", "severity", "application_id", "entity"])?;
    let wants = |g: &str| groups.is_empty() || groups.iter().any(|x| x == g);
    let s = anomalies::statistics(&svc, &caller, start, end).await?;
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
        .route("/api/v1/enforcements/{id}", delete(end_enforcement))
        .route("/api/v1/lockdown", get(lockdown_state).post(lockdown).delete(lift_lockdown))
        .route("/api/v1/risk", get(risk_top))
        .route("/api/v1/risk/{kind}/{id}", get(risk_one))
        .route("/api/v1/statistics", get(statistics))
        .route("/api/v1/shield/callback", post(shield_callback))
}
