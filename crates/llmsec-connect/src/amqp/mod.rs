//! RabbitMQ (AMQP 0-9-1) out.
//!
//! - **Sink** ([`sink::AmqpSink`], feature `amqp`): an
//!   [`OutboxPublisher`](crate::OutboxPublisher) over `lapin`. Each record
//!   is published to one exchange with a routing key made from a template
//!   (`llmsec.{event}.{tenant}`), on a channel in confirm mode: a publish
//!   returns `Ok` only once the broker confirmed the message. The message's
//!   `message_id` and its `idempotency-key` header are the outbox delivery
//!   id, the same on every retry, so a consumer drops duplicates by it.
//! - The configuration ([`AmqpSinkConfig`]) is always built, so a build
//!   without the feature still names what is wrong with one.

pub mod config;
#[cfg(feature = "amqp")]
pub mod sink;

pub use config::{AmqpSinkConfig, ExchangeType};
#[cfg(feature = "amqp")]
pub use sink::AmqpSink;

/// The header carrying a record's event name (`anomaly.detected`).
pub const EVENT_HEADER: &str = "event";
/// The header carrying a record's tenant.
pub const TENANT_HEADER: &str = "tenant";
/// The header carrying a record's idempotency key (also its `message_id`).
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
