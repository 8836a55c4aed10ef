//! The admin audit trail: one JSON line per admin mutation, fsynced before the call
//! returns.
//!
//! Every admin mutation (publish, fault injection, fault clearing) is appended to
//! `DATA/audit.jsonl` as
//! `{"time":"2026-01-01T00:00:00.000Z","role":"chaos","token_id":"ba7816bf","action":"fault.inject","target":"fibre","detail":{…},"outcome":"ok"}`.
//! The line is written with one `write` call under a mutex and the file is fsynced
//! before [`AuditLog::append`] returns (and its directory too when the file was just
//! created, so that the file itself survives a crash). Tokens never reach this module:
//! callers are named by [`Caller::token_id`].
//!
//! A crash can leave a torn last line. [`AuditLog::open`] starts the next entry on a
//! fresh line, and [`AuditLog::read_tail`] skips lines that do not parse and counts them
//! ([`Tail::skipped`]). After a failed write the next entry also starts on a fresh line.
//!
//! Map: [`AuditEntry`] (what a handler records), [`AuditRecord`] (a stored line, with its
//! time), [`AuditLog`] (`open`, `append`, `read_tail`), [`Tail`], [`AuditError`],
//! [`rfc3339_utc`] (timestamps), [`LINE_BYTES_MAX`], [`TAIL_MAX`].
//!
//! Not covered: rotation (the trail grows; an operator archives it), tamper evidence (no
//! hash chain), recording refused (401/403) calls — the caller decides what to append.
//! `append` blocks on fsync: call it from `tokio::task::spawn_blocking` in async
//! handlers.

use crate::auth::{Caller, Role};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// Longest line written, in bytes. An entry whose `detail` would make the line longer is
/// stored with `detail` replaced by `{"truncated": true, "bytes": N}`.
pub const LINE_BYTES_MAX: usize = 16 * 1024;
/// Most entries [`AuditLog::read_tail`] returns.
pub const TAIL_MAX: usize = 1000;
/// Bytes read per step when scanning the file backwards.
const TAIL_BLOCK_BYTES: u64 = 64 * 1024;

/// Why the audit trail could not be opened, written or read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Opening or creating the file failed.
    #[error("audit trail {path}: cannot open: {source}")]
    Open {
        /// the file
        path: PathBuf,
        /// the OS error
        source: std::io::Error,
    },
    /// Writing or fsyncing failed: the entry may not be durable.
    #[error("audit trail {path}: cannot append: {source}")]
    Write {
        /// the file
        path: PathBuf,
        /// the OS error
        source: std::io::Error,
    },
    /// Reading failed.
    #[error("audit trail {path}: cannot read: {source}")]
    Read {
        /// the file
        path: PathBuf,
        /// the OS error
        source: std::io::Error,
    },
}

/// What a handler records about one admin call (the time is added by
/// [`AuditLog::append`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The caller's role.
    pub role: Role,
    /// The caller's token id (never the token).
    pub token_id: String,
    /// What was done, dotted lower case: `publish`, `fault.inject`, `fault.clear`, ….
    pub action: String,
    /// What it was done to: an item id, a fault id, a link.
    pub target: String,
    /// Parameters worth keeping (priority, size, fault spec, …); `null` if none.
    pub detail: serde_json::Value,
    /// `ok`, or a short description of the failure.
    pub outcome: String,
}

impl AuditEntry {
    /// An entry for `caller` doing `action` to `target`, with no detail and outcome `ok`.
    pub fn new(caller: &Caller, action: impl Into<String>, target: impl Into<String>) -> Self {
        AuditEntry {
            role: caller.role,
            token_id: caller.token_id.clone(),
            action: action.into(),
            target: target.into(),
            detail: serde_json::Value::Null,
            outcome: "ok".into(),
        }
    }

    /// With `detail`.
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    /// With `outcome`.
    pub fn outcome(mut self, outcome: impl Into<String>) -> Self {
        self.outcome = outcome.into();
        self
    }
}

/// One stored line (of DATA/audit.jsonl): the time it was appended and the entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// RFC 3339 UTC with milliseconds, from the system clock.
    #[schema(format = DateTime)]
    pub time: String,
    /// The caller's role.
    pub role: Role,
    /// The caller's token id: the first 8 hex digits of the token's SHA-256 (never the
    /// token).
    #[schema(pattern = "^[0-9a-f]{8}$")]
    pub token_id: String,
    /// What was done: `publish`, `fault.inject`, `fault.clear`, ….
    pub action: String,
    /// To what.
    pub target: String,
    /// Parameters of the call; any JSON value.
    pub detail: serde_json::Value,
    /// `ok`, or what failed.
    pub outcome: String,
}

