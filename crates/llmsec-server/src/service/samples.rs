//! The sample telemetry events an anomaly names (`context.sample_events`),
//! read back from the store as they were stored (prompts and completions
//! under the storage setting), so that an anomaly's detail can show what
//! raised it. Only the caller's tenant's anomalies and telemetry are read.

use serde_json::Value;

use super::{Caller, ServiceError, Services};

/// Telemetry rows read at most from an anomaly's window to find its
/// samples: a sample further in than this is left out.
pub const MAX_SCAN: u32 = 10_000;

/// The anomaly `id`'s sample events, in time order, as stored; ones no
/// longer stored (retention, erasure) are left out. Scope `read`.
pub async fn sample_events(svc: &Services, caller: &Caller, id: &str) -> Result<Vec<Value>, ServiceError> {
    let anomaly = super::anomalies::get(svc, caller, id).await?;
    let wanted = &anomaly.context.sample_events;
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    // The window is inclusive of its end (a single event's window starts
    // and ends at its time); the store's range is not.
    let (start, end) = (anomaly.context.window_start, anomaly.context.window_end.saturating_add(1));
    let rows = svc.store.telemetry(&caller.tenant, start, end, MAX_SCAN).await?;
    rows.iter()
        .filter(|r| wanted.contains(&r.event_id))
        .map(|r| {
            serde_json::from_str(&r.body)
                .map_err(|e| ServiceError::Internal(format!("stored telemetry event {}: {e}", r.event_id)))
        })
        .collect()
}
