//! The deadline a request runs under.
//!
//! The request-timeout middleware gives each request one. Analyses check it
//! before they start (on the blocking pool too), and the event writer
//! *claims* it before committing the request's records. Claiming and
//! cancelling exclude each other: once the middleware has cancelled a
//! request to answer 408, no record of it is committed; when a record was
//! claimed first, the middleware lets the request finish and sends its own
//! answer instead. So a 408 always means that nothing was stored.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::service::ServiceError;

/// A request's deadline; clones share it.
#[derive(Clone, Debug)]
pub struct Deadline(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    at: Instant,
    state: Mutex<State>,
    cancelled: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// No record of the request may be committed any more.
    cancelled: bool,
    /// A record of the request was handed to a transaction.
    claimed: bool,
}

impl Deadline {
    /// A deadline `limit` from now.
    pub fn after(limit: Duration) -> Deadline {
        Deadline(Arc::new(Inner { at: Instant::now() + limit, state: Mutex::default(), cancelled: Notify::new() }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True once the time is up or the request was cancelled.
    pub fn expired(&self) -> bool {
        self.state().cancelled || Instant::now() >= self.0.at
    }

    /// `Timeout` once [`expired`](Self::expired).
    pub fn check(&self) -> Result<(), ServiceError> {
        if self.expired() { Err(ServiceError::Timeout) } else { Ok(()) }
    }

    /// Called by the event writer before it commits a record of this
    /// request: false once the request was cancelled or its time is up, and
    /// from then on no record of it is committed.
    pub fn claim(&self) -> bool {
        let mut s = self.state();
        if s.cancelled || Instant::now() >= self.0.at {
            s.cancelled = true;
            drop(s);
            self.0.cancelled.notify_waiters();
            return false;
        }
        s.claimed = true;
        true
    }

    /// Stops the request from storing anything more. True when nothing of
    /// it was stored or is being stored, so that a timeout answer is true.
    pub fn cancel(&self) -> bool {
        let mut s = self.state();
        s.cancelled = true;
        let stored = s.claimed;
        drop(s);
        self.0.cancelled.notify_waiters();
        !stored
    }

    /// Completes when the time is up or the request is cancelled.
    pub async fn done(&self) {
        let notified = self.0.cancelled.notified();
        let mut notified = std::pin::pin!(notified);
        // Registered before the flag is read, so a cancel in between wakes it.
        notified.as_mut().enable();
        if self.state().cancelled {
            return;
        }
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep_until(self.0.at) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_request_claims_nothing() {
        let d = Deadline::after(Duration::from_secs(60));
        assert!(!d.expired());
        assert!(d.cancel(), "nothing was stored");
        assert!(d.expired());
        assert!(!d.claim(), "the writer may not commit after the timeout answer");
    }

    #[test]
    fn a_claimed_request_is_not_answered_408() {
        let d = Deadline::after(Duration::from_secs(60));
        assert!(d.claim());
        assert!(!d.cancel(), "a record is committed or being committed");
        assert!(!d.claim(), "but no further one");
    }

    #[tokio::test]
    async fn time_up_refuses_claims_and_wakes_waiters() {
        let d = Deadline::after(Duration::from_millis(50));
        tokio::time::timeout(Duration::from_secs(5), d.done()).await.unwrap();
        assert!(d.check().is_err());
        assert!(!d.claim());
        assert!(d.cancel(), "nothing was claimed before the time was up");
    }

    #[tokio::test]
    async fn cancel_wakes_waiters() {
        let d = Deadline::after(Duration::from_secs(60));
        let waiting = tokio::spawn({
            let d = d.clone();
            async move { d.done().await }
        });
        tokio::task::yield_now().await;
        d.cancel();
        tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
    }
}
