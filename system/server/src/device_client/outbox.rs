//! The device's own offline outbox on disk: one JSON-lines log per device, honouring the
//! logic's write/delete/fsync contract (a write may be lost by a crash until a later
//! [`Store::fsync`] returns `Ok`; after that it survives).
//!
//! Layout: `STATE/device-N/outbox.jsonl`, appended to, one record per line:
//! `{"t":"put","op":{OperationDto}}` (an operation queued), `{"t":"del","key":…}` (it left
//! the queue), `{"t":"acked","op":{…}}` (acknowledged by the tower, awaiting the origin's
//! verdict), `{"t":"settled","key":…}` (the verdict is known), `{"t":"tried","key":..,
//! "attempts":3,"last":"503: .."}` and `{"t":"outcome","key":..,"result":"conflict",
//! "detail":..,"op":{…}}` (driver bookkeeping, not part of the logic's state: how sending
//! went, and the final word on an operation for `device status`), and
//! `{"t":"floor","last_key":7}` (the highest key number ever issued, so that a key is
//! never reused once the outbox empties).
//! Replaying the log in order rebuilds the outbox. A torn last line (a crash in the middle
//! of an append that was never fsynced) is dropped and cut off; a bad line anywhere else is
//! an error naming the line. When the log has grown well past its live records it is
//! rewritten: temp file, fsync, rename, fsync the directory.
//!
//! A `lock` file next to the log is held with `flock(2)` for as long as the
//! [`OutboxFile`] lives: two `sovereign device` processes never interleave appends with a
//! rewrite. The lock dies with the process.
//!
//! Map: [`OutboxFile`] (open, [`Store`] impl, [`OutboxFile::load`],
//! [`OutboxFile::note_attempt`]), [`OutboxLog`], [`Queued`],
//! [`fsync_dir`].
//!
//! Not covered: chunks (a device keeps no content store; [`Store::chunk`] answers `None`
//! and writing one is an error), file locking on non-Unix systems.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sovereign_logic::content::ChunkHash;
use sovereign_logic::io::{DurableState, Key, Record};
use sovereign_logic::protocol::{IdemKey, Operation};
use sovereign_store::{Recovered, Store, StoreError};
use sovereign_wire::OperationDto;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The log's file name inside the device's state directory.
pub const LOG_NAME: &str = "outbox.jsonl";
/// The lock file's name.
pub const LOCK_NAME: &str = "lock";
/// Rewrite the log once it holds this many lines more than twice its live operations.
pub const COMPACT_SLACK_LINES: usize = 64;
/// Longest line accepted when reading the log back (an operation body is at most 64 KiB).
pub const LINE_BYTES_MAX: usize = 1024 * 1024;
/// Largest outbox log read (compaction keeps it near the live operations' size).
pub const LOG_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// One line of the log.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "kebab-case", deny_unknown_fields)]
enum Line {
    /// An operation was queued.
    Put { op: OperationDto },
    /// An operation was acknowledged (or refused as a conflict) and left the outbox.
    Del { key: String },
    /// Sending was tried `attempts` times in all; `last` says how the last try went.
    Tried {
        key: String,
        attempts: u32,
        last: String,
    },
    /// The highest key number ever issued by this device.
    Floor { last_key: u64 },
    /// The tower acknowledged an operation; its final outcome is awaited.
    Acked { op: OperationDto },
    /// An awaited operation's final outcome is known; it is no longer awaited.
    Settled { key: String },
    /// The final word on an operation, for the user.
    Outcome {
        key: String,
        result: String,
        detail: String,
        op: OperationDto,
    },
}

/// Final outcomes a compacted log keeps (the most recent).
pub const OUTCOMES_KEPT: usize = 200;

/// The final word on one operation, as the log keeps it for `device status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    /// The operation.
    pub op: Operation,
    /// `applied`, `conflict`, `rejected`, `refused` or `unknown`.
    pub result: String,
    /// For a person: the sequence number, the tower's or the origin's reason.
    pub detail: String,
}

/// A queued operation, as the log holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queued {
    /// The operation (its key included).
    pub op: Operation,
    /// Sends tried so far, over every process that tried.
    pub attempts: u32,
    /// How the last try went, if there was one.
    pub last: Option<String>,
}

