//! Storage health of a real server: what readiness, `/admin/status` and the metrics say
//! about the disk, so that a store that cannot keep anything is visible to monitoring
//! (and not only through a task's restart count).
//!
//! Every call on the node's store goes through an [`ObservedStore`], which reports its
//! outcome to the server's [`StorageHealth`]: errors are counted per operation
//! (`sovereign_storage_errors_total{op=write|fsync|delete|read}`), and an operation whose
//! last outcome was an error less than [`STORAGE_ERROR_WINDOW`] ago, with no success of
//! the same operation since, is *failing*. The free space of the data directory's file
//! system (`statvfs`, the space an unprivileged writer may use) is read at every scrape
//! and readiness check (`sovereign_storage_free_bytes`). [`StorageHealth::reasons`] turns
//! all of it into the `degraded` reasons: an operation failing, a full disk (no free space,
//! or the last error said so), free space under the `--storage-free-min-mib` minimum.
//!
//! Why per operation: a delete that works on a full disk (it frees space) says nothing
//! about writes, and an fsync with nothing to commit says nothing about the commits that
//! failed. Why a window: an idle server makes no store calls, and one old error must not
//! keep it unready forever once the disk is fixed (free space is re-read regardless).
//!
//! Map: [`StoreOp`], [`DiskWatch`], [`StorageHealth`], [`ObservedStore`],
//! [`STORAGE_ERROR_WINDOW`], [`FREE_MIN_MIB_DEFAULT`], [`parked_reasons`].
//!
//! Not covered: the sync tasks' own state (the tower's parked tasks are added by the
//! caller, see [`parked_reasons`]); the disk's hardware health (SMART); quotas.

use bytes::Bytes;
use prometheus::{IntCounterVec, IntGauge};
use sovereign_logic::content::ChunkHash;
use sovereign_logic::io::{Key, Record, TaskKind};
use sovereign_store::{Garbage, Recovered, Store, StoreError};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long a storage error keeps its operation failing when no success of that
/// operation follows (an idle server makes no calls that could succeed).
pub const STORAGE_ERROR_WINDOW: Duration = Duration::from_secs(300);

/// Default of `--storage-free-min-mib`: below this much free space a server is degraded.
pub const FREE_MIN_MIB_DEFAULT: u64 = 64;

/// Longest store error message kept for a reason.
const MESSAGE_MAX: usize = 300;

/// A kind of store call, the `op` label of `sovereign_storage_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StoreOp {
    /// A record or chunk written (staged).
    Write,
    /// A commit.
    Fsync,
    /// A delete, a discard of failed writes, garbage collection.
    Delete,
    /// A chunk read, recovery.
    Read,
}

impl StoreOp {
    /// Every operation, in label order.
    pub const ALL: [StoreOp; 4] = [
        StoreOp::Write,
        StoreOp::Fsync,
        StoreOp::Delete,
        StoreOp::Read,
    ];

