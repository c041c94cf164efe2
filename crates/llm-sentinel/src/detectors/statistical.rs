//! The `statistical` detector: flags a metric that leaves its baseline.
//!
//! For every entity of the `group_by` kind (an application by default) the
//! detector keeps a baseline of the metric's earlier values, scores each new
//! value against it, then adds the value to it. Per-event metrics (`cost`,
//! `total_tokens`, `prompt_tokens`, `completion_tokens`, `latency_ms`) score
//! each event's value against the entity's values of the last `window`.
//! Bucketed metrics (`cost_per_minute`, `cost_per_hour`, `tokens_per_minute`,
//! `request_rate`, `error_rate`) sum events into buckets aligned on the epoch
//! and score a bucket when it closes — when the entity's next event falls in a
//! later bucket, or on [`Detector::tick`] — against the earlier buckets. An
//! empty bucket counts as 0 (but a minute without requests has no
//! `error_rate`, so it is skipped); an entity idle for the whole baseline span
//! relearns instead of comparing its next bucket with a run of zeros. A
//! bucketed baseline spans `window`, widened to `min_samples` buckets when
//! `window` holds fewer (a `cost_per_minute` baseline over `5m` would otherwise
//! never reach the default 30 samples) and capped at `max_samples` buckets.
//!
//! Strategies: `zscore` is `(x − mean) / std` (sample standard deviation);
//! `mad` is `0.6745 · (x − median) / MAD`, which reads like a z-score on
//! normal data but ignores outliers in the baseline; `ewma` is
//! `(x − m) / s` where the exponentially weighted mean `m` and variance `s²`
//! are updated with `alpha` after each value (and forgotten after `window`
//! without values). A spread (std, MAD) below `max(1e-9, 0.01·|centre|)` is
//! raised to it, so a constant baseline followed by a step still scores (a
//! 5 % step on a constant stream reads as 5σ) without dividing by zero; a
//! baseline of zeros makes any non-zero value an extreme outlier.
//!
//! Memory per entity, besides its key and the LRU node (≈ 100 bytes): the
//! baseline holds at most `max_samples` values of 16 bytes (time and value),
//! 24 with `mad` (a sorted copy for the median), so ≈ 16 KiB (24 KiB) at the
//! default 1024; `ewma` keeps 32 bytes. Bucketed metrics add the open bucket
//! and the ids of the entity's latest application and tenant (for findings
//! [`Detector::tick`] makes). At most `max_entities` entities are held; the
//! least recently seen is dropped first.

use std::collections::VecDeque;

use chrono::{DateTime, SecondsFormat};
use serde::{Deserialize, Serialize};

use crate::detector::{
    Detector, DetectorKind, Entity, EntityKind, EntityMap, Finding, Millis, Severity, format_duration, score_of,
};
use crate::event::TelemetryEvent;

/// Relative spread floor: a spread below 1 % of the baseline's centre is raised to it.
const RELATIVE_FLOOR: f64 = 0.01;
/// Absolute spread floor, for baselines centred on 0.
const ABSOLUTE_FLOOR: f64 = 1e-9;
/// Φ⁻¹(0.75): scales MAD-scores to read like z-scores on normal data.
const MAD_SCALE: f64 = 0.6745;
/// Empty buckets scored per entity by one event or one tick, at most (the
/// others still enter the baseline).
const MAX_EMPTY_SCORED: usize = 60;
/// Largest accepted `max_samples`.
const MAX_SAMPLES_LIMIT: usize = 1_000_000;

/// A metric the detector watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// `data.cost` of each event.
    Cost,
    /// Total tokens of each event ([`TelemetryEvent::total_tokens`]).
    TotalTokens,
    /// `data.prompt_tokens` of each event.
    PromptTokens,
    /// `data.completion_tokens` of each event.
    CompletionTokens,
    /// `data.latency_ms` of each event.
    LatencyMs,
    /// Sum of `data.cost` per minute.
    CostPerMinute,
    /// Sum of `data.cost` per hour.
    CostPerHour,
    /// Sum of total tokens per minute.
    TokensPerMinute,
    /// Events per minute.
    RequestRate,
    /// Fraction of failed events ([`TelemetryEvent::is_error`]) per minute.
    ErrorRate,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Metric; 10] = [
        Metric::Cost,
        Metric::TotalTokens,
        Metric::PromptTokens,
        Metric::CompletionTokens,
        Metric::LatencyMs,
        Metric::CostPerMinute,
        Metric::CostPerHour,
        Metric::TokensPerMinute,
        Metric::RequestRate,
        Metric::ErrorRate,
    ];

    /// The name configs use.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cost => "cost",
            Metric::TotalTokens => "total_tokens",
            Metric::PromptTokens => "prompt_tokens",
            Metric::CompletionTokens => "completion_tokens",
            Metric::LatencyMs => "latency_ms",
            Metric::CostPerMinute => "cost_per_minute",
            Metric::CostPerHour => "cost_per_hour",
            Metric::TokensPerMinute => "tokens_per_minute",
            Metric::RequestRate => "request_rate",
            Metric::ErrorRate => "error_rate",
        }
    }

    /// The metric called `name`.
    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// The bucket length of a bucketed metric; `None` for a per-event one.
    pub fn bucket(self) -> Option<Millis> {
        match self {
            Metric::Cost
            | Metric::TotalTokens
            | Metric::PromptTokens
            | Metric::CompletionTokens
            | Metric::LatencyMs => None,
            Metric::CostPerHour => Some(3_600_000),
            Metric::CostPerMinute | Metric::TokensPerMinute | Metric::RequestRate | Metric::ErrorRate => Some(60_000),
        }
    }

    /// The event's value of a per-event metric, if it has one.
    fn per_event(self, e: &TelemetryEvent) -> Option<f64> {
        let d = &e.data;
        let x = match self {
            Metric::Cost => d.cost?,
            Metric::TotalTokens => e.total_tokens()? as f64,
            Metric::PromptTokens => d.prompt_tokens? as f64,
            Metric::CompletionTokens => d.completion_tokens? as f64,
            Metric::LatencyMs => d.latency_ms?,
            _ => return None,
        };
        x.is_finite().then_some(x)
    }

    /// What the event adds to its bucket's sum.
    fn contribution(self, e: &TelemetryEvent) -> f64 {
        let x = match self {
            Metric::CostPerMinute | Metric::CostPerHour => e.data.cost.unwrap_or(0.0),
            Metric::TokensPerMinute => e.total_tokens().unwrap_or(0) as f64,
            Metric::RequestRate => 1.0,
            Metric::ErrorRate => f64::from(u8::from(e.is_error())),
            _ => 0.0,
        };
        if x.is_finite() { x } else { 0.0 }
    }

    /// A closed bucket's value.
    fn bucket_value(self, sum: f64, count: u32) -> f64 {
        match self {
            Metric::ErrorRate => sum / f64::from(count.max(1)),
            _ => sum,
        }
    }
}

