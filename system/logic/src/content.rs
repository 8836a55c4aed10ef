//! Content: items, priorities, versions, chunks, manifests and the delta between them.
//!
//! A version of an item is split into content-defined chunks by FastCDC (2020), each
//! addressed by its SHA-256. A [`Manifest`] lists a version's chunks in order, with the
//! SHA-256 of the whole content as a second check. [`missing_chunks`] is the delta sync:
//! given what a tower holds, it names the only chunks that must move.
//!
//! Map:
//! - [`Priority`] P0 (critical) … P3 (bulk); [`ItemId`]; [`ChunkHash`] (SHA-256).
//! - [`ChunkParams`] and [`split`]: FastCDC cut points, validated sizes.
//! - [`Manifest`], [`publish`] (bytes → manifest + chunks), [`reassemble`] (chunks → bytes,
//!   every chunk checked).
//! - [`verify_chunk`]: the one integrity check every driver calls before keeping or serving.
//! - [`ManifestChanges`] (in `changes`): a version as runs over the one before it, what a
//!   catalog reply carries for a version whose base the tower holds.
//!
//! Not covered: storage of chunks (drivers), compression, encryption.

pub mod changes;

pub use changes::{ManifestChanges, Run};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// A content priority class. `P0` is the most urgent; the derived order puts `P0` first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Priority {
    /// Critical: health alerts, emergency notices.
    P0,
    /// Important: news, schedules, forms.
    P1,
    /// Normal: education content, documents.
    P2,
    /// Bulk: video, archives.
    P3,
}

impl Priority {
    /// All classes, most urgent first.
    pub const ALL: [Priority; 4] = [Priority::P0, Priority::P1, Priority::P2, Priority::P3];

    /// 0 for P0 … 3 for P3; an index into per-class tables.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The class with index `i` (0..=3).
    pub fn from_index(i: usize) -> Option<Priority> {
        Priority::ALL.get(i).copied()
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P{}", self.index())
    }
}

/// Why a priority string was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("expected a priority P0, P1, P2 or P3, found {0:?}")]
pub struct ParsePriorityError(pub String);

impl FromStr for Priority {
    type Err = ParsePriorityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "P0" | "p0" => Ok(Priority::P0),
            "P1" | "p1" => Ok(Priority::P1),
            "P2" | "p2" => Ok(Priority::P2),
            "P3" | "p3" => Ok(Priority::P3),
            other => Err(ParsePriorityError(other.to_string())),
        }
    }
}

/// The stable identifier of a content item (e.g. `alert-cholera-2026`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ItemId(pub String);

impl ItemId {
    /// An item id from anything string-like.
    pub fn new(s: impl Into<String>) -> Self {
        ItemId(s.into())
    }
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A SHA-256 digest: the address of a chunk, or the digest of a whole version.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkHash(pub [u8; 32]);

impl ChunkHash {
    /// The SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> ChunkHash {
        let digest = Sha256::digest(bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(&digest);
        ChunkHash(out)
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
            s.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
        }
        s
    }

    /// The first 8 bytes as a number; handy as a deterministic, well-mixed key.
    pub fn prefix_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(b)
    }
}

impl fmt::Debug for ChunkHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", &self.to_hex()[..12])
    }
}

impl fmt::Display for ChunkHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Why a hex digest was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("expected 64 lower- or upper-case hex digits (a SHA-256), found {0:?}")]
pub struct ParseHashError(pub String);

impl FromStr for ChunkHash {
    type Err = ParseHashError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseHashError(s.chars().take(80).collect());
        if s.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in s.as_bytes().chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16).ok_or_else(bad)?;
            let lo = (pair[1] as char).to_digit(16).ok_or_else(bad)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Ok(ChunkHash(out))
    }
}

/// `true` iff `bytes` hash to `hash`. Every driver calls this before it keeps a chunk and
/// before it serves one; it is the whole of the integrity rule.
pub fn verify_chunk(hash: &ChunkHash, bytes: &[u8]) -> bool {
    ChunkHash::of(bytes) == *hash
}

/// `true` iff `bytes` are the chunk `hash` of the recorded length `len` (`None`: no
/// length on record, only the hash decides). What an origin checks before it serves a
/// chunk it read from storage, and before it disowns one as lost.
pub fn chunk_intact(hash: &ChunkHash, len: Option<u32>, bytes: &[u8]) -> bool {
    len.is_none_or(|l| l as usize == bytes.len()) && verify_chunk(hash, bytes)
}

