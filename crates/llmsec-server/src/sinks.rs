//! Operator sinks (`[[sinks]]`): which deliveries an event or anomaly
//! change queues for them, and the registry the delivery worker publishes
//! through.
//!
//! A sink delivery is an ordinary outbox row whose `webhook_id` is
//! `sink:<name>` and whose body is the same JSON envelope as a Kafka
//! record's ([`crate::broker`]). It is written with what causes it (a
//! security event in its transaction; an anomaly change right after the
//! anomaly, in one write with its Kafka record), retried with the
//! `[delivery]` backoff, dead-lettered after `max_attempts`, and counted by
//! the outbox metrics like every delivery.
//!
//! The worker publishes it through the sink's
//! [`OutboxPublisher`](llmsec_connect::OutboxPublisher), built once at
//! start from its config by [`llmsec_connect::sinks::SinkKind::build`] with
//! the worker's HTTP client (whose resolver enforces the egress policy) and
//! [`EgressAddresses`] for sinks that open their own sockets. A delivery
//! whose sink is no longer configured is retried, then dead-lettered with
//! `sink not configured`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use llm_sentinel::Change;
use llm_sentinel::anomaly::Anomaly;
use llmsec_connect::OutboxPublisher;
use llmsec_connect::sinks::{BuildContext, EventName, Facts, Level, SinkConfig};
use llmsec_store::{Delivery, Millis, SecurityEvent};

use crate::config::ConfigError;
use crate::egress::EgressPolicy;

/// The `webhook_id` prefix of sink deliveries.
pub const SINK_TARGET: &str = "sink:";

/// The sink a delivery is for, when it is a sink delivery.
pub fn name_of(d: &Delivery) -> Option<&str> {
    d.webhook_id.strip_prefix(SINK_TARGET)
}

/// The deliveries a stored security event causes for `sinks`.
pub fn for_security_event(sinks: &[SinkConfig], ev: &SecurityEvent, now: Millis) -> Vec<Delivery> {
    let facts = Facts {
        event: EventName::SecurityEvent,
        tenant: &ev.tenant,
        level: Level::of_threats(&ev.threats),
        verdict: Some(&ev.verdict),
    };
    let mut wanted = sinks.iter().filter(|s| s.accepts(&facts)).peekable();
    if wanted.peek().is_none() {
        return Vec::new();
    }
    let data = crate::broker::security_event_data(ev);
    wanted
        .map(|s| {
            let target = format!("{SINK_TARGET}{}", s.name);
            crate::broker::envelope(target, &ev.tenant, &ev.tenant, "security_event", data.clone(), now)
        })
        .collect()
}

/// The deliveries an anomaly change causes for `sinks` (none for a change of no status).
pub fn for_anomaly(sinks: &[SinkConfig], tenant: &str, change: Change, a: &Anomaly, now: Millis) -> Vec<Delivery> {
    let Some(event) = crate::broker::anomaly_event(change) else { return Vec::new() };
    let Some(name) = EventName::parse(event) else { return Vec::new() };
    let facts = Facts { event: name, tenant, level: Some(Level::of_anomaly(a.severity)), verdict: None };
    sinks
        .iter()
        .filter(|s| s.accepts(&facts))
        .map(|s| crate::broker::anomaly_to(format!("{SINK_TARGET}{}", s.name), tenant, event, a, now))
        .collect()
}

/// The egress policy as the address check of sinks that open their own sockets (syslog).
#[derive(Debug)]
pub struct EgressAddresses(pub Arc<EgressPolicy>);

