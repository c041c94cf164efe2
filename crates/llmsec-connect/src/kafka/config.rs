//! The `[kafka]` section of the server's configuration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[kafka]`: the brokers, and a source, a sink or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port` separated by commas.
    pub brokers: String,
    /// The client id the brokers see.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Further librdkafka properties for both consumer and producer (TLS,
    /// SASL, …), e.g. `"security.protocol" = "ssl"`. The ones this crate
    /// sets for its guarantees (`enable.auto.commit`, `group.id`, …) cannot
    /// be overridden here.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Consume telemetry; off when absent.
    #[serde(default)]
    pub source: Option<SourceConfig>,
    /// Publish security events and anomalies; off when absent.
    #[serde(default)]
    pub sink: Option<SinkConfig>,
}

fn default_client_id() -> String {
    "llmsec".into()
}

/// `[kafka.source]`: the telemetry topic and its consumer group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The topic of telemetry events, one event per message.
    pub topic: String,
    /// How a message's value is encoded: `json` (a seed-002 event, the
    /// REST body's form) or `protobuf` (one `sentinel.v1.TelemetryEvent`,
    /// the gRPC message of proto/sentinel/v1/telemetry.proto).
    #[serde(default)]
    pub format: PayloadFormat,
    /// The consumer group: replicas with the same group share the partitions.
    pub group_id: String,
    /// The tenant the events are stored for.
    pub tenant: String,
    /// Take the tenant from each event's `tenant_id` (when it has one)
    /// instead of `tenant`. Only for topics that trusted producers alone
    /// can write to: anyone who can produce can then write into any tenant.
    #[serde(default)]
    pub trust_message_tenant: bool,
    /// Where messages that cannot be stored (not JSON, not a valid event)
    /// go, with the reason in the `llmsec-dead-letter-reason` header.
    pub dead_letter_topic: String,
    /// Events stored in one write at most.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How long a batch waits to fill before it is written anyway.
    #[serde(default = "default_linger_ms")]
    pub batch_linger_ms: u64,
    /// Batches fetched ahead of the store at most: when the store is slow,
    /// fetching stops once this many wait.
    #[serde(default = "default_queued_batches")]
    pub queued_batches: usize,
    /// The group session timeout: how soon a dead consumer's partitions move to another.
    #[serde(default = "default_session_timeout_ms")]
    pub session_timeout_ms: u64,
}

/// How the values of a source topic are encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    /// A seed-002 telemetry event as JSON.
    #[default]
    Json,
    /// A `sentinel.v1.TelemetryEvent` protobuf message.
    Protobuf,
}

fn default_batch_size() -> usize {
    5000
}
fn default_linger_ms() -> u64 {
    50
}
fn default_queued_batches() -> usize {
    2
}
fn default_session_timeout_ms() -> u64 {
    10_000
}

/// `[kafka.sink]`: the topics the outbox publishes to; a topic left out is
/// not published.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Every stored security event (analysis result), keyed by tenant.
    #[serde(default)]
    pub security_events: Option<String>,
    /// New anomalies, keyed by application id (or tenant).
    #[serde(default)]
    pub anomalies: Option<String>,
    /// Anomaly status changes (acknowledged, resolved, suppressed), keyed like anomalies.
    #[serde(default)]
    pub anomaly_changes: Option<String>,
}

/// A setting that cannot work, named by its path under `kafka`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kafka.{field}: {message}")]
pub struct ConfigError {
    /// The path below `kafka`, e.g. `source.batch_size`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// The librdkafka properties this crate sets itself.
const RESERVED: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
    "session.timeout.ms",
];

