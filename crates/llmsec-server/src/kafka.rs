//! Kafka wiring: the telemetry ingestion path as llmsec-connect's
//! [`TelemetryIngest`], and (feature `kafka`) the source and sink started
//! from `[kafka]`.
//!
//! A Kafka source is a caller like an ingest key: its events go through
//! [`service::telemetry::admit`] and [`service::telemetry::accept`], the same
//! admission, storage (idempotent on `event_id`) and Sentinel hand-off that
//! REST, gRPC and OTLP use, for the tenant the source is configured with.

use llm_sentinel::event::TelemetryEvent;
use llmsec_connect::{Admission, IngestError, TelemetryIngest};
use llmsec_store::Scope;

use crate::service::{self, Caller, Services};

/// The ingestion path for a source.
#[derive(Debug, Clone)]
pub struct Ingest {
    svc: Services,
}

impl Ingest {
    /// Ingestion into `svc`.
    pub fn new(svc: Services) -> Ingest {
        Ingest { svc }
    }
}

#[async_trait::async_trait]
impl TelemetryIngest for Ingest {
    async fn ingest(&self, tenant: &str, events: Vec<TelemetryEvent>) -> Result<Vec<Admission>, IngestError> {
        let caller = Caller {
            key_id: "kafka-source".into(),
            tenant: tenant.to_owned(),
            scopes: vec![Scope::Ingest],
            rate_per_sec: None,
            models: None,
            budgets: Vec::new(),
        };
        let mut out = vec![Admission::New; events.len()];
        let (mut admitted, mut at) = (Vec::with_capacity(events.len()), Vec::with_capacity(events.len()));
        for (i, e) in events.into_iter().enumerate() {
            if e.tenant_id.as_deref().is_some_and(|t| t != tenant) {
                out[i] = Admission::Rejected(
                    "tenant_id: names another tenant than the source's (kafka.source.tenant)".into(),
                );
                continue;
            }
            match service::telemetry::admit(&caller, e, "") {
                Ok(e) => {
                    admitted.push(e);
                    at.push(i);
                }
                Err(err) => out[i] = Admission::Rejected(reason(err)),
            }
        }
        let fresh =
            service::telemetry::accept(&self.svc, &caller, admitted).await.map_err(|e| IngestError(e.to_string()))?;
        for (i, new) in at.into_iter().zip(fresh) {
            out[i] = if new { Admission::New } else { Admission::Duplicate };
        }
        Ok(out)
    }
}

/// A dead-letter reason: the field and what is wrong with it.
fn reason(err: service::ServiceError) -> String {
    match err {
        service::ServiceError::Invalid { field: Some(field), message } => format!("{field}: {message}"),
        other => other.to_string(),
    }
}

/// What [`start`] started: the sink's publisher and the source's task, each when configured.
#[cfg(feature = "kafka")]
pub type Started = (Option<std::sync::Arc<dyn llmsec_connect::OutboxPublisher>>, Option<tokio::task::JoinHandle<()>>);

/// Starts the `[kafka]` source (if configured) and builds the sink's
/// publisher (if configured); the source runs until `stop`.
#[cfg(feature = "kafka")]
pub fn start(svc: &Services, stop: tokio::sync::watch::Receiver<bool>) -> Result<Started, String> {
    use std::sync::Arc;

    use llmsec_connect::kafka::{sink::KafkaSink, source::KafkaSource};

    let Some(cfg) = &svc.config.kafka else { return Ok((None, None)) };
    let publisher: Option<Arc<dyn llmsec_connect::OutboxPublisher>> = match &cfg.sink {
        Some(_) => Some(Arc::new(KafkaSink::new(cfg).map_err(|e| e.to_string())?)),
        None => None,
    };
    let source = KafkaSource::new(cfg, Arc::new(Ingest::new(svc.clone()))).map_err(|e| e.to_string())?;
    let task = source.map(|s| {
        tracing::info!(brokers = %cfg.brokers, "kafka source started");
        tokio::spawn(s.run(stop))
    });
    Ok((publisher, task))
}
