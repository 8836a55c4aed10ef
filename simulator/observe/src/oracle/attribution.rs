//! Invariant 9, attribution (DESIGN.md §11, trust boundaries): every operation the origin
//! applies is one its key's owner submitted, no two devices ever issue the same key, and a
//! tower attributes every answer to the origin that gave it.
//!
//! Verifies, from [`Obs::Submitted`] and [`Obs::Applied`]:
//! - an applied operation (key, fingerprint) was submitted by some device under its own
//!   key (not a key it reused, not a stranger's guess at another device's key, not an
//!   operation no device sent — a forward from a tower the origin should not trust);
//! - no key is issued, as a device's own, by two devices (hosts) with different bodies:
//!   keys are unique per device and per operation, so one device's operation can never be
//!   refused, or dropped, because of another's.
//!
//! and, from the towers' `OriginMismatch` events and [`Obs::OriginReplaced`]:
//! - a tower reports another origin (`OriginMismatch`) only when one answers: a mismatch
//!   is false when the origin the tower trusts is the one at its address (the first one
//!   while none was replaced, else the latest replacement) and what it found is no
//!   origin that was ever there (a former origin's late answer is a true mismatch). A
//!   false mismatch stops a healthy tower's syncing and tells an operator to re-home it:
//!   the real origin's refusals at its connection limit once lacked its identity, and the
//!   towers took them for another origin (`origin-busy`, plant `anonymous-refusals`).
//!
//! Does not verify: that every acknowledged operation is applied (durability), that it is
//! applied once (exactly-once), or what a device that reuses its own key gets (its own
//! doing; the tower answers 422, see durability for what must not happen then), or that a
//! tower notices a replaced origin (convergence, and the detection KPIs).

use super::{Checker, TowerNames, violation};
use crate::Violation;
use crate::obs::{Obs, Stamped};
use sovereign_logic::Time;
use sovereign_logic::content::ChunkHash;
use sovereign_logic::io::Event;
use sovereign_logic::protocol::{IdemKey, OriginId};
use sovereign_scenario::Oracle;
use std::collections::{BTreeMap, BTreeSet};

/// The attribution checker.
#[derive(Clone, Debug, Default)]
pub struct Attribution {
    /// Key → the device that first issued it as its own, and that operation's fingerprint.
    issued: BTreeMap<IdemKey, (usize, ChunkHash)>,
    /// (key, fingerprint) pairs submitted by a device under its own key.
    own: BTreeSet<(IdemKey, ChunkHash)>,
    /// Keys already reported (each problem once).
    reported: BTreeSet<IdemKey>,
    names: TowerNames,
    /// The origin answering at the address now, once one was replaced (before that: the
    /// first one, whose identity no observation names).
    current: Option<OriginId>,
    /// The origins replaced so far.
    former: BTreeSet<OriginId>,
    /// (tower, trusted origin) pairs whose false mismatch was reported (each once).
    false_mismatch: BTreeSet<(usize, OriginId)>,
}

impl Checker for Attribution {
    fn oracle(&self) -> Oracle {
        Oracle::Attribution
    }

