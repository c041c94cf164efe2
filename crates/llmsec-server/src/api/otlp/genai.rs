//! Mapping spans that follow the OpenTelemetry GenAI semantic conventions
//! to telemetry events (the field table is in the parent module's docs).

use std::collections::{BTreeMap, HashSet};

use chrono::DateTime;
use llm_sentinel::event::{EventData, EventMetadata, EventType, Source, TelemetryEvent};
use serde_json::{Value as Json, json};

use super::proto::{AnyValue, ExportTraceServiceRequest, KeyValue, Span, Value};
use crate::service::Caller;
use crate::service::ServiceError;
use crate::service::telemetry::admit;

/// `Status.code` of a failed span.
const STATUS_CODE_ERROR: i32 = 2;

/// What became of a request's spans.
#[derive(Debug, Default)]
pub(super) struct Mapped {
    /// Admitted events, one per GenAI span (duplicates within the request removed).
    pub(super) events: Vec<TelemetryEvent>,
    /// GenAI spans taken (including in-request duplicates).
    pub(super) taken: usize,
    /// Spans without GenAI attributes.
    pub(super) skipped: usize,
    /// Why each rejected span was rejected.
    pub(super) rejected: Vec<String>,
}

/// Maps every span of `req` for `caller`.
pub(super) fn map_request(caller: &Caller, req: &ExportTraceServiceRequest) -> Mapped {
    let mut out = Mapped::default();
    let mut seen = HashSet::new();
    for (i, rs) in req.resource_spans.iter().enumerate() {
        let resource = Attrs(rs.resource.as_ref().map_or(&[][..], |r| &r.attributes));
        for (j, ss) in rs.scope_spans.iter().enumerate() {
            for (k, span) in ss.spans.iter().enumerate() {
                if !is_genai(span) {
                    out.skipped += 1;
                    continue;
                }
                let path = format!("resourceSpans[{i}].scopeSpans[{j}].spans[{k}]");
                let event = map_span(span, resource).and_then(|e| {
                    admit(caller, e, "").map_err(|err| match err {
                        ServiceError::Invalid { field: Some(f), message } => match source_of(&f) {
                            Some(attr) => format!("{f} (from {attr}): {message}"),
                            None => format!("{f}: {message}"),
                        },
                        other => other.to_string(),
                    })
                });
                match event {
                    Ok(e) => {
                        out.taken += 1;
                        if seen.insert(e.event_id.clone()) {
                            out.events.push(e);
                        }
                    }
                    Err(why) => out.rejected.push(format!("{path}: {why}")),
                }
            }
        }
    }
    out
}

/// The attribute an event field is mapped from, for error messages.
fn source_of(field: &str) -> Option<&'static str> {
    Some(match field {
        "application_id" => "resource.attributes.service.name",
        "data.model" => "gen_ai.response.model / gen_ai.request.model",
        "data.cost" => "gen_ai.usage.cost",
        "data.latency_ms" => "endTimeUnixNano - startTimeUnixNano",
        "metadata.user_id" => "user.id / enduser.id",
        "metadata.session_id" => "gen_ai.conversation.id / session.id",
        "metadata.ip" => "client.address",
        _ => return None,
    })
}

/// Whether the span reports a GenAI call. A guardrail's span
/// (`gen_ai.operation.name = apply_guardrail`, as `[otel]` exports them)
/// reports a check, not a model call: it is skipped, as other spans are.
fn is_genai(span: &Span) -> bool {
    let guardrail = matches!(
        Attrs(&span.attributes).get("gen_ai.operation.name"),
        Some(AnyValue { value: Some(Value::StringValue(op)) }) if op == "apply_guardrail"
    );
    !guardrail
        && (span.attributes.iter().any(|kv| kv.key.starts_with("gen_ai."))
            || span.events.iter().any(|e| e.name.starts_with("gen_ai.")))
}

/// A list of attributes.
#[derive(Clone, Copy)]
struct Attrs<'a>(&'a [KeyValue]);

