//! The llm-security service: the engine behind REST and GraphQL, with API
//! keys and tenants, a SQLite or PostgreSQL store, signed durable webhooks
//! and Prometheus metrics, and the web [`dashboard`] at `/`. `llmsec serve`
//! is a thin wrapper around [`Server`].
//!
//! The request path: the connection caps and idle deadlines ([`listener`]),
//! HTTP metrics, the request timeout ([`deadline`]), the body limit,
//! authentication and the per-key rate limit ([`auth`]), then the route (a thin adapter over [`service`]). An
//! analysis runs the engine inline (on the blocking pool above 4 KiB),
//! hands its event and webhook deliveries to the group-commit [`writer`],
//! and answers once they are durable. The [`deliver`] worker sends
//! deliveries from the outbox.
//!
//! Tests drive [`Server::router`] with `tower::ServiceExt::oneshot`, and a
//! few go over a real socket with [`Server::serve`].
#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod broker;
pub mod campaigns;
pub mod config;
pub mod dashboard;
pub mod deliver;
pub mod egress;
pub mod error;
pub mod export;
pub mod gql;
pub mod graphql;
pub mod graphql_limits;
pub mod grpc;
pub mod kafka;
pub mod listener;
pub mod metrics;
pub mod notify;
pub mod otel;
pub mod ownership;
pub mod policy;
pub mod privacy;
pub mod profile;
pub mod quarantine;
pub mod quarantine_graphql;
pub mod ratelimit;
pub mod redact;
pub mod risk;
pub mod sentinel;
pub mod sentinel_graphql;
pub mod service;
pub mod shield_grpc;
pub mod sinks;
pub mod state;
pub mod time;
pub mod ws;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use llm_security::SecurityEngine;
use llmsec_store::{NewAudit, Scope, SqlStore, Store, now_millis};
use tokio::sync::{Notify, broadcast, watch};

use crate::config::ServerConfig;
use crate::deliver::{DeliveryWorker, WebhookRegistry};
use crate::error::{ApiError, BodyLimit};
use crate::ratelimit::RateLimiter;
use crate::service::keys::KeyCache;
use crate::service::writer::EventWriter;
use crate::service::{Caller, Services, ServicesInner};
use crate::state::HttpParts;

pub use config::ConfigError;
pub use service::ThreatNotice;
pub use state::AppState;

