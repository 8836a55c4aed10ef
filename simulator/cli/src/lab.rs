//! `sovereign lab …`: run a scenario against real processes (`sovereign_lab`), print the
//! same verdict and KPIs as `sim run`, write the same reports; `lab down` kills what a
//! crashed run left.
//!
//! `lab fidelity` runs a scenario in both worlds and prints the comparison
//! (`sovereign_lab::fidelity`).
//!
//! Not covered: the run itself (`sovereign_lab::run`).

use crate::report::Exports;
use crate::{BUILD, LabDownArgs, LabFidelityArgs, LabRunArgs};
use anyhow::{Context, Result, anyhow, bail};
use sovereign_lab::Publication;
use sovereign_report::RunData;
use sovereign_report::junit::{TestCase, junit_xml};
use sovereign_sim::failure::shell_quote;
use sovereign_sim::scenario::{Scenario, format_duration, parse_file};
use std::path::PathBuf;

/// Exit code of a run stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: u8 = 130;

/// `sovereign lab run`.
pub fn run(a: LabRunArgs) -> Result<u8> {
    let scenario = parse_file(&a.scenario).map_err(|e| anyhow!("{e}"))?;
    check_plant(a.plant.as_deref(), a.allow_planted_bugs)?;
    let seed = a.seed.unwrap_or(scenario.seed);
    let source = a.scenario.display().to_string();
    let report_dir = a.report.clone().map(|d| {
        Some(d.unwrap_or_else(|| {
            let mut name = format!("lab-{}-seed{seed}", scenario.name);
            if let Some(p) = &a.plant {
                name.push('-');
                name.push_str(p);
            }
            PathBuf::from("reports").join(name)
        }))
    });
    let exports = Exports::resolve(report_dir.clone(), None, None, None)?;
    // Every check up front: a fault the lab cannot inject is exit 2 before anything starts.
    let plan = sovereign_lab::plan::plan(&scenario, &source, seed)?;
    println!("scenario: {} ({source})", scenario.name);
    println!("seed: {seed}");
    println!("plant: {}", a.plant.as_deref().unwrap_or("none"));
    let backend = sovereign_lab::BackendKind::parse(&a.backend)?;
    println!("backend: {}", backend.name());
    let notes = plan_notes(&scenario, &plan);
    for n in &notes {
        println!("{n}");
    }
    let how = How {
        plant: a.plant.clone(),
        backend,
        state_dir: a.state_dir,
        keep: a.keep,
    };
    let run = match start(&scenario, &source, seed, how, None)? {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    if a.keep {
        println!("run directory (kept): {}", run.run_dir.display());
    }
    for line in crate::sim::report_lines(&run.report) {
        println!("{line}");
    }
    println!("lab warnings: {}", run.warnings.len());
    let mut cmd = format!(
        "sovereign lab run {} --seed {seed} --backend {}",
        shell_quote(&source),
        backend.name()
    );
    if let Some(p) = &a.plant {
        cmd.push_str(&format!(" --plant {p} --allow-planted-bugs"));
    }
    if exports.wants_series() {
        let mut data = RunData::build(
            &scenario,
            &run.report,
            run.series,
            &source,
            BUILD,
            cmd.clone(),
            None,
        );
        // The lab's own plants (no-failover, lying-fsync) have no simulator twin.
        data.plant = a.plant.clone();
        exports.write_run(&data)?;
        if let Some(Some(dir)) = &report_dir {
            let mut text = String::from(
                "# Lab run notes\n\nA lab run: real processes, wall-clock time; no trace hash.\n\n",
            );
            for n in notes.iter().chain(run.warnings.iter()) {
                text.push_str(&format!("- {n}\n"));
            }
            let p = dir.join("lab-notes.md");
            std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
        }
    }
    if let Some(path) = &a.junit {
        let case = TestCase::from_report(&run.report, Some(&cmd));
        std::fs::write(path, junit_xml(&[case]))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("junit: {}", path.display());
    }
    Ok(run.report.exit_code())
}

/// `--plant NAME` must name one of the lab's planted bugs and come with
/// `--allow-planted-bugs`.
pub(crate) fn check_plant(plant: Option<&str>, allowed: bool) -> Result<()> {
    let Some(p) = plant else {
        return Ok(());
    };
    if !sovereign_lab::PLANTS.contains(&p) {
        bail!(
            "--plant {p}: not a planted bug the lab can switch on; expected one of {}",
            sovereign_lab::PLANTS.join(", ")
        );
    }
    if !allowed {
        bail!(
            "--plant {p} runs the real servers with a planted bug; refused without --allow-planted-bugs"
        );
    }
    Ok(())
}

/// What a lab run says before it starts: the oracles it cannot feed, the faults the
/// nemesis drew, and the faults it does not inject (each with why).
pub(crate) fn plan_notes(scenario: &Scenario, plan: &sovereign_lab::plan::Plan) -> Vec<String> {
    let mut notes = Vec::new();
    for (o, why) in sovereign_lab::plan::unfed_oracles() {
        if scenario.invariants.contains(&o) {
            notes.push(format!("oracle {o}: NOT CHECKED in the lab: {why}"));
        }
    }
    if plan.drawn > 0 {
        notes.push(format!(
            "nemesis: {} faults drawn for this seed (the simulator draws the same)",
            plan.drawn
        ));
        for p in plan
            .faults
            .iter()
            .filter(|p| p.id as usize >= scenario.faults.len())
        {
            notes.push(format!(
                "nemesis: fault[{}] {} on {} at {} for {}",
                p.id,
                p.spec.kind.name(),
                sovereign_report::data::target_name(scenario, &p.spec.target),
                format_duration(p.spec.at),
                format_duration(p.spec.duration)
            ));
        }
    }
    notes.extend(plan.not_injected.iter().cloned());
    notes
}

/// How a lab run runs its servers (the flags `lab run`, `lab fidelity` and `--lab` of
/// the console share).
pub(crate) struct How {
    pub plant: Option<String>,
    pub backend: sovereign_lab::BackendKind,
    pub state_dir: Option<PathBuf>,
    pub keep: bool,
}

/// A lab run's options, and the flag Ctrl-C and SIGTERM set.
pub(crate) fn options(
    scenario: &Scenario,
    source: &str,
    seed: u64,
    how: How,
    publications: Option<Vec<Publication>>,
) -> Result<(
    sovereign_lab::LabOptions,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
)> {
    let How {
        plant,
        backend,
        state_dir,
        keep,
    } = how;
    let interrupt = sovereign_lab::interrupt_flag()?;
    let o = sovereign_lab::LabOptions {
        file: source.to_string(),
        scenario: scenario.clone(),
        seed,
        plant,
        exe: std::env::current_exe().context("finding the sovereign executable")?,
        backend,
        state_dir: state_dir.unwrap_or_else(sovereign_lab::default_state_dir),
        keep,
        interrupt: interrupt.clone(),
        publications,
    };
    Ok((o, interrupt))
}

/// A lab run's error: the exit code of an interrupted run (after saying why), else the
/// error.
pub(crate) fn interrupted(
    e: anyhow::Error,
    interrupt: &std::sync::atomic::AtomicBool,
) -> Result<u8> {
    if interrupt.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("error: {e:#}");
        return Ok(EXIT_INTERRUPTED);
    }
    Err(e)
}

