//! The `behavioral` detector: per-entity baselines of how an entity (a user
//! by default) behaves, and findings when it behaves otherwise.
//!
//! - `model_switching` (what the example plugin in `examples/plugins/`
//!   does, built in): over the entity's last `window_size` requests, flags more distinct
//!   models than `threshold × window_size`.
//! - `tool_mix`: learns the entity's tool-call distribution
//!   (`metadata.tool_calls`) over its first `min_samples` requests that
//!   report tool calls, then flags a tool it never called before, or a
//!   Jensen–Shannon divergence (base 2, so in `[0, 1]`) between the mix of its
//!   last `window_size` such requests and the baseline above `threshold`.
//! - `request_rate`: counts the entity's requests per `bucket` and flags a
//!   completed bucket with more than `threshold ×` the mean of its last
//!   `window_size` buckets (empty ones count as 0; the mean is floored at one
//!   request per bucket so a sparse entity's single request is no burst),
//!   once `min_samples` buckets were seen. An entity idle for `window_size`
//!   buckets relearns.
//! - `new_ip` / `new_role`: after `min_samples` requests carrying the field,
//!   flags an IP (`metadata.ip`) or role (`metadata.role`) the entity never
//!   used.
//!
//! Ratio findings (switching, divergence) are reported at most once per
//! `window_size` requests per entity while the condition lasts. Models,
//! tools, IPs and roles are remembered as 64-bit SipHash fingerprints, not
//! strings, so nothing is allocated per event; a collision (odds about
//! n²/2⁶⁵) could only hide one new value. At most `max_values` are
//! remembered per entity: past that, a value not remembered is reported each
//! time it is seen.
//!
//! Memory per entity, besides its key and the LRU node (≈ 100 bytes):
//! `model_switching` ≈ 32 bytes × `window_size` (3.2 KB at the default 100);
//! `tool_mix` 16 bytes per known tool (≤ 16 × `max_values`, 4 KiB) plus
//! 16 bytes per windowed request and 2 per call in it (at most 64 calls
//! counted per request); `request_rate` 4 bytes × `window_size` plus the
//! entity's latest application and tenant ids; `new_ip`/`new_role`
//! 8 bytes × `max_values` (2 KiB). At most `max_entities` entities are
//! held; the least recently seen is dropped first.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hasher};

use serde::{Deserialize, Serialize};

use super::statistical::{num, timestamp, with_entity};
use crate::detector::{
    Detector, DetectorKind, Entity, EntityKind, EntityMap, Finding, Millis, Severity, format_duration, score_of,
};
use crate::event::TelemetryEvent;

/// The score of a value never seen before (not a matter of degree).
const NOVELTY_SCORE: f64 = 0.75;
/// Tool calls counted per request, at most.
const MAX_CALLS_PER_EVENT: usize = 64;
/// Largest accepted `window_size`.
const MAX_WINDOW: usize = 100_000;

/// What the detector watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BehaviorKind {
    /// Many distinct models in a short run of requests (the default, so that
    /// a config of only `threshold` and `window_size`, as a model-switching
    /// plugin takes, means this).
    #[default]
    ModelSwitching,
    /// New tools, or a tool mix unlike the entity's usual one.
    ToolMix,
    /// Bursts of requests.
    RequestRate,
    /// A client IP the entity never used.
    NewIp,
    /// A role the entity never had.
    NewRole,
}

impl BehaviorKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            BehaviorKind::ModelSwitching => "model_switching",
            BehaviorKind::ToolMix => "tool_mix",
            BehaviorKind::RequestRate => "request_rate",
            BehaviorKind::NewIp => "new_ip",
            BehaviorKind::NewRole => "new_role",
        }
    }

    /// The kind's threshold rule; `None` when it takes no threshold.
    fn threshold(self) -> Option<ThresholdRule> {
        let unit = ThresholdRule { default: 0.5, range: "in (0, 1]", ok: |t| t > 0.0 && t <= 1.0 };
        match self {
            BehaviorKind::ModelSwitching => Some(unit),
            BehaviorKind::ToolMix => Some(ThresholdRule { default: 0.3, ..unit }),
            BehaviorKind::RequestRate => {
                Some(ThresholdRule { default: 5.0, range: "a finite number > 0", ok: |t| t.is_finite() && t > 0.0 })
            }
            BehaviorKind::NewIp | BehaviorKind::NewRole => None,
        }
    }
}

/// A kind's default threshold and the range a configured one must lie in.
#[derive(Debug, Clone, Copy)]
struct ThresholdRule {
    default: f64,
    range: &'static str,
    ok: fn(f64) -> bool,
}

