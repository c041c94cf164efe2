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
        self.take(key, 1.0, rate, burst, now)
    }

    /// Takes `n` tokens at once (a batch), or none: `n` is capped at
    /// `burst`, so a batch larger than the burst empties a full bucket
    /// rather than never passing. On refusal, returns how long until the
    /// tokens are there.
    pub fn check_n(&self, key: &str, n: u32, rate: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        self.take(key, f64::from(n).min(burst), rate, burst, now)
    }

    fn take(&self, key: &str, cost: f64, rate: f64, burst: f64, now: Instant) -> Result<(), Duration> {
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.map.len() > SWEEP_AT && b.swept.is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_EVERY) {
            b.map.retain(|_, x| x.full_at.is_none_or(|t| t > now));
            b.swept = Some(now);
        }
        let bucket = b.map.entry(key.to_owned()).or_insert(Bucket { tokens: burst, last: now, full_at: None });
        let result = refill(bucket, cost, rate, burst, now);
        if result.is_ok() {
            bucket.tokens -= cost;
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
            Some(bucket) => refill(bucket, 1.0, rate, burst, now),
            None => Ok(()),
        }
    }

    /// Forgets a key (after revocation).
    pub fn forget(&self, key: &str) {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).map.remove(key);
    }
}

/// Adds what `rate` refilled since the bucket was last seen; `Ok` when
/// `need` tokens are there, else how long until they are.
fn refill(b: &mut Bucket, need: f64, rate: f64, burst: f64, now: Instant) -> Result<(), Duration> {
    let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
    b.tokens = (b.tokens + elapsed * rate).min(burst);
    b.last = now;
    if b.tokens >= need { Ok(()) } else { Err(Duration::from_secs_f64((need - b.tokens) / rate)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_takes_its_size_or_nothing() {
        let rl = RateLimiter::default();
        let t0 = Instant::now();
        assert!(rl.check_n("k", 3, 1.0, 5.0, t0).is_ok());
        // Two left: a batch of three waits a second for the third, and takes nothing meanwhile.
        assert_eq!(rl.check_n("k", 3, 1.0, 5.0, t0).unwrap_err(), Duration::from_secs(1));
        assert!(rl.check_n("k", 2, 1.0, 5.0, t0).is_ok());
        // Larger than the burst: it passes on a full bucket and empties it.
        let t1 = t0 + Duration::from_secs(10);
        assert!(rl.check_n("k", 500, 1.0, 5.0, t1).is_ok());
        assert!(rl.check("k", 1.0, 5.0, t1).is_err());
    }

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
