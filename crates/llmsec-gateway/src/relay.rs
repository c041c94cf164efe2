//! Streamed completions: upstream SSE in, SSE out carrying only released
//! text. Each choice's text (`delta.content`, or `text` for completions)
//! goes through one [`OutputStream`], so every chunk is scanned once as it
//! arrives (plus the engine's bounded hold-back re-scan) and a secret split
//! across chunks leaves as its placeholder. Every other field of every
//! chunk passes through untouched.
//!
//! On a block the relay stops reading upstream (dropping the upstream
//! response closes that connection), sends a final chunk with
//! `finish_reason: "content_filter"`, an error event (`code:
//! "output_blocked"`) and `data: [DONE]`. When Sentinel blocks the call's
//! subject while it streams (its session, user, application, address, or
//! the whole tenant in a lockdown), the relay hears of it from the
//! enforcement cache's watch channel, stops reading upstream, drops the
//! text it held unreleased and ends with an error event (`code:
//! "session_terminated"`) and `data: [DONE]`. With `[quarantine]`, a
//! chat or completions stream whose check meets the hold rule sends
//! nothing more: the relay reads the rest of the upstream stream without
//! relaying it, holds the answer assembled from it (each choice's text,
//! finish reason and the usage; streamed tool calls are not kept) for
//! review, and ends with an error event (`code: "held_for_review"`, with
//! the item's `quarantine_id`) and `data: [DONE]`. In a stream, a finding
//! that does not block counts as verdict `sanitize` for the hold rule.
//! The relay lives inside the
//! response body: when the client disconnects, the body is dropped, and the
//! upstream request with it. The call's telemetry event is recorded when the
//! stream ends, or when it is dropped.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use llm_security::{OutputStream, StreamStats};
use llmsec_server::config::{GatewayPolicy, ScanErrors};
use serde_json::{Value, json};

use crate::core::{self, Caller};
use crate::error::OpenAiError;
use crate::logprobs;
use crate::proxy::{Gateway, Route};
use crate::record::{Call, Outcome, clip};
use crate::sse;
use crate::tools::{self, Checked};

/// Largest single upstream event.
const MAX_EVENT_BYTES: usize = 1 << 20;
/// Most completion text kept for the telemetry event.
const KEPT_COMPLETION_BYTES: usize = 64 * 1024;
/// Most text of all choices kept for an answer that may be held for
/// review (`[quarantine]`); text past it is not kept.
const KEPT_FOR_REVIEW_BYTES: usize = 32 << 20;

/// One choice's text and finish reason as the upstream sent them, kept
/// while `[quarantine]` may hold the answer.
#[derive(Default)]
struct Received {
    text: String,
    finish_reason: Option<String>,
}

/// Why the answer is held: the verdict and findings of the step that met
/// the hold rule.
struct Holding {
    verdict: llm_security::Verdict,
    threats: Vec<llm_security::Threat>,
}

struct Choice {
    stream: OutputStream,
    done: bool,
    /// Under `fail_open`: the text pushed and not yet released, as it came,
    /// so a scan error can release it unscanned. Kept only while every
    /// release is a prefix of it (nothing redacted yet).
    raw: Option<String>,
    /// Under `fail_open`, after a scan error: the choice's text passes
    /// unscanned.
    unscanned: bool,
}

/// The events of one Anthropic `tool_use` block, its name and input JSON.
struct HeldTool {
    index: u64,
    events: Vec<Value>,
    name: String,
    input: String,
}