/// The `behavioral` detector's `config:` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BehavioralConfig {
    /// What to watch (default `model_switching`).
    #[serde(default)]
    pub kind: BehaviorKind,
    /// Whose behaviour (default `user`).
    #[serde(default = "default_entity")]
    pub entity: EntityKind,
    /// `model_switching`: distinct models per request, in (0, 1] (default
    /// 0.5); `tool_mix`: Jensen–Shannon divergence, in (0, 1] (default 0.3);
    /// `request_rate`: multiple of the mean bucket (default 5). None for
    /// `new_ip` and `new_role`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Requests (`request_rate`: buckets) in the recent window (default 100).
    #[serde(default = "default_window_size")]
    pub window_size: usize,
    /// Requests (`request_rate`: buckets) learned before anything is flagged (default 20).
    #[serde(default = "default_min_samples")]
    pub min_samples: usize,
    /// Entities tracked at most (default 10 000).
    #[serde(default = "default_max_entities")]
    pub max_entities: usize,
    /// Distinct tools, IPs or roles remembered per entity (default 256).
    #[serde(default = "default_max_values")]
    pub max_values: usize,
    /// `request_rate`'s bucket (default `1m`).
    #[serde(default = "default_bucket", with = "crate::detector::duration_str")]
    pub bucket: Millis,
}

fn default_entity() -> EntityKind {
    EntityKind::User
}

fn default_window_size() -> usize {
    100
}

fn default_min_samples() -> usize {
    20
}

fn default_max_entities() -> usize {
    10_000
}

fn default_max_values() -> usize {
    256
}

fn default_bucket() -> Millis {
    60_000
}

impl Default for BehavioralConfig {
    fn default() -> BehavioralConfig {
        BehavioralConfig {
            kind: BehaviorKind::default(),
            entity: default_entity(),
            threshold: None,
            window_size: default_window_size(),
            min_samples: default_min_samples(),
            max_entities: default_max_entities(),
            max_values: default_max_values(),
            bucket: default_bucket(),
        }
    }
}

/// The checked configuration.
#[derive(Debug, Clone)]
struct Params {
    severity: Severity,
    kind: BehaviorKind,
    entity: EntityKind,
    /// The configured or default threshold (unused by `new_ip`/`new_role`).
    threshold: f64,
    window_size: usize,
    min_samples: usize,
    max_values: usize,
    bucket: Millis,
}

/// A 64-bit fingerprint of a model, tool, IP or role.
fn fingerprint(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(s.as_bytes());
    h.finish()
}

/// The models of the entity's last `window_size` requests.
#[derive(Debug, Default)]
struct Models {
    /// Per request: time, slot in `slots`, and whether its model differs
    /// from the request before.
    recent: VecDeque<(Millis, u32, bool)>,
    /// Per slot: a model's fingerprint and how often it occurs in `recent`
    /// (0: a free slot).
    slots: Vec<(u64, u32)>,
    distinct: usize,
    switches: usize,
    /// Requests until the next finding may be reported.
    cooldown: usize,
}

/// A model switching finding's numbers.
struct Switching {
    unique_models: usize,
    switch_rate: f64,
    since: Millis,
}

impl Models {
    fn observe(&mut self, p: &Params, t: Millis, fp: u64) -> Option<Switching> {
        let switched = self.recent.back().is_some_and(|&(_, slot, _)| self.slots[slot as usize].0 != fp);
        if self.recent.len() >= p.window_size
            && let Some((_, slot, sw)) = self.recent.pop_front()
        {
            let s = &mut self.slots[slot as usize];
            s.1 -= 1;
            if s.1 == 0 {
                self.distinct -= 1;
            }
            self.switches -= usize::from(sw);
        }
        let slot = match self.slots.iter().position(|&(f, n)| n > 0 && f == fp) {
            Some(i) => i,
            None => {
                self.distinct += 1;
                match self.slots.iter().position(|&(_, n)| n == 0) {
                    Some(i) => {
                        self.slots[i].0 = fp;
                        i
                    }
                    None => {
                        self.slots.push((fp, 0));
                        self.slots.len() - 1
                    }
                }
            }
        };
        self.slots[slot].1 += 1;
        self.switches += usize::from(switched);
        // Slots never outnumber `window_size` + 1 ≤ MAX_WINDOW + 1.
        self.recent.push_back((t, slot as u32, switched));
        self.cooldown = self.cooldown.saturating_sub(1);
        if self.recent.len() < p.window_size
            || self.cooldown > 0
            || self.distinct as f64 <= p.threshold * p.window_size as f64
        {
            return None;
        }
        self.cooldown = p.window_size;
        let first = self.recent.front().copied().unwrap_or((t, 0, false));
        // The oldest request's switch was from a model now out of the window.
        let changes = self.switches - usize::from(first.2);
        Some(Switching {
            unique_models: self.distinct,
            switch_rate: changes as f64 / (p.window_size.max(2) - 1) as f64,
            since: first.0,
        })
    }
}

/// A tool the entity called.
#[derive(Debug, Clone, Copy)]
struct Tool {
    fp: u64,
    /// Calls in the learning period.
    base: u32,
    /// Calls in the recent window.
    recent: u32,
}

/// The entity's tool mix.
#[derive(Debug, Default)]
struct Tools {
    tools: Vec<Tool>,
    /// Requests learned so far (up to `min_samples`).
    learned: usize,
    base_total: u64,
    /// The recent window: per request, its time and how many of `calls` are its own.
    events: VecDeque<(Millis, u16)>,
    /// Slots in `tools` of the window's calls, oldest first.
    calls: VecDeque<u16>,
    recent_total: u64,
    cooldown: usize,
}

/// What a request revealed about the tool mix.
enum ToolHit<'a> {
    /// A tool never called before.
    New(&'a str),
    /// The window's mix is far from the baseline.
    Diverged { jsd: f64, since: Millis },
}

