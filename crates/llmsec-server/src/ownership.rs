//! Which replica runs Sentinel's detectors for which application, when
//! several `llmsec serve` share one PostgreSQL (`[sentinel]
//! own_applications = true`).
//!
//! An application (a tenant and an `application_id`) is owned by the
//! replica holding its PostgreSQL advisory lock, a session lock taken on a
//! connection of its own that this module keeps open: one replica at a
//! time, so a detector's baselines for that application are never split.
//! Every replica stores what it receives; the owner reads the
//! application's pending events from the store and runs them. Locks end
//! with their session: on shutdown they are released, and when a replica
//! dies its connection closes and PostgreSQL drops them, so another
//! replica takes the application at its next round. An application's
//! detector state (windows, baselines) lives in the owner's memory; a new
//! owner starts its own from the events it runs.

use std::collections::BTreeSet;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::{Connection, Row};

/// The first key of every advisory lock taken here; the second is
/// `hashtext(tenant || '\n' || application_id)`. Two applications whose
/// hashes collide share an owner, which splits nothing.
pub const LOCK_CLASS: i32 = 0x4c53_4e31;

/// An application: `(tenant, application_id)`.
pub type App = (String, String);

/// This replica's ownership of applications.
#[derive(Debug)]
pub struct Ownership {
    url: String,
    conn: tokio::sync::Mutex<Option<sqlx::AnyConnection>>,
    owned: RwLock<BTreeSet<App>>,
    settled: AtomicBool,
}

impl Ownership {
    /// Ownership through the PostgreSQL server at `url` (the store's database).
    pub fn new(url: &str) -> Ownership {
        Ownership {
            url: url.to_owned(),
            conn: tokio::sync::Mutex::new(None),
            owned: RwLock::default(),
            settled: AtomicBool::new(false),
        }
    }

    /// Whether the lock session is up and a round has run: until then
    /// this replica does not know what it owns (readiness waits for it).
    pub fn settled(&self) -> bool {
        self.settled.load(Ordering::Acquire)
    }

    /// The applications this replica owns, sorted.
    pub fn owned(&self) -> Vec<App> {
        self.owned.read().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }

    /// One round: checks that the lock session still lives (its locks are
    /// gone with it otherwise), then tries to take each of `candidates`
    /// not owned yet, without waiting. Returns what this replica owns. On
    /// an error the session is dropped and nothing is owned until the next
    /// round opens a new one.
    pub async fn claim(&self, candidates: &[App]) -> Result<Vec<App>, sqlx::Error> {
        let mut guard = self.conn.lock().await;
        let result = self.claim_on(&mut guard, candidates).await;
        if result.is_err() {
            *guard = None;
            self.owned.write().unwrap_or_else(|p| p.into_inner()).clear();
            self.settled.store(false, Ordering::Release);
        }
        result
    }

    async fn claim_on(
        &self,
        guard: &mut Option<sqlx::AnyConnection>,
        candidates: &[App],
    ) -> Result<Vec<App>, sqlx::Error> {
        let conn = match guard {
            Some(c) => {
                sqlx::query("SELECT 1").execute(&mut *c).await?;
                c
            }
            None => {
                // A new session holds nothing yet.
                self.owned.write().unwrap_or_else(|p| p.into_inner()).clear();
                guard.insert(sqlx::AnyConnection::connect(&self.url).await?)
            }
        };
        let owned = self.owned();
        for app in candidates.iter().filter(|a| !owned.contains(a)) {
            let got: bool = sqlx::query("SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok")
                .bind(LOCK_CLASS)
                .bind(format!("{}\n{}", app.0, app.1))
                .fetch_one(&mut *conn)
                .await?
                .try_get("ok")?;
            if got {
                tracing::info!(tenant = %app.0, application = %app.1, "sentinel: this replica now owns the application");
                self.owned.write().unwrap_or_else(|p| p.into_inner()).insert(app.clone());
            }
        }
        self.settled.store(true, Ordering::Release);
        Ok(self.owned())
    }

    /// Releases every application (at shutdown): the other replicas take
    /// them at their next round.
    pub async fn release(&self) {
        let conn = self.conn.lock().await.take();
        self.owned.write().unwrap_or_else(|p| p.into_inner()).clear();
        self.settled.store(false, Ordering::Release);
        if let Some(mut c) = conn {
            if let Err(e) = sqlx::query("SELECT pg_advisory_unlock_all()").execute(&mut c).await {
                tracing::warn!(error = %e, "sentinel: releasing applications failed; they end with the session");
            }
            let _ = c.close().await;
        }
    }
}
