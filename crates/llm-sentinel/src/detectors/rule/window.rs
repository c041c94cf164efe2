//! The per-entity time-window aggregates of a rule: bucketed counts and
//! sums, and monotonic queues for max and min, in bounded memory.

use std::collections::VecDeque;

use super::parser::{Field, Func};
use crate::detector::Millis;

/// The most buckets one window aggregate keeps per entity (see the [module docs](super)).
pub const WINDOW_BUCKETS: i64 = 1_000;

/// What a window collects.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Source {
    Events,
    Errors,
    Field(Field),
}

/// One distinct `(source, window)` of the expression.
#[derive(Debug)]
pub(super) struct Spec {
    pub(super) source: Source,
    pub(super) window: Millis,
    /// `window / WINDOW_BUCKETS`, rounded up.
    pub(super) bucket: Millis,
    pub(super) max: bool,
    pub(super) min: bool,
}

/// One entity's window: buckets `(index, events, sum)` oldest first, their
/// totals, and monotonic queues `(index, value)` for max and (negated) min.
#[derive(Debug, Default)]
pub(super) struct Window {
    buckets: VecDeque<(i64, u64, f64)>,
    n: u64,
    sum: f64,
    max: VecDeque<(i64, f64)>,
    min: VecDeque<(i64, f64)>,
}

/// Adds a value to a queue whose values decrease from front to back.
fn push_max(q: &mut VecDeque<(i64, f64)>, k: i64, v: f64) {
    while q.back().is_some_and(|b| b.1 <= v) {
        q.pop_back();
    }
    if q.back().is_none_or(|b| b.0 < k) {
        q.push_back((k, v)); // else a larger value in the same bucket stands for it
    }
}

