//! The record of processing (GDPR Art. 30 style) of one tenant: for each
//! kind of record the server stores, what it holds, why (the `[privacy]`
//! purpose and lawful basis), for how long (the retention actually
//! enforced), who receives copies (webhooks, sinks, alert receivers,
//! brokers, exports), and the security measures in force, including
//! whether stored text is encrypted at rest. Built from the running
//! configuration and the tenant's webhook subscriptions; served at
//! `GET /api/v1/privacy/processing` and written by `llmsec report processing`.

use llmsec_store::{Millis, Store, Webhook};
use serde::Serialize;

use super::{Caller, ServiceError, Services};
use crate::config::{InputRetention, ServerConfig};
use crate::privacy::STORED_KINDS;

/// The record of processing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessingRecord {
    /// When it was made (RFC 3339).
    pub generated_at: String,
    /// The tenant it describes.
    pub tenant: String,
    /// The controller, as `[privacy] controller` names it.
    pub controller: Option<String>,
    /// One entry per stored kind of record.
    pub activities: Vec<Activity>,
    /// Who receives copies of stored data.
    pub recipients: Vec<Recipient>,
    /// How the data is protected.
    pub security_measures: SecurityMeasures,
}

/// One kind of stored record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Activity {
    /// The stored kind (`security_events`, `telemetry` …).
    pub kind: &'static str,
    /// The declared purpose tag; `None` when none is declared.
    pub purpose: Option<String>,
    /// The declared lawful basis.
    pub lawful_basis: Option<String>,
    /// The purpose's description, when given.
    pub description: Option<String>,
    /// Whose data it is.
    pub data_subjects: &'static [&'static str],
    /// What it holds.
    pub data_categories: Vec<String>,
    /// How long it is kept, in words.
    pub retention: String,
    /// The retention in days the hourly purge enforces; `None`: kept until erased.
    pub retention_days: Option<u32>,
    /// Which recipients (by `kind:name`) receive copies of it.
    pub recipients: Vec<String>,
}

/// A receiver of copies of stored data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    /// `webhook`, `sink`, `receiver`, `incident_manager`, `kafka`, `s3_export` or `otel`.
    pub kind: &'static str,
    /// Its name or id.
    pub name: String,
    /// Where it is, without credentials, path or query (`https://host:port`).
    pub destination: String,
    /// Which stored kinds it receives.
    pub receives: Vec<&'static str>,
}

/// The security measures in force.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecurityMeasures {
    /// Whether stored prompt and completion text is encrypted.
    pub encryption_at_rest: bool,
    /// The cipher, when on.
    pub encryption_algorithm: Option<&'static str>,
    /// How analysed text is stored: `none`, `redacted` or `full`.
    pub stored_text: &'static str,
    /// Further measures, in words.
    pub measures: Vec<&'static str>,
}

fn stored_text(c: &ServerConfig) -> &'static str {
    match c.storage.input {
        InputRetention::None => "none",
        InputRetention::Redacted => "redacted",
        InputRetention::Full => "full",
    }
}

/// `scheme://host[:port]` of a URL: no credentials, path or query.
fn destination(url: &str) -> String {
    match url::Url::parse(url.trim()) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{}://{h}:{p}", u.scheme()),
            (Some(h), None) => format!("{}://{h}", u.scheme()),
            _ => format!("{}:", u.scheme()),
        },
        Err(_) => "(not a URL)".into(),
    }
}

/// The recipients of `tenant`'s data under `config`, with its `webhooks`.
fn recipients(config: &ServerConfig, tenant: &str, webhooks: &[Webhook]) -> Vec<Recipient> {
    let mut out = Vec::new();
    for w in webhooks.iter().filter(|w| w.tenant == tenant) {
        out.push(Recipient {
            kind: "webhook",
            name: w.id.clone(),
            destination: destination(&w.url),
            receives: vec!["security_events", "deliveries"],
        });
    }
    for s in config.sinks.iter().filter(|s| s.tenants.is_empty() || s.tenants.iter().any(|t| t == tenant)) {
        let kind = serde_json::to_value(&s.kind).ok().and_then(|v| v["kind"].as_str().map(str::to_owned));
        out.push(Recipient {
            kind: "sink",
            name: s.name.clone(),
            destination: kind.unwrap_or_else(|| "sink".into()),
            receives: vec!["security_events", "anomalies", "deliveries"],
        });
    }
    for r in &config.sentinel.receivers {
        let kind = serde_json::to_value(r.kind).ok().and_then(|v| v.as_str().map(str::to_owned));
        let destination = match (&r.url, &r.smtp_host) {
            (Some(u), _) => destination(u),
            (None, Some(h)) => format!("smtp://{h}"),
            (None, None) => kind.unwrap_or_default(),
        };
        out.push(Recipient { kind: "receiver", name: r.name.clone(), destination, receives: vec!["anomalies"] });
    }
    if let Some(u) = &config.sentinel.incidents_url {
        out.push(Recipient {
            kind: "incident_manager",
            name: "incidents".into(),
            destination: destination(u),
            receives: vec!["anomalies"],
        });
    }
    if let Some(sink) = config.kafka.as_ref().and_then(|k| k.sink.as_ref().map(|s| (k, s))) {
        let (k, s) = sink;
        let mut receives = Vec::new();
        if s.security_events.is_some() {
            receives.push("security_events");
        }
        if s.anomalies.is_some() || s.anomaly_changes.is_some() {
            receives.push("anomalies");
        }
        out.push(Recipient { kind: "kafka", name: k.client_id.clone(), destination: k.brokers.clone(), receives });
    }
    if let Some(s3) = &config.export.s3 {
        out.push(Recipient {
            kind: "s3_export",
            name: s3.bucket.clone(),
            destination: destination(&s3.endpoint),
            receives: vec!["security_events", "anomalies"],
        });
    }
    if let Some(o) = &config.otel {
        out.push(Recipient {
            kind: "otel",
            name: o.service_name.clone(),
            destination: destination(&o.endpoint),
            receives: vec![],
        });
    }
    out
}

