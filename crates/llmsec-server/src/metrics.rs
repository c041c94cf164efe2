//! Prometheus metrics: the engine's analysis metrics, HTTP metrics by route
//! and status, Sentinel, the outbox and the gateway, rendered in the text
//! format at `/metrics`.
//!
//! Every family is listed once in [`FAMILIES`] (name, type, help): the
//! recording sites use the name constants below, `describe` registers the
//! help texts from the list, and the tests that check the Grafana
//! dashboards and Prometheus rules in `deploy/` read the names from it, so
//! renaming a metric breaks those tests until `deploy/` follows.
//!
//! Labels whose values come from clients (user, tool, role, model) are
//! bounded by [`BoundedLabel`]: the first values seen are kept as they are
//! (each clipped to 64 bytes) up to a fixed number per label, and every
//! later value is counted as `other`. A flood of distinct user ids thus
//! adds at most one series per other label combination, not one per id.
//! Client addresses are reduced to their class ([`ip_class`]).
//!
//! The recorder is process-wide (the `metrics` facade has one global
//! recorder); every server in a process shares it.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use llm_security::{Analysis, Verdict};
use llm_sentinel::anomaly::Anomaly;
use llm_sentinel::event::TelemetryEvent;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// A metric's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (`_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, `_sum` and `_count`.
    Histogram,
}

/// One metric family: its name, type, labels and help text.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// The name as exported.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Its label names.
    pub labels: &'static [&'static str],
    /// The `# HELP` text.
    pub help: &'static str,
}

/// Export runs that failed, by stream (`events`, `anomalies`, `reports_day` …).
pub const EXPORT_FAILURES: &str = "llm_security_export_failures_total";
/// When each export stream last finished without error (Unix seconds).
pub const EXPORT_LAST_SUCCESS: &str = "llm_security_export_last_success_timestamp_seconds";
/// Objects written by exports, by stream.
pub const EXPORT_OBJECTS: &str = "llm_security_export_objects_total";
/// Analyses run (`endpoint`: `analyze`, `validate`; `verdict`).
pub const REQUESTS: &str = "llm_security_requests_total";
/// Threats found (`type`, `severity`).
pub const THREATS: &str = "llm_security_threats_detected_total";
/// Engine time per analysis (`endpoint`).
pub const ANALYSIS_DURATION: &str = "llm_security_analysis_duration_seconds";
/// Confidence of each analysis (`endpoint`).
pub const CONFIDENCE: &str = "llm_security_confidence";
/// Analyses that found an attack, once per threat category, by what the
/// policy did (`category`, `outcome`: `blocked`, `sanitized`, `passed`).
pub const ATTACKS: &str = "llm_security_attacks_total";
/// Dry runs (the dashboard's prompt-injection replay) by verdict.
pub const REPLAYS: &str = "llm_security_replays_total";
/// HTTP requests (`method`, `route`, `status`).
pub const HTTP_REQUESTS: &str = "llm_security_http_requests_total";
/// HTTP latency (`method`, `route`).
pub const HTTP_DURATION: &str = "llm_security_http_request_duration_seconds";
/// Requests refused by the per-key rate limit.
pub const RATE_LIMITED: &str = "llm_security_rate_limited_total";
/// Escalation steps fired for unacknowledged anomalies (`step`).
pub const ESCALATIONS: &str = "llm_security_escalations_total";
/// Requests refused by a Sentinel enforcement (`action`).
pub const ENFORCED: &str = "llm_security_enforced_total";
/// Shield actions enforced through `shield.v1.ShieldAction` (`action`).
pub const SHIELD_ACTIONS: &str = "llm_security_shield_actions_total";
/// Requests refused after too many failed authentications.
pub const AUTH_THROTTLED: &str = "llm_security_auth_throttled_total";
/// Connections closed on accept (`reason`).
pub const CONNECTIONS_REFUSED: &str = "llm_security_connections_refused_total";
/// Events committed per store transaction.
pub const WRITE_BATCH: &str = "llm_security_events_write_batch_size";
/// Webhook delivery attempts (`outcome`: `delivered`, `retry`, `dead`).
pub const WEBHOOK_DELIVERIES: &str = "llm_security_webhook_deliveries_total";
/// Deliveries in the outbox now (`status`: `pending`, `dead`).
pub const OUTBOX_DELIVERIES: &str = "llm_security_outbox_deliveries";
/// Telemetry events received (`outcome`: `accepted`, `duplicate`).
pub const TELEMETRY_EVENTS: &str = "llm_security_telemetry_events_total";
/// OTLP spans received (`outcome`).
pub const OTLP_SPANS: &str = "llm_security_otlp_spans_total";
/// LLM calls reported by telemetry (`role`, `ip_class`, `status`).
pub const LLM_CALLS: &str = "llm_security_llm_calls_total";
/// Tool calls reported by telemetry (`user`, `tool`).
pub const TOOL_CALLS: &str = "llm_security_tool_calls_total";
/// Mean token entropy of completions that carry logprobs (`model`).
pub const OUTPUT_ENTROPY: &str = "llm_security_output_entropy_nats";
/// Events run through Sentinel's detectors.
pub const SENTINEL_PROCESSED: &str = "llm_security_sentinel_events_processed_total";
/// Events handed to Sentinel and not yet taken by its processor.
pub const SENTINEL_QUEUED: &str = "llm_security_sentinel_queued_events";
/// Time from an event's timestamp to the end of its detection.
pub const SENTINEL_LAG: &str = "llm_security_sentinel_processing_lag_seconds";
/// Anomalies raised (`detector_type`, `severity`).
pub const ANOMALIES: &str = "llm_security_anomalies_detected_total";
/// Campaigns detected (`kind`: `template`, `indicator`, `ip_range`).
pub const CAMPAIGNS: &str = "llm_security_campaigns_total";
/// Gateway calls (`route`, `model`, `status`).
pub const GATEWAY_REQUESTS: &str = "llm_security_gateway_requests_total";
/// Quarantined items by outcome (`held`, `released`, `discarded`, `expired`).
pub const QUARANTINE: &str = "llm_security_quarantine_total";
/// Quarantined items waiting for review, of every tenant.
pub const QUARANTINE_PENDING: &str = "llm_security_quarantine_pending";

