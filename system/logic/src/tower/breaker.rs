//! The circuit breaker guarding a tower's calls to the origin.
//!
//! Three states (Nygard, "Release It!"): **Closed** counts consecutive failures and opens
//! at a threshold; **Open** refuses every call for an open period; then **HalfOpen**
//! admits exactly one trial call at a time — its success closes the breaker, its failure
//! re-opens it for a longer period. Open periods follow a [`Backoff`] (with jitter, so
//! many towers do not all knock on a recovering origin at the same instant); a closing
//! success resets it.
//!
//! Map: [`BreakerConfig`], [`BreakerState`], [`Breaker`] (`allow`, `on_success`,
//! `on_failure`, `handle_timeout`, `next_timeout`).
//!
//! Not covered: timing out a call (the owner does, and reports a failure — a trial call
//! that never reports keeps the breaker HalfOpen and refusing), retrying the refused call
//! (the owner's queue), one breaker per endpoint (the owner holds as many as it needs).

use crate::Entropy;
use crate::Time;
use crate::backoff::{Backoff, BackoffPolicy, Jitter};
use crate::io::Event;
use std::time::Duration;

/// When the breaker opens and for how long.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerConfig {
    /// Consecutive failures in Closed that open the breaker (`>= 1`).
    pub failure_threshold: u32,
    /// The open period: attempt 0 is the first opening; each failed trial backs off.
    pub open_backoff: BackoffPolicy,
}

impl Default for BreakerConfig {
    /// Opens after 5 consecutive failures; open 5 s, doubling up to 5 min, equal jitter
    /// (equal, not full: an open period near zero would make the breaker pointless).
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            open_backoff: BackoffPolicy {
                base: Duration::from_secs(5),
                max: Duration::from_secs(5 * 60),
                multiplier: 2,
                jitter: Jitter::Equal,
            },
        }
    }
}

/// Where the breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow; consecutive failures are counted.
    Closed,
    /// Calls are refused until the open period ends.
    Open,
    /// One trial call at a time decides between Closed and Open.
    HalfOpen,
}

/// The state with its data (private: the public view is [`BreakerState`]).
#[derive(Clone, Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Time },
    HalfOpen { trial_in_flight: bool },
}

/// A circuit breaker.
#[derive(Clone, Debug)]
pub struct Breaker {
    failure_threshold: u32,
    inner: Inner,
    /// Open periods; advanced on each opening, reset when a trial closes the breaker.
    open_backoff: Backoff,
    /// Openings since creation (a KPI: "breaker openings").
    openings: u64,
}

impl Breaker {
    /// A closed breaker. Panics on an invalid config (threshold 0 or a bad backoff policy).
    pub fn new(config: BreakerConfig) -> Self {
        assert!(
            config.failure_threshold >= 1,
            "breaker failure_threshold must be >= 1"
        );
        Breaker {
            failure_threshold: config.failure_threshold,
            inner: Inner::Closed { failures: 0 },
            open_backoff: Backoff::new(config.open_backoff),
            openings: 0,
        }
    }

    /// May a call start now? Open → HalfOpen once the open period has passed; HalfOpen
    /// admits exactly one trial call at a time.
    pub fn allow(&mut self, now: Time) -> bool {
        self.handle_timeout(now);
        match &mut self.inner {
            Inner::Closed { .. } => true,
            Inner::Open { .. } => false,
            Inner::HalfOpen { trial_in_flight } => {
                if *trial_in_flight {
                    false
                } else {
                    *trial_in_flight = true;
                    true
                }
            }
        }
    }

    /// Timer entry point: Open → HalfOpen once the open period has passed (no trial is
    /// admitted here; [`Breaker::allow`] does that). Lets the owner clear the timer that
    /// [`Breaker::next_timeout`] asked for even when no call is waiting.
    pub fn handle_timeout(&mut self, now: Time) {
        if let Inner::Open { until } = self.inner {
            if now >= until {
                self.inner = Inner::HalfOpen {
                    trial_in_flight: false,
                };
            }
        }
    }

    /// Returns Some(Event::BreakerClosed) when a HalfOpen trial success closes it; resets
    /// the open backoff.
    pub fn on_success(&mut self, _now: Time) -> Option<Event> {
        match self.inner {
            Inner::Closed { .. } => {
                self.inner = Inner::Closed { failures: 0 };
                None
            }
            Inner::HalfOpen { .. } => {
                self.inner = Inner::Closed { failures: 0 };
                self.open_backoff.reset();
                Some(Event::BreakerClosed)
            }
            // A late success from a call admitted before the breaker opened: the open
            // period stands (one straggler does not prove the origin healthy).
            Inner::Open { .. } => None,
        }
    }

