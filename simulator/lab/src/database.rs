//! The origin's PostgreSQL server, for scenarios with `[origin] database = "postgres"`:
//! where its programs are, how each backend starts it, how the lab waits for it, and the
//! `db-lost` gate (connections to the origin's database refused and ended).
//!
//! The server runs from the host's PostgreSQL programs (Debian's
//! `/usr/lib/postgresql/<version>/bin`; the newest there): as a child process (as the
//! `postgres` user when the lab runs as root: PostgreSQL refuses root) or in a container
//! of the `sovereign-lab-postgres` image with the host's `/usr` mounted read-only. It
//! listens on 127.0.0.1 only, trust authentication, `fsync` and `synchronous_commit` on
//! (PostgreSQL's defaults), so a commit it acknowledged survives a SIGKILL.
//!
//! Not covered: TLS, passwords (loopback only), more than one database server.

use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The server name of the origin's PostgreSQL in the lab (logs, `lab down`, audit lines).
pub const DATABASE: &str = "origin-db";

/// The database the origin keeps its records in (created by the lab).
pub const DB_NAME: &str = "sovereign";

/// How long the lab waits for the server to accept connections after a start (initdb on
/// the first start takes a few seconds).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The newest PostgreSQL's programs on this host (`/usr/lib/postgresql/*/bin` holding a
/// `postgres`).
pub fn bindir() -> Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    dirs.retain(|d| d.join("postgres").exists() && d.join("initdb").exists());
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    dirs.pop().ok_or_else(|| {
        anyhow!(
            "the scenario's origin runs on PostgreSQL, and no PostgreSQL is installed here (no /usr/lib/postgresql/*/bin/postgres); apt-get install postgresql"
        )
    })
}

/// The user a child PostgreSQL runs as: `None` (the lab's own) unless the lab runs as
/// root, then the `postgres` user's uid and gid (from /etc/passwd).
pub fn run_as() -> Result<Option<(u32, u32)>> {
    if rustix::process::getuid().as_raw() != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == "postgres")
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
        .map(Some)
        .ok_or_else(|| {
            anyhow!(
                "the lab runs as root, PostgreSQL refuses to, and there is no postgres user to run it as (apt-get install postgresql creates one)"
            )
        })
}

/// initdb's arguments for a data directory (trust on loopback, no locale).
pub fn initdb_args(data: &Path) -> Vec<String> {
    [
        "-D",
        &data.display().to_string(),
        "-U",
        "postgres",
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--no-locale",
    ]
    .map(String::from)
    .to_vec()
}

/// The server's arguments: its data directory, loopback `port`, no Unix socket.
pub fn server_args(data: &Path, port: u16) -> Vec<String> {
    [
        "-D",
        &data.display().to_string(),
        "-p",
        &port.to_string(),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "unix_socket_directories=",
        "-c",
        "max_connections=20",
    ]
    .map(String::from)
    .to_vec()
}

/// A container's command: initdb into the container's own data directory on its first
/// start (a restart of the same container finds it), then the server.
pub fn container_command(bindir: &Path, port: u16) -> Vec<String> {
    let data = Path::new("/var/lib/postgresql/data");
    let bin = bindir.display();
    let init = initdb_args(data).join(" ");
    let serve = server_args(data, port)
        .into_iter()
        // `unix_socket_directories=` survives the shell as one word with an empty value.
        .map(|a| {
            if a.ends_with('=') {
                format!("'{a}'")
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    vec![
        "/bin/sh".into(),
        "-c".into(),
        format!(
            "[ -f {d}/PG_VERSION ] || {bin}/initdb {init} >/dev/null; exec {bin}/postgres {serve}",
            d = data.display()
        ),
    ]
}

/// A connection string to `db` on the lab's server at `port`.
pub fn conninfo(port: u16, db: &str) -> String {
    format!("host=127.0.0.1 port={port} user=postgres dbname={db} connect_timeout=5")
}

fn connect(port: u16, db: &str) -> Result<postgres::Client> {
    postgres::Client::connect(&conninfo(port, db), postgres::NoTls)
        .with_context(|| format!("connecting to PostgreSQL on 127.0.0.1:{port}"))
}

/// Wait until the server on `port` accepts connections ([`READY_TIMEOUT`]); `gone` says
/// whether its process exited (then waiting is pointless).
pub fn wait_ready(port: u16, mut gone: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let e = match connect(port, "postgres") {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        if gone()? {
            bail!("PostgreSQL exited at start");
        }
        if Instant::now() > deadline {
            return Err(e.context(format!(
                "PostgreSQL did not accept connections within {READY_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Create the origin's database [`DB_NAME`] (the first start only).
pub fn create_database(port: u16) -> Result<()> {
    connect(port, "postgres")?
        .batch_execute(&format!("CREATE DATABASE {DB_NAME}"))
        .with_context(|| format!("creating database {DB_NAME}"))
}

/// The `db-lost` gate: closed, no session may connect to [`DB_NAME`] (not even a
/// superuser's: `ALLOW_CONNECTIONS false`) and the open ones are ended
/// (`pg_terminate_backend`); open, connections are allowed again. The number of sessions
/// ended.
pub fn gate(port: u16, open: bool) -> Result<u64> {
    let mut c = connect(port, "postgres")?;
    c.batch_execute(&format!(
        "ALTER DATABASE {DB_NAME} WITH ALLOW_CONNECTIONS {open}"
    ))
    .context("ALTER DATABASE ... ALLOW_CONNECTIONS")?;
    if open {
        return Ok(0);
    }
    let rows = c
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&DB_NAME],
        )
        .context("ending the origin's sessions (pg_terminate_backend)")?;
    Ok(rows.iter().filter(|r| r.get::<_, bool>(0)).count() as u64)
}
