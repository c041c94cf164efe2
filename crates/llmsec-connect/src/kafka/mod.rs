//! Kafka in and out.
//!
//! - **Source** ([`source::KafkaSource`], feature `kafka`): consumes seed-002
//!   telemetry events (one per message: JSON, or the gRPC protobuf message
//!   with `format = "protobuf"`) from a topic in a consumer
//!   group, in batches, and hands each batch to [`TelemetryIngest`]. An
//!   offset is committed only after the batch's events are stored and its
//!   poison messages acknowledged on the dead-letter topic
//!   ([`batch`] says why a crash between the two is harmless). While the
//!   store is behind, fetching stops once `queued_batches` batches wait.
//!   Consumer lag per partition is the gauge [`CONSUMER_LAG`].
//! - **Sink** ([`sink::KafkaSink`], feature `kafka`): an
//!   [`OutboxPublisher`](crate::OutboxPublisher): the server's outbox worker
//!   hands it the deliveries meant for a topic, with their idempotency key.
//!
//! [`TelemetryIngest`]: crate::TelemetryIngest

pub mod batch;
pub mod config;
pub mod decode;
#[cfg(feature = "kafka")]
pub mod sink;
#[cfg(feature = "kafka")]
pub mod source;

pub use config::{ConfigError, KafkaConfig, PayloadFormat, SinkConfig, SourceConfig};

/// Gauge: messages of the source topic not yet committed by the group, per
/// `topic` and `partition` (high watermark minus committed offset).
pub const CONSUMER_LAG: &str = "llm_security_kafka_consumer_lag";
/// Counter: source messages by `outcome`: `stored`, `duplicate`, `dead_letter`.
pub const MESSAGES: &str = "llm_security_kafka_messages_total";
/// Counter: source batches whose write failed and were retried.
pub const INGEST_RETRIES: &str = "llm_security_kafka_ingest_retries_total";

/// The header naming why a message was dead-lettered.
pub const REASON_HEADER: &str = "llmsec-dead-letter-reason";
/// The headers naming where a dead letter came from.
pub const SOURCE_HEADERS: [&str; 3] = ["llmsec-source-topic", "llmsec-source-partition", "llmsec-source-offset"];
/// The header carrying a sink record's idempotency key (the outbox delivery id).
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// The header carrying a sink record's event name.
pub const EVENT_HEADER: &str = "llmsec-event";
/// The header carrying a sink record's tenant.
pub const TENANT_HEADER: &str = "llmsec-tenant";

/// What can go wrong starting or running a Kafka client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaError {
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// librdkafka refused.
    #[cfg(feature = "kafka")]
    #[error("kafka: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
}