    /// Counts consecutive failures in Closed; opens at the threshold; a HalfOpen trial
    /// failure re-opens with a longer (backed-off) period. Returns Some(Event::BreakerOpened)
    /// when it opens.
    pub fn on_failure(&mut self, now: Time, rng: &mut impl Entropy) -> Option<Event> {
        match self.inner {
            Inner::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= self.failure_threshold {
                    self.open(now, rng)
                } else {
                    self.inner = Inner::Closed { failures };
                    None
                }
            }
            Inner::HalfOpen { .. } => self.open(now, rng),
            // A late failure from a call admitted before the breaker opened: already open.
            Inner::Open { .. } => None,
        }
    }

    fn open(&mut self, now: Time, rng: &mut impl Entropy) -> Option<Event> {
        let period = self.open_backoff.next_delay(rng);
        self.inner = Inner::Open {
            until: now + period,
        };
        self.openings += 1;
        Some(Event::BreakerOpened)
    }

    /// Where the breaker stands.
    pub fn state(&self) -> BreakerState {
        match self.inner {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// When the open period ends (for the owner's timer table); None unless Open.
    pub fn next_timeout(&self) -> Option<Time> {
        match self.inner {
            Inner::Open { until } => Some(until),
            _ => None,
        }
    }

    /// Times the breaker has opened since creation.
    pub fn openings(&self) -> u64 {
        self.openings
    }

    /// Consecutive failures counted while Closed (0 in other states).
    pub fn failures(&self) -> u32 {
        match self.inner {
            Inner::Closed { failures } => failures,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SplitMix64;

    fn s(n: u64) -> Time {
        Time::from_secs(n)
    }

    /// Fail `n` times at `now`, returning the last result.
    fn fail(b: &mut Breaker, now: Time, n: u32, rng: &mut SplitMix64) -> Option<Event> {
        let mut last = None;
        for _ in 0..n {
            last = b.on_failure(now, rng);
        }
        last
    }

    #[test]
    fn closed_open_half_open_closed() {
        // Goal: the full cycle, with the events and the open period bounds of equal jitter.
        let mut rng = SplitMix64::new(1);
        let mut b = Breaker::new(BreakerConfig::default());
        assert!(b.allow(s(0)));
        assert_eq!(fail(&mut b, s(0), 4, &mut rng), None);
        assert_eq!(b.failures(), 4);
        assert_eq!(b.on_failure(s(0), &mut rng), Some(Event::BreakerOpened));
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.openings(), 1);
        let until = b.next_timeout().expect("open has a timeout");
        assert!(until >= s(0) + Duration::from_millis(2_500) && until <= s(5));
        assert!(!b.allow(Time::from_micros(until.as_micros() - 1)));
        assert!(b.allow(until), "the trial call");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.next_timeout(), None);
        assert_eq!(b.on_success(s(6)), Some(Event::BreakerClosed));
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow(s(6)));
    }

    #[test]
    fn a_success_resets_the_consecutive_count() {
        // Goal: only *consecutive* failures open the breaker.
        let mut rng = SplitMix64::new(2);
        let mut b = Breaker::new(BreakerConfig::default());
        fail(&mut b, s(0), 4, &mut rng);
        assert_eq!(b.on_success(s(0)), None);
        assert_eq!(fail(&mut b, s(0), 4, &mut rng), None);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn half_open_admits_one_trial_only() {
        // Goal: while a trial is in flight, every other call is refused.
        let mut rng = SplitMix64::new(3);
        let mut b = Breaker::new(BreakerConfig::default());
        fail(&mut b, s(0), 5, &mut rng);
        let until = b.next_timeout().unwrap();
        assert!(b.allow(until));
        assert!(!b.allow(until));
        assert!(!b.allow(s(1_000)));
        assert_eq!(b.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn failed_trial_reopens_for_longer_and_closing_resets() {
        // Goal: each failed trial backs off (equal jitter: attempt n+1 >= attempt n), and
        // a closing success resets the backoff to the base period.
        let mut rng = SplitMix64::new(4);
        let mut b = Breaker::new(BreakerConfig::default());
        fail(&mut b, s(0), 5, &mut rng);
        let mut now = s(0);
        let mut period = b.next_timeout().unwrap().saturating_since(now);
        for _ in 0..4 {
            now = b.next_timeout().unwrap();
            assert!(b.allow(now));
            assert_eq!(b.on_failure(now, &mut rng), Some(Event::BreakerOpened));
            let next = b.next_timeout().unwrap().saturating_since(now);
            assert!(next >= period, "{next:?} < {period:?}");
            period = next;
        }
        assert!(
            period >= Duration::from_secs(40),
            "5 s · 2^4 with equal jitter"
        );
        assert_eq!(b.openings(), 5);
        now = b.next_timeout().unwrap();
        b.handle_timeout(now);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.allow(now));
        assert_eq!(b.on_success(now), Some(Event::BreakerClosed));
        fail(&mut b, now, 5, &mut rng);
        let fresh = b.next_timeout().unwrap().saturating_since(now);
        assert!(fresh <= Duration::from_secs(5), "{fresh:?}");
    }

    #[test]
    fn stragglers_while_open_change_nothing() {
        // Goal: late results of calls admitted before opening neither close nor extend it.
        let mut rng = SplitMix64::new(5);
        let mut b = Breaker::new(BreakerConfig::default());
        fail(&mut b, s(0), 5, &mut rng);
        let until = b.next_timeout();
        assert_eq!(b.on_success(s(1)), None);
        assert_eq!(b.on_failure(s(1), &mut rng), None);
        assert_eq!(b.next_timeout(), until);
        assert_eq!(b.openings(), 1);
    }
}
