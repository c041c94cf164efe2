//! Storage for the llm-security server.
//!
//! One [`Store`] trait is the seam between the server and its database.
//! [`SqlStore`] implements it over sqlx's `Any` driver, so the same SQL and
//! the same [migrations](crate::migrations) serve the embedded default,
//! SQLite in WAL mode (`sqlite://data/llmsec.db`), and PostgreSQL
//! (`postgres://…`, behind the `postgres` cargo feature).
//!
//! What it keeps: API keys (hashes only, with their gateway model
//! allow-lists and budgets, and the usage counted against them), security
//! events (with the input as the server's retention mode allows), webhook
//! subscriptions, the
//! webhook outbox (written in the same transaction as the event that
//! causes it, so an accepted analysis never loses its deliveries), and the
//! hash-chained audit log of admin actions ([`audit::verify_chain`]),
//! each tenant's changes to Sentinel detectors, the quarantine of requests
//! and completions held for review, and the campaigns the server
//! correlates threats and anomalies into.
//!
//! Prompt and completion text (security events' `input`, telemetry bodies'
//! `data.prompt`, `data.completion` and `data.error`) is sealed with
//! AES-256-GCM when the store is given a [`Cipher`]
//! ([`SqlStore::with_cipher`]) and opened again on every read; the
//! [`cipher`] module says how, and [`SqlStore::rekey`] moves stored text to
//! the primary key after a rotation.
#![deny(missing_docs)]

pub mod audit;
pub mod cipher;
mod migrations;
pub mod model;
mod sql;

pub use cipher::{Cipher, CipherError, EncryptionConfig, KeySource};
pub use model::*;
pub use sql::{Purposes, Rekeyed, SqlStore, redact_url};

/// Events a page of [`for_each_event`] reads (the store's largest page).
const SCAN_PAGE: u32 = 1000;

