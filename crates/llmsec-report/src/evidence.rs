//! What the posture is judged from: a plain description of the running
//! configuration (built by the server or the CLI, so this crate does not
//! depend on either) and the facts read from the store.

use std::collections::BTreeMap;

use llmsec_store::audit::verify_chain;
use llmsec_store::{AnomalyQuery, EventQuery, Millis, Scope, Store};
use serde::{Deserialize, Serialize};

use crate::ReportError;
use crate::redteam::RedTeam;

/// One day in milliseconds.
pub const DAY_MS: Millis = 86_400_000;
/// Live keys created longer ago than this count as due for rotation.
pub const KEY_ROTATION_DAYS: i64 = 365;
/// How far back the posture looks at anomalies (incident handling).
pub const INCIDENT_WINDOW_DAYS: i64 = 30;
/// A red-team run stored this recently (days) stands for the tenant when
/// none is given.
pub const REDTEAM_WINDOW_DAYS: i64 = 90;

/// The running configuration, as far as the controls care. The server
/// and the CLI fill it from their own configuration type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Configuration {
    /// The listen address (`127.0.0.1:8080`).
    pub listen: String,
    /// Whether the listener itself serves TLS.
    pub tls: bool,
    /// Whether stored prompt and completion text is encrypted at rest
    /// (`[storage.encryption]` configured).
    pub encryption_at_rest: bool,
    /// How analysed text is stored: `none`, `redacted` or `full`.
    pub storage_input: String,
    /// Retention in days (0: kept forever).
    pub retention_days: u32,
    /// Whether the hourly retention purge runs (it does in `llmsec serve`
    /// whenever `retention_days` is above 0).
    pub retention_purge_running: bool,
    /// The default per-key request rate (requests per second; 0: none).
    pub rate_limit_per_sec: f64,
    /// Internal address ranges outbound HTTP may reach besides public ones.
    pub egress_allow: Vec<String>,
    /// Sentinel detectors enabled in the detectors file (or its defaults).
    pub detectors_enabled: usize,
    /// `sqlite` or `postgres`.
    pub database: String,
}

/// The tenant's API keys, counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyEvidence {
    /// Keys not revoked.
    pub live: u64,
    /// Revoked keys.
    pub revoked: u64,
    /// Live keys holding `operator` (cross-tenant).
    pub operator: u64,
    /// Live keys holding `admin` but not `operator`.
    pub admin: u64,
    /// Live keys whose only scope is `read`.
    pub read_only: u64,
    /// Live keys per scope.
    pub by_scope: BTreeMap<String, u64>,
    /// Live keys older than [`KEY_ROTATION_DAYS`].
    pub due_for_rotation: u64,
}

/// The audit log: its chain checked, and the erasures it records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditEvidence {
    /// Entries in the whole (server-wide) chain.
    pub entries: u64,
    /// Whether every entry links to and hashes over the one before.
    pub verified: bool,
    /// Where the chain breaks, when it does.
    pub error: Option<String>,
    /// The newest entry's hash.
    pub head: Option<String>,
    /// When the oldest entry was written (the log is never purged).
    pub oldest_at: Option<Millis>,
    /// `user.erase` entries for this tenant.
    pub erasures: u64,
    /// The newest of them.
    pub last_erasure_at: Option<Millis>,
}

/// Whether the retention purge keeps up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RetentionEvidence {
    /// The tenant's security events older than the retention period
    /// (0 when retention is off: nothing is due).
    pub events_past_retention: u64,
}

/// The tenant's webhook subscriptions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebhookEvidence {
    /// Subscriptions.
    pub total: u64,
    /// With an HMAC secret (each delivery signed).
    pub signed: u64,
    /// Whose URL is plain `http://`.
    pub plain_http: u64,
}

