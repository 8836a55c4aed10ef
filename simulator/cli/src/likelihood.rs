//! `sovereign sim replay FILE --likelihood`: how likely the recorded failure is, and
//! since when. The run is replayed once (it must reproduce), then branched at `--points`
//! points from its start to its failure with `--branches` fresh seeds each
//! ([`sovereign_sim::likelihood`]); the table goes to stdout and `likelihood.html`
//! (the chart under the run's fault timeline), `.svg` and `.json` to the report folder.
//!
//! Exit codes: 0 the estimate was made; 1 the file does not reproduce on this build, or
//! the check at the failure itself failed (a branch taken after the failure must fail
//! every time); 2 bad input or a branch that panicked.

use crate::pool::{jobs, run_parallel};
use crate::progress::{Progress, RUNS};
use crate::sim::Loaded;
use crate::wall::Stopwatch;
use crate::{BUILD, ReplayArgs};
use anyhow::{Result, bail};
use sovereign_report::RunData;
use sovereign_report::likelihood::{LIKELIHOOD_FORMAT, LikelihoodData, LikelihoodPoint};
use sovereign_sim::Branch;
use sovereign_sim::failure::{Reproduction, replay_command, shell_quote};
use sovereign_sim::likelihood::{
    DOOMED_RATE, Point, branch_seed, doomed_from, points, sharpest_rise,
};
use std::path::PathBuf;

