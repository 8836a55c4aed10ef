//! Wall-clock time for the CLI's own reporting (sweep wall time and runs/s; when a report
//! was written, for the run history).
//!
//! The workspace's clippy.toml bans the wall clock because the logic and the simulator
//! must not read it. The CLI is a driver: measuring how long a sweep took is its job and
//! never feeds a run, so this one module is exempt. Not covered: anything a run sees.
#![allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "the driver measures its own wall time; runs never see it"
)]

use std::time::{Duration, Instant};

/// Measures elapsed wall time.
pub struct Stopwatch(Instant);

impl Stopwatch {
    /// Start now.
    pub fn start() -> Stopwatch {
        Stopwatch(Instant::now())
    }

    /// Time since start.
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// Now, as Unix seconds (UTC).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// When `path` was last modified, as Unix seconds (UTC), if the file system says.
pub fn modified_unix(path: &std::path::Path) -> Option<i64> {
    let t = std::fs::metadata(path).ok()?.modified().ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_secs()).ok()
}
