//! The `entropy` detector: how unsure the model was of what it wrote, from
//! the log-probabilities of the sampled tokens (`data.logprobs`, natural log).
//!
//! A completion's value is its mean token surprisal, `−mean(logprobs)` in
//! nats. We call it the mean token entropy: it is the sampled-token estimate
//! of the entropy of the model's next-token distributions (the full
//! distributions are not in the telemetry). A completion above `threshold`
//! (default 2.5 nats, a typical token having had a probability below e⁻²·⁵ ≈
//! 8 %) is reported on its own.
//!
//! Drift: per `group_by` entity (a model by default) the first
//! `baseline_size` completions form the baseline, cut into `bins` equal-width
//! bins over its range (values outside the range fall in the end bins; a
//! baseline of one value is widened by ½ nat each way). Then every
//! `window_size` completions the recent window's histogram is compared with
//! the baseline's by the Population Stability Index, `Σ (q − p)·ln(q / p)`,
//! and a PSI above `psi_threshold` is reported. The epsilon that keeps empty
//! bins finite is half a count added to every bin of both histograms
//! (Jeffreys smoothing) rather than a floor such as 10⁻⁴ on the shares: PSI
//! is noisy on small windows, and in simulation (normal and log-normal
//! values, the defaults) the floor reported drift on 28–31 % of windows of an
//! unchanged distribution, the half count on 8–11 %, while both still catch
//! a shift of one standard deviation in ≥ 99 % of windows. Raise
//! `window_size` where false drift findings cost more than late ones (at 500
//! the floor's false rate is already 0.2 %). Events without logprobs, or
//! without the `group_by` entity, are ignored.
//!
//! Memory per entity, besides its key and the LRU node (≈ 100 bytes):
//! 8 bytes × `baseline_size` while the baseline is learned (1.6 KB at the
//! default 200), then 12 bytes × `bins` plus ≈ 64 bytes (the baseline values
//! are dropped once binned). At most `max_entities` entities are held; the
//! least recently seen is dropped first.

use serde::{Deserialize, Serialize};

use super::statistical::{num, with_entity};
use crate::detector::{Detector, DetectorKind, Entity, EntityKind, EntityMap, Finding, Millis, Severity, score_of};
use crate::event::TelemetryEvent;

/// Pseudo-count added to every bin before taking shares, so an empty bin stays finite.
const PSEUDO_COUNT: f64 = 0.5;
/// Largest accepted `baseline_size` and `window_size`.
const MAX_SIZE: usize = 1_000_000;
/// Largest accepted `bins`.
const MAX_BINS: usize = 1000;

/// The `entropy` detector's `config:` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntropyConfig {
    /// Mean token entropy (nats) above which a completion is reported (default 2.5).
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Completions per entity in the drift baseline (default 200).
    #[serde(default = "default_baseline_size")]
    pub baseline_size: usize,
    /// Completions per drift comparison (default 100).
    #[serde(default = "default_window_size")]
    pub window_size: usize,
    /// Histogram bins, 2 to 1000 (default 10).
    #[serde(default = "default_bins")]
    pub bins: usize,
    /// PSI above which drift is reported (default 0.2).
    #[serde(default = "default_psi_threshold")]
    pub psi_threshold: f64,
    /// Whose baseline (default `model`).
    #[serde(default = "default_group_by")]
    pub group_by: EntityKind,
    /// Entities tracked at most (default 10 000).
    #[serde(default = "default_max_entities")]
    pub max_entities: usize,
}

fn default_threshold() -> f64 {
    2.5
}

fn default_baseline_size() -> usize {
    200
}

fn default_window_size() -> usize {
    100
}

fn default_bins() -> usize {
    10
}

fn default_psi_threshold() -> f64 {
    0.2
}

fn default_group_by() -> EntityKind {
    EntityKind::Model
}

fn default_max_entities() -> usize {
    10_000
}

impl Default for EntropyConfig {
    fn default() -> EntropyConfig {
        EntropyConfig {
            threshold: default_threshold(),
            baseline_size: default_baseline_size(),
            window_size: default_window_size(),
            bins: default_bins(),
            psi_threshold: default_psi_threshold(),
            group_by: default_group_by(),
            max_entities: default_max_entities(),
        }
    }
}