/// One streamed call in flight.
pub(crate) struct Relay {
    gw: Arc<Gateway>,
    caller: Arc<Caller>,
    call: Call,
    route: Route,
    policy: GatewayPolicy,
    /// The route's `on_scan_error` is `fail_open`.
    fail_open: bool,
    upstream: Option<reqwest::Response>,
    parser: sse::Parser,
    /// Events parsed from the last upstream read, handled one per pump so
    /// that what the first ones release goes out before the rest is scanned.
    queued: VecDeque<sse::Event>,
    /// Output went out since the relay last let the connection flush.
    unflushed: bool,
    system_prompt: Option<String>,
    choices: BTreeMap<u64, Choice>,
    /// Streamed tool-call fragments held per choice until it finishes
    /// (when an allow-list is configured and the policy is not `monitor`).
    pending: BTreeMap<u64, tools::Pending>,
    /// An Anthropic `tool_use` block held until it ends (with an
    /// allow-list, not under `monitor`).
    held_tool: Option<HeldTool>,
    /// Anthropic content blocks dropped so far: later blocks' indices are
    /// lowered by this many, so clients see no gap.
    dropped_blocks: u64,
    /// Whether an Anthropic `tool_use` block was sent.
    sent_tool: bool,
    out: VecDeque<Bytes>,
    /// `id`, `object`, `created`, `model` of the upstream's chunks, for the
    /// chunks the relay writes itself.
    template: serde_json::Map<String, Value>,
    ended: bool,
    status: &'static str,
    error: Option<String>,
    finish_reason: Option<String>,
    usage: Option<Value>,
    completion: String,
    first_text: Option<Duration>,
    /// Counters of finished choices' streams.
    stats: StreamStats,
    /// Changes of Sentinel's enforcements; `None` once the cache is gone.
    enforcements: Option<tokio::sync::watch::Receiver<u64>>,
    /// Each choice's text as received, kept when `[quarantine]` is on.
    received: Option<BTreeMap<u64, Received>>,
    /// Bytes of `received`.
    received_bytes: usize,
    /// Set once the answer is held: nothing more is relayed.
    holding: Option<Holding>,
    /// The held answer is complete and waits to be stored.
    hold_ready: bool,
}

/// What the relay waited for: a read from upstream, or a change of the
/// enforcements (`false`: the cache is gone).
enum Wake {
    Read(reqwest::Result<Option<Bytes>>),
    Enforcements(bool),
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("route", &self.route).field("ended", &self.ended).finish_non_exhaustive()
    }
}

impl Relay {
    pub fn new(
        gw: Arc<Gateway>,
        caller: Arc<Caller>,
        call: Call,
        route: Route,
        policy: GatewayPolicy,
        upstream: reqwest::Response,
        system_prompt: Option<String>,
    ) -> Relay {
        Relay {
            fail_open: route.scan_errors(&gw.config) == ScanErrors::FailOpen,
            caller,
            call,
            route,
            policy,
            upstream: Some(upstream),
            parser: sse::Parser::new(MAX_EVENT_BYTES),
            queued: VecDeque::new(),
            unflushed: false,
            system_prompt,
            choices: BTreeMap::new(),
            pending: BTreeMap::new(),
            held_tool: None,
            dropped_blocks: 0,
            sent_tool: false,
            out: VecDeque::new(),
            template: serde_json::Map::new(),
            ended: false,
            status: "success",
            error: None,
            finish_reason: None,
            usage: None,
            completion: String::new(),
            first_text: None,
            stats: StreamStats::default(),
            enforcements: Some(gw.state.services.sentinel.enforcements.subscribe()),
            received: (gw.state.config.quarantine.enabled
                && route != Route::Messages
                && policy != GatewayPolicy::Monitor)
                .then(BTreeMap::new),
            received_bytes: 0,
            holding: None,
            hold_ready: false,
            gw,
        }
    }

    /// The SSE response whose body drives the relay.
    pub fn into_response(self) -> Response {
        let trace = self.call.trace.clone();
        let body = futures_util::stream::unfold(self, |mut r| async move {
            loop {
                if let Some(b) = r.out.pop_front() {
                    r.unflushed = true;
                    return Some((Ok::<Bytes, std::io::Error>(b), r));
                }
                if r.ended {
                    return None;
                }
                if r.hold_ready {
                    r.store_hold().await;
                    continue;
                }
                if r.unflushed && !r.queued.is_empty() {
                    // More scanning is ready to run: let the server write
                    // what was released first (it flushes when the body
                    // is not ready), so time to first text is one event's.
                    r.unflushed = false;
                    tokio::task::yield_now().await;
                }
                r.pump().await;
            }
        });
        // The relay runs in the call's trace context, as the call did.
        let body = match trace {
            Some(cx) => {
                use opentelemetry::context::FutureExt as _;
                Body::from_stream(body.with_context(cx))
            }
            None => Body::from_stream(body),
        };
        let mut resp = body.into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/event-stream"));
        h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache"));
        resp
    }

