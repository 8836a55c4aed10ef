//! `sovereign lab …`: run a scenario against real processes (`sovereign_lab`), print the
//! same verdict and KPIs as `sim run`, write the same reports; `lab down` kills what a
//! crashed run left.
//!
//! Not covered: the run itself (`sovereign_lab::run`).

use crate::report::Exports;
use crate::{BUILD, LabDownArgs, LabRunArgs};
use anyhow::{Context, Result, anyhow, bail};
use sovereign_report::RunData;
use sovereign_report::junit::{TestCase, junit_xml};
use sovereign_sim::failure::shell_quote;
use sovereign_sim::scenario::parse_file;
use std::path::PathBuf;

/// Exit code of a run stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: u8 = 130;

/// `sovereign lab run`.
pub fn run(a: LabRunArgs) -> Result<u8> {
    let scenario = parse_file(&a.scenario).map_err(|e| anyhow!("{e}"))?;
    if let Some(p) = &a.plant {
        if !sovereign_lab::PLANTS.contains(&p.as_str()) {
            bail!(
                "--plant {p}: not a planted bug the lab can switch on; expected one of {}",
                sovereign_lab::PLANTS.join(", ")
            );
        }
        if !a.allow_planted_bugs {
            bail!(
                "--plant {p} runs the real towers with a planted bug; refused without --allow-planted-bugs"
            );
        }
    }
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
    sovereign_lab::plan::plan(&scenario, &source)?;
    println!("scenario: {} ({source})", scenario.name);
    println!("seed: {seed}");
    println!("plant: {}", a.plant.as_deref().unwrap_or("none"));
    println!("backend: processes");
    let mut notes = Vec::new();
    for (o, why) in sovereign_lab::plan::unfed_oracles() {
        if scenario.invariants.contains(&o) {
            notes.push(format!("oracle {o}: NOT CHECKED in the lab: {why}"));
        }
    }
    for n in &notes {
        println!("{n}");
    }
    let exe = std::env::current_exe().context("finding the sovereign executable")?;
    let interrupt = sovereign_lab::interrupt_flag()?;
    let run = sovereign_lab::run(sovereign_lab::LabOptions {
        file: source.clone(),
        scenario: scenario.clone(),
        seed,
        plant: a.plant.clone(),
        exe,
        state_dir: a
            .state_dir
            .clone()
            .unwrap_or_else(sovereign_lab::default_state_dir),
        keep: a.keep,
        interrupt: interrupt.clone(),
    });
    let run = match run {
        Ok(r) => r,
        Err(e) if interrupt.load(std::sync::atomic::Ordering::Relaxed) => {
            eprintln!("error: {e:#}");
            return Ok(EXIT_INTERRUPTED);
        }
        Err(e) => return Err(e),
    };
    if a.keep {
        println!("run directory (kept): {}", run.run_dir.display());
    }
    for line in crate::sim::report_lines(&run.report) {
        println!("{line}");
    }
    println!("lab warnings: {}", run.warnings.len());
    let mut cmd = format!("sovereign lab run {} --seed {seed}", shell_quote(&source));
    if let Some(p) = &a.plant {
        cmd.push_str(&format!(" --plant {p} --allow-planted-bugs"));
    }
    if exports.wants_series() {
        let data = RunData::build(
            &scenario,
            &run.report,
            run.series,
            &source,
            BUILD,
            cmd.clone(),
            None,
        );
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

/// `sovereign lab down`.
pub fn down(a: LabDownArgs) -> Result<u8> {
    let dir = a.state_dir.unwrap_or_else(sovereign_lab::default_state_dir);
    for line in sovereign_lab::down(&dir)? {
        println!("{line}");
    }
    Ok(0)
}
