//! The records the store keeps. Times are Unix milliseconds (UTC): one
//! integer type that SQLite and PostgreSQL compare and index the same way.

use serde::{Deserialize, Serialize};

/// Unix time in milliseconds.
pub type Millis = i64;

/// The current time in Unix milliseconds.
pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// What a key may do. A key carries a set of them, and every key belongs
/// to one tenant: all scopes but `operator` act on that tenant only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Run analyses (`/api/security/*`, GraphQL `analyzeInput`/`validateOutput`).
    Analyze,
    /// Send telemetry.
    Ingest,
    /// Read stored events, deliveries and the tenant's own data.
    Read,
    /// Acknowledge, resolve and suppress the tenant's anomalies.
    Triage,
    /// Manage the tenant's own keys, webhooks, detectors and anomalies;
    /// erase its users' data. Includes `triage`.
    Admin,
    /// Cross-tenant: make tenants (keys for any tenant), manage any
    /// tenant's keys and webhooks, read the server-wide audit log.
    /// Includes `admin` (and so `triage`).
    Operator,
    /// Call models through the Shield gateway (`/v1/chat/completions` and
    /// the other OpenAI-compatible routes) on the key's own tenant.
    Proxy,
}

impl Scope {
    /// Every scope, in a fixed order.
    pub const ALL: [Scope; 7] =
        [Scope::Analyze, Scope::Ingest, Scope::Read, Scope::Triage, Scope::Admin, Scope::Operator, Scope::Proxy];

    /// The scope's name as written in keys, configs and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Analyze => "analyze",
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Triage => "triage",
            Scope::Admin => "admin",
            Scope::Operator => "operator",
            Scope::Proxy => "proxy",
        }
    }

    /// Parses a scope name.
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether a key holding this scope may do what `needed` allows:
    /// `operator` includes `admin`, which includes `triage`; the others
    /// include only themselves.
    pub fn grants(self, needed: Scope) -> bool {
        self == needed
            || matches!((self, needed), (Scope::Operator, Scope::Admin | Scope::Triage) | (Scope::Admin, Scope::Triage))
    }
}

/// An API key as stored: never the secret, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// The public part of the key (`lsk_<id>_…`), unique.
    pub id: String,
    /// The tenant whose data the key reads and writes.
    pub tenant: String,
    /// A label for people.
    pub name: String,
    /// Hex SHA-256 of the whole key string.
    pub hash: String,
    /// What the key may do.
    pub scopes: Vec<Scope>,
    /// Requests per second this key may make (token-bucket rate); `None` takes the server default.
    pub rate_per_sec: Option<f64>,
    /// When it was made.
    pub created_at: Millis,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Millis>,
    /// The models this key may call through the gateway (exact names, or a
    /// prefix ending in `*`); `None`: any model.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// The key's token and cost budgets on the gateway, at most one per period.
    #[serde(default)]
    pub budgets: Vec<Budget>,
}

/// The period a gateway budget counts over, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPeriod {
    /// A calendar day, from 00:00 UTC.
    Day,
    /// A calendar month, from the first at 00:00 UTC.
    Month,
}

impl BudgetPeriod {
    /// Every period, in a fixed order.
    pub const ALL: [BudgetPeriod; 2] = [BudgetPeriod::Day, BudgetPeriod::Month];

    /// The period's name as stored and written in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPeriod::Day => "day",
            BudgetPeriod::Month => "month",
        }
    }

    /// Parses a period name.
    pub fn parse(s: &str) -> Option<BudgetPeriod> {
        BudgetPeriod::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The start of the period that holds `at` (Unix milliseconds, UTC).
    pub fn start(self, at: Millis) -> Millis {
        use chrono::{Datelike, TimeZone};
        let t = chrono::Utc.timestamp_millis_opt(at).single().unwrap_or_default();
        let day = t.date_naive();
        let first = match self {
            BudgetPeriod::Day => day,
            BudgetPeriod::Month => day.with_day(1).unwrap_or(day),
        };
        first.and_hms_opt(0, 0, 0).map_or(0, |d| d.and_utc().timestamp_millis())
    }

    /// The end of the period that holds `at` (the start of the next one).
    pub fn end(self, at: Millis) -> Millis {
        use chrono::{Datelike, Months, TimeZone};
        let start = self.start(at);
        let t = chrono::Utc.timestamp_millis_opt(start).single().unwrap_or_default();
        let next = match self {
            BudgetPeriod::Day => t.checked_add_signed(chrono::Duration::days(1)),
            BudgetPeriod::Month => t.with_day(1).and_then(|t| t.checked_add_months(Months::new(1))),
        };
        next.map_or(Millis::MAX, |n| n.timestamp_millis())
    }
}

