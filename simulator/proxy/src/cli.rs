//! `sovereign proxy serve`: the fault proxy's command.
//!
//! Map: [`ProxyCommand`] is the clap definition the `sovereign` binary mounts; [`run`]
//! checks the flags (a non-loopback API needs a token), starts the API, creates the
//! proxies of `--config` (the array `/populate` takes) and serves until Ctrl-C/SIGTERM.
//!
//! Not here: the API itself (`api`).

use crate::{Config, Limits};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// `sovereign proxy …`
#[derive(Subcommand, Debug)]
pub enum ProxyCommand {
    /// Serve the Toxiproxy-compatible API and the proxies it configures.
    Serve(ServeArgs),
}

/// Flags of `sovereign proxy serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Where the API listens (loopback by default; elsewhere only with --token).
    #[arg(long, default_value = "127.0.0.1:8474")]
    pub listen: SocketAddr,
    /// Proxies to create at start: a JSON array in `/populate`'s shape.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Seeds the proxies' randomness (jitter, toxicity, slicer, loss): a run repeats.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Require `Authorization: Bearer <T>` on every request.
    #[arg(
        long,
        value_name = "T",
        env = "SOVEREIGN_PROXY_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

/// Runs a proxy command.
pub fn run(cmd: ProxyCommand) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SOVEREIGN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: logs kept in files (CI's) stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let ProxyCommand::Serve(args) = cmd;
    if !args.listen.ip().is_loopback() && args.token.as_deref().is_none_or(str::is_empty) {
        bail!(
            "the proxy API on {} (not loopback) needs --token: anyone who reaches it can cut links",
            args.listen
        );
    }
    let populate = match &args.config {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not JSON", path.display()))?;
            Some(v)
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding the API on {}", args.listen))?;
        let config = Config {
            seed: args.seed,
            token: args.token,
            limits: Limits::default(),
        };
        let running = crate::spawn(listener, config)?;
        if let Some(v) = populate {
            let path = args
                .config
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            running
                .registry
                .populate(&v)
                .await
                .map_err(|e| anyhow::anyhow!("{path}: {}", e.message))?;
        }
        tracing::info!(api = %running.addr, seed = args.seed, "proxy API listening");
        shutdown().await;
        running.task.abort();
        Ok(())
    })
}

async fn shutdown() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_off_loopback_needs_a_token() {
        // Goal: `serve --listen 0.0.0.0:…` without --token is refused before anything listens.
        let args = ServeArgs {
            listen: "0.0.0.0:0".parse().unwrap(),
            config: None,
            seed: 0,
            token: None,
        };
        let e = run(ProxyCommand::Serve(args)).expect_err("a public API without a token");
        assert!(e.to_string().contains("needs --token"), "{e}");
        let args = ServeArgs {
            listen: "0.0.0.0:0".parse().unwrap(),
            config: None,
            seed: 0,
            token: Some(String::new()),
        };
        assert!(
            run(ProxyCommand::Serve(args)).is_err(),
            "an empty token is no token"
        );
    }

    #[test]
    fn a_bad_config_file_is_named_in_the_error() {
        // Goal: a missing file, a file that is not JSON, and a bad proxy entry each fail the start with the file's name and what is wrong.
        let dir = std::env::temp_dir().join(format!("sovereign-proxy-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_json = dir.join("not-json.json");
        std::fs::write(&not_json, "[{").unwrap();
        let bad_entry = dir.join("bad-entry.json");
        std::fs::write(&bad_entry, r#"[{"name": "fibre"}]"#).unwrap();
        for (path, want) in [
            (dir.join("missing.json"), "reading"),
            (not_json, "not JSON"),
            (bad_entry, "proxy 0: missing required field: upstream"),
        ] {
            let args = ServeArgs {
                listen: "127.0.0.1:0".parse().unwrap(),
                config: Some(path.clone()),
                seed: 0,
                token: None,
            };
            let e = format!(
                "{:#}",
                run(ProxyCommand::Serve(args)).expect_err("a bad config")
            );
            assert!(
                e.contains(&path.display().to_string()) && e.contains(want),
                "{e}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
