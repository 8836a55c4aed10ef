//! Exponential backoff with jitter, shared by towers (breaker, supervisor) and devices.
//!
//! The delay before attempt `n` (counting from 0) is `base · multiplier^n`, capped at
//! `max`, then jittered with a draw from the injected [`Entropy`] — the schemes of the AWS
//! Architecture Blog post "Exponential Backoff And Jitter" (2015):
//! - [`Jitter::None`]: exactly the capped delay `d`;
//! - [`Jitter::Full`]: uniform in `[0, d]` (spreads retries best, may retry at once);
//! - [`Jitter::Equal`]: `d/2` plus uniform in `[0, d/2]` (never less than half).
//!
//! Map: [`Jitter`], [`BackoffPolicy`] (+ [`BackoffPolicy::validate`], [`BackoffError`]),
//! [`Backoff`] (the attempt counter and [`Backoff::next_delay`]).
//!
//! Not covered: deciding *whether* to retry (retry budgets, breakers, supervisors — see
//! `tower::breaker` and `tower::supervisor`), and timers (the owner schedules them).

use crate::Entropy;
use std::time::Duration;

/// How the capped exponential delay is randomised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    /// No randomness: the delay is the capped exponential itself.
    None,
    /// "Full jitter": uniform in `[0, d]`.
    Full,
    /// "Equal jitter": `d/2 + uniform[0, d/2]`.
    Equal,
}

/// The shape of a backoff: where it starts, how fast it grows, where it stops, how it is
/// jittered.
#[derive(Clone, Debug, PartialEq)]
pub struct BackoffPolicy {
    /// The un-jittered delay before the first retry (attempt 0).
    pub base: Duration,
    /// The cap on the un-jittered delay; jitter never pushes a delay above it.
    pub max: Duration,
    /// Growth factor per attempt (`>= 1`; 1 gives a constant delay).
    pub multiplier: u32,
    /// How the delay is randomised.
    pub jitter: Jitter,
}

impl Default for BackoffPolicy {
    /// 1 s, doubling, capped at 5 min, full jitter.
    fn default() -> Self {
        BackoffPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(5 * 60),
            multiplier: 2,
            jitter: Jitter::Full,
        }
    }
}

/// Why a [`BackoffPolicy`] was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BackoffError {
    /// The multiplier must be at least 1 (0 would make every retry immediate).
    #[error("backoff multiplier must be >= 1, found {0}")]
    Multiplier(u32),
    /// The base delay must not exceed the cap.
    #[error("backoff base {base:?} exceeds its max {max:?}")]
    BaseAboveMax {
        /// the base delay
        base: Duration,
        /// the cap
        max: Duration,
    },
}

impl BackoffPolicy {
    /// Check the policy: `multiplier >= 1` and `base <= max`.
    pub fn validate(&self) -> Result<(), BackoffError> {
        if self.multiplier == 0 {
            return Err(BackoffError::Multiplier(self.multiplier));
        }
        if self.base > self.max {
            return Err(BackoffError::BaseAboveMax {
                base: self.base,
                max: self.max,
            });
        }
        Ok(())
    }

    /// The un-jittered delay before attempt `attempt`: `base · multiplier^attempt`, capped at
    /// `max`. Never overflows (any overflow means "past the cap").
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let grown = self
            .multiplier
            .checked_pow(attempt)
            .and_then(|factor| self.base.checked_mul(factor));
        match grown {
            Some(d) => d.min(self.max),
            None => self.max,
        }
    }
}

/// A backoff in progress: a policy and the number of attempts already delayed.
#[derive(Clone, Debug)]
pub struct Backoff {
    policy: BackoffPolicy,
    /// Delays handed out since the last reset; saturates (it only ever selects the cap
    /// once large, so saturation is harmless).
    attempt: u32,
}

impl Backoff {
    /// A fresh backoff (attempt 0). Panics if `policy` is invalid (validate configs first).
    pub fn new(policy: BackoffPolicy) -> Self {
        if let Err(e) = policy.validate() {
            panic!("invalid backoff policy: {e}");
        }
        Backoff { policy, attempt: 0 }
    }

