//! The tower's adaptive throttle: an AIMD window on the number of chunk requests in flight.
//!
//! Additive increase, multiplicative decrease, as TCP congestion avoidance (RFC 5681):
//! each completed request adds `1/window` to the window (so +1 per window's worth of
//! successes, roughly +1 per round trip), and a timeout or loss halves it, down to a floor.
//! Losses are coalesced: after a cut, further losses within `decrease_cooldown` belong to
//! the same loss episode and do not cut again (a burst of timeouts from one outage would
//! otherwise collapse the window to the floor at once).
//!
//! Map: [`ThrottleConfig`] (+ [`ThrottleConfig::validate`], [`ThrottleError`]),
//! [`Throttle`] (`can_send`, `on_success`, `on_loss`, `reset`).
//!
//! Not covered: detecting a loss (the owner's request timers do that), per-link windows
//! (the owner keeps one throttle and resets it when the active link changes), bytes-based
//! rate limiting, and emitting [`crate::io::Event::Throttle`] (the owner does it from the
//! returned new window).

use crate::Time;
use std::time::Duration;

/// Bounds and pacing of the AIMD window.
#[derive(Clone, Debug, PartialEq)]
pub struct ThrottleConfig {
    /// The window at start and after [`Throttle::reset`].
    pub window_initial: u32,
    /// The floor: at least this many requests may always be in flight (`>= 1`, or the
    /// tower could never probe its way back up).
    pub window_min: u32,
    /// The ceiling: never more requests in flight than this, however good the link.
    pub window_max: u32,
    /// After a cut, losses within this long count as the same episode and do not cut again.
    pub decrease_cooldown: Duration,
}

impl Default for ThrottleConfig {
    /// Window 4 (1..=64), one cut per second at most.
    fn default() -> Self {
        ThrottleConfig {
            window_initial: 4,
            window_min: 1,
            window_max: 64,
            decrease_cooldown: Duration::from_secs(1),
        }
    }
}

/// Why a [`ThrottleConfig`] was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ThrottleError {
    /// The floor must be at least one request.
    #[error("throttle window_min must be >= 1")]
    ZeroMin,
    /// `window_min <= window_initial <= window_max` does not hold.
    #[error("throttle windows must satisfy min {min} <= initial {initial} <= max {max}")]
    Order {
        /// window_min
        min: u32,
        /// window_initial
        initial: u32,
        /// window_max
        max: u32,
    },
}

impl ThrottleConfig {
    /// Check `1 <= window_min <= window_initial <= window_max`.
    pub fn validate(&self) -> Result<(), ThrottleError> {
        if self.window_min == 0 {
            return Err(ThrottleError::ZeroMin);
        }
        if !(self.window_min <= self.window_initial && self.window_initial <= self.window_max) {
            return Err(ThrottleError::Order {
                min: self.window_min,
                initial: self.window_initial,
                max: self.window_max,
            });
        }
        Ok(())
    }
}

/// An AIMD window on requests in flight.
#[derive(Clone, Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    /// Requests allowed in flight; always within `[window_min, window_max]`.
    window: u32,
    /// Successes since the window last changed; the window grows when it reaches `window`
    /// (integer form of "+1/window per success").
    successes: u32,
    /// When the current loss episode started (the last cut); `None` outside any episode.
    episode_start: Option<Time>,
}

impl Throttle {
    /// A throttle at `window_initial`. Panics if `config` is invalid (validate configs first).
    pub fn new(config: ThrottleConfig) -> Self {
        if let Err(e) = config.validate() {
            panic!("invalid throttle config: {e}");
        }
        Throttle {
            window: config.window_initial,
            config,
            successes: 0,
            episode_start: None,
        }
    }

    /// Requests allowed in flight now.
    pub fn window(&self) -> u32 {
        self.window
    }

    /// May one more request start while `in_flight` are outstanding?
    pub fn can_send(&self, in_flight: u32) -> bool {
        in_flight < self.window
    }

    /// A request completed fine: additive increase — +1 window per `window` successes
    /// (congestion-avoidance style). Returns Some(new) when the window changed.
    pub fn on_success(&mut self, _now: Time) -> Option<u32> {
        if self.window >= self.config.window_max {
            self.successes = 0;
            return None;
        }
        self.successes += 1;
        if self.successes < self.window {
            return None;
        }
        self.successes = 0;
        self.window += 1;
        self.check();
        Some(self.window)
    }

