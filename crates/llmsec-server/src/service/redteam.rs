//! Red-team runs: `llmsec redteam --upload` (or any client) stores a run's
//! figures — the JSON report's `summary`, never its prompts or the target's
//! answers — so attack success can be followed over time (the dashboard's
//! Insights, the posture report's security-testing control).

use llmsec_report::RedTeam;
use llmsec_store::{Millis, RedteamRun, Scope, now_millis};

use super::{Caller, ServiceError, Services, parse_time};

/// Reads a run from a `llmsec redteam --json` report (`{"summary": …,
/// "results"?: …}`; the results are not kept) with an optional
/// `timestamp` (RFC 3339 or Unix ms; default now), and stores it.
pub async fn record(svc: &Services, caller: &Caller, body: &serde_json::Value) -> Result<RedteamRun, ServiceError> {
    caller.require(Scope::Ingest)?;
    let summary = body.get("summary").ok_or_else(|| ServiceError::field("summary", "required"))?;
    let figures = RedTeam::from_json(&serde_json::json!({ "summary": summary }).to_string())
        .map_err(|e| ServiceError::field("summary", e.to_string()))?;
    let timestamp = match body.get("timestamp") {
        None | Some(serde_json::Value::Null) => now_millis(),
        Some(serde_json::Value::String(s)) => parse_time("timestamp", s)?,
        Some(serde_json::Value::Number(n)) => {
            n.as_i64().ok_or_else(|| ServiceError::field("timestamp", "must be Unix milliseconds or RFC 3339"))?
        }
        Some(_) => return Err(ServiceError::field("timestamp", "must be Unix milliseconds or RFC 3339")),
    };
    if figures.target.len() > 256 {
        return Err(ServiceError::field("summary.target", "at most 256 bytes"));
    }
    if figures.by_category.len() > 1000 {
        return Err(ServiceError::field("summary.groups.category", "at most 1000 categories"));
    }
    let run = RedteamRun {
        id: format!("rt_{}", uuid::Uuid::now_v7().simple()),
        tenant: caller.tenant.clone(),
        timestamp,
        target: figures.target.clone(),
        trials: figures.trials,
        errors: figures.errors,
        successes: figures.overall.successes,
        asr: figures.overall.rate,
        summary: serde_json::to_value(&figures).map_err(|e| ServiceError::Internal(e.to_string()))?,
    };
    svc.store.insert_redteam_run(&run).await?;
    Ok(run)
}

/// The caller's runs in `[since, until)`, newest first.
pub async fn list(
    svc: &Services,
    caller: &Caller,
    since: Millis,
    until: Millis,
    limit: u32,
) -> Result<Vec<RedteamRun>, ServiceError> {
    caller.require(Scope::Read)?;
    Ok(svc.store.redteam_runs(&caller.tenant, since, until, limit).await?)
}

/// One of the caller's runs.
pub async fn get(svc: &Services, caller: &Caller, id: &str) -> Result<RedteamRun, ServiceError> {
    caller.require(Scope::Read)?;
    svc.store.redteam_run(&caller.tenant, id).await?.ok_or_else(|| ServiceError::NotFound(format!("no run {id:?}")))
}
