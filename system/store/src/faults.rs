//! Injected storage faults for chaos tooling: a [`FaultyStore`] wraps any [`Store`] and
//! consults a shared [`Faults`] switchboard before each call.
//!
//! Faults (each on until cleared, unless said otherwise):
//! - fsync failure: the next N fsyncs fail ([`Faults::fail_fsyncs`]) or all of them
//!   ([`Faults::fail_fsyncs_until_cleared`]). A failed fsync commits nothing and discards
//!   what was staged ([`Store::discard`] on the inner store), as a real failed fsync does:
//!   a later successful fsync never commits it.
//! - write errors: writes and deletes fail (EIO-like).
//! - disk full: writes fail with an ENOSPC-like message; deletes still work (they free
//!   space).
//! - lying fsync: fsync answers `Ok` without making anything durable, as a disk with a
//!   volatile write cache that ignores flushes does. The planted bug behind the
//!   durability checks: whatever is acknowledged meanwhile is lost by a crash.
//! - slow disk: every call sleeps `delay` first (on the caller's thread, as a slow disk
//!   blocks it).
//! - corruption: [`Faults::corrupt_chunks`] asks for N chunks to be corrupted; the next
//!   call on the store flips a byte in N intact stored chunks ([`Store::corrupt_one`]);
//!   the next [`Store::recover`] (or [`Store::recover_index`]) quarantines them. Requests beyond the intact chunks stay
//!   pending until more chunks are stored.
//!
//! Failures are [`StoreError::Injected`], so logs and metrics can tell them from real ones.
//! [`Faults::snapshot`] describes what is active, serialisable for `GET /admin/faults`.
//!
//! Map: [`Faults`], [`FaultsSnapshot`], [`FaultyStore`].
//!
//! Not covered: read errors and torn writes (a crash in the middle of a call), which need
//! a backend's cooperation; the admin API's parsing of fault requests (the server's).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use sovereign_logic::content::ChunkHash;
use sovereign_logic::io::{Key, Record};
use sovereign_wire::{key_kind, key_name};

use crate::{Garbage, Recovered, Store, StoreError, lock};

/// How many corrupted chunk hashes the snapshot remembers (the most recent ones).
pub const CORRUPTED_LOG_MAX: usize = 64;

/// How many fsync failures or chunk corruptions one request may ask for.
pub const FAULT_COUNT_MAX: u32 = 1_000_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum FsyncFaults {
    #[default]
    Off,
    /// The next `n` fsyncs fail, then fsyncs work again.
    Next(u32),
    UntilCleared,
}

#[derive(Debug, Default)]
struct State {
    fsync: FsyncFaults,
    write_errors: bool,
    disk_full: bool,
    lying_fsync: bool,
    delay: Option<Duration>,
    corrupt_pending: u32,
    /// Most recent last, at most [`CORRUPTED_LOG_MAX`].
    corrupted: Vec<ChunkHash>,
    corrupt_error: Option<String>,
    injected_total: u64,
}

/// The shared switchboard: the admin API flips faults on and off, every [`FaultyStore`]
/// built with a clone of it obeys. Cheap to clone; all clones are one switchboard.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Mutex<State>>);

/// What is active, for `GET /admin/faults`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FaultsSnapshot {
    /// How many of the next fsyncs will fail (0 when off or when failing until cleared).
    pub fsync_fail_next: u32,
    /// Every fsync fails until the faults are cleared.
    pub fsync_fail_until_cleared: bool,
    /// Writes and deletes fail.
    pub write_errors: bool,
    /// Writes fail as on a full disk.
    pub disk_full: bool,
    /// Fsync answers Ok without making anything durable.
    pub lying_fsync: bool,
    /// Every call sleeps this long first (0: off).
    pub delay_ms: u64,
    /// Chunks still to corrupt at the next call.
    pub corrupt_pending: u32,
    /// The chunks corrupted so far (most recent last, at most [`CORRUPTED_LOG_MAX`]), hex.
    pub corrupted: Vec<String>,
    /// Why the last corruption attempt failed, if it did.
    pub corrupt_error: Option<String>,
    /// Calls failed on purpose since start.
    pub injected_total: u64,
}

