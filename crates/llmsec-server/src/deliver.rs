//! Webhooks: which subscriptions want an analysis, the deliveries that go
//! into the outbox with its event, and the worker that sends them (and
//! hands broker deliveries, [`crate::broker`], and operator-sink
//! deliveries, [`crate::sinks`], to their publishers).
//!
//! Delivery is at-least-once. A delivery is written in the same
//! transaction as its event; the worker leases due deliveries, POSTs them
//! signed (see [`llm_security::webhook`]), and records the outcome. A worker
//! killed mid-attempt leaves the lease to expire and the delivery is sent
//! again, with the same `Idempotency-Key`, after a restart. Failures are
//! retried with exponential backoff and jitter; after `max_attempts` the
//! delivery is dead-lettered, listed at `/api/webhooks/deliveries?status=dead`
//! and can be redelivered.
//!
//! Every connection goes through the [egress policy](crate::egress): an
//! address the policy refuses dead-letters the delivery at once (retrying
//! cannot help). What a delivery records, and tenants read, is a category
//! (`egress refused`, `connect failed`, `timeout`, `HTTP 503 Service
//! Unavailable`, …), never the connection error, which can name internal
//! hosts and addresses; the full error goes to the server log.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use llm_security::Analysis;
use llm_security::webhook::{SIGNATURE_HEADER, sign_header};
use llmsec_store::{Attempt, Delivery, DeliveryStatus, Millis, SecurityEvent, Store, Webhook, now_millis};
use serde_json::json;
use tokio::sync::{Notify, watch};

use crate::config::DeliveryConfig;
use crate::egress::{EgressPolicy, EgressResolver};

/// The subscriptions, cached per tenant.
#[derive(Debug, Default)]
pub struct WebhookRegistry {
    by_tenant: RwLock<HashMap<String, Vec<Webhook>>>,
}

impl WebhookRegistry {
    /// Reloads every subscription from the store.
    pub async fn reload(&self, store: &dyn Store) -> llmsec_store::Result<()> {
        let all = store.webhooks(None).await?;
        let mut map: HashMap<String, Vec<Webhook>> = HashMap::new();
        for w in all {
            map.entry(w.tenant.clone()).or_default().push(w);
        }
        *self.by_tenant.write().unwrap_or_else(|p| p.into_inner()) = map;
        Ok(())
    }

    /// A tenant's subscriptions.
    pub fn for_tenant(&self, tenant: &str) -> Vec<Webhook> {
        self.by_tenant.read().unwrap_or_else(|p| p.into_inner()).get(tenant).cloned().unwrap_or_default()
    }

    fn find(&self, tenant: &str, id: &str) -> Option<Webhook> {
        self.by_tenant
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .and_then(|v| v.iter().find(|w| w.id == id).cloned())
    }
}

/// Whether a subscription wants `event` (one with no events listed wants all).
pub fn wants(w: &Webhook, event: &str) -> bool {
    w.events.is_empty() || w.events.iter().any(|e| e == event)
}

/// The events an analysis raises: `analysis.completed` always,
/// `threat.detected` when it found threats, `threat.mitigated` when the
/// policy acted on them (sanitize or block).
pub fn events_of(a: &Analysis) -> Vec<&'static str> {
    let mut v = vec!["analysis.completed"];
    if !a.threats().is_empty() {
        v.push("threat.detected");
    }
    if !a.is_secure() {
        v.push("threat.mitigated");
    }
    v
}

/// The deliveries an analysis causes for the tenant's subscriptions.
pub fn deliveries_for(hooks: &[Webhook], ev: &SecurityEvent, a: &Analysis, now: Millis) -> Vec<Delivery> {
    if hooks.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for event in events_of(a) {
        for w in hooks.iter().filter(|w| wants(w, event)) {
            let id = uuid::Uuid::now_v7().to_string();
            let body = json!({
                "id": id,
                "event": event,
                "created_at": crate::time::rfc3339(now),
                "tenant": ev.tenant,
                "data": {
                    "event_id": ev.id,
                    "event_type": ev.event_type,
                    "is_secure": a.is_secure(),
                    "verdict": ev.verdict,
                    "confidence": ev.confidence,
                    "threats": ev.threats,
                    "user_id": ev.user_id,
                    "session_id": ev.session_id,
                }
            });
            out.push(Delivery::pending(id, w.id.clone(), &ev.tenant, event, body.to_string(), now));
        }
    }
    out
}

