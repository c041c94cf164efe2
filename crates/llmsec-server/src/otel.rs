//! OpenTelemetry export (`[otel]`): traces and metrics over OTLP/HTTP
//! (binary protobuf) to a collector, with the OpenTelemetry GenAI semantic
//! conventions.
//!
//! - **`apply_guardrail` spans**: one per analysis (REST, GraphQL, gRPC and
//!   the gateway's scans), INTERNAL, named `apply_guardrail {target}`, with
//!   the component, target, verdict, policy, the strongest risk category
//!   and score, and one `gen_ai.guardrail.finding` event per threat. The
//!   guardrail attributes follow the GenAI security/guardrail proposal
//!   ([`GUARDRAIL_CONVENTIONS`]): it is not in a semantic-conventions
//!   release yet, so every name sits in a constant of this module.
//! - **Inference spans**: one per gateway call, CLIENT, named
//!   `{gen_ai.operation.name} {gen_ai.request.model}`, with the GenAI
//!   attributes of semantic conventions [`SEMCONV_VERSION`]
//!   (`gen_ai.provider.name`, `gen_ai.usage.input_tokens` / `output_tokens`,
//!   `gen_ai.response.finish_reasons`, `error.type`); the call's guardrail
//!   spans are its children.
//! - **Metrics**: `gen_ai.client.operation.duration` (s) and
//!   `gen_ai.client.token.usage` (`{token}`, by `gen_ai.token.type`) per
//!   gateway call, with the buckets the conventions advise, and
//!   `llmsec.guardrail.duration` (s) per analysis.
//! - **Context**: a W3C `traceparent` on the incoming request makes the
//!   spans children of the caller's span ([`propagate`]), so an
//!   application's trace shows the checks it asked for.
//!
//! Texts are not exported: a guardrail span carries the SHA-256 of the
//! analysed text, and the stored (redacted) text only when
//! `capture_content = true`. Header values for the collector (an
//! `Authorization` token) are read from environment variables named in
//! `headers_env`, never from the file.
//!
//! The SDK's batch processor and periodic reader run on their own threads
//! and send with a blocking HTTP client, so an unreachable collector costs
//! the request path nothing: spans wait in a bounded queue and are dropped
//! (and counted by the SDK) when it is full.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use llm_security::{ContextKind, Threat, Verdict};
use opentelemetry::context::Context;
use opentelemetry::metrics::{Histogram, MeterProvider as _};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use serde::{Deserialize, Serialize};
use sha2::Digest;

/// The semantic-conventions release whose GenAI inference attributes and
/// metrics the spans use.
pub const SEMCONV_VERSION: &str = "1.37.0";

/// Where the guardrail span's names come from.
pub const GUARDRAIL_CONVENTIONS: &str =
    "OpenTelemetry GenAI security conventions proposal (apply_guardrail span, gen_ai.guardrail.* attributes)";

/// `gen_ai.guardrail.component.name`: this engine.
pub const COMPONENT: &str = "llm-security";

// Attribute names, in one place so that a rename in the conventions is one line.
const OPERATION: &str = "gen_ai.operation.name";
const PROVIDER: &str = "gen_ai.provider.name";
const REQUEST_MODEL: &str = "gen_ai.request.model";
const INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
const OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
const FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
const CONVERSATION: &str = "gen_ai.conversation.id";
const TOKEN_TYPE: &str = "gen_ai.token.type";
const ERROR_TYPE: &str = "error.type";
const USER: &str = "user.id";
const G_COMPONENT: &str = "gen_ai.guardrail.component.name";
const G_TARGET: &str = "gen_ai.guardrail.target.type";
const G_TARGET_SUBTYPE: &str = "gen_ai.guardrail.target.subtype";
const G_TARGET_ID: &str = "gen_ai.guardrail.target.id";
const G_VERDICT: &str = "gen_ai.guardrail.verdict.type";
const G_REASON: &str = "gen_ai.guardrail.verdict.reason";
const G_POLICY: &str = "gen_ai.guardrail.security.policy.id";
const G_RULE: &str = "gen_ai.guardrail.security.policy.rule.id";
const G_CATEGORY: &str = "gen_ai.guardrail.security.risk.category";
const G_SEVERITY: &str = "gen_ai.guardrail.security.risk.severity";
const G_SCORE: &str = "gen_ai.guardrail.security.risk.score";
const G_MODIFIED: &str = "gen_ai.guardrail.security.content.modified";
const G_INPUT_HASH: &str = "gen_ai.guardrail.security.content.input.hash";
const G_INPUT_VALUE: &str = "gen_ai.guardrail.security.content.input.value";
/// The event carrying one threat.
pub const FINDING_EVENT: &str = "gen_ai.guardrail.finding";

