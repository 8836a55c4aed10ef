//! The servers' clock: tokio's monotonic clock (which turmoil drives in the tests) mapped
//! onto the logic's [`Time`], counted from the process start.
//!
//! Not covered: wall-clock time (the audit log stamps its entries itself).

use sovereign_logic::Time;
use std::time::Duration;
use tokio::time::Instant;

/// Maps tokio's clock onto [`Time`] (microseconds since the node started).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock whose epoch is now.
    pub fn start() -> Self {
        Clock {
            start: Instant::now(),
        }
    }

    /// The current time.
    pub fn now(&self) -> Time {
        Time::from_micros(u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    /// The instant a [`Time`] falls on (saturating far in the future).
    pub fn instant(&self, t: Time) -> Instant {
        let far = Duration::from_secs(100 * 365 * 86_400);
        self.start + Duration::from_micros(t.as_micros()).min(far)
    }
}
