//! `sovereign`: the one binary — simulator, servers and console share it.
//!
//! Map (ripgrep's split): this file holds the raw flags as clap parses them ([`Cli`]) and
//! `main`, which maps errors to exit codes; [`console`] runs `console` and `gameday`;
//! [`report`] rebuilds reports and writes exports; [`sim`] resolves the raw flags into what each
//! `sim` command uses and runs it; [`pool`] runs seeds on worker threads; [`wall`] is the
//! CLI's only wall clock.
//!
//! Exit codes: 0 all held; 1 an invariant was violated (or a replay did not reproduce,
//! or the determinism self-check failed); 2 bad input or usage (clap's own errors too);
//! 3 liveness only; 4 SLOs only. `device`: 0 done (a submission queued offline included); 1 a
//! verification failure, tower error or refusal; 2 usage (see `sovereign_server::device_client`).

mod console;
mod hunt;
mod lab;
mod likelihood;
mod merge;
mod pool;
mod progress;
mod report;
mod runs;
mod sim;
mod validate;
mod wall;

use clap::{Args, Parser, Subcommand};
use sovereign_server::device_client::DeviceCommand;
use sovereign_sim::Plant;
use sovereign_sim::sweep::Shard;
use std::path::PathBuf;
use std::process::ExitCode;

/// The build: crate version and the git commit it was built from.
pub const BUILD: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SOVEREIGN_GIT_COMMIT"),
    ")"
);

/// Exit code for bad input or usage.
const EXIT_USAGE: u8 = 2;

/// Sovereign: offline-first community towers, and the deterministic simulator that tests them.
#[derive(Parser, Debug)]
#[command(name = "sovereign", version = BUILD, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The deterministic simulator: run, sweep, replay and shrink scenarios.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Rebuild a report (report.md, report.html, summary.json) from a report directory's
    /// saved data (run.json or sweep.json).
    Report(ReportArgs),
    /// List the runs and game days whose reports were written into a reports folder, with
    /// each scenario's resilience score and trend; refresh the folder's index.html.
    Runs(RunsArgs),
    /// Open the terminal console on a live simulation: panels, hotkeys, fault injection.
    Console(ConsoleArgs),
    /// Run a game-day plan (gamedays/*.toml) in the console, or headless for CI; write a
    /// lessons-learned report and a replay file.
    Gameday(GamedayArgs),
    /// The real tower server: devices' API, sync over the uplinks, power management.
    #[command(subcommand)]
    Tower(sovereign_server::cli::TowerCommand),
    /// The real origin server, and publishing content to it.
    #[command(subcommand)]
    Origin(sovereign_server::cli::OriginCommand),
    /// Be a device against a real tower: list its catalog, fetch verified items, queue
    /// operations in an offline outbox and flush it.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// A TCP fault proxy with Toxiproxy's HTTP API: put real towers, origins and databases
    /// through latency, bandwidth, resets, loss and link-down (docs/PROXY.md).
    #[command(subcommand)]
    Proxy(sovereign_proxy::cli::ProxyCommand),
    /// The lab: run a scenario file against real origin, tower and proxy processes, with
    /// the same oracles, KPIs and reports as `sim run` (docs/LAB.md).
    #[command(subcommand)]
    Lab(LabCommand),
}

/// `sovereign lab …`
#[derive(Subcommand, Debug)]
enum LabCommand {
    /// Run a scenario against real processes; exit codes as `sim run`.
    Run(LabRunArgs),
    /// Kill every process a lab run (one that crashed, or is still running) left behind.
    Down(LabDownArgs),
    /// Run a scenario in the simulator and in the lab and print each KPI of both, the
    /// ratio and the tolerance claimed for it (docs/FIDELITY.md); exit 1 when a KPI is
    /// outside its tolerance or either run fails its own checks.
    Fidelity(LabFidelityArgs),
}

