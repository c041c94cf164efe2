//! Operator sinks: SIEM, SOAR and observability systems that the server's
//! outbox delivers security events and anomaly changes to (`[[sinks]]` in
//! the server's configuration).
//!
//! A sink is an [`OutboxPublisher`]: the server queues one outbox row per
//! event and sink (target `sink:<name>`), and its delivery worker hands the
//! row's JSON envelope ([`event::SinkEvent`]) to the publisher built here
//! from the sink's [`SinkConfig`], which speaks the vendor's wire format:
//!
//! - [`splunk`]: Splunk HTTP Event Collector (`/services/collector/event`);
//! - [`elastic`]: Elasticsearch / OpenSearch `_bulk` with ECS documents;
//! - [`soar`]: Splunk SOAR (Phantom) containers and artifacts;
//! - [`grafana`]: Grafana annotations;
//! - [`syslog`]: RFC 5424 over TCP (RFC 6587 octet counting) or UDP;
//! - [`brokers`]: RabbitMQ and NATS JetStream (features `amqp`, `nats`).
//!
//! A kind is its config type implementing [`KindConfig`] (its checks, what
//! it can take, its constructor), one variant of [`SinkKind`] and one arm of
//! [`SinkKind::config`]; nothing else names kinds.
//! The HTTP kinds send with the client they are given (the server's, whose
//! resolver enforces its egress policy); syslog resolves its address and
//! asks the given [`AddressPolicy`] which addresses it may connect to.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::publish::OutboxPublisher;

pub mod brokers;
pub mod elastic;
pub mod event;
pub mod grafana;
pub mod soar;
pub mod splunk;
pub mod syslog;

/// The event names a sink can receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventName {
    /// A stored analysis (its verdict, confidence and threats).
    #[serde(rename = "security_event")]
    SecurityEvent,
    /// A new anomaly.
    #[serde(rename = "anomaly.detected")]
    AnomalyDetected,
    /// An anomaly acknowledged.
    #[serde(rename = "anomaly.acknowledged")]
    AnomalyAcknowledged,
    /// An anomaly resolved (by hand or after its quiet period).
    #[serde(rename = "anomaly.resolved")]
    AnomalyResolved,
    /// An anomaly suppressed.
    #[serde(rename = "anomaly.suppressed")]
    AnomalySuppressed,
}

impl EventName {
    /// Every event name.
    pub const ALL: [EventName; 5] = [
        EventName::SecurityEvent,
        EventName::AnomalyDetected,
        EventName::AnomalyAcknowledged,
        EventName::AnomalyResolved,
        EventName::AnomalySuppressed,
    ];

    /// The name as the outbox and the configuration write it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::SecurityEvent => "security_event",
            EventName::AnomalyDetected => "anomaly.detected",
            EventName::AnomalyAcknowledged => "anomaly.acknowledged",
            EventName::AnomalyResolved => "anomaly.resolved",
            EventName::AnomalySuppressed => "anomaly.suppressed",
        }
    }

    /// The name of `s`, if it is one.
    pub fn parse(s: &str) -> Option<EventName> {
        EventName::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// Whether it is an anomaly change.
    pub fn is_anomaly(self) -> bool {
        self != EventName::SecurityEvent
    }
}

/// One severity scale for security events and anomalies. A security
/// event's level is its worst threat's severity (none without threats); an
/// anomaly's maps `info` → low, `warning` → medium, `critical` → critical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Minor.
    Low,
    /// Moderate.
    Medium,
    /// Significant.
    High,
    /// Act now.
    Critical,
}

impl Level {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }

    /// The level of a threat severity as the engine writes it (`low` … `critical`).
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "low" => Some(Level::Low),
            "medium" => Some(Level::Medium),
            "high" => Some(Level::High),
            "critical" => Some(Level::Critical),
            _ => None,
        }
    }

    /// The worst severity of a JSON array of threats (each with a `severity`).
    pub fn of_threats(threats: &Value) -> Option<Level> {
        threats
            .as_array()?
            .iter()
            .filter_map(|t| t.get("severity").and_then(Value::as_str).and_then(Level::parse))
            .max()
    }

    /// The level of an anomaly's severity.
    pub fn of_anomaly(s: llm_sentinel::Severity) -> Level {
        match s {
            llm_sentinel::Severity::Info => Level::Low,
            llm_sentinel::Severity::Warning => Level::Medium,
            llm_sentinel::Severity::Critical => Level::Critical,
        }
    }
}

/// An analysis verdict, for [`SinkConfig::verdicts`]: the engine's own.
pub use llm_security::Verdict;