/// How a value is compared with its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Standard score against the window's mean and standard deviation.
    #[default]
    Zscore,
    /// Against an exponentially weighted mean and variance.
    Ewma,
    /// Modified z-score against the window's median and median absolute deviation.
    Mad,
}

impl Strategy {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Zscore => "zscore",
            Strategy::Ewma => "ewma",
            Strategy::Mad => "mad",
        }
    }

    /// How the description names the baseline's centre and spread.
    fn terms(self) -> (&'static str, &'static str) {
        match self {
            Strategy::Zscore => ("mean", "std"),
            Strategy::Ewma => ("EWMA mean", "EWMA std"),
            Strategy::Mad => ("median", "MAD"),
        }
    }
}

/// Which deviations count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Values above the baseline (spikes).
    #[default]
    Up,
    /// Values below it (drops).
    Down,
    /// Either way.
    Both,
}

impl Direction {
    /// Whether the signed deviation `z` is past `threshold` this way.
    fn exceeds(self, z: f64, threshold: f64) -> bool {
        match self {
            Direction::Up => z > threshold,
            Direction::Down => z < -threshold,
            Direction::Both => z.abs() > threshold,
        }
    }
}

/// The `statistical` detector's `config:` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatisticalConfig {
    /// What to watch: one of [`Metric::ALL`]'s names.
    pub metric: String,
    /// How to score (default `zscore`).
    #[serde(default)]
    pub strategy: Strategy,
    /// Deviation beyond which a value is reported, > 0 (default 3).
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// How far back the baseline reaches (default `1h`).
    #[serde(default = "default_window", with = "crate::detector::duration_str")]
    pub window: Millis,
    /// Baseline values needed before scoring, ≥ 2 (default 30).
    #[serde(default = "default_min_samples")]
    pub min_samples: usize,
    /// Whose baseline (default `application`).
    #[serde(default)]
    pub group_by: EntityKind,
    /// Which deviations count (default `up`: cost spikes are what matters).
    #[serde(default)]
    pub direction: Direction,
    /// EWMA smoothing, in (0, 1) (default 0.1).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Entities tracked at most (default 10 000).
    #[serde(default = "default_max_entities")]
    pub max_entities: usize,
    /// Baseline values kept per entity at most (default 1024).
    #[serde(default = "default_max_samples")]
    pub max_samples: usize,
}

fn default_threshold() -> f64 {
    3.0
}

fn default_window() -> Millis {
    3_600_000
}

fn default_min_samples() -> usize {
    30
}

fn default_alpha() -> f64 {
    0.1
}

fn default_max_entities() -> usize {
    10_000
}

fn default_max_samples() -> usize {
    1024
}

/// The checked configuration, shared by every entity.
#[derive(Debug, Clone)]
struct Params {
    severity: Severity,
    metric: Metric,
    strategy: Strategy,
    threshold: f64,
    direction: Direction,
    group_by: EntityKind,
    alpha: f64,
    min_samples: usize,
    max_samples: usize,
    /// How far back the baseline reaches: `window`, or for bucketed metrics
    /// whole buckets, at least `min_samples` and at most `max_samples` of them.
    span: Millis,
}

/// A value's comparison with its baseline.
#[derive(Debug, Clone, Copy)]
struct Score {
    /// Mean or median.
    center: f64,
    /// The (floored) standard deviation or MAD.
    spread: f64,
    /// Signed deviation in the strategy's unit.
    z: f64,
    /// Baseline values.
    n: usize,
}

/// A value past the threshold, and the span it covers.
#[derive(Debug, Clone, Copy)]
struct Hit {
    x: f64,
    score: Score,
    start: Millis,
    end: Millis,
}

/// Raises a spread below `max(1e-9, 1 % of |center|)` to that floor.
fn floored(spread: f64, center: f64) -> f64 {
    spread.max(ABSOLUTE_FLOOR).max(RELATIVE_FLOOR * center.abs())
}

/// The baseline values of the last `span`, with running sums for the mean
/// and variance, and a sorted copy when the strategy is `mad`.
#[derive(Debug, Default)]
struct Window {
    samples: VecDeque<(Millis, f64)>,
    sorted: Option<Vec<f64>>,
    /// The sums are of `x − shift`, a value near the mean, which keeps
    /// cancellation error small for large values with a small spread.
    shift: f64,
    sum: f64,
    sumsq: f64,
    /// Values removed since the sums were last recomputed; past `len` they
    /// are recomputed (amortized O(1)) so rounding error cannot build up.
    removed: usize,
}

impl Window {
    fn len(&self) -> usize {
        self.samples.len()
    }

    fn clear(&mut self) {
        self.samples.clear();
        if let Some(s) = &mut self.sorted {
            s.clear();
        }
        (self.sum, self.sumsq, self.removed) = (0.0, 0.0, 0);
    }

    fn push(&mut self, t: Millis, x: f64, cap: usize) {
        while self.samples.len() >= cap.max(1) {
            self.pop_front();
        }
        if self.samples.is_empty() {
            (self.shift, self.sum, self.sumsq, self.removed) = (x, 0.0, 0.0, 0);
        }
        let d = x - self.shift;
        self.sum += d;
        self.sumsq += d * d;
        self.samples.push_back((t, x));
        if let Some(s) = &mut self.sorted {
            let i = s.partition_point(|v| v.total_cmp(&x).is_lt());
            s.insert(i, x);
        }
    }

