//! `sovereign sim …`: each command first resolves its raw flags into a config (loading
//! and checking every input up front, so bad input is exit 2 before any run), then runs.
//!
//! Map: [`run`], [`sweep`], [`replay`], [`shrink`] (one per subcommand) and their
//! `*Config::resolve`; output helpers ([`report_lines`], [`trace_window`]).
//!
//! Not covered: the world itself (`sovereign_sim::run`), file formats (see
//! `sovereign_sim::failure`, `sovereign_report::junit`).

use crate::pool::run_parallel;
use crate::progress::{Progress, RUNS};
use crate::report::Exports;
use crate::wall::Stopwatch;
use crate::{BUILD, ReplayArgs, RunArgs, ShrinkArgs, SweepArgs};
use anyhow::{Context, Result, anyhow, bail};
use sovereign_report::junit::{CaseFailure, TestCase, junit_xml};
use sovereign_report::shards::{
    SHARD_RECORD_FORMAT, ShardFailure, ShardRecord, ShardScenario, merge as merge_records,
};
use sovereign_report::sweep::SweepFailure;
use sovereign_report::{RunData, SweepData};
use sovereign_sim::failure::{FailureFile, Reproduction, replay_command, shell_quote};
use sovereign_sim::scenario::{Scenario, parse_file};
use sovereign_sim::swarm::swarm;
use sovereign_sim::sweep::{
    Shard, Strategy, SweepOutcome, run_options, sort_outcomes, worst_exit_code,
};
use sovereign_sim::{Branch, Plant, RunOptions, RunReport};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Most scenario files one sweep takes (a typo'd directory must not explode).
const SWEEP_SCENARIOS_MAX: usize = 10_000;
/// Most runs one sweep invocation does (scenarios × seeds in the shard).
const SWEEP_RUNS_MAX: u64 = 100_000_000;

fn load_scenario(path: &Path) -> Result<Scenario> {
    // `file:line: field: message`, or `file: message` when the file could not be read.
    parse_file(path).map_err(|e| anyhow!("{e}"))
}

fn plant_name(p: Option<Plant>) -> &'static str {
    p.map_or("none", Plant::name)
}

/// The lines `sim run` prints after its header: KPIs, SLOs, violations, trace hash.
pub fn report_lines(report: &RunReport) -> Vec<String> {
    let mut out = report.kpis.lines();
    for c in &report.slo {
        let verdict = if c.pass { "PASS" } else { "FAIL" };
        out.push(format!(
            "slo {}: {verdict} (measured {})",
            c.name, c.measured
        ));
    }
    for v in &report.violations {
        let class = if v.liveness { "liveness" } else { "safety" };
        out.push(format!(
            "VIOLATION {} ({class}) at {}: {}",
            v.oracle, v.at, v.detail
        ));
    }
    if !report.sometimes.is_empty() {
        let moments: Vec<String> = report
            .sometimes
            .iter()
            .map(|(m, at)| format!("{m} at {at}"))
            .collect();
        out.push(format!("rare moments: {}", moments.join(", ")));
    }
    out.push(format!(
        "events: {}, end: {}, exit: {}",
        report.events,
        report.end,
        report.exit_code()
    ));
    out.push(format!("trace-hash: {}", report.trace_hash));
    out
}

/// Write `file` into `dir` (created if missing); returns the path written.
fn write_failure(dir: &Path, file: &FailureFile) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))?;
    let path = dir.join(file.default_file_name());
    std::fs::write(&path, file.to_toml())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

// ---------------------------------------------------------------------------------------
// sim run

/// What `sim run` uses.
struct RunConfig {
    path: PathBuf,
    scenario: Scenario,
    opts: RunOptions,
    /// `--swarm`, `--buggify`: how the file's scenario became the one that runs.
    strategy: Strategy,
    /// With `--swarm`: what the variant switched off and scaled.
    variant: Option<String>,
    out: Option<PathBuf>,
    check_determinism: bool,
    exports: Exports,
}

