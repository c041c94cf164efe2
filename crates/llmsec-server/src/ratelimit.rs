//! Per-key token buckets.
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
}

/// Token buckets keyed by API key id.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Buckets idle this long are full again and can be forgotten.
const IDLE: Duration = Duration::from_secs(600);
/// Sweep idle buckets when the map grows past this.
const SWEEP_AT: usize = 10_000;

impl RateLimiter {
    /// Takes one token from `key`'s bucket (refilled at `rate` per second,
    /// holding at most `burst`), at time `now`. On refusal, returns how long
    /// until a token is there.
    pub fn check(&self, key: &str, rate: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > SWEEP_AT {
            map.retain(|_, b| now.saturating_duration_since(b.last) < IDLE);
        }
        let b = map.entry(key.to_owned()).or_insert(Bucket { tokens: burst, last: now });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }

    /// Forgets a key (after revocation).
    pub fn forget(&self, key: &str) {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
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
