//! Invariant 2, durability: no operation a tower acknowledged is lost (the RPO is 0) —
//! neither by a crash nor by being "acknowledged, then dropped".
//!
//! An operation is its key *and* its body (fingerprint): two bodies under one key are two
//! operations. Verifies, from [`Obs::Acked`], [`Obs::Applied`], the towers'
//! `OpConfirmed` events, [`Obs::TowerDown`] and [`Obs::End`]:
//! - when a tower stops (crash, power loss or clean stop), every operation acknowledged
//!   at that tower and not yet confirmed by or applied at the origin is in the outbox the
//!   tower's recovery will see (`durable_outbox`);
//! - an acknowledged operation is applied *as acknowledged*: the origin applying another
//!   body under its key, or confirming it as a conflict or a rejection, means it was
//!   acknowledged and then dropped (what a tower that forgets confirmed keys, or does not
//!   check operations at the edge, does);
//! - at the end of the run, every acknowledged operation was applied at the origin or is
//!   still held in some tower's durable outbox;
//! - durability claims are true both ways: an operation a tower answered "not stored"
//!   ([`Obs::NotStored`]) and has not acknowledged since is not in that tower's durable
//!   outbox when it stops (a store that reports an error but keeps the write, which a
//!   restart then applies, makes the answer a lie). An "outcome unknown" answer makes no
//!   such claim.
//!
//! Each lost operation is reported once; [`Durability::lost_count`] is the RPO (the KPI
//! is this count: [`super::Oracles`] always runs this checker).
//!
//! Does not verify: that held operations are eventually forwarded (convergence and the
//! backlog KPI cover that), that an operation is applied only once (exactly-once), whose
//! operation an applied one was (attribution), or operations a device submitted that were
//! never acknowledged (the device retries those; losing them breaks no promise). An
//! operation reported lost at a crash stays reported even if the origin later applies it
//! from a forward that was already in flight — a correct tower forwards only what is
//! durable, so that cannot happen without a bug.

use super::{Checker, TowerNames, violation};
use crate::Violation;
use crate::obs::{Obs, Stamped};
use sovereign_logic::Time;
use sovereign_logic::content::ChunkHash;
use sovereign_logic::io::Event;
use sovereign_logic::protocol::{IdemKey, OpOutcome};
use sovereign_scenario::Oracle;
use std::collections::{BTreeMap, BTreeSet};

/// The durability checker.
#[derive(Clone, Debug, Default)]
pub struct Durability {
    names: TowerNames,
    /// Acknowledged, not yet confirmed/applied: (key, fingerprint) → towers that
    /// acknowledged it.
    pending: BTreeMap<(IdemKey, ChunkHash), BTreeSet<usize>>,
    /// Applied at the origin: key → the fingerprint of the operation applied under it.
    done: BTreeMap<IdemKey, ChunkHash>,
    /// Acknowledged, confirmed applied by the origin's receipt to a tower, but not yet seen
    /// applied at the origin (its `Applied` may come later; in the lab the two are read
    /// from different streams). Lost if the end comes first.
    confirmed: BTreeSet<(IdemKey, ChunkHash)>,
    /// Operations reported lost (the RPO).
    lost: BTreeSet<(IdemKey, ChunkHash)>,
    /// (tower, key) answered "not stored" and not acknowledged by that tower since.
    not_stored: BTreeSet<(usize, IdemKey)>,
}

impl Durability {
    /// Acknowledged operations lost so far (the RPO).
    pub fn lost_count(&self) -> u64 {
        self.lost.len() as u64
    }

    /// The lost keys.
    pub fn lost(&self) -> BTreeSet<IdemKey> {
        self.lost.iter().map(|(k, _)| k.clone()).collect()
    }

    fn pending_under(&self, key: &IdemKey) -> Vec<(IdemKey, ChunkHash)> {
        self.pending
            .keys()
            .filter(|(k, _)| k == key)
            .cloned()
            .collect()
    }