impl RunConfig {
    fn resolve(a: RunArgs) -> Result<RunConfig> {
        if a.branch_at.len() != a.branch_seed.len() {
            bail!(
                "{} --branch-at but {} --branch-seed: give one seed per branch point",
                a.branch_at.len(),
                a.branch_seed.len()
            );
        }
        let mut scenario = load_scenario(&a.scenario)?;
        let seed = a.seed.unwrap_or(scenario.seed);
        let strategy = Strategy {
            swarm: a.swarm,
            buggify: a.buggify,
        };
        // The swarm variant is drawn once: its summary and its scenario come together.
        let mut variant = None;
        if a.swarm {
            let s = swarm(&scenario, seed);
            variant = Some(s.summary(seed));
            scenario = s.scenario;
        }
        scenario.buggify |= a.buggify;
        Ok(RunConfig {
            path: a.scenario,
            scenario,
            strategy,
            variant,
            opts: RunOptions {
                seed,
                plant: a.plant,
                record_trace: false,
                schedule: None,
                branches: a
                    .branch_at
                    .iter()
                    .zip(&a.branch_seed)
                    .map(|(at, seed)| Branch {
                        at: Duration::from_micros(at.as_micros()),
                        seed: *seed,
                    })
                    .collect(),
            },
            out: a.out,
            check_determinism: a.check_determinism,
            exports: Exports::resolve(
                a.report,
                a.export.openmetrics,
                a.export.annotations,
                a.export.start,
            )?,
        })
    }
}

/// `sovereign sim run`.
pub fn run(a: RunArgs) -> Result<u8> {
    let c = RunConfig::resolve(a)?;
    println!("scenario: {} ({})", c.scenario.name, c.path.display());
    println!("seed: {}", c.opts.seed);
    println!("plant: {}", plant_name(c.opts.plant));
    if let Some(variant) = &c.variant {
        println!("variant: {variant}");
    }
    if c.scenario.buggify {
        println!("buggify: on (fault sites inside the simulator's drivers)");
    }
    for b in &c.opts.branches {
        println!(
            "branch: at {}, fresh randomness from seed {} on",
            sovereign_logic::Time::from_micros(b.at.as_micros() as u64),
            b.seed
        );
    }
    let (report, series) = if c.exports.wants_series() {
        let (r, s) = sovereign_report::record(&c.scenario, &c.opts);
        (r, Some(s))
    } else {
        (sovereign_sim::run(&c.scenario, &c.opts), None)
    };
    for line in report_lines(&report) {
        println!("{line}");
    }
    if c.check_determinism {
        let again = sovereign_sim::run(&c.scenario, &c.opts);
        if again.trace_hash != report.trace_hash {
            eprintln!(
                "determinism check FAILED: the same seed gave trace-hash {} then {}",
                report.trace_hash, again.trace_hash
            );
            return Ok(1);
        }
        println!("determinism: ok (2 runs, same trace hash)");
    }
    let mut failure_file: Option<String> = None;
    if let Some(dir) = &c.out {
        let source = c.path.display().to_string();
        let summary = summary_toml(&source, &report);
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
        let file = FailureFile::from_report(&source, &c.scenario, &report, BUILD);
        let summary_path = dir.join(
            file.default_file_name()
                .replace(".failure.toml", ".summary.toml"),
        );
        std::fs::write(&summary_path, summary)
            .with_context(|| format!("cannot write {}", summary_path.display()))?;
        println!("summary: {}", summary_path.display());
        if report.exit_code() != 0 {
            let path = write_failure(dir, &file)?;
            println!("failure file: {}", path.display());
            println!("replay: {}", replay_command(&path.display().to_string()));
            failure_file = Some(path.display().to_string());
        }
    } else if report.exit_code() != 0 {
        // No failure file without --out: say how to get one (to replay, trace, shrink).
        println!(
            "rerun: {} --out DIR  (writes a failure file to replay with --trace and shrink)",
            rerun_command(
                &c.path.display().to_string(),
                c.opts.seed,
                c.opts.plant,
                c.strategy
            ) + &branch_flags(&c.opts.branches)
        );
    }
    if let Some(series) = series {
        let source = c.path.display().to_string();
        let replay = match &failure_file {
            Some(f) => replay_command(f),
            None => {
                rerun_command(&source, c.opts.seed, c.opts.plant, c.strategy)
                    + &branch_flags(&c.opts.branches)
            }
        };
        let data = RunData::build(
            &c.scenario,
            &report,
            series,
            &source,
            BUILD,
            replay,
            failure_file,
        );
        c.exports.write_run(&data)?;
    }
    Ok(report.exit_code())
}

/// The command that reruns a scenario file with a seed, plant and strategy.
pub(crate) fn rerun_command(
    source: &str,
    seed: u64,
    plant: Option<Plant>,
    strategy: Strategy,
) -> String {
    format!(
        "sovereign sim run {} --seed {seed}{}{}",
        shell_quote(source),
        plant.map(|p| format!(" --plant {p}")).unwrap_or_default(),
        strategy.flags()
    )
}