/// What replaying the log found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxLog {
    /// Queued operations by key (the order the device sends them in).
    pub ops: BTreeMap<IdemKey, Queued>,
    /// Acknowledged operations whose final outcome is awaited, by key.
    pub awaiting: BTreeMap<IdemKey, Operation>,
    /// Final outcomes, oldest first.
    pub outcomes: Vec<Settled>,
    /// The highest key number ever issued (queued, acknowledged or dropped), 0 if none.
    pub last_key: u64,
    /// Lines read (the torn tail excluded).
    pub lines: usize,
    /// Bytes of whole lines (where the next append goes).
    pub good_len: u64,
    /// Whether a torn last line was found (and will be cut off on open).
    pub torn: bool,
    /// How many bytes that torn line had.
    pub torn_bytes: u64,
}

impl OutboxLog {
    /// The logic's view: every queued operation as an outbox record, every awaited one as
    /// an awaiting record.
    pub fn durable(&self) -> DurableState {
        self.ops
            .values()
            .map(|q| (Key::Outbox(q.op.key.clone()), Record::Outbox(q.op.clone())))
            .chain(
                self.awaiting
                    .values()
                    .map(|op| (Key::Awaiting(op.key.clone()), Record::Awaiting(op.clone()))),
            )
            .collect()
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> StoreError {
    let what = what.into();
    move |source| StoreError::Io { what, source }
}

/// fsync a directory, so that a file created or renamed in it survives a crash.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Windows cannot open a directory as a file; NTFS journals the metadata itself.
        let _ = dir;
        Ok(())
    }
}

/// Create `dir` (and its parents), fsyncing each new directory's parent.
fn create_dir_durably(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durably(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => fsync_dir(parent),
        None => Ok(()),
    }
}

struct Inner {
    /// The log, opened for appending.
    file: File,
    /// Something was appended since the last fsync.
    dirty: bool,
    /// The log's length before the first append since the last fsync (meaningful while
    /// `dirty`): what a failed fsync truncates it back to.
    synced_len: u64,
}

/// A device's outbox log (see the module doc). Implements [`Store`] for outbox records.
pub struct OutboxFile {
    dir: PathBuf,
    path: PathBuf,
    inner: Mutex<Inner>,
    /// Bytes of a torn last line cut off on open (0: none).
    torn_bytes: u64,
    /// Held (flock) for the life of this value; closing the file releases the lock.
    _lock: File,
}

impl std::fmt::Debug for OutboxFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxFile")
            .field("path", &self.path)
            .finish()
    }
}