/// `gen_ai.client.operation.duration` buckets (seconds), as the
/// conventions advise.
const DURATION_BUCKETS: [f64; 14] =
    [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];
/// `gen_ai.client.token.usage` buckets, as the conventions advise.
const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
    67108864.0,
];
/// Guardrail time buckets (seconds): analyses take microseconds to a few
/// milliseconds.
const GUARDRAIL_BUCKETS: [f64; 12] =
    [0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1];

/// The `[otel]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtelConfig {
    /// The collector's OTLP/HTTP base URL (`http://127.0.0.1:4318`):
    /// traces go to `{endpoint}/v1/traces`, metrics to `{endpoint}/v1/metrics`.
    pub endpoint: String,
    /// The resource's `service.name`.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Request headers for the collector, each value read from the named
    /// environment variable at start (`{ Authorization = "OTEL_AUTH" }`).
    #[serde(default)]
    pub headers_env: BTreeMap<String, String>,
    /// How long one export may take.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How long finished spans wait to be sent in a batch.
    #[serde(default = "default_span_delay_ms")]
    pub span_delay_ms: u64,
    /// Spans held while the collector is slow; more are dropped.
    #[serde(default = "default_max_queue")]
    pub max_queue: usize,
    /// How often metrics are exported.
    #[serde(default = "default_metrics_interval_ms")]
    pub metrics_interval_ms: u64,
    /// Exports the stored form of each analysed text (redacted, or nothing,
    /// as `[storage] input` says) on its guardrail span. Off: only its hash.
    #[serde(default)]
    pub capture_content: bool,
}

fn default_service_name() -> String {
    "llmsec".into()
}
fn default_timeout_ms() -> u64 {
    5_000
}
fn default_span_delay_ms() -> u64 {
    2_000
}
fn default_max_queue() -> usize {
    8_192
}
fn default_metrics_interval_ms() -> u64 {
    30_000
}

impl OtelConfig {
    /// A section exporting to `endpoint` with the defaults.
    pub fn new(endpoint: impl Into<String>) -> OtelConfig {
        OtelConfig {
            endpoint: endpoint.into(),
            service_name: default_service_name(),
            headers_env: BTreeMap::new(),
            timeout_ms: default_timeout_ms(),
            span_delay_ms: default_span_delay_ms(),
            max_queue: default_max_queue(),
            metrics_interval_ms: default_metrics_interval_ms(),
            capture_content: false,
        }
    }

    /// Checks the values; errors name the field.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |f: &str, m: &str| Err((format!("otel.{f}"), m.to_owned()));
        match url::Url::parse(&self.endpoint) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            Ok(_) => return bad("endpoint", "must be an http or https URL with a host"),
            Err(e) => return bad("endpoint", &e.to_string()),
        }
        if self.service_name.trim().is_empty() {
            return bad("service_name", "must not be empty");
        }
        for (field, v) in [
            ("timeout_ms", self.timeout_ms),
            ("span_delay_ms", self.span_delay_ms),
            ("max_queue", self.max_queue as u64),
            ("metrics_interval_ms", self.metrics_interval_ms),
        ] {
            if v == 0 {
                return bad(field, "must be positive");
            }
        }
        for name in self.headers_env.keys() {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return bad(&format!("headers_env.{name}"), "is not a valid header name");
            }
        }
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint.trim_end_matches('/'))
    }
}