impl Tools {
    fn observe<'e>(&mut self, p: &Params, t: Millis, names: &'e [String], emit: &mut impl FnMut(ToolHit<'e>)) {
        let learning = self.learned < p.min_samples;
        let mut own = 0u16;
        for name in names.iter().take(MAX_CALLS_PER_EVENT) {
            let fp = fingerprint(name);
            let slot = match self.tools.iter().position(|tool| tool.fp == fp) {
                Some(i) => Some(i),
                None => {
                    if !learning {
                        emit(ToolHit::New(name));
                    }
                    (self.tools.len() < p.max_values).then(|| {
                        self.tools.push(Tool { fp, base: 0, recent: 0 });
                        self.tools.len() - 1
                    })
                }
            };
            let Some(i) = slot else { continue };
            if learning {
                self.tools[i].base += 1;
                self.base_total += 1;
            }
            self.tools[i].recent += 1;
            self.recent_total += 1;
            // `max_values` ≤ u16::MAX (checked in `new`).
            self.calls.push_back(i as u16);
            own += 1;
        }
        self.events.push_back((t, own));
        if self.events.len() > p.window_size
            && let Some((_, n)) = self.events.pop_front()
        {
            for i in self.calls.drain(..usize::from(n)) {
                self.tools[usize::from(i)].recent -= 1;
                self.recent_total -= 1;
            }
        }
        if learning {
            self.learned += 1;
            return;
        }
        self.cooldown = self.cooldown.saturating_sub(1);
        if self.events.len() < p.window_size || self.cooldown > 0 || self.recent_total == 0 || self.base_total == 0 {
            return;
        }
        let jsd = self.divergence();
        if jsd > p.threshold {
            self.cooldown = p.window_size;
            emit(ToolHit::Diverged { jsd, since: self.events.front().map_or(t, |e| e.0) });
        }
    }

    /// Jensen–Shannon divergence (base 2) between the baseline and the window.
    fn divergence(&self) -> f64 {
        let (bt, rt) = (self.base_total as f64, self.recent_total as f64);
        let mut d = 0.0;
        for tool in &self.tools {
            let (p, q) = (f64::from(tool.base) / bt, f64::from(tool.recent) / rt);
            let m = (p + q) / 2.0;
            if p > 0.0 {
                d += p * (p / m).log2();
            }
            if q > 0.0 {
                d += q * (q / m).log2();
            }
        }
        (d / 2.0).clamp(0.0, 1.0)
    }
}

/// The entity's requests per bucket.
#[derive(Debug)]
struct Rate {
    /// The open bucket.
    start: Millis,
    count: u32,
    /// The last `window_size` closed buckets' counts, and their sum.
    history: VecDeque<u32>,
    sum: u64,
    /// Buckets closed since the entity was (re)learned.
    closed: usize,
    /// Start of the latest closed bucket with requests.
    last_active: Millis,
    /// The entity's latest application and tenant, for findings `tick` makes.
    app: String,
    tenant: Option<String>,
}

/// A burst: the bucket's count and the mean it is compared with.
#[derive(Debug, Clone, Copy)]
struct Burst {
    count: u32,
    mean: f64,
    start: Millis,
    end: Millis,
}

impl Rate {
    fn new(start: Millis) -> Rate {
        Rate {
            start,
            count: 0,
            history: VecDeque::new(),
            sum: 0,
            closed: 0,
            last_active: Millis::MIN,
            app: String::new(),
            tenant: None,
        }
    }

    fn forget(&mut self) {
        self.history.clear();
        (self.sum, self.closed) = (0, 0);
    }

    fn push(&mut self, p: &Params, count: u32) {
        if self.history.len() >= p.window_size
            && let Some(old) = self.history.pop_front()
        {
            self.sum -= u64::from(old);
        }
        self.history.push_back(count);
        self.sum += u64::from(count);
        self.closed = self.closed.saturating_add(1);
    }

    /// Closes the open bucket and the empty ones after it, up to `target`.
    fn close_until(&mut self, p: &Params, target: Millis, emit: &mut impl FnMut(Burst)) {
        let len = p.bucket;
        let span = len.saturating_mul(p.window_size as Millis);
        let mut next = self.start;
        if self.count > 0 {
            if self.last_active < next.saturating_sub(span) {
                self.forget();
            }
            if self.closed >= p.min_samples && !self.history.is_empty() {
                let mean = self.sum as f64 / self.history.len() as f64;
                if f64::from(self.count) > p.threshold * mean.max(1.0) {
                    emit(Burst { count: self.count, mean, start: next, end: next + len });
                }
            }
            self.push(p, self.count);
            self.last_active = next;
            next += len;
        }
        // Empty buckets are never bursts; they only enter the history.
        while next < target {
            if self.last_active < next.saturating_sub(span) {
                self.forget();
                break;
            }
            self.push(p, 0);
            next += len;
        }
        (self.start, self.count) = (target, 0);
    }
}

/// The values (IPs or roles) an entity used.
#[derive(Debug, Default)]
struct Seen {
    /// Sorted fingerprints.
    values: Vec<u64>,
    events: usize,
}

