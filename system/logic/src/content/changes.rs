//! A manifest sent as the changes from the version a tower holds.
//!
//! A new version of a large item usually shares most of its chunks with the version
//! before it, in the same order (content-defined chunking keeps the cut points of
//! unchanged bytes). Sending its whole chunk list again costs 36 bytes per chunk — most
//! of a small change's sync over satellite. [`ManifestChanges`] lists the new version as
//! runs: "keep chunks `start..start + len` of the base version" or "these new chunk
//! references". The receiver rebuilds the manifest from the base it holds
//! ([`ManifestChanges::apply`]) and keeps it only if it is consistent and the SHA-256 of
//! the rebuilt chunk list ([`Manifest::list_digest`]) is the one the origin sent — so a
//! wrong base (another origin's version under the same number, a lost entry) is refused,
//! never served.
//!
//! Map: [`ManifestChanges`] ([`ManifestChanges::between`], [`ManifestChanges::apply`]),
//! [`Run`], [`Manifest::list_digest`].

use super::{ChunkHash, ChunkRef, ItemId, Manifest, Priority};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The most chunks a manifest rebuilt from changes may list (8 GiB at the default 8 KiB
/// average): keep runs may repeat the base, so the rebuilt list is bounded here rather
/// than by the size of the message that carried the runs.
pub const CHUNKS_MAX: usize = 1 << 20;

/// One run of a new version's chunk list.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Run {
    /// The base version's chunks `start..start + len`, in order.
    Keep {
        /// index of the first chunk in the base's list
        start: u32,
        /// how many
        len: u32,
    },
    /// Chunk references the base does not list at this place.
    New(Vec<ChunkRef>),
}

/// A version of an item as the changes from an earlier version of it (its base).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ManifestChanges {
    /// The item.
    pub item: ItemId,
    /// The new version.
    pub version: u64,
    /// The new version's class.
    pub priority: Priority,
    /// The new version's size in bytes.
    pub size: u64,
    /// SHA-256 of the new version's whole content.
    pub digest: ChunkHash,
    /// The version the runs refer to.
    pub base_version: u64,
    /// The new chunk list, run by run.
    pub runs: Vec<Run>,
    /// [`Manifest::list_digest`] of the new version: the receiver's check.
    pub list_digest: ChunkHash,
}

impl Manifest {
    /// SHA-256 over the item, the version, the class, the size, the content digest and
    /// every chunk reference in order: equal digests mean equal manifests.
    pub fn list_digest(&self) -> ChunkHash {
        let mut h = Sha256::new();
        h.update((self.item.0.len() as u64).to_le_bytes());
        h.update(self.item.0.as_bytes());
        h.update(self.version.to_le_bytes());
        h.update([self.priority.index() as u8]);
        h.update(self.size.to_le_bytes());
        h.update(self.digest.0);
        h.update((self.chunks.len() as u64).to_le_bytes());
        for c in &self.chunks {
            h.update(c.hash.0);
            h.update(c.len.to_le_bytes());
        }
        ChunkHash(h.finalize().into())
    }
}

impl ManifestChanges {
    /// `new` as runs over `base` (another version of the same item). Greedy: at each
    /// place, the longest run of base chunks that starts with the next new chunk (its
    /// first occurrence in the base), else a new reference.
    pub fn between(base: &Manifest, new: &Manifest) -> ManifestChanges {
        let mut first: BTreeMap<ChunkHash, u32> = BTreeMap::new();
        for (i, c) in base.chunks.iter().enumerate() {
            first.entry(c.hash).or_insert(i as u32);
        }
        let mut runs: Vec<Run> = Vec::new();
        let mut j = 0;
        while j < new.chunks.len() {
            let at = first
                .get(&new.chunks[j].hash)
                .copied()
                .filter(|&i| base.chunks[i as usize] == new.chunks[j]);
            match at {
                Some(start) => {
                    let mut len = 0usize;
                    while j + len < new.chunks.len()
                        && (start as usize + len) < base.chunks.len()
                        && base.chunks[start as usize + len] == new.chunks[j + len]
                    {
                        len += 1;
                    }
                    runs.push(Run::Keep {
                        start,
                        len: len as u32,
                    });
                    j += len;
                }
                None => {
                    if let Some(Run::New(refs)) = runs.last_mut() {
                        refs.push(new.chunks[j]);
                    } else {
                        runs.push(Run::New(vec![new.chunks[j]]));
                    }
                    j += 1;
                }
            }
        }
        ManifestChanges {
            item: new.item.clone(),
            version: new.version,
            priority: new.priority,
            size: new.size,
            digest: new.digest,
            base_version: base.version,
            runs,
            list_digest: new.list_digest(),
        }
    }

    /// The new version rebuilt from `base`, or `None` if `base` is not the version the
    /// runs were made from: another item or version, a run out of its range, sizes that do
    /// not add up, or a chunk list whose digest is not [`ManifestChanges::list_digest`].
    /// Allocates no more than the runs name (a keep run is bounded by the base's length).
    pub fn apply(&self, base: &Manifest) -> Option<Manifest> {
        self.apply_within(base, CHUNKS_MAX)
    }

