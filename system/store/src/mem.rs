//! An in-memory store with crash semantics, for turmoil tests of the real servers.
//!
//! A [`MemDisk`] is the simulated disk of one host: durable records plus the writes and
//! deletes staged since the last fsync, kept by the model every simulated disk shares
//! (`sovereign_logic::io::DiskModel`). It outlives the host's process; the test keeps a
//! clone, and after [`MemDisk::crash`] (what `kill -9` does: staged changes vanish) builds
//! a new [`MemStore`] on it for the restarted host, whose [`Store::recover`] sees exactly
//! what was fsynced.
//!
//! Chunks behave like the file-backed stores' from the outside: [`Store::chunk`] sees a
//! written chunk at once, recovery verifies every durable chunk and moves failures to the
//! disk's quarantine. Its own fsync never fails; [`Store::discard`] (what a failed fsync
//! of a wrapping [`crate::FaultyStore`] does) drops the staged changes, chunks included.
//!
//! Map: [`MemDisk`] (`crash`, `durable`, `staged_len`, `quarantined`), [`MemStore`].
//!
//! Not covered: torn or partially flushed writes (a crash keeps none of the staged ops,
//! never some of them), I/O latency, errors (wrap it in a [`crate::FaultyStore`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use sovereign_logic::content::{Chunk, ChunkHash, verify_chunk};
use sovereign_logic::io::{DiskModel, DurableState, Key, Record};

use crate::{Garbage, Recovered, Store, StoreError, lock};

#[derive(Debug, Default)]
struct DiskState {
    /// Durable records and the changes staged since the last fsync.
    writes: DiskModel<Record>,
    /// Chunks that failed verification at recovery, with their bytes.
    quarantine: BTreeMap<ChunkHash, Bytes>,
}

/// A simulated disk, shared between a host's successive [`MemStore`]s and the test
/// (cheap to clone: all clones are one disk).
#[derive(Debug, Clone, Default)]
pub struct MemDisk(Arc<Mutex<DiskState>>);

impl MemDisk {
    /// An empty disk.
    pub fn new() -> MemDisk {
        MemDisk::default()
    }

    /// The process died: every change not yet fsynced is gone.
    pub fn crash(&self) {
        lock(&self.0).writes.crash();
    }

    /// What is durable now (a copy).
    pub fn durable(&self) -> DurableState {
        lock(&self.0).writes.durable().clone()
    }

    /// How many changes await an fsync.
    pub fn staged_len(&self) -> usize {
        lock(&self.0).writes.pending_len()
    }

    /// The chunks quarantined by recoveries so far.
    pub fn quarantined(&self) -> Vec<ChunkHash> {
        lock(&self.0).quarantine.keys().copied().collect()
    }
}

/// A [`Store`] on a [`MemDisk`].
#[derive(Debug, Clone)]
pub struct MemStore {
    disk: MemDisk,
}

impl MemStore {
    /// A store on `disk` (a fresh one, or one that survived a crash).
    pub fn new(disk: MemDisk) -> MemStore {
        MemStore { disk }
    }

    /// The disk under this store.
    pub fn disk(&self) -> &MemDisk {
        &self.disk
    }
}

impl Store for MemStore {
    fn write(&self, record: &Record) -> Result<(), StoreError> {
        if let Record::Chunk(c) = record {
            // The same boundary check as the chunk directory's and the packs'.
            crate::refuse_unless_chunk(&c.hash, &c.bytes)?;
        }
        lock(&self.disk.0)
            .writes
            .write(record.key(), record.clone());
        Ok(())
    }

    fn delete(&self, key: &Key) -> Result<(), StoreError> {
        lock(&self.disk.0).writes.delete(key.clone());
        Ok(())
    }

    fn fsync(&self) -> Result<(), StoreError> {
        let writes = &mut lock(&self.disk.0).writes;
        writes.sync(writes.issued());
        Ok(())
    }

    fn discard(&self) -> Result<(), StoreError> {
        let writes = &mut lock(&self.disk.0).writes;
        writes.lose(writes.issued());
        Ok(())
    }

    fn collect_garbage(&self, keep: &BTreeSet<ChunkHash>) -> Result<Garbage, StoreError> {
        let mut d = lock(&self.disk.0);
        let mut garbage = Garbage::default();
        d.writes.durable_mut().retain(|_, r| match r {
            Record::Chunk(c) if !keep.contains(&c.hash) => {
                garbage.chunks += 1;
                garbage.bytes += c.bytes.len() as u64;
                false
            }
            _ => true,
        });
        Ok(garbage)
    }

    /// The durable state only (at start-up nothing is staged; a running store's staged
    /// changes are not durable and so not part of it).
    fn recover(&self) -> Result<Recovered, StoreError> {
        let mut d = lock(&self.disk.0);
        let bad: Vec<(ChunkHash, Bytes)> = d
            .writes
            .durable()
            .values()
            .filter_map(|r| match r {
                Record::Chunk(c) if !verify_chunk(&c.hash, &c.bytes) => {
                    Some((c.hash, c.bytes.clone()))
                }
                _ => None,
            })
            .collect();
        let mut quarantined = Vec::with_capacity(bad.len());
        for (hash, bytes) in bad {
            d.writes.durable_mut().remove(&Key::Chunk(hash));
            d.quarantine.insert(hash, bytes);
            quarantined.push(hash);
        }
        Ok(Recovered {
            durable: d.writes.durable().clone(),
            quarantined,
            ..Recovered::default()
        })
    }

