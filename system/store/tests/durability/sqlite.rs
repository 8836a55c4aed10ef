//! SQLite wired to the conformance checks, and the injected faults over SQLite. (Its own
//! tests are in `src/sqlite.rs`.)
//!
//! Commits are made to fail with SQLite's own error path: a trigger, installed through a
//! second connection, aborts every insert into `records`, so the store's transaction fails
//! and is rolled back as on `SQLITE_FULL`.

use std::path::PathBuf;

use sovereign_store::{Faults, FaultyStore, SqliteStore};

use crate::common::{Backend, Failing};
use crate::conformance::{conformance_tests, failing_tests};

pub struct Sqlite {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Backend for Sqlite {
    type S = SqliteStore;
    fn open(&self) -> SqliteStore {
        SqliteStore::open(&self.path).expect("open the SQLite store")
    }
    fn crash(&self, store: SqliteStore) {
        // The staged changes live only in the dropped value.
        drop(store);
    }
}

impl Failing for Sqlite {
    fn break_commits(&self, _store: &SqliteStore) {
        self.sql(
            "CREATE TRIGGER test_fail BEFORE INSERT ON records \
             BEGIN SELECT RAISE(ABORT, 'commit refused by the test'); END",
        );
    }
    fn mend_commits(&self, _store: &SqliteStore) {
        self.sql("DROP TRIGGER test_fail");
    }
}

impl Sqlite {
    fn sql(&self, sql: &str) {
        let c = rusqlite::Connection::open(self.path.join("sovereign.db")).unwrap();
        c.execute_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

fn backend(_test: &str) -> Option<Sqlite> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node");
    Some(Sqlite { _dir: dir, path })
}

conformance_tests!(backend);
failing_tests!(backend);

/// The injected faults (`/admin/faults`) over SQLite: fsync failures from the switchboard.
mod faulty {
    use super::*;

    pub struct FaultySqlite {
        inner: Sqlite,
        faults: Faults,
    }

    impl Backend for FaultySqlite {
        type S = FaultyStore<SqliteStore>;
        fn open(&self) -> Self::S {
            FaultyStore::new(self.inner.open(), self.faults.clone())
        }
        fn crash(&self, store: Self::S) {
            drop(store);
        }
    }

    impl Failing for FaultySqlite {
        fn break_commits(&self, _store: &Self::S) {
            self.faults.fail_fsyncs_until_cleared();
        }
        fn mend_commits(&self, _store: &Self::S) {
            self.faults.clear();
        }
    }

    fn backend(test: &str) -> Option<FaultySqlite> {
        Some(FaultySqlite {
            inner: super::backend(test)?,
            faults: Faults::new(),
        })
    }

    conformance_tests!(backend);
    failing_tests!(backend);
}