    /// [`ManifestChanges::apply`], refused once the rebuilt list would pass `chunks_max`
    /// references (at most [`CHUNKS_MAX`]).
    pub fn apply_within(&self, base: &Manifest, chunks_max: usize) -> Option<Manifest> {
        let chunks_max = chunks_max.min(CHUNKS_MAX);
        if base.item != self.item || base.version != self.base_version {
            return None;
        }
        let mut chunks: Vec<ChunkRef> = Vec::new();
        for run in &self.runs {
            match run {
                Run::Keep { start, len } => {
                    let from = *start as usize;
                    let to = from.checked_add(*len as usize)?;
                    let kept = base.chunks.get(from..to)?;
                    if chunks.len() + kept.len() > chunks_max {
                        return None;
                    }
                    chunks.extend_from_slice(kept);
                }
                Run::New(refs) => {
                    if chunks.len() + refs.len() > chunks_max {
                        return None;
                    }
                    chunks.extend_from_slice(refs);
                }
            }
        }
        let m = Manifest {
            item: self.item.clone(),
            version: self.version,
            priority: self.priority,
            size: self.size,
            digest: self.digest,
            chunks,
        };
        (m.is_consistent() && m.list_digest() == self.list_digest).then_some(m)
    }

    /// Chunk references the runs carry (new ones) and keep runs: what the encoding costs
    /// beyond its fixed fields.
    pub fn counts(&self) -> (usize, usize) {
        self.runs.iter().fold((0, 0), |(new, keep), r| match r {
            Run::Keep { .. } => (new, keep + 1),
            Run::New(refs) => (new + refs.len(), keep),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{ChunkParams, publish};
    use crate::entropy::{Entropy, SplitMix64};

    fn version(bytes: &[u8], v: u64) -> Manifest {
        let params = ChunkParams {
            size_min: 256,
            size_avg: 1024,
            size_max: 4096,
        };
        publish(ItemId("doc".into()), v, Priority::P1, bytes, params)
            .unwrap()
            .0
    }

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut r = SplitMix64::new(seed);
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&r.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }

    #[test]
    fn a_small_edit_travels_as_a_few_new_references_and_rebuilds_exactly() {
        let old = noise(200_000, 1);
        let mut new = old.clone();
        new[100_000..100_050].copy_from_slice(&noise(50, 2));
        let (base, next) = (version(&old, 1), version(&new, 2));
        let changes = ManifestChanges::between(&base, &next);
        let (refs, keeps) = changes.counts();
        assert!(
            refs <= 3 && keeps == 2,
            "{refs} new refs, {keeps} keep runs"
        );
        assert!(base.chunks.len() > 100);
        assert_eq!(changes.apply(&base), Some(next));
    }

    #[test]
    fn insertions_appends_reorders_and_repeats_rebuild_exactly() {
        let old = noise(120_000, 3);
        let mut cases: Vec<Vec<u8>> = Vec::new();
        let mut inserted = old.clone();
        inserted.splice(40_000..40_000, noise(3000, 4));
        cases.push(inserted);
        let mut appended = old.clone();
        appended.extend(noise(9000, 5));
        cases.push(appended);
        cases.push([&old[60_000..], &old[..60_000]].concat());
        cases.push([&old[..], &old[..]].concat());
        cases.push(noise(50_000, 6));
        cases.push(Vec::new());
        let base = version(&old, 7);
        for (i, bytes) in cases.iter().enumerate() {
            let next = version(bytes, 8);
            let changes = ManifestChanges::between(&base, &next);
            assert_eq!(changes.apply(&base).as_ref(), Some(&next), "case {i}");
        }
    }

    #[test]
    fn a_wrong_base_is_refused_not_rebuilt() {
        let old = noise(100_000, 9);
        let mut new = old.clone();
        new[10..20].copy_from_slice(b"0123456789");
        let (base, next) = (version(&old, 1), version(&new, 2));
        let changes = ManifestChanges::between(&base, &next);
        // Another version number, another item, other bytes under the same number.
        let mut other_version = base.clone();
        other_version.version = 3;
        assert_eq!(changes.apply(&other_version), None);
        let mut other_item = base.clone();
        other_item.item = ItemId("other".into());
        assert_eq!(changes.apply(&other_item), None);
        let mut other_bytes = old.clone();
        other_bytes[50_000..50_010].copy_from_slice(b"abcdefghij");
        assert_eq!(changes.apply(&version(&other_bytes, 1)), None);
        // Runs out of range, and a tampered run, are refused too.
        let mut out_of_range = changes.clone();
        out_of_range.runs.push(Run::Keep {
            start: u32::MAX,
            len: u32::MAX,
        });
        assert_eq!(out_of_range.apply(&base), None);
        // Keep runs repeating the base past the bound are refused before they allocate.
        let mut repeated = changes.clone();
        let whole = Run::Keep {
            start: 0,
            len: base.chunks.len() as u32,
        };
        repeated.runs = vec![whole; CHUNKS_MAX / base.chunks.len() + 2];
        assert_eq!(repeated.apply(&base), None);
        let mut tampered = changes.clone();
        let keep = tampered.runs.iter_mut().find_map(|r| match r {
            Run::Keep { start, .. } => Some(start),
            Run::New(_) => None,
        });
        *keep.expect("a keep run") += 1;
        assert_eq!(tampered.apply(&base), None);
        assert_eq!(changes.apply(&base), Some(next));
    }

    #[test]
    fn the_list_digest_covers_every_field() {
        let base = version(&noise(30_000, 10), 1);
        let d = base.list_digest();
        let mut m = base.clone();
        m.version = 2;
        assert_ne!(m.list_digest(), d);
        let mut m = base.clone();
        m.priority = Priority::P0;
        assert_ne!(m.list_digest(), d);
        let mut m = base.clone();
        m.chunks.swap(0, 1);
        assert_ne!(m.list_digest(), d);
        let mut m = base.clone();
        m.digest = ChunkHash([0; 32]);
        assert_ne!(m.list_digest(), d);
        assert_eq!(base.clone().list_digest(), d);
    }
}