    fn observe(&mut self, s: &Stamped, out: &mut Vec<Violation>) {
        self.names.learn(&s.obs);
        match &s.obs {
            Obs::OriginReplaced { old, new } => {
                self.former.insert(*old);
                self.current = Some(*new);
            }
            Obs::Tower {
                tower,
                event: Event::OriginMismatch { expected, found },
            } => {
                let trusted_answers = self.current.is_none_or(|c| c == *expected);
                let from_a_former = found.is_some_and(|f| self.former.contains(&f));
                if trusted_answers
                    && !from_a_former
                    && self.false_mismatch.insert((*tower, *expected))
                {
                    let found = found.map_or_else(|| "no identity".to_string(), |f| f.to_string());
                    out.push(violation(
                        Oracle::Attribution,
                        s.at,
                        format!(
                            "{} took an answer from its trusted origin {expected} for another origin's (found {found}), though no other origin answers at its address: it stops syncing",
                            self.names.get(*tower)
                        ),
                        false,
                    ));
                }
            }
            Obs::Submitted {
                device,
                key,
                fingerprint,
                own_key: true,
            } => {
                self.own.insert((key.clone(), *fingerprint));
                match self.issued.get(key) {
                    None => {
                        self.issued.insert(key.clone(), (*device, *fingerprint));
                    }
                    Some((first, _)) if first != device && self.reported.insert(key.clone()) => {
                        out.push(violation(
                            Oracle::Attribution,
                            s.at,
                            format!(
                                "key collision: device #{first} and device #{device} both issued {key} for their own operations"
                            ),
                            false,
                        ));
                    }
                    Some(_) => {}
                }
            }
            Obs::Applied {
                key, fingerprint, ..
            } if !self.own.contains(&(key.clone(), *fingerprint))
                && self.reported.insert(key.clone()) =>
            {
                out.push(violation(
                    Oracle::Attribution,
                    s.at,
                    format!(
                        "the origin applied an operation under {key} that its owner never submitted (fingerprint {})",
                        &fingerprint.to_hex()[..12]
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

    fn key(s: &str) -> IdemKey {
        IdemKey(s.into())
    }

    fn fp(n: u8) -> ChunkHash {
        ChunkHash([n; 32])
    }

    fn submitted(s: u64, device: usize, k: &str, f: u8, own_key: bool) -> Stamped {
        at(
            s,
            Obs::Submitted {
                device,
                key: key(k),
                fingerprint: fp(f),
                own_key,
            },
        )
    }

    fn applied(s: u64, k: &str, f: u8) -> Stamped {
        at(
            s,
            Obs::Applied {
                key: key(k),
                fingerprint: fp(f),
                amount_minor: None,
            },
        )
    }

    #[test]
    fn applied_operations_of_their_owners_pass() {
        // Goal: the usual run: each device's own keys, applied as submitted — quiet.
        let v = run(
            &mut Attribution::default(),
            &[
                submitted(1, 0, "a:1", 1, true),
                submitted(2, 1, "b:1", 2, true),
                applied(3, "a:1", 1),
                applied(4, "b:1", 2),
                // A device reusing its own key is its own doing, not a collision.
                submitted(5, 0, "a:1", 3, false),
            ],
        );
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn an_operation_nobody_submitted_or_a_strangers_guess_is_caught() {
        // Goal: a rogue forward (nobody submitted it) and a stolen key (submitted by a
        // stranger, not under its own key) applied at the origin are violations.
        let v = run(
            &mut Attribution::default(),
            &[
                submitted(1, 0, "a:1", 1, true),
                submitted(2, 9, "a:1", 7, false),
                applied(3, "a:1", 7),
                applied(4, "rogue:1", 8),
            ],
        );
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v.iter().all(|x| x.oracle == Oracle::Attribution));
        assert!(v[0].detail.contains("a:1") && v[1].detail.contains("rogue:1"));
    }

    fn tower(s: u64, event: Event) -> Stamped {
        at(s, Obs::Tower { tower: 0, event })
    }

    fn id(n: u8) -> OriginId {
        OriginId(u128::from(n))
    }

    fn replaced(s: u64, old: u8, new: u8) -> Stamped {
        at(
            s,
            Obs::OriginReplaced {
                old: id(old),
                new: id(new),
            },
        )
    }

    fn mismatch(s: u64, expected: u8, found: Option<u8>) -> Stamped {
        tower(
            s,
            Event::OriginMismatch {
                expected: id(expected),
                found: found.map(id),
            },
        )
    }

    #[test]
    fn a_mismatch_after_the_origin_was_replaced_is_true() {
        // Goal: the origin-replace stories are quiet: a tower trusting the replaced origin
        // sees the new one (before and after a crash that lost its re-home), and a tower
        // re-homed onto the new one gets a late answer from the old one.
        let v = run(
            &mut Attribution::default(),
            &[
                start(1),
                replaced(2, 1, 2),
                mismatch(3, 1, Some(2)),
                mismatch(4, 2, Some(1)),
                replaced(5, 2, 3),
                mismatch(6, 1, Some(3)),
                mismatch(7, 2, Some(3)),
                mismatch(8, 3, Some(1)),
            ],
        );
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn a_mismatch_while_the_trusted_origin_answers_is_caught_once_per_trusted_origin() {
        // Goal: a tower reporting another origin (or one without identity) while its
        // trusted one is the origin at its address is a violation — before any replace,
        // and after one for a tower trusting the new origin — once per trusted origin.
        let v = run(
            &mut Attribution::default(),
            &[
                start(1),
                mismatch(2, 1, None),
                mismatch(3, 1, Some(7)),
                replaced(4, 1, 2),
                mismatch(5, 1, Some(2)),
                mismatch(6, 2, None),
                mismatch(7, 2, Some(9)),
            ],
        );
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].detail.contains("tower-0") && v[0].detail.contains("no identity"));
        assert_eq!(v[1].at, Time::from_secs(6), "{v:?}");
    }

    #[test]
    fn two_devices_issuing_one_key_is_caught_once() {
        // Goal: keys shared between devices (sequential keys on a shared identity) are
        // a violation the moment the second device issues one, reported once per key.
        let v = run(
            &mut Attribution::default(),
            &[
                submitted(1, 0, "x:1", 1, true),
                submitted(2, 1, "x:1", 2, true),
                submitted(3, 1, "x:1", 2, true),
                applied(4, "x:1", 1),
            ],
        );
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("key collision"), "{v:?}");
    }
}
