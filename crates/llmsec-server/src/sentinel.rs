//! Sentinel inside the server: accepted telemetry runs through the
//! detectors (one `llm_sentinel::Sentinel` per tenant, so one tenant's
//! entities never feed another's baselines, and a tenant's changes to its
//! detectors, kept in the store, reach no other tenant), anomalies are
//! stored, and their actions run: `shield` enforcements (honoured by
//! `/api/security/analyze`), `alert` receivers and `webhook`s through the
//! durable outbox, `incident`s posted to the incident manager through the
//! outbox too.
//!
//! Events are acknowledged once stored; a processor task then runs them and
//! marks them processed. After a crash, events stored but not processed are
//! replayed at start, and anomalies that were open are taken back, so
//! nothing accepted is lost and nothing is reported twice.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use llm_sentinel::action::{ActionSpec, ShieldKind, anomaly_view, incident_body, render};
use llm_sentinel::anomaly::ActionTaken;
use llm_sentinel::config::DetectorSpec;
use llm_sentinel::detector::EntityKind;
use llm_sentinel::event::TelemetryEvent;
use llm_sentinel::{Anomaly, AnomalyStatus, Change, Clock, Outcome, Sentinel, SentinelConfig};
use llmsec_store::{AnomalyRow, Delivery, DetectorOverride, Enforcement, Millis, Store, Webhook};
use tokio::sync::{Notify, broadcast, mpsc, watch};

pub use crate::config::{PAGERDUTY_URL, Receiver, ReceiverKind, SentinelSettings};

/// An anomaly and its tenant, for subscribers.
#[derive(Debug, Clone)]
pub struct AnomalyNotice {
    /// The tenant.
    pub tenant: String,
    /// What changed.
    pub change: Change,
    /// The anomaly.
    pub anomaly: Anomaly,
}

/// Why an anomaly's status could not be changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// The tenant has no anomaly of that id.
    #[error("not found")]
    NotFound,
    /// The anomaly's status does not allow the change.
    #[error("{0}")]
    Refused(String),
    /// The store could not read or write the anomaly.
    #[error(transparent)]
    Store(#[from] llmsec_store::StoreError),
}

/// What an enforcement check decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Enforced {
    /// Refuse: the entity is blocked.
    Block {
        /// Why.
        reason: String,
        /// Until when.
        until: Millis,
    },
    /// Limit: at most `limit` requests per `window_ms` for this entity.
    RateLimit {
        /// The enforcement (its bucket key).
        id: String,
        /// Requests per window.
        limit: u64,
        /// Window in milliseconds.
        window_ms: i64,
    },
}

/// The enforcements in force, cached: every analysis consults them, so
/// they are read from memory, refreshed from the store on each tick (other
/// replicas' enforcements) and at once when this server adds one. Each
/// change is announced on a watch channel ([`EnforcementCache::subscribe`]):
/// the gateway's streams in flight re-check their subject on it, so a
/// block ends a session's streams as well as refusing its next calls.
#[derive(Debug)]
pub struct EnforcementCache {
    list: RwLock<Vec<Enforcement>>,
    changes: watch::Sender<u64>,
}

impl Default for EnforcementCache {
    fn default() -> EnforcementCache {
        EnforcementCache { list: RwLock::default(), changes: watch::Sender::new(0) }
    }
}

impl EnforcementCache {
    /// Replaces the cache; subscribers hear of it when the list changed.
    pub fn set(&self, list: Vec<Enforcement>) {
        let mut held = self.list.write().unwrap_or_else(|p| p.into_inner());
        if *held != list {
            *held = list;
            drop(held);
            self.changed();
        }
    }

    /// Adds one (stored already), in force at once on this replica.
    pub fn add(&self, e: Enforcement) {
        self.list.write().unwrap_or_else(|p| p.into_inner()).push(e);
        self.changed();
    }

    fn forget(&self, tenant: &str, kind: &str, id: &str) {
        self.list
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|e| !(e.tenant == tenant && e.entity_kind == kind && e.entity_id == id));
        self.changed();
    }

    /// Ends the cached enforcements of `tenant` with these ids at once
    /// (the store has ended them); the other replicas follow at their next reload.
    pub fn end(&self, tenant: &str, ids: &[String]) {
        self.list.write().unwrap_or_else(|p| p.into_inner()).retain(|e| !(e.tenant == tenant && ids.contains(&e.id)));
        self.changed();
    }

    /// A receiver that sees a new value each time the enforcements change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The strictest enforcement in force on any of `entities` (kind, id) of
    /// `tenant` at `now`: a block wins over a rate limit.
    pub fn check(&self, tenant: &str, entities: &[(&str, &str)], now: Millis) -> Option<Enforced> {
        let list = self.list.read().unwrap_or_else(|p| p.into_inner());
        let mut limit = None;
        for e in list.iter().filter(|e| {
            e.tenant == tenant
                && e.expires_at > now
                && entities.iter().any(|(k, id)| *k == e.entity_kind && *id == e.entity_id)
        }) {
            match e.action.as_str() {
                "block" => return Some(Enforced::Block { reason: e.reason.clone(), until: e.expires_at }),
                _ => {
                    limit = Some(Enforced::RateLimit {
                        id: e.id.clone(),
                        limit: e.rate_limit.unwrap_or(1),
                        window_ms: e.window_ms.unwrap_or(60_000),
                    })
                }
            }
        }
        limit
    }
}

type Job = (String, TelemetryEvent);

/// Whether `step` fires for `a` at `now`: severe enough, unacknowledged
/// long enough, and not fired yet (or last fired `repeat_minutes` ago).
fn escalation_due(a: &Anomaly, step: &crate::config::Escalation, now: Millis) -> bool {
    if a.severity < step.min_severity || now - a.timestamp < step.after_minutes as i64 * 60_000 {
        return false;
    }
    let id = format!("escalation:{}", step.name);
    match a.actions_taken.iter().filter(|t| t.kind == "escalation" && t.id == id).map(|t| t.at).max() {
        None => true,
        Some(last) => step.repeat_minutes > 0 && now - last >= step.repeat_minutes as i64 * 60_000,
    }
}

/// The detector entry keys a tenant may set with
/// [`SentinelService::update_detector`]. `plugin:` and its runner keys are
/// not among them: which programs run on the server is the detectors
/// file's choice alone.
pub const TENANT_DETECTOR_KEYS: &[&str] = &["type", "name", "enabled", "severity", "config", "actions"];

/// Why a detector change was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DetectorError {
    /// The tenant has no detector of that id, and the change does not make
    /// one (it has no `type`).
    #[error("no detector {0:?}")]
    NotFound(String),
    /// The detector the change makes does not build, or names what the
    /// server lacks (a receiver, an incident manager URL).
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] llmsec_store::StoreError),
}

/// A tenant's change to one detector, as stored and as it builds.
#[derive(Debug, Clone)]
struct Override {
    /// The stored text of `fields`: a change read from the store is new when it differs.
    text: String,
    /// The entry keys the tenant set.
    fields: serde_json::Map<String, serde_json::Value>,
    /// The detector they make over the detectors file; `None` when that no
    /// longer builds (the file or the receivers changed since): the tenant
    /// then runs the file's detector.
    spec: Option<DetectorSpec>,
}

