//! The server's configuration: a TOML or YAML file, then `LLMSEC_*`
//! environment overrides, then command-line flags (applied by the binary).
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! data_dir = "./data"
//! # database_url = "postgres://llmsec@db/llmsec"   # default: sqlite://<data_dir>/llmsec.db
//! dev_mode = false                                   # GraphQL playground at GET /graphql/playground
//!
//! [storage]
//! input = "redacted"      # none | redacted | full
//! retention_days = 30
//!
//! [storage.encryption]    # AES-256-GCM for stored prompt and completion text
//! key_env = "LLMSEC_STORAGE_KEY"   # or key_file = "/run/secrets/llmsec-key"
//! old_keys = []           # [{ key_file = "…" }]: still open what they sealed
//!
//! [privacy]               # purposes of what is stored (the record of processing)
//! require_purpose = false
//! [privacy.purposes.security_events]
//! purpose = "security_monitoring"
//! lawful_basis = "legitimate_interests"
//!
//! [limits]
//! body_bytes = 1048576
//! rate_per_sec = 200.0    # per key, unless the key sets its own
//! burst = 400
//! request_timeout_ms = 10000
//! max_connections = 1024
//! max_connections_per_ip = 128
//! header_read_timeout_ms = 10000
//! idle_timeout_ms = 60000
//! trusted_proxies = []    # load balancers whose X-Forwarded-For names the client
//!
//! [delivery]
//! max_attempts = 10
//!
//! [egress]                # internal targets webhooks and actions may reach (default: none)
//! allow = ["10.1.2.0/24", "hooks.internal.example"]
//!
//! [dashboard]           # sign-in sessions of the web dashboard at /
//! idle_timeout_ms = 1800000
//! absolute_timeout_ms = 43200000
//!
//! [[webhooks]]
//! tenant = "default"
//! url = "https://siem.example/hook"
//! secret = "at-least-16-bytes-of-secret"
//! events = ["threat.detected"]
//!
//! [[sinks]]               # SIEM/SOAR/observability sinks fed from the outbox
//! name = "splunk"
//! kind = "splunk_hec"     # splunk_hec | elastic | soar | grafana | syslog
//! url = "https://splunk.example:8088"
//! token_env = "SPLUNK_HEC_TOKEN"
//! verdicts = ["block", "sanitize"]
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use llm_security::{SecurityConfig, WebhookConfig};
use serde::{Deserialize, Serialize};

/// How much of an analysed text is stored with its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputRetention {
    /// Nothing: the event keeps threats and verdict only.
    None,
    /// The text with secrets and PII replaced by typed placeholders.
    #[default]
    Redacted,
    /// The text as received.
    Full,
}

impl InputRetention {
    fn parse(s: &str) -> Option<InputRetention> {
        match s {
            "none" => Some(InputRetention::None),
            "redacted" => Some(InputRetention::Redacted),
            "full" => Some(InputRetention::Full),
            _ => None,
        }
    }
}

/// What is stored and for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// How the analysed text is kept.
    pub input: InputRetention,
    /// Events older than this are purged (0 keeps them forever).
    pub retention_days: u32,
    /// Encryption at rest of stored prompt and completion text
    /// (`[storage.encryption]`); off when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<llmsec_store::EncryptionConfig>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { input: InputRetention::Redacted, retention_days: 30, encryption: None }
    }
}

/// The tenant of the bootstrap operator key and of config webhooks that name none.
pub const DEFAULT_TENANT: &str = "default";

/// Longest request target the HTTP/1 parser itself reads; a longer one is
/// refused by it with an empty 414.
pub const MAX_URI_BYTES: usize = 65_534;
/// Most header fields the HTTP/1 parser is set to read; more are refused by
/// it with an empty 431.
pub const MAX_HEADER_COUNT: usize = 1_000;
/// The HTTP/1 parser's read buffer: a request head larger than this is
/// refused by it with an empty 431.
pub const MAX_HEADER_BYTES: usize = 400 * 1024;

/// Request limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body; larger is 413.
    pub body_bytes: usize,
    /// Token-bucket refill per key, per second (a key may set its own).
    pub rate_per_sec: f64,
    /// Bucket size: the burst a key may send at once.
    pub burst: f64,
    /// A request running longer is answered 408.
    pub request_timeout_ms: u64,
    /// Open connections at most; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Most items in one batch request; also the most analyses one GraphQL
    /// request may run.
    pub batch_items: usize,
    /// Open connections from one client address (IPv6: one /64) at most;
    /// more are closed as soon as they are accepted.
    pub max_connections_per_ip: usize,
    /// An HTTP/1 request head (and the next one on a kept-alive connection)
    /// must arrive within this time, or the connection is closed.
    pub header_read_timeout_ms: u64,
    /// Longest request target (path and query); longer is 414 with a JSON body.
    pub uri_bytes: usize,
    /// Most header fields in a request; more is 431 with a JSON body.
    pub header_count: usize,
    /// Largest total of header names and values; larger is 431 with a JSON body.
    pub header_bytes: usize,
    /// A connection that moves no byte either way for this long is closed.
    pub idle_timeout_ms: u64,
    /// Failed authentications one client address may make per second, once
    /// its burst is spent; past that it is answered 429 without a key lookup.
    pub auth_failures_per_sec: f64,
    /// Failed authentications one client address may make at once.
    pub auth_failure_burst: f64,
    /// A `/graphql/ws` connection must authenticate (`connection_init`)
    /// within this time, or it is closed with 4408.
    pub ws_init_timeout_ms: u64,
    /// Largest WebSocket frame or message; larger closes the connection.
    pub ws_max_message_bytes: usize,
    /// Load balancers and reverse proxies (addresses or CIDR blocks) whose
    /// `X-Forwarded-For` names the client: a request from one of them is
    /// treated as coming from the last address in that header that is not
    /// itself a trusted proxy (sign-in throttling, Sentinel's address
    /// blocks, the gateway's enforcement). Empty (the default): the header is ignored
    /// and the connection's address is the client's.
    pub trusted_proxies: Vec<String>,
    /// A page of events stops early, with a cursor, before it passes this
    /// many bytes; in GraphQL, the budget of all event pages of one request.
    pub page_bytes: usize,
    /// Aliased fields in one GraphQL document, at most.
    pub graphql_aliases: usize,
    /// How deeply one GraphQL selection may nest, at most.
    pub graphql_depth: usize,
    /// The complexity (fields selected, each counting one) of one GraphQL
    /// operation, at most.
    pub graphql_complexity: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            body_bytes: 1 << 20,
            rate_per_sec: 200.0,
            burst: 400.0,
            request_timeout_ms: 10_000,
            max_connections: 1024,
            batch_items: 100,
            max_connections_per_ip: 128,
            header_read_timeout_ms: 10_000,
            uri_bytes: 8 * 1024,
            header_count: 100,
            header_bytes: 64 * 1024,
            idle_timeout_ms: 60_000,
            auth_failures_per_sec: 1.0,
            auth_failure_burst: 20.0,
            ws_init_timeout_ms: 10_000,
            ws_max_message_bytes: 64 * 1024,
            trusted_proxies: Vec::new(),
            page_bytes: 4 << 20,
            graphql_aliases: 100,
            graphql_depth: 12,
            graphql_complexity: 2000,
        }
    }
}

/// Webhook delivery behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Attempts before a delivery is dead-lettered.
    pub max_attempts: u32,
    /// The first retry waits about this long; each next one twice as long (full jitter).
    pub initial_backoff_ms: u64,
    /// No wait is longer than this.
    pub max_backoff_ms: u64,
    /// One attempt's time limit.
    pub timeout_ms: u64,
    /// How often the worker looks for due deliveries when nothing wakes it.
    pub poll_ms: u64,
    /// Deliveries attempted at once.
    pub concurrency: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            max_attempts: 10,
            initial_backoff_ms: 1000,
            max_backoff_ms: 3_600_000,
            timeout_ms: 10_000,
            poll_ms: 1000,
            concurrency: 16,
        }
    }
}

/// A webhook declared in the config file, registered at start-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfiguredWebhook {
    /// The tenant whose events it receives.
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// The webhook's url, secret and events.
    #[serde(flatten)]
    pub webhook: WebhookConfig,
}

fn default_tenant() -> String {
    DEFAULT_TENANT.to_owned()
}

/// Everything `llmsec serve` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where the SQLite file (and nothing else yet) lives.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default `sqlite://<data_dir>/llmsec.db`.
    pub database_url: Option<String>,
    /// Serves the GraphQL playground at `GET /graphql/playground`.
    pub dev_mode: bool,
    /// The engine's configuration file (TOML/YAML/JSON); default: the engine defaults.
    pub engine_config: Option<PathBuf>,
    /// Threat-intelligence feeds loaded at start (`[threat_intel]`).
    pub threat_intel: ThreatIntelConfig,
    /// A security-model profile (TOML/YAML/JSON, docs/SECURITY_MODEL.md):
    /// its engine switches applied, its server switches checked against
    /// this configuration at start.
    pub security_profile: Option<PathBuf>,
    /// Storage and retention.
    pub storage: StorageConfig,
    /// Request limits.
    pub limits: LimitsConfig,
    /// Webhook delivery.
    pub delivery: DeliveryConfig,
    /// Webhooks registered at start-up.
    pub webhooks: Vec<ConfiguredWebhook>,
    /// Sentinel: detectors file, alert receivers, incident manager.
    pub sentinel: SentinelSettings,
    /// Which internal addresses outbound HTTP may reach.
    pub egress: crate::egress::EgressConfig,
    /// The Shield gateway (OpenAI-compatible proxy routes); off when absent.
    pub gateway: Option<GatewayConfig>,
    /// Rego policies that decide each analysis's verdict; off when absent.
    pub policy: Option<RegoPolicyConfig>,
    /// The web dashboard's sign-in sessions.
    pub dashboard: DashboardConfig,
    /// OpenTelemetry export (traces and metrics over OTLP/HTTP); off when absent.
    pub otel: Option<crate::otel::OtelConfig>,
    /// Kafka: a telemetry source and topics the outbox publishes to; off when absent.
    pub kafka: Option<llmsec_connect::kafka::KafkaConfig>,
    /// Operator sinks (`[[sinks]]`): SIEM, SOAR and observability systems
    /// the outbox delivers security events and anomaly changes to.
    pub sinks: Vec<llmsec_connect::sinks::SinkConfig>,
    /// Periodic exports to object storage (`[export.s3]`); off when absent.
    pub export: ExportConfig,
    /// Risk scores per user, session and application (`[risk]`).
    pub risk: crate::risk::RiskConfig,
    /// Threat quarantine: hold flagged requests and completions for review (`[quarantine]`).
    pub quarantine: crate::quarantine::QuarantineConfig,
    /// Purposes and lawful bases of what is stored (`[privacy]`).
    pub privacy: crate::privacy::PrivacyConfig,
    /// Correlation of threats and anomalies into campaigns (`[campaigns]`).
    pub campaigns: crate::campaigns::CampaignConfig,
    /// Where this server's Shield action service reports the actions it
    /// enforced for a Sentinel (`[shield_callback]`); off when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shield_callback: Option<ShieldCallbackConfig>,
}

