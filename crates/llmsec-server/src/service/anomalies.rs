//! Sentinel's anomalies as the caller's tenant sees them: queries, the
//! lifecycle (acknowledge, resolve, suppress: scope `triage`, which `admin`
//! includes; each change audited), the enforcements in force, the Shield
//! callback, statistics, and detector changes. Another tenant's anomaly id
//! is not found.

use llm_sentinel::{Anomaly, AnomalyStatus};
use llmsec_store::{AnomalyQuery, AnomalyRow, Enforcement, Scope};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::tenants::audit;
use super::{Caller, ServiceError, Services};
use crate::sentinel::{DetectorError, TransitionError};

fn parse(row: &AnomalyRow) -> Result<Anomaly, ServiceError> {
    serde_json::from_str(&row.body).map_err(|e| ServiceError::Internal(format!("stored anomaly {}: {e}", row.id)))
}

/// A page of the caller's tenant's anomalies matching `query` (its
/// `tenant` is set to the caller's), and how many match in all.
pub async fn list(
    svc: &Services,
    caller: &Caller,
    mut query: AnomalyQuery,
) -> Result<(Vec<Anomaly>, u64), ServiceError> {
    caller.require(Scope::Read)?;
    query.tenant = caller.tenant.clone();
    let (rows, total) = svc.store.anomalies(&query).await?;
    let anomalies = rows.iter().map(parse).collect::<Result<Vec<_>, _>>()?;
    Ok((anomalies, total))
}