/// Every metric family the server exports.
pub const FAMILIES: &[Family] = &[
    Family {
        name: REQUESTS,
        kind: Kind::Counter,
        labels: &["endpoint", "verdict"],
        help: "Analyses run, by endpoint and verdict",
    },
    Family {
        name: THREATS,
        kind: Kind::Counter,
        labels: &["type", "severity"],
        help: "Threats found, by type and severity",
    },
    Family {
        name: ANALYSIS_DURATION,
        kind: Kind::Histogram,
        labels: &["endpoint"],
        help: "Engine time per analysis in seconds",
    },
    Family { name: CONFIDENCE, kind: Kind::Histogram, labels: &["endpoint"], help: "Confidence of each analysis" },
    Family {
        name: ATTACKS,
        kind: Kind::Counter,
        labels: &["category", "outcome"],
        help: "Analyses that found an attack, once per threat category, by outcome (blocked, sanitized, passed)",
    },
    Family { name: REPLAYS, kind: Kind::Counter, labels: &["verdict"], help: "Prompt replays (dry runs) by verdict" },
    Family {
        name: HTTP_REQUESTS,
        kind: Kind::Counter,
        labels: &["method", "route", "status"],
        help: "HTTP requests by method, route and status",
    },
    Family {
        name: HTTP_DURATION,
        kind: Kind::Histogram,
        labels: &["method", "route"],
        help: "HTTP request latency in seconds",
    },
    Family { name: RATE_LIMITED, kind: Kind::Counter, labels: &[], help: "Requests refused by the per-key rate limit" },
    Family {
        name: ENFORCED,
        kind: Kind::Counter,
        labels: &["action"],
        help: "Requests refused by a Sentinel enforcement or a risk limit, and gateway streams ended by a block",
    },
    Family {
        name: CAMPAIGNS,
        kind: Kind::Counter,
        labels: &["kind"],
        help: "Campaigns detected: threats and anomalies of several users or sessions sharing a template, indicator or address range",
    },
    Family {
        name: ESCALATIONS,
        kind: Kind::Counter,
        labels: &["step"],
        help: "Escalation steps fired for anomalies left unacknowledged",
    },
    Family {
        name: SHIELD_ACTIONS,
        kind: Kind::Counter,
        labels: &["action"],
        help: "Shield actions enforced through the gRPC ShieldAction service",
    },
    Family {
        name: AUTH_THROTTLED,
        kind: Kind::Counter,
        labels: &[],
        help: "Requests refused because their address failed authentication too often",
    },
    Family {
        name: CONNECTIONS_REFUSED,
        kind: Kind::Counter,
        labels: &["reason"],
        help: "Connections closed on accept, by reason",
    },
    Family { name: WRITE_BATCH, kind: Kind::Histogram, labels: &[], help: "Events committed per store transaction" },
    Family {
        name: WEBHOOK_DELIVERIES,
        kind: Kind::Counter,
        labels: &["outcome"],
        help: "Webhook delivery attempts by outcome",
    },
    Family {
        name: OUTBOX_DELIVERIES,
        kind: Kind::Gauge,
        labels: &["status"],
        help: "Deliveries in the outbox by status (pending: backlog, dead: dead letters)",
    },
    Family {
        name: llmsec_connect::kafka::CONSUMER_LAG,
        kind: Kind::Gauge,
        labels: &["topic", "partition"],
        help: "Kafka source: messages not yet committed by the consumer group, per partition",
    },
    Family {
        name: llmsec_connect::kafka::MESSAGES,
        kind: Kind::Counter,
        labels: &["outcome"],
        help: "Kafka source messages by outcome (stored, duplicate, dead_letter)",
    },
    Family {
        name: llmsec_connect::kafka::INGEST_RETRIES,
        kind: Kind::Counter,
        labels: &[],
        help: "Kafka source batches whose write failed and was retried",
    },
    Family {
        name: TELEMETRY_EVENTS,
        kind: Kind::Counter,
        labels: &["outcome"],
        help: "Telemetry events received, by outcome",
    },
    Family { name: OTLP_SPANS, kind: Kind::Counter, labels: &["outcome"], help: "OTLP spans received, by outcome" },
    Family {
        name: LLM_CALLS,
        kind: Kind::Counter,
        labels: &["role", "ip_class", "status"],
        help: "LLM calls reported by telemetry, by caller role, client address class and status",
    },
    Family {
        name: TOOL_CALLS,
        kind: Kind::Counter,
        labels: &["user", "tool"],
        help: "Tool calls reported by telemetry, by user and tool",
    },
    Family {
        name: OUTPUT_ENTROPY,
        kind: Kind::Histogram,
        labels: &["model"],
        help: "Mean token entropy (nats) of completions reported with logprobs",
    },
    Family {
        name: SENTINEL_PROCESSED,
        kind: Kind::Counter,
        labels: &[],
        help: "Events run through Sentinel's detectors",
    },
    Family { name: SENTINEL_QUEUED, kind: Kind::Gauge, labels: &[], help: "Events waiting for Sentinel's processor" },
    Family {
        name: SENTINEL_LAG,
        kind: Kind::Histogram,
        labels: &[],
        help: "Seconds from an event's timestamp to the end of its detection",
    },
    Family {
        name: ANOMALIES,
        kind: Kind::Counter,
        labels: &["detector_type", "severity"],
        help: "Anomalies raised by detector type and severity",
    },
    Family {
        name: GATEWAY_REQUESTS,
        kind: Kind::Counter,
        labels: &["route", "model", "status"],
        help: "Shield gateway calls by route, model and outcome",
    },
    Family {
        name: EXPORT_FAILURES,
        kind: Kind::Counter,
        labels: &["stream"],
        help: "Export runs that failed (retried next run), by stream",
    },
    Family {
        name: EXPORT_LAST_SUCCESS,
        kind: Kind::Gauge,
        labels: &["stream"],
        help: "When each export stream last finished without error, Unix seconds",
    },
    Family {
        name: EXPORT_OBJECTS,
        kind: Kind::Counter,
        labels: &["stream"],
        help: "Objects written by exports, by stream",
    },
    Family {
        name: QUARANTINE,
        kind: Kind::Counter,
        labels: &["outcome"],
        help: "Requests and completions held for review, and how their holds ended (held, released, discarded, expired)",
    },
    Family {
        name: QUARANTINE_PENDING,
        kind: Kind::Gauge,
        labels: &[],
        help: "Quarantined items waiting for review, of every tenant",
    },
];