/// `[shield_callback]`: after the Shield action service enforces an action
/// a Sentinel sent (one carrying `anomaly_id`), this server tells that
/// Sentinel through its `POST /api/v1/shield/callback`, through the
/// delivery outbox (retried with backoff, dead-lettered after
/// `delivery.max_attempts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShieldCallbackConfig {
    /// The Sentinel's callback URL, `http(s)://host[:port]/api/v1/shield/callback`.
    pub url: String,
    /// The environment variable holding a key of that Sentinel with the
    /// `ingest` scope (exactly one of `key_env` and `key_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_env: Option<String>,
    /// The file holding that key (surrounding whitespace is ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

/// A refusal of `field`.
fn invalid<T>(field: &str, message: &str) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid { field: field.into(), message: message.into() })
}

impl ShieldCallbackConfig {
    /// Checks the URL and that one key source is named.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match url::Url::parse(&self.url) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.password().is_none()
                    && u.username().is_empty() => {}
            Ok(_) => {
                return invalid("shield_callback.url", "must be an http or https URL with a host and no credentials");
            }
            Err(e) => return invalid("shield_callback.url", &e.to_string()),
        }
        if self.key_env.is_some() == self.key_file.is_some() {
            return invalid("shield_callback", "set exactly one of key_env and key_file");
        }
        Ok(())
    }

    /// The key, read now (at start: a missing one stops it).
    pub fn key(&self) -> Result<String, ConfigError> {
        if self.key_env.is_some() == self.key_file.is_some() {
            return invalid("shield_callback", "set exactly one of key_env and key_file");
        }
        let field = if self.key_env.is_some() { "shield_callback.key_env" } else { "shield_callback.key_file" };
        let key = read_key(self.key_env.as_deref(), self.key_file.as_deref())
            .map_err(|message| ConfigError::Invalid { field: field.into(), message })?;
        let key = key.trim().to_owned();
        if key.is_empty() || reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")).is_err() {
            return invalid(field, "the key is empty or not a valid header value");
        }
        Ok(key)
    }
}

/// The `[export]` section: where stored events, anomalies and reports are
/// copied to, periodically (see [`crate::export`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportConfig {
    /// An S3-compatible bucket; off when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3ExportConfig>,
}

/// What an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportWhat {
    /// Security events, as stored (already redacted per `[storage]`).
    Events,
    /// Sentinel anomalies, as stored when exported.
    Anomalies,
    /// Each tenant's compliance report of the last complete period, JSON and HTML.
    Reports,
}

/// The period a periodic report covers (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportPeriod {
    /// A calendar day.
    #[default]
    Day,
    /// An ISO week, Monday to Monday.
    Week,
    /// A calendar month.
    Month,
}

/// The `[export.s3]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3ExportConfig {
    /// The store's endpoint: `https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:9000`.
    pub endpoint: String,
    /// The bucket (it must exist).
    pub bucket: String,
    /// The region signed for (default `us-east-1`).
    #[serde(default = "default_s3_region")]
    pub region: String,
    /// Prepended to every key (`llmsec` gives `llmsec/events/…`); default none.
    #[serde(default)]
    pub prefix: String,
    /// Path-style URLs (`endpoint/bucket/key`), needed by most
    /// S3-compatible stores and by IP endpoints; default virtual-host style.
    #[serde(default)]
    pub path_style: bool,
    /// The environment variable holding the access key id.
    #[serde(default = "default_access_key_env")]
    pub access_key_id_env: String,
    /// The environment variable holding the secret access key.
    #[serde(default = "default_secret_key_env")]
    pub secret_access_key_env: String,
    /// The environment variable holding a session token, for temporary credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_env: Option<String>,
    /// Server-side encryption: `AES256` or `aws:kms`; default none (the bucket's default applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse: Option<llmsec_connect::s3::Sse>,
    /// The KMS key id, with `sse = "aws:kms"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse_kms_key_id: Option<String>,
    /// Seconds between exports (default 3600).
    #[serde(default = "default_export_interval")]
    pub interval_secs: u64,
    /// Rows are exported up to this many seconds before the export runs
    /// (default 300): a row stored later with a time further back than
    /// this is not exported by the periodic runs (`llmsec export s3` can).
    #[serde(default = "default_export_grace")]
    pub grace_secs: u64,
    /// What is exported (default all three).
    #[serde(default = "default_export_what")]
    pub what: Vec<ExportWhat>,
    /// The frameworks of the exported reports (default all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_frameworks: Option<Vec<String>>,
    /// The period each exported report covers (default `day`).
    #[serde(default)]
    pub report_period: ReportPeriod,
    /// Rows per object at most; a window with more rolls to the next part
    /// (rows of one millisecond stay together). Default 100000.
    #[serde(default = "default_export_rows")]
    pub max_rows_per_object: usize,
    /// Uncompressed bytes per object at most, as for rows. Default 64 MiB.
    #[serde(default = "default_export_bytes")]
    pub max_object_bytes: usize,
    /// Whole-request limit of each PUT (default 60 s).
    #[serde(default = "default_export_timeout")]
    pub timeout_ms: u64,
}

fn default_s3_region() -> String {
    "us-east-1".into()
}
fn default_access_key_env() -> String {
    "AWS_ACCESS_KEY_ID".into()
}
fn default_secret_key_env() -> String {
    "AWS_SECRET_ACCESS_KEY".into()
}
fn default_export_interval() -> u64 {
    3600
}
fn default_export_grace() -> u64 {
    300
}
fn default_export_what() -> Vec<ExportWhat> {
    vec![ExportWhat::Events, ExportWhat::Anomalies, ExportWhat::Reports]
}
fn default_export_rows() -> usize {
    100_000
}
fn default_export_bytes() -> usize {
    64 << 20
}
fn default_export_timeout() -> u64 {
    60_000
}

impl S3ExportConfig {
    /// The connection settings of the bucket.
    pub fn settings(&self) -> llmsec_connect::s3::S3Settings {
        llmsec_connect::s3::S3Settings {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            region: self.region.clone(),
            path_style: self.path_style,
            access_key_id_env: self.access_key_id_env.clone(),
            secret_access_key_env: self.secret_access_key_env.clone(),
            session_token_env: self.session_token_env.clone(),
            sse: self.sse,
            sse_kms_key_id: self.sse_kms_key_id.clone(),
            timeout: std::time::Duration::from_millis(self.timeout_ms),
        }
    }

    /// The prefix without slashes at either end (`""` for none).
    pub fn key_prefix(&self) -> &str {
        self.prefix.trim_matches('/')
    }

    /// Checks the section; errors name `export.s3.<field>`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &str, message: &str| {
            Err(ConfigError::Invalid { field: format!("export.s3.{field}"), message: message.into() })
        };
        if let Err(e) = self.settings().validate() {
            return match e {
                llmsec_connect::s3::S3Error::Invalid { field, message } => bad(field, &message),
                e => bad("endpoint", &e.to_string()),
            };
        }
        let prefix = self.key_prefix();
        if prefix.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") && !prefix.is_empty() {
            return bad("prefix", "must not have empty, '.' or '..' segments");
        }
        if !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.=".contains(&b)) {
            return bad("prefix", "may hold only letters, digits, '/', '-', '_', '.' and '='");
        }
        if self.interval_secs == 0 {
            return bad("interval_secs", "must be positive");
        }
        if self.grace_secs > 7 * 86_400 {
            return bad("grace_secs", "must be at most 604800 (a week)");
        }
        if self.what.is_empty() {
            return bad("what", "must name at least one of events, anomalies, reports");
        }
        if let Some((i, _)) = self.what.iter().enumerate().find(|(i, w)| self.what[..*i].contains(w)) {
            return bad(&format!("what[{i}]"), "is listed twice");
        }
        if let Some(list) = &self.report_frameworks {
            let known = llmsec_report::posture::framework_ids();
            if let Some((i, f)) = list.iter().enumerate().find(|(_, f)| !known.contains(&f.as_str())) {
                return bad(
                    &format!("report_frameworks[{i}]"),
                    &format!("unknown framework {f:?}; known: {}", known.join(", ")),
                );
            }
        }
        if self.max_rows_per_object == 0 {
            return bad("max_rows_per_object", "must be positive");
        }
        if self.max_object_bytes < 1024 {
            return bad("max_object_bytes", "must be at least 1024");
        }
        if !cfg!(feature = "s3") {
            return Err(ConfigError::Invalid {
                field: "export.s3".into(),
                message: "this build has no S3 support (build llmsec with --features s3)".into(),
            });
        }
        Ok(())
    }
}

/// The `[threat_intel]` section: JSON Lines feeds of known attack prompts
/// (found again after small edits), canary strings and exfiltration
/// domains, each entry with its source, confidence and expiry (see the
/// engine's `intel` module).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThreatIntelConfig {
    /// The feed files, loaded at start.
    pub feeds: Vec<PathBuf>,
    /// The similarity (Jaccard of 5-gram shingles, in (0, 1]) from which a
    /// prompt counts as a known attack; default the engine's (0.5).
    pub threshold: Option<f64>,
}

