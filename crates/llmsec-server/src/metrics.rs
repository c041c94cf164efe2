//! Prometheus metrics: the engine's analysis metrics and HTTP metrics by route
//! and status, rendered in the text format at `/metrics`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `llm_security_requests_total` | counter | `endpoint` (`analyze`, `validate`), `verdict` |
//! | `llm_security_threats_detected_total` | counter | `type`, `severity` |
//! | `llm_security_analysis_duration_seconds` | histogram | `endpoint` |
//! | `llm_security_confidence` | histogram | `endpoint` |
//! | `llm_security_http_requests_total` | counter | `method`, `route`, `status` |
//! | `llm_security_http_request_duration_seconds` | histogram | `method`, `route` |
//! | `llm_security_rate_limited_total` | counter | |
//! | `llm_security_webhook_deliveries_total` | counter | `outcome` (`delivered`, `retry`, `dead`) |
//! | `llm_security_events_write_batch_size` | histogram | |
//! | `llm_security_auth_throttled_total` | counter | |
//! | `llm_security_connections_refused_total` | counter | `reason` (`per_ip`) |
//!
//! The recorder is process-wide (the `metrics` facade has one global
//! recorder); every server in a process shares it.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use llm_security::Analysis;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] =
    &[0.000_01, 0.000_025, 0.000_05, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];
const CONFIDENCE_BUCKETS: &[f64] = &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Installs the Prometheus recorder once per process and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full("llm_security_confidence".into()), CONFIDENCE_BUCKETS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("llm_security_events_write_batch_size".into()),
                        BATCH_BUCKETS,
                    )
                });
            // The bucket lists above are constants and non-empty: building cannot fail.
            let recorder = builder.unwrap_or_else(|_| PrometheusBuilder::new()).build_recorder();
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
    metrics::describe_counter!("llm_security_requests_total", "Analyses run, by endpoint and verdict");
    metrics::describe_counter!("llm_security_threats_detected_total", "Threats found, by type and severity");
    metrics::describe_histogram!("llm_security_analysis_duration_seconds", "Engine time per analysis in seconds");
    metrics::describe_histogram!("llm_security_confidence", "Confidence of each analysis");
    metrics::describe_counter!("llm_security_http_requests_total", "HTTP requests by method, route and status");
    metrics::describe_histogram!("llm_security_http_request_duration_seconds", "HTTP request latency in seconds");
    metrics::describe_counter!("llm_security_rate_limited_total", "Requests refused by the per-key rate limit");
    metrics::describe_counter!("llm_security_webhook_deliveries_total", "Webhook delivery attempts by outcome");
    metrics::describe_histogram!("llm_security_events_write_batch_size", "Events committed per store transaction");
    metrics::describe_counter!(
        "llm_security_auth_throttled_total",
        "Requests refused because their address failed authentication too often"
    );
    metrics::describe_counter!("llm_security_connections_refused_total", "Connections closed on accept, by reason");
}

/// Records one analysis.
pub fn record_analysis(endpoint: &'static str, a: &Analysis) {
    metrics::counter!("llm_security_requests_total", "endpoint" => endpoint, "verdict" => a.verdict().as_str())
        .increment(1);
    for t in a.threats() {
        metrics::counter!(
            "llm_security_threats_detected_total",
            "type" => t.kind.as_str(),
            "severity" => t.severity.as_str()
        )
        .increment(1);
    }
    metrics::histogram!("llm_security_analysis_duration_seconds", "endpoint" => endpoint)
        .record(a.analysis_time().as_secs_f64());
    metrics::histogram!("llm_security_confidence", "endpoint" => endpoint).record(a.confidence());
}

/// Middleware: counts and times every request by its route template.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("llm_security_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("llm_security_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    resp
}