impl Seen {
    /// When `fp` is new after the learning period: how many values were
    /// known and how many requests seen before it.
    fn observe(&mut self, p: &Params, fp: u64) -> Option<(usize, usize)> {
        let seen = self.events;
        self.events = self.events.saturating_add(1);
        let Err(i) = self.values.binary_search(&fp) else { return None };
        let known = self.values.len();
        if known < p.max_values {
            self.values.insert(i, fp);
        }
        (seen >= p.min_samples).then_some((known, seen))
    }
}

/// One entity's state, by kind.
#[derive(Debug)]
enum State {
    Models(Models),
    Tools(Tools),
    Rate(Rate),
    Seen(Seen),
}

impl State {
    fn new(kind: BehaviorKind, t: Millis, bucket: Millis) -> State {
        match kind {
            BehaviorKind::ModelSwitching => State::Models(Models::default()),
            BehaviorKind::ToolMix => State::Tools(Tools::default()),
            BehaviorKind::RequestRate => State::Rate(Rate::new(t.div_euclid(bucket) * bucket)),
            BehaviorKind::NewIp | BehaviorKind::NewRole => State::Seen(Seen::default()),
        }
    }
}

/// Flags an entity behaving unlike its baseline.
#[derive(Debug)]
pub struct BehavioralDetector {
    id: String,
    p: Params,
    entities: EntityMap<String, State>,
    /// Reused to look entities up without allocating.
    key: String,
}

impl BehavioralDetector {
    /// Checks the config; the error names the offending field.
    pub fn new(id: &str, severity: Severity, config: BehavioralConfig) -> Result<BehavioralDetector, String> {
        let c = config;
        let kind = c.kind.as_str();
        let threshold = match (c.kind.threshold(), c.threshold) {
            (None, None) => 0.0,
            (None, Some(_)) => return Err(format!("threshold: {kind} takes no threshold")),
            (Some(rule), None) => rule.default,
            (Some(rule), Some(t)) => {
                if !(rule.ok)(t) {
                    return Err(format!("threshold: must be {} for {kind} (got {t})", rule.range));
                }
                t
            }
        };
        let min_window = if c.kind == BehaviorKind::ModelSwitching { 2 } else { 1 };
        if !(min_window..=MAX_WINDOW).contains(&c.window_size) {
            return Err(format!(
                "window_size: must be between {min_window} and {MAX_WINDOW} for {kind} (got {})",
                c.window_size
            ));
        }
        if c.min_samples == 0 {
            return Err("min_samples: must be at least 1".into());
        }
        if c.max_entities == 0 {
            return Err("max_entities: must be at least 1".into());
        }
        if !(1..=usize::from(u16::MAX)).contains(&c.max_values) {
            return Err(format!("max_values: must be between 1 and {} (got {})", u16::MAX, c.max_values));
        }
        if c.bucket <= 0 {
            return Err("bucket: must be positive".into());
        }
        let field = match c.kind {
            BehaviorKind::NewIp => Some(EntityKind::Ip),
            BehaviorKind::ModelSwitching => Some(EntityKind::Model),
            _ => None,
        };
        if field == Some(c.entity) {
            return Err(format!("entity: {kind} needs an entity other than {}", c.entity.as_str()));
        }
        Ok(BehavioralDetector {
            id: id.to_owned(),
            p: Params {
                severity,
                kind: c.kind,
                entity: c.entity,
                threshold,
                window_size: c.window_size,
                min_samples: c.min_samples,
                max_values: c.max_values,
                bucket: c.bucket,
            },
            entities: EntityMap::new(c.max_entities),
            key: String::new(),
        })
    }

    /// What the detector watches.
    pub fn behavior(&self) -> BehaviorKind {
        self.p.kind
    }
}

impl Params {
    fn event_finding(&self, e: &TelemetryEvent, id: &str, score: f64, title: String) -> Finding {
        Finding::from_event(e, Entity::new(self.entity, id), self.severity, score, title)
    }

    /// A burst finding; the caller sets the event and application fields.
    fn burst_finding(&self, id: &str, b: &Burst) -> Finding {
        let kind = self.entity.as_str();
        let ratio = f64::from(b.count) / b.mean.max(1.0);
        let bucket = format_duration(self.bucket);
        Finding {
            severity: self.severity,
            score: score_of(ratio, self.threshold).clamp(0.0, 1.0),
            title: format!("{kind} {id} made {} requests in {bucket}, {ratio:.1}× its usual {}", b.count, num(b.mean)),
            description: format!(
                "{kind} {id} made {} requests in the {bucket} from {}; its last {} buckets averaged {} \
                 (floored at 1 for the ratio); ratio {ratio:.2}, threshold {}",
                b.count,
                timestamp(b.start),
                self.window_size,
                num(b.mean),
                num(self.threshold)
            ),
            entity: Entity::new(self.entity, id),
            baseline: Some(b.mean),
            observed: Some(f64::from(b.count)),
            deviation: Some(ratio),
            threshold: Some(self.threshold),
            window_start: b.start,
            window_end: b.end,
            event_id: None,
            application_id: None,
            tenant_id: None,
        }
    }
}

impl Detector for BehavioralDetector {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> DetectorKind {
        DetectorKind::Behavioral
    }

