//! Where a record store keeps its chunks: a pack store ([`PackDir`], the layout of a new
//! store) or a chunk directory with a file per chunk ([`ChunkDir`], kept for a store
//! that already has one: its chunks are not moved). Both keep the same promises (see
//! their module docs); this is the one type the record stores hold.

use std::collections::BTreeSet;
use std::path::Path;

use bytes::Bytes;
use sovereign_logic::content::ChunkHash;

use crate::chunks::Scan;
use crate::packs::PackDir;
use crate::{ChunkDir, Garbage, StoreError};

/// A record store's chunks, in one of the two layouts.
#[derive(Debug)]
pub enum ChunkStore {
    /// `DIR/packs/`: chunks appended to pack files.
    Packs(PackDir),
    /// `DIR/chunks/`: a file per chunk.
    Files(ChunkDir),
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            ChunkStore::Packs($s) => $e,
            ChunkStore::Files($s) => $e,
        }
    };
}

impl ChunkStore {
    /// Open the chunks under `dir`: a chunk directory if `DIR/chunks` holds chunks and no
    /// pack store was started, a pack store otherwise.
    pub fn open(dir: &Path) -> Result<ChunkStore, StoreError> {
        if has_chunk_files(dir)? && !is_dir(&dir.join("packs"))? {
            return ChunkDir::open(dir).map(ChunkStore::Files);
        }
        PackDir::open(dir).map(ChunkStore::Packs)
    }

    /// Store `bytes` as the chunk `hash`, pending until the next sync.
    pub fn put(&self, hash: &ChunkHash, bytes: &[u8]) -> Result<(), StoreError> {
        each!(self, s => s.put(hash, bytes))
    }

    /// Put each chunk; one result per chunk, in order.
    pub fn put_many(&self, chunks: &[(ChunkHash, &[u8])]) -> Vec<Result<(), StoreError>> {
        each!(self, s => s.put_many(chunks))
    }

    /// The bytes stored under `hash`, unverified.
    pub fn get(&self, hash: &ChunkHash) -> Result<Option<Bytes>, StoreError> {
        each!(self, s => s.get(hash))
    }

    /// Remove the chunk `hash`.
    pub fn delete(&self, hash: &ChunkHash) -> Result<(), StoreError> {
        each!(self, s => s.delete(hash))
    }

    /// Make every put and delete since the last sync durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        each!(self, s => s.sync())
    }

    /// The record store committed what the last sync made durable.
    pub fn committed(&self) {
        each!(self, s => s.committed())
    }

    /// The record store's commit failed: take back the chunks put since the last commit.
    pub fn discard_fresh(&self) -> Result<u64, StoreError> {
        each!(self, s => s.discard_fresh())
    }

    /// Start-up, after recovery: drop every chunk `keep` does not name.
    pub fn collect_garbage(&self, keep: &BTreeSet<ChunkHash>) -> Result<Garbage, StoreError> {
        each!(self, s => s.collect_garbage(keep))
    }

    /// Start-up: verify every chunk; the good ones' bytes in [`Scan::chunks`].
    pub fn scan(&self) -> Result<Scan, StoreError> {
        each!(self, s => s.scan())
    }

    /// Start-up: verify every chunk; the good ones' lengths in [`Scan::lengths`].
    pub fn scan_index(&self) -> Result<Scan, StoreError> {
        each!(self, s => s.scan_index())
    }

    /// For fault injection and tests: rot one stored chunk.
    pub fn corrupt_one(&self) -> Result<Option<ChunkHash>, StoreError> {
        each!(self, s => s.corrupt_one())
    }

    /// Where chunks that failed verification at start-up are copied.
    pub fn quarantine_dir(&self) -> &Path {
        each!(self, s => s.quarantine_dir())
    }

    /// The chunk directory, when this store has that layout.
    pub fn files(&self) -> Option<&ChunkDir> {
        match self {
            ChunkStore::Files(d) => Some(d),
            ChunkStore::Packs(_) => None,
        }
    }
}

/// Whether `DIR/chunks` holds a prefix directory (a chunk directory in use). An error
/// other than "no such directory" is an error: taken for "none", it would start a pack
/// store beside chunk files never read again.
fn has_chunk_files(dir: &Path) -> Result<bool, StoreError> {
    let chunks = dir.join("chunks");
    let entries = match std::fs::read_dir(&chunks) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(crate::io_err(format!(
                "read directory {}",
                chunks.display()
            ))(e));
        }
    };
    for entry in entries {
        let entry = entry.map_err(crate::io_err(format!(
            "read directory {}",
            chunks.display()
        )))?;
        if entry.file_name().len() == 2 && is_dir(&entry.path())? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `path` is a directory; `false` if nothing is there, an error if it cannot be
/// told.
fn is_dir(path: &Path) -> Result<bool, StoreError> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.is_dir()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(crate::io_err(format!("stat {}", path.display()))(e)),
    }
}
