//! Attack-success statistics: rates with Wilson score and percentile
//! bootstrap 95% intervals, and the rate corrected for an imperfect judge.

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// A rate `successes / trials` with its two 95% intervals.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Rate {
    /// Trials.
    pub trials: usize,
    /// Successful attacks.
    pub successes: usize,
    /// successes / trials (0 when there are no trials).
    pub rate: f64,
    /// Wilson score interval.
    pub wilson: (f64, f64),
    /// Percentile bootstrap interval.
    pub bootstrap: (f64, f64),
    /// Fewer than 30 trials: the intervals are wide and the rate is a
    /// rough guide only.
    pub few_trials: bool,
}

impl Rate {
    /// The rate of `outcomes` (true = the attack succeeded), with a
    /// bootstrap of `resamples` draws from a generator seeded by `seed`.
    pub fn of(outcomes: &[bool], resamples: usize, seed: u64) -> Rate {
        let trials = outcomes.len();
        let successes = outcomes.iter().filter(|o| **o).count();
        Rate {
            trials,
            successes,
            rate: if trials == 0 { 0.0 } else { successes as f64 / trials as f64 },
            wilson: wilson(successes, trials),
            bootstrap: bootstrap(outcomes, resamples, seed),
            few_trials: trials < 30,
        }
    }
}

/// The Wilson score 95% interval of `k` successes in `n` trials; (0, 1)
/// when there are none.
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n = n as f64;
    let p = k as f64 / n;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The percentile bootstrap 95% interval of the success rate: `resamples`
/// samples of the same size drawn with replacement. Deterministic for a
/// seed.
pub fn bootstrap(outcomes: &[bool], resamples: usize, seed: u64) -> (f64, f64) {
    let n = outcomes.len();
    if n == 0 || resamples == 0 {
        return (0.0, 1.0);
    }
    let mut rng = SplitMix64::new(seed);
    let mut rates: Vec<f64> = (0..resamples)
        .map(|_| {
            let hits = (0..n).filter(|_| outcomes[rng.below(n)]).count();
            hits as f64 / n as f64
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    let at = |q: f64| rates[((q * (resamples - 1) as f64).round() as usize).min(resamples - 1)];
    (at(0.025), at(0.975))
}

/// The success rate corrected for a judge that errs (Rogan–Gladen): with
/// the judge's sensitivity (successes it recognises) and specificity
/// (failures it recognises), `(p + sp - 1) / (se + sp - 1)`, clamped to
/// [0, 1]. `None` when the judge is no better than chance.
pub fn corrected_rate(observed: f64, sensitivity: f64, specificity: f64) -> Option<f64> {
    let youden = sensitivity + specificity - 1.0;
    (youden > 0.0).then(|| ((observed + specificity - 1.0) / youden).clamp(0.0, 1.0))
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny generator whose output
/// for a seed is fixed by its definition, so sampling and bootstrap
/// figures are reproducible across builds and versions — a general
/// purpose RNG crate does not promise that.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0), by rejection so every value is equally
    /// likely.
    pub fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return (x % n) as usize;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_published_values() {
        // 15 of 30: (0.332, 0.668); 0 of 10: (0, 0.278); 10 of 10: (0.722, 1).
        let (lo, hi) = wilson(15, 30);
        assert!((lo - 0.3315).abs() < 1e-3 && (hi - 0.6685).abs() < 1e-3, "{lo} {hi}");
        let (lo, hi) = wilson(0, 10);
        assert!(lo == 0.0 && (hi - 0.2775).abs() < 1e-3, "{hi}");
        let (lo, hi) = wilson(10, 10);
        assert!((lo - 0.7225).abs() < 1e-3 && (hi - 1.0).abs() < 1e-12, "{lo} {hi}");
    }

    #[test]
    fn bootstrap_is_deterministic_and_brackets_the_rate() {
        let outcomes: Vec<bool> = (0..200).map(|i| i % 4 == 0).collect();
        let a = bootstrap(&outcomes, 2000, 7);
        assert_eq!(a, bootstrap(&outcomes, 2000, 7));
        assert!(a.0 < 0.25 && a.1 > 0.25 && a.0 > 0.15 && a.1 < 0.35, "{a:?}");
        // Close to Wilson for a sample this size.
        let w = wilson(50, 200);
        assert!((a.0 - w.0).abs() < 0.02 && (a.1 - w.1).abs() < 0.02, "{a:?} {w:?}");
    }

    #[test]
    fn rates_flag_few_trials() {
        let r = Rate::of(&[true, false, false], 100, 1);
        assert!(r.few_trials && (r.rate - 1.0 / 3.0).abs() < 1e-9);
        assert!(!Rate::of(&[false; 30], 100, 1).few_trials);
        assert_eq!(Rate::of(&[], 100, 1).wilson, (0.0, 1.0));
    }

    #[test]
    fn judge_correction() {
        // A perfect judge changes nothing.
        let same = corrected_rate(0.3, 1.0, 1.0).expect("perfect judge");
        assert!((same - 0.3).abs() < 1e-12, "{same}");
        // A judge that calls 10% of failures successes inflates the rate.
        let c = corrected_rate(0.19, 1.0, 0.9).expect("informative judge");
        assert!((c - 0.1).abs() < 1e-9, "{c}");
        assert_eq!(corrected_rate(0.5, 0.5, 0.5), None);
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = SplitMix64::new(3);
        for n in [1, 2, 3, 7, 1000] {
            for _ in 0..200 {
                assert!(r.below(n) < n);
            }
        }
    }
}