/// The flags that branch a rerun where this one branched.
pub(crate) fn branch_flags(branches: &[Branch]) -> String {
    branches
        .iter()
        .map(|b| {
            format!(
                " --branch-at {}us --branch-seed {}",
                b.at.as_micros(),
                b.seed
            )
        })
        .collect()
}

/// A small TOML summary of one run.
fn summary_toml(source: &str, r: &RunReport) -> String {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let mut out = String::from("# Sovereign simulator run summary.\n");
    out.push_str(&format!("scenario = {}\n", q(&r.scenario)));
    out.push_str(&format!("source = {}\n", q(source)));
    out.push_str(&format!("seed = {}\n", q(&r.seed.to_string())));
    out.push_str(&format!("plant = {}\n", q(plant_name(r.plant))));
    out.push_str(&format!("build = {}\n", q(BUILD)));
    out.push_str(&format!("exit_code = {}\n", r.exit_code()));
    out.push_str(&format!("trace_hash = {}\n", q(&r.trace_hash)));
    out.push_str(&format!("events = {}\n", r.events));
    out.push_str(&format!("end_us = {}\n", r.end.as_micros()));
    let names: Vec<String> = r.violations.iter().map(|v| q(v.oracle.name())).collect();
    out.push_str(&format!("violations = [{}]\n", names.join(", ")));
    let kpis: Vec<String> = r.kpis.lines().iter().map(|l| q(l)).collect();
    out.push_str(&format!("kpis = [{}]\n", kpis.join(", ")));
    out
}

// ---------------------------------------------------------------------------------------
// sim sweep

/// The scenarios of a sweep or a hunt: files in the order given, a directory's `*.toml`
/// files sorted; at most [`SWEEP_SCENARIOS_MAX`], names unique (failure files and JUnit
/// suites are named after them).
pub(crate) fn load_scenarios(paths_given: &[PathBuf]) -> Result<Vec<(PathBuf, Scenario)>> {
    let mut paths = Vec::new();
    for p in paths_given {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot read directory {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "toml") && f.is_file())
                .collect();
            if found.is_empty() {
                bail!("{}: no *.toml scenario in this directory", p.display());
            }
            found.sort();
            paths.extend(found);
        } else {
            paths.push(p.clone());
        }
    }
    if paths.len() > SWEEP_SCENARIOS_MAX {
        bail!(
            "{} scenarios; at most {SWEEP_SCENARIOS_MAX} per sweep",
            paths.len()
        );
    }
    let mut scenarios: Vec<(PathBuf, Scenario)> = Vec::with_capacity(paths.len());
    for p in paths {
        let s = load_scenario(&p)?;
        if let Some((other, _)) = scenarios.iter().find(|(_, o)| o.name == s.name) {
            bail!(
                "{} and {} are both named {:?}; names must be unique in a sweep \
                 (failure files and JUnit suites are named after them)",
                other.display(),
                p.display(),
                s.name
            );
        }
        scenarios.push((p, s));
    }
    Ok(scenarios)
}

/// What `sim sweep` uses.
struct SweepConfig {
    /// (path, scenario), in the order given (directories expanded, sorted).
    scenarios: Vec<(PathBuf, Scenario)>,
    seeds: Vec<u64>,
    from: u64,
    count: u64,
    shard: Shard,
    /// Where the shard came from (`--shard`, an engine's variable, or the whole sweep).
    shard_source: &'static str,
    plant: Option<Plant>,
    /// How each run's scenario is made from the file's (`--swarm`, `--buggify`).
    strategy: Strategy,
    jobs: usize,
    junit: Option<PathBuf>,
    records: Option<PathBuf>,
    out: PathBuf,
    exports: Exports,
}

