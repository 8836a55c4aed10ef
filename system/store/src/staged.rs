//! What the SQLite and PostgreSQL stores share: record changes staged in memory until
//! fsync (chunks go straight to the [`ChunkDir`]), and start-up recovery from rows. A
//! backend implements [`StagedBackend`] (its two database steps) and gets the whole
//! [`Store`] from the blanket impl here.
//!
//! A failed fsync discards: the staged changes are dropped and the chunk files created
//! since the last commit are removed ([`ChunkDir::discard_fresh`]). The logic was told that
//! none of those writes is durable — it answers the device "retry", writes the entry
//! again, fetches the chunk again — so no later fsync may commit them behind its back.
//! (Keeping them staged for the next fsync to "retry" is how an operation answered 503 used
//! to be stored anyway by the next device's fsync, and forwarded after a restart.)
//!
//! Map: [`Staged`], [`StagedBackend`] (and its [`Store`] impl), [`stage_write`],
//! [`stage_delete`], [`decode_row`], [`recovered`] (full start-up, chunk bytes in memory),
//! [`recovered_index`] (chunk lengths only).
//!
//! Not covered: applying the staged changes (each backend's own SQL).

use std::sync::Mutex;

use bytes::Bytes;
use sovereign_logic::content::ChunkHash;
use sovereign_logic::io::{Key, Record};
use sovereign_wire::{decode_record, encode_record, key_kind, key_name};

use crate::chunks::Garbage;
use crate::{ChunkStore, Recovered, Store, StoreError, lock};

/// Record rows as stored: `(kind, name, value)`.
pub(crate) type Rows = Vec<(String, String, Vec<u8>)>;

/// A record change waiting for the next fsync.
#[derive(Debug, Clone)]
pub(crate) enum Staged {
    /// Insert or replace `(kind, name)` with `value`.
    Put {
        kind: &'static str,
        name: String,
        value: Vec<u8>,
    },
    /// Remove `(kind, name)`.
    Delete { kind: &'static str, name: String },
}

/// A store with chunks in a [`ChunkDir`] and record changes staged until fsync: it
/// supplies its parts and its two database steps, the blanket impl below is its [`Store`].
pub(crate) trait StagedBackend: Send + Sync {
    /// The chunk directory.
    fn chunks(&self) -> &ChunkStore;
    /// Record changes since the last successful fsync, in order.
    fn staged(&self) -> &Mutex<Vec<Staged>>;
    /// Apply `ops` in order in one transaction and commit it. On an error the caller
    /// discards them (the transaction must not be left open: it is rolled back, or was
    /// never begun). Whether a failed commit reached the disk anyway cannot always be
    /// known (an fsync error after the WAL write, a reply lost with the connection): the
    /// server answers such a failure as "outcome unknown".
    fn commit_staged(&self, ops: &[Staged]) -> Result<(), StoreError>;
    /// Every record row, ordered by kind and name.
    fn load_rows(&self) -> Result<Rows, StoreError>;
}

impl<T: StagedBackend> Store for T {
    fn write(&self, record: &Record) -> Result<(), StoreError> {
        stage_write(self.chunks(), self.staged(), record)
    }

    fn write_many(&self, records: &[Record]) -> Vec<Result<(), StoreError>> {
        stage_write_many(self.chunks(), self.staged(), records)
    }

    fn delete(&self, key: &Key) -> Result<(), StoreError> {
        stage_delete(self.chunks(), self.staged(), key)
    }

    fn fsync(&self) -> Result<(), StoreError> {
        // Held across the commit: a write racing this fsync is either in it or staged
        // after it, never lost in between.
        let mut staged = lock(self.staged());
        // Chunks first: a committed entry must not name a chunk whose rename could
        // still vanish.
        let result = match self.chunks().sync() {
            Ok(()) if staged.is_empty() => Ok(()),
            Ok(()) => self.commit_staged(&staged),
            Err(e) => Err(e),
        };
        staged.clear();
        match result {
            Ok(()) => self.chunks().committed(),
            // A fresh chunk file left behind is garbage the next start collects: not
            // named by any committed record, it is never part of a recovered state.
            Err(_) => {
                let _ = self.chunks().discard_fresh();
            }
        }
        result
    }

    fn discard(&self) -> Result<(), StoreError> {
        let mut staged = lock(self.staged());
        staged.clear();
        self.chunks().discard_fresh().map(|_| ())
    }

    fn collect_garbage(
        &self,
        keep: &std::collections::BTreeSet<ChunkHash>,
    ) -> Result<Garbage, StoreError> {
        self.chunks().collect_garbage(keep)
    }