/// A key's spending limit on the gateway for one period: total tokens,
/// cost (in the price table's currency), or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// The period it counts over.
    pub period: BudgetPeriod,
    /// Most tokens (prompt plus completion) per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// Most cost per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
}

/// What a key used through the gateway in one period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyUsage {
    /// The period.
    pub period: BudgetPeriod,
    /// When it started.
    pub start: Millis,
    /// Tokens used (prompt plus completion).
    pub tokens: u64,
    /// Cost.
    pub cost: f64,
}

/// What one gateway call holds against its key's budgets while it runs:
/// its expected tokens and cost, until it is settled with what it used, or
/// until `expires_at`, after which the next hold of the key reclaims it (a
/// replica that died mid-call does not hold the budget forever).
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetHold {
    /// Unique per call.
    pub id: String,
    /// Tokens held.
    pub tokens: u64,
    /// Cost held.
    pub cost: f64,
    /// When the hold lapses if never settled.
    pub expires_at: Millis,
}

/// Why a hold was refused: the first of the key's budgets it did not fit,
/// with what was used and what other calls held in that period.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetShortfall {
    /// The budget it did not fit.
    pub budget: Budget,
    /// Tokens used in the period.
    pub used_tokens: u64,
    /// Cost used in the period.
    pub used_cost: f64,
    /// Tokens the key's calls in flight hold (every replica's).
    pub held_tokens: u64,
    /// Cost the key's calls in flight hold.
    pub held_cost: f64,
}

/// One analysis, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityEvent {
    /// A UUIDv7 (time-ordered).
    pub id: String,
    /// The tenant of the key that asked.
    pub tenant: String,
    /// `input_analysis` or `output_validation`.
    pub event_type: String,
    /// The text as the retention mode allows: absent (`none`), redacted, or full.
    pub input: Option<String>,
    /// The threats, as the engine's JSON.
    pub threats: serde_json::Value,
    /// The analysis confidence in `[0, 1]`.
    pub confidence: f64,
    /// `allow`, `sanitize` or `block`.
    pub verdict: String,
    /// When the analysis ran.
    pub timestamp: Millis,
    /// The caller's user id, if given.
    pub user_id: Option<String>,
    /// The caller's session id, if given.
    pub session_id: Option<String>,
    /// For untrusted content analysed as such: its kind (`email`,
    /// `webpage`, `tool_output` …); `None` for prompts and completions.
    #[serde(default)]
    pub context_kind: Option<String>,
    /// The engine's time on the analysis, in microseconds (`None` for
    /// events stored before it was recorded).
    #[serde(default)]
    pub analysis_us: Option<i64>,
}

/// Which events to read: always one tenant; newest first; cursor-paginated.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// The tenant (required: no query crosses tenants).
    pub tenant: String,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only this user.
    pub user_id: Option<String>,
    /// Only this session.
    pub session_id: Option<String>,
    /// Only this verdict.
    pub verdict: Option<String>,
    /// Only events whose confidence is at least this.
    pub min_confidence: Option<f64>,
    /// Only events at or after this time.
    pub since: Option<Millis>,
    /// Only events before this time.
    pub until: Option<Millis>,
    /// Only events with a threat whose type (`jailbreak`) or category
    /// (`direct_injection`) is exactly this.
    pub threat: Option<String>,
    /// Continue after this event (`(timestamp, id)` of the last one seen).
    pub before: Option<(Millis, String)>,
    /// At most this many (the store caps it at 1000).
    pub limit: u32,
}

/// A webhook subscription: the stored form of the engine's `WebhookConfig`
/// (URL, secret, events) with its id and tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    /// Its id.
    pub id: String,
    /// The tenant whose events it receives.
    pub tenant: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The HMAC key. Kept in clear: signing needs it.
    pub secret: String,
    /// Which events it wants (`threat.detected`, `threat.mitigated`, `analysis.completed`).
    pub events: Vec<String>,
    /// When it was made.
    pub created_at: Millis,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (or being attempted under a lease).
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Attempts exhausted; kept for people to see and redeliver.
    Dead,
}

impl DeliveryStatus {
    /// The status as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
        }
    }

    /// Parses a stored status.
    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "dead" => Some(DeliveryStatus::Dead),
            _ => None,
        }
    }
}

