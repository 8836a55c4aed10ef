//! Durable storage for the real servers: the record store and the chunk store behind one
//! [`Store`] interface, honouring the logic's write/fsync contract (a write may be lost
//! by a crash until an fsync issued after it completes; an fsync that returns `Ok` made
//! every earlier write durable).
//!
//! Backends: SQLite (embedded default, WAL, `synchronous=FULL`), PostgreSQL (origin
//! catalog, apply log), in-memory with crash semantics (turmoil tests). Chunks live in a
//! content-addressed directory (temp file, fsync, rename, fsync the directory); S3 would
//! be another [`ChunkDir`]-like backend behind the same trait.
//!
//! Map:
//! - [`Store`], [`StoreError`], [`Recovered`], [`collect_garbage`],
//!   [`referenced_chunks`]: the interface (here). Two ways to start:
//!   [`Store::recover`] hands over every chunk's bytes (the origin keeps them all in
//!   memory), [`Store::recover_index`] verifies each chunk and hands over only its length
//!   (a tower needs `hash -> len`, so its start-up memory does not grow with its content).
//! - [`chunks`]: [`ChunkDir`], the content-addressed chunk directory (temp, fsync, rename;
//!   start-up scan with quarantine).
//! - [`sqlite`]: [`SqliteStore`], records in one SQLite file, chunks in a [`ChunkDir`].
//! - [`postgres`]: [`PgStore`], records in PostgreSQL (driven from a dedicated thread),
//!   chunks in a local [`ChunkDir`].
//! - [`mem`]: [`MemStore`] over a shared [`MemDisk`], with crash semantics for turmoil.
//! - [`faults`]: [`FaultyStore`], a wrapper whose failures a [`Faults`] switchboard turns
//!   on and off (chaos tooling, `/admin/faults`).
//! - [`fixtures`]: sample records for tests.
//!
//! Every backend follows one rule for ordering: chunk files are written (and renamed into
//! place) at once, records are staged in memory; `fsync` first makes the chunk directory
//! durable, then commits the staged records in one transaction. So a durable catalog entry
//! never names a chunk whose rename was not yet durable.
//!
//! And one rule for failure: a failed `write` stored nothing; a failed `fsync` discards
//! everything staged since the last successful one (records dropped, chunk files it
//! created removed, [`Store::discard`]), because the logic now treats those writes as
//! lost and acts on it (answers "retry", writes again, fetches again); no later fsync may
//! commit them behind its back. What a failed commit did to the disk is not always
//! knowable (an fsync error after the WAL write; a commit whose reply was lost with the
//! connection), so a restart may still find it: the servers answer such a failure as
//! "outcome unknown, retry with the same key", which idempotency makes safe. At start,
//! after recovery, [`collect_garbage`] removes chunks no committed record names.
//!
//! Tests: unit tests beside each backend; `tests/durability/` runs one conformance suite
//! against every backend and crashes a real child process (`abort()`) mid-work. The
//! PostgreSQL tests need a server: `eval "$(scripts/pg-test-server.sh start)"` (a
//! throwaway PostgreSQL on 127.0.0.1:5433) exports `SOVEREIGN_TEST_PG`; without it they
//! are skipped with a loud message, and fail when `CI` is set.
//!
//! Not covered: replication, backups, eviction from the chunk directory while running, S3. Full
//! recovery ([`Store::recover`]) holds every chunk in memory at once (the
//! [`DurableState`] the logic takes holds the bytes); the lean one reads the chunk files
//! one at a time but still reads each whole file (a chunk is bounded by the publisher's
//! chunk size), and the in-memory stores have all bytes in memory anyway.
#![warn(missing_docs)]

pub mod chunk_store;
pub mod chunks;
pub mod faults;
pub mod fixtures;
pub mod mem;
pub mod packs;
pub mod postgres;
pub mod sqlite;
mod staged;

