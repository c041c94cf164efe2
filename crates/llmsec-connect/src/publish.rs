//! The seam between the server's outbox worker and a broker sink.

/// A publish that did not reach the broker; the outbox retries it later.
#[derive(Debug, Clone, thiserror::Error)]
#[error("publish failed: {0}")]
pub struct PublishError(pub String);

/// A record from the outbox for one topic.
#[derive(Debug, Clone, Copy)]
pub struct OutboxRecord<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition key (the application id, or the tenant).
    pub key: &'a str,
    /// The delivery id: the same on every attempt, so a consumer can drop duplicates.
    pub idempotency_key: &'a str,
    /// The event name, e.g. `anomaly.detected`.
    pub event: &'a str,
    /// The tenant.
    pub tenant: &'a str,
    /// The JSON body.
    pub payload: &'a [u8],
}

/// Publishes outbox deliveries to a broker. A call returns `Ok` only once
/// the broker has acknowledged the record.
#[async_trait::async_trait]
pub trait OutboxPublisher: Send + Sync + std::fmt::Debug {
    /// Publishes one record and waits for the broker's acknowledgement.
    async fn publish(&self, record: OutboxRecord<'_>) -> Result<(), PublishError>;
}

/// A broker sink's setting that cannot work, named by its key in the sink's
/// configuration (e.g. `routing_key`), so the caller can put it under the
/// path it read the sink from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SinkConfigError {
    /// The key, e.g. `routing_key` or `url_env`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl SinkConfigError {
    /// An error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> SinkConfigError {
        SinkConfigError { field: field.into(), message: message.into() }
    }
}

/// The value of the environment variable named by the setting `field`
/// (`url_env`, `password_env`, …). The value is a secret: errors name the
/// variable, never what it holds.
#[cfg_attr(not(any(feature = "amqp", feature = "nats")), allow(dead_code))]
pub(crate) fn secret_from_env(field: &str, var: &str) -> Result<String, SinkConfigError> {
    if var.trim().is_empty() {
        return Err(SinkConfigError::new(field, "must name an environment variable"));
    }
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(v),
        Ok(_) => Err(SinkConfigError::new(field, format!("the environment variable {var} is empty"))),
        Err(std::env::VarError::NotPresent) => {
            Err(SinkConfigError::new(field, format!("the environment variable {var} is not set")))
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(SinkConfigError::new(field, format!("the environment variable {var} is not UTF-8")))
        }
    }
}