/// The last entries of the trail, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = AuditTail)]
pub struct Tail {
    /// The entries.
    pub records: Vec<AuditRecord>,
    /// Lines in the scanned range that did not parse (torn by a crash, or edited).
    pub skipped: usize,
}

/// The file and whether the next line must start with a newline (the previous write was
/// torn or failed).
#[derive(Debug)]
struct Writer {
    file: File,
    needs_newline: bool,
}

/// An append-only, fsynced JSON-lines audit trail. Thread-safe: share it in an `Arc`.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    // A std Mutex, not tokio's: the critical section is a blocking write + fsync that must
    // not be interleaved, and it runs on a blocking thread, never across an `.await`.
    writer: Mutex<Writer>,
}

impl AuditLog {
    /// Open `path` for appending, creating it (and fsyncing its directory) if needed. The
    /// directory must exist.
    pub fn open(path: impl AsRef<Path>) -> Result<AuditLog, AuditError> {
        let path = path.as_ref().to_path_buf();
        let open_err = |source| AuditError::Open {
            path: path.clone(),
            source,
        };
        let (mut file, created) = match OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => (f, true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => (
                OpenOptions::new()
                    .read(true)
                    .append(true)
                    .open(&path)
                    .map_err(open_err)?,
                false,
            ),
            Err(e) => return Err(open_err(e)),
        };
        if created {
            file.sync_all().map_err(open_err)?;
            sync_parent(&path).map_err(open_err)?;
        }
        // A crash during a write may have left a line without its newline.
        let len = file.metadata().map_err(open_err)?.len();
        let mut needs_newline = false;
        if len > 0 {
            file.seek(SeekFrom::Start(len - 1)).map_err(open_err)?;
            let mut last = [0u8; 1];
            file.read_exact(&mut last).map_err(open_err)?;
            needs_newline = last[0] != b'\n';
        }
        Ok(AuditLog {
            path,
            writer: Mutex::new(Writer {
                file,
                needs_newline,
            }),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append `entry` stamped with the system clock, and fsync. Returns the stored record.
    /// Blocking.
    pub fn append(&self, entry: &AuditEntry) -> Result<AuditRecord, AuditError> {
        self.append_at(entry, SystemTime::now())
    }

    /// [`AuditLog::append`] with the time given (tests, replays).
    pub fn append_at(&self, entry: &AuditEntry, at: SystemTime) -> Result<AuditRecord, AuditError> {
        let mut record = AuditRecord {
            time: rfc3339_utc(at),
            role: entry.role,
            token_id: entry.token_id.clone(),
            action: entry.action.clone(),
            target: entry.target.clone(),
            detail: entry.detail.clone(),
            outcome: entry.outcome.clone(),
        };
        let mut line = to_line(&record);
        if line.len() > LINE_BYTES_MAX {
            let bytes = serde_json::to_string(&record.detail).map_or(0, |s| s.len());
            record.detail = serde_json::json!({ "truncated": true, "bytes": bytes });
            line = to_line(&record);
        }
        // Action, target and outcome are the caller's own strings; cut them if even
        // without the detail the line is too long.
        if line.len() > LINE_BYTES_MAX {
            for s in [&mut record.action, &mut record.target, &mut record.outcome] {
                truncate_chars(s, 1024);
            }
            line = to_line(&record);
        }
        debug_assert!(line.ends_with('\n') && line.matches('\n').count() == 1);

        let write_err = |source| AuditError::Write {
            path: self.path.clone(),
            source,
        };
        // A poisoned lock means a thread panicked while holding it; the file is still
        // usable and `needs_newline` is set before any write, so carry on.
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut buf = Vec::with_capacity(line.len() + 1);
        if w.needs_newline {
            buf.push(b'\n');
        }
        buf.extend_from_slice(line.as_bytes());
        // Until this write and fsync succeed, assume the file ends mid-line.
        w.needs_newline = true;
        w.file.write_all(&buf).map_err(write_err)?;
        w.file.sync_data().map_err(write_err)?;
        w.needs_newline = false;
        Ok(record)
    }

    /// The last `n` (at most [`TAIL_MAX`]) entries, oldest first. Reads backwards from the
    /// end, so the cost is in `n`, not the file's size. Blocking.
    pub fn read_tail(&self, n: usize) -> Result<Tail, AuditError> {
        let n = n.min(TAIL_MAX);
        let read_err = |source| AuditError::Read {
            path: self.path.clone(),
            source,
        };
        let mut file = File::open(&self.path).map_err(read_err)?;
        let len = file.metadata().map_err(read_err)?.len();
        // Collect whole lines from the end until there are `n` parseable ones or the file
        // starts. `chunk` holds the bytes from `pos` to the end not yet split into lines.
        let mut pos = len;
        let mut chunk: Vec<u8> = Vec::new();
        let mut records_rev: Vec<AuditRecord> = Vec::new();
        let mut skipped = 0usize;
        while records_rev.len() < n {
            let done = pos == 0;
            if !done {
                let step = TAIL_BLOCK_BYTES.min(pos);
                pos -= step;
                let mut block = vec![0u8; step as usize];
                file.seek(SeekFrom::Start(pos)).map_err(read_err)?;
                file.read_exact(&mut block).map_err(read_err)?;
                block.extend_from_slice(&chunk);
                chunk = block;
            }
            // Every line after the first newline in `chunk` is whole (the first may be
            // cut unless we are at the start of the file).
            let split_from = if done {
                0
            } else {
                match chunk.iter().position(|&b| b == b'\n') {
                    Some(i) => i + 1,
                    None => continue,
                }
            };
            let whole = chunk.split_off(split_from);
            for line in whole.split(|&b| b == b'\n').rev() {
                if records_rev.len() == n {
                    break;
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match serde_json::from_slice::<AuditRecord>(line) {
                    Ok(r) => records_rev.push(r),
                    Err(_) => skipped += 1,
                }
            }
            if done {
                break;
            }
        }
        records_rev.reverse();
        debug_assert!(records_rev.len() <= n);
        Ok(Tail {
            records: records_rev,
            skipped,
        })
    }
}

/// One JSON line with its newline. Serializing these plain types cannot fail; should it
/// ever, the line says so rather than panicking.
fn to_line(record: &AuditRecord) -> String {
    let mut s = serde_json::to_string(record)
        .unwrap_or_else(|e| format!("{{\"error\":\"audit record not serializable: {e}\"}}"));
    s.push('\n');
    s
}

fn truncate_chars(s: &mut String, max: usize) {
    if let Some((i, _)) = s.char_indices().nth(max) {
        s.truncate(i);
    }
}

/// Fsync the directory holding `path`, so that a newly created file's directory entry is
/// durable.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

/// `at` as RFC 3339 UTC with milliseconds: `2026-01-01T00:00:00.000Z`. Times before 1970
/// (a badly set clock) are written as `1970-01-01T00:00:00.000Z`.
pub fn rfc3339_utc(at: SystemTime) -> String {
    let d = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
/// `civil_from_days`, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Tokens;
    use std::sync::Arc;
    use std::time::Duration;

    const TOKEN: &str = "chaos-secret-token-abcdef";

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sovereign-audit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    fn caller() -> Caller {
        Tokens::new(None, None, Some(TOKEN.into()))
            .unwrap()
            .lookup(TOKEN)
            .expect("known token")
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        // Goal: known instants format as RFC 3339 with milliseconds and a Z.
        let t = |s: u64, ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(s * 1000 + ms);
        assert_eq!(rfc3339_utc(t(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(t(1_767_225_600, 5)), "2026-01-01T00:00:00.005Z");
        // 2024-02-29 (leap day) 23:59:59.999
        assert_eq!(
            rfc3339_utc(t(1_709_251_199, 999)),
            "2024-02-29T23:59:59.999Z"
        );
        assert_eq!(rfc3339_utc(t(951_782_400, 0)), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            rfc3339_utc(SystemTime::UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn appended_entries_survive_reopen_and_never_hold_the_token() {
        // Goal: entries read back after reopening, in order, with the caller's token id
        // and never the token.
        let d = dir("reopen");
        let path = d.join("audit.jsonl");
        let c = caller();
        {
            let log = AuditLog::open(&path).unwrap();
            log.append(
                &AuditEntry::new(&c, "fault.inject", "fibre")
                    .detail(serde_json::json!({"kind": "down", "for_s": 60})),
            )
            .unwrap();
            log.append(&AuditEntry::new(&c, "fault.clear", "fibre"))
                .unwrap();
        }
        let log = AuditLog::open(&path).unwrap();
        log.append(&AuditEntry::new(&c, "fault.clear", "all").outcome("nothing to clear"))
            .unwrap();
        let tail = log.read_tail(10).unwrap();
        assert_eq!(tail.skipped, 0);
        let actions: Vec<&str> = tail.records.iter().map(|r| r.action.as_str()).collect();
        assert_eq!(actions, ["fault.inject", "fault.clear", "fault.clear"]);
        assert_eq!(tail.records[0].detail["for_s"], 60);
        assert_eq!(tail.records[2].outcome, "nothing to clear");
        assert!(
            tail.records
                .iter()
                .all(|r| r.token_id == c.token_id && r.role == Role::Chaos)
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(!text.contains(TOKEN));
        assert!(text.contains(&c.token_id));
        // The last two only.
        let last2 = log.read_tail(2).unwrap();
        assert_eq!(last2.records.len(), 2);
        assert_eq!(last2.records[1].target, "all");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn concurrent_appends_do_not_interleave() {
        // Goal: 8 threads × 25 appends give 200 whole, parseable lines.
        let d = dir("concurrent");
        let log = Arc::new(AuditLog::open(d.join("audit.jsonl")).unwrap());
        let c = caller();
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let log = Arc::clone(&log);
                let c = c.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let big = "x".repeat(500 + t * 100 + i);
                        log.append(
                            &AuditEntry::new(&c, "publish", format!("item-{t}-{i}"))
                                .detail(serde_json::json!({ "pad": big })),
                        )
                        .unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        let text = std::fs::read_to_string(log.path()).unwrap();
        let mut targets = std::collections::BTreeSet::new();
        for line in text.lines() {
            let r: AuditRecord = serde_json::from_str(line).expect("whole line");
            targets.insert(r.target);
        }
        assert_eq!(targets.len(), 200);
        let tail = log.read_tail(TAIL_MAX).unwrap();
        assert_eq!((tail.records.len(), tail.skipped), (200, 0));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_the_next_entry_starts_fresh() {
        // Goal: after a crash mid-line, reopen + append keeps both the old and new entries
        // readable, and the torn line is counted.
        let d = dir("torn");
        let path = d.join("audit.jsonl");
        let c = caller();
        AuditLog::open(&path)
            .unwrap()
            .append(&AuditEntry::new(&c, "publish", "a"))
            .unwrap();
        {
            let mut f = OpenOptions::new().append(true).open(&path).unwrap();
            f.write_all(b"{\"time\":\"2026-01-01T00:00:00.000Z\",\"ro")
                .unwrap();
        }
        let log = AuditLog::open(&path).unwrap();
        log.append(&AuditEntry::new(&c, "publish", "b")).unwrap();
        let tail = log.read_tail(10).unwrap();
        let targets: Vec<&str> = tail.records.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(targets, ["a", "b"]);
        assert_eq!(tail.skipped, 1);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn tail_reads_across_blocks() {
        // Goal: the backwards scan finds whole lines when entries straddle 64 KiB blocks.
        let d = dir("blocks");
        let log = AuditLog::open(d.join("audit.jsonl")).unwrap();
        let c = caller();
        for i in 0..300 {
            log.append(
                &AuditEntry::new(&c, "publish", format!("{i}"))
                    .detail(serde_json::json!({"pad": "y".repeat(700)})),
            )
            .unwrap();
        }
        let tail = log.read_tail(250).unwrap();
        assert_eq!(tail.skipped, 0);
        let got: Vec<String> = tail.records.iter().map(|r| r.target.clone()).collect();
        let want: Vec<String> = (50..300).map(|i| i.to_string()).collect();
        assert_eq!(got, want);
        assert!(log.read_tail(0).unwrap().records.is_empty());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn oversized_detail_is_replaced_not_written() {
        // Goal: a line never exceeds LINE_BYTES_MAX; the detail says it was cut.
        let d = dir("big");
        let log = AuditLog::open(d.join("audit.jsonl")).unwrap();
        let r = log
            .append(
                &AuditEntry::new(&caller(), "publish", "big")
                    .detail(serde_json::json!({"pad": "z".repeat(LINE_BYTES_MAX)})),
            )
            .unwrap();
        assert_eq!(r.detail["truncated"], true);
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(text.len() <= LINE_BYTES_MAX);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn open_fails_with_the_path_when_the_directory_is_missing() {
        // Goal: the error names the file.
        let p = std::env::temp_dir().join("sovereign-audit-no-such-dir-xyz/audit.jsonl");
        let e = AuditLog::open(&p).unwrap_err();
        assert!(
            e.to_string().contains("sovereign-audit-no-such-dir-xyz"),
            "{e}"
        );
    }
}