impl KafkaConfig {
    /// Checks what serde cannot: non-empty names, positive sizes.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &str, message: &str| Err(ConfigError { field: field.into(), message: message.into() });
        if self.brokers.split(',').all(|b| b.trim().is_empty()) {
            return bad("brokers", "must name at least one host:port");
        }
        if let Some(k) = self.options.keys().find(|k| RESERVED.contains(&k.as_str())) {
            return bad(&format!("options.{k}"), "is set by llmsec and cannot be overridden");
        }
        if let Some(s) = &self.source {
            for (field, v) in [
                ("source.topic", &s.topic),
                ("source.group_id", &s.group_id),
                ("source.tenant", &s.tenant),
                ("source.dead_letter_topic", &s.dead_letter_topic),
            ] {
                if v.trim().is_empty() {
                    return bad(field, "must not be empty");
                }
            }
            if s.dead_letter_topic == s.topic {
                return bad("source.dead_letter_topic", "must differ from source.topic");
            }
            if !(1..=100_000).contains(&s.batch_size) {
                return bad("source.batch_size", "must be 1-100000");
            }
            if s.queued_batches == 0 {
                return bad("source.queued_batches", "must be positive");
            }
            if !(1000..=300_000).contains(&s.session_timeout_ms) {
                return bad("source.session_timeout_ms", "must be 1000-300000");
            }
        }
        if let Some(s) = &self.sink {
            for (field, v) in [
                ("sink.security_events", &s.security_events),
                ("sink.anomalies", &s.anomalies),
                ("sink.anomaly_changes", &s.anomaly_changes),
            ] {
                if v.as_deref().is_some_and(|t| t.trim().is_empty()) {
                    return bad(field, "must not be empty (leave it out to publish nothing)");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
brokers = "127.0.0.1:9092"
[source]
topic = "llm-telemetry"
group_id = "llmsec"
tenant = "acme"
dead_letter_topic = "llm-telemetry-dead"
[sink]
anomalies = "llmsec-anomalies"
"#;

    #[test]
    fn example_round_trips_through_toml_yaml_and_json() {
        let c: KafkaConfig = toml::from_str(EXAMPLE).expect("example parses");
        assert!(c.validate().is_ok());
        let s = c.source.as_ref().expect("source");
        assert_eq!((s.batch_size, s.queued_batches, s.trust_message_tenant), (5000, 2, false));
        assert_eq!(s.format, PayloadFormat::Json);
        assert_eq!(c.sink.as_ref().and_then(|s| s.anomalies.as_deref()), Some("llmsec-anomalies"));
        let back: KafkaConfig = toml::from_str(&toml::to_string(&c).expect("toml")).expect("toml back");
        assert_eq!(back, c);
        let back: KafkaConfig = serde_norway::from_str(&serde_norway::to_string(&c).expect("yaml")).expect("yaml");
        assert_eq!(back, c);
        let back: KafkaConfig = serde_json::from_str(&serde_json::to_string(&c).expect("json")).expect("json");
        assert_eq!(back, c);
    }

    #[test]
    fn the_format_is_json_or_protobuf() {
        let with = |f: &str| {
            toml::from_str::<KafkaConfig>(&EXAMPLE.replace("tenant = ", &format!("format = {f:?}\ntenant = ")))
        };
        let c = with("protobuf").expect("protobuf");
        assert_eq!(c.source.map(|s| s.format), Some(PayloadFormat::Protobuf));
        let err = with("avro").expect_err("avro");
        assert!(err.to_string().contains("unknown variant `avro`, expected `json` or `protobuf`"), "{err}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = toml::from_str::<KafkaConfig>(&EXAMPLE.replace("tenant = ", "tennant = ")).expect_err("typo");
        assert!(err.to_string().contains("tennant"), "{err}");
        let err = toml::from_str::<KafkaConfig>("brokers = \"b:1\"\nbatch = 3\n").expect_err("unknown");
        assert!(err.to_string().contains("batch"), "{err}");
    }

    #[test]
    fn validation_names_the_field() {
        let base: KafkaConfig = toml::from_str(EXAMPLE).expect("example parses");
        let check = |f: &dyn Fn(&mut KafkaConfig), field: &str| {
            let mut c = base.clone();
            f(&mut c);
            assert_eq!(c.validate().map_err(|e| e.field), Err(field.to_owned()));
        };
        check(&|c| c.brokers = " , ".into(), "brokers");
        check(&|c| c.source.as_mut().into_iter().for_each(|s| s.batch_size = 0), "source.batch_size");
        check(&|c| c.source.as_mut().into_iter().for_each(|s| s.tenant = " ".into()), "source.tenant");
        check(
            &|c| c.source.as_mut().into_iter().for_each(|s| s.dead_letter_topic = s.topic.clone()),
            "source.dead_letter_topic",
        );
        check(&|c| c.sink.as_mut().into_iter().for_each(|s| s.anomalies = Some(String::new())), "sink.anomalies");
        check(
            &|c| {
                c.options.insert("enable.auto.commit".into(), "true".into());
            },
            "options.enable.auto.commit",
        );
    }
}