impl<'a> Attrs<'a> {
    fn get(self, key: &str) -> Option<&'a AnyValue> {
        self.0.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref())
    }
}

/// A span's attributes, falling back to its resource's.
#[derive(Clone, Copy)]
struct Lookup<'a> {
    span: Attrs<'a>,
    resource: Attrs<'a>,
}

impl<'a> Lookup<'a> {
    fn get(self, key: &str) -> Option<&'a AnyValue> {
        self.span.get(key).or_else(|| self.resource.get(key))
    }

    /// The first of `keys` with a non-empty scalar value, as text.
    fn text(self, keys: &[&str]) -> Option<String> {
        keys.iter().find_map(|k| self.get(k).and_then(scalar_text))
    }

    /// The first of `keys` present, as a count.
    fn count(self, keys: &[&str]) -> Result<Option<u64>, String> {
        match keys.iter().find_map(|k| self.get(k).map(|v| (k, v))) {
            None => Ok(None),
            Some((k, v)) => count(v).map(Some).map_err(|m| format!("{k}: {m}")),
        }
    }
}

/// A scalar attribute as text (`None` when empty or not a scalar).
fn scalar_text(v: &AnyValue) -> Option<String> {
    let s = match v.value.as_ref()? {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        Value::BoolValue(b) => b.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

/// A token count: a non-negative integer (an int, a whole double or a decimal string).
fn count(v: &AnyValue) -> Result<u64, String> {
    let n = match v.value.as_ref() {
        Some(Value::IntValue(i)) => u64::try_from(*i).ok(),
        Some(Value::DoubleValue(d)) if d.is_finite() && *d >= 0.0 && d.fract() == 0.0 && *d < 1.8e19 => Some(*d as u64),
        Some(Value::StringValue(s)) => s.trim().parse().ok(),
        _ => None,
    };
    n.ok_or_else(|| "must be a non-negative integer".to_owned())
}

/// A number (cost): an int, a double or a decimal string.
fn number(v: &AnyValue) -> Result<f64, String> {
    match v.value.as_ref() {
        Some(Value::IntValue(i)) => Ok(*i as f64),
        Some(Value::DoubleValue(d)) => Ok(*d),
        Some(Value::StringValue(s)) => s.trim().parse().map_err(|_| "must be a number".to_owned()),
        _ => Err("must be a number".to_owned()),
    }
}

/// An attribute value as JSON (for structured messages).
fn to_json(v: &AnyValue) -> Json {
    match &v.value {
        None => Json::Null,
        Some(Value::StringValue(s)) => Json::String(s.clone()),
        Some(Value::BoolValue(b)) => Json::Bool(*b),
        Some(Value::IntValue(i)) => json!(i),
        Some(Value::DoubleValue(d)) => serde_json::Number::from_f64(*d).map_or(Json::Null, Json::Number),
        Some(Value::ArrayValue(a)) => Json::Array(a.values.iter().map(to_json).collect()),
        Some(Value::KvlistValue(l)) => Json::Object(
            l.values.iter().map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Json::Null, to_json))).collect(),
        ),
        Some(Value::BytesValue(b)) => {
            use base64::Engine as _;
            Json::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
    }
}

/// The text of a prompt or completion attribute: plain text, or messages
/// (`gen_ai.input.messages` style `[{role, parts: [{type: text, content}]}]`,
/// or OpenAI style `[{role, content}]`) as a JSON string or structured
/// value. System messages are left out: they are the application's own.
fn message_text(v: &AnyValue) -> Option<String> {
    let value = match &v.value {
        Some(Value::StringValue(s)) => {
            let t = s.trim_start();
            match serde_json::from_str::<Json>(s) {
                Ok(j @ (Json::Array(_) | Json::Object(_))) if t.starts_with(['[', '{']) => j,
                _ => Json::String(s.clone()),
            }
        }
        Some(_) => to_json(v),
        None => return None,
    };
    let mut out = Vec::new();
    collect_text(&value, &mut out);
    let text = out.join("\n");
    (!text.is_empty()).then_some(text)
}