impl OutboxFile {
    /// Open (creating if needed) the outbox in `dir`: take the lock (waiting for another
    /// process that holds it), cut off a torn last line, and rewrite the log if it has
    /// grown well past its live operations.
    pub fn open(dir: &Path) -> Result<OutboxFile, StoreError> {
        create_dir_durably(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let lock_path = dir.join(LOCK_NAME);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(format!("opening {}", lock_path.display())))?;
        lock_exclusive(&lock, &lock_path)?;

        let path = dir.join(LOG_NAME);
        let created = !path.exists();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(io_err(format!("opening {}", path.display())))?;
        if created {
            fsync_dir(dir).map_err(io_err(format!("fsync {}", dir.display())))?;
        }
        let mut out = OutboxFile {
            dir: dir.to_path_buf(),
            path,
            inner: Mutex::new(Inner {
                file,
                dirty: false,
                synced_len: 0,
            }),
            torn_bytes: 0,
            _lock: lock,
        };
        let log = out.load()?;
        out.torn_bytes = log.torn_bytes;
        if log.torn {
            // Cut the torn line off, so that the next append starts a line of its own.
            let inner = out.lock_inner();
            inner
                .file
                .set_len(log.good_len)
                .and_then(|()| inner.file.sync_all())
                .map_err(io_err(format!(
                    "truncating the torn tail of {}",
                    out.path.display()
                )))?;
        }
        let live = log.ops.len() + log.awaiting.len() + log.outcomes.len().min(OUTCOMES_KEPT);
        if log.lines > 2 * live + COMPACT_SLACK_LINES {
            out.compact(&log)?;
        }
        Ok(out)
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of a torn last line that [`OutboxFile::open`] cut off (0: none). A caller
    /// should say so: it was an append that never completed.
    pub fn torn_bytes_dropped(&self) -> u64 {
        self.torn_bytes
    }

    fn lock_inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while appending leaves nothing half-done in memory: keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn append(&self, line: &Line) -> Result<(), StoreError> {
        let mut text = serde_json::to_string(line).map_err(|e| StoreError::Corrupt {
            kind: "outbox".into(),
            name: self.path.display().to_string(),
            reason: format!("encoding a line: {e}"),
        })?;
        text.push('\n');
        let mut inner = self.lock_inner();
        if !inner.dirty {
            inner.synced_len = inner
                .file
                .metadata()
                .map_err(io_err(format!(
                    "reading the length of {}",
                    self.path.display()
                )))?
                .len();
        }
        // One write per line: O_APPEND puts it at the end in one piece.
        inner
            .file
            .write_all(text.as_bytes())
            .map_err(io_err(format!("appending to {}", self.path.display())))?;
        inner.dirty = true;
        Ok(())
    }

    /// Record that sending `key` has been tried `attempts` times in all, the last one
    /// ending as `last`. Bookkeeping only: made durable by the next fsync, if any.
    pub fn note_attempt(&self, key: &IdemKey, attempts: u32, last: &str) -> Result<(), StoreError> {
        self.append(&Line::Tried {
            key: key.0.to_string(),
            attempts,
            last: last.chars().take(300).collect(),
        })
    }

    /// Record the final word on `op` for the user (made durable by the next fsync).
    pub fn note_outcome(
        &self,
        op: &Operation,
        result: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.append(&Line::Outcome {
            key: op.key.0.to_string(),
            result: result.to_string(),
            detail: detail.chars().take(300).collect(),
            op: OperationDto::from(op),
        })
    }

    /// Replay the log.
    pub fn load(&self) -> Result<OutboxLog, StoreError> {
        use sovereign_wire::input::{InputError, read_capped};
        let text =
            read_capped(&self.path, LOG_BYTES_MAX, "device outbox").map_err(|e| match e {
                InputError::Io { source, .. } => StoreError::Io {
                    what: format!("reading {}", self.path.display()),
                    source,
                },
                other => StoreError::Corrupt {
                    kind: "outbox".into(),
                    name: self.path.display().to_string(),
                    reason: other.detail(),
                },
            })?;
        replay(&self.path, &text)
    }

    /// Rewrite the log as its live operations, the key floor and the latest outcomes only.
    fn compact(&self, log: &OutboxLog) -> Result<(), StoreError> {
        let tmp = self.dir.join(format!("{LOG_NAME}.tmp"));
        let mut text = String::new();
        let mut push = |line: &Line| -> Result<(), StoreError> {
            let s = serde_json::to_string(line).map_err(|e| StoreError::Corrupt {
                kind: "outbox".into(),
                name: tmp.display().to_string(),
                reason: format!("encoding a line: {e}"),
            })?;
            text.push_str(&s);
            text.push('\n');
            Ok(())
        };
        push(&Line::Floor {
            last_key: log.last_key,
        })?;
        for q in log.ops.values() {
            push(&Line::Put {
                op: OperationDto::from(&q.op),
            })?;
            if let Some(last) = &q.last {
                push(&Line::Tried {
                    key: q.op.key.0.to_string(),
                    attempts: q.attempts,
                    last: last.clone(),
                })?;
            }
        }
        for op in log.awaiting.values() {
            push(&Line::Acked {
                op: OperationDto::from(op),
            })?;
        }
        let skip = log.outcomes.len().saturating_sub(OUTCOMES_KEPT);
        for o in &log.outcomes[skip..] {
            push(&Line::Outcome {
                key: o.op.key.0.to_string(),
                result: o.result.clone(),
                detail: o.detail.clone(),
                op: OperationDto::from(&o.op),
            })?;
        }
        let what = format!("rewriting {} via {}", self.path.display(), tmp.display());
        let mut inner = self.lock_inner();
        (|| -> io::Result<File> {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, &self.path)?;
            fsync_dir(&self.dir)?;
            OpenOptions::new().append(true).read(true).open(&self.path)
        })()
        .map(|file| {
            inner.file = file;
            inner.dirty = false;
        })
        .map_err(io_err(what))
    }
}