/// Sentinel's part of the server.
#[derive(Debug)]
pub struct SentinelService {
    /// The detectors file as loaded: every tenant's starting point, never
    /// changed while running and never written.
    config: SentinelConfig,
    /// Each tenant's detector changes, by tenant then detector id, laid
    /// over `config` for that tenant only.
    overrides: RwLock<HashMap<String, BTreeMap<String, Override>>>,
    /// One detector change at a time, so that what is stored and what runs agree.
    update_lock: tokio::sync::Mutex<()>,
    settings: SentinelSettings,
    tenants: Mutex<HashMap<String, Sentinel>>,
    /// Tenants whose detectors failed to build: readiness reports them.
    failed: RwLock<BTreeMap<String, BuildFailure>>,
    clock: Arc<dyn Clock>,
    store: Arc<dyn Store>,
    webhooks: Arc<crate::deliver::WebhookRegistry>,
    delivery_notify: Arc<Notify>,
    tx: mpsc::Sender<Job>,
    rx: Mutex<Option<mpsc::Receiver<Job>>>,
    /// Orders anomaly writes: each write takes the newest in-memory state
    /// under this lock, so the last write to the store is always the newest.
    write_lock: tokio::sync::Mutex<()>,
    /// Enforcements in force.
    pub enforcements: EnforcementCache,
    /// Anomalies as they change, for subscriptions.
    pub feed: broadcast::Sender<AnomalyNotice>,
    /// Which addresses actions may be sent to.
    egress: RwLock<Arc<crate::egress::EgressPolicy>>,
    /// The Kafka topics anomalies and their changes are published to.
    kafka_sink: RwLock<Option<llmsec_connect::kafka::SinkConfig>>,
    /// The operator sinks (`[[sinks]]`) anomaly changes are delivered to.
    sinks: RwLock<Arc<[llmsec_connect::sinks::SinkConfig]>>,
    /// Risk scores per user, session and application.
    risk: RwLock<Arc<crate::risk::RiskBook>>,
    /// Campaigns: threats and anomalies correlated across subjects.
    campaigns: RwLock<Arc<crate::campaigns::CampaignBook>>,
    /// Set with `[sentinel] own_applications`: this replica runs only the
    /// applications it owns, reading their events from the store.
    ownership: std::sync::OnceLock<Arc<crate::ownership::Ownership>>,
}

/// Events queued for the processor at most; ingestion waits beyond that.
const QUEUE: usize = 65_536;

/// How often a replica that owns applications takes unowned ones and
/// reads its applications' pending events (`[sentinel] own_applications`).
pub const OWNERSHIP_ROUND_MS: u64 = 250;

/// Pending events read per store call in an ownership round, and calls
/// per round at most (so the round ends and ticks run between).
const ROUND_ROWS: u32 = 1000;
const ROUND_READS: usize = 20;

/// How long (Sentinel's clock) a tenant whose detectors failed to build
/// waits before the next event tries again.
pub const REBUILD_AFTER_MS: Millis = 60_000;

/// Why a tenant's detectors are not running.
#[derive(Debug, Clone, PartialEq)]
struct BuildFailure {
    reason: String,
    retry_at: Millis,
}

impl SentinelService {
    /// A service over `config`.
    pub fn new(
        config: SentinelConfig,
        settings: SentinelSettings,
        clock: Arc<dyn Clock>,
        store: Arc<dyn Store>,
        webhooks: Arc<crate::deliver::WebhookRegistry>,
        delivery_notify: Arc<Notify>,
    ) -> SentinelService {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (feed, _) = broadcast::channel(1024);
        SentinelService {
            config,
            overrides: RwLock::default(),
            update_lock: tokio::sync::Mutex::new(()),
            settings,
            tenants: Mutex::default(),
            failed: RwLock::default(),
            clock,
            store,
            webhooks,
            delivery_notify,
            tx,
            rx: Mutex::new(Some(rx)),
            write_lock: tokio::sync::Mutex::new(()),
            enforcements: EnforcementCache::default(),
            feed,
            egress: RwLock::default(),
            kafka_sink: RwLock::default(),
            sinks: RwLock::new(Arc::new([])),
            risk: RwLock::new(Arc::new(crate::risk::RiskBook::new(crate::risk::RiskConfig::default()))),
            campaigns: RwLock::new(Arc::new(crate::campaigns::CampaignBook::new(
                crate::campaigns::CampaignConfig::default(),
            ))),
            ownership: std::sync::OnceLock::new(),
        }
    }

    /// Runs only the applications `ownership` gives this replica, from the
    /// store (replicas on one PostgreSQL). Set before [`restore`](Self::restore).
    pub fn set_ownership(&self, ownership: Arc<crate::ownership::Ownership>) {
        let _ = self.ownership.set(ownership);
    }

    /// The applications this replica owns, when it shares them out with others.
    pub fn ownership(&self) -> Option<&Arc<crate::ownership::Ownership>> {
        self.ownership.get()
    }

    /// Correlates campaigns in `book` from now on.
    pub fn set_campaigns(&self, book: Arc<crate::campaigns::CampaignBook>) {
        *self.campaigns.write().unwrap_or_else(|p| p.into_inner()) = book;
    }