/// Raw flags of `lab fidelity`.
#[derive(Args, Debug)]
pub struct LabFidelityArgs {
    /// The scenario file (see scenarios/lab/).
    pub scenario: PathBuf,
    /// The seed of both runs (default: the scenario's own).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write the comparison as JSON here (every row: both values, ratio, tolerance,
    /// verdict, reason).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Keep the lab run's directory (data and logs of every server).
    #[arg(long)]
    pub keep: bool,
    /// Where the servers run: child processes (nothing to install) or Docker containers
    /// (a running Docker engine; the image is built locally from this binary).
    #[arg(long, value_name = "KIND", default_value = "processes", value_parser = ["processes", "containers"])]
    pub backend: String,
    /// Where the lab run records its processes for `lab down` (default:
    /// $TMPDIR/sovereign-lab).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Raw flags of `lab run`.
#[derive(Args, Debug)]
pub struct LabRunArgs {
    /// The scenario file (the simulator's format; see scenarios/lab/).
    pub scenario: PathBuf,
    /// The seed of the devices' schedules and content (default: the scenario's own).
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long, value_name = "DIR", num_args = 0..=1, help = REPORT_HELP)]
    pub report: Option<Option<PathBuf>>,
    /// Write JUnit XML here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Run every tower with a planted bug (skip-verify, no-failover, no-failback,
    /// ack-before-fsync, ignore-battery, lying-fsync); needs --allow-planted-bugs.
    #[arg(long, value_name = "NAME")]
    pub plant: Option<String>,
    /// Allow --plant.
    #[arg(long)]
    pub allow_planted_bugs: bool,
    /// Keep the run's directory (data and logs of every server) and print where it is.
    #[arg(long)]
    pub keep: bool,
    /// Where the servers run: child processes (nothing to install) or Docker containers
    /// (a running Docker engine; the image is built locally from this binary).
    #[arg(long, value_name = "KIND", default_value = "processes", value_parser = ["processes", "containers"])]
    pub backend: String,
    /// Where the run records its processes for `lab down` (default: $TMPDIR/sovereign-lab).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Raw flags of `lab down`.
#[derive(Args, Debug)]
pub struct LabDownArgs {
    /// Where lab runs record their processes (default: $TMPDIR/sovereign-lab).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Raw flags of `console`.
#[derive(Args, Debug)]
pub struct ConsoleArgs {
    /// The scenario file.
    #[arg(default_value = "scenarios/baseline.toml")]
    pub scenario: PathBuf,
    /// The seed (default: the scenario's own).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Who is at the keyboard (default: $USER); logged with every injection.
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,
    /// Start paused.
    #[arg(long)]
    pub paused: bool,
    /// Where the run's journal goes on quit: lessons-learned.md (what was injected, healed
    /// and noted, the verdict, the KPIs), report.html/md, summary.json and the replay file
    /// (default: reports/console-<scenario>-<seed>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub lab: LabFlags,
}

/// `--lab` of `console` and `gameday`: real processes instead of the simulator.
#[derive(Args, Debug)]
pub struct LabFlags {
    /// Run on real processes, as `sovereign lab run` does (an origin, the scenario's
    /// towers behind their proxies, device load generators), in real time: the hotkeys
    /// inject real faults (each audited), and the report is the lab's.
    #[arg(long)]
    pub lab: bool,
    /// With --lab: where the servers run, child processes (nothing to install) or Docker
    /// containers (a running Docker engine).
    #[arg(long = "backend", value_name = "KIND", default_value = "processes", value_parser = ["processes", "containers"], requires = "lab")]
    pub backend: String,
    /// With --lab: where the run records its processes for `lab down` (default:
    /// $TMPDIR/sovereign-lab).
    #[arg(long, value_name = "DIR", requires = "lab")]
    pub state_dir: Option<PathBuf>,
    /// With --lab: run the servers with a planted bug (as `lab run --plant`); needs
    /// --allow-planted-bugs.
    #[arg(long, value_name = "NAME", requires = "lab")]
    pub plant: Option<String>,
    /// Allow --plant.
    #[arg(long, requires = "lab")]
    pub allow_planted_bugs: bool,
    /// With --lab: keep the run's directory (data, logs and audit files of every server)
    /// and print where it is.
    #[arg(long, requires = "lab")]
    pub keep: bool,
}

/// Raw flags of `gameday`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct GamedayArgs {
    #[command(subcommand)]
    pub command: Option<GamedayCommand>,
    /// The plan file.
    #[arg(required = true)]
    pub plan: Option<PathBuf>,
    /// Run without a terminal: checklist items are auto-confirmed (and marked so).
    #[arg(long)]
    pub headless: bool,
    /// The seed (default: the plan's, else the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Who is at the keyboard (default: $USER).
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,
    /// Where the reports (lessons-learned.md, report.md, report.html with charts,
    /// summary.json, run.json) and the replay file go (default: reports/<plan>-<seed>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub export: RunExportArgs,
    #[command(flatten)]
    pub lab: LabFlags,
}

