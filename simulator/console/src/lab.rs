//! Real processes as a [`Source`]: the console and game days on a lab run
//! (`sovereign console --lab`, `sovereign gameday --lab`).
//!
//! A [`LabSource`] wraps a [`sovereign_lab::Session`]: the same origin, towers, proxies
//! and devices as `sovereign lab run`, the same injections for the same fault kinds, the
//! same observations, oracles and report. What differs from the simulator is time: it is
//! the wall clock, so there is no pause, step, speed, jump or restart
//! ([`Source::real_time`]), and the oracles judge at the end of the run, not as it goes.
//!
//! Not covered: the lab itself (`sovereign-lab`), drawing (`ui.rs`).
#![allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "a lab run is real processes on the wall clock; nothing deterministic runs here"
)]

use crate::source::{Advance, Finished, Source, SourceError, cut_to_heals};
use sovereign_lab::Session;
use sovereign_lab::run::TICK;
use sovereign_logic::Time;
use sovereign_sim::obs::Stamped;
use sovereign_sim::scenario::{FaultSpec, Scenario};
use sovereign_sim::world::Snapshot;
use std::time::{Duration, Instant};

/// Longest one [`Source::advance`] of a lab run waits for its target (the console draws
/// a frame in between; a game day polls again).
pub const ADVANCE_WAIT_MAX: Duration = Duration::from_millis(100);

/// Why the replay file of a lab run replays something else.
pub const LAB_REPLAY_CAVEAT: &str = "a lab run is real processes on the wall clock: `sim \
    replay` runs its schedule (the operator's injections and heals included) in the \
    simulator, which shows what the model makes of the same faults, not this run again";

/// A lab run as the console's source.
pub struct LabSource {
    session: Session,
    seed: u64,
    /// The run ended (or failed).
    done: bool,
    /// Why the run failed, if it did.
    failed: Option<String>,
}

impl LabSource {
    /// The console's source for `session`, started with `seed`.
    pub fn new(session: Session, seed: u64) -> LabSource {
        LabSource {
            session,
            seed,
            done: false,
            failed: None,
        }
    }

    /// The run failed: it is over, and `finish` will say why.
    fn fail(&mut self, e: impl std::fmt::Display) -> SourceError {
        let why = format!("{e:#}");
        self.failed = Some(why.clone());
        self.done = true;
        SourceError::Failed(why)
    }

    /// One tick of the run; `false` once it is over (ended or failed).
    fn tick(&mut self) -> bool {
        if self.done {
            return false;
        }
        match self.session.tick() {
            Ok(true) => true,
            Ok(false) => {
                self.done = true;
                false
            }
            Err(e) => {
                self.fail(e);
                false
            }
        }
    }

    /// Why the run failed, if it did (the console shows it; `finish` returns it).
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }
}

fn time(d: Duration) -> Time {
    Time::from_micros(d.as_micros() as u64)
}

impl Source for LabSource {
    fn snapshot(&self) -> Snapshot {
        self.session.snapshot()
    }

    fn now(&self) -> Time {
        time(self.session.elapsed())
    }

    fn next_event_time(&self) -> Option<Time> {
        None
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn take_observations(&mut self) -> Vec<Stamped> {
        self.session.take_observations()
    }

    fn scenario(&self) -> &Scenario {
        self.session.scenario()
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    /// One tick of the lab (what is due now).
    fn step(&mut self) -> bool {
        self.tick()
    }

    /// Tick until the wall clock reaches `to`, waiting at most [`ADVANCE_WAIT_MAX`]
    /// (`Budget` then: call again). The event budget means nothing here.
    fn advance(&mut self, to: Time, _events_max: u64) -> Advance {
        let began = Instant::now();
        loop {
            if !self.tick() {
                return Advance::Done;
            }
            let now = self.now();
            if now >= to {
                return Advance::Reached;
            }
            let spent = began.elapsed();
            if spent >= ADVANCE_WAIT_MAX {
                return Advance::Budget;
            }
            let left = Duration::from_micros(to.as_micros().saturating_sub(now.as_micros()));
            std::thread::sleep(TICK.min(left).min(ADVANCE_WAIT_MAX - spent));
        }
    }

    /// A refusal leaves the run as it was; a failed injection ends it.
    fn inject(&mut self, spec: FaultSpec) -> Result<(usize, Time), SourceError> {
        match self.session.inject(spec) {
            Ok(Ok((id, at))) => Ok((id, time(at))),
            Ok(Err(why)) => Err(SourceError::Refused(why)),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn heal(&mut self) -> Result<(Vec<usize>, Time), SourceError> {
        match self.session.heal() {
            Ok(Ok((ids, at))) => Ok((ids, time(at))),
            Ok(Err(why)) => Err(SourceError::Refused(why)),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn end_early(&mut self) -> Result<(), SourceError> {
        if self.done {
            return Ok(());
        }
        self.session.end_early().map_err(|e| self.fail(e))
    }

    /// Not possible: the console refuses it for a real-time source first.
    fn restart(&mut self, _seed: u64) {}

    fn finish(mut self: Box<Self>) -> Result<Finished, SourceError> {
        if let Some(why) = self.failed.take() {
            return Err(SourceError::Failed(why));
        }
        let scenario = self.session.scenario().clone();
        let healed: Vec<(usize, Time)> = self
            .session
            .healed()
            .iter()
            .map(|(id, at)| (*id, time(*at)))
            .collect();
        let mut not_injected = self.session.not_injected().to_vec();
        let run = self
            .session
            .finish()
            .map_err(|e| SourceError::Failed(format!("{e:#}")))?;
        let mut replay_schedule = run.report.schedule.clone();
        cut_to_heals(&mut replay_schedule, &healed);
        // Left out by an early end: by position, last first (the others keep theirs).
        not_injected.sort_unstable();
        not_injected.dedup();
        for k in not_injected.into_iter().rev() {
            if k < replay_schedule.len() {
                replay_schedule.remove(k);
            }
        }
        let mut replay_caveats = vec![LAB_REPLAY_CAVEAT.to_string()];
        replay_caveats.extend(run.warnings.iter().map(|w| format!("lab warning: {w}")));
        Ok(Finished {
            report: run.report,
            scenario,
            replay_schedule,
            replay_caveats,
            series: Some(run.series),
        })
    }

    fn real_time(&self) -> bool {
        true
    }
}
