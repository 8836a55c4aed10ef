//! Wall-clock time for the CLI's own reporting (sweep wall time and runs/s).
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