/// Run the lab: `Err(code)` when Ctrl-C or SIGTERM stopped it.
fn start(
    scenario: &Scenario,
    source: &str,
    seed: u64,
    how: How,
    publications: Option<Vec<Publication>>,
) -> Result<std::result::Result<sovereign_lab::LabRun, u8>> {
    let (o, interrupt) = options(scenario, source, seed, how, publications)?;
    match sovereign_lab::run(o) {
        Ok(r) => Ok(Ok(r)),
        Err(e) => interrupted(e, &interrupt).map(Err),
    }
}

/// `sovereign lab fidelity`: the simulator first (seconds), then the lab (the scenario's
/// duration in wall-clock time), then the table.
pub fn fidelity(a: LabFidelityArgs) -> Result<u8> {
    let scenario = parse_file(&a.scenario).map_err(|e| anyhow!("{e}"))?;
    let seed = a.seed.unwrap_or(scenario.seed);
    let source = a.scenario.display().to_string();
    let plan = sovereign_lab::plan::plan(&scenario, &source, seed)?;
    let backend = sovereign_lab::BackendKind::parse(&a.backend)?;
    println!("scenario: {} ({source})", scenario.name);
    println!("seed: {seed}");
    println!("backend: {}", backend.name());
    for n in plan_notes(&scenario, &plan) {
        println!("{n}");
    }
    // The simulator first; its publications become the lab's, so that both worlds
    // publish the same items at the same times.
    let mut world = sovereign_sim::World::new(
        &scenario,
        &sovereign_sim::RunOptions {
            seed,
            plant: None,
            ..sovereign_sim::RunOptions::default()
        },
    );
    let mut published = Published::new(&scenario);
    world.run_observed(&mut published);
    let sim = world.finish();
    println!(
        "simulator: exit {}, {} violations, trace-hash {}",
        sim.exit_code(),
        sim.violations.len(),
        sim.trace_hash
    );
    println!(
        "simulator: {} publications after the initial catalog; the lab publishes the same",
        published.after.len()
    );
    println!("lab: running for {} …", format_duration(scenario.duration));
    let how = How {
        plant: None,
        backend,
        state_dir: a.state_dir,
        keep: a.keep,
    };
    let lab = match start(&scenario, &source, seed, how, Some(published.after))? {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    println!(
        "lab: exit {}, {} violations, {} warnings",
        lab.report.exit_code(),
        lab.report.violations.len(),
        lab.warnings.len()
    );
    if a.keep {
        println!("run directory (kept): {}", lab.run_dir.display());
    }
    for (world, r) in [("simulator", &sim), ("lab", &lab.report)] {
        for v in &r.violations {
            println!("{world}: VIOLATION {} at {}: {}", v.oracle, v.at, v.detail);
        }
    }
    let rows = sovereign_lab::fidelity::compare(&scenario, &sim.kpis, &lab.report.kpis);
    for line in sovereign_lab::fidelity::table(&rows) {
        println!("{line}");
    }
    // Each version at each tower, named: what a freshness percentile is made of.
    let versions = sovereign_lab::fidelity::version_rows(
        &scenario,
        &published.versions,
        &lab.versions,
        &sim.schedule,
    );
    let version_table: Vec<sovereign_lab::fidelity::Row> =
        versions.iter().map(|v| v.row.clone()).collect();
    println!("per-version freshness (publish → servable at each tower; informational):");
    for line in sovereign_lab::fidelity::table(&version_table) {
        println!("{line}");
    }
    for v in versions.iter().filter(|v| v.row.verdict().fails()) {
        let near = if v.faults.is_empty() {
            "no fault on that tower in between".to_string()
        } else {
            v.faults.join("; ")
        };
        println!("version {} {}: {near}", v.row.kpi, v.row.verdict().word());
    }
    let within = versions
        .iter()
        .filter(|v| v.row.verdict() == sovereign_lab::fidelity::Verdict::Within)
        .count();
    println!(
        "versions: {within} of {} within tolerance (not counted in the verdict: the freshness \
         rows above are)",
        versions.len()
    );
    let outside = rows.iter().filter(|r| r.verdict().fails()).count();
    let compared = rows
        .iter()
        .filter(|r| r.verdict() != sovereign_lab::fidelity::Verdict::NotCompared)
        .count();
    println!(
        "fidelity: {} of {compared} compared KPIs within tolerance",
        compared - outside
    );
    if let Some(path) = &a.json {
        let doc = sovereign_lab::fidelity::Comparison {
            scenario: scenario.name.clone(),
            seed,
            sim_exit: sim.exit_code(),
            lab_exit: lab.report.exit_code(),
            rows: &rows,
            versions: &version_table,
        };
        let text = serde_json::to_string_pretty(&doc).context("serialising the comparison")?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("json: {}", path.display());
    }
    Ok(
        if outside > 0 || sim.exit_code() != 0 || lab.report.exit_code() != 0 {
            1
        } else {
            0
        },
    )
}

/// The simulator's publications after its initial catalog (which both worlds publish
/// before the towers start, under the same names; its versions become durable shortly
/// after time 0).
struct Published {
    initial: std::collections::BTreeSet<String>,
    after: Vec<Publication>,
    /// Each version's freshness at each tower.
    versions: sovereign_sim::kpi::freshness::Freshness,
}

impl Published {
    fn new(sc: &Scenario) -> Published {
        Published {
            initial: sovereign_lab::initial_items(sc)
                .into_iter()
                .map(|(name, _, _)| name)
                .collect(),
            after: Vec::new(),
            versions: Default::default(),
        }
    }
}

impl sovereign_sim::Observer for Published {
    fn observe(&mut self, s: &sovereign_sim::obs::Stamped) {
        self.versions.observe(s);
        if let sovereign_sim::obs::Obs::Published { manifest } = &s.obs {
            if manifest.version > 1 || !self.initial.contains(&manifest.item.0) {
                self.after.push(Publication {
                    at: std::time::Duration::from_micros(s.at.as_micros()),
                    item: manifest.item.0.clone(),
                    class: manifest.priority,
                    size: manifest.size,
                });
            }
        }
    }
}

/// `sovereign lab down`.
pub fn down(a: LabDownArgs) -> Result<u8> {
    let dir = a.state_dir.unwrap_or_else(sovereign_lab::default_state_dir);
    for line in sovereign_lab::down(&dir)? {
        println!("{line}");
    }
    Ok(0)
}