/// Analysis and HTTP latency: 10 µs to 1 s (the engine answers in µs to ms).
const LATENCY_BUCKETS: &[f64] =
    &[0.000_01, 0.000_025, 0.000_05, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];
const CONFIDENCE_BUCKETS: &[f64] = &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// Sentinel lag: 1 ms (processed at once) to 10 min (replayed after a stop).
const LAG_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0];
/// Mean token entropy in nats: confident completions sit well under 1.
const ENTROPY_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 8.0];

/// Installs the Prometheus recorder once per process and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let buckets: [(Matcher, &[f64]); 5] = [
                (Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS),
                (Matcher::Full(CONFIDENCE.into()), CONFIDENCE_BUCKETS),
                (Matcher::Full(WRITE_BATCH.into()), BATCH_BUCKETS),
                (Matcher::Full(SENTINEL_LAG.into()), LAG_BUCKETS),
                (Matcher::Full(OUTPUT_ENTROPY.into()), ENTROPY_BUCKETS),
            ];
            // The bucket lists above are constants and non-empty: setting them cannot fail.
            let builder = buckets
                .into_iter()
                .try_fold(PrometheusBuilder::new(), |b, (m, v)| b.set_buckets_for_metric(m, v))
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding application's);
            // then ours still renders, but only what we record through the handle.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    for f in FAMILIES {
        match f.kind {
            Kind::Counter => metrics::describe_counter!(f.name, f.help),
            Kind::Gauge => metrics::describe_gauge!(f.name, f.help),
            Kind::Histogram => metrics::describe_histogram!(f.name, f.help),
        }
    }
}

