//! The console's data source: what it reads (snapshots, observations) and the few verbs it
//! may use on a run (advance, step, inject, heal, restart, finish).
//!
//! The console never reaches into a world: it reads [`Snapshot`]s and observations and
//! asks the source to act. [`Source`] is the seam a later issue uses to attach the same
//! console to real tower and origin processes; [`SimSource`] is the simulator's
//! implementation, wrapping a [`World`].
//!
//! # Replay fidelity
//! An operator's injection and heal happen at times the operator chose, and the replay
//! file must reproduce them from an explicit schedule alone. Two rules make that exact:
//! - every injection and heal lands on a whole millisecond (files store durations to the
//!   millisecond) at which no event was already queued, so that the live run and the
//!   replay order it the same way among same-time events;
//! - a fault healed early is written to the replay schedule with its duration cut to the
//!   heal time. That is exact for every kind whose start does not use its own duration:
//!   pauses and origin crashes do (the world schedules their end from it), so healing one
//!   of those early is reported as a replay caveat (see [`Finished::replay_caveats`]).
//!
//! Not covered: real processes (a later issue), rendering, pacing (see `driver.rs`).

use sovereign_logic::Time;
use sovereign_report::data::series_end;
use sovereign_report::series::RunSeries;
use sovereign_report::series::SeriesScan;
use sovereign_sim::Observer;
use sovereign_sim::obs::Stamped;
use sovereign_sim::scenario::{FaultSpec, Scenario};
use sovereign_sim::world::{Snapshot, World};
use sovereign_sim::{RunOptions, RunReport};
use std::time::Duration;

/// Most one-millisecond slots tried to find a free instant for an injection or a heal.
pub const ALIGN_TRIES_MAX: u32 = 10_000;

/// How a bounded advance ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advance {
    /// Virtual time reached the target.
    Reached,
    /// The event budget ran out first (call again).
    Budget,
    /// The run is over.
    Done,
}

/// What a source refused to do.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SourceError {
    /// Faults can no longer be injected (the run healed or ended).
    #[error("faults can no longer be injected: the run is in its {0} phase")]
    NotInjectable(&'static str),
    /// No free instant was found for the action.
    #[error("no free instant found within {ALIGN_TRIES_MAX} ms")]
    NoFreeInstant,
    /// The source cannot do it (why).
    #[error("{0}")]
    Refused(String),
    /// The run failed (why): no report.
    #[error("the run failed: {0}")]
    Failed(String),
}

/// A finished run: its report, and the explicit schedule that replays it.
#[derive(Clone, Debug)]
pub struct Finished {
    /// The run's report (its `schedule` lists faults as they were scheduled).
    pub report: RunReport,
    /// The scenario as run (the console may have shortened its duration).
    pub scenario: Scenario,
    /// The schedule a replay must use: `report.schedule` with early-healed faults cut to
    /// their heal time.
    pub replay_schedule: Vec<FaultSpec>,
    /// Why the replay might not be exact (empty: exact).
    pub replay_caveats: Vec<String>,
    /// The run's time series for reports and exports (`None`: the source keeps none).
    pub series: Option<RunSeries>,
}

impl Finished {
    /// The report with its schedule replaced by the replay schedule (what a failure file
    /// is built from).
    pub fn replay_report(&self) -> RunReport {
        let mut r = self.report.clone();
        r.schedule = self.replay_schedule.clone();
        r
    }
}