/// `sovereign sim replay FILE --likelihood`.
pub fn run(a: ReplayArgs) -> Result<u8> {
    let l = Loaded::resolve(a.failure.clone())?;
    let f = &l.file;
    let source = l.path.display().to_string();
    let jobs = jobs(a.jobs)?;
    let k = usize::try_from(a.points)?;
    let n = u32::try_from(a.branches)?;
    println!(
        "likelihood: {source} (scenario {}, seed {})",
        f.scenario_name, f.seed
    );
    // The recorded run first: the branches are branches of it only if it reproduces.
    let (report, series) = sovereign_report::record(&l.scenario, &l.options(false));
    if let Reproduction::Differs(why) = f.check_reproduced(&report) {
        eprintln!(
            "did not reproduce: {why}; the likelihood of a run needs that run (replay it on the build that recorded it, {})",
            f.build
        );
        return Ok(1);
    }
    let what = match &f.violation {
        Some(v) => format!("the {} violation", v.oracle),
        None => "the SLO miss".to_string(),
    };
    let failure_at = f.violation.as_ref().map_or(report.end, |v| v.at);
    let at = points(failure_at, k);
    println!(
        "{what} at {failure_at}: {k} branch points from the start to it, {n} branches each ({} runs, {jobs} jobs)",
        k as u64 * u64::from(n)
    );
    let items: Vec<(usize, u32)> = (0..k).flat_map(|i| (0..n).map(move |j| (i, j))).collect();
    let progress = Progress::new(
        "likelihood",
        RUNS,
        items.len() as u64,
        "{elapsed_precise} [{bar:40}] {pos}/{len} branches ({per_sec}, eta {eta})",
    );
    let clock = Stopwatch::start();
    let results = run_parallel(
        jobs,
        &items,
        |&(i, j)| {
            let mut opts = l.options(false);
            // The recorded run's own branches up to the point stay: the prefix is its.
            opts.branches.retain(|b| b.at <= at[i]);
            opts.branches.push(Branch {
                at: at[i],
                seed: branch_seed(f.seed, i, j),
            });
            f.recurs_in(&sovereign_sim::run(&l.scenario, &opts))
        },
        |r| progress.inc(r.as_ref().is_ok_and(|recurred| *recurred)),
    );
    let wall = clock.elapsed();
    progress.finish();
    let mut counts: Vec<Point> = at
        .iter()
        .map(|t| Point {
            at: *t,
            runs: 0,
            recurred: 0,
        })
        .collect();
    for (&(i, j), r) in items.iter().zip(&results) {
        match r {
            Ok(recurred) => {
                counts[i].runs += 1;
                counts[i].recurred += u32::from(*recurred);
            }
            Err(panic) => bail!(
                "the branch at {} with seed {} panicked: {panic} (rerun it: sovereign sim run with --branch-at {}us --branch-seed {} on the failure file's scenario)",
                at_time(at[i]),
                branch_seed(f.seed, i, j),
                at[i].as_micros(),
                branch_seed(f.seed, i, j)
            ),
        }
    }
    println!("  branch point        failed again   share   95% interval");
    for p in &counts {
        let (lo, hi) = p.wilson();
        println!(
            "  {:<18}  {:>6}/{:<6}  {:>6.2}   {lo:.2}–{hi:.2}",
            at_time(p.at).to_string(),
            p.recurred,
            p.runs,
            p.rate()
        );
    }
    let doomed = doomed_from(&counts);
    match doomed {
        Some(d) => println!(
            "doomed from: {} (the failure recurs in at least {:.0}% of the branches from every point on; look just before it)",
            at_time(counts[d].at),
            DOOMED_RATE * 100.0
        ),
        None => println!(
            "doomed from: never before the failure (no point reaches {:.0}%)",
            DOOMED_RATE * 100.0
        ),
    }
    let rise = sharpest_rise(&counts);
    if let Some(i) = rise {
        println!(
            "sharpest rise: between {} and {} ({:.2} → {:.2}): look there",
            at_time(counts[i - 1].at),
            at_time(counts[i].at),
            counts[i - 1].rate(),
            counts[i].rate()
        );
    }
    for (m, t) in &report.sometimes {
        println!("rare moment of the recorded run: {m} at {t}");
    }
    println!("runs: {} in {:.1} s wall", items.len(), wall.as_secs_f64());
    let command = format!(
        "sovereign sim replay {} --likelihood --points {k} --branches {n}",
        shell_quote(&source)
    );
    let data = LikelihoodData {
        format: LIKELIHOOD_FORMAT,
        failure_file: source.clone(),
        scenario: f.scenario_name.clone(),
        seed: f.seed,
        plant: f.plant.map(|p| p.name().to_string()),
        failure: what,
        failure_at_s: failure_at.as_secs_f64(),
        branches: n,
        points: counts
            .iter()
            .map(|p| {
                let (low, high) = p.wilson();
                LikelihoodPoint {
                    at_s: p.at.as_secs_f64(),
                    runs: p.runs,
                    recurred: p.recurred,
                    rate: p.rate(),
                    low,
                    high,
                }
            })
            .collect(),
        doomed_rate: DOOMED_RATE,
        doomed_from_s: doomed.map(|d| counts[d].at.as_secs_f64()),
        sharpest_rise: rise,
        moments: report
            .sometimes
            .iter()
            .map(|(m, t)| (m.name().to_string(), t.as_secs_f64()))
            .collect(),
        build: BUILD.to_string(),
        command,
    };
    let run = RunData::build(
        &l.scenario,
        &report,
        series,
        &source,
        BUILD,
        replay_command(&source),
        Some(source.clone()),
    );
    let dir = a.report.clone().unwrap_or_else(|| default_dir(&l.path));
    let written = sovereign_report::likelihood::write(&dir, &data, &run)?;
    for p in written {
        println!("report: {}", p.display());
    }
    // The method's own check: a branch after the failure keeps it in its prefix.
    let last = counts.last().map_or((0, 0), |p| (p.recurred, p.runs));
    if last.0 != last.1 {
        eprintln!(
            "check FAILED: branched at the failure itself, the failure recurred in only {}/{} branches (a branch must keep its prefix)",
            last.0, last.1
        );
        return Ok(1);
    }
    Ok(0)
}

/// A branch point as the trace writes times.
fn at_time(at: std::time::Duration) -> sovereign_logic::Time {
    sovereign_logic::Time::from_micros(u64::try_from(at.as_micros()).unwrap_or(u64::MAX))
}

/// `reports/<the failure file's name without .failure.toml>-likelihood/`.
fn default_dir(failure: &std::path::Path) -> PathBuf {
    let name = failure
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let stem = name
        .strip_suffix(".failure.toml")
        .or_else(|| name.strip_suffix(".toml"))
        .unwrap_or(&name);
    PathBuf::from("reports").join(format!("{stem}-likelihood"))
}