/// `sovereign gameday validate …`
#[derive(Subcommand, Debug)]
pub enum GamedayCommand {
    /// Check plan files and their scenarios without running them (fields, steps, fault
    /// targets, blast radius, tolerances) and summarise each. Exit 2 if any is invalid.
    Validate(ValidateArgs),
}

/// Raw flags of `report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The report directory (as written by `sim run --report` or `sim sweep --report`).
    pub dir: PathBuf,
}

/// Raw flags of `runs`.
#[derive(Args, Debug)]
pub struct RunsArgs {
    /// The reports folder (its history.jsonl and report folders).
    #[arg(default_value = "reports")]
    pub dir: PathBuf,
    /// Most runs listed, newest first (the per-scenario trends cover them all).
    #[arg(long, default_value_t = 30)]
    pub limit: usize,
    /// Print the history as JSON (every entry, oldest first) instead.
    #[arg(long)]
    pub json: bool,
}

/// Help text shared by `--report`.
const REPORT_HELP: &str = "Write a report (report.md, report.html with charts, summary.json, \
and the data to rebuild them) into DIR; without DIR, into reports/<name>/";

/// Help text shared by `--start`.
const START_HELP: &str = "Where virtual time 0 lands in exported metrics and annotations \
(UTC, e.g. 2026-01-01T00:00:00Z, the default)";

/// `sovereign sim …`
#[derive(Subcommand, Debug)]
enum SimCommand {
    /// Run one scenario with one seed; print KPIs, SLOs, violations and the trace hash.
    Run(RunArgs),
    /// Run scenarios over many seeds in parallel; write a failure file per failing seed.
    Sweep(SweepArgs),
    /// Re-run a failure file and check that it reproduces.
    Replay(ReplayArgs),
    /// Shrink a failure file to a minimal fault schedule.
    Shrink(ShrinkArgs),
    /// For each planted bug, the runs and CPU seconds until a sweep first catches it, over
    /// many independent hunts (median, p90, misses); exit 1 if some plant is never caught.
    Hunt(HuntArgs),
    /// Merge the records of a sweep's shards (sim sweep --records) into one JUnit, one
    /// summary and one report, and name the shards that are missing (exit 2).
    Merge(MergeArgs),
    /// List every fault kind as declared: family, parameters, targets, default duration,
    /// nemesis weight, console hotkey and the invariants it can disturb.
    Faults,
    /// Check scenario files without running them (syntax, fields, targets, limits) and
    /// summarise each: topology, fault schedule, nemesis, invariants, SLOs. Exit 2 if any
    /// is invalid.
    Validate(ValidateArgs),
}

/// Raw flags of `sim validate` and `gameday validate`.
#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// The files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Help text shared by `--plant`.
const PLANT_HELP: &str = "Planted bug: skip-verify, ack-before-fsync, no-idempotency, \
ledger-rounding, fifo-scheduler, no-failback, offline-refuse, ignore-battery, sequential-keys, \
forget-confirmed, no-key-owner-check, no-edge-validation, keep-refused-writes, \
accept-unknown-towers, no-origin-check, device-skip-verify, reply-before-fsync, \
receipts-by-position, publish-before-fsync, bounded-dedupe, anonymous-refusals, \
uncut-catalog";

