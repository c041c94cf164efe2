//! The Kafka sink: outbox deliveries published to their topics.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::{EVENT_HEADER, IDEMPOTENCY_HEADER, KafkaConfig, KafkaError, TENANT_HEADER};
use crate::publish::{OutboxPublisher, OutboxRecord, PublishError};

/// How long one publish may wait for the broker before the outbox retries it.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// A producer the outbox worker publishes through. A record counts as
/// published once every in-sync replica has it (`acks=all`).
pub struct KafkaSink {
    producer: FutureProducer,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink").finish_non_exhaustive()
    }
}

/// A producer configured from `[kafka]`, shared by the sink and the source's dead letters.
pub(crate) fn producer(cfg: &KafkaConfig) -> Result<FutureProducer, KafkaError> {
    cfg.validate()?;
    let mut c = ClientConfig::new();
    for (k, v) in &cfg.options {
        c.set(k, v);
    }
    c.set("bootstrap.servers", &cfg.brokers)
        .set("client.id", &cfg.client_id)
        .set("acks", "all")
        .set("message.timeout.ms", PUBLISH_TIMEOUT.as_millis().to_string())
        .set("linger.ms", "5");
    Ok(c.create()?)
}

impl KafkaSink {
    /// A sink over the brokers of `cfg`.
    pub fn new(cfg: &KafkaConfig) -> Result<KafkaSink, KafkaError> {
        Ok(KafkaSink { producer: producer(cfg)? })
    }
}

#[async_trait::async_trait]
impl OutboxPublisher for KafkaSink {
    async fn publish(&self, r: OutboxRecord<'_>) -> Result<(), PublishError> {
        let headers = OwnedHeaders::new()
            .insert(Header { key: IDEMPOTENCY_HEADER, value: Some(r.idempotency_key) })
            .insert(Header { key: EVENT_HEADER, value: Some(r.event) })
            .insert(Header { key: TENANT_HEADER, value: Some(r.tenant) });
        let record = FutureRecord::to(r.topic).key(r.key).payload(r.payload).headers(headers);
        match self.producer.send(record, PUBLISH_TIMEOUT).await {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(PublishError(e.to_string())),
        }
    }
}