    /// The delay before the next attempt; grows base·mult^attempt capped at max, then
    /// jittered. Increments attempt. Never overflows.
    pub fn next_delay(&mut self, rng: &mut impl Entropy) -> Duration {
        let ceiling = self.policy.ceiling(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        // Jitter works in whole microseconds (the resolution of `Time`).
        let ceiling_us = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        let delay_us = match self.policy.jitter {
            Jitter::None => ceiling_us,
            Jitter::Full => draw_inclusive(rng, ceiling_us),
            Jitter::Equal => {
                let half = ceiling_us / 2;
                // `ceiling_us - half` (not `half`) so odd ceilings still reach the cap.
                half + draw_inclusive(rng, ceiling_us - half)
            }
        };
        debug_assert!(delay_us <= ceiling_us);
        let delay = Duration::from_micros(delay_us);
        debug_assert!(delay <= self.policy.max);
        delay
    }

    /// The next delay of a policy without jitter ([`Jitter::None`]), which needs no draw;
    /// increments attempt. Panics on a jittered policy (use [`Backoff::next_delay`]).
    pub fn next_fixed_delay(&mut self) -> Duration {
        assert_eq!(
            self.policy.jitter,
            Jitter::None,
            "a jittered backoff needs an Entropy: call next_delay"
        );
        let d = self.policy.ceiling(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// Back to attempt 0 (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Delays handed out since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The policy this backoff follows.
    pub fn policy(&self) -> &BackoffPolicy {
        &self.policy
    }
}

/// A uniform draw in `[0, hi]`.
fn draw_inclusive(rng: &mut impl Entropy, hi: u64) -> u64 {
    match hi.checked_add(1) {
        Some(n) => rng.below(n),
        None => rng.next_u64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SplitMix64;

    fn policy(jitter: Jitter) -> BackoffPolicy {
        BackoffPolicy {
            base: Duration::from_millis(100),
            max: Duration::from_secs(10),
            multiplier: 2,
            jitter,
        }
    }

    #[test]
    fn without_jitter_delays_double_then_hit_the_cap() {
        // Goal: the un-jittered sequence is base·2^n, capped at max, and attempt counts.
        let mut b = Backoff::new(policy(Jitter::None));
        let mut rng = SplitMix64::new(1);
        let got: Vec<u64> = (0..10)
            .map(|_| b.next_delay(&mut rng).as_millis() as u64)
            .collect();
        assert_eq!(
            got,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
        assert_eq!(b.attempt(), 10);
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.next_delay(&mut rng), Duration::from_millis(100));
    }

    #[test]
    fn fixed_delays_need_no_draw_and_match_next_delay() {
        // Goal: next_fixed_delay gives the same sequence as next_delay without jitter, and
        // resets the same way; the origin's restart pacing built on it rebuilds the first
        // failure at once, then waits 2 s doubling to 64 s, until an fsync succeeds.
        let mut a = Backoff::new(policy(Jitter::None));
        let mut b = Backoff::new(policy(Jitter::None));
        let mut rng = SplitMix64::new(7);
        for _ in 0..9 {
            assert_eq!(a.next_fixed_delay(), b.next_delay(&mut rng));
        }
        a.reset();
        assert_eq!(a.next_fixed_delay(), Duration::from_millis(100));
        let mut r = crate::origin::RestartPacing::default();
        let secs: Vec<u64> = (0..9).map(|_| r.on_failure().as_secs()).collect();
        assert_eq!(secs, [0, 2, 4, 8, 16, 32, 64, 64, 64]);
        assert_eq!(r.failures(), 9);
        r.on_durable();
        assert_eq!(r.on_failure(), Duration::ZERO);
        assert_eq!(r.on_failure(), Duration::from_secs(2));
    }

    #[test]
    #[should_panic(expected = "needs an Entropy")]
    fn fixed_delay_of_a_jittered_policy_is_refused() {
        // Goal: a jittered policy cannot silently lose its jitter.
        Backoff::new(policy(Jitter::Full)).next_fixed_delay();
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        // Goal: full jitter lies in [0, d], equal jitter in [d/2, d], for every attempt.
        for jitter in [Jitter::Full, Jitter::Equal] {
            let p = policy(jitter);
            let mut b = Backoff::new(p.clone());
            let mut rng = SplitMix64::new(42);
            for n in 0..40 {
                let ceiling = p.ceiling(n);
                let d = b.next_delay(&mut rng);
                assert!(d <= ceiling, "{jitter:?} attempt {n}: {d:?} > {ceiling:?}");
                if jitter == Jitter::Equal {
                    assert!(d >= ceiling / 2, "{jitter:?} attempt {n}: {d:?} < half");
                }
            }
        }
    }

    #[test]
    fn full_jitter_actually_spreads() {
        // Goal: full jitter is random (not constant) and uses the lower half of the range.
        let p = policy(Jitter::Full);
        let mut rng = SplitMix64::new(3);
        let draws: Vec<Duration> = (0..200)
            .map(|_| Backoff::new(p.clone()).next_delay(&mut rng))
            .collect();
        assert!(draws.iter().any(|d| *d < Duration::from_millis(50)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(50)));
    }

    #[test]
    fn same_seed_same_delays() {
        // Goal: delays are a pure function of the policy and the entropy stream.
        let run = |seed| {
            let mut b = Backoff::new(policy(Jitter::Full));
            let mut rng = SplitMix64::new(seed);
            (0..20).map(|_| b.next_delay(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }

    #[test]
    fn no_overflow_after_a_thousand_attempts() {
        // Goal: huge attempt counts, huge multipliers and a huge cap neither panic nor exceed it.
        let p = BackoffPolicy {
            base: Duration::from_secs(1),
            max: Duration::MAX,
            multiplier: u32::MAX,
            jitter: Jitter::Equal,
        };
        let mut b = Backoff::new(p);
        let mut rng = SplitMix64::new(5);
        for _ in 0..1000 {
            let _ = b.next_delay(&mut rng);
        }
        assert_eq!(b.attempt(), 1000);
        let mut d = Backoff::new(BackoffPolicy::default());
        let mut above_half_cap = 0;
        for _ in 0..1000 {
            let delay = d.next_delay(&mut rng);
            assert!(delay <= Duration::from_secs(300));
            above_half_cap += usize::from(delay > Duration::from_secs(150));
        }
        // Once capped, full jitter still draws over the whole [0, max] range.
        assert!(above_half_cap > 100, "{above_half_cap}");
        assert_eq!(
            BackoffPolicy::default().ceiling(u32::MAX),
            Duration::from_secs(300)
        );
    }

    #[test]
    fn validate_rejects_bad_policies() {
        // Goal: zero multiplier and base above max are configuration errors.
        assert_eq!(BackoffPolicy::default().validate(), Ok(()));
        let p = BackoffPolicy {
            multiplier: 0,
            ..BackoffPolicy::default()
        };
        assert_eq!(p.validate(), Err(BackoffError::Multiplier(0)));
        let p = BackoffPolicy {
            base: Duration::from_secs(600),
            ..BackoffPolicy::default()
        };
        assert!(matches!(
            p.validate(),
            Err(BackoffError::BaseAboveMax { .. })
        ));
    }
}
