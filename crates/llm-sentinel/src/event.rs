//! The telemetry event: one LLM request, response or error as an
//! application or an observability pipeline reports it.
//!
//! ```json
//! {"event_id": "…", "timestamp": "2026-11-26T10:00:00Z", "event_type": "llm.response",
//!  "application_id": "chatbot-prod", "tenant_id": "acme-corp",
//!  "source": {"service": "llm-observatory", "host": "obs-worker-01"},
//!  "data": {"model": "gpt-4o", "prompt": "…", "completion": "…", "prompt_tokens": 150,
//!           "completion_tokens": 75, "total_tokens": 225, "latency_ms": 1234.56, "cost": 0.045,
//!           "status": "success", "finish_reason": "stop", "logprobs": [-0.1, -2.3]},
//!  "metadata": {"user_id": "user-123", "session_id": "sess-456", "ip": "203.0.113.7",
//!               "role": "customer", "tool_calls": ["search"]}}
//! ```

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// A request sent to a model.
    #[serde(rename = "llm.request")]
    Request,
    /// A model's response.
    #[serde(rename = "llm.response")]
    Response,
    /// A failed call.
    #[serde(rename = "llm.error")]
    Error,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Request => "llm.request",
            EventType::Response => "llm.response",
            EventType::Error => "llm.error",
        }
    }
}

/// Who sent the event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The reporting service.
    #[serde(default)]
    pub service: Option<String>,
    /// Its host.
    #[serde(default)]
    pub host: Option<String>,
    /// Its version.
    #[serde(default)]
    pub version: Option<String>,
}

/// The call's measurements and texts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventData {
    /// The model name.
    #[serde(default)]
    pub model: Option<String>,
    /// The prompt text, when the reporter shares it.
    #[serde(default)]
    pub prompt: Option<String>,
    /// The completion text.
    #[serde(default)]
    pub completion: Option<String>,
    /// Prompt tokens.
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    /// Completion tokens.
    #[serde(default)]
    pub completion_tokens: Option<u64>,
    /// All tokens.
    #[serde(default)]
    pub total_tokens: Option<u64>,
    /// Latency in milliseconds.
    #[serde(default)]
    pub latency_ms: Option<f64>,
    /// Cost in the account's currency.
    #[serde(default)]
    pub cost: Option<f64>,
    /// `success`, `error`, …
    #[serde(default)]
    pub status: Option<String>,
    /// `stop`, `length`, `content_filter`, …
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Log-probabilities of the completion's tokens (natural log, ≤ 0).
    #[serde(default)]
    pub logprobs: Option<Vec<f64>>,
    /// The error message of an `llm.error`.
    #[serde(default)]
    pub error: Option<String>,
}

/// Who made the call, and how.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// The end user.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The conversation.
    #[serde(default)]
    pub session_id: Option<String>,
    /// The client's IP address.
    #[serde(default)]
    pub ip: Option<String>,
    /// The user's role in the application.
    #[serde(default)]
    pub role: Option<String>,
    /// Tools the model called.
    #[serde(default)]
    pub tool_calls: Option<Vec<String>>,
    /// Anything else the reporter attaches (kept, not interpreted).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// One telemetry event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryEvent {
    /// Unique per event: ingestion is idempotent on it.
    pub event_id: String,
    /// When the call happened.
    pub timestamp: DateTime<Utc>,
    /// Request, response or error.
    pub event_type: EventType,
    /// The application.
    pub application_id: String,
    /// The tenant (ingestion sets it from the API key).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// The reporter.
    #[serde(default)]
    pub source: Option<Source>,
    /// Measurements and texts.
    #[serde(default)]
    pub data: EventData,
    /// Caller context.
    #[serde(default)]
    pub metadata: EventMetadata,
}

/// An event that breaks a rule serde cannot check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct EventError {
    /// The JSON path of the field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn err(field: &str, message: &str) -> EventError {
    EventError { field: field.to_owned(), message: message.to_owned() }
}

/// What an id (event, application, user, session, tool…) must be.
pub const ID_RULE: &str = "must be 1-256 bytes without control characters";

/// Whether `v` follows [`ID_RULE`]: ids are stored, indexed, and echoed
/// into logs and webhooks.
pub fn is_valid_id(v: &str) -> bool {
    !v.is_empty() && v.len() <= 256 && !v.chars().any(char::is_control)
}