/// Raw flags of `sim run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The scenario file.
    pub scenario: PathBuf,
    /// The seed (default: the scenario's own).
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long, help = PLANT_HELP)]
    pub plant: Option<Plant>,
    /// Write a failure file (when the run failed) and a summary into this directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run the scenario's swarm variant for the seed: a random subset of its fault kinds,
    /// fault targets, towers, workload features and link loss switched off, and nemesis
    /// rates scaled (swarm testing; docs/SCENARIOS.md).
    #[arg(long)]
    pub swarm: bool,
    /// Switch the simulator's fault sites on for this run (`buggify = true`: a slow fsync,
    /// a crash while one is pending, a reply just after the deadline, a late duplicate;
    /// docs/SCENARIOS.md).
    #[arg(long)]
    pub buggify: bool,
    /// Branch the run at this time (`10h`, `1d 02:00:00`, `3600000000us`): the seed's run
    /// up to it, fresh randomness from --branch-seed after it (how guided hunts and
    /// `replay --likelihood` explore; docs/SCENARIOS.md). Repeat both flags for a branch
    /// of a branch.
    #[arg(long, value_name = "TIME", requires = "branch_seed", value_parser = parse_run_time)]
    pub branch_at: Vec<sovereign_logic::Time>,
    /// The seed of the branch's fresh randomness (one per --branch-at, in the same order).
    #[arg(long, value_name = "N", requires = "branch_at")]
    pub branch_seed: Vec<u64>,
    /// Run twice and compare the trace hashes (exit 1 if they differ).
    #[arg(long)]
    pub check_determinism: bool,
    #[arg(long, value_name = "DIR", num_args = 0..=1, help = REPORT_HELP)]
    pub report: Option<Option<PathBuf>>,
    #[command(flatten)]
    pub export: RunExportArgs,
}

/// The Grafana export flags of a single run (`sim run`, `gameday`).
#[derive(Args, Debug)]
pub struct RunExportArgs {
    /// Write the run's KPI time series as OpenMetrics text here (for `promtool tsdb
    /// create-blocks-from openmetrics`).
    #[arg(long, value_name = "FILE")]
    pub openmetrics: Option<PathBuf>,
    /// Write the run's faults (regions), violations and, for a game day, its timeline
    /// (points) as Grafana annotations (JSON) here.
    #[arg(long, value_name = "FILE")]
    pub annotations: Option<PathBuf>,
    #[arg(long, value_name = "UTC", help = START_HELP)]
    pub start: Option<String>,
}

/// Raw flags of `sim sweep`.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Scenario files, or directories whose `*.toml` files are all swept.
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
    /// How many seeds per scenario.
    #[arg(long)]
    pub seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Worker threads (default: the available parallelism).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=pool::JOBS_MAX as u64))]
    pub jobs: Option<u64>,
    /// Run only shard I of N (0-based): the seeds whose position in the range is I mod N.
    /// Without it, a task of a Slurm job array, a Kubernetes Indexed Job or a Nomad job
    /// takes its shard from the engine (SLURM_ARRAY_TASK_ID and _COUNT,
    /// JOB_COMPLETION_INDEX, NOMAD_ALLOC_INDEX).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// The shard count where the engine gives only an index (Kubernetes, Nomad): the
    /// job's completions or count.
    #[arg(long, value_name = "N", conflicts_with = "shard")]
    pub shards: Option<u64>,
    /// Write this shard's record (every failing seed, each run's time) to
    /// DIR/shard-<i>-of-<n>.json, for `sim merge`.
    #[arg(long, value_name = "DIR")]
    pub records: Option<PathBuf>,
    #[arg(long, help = PLANT_HELP)]
    pub plant: Option<Plant>,
    /// Each run runs its scenario's swarm variant for its seed (see `sim run --swarm`);
    /// failure files hold the variant, so they replay and shrink as usual.
    #[arg(long)]
    pub swarm: bool,
    /// Each run switches its scenario's fault sites on (see `sim run --buggify`).
    #[arg(long)]
    pub buggify: bool,
    /// Where failure files go.
    #[arg(long, value_name = "DIR", default_value = "reports/failures")]
    pub out: PathBuf,
    #[command(flatten)]
    pub results: SweepResults,
}

/// Where a sweep's results go besides the terminal (`sim sweep`, `sim merge`).
#[derive(Args, Debug)]
pub struct SweepResults {
    /// Write JUnit XML here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    #[arg(long, value_name = "DIR", num_args = 0..=1, help = REPORT_HELP)]
    pub report: Option<Option<PathBuf>>,
    /// Write the sweep's totals (runs, failures per oracle, planted-bug catch rate) as
    /// OpenMetrics text here, stamped at --start.
    #[arg(long, value_name = "FILE")]
    pub openmetrics: Option<PathBuf>,
    #[arg(long, value_name = "UTC", help = START_HELP)]
    pub start: Option<String>,
}

