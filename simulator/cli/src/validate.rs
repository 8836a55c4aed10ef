//! `sovereign sim validate` and `sovereign gameday validate`: read scenario and plan files
//! exactly as a run would (the same parsers, limits and checks: fields, targets, blast
//! radius, cost bounds), without running them, and summarise what each would do — the
//! `chaos validate` of this tool.
//!
//! Map: [`scenarios`], [`plans`]; [`scenario_summary`] is the shared description.
//!
//! Not covered: anything only a run can tell (whether the SLOs hold).

use sovereign_console::gameday;
use sovereign_sim::scenario::{Scenario, format_duration, parse_file};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The exit code when a file is invalid (a usage error, as for every bad input).
const INVALID: u8 = 2;

/// Validate scenario files; the exit code (0, or 2 if any is invalid).
pub fn scenarios(files: &[PathBuf]) -> u8 {
    each(files, |path| {
        let sc = parse_file(path).map_err(|e| e.to_string())?;
        Ok(scenario_summary(&sc))
    })
}

/// Validate game-day plans (and the scenarios they name); the exit code.
pub fn plans(files: &[PathBuf]) -> u8 {
    each(files, |path| {
        let (gd, sc) = gameday::load(path).map_err(|e| e.to_string())?;
        let p = &gd.plan;
        let mut out = vec![
            format!("{} ({} {})", p.title, p.quarter, p.date),
            format!("hypothesis: {}", p.hypothesis),
            format!(
                "scenario: {} ({})",
                p.scenario,
                p.duration.map_or_else(
                    || "its own duration".to_string(),
                    |d| format!("safety phase shortened to {}", format_duration(d))
                )
            ),
            format!(
                "steps: {}, abort conditions: {}, rollback: {}{}",
                p.steps.len(),
                p.aborts.len(),
                if p.rollback.heal { "heal, " } else { "" },
                format!(
                    "wait {}, {} checklist item(s)",
                    format_duration(p.rollback.wait),
                    p.rollback.checklist.len()
                )
            ),
            format!(
                "blast radius: {}",
                if p.blast_radius.towers.is_empty() {
                    "not limited".to_string()
                } else {
                    p.blast_radius.towers.join(", ")
                }
            ),
        ];
        out.extend(scenario_summary(&sc).into_iter().map(|l| format!("  {l}")));
        Ok(out)
    })
}

/// Run `check` on every file, print `path: ok` and the summary, or `path: invalid` and
/// the error; 0 if all are valid, else [`INVALID`].
fn each(files: &[PathBuf], check: impl Fn(&Path) -> Result<Vec<String>, String>) -> u8 {
    let mut bad = 0;
    for path in files {
        match check(path) {
            Ok(lines) => {
                println!("{}: ok", path.display());
                for l in lines {
                    println!("  {l}");
                }
            }
            Err(e) => {
                bad += 1;
                println!("{}: invalid", path.display());
                eprintln!("error: {e}");
            }
        }
    }
    if files.len() > 1 {
        println!("{} of {} valid", files.len() - bad, files.len());
    }
    if bad == 0 { 0 } else { INVALID }
}

/// What a scenario would do, in a few lines.
pub fn scenario_summary(sc: &Scenario) -> Vec<String> {
    let mut out = vec![format!(
        "{}: {}",
        sc.name,
        sc.description.lines().next().unwrap_or("")
    )];
    out.push(format!(
        "{} safety phase, then {} to converge; seed {}",
        format_duration(sc.duration),
        format_duration(sc.liveness_bound),
        sc.seed
    ));
    let devices: u64 = sc.towers.iter().map(|t| u64::from(t.devices)).sum();
    let mut links: BTreeMap<String, usize> = BTreeMap::new();
    for t in &sc.towers {
        let kinds: Vec<String> = t.links.iter().map(|l| l.kind.to_string()).collect();
        *links.entry(kinds.join("+")).or_default() += 1;
    }
    let links: Vec<String> = links.iter().map(|(k, n)| format!("{n} on {k}")).collect();
    out.push(format!(
        "{} tower(s) ({}), {devices} device(s)",
        sc.towers.len(),
        links.join(", ")
    ));
    let mut families: BTreeMap<String, usize> = BTreeMap::new();
    for f in &sc.faults {
        *families
            .entry(f.kind.family().name().to_string())
            .or_default() += 1;
    }
    let families: Vec<String> = families.iter().map(|(k, n)| format!("{k} {n}")).collect();
    out.push(format!(
        "faults: {} scheduled{}",
        sc.faults.len(),
        if families.is_empty() {
            String::new()
        } else {
            format!(" ({})", families.join(", "))
        }
    ));
    out.push(if sc.nemesis.rates_per_hour.is_empty() {
        "nemesis: off".to_string()
    } else {
        let rates: Vec<String> = sc
            .nemesis
            .rates_per_hour
            .iter()
            .map(|(f, r)| format!("{} {r}/h", f.name()))
            .collect();
        format!(
            "nemesis: {} (mean {}, at most {})",
            rates.join(", "),
            format_duration(sc.nemesis.duration_mean),
            format_duration(sc.nemesis.duration_max)
        )
    });
    let oracles: Vec<&str> = sc.invariants.iter().map(|o| o.name()).collect();
    out.push(format!(
        "invariants ({}): {}",
        oracles.len(),
        oracles.join(", ")
    ));
    let s = &sc.slo;
    let mut slo = Vec::new();
    if let Some(a) = s.availability_min {
        slo.push(format!("availability >= {a}"));
    }
    for (class, max) in s.freshness_p99_max.iter().enumerate() {
        if let Some(d) = max {
            slo.push(format!("P{class} freshness p99 <= {}", format_duration(*d)));
        }
    }
    if let Some(d) = s.mttr_max {
        slo.push(format!("mttr <= {}", format_duration(d)));
    }
    slo.push(format!("rpo <= {}", s.rpo_max));
    if let Some(m) = s.soc_min {
        slo.push(format!("lowest charge >= {m}"));
    }
    out.push(format!("SLOs: {}", slo.join(", ")));
    out
}
