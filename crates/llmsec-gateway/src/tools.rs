//! The tool-call allow-list of a route (chat completions, messages): a call must name an
//! allowed tool, and its arguments must be JSON that satisfies the tool's
//! schema when one is configured. A violation blocks the completion or
//! removes the offending calls (`on_violation`).
//!
//! Streamed tool calls arrive as fragments (`delta.tool_calls[].function.
//! arguments` in pieces): [`Pending`] assembles them per choice, and they
//! are checked and sent whole when the choice finishes.

use std::collections::{BTreeMap, HashMap, HashSet};

use llmsec_server::config::{ConfigError, GatewayTools, ToolViolation};
use serde_json::{Value, json};

use crate::GatewayError;

/// The compiled allow-list.
pub(crate) struct ToolRules {
    allow: HashSet<String>,
    schemas: HashMap<String, jsonschema::Validator>,
    remove: bool,
}

impl std::fmt::Debug for ToolRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolRules").field("allow", &self.allow).field("remove", &self.remove).finish_non_exhaustive()
    }
}

/// What the allow-list made of one choice's calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Checked {
    /// Every call is allowed.
    Clean,
    /// Calls were dropped; why, per dropped call.
    Removed(Vec<String>),
    /// The completion is refused; why.
    Blocked(String),
}

impl ToolRules {
    /// Compiles the schemas; one that does not compile is named, under
    /// `at` (the config key of `t`: `gateway.tools`, or a route's).
    pub fn from_config(t: &GatewayTools, at: &str) -> Result<ToolRules, GatewayError> {
        let mut schemas = HashMap::new();
        for (name, schema) in &t.schemas {
            let v = jsonschema::validator_for(schema).map_err(|e| {
                GatewayError::Config(ConfigError::Invalid {
                    field: format!("{at}.schemas.{name}"),
                    message: e.to_string(),
                })
            })?;
            schemas.insert(name.clone(), v);
        }
        Ok(ToolRules {
            allow: t.allow.iter().cloned().collect(),
            schemas,
            remove: t.on_violation == ToolViolation::Remove,
        })
    }

    /// Why one call is not allowed, or `None`.
    fn violation(&self, call: &Value) -> Option<String> {
        let name = call.pointer("/function/name").and_then(Value::as_str).unwrap_or("");
        let raw = call.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("");
        self.named_violation(name, raw)
    }

    /// Why a call of `name` with the JSON text `raw` as arguments is not
    /// allowed, or `None`.
    pub fn named_violation(&self, name: &str, raw: &str) -> Option<String> {
        if !self.allow.contains(name) {
            return Some(format!("tool {name:?} is not allowed"));
        }
        let schema = self.schemas.get(name)?;
        let args: Value = match serde_json::from_str(raw) {
            Ok(v) => v,
            Err(_) => return Some(format!("the arguments of {name:?} are not JSON")),
        };
        schema.iter_errors(&args).next().map(|e| format!("the arguments of {name:?} break its schema: {e}"))
    }

    /// Checks `calls` (full tool-call objects), dropping the violating ones
    /// when the rule is to remove them; the rest keep their order and are
    /// renumbered (`index`) when they carry one.
    pub fn check(&self, calls: &mut Vec<Value>) -> Checked {
        let mut why = Vec::new();
        let mut kept = Vec::with_capacity(calls.len());
        for call in calls.drain(..) {
            match self.violation(&call) {
                None => kept.push(call),
                Some(reason) if !self.remove => return Checked::Blocked(reason),
                Some(reason) => why.push(reason),
            }
        }
        for (i, c) in kept.iter_mut().enumerate() {
            if c.get("index").is_some() {
                c["index"] = json!(i);
            }
        }
        *calls = kept;
        if why.is_empty() { Checked::Clean } else { Checked::Removed(why) }
    }

    /// Checks a non-streamed choice's `message.tool_calls` in place. When
    /// every call is removed, `tool_calls` goes and a `tool_calls` finish
    /// reason becomes `content_filter`.
    pub fn check_choice(&self, choice: &mut Value) -> Checked {
        let Some(mut calls) =
            choice.pointer_mut("/message/tool_calls").and_then(Value::as_array_mut).map(std::mem::take)
        else {
            return Checked::Clean;
        };
        let checked = self.check(&mut calls);
        finish_calls(choice, "message", calls);
        checked
    }
}

