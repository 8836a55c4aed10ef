//! The seam the conformance checks drive, and the PostgreSQL test setup.

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};

use sovereign_store::Store;

/// A backend under test: how to (re)open its store, and what a crash does to it.
pub trait Backend {
    /// The store type.
    type S: Store;
    /// Open the store on the backend's durable state (as a restarted process would).
    fn open(&self) -> Self::S;
    /// The process died holding `store`: whatever it had not fsynced is gone.
    fn crash(&self, store: Self::S);
}

/// A backend whose commits a test can make fail, the way a full disk or a failing fsync
/// does (with the backend's own error path, where it has one).
pub trait Failing: Backend {
    /// From now on, every fsync with records to commit fails.
    fn break_commits(&self, store: &Self::S);
    /// Commits work again.
    fn mend_commits(&self, store: &Self::S);
}

/// The PostgreSQL connection string for tests, or `None` (after a loud message) when
/// there is no server to test against outside CI. In CI (`CI` set) a missing server is a
/// failure: CI must run these tests.
pub fn pg_conninfo(test: &str) -> Option<String> {
    match std::env::var("SOVEREIGN_TEST_PG") {
        Ok(c) if !c.trim().is_empty() => Some(c),
        _ if std::env::var_os("CI").is_some() => panic!(
            "{test}: SOVEREIGN_TEST_PG is not set but CI is: start a server with \
             `eval \"$(scripts/pg-test-server.sh start)\"` before the tests"
        ),
        _ => {
            // Straight to the process's stderr: libtest captures `eprintln!` of passing
            // tests, and a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** {test}: SKIPPED (PostgreSQL): set SOVEREIGN_TEST_PG, e.g. \
                 eval \"$(scripts/pg-test-server.sh start)\" ***"
            );
            None
        }
    }
}

/// A schema name unique to this test in this process (tests run in parallel, and
/// several test processes may share one server).
pub fn unique_schema(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let short: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(30)
        .collect();
    format!("t_{short}_{}_{n}", std::process::id())
}

/// Drops its schema (and everything in it) when the test ends, pass or fail.
pub struct SchemaGuard {
    pub conninfo: String,
    pub schema: String,
}

impl SchemaGuard {
    /// A plain client for the test's own SQL (not inside a tokio runtime).
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.conninfo, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.conninfo))
    }
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.conninfo, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}
