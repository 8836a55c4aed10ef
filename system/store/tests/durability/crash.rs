//! A real process crash: this test binary runs itself as a child that writes and fsyncs
//! some records, stages more (writes and deletes), prints a marker and calls
//! `std::process::abort()`. The parent then opens the store and requires exactly the
//! fsynced state: nothing staged may survive, nothing fsynced may be missing.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use sovereign_logic::io::{DurableState, Key, Record};
use sovereign_store::fixtures::{applied, chunk, entry, outbox};
use sovereign_store::{PgStore, SqliteStore, Store};

/// Set in the child: which backend and where (`sqlite <dir>` or `pg <schema> <dir>`).
const CHILD_ENV: &str = "SOVEREIGN_STORE_CRASH_CHILD";
const MARKER: &str = "crash-child: staged, aborting now";

/// Fsynced by the child, in batches: outbox and applied records, entries, chunks.
const FSYNCED: u32 = 24;
/// Staged after the last fsync: never durable.
const STAGED: u32 = 10;

fn fsynced_record(i: u32) -> Record {
    match i % 4 {
        0 => outbox(&format!("7:{i}")),
        1 => applied(&format!("8:{i}")),
        2 => entry(&format!("item-{i}"), u64::from(i)),
        _ => chunk(i),
    }
}

fn staged_record(i: u32) -> Record {
    match i % 3 {
        0 => outbox(&format!("7:staged-{i}")),
        1 => applied(&format!("8:staged-{i}")),
        _ => entry(&format!("item-staged-{i}"), u64::from(i)),
    }
}

fn child_work(store: &dyn Store) {
    for i in 0..FSYNCED {
        store.write(&fsynced_record(i)).unwrap();
        if i % 5 == 4 {
            store.fsync().unwrap();
        }
    }
    store.fsync().unwrap();
    for i in 0..STAGED {
        store.write(&staged_record(i)).unwrap();
    }
    // Overwrite and delete fsynced records without an fsync: must not stick.
    store.write(&entry("item-2", 999)).unwrap();
    store.delete(&outbox("7:0").key()).unwrap();
    store.delete(&applied("8:1").key()).unwrap();
    println!("{MARKER}");
}

/// The child's entry point; does nothing in a normal test run.
#[test]
fn crash_child_entry_point() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split(' ').collect();
    match parts.as_slice() {
        ["sqlite", dir] => child_work(&SqliteStore::open(Path::new(dir)).unwrap()),
        ["pg", schema, dir] => {
            let conninfo = std::env::var("SOVEREIGN_TEST_PG").unwrap();
            child_work(&PgStore::connect_in_schema(&conninfo, schema, Path::new(dir)).unwrap())
        }
        _ => panic!("bad {CHILD_ENV}: {spec:?}"),
    }
    std::process::abort();
}

/// Run the child with `spec`, require that it got to the abort.
fn run_child(spec: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash::crash_child_entry_point",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, spec)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(MARKER),
        "the child did not reach the crash point: {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.signal(),
        Some(6),
        "expected SIGABRT: {:?}",
        out.status
    );
}

fn expected() -> DurableState {
    (0..FSYNCED)
        .map(|i| (fsynced_record(i).key(), fsynced_record(i)))
        .collect()
}

fn check(durable: &DurableState) {
    let want = expected();
    let missing: Vec<&Key> = want.keys().filter(|k| !durable.contains_key(k)).collect();
    let extra: Vec<&Key> = durable.keys().filter(|k| !want.contains_key(k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    for (k, r) in &want {
        assert_eq!(durable.get(k), Some(r), "{k:?} changed");
    }
}

#[test]
fn sqlite_keeps_exactly_the_fsynced_records_after_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("node");
    run_child(&format!("sqlite {}", node.display()));
    let rec = SqliteStore::open(&node).unwrap().recover().unwrap();
    assert!(rec.quarantined.is_empty());
    check(&rec.durable);
    // The first recovery cut what the abort left half written: a second finds nothing to
    // say and the same records.
    let again = SqliteStore::open(&node).unwrap().recover().unwrap();
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    assert_eq!(again.durable, rec.durable);
}

#[test]
fn postgres_keeps_exactly_the_fsynced_records_after_an_abort() {
    let Some(b) = crate::pg::backend("crash") else {
        return;
    };
    let node = b.chunk_dir().join("node");
    run_child(&format!("pg {} {}", b.guard.schema, node.display()));
    let rec = PgStore::connect_in_schema(&b.guard.conninfo, &b.guard.schema, &node)
        .unwrap()
        .recover()
        .unwrap();
    check(&rec.durable);
}