impl SweepConfig {
    /// What run (scenario `i`, `seed`) runs: the scenario, or its swarm variant.
    fn scenario_of(&self, i: usize, seed: u64) -> std::borrow::Cow<'_, Scenario> {
        self.strategy.scenario(&self.scenarios[i].1, seed)
    }

    fn resolve(a: SweepArgs) -> Result<SweepConfig> {
        if a.seeds == 0 {
            bail!("--seeds must be at least 1");
        }
        if a.from.checked_add(a.seeds - 1).is_none() {
            bail!(
                "--from {} --seeds {} runs past the largest seed {}",
                a.from,
                a.seeds,
                u64::MAX
            );
        }
        let scenarios = load_scenarios(&a.scenarios)?;
        let (shard, shard_source) = match a.shard {
            Some(shard) => (shard, "--shard"),
            None => Shard::from_engine(|k| std::env::var(k).ok(), a.shards)?
                .unwrap_or((Shard::WHOLE, "the whole sweep")),
        };
        let seeds: Vec<u64> = shard.seeds(a.from, a.seeds).collect();
        let runs = (seeds.len() as u64).saturating_mul(scenarios.len() as u64);
        if runs > SWEEP_RUNS_MAX {
            bail!("{runs} runs; at most {SWEEP_RUNS_MAX} per sweep (use --shard)");
        }
        let jobs = crate::pool::jobs(a.jobs)?;
        Ok(SweepConfig {
            scenarios,
            seeds,
            from: a.from,
            count: a.seeds,
            shard,
            shard_source,
            plant: a.plant,
            strategy: Strategy {
                swarm: a.swarm,
                buggify: a.buggify,
            },
            jobs,
            junit: a.results.junit,
            records: a.records,
            out: a.out,
            exports: Exports::resolve(
                a.results.report,
                a.results.openmetrics,
                None,
                a.results.start,
            )?,
        })
    }
}

