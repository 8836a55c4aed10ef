//! The server commands as the `sovereign` binary exposes them: `tower serve`,
//! `tower rehome`, `origin serve`, `origin publish`, `origin add-tower`,
//! `origin revoke-tower`. The CLI crate only forwards to [`run_tower`] and
//! [`run_origin`]; each builds its own tokio runtime and logger.
//!
//! Map: [`TowerCommand`], [`OriginCommand`], [`run_tower`], [`run_origin`], [`init_logs`].

use crate::serve::{
    self, AddTowerArgs, OriginArgs, PublishArgs, RehomeArgs, RevokeTowerArgs, TowerArgs,
};

/// `sovereign tower …`.
#[derive(clap::Subcommand, Debug)]
pub enum TowerCommand {
    /// Serve devices from the local store and sync from the origin over the uplinks.
    Serve(Box<TowerArgs>),
    /// Adopt the origin that now answers at the uplinks' address (operator token): held
    /// content is reconciled with its catalog; re-reads the credential file first.
    Rehome(RehomeArgs),
}

/// `sovereign origin …`.
#[derive(clap::Subcommand, Debug)]
pub enum OriginCommand {
    /// Serve the catalog, chunks and the operation apply log to towers.
    Serve(Box<OriginArgs>),
    /// Publish a new version of an item (needs an operator token).
    Publish(PublishArgs),
    /// Issue a tower's credential (operator token); shown once.
    AddTower(AddTowerArgs),
    /// Revoke a tower's credential (operator token).
    RevokeTower(RevokeTowerArgs),
}

/// Structured logs on stderr: `SOVEREIGN_LOG` (an `EnvFilter`, default `info`) and
/// `SOVEREIGN_LOG_FORMAT=json` for one JSON object per line.
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SOVEREIGN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::env::var("SOVEREIGN_LOG_FORMAT").is_ok_and(|v| v == "json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Run a `tower` command.
pub fn run_tower(cmd: TowerCommand) -> anyhow::Result<()> {
    init_logs();
    let rt = runtime()?;
    match cmd {
        TowerCommand::Serve(args) => rt.block_on(serve::run_tower(*args)),
        TowerCommand::Rehome(args) => rt.block_on(serve::run_rehome(args)),
    }
}

/// Run an `origin` command.
pub fn run_origin(cmd: OriginCommand) -> anyhow::Result<()> {
    let rt = runtime()?;
    match cmd {
        OriginCommand::Serve(args) => {
            init_logs();
            rt.block_on(serve::run_origin(*args))
        }
        OriginCommand::Publish(args) => rt.block_on(serve::run_publish(args)),
        OriginCommand::AddTower(args) => rt.block_on(serve::run_add_tower(args)),
        OriginCommand::RevokeTower(args) => rt.block_on(serve::run_revoke_tower(args)),
    }
}