/// The binned baseline and the recent window's histogram.
#[derive(Debug)]
struct Drift {
    lo: f64,
    width: f64,
    /// Baseline share per bin, smoothed with [`PSEUDO_COUNT`].
    base: Box<[f64]>,
    base_mean: f64,
    counts: Box<[u32]>,
    n: usize,
    sum: f64,
    /// Time of the window's first completion.
    since: Millis,
}

impl Drift {
    /// Bins `values` (not empty).
    fn new(values: &[f64], bins: usize) -> Drift {
        let (mut lo, mut hi) =
            values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| (l.min(x), h.max(x)));
        // The values are finite (see `mean_token_entropy`).
        if hi - lo <= 1e-9 {
            (lo, hi) = (lo - 0.5, hi + 0.5);
        }
        let mut d = Drift {
            lo,
            width: (hi - lo) / bins as f64,
            base: vec![0.0; bins].into_boxed_slice(),
            base_mean: values.iter().sum::<f64>() / values.len() as f64,
            counts: vec![0; bins].into_boxed_slice(),
            n: 0,
            sum: 0.0,
            since: 0,
        };
        for &x in values {
            let i = d.bin(x);
            d.base[i] += 1.0;
        }
        let total = values.len() as f64 + PSEUDO_COUNT * bins as f64;
        for share in d.base.iter_mut() {
            *share = (*share + PSEUDO_COUNT) / total;
        }
        d
    }

    /// The bin of `x`; values outside the baseline's range fall in the end bins.
    fn bin(&self, x: f64) -> usize {
        // A float-to-int cast saturates: values below the range give 0.
        (((x - self.lo) / self.width).floor() as usize).min(self.base.len() - 1)
    }

    /// The Population Stability Index of the window against the baseline.
    fn psi(&self) -> f64 {
        let total = self.n as f64 + PSEUDO_COUNT * self.counts.len() as f64;
        self.base
            .iter()
            .zip(self.counts.iter())
            .map(|(&p, &c)| {
                let q = (f64::from(c) + PSEUDO_COUNT) / total;
                (q - p) * (q / p).ln()
            })
            .sum()
    }
}

/// One entity's state.
#[derive(Debug)]
enum Group {
    /// The first values, until there are `baseline_size` of them.
    Learning(Vec<f64>),
    Watching(Drift),
}

/// A drift finding's numbers.
struct DriftHit {
    psi: f64,
    base_mean: f64,
    recent_mean: f64,
    since: Millis,
}

/// The checked configuration.
#[derive(Debug, Clone)]
struct Params {
    severity: Severity,
    threshold: f64,
    baseline_size: usize,
    window_size: usize,
    bins: usize,
    psi_threshold: f64,
    group_by: EntityKind,
}

impl Group {
    /// Adds `h`; returns the baseline mean once there is a baseline, and a
    /// drift finding when a window completes past the threshold.
    fn observe(&mut self, p: &Params, t: Millis, h: f64) -> (Option<f64>, Option<DriftHit>) {
        match self {
            Group::Learning(values) => {
                values.push(h);
                if values.len() >= p.baseline_size {
                    *self = Group::Watching(Drift::new(values, p.bins));
                }
                (None, None)
            }
            Group::Watching(d) => {
                if d.n == 0 {
                    d.since = t;
                }
                let i = d.bin(h);
                d.counts[i] += 1;
                d.n += 1;
                d.sum += h;
                if d.n < p.window_size {
                    return (Some(d.base_mean), None);
                }
                let psi = d.psi();
                let hit = DriftHit { psi, base_mean: d.base_mean, recent_mean: d.sum / d.n as f64, since: d.since };
                d.counts.fill(0);
                (d.n, d.sum) = (0, 0.0);
                (Some(d.base_mean), (psi > p.psi_threshold).then_some(hit))
            }
        }
    }
}

/// Flags high-entropy completions and drift in a model's entropy.
#[derive(Debug)]
pub struct EntropyDetector {
    id: String,
    p: Params,
    entities: EntityMap<String, Group>,
    /// Reused to look entities up without allocating.
    key: String,
}