fn check_id(field: &str, v: &str) -> Result<(), EventError> {
    if !is_valid_id(v) {
        return Err(err(field, ID_RULE));
    }
    Ok(())
}

fn check_opt_id(field: &str, v: &Option<String>) -> Result<(), EventError> {
    v.as_deref().map_or(Ok(()), |v| check_id(field, v))
}

fn check_num(field: &str, v: Option<f64>) -> Result<(), EventError> {
    match v {
        Some(x) if !x.is_finite() || x < 0.0 => Err(err(field, "must be a finite number ≥ 0")),
        _ => Ok(()),
    }
}

impl TelemetryEvent {
    /// Checks ids, numbers and logprobs.
    pub fn validate(&self) -> Result<(), EventError> {
        check_id("event_id", &self.event_id)?;
        check_id("application_id", &self.application_id)?;
        check_opt_id("tenant_id", &self.tenant_id)?;
        check_opt_id("data.model", &self.data.model)?;
        check_opt_id("metadata.user_id", &self.metadata.user_id)?;
        check_opt_id("metadata.session_id", &self.metadata.session_id)?;
        check_opt_id("metadata.ip", &self.metadata.ip)?;
        check_opt_id("metadata.role", &self.metadata.role)?;
        check_num("data.latency_ms", self.data.latency_ms)?;
        check_num("data.cost", self.data.cost)?;
        if let Some(lp) = &self.data.logprobs {
            if lp.len() > 100_000 {
                return Err(err("data.logprobs", "at most 100000 values"));
            }
            if let Some(i) = lp.iter().position(|x| !x.is_finite() || *x > 0.0) {
                return Err(err(&format!("data.logprobs[{i}]"), "must be a finite log-probability ≤ 0"));
            }
        }
        if let Some(tools) = &self.metadata.tool_calls
            && let Some(i) = tools.iter().position(|t| !is_valid_id(t))
        {
            return Err(err(&format!("metadata.tool_calls[{i}]"), ID_RULE));
        }
        Ok(())
    }

    /// Total tokens: `total_tokens`, or prompt + completion when only those are given.
    pub fn total_tokens(&self) -> Option<u64> {
        self.data.total_tokens.or(match (self.data.prompt_tokens, self.data.completion_tokens) {
            (None, None) => None,
            (p, c) => Some(p.unwrap_or(0) + c.unwrap_or(0)),
        })
    }

    /// Whether the call failed (`llm.error`, or a status other than success/ok).
    pub fn is_error(&self) -> bool {
        self.event_type == EventType::Error
            || self.data.status.as_deref().is_some_and(|s| !matches!(s, "success" | "ok" | "200"))
    }

    /// Unix milliseconds of the timestamp.
    pub fn millis(&self) -> i64 {
        self.timestamp.timestamp_millis()
    }

    /// The value of a dotted field path (`data.cost`, `metadata.user_id`,
    /// `event_type`, …), for rules and grouping.
    pub fn field(&self, path: &str) -> Option<FieldValue<'_>> {
        use FieldValue::*;
        let d = &self.data;
        let m = &self.metadata;
        Some(match path {
            "event_id" => Str(&self.event_id),
            "event_type" => Str(self.event_type.as_str()),
            "application_id" => Str(&self.application_id),
            "tenant_id" => Str(self.tenant_id.as_deref()?),
            "source.service" => Str(self.source.as_ref()?.service.as_deref()?),
            "source.host" => Str(self.source.as_ref()?.host.as_deref()?),
            "data.model" => Str(d.model.as_deref()?),
            "data.prompt" => Str(d.prompt.as_deref()?),
            "data.completion" => Str(d.completion.as_deref()?),
            "data.prompt_tokens" => Num(d.prompt_tokens? as f64),
            "data.completion_tokens" => Num(d.completion_tokens? as f64),
            "data.total_tokens" => Num(self.total_tokens()? as f64),
            "data.latency_ms" => Num(d.latency_ms?),
            "data.cost" => Num(d.cost?),
            "data.status" => Str(d.status.as_deref()?),
            "data.finish_reason" => Str(d.finish_reason.as_deref()?),
            "data.error" => Str(d.error.as_deref()?),
            "metadata.user_id" => Str(m.user_id.as_deref()?),
            "metadata.session_id" => Str(m.session_id.as_deref()?),
            "metadata.ip" => Str(m.ip.as_deref()?),
            "metadata.role" => Str(m.role.as_deref()?),
            "metadata.tool_call_count" => Num(m.tool_calls.as_ref().map_or(0, Vec::len) as f64),
            "is_error" => Bool(self.is_error()),
            other => {
                let key = other.strip_prefix("metadata.")?;
                match m.extra.get(key)? {
                    serde_json::Value::String(s) => Str(s),
                    serde_json::Value::Number(n) => Num(n.as_f64()?),
                    serde_json::Value::Bool(b) => Bool(*b),
                    _ => return None,
                }
            }
        })
    }
}

