//! The device client: `sovereign device …`, what a phone or laptop does against its tower.
//!
//! - `catalog` lists what the tower serves (`GET /v1/catalog`).
//! - `fetch ID` downloads an item and verifies it against its manifest — every chunk and
//!   the whole SHA-256, which is also the ETag — before it appears at `--out`, atomically;
//!   `--resume` continues a partial download with a `Range` request ([`fetch`]).
//! - `submit` queues an operation in the device's own offline outbox — durable on local
//!   disk before any network attempt — then tries to send it (`POST /v1/ops` with the
//!   operation's idempotency key); an unreachable tower is normal: it stays queued
//!   ([`session`], [`outbox`]).
//! - `outbox` lists what is queued; `--flush` sends it now.
//! - `status` shows the device's identity, what is queued, what the tower acknowledged
//!   and what became of it: it asks the tower (`GET /v1/ops/{key}`) about every operation
//!   still awaiting the origin's verdict, and lists the final word on the latest ones
//!   (applied, or a conflict, rejection or refusal, with the operation that was lost).
//!
//! Each device (state directory, `--device` profile) has its own identity: a secret
//! generated on first use ([`identity`]) that every submission presents.
//!
//! The outbox is driven by the logic's `Device` state machine, exactly as the simulator
//! drives it; this module only supplies a disk ([`outbox::OutboxFile`]) and a network
//! ([`http::Client`], over [`crate::transport::HyperTransport`]).
//!
//! Exit codes: 0 done (for `submit`, also "queued offline"); 1 verification failure, tower
//! error or refusal, or (`outbox --flush`) operations left queued; 2 usage (returned as
//! `Err` for the binary to print).
//!
//! Map: [`DeviceCommand`] and its args ([`DeviceOpts`], [`CatalogArgs`], [`FetchArgs`],
//! [`SubmitArgs`], [`OutboxArgs`]), [`run`]; [`http`], [`fetch`], [`outbox`], [`session`].
//!
//! Not covered: client certificates, several towers, reading through the device logic (`fetch` verifies on
//! its own), background retry (run `outbox --flush` from a timer).

pub mod fetch;
pub mod http;
pub mod identity;
pub mod outbox;
pub mod session;

use clap::{Args, Subcommand, ValueEnum};
use fetch::FetchOptions;
use http::Client;
use session::{DeviceSession, Outcome, SendResult, StatusResult};
use sovereign_logic::device::FinalOutcome;
use sovereign_logic::protocol::{DeviceId, OpKind, Operation};
use sovereign_wire::OpKindDto;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable naming the state directory (below `--state`, above the default).
pub const STATE_ENV: &str = "SOVEREIGN_DEVICE_STATE";
/// Default state directory, under `$HOME`.
pub const STATE_DEFAULT: &str = ".sovereign-device";
/// Exit code: done.
pub const EXIT_OK: u8 = 0;
/// Exit code: verification failure, tower error or refusal, or operations left queued.
pub const EXIT_FAILED: u8 = 1;

/// Flags every `device` command takes.
#[derive(Args, Debug, Clone)]
pub struct DeviceOpts {
    /// The tower's device API.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub tower: String,
    /// Where the device keeps its outbox [default: $SOVEREIGN_DEVICE_STATE, else
    /// ~/.sovereign-device].
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Which device profile under the state directory (`device-N`): each has its own
    /// identity, generated on first use, and its own outbox.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub device: u32,
    /// Trust only the CA certificates in this PEM file for an https:// tower (default:
    /// the system's roots).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Deadline for each exchange with the tower, in seconds.
    #[arg(long, value_name = "S", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout_s: u64,
}

/// `sovereign device …`
#[derive(Subcommand, Debug)]
pub enum DeviceCommand {
    /// List what the tower serves: item, version, class, size, SHA-256.
    Catalog(CatalogArgs),
    /// Download an item, verify every chunk and the whole SHA-256 against its manifest, and
    /// only then write it (atomically).
    Fetch(FetchArgs),
    /// Queue an operation in this device's offline outbox (durably), then try to send it.
    Submit(SubmitArgs),
    /// List the operations still queued; --flush sends them now.
    Outbox(OutboxArgs),
    /// This device's identity, its queue, and what became of its acknowledged operations
    /// (asks the tower about those still awaiting the origin's verdict).
    Status(StatusArgs),
}