/// One webhook delivery in the outbox. Its id is the idempotency key the
/// receiver sees, the same on every attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Its id, also the idempotency key.
    pub id: String,
    /// The subscription it is for.
    pub webhook_id: String,
    /// The tenant.
    pub tenant: String,
    /// The event name, e.g. `threat.detected`.
    pub event: String,
    /// The exact JSON body sent on every attempt.
    pub payload: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (or the current lease ends).
    pub next_attempt_at: Millis,
    /// What went wrong on the last failed attempt.
    pub last_error: Option<String>,
    /// The HTTP status of the last attempt, when there was one.
    pub last_status: Option<u16>,
    /// When it was queued.
    pub created_at: Millis,
    /// When it last changed.
    pub updated_at: Millis,
}

impl Delivery {
    /// A delivery queued at `now`, due at once, not yet attempted.
    pub fn pending(id: String, target: String, tenant: &str, event: &str, payload: String, now: Millis) -> Delivery {
        Delivery {
            id,
            webhook_id: target,
            tenant: tenant.to_owned(),
            event: event.to_owned(),
            payload,
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            last_status: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// 2xx.
    Delivered {
        /// The HTTP status.
        status: u16,
    },
    /// Failed; try again at `retry_at`, or give up (`retry_at: None`: dead-letter).
    Failed {
        /// The HTTP status, when the receiver answered.
        status: Option<u16>,
        /// What went wrong.
        error: String,
        /// When to try again; `None` moves it to the dead-letter state.
        retry_at: Option<Millis>,
    },
}

/// An entry of the admin audit log. `hash` = SHA-256 over the previous
/// entry's hash and this entry's fields, so editing or dropping an entry
/// breaks every hash after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When it happened.
    pub timestamp: Millis,
    /// Who did it (a key id).
    pub actor: String,
    /// What was done, e.g. `key.create`.
    pub action: String,
    /// What it was done to, e.g. a key id.
    pub target: String,
    /// Details as JSON text.
    pub details: String,
    /// The previous entry's hash (64 zeros for the first).
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

/// What a caller supplies to append to the audit log.
#[derive(Debug, Clone)]
pub struct NewAudit {
    /// Who did it.
    pub actor: String,
    /// What was done.
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// Details (serialized as JSON).
    pub details: serde_json::Value,
}

/// An analysis to store together with the deliveries it causes (one
/// transaction: the transactional outbox).
#[derive(Debug, Clone)]
pub struct Record {
    /// The event.
    pub event: SecurityEvent,
    /// Deliveries to queue.
    pub deliveries: Vec<Delivery>,
}

/// A telemetry event as stored: indexed columns plus the event's JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryRow {
    /// The tenant (from the ingesting key).
    pub tenant: String,
    /// The reporter's event id: ingestion is idempotent on (tenant, event_id).
    pub event_id: String,
    /// The application.
    pub application_id: String,
    /// `llm.request`, `llm.response`, `llm.error`.
    pub event_type: String,
    /// The event's time.
    pub timestamp: Millis,
    /// The whole event as JSON.
    pub body: String,
    /// When it was accepted.
    pub received_at: Millis,
    /// The end user (`metadata.user_id`), indexed for erasure.
    pub user_id: Option<String>,
}

/// How many rows an erasure or a retention purge removed, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// Security events.
    pub events: u64,
    /// Telemetry events.
    pub telemetry: u64,
    /// Anomalies.
    pub anomalies: u64,
    /// Webhook deliveries (their bodies quote events and anomalies).
    pub deliveries: u64,
    /// Enforcements.
    pub enforcements: u64,
    /// Gateway budget usage of periods that had ended before the cutoff.
    #[serde(default)]
    pub key_usage: u64,
    /// Quarantined items (decided ones past retention; a user's on erasure).
    #[serde(default)]
    pub quarantine: u64,
    /// Campaigns: last seen before the cutoff (retention), or that named
    /// the erased user, who is taken out of them (erasure).
    #[serde(default)]
    pub campaigns: u64,
}

impl Removed {
    /// Rows removed in all.
    pub fn total(&self) -> u64 {
        self.events
            + self.telemetry
            + self.anomalies
            + self.deliveries
            + self.enforcements
            + self.key_usage
            + self.quarantine
            + self.campaigns
    }
}

/// An anomaly as stored: indexed columns plus the anomaly's JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyRow {
    /// Its id.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// The detector.
    pub detector_id: String,
    /// `info`, `warning`, `critical`.
    pub severity: String,
    /// `active`, `acknowledged`, `resolved`, `suppressed`.
    pub status: String,
    /// In `[0, 1]`.
    pub score: f64,
    /// The application, when known.
    pub application_id: Option<String>,
    /// When it opened.
    pub timestamp: Millis,
    /// When it was resolved.
    pub resolved_at: Option<Millis>,
    /// The whole anomaly as JSON.
    pub body: String,
}