/// A field's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue<'a> {
    /// Text.
    Str(&'a str),
    /// A number.
    Num(f64),
    /// A flag.
    Bool(bool),
}

/// The fields [`TelemetryEvent::field`] knows besides `metadata.<extra>`.
pub const FIELDS: &[&str] = &[
    "event_id",
    "event_type",
    "application_id",
    "tenant_id",
    "source.service",
    "source.host",
    "data.model",
    "data.prompt",
    "data.completion",
    "data.prompt_tokens",
    "data.completion_tokens",
    "data.total_tokens",
    "data.latency_ms",
    "data.cost",
    "data.status",
    "data.finish_reason",
    "data.error",
    "metadata.user_id",
    "metadata.session_id",
    "metadata.ip",
    "metadata.role",
    "metadata.tool_call_count",
    "is_error",
];

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A response event for tests, at `ms` Unix milliseconds.
    pub fn event(id: &str, ms: i64) -> TelemetryEvent {
        TelemetryEvent {
            event_id: id.into(),
            timestamp: DateTime::from_timestamp_millis(ms).unwrap(),
            event_type: EventType::Response,
            application_id: "chatbot".into(),
            tenant_id: Some("acme".into()),
            source: None,
            data: EventData {
                model: Some("gpt-4o".into()),
                cost: Some(0.01),
                total_tokens: Some(100),
                ..Default::default()
            },
            metadata: EventMetadata { user_id: Some("u1".into()), ..Default::default() },
        }
    }

    #[test]
    fn a_full_llm_response_event_parses() {
        let json = r#"{"event_id": "e1", "timestamp": "2026-11-26T10:00:00Z", "event_type": "llm.response",
            "application_id": "chatbot-prod", "tenant_id": "acme-corp",
            "source": {"service": "llm-observatory", "host": "obs-worker-01"},
            "data": {"status": "success", "completion_tokens": 75, "total_tokens": 225, "latency_ms": 1234.56,
                     "cost": 0.045, "finish_reason": "stop"},
            "metadata": {"user_id": "user-123", "session_id": "sess-456", "internal": "true"}}"#;
        let e: TelemetryEvent = serde_json::from_str(json).unwrap();
        e.validate().unwrap();
        assert_eq!(e.field("data.cost"), Some(FieldValue::Num(0.045)));
        assert_eq!(e.field("metadata.internal"), Some(FieldValue::Str("true")));
        assert_eq!(e.field("data.model"), None);
        assert!(!e.is_error());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = serde_json::from_str::<TelemetryEvent>(
            r#"{"event_id": "e", "timestamp": "2026-11-26T10:00:00Z", "event_type": "llm.response", "application_id": "a", "data": {"cots": 1}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cots"), "{e}");
        let mut ev = event("e", 0);
        ev.data.cost = Some(f64::NAN);
        assert_eq!(ev.validate().unwrap_err().field, "data.cost");
        let mut ev = event("e", 0);
        ev.data.logprobs = Some(vec![-0.5, 0.2]);
        assert_eq!(ev.validate().unwrap_err().field, "data.logprobs[1]");
        let mut ev = event("", 0);
        ev.event_id.clear();
        assert_eq!(ev.validate().unwrap_err().field, "event_id");
    }

    #[test]
    fn total_tokens_falls_back_to_the_parts() {
        let mut e = event("e", 0);
        e.data.total_tokens = None;
        e.data.prompt_tokens = Some(10);
        e.data.completion_tokens = Some(5);
        assert_eq!(e.total_tokens(), Some(15));
    }
}
