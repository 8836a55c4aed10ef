//! `sovereign`: the one binary — simulator, servers and console share it.
//!
//! Raw flags are parsed by clap into [`Cli`]; `main` maps errors to exit codes.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Sovereign: offline-first community towers, and the deterministic simulator that tests them.
#[derive(Parser, Debug)]
#[command(name = "sovereign", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => {
            use clap::CommandFactory;
            let _ = Cli::command().print_help();
            ExitCode::from(2)
        }
    }
}
