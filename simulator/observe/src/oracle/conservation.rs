//! Invariant 4, conservation: the ledger's money is conserved to the minor unit.
//!
//! Verifies: after every apply ([`Obs::Ledger`]), the balances held sum to exactly what
//! was contributed minus what was withdrawn, in integer minor units. A ledger that goes
//! out of balance is reported once (with the difference); if it comes back into balance
//! and breaks again, that is a new report.
//!
//! Does not verify: that each contribution is counted once (exactly-once checks the
//! contributed total against the distinct applies), how money is split between
//! communities (only the totals are observed), or rounding inside a single share beyond
//! its effect on the totals.

use super::{Checker, violation};
use crate::Violation;
use crate::obs::{Obs, Stamped};
use sovereign_logic::Time;
use sovereign_scenario::Oracle;

/// The conservation checker.
#[derive(Clone, Debug, Default)]
pub struct Conservation {
    /// The ledger is out of balance since the last report (so the same break is reported
    /// once, not after every apply).
    broken: bool,
}

/// `held − (contributed − withdrawn)` in minor units (saturating at the i128 range).
pub fn imbalance(contributed: u128, withdrawn: u128, held: u128) -> i128 {
    let c = i128::try_from(contributed).unwrap_or(i128::MAX);
    let w = i128::try_from(withdrawn).unwrap_or(i128::MAX);
    let h = i128::try_from(held).unwrap_or(i128::MAX);
    h.saturating_sub(c.saturating_sub(w))
}

impl Checker for Conservation {
    fn oracle(&self) -> Oracle {
        Oracle::Conservation
    }

    fn observe(&mut self, s: &Stamped, out: &mut Vec<Violation>) {
        let Obs::Ledger {
            contributed,
            withdrawn,
            held,
        } = &s.obs
        else {
            return;
        };
        let diff = imbalance(*contributed, *withdrawn, *held);
        if diff == 0 {
            self.broken = false;
            return;
        }
        if !self.broken {
            self.broken = true;
            out.push(violation(
                Oracle::Conservation,
                s.at,
                format!(
                    "ledger out of balance by {diff:+} minor units: held {held}, contributed {contributed}, withdrawn {withdrawn}"
                ),
                false,
            ));
        }
    }

    fn finish(&mut self, _end: Time, _out: &mut Vec<Violation>) {}
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn ledger(s: u64, contributed: u128, withdrawn: u128, held: u128) -> Stamped {
        at(
            s,
            Obs::Ledger {
                contributed,
                withdrawn,
                held,
            },
        )
    }

    #[test]
    fn balanced_ledger_passes() {
        // Goal: held == contributed − withdrawn after every apply raises nothing.
        let seq = [
            ledger(1, 100, 0, 100),
            ledger(2, 350, 0, 350),
            ledger(3, 350, 50, 300),
        ];
        assert!(run(&mut Conservation::default(), &seq).is_empty());
    }

    #[test]
    fn rounding_drift_fails_once_with_the_difference() {
        // Goal: a one-cent drift is a violation reporting the difference, once per break.
        let seq = [
            ledger(1, 100, 0, 100),
            ledger(2, 200, 0, 201),
            ledger(3, 300, 0, 302),
            ledger(4, 400, 0, 400),
            ledger(5, 500, 0, 499),
        ];
        let v = run(&mut Conservation::default(), &seq);
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v[0].oracle, Oracle::Conservation);
        assert!(!v[0].liveness);
        assert!(v[0].detail.contains("+1 minor units"), "{}", v[0].detail);
        assert!(v[1].detail.contains("-1 minor units"), "{}", v[1].detail);
        assert_eq!(imbalance(10, 3, 7), 0);
    }
}
