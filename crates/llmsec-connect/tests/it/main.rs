//! End-to-end tests of the broker sinks against real servers.
//!
//! The RabbitMQ tests need `LLMSEC_TEST_AMQP_URL` (an `amqp://` URL), the
//! NATS tests `LLMSEC_TEST_NATS_URL` (`nats://host:port`, with the password
//! of the user `llmsec` in `LLMSEC_TEST_NATS_PASSWORD` when the server asks
//! for one). `scripts/test.sh` starts both servers with `scripts/rabbitmq.sh`
//! and `scripts/nats.sh` and sets them; without them each test prints that
//! it was skipped and passes. Tests that stop and restart a broker start
//! their own, so the shared ones stay up for the others.

#![cfg(any(feature = "amqp", feature = "nats"))]
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

#[cfg(feature = "amqp")]
mod amqp;
#[cfg(feature = "nats")]
mod nats;

use llmsec_connect::OutboxRecord;

/// The value of `var`, or `None` after saying that `test` was skipped.
pub fn env_or_skip(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            eprintln!("skipped {test}: {var} is not set (scripts/test.sh starts the server and sets it)");
            None
        }
    }
}

/// A unique name for this test's exchange, queue or stream.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// The record the tests publish: a JSON envelope like the server's.
#[derive(Debug)]
pub struct Rec {
    pub id: String,
    pub event: String,
    pub tenant: String,
    pub body: Vec<u8>,
}

impl Rec {
    pub fn new(i: usize, event: &str, tenant: &str) -> Rec {
        let id = uuid::Uuid::new_v4().to_string();
        let body = serde_json::json!({"id": id, "event": event, "tenant": tenant, "key": tenant, "data": {"n": i}});
        Rec { id, event: event.to_owned(), tenant: tenant.to_owned(), body: body.to_string().into_bytes() }
    }

    pub fn record(&self) -> OutboxRecord<'_> {
        OutboxRecord {
            topic: "llmsec-test",
            key: &self.tenant,
            idempotency_key: &self.id,
            event: &self.event,
            tenant: &self.tenant,
            payload: &self.body,
        }
    }
}

/// The path of a script under the repository's `scripts/`.
pub fn script(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts").join(name)
}