fn replay(path: &Path, text: &[u8]) -> Result<OutboxLog, StoreError> {
    let mut log = OutboxLog::default();
    let corrupt = |n: usize, reason: String| StoreError::Corrupt {
        kind: "outbox".into(),
        name: format!("{} line {n}", path.display()),
        reason,
    };
    let mut rest = text;
    let mut n = 0usize;
    while !rest.is_empty() {
        n += 1;
        let (raw, complete) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], true),
            None => (rest, false),
        };
        let consumed = raw.len() + usize::from(complete);
        let is_last = consumed == rest.len();
        if raw.len() > LINE_BYTES_MAX {
            return Err(corrupt(
                n,
                format!("line longer than {LINE_BYTES_MAX} bytes"),
            ));
        }
        let parsed = sovereign_wire::from_json::<Line>(raw);
        let line = match parsed {
            Ok(line) if complete => line,
            Err(e) if !is_last => {
                return Err(corrupt(
                    n,
                    format!(
                        "{e}; expected a JSON object with \"t\" put, del, acked, settled, tried, outcome or floor"
                    ),
                ));
            }
            // The last line without its newline, or unreadable: an append a crash cut
            // short. It was never fsynced (fsync follows the whole line), so drop it.
            _ => {
                log.torn = true;
                log.torn_bytes = rest.len() as u64;
                break;
            }
        };
        apply(&mut log, line).map_err(|reason| corrupt(n, reason))?;
        log.lines += 1;
        log.good_len += consumed as u64;
        rest = &rest[consumed..];
    }
    Ok(log)
}

fn apply(log: &mut OutboxLog, line: Line) -> Result<(), String> {
    match line {
        Line::Put { op } => {
            let op = op.to_operation().map_err(|e| e.to_string())?;
            log.last_key = log.last_key.max(op.key.number());
            log.ops.insert(
                op.key.clone(),
                Queued {
                    op,
                    attempts: 0,
                    last: None,
                },
            );
        }
        Line::Del { key } => {
            log.ops.remove(&IdemKey(key.into()));
        }
        Line::Tried {
            key,
            attempts,
            last,
        } => {
            // A note about an operation already gone is harmless: ignore it.
            if let Some(q) = log.ops.get_mut(&IdemKey(key.into())) {
                q.attempts = attempts;
                q.last = Some(last);
            }
        }
        Line::Floor { last_key } => log.last_key = log.last_key.max(last_key),
        Line::Acked { op } => {
            let op = op.to_operation().map_err(|e| e.to_string())?;
            log.last_key = log.last_key.max(op.key.number());
            log.awaiting.insert(op.key.clone(), op);
        }
        Line::Settled { key } => {
            log.awaiting.remove(&IdemKey(key.into()));
        }
        Line::Outcome {
            key,
            result,
            detail,
            op,
        } => {
            let op = op.to_operation().map_err(|e| e.to_string())?;
            if *op.key.0 != *key {
                return Err(format!(
                    "outcome for {key:?} carries operation {:?}",
                    op.key.0
                ));
            }
            log.outcomes.push(Settled { op, result, detail });
            if log.outcomes.len() > 2 * OUTCOMES_KEPT {
                log.outcomes.drain(..OUTCOMES_KEPT);
            }
        }
    }
    Ok(())
}

#[cfg(unix)]
fn lock_exclusive(lock: &File, path: &Path) -> Result<(), StoreError> {
    use rustix::fs::{FlockOperation, flock};
    match flock(lock, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
            eprintln!(
                "waiting for another sovereign device process (it holds {})",
                path.display()
            );
            flock(lock, FlockOperation::LockExclusive)
                .map_err(|e| io_err(format!("locking {}", path.display()))(e.into()))
        }
        Err(e) => Err(io_err(format!("locking {}", path.display()))(e.into())),
    }
}