/// The record of processing of `tenant` at `now`.
pub fn record(config: &ServerConfig, tenant: &str, webhooks: &[Webhook], now: Millis) -> ProcessingRecord {
    let recipients = recipients(config, tenant, webhooks);
    let days = config.storage.retention_days;
    let text = stored_text(config);
    let retention = |what: &str| {
        if days == 0 {
            format!("kept until erased ({what}; storage.retention_days = 0)")
        } else {
            format!("{days} days {what}")
        }
    };
    let activities = STORED_KINDS
        .iter()
        .map(|&kind| {
            let p = config.privacy.purpose(kind);
            let (subjects, categories, retention_text, retention_days): (
                &'static [&'static str],
                Vec<String>,
                String,
                Option<u32>,
            ) = match kind {
                "security_events" => (
                    &["end users of the protected LLM applications"],
                    vec![
                        format!("analysed prompts, completions and context ({text})"),
                        "detected threats, confidence and verdict".into(),
                        "user id and session id".into(),
                    ],
                    retention("after the event"),
                    (days > 0).then_some(days),
                ),
                "telemetry" => (
                    &["end users of the protected LLM applications"],
                    vec![
                        format!("prompt, completion and error text ({text})"),
                        "model, tokens, cost, latency and status".into(),
                        "user id, session id, IP address and role".into(),
                    ],
                    retention("after receipt, once run through the detectors"),
                    (days > 0).then_some(days),
                ),
                "anomalies" => (
                    &["end users, sessions and applications flagged by detectors"],
                    vec!["detector findings, scores and the entities they name".into()],
                    retention("after resolution (open anomalies are kept)"),
                    (days > 0).then_some(days),
                ),
                "deliveries" => (
                    &["end users named in delivered events"],
                    vec!["copies of events and anomalies queued for webhooks and sinks".into()],
                    retention("after delivery or giving up"),
                    (days > 0).then_some(days),
                ),
                "quarantine" => (
                    &["end users whose requests or completions were held for review"],
                    vec![
                        "held prompt or completion text, whole (what a reviewer reads and a release hands back)".into(),
                        "findings without the text, user id, session id and the reviewer's decision".into(),
                    ],
                    retention("after being held, once decided (pending items wait for a decision or expiry)"),
                    (days > 0).then_some(days),
                ),
                _ => (
                    &["operators and administrators"],
                    vec!["administrative actions, the acting key id and their targets".into()],
                    "kept (hash-chained: removing entries would break the chain)".into(),
                    None,
                ),
            };
            let receivers = recipients
                .iter()
                .filter(|r| r.receives.contains(&kind))
                .map(|r| format!("{}:{}", r.kind, r.name))
                .collect();
            Activity {
                kind,
                purpose: p.map(|p| p.purpose.clone()),
                lawful_basis: p.map(|p| p.lawful_basis.clone()),
                description: p.and_then(|p| p.description.clone()),
                data_subjects: subjects,
                data_categories: categories,
                retention: retention_text,
                retention_days,
                recipients: receivers,
            }
        })
        .collect();
    let encrypted = config.storage.encryption.is_some();
    ProcessingRecord {
        generated_at: crate::time::rfc3339(now).unwrap_or_default(),
        tenant: tenant.to_owned(),
        controller: config.privacy.controller.clone(),
        activities,
        recipients,
        security_measures: SecurityMeasures {
            encryption_at_rest: encrypted,
            encryption_algorithm: encrypted.then_some("AES-256-GCM"),
            stored_text: text,
            measures: vec![
                "API keys stored as SHA-256 hashes, limited by scope and tenant",
                "every read of tenant data filtered by the caller's tenant",
                "hash-chained, append-only audit log of administrative changes",
                "erasure by user id and hourly retention purge",
                "SQLite database file owner-only (0600), deleted rows overwritten",
                "webhook deliveries signed with HMAC-SHA256",
            ],
        },
    }
}