    /// The campaigns.
    pub fn campaigns(&self) -> Arc<crate::campaigns::CampaignBook> {
        self.campaigns.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stores campaigns that changed; a new one is counted
    /// (`llm_security_campaigns_total{kind}`) and sent to the tenant's
    /// webhooks that want `campaign.detected`, through the outbox. A
    /// failure is logged: the campaign is written again with its next change.
    pub async fn campaigns_changed(&self, changes: Vec<crate::campaigns::Changed>) {
        let mut queued = false;
        for ch in changes {
            let c = &ch.campaign;
            if let Err(e) = self.store.put_campaign(&c.row()).await {
                tracing::error!(error = %e, campaign = %c.id, "storing a campaign failed");
                continue;
            }
            if !ch.created {
                continue;
            }
            crate::metrics::campaign_detected(c.kind.as_str());
            let now = self.now();
            let deliveries: Vec<llmsec_store::Delivery> = self
                .webhooks
                .for_tenant(&c.tenant)
                .iter()
                .filter(|w| crate::deliver::wants(w, crate::campaigns::DETECTED))
                .map(|w| {
                    let id = uuid::Uuid::now_v7().to_string();
                    let body = serde_json::json!({
                        "id": id,
                        "event": crate::campaigns::DETECTED,
                        "created_at": crate::time::rfc3339(now),
                        "tenant": c.tenant,
                        "data": c.view(true),
                    });
                    llmsec_store::Delivery::pending(
                        id,
                        w.id.clone(),
                        &c.tenant,
                        crate::campaigns::DETECTED,
                        body.to_string(),
                        now,
                    )
                })
                .collect();
            if deliveries.is_empty() {
                continue;
            }
            match self.store.enqueue(&deliveries).await {
                Ok(()) => queued = true,
                Err(e) => tracing::error!(error = %e, campaign = %c.id, "queueing campaign.detected failed"),
            }
        }
        if queued {
            self.delivery_notify.notify_one();
        }
    }

    /// Keeps risk scores in `book` from now on.
    pub fn set_risk(&self, book: Arc<crate::risk::RiskBook>) {
        *self.risk.write().unwrap_or_else(|p| p.into_inner()) = book;
    }

    /// The risk scores.
    pub fn risk(&self) -> Arc<crate::risk::RiskBook> {
        self.risk.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// An enforcement stored just now: in force at once on this replica,
    /// and counted in its entity's risk score.
    pub fn enforcement_added(&self, e: Enforcement) {
        if let Some(kind) = crate::risk::RiskKind::of_enforcement(&e.entity_kind) {
            let points = crate::risk::enforcement_points(&e.action);
            self.risk().add(&e.tenant, kind, &e.entity_id, points, crate::risk::Cause::Enforcement, e.created_at);
        }
        self.enforcements.add(e);
    }

    /// Checks action URLs against `policy` from now on (until set: every
    /// internal address refused).
    pub fn set_egress(&self, policy: Arc<crate::egress::EgressPolicy>) {
        *self.egress.write().unwrap_or_else(|p| p.into_inner()) = policy;
    }

    /// Publishes anomalies and their status changes to these topics from now on.
    pub fn set_kafka_sink(&self, sink: Option<llmsec_connect::kafka::SinkConfig>) {
        *self.kafka_sink.write().unwrap_or_else(|p| p.into_inner()) = sink;
    }

    /// Delivers anomaly changes to these operator sinks from now on (each takes those its filters accept).
    pub fn set_sinks(&self, sinks: Vec<llmsec_connect::sinks::SinkConfig>) {
        *self.sinks.write().unwrap_or_else(|p| p.into_inner()) = sinks.into();
    }

    /// Queues an anomaly change, in one write, for the Kafka sink's topic
    /// (if one is configured for it) and for the operator sinks that take it.
    async fn publish(&self, tenant: &str, change: Change, a: &Anomaly) {
        let Some(event) = crate::broker::anomaly_event(change) else { return };
        let now = llmsec_store::now_millis();
        let topic = {
            let sink = self.kafka_sink.read().unwrap_or_else(|p| p.into_inner());
            sink.as_ref().and_then(|sink| {
                if change == Change::Created { sink.anomalies.clone() } else { sink.anomaly_changes.clone() }
            })
        };
        let mut deliveries: Vec<_> =
            topic.map(|t| crate::broker::anomaly(&t, tenant, event, a, now)).into_iter().collect();
        let sinks = self.sinks.read().unwrap_or_else(|p| p.into_inner()).clone();
        deliveries.extend(crate::sinks::for_anomaly(&sinks, tenant, change, a, now));
        if deliveries.is_empty() {
            return;
        }
        match self.store.enqueue(&deliveries).await {
            Ok(()) => self.delivery_notify.notify_one(),
            Err(e) => tracing::error!(error = %e, anomaly = %a.id, "sentinel: queueing broker and sink records failed"),
        }
    }

    /// The clock.
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// The configuration `tenant`'s detectors run with: the detectors file
    /// with the tenant's own changes laid over it.
    pub fn config_for(&self, tenant: &str) -> SentinelConfig {
        let mut config = self.config.clone();
        let map = self.overrides.read().unwrap_or_else(|p| p.into_inner());
        for spec in map.get(tenant).into_iter().flat_map(|m| m.values()).filter_map(|o| o.spec.as_ref()) {
            match config.detectors.iter_mut().find(|d| d.id == spec.id) {
                Some(d) => *d = spec.clone(),
                None => config.detectors.push(spec.clone()),
            }
        }
        config
    }

    /// The detectors as a tenant's Sentinel runs them (with its tracked entities).
    pub fn detectors(&self, tenant: &str) -> Vec<llm_sentinel::DetectorInfo> {
        self.with_tenant(tenant, |s| s.detectors())
    }

    /// Changes detector `id` of `tenant` only, live. `fields` (keys of
    /// [`TENANT_DETECTOR_KEYS`]) are laid over the tenant's earlier changes,
    /// and those over the detector's entry in the detectors file (a
    /// detector the file lacks is made from `fields` alone). The result is
    /// checked, stored (so it survives a restart and reaches the other
    /// replicas on their next tick), and the tenant's detector is rebuilt
    /// from it with fresh state. Other tenants, and the file, are untouched;
    /// on error nothing changes. Answers the detector and every field the
    /// tenant has now set.
    ///
    /// Unless `any_receiver` (an operator's change), the receivers that the
    /// change's own `alert` actions name must be open to `tenant` (see
    /// [`Receiver::open_to`]) or already named by the file's entry for `id`.
    pub async fn update_detector(
        &self,
        tenant: &str,
        id: &str,
        fields: serde_json::Map<String, serde_json::Value>,
        any_receiver: bool,
    ) -> Result<(llm_sentinel::DetectorInfo, serde_json::Map<String, serde_json::Value>), DetectorError> {
        if let Some(k) = fields.keys().find(|k| !TENANT_DETECTOR_KEYS.contains(&k.as_str())) {
            return Err(DetectorError::Invalid(format!(
                "{k:?} cannot be set here (expected {})",
                TENANT_DETECTOR_KEYS.join(", ")
            )));
        }
        let _one_at_a_time = self.update_lock.lock().await;
        let mut all = self.accepted_fields(tenant, id).unwrap_or_default();
        if all.is_empty() && !fields.contains_key("type") && !self.config.detectors.iter().any(|d| d.id == id) {
            return Err(DetectorError::NotFound(id.to_owned()));
        }
        let sets_actions = fields.contains_key("actions");
        all.extend(fields);
        let spec = self.make_spec(id, &all)?;
        if sets_actions && !any_receiver {
            self.check_receivers(tenant, id, &spec)?;
        }
        let text = serde_json::Value::Object(all.clone()).to_string();
        let row = DetectorOverride {
            tenant: tenant.to_owned(),
            detector_id: id.to_owned(),
            fields: text.clone(),
            updated_at: llmsec_store::now_millis(),
        };
        self.store.put_detector_override(&row).await?;
        let info = llm_sentinel::DetectorInfo::from_spec(&spec, 0);
        self.install(tenant, id, Override { text, fields: all.clone(), spec: Some(spec) });
        Ok((info, all))
    }

    /// Refuses a tenant's `alert` action naming a receiver that is neither
    /// open to the tenant nor named by the file's own entry for `id`.
    fn check_receivers(&self, tenant: &str, id: &str, spec: &DetectorSpec) -> Result<(), DetectorError> {
        let alerted = |d: &DetectorSpec| -> Vec<String> {
            d.actions
                .iter()
                .filter_map(|a| match a {
                    ActionSpec::Alert(alert) => Some(alert.receivers.clone()),
                    _ => None,
                })
                .flatten()
                .collect()
        };
        let from_file = self.config.detectors.iter().find(|d| d.id == id).map(alerted).unwrap_or_default();
        for name in alerted(spec) {
            let open = self.settings.receivers.iter().any(|r| r.name == name && r.open_to(tenant));
            if !open && !from_file.contains(&name) {
                return Err(DetectorError::Invalid(format!(
                    "actions: receiver {name:?} is not open to tenant {tenant:?} (list the tenant in the receiver's `tenants`)"
                )));
            }
        }
        Ok(())
    }

    /// The fields of the tenant's change to `id` that built, if any.
    fn accepted_fields(&self, tenant: &str, id: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
        let map = self.overrides.read().unwrap_or_else(|p| p.into_inner());
        map.get(tenant)?.get(id).filter(|o| o.spec.is_some()).map(|o| o.fields.clone())
    }

    /// The detector `fields` make of `id`: laid over the file's entry, then
    /// checked (it builds; its actions can run here).
    fn make_spec(
        &self,
        id: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<DetectorSpec, DetectorError> {
        let mut entry = match self.config.detectors.iter().find(|d| d.id == id).map(DetectorSpec::to_entry) {
            Some(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        entry.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
        entry.insert("id".into(), id.into());
        let spec = DetectorSpec::from_value(&serde_json::Value::Object(entry))
            .map_err(|e| DetectorError::Invalid(e.to_string()))?;
        let probe = SentinelConfig { detectors: vec![spec.clone()], anomalies: Default::default() };
        self.settings.check(&probe).map_err(DetectorError::Invalid)?;
        // Action URLs with an address that is refused are refused now; host
        // names are checked when the delivery connects.
        let egress = self.egress.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(msg) = self
            .settings
            .targets(&probe)
            .into_iter()
            .find_map(|(field, url)| egress.check_url(&url).err().map(|e| format!("{field}: {e}")))
        {
            return Err(DetectorError::Invalid(msg));
        }
        Ok(spec)
    }

    /// Drops `tenant`'s change to detector `id`, stored and running: the
    /// tenant runs the detectors file's entry again (with fresh state), or,
    /// for a detector the tenant made itself, no longer has it. Answers the
    /// file's detector, if the file has one; `NotFound` when the tenant had
    /// no change to `id`.
    pub async fn reset_detector(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<llm_sentinel::DetectorInfo>, DetectorError> {
        let _one_at_a_time = self.update_lock.lock().await;
        let held =
            self.overrides.read().unwrap_or_else(|p| p.into_inner()).get(tenant).is_some_and(|m| m.contains_key(id));
        let stored = self.store.delete_detector_override(tenant, id).await?;
        if !held && !stored {
            return Err(DetectorError::NotFound(id.to_owned()));
        }
        self.uninstall(tenant, id);
        Ok(self.config.detectors.iter().find(|d| d.id == id).map(|spec| llm_sentinel::DetectorInfo::from_spec(spec, 0)))
    }

    /// Takes a tenant's change to `id` out of force: its next Sentinel and
    /// its running one run the file's entry (or lose a detector the file
    /// lacks).
    fn uninstall(&self, tenant: &str, id: &str) {
        if let Some(m) = self.overrides.write().unwrap_or_else(|p| p.into_inner()).get_mut(tenant) {
            m.remove(id);
        }
        let mut map = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = map.get_mut(tenant) else { return };
        match self.config.detectors.iter().find(|d| d.id == id).map(DetectorSpec::to_entry) {
            Some(entry) => {
                if let Err(e) = s.update_detector(&entry) {
                    tracing::error!(%tenant, detector = %id, error = %e, "sentinel: restoring a file detector failed");
                }
            }
            None => {
                s.remove_detector(id);
            }
        }
    }

    /// Puts a tenant's change in force: for the tenant's next Sentinel, and
    /// in its running one (rebuilt with fresh state) when there is one.
    fn install(&self, tenant: &str, id: &str, o: Override) {
        let entry = o.spec.as_ref().map(DetectorSpec::to_entry);
        self.overrides
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(tenant.to_owned())
            .or_default()
            .insert(id.to_owned(), o);
        let mut map = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = map.get_mut(tenant) else { return };
        // A change that no longer builds leaves the tenant on the file's detector.
        let entry = entry.or_else(|| self.config.detectors.iter().find(|d| d.id == id).map(DetectorSpec::to_entry));
        if let Some(entry) = entry
            && let Err(e) = s.update_detector(&entry)
        {
            tracing::error!(%tenant, detector = %id, error = %e, "sentinel: rebuilding a tenant's detector failed");
        }
    }

    /// Takes up the detector changes in the store that this process has
    /// not seen: all of them at start, then those made through other
    /// replicas. A change that no longer builds is logged once and left
    /// out (the tenant runs the file's detector).
    async fn load_overrides(&self) -> llmsec_store::Result<()> {
        // Under the update lock: rows read before a change made here commits
        // would otherwise put the older change back.
        let _one_at_a_time = self.update_lock.lock().await;
        let rows = self.store.detector_overrides(None).await?;
        // Changes dropped through another replica are dropped here too.
        let gone: Vec<(String, String)> = {
            let map = self.overrides.read().unwrap_or_else(|p| p.into_inner());
            map.iter()
                .flat_map(|(t, m)| m.keys().map(move |id| (t.clone(), id.clone())))
                .filter(|(t, id)| !rows.iter().any(|r| &r.tenant == t && &r.detector_id == id))
                .collect()
        };
        for (tenant, id) in gone {
            self.uninstall(&tenant, &id);
        }
        for row in rows {
            let seen = {
                let map = self.overrides.read().unwrap_or_else(|p| p.into_inner());
                map.get(&row.tenant).and_then(|m| m.get(&row.detector_id)).is_some_and(|o| o.text == row.fields)
            };
            if seen {
                continue;
            }
            let (fields, spec) = match serde_json::from_str::<serde_json::Value>(&row.fields) {
                Ok(serde_json::Value::Object(fields)) => {
                    let spec = self.make_spec(&row.detector_id, &fields);
                    (fields, spec)
                }
                _ => (
                    serde_json::Map::new(),
                    Err(DetectorError::Invalid("the stored change is not a JSON object".into())),
                ),
            };
            let spec = match spec {
                Ok(spec) => Some(spec),
                Err(e) => {
                    tracing::warn!(tenant = %row.tenant, detector = %row.detector_id, error = %e,
                        "sentinel: a tenant's detector change no longer builds; the detectors file's entry runs instead");
                    None
                }
            };
            self.install(&row.tenant, &row.detector_id, Override { text: row.fields, fields, spec });
        }
        Ok(())
    }

    /// Runs `tenant`'s detector `id` as it is now on `events` with fresh
    /// state: what it would find. No tenant's state is touched.
    pub fn test_detector(
        &self,
        tenant: &str,
        id: &str,
        events: &[TelemetryEvent],
    ) -> Result<Vec<llm_sentinel::detector::Finding>, DetectorError> {
        let spec = self
            .config_for(tenant)
            .detectors
            .into_iter()
            .find(|d| d.id == id)
            .ok_or_else(|| DetectorError::NotFound(id.to_owned()))?;
        spec.dry_run(events).map_err(|e| DetectorError::Invalid(e.to_string()))
    }

    /// Hands stored events to the processor. When replicas share out
    /// applications the events stay in the store, where their
    /// application's owner reads them.
    pub async fn submit(&self, tenant: &str, events: Vec<TelemetryEvent>) {
        if self.ownership.get().is_some() {
            return;
        }
        crate::metrics::sentinel_queued(events.len() as i64);
        for e in events {
            // The processor only stops at shutdown; events not processed
            // then are replayed from the store at the next start.
            let _ = self.tx.send((tenant.to_owned(), e)).await;
        }
    }

    /// Tenants whose detectors failed to build, with the reason: while
    /// any is listed the server is not ready.
    pub fn failed_tenants(&self) -> Vec<(String, String)> {
        let failed = self.failed.read().unwrap_or_else(|p| p.into_inner());
        failed.iter().map(|(t, f)| (t.clone(), f.reason.clone())).collect()
    }

    /// Changes an anomaly of `tenant` that is open in memory here with `f`;
    /// `None` when it is not (it is then only in the store).
    pub fn update_open(&self, tenant: &str, id: &str, f: impl FnOnce(&mut Anomaly)) -> Option<Anomaly> {
        self.with_tenant(tenant, |s| s.update_anomaly(id, f))
    }

    /// Runs `f` on the tenant's Sentinel, built on first use.
    fn with_tenant<T>(&self, tenant: &str, f: impl FnOnce(&mut Sentinel) -> T) -> T {
        let mut map = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let s = map.entry(tenant.to_owned()).or_insert_with(|| self.build(tenant, None));
        f(s)
    }

    /// A tenant's Sentinel from the current config. The config was checked
    /// at start, but a plugin detector may still fail to start (its program
    /// gone, refusing its config): the failure is then recorded, readiness
    /// reports it, and the tenant gets a Sentinel with no detectors that
    /// keeps its anomalies' lifecycle while its events wait, unprocessed.
    /// `previous`'s open anomalies carry over.
    fn build(&self, tenant: &str, previous: Option<&Sentinel>) -> Sentinel {
        let config = self.config_for(tenant);
        let anomalies = config.anomalies.clone();
        let mut s = match Sentinel::new(config, self.clock.clone()) {
            Ok(s) => {
                if self.failed.write().unwrap_or_else(|p| p.into_inner()).remove(tenant).is_some() {
                    tracing::info!(tenant, "sentinel: the tenant's detectors are built and running again");
                }
                s
            }
            Err(e) => {
                tracing::error!(tenant, error = %e, "sentinel: the tenant's detectors failed to build; its events wait unprocessed");
                // The error's path starts with the detector: ` (id).plugin`.
                let failure = BuildFailure { reason: format!("detectors{e}"), retry_at: self.now() + REBUILD_AFTER_MS };
                self.failed.write().unwrap_or_else(|p| p.into_inner()).insert(tenant.to_owned(), failure);
                // Cannot fail: there is no detector to build.
                Sentinel::new(SentinelConfig { detectors: Vec::new(), anomalies }, self.clock.clone())
                    .unwrap_or_else(|_| unreachable!("a Sentinel without detectors always builds"))
            }
        };
        for a in previous.map(Sentinel::open_anomalies).unwrap_or_default() {
            s.restore(a.clone());
        }
        s
    }

    /// Runs one event through the tenant's detectors; `None` when they
    /// failed to build (the event stays pending). A failed tenant is rebuilt
    /// at its first event after `retry_at`.
    fn detect(&self, tenant: &str, e: &TelemetryEvent) -> Option<Vec<Outcome>> {
        let retry_at = self.failed.read().unwrap_or_else(|p| p.into_inner()).get(tenant).map(|f| f.retry_at);
        if retry_at.is_some_and(|at| self.now() < at) {
            return None;
        }
        let mut map = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let s = match map.entry(tenant.to_owned()) {
            std::collections::hash_map::Entry::Occupied(o) => {
                let s = o.into_mut();
                if retry_at.is_some() {
                    *s = self.build(tenant, Some(s));
                }
                s
            }
            std::collections::hash_map::Entry::Vacant(v) => v.insert(self.build(tenant, None)),
        };
        let built = !self.failed.read().unwrap_or_else(|p| p.into_inner()).contains_key(tenant);
        built.then(|| s.process(e))
    }

    /// Runs the processor until `stop`: processes submitted events and ticks.
    /// Call [`restore`](Self::restore) first, before any request is served.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let Some(mut rx) = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
        let mut tick = tokio::time::interval(Duration::from_millis(self.settings.tick_ms.max(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut round = tokio::time::interval(Duration::from_millis(OWNERSHIP_ROUND_MS));
        round.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let owning = self.ownership.get().is_some();
        let mut batch = Vec::with_capacity(512);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut batch, 512) => {
                    if n == 0 { break; }
                    crate::metrics::sentinel_queued(-(n as i64));
                    self.process(std::mem::take(&mut batch)).await;
                }
                _ = round.tick(), if owning => self.own_round().await,
                _ = tick.tick() => self.tick().await,
                _ = stop.changed() => break,
            }
        }
        if let Some(own) = self.ownership.get() {
            own.release().await;
        }
    }

    /// One ownership round: takes the applications with pending events
    /// that no replica owns, then runs the pending events of those this
    /// replica owns, oldest first.
    async fn own_round(self: &Arc<Self>) {
        let Some(own) = self.ownership.get().cloned() else { return };
        let apps = match self.store.pending_applications().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "sentinel: reading the applications with pending events failed");
                return;
            }
        };
        let owned = match own.claim(&apps).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "sentinel: the application lock session failed; this replica owns nothing until it is back");
                return;
            }
        };
        if owned.is_empty() {
            return;
        }
        for _ in 0..ROUND_READS {
            let rows = match self.store.pending_telemetry_of(&owned, ROUND_ROWS).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "sentinel: reading pending events failed");
                    return;
                }
            };
            let full = rows.len() == ROUND_ROWS as usize;
            if rows.is_empty() {
                return;
            }
            match self.jobs(rows).await {
                Ok(jobs) => self.process(jobs).await,
                Err(e) => {
                    tracing::warn!(error = %e, "sentinel: marking unreadable events failed");
                    return;
                }
            }
            if !full {
                return;
            }
        }
    }

    /// Stored rows as jobs; rows whose body no longer parses are marked
    /// processed (skipped, with a warning).
    async fn jobs(&self, rows: Vec<llmsec_store::TelemetryRow>) -> llmsec_store::Result<Vec<Job>> {
        let mut jobs = Vec::with_capacity(rows.len());
        let mut unreadable = Vec::new();
        for r in rows {
            match serde_json::from_str::<TelemetryEvent>(&r.body) {
                Ok(e) => jobs.push((r.tenant, e)),
                Err(err) => {
                    tracing::warn!(event = %r.event_id, error = %err, "sentinel: stored event no longer parses; skipped");
                    unreadable.push((r.tenant, r.event_id));
                }
            }
        }
        if !unreadable.is_empty() {
            self.store.mark_processed(&unreadable).await?;
        }
        Ok(jobs)
    }

    /// Erasure of a user: forgets the open anomalies about them (so none is
    /// written back after the store's rows are gone) and their cached
    /// enforcements. Call before [`Store::erase_user`].
    pub fn forget_user(&self, tenant: &str, user_id: &str) {
        let entity = llm_sentinel::detector::Entity::new(llm_sentinel::detector::EntityKind::User, user_id);
        if let Some(s) = self.tenants.lock().unwrap_or_else(|p| p.into_inner()).get_mut(tenant) {
            s.forget(&entity);
        }
        self.enforcements.forget(tenant, "user", user_id);
    }

    /// Takes back what a previous run left: enforcements, open anomalies,
    /// and events stored but not processed (replayed now). Run once at
    /// start, before requests are served, so no event is processed twice.
    pub async fn restore(self: &Arc<Self>) -> llmsec_store::Result<()> {
        self.enforcements.set(self.store.enforcements_in_force(self.now()).await?);
        // Tenants' detector changes first: each tenant's Sentinel is built with them.
        self.load_overrides().await?;
        // Anomalies that were open: taken back so that findings update them.
        for row in self.store.open_anomalies(100_000).await? {
            match serde_json::from_str::<Anomaly>(&row.body) {
                Ok(a) => self.with_tenant(&row.tenant, |s| s.restore(a)),
                Err(e) => tracing::warn!(anomaly = %row.id, error = %e, "sentinel: stored anomaly no longer parses"),
            }
        }
        // Events accepted but not processed before the last stop. When
        // replicas share out applications, each owner reads its own.
        let mut replayed = 0;
        while self.ownership.get().is_none() {
            let rows = self.store.pending_telemetry(1000).await?;
            if rows.is_empty() {
                break;
            }
            let jobs = self.jobs(rows).await?;
            replayed += jobs.len();
            self.process(jobs).await;
        }
        if replayed > 0 {
            tracing::info!(events = replayed, "sentinel: replayed events accepted before the last stop");
        }
        Ok(())
    }

    async fn process(self: &Arc<Self>, jobs: Vec<Job>) {
        // Detection is CPU work (the engine on every prompt; a plugin may take
        // up to its timeout): on the blocking pool, not an async worker, so
        // API requests are not held up behind a batch.
        let this = self.clone();
        let detected = tokio::task::spawn_blocking(move || {
            let mut outcomes = Vec::new();
            let mut keys = Vec::with_capacity(jobs.len());
            for (tenant, e) in jobs {
                // A tenant whose detectors failed to build leaves its events
                // pending: replayed at the next start, never run without detectors.
                let Some(out) = this.detect(&tenant, &e) else { continue };
                crate::metrics::sentinel_processed(this.now() - e.millis());
                outcomes.extend(out.into_iter().map(|o| (tenant.clone(), o)));
                keys.push((tenant, e.event_id));
            }
            (outcomes, keys)
        })
        .await;
        let (outcomes, keys) = match detected {
            Ok(d) => d,
            Err(e) => {
                // The events stay pending and are replayed at the next start.
                tracing::error!(error = %e, "sentinel: detection panicked");
                return;
            }
        };
        self.handle(outcomes).await;
        if let Err(e) = self.store.mark_processed(&keys).await {
            // They stay pending and are replayed at the next start: at-least-once.
            tracing::warn!(error = %e, "sentinel: marking events processed failed");
        }
    }

    async fn tick(&self) {
        let tenants: Vec<String> = self.tenants.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        let mut outcomes = Vec::new();
        for t in tenants {
            let out = self.with_tenant(&t, |s| s.tick());
            outcomes.extend(out.into_iter().map(|o| (t.clone(), o)));
        }
        self.handle(outcomes).await;
        self.escalate().await;
        let closed = self.campaigns().sweep(self.now());
        self.campaigns_changed(closed).await;
        match self.store.enforcements_in_force(self.now()).await {
            Ok(list) => self.enforcements.set(list),
            Err(e) => tracing::warn!(error = %e, "sentinel: reloading enforcements failed"),
        }
        if let Err(e) = self.load_overrides().await {
            tracing::warn!(error = %e, "sentinel: reloading tenants' detector changes failed");
        }
    }

    /// Ticks now (tests drive time with a manual clock, then call this).
    pub async fn tick_now(&self) {
        self.tick().await;
    }

    async fn handle(&self, outcomes: Vec<(String, Outcome)>) {
        for (tenant, o) in outcomes {
            let mut anomaly = o.anomaly;
            if o.change == Change::Created {
                crate::metrics::anomaly_raised(&anomaly);
                if let Some(kind) = crate::risk::RiskKind::of_entity(anomaly.affected_entity.kind) {
                    let points = crate::risk::anomaly_points(anomaly.severity);
                    let (id, at) = (&anomaly.affected_entity.id, anomaly.timestamp);
                    self.risk().add(&tenant, kind, id, points, crate::risk::Cause::Anomaly, at);
                }
                let changed = self.campaigns().observe(&crate::campaigns::Observation::anomaly(&tenant, &anomaly));
                self.campaigns_changed(changed).await;
                for (index, action) in o.actions.iter().enumerate() {
                    let taken = self.run_action(&tenant, &anomaly, index, action).await;
                    if let Some(a) = self.with_tenant(&tenant, |s| s.record_action(&anomaly.id, taken.clone())) {
                        anomaly = a;
                    } else {
                        anomaly.actions_taken.push(taken);
                    }
                }
            }
            if o.change == Change::Resolved {
                self.on_resolved(&tenant, &anomaly).await;
            }
            // Subscribers hear only of what the store holds.
            if self.persist(&tenant, &anomaly).await.is_ok() {
                self.publish(&tenant, o.change, &anomaly).await;
                let _ = self.feed.send(AnomalyNotice { tenant, change: o.change, anomaly });
            }
        }
    }

    /// Stores an anomaly (insert or update): the in-memory state when the
    /// anomaly is open here (it may be newer than `a`), else `a`. A failure
    /// is logged and returned; the anomaly stays as it is in memory, and its
    /// next change is written again.
    pub async fn persist(&self, tenant: &str, a: &Anomaly) -> Result<(), llmsec_store::StoreError> {
        let _order = self.write_lock.lock().await;
        let current = self.with_tenant(tenant, |s| s.anomaly(&a.id).cloned());
        let a = current.as_ref().unwrap_or(a);
        let row = AnomalyRow {
            id: a.id.clone(),
            tenant: tenant.to_owned(),
            detector_id: a.detector_id.clone(),
            severity: a.severity.as_str().to_owned(),
            status: a.status.as_str().to_owned(),
            score: a.score,
            application_id: a.context.application_id.clone(),
            timestamp: a.timestamp,
            resolved_at: a.resolved_at,
            body: serde_json::to_string(a).unwrap_or_default(),
        };
        self.store.put_anomaly(&row).await.inspect_err(|e| {
            tracing::error!(error = %e, anomaly = %a.id, "storing an anomaly failed");
        })
    }

    /// Acknowledges an anomaly of `tenant` (in memory when open here, and in the store).
    pub async fn acknowledge(
        &self,
        tenant: &str,
        id: &str,
        by: &str,
        note: Option<String>,
    ) -> Result<Anomaly, TransitionError> {
        let a = self
            .transition(
                tenant,
                id,
                |s| s.acknowledge(id, by, note.clone()),
                |a, now| {
                    if a.status != AnomalyStatus::Active {
                        return Err(format!("anomaly {id} is {}; cannot acknowledge", a.status.as_str()));
                    }
                    a.status = AnomalyStatus::Acknowledged;
                    a.acknowledged_by = Some(by.to_owned());
                    a.acknowledged_at = Some(now);
                    a.note = note.clone();
                    Ok(())
                },
            )
            .await?;
        // Tell the incident, if one was opened: a comment on it.
        let text = match &a.note {
            Some(n) => format!("Acknowledged by {by}: {n}"),
            None => format!("Acknowledged by {by}"),
        };
        self.comment(tenant, &a, text).await;
        Ok(a)
    }

    /// Adds a comment to the anomaly's incident (`POST /api/v1/incidents/{id}/comments`).
    async fn comment(&self, tenant: &str, a: &Anomaly, text: String) {
        let (Some(incident), Some(base)) = (&a.incident_id, self.incident_url_for(tenant, a)) else { return };
        let body = serde_json::json!({
            "author": "llm-sentinel",
            "text": text,
            "timestamp": crate::time::rfc3339(self.now()),
        });
        let url = format!("{}/api/v1/incidents/{incident}/comments", base.trim_end_matches('/'));
        self.enqueue(tenant, &url, None, "incident.comment", body.to_string()).await;
    }

    /// Resolves an anomaly of `tenant`.
    pub async fn resolve(&self, tenant: &str, id: &str) -> Result<Anomaly, TransitionError> {
        let a = self
            .transition(
                tenant,
                id,
                |s| s.resolve(id),
                |a, now| {
                    if !matches!(a.status, AnomalyStatus::Active | AnomalyStatus::Acknowledged) {
                        return Err(format!("anomaly {id} is {}; cannot resolve", a.status.as_str()));
                    }
                    a.status = AnomalyStatus::Resolved;
                    a.resolved_at = Some(now);
                    Ok(())
                },
            )
            .await?;
        self.on_resolved(tenant, &a).await;
        Ok(a)
    }

    /// Suppresses an anomaly of `tenant`.
    pub async fn suppress(&self, tenant: &str, id: &str) -> Result<Anomaly, TransitionError> {
        self.transition(
            tenant,
            id,
            |s| s.suppress(id),
            |a, _| {
                if !matches!(a.status, AnomalyStatus::Active | AnomalyStatus::Acknowledged) {
                    return Err(format!("anomaly {id} is {}; cannot suppress", a.status.as_str()));
                }
                a.status = AnomalyStatus::Suppressed;
                Ok(())
            },
        )
        .await
    }

    async fn transition(
        &self,
        tenant: &str,
        id: &str,
        live: impl FnOnce(&mut Sentinel) -> Result<Anomaly, llm_sentinel::anomaly::LifecycleError>,
        stored: impl FnOnce(&mut Anomaly, Millis) -> Result<(), String>,
    ) -> Result<Anomaly, TransitionError> {
        let in_memory = self.with_tenant(tenant, |s| s.anomaly(id).is_some());
        let a = if in_memory {
            self.with_tenant(tenant, live).map_err(|e| TransitionError::Refused(e.to_string()))?
        } else {
            let row = self.store.anomaly(tenant, id).await?.ok_or(TransitionError::NotFound)?;
            let mut a: Anomaly = serde_json::from_str(&row.body)
                .map_err(|e| llmsec_store::StoreError::Corrupt { table: "anomalies", why: e.to_string() })?;
            stored(&mut a, self.now()).map_err(TransitionError::Refused)?;
            a
        };
        // Not stored: the caller gets the store's error and subscribers hear nothing.
        self.persist(tenant, &a).await?;
        let change = match a.status {
            AnomalyStatus::Acknowledged => Change::Acknowledged,
            AnomalyStatus::Resolved => Change::Resolved,
            _ => Change::Suppressed,
        };
        self.publish(tenant, change, &a).await;
        let _ = self.feed.send(AnomalyNotice { tenant: tenant.to_owned(), change, anomaly: a.clone() });
        Ok(a)
    }

    async fn on_resolved(&self, tenant: &str, a: &Anomaly) {
        // Tell the incident manager, if an incident was opened.
        let Some(incident) = &a.incident_id else { return };
        let Some(base) = self.incident_url_for(tenant, a) else { return };
        let body = serde_json::json!({
            "status": "resolved",
            "resolution": format!("anomaly {} resolved", a.id),
            "resolved_at": anomaly_view(a)["anomaly"]["resolved_at"],
        });
        let url = format!("{}/api/v1/incidents/{incident}", base.trim_end_matches('/'));
        self.enqueue(tenant, &url, None, "incident.update", body.to_string()).await;
    }

    fn incident_url_for(&self, tenant: &str, a: &Anomaly) -> Option<String> {
        let from_action = self.config_for(tenant).detectors.iter().find(|d| d.id == a.detector_id).and_then(|d| {
            d.actions.iter().find_map(|x| match x {
                ActionSpec::Incident(i) => i.url.clone(),
                _ => None,
            })
        });
        from_action.or_else(|| self.settings.incidents_url.clone())
    }

    /// Queues a POST through the outbox to `url`, signed with `secret` when given.
    async fn enqueue(
        &self,
        tenant: &str,
        url: &str,
        secret: Option<&str>,
        event: &str,
        payload: String,
    ) -> Option<String> {
        let now = self.now();
        let hook_id = format!("snt_{}", &sha256_hex(&format!("{tenant}\n{url}\n{}", secret.unwrap_or("")))[..16]);
        let hook = Webhook {
            id: hook_id.clone(),
            tenant: tenant.to_owned(),
            url: url.to_owned(),
            // Unsigned targets still get a signature header; it is simply not checked.
            secret: secret.map(str::to_owned).unwrap_or_else(|| sha256_hex(url)),
            // No events: Sentinel targets never receive analysis events.
            events: vec!["sentinel.action".into()],
            created_at: now,
        };
        if let Err(e) = self.store.ensure_webhook(&hook).await {
            tracing::error!(error = %e, "sentinel: registering an action target failed");
            return None;
        }
        if let Err(e) = self.webhooks.reload(self.store.as_ref()).await {
            tracing::warn!(error = %e, "sentinel: reloading webhooks failed");
        }
        let id = uuid::Uuid::now_v7().to_string();
        let d = Delivery::pending(id.clone(), hook_id, tenant, event, payload, llmsec_store::now_millis());
        match self.store.enqueue(&[d]).await {
            Ok(()) => {
                self.delivery_notify.notify_one();
                Some(id)
            }
            Err(e) => {
                tracing::error!(error = %e, "sentinel: queueing an action failed");
                None
            }
        }
    }

    /// Escalation chains (`[[sentinel.escalations]]`): each anomaly still
    /// ACTIVE past a step's `after_minutes` alerts the step's receivers, and
    /// again every `repeat_minutes` while it stays ACTIVE; acknowledging,
    /// resolving or suppressing it stops the chain. Each firing is recorded
    /// on the anomaly as an action (`type: escalation`, id
    /// `escalation:<step>`) and stored, which is how a restart knows what
    /// was already sent.
    async fn escalate(&self) {
        let steps = &self.settings.escalations;
        if steps.is_empty() {
            return;
        }
        let now = self.now();
        let tenants: Vec<String> = self.tenants.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        for tenant in tenants {
            let due: Vec<(Anomaly, usize)> = self.with_tenant(&tenant, |s| {
                s.open_anomalies()
                    .into_iter()
                    .filter(|a| a.status == AnomalyStatus::Active)
                    .flat_map(|a| {
                        steps
                            .iter()
                            .enumerate()
                            .filter(|(_, st)| escalation_due(a, st, now))
                            .map(|(i, _)| (a.clone(), i))
                    })
                    .collect()
            });
            for (a, i) in due {
                let step = &steps[i];
                let alert = ActionSpec::Alert(llm_sentinel::action::AlertAction {
                    severity: None,
                    receivers: step.receivers.clone(),
                });
                let mut taken = self.run_action(&tenant, &a, usize::MAX, &alert).await;
                taken.kind = "escalation".into();
                taken.id = format!("escalation:{}", step.name);
                taken.message =
                    format!("unacknowledged for {} min: {}", (now - a.timestamp).max(0) / 60_000, taken.message);
                crate::metrics::escalated(&step.name);
                if let Some(updated) = self.with_tenant(&tenant, |s| s.record_action(&a.id, taken)) {
                    let _ = self.persist(&tenant, &updated).await;
                }
            }
        }
    }

    /// Runs the anomaly's `index`th action.
    async fn run_action(&self, tenant: &str, a: &Anomaly, index: usize, action: &ActionSpec) -> ActionTaken {
        let now = self.now();
        let taken = |id: String, status: &str, message: String| ActionTaken {
            id,
            kind: action.kind().to_owned(),
            status: status.to_owned(),
            message,
            at: now,
        };
        match action {
            ActionSpec::Shield(s) => {
                let kind = match s.target_kind(a.affected_entity.kind) {
                    Ok(k) => k,
                    Err(e) => return taken(String::new(), "failed", e),
                };
                let entity_id = if kind == a.affected_entity.kind {
                    Some(a.affected_entity.id.clone())
                } else {
                    match kind {
                        EntityKind::Application => a.context.application_id.clone(),
                        EntityKind::Tenant => Some(tenant.to_owned()),
                        _ => None,
                    }
                };
                let Some(entity_id) = entity_id else {
                    return taken(String::new(), "failed", format!("the anomaly names no {}", kind.as_str()));
                };
                let (action_name, rate_limit, window_ms) = match s.action {
                    ShieldKind::Block => ("block", None, None),
                    ShieldKind::RateLimit => match s.rate() {
                        Ok((l, w)) => ("rate_limit", Some(l), Some(w)),
                        Err(e) => return taken(String::new(), "failed", e),
                    },
                };
                // A remote Shield: it enforces, and says so in its answer.
                if let Some(endpoint) = &s.endpoint {
                    let Some(tls) = self.settings.shield_endpoints.get(endpoint) else {
                        return taken(
                            String::new(),
                            "failed",
                            format!("{endpoint:?} is not in [sentinel] shield_endpoints"),
                        );
                    };
                    let key = match tls.key() {
                        Ok(k) => k,
                        Err(e) => return taken(String::new(), "failed", format!("the key for {endpoint}: {e}")),
                    };
                    let mut parameters: std::collections::HashMap<String, String> = s
                        .parameters
                        .iter()
                        .filter(|(k, _)| !matches!(k.as_str(), "limit" | "window"))
                        .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                        .collect();
                    parameters.insert("anomaly_id".into(), a.id.clone());
                    parameters.insert("source".into(), "sentinel".into());
                    parameters.insert("severity".into(), a.severity.as_str().to_owned());
                    let remote = crate::shield_grpc::RemoteAction {
                        action_id: format!("{}:{index}", a.id),
                        rate: rate_limit.zip(window_ms),
                        target: format!("{}:{entity_id}", kind.as_str()),
                        reason: s.reason.clone().unwrap_or_else(|| a.title.clone()),
                        duration_ms: s.duration,
                        parameters,
                    };
                    let egress = self.egress.read().unwrap_or_else(|p| p.into_inner()).clone();
                    return match crate::shield_grpc::enforce_remote(endpoint, &key, tls, remote, &egress).await {
                        Ok((id, message)) => taken(id, "succeeded", message),
                        Err(e) => taken(String::new(), "failed", e),
                    };
                }
                let e = Enforcement {
                    id: format!("enf_{}", uuid::Uuid::now_v7().simple()),
                    tenant: tenant.to_owned(),
                    entity_kind: kind.as_str().to_owned(),
                    entity_id: entity_id.clone(),
                    action: action_name.to_owned(),
                    rate_limit,
                    window_ms,
                    reason: s.reason.clone().unwrap_or_else(|| a.title.clone()),
                    anomaly_id: Some(a.id.clone()),
                    created_at: now,
                    expires_at: now + s.duration,
                };
                match self.store.insert_enforcement(&e).await {
                    Ok(()) => {
                        let msg = format!(
                            "{action_name} {} {entity_id} for {}",
                            kind.as_str(),
                            llm_sentinel::detector::format_duration(s.duration)
                        );
                        let id = e.id.clone();
                        self.enforcement_added(e);
                        taken(id, "succeeded", msg)
                    }
                    Err(err) => taken(e.id, "failed", err.to_string()),
                }
            }
            ActionSpec::Alert(alert) => {
                let mut queued = Vec::new();
                for name in &alert.receivers {
                    let Some(r) = self.settings.receivers.iter().find(|r| &r.name == name) else { continue };
                    let severity = alert.severity.unwrap_or(a.severity);
                    let (url, secret, body) = match r.kind {
                        ReceiverKind::Log => {
                            tracing::warn!(receiver = %r.name, anomaly = %a.id, severity = severity.as_str(), title = %a.title, "ALERT");
                            queued.push(format!("{}: logged", r.name));
                            continue;
                        }
                        // Mails and SMS go through the outbox to the worker's notify registry.
                        ReceiverKind::Email | ReceiverKind::Sms => {
                            let ds = crate::notify::deliveries(r, tenant, severity, a, now);
                            match self.store.enqueue(&ds).await {
                                Ok(()) => {
                                    self.delivery_notify.notify_one();
                                    queued.push(format!("{}: queued", r.name));
                                }
                                Err(e) => tracing::error!(error = %e, "sentinel: queueing an alert failed"),
                            }
                            continue;
                        }
                        ReceiverKind::Webhook => (
                            r.url.clone().unwrap_or_default(),
                            r.secret.as_deref(),
                            serde_json::json!({"event": "alert.triggered", "receiver": r.name, "severity": severity.as_str(), "anomaly": anomaly_view(a)["anomaly"]}),
                        ),
                        ReceiverKind::Slack => (
                            r.url.clone().unwrap_or_default(),
                            None,
                            serde_json::json!({"text": format!("[{}] {} — {}", severity.as_str().to_uppercase(), a.title, a.description)}),
                        ),
                        ReceiverKind::Pagerduty => (
                            r.url.clone().unwrap_or_else(|| PAGERDUTY_URL.to_owned()),
                            None,
                            serde_json::json!({
                                "routing_key": r.routing_key,
                                "event_action": "trigger",
                                "dedup_key": a.id,
                                "payload": {
                                    "summary": a.title,
                                    "severity": severity.as_str(),
                                    "source": a.context.application_id.clone().unwrap_or_else(|| "llm-sentinel".into()),
                                    "custom_details": anomaly_view(a)["anomaly"],
                                },
                            }),
                        ),
                    };
                    if self.enqueue(tenant, &url, secret, "alert.triggered", body.to_string()).await.is_some() {
                        queued.push(format!("{}: queued", r.name));
                    }
                }
                let status = if queued.len() == alert.receivers.len() { "succeeded" } else { "failed" };
                taken(String::new(), status, queued.join("; "))
            }
            ActionSpec::Webhook(w) => {
                let body = match &w.template {
                    Some(t) => match render(t, a) {
                        Ok(b) => b,
                        Err(e) => return taken(String::new(), "failed", format!("template: {e}")),
                    },
                    None => serde_json::json!({"event": "anomaly.detected", "anomaly": anomaly_view(a)["anomaly"]})
                        .to_string(),
                };
                match self.enqueue(tenant, &w.url, w.secret.as_deref(), "anomaly.detected", body).await {
                    // The message is shown to every reader: the URL is masked.
                    Some(id) => taken(id, "pending", format!("queued for {}", crate::redact::mask_url(&w.url))),
                    None => taken(String::new(), "failed", "could not queue the delivery".into()),
                }
            }
            ActionSpec::Incident(inc) => {
                if !inc.auto_create {
                    return taken(String::new(), "skipped", "auto_create is off".into());
                }
                let Some(base) = inc.url.clone().or_else(|| self.settings.incidents_url.clone()) else {
                    return taken(String::new(), "failed", "no incident manager URL".into());
                };
                let url = format!("{}/api/v1/incidents", base.trim_end_matches('/'));
                let body = incident_body(a, inc).to_string();
                match self.enqueue(tenant, &url, None, "incident.create", body).await {
                    Some(id) => {
                        taken(id, "pending", format!("incident requested from {}", crate::redact::mask_url(&base)))
                    }
                    None => taken(String::new(), "failed", "could not queue the incident".into()),
                }
            }
        }
    }

    /// Called (through [`IncidentSink`](crate::deliver::IncidentSink)) when
    /// an outbox delivery of Sentinel's was answered 2xx: an incident
    /// creation's answer carries the incident id, which is recorded on the
    /// anomaly.
    pub async fn delivered(&self, d: &Delivery, response: &str) {
        if d.event != "incident.create" {
            return;
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(response) else { return };
        let Some(incident) = v.get("incident_id").or_else(|| v.get("id")).and_then(|x| x.as_str()) else { return };
        let Ok(req) = serde_json::from_str::<serde_json::Value>(&d.payload) else { return };
        let Some(anomaly_id) = req["metadata"]["anomaly_id"].as_str() else { return };
        let updated = self.with_tenant(&d.tenant, |s| s.set_incident(anomaly_id, incident));
        let a = match updated {
            Some(a) => Some(a),
            None => match self.store.anomaly(&d.tenant, anomaly_id).await {
                Ok(Some(row)) => serde_json::from_str::<Anomaly>(&row.body).ok().map(|mut a| {
                    a.incident_id = Some(incident.to_owned());
                    a
                }),
                _ => None,
            },
        };
        if let Some(a) = a {
            // A failure is logged; the incident id is written with the anomaly's next change.
            let _ = self.persist(&d.tenant, &a).await;
        }
    }
}

impl crate::deliver::IncidentSink for SentinelService {
    fn incident_created<'a>(
        &'a self,
        d: &'a Delivery,
        response: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(self.delivered(d, response))
    }
}

/// Hex SHA-256: stable ids for Sentinel's action targets.
fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}
