//! The posture: each check evaluated once from the [`Evidence`], then each
//! framework's controls (the table in `controls.json`) take the status of
//! the check they map to.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::ReportError;
use crate::evidence::{DAY_MS, Evidence, KEY_ROTATION_DAYS};
use crate::redteam::MAX_ATTACK_SUCCESS_RATE;
use crate::time::{duration, rfc3339};

/// Longest retention, in days, that still counts as storage limitation.
pub const MAX_RETENTION_DAYS: u32 = 365;
/// Most live operator (cross-tenant) keys that still count as least privilege.
pub const MAX_OPERATOR_KEYS: u64 = 2;
/// Longest mean time to resolve anomalies that still counts as handled.
pub const MAX_MTTR_MS: i64 = 3 * DAY_MS;

/// Where a control stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The evidence shows it is in place.
    Met,
    /// The evidence shows it is not, or there is no evidence.
    NotMet,
    /// Nothing it applies to exists here.
    NotApplicable,
}

impl Status {
    /// The status as written in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Met => "met",
            Status::NotMet => "not_met",
            Status::NotApplicable => "not_applicable",
        }
    }
}

/// One check, evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Its id (`retention`, `transport_tls` …).
    pub id: String,
    /// What it checks, in a line.
    pub title: String,
    /// The outcome.
    pub status: Status,
    /// The evidence the outcome rests on, for people.
    pub evidence: String,
}

/// One framework control, evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlResult {
    /// The control's reference in the framework (`Art. 17`, `CC6.7`).
    pub id: String,
    /// What it asks, in our words.
    pub title: String,
    /// The check it maps to.
    pub check: String,
    /// The check's outcome.
    pub status: Status,
    /// The check's evidence.
    pub evidence: String,
}

/// One framework, evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameworkResult {
    /// Its id (`gdpr`, `pci_dss` …).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Controls met.
    pub met: usize,
    /// Controls not met.
    pub not_met: usize,
    /// Controls not applicable.
    pub not_applicable: usize,
    /// Each control.
    pub controls: Vec<ControlResult>,
}

/// The posture of one tenant on one server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Posture {
    /// The tenant.
    pub tenant: String,
    /// When it was evaluated (RFC 3339).
    pub evaluated_at: String,
    /// Each check once.
    pub checks: Vec<CheckResult>,
    /// Each framework asked for, with its controls.
    pub frameworks: Vec<FrameworkResult>,
    /// The evidence the checks read.
    pub evidence: Evidence,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    frameworks: Vec<FrameworkSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrameworkSpec {
    id: String,
    name: String,
    controls: Vec<ControlSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlSpec {
    id: String,
    title: String,
    check: String,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        // The table is part of the crate; the unit tests parse it and
        // check that every control names a check, so this cannot fail in
        // a build whose tests pass.
        serde_json::from_str(include_str!("controls.json")).unwrap_or(Table { frameworks: Vec::new() })
    })
}

/// The ids of the frameworks this build knows, in order.
pub fn framework_ids() -> Vec<&'static str> {
    table().frameworks.iter().map(|f| f.id.as_str()).collect()
}

/// The checks, in the order they are reported: (id, title).
pub const CHECKS: &[(&str, &str)] = &[
    ("retention", "Stored data is purged after a bounded retention period"),
    ("storage_minimisation", "Prompt text is stored redacted or not at all"),
    ("erasure", "A user's records can be erased, and erasures are logged"),
    ("audit_chain", "The admin audit log is hash-chained and verifies"),
    ("least_privilege", "Few cross-tenant keys; the rest scoped to one tenant"),
    ("key_rotation", "No live key older than the rotation period"),
    ("transport_tls", "The listener serves TLS"),
    ("encryption_at_rest", "Stored prompt text is encrypted at rest"),
    ("outbound_integrity", "Webhook deliveries are signed and sent over HTTPS"),
    ("rate_limits", "Per-key rate limits are in force"),
    ("egress", "Outbound HTTP cannot reach internal networks"),
    ("anomaly_detection", "Sentinel anomaly detectors are running"),
    ("incident_response", "Anomalies are acknowledged and resolved in time"),
    ("security_testing", "A red-team run shows a low attack success rate"),
];

