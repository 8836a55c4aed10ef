//! Rate limits by key: a token bucket per key (a client address today; a device identity
//! once devices present one), in a map of bounded size.
//!
//! [`KeyedLimiter::check`] is the one call: `Ok(())` lets a request through and takes a
//! token from its key's bucket; `Err(wait)` refuses it, `wait` being how long until the
//! bucket holds a token again (what `Retry-After` says, rounded up to whole seconds by
//! [`retry_after_s`]). A bucket holds at most `burst` tokens and refills at `rate_per_s`;
//! a new key starts full.
//!
//! Memory: at most `keys_max` buckets. A full bucket says nothing a missing one would not,
//! so when the map is full, every full bucket is dropped; if none is, the bucket touched
//! longest ago goes. Each eviction scans the map (O(`keys_max`)), and happens only when a
//! new key arrives at a full map. An evicted key starts over with a full bucket: under a
//! flood of more distinct keys than `keys_max`, a key may get more than its rate — the
//! price of bounded memory, and the reason `keys_max` should exceed the number of clients
//! a server expects.
//!
//! The clock is tokio's, so that tests with a paused clock drive it.
//!
//! Map: [`KeyedLimiter`] ([`KeyedLimiter::new`], [`KeyedLimiter::check`]),
//! [`retry_after_s`], [`KEYS_MAX_DEFAULT`].
//!
//! Not covered: where limits apply (the listeners' middleware in `api::common`), and
//! limits on connections (`listener`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Buckets a limiter keeps by default.
pub const KEYS_MAX_DEFAULT: usize = 10_000;

/// One key's bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Tokens at `at`.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

/// A token bucket per key, at most `keys_max` keys. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct KeyedLimiter {
    rate_per_s: f64,
    burst: f64,
    keys_max: usize,
    buckets: Mutex<BTreeMap<String, Bucket>>,
}

impl KeyedLimiter {
    /// `rate_per_s` tokens per second per key (> 0), at most `burst` (≥ 1) held, at most
    /// `keys_max` (≥ 1) keys remembered.
    pub fn new(rate_per_s: f64, burst: u32, keys_max: usize) -> KeyedLimiter {
        assert!(
            rate_per_s > 0.0 && rate_per_s.is_finite(),
            "rate {rate_per_s}"
        );
        assert!(burst >= 1 && keys_max >= 1);
        KeyedLimiter {
            rate_per_s,
            burst: f64::from(burst),
            keys_max,
            buckets: Mutex::new(BTreeMap::new()),
        }
    }

    /// Take a token from `key`'s bucket: `Ok(())`, or `Err(wait)` when it is empty,
    /// `wait` being how long until it holds one again.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        // A panic elsewhere while holding the lock leaves the map consistent.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(key) && buckets.len() >= self.keys_max {
            self.evict(&mut buckets, now);
        }
        let b = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate_per_s).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.rate_per_s))
        }
    }

    /// Make room for one key: drop every bucket that has refilled, else the stalest.
    fn evict(&self, buckets: &mut BTreeMap<String, Bucket>, now: Instant) {
        let before = buckets.len();
        buckets.retain(|_, b| {
            let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
            b.tokens + elapsed * self.rate_per_s < self.burst
        });
        if buckets.len() == before {
            if let Some(stalest) = buckets
                .iter()
                .min_by_key(|(_, b)| b.at)
                .map(|(k, _)| k.clone())
            {
                buckets.remove(&stalest);
            }
        }
        debug_assert!(buckets.len() < self.keys_max);
    }

    /// Keys remembered now.
    pub fn keys(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// `Retry-After` for a wait: whole seconds, rounded up, at least 1.
pub fn retry_after_s(wait: Duration) -> u64 {
    wait.as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0))
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_key_gets_its_burst_then_its_rate() {
        // Goal: `burst` requests pass at once, the next is refused with the wait until a
        // token is back, and after that wait one more passes; other keys are unaffected.
        let l = KeyedLimiter::new(2.0, 3, 100);
        for _ in 0..3 {
            assert_eq!(l.check("a"), Ok(()));
        }
        let wait = l.check("a").unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(retry_after_s(wait), 1);
        assert_eq!(l.check("b"), Ok(()));
        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(l.check("a").is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(l.check("a"), Ok(()));
        assert!(l.check("a").is_err());
        // A long pause refills to the burst, not beyond.
        tokio::time::advance(Duration::from_secs(3600)).await;
        for _ in 0..3 {
            assert_eq!(l.check("a"), Ok(()));
        }
        assert!(l.check("a").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn memory_stays_bounded_and_busy_keys_stay_limited() {
        // Goal: the map never holds more than keys_max buckets; refilled buckets go first,
        // so a busy key keeps its (empty) bucket while idle keys come and go.
        let l = KeyedLimiter::new(1.0, 1, 10);
        assert_eq!(l.check("busy"), Ok(()));
        for i in 0..1000 {
            tokio::time::advance(Duration::from_millis(1)).await;
            let _ = l.check(&format!("k{i}"));
            assert!(l.keys() <= 10);
            // Refilled after 1 s: before that, "busy" must still be refused.
            if i < 900 {
                assert!(l.check("busy").is_err(), "busy got through at {i}");
            }
        }
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_s(Duration::ZERO), 1);
        assert_eq!(retry_after_s(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_s(Duration::from_secs(3)), 3);
    }
}
