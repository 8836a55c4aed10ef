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
    /// Time since the run's start as every screen writes it: `HH:MM:SS.mmm`, with whole
    /// days in front past the first (`1d 02:03:04.567`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0 / 1000;
        let s = ms / 1000;
        let (d, h, m, sec, frac) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60, ms % 1000);
        if d > 0 {
            write!(f, "{d}d ")?;
        }
        write!(f, "{h:02}:{m:02}:{sec:02}.{frac:03}")
    }
}

impl Time {
    /// Read a time written as [`Time`]'s `Display` does (`02:03:04.567`,
    /// `1d 02:03:04.567`; the fraction optional, up to microseconds).
    pub fn parse_clock(text: &str) -> Option<Time> {
        let text = text.trim();
        let (days, clock) = match text.split_once(' ') {
            Some((d, rest)) => (d.strip_suffix('d')?.parse::<u64>().ok()?, rest.trim()),
            None => (0, text),
        };
        let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
        let mut parts = hms.split(':').map(|p| p.parse::<u64>().ok());
        let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
        if parts.next().is_some() || h >= 24 || m >= 60 || s >= 60 || frac.len() > 6 {
            return None;
        }
        let micros = if frac.is_empty() {
            0
        } else {
            frac.parse::<u64>().ok()? * 10u64.pow(6 - frac.len() as u32)
        };
        let secs = days
            .checked_mul(86_400)?
            .checked_add(h * 3600 + m * 60 + s)?;
        secs.checked_mul(1_000_000)?
            .checked_add(micros)
            .map(Time::from_micros)
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
    }

    #[test]
    fn one_clock_format_written_and_read_back() {
        // Goal: the format every screen uses, and its reader, agree (to the millisecond).
        assert_eq!(Time::from_micros(12_000_250).to_string(), "00:00:12.000");
        assert_eq!(Time::from_millis(3_723_567).to_string(), "01:02:03.567");
        let t = Time::from_millis(93_784_005);
        assert_eq!(t.to_string(), "1d 02:03:04.005");
        assert_eq!(Time::parse_clock(&t.to_string()), Some(t));
        assert_eq!(
            Time::parse_clock("00:00:01.5"),
            Some(Time::from_millis(1_500))
        );
        assert_eq!(
            Time::parse_clock("00:00:01.000250"),
            Some(Time::from_micros(1_000_250))
        );
        for bad in [
            "",
            "1:2",
            "24:00:00",
            "00:60:00",
            "x 01:00:00",
            "00:00:01.1234567",
        ] {
            assert_eq!(Time::parse_clock(bad), None, "{bad:?}");
        }
    }
}
