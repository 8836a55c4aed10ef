//! Faults: detection (MTTD), recovery (MTTR, RTO compliance) and blast radius.
//!
//! One computation gives: the totals ([`Kpis`]' `faults*`, `mttd`, `mttr`,
//! `mttr_after_end`, `blast_radius`, `rto_compliance`, and every [`FaultOutcome`]), the
//! chart sample (a tower's steady state now, [`Faults::steady`]) and the text rows.
//!
//! The rules: a fault is detected by the first signal in its window (its start to its
//! end, or [`DETECT_GRACE`] after its start for shorter faults) that can reveal its
//! family on its target ([`detects`]); process faults are seen by their supervisor at
//! once, except an origin replacement. A fault is disrupting when a target tower left
//! its steady state during it; it is recovered when every disrupted target is steady
//! again. Not covered: detection of faults nothing in the log reveals (clock, Wi-Fi:
//! [`Detection::Excluded`]), devices affected (blast radius counts towers).

use super::{Kpis, RTO_DEFAULT, Row, format_dur, grow, mean_us};
use crate::obs::{Obs, Stamped};
use sovereign_logic::Time;
use sovereign_logic::io::Event;
use sovereign_logic::protocol::LinkKind;
use sovereign_scenario::{Family, FaultSpec, Slo, Target};
use std::time::Duration;

/// A fault is detected if its signal comes before it ends, or within this long of its
/// start for faults shorter than that (a probe needs a few rounds to declare a link down).
pub const DETECT_GRACE: Duration = Duration::from_secs(60);

const _: () = assert!(DETECT_GRACE.as_secs() < RTO_DEFAULT.as_secs());

/// How a fault was detected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detection {
    /// Nothing in the log can reveal this fault (clock faults, Wi-Fi faults): left out
    /// of MTTD.
    Excluded,
    /// No detection signal came in the fault's window.
    Never,
    /// The first detection signal.
    At(Time),
}

/// What became of one injected fault.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultOutcome {
    /// The fault's id.
    pub id: u64,
    /// The fault.
    pub spec: FaultSpec,
    /// When it started.
    pub start: Time,
    /// When it ended (the run's end if it never did).
    pub end: Time,
    /// When it was detected.
    pub detected: Detection,
    /// A target tower left its steady state at some point during the fault.
    pub disrupting: bool,
    /// Towers (any, not only targets) not steady at some point during the fault.
    pub towers_unsteady: u64,
    /// When every disrupted target tower was steady again (`None`: never, or not
    /// disrupting).
    pub recovered: Option<Time>,
}

/// A detection signal seen on a tower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signal {
    /// A link was declared down.
    LinkDown(LinkKind),
    /// The active uplink changed.
    Failover,
    /// The power mode changed.
    PowerMode,
    /// The tower process stopped.
    Down,
    /// A storage operation failed.
    Storage,
    /// A tower found another origin than the one it trusts answering its uplinks.
    OriginMismatch,
}

/// One tower's steady-state transitions (time, steady), in time order.
#[derive(Clone, Debug, Default)]
struct Steadiness(Vec<(Time, bool)>);

impl Steadiness {
    /// Steady at `t` (after every transition at or before `t`). Before any report a
    /// tower counts as steady: the world reports changes, and there is no evidence of a
    /// disruption.
    fn steady_at(&self, t: Time) -> bool {
        self.0
            .iter()
            .take_while(|(at, _)| *at <= t)
            .last()
            .is_none_or(|(_, s)| *s)
    }

    /// Not steady at some point in `start..=end`.
    fn unsteady_during(&self, start: Time, end: Time) -> bool {
        !self.steady_at(start) || self.0.iter().any(|(at, s)| *at > start && *at <= end && !s)
    }

    /// When the tower was steady again for a fault over `start..=end`: the last return
    /// to steady before the end (not before the start) if steady at the end, else the
    /// first return after it.
    fn recovered(&self, start: Time, end: Time) -> Option<Time> {
        if self.steady_at(end) {
            let last = self
                .0
                .iter()
                .rev()
                .find(|(at, s)| *s && *at <= end)
                .map(|(at, _)| *at)
                .unwrap_or(start);
            Some(last.max(start))
        } else {
            self.0
                .iter()
                .find(|(at, s)| *s && *at > end)
                .map(|(at, _)| *at)
        }
    }
}

