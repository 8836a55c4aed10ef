//! Progress of the long commands (`sim sweep`, `sim shrink`, `sim hunt`): a bar on a terminal, and
//! off a terminal (a CI log, `> log`) a plain line on stderr at every tenth of the work
//! and at least every 10 s — runs done, failures, elapsed and ETA — so that a sweep of
//! many minutes is never silent.
//!
//! Map: [`Progress`]; [`Plain`] decides when a line is due and writes it (pure, tested).
//!
//! Not covered: anything a run sees (the wall clock is read only here and in
//! [`crate::wall`]).

use crate::wall::Stopwatch;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

/// The longest silence off a terminal.
const QUIET_MAX: Duration = Duration::from_secs(10);

/// What the plain lines count: the items (`runs`) and the bad ones (`failed`).
#[derive(Clone, Copy, Debug)]
pub struct Units {
    /// The items, plural.
    pub items: &'static str,
    /// What a bad item is.
    pub bad: &'static str,
}

/// Runs, some failed (sweeps and shrinks).
pub const RUNS: Units = Units {
    items: "runs",
    bad: "failed",
};

/// Progress of `total` runs: a bar or plain lines.
pub struct Progress {
    bar: ProgressBar,
    plain: Option<Mutex<(Stopwatch, Plain)>>,
}

impl Progress {
    /// Progress of `what` (`sweep`, `shrink`, `hunt`) over `total` items; `template` is the
    /// bar's indicatif template on a terminal.
    pub fn new(what: &'static str, units: Units, total: u64, template: &str) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            return Progress { bar, plain: None };
        }
        Progress {
            bar: ProgressBar::hidden(),
            plain: Some(Mutex::new((
                Stopwatch::start(),
                Plain::new(what, units, total),
            ))),
        }
    }

    /// One run is done; `failed`: it failed (a violation, a missed SLO or a panic).
    pub fn inc(&self, failed: bool) {
        self.bar.inc(1);
        if let Some(m) = &self.plain {
            let mut g = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let (clock, plain) = &mut *g;
            if let Some(line) = plain.done(failed, clock.elapsed()) {
                eprintln!("{line}");
            }
        }
    }

    /// A short note on the bar (a terminal only: the plain lines stay regular).
    pub fn set_message(&self, msg: String) {
        self.bar.set_message(msg);
    }

    /// The work is over: clear the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The plain-line reporter's state.
#[derive(Debug)]
pub struct Plain {
    what: &'static str,
    units: Units,
    total: u64,
    done: u64,
    failed: u64,
    last: Duration,
}

impl Plain {
    /// Nothing done yet.
    pub fn new(what: &'static str, units: Units, total: u64) -> Plain {
        Plain {
            what,
            units,
            total,
            done: 0,
            failed: 0,
            last: Duration::ZERO,
        }
    }

    /// Count one finished run at `elapsed` since the start; the line to print, if one is
    /// due: the last run, a new tenth of the total, or `QUIET_MAX` since the last line.
    pub fn done(&mut self, failed: bool, elapsed: Duration) -> Option<String> {
        self.done += 1;
        self.failed += u64::from(failed);
        let tenth = |n: u64| n * 10 / self.total.max(1);
        let due = self.done >= self.total
            || tenth(self.done) > tenth(self.done - 1)
            || elapsed.saturating_sub(self.last) >= QUIET_MAX;
        if !due {
            return None;
        }
        self.last = elapsed;
        let eta = if self.done >= self.total {
            "done".to_string()
        } else {
            let per = elapsed.as_secs_f64() / self.done as f64;
            format!(
                "eta {}",
                clock((per * (self.total - self.done) as f64) as u64)
            )
        };
        Some(format!(
            "{}: {}/{} {}, {} {}, {} elapsed, {eta}",
            self.what,
            self.done,
            self.total,
            self.units.items,
            self.failed,
            self.units.bad,
            clock(elapsed.as_secs())
        ))
    }
}

/// Whole seconds as `1h02m03s` / `2m03s` / `3s`.
fn clock(s: u64) -> String {
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, s) => format!("{h}h{m:02}m{s:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_line_at_every_tenth_and_the_end_with_failures_and_eta() {
        // Goal: 20 quick runs give a line every 2 runs (10 lines), the last saying done.
        let mut p = Plain::new("sweep", RUNS, 20);
        let lines: Vec<String> = (1..=20).filter_map(|i| p.done(i == 3, at(i))).collect();
        assert_eq!(lines.len(), 10, "{lines:?}");
        assert_eq!(lines[0], "sweep: 2/20 runs, 0 failed, 2s elapsed, eta 18s");
        assert_eq!(lines[1], "sweep: 4/20 runs, 1 failed, 4s elapsed, eta 16s");
        assert_eq!(lines[9], "sweep: 20/20 runs, 1 failed, 20s elapsed, done");
    }

    #[test]
    fn a_slow_sweep_still_says_something_every_ten_seconds() {
        // Goal: 1,000 runs of 4 s: between tenths (100 runs, 400 s) a line every 10 s.
        let mut p = Plain::new("sweep", RUNS, 1000);
        let lines: Vec<String> = (1..=10).filter_map(|i| p.done(false, at(4 * i))).collect();
        // Lines at 12 s (the first run at or past 10 s of silence), 24 s and 36 s.
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].starts_with("sweep: 3/1000 runs, 0 failed, 12s elapsed, eta 1h06m"));
        assert!(lines[2].starts_with("sweep: 9/1000 runs"));
    }

    #[test]
    fn clock_reads_like_a_person_would_write_it() {
        assert_eq!(clock(0), "0s");
        assert_eq!(clock(59), "59s");
        assert_eq!(clock(61), "1m01s");
        assert_eq!(clock(3723), "1h02m03s");
    }
}