/// `sovereign sim sweep`.
pub fn sweep(a: SweepArgs) -> Result<u8> {
    let c = SweepConfig::resolve(a)?;
    let items: Vec<(usize, u64)> = (0..c.scenarios.len())
        .flat_map(|i| c.seeds.iter().map(move |&s| (i, s)))
        .collect();
    println!(
        "sweep: {} scenario(s){} × seeds {}..{} (shard {} from {}: {} runs), plant {}, {} jobs, build {BUILD}",
        c.scenarios.len(),
        match (c.strategy.swarm, c.strategy.buggify) {
            (false, false) => "",
            (true, false) => " as swarm variants",
            (false, true) => " with fault sites (buggify)",
            (true, true) => " as swarm variants with fault sites (buggify)",
        },
        c.from,
        u128::from(c.from) + u128::from(c.count),
        c.shard,
        c.shard_source,
        items.len(),
        plant_name(c.plant),
        c.jobs
    );
    let progress = Progress::new(
        "sweep",
        RUNS,
        items.len() as u64,
        "{elapsed_precise} [{bar:40}] {pos}/{len} runs ({per_sec}, eta {eta})",
    );
    let clock = Stopwatch::start();
    let results = run_parallel(
        c.jobs,
        &items,
        |&(i, seed)| {
            let took = Stopwatch::start();
            let report = sovereign_sim::run(&c.scenario_of(i, seed), &run_options(seed, c.plant));
            (SweepOutcome::from_report(i, report), took.elapsed())
        },
        |r| progress.inc(r.as_ref().map_or(true, |(o, _)| o.exit_code != 0)),
    );
    let wall = clock.elapsed();
    progress.finish();

    let mut outcomes = Vec::with_capacity(results.len());
    let mut times = BTreeMap::new();
    let mut panics: Vec<(usize, u64, String)> = Vec::new();
    for (&(i, seed), r) in items.iter().zip(results) {
        match r {
            Ok((o, took)) => {
                times.insert((i, seed), took);
                outcomes.push(o);
            }
            Err(msg) => panics.push((i, seed, msg)),
        }
    }
    sort_outcomes(&mut outcomes);

    let mut failures: Vec<ShardFailure> = Vec::new();
    for o in &outcomes {
        let (path, scenario) = &c.scenarios[o.scenario_index];
        let Some(report) = &o.failure else {
            continue;
        };
        let run = c.scenario_of(o.scenario_index, o.seed);
        let file = FailureFile::from_report(&path.display().to_string(), &run, report, BUILD);
        let written = write_failure(&c.out, &file)?;
        let cmd = replay_command(&written.display().to_string());
        let what = match report.first_violation() {
            Some(v) => format!("{} at {}: {}", v.oracle, v.at, v.detail),
            None => "SLO missed".to_string(),
        };
        println!(
            "FAIL {} seed {} (exit {}): {what}",
            scenario.name, o.seed, o.exit_code
        );
        println!("  replay: {cmd}");
        let junit = TestCase::from_report(report, Some(&cmd)).failure;
        failures.push(ShardFailure::new(
            SweepFailure {
                scenario: scenario.name.clone(),
                seed: o.seed,
                exit_code: o.exit_code,
                oracle: report
                    .first_violation()
                    .map_or_else(|| "slo".to_string(), |v| v.oracle.name().to_string()),
                detail: what,
                failure_file: Some(written.display().to_string()),
                replay: cmd,
                shrunk: SweepData::shrunk_next_to(&written).map(|p| p.display().to_string()),
            },
            c.plant.is_some_and(|p| report.violates(p.oracle())),
            junit.as_ref(),
        ));
    }
    for (i, seed, msg) in &panics {
        let (path, scenario) = &c.scenarios[*i];
        let cmd = rerun_command(&path.display().to_string(), *seed, c.plant, c.strategy);
        println!("PANIC {} seed {seed}: {msg}", scenario.name);
        println!("  rerun: {cmd}");
        let junit = CaseFailure {
            message: format!("the simulator panicked: {msg}"),
            kind: "panic".into(),
            body: format!("{msg}\nrerun: {cmd}"),
        };
        failures.push(ShardFailure::new(
            SweepFailure {
                scenario: scenario.name.clone(),
                seed: *seed,
                exit_code: 1,
                oracle: "panic".into(),
                detail: msg.clone(),
                failure_file: None,
                replay: cmd,
                shrunk: None,
            },
            false,
            Some(&junit),
        ));
    }

    let secs = wall.as_secs_f64();
    let code = worst_exit_code(
        outcomes
            .iter()
            .map(|o| o.exit_code)
            .chain(panics.iter().map(|_| 1)),
    );
    let record = ShardRecord {
        format: SHARD_RECORD_FORMAT,
        build: BUILD.to_string(),
        scenarios: c
            .scenarios
            .iter()
            .enumerate()
            .map(|(i, (path, scenario))| {
                Ok(ShardScenario {
                    name: scenario.name.clone(),
                    path: path.display().to_string(),
                    digest: file_digest(path)?,
                    time_s: c
                        .seeds
                        .iter()
                        .map(|seed| times.get(&(i, *seed)).map(Duration::as_secs_f64))
                        .collect(),
                })
            })
            .collect::<Result<_>>()?,
        from: c.from,
        seeds: c.count,
        shard_index: c.shard.index,
        shard_count: c.shard.count,
        shard_source: c.shard_source.to_string(),
        plant: c.plant.map(|p| p.name().to_string()),
        plant_oracle: c.plant.map(|p| p.oracle().name().to_string()),
        wall_s: secs,
        exit_code: code,
        failures,
        sometimes: sovereign_sim::Sometimes::ALL
            .iter()
            .map(|m| {
                let n = outcomes.iter().filter(|o| o.reached.contains(m)).count();
                (m.name().to_string(), n as u64)
            })
            .collect(),
    };
    // The shard's own results go through the merge, so that one machine's sweep and a
    // merge of many print, list and export them by the same rules.
    let merged = merge_records(vec![(ShardRecord::file_name(c.shard), record)])?;
    let runs = merged.runs();
    let rate = if secs > 0.0 { runs as f64 / secs } else { 0.0 };
    println!(
        "summary: {}; wall {secs:.2} s, {rate:.1} runs/s",
        merged.summary_line()
    );
    println!("coverage: {}", merged.coverage_line());
    if !merged.failures().is_empty() {
        println!("failure files: {}", c.out.display());
    }
    if let Some(path) = &c.junit {
        crate::report::write(path, &junit_xml(&merged.cases()))?;
        println!("junit: {}", path.display());
    }
    if let Some(dir) = &c.records {
        let path = dir.join(ShardRecord::file_name(c.shard));
        let json = serde_json::to_string_pretty(&merged.records[0]).context("shard record")?;
        write_replacing(&path, &json)?;
        println!("record: {}", path.display());
    }
    if c.exports.report.is_some() || c.exports.openmetrics.is_some() {
        c.exports.write_sweep(&merged.sweep_data())?;
    }
    Ok(code)
}

