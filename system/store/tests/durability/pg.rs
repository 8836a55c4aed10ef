//! PostgreSQL wired to the conformance checks, and its own tests: corrupt rows, calls
//! from a tokio worker, a dropped connection, the schema version. Each test works in a
//! schema of its own, dropped at the end, so tests run in parallel on one server.

use std::path::Path;

use sovereign_logic::io::Record;
use sovereign_store::fixtures::{applied, chunk, entry, outbox};
use sovereign_store::{PgStore, Store, StoreError};

use crate::common::{Backend, Failing, SchemaGuard, pg_conninfo, unique_schema};
use crate::conformance::{conformance_tests, failing_tests};

pub struct Pg {
    // Field order: the store's chunk directory goes after the schema is dropped.
    pub guard: SchemaGuard,
    pub dir: tempfile::TempDir,
}

impl Pg {
    pub fn chunk_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Backend for Pg {
    type S = PgStore;
    fn open(&self) -> PgStore {
        PgStore::connect_in_schema(&self.guard.conninfo, &self.guard.schema, self.chunk_dir())
            .unwrap_or_else(|e| panic!("connect the PostgreSQL store: {e}"))
    }
    fn crash(&self, store: PgStore) {
        // Staged changes live only in the dropped value; the connection closes.
        drop(store);
    }
}

/// A fresh schema and chunk directory for `test`, or `None` when there is no server.
pub fn backend(test: &str) -> Option<Pg> {
    let conninfo = pg_conninfo(test)?;
    Some(Pg {
        guard: SchemaGuard {
            conninfo,
            schema: unique_schema(test),
        },
        dir: tempfile::tempdir().unwrap(),
    })
}

/// Commits fail with the server's own error: a constraint no new row can meet (`NOT
/// VALID`: the rows already there are not checked).
impl Failing for Pg {
    fn break_commits(&self, _store: &PgStore) {
        let schema = &self.guard.schema;
        self.guard
            .client()
            .batch_execute(&format!(
                "ALTER TABLE {schema}.records ADD CONSTRAINT test_fail CHECK (false) NOT VALID"
            ))
            .expect("add the failing constraint");
    }
    fn mend_commits(&self, _store: &PgStore) {
        let schema = &self.guard.schema;
        self.guard
            .client()
            .batch_execute(&format!(
                "ALTER TABLE {schema}.records DROP CONSTRAINT test_fail"
            ))
            .expect("drop the failing constraint");
    }
}

conformance_tests!(backend);
failing_tests!(backend);

#[test]
fn every_record_kind_round_trips() {
    // Goal: entry, outbox, applied and chunk records come back from PostgreSQL exactly.
    let Some(b) = backend("kinds") else { return };
    let records = vec![
        entry("item-1", 4),
        outbox("7:00000001"),
        applied("9:x"),
        chunk(5),
    ];
    let s = b.open();
    for r in &records {
        s.write(r).unwrap();
    }
    s.fsync().unwrap();
    b.crash(s);
    let got: Vec<Record> = b.open().recover().unwrap().durable.into_values().collect();
    let mut want = records;
    want.sort_by_key(Record::key);
    assert_eq!(got, want);
}

#[test]
fn a_row_that_does_not_decode_is_reported_by_kind_and_name() {
    // Goal: garbage in the table is a Corrupt error naming the row, not a panic.
    let Some(b) = backend("corrupt_row") else {
        return;
    };
    let s = b.open();
    s.write(&entry("fine", 1)).unwrap();
    s.fsync().unwrap();
    let mut c = b.guard.client();
    c.execute(
        &format!(
            "INSERT INTO {}.records VALUES ('applied', '7:bad', $1)",
            b.guard.schema
        ),
        &[&b"{not json".to_vec()],
    )
    .unwrap();
    let err = s.recover().unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("applied/7:bad"), "{err}");
}

#[test]
fn works_when_called_from_a_tokio_worker_thread() {
    // Goal: the sync postgres client is never used on the caller's (tokio) thread, where
    // it would panic ("Cannot start a runtime from within a runtime").
    let Some(b) = backend("tokio") else { return };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let b = std::sync::Arc::new(b);
    let b2 = b.clone();
    let got = rt.block_on(async move {
        tokio::spawn(async move {
            let s = b2.open();
            s.write(&outbox("7:1")).unwrap();
            s.fsync().unwrap();
            let n = s.recover().unwrap().durable.len();
            drop(s);
            n
        })
        .await
    });
    assert_eq!(got.expect("the task did not panic"), 1);
}

#[test]
fn a_dropped_connection_is_reopened_and_a_failed_fsync_discarded() {
    // Goal: when the server drops the store's connection, an fsync fails at most once;
    // the changes a failed fsync carried are discarded (the logic writes them again), the
    // store reconnects, and the next fsync commits.
    let Some(b) = backend("reconnect") else {
        return;
    };
    let app = format!("sv_{}", b.guard.schema);
    let conninfo = format!("{} application_name={app}", b.guard.conninfo);
    let s = PgStore::connect_in_schema(&conninfo, &b.guard.schema, b.chunk_dir()).unwrap();
    s.write(&entry("a", 1)).unwrap();
    s.fsync().unwrap();
    let mut admin = b.guard.client();
    let killed: bool = admin
        .query_one(
            "SELECT count(*) = 1 FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1) t",
            &[&app],
        )
        .unwrap()
        .get(0);
    assert!(killed, "the store's backend was not found to terminate");
    s.write(&entry("b", 1)).unwrap();
    let mut failures = 0;
    while let Err(e) = s.fsync() {
        failures += 1;
        assert!(failures < 2, "fsync failed twice after a reconnect: {e}");
        // What the logic does after a failed fsync: the write again.
        s.write(&entry("b", 1)).unwrap();
    }
    s.write(&entry("c", 1)).unwrap();
    s.fsync().unwrap();
    drop(s);
    let got = b.open().recover().unwrap().durable;
    assert_eq!(
        got.into_values().collect::<Vec<_>>(),
        vec![entry("a", 1), entry("b", 1), entry("c", 1)]
    );
}

#[test]
fn a_newer_schema_version_is_refused() {
    // Goal: a store never writes into tables of a schema version it does not know.
    let Some(b) = backend("version") else { return };
    drop(b.open());
    let mut c = b.guard.client();
    c.execute(
        &format!("UPDATE {}.store_meta SET version = 9", b.guard.schema),
        &[],
    )
    .unwrap();
    let err = PgStore::connect_in_schema(&b.guard.conninfo, &b.guard.schema, b.chunk_dir())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[9]") && err.contains(&b.guard.schema),
        "{err}"
    );
}