/// FastCDC chunk sizes in bytes. Defaults: 2 KiB / 8 KiB / 64 KiB (DESIGN.md §10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkParams {
    /// No chunk is smaller (except a short final one).
    pub size_min: u32,
    /// The target average chunk size.
    pub size_avg: u32,
    /// No chunk is larger.
    pub size_max: u32,
}

impl Default for ChunkParams {
    fn default() -> Self {
        ChunkParams {
            size_min: 2 * 1024,
            size_avg: 8 * 1024,
            size_max: 64 * 1024,
        }
    }
}

/// Why chunk sizes were rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkParamsError {
    /// Sizes must satisfy the bounds FastCDC 2020 accepts.
    #[error(
        "chunk sizes must satisfy 64 <= min <= 1 MiB, 256 <= avg <= 4 MiB, 1 KiB <= max <= 16 MiB and min <= avg <= max; got min={min} avg={avg} max={max}"
    )]
    OutOfRange {
        /// the rejected minimum
        min: u32,
        /// the rejected average
        avg: u32,
        /// the rejected maximum
        max: u32,
    },
}

impl ChunkParams {
    /// Check the sizes against FastCDC's accepted ranges (it would panic otherwise).
    pub fn validate(&self) -> Result<(), ChunkParamsError> {
        use fastcdc::v2020 as f;
        let (min, avg, max) = (
            self.size_min as usize,
            self.size_avg as usize,
            self.size_max as usize,
        );
        let ok = (f::MINIMUM_MIN..=f::MINIMUM_MAX).contains(&min)
            && (f::AVERAGE_MIN..=f::AVERAGE_MAX).contains(&avg)
            && (f::MAXIMUM_MIN..=f::MAXIMUM_MAX).contains(&max)
            && min <= avg
            && avg <= max;
        if ok {
            Ok(())
        } else {
            Err(ChunkParamsError::OutOfRange {
                min: self.size_min,
                avg: self.size_avg,
                max: self.size_max,
            })
        }
    }
}

/// One chunk of a version, as listed in its manifest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ChunkRef {
    /// SHA-256 of the chunk's bytes (its address).
    pub hash: ChunkHash,
    /// Length in bytes.
    pub len: u32,
}

/// The cut points of `bytes`: `(offset, length)` pairs covering it exactly, in order.
pub fn split(bytes: &[u8], params: ChunkParams) -> Result<Vec<(usize, usize)>, ChunkParamsError> {
    params.validate()?;
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let cuts = fastcdc::v2020::FastCDC::new(
        bytes,
        params.size_min as usize,
        params.size_avg as usize,
        params.size_max as usize,
    )
    .map(|c| (c.offset, c.length))
    .collect();
    Ok(cuts)
}

/// [`split`] for content that arrives in pieces (a request body read frame by frame): the
/// same cuts, without holding the whole content. FastCDC decides where a chunk ends from
/// at most `size_max` bytes after its start, so a chunk whose start has `size_max` bytes
/// after it in the buffer is cut exactly as in the whole content; the rest waits for more
/// bytes or [`Chunker::finish`]. At most `size_max` plus one piece is held.
#[derive(Clone, Debug)]
pub struct Chunker {
    params: ChunkParams,
    pending: Vec<u8>,
}

impl Chunker {
    /// A chunker with these sizes (checked as [`split`] checks them).
    pub fn new(params: ChunkParams) -> Result<Chunker, ChunkParamsError> {
        params.validate()?;
        Ok(Chunker {
            params,
            pending: Vec::new(),
        })
    }

    /// Take the next piece; the chunks complete so far, in order.
    pub fn push(&mut self, piece: &[u8]) -> Vec<Bytes> {
        self.pending.extend_from_slice(piece);
        let max = self.params.size_max as usize;
        if self.pending.len() < max {
            return Vec::new();
        }
        let cuts = split(&self.pending, self.params).unwrap_or_default();
        let held = self.pending.len();
        let done: Vec<(usize, usize)> = cuts
            .into_iter()
            .take_while(|(off, _)| held - off >= max)
            .collect();
        let end = done.last().map_or(0, |(off, len)| off + len);
        let chunks = done
            .iter()
            .map(|(off, len)| Bytes::copy_from_slice(&self.pending[*off..off + len]))
            .collect();
        self.pending.drain(..end);
        chunks
    }