/// Writes `text` to `path` whole or not at all (a temporary file renamed over it): a
/// shard killed while writing leaves no half a record for the merge to choke on.
fn write_replacing(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    crate::report::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

/// SHA-256 of a file's bytes, hex: shards of one sweep ran the same scenario file.
fn file_digest(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(sovereign_logic::content::ChunkHash::of(&bytes).to_hex())
}

// ---------------------------------------------------------------------------------------
// sim replay

/// A failure file and its embedded scenario, loaded.
pub(crate) struct Loaded {
    pub(crate) path: PathBuf,
    pub(crate) file: FailureFile,
    pub(crate) scenario: Scenario,
}

impl Loaded {
    pub(crate) fn resolve(path: PathBuf) -> Result<Loaded> {
        let file = FailureFile::read(&path)?;
        let scenario = file.scenario(&path.display().to_string())?;
        Ok(Loaded {
            path,
            file,
            scenario,
        })
    }

    /// The options that replay the recorded run: its seed and plant, and the embedded
    /// explicit schedule (so nemesis draws play no part).
    pub(crate) fn options(&self, record_trace: bool) -> RunOptions {
        RunOptions {
            seed: self.file.seed,
            plant: self.file.plant,
            record_trace,
            schedule: Some(self.scenario.faults.clone()),
            branches: self.file.branches.clone(),
        }
    }
}

/// What `replay --trace` shows: which lines, around when, how many.
pub struct TraceView<'a> {
    /// Only lines naming this node (`tower-0`, `device-3`, `origin`) as a word.
    pub node: Option<&'a str>,
    /// Only lines with this word (case-insensitive).
    pub kind: Option<&'a str>,
    /// The centre; `None`: the end of the trace.
    pub at: Option<sovereign_logic::Time>,
    /// Lines shown before the centre.
    pub before: usize,
    /// Lines shown from the centre on.
    pub after: usize,
}

impl TraceView<'_> {
    /// Whether `line` passes the filters.
    fn keeps(&self, line: &str) -> bool {
        let words = || {
            line.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
                .filter(|w| !w.is_empty())
        };
        self.node.is_none_or(|n| words().any(|w| w == n))
            && self
                .kind
                .is_none_or(|k| words().any(|w| w.eq_ignore_ascii_case(k)))
    }

    /// The filtered lines around the centre (indented), with `marker` (the violation)
    /// inserted at its time, marked `>>>`, when that time falls inside the window.
    pub fn window(
        &self,
        lines: &[String],
        marker: Option<(sovereign_logic::Time, String)>,
    ) -> Vec<String> {
        let kept: Vec<&String> = lines.iter().filter(|l| self.keeps(l)).collect();
        let idx = match self.at {
            Some(at) => kept
                .iter()
                .position(|l| line_time_us(l).is_some_and(|t| t >= at.as_micros()))
                .unwrap_or(kept.len()),
            None => kept.len().saturating_sub(self.after),
        };
        let start = idx.saturating_sub(self.before);
        let end = idx.saturating_add(self.after).min(kept.len());
        let shown = &kept[start..end];
        let mut out: Vec<String> = shown.iter().map(|l| format!("    {l}")).collect();
        if let Some((t, text)) = marker {
            let t_us = t.as_micros();
            let first = shown.first().and_then(|l| line_time_us(l));
            let past = kept.get(end).and_then(|l| line_time_us(l));
            if first.is_none_or(|f| t_us >= f) && past.is_none_or(|p| t_us < p) {
                let at = shown
                    .iter()
                    .position(|l| line_time_us(l).is_some_and(|u| u > t_us))
                    .unwrap_or(shown.len());
                out.insert(at, format!(">>> {t} {text}"));
            }
        }
        out
    }
}

/// The time at the start of a trace line (as [`sovereign_logic::Time`] writes it), in
/// microseconds.
fn line_time_us(line: &str) -> Option<u64> {
    let mut words = line.splitn(3, ' ');
    let first = words.next()?;
    let stamp = if first.ends_with('d') {
        format!("{first} {}", words.next()?)
    } else {
        first.to_string()
    };
    sovereign_logic::Time::parse_clock(&stamp).map(|t| t.as_micros())
}

/// `sovereign sim replay`.
pub fn replay(a: ReplayArgs) -> Result<u8> {
    let l = Loaded::resolve(a.failure)?;
    let f = &l.file;
    println!(
        "replay: {} (scenario {}, seed {}, plant {})",
        l.path.display(),
        f.scenario_name,
        f.seed,
        plant_name(f.plant)
    );
    println!("recorded by build {}; this build {BUILD}", f.build);
    let report = sovereign_sim::run(&l.scenario, &l.options(a.trace));
    if a.trace {
        let violation = report
            .first_violation()
            .map(|v| (v.at, format!("VIOLATION {}: {}", v.oracle, v.detail)))
            .or(f
                .violation
                .as_ref()
                .map(|v| (v.at, format!("VIOLATION {} (recorded)", v.oracle))));
        let lines = usize::try_from(a.lines).unwrap_or(usize::MAX);
        let view = TraceView {
            node: a.tower.as_deref(),
            kind: a.kind.as_deref(),
            at: a.around.or(violation.as_ref().map(|v| v.0)),
            before: lines - lines / 5,
            after: lines / 5,
        };
        let window = view.window(&report.trace, violation);
        let filters: Vec<String> = [("tower", &a.tower), ("kind", &a.kind)]
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v}")))
            .collect();
        println!(
            "trace: {} of {} recorded lines{}{}",
            window.iter().filter(|l| !l.starts_with(">>>")).count(),
            report.trace.len(),
            view.at.map(|t| format!(" around {t}")).unwrap_or_default(),
            if filters.is_empty() {
                String::new()
            } else {
                format!(" ({})", filters.join(", "))
            }
        );
        for line in window {
            println!("{line}");
        }
    }
    for line in report_lines(&report) {
        println!("{line}");
    }
    match f.check_reproduced(&report) {
        Reproduction::Reproduced => {
            let what = f.violation.as_ref().map_or(
                if f.exit_code == 0 {
                    "the clean run".to_string()
                } else {
                    "the SLO miss".to_string()
                },
                |v| format!("the {} violation", v.oracle),
            );
            println!("reproduced: {what}, same trace hash");
            Ok(report.exit_code())
        }
        Reproduction::Differs(why) => {
            eprintln!("did not reproduce: {why}");
            Ok(1)
        }
    }
}

