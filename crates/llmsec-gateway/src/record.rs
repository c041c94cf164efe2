//! One Sentinel telemetry event per gateway call: model, usage (from the
//! upstream's `usage`, estimated from the texts where it sent none), cost
//! (from `gateway.prices`), latency, status, finish reason, the subject,
//! the threats found, and for streams the scanning counters.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use llm_security::Threat;
use llm_sentinel::event::{EventData, EventMetadata, EventType, Source, TelemetryEvent};
use serde_json::{Value, json};

use llmsec_server::config::ModelPrice;

use crate::core::{self, Caller, Subject};
use crate::proxy::Gateway;

/// Most bytes of prompt or completion text an event carries.
const TEXT_BYTES: usize = 64 * 1024;

/// How a call ended.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    /// `success`, `blocked`, `error`, `client_closed`.
    pub status: &'static str,
    /// The error code or upstream status, when not a success.
    pub error: Option<String>,
    pub finish_reason: Option<String>,
    /// The upstream's `usage` object.
    pub usage: Option<Value>,
    pub completion: Option<String>,
    /// Route-specific measurements (stream counters, time to first token).
    pub extra: BTreeMap<String, Value>,
}

/// What is known about a call while it runs; recorded once.
#[derive(Debug)]
pub(crate) struct Call {
    pub route: &'static str,
    pub started: Instant,
    pub model: Option<String>,
    pub subject: Subject,
    /// The last user prompt, for the event.
    pub prompt: Option<String>,
    /// `threat_type` of every threat found, input and output.
    pub threats: Vec<String>,
    /// The tools the completion called.
    pub tool_calls: Vec<String>,
    /// The tools the request offered.
    pub offered_tools: Vec<String>,
    /// Why tool calls broke the allow-list.
    pub tool_violations: Vec<String>,
    /// The upstream's `usage` (in OpenAI's terms) once its answer was read,
    /// for an event recorded after a refusal of that answer.
    pub usage: Option<Value>,
    /// Whether the upstream answered with a success status: then tokens
    /// were spent, and counts it did not send are estimated.
    pub answered: bool,
    /// Estimated tokens of the request's texts.
    pub prompt_estimate: u64,
    /// Estimated tokens of the completion's texts (every choice).
    pub completion_estimate: u64,
    /// The model's price, when `gateway.prices` has one.
    pub price: Option<ModelPrice>,
    /// The logprobs of choice 0's sampled tokens, when the answer had them.
    pub logprobs: Vec<f64>,
    /// Scan errors a `fail_open` route let texts through despite.
    pub scan_errors: Vec<String>,
    /// The call's inference span, when `[otel]` exports traces.
    pub trace: Option<opentelemetry::Context>,
    recorded: bool,
    /// What the call holds against its key's budgets, handed to the
    /// recorder with its event and released once its usage is stored.
    pub reservation: Option<core::Reservation>,
}

/// A call's token counts and whether any of them is an estimate.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Tokens {
    pub prompt: Option<u64>,
    pub completion: Option<u64>,
    pub total: Option<u64>,
    pub estimated: bool,
}

