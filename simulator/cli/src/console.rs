//! `sovereign console` and `sovereign gameday`: resolve the flags (scenario or plan,
//! seed, operator, output directory), then hand over to `sovereign-console`.
//!
//! Not covered: the console itself (the `sovereign-console` crate).

use crate::report::Exports;
use crate::{BUILD, ConsoleArgs, GamedayArgs, LabFlags};
use anyhow::{Context, Result, anyhow};
use sovereign_console::gameday::{self, GameDay, Outcome};
use sovereign_console::plan::Plan;
use sovereign_console::{App, LabSource, SimSource, Source, SourceError, report};
use sovereign_sim::scenario::{Scenario, parse_file};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// The operator's name: `--operator`, else `$USER`, else `operator`.
fn operator(flag: Option<String>) -> String {
    flag.filter(|s| !s.trim().is_empty())
        .or_else(|| std::env::var("USER").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "operator".into())
}

/// The flag Ctrl-C and SIGTERM set during a lab run.
type Interrupt = Arc<AtomicBool>;

/// The run the console drives: the simulator, or with `--lab` real processes (started
/// here, before the terminal is taken; quiet once it is, unless `headless`), with the
/// flag Ctrl-C and SIGTERM set for a lab run.
fn source(
    scenario: Scenario,
    file: &Path,
    seed: u64,
    lab: LabFlags,
    headless: bool,
) -> Result<(Box<dyn Source>, Option<Interrupt>)> {
    if !lab.lab {
        return Ok((Box::new(SimSource::new(scenario, seed)), None));
    }
    crate::lab::check_plant(lab.plant.as_deref(), lab.allow_planted_bugs)?;
    let file = file.display().to_string();
    let plan = sovereign_lab::plan::plan(&scenario, &file, seed)?;
    for n in crate::lab::plan_notes(&scenario, &plan) {
        println!("{n}");
    }
    let backend = sovereign_lab::BackendKind::parse(&lab.backend)?;
    println!(
        "lab: starting {} on real processes (backend {}; seed {seed}; plant {})",
        scenario.name,
        backend.name(),
        lab.plant.as_deref().unwrap_or("none")
    );
    let how = crate::lab::How {
        plant: lab.plant,
        backend,
        state_dir: lab.state_dir,
        keep: lab.keep,
    };
    let (o, interrupt) = crate::lab::options(&scenario, &file, seed, how, None)?;
    let session = sovereign_lab::Session::start(o)?;
    if lab.keep {
        println!("run directory (kept): {}", session.run_dir().display());
    }
    sovereign_lab::set_quiet(!headless);
    Ok((Box::new(LabSource::new(session, seed)), Some(interrupt)))
}

/// The end of a run the console drove: its error, or for an interrupted lab run its exit
/// code.
fn ended(e: SourceError, interrupt: Option<&Interrupt>) -> Result<u8> {
    let e = anyhow!("{e}");
    match interrupt {
        Some(flag) => crate::lab::interrupted(e, flag),
        None => Err(e),
    }
}

/// `sovereign console`.
pub fn console(a: ConsoleArgs) -> Result<u8> {
    let scenario = parse_file(&a.scenario).map_err(|e| anyhow!("{e}"))?;
    if !std::io::stdout().is_terminal() {
        anyhow::bail!(
            "{}: no terminal to run the console in (for a run without one: sovereign sim \
             run {0})",
            a.scenario.display()
        );
    }
    let seed = a.seed.unwrap_or(scenario.seed);
    // Free play keeps a journal, written on quit like a game day's report.
    let plan = Plan::free_play(&a.scenario.display().to_string(), &scenario);
    let dir = a
        .out
        .clone()
        .unwrap_or_else(|| report::default_dir(&plan.name, seed));
    let (src, interrupt) = source(scenario, &a.scenario, seed, a.lab, false)?;
    let mut app = App::new(
        src,
        operator(a.operator),
        Some(GameDay::new(plan, Vec::new())),
    );
    app.paused = a.paused;
    sovereign_console::driver::run(&mut app).context("the terminal console failed")?;
    println!("console: finishing the run for the journal…");
    sovereign_lab::set_quiet(false);
    let outcome = match app.finish() {
        Ok(o) => o.expect("free play keeps a journal"),
        Err(e) => return ended(e, interrupt.as_ref()),
    };
    write(&dir, &outcome, &Exports::resolve(None, None, None, None)?)
}

/// `sovereign gameday`.
pub fn gameday(a: GamedayArgs) -> Result<u8> {
    // Bad export flags are usage errors before the game day, not after it.
    let exports = Exports::resolve(
        None,
        a.export.openmetrics,
        a.export.annotations,
        a.export.start,
    )?;
    let plan = a.plan.context("a plan file is required")?;
    let (gd, scenario) = gameday::load(&plan).map_err(|e| anyhow!("{e}"))?;
    if !a.headless && !std::io::stdout().is_terminal() {
        anyhow::bail!(
            "{}: no terminal to run the console in; run it with --headless (checklist \
             items are then confirmed automatically and marked so)",
            plan.display()
        );
    }
    let seed = a.seed.or(gd.plan.seed).unwrap_or(scenario.seed);
    let who = operator(a.operator);
    let dir = a
        .out
        .clone()
        .unwrap_or_else(|| report::default_dir(&gd.plan.name, seed));
    let (src, interrupt) = source(scenario, &plan, seed, a.lab, a.headless)?;
    let outcome = if a.headless {
        println!(
            "gameday: {} (headless, seed {seed}, operator {who})",
            gd.plan.title
        );
        match gameday::run_headless(gd, src, &who) {
            Ok(o) => o,
            Err(e) => return ended(e, interrupt.as_ref()),
        }
    } else {
        let mut app = App::new(src, who, Some(gd));
        sovereign_console::driver::run(&mut app).context("the terminal console failed")?;
        println!("gameday: finishing the run for the report…");
        sovereign_lab::set_quiet(false);
        match app.finish() {
            Ok(o) => o.expect("a game day was attached"),
            Err(e) => return ended(e, interrupt.as_ref()),
        }
    };
    write(&dir, &outcome, &exports)
}

fn write(dir: &Path, o: &Outcome, exports: &Exports) -> Result<u8> {
    let w = report::write(dir, o, BUILD)
        .with_context(|| format!("cannot write the report into {}", dir.display()))?;
    let (confirmed, why) = report::verdict(o);
    println!(
        "hypothesis: {}",
        if confirmed { "confirmed" } else { "refuted" }
    );
    for w in why {
        println!("  - {w}");
    }
    println!("lessons learned: {}", w.lessons.display());
    match &w.data {
        Some(d) => {
            println!("report: {}", dir.join("report.html").display());
            exports.write_run(d)?;
            // Last, and best effort: the history never costs an export or the verdict.
            crate::runs::record(dir, d);
        }
        None if exports.wants_series() => {
            anyhow::bail!("this source kept no time series: nothing to export")
        }
        None => {}
    }
    println!("replay: sovereign sim replay {}", w.replay.display());
    println!("trace-hash: {}", o.finished.report.trace_hash);
    // CI runs plans headless: a refuted hypothesis fails the job.
    Ok(if confirmed { 0 } else { 1 })
}