/// What decides whether a sink receives an event: the facts the queueing
/// side knows without building the delivery.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The event.
    pub event: EventName,
    /// Its tenant.
    pub tenant: &'a str,
    /// Its level (a security event without threats has none).
    pub level: Option<Level>,
    /// A security event's verdict (`allow`, `sanitize`, `block`); none for anomalies.
    pub verdict: Option<&'a str>,
}

/// One `[[sinks]]` entry: which events it receives, and the kind with its
/// own settings (`kind = "splunk_hec"`, …, next to the common keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawSink")]
pub struct SinkConfig {
    /// Unique among the sinks; deliveries name it (`sink:<name>`).
    pub name: String,
    /// The events it receives; empty: every event its kind takes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventName>,
    /// The tenants whose events it receives; empty: every tenant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
    /// Only events at this level or above (a security event without threats has none, so is left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<Level>,
    /// Only security events with these verdicts; empty: any verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verdicts: Vec<Verdict>,
    /// The kind and its settings.
    #[serde(flatten)]
    pub kind: SinkKind,
}

/// The kinds of sink, each with its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SinkKind {
    /// Splunk HTTP Event Collector.
    SplunkHec(splunk::SplunkHecConfig),
    /// Elasticsearch / OpenSearch bulk API with ECS documents.
    Elastic(elastic::ElasticConfig),
    /// Splunk SOAR (Phantom) containers and artifacts.
    Soar(soar::SoarConfig),
    /// Grafana annotations.
    Grafana(grafana::GrafanaConfig),
    /// RFC 5424 syslog over TCP or UDP.
    Syslog(syslog::SyslogConfig),
    /// RabbitMQ (AMQP 0-9-1), publisher confirms (feature `amqp`).
    Rabbitmq(crate::amqp::AmqpSinkConfig),
    /// NATS JetStream, acknowledged once stored (feature `nats`).
    Nats(crate::nats::NatsSinkConfig),
}

/// How `[[sinks]]` entries are read: the common keys, then the rest handed
/// to the kind (which names any key it does not know).
#[derive(Deserialize)]
struct RawSink {
    name: String,
    #[serde(default)]
    events: Vec<EventName>,
    #[serde(default)]
    tenants: Vec<String>,
    #[serde(default)]
    min_severity: Option<Level>,
    #[serde(default)]
    verdicts: Vec<Verdict>,
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

impl TryFrom<RawSink> for SinkConfig {
    type Error = String;

    fn try_from(raw: RawSink) -> Result<SinkConfig, String> {
        if !raw.rest.contains_key("kind") {
            return Err(format!("sink {:?}: missing field `kind`", raw.name));
        }
        let kind = serde_json::from_value::<SinkKind>(Value::Object(raw.rest))
            .map_err(|e| format!("sink {:?}: {e}", raw.name))?;
        Ok(SinkConfig {
            name: raw.name,
            events: raw.events,
            tenants: raw.tenants,
            min_severity: raw.min_severity,
            verdicts: raw.verdicts,
            kind,
        })
    }
}

/// A setting that is wrong: the field (relative to the sink) and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field, e.g. `url` or `token_env`.
    pub field: String,
    /// Why.
    pub message: String,
}

impl FieldError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError { field: field.into(), message: message.into() }
    }
}

/// What every kind's config provides: its checks, the events and verdicts
/// it can take, and the constructor of its publisher.
pub trait KindConfig: std::fmt::Debug {
    /// The `kind` as configured.
    fn kind_name(&self) -> &'static str;
    /// Checks the settings (not the secrets: [`build`](Self::build) reads those).
    fn validate(&self) -> Result<(), FieldError>;
    /// The events the kind can take.
    fn events(&self) -> &'static [EventName] {
        &EventName::ALL
    }
    /// The verdicts of the security events the kind can take.
    fn verdicts(&self) -> &'static [Verdict] {
        &[Verdict::Allow, Verdict::Sanitize, Verdict::Block]
    }
    /// The URL it sends to, for the caller's egress check (none for kinds that open their own sockets).
    fn url(&self) -> Option<&str> {
        None
    }
    /// The publisher; secrets are read now.
    fn build(&self, ctx: &BuildContext<'_>) -> Result<Arc<dyn OutboxPublisher>, FieldError>;
}

impl SinkKind {
    /// The kind's config.
    pub fn config(&self) -> &dyn KindConfig {
        match self {
            SinkKind::SplunkHec(c) => c,
            SinkKind::Elastic(c) => c,
            SinkKind::Soar(c) => c,
            SinkKind::Grafana(c) => c,
            SinkKind::Syslog(c) => c,
            SinkKind::Rabbitmq(c) => c,
            SinkKind::Nats(c) => c,
        }
    }