impl ThreatIntelConfig {
    /// The feeds, read now; errors name `threat_intel.feeds[i]` or
    /// `threat_intel.threshold`.
    pub fn load(&self) -> Result<Option<llm_security::intel::ThreatIntel>, ConfigError> {
        if self.feeds.is_empty() {
            return Ok(None);
        }
        let mut intel = llm_security::intel::ThreatIntel::new();
        for (i, path) in self.feeds.iter().enumerate() {
            intel.add_path(path).map_err(|e| ConfigError::Invalid {
                field: format!("threat_intel.feeds[{i}]"),
                message: e.to_string(),
            })?;
        }
        if let Some(t) = self.threshold {
            intel = intel
                .with_threshold(t)
                .map_err(|e| ConfigError::Invalid { field: "threat_intel.threshold".into(), message: e.to_string() })?;
        }
        Ok(Some(intel))
    }
}

/// The `[policy]` section: Rego policies (policy as code).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegoPolicyConfig {
    /// `.rego` files or directories (searched recursively); the decision
    /// is `data.llmsec.decision`.
    pub rego: Vec<PathBuf>,
    /// How often the files are checked for changes (seconds; 0: never). A
    /// change that does not compile keeps the policy in force.
    #[serde(default = "default_reload_secs")]
    pub reload_secs: u64,
}

fn default_reload_secs() -> u64 {
    2
}

/// The web dashboard's sign-in sessions (`[dashboard]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    /// A session unused for this long ends (default 30 minutes).
    pub idle_timeout_ms: u64,
    /// A session ends this long after sign-in, used or not (default 12 hours).
    pub absolute_timeout_ms: u64,
    /// Open sessions at most; past it, signing in ends the oldest.
    pub max_sessions: usize,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig { idle_timeout_ms: 30 * 60 * 1000, absolute_timeout_ms: 12 * 3600 * 1000, max_sessions: 10_000 }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            dev_mode: false,
            engine_config: None,
            security_profile: None,
            threat_intel: ThreatIntelConfig::default(),
            storage: StorageConfig::default(),
            limits: LimitsConfig::default(),
            delivery: DeliveryConfig::default(),
            webhooks: Vec::new(),
            sentinel: SentinelSettings::default(),
            egress: crate::egress::EgressConfig::default(),
            gateway: None,
            policy: None,
            dashboard: DashboardConfig::default(),
            otel: None,
            kafka: None,
            sinks: Vec::new(),
            export: ExportConfig::default(),
            risk: crate::risk::RiskConfig::default(),
            quarantine: crate::quarantine::QuarantineConfig::default(),
            privacy: crate::privacy::PrivacyConfig::default(),
            campaigns: crate::campaigns::CampaignConfig::default(),
            shield_callback: None,
        }
    }
}

/// Why a configuration is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not parse or has unknown keys.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (it names the key and line).
        message: String,
    },
    /// An environment variable has a bad value.
    #[error("{var}: {message}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Why.
        message: String,
    },
    /// A value is out of range.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: String,
        /// Why.
        message: String,
    },
    /// The engine's configuration is refused.
    #[error("engine config: {0}")]
    Engine(String),
}

impl ServerConfig {
    /// Reads a TOML (`.toml`) or YAML (`.yaml`/`.yml`) file.
    pub fn from_file(path: &Path) -> Result<ServerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.into(), source })?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("toml");
        let parsed = match ext {
            "yaml" | "yml" => serde_norway::from_str(&text).map_err(|e| e.to_string()),
            "json" => serde_json::from_str(&text).map_err(|e| e.to_string()),
            _ => toml::from_str(&text).map_err(|e| e.to_string()),
        };
        parsed.map_err(|message| ConfigError::Parse { path: path.into(), message })
    }

    /// Applies `LLMSEC_LISTEN`, `LLMSEC_DATA_DIR`, `LLMSEC_DATABASE_URL`,
    /// `LLMSEC_STORE_INPUT`, `LLMSEC_RETENTION_DAYS`, `LLMSEC_DEV_MODE`,
    /// `LLMSEC_ENGINE_CONFIG`, `LLMSEC_SECURITY_PROFILE` and `LLMSEC_SENTINEL_DETECTORS` from `env`.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = env("LLMSEC_LISTEN") {
            self.listen =
                v.parse().map_err(|e| ConfigError::Env { var: "LLMSEC_LISTEN", message: format!("{v:?}: {e}") })?;
        }
        if let Some(v) = env("LLMSEC_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = env("LLMSEC_DATABASE_URL") {
            self.database_url = Some(v);
        }
        if let Some(v) = env("LLMSEC_STORE_INPUT") {
            self.storage.input = InputRetention::parse(&v).ok_or_else(|| ConfigError::Env {
                var: "LLMSEC_STORE_INPUT",
                message: format!("{v:?}: expected none, redacted or full"),
            })?;
        }
        if let Some(v) = env("LLMSEC_RETENTION_DAYS") {
            self.storage.retention_days = v
                .parse()
                .map_err(|e| ConfigError::Env { var: "LLMSEC_RETENTION_DAYS", message: format!("{v:?}: {e}") })?;
        }
        if let Some(v) = env("LLMSEC_DEV_MODE") {
            self.dev_mode = matches!(v.as_str(), "1" | "true" | "yes");
        }
        if let Some(v) = env("LLMSEC_ENGINE_CONFIG") {
            self.engine_config = Some(v.into());
        }
        if let Some(v) = env("LLMSEC_SECURITY_PROFILE") {
            self.security_profile = Some(v.into());
        }
        if let Some(v) = env("LLMSEC_SENTINEL_DETECTORS") {
            self.sentinel.detectors = Some(v.into());
        }
        Ok(())
    }

    /// The cipher `[storage.encryption]` describes, its keys read from the
    /// environment or their files; `None` when encryption is off. A key
    /// that is missing or not 32 bytes is refused, naming its source.
    pub fn storage_cipher(&self) -> Result<Option<llmsec_store::Cipher>, ConfigError> {
        let Some(enc) = &self.storage.encryption else { return Ok(None) };
        enc.build(|var| std::env::var(var).ok()).map(Some).map_err(|e| match e {
            llmsec_store::CipherError::Key { source_name, why } => {
                ConfigError::Invalid { field: source_name, message: why }
            }
            e => ConfigError::Invalid { field: "storage.encryption".into(), message: e.to_string() },
        })
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("llmsec.db").display()))
    }

    /// Checks ranges and the configured webhooks.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad =
            |field: &str, message: &str| Err(ConfigError::Invalid { field: field.into(), message: message.into() });
        if self.limits.body_bytes == 0 {
            return bad("limits.body_bytes", "must be positive");
        }
        let url = self.database_url();
        if self.sentinel.own_applications && !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return bad(
                "sentinel.own_applications",
                "needs a postgres:// database_url (the replicas that share out applications share one PostgreSQL)",
            );
        }
        if !(self.limits.rate_per_sec.is_finite() && self.limits.rate_per_sec > 0.0) {
            return bad("limits.rate_per_sec", "must be a positive number");
        }
        if !(self.limits.burst.is_finite() && self.limits.burst >= 1.0) {
            return bad("limits.burst", "must be at least 1");
        }
        if self.limits.max_connections == 0 {
            return bad("limits.max_connections", "must be positive");
        }
        if !(1..=MAX_URI_BYTES).contains(&self.limits.uri_bytes) {
            return bad("limits.uri_bytes", &format!("must be 1-{MAX_URI_BYTES} (the HTTP parser's own limit)"));
        }
        if !(1..=MAX_HEADER_COUNT).contains(&self.limits.header_count) {
            return bad("limits.header_count", &format!("must be 1-{MAX_HEADER_COUNT}"));
        }
        if !(1..=MAX_HEADER_BYTES).contains(&self.limits.header_bytes) {
            return bad("limits.header_bytes", &format!("must be 1-{MAX_HEADER_BYTES} (the HTTP parser's buffer)"));
        }
        if self.limits.batch_items == 0 {
            return bad("limits.batch_items", "must be positive");
        }
        if let Err((i, why)) = crate::listener::TrustedProxies::parse(&self.limits.trusted_proxies) {
            return bad(&format!("limits.trusted_proxies[{i}]"), &why);
        }
        if self.limits.request_timeout_ms == 0 {
            return bad("limits.request_timeout_ms", "must be positive");
        }
        for (field, v) in [
            ("limits.max_connections_per_ip", self.limits.max_connections_per_ip as u64),
            ("limits.header_read_timeout_ms", self.limits.header_read_timeout_ms),
            ("limits.ws_init_timeout_ms", self.limits.ws_init_timeout_ms),
            ("limits.ws_max_message_bytes", self.limits.ws_max_message_bytes as u64),
            ("limits.page_bytes", self.limits.page_bytes as u64),
            ("limits.graphql_aliases", self.limits.graphql_aliases as u64),
            ("limits.graphql_depth", self.limits.graphql_depth as u64),
            ("limits.graphql_complexity", self.limits.graphql_complexity as u64),
        ] {
            if v == 0 {
                return bad(field, "must be positive");
            }
        }
        if self.limits.idle_timeout_ms <= self.limits.request_timeout_ms {
            return bad("limits.idle_timeout_ms", "must be longer than limits.request_timeout_ms");
        }
        if !(self.limits.auth_failures_per_sec.is_finite() && self.limits.auth_failures_per_sec > 0.0) {
            return bad("limits.auth_failures_per_sec", "must be a positive number");
        }
        if !(self.limits.auth_failure_burst.is_finite() && self.limits.auth_failure_burst >= 1.0) {
            return bad("limits.auth_failure_burst", "must be at least 1");
        }
        if self.delivery.max_attempts == 0 {
            return bad("delivery.max_attempts", "must be positive");
        }
        if self.delivery.concurrency == 0 {
            return bad("delivery.concurrency", "must be positive");
        }
        if self.dashboard.idle_timeout_ms == 0 {
            return bad("dashboard.idle_timeout_ms", "must be positive");
        }
        if self.dashboard.absolute_timeout_ms < self.dashboard.idle_timeout_ms {
            return bad("dashboard.absolute_timeout_ms", "must be at least dashboard.idle_timeout_ms");
        }
        if self.dashboard.max_sessions == 0 {
            return bad("dashboard.max_sessions", "must be positive");
        }
        if let Some(k) = &self.kafka {
            k.validate()
                .map_err(|e| ConfigError::Invalid { field: format!("kafka.{}", e.field), message: e.message })?;
            if !cfg!(feature = "kafka") {
                return bad("kafka", "this build has no Kafka support (build llmsec with --features kafka)");
            }
        }
        if let Some(g) = &self.gateway {
            g.validate()?;
        }
        if let Some(c) = &self.shield_callback {
            c.validate()?;
        }
        if let Err((field, message)) = self.risk.validate() {
            return Err(ConfigError::Invalid { field, message });
        }
        if let Err((field, message)) = self.quarantine.validate() {
            return Err(ConfigError::Invalid { field, message });
        }
        if let Err((field, message)) = self.campaigns.validate() {
            return Err(ConfigError::Invalid { field, message });
        }
        if let Some(e) = &self.export.s3 {
            e.validate()?;
        }
        self.privacy.validate()?;
        if let Some(p) = &self.policy
            && p.rego.is_empty()
        {
            return bad("policy.rego", "must name at least one .rego file or directory");
        }
        if let Some(o) = &self.otel {
            o.validate().map_err(|(field, message)| ConfigError::Invalid { field, message })?;
        }
        let egress = self.egress_policy()?;
        for (i, w) in self.webhooks.iter().enumerate() {
            w.webhook
                .validate()
                .map_err(|e| ConfigError::Invalid { field: format!("webhooks[{i}]"), message: e.to_string() })?;
            egress
                .check_url(&w.webhook.url)
                .map_err(|e| ConfigError::Invalid { field: format!("webhooks[{i}].url"), message: e.to_string() })?;
        }
        self.validate_sinks(&egress)
    }

    /// Checks `[[sinks]]`: each entry's settings, unique names, and the
    /// egress policy for IP-literal targets (names are checked when resolved).
    fn validate_sinks(&self, egress: &crate::egress::EgressPolicy) -> Result<(), ConfigError> {
        use llmsec_connect::sinks::SinkKind;
        for (i, s) in self.sinks.iter().enumerate() {
            let invalid =
                |field: &str, message: String| ConfigError::Invalid { field: format!("sinks[{i}].{field}"), message };
            s.validate().map_err(|e| invalid(&e.field, e.message))?;
            if self.sinks[..i].iter().any(|o| o.name == s.name) {
                return Err(invalid("name", format!("{:?} is the name of an earlier sink", s.name)));
            }
            if let Some(url) = s.url() {
                egress.check_url(url).map_err(|e| invalid("url", e.to_string()))?;
            }
            if let SinkKind::Syslog(c) = &s.kind
                && let Ok((host, _)) = c.host_port()
                && let Ok(ip) = host.parse::<std::net::IpAddr>()
            {
                egress.check_ip(ip).map_err(|e| invalid("address", e.to_string()))?;
            }
        }
        Ok(())
    }

    /// The egress policy of `[egress]`.
    pub fn egress_policy(&self) -> Result<crate::egress::EgressPolicy, ConfigError> {
        crate::egress::EgressPolicy::from_config(&self.egress).map_err(|e| match &e {
            crate::egress::EgressError::BadAllow { index, .. } => {
                ConfigError::Invalid { field: format!("egress.allow[{index}]"), message: e.to_string() }
            }
            _ => ConfigError::Invalid { field: "egress.allow".into(), message: e.to_string() },
        })
    }

    /// The engine configuration this server runs.
    pub fn security_config(&self) -> Result<SecurityConfig, ConfigError> {
        match &self.engine_config {
            None => Ok(SecurityConfig::default()),
            Some(p) => SecurityConfig::from_path(p).map_err(|e| ConfigError::Engine(e.to_string())),
        }
    }
}