/// Why the exporters could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    /// A `headers_env` variable is not set or not a valid header value.
    #[error("otel.headers_env.{header}: {message}")]
    Header {
        /// The header.
        header: String,
        /// Why.
        message: String,
    },
    /// The SDK refused the exporter.
    #[error("otel: {0}")]
    Build(String),
}

/// What a guardrail span says about one analysis.
#[derive(Debug)]
pub struct GuardrailFacts<'a> {
    /// What was analysed.
    pub target: Target,
    /// The verdict in force (after the policy).
    pub verdict: Verdict,
    /// The threats found.
    pub threats: &'a [Threat],
    /// The analysis's confidence.
    pub confidence: f64,
    /// Engine time.
    pub took: Duration,
    /// `rego` when a Rego policy decided, else `engine`.
    pub policy: &'static str,
    /// The policy's reasons.
    pub reasons: &'a [String],
    /// The tenant.
    pub tenant: &'a str,
    /// The end user.
    pub user_id: Option<&'a str>,
    /// The conversation.
    pub session_id: Option<&'a str>,
    /// The application.
    pub application_id: Option<&'a str>,
    /// The stored security event.
    pub event_id: &'a str,
    /// The analysed text (hashed, never sent).
    pub text: &'a str,
    /// The text as stored, sent when `capture_content` is on.
    pub stored: Option<&'a str>,
}

/// What a guardrail looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A prompt.
    Input,
    /// A completion.
    Output,
    /// Untrusted content of this kind.
    Context(ContextKind),
}

impl Target {
    /// `gen_ai.guardrail.target.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Input => "llm_input",
            Target::Output => "llm_output",
            Target::Context(ContextKind::ToolOutput) => "tool_call",
            Target::Context(ContextKind::Chat) => "message",
            Target::Context(_) => "knowledge_result",
        }
    }
}

/// `gen_ai.guardrail.verdict.type`: `allow` (nothing found), `warn`
/// (found, let through), `modify` (sanitized), `deny` (blocked).
pub fn verdict_type(verdict: Verdict, found: bool) -> &'static str {
    match verdict {
        Verdict::Allow if found => "warn",
        Verdict::Allow => "allow",
        Verdict::Sanitize => "modify",
        Verdict::Block => "deny",
    }
}

/// A guardrail span made when its analysis was evaluated, sent once its
/// event is stored.
#[derive(Debug)]
pub struct PendingSpan {
    parent: Context,
    name: String,
    start: SystemTime,
    end: SystemTime,
    attributes: Vec<KeyValue>,
    events: Vec<KeyValueEvent>,
    target: &'static str,
    verdict: &'static str,
    took: Duration,
}

#[derive(Debug)]
struct KeyValueEvent {
    attributes: Vec<KeyValue>,
}

/// What an inference span says about one gateway call.
#[derive(Debug, Clone, Default)]
pub struct CallFacts<'a> {
    /// The model asked for.
    pub model: Option<&'a str>,
    /// `success`, `blocked`, `error`, `client_closed`.
    pub status: &'a str,
    /// The refusal or error code.
    pub error: Option<&'a str>,
    /// The finish reason.
    pub finish_reason: Option<&'a str>,
    /// Input tokens.
    pub input_tokens: Option<u64>,
    /// Output tokens.
    pub output_tokens: Option<u64>,
    /// The end user.
    pub user_id: Option<&'a str>,
    /// The conversation.
    pub session_id: Option<&'a str>,
}

/// The exporters and instruments.
pub struct Otel {
    tracer: opentelemetry_sdk::trace::Tracer,
    traces: SdkTracerProvider,
    meters: SdkMeterProvider,
    operation_duration: Histogram<f64>,
    token_usage: Histogram<u64>,
    guardrail_duration: Histogram<f64>,
    capture_content: bool,
}