fn outcome(id: &str, e: &Evidence) -> (Status, String) {
    use Status::*;
    let c = &e.config;
    match id {
        "retention" => {
            if c.retention_days == 0 {
                (NotMet, "retention_days = 0: stored events are kept forever".into())
            } else if c.retention_days > MAX_RETENTION_DAYS {
                (NotMet, format!("retention_days = {} (more than {MAX_RETENTION_DAYS})", c.retention_days))
            } else if !c.retention_purge_running {
                (NotMet, format!("retention_days = {}, but no purge task runs", c.retention_days))
            } else if e.retention.events_past_retention > 0 {
                (
                    NotMet,
                    format!(
                        "retention_days = {}, but {} events older than that are still stored",
                        c.retention_days, e.retention.events_past_retention
                    ),
                )
            } else {
                (Met, format!("retention_days = {}; hourly purge running; no event older than that", c.retention_days))
            }
        }
        "storage_minimisation" => match c.storage_input.as_str() {
            "none" => (Met, "storage.input = none: analysed text is not stored".into()),
            "redacted" => (Met, "storage.input = redacted: secrets and PII are replaced before storage".into()),
            other => (NotMet, format!("storage.input = {other}: prompts are stored as sent")),
        },
        "erasure" => {
            let last = e.audit.last_erasure_at.map(|t| format!(", the last at {}", rfc3339(t))).unwrap_or_default();
            let logged = format!("{} erasures in the audit log{last}", e.audit.erasures);
            if e.audit.verified {
                (Met, format!("DELETE /api/security/users/{{user_id}}/events erases a user; {logged}"))
            } else {
                (NotMet, format!("{logged}, but the audit chain does not verify, so the record is not trustworthy"))
            }
        }
        "audit_chain" => match (&e.audit.error, e.audit.entries) {
            (Some(err), _) => (NotMet, format!("audit chain broken: {err}")),
            (None, 0) => (NotMet, "the audit log is empty".into()),
            (None, n) => (
                Met,
                format!(
                    "{n} entries verified, head {}; the log is never purged (oldest {})",
                    e.audit.head.as_deref().map_or("-", |h| &h[..h.len().min(16)]),
                    e.audit.oldest_at.map_or_else(|| "-".to_owned(), rfc3339)
                ),
            ),
        },
        "least_privilege" => {
            let k = &e.keys;
            let counts = format!(
                "{} live keys: {} operator, {} admin, {} read-only ({} revoked)",
                k.live, k.operator, k.admin, k.read_only, k.revoked
            );
            if k.operator > MAX_OPERATOR_KEYS {
                (NotMet, format!("{counts}; more than {MAX_OPERATOR_KEYS} cross-tenant operator keys"))
            } else {
                (Met, counts)
            }
        }
        "key_rotation" => match e.keys.due_for_rotation {
            0 => (Met, format!("no live key is older than {KEY_ROTATION_DAYS} days")),
            n => (NotMet, format!("{n} live keys are older than {KEY_ROTATION_DAYS} days")),
        },
        "transport_tls" => {
            if c.tls {
                (Met, format!("the listener on {} serves TLS", c.listen))
            } else {
                (
                    NotMet,
                    format!(
                        "the listener on {} serves plain HTTP (this build has no TLS listener; \
                         a TLS-terminating proxy in front is not visible to this check)",
                        c.listen
                    ),
                )
            }
        }
        "encryption_at_rest" => {
            if c.encryption_at_rest {
                (Met, "stored prompt and completion text is encrypted (AES-256-GCM, [storage.encryption])".into())
            } else {
                (
                    NotMet,
                    format!(
                        "[storage.encryption] is not configured: the {} database stores prompt text \
                         unencrypted (set a key, or use disk or database encryption)",
                        c.database
                    ),
                )
            }
        }
        "outbound_integrity" => {
            let w = &e.webhooks;
            if w.total == 0 {
                (NotApplicable, "no webhook subscriptions".into())
            } else if w.signed < w.total || w.plain_http > 0 {
                (
                    NotMet,
                    format!(
                        "{} webhooks: {} unsigned, {} over plain http://",
                        w.total,
                        w.total - w.signed,
                        w.plain_http
                    ),
                )
            } else {
                (Met, format!("{} webhooks, all HMAC-signed and over https://", w.total))
            }
        }
        "rate_limits" => {
            if c.rate_limit_per_sec > 0.0 {
                (Met, format!("limits.rate_per_sec = {} per key", c.rate_limit_per_sec))
            } else {
                (NotMet, "limits.rate_per_sec = 0: no per-key rate limit".into())
            }
        }
        "egress" => {
            let open = c.egress_allow.iter().filter(|a| matches!(a.trim(), "0.0.0.0/0" | "::/0")).count();
            if open > 0 {
                (NotMet, format!("egress.allow opens every address: {}", c.egress_allow.join(", ")))
            } else if c.egress_allow.is_empty() {
                (Met, "only public addresses reachable; egress.allow is empty".into())
            } else {
                (Met, format!("only public addresses and egress.allow ({}) reachable", c.egress_allow.join(", ")))
            }
        }
        "anomaly_detection" => match c.detectors_enabled {
            0 => (NotMet, "no Sentinel detector is enabled (sentinel.detectors names none)".into()),
            n => (Met, format!("{n} Sentinel detectors enabled")),
        },
        "incident_response" => {
            let s = &e.incidents;
            let times = format!(
                "{} anomalies in the last {} days; MTTA {}, MTTR {}",
                s.opened,
                crate::evidence::INCIDENT_WINDOW_DAYS,
                s.mtta_ms.map_or_else(|| "-".to_owned(), duration),
                s.mttr_ms.map_or_else(|| "-".to_owned(), duration)
            );
            if s.opened == 0 {
                (NotApplicable, times)
            } else if s.unacknowledged_over_day > 0 {
                (NotMet, format!("{times}; {} active for more than a day unacknowledged", s.unacknowledged_over_day))
            } else if s.mttr_ms.is_some_and(|m| m > MAX_MTTR_MS) {
                (NotMet, format!("{times}; MTTR above {}", duration(MAX_MTTR_MS)))
            } else {
                (Met, times)
            }
        }
        "security_testing" => match &e.redteam {
            None => (
                NotMet,
                "no red-team run in the last 90 days (llmsec redteam --upload, or llmsec report --redteam REPORT.json)"
                    .into(),
            ),
            Some(r) if r.overall.trials == 0 => (NotMet, format!("red-team run against {} judged no trial", r.target)),
            Some(r) => {
                let figures = format!(
                    "red-team run against {}: {} of {} attacks succeeded ({:.1}%)",
                    r.target,
                    r.overall.successes,
                    r.overall.trials,
                    r.overall.rate * 100.0
                );
                if r.overall.rate > MAX_ATTACK_SUCCESS_RATE {
                    (NotMet, format!("{figures}; above {:.0}%", MAX_ATTACK_SUCCESS_RATE * 100.0))
                } else {
                    (Met, figures)
                }
            }
        },
        _ => (NotMet, format!("unknown check {id}")),
    }
}