/// Raw flags of `sim hunt`.
#[derive(Args, Debug)]
pub struct HuntArgs {
    /// Scenario files, or directories whose `*.toml` files are all used; each run of a
    /// hunt draws one of them and a seed.
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
    /// The plants to hunt (repeat the flag; default: every plant).
    #[arg(long, help = PLANT_HELP)]
    pub plant: Vec<Plant>,
    /// Independent hunts per plant.
    #[arg(long, default_value_t = 10)]
    pub hunts: u64,
    /// Most runs one hunt may spend before it counts as a miss.
    #[arg(long, default_value_t = 1000)]
    pub budget: u64,
    /// The base seed: hunt k draws its seeds from a stream derived from (base, k).
    #[arg(long, default_value_t = 0)]
    pub base: u64,
    /// Worker threads (default: the available parallelism); each hunt runs on one.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=pool::JOBS_MAX as u64))]
    pub jobs: Option<u64>,
    /// Each run runs its scenario's swarm variant for its seed (see `sim run --swarm`),
    /// the clean build's confirming run too.
    #[arg(long)]
    pub swarm: bool,
    /// Guided: when a run first reaches a rare moment (a failover with operations in the
    /// outbox, a crash with writes pending, ...), run branches of it from that moment
    /// with fresh randomness before the next fresh draw (docs/SCENARIOS.md).
    #[arg(long)]
    pub guided: bool,
    /// Each run switches its scenario's fault sites on (see `sim run --buggify`), the
    /// clean build's confirming run too.
    #[arg(long)]
    pub buggify: bool,
    /// Write every hunt (runs, CPU seconds, catching scenario and seed) as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Raw flags of `sim merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Directories holding shard records (shard-<i>-of-<n>.json), or record files.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub results: SweepResults,
}

/// Raw flags of `sim replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The failure file.
    pub failure: PathBuf,
    /// Record the event trace and print the lines around the violation (marked `>>>`).
    #[arg(long)]
    pub trace: bool,
    /// With --trace: only lines that name this tower, device or `origin` (e.g. tower-0).
    #[arg(long, value_name = "NAME", requires = "trace")]
    pub tower: Option<String>,
    /// With --trace: only lines of this kind, a word of the line such as probe, fault,
    /// SubmitOp, ForwardOps, boot, crash (case-insensitive).
    #[arg(long, value_name = "WORD", requires = "trace")]
    pub kind: Option<String>,
    /// With --trace: centre the window on this time of the run (`10:00:57.062`, `1d
    /// 02:00:00`, or a duration such as `10h`) instead of the violation.
    #[arg(long, value_name = "TIME", requires = "trace", value_parser = parse_run_time)]
    pub around: Option<sovereign_logic::Time>,
    /// With --trace: how many lines to show (a fifth before the centre).
    #[arg(long, value_name = "N", requires = "trace", default_value_t = 50,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub lines: u64,
    /// How likely the failure is, and since when: branch the run at --points points from
    /// its start to its failure, each with --branches fresh seeds (the same run up to the
    /// point, fresh randomness after it), and report how often the failure recurs (a
    /// table, and likelihood.html with the chart under the fault timeline).
    #[arg(long, conflicts_with = "trace")]
    pub likelihood: bool,
    /// With --likelihood: branch points, from the start to the failure.
    #[arg(long, value_name = "K", requires = "likelihood", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(2..=sovereign_sim::likelihood::POINTS_MAX as u64))]
    pub points: u64,
    /// With --likelihood: branches per point.
    #[arg(long, value_name = "N", requires = "likelihood", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=u64::from(sovereign_sim::likelihood::BRANCHES_MAX)))]
    pub branches: u64,
    /// With --likelihood: worker threads (default: the available parallelism).
    #[arg(long, requires = "likelihood",
          value_parser = clap::value_parser!(u64).range(1..=pool::JOBS_MAX as u64))]
    pub jobs: Option<u64>,
    /// With --likelihood: write likelihood.html, .svg and .json into DIR (default:
    /// reports/<failure file's name>-likelihood/).
    #[arg(long, value_name = "DIR", requires = "likelihood")]
    pub report: Option<PathBuf>,
}

