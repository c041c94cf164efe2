//! [`SqlStore`]: the [`Store`] over sqlx's `Any` driver.
//!
//! Placeholders are `$1, $2, …`, which PostgreSQL reads as positions and
//! SQLite as names bound in order of first appearance: every statement here
//! therefore introduces its placeholders in ascending order.

use std::time::Duration;

use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyPool, Executor, Row};

use crate::audit::{GENESIS, entry_hash};
use crate::cipher::{self, Cipher, Place};
use crate::migrations::MIGRATIONS;
use crate::model::*;
use crate::{Backend, Result, Store, StoreError};

/// Most rows one listing returns.
const MAX_LIMIT: u32 = 1000;
/// Any number that names our advisory lock on PostgreSQL.
const PG_LOCK: i64 = 0x6c6c_6d73_6563;

/// A [`Store`] on SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    /// Serializes audit appends in this process (SQLite has no advisory locks).
    audit_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Stops the SQLite checkpointer when the last clone goes.
    _checkpointer: Option<std::sync::Arc<AbortOnDrop>>,
    /// Seals prompt and completion text on write; `None` stores it plain.
    cipher: Option<std::sync::Arc<Cipher>>,
    /// The purpose stamped on each new row.
    purposes: Purposes,
}

/// The declared purpose (`[privacy] purposes`) the store stamps on each new
/// row of a kind; `None` leaves the row's `purpose` NULL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purposes {
    /// Of security events.
    pub events: Option<String>,
    /// Of telemetry events.
    pub telemetry: Option<String>,
}

/// What [`SqlStore::rekey`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rekeyed {
    /// Security events with stored input that were read.
    pub events_scanned: u64,
    /// Of those, the ones rewritten under the primary key.
    pub events_rewritten: u64,
    /// Telemetry events read.
    pub telemetry_scanned: u64,
    /// Of those, the ones rewritten under the primary key.
    pub telemetry_rewritten: u64,
    /// Items held for review (their text) read.
    pub quarantine_scanned: u64,
    /// Of those, the ones rewritten under the primary key.
    pub quarantine_rewritten: u64,
}

/// The place of a security event's input.
fn input_place<'a>(tenant: &'a str, id: &'a str) -> Place<'a> {
    Place { table: "security_events", column: "input", tenant, id }
}

/// The place of a held item's text.
fn quarantine_place<'a>(tenant: &'a str, id: &'a str) -> Place<'a> {
    Place { table: "quarantine", column: "content", tenant, id }
}

/// The text fields of a telemetry body that are sealed, with their column names.
const BODY_TEXTS: [(&str, &str); 3] =
    [("prompt", "body.data.prompt"), ("completion", "body.data.completion"), ("error", "body.data.error")];

/// Applies `f` to each text field (`data.prompt`, `data.completion`,
/// `data.error`) of a telemetry body; `None` when the body is not JSON.
fn map_body_texts(
    body: &str,
    mut f: impl FnMut(&str, &'static str) -> Result<Option<String>>,
) -> Result<Option<(String, bool)>> {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(body) else { return Ok(None) };
    let mut changed = false;
    if let Some(data) = v.get_mut("data").and_then(|d| d.as_object_mut()) {
        for (field, column) in BODY_TEXTS {
            if let Some(serde_json::Value::String(text)) = data.get_mut(field)
                && let Some(new) = f(text, column)?
            {
                *text = new;
                changed = true;
            }
        }
    }
    Ok(Some((if changed { v.to_string() } else { body.to_owned() }, changed)))
}

/// A telemetry body as stored: its texts sealed (or escaped, without a cipher).
fn seal_body<'b>(
    cipher: Option<&Cipher>,
    body: &'b str,
    tenant: &str,
    event_id: &str,
) -> Result<std::borrow::Cow<'b, str>> {
    // Without a cipher only text beginning `enc:` changes (it is escaped).
    if cipher.is_none() && !body.contains("\"enc:") {
        return Ok(body.into());
    }
    let sealed = map_body_texts(body, |text, column| {
        Ok(Some(cipher::seal(cipher, text, &Place { table: "telemetry_events", column, tenant, id: event_id })?))
    })?;
    Ok(match sealed {
        Some((b, _)) => b.into(),
        None => body.into(),
    })
}

/// A stored telemetry body with its texts opened.
fn open_body(cipher: Option<&Cipher>, body: String, tenant: &str, event_id: &str) -> Result<String> {
    if !body.contains("\"enc:") {
        return Ok(body);
    }
    let opened = map_body_texts(&body, |text, column| {
        Ok(Some(cipher::open(cipher, text, &Place { table: "telemetry_events", column, tenant, id: event_id })?))
    })?;
    Ok(opened.map_or(body, |(b, _)| b))
}

/// Aborts a background task when dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often the SQLite WAL is checkpointed in the background (2 s measured
/// better than 0.5 s under the /analyze load: docs/PERFORMANCE.md).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(2000);

/// The SQLite file holds key hashes, webhook secrets and stored prompts, so
/// it is owner-only (0600): created so before SQLite opens it (when the URL
/// lets SQLite create it), which its `-wal` and `-shm` files then copy, as
/// SQLite gives them its database's mode. An existing database, `-wal` or
/// `-shm` file open to group or others is set to 0600, with a warning.
#[cfg(unix)]
fn secure_sqlite_files(url: &str) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let opts: sqlx::sqlite::SqliteConnectOptions =
        url.parse().map_err(|e: sqlx::Error| StoreError::Url { url: redact_url(url), why: e.to_string() })?;
    let db = opts.get_filename().to_path_buf();
    if url.contains("mode=rwc") {
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&db) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(StoreError::File { path: db, source }),
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.clone().into_os_string();
        name.push(suffix);
        let path = std::path::PathBuf::from(name);
        let mode = match std::fs::metadata(&path) {
            Ok(m) => m.permissions().mode(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(StoreError::File { path, source }),
        };
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|source| StoreError::File { path: path.clone(), source })?;
            tracing::warn!(file = %path.display(), was = format!("{:o}", mode & 0o777), "database file was open to group or others; set to 0600");
        }
    }
    Ok(())
}

/// Other systems have no Unix modes to set.
#[cfg(not(unix))]
fn secure_sqlite_files(_url: &str) -> Result<()> {
    Ok(())
}

