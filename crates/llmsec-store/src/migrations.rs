//! Schema migrations, one list for both backends.
//!
//! The SQL keeps to what SQLite and PostgreSQL read alike: `TEXT`, `BIGINT`
//! (times are Unix milliseconds, flags are 0/1), `DOUBLE PRECISION`. Each
//! step runs once, in its own transaction, and is recorded in
//! `schema_migrations`; a database newer than this binary is refused.

/// `(version, statements)`, in order. Never edit a released step: add one.
pub(crate) const MIGRATIONS: &[(i64, &[&str])] = &[
    (
        1,
        &[
            "CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            name TEXT NOT NULL,
            hash TEXT NOT NULL,
            scopes TEXT NOT NULL,
            rate_per_sec DOUBLE PRECISION,
            created_at BIGINT NOT NULL,
            revoked_at BIGINT
        )",
            "CREATE TABLE security_events (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            event_type TEXT NOT NULL,
            input TEXT,
            threats TEXT NOT NULL,
            confidence DOUBLE PRECISION NOT NULL,
            verdict TEXT NOT NULL,
            ts BIGINT NOT NULL,
            user_id TEXT,
            session_id TEXT
        )",
            "CREATE INDEX security_events_tenant_ts ON security_events (tenant, ts, id)",
            "CREATE INDEX security_events_tenant_user ON security_events (tenant, user_id)",
            "CREATE INDEX security_events_ts ON security_events (ts)",
            "CREATE TABLE webhooks (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            url TEXT NOT NULL,
            secret TEXT NOT NULL,
            events TEXT NOT NULL,
            created_at BIGINT NOT NULL
        )",
            "CREATE INDEX webhooks_tenant ON webhooks (tenant)",
            "CREATE TABLE deliveries (
            id TEXT PRIMARY KEY,
            webhook_id TEXT NOT NULL,
            tenant TEXT NOT NULL,
            event TEXT NOT NULL,
            payload TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts BIGINT NOT NULL,
            next_attempt_at BIGINT NOT NULL,
            last_error TEXT,
            last_status BIGINT,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        )",
            "CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at)",
            "CREATE INDEX deliveries_tenant ON deliveries (tenant, created_at)",
            "CREATE TABLE audit_log (
            seq BIGINT PRIMARY KEY,
            ts BIGINT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            details TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )",
        ],
    ),
    (
        2,
        &[
            // Sentinel: telemetry (idempotent per tenant and event id), anomalies, enforcements.
            "CREATE TABLE telemetry_events (
            tenant TEXT NOT NULL,
            event_id TEXT NOT NULL,
            application_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            ts BIGINT NOT NULL,
            body TEXT NOT NULL,
            received_at BIGINT NOT NULL,
            processed BIGINT NOT NULL,
            PRIMARY KEY (tenant, event_id)
        )",
            "CREATE INDEX telemetry_events_tenant_ts ON telemetry_events (tenant, ts)",
            "CREATE INDEX telemetry_events_pending ON telemetry_events (processed, received_at)",
            "CREATE TABLE anomalies (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            detector_id TEXT NOT NULL,
            severity TEXT NOT NULL,
            status TEXT NOT NULL,
            score DOUBLE PRECISION NOT NULL,
            application_id TEXT,
            ts BIGINT NOT NULL,
            resolved_at BIGINT,
            body TEXT NOT NULL
        )",
            "CREATE INDEX anomalies_tenant_ts ON anomalies (tenant, ts)",
            "CREATE TABLE enforcements (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            entity_kind TEXT NOT NULL,
            entity_id TEXT NOT NULL,
            action TEXT NOT NULL,
            rate_limit BIGINT,
            window_ms BIGINT,
            reason TEXT NOT NULL,
            anomaly_id TEXT,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL
        )",
            "CREATE INDEX enforcements_entity ON enforcements (tenant, entity_kind, entity_id, expires_at)",
        ],
    ),
    (
        3,
        &[
            // Per-tenant detector changes (`updateDetector`), laid over the detectors file.
            "CREATE TABLE detector_overrides (
            tenant TEXT NOT NULL,
            detector_id TEXT NOT NULL,
            fields TEXT NOT NULL,
            updated_at BIGINT NOT NULL,
            PRIMARY KEY (tenant, detector_id)
        )",
            // `admin` became a tenant's own administrator; the cross-tenant
            // powers moved to `operator`. The key the server made at first
            // start (audited as key.bootstrap) keeps them.
            "UPDATE api_keys SET scopes = scopes || ',operator'
            WHERE id IN (SELECT target FROM audit_log WHERE action = 'key.bootstrap')
            AND revoked_at IS NULL AND scopes NOT LIKE '%operator%'",
        ],
    ),
    (
        4,
        &[
            // Telemetry by end user, for erasure. Rows stored before this
            // step have NULL here and are found through their body.
            "ALTER TABLE telemetry_events ADD COLUMN user_id TEXT",
            "CREATE INDEX telemetry_events_tenant_user ON telemetry_events (tenant, user_id)",
            "CREATE INDEX anomalies_resolved ON anomalies (status, resolved_at)",
            "CREATE INDEX enforcements_expires ON enforcements (expires_at)",
        ],
    ),
    (
        5,
        &[
            // Gateway limits of a key: a JSON array of model names (NULL:
            // any model) and a JSON array of budgets (NULL: none).
            "ALTER TABLE api_keys ADD COLUMN models TEXT",
            "ALTER TABLE api_keys ADD COLUMN budgets TEXT",
            // Usage counted against budgets, per key and period, shared by
            // every replica.
            "CREATE TABLE key_usage (
            key_id TEXT NOT NULL,
            tenant TEXT NOT NULL,
            period TEXT NOT NULL,
            period_start BIGINT NOT NULL,
            tokens BIGINT NOT NULL,
            cost DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (key_id, period, period_start)
        )",
        ],
    ),
    (
        6,
        &[
            // What an event was analysed as, for content analysed with
            // `analyze_context` (`email`, `webpage`, `tool_output` …; NULL for
            // prompts and completions), and the engine's time on it in
            // microseconds (NULL for rows stored before this step).
            "ALTER TABLE security_events ADD COLUMN context_kind TEXT",
            "ALTER TABLE security_events ADD COLUMN analysis_us BIGINT",
        ],
    ),
    (
        7,
        &[
            // Red-team runs, their figures only (never the attack prompts or
            // the target's answers): attack success over time.
            "CREATE TABLE redteam_runs (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            ts BIGINT NOT NULL,
            target TEXT NOT NULL,
            trials BIGINT NOT NULL,
            errors BIGINT NOT NULL,
            successes BIGINT NOT NULL,
            asr DOUBLE PRECISION NOT NULL,
            summary TEXT NOT NULL
        )",
            "CREATE INDEX redteam_runs_tenant_ts ON redteam_runs (tenant, ts)",
        ],
    ),
    (
        8,
        &[
            // How far each periodic export stream (events, anomalies,
            // reports) has been written out: `position` is the end of the
            // last exported window; `pending_to` the end of a window being
            // written, so a retry writes the same window to the same keys.
            "CREATE TABLE export_positions (
            stream TEXT PRIMARY KEY,
            position BIGINT NOT NULL,
            pending_to BIGINT,
            updated_at BIGINT NOT NULL
        )",
            // Exports find the earliest anomaly and the tenants of a window
            // across tenants (events have `security_events_ts` since step 1).
            "CREATE INDEX anomalies_ts ON anomalies (ts)",
        ],
    ),
    (
        9,
        &[
            // Requests and completions held for human review. `content`
            // holds the held text whole, in this one column (what the
            // reviewer reads and a release hands back); `findings` names
            // what was found without quoting it. A decision moves `status`
            // from `pending` once (compare-and-set on the status).
            "CREATE TABLE quarantine (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            source TEXT NOT NULL,
            kind TEXT NOT NULL,
            content TEXT NOT NULL,
            verdict TEXT NOT NULL,
            severity TEXT NOT NULL,
            findings TEXT NOT NULL,
            event_id TEXT,
            key_id TEXT NOT NULL,
            user_id TEXT,
            session_id TEXT,
            status TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            decided_at BIGINT,
            decided_by TEXT,
            reason TEXT
        )",
            "CREATE INDEX quarantine_tenant_status ON quarantine (tenant, status, created_at)",
            "CREATE INDEX quarantine_due ON quarantine (status, expires_at)",
            "CREATE INDEX quarantine_tenant_user ON quarantine (tenant, user_id)",
        ],
    ),
    (
        10,
        &[
            // Campaigns: threats and anomalies of several users or sessions
            // correlated by a shared template, indicator or address range.
            // `body` is the whole campaign as JSON; the columns are what
            // listings filter and sort on.
            "CREATE TABLE campaigns (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            kind TEXT NOT NULL,
            ckey TEXT NOT NULL,
            status TEXT NOT NULL,
            severity TEXT NOT NULL,
            first_seen BIGINT NOT NULL,
            last_seen BIGINT NOT NULL,
            events BIGINT NOT NULL,
            body TEXT NOT NULL
        )",
            "CREATE INDEX campaigns_tenant_last_seen ON campaigns (tenant, last_seen)",
            "CREATE INDEX campaigns_status_last_seen ON campaigns (status, last_seen)",
        ],
    ),
    (
        11,
        &[
            // The declared purpose (`[privacy] purposes`) each stored
            // security event and telemetry event was kept for; NULL for rows
            // stored before this step or with no purpose configured.
            // (Steps 9, 10 and 11 were written side by side: `migrate`
            // applies every step a database has not recorded, so one that
            // got 11 first still gets 9 and 10.)
            "ALTER TABLE security_events ADD COLUMN purpose TEXT",
            "ALTER TABLE telemetry_events ADD COLUMN purpose TEXT",
        ],
    ),
    (
        12,
        &[
            // What Sentinel has still to run through its detectors, out of
            // `telemetry_events`: a row is inserted with its event (same
            // transaction) and deleted once processed. Marking a flag in
            // place rewrote every index of the big table (the flag was
            // indexed, so no update was HOT) while ingestion inserted into
            // it; a delete from this narrow table touches only its own.
            "CREATE TABLE telemetry_pending (
            tenant TEXT NOT NULL,
            event_id TEXT NOT NULL,
            application_id TEXT NOT NULL,
            received_at BIGINT NOT NULL,
            ts BIGINT NOT NULL,
            PRIMARY KEY (tenant, event_id)
        )",
            "CREATE INDEX telemetry_pending_order ON telemetry_pending (received_at, ts)",
            "INSERT INTO telemetry_pending (tenant, event_id, application_id, received_at, ts)
            SELECT tenant, event_id, application_id, received_at, ts FROM telemetry_events WHERE processed = 0",
            "DROP INDEX telemetry_events_pending",
            "ALTER TABLE telemetry_events DROP COLUMN processed",
        ],
    ),
    (
        13,
        &[
            // What the gateway's calls in flight hold against a key's
            // budgets, per period row, beside what was used: a call is let
            // through only when used + held + its own hold fits, in one
            // conditional UPDATE, so replicas on one database cannot pass a
            // budget together.
            "ALTER TABLE key_usage ADD COLUMN held_tokens BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE key_usage ADD COLUMN held_cost DOUBLE PRECISION NOT NULL DEFAULT 0",
            // Each call's hold, so that settling releases exactly what it
            // held, once, and a hold whose replica died is reclaimed after
            // `expires_at`.
            "CREATE TABLE key_holds (
            id TEXT PRIMARY KEY,
            key_id TEXT NOT NULL,
            tenant TEXT NOT NULL,
            day_start BIGINT NOT NULL,
            month_start BIGINT NOT NULL,
            tokens BIGINT NOT NULL,
            cost DOUBLE PRECISION NOT NULL,
            expires_at BIGINT NOT NULL
        )",
            "CREATE INDEX key_holds_key_expires ON key_holds (key_id, expires_at)",
        ],
    ),
];
