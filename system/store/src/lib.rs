//! Durable storage for the real servers: the record store and the chunk store behind one
//! [`Store`] interface, honouring the logic's write/fsync contract (a write may be lost
//! by a crash until an fsync issued after it completes; an fsync that returns `Ok` made
//! every earlier write durable).
//!
//! Backends: SQLite (embedded default, WAL, `synchronous=FULL`), PostgreSQL (origin
//! catalog, apply log), in-memory with crash semantics (turmoil tests). Chunks live in a
//! content-addressed directory (temp file, fsync, rename, fsync the directory); S3 would
//! be another [`ChunkDir`]-like backend behind the same trait.

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

/// What start-up recovery found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Everything durable (chunks verified against their address).
    pub durable: DurableState,
    /// Chunks whose bytes failed verification, moved to the quarantine directory.
    pub quarantined: Vec<ChunkHash>,
}

/// A node's durable storage. Methods are synchronous and are called from inside a tokio
/// runtime's worker thread (the server's node task); implementations must not start a
/// runtime of their own on the caller's thread.
pub trait Store: Send + Sync {
    /// Stage a record (a chunk goes to the chunk store). Not durable until [`Store::fsync`].
    fn write(&self, record: &Record) -> Result<(), StoreError>;
    /// Stage the removal of a record. Not durable until [`Store::fsync`].
    fn delete(&self, key: &Key) -> Result<(), StoreError>;
    /// Make every earlier write and delete durable.
    fn fsync(&self) -> Result<(), StoreError>;
    /// Read back everything durable; verify chunks and quarantine the ones that fail.
    fn recover(&self) -> Result<Recovered, StoreError>;
    /// A stored chunk's bytes, unverified (the caller verifies before serving).
    fn chunk(&self, hash: &ChunkHash) -> Result<Option<Bytes>, StoreError>;
}