/// What a gateway route does with a prompt or completion the engine does
/// not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayPolicy {
    /// Follow the verdict: `block` refuses (`prompt_blocked` /
    /// `output_blocked`), `sanitize` forwards the sanitized text.
    #[default]
    Block,
    /// Never refuse for content: forward the sanitized text (secrets and
    /// personal data redacted, invisible characters stripped) whenever the
    /// verdict is not `allow`.
    Sanitize,
    /// Forward everything unchanged; the analyses are still recorded.
    Monitor,
}

/// What a route does when its texts cannot be scanned: the engine
/// refuses a text (larger than its `max_input_bytes`), an analysis runs
/// past `limits.request_timeout_ms`, or the analysis fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanErrors {
    /// Refuse: text that was not scanned is never forwarded or released.
    #[default]
    FailClosed,
    /// Forward the text unscanned, and record the error in the call's
    /// telemetry event.
    FailOpen,
}

/// One route's settings: a policy alone (`embeddings = "monitor"`) or a
/// table (`[gateway.routes.chat_completions]`); what it leaves out comes
/// from the `[gateway]` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RouteSettings {
    /// The route's policy (default `gateway.policy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<GatewayPolicy>,
    /// What a scan error does (default `gateway.on_scan_error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_scan_error: Option<ScanErrors>,
    /// The route's own tool-call allow-list, in place of `gateway.tools`
    /// (chat completions and messages only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<GatewayTools>,
}

/// [`RouteSettings`] as a table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteTable {
    #[serde(default)]
    policy: Option<GatewayPolicy>,
    #[serde(default)]
    on_scan_error: Option<ScanErrors>,
    #[serde(default)]
    tools: Option<GatewayTools>,
}

impl<'de> Deserialize<'de> for RouteSettings {
    /// A policy name, or a table whose unknown keys are errors naming them.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RouteSettings, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RouteSettings;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a policy (block, sanitize, monitor) or a table of route settings")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RouteSettings, E> {
                let policy = GatewayPolicy::deserialize(serde::de::value::StrDeserializer::<E>::new(v))?;
                Ok(RouteSettings { policy: Some(policy), ..RouteSettings::default() })
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RouteSettings, A::Error> {
                let t = RouteTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RouteSettings { policy: t.policy, on_scan_error: t.on_scan_error, tools: t.tools })
            }
        }
        d.deserialize_any(V)
    }
}

/// The settings of each gateway route; a route left out, and any setting a
/// route leaves out, take the `[gateway]` section's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayRoutes {
    /// `POST /v1/chat/completions`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_completions: Option<RouteSettings>,
    /// `POST /v1/completions`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completions: Option<RouteSettings>,
    /// `POST /v1/embeddings` (input only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embeddings: Option<RouteSettings>,
    /// `POST /v1/messages` (Anthropic's Messages API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<RouteSettings>,
}

/// The API an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamFormat {
    /// OpenAI's (`/chat/completions`, `/completions`, `/embeddings`; the key
    /// as `Authorization: Bearer`).
    #[default]
    Openai,
    /// Anthropic's Messages API (`/messages`; the key as `x-api-key`, with
    /// `anthropic-version`).
    Anthropic,
}

/// What happens to a tool call outside the allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolViolation {
    /// Refuse the completion (`tool_call_blocked`).
    #[default]
    Block,
    /// Drop the offending calls and pass the rest.
    Remove,
}

/// The tool calls a chat completion may make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayTools {
    /// Tool names a completion may call; any other is a violation.
    pub allow: Vec<String>,
    /// What a violation does.
    #[serde(default)]
    pub on_violation: ToolViolation,
    /// A JSON Schema per tool that its arguments must satisfy.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub schemas: std::collections::BTreeMap<String, serde_json::Value>,
}

/// What a model costs, per million tokens, in the operator's currency.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Per million prompt (input) tokens.
    pub input: f64,
    /// Per million completion (output) tokens.
    pub output: f64,
}

impl ModelPrice {
    /// The cost of a call's tokens.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        (prompt_tokens as f64 * self.input + completion_tokens as f64 * self.output) / 1_000_000.0
    }
}

impl GatewayTools {
    /// Checks names and schemas; errors name the key under `at`
    /// (`gateway.tools`, `gateway.routes.messages.tools`).
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let bad = |field: String, message: String| Err(ConfigError::Invalid { field, message });
        if let Some(i) = self.allow.iter().position(|n| n.trim().is_empty()) {
            return bad(format!("{at}.allow[{i}]"), "must not be empty".into());
        }
        if let Some(k) = self.schemas.keys().find(|k| !self.allow.contains(k)) {
            return bad(format!("{at}.schemas.{k}"), format!("names a tool that is not in {at}.allow"));
        }
        if let Some((k, _)) = self.schemas.iter().find(|(_, v)| !v.is_object() && !v.is_boolean()) {
            return bad(format!("{at}.schemas.{k}"), "must be a JSON Schema (an object)".into());
        }
        Ok(())
    }
}

/// One model provider the gateway forwards to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// A name for logs and errors.
    pub name: String,
    /// The provider's OpenAI-compatible base URL, up to and including its
    /// version segment (`https://api.openai.com/v1`): the gateway appends
    /// `/chat/completions` and the like.
    pub base_url: String,
    /// The environment variable holding the provider's API key, read at
    /// start-up and sent as `Authorization: Bearer`; never stored, logged or
    /// echoed. None: requests go without a key (a local model server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// The API it speaks: `/v1/messages` goes to `anthropic` upstreams,
    /// the other routes to `openai` ones.
    #[serde(default)]
    pub format: UpstreamFormat,
    /// Models routed here by exact name.
    #[serde(default)]
    pub models: Vec<String>,
    /// Models routed here by prefix (`gpt-`); the longest prefix wins.
    #[serde(default)]
    pub model_prefixes: Vec<String>,
    /// Whole-request limit, including a streamed response (default 120 s).
    #[serde(default = "default_upstream_timeout_ms")]
    pub timeout_ms: u64,
    /// Connection set-up limit (default 5 s).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Extra attempts after a failure to connect (never after a request was
    /// sent); default 1.
    #[serde(default = "default_connect_retries")]
    pub connect_retries: u32,
}