    /// Handles one queued event, or reads one piece from upstream and
    /// queues the events it completes.
    async fn pump(&mut self) {
        if let Some(ev) = self.queued.pop_front() {
            if !self.ended {
                self.event(ev);
            }
            return;
        }
        let Some(up) = self.upstream.as_mut() else {
            self.done();
            return;
        };
        let watch = self.enforcements.as_mut();
        let wake = tokio::select! {
            read = up.chunk() => Wake::Read(read),
            alive = async move {
                match watch {
                    Some(w) => w.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            } => Wake::Enforcements(alive),
        };
        let read = match wake {
            Wake::Read(read) => read,
            Wake::Enforcements(alive) => {
                if !alive {
                    self.enforcements = None;
                }
                self.recheck();
                return;
            }
        };
        match read {
            Ok(Some(bytes)) => match self.parser.push(&bytes) {
                Ok(events) => self.queued.extend(events),
                Err(e) => self.fail("upstream_error", e.to_string()),
            },
            Ok(None) => {
                if let Some(ev) = self.parser.finish() {
                    self.event(ev);
                }
                if !self.ended {
                    self.flush_all();
                    if !self.ended {
                        self.done();
                    }
                }
            }
            Err(e) if e.is_timeout() => self.fail("upstream_timeout", "the upstream stream timed out".into()),
            Err(_) => self.fail("upstream_unavailable", "the upstream stream broke off".into()),
        }
    }

    fn event(&mut self, ev: sse::Event) {
        if ev.data.trim() == "[DONE]" {
            self.flush_all();
            if !self.ended {
                self.done();
            }
            return;
        }
        let Ok(mut v) = serde_json::from_str::<Value>(&ev.data) else {
            // Text we cannot read is not released: it was not scanned.
            tracing::debug!(route = self.route.name(), "gateway: dropped an upstream event that is not JSON");
            return;
        };
        if self.route == Route::Messages {
            self.anthropic_event(v);
            return;
        }
        if v.get("choices").is_none() && v.get("error").is_some() {
            if self.holding.is_some() {
                // Nothing goes out once the answer is held.
                return;
            }
            // The provider's own error event: passed on.
            self.status = "error";
            self.error = v.pointer("/error/code").and_then(Value::as_str).map(str::to_owned);
            self.emit(&v);
            return;
        }
        for k in ["id", "object", "created", "model", "system_fingerprint"] {
            if let Some(x) = v.get(k)
                && !self.template.contains_key(k)
            {
                self.template.insert(k.into(), x.clone());
            }
        }
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(u.clone());
        }
        let route = self.route;
        if let Some(choices) = v.get_mut("choices").and_then(Value::as_array_mut) {
            for (pos, c) in choices.iter_mut().enumerate() {
                let idx = c.get("index").and_then(Value::as_u64).unwrap_or(pos as u64);
                self.receive(idx, c);
                if self.holding.is_some() {
                    continue;
                }
                if idx == 0 {
                    logprobs::collect(c, &mut self.call.logprobs);
                }
                if self.policy != GatewayPolicy::Monitor {
                    // Tokens spell text the relay may still hold back or redact.
                    logprobs::blank_tokens(c);
                }
                let slot = text_slot(route, c);
                let text = slot.as_ref().and_then(|s| s.as_str()).map(str::to_owned);
                let finish = c.get("finish_reason").and_then(Value::as_str).map(str::to_owned);
                self.hold_tool_calls(idx, c);
                match self.feed(idx, text.as_deref(), finish.is_some()) {
                    Fed::Blocked(code, message) => {
                        self.block(idx, code, message);
                        return;
                    }
                    Fed::Held(holding) => {
                        self.start_hold(holding);
                        continue;
                    }
                    Fed::Text(released) => set_text(route, c, released),
                    Fed::Unchanged => {}
                }
                if finish.is_some()
                    && let Err(why) = self.settle_tool_calls(idx, c)
                {
                    self.block(idx, "tool_call_blocked", why);
                    return;
                }
                if let Some(f) = finish
                    && idx == 0
                {
                    self.finish_reason = Some(f);
                }
            }
        }
        if self.holding.is_some() {
            return;
        }
        self.emit(&v);
    }

    /// Keeps a chunk's choice text and finish reason for an answer that
    /// may be held (when `[quarantine]` is on).
    fn receive(&mut self, idx: u64, c: &Value) {
        let Some(received) = self.received.as_mut() else { return };
        let r = received.entry(idx).or_default();
        if let Some(t) = text_slot(self.route, c).and_then(Value::as_str)
            && self.received_bytes + t.len() <= KEPT_FOR_REVIEW_BYTES
        {
            self.received_bytes += t.len();
            r.text.push_str(t);
        }
        if let Some(f) = c.get("finish_reason").and_then(Value::as_str) {
            r.finish_reason = Some(f.to_owned());
        }
    }

