//! Campaigns as the caller's tenant sees them (reading needs `read`; an
//! analyst's attribution and status, `triage`, audited as
//! `campaign.update`), and the on-call view: open anomalies with their age,
//! acknowledgement and escalation step, active campaigns, and MTTA/MTTR
//! over the last day and week. Another tenant's campaign id is not found.

use llm_sentinel::Anomaly;
use llmsec_store::{AnomalyQuery, CampaignQuery, Millis, Scope};
use serde::Deserialize;
use serde_json::json;

use super::tenants::audit;
use super::{Caller, ServiceError, Services};
use crate::campaigns::{Campaign, CampaignStatus};

fn parse(row: &llmsec_store::CampaignRow) -> Result<Campaign, ServiceError> {
    Campaign::from_row(row).map_err(|e| ServiceError::Internal(format!("stored campaign {}: {e}", row.id)))
}

/// A page of the caller's tenant's campaigns matching `query` (its
/// `tenant` is set to the caller's), and how many match in all.
pub async fn list(
    svc: &Services,
    caller: &Caller,
    mut query: CampaignQuery,
) -> Result<(Vec<Campaign>, u64), ServiceError> {
    caller.require(Scope::Read)?;
    query.tenant = caller.tenant.clone();
    let (rows, total) = svc.store.campaigns(&query).await?;
    Ok((rows.iter().map(parse).collect::<Result<Vec<_>, _>>()?, total))
}

/// One campaign of the caller's tenant.
pub async fn get(svc: &Services, caller: &Caller, id: &str) -> Result<Campaign, ServiceError> {
    caller.require(Scope::Read)?;
    let row = svc
        .store
        .campaign(&caller.tenant, id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no campaign {id:?}")))?;
    parse(&row)
}

/// An analyst's change to a campaign: `{actor?, notes?, confidence?, status?}`;
/// an empty `actor` or `notes` clears it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignPatch {
    /// Who is believed to be behind it.
    #[serde(default)]
    pub actor: Option<String>,
    /// Free notes.
    #[serde(default)]
    pub notes: Option<String>,
    /// Confidence in the attribution, `[0, 1]`.
    #[serde(default)]
    pub confidence: Option<f64>,
    /// `active` or `closed`.
    #[serde(default)]
    pub status: Option<String>,
}

impl CampaignPatch {
    /// Checks the change; errors name the field.
    fn check(&self) -> Result<Option<CampaignStatus>, ServiceError> {
        if self.actor.is_none() && self.notes.is_none() && self.confidence.is_none() && self.status.is_none() {
            return Err(ServiceError::field("actor", "give at least one of actor, notes, confidence, status"));
        }
        if self.actor.as_ref().is_some_and(|a| a.chars().count() > 256 || a.contains('\0')) {
            return Err(ServiceError::field("actor", "at most 256 characters"));
        }
        if self.notes.as_ref().is_some_and(|n| n.chars().count() > 4096 || n.contains('\0')) {
            return Err(ServiceError::field("notes", "at most 4096 characters"));
        }
        if self.confidence.is_some_and(|c| !(0.0..=1.0).contains(&c)) {
            return Err(ServiceError::field("confidence", "must be a number in [0, 1]"));
        }
        self.status
            .as_deref()
            .map(|s| {
                CampaignStatus::parse(s).ok_or_else(|| ServiceError::field("status", "must be `active` or `closed`"))
            })
            .transpose()
    }

    fn apply(&self, status: Option<CampaignStatus>, by: &str, c: &mut Campaign) {
        let text = |v: &String| (!v.trim().is_empty()).then(|| v.trim().to_owned());
        if let Some(a) = &self.actor {
            c.actor = text(a);
        }
        if let Some(n) = &self.notes {
            c.notes = text(n);
        }
        if let Some(x) = self.confidence {
            c.confidence = Some(x);
        }
        if let Some(s) = status {
            c.status = s;
        }
        c.updated_by = Some(by.to_owned());
    }
}

/// Sets a campaign's attribution or status (scope `triage`; audited as
/// `campaign.update`).
pub async fn update(svc: &Services, caller: &Caller, id: &str, patch: CampaignPatch) -> Result<Campaign, ServiceError> {
    caller.require(Scope::Triage)?;
    let status = patch.check()?;
    let by = caller.key_id.clone();
    let held = svc.sentinel.campaigns().update(&caller.tenant, id, |c| patch.apply(status, &by, c));
    let c = match held {
        Some(c) => c,
        None => {
            let row = svc
                .store
                .campaign(&caller.tenant, id)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("no campaign {id:?}")))?;
            let mut c = parse(&row)?;
            patch.apply(status, &by, &mut c);
            c
        }
    };
    svc.store.put_campaign(&c.row()).await?;
    let mut fields = Vec::new();
    for (name, set) in [
        ("actor", patch.actor.is_some()),
        ("notes", patch.notes.is_some()),
        ("confidence", patch.confidence.is_some()),
        ("status", patch.status.is_some()),
    ] {
        if set {
            fields.push(name);
        }
    }
    let details = json!({"tenant": caller.tenant, "fields": fields, "status": c.status.as_str(), "actor": c.actor});
    audit(svc, caller, "campaign.update", id, details).await?;
    Ok(c)
}