fn default_upstream_timeout_ms() -> u64 {
    120_000
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_connect_retries() -> u32 {
    1
}

/// The `[gateway]` section: the Shield gateway's upstreams and policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The policy of routes not named in `routes`.
    #[serde(default)]
    pub policy: GatewayPolicy,
    /// What a scan error does on routes that do not say (default `fail_closed`).
    #[serde(default)]
    pub on_scan_error: ScanErrors,
    /// Per-route policies.
    #[serde(default)]
    pub routes: GatewayRoutes,
    /// How streamed completions are buffered for scanning.
    #[serde(default)]
    pub stream: llm_security::StreamOptions,
    /// Insert a fresh canary token into each request's system prompt, so
    /// that a completion repeating the system prompt is caught by the token.
    #[serde(default)]
    pub canary: bool,
    /// The tool-call allow-list of chat completions; absent: not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<GatewayTools>,
    /// Results of texts already analysed (a conversation's earlier turns,
    /// the system prompt) kept at most this many, so they are neither
    /// analysed nor stored again on the next call; 0 turns it off.
    #[serde(default = "default_scan_cache_entries")]
    pub scan_cache_entries: usize,
    /// How long a kept result is used, in seconds (after a configuration
    /// change, at most this long before the new one applies to it).
    #[serde(default = "default_scan_cache_ttl_secs")]
    pub scan_cache_ttl_secs: u64,
    /// Prices per million tokens, by model name or by prefix ending in `*`
    /// (`"gpt-4o*"`): a call's cost in telemetry and in key budgets. An
    /// exact name wins over prefixes, a longer prefix over a shorter one; a
    /// model with no price has no cost.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub prices: std::collections::BTreeMap<String, ModelPrice>,
    /// Completion tokens a call that sets no cap (`max_tokens` and its kin)
    /// holds against its key's budgets while it runs, beside its prompt; 0:
    /// such a call holds its prompt only.
    #[serde(default)]
    pub budget_hold_tokens: u64,
    /// The model providers. Among the upstreams of the route's format, a
    /// model goes to the one that lists it, else to the one with its longest
    /// prefix, else to the one with neither list (the default), else it is
    /// refused.
    pub upstreams: Vec<UpstreamConfig>,
}

fn default_scan_cache_entries() -> usize {
    10_000
}

fn default_scan_cache_ttl_secs() -> u64 {
    600
}

impl GatewayConfig {
    /// The policy of a route: its own, or `policy`.
    pub fn route_policy(&self, route: Option<&RouteSettings>) -> GatewayPolicy {
        route.and_then(|r| r.policy).unwrap_or(self.policy)
    }

    /// What a scan error does on a route: its own choice, or `on_scan_error`.
    pub fn route_scan_errors(&self, route: Option<&RouteSettings>) -> ScanErrors {
        route.and_then(|r| r.on_scan_error).unwrap_or(self.on_scan_error)
    }

    /// A route's tool-call allow-list: its own, or `tools`.
    pub fn route_tools<'a>(&'a self, route: Option<&'a RouteSettings>) -> Option<&'a GatewayTools> {
        route.and_then(|r| r.tools.as_ref()).or(self.tools.as_ref())
    }

    /// The routes by their key in `gateway.routes`, with their settings.
    pub fn route_entries(&self) -> [(&'static str, Option<&RouteSettings>); 4] {
        [
            ("chat_completions", self.routes.chat_completions.as_ref()),
            ("completions", self.routes.completions.as_ref()),
            ("embeddings", self.routes.embeddings.as_ref()),
            ("messages", self.routes.messages.as_ref()),
        ]
    }

    /// The price of `model`: its own entry, else the longest `*` prefix
    /// that matches it.
    pub fn price(&self, model: &str) -> Option<ModelPrice> {
        if let Some(p) = self.prices.get(model) {
            return Some(*p);
        }
        self.prices
            .iter()
            .filter_map(|(k, p)| k.strip_suffix('*').filter(|pre| model.starts_with(pre)).map(|pre| (pre.len(), *p)))
            .max_by_key(|(len, _)| *len)
            .map(|(_, p)| p)
    }

    /// Checks upstreams and stream options; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: String, message: &str| Err(ConfigError::Invalid { field, message: message.into() });
        if self.upstreams.is_empty() {
            return bad("gateway.upstreams".into(), "at least one upstream is needed");
        }
        if self.scan_cache_entries > 0 && self.scan_cache_ttl_secs == 0 {
            return bad("gateway.scan_cache_ttl_secs".into(), "must be positive while scan_cache_entries is");
        }
        self.stream
            .validate()
            .map_err(|e| ConfigError::Invalid { field: "gateway.stream".into(), message: e.to_string() })?;
        if let Some(t) = &self.tools {
            t.validate("gateway.tools")?;
        }
        for (name, route) in self.route_entries() {
            let Some(t) = route.and_then(|r| r.tools.as_ref()) else { continue };
            let at = format!("gateway.routes.{name}.tools");
            if matches!(name, "completions" | "embeddings") {
                return bad(at, "only chat_completions and messages make tool calls");
            }
            t.validate(&at)?;
        }
        for (model, p) in &self.prices {
            if model.trim().is_empty() || model.trim() != model {
                return bad(format!("gateway.prices.{model:?}"), "must name a model without surrounding spaces");
            }
            for (key, v) in [("input", p.input), ("output", p.output)] {
                if !(v.is_finite() && v >= 0.0) {
                    return bad(format!("gateway.prices.{model:?}.{key}"), "must be a number of at least 0");
                }
            }
        }
        let mut defaults = std::collections::HashMap::new();
        let mut names = std::collections::HashSet::new();
        let mut models = std::collections::HashMap::new();
        for (i, u) in self.upstreams.iter().enumerate() {
            let at = |key: &str| format!("gateway.upstreams[{i}].{key}");
            if u.name.trim().is_empty() {
                return bad(at("name"), "must not be empty");
            }
            if !names.insert(u.name.as_str()) {
                return bad(at("name"), "another upstream has this name");
            }
            match url::Url::parse(&u.base_url) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                    if url.query().is_some() || url.fragment().is_some() {
                        return bad(at("base_url"), "must have no query or fragment");
                    }
                }
                _ => return bad(at("base_url"), "must be an http:// or https:// URL with a host"),
            }
            if let Some(var) = &u.api_key_env {
                let ok = var.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !ok {
                    return bad(at("api_key_env"), "must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
                }
            }
            if u.timeout_ms == 0 {
                return bad(at("timeout_ms"), "must be positive");
            }
            if u.connect_timeout_ms == 0 {
                return bad(at("connect_timeout_ms"), "must be positive");
            }
            if u.connect_retries > 10 {
                return bad(at("connect_retries"), "must be at most 10");
            }
            for (j, m) in u.models.iter().enumerate() {
                if m.trim().is_empty() {
                    return bad(at(&format!("models[{j}]")), "must not be empty");
                }
                if let Some(other) = models.insert(m.as_str(), i) {
                    return bad(at(&format!("models[{j}]")), &format!("{m:?} is also routed to upstreams[{other}]"));
                }
            }
            if let Some(j) = u.model_prefixes.iter().position(|p| p.is_empty()) {
                return bad(at(&format!("model_prefixes[{j}]")), "must not be empty");
            }
            if u.models.is_empty() && u.model_prefixes.is_empty() {
                let n = defaults.entry(u.format).or_insert(0);
                *n += 1;
                if *n > 1 {
                    return bad(
                        at("models"),
                        "only one upstream of each format may have neither models nor model_prefixes",
                    );
                }
            }
        }
        Ok(())
    }
}

/// An alert receiver.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receiver {
    /// The name alert actions use.
    pub name: String,
    /// How it is reached.
    #[serde(rename = "type")]
    pub kind: ReceiverKind,
    /// Where (webhook, slack, pagerduty; PagerDuty defaults to its Events v2 URL).
    #[serde(default)]
    pub url: Option<String>,
    /// HMAC secret for the signature header (webhook).
    #[serde(default)]
    pub secret: Option<String>,
    /// PagerDuty's integration (routing) key.
    #[serde(default)]
    pub routing_key: Option<String>,
    /// Tenants whose own detector changes (`updateDetector`) may name this
    /// receiver in `alert` actions; `"*"` opens it to every tenant. Empty
    /// (the default): only the detectors file and operators may name it, so
    /// a tenant admin cannot send its anomalies to the operator's pager.
    #[serde(default)]
    pub tenants: Vec<String>,
    /// The SMTP server's host name or address (email).
    #[serde(default)]
    pub smtp_host: Option<String>,
    /// The SMTP server's port (email; default 587).
    #[serde(default)]
    pub smtp_port: Option<u16>,
    /// How the SMTP connection is secured (email; default `starttls`).
    #[serde(default)]
    pub tls: Option<MailTls>,
    /// The SMTP user name (email; with `password_env`).
    #[serde(default)]
    pub username: Option<String>,
    /// The environment variable holding the SMTP password (email); the
    /// password itself is never written in the config.
    #[serde(default)]
    pub password_env: Option<String>,
    /// The sender: a mail address (email) or a phone number (sms).
    #[serde(default)]
    pub from: Option<String>,
    /// The recipients: mail addresses (email) or phone numbers (sms).
    #[serde(default)]
    pub to: Vec<String>,
    /// Put before every subject (email).
    #[serde(default)]
    pub subject_prefix: Option<String>,
    /// The SMS API's account id (sms; the user of its basic auth).
    #[serde(default)]
    pub account_sid: Option<String>,
    /// The environment variable holding the SMS API's token (sms).
    #[serde(default)]
    pub token_env: Option<String>,
}

/// How an e-mail receiver's SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailTls {
    /// Plain connection upgraded with STARTTLS, which is required.
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No TLS: allowed for loopback hosts only.
    None,
}

impl Receiver {
    /// The keys set on this receiver besides `name`, `type` and `tenants`.
    pub fn keys_set(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut set = |on: bool, key: &'static str| {
            if on {
                keys.push(key);
            }
        };
        set(self.url.is_some(), "url");
        set(self.secret.is_some(), "secret");
        set(self.routing_key.is_some(), "routing_key");
        set(self.smtp_host.is_some(), "smtp_host");
        set(self.smtp_port.is_some(), "smtp_port");
        set(self.tls.is_some(), "tls");
        set(self.username.is_some(), "username");
        set(self.password_env.is_some(), "password_env");
        set(self.from.is_some(), "from");
        set(!self.to.is_empty(), "to");
        set(self.subject_prefix.is_some(), "subject_prefix");
        set(self.account_sid.is_some(), "account_sid");
        set(self.token_env.is_some(), "token_env");
        keys
    }

    /// Whether `tenant`'s own detector changes may name this receiver.
    pub fn open_to(&self, tenant: &str) -> bool {
        self.tenants.iter().any(|t| t == "*" || t == tenant)
    }
}

