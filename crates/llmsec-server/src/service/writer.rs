//! Group commit for analysis events.
//!
//! Each request hands its [`Record`]s (event + webhook deliveries) to one
//! writer task and waits for the commit before answering, so an answered
//! request is durable. The writer takes everything queued at that moment
//! into one transaction: under load hundreds of events share one commit
//! (one fsync on SQLite), and alone an event commits at once. A request's
//! records commit together, and only if its [`Deadline`] can still be
//! claimed: nothing of a request answered 408 is stored.

use std::sync::Arc;

use llmsec_store::{Record, Store};
use tokio::sync::{mpsc, oneshot};

use crate::service::ServiceError;
use crate::service::deadline::Deadline;

/// Most requests in one transaction.
const MAX_BATCH: usize = 512;

/// One request's records (committed together or not at all), its deadline,
/// and where to answer.
type Job = (Vec<Record>, Option<Deadline>, oneshot::Sender<Result<(), ServiceError>>);

/// The handle requests use to store records.
#[derive(Debug, Clone)]
pub struct EventWriter {
    tx: mpsc::Sender<Job>,
}

impl EventWriter {
    /// Starts the writer task. It ends, after committing what is queued,
    /// once every handle is dropped.
    pub fn start(store: Arc<dyn Store>) -> (EventWriter, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel::<Job>(8192);
        let task = tokio::spawn(run(store, rx));
        (EventWriter { tx }, task)
    }

    /// Stores one request's records in one transaction; returns once they
    /// are committed. With a `deadline`, nothing is committed once it has
    /// passed or the request was cancelled: that is a `408`.
    pub async fn write(&self, records: Vec<Record>, deadline: Option<&Deadline>) -> Result<(), ServiceError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((records, deadline.cloned(), done))
            .await
            .map_err(|_| ServiceError::Unavailable("shutting down".into()))?;
        wait.await.unwrap_or_else(|_| Err(ServiceError::Unavailable("event writer stopped".into())))
    }
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Job>) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        // All records in one slice; each request's are a range of it.
        let mut records: Vec<Record> = Vec::new();
        let mut spans = Vec::with_capacity(jobs.len());
        for (recs, deadline, done) in jobs.drain(..) {
            if deadline.is_some_and(|d| !d.claim()) {
                let _ = done.send(Err(ServiceError::Timeout));
                continue;
            }
            let start = records.len();
            records.extend(recs);
            spans.push((start..records.len(), done));
        }
        if spans.is_empty() {
            continue;
        }
        metrics::histogram!(crate::metrics::WRITE_BATCH).record(records.len() as f64);
        match store.record(&records).await {
            Ok(()) => {
                for (_, done) in spans {
                    let _ = done.send(Ok(()));
                }
            }
            // One bad request must not fail the ones it happened to share a
            // transaction with: retry each alone, so only the bad one fails.
            Err(e) if spans.len() > 1 => {
                tracing::warn!(error = %e, requests = spans.len(), "batch commit failed; retrying one by one");
                for (span, done) in spans {
                    let result = store.record(&records[span.clone()]).await;
                    if let Err(e) = &result {
                        let first = records[span].first().map(|r| r.event.id.clone()).unwrap_or_default();
                        tracing::error!(error = %e, event = %first, "storing events failed");
                    }
                    let _ = done.send(result.map_err(|e| ServiceError::Unavailable(format!("event store: {e}"))));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "storing events failed");
                for (_, done) in spans {
                    let _ = done.send(Err(ServiceError::Unavailable(format!("event store: {e}"))));
                }
            }
        }
    }
}
