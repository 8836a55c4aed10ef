//! Invariant 6, convergence (liveness): once faults heal and power returns, every tower
//! reaches the origin's catalog within the scenario's bound.
//!
//! Verifies: after [`Obs::Healed`] at time H with budget `bound`, every tower announced
//! by [`Obs::Start`] (or seen in any observation) reports [`Obs::Converged`] at a time in
//! `H..=H + bound`. A tower that has not is reported (one liveness violation per tower)
//! as soon as an observation past the deadline arrives, or at the end of the run. A
//! `Converged` before the heal does not count: the world re-reports after the heal. If
//! the run heals again, the latest heal sets the deadline.
//!
//! Does not verify: what "converged" means (the world decides: every item of the
//! classes the tower's links may carry, at the origin's latest versions), convergence
//! during the safety phase (freshness is a KPI), or runs that never heal (no deadline,
//! nothing to check).

use super::{Checker, TowerNames, tower_of, violation};
use crate::Violation;
use crate::obs::{Obs, Stamped};
use sovereign_logic::Time;
use sovereign_scenario::Oracle;
use std::collections::BTreeSet;

/// The convergence checker.
#[derive(Clone, Debug, Default)]
pub struct Convergence {
    names: TowerNames,
    /// Towers seen in any observation (a fallback if the start was not seen).
    towers_seen: BTreeSet<usize>,
    /// (heal time, deadline) of the latest heal.
    window: Option<(Time, Time)>,
    /// Towers converged within the current window.
    converged: BTreeSet<usize>,
    /// The current window's stragglers have been reported.
    reported: bool,
}

impl Convergence {
    fn towers(&self) -> BTreeSet<usize> {
        let mut all: BTreeSet<usize> = (0..self.names.len()).collect();
        all.extend(self.towers_seen.iter().copied());
        all
    }

    fn report_stragglers(&mut self, at: Time, out: &mut Vec<Violation>) {
        let Some((healed, deadline)) = self.window else {
            return;
        };
        if self.reported {
            return;
        }
        self.reported = true;
        for t in self.towers() {
            if !self.converged.contains(&t) {
                out.push(violation(
                    Oracle::Convergence,
                    at.min(deadline),
                    format!(
                        "{} did not converge within {:?} of the heal at {healed}",
                        self.names.get(t),
                        deadline.saturating_since(healed)
                    ),
                    true,
                ));
            }
        }
    }
}

impl Checker for Convergence {
    fn oracle(&self) -> Oracle {
        Oracle::Convergence
    }

    fn observe(&mut self, s: &Stamped, out: &mut Vec<Violation>) {
        self.names.learn(&s.obs);
        if let Some(t) = tower_of(&s.obs) {
            self.towers_seen.insert(t);
        }
        if let Some((_, deadline)) = self.window {
            if s.at > deadline {
                self.report_stragglers(deadline, out);
            }
        }
        match &s.obs {
            Obs::Healed { bound } => {
                self.window = Some((s.at, s.at + *bound));
                self.converged.clear();
                self.reported = false;
            }
            Obs::Converged { tower }
                if self.window.is_some_and(|(_, deadline)| s.at <= deadline) =>
            {
                self.converged.insert(*tower);
            }
            _ => {}
        }
    }

    fn finish(&mut self, end: Time, out: &mut Vec<Violation>) {
        self.report_stragglers(end, out);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use std::time::Duration;

    fn healed(s: u64) -> Stamped {
        at(
            s,
            Obs::Healed {
                bound: Duration::from_secs(60),
            },
        )
    }

    fn conv(s: u64, tower: usize) -> Stamped {
        at(s, Obs::Converged { tower })
    }

    #[test]
    fn all_converge_in_time() {
        // Goal: every tower converging within the bound after the heal raises nothing.
        let seq = [
            start(2),
            healed(100),
            conv(120, 0),
            conv(160, 1),
            at(200, Obs::TowerUp { tower: 0 }),
        ];
        let v = run(&mut Convergence::default(), &seq);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn straggler_fails_as_liveness() {
        // Goal: a tower that converged only before the heal, or too late, is a liveness
        // violation, one per tower.
        let seq = [
            start(3),
            conv(50, 1),
            healed(100),
            conv(120, 0),
            conv(170, 2),
        ];
        let v = run(&mut Convergence::default(), &seq);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(
            v.iter()
                .all(|v| v.oracle == Oracle::Convergence && v.liveness)
        );
        assert!(v[0].detail.contains("tower-1"));
        assert!(v[1].detail.contains("tower-2"));
        assert_eq!(v[0].at, Time::from_secs(160));
    }

    #[test]
    fn no_convergence_by_end_fails() {
        // Goal: a run ending before the deadline with a tower unconverged still fails.
        let seq = [start(1), healed(100), at(110, Obs::TowerUp { tower: 0 })];
        let v = run(&mut Convergence::default(), &seq);
        assert_eq!(v.len(), 1);
        assert!(v[0].liveness);
        assert_eq!(v[0].at, Time::from_secs(110));
    }
}