    /// Reports each operation of `gone` lost, once: it moves from `pending` to `lost`.
    fn report_lost(
        &mut self,
        gone: Vec<(IdemKey, ChunkHash)>,
        at: Time,
        out: &mut Vec<Violation>,
        detail: impl Fn(&IdemKey) -> String,
    ) {
        for op in gone {
            self.pending.remove(&op);
            if self.lost.insert(op.clone()) {
                out.push(violation(Oracle::Durability, at, detail(&op.0), false));
            }
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
            Obs::Acked {
                tower,
                key,
                fingerprint,
            } => {
                let op = (key.clone(), *fingerprint);
                if self.lost.contains(&op) {
                    return;
                }
                match self.done.get(key) {
                    Some(f) if f == fingerprint => {}
                    Some(_) => {
                        let name = self.names.get(*tower).to_string();
                        self.report_lost(vec![op], s.at, out, |key| {
                            format!(
                                "acknowledged then dropped: {key} acked at {name} after the origin had applied another body under it"
                            )
                        });
                    }
                    None => {
                        self.pending.entry(op).or_default().insert(*tower);
                    }
                }
            }
            Obs::Applied {
                key, fingerprint, ..
            } => {
                self.done.insert(key.clone(), *fingerprint);
                self.pending.remove(&(key.clone(), *fingerprint));
                self.confirmed.remove(&(key.clone(), *fingerprint));
                let mut others = self.pending_under(key);
                others.extend(self.confirmed.iter().filter(|(k, _)| k == key).cloned());
                for op in &others {
                    self.confirmed.remove(op);
                }
                self.report_lost(others, s.at, out, |key| {
                    format!(
                        "acknowledged then dropped: the origin applied another body under {key}, never the one acknowledged"
                    )
                });
            }
            Obs::Tower {
                tower,
                event: Event::OpConfirmed { key, outcome },
            } => match outcome {
                OpOutcome::Applied { .. } => {
                    // The applied body is settled by `Applied`. A confirmation before any
                    // (the tower dropped it from its outbox) must still be backed by an
                    // apply at the origin by the end: an origin that answers "applied"
                    // before its apply is durable (the planted `reply-before-fsync`)
                    // loses it when its storage fails.
                    let ops = self.pending_under(key);
                    for op in ops {
                        match self.done.get(key) {
                            Some(f) if *f == op.1 => {
                                self.pending.remove(&op);
                            }
                            None => {
                                self.pending.remove(&op);
                                self.confirmed.insert(op);
                            }
                            Some(_) => {}
                        }
                    }
                }
                OpOutcome::Conflict | OpOutcome::Rejected { .. } => {
                    let what = match outcome {
                        OpOutcome::Conflict => "a conflict".to_string(),
                        OpOutcome::Rejected { reason } => format!("rejected ({reason})"),
                        OpOutcome::Applied { .. } => unreachable!("matched above"),
                    };
                    let name = self.names.get(*tower).to_string();
                    let gone = self.pending_under(key);
                    self.report_lost(gone, s.at, out, |key| {
                        format!(
                            "acknowledged then dropped: {key} acked at {name}, then the origin answered {what}"
                        )
                    });
                }
            },
            Obs::NotStored { tower, key } => {
                self.not_stored.insert((*tower, key.clone()));
            }
            Obs::Tower {
                tower,
                event: Event::OpAcked { key },
            } => {
                self.not_stored.remove(&(*tower, key.clone()));
            }
            Obs::TowerDown {
                tower,
                durable_outbox,
                clean,
            } => {
                let lies: Vec<IdemKey> = self
                    .not_stored
                    .iter()
                    .filter(|(t, k)| t == tower && durable_outbox.contains(k))
                    .map(|(_, k)| k.clone())
                    .collect();
                let name = self.names.get(*tower).to_string();
                for key in lies {
                    self.not_stored.remove(&(*tower, key.clone()));
                    out.push(violation(
                        Oracle::Durability,
                        s.at,
                        format!(
                            "{name} answered {key} \"not stored\", yet it is in its durable outbox when it stops: recovery will forward what the device was told was never kept"
                        ),
                        false,
                    ));
                }
                let gone: Vec<(IdemKey, ChunkHash)> = self
                    .pending
                    .iter()
                    .filter(|((k, _), towers)| {
                        towers.contains(tower) && !durable_outbox.contains(k)
                    })
                    .map(|(op, _)| op.clone())
                    .collect();
                let how = if *clean { "clean stop" } else { "crash" };
                let name = self.names.get(*tower).to_string();
                self.report_lost(gone, s.at, out, |key| {
                    format!(
                        "acknowledged operation lost: {key} acked at {name} is not in its durable outbox after a {how}"
                    )
                });
            }
            Obs::End { outboxes, .. } => {
                let gone: Vec<(IdemKey, ChunkHash)> = self
                    .pending
                    .keys()
                    .filter(|(k, _)| !outboxes.values().any(|o| o.contains(k)))
                    .cloned()
                    .collect();
                self.report_lost(gone, s.at, out, |key| {
                    format!(
                        "acknowledged operation lost: {key} was never applied and no tower holds it at the end"
                    )
                });
                // (one a tower holds again is still owed, not lost)
                let unbacked: Vec<(IdemKey, ChunkHash)> = std::mem::take(&mut self.confirmed)
                    .into_iter()
                    .filter(|(k, _)| !outboxes.values().any(|o| o.contains(k)))
                    .collect();
                self.report_lost(unbacked, s.at, out, |key| {
                    format!(
                        "acknowledged then dropped: the origin's receipt said {key} was applied, so the tower let it go, and the origin never applied it"
                    )
                });
            }
            _ => {}
        }
    }

