//! The seam every detector implements, what a detector reports, the
//! injected clock, and the bounded per-entity state detectors keep.

use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicI64, Ordering};

use serde::{Deserialize, Serialize};

use crate::event::TelemetryEvent;

/// Unix milliseconds.
pub type Millis = i64;

/// Where time comes from. Detectors never read the system clock: the
/// pipeline passes `now` in, so tests drive time and never sleep.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time in Unix milliseconds.
    fn now(&self) -> Millis;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock tests set by hand.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock at `ms`.
    pub fn new(ms: Millis) -> ManualClock {
        ManualClock(AtomicI64::new(ms))
    }

    /// Sets the time.
    pub fn set(&self, ms: Millis) {
        self.0.store(ms, Ordering::SeqCst);
    }

    /// Moves the time forward.
    pub fn advance(&self, ms: Millis) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

/// How bad an anomaly is: `info`, `warning` or `critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look.
    Info,
    /// Needs attention.
    #[default]
    Warning,
    /// Act now.
    Critical,
}

impl Severity {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// The kind of detector: the types the detector YAML accepts in `type:`,
/// plus `plugin` for an entry with a `plugin:` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    /// zscore / EWMA / MAD over a metric.
    Statistical,
    /// Threshold expressions.
    Rule,
    /// Per-entity baselines.
    Behavioral,
    /// The engine on prompts and completions (`type: ml` is accepted too, the
    /// name the published detector YAML uses).
    Threat,
    /// Token entropy from logprobs, and its drift.
    Entropy,
    /// An external process.
    Plugin,
}

impl DetectorKind {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            DetectorKind::Statistical => "statistical",
            DetectorKind::Rule => "rule",
            DetectorKind::Behavioral => "behavioral",
            DetectorKind::Threat => "threat",
            DetectorKind::Entropy => "entropy",
            DetectorKind::Plugin => "plugin",
        }
    }
}

/// What an entity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// An application (`application_id`).
    #[default]
    Application,
    /// A tenant.
    Tenant,
    /// An end user (`metadata.user_id`).
    User,
    /// A model (`data.model`).
    Model,
    /// A conversation (`metadata.session_id`).
    Session,
    /// A client address (`metadata.ip`).
    Ip,
}

impl EntityKind {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Application => "application",
            EntityKind::Tenant => "tenant",
            EntityKind::User => "user",
            EntityKind::Model => "model",
            EntityKind::Session => "session",
            EntityKind::Ip => "ip",
        }
    }

    /// The entity of this kind an event is about, if the event names one.
    pub fn of(self, e: &TelemetryEvent) -> Option<&str> {
        match self {
            EntityKind::Application => Some(&e.application_id),
            EntityKind::Tenant => e.tenant_id.as_deref(),
            EntityKind::User => e.metadata.user_id.as_deref(),
            EntityKind::Model => e.data.model.as_deref(),
            EntityKind::Session => e.metadata.session_id.as_deref(),
            EntityKind::Ip => e.metadata.ip.as_deref(),
        }
    }
}

/// The thing an anomaly is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entity {
    /// What it is.
    #[serde(rename = "type")]
    pub kind: EntityKind,
    /// Its id.
    pub id: String,
}

impl Entity {
    /// An entity.
    pub fn new(kind: EntityKind, id: impl Into<String>) -> Entity {
        Entity { kind, id: id.into() }
    }
}

/// One thing a detector found. The pipeline turns findings into anomalies
/// (deduplicated per detector, entity and window).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// How anomalous, in `[0, 1]`.
    pub score: f64,
    /// One line.
    pub title: String,
    /// What was seen, for people.
    pub description: String,
    /// What it is about.
    pub entity: Entity,
    /// The expected value.
    pub baseline: Option<f64>,
    /// The value seen.
    pub observed: Option<f64>,
    /// How far apart, in the detector's unit (z, MADs, ratio…).
    pub deviation: Option<f64>,
    /// The configured threshold on `deviation` (or on `observed`).
    pub threshold: Option<f64>,
    /// The window the finding covers.
    pub window_start: Millis,
    /// Its end.
    pub window_end: Millis,
    /// The event that triggered it, if one did.
    pub event_id: Option<String>,
    /// The application of that event (or of the entity).
    pub application_id: Option<String>,
    /// The tenant.
    pub tenant_id: Option<String>,
}

impl Finding {
    /// A finding about `entity` triggered by `e`, with the usual fields set from it.
    pub fn from_event(e: &TelemetryEvent, entity: Entity, severity: Severity, score: f64, title: String) -> Finding {
        let t = e.millis();
        Finding {
            severity,
            score: score.clamp(0.0, 1.0),
            title,
            description: String::new(),
            entity,
            baseline: None,
            observed: None,
            deviation: None,
            threshold: None,
            window_start: t,
            window_end: t,
            event_id: Some(e.event_id.clone()),
            application_id: Some(e.application_id.clone()),
            tenant_id: e.tenant_id.clone(),
        }
    }
}