pub use chunk_store::ChunkStore;
pub use chunks::{ChunkDir, Garbage};
pub use faults::{Faults, FaultsSnapshot, FaultyStore};
pub use mem::{MemDisk, MemStore};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use sovereign_logic::content::ChunkHash;
use sovereign_logic::io::{DurableState, Key, Record};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O error, with the path or operation.
    #[error("{what}: {source}")]
    Io {
        /// what was being done (and to which path)
        what: String,
        /// the OS error
        source: std::io::Error,
    },
    /// A database error.
    #[error("database: {0}")]
    Db(String),
    /// A stored record could not be decoded.
    #[error("corrupt record {kind}/{name}: {reason}")]
    Corrupt {
        /// record kind
        kind: String,
        /// record name
        name: String,
        /// why
        reason: String,
    },
    /// An injected fault (chaos tooling).
    #[error("injected fault: {0}")]
    Injected(String),
}

impl StoreError {
    /// Whether the error says the disk (or the database's share of it) is full: ENOSPC
    /// from the file system, SQLite's `SQLITE_FULL`, PostgreSQL's "No space left on
    /// device", or the injected `disk-full` fault. For health reports, not for decisions
    /// about durability (every error is a failure either way).
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Io { source, .. } => {
                source.kind() == std::io::ErrorKind::StorageFull
                    || source.to_string().contains("No space left on device")
            }
            StoreError::Db(m) => {
                m.contains("database or disk is full") || m.contains("No space left on device")
            }
            StoreError::Injected(m) => m.contains("ENOSPC"),
            StoreError::Corrupt { .. } => false,
        }
    }
}

/// What start-up recovery found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Everything durable (chunks verified against their address). From
    /// [`Store::recover_index`] it holds no chunk records: those are in `chunks`.
    pub durable: DurableState,
    /// From [`Store::recover_index`] only (empty from [`Store::recover`]): every durable
    /// chunk that verified against its address, by length; its bytes stay on disk.
    pub chunks: BTreeMap<ChunkHash, u32>,
    /// Chunks whose bytes failed verification, moved to the quarantine directory.
    pub quarantined: Vec<ChunkHash>,
    /// Things recovery skipped without failing (a stray file in the chunk directory), one
    /// sentence each, for the caller to log.
    pub warnings: Vec<String>,
}

/// A node's durable storage. Methods are synchronous and are called from inside a tokio
/// runtime's worker thread (the server's node task); implementations must not start a
/// runtime of their own on the caller's thread.
pub trait Store: Send + Sync {
    /// Stage a record (a chunk goes to the chunk store). Not durable until [`Store::fsync`].
    fn write(&self, record: &Record) -> Result<(), StoreError>;
    /// [`Store::write`] of each record in order, stopping at the first that fails: one
    /// result per record up to it (the last result is then that error). A store may do
    /// a batch's work at once (the chunk directories write a publish's chunk files on
    /// several threads), so records after a failed one may have been begun: as after
    /// any failed write, the caller discards ([`Store::discard`]) before it goes on.
    fn write_many(&self, records: &[Record]) -> Vec<Result<(), StoreError>> {
        until_failed(records.iter().map(|r| self.write(r)))
    }
    /// Stage the removal of a record. Not durable until [`Store::fsync`].
    fn delete(&self, key: &Key) -> Result<(), StoreError>;
    /// Make every earlier write and delete durable. On `Err`, everything staged since the
    /// last successful fsync is discarded, as by [`Store::discard`]: a later fsync never
    /// commits it (whether the failed commit reached the disk may be unknown, see the crate
    /// doc).
    fn fsync(&self) -> Result<(), StoreError>;
    /// Forget every change since the last successful fsync: staged records are dropped
    /// and chunk files created since then are removed (a chunk that was stored before is
    /// kept). What a failed fsync does; a driver calls it when it abandons writes without
    /// an fsync (the origin's fail-stop after a failed write). An `Err` names a chunk file
    /// that could not be removed: garbage for [`Store::collect_garbage`] at the next start;
    /// the staged records are dropped either way.
    fn discard(&self) -> Result<(), StoreError>;
    /// Start-up, after recovery: remove every stored chunk whose hash is not in `keep`
    /// (the chunks the committed records name; see [`collect_garbage`]).
    fn collect_garbage(&self, keep: &BTreeSet<ChunkHash>) -> Result<Garbage, StoreError>;
    /// Read back everything durable; verify chunks and quarantine the ones that fail.
    fn recover(&self) -> Result<Recovered, StoreError>;
    /// [`Store::recover`] without holding chunk bytes: verify and quarantine chunks the
    /// same way, but return the survivors as [`Recovered::chunks`] (hash and length), not
    /// as records in [`Recovered::durable`]. A store that reads its chunks from files does
    /// so one at a time, so memory does not grow with what is stored. A wrapper must
    /// forward this to its inner store's `recover_index`, not to its `recover`.
    fn recover_index(&self) -> Result<Recovered, StoreError>;
    /// A stored chunk's bytes, unverified (the caller verifies before serving).
    fn chunk(&self, hash: &ChunkHash) -> Result<Option<Bytes>, StoreError>;
    /// Chaos hook: flip one byte of one stored, still intact chunk (its bytes no longer
    /// hash to its name; the next [`Store::recover`] quarantines it). Returns which chunk,
    /// or `None` when there is no intact chunk or the backend has no chunks of its own.
    fn corrupt_one(&self) -> Result<Option<ChunkHash>, StoreError> {
        Ok(None)
    }
}