// ---------------------------------------------------------------------------------------
// sim shrink

/// Default output path: next to the failure file, `<name>.shrunk.toml` (a trailing
/// `.failure.toml` or `.toml` is replaced).
fn shrunk_path(failure: &Path) -> PathBuf {
    let name = failure
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "failure".into());
    let stem = name
        .strip_suffix(".failure.toml")
        .or_else(|| name.strip_suffix(".toml"))
        .unwrap_or(&name);
    failure.with_file_name(format!("{stem}.shrunk.toml"))
}

/// `sovereign sim shrink`.
pub fn shrink(a: ShrinkArgs) -> Result<u8> {
    let l = Loaded::resolve(a.failure)?;
    let oracle = l.file.oracle().ok_or_else(|| {
        anyhow!(
            "{}: no oracle was violated (only SLOs were missed); nothing to shrink",
            l.path.display()
        )
    })?;
    let out = a.out.unwrap_or_else(|| shrunk_path(&l.path));
    let budget = usize::try_from(a.budget_runs).context("--budget-runs")?;
    println!(
        "shrink: {} (oracle {oracle}, seed {}, plant {}, budget {budget} runs)",
        l.path.display(),
        l.file.seed,
        plant_name(l.file.plant)
    );
    // Each candidate is a whole run: show them against the budget.
    let progress = Progress::new(
        "shrink",
        RUNS,
        budget as u64,
        "{elapsed_precise} [{bar:40}] {pos}/{len} runs of the budget ({per_sec}) {msg}",
    );
    let r = sovereign_sim::shrink::shrink(
        &l.scenario,
        &l.options(false),
        oracle,
        |sc, opts| {
            progress.set_message(format!("{} faults", sc.faults.len()));
            let report = sovereign_sim::run(sc, opts);
            // A shrink candidate "fails" when it still violates: that is progress here.
            progress.inc(report.exit_code() != 0);
            report
        },
        budget,
    );
    progress.finish();
    println!("faults: {} -> {}", r.faults_before, r.faults_after);
    println!(
        "towers: {} -> {}",
        l.scenario.towers.len(),
        r.scenario.towers.len()
    );
    let exhausted = if r.budget_exhausted {
        " (budget exhausted)"
    } else {
        ""
    };
    println!("runs: {}{exhausted}", r.runs);
    if !r.violates {
        eprintln!("the failure did not reproduce ({oracle} not violated); nothing written");
        return Ok(1);
    }
    // Say what it is now: the original's description no longer holds for what is left.
    let mut shrunk = r.scenario;
    shrunk.description = format!(
        "Shrunk from {} (seed {}, plant {}): {oracle} still fails with {} of {} faults and \
         {} of {} towers. The original: {}",
        l.path.display(),
        l.file.seed,
        plant_name(l.file.plant),
        r.faults_after,
        r.faults_before,
        shrunk.towers.len(),
        l.scenario.towers.len(),
        l.scenario.description.trim()
    );
    std::fs::write(&out, shrunk.to_toml())
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!("shrunk scenario: {}", out.display());
    println!(
        "run it: sovereign sim run {} --seed {}{}{}",
        shell_quote(&out.display().to_string()),
        l.file.seed,
        l.file
            .plant
            .map(|p| format!(" --plant {p}"))
            .unwrap_or_default(),
        branch_flags(&l.file.branches)
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sovereign_logic::Time;

    fn view(at: Option<Time>, before: usize, after: usize) -> TraceView<'static> {
        TraceView {
            node: None,
            kind: None,
            at,
            before,
            after,
        }
    }

    #[test]
    fn trace_window_centres_on_the_violation() {
        // Goal: 40 lines before the first line at/after the violation time, 10 from it.
        let lines: Vec<String> = (0..100)
            .map(|i| format!("{} event {i}", Time::from_millis(i * 10)))
            .collect();
        let shown = |r: std::ops::Range<usize>| -> Vec<String> {
            lines[r].iter().map(|l| format!("    {l}")).collect()
        };
        let w = view(Some(Time::from_millis(500)), 40, 10).window(&lines, None);
        assert_eq!(w, shown(10..60));
        let early = view(Some(Time::from_millis(20)), 40, 10).window(&lines, None);
        assert_eq!(early, shown(0..12));
        let none = view(None, 40, 10).window(&lines, None);
        assert_eq!(none, shown(50..100));
        let after_end = view(Some(Time::from_secs(99)), 40, 10).window(&lines, None);
        assert_eq!(after_end, shown(60..100));
    }

    #[test]
    fn the_violation_is_marked_at_its_time_and_filters_keep_whole_words() {
        // Goal: the marker sits between the last line before the violation and the first
        // after it; --tower keeps tower-1 but not tower-10; --kind matches a word in any
        // case; a violation outside the window shown is not marked.
        let lines: Vec<String> = (0..20)
            .map(|i| {
                let who = if i % 2 == 0 { "tower-1" } else { "tower-10" };
                let what = if i % 3 == 0 {
                    "probe fibre: ok"
                } else {
                    "SubmitOp k"
                };
                format!("{} {who} {what}", Time::from_secs(i))
            })
            .collect();
        let v = Some((
            Time::from_millis(6_500),
            "VIOLATION integrity: x".to_string(),
        ));
        let w = view(Some(Time::from_millis(6_500)), 2, 2).window(&lines, v.clone());
        assert_eq!(
            w,
            [
                format!("    {}", lines[5]),
                format!("    {}", lines[6]),
                ">>> 00:00:06.500 VIOLATION integrity: x".to_string(),
                format!("    {}", lines[7]),
                format!("    {}", lines[8]),
            ]
        );
        let mut t1 = view(Some(Time::from_millis(6_500)), 20, 20);
        t1.node = Some("tower-1");
        let w = t1.window(&lines, None);
        assert_eq!(w.len(), 10);
        assert!(w.iter().all(|l| l.contains("tower-1 ")), "{w:?}");
        let mut probes = view(Some(Time::from_millis(6_500)), 20, 20);
        probes.kind = Some("PROBE");
        let w = probes.window(&lines, None);
        assert_eq!(w.len(), 7, "{w:?}");
        let far = view(Some(Time::from_secs(15)), 1, 1).window(&lines, v);
        assert!(!far.iter().any(|l| l.starts_with(">>>")), "{far:?}");
    }

    #[test]
    fn line_time_reads_the_trace_stamp() {
        // Goal: the time prefix written by the trace parses back.
        assert_eq!(line_time_us("00:00:12.250 tower-0 crash"), Some(12_250_000));
        assert_eq!(
            line_time_us("1d 00:00:12.250 tower-0 crash"),
            Some(86_412_250_000)
        );
        assert_eq!(line_time_us("garbage"), None);
    }

    #[test]
    fn shrunk_path_sits_next_to_the_failure_file() {
        // Goal: `<name>.shrunk.toml` beside the failure file.
        assert_eq!(
            shrunk_path(Path::new("reports/failures/x-seed3.failure.toml")),
            PathBuf::from("reports/failures/x-seed3.shrunk.toml")
        );
        assert_eq!(
            shrunk_path(Path::new("f.toml")),
            PathBuf::from("f.shrunk.toml")
        );
    }

    #[test]
    fn report_lines_end_with_the_trace_hash() {
        // Goal: the last line is exactly `trace-hash: <hex>`.
        let scenario_name = "s".to_string();
        let report = RunReport {
            scenario: scenario_name,
            seed: 1,
            plant: None,
            trace_hash: "abcd".into(),
            events: 0,
            end: Time::ZERO,
            violations: Vec::new(),
            kpis: Default::default(),
            slo: Vec::new(),
            schedule: Vec::new(),
            branches: Vec::new(),
            sometimes: Vec::new(),
            trace: Vec::new(),
        };
        let lines = report_lines(&report);
        assert_eq!(lines.last().unwrap(), "trace-hash: abcd");
        assert!(lines[0].starts_with("availability"));
    }
}