    /// The label value.
    pub const fn name(self) -> &'static str {
        match self {
            StoreOp::Write => "write",
            StoreOp::Fsync => "fsync",
            StoreOp::Delete => "delete",
            StoreOp::Read => "read",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Where the store keeps its files and how little free space is too little.
#[derive(Clone, Debug, Default)]
pub struct DiskWatch {
    /// The data directory (`--data`); `None`: no file system to watch (in-memory store).
    pub dir: Option<PathBuf>,
    /// Below this many free bytes the server is degraded (0: no minimum).
    pub free_min_bytes: u64,
}

/// What one operation's calls did lately.
#[derive(Debug, Default, Clone)]
struct OpState {
    /// The last call failed (and none of this operation succeeded since).
    failing: bool,
    /// Errors since the last success.
    errors_since_ok: u64,
    /// The last error: when, what, whether it said the disk is full.
    last_error: Option<(Instant, String, bool)>,
}

/// A server's storage health (see the module doc). Shared: `&self` everywhere.
#[derive(Debug)]
pub struct StorageHealth {
    watch: DiskWatch,
    /// `sovereign_storage_errors_total{op}`.
    errors: IntCounterVec,
    /// `sovereign_storage_free_bytes`.
    free: IntGauge,
    /// The last free space read ([`FREE_UNKNOWN`]: none yet).
    free_last: AtomicU64,
    ops: Mutex<[OpState; 4]>,
}

/// `StorageHealth::free_last` before any reading.
const FREE_UNKNOWN: u64 = u64::MAX;

impl StorageHealth {
    /// Health of the store watched as `watch` says, counting into `errors` (labelled
    /// `op`) and reporting free space into `free` (both registered by the caller).
    pub fn new(watch: DiskWatch, errors: IntCounterVec, free: IntGauge) -> StorageHealth {
        for op in StoreOp::ALL {
            errors.with_label_values(&[op.name()]);
        }
        let health = StorageHealth {
            watch,
            errors,
            free,
            free_last: AtomicU64::new(FREE_UNKNOWN),
            ops: Mutex::new(Default::default()),
        };
        health.free_bytes();
        health
    }

    fn ops(&self) -> std::sync::MutexGuard<'_, [OpState; 4]> {
        // The states are replaced field by field in one step; a panic elsewhere cannot
        // leave one half-written.
        self.ops.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The outcome of one store call.
    pub fn record(&self, op: StoreOp, result: Result<(), &StoreError>) {
        let mut ops = self.ops();
        let st = &mut ops[op.index()];
        match result {
            Ok(()) => {
                st.failing = false;
                st.errors_since_ok = 0;
            }
            Err(e) => {
                self.errors.with_label_values(&[op.name()]).inc();
                st.failing = true;
                st.errors_since_ok = st.errors_since_ok.saturating_add(1);
                let message: String = e.to_string().chars().take(MESSAGE_MAX).collect();
                st.last_error = Some((Instant::now(), message, e.is_disk_full()));
            }
        }
    }

    /// Store calls that failed since the start, every operation.
    pub fn errors_total(&self) -> u64 {
        StoreOp::ALL
            .iter()
            .map(|op| self.errors.with_label_values(&[op.name()]).get())
            .sum()
    }

    /// Free bytes on the data directory's file system (and the gauge set to them), or
    /// `None` when there is no directory or it cannot be read.
    pub fn free_bytes(&self) -> Option<u64> {
        let free = self.watch.dir.as_deref().and_then(free_bytes_at);
        if let Some(f) = free {
            self.free.set(i64::try_from(f).unwrap_or(i64::MAX));
            self.free_last
                .store(f.min(FREE_UNKNOWN - 1), Ordering::Relaxed);
        }
        free
    }

    /// Why the storage is degraded now (empty: it is not), one sentence each. Reads the
    /// free space.
    pub fn reasons(&self) -> Vec<String> {
        self.reasons_at(Instant::now(), true)
    }

    /// [`StorageHealth::reasons`]; with `fresh` false the free space is the last one read
    /// (for hot paths: no system call).
    pub fn reasons_with(&self, fresh: bool) -> Vec<String> {
        self.reasons_at(Instant::now(), fresh)
    }

    /// [`StorageHealth::reasons`] as of `now`.
    fn reasons_at(&self, now: Instant, fresh: bool) -> Vec<String> {
        let mut out = Vec::new();
        let mut full_error = None;
        for (op, st) in StoreOp::ALL.iter().zip(self.ops().iter()) {
            let Some((at, message, disk_full)) = &st.last_error else {
                continue;
            };
            let age = now.saturating_duration_since(*at);
            if !st.failing || age >= STORAGE_ERROR_WINDOW {
                continue;
            }
            out.push(format!(
                "storage {} failing: {} error(s) since the last success, the last {}s ago: {message}",
                op.name(),
                st.errors_since_ok,
                age.as_secs()
            ));
            if *disk_full && full_error.is_none() {
                full_error = Some(op.name());
            }
        }
        let dir = self
            .watch
            .dir
            .as_deref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let free = if fresh {
            self.free_bytes()
        } else {
            Some(self.free_last.load(Ordering::Relaxed)).filter(|f| *f != FREE_UNKNOWN)
        };
        match (free, full_error) {
            (Some(0), _) => out.push(format!("disk full: no free space on {dir}")),
            (_, Some(op)) => out.push(format!(
                "disk full: the last {op} error says there is no space left"
            )),
            (Some(free), None) if free < self.watch.free_min_bytes => out.push(format!(
                "free space low: {free} bytes free on {dir}, under the minimum of {} \
                 (--storage-free-min-mib)",
                self.watch.free_min_bytes
            )),
            _ => {}
        }
        out
    }
}

/// The reasons a tower's parked sync tasks add to the storage's.
pub fn parked_reasons(parked: &[TaskKind]) -> Vec<String> {
    parked
        .iter()
        .map(|t| {
            format!(
                "sync task {} parked: its restart budget is spent (see task_restarts)",
                t.name()
            )
        })
        .collect()
}

/// Free bytes for an unprivileged writer on the file system holding `dir`.
#[cfg(unix)]
fn free_bytes_at(dir: &std::path::Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

#[cfg(not(unix))]
fn free_bytes_at(_dir: &std::path::Path) -> Option<u64> {
    None
}

/// A [`Store`] that reports every call's outcome to a [`StorageHealth`].
pub struct ObservedStore {
    inner: Arc<dyn Store>,
    health: Arc<StorageHealth>,
}

impl ObservedStore {
    /// Observe `inner`'s calls into `health`.
    pub fn new(inner: Arc<dyn Store>, health: Arc<StorageHealth>) -> ObservedStore {
        ObservedStore { inner, health }
    }

    fn note<T>(&self, op: StoreOp, r: Result<T, StoreError>) -> Result<T, StoreError> {
        self.health.record(op, r.as_ref().map(|_| ()));
        r
    }
}

impl Store for ObservedStore {
    fn write(&self, record: &Record) -> Result<(), StoreError> {
        self.note(StoreOp::Write, self.inner.write(record))
    }
    fn write_many(&self, records: &[Record]) -> Vec<Result<(), StoreError>> {
        (self.inner.write_many(records).into_iter())
            .map(|r| self.note(StoreOp::Write, r))
            .collect()
    }
    fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.note(StoreOp::Delete, self.inner.delete(key))
    }
    fn fsync(&self) -> Result<(), StoreError> {
        self.note(StoreOp::Fsync, self.inner.fsync())
    }
    fn discard(&self) -> Result<(), StoreError> {
        self.note(StoreOp::Delete, self.inner.discard())
    }
    fn collect_garbage(&self, keep: &BTreeSet<ChunkHash>) -> Result<Garbage, StoreError> {
        self.note(StoreOp::Delete, self.inner.collect_garbage(keep))
    }
    fn recover(&self) -> Result<Recovered, StoreError> {
        self.note(StoreOp::Read, self.inner.recover())
    }
    fn recover_index(&self) -> Result<Recovered, StoreError> {
        self.note(StoreOp::Read, self.inner.recover_index())
    }
    fn chunk(&self, hash: &ChunkHash) -> Result<Option<Bytes>, StoreError> {
        self.note(StoreOp::Read, self.inner.chunk(hash))
    }
    fn corrupt_one(&self) -> Result<Option<ChunkHash>, StoreError> {
        // A chaos hook, not the node's storage at work.
        self.inner.corrupt_one()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Opts;

    fn health(watch: DiskWatch) -> StorageHealth {
        let errors = IntCounterVec::new(Opts::new("e", "e"), &["op"]).unwrap();
        let free = IntGauge::new("f", "f").unwrap();
        StorageHealth::new(watch, errors, free)
    }

    fn injected(m: &str) -> StoreError {
        StoreError::Injected(m.into())
    }

    #[tokio::test(start_paused = true)]
    async fn an_operation_fails_until_it_succeeds_or_the_window_passes() {
        // Goal: an error makes its operation failing (and counted), a success of that
        // operation ends it, another operation's success does not, and an old error ages
        // out after the window.
        let h = health(DiskWatch::default());
        assert!(h.reasons().is_empty());
        h.record(
            StoreOp::Write,
            Err(&injected("write error (EIO) writing x")),
        );
        h.record(StoreOp::Delete, Ok(()));
        h.record(StoreOp::Fsync, Ok(()));
        let r = h.reasons();
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(
            r[0].starts_with("storage write failing: 1 error(s)"),
            "{r:?}"
        );
        assert!(r[0].contains("EIO"), "{r:?}");
        assert_eq!(h.errors.with_label_values(&["write"]).get(), 1);
        h.record(StoreOp::Write, Ok(()));
        assert!(h.reasons().is_empty());
        h.record(StoreOp::Fsync, Err(&injected("fsync failed (EIO)")));
        assert_eq!(h.reasons().len(), 1);
        tokio::time::advance(STORAGE_ERROR_WINDOW).await;
        assert!(h.reasons().is_empty(), "an old error still counts");
        assert_eq!(h.errors.with_label_values(&["fsync"]).get(), 1);
        // The total counts every failed call, however old, and never goes down.
        assert_eq!(h.errors_total(), 2);
    }

    #[tokio::test]
    async fn a_disk_full_error_and_low_free_space_are_reasons_of_their_own() {
        // Goal: an ENOSPC-like error adds "disk full"; a real directory reports its free
        // space into the gauge, and a minimum above it is a reason.
        let h = health(DiskWatch::default());
        h.record(
            StoreOp::Write,
            Err(&injected(
                "disk full (ENOSPC, no space left on device) writing c",
            )),
        );
        let r = h.reasons();
        assert!(r.iter().any(|s| s.starts_with("disk full")), "{r:?}");

        let dir = tempfile::tempdir().unwrap();
        let roomy = health(DiskWatch {
            dir: Some(dir.path().to_path_buf()),
            free_min_bytes: 1,
        });
        let free = roomy.free_bytes().expect("statvfs of a temp dir");
        assert!(free > 0);
        assert_eq!(roomy.free.get(), i64::try_from(free).unwrap());
        assert!(roomy.reasons().is_empty());
        let tight = health(DiskWatch {
            dir: Some(dir.path().to_path_buf()),
            free_min_bytes: u64::MAX,
        });
        let r = tight.reasons();
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(r[0].starts_with("free space low"), "{r:?}");
        // The hot path's reading (no system call) judges the same.
        assert_eq!(tight.reasons_with(false), r);
        assert!(roomy.reasons_with(false).is_empty());
    }
}
