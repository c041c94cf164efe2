//! The configuration of a RabbitMQ sink.

use serde::{Deserialize, Serialize};

use crate::publish::SinkConfigError;
use crate::template::Template;

/// A RabbitMQ sink: where outbox records are published and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSinkConfig {
    /// The environment variable that holds the broker's URL,
    /// `amqp://user:password@host:port/vhost` (`amqps://` for TLS). The URL
    /// carries the password, so it is never in the file and never logged.
    pub url_env: String,
    /// The exchange records are published to.
    pub exchange: String,
    /// The exchange's type, when this sink declares it.
    #[serde(default)]
    pub exchange_type: ExchangeType,
    /// Declare the exchange (durable) on every connect; `false` uses an
    /// existing one, checked with a passive declare, so a missing exchange
    /// is an error rather than a silent loss. `exchange = ""` (RabbitMQ's
    /// default exchange, routing straight to the queue named by the routing
    /// key) needs `declare = false`.
    #[serde(default = "yes")]
    pub declare: bool,
    /// The routing key, with `{event}` and `{tenant}` filled in per record.
    #[serde(default = "default_routing_key")]
    pub routing_key: String,
    /// Delivery mode 2: the broker writes the message to disk on durable
    /// queues before it confirms it.
    #[serde(default = "yes")]
    pub persistent: bool,
    /// Publish with the `mandatory` flag: a record no queue is bound for is
    /// returned by the broker and counts as a failed publish (retried, then
    /// dead-lettered by the outbox) instead of being dropped.
    #[serde(default = "yes")]
    pub mandatory: bool,
}

fn yes() -> bool {
    true
}

fn default_routing_key() -> String {
    "llmsec.{event}.{tenant}".into()
}

/// An exchange type RabbitMQ has without plugins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExchangeType {
    /// Routing keys matched against binding patterns (`llmsec.anomaly.#`).
    #[default]
    Topic,
    /// Routing key equal to the binding key.
    Direct,
    /// Every bound queue, whatever the routing key.
    Fanout,
    /// Matched on the message headers (`event`, `tenant`).
    Headers,
}

/// The longest routing key and exchange name AMQP 0-9-1 can carry (a short string).
pub(crate) const MAX_NAME: usize = 255;

impl AmqpSinkConfig {
    /// Checks what serde cannot; the error names the setting.
    pub fn validate(&self) -> Result<(), SinkConfigError> {
        self.routing_key_template().map(|_| ())
    }

    /// The parsed routing key, after the checks of [`validate`](Self::validate).
    pub(crate) fn routing_key_template(&self) -> Result<Template, SinkConfigError> {
        if self.url_env.trim().is_empty() {
            return Err(SinkConfigError::new("url_env", "must name the environment variable holding the amqp:// URL"));
        }
        if self.exchange.len() > MAX_NAME {
            return Err(SinkConfigError::new("exchange", "must be at most 255 bytes"));
        }
        if let Some(c) = self.exchange.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_.:".contains(*c))) {
            return Err(SinkConfigError::new("exchange", format!("{c:?} is not allowed: use A-Z a-z 0-9 - _ . :")));
        }
        if self.declare && self.exchange.is_empty() {
            return Err(SinkConfigError::new(
                "exchange",
                "must name an exchange to declare (the default exchange \"\" needs declare = false)",
            ));
        }
        if self.declare && self.exchange.starts_with("amq.") {
            return Err(SinkConfigError::new(
                "exchange",
                "names starting with amq. are the broker's own and cannot be declared: set declare = false to use one",
            ));
        }
        let t = Template::parse(&self.routing_key).map_err(|e| SinkConfigError::new("routing_key", e.to_string()))?;
        if t.render("", "", std::borrow::Cow::Borrowed).len() > MAX_NAME {
            return Err(SinkConfigError::new("routing_key", "must be at most 255 bytes"));
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
url_env = "LLMSEC_AMQP_URL"
exchange = "llmsec"
"#;

    fn example() -> AmqpSinkConfig {
        toml::from_str(EXAMPLE).expect("example parses")
    }

    #[test]
    fn defaults_are_a_durable_topic_exchange_with_confirmed_persistent_mandatory_publishes() {
        let c = example();
        assert_eq!(c.exchange_type, ExchangeType::Topic);
        assert!(c.declare && c.persistent && c.mandatory);
        assert_eq!(c.routing_key, "llmsec.{event}.{tenant}");
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn example_round_trips_through_toml_yaml_and_json() {
        let mut c = example();
        c.exchange_type = ExchangeType::Headers;
        c.persistent = false;
        let back: AmqpSinkConfig = toml::from_str(&toml::to_string(&c).expect("toml")).expect("toml back");
        assert_eq!(back, c);
        let back: AmqpSinkConfig =
            serde_norway::from_str(&serde_norway::to_string(&c).expect("yaml")).expect("yaml back");
        assert_eq!(back, c);
        let back: AmqpSinkConfig = serde_json::from_str(&serde_json::to_string(&c).expect("json")).expect("json");
        assert_eq!(back, c);
        let y: AmqpSinkConfig =
            serde_norway::from_str("url_env: U\nexchange: x\nexchange_type: fanout\n").expect("yaml parses");
        assert_eq!(y.exchange_type, ExchangeType::Fanout);
    }

    #[test]
    fn unknown_keys_and_types_are_named() {
        let err = toml::from_str::<AmqpSinkConfig>(&format!("{EXAMPLE}routingkey = \"x\"\n")).expect_err("typo");
        assert!(err.to_string().contains("routingkey"), "{err}");
        let err = toml::from_str::<AmqpSinkConfig>(&format!("{EXAMPLE}exchange_type = \"x-delayed\"\n"))
            .expect_err("unknown type");
        assert!(err.to_string().contains("x-delayed"), "{err}");
        let err = toml::from_str::<AmqpSinkConfig>("exchange = \"x\"\n").expect_err("no url_env");
        assert!(err.to_string().contains("url_env"), "{err}");
    }

    #[test]
    fn validation_names_the_field() {
        let check = |f: &dyn Fn(&mut AmqpSinkConfig), field: &str, says: &str| {
            let mut c = example();
            f(&mut c);
            let err = c.validate().expect_err(field);
            assert_eq!(err.field, field, "{err}");
            assert!(err.message.contains(says), "{err}");
        };
        check(&|c| c.url_env = " ".into(), "url_env", "environment variable");
        check(&|c| c.routing_key = "llmsec.{topic}".into(), "routing_key", "unknown placeholder {topic}");
        check(&|c| c.routing_key = "llmsec.{event".into(), "routing_key", "not closed");
        check(&|c| c.routing_key = String::new(), "routing_key", "empty");
        check(&|c| c.routing_key = "k".repeat(256), "routing_key", "255 bytes");
        check(&|c| c.exchange = String::new(), "exchange", "declare = false");
        check(&|c| c.exchange = "amq.topic".into(), "exchange", "declare = false");
        check(&|c| c.exchange = "a b".into(), "exchange", "' ' is not allowed");
        check(&|c| c.exchange = "e".repeat(256), "exchange", "255 bytes");
        let mut c = example();
        c.declare = false;
        c.exchange = "amq.topic".into();
        assert_eq!(c.validate(), Ok(()));
        c.exchange = String::new();
        assert_eq!(c.validate(), Ok(()));
    }
}