/// The wait before attempt `attempts + 1`: `initial · 2^attempts`, capped,
/// then "equal jitter" (between half and all of it) so that receivers
/// coming back are not hit by every sender at once. `unit` in `[0, 1)`.
pub fn backoff(cfg: &DeliveryConfig, attempts: u32, unit: f64) -> Duration {
    let base = cfg.initial_backoff_ms.saturating_mul(1u64 << attempts.min(32)).min(cfg.max_backoff_ms) as f64;
    Duration::from_millis((base / 2.0 + base / 2.0 * unit.clamp(0.0, 1.0)) as u64)
}

fn jitter_unit() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// Sends due deliveries until told to stop.
#[derive(Debug, Clone)]
pub struct DeliveryWorker {
    /// The outbox.
    pub store: Arc<dyn Store>,
    /// Subscriptions (for URL and secret).
    pub webhooks: Arc<WebhookRegistry>,
    /// Retry policy.
    pub config: DeliveryConfig,
    /// Woken when new deliveries are queued.
    pub notify: Arc<Notify>,
    client: reqwest::Client,
    egress: Arc<EgressPolicy>,
    incidents: Option<Arc<dyn IncidentSink>>,
    publisher: Option<Arc<dyn llmsec_connect::OutboxPublisher>>,
    sinks: Arc<crate::sinks::SinkRegistry>,
    receivers: Arc<crate::notify::NotifyRegistry>,
    /// `[shield_callback]`: the Sentinel's callback URL and key.
    shield_callback: Option<Arc<(String, String)>>,
}

/// The target of a Shield callback delivery (`[shield_callback]`).
pub const SHIELD_CALLBACK_TARGET: &str = "shield-callback";
/// A Shield callback delivery found no `[shield_callback]` (it was removed).
const NO_CALLBACK: &str = "shield callback not configured";

/// Who hears of delivered incident creations: the incident manager answers
/// with the incident's id, which belongs on the anomaly that asked for it.
/// Sentinel implements it; the worker knows nothing else of Sentinel.
pub trait IncidentSink: Send + Sync + std::fmt::Debug {
    /// `d` (an `incident.create` delivery) was answered 2xx with `response`.
    fn incident_created<'a>(
        &'a self,
        d: &'a Delivery,
        response: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;
}