    fn pop_front(&mut self) {
        let Some((_, x)) = self.samples.pop_front() else { return };
        if let Some(s) = &mut self.sorted {
            let i = s.partition_point(|v| v.total_cmp(&x).is_lt());
            if i < s.len() {
                s.remove(i);
            }
        }
        if self.samples.is_empty() {
            self.clear();
            return;
        }
        let d = x - self.shift;
        self.sum -= d;
        self.sumsq -= d * d;
        self.removed += 1;
        if self.removed > self.samples.len() {
            let n = self.samples.len() as f64;
            self.shift += self.sum / n;
            let shift = self.shift;
            (self.sum, self.sumsq) = self
                .samples
                .iter()
                .fold((0.0, 0.0), |(s, q), &(_, x)| (s + (x - shift), q + (x - shift) * (x - shift)));
            self.removed = 0;
        }
    }

    /// Drops values from before `cutoff`.
    fn evict(&mut self, cutoff: Millis) {
        while self.samples.front().is_some_and(|&(t, _)| t < cutoff) {
            self.pop_front();
        }
    }

    /// Mean and sample standard deviation (at least 2 values).
    fn mean_std(&self) -> (f64, f64) {
        let n = self.samples.len() as f64;
        let mean = self.shift + self.sum / n;
        let var = ((self.sumsq - self.sum * self.sum / n) / (n - 1.0)).max(0.0);
        (mean, var.sqrt())
    }
}

/// Median and median absolute deviation of ascending `s` (not empty), in
/// O(log n): the deviations below and above the median form two ascending
/// sequences, and the MAD is their merged median.
fn median_mad(s: &[f64]) -> (f64, f64) {
    let n = s.len();
    let mid = n / 2;
    let median = if n % 2 == 1 { s[mid] } else { (s[mid - 1] + s[mid]) / 2.0 };
    let p = s.partition_point(|&v| v < median);
    let below = |i: usize| median - s[p - 1 - i];
    let above = |j: usize| s[p + j] - median;
    let kth = |k: usize| kth_of_two(below, p, above, n - p, k);
    let mad = if n % 2 == 1 { kth(mid) } else { (kth(mid - 1) + kth(mid)) / 2.0 };
    (median, mad)
}

/// The `k`-th smallest (0-based, `k < na + nb`) of two ascending sequences
/// given by index, by binary search on how many come from `a`.
fn kth_of_two(a: impl Fn(usize) -> f64, na: usize, b: impl Fn(usize) -> f64, nb: usize, k: usize) -> f64 {
    let (mut lo, mut hi) = ((k + 1).saturating_sub(nb), (k + 1).min(na));
    while lo < hi {
        let i = (lo + hi) / 2;
        let j = k + 1 - i;
        if j > 0 && a(i) < b(j - 1) { lo = i + 1 } else { hi = i }
    }
    let (i, j) = (lo, k + 1 - lo);
    let x = if i > 0 { a(i - 1) } else { f64::NEG_INFINITY };
    let y = if j > 0 { b(j - 1) } else { f64::NEG_INFINITY };
    x.max(y)
}

/// Exponentially weighted mean and variance.
#[derive(Debug, Default)]
struct Ewma {
    mean: f64,
    var: f64,
    n: usize,
    last: Millis,
}

/// An entity's baseline.
#[derive(Debug)]
enum Baseline {
    Window(Window),
    Ewma(Ewma),
}

impl Baseline {
    fn new(strategy: Strategy) -> Baseline {
        match strategy {
            Strategy::Zscore => Baseline::Window(Window::default()),
            Strategy::Mad => Baseline::Window(Window { sorted: Some(Vec::new()), ..Window::default() }),
            Strategy::Ewma => Baseline::Ewma(Ewma::default()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Baseline::Window(w) => w.len(),
            Baseline::Ewma(e) => e.n,
        }
    }

    fn clear(&mut self) {
        match self {
            Baseline::Window(w) => w.clear(),
            Baseline::Ewma(e) => e.n = 0,
        }
    }

    /// Forgets what is older than `cutoff`: the window's old values, or the
    /// whole EWMA when its latest value is older.
    fn evict(&mut self, cutoff: Millis) {
        match self {
            Baseline::Window(w) => w.evict(cutoff),
            Baseline::Ewma(e) => {
                if e.last < cutoff {
                    e.n = 0;
                }
            }
        }
    }

    fn push(&mut self, t: Millis, x: f64, p: &Params) {
        match self {
            Baseline::Window(w) => w.push(t, x, p.max_samples),
            Baseline::Ewma(e) => {
                if e.n == 0 {
                    (e.mean, e.var) = (x, 0.0);
                } else {
                    let d = x - e.mean;
                    let incr = p.alpha * d;
                    e.mean += incr;
                    e.var = (1.0 - p.alpha) * (e.var + d * incr);
                }
                e.n = e.n.saturating_add(1);
                e.last = t;
            }
        }
    }

    /// `x` against the baseline, once it holds `min_samples` values.
    fn score(&self, x: f64, p: &Params) -> Option<Score> {
        let n = self.len();
        if n < p.min_samples {
            return None;
        }
        let (center, spread, scale) = match self {
            Baseline::Window(Window { sorted: Some(s), .. }) => {
                let (median, mad) = median_mad(s);
                (median, floored(mad, median), MAD_SCALE)
            }
            Baseline::Window(w) => {
                let (mean, std) = w.mean_std();
                (mean, floored(std, mean), 1.0)
            }
            Baseline::Ewma(e) => (e.mean, floored(e.var.sqrt(), e.mean), 1.0),
        };
        Some(Score { center, spread, z: scale * (x - center) / spread, n })
    }
}

/// Scores `x`, seen at `t`, against the baseline of the span before `t`
/// (unless `scored` is false), reports it through `emit` if past the
/// threshold, with `window` as the span it covers, and adds it to the baseline.
fn add(
    p: &Params,
    baseline: &mut Baseline,
    x: f64,
    t: Millis,
    (start, end): (Millis, Millis),
    scored: bool,
    emit: &mut impl FnMut(Hit),
) {
    baseline.evict(t.saturating_sub(p.span));
    if scored
        && let Some(score) = baseline.score(x, p)
        && p.direction.exceeds(score.z, p.threshold)
    {
        emit(Hit { x, score, start, end });
    }
    baseline.push(t, x, p);
}

/// The bucket being filled.
#[derive(Debug, Default)]
struct Bucket {
    start: Millis,
    sum: f64,
    count: u32,
}

/// One entity's state.
#[derive(Debug)]
struct EntityState {
    baseline: Baseline,
    /// The open bucket (bucketed metrics).
    open: Bucket,
    /// Start of the latest closed bucket that had events.
    last_active: Millis,
    /// Application and tenant of the entity's latest event (bucketed metrics).
    app: String,
    tenant: Option<String>,
}

impl EntityState {
    fn new(p: &Params, bucket_start: Millis) -> EntityState {
        EntityState {
            baseline: Baseline::new(p.strategy),
            open: Bucket { start: bucket_start, ..Bucket::default() },
            last_active: Millis::MIN,
            app: String::new(),
            tenant: None,
        }
    }