/// The record of `tenant` (the caller's own, or for `operator` the one named).
pub async fn processing(
    svc: &Services,
    caller: &Caller,
    tenant: Option<&str>,
) -> Result<ProcessingRecord, ServiceError> {
    let tenant = super::tenants::administered_tenant(caller, tenant)?;
    let webhooks = svc.store.webhooks(Some(&tenant)).await?;
    Ok(record(&svc.config, &tenant, &webhooks, llmsec_store::now_millis()))
}

/// The record of `tenant` read from `store` (for `llmsec report processing`).
pub async fn processing_from(
    config: &ServerConfig,
    store: &dyn Store,
    tenant: &str,
) -> Result<ProcessingRecord, ServiceError> {
    let webhooks = store.webhooks(Some(tenant)).await?;
    Ok(record(config, tenant, &webhooks, llmsec_store::now_millis()))
}

/// The record as Markdown, for people.
pub fn markdown(r: &ProcessingRecord) -> String {
    use std::fmt::Write as _;
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = String::new();
    let _ = writeln!(out, "# Record of processing: tenant {}\n", cell(&r.tenant));
    let _ = writeln!(out, "Generated {}.", r.generated_at);
    if let Some(c) = &r.controller {
        let _ = writeln!(out, "Controller: {}.", cell(c));
    }
    let _ =
        writeln!(out, "\n| Kind | Purpose | Lawful basis | Data | Retention | Recipients |\n|---|---|---|---|---|---|");
    for a in &r.activities {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            a.kind,
            cell(a.purpose.as_deref().unwrap_or("(none declared)")),
            cell(a.lawful_basis.as_deref().unwrap_or("-")),
            cell(&a.data_categories.join("; ")),
            cell(&a.retention),
            cell(&if a.recipients.is_empty() { "-".to_owned() } else { a.recipients.join(", ") }),
        );
    }
    let _ = writeln!(out, "\n## Recipients\n");
    if r.recipients.is_empty() {
        let _ = writeln!(out, "None configured.");
    }
    for x in &r.recipients {
        let _ = writeln!(
            out,
            "- {} `{}`: {} (receives {})",
            x.kind,
            cell(&x.name),
            cell(&x.destination),
            x.receives.join(", ")
        );
    }
    let m = &r.security_measures;
    let _ = writeln!(out, "\n## Security measures\n");
    let _ = writeln!(
        out,
        "- Encryption at rest of stored text: {}",
        if m.encryption_at_rest { "on (AES-256-GCM)" } else { "off" }
    );
    let _ = writeln!(out, "- Stored analysed text: {}", m.stored_text);
    for line in &m.measures {
        let _ = writeln!(out, "- {line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::Purpose;

    #[test]
    fn lists_purposes_retention_recipients_and_encryption() {
        let mut c = ServerConfig::default();
        c.privacy.controller = Some("Example Ltd".into());
        c.privacy.purposes.insert(
            "security_events".into(),
            Purpose {
                purpose: "security_monitoring".into(),
                lawful_basis: "legitimate_interests".into(),
                description: None,
            },
        );
        c.sentinel.incidents_url = Some("https://user:pw@incidents.example:8443/api?token=x".into());
        let hooks = [
            Webhook {
                id: "wh_1".into(),
                tenant: "acme".into(),
                url: "https://hooks.example/T0/secret-path".into(),
                secret: "s".repeat(16),
                events: vec![],
                created_at: 0,
            },
            Webhook {
                id: "wh_other".into(),
                tenant: "other".into(),
                url: "https://other.example/".into(),
                secret: "s".repeat(16),
                events: vec![],
                created_at: 0,
            },
        ];
        let r = record(&c, "acme", &hooks, 0);
        assert_eq!(r.activities.len(), STORED_KINDS.len());
        let ev = &r.activities[0];
        assert_eq!((ev.kind, ev.purpose.as_deref()), ("security_events", Some("security_monitoring")));
        assert_eq!(ev.retention_days, Some(30));
        assert_eq!(ev.recipients, ["webhook:wh_1"]);
        assert_eq!(r.activities[1].purpose, None);
        let audit = r.activities.iter().find(|a| a.kind == "audit_log").unwrap();
        assert_eq!(audit.retention_days, None);
        let dests: Vec<&str> = r.recipients.iter().map(|x| x.destination.as_str()).collect();
        assert_eq!(dests, ["https://hooks.example", "https://incidents.example:8443"]);
        assert!(!r.security_measures.encryption_at_rest);
        let md = markdown(&r);
        assert!(md.contains("| security_events | security_monitoring | legitimate_interests |"), "{md}");
        assert!(!md.contains("secret-path") && !md.contains("pw") && !md.contains("other.example"), "{md}");
        c.storage.encryption = Some(llmsec_store::EncryptionConfig { key_env: Some("K".into()), ..Default::default() });
        c.storage.retention_days = 0;
        let r = record(&c, "acme", &[], 0);
        assert_eq!(r.security_measures.encryption_algorithm, Some("AES-256-GCM"));
        assert_eq!(r.activities[0].retention_days, None);
        assert!(r.activities[0].retention.contains("kept until erased"));
    }
}