#[cfg(not(unix))]
fn lock_exclusive(_lock: &File, _path: &Path) -> Result<(), StoreError> {
    Ok(())
}

impl Store for OutboxFile {
    fn write(&self, record: &Record) -> Result<(), StoreError> {
        match record {
            Record::Outbox(op) => self.append(&Line::Put {
                op: OperationDto::from(op),
            }),
            Record::Awaiting(op) => self.append(&Line::Acked {
                op: OperationDto::from(op),
            }),
            other => Err(StoreError::Io {
                what: format!(
                    "writing a {} record to {}",
                    sovereign_wire::key_kind(&other.key()),
                    self.path.display()
                ),
                source: io::Error::new(
                    io::ErrorKind::Unsupported,
                    "a device outbox stores outbox and awaiting records only",
                ),
            }),
        }
    }

    fn delete(&self, key: &Key) -> Result<(), StoreError> {
        match key {
            Key::Outbox(k) => self.append(&Line::Del {
                key: k.0.to_string(),
            }),
            Key::Awaiting(k) => self.append(&Line::Settled {
                key: k.0.to_string(),
            }),
            // Nothing else is ever stored here, so nothing else needs removing.
            _ => Ok(()),
        }
    }

    fn fsync(&self) -> Result<(), StoreError> {
        let mut inner = self.lock_inner();
        if inner.dirty {
            if let Err(e) = inner.file.sync_data() {
                drop(inner);
                // The contract: a failed fsync leaves nothing a later one would keep.
                let _ = self.discard();
                return Err(io_err(format!("fsync {}", self.path.display()))(e));
            }
            inner.dirty = false;
        }
        Ok(())
    }

    /// Appends reach the file at once: cut the log back to its length at the last
    /// successful fsync.
    fn discard(&self) -> Result<(), StoreError> {
        let mut inner = self.lock_inner();
        if inner.dirty {
            inner
                .file
                .set_len(inner.synced_len)
                .map_err(io_err(format!(
                    "truncating {} after a failed fsync",
                    self.path.display()
                )))?;
            inner.dirty = false;
        }
        Ok(())
    }

    /// A device stores no chunks.
    fn collect_garbage(
        &self,
        _keep: &std::collections::BTreeSet<ChunkHash>,
    ) -> Result<sovereign_store::Garbage, StoreError> {
        Ok(sovereign_store::Garbage::default())
    }

    fn recover(&self) -> Result<Recovered, StoreError> {
        Ok(Recovered {
            durable: self.load()?.durable(),
            ..Recovered::default()
        })
    }

    /// The same as [`Store::recover`]: a device stores no chunks.
    fn recover_index(&self) -> Result<Recovered, StoreError> {
        self.recover()
    }

    fn chunk(&self, _hash: &ChunkHash) -> Result<Option<Bytes>, StoreError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sovereign_logic::protocol::{DeviceId, OpKind};

    fn op(n: u64) -> Operation {
        Operation {
            key: IdemKey::for_device(DeviceId(1), n, 0xab),
            device: DeviceId(1),
            kind: OpKind::Message {
                to: "clinic".into(),
                body: format!("hello {n}"),
            },
        }
    }

    #[test]
    fn puts_and_deletes_replay_in_a_fresh_open() {
        // Goal: what was written and fsynced is what a later process reads back.
        let dir = tempfile::tempdir().unwrap();
        {
            let f = OutboxFile::open(dir.path()).unwrap();
            f.write(&Record::Outbox(op(1))).unwrap();
            f.write(&Record::Outbox(op(2))).unwrap();
            f.note_attempt(&op(2).key, 3, "503: busy").unwrap();
            f.delete(&Key::Outbox(op(1).key)).unwrap();
            f.fsync().unwrap();
        }
        let f = OutboxFile::open(dir.path()).unwrap();
        let log = f.load().unwrap();
        assert_eq!(log.ops.len(), 1);
        let q = &log.ops[&op(2).key];
        assert_eq!((q.attempts, q.last.as_deref()), (3, Some("503: busy")));
        assert_eq!(log.last_key, 2, "the deleted op's key still counts");
        assert_eq!(f.recover().unwrap().durable.len(), 1);
    }