impl Recovered {
    /// A full recovery turned into an index one: chunk records leave `durable` for
    /// `chunks`, by length. For stores whose chunks are in memory anyway.
    pub fn into_index(mut self) -> Recovered {
        let chunks = &mut self.chunks;
        self.durable.retain(|_, record| match record {
            Record::Chunk(c) => {
                chunks.insert(c.hash, chunk_len(c.bytes.len()));
                false
            }
            _ => true,
        });
        self
    }
}

/// Every chunk the committed catalog entries in `durable` name (those garbage collection
/// must keep).
pub fn referenced_chunks(durable: &DurableState) -> BTreeSet<ChunkHash> {
    durable
        .values()
        .filter_map(|r| match r {
            Record::Entry(e) => Some(e.manifest.chunks.iter().map(|c| c.hash)),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Start-up, right after recovery: remove from `store` every chunk no committed entry in
/// `recovered` names (a publish or a sync whose commit never happened: a crash between the
/// chunk writes and the commit, or a discard that could not finish), and drop them from
/// `recovered` too, so the logic never holds or serves them. Returns what was removed; on
/// `Err` (a file that could not be removed) `recovered` is trimmed all the same and the
/// caller may go on: the files left are named by nothing and collected at the next start.
pub fn collect_garbage(
    store: &dyn Store,
    recovered: &mut Recovered,
) -> Result<Garbage, StoreError> {
    let keep = referenced_chunks(&recovered.durable);
    // Dropped from the recovered state whether or not their files go: nothing committed
    // names them, so the logic has no use for them.
    recovered
        .durable
        .retain(|k, _| !matches!(k, Key::Chunk(h) if !keep.contains(h)));
    recovered.chunks.retain(|h, _| keep.contains(h));
    store.collect_garbage(&keep)
}

/// A verified chunk's length as the logic counts it. Chunks are cut by the publisher far
/// below 4 GiB; a longer one is a broken invariant, not a disk error.
/// The results up to and including the first error (the rest are not computed).
pub fn until_failed(
    results: impl Iterator<Item = Result<(), StoreError>>,
) -> Vec<Result<(), StoreError>> {
    let mut out = Vec::new();
    for r in results {
        let failed = r.is_err();
        out.push(r);
        if failed {
            break;
        }
    }
    out
}

pub(crate) fn chunk_len(len: usize) -> u32 {
    u32::try_from(len).unwrap_or_else(|_| panic!("a chunk of {len} bytes exceeds u32"))
}

/// The boundary check every store makes before it keeps a chunk: bytes that do not hash
/// to `hash` are refused (they would be quarantined at the next start anyway).
pub(crate) fn refuse_unless_chunk(hash: &ChunkHash, bytes: &[u8]) -> Result<(), StoreError> {
    if sovereign_logic::content::verify_chunk(hash, bytes) {
        return Ok(());
    }
    Err(StoreError::Corrupt {
        kind: "chunk".into(),
        name: hash.to_hex(),
        reason: format!(
            "refusing to store {} bytes that do not hash to their name",
            bytes.len()
        ),
    })
}

/// Shorthand for an [`StoreError::Io`] naming what was done to which path.
pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
    let what = what.into();
    move |source| StoreError::Io { what, source }
}

/// Lock a std mutex, going on after a panic elsewhere poisoned it: the guarded values
/// (staged change lists, fault switches, the in-memory disk) are updated in single steps
/// that a panic cannot leave half done.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