impl std::fmt::Debug for Otel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Otel").field("capture_content", &self.capture_content).finish_non_exhaustive()
    }
}

impl Otel {
    /// Builds the exporters for `config`; `env` reads the header variables.
    /// Must run outside an async context's worker (the blocking HTTP client
    /// owns a runtime): [`Otel::start_blocking`] does that.
    pub fn start(config: &OtelConfig, env: impl Fn(&str) -> Option<String>) -> Result<Otel, OtelError> {
        let mut headers = HashMap::new();
        for (header, var) in &config.headers_env {
            let value = env(var).ok_or_else(|| OtelError::Header {
                header: header.clone(),
                message: format!("the environment variable {var} is not set"),
            })?;
            if reqwest::header::HeaderValue::from_str(&value).is_err() {
                return Err(OtelError::Header {
                    header: header.clone(),
                    message: format!("the value of {var} is not a valid header value"),
                });
            }
            headers.insert(header.clone(), value);
        }
        let timeout = Duration::from_millis(config.timeout_ms);
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = || {
            reqwest::blocking::Client::builder()
                .timeout(timeout)
                .build()
                .map_err(|e| OtelError::Build(format!("HTTP client: {e}")))
        };
        let spans = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client()?)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(config.url("/v1/traces"))
            .with_timeout(timeout)
            .with_headers(headers.clone())
            .build()
            .map_err(|e| OtelError::Build(e.to_string()))?;
        let metrics = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_http_client(client()?)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(config.url("/v1/metrics"))
            .with_timeout(timeout)
            .with_headers(headers)
            .build()
            .map_err(|e| OtelError::Build(e.to_string()))?;
        let resource = Resource::builder()
            .with_service_name(config.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let batch = BatchConfigBuilder::default()
            .with_scheduled_delay(Duration::from_millis(config.span_delay_ms))
            .with_max_queue_size(config.max_queue)
            .build();
        let traces = SdkTracerProvider::builder()
            .with_span_processor(BatchSpanProcessor::builder(spans).with_batch_config(batch).build())
            .with_resource(resource.clone())
            .build();
        let reader =
            PeriodicReader::builder(metrics).with_interval(Duration::from_millis(config.metrics_interval_ms)).build();
        let meters = SdkMeterProvider::builder().with_reader(reader).with_resource(resource).build();
        let scope = InstrumentationScope::builder("llmsec")
            .with_version(env!("CARGO_PKG_VERSION"))
            .with_schema_url(format!("https://opentelemetry.io/schemas/{SEMCONV_VERSION}"))
            .build();
        let tracer = traces.tracer_with_scope(scope.clone());
        let meter = meters.meter_with_scope(scope);
        let operation_duration = meter
            .f64_histogram("gen_ai.client.operation.duration")
            .with_unit("s")
            .with_description("GenAI operation duration")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build();
        let token_usage = meter
            .u64_histogram("gen_ai.client.token.usage")
            .with_unit("{token}")
            .with_description("Number of input and output tokens used")
            .with_boundaries(TOKEN_BUCKETS.to_vec())
            .build();
        let guardrail_duration = meter
            .f64_histogram("llmsec.guardrail.duration")
            .with_unit("s")
            .with_description("Time the engine spent on one analysis")
            .with_boundaries(GUARDRAIL_BUCKETS.to_vec())
            .build();
        Ok(Otel {
            tracer,
            traces,
            meters,
            operation_duration,
            token_usage,
            guardrail_duration,
            capture_content: config.capture_content,
        })
    }

    /// [`Otel::start`] on a blocking thread, from async code.
    pub async fn start_blocking(config: OtelConfig) -> Result<Otel, OtelError> {
        tokio::task::spawn_blocking(move || Otel::start(&config, |v| std::env::var(v).ok()))
            .await
            .map_err(|e| OtelError::Build(format!("start task: {e}")))?
    }