/// Cuts `s` to at most `max` bytes, on a character boundary.
pub(crate) fn clip(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

impl Call {
    pub fn new(route: &'static str, subject: Subject) -> Call {
        Call {
            route,
            started: Instant::now(),
            model: None,
            subject,
            prompt: None,
            threats: Vec::new(),
            tool_calls: Vec::new(),
            offered_tools: Vec::new(),
            tool_violations: Vec::new(),
            usage: None,
            answered: false,
            prompt_estimate: 0,
            completion_estimate: 0,
            price: None,
            logprobs: Vec::new(),
            scan_errors: Vec::new(),
            trace: None,
            recorded: false,
            reservation: None,
        }
    }

    /// The call's tokens: the upstream's counts, each missing one derived
    /// from the others (`total - prompt`) or, once the upstream answered,
    /// estimated from the texts.
    pub fn tokens(&self, usage: Option<&Value>) -> Tokens {
        let get = |k: &str| usage.and_then(|u| u.get(k)).and_then(Value::as_u64);
        let (mut prompt, mut completion, total) = (get("prompt_tokens"), get("completion_tokens"), get("total_tokens"));
        let mut estimated = false;
        if let Some(t) = total {
            if prompt.is_none() {
                prompt = completion.map(|c| t.saturating_sub(c));
            }
            if completion.is_none() {
                completion = prompt.map(|p| t.saturating_sub(p));
            }
        }
        if self.answered {
            if prompt.is_none() {
                prompt = Some(self.prompt_estimate);
                estimated = true;
            }
            if completion.is_none() {
                completion = Some(self.completion_estimate);
                estimated = true;
            }
        }
        let total = match (prompt, completion) {
            (Some(p), Some(c)) if estimated || total.is_none() => Some(p + c),
            _ => total,
        };
        Tokens { prompt, completion, total, estimated }
    }

    /// What the Rego policy is told of this call.
    pub fn policy_facts(&self) -> core::PolicyFacts {
        core::PolicyFacts {
            role: self.subject.role.clone(),
            model: self.model.clone(),
            tools: self.offered_tools.clone(),
            route: Some(self.route.to_owned()),
        }
    }

    /// Notes the threats of one analysis.
    pub fn saw(&mut self, threats: &[Threat]) {
        self.threats.extend(threats.iter().map(|t| t.kind.as_str().to_owned()));
    }

    /// Whether the event was recorded.
    pub fn is_recorded(&self) -> bool {
        self.recorded
    }

    /// Records the call's event (once; later calls do nothing).
    pub fn record(&mut self, gw: &Gateway, caller: &Arc<Caller>, outcome: Outcome) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        llmsec_server::metrics::record_gateway(self.route, self.model.as_deref(), outcome.status);
        let status = outcome.status;
        let event = self.event(outcome);
        if let (Some(cx), Some(otel)) = (&self.trace, gw.state.services.otel.as_ref()) {
            let facts = llmsec_server::otel::CallFacts {
                model: self.model.as_deref(),
                status,
                error: event.data.error.as_deref(),
                finish_reason: event.data.finish_reason.as_deref(),
                input_tokens: event.data.prompt_tokens,
                output_tokens: event.data.completion_tokens,
                user_id: self.subject.user_id.as_deref(),
                session_id: self.subject.session_id.as_deref(),
            };
            otel.finish_call(cx, &facts, self.started.elapsed());
        }
        core::record(&gw.state, gw.recorder.as_ref(), caller, event, self.reservation.take());
    }

    /// The telemetry event.
    pub fn event(&self, o: Outcome) -> TelemetryEvent {
        let tokens = self.tokens(o.usage.as_ref().or(self.usage.as_ref()));
        let cost = match (self.price, tokens.prompt, tokens.completion) {
            (Some(price), Some(p), Some(c)) => Some(price.cost(p, c)),
            _ => None,
        };
        let mut extra = o.extra;
        extra.insert("gateway_route".into(), json!(self.route));
        if tokens.estimated {
            extra.insert("usage_estimated".into(), json!(true));
        }
        if !self.threats.is_empty() {
            let mut kinds = self.threats.clone();
            kinds.sort();
            kinds.dedup();
            extra.insert("threats".into(), json!(kinds));
        }
        if !self.scan_errors.is_empty() {
            // Texts went through unscanned (`on_scan_error = "fail_open"`).
            extra.insert("scan_errors".into(), json!(self.scan_errors));
            extra.insert("failed_open".into(), json!(true));
        }
        if !self.tool_violations.is_empty() {
            extra.insert("tool_violations".into(), json!(self.tool_violations));
        }
        // Names that are not valid ids would make the event refused.
        let tools: Vec<String> =
            self.tool_calls.iter().filter(|t| llm_sentinel::event::is_valid_id(t)).cloned().collect();
        TelemetryEvent {
            event_id: uuid::Uuid::now_v7().to_string(),
            timestamp: chrono::Utc::now(),
            event_type: if o.status == "success" { EventType::Response } else { EventType::Error },
            application_id: self.subject.application_id.clone().unwrap_or_else(|| "gateway".to_owned()),
            tenant_id: None,
            source: Some(Source {
                service: Some("llmsec-gateway".into()),
                host: None,
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
            data: EventData {
                model: self.model.clone(),
                prompt: self.prompt.as_deref().map(|p| clip(p, TEXT_BYTES)),
                completion: o.completion.as_deref().map(|c| clip(c, TEXT_BYTES)),
                prompt_tokens: tokens.prompt,
                completion_tokens: tokens.completion,
                total_tokens: tokens.total,
                latency_ms: Some(self.started.elapsed().as_secs_f64() * 1000.0),
                cost,
                status: Some(o.status.to_owned()),
                finish_reason: o.finish_reason,
                logprobs: (!self.logprobs.is_empty()).then(|| self.logprobs.clone()),
                error: o.error,
            },
            metadata: EventMetadata {
                user_id: self.subject.user_id.clone(),
                session_id: self.subject.session_id.clone(),
                ip: self.subject.ip.clone(),
                role: None,
                tool_calls: (!tools.is_empty()).then_some(tools),
                extra,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_carries_usage_subject_and_status() {
        let subject = Subject { user_id: Some("u1".into()), session_id: Some("s1".into()), ..Subject::default() };
        let mut call = Call::new("chat.completions", subject);
        call.model = Some("gpt-4o-mini".into());
        call.threats = vec!["secret_leak".into(), "secret_leak".into()];
        let e = call.event(Outcome {
            status: "success",
            finish_reason: Some("stop".into()),
            usage: Some(json!({"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17})),
            ..Outcome::default()
        });
        e.validate().unwrap();
        assert_eq!(e.event_type, EventType::Response);
        assert_eq!(
            (e.data.prompt_tokens, e.data.completion_tokens, e.data.total_tokens),
            (Some(12), Some(5), Some(17))
        );
        assert_eq!(e.metadata.user_id.as_deref(), Some("u1"));
        assert_eq!(e.application_id, "gateway");
        assert_eq!(e.metadata.extra["threats"], json!(["secret_leak"]));
        let e = call.event(Outcome { status: "blocked", error: Some("prompt_blocked".into()), ..Outcome::default() });
        assert_eq!(e.event_type, EventType::Error);
        assert!(e.is_error());
    }

    #[test]
    fn missing_counts_are_derived_or_estimated_and_priced() {
        let mut call = Call::new("embeddings", Subject::default());
        call.price = Some(ModelPrice { input: 2.0, output: 8.0 });
        call.prompt_estimate = 40;
        call.completion_estimate = 10;
        // Not answered: nothing is made up.
        let e = call.event(Outcome { status: "error", ..Outcome::default() });
        assert_eq!((e.data.total_tokens, e.data.cost), (None, None));
        call.answered = true;
        // Embeddings send prompt and total: completion is their difference.
        let t = call.tokens(Some(&json!({"prompt_tokens": 3, "total_tokens": 3})));
        assert_eq!(t, Tokens { prompt: Some(3), completion: Some(0), total: Some(3), estimated: false });
        // No usage: both estimated, priced, and marked.
        let e = call.event(Outcome { status: "success", ..Outcome::default() });
        assert_eq!(
            (e.data.prompt_tokens, e.data.completion_tokens, e.data.total_tokens),
            (Some(40), Some(10), Some(50))
        );
        assert!((e.data.cost.unwrap() - (40.0 * 2.0 + 10.0 * 8.0) / 1e6).abs() < 1e-12);
        assert_eq!(e.metadata.extra["usage_estimated"], json!(true));
        // The upstream's counts win; an exact event is not marked.
        let e = call.event(Outcome {
            status: "success",
            usage: Some(json!({"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000, "total_tokens": 2_000_000})),
            ..Outcome::default()
        });
        assert_eq!(e.data.cost, Some(10.0));
        assert!(!e.metadata.extra.contains_key("usage_estimated"));
        // A usage seen before a refusal still counts.
        call.usage = Some(json!({"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}));
        let e = call.event(Outcome { status: "blocked", ..Outcome::default() });
        assert_eq!(e.data.total_tokens, Some(11));
    }

    #[test]
    fn clip_keeps_char_boundaries() {
        assert_eq!(clip("héllo", 2), "h");
        assert_eq!(clip("abc", 10), "abc");
    }
}