impl ToolRules {
    /// Checks the `tool_use` blocks of an Anthropic answer's `content` in
    /// place. When every `tool_use` block is removed, a `tool_use` stop
    /// reason becomes `end_turn`.
    pub fn check_anthropic(&self, answer: &mut Value) -> Checked {
        let Some(blocks) = answer.get_mut("content").and_then(Value::as_array_mut) else { return Checked::Clean };
        let mut why = Vec::new();
        let mut kept_tool = false;
        let mut kept = Vec::with_capacity(blocks.len());
        for b in blocks.drain(..) {
            if b.get("type").and_then(Value::as_str) != Some("tool_use") {
                kept.push(b);
                continue;
            }
            let name = b.get("name").and_then(Value::as_str).unwrap_or("");
            let input = b.get("input").map_or_else(|| "{}".to_owned(), Value::to_string);
            match self.named_violation(name, &input) {
                None => {
                    kept_tool = true;
                    kept.push(b);
                }
                Some(reason) if !self.remove => return Checked::Blocked(reason),
                Some(reason) => why.push(reason),
            }
        }
        *blocks = kept;
        if why.is_empty() {
            return Checked::Clean;
        }
        if !kept_tool && answer.get("stop_reason").and_then(Value::as_str) == Some("tool_use") {
            answer["stop_reason"] = json!("end_turn");
        }
        Checked::Removed(why)
    }

    /// Whether violations drop the call (rather than refuse the answer).
    pub fn removes(&self) -> bool {
        self.remove
    }
}

