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
//! and, from the towers' `OriginAdopted`/`OriginMismatch` events and [`Obs::OriginReplaced`]:
//! - a tower reports another origin (`OriginMismatch`) only when the origin at its address
//!   was replaced since it adopted the one it trusts. A mismatch while the trusted origin
//!   still answers stops a healthy tower's syncing and tells an operator to re-home it:
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
use sovereign_logic::protocol::IdemKey;
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
    /// How many times the origin was replaced so far.
    replaced: u64,
    /// Tower → the replacement count when it adopted the origin it trusts.
    adopted: BTreeMap<usize, u64>,
    /// (tower, adoption) pairs whose false mismatch was reported (each once).
    false_mismatch: BTreeSet<(usize, u64)>,
}

impl Checker for Attribution {
    fn oracle(&self) -> Oracle {
        Oracle::Attribution
    }

    fn observe(&mut self, s: &Stamped, out: &mut Vec<Violation>) {
        self.names.learn(&s.obs);
        match &s.obs {
            Obs::OriginReplaced => self.replaced += 1,
            Obs::Tower {
                tower,
                event: Event::OriginAdopted { .. },
            } => {
                self.adopted.insert(*tower, self.replaced);
            }
            Obs::Tower {
                tower,
                event: Event::OriginMismatch { expected, found },
            } => {
                let since = self.adopted.get(tower).copied().unwrap_or(0);
                if since == self.replaced && self.false_mismatch.insert((*tower, since)) {
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
    use sovereign_logic::protocol::OriginId;

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

    fn adopted(s: u64, n: u8) -> Stamped {
        tower(
            s,
            Event::OriginAdopted {
                origin: id(n),
                rehomed: n > 1,
                dropped: 0,
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
        // Goal: the usual origin-replace story — adopted, replaced, mismatch, re-homed
        // onto the new origin — is quiet.
        let v = run(
            &mut Attribution::default(),
            &[
                start(1),
                adopted(1, 1),
                at(2, Obs::OriginReplaced),
                mismatch(3, 1, Some(2)),
                adopted(4, 2),
            ],
        );
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn a_mismatch_while_the_trusted_origin_answers_is_caught_once_per_adoption() {
        // Goal: a tower reporting another origin (or one without identity) while nothing
        // replaced its trusted one is a violation, once per adoption; after a replace and
        // a re-home, a false mismatch about the new origin is caught again.
        let v = run(
            &mut Attribution::default(),
            &[
                start(1),
                adopted(1, 1),
                mismatch(2, 1, None),
                mismatch(3, 1, Some(7)),
                at(4, Obs::OriginReplaced),
                mismatch(5, 1, Some(2)),
                adopted(6, 2),
                mismatch(7, 2, None),
            ],
        );
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].detail.contains("tower-0") && v[0].detail.contains("no identity"));
        assert_eq!(v[1].at, Time::from_secs(7), "{v:?}");
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
