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