/// Anomalies over a period, with their handling times.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnomalyStats {
    /// Opened in the period.
    pub opened: u64,
    /// Of those, acknowledged (at any time).
    pub acknowledged: u64,
    /// Of those, resolved.
    pub resolved: u64,
    /// Of those, suppressed.
    pub suppressed: u64,
    /// Of those, still active (neither acknowledged nor closed).
    pub active: u64,
    /// Active ones opened more than a day before the report was made.
    pub unacknowledged_over_day: u64,
    /// Mean time from opening to acknowledgement, in milliseconds.
    pub mtta_ms: Option<i64>,
    /// Mean time from opening to resolution, in milliseconds.
    pub mttr_ms: Option<i64>,
    /// Per detector: opened, and how many of them by severity.
    pub by_detector: BTreeMap<String, DetectorAnomalies>,
}

/// One detector's anomalies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectorAnomalies {
    /// Opened.
    pub total: u64,
    /// Severity `info`.
    pub info: u64,
    /// Severity `warning`.
    pub warning: u64,
    /// Severity `critical`.
    pub critical: u64,
    /// Still active or acknowledged (not resolved or suppressed).
    pub open: u64,
}

/// Everything a posture is evaluated from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The tenant.
    pub tenant: String,
    /// When the evidence was gathered (Unix milliseconds).
    pub gathered_at: Millis,
    /// The running configuration.
    pub config: Configuration,
    /// API keys.
    pub keys: KeyEvidence,
    /// The audit log.
    pub audit: AuditEvidence,
    /// Retention.
    pub retention: RetentionEvidence,
    /// Webhooks.
    pub webhooks: WebhookEvidence,
    /// Anomalies of the last [`INCIDENT_WINDOW_DAYS`] days.
    pub incidents: AnomalyStats,
    /// A red-team run: the one given, else the tenant's latest stored one
    /// of the last [`REDTEAM_WINDOW_DAYS`] days.
    pub redteam: Option<RedTeam>,
}

impl Evidence {
    /// Reads the evidence for `tenant` from `store` at time `now`.
    pub async fn gather(
        store: &dyn Store,
        tenant: &str,
        config: Configuration,
        redteam: Option<RedTeam>,
        now: Millis,
    ) -> Result<Evidence, ReportError> {
        let keys = keys(store, tenant, now).await?;
        let audit = audit(store, tenant).await?;
        let retention = if config.retention_days > 0 {
            let cutoff = now - i64::from(config.retention_days) * DAY_MS;
            let q = EventQuery { tenant: tenant.to_owned(), until: Some(cutoff), ..EventQuery::default() };
            RetentionEvidence { events_past_retention: store.count_events(&q).await? }
        } else {
            RetentionEvidence::default()
        };
        let mut webhooks = WebhookEvidence::default();
        for w in store.webhooks(Some(tenant)).await? {
            webhooks.total += 1;
            webhooks.signed += u64::from(!w.secret.is_empty());
            webhooks.plain_http += u64::from(w.url.to_ascii_lowercase().starts_with("http://"));
        }
        let incidents = anomaly_stats(store, tenant, now - INCIDENT_WINDOW_DAYS * DAY_MS, now, now).await?;
        let redteam = match redteam {
            Some(r) => Some(r),
            None => store
                .redteam_runs(tenant, now - REDTEAM_WINDOW_DAYS * DAY_MS, now + 1, 1)
                .await?
                .into_iter()
                .next()
                .and_then(|run| serde_json::from_value::<RedTeam>(run.summary).ok()),
        };
        Ok(Evidence {
            tenant: tenant.to_owned(),
            gathered_at: now,
            config,
            keys,
            audit,
            retention,
            webhooks,
            incidents,
            redteam,
        })
    }
}