/// Whether a signal on `tower` detects a fault of `family` on `target`.
fn detects(family: Family, target: &Target, tower: Option<usize>, signal: Signal) -> bool {
    let on = |t: usize| tower == Some(t);
    match (family, target, signal) {
        (Family::Network, Target::Link(t, kind), Signal::LinkDown(k)) => on(*t) && *kind == k,
        (Family::Network, Target::Link(t, _), Signal::Failover) => on(*t),
        (Family::Network, Target::Tower(t), Signal::LinkDown(_) | Signal::Failover) => on(*t),
        (Family::Network, Target::Origin, Signal::LinkDown(_) | Signal::Failover) => {
            tower.is_some()
        }
        (Family::Disk, Target::Tower(t), Signal::Storage) => on(*t),
        (Family::Disk, Target::Origin, Signal::Storage) => tower.is_none(),
        // Only an `origin-replace` makes a clean tower see another origin (`origin-busy`
        // is not detected: its refusals name the trusted origin).
        (Family::Process, Target::Origin, Signal::OriginMismatch) => tower.is_some(),
        // A hard cut or brown-out crash stops the tower before it can change mode; the
        // supervisor sees the stop at once.
        (Family::Power, Target::Tower(t), Signal::PowerMode | Signal::Down) => on(*t),
        _ => false,
    }
}

/// Nothing in the log can detect this fault (its declaration says on which targets a
/// fault signal can).
fn undetectable(spec: &FaultSpec) -> bool {
    !spec.kind.decl().detected_on.contains(&spec.target)
}

/// The towers a fault lands on (`n`: towers in the run).
fn target_towers(target: &Target, n: usize) -> Vec<usize> {
    match target {
        Target::Origin => (0..n).collect(),
        Target::Tower(t) | Target::Link(t, _) | Target::Wifi(t) => vec![*t],
    }
}

/// Faults, detection signals and steady-state transitions.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// (id, fault, start, end).
    faults: Vec<(u64, FaultSpec, Time, Option<Time>)>,
    /// (at, tower — `None`: the origin —, signal).
    signals: Vec<(Time, Option<usize>, Signal)>,
    /// Per tower.
    towers: Vec<Steadiness>,
}

impl Faults {
    pub(super) fn observe(&mut self, s: &Stamped) {
        let mut signal = |tower: Option<usize>, sig: Signal| self.signals.push((s.at, tower, sig));
        match &s.obs {
            Obs::Tower { tower, event } => match event {
                Event::LinkHealth { link, up: false } => {
                    signal(Some(*tower), Signal::LinkDown(*link));
                }
                Event::ActiveLink { .. } => signal(Some(*tower), Signal::Failover),
                Event::OriginMismatch { .. } => signal(Some(*tower), Signal::OriginMismatch),
                Event::PowerMode { .. } => signal(Some(*tower), Signal::PowerMode),
                _ => {}
            },
            Obs::TowerDown { tower, .. } => signal(Some(*tower), Signal::Down),
            Obs::StorageError { tower } => signal(*tower, Signal::Storage),
            Obs::Steady { tower, steady } => grow(&mut self.towers, *tower).0.push((s.at, *steady)),
            Obs::FaultStart { id, spec } => self.faults.push((*id, spec.clone(), s.at, None)),
            Obs::FaultEnd { id, .. } => {
                if let Some(f) = self.faults.iter_mut().rev().find(|f| f.0 == *id) {
                    f.3.get_or_insert(s.at);
                }
            }
            _ => {}
        }
    }

    /// Whether a tower is in its steady state now (before any report: steady).
    pub fn steady(&self, tower: usize) -> bool {
        self.towers
            .get(tower)
            .and_then(|s| s.0.last())
            .is_none_or(|(_, steady)| *steady)
    }