    /// The guardrail span of one analysis, under the current context's span
    /// (the caller's `traceparent`, or the gateway call's span).
    pub fn guardrail(&self, f: &GuardrailFacts<'_>) -> PendingSpan {
        let end = SystemTime::now();
        let start = end.checked_sub(f.took).unwrap_or(end);
        let target = f.target.as_str();
        let verdict = verdict_type(f.verdict, !f.threats.is_empty());
        let mut a = vec![
            KeyValue::new(OPERATION, "apply_guardrail"),
            KeyValue::new(G_COMPONENT, COMPONENT),
            KeyValue::new(G_TARGET, target),
            KeyValue::new(G_VERDICT, verdict),
            KeyValue::new(G_POLICY, f.policy),
            KeyValue::new(G_SCORE, f.confidence),
            KeyValue::new(G_MODIFIED, f.verdict == Verdict::Sanitize),
            KeyValue::new(G_TARGET_ID, f.event_id.to_owned()),
            KeyValue::new(G_INPUT_HASH, hex::encode(sha2::Sha256::digest(f.text.as_bytes()))),
            KeyValue::new("llmsec.tenant", f.tenant.to_owned()),
            KeyValue::new("llmsec.threat_count", f.threats.len() as i64),
        ];
        if let Target::Context(kind) = f.target {
            a.push(KeyValue::new(G_TARGET_SUBTYPE, kind.as_str()));
        }
        // The strongest finding names the span's risk.
        let top = f.threats.iter().max_by(|x, y| {
            (x.severity, x.confidence).partial_cmp(&(y.severity, y.confidence)).unwrap_or(std::cmp::Ordering::Equal)
        });
        if let Some(t) = top {
            a.push(KeyValue::new(G_CATEGORY, t.kind.as_str()));
            a.push(KeyValue::new(G_SEVERITY, t.severity.as_str()));
        }
        if f.verdict != Verdict::Allow {
            let reason = if f.reasons.is_empty() {
                top.map(|t| format!("{}: {}", t.kind.as_str(), t.category)).unwrap_or_default()
            } else {
                f.reasons.join("; ")
            };
            if !reason.is_empty() {
                a.push(KeyValue::new(G_REASON, reason));
            }
        }
        if let Some(s) = f.session_id {
            a.push(KeyValue::new(CONVERSATION, s.to_owned()));
        }
        if let Some(u) = f.user_id {
            a.push(KeyValue::new(USER, u.to_owned()));
        }
        if let Some(app) = f.application_id {
            a.push(KeyValue::new("llmsec.application_id", app.to_owned()));
        }
        if self.capture_content
            && let Some(s) = f.stored
        {
            a.push(KeyValue::new(G_INPUT_VALUE, s.to_owned()));
        }
        let events = f
            .threats
            .iter()
            .map(|t| {
                let mut e = vec![
                    KeyValue::new(G_CATEGORY, t.kind.as_str()),
                    KeyValue::new(G_SEVERITY, t.severity.as_str()),
                    KeyValue::new(G_SCORE, t.confidence),
                    KeyValue::new(G_RULE, t.rule.clone().unwrap_or_else(|| t.scanner.clone())),
                    KeyValue::new("llmsec.threat.technique", t.category.clone()),
                    KeyValue::new("llmsec.threat.span.start", t.span.start as i64),
                    KeyValue::new("llmsec.threat.span.end", t.span.end as i64),
                ];
                if let Some(cwe) = t.metadata.get("cwe") {
                    e.push(KeyValue::new("llmsec.threat.cwe", cwe.clone()));
                }
                KeyValueEvent { attributes: e }
            })
            .collect();
        PendingSpan {
            parent: Context::current(),
            name: format!("apply_guardrail {target}"),
            start,
            end,
            attributes: a,
            events,
            target,
            verdict,
            took: f.took,
        }
    }