async fn keys(store: &dyn Store, tenant: &str, now: Millis) -> Result<KeyEvidence, ReportError> {
    let mut k = KeyEvidence::default();
    for key in store.list_keys(Some(tenant)).await? {
        if key.revoked_at.is_some() {
            k.revoked += 1;
            continue;
        }
        k.live += 1;
        for s in &key.scopes {
            *k.by_scope.entry(s.as_str().to_owned()).or_default() += 1;
        }
        if key.scopes.contains(&Scope::Operator) {
            k.operator += 1;
        } else if key.scopes.contains(&Scope::Admin) {
            k.admin += 1;
        }
        if key.scopes == [Scope::Read] {
            k.read_only += 1;
        }
        if now - key.created_at > KEY_ROTATION_DAYS * DAY_MS {
            k.due_for_rotation += 1;
        }
    }
    Ok(k)
}

async fn audit(store: &dyn Store, tenant: &str) -> Result<AuditEvidence, ReportError> {
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let page = store.audit_log(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        entries.extend(page);
    }
    let mut a = AuditEvidence {
        entries: entries.len() as u64,
        head: entries.last().map(|e| e.hash.clone()),
        oldest_at: entries.first().map(|e| e.timestamp),
        ..AuditEvidence::default()
    };
    match verify_chain(&entries) {
        Ok(_) => a.verified = true,
        Err(e) => a.error = Some(e.to_string()),
    }
    for e in entries.iter().filter(|e| e.action == "user.erase") {
        // The erasure's details name the tenant whose user was erased.
        let details: serde_json::Value = serde_json::from_str(&e.details).unwrap_or_default();
        if details.get("tenant").and_then(serde_json::Value::as_str) == Some(tenant) {
            a.erasures += 1;
            a.last_erasure_at = Some(a.last_erasure_at.map_or(e.timestamp, |t| t.max(e.timestamp)));
        }
    }
    Ok(a)
}

/// Anomalies of `tenant` opened in `[start, end)`, with acknowledgement
/// and resolution times read from each anomaly's own timestamps; `now`
/// decides which active ones have waited more than a day.
pub async fn anomaly_stats(
    store: &dyn Store,
    tenant: &str,
    start: Millis,
    end: Millis,
    now: Millis,
) -> Result<AnomalyStats, ReportError> {
    let mut s = AnomalyStats::default();
    let (mut ack_sum, mut ack_n, mut res_sum, mut res_n) = (0i64, 0i64, 0i64, 0i64);
    let mut offset = 0u32;
    loop {
        let q = AnomalyQuery {
            tenant: tenant.to_owned(),
            start: Some(start),
            end: Some(end),
            limit: 1000,
            offset,
            ..AnomalyQuery::default()
        };
        let (rows, _) = store.anomalies(&q).await?;
        if rows.is_empty() {
            break;
        }
        offset = offset.saturating_add(rows.len() as u32);
        for row in &rows {
            s.opened += 1;
            let body: serde_json::Value = serde_json::from_str(&row.body).unwrap_or_default();
            let acked_at = body.get("acknowledged_at").and_then(serde_json::Value::as_i64);
            if let Some(t) = acked_at {
                s.acknowledged += 1;
                ack_sum += (t - row.timestamp).max(0);
                ack_n += 1;
            }
            match row.status.as_str() {
                "resolved" => s.resolved += 1,
                "suppressed" => s.suppressed += 1,
                "active" => {
                    s.active += 1;
                    if now - row.timestamp > DAY_MS {
                        s.unacknowledged_over_day += 1;
                    }
                }
                _ => {}
            }
            if let Some(t) = row.resolved_at {
                res_sum += (t - row.timestamp).max(0);
                res_n += 1;
            }
            let d = s.by_detector.entry(row.detector_id.clone()).or_default();
            d.total += 1;
            match row.severity.as_str() {
                "critical" => d.critical += 1,
                "warning" => d.warning += 1,
                _ => d.info += 1,
            }
            d.open += u64::from(matches!(row.status.as_str(), "active" | "acknowledged"));
        }
        if rows.len() < 1000 {
            break;
        }
    }
    s.mtta_ms = (ack_n > 0).then(|| ack_sum / ack_n);
    s.mttr_ms = (res_n > 0).then(|| res_sum / res_n);
    Ok(s)
}