    /// The answer meets the hold rule: nothing more goes out; the rest of
    /// the upstream stream is read and kept, then held.
    fn start_hold(&mut self, holding: Holding) {
        if self.holding.is_none() {
            self.holding = Some(holding);
            self.pending.clear();
        }
    }

    /// Stores the held answer, assembled from what was received, and ends
    /// the stream with `held_for_review` naming the item.
    async fn store_hold(&mut self) {
        self.hold_ready = false;
        let Some(holding) = self.holding.take() else {
            self.done();
            return;
        };
        let route = self.route;
        let mut answer = Value::Object(self.template.clone());
        answer["object"] = json!(route.answer_kind());
        let choices: Vec<Value> = self
            .received
            .take()
            .unwrap_or_default()
            .into_iter()
            .map(|(i, r)| match route {
                Route::Chat => json!({
                    "index": i, "message": {"role": "assistant", "content": r.text}, "finish_reason": r.finish_reason
                }),
                _ => json!({"index": i, "text": r.text, "finish_reason": r.finish_reason}),
            })
            .collect();
        answer["choices"] = Value::Array(choices);
        if let Some(u) = &self.usage {
            answer["usage"] = u.clone();
        }
        let held = core::HeldAnswer {
            kind: route.answer_kind(),
            answer: answer.to_string(),
            verdict: holding.verdict,
            threats: &holding.threats,
            event_id: None,
        };
        let err = core::hold_answer(&self.gw.state, &self.caller, &self.call.subject, held).await;
        self.emit(&err.body());
        self.status = "blocked";
        self.error = Some(err.code);
        self.done();
    }