/// Calls `f` on every event `query` selects (newest first), reading a
/// page at a time with the cursor, and stops after `max` events when given.
/// `query.before` and `query.limit` are ignored. Answers how many events
/// were read and whether more were left unread.
pub async fn for_each_event(
    store: &dyn Store,
    query: &EventQuery,
    max: Option<usize>,
    mut f: impl FnMut(&SecurityEvent),
) -> Result<(usize, bool)> {
    let mut q = EventQuery { before: None, limit: SCAN_PAGE, ..query.clone() };
    let mut read = 0usize;
    loop {
        let page = store.events(&q).await?;
        for e in &page {
            f(e);
        }
        read += page.len();
        match page.last() {
            Some(last) if page.len() == SCAN_PAGE as usize => {
                if max.is_some_and(|m| read >= m) {
                    return Ok((read, true));
                }
                q.before = Some((last.timestamp, last.id.clone()));
            }
            _ => return Ok((read, false)),
        }
    }
}

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database said no.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The URL names a backend this build does not have.
    #[error("unsupported database URL {url:?}: {why}")]
    Url {
        /// The URL, with any password removed.
        url: String,
        /// Why.
        why: String,
    },
    /// The database was migrated by a newer version of llmsec.
    #[error("database schema version {found} is newer than this binary's {supported}")]
    SchemaTooNew {
        /// The version found.
        found: i64,
        /// The newest this binary knows.
        supported: i64,
    },
    /// A stored row could not be read back.
    #[error("corrupt row in {table}: {why}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What was wrong.
        why: String,
    },
    /// A key, webhook or delivery id was used twice.
    #[error("{0} already exists")]
    Conflict(String),
    /// Stored text could not be sealed or opened (an unknown key id, a
    /// value that fails authentication, or no key for `rekey`).
    #[error(transparent)]
    Cipher(#[from] CipherError),
    /// The SQLite database file could not be created or made owner-only.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (the embedded default).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The seam between the server and its database. Every read that returns
/// tenant data takes the tenant: no method reads across tenants except the
/// admin listings that say so.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Which backend this is.
    fn backend(&self) -> Backend;
    /// Checks the database answers.
    async fn ping(&self) -> Result<()>;

    /// Stores a new key.
    async fn insert_key(&self, key: &ApiKeyRecord) -> Result<()>;
    /// Looks a key up by its id.
    async fn key(&self, id: &str) -> Result<Option<ApiKeyRecord>>;
    /// Lists keys, of one tenant or (admin) of all.
    async fn list_keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKeyRecord>>;
    /// Revokes a key; false when there is no such live key.
    async fn revoke_key(&self, id: &str, at: Millis) -> Result<bool>;
    /// Sets a live key's gateway limits (model allow-list and budgets);
    /// false when there is no such live key.
    async fn set_key_limits(&self, id: &str, models: Option<&[String]>, budgets: &[Budget]) -> Result<bool>;
    /// Adds one call's tokens and cost to the key's usage in the day and
    /// the month that hold `at`, atomically (replicas add to the same rows).
    async fn add_key_usage(&self, tenant: &str, key_id: &str, at: Millis, tokens: u64, cost: f64) -> Result<()>;
    /// The key's usage in the day and the month that hold `at` (zero when
    /// nothing was counted), day first.
    async fn key_usage(&self, tenant: &str, key_id: &str, at: Millis) -> Result<Vec<KeyUsage>>;
    /// Holds `hold` against the key's `budgets` in the day and the month
    /// that hold `at`, when it fits each of them (used < limit, and used +
    /// held + this hold ≤ limit), in one transaction with a conditional
    /// update per period row, so that calls on several replicas sharing the
    /// database cannot pass a budget together. Holds of the key past their
    /// `expires_at` are released first. `Some` names the budget it did not
    /// fit; nothing is held then.
    async fn hold_key_budget(
        &self,
        tenant: &str,
        key_id: &str,
        at: Millis,
        budgets: &[Budget],
        hold: &BudgetHold,
    ) -> Result<Option<BudgetShortfall>>;
    /// Adds one call's usage as [`Store::add_key_usage`] does and releases
    /// the holds named in `holds`, in one transaction. A hold already
    /// released (settled before, or reclaimed after it expired) is skipped.
    async fn settle_key_usage(
        &self,
        tenant: &str,
        key_id: &str,
        at: Millis,
        tokens: u64,
        cost: f64,
        holds: &[String],
    ) -> Result<()>;

    /// Queues deliveries that belong to no security event (Sentinel actions).
    async fn enqueue(&self, deliveries: &[Delivery]) -> Result<()>;
    /// Stores analyses and the deliveries they cause, all in one transaction.
    async fn record(&self, batch: &[Record]) -> Result<()>;
    /// Reads events, newest first.
    async fn events(&self, q: &EventQuery) -> Result<Vec<SecurityEvent>>;
    /// Counts a tenant's events matching the query (cursor and limit ignored).
    async fn count_events(&self, q: &EventQuery) -> Result<u64>;
    /// Retention: deletes what is older than `before` in every table that
    /// holds user content: security events, telemetry (once run through
    /// the detectors), resolved anomalies, finished deliveries (delivered
    /// or dead), expired enforcements, decided quarantine items and
    /// campaigns last seen before it.
    async fn purge_expired(&self, before: Millis) -> Result<Removed>;
    /// Erasure, in one transaction: deletes everything of one user of one
    /// tenant: their security events and telemetry, the anomalies and
    /// enforcements about them, the deliveries whose bodies name them, and
    /// their quarantined items.
    async fn erase_user(&self, tenant: &str, user_id: &str) -> Result<Removed>;

    /// Stores a webhook subscription.
    async fn insert_webhook(&self, w: &Webhook) -> Result<()>;
    /// Stores a webhook subscription unless its id exists (then nothing changes).
    async fn ensure_webhook(&self, w: &Webhook) -> Result<()>;
    /// Lists subscriptions, of one tenant or (admin) of all.
    async fn webhooks(&self, tenant: Option<&str>) -> Result<Vec<Webhook>>;
    /// Deletes a subscription of a tenant; false when there is none.
    async fn delete_webhook(&self, tenant: &str, id: &str) -> Result<bool>;

    /// Takes up to `limit` pending deliveries due at `now` and leases them
    /// until `lease_until`: a worker that dies mid-delivery leaves them to be
    /// taken again once the lease ends (at-least-once).
    async fn claim_deliveries(&self, now: Millis, lease_until: Millis, limit: u32) -> Result<Vec<Delivery>>;
    /// Records how an attempt ended.
    async fn finish_attempt(&self, id: &str, attempt: &Attempt, now: Millis) -> Result<()>;
    /// Lists a tenant's deliveries, newest first, optionally of one status.
    async fn deliveries(&self, tenant: &str, status: Option<DeliveryStatus>, limit: u32) -> Result<Vec<Delivery>>;
    /// Counts the deliveries of every tenant in one status (the outbox
    /// backlog when `Pending`, the dead letters when `Dead`).
    async fn count_deliveries(&self, status: DeliveryStatus) -> Result<u64>;
    /// Puts a dead delivery back in the queue; false when the tenant has no such dead delivery.
    async fn redeliver(&self, tenant: &str, id: &str, now: Millis) -> Result<bool>;

    /// Appends to the audit log and returns the entry with its hash.
    async fn append_audit(&self, entry: NewAudit, at: Millis) -> Result<AuditEntry>;
    /// Reads the audit log in order, from `after_seq + 1`.
    async fn audit_log(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditEntry>>;

    /// Stores telemetry events in one transaction; for each, whether it was
    /// new (`false`: the tenant already had that event id, nothing changed).
    async fn ingest(&self, rows: &[TelemetryRow]) -> Result<Vec<bool>>;
    /// Events accepted but not yet run through the detectors, oldest first
    /// (replayed after a restart).
    async fn pending_telemetry(&self, limit: u32) -> Result<Vec<TelemetryRow>>;
    /// Marks events as run through the detectors.
    async fn mark_processed(&self, keys: &[(String, String)]) -> Result<()>;
    /// The applications, as `(tenant, application_id)`, with events
    /// pending, sorted (replicas share out Sentinel's work by application).
    async fn pending_applications(&self) -> Result<Vec<(String, String)>>;
    /// The pending events of these applications only, oldest first.
    async fn pending_telemetry_of(&self, apps: &[(String, String)], limit: u32) -> Result<Vec<TelemetryRow>>;
    /// Counts a tenant's stored telemetry events (all, or from `since`).
    async fn count_telemetry(&self, tenant: &str, since: Option<Millis>) -> Result<u64>;
    /// Reads a tenant's telemetry events in a time range, oldest first.
    async fn telemetry(&self, tenant: &str, start: Millis, end: Millis, limit: u32) -> Result<Vec<TelemetryRow>>;

    /// Inserts or replaces an anomaly.
    async fn put_anomaly(&self, row: &AnomalyRow) -> Result<()>;
    /// One anomaly of a tenant.
    async fn anomaly(&self, tenant: &str, id: &str) -> Result<Option<AnomalyRow>>;
    /// Anomalies of every tenant still open (active, acknowledged or suppressed), for restarts.
    async fn open_anomalies(&self, limit: u32) -> Result<Vec<AnomalyRow>>;
    /// A page of anomalies and the total matching.
    async fn anomalies(&self, q: &AnomalyQuery) -> Result<(Vec<AnomalyRow>, u64)>;

    /// Stores a tenant's detector override, replacing the one it had for that detector.
    async fn put_detector_override(&self, o: &DetectorOverride) -> Result<()>;
    /// Detector overrides, of one tenant or (at start-up) of all, by tenant and detector.
    async fn detector_overrides(&self, tenant: Option<&str>) -> Result<Vec<DetectorOverride>>;
    /// Drops a tenant's override of one detector; false when it had none.
    async fn delete_detector_override(&self, tenant: &str, detector_id: &str) -> Result<bool>;

    /// Stores an enforcement.
    async fn insert_enforcement(&self, e: &Enforcement) -> Result<()>;
    /// Stores a red-team run.
    async fn insert_redteam_run(&self, run: &RedteamRun) -> Result<()>;
    /// The tenant's red-team runs in `[since, until)`, newest first.
    async fn redteam_runs(&self, tenant: &str, since: Millis, until: Millis, limit: u32) -> Result<Vec<RedteamRun>>;
    /// One of the tenant's red-team runs.
    async fn redteam_run(&self, tenant: &str, id: &str) -> Result<Option<RedteamRun>>;
    /// One of the tenant's enforcements, in force or not.
    async fn enforcement(&self, tenant: &str, id: &str) -> Result<Option<Enforcement>>;
    /// Ends one of the tenant's enforcements at `at`; false when it was not
    /// in force then.
    async fn end_enforcement(&self, tenant: &str, id: &str, at: Millis) -> Result<bool>;
    /// Every enforcement in force at `now`, of all tenants (for caches).
    async fn enforcements_in_force(&self, now: Millis) -> Result<Vec<Enforcement>>;
    /// The tenant's enforcements in force at `now` on any of these entities.
    async fn active_enforcements(
        &self,
        tenant: &str,
        entities: &[(&str, &str)],
        now: Millis,
    ) -> Result<Vec<Enforcement>>;

    /// Stores a newly held item.
    async fn put_quarantine(&self, item: &QuarantineItem) -> Result<()>;
    /// One of the tenant's held items.
    async fn quarantined(&self, tenant: &str, id: &str) -> Result<Option<QuarantineItem>>;
    /// A page of the tenant's held items, newest first, and how many match.
    async fn list_quarantine(&self, q: &QuarantineQuery) -> Result<(Vec<QuarantineItem>, u64)>;
    /// Decides one of the tenant's pending items, compare-and-set on its
    /// status: false when it is not pending (already decided, or none), so
    /// two reviewers cannot both decide it.
    async fn decide_quarantine(&self, tenant: &str, id: &str, d: &QuarantineDecision) -> Result<bool>;
    /// Pending items of every tenant whose hold ended at or before `now`,
    /// oldest first.
    async fn quarantine_due(&self, now: Millis, limit: u32) -> Result<Vec<QuarantineItem>>;
    /// Counts the pending items of every tenant.
    async fn count_pending_quarantine(&self) -> Result<u64>;
    /// Inserts or replaces a campaign.
    async fn put_campaign(&self, row: &CampaignRow) -> Result<()>;
    /// One campaign of a tenant.
    async fn campaign(&self, tenant: &str, id: &str) -> Result<Option<CampaignRow>>;
    /// A page of a tenant's campaigns, most recently seen first, and the total matching.
    async fn campaigns(&self, q: &CampaignQuery) -> Result<(Vec<CampaignRow>, u64)>;
    /// Active campaigns of every tenant seen at or after `since`, most
    /// recently seen first (restored at start).
    async fn active_campaigns(&self, since: Millis, limit: u32) -> Result<Vec<CampaignRow>>;

    /// Where an export stream stands; `None` before its first export.
    async fn export_position(&self, stream: &str) -> Result<Option<ExportPosition>>;
    /// Stores where an export stream stands, replacing what it had.
    async fn set_export_position(&self, p: &ExportPosition) -> Result<()>;
    /// The earliest time at or after `from` of a row of `source`, of any
    /// tenant; `None` when there is none.
    async fn first_time_from(&self, source: ExportSource, from: Millis) -> Result<Option<Millis>>;
    /// The tenants with rows of `source` in `[from, to)`, sorted.
    async fn tenants_between(&self, source: ExportSource, from: Millis, to: Millis) -> Result<Vec<String>>;
}
