//! Invariant 7, offline service: while a tower has power, devices can read what it
//! holds, whatever its uplinks do.
//!
//! Verifies: a device read that reached a powered tower ([`Obs::Read`] with
//! `tower_powered`) is never refused for an item the tower holds. What a tower holds is
//! learnt from its own events: `ContentServable` adds an item (at that version);
//! `ChunkQuarantined` removes every held item whose held version's manifest (learnt from
//! [`Obs::Published`]) contains the chunk — or whose manifest is unknown, to stay on the
//! safe side; `ContentWithdrawn` (a re-home found other bytes under the item, or the new
//! origin lacks it) removes the item; [`Obs::TowerDown`] clears the tower (it re-announces what it holds after
//! recovery). Each (tower, item) is reported once.
//!
//! Does not verify: reads that never reached a powered tower ([`ReadResult::Unreachable`]
//! — the device could not reach it because of Wi-Fi faults, or the tower was down; that
//! costs availability, a KPI, not this invariant), refusals of items the tower does not
//! hold (expected while it syncs), or whether the bytes served were right (integrity).
//!
//! [`ReadResult::Unreachable`]: crate::obs::ReadResult::Unreachable

use super::{Checker, TowerNames, violation};
use crate::Violation;
use crate::obs::{Obs, ReadResult, Stamped};
use sovereign_logic::Time;
use sovereign_logic::content::{ChunkHash, ItemId};
use sovereign_logic::io::Event;
use sovereign_scenario::Oracle;
use std::collections::{BTreeMap, BTreeSet};

/// The offline-service checker.
#[derive(Clone, Debug, Default)]
pub struct OfflineService {
    names: TowerNames,
    /// Published manifests: (item, version) → its chunks.
    manifests: BTreeMap<(ItemId, u64), BTreeSet<ChunkHash>>,
    /// Per tower: item → the version it holds servable.
    held: BTreeMap<usize, BTreeMap<ItemId, u64>>,
    /// (tower, item) already reported.
    reported: BTreeSet<(usize, ItemId)>,
}

impl OfflineService {
    /// Whether `tower` holds `item` (as far as its events tell).
    pub fn holds(&self, tower: usize, item: &ItemId) -> bool {
        self.held.get(&tower).is_some_and(|h| h.contains_key(item))
    }
}

impl Checker for OfflineService {
    fn oracle(&self) -> Oracle {
        Oracle::OfflineService
    }

    fn observe(&mut self, s: &Stamped, out: &mut Vec<Violation>) {
        self.names.learn(&s.obs);
        match &s.obs {
            Obs::Published { manifest } => {
                self.manifests.insert(
                    (manifest.item.clone(), manifest.version),
                    manifest.chunk_set(),
                );
            }
            Obs::Tower {
                tower,
                event: Event::ContentServable { item, version, .. },
            } => {
                self.held
                    .entry(*tower)
                    .or_default()
                    .insert(item.clone(), *version);
            }
            Obs::Tower {
                tower,
                event: Event::ChunkQuarantined { hash },
            } => {
                let manifests = &self.manifests;
                if let Some(h) = self.held.get_mut(tower) {
                    h.retain(|item, version| {
                        manifests
                            .get(&(item.clone(), *version))
                            .is_some_and(|chunks| !chunks.contains(hash))
                    });
                }
            }
            Obs::Tower {
                tower,
                event: Event::ContentWithdrawn { item },
            } => {
                if let Some(h) = self.held.get_mut(tower) {
                    h.remove(item);
                }
            }
            Obs::TowerDown { tower, .. } => {
                self.held.remove(tower);
            }
            Obs::Read {
                tower,
                item,
                result: ReadResult::Refused(why),
                tower_powered: true,
                ..
            } if self.holds(*tower, item) && !self.reported.contains(&(*tower, item.clone())) => {
                self.reported.insert((*tower, item.clone()));
                out.push(violation(
                    Oracle::OfflineService,
                    s.at,
                    format!(
                        "{} refused a read of {item} it holds ({}) while powered",
                        self.names.get(*tower),
                        why.reason()
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
    use sovereign_logic::content::Priority;
    use sovereign_logic::tower::Refusal;

    fn servable(s: u64, item: &str) -> Stamped {
        at(
            s,
            Obs::Tower {
                tower: 0,
                event: Event::ContentServable {
                    item: ItemId::new(item),
                    version: 1,
                    priority: Priority::P1,
                },
            },
        )
    }

    fn read(s: u64, item: &str, result: ReadResult, powered: bool) -> Stamped {
        at(
            s,
            Obs::Read {
                tower: 0,
                item: ItemId::new(item),
                valid: true,
                result,
                tower_powered: powered,
            },
        )
    }

    fn publish(item: &str, chunks: &[&str]) -> Stamped {
        at(
            0,
            Obs::Published {
                manifest: manifest(item, 1, Priority::P1, chunks),
            },
        )
    }

    #[test]
    fn refusals_of_what_is_not_held_pass() {
        // Goal: refusing items not held (never, quarantined, lost at a crash), while
        // unpowered, or being unreachable, raises nothing.
        let seq = [
            start(1),
            publish("a", &["x"]),
            publish("b", &["y"]),
            publish("c", &["z"]),
            servable(1, "a"),
            servable(1, "b"),
            servable(1, "c"),
            read(2, "d", ReadResult::Refused(Refusal::NotHeld), true),
            at(
                3,
                Obs::Tower {
                    tower: 0,
                    event: Event::ChunkQuarantined {
                        hash: ChunkHash::of(b"x"),
                    },
                },
            ),
            read(4, "a", ReadResult::Refused(Refusal::NotHeld), true),
            read(4, "b", ReadResult::Served, true),
            read(5, "b", ReadResult::Refused(Refusal::PoweredDown), false),
            read(5, "b", ReadResult::Unreachable, true),
            at(
                6,
                Obs::TowerDown {
                    tower: 0,
                    clean: false,
                    durable_outbox: BTreeSet::new(),
                },
            ),
            at(7, Obs::TowerUp { tower: 0 }),
            read(8, "c", ReadResult::Refused(Refusal::NotHeld), true),
        ];
        let v = run(&mut OfflineService::default(), &seq);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn an_item_withdrawn_at_a_re_home_is_not_held_and_the_rest_still_are() {
        // Goal: after `ContentWithdrawn` (a re-home found other bytes under the item) the
        // tower's refusal of that item is expected; refusing another held item still fails.
        let withdrawn = at(
            3,
            Obs::Tower {
                tower: 0,
                event: Event::ContentWithdrawn {
                    item: ItemId::new("a"),
                },
            },
        );
        let seq = [
            start(1),
            publish("a", &["x"]),
            publish("b", &["y"]),
            servable(1, "a"),
            servable(1, "b"),
            withdrawn,
            read(4, "a", ReadResult::Refused(Refusal::NotHeld), true),
            read(4, "b", ReadResult::Refused(Refusal::NotHeld), true),
        ];
        let v = run(&mut OfflineService::default(), &seq);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("of b"), "{v:?}");
    }

    #[test]
    fn refusing_held_item_while_powered_fails() {
        // Goal: an offline refusal of a held item by a powered tower is a violation.
        let seq = [
            start(1),
            publish("a", &["x"]),
            servable(1, "a"),
            read(2, "a", ReadResult::Refused(Refusal::Offline), true),
            read(3, "a", ReadResult::Refused(Refusal::Offline), true),
        ];
        let v = run(&mut OfflineService::default(), &seq);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].oracle, Oracle::OfflineService);
        assert!(!v[0].liveness);
        assert!(v[0].detail.contains("offline"));
    }
}