fn collect_text(v: &Json, out: &mut Vec<String>) {
    match v {
        Json::String(s) if !s.is_empty() => out.push(s.clone()),
        Json::Array(items) => items.iter().for_each(|i| collect_text(i, out)),
        Json::Object(m) => {
            if m.get("role").and_then(Json::as_str) == Some("system") {
                return;
            }
            if let Some(Json::Array(parts)) = m.get("parts") {
                for p in parts {
                    let kind = p.get("type").and_then(Json::as_str).unwrap_or("text");
                    if kind == "text"
                        && let Some(c) = p.get("content").or_else(|| p.get("text")).and_then(Json::as_str)
                        && !c.is_empty()
                    {
                        out.push(c.to_owned());
                    }
                }
            } else if let Some(c) = m.get("content") {
                match c {
                    Json::String(s) if !s.is_empty() => out.push(s.clone()),
                    Json::Array(items) => {
                        for i in items {
                            match i {
                                Json::String(s) if !s.is_empty() => out.push(s.clone()),
                                Json::Object(o) => {
                                    if let Some(t) = o.get("text").and_then(Json::as_str).filter(|t| !t.is_empty()) {
                                        out.push(t.to_owned());
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            } else if let Some(t) = m.get("text").and_then(Json::as_str).filter(|t| !t.is_empty()) {
                out.push(t.to_owned());
            }
        }
        _ => {}
    }
}

/// Indexed attributes (`gen_ai.prompt.0.content`, `gen_ai.prompt.0.role`,
/// …, as OpenLLMetry writes them), in index order, system roles left out.
fn indexed_text(span: Attrs<'_>, prefix: &str) -> Option<String> {
    let mut parts: Vec<(u32, String)> = span
        .0
        .iter()
        .filter_map(|kv| {
            let n = kv.key.strip_prefix(prefix)?.strip_prefix('.')?.strip_suffix(".content")?.parse::<u32>().ok()?;
            let role = span.get(&format!("{prefix}.{n}.role")).and_then(scalar_text);
            if role.as_deref() == Some("system") {
                return None;
            }
            Some((n, kv.value.as_ref().and_then(scalar_text)?))
        })
        .collect();
    parts.sort_by_key(|(n, _)| *n);
    let text = parts.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join("\n");
    (!text.is_empty()).then_some(text)
}

/// The prompt (`side` = `prompt`, messages `input`) or completion (`completion`, `output`).
fn content(span: &Span, attrs: Attrs<'_>, side: &str, messages: &str) -> Option<String> {
    let key = format!("gen_ai.{side}");
    attrs
        .get(&format!("gen_ai.{messages}.messages"))
        .and_then(message_text)
        .or_else(|| attrs.get(&key).and_then(message_text))
        .or_else(|| {
            let event = format!("gen_ai.content.{side}");
            span.events
                .iter()
                .filter(|e| e.name == event)
                .find_map(|e| Attrs(&e.attributes).get(&key).and_then(message_text))
        })
        .or_else(|| indexed_text(attrs, &key))
}

fn nanos_to_time(field: &str, nanos: u64) -> Result<DateTime<chrono::Utc>, String> {
    let n = i64::try_from(nanos).map_err(|_| format!("{field}: {nanos} is past the year 2262"))?;
    Ok(DateTime::from_timestamp_nanos(n))
}

/// Maps one GenAI span to an event (not yet admitted).
fn map_span(span: &Span, resource: Attrs<'_>) -> Result<TelemetryEvent, String> {
    let Some(service) = resource.get("service.name").and_then(scalar_text) else {
        return Err("resource.attributes.service.name is required (it is the event's application_id)".into());
    };
    if span.trace_id.len() != 16 || span.trace_id.iter().all(|b| *b == 0) {
        return Err("traceId: must be 16 bytes (32 hex digits), not all zero".into());
    }
    if span.span_id.len() != 8 || span.span_id.iter().all(|b| *b == 0) {
        return Err("spanId: must be 8 bytes (16 hex digits), not all zero".into());
    }
    let (trace_id, span_id) = (hex::encode(&span.trace_id), hex::encode(&span.span_id));
    let timestamp = match (span.end_time_unix_nano, span.start_time_unix_nano) {
        (0, 0) => return Err("endTimeUnixNano: required (or startTimeUnixNano)".into()),
        (0, start) => nanos_to_time("startTimeUnixNano", start)?,
        (end, _) => nanos_to_time("endTimeUnixNano", end)?,
    };
    let latency_ms = (span.start_time_unix_nano > 0 && span.end_time_unix_nano >= span.start_time_unix_nano)
        .then(|| (span.end_time_unix_nano - span.start_time_unix_nano) as f64 / 1e6);

    let attrs = Attrs(&span.attributes);
    let at = Lookup { span: attrs, resource };
    let error_type = at.text(&["error.type"]);
    let status = span.status.as_ref();
    let failed = status.is_some_and(|s| s.code == STATUS_CODE_ERROR) || error_type.is_some();
    let prompt_tokens = at.count(&["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"])?;
    let completion_tokens = at.count(&["gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"])?;
    let total_tokens = at.count(&["gen_ai.usage.total_tokens"])?.or(match (prompt_tokens, completion_tokens) {
        (None, None) => None,
        (p, c) => Some(p.unwrap_or(0).saturating_add(c.unwrap_or(0))),
    });
    let cost = at.get("gen_ai.usage.cost").map(number).transpose().map_err(|m| format!("gen_ai.usage.cost: {m}"))?;
    let finish_reason = at.get("gen_ai.response.finish_reasons").and_then(|v| match &v.value {
        Some(Value::ArrayValue(a)) => a.values.iter().find_map(scalar_text),
        Some(Value::StringValue(s)) if s.trim_start().starts_with('[') => {
            serde_json::from_str::<Vec<String>>(s).ok()?.into_iter().find(|s| !s.is_empty())
        }
        _ => scalar_text(v),
    });
    let error = status.map(|s| s.message.clone()).filter(|m| !m.is_empty()).or_else(|| error_type.clone());

    let mut extra = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            extra.insert(k.to_owned(), Json::String(v));
        }
    };
    put("provider", at.text(&["gen_ai.provider.name", "gen_ai.system"]));
    put("operation", at.text(&["gen_ai.operation.name"]));
    put("server_address", at.text(&["server.address"]));
    put("error_type", error_type);
    put("trace_id", Some(trace_id.clone()));
    put("span_id", Some(span_id.clone()));
    put("span_name", Some(span.name.clone()).filter(|n| !n.is_empty()));

    Ok(TelemetryEvent {
        event_id: format!("{trace_id}-{span_id}"),
        timestamp,
        event_type: if failed { EventType::Error } else { EventType::Response },
        application_id: service.clone(),
        tenant_id: None,
        source: Some(Source {
            service: Some(service),
            host: resource.get("host.name").and_then(scalar_text),
            version: resource.get("service.version").and_then(scalar_text),
        }),
        data: EventData {
            model: at.text(&["gen_ai.response.model", "gen_ai.request.model"]),
            prompt: content(span, attrs, "prompt", "input"),
            completion: content(span, attrs, "completion", "output"),
            prompt_tokens,
            completion_tokens,
            total_tokens,
            latency_ms,
            cost,
            status: Some(if failed { "error" } else { "success" }.to_owned()),
            finish_reason,
            logprobs: None,
            error: if failed { error } else { None },
        },
        metadata: EventMetadata {
            user_id: at.text(&["user.id", "enduser.id"]),
            session_id: at.text(&["gen_ai.conversation.id", "session.id"]),
            ip: at.text(&["client.address"]),
            role: None,
            tool_calls: None,
            extra,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::super::proto::*;
    use super::*;
    use crate::error::{ApiError, parse_json};

    fn s(v: &str) -> Option<AnyValue> {
        Some(AnyValue { value: Some(Value::StringValue(v.into())) })
    }

    #[test]
    fn json_reads_the_otlp_mapping() {
        let body = br#"{"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "bot"}}]},
            "scopeSpans": [{"scope": {"name": "x"}, "spans": [{"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
            "name": "chat", "kind": 3, "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": 1544712661000000000,
            "attributes": [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
                           {"key": "gen_ai.usage.cost", "value": {"doubleValue": 0.5}},
                           {"key": "gen_ai.response.finish_reasons", "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}}}],
            "status": {"code": "STATUS_CODE_OK"}, "unknownField": 1}]}]}]}"#;
        let req: ExportTraceServiceRequest = parse_json(body).unwrap();
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(hex::encode(&span.trace_id), "5b8efff798038103d269b633813fc60c");
        assert_eq!(
            (span.kind, span.start_time_unix_nano, span.status.as_ref().unwrap().code),
            (3, 1544712660000000000, 1)
        );
        assert_eq!(span.attributes[0].value.as_ref().unwrap().value, Some(Value::IntValue(12)));
        let e = map_span(span, Attrs(&req.resource_spans[0].resource.as_ref().unwrap().attributes)).unwrap();
        assert_eq!(e.event_id, "5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174");
        assert_eq!((e.data.prompt_tokens, e.data.total_tokens, e.data.cost), (Some(12), Some(12), Some(0.5)));
        assert_eq!((e.data.latency_ms, e.data.finish_reason.as_deref()), (Some(1000.0), Some("stop")));

        let two = br#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"key": "k", "value": {"stringValue": "a", "intValue": 1}}]}]}]}]}"#;
        let err = parse_json::<ExportTraceServiceRequest>(two).unwrap_err().to_string();
        assert!(err.contains("at most one"), "{err}");
        let bad_id = br#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "not hex"}]}]}]}"#;
        match parse_json::<ExportTraceServiceRequest>(bad_id).unwrap_err() {
            ApiError::BadRequest { field, .. } => {
                assert_eq!(field.as_deref(), Some("resourceSpans[0].scopeSpans[0].spans[0].traceId"))
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn guardrail_spans_are_checks_not_model_calls() {
        let span = |op: &str| Span {
            attributes: vec![
                KeyValue { key: "gen_ai.operation.name".into(), value: s(op) },
                KeyValue { key: "gen_ai.guardrail.verdict.type".into(), value: s("deny") },
            ],
            ..Span::default()
        };
        assert!(!is_genai(&span("apply_guardrail")));
        assert!(is_genai(&span("chat")));
        assert!(!is_genai(&Span::default()));
    }

    #[test]
    fn message_text_reads_the_common_shapes() {
        let new = s(r#"[{"role": "system", "parts": [{"type": "text", "content": "be nice"}]},
            {"role": "user", "parts": [{"type": "text", "content": "hi"}, {"type": "blob", "content": "x"}]}]"#);
        assert_eq!(message_text(new.as_ref().unwrap()).as_deref(), Some("hi"));
        let openai = s(r#"[{"role": "user", "content": [{"type": "text", "text": "a"}, "b"]}]"#);
        assert_eq!(message_text(openai.as_ref().unwrap()).as_deref(), Some("a\nb"));
        let plain = s("[not json");
        assert_eq!(message_text(plain.as_ref().unwrap()).as_deref(), Some("[not json"));
        let attrs = vec![
            KeyValue { key: "gen_ai.prompt.1.content".into(), value: s("second") },
            KeyValue { key: "gen_ai.prompt.0.content".into(), value: s("first") },
            KeyValue { key: "gen_ai.prompt.2.role".into(), value: s("system") },
            KeyValue { key: "gen_ai.prompt.2.content".into(), value: s("sys") },
        ];
        assert_eq!(indexed_text(Attrs(&attrs), "gen_ai.prompt").as_deref(), Some("first\nsecond"));
    }
}