    fn observe(&mut self, event: &TelemetryEvent, _now: Millis, out: &mut Vec<Finding>) {
        let p = &self.p;
        let Some(id) = p.entity.of(event) else { return };
        let t = event.millis();
        let m = &event.metadata;
        let who = p.entity.as_str();
        let make = || State::new(p.kind, t, p.bucket);
        match p.kind {
            BehaviorKind::ModelSwitching => {
                let Some(model) = event.data.model.as_deref() else { return };
                let fp = fingerprint(model);
                let hit = with_entity(&mut self.entities, &mut self.key, id, make, |st| match st {
                    State::Models(s) => s.observe(p, t, fp),
                    _ => None,
                });
                let Some(h) = hit else { return };
                let ratio = h.unique_models as f64 / p.window_size as f64;
                let title = format!(
                    "{who} {id} used {} distinct models in its last {} requests",
                    h.unique_models, p.window_size
                );
                let mut f = p.event_finding(event, id, score_of(ratio, p.threshold), title);
                f.description = format!(
                    "{who} {id}: unique_models {}, window_size {}, switch_rate {:.2}; more than {} × {} \
                     distinct models is unusual (latest model {model})",
                    h.unique_models,
                    p.window_size,
                    h.switch_rate,
                    num(p.threshold),
                    p.window_size
                );
                f.observed = Some(h.unique_models as f64);
                f.deviation = Some(ratio);
                f.threshold = Some(p.threshold);
                f.window_start = h.since;
                out.push(f);
            }
            BehaviorKind::ToolMix => {
                let Some(names) = m.tool_calls.as_deref() else { return };
                with_entity(&mut self.entities, &mut self.key, id, make, |st| {
                    let State::Tools(s) = st else { return };
                    let known = s.tools.len();
                    s.observe(p, t, names, &mut |hit| {
                        let f = match hit {
                            ToolHit::New(tool) => {
                                let title = format!("{who} {id} called a new tool: {tool}");
                                let mut f = p.event_finding(event, id, NOVELTY_SCORE, title);
                                f.description = format!(
                                    "{who} {id} called {tool}, not among the {known} tools it called \
                                     before (learned over its first {} requests with tool calls)",
                                    p.min_samples
                                );
                                f
                            }
                            ToolHit::Diverged { jsd, since } => {
                                let title = format!("{who} {id}'s tool mix diverged from its baseline (JSD {jsd:.2})");
                                let mut f = p.event_finding(event, id, score_of(jsd, p.threshold), title);
                                f.description = format!(
                                    "Jensen–Shannon divergence {jsd:.3} between the tools of {who} {id}'s last \
                                     {} requests and those of its first {}; threshold {}",
                                    p.window_size,
                                    p.min_samples,
                                    num(p.threshold)
                                );
                                f.observed = Some(jsd);
                                f.deviation = Some(jsd);
                                f.threshold = Some(p.threshold);
                                f.window_start = since;
                                f
                            }
                        };
                        out.push(f);
                    });
                });
            }
            BehaviorKind::RequestRate => {
                let len = p.bucket;
                let start = t.div_euclid(len) * len;
                with_entity(&mut self.entities, &mut self.key, id, make, |st| {
                    let State::Rate(r) = st else { return };
                    // A late event (before the open bucket) counts in the open bucket.
                    if start > r.start {
                        r.close_until(p, start, &mut |b| {
                            let mut f = p.burst_finding(id, &b);
                            f.event_id = Some(event.event_id.clone());
                            f.application_id = Some(event.application_id.clone());
                            f.tenant_id.clone_from(&event.tenant_id);
                            out.push(f);
                        });
                    }
                    r.count = r.count.saturating_add(1);
                    if r.app != event.application_id {
                        r.app.clone_from(&event.application_id);
                    }
                    if r.tenant != event.tenant_id {
                        r.tenant.clone_from(&event.tenant_id);
                    }
                });
            }
            BehaviorKind::NewIp | BehaviorKind::NewRole => {
                let (field, value) = match p.kind {
                    BehaviorKind::NewIp => ("ip", m.ip.as_deref()),
                    _ => ("role", m.role.as_deref()),
                };
                let Some(value) = value else { return };
                let fp = fingerprint(value);
                let new = with_entity(&mut self.entities, &mut self.key, id, make, |st| match st {
                    State::Seen(s) => s.observe(p, fp),
                    _ => None,
                });
                let Some((known, events)) = new else { return };
                let title = format!("{who} {id} used a new {field}: {value}");
                let mut f = p.event_finding(event, id, NOVELTY_SCORE, title);
                f.description = format!(
                    "{who} {id} used {field} {value} for the first time, after {events} requests with \
                     {known} known {field}s (learning period {} requests)",
                    p.min_samples
                );
                out.push(f);
            }
        }
    }

    fn tick(&mut self, now: Millis, out: &mut Vec<Finding>) {
        let p = &self.p;
        if p.kind != BehaviorKind::RequestRate {
            return;
        }
        let target = now.div_euclid(p.bucket) * p.bucket;
        for (id, st) in self.entities.iter_mut() {
            let State::Rate(r) = st else { continue };
            if target <= r.start {
                continue;
            }
            let mut bursts = Vec::new();
            r.close_until(p, target, &mut |b| bursts.push(b));
            for b in &bursts {
                let mut f = p.burst_finding(id, b);
                f.application_id = (!r.app.is_empty()).then(|| r.app.clone());
                f.tenant_id.clone_from(&r.tenant);
                out.push(f);
            }
        }
    }