    /// The content ended: its last chunks.
    pub fn finish(self) -> Vec<Bytes> {
        let cuts = split(&self.pending, self.params).unwrap_or_default();
        cuts.into_iter()
            .map(|(off, len)| Bytes::copy_from_slice(&self.pending[off..off + len]))
            .collect()
    }
}

/// A published version of an item: what a tower needs to fetch, verify and serve it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Manifest {
    /// The item.
    pub item: ItemId,
    /// Version number; the origin assigns 1, 2, … per item.
    pub version: u64,
    /// The item's priority class.
    pub priority: Priority,
    /// Total size in bytes (the sum of chunk lengths).
    pub size: u64,
    /// SHA-256 of the whole content (a second check after reassembly).
    pub digest: ChunkHash,
    /// The chunks in order.
    pub chunks: Vec<ChunkRef>,
}

impl Manifest {
    /// The distinct chunk hashes of this version.
    pub fn chunk_set(&self) -> BTreeSet<ChunkHash> {
        self.chunks.iter().map(|c| c.hash).collect()
    }

    /// Internal consistency: sizes add up, no chunk is empty.
    pub fn is_consistent(&self) -> bool {
        self.chunks.iter().all(|c| c.len > 0)
            && self.chunks.iter().map(|c| u64::from(c.len)).sum::<u64>() == self.size
    }

    /// A strong ETag for HTTP: the content digest in quotes.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.digest)
    }
}

/// A chunk with its bytes, as it travels.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Chunk {
    /// The chunk's address.
    pub hash: ChunkHash,
    /// The bytes (cheap to clone).
    pub bytes: Bytes,
}

/// Split `bytes` into chunks and describe them in a manifest.
pub fn publish(
    item: ItemId,
    version: u64,
    priority: Priority,
    bytes: &[u8],
    params: ChunkParams,
) -> Result<(Manifest, Vec<Chunk>), ChunkParamsError> {
    let shared = Bytes::copy_from_slice(bytes);
    publish_shared(item, version, priority, shared, params)
}

/// [`publish`] of bytes the caller already holds as [`Bytes`]: the chunks are slices of
/// `shared`, not copies (an origin taking in a large upload keeps one buffer, not two).
pub fn publish_shared(
    item: ItemId,
    version: u64,
    priority: Priority,
    shared: Bytes,
    params: ChunkParams,
) -> Result<(Manifest, Vec<Chunk>), ChunkParamsError> {
    let bytes = &shared[..];
    let cuts = split(bytes, params)?;
    let mut refs = Vec::with_capacity(cuts.len());
    let mut chunks = Vec::with_capacity(cuts.len());
    for (off, len) in cuts {
        let body = shared.slice(off..off + len);
        let hash = ChunkHash::of(&body);
        refs.push(ChunkRef {
            hash,
            len: len as u32,
        });
        chunks.push(Chunk { hash, bytes: body });
    }
    let manifest = Manifest {
        item,
        version,
        priority,
        size: bytes.len() as u64,
        digest: ChunkHash::of(bytes),
        chunks: refs,
    };
    debug_assert!(manifest.is_consistent());
    Ok((manifest, chunks))
}

/// The delta: chunks of `manifest` that `have` does not hold, each once, in manifest order.
/// Only these move over the link.
pub fn missing_chunks(manifest: &Manifest, have: impl Fn(&ChunkHash) -> bool) -> Vec<ChunkRef> {
    let mut seen = BTreeSet::new();
    manifest
        .chunks
        .iter()
        .filter(|c| !have(&c.hash) && seen.insert(c.hash))
        .copied()
        .collect()
}

/// Why reassembly failed.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReassembleError {
    /// A chunk the manifest lists is not available.
    #[error("chunk {0} is missing")]
    Missing(ChunkHash),
    /// A chunk's bytes do not hash to its address.
    #[error("chunk {0} failed verification")]
    Corrupt(ChunkHash),
    /// The whole content does not match the manifest's digest.
    #[error("content digest mismatch for {item} v{version}")]
    Digest {
        /// the item
        item: ItemId,
        /// the version
        version: u64,
    },
}

