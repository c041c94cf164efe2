//! One Sentinel telemetry event per gateway call: model, usage (from the
//! upstream's `usage`), latency, status, finish reason, the subject, the
//! threats found, and for streams the scanning counters.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use llm_security::Threat;
use llm_sentinel::event::{EventData, EventMetadata, EventType, Source, TelemetryEvent};
use serde_json::{Value, json};

use crate::core::{self, AppState, Caller, Subject};

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
    /// Why tool calls broke the allow-list.
    pub tool_violations: Vec<String>,
    recorded: bool,
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
            tool_violations: Vec::new(),
            recorded: false,
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
    pub fn record(&mut self, state: &AppState, caller: &Arc<Caller>, outcome: Outcome) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        core::record(state, caller, self.event(outcome));
    }

    /// The telemetry event.
    pub fn event(&self, o: Outcome) -> TelemetryEvent {
        let usage = o.usage.unwrap_or(Value::Null);
        let tokens = |k: &str| usage.get(k).and_then(Value::as_u64);
        let mut extra = o.extra;
        extra.insert("gateway_route".into(), json!(self.route));
        if !self.threats.is_empty() {
            let mut kinds = self.threats.clone();
            kinds.sort();
            kinds.dedup();
            extra.insert("threats".into(), json!(kinds));
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
                prompt_tokens: tokens("prompt_tokens"),
                completion_tokens: tokens("completion_tokens"),
                total_tokens: tokens("total_tokens"),
                latency_ms: Some(self.started.elapsed().as_secs_f64() * 1000.0),
                cost: None,
                status: Some(o.status.to_owned()),
                finish_reason: o.finish_reason,
                logprobs: None,
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
    fn clip_keeps_char_boundaries() {
        assert_eq!(clip("héllo", 2), "h");
        assert_eq!(clip("abc", 10), "abc");
    }
}