    fn recover(&self) -> Result<Recovered, StoreError> {
        recovered(self.chunks(), self.load_rows()?)
    }

    fn recover_index(&self) -> Result<Recovered, StoreError> {
        recovered_index(self.chunks(), self.load_rows()?)
    }

    fn chunk(&self, hash: &ChunkHash) -> Result<Option<Bytes>, StoreError> {
        self.chunks().get(hash)
    }

    fn corrupt_one(&self) -> Result<Option<ChunkHash>, StoreError> {
        self.chunks().corrupt_one()
    }
}

/// Stage `record`: a chunk goes to `chunks` at once, anything else onto `staged`.
pub(crate) fn stage_write(
    chunks: &ChunkStore,
    staged: &Mutex<Vec<Staged>>,
    record: &Record,
) -> Result<(), StoreError> {
    match record {
        Record::Chunk(c) => chunks.put(&c.hash, &c.bytes),
        other => {
            let key = other.key();
            let Some(value) = encode_record(other) else {
                unreachable!("encode_record encodes every record but chunks");
            };
            lock(staged).push(Staged::Put {
                kind: key_kind(&key),
                name: key_name(&key),
                value,
            });
            Ok(())
        }
    }
}

/// [`Store::write_many`] for the staged stores: the chunks written together
/// ([`ChunkDir::put_many`]), the other records staged in order, up to the first failure
/// in the records' order (nothing after it is staged; chunks after it may have been
/// put, and go with the caller's discard).
pub(crate) fn stage_write_many(
    chunks: &ChunkStore,
    staged: &Mutex<Vec<Staged>>,
    records: &[Record],
) -> Vec<Result<(), StoreError>> {
    let batch: Vec<(ChunkHash, &[u8])> = (records.iter())
        .filter_map(|r| match r {
            Record::Chunk(c) => Some((c.hash, &c.bytes[..])),
            _ => None,
        })
        .collect();
    let mut written = chunks.put_many(&batch).into_iter();
    crate::until_failed(records.iter().map(|r| {
        match r {
            Record::Chunk(_) => written
                .next()
                .unwrap_or_else(|| unreachable!("one result per chunk put")),
            other => stage_write(chunks, staged, other),
        }
    }))
}

/// Stage the removal of `key` (a chunk is removed from `chunks` at once).
pub(crate) fn stage_delete(
    chunks: &ChunkStore,
    staged: &Mutex<Vec<Staged>>,
    key: &Key,
) -> Result<(), StoreError> {
    match key {
        Key::Chunk(h) => chunks.delete(h),
        other => {
            lock(staged).push(Staged::Delete {
                kind: key_kind(other),
                name: key_name(other),
            });
            Ok(())
        }
    }
}

/// Decode one stored row, checking that it lives under its own key.
pub(crate) fn decode_row(kind: &str, name: &str, value: &[u8]) -> Result<Record, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        kind: kind.to_string(),
        name: name.to_string(),
        reason,
    };
    let record = decode_record(kind, value).map_err(|e| corrupt(e.to_string()))?;
    let key = record.key();
    if key_kind(&key) != kind || key_name(&key) != name {
        return Err(corrupt(format!(
            "the record's own key is {}/{}",
            key_kind(&key),
            key_name(&key)
        )));
    }
    Ok(record)
}

/// Start-up for the ChunkDir-backed stores: scan the chunks, then add the decoded rows.
pub(crate) fn recovered(chunks: &ChunkStore, rows: Rows) -> Result<Recovered, StoreError> {
    let scan = chunks.scan()?;
    let mut out = Recovered {
        quarantined: scan.quarantined,
        warnings: scan.warnings,
        ..Recovered::default()
    };
    for c in scan.chunks {
        out.durable.insert(Key::Chunk(c.hash), Record::Chunk(c));
    }
    add_rows(out, rows)
}

/// [`recovered`] with the chunks as lengths ([`ChunkDir::scan_index`]), not records.
pub(crate) fn recovered_index(chunks: &ChunkStore, rows: Rows) -> Result<Recovered, StoreError> {
    let scan = chunks.scan_index()?;
    let out = Recovered {
        chunks: scan.lengths,
        quarantined: scan.quarantined,
        warnings: scan.warnings,
        ..Recovered::default()
    };
    add_rows(out, rows)
}

/// Decode the record rows into `out.durable`.
fn add_rows(mut out: Recovered, rows: Rows) -> Result<Recovered, StoreError> {
    for (kind, name, value) in rows {
        let record = decode_row(&kind, &name, &value)?;
        out.durable.insert(record.key(), record);
    }
    Ok(out)
}