/// Receiver kinds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiverKind {
    /// The server's log (stderr).
    #[default]
    Log,
    /// A signed JSON POST of the anomaly.
    Webhook,
    /// A Slack-compatible incoming webhook (`{"text": …}`).
    Slack,
    /// PagerDuty Events API v2.
    Pagerduty,
    /// E-mail over SMTP.
    Email,
    /// SMS through a Twilio-style HTTP API.
    Sms,
}

impl ReceiverKind {
    /// The keys (besides `name`, `type` and `tenants`) a receiver of this kind may set.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            ReceiverKind::Log => &[],
            ReceiverKind::Webhook => &["url", "secret"],
            ReceiverKind::Slack => &["url"],
            ReceiverKind::Pagerduty => &["url", "routing_key"],
            ReceiverKind::Email => {
                &["smtp_host", "smtp_port", "tls", "username", "password_env", "from", "to", "subject_prefix"]
            }
            ReceiverKind::Sms => &["url", "account_sid", "token_env", "from", "to"],
        }
    }

    /// The name used in the config (`type = "…"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiverKind::Log => "log",
            ReceiverKind::Webhook => "webhook",
            ReceiverKind::Slack => "slack",
            ReceiverKind::Pagerduty => "pagerduty",
            ReceiverKind::Email => "email",
            ReceiverKind::Sms => "sms",
        }
    }
}

/// PagerDuty's Events v2 endpoint.
pub const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// The `[sentinel]` section of the server config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SentinelSettings {
    /// The detectors file (YAML, `detectors:`); none: events are
    /// stored but no detector runs.
    pub detectors: Option<std::path::PathBuf>,
    /// How often windows are closed and quiet anomalies resolved.
    pub tick_ms: u64,
    /// Alert receivers.
    pub receivers: Vec<Receiver>,
    /// The incident manager's base URL (`incident` actions POST to `<url>/api/v1/incidents`).
    pub incidents_url: Option<String>,
    /// Remote Shield gateways a `shield` action may name as `endpoint`
    /// (`host:port` or `http://host:port`), each with where a `triage` key
    /// of that gateway is read from. An endpoint not listed is refused, so
    /// a detector change cannot send a key, or an action, anywhere the
    /// operator did not name.
    pub shield_endpoints: BTreeMap<String, ShieldEndpoint>,
    /// Escalation chains (`[[sentinel.escalations]]`): receivers alerted
    /// when an anomaly stays unacknowledged.
    pub escalations: Vec<Escalation>,
    /// Replicas on one PostgreSQL share out applications: each runs the
    /// detectors only for the applications whose advisory lock it holds,
    /// reading their events from the store (see docs/SCALING.md). Needs a
    /// `postgres://` `database_url`.
    pub own_applications: bool,
}

/// One step of an escalation chain: an anomaly at or above `min_severity`
/// still ACTIVE (not acknowledged, resolved or suppressed) `after_minutes`
/// after it opened alerts `receivers`, and again every `repeat_minutes`
/// (0: once) while it stays so. Several steps make a chain (the team at 15
/// minutes, its lead at 60, management at 240).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    /// Unique among the steps; the anomaly's action records name it.
    pub name: String,
    /// The least severity escalated (default `warning`).
    #[serde(default = "default_escalation_severity")]
    pub min_severity: llm_sentinel::Severity,
    /// Minutes unacknowledged before this step fires (1 to 10080).
    pub after_minutes: u64,
    /// Receivers (`[[sentinel.receivers]]`) alerted by this step.
    pub receivers: Vec<String>,
    /// Alert again this often while still unacknowledged; 0 (the default): once.
    #[serde(default)]
    pub repeat_minutes: u64,
}

fn default_escalation_severity() -> llm_sentinel::Severity {
    llm_sentinel::Severity::Warning
}

/// Where the key for one remote Shield gateway is read from, when an
/// action runs: an environment variable or a file (a mounted secret);
/// exactly one of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShieldEndpoint {
    /// The environment variable holding the key.
    #[serde(default)]
    pub key_env: Option<String>,
    /// The file holding the key (surrounding whitespace is ignored).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// `https://` endpoints: a PEM file of CA certificates trusted beside
    /// the system's roots (a private CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// `https://` endpoints: a PEM certificate (chain) presented to the
    /// gateway (mutual TLS), with `client_key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_file: Option<PathBuf>,
    /// The PEM private key of `client_cert_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<PathBuf>,
}

impl ShieldEndpoint {
    /// The key, read now.
    pub fn key(&self) -> Result<String, String> {
        read_key(self.key_env.as_deref(), self.key_file.as_deref())
    }
}

/// A key from an environment variable or a file (a mounted secret), exactly
/// one of them; a file's surrounding whitespace is ignored. Shared by the
/// Shield endpoints and the Shield callback.
fn read_key(env: Option<&str>, file: Option<&std::path::Path>) -> Result<String, String> {
    match (env, file) {
        (Some(var), None) => std::env::var(var).map_err(|_| format!("the environment variable {var} is not set")),
        (None, Some(path)) => {
            std::fs::read_to_string(path).map(|k| k.trim().to_owned()).map_err(|e| format!("{}: {e}", path.display()))
        }
        _ => Err("set exactly one of key_env and key_file".into()),
    }
}

impl Default for SentinelSettings {
    fn default() -> Self {
        SentinelSettings {
            detectors: None,
            tick_ms: 1000,
            receivers: Vec::new(),
            incidents_url: None,
            shield_endpoints: BTreeMap::new(),
            escalations: Vec::new(),
            own_applications: false,
        }
    }
}