    fn tracked(&self) -> usize {
        self.entities.len()
    }

    fn forget(&mut self, entity: &Entity) {
        if entity.kind == self.p.entity {
            self.entities.remove(&entity.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::event::tests::event;

    const T0: Millis = 494_444 * 3_600_000;
    const MIN: Millis = 60_000;

    fn detector(config: Value) -> BehavioralDetector {
        BehavioralDetector::new("behave", Severity::Warning, serde_json::from_value(config).unwrap()).unwrap()
    }

    fn error_of(config: Value) -> String {
        BehavioralDetector::new("behave", Severity::Warning, serde_json::from_value(config).unwrap()).unwrap_err()
    }

    /// An event of `user` at `ms`.
    fn by(user: &str, i: usize, ms: Millis) -> TelemetryEvent {
        let mut e = event(&format!("{user}-{i}"), ms);
        e.metadata.user_id = Some(user.into());
        e
    }

    fn observe(d: &mut BehavioralDetector, e: &TelemetryEvent) -> Vec<Finding> {
        let mut out = Vec::new();
        d.observe(e, e.millis(), &mut out);
        out
    }

    #[test]
    fn model_switching_flags_a_user_cycling_models_and_not_a_steady_one() {
        let mut d = detector(json!({"kind": "model_switching", "threshold": 0.5, "window_size": 10}));
        let models = ["gpt-4o", "gpt-4o-mini", "claude-3", "llama-3", "mistral", "gemini", "o1"];
        let (mut cycler, mut steady) = (Vec::new(), Vec::new());
        for i in 0..30 {
            let mut e = by("cycler", i, T0 + i as Millis * 1000);
            e.data.model = Some(models[i % models.len()].into());
            cycler.extend(observe(&mut d, &e));
            // The steady user sticks to two models (2 of 10 ≤ 0.5).
            let mut e = by("steady", i, T0 + i as Millis * 1000);
            e.data.model = Some(if i % 5 == 0 { "gpt-4o-mini" } else { "gpt-4o" }.into());
            steady.extend(observe(&mut d, &e));
        }
        assert!(steady.is_empty(), "{steady:?}");
        // Once per window of 10 requests while it lasts: requests 10, 20 and 30.
        assert_eq!(cycler.len(), 3, "{cycler:?}");
        let f = &cycler[0];
        assert_eq!(f.event_id.as_deref(), Some("cycler-9"));
        assert_eq!(f.entity, Entity::new(EntityKind::User, "cycler"));
        assert_eq!(f.observed, Some(7.0));
        assert_eq!(f.deviation, Some(0.7));
        assert_eq!(f.threshold, Some(0.5));
        assert_eq!((f.window_start, f.window_end), (T0, T0 + 9000));
        assert!(f.score > 0.5);
        assert!(f.description.contains("unique_models 7, window_size 10, switch_rate 1.00"), "{}", f.description);
        assert_eq!(d.tracked(), 2);
    }

    #[test]
    fn a_config_without_kind_is_model_switching() {
        let c: BehavioralConfig = serde_norway::from_str("threshold: 0.5\nwindow_size: 100\n").unwrap();
        assert_eq!(c.kind, BehaviorKind::ModelSwitching);
        assert_eq!(c.entity, EntityKind::User);
        let d = BehavioralDetector::new("custom-model-switching", Severity::Warning, c).unwrap();
        assert_eq!(d.p.threshold, 0.5);
        // A steady user over a full window is not flagged; a model per request is.
        let mut d = d;
        let mut found = 0;
        for i in 0..100 {
            let mut e = by("u", i, T0 + i as Millis);
            e.data.model = Some(format!("m{}", i % 60));
            found += observe(&mut d, &e).len();
        }
        assert_eq!(found, 1);
    }

    #[test]
    fn new_ips_and_roles_are_flagged_after_learning() {
        type Set = fn(&mut TelemetryEvent, &str);
        let cases: [(&str, Set); 2] =
            [("new_ip", |e, v| e.metadata.ip = Some(v.into())), ("new_role", |e, v| e.metadata.role = Some(v.into()))];
        for (kind, set) in cases {
            let mut d = detector(json!({"kind": kind, "min_samples": 5}));
            // (value, flagged): learning takes 5 requests carrying the field; a new value during
            // learning is learned, one after it is flagged once.
            let script = [
                ("a", false),
                ("a", false),
                ("b", false),
                ("", false), // no value: ignored, not counted
                ("a", false),
                ("a", false),
                ("a", false),
                ("b", false),
                ("c", true),
                ("c", false),
                ("a", false),
            ];
            for (i, (value, flagged)) in script.into_iter().enumerate() {
                let mut e = by("u1", i, T0 + i as Millis);
                if !value.is_empty() {
                    set(&mut e, value);
                }
                let out = observe(&mut d, &e);
                assert_eq!(out.len(), usize::from(flagged), "{kind} step {i}");
                if let Some(f) = out.first() {
                    let field = &kind[4..];
                    assert_eq!(f.title, format!("user u1 used a new {field}: c"));
                    assert!(f.description.contains("after 7 requests with 2 known"), "{}", f.description);
                    assert_eq!(f.score, NOVELTY_SCORE);
                }
            }
        }
    }

    #[test]
    fn remembered_values_are_bounded_by_max_values() {
        let mut d = detector(json!({"kind": "new_ip", "min_samples": 1, "max_values": 2}));
        let mut flagged = 0;
        for (i, ip) in ["a", "b", "c", "c", "b"].into_iter().enumerate() {
            let mut e = by("u1", i, T0);
            e.metadata.ip = Some(ip.into());
            flagged += observe(&mut d, &e).len();
        }
        // "b" is remembered; "c" is not (the set is full), so it is flagged each time.
        assert_eq!(flagged, 3);
        let State::Seen(s) = d.entities.get_mut(&"u1".to_owned()).unwrap() else { panic!() };
        assert_eq!(s.values.len(), 2);
    }

    fn with_tools(user: &str, i: usize, tools: &[&str]) -> TelemetryEvent {
        let mut e = by(user, i, T0 + i as Millis * 1000);
        e.metadata.tool_calls = Some(tools.iter().map(|t| t.to_string()).collect());
        e
    }

    #[test]
    fn tool_mix_flags_a_new_tool_once() {
        let mut d = detector(json!({"kind": "tool_mix", "min_samples": 5}));
        let mut found = Vec::new();
        for i in 0..5 {
            // During learning every tool is new and none is flagged.
            found.extend(observe(&mut d, &with_tools("u1", i, &[if i == 3 { "summarize" } else { "search" }])));
        }
        // Requests without tool calls are ignored.
        found.extend(observe(&mut d, &by("u1", 5, T0 + 5000)));
        assert!(found.is_empty());
        let out = observe(&mut d, &with_tools("u1", 6, &["search", "delete_all"]));
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].title, "user u1 called a new tool: delete_all");
        assert!(out[0].description.contains("not among the 2 tools"), "{}", out[0].description);
        assert!(observe(&mut d, &with_tools("u1", 7, &["delete_all", "summarize"])).is_empty());
    }

    #[test]
    fn tool_mix_flags_a_shifted_mix_and_not_a_stable_one() {
        let mut d = detector(json!({"kind": "tool_mix", "min_samples": 20, "window_size": 20}));
        let (mut stable, mut shifted) = (Vec::new(), Vec::new());
        for i in 0..100 {
            // Nine searches for one summary, in both baselines.
            let usual = if i % 10 == 9 { "summarize" } else { "search" };
            stable.extend(observe(&mut d, &with_tools("stable", i, &[usual])));
            let tool = if i < 20 { usual } else { "summarize" };
            shifted.extend(observe(&mut d, &with_tools("shifted", i, &[tool])));
        }
        assert!(stable.is_empty(), "{stable:?}");
        assert!(!shifted.is_empty());
        let f = &shifted[0];
        assert!(f.title.starts_with("user shifted's tool mix diverged"), "{}", f.title);
        assert!(f.observed.unwrap() > 0.3 && f.observed.unwrap() <= 1.0);
        assert_eq!(f.threshold, Some(0.3));
        // At most once per window of 20 requests.
        assert!(shifted.len() <= 4, "{}", shifted.len());
    }

    #[test]
    fn divergence_is_zero_for_equal_mixes_and_one_for_disjoint_ones() {
        let tools = |pairs: &[(u32, u32)]| Tools {
            tools: pairs.iter().enumerate().map(|(i, &(base, recent))| Tool { fp: i as u64, base, recent }).collect(),
            base_total: pairs.iter().map(|p| u64::from(p.0)).sum(),
            recent_total: pairs.iter().map(|p| u64::from(p.1)).sum(),
            ..Tools::default()
        };
        assert!(tools(&[(5, 10), (5, 10)]).divergence().abs() < 1e-12);
        assert!((tools(&[(5, 0), (0, 7)]).divergence() - 1.0).abs() < 1e-12);
        let mid = tools(&[(9, 0), (1, 10)]).divergence();
        assert!(mid > 0.5 && mid < 0.9, "{mid}");
    }

    /// `per_minute` requests a minute from `user` for `minutes` minutes from `from`.
    fn steady(user: &str, from: Millis, minutes: Millis, per_minute: Millis) -> Vec<TelemetryEvent> {
        (0..minutes * per_minute).map(|i| by(user, i as usize, from + i * MIN / per_minute)).collect()
    }

    #[test]
    fn request_rate_flags_a_burst_bucket() {
        let mut d = detector(json!({"kind": "request_rate"}));
        let mut found = Vec::new();
        let mut events = steady("u1", T0, 30, 2);
        events.extend((0..30).map(|i| by("u1", 1000 + i, T0 + 30 * MIN + i as Millis)));
        events.push(by("u1", 2000, T0 + 31 * MIN));
        for e in &events {
            found.extend(observe(&mut d, e));
        }
        assert_eq!(found.len(), 1, "{found:?}");
        let f = &found[0];
        assert_eq!((f.observed, f.baseline, f.deviation), (Some(30.0), Some(2.0), Some(15.0)));
        assert_eq!((f.window_start, f.window_end), (T0 + 30 * MIN, T0 + 31 * MIN));
        assert_eq!(f.title, "user u1 made 30 requests in 1m, 15.0× its usual 2");
        assert_eq!(f.event_id.as_deref(), Some("u1-2000"));

        // The same burst with no request after it: tick closes the bucket.
        let mut d = detector(json!({"kind": "request_rate"}));
        for e in &events[..events.len() - 1] {
            assert!(observe(&mut d, e).is_empty());
        }
        let mut out = Vec::new();
        d.tick(T0 + 30 * MIN + 59_000, &mut out);
        assert!(out.is_empty());
        d.tick(T0 + 31 * MIN, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].observed, Some(30.0));
        assert_eq!(out[0].event_id, None);
        assert_eq!(out[0].application_id.as_deref(), Some("chatbot"));
        assert_eq!(out[0].tenant_id.as_deref(), Some("acme"));
    }

