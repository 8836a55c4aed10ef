//! Invariant 1, integrity: no tower serves bytes whose hash mismatches their manifest.
//!
//! Verifies: every [`Obs::Served`] — each chunk's bytes matched its hash at the moment
//! they were served, and the manifest served is the one the origin published for that
//! (item, version). Each bad (tower, item, version, chunk) is reported once.
//!
//! Does not verify: that a device got the *latest* version (freshness is a KPI), bytes
//! that stayed at rest without being served (quarantine is the tower's job, not a
//! violation), or what happens on the device after delivery (the world reports the
//! check at the tower's boundary, before Wi-Fi).

use super::{Checker, TowerNames, violation};
use crate::obs::{Obs, Stamped};
use crate::report::Violation;
use crate::scenario::Oracle;
use sovereign_logic::Time;
use sovereign_logic::content::{ChunkHash, ItemId};
use std::collections::BTreeSet;

/// The integrity checker.
#[derive(Clone, Debug, Default)]
pub struct Integrity {
    names: TowerNames,
    /// (tower, item, version, chunk; `None` for the manifest) already reported.
    reported: BTreeSet<(usize, ItemId, u64, Option<ChunkHash>)>,
}

impl Checker for Integrity {
    fn oracle(&self) -> Oracle {
        Oracle::Integrity
    }

    fn observe(&mut self, s: &Stamped, out: &mut Vec<Violation>) {
        self.names.learn(&s.obs);
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

    #[test]
    fn foreign_manifest_fails() {
        // Goal: a manifest that is not the origin's is a violation even with good chunks.
        let v = run(&mut Integrity::default(), &[start(1), served(true, false)]);
        assert_eq!(v.len(), 1);
        assert!(v[0].detail.contains("manifest"));
    }
}