impl llmsec_connect::sinks::AddressPolicy for EgressAddresses {
    fn filter(&self, host: &str, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, String> {
        self.0.filter(host, addrs).map_err(|e| e.to_string())
    }
}

/// The configured sinks' publishers, by name.
#[derive(Debug, Default, Clone)]
pub struct SinkRegistry {
    by_name: HashMap<String, Arc<dyn OutboxPublisher>>,
}

impl SinkRegistry {
    /// Builds every sink of `sinks` (reading their secrets through `env` and
    /// their files now); an error names `sinks[N].field`.
    pub fn build(
        sinks: &[SinkConfig],
        client: reqwest::Client,
        egress: Arc<EgressPolicy>,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<SinkRegistry, ConfigError> {
        let ctx = BuildContext { client, addresses: Arc::new(EgressAddresses(egress)), env };
        let mut by_name = HashMap::new();
        for (i, s) in sinks.iter().enumerate() {
            let publisher = s
                .kind
                .build(&ctx)
                .map_err(|e| ConfigError::Invalid { field: format!("sinks[{i}].{}", e.field), message: e.message })?;
            tracing::info!(sink = %s.name, kind = s.kind_name(), "sink ready");
            by_name.insert(s.name.clone(), publisher);
        }
        Ok(SinkRegistry { by_name })
    }

    /// The publisher of sink `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn OutboxPublisher>> {
        self.by_name.get(name)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sinks() -> Vec<SinkConfig> {
        #[derive(serde::Deserialize)]
        struct F {
            sinks: Vec<SinkConfig>,
        }
        toml::from_str::<F>(
            r#"
[[sinks]]
name = "hec"
kind = "splunk_hec"
url = "http://127.0.0.1:1"
token_env = "T"
verdicts = ["block"]

[[sinks]]
name = "grafana"
kind = "grafana"
url = "http://127.0.0.1:1"
token_env = "T"
tenants = ["acme"]
"#,
        )
        .unwrap()
        .sinks
    }

    fn event(verdict: &str) -> SecurityEvent {
        SecurityEvent {
            id: "ev-1".into(),
            tenant: "acme".into(),
            event_type: "prompt_injection".into(),
            input: None,
            threats: serde_json::json!([{"severity": "high"}]),
            confidence: 0.9,
            verdict: verdict.into(),
            timestamp: 1_700_000_000_000,
            user_id: None,
            session_id: None,
            context_kind: None,
            analysis_us: None,
        }
    }

    #[test]
    fn security_events_go_to_the_sinks_that_take_them() {
        let d = for_security_event(&sinks(), &event("block"), 1);
        assert_eq!(d.len(), 1, "grafana takes anomalies only");
        assert_eq!(name_of(&d[0]), Some("hec"));
        assert_eq!(crate::broker::topic_of(&d[0]), None, "not a kafka delivery");
        let body: serde_json::Value = serde_json::from_str(&d[0].payload).unwrap();
        assert_eq!((body["id"].as_str(), body["event"].as_str()), (Some(d[0].id.as_str()), Some("security_event")));
        assert_eq!(body["data"]["verdict"], "block");
        assert!(for_security_event(&sinks(), &event("allow"), 1).is_empty(), "verdict filter");
    }

    #[test]
    fn anomaly_changes_go_to_the_sinks_of_their_tenant() {
        let a = llm_sentinel::anomaly::sample();
        let d = for_anomaly(&sinks(), "acme", Change::Created, &a, 1);
        let names: Vec<_> = d.iter().filter_map(name_of).collect();
        assert_eq!(names, ["hec", "grafana"], "a verdict filter applies to security events only");
        let other: Vec<_> =
            for_anomaly(&sinks(), "globex", Change::Created, &a, 1).iter().map(|d| d.webhook_id.clone()).collect();
        assert_eq!(other, ["sink:hec"], "grafana takes acme only");
        assert!(for_anomaly(&sinks(), "acme", Change::Updated, &a, 1).is_empty(), "no status change");
    }

    #[test]
    fn building_names_the_sink_whose_secret_is_missing() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let e = SinkRegistry::build(&sinks(), client.clone(), Arc::default(), &|_| None).unwrap_err();
        assert_eq!(e.to_string(), "sinks[0].token_env: the environment variable T is not set");
        let r = SinkRegistry::build(&sinks(), client, Arc::default(), &|_| Some("tok".into())).unwrap();
        assert!(r.get("hec").is_some() && r.get("grafana").is_some() && r.get("gone").is_none());
    }
}