    /// A timeout or loss: multiplicative decrease (halve, not below min), at most once per
    /// decrease_cooldown (one loss episode = one cut). Returns Some(new) when changed.
    pub fn on_loss(&mut self, now: Time) -> Option<u32> {
        if let Some(start) = self.episode_start {
            // A clock that jumped backwards (now < start) ends the episode rather than
            // leaving the throttle deaf to losses for the length of the jump.
            let in_episode =
                now >= start && now.saturating_since(start) < self.config.decrease_cooldown;
            if in_episode {
                return None;
            }
        }
        self.episode_start = Some(now);
        self.successes = 0;
        let cut = (self.window / 2).max(self.config.window_min);
        if cut == self.window {
            return None;
        }
        self.window = cut;
        self.check();
        Some(self.window)
    }

    /// Reset to the initial window (e.g. after switching links).
    pub fn reset(&mut self) {
        self.window = self.config.window_initial;
        self.successes = 0;
        self.episode_start = None;
    }

    /// The configuration in use.
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    fn check(&self) {
        debug_assert!(self.window >= self.config.window_min);
        debug_assert!(self.window <= self.config.window_max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Time {
        Time::from_millis(n)
    }

    #[test]
    fn grows_by_one_per_window_of_successes() {
        // Goal: additive increase is +1 after `window` successes, and only then.
        let mut t = Throttle::new(ThrottleConfig::default());
        assert_eq!(t.window(), 4);
        for _ in 0..3 {
            assert_eq!(t.on_success(ms(0)), None);
        }
        assert_eq!(t.on_success(ms(0)), Some(5));
        for _ in 0..4 {
            assert_eq!(t.on_success(ms(0)), None);
        }
        assert_eq!(t.on_success(ms(0)), Some(6));
        assert!(t.can_send(5));
        assert!(!t.can_send(6));
    }

    #[test]
    fn a_loss_halves_and_the_cooldown_coalesces_an_episode() {
        // Goal: one cut per loss episode; a loss after the cooldown cuts again.
        let mut t = Throttle::new(ThrottleConfig {
            window_initial: 40,
            ..ThrottleConfig::default()
        });
        assert_eq!(t.on_loss(ms(1_000)), Some(20));
        assert_eq!(t.on_loss(ms(1_001)), None);
        assert_eq!(t.on_loss(ms(1_999)), None);
        assert_eq!(t.window(), 20);
        assert_eq!(t.on_loss(ms(2_000)), Some(10));
        // A clock jumping backwards does not leave it deaf.
        assert_eq!(t.on_loss(ms(500)), Some(5));
    }

    #[test]
    fn window_stays_within_bounds() {
        // Goal: the floor and ceiling hold; reset returns to the initial window.
        let mut t = Throttle::new(ThrottleConfig {
            window_initial: 3,
            window_min: 2,
            window_max: 5,
            decrease_cooldown: Duration::ZERO,
        });
        for _ in 0..100 {
            t.on_success(ms(0));
        }
        assert_eq!(t.window(), 5);
        assert_eq!(t.on_success(ms(0)), None);
        assert_eq!(t.on_loss(ms(1)), Some(2));
        assert_eq!(t.on_loss(ms(2)), None);
        assert_eq!(t.window(), 2);
        t.reset();
        assert_eq!(t.window(), 3);
    }

    #[test]
    fn validate_rejects_bad_configs() {
        // Goal: zero floor and misordered windows are configuration errors.
        assert_eq!(ThrottleConfig::default().validate(), Ok(()));
        let c = ThrottleConfig {
            window_min: 0,
            ..ThrottleConfig::default()
        };
        assert_eq!(c.validate(), Err(ThrottleError::ZeroMin));
        let c = ThrottleConfig {
            window_initial: 100,
            ..ThrottleConfig::default()
        };
        assert!(matches!(c.validate(), Err(ThrottleError::Order { .. })));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_sequence_keeps_the_window_in_bounds(events in proptest::collection::vec((any::<bool>(), 0u64..3_000), 0..300)) {
            // Goal: whatever the mix of successes and losses, min <= window <= max, and
            // every reported change is the new window.
            let config = ThrottleConfig::default();
            let mut t = Throttle::new(config.clone());
            let mut now = 0;
            for (ok, dt) in events {
                now += dt;
                let before = t.window();
                let changed = if ok { t.on_success(ms(now)) } else { t.on_loss(ms(now)) };
                prop_assert!(t.window() >= config.window_min && t.window() <= config.window_max);
                match changed {
                    Some(w) => prop_assert_eq!(w, t.window()),
                    None => prop_assert_eq!(before, t.window()),
                }
            }
        }
    }
}