impl DeliveryWorker {
    /// A worker with its HTTP client (rustls) under `egress`: names are
    /// resolved through the policy, redirects are not followed and no proxy
    /// is used (a proxy would connect on our behalf, past the policy).
    pub fn new(
        store: Arc<dyn Store>,
        webhooks: Arc<WebhookRegistry>,
        config: DeliveryConfig,
        notify: Arc<Notify>,
        egress: Arc<EgressPolicy>,
    ) -> Result<DeliveryWorker, reqwest::Error> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(EgressResolver::new(egress.clone()))
            .timeout(Duration::from_millis(config.timeout_ms))
            .user_agent(concat!("llmsec-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(DeliveryWorker {
            store,
            webhooks,
            config,
            notify,
            client,
            egress,
            incidents: None,
            publisher: None,
            sinks: Arc::default(),
            receivers: Arc::default(),
            shield_callback: None,
        })
    }

    /// Reports delivered incident creations to `sink` (incident ids come back in answers).
    pub fn with_incidents(mut self, sink: Arc<dyn IncidentSink>) -> DeliveryWorker {
        self.incidents = Some(sink);
        self
    }

    /// Publishes broker deliveries ([`crate::broker`]) through `publisher`;
    /// without one they are retried, then dead-lettered.
    pub fn with_publisher(mut self, publisher: Option<Arc<dyn llmsec_connect::OutboxPublisher>>) -> DeliveryWorker {
        self.publisher = publisher;
        self
    }

    /// Publishes sink deliveries ([`crate::sinks`]) through `sinks`; a
    /// delivery for a sink it lacks is retried, then dead-lettered.
    pub fn with_sinks(mut self, sinks: crate::sinks::SinkRegistry) -> DeliveryWorker {
        self.sinks = Arc::new(sinks);
        self
    }

    /// Sends e-mail and SMS alert deliveries ([`crate::notify`]) through
    /// `notify`; a delivery for a receiver it lacks is retried, then
    /// dead-lettered.
    pub fn with_notify(mut self, receivers: crate::notify::NotifyRegistry) -> DeliveryWorker {
        self.receivers = Arc::new(receivers);
        self
    }

    /// Sends Shield callback deliveries ([`SHIELD_CALLBACK_TARGET`]) to
    /// `url` with `key` as a bearer token.
    pub fn with_shield_callback(mut self, url: String, key: String) -> DeliveryWorker {
        self.shield_callback = Some(Arc::new((url, key)));
        self
    }

    /// The worker's HTTP client: redirects off, no proxy, names resolved
    /// under the egress policy. Sinks send with it.
    pub fn client(&self) -> reqwest::Client {
        self.client.clone()
    }

    /// Runs until `shutdown` turns true. In-flight attempts finish first.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.config.poll_ms.max(10));
        let mut since_reload = tokio::time::Instant::now();
        self.count_outbox().await;
        loop {
            if *shutdown.borrow() {
                return;
            }
            if since_reload.elapsed() > Duration::from_secs(5) {
                if let Err(e) = self.webhooks.reload(self.store.as_ref()).await {
                    tracing::warn!(error = %e, "reloading webhooks failed");
                }
                self.count_outbox().await;
                since_reload = tokio::time::Instant::now();
            }
            let busy = match self.tick(now_millis()).await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming deliveries failed");
                    false
                }
            };
            if busy {
                continue;
            }
            tokio::select! {
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Sets the outbox gauges (backlog and dead letters) from the store.
    async fn count_outbox(&self) {
        let pending = self.store.count_deliveries(DeliveryStatus::Pending).await;
        let dead = self.store.count_deliveries(DeliveryStatus::Dead).await;
        match (pending, dead) {
            (Ok(p), Ok(d)) => crate::metrics::outbox(p, d),
            (Err(e), _) | (_, Err(e)) => tracing::warn!(error = %e, "counting the outbox failed"),
        }
    }

    /// Claims the deliveries due at `now` and attempts them; returns how many.
    pub async fn tick(&self, now: Millis) -> llmsec_store::Result<usize> {
        // The lease outlasts one attempt with room to record the outcome; a
        // worker that died holding it delays the retry by this much at most.
        let lease_until = now + 2 * self.config.timeout_ms as i64 + 1000;
        let due = self.store.claim_deliveries(now, lease_until, 64).await?;
        let n = due.len();
        futures_util::stream::iter(due).for_each_concurrent(self.config.concurrency, |d| self.attempt(d)).await;
        Ok(n)
    }

    async fn attempt(&self, d: Delivery) {
        let outcome = if let Some(topic) = crate::broker::topic_of(&d) {
            self.publish(self.publisher.as_ref(), NO_PUBLISHER, topic, &d).await
        } else if let Some(name) = crate::sinks::name_of(&d) {
            self.publish(self.sinks.get(name), NO_SINK, name, &d).await
        } else if let Some((channel, name)) = crate::notify::target_of(&d) {
            self.notify(channel, name, &d).await
        } else if d.webhook_id == SHIELD_CALLBACK_TARGET {
            self.shield_callback(&d).await
        } else {
            match self.webhooks.find(&d.tenant, &d.webhook_id) {
                None => Attempt::Failed { status: None, error: "webhook deleted".into(), retry_at: None },
                Some(w) => self.send(&w, &d).await,
            }
        };
        let label = match &outcome {
            Attempt::Delivered { .. } => "delivered",
            Attempt::Failed { retry_at: Some(_), .. } => "retry",
            Attempt::Failed { retry_at: None, .. } => "dead",
        };
        metrics::counter!(crate::metrics::WEBHOOK_DELIVERIES, "outcome" => label).increment(1);
        if let Attempt::Failed { error, retry_at: None, .. } = &outcome {
            tracing::warn!(delivery = %d.id, webhook = %d.webhook_id, %error, "webhook delivery dead-lettered");
        }
        if let Err(e) = self.store.finish_attempt(&d.id, &outcome, now_millis()).await {
            // The lease will expire and the delivery be retried: at-least-once.
            tracing::warn!(delivery = %d.id, error = %e, "recording a delivery attempt failed");
        }
    }

    /// Publishes a broker or sink delivery through `publisher` (`missing`
    /// when there is none) and waits for its acknowledgement. A delivered
    /// record records status 0 (no HTTP status); a failure records a
    /// category, its detail (which can name hosts) goes to the log.
    async fn publish(
        &self,
        publisher: Option<&Arc<dyn llmsec_connect::OutboxPublisher>>,
        missing: &str,
        topic: &str,
        d: &Delivery,
    ) -> Attempt {
        let result = match publisher {
            None => Err(missing.to_owned()),
            Some(p) => {
                let key = crate::broker::key_of(d);
                let record = llmsec_connect::OutboxRecord {
                    topic,
                    key: &key,
                    idempotency_key: &d.id,
                    event: &d.event,
                    tenant: &d.tenant,
                    payload: d.payload.as_bytes(),
                };
                p.publish(record).await.map_err(|e| {
                    tracing::warn!(delivery = %d.id, target = %d.webhook_id, error = %e, "broker or sink publish failed");
                    PUBLISH_FAILED.to_owned()
                })
            }
        };
        match result {
            Ok(()) => Attempt::Delivered { status: 0 },
            Err(error) => {
                let attempts = d.attempts + 1;
                let retry_at = (attempts < self.config.max_attempts)
                    .then(|| now_millis() + backoff(&self.config, d.attempts, jitter_unit()).as_millis() as i64);
                Attempt::Failed { status: None, error, retry_at }
            }
        }
    }

    /// Sends an e-mail or SMS delivery to receiver `name`. A permanent
    /// failure dead-letters it at once; others are retried with backoff.
    async fn notify(&self, channel: crate::notify::Channel, name: &str, d: &Delivery) -> Attempt {
        use crate::notify::{Channel, Failure, NO_RECEIVER};
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let missing = || Failure { status: None, error: NO_RECEIVER.to_owned(), permanent: false };
        let result = match channel {
            Channel::Mail => match self.receivers.mail(name) {
                Some(r) => r.send(d, &self.egress, timeout).await.map(|()| 0),
                None => Err(missing()),
            },
            Channel::Sms => match self.receivers.sms(name) {
                Some(r) => r.send(d, &self.client, &self.egress).await,
                None => Err(missing()),
            },
        };
        match result {
            Ok(status) => Attempt::Delivered { status },
            Err(f) => {
                let attempts = d.attempts + 1;
                let retry_at = (!f.permanent && attempts < self.config.max_attempts)
                    .then(|| now_millis() + backoff(&self.config, d.attempts, jitter_unit()).as_millis() as i64);
                Attempt::Failed { status: f.status, error: f.error, retry_at }
            }
        }
    }

    /// Posts a Shield callback to the Sentinel named in `[shield_callback]`.
    /// Any answer but 2xx is retried (a Sentinel may not have stored the
    /// action yet, and answers 400 until it has), then dead-lettered.
    async fn shield_callback(&self, d: &Delivery) -> Attempt {
        let retry_at = || {
            (d.attempts + 1 < self.config.max_attempts)
                .then(|| now_millis() + backoff(&self.config, d.attempts, jitter_unit()).as_millis() as i64)
        };
        let Some(target) = self.shield_callback.as_deref() else {
            return Attempt::Failed { status: None, error: NO_CALLBACK.into(), retry_at: retry_at() };
        };
        let (url, key) = target;
        if let Err(e) = self.egress.check_url(url) {
            tracing::warn!(delivery = %d.id, error = %e, "shield callback refused");
            return Attempt::Failed { status: None, error: EGRESS_REFUSED.into(), retry_at: None };
        }
        let result = self
            .client
            .post(url)
            .bearer_auth(key)
            .header("content-type", "application/json")
            .header("X-Llmsec-Event", &d.event)
            .header("Idempotency-Key", &d.id)
            .body(d.payload.clone())
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => Attempt::Delivered { status: r.status().as_u16() },
            Ok(r) => Attempt::Failed {
                status: Some(r.status().as_u16()),
                error: format!("HTTP {}", r.status()),
                retry_at: retry_at(),
            },
            Err(e) => {
                tracing::warn!(delivery = %d.id, error = %error_chain(&e), "shield callback attempt failed");
                if crate::egress::is_refusal(&e) {
                    return Attempt::Failed { status: None, error: EGRESS_REFUSED.into(), retry_at: None };
                }
                Attempt::Failed { status: None, error: error_category(&e).to_owned(), retry_at: retry_at() }
            }
        }
    }

    async fn send(&self, w: &Webhook, d: &Delivery) -> Attempt {
        // reqwest resolves no name for an IP-literal host: check it here.
        if let Err(e) = self.egress.check_url(&w.url) {
            tracing::warn!(delivery = %d.id, webhook = %d.webhook_id, error = %e, "webhook attempt refused");
            return Attempt::Failed { status: None, error: EGRESS_REFUSED.into(), retry_at: None };
        }
        let ts = now_millis() / 1000;
        // Incident updates are PATCHes (the incident manager's update call); everything else is a POST.
        let method = if d.event == "incident.update" { reqwest::Method::PATCH } else { reqwest::Method::POST };
        let result = self
            .client
            .request(method, &w.url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, sign_header(&w.secret, ts, d.payload.as_bytes()))
            .header("X-Llmsec-Event", &d.event)
            .header("X-Llmsec-Delivery", &d.id)
            .header("Idempotency-Key", &d.id)
            .body(d.payload.clone())
            .send()
            .await;
        let (status, error, retry_after) = match result {
            Ok(r) if r.status().is_success() => {
                let status = r.status().as_u16();
                if d.event == "incident.create"
                    && let Some(s) = &self.incidents
                {
                    let body = r.text().await.unwrap_or_default();
                    s.incident_created(d, &body).await;
                }
                return Attempt::Delivered { status };
            }
            Ok(r) => {
                let retry_after = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s.min(3600)));
                (Some(r.status().as_u16()), format!("HTTP {}", r.status()), retry_after)
            }
            Err(e) => {
                tracing::warn!(delivery = %d.id, webhook = %d.webhook_id, error = %error_chain(&e), "webhook attempt failed");
                if crate::egress::is_refusal(&e) {
                    return Attempt::Failed { status: None, error: EGRESS_REFUSED.into(), retry_at: None };
                }
                (None, error_category(&e).to_owned(), None)
            }
        };
        let attempts = d.attempts + 1;
        let retry_at = (attempts < self.config.max_attempts).then(|| {
            let wait = backoff(&self.config, d.attempts, jitter_unit()).max(retry_after.unwrap_or_default());
            now_millis() + wait.as_millis() as i64
        });
        Attempt::Failed { status, error, retry_at }
    }
}

