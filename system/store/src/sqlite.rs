//! The embedded default backend: records in one SQLite file, chunks in a [`ChunkDir`].
//!
//! Files under the store's directory `DIR`: `DIR/sovereign.db` (plus SQLite's `-wal` and
//! `-shm` files), and the chunk directory (`DIR/chunks`, `DIR/quarantine`).
//!
//! Durability: the database runs with `journal_mode=WAL` and `synchronous=FULL`. In WAL
//! mode with `FULL`, a commit appends the transaction to the WAL and fsyncs the WAL before
//! `COMMIT` returns, so a returned commit survives a power cut; that commit is our
//! acknowledgement (`NORMAL` would only fsync at checkpoints, and could lose the last
//! commits). Writes and deletes of records are staged in memory, in order, and applied in
//! one transaction by [`Store::fsync`], after the chunk directory is synced: nothing the
//! logic has not fsynced reaches the file, and a crash loses exactly the staged ones. A
//! failed commit is rolled back and its changes discarded (with the chunk files created
//! for them): a full disk (`SQLITE_FULL`) usually fails before the commit frame reaches the WAL,
//! but an error from the WAL's own fsync comes after the frames were written, and SQLite's
//! recovery at the next open may then find the transaction — the outcome of a failed
//! commit is unknown, and the servers say so.
//!
//! Map: [`SqliteStore`] (`open`, the [`Store`] methods), [`SCHEMA_VERSION`].
//!
//! Not covered: schema migrations (there is one version; a newer file is refused),
//! several processes on one directory, WAL checkpoint tuning (SQLite's automatic
//! checkpoint at 1000 pages is used).
//!
//! [`Store`]: crate::Store
//! [`Store::fsync`]: crate::Store::fsync

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, params};

use crate::staged::{Rows, Staged, StagedBackend};
use crate::{ChunkStore, StoreError, io_err, lock};

/// The schema this code writes, kept in SQLite's `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for a lock held by another connection (a backup tool, an
/// operator's `sqlite3` shell) before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Records in SQLite, chunks in a [`ChunkDir`]; see the module doc.
pub struct SqliteStore {
    /// `DIR/sovereign.db`, for error messages.
    path: PathBuf,
    chunks: ChunkStore,
    /// A std `Mutex`: every use is short, synchronous and on the caller's thread (the
    /// trait methods are sync); rusqlite's `Connection` is `Send` but not `Sync`.
    conn: Mutex<Connection>,
    /// Record changes since the last successful fsync, in order.
    staged: Mutex<Vec<Staged>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("staged", &lock(&self.staged).len())
            .finish()
    }
}

impl SqliteStore {
    /// Open (creating if needed) the store in `dir`: the directory, `dir/sovereign.db`
    /// with its schema, and the chunk directory.
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(io_err(format!("create directory {}", dir.display())))?;
        let chunks = ChunkStore::open(dir)?;
        let path = dir.join("sovereign.db");
        let db = |what: &str| {
            let p = path.display().to_string();
            let what = what.to_string();
            move |e: rusqlite::Error| StoreError::Db(format!("{p}: {what}: {e}"))
        };
        let conn = Connection::open(&path).map_err(db("open"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(db("set busy_timeout"))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(db("set journal_mode=WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Db(format!(
                "{}: journal_mode is {mode:?}, expected \"wal\"",
                path.display()
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db("set synchronous=FULL"))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db("read user_version"))?;
        match version {
            0 => {
                conn.execute_batch(
                    "BEGIN;
                     CREATE TABLE IF NOT EXISTS records (
                         kind  TEXT NOT NULL,
                         name  TEXT NOT NULL,
                         value BLOB NOT NULL,
                         PRIMARY KEY (kind, name)
                     ) WITHOUT ROWID;
                     PRAGMA user_version = 1;
                     COMMIT;",
                )
                .map_err(db("create schema"))?;
            }
            SCHEMA_VERSION => {}
            other => {
                return Err(StoreError::Db(format!(
                    "{}: schema version {other}, this build reads version {SCHEMA_VERSION}",
                    path.display()
                )));
            }
        }
        Ok(SqliteStore {
            path,
            chunks,
            conn: Mutex::new(conn),
            staged: Mutex::new(Vec::new()),
        })
    }

    /// The chunk directory (for tools and tests).
    pub fn chunk_dir(&self) -> &ChunkStore {
        &self.chunks
    }

    /// The database file.
    pub fn db_path(&self) -> &Path {
        &self.path
    }

    fn db_err(&self, what: &str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        let p = self.path.display().to_string();
        let what = what.to_string();
        move |e| StoreError::Db(format!("{p}: {what}: {e}"))
    }
}

const _: () = assert!(
    SCHEMA_VERSION == 1,
    "the CREATE TABLE in open() sets version 1"
);

// The `Store` methods come from `StagedBackend`'s blanket impl.
impl StagedBackend for SqliteStore {
    fn chunks(&self) -> &ChunkStore {
        &self.chunks
    }