impl EntropyDetector {
    /// Checks the config; the error names the offending field.
    pub fn new(id: &str, severity: Severity, config: EntropyConfig) -> Result<EntropyDetector, String> {
        let c = config;
        for (field, value) in [("threshold", c.threshold), ("psi_threshold", c.psi_threshold)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(format!("{field}: must be a finite number > 0 (got {value})"));
            }
        }
        if !(2..=MAX_BINS).contains(&c.bins) {
            return Err(format!("bins: must be between 2 and {MAX_BINS} (got {})", c.bins));
        }
        if !(c.bins..=MAX_SIZE).contains(&c.baseline_size) {
            return Err(format!(
                "baseline_size: must be between bins ({}) and {MAX_SIZE} (got {})",
                c.bins, c.baseline_size
            ));
        }
        if !(1..=MAX_SIZE).contains(&c.window_size) {
            return Err(format!("window_size: must be between 1 and {MAX_SIZE} (got {})", c.window_size));
        }
        if c.max_entities == 0 {
            return Err("max_entities: must be at least 1".into());
        }
        Ok(EntropyDetector {
            id: id.to_owned(),
            p: Params {
                severity,
                threshold: c.threshold,
                baseline_size: c.baseline_size,
                window_size: c.window_size,
                bins: c.bins,
                psi_threshold: c.psi_threshold,
                group_by: c.group_by,
            },
            entities: EntityMap::new(c.max_entities),
            key: String::new(),
        })
    }
}

/// The Population Stability Index of `recent` against `baseline`, binned
/// and smoothed as the detector does (`bins` equal-width bins over the
/// baseline's range, half a count added to every bin); `None` when either
/// is empty or `bins` is outside 2..=1000. Dashboards chart drift with it.
pub fn population_stability(baseline: &[f64], recent: &[f64], bins: usize) -> Option<f64> {
    if baseline.is_empty() || recent.is_empty() || !(2..=MAX_BINS).contains(&bins) {
        return None;
    }
    let mut d = Drift::new(baseline, bins);
    for &x in recent {
        let i = d.bin(x);
        d.counts[i] += 1;
        d.n += 1;
    }
    Some(d.psi())
}

/// The mean token entropy (surprisal) of a completion, in nats.
pub fn mean_token_entropy(logprobs: &[f64]) -> Option<f64> {
    if logprobs.is_empty() {
        return None;
    }
    let h = -logprobs.iter().sum::<f64>() / logprobs.len() as f64;
    h.is_finite().then_some(h)
}

impl Detector for EntropyDetector {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> DetectorKind {
        DetectorKind::Entropy
    }