/// Evaluates every check.
pub fn checks(e: &Evidence) -> Vec<CheckResult> {
    CHECKS
        .iter()
        .map(|(id, title)| {
            let (status, evidence) = outcome(id, e);
            CheckResult { id: (*id).to_owned(), title: (*title).to_owned(), status, evidence }
        })
        .collect()
}

/// Evaluates the posture for the frameworks named (all when `None`); an
/// unknown framework is an error naming it and the known ones.
pub fn evaluate(e: Evidence, frameworks: Option<&[String]>) -> Result<Posture, ReportError> {
    let known = framework_ids();
    if let Some(list) = frameworks
        && let Some(bad) = list.iter().find(|f| !known.contains(&f.as_str()))
    {
        return Err(ReportError::UnknownFramework { name: bad.clone(), known: known.join(", ") });
    }
    let checks = checks(&e);
    let by_id: BTreeMap<&str, &CheckResult> = checks.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut out = Vec::new();
    for f in &table().frameworks {
        if frameworks.is_some_and(|list| !list.contains(&f.id)) {
            continue;
        }
        let controls: Vec<ControlResult> = f
            .controls
            .iter()
            .map(|c| {
                let (status, evidence) = match by_id.get(c.check.as_str()) {
                    Some(r) => (r.status, r.evidence.clone()),
                    None => (Status::NotMet, format!("unknown check {}", c.check)),
                };
                ControlResult { id: c.id.clone(), title: c.title.clone(), check: c.check.clone(), status, evidence }
            })
            .collect();
        let count = |s: Status| controls.iter().filter(|c| c.status == s).count();
        out.push(FrameworkResult {
            id: f.id.clone(),
            name: f.name.clone(),
            met: count(Status::Met),
            not_met: count(Status::NotMet),
            not_applicable: count(Status::NotApplicable),
            controls,
        });
    }
    Ok(Posture { tenant: e.tenant.clone(), evaluated_at: rfc3339(e.gathered_at), checks, frameworks: out, evidence: e })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::*;
    use crate::redteam::{RedTeam, RedTeamRate};

    /// Evidence of a well-kept deployment: every check met or not applicable.
    fn good() -> Evidence {
        Evidence {
            tenant: "acme".into(),
            gathered_at: 1_700_000_000_000,
            config: Configuration {
                listen: "10.0.0.5:8443".into(),
                tls: true,
                encryption_at_rest: true,
                storage_input: "redacted".into(),
                retention_days: 30,
                retention_purge_running: true,
                rate_limit_per_sec: 50.0,
                egress_allow: vec![],
                detectors_enabled: 3,
                database: "postgres".into(),
            },
            keys: KeyEvidence { live: 3, operator: 1, admin: 1, read_only: 1, ..KeyEvidence::default() },
            audit: AuditEvidence {
                entries: 4,
                verified: true,
                head: Some("ab".repeat(32)),
                oldest_at: Some(1_690_000_000_000),
                erasures: 1,
                last_erasure_at: Some(1_699_000_000_000),
                ..AuditEvidence::default()
            },
            retention: RetentionEvidence::default(),
            webhooks: WebhookEvidence { total: 1, signed: 1, plain_http: 0 },
            incidents: AnomalyStats {
                opened: 2,
                acknowledged: 2,
                resolved: 2,
                mtta_ms: Some(60_000),
                mttr_ms: Some(3_600_000),
                ..AnomalyStats::default()
            },
            redteam: Some(RedTeam {
                target: "engine".into(),
                trials: 100,
                errors: 0,
                overall: RedTeamRate { trials: 100, successes: 2, rate: 0.02 },
                by_category: Default::default(),
            }),
        }
    }

    fn status(id: &str, e: &Evidence) -> Status {
        outcome(id, e).0
    }

    #[test]
    fn a_well_kept_deployment_meets_every_check() {
        let e = good();
        for (id, _) in CHECKS {
            assert_eq!(status(id, &e), Status::Met, "{id}: {}", outcome(id, &e).1);
        }
    }

    /// Each case: the check, a change that takes its evidence away, and
    /// the status that follows.
    #[test]
    fn each_check_turns_on_its_evidence() {
        type Change = fn(&mut Evidence);
        let cases: &[(&str, Change, Status)] = &[
            ("retention", |e| e.config.retention_days = 0, Status::NotMet),
            ("retention", |e| e.config.retention_days = 400, Status::NotMet),
            ("retention", |e| e.config.retention_purge_running = false, Status::NotMet),
            ("retention", |e| e.retention.events_past_retention = 7, Status::NotMet),
            ("storage_minimisation", |e| e.config.storage_input = "full".into(), Status::NotMet),
            ("storage_minimisation", |e| e.config.storage_input = "none".into(), Status::Met),
            ("erasure", |e| e.audit.verified = false, Status::NotMet),
            ("erasure", |e| e.audit.erasures = 0, Status::Met),
            ("audit_chain", |e| e.audit.error = Some("audit entry 3: contents do not match".into()), Status::NotMet),
            ("audit_chain", |e| e.audit.entries = 0, Status::NotMet),
            ("least_privilege", |e| e.keys.operator = 3, Status::NotMet),
            ("key_rotation", |e| e.keys.due_for_rotation = 1, Status::NotMet),
            ("transport_tls", |e| e.config.tls = false, Status::NotMet),
            ("encryption_at_rest", |e| e.config.encryption_at_rest = false, Status::NotMet),
            ("outbound_integrity", |e| e.webhooks = WebhookEvidence::default(), Status::NotApplicable),
            ("outbound_integrity", |e| e.webhooks.plain_http = 1, Status::NotMet),
            ("outbound_integrity", |e| e.webhooks.signed = 0, Status::NotMet),
            ("rate_limits", |e| e.config.rate_limit_per_sec = 0.0, Status::NotMet),
            ("egress", |e| e.config.egress_allow = vec!["10.0.0.0/8".into()], Status::Met),
            ("egress", |e| e.config.egress_allow = vec!["0.0.0.0/0".into()], Status::NotMet),
            ("anomaly_detection", |e| e.config.detectors_enabled = 0, Status::NotMet),
            ("incident_response", |e| e.incidents = AnomalyStats::default(), Status::NotApplicable),
            ("incident_response", |e| e.incidents.unacknowledged_over_day = 1, Status::NotMet),
            ("incident_response", |e| e.incidents.mttr_ms = Some(4 * DAY_MS), Status::NotMet),
            ("security_testing", |e| e.redteam = None, Status::NotMet),
            (
                "security_testing",
                |e| {
                    if let Some(r) = &mut e.redteam {
                        r.overall = RedTeamRate { trials: 10, successes: 5, rate: 0.5 };
                    }
                },
                Status::NotMet,
            ),
        ];
        for (id, change, want) in cases {
            let mut e = good();
            change(&mut e);
            let (got, why) = outcome(id, &e);
            assert_eq!(got, *want, "{id}: {why}");
            assert!(!why.is_empty());
        }
    }

    #[test]
    fn encryption_at_rest_reads_the_configured_setting() {
        let mut e = good();
        e.config.encryption_at_rest = false;
        assert!(outcome("encryption_at_rest", &e).1.contains("[storage.encryption] is not configured"));
        e.config.encryption_at_rest = true;
        assert_eq!(outcome("encryption_at_rest", &e).0, Status::Met);
    }

    #[test]
    fn every_control_maps_to_a_known_check_and_every_framework_is_there() {
        let t: Table = serde_json::from_str(include_str!("controls.json")).expect("controls.json parses");
        let ids: Vec<&str> = t.frameworks.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["gdpr", "ccpa", "hipaa", "sox", "pci_dss", "iso27001", "nist_csf", "soc2"]);
        for f in &t.frameworks {
            assert!(!f.controls.is_empty(), "{}", f.id);
            for c in &f.controls {
                assert!(CHECKS.iter().any(|(id, _)| *id == c.check), "{} {}: unknown check {}", f.id, c.id, c.check);
            }
        }
        // Every check is used by some control.
        for (id, _) in CHECKS {
            assert!(t.frameworks.iter().flat_map(|f| &f.controls).any(|c| c.check == *id), "{id} unused");
        }
    }

    #[test]
    fn frameworks_are_filtered_and_unknown_ones_named() {
        let p = evaluate(good(), Some(&["gdpr".into(), "soc2".into()])).expect("evaluates");
        assert_eq!(p.frameworks.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), ["gdpr", "soc2"]);
        let gdpr = &p.frameworks[0];
        assert_eq!(gdpr.met + gdpr.not_met + gdpr.not_applicable, gdpr.controls.len());
        assert_eq!(gdpr.not_met, 0);
        match evaluate(good(), Some(&["gpdr".into()])) {
            Err(ReportError::UnknownFramework { name, known }) => {
                assert_eq!(name, "gpdr");
                assert!(known.contains("gdpr"));
            }
            other => panic!("expected an unknown framework, got {other:?}"),
        }
        let mut bad = good();
        bad.config.tls = false;
        let p = evaluate(bad, None).expect("evaluates");
        assert_eq!(p.frameworks.len(), 8);
        let hipaa = p.frameworks.iter().find(|f| f.id == "hipaa").expect("hipaa");
        let c = hipaa.controls.iter().find(|c| c.id == "164.312(e)(1)").expect("transmission security");
        assert_eq!(c.status, Status::NotMet);
    }
}
