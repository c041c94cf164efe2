//! Per-key token buckets (and per-address ones for failed
//! authentication).
//!
//! Written here rather than taken from `governor` because each key carries
//! its own rate (set when the key is made) and the answer must say how long
//! to wait (`Retry-After`); a map of small buckets under a mutex does both
//! in a few lines, and the caller passes the time in, so tests never sleep.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    /// When the bucket is full again, and as good as forgotten (`None`:
    /// too far ahead to say).
    full_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct Buckets {
    map: HashMap<String, Bucket>,
    swept: Option<Instant>,
}

/// Token buckets keyed by API key id (or by client address).
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<Buckets>,
}

/// Sweep full buckets when the map grows past this…
const SWEEP_AT: usize = 10_000;
/// …at most this often, so that a map of busy buckets is not scanned on
/// every call.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

impl RateLimiter {
    /// Takes one token from `key`'s bucket (refilled at `rate` per second,
    /// holding at most `burst`), at time `now`. On refusal, returns how long
    /// until a token is there.
    pub fn check(&self, key: &str, rate: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.map.len() > SWEEP_AT && b.swept.is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_EVERY) {
            b.map.retain(|_, x| x.full_at.is_none_or(|t| t > now));
            b.swept = Some(now);
        }
        let bucket = b.map.entry(key.to_owned()).or_insert(Bucket { tokens: burst, last: now, full_at: None });
        let result = refill(bucket, rate, burst, now);
        if result.is_ok() {
            bucket.tokens -= 1.0;
        }
        bucket.full_at =
            Duration::try_from_secs_f64((burst - bucket.tokens) / rate).ok().and_then(|d| now.checked_add(d));
        result
    }

    /// Whether [`check`](Self::check) would pass, leaving the token in the
    /// bucket: for limits that charge only for some outcomes (failed
    /// authentications). A key without a bucket has a full one.
    pub fn ready(&self, key: &str, rate: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        match b.map.get_mut(key) {
            Some(bucket) => refill(bucket, rate, burst, now),
            None => Ok(()),
        }
    }

    /// Forgets a key (after revocation).
    pub fn forget(&self, key: &str) {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).map.remove(key);
    }
}

/// Adds what `rate` refilled since the bucket was last seen; `Ok` when a
/// token is there, else how long until one is.
fn refill(b: &mut Bucket, rate: f64, burst: f64, now: Instant) -> Result<(), Duration> {
    let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
    b.tokens = (b.tokens + elapsed * rate).min(burst);
    b.last = now;
    if b.tokens >= 1.0 { Ok(()) } else { Err(Duration::from_secs_f64((1.0 - b.tokens) / rate)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let rl = RateLimiter::default();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(rl.check("k", 2.0, 5.0, t0).is_ok());
        }
        let wait = rl.check("k", 2.0, 5.0, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        // Half a second later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert!(rl.check("k", 2.0, 5.0, t1).is_ok());
        assert!(rl.check("k", 2.0, 5.0, t1).is_err());
        // Keys are independent.
        assert!(rl.check("other", 2.0, 5.0, t1).is_ok());
    }

    #[test]
    fn ready_leaves_the_token() {
        let rl = RateLimiter::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(rl.ready("k", 1.0, 1.0, t0).is_ok());
        }
        assert!(rl.check("k", 1.0, 1.0, t0).is_ok());
        assert_eq!(rl.ready("k", 1.0, 1.0, t0), Err(Duration::from_secs(1)));
    }

    #[test]
    fn full_buckets_are_swept() {
        let rl = RateLimiter::default();
        let t0 = Instant::now();
        for i in 0..=SWEEP_AT {
            assert!(rl.check(&format!("k{i}"), 1.0, 2.0, t0).is_ok());
        }
        // Two seconds on every bucket is full again: the next call sweeps them.
        assert!(rl.check("new", 1.0, 2.0, t0 + Duration::from_secs(2)).is_ok());
        assert_eq!(rl.buckets.lock().unwrap().map.len(), 1);
    }

    #[test]
    fn refill_stops_at_burst() {
        let rl = RateLimiter::default();
        let t0 = Instant::now();
        assert!(rl.check("k", 100.0, 3.0, t0).is_ok());
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(rl.check("k", 100.0, 3.0, later).is_ok());
        }
        assert!(rl.check("k", 100.0, 3.0, later).is_err());
    }
}
