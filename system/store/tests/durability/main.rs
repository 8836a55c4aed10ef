//! Durability tests of the real backends, one binary: the same conformance checks run
//! against SQLite, PostgreSQL and the in-memory store, plus a real process crash.
//!
//! Map: `common` (the [`common::Backend`] seam, PostgreSQL test setup), `conformance`
//! (checks any backend must pass), `sqlite`, `mem`, `pg` (backends wired to the checks,
//! and backend-specific tests), `crash` (a child process that aborts mid-work).
//!
//! PostgreSQL tests need a server: `eval "$(scripts/pg-test-server.sh start)"` sets
//! `SOVEREIGN_TEST_PG`. Without it they print a loud skip, or fail when `CI` is set.
//!
//! Not covered: power cuts (a process crash keeps the OS page cache; only a VM or a
//! fault-injecting filesystem could test the directory fsyncs for real).

mod common;
mod conformance;
mod crash;
mod mem;
mod pg;
mod sqlite;