    /// The publisher for this kind. Secrets are read now.
    pub fn build(&self, ctx: &BuildContext<'_>) -> Result<Arc<dyn OutboxPublisher>, FieldError> {
        self.config().build(ctx)
    }
}

impl SinkConfig {
    /// Checks the settings (not the secrets: those are read by [`SinkKind::build`]).
    pub fn validate(&self) -> Result<(), FieldError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self.name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !name_ok {
            return Err(FieldError::new("name", "must be 1-64 letters, digits, '-', '_' or '.'"));
        }
        let kind = self.kind.config();
        for (i, e) in self.events.iter().enumerate() {
            if !kind.events().contains(e) {
                let takes: Vec<_> = kind.events().iter().map(|e| e.as_str()).collect();
                return Err(FieldError::new(
                    format!("events[{i}]"),
                    format!("{} sinks do not take {} (they take {})", kind.kind_name(), e.as_str(), takes.join(", ")),
                ));
            }
        }
        if let Some(i) = self.tenants.iter().position(|t| t.trim().is_empty()) {
            return Err(FieldError::new(format!("tenants[{i}]"), "must not be empty"));
        }
        for (i, v) in self.verdicts.iter().enumerate() {
            if !kind.verdicts().contains(v) {
                let takes: Vec<_> = kind.verdicts().iter().map(|v| v.as_str()).collect();
                return Err(FieldError::new(
                    format!("verdicts[{i}]"),
                    format!("{} sinks take security events with verdict {} only", kind.kind_name(), takes.join(", ")),
                ));
            }
        }
        kind.validate()
    }

    /// The kind's name as configured.
    pub fn kind_name(&self) -> &'static str {
        self.kind.config().kind_name()
    }

    /// Whether the sink receives an event with these facts.
    pub fn accepts(&self, f: &Facts<'_>) -> bool {
        let kind = self.kind.config();
        if !kind.events().contains(&f.event) || !(self.events.is_empty() || self.events.contains(&f.event)) {
            return false;
        }
        if !self.tenants.is_empty() && !self.tenants.iter().any(|t| t == f.tenant) {
            return false;
        }
        if let Some(min) = self.min_severity
            && f.level.is_none_or(|l| l < min)
        {
            return false;
        }
        if f.event == EventName::SecurityEvent {
            let verdict = f.verdict.unwrap_or_default();
            let wanted = if self.verdicts.is_empty() { kind.verdicts() } else { &self.verdicts[..] };
            if !wanted.iter().any(|v| v.as_str() == verdict) {
                return false;
            }
        }
        true
    }

    /// The URL the sink sends to, for the caller's egress check (none for syslog).
    pub fn url(&self) -> Option<&str> {
        self.kind.config().url()
    }
}

/// Decides which addresses a sink that opens its own sockets (syslog) may
/// connect to; the server implements it with its egress policy.
pub trait AddressPolicy: Send + Sync + std::fmt::Debug {
    /// The addresses of `host` a connection may use, or why none may be.
    fn filter(&self, host: &str, addrs: Vec<std::net::SocketAddr>) -> Result<Vec<std::net::SocketAddr>, String>;
}

/// What building a sink needs from its caller.
pub struct BuildContext<'a> {
    /// The HTTP client for the HTTP kinds (its resolver enforces the caller's egress policy).
    pub client: reqwest::Client,
    /// The address check for the kinds that open their own sockets.
    pub addresses: Arc<dyn AddressPolicy>,
    /// Reads an environment variable (secrets come from `*_env` or `*_file` only).
    pub env: &'a (dyn Fn(&str) -> Option<String> + Sync),
}

impl std::fmt::Debug for BuildContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildContext").field("addresses", &self.addresses).finish_non_exhaustive()
    }
}

/// A secret read from the environment or a file; its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Reads the secret set by exactly one of `<prefix>_env` and `<prefix>_file`.
pub(crate) fn secret(
    prefix: &str,
    env_var: Option<&str>,
    file: Option<&Path>,
    ctx: &BuildContext<'_>,
) -> Result<Secret, FieldError> {
    let s = match (env_var, file) {
        (Some(var), None) => (ctx.env)(var).ok_or_else(|| {
            FieldError::new(format!("{prefix}_env"), format!("the environment variable {var} is not set"))
        })?,
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| FieldError::new(format!("{prefix}_file"), format!("{}: {e}", path.display())))?
            .trim()
            .to_owned(),
        _ => return Err(FieldError::new(prefix, format!("set exactly one of {prefix}_env and {prefix}_file"))),
    };
    if s.trim().is_empty() {
        return Err(FieldError::new(
            format!("{prefix}_{}", if env_var.is_some() { "env" } else { "file" }),
            "is empty",
        ));
    }
    if s.bytes().any(|b| b.is_ascii_control()) {
        return Err(FieldError::new(
            format!("{prefix}_{}", if env_var.is_some() { "env" } else { "file" }),
            "holds control characters (it must fit in an HTTP header)",
        ));
    }
    Ok(Secret(s))
}