    /// One event of Anthropic's stream: `text_delta`s go through the
    /// block's stream; a block's end flushes it (as one more `text_delta`
    /// before `content_block_stop`); usage and stop reason are noted; every
    /// other event passes.
    fn anthropic_event(&mut self, mut v: Value) {
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("").to_owned();
        let idx = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        if let Some(part) = v.pointer("/delta/partial_json").and_then(Value::as_str) {
            self.call.completion_estimate += crate::tokens::estimate(part);
        }
        if self.hold_tool_use(&kind, idx, &v) {
            return;
        }
        match kind.as_str() {
            "message_start" => {
                if let Some(u) = v.pointer("/message/usage") {
                    self.merge_usage(u);
                }
            }
            "content_block_delta" if v.pointer("/delta/type").and_then(Value::as_str) == Some("text_delta") => {
                let text = v.pointer("/delta/text").and_then(Value::as_str).map(str::to_owned);
                match self.feed(idx, text.as_deref(), false) {
                    Fed::Blocked(code, message) => return self.block(idx, code, message),
                    Fed::Text(released) => v["delta"]["text"] = Value::String(released),
                    // Anthropic streams keep no text for review (`received` is off): never held.
                    Fed::Unchanged | Fed::Held(_) => {}
                }
            }
            "content_block_stop" if self.choices.get(&idx).is_some_and(|c| !c.done) => {
                match self.feed(idx, None, true) {
                    Fed::Blocked(code, message) => return self.block(idx, code, message),
                    Fed::Text(t) if !t.is_empty() => {
                        let delta = self.chunk(idx, Value::String(t), Value::Null);
                        self.emit(&delta);
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if v.pointer("/delta/stop_reason").and_then(Value::as_str) == Some("tool_use")
                    && self.dropped_blocks > 0
                    && !self.sent_tool
                {
                    // Every tool call was removed: the turn ends here.
                    v["delta"]["stop_reason"] = json!("end_turn");
                }
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.finish_reason = Some(r.to_owned());
                }
                if let Some(u) = v.get("usage") {
                    self.merge_usage(u);
                }
            }
            "error" => {
                self.status = "error";
                self.error = v.pointer("/error/type").and_then(Value::as_str).map(str::to_owned);
            }
            _ => {}
        }
        if kind == "message_stop" {
            self.flush_all();
            if self.ended {
                return;
            }
            self.emit(&v);
            self.done();
            return;
        }
        self.emit(&v);
    }

    /// Holds the events of an Anthropic `tool_use` block until it ends,
    /// then sends them, drops them or blocks, by the allow-list. True when
    /// `v` was taken.
    fn hold_tool_use(&mut self, kind: &str, idx: u64, v: &Value) -> bool {
        if kind == "content_block_start" && v.pointer("/content_block/type").and_then(Value::as_str) == Some("tool_use")
        {
            let name = v.pointer("/content_block/name").and_then(Value::as_str).unwrap_or("").to_owned();
            self.call.tool_calls.push(name.clone());
            if self.gw.tools(self.route).is_none() || self.policy == GatewayPolicy::Monitor {
                self.sent_tool = true;
                return false;
            }
            let start = v.pointer("/content_block/input").filter(|i| i.as_object().is_some_and(|o| !o.is_empty()));
            let input = start.map(Value::to_string).unwrap_or_default();
            self.held_tool = Some(HeldTool { index: idx, events: vec![v.clone()], name, input });
            return true;
        }
        let Some(held) = self.held_tool.as_mut().filter(|h| h.index == idx && v.get("index").is_some()) else {
            return false;
        };
        if let Some(part) = v.pointer("/delta/partial_json").and_then(Value::as_str) {
            held.input.push_str(part);
        }
        held.events.push(v.clone());
        if kind != "content_block_stop" {
            return true;
        }
        let Some(held) = self.held_tool.take() else { return true };
        let raw = if held.input.trim().is_empty() { "{}" } else { held.input.as_str() };
        let gw = self.gw.clone();
        let verdict =
            gw.tools(self.route).and_then(|r| r.named_violation(&held.name, raw).map(|why| (why, r.removes())));
        match verdict {
            None => {
                self.sent_tool = true;
                for e in &held.events {
                    self.emit(e);
                }
            }
            Some((why, true)) => {
                self.call.tool_violations.push(why);
                self.dropped_blocks += 1;
            }
            Some((why, false)) => {
                self.call.tool_violations.push(why.clone());
                self.block(idx, "tool_call_blocked", why);
            }
        }
        true
    }

    /// Adds Anthropic usage fields (`input_tokens` at the start,
    /// `output_tokens` at the end).
    fn merge_usage(&mut self, u: &Value) {
        let mut merged = self.usage.take().unwrap_or_else(|| json!({}));
        if let (Some(m), Some(new)) = (merged.as_object_mut(), u.as_object()) {
            for (k, val) in new {
                if !val.is_null() {
                    m.insert(k.clone(), val.clone());
                }
            }
        }
        self.usage = Some(merged);
    }

    /// Takes a chat chunk's tool-call fragments out of its delta, to be
    /// checked whole when the choice ends; without an allow-list (or under
    /// `monitor`) they pass, and their names are noted.
    fn hold_tool_calls(&mut self, idx: u64, c: &mut Value) {
        if self.route != Route::Chat {
            return;
        }
        let buffering = self.gw.tools(self.route).is_some() && self.policy != GatewayPolicy::Monitor;
        let Some(delta) = c.get_mut("delta").and_then(Value::as_object_mut) else { return };
        if let Some(frags) = delta.get("tool_calls").and_then(Value::as_array) {
            self.call.completion_estimate += frags.iter().map(|f| crate::tokens::estimate(&f.to_string())).sum::<u64>();
        }
        if !buffering {
            if let Some(frags) = delta.get("tool_calls").and_then(Value::as_array) {
                self.call.tool_calls.extend(tools::names(frags));
            }
            return;
        }
        if let Some(Value::Array(frags)) = delta.remove("tool_calls") {
            self.pending.entry(idx).or_default().push(frags);
        }
    }

    /// Checks the choice's assembled tool calls and puts the allowed ones
    /// in `c`'s delta; `Err` when the completion is refused.
    fn settle_tool_calls(&mut self, idx: u64, c: &mut Value) -> Result<(), String> {
        let Some(mut calls) = self.pending.get_mut(&idx).filter(|p| !p.is_empty()).map(tools::Pending::take) else {
            return Ok(());
        };
        self.call.tool_calls.extend(tools::names(&calls));
        let gw = self.gw.clone();
        if let Some(rules) = gw.tools(self.route) {
            match rules.check(&mut calls) {
                Checked::Clean => {}
                Checked::Removed(why) => self.call.tool_violations.extend(why),
                Checked::Blocked(why) => {
                    self.call.tool_violations.push(why.clone());
                    return Err(why);
                }
            }
        }
        tools::finish_calls(c, "delta", calls);
        Ok(())
    }

    /// Pushes one choice's text (and ends it when `last`).
    fn feed(&mut self, idx: u64, text: Option<&str>, last: bool) -> Fed {
        let monitor = self.policy == GatewayPolicy::Monitor;
        let keep_raw = self.fail_open && !monitor;
        let choice = self.choices.entry(idx).or_insert_with(|| {
            let mut opts = self.gw.config.stream;
            opts.never_block = self.policy == GatewayPolicy::Sanitize;
            Choice {
                stream: core::output_stream(
                    &self.gw.state,
                    self.system_prompt.as_deref(),
                    self.call.prompt.as_deref(),
                    opts,
                ),
                done: false,
                raw: keep_raw.then(String::new),
                unscanned: false,
            }
        });
        if choice.done {
            return Fed::Unchanged;
        }
        if let Some(t) = text.filter(|t| !t.is_empty()) {
            self.call.completion_estimate += crate::tokens::estimate(t);
        }
        if choice.unscanned {
            // Failed open earlier: the rest of the choice passes as it comes.
            choice.done = last;
            let t = text.unwrap_or("").to_owned();
            self.kept(idx, &t);
            return if text.is_none() { Fed::Unchanged } else { Fed::Text(t) };
        }
        let mut released = String::new();
        let mut threats = Vec::new();
        let mut blocked = false;
        let mut failed = None;
        let mut step = |r: Result<llm_security::StreamStep, llm_security::Error>| match r {
            Ok(s) => {
                released.push_str(&s.text);
                threats.extend(s.threats);
                blocked |= s.blocked;
            }
            Err(e) => failed = Some(e.to_string()),
        };
        if let Some(t) = text.filter(|t| !t.is_empty()) {
            if let Some(raw) = choice.raw.as_mut() {
                raw.push_str(t);
            }
            step(choice.stream.push(t));
        }
        if last {
            step(choice.stream.finish());
            choice.done = true;
            add(&mut self.stats, choice.stream.stats());
        }
        if let Some(raw) = choice.raw.as_mut() {
            if raw.starts_with(released.as_str()) {
                raw.drain(..released.len());
            } else {
                // A redaction changed the released text: the raw text can
                // no longer be lined up with it.
                choice.raw = None;
            }
        }
        self.call.saw(&threats);
        if let Some(e) = failed {
            if self.fail_open {
                self.call.scan_errors.push(format!("completion (choice {idx}): {e}"));
                if monitor {
                    choice.unscanned = true;
                    self.kept(idx, text.unwrap_or(""));
                    return Fed::Unchanged;
                }
                if let Some(held) = choice.raw.take() {
                    // What the stream held and this text go out unscanned.
                    choice.unscanned = true;
                    released.push_str(&held);
                    self.kept(idx, &released);
                    return Fed::Text(released);
                }
            }
            // Fail closed (or open after a redaction, which leaves the held
            // text unknown): text that could not be scanned is not released.
            return Fed::Blocked("scan_failed", format!("the completion could not be scanned: {e}"));
        }
        if monitor {
            // Monitor: findings are recorded, the text goes out as it came.
            self.kept(idx, text.unwrap_or(""));
            return Fed::Unchanged;
        }
        if self.received.is_some() {
            let verdict = if blocked {
                llm_security::Verdict::Block
            } else if threats.is_empty() {
                llm_security::Verdict::Allow
            } else {
                llm_security::Verdict::Sanitize
            };
            if core::holds(&self.gw.state, verdict, &threats) {
                return Fed::Held(Holding { verdict, threats });
            }
        }
        if blocked {
            let mut kinds: Vec<&str> = threats.iter().map(|t| t.kind.as_str()).collect();
            kinds.dedup();
            let message = format!("the completion (choice {idx}) was refused: {}", kinds.join(", "));
            return Fed::Blocked("output_blocked", message);
        }
        if text.is_none() && released.is_empty() {
            return Fed::Unchanged;
        }
        self.kept(idx, &released);
        Fed::Text(released)
    }

    /// Notes released text (choice 0 is kept for the event).
    fn kept(&mut self, idx: u64, text: &str) {
        if !text.is_empty() && self.first_text.is_none() {
            self.first_text = Some(self.call.started.elapsed());
        }
        if idx == 0 && self.completion.len() < KEPT_COMPLETION_BYTES {
            self.completion.push_str(text);
        }
    }

    /// Ends every open choice, sending what its stream (and its held tool
    /// calls) still hold.
    fn flush_all(&mut self) {
        if self.holding.is_some() {
            return;
        }
        let open: Vec<u64> = self.choices.iter().filter(|(_, c)| !c.done).map(|(i, _)| *i).collect();
        for idx in open {
            match self.feed(idx, None, true) {
                Fed::Blocked(code, message) => {
                    self.block(idx, code, message);
                    return;
                }
                Fed::Held(holding) => {
                    self.start_hold(holding);
                    return;
                }
                Fed::Text(t) if !t.is_empty() => {
                    let chunk = self.chunk(idx, Value::String(t), Value::Null);
                    self.emit(&chunk);
                }
                _ => {}
            }
        }
        let held: Vec<u64> = self.pending.iter().filter(|(_, p)| !p.is_empty()).map(|(i, _)| *i).collect();
        for idx in held {
            let mut chunk = self.chunk(idx, Value::Null, Value::Null);
            let settled = match chunk.get_mut("choices").and_then(|c| c.get_mut(0)) {
                Some(c) => self.settle_tool_calls(idx, c),
                None => Ok(()),
            };
            if let Err(why) = settled {
                self.block(idx, "tool_call_blocked", why);
                return;
            }
            self.emit(&chunk);
        }
    }

    /// A chunk of the relay's own for choice `idx` (for Anthropic, a
    /// `text_delta` of block `idx`).
    fn chunk(&self, idx: u64, text: Value, finish_reason: Value) -> Value {
        if self.route == Route::Messages {
            return json!({"type": "content_block_delta", "index": idx, "delta": {"type": "text_delta", "text": text}});
        }
        let mut v = Value::Object(self.template.clone());
        let choice = match self.route {
            Route::Chat => {
                let delta = if text.is_null() { json!({}) } else { json!({"content": text}) };
                json!({"index": idx, "delta": delta, "finish_reason": finish_reason})
            }
            _ => {
                json!({"index": idx, "text": if text.is_null() { json!("") } else { text }, "finish_reason": finish_reason})
            }
        };
        v["choices"] = json!([choice]);
        v
    }

    fn block(&mut self, idx: u64, code: &str, message: String) {
        self.upstream = None;
        let mut err = OpenAiError::output_blocked(message);
        err.code = code.to_owned();
        if self.route == Route::Messages {
            // Anthropic clients raise on an `error` event.
            self.emit(&err.anthropic_body());
        } else {
            let last = self.chunk(idx, Value::Null, json!("content_filter"));
            self.emit(&last);
            self.emit(&err.body());
        }
        self.status = if code == "scan_failed" { "error" } else { "blocked" };
        self.error = Some(err.code);
        self.finish_reason = Some("content_filter".into());
        self.done();
    }

    /// Ends the stream when Sentinel now blocks the call's subject (a rate
    /// limit lets a call in flight finish).
    fn recheck(&mut self) {
        let blocked = {
            let s = &self.call.subject;
            let mut entities: Vec<(&str, &str)> = vec![("tenant", self.caller.tenant.as_str())];
            entities.extend(s.user_id.as_deref().map(|u| ("user", u)));
            entities.extend(s.session_id.as_deref().map(|id| ("session", id)));
            entities.extend(s.application_id.as_deref().map(|a| ("application", a)));
            entities.extend(s.ip.as_deref().map(|a| ("ip", a)));
            let sentinel = &self.gw.state.services.sentinel;
            match sentinel.enforcements.check(&self.caller.tenant, &entities, sentinel.now()) {
                Some(llmsec_server::sentinel::Enforced::Block { reason, .. }) => Some(reason),
                _ => None,
            }
        };
        if let Some(reason) = blocked {
            self.terminate(reason);
        }
    }

    /// Ends the stream for a block of its subject: what was held back
    /// unreleased is dropped, the upstream let go, an error event sent.
    fn terminate(&mut self, reason: String) {
        if self.ended {
            return;
        }
        self.upstream = None;
        self.queued.clear();
        // A blocked subject gets nothing, held or not.
        self.holding = None;
        self.hold_ready = false;
        llmsec_server::metrics::stream_terminated();
        let err = OpenAiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "session_terminated",
            format!("terminated by Sentinel: {reason}"),
        );
        let body = if self.route == Route::Messages { err.anthropic_body() } else { err.body() };
        self.emit(&body);
        self.status = "blocked";
        self.error = Some(err.code);
        self.done();
    }