impl SentinelSettings {
    /// Reads the detectors file and checks that every action can run here.
    pub fn load(&self) -> Result<llm_sentinel::SentinelConfig, String> {
        let config = match &self.detectors {
            None => llm_sentinel::SentinelConfig::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
                llm_sentinel::SentinelConfig::from_yaml(&text).map_err(|e| format!("{}: {e}", p.display()))?
            }
        };
        self.check(&config)?;
        Ok(config)
    }

    /// Checks that every action of `config` can run with these settings
    /// (receivers exist, incidents have a URL).
    pub fn check(&self, config: &llm_sentinel::SentinelConfig) -> Result<(), String> {
        for (i, r) in self.receivers.iter().enumerate() {
            if let Some(key) = r.keys_set().into_iter().find(|k| !r.kind.keys().contains(k)) {
                return Err(format!(
                    "sentinel.receivers[{i}].{key}: not a key of receivers of type \"{}\" ({})",
                    r.kind.as_str(),
                    r.name
                ));
            }
            if matches!(r.kind, ReceiverKind::Webhook | ReceiverKind::Slack) && r.url.is_none() {
                return Err(format!("sentinel.receivers ({}): url is required", r.name));
            }
            if r.kind == ReceiverKind::Pagerduty && r.routing_key.is_none() {
                return Err(format!("sentinel.receivers ({}): routing_key is required for pagerduty", r.name));
            }
        }
        for (i, step) in self.escalations.iter().enumerate() {
            let at = |field: &str| format!("sentinel.escalations[{i}].{field}");
            if step.name.trim().is_empty() || self.escalations[..i].iter().any(|s| s.name == step.name) {
                return Err(format!("{}: must be a name no other step has", at("name")));
            }
            if !(1..=10_080).contains(&step.after_minutes) {
                return Err(format!("{}: must be between 1 and 10080 (a week)", at("after_minutes")));
            }
            if step.repeat_minutes > 10_080 {
                return Err(format!("{}: must be at most 10080", at("repeat_minutes")));
            }
            if step.receivers.is_empty() {
                return Err(format!("{}: name at least one receiver", at("receivers")));
            }
            if let Some(r) = step.receivers.iter().find(|r| !self.receivers.iter().any(|x| &x.name == *r)) {
                return Err(format!(
                    "{}: unknown receiver {r:?} (define it under [[sentinel.receivers]])",
                    at("receivers")
                ));
            }
        }
        for (endpoint, e) in &self.shield_endpoints {
            if e.key_env.is_some() == e.key_file.is_some() {
                return Err(format!("sentinel.shield_endpoints.{endpoint:?}: set exactly one of key_env and key_file"));
            }
            if e.client_cert_file.is_some() != e.client_key_file.is_some() {
                return Err(format!(
                    "sentinel.shield_endpoints.{endpoint:?}: set client_cert_file and client_key_file together"
                ));
            }
            let tls = e.ca_file.is_some() || e.client_cert_file.is_some();
            if tls && !endpoint.starts_with("https://") {
                let key = if e.ca_file.is_some() { "ca_file" } else { "client_cert_file" };
                return Err(format!("sentinel.shield_endpoints.{endpoint:?}.{key}: needs an https:// endpoint"));
            }
        }
        for d in &config.detectors {
            for (i, a) in d.actions.iter().enumerate() {
                match a {
                    llm_sentinel::action::ActionSpec::Alert(alert) => {
                        if let Some(r) = alert.receivers.iter().find(|r| !self.receivers.iter().any(|x| &x.name == *r))
                        {
                            return Err(format!(
                                "detectors ({}).actions[{i}]: unknown receiver {r:?} (define it under [[sentinel.receivers]])",
                                d.id
                            ));
                        }
                    }
                    llm_sentinel::action::ActionSpec::Shield(s)
                        if s.endpoint.as_ref().is_some_and(|e| !self.shield_endpoints.contains_key(e)) =>
                    {
                        return Err(format!(
                            "detectors ({}).actions[{i}].config.endpoint: {:?} is not one of [sentinel] shield_endpoints",
                            d.id,
                            s.endpoint.as_deref().unwrap_or_default()
                        ));
                    }
                    llm_sentinel::action::ActionSpec::Incident(inc)
                        if inc.url.is_none() && self.incidents_url.is_none() =>
                    {
                        return Err(format!(
                            "detectors ({}).actions[{i}]: an incident action needs config.url or sentinel.incidents_url",
                            d.id
                        ));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Every URL the actions of `config` and these settings may send to,
    /// with the config field it comes from: receivers, the incident
    /// manager, detectors' webhook and incident actions.
    pub fn targets(&self, config: &llm_sentinel::SentinelConfig) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for r in &self.receivers {
            if let Some(u) = &r.url {
                out.push((format!("sentinel.receivers ({}).url", r.name), u.clone()));
            }
        }
        if let Some(u) = &self.incidents_url {
            out.push(("sentinel.incidents_url".into(), u.clone()));
        }
        for d in &config.detectors {
            for (i, a) in d.actions.iter().enumerate() {
                let url = match a {
                    llm_sentinel::action::ActionSpec::Webhook(w) => Some(&w.url),
                    llm_sentinel::action::ActionSpec::Incident(inc) => inc.url.as_ref(),
                    _ => None,
                };
                if let Some(u) = url {
                    out.push((format!("detectors ({}).actions[{i}].config.url", d.id), u.clone()));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_embedded_setup() {
        let c = ServerConfig::default();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url(), "sqlite://./data/llmsec.db");
        assert_eq!(c.storage.input, InputRetention::Redacted);
        assert_eq!(c.limits.body_bytes, 1 << 20);
        c.validate().unwrap();
    }

    #[test]
    fn application_ownership_needs_postgres() {
        let mut c = ServerConfig::default();
        c.sentinel.own_applications = true;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("sentinel.own_applications") && e.contains("postgres"), "{e}");
        c.database_url = Some("postgres://u@db.internal/llmsec".into());
        c.validate().unwrap();
        let parsed: SentinelSettings = toml::from_str("own_applications = true").unwrap();
        assert!(parsed.own_applications);
    }

    #[test]
    fn toml_yaml_and_json_round_trip() {
        let mut c = ServerConfig::default();
        c.storage.input = InputRetention::Full;
        c.egress.allow = vec!["127.0.0.1/32".into(), "hooks.internal".into()];
        c.webhooks.push(ConfiguredWebhook {
            tenant: "acme".into(),
            webhook: WebhookConfig::new()
                .with_url("http://127.0.0.1:9000/h".into())
                .with_secret("0123456789abcdef".into())
                .with_events(vec!["threat.detected".into()]),
        });
        c.sentinel.receivers = vec![
            Receiver {
                name: "soc-mail".into(),
                kind: ReceiverKind::Email,
                smtp_host: Some("127.0.0.1".into()),
                smtp_port: Some(2525),
                tls: Some(MailTls::None),
                username: Some("alerts".into()),
                password_env: Some("SMTP_PASSWORD".into()),
                from: Some("Sentinel <s@example.com>".into()),
                to: vec!["soc@example.com".into()],
                subject_prefix: Some("[llmsec]".into()),
                ..Default::default()
            },
            Receiver {
                name: "oncall-sms".into(),
                kind: ReceiverKind::Sms,
                url: Some("https://api.example.com".into()),
                account_sid: Some("AC1".into()),
                token_env: Some("SMS_TOKEN".into()),
                from: Some("+15550001111".into()),
                to: vec!["+15552223333".into()],
                tenants: vec!["acme".into()],
                ..Default::default()
            },
        ];
        let t = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<ServerConfig>(&t).unwrap(), c);
        let y = serde_norway::to_string(&c).unwrap();
        assert_eq!(serde_norway::from_str::<ServerConfig>(&y).unwrap(), c);
        let j = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<ServerConfig>(&j).unwrap(), c);
    }

    const EXPORT: &str = r#"
[export.s3]
endpoint = "http://127.0.0.1:54569"
bucket = "exports"
prefix = "/llmsec/"
path_style = true
interval_secs = 600
what = ["events", "reports"]
report_frameworks = ["gdpr", "soc2"]
report_period = "week"
sse = "aws:kms"
sse_kms_key_id = "key-1"
"#;

    #[test]
    fn export_section_parses_round_trips_and_names_bad_fields() {
        let c: ServerConfig = toml::from_str(EXPORT).unwrap();
        let e = c.export.s3.clone().unwrap();
        assert_eq!(
            (e.region.as_str(), e.access_key_id_env.as_str(), e.grace_secs),
            ("us-east-1", "AWS_ACCESS_KEY_ID", 300)
        );
        assert_eq!((e.key_prefix(), e.report_period, e.max_rows_per_object), ("llmsec", ReportPeriod::Week, 100_000));
        assert_eq!(e.sse, Some(llmsec_connect::s3::Sse::Kms));
        if cfg!(feature = "s3") {
            c.validate().unwrap();
        } else {
            let err = c.validate().unwrap_err().to_string();
            assert!(err.starts_with("export.s3: this build has no S3 support"), "{err}");
        }
        let t = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<ServerConfig>(&t).unwrap(), c);
        let y = serde_norway::to_string(&c).unwrap();
        assert_eq!(serde_norway::from_str::<ServerConfig>(&y).unwrap(), c);
        let j = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<ServerConfig>(&j).unwrap(), c);

        let e = toml::from_str::<ServerConfig>(&EXPORT.replace("bucket =", "buckt =")).unwrap_err().to_string();
        assert!(e.contains("buckt"), "{e}");
        for (change, field) in [
            (("path_style = true", "path_style = false"), "export.s3.path_style"),
            (("bucket = \"exports\"", "bucket = \"Ex\""), "export.s3.bucket"),
            (("interval_secs = 600", "interval_secs = 0"), "export.s3.interval_secs"),
            (("what = [\"events\", \"reports\"]", "what = []"), "export.s3.what"),
            (("what = [\"events\", \"reports\"]", "what = [\"events\", \"events\"]"), "export.s3.what[1]"),
            (("\"soc2\"", "\"sox2\""), "export.s3.report_frameworks[1]"),
            (("prefix = \"/llmsec/\"", "prefix = \"a/../b\""), "export.s3.prefix"),
            (("sse = \"aws:kms\"", "sse = \"AES256\""), "export.s3.sse_kms_key_id"),
        ] {
            let c: ServerConfig = toml::from_str(&EXPORT.replace(change.0, change.1)).unwrap();
            match c.validate() {
                Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = toml::from_str::<ServerConfig>("[limits]\nbody_byte = 5\n").unwrap_err().to_string();
        assert!(e.contains("body_byte"), "{e}");
        let e = toml::from_str::<ServerConfig>("[[webhooks]]\nurl='http://h/x'\nsecret='0123456789abcdef'\nevnts=[]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("evnts"), "{e}");
    }

    #[test]
    fn env_overrides() {
        let mut c = ServerConfig::default();
        let env = |k: &str| match k {
            "LLMSEC_LISTEN" => Some("127.0.0.1:9999".to_owned()),
            "LLMSEC_STORE_INPUT" => Some("none".to_owned()),
            "LLMSEC_DATABASE_URL" => Some("postgres://x@h/db".to_owned()),
            _ => None,
        };
        c.apply_env(env).unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.storage.input, InputRetention::None);
        assert_eq!(c.database_url(), "postgres://x@h/db");
        let e = c.apply_env(|k| (k == "LLMSEC_STORE_INPUT").then(|| "all".to_owned())).unwrap_err().to_string();
        assert!(e.contains("LLMSEC_STORE_INPUT"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let mut c = ServerConfig::default();
        c.limits.rate_per_sec = 0.0;
        assert!(c.validate().unwrap_err().to_string().starts_with("limits.rate_per_sec"));
        let mut c = ServerConfig::default();
        c.limits.trusted_proxies = vec!["10.0.0.0/8".into(), "lb.internal".into()];
        let e = c.validate().unwrap_err().to_string();
        assert!(e.starts_with("limits.trusted_proxies[1]") && e.contains("lb.internal"), "{e}");
        let mut c = ServerConfig::default();
        c.limits.max_connections_per_ip = 0;
        assert!(c.validate().unwrap_err().to_string().starts_with("limits.max_connections_per_ip"));
        let mut c = ServerConfig::default();
        c.limits.idle_timeout_ms = c.limits.request_timeout_ms;
        assert!(c.validate().unwrap_err().to_string().starts_with("limits.idle_timeout_ms"));
        let mut c = ServerConfig::default();
        c.limits.auth_failure_burst = 0.5;
        assert!(c.validate().unwrap_err().to_string().starts_with("limits.auth_failure_burst"));
        let mut c = ServerConfig::default();
        c.webhooks.push(ConfiguredWebhook {
            tenant: "t".into(),
            webhook: WebhookConfig::new().with_url("http://h/x".into()).with_secret("short".into()),
        });
        assert!(c.validate().unwrap_err().to_string().starts_with("webhooks[0]"));
    }

    const GATEWAY: &str = r#"
[gateway]
policy = "sanitize"
canary = true
on_scan_error = "fail_open"
[gateway.routes]
embeddings = "monitor"
[gateway.routes.chat_completions]
on_scan_error = "fail_closed"
[gateway.routes.messages.tools]
allow = ["search"]
[gateway.routes.completions]
policy = "block"
[gateway.stream]
hold_back_bytes = 256
[gateway.tools]
allow = ["get_weather", "search"]
on_violation = "remove"
[gateway.tools.schemas.get_weather]
type = "object"
required = ["city"]
properties = { city = { type = "string" } }
[gateway.prices]
"gpt-4o-mini" = { input = 0.15, output = 0.6 }
"gpt-4o*" = { input = 2.5, output = 10.0 }
"gpt-*" = { input = 1.0, output = 2.0 }
[[gateway.upstreams]]
name = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"
model_prefixes = ["gpt-", "o1"]
[[gateway.upstreams]]
name = "local"
base_url = "http://127.0.0.1:11434/v1"
[[gateway.upstreams]]
name = "anthropic"
format = "anthropic"
base_url = "https://api.anthropic.com/v1"
model_prefixes = ["claude-"]
"#;

    #[test]
    fn gateway_section_parses_round_trips_and_validates() {
        let c: ServerConfig = toml::from_str(GATEWAY).unwrap();
        c.validate().unwrap();
        let g = c.gateway.clone().unwrap();
        assert_eq!(g.policy, GatewayPolicy::Sanitize);
        assert_eq!(g.route_policy(g.routes.embeddings.as_ref()), GatewayPolicy::Monitor);
        assert_eq!(g.route_policy(g.routes.chat_completions.as_ref()), GatewayPolicy::Sanitize);
        assert_eq!(g.route_policy(g.routes.completions.as_ref()), GatewayPolicy::Block);
        assert_eq!(g.route_policy(g.routes.messages.as_ref()), GatewayPolicy::Sanitize);
        // A route's own allow-list replaces the section's; others keep it.
        assert_eq!(g.route_tools(g.routes.messages.as_ref()).map(|t| t.allow.clone()), Some(vec!["search".into()]));
        assert_eq!(g.route_tools(g.routes.chat_completions.as_ref()).map(|t| t.allow.len()), Some(2));
        // A route's own choice, else the section's.
        assert_eq!(g.route_scan_errors(g.routes.chat_completions.as_ref()), ScanErrors::FailClosed);
        assert_eq!(g.route_scan_errors(g.routes.embeddings.as_ref()), ScanErrors::FailOpen);
        assert_eq!(
            GatewayConfig { on_scan_error: ScanErrors::default(), ..g.clone() }.route_scan_errors(None),
            ScanErrors::FailClosed
        );
        assert_eq!(g.stream.hold_back_bytes, 256);
        assert_eq!(g.stream.min_scan_bytes, llm_security::StreamOptions::default().min_scan_bytes);
        assert_eq!(g.upstreams[1].timeout_ms, 120_000);
        assert_eq!((g.upstreams[1].format, g.upstreams[2].format), (UpstreamFormat::Openai, UpstreamFormat::Anthropic));
        assert_eq!(g.upstreams[0].api_key_env.as_deref(), Some("OPENAI_API_KEY"));
        let tools = g.tools.as_ref().unwrap();
        assert_eq!(tools.on_violation, ToolViolation::Remove);
        assert_eq!(tools.schemas["get_weather"]["required"], serde_json::json!(["city"]));
        // An exact name, then the longest prefix; no match, no price.
        assert_eq!(g.price("gpt-4o-mini").map(|p| p.input), Some(0.15));
        assert_eq!(g.price("gpt-4o-2024-08-06").map(|p| p.output), Some(10.0));
        assert_eq!(g.price("gpt-3.5-turbo").map(|p| p.input), Some(1.0));
        assert_eq!(g.price("claude-3-haiku"), None);
        let p = g.price("gpt-4o").unwrap();
        assert!((p.cost(1_000_000, 500_000) - 7.5).abs() < 1e-9);
        let t = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<ServerConfig>(&t).unwrap(), c);
        let y = serde_norway::to_string(&c).unwrap();
        assert_eq!(serde_norway::from_str::<ServerConfig>(&y).unwrap(), c);
        let j = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<ServerConfig>(&j).unwrap(), c);
    }

    #[test]
    fn gateway_mistakes_are_named() {
        let e = toml::from_str::<ServerConfig>(&GATEWAY.replace("api_key_env", "api_key")).unwrap_err().to_string();
        assert!(e.contains("api_key"), "{e}");
        let e =
            toml::from_str::<ServerConfig>(&GATEWAY.replace("hold_back_bytes", "holdback")).unwrap_err().to_string();
        assert!(e.contains("holdback"), "{e}");
        let e = toml::from_str::<ServerConfig>(&GATEWAY.replace("\"monitor\"", "\"ignore\"")).unwrap_err().to_string();
        assert!(e.contains("ignore"), "{e}");
        let e = toml::from_str::<ServerConfig>(&GATEWAY.replace("policy = \"block\"", "polcy = \"block\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("polcy") && e.contains("on_scan_error"), "{e}");
        let e = toml::from_str::<ServerConfig>(&GATEWAY.replace("\"fail_closed\"", "\"fail_shut\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("fail_shut"), "{e}");
        let check = |edit: &dyn Fn(&mut GatewayConfig)| {
            let mut c: ServerConfig = toml::from_str(GATEWAY).unwrap();
            edit(c.gateway.as_mut().unwrap());
            c.validate().unwrap_err().to_string()
        };
        assert!(check(&|g| g.upstreams.clear()).starts_with("gateway.upstreams"));
        assert!(check(&|g| g.upstreams[1].base_url = "ftp://x".into()).starts_with("gateway.upstreams[1].base_url"));
        assert!(
            check(&|g| g.upstreams[0].api_key_env = Some("A-B".into())).starts_with("gateway.upstreams[0].api_key_env")
        );
        assert!(check(&|g| g.upstreams[1].name = "openai".into()).starts_with("gateway.upstreams[1].name"));
        assert!(check(&|g| g.upstreams[0].model_prefixes.clear()).starts_with("gateway.upstreams[1].models"));
        assert!(check(&|g| g.upstreams[1].timeout_ms = 0).starts_with("gateway.upstreams[1].timeout_ms"));
        assert!(check(&|g| g.stream.min_scan_bytes = 0).starts_with("gateway.stream"));
        let e = check(&|g| {
            if let Some(t) = g.routes.messages.as_mut().and_then(|r| r.tools.as_mut()) {
                t.allow.push(" ".into());
            }
        });
        assert!(e.starts_with("gateway.routes.messages.tools.allow[1]"), "{e}");
        let e = check(&|g| {
            if let Some(t) = g.routes.messages.as_mut().and_then(|r| r.tools.as_mut()) {
                t.schemas.insert("get_weather".into(), serde_json::json!({"type": "object"}));
            }
        });
        assert!(e.starts_with("gateway.routes.messages.tools.schemas.get_weather"), "{e}");
        let e = check(&|g| {
            let tools = g.tools.clone();
            g.routes.embeddings = Some(RouteSettings { tools, ..RouteSettings::default() });
        });
        assert!(e.starts_with("gateway.routes.embeddings.tools"), "{e}");
        let e = check(&|g| {
            g.prices.insert("o3".into(), ModelPrice { input: -1.0, output: 1.0 });
        });
        assert!(e.starts_with("gateway.prices.\"o3\".input"), "{e}");
        let e = check(&|g| {
            g.prices.insert("o3".into(), ModelPrice { input: 1.0, output: f64::NAN });
        });
        assert!(e.starts_with("gateway.prices.\"o3\".output"), "{e}");
        let e =
            toml::from_str::<ServerConfig>(&GATEWAY.replace("output = 0.6", "outptu = 0.6")).unwrap_err().to_string();
        assert!(e.contains("outptu"), "{e}");
        let e = check(&|g| {
            if let Some(t) = g.tools.as_mut() {
                t.allow.retain(|n| n != "get_weather");
            }
        });
        assert!(e.starts_with("gateway.tools.schemas.get_weather"), "{e}");
        let e = check(&|g| {
            g.upstreams[0].models = vec!["m".into()];
            g.upstreams[1].models = vec!["m".into()];
        });
        assert!(e.starts_with("gateway.upstreams[1].models[0]"), "{e}");
    }

    #[test]
    fn sinks_parse_round_trip_and_name_their_mistakes() {
        let text = r#"
[egress]
allow = ["10.0.0.0/8"]

[[sinks]]
name = "splunk"
kind = "splunk_hec"
url = "https://10.1.2.3:8088"
token_env = "HEC_TOKEN"
events = ["security_event"]
verdicts = ["block"]

[[sinks]]
name = "syslog"
kind = "syslog"
address = "10.1.2.4:6514"
"#;
        let c: ServerConfig = toml::from_str(text).unwrap();
        c.validate().unwrap();
        assert_eq!(toml::from_str::<ServerConfig>(&toml::to_string(&c).unwrap()).unwrap(), c);
        assert_eq!(serde_norway::from_str::<ServerConfig>(&serde_norway::to_string(&c).unwrap()).unwrap(), c);
        assert_eq!(serde_json::from_str::<ServerConfig>(&serde_json::to_string(&c).unwrap()).unwrap(), c);
        let mut dup = c.clone();
        dup.sinks[1].name = "splunk".into();
        assert!(dup.validate().unwrap_err().to_string().starts_with("sinks[1].name"));
        let mut internal = c.clone();
        internal.egress.allow.clear();
        let e = internal.validate().unwrap_err().to_string();
        assert!(e.starts_with("sinks[0].url"), "{e}");
        internal.sinks.remove(0);
        assert!(internal.validate().unwrap_err().to_string().starts_with("sinks[0].address"));
        let mut grafana = c.clone();
        grafana.sinks[0] = toml::from_str::<ServerConfig>(
            "[[sinks]]\nname='g'\nkind='grafana'\nurl='https://g.example'\ntoken_env='G'\nevents=['security_event']\n",
        )
        .unwrap()
        .sinks
        .remove(0);
        assert!(grafana.validate().unwrap_err().to_string().starts_with("sinks[0].events[0]"));
        let e = toml::from_str::<ServerConfig>("[[sinks]]\nname='x'\nkind='elastic'\nurl='http://h'\npassword='p'\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `password`"), "inline secrets are refused: {e}");
    }

    #[test]
    fn config_webhooks_to_internal_addresses_need_the_allow_list() {
        let mut c = ServerConfig::default();
        c.webhooks.push(ConfiguredWebhook {
            tenant: "t".into(),
            webhook: WebhookConfig::new()
                .with_url("http://169.254.169.254/latest/meta-data/".into())
                .with_secret("0123456789abcdef".into()),
        });
        let e = c.validate().unwrap_err().to_string();
        assert!(e.starts_with("webhooks[0].url") && e.contains("metadata"), "{e}");
        c.egress.allow = vec!["169.254.169.254/32".into()];
        c.validate().unwrap();
        c.egress.allow.push("not an entry".into());
        assert!(c.validate().unwrap_err().to_string().starts_with("egress.allow[1]"));
        let t = toml::from_str::<ServerConfig>("[egress]\nallow = [\"10.0.0.0/8\", \"hooks.internal\"]\n").unwrap();
        assert_eq!(t.egress.allow, ["10.0.0.0/8", "hooks.internal"]);
        let e = toml::from_str::<ServerConfig>("[egress]\nallowed = []\n").unwrap_err().to_string();
        assert!(e.contains("allowed"), "{e}");
    }
}
