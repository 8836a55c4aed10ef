//! SQLite wired to the conformance checks. (Its own tests are in `src/sqlite.rs`.)

use std::path::PathBuf;

use sovereign_store::SqliteStore;

use crate::common::Backend;
use crate::conformance::conformance_tests;

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

fn backend(_test: &str) -> Option<Sqlite> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node");
    Some(Sqlite { _dir: dir, path })
}

conformance_tests!(backend);
