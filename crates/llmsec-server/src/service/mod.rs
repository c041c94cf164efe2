//! The services the transports share, with no HTTP types: REST, GraphQL,
//! gRPC, OTLP and the gateway are adapters over them. Each returns a
//! [`ServiceError`], which every transport maps to its own error shape.
//!
//! - [`analysis`]: Sentinel's enforcements, the engine, storage redaction,
//!   the event and its deliveries committed, subscribers told;
//! - [`telemetry`]: telemetry admission and storage, handed to Sentinel;
//! - [`tenants`]: keys, the audit log, user erasure, webhook subscriptions;
//! - [`events`]: stored security events, filtered and paged;
//! - [`series`]: time series of telemetry metrics;
//! - [`insights`]: the dashboard's security charts (attack success, entropy drift, tool use, abuse);
//! - [`anomalies`]: anomaly queries, their lifecycle, enforcements, statistics;
//! - [`quarantine`]: items held for review, their release, discard and expiry;
//! - [`reports`]: the compliance posture and report of a tenant;
//! - [`keys`]: the key format and the key cache, and the per-key rate;
//! - [`writer`] and [`deadline`]: the group commit and the request deadline it honours.

pub mod analysis;
pub mod anomalies;
pub mod caller;
pub mod campaigns;
pub mod deadline;
mod error;
pub mod events;
pub mod insights;
pub mod keys;
pub mod privacy;
pub mod quarantine;
pub mod redteam;
pub mod reports;
pub mod samples;
pub mod series;
pub mod telemetry;
pub mod tenants;
pub mod writer;

use std::sync::Arc;

use llm_security::{SecurityEngine, Threat};
use llmsec_store::{SecurityEvent, Store};
use tokio::sync::{Notify, broadcast};

pub use caller::Caller;
pub use error::{ServiceError, check_id, check_tenant, parse_time};

use crate::config::ServerConfig;
use crate::deliver::WebhookRegistry;
use crate::egress::EgressPolicy;
use crate::ratelimit::RateLimiter;
use crate::sentinel::SentinelService;
use keys::KeyCache;
use writer::EventWriter;

/// A threat pushed to subscribers (GraphQL subscriptions).
#[derive(Debug, Clone)]
pub struct ThreatNotice {
    /// The stored event.
    pub event: SecurityEvent,
    /// Its threats.
    pub threats: Vec<Threat>,
}

/// What the services work with: one `Arc`, so a clone per request costs
/// one atomic increment.
#[derive(Clone, Debug)]
pub struct Services(Arc<ServicesInner>);

impl Services {
    /// Wraps the parts.
    pub fn new(inner: ServicesInner) -> Services {
        Services(Arc::new(inner))
    }
}

impl std::ops::Deref for Services {
    type Target = ServicesInner;

    fn deref(&self) -> &ServicesInner {
        &self.0
    }
}

/// The parts of [`Services`].
pub struct ServicesInner {
    /// The engine.
    pub engine: SecurityEngine,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The configuration.
    pub config: Arc<ServerConfig>,
    /// Key lookup.
    pub keys: Arc<KeyCache>,
    /// Per-key rates, and the rates Sentinel's enforcements impose.
    pub limiter: Arc<RateLimiter>,
    /// Group commit of events.
    pub writer: EventWriter,
    /// Webhook subscriptions.
    pub webhooks: Arc<WebhookRegistry>,
    /// Wakes the delivery worker.
    pub delivery_notify: Arc<Notify>,
    /// Threats for subscriptions.
    pub threat_feed: broadcast::Sender<ThreatNotice>,
    /// Sentinel: telemetry, detectors, anomalies, enforcements.
    pub sentinel: Arc<SentinelService>,
    /// Which addresses outbound HTTP may reach.
    pub egress: Arc<EgressPolicy>,
    /// The Rego policy deciding verdicts (`[policy]`), when configured.
    pub policy: Option<Arc<crate::policy::PolicyHandle>>,
    /// OpenTelemetry export (`[otel]`), when configured.
    pub otel: Option<Arc<crate::otel::Otel>>,
}

impl std::fmt::Debug for ServicesInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").field("store", &self.store).field("config", &self.config).finish_non_exhaustive()
    }
}