    #[test]
    fn request_rate_spares_sparse_users_and_learns_first() {
        let mut d = detector(json!({"kind": "request_rate"}));
        let mut found = Vec::new();
        // One request every ten minutes for five hours, then three in a minute.
        for i in 0..30 {
            found.extend(observe(&mut d, &by("sparse", i, T0 + i as Millis * 10 * MIN)));
        }
        for i in 0..3 {
            found.extend(observe(&mut d, &by("sparse", 100 + i, T0 + 300 * MIN + i as Millis)));
        }
        found.extend(observe(&mut d, &by("sparse", 200, T0 + 301 * MIN)));
        // A new user bursting before min_samples buckets is still being learned.
        for i in 0..50 {
            found.extend(observe(&mut d, &by("new", i, T0 + i as Millis)));
        }
        found.extend(observe(&mut d, &by("new", 99, T0 + MIN)));
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors_naming_the_field() {
        let e = serde_json::from_value::<BehavioralConfig>(json!({"kind": "new_ip", "windw_size": 3}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("windw_size"), "{e}");
        let e = serde_json::from_value::<BehavioralConfig>(json!({"kind": "new_device"})).unwrap_err().to_string();
        assert!(e.contains("new_device"), "{e}");
        // (config, field named)
        let cases = [
            (json!({"threshold": 0.0}), "threshold:"),
            (json!({"threshold": 1.5}), "threshold:"),
            (json!({"kind": "tool_mix", "threshold": 2.0}), "threshold:"),
            (json!({"kind": "request_rate", "threshold": -1.0}), "threshold:"),
            (json!({"kind": "new_ip", "threshold": 0.5}), "threshold:"),
            (json!({"window_size": 1}), "window_size:"),
            (json!({"kind": "tool_mix", "window_size": 0}), "window_size:"),
            (json!({"min_samples": 0}), "min_samples:"),
            (json!({"max_entities": 0}), "max_entities:"),
            (json!({"kind": "new_role", "max_values": 0}), "max_values:"),
            (json!({"kind": "tool_mix", "max_values": 70_000}), "max_values:"),
            (json!({"kind": "new_ip", "entity": "ip"}), "entity:"),
            (json!({"entity": "model"}), "entity:"),
        ];
        for (config, field) in cases {
            let e = error_of(config.clone());
            assert!(e.starts_with(field), "{config}: {e}");
        }
    }

    #[test]
    fn defaults_and_round_trips() {
        let c = BehavioralConfig::default();
        assert_eq!(serde_json::from_value::<BehavioralConfig>(json!({})).unwrap(), c);
        assert_eq!(
            (c.window_size, c.min_samples, c.max_entities, c.max_values, c.bucket),
            (100, 20, 10_000, 256, 60_000)
        );
        for (kind, threshold) in [("model_switching", 0.5), ("tool_mix", 0.3), ("request_rate", 5.0), ("new_ip", 0.0)] {
            assert_eq!(detector(json!({"kind": kind})).p.threshold, threshold, "{kind}");
        }
        let full: BehavioralConfig = serde_norway::from_str(
            "kind: request_rate\nentity: session\nthreshold: 8\nwindow_size: 60\nmin_samples: 10\n\
             max_entities: 5\nmax_values: 16\nbucket: 30s\n",
        )
        .unwrap();
        for c in [c, full] {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<BehavioralConfig>(&json).unwrap(), c);
            let yaml = serde_norway::to_string(&c).unwrap();
            assert_eq!(serde_norway::from_str::<BehavioralConfig>(&yaml).unwrap(), c);
        }
    }

    #[test]
    fn entities_are_bounded_and_events_without_one_are_skipped() {
        for kind in ["model_switching", "tool_mix", "request_rate", "new_ip", "new_role"] {
            let mut d = detector(json!({"kind": kind, "max_entities": 2}));
            for i in 0..10 {
                let mut e = with_tools(&format!("user-{i}"), i, &["search"]);
                e.metadata.ip = Some("10.0.0.1".into());
                e.metadata.role = Some("admin".into());
                observe(&mut d, &e);
                assert!(d.tracked() <= 2, "{kind}");
            }
            let mut anon = with_tools("x", 0, &["search"]);
            anon.metadata.user_id = None;
            let mut d = detector(json!({"kind": kind}));
            observe(&mut d, &anon);
            assert_eq!(d.tracked(), 0, "{kind}");
        }
    }
}