/// Flags of `device catalog`.
#[derive(Args, Debug)]
pub struct CatalogArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub opts: DeviceOpts,
    /// Print the tower's JSON as received.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `device fetch`.
#[derive(Args, Debug)]
pub struct FetchArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub opts: DeviceOpts,
    /// The item's id.
    pub id: String,
    /// Where to write it [default: ./ID].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Continue a partial download of the same version (re-verifying what is on disk).
    #[arg(long)]
    pub resume: bool,
}

/// Operation types of `device submit --type`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpType {
    /// A message: --to, --body.
    Message,
    /// A form: --name, --field k=v (repeatable).
    Form,
    /// A contribution: --community, --nation, --amount-minor.
    Contribution,
}

/// Flags of `device submit`.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub opts: DeviceOpts,
    /// What kind of operation.
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    pub kind: OpType,
    /// Message: the recipient.
    #[arg(long)]
    pub to: Option<String>,
    /// Message: the text.
    #[arg(long)]
    pub body: Option<String>,
    /// Form: its name.
    #[arg(long)]
    pub name: Option<String>,
    /// Form: one field as NAME=VALUE (repeat for more, in order).
    #[arg(long = "field", value_name = "NAME=VALUE")]
    pub fields: Vec<String>,
    /// Contribution: the community it is for.
    #[arg(long)]
    pub community: Option<String>,
    /// Contribution: the contributing nation.
    #[arg(long)]
    pub nation: Option<String>,
    /// Contribution: the amount in minor units (cents), at least 1.
    #[arg(long, value_name = "MINOR",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub amount_minor: Option<u64>,
}

/// Flags of `device outbox`.
#[derive(Args, Debug)]
pub struct OutboxArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub opts: DeviceOpts,
    /// Send every queued operation now; acknowledged ones leave the outbox.
    #[arg(long)]
    pub flush: bool,
}

/// Flags of `device status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub opts: DeviceOpts,
    /// Do not ask the tower; show what the log holds.
    #[arg(long)]
    pub offline: bool,
}

/// The state directory: `--state`, else `$SOVEREIGN_DEVICE_STATE`, else
/// `~/.sovereign-device`.
pub fn state_root(opts: &DeviceOpts) -> anyhow::Result<PathBuf> {
    if let Some(s) = &opts.state {
        return Ok(s.clone());
    }
    if let Some(s) = std::env::var_os(STATE_ENV).filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(s));
    }
    match std::env::var_os("HOME").filter(|s| !s.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(STATE_DEFAULT)),
        None => anyhow::bail!(
            "no state directory: pass --state DIR or set {STATE_ENV} (HOME is not set)"
        ),
    }
}

/// Device `opts.device`'s own directory under the state root (`device-N`): several
/// devices may share a root without sharing an outbox.
pub fn device_dir(opts: &DeviceOpts) -> anyhow::Result<PathBuf> {
    Ok(state_root(opts)?.join(format!("device-{}", opts.device)))
}

fn client(opts: &DeviceOpts) -> anyhow::Result<Client> {
    // A bad URL is usage (exit 2); the binary prints it.
    Client::tcp_tls(
        &opts.tower,
        Duration::from_secs(opts.timeout_s),
        opts.ca.as_deref(),
    )
    .map_err(anyhow::Error::from)
}

/// Run a `device` command. `Ok(code)`: exit with it (failures already printed); `Err`: a
/// usage error, for the binary to print and exit 2.
pub fn run(cmd: DeviceCommand) -> anyhow::Result<u8> {
    match cmd {
        DeviceCommand::Catalog(a) => catalog(&a),
        DeviceCommand::Fetch(a) => fetch_cmd(&a),
        DeviceCommand::Submit(a) => submit_cmd(&a),
        DeviceCommand::Outbox(a) => outbox_cmd(&a),
        DeviceCommand::Status(a) => status_cmd(&a),
    }
}

fn fail(e: impl std::fmt::Display) -> anyhow::Result<u8> {
    eprintln!("error: {e}");
    Ok(EXIT_FAILED)
}

