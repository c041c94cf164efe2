//! The message brokers as `[[sinks]]` kinds: `rabbitmq` ([`AmqpSinkConfig`])
//! and `nats` ([`NatsSinkConfig`]). Their publishers need the `amqp` and
//! `nats` features; a build without one refuses a sink of that kind at
//! start, naming the feature, rather than accepting it and delivering
//! nothing. Like Kafka, they connect with their own clients to the
//! operator's brokers: the egress policy, which guards the HTTP kinds' and
//! syslog's addresses, is not applied to them.

use std::sync::Arc;

use super::{BuildContext, FieldError, KindConfig};
use crate::amqp::AmqpSinkConfig;
use crate::nats::NatsSinkConfig;
use crate::publish::{OutboxPublisher, SinkConfigError};

fn field(e: SinkConfigError) -> FieldError {
    FieldError::new(e.field, e.message)
}

impl KindConfig for AmqpSinkConfig {
    fn kind_name(&self) -> &'static str {
        "rabbitmq"
    }

    fn validate(&self) -> Result<(), FieldError> {
        AmqpSinkConfig::validate(self).map_err(field)
    }

    #[cfg(feature = "amqp")]
    fn build(&self, ctx: &BuildContext<'_>) -> Result<Arc<dyn OutboxPublisher>, FieldError> {
        let url = (ctx.env)(&self.url_env).filter(|u| !u.is_empty()).ok_or_else(|| {
            FieldError::new("url_env", format!("the environment variable {} is not set", self.url_env))
        })?;
        Ok(Arc::new(crate::amqp::AmqpSink::with_url(self, &url).map_err(field)?))
    }

    #[cfg(not(feature = "amqp"))]
    fn build(&self, _ctx: &BuildContext<'_>) -> Result<Arc<dyn OutboxPublisher>, FieldError> {
        Err(FieldError::new("kind", "this build has no RabbitMQ support (build llmsec with --features amqp)"))
    }
}

impl KindConfig for NatsSinkConfig {
    fn kind_name(&self) -> &'static str {
        "nats"
    }

    fn validate(&self) -> Result<(), FieldError> {
        NatsSinkConfig::validate(self).map_err(field)
    }

    #[cfg(feature = "nats")]
    fn build(&self, _ctx: &BuildContext<'_>) -> Result<Arc<dyn OutboxPublisher>, FieldError> {
        Ok(Arc::new(crate::nats::NatsSink::new(self).map_err(field)?))
    }

    #[cfg(not(feature = "nats"))]
    fn build(&self, _ctx: &BuildContext<'_>) -> Result<Arc<dyn OutboxPublisher>, FieldError> {
        Err(FieldError::new("kind", "this build has no NATS support (build llmsec with --features nats)"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SinkConfig, SinkKind};

    fn parse(toml_text: &str) -> Result<SinkConfig, String> {
        #[derive(serde::Deserialize)]
        struct File {
            sinks: Vec<SinkConfig>,
        }
        toml::from_str::<File>(toml_text).map(|mut f| f.sinks.remove(0)).map_err(|e| e.to_string())
    }

    #[test]
    fn broker_kinds_parse_with_their_own_keys_and_name_mistakes() {
        let s = parse(
            "[[sinks]]\nname = \"mq\"\nkind = \"rabbitmq\"\nurl_env = \"AMQP_URL\"\nexchange = \"llmsec\"\nevents = [\"anomaly.detected\"]\n",
        )
        .expect("a rabbitmq sink");
        assert!(matches!(s.kind, SinkKind::Rabbitmq(_)));
        assert_eq!(s.kind_name(), "rabbitmq");
        assert!(s.validate().is_ok());
        let s =
            parse("[[sinks]]\nname = \"n\"\nkind = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\nstream = \"LLMSEC\"\n")
                .expect("a nats sink");
        assert_eq!(s.kind_name(), "nats");
        let e = parse(
            "[[sinks]]\nname = \"mq\"\nkind = \"rabbitmq\"\nurl_env = \"U\"\nexchange = \"x\"\nexchnage = \"y\"\n",
        )
        .expect_err("an unknown key");
        assert!(e.contains("exchnage"), "{e}");
        let s = parse("[[sinks]]\nname = \"mq\"\nkind = \"rabbitmq\"\nurl_env = \"U\"\nexchange = \"x\"\nrouting_key = \"a.{who}\"\n")
            .expect("parses");
        let e = s.validate().expect_err("an unknown placeholder");
        assert_eq!(e.field, "routing_key", "{e}");
    }
}