impl Window {
    /// Adds the value (if any) seen at `t`, never earlier than the last call's `t`, and drops what fell out.
    pub(super) fn add(&mut self, spec: &Spec, t: Millis, v: Option<f64>) {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            let k = t.div_euclid(spec.bucket);
            match self.buckets.back_mut() {
                Some(b) if b.0 >= k => (b.1, b.2) = (b.1 + 1, b.2 + v),
                _ => self.buckets.push_back((k, 1, v)),
            }
            (self.n, self.sum) = (self.n + 1, self.sum + v);
            if spec.max {
                push_max(&mut self.max, k, v);
            }
            if spec.min {
                push_max(&mut self.min, k, -v);
            }
        }
        let oldest = t.saturating_sub(spec.window).div_euclid(spec.bucket); // this bucket and older are out
        while let Some(&(k, n, sum)) = self.buckets.front()
            && k <= oldest
        {
            self.buckets.pop_front();
            (self.n, self.sum) = (self.n - n, self.sum - sum);
        }
        if self.buckets.is_empty() {
            self.sum = 0.0; // no rounding residue
        }
        for q in [&mut self.max, &mut self.min] {
            while q.front().is_some_and(|f| f.0 <= oldest) {
                q.pop_front();
            }
        }
    }

    pub(super) fn value(&self, func: Func, spec: &Spec) -> Option<f64> {
        let n = self.n as f64;
        match func {
            Func::Count | Func::Errors => Some(n),
            Func::Rate => Some(n * 60_000.0 / spec.window as f64),
            Func::Sum => Some(self.sum),
            Func::Avg => (self.n > 0).then(|| self.sum / n),
            Func::Max => self.max.front().map(|m| m.1),
            Func::Min => self.min.front().map(|m| -m.1),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::detector::Detector;
    use crate::detectors::rule::tests::{T0, ev, fires, rule, run};
    use crate::event::EventType;

    #[test]
    fn count_fires_on_the_sixth_event_within_a_minute() {
        let mut d = rule("count(1m) > 5");
        let events: Vec<_> = (0..8).map(|i| ev(i, T0 + i as Millis * 5_000)).collect();
        assert_eq!(fires(&mut d, &events), [5, 6, 7]);
        // The window is (t - 1m, t]: an event exactly a minute old is out.
        let at = |s: &[Millis]| s.iter().enumerate().map(|(i, ms)| ev(i, T0 + ms)).collect::<Vec<_>>();
        assert!(fires(&mut rule("count(1m) > 5"), &at(&[0, 10_000, 20_000, 30_000, 40_000, 60_000])).is_empty());
        assert_eq!(fires(&mut rule("count(1m) > 5"), &at(&[0, 10_000, 20_000, 30_000, 40_000, 59_999])), [5]);
    }

    #[test]
    fn count_does_not_fire_for_events_spread_over_ten_minutes() {
        let mut d = rule("count(1m) > 5");
        let events: Vec<_> = (0..20).map(|i| ev(i, T0 + i as Millis * 30_000)).collect();
        assert!(fires(&mut d, &events).is_empty());
    }

    #[test]
    fn sum_of_cost_over_an_hour() {
        let mut d = rule("sum(data.cost, 1h) > 1.0");
        let mut events: Vec<_> = (0..6).map(|i| ev(i, T0 + i as Millis * 600_000)).collect();
        events.push(ev(6, T0 + 3 * 3_600_000));
        for e in &mut events {
            e.data.cost = Some(0.25);
        }
        events[2].data.cost = None; // contributes nothing
        assert_eq!(fires(&mut d, &events), [5]);
        let findings = run(&mut rule("sum(data.cost, 1h) > 1.0"), &events);
        assert_eq!(findings[5][0].observed, Some(1.25));
    }

    #[test]
    fn errors_in_five_minutes() {
        let mut d = rule("errors(5m) >= 3");
        let mut events: Vec<_> = [0, 60_000, 120_000, 180_000, 240_000, 420_000, 430_000]
            .iter()
            .enumerate()
            .map(|(i, ms)| ev(i, T0 + ms))
            .collect();
        for i in [0, 2, 3, 5, 6] {
            events[i].event_type = EventType::Error;
        }
        events[1].data.status = Some("success".into());
        // Errors at 0, 2m, 3m (fires at 3m), 4m is fine (3 errors still), 7m sees 3m, 7m; 7m10s sees 3m, 7m, 7m10s.
        assert_eq!(fires(&mut d, &events), [3, 4, 6]);
    }

    #[test]
    fn aggregate_values_and_sharing() {
        let latencies = [100.0, 300.0, 200.0];
        let events: Vec<_> = latencies
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let mut e = ev(i, T0 + i as Millis * 1000);
                e.data.latency_ms = Some(*l);
                e
            })
            .collect();
        for (src, want) in [
            ("avg(data.latency_ms, 5m) > 0", 200.0),
            ("max(data.latency_ms, 5m) > 0", 300.0),
            ("min(data.latency_ms, 5m) > 0", 100.0),
            ("sum(data.latency_ms, 5m) > 0", 600.0),
            ("rate(5m) > 0", 0.6),
            ("count(5m) > 0", 3.0),
            ("count(5m) * 2 - errors(5m) > 0", 6.0),
        ] {
            let findings = run(&mut rule(src), &events);
            assert_eq!(findings[2][0].observed, Some(want), "{src}");
        }
        let d = rule("sum(data.cost, 1h) > avg(data.cost, 1h) && rate(1h) > count(1h) && max(data.cost, 1h) > 0");
        assert_eq!(d.specs.len(), 2);
        assert_eq!(d.aggs.len(), 5);
        assert!(d.specs[0].max && !d.specs[0].min);
        assert!(rule("count(5m) > 1 && count(5m) < 9").aggs.len() == 1);
    }

    #[test]
    fn window_memory_is_bounded_and_counts_do_not_saturate() {
        let mut d = rule("count(1h) > 0 && max(data.cost, 1h) > 0 && min(data.cost, 1h) > 0");
        let mut out = Vec::new();
        for i in 0..5_000 {
            let mut e = ev(i, T0 + i as Millis * 1000);
            e.data.cost = Some((5_000 - i) as f64); // decreasing: the worst case for the max queue
            out.clear();
            d.observe(&e, 0, &mut out);
        }
        // (T0 + 1399 s, T0 + 4999 s] holds 3600 events; the trailing edge is rounded to 3.6 s buckets.
        let count = out[0].observed.unwrap();
        assert!((3599.0..=3600.0).contains(&count), "{count}");
        let (_, state) = d.entities.iter_mut().next().unwrap();
        for w in &state.windows {
            assert!(w.buckets.len() <= WINDOW_BUCKETS as usize, "{}", w.buckets.len());
            assert!(w.max.len() <= WINDOW_BUCKETS as usize && w.min.len() <= WINDOW_BUCKETS as usize);
        }
        let mut d = rule("count(1s) > 100000");
        for i in 0..20_000 {
            d.observe(&ev(i, T0 + i as Millis / 4), 0, &mut out);
        }
        let (_, state) = d.entities.iter_mut().next().unwrap();
        assert!(state.windows[0].buckets.len() <= 1_000);
        assert_eq!(state.windows[0].n, 4_000);
    }

    #[test]
    fn late_events_count_at_the_newest_time() {
        let mut d = rule("count(1m) > 5");
        let mut events: Vec<_> = (0..5).map(|i| ev(i, T0 + 10_000)).collect();
        events.push(ev(5, T0 - 3_600_000)); // an hour late: still counted, as of T0 + 10 s
        events.push(ev(6, T0 + 70_000)); // the window moved past all of them
        assert_eq!(fires(&mut d, &events), [5]);
    }

    proptest! {
        #[test]
        fn windows_agree_with_a_naive_scan(
            steps in prop::collection::vec((0i64..400, prop::option::of(0u8..100)), 1..300),
        ) {
            let spec = Spec { source: Source::Events, window: 1000, bucket: 1, max: true, min: true };
            let (mut w, mut seen, mut t) = (Window::default(), Vec::new(), 0);
            for (dt, v) in steps {
                t += dt;
                let v = v.map(f64::from);
                w.add(&spec, t, v);
                seen.extend(v.map(|v| (t, v)));
                let live: Vec<f64> = seen.iter().filter(|(s, _)| *s > t - 1000).map(|(_, v)| *v).collect();
                prop_assert_eq!(w.value(Func::Count, &spec), Some(live.len() as f64));
                prop_assert_eq!(w.value(Func::Sum, &spec), Some(live.iter().sum()));
                prop_assert_eq!(w.value(Func::Max, &spec), live.iter().copied().reduce(f64::max));
                prop_assert_eq!(w.value(Func::Min, &spec), live.iter().copied().reduce(f64::min));
            }
        }
    }
}