fn catalog(a: &CatalogArgs) -> anyhow::Result<u8> {
    let client = client(&a.opts)?;
    let (cat, raw) = match client.catalog() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if a.json {
        println!("{}", String::from_utf8_lossy(&raw).trim_end());
        return Ok(EXIT_OK);
    }
    print!("{}", catalog_table(&cat));
    Ok(EXIT_OK)
}

/// The catalog as a table: item, version, class, size in bytes, SHA-256 prefix.
pub fn catalog_table(cat: &http::CatalogDto) -> String {
    let rows: Vec<[String; 5]> = cat
        .items
        .iter()
        .map(|m| {
            [
                m.item.clone(),
                format!("v{}", m.version),
                m.priority.clone(),
                m.size.to_string(),
                m.sha256.chars().take(12).collect(),
            ]
        })
        .collect();
    let head = ["ITEM", "VERSION", "CLASS", "SIZE", "SHA256"];
    let mut w = head.map(str::len);
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {}\n",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3]
        )
    };
    let mut out = format!("{}: {} item(s)\n", cat.tower, rows.len());
    out.push_str(&line(head));
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
    }
    out
}

/// The default output of `fetch ID`: `./ID`, when ID is a plain file name.
fn default_out(id: &str) -> anyhow::Result<PathBuf> {
    let plain = !id.is_empty()
        && id != "."
        && id != ".."
        && !id.contains(['/', '\\'])
        && !id.chars().any(char::is_control);
    anyhow::ensure!(
        plain,
        "item id {id:?} is not a plain file name: pass --out FILE"
    );
    Ok(PathBuf::from(id))
}

fn fetch_cmd(a: &FetchArgs) -> anyhow::Result<u8> {
    let out = match &a.out {
        Some(o) => o.clone(),
        None => default_out(&a.id)?,
    };
    anyhow::ensure!(
        !out.is_dir(),
        "--out {}: is a directory; name the file to write",
        out.display()
    );
    let client = client(&a.opts)?;
    let opts = FetchOptions {
        resume: a.resume,
        ..FetchOptions::default()
    };
    match fetch::fetch(&client, &a.id, &out, &opts) {
        Ok(f) => {
            let m = &f.manifest;
            let resumed = if f.resumed_from > 0 {
                format!(", resumed at byte {}", f.resumed_from)
            } else {
                String::new()
            };
            println!(
                "{}: {} v{} ({}), {} bytes, sha256 {} — {} chunk(s) and the whole verified{resumed}",
                f.path.display(),
                m.item,
                m.version,
                m.priority,
                m.size,
                m.digest,
                m.chunks.len()
            );
            Ok(EXIT_OK)
        }
        Err(e) => fail(e),
    }
}

/// The operation `submit`'s flags describe, or a usage error naming the flag.
pub fn op_kind(a: &SubmitArgs) -> anyhow::Result<OpKind> {
    let given: [(&str, bool); 7] = [
        ("--to", a.to.is_some()),
        ("--body", a.body.is_some()),
        ("--name", a.name.is_some()),
        ("--field", !a.fields.is_empty()),
        ("--community", a.community.is_some()),
        ("--nation", a.nation.is_some()),
        ("--amount-minor", a.amount_minor.is_some()),
    ];
    let (ty, wanted): (&str, &[&str]) = match a.kind {
        OpType::Message => ("message", &["--to", "--body"]),
        OpType::Form => ("form", &["--name", "--field"]),
        OpType::Contribution => (
            "contribution",
            &["--community", "--nation", "--amount-minor"],
        ),
    };
    for (flag, set) in given {
        anyhow::ensure!(
            !set || wanted.contains(&flag),
            "{flag} does not apply to --type {ty} (it takes {})",
            wanted.join(", ")
        );
    }
    let need = |v: &Option<String>, flag: &str| -> anyhow::Result<String> {
        v.clone()
            .ok_or_else(|| anyhow::anyhow!("--type {ty} needs {flag}"))
    };
    Ok(match a.kind {
        OpType::Message => OpKind::Message {
            to: need(&a.to, "--to")?,
            body: need(&a.body, "--body")?,
        },
        OpType::Form => {
            let name = need(&a.name, "--name")?;
            let mut fields = Vec::with_capacity(a.fields.len());
            for f in &a.fields {
                let (k, v) = f
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("--field {f:?}: expected NAME=VALUE"))?;
                anyhow::ensure!(!k.is_empty(), "--field {f:?}: the name before `=` is empty");
                fields.push((k.to_string(), v.to_string()));
            }
            OpKind::Form { name, fields }
        }
        OpType::Contribution => OpKind::Contribution {
            community: need(&a.community, "--community")?,
            nation: need(&a.nation, "--nation")?,
            amount_minor: a
                .amount_minor
                .ok_or_else(|| anyhow::anyhow!("--type contribution needs --amount-minor"))?,
        },
    })
}

