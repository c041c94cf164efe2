//! The seam between a telemetry source and the server's ingestion path.

use llm_sentinel::event::TelemetryEvent;

/// What became of one event handed to [`TelemetryIngest::ingest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Stored durably; the tenant did not have its `event_id` yet.
    New,
    /// The tenant already had this `event_id`; nothing changed (a redelivery).
    Duplicate,
    /// Refused by admission (validation, tenant): the reason, naming the field.
    Rejected(String),
}

/// The store could not take the batch; nothing can be assumed stored, and
/// the same batch may be offered again (ingestion is idempotent on `event_id`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("ingestion failed: {0}")]
pub struct IngestError(pub String);

/// The path REST, gRPC and OTLP telemetry takes in the server (admission,
/// storage idempotent on `event_id`, hand-off to Sentinel), as a source
/// sees it.
#[async_trait::async_trait]
pub trait TelemetryIngest: Send + Sync + std::fmt::Debug {
    /// Admits `events` for `tenant` and stores the admitted ones in one
    /// durable write; one [`Admission`] per event, in order. Returns only
    /// once what it reports as stored is durable.
    async fn ingest(&self, tenant: &str, events: Vec<TelemetryEvent>) -> Result<Vec<Admission>, IngestError>;
}