/// The names of an Anthropic answer's `tool_use` blocks.
pub(crate) fn anthropic_names(answer: &Value) -> Vec<String> {
    answer
        .get("content")
        .and_then(Value::as_array)
        .map(|blocks| {
            blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_use"))
                .filter_map(|b| b.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Puts `calls` back under `choice[holder].tool_calls`, or removes the key
/// (and a `tool_calls` finish reason) when none are left.
pub(crate) fn finish_calls(choice: &mut Value, holder: &str, calls: Vec<Value>) {
    if calls.is_empty() {
        if let Some(m) = choice.get_mut(holder).and_then(Value::as_object_mut) {
            m.remove("tool_calls");
        }
        if choice.get("finish_reason").and_then(Value::as_str) == Some("tool_calls") {
            choice["finish_reason"] = json!("content_filter");
        }
    } else {
        if !choice.get(holder).is_some_and(Value::is_object) {
            choice[holder] = json!({});
        }
        choice[holder]["tool_calls"] = Value::Array(calls);
    }
}

/// The names of the calls, for telemetry.
pub(crate) fn names(calls: &[Value]) -> Vec<String> {
    calls.iter().filter_map(|c| c.pointer("/function/name").and_then(Value::as_str).map(str::to_owned)).collect()
}

/// Streamed tool-call fragments of one choice, by their `index`.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    calls: BTreeMap<u64, Value>,
}

impl Pending {
    /// Adds the fragments of one delta: the first fragment of a call brings
    /// its `id`, `type` and name; later ones more of its arguments.
    pub fn push(&mut self, fragments: Vec<Value>) {
        for (pos, f) in fragments.into_iter().enumerate() {
            let idx = f.get("index").and_then(Value::as_u64).unwrap_or(pos as u64);
            let call = self.calls.entry(idx).or_insert_with(|| json!({"index": idx, "function": {"arguments": ""}}));
            let Value::Object(fields) = f else { continue };
            for (k, v) in fields {
                match k.as_str() {
                    "index" => {}
                    "function" => {
                        if let Some(name) = v.get("name").and_then(Value::as_str) {
                            let had = call.pointer("/function/name").and_then(Value::as_str).unwrap_or("").to_owned();
                            call["function"]["name"] = json!(format!("{had}{name}"));
                        }
                        if let Some(args) = v.get("arguments").and_then(Value::as_str) {
                            let had = call.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("");
                            call["function"]["arguments"] = json!(format!("{had}{args}"));
                        }
                    }
                    _ => call[k.as_str()] = v,
                }
            }
        }
    }

    /// True when no fragment arrived.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The assembled calls, in index order.
    pub fn take(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.calls).into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(remove: bool) -> ToolRules {
        let t = GatewayTools {
            allow: vec!["get_weather".into(), "search".into()],
            on_violation: if remove { ToolViolation::Remove } else { ToolViolation::Block },
            schemas: [(
                "get_weather".to_owned(),
                json!({"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}),
            )]
            .into_iter()
            .collect(),
        };
        ToolRules::from_config(&t, "gateway.tools").unwrap()
    }

    fn call(i: u64, name: &str, args: &str) -> Value {
        json!({"index": i, "id": format!("call_{i}"), "type": "function", "function": {"name": name, "arguments": args}})
    }

    #[test]
    fn names_and_schemas_are_checked() {
        let r = rules(false);
        let mut ok = vec![call(0, "get_weather", r#"{"city":"Paris"}"#), call(1, "search", "{}")];
        assert_eq!(r.check(&mut ok), Checked::Clean);
        assert_eq!(ok.len(), 2);
        let mut bad = vec![call(0, "delete_files", "{}")];
        assert!(matches!(r.check(&mut bad), Checked::Blocked(m) if m.contains("delete_files")));
        let mut bad = vec![call(0, "get_weather", r#"{"town":"Paris"}"#)];
        assert!(matches!(r.check(&mut bad), Checked::Blocked(m) if m.contains("schema")));
        let mut bad = vec![call(0, "get_weather", "{not json")];
        assert!(matches!(r.check(&mut bad), Checked::Blocked(m) if m.contains("not JSON")));
    }

    #[test]
    fn remove_drops_violations_and_renumbers() {
        let r = rules(true);
        let mut choice = json!({"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
            "tool_calls": [call(0, "delete_files", "{}"), call(1, "search", "{}")]}});
        assert!(matches!(r.check_choice(&mut choice), Checked::Removed(w) if w.len() == 1));
        let mut kept = call(1, "search", "{}");
        kept["index"] = json!(0);
        assert_eq!(choice["message"]["tool_calls"], json!([kept]));
        assert_eq!(choice["finish_reason"], "tool_calls");
        let mut choice = json!({"finish_reason": "tool_calls", "message": {"tool_calls": [call(0, "rm", "{}")]}});
        assert!(matches!(r.check_choice(&mut choice), Checked::Removed(_)));
        assert!(choice["message"].get("tool_calls").is_none());
        assert_eq!(choice["finish_reason"], "content_filter");
    }

    #[test]
    fn streamed_fragments_assemble_into_whole_calls() {
        let mut p = Pending::default();
        p.push(vec![json!({"index": 0, "id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": ""}})]);
        p.push(vec![json!({"index": 0, "function": {"arguments": "{\"ci"}})]);
        p.push(vec![
            json!({"index": 0, "function": {"arguments": "ty\":\"Paris\"}"}}),
            json!({"index": 1, "id": "call_1", "type": "function", "function": {"name": "search", "arguments": "{}"}}),
        ]);
        let calls = p.take();
        assert_eq!(calls, vec![call(0, "get_weather", r#"{"city":"Paris"}"#), call(1, "search", "{}")]);
        assert_eq!(names(&calls), ["get_weather", "search"]);
        assert!(p.is_empty());
    }

    #[test]
    fn anthropic_tool_use_blocks_are_checked() {
        let mut answer = json!({"stop_reason": "tool_use", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "t2", "name": "rm", "input": {}}
        ]});
        assert_eq!(anthropic_names(&answer), ["get_weather", "rm"]);
        assert!(matches!(rules(false).check_anthropic(&mut answer.clone()), Checked::Blocked(m) if m.contains("rm")));
        assert!(matches!(rules(true).check_anthropic(&mut answer), Checked::Removed(w) if w.len() == 1));
        assert_eq!(answer["content"].as_array().map(Vec::len), Some(2));
        assert_eq!(answer["stop_reason"], "tool_use");
        let mut bad = json!({"stop_reason": "tool_use", "content": [{"type": "tool_use", "name": "get_weather", "input": {"town": 1}}]});
        assert!(matches!(rules(true).check_anthropic(&mut bad), Checked::Removed(_)));
        assert_eq!(bad["stop_reason"], "end_turn");
    }

    #[test]
    fn a_schema_that_does_not_compile_is_named() {
        let t = GatewayTools {
            allow: vec!["x".into()],
            on_violation: ToolViolation::Block,
            schemas: [("x".to_owned(), json!({"type": 12}))].into_iter().collect(),
        };
        let e = ToolRules::from_config(&t, "gateway.routes.messages.tools").unwrap_err().to_string();
        assert!(e.contains("gateway.routes.messages.tools.schemas.x"), "{e}");
    }
}