/// `message`, `form` or `contribution`.
pub fn op_type(kind: &OpKind) -> &'static str {
    match kind {
        OpKind::Message { .. } => "message",
        OpKind::Form { .. } => "form",
        OpKind::Contribution { .. } => "contribution",
    }
}

fn op_json(op: &Operation) -> String {
    serde_json::to_string(&OpKindDto::from(&op.kind)).unwrap_or_default()
}

/// One line per outcome, for a person.
pub fn describe(o: &Outcome) -> String {
    let key = &o.op.key;
    match &o.result {
        SendResult::Acked { duplicate: false } => {
            format!("{key} acknowledged: durable at the tower")
        }
        SendResult::Acked { duplicate: true } => {
            format!("{key} acknowledged: the tower already held it")
        }
        SendResult::Queued {
            reason,
            reachable: false,
        } => format!("{key} queued offline ({reason})"),
        SendResult::Queued {
            reason,
            reachable: true,
        } => format!("{key} stays queued: {reason}"),
        SendResult::Conflict { message } | SendResult::Refused { message } => format!(
            "{key} refused by the tower and dropped from the outbox: {message}; the operation was {}",
            op_json(&o.op)
        ),
    }
}

fn open_session(opts: &DeviceOpts) -> anyhow::Result<Result<DeviceSession, session::SessionError>> {
    let dir = device_dir(opts)?;
    let s = DeviceSession::open(&dir);
    if let Ok(s) = &s {
        let torn = s.store().torn_bytes_dropped();
        if torn > 0 {
            eprintln!(
                "warning: {}: dropped a torn last line ({torn} bytes): an append a crash cut short, never acknowledged",
                s.store().path().display()
            );
        }
    }
    Ok(s)
}

