//! Invariant 8, power safety: a tower shuts down cleanly before its battery is empty,
//! unless the fault was a hard cut.
//!
//! Verifies: when a tower's battery hits empty ([`Obs::BatteryEmpty`]), the tower was
//! already off (it shed load and shut down cleanly in time) or a hard-cut fault was on
//! it. One report per tower per boot (a tower that keeps running flat is one problem).
//!
//! Does not verify: that the clean shutdown flushed everything (durability checks what
//! survived), how early the tower shed load (energy and lowest SoC are KPIs), or that
//! the tower comes back when power returns (convergence).

use super::{Checker, TowerNames, violation};
use crate::Violation;
use crate::obs::{Obs, Stamped};
use sovereign_logic::Time;
use sovereign_scenario::Oracle;
use std::collections::BTreeSet;

/// The power-safety checker.
#[derive(Clone, Debug, Default)]
pub struct PowerSafety {
    names: TowerNames,
    /// Towers reported since their last start.
    reported: BTreeSet<usize>,
}

impl Checker for PowerSafety {
    fn oracle(&self) -> Oracle {
        Oracle::PowerSafety
    }

    fn observe(&mut self, s: &Stamped, out: &mut Vec<Violation>) {
        self.names.learn(&s.obs);
        match &s.obs {
            Obs::TowerUp { tower } => {
                self.reported.remove(tower);
            }
            Obs::BatteryEmpty {
                tower,
                running: true,
                hard_cut: false,
            } if !self.reported.contains(tower) => {
                self.reported.insert(*tower);
                out.push(violation(
                    Oracle::PowerSafety,
                    s.at,
                    format!(
                        "{} was still running when its battery hit empty (no clean shutdown)",
                        self.names.get(*tower)
                    ),
                    false,
                ));
            }
            _ => {}
        }
    }

    fn finish(&mut self, _end: Time, _out: &mut Vec<Violation>) {}
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn empty(s: u64, running: bool, hard_cut: bool) -> Stamped {
        at(
            s,
            Obs::BatteryEmpty {
                tower: 0,
                running,
                hard_cut,
            },
        )
    }

    #[test]
    fn clean_shutdown_or_hard_cut_passes() {
        // Goal: empty after a clean stop, or while hard cut, raises nothing.
        let seq = [start(1), empty(10, false, false), empty(20, true, true)];
        assert!(run(&mut PowerSafety::default(), &seq).is_empty());
    }

    #[test]
    fn running_flat_fails_once_per_boot() {
        // Goal: running into an empty battery is a violation, reported once per boot.
        let seq = [
            start(1),
            empty(10, true, false),
            empty(11, true, false),
            at(50, Obs::TowerUp { tower: 0 }),
            empty(90, true, false),
        ];
        let v = run(&mut PowerSafety::default(), &seq);
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v[0].oracle, Oracle::PowerSafety);
        assert!(!v[0].liveness);
        assert!(v[0].detail.contains("tower-0"));
    }
}
