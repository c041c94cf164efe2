//! The edges of llm-security to other systems.
//!
//! Each edge is a small module behind a cargo feature, and none of them
//! knows the server: what an edge needs from it is a trait defined here
//! ([`TelemetryIngest`] for sources, [`OutboxPublisher`] for what the
//! server's outbox worker hands to a broker), which `llmsec-server`
//! implements or calls. So the arrows point from the server to this crate,
//! never back.
//!
//! - [`kafka`]: the configuration, the message decoding and the batch
//!   logic are always built (the server parses `[kafka]` and names what is
//!   wrong with it in any build); the consumer and producer over librdkafka
//!   need the `kafka` feature (`kafka::source`, `kafka::sink`).
//! - [`amqp`]: the RabbitMQ outbox sink (`amqp::AmqpSink`, feature `amqp`),
//!   publisher confirms, reconnecting after a failure.
//! - [`nats`]: the NATS JetStream outbox sink (`nats::NatsSink`, feature
//!   `nats`), acknowledged once stored, deduplicated by `Nats-Msg-Id`.
//! - [`sinks`]: operator sinks (`[[sinks]]`): Splunk HEC, Elastic bulk
//!   with ECS documents, Splunk SOAR, Grafana annotations and RFC 5424
//!   syslog, each an [`OutboxPublisher`] built from its config. The HTTP
//!   ones send with a `reqwest` client the server hands in (no feature).
//! - [`s3`]: S3-compatible object storage settings (always built, so the
//!   server checks `[export.s3]` in any build) and, with the `s3` feature,
//!   a client that signs with SigV4 and sends over reqwest.
//!
//! The broker sinks' configurations and their routing-key / subject
//! [`template`]s are built without the features, like Kafka's.
#![deny(missing_docs)]

pub mod amqp;
pub mod ingest;
pub mod kafka;
pub mod nats;
pub mod publish;
pub mod s3;
pub mod sinks;
pub mod template;

pub use ingest::{Admission, IngestError, TelemetryIngest};
pub use publish::{OutboxPublisher, OutboxRecord, PublishError, SinkConfigError};
