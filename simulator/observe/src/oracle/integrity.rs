//! Invariant 1, integrity: no tower serves bytes whose hash mismatches their manifest,
//! and no device keeps bytes that fail their hash.
//!
//! Verifies: every [`Obs::Served`] — each chunk's bytes matched its hash at the moment
//! they were served, and the manifest served is the one the origin published for that
//! (item, version). Each bad (tower, item, version, chunk) is reported once. Every
//! [`Obs::Delivered`] — a device that accepted bytes that arrived garbled (reported once
//! per device, item and version).
//!
//! Does not verify: that a device got the *latest* version (freshness is a KPI), bytes
//! that stayed at rest without being served (quarantine is the tower's job, not a
//! violation), or deliveries over a Wi-Fi that does not garble (the world runs the
//! device's check only while a `wifi-corruption` fault is on: elsewhere the bytes that
//! leave the tower are the bytes that arrive, and the served check covers them).

use super::{Checker, TowerNames, violation};
use crate::Violation;
use crate::obs::{Obs, Stamped};
use sovereign_logic::Time;
use sovereign_logic::content::{ChunkHash, ItemId};
use sovereign_scenario::Oracle;
use std::collections::BTreeSet;

/// The integrity checker.
#[derive(Clone, Debug, Default)]
pub struct Integrity {
    names: TowerNames,
    /// (tower, item, version, chunk; `None` for the manifest) already reported.
    reported: BTreeSet<(usize, ItemId, u64, Option<ChunkHash>)>,
    /// (device, item, version) whose garbled bytes were reported kept.
    kept: BTreeSet<(usize, ItemId, u64)>,
}

impl Checker for Integrity {
    fn oracle(&self) -> Oracle {
        Oracle::Integrity
    }

    fn observe(&mut self, s: &Stamped, out: &mut Vec<Violation>) {
        self.names.learn(&s.obs);
        if let Obs::Delivered {
            tower,
            device,
            item,
            version,
            intact: false,
            accepted: true,
        } = &s.obs
        {
            if self.kept.insert((*device, item.clone(), *version)) {
                out.push(violation(
                    Oracle::Integrity,
                    s.at,
                    format!(
                        "device {device} of {} kept {item} v{version} although its bytes failed their hash",
                        self.names.get(*tower)
                    ),
                    false,
                ));
            }
            return;
        }
        let Obs::Served {
            tower,
            item,
            version,
            chunks,
            manifest_ok,
        } = &s.obs
        else {
            return;
        };
        let name = self.names.get(*tower);
        if !manifest_ok && self.reported.insert((*tower, item.clone(), *version, None)) {
            out.push(violation(
                Oracle::Integrity,
                s.at,
                format!("{name} served {item} v{version} with a manifest that is not the origin's"),
                false,
            ));
        }
        for (hash, ok) in chunks {
            if !ok
                && self
                    .reported
                    .insert((*tower, item.clone(), *version, Some(*hash)))
            {
                out.push(violation(
                    Oracle::Integrity,
                    s.at,
                    format!(
                        "{name} served {item} v{version}: chunk {hash:?} does not match its hash"
                    ),
                    false,
                ));
            }
        }
    }

    fn finish(&mut self, _end: Time, _out: &mut Vec<Violation>) {}
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn served(chunk_ok: bool, manifest_ok: bool) -> Stamped {
        at(
            3,
            Obs::Served {
                tower: 0,
                item: ItemId::new("alert"),
                version: 2,
                chunks: vec![(ChunkHash::of(b"a"), true), (ChunkHash::of(b"b"), chunk_ok)],
                manifest_ok,
            },
        )
    }

    #[test]
    fn clean_serves_pass() {
        // Goal: verified bytes with the origin's manifest raise nothing.
        let v = run(&mut Integrity::default(), &[start(1), served(true, true)]);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn corrupt_chunk_fails() {
        // Goal: one mismatching chunk is a safety violation naming tower, item, version.
        let v = run(&mut Integrity::default(), &[start(1), served(false, true)]);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].oracle, Oracle::Integrity);
        assert!(!v[0].liveness);
        assert!(v[0].detail.contains("tower-0") && v[0].detail.contains("alert v2"));
        assert!(v[0].detail.contains(&format!("{:?}", ChunkHash::of(b"b"))));
    }

    fn delivered(intact: bool, accepted: bool) -> Stamped {
        at(
            4,
            Obs::Delivered {
                tower: 0,
                device: 3,
                item: ItemId::new("alert"),
                version: 2,
                intact,
                accepted,
            },
        )
    }

    #[test]
    fn a_device_keeping_garbled_bytes_fails_and_refusing_them_passes() {
        // Goal: only "garbled and accepted" is a violation, reported once, naming the device.
        let quiet = [delivered(false, false), delivered(true, true)];
        let v = run(
            &mut Integrity::default(),
            &[&[start(1)][..], &quiet].concat(),
        );
        assert!(v.is_empty(), "{v:?}");
        let bad = [start(1), delivered(false, true), delivered(false, true)];
        let v = run(&mut Integrity::default(), &bad);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("device 3 of tower-0 kept alert v2"));
    }

    #[test]
    fn foreign_manifest_fails() {
        // Goal: a manifest that is not the origin's is a violation even with good chunks.
        let v = run(&mut Integrity::default(), &[start(1), served(true, false)]);
        assert_eq!(v.len(), 1);
        assert!(v[0].detail.contains("manifest"));
    }
}