/// One anomaly of the caller's tenant.
pub async fn get(svc: &Services, caller: &Caller, id: &str) -> Result<Anomaly, ServiceError> {
    caller.require(Scope::Read)?;
    let row = svc
        .store
        .anomaly(&caller.tenant, id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no anomaly {id:?}")))?;
    parse(&row)
}

fn lifecycle_error(id: &str, e: TransitionError) -> ServiceError {
    match e {
        TransitionError::NotFound => ServiceError::NotFound(format!("no anomaly {id:?}")),
        TransitionError::Store(e) => e.into(),
        e => ServiceError::field("status", e.to_string()),
    }
}

/// ACTIVE → ACKNOWLEDGED, by `by` (1–256 characters), with an optional note.
pub async fn acknowledge(
    svc: &Services,
    caller: &Caller,
    id: &str,
    by: &str,
    note: Option<String>,
) -> Result<Anomaly, ServiceError> {
    caller.require(Scope::Triage)?;
    let by = by.trim();
    if by.is_empty() || by.len() > 256 {
        return Err(ServiceError::field("acknowledged_by", "must be 1-256 characters"));
    }
    let a = svc.sentinel.acknowledge(&caller.tenant, id, by, note).await.map_err(|e| lifecycle_error(id, e))?;
    audit(svc, caller, "anomaly.acknowledge", id, json!({"tenant": caller.tenant, "by": a.acknowledged_by})).await?;
    Ok(a)
}

/// → RESOLVED.
pub async fn resolve(svc: &Services, caller: &Caller, id: &str) -> Result<Anomaly, ServiceError> {
    caller.require(Scope::Triage)?;
    let a = svc.sentinel.resolve(&caller.tenant, id).await.map_err(|e| lifecycle_error(id, e))?;
    audit(svc, caller, "anomaly.resolve", id, json!({"tenant": caller.tenant})).await?;
    Ok(a)
}

/// → SUPPRESSED.
pub async fn suppress(svc: &Services, caller: &Caller, id: &str) -> Result<Anomaly, ServiceError> {
    caller.require(Scope::Triage)?;
    let a = svc.sentinel.suppress(&caller.tenant, id).await.map_err(|e| lifecycle_error(id, e))?;
    audit(svc, caller, "anomaly.suppress", id, json!({"tenant": caller.tenant})).await?;
    Ok(a)
}

/// The caller's tenant's enforcements in force now.
pub async fn enforcements(svc: &Services, caller: &Caller) -> Result<Vec<Enforcement>, ServiceError> {
    caller.require(Scope::Read)?;
    let now = svc.sentinel.now();
    let all = svc.store.enforcements_in_force(now).await?;
    Ok(all.into_iter().filter(|e| e.tenant == caller.tenant).collect())
}

/// The longest lockdown or enforcement set by hand: 30 days.
pub const MAX_ENFORCEMENT_SECS: u64 = 30 * 86_400;
/// A lockdown's length when the caller names none: one hour.
pub const DEFAULT_LOCKDOWN_SECS: u64 = 3_600;

/// The caller's tenant's lockdown in force now, if any: a block of the
/// `tenant` entity (set here, by a Shield action or by a detector).
pub async fn lockdown_state(svc: &Services, caller: &Caller) -> Result<Option<Enforcement>, ServiceError> {
    caller.require(Scope::Read)?;
    Ok(lockdown_in_force(svc, caller).await?.into_iter().next())
}

async fn lockdown_in_force(svc: &Services, caller: &Caller) -> Result<Vec<Enforcement>, ServiceError> {
    let now = svc.sentinel.now();
    let all = svc.store.enforcements_in_force(now).await?;
    Ok(all
        .into_iter()
        .filter(|e| {
            e.tenant == caller.tenant
                && e.entity_kind == "tenant"
                && e.entity_id == caller.tenant
                && e.action == "block"
        })
        .collect())
}

/// System lockdown: a tenant-wide block. Until it ends or is lifted, every
/// analysis of the tenant (REST, GraphQL, gRPC) and every gateway call is
/// refused, and the gateway ends the tenant's streams in flight; telemetry
/// is still accepted, so monitoring goes on. Scope `triage`; audited. A
/// tenant already locked down gets the lockdown in force back (`false`):
/// lockdowns do not stack.
pub async fn lockdown(
    svc: &Services,
    caller: &Caller,
    reason: Option<&str>,
    duration_secs: Option<u64>,
) -> Result<(Enforcement, bool), ServiceError> {
    caller.require(Scope::Triage)?;
    let secs = duration_secs.unwrap_or(DEFAULT_LOCKDOWN_SECS);
    if !(1..=MAX_ENFORCEMENT_SECS).contains(&secs) {
        return Err(ServiceError::field("duration_secs", format!("must be between 1 and {MAX_ENFORCEMENT_SECS}")));
    }
    let reason = reason.map(str::trim).filter(|r| !r.is_empty()).unwrap_or("system lockdown");
    if reason.len() > 1024 {
        return Err(ServiceError::field("reason", "at most 1024 bytes"));
    }
    if let Some(e) = lockdown_in_force(svc, caller).await?.into_iter().next() {
        return Ok((e, false));
    }
    let now = svc.sentinel.now();
    let e = Enforcement {
        id: format!("lck_{}", uuid::Uuid::now_v7().simple()),
        tenant: caller.tenant.clone(),
        entity_kind: "tenant".into(),
        entity_id: caller.tenant.clone(),
        action: "block".into(),
        rate_limit: None,
        window_ms: None,
        reason: format!("system lockdown: {reason}"),
        anomaly_id: None,
        created_at: now,
        expires_at: now.saturating_add(secs as i64 * 1000),
    };
    svc.store.insert_enforcement(&e).await?;
    svc.sentinel.enforcements.add(e.clone());
    let details = json!({"reason": reason, "expires_at": crate::time::rfc3339(e.expires_at)});
    audit(svc, caller, "lockdown.start", &e.id, details).await?;
    Ok((e, true))
}

/// Lifts the caller's tenant's lockdown; answers the ids of the blocks
/// ended (none when it was not locked down). Scope `triage`; audited.
pub async fn lift_lockdown(svc: &Services, caller: &Caller) -> Result<Vec<String>, ServiceError> {
    caller.require(Scope::Triage)?;
    let ids: Vec<String> = lockdown_in_force(svc, caller).await?.into_iter().map(|e| e.id).collect();
    end_all(svc, caller, &ids).await?;
    if !ids.is_empty() {
        audit(svc, caller, "lockdown.lift", &caller.tenant, json!({"enforcements": ids})).await?;
    }
    Ok(ids)
}

/// Ends one of the caller's tenant's enforcements now (a block, a rate
/// limit, a lockdown), whoever set it. Scope `triage`; audited. False when
/// it had already ended; not found when the tenant has no such enforcement.
pub async fn end_enforcement(svc: &Services, caller: &Caller, id: &str) -> Result<bool, ServiceError> {
    caller.require(Scope::Triage)?;
    if svc.store.enforcement(&caller.tenant, id).await?.is_none() {
        return Err(ServiceError::NotFound(format!("no enforcement {id:?}")));
    }
    let ended = end_all(svc, caller, &[id.to_owned()]).await? > 0;
    if ended {
        audit(svc, caller, "enforcement.end", id, json!({})).await?;
    }
    Ok(ended)
}

/// Ends these enforcements in the store and in this replica's cache (the
/// other replicas at their next reload); answers how many were in force.
async fn end_all(svc: &Services, caller: &Caller, ids: &[String]) -> Result<usize, ServiceError> {
    let now = svc.sentinel.now();
    let mut ended = 0;
    for id in ids {
        ended += usize::from(svc.store.end_enforcement(&caller.tenant, id, now).await?);
    }
    svc.sentinel.enforcements.end(&caller.tenant, ids);
    Ok(ended)
}

/// What the Shield gateway reports after it enforced an action.
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

/// Records the outcome of a Shield action on its anomaly. A failed action
/// escalates: the anomaly goes back to ACTIVE at critical so someone looks.
pub async fn shield_callback(svc: &Services, caller: &Caller, cb: ShieldCallback) -> Result<(), ServiceError> {
    caller.require(Scope::Ingest)?;
    // The open anomaly in memory is the one stored next (`persist` writes
    // it over the given copy), so an open one is changed there.
    let mut found = false;
    let a = match svc.sentinel.update_open(&caller.tenant, &cb.anomaly_id, |a| found = apply_callback(a, &cb)) {
        Some(a) => a,
        None => {
            let row = svc
                .store
                .anomaly(&caller.tenant, &cb.anomaly_id)
                .await?
                .ok_or_else(|| ServiceError::field("anomaly_id", format!("no anomaly {:?}", cb.anomaly_id)))?;
            let mut a = parse(&row)?;
            found = apply_callback(&mut a, &cb);
            a
        }
    };
    if !found {
        return Err(ServiceError::field(
            "action_id",
            format!("anomaly {} has no action {:?}", cb.anomaly_id, cb.action_id),
        ));
    }
    svc.sentinel.persist(&caller.tenant, &a).await?;
    Ok(())
}

/// Sets the callback's status and message on its action of `a`; false when
/// `a` has no such action. A failed action escalates `a`.
fn apply_callback(a: &mut Anomaly, cb: &ShieldCallback) -> bool {
    let Some(action) = a.actions_taken.iter_mut().find(|x| x.id == cb.action_id) else {
        return false;
    };
    action.status = cb.status.clone();
    action.message = cb.message.clone();
    if cb.status == "failed" {
        tracing::error!(anomaly = %a.id, action = %cb.action_id, message = %cb.message, "shield action failed; escalating");
        a.severity = llm_sentinel::Severity::Critical;
        if a.status == AnomalyStatus::Acknowledged {
            a.status = AnomalyStatus::Active;
        }
    }
    true
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

/// [`Stats`] of the caller's tenant's anomalies opened in `[start, end]`
/// (at most 100,000 anomalies are read).
pub async fn statistics(
    svc: &Services,
    caller: &Caller,
    start: Option<i64>,
    end: Option<i64>,
) -> Result<Stats, ServiceError> {
    caller.require(Scope::Read)?;
    let tenant = caller.tenant.as_str();
    let mut rows = Vec::new();
    let mut offset = 0;
    loop {
        let query = AnomalyQuery { tenant: tenant.to_owned(), start, end, limit: 1000, offset, ..Default::default() };
        let (page, total) = svc.store.anomalies(&query).await?;
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
    let events = svc.store.count_telemetry(tenant, start).await?;
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

/// A refused detector change: not found, or invalid naming `config`.
fn detector_error(id: &str, e: DetectorError) -> ServiceError {
    match e {
        DetectorError::NotFound(_) => ServiceError::NotFound(format!("no detector {id:?}")),
        DetectorError::Invalid(m) => ServiceError::field("config", m),
        DetectorError::Store(e) => e.into(),
    }
}

/// Changes the caller's tenant's detector `id` live: `fields` (`type`,
/// `name`, `enabled`, `severity`, `config`, `actions`) laid over it,
/// validated first (the old one is kept on error), stored for this tenant
/// only and never written to the detectors file. Audited without secrets.
/// Only an operator may name receivers not open to the tenant.
pub async fn update_detector(
    svc: &Services,
    caller: &Caller,
    id: &str,
    fields: serde_json::Map<String, serde_json::Value>,
) -> Result<llm_sentinel::DetectorInfo, ServiceError> {
    caller.require(Scope::Admin)?;
    let (info, _) = svc
        .sentinel
        .update_detector(&caller.tenant, id, fields.clone(), caller.has(Scope::Operator))
        .await
        .map_err(|e| detector_error(id, e))?;
    let mut details = json!({"tenant": caller.tenant, "fields": fields});
    crate::redact::redact_secrets(&mut details);
    audit(svc, caller, "detector.update", id, details).await?;
    Ok(info)
}

/// The caller's tenant's detectors as they run now. They hold action
/// secrets and URLs: readers' views pass them through
/// [`crate::redact::for_reader`].
pub fn detectors(svc: &Services, caller: &Caller) -> Result<Vec<llm_sentinel::DetectorInfo>, ServiceError> {
    caller.require(Scope::Read)?;
    Ok(svc.sentinel.detectors(&caller.tenant))
}

/// Drops the caller's tenant's change to detector `id`: the detectors
/// file's entry runs again (answered), or a detector the tenant made is
/// gone (`None`). Audited.
pub async fn reset_detector(
    svc: &Services,
    caller: &Caller,
    id: &str,
) -> Result<Option<llm_sentinel::DetectorInfo>, ServiceError> {
    caller.require(Scope::Admin)?;
    let info = svc.sentinel.reset_detector(&caller.tenant, id).await.map_err(|e| match e {
        DetectorError::NotFound(_) => ServiceError::NotFound(format!("tenant has no change to detector {id:?}")),
        e => detector_error(id, e),
    })?;
    audit(svc, caller, "detector.reset", id, json!({"tenant": caller.tenant})).await?;
    Ok(info)
}

/// Runs the caller's tenant's detector `id` on `events` with fresh state;
/// changes nothing.
pub fn test_detector(
    svc: &Services,
    caller: &Caller,
    id: &str,
    events: &[llm_sentinel::event::TelemetryEvent],
) -> Result<Vec<llm_sentinel::detector::Finding>, ServiceError> {
    caller.require(Scope::Admin)?;
    svc.sentinel.test_detector(&caller.tenant, id, events).map_err(|e| detector_error(id, e))
}