    /// Sends a guardrail span (its event is stored) and counts its time.
    pub fn emit(&self, p: PendingSpan) {
        self.guardrail_duration
            .record(p.took.as_secs_f64(), &[KeyValue::new(G_TARGET, p.target), KeyValue::new(G_VERDICT, p.verdict)]);
        let mut span = self
            .tracer
            .span_builder(p.name)
            .with_kind(SpanKind::Internal)
            .with_start_time(p.start)
            .with_attributes(p.attributes)
            .start_with_context(&self.tracer, &p.parent);
        for e in p.events {
            span.add_event_with_timestamp(FINDING_EVENT, p.end, e.attributes);
        }
        span.end_with_timestamp(p.end);
    }

    /// Starts the inference span of a gateway call (`operation` is
    /// `chat`, `text_completion` or `embeddings`; `provider` the wire
    /// format's provider) under `parent`; the returned context
    /// carries it: run the call's work with it so that its guardrail spans
    /// are children, and end it with [`Otel::finish_call`].
    pub fn start_call(&self, parent: &Context, operation: &'static str, provider: &'static str) -> Context {
        let span = self
            .tracer
            .span_builder(operation)
            .with_kind(SpanKind::Client)
            .with_attributes([KeyValue::new(OPERATION, operation), KeyValue::new(PROVIDER, provider)])
            .start_with_context(&self.tracer, parent);
        parent.with_span(span).with_value(CallOperation { operation, provider })
    }

    /// Ends a gateway call's span with what is known of the call, and
    /// records the GenAI client metrics.
    pub fn finish_call(&self, cx: &Context, f: &CallFacts<'_>, took: Duration) {
        let Some(op) = cx.get::<CallOperation>() else { return };
        let span = cx.span();
        let mut attrs = vec![KeyValue::new("llmsec.gateway.status", f.status.to_owned())];
        let mut common = vec![KeyValue::new(OPERATION, op.operation), KeyValue::new(PROVIDER, op.provider)];
        if let Some(m) = f.model {
            span.update_name(format!("{} {m}", op.operation));
            common.push(KeyValue::new(REQUEST_MODEL, m.to_owned()));
        }
        if let Some(t) = f.input_tokens {
            attrs.push(KeyValue::new(INPUT_TOKENS, t as i64));
        }
        if let Some(t) = f.output_tokens {
            attrs.push(KeyValue::new(OUTPUT_TOKENS, t as i64));
        }
        if let Some(r) = f.finish_reason {
            attrs.push(KeyValue::new(
                FINISH_REASONS,
                opentelemetry::Value::Array(opentelemetry::Array::String(vec![r.to_owned().into()])),
            ));
        }
        if let Some(s) = f.session_id {
            attrs.push(KeyValue::new(CONVERSATION, s.to_owned()));
        }
        if let Some(u) = f.user_id {
            attrs.push(KeyValue::new(USER, u.to_owned()));
        }
        if f.status != "success" {
            let kind = f.error.unwrap_or(f.status).to_owned();
            common.push(KeyValue::new(ERROR_TYPE, kind.clone()));
            span.set_status(Status::error(kind));
        }
        span.set_attributes(common.iter().cloned().chain(attrs));
        span.end();
        self.operation_duration.record(took.as_secs_f64(), &common);
        for (kind, n) in [("input", f.input_tokens), ("output", f.output_tokens)] {
            if let Some(n) = n {
                let mut a = common.clone();
                a.push(KeyValue::new(TOKEN_TYPE, kind));
                self.token_usage.record(n, &a);
            }
        }
    }

    /// Sends what is queued now (tests; shutdown does it too).
    pub fn flush(&self) {
        if let Err(e) = self.traces.force_flush() {
            tracing::warn!(error = %e, "otel: span flush failed");
        }
        if let Err(e) = self.meters.force_flush() {
            tracing::warn!(error = %e, "otel: metric flush failed");
        }
    }