/// A label whose values come from clients, bounded to `max` distinct
/// values: the first `max` seen are kept (clipped to 64 bytes), later ones
/// become `other`, a missing or empty one `none`. The kept set lives as
/// long as the process (so does the recorder's series).
#[derive(Debug)]
pub struct BoundedLabel {
    max: usize,
    seen: Mutex<HashSet<String>>,
}

impl BoundedLabel {
    /// A label keeping at most `max` distinct values.
    pub fn new(max: usize) -> BoundedLabel {
        BoundedLabel { max, seen: Mutex::new(HashSet::new()) }
    }

    /// The label value to record for `value`.
    pub fn value(&self, value: Option<&str>) -> String {
        let v = value.map(str::trim).unwrap_or_default();
        if v.is_empty() {
            return "none".to_owned();
        }
        let mut end = v.len().min(64);
        while !v.is_char_boundary(end) {
            end -= 1;
        }
        let v: String = v[..end].chars().map(|c| if c.is_control() { '_' } else { c }).collect();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(&v) {
            return v;
        }
        if seen.len() < self.max {
            seen.insert(v.clone());
            return v;
        }
        "other".to_owned()
    }
}

/// Users in the tool-call heatmap.
static USERS: LazyLock<BoundedLabel> = LazyLock::new(|| BoundedLabel::new(100));
/// Tool names.
static TOOLS: LazyLock<BoundedLabel> = LazyLock::new(|| BoundedLabel::new(50));
/// Caller roles.
static ROLES: LazyLock<BoundedLabel> = LazyLock::new(|| BoundedLabel::new(20));
/// Models (telemetry and gateway).
static MODELS: LazyLock<BoundedLabel> = LazyLock::new(|| BoundedLabel::new(50));

/// The class of a client address: `loopback`, `private` (RFC 1918, IPv6
/// unique local), `link_local`, `public`, `invalid` (not an address) or
/// `none` (not given). Addresses themselves are not labels: too many.
pub fn ip_class(ip: Option<&str>) -> &'static str {
    let Some(s) = ip.map(str::trim).filter(|s| !s.is_empty()) else { return "none" };
    match s.parse::<IpAddr>() {
        Err(_) => "invalid",
        Ok(a) if a.is_loopback() => "loopback",
        Ok(IpAddr::V4(v4)) if v4.is_private() => "private",
        Ok(IpAddr::V4(v4)) if v4.is_link_local() => "link_local",
        Ok(IpAddr::V6(v6)) if v6.segments()[0] & 0xfe00 == 0xfc00 => "private",
        Ok(IpAddr::V6(v6)) if v6.segments()[0] & 0xffc0 == 0xfe80 => "link_local",
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_some() => {
            ip_class(v6.to_ipv4_mapped().map(|v4| v4.to_string()).as_deref())
        }
        Ok(_) => "public",
    }
}