    /// What became of one fault over `start..=end` (`n`: towers in the run).
    fn outcome(&self, id: u64, spec: &FaultSpec, start: Time, end: Time, n: usize) -> FaultOutcome {
        let family = spec.kind.family();
        let detected = if undetectable(spec) {
            Detection::Excluded
        } else if family == Family::Process
            && !matches!(spec.kind, sovereign_scenario::FaultKind::OriginReplace)
        {
            // A process fault stops (or stalls) a process: its supervisor sees it at
            // once. A replaced origin runs on; only the towers' mismatch reveals it.
            Detection::At(start)
        } else {
            let window_end = end.max(start + DETECT_GRACE);
            self.signals
                .iter()
                .find(|(at, tower, sig)| {
                    *at >= start && *at <= window_end && detects(family, &spec.target, *tower, *sig)
                })
                .map_or(Detection::Never, |(at, _, _)| Detection::At(*at))
        };
        let disrupted: Vec<&Steadiness> = target_towers(&spec.target, n)
            .into_iter()
            .filter_map(|t| self.towers.get(t))
            .filter(|s| s.unsteady_during(start, end))
            .collect();
        let recovered = if disrupted.is_empty() {
            None
        } else {
            disrupted
                .iter()
                .map(|s| s.recovered(start, end))
                .collect::<Option<Vec<Time>>>()
                .and_then(|v| v.into_iter().max())
        };
        let towers_unsteady = self
            .towers
            .iter()
            .filter(|t| t.unsteady_during(start, end))
            .count() as u64;
        FaultOutcome {
            id,
            spec: spec.clone(),
            start,
            end,
            detected,
            disrupting: !disrupted.is_empty(),
            towers_unsteady,
            recovered,
        }
    }

    /// `n`: towers in the run; `end`: the run's end (of faults that never ended).
    pub(super) fn finish(&self, k: &mut Kpis, n: usize, end: Time) {
        k.fault_outcomes = self
            .faults
            .iter()
            .map(|(id, spec, start, e)| {
                self.outcome(*id, spec, *start, e.unwrap_or(end).max(*start), n)
            })
            .collect();
        k.faults = k.fault_outcomes.len() as u64;
        let mut ttd = Vec::new();
        let mut ttr = Vec::new();
        let mut ttr_end = Vec::new();
        for f in &k.fault_outcomes {
            match f.detected {
                Detection::Excluded => k.faults_undetectable += 1,
                Detection::Never => k.faults_undetected += 1,
                Detection::At(at) => {
                    k.faults_detected += 1;
                    ttd.push(at.saturating_since(f.start).as_micros() as u64);
                }
            }
            if f.disrupting {
                k.faults_disrupting += 1;
                match f.recovered {
                    Some(at) => {
                        ttr.push(at.saturating_since(f.start).as_micros() as u64);
                        ttr_end.push(at.saturating_since(f.end).as_micros() as u64);
                    }
                    None => k.faults_unrecovered += 1,
                }
            }
        }
        k.mttd = mean_us(&ttd);
        k.mttr = mean_us(&ttr);
        k.mttr_after_end = mean_us(&ttr_end);
        k.blast_radius = (k.faults > 0 && n > 0).then(|| {
            k.fault_outcomes
                .iter()
                .map(|f| f.towers_unsteady as f64 / n as f64)
                .sum::<f64>()
                / k.faults as f64
        });
    }
}

/// RTO compliance against the scenario's `mttr_max` (else [`RTO_DEFAULT`]).
pub(super) fn apply_slo(k: &mut Kpis, slo: &Slo) {
    k.rto_bound = slo.mttr_max.unwrap_or(RTO_DEFAULT);
    let bound = k.rto_bound;
    k.rto_compliance = (k.faults_disrupting > 0).then(|| {
        let ok = k
            .fault_outcomes
            .iter()
            .filter(|f| f.disrupting)
            .filter(|f| {
                f.recovered
                    .is_some_and(|r| r.saturating_since(f.start) <= bound)
            })
            .count();
        ok as f64 / k.faults_disrupting as f64
    });
}

pub(super) fn rows(k: &Kpis) -> [Row; 3] {
    let opt_dur = |v: Option<Duration>| v.map_or_else(|| "n/a".to_string(), format_dur);
    [
        (
            "faults".into(),
            format!(
                "{} ({} detected, {} undetected, {} undetectable; {} disrupting)",
                k.faults,
                k.faults_detected,
                k.faults_undetected,
                k.faults_undetectable,
                k.faults_disrupting
            ),
        ),
        ("mttd".into(), opt_dur(k.mttd)),
        (
            "mttr".into(),
            format!(
                "{} (after fault end: {}; {} never recovered)",
                opt_dur(k.mttr),
                opt_dur(k.mttr_after_end),
                k.faults_unrecovered
            ),
        ),
    ]
}

pub(super) fn recovery_rows(k: &Kpis) -> [Row; 2] {
    [
        (
            "rto compliance".into(),
            format!(
                "{} (recovered within {})",
                super::opt_f(k.rto_compliance, 3),
                format_dur(k.rto_bound)
            ),
        ),
        ("blast radius".into(), super::opt_f(k.blast_radius, 3)),
    ]
}