/// The category of a delivery refused by the egress policy.
pub const EGRESS_REFUSED: &str = "egress refused";

/// A broker delivery found no publisher (`[kafka.sink]` was removed).
const NO_PUBLISHER: &str = "no broker sink configured";
/// A sink delivery names a sink no longer in `[[sinks]]`.
pub const NO_SINK: &str = "sink not configured";
/// A broker or sink did not acknowledge a record.
const PUBLISH_FAILED: &str = "publish failed";

/// The categories a failed attempt records besides `HTTP <status>`.
const CATEGORIES: &[&str] = &[
    EGRESS_REFUSED,
    "connect failed",
    "timeout",
    "request failed",
    "webhook deleted",
    NO_PUBLISHER,
    NO_SINK,
    PUBLISH_FAILED,
    NO_CALLBACK,
];

/// What a tenant is told of a failed attempt: a category, never the
/// connection error (it can name internal hosts and addresses).
fn error_category(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect failed"
    } else {
        "request failed"
    }
}

/// A stored `last_error` as tenants see it: a category or `HTTP <status>`
/// as is; anything else (written before errors were categorised) as
/// `request failed`.
pub fn public_error(stored: &str) -> &str {
    // `HTTP 503` and a reason phrase (letters, spaces, `'` and `-`): no host or address fits.
    let http = stored.strip_prefix("HTTP ").is_some_and(|rest| {
        rest.len() >= 3
            && rest.as_bytes()[..3].iter().all(u8::is_ascii_digit)
            && rest[3..].chars().all(|c| c.is_ascii_alphabetic() || matches!(c, ' ' | '\'' | '-'))
    });
    if http || CATEGORIES.contains(&stored) || crate::notify::CATEGORIES.contains(&stored) {
        stored
    } else {
        "request failed"
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let cfg = DeliveryConfig { initial_backoff_ms: 1000, max_backoff_ms: 60_000, ..Default::default() };
        assert_eq!(backoff(&cfg, 0, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(&cfg, 0, 1.0), Duration::from_millis(1000));
        assert_eq!(backoff(&cfg, 3, 1.0), Duration::from_millis(8000));
        assert_eq!(backoff(&cfg, 30, 1.0), Duration::from_millis(60_000));
        assert_eq!(backoff(&cfg, 200, 0.0), Duration::from_millis(30_000), "no overflow on large attempt counts");
        let u = jitter_unit();
        assert!((0.0..1.0).contains(&u));
    }

    #[test]
    fn tenants_see_error_categories_only() {
        for shown in
            ["egress refused", "connect failed", "timeout", "HTTP 503 Service Unavailable", "HTTP 418 I'm a teapot"]
        {
            assert_eq!(public_error(shown), shown);
        }
        for hidden in [
            "error sending request for url (http://10.0.0.7/x): client error (Connect): tcp connect error: Connection refused",
            "HTTP/1.1 from 10.0.0.7",
            "HTTP 5",
            "HTTP 502 from 10.0.0.7",
        ] {
            assert_eq!(public_error(hidden), "request failed");
        }
    }
}