    #[test]
    fn a_discard_cuts_the_log_back_to_the_last_fsync() {
        // Goal: what a failed fsync means for the log: the appends since the last good
        // fsync are gone, never read back by a later process.
        let dir = tempfile::tempdir().unwrap();
        {
            let f = OutboxFile::open(dir.path()).unwrap();
            f.write(&Record::Outbox(op(1))).unwrap();
            f.fsync().unwrap();
            f.write(&Record::Outbox(op(2))).unwrap();
            f.delete(&Key::Outbox(op(1).key)).unwrap();
            f.discard().unwrap();
            f.write(&Record::Outbox(op(3))).unwrap();
            f.fsync().unwrap();
        }
        let f = OutboxFile::open(dir.path()).unwrap();
        let keys: Vec<_> = f.load().unwrap().ops.into_keys().collect();
        assert_eq!(keys, vec![op(1).key, op(3).key]);
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_cut_off() {
        // Goal: a crash mid-append loses only the unsynced line, and the next append is clean.
        let dir = tempfile::tempdir().unwrap();
        {
            let f = OutboxFile::open(dir.path()).unwrap();
            f.write(&Record::Outbox(op(1))).unwrap();
            f.fsync().unwrap();
        }
        let path = dir.path().join(LOG_NAME);
        let mut raw = std::fs::read(&path).unwrap();
        raw.extend_from_slice(b"{\"t\":\"put\",\"op\":{\"key\":\"1:000");
        std::fs::write(&path, &raw).unwrap();
        let f = OutboxFile::open(dir.path()).unwrap();
        f.write(&Record::Outbox(op(2))).unwrap();
        f.fsync().unwrap();
        drop(f);
        let log = OutboxFile::open(dir.path()).unwrap().load().unwrap();
        assert_eq!(
            log.ops.keys().cloned().collect::<Vec<_>>(),
            vec![op(1).key, op(2).key]
        );
        assert!(!log.torn);
    }

    #[test]
    fn a_bad_line_in_the_middle_is_an_error_naming_the_line() {
        // Goal: corruption is reported with file and line, never silently skipped.
        let dir = tempfile::tempdir().unwrap();
        {
            let f = OutboxFile::open(dir.path()).unwrap();
            f.write(&Record::Outbox(op(1))).unwrap();
            f.fsync().unwrap();
        }
        let path = dir.path().join(LOG_NAME);
        let mut raw = b"{\"t\":\"nope\"}\n".to_vec();
        raw.extend(std::fs::read(&path).unwrap());
        std::fs::write(&path, &raw).unwrap();
        let err = OutboxFile::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("outbox.jsonl line 1"), "{err}");
    }

    #[test]
    fn compaction_keeps_live_ops_attempts_and_the_key_floor() {
        // Goal: rewriting the log drops dead lines but loses nothing that matters.
        let dir = tempfile::tempdir().unwrap();
        {
            let f = OutboxFile::open(dir.path()).unwrap();
            for n in 1..=100 {
                f.write(&Record::Outbox(op(n))).unwrap();
                if n != 50 {
                    f.delete(&Key::Outbox(op(n).key)).unwrap();
                }
            }
            f.note_attempt(&op(50).key, 2, "tower unreachable").unwrap();
            f.fsync().unwrap();
        }
        let before = OutboxFile::open(dir.path()).unwrap().load().unwrap();
        assert!(before.lines <= 3, "compacted to {} lines", before.lines);
        assert_eq!(before.last_key, 100);
        assert_eq!(before.ops.len(), 1);
        assert_eq!(before.ops[&op(50).key].attempts, 2);
    }

    #[test]
    fn non_outbox_records_are_refused() {
        // Goal: the device store says what it cannot hold instead of dropping it.
        let dir = tempfile::tempdir().unwrap();
        let f = OutboxFile::open(dir.path()).unwrap();
        let chunk = Record::Chunk(sovereign_logic::content::Chunk {
            hash: ChunkHash::of(b"x"),
            bytes: Bytes::from_static(b"x"),
        });
        let err = f.write(&chunk).unwrap_err().to_string();
        assert!(err.contains("chunk record"), "{err}");
    }
}