/// Records one analysis.
pub fn record_analysis(endpoint: &'static str, a: &Analysis) {
    metrics::counter!(REQUESTS, "endpoint" => endpoint, "verdict" => a.verdict().as_str()).increment(1);
    let outcome = match a.verdict() {
        Verdict::Block => "blocked",
        Verdict::Sanitize => "sanitized",
        Verdict::Allow => "passed",
    };
    let mut categories: Vec<&'static str> = Vec::new();
    for t in a.threats() {
        metrics::counter!(THREATS, "type" => t.kind.as_str(), "severity" => t.severity.as_str()).increment(1);
        if !categories.contains(&t.kind.as_str()) {
            categories.push(t.kind.as_str());
        }
    }
    for c in categories {
        metrics::counter!(ATTACKS, "category" => c, "outcome" => outcome).increment(1);
    }
    metrics::histogram!(ANALYSIS_DURATION, "endpoint" => endpoint).record(a.analysis_time().as_secs_f64());
    metrics::histogram!(CONFIDENCE, "endpoint" => endpoint).record(a.confidence());
}

/// Records one replay (dry run) of a prompt.
pub fn record_replay(verdict: Verdict) {
    metrics::counter!(REPLAYS, "verdict" => verdict.as_str()).increment(1);
}

/// Records what an accepted (new) telemetry event says about its caller:
/// the call by role, address class and status, its tool calls by user and
/// tool, and its completion's mean token entropy when it has logprobs.
pub fn record_telemetry(e: &TelemetryEvent) {
    let m = &e.metadata;
    let status: &'static str = match e.data.status.as_deref() {
        Some("success") => "success",
        Some("blocked") => "blocked",
        Some("error") => "error",
        Some("client_closed") => "client_closed",
        _ if e.is_error() => "error",
        Some(_) => "other",
        None => "none",
    };
    metrics::counter!(
        LLM_CALLS,
        "role" => ROLES.value(m.role.as_deref()),
        "ip_class" => ip_class(m.ip.as_deref()),
        "status" => status
    )
    .increment(1);
    if let Some(tools) = &m.tool_calls {
        let user = USERS.value(m.user_id.as_deref());
        for t in tools {
            metrics::counter!(TOOL_CALLS, "user" => user.clone(), "tool" => TOOLS.value(Some(t))).increment(1);
        }
    }
    if let Some(h) = e.data.logprobs.as_deref().and_then(llm_sentinel::detectors::entropy::mean_token_entropy) {
        metrics::histogram!(OUTPUT_ENTROPY, "model" => MODELS.value(e.data.model.as_deref())).record(h);
    }
}

/// Records events handed to Sentinel (`n > 0`) or taken by its processor (`n < 0`).
pub fn sentinel_queued(n: i64) {
    metrics::gauge!(SENTINEL_QUEUED).increment(n as f64);
}

/// Records an event run through the detectors, `lag_ms` after its timestamp.
pub fn sentinel_processed(lag_ms: i64) {
    metrics::counter!(SENTINEL_PROCESSED).increment(1);
    metrics::histogram!(SENTINEL_LAG).record(lag_ms.max(0) as f64 / 1000.0);
}

/// Records a new anomaly.
pub fn anomaly_raised(a: &Anomaly) {
    metrics::counter!(ANOMALIES, "detector_type" => a.detector_type.as_str(), "severity" => a.severity.as_str())
        .increment(1);
}

/// Sets the outbox gauges from the store's counts.
pub fn outbox(pending: u64, dead: u64) {
    metrics::gauge!(OUTBOX_DELIVERIES, "status" => "pending").set(pending as f64);
    metrics::gauge!(OUTBOX_DELIVERIES, "status" => "dead").set(dead as f64);
}

/// Counts a campaign detected (`llm_security_campaigns_total{kind}`).
pub fn campaign_detected(kind: &'static str) {
    metrics::counter!(CAMPAIGNS, "kind" => kind).increment(1);
}