/// Which anomalies to read: one tenant, a time range, filters; newest first.
#[derive(Debug, Clone, Default)]
pub struct AnomalyQuery {
    /// The tenant.
    pub tenant: String,
    /// Opened at or after.
    pub start: Option<Millis>,
    /// Opened before.
    pub end: Option<Millis>,
    /// Any of these severities.
    pub severities: Vec<String>,
    /// Any of these statuses.
    pub statuses: Vec<String>,
    /// Any of these detectors.
    pub detector_ids: Vec<String>,
    /// Any of these applications.
    pub application_ids: Vec<String>,
    /// Lowest score.
    pub score_min: Option<f64>,
    /// Highest score.
    pub score_max: Option<f64>,
    /// Page size (capped at 1000).
    pub limit: u32,
    /// Rows to skip.
    pub offset: u32,
}

/// A stored campaign (the server's correlation of threats and anomalies
/// across users and sessions): the columns listings use, and the whole
/// campaign as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignRow {
    /// Its id.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// `template`, `indicator` or `ip_range`.
    pub kind: String,
    /// What its observations share.
    pub key: String,
    /// `active` or `closed`.
    pub status: String,
    /// The worst severity seen.
    pub severity: String,
    /// First observation.
    pub first_seen: Millis,
    /// Last observation.
    pub last_seen: Millis,
    /// Observations counted.
    pub events: i64,
    /// The campaign as JSON.
    pub body: String,
}

/// Which campaigns to read: one tenant, filters, a page; most recently
/// seen first.
#[derive(Debug, Clone, Default)]
pub struct CampaignQuery {
    /// The tenant.
    pub tenant: String,
    /// Of this status.
    pub status: Option<String>,
    /// Of this kind.
    pub kind: Option<String>,
    /// Seen at or after.
    pub since: Option<Millis>,
    /// Page size (capped at 1000).
    pub limit: u32,
    /// Rows to skip.
    pub offset: u32,
}

/// A red-team run's figures (`llmsec redteam` uploads them): never its
/// prompts or the target's answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedteamRun {
    /// Its id.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// When it ran.
    pub timestamp: Millis,
    /// What was attacked.
    pub target: String,
    /// Trials run, errors included.
    pub trials: u64,
    /// Trials the target failed on.
    pub errors: u64,
    /// Successful attacks among the judged trials.
    pub successes: u64,
    /// Attack success rate of the judged trials.
    pub asr: f64,
    /// The figures per category (JSON).
    pub summary: serde_json::Value,
}

/// A shield enforcement: block or rate-limit an entity until a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enforcement {
    /// Its id.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// `application`, `tenant`, `user`, `model`, `session`, `ip`.
    pub entity_kind: String,
    /// The entity.
    pub entity_id: String,
    /// `block` or `rate_limit`.
    pub action: String,
    /// Requests per window, for rate limits.
    pub rate_limit: Option<u64>,
    /// The window in milliseconds, for rate limits.
    pub window_ms: Option<i64>,
    /// Why (shown to the refused caller).
    pub reason: String,
    /// The anomaly that caused it.
    pub anomaly_id: Option<String>,
    /// When it started.
    pub created_at: Millis,
    /// When it ends.
    pub expires_at: Millis,
}

/// A tenant's change to one detector, kept apart from the detectors file:
/// the fields it sets (`enabled`, `config`, `actions`, …) are laid over
/// that detector's entry in the file for this tenant only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorOverride {
    /// The tenant it applies to.
    pub tenant: String,
    /// The detector.
    pub detector_id: String,
    /// The fields set, as a JSON object of detector entry keys.
    pub fields: String,
    /// When it last changed.
    pub updated_at: Millis,
}

/// Where one periodic export stream stands (see `Store::export_position`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportPosition {
    /// The stream (`events`, `anomalies`, `reports`, or a name the exporter picks).
    pub stream: String,
    /// Everything before this time has been exported.
    pub position: Millis,
    /// The end of the window being exported, once chosen and until it is
    /// done: a retry exports `[position, pending_to)` again, to the same keys.
    pub pending_to: Option<Millis>,
    /// When this row last changed.
    pub updated_at: Millis,
}

/// A table an export reads by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportSource {
    /// Security events, by their analysis time.
    Events,
    /// Anomalies, by the time they opened.
    Anomalies,
}

