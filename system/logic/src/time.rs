//! Virtual time as data.
//!
//! The logic never reads a clock: every entry point takes `now: Time`. A [`Time`] is a
//! count of microseconds since an epoch the driver picks (the start of a simulated run,
//! or the process start of a real server). Durations are `std::time::Duration`, which is
//! plain data and deterministic.
//!
//! Not covered: calendars, time zones, wall-clock conversion — drivers map `Time` onto
//! wall time when they need to (reports, Grafana export).

use std::fmt;
use std::ops::{Add, AddAssign};
use std::time::Duration;

/// A point in (virtual or driver-supplied) time, in microseconds since the driver's epoch.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(u64);

impl Time {
    /// The driver's epoch.
    pub const ZERO: Time = Time(0);
    /// The farthest representable time; used as "never".
    pub const MAX: Time = Time(u64::MAX);

    /// A time `us` microseconds after the epoch.
    pub const fn from_micros(us: u64) -> Time {
        Time(us)
    }
    /// A time `ms` milliseconds after the epoch.
    pub const fn from_millis(ms: u64) -> Time {
        Time(ms * 1_000)
    }
    /// A time `s` seconds after the epoch.
    pub const fn from_secs(s: u64) -> Time {
        Time(s * 1_000_000)
    }
    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }
    /// Milliseconds since the epoch (truncated).
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000
    }
    /// Seconds since the epoch as a float (for reports only, never for decisions).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }
    /// The time elapsed since `earlier`, or zero if `earlier` is later (clock jumps backwards
    /// are a fault the simulator injects; the logic must tolerate them, not panic).
    pub fn saturating_since(self, earlier: Time) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
    /// `self + d`, saturating at [`Time::MAX`].
    pub fn saturating_add(self, d: Duration) -> Time {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Time(self.0.saturating_add(us))
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        self.saturating_add(d)
    }
}

impl AddAssign<Duration> for Time {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl fmt::Debug for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Time {
    /// `T+<seconds>.<micros>s`, e.g. `T+12.000250s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "T+{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        assert_eq!(Time::MAX + Duration::from_secs(1), Time::MAX);
        assert_eq!(
            Time::from_secs(1).saturating_since(Time::from_secs(2)),
            Duration::ZERO
        );
        assert_eq!(
            Time::from_millis(1500).saturating_since(Time::from_secs(1)),
            Duration::from_millis(500)
        );
        assert_eq!(format!("{}", Time::from_micros(12_000_250)), "T+12.000250s");
    }
}
