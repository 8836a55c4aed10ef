//! `sovereign sim hunt`: for each planted bug, how many runs and CPU seconds a sweep
//! spends before it first catches it, over many independent hunts (median and p90) on a
//! fixed budget — the yardstick for seed-picking strategies (issue 17).
//!
//! The hunts themselves (seed streams, the clean build's confirmation, quantiles) are
//! `sovereign_sim::hunt`; this module runs them on worker threads, measures each run's
//! CPU time, prints the table and writes it as JSON. `--swarm` runs each drawn (scenario,
//! seed) as the scenario's swarm variant for that seed; `--buggify` switches its fault sites on.

use crate::HuntArgs;
use crate::pool::run_parallel;
use crate::progress::{Progress, Units};
use crate::sim::{branch_flags, load_scenarios, rerun_command};
use crate::wall::{Stopwatch, cpu_seconds, thread_cpu};
use crate::{BUILD, report};
use anyhow::{Result, bail};
use serde_json::json;
use sovereign_sim::Plant;
use sovereign_sim::hunt::{BUDGET_MAX, Guide, HUNTS_MAX, HuntOutcome, HuntStats, Quantile, hunt};
use sovereign_sim::sweep::Strategy;
use std::fmt::Write as _;

/// One plant's hunts.
struct PlantHunts {
    plant: Plant,
    outcomes: Vec<HuntOutcome>,
    stats: HuntStats,
}

fn show(q: Quantile, budget: u64, digits: usize) -> String {
    match q {
        Quantile::At(v) => format!("{v:.digits$}"),
        Quantile::Beyond if digits == 0 => format!(">{budget}"),
        Quantile::Beyond => "miss".to_string(),
    }
}

fn quantile_json(q: Quantile) -> serde_json::Value {
    match q {
        Quantile::At(v) => json!(v),
        Quantile::Beyond => json!(null),
    }
}