/// Maps "how far past the threshold" to a score in `[0, 1)`: 0.5 at the
/// threshold, approaching 1 as the deviation grows.
pub fn score_of(deviation: f64, threshold: f64) -> f64 {
    let d = deviation.abs();
    let t = threshold.abs().max(f64::EPSILON);
    if !d.is_finite() { 1.0 } else { d / (d + t) }
}

/// A detector: watches events, reports findings. Implementations keep
/// per-entity state in an [`EntityMap`] so memory is bounded.
pub trait Detector: Send + std::fmt::Debug {
    /// The configured id.
    fn id(&self) -> &str;
    /// The kind.
    fn kind(&self) -> DetectorKind;
    /// Looks at one event; `now` is the pipeline's clock.
    fn observe(&mut self, event: &TelemetryEvent, now: Millis, out: &mut Vec<Finding>);
    /// Called periodically (and by tests) to close windows that no event closed.
    fn tick(&mut self, _now: Millis, _out: &mut Vec<Finding>) {}
    /// How many entities the detector tracks now.
    fn tracked(&self) -> usize {
        0
    }
    /// Drops what the detector holds about `entity` (erasure of a user):
    /// detectors that keep per-entity state remove that entity's, when
    /// they group by its kind. The default is for detectors with none.
    fn forget(&mut self, _entity: &Entity) {}
}

/// Per-entity state with a size bound: the least recently used entity is
/// dropped when a new one would exceed it.
#[derive(Debug)]
pub struct EntityMap<K: Hash + Eq, V> {
    inner: lru::LruCache<K, V>,
}

impl<K: Hash + Eq, V> EntityMap<K, V> {
    /// At most `cap` entities (at least 1).
    pub fn new(cap: usize) -> EntityMap<K, V> {
        EntityMap { inner: lru::LruCache::new(NonZeroUsize::new(cap.max(1)).unwrap_or(NonZeroUsize::MIN)) }
    }

    /// The entity's state, made with `make` when absent (evicting the
    /// least recently used one at the bound).
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        self.inner.get_or_insert_mut(key, make)
    }

    /// The entity's state, if tracked.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.inner.get_mut(key)
    }

    /// Drops the entity's state; false when it was not tracked.
    pub fn remove(&mut self, key: &K) -> bool {
        self.inner.pop(key).is_some()
    }

    /// Entities tracked.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when none is tracked.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Every entity, most recently used first.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.inner.iter_mut()
    }
}

/// Parses `500ms`, `30s`, `5m`, `1h`, `2d` into milliseconds.
pub fn parse_duration(s: &str) -> Result<Millis, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().map_err(|_| format!("{s:?} is not a duration like 30s, 5m, 1h"))?;
    let mult = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{s:?}: unit must be ms, s, m, h or d")),
    };
    if n <= 0 {
        return Err(format!("{s:?} must be positive"));
    }
    n.checked_mul(mult).ok_or_else(|| format!("{s:?} is too long"))
}

/// Serde helper: a duration string as milliseconds.
pub mod duration_str {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Reads `5m`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_duration(&s).map_err(serde::de::Error::custom)
    }

    /// Writes milliseconds back as the largest whole unit.
    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*ms))
    }
}

/// Formats milliseconds as the largest whole unit (`300000` → `5m`).
pub fn format_duration(ms: Millis) -> String {
    for (unit, m) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
        if ms >= m && ms % m == 0 {
            return format!("{}{unit}", ms / m);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Ok(300_000));
        assert_eq!(parse_duration("1h"), Ok(3_600_000));
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("").is_err());
        for ms in [250, 1000, 300_000, 3_600_000, 90_000] {
            assert_eq!(parse_duration(&format_duration(ms)), Ok(ms));
        }
    }

    #[test]
    fn scores() {
        assert_eq!(score_of(3.0, 3.0), 0.5);
        assert!(score_of(9.0, 3.0) > 0.7 && score_of(9.0, 3.0) < 1.0);
        assert_eq!(score_of(f64::INFINITY, 3.0), 1.0);
    }

    #[test]
    fn entity_map_is_bounded() {
        let mut m = EntityMap::new(2);
        *m.get_or_insert_with("a", || 0) += 1;
        *m.get_or_insert_with("b", || 0) += 1;
        *m.get_or_insert_with("a", || 0) += 1;
        *m.get_or_insert_with("c", || 0) += 1; // evicts b, the least recently used
        assert_eq!(m.len(), 2);
        assert!(m.get_mut(&"b").is_none());
        assert_eq!(m.get_mut(&"a").copied(), Some(2));
    }
}