impl FaultsSnapshot {
    /// Whether any fault is active or pending.
    pub fn any_active(&self) -> bool {
        self.fsync_fail_next > 0
            || self.fsync_fail_until_cleared
            || self.write_errors
            || self.disk_full
            || self.lying_fsync
            || self.delay_ms > 0
            || self.corrupt_pending > 0
    }
}

impl Faults {
    /// A switchboard with every fault off.
    pub fn new() -> Faults {
        Faults::default()
    }

    /// Fsync answers `Ok` without reaching the inner store (a lying disk).
    pub fn set_lying_fsync(&self, on: bool) {
        lock(&self.0).lying_fsync = on;
    }

    /// The next `n` fsyncs fail (replacing any earlier fsync fault; capped at
    /// [`FAULT_COUNT_MAX`]).
    pub fn fail_fsyncs(&self, n: u32) {
        let n = n.min(FAULT_COUNT_MAX);
        lock(&self.0).fsync = if n == 0 {
            FsyncFaults::Off
        } else {
            FsyncFaults::Next(n)
        };
    }

    /// Every fsync fails until [`Faults::clear`].
    pub fn fail_fsyncs_until_cleared(&self) {
        lock(&self.0).fsync = FsyncFaults::UntilCleared;
    }

    /// Writes and deletes fail (or work again).
    pub fn set_write_errors(&self, on: bool) {
        lock(&self.0).write_errors = on;
    }

    /// Writes fail as on a full disk (or work again).
    pub fn set_disk_full(&self, on: bool) {
        lock(&self.0).disk_full = on;
    }

    /// Every call sleeps `delay` first; `None` or zero turns it off.
    pub fn set_delay(&self, delay: Option<Duration>) {
        lock(&self.0).delay = delay.filter(|d| !d.is_zero());
    }

    /// Corrupt `n` more stored chunks at the next call (capped at [`FAULT_COUNT_MAX`]
    /// pending).
    pub fn corrupt_chunks(&self, n: u32) {
        let mut s = lock(&self.0);
        s.corrupt_pending = s.corrupt_pending.saturating_add(n).min(FAULT_COUNT_MAX);
    }

    /// Turn every fault off and drop pending corruption (the log of corrupted chunks and
    /// the injected count stay: they are history, not faults).
    pub fn clear(&self) {
        let mut s = lock(&self.0);
        s.fsync = FsyncFaults::Off;
        s.write_errors = false;
        s.disk_full = false;
        s.lying_fsync = false;
        s.delay = None;
        s.corrupt_pending = 0;
        s.corrupt_error = None;
    }

    /// What is active now.
    pub fn snapshot(&self) -> FaultsSnapshot {
        let s = lock(&self.0);
        let (fsync_fail_next, fsync_fail_until_cleared) = match s.fsync {
            FsyncFaults::Off => (0, false),
            FsyncFaults::Next(n) => (n, false),
            FsyncFaults::UntilCleared => (0, true),
        };
        FaultsSnapshot {
            fsync_fail_next,
            fsync_fail_until_cleared,
            write_errors: s.write_errors,
            disk_full: s.disk_full,
            lying_fsync: s.lying_fsync,
            delay_ms: s
                .delay
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            corrupt_pending: s.corrupt_pending,
            corrupted: s.corrupted.iter().map(ChunkHash::to_hex).collect(),
            corrupt_error: s.corrupt_error.clone(),
            injected_total: s.injected_total,
        }
    }

    fn injected(&self, s: &mut State, message: String) -> StoreError {
        s.injected_total += 1;
        StoreError::Injected(message)
    }
}

/// A [`Store`] whose calls fail, slow down or corrupt chunks as its [`Faults`] say.
#[derive(Debug)]
pub struct FaultyStore<S: Store> {
    inner: S,
    faults: Faults,
}