/// A time of the run as `--around` takes it: as the trace writes it (`10:00:57.062`,
/// `1d 02:00:00`), or a duration from the start (`10h`, `36057.06s`, `36057062000us`).
fn parse_run_time(s: &str) -> Result<sovereign_logic::Time, String> {
    if let Some(t) = sovereign_logic::Time::parse_clock(s) {
        return Ok(t);
    }
    if let Some(us) = s.strip_suffix("us").and_then(|n| n.parse::<u64>().ok()) {
        return Ok(sovereign_logic::Time::from_micros(us));
    }
    let text = s;
    let d = match text.strip_suffix('s').and_then(|n| n.parse::<f64>().ok()) {
        Some(secs) if (0.0..1e12).contains(&secs) => std::time::Duration::from_secs_f64(secs),
        _ => sovereign_sim::scenario::parse::parse_duration(text, false)?.1,
    };
    let us = u64::try_from(d.as_micros()).map_err(|_| format!("{s}: too far"))?;
    Ok(sovereign_logic::Time::from_micros(us))
}

/// Raw flags of `sim shrink`.
#[derive(Args, Debug)]
pub struct ShrinkArgs {
    /// The failure file.
    pub failure: PathBuf,
    /// Where to write the shrunk scenario (default: `<name>.shrunk.toml` next to the
    /// failure file).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Most runs shrinking may use.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub budget_runs: u64,
}

/// A server command's result as an exit code: errors are printed with their causes
/// (exit 1).
fn server(r: anyhow::Result<()>) -> anyhow::Result<u8> {
    match r {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(1)
        }
    }
}

/// Exit quietly, as a C tool killed by SIGPIPE would (128 + 13), when stdout is a closed
/// pipe (`sovereign sim replay F --trace | head`): Rust ignores SIGPIPE, so `println!`
/// panics instead. Every other panic goes to the default hook.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    let result = match cli.command {
        None => {
            use clap::CommandFactory;
            let _ = Cli::command().print_help();
            return ExitCode::from(EXIT_USAGE);
        }
        Some(Command::Sim(cmd)) => match cmd {
            SimCommand::Run(a) => sim::run(a),
            SimCommand::Sweep(a) => sim::sweep(a),
            SimCommand::Merge(a) => merge::merge(a),
            SimCommand::Hunt(a) => hunt::hunt_command(a),
            SimCommand::Replay(a) if a.likelihood => likelihood::run(a),
            SimCommand::Replay(a) => sim::replay(a),
            SimCommand::Shrink(a) => sim::shrink(a),
            SimCommand::Faults => {
                print!("{}", sovereign_sim::scenario::faults::table_text());
                Ok(0)
            }
            SimCommand::Validate(a) => Ok(validate::scenarios(&a.files)),
        },
        Some(Command::Console(a)) => console::console(a),
        Some(Command::Gameday(GamedayArgs {
            command: Some(GamedayCommand::Validate(a)),
            ..
        })) => Ok(validate::plans(&a.files)),
        Some(Command::Gameday(a)) => console::gameday(a),
        Some(Command::Report(a)) => report::rebuild(a),
        Some(Command::Runs(a)) => runs::list(a),
        Some(Command::Tower(c)) => server(sovereign_server::cli::run_tower(c)),
        Some(Command::Origin(c)) => server(sovereign_server::cli::run_origin(c)),
        Some(Command::Device(cmd)) => sovereign_server::device_client::run(cmd),
        Some(Command::Proxy(c)) => server(sovereign_proxy::cli::run(c)),
        Some(Command::Lab(LabCommand::Run(a))) => lab::run(a),
        Some(Command::Lab(LabCommand::Down(a))) => lab::down(a),
        Some(Command::Lab(LabCommand::Fidelity(a))) => lab::fidelity(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PLANT_HELP;

    #[test]
    fn the_plant_help_names_every_plant() {
        // Goal: a new planted bug cannot be missing from `--plant`'s help.
        for p in sovereign_sim::Plant::ALL {
            assert!(PLANT_HELP.contains(p.name()), "{} missing", p.name());
        }
    }
}
