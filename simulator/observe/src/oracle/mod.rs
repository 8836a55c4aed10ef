//! Oracles: one checker per invariant of DESIGN.md §6, run over the observation stream.
//!
//! Map:
//! - this file: the [`Checker`] interface every oracle implements, and [`Oracles`], which
//!   dispatches each observation to the enabled checkers and caps how many violations a
//!   run keeps ([`VIOLATIONS_MAX`]). Each checker reports a distinct problem once.
//! - [`integrity`], [`durability`], [`exactly_once`], [`conservation`], [`priority`],
//!   [`convergence`], [`offline`], [`power_safety`], [`attribution`]: one module per
//!   invariant, each with
//!   what it verifies and what it does not in its module doc.
//!
//! Checkers see only [`Stamped`] observations (the outside view of a run); they never
//! look inside a state machine. Not covered here: KPIs (see [`crate::kpi`]), which are
//! measured from the same stream but never fail a run by themselves.

pub mod attribution;
pub mod conservation;
pub mod convergence;
pub mod durability;
pub mod exactly_once;
pub mod integrity;
pub mod offline;
pub mod power_safety;
pub mod priority;

use crate::Violation;
use crate::obs::{Obs, Stamped};
use sovereign_logic::Time;
use sovereign_scenario::Oracle;
use std::collections::BTreeSet;

/// Most violations a run keeps. A broken invariant tends to fire over and over; the
/// first ones say what went wrong, the rest only cost memory (the count of the others is
/// kept in [`Oracles::dropped`]).
pub const VIOLATIONS_MAX: usize = 100;

/// One invariant checker.
pub trait Checker {
    /// The invariant it checks.
    fn oracle(&self) -> Oracle;
    /// Feed one observation (in time order); push any violation it reveals to `out`.
    fn observe(&mut self, s: &Stamped, out: &mut Vec<Violation>);
    /// End-of-run checks. `end`: the time of the last observation.
    fn finish(&mut self, end: Time, out: &mut Vec<Violation>);
    /// Acknowledged operations lost so far, from the one checker that owns that rule
    /// (durability): the run's RPO. `None` from every other checker.
    fn lost_acknowledged(&self) -> Option<u64> {
        None
    }
}

/// Runs the enabled checkers over a stream of observations, and the durability checker
/// always: its count of lost acknowledgements is the RPO KPI ([`Oracles::rpo`]), so the
/// rule runs once per run whether or not the scenario checks the invariant.
pub struct Oracles {
    /// The checkers, in [`Oracle`] order (so violations at one instant come out in a
    /// deterministic order), each with whether it is enabled (a disabled one — only
    /// durability — measures, and its violations are dropped).
    checkers: Vec<(Box<dyn Checker>, bool)>,
    /// Violations kept, in the order found (at most [`VIOLATIONS_MAX`]).
    violations: Vec<Violation>,
    /// Violations found after the cap was reached.
    dropped: u64,
    /// The time of the last observation (end-of-run checks are stamped with it).
    last_at: Time,
    /// Reused buffer the checkers push into.
    scratch: Vec<Violation>,
}

impl Oracles {
    /// Checkers for the given invariants.
    pub fn new(enabled: &BTreeSet<Oracle>) -> Oracles {
        let mut run = enabled.clone();
        run.insert(Oracle::Durability);
        let checkers: Vec<(Box<dyn Checker>, bool)> = run
            .iter()
            .map(|o| -> (Box<dyn Checker>, bool) {
                let c: Box<dyn Checker> = match o {
                    Oracle::Integrity => Box::new(integrity::Integrity::default()),
                    Oracle::Durability => Box::new(durability::Durability::default()),
                    Oracle::ExactlyOnce => Box::new(exactly_once::ExactlyOnce::default()),
                    Oracle::Conservation => Box::new(conservation::Conservation::default()),
                    Oracle::Priority => Box::new(priority::PriorityOrder::default()),
                    Oracle::Convergence => Box::new(convergence::Convergence::default()),
                    Oracle::OfflineService => Box::new(offline::OfflineService::default()),
                    Oracle::PowerSafety => Box::new(power_safety::PowerSafety::default()),
                    Oracle::Attribution => Box::new(attribution::Attribution::default()),
                };
                (c, enabled.contains(o))
            })
            .collect();
        assert_eq!(checkers.len(), run.len());
        Oracles {
            checkers,
            violations: Vec::new(),
            dropped: 0,
            last_at: Time::ZERO,
            scratch: Vec::new(),
        }
    }