/// Where the console's view of a system comes from.
pub trait Source {
    /// A read-only view of the system now.
    fn snapshot(&self) -> Snapshot;
    /// Virtual (or real) time now.
    fn now(&self) -> Time;
    /// When the next thing happens, if known.
    fn next_event_time(&self) -> Option<Time>;
    /// Whether the run is over.
    fn is_done(&self) -> bool;
    /// The observations made since the last call, oldest first (the console's live view
    /// folds them; nothing keeps the whole log).
    fn take_observations(&mut self) -> Vec<Stamped>;
    /// The scenario being run.
    fn scenario(&self) -> &Scenario;
    /// The run's seed.
    fn seed(&self) -> u64;
    /// Process the next event; `false` once the run is over.
    fn step(&mut self) -> bool;
    /// Advance to `to`, processing at most `events_max` events.
    fn advance(&mut self, to: Time, events_max: u64) -> Advance;
    /// Inject a fault starting now (its `at` is ignored); returns its id and start.
    fn inject(&mut self, spec: FaultSpec) -> Result<(usize, Time), SourceError>;
    /// End every active fault now; returns the ids healed and when.
    fn heal(&mut self) -> Result<(Vec<usize>, Time), SourceError>;
    /// Start over with another seed.
    fn restart(&mut self, seed: u64);
    /// Run to the end and hand back the report.
    fn finish(self: Box<Self>) -> Result<Finished, SourceError>;
    /// The operator leaves before the run is over: a source whose rest would take real
    /// time ends the scenario now (heals, injects nothing more) so that [`Source::finish`]
    /// is only the heal and the liveness check. The simulator runs the rest (in
    /// moments): nothing to do.
    fn end_early(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
    /// Real processes on the wall clock: time cannot be paused, stepped, sped up, jumped
    /// or restarted, and violations are judged only at the end (observations from
    /// several processes arrive out of order), so a snapshot has none.
    fn real_time(&self) -> bool {
        false
    }
}

/// Cut each fault of `schedule` healed early (`healed`: id, heal time) to its heal time;
/// the ids cut, in `healed`'s order.
pub fn cut_to_heals(schedule: &mut [FaultSpec], healed: &[(usize, Time)]) -> Vec<usize> {
    let mut cut_ids = Vec::new();
    for (id, at) in healed {
        let Some(spec) = schedule.get_mut(*id) else {
            continue;
        };
        let start = Duration::from_micros(spec.at.as_micros() as u64);
        let cut = Duration::from_micros(at.as_micros()).saturating_sub(start);
        if cut < spec.duration {
            spec.duration = cut;
            cut_ids.push(*id);
        }
    }
    cut_ids
}

/// The simulator as a [`Source`].
pub struct SimSource {
    scenario: Scenario,
    seed: u64,
    world: World,
    /// (fault id, heal time) of faults ended early by [`Source::heal`].
    healed: Vec<(usize, Time)>,
    /// The report's charts, sampled as the run goes.
    series: SeriesScan,
    /// Observations the series has seen and the console has not taken yet.
    pending: Vec<Stamped>,
}

impl SimSource {
    /// A fresh world for `scenario` with `seed`.
    pub fn new(scenario: Scenario, seed: u64) -> SimSource {
        let world = started(&scenario, seed);
        SimSource {
            series: SeriesScan::new(&scenario),
            scenario,
            seed,
            world,
            healed: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// Hand the world's new observations to the series and keep them for the console.
    fn pump(&mut self) {
        for s in self.world.take_observations() {
            self.series.observe(&s);
            self.pending.push(s);
        }
    }

    /// The first whole millisecond after now at which no event is queued, with every
    /// event before it processed and the world's clock moved onto it.
    fn free_instant(&mut self) -> Result<Time, SourceError> {
        let now = self.world.now().as_micros();
        let mut t = (now / 1000 + 1) * 1000;
        for _ in 0..ALIGN_TRIES_MAX {
            // Everything strictly before `t` runs first, in both the live run and a replay.
            if !self.world.run_until(Time::from_micros(t - 1)) {
                return Err(SourceError::NotInjectable("done"));
            }
            if self.world.next_event_time() != Some(Time::from_micros(t)) {
                self.world.run_until(Time::from_micros(t));
                debug_assert_eq!(self.world.now(), Time::from_micros(t));
                return Ok(Time::from_micros(t));
            }
            t += 1000;
        }
        Err(SourceError::NoFreeInstant)
    }

    fn phase_name(&self) -> &'static str {
        match self.world.snapshot().phase {
            sovereign_sim::world::Phase::Safety => "safety",
            sovereign_sim::world::Phase::Liveness => "liveness",
            sovereign_sim::world::Phase::Done => "done",
        }
    }
}

/// A world that has started (its first events are queued, so `next_event_time` is
/// known): the same sequence as `World::run`, which starts on its first step.
fn started(scenario: &Scenario, seed: u64) -> World {
    let mut world = World::new(scenario, &options(seed));
    world.tap_observations(); // the live view and the report's charts read them
    world.run_until(Time::ZERO);
    world
}

fn options(seed: u64) -> RunOptions {
    RunOptions {
        seed,
        ..RunOptions::default()
    }
}

impl Source for SimSource {
    fn snapshot(&self) -> Snapshot {
        self.world.snapshot()
    }

    fn now(&self) -> Time {
        self.world.now()
    }

    fn next_event_time(&self) -> Option<Time> {
        self.world.next_event_time()
    }

    fn is_done(&self) -> bool {
        self.world.is_done()
    }

    fn take_observations(&mut self) -> Vec<Stamped> {
        self.pump();
        std::mem::take(&mut self.pending)
    }

    fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn step(&mut self) -> bool {
        self.world.step()
    }

    fn advance(&mut self, to: Time, events_max: u64) -> Advance {
        let mut n = 0;
        loop {
            if self.world.is_done() {
                return Advance::Done;
            }
            match self.world.next_event_time() {
                Some(t) if t <= to => {
                    if n >= events_max {
                        return Advance::Budget;
                    }
                    n += 1;
                    if !self.world.step() {
                        return Advance::Done;
                    }
                }
                Some(_) => {
                    self.world.run_until(to);
                    return Advance::Reached;
                }
                None => return Advance::Done,
            }
        }
    }

    fn inject(&mut self, mut spec: FaultSpec) -> Result<(usize, Time), SourceError> {
        if self.world.snapshot().phase != sovereign_sim::world::Phase::Safety {
            return Err(SourceError::NotInjectable(self.phase_name()));
        }
        let at = self.free_instant()?;
        spec.at = Duration::from_micros(at.as_micros());
        match self.world.inject(spec) {
            Some(id) => Ok((id, at)),
            None => Err(SourceError::NotInjectable(self.phase_name())),
        }
    }