    fn fail(&mut self, code: &str, message: String) {
        self.upstream = None;
        self.flush_all();
        if self.ended {
            return;
        }
        let mut err = OpenAiError::upstream_unavailable(message);
        err.code = code.to_owned();
        let body = if self.route == Route::Messages { err.anthropic_body() } else { err.body() };
        self.emit(&body);
        self.status = "error";
        self.error = Some(code.to_owned());
        self.done();
    }

    /// Writes one event; Anthropic's carry their `type` as the event name.
    fn emit(&mut self, v: &Value) {
        if self.route == Route::Messages
            && self.dropped_blocks > 0
            && let Some(i) = v.get("index").and_then(Value::as_u64)
        {
            let mut shifted = v.clone();
            shifted["index"] = json!(i.saturating_sub(self.dropped_blocks));
            return self.emit_frame(&shifted);
        }
        self.emit_frame(v);
    }

    fn emit_frame(&mut self, v: &Value) {
        let frame = match (self.route, v.get("type").and_then(Value::as_str)) {
            (Route::Messages, Some(name)) => format!("event: {name}\ndata: {v}\n\n"),
            _ => format!("data: {v}\n\n"),
        };
        self.out.push_back(Bytes::from(frame));
    }

    /// `data: [DONE]` (OpenAI's streams), the upstream let go, the event recorded.
    fn done(&mut self) {
        self.upstream = None;
        if self.holding.is_some() {
            // The held answer is stored first (`store_hold`), then the stream ends.
            self.hold_ready = true;
            self.queued.clear();
            return;
        }
        if self.route != Route::Messages {
            self.out.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
        }
        self.ended = true;
        self.record();
    }

