//! Invariant 2, durability: no operation a tower acknowledged is lost (the RPO is 0).
//!
//! Verifies, from [`Obs::Acked`], [`Obs::Applied`], the towers' `OpConfirmed` events,
//! [`Obs::TowerDown`] and [`Obs::End`]:
//! - when a tower stops (crash, power loss or clean stop), every operation acknowledged
//!   at that tower and not yet confirmed by or applied at the origin is in the outbox the
//!   tower's recovery will see (`durable_outbox`);
//! - at the end of the run, every acknowledged operation was applied at the origin or is
//!   still held in some tower's durable outbox.
//!
//! Each lost key is reported once; [`Durability::lost_count`] is the RPO (the KPI uses
//! the same rule).
//!
//! Does not verify: that held operations are eventually forwarded (convergence and the
//! backlog KPI cover that), that an operation is applied only once (exactly-once), or
//! operations a device submitted that were never acknowledged (the device retries those;
//! losing them breaks no promise). An operation reported lost at a crash stays reported
//! even if the origin later applies it from a forward that was already in flight — a
//! correct tower forwards only what is durable, so that cannot happen without a bug.

use super::{Checker, TowerNames, violation};
use crate::obs::{Obs, Stamped};
use crate::report::Violation;
use crate::scenario::Oracle;
use sovereign_logic::Time;
use sovereign_logic::io::Event;
use sovereign_logic::protocol::IdemKey;
use std::collections::{BTreeMap, BTreeSet};

/// The durability checker.
#[derive(Clone, Debug, Default)]
pub struct Durability {
    names: TowerNames,
    /// Acknowledged, not yet confirmed/applied: key → towers that acknowledged it.
    pending: BTreeMap<IdemKey, BTreeSet<usize>>,
    /// Confirmed or applied: the origin has it, no tower needs to hold it any more.
    done: BTreeSet<IdemKey>,
    /// Keys reported lost (the RPO).
    lost: BTreeSet<IdemKey>,
}

impl Durability {
    /// Acknowledged operations lost so far (the RPO).
    pub fn lost_count(&self) -> u64 {
        self.lost.len() as u64
    }

    /// The lost keys.
    pub fn lost(&self) -> &BTreeSet<IdemKey> {
        &self.lost
    }

    fn settle(&mut self, key: &IdemKey) {
        self.pending.remove(key);
        self.done.insert(key.clone());
    }

    /// Reports each key of `gone` lost, once: it moves from `pending` to `lost`.
    fn report_lost(
        &mut self,
        gone: Vec<IdemKey>,
        at: Time,
        out: &mut Vec<Violation>,
        detail: impl Fn(&IdemKey) -> String,
    ) {
        for key in gone {
            self.pending.remove(&key);
            out.push(violation(Oracle::Durability, at, detail(&key), false));
            self.lost.insert(key);
        }
    }
}

impl Checker for Durability {
    fn oracle(&self) -> Oracle {
        Oracle::Durability
    }

    fn observe(&mut self, s: &Stamped, out: &mut Vec<Violation>) {
        self.names.learn(&s.obs);
        match &s.obs {
            Obs::Acked { tower, key } if !self.done.contains(key) && !self.lost.contains(key) => {
                self.pending.entry(key.clone()).or_default().insert(*tower);
            }
            Obs::Applied { key, .. } => self.settle(key),
            Obs::Tower {
                event: Event::OpConfirmed { key, .. },
                ..
            } => self.settle(key),
            Obs::TowerDown {
                tower,
                durable_outbox,
                clean,
            } => {
                let gone: Vec<IdemKey> = self
                    .pending
                    .iter()
                    .filter(|(k, towers)| towers.contains(tower) && !durable_outbox.contains(*k))
                    .map(|(k, _)| k.clone())
                    .collect();
                let how = if *clean { "clean stop" } else { "crash" };
                let name = self.names.get(*tower);
                self.report_lost(gone, s.at, out, |key| {
                    format!(
                        "acknowledged operation lost: {key} acked at {name} is not in its durable outbox after a {how}"
                    )
                });
            }
            Obs::End { outboxes, .. } => {
                let gone: Vec<IdemKey> = self
                    .pending
                    .keys()
                    .filter(|k| !outboxes.values().any(|o| o.contains(*k)))
                    .cloned()
                    .collect();
                self.report_lost(gone, s.at, out, |key| {
                    format!(
                        "acknowledged operation lost: {key} was never applied and no tower holds it at the end"
                    )
                });
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
    use sovereign_logic::protocol::OpOutcome;

    fn key(s: &str) -> IdemKey {
        IdemKey(s.into())
    }

    fn acked(s: u64, tower: usize, k: &str) -> Stamped {
        at(s, Obs::Acked { tower, key: key(k) })
    }

    fn down(tower: usize, keys: &[&str]) -> Obs {
        Obs::TowerDown {
            tower,
            clean: false,
            durable_outbox: keys.iter().map(|k| key(k)).collect(),
        }
    }

    fn end(keys: &[&str]) -> Obs {
        Obs::End {
            outboxes: BTreeMap::from([(0, keys.iter().map(|k| key(k)).collect())]),
            ledger_contributed: 0,
        }
    }

    #[test]
    fn clean_run_loses_nothing() {
        // Goal: acked ops that are durable at a crash, confirmed or applied raise nothing.
        let seq = [
            start(2),
            acked(1, 0, "a"),
            acked(1, 0, "b"),
            acked(1, 1, "c"),
            at(
                2,
                Obs::Applied {
                    key: key("a"),
                    amount_minor: None,
                },
            ),
            at(
                3,
                Obs::Tower {
                    tower: 0,
                    event: Event::OpConfirmed {
                        key: key("a"),
                        outcome: OpOutcome::Applied { seq: 1 },
                    },
                },
            ),
            // b is durable; c belongs to another tower.
            at(4, down(0, &["b"])),
            at(9, end(&["b", "c"])),
        ];
        let mut d = Durability::default();
        let v = run(&mut d, &seq);
        assert!(v.is_empty(), "{v:?}");
        assert_eq!(d.lost_count(), 0);
    }

    #[test]
    fn ack_lost_at_crash_fails() {
        // Goal: an acked op missing from the durable outbox at a crash is a violation.
        let seq = [
            start(1),
            acked(1, 0, "a"),
            at(2, down(0, &[])),
            at(9, end(&[])),
        ];
        let mut d = Durability::default();
        let v = run(&mut d, &seq);
        assert_eq!(v.len(), 1, "reported once, not again at the end: {v:?}");
        assert_eq!(v[0].oracle, Oracle::Durability);
        assert!(!v[0].liveness);
        assert_eq!(v[0].at, Time::from_secs(2));
        assert!(v[0].detail.contains("acknowledged operation lost"));
        assert_eq!(d.lost_count(), 1);
    }

    #[test]
    fn ack_never_applied_nor_held_at_end_fails() {
        // Goal: at the end, an acked op neither applied nor held anywhere is lost.
        let seq = [
            start(1),
            acked(1, 0, "a"),
            acked(1, 0, "b"),
            at(9, end(&["b"])),
        ];
        let mut d = Durability::default();
        let v = run(&mut d, &seq);
        assert_eq!(v.len(), 1);
        assert!(v[0].detail.contains(" a "));
        assert_eq!(d.lost_count(), 1);
    }
}