/// A URL with its password, if any, replaced (for errors and logs).
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl SqlStore {
    /// Opens (creating if needed) and migrates the database at `url`:
    /// `sqlite://PATH` (file created, WAL mode), `sqlite::memory:`, or
    /// `postgres://…` when built with the `postgres` feature.
    pub async fn connect(url: &str) -> Result<SqlStore> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let mut u = format!("sqlite:{rest}");
            if !rest.contains("memory") && !rest.contains("mode=") {
                u.push_str(if rest.contains('?') { "&mode=rwc" } else { "?mode=rwc" });
            }
            (Backend::Sqlite, u)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            if !cfg!(feature = "postgres") {
                return Err(StoreError::Url {
                    url: redact_url(url),
                    why: "this build has no PostgreSQL support (cargo feature `postgres`)".into(),
                });
            }
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(StoreError::Url {
                url: redact_url(url),
                why: "expected sqlite://PATH, sqlite::memory: or postgres://…".into(),
            });
        };
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        if backend == Backend::Sqlite && !memory {
            secure_sqlite_files(&url)?;
        }
        let opts = AnyPoolOptions::new()
            // One connection for an in-memory SQLite: each connection would get its own database.
            .max_connections(if memory {
                1
            } else if backend == Backend::Sqlite {
                4
            } else {
                16
            })
            .min_connections(if memory { 1 } else { 0 })
            .idle_timeout(if memory { None } else { Some(Duration::from_secs(600)) })
            .max_lifetime(if memory { None } else { Some(Duration::from_secs(1800)) })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers never block the writer; NORMAL sync is durable
                        // across process crashes (kill -9) and loses at most the last
                        // commits on power loss.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        // Deleted rows are overwritten with zeros, so an
                        // erased user's text does not linger in free pages.
                        conn.execute("PRAGMA secure_delete = ON").await?;
                        // Checkpoints run in the background (see `connect`), not
                        // inside whichever commit crosses the WAL size threshold:
                        // that commit, and every request waiting on it, would stall.
                        if !memory {
                            conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
                        }
                    }
                    Ok(())
                })
            });
        let pool = opts.connect(&url).await.map_err(|e| match e {
            sqlx::Error::Configuration(why) => StoreError::Url { url: redact_url(&url), why: why.to_string() },
            e => StoreError::Database(e),
        })?;
        let checkpointer = (backend == Backend::Sqlite && !memory).then(|| {
            let pool = pool.clone();
            let task = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(CHECKPOINT_EVERY).await;
                    // PASSIVE copies what it can without blocking writers or readers.
                    if let Err(e) = pool.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                    }
                }
            });
            std::sync::Arc::new(AbortOnDrop(task.abort_handle()))
        });
        let store = SqlStore {
            pool,
            backend,
            audit_lock: Default::default(),
            _checkpointer: checkpointer,
            cipher: None,
            purposes: Purposes::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations this database lacks.
    async fn migrate(&self) -> Result<()> {
        let mut tx = self.begin_write().await?;
        // Replicas starting together: the lock comes first, because even
        // CREATE TABLE IF NOT EXISTS races on PostgreSQL.
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_LOCK).execute(&mut *tx).await?;
        }
        tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await?;
        let applied: std::collections::BTreeSet<i64> = sqlx::query("SELECT version FROM schema_migrations")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get::<i64, _>("version"))
            .collect::<Result<_, _>>()?;
        let current = applied.last().copied().unwrap_or(0);
        let newest = MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0);
        if current > newest {
            return Err(StoreError::SchemaTooNew { found: current, supported: newest });
        }
        // Every step not yet recorded, in order: a step numbered below one
        // already applied (steps reserved by changes that land later) still
        // runs.
        for (version, steps) in MIGRATIONS.iter().filter(|m| !applied.contains(&m.0)) {
            for step in *steps {
                tx.execute(*step).await?;
            }
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(*version)
                .bind(now_millis())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A transaction that reads and then writes. SQLite's default deferred
    /// BEGIN takes a read snapshot first and fails with SQLITE_BUSY_SNAPSHOT
    /// (which no busy timeout waits out) when another connection commits
    /// before the first write; BEGIN IMMEDIATE takes the write lock up front.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// The pool, for callers that need raw access (tests, tools).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Seals prompt and completion text written from now on with `cipher`'s
    /// primary key, and opens what any of its keys sealed.
    pub fn with_cipher(mut self, cipher: Cipher) -> SqlStore {
        self.cipher = Some(std::sync::Arc::new(cipher));
        self
    }

    /// Stamps new security events and telemetry with these purposes.
    pub fn with_purposes(mut self, purposes: Purposes) -> SqlStore {
        self.purposes = purposes;
        self
    }

    /// The cipher in use, if any.
    pub fn cipher(&self) -> Option<&Cipher> {
        self.cipher.as_deref()
    }

    /// Re-encrypts stored text to the primary key, `batch` rows per
    /// transaction: text sealed with an old key, and text stored plain
    /// before encryption was turned on. Rows already under the primary key
    /// are left alone, so a run that stops part-way is resumed by running
    /// it again, and a second run rewrites nothing. A row changed by the
    /// server meanwhile is left as the server wrote it (it is written under
    /// the primary key). `progress` is called after each batch.
    pub async fn rekey(&self, batch: u32, mut progress: impl FnMut(&Rekeyed)) -> Result<Rekeyed> {
        let cipher = self.cipher.as_deref().ok_or_else(|| cipher::CipherError::Key {
            source_name: "storage.encryption".into(),
            why: "no key is configured to re-encrypt to".into(),
        })?;
        let primary = cipher.primary_kid().to_owned();
        let batch = batch.clamp(1, MAX_LIMIT);
        let mut done = Rekeyed::default();
        self.rekey_column(cipher, batch, "security_events", "input", |scanned, rewritten| {
            done.events_scanned += scanned;
            done.events_rewritten += rewritten;
            progress(&done);
        })
        .await?;
        let (mut tenant_after, mut id_after) = (String::new(), String::new());
        loop {
            let mut tx = self.begin_write().await?;
            let sql = format!(
                "SELECT tenant, event_id, body FROM telemetry_events \
                 WHERE tenant > $1 OR (tenant = $2 AND event_id > $3) ORDER BY tenant, event_id LIMIT {batch}"
            );
            let rows =
                sqlx::query(&sql).bind(&tenant_after).bind(&tenant_after).bind(&id_after).fetch_all(&mut *tx).await?;
            for r in &rows {
                let (tenant, id, body): (String, String, String) =
                    (r.try_get("tenant")?, r.try_get("event_id")?, r.try_get("body")?);
                done.telemetry_scanned += 1;
                let rewritten = map_body_texts(&body, |text, column| {
                    if cipher::is_sealed_with(text, &primary) {
                        return Ok(None);
                    }
                    let place = Place { table: "telemetry_events", column, tenant: &tenant, id: &id };
                    let plain = cipher::open(Some(cipher), text, &place)?;
                    Ok(Some(cipher.seal(&plain, &place)?))
                })?;
                if let Some((new_body, true)) = rewritten {
                    done.telemetry_rewritten += sqlx::query(
                        "UPDATE telemetry_events SET body = $1 WHERE tenant = $2 AND event_id = $3 AND body = $4",
                    )
                    .bind(new_body)
                    .bind(&tenant)
                    .bind(&id)
                    .bind(&body)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                (tenant_after, id_after) = (tenant, id);
            }
            tx.commit().await?;
            progress(&done);
            if rows.len() < batch as usize {
                break;
            }
        }
        self.rekey_column(cipher, batch, "quarantine", "content", |scanned, rewritten| {
            done.quarantine_scanned += scanned;
            done.quarantine_rewritten += rewritten;
            progress(&done);
        })
        .await?;
        if self.backend == Backend::Sqlite {
            // The rewritten pages are in the write-ahead log, and the main
            // file still holds the clear text until the log is copied back:
            // checkpoint and truncate now rather than at the next background
            // checkpoint (secure_delete zeroes what the rewrite freed).
            self.pool.execute("PRAGMA wal_checkpoint(TRUNCATE)").await?;
        }
        Ok(done)
    }

    /// Re-encrypts the text column `column` of `table` (rows keyed by `id`,
    /// each with its `tenant`) to the primary key, `batch` rows per
    /// transaction; `on_batch` gets each committed batch's rows read and
    /// rows rewritten.
    async fn rekey_column(
        &self,
        cipher: &Cipher,
        batch: u32,
        table: &'static str,
        column: &'static str,
        mut on_batch: impl FnMut(u64, u64),
    ) -> Result<()> {
        let primary = cipher.primary_kid();
        let select = format!(
            "SELECT id, tenant, {column} AS text FROM {table} WHERE id > $1 AND {column} IS NOT NULL ORDER BY id LIMIT {batch}"
        );
        let update = format!("UPDATE {table} SET {column} = $1 WHERE id = $2 AND {column} = $3");
        let mut after = String::new();
        loop {
            let mut tx = self.begin_write().await?;
            let rows = sqlx::query(&select).bind(&after).fetch_all(&mut *tx).await?;
            let mut rewritten = 0;
            for r in &rows {
                let (id, tenant, text): (String, String, String) =
                    (r.try_get("id")?, r.try_get("tenant")?, r.try_get("text")?);
                if !cipher::is_sealed_with(&text, primary) {
                    let place = Place { table, column, tenant: &tenant, id: &id };
                    let sealed = cipher.seal(&cipher::open(Some(cipher), &text, &place)?, &place)?;
                    rewritten += sqlx::query(&update)
                        .bind(sealed)
                        .bind(&id)
                        .bind(&text)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                after = id;
            }
            tx.commit().await?;
            on_batch(rows.len() as u64, rewritten);
            if rows.len() < batch as usize {
                return Ok(());
            }
        }
    }
}

/// A bind value, so dynamic queries can collect their parameters first.
enum Param {
    Text(String),
    Int(i64),
    Float(f64),
}

impl Param {
    fn copy(&self) -> Param {
        match self {
            Param::Text(s) => Param::Text(s.clone()),
            Param::Int(i) => Param::Int(*i),
            Param::Float(f) => Param::Float(*f),
        }
    }
}

fn bind_all<'q>(mut q: Query<'q, Any, AnyArguments<'q>>, params: Vec<Param>) -> Query<'q, Any, AnyArguments<'q>> {
    for p in params {
        q = match p {
            Param::Text(s) => q.bind(s),
            Param::Int(i) => q.bind(i),
            Param::Float(f) => q.bind(f),
        };
    }
    q
}

/// Takes a released hold (a `key_holds` row: `day_start`, `month_start`,
/// `tokens`, `cost`) off what its key's day and month rows hold.
async fn release_hold(tx: &mut sqlx::Transaction<'static, Any>, key_id: &str, hold: &AnyRow) -> Result<()> {
    let tokens: i64 = hold.try_get("tokens")?;
    let cost: f64 = hold.try_get("cost")?;
    for (period, start) in [(BudgetPeriod::Day, "day_start"), (BudgetPeriod::Month, "month_start")] {
        let start: i64 = hold.try_get(start)?;
        sqlx::query(
            "UPDATE key_usage SET \
             held_tokens = CASE WHEN held_tokens > $4 THEN held_tokens - $4 ELSE 0 END, \
             held_cost = CASE WHEN held_cost > $5 THEN held_cost - $5 ELSE 0 END \
             WHERE key_id = $1 AND period = $2 AND period_start = $3",
        )
        .bind(key_id)
        .bind(period.as_str())
        .bind(start)
        .bind(tokens)
        .bind(cost)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

fn corrupt(table: &'static str, why: impl ToString) -> StoreError {
    StoreError::Corrupt { table, why: why.to_string() }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

fn key_from_row(r: &AnyRow) -> Result<ApiKeyRecord> {
    let scopes: String = r.try_get("scopes")?;
    let scopes = scopes
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| Scope::parse(s).ok_or_else(|| corrupt("api_keys", format!("unknown scope {s:?}"))))
        .collect::<Result<Vec<_>>>()?;
    Ok(ApiKeyRecord {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        name: r.try_get("name")?,
        hash: r.try_get("hash")?,
        scopes,
        rate_per_sec: r.try_get("rate_per_sec")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
        models: json_column(r, "api_keys", "models")?,
        budgets: json_column(r, "api_keys", "budgets")?.unwrap_or_default(),
    })
}

/// A nullable column holding JSON.
fn json_column<T: serde::de::DeserializeOwned>(r: &AnyRow, table: &'static str, column: &str) -> Result<Option<T>> {
    let raw: Option<String> = r.try_get(column)?;
    raw.map(|s| serde_json::from_str(&s).map_err(|e| corrupt(table, format!("{column}: {e}")))).transpose()
}

/// The JSON of a key's model list (NULL for any model) and budgets (NULL for none).
fn limits_json(models: Option<&[String]>, budgets: &[Budget]) -> (Option<String>, Option<String>) {
    let models = models.map(|m| serde_json::Value::from(m).to_string());
    let budgets = (!budgets.is_empty()).then(|| serde_json::to_value(budgets).unwrap_or_default().to_string());
    (models, budgets)
}

fn event_from_row(r: &AnyRow, cipher: Option<&Cipher>) -> Result<SecurityEvent> {
    let threats: String = r.try_get("threats")?;
    let id: String = r.try_get("id")?;
    let tenant: String = r.try_get("tenant")?;
    let input: Option<String> = r.try_get("input")?;
    let input = input.map(|i| cipher::open(cipher, &i, &input_place(&tenant, &id))).transpose()?;
    Ok(SecurityEvent {
        id,
        tenant,
        event_type: r.try_get("event_type")?,
        input,
        threats: serde_json::from_str(&threats).map_err(|e| corrupt("security_events", e))?,
        confidence: r.try_get("confidence")?,
        verdict: r.try_get("verdict")?,
        timestamp: r.try_get("ts")?,
        user_id: r.try_get("user_id")?,
        session_id: r.try_get("session_id")?,
        context_kind: r.try_get("context_kind")?,
        analysis_us: r.try_get("analysis_us")?,
    })
}

fn webhook_from_row(r: &AnyRow) -> Result<Webhook> {
    let events: String = r.try_get("events")?;
    Ok(Webhook {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        url: r.try_get("url")?,
        secret: r.try_get("secret")?,
        events: events.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        created_at: r.try_get("created_at")?,
    })
}

fn delivery_from_row(r: &AnyRow) -> Result<Delivery> {
    let status: String = r.try_get("status")?;
    let attempts: i64 = r.try_get("attempts")?;
    let last_status: Option<i64> = r.try_get("last_status")?;
    Ok(Delivery {
        id: r.try_get("id")?,
        webhook_id: r.try_get("webhook_id")?,
        tenant: r.try_get("tenant")?,
        event: r.try_get("event")?,
        payload: r.try_get("payload")?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| corrupt("deliveries", format!("status {status:?}")))?,
        attempts: u32::try_from(attempts).map_err(|e| corrupt("deliveries", e))?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        last_error: r.try_get("last_error")?,
        last_status: last_status.and_then(|s| u16::try_from(s).ok()),
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn audit_from_row(r: &AnyRow) -> Result<AuditEntry> {
    Ok(AuditEntry {
        seq: r.try_get("seq")?,
        timestamp: r.try_get("ts")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        details: r.try_get("details")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

fn telemetry_from_row(r: &AnyRow, cipher: Option<&Cipher>) -> Result<TelemetryRow> {
    let tenant: String = r.try_get("tenant")?;
    let event_id: String = r.try_get("event_id")?;
    let body = open_body(cipher, r.try_get("body")?, &tenant, &event_id)?;
    Ok(TelemetryRow {
        tenant,
        event_id,
        application_id: r.try_get("application_id")?,
        event_type: r.try_get("event_type")?,
        timestamp: r.try_get("ts")?,
        body,
        received_at: r.try_get("received_at")?,
        user_id: r.try_get("user_id")?,
    })
}

fn anomaly_from_row(r: &AnyRow) -> Result<AnomalyRow> {
    Ok(AnomalyRow {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        detector_id: r.try_get("detector_id")?,
        severity: r.try_get("severity")?,
        status: r.try_get("status")?,
        score: r.try_get("score")?,
        application_id: r.try_get("application_id")?,
        timestamp: r.try_get("ts")?,
        resolved_at: r.try_get("resolved_at")?,
        body: r.try_get("body")?,
    })
}

fn enforcement_from_row(r: &AnyRow) -> Result<Enforcement> {
    let limit: Option<i64> = r.try_get("rate_limit")?;
    Ok(Enforcement {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        entity_kind: r.try_get("entity_kind")?,
        entity_id: r.try_get("entity_id")?,
        action: r.try_get("action")?,
        rate_limit: limit.map(|l| l.max(0) as u64),
        window_ms: r.try_get("window_ms")?,
        reason: r.try_get("reason")?,
        anomaly_id: r.try_get("anomaly_id")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

fn campaign_from_row(r: &AnyRow) -> Result<CampaignRow> {
    Ok(CampaignRow {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        kind: r.try_get("kind")?,
        key: r.try_get("ckey")?,
        status: r.try_get("status")?,
        severity: r.try_get("severity")?,
        first_seen: r.try_get("first_seen")?,
        last_seen: r.try_get("last_seen")?,
        events: r.try_get("events")?,
        body: r.try_get("body")?,
    })
}

fn redteam_from_row(r: &AnyRow) -> Result<RedteamRun> {
    let n = |c: &str| -> Result<u64> { Ok(r.try_get::<i64, _>(c)?.max(0) as u64) };
    let summary: String = r.try_get("summary")?;
    Ok(RedteamRun {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        timestamp: r.try_get("ts")?,
        target: r.try_get("target")?,
        trials: n("trials")?,
        errors: n("errors")?,
        successes: n("successes")?,
        asr: r.try_get("asr")?,
        summary: serde_json::from_str(&summary).map_err(|e| corrupt("redteam_runs", format!("summary: {e}")))?,
    })
}

fn quarantine_from_row(r: &AnyRow, cipher: Option<&Cipher>) -> Result<QuarantineItem> {
    let status: String = r.try_get("status")?;
    let findings: String = r.try_get("findings")?;
    let (id, tenant): (String, String) = (r.try_get("id")?, r.try_get("tenant")?);
    let content: String = r.try_get("content")?;
    let content = cipher::open(cipher, &content, &quarantine_place(&tenant, &id))?;
    Ok(QuarantineItem {
        id,
        tenant,
        source: r.try_get("source")?,
        kind: r.try_get("kind")?,
        content,
        verdict: r.try_get("verdict")?,
        severity: r.try_get("severity")?,
        findings: serde_json::from_str(&findings).map_err(|e| corrupt("quarantine", format!("findings: {e}")))?,
        event_id: r.try_get("event_id")?,
        key_id: r.try_get("key_id")?,
        user_id: r.try_get("user_id")?,
        session_id: r.try_get("session_id")?,
        status: QuarantineStatus::parse(&status).ok_or_else(|| corrupt("quarantine", format!("status {status:?}")))?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        decided_at: r.try_get("decided_at")?,
        decided_by: r.try_get("decided_by")?,
        reason: r.try_get("reason")?,
    })
}

const EVENT_COLS: &str =
    "id, tenant, event_type, input, threats, confidence, verdict, ts, user_id, session_id, context_kind, analysis_us";
const DELIVERY_COLS: &str = "id, webhook_id, tenant, event, payload, status, attempts, next_attempt_at, last_error, last_status, created_at, updated_at";

/// The WHERE clause of an event query (without cursor) and its parameters.
fn event_filter(q: &EventQuery, with_cursor: bool) -> (String, Vec<Param>) {
    let mut sql = String::from(" WHERE tenant = $1");
    let mut params = vec![Param::Text(q.tenant.clone())];
    let mut add = |clause: &str, p: Param, sql: &mut String| {
        params.push(p);
        sql.push_str(&clause.replace('?', &format!("${}", params.len())));
    };
    if let Some(v) = &q.event_type {
        add(" AND event_type = ?", Param::Text(v.clone()), &mut sql);
    }
    if let Some(v) = &q.user_id {
        add(" AND user_id = ?", Param::Text(v.clone()), &mut sql);
    }
    if let Some(v) = &q.session_id {
        add(" AND session_id = ?", Param::Text(v.clone()), &mut sql);
    }
    if let Some(v) = &q.verdict {
        add(" AND verdict = ?", Param::Text(v.clone()), &mut sql);
    }
    if let Some(v) = q.min_confidence {
        add(" AND confidence >= ?", Param::Float(v), &mut sql);
    }
    if let Some(v) = q.since {
        add(" AND ts >= ?", Param::Int(v), &mut sql);
    }
    if let Some(v) = q.until {
        add(" AND ts < ?", Param::Int(v), &mut sql);
    }
    if let Some(v) = &q.threat {
        // The threats column is the engine's compact JSON: a threat's type
        // or category is the exact text `"type":"…"` / `"category":"…"`
        // (quotes inside other strings are escaped, so evidence text cannot
        // match). LIKE's wildcards in the value are escaped.
        let mut escaped = String::with_capacity(v.len() + 4);
        for c in v.chars() {
            if matches!(c, '%' | '_' | '\\') {
                escaped.push('\\');
            }
            escaped.push(c);
        }
        let v = escaped;
        let n = params.len();
        sql.push_str(&format!(" AND (threats LIKE ${} ESCAPE '\\' OR threats LIKE ${} ESCAPE '\\')", n + 1, n + 2));
        params.push(Param::Text(format!("%\"type\":\"{v}\"%")));
        params.push(Param::Text(format!("%\"category\":\"{v}\"%")));
    }
    if with_cursor && let Some((ts, id)) = &q.before {
        // (ts, id) < (cursor_ts, cursor_id), spelled out for SQLite.
        let n = params.len();
        sql.push_str(&format!(" AND (ts < ${} OR (ts = ${} AND id < ${}))", n + 1, n + 2, n + 3));
        params.push(Param::Int(*ts));
        params.push(Param::Int(*ts));
        params.push(Param::Text(id.clone()));
    }
    (sql, params)
}

#[async_trait::async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_key(&self, key: &ApiKeyRecord) -> Result<()> {
        let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
        let (models, budgets) = limits_json(key.models.as_deref(), &key.budgets);
        sqlx::query(
            "INSERT INTO api_keys (id, tenant, name, hash, scopes, rate_per_sec, created_at, revoked_at, models, budgets) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&key.id)
        .bind(&key.tenant)
        .bind(&key.name)
        .bind(&key.hash)
        .bind(scopes.join(","))
        .bind(key.rate_per_sec)
        .bind(key.created_at)
        .bind(key.revoked_at)
        .bind(models)
        .bind(budgets)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) { StoreError::Conflict(format!("key {}", key.id)) } else { e.into() }
        })?;
        Ok(())
    }

    async fn key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn list_keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKeyRecord>> {
        let rows = match tenant {
            Some(t) => {
                sqlx::query("SELECT * FROM api_keys WHERE tenant = $1 ORDER BY created_at, id")
                    .bind(t)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => sqlx::query("SELECT * FROM api_keys ORDER BY created_at, id").fetch_all(&self.pool).await?,
        };
        rows.iter().map(key_from_row).collect()
    }

    async fn revoke_key(&self, id: &str, at: Millis) -> Result<bool> {
        let r = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn set_key_limits(&self, id: &str, models: Option<&[String]>, budgets: &[Budget]) -> Result<bool> {
        let (models, budgets) = limits_json(models, budgets);
        let r = sqlx::query("UPDATE api_keys SET models = $1, budgets = $2 WHERE id = $3 AND revoked_at IS NULL")
            .bind(models)
            .bind(budgets)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn add_key_usage(&self, tenant: &str, key_id: &str, at: Millis, tokens: u64, cost: f64) -> Result<()> {
        self.settle_key_usage(tenant, key_id, at, tokens, cost, &[]).await
    }

    async fn hold_key_budget(
        &self,
        tenant: &str,
        key_id: &str,
        at: Millis,
        budgets: &[Budget],
        hold: &BudgetHold,
    ) -> Result<Option<BudgetShortfall>> {
        let tokens = i64::try_from(hold.tokens).unwrap_or(i64::MAX);
        let cost = if hold.cost.is_finite() && hold.cost > 0.0 { hold.cost } else { 0.0 };
        let mut tx = self.begin_write().await?;
        // Holds whose call never settled (its replica died) lapse.
        let lapsed = sqlx::query(
            "DELETE FROM key_holds WHERE key_id = $1 AND tenant = $2 AND expires_at <= $3 \
             RETURNING day_start, month_start, tokens, cost",
        )
        .bind(key_id)
        .bind(tenant)
        .bind(at)
        .fetch_all(&mut *tx)
        .await?;
        for r in &lapsed {
            release_hold(&mut tx, key_id, r).await?;
        }
        for period in BudgetPeriod::ALL {
            let start = period.start(at);
            sqlx::query(
                "INSERT INTO key_usage (key_id, tenant, period, period_start, tokens, cost) \
                 VALUES ($1, $2, $3, $4, 0, 0) ON CONFLICT (key_id, period, period_start) DO NOTHING",
            )
            .bind(key_id)
            .bind(tenant)
            .bind(period.as_str())
            .bind(start)
            .execute(&mut *tx)
            .await?;
            // A period without a limit still counts the hold (a budget set
            // while the call runs sees it); its bounds never stop it.
            let budget = budgets.iter().find(|b| b.period == period);
            let max_tokens = budget.and_then(|b| b.tokens).map_or(i64::MAX, |t| i64::try_from(t).unwrap_or(i64::MAX));
            let max_cost = budget.and_then(|b| b.cost).filter(|c| c.is_finite()).unwrap_or(f64::MAX);
            // On PostgreSQL a concurrent hold on the same row waits for this
            // one to commit and then re-checks the condition on the new row.
            let held = sqlx::query(
                "UPDATE key_usage SET held_tokens = held_tokens + $4, held_cost = held_cost + $5 \
                 WHERE key_id = $1 AND period = $2 AND period_start = $3 \
                 AND tokens < $6 AND tokens + held_tokens <= $6 - $4 \
                 AND cost < $7 AND cost + held_cost + $5 <= $7",
            )
            .bind(key_id)
            .bind(period.as_str())
            .bind(start)
            .bind(tokens)
            .bind(cost)
            .bind(max_tokens)
            .bind(max_cost)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if held == 0 {
                let r = sqlx::query(
                    "SELECT tokens, cost, held_tokens, held_cost FROM key_usage \
                     WHERE key_id = $1 AND period = $2 AND period_start = $3",
                )
                .bind(key_id)
                .bind(period.as_str())
                .bind(start)
                .fetch_one(&mut *tx)
                .await?;
                let shortfall = BudgetShortfall {
                    budget: budget.cloned().unwrap_or(Budget { period, tokens: None, cost: None }),
                    used_tokens: u64::try_from(r.try_get::<i64, _>("tokens")?).unwrap_or(0),
                    used_cost: r.try_get("cost")?,
                    held_tokens: u64::try_from(r.try_get::<i64, _>("held_tokens")?).unwrap_or(0),
                    held_cost: r.try_get("held_cost")?,
                };
                // Lapsed holds are released with the next hold that fits.
                tx.rollback().await?;
                return Ok(Some(shortfall));
            }
        }
        sqlx::query(
            "INSERT INTO key_holds (id, key_id, tenant, day_start, month_start, tokens, cost, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&hold.id)
        .bind(key_id)
        .bind(tenant)
        .bind(BudgetPeriod::Day.start(at))
        .bind(BudgetPeriod::Month.start(at))
        .bind(tokens)
        .bind(cost)
        .bind(hold.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(None)
    }

    async fn settle_key_usage(
        &self,
        tenant: &str,
        key_id: &str,
        at: Millis,
        tokens: u64,
        cost: f64,
        holds: &[String],
    ) -> Result<()> {
        let tokens = i64::try_from(tokens).unwrap_or(i64::MAX);
        let cost = if cost.is_finite() && cost > 0.0 { cost } else { 0.0 };
        let mut tx = self.begin_write().await?;
        for id in holds {
            // DELETE … RETURNING: of two settlements of one hold (or a
            // settlement racing its reclaim) only one releases it.
            let gone = sqlx::query(
                "DELETE FROM key_holds WHERE id = $1 AND key_id = $2 RETURNING day_start, month_start, tokens, cost",
            )
            .bind(id)
            .bind(key_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(r) = gone {
                release_hold(&mut tx, key_id, &r).await?;
            }
        }
        if tokens > 0 || cost > 0.0 || holds.is_empty() {
            for period in BudgetPeriod::ALL {
                sqlx::query(
                    "INSERT INTO key_usage (key_id, tenant, period, period_start, tokens, cost) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (key_id, period, period_start) DO UPDATE \
                     SET tokens = key_usage.tokens + excluded.tokens, cost = key_usage.cost + excluded.cost",
                )
                .bind(key_id)
                .bind(tenant)
                .bind(period.as_str())
                .bind(period.start(at))
                .bind(tokens)
                .bind(cost)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn key_usage(&self, tenant: &str, key_id: &str, at: Millis) -> Result<Vec<KeyUsage>> {
        let (day, month) = (BudgetPeriod::Day.start(at), BudgetPeriod::Month.start(at));
        let rows = sqlx::query(
            "SELECT period, period_start, tokens, cost FROM key_usage WHERE tenant = $1 AND key_id = $2 \
             AND ((period = 'day' AND period_start = $3) OR (period = 'month' AND period_start = $4))",
        )
        .bind(tenant)
        .bind(key_id)
        .bind(day)
        .bind(month)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<KeyUsage> = BudgetPeriod::ALL
            .into_iter()
            .map(|period| KeyUsage { period, start: period.start(at), tokens: 0, cost: 0.0 })
            .collect();
        for r in &rows {
            let period: String = r.try_get("period")?;
            let period =
                BudgetPeriod::parse(&period).ok_or_else(|| corrupt("key_usage", format!("period {period:?}")))?;
            let tokens: i64 = r.try_get("tokens")?;
            if let Some(u) = out.iter_mut().find(|u| u.period == period) {
                u.tokens = u64::try_from(tokens).unwrap_or(0);
                u.cost = r.try_get("cost")?;
            }
        }
        Ok(out)
    }

    async fn enqueue(&self, deliveries: &[Delivery]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let refs: Vec<&Delivery> = deliveries.iter().collect();
        insert_deliveries(&mut tx, &refs, self.backend == Backend::Sqlite).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record(&self, batch: &[Record]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let anon = self.backend == Backend::Sqlite;
        // Multi-row INSERTs: one statement per chunk rather than per row,
        // which matters most on SQLite, where every statement is a round
        // trip to the connection's worker thread.
        let mut tx = self.pool.begin().await?;
        for chunk in batch.chunks(ROWS_PER_INSERT) {
            let sql = multi_insert(
                "INSERT INTO security_events (id, tenant, event_type, input, threats, confidence, verdict, ts, user_id, session_id, context_kind, analysis_us, purpose) VALUES ",
                13,
                chunk.len(),
                anon,
            );
            let mut q = sqlx::query(&sql);
            for rec in chunk {
                let e = &rec.event;
                let input = e
                    .input
                    .as_deref()
                    .map(|s| cipher::seal(self.cipher(), &no_nul(s), &input_place(&e.tenant, &e.id)))
                    .transpose()?;
                q = q
                    .bind(&e.id)
                    .bind(&e.tenant)
                    .bind(&e.event_type)
                    .bind(input)
                    .bind(no_nul(&e.threats.to_string()).into_owned())
                    .bind(e.confidence)
                    .bind(&e.verdict)
                    .bind(e.timestamp)
                    .bind(e.user_id.as_deref())
                    .bind(e.session_id.as_deref())
                    .bind(e.context_kind.as_deref())
                    .bind(e.analysis_us)
                    .bind(self.purposes.events.as_deref());
            }
            q.execute(&mut *tx).await?;
        }
        let deliveries: Vec<&Delivery> = batch.iter().flat_map(|r| &r.deliveries).collect();
        insert_deliveries(&mut tx, &deliveries, anon).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn events(&self, q: &EventQuery) -> Result<Vec<SecurityEvent>> {
        let (filter, params) = event_filter(q, true);
        let limit = q.limit.clamp(1, MAX_LIMIT);
        let sql = format!("SELECT {EVENT_COLS} FROM security_events{filter} ORDER BY ts DESC, id DESC LIMIT {limit}");
        let rows = bind_all(sqlx::query(&sql), params).fetch_all(&self.pool).await?;
        rows.iter().map(|r| event_from_row(r, self.cipher())).collect()
    }

    async fn count_events(&self, q: &EventQuery) -> Result<u64> {
        let (filter, params) = event_filter(q, false);
        let sql = format!("SELECT COUNT(*) AS n FROM security_events{filter}");
        let n: i64 = bind_all(sqlx::query(&sql), params).fetch_one(&self.pool).await?.try_get("n")?;
        Ok(n.max(0) as u64)
    }

    async fn purge_expired(&self, before: Millis) -> Result<Removed> {
        let mut tx = self.begin_write().await?;
        let mut run = async |sql: &str| -> Result<u64> {
            Ok(sqlx::query(sql).bind(before).execute(&mut *tx).await?.rows_affected())
        };
        let mut removed = Removed {
            events: run("DELETE FROM security_events WHERE ts < $1").await?,
            // Processed ones only: an event still pending waits for Sentinel.
            telemetry: run("DELETE FROM telemetry_events WHERE received_at < $1 AND NOT EXISTS \
                 (SELECT 1 FROM telemetry_pending p \
                 WHERE p.tenant = telemetry_events.tenant AND p.event_id = telemetry_events.event_id)")
            .await?,
            anomalies: run("DELETE FROM anomalies WHERE status = 'resolved' AND resolved_at < $1").await?,
            deliveries: run("DELETE FROM deliveries WHERE status IN ('delivered', 'dead') AND updated_at < $1").await?,
            enforcements: run("DELETE FROM enforcements WHERE expires_at < $1").await?,
            // Holds that lapsed before the cutoff (their calls never settled).
            key_usage: run("DELETE FROM key_holds WHERE expires_at < $1").await?,
            // Decided items only: a pending one waits for its reviewer or its expiry.
            quarantine: run("DELETE FROM quarantine WHERE status <> 'pending' AND created_at < $1").await?,
            // A campaign not seen since the cutoff holds only older facts.
            campaigns: run("DELETE FROM campaigns WHERE last_seen < $1").await?,
        };
        // Budget usage only counts in its own period: a day that started a
        // day before the cutoff, or a month 31 days before it, has ended.
        const DAY: Millis = 86_400_000;
        removed.key_usage += sqlx::query(
            "DELETE FROM key_usage WHERE (period = 'day' AND period_start < $1) \
             OR (period = 'month' AND period_start < $2)",
        )
        .bind(before.saturating_sub(DAY))
        .bind(before.saturating_sub(31 * DAY))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(removed)
    }

    async fn erase_user(&self, tenant: &str, user_id: &str) -> Result<Removed> {
        let mut tx = self.begin_write().await?;
        let events = sqlx::query("DELETE FROM security_events WHERE tenant = $1 AND user_id = $2")
            .bind(tenant)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let telemetry = sqlx::query("DELETE FROM telemetry_events WHERE tenant = $1 AND user_id = $2")
            .bind(tenant)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let enforcements =
            sqlx::query("DELETE FROM enforcements WHERE tenant = $1 AND entity_kind = 'user' AND entity_id = $2")
                .bind(tenant)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        let quarantine = sqlx::query("DELETE FROM quarantine WHERE tenant = $1 AND user_id = $2")
            .bind(tenant)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let mut removed = Removed { events, telemetry, enforcements, quarantine, ..Removed::default() };
        // JSON bodies: rows whose text holds the id are read back, and those
        // with a string value equal to it are deleted (telemetry stored
        // before the user_id column, anomalies about the user, deliveries
        // that quote their events or anomalies).
        let pattern = format!("%{}%", like_escape(&json_string_body(user_id)));
        let bodies = [
            ("telemetry_events", "event_id", "body", " AND user_id IS NULL", &mut removed.telemetry),
            ("anomalies", "id", "body", "", &mut removed.anomalies),
            ("deliveries", "id", "payload", "", &mut removed.deliveries),
        ];
        for (table, key, column, extra, count) in bodies {
            let sql = format!(
                "SELECT {key} AS k, {column} AS b FROM {table} WHERE tenant = $1{extra} AND {column} LIKE $2 ESCAPE '\\'"
            );
            let rows = sqlx::query(&sql).bind(tenant).bind(&pattern).fetch_all(&mut *tx).await?;
            for r in rows {
                let body: String = r.try_get("b")?;
                if !mentions(&body, user_id) {
                    continue;
                }
                let k: String = r.try_get("k")?;
                let del = format!("DELETE FROM {table} WHERE tenant = $1 AND {key} = $2");
                *count += sqlx::query(&del).bind(tenant).bind(&k).execute(&mut *tx).await?.rows_affected();
            }
        }
        // Erased events no longer wait for Sentinel.
        if removed.telemetry > 0 {
            sqlx::query(
                "DELETE FROM telemetry_pending WHERE tenant = $1 AND NOT EXISTS \
                 (SELECT 1 FROM telemetry_events t \
                 WHERE t.tenant = telemetry_pending.tenant AND t.event_id = telemetry_pending.event_id)",
            )
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if self.backend == Backend::Sqlite && removed.total() > 0 {
            // Deleted rows are zeroed in place (secure_delete), but older
            // copies of their pages sit in the write-ahead log until it is
            // checkpointed and truncated. Best effort: a long reader can
            // hold the log, and the background checkpoint copies it later.
            if let Err(e) = self.pool.execute("PRAGMA wal_checkpoint(TRUNCATE)").await {
                tracing::warn!(error = %e, "WAL checkpoint after erasure failed");
            }
        }
        Ok(removed)
    }

    async fn insert_webhook(&self, w: &Webhook) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhooks (id, tenant, url, secret, events, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&w.id)
        .bind(&w.tenant)
        .bind(&w.url)
        .bind(&w.secret)
        .bind(w.events.join(","))
        .bind(w.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) { StoreError::Conflict(format!("webhook {}", w.id)) } else { e.into() }
        })?;
        Ok(())
    }

    async fn ensure_webhook(&self, w: &Webhook) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhooks (id, tenant, url, secret, events, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&w.id)
        .bind(&w.tenant)
        .bind(&w.url)
        .bind(&w.secret)
        .bind(w.events.join(","))
        .bind(w.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn webhooks(&self, tenant: Option<&str>) -> Result<Vec<Webhook>> {
        let rows = match tenant {
            Some(t) => {
                sqlx::query("SELECT * FROM webhooks WHERE tenant = $1 ORDER BY created_at, id")
                    .bind(t)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => sqlx::query("SELECT * FROM webhooks ORDER BY created_at, id").fetch_all(&self.pool).await?,
        };
        rows.iter().map(webhook_from_row).collect()
    }

    async fn delete_webhook(&self, tenant: &str, id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM webhooks WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn claim_deliveries(&self, now: Millis, lease_until: Millis, limit: u32) -> Result<Vec<Delivery>> {
        let lock = if self.backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let sql = format!(
            "UPDATE deliveries SET next_attempt_at = $1, updated_at = $2 WHERE id IN \
             (SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $3 \
              ORDER BY next_attempt_at LIMIT {}{lock}) RETURNING {DELIVERY_COLS}",
            limit.clamp(1, MAX_LIMIT)
        );
        let rows = sqlx::query(&sql).bind(lease_until).bind(now).bind(now).fetch_all(&self.pool).await?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn finish_attempt(&self, id: &str, attempt: &Attempt, now: Millis) -> Result<()> {
        match attempt {
            Attempt::Delivered { status } => {
                sqlx::query(
                    "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, last_status = $1, \
                     last_error = NULL, updated_at = $2 WHERE id = $3",
                )
                .bind(i64::from(*status))
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await?;
            }
            Attempt::Failed { status, error, retry_at } => {
                let (state, next) = match retry_at {
                    Some(t) => ("pending", *t),
                    None => ("dead", now),
                };
                sqlx::query(
                    "UPDATE deliveries SET status = $1, attempts = attempts + 1, next_attempt_at = $2, \
                     last_status = $3, last_error = $4, updated_at = $5 WHERE id = $6",
                )
                .bind(state)
                .bind(next)
                .bind(status.map(i64::from))
                .bind(error.as_str())
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }

    async fn deliveries(&self, tenant: &str, status: Option<DeliveryStatus>, limit: u32) -> Result<Vec<Delivery>> {
        let limit = limit.clamp(1, MAX_LIMIT);
        let rows = match status {
            Some(s) => {
                let sql = format!(
                    "SELECT {DELIVERY_COLS} FROM deliveries WHERE tenant = $1 AND status = $2 \
                     ORDER BY created_at DESC, id DESC LIMIT {limit}"
                );
                sqlx::query(&sql).bind(tenant).bind(s.as_str()).fetch_all(&self.pool).await?
            }
            None => {
                let sql = format!(
                    "SELECT {DELIVERY_COLS} FROM deliveries WHERE tenant = $1 ORDER BY created_at DESC, id DESC LIMIT {limit}"
                );
                sqlx::query(&sql).bind(tenant).fetch_all(&self.pool).await?
            }
        };
        rows.iter().map(delivery_from_row).collect()
    }

    async fn count_deliveries(&self, status: DeliveryStatus) -> Result<u64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM deliveries WHERE status = $1")
            .bind(status.as_str())
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        Ok(n.max(0) as u64)
    }

    async fn redeliver(&self, tenant: &str, id: &str, now: Millis) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1, updated_at = $2 \
             WHERE tenant = $3 AND id = $4 AND status = 'dead'",
        )
        .bind(now)
        .bind(now)
        .bind(tenant)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn append_audit(&self, entry: NewAudit, at: Millis) -> Result<AuditEntry> {
        let _guard = self.audit_lock.lock().await;
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_LOCK + 1).execute(&mut *tx).await?;
        }
        let last =
            sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetch_optional(&mut *tx).await?;
        let (prev_seq, prev_hash) = match last {
            Some(r) => (r.try_get::<i64, _>("seq")?, r.try_get::<String, _>("hash")?),
            None => (0, GENESIS.to_owned()),
        };
        let seq = prev_seq + 1;
        let details = entry.details.to_string();
        let hash = entry_hash(&prev_hash, seq, at, &entry.actor, &entry.action, &entry.target, &details);
        sqlx::query(
            "INSERT INTO audit_log (seq, ts, actor, action, target, details, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(seq)
        .bind(at)
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(&details)
        .bind(&prev_hash)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(AuditEntry {
            seq,
            timestamp: at,
            actor: entry.actor,
            action: entry.action,
            target: entry.target,
            details,
            prev_hash,
            hash,
        })
    }

    async fn audit_log(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        let sql = format!("SELECT * FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT {}", limit.clamp(1, MAX_LIMIT));
        let rows = sqlx::query(&sql).bind(after_seq).fetch_all(&self.pool).await?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn ingest(&self, rows: &[TelemetryRow]) -> Result<Vec<bool>> {
        let anon = self.backend == Backend::Sqlite;
        let mut fresh = Vec::with_capacity(rows.len());
        let mut new_rows = Vec::with_capacity(rows.len());
        let mut tx = self.pool.begin().await?;
        for chunk in rows.chunks(TELEMETRY_ROWS) {
            // One multi-row INSERT per chunk; ON CONFLICT DO NOTHING +
            // RETURNING gives back the ids that were new.
            let mut sql = multi_insert(
                "INSERT INTO telemetry_events (tenant, event_id, application_id, event_type, ts, body, received_at, user_id, purpose) VALUES ",
                9,
                chunk.len(),
                anon,
            );
            sql.push_str(" ON CONFLICT (tenant, event_id) DO NOTHING RETURNING tenant, event_id");
            let mut q = sqlx::query(&sql);
            for r in chunk {
                let body = seal_body(self.cipher(), &r.body, &r.tenant, &r.event_id)?;
                q = q
                    .bind(&r.tenant)
                    .bind(&r.event_id)
                    .bind(&r.application_id)
                    .bind(&r.event_type)
                    .bind(r.timestamp)
                    .bind(no_nul(&body).into_owned())
                    .bind(r.received_at)
                    .bind(r.user_id.as_deref().map(|u| no_nul(u).into_owned()))
                    .bind(self.purposes.telemetry.as_deref());
            }
            let inserted: std::collections::HashSet<(String, String)> = q
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| Ok((row.try_get::<String, _>("tenant")?, row.try_get::<String, _>("event_id")?)))
                .collect::<Result<_>>()?;
            // An id twice in one chunk is inserted once: only its first row is new.
            let mut seen = std::collections::HashSet::new();
            for r in chunk {
                let key = (r.tenant.clone(), r.event_id.clone());
                let new = inserted.contains(&key) && seen.insert(key);
                if new {
                    new_rows.push(r);
                }
                fresh.push(new);
            }
        }
        // New events wait for Sentinel, in the same transaction: an event
        // stored is an event pending, even across a crash.
        for chunk in new_rows.chunks(PENDING_ROWS) {
            let sql = multi_insert(
                "INSERT INTO telemetry_pending (tenant, event_id, application_id, received_at, ts) VALUES ",
                5,
                chunk.len(),
                anon,
            );
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = q.bind(&r.tenant).bind(&r.event_id).bind(&r.application_id).bind(r.received_at).bind(r.timestamp);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(fresh)
    }

    async fn pending_telemetry(&self, limit: u32) -> Result<Vec<TelemetryRow>> {
        let sql = format!(
            "SELECT t.* FROM telemetry_pending p JOIN telemetry_events t \
             ON t.tenant = p.tenant AND t.event_id = p.event_id \
             ORDER BY p.received_at, p.ts LIMIT {}",
            limit.clamp(1, MAX_LIMIT)
        );
        sqlx::query(&sql).fetch_all(&self.pool).await?.iter().map(|r| telemetry_from_row(r, self.cipher())).collect()
    }

    async fn mark_processed(&self, keys: &[(String, String)]) -> Result<()> {
        let mut by_tenant: std::collections::BTreeMap<&str, Vec<&str>> = std::collections::BTreeMap::new();
        for (tenant, id) in keys {
            by_tenant.entry(tenant).or_default().push(id);
        }
        let mut tx = self.pool.begin().await?;
        for (tenant, ids) in by_tenant {
            for chunk in ids.chunks(500) {
                let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
                let sql = format!(
                    "DELETE FROM telemetry_pending WHERE tenant = $1 AND event_id IN ({})",
                    placeholders.join(", ")
                );
                let mut q = sqlx::query(&sql).bind(tenant);
                for id in chunk {
                    q = q.bind(*id);
                }
                q.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn pending_applications(&self) -> Result<Vec<(String, String)>> {
        sqlx::query("SELECT DISTINCT tenant, application_id FROM telemetry_pending ORDER BY tenant, application_id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("tenant")?, r.try_get("application_id")?)))
            .collect()
    }

    async fn pending_telemetry_of(&self, apps: &[(String, String)], limit: u32) -> Result<Vec<TelemetryRow>> {
        let limit = limit.clamp(1, MAX_LIMIT) as usize;
        let mut out = Vec::new();
        // A bounded statement per group of applications; each group's
        // oldest first, then the groups' rows merged, oldest first.
        for group in apps.chunks(APPS_PER_QUERY) {
            let anon = self.backend == Backend::Sqlite;
            let mut n = 0;
            let mut param = || {
                n += 1;
                if anon { "?".to_owned() } else { format!("${n}") }
            };
            let cond: Vec<String> =
                group.iter().map(|_| format!("(p.tenant = {} AND p.application_id = {})", param(), param())).collect();
            let sql = format!(
                "SELECT t.* FROM telemetry_pending p JOIN telemetry_events t \
                 ON t.tenant = p.tenant AND t.event_id = p.event_id WHERE {} \
                 ORDER BY p.received_at, p.ts LIMIT {limit}",
                cond.join(" OR ")
            );
            let mut q = sqlx::query(&sql);
            for (tenant, app) in group {
                q = q.bind(tenant).bind(app);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(telemetry_from_row(&r, self.cipher())?);
            }
        }
        out.sort_by_key(|r| (r.received_at, r.timestamp));
        out.truncate(limit);
        Ok(out)
    }

    async fn count_telemetry(&self, tenant: &str, since: Option<Millis>) -> Result<u64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM telemetry_events WHERE tenant = $1 AND ts >= $2")
            .bind(tenant)
            .bind(since.unwrap_or(i64::MIN))
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        Ok(n.max(0) as u64)
    }

    async fn telemetry(&self, tenant: &str, start: Millis, end: Millis, limit: u32) -> Result<Vec<TelemetryRow>> {
        let sql = format!(
            "SELECT * FROM telemetry_events WHERE tenant = $1 AND ts >= $2 AND ts < $3 ORDER BY ts, event_id LIMIT {}",
            limit.clamp(1, 100_000)
        );
        sqlx::query(&sql)
            .bind(tenant)
            .bind(start)
            .bind(end)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| telemetry_from_row(r, self.cipher()))
            .collect()
    }

    async fn put_anomaly(&self, a: &AnomalyRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO anomalies (id, tenant, detector_id, severity, status, score, application_id, ts, resolved_at, body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (id) DO UPDATE SET severity = excluded.severity, status = excluded.status, \
             score = excluded.score, resolved_at = excluded.resolved_at, body = excluded.body",
        )
        .bind(&a.id)
        .bind(&a.tenant)
        .bind(&a.detector_id)
        .bind(&a.severity)
        .bind(&a.status)
        .bind(a.score)
        .bind(a.application_id.as_deref())
        .bind(a.timestamp)
        .bind(a.resolved_at)
        .bind(no_nul(&a.body).into_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn anomaly(&self, tenant: &str, id: &str) -> Result<Option<AnomalyRow>> {
        let row = sqlx::query("SELECT * FROM anomalies WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(anomaly_from_row).transpose()
    }

    async fn open_anomalies(&self, limit: u32) -> Result<Vec<AnomalyRow>> {
        let sql = format!(
            "SELECT * FROM anomalies WHERE status IN ('active', 'acknowledged', 'suppressed') ORDER BY ts LIMIT {}",
            limit.clamp(1, 1_000_000)
        );
        sqlx::query(&sql).fetch_all(&self.pool).await?.iter().map(anomaly_from_row).collect()
    }

    async fn anomalies(&self, q: &AnomalyQuery) -> Result<(Vec<AnomalyRow>, u64)> {
        let mut sql = String::from(" WHERE tenant = $1");
        let mut params = vec![Param::Text(q.tenant.clone())];
        let mut push = |sql: &mut String, clause: &str, p: Param| {
            params.push(p);
            sql.push_str(&clause.replace('?', &format!("${}", params.len())));
        };
        if let Some(v) = q.start {
            push(&mut sql, " AND ts >= ?", Param::Int(v));
        }
        if let Some(v) = q.end {
            push(&mut sql, " AND ts < ?", Param::Int(v));
        }
        if let Some(v) = q.score_min {
            push(&mut sql, " AND score >= ?", Param::Float(v));
        }
        if let Some(v) = q.score_max {
            push(&mut sql, " AND score <= ?", Param::Float(v));
        }
        for (col, values) in [
            ("severity", &q.severities),
            ("status", &q.statuses),
            ("detector_id", &q.detector_ids),
            ("application_id", &q.application_ids),
        ] {
            if values.is_empty() {
                continue;
            }
            sql.push_str(&format!(" AND {col} IN ("));
            for (k, v) in values.iter().enumerate() {
                if k > 0 {
                    sql.push_str(", ");
                }
                push(&mut sql, "?", Param::Text(v.clone()));
            }
            sql.push(')');
        }
        let count_sql = format!("SELECT COUNT(*) AS n FROM anomalies{sql}");
        let count_params = params.iter().map(Param::copy).collect();
        let total: i64 = bind_all(sqlx::query(&count_sql), count_params).fetch_one(&self.pool).await?.try_get("n")?;
        let page_sql = format!(
            "SELECT * FROM anomalies{sql} ORDER BY ts DESC, id DESC LIMIT {} OFFSET {}",
            q.limit.clamp(1, MAX_LIMIT),
            q.offset
        );
        let rows = bind_all(sqlx::query(&page_sql), params).fetch_all(&self.pool).await?;
        Ok((rows.iter().map(anomaly_from_row).collect::<Result<_>>()?, total.max(0) as u64))
    }

    async fn put_detector_override(&self, o: &DetectorOverride) -> Result<()> {
        sqlx::query(
            "INSERT INTO detector_overrides (tenant, detector_id, fields, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant, detector_id) DO UPDATE SET fields = excluded.fields, updated_at = excluded.updated_at",
        )
        .bind(&o.tenant)
        .bind(&o.detector_id)
        .bind(no_nul(&o.fields).into_owned())
        .bind(o.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_detector_override(&self, tenant: &str, detector_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM detector_overrides WHERE tenant = $1 AND detector_id = $2")
            .bind(tenant)
            .bind(detector_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn detector_overrides(&self, tenant: Option<&str>) -> Result<Vec<DetectorOverride>> {
        let rows = match tenant {
            Some(t) => {
                sqlx::query("SELECT * FROM detector_overrides WHERE tenant = $1 ORDER BY tenant, detector_id")
                    .bind(t)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM detector_overrides ORDER BY tenant, detector_id")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter()
            .map(|r| {
                Ok(DetectorOverride {
                    tenant: r.try_get("tenant")?,
                    detector_id: r.try_get("detector_id")?,
                    fields: r.try_get("fields")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    async fn insert_enforcement(&self, e: &Enforcement) -> Result<()> {
        sqlx::query(
            "INSERT INTO enforcements (id, tenant, entity_kind, entity_id, action, rate_limit, window_ms, reason, \
             anomaly_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&e.id)
        .bind(&e.tenant)
        .bind(&e.entity_kind)
        .bind(&e.entity_id)
        .bind(&e.action)
        .bind(e.rate_limit.map(|l| l.min(i64::MAX as u64) as i64))
        .bind(e.window_ms)
        .bind(&e.reason)
        .bind(e.anomaly_id.as_deref())
        .bind(e.created_at)
        .bind(e.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn insert_redteam_run(&self, run: &RedteamRun) -> Result<()> {
        let clamp = |n: u64| n.min(i64::MAX as u64) as i64;
        sqlx::query(
            "INSERT INTO redteam_runs (id, tenant, ts, target, trials, errors, successes, asr, summary) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&run.id)
        .bind(&run.tenant)
        .bind(run.timestamp)
        .bind(no_nul(&run.target).into_owned())
        .bind(clamp(run.trials))
        .bind(clamp(run.errors))
        .bind(clamp(run.successes))
        .bind(run.asr)
        .bind(no_nul(&run.summary.to_string()).into_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn redteam_runs(&self, tenant: &str, since: Millis, until: Millis, limit: u32) -> Result<Vec<RedteamRun>> {
        let sql = format!(
            "SELECT * FROM redteam_runs WHERE tenant = $1 AND ts >= $2 AND ts < $3 ORDER BY ts DESC, id DESC LIMIT {}",
            limit.clamp(1, MAX_LIMIT)
        );
        let rows = sqlx::query(&sql).bind(tenant).bind(since).bind(until).fetch_all(&self.pool).await?;
        rows.iter().map(redteam_from_row).collect()
    }

    async fn redteam_run(&self, tenant: &str, id: &str) -> Result<Option<RedteamRun>> {
        let row = sqlx::query("SELECT * FROM redteam_runs WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(redteam_from_row).transpose()
    }

    async fn put_campaign(&self, c: &CampaignRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO campaigns (id, tenant, kind, ckey, status, severity, first_seen, last_seen, events, body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, severity = excluded.severity, \
             first_seen = excluded.first_seen, last_seen = excluded.last_seen, events = excluded.events, \
             body = excluded.body",
        )
        .bind(&c.id)
        .bind(&c.tenant)
        .bind(&c.kind)
        .bind(no_nul(&c.key).into_owned())
        .bind(&c.status)
        .bind(&c.severity)
        .bind(c.first_seen)
        .bind(c.last_seen)
        .bind(c.events)
        .bind(no_nul(&c.body).into_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn campaign(&self, tenant: &str, id: &str) -> Result<Option<CampaignRow>> {
        let row = sqlx::query("SELECT * FROM campaigns WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(campaign_from_row).transpose()
    }

    async fn campaigns(&self, q: &CampaignQuery) -> Result<(Vec<CampaignRow>, u64)> {
        let mut sql = String::from(" WHERE tenant = $1");
        let mut params = vec![Param::Text(q.tenant.clone())];
        let mut push = |sql: &mut String, clause: &str, p: Param| {
            params.push(p);
            sql.push_str(&clause.replace('?', &format!("${}", params.len())));
        };
        if let Some(v) = &q.status {
            push(&mut sql, " AND status = ?", Param::Text(v.clone()));
        }
        if let Some(v) = &q.kind {
            push(&mut sql, " AND kind = ?", Param::Text(v.clone()));
        }
        if let Some(v) = q.since {
            push(&mut sql, " AND last_seen >= ?", Param::Int(v));
        }
        let count_sql = format!("SELECT COUNT(*) AS n FROM campaigns{sql}");
        let count_params = params.iter().map(Param::copy).collect();
        let total: i64 = bind_all(sqlx::query(&count_sql), count_params).fetch_one(&self.pool).await?.try_get("n")?;
        let page_sql = format!(
            "SELECT * FROM campaigns{sql} ORDER BY last_seen DESC, id DESC LIMIT {} OFFSET {}",
            q.limit.clamp(1, MAX_LIMIT),
            q.offset
        );
        let rows = bind_all(sqlx::query(&page_sql), params).fetch_all(&self.pool).await?;
        Ok((rows.iter().map(campaign_from_row).collect::<Result<_>>()?, total.max(0) as u64))
    }

    async fn active_campaigns(&self, since: Millis, limit: u32) -> Result<Vec<CampaignRow>> {
        let sql = format!(
            "SELECT * FROM campaigns WHERE status = 'active' AND last_seen >= $1 ORDER BY last_seen DESC, id DESC LIMIT {}",
            limit.clamp(1, 1_000_000)
        );
        sqlx::query(&sql).bind(since).fetch_all(&self.pool).await?.iter().map(campaign_from_row).collect()
    }

    async fn enforcement(&self, tenant: &str, id: &str) -> Result<Option<Enforcement>> {
        let row = sqlx::query("SELECT * FROM enforcements WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(enforcement_from_row).transpose()
    }

    async fn end_enforcement(&self, tenant: &str, id: &str, at: Millis) -> Result<bool> {
        let done =
            sqlx::query("UPDATE enforcements SET expires_at = $3 WHERE tenant = $1 AND id = $2 AND expires_at > $3")
                .bind(tenant)
                .bind(id)
                .bind(at)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn enforcements_in_force(&self, now: Millis) -> Result<Vec<Enforcement>> {
        let rows = sqlx::query("SELECT * FROM enforcements WHERE expires_at > $1 ORDER BY created_at LIMIT 100000")
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(enforcement_from_row).collect()
    }

    async fn active_enforcements(
        &self,
        tenant: &str,
        entities: &[(&str, &str)],
        now: Millis,
    ) -> Result<Vec<Enforcement>> {
        if entities.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = String::from("SELECT * FROM enforcements WHERE tenant = $1 AND expires_at > $2 AND (");
        let mut params = vec![Param::Text(tenant.to_owned()), Param::Int(now)];
        for (k, (kind, id)) in entities.iter().enumerate() {
            if k > 0 {
                sql.push_str(" OR ");
            }
            sql.push_str(&format!("(entity_kind = ${} AND entity_id = ${})", params.len() + 1, params.len() + 2));
            params.push(Param::Text((*kind).to_owned()));
            params.push(Param::Text((*id).to_owned()));
        }
        sql.push_str(") ORDER BY created_at");
        let rows = bind_all(sqlx::query(&sql), params).fetch_all(&self.pool).await?;
        rows.iter().map(enforcement_from_row).collect()
    }

    async fn put_quarantine(&self, q: &QuarantineItem) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO quarantine (id, tenant, source, kind, content, verdict, severity, findings, event_id, key_id, \
             user_id, session_id, status, created_at, expires_at, decided_at, decided_by, reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(&q.id)
        .bind(&q.tenant)
        .bind(&q.source)
        .bind(&q.kind)
        .bind(cipher::seal(self.cipher(), &no_nul(&q.content), &quarantine_place(&q.tenant, &q.id))?)
        .bind(&q.verdict)
        .bind(&q.severity)
        .bind(no_nul(&q.findings.to_string()).into_owned())
        .bind(q.event_id.as_deref())
        .bind(&q.key_id)
        .bind(q.user_id.as_deref())
        .bind(q.session_id.as_deref())
        .bind(q.status.as_str())
        .bind(q.created_at)
        .bind(q.expires_at)
        .bind(q.decided_at)
        .bind(q.decided_by.as_deref())
        .bind(q.reason.as_deref().map(|r| no_nul(r).into_owned()))
        .execute(&self.pool)
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!("quarantine item {}", q.id))),
            Err(e) => Err(e.into()),
        }
    }

    async fn quarantined(&self, tenant: &str, id: &str) -> Result<Option<QuarantineItem>> {
        let row = sqlx::query("SELECT * FROM quarantine WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| quarantine_from_row(r, self.cipher())).transpose()
    }

    async fn list_quarantine(&self, q: &QuarantineQuery) -> Result<(Vec<QuarantineItem>, u64)> {
        let (filter, status) = match q.status {
            Some(s) => (" AND status = $2", Some(s.as_str())),
            None => ("", None),
        };
        let count_sql = format!("SELECT COUNT(*) AS n FROM quarantine WHERE tenant = $1{filter}");
        let mut count = sqlx::query(&count_sql).bind(&q.tenant);
        if let Some(s) = status {
            count = count.bind(s);
        }
        let total: i64 = count.fetch_one(&self.pool).await?.try_get("n")?;
        let page_sql = format!(
            "SELECT * FROM quarantine WHERE tenant = $1{filter} ORDER BY created_at DESC, id DESC LIMIT {} OFFSET {}",
            q.limit.clamp(1, MAX_LIMIT),
            q.offset
        );
        let mut page = sqlx::query(&page_sql).bind(&q.tenant);
        if let Some(s) = status {
            page = page.bind(s);
        }
        let rows = page.fetch_all(&self.pool).await?;
        Ok((rows.iter().map(|r| quarantine_from_row(r, self.cipher())).collect::<Result<_>>()?, total.max(0) as u64))
    }

    async fn decide_quarantine(&self, tenant: &str, id: &str, d: &QuarantineDecision) -> Result<bool> {
        if d.status == QuarantineStatus::Pending {
            return Err(StoreError::Conflict("a decision must leave the pending status".into()));
        }
        let done = sqlx::query(
            "UPDATE quarantine SET status = $3, decided_at = $4, decided_by = $5, reason = $6 \
             WHERE tenant = $1 AND id = $2 AND status = 'pending'",
        )
        .bind(tenant)
        .bind(id)
        .bind(d.status.as_str())
        .bind(d.at)
        .bind(&d.by)
        .bind(d.reason.as_deref().map(|r| no_nul(r).into_owned()))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn quarantine_due(&self, now: Millis, limit: u32) -> Result<Vec<QuarantineItem>> {
        let sql = format!(
            "SELECT * FROM quarantine WHERE status = 'pending' AND expires_at <= $1 ORDER BY expires_at, id LIMIT {}",
            limit.clamp(1, MAX_LIMIT)
        );
        let rows = sqlx::query(&sql).bind(now).fetch_all(&self.pool).await?;
        rows.iter().map(|r| quarantine_from_row(r, self.cipher())).collect()
    }

    async fn count_pending_quarantine(&self) -> Result<u64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM quarantine WHERE status = 'pending'")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        Ok(n.max(0) as u64)
    }

    async fn export_position(&self, stream: &str) -> Result<Option<ExportPosition>> {
        let row = sqlx::query("SELECT * FROM export_positions WHERE stream = $1")
            .bind(stream)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(ExportPosition {
                stream: r.try_get("stream")?,
                position: r.try_get("position")?,
                pending_to: r.try_get("pending_to")?,
                updated_at: r.try_get("updated_at")?,
            })
        })
        .transpose()
    }

    async fn set_export_position(&self, p: &ExportPosition) -> Result<()> {
        sqlx::query(
            "INSERT INTO export_positions (stream, position, pending_to, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (stream) DO UPDATE SET position = excluded.position, pending_to = excluded.pending_to, \
             updated_at = excluded.updated_at",
        )
        .bind(&p.stream)
        .bind(p.position)
        .bind(p.pending_to)
        .bind(p.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn first_time_from(&self, source: ExportSource, from: Millis) -> Result<Option<Millis>> {
        let sql = format!("SELECT MIN(ts) AS t FROM {} WHERE ts >= $1", export_table(source));
        Ok(sqlx::query(&sql).bind(from).fetch_one(&self.pool).await?.try_get("t")?)
    }

    async fn tenants_between(&self, source: ExportSource, from: Millis, to: Millis) -> Result<Vec<String>> {
        let sql =
            format!("SELECT DISTINCT tenant FROM {} WHERE ts >= $1 AND ts < $2 ORDER BY tenant", export_table(source));
        let rows = sqlx::query(&sql).bind(from).bind(to).fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(r.try_get("tenant")?)).collect()
    }
}

/// PostgreSQL's text types cannot hold U+0000 (SQLite can, but most tools
/// reading it cannot): stored text gets U+FFFD in its place. Analysed input
/// is untrusted, so a NUL must not be able to fail an insert.
/// The table an export source reads (both have `tenant` and `ts`, indexed).
fn export_table(source: ExportSource) -> &'static str {
    match source {
        ExportSource::Events => "security_events",
        ExportSource::Anomalies => "anomalies",
    }
}

fn no_nul(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') { s.replace('\0', "\u{FFFD}").into() } else { s.into() }
}

async fn insert_deliveries(tx: &mut sqlx::Transaction<'_, Any>, deliveries: &[&Delivery], anon: bool) -> Result<()> {
    for chunk in deliveries.chunks(ROWS_PER_INSERT) {
        let sql = multi_insert(
            "INSERT INTO deliveries (id, webhook_id, tenant, event, payload, status, attempts, next_attempt_at, \
             last_error, last_status, created_at, updated_at) VALUES ",
            12,
            chunk.len(),
            anon,
        );
        let mut q = sqlx::query(&sql);
        for d in chunk {
            q = q
                .bind(&d.id)
                .bind(&d.webhook_id)
                .bind(&d.tenant)
                .bind(&d.event)
                .bind(&d.payload) // JSON text: a NUL is escaped as \u0000
                .bind(d.status.as_str())
                .bind(i64::from(d.attempts))
                .bind(d.next_attempt_at)
                .bind(d.last_error.as_deref())
                .bind(d.last_status.map(i64::from))
                .bind(d.created_at)
                .bind(d.updated_at);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Telemetry rows per INSERT (× 10 parameters: far below both backends'
/// limits). Measured with `examples/sentinel_load` once placeholders were
/// anonymous on SQLite: 100 rows 65–69k events/s, 32 rows 55–67k.
const TELEMETRY_ROWS: usize = 100;
/// Applications per query for `pending_telemetry_of` (2 parameters each).
const APPS_PER_QUERY: usize = 200;
/// Rows per INSERT into `telemetry_pending` (5 parameters each; SQLite
/// takes 32,766 per statement, PostgreSQL 65,535).
const PENDING_ROWS: usize = 1000;

/// Rows per multi-row INSERT: 50 × 12 columns stays far below both
/// backends' bind-parameter limits.
const ROWS_PER_INSERT: usize = 50;

/// `head` followed by `rows` tuples of `cols` placeholders: numbered
/// (`$1, $2, …`) for PostgreSQL, anonymous (`?`) for SQLite, where sqlx
/// looks each named parameter up by index through SQLite's
/// `sqlite3_bind_parameter_name`, a linear walk, which made binding a large
/// statement quadratic (9% of the CPU under gRPC ingestion load).
/// `id` as it appears inside a JSON string literal (without the quotes).
fn json_string_body(id: &str) -> String {
    let quoted = serde_json::Value::String(id.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// `s` with LIKE's wildcards and the escape character escaped (`ESCAPE '\'`).
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether any string value in the JSON document `body` is `id`.
fn mentions(body: &str, id: &str) -> bool {
    fn walk(v: &serde_json::Value, id: &str) -> bool {
        match v {
            serde_json::Value::String(s) => s == id,
            serde_json::Value::Array(a) => a.iter().any(|v| walk(v, id)),
            serde_json::Value::Object(o) => o.values().any(|v| walk(v, id)),
            _ => false,
        }
    }
    serde_json::from_str::<serde_json::Value>(body).is_ok_and(|v| walk(&v, id))
}

fn multi_insert(head: &str, cols: usize, rows: usize, anonymous: bool) -> String {
    let mut sql = String::with_capacity(head.len() + rows * cols * 5);
    sql.push_str(head);
    let mut n = 0;
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            n += 1;
            if c > 0 {
                sql.push_str(", ");
            }
            if anonymous {
                sql.push('?');
            } else {
                sql.push_str(&format!("${n}"));
            }
        }
        sql.push(')');
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn multi_row_placeholders_are_numbered_in_order() {
        assert_eq!(
            super::multi_insert("INSERT INTO t VALUES ", 2, 3, false),
            "INSERT INTO t VALUES ($1, $2), ($3, $4), ($5, $6)"
        );
    }

    #[test]
    fn passwords_never_reach_errors() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