    fn heal(&mut self) -> Result<(Vec<usize>, Time), SourceError> {
        let active: Vec<usize> = self
            .world
            .snapshot()
            .faults
            .iter()
            .filter(|f| f.active)
            .map(|f| f.id)
            .collect();
        if active.is_empty() {
            return Ok((Vec::new(), self.world.now()));
        }
        let at = self.free_instant()?;
        self.world.heal_faults();
        for id in &active {
            self.healed.push((*id, at));
        }
        Ok((active, at))
    }

    fn restart(&mut self, seed: u64) {
        self.seed = seed;
        self.world = started(&self.scenario, seed);
        self.healed.clear();
        self.series = SeriesScan::new(&self.scenario);
        self.pending.clear();
    }

    fn finish(mut self: Box<Self>) -> Result<Finished, SourceError> {
        self.pump();
        self.pending.clear(); // nobody looks at the live view after the end
        self.world.run_observed(&mut self.series);
        let end = series_end(&self.world);
        let series = self.series.finish(end);
        let report = self.world.finish();
        let mut replay_schedule = report.schedule.clone();
        let mut replay_caveats = Vec::new();
        for id in cut_to_heals(&mut replay_schedule, &self.healed) {
            let spec = &replay_schedule[id];
            if spec.kind.decl().start_uses_duration.contains(&spec.target) {
                replay_caveats.push(format!(
                    "fault {id} ({} on {:?}) was healed early; its start depends on its \
                     duration, so the replay may differ after {}",
                    spec.kind.name(),
                    spec.target,
                    Time::ZERO + spec.at + spec.duration
                ));
            }
        }
        // Faults healed together end in id order live, but in start order in a replay.
        let mut by_time: std::collections::BTreeMap<Time, Vec<usize>> = Default::default();
        for (id, at) in &self.healed {
            by_time.entry(*at).or_default().push(*id);
        }
        for (at, ids) in by_time {
            let starts: Vec<Duration> = ids.iter().map(|i| replay_schedule[*i].at).collect();
            if starts.windows(2).any(|w| w[0] > w[1]) {
                replay_caveats.push(format!(
                    "faults {ids:?} healed together at {at} started out of id order; the \
                     replay may end them in another order"
                ));
            }
        }
        Ok(Finished {
            report,
            scenario: self.scenario,
            replay_schedule,
            replay_caveats,
            series: Some(series),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sovereign_logic::protocol::LinkKind;
    use sovereign_sim::scenario::{FaultKind, Target};

    fn short() -> Scenario {
        let mut sc = sovereign_sim::scenario::parse_str(
            "t.toml",
            "duration = \"2h\"\nliveness_bound = \"1h\"\n[[tower]]\ncount = 2\ndevices = 3\n\
             links = [\"fibre\", \"lte\"]\n",
        )
        .expect("test scenario parses");
        sc.seed = 3;
        sc
    }

    #[test]
    fn injections_land_on_free_whole_milliseconds_and_replay_exactly() {
        // Goal: an operator injection and an early heal at odd times replay to the same hash.
        let sc = short();
        let mut src = Box::new(SimSource::new(sc.clone(), 5));
        assert_eq!(
            src.advance(Time::from_micros(1_234_567_891), u64::MAX),
            Advance::Reached
        );
        let (id, at) = src
            .inject(FaultSpec {
                at: Duration::ZERO,
                duration: Duration::from_secs(1800),
                target: Target::Link(0, LinkKind::Fibre),
                kind: FaultKind::LinkDown,
            })
            .expect("injectable");
        assert_eq!(at.as_micros() % 1000, 0);
        assert!(at > Time::from_micros(1_234_567_891));
        src.advance(at + Duration::from_secs(600), u64::MAX);
        let (healed, heal_at) = src.heal().expect("heal");
        assert_eq!(healed, vec![id]);
        assert_eq!(heal_at.as_micros() % 1000, 0);
        let fin = src.finish().expect("a simulated run finishes");
        assert!(fin.replay_caveats.is_empty(), "{:?}", fin.replay_caveats);
        assert!(fin.replay_schedule[id].duration < Duration::from_secs(1800));
        let again = sovereign_sim::run(
            &fin.scenario,
            &RunOptions {
                seed: 5,
                schedule: Some(fin.replay_schedule.clone()),
                ..RunOptions::default()
            },
        );
        assert_eq!(again.trace_hash, fin.report.trace_hash);
    }

    #[test]
    fn advance_respects_its_event_budget() {
        // Goal: a bounded advance stops after the budget and resumes where it stopped.
        let mut src = SimSource::new(short(), 1);
        let end = Time::from_secs(3600);
        assert_eq!(src.advance(end, 10), Advance::Budget);
        assert!(src.now() < end);
        while src.advance(end, 1000) == Advance::Budget {}
        assert_eq!(src.now(), end);
    }
}