/// Checks that exactly one of `<prefix>_env` and `<prefix>_file` is set.
pub(crate) fn check_secret(prefix: &str, env_var: &Option<String>, file: &Option<PathBuf>) -> Result<(), FieldError> {
    match (env_var, file) {
        (Some(v), None) if v.trim().is_empty() => Err(FieldError::new(format!("{prefix}_env"), "must not be empty")),
        (Some(_), None) | (None, Some(_)) => Ok(()),
        _ => Err(FieldError::new(prefix, format!("set exactly one of {prefix}_env and {prefix}_file"))),
    }
}

/// Checks an `http`/`https` base URL without query or fragment.
pub(crate) fn check_base_url(url: &str) -> Result<(), FieldError> {
    let u = url::Url::parse(url).map_err(|e| FieldError::new("url", format!("{url:?}: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(FieldError::new("url", "must be http:// or https://"));
    }
    if u.host().is_none() || u.query().is_some() || u.fragment().is_some() {
        return Err(FieldError::new("url", "must be a base URL: scheme, host and optional path, no query"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(FieldError::new("url", "must not carry credentials (use the *_env or *_file settings)"));
    }
    Ok(())
}

/// `base` joined with an API path (`base` may end in `/` or carry a path prefix).
pub(crate) fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// What an HTTP sink records of a failed attempt: the status, and a few
/// hundred bytes of the answer (never the request, which holds the secret).
pub(crate) fn http_failure(what: &str, status: reqwest::StatusCode, body: &[u8]) -> crate::PublishError {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    crate::PublishError(format!("{what}: HTTP {status}: {text}"))
}

/// A request that got no answer.
pub(crate) fn send_failure(what: &str, e: &reqwest::Error) -> crate::PublishError {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect failed"
    } else {
        "request failed"
    };
    let mut chain = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        src = s.source();
    }
    crate::PublishError(format!("{what}: {kind}: {chain}"))
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TOML: &str = r#"
[[sinks]]
name = "splunk"
kind = "splunk_hec"
url = "https://splunk.example:8088"
token_env = "SPLUNK_HEC_TOKEN"
index = "security"
channel = "0aa3a5a0-4a1c-4d1e-9d4c-3f5b2e6c7d8e"
events = ["security_event", "anomaly.detected"]
verdicts = ["block", "sanitize"]

[[sinks]]
name = "es"
kind = "elastic"
url = "https://es.example:9200"
api_key_file = "/run/secrets/es"
tenants = ["acme"]

[[sinks]]
name = "soar"
kind = "soar"
url = "https://soar.example"
token_file = "/run/secrets/soar"
min_severity = "high"

[[sinks]]
name = "grafana"
kind = "grafana"
url = "https://grafana.example"
token_env = "GRAFANA_TOKEN"
dashboard_uid = "llmsec"
panel_id = 4

[[sinks]]
name = "syslog"
kind = "syslog"
address = "siem.example:6514"
transport = "tcp"
facility = "local4"
format = "cef"
"#;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct File {
        sinks: Vec<SinkConfig>,
    }

    #[test]
    fn every_kind_round_trips_through_toml_yaml_and_json() {
        let f: File = toml::from_str(TOML).unwrap();
        assert_eq!(f.sinks.len(), 5);
        for s in &f.sinks {
            s.validate().unwrap_or_else(|e| panic!("{}: {e}", s.name));
        }
        assert_eq!(toml::from_str::<File>(&toml::to_string(&f).unwrap()).unwrap(), f);
        assert_eq!(serde_norway::from_str::<File>(&serde_norway::to_string(&f).unwrap()).unwrap(), f);
        assert_eq!(serde_json::from_str::<File>(&serde_json::to_string(&f).unwrap()).unwrap(), f);
        assert_eq!(f.sinks[0].kind_name(), "splunk_hec");
        assert_eq!(f.sinks[4].kind_name(), "syslog");
    }

    #[test]
    fn unknown_keys_and_kinds_are_named() {
        let e = toml::from_str::<File>("[[sinks]]\nname='x'\nkind='splunk_hec'\nurl='http://h'\ntokn_env='T'\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tokn_env"), "{e}");
        let e =
            toml::from_str::<File>("[[sinks]]\nname='x'\nkind='pagerduty'\nurl='http://h'\n").unwrap_err().to_string();
        assert!(e.contains("pagerduty") && e.contains("splunk_hec"), "{e}");
        let e = toml::from_str::<File>("[[sinks]]\nname='x'\nurl='http://h'\n").unwrap_err().to_string();
        assert!(e.contains("kind"), "{e}");
        let e =
            toml::from_str::<File>("[[sinks]]\nname='x'\nkind='syslog'\naddress='h:1'\nevents=['anomaly.created']\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("anomaly.created"), "{e}");
    }

    #[test]
    fn secrets_cannot_be_inline() {
        let e = toml::from_str::<File>("[[sinks]]\nname='x'\nkind='splunk_hec'\nurl='http://h'\ntoken='abc'\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `token`"), "{e}");
    }

    #[test]
    fn each_check_names_its_field() {
        let mut f: File = toml::from_str(TOML).unwrap();
        let field = |s: &SinkConfig| s.validate().unwrap_err().field;
        f.sinks[0].name = "has space".into();
        assert_eq!(field(&f.sinks[0]), "name");
        f.sinks[3].events = vec![EventName::AnomalyDetected, EventName::SecurityEvent];
        assert_eq!(field(&f.sinks[3]), "events[1]");
        f.sinks[2].verdicts = vec![Verdict::Block, Verdict::Allow];
        assert_eq!(field(&f.sinks[2]), "verdicts[1]");
        f.sinks[1].tenants = vec![" ".into()];
        assert_eq!(field(&f.sinks[1]), "tenants[0]");
    }

    #[test]
    fn filters_by_event_tenant_level_and_verdict() {
        let f: File = toml::from_str(TOML).unwrap();
        let sec =
            |tenant, level, verdict| Facts { event: EventName::SecurityEvent, tenant, level, verdict: Some(verdict) };
        let (splunk, es, soar, grafana) = (&f.sinks[0], &f.sinks[1], &f.sinks[2], &f.sinks[3]);
        assert!(splunk.accepts(&sec("t", None, "block")));
        assert!(!splunk.accepts(&sec("t", Some(Level::Critical), "allow")), "verdicts filter");
        let resolved = Facts { event: EventName::AnomalyResolved, tenant: "t", level: Some(Level::Low), verdict: None };
        assert!(!splunk.accepts(&resolved), "events filter");
        assert!(es.accepts(&sec("acme", None, "allow")) && !es.accepts(&sec("globex", None, "allow")), "tenants");
        assert!(soar.accepts(&sec("t", Some(Level::High), "block")));
        assert!(!soar.accepts(&sec("t", Some(Level::Medium), "block")), "min_severity");
        assert!(!soar.accepts(&sec("t", Some(Level::Critical), "sanitize")), "soar: blocked events only");
        assert!(!soar.accepts(&sec("t", None, "block")), "no threats: below any minimum");
        assert!(grafana.accepts(&resolved) && !grafana.accepts(&sec("t", Some(Level::High), "block")));
    }

    #[test]
    fn levels_of_threats_and_anomalies() {
        let t = serde_json::json!([{"severity": "medium"}, {"severity": "critical"}, {"severity": "low"}]);
        assert_eq!(Level::of_threats(&t), Some(Level::Critical));
        assert_eq!(Level::of_threats(&serde_json::json!([])), None);
        assert_eq!(Level::of_anomaly(llm_sentinel::Severity::Warning), Level::Medium);
    }

    #[test]
    fn secrets_come_from_env_or_file_and_never_show() {
        let env = |k: &str| (k == "T").then(|| "s3cret".to_owned());
        let ctx = testing::context(&env);
        assert_eq!(secret("token", Some("T"), None, &ctx).unwrap().expose(), "s3cret");
        assert_eq!(secret("token", Some("U"), None, &ctx).unwrap_err().field, "token_env");
        let dir = std::env::temp_dir().join(format!("llmsec-sink-secret-{}", std::process::id()));
        std::fs::write(&dir, "from-file\n").unwrap();
        let s = secret("token", None, Some(&dir), &ctx).unwrap();
        assert_eq!(s.expose(), "from-file");
        assert!(!format!("{s:?}").contains("from-file"));
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(secret("token", None, None, &ctx).unwrap_err().field, "token");
    }
}
