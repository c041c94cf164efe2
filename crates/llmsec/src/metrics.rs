//! The arithmetic of `llmsec eval`: precision/recall/F1 from counts, rates
//! that are undefined (not zero) when nothing was counted, and latency
//! percentiles by the nearest-rank method.

use serde::Serialize;

/// `num / den`, or `None` when `den` is zero.
pub fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// Precision, recall and F1 of one class. A figure whose denominator is
/// zero is `None` (`null` in JSON, `-` in tables).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prf {
    /// Rows predicted as the class that are the class.
    pub precision: Option<f64>,
    /// Rows of the class predicted as it.
    pub recall: Option<f64>,
    /// Harmonic mean of precision and recall.
    pub f1: Option<f64>,
    /// Rows of the class.
    pub support: u64,
    /// True positives.
    pub tp: u64,
    /// False positives.
    pub fp: u64,
    /// False negatives.
    #[serde(rename = "fn")]
    pub fn_: u64,
}

impl Prf {
    /// The figures for `tp` true positives, `fp` false positives and `fn_`
    /// false negatives.
    pub fn from_counts(tp: u64, fp: u64, fn_: u64) -> Prf {
        let precision = ratio(tp, tp + fp);
        let recall = ratio(tp, tp + fn_);
        let f1 = match (precision, recall) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        };
        Prf { precision, recall, f1, support: tp + fn_, tp, fp, fn_ }
    }
}

/// Latency figures in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Calls measured.
    pub calls: u64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Slowest call.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
    /// Sum of all calls, in seconds.
    pub total_s: f64,
    /// Calls per second of engine time on one thread (`calls / total_s`).
    pub throughput_per_s: Option<f64>,
}

impl Latency {
    /// Figures for per-call wall times in nanoseconds (sorted in place).
    pub fn from_nanos(samples: &mut [u64]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let us = |ns: u64| ns as f64 / 1_000.0;
        let total: u128 = samples.iter().map(|&n| u128::from(n)).sum();
        let total_s = total as f64 / 1e9;
        let calls = samples.len() as u64;
        Latency {
            calls,
            p50_us: us(percentile(samples, 50.0)),
            p90_us: us(percentile(samples, 90.0)),
            p99_us: us(percentile(samples, 99.0)),
            max_us: us(samples[samples.len() - 1]),
            mean_us: total as f64 / 1_000.0 / calls as f64,
            total_s,
            throughput_per_s: (total_s > 0.0).then(|| calls as f64 / total_s),
        }
    }
}

/// The nearest-rank `p`th percentile of sorted, non-empty `sorted`.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prf_matches_hand_computed_values() {
        // 8 caught, 2 false alarms, 4 missed.
        let m = Prf::from_counts(8, 2, 4);
        assert_eq!(m.precision, Some(0.8));
        assert!((m.recall.unwrap_or(0.0) - 8.0 / 12.0).abs() < 1e-12);
        let f1 = 2.0 * 0.8 * (8.0 / 12.0) / (0.8 + 8.0 / 12.0);
        assert!((m.f1.unwrap_or(0.0) - f1).abs() < 1e-12);
        assert_eq!(m.support, 12);
    }

    #[test]
    fn prf_is_undefined_not_zero_without_predictions() {
        let m = Prf::from_counts(0, 0, 5);
        assert_eq!(m.precision, None);
        assert_eq!(m.recall, Some(0.0));
        assert_eq!(m.f1, None);
        let none = Prf::from_counts(0, 0, 0);
        assert_eq!((none.precision, none.recall, none.f1), (None, None, None));
        let zero = Prf::from_counts(0, 3, 3);
        assert_eq!(zero.f1, Some(0.0));
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 90.0), 90);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn latency_summarises_nanoseconds_in_microseconds() {
        let mut v = vec![3_000, 1_000, 2_000, 4_000];
        let l = Latency::from_nanos(&mut v);
        assert_eq!(l.calls, 4);
        assert_eq!(l.p50_us, 2.0);
        assert_eq!(l.max_us, 4.0);
        assert_eq!(l.mean_us, 2.5);
        assert!((l.total_s - 10e-6).abs() < 1e-15);
        assert!((l.throughput_per_s.unwrap_or(0.0) - 400_000.0).abs() < 1e-6);
        assert_eq!(Latency::from_nanos(&mut []), Latency::default());
    }
}