/// Counts an escalation step that fired (`llm_security_escalations_total{step}`).
pub fn escalated(step: &str) {
    metrics::counter!(ESCALATIONS, "step" => step.to_owned()).increment(1);
}

/// Counts a gateway stream ended because Sentinel blocked its subject
/// while it ran (`llm_security_enforced_total{action="terminate"}`).
pub fn stream_terminated() {
    metrics::counter!(ENFORCED, "action" => "terminate").increment(1);
}

/// Records an export stream that finished at `now` (Unix ms), writing `objects`.
pub fn export_succeeded(stream: &str, objects: usize, now: i64) {
    metrics::gauge!(EXPORT_LAST_SUCCESS, "stream" => stream.to_owned()).set(now as f64 / 1000.0);
    metrics::counter!(EXPORT_OBJECTS, "stream" => stream.to_owned()).increment(objects as u64);
}

/// Records an export stream that failed.
pub fn export_failed(stream: &str) {
    metrics::counter!(EXPORT_FAILURES, "stream" => stream.to_owned()).increment(1);
}

/// Counts a quarantine outcome (`held`, `released`, `discarded`, `expired`).
pub fn quarantined(outcome: &str) {
    metrics::counter!(QUARANTINE, "outcome" => outcome.to_owned()).increment(1);
}

/// Sets the pending-review gauge.
pub fn quarantine_pending(n: u64) {
    metrics::gauge!(QUARANTINE_PENDING).set(n as f64);
}

/// Records one gateway call.
pub fn record_gateway(route: &'static str, model: Option<&str>, status: &'static str) {
    metrics::counter!(GATEWAY_REQUESTS, "route" => route, "model" => MODELS.value(model), "status" => status)
        .increment(1);
}

/// Middleware: counts and times every request by its route template.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route).record(started.elapsed().as_secs_f64());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_label_keeps_the_first_values_then_says_other() {
        let l = BoundedLabel::new(2);
        assert_eq!(l.value(Some("alice")), "alice");
        assert_eq!(l.value(Some("bob")), "bob");
        assert_eq!(l.value(Some("carol")), "other", "past the bound");
        assert_eq!(l.value(Some("alice")), "alice", "a kept value stays");
        assert_eq!(l.value(None), "none");
        assert_eq!(l.value(Some("  ")), "none");
        let l = BoundedLabel::new(5);
        let long = "é".repeat(40);
        let v = l.value(Some(&long));
        assert!(v.len() <= 64 && long.starts_with(&v), "clipped on a character boundary: {v}");
        assert_eq!(l.value(Some("a\nb")), "a_b", "control characters replaced");
    }

    #[test]
    fn addresses_are_reduced_to_their_class() {
        for (ip, class) in [
            (Some("127.0.0.1"), "loopback"),
            (Some("::1"), "loopback"),
            (Some("10.1.2.3"), "private"),
            (Some("192.168.0.9"), "private"),
            (Some("fd00::1"), "private"),
            (Some("169.254.1.1"), "link_local"),
            (Some("fe80::1"), "link_local"),
            (Some("::ffff:10.0.0.1"), "private"),
            (Some("203.0.113.9"), "public"),
            (Some("2001:db8::1"), "public"),
            (Some("not an address"), "invalid"),
            (Some(""), "none"),
            (None, "none"),
        ] {
            assert_eq!(ip_class(ip), class, "{ip:?}");
        }
    }

    #[test]
    fn every_family_is_described_once() {
        let mut names: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "a family is listed twice");
        // Families are rendered once recorded, with the HELP of describe().
        let handle = install();
        record_replay(Verdict::Allow);
        outbox(3, 1);
        let text = handle.render();
        for name in [REPLAYS, OUTBOX_DELIVERIES] {
            assert!(text.contains(&format!("# HELP {name} ")), "no HELP for {name}:\n{text}");
        }
        // Other tests in this process may set the gauges too: the series, not their values.
        assert!(text.contains("llm_security_outbox_deliveries{status=\"pending\"} "), "{text}");
        assert!(text.contains("llm_security_outbox_deliveries{status=\"dead\"} "), "{text}");
        assert!(text.contains("llm_security_replays_total{verdict=\"allow\"} "), "{text}");
    }
}
