//! Invariant 3, exactly once: the origin applies each operation once.
//!
//! Verifies:
//! - no idempotency key is applied twice ([`Obs::Applied`] counted per key);
//! - at [`Obs::End`], the origin ledger's contributed total equals the sum of the
//!   amounts of the *distinct* applied contributions — so an effect applied twice is
//!   caught even if the world missed reporting one of the applies.
//!
//! Does not verify: that every acknowledged operation is applied at least once
//! (durability), that the ledger's own books balance (conservation), or the outcomes of
//! conflicting or rejected submissions (they have no effect to duplicate).

use super::{Checker, violation};
use crate::Violation;
use crate::obs::{Obs, Stamped};
use sovereign_logic::Time;
use sovereign_logic::protocol::IdemKey;
use sovereign_scenario::Oracle;
use std::collections::BTreeMap;

/// The exactly-once checker.
#[derive(Clone, Debug, Default)]
pub struct ExactlyOnce {
    /// key → (times applied, amount of the first apply).
    applied: BTreeMap<IdemKey, (u64, Option<u64>)>,
}

impl ExactlyOnce {
    /// The sum of contributions over distinct applied keys, minor units.
    pub fn distinct_contributed(&self) -> u128 {
        self.applied
            .values()
            .filter_map(|(_, a)| *a)
            .map(u128::from)
            .sum()
    }
}

impl Checker for ExactlyOnce {
    fn oracle(&self) -> Oracle {
        Oracle::ExactlyOnce
    }

    fn observe(&mut self, s: &Stamped, out: &mut Vec<Violation>) {
        match &s.obs {
            // A fresh origin applies from scratch: "once" is per origin.
            Obs::OriginReplaced { .. } => self.applied.clear(),
            Obs::Applied {
                key, amount_minor, ..
            } => {
                let e = self
                    .applied
                    .entry(key.clone())
                    .or_insert((0, *amount_minor));
                e.0 += 1;
                if e.0 == 2 {
                    out.push(violation(
                        Oracle::ExactlyOnce,
                        s.at,
                        format!("operation {key} applied more than once"),
                        false,
                    ));
                }
            }
            Obs::End {
                ledger_contributed, ..
            } => {
                let distinct = self.distinct_contributed();
                if *ledger_contributed != distinct {
                    let diff = i128::try_from(*ledger_contributed)
                        .unwrap_or(i128::MAX)
                        .saturating_sub(i128::try_from(distinct).unwrap_or(i128::MAX));
                    out.push(violation(
                        Oracle::ExactlyOnce,
                        s.at,
                        format!(
                            "ledger contributed {ledger_contributed} minor units but distinct applied contributions sum to {distinct} ({diff:+})"
                        ),
                        false,
                    ));
                }
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

    fn applied(s: u64, k: &str, amount: Option<u64>) -> Stamped {
        at(
            s,
            Obs::Applied {
                key: IdemKey(k.into()),
                fingerprint: sovereign_logic::content::ChunkHash([1; 32]),
                amount_minor: amount,
            },
        )
    }

    fn end(contributed: u128) -> Stamped {
        at(
            9,
            Obs::End {
                outboxes: BTreeMap::new(),
                ledger_contributed: contributed,
            },
        )
    }

    #[test]
    fn each_once_and_ledger_matches() {
        // Goal: distinct applies whose amounts sum to the ledger total raise nothing.
        let seq = [
            applied(1, "a", Some(250)),
            applied(2, "b", None),
            applied(3, "c", Some(100)),
            end(350),
        ];
        let v = run(&mut ExactlyOnce::default(), &seq);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn double_apply_fails() {
        // Goal: a key applied twice is reported once, at the second apply.
        let seq = [
            applied(1, "a", Some(250)),
            applied(2, "a", Some(250)),
            applied(3, "a", Some(250)),
            end(250),
        ];
        let v = run(&mut ExactlyOnce::default(), &seq);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].oracle, Oracle::ExactlyOnce);
        assert!(!v[0].liveness);
        assert_eq!(v[0].at, Time::from_secs(2));
    }

    #[test]
    fn unreported_second_effect_is_caught_by_the_ledger() {
        // Goal: the ledger counting a contribution twice fails even with one apply seen.
        let seq = [applied(1, "a", Some(250)), end(500)];
        let v = run(&mut ExactlyOnce::default(), &seq);
        assert_eq!(v.len(), 1);
        assert!(v[0].detail.contains("+250"), "{}", v[0].detail);
    }
}