    /// [`MemStore::recover`] with the chunks as lengths: the disk holds every chunk in
    /// memory anyway, only the copy handed over is lean.
    fn recover_index(&self) -> Result<Recovered, StoreError> {
        Ok(self.recover()?.into_index())
    }

    fn chunk(&self, hash: &ChunkHash) -> Result<Option<Bytes>, StoreError> {
        // The latest staged change to this chunk wins, as with files renamed at once.
        Ok(match lock(&self.disk.0).writes.read(&Key::Chunk(*hash)) {
            Some(Record::Chunk(c)) => Some(c.bytes.clone()),
            _ => None,
        })
    }

    /// Flips a byte of the first durable chunk (in hash order) that still verifies.
    fn corrupt_one(&self) -> Result<Option<ChunkHash>, StoreError> {
        let mut d = lock(&self.disk.0);
        let target = d.writes.durable().values().find_map(|r| match r {
            Record::Chunk(c) if !c.bytes.is_empty() && verify_chunk(&c.hash, &c.bytes) => {
                Some(c.clone())
            }
            _ => None,
        });
        let Some(c) = target else {
            return Ok(None);
        };
        let mut bytes = c.bytes.to_vec();
        let at = bytes.len() / 2;
        bytes[at] ^= 0xff;
        d.writes.durable_mut().insert(
            Key::Chunk(c.hash),
            Record::Chunk(Chunk {
                hash: c.hash,
                bytes: Bytes::from(bytes),
            }),
        );
        Ok(Some(c.hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{applied, chunk, entry, outbox};

    #[test]
    fn a_crash_drops_exactly_the_unsynced_changes() {
        let disk = MemDisk::new();
        let s = MemStore::new(disk.clone());
        s.write(&entry("a", 1)).unwrap();
        s.write(&outbox("7:1")).unwrap();
        s.fsync().unwrap();
        s.write(&applied("7:2")).unwrap();
        s.delete(&entry("a", 1).key()).unwrap();
        assert_eq!(disk.staged_len(), 2);
        disk.crash();
        let got = MemStore::new(disk.clone()).recover().unwrap().durable;
        assert_eq!(
            got.values().cloned().collect::<Vec<_>>(),
            vec![entry("a", 1), outbox("7:1")]
        );
        // After the restart, the same changes with an fsync stick, in order.
        let s = MemStore::new(disk.clone());
        s.write(&applied("7:2")).unwrap();
        s.delete(&entry("a", 1).key()).unwrap();
        s.write(&entry("a", 2)).unwrap();
        s.fsync().unwrap();
        disk.crash();
        let got = MemStore::new(disk).recover().unwrap().durable;
        assert_eq!(
            got.values().cloned().collect::<Vec<_>>(),
            vec![entry("a", 2), outbox("7:1"), applied("7:2")]
        );
    }

    #[test]
    fn chunks_are_readable_at_once_and_durable_at_fsync() {
        let disk = MemDisk::new();
        let s = MemStore::new(disk.clone());
        let Record::Chunk(c) = chunk(1) else {
            unreachable!()
        };
        s.write(&chunk(1)).unwrap();
        assert_eq!(s.chunk(&c.hash).unwrap(), Some(c.bytes.clone()));
        disk.crash();
        assert_eq!(
            s.chunk(&c.hash).unwrap(),
            None,
            "an unsynced chunk survived a crash"
        );
        s.write(&chunk(1)).unwrap();
        s.fsync().unwrap();
        s.delete(&chunk(1).key()).unwrap();
        assert_eq!(
            s.chunk(&c.hash).unwrap(),
            None,
            "a staged delete is visible at once"
        );
        disk.crash();
        assert_eq!(s.chunk(&c.hash).unwrap(), Some(c.bytes));
    }

    #[test]
    fn recovery_quarantines_corrupted_chunks() {
        let disk = MemDisk::new();
        let s = MemStore::new(disk.clone());
        for i in 0..3 {
            s.write(&chunk(i)).unwrap();
        }
        s.fsync().unwrap();
        let bad = s.corrupt_one().unwrap().unwrap();
        let rec = MemStore::new(disk.clone()).recover().unwrap();
        assert_eq!(rec.quarantined, vec![bad]);
        assert_eq!(rec.durable.len(), 2);
        assert!(!rec.durable.contains_key(&Key::Chunk(bad)));
        assert_eq!(disk.quarantined(), vec![bad]);
        // A bad chunk is refused at the door as well.
        let Record::Chunk(mut c) = chunk(9) else {
            unreachable!()
        };
        c.bytes = Bytes::from_static(b"not it");
        assert!(matches!(
            s.write(&Record::Chunk(c)),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