impl<S: Store> FaultyStore<S> {
    /// Wrap `inner`, obeying `faults`.
    pub fn new(inner: S, faults: Faults) -> FaultyStore<S> {
        FaultyStore { inner, faults }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The switchboard.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Apply pending corruption now (every call does this first). Returns the chunks
    /// corrupted by this call.
    pub fn apply_corruption(&self) -> Vec<ChunkHash> {
        let pending = lock(&self.faults.0).corrupt_pending;
        let mut done = Vec::new();
        let mut error = None;
        for _ in 0..pending {
            match self.inner.corrupt_one() {
                Ok(Some(h)) => done.push(h),
                Ok(None) => break,
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        if !done.is_empty() || error.is_some() {
            let mut s = lock(&self.faults.0);
            let n = u32::try_from(done.len()).unwrap_or(u32::MAX);
            s.corrupt_pending = s.corrupt_pending.saturating_sub(n);
            s.corrupted.extend(done.iter().copied());
            let excess = s.corrupted.len().saturating_sub(CORRUPTED_LOG_MAX);
            s.corrupted.drain(..excess);
            s.corrupt_error = error;
        }
        done
    }

    /// What every call does first: sleep if the disk is slow, apply pending corruption.
    fn before(&self) {
        let delay = lock(&self.faults.0).delay;
        if let Some(d) = delay {
            // Not under the lock: other stores (and the admin API) keep working.
            std::thread::sleep(d);
        }
        if lock(&self.faults.0).corrupt_pending > 0 {
            self.apply_corruption();
        }
    }
}

impl<S: Store> Store for FaultyStore<S> {
    fn write(&self, record: &Record) -> Result<(), StoreError> {
        self.before();
        {
            let mut s = lock(&self.faults.0);
            if s.write_errors || s.disk_full {
                let key = record.key();
                let what = format!("{}/{}", key_kind(&key), key_name(&key));
                let message = if s.disk_full {
                    format!("disk full (ENOSPC, no space left on device) writing {what}")
                } else {
                    format!("write error (EIO) writing {what}")
                };
                return Err(self.faults.injected(&mut s, message));
            }
        }
        self.inner.write(record)
    }

    fn write_many(&self, records: &[Record]) -> Vec<Result<(), StoreError>> {
        let quiet = {
            let s = lock(&self.faults.0);
            s.delay.is_none() && s.corrupt_pending == 0 && !s.write_errors && !s.disk_full
        };
        match quiet {
            true => self.inner.write_many(records),
            // Each write meets the faults as it would alone.
            false => crate::until_failed(records.iter().map(|r| self.write(r))),
        }
    }

    fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.before();
        {
            let mut s = lock(&self.faults.0);
            if s.write_errors {
                let message = format!(
                    "write error (EIO) deleting {}/{}",
                    key_kind(key),
                    key_name(key)
                );
                return Err(self.faults.injected(&mut s, message));
            }
        }
        self.inner.delete(key)
    }

    fn fsync(&self) -> Result<(), StoreError> {
        self.before();
        {
            let mut s = lock(&self.faults.0);
            let fail = match s.fsync {
                FsyncFaults::Off => false,
                FsyncFaults::Next(n) => {
                    s.fsync = if n <= 1 {
                        FsyncFaults::Off
                    } else {
                        FsyncFaults::Next(n - 1)
                    };
                    true
                }
                FsyncFaults::UntilCleared => true,
            };
            if fail {
                let err = self.faults.injected(&mut s, "fsync failed (EIO)".into());
                drop(s);
                // As a real failed fsync: nothing staged survives it. A chunk file the
                // discard cannot remove is garbage for the next start.
                let _ = self.inner.discard();
                return Err(err);
            }
            if s.lying_fsync {
                s.injected_total += 1;
                return Ok(());
            }
        }
        self.inner.fsync()
    }

    fn discard(&self) -> Result<(), StoreError> {
        self.inner.discard()
    }

    fn collect_garbage(&self, keep: &BTreeSet<ChunkHash>) -> Result<Garbage, StoreError> {
        self.before();
        self.inner.collect_garbage(keep)
    }

    fn recover(&self) -> Result<Recovered, StoreError> {
        self.before();
        self.inner.recover()
    }

    fn recover_index(&self) -> Result<Recovered, StoreError> {
        self.before();
        self.inner.recover_index()
    }

    fn chunk(&self, hash: &ChunkHash) -> Result<Option<Bytes>, StoreError> {
        self.before();
        self.inner.chunk(hash)
    }

    fn corrupt_one(&self) -> Result<Option<ChunkHash>, StoreError> {
        self.inner.corrupt_one()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{chunk, entry, outbox};
    use crate::{MemDisk, MemStore, SqliteStore};

    fn mem() -> (MemDisk, Faults, FaultyStore<MemStore>) {
        let disk = MemDisk::new();
        let faults = Faults::new();
        let store = FaultyStore::new(MemStore::new(disk.clone()), faults.clone());
        (disk, faults, store)
    }

    fn injected(r: Result<impl std::fmt::Debug, StoreError>) -> String {
        match r {
            Err(StoreError::Injected(m)) => m,
            other => panic!("expected an injected fault, got {other:?}"),
        }
    }

    #[test]
    fn the_next_n_fsyncs_fail_and_discard_what_they_covered() {
        // Goal: an injected fsync failure commits nothing and leaves nothing staged for a
        // later fsync: the logic was told those writes are not durable.
        let (disk, faults, s) = mem();
        s.write(&entry("a", 1)).unwrap();
        faults.fail_fsyncs(2);
        assert_eq!(faults.snapshot().fsync_fail_next, 2);
        injected(s.fsync());
        assert!(
            disk.durable().is_empty(),
            "a failed fsync made changes durable"
        );
        assert_eq!(
            disk.staged_len(),
            0,
            "a failed fsync kept its changes staged"
        );
        s.write(&outbox("7:1")).unwrap();
        injected(s.fsync());
        s.write(&outbox("7:2")).unwrap();
        s.fsync().unwrap();
        assert_eq!(
            disk.durable().into_values().collect::<Vec<_>>(),
            vec![outbox("7:2")],
            "only what the successful fsync covered"
        );
        assert_eq!(faults.snapshot().injected_total, 2);
        assert!(!faults.snapshot().any_active());
    }

    #[test]
    fn a_lying_fsync_answers_ok_and_keeps_nothing() {
        let (disk, faults, s) = mem();
        faults.set_lying_fsync(true);
        s.write(&outbox("7:1")).unwrap();
        s.fsync().unwrap();
        assert!(faults.snapshot().lying_fsync);
        disk.crash();
        assert!(disk.durable().is_empty(), "the lie lost the write");
        faults.clear();
        s.write(&outbox("7:2")).unwrap();
        s.fsync().unwrap();
        assert_eq!(disk.durable().len(), 1);
    }

    #[test]
    fn fsyncs_fail_until_cleared() {
        let (disk, faults, s) = mem();
        faults.fail_fsyncs_until_cleared();
        for i in 0..5 {
            s.write(&outbox(&format!("7:{i}"))).unwrap();
            injected(s.fsync());
        }
        assert!(faults.snapshot().fsync_fail_until_cleared);
        faults.clear();
        s.fsync().unwrap();
        assert!(
            disk.durable().is_empty(),
            "a failed fsync's writes landed later"
        );
        s.write(&outbox("7:9")).unwrap();
        s.fsync().unwrap();
        assert_eq!(disk.durable().len(), 1);
    }

    #[test]
    fn write_errors_fail_writes_and_deletes_until_cleared() {
        let (disk, faults, s) = mem();
        faults.set_write_errors(true);
        let msg = injected(s.write(&entry("a", 1)));
        assert!(msg.contains("EIO") && msg.contains("entry/a"), "{msg}");
        injected(s.delete(&entry("a", 1).key()));
        s.fsync().unwrap(); // fsync is not a write
        assert_eq!(disk.staged_len(), 0);
        faults.set_write_errors(false);
        s.write(&entry("a", 1)).unwrap();
        s.delete(&entry("a", 1).key()).unwrap();
        assert_eq!(disk.staged_len(), 2);
    }

    #[test]
    fn a_full_disk_refuses_writes_but_not_deletes() {
        let (disk, faults, s) = mem();
        s.write(&chunk(1)).unwrap();
        s.fsync().unwrap();
        faults.set_disk_full(true);
        assert!(faults.snapshot().disk_full);
        let msg = injected(s.write(&chunk(2)));
        assert!(msg.contains("ENOSPC") && msg.contains("chunk/"), "{msg}");
        s.delete(&chunk(1).key()).unwrap();
        s.fsync().unwrap();
        assert!(disk.durable().is_empty());
        faults.clear();
        s.write(&chunk(2)).unwrap();
    }

    #[test]
    fn a_slow_disk_delays_every_call() {
        let (_, faults, s) = mem();
        let delay = Duration::from_millis(60);
        faults.set_delay(Some(delay));
        assert_eq!(faults.snapshot().delay_ms, 60);
        let three_calls = |s: &FaultyStore<MemStore>| {
            let started = std::time::Instant::now();
            s.write(&entry("a", 1)).unwrap();
            s.fsync().unwrap();
            s.recover().unwrap();
            started.elapsed()
        };
        let slow = three_calls(&s);
        assert!(slow >= delay * 3, "{slow:?}");
        faults.set_delay(None);
        let fast = three_calls(&s);
        // Generous: a loaded CI machine must not make the undelayed calls look slow.
        assert!(fast < delay * 3, "{fast:?}");
    }

    #[test]
    fn corruption_hits_stored_chunk_files_and_recovery_quarantines_them() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Faults::new();
        let s = FaultyStore::new(SqliteStore::open(dir.path()).unwrap(), faults.clone());
        for i in 0..4 {
            s.write(&chunk(i)).unwrap();
        }
        s.fsync().unwrap();
        faults.corrupt_chunks(2);
        assert_eq!(faults.snapshot().corrupt_pending, 2);
        let rec = s.recover().unwrap();
        let snap = faults.snapshot();
        assert_eq!(snap.corrupt_pending, 0);
        assert_eq!(snap.corrupted.len(), 2);
        let mut q: Vec<String> = rec.quarantined.iter().map(ChunkHash::to_hex).collect();
        q.sort();
        let mut want = snap.corrupted.clone();
        want.sort();
        assert_eq!(q, want);
        assert_eq!(rec.durable.len(), 2);
        // Nothing pending: the next recovery quarantines nothing more.
        assert!(s.recover().unwrap().quarantined.is_empty());
    }

    #[test]
    fn index_recovery_goes_to_the_inner_store_and_quarantines() {
        // Goal: the wrapper forwards the lean start-up (lengths, no chunk records) and
        // corruption it injected is quarantined by it.
        let dir = tempfile::tempdir().unwrap();
        let faults = Faults::new();
        let s = FaultyStore::new(SqliteStore::open(dir.path()).unwrap(), faults.clone());
        for i in 0..3 {
            s.write(&chunk(i)).unwrap();
        }
        s.write(&entry("a", 1)).unwrap();
        s.fsync().unwrap();
        faults.corrupt_chunks(1);
        let rec = s.recover_index().unwrap();
        assert_eq!(rec.quarantined.len(), 1);
        assert_eq!(
            faults.snapshot().corrupted,
            vec![rec.quarantined[0].to_hex()]
        );
        assert_eq!(rec.chunks.len(), 2);
        assert_eq!(rec.durable.len(), 1, "the entry, no chunk records");
    }

    #[test]
    fn corruption_beyond_the_stored_chunks_waits_for_more() {
        let (disk, faults, s) = mem();
        s.write(&chunk(1)).unwrap();
        s.fsync().unwrap();
        faults.corrupt_chunks(2);
        assert_eq!(s.apply_corruption().len(), 1);
        assert_eq!(faults.snapshot().corrupt_pending, 1);
        s.write(&chunk(2)).unwrap();
        s.fsync().unwrap(); // the chunk becomes durable here, the next call corrupts it
        s.recover().unwrap();
        assert_eq!(disk.quarantined().len(), 2);
        assert_eq!(faults.snapshot().corrupt_pending, 0);
        s.write(&chunk(3)).unwrap();
        s.fsync().unwrap();
        faults.corrupt_chunks(1);
        faults.clear();
        assert!(
            s.apply_corruption().is_empty(),
            "clear drops pending corruption"
        );
        assert!(s.recover().unwrap().quarantined.is_empty());
    }

    #[test]
    fn the_snapshot_serialises_for_the_admin_api() {
        let faults = Faults::new();
        faults.set_disk_full(true);
        faults.fail_fsyncs(3);
        let json = serde_json::to_value(faults.snapshot()).unwrap();
        assert_eq!(json["disk_full"], true);
        assert_eq!(json["fsync_fail_next"], 3);
        assert_eq!(json["write_errors"], false);
        assert!(json["corrupted"].as_array().unwrap().is_empty());
        faults.clear();
        assert!(!faults.snapshot().any_active());
    }
}
