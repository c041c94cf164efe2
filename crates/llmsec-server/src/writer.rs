//! Group commit for analysis events.
//!
//! Each request hands its [`Record`] (event + webhook deliveries) to one
//! writer task and waits for the commit before answering, so an answered
//! request is durable. The writer takes everything queued at that moment
//! into one transaction: under load hundreds of events share one commit
//! (one fsync on SQLite), and alone an event commits at once.

use std::sync::Arc;

use llmsec_store::{Record, Store};
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;

/// Most records in one transaction.
const MAX_BATCH: usize = 512;

type Job = (Record, oneshot::Sender<Result<(), String>>);

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

    /// Stores one record; returns once it is committed.
    pub async fn write(&self, record: Record) -> Result<(), ApiError> {
        let (done, wait) = oneshot::channel();
        self.tx.send((record, done)).await.map_err(|_| ApiError::Unavailable("shutting down".into()))?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ApiError::Unavailable(format!("event store: {e}"))),
            Err(_) => Err(ApiError::Unavailable("event writer stopped".into())),
        }
    }
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Job>) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let (records, dones): (Vec<Record>, Vec<_>) = jobs.drain(..).unzip();
        metrics::histogram!("llm_security_events_write_batch_size").record(records.len() as f64);
        match store.record(&records).await {
            Ok(()) => {
                for done in dones {
                    let _ = done.send(Ok(()));
                }
            }
            // One bad record must not fail the requests it happened to share
            // a transaction with: retry each alone, so only the bad one fails.
            Err(e) if records.len() > 1 => {
                tracing::warn!(error = %e, events = records.len(), "batch commit failed; retrying one by one");
                for (record, done) in records.into_iter().zip(dones) {
                    let result = store.record(std::slice::from_ref(&record)).await.map_err(|e| e.to_string());
                    if let Err(e) = &result {
                        tracing::error!(error = %e, event = %record.event.id, "storing an event failed");
                    }
                    let _ = done.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "storing an event failed");
                for done in dones {
                    let _ = done.send(Err(e.to_string()));
                }
            }
        }
    }
}