/// Rebuild a version's bytes from its chunks, verifying every chunk and the whole digest.
pub fn reassemble(
    manifest: &Manifest,
    get: impl Fn(&ChunkHash) -> Option<Bytes>,
) -> Result<Vec<u8>, ReassembleError> {
    let mut out = Vec::with_capacity(manifest.size as usize);
    for c in &manifest.chunks {
        let bytes = get(&c.hash).ok_or(ReassembleError::Missing(c.hash))?;
        if bytes.len() != c.len as usize || !verify_chunk(&c.hash, &bytes) {
            return Err(ReassembleError::Corrupt(c.hash));
        }
        out.extend_from_slice(&bytes);
    }
    if ChunkHash::of(&out) != manifest.digest {
        return Err(ReassembleError::Digest {
            item: manifest.item.clone(),
            version: manifest.version,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::{Entropy, SplitMix64};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut r = SplitMix64::new(seed);
        (0..len).map(|_| r.next_u64() as u8).collect()
    }

    fn store(chunks: &[Chunk]) -> BTreeMap<ChunkHash, Bytes> {
        chunks.iter().map(|c| (c.hash, c.bytes.clone())).collect()
    }

    #[test]
    fn hash_hex_round_trips_and_rejects_garbage() {
        let h = ChunkHash::of(b"abc");
        assert_eq!(
            h.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(h.to_hex().parse::<ChunkHash>(), Ok(h));
        assert!("xyz".parse::<ChunkHash>().is_err());
        assert!("g".repeat(64).parse::<ChunkHash>().is_err());
    }

    #[test]
    fn priority_parses_and_orders_p0_first() {
        assert_eq!("P2".parse::<Priority>(), Ok(Priority::P2));
        assert!("P4".parse::<Priority>().is_err());
        assert!(Priority::P0 < Priority::P3);
    }

    #[test]
    fn bad_chunk_params_are_an_error_not_a_panic() {
        let p = ChunkParams {
            size_min: 10,
            size_avg: 8,
            size_max: 4,
        };
        assert!(split(b"hello", p).is_err());
    }

    #[test]
    fn verify_rejects_a_flipped_bit() {
        let data = random_bytes(3, 10_000);
        let (m, chunks) = publish(
            ItemId::new("a"),
            1,
            Priority::P1,
            &data,
            ChunkParams::default(),
        )
        .unwrap();
        let mut bad = chunks[0].bytes.to_vec();
        bad[0] ^= 1;
        assert!(verify_chunk(&chunks[0].hash, &chunks[0].bytes));
        assert!(!verify_chunk(&chunks[0].hash, &bad));
        let mut s = store(&chunks);
        s.insert(chunks[0].hash, Bytes::from(bad));
        assert_eq!(
            reassemble(&m, |h| s.get(h).cloned()),
            Err(ReassembleError::Corrupt(chunks[0].hash))
        );
    }

    #[test]
    fn empty_content_has_no_chunks_and_reassembles() {
        let (m, chunks) = publish(
            ItemId::new("e"),
            1,
            Priority::P3,
            b"",
            ChunkParams::default(),
        )
        .unwrap();
        assert!(chunks.is_empty());
        assert_eq!(reassemble(&m, |_| None).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn delta_moves_only_missing_chunks_once() {
        let data = random_bytes(9, 200_000);
        let (m, chunks) = publish(
            ItemId::new("v"),
            1,
            Priority::P3,
            &data,
            ChunkParams::default(),
        )
        .unwrap();
        let half: BTreeSet<ChunkHash> = chunks.iter().step_by(2).map(|c| c.hash).collect();
        let missing = missing_chunks(&m, |h| half.contains(h));
        assert!(missing.iter().all(|c| !half.contains(&c.hash)));
        let distinct: BTreeSet<_> = missing.iter().map(|c| c.hash).collect();
        assert_eq!(distinct.len(), missing.len());
        assert_eq!(distinct.len() + half.len(), m.chunk_set().len());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Goal: content pushed through a [`Chunker`] in pieces of any sizes is cut exactly
        /// as [`split`] cuts the whole of it.
        #[test]
        fn a_chunker_fed_in_pieces_cuts_as_split_cuts_the_whole(
            seed in any::<u64>(),
            len in 0usize..400_000,
            pieces in proptest::collection::vec(1usize..150_000, 1..12),
            small in any::<bool>(),
        ) {
            let data = random_bytes(seed, len);
            let params = match small {
                true => ChunkParams { size_min: 64, size_avg: 256, size_max: 1024 },
                false => ChunkParams::default(),
            };
            let whole: Vec<&[u8]> = split(&data, params).unwrap().into_iter().map(|(o, l)| &data[o..o + l]).collect();
            let mut c = Chunker::new(params).unwrap();
            let mut got: Vec<Bytes> = Vec::new();
            let mut at = 0;
            for size in pieces.iter().cycle() {
                if at == data.len() { break; }
                let end = (at + size).min(data.len());
                got.extend(c.push(&data[at..end]));
                prop_assert!(c.pending.len() < params.size_max as usize);
                at = end;
            }
            got.extend(c.finish());
            let got: Vec<&[u8]> = got.iter().map(|b| &b[..]).collect();
            prop_assert_eq!(got, whole);
        }

        /// Goal: any content reassembles to exactly itself from its chunks.
        #[test]
        fn reassembly_equals_original(seed in any::<u64>(), len in 0usize..300_000) {
            let data = random_bytes(seed, len);
            let (m, chunks) = publish(ItemId::new("x"), 1, Priority::P2, &data, ChunkParams::default()).unwrap();
            prop_assert!(m.is_consistent());
            prop_assert!(chunks.iter().all(|c| c.bytes.len() <= 64 * 1024));
            let s = store(&chunks);
            prop_assert_eq!(reassemble(&m, |h| s.get(h).cloned()).unwrap(), data);
        }

        /// Goal: a 1% edit in place changes about 1% of the content's chunks (content-defined
        /// cut points resynchronise), so delta sync moves a small fraction.
        #[test]
        fn one_percent_edit_changes_few_chunks(seed in any::<u64>(), at in 0.0f64..0.99) {
            let len = 1_000_000usize;
            let old = random_bytes(seed, len);
            let mut new = old.clone();
            let start = (at * len as f64) as usize;
            let edit = len / 100;
            let mut r = SplitMix64::new(seed ^ 0xABCD);
            for b in &mut new[start..start + edit] { *b = r.next_u64() as u8; }
            let p = ChunkParams::default();
            let (m_old, _) = publish(ItemId::new("x"), 1, Priority::P3, &old, p).unwrap();
            let (m_new, _) = publish(ItemId::new("x"), 2, Priority::P3, &new, p).unwrap();
            let have = m_old.chunk_set();
            let moved: u64 = missing_chunks(&m_new, |h| have.contains(h)).iter().map(|c| u64::from(c.len)).sum();
            // The edited 1% plus at most the two chunks that straddle its edges (<= 2 x max).
            prop_assert!(moved <= edit as u64 + 2 * 64 * 1024, "moved {} bytes for a {} byte edit", moved, edit);
            prop_assert!(moved >= edit as u64 / 2);
        }
    }

    #[test]
    fn one_percent_edit_moves_about_one_percent_on_average() {
        // Goal: the DESIGN.md §10 figure — a 1% edit moves ~1% of the bytes (plus the
        // chunks straddling the edit's edges), averaged over seeds and edit positions.
        let len = 2_000_000usize;
        let p = ChunkParams::default();
        let mut fracs = Vec::new();
        for seed in 0..12u64 {
            let old = random_bytes(seed, len);
            let mut new = old.clone();
            let start = (seed as usize * 150_001) % (len - len / 100);
            for b in &mut new[start..start + len / 100] {
                *b = b.wrapping_add(1);
            }
            let (m_old, _) = publish(ItemId::new("x"), 1, Priority::P3, &old, p).unwrap();
            let (m_new, _) = publish(ItemId::new("x"), 2, Priority::P3, &new, p).unwrap();
            let have = m_old.chunk_set();
            let moved: u64 = missing_chunks(&m_new, |h| have.contains(h))
                .iter()
                .map(|c| u64::from(c.len))
                .sum();
            fracs.push(moved as f64 / len as f64);
        }
        let mean = fracs.iter().sum::<f64>() / fracs.len() as f64;
        assert!(mean < 0.02, "mean fraction moved {mean:.4} ({fracs:?})");
        assert!(mean > 0.01);
    }
}