    fn observe(&mut self, event: &TelemetryEvent, _now: Millis, out: &mut Vec<Finding>) {
        let p = &self.p;
        let Some(logprobs) = event.data.logprobs.as_deref() else { return };
        let Some(h) = mean_token_entropy(logprobs) else { return };
        let Some(id) = p.group_by.of(event) else { return };
        let t = event.millis();
        let make = || Group::Learning(Vec::with_capacity(p.baseline_size.min(1024)));
        let (base_mean, drift) = with_entity(&mut self.entities, &mut self.key, id, make, |g| g.observe(p, t, h));
        let kind = p.group_by.as_str();
        if h > p.threshold {
            let title = format!("completion token entropy {h:.2} nats above {} for {kind} {id}", num(p.threshold));
            let mut f =
                Finding::from_event(event, Entity::new(p.group_by, id), p.severity, score_of(h, p.threshold), title);
            f.description = format!(
                "mean token entropy {h:.3} nats (−mean logprob of the {} sampled tokens) > threshold {}{}",
                logprobs.len(),
                num(p.threshold),
                base_mean.map_or_else(String::new, |m| format!("; {kind} {id}'s baseline mean {m:.3} nats")),
            );
            f.baseline = base_mean;
            f.observed = Some(h);
            f.deviation = Some(h);
            f.threshold = Some(p.threshold);
            out.push(f);
        }
        if let Some(d) = drift {
            let title = format!("token entropy of {kind} {id} drifted (PSI {:.2} > {})", d.psi, num(p.psi_threshold));
            let score = score_of(d.psi, p.psi_threshold);
            let mut f = Finding::from_event(event, Entity::new(p.group_by, id), p.severity, score, title);
            f.description = format!(
                "PSI {:.3} over {} bins between the mean token entropy of {kind} {id}'s last {} completions \
                 (mean {:.3} nats) and its first {} (mean {:.3} nats); threshold {}",
                d.psi,
                p.bins,
                p.window_size,
                d.recent_mean,
                p.baseline_size,
                d.base_mean,
                num(p.psi_threshold)
            );
            f.baseline = Some(d.base_mean);
            f.observed = Some(d.recent_mean);
            f.deviation = Some(d.psi);
            f.threshold = Some(p.psi_threshold);
            f.window_start = d.since;
            out.push(f);
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

    const T0: Millis = 494_444 * 3_600_000;

    fn detector(config: Value) -> EntropyDetector {
        EntropyDetector::new("entropy", Severity::Warning, serde_json::from_value(config).unwrap()).unwrap()
    }

    /// A completion of `model` whose mean token entropy is `h`.
    fn completion(i: usize, model: &str, h: f64) -> TelemetryEvent {
        let mut e = event(&format!("e{i}"), T0 + i as Millis * 1000);
        e.data.model = Some(model.into());
        e.data.logprobs = Some(vec![-h * 0.5, -h * 1.5, -h]);
        e
    }

    fn observe(d: &mut EntropyDetector, e: &TelemetryEvent) -> Vec<Finding> {
        let mut out = Vec::new();
        d.observe(e, e.millis(), &mut out);
        out
    }

    /// The `i`-th value of an evenly spread sequence in `[lo, lo + width)`.
    fn spread(i: usize, lo: f64, width: f64) -> f64 {
        lo + width * (i as f64 * 0.618_033_988_749_895).fract()
    }

    #[test]
    fn a_high_entropy_completion_is_flagged() {
        let mut d = detector(json!({}));
        // (mean token entropy, flagged)
        for (i, (h, flagged)) in [(0.3, false), (2.4, false), (2.6, true), (6.0, true)].into_iter().enumerate() {
            let out = observe(&mut d, &completion(i, "gpt-4o", h));
            assert_eq!(out.len(), usize::from(flagged), "{h}");
            if let Some(f) = out.first() {
                assert!((f.observed.unwrap() - h).abs() < 1e-12);
                assert_eq!(f.threshold, Some(2.5));
                assert_eq!(f.entity, Entity::new(EntityKind::Model, "gpt-4o"));
                assert!(f.title.starts_with("completion token entropy"), "{}", f.title);
                assert!(f.description.contains("3 sampled tokens"), "{}", f.description);
                assert_eq!(f.baseline, None);
            }
        }
        // Without logprobs, with none, or without a model: ignored.
        let mut bare = completion(10, "gpt-4o", 5.0);
        bare.data.logprobs = None;
        let mut empty = completion(11, "gpt-4o", 5.0);
        empty.data.logprobs = Some(vec![]);
        let mut anonymous = completion(12, "gpt-4o", 5.0);
        anonymous.data.model = None;
        let mut d = detector(json!({}));
        for e in [bare, empty, anonymous] {
            assert!(observe(&mut d, &e).is_empty());
        }
        assert_eq!(d.tracked(), 0);
    }

    #[test]
    fn a_shift_in_the_distribution_is_drift_and_a_stable_one_is_not() {
        let mut d = detector(json!({"threshold": 100.0}));
        let mut found = Vec::new();
        // Baseline: 200 completions per model spread over [1, 2) nats.
        for i in 0..200 {
            for model in ["stable", "shifted"] {
                found.extend(observe(&mut d, &completion(i, model, spread(i, 1.0, 1.0))));
            }
        }
        assert!(found.is_empty());
        // Three windows: one model stays put, the other moves up by half a nat.
        let (mut stable, mut shifted) = (Vec::new(), Vec::new());
        for i in 200..500 {
            stable.extend(observe(&mut d, &completion(i, "stable", spread(i, 1.0, 1.0))));
            shifted.extend(observe(&mut d, &completion(i, "shifted", spread(i, 1.5, 1.0))));
        }
        assert!(stable.is_empty(), "{stable:?}");
        assert_eq!(shifted.len(), 3, "{shifted:?}");
        let f = &shifted[0];
        assert!(f.deviation.unwrap() > 0.2, "{f:?}");
        assert!((f.baseline.unwrap() - 1.5).abs() < 0.02 && (f.observed.unwrap() - 2.0).abs() < 0.02, "{f:?}");
        assert_eq!((f.window_start, f.window_end), (T0 + 200_000, T0 + 299_000));
        assert_eq!(f.event_id.as_deref(), Some("e299"));
        assert!(f.title.starts_with("token entropy of model shifted drifted (PSI"), "{}", f.title);
    }

    #[test]
    fn psi_is_zero_for_the_baseline_itself_and_grows_with_the_shift() {
        let base: Vec<f64> = (0..1000).map(|i| spread(i, 0.0, 1.0)).collect();
        let psi_of = |shift: f64| {
            let mut d = Drift::new(&base, 10);
            for &x in &base {
                let i = d.bin(x + shift);
                d.counts[i] += 1;
                d.n += 1;
            }
            d.psi()
        };
        assert!(psi_of(0.0).abs() < 1e-12);
        let (small, large) = (psi_of(0.05), psi_of(0.5));
        assert!(small > 0.0 && small < 0.2 && large > 1.0, "{small} {large}");
        // A constant baseline still bins: values beyond the widened range land in the end bins.
        let mut d = Drift::new(&[1.0; 20], 10);
        assert_eq!((d.bin(1.0), d.bin(-5.0), d.bin(9.0)), (5, 0, 9));
        d.counts[9] = 10;
        d.n = 10;
        assert!(d.psi().is_finite() && d.psi() > 1.0);
    }

    #[test]
    fn population_stability_matches_the_detectors_psi() {
        let base: Vec<f64> = (0..500).map(|i| spread(i, 1.0, 1.0)).collect();
        let shifted: Vec<f64> = base.iter().map(|x| x + 0.5).collect();
        assert!(population_stability(&base, &base, 10).unwrap().abs() < 1e-12);
        assert!(population_stability(&base, &shifted, 10).unwrap() > 1.0);
        assert_eq!(population_stability(&[], &base, 10), None);
        assert_eq!(population_stability(&base, &base, 1), None);
    }

    #[test]
    fn entities_are_grouped_and_bounded() {
        let mut d = detector(json!({"group_by": "user", "max_entities": 2}));
        for i in 0..10 {
            let mut e = completion(i, "gpt-4o", 1.0);
            e.metadata.user_id = Some(format!("user-{i}"));
            observe(&mut d, &e);
            assert!(d.tracked() <= 2);
        }
        assert_eq!(d.tracked(), 2);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors_naming_the_field() {
        let e = serde_json::from_value::<EntropyConfig>(json!({"psi": 0.2})).unwrap_err().to_string();
        assert!(e.contains("psi"), "{e}");
        // (config, field named)
        let cases = [
            (json!({"threshold": 0.0}), "threshold:"),
            (json!({"psi_threshold": -0.1}), "psi_threshold:"),
            (json!({"bins": 1}), "bins:"),
            (json!({"bins": 5000}), "bins:"),
            (json!({"baseline_size": 5}), "baseline_size:"),
            (json!({"window_size": 0}), "window_size:"),
            (json!({"max_entities": 0}), "max_entities:"),
        ];
        for (config, field) in cases {
            let e =
                EntropyDetector::new("e", Severity::Info, serde_json::from_value(config.clone()).unwrap()).unwrap_err();
            assert!(e.starts_with(field), "{config}: {e}");
        }
    }

    #[test]
    fn defaults_and_round_trips() {
        let c = EntropyConfig::default();
        assert_eq!(serde_json::from_value::<EntropyConfig>(json!({})).unwrap(), c);
        assert_eq!((c.threshold, c.baseline_size, c.window_size, c.bins, c.psi_threshold), (2.5, 200, 100, 10, 0.2));
        assert_eq!((c.group_by, c.max_entities), (EntityKind::Model, 10_000));
        let full: EntropyConfig = serde_norway::from_str(
            "threshold: 3\nbaseline_size: 500\nwindow_size: 250\nbins: 20\npsi_threshold: 0.25\ngroup_by: application\n\
             max_entities: 100\n",
        )
        .unwrap();
        for c in [c, full] {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<EntropyConfig>(&json).unwrap(), c);
            let yaml = serde_norway::to_string(&c).unwrap();
            assert_eq!(serde_norway::from_str::<EntropyConfig>(&yaml).unwrap(), c);
        }
    }

    #[test]
    fn mean_token_entropy_is_the_mean_surprisal() {
        assert_eq!(mean_token_entropy(&[]), None);
        assert_eq!(mean_token_entropy(&[-1.0, -2.0, -3.0]), Some(2.0));
        assert_eq!(mean_token_entropy(&[0.0]), Some(0.0));
    }
}
