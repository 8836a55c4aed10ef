//! The PostgreSQL backend: records in a `records` table, chunks in a local [`ChunkDir`].
//!
//! The `postgres` crate's synchronous `Client` runs its own tokio runtime and panics when
//! used on a thread that is already inside one, and the [`Store`] methods are called from
//! a tokio worker. So a [`PgStore`] owns a dedicated thread that holds the `Client`; each
//! call sends a request with its own reply channel over a std `mpsc` channel and waits
//! for the answer (at most [`REPLY_TIMEOUT`]). The thread reconnects when it finds the
//! connection closed (a server restart), and ends when the `PgStore` is dropped.
//!
//! Durability: record writes and deletes are staged in memory, in order; [`Store::fsync`]
//! syncs the chunk directory, then sends the staged changes to the thread, which applies
//! them in one transaction and commits with `synchronous_commit = on` (set for the
//! session, whatever the server's default), so a returned commit is in the server's
//! fsynced WAL. On any failure the changes are discarded (with the chunk files created for
//! them), never sent again: the logic was told they are not durable. A commit whose answer
//! was lost (the connection dropped during `COMMIT`, or [`REPLY_TIMEOUT`] passed while the
//! thread still works) may have landed all the same: its outcome is unknown, which the
//! servers tell their clients.
//!
//! Schema (created if missing): `records(kind TEXT, name TEXT, value BYTEA, PRIMARY KEY
//! (kind, name))` and `store_meta(version INTEGER)`, in the connection's default schema
//! ([`PgStore::connect`]) or a named one ([`PgStore::connect_in_schema`], which creates it).
//!
//! Chunks stay on the local filesystem. An S3 (or other object store) seam: chunks are only
//! touched through `ChunkDir`'s `put`/`get`/`delete`/`sync`/`scan`; an object-store type
//! with those verbs (put = PUT-if-absent, sync = nothing, since a PUT is durable when
//! acknowledged) would replace the field below.
//!
//! Map: [`PgStore`] (`connect`, `connect_in_schema`, the [`Store`] methods), the worker
//! thread (`worker`), [`REPLY_TIMEOUT`].
//!
//! Not covered: TLS (NoTls: loopback or a trusted network), connection pooling (one
//! connection per store), names or kinds with NUL bytes (PostgreSQL's `text` refuses
//! them; such a record fails at fsync with a database error).
//!
//! [`Store`]: crate::Store
//! [`Store::fsync`]: crate::Store::fsync

use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use ::postgres::{Client, Config, NoTls};

use crate::staged::{Rows, Staged, StagedBackend};
use crate::{ChunkStore, StoreError, lock};

/// The schema version this code writes into `store_meta`.
pub const SCHEMA_VERSION: i32 = 1;

/// How long a call waits for the database thread's answer before it gives up (the thread
/// may still finish the request: a commit given up on this way has an unknown outcome).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// What the database thread is asked to do.
enum Request {
    /// Apply the changes in one transaction and commit.
    Commit {
        ops: Vec<Staged>,
        reply: mpsc::Sender<Result<(), StoreError>>,
    },
    /// Read every row, ordered by kind and name.
    Load {
        reply: mpsc::Sender<Result<Rows, StoreError>>,
    },
}

/// Records in PostgreSQL, chunks in a local [`ChunkDir`]; see the module doc.
pub struct PgStore {
    /// For error messages: host, port, database, schema (never the password).
    target: String,
    chunks: ChunkStore,
    /// Record changes since the last successful fsync, in order.
    staged: Mutex<Vec<Staged>>,
    /// To the database thread, which handles requests one by one in arrival order.
    /// `None` only while dropping.
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .field("staged", &lock(&self.staged).len())
            .finish()
    }
}

/// `s` is a plain lower-case SQL identifier (safe to splice into statements unquoted).
fn is_identifier(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(b'a'..=b'z' | b'_'))
        && b.all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && s.len() <= 63
}

/// The statements, with the table names of one schema spliced in.
struct Sql {
    create: String,
    upsert: String,
    delete: String,
    select: String,
    meta: String,
}

impl Sql {
    fn new(schema: Option<&str>) -> Sql {
        let q = |t: &str| match schema {
            Some(s) => format!("{s}.{t}"),
            None => t.to_string(),
        };
        let (records, meta) = (q("records"), q("store_meta"));
        let create_schema = match schema {
            Some(s) => format!("CREATE SCHEMA IF NOT EXISTS {s};"),
            None => String::new(),
        };
        Sql {
            create: format!(
                "{create_schema}
                 CREATE TABLE IF NOT EXISTS {records} (
                     kind  TEXT  NOT NULL,
                     name  TEXT  NOT NULL,
                     value BYTEA NOT NULL,
                     PRIMARY KEY (kind, name)
                 );
                 CREATE TABLE IF NOT EXISTS {meta} (version INTEGER NOT NULL);"
            ),
            upsert: format!(
                "INSERT INTO {records} (kind, name, value) VALUES ($1, $2, $3)
                 ON CONFLICT (kind, name) DO UPDATE SET value = EXCLUDED.value"
            ),
            delete: format!("DELETE FROM {records} WHERE kind = $1 AND name = $2"),
            select: format!("SELECT kind, name, value FROM {records} ORDER BY kind, name"),
            meta,
        }
    }
}