    /// Sends what is queued and stops the exporters.
    pub fn shutdown(&self) {
        if let Err(e) = self.traces.shutdown() {
            tracing::warn!(error = %e, "otel: span exporter shutdown");
        }
        if let Err(e) = self.meters.shutdown() {
            tracing::warn!(error = %e, "otel: metric exporter shutdown");
        }
    }
}

/// The operation of the gateway call whose span a context carries.
#[derive(Debug, Clone, Copy)]
struct CallOperation {
    operation: &'static str,
    provider: &'static str,
}

/// The context a request's W3C `traceparent` (and `tracestate`) header
/// names, or the empty context.
pub fn extract(headers: &axum::http::HeaderMap) -> Context {
    struct Headers<'a>(&'a axum::http::HeaderMap);
    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }
    TraceContextPropagator::new().extract(&Headers(headers))
}

/// Middleware: runs the request in the context its `traceparent` names, so
/// the spans it makes are children of the caller's span.
pub async fn propagate(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use opentelemetry::context::FutureExt as _;
    if state.services.otel.is_none() || !req.headers().contains_key("traceparent") {
        return next.run(req).await;
    }
    let cx = extract(req.headers());
    next.run(req).with_context(cx).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_checked_naming_the_field() {
        assert!(OtelConfig::new("http://127.0.0.1:4318").validate().is_ok());
        assert_eq!(OtelConfig::new("ftp://x").validate().unwrap_err().0, "otel.endpoint");
        assert_eq!(OtelConfig::new("not a url").validate().unwrap_err().0, "otel.endpoint");
        let mut c = OtelConfig::new("http://127.0.0.1:4318");
        c.max_queue = 0;
        assert_eq!(c.validate().unwrap_err().0, "otel.max_queue");
        let mut c = OtelConfig::new("http://127.0.0.1:4318");
        c.headers_env.insert("bad header".into(), "X".into());
        assert_eq!(c.validate().unwrap_err().0, "otel.headers_env.bad header");
        let parsed: Result<OtelConfig, _> = toml::from_str("endpoint = \"http://x:1\"\nsample = 1");
        assert!(parsed.unwrap_err().to_string().contains("sample"));
    }

    #[test]
    fn verdicts_and_targets_map_to_the_conventions() {
        assert_eq!(verdict_type(Verdict::Allow, false), "allow");
        assert_eq!(verdict_type(Verdict::Allow, true), "warn");
        assert_eq!(verdict_type(Verdict::Sanitize, true), "modify");
        assert_eq!(verdict_type(Verdict::Block, true), "deny");
        assert_eq!(Target::Input.as_str(), "llm_input");
        assert_eq!(Target::Output.as_str(), "llm_output");
        assert_eq!(Target::Context(ContextKind::ToolOutput).as_str(), "tool_call");
        assert_eq!(Target::Context(ContextKind::Email).as_str(), "knowledge_result");
    }

    #[test]
    fn a_missing_header_variable_is_named() {
        let mut c = OtelConfig::new("http://127.0.0.1:4318");
        c.headers_env.insert("Authorization".into(), "LLMSEC_TEST_UNSET_OTEL_VAR".into());
        let e = Otel::start(&c, |_| None).unwrap_err().to_string();
        assert!(e.contains("otel.headers_env.Authorization") && e.contains("LLMSEC_TEST_UNSET_OTEL_VAR"), "{e}");
    }

    #[test]
    fn traceparent_is_read() {
        let mut h = axum::http::HeaderMap::new();
        h.insert("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".parse().unwrap());
        let cx = extract(&h);
        let sc = cx.span().span_context().clone();
        assert_eq!(sc.trace_id().to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(sc.span_id().to_string(), "b7ad6b7169203331");
        assert!(sc.is_remote());
        assert!(!extract(&axum::http::HeaderMap::new()).span().span_context().is_valid());
    }
}
