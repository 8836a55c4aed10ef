//! Headless game days end to end: a shipped plan runs with no terminal, writes its
//! lessons-learned report and a replay file, and the replay file — parsed and run through
//! the simulator with its seed and explicit schedule — gives the same trace hash.

use sovereign_console::gameday::{self, Outcome};
use sovereign_console::{SimSource, report};
use sovereign_sim::failure::{FailureFile, Reproduction};
use sovereign_sim::{RunOptions, run};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sovereign-console-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run_plan(plan: &Path) -> Outcome {
    let (gd, scenario) = gameday::load_in(plan, &repo()).expect("the plan loads");
    let seed = gd.plan.seed.unwrap_or(scenario.seed);
    gameday::run_headless(gd, Box::new(SimSource::new(scenario, seed)), "ci")
        .expect("a simulated run finishes")
}

/// Replay a written replay file through the simulator; return its trace hash.
fn replay(path: &Path) -> (String, Reproduction) {
    let file = FailureFile::read(path).expect("the replay file reads back");
    let scenario = file.scenario("replay").expect("its scenario parses");
    let report = run(
        &scenario,
        &RunOptions {
            seed: file.seed,
            plant: file.plant,
            record_trace: false,
            schedule: Some(scenario.faults.clone()),
            branches: file.branches.clone(),
        },
    );
    let r = file.check_reproduced(&report);
    (report.trace_hash, r)
}

#[test]
fn a_headless_game_day_writes_a_report_and_a_replay_that_reproduces() {
    // Goal: the network plan runs headless, its report has every section with
    // auto-confirmed checklists marked, and its replay gives the same trace hash.
    let o = run_plan(&repo().join("gamedays/network-fibre-cut.toml"));
    assert!(o.gameday.is_done());
    assert_eq!(o.gameday.injected.len(), 2);
    assert!(o.gameday.confirmations.iter().all(|c| c.auto));
    let dir = out_dir("network");
    let w = report::write(&dir, &o, "test").expect("written");
    let md = std::fs::read_to_string(&w.lessons).expect("report");
    for section in [
        "# Lessons learned: Fibre cut and LTE failover on tower-0",
        "## Hypothesis",
        "## Timeline",
        "## KPIs against tolerances",
        "## Operator notes",
        "## Action items",
        "## Replay",
        "auto-confirmed",
        "injected fault 0: link-down on tower-0/fibre for 45m",
    ] {
        assert!(md.contains(section), "{section} missing:\n{md}");
    }
    let (confirmed, why) = report::verdict(&o);
    assert!(confirmed, "{why:?}");
    assert!(md.contains("**Confirmed.**"));
    let (hash, r) = replay(&w.replay);
    assert_eq!(hash, o.finished.report.trace_hash);
    assert_eq!(r, Reproduction::Reproduced);
    // The reports every run gets, with the game day in them.
    let d = w.data.as_ref().expect("the simulator keeps its series");
    assert_eq!(d.trace_hash, o.finished.report.trace_hash);
    for f in ["run.json", "report.md", "report.html", "summary.json"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap())
            .expect("summary parses");
    assert_eq!(summary["kind"], "gameday");
    assert_eq!(summary["gameday"]["confirmed"], true);
    assert_eq!(summary["trace_hash"], o.finished.report.trace_hash.as_str());
    let g = d.gameday.as_ref().expect("game day attached");
    assert_eq!(g.timeline.len(), o.gameday.timeline.len() + o.notes.len());
    assert!(g.tolerances.iter().all(|t| t.pass));
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("Game-day report: Fibre cut and LTE failover on tower-0"));
    assert!(html.contains("hypothesis confirmed"));
    assert!(html.contains("injected fault 0: link-down on tower-0/fibre for 45m"));
    // Every timeline entry inside the sampled run is a marker on the chart.
    let last_sample_s = *d.series.t_s.last().expect("samples") as f64;
    let inside = g
        .timeline
        .iter()
        .filter(|e| e.at_s <= last_sample_s)
        .count();
    assert!(inside >= 2, "{inside} entries inside the run");
    assert_eq!(html.matches("class=\"marker\"").count(), inside);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_abort_heals_early_and_the_replay_still_reproduces() {
    // Goal: an abort condition fires during a crash, heals it before its end, the
    // hypothesis is refuted, and the cut-short schedule still replays exactly.
    let dir = out_dir("abort");
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let plan = dir.join("abort-drill.toml");
    std::fs::write(
        &plan,
        "title = \"Abort drill\"\nquarter = \"2026-Q1\"\nhypothesis = \"no tower goes down\"\n\
         scenario = \"scenarios/baseline.toml\"\nduration = \"4h\"\nseed = 3\n\
         [[abort]]\nmetric = \"towers-down\"\nabove = 0\nreason = \"a tower is down\"\n\
         [[step]]\nat = \"1h\"\naction = \"inject\"\n\
         fault = { kind = \"crash\", target = \"tower-0\", for = \"30m\" }\n\
         [[step]]\naction = \"wait\"\nfor = \"1h\"\n\
         [rollback]\nwait = \"10m\"\n",
    )
    .expect("plan written");
    let o = run_plan(&plan);
    let (at, why) = o.gameday.aborted.clone().expect("aborted");
    assert!(why.contains("towers-down > 0"), "{why}");
    assert!(
        at.as_micros() < 3_600_000_000 + 120_000_000,
        "aborted promptly: {at}"
    );
    let cut = &o.finished.replay_schedule[0];
    assert!(
        cut.duration < std::time::Duration::from_secs(1800),
        "{cut:?}"
    );
    assert!(o.finished.replay_caveats.is_empty());
    let (confirmed, reasons) = report::verdict(&o);
    assert!(!confirmed);
    assert!(reasons[0].starts_with("aborted at"), "{reasons:?}");
    let w = report::write(&dir.join("out"), &o, "test").expect("written");
    let md = std::fs::read_to_string(&w.lessons).expect("report");
    assert!(md.contains("**Refuted.**"), "{md}");
    assert!(md.contains("ABORT: towers-down > 0"), "{md}");
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("out/summary.json")).expect("summary written"),
    )
    .expect("summary parses");
    assert_eq!(summary["gameday"]["confirmed"], false);
    let first = summary["gameday"]["reasons"][0].as_str().expect("a reason");
    assert!(first.starts_with("aborted at"), "{first}");
    let (hash, r) = replay(&w.replay);
    assert_eq!(hash, o.finished.report.trace_hash);
    assert_eq!(r, Reproduction::Reproduced);
    let _ = std::fs::remove_dir_all(&dir);
}
