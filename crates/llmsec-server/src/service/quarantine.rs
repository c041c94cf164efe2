//! The quarantine pipeline, whatever the transport: holding an item,
//! listing and reading the caller's tenant's items (scope `read`),
//! releasing or discarding one (scope `triage`, audited as
//! `quarantine.release` / `quarantine.discard`), and applying `on_expiry`
//! to items nobody decided within `hold_secs` ([`expire_due`], on
//! Sentinel's clock so tests drive it). Another tenant's id is not found.
//! The rule that decides what is held is [`crate::quarantine`].

use llm_security::{Threat, Verdict};
use llmsec_store::{NewAudit, QuarantineDecision, QuarantineItem, QuarantineQuery, QuarantineStatus, Scope};
use serde::Serialize;
use serde_json::json;

use super::tenants::audit;
use super::{Caller, ServiceError, Services};
use crate::quarantine::OnExpiry;

/// Longest reason a reviewer may give.
const MAX_REASON_BYTES: usize = 1024;
/// Items the expiry task decides per store read.
const EXPIRY_PAGE: u32 = 500;

/// What an analysis or a gateway answer says of an item it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Held {
    /// The item's id.
    pub id: String,
    /// `pending` when just held.
    pub status: QuarantineStatus,
}

/// What is held: where, in what form, and what was found.
#[derive(Debug)]
pub struct Hold<'a> {
    /// `analyze`, `validate` or `gateway`.
    pub source: &'static str,
    /// `text`, or the gateway answer's format (`chat.completion` …).
    pub kind: &'static str,
    /// The held text, whole.
    pub content: String,
    /// The verdict the policy gave.
    pub verdict: Verdict,
    /// What was found.
    pub threats: &'a [Threat],
    /// The stored security event, when there is one.
    pub event_id: Option<String>,
    /// The end user.
    pub user_id: Option<String>,
    /// The conversation.
    pub session_id: Option<String>,
}

/// Whether `[quarantine]` holds a text with this verdict and these findings.
pub fn holds(svc: &Services, verdict: Verdict, threats: &[Threat]) -> bool {
    svc.config.quarantine.holds(verdict, threats)
}

/// Queues an item for review, pending until `hold_secs` from now
/// (Sentinel's clock).
pub async fn hold(svc: &Services, caller: &Caller, h: Hold<'_>) -> Result<Held, ServiceError> {
    let now = svc.sentinel.now();
    let hold_ms = i64::try_from(svc.config.quarantine.hold_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let item = QuarantineItem {
        id: format!("q_{}", uuid::Uuid::now_v7().simple()),
        tenant: caller.tenant.clone(),
        source: h.source.to_owned(),
        kind: h.kind.to_owned(),
        content: h.content,
        verdict: h.verdict.as_str().to_owned(),
        severity: crate::quarantine::max_severity(h.threats).to_owned(),
        findings: crate::quarantine::findings(h.threats),
        event_id: h.event_id,
        key_id: caller.key_id.clone(),
        user_id: h.user_id,
        session_id: h.session_id,
        status: QuarantineStatus::Pending,
        created_at: now,
        expires_at: now.saturating_add(hold_ms),
        decided_at: None,
        decided_by: None,
        reason: None,
    };
    svc.store.put_quarantine(&item).await?;
    crate::metrics::quarantined("held");
    refresh_pending(svc).await;
    Ok(Held { id: item.id, status: item.status })
}

/// A page of the caller's tenant's items, newest first, and how many match.
pub async fn list(
    svc: &Services,
    caller: &Caller,
    status: Option<QuarantineStatus>,
    limit: u32,
    offset: u32,
) -> Result<(Vec<QuarantineItem>, u64), ServiceError> {
    caller.require(Scope::Read)?;
    let q = QuarantineQuery { tenant: caller.tenant.clone(), status, limit, offset };
    Ok(svc.store.list_quarantine(&q).await?)
}

/// One of the caller's tenant's items (scope `read`).
pub async fn get(svc: &Services, caller: &Caller, id: &str) -> Result<QuarantineItem, ServiceError> {
    caller.require(Scope::Read)?;
    find(svc, caller, id).await
}

/// One of the caller's tenant's items, whatever the caller's scopes: the
/// gateway hands a released completion back to the tenant's `proxy` keys.
pub async fn find(svc: &Services, caller: &Caller, id: &str) -> Result<QuarantineItem, ServiceError> {
    svc.store
        .quarantined(&caller.tenant, id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no quarantined item {id:?}")))
}

/// A reviewer's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Let it through: the gateway hands the held answer back.
    Release,
    /// Refuse it for good.
    Discard,
}

impl Decision {
    fn status(self) -> QuarantineStatus {
        match self {
            Decision::Release => QuarantineStatus::Released,
            Decision::Discard => QuarantineStatus::Discarded,
        }
    }

    fn action(self) -> &'static str {
        match self {
            Decision::Release => "quarantine.release",
            Decision::Discard => "quarantine.discard",
        }
    }
}