/// The OpenAPI document served at `/openapi.json` (also `docs/openapi.json`).
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] llmsec_store::StoreError),
    /// The engine could not be built.
    #[error("engine: {0}")]
    Engine(#[from] llm_security::Error),
    /// The data directory could not be made.
    #[error("data dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The webhook HTTP client could not be built.
    #[error("webhook client: {0}")]
    Client(#[from] reqwest::Error),
    /// A configured webhook could not be registered.
    #[error("webhooks: {0}")]
    Webhook(String),
    /// The Sentinel configuration is refused.
    #[error("sentinel: {0}")]
    Sentinel(String),
    /// The Kafka source or sink could not be set up.
    #[error("kafka: {0}")]
    Kafka(String),
    /// The Rego policy does not load.
    #[error("policy: {0}")]
    Policy(#[from] llmsec_policy::PolicyError),
    /// The OpenTelemetry exporters could not be built.
    #[error(transparent)]
    Otel(#[from] otel::OtelError),
    /// The `[export.s3]` client could not be built.
    #[error("export.s3.{field}: {message}")]
    Export {
        /// The setting.
        field: &'static str,
        /// Why.
        message: String,
    },
}

/// Opens the store `config` names, with its `[storage.encryption]` keys
/// (refused, naming the key source, when one is missing or not 32 bytes)
/// and `[privacy]` purposes. `llmsec serve` and every CLI command that
/// reads the database open it so, so stored text reads the same everywhere.
pub async fn open_store(config: &ServerConfig) -> Result<SqlStore, StartError> {
    let cipher = config.storage_cipher()?;
    let store = SqlStore::connect(&config.database_url()).await?.with_purposes(config.privacy.stored_purposes());
    Ok(match cipher {
        Some(c) => {
            // Key ids only: they name keys without revealing them.
            tracing::info!(primary_key_id = c.primary_kid(), key_ids = ?c.kids(), "encryption at rest on");
            store.with_cipher(c)
        }
        None => store,
    })
}

/// A built server: state, background tasks, and the way to stop them.
#[derive(Debug)]
pub struct Server {
    state: AppState,
    writer_task: tokio::task::JoinHandle<()>,
    worker_task: tokio::task::JoinHandle<()>,
    sentinel_task: tokio::task::JoinHandle<()>,
    retention_task: tokio::task::JoinHandle<()>,
    quarantine_task: Option<tokio::task::JoinHandle<()>>,
    kafka_task: Option<tokio::task::JoinHandle<()>>,
    export_task: Option<tokio::task::JoinHandle<()>>,
    exporter: Option<Arc<export::Exporter>>,
    stop: watch::Sender<bool>,
    bootstrap_key: Option<String>,
}

impl Server {
    /// Opens the store (creating the data directory, owner-only, for SQLite), builds the
    /// engine, registers configured webhooks, makes the first operator key
    /// if there is none and `env_admin_key` is unset, and starts the
    /// background tasks.
    pub async fn start(config: ServerConfig, env_admin_key: Option<String>) -> Result<Server, StartError> {
        config.validate()?;
        // Keys first: a missing key refuses the start before anything is made.
        config.storage_cipher()?;
        if let Some(k) = &env_admin_key
            && k.len() < 16
        {
            return Err(
                ConfigError::Env { var: "LLMSEC_ADMIN_KEY", message: "must be at least 16 characters".into() }.into()
            );
        }
        let url = config.database_url();
        if url.starts_with("sqlite:") && !url.contains(":memory:") {
            create_data_dir(&config.data_dir)
                .map_err(|source| StartError::DataDir { path: config.data_dir.clone(), source })?;
        }
        let engine = SecurityEngine::try_with_config(config.security_config()?)?;
        let store: Arc<dyn Store> = Arc::new(open_store(&config).await?);
        Server::with_parts(config, engine, store, env_admin_key).await
    }

    /// Like [`start`](Self::start), over a store and engine the caller built.
    pub async fn with_parts(
        config: ServerConfig,
        engine: SecurityEngine,
        store: Arc<dyn Store>,
        env_admin_key: Option<String>,
    ) -> Result<Server, StartError> {
        Server::with_clock(config, engine, store, env_admin_key, Arc::new(llm_sentinel::SystemClock)).await
    }

    /// Like [`with_parts`](Self::with_parts), with Sentinel on `clock`
    /// (tests drive detector windows and quiet periods with a manual clock).
    pub async fn with_clock(
        config: ServerConfig,
        engine: SecurityEngine,
        store: Arc<dyn Store>,
        env_admin_key: Option<String>,
        clock: Arc<dyn llm_sentinel::Clock>,
    ) -> Result<Server, StartError> {
        let sentinel_config = config.sentinel.load().map_err(StartError::Sentinel)?;
        let engine = match config.threat_intel.load()? {
            Some(intel) => engine.with_threat_intel(intel),
            None => engine,
        };
        let engine = profile::apply(&config, &sentinel_config, engine)?;
        let egress = Arc::new(config.egress_policy()?);
        for (field, url) in config.sentinel.targets(&sentinel_config) {
            egress.check_url(&url).map_err(|e| StartError::Sentinel(format!("{field}: {e}")))?;
        }
        let metrics = crate::metrics::install();
        let (writer, writer_task) = EventWriter::start(store.clone());
        let webhooks = Arc::new(WebhookRegistry::default());
        let delivery_notify = Arc::new(Notify::new());
        let (threat_feed, _) = broadcast::channel(1024);
        let config = Arc::new(config);
        let sentinel = Arc::new(crate::sentinel::SentinelService::new(
            sentinel_config,
            config.sentinel.clone(),
            clock,
            store.clone(),
            webhooks.clone(),
            delivery_notify.clone(),
        ));
        sentinel.set_egress(egress.clone());
        sentinel.set_kafka_sink(config.kafka.as_ref().and_then(|k| k.sink.clone()));
        sentinel.set_sinks(config.sinks.clone());
        sentinel.set_risk(Arc::new(crate::risk::RiskBook::new(config.risk.clone())));
        sentinel.set_campaigns(Arc::new(crate::campaigns::CampaignBook::new(config.campaigns.clone())));
        if config.sentinel.own_applications {
            sentinel.set_ownership(Arc::new(crate::ownership::Ownership::new(&config.database_url())));
        }
        let policy = match &config.policy {
            Some(p) => Some(Arc::new(crate::policy::PolicyHandle::load(p)?)),
            None => None,
        };
        let otel = match &config.otel {
            Some(o) => Some(Arc::new(otel::Otel::start_blocking(o.clone()).await?)),
            None => None,
        };
        let services = Services::new(ServicesInner {
            engine,
            store: store.clone(),
            config: config.clone(),
            keys: Arc::new(KeyCache::new(env_admin_key.as_deref())),
            limiter: Arc::new(RateLimiter::default()),
            writer,
            webhooks: webhooks.clone(),
            delivery_notify: delivery_notify.clone(),
            threat_feed,
            sentinel: sentinel.clone(),
            egress: egress.clone(),
            policy: policy.clone(),
            otel,
        });
        let sessions = dashboard::session::Sessions::new(&config.dashboard, services.keys.revocations());
        let http = HttpParts { auth_failures: RateLimiter::default(), metrics, sessions };
        let state = AppState { services, http: Arc::new(http) };
        // Config webhooks have a stable id per (tenant, url), so a restart
        // replaces rather than duplicates them, and pending deliveries keep
        // their subscription; ones no longer in the file are removed.
        let config_id =
            |tenant: &str, url: &str| format!("cfg_{}", &service::keys::hash_key(&format!("{tenant}\n{url}"))[..16]);
        let wanted: Vec<(String, String)> =
            config.webhooks.iter().map(|w| (w.tenant.clone(), config_id(&w.tenant, &w.webhook.url))).collect();
        for old in store.webhooks(None).await? {
            if old.id.starts_with("cfg_") && !wanted.iter().any(|(t, id)| *t == old.tenant && *id == old.id) {
                store.delete_webhook(&old.tenant, &old.id).await?;
            }
        }
        for (i, w) in config.webhooks.iter().enumerate() {
            let id = config_id(&w.tenant, &w.webhook.url);
            store.delete_webhook(&w.tenant, &id).await?;
            service::tenants::register_webhook(&state.services, &w.tenant, w.webhook.clone(), Some(id))
                .await
                .map_err(|e| StartError::Webhook(format!("webhooks[{i}]: {e}")))?;
        }
        webhooks.reload(store.as_ref()).await?;
        let bootstrap_key = if env_admin_key.is_none() { bootstrap_admin(store.as_ref()).await? } else { None };

        // Built before any background task starts, so a missing credential stops the start cleanly.
        let exporter = match &config.export.s3 {
            Some(c) => Some(Arc::new(s3_exporter(c, &config, store.clone(), sentinel.clone())?)),
            None => None,
        };
        let (stop, stop_rx) = watch::channel(false);
        #[cfg(feature = "kafka")]
        let (publisher, kafka_task) = kafka::start(&state.services, stop_rx.clone()).map_err(StartError::Kafka)?;
        #[cfg(not(feature = "kafka"))]
        let (publisher, kafka_task) = (None, None);
        let worker =
            DeliveryWorker::new(store.clone(), webhooks, config.delivery.clone(), delivery_notify, egress.clone())?
                .with_incidents(sentinel.clone())
                .with_publisher(publisher);
        // Sinks send with the worker's client, so the egress policy holds for them too.
        let sinks = sinks::SinkRegistry::build(&config.sinks, worker.client(), egress, &|k| std::env::var(k).ok())?;
        // E-mail and SMS receivers read their secrets now, so a missing one stops the start.
        let notify = notify::NotifyRegistry::build(&config.sentinel.receivers, &|k| std::env::var(k).ok())?;
        let mut worker = worker.with_sinks(sinks).with_notify(notify);
        // The Shield callback's key is read now too.
        if let Some(c) = &config.shield_callback {
            worker = worker.with_shield_callback(c.url.clone(), c.key()?);
        }
        let worker_task = tokio::spawn(worker.run(stop_rx.clone()));
        sentinel.restore().await?;
        // Risk scores are rebuilt from what still weighs: recent events'
        // threats, open anomalies, enforcements in force.
        sentinel.risk().restore(store.as_ref(), sentinel.now(), 100_000).await?;
        // Active campaigns come back, their templates with them.
        sentinel.campaigns().restore_from(store.as_ref(), sentinel.now()).await?;
        let sentinel_task = tokio::spawn(sentinel.run(stop_rx.clone()));
        if let (Some(handle), Some(p)) = (policy, &config.policy)
            && p.reload_secs > 0
        {
            tokio::spawn(crate::policy::watch_files(handle, Duration::from_secs(p.reload_secs), stop_rx.clone()));
        }
        let export_task = match (&exporter, &config.export.s3) {
            (Some(ex), Some(c)) => {
                Some(tokio::spawn(ex.clone().run(Duration::from_secs(c.interval_secs), stop_rx.clone())))
            }
            _ => None,
        };
        let quarantine_task =
            config.quarantine.enabled.then(|| tokio::spawn(quarantine_expiry(state.services.clone(), stop_rx.clone())));
        let retention_task = tokio::spawn(retention(store, config.storage.retention_days, stop_rx));
        Ok(Server {
            state,
            writer_task,
            worker_task,
            sentinel_task,
            retention_task,
            quarantine_task,
            kafka_task,
            export_task,
            exporter,
            stop,
            bootstrap_key,
        })
    }

    /// The `[export.s3]` exporter, when configured: its background task
    /// runs it every `interval_secs`; tests and tools may run a tick now.
    pub fn exporter(&self) -> Option<Arc<export::Exporter>> {
        self.exporter.clone()
    }

    /// The operator key made on this start, when the store had none: shown once.
    pub fn bootstrap_key(&self) -> Option<&str> {
        self.bootstrap_key.as_deref()
    }

    /// The shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The HTTP application.
    pub fn router(&self) -> Router {
        app(self.state.clone())
    }

    /// Serves on `listener` until `shutdown` completes, then stops taking
    /// connections, lets in-flight requests finish, commits queued events and
    /// stops the background tasks. Connections are held to `[limits]`: the
    /// caps overall and per address, the header and idle timeouts.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let limits = &self.state.config.limits;
        let capped = listener::CappedListener::new(listener, limits);
        let header_read_timeout = Duration::from_millis(limits.header_read_timeout_ms);
        let app = self.router();
        let result = listener::serve(capped, app, header_read_timeout, shutdown).await;
        self.shutdown().await;
        result
    }

    /// Stops the background tasks after committing queued events.
    pub async fn shutdown(self) {
        let Server {
            state,
            writer_task,
            worker_task,
            sentinel_task,
            retention_task,
            quarantine_task,
            kafka_task,
            export_task,
            stop,
            ..
        } = self;
        let _ = stop.send(true);
        // The expiry task holds the services (and so a writer handle): it
        // ends on the stop signal, before the writer is waited for.
        if let Some(t) = quarantine_task {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        let otel = state.services.otel.clone();
        // The source finishes the batch it is writing (stored, committed) before the state goes.
        if let Some(t) = kafka_task {
            let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
        }
        drop(state);
        // The writer ends once every handle is gone, after its last commit.
        // Handles live in routers a caller may still hold: give it a bound.
        let _ = tokio::time::timeout(Duration::from_secs(10), writer_task).await;
        let _ = tokio::time::timeout(Duration::from_secs(30), worker_task).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), sentinel_task).await;
        retention_task.abort();
        // An export between PUTs leaves its window pending; the next start writes it again.
        if let Some(t) = export_task {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        // Sends the spans of the last requests; the SDK blocks while it does.
        if let Some(o) = otel {
            let _ = tokio::task::spawn_blocking(move || o.shutdown()).await;
        }
    }
}

/// The exporter of `[export.s3]`: the S3 client (credentials read from the
/// environment now), the plan, and the running configuration as each
/// tenant's report shows it.
fn s3_exporter(
    c: &config::S3ExportConfig,
    config: &Arc<ServerConfig>,
    store: Arc<dyn Store>,
    sentinel: Arc<sentinel::SentinelService>,
) -> Result<export::Exporter, StartError> {
    let sink = export::s3_sink(c, &|k| std::env::var(k).ok())
        .map_err(|(field, message)| StartError::Export { field, message })?;
    let config = config.clone();
    let describe: export::DescribeConfig = Arc::new(move |tenant| {
        let detectors = sentinel.config_for(tenant).detectors.iter().filter(|d| d.enabled).count();
        service::reports::configuration(&config, detectors)
    });
    Ok(export::Exporter::new(store, sink, export::ExportPlan::from_config(c), describe))
}

/// Creates the data directory owner-only (0700, as are parents it creates):
/// it holds the database, with webhook secrets and stored prompts. An
/// existing one open to group or others is set to 0700, with a warning; a
/// shared sticky directory (such as /tmp) is only warned about.
fn create_data_dir(path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path)?;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            let was = format!("{:o}", mode & 0o7777);
            if mode & 0o1000 != 0 {
                tracing::warn!(dir = %path.display(), %was, "the data directory is a shared sticky directory open to others");
            } else {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
                tracing::warn!(dir = %path.display(), %was, "the data directory was open to group or others; set to 0700");
            }
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(path)?;
    Ok(())
}

/// Makes an operator key (with every scope) for the default tenant when
/// the store has no live operator key.
async fn bootstrap_admin(store: &dyn Store) -> Result<Option<String>, llmsec_store::StoreError> {
    let keys = store.list_keys(None).await?;
    if keys.iter().any(|k| k.revoked_at.is_none() && k.scopes.contains(&Scope::Operator)) {
        return Ok(None);
    }
    let new = service::keys::generate_key(
        config::DEFAULT_TENANT,
        "bootstrap operator",
        Scope::ALL.to_vec(),
        None,
        now_millis(),
    );
    store
        .append_audit(
            NewAudit {
                actor: "system".into(),
                action: "key.bootstrap".into(),
                target: new.record.id.clone(),
                details: serde_json::json!({"tenant": config::DEFAULT_TENANT}),
            },
            now_millis(),
        )
        .await?;
    store.insert_key(&new.record).await?;
    Ok(Some(new.key))
}

/// Purges what is older than the retention, hourly, in every table that
/// holds user content (see [`Store::purge_expired`]).
async fn retention(store: Arc<dyn Store>, days: u32, mut stop: watch::Receiver<bool>) {
    if days == 0 {
        return;
    }
    loop {
        let cutoff = now_millis() - i64::from(days) * 86_400_000;
        match store.purge_expired(cutoff).await {
            Ok(r) if r.total() > 0 => tracing::info!(
                events = r.events,
                telemetry = r.telemetry,
                anomalies = r.anomalies,
                deliveries = r.deliveries,
                enforcements = r.enforcements,
                days,
                "retention: purged old rows"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention purge failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// How often held items past `quarantine.hold_secs` are decided by
/// `on_expiry`: an item waits at most this long past its hold.
const QUARANTINE_EXPIRY_EVERY: Duration = Duration::from_secs(15);

/// Applies `[quarantine] on_expiry` to items whose hold has ended, every
/// [`QUARANTINE_EXPIRY_EVERY`] (on Sentinel's clock: see
/// [`service::quarantine::expire_due`]).
async fn quarantine_expiry(services: Services, mut stop: watch::Receiver<bool>) {
    loop {
        match service::quarantine::expire_due(&services).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(items = n, "quarantine: holds ended without a decision"),
            Err(e) => tracing::warn!(error = %e, "quarantine: expiry failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(QUARANTINE_EXPIRY_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// Ready when the store answers, this replica knows which applications
/// it owns (`[sentinel] own_applications`), and every tenant's Sentinel
/// detectors built. Probes present no key and learn only how many tenants failed;
/// an operator key also sees which, and why (the reasons quote plugin
/// output and configuration).
async fn readyz(
    State(state): State<AppState>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "readiness: the store does not answer");
        return ApiError::Unavailable("store".into()).into_response();
    }
    // Replicas sharing out applications: ready once this one knows which it owns.
    if state.sentinel.ownership().is_some_and(|o| !o.settled()) {
        let mut body = ApiError::Unavailable("sentinel application ownership not settled".into()).body();
        body["status"] = "not_ready".into();
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    }
    let failed = state.sentinel.failed_tenants();
    if failed.is_empty() {
        return axum::Json(serde_json::json!({"status": "ready"})).into_response();
    }
    let mut body =
        ApiError::Unavailable(format!("sentinel detectors failed to build for {} tenant(s)", failed.len())).body();
    body["status"] = "not_ready".into();
    let operator = match auth::presented_key(&headers) {
        Some(key) => auth::authenticate_key(&state, peer.map(|p| p.0.0.ip()), Some(key))
            .await
            .is_ok_and(|c| c.has(Scope::Operator)),
        None => false,
    };
    if operator {
        body["sentinel_failures"] =
            failed.iter().map(|(tenant, reason)| serde_json::json!({"tenant": tenant, "reason": reason})).collect();
    }
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

async fn metrics_handler(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    state.http.metrics.run_upkeep();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.http.metrics.render())
        .into_response())
}

async fn openapi(caller: Caller) -> Result<Response, ApiError> {
    // Any valid key may read the API description.
    let _ = caller;
    Ok(([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response())
}

async fn not_found(req: Request) -> ApiError {
    ApiError::NotFound(format!("no route for {} {}", req.method(), req.uri().path()))
}

async fn method_not_allowed(req: Request) -> Response {
    let body = serde_json::json!({"error": {"code": "method_not_allowed", "message": format!("{} is not allowed on {}", req.method(), req.uri().path())}});
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}

/// Refuses request heads over `[limits]` with a JSON 414 or 431, before
/// authentication or any route reads them.
async fn head_limits(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limits = &state.config.limits;
    let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > limits.uri_bytes {
        return ApiError::UriTooLong { len: target, limit: limits.uri_bytes }.into_response();
    }
    let headers = req.headers();
    if headers.len() > limits.header_count {
        let msg = format!("{} header fields; at most {}", headers.len(), limits.header_count);
        return ApiError::HeadersTooLarge(msg).into_response();
    }
    let bytes: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    if bytes > limits.header_bytes {
        let msg = format!("header fields total {bytes} bytes; at most {}", limits.header_bytes);
        return ApiError::HeadersTooLarge(msg).into_response();
    }
    next.run(req).await
}

async fn request_timeout(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    // A gRPC client stream lasts as long as the client sends; its events are
    // stored chunk by chunk as they arrive, so it is not cut at the limit.
    if req.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc")) {
        return next.run(req).await;
    }
    let limit = Duration::from_millis(state.config.limits.request_timeout_ms);
    let deadline = service::deadline::Deadline::after(limit);
    req.extensions_mut().insert(deadline.clone());
    // WebSocket upgrades live on after the handshake; only the handshake is timed.
    let mut run = std::pin::pin!(next.run(req));
    match tokio::time::timeout(limit, run.as_mut()).await {
        Ok(r) => r,
        // From here on the writer refuses the request's records.
        Err(_) if deadline.cancel() => ApiError::Timeout.into_response(),
        // Part of the request is stored or being stored: its own answer says
        // which part. It comes soon: no further analysis starts and no
        // further record commits.
        Err(_) => run.await,
    }
}

/// The application: public health routes, authenticated API routes, JSON
/// 404/405, limits and metrics around all of it.
pub fn app(state: AppState) -> Router {
    let schema = graphql::schema(state.clone());
    let limit = state.config.limits.body_bytes;
    let authenticated = Router::new()
        .merge(api::security::router())
        .merge(api::replay::router())
        .merge(api::events::router())
        .merge(api::admin::router())
        .merge(api::privacy::router())
        .merge(api::webhooks::router())
        .merge(api::telemetry::router())
        .merge(api::otlp::router())
        .merge(api::anomalies::router())
        .merge(api::campaigns::router())
        .merge(api::samples::router())
        .merge(api::detectors::router())
        .merge(api::series::router())
        .merge(api::insights::router())
        .merge(api::reports::router())
        .merge(api::redteam::router())
        .merge(api::quarantine::router())
        .route("/graphql", post(graphql::graphql_post))
        .route("/metrics", get(metrics_handler))
        .route("/openapi.json", get(openapi))
        .merge(grpc::router(state.services.clone()).with_state(()))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::authenticate));
    // The WebSocket route authenticates itself: browsers send the key in
    // the first message, not in a header (or the dashboard's cookie). The
    // dashboard's sign-in takes the key in its body.
    let mut public = Router::new()
        .merge(dashboard::router())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/graphql/ws", get(ws::graphql_ws));
    if state.config.dev_mode {
        public = public.route("/graphql/playground", get(graphql::playground));
    }
    Router::new()
        .merge(public)
        .merge(authenticated)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::Extension(schema))
        .layer(axum::Extension(BodyLimit(limit)))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), request_timeout))
        .layer(middleware::from_fn_with_state(state.clone(), head_limits))
        .layer(middleware::from_fn(crate::metrics::track))
        .layer(middleware::from_fn_with_state(state.clone(), otel::propagate))
        .with_state(state)
}