/// `sovereign sim hunt`. Exit 0 when every plant was caught by at least one hunt, 1 when
/// some plant was never caught within the budget.
pub fn hunt_command(a: HuntArgs) -> Result<u8> {
    if a.hunts == 0 || a.hunts > HUNTS_MAX {
        bail!("--hunts {}: expected 1 to {HUNTS_MAX}", a.hunts);
    }
    if a.budget == 0 || a.budget > BUDGET_MAX {
        bail!("--budget {}: expected 1 to {BUDGET_MAX} runs", a.budget);
    }
    let scenarios = load_scenarios(&a.scenarios)?;
    let plants: Vec<Plant> = if a.plant.is_empty() {
        Plant::ALL.to_vec()
    } else {
        let mut p = a.plant.clone();
        p.sort();
        p.dedup();
        p
    };
    let jobs = crate::pool::jobs(a.jobs)?;
    let strategy = Strategy {
        swarm: a.swarm,
        buggify: a.buggify,
    };
    let guide = a.guided.then_some(Guide::DEFAULT);
    let clock = if thread_cpu().is_some() {
        "CPU s per thread (/proc/thread-self/schedstat)"
    } else {
        "wall s (no per-thread CPU clock here)"
    };
    println!(
        "hunt: {} plant(s) × {} hunts over {} scenario(s), budget {} runs per hunt, {}{} runs from base {}, {jobs} jobs, {clock}, build {BUILD}",
        plants.len(),
        a.hunts,
        scenarios.len(),
        a.budget,
        strategy.name(),
        if a.guided { ", guided" } else { "" },
        a.base
    );
    let items: Vec<(Plant, u64)> = plants
        .iter()
        .flat_map(|&p| (0..a.hunts).map(move |k| (p, k)))
        .collect();
    let progress = Progress::new(
        "hunt",
        Units {
            items: "hunts",
            bad: "missed",
        },
        items.len() as u64,
        "{elapsed_precise} [{bar:40}] {pos}/{len} hunts (eta {eta})",
    );
    let only: Vec<_> = scenarios.iter().map(|(_, s)| s.clone()).collect();
    let wall = Stopwatch::start();
    let results = run_parallel(
        jobs,
        &items,
        |&(plant, k)| {
            hunt(
                &only,
                plant,
                a.base,
                k,
                a.budget,
                strategy,
                guide,
                |sc, o| cpu_seconds(|| sovereign_sim::run(sc, o)),
            )
        },
        |r| progress.inc(r.as_ref().map_or(true, |o| o.catch.is_none())),
    );
    progress.finish();
    let wall = wall.elapsed();

    let mut by_plant: Vec<PlantHunts> = Vec::new();
    for (plant, chunk) in plants.iter().zip(results.chunks(usize::try_from(a.hunts)?)) {
        let mut outcomes = Vec::with_capacity(chunk.len());
        for r in chunk {
            match r {
                Ok(o) => outcomes.push(o.clone()),
                Err(msg) => bail!("a hunt for {plant} panicked: {msg}"),
            }
        }
        let Some(stats) = HuntStats::of(&outcomes) else {
            bail!("no hunts for {plant}");
        };
        by_plant.push(PlantHunts {
            plant: *plant,
            outcomes,
            stats,
        });
    }

    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<22} {:<15} {:>7} {:>9} {:>9} {:>9} {:>9}  fastest catch",
        "plant", "oracle", "caught", "runs p50", "runs p90", "CPU p50", "CPU p90"
    );
    for h in &by_plant {
        let s = &h.stats;
        let fastest = h
            .outcomes
            .iter()
            .filter_map(|o| o.catch.as_ref())
            .min_by_key(|c| c.runs)
            .map_or_else(String::new, |c| {
                rerun_command(
                    &scenarios[c.scenario_index].0.display().to_string(),
                    c.seed,
                    Some(h.plant),
                    strategy,
                ) + &branch_flags(&c.branches)
            });
        let _ = writeln!(
            table,
            "{:<22} {:<15} {:>7} {:>9} {:>9} {:>9} {:>9}  {fastest}",
            h.plant.name(),
            h.plant.oracle().name(),
            format!("{}/{}", s.caught, s.hunts),
            show(s.runs_median, a.budget, 0),
            show(s.runs_p90, a.budget, 0),
            show(s.cpu_median, a.budget, 2),
            show(s.cpu_p90, a.budget, 2),
        );
    }
    print!("{table}");
    let medians: Vec<Option<f64>> = by_plant
        .iter()
        .map(|h| match h.stats.runs_median {
            Quantile::At(v) => Some(v),
            Quantile::Beyond => None,
        })
        .collect();
    let overall = sovereign_sim::hunt::quantile(&medians, 0.5).unwrap_or(Quantile::Beyond);
    let never: Vec<&str> = by_plant
        .iter()
        .filter(|h| h.stats.caught == 0)
        .map(|h| h.plant.name())
        .collect();
    let cpu_total: f64 = by_plant.iter().map(|h| h.stats.cpu_total).sum();
    println!(
        "median over plants of the median runs to first catch: {}; plants never caught within {} runs: {}; {cpu_total:.1} CPU s in {:.1} s wall",
        show(overall, a.budget, 0),
        a.budget,
        if never.is_empty() {
            "none".to_string()
        } else {
            never.join(", ")
        },
        wall.as_secs_f64()
    );

    if let Some(path) = &a.json {
        let doc = json!({
            "build": BUILD,
            "strategy": strategy.name(),
            "guided": a.guided,
            "base": a.base,
            "hunts": a.hunts,
            "budget": a.budget,
            "clock": clock,
            "scenarios": scenarios.iter().map(|(p, _)| p.display().to_string()).collect::<Vec<_>>(),
            "median_of_medians_runs": quantile_json(overall),
            "plants": by_plant.iter().map(|h| json!({
                "plant": h.plant.name(),
                "oracle": h.plant.oracle().name(),
                "caught": h.stats.caught,
                "hunts": h.stats.hunts,
                "runs_median": quantile_json(h.stats.runs_median),
                "runs_p90": quantile_json(h.stats.runs_p90),
                "cpu_s_median": quantile_json(h.stats.cpu_median),
                "cpu_s_p90": quantile_json(h.stats.cpu_p90),
                "cpu_s_total": h.stats.cpu_total,
                "hunts_detail": h.outcomes.iter().map(|o| match &o.catch {
                    Some(c) => json!({
                        "runs": c.runs, "cpu_s": c.cpu_s,
                        "scenario": scenarios[c.scenario_index].0.display().to_string(),
                        "seed": c.seed, "clean_also_failed": c.clean_also_failed,
                        "branch_runs": o.branch_runs,
                        "branches": c.branches.iter().map(|b| json!({
                            "at_us": u64::try_from(b.at.as_micros()).unwrap_or(u64::MAX),
                            "seed": b.seed,
                        })).collect::<Vec<_>>(),
                    }),
                    None => json!({"runs": null, "spent_runs": o.runs, "cpu_s": o.cpu_s, "branch_runs": o.branch_runs}),
                }).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&doc)? + "\n";
        report::write(path, &text)?;
        println!("wrote {}", path.display());
    }
    Ok(if never.is_empty() { 0 } else { 1 })
}