/// Releases or discards a pending item of the caller's tenant (scope
/// `triage`), with an optional reason; audited. An item already decided
/// (by another reviewer, or by expiry) is a conflict: the first decision
/// stands.
pub async fn decide(
    svc: &Services,
    caller: &Caller,
    id: &str,
    decision: Decision,
    reason: Option<&str>,
) -> Result<QuarantineItem, ServiceError> {
    caller.require(Scope::Triage)?;
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.len() > MAX_REASON_BYTES) {
        return Err(ServiceError::field("reason", format!("at most {MAX_REASON_BYTES} bytes")));
    }
    let item = find(svc, caller, id).await?;
    let d = QuarantineDecision {
        status: decision.status(),
        by: caller.key_id.clone(),
        at: svc.sentinel.now(),
        reason: reason.map(str::to_owned),
    };
    if !svc.store.decide_quarantine(&caller.tenant, id, &d).await? {
        let now = find(svc, caller, id).await?;
        return Err(ServiceError::Conflict(format!("quarantined item {id:?} is already {}", now.status.as_str())));
    }
    crate::metrics::quarantined(d.status.as_str());
    refresh_pending(svc).await;
    let details = json!({"tenant": caller.tenant, "source": item.source, "reason": reason});
    audit(svc, caller, decision.action(), id, details).await?;
    Ok(QuarantineItem { status: d.status, decided_at: Some(d.at), decided_by: Some(d.by), reason: d.reason, ..item })
}

/// Applies `on_expiry` to every pending item whose hold has ended
/// (Sentinel's clock): `discard` makes it `expired`, `release` releases
/// it, decided by `system`; each audited as `quarantine.expire`. Answers
/// how many were decided. The server runs it periodically; tests call it
/// after moving the clock.
pub async fn expire_due(svc: &Services) -> Result<usize, ServiceError> {
    let now = svc.sentinel.now();
    let status = match svc.config.quarantine.on_expiry {
        OnExpiry::Discard => QuarantineStatus::Expired,
        OnExpiry::Release => QuarantineStatus::Released,
    };
    let mut decided = 0;
    loop {
        let due = svc.store.quarantine_due(now, EXPIRY_PAGE).await?;
        let full = due.len() == EXPIRY_PAGE as usize;
        let mut progressed = false;
        for item in due {
            let d = QuarantineDecision {
                status,
                by: "system".into(),
                at: now,
                reason: Some("nobody decided within quarantine.hold_secs".into()),
            };
            // A reviewer may have decided it since it was read: theirs stands.
            if !svc.store.decide_quarantine(&item.tenant, &item.id, &d).await? {
                continue;
            }
            progressed = true;
            decided += 1;
            crate::metrics::quarantined("expired");
            let entry = NewAudit {
                actor: "system".into(),
                action: "quarantine.expire".into(),
                target: item.id.clone(),
                details: json!({"tenant": item.tenant, "source": item.source, "status": status.as_str()}),
            };
            svc.store.append_audit(entry, llmsec_store::now_millis()).await?;
        }
        if !full || !progressed {
            break;
        }
    }
    refresh_pending(svc).await;
    Ok(decided)
}

/// Sets the pending gauge from the store (every replica reads the same count).
async fn refresh_pending(svc: &Services) {
    match svc.store.count_pending_quarantine().await {
        Ok(n) => crate::metrics::quarantine_pending(n),
        Err(e) => tracing::warn!(error = %e, "quarantine: counting pending items failed"),
    }
}