/// Erasure: removes `user_id` from the tenant's campaigns, in memory and
/// stored; answers how many stored campaigns named the user.
pub(crate) async fn erase_user(svc: &Services, tenant: &str, user_id: &str) -> Result<u64, ServiceError> {
    svc.sentinel.campaigns().forget_user(tenant, user_id);
    let mut changed = 0;
    let mut offset = 0u32;
    loop {
        let q = CampaignQuery { tenant: tenant.to_owned(), limit: 1000, offset, ..CampaignQuery::default() };
        let (rows, _) = svc.store.campaigns(&q).await?;
        for row in &rows {
            let mut c = parse(row)?;
            if c.users.iter().any(|u| u == user_id) {
                c.users.retain(|u| u != user_id);
                svc.store.put_campaign(&c.row()).await?;
                changed += 1;
            }
        }
        if rows.len() < 1000 {
            return Ok(changed);
        }
        offset = offset.saturating_add(1000);
    }
}

const DAY_MS: Millis = 86_400_000;

/// Open anomalies shown at most.
const ONCALL_ANOMALIES: u32 = 500;
/// Active campaigns shown at most.
const ONCALL_CAMPAIGNS: u32 = 100;

/// One open anomaly as the on-call view shows it.
fn oncall_anomaly(a: &Anomaly, now: Millis) -> serde_json::Value {
    let time = |t: Millis| crate::time::rfc3339(t).unwrap_or_default();
    let escalation = a.actions_taken.iter().filter(|t| t.kind == "escalation").max_by_key(|t| t.at);
    json!({
        "id": a.id,
        "title": a.title,
        "detector_id": a.detector_id,
        "severity": a.severity.as_str(),
        "status": a.status.as_str(),
        "entity": {"type": a.affected_entity.kind.as_str(), "id": a.affected_entity.id},
        "opened_at": time(a.timestamp),
        "age_secs": ((now - a.timestamp).max(0)) / 1000,
        "acknowledged_by": a.acknowledged_by,
        "acknowledged_at": a.acknowledged_at.map(time),
        "escalation_step": escalation.map(|t| t.id.strip_prefix("escalation:").unwrap_or(&t.id).to_owned()),
        "escalated_at": escalation.map(|t| time(t.at)),
    })
}

/// MTTA/MTTR and counts of the anomalies opened in `[now - span, now]`,
/// from the compliance report's computation.
async fn response_times(
    svc: &Services,
    tenant: &str,
    span: Millis,
    now: Millis,
) -> Result<serde_json::Value, ServiceError> {
    let s = llmsec_report::evidence::anomaly_stats(svc.store.as_ref(), tenant, now - span, now + 1, now)
        .await
        .map_err(|e| match e {
            llmsec_report::ReportError::Store(e) => e.into(),
            e => ServiceError::Internal(e.to_string()),
        })?;
    Ok(json!({
        "opened": s.opened,
        "acknowledged": s.acknowledged,
        "resolved": s.resolved,
        "mtta_ms": s.mtta_ms,
        "mttr_ms": s.mttr_ms,
    }))
}

/// The on-call view of the caller's tenant (scope `read`).
pub async fn oncall(svc: &Services, caller: &Caller) -> Result<serde_json::Value, ServiceError> {
    caller.require(Scope::Read)?;
    let now = svc.sentinel.now();
    let q = AnomalyQuery {
        tenant: caller.tenant.clone(),
        statuses: vec!["active".into(), "acknowledged".into()],
        limit: ONCALL_ANOMALIES,
        ..AnomalyQuery::default()
    };
    let (rows, open_total) = svc.store.anomalies(&q).await?;
    let mut by_severity = json!({"critical": [], "warning": [], "info": []});
    for row in &rows {
        let Ok(a) = serde_json::from_str::<Anomaly>(&row.body) else {
            tracing::warn!(anomaly = %row.id, "unreadable stored anomaly");
            continue;
        };
        if let Some(list) = by_severity.get_mut(a.severity.as_str()).and_then(serde_json::Value::as_array_mut) {
            list.push(oncall_anomaly(&a, now));
        }
    }
    // Oldest first within each severity: the longest waiting on top.
    for s in ["critical", "warning", "info"] {
        if let Some(list) = by_severity.get_mut(s).and_then(serde_json::Value::as_array_mut) {
            list.sort_by_key(|v| std::cmp::Reverse(v["age_secs"].as_i64().unwrap_or(0)));
        }
    }
    let cq = CampaignQuery {
        tenant: caller.tenant.clone(),
        status: Some(CampaignStatus::Active.as_str().into()),
        limit: ONCALL_CAMPAIGNS,
        ..CampaignQuery::default()
    };
    let (campaigns, campaign_total) = svc.store.campaigns(&cq).await?;
    let campaigns: Vec<serde_json::Value> =
        campaigns.iter().map(parse).collect::<Result<Vec<_>, _>>()?.iter().map(|c| c.view(false)).collect();
    Ok(json!({
        "generated_at": crate::time::rfc3339(now),
        "open_anomalies": by_severity,
        "open_anomaly_count": open_total,
        "active_campaigns": campaigns,
        "active_campaign_count": campaign_total,
        "last_24h": response_times(svc, &caller.tenant, DAY_MS, now).await?,
        "last_7d": response_times(svc, &caller.tenant, 7 * DAY_MS, now).await?,
    }))
}
