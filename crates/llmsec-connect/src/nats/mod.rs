//! NATS (JetStream) out.
//!
//! - **Sink** ([`sink::NatsSink`], feature `nats`): an
//!   [`OutboxPublisher`](crate::OutboxPublisher) over `async-nats`. Each
//!   record is published to JetStream on a subject made from a template
//!   (`llmsec.{event}.{tenant}`) and counts as published once a stream
//!   stored it. Its `Nats-Msg-Id` header is the outbox delivery id, the same
//!   on every retry, so JetStream stores a record published twice within the
//!   stream's duplicate window once.
//! - The configuration ([`NatsSinkConfig`]) is always built, so a build
//!   without the feature still names what is wrong with one.

pub mod config;
#[cfg(feature = "nats")]
pub mod sink;

pub use config::{NatsSinkConfig, subject_value};
#[cfg(feature = "nats")]
pub use sink::NatsSink;

/// The header carrying a record's event name (`anomaly.detected`).
pub const EVENT_HEADER: &str = "event";
/// The header carrying a record's tenant.
pub const TENANT_HEADER: &str = "tenant";
/// The header carrying a record's idempotency key (also its `Nats-Msg-Id`).
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