    fn record(&mut self) {
        if self.call.is_recorded() {
            return;
        }
        for c in self.choices.values().filter(|c| !c.done) {
            add(&mut self.stats, c.stream.stats());
        }
        let mut extra = BTreeMap::new();
        extra.insert("stream".into(), json!(true));
        extra.insert("stream_chunks".into(), json!(self.stats.chunks));
        extra.insert("stream_scans".into(), json!(self.stats.scans));
        extra.insert("stream_bytes_in".into(), json!(self.stats.bytes_in));
        extra.insert("stream_bytes_scanned".into(), json!(self.stats.bytes_scanned));
        if let Some(t) = self.first_text {
            extra.insert("time_to_first_text_ms".into(), json!(t.as_secs_f64() * 1000.0));
        }
        let outcome = Outcome {
            status: self.status,
            error: self.error.clone(),
            finish_reason: self.finish_reason.clone(),
            usage: self.usage.as_ref().map(crate::proxy::openai_usage),
            completion: (!self.completion.is_empty()).then(|| clip(&self.completion, KEPT_COMPLETION_BYTES)),
            extra,
        };
        let (gw, caller) = (self.gw.clone(), self.caller.clone());
        self.call.record(&gw, &caller, outcome);
    }
}

impl Drop for Relay {
    /// A client that went away mid-stream: the upstream response is dropped
    /// with the relay (closing that connection), and the call recorded.
    fn drop(&mut self) {
        if !self.ended {
            self.status = "client_closed";
            self.upstream = None;
            self.record();
        }
    }
}

enum Fed {
    Unchanged,
    Text(String),
    /// The error code (`output_blocked`, `scan_failed`) and why.
    Blocked(&'static str, String),
    /// `[quarantine]` holds the answer.
    Held(Holding),
}

fn add(total: &mut StreamStats, s: StreamStats) {
    total.chunks += s.chunks;
    total.scans += s.scans;
    total.bytes_in += s.bytes_in;
    total.bytes_scanned += s.bytes_scanned;
    total.bytes_out += s.bytes_out;
}

/// The choice's text: `delta.content` (chat) or `text` (completions).
fn text_slot(route: Route, c: &Value) -> Option<&Value> {
    match route {
        Route::Chat => c.get("delta").and_then(|d| d.get("content")),
        _ => c.get("text"),
    }
    .filter(|v| !v.is_null())
}

/// Sets the choice's text, making `delta` when the chunk has none.
fn set_text(route: Route, c: &mut Value, text: String) {
    match route {
        Route::Chat => {
            if !c.get("delta").is_some_and(Value::is_object) {
                c["delta"] = json!({});
            }
            c["delta"]["content"] = Value::String(text);
        }
        _ => c["text"] = Value::String(text),
    }
}
