//! Wall-clock and CPU time for the CLI's own reporting (sweep wall time and runs/s; a
//! hunt's CPU seconds per run; when a report was written, for the run history).
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

/// CPU time the calling thread has used so far, from Linux's
/// `/proc/thread-self/schedstat` (its first field: nanoseconds on a CPU). `None` where
/// the file is missing or unreadable; callers then fall back to wall time and say so.
pub fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Seconds `f` took on this thread's CPU (wall seconds when there is no per-thread CPU
/// clock), with its result.
pub fn cpu_seconds<R>(f: impl FnOnce() -> R) -> (R, f64) {
    let wall = Stopwatch::start();
    let before = thread_cpu();
    let r = f();
    let took = match (before, thread_cpu()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => wall.elapsed(),
    };
    (r, took.as_secs_f64())
}