    fn staged(&self) -> &Mutex<Vec<Staged>> {
        &self.staged
    }

    fn commit_staged(&self, ops: &[Staged]) -> Result<(), StoreError> {
        let mut conn = lock(&self.conn);
        let result = self.apply(&mut conn, ops);
        if result.is_err() && !conn.is_autocommit() {
            // rusqlite rolls back a failed transaction when it drops it, ignoring errors;
            // a transaction still open here would make every later commit fail.
            if let Err(e) = conn.execute_batch("ROLLBACK") {
                return Err(StoreError::Db(format!(
                    "{}: rollback after a failed commit: {e} (after: {})",
                    self.path.display(),
                    result.err().map(|e| e.to_string()).unwrap_or_default()
                )));
            }
        }
        result
    }

    fn load_rows(&self) -> Result<Rows, StoreError> {
        let conn = lock(&self.conn);
        let mut stmt = conn
            .prepare("SELECT kind, name, value FROM records ORDER BY kind, name")
            .map_err(self.db_err("prepare select"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(self.db_err("select records"))?;
        rows.collect::<Result<Rows, _>>()
            .map_err(self.db_err("read records"))
    }
}

impl SqliteStore {
    /// `ops` in one transaction, committed. On an error the transaction is rolled back
    /// when `tx` drops.
    fn apply(&self, conn: &mut Connection, ops: &[Staged]) -> Result<(), StoreError> {
        let tx = conn.transaction().map_err(self.db_err("begin"))?;
        {
            let mut put = tx
                .prepare_cached(
                    "INSERT INTO records (kind, name, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (kind, name) DO UPDATE SET value = excluded.value",
                )
                .map_err(self.db_err("prepare insert"))?;
            let mut del = tx
                .prepare_cached("DELETE FROM records WHERE kind = ?1 AND name = ?2")
                .map_err(self.db_err("prepare delete"))?;
            for op in ops {
                match op {
                    Staged::Put { kind, name, value } => put
                        .execute(params![kind, name, value])
                        .map_err(self.db_err(&format!("write {kind}/{name}")))?,
                    Staged::Delete { kind, name } => del
                        .execute(params![kind, name])
                        .map_err(self.db_err(&format!("delete {kind}/{name}")))?,
                };
            }
        }
        // On any error above, dropping `tx` rolls back.
        tx.commit().map_err(self.db_err("commit"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::fixtures::{applied, chunk, entry, outbox};
    use sovereign_logic::io::Record;
    use sovereign_wire::encode_record;

    #[test]
    fn staged_writes_are_lost_without_fsync_and_kept_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let records = [entry("a", 1), outbox("7:1"), applied("7:2")];
        {
            let s = SqliteStore::open(dir.path()).unwrap();
            for r in &records {
                s.write(r).unwrap();
            }
            // Not even this process sees them before the fsync.
            assert!(s.recover().unwrap().durable.is_empty());
        } // dropped without fsync: what a crash does to the staged writes
        let s = SqliteStore::open(dir.path()).unwrap();
        assert!(s.recover().unwrap().durable.is_empty());
        for r in &records {
            s.write(r).unwrap();
        }
        s.fsync().unwrap();
        drop(s);
        let got = SqliteStore::open(dir.path()).unwrap().recover().unwrap();
        let want: Vec<_> = records.iter().map(|r| (r.key(), r.clone())).collect();
        assert_eq!(got.durable.into_iter().collect::<Vec<_>>(), {
            let mut w = want;
            w.sort_by(|a, b| a.0.cmp(&b.0));
            w
        });
    }

    #[test]
    fn staged_deletes_apply_at_fsync_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        s.write(&entry("a", 1)).unwrap();
        s.write(&entry("b", 1)).unwrap();
        s.fsync().unwrap();
        s.delete(&entry("a", 1).key()).unwrap();
        drop(s);
        let s = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(
            s.recover().unwrap().durable.len(),
            2,
            "unsynced delete survived"
        );
        // Order within one fsync: delete-then-write keeps, write-then-delete removes.
        s.delete(&entry("a", 1).key()).unwrap();
        s.write(&entry("a", 2)).unwrap();
        s.write(&entry("c", 1)).unwrap();
        s.delete(&entry("c", 1).key()).unwrap();
        s.delete(&entry("b", 1).key()).unwrap();
        s.fsync().unwrap();
        drop(s);
        let got = SqliteStore::open(dir.path())
            .unwrap()
            .recover()
            .unwrap()
            .durable;
        assert_eq!(
            got.values().cloned().collect::<Vec<_>>(),
            vec![entry("a", 2)]
        );
    }

    #[test]
    fn a_batch_of_writes_is_the_same_as_writing_each_in_turn() {
        // Goal: `write_many` (chunks written together, records staged in order) answers
        // one result per record in order and leaves the store as the same writes one by
        // one would; it stops at the first failure (a chunk whose bytes are not its
        // name), staging nothing after it, and a discard then leaves nothing behind.
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        let mut records: Vec<Record> = (0..40).map(chunk).collect();
        records.insert(7, entry("a", 1));
        records.push(outbox("7:1"));
        let Record::Chunk(good) = chunk(99) else {
            unreachable!()
        };
        let bad = Record::Chunk(sovereign_logic::content::Chunk {
            hash: good.hash,
            bytes: good.bytes.slice(1..),
        });
        let mut with_bad = records.clone();
        with_bad.insert(20, bad);
        let results = s.write_many(&with_bad);
        assert_eq!(results.len(), 21, "results up to the failure: {results:?}");
        assert!(results[..20].iter().all(Result::is_ok));
        assert!(results[20].is_err());
        assert!(
            lock(&s.staged).len() <= 1,
            "nothing staged after the failure"
        );
        s.discard().unwrap();
        s.fsync().unwrap();
        assert!(s.recover().unwrap().durable.is_empty());
        assert_eq!(
            std::fs::metadata(dir.path().join("packs/00000001.pack"))
                .unwrap()
                .len(),
            0,
            "bytes left in the pack by the failed batch"
        );
        // The whole batch, all good.
        let results = s.write_many(&records);
        assert_eq!(results.len(), records.len());
        assert!(results.iter().all(Result::is_ok));
        s.fsync().unwrap();
        drop(s);
        let got = SqliteStore::open(dir.path()).unwrap().recover().unwrap();
        assert_eq!(got.durable.len(), records.len());
        for r in &records {
            assert_eq!(got.durable.get(&r.key()), Some(r));
        }
    }

    #[test]
    fn chunks_go_to_files_and_are_synced_before_the_commit() {
        // A store that already has a chunk directory keeps it (a new store packs).
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("chunks/00")).unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        assert!(s.chunk_dir().files().is_some());
        let c = chunk(3);
        s.write(&c).unwrap();
        s.write(&entry("a", 1)).unwrap();
        let Record::Chunk(ch) = &c else {
            unreachable!()
        };
        let files = |s: &SqliteStore| s.chunk_dir().files().unwrap().path_of(&ch.hash);
        // The chunk reads at once (from its temp file); it is under its name only once
        // the fsync flushed it.
        assert!(!files(&s).exists());
        assert_eq!(s.chunk(&ch.hash).unwrap(), Some(ch.bytes.clone()));
        s.fsync().unwrap();
        assert!(files(&s).is_file());
        let tmp = dir.path().join("chunks/tmp");
        assert_eq!(
            std::fs::read_dir(&tmp).unwrap().count(),
            0,
            "temp file left"
        );
        drop(s);
        let got = SqliteStore::open(dir.path()).unwrap().recover().unwrap();
        assert_eq!(got.durable.get(&c.key()), Some(&c));
        assert_eq!(got.durable.len(), 2);
        // Deleting a chunk removes its file.
        let s = SqliteStore::open(dir.path()).unwrap();
        s.delete(&c.key()).unwrap();
        s.fsync().unwrap();
        assert_eq!(s.chunk(&ch.hash).unwrap(), None);
        assert!(!s.recover().unwrap().durable.contains_key(&c.key()));
    }

    #[test]
    fn recover_quarantines_a_corrupted_chunk_in_either_layout() {
        for files in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            if files {
                std::fs::create_dir_all(dir.path().join("chunks/00")).unwrap();
            }
            let s = SqliteStore::open(dir.path()).unwrap();
            assert_eq!(s.chunk_dir().files().is_some(), files);
            let (good, bad) = (chunk(1), chunk(2));
            s.write(&good).unwrap();
            s.write(&bad).unwrap();
            s.fsync().unwrap();
            let rotten = s.corrupt_one().unwrap().unwrap();
            drop(s);
            let got = SqliteStore::open(dir.path()).unwrap().recover().unwrap();
            assert_eq!(got.quarantined, vec![rotten], "files: {files}");
            assert_eq!(got.durable.len(), 1);
            assert!(
                !got.durable
                    .contains_key(&sovereign_logic::io::Key::Chunk(rotten))
            );
            assert!(
                dir.path()
                    .join("quarantine")
                    .join(rotten.to_hex())
                    .is_file()
            );
        }
    }

    #[test]
    fn a_row_that_does_not_decode_is_reported_by_kind_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        s.write(&entry("fine", 1)).unwrap();
        s.fsync().unwrap();
        drop(s);
        let raw = Connection::open(dir.path().join("sovereign.db")).unwrap();
        raw.execute(
            "INSERT INTO records VALUES ('outbox', '7:broken', ?1)",
            [b"{\"key\":\"7:broken\"".to_vec()],
        )
        .unwrap();
        drop(raw);
        let err = SqliteStore::open(dir.path())
            .unwrap()
            .recover()
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("outbox/7:broken"), "{msg}");

        // A well-formed record filed under someone else's name is corrupt too.
        let raw = Connection::open(dir.path().join("sovereign.db")).unwrap();
        raw.execute("DELETE FROM records WHERE name = '7:broken'", [])
            .unwrap();
        let value = encode_record(&entry("b", 1)).unwrap();
        raw.execute("INSERT INTO records VALUES ('entry', 'a', ?1)", [value])
            .unwrap();
        drop(raw);
        let msg = SqliteStore::open(dir.path())
            .unwrap()
            .recover()
            .unwrap_err()
            .to_string();
        assert!(msg.contains("entry/a") && msg.contains("entry/b"), "{msg}");
    }

    #[test]
    fn the_file_runs_in_wal_mode_with_full_sync_and_a_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        let conn = lock(&s.conn);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!((mode.as_str(), sync, version), ("wal", 2, SCHEMA_VERSION));
        drop(conn);
        drop(s);
        let raw = Connection::open(dir.path().join("sovereign.db")).unwrap();
        raw.pragma_update(None, "user_version", 9).unwrap();
        drop(raw);
        let msg = SqliteStore::open(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("sovereign.db") && msg.contains("schema version 9"),
            "{msg}"
        );
    }
}