fn submit_cmd(a: &SubmitArgs) -> anyhow::Result<u8> {
    let kind = op_kind(a)?;
    // The largest identity: the body is never longer than this with the real one.
    let body = http::submission_body(DeviceId(u128::MAX), &OpKindDto::from(&kind));
    anyhow::ensure!(
        body.len() <= crate::api::common::OP_BODY_MAX,
        "the operation is {} bytes as JSON; a tower takes at most {}",
        body.len(),
        crate::api::common::OP_BODY_MAX
    );
    let client = client(&a.opts)?;
    let mut session = match open_session(&a.opts)? {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let op = match session.submit(kind) {
        Ok(op) => op,
        Err(e) => return fail(format_args!("not queued: {e}")),
    };
    let outcomes = match session.send(Some(&client)) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let mut code = EXIT_OK;
    let mut earlier_acked = 0usize;
    for o in &outcomes {
        let conflict = matches!(
            o.result,
            SendResult::Conflict { .. } | SendResult::Refused { .. }
        );
        if o.op.key == op.key {
            if conflict {
                eprintln!("error: {}", describe(o));
            } else {
                println!("{}", describe(o));
            }
        } else if conflict {
            eprintln!("error: earlier {}", describe(o));
        } else if matches!(o.result, SendResult::Acked { .. }) {
            earlier_acked += 1;
        }
        if conflict {
            code = EXIT_FAILED;
        }
    }
    if earlier_acked > 0 {
        println!("also delivered {earlier_acked} earlier queued operation(s)");
    }
    let left = session.pending();
    if left > 0 {
        println!(
            "{left} operation(s) queued in {}; `sovereign device outbox --flush` sends them",
            session.store().path().display()
        );
    }
    Ok(code)
}

fn outbox_cmd(a: &OutboxArgs) -> anyhow::Result<u8> {
    let client = if a.flush {
        Some(client(&a.opts)?)
    } else {
        None
    };
    let mut session = match open_session(&a.opts)? {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if !a.flush {
        let log = match session.log() {
            Ok(l) => l,
            Err(e) => return fail(e),
        };
        print!("{}", outbox_table(&log, session.store().path()));
        return Ok(EXIT_OK);
    }
    let outcomes = match session.send(client.as_ref()) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let (mut acked, mut queued, mut conflicts) = (0usize, 0usize, 0usize);
    for o in &outcomes {
        match o.result {
            SendResult::Acked { .. } => {
                acked += 1;
                println!("{}", describe(o));
            }
            SendResult::Queued { .. } => {
                queued += 1;
                println!("{}", describe(o));
            }
            SendResult::Conflict { .. } | SendResult::Refused { .. } => {
                conflicts += 1;
                eprintln!("error: {}", describe(o));
            }
        }
    }
    println!("flushed: {acked} delivered, {queued} still queued, {conflicts} refused");
    Ok(if queued + conflicts == 0 {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

fn status_cmd(a: &StatusArgs) -> anyhow::Result<u8> {
    let client = if a.offline {
        None
    } else {
        Some(client(&a.opts)?)
    };
    let mut session = match open_session(&a.opts)? {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let checked = match session.check_status(client.as_ref()) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let log = match session.log() {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    println!(
        "device {} ({})",
        session.id().hex(),
        session.store().path().display()
    );
    print!("{}", outbox_table(&log, session.store().path()));
    let mut code = EXIT_OK;
    if checked.is_empty() {
        println!("no acknowledged operation awaits the origin's verdict");
    }
    for (op, result) in &checked {
        let line = match result {
            StatusResult::Pending => "acknowledged, held at the tower, not yet applied".to_string(),
            StatusResult::Final(FinalOutcome::Applied { seq }) => {
                format!("applied at the origin (apply seq {seq})")
            }
            StatusResult::Final(f) => {
                code = EXIT_FAILED;
                format!(
                    "NOT APPLIED: {}; the operation was {}",
                    match f {
                        FinalOutcome::Conflict => "the origin applied another operation under this key".to_string(),
                        FinalOutcome::Rejected { reason } => format!("rejected by the origin: {reason}"),
                        _ => "the tower no longer knows this key".to_string(),
                    },
                    op_json(op)
                )
            }
            StatusResult::Unknown => {
                "acknowledged earlier; this tower does not know the key (another tower's, or forgotten)".to_string()
            }
            StatusResult::Unreachable(why) => format!("acknowledged; not checked: {why}"),
        };
        println!("{}  {line}", op.key);
    }
    let refused: Vec<_> = log
        .outcomes
        .iter()
        .filter(|o| o.result != "applied")
        .collect();
    if !refused.is_empty() {
        println!("{} operation(s) not applied (latest last):", refused.len());
        for o in refused {
            println!(
                "{}  {}: {}; the operation was {}",
                o.op.key,
                o.result,
                o.detail,
                op_json(&o.op)
            );
        }
    }
    Ok(code)
}

/// The outbox as a table: key, type, attempts, how the last attempt went.
pub fn outbox_table(log: &outbox::OutboxLog, path: &Path) -> String {
    if log.ops.is_empty() {
        return format!("outbox empty ({})\n", path.display());
    }
    let kw = log.ops.keys().map(|k| k.0.len()).max().unwrap_or(3).max(3);
    let mut out = format!(
        "{} operation(s) queued in {}\n{:<kw$}  {:<12}  {:>8}  LAST\n",
        log.ops.len(),
        path.display(),
        "KEY",
        "TYPE",
        "ATTEMPTS"
    );
    for q in log.ops.values() {
        out.push_str(&format!(
            "{:<kw$}  {:<12}  {:>8}  {}\n",
            q.op.key.0,
            op_type(&q.op.kind),
            q.attempts,
            q.last.as_deref().unwrap_or("-")
        ));
    }
    out
}