    /// Closes the open bucket and the empty ones after it, up to the bucket
    /// starting at `target`, which becomes the open one.
    fn close_until(&mut self, p: &Params, len: Millis, target: Millis, emit: &mut impl FnMut(Hit)) {
        let mut next = self.open.start;
        if self.open.count > 0 {
            if self.last_active < next.saturating_sub(p.span) {
                // Idle for the whole span: relearn rather than compare with zeros.
                self.baseline.clear();
            }
            let x = p.metric.bucket_value(self.open.sum, self.open.count);
            add(p, &mut self.baseline, x, next, (next, next + len), true, emit);
            self.last_active = next;
            next += len;
        }
        if p.metric != Metric::ErrorRate {
            let mut empties = 0;
            while next < target {
                if self.last_active < next.saturating_sub(p.span) {
                    self.baseline.clear();
                    break;
                }
                add(p, &mut self.baseline, 0.0, next, (next, next + len), empties < MAX_EMPTY_SCORED, emit);
                empties += 1;
                next += len;
            }
        }
        self.open = Bucket { start: target, ..Bucket::default() };
    }
}

/// Runs `f` on the state of entity `id`, made with `make` when absent. `key`
/// is a reusable buffer, so an entity already tracked costs no allocation.
pub(crate) fn with_entity<V, R>(
    map: &mut EntityMap<String, V>,
    key: &mut String,
    id: &str,
    make: impl FnOnce() -> V,
    f: impl FnOnce(&mut V) -> R,
) -> R {
    key.clear();
    key.push_str(id);
    match map.get_mut(key) {
        Some(v) => f(v),
        None => f(map.get_or_insert_with(key.clone(), make)),
    }
}

/// A number with about four significant digits and no trailing zeros.
pub(crate) fn num(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let decimals = if x == 0.0 { 0 } else { (3 - x.abs().log10().floor() as i32).clamp(0, 12) as usize };
    let s = format!("{x:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s }
}

/// Unix milliseconds as an RFC 3339 time (`2026-11-26T10:00:00Z`).
pub(crate) fn timestamp(ms: Millis) -> String {
    DateTime::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |d| d.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// Where a finding comes from.
#[derive(Clone, Copy)]
enum Origin<'a> {
    Event(&'a TelemetryEvent),
    Tick { app: &'a str, tenant: Option<&'a str> },
}

impl Params {
    fn finding(&self, origin: Origin<'_>, id: &str, hit: &Hit) -> Finding {
        let Hit { x, score: s, start, end } = *hit;
        let metric = self.metric.as_str();
        let kind = self.group_by.as_str();
        let way = if s.z >= 0.0 { "above" } else { "below" };
        let title = format!("{metric} {:.1}σ {way} baseline for {kind} {id}", s.z.abs());
        let score = score_of(s.z, self.threshold);
        let entity = Entity::new(self.group_by, id);
        let mut f = match origin {
            Origin::Event(e) => Finding::from_event(e, entity, self.severity, score, title),
            Origin::Tick { app, tenant } => Finding {
                severity: self.severity,
                score: score.clamp(0.0, 1.0),
                title,
                description: String::new(),
                entity,
                baseline: None,
                observed: None,
                deviation: None,
                threshold: None,
                window_start: start,
                window_end: end,
                event_id: None,
                application_id: (!app.is_empty()).then(|| app.to_owned()),
                tenant_id: tenant.map(str::to_owned),
            },
        };
        let (center, spread) = self.strategy.terms();
        let what = match self.metric.bucket() {
            None => "values",
            Some(_) => {
                f.description = format!("in the {} from {} ", format_duration(end - start), timestamp(start));
                "buckets"
            }
        };
        f.description = format!(
            "{metric} was {} {}for {kind} {id}; baseline {center} {}, {spread} {} over {} earlier {what} \
             within {} ({}); deviation {:.2}, threshold {}",
            num(x),
            f.description,
            num(s.center),
            num(s.spread),
            s.n,
            format_duration(self.span),
            self.strategy.as_str(),
            s.z,
            num(self.threshold),
        );
        f.baseline = Some(s.center);
        f.observed = Some(x);
        f.deviation = Some(s.z);
        f.threshold = Some(self.threshold);
        f.window_start = start;
        f.window_end = end;
        f
    }
}

/// Flags a metric past `threshold` deviations from the entity's baseline.
#[derive(Debug)]
pub struct StatisticalDetector {
    id: String,
    p: Params,
    entities: EntityMap<String, EntityState>,
    /// Reused to look entities up without allocating.
    key: String,
}

impl StatisticalDetector {
    /// Checks the config; the error names the offending field.
    pub fn new(id: &str, severity: Severity, config: StatisticalConfig) -> Result<StatisticalDetector, String> {
        let c = config;
        let metric = Metric::from_name(&c.metric).ok_or_else(|| {
            let names: Vec<_> = Metric::ALL.iter().map(|m| m.as_str()).collect();
            format!("metric: unknown metric {:?}; expected one of {}", c.metric, names.join(", "))
        })?;
        if !(c.threshold.is_finite() && c.threshold > 0.0) {
            return Err(format!("threshold: must be a finite number > 0 (got {})", c.threshold));
        }
        if c.window <= 0 {
            return Err("window: must be positive".into());
        }
        if c.min_samples < 2 {
            return Err(format!("min_samples: must be at least 2 (got {})", c.min_samples));
        }
        if !(c.alpha > 0.0 && c.alpha < 1.0) {
            return Err(format!("alpha: must be in (0, 1) (got {})", c.alpha));
        }
        if c.max_entities == 0 {
            return Err("max_entities: must be at least 1".into());
        }
        if c.max_samples < c.min_samples || c.max_samples > MAX_SAMPLES_LIMIT {
            return Err(format!(
                "max_samples: must be between min_samples ({}) and {MAX_SAMPLES_LIMIT} (got {})",
                c.min_samples, c.max_samples
            ));
        }
        let span = match metric.bucket() {
            None => c.window,
            Some(len) => {
                let buckets = (c.window / len).max(c.min_samples as i64).min(c.max_samples as i64);
                buckets.saturating_mul(len)
            }
        };
        Ok(StatisticalDetector {
            id: id.to_owned(),
            p: Params {
                severity,
                metric,
                strategy: c.strategy,
                threshold: c.threshold,
                direction: c.direction,
                group_by: c.group_by,
                alpha: c.alpha,
                min_samples: c.min_samples,
                max_samples: c.max_samples,
                span,
            },
            entities: EntityMap::new(c.max_entities),
            key: String::new(),
        })
    }

    /// The metric watched.
    pub fn metric(&self) -> Metric {
        self.p.metric
    }
}

impl Detector for StatisticalDetector {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> DetectorKind {
        DetectorKind::Statistical
    }

    fn observe(&mut self, event: &TelemetryEvent, _now: Millis, out: &mut Vec<Finding>) {
        let p = &self.p;
        let Some(id) = p.group_by.of(event) else { return };
        let t = event.millis();
        let mut emit = |hit: Hit| out.push(p.finding(Origin::Event(event), id, &hit));
        match p.metric.bucket() {
            None => {
                let Some(x) = p.metric.per_event(event) else { return };
                let make = || EntityState::new(p, t);
                with_entity(&mut self.entities, &mut self.key, id, make, |st| {
                    add(p, &mut st.baseline, x, t, (t.saturating_sub(p.span), t), true, &mut emit);
                });
            }
            Some(len) => {
                let start = t.div_euclid(len) * len;
                with_entity(
                    &mut self.entities,
                    &mut self.key,
                    id,
                    || EntityState::new(p, start),
                    |st| {
                        // A late event (before the open bucket) counts in the open bucket.
                        if start > st.open.start {
                            st.close_until(p, len, start, &mut emit);
                        }
                        st.open.sum += p.metric.contribution(event);
                        st.open.count = st.open.count.saturating_add(1);
                        if st.app != event.application_id {
                            st.app.clone_from(&event.application_id);
                        }
                        if st.tenant != event.tenant_id {
                            st.tenant.clone_from(&event.tenant_id);
                        }
                    },
                );
            }
        }
    }

    fn tick(&mut self, now: Millis, out: &mut Vec<Finding>) {
        let p = &self.p;
        let Some(len) = p.metric.bucket() else { return };
        let target = now.div_euclid(len) * len;
        for (id, st) in self.entities.iter_mut() {
            if target <= st.open.start {
                continue;
            }
            let mut hits = Vec::new();
            st.close_until(p, len, target, &mut |hit| hits.push(hit));
            let origin = Origin::Tick { app: &st.app, tenant: st.tenant.as_deref() };
            out.extend(hits.iter().map(|hit| p.finding(origin, id, hit)));
        }
    }

    fn tracked(&self) -> usize {
        self.entities.len()
    }

    fn forget(&mut self, entity: &Entity) {
        if entity.kind == self.p.group_by {
            self.entities.remove(&entity.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::event::tests::event;

    /// A time aligned on the hour (and so on the minute).
    const T0: Millis = 494_444 * 3_600_000;
    const MIN: Millis = 60_000;

    fn detector(config: Value) -> StatisticalDetector {
        StatisticalDetector::new("stat", Severity::Warning, serde_json::from_value(config).unwrap()).unwrap()
    }

    fn error_of(config: Value) -> String {
        StatisticalDetector::new("stat", Severity::Warning, serde_json::from_value(config).unwrap()).unwrap_err()
    }

    fn with_cost(i: usize, ms: Millis, cost: f64) -> TelemetryEvent {
        let mut e = event(&format!("e{i}"), ms);
        e.data.cost = Some(cost);
        e
    }

    fn observe_all(d: &mut StatisticalDetector, events: impl IntoIterator<Item = TelemetryEvent>) -> Vec<Finding> {
        let mut out = Vec::new();
        for e in events {
            d.observe(&e, e.millis(), &mut out);
        }
        out
    }

    /// `n` events a second apart with costs alternating `level ± jitter`.
    fn flat(n: usize, level: f64, jitter: f64) -> impl Iterator<Item = TelemetryEvent> {
        (0..n).map(move |i| {
            let x = if i % 2 == 0 { level - jitter } else { level + jitter };
            with_cost(i, T0 + i as Millis * 1000, x)
        })
    }

    #[test]
    fn a_step_after_a_flat_stream_is_flagged_once_by_every_strategy() {
        // (strategy, jitter): a noisy and a perfectly constant baseline (the spread floor).
        for strategy in ["zscore", "mad", "ewma"] {
            for jitter in [0.0001, 0.0] {
                let mut d = detector(json!({"metric": "cost", "strategy": strategy}));
                let mut out = observe_all(&mut d, flat(40, 0.01, jitter));
                assert!(out.is_empty(), "{strategy}: {out:?}");
                let t = T0 + 40_000;
                out = observe_all(&mut d, [with_cost(40, t, 0.05)]);
                assert_eq!(out.len(), 1, "{strategy} {jitter}");
                let f = &out[0];
                assert!((f.baseline.unwrap() - 0.01).abs() < 1e-4, "{strategy}: {f:?}");
                assert_eq!(f.observed, Some(0.05));
                assert!(f.deviation.unwrap() > 3.0 && f.deviation.unwrap().is_finite(), "{f:?}");
                assert_eq!(f.threshold, Some(3.0));
                assert!(f.score > 0.5 && f.score <= 1.0);
                assert_eq!((f.window_start, f.window_end), (t - 3_600_000, t));
                assert_eq!(f.entity, Entity::new(EntityKind::Application, "chatbot"));
                assert_eq!(f.event_id.as_deref(), Some("e40"));
                assert!(f.title.starts_with("cost ") && f.title.ends_with("σ above baseline for application chatbot"));
                assert!(f.description.contains(strategy), "{}", f.description);
                // An ordinary value afterwards is not flagged.
                assert!(observe_all(&mut d, [with_cost(41, t + 1000, 0.0101)]).is_empty(), "{strategy}");
            }
        }
    }

    #[test]
    fn direction_selects_spikes_drops_or_both() {
        // (direction, next value, flagged)
        let cases = [
            ("up", 1.5, true),
            ("up", 0.5, false),
            ("down", 0.5, true),
            ("down", 1.5, false),
            ("both", 0.5, true),
            ("both", 1.5, true),
            ("both", 1.005, false),
        ];
        for (direction, x, flagged) in cases {
            let mut d = detector(json!({"metric": "cost", "direction": direction}));
            observe_all(&mut d, flat(40, 1.0, 0.01));
            let out = observe_all(&mut d, [with_cost(40, T0 + 40_000, x)]);
            assert_eq!(out.len(), usize::from(flagged), "{direction} {x}");
            if let Some(f) = out.first() {
                let below = x < 1.0;
                assert_eq!(f.deviation.unwrap() < 0.0, below);
                assert!(f.title.contains(if below { "below" } else { "above" }), "{}", f.title);
            }
        }
    }

    #[test]
    fn nothing_is_scored_before_min_samples_or_after_the_window_empties() {
        for (n, min_samples, flagged) in [(29, 30, false), (30, 30, true), (10, 10, true), (9, 10, false)] {
            let mut d = detector(json!({"metric": "cost", "min_samples": min_samples}));
            observe_all(&mut d, flat(n, 0.01, 0.0001));
            let out = observe_all(&mut d, [with_cost(n, T0 + n as Millis * 1000, 1.0)]);
            assert_eq!(out.len(), usize::from(flagged), "{n} samples, min_samples {min_samples}");
        }
        // The baseline is time-based: two hours later the 1h window is empty again.
        let mut d = detector(json!({"metric": "cost"}));
        observe_all(&mut d, flat(40, 0.01, 0.0001));
        assert!(observe_all(&mut d, [with_cost(40, T0 + 2 * 3_600_000, 1.0)]).is_empty());
        // And so is the EWMA.
        let mut d = detector(json!({"metric": "cost", "strategy": "ewma"}));
        observe_all(&mut d, flat(40, 0.01, 0.0001));
        assert!(observe_all(&mut d, [with_cost(40, T0 + 2 * 3_600_000, 1.0)]).is_empty());
    }

    #[test]
    fn max_samples_caps_the_baseline() {
        let mut d = detector(json!({"metric": "cost", "min_samples": 5, "max_samples": 5}));
        // An early outlier leaves the baseline once five newer values are in.
        observe_all(&mut d, [with_cost(0, T0, 100.0)]);
        observe_all(
            &mut d,
            flat(5, 0.01, 0.0001).map(|mut e| {
                e.timestamp += chrono::Duration::seconds(1);
                e
            }),
        );
        assert_eq!(observe_all(&mut d, [with_cost(9, T0 + 10_000, 1.0)]).len(), 1);
    }

    #[test]
    fn per_event_metrics_read_their_fields_and_skip_events_without_them() {
        type Set = fn(&mut TelemetryEvent, f64);
        let cases: [(&str, Set); 4] = [
            ("total_tokens", |e, x| e.data.total_tokens = Some(x as u64)),
            ("prompt_tokens", |e, x| e.data.prompt_tokens = Some(x as u64)),
            ("completion_tokens", |e, x| e.data.completion_tokens = Some(x as u64)),
            ("latency_ms", |e, x| e.data.latency_ms = Some(x)),
        ];
        for (metric, set) in cases {
            let mut d = detector(json!({"metric": metric}));
            let mut out = Vec::new();
            for i in 0..40 {
                let mut e = event(&format!("e{i}"), T0 + i * 1000);
                e.data.total_tokens = None;
                set(&mut e, if i % 2 == 0 { 990.0 } else { 1010.0 });
                d.observe(&e, 0, &mut out);
                // An event without the field changes nothing.
                let mut bare = event("bare", T0 + i * 1000);
                bare.data.total_tokens = None;
                d.observe(&bare, 0, &mut out);
            }
            let mut e = event("big", T0 + 40_000);
            set(&mut e, 5000.0);
            d.observe(&e, 0, &mut out);
            assert_eq!(out.len(), 1, "{metric}");
            assert_eq!(out[0].observed, Some(5000.0));
            assert!((out[0].baseline.unwrap() - 1000.0).abs() < 1e-6, "{metric}: {:?}", out[0]);
        }
    }

    #[test]
    fn a_cost_per_minute_zscore_over_5m_flags_a_spike_minute_when_the_next_one_starts() {
        let config: StatisticalConfig = serde_json::from_value(
            json!({"metric": "cost_per_minute", "strategy": "zscore", "threshold": 4.0, "window": "5m"}),
        )
        .unwrap();
        assert_eq!(config.window, 300_000);
        let mut d = StatisticalDetector::new("abnormal-cost-spike", Severity::Warning, config).unwrap();
        // 5m holds 5 buckets: the baseline widens to min_samples (30) minutes.
        assert_eq!(d.p.span, 30 * MIN);
        let mut events = Vec::new();
        for m in 0..40 {
            // Two calls a minute, 0.02 ± 0.002 in all.
            let x = if m % 2 == 0 { 0.009 } else { 0.011 };
            events.push(with_cost(events.len(), T0 + m * MIN, x));
            events.push(with_cost(events.len(), T0 + m * MIN + 30_000, x));
        }
        for i in 0..20 {
            events.push(with_cost(events.len(), T0 + 40 * MIN + i * 1000, 0.01));
        }
        assert!(observe_all(&mut d, events).is_empty());
        let out = observe_all(&mut d, [with_cost(99, T0 + 41 * MIN + 5, 0.01)]);
        assert_eq!(out.len(), 1, "{out:?}");
        let f = &out[0];
        assert_eq!((f.window_start, f.window_end), (T0 + 40 * MIN, T0 + 41 * MIN));
        assert!((f.observed.unwrap() - 0.2).abs() < 1e-9);
        assert!((f.baseline.unwrap() - 0.02).abs() < 1e-9, "{f:?}");
        assert!(f.deviation.unwrap() > 4.0);
        assert!(f.title.starts_with("cost_per_minute "), "{}", f.title);
        assert!(f.description.contains("in the 1m from"), "{}", f.description);
    }

    /// 40 minutes of ten requests a minute (nine or eleven), one of them failed.
    fn steady_minutes(minutes: Millis) -> Vec<TelemetryEvent> {
        let mut events = Vec::new();
        for m in 0..minutes {
            for i in 0..(if m % 2 == 0 { 9 } else { 11 }) {
                let mut e = event(&format!("m{m}-{i}"), T0 + m * MIN + i * 1000);
                if i == 0 {
                    e.data.status = Some("error".into());
                }
                events.push(e);
            }
        }
        events
    }

    #[test]
    fn tick_closes_a_quiet_bucket_and_scores_the_drop() {
        let mut d = detector(json!({"metric": "request_rate", "direction": "down"}));
        assert!(observe_all(&mut d, steady_minutes(40)).is_empty());
        let mut out = Vec::new();
        // Minute 39 is still open: nothing to close.
        d.tick(T0 + 39 * MIN + 59_999, &mut out);
        assert!(out.is_empty());
        // Minute 40 had no request: the tick after it closes it.
        d.tick(T0 + 41 * MIN + 10, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        let f = &out[0];
        assert_eq!(f.observed, Some(0.0));
        assert_eq!(f.baseline, Some(10.0));
        assert_eq!((f.window_start, f.window_end), (T0 + 40 * MIN, T0 + 41 * MIN));
        assert_eq!(f.event_id, None);
        assert_eq!(f.application_id.as_deref(), Some("chatbot"));
        assert_eq!(f.tenant_id.as_deref(), Some("acme"));
        // Ticking again at the same time closes nothing new.
        out.clear();
        d.tick(T0 + 41 * MIN + 20, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn tick_closes_a_spike_bucket_no_event_follows() {
        let mut d = detector(json!({"metric": "cost_per_minute"}));
        let mut events: Vec<_> =
            (0..40).map(|m| with_cost(m as usize, T0 + m * MIN, 0.01 + (m % 3) as f64 * 0.001)).collect();
        events.extend((0..10).map(|i| with_cost(100 + i, T0 + 40 * MIN + i as Millis, 1.0)));
        assert!(observe_all(&mut d, events).is_empty());
        let mut out = Vec::new();
        d.tick(T0 + 41 * MIN, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].observed, Some(10.0));
        assert_eq!(out[0].window_start, T0 + 40 * MIN);
    }

    #[test]
    fn an_idle_entity_relearns_and_a_long_gap_is_bounded_work() {
        // Back after two hours (more than the 30-bucket span) at the usual rate: no spike
        // against a baseline of zeros, and none while the baseline relearns.
        let mut d = detector(json!({"metric": "request_rate", "direction": "both"}));
        observe_all(&mut d, steady_minutes(40));
        let later: Vec<_> = steady_minutes(30)
            .into_iter()
            .map(|mut e| {
                e.timestamp += chrono::Duration::hours(2);
                e
            })
            .collect();
        let out = observe_all(&mut d, later);
        // Only the first empty minutes after the drop are reported, never more than the cap.
        assert!(!out.is_empty() && out.len() <= MAX_EMPTY_SCORED, "{}", out.len());
        assert!(out.iter().all(|f| f.observed == Some(0.0) && f.window_start < T0 + 71 * MIN));
        // Three days of silence, then a tick: bounded, and the drop is reported.
        let mut d = detector(json!({"metric": "request_rate", "direction": "down"}));
        observe_all(&mut d, steady_minutes(40));
        let mut out = Vec::new();
        d.tick(T0 + 3 * 86_400_000, &mut out);
        assert!(!out.is_empty() && out.len() <= MAX_EMPTY_SCORED);
        // Then the baseline is gone: nothing is scored for a while.
        out.clear();
        d.tick(T0 + 3 * 86_400_000 + 10 * MIN, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn error_rate_is_a_fraction_and_skips_empty_minutes() {
        let mut d = detector(json!({"metric": "error_rate", "direction": "both"}));
        let mut events = steady_minutes(40);
        // Minutes 40-44 are silent; minute 45 has 8 failures in 10.
        for i in 0..10 {
            let mut e = event(&format!("bad{i}"), T0 + 45 * MIN + i * 1000);
            if i < 8 {
                e.event_type = crate::event::EventType::Error;
            }
            events.push(e);
        }
        events.push(event("next", T0 + 46 * MIN));
        let out = observe_all(&mut d, events);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!((out[0].observed.unwrap() - 0.8).abs() < 1e-12);
        assert_eq!(out[0].window_start, T0 + 45 * MIN);
        assert!(out[0].baseline.unwrap() > 0.09 && out[0].baseline.unwrap() < 0.12);
    }

    #[test]
    fn cost_per_hour_and_tokens_per_minute_sum_their_fields() {
        let mut d = detector(json!({"metric": "cost_per_hour", "min_samples": 5}));
        assert_eq!(d.p.span, 5 * 3_600_000);
        let mut events: Vec<_> =
            (0..6).map(|h| with_cost(h as usize, T0 + h * 3_600_000, 1.0 + h as f64 * 0.01)).collect();
        events.push(with_cost(50, T0 + 6 * 3_600_000, 3.0));
        events.push(with_cost(51, T0 + 6 * 3_600_000 + 1, 3.0));
        events.push(with_cost(52, T0 + 7 * 3_600_000, 1.0));
        let out = observe_all(&mut d, events);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].observed, Some(6.0));
        assert_eq!(out[0].window_end - out[0].window_start, 3_600_000);

        let mut d = detector(json!({"metric": "tokens_per_minute"}));
        let mut events: Vec<_> = (0..40).map(|m| event(&format!("e{m}"), T0 + m * MIN)).collect();
        let mut big = event("big", T0 + 40 * MIN);
        big.data.total_tokens = Some(5000);
        events.push(big);
        events.push(event("next", T0 + 41 * MIN));
        let out = observe_all(&mut d, events);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].observed, Some(5000.0));
        assert_eq!(out[0].baseline, Some(100.0));
    }

    #[test]
    fn entities_are_grouped_and_bounded() {
        let mut d = detector(json!({"metric": "cost", "group_by": "user", "max_entities": 3}));
        let mut out = Vec::new();
        for i in 0..10 {
            let mut e = event(&format!("e{i}"), T0 + i);
            e.metadata.user_id = Some(format!("user-{i}"));
            d.observe(&e, 0, &mut out);
            assert!(d.tracked() <= 3);
        }
        assert_eq!(d.tracked(), 3);
        // Events without a user are not tracked.
        let mut anon = event("anon", T0);
        anon.metadata.user_id = None;
        d.observe(&anon, 0, &mut out);
        assert_eq!(d.tracked(), 3);
        // Each user has a baseline of its own: one user's spike is judged on its own history.
        let mut d = detector(json!({"metric": "cost", "group_by": "user", "min_samples": 5}));
        for i in 0..10 {
            for (user, cost) in [("cheap", 0.01), ("dear", 1.0)] {
                let mut e = with_cost(i, T0 + i as Millis * 1000, cost + (i % 2) as f64 * cost / 100.0);
                e.metadata.user_id = Some(user.into());
                d.observe(&e, 0, &mut out);
            }
        }
        assert!(out.is_empty());
        let mut e = with_cost(99, T0 + 20_000, 1.0);
        e.metadata.user_id = Some("cheap".into());
        d.observe(&e, 0, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].entity, Entity::new(EntityKind::User, "cheap"));
        assert!(out[0].title.ends_with("for user cheap"), "{}", out[0].title);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors_naming_the_field() {
        let e = serde_json::from_value::<StatisticalConfig>(json!({"metrik": "cost"})).unwrap_err().to_string();
        assert!(e.contains("metrik"), "{e}");
        let e = serde_json::from_value::<StatisticalConfig>(json!({"metric": "cost", "strategy": "median"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("median"), "{e}");
        let e = serde_json::from_value::<StatisticalConfig>(json!({"metric": "cost", "window": "5 minutes"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("5 minutes"), "{e}");
        let e = error_of(json!({"metric": "cots"}));
        assert!(
            e.starts_with("metric:") && e.contains("\"cots\"") && e.contains("cost_per_minute, cost_per_hour"),
            "{e}"
        );
        // (config, field named)
        let cases = [
            (json!({"metric": "cost", "threshold": 0.0}), "threshold:"),
            (json!({"metric": "cost", "threshold": -1.0}), "threshold:"),
            (json!({"metric": "cost", "min_samples": 1}), "min_samples:"),
            (json!({"metric": "cost", "alpha": 0.0}), "alpha:"),
            (json!({"metric": "cost", "alpha": 1.0}), "alpha:"),
            (json!({"metric": "cost", "max_entities": 0}), "max_entities:"),
            (json!({"metric": "cost", "max_samples": 10}), "max_samples:"),
            (json!({"metric": "cost", "max_samples": 10_000_000}), "max_samples:"),
        ];
        for (config, field) in cases {
            let e = error_of(config.clone());
            assert!(e.starts_with(field), "{config}: {e}");
        }
        let mut config: StatisticalConfig = serde_json::from_value(json!({"metric": "cost"})).unwrap();
        config.threshold = f64::NAN;
        assert!(StatisticalDetector::new("s", Severity::Info, config).unwrap_err().starts_with("threshold:"));
    }

    #[test]
    fn defaults_and_round_trips() {
        let c: StatisticalConfig = serde_json::from_value(json!({"metric": "cost"})).unwrap();
        assert_eq!(c.strategy, Strategy::Zscore);
        assert_eq!(c.threshold, 3.0);
        assert_eq!(c.window, 3_600_000);
        assert_eq!(c.min_samples, 30);
        assert_eq!(c.group_by, EntityKind::Application);
        assert_eq!(c.direction, Direction::Up);
        assert_eq!(c.alpha, 0.1);
        assert_eq!((c.max_entities, c.max_samples), (10_000, 1024));
        let full: StatisticalConfig = serde_norway::from_str(
            "metric: latency_ms\nstrategy: ewma\nthreshold: 2.5\nwindow: 15m\nmin_samples: 10\ngroup_by: model\n\
             direction: both\nalpha: 0.2\nmax_entities: 50\nmax_samples: 100\n",
        )
        .unwrap();
        for c in [c, full] {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<StatisticalConfig>(&json).unwrap(), c);
            let yaml = serde_norway::to_string(&c).unwrap();
            assert_eq!(serde_norway::from_str::<StatisticalConfig>(&yaml).unwrap(), c);
        }
        for m in Metric::ALL {
            assert_eq!(Metric::from_name(m.as_str()), Some(m));
            detector(json!({"metric": m.as_str()}));
        }
    }

    #[test]
    fn replays_are_deterministic() {
        let events: Vec<_> = flat(40, 0.01, 0.0001).chain([with_cost(40, T0 + 40_000, 0.05)]).collect();
        let run = || observe_all(&mut detector(json!({"metric": "cost", "strategy": "mad"})), events.clone());
        assert_eq!(run(), run());
    }

    #[test]
    fn median_and_mad_match_a_direct_computation() {
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((seed >> 33) % 20) as f64 - 5.0
        };
        let direct_median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            let n = v.len();
            if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
        };
        for n in 1..60 {
            let mut v: Vec<f64> = (0..n).map(|_| next()).collect();
            let median = direct_median(&mut v);
            let mut dev: Vec<f64> = v.iter().map(|x| (x - median).abs()).collect();
            let mad = direct_median(&mut dev);
            assert_eq!(median_mad(&v), (median, mad), "{v:?}");
        }
    }

    #[test]
    fn running_sums_stay_exact_over_many_evictions() {
        let mut w = Window::default();
        let values: Vec<f64> = (0..5000).map(|i| 1e9 + f64::from(i % 7)).collect();
        for (i, &x) in values.iter().enumerate() {
            w.push(i as Millis, x, 50);
        }
        let tail = &values[values.len() - 50..];
        let mean = tail.iter().sum::<f64>() / 50.0;
        let std = (tail.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 49.0).sqrt();
        let (m, s) = w.mean_std();
        assert!((m - mean).abs() < 1e-6 && (s - std).abs() < 1e-6, "{m} {s} vs {mean} {std}");
    }

    #[test]
    fn numbers_read_well() {
        for (x, s) in
            [(0.0, "0"), (0.01, "0.01"), (0.012345, "0.01235"), (12345.6, "12346"), (2.5, "2.5"), (1e-7, "0.0000001")]
        {
            assert_eq!(num(x), s);
        }
    }
}