    /// Feed one observation.
    pub fn observe(&mut self, obs: &Stamped) {
        debug_assert!(
            obs.at >= self.last_at,
            "observations must come in time order"
        );
        self.last_at = self.last_at.max(obs.at);
        self.each(|c, out| c.observe(obs, out));
    }

    /// Run `f` on every checker (in order), keeping what the enabled ones report.
    fn each(&mut self, f: impl Fn(&mut dyn Checker, &mut Vec<Violation>)) {
        for (c, enabled) in &mut self.checkers {
            let kept = self.scratch.len();
            f(c.as_mut(), &mut self.scratch);
            if !*enabled {
                self.scratch.truncate(kept);
            }
        }
        self.absorb();
    }

    /// Acknowledged operations lost so far (the durability checker's count): the RPO.
    pub fn rpo(&self) -> u64 {
        let rpo = self
            .checkers
            .iter()
            .find_map(|(c, _)| c.lost_acknowledged());
        rpo.expect("the durability checker always runs")
    }

    /// Violations found so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Violations found after [`VIOLATIONS_MAX`] were kept (not in [`Self::violations`]).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Finish (end-of-run checks) and return every violation.
    pub fn finish(mut self) -> Vec<Violation> {
        let end = self.last_at;
        self.each(|c, out| c.finish(end, out));
        self.violations
    }

    /// Move what the checkers pushed into the kept list, up to the cap. (Each checker
    /// reports a problem once itself: it knows what makes two reports the same problem.)
    fn absorb(&mut self) {
        for v in self.scratch.drain(..) {
            if self.violations.len() < VIOLATIONS_MAX {
                self.violations.push(v);
            } else {
                self.dropped += 1;
            }
        }
        assert!(self.violations.len() <= VIOLATIONS_MAX);
    }
}

/// Tower names learnt from [`Obs::Start`], for readable violation details.
#[derive(Clone, Debug, Default)]
pub(crate) struct TowerNames(Vec<String>);

impl TowerNames {
    /// Learn the names if `obs` is the run's start.
    pub(crate) fn learn(&mut self, obs: &Obs) {
        if let Obs::Start { towers, .. } = obs {
            self.0 = towers.clone();
        }
    }

    /// The name of tower `i` (`tower#i` if the start was not seen).
    pub(crate) fn get(&self, i: usize) -> String {
        self.0
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("tower#{i}"))
    }

    /// How many towers the start announced.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// The tower an observation is about, if any.
pub(crate) fn tower_of(obs: &Obs) -> Option<usize> {
    match obs {
        Obs::Tower { tower, .. }
        | Obs::Read { tower, .. }
        | Obs::Served { tower, .. }
        | Obs::Delivered { tower, .. }
        | Obs::Acked { tower, .. }
        | Obs::Requested { tower, .. }
        | Obs::Transfer { tower, .. }
        | Obs::TowerDown { tower, .. }
        | Obs::TowerUp { tower }
        | Obs::Power { tower, .. }
        | Obs::BatteryEmpty { tower, .. }
        | Obs::Backlog { tower, .. }
        | Obs::Steady { tower, .. }
        | Obs::Converged { tower } => Some(*tower),
        Obs::StorageError { tower } => *tower,
        _ => None,
    }
}