fn db(target: &str, what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(format!("postgres {target}: {what}: {e}"))
}

/// Connect, force durable commits, create the schema if missing, check its version.
fn open_client(config: &Config, sql: &Sql, target: &str) -> Result<Client, StoreError> {
    let mut client = config
        .connect(NoTls)
        .map_err(|e| db(target, "connect", e))?;
    client
        .batch_execute("SET synchronous_commit = on")
        .map_err(|e| db(target, "set synchronous_commit", e))?;
    let mut tx = client.transaction().map_err(|e| db(target, "begin", e))?;
    // Serialise concurrent first starts on one database (two stores creating the schema).
    tx.batch_execute("SELECT pg_advisory_xact_lock(7388)")
        .map_err(|e| db(target, "lock for schema creation", e))?;
    tx.batch_execute(&sql.create)
        .map_err(|e| db(target, "create schema", e))?;
    let versions: Vec<i32> = tx
        .query(&format!("SELECT version FROM {}", sql.meta), &[])
        .map_err(|e| db(target, "read schema version", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    match versions.as_slice() {
        [] => {
            tx.execute(
                &format!("INSERT INTO {} (version) VALUES ($1)", sql.meta),
                &[&SCHEMA_VERSION],
            )
            .map_err(|e| db(target, "write schema version", e))?;
        }
        [SCHEMA_VERSION] => {}
        other => {
            return Err(db(
                target,
                "schema version",
                format!("found {other:?} in store_meta, this build reads version {SCHEMA_VERSION}"),
            ));
        }
    }
    tx.commit().map_err(|e| db(target, "commit schema", e))?;
    Ok(client)
}

fn commit(client: &mut Client, sql: &Sql, target: &str, ops: &[Staged]) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(|e| db(target, "begin", e))?;
    let upsert = tx
        .prepare(&sql.upsert)
        .map_err(|e| db(target, "prepare insert", e))?;
    let delete = tx
        .prepare(&sql.delete)
        .map_err(|e| db(target, "prepare delete", e))?;
    for op in ops {
        match op {
            Staged::Put { kind, name, value } => tx
                .execute(&upsert, &[kind, name, value])
                .map_err(|e| db(target, &format!("write {kind}/{name}"), e))?,
            Staged::Delete { kind, name } => tx
                .execute(&delete, &[kind, name])
                .map_err(|e| db(target, &format!("delete {kind}/{name}"), e))?,
        };
    }
    tx.commit().map_err(|e| db(target, "commit", e))
}

fn load(client: &mut Client, sql: &Sql, target: &str) -> Result<Rows, StoreError> {
    Ok(client
        .query(&sql.select, &[])
        .map_err(|e| db(target, "select records", e))?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// The database thread: serve requests until every sender is gone.
fn worker(
    config: Config,
    sql: Sql,
    target: String,
    mut client: Client,
    requests: mpsc::Receiver<Request>,
) {
    for request in requests {
        if client.is_closed() {
            // A server restart or a dropped connection: try once per request. On failure
            // the request gets the error and the next one tries again.
            match open_client(&config, &sql, &target) {
                Ok(c) => client = c,
                Err(e) => {
                    // The receiver may have timed out and gone; nothing else to tell.
                    match request {
                        Request::Commit { reply, .. } => drop(reply.send(Err(e))),
                        Request::Load { reply } => drop(reply.send(Err(e))),
                    }
                    continue;
                }
            }
        }
        // A send fails only if the caller timed out and left; nothing more to do.
        match request {
            Request::Commit { ops, reply } => {
                drop(reply.send(commit(&mut client, &sql, &target, &ops)));
            }
            Request::Load { reply } => drop(reply.send(load(&mut client, &sql, &target))),
        }
    }
}

impl PgStore {
    /// Connect to `conninfo` (libpq key=value form or a `postgresql://` URL), create the
    /// tables in the connection's default schema if missing, keep chunks under
    /// `chunk_dir` (created if needed).
    pub fn connect(conninfo: &str, chunk_dir: &Path) -> Result<PgStore, StoreError> {
        PgStore::start(conninfo, None, chunk_dir)
    }

    /// As [`PgStore::connect`], with the tables in `schema` (created if missing; a plain
    /// lower-case identifier): several stores, or parallel tests, on one database.
    pub fn connect_in_schema(
        conninfo: &str,
        schema: &str,
        chunk_dir: &Path,
    ) -> Result<PgStore, StoreError> {
        if !is_identifier(schema) {
            return Err(StoreError::Db(format!(
                "schema name {schema:?}: expected a lower-case identifier \
                 ([a-z_][a-z0-9_]*, at most 63 characters)"
            )));
        }
        PgStore::start(conninfo, Some(schema), chunk_dir)
    }

    fn start(
        conninfo: &str,
        schema: Option<&str>,
        chunk_dir: &Path,
    ) -> Result<PgStore, StoreError> {
        let config: Config = conninfo
            .parse()
            .map_err(|e| StoreError::Db(format!("postgres connection string: {e}")))?;
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|h| match h {
                ::postgres::config::Host::Tcp(h) => h.clone(),
                ::postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .collect();
        let target = format!(
            "{}:{:?}/{}{}",
            hosts.join(","),
            config.get_ports(),
            config.get_dbname().unwrap_or("(default db)"),
            schema.map(|s| format!(" schema {s}")).unwrap_or_default()
        );
        std::fs::create_dir_all(chunk_dir).map_err(crate::io_err(format!(
            "create directory {}",
            chunk_dir.display()
        )))?;
        let chunks = ChunkStore::open(chunk_dir)?;
        let sql = Sql::new(schema);
        let (tx, rx) = mpsc::channel::<Request>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), StoreError>>();
        let thread_target = target.clone();
        // The client is created on the thread: connecting blocks on the crate's runtime
        // too, which must not happen on the caller's (tokio) thread.
        let thread = std::thread::Builder::new()
            .name("sovereign-pg".into())
            .spawn(move || match open_client(&config, &sql, &thread_target) {
                Ok(client) => {
                    let _ = ready_tx.send(Ok(()));
                    worker(config, sql, thread_target, client, rx);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(crate::io_err("spawn the postgres thread"))?;
        let ready = ready_rx.recv_timeout(REPLY_TIMEOUT).map_err(|e| {
            db(
                &target,
                "connect",
                format!("no answer from the database thread: {e}"),
            )
        });
        match ready.and_then(|r| r) {
            Ok(()) => Ok(PgStore {
                target,
                chunks,
                staged: Mutex::new(Vec::new()),
                requests: Some(tx),
                thread: Some(thread),
            }),
            Err(e) => {
                drop(tx);
                Err(e)
            }
        }
    }

    /// The chunk directory (for tools and tests).
    pub fn chunk_dir(&self) -> &ChunkStore {
        &self.chunks
    }

    /// Send a request built around a fresh reply channel, wait for the answer.
    fn call<T>(
        &self,
        what: &str,
        make: impl FnOnce(mpsc::Sender<Result<T, StoreError>>) -> Request,
    ) -> Result<T, StoreError> {
        let (reply_tx, reply_rx) = mpsc::channel();
        let Some(sender) = self.requests.as_ref() else {
            return Err(db(&self.target, what, "store is shut down"));
        };
        sender
            .send(make(reply_tx))
            .map_err(|_| db(&self.target, what, "the database thread has stopped"))?;
        match reply_rx.recv_timeout(REPLY_TIMEOUT) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(db(
                &self.target,
                what,
                format!("no answer within {} s", REPLY_TIMEOUT.as_secs()),
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(db(&self.target, what, "the database thread has stopped"))
            }
        }
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop; it then drops the client, which
        // closes the connection. Joining makes the close happen before drop returns.
        self.requests.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// The `Store` methods come from `StagedBackend`'s blanket impl.
impl StagedBackend for PgStore {
    fn chunks(&self) -> &ChunkStore {
        &self.chunks
    }

    fn staged(&self) -> &Mutex<Vec<Staged>> {
        &self.staged
    }

    fn commit_staged(&self, ops: &[Staged]) -> Result<(), StoreError> {
        // Called with `staged` locked: a racing write is in this commit or after it.
        let ops = ops.to_vec();
        self.call("fsync", |reply| Request::Commit { ops, reply })
    }

    fn load_rows(&self) -> Result<Rows, StoreError> {
        self.call("recover", |reply| Request::Load { reply })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for ok in ["t", "_x", "test_12_ab"] {
            assert!(is_identifier(ok), "{ok}");
        }
        for bad in [
            "",
            "1a",
            "A",
            "a-b",
            "a;drop table x",
            "a.b",
            &"x".repeat(64),
        ] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn a_bad_connection_string_or_schema_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let err = PgStore::connect("port=notanumber", dir.path()).unwrap_err();
        assert!(err.to_string().contains("connection string"), "{err}");
        let err = PgStore::connect_in_schema("host=127.0.0.1", "Bad-Name", dir.path()).unwrap_err();
        assert!(err.to_string().contains("Bad-Name"), "{err}");
        // Nothing listens on port 1: the connect error comes back, the thread ends.
        let err = PgStore::connect("host=127.0.0.1 port=1 user=x connect_timeout=5", dir.path())
            .unwrap_err();
        assert!(err.to_string().contains("connect"), "{err}");
    }
}
