//! Telemetry admission, whatever the transport (REST, gRPC, OTLP): an event
//! is checked against the caller, stored under the storage setting
//! (idempotent per tenant and event id), and the new ones handed to
//! Sentinel. It knows no HTTP types.

use llm_sentinel::event::TelemetryEvent;
use llmsec_store::{TelemetryRow, now_millis};

use super::{Caller, ServiceError, Services};
use crate::config::InputRetention;

/// Most events in one batch (REST, OTLP).
pub const MAX_BATCH: usize = 1000;

/// Checks an event against the caller and fills in its tenant.
pub fn admit(caller: &Caller, mut e: TelemetryEvent, prefix: &str) -> Result<TelemetryEvent, ServiceError> {
    e.validate().map_err(|err| ServiceError::field(format!("{prefix}{}", err.field), err.message))?;
    match &e.tenant_id {
        Some(t) if *t != caller.tenant => {
            return Err(ServiceError::field(
                format!("{prefix}tenant_id"),
                "must be the API key's tenant (or left out)",
            ));
        }
        _ => e.tenant_id = Some(caller.tenant.clone()),
    }
    Ok(e)
}

/// The event as the store keeps it: its texts (prompt, completion, error
/// message) under the same `none | redacted | full` setting as analysed
/// input. Detectors see the event as received; only what is written to
/// disk changes.
pub(crate) fn stored(svc: &Services, e: &TelemetryEvent) -> TelemetryEvent {
    let mode = svc.config.storage.input;
    if mode == InputRetention::Full {
        return e.clone();
    }
    // Redacted as analysed text is; too large to scan: keep nothing rather
    // than keep it in clear.
    let redact = |t: &str| svc.engine.redact_for_storage(t, None).unwrap_or_default();
    let mut kept = e.clone();
    let d = &mut kept.data;
    if mode == InputRetention::None {
        d.prompt = None;
        d.completion = None;
    } else {
        d.prompt = d.prompt.as_deref().map(redact);
        d.completion = d.completion.as_deref().map(redact);
    }
    d.error = d.error.as_deref().map(redact);
    kept
}

fn row(svc: &Services, caller: &Caller, e: &TelemetryEvent, now: i64) -> Result<TelemetryRow, ServiceError> {
    Ok(TelemetryRow {
        tenant: caller.tenant.clone(),
        event_id: e.event_id.clone(),
        application_id: e.application_id.clone(),
        event_type: e.event_type.as_str().to_owned(),
        timestamp: e.millis(),
        body: serde_json::to_string(&stored(svc, e)).map_err(|err| ServiceError::Internal(err.to_string()))?,
        received_at: now,
        user_id: e.metadata.user_id.clone(),
    })
}

/// Stores admitted events, hands the new ones to Sentinel, and says which were new.
pub async fn accept(svc: &Services, caller: &Caller, events: Vec<TelemetryEvent>) -> Result<Vec<bool>, ServiceError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_millis();
    let rows = events.iter().map(|e| row(svc, caller, e, now)).collect::<Result<Vec<_>, _>>()?;
    let fresh = svc.store.ingest(&rows).await?;
    let new: Vec<TelemetryEvent> = events.into_iter().zip(&fresh).filter(|(_, f)| **f).map(|(e, _)| e).collect();
    metrics::counter!(crate::metrics::TELEMETRY_EVENTS, "outcome" => "accepted").increment(new.len() as u64);
    metrics::counter!(crate::metrics::TELEMETRY_EVENTS, "outcome" => "duplicate")
        .increment((fresh.len() - new.len()) as u64);
    new.iter().for_each(crate::metrics::record_telemetry);
    svc.sentinel.submit(&caller.tenant, new).await;
    Ok(fresh)
}