impl ExportSource {
    /// The stream name: `events` or `anomalies`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportSource::Events => "events",
            ExportSource::Anomalies => "anomalies",
        }
    }
}

/// Where a quarantined item stands. `Pending` is the only state a decision
/// leaves; the other three are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuarantineStatus {
    /// Waiting for a reviewer.
    Pending,
    /// A reviewer (or `on_expiry = "release"`) let it through.
    Released,
    /// A reviewer refused it.
    Discarded,
    /// Nobody decided within `hold_secs` and `on_expiry = "discard"`.
    Expired,
}

impl QuarantineStatus {
    /// Every status, in a fixed order.
    pub const ALL: [QuarantineStatus; 4] =
        [QuarantineStatus::Pending, QuarantineStatus::Released, QuarantineStatus::Discarded, QuarantineStatus::Expired];

    /// The status as stored and answered.
    pub fn as_str(self) -> &'static str {
        match self {
            QuarantineStatus::Pending => "pending",
            QuarantineStatus::Released => "released",
            QuarantineStatus::Discarded => "discarded",
            QuarantineStatus::Expired => "expired",
        }
    }

    /// Parses a stored status.
    pub fn parse(s: &str) -> Option<QuarantineStatus> {
        QuarantineStatus::ALL.into_iter().find(|q| q.as_str() == s)
    }
}

/// A request or completion held for human review. `content` is the one
/// column that holds the held text (a prompt, or a gateway answer's JSON),
/// stored whole: it is what the reviewer reads and what a release hands
/// back. `findings` names what was found, without the evidence text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineItem {
    /// Its id (`q_…`).
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// Where it was held: `analyze`, `validate` or `gateway`.
    pub source: String,
    /// What `content` is: `text`, or the gateway route's answer format
    /// (`chat.completion`, `text_completion`, `message`).
    pub kind: String,
    /// The held text, whole.
    pub content: String,
    /// The verdict the policy gave it.
    pub verdict: String,
    /// The highest severity found (`low` … `critical`; empty when none).
    pub severity: String,
    /// The findings as JSON: type, category, severity, confidence, scanner, span.
    pub findings: serde_json::Value,
    /// The security event of the analysis that held it, when stored.
    pub event_id: Option<String>,
    /// The key whose call was held.
    pub key_id: String,
    /// The end user, for erasure.
    pub user_id: Option<String>,
    /// The conversation.
    pub session_id: Option<String>,
    /// Where it stands.
    pub status: QuarantineStatus,
    /// When it was held.
    pub created_at: Millis,
    /// When `on_expiry` applies if nobody decides.
    pub expires_at: Millis,
    /// When it was decided.
    pub decided_at: Option<Millis>,
    /// Who decided: a key id, or `system` for expiry.
    pub decided_by: Option<String>,
    /// Why, as the reviewer wrote it.
    pub reason: Option<String>,
}

/// A decision on a pending item.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineDecision {
    /// `Released`, `Discarded` or `Expired` (never `Pending`).
    pub status: QuarantineStatus,
    /// Who.
    pub by: String,
    /// When.
    pub at: Millis,
    /// Why.
    pub reason: Option<String>,
}

/// A page of a tenant's quarantine.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QuarantineQuery {
    /// The tenant.
    pub tenant: String,
    /// Only items in this status.
    pub status: Option<QuarantineStatus>,
    /// Page size (capped at 1000).
    pub limit: u32,
    /// Rows to skip.
    pub offset: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_periods_are_utc_days_and_months() {
        // 2024-02-29T13:45:00Z, a leap day.
        let at = 1_709_214_300_000;
        assert_eq!(BudgetPeriod::Day.start(at), 1_709_164_800_000); // 2024-02-29T00:00Z
        assert_eq!(BudgetPeriod::Day.end(at), 1_709_251_200_000); // 2024-03-01T00:00Z
        assert_eq!(BudgetPeriod::Month.start(at), 1_706_745_600_000); // 2024-02-01T00:00Z
        assert_eq!(BudgetPeriod::Month.end(at), 1_709_251_200_000);
        // December rolls over into January.
        let dec = 1_734_999_999_000; // 2024-12-24
        assert_eq!(BudgetPeriod::Month.end(dec), 1_735_689_600_000); // 2025-01-01T00:00Z
        assert_eq!(BudgetPeriod::Day.start(BudgetPeriod::Day.start(at)), BudgetPeriod::Day.start(at));
        for p in BudgetPeriod::ALL {
            assert_eq!(BudgetPeriod::parse(p.as_str()), Some(p));
        }
    }
}