/// A violation of `oracle` at `at`.
pub(crate) fn violation(oracle: Oracle, at: Time, detail: String, liveness: bool) -> Violation {
    Violation {
        oracle,
        at,
        detail,
        liveness,
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Builders for synthetic observation sequences shared by the checkers' tests.
    use super::*;
    use sovereign_logic::content::{ChunkHash, ChunkRef, ItemId, Manifest, Priority};

    /// `obs` at `s` seconds.
    pub fn at(s: u64, obs: Obs) -> Stamped {
        Stamped {
            at: Time::from_secs(s),
            obs,
        }
    }

    /// A start with `n` towers named `tower-i`, each with fibre.
    pub fn start(n: usize) -> Stamped {
        at(
            0,
            Obs::Start {
                towers: (0..n).map(|i| format!("tower-{i}")).collect(),
                links: vec![vec![sovereign_logic::protocol::LinkKind::Fibre]; n],
                devices: 1,
            },
        )
    }

    /// A manifest of `item` version `version` with one chunk per name in `chunks`.
    pub fn manifest(item: &str, version: u64, priority: Priority, chunks: &[&str]) -> Manifest {
        let refs: Vec<ChunkRef> = chunks
            .iter()
            .map(|c| ChunkRef {
                hash: ChunkHash::of(c.as_bytes()),
                len: 10,
            })
            .collect();
        Manifest {
            item: ItemId::new(item),
            version,
            priority,
            size: 10 * refs.len() as u64,
            digest: ChunkHash::of(item.as_bytes()),
            chunks: refs,
        }
    }

    /// Run one checker over `seq` and finish it.
    pub fn run(c: &mut dyn Checker, seq: &[Stamped]) -> Vec<Violation> {
        let mut out = Vec::new();
        for s in seq {
            c.observe(s, &mut out);
        }
        let end = seq.last().map_or(Time::ZERO, |s| s.at);
        c.finish(end, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;
    use sovereign_logic::content::ItemId;

    fn served_bad(chunk: &str) -> Stamped {
        at(
            5,
            Obs::Served {
                tower: 0,
                item: ItemId::new("a"),
                version: 1,
                chunks: vec![(
                    sovereign_logic::content::ChunkHash::of(chunk.as_bytes()),
                    false,
                )],
                manifest_ok: true,
            },
        )
    }

    #[test]
    fn only_enabled_oracles_run() {
        // Goal: a disabled oracle never reports, an enabled one does.
        let mut none = Oracles::new(&BTreeSet::from([Oracle::PowerSafety]));
        none.observe(&start(1));
        none.observe(&served_bad("x"));
        assert!(none.finish().is_empty());

        let mut some = Oracles::new(&BTreeSet::from([Oracle::Integrity]));
        some.observe(&start(1));
        some.observe(&served_bad("x"));
        assert_eq!(some.violations().len(), 1);
        let v = some.finish();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].oracle, Oracle::Integrity);
    }

    #[test]
    fn the_rpo_is_measured_whether_or_not_durability_is_checked() {
        // Goal: the durability checker always runs (its count is the RPO KPI); disabled,
        // its violations are dropped, enabled they are kept.
        let lost = [
            start(1),
            at(
                2,
                Obs::Acked {
                    tower: 0,
                    key: sovereign_logic::protocol::IdemKey("k".into()),
                    fingerprint: sovereign_logic::content::ChunkHash([1; 32]),
                },
            ),
            at(
                3,
                Obs::TowerDown {
                    tower: 0,
                    clean: false,
                    durable_outbox: BTreeSet::new(),
                },
            ),
        ];
        for (enabled, kept) in [(Oracle::Integrity, 0), (Oracle::Durability, 1)] {
            let mut o = Oracles::new(&BTreeSet::from([enabled]));
            for s in &lost {
                o.observe(s);
            }
            assert_eq!(o.rpo(), 1, "{enabled:?}");
            assert_eq!(o.finish().len(), kept, "{enabled:?}");
        }
    }

    #[test]
    fn repeats_are_reported_once_and_total_is_capped() {
        // Goal: the same problem is kept once, and no more than VIOLATIONS_MAX are kept.
        let mut o = Oracles::new(&BTreeSet::from([Oracle::Integrity]));
        o.observe(&start(1));
        o.observe(&served_bad("x"));
        o.observe(&served_bad("x"));
        assert_eq!(o.violations().len(), 1);
        for i in 0..(VIOLATIONS_MAX + 20) {
            o.observe(&served_bad(&format!("c{i}")));
        }
        assert_eq!(o.violations().len(), VIOLATIONS_MAX);
        assert_eq!(o.dropped(), 21);
        assert_eq!(o.finish().len(), VIOLATIONS_MAX);
    }
}