    fn finish(&mut self, _end: Time, _out: &mut Vec<Violation>) {}

    fn lost_acknowledged(&self) -> Option<u64> {
        Some(self.lost_count())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use sovereign_logic::protocol::OpOutcome;

    fn key(s: &str) -> IdemKey {
        IdemKey(s.into())
    }

    fn fp() -> ChunkHash {
        ChunkHash([1; 32])
    }

    fn acked(s: u64, tower: usize, k: &str) -> Stamped {
        at(
            s,
            Obs::Acked {
                tower,
                key: key(k),
                fingerprint: fp(),
            },
        )
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
                    fingerprint: fp(),
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
    fn a_receipt_the_origin_never_backs_with_an_apply_is_lost_at_the_end() {
        // Goal: a tower's confirmation lets it drop the operation, so the confirmation
        // alone proves nothing: "a" is confirmed and never applied (lost, reported once at
        // the end); "b" is confirmed first and its apply seen after (the lab reads the two
        // from different streams): quiet; "c" is confirmed, never applied, but held in an
        // outbox at the end: quiet.
        let confirmed = |s, k: &str| {
            at(
                s,
                Obs::Tower {
                    tower: 0,
                    event: Event::OpConfirmed {
                        key: key(k),
                        outcome: OpOutcome::Applied { seq: 1 },
                    },
                },
            )
        };
        let applied = |s, k: &str| {
            at(
                s,
                Obs::Applied {
                    key: key(k),
                    fingerprint: fp(),
                    amount_minor: None,
                },
            )
        };
        let seq = [
            start(1),
            acked(1, 0, "a"),
            acked(1, 0, "b"),
            acked(1, 0, "c"),
            confirmed(2, "a"),
            confirmed(2, "b"),
            confirmed(2, "c"),
            // Nothing in the outbox at a crash now: all were let go on their receipts.
            at(3, down(0, &[])),
            applied(4, "b"),
            // "c" is held again at the end (acknowledged anew): still owed, not lost.
            at(9, end(&["c"])),
        ];
        let mut d = Durability::default();
        let v = run(&mut d, &seq);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].at, Time::from_secs(9));
        assert!(v[0].detail.contains("receipt said a was applied"), "{v:?}");
        assert_eq!(d.lost(), BTreeSet::from([key("a")]));
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

#[cfg(test)]
mod dropped_tests {
    use super::super::test_util::*;
    use super::*;

    fn key(s: &str) -> IdemKey {
        IdemKey(s.into())
    }

    fn acked(s: u64, k: &str, f: u8) -> Stamped {
        at(
            s,
            Obs::Acked {
                tower: 0,
                key: key(k),
                fingerprint: ChunkHash([f; 32]),
            },
        )
    }

    fn confirmed(s: u64, k: &str, outcome: OpOutcome) -> Stamped {
        at(
            s,
            Obs::Tower {
                tower: 0,
                event: Event::OpConfirmed {
                    key: key(k),
                    outcome,
                },
            },
        )
    }

    fn applied(s: u64, k: &str, f: u8) -> Stamped {
        at(
            s,
            Obs::Applied {
                key: key(k),
                fingerprint: ChunkHash([f; 32]),
                amount_minor: None,
            },
        )
    }

    #[test]
    fn acknowledged_then_dropped_is_a_loss() {
        // Goal: the reported bug — acked, then the origin answers conflict (or rejects it,
        // or applied another body under the key) — counts as a lost operation.
        let seq = [
            start(1),
            acked(1, "conflict", 1),
            acked(1, "rejected", 1),
            acked(1, "other-body", 2),
            applied(2, "applied-first", 1),
            acked(3, "applied-first", 2),
            confirmed(4, "conflict", OpOutcome::Conflict),
            confirmed(
                4,
                "rejected",
                OpOutcome::Rejected {
                    reason: "zero".into(),
                },
            ),
            applied(5, "other-body", 1),
            at(
                9,
                Obs::End {
                    outboxes: BTreeMap::new(),
                    ledger_contributed: 0,
                },
            ),
        ];
        let mut d = Durability::default();
        let v = run(&mut d, &seq);
        assert_eq!(v.len(), 4, "{v:#?}");
        assert!(
            v.iter()
                .all(|x| x.detail.starts_with("acknowledged then dropped")),
            "{v:#?}"
        );
        assert_eq!(d.lost_count(), 4);
    }

    #[test]
    fn applied_as_acknowledged_is_quiet() {
        // Goal: the same key and body acked twice (a replay) and applied once: no loss.
        let seq = [
            start(1),
            acked(1, "a", 1),
            acked(2, "a", 1),
            applied(3, "a", 1),
            confirmed(4, "a", OpOutcome::Applied { seq: 1 }),
            acked(5, "a", 1),
            at(
                9,
                Obs::End {
                    outboxes: BTreeMap::new(),
                    ledger_contributed: 0,
                },
            ),
        ];
        let mut d = Durability::default();
        assert!(run(&mut d, &seq).is_empty());
    }
}

#[cfg(test)]
mod not_stored_tests {
    use super::super::test_util::*;
    use super::*;

    fn key(s: &str) -> IdemKey {
        IdemKey(s.into())
    }

    fn down(keys: &[&str]) -> Obs {
        Obs::TowerDown {
            tower: 0,
            clean: false,
            durable_outbox: keys.iter().map(|k| key(k)).collect(),
        }
    }

    #[test]
    fn a_not_stored_answer_must_be_true() {
        // Goal: "not stored" then found in the durable outbox at a crash is a violation;
        // "not stored" then acknowledged (a later retry stored it) is not.
        let seq = [
            start(1),
            at(
                1,
                Obs::NotStored {
                    tower: 0,
                    key: key("lie"),
                },
            ),
            at(
                1,
                Obs::NotStored {
                    tower: 0,
                    key: key("retried"),
                },
            ),
            at(
                1,
                Obs::NotStored {
                    tower: 0,
                    key: key("truly-not"),
                },
            ),
            at(
                2,
                Obs::Tower {
                    tower: 0,
                    event: Event::OpAcked {
                        key: key("retried"),
                    },
                },
            ),
            at(3, down(&["lie", "retried"])),
        ];
        let v = run(&mut Durability::default(), &seq);
        assert_eq!(v.len(), 1, "{v:#?}");
        assert!(
            v[0].detail.contains("lie") && v[0].detail.contains("not stored"),
            "{v:?}"
        );
    }
}
