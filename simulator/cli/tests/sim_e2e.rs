//! The simulator's command line end to end on shipped scenarios: run prints KPIs and a
//! trace hash, planted bugs exit with their class, a sweep writes failure files that
//! replay exactly, and shrink reduces a storm's fault schedule while keeping its oracle.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sovereign(args: &[&str]) -> Output {
    sovereign_under(&[], args)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The `trace-hash:` line of a run's or replay's output.
fn trace_hash(o: &Output) -> String {
    stdout(o)
        .lines()
        .find_map(|l| l.strip_prefix("trace-hash: "))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no trace-hash line: {}", stdout(o)))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sovereign-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn run_prints_kpis_slos_and_a_trace_hash_and_exits_0_on_a_calm_day() {
    // Goal: the README's main job works and its output carries the contract lines.
    let o = sovereign(&[
        "sim",
        "run",
        "scenarios/baseline.toml",
        "--seed",
        "3",
        "--check-determinism",
    ]);
    let out = stdout(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("availability"), "{out}");
    assert!(out.contains("slo availability"), "{out}");
    let hash = out
        .lines()
        .find_map(|l| l.strip_prefix("trace-hash: "))
        .expect("a trace-hash line");
    assert_eq!(hash.len(), 64);
}

#[test]
fn planted_bugs_exit_with_their_failure_class() {
    // Goal: exit 1 for a safety violation, 3 for liveness (DESIGN's exit codes).
    let o = sovereign(&[
        "sim",
        "run",
        "scenarios/baseline.toml",
        "--seed",
        "0",
        "--plant",
        "ledger-rounding",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("conservation"));
    let o = sovereign(&[
        "sim",
        "run",
        "scenarios/fibre-cut.toml",
        "--seed",
        "0",
        "--plant",
        "no-failback",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert!(stdout(&o).contains("convergence"));
}

#[test]
fn a_storm_failure_replays_exactly_and_shrinks_to_fewer_faults() {
    // Goal: sweep -> failure file -> replay (same violation, same hash) -> shrink (fewer
    // faults, same oracle), the loop a developer runs on a CI failure.
    let dir = scratch("storm");
    let out_dir = dir.to_string_lossy().into_owned();
    let o = sovereign(&[
        "sim",
        "sweep",
        "scenarios/storm.toml",
        "--seeds",
        "1",
        "--jobs",
        "1",
        "--plant",
        "skip-verify",
        "--out",
        &out_dir,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let failure = std::fs::read_dir(&dir)
        .expect("out dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(".failure.toml"))
        .expect("a failure file");
    let f = failure.to_string_lossy().into_owned();
    assert!(
        stdout(&o).contains(&format!("sovereign sim replay {f}")),
        "{}",
        stdout(&o)
    );

    let o = sovereign(&["sim", "replay", &f]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("reproduced"), "{}", stdout(&o));
    // The trace around the violation, one tower's lines only, the violation marked.
    let o = sovereign(&[
        "sim", "replay", &f, "--trace", "--tower", "tower-1", "--lines", "8",
    ]);
    let text = stdout(&o);
    let shown: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("    ") && l.as_bytes().get(4).is_some_and(u8::is_ascii_digit))
        .collect();
    assert_eq!(shown.len(), 8, "{text}");
    assert!(shown.iter().all(|l| l.contains("tower-1")), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(">>> ") && l.contains("VIOLATION integrity")),
        "{text}"
    );

    let shrunk = dir.join("storm.shrunk.toml");
    let s = shrunk.to_string_lossy().into_owned();
    let o = sovereign(&["sim", "shrink", &f, "--out", &s, "--budget-runs", "16"]);
    let text = stdout(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (before, after) = text
        .lines()
        .find_map(|l| l.strip_prefix("faults: "))
        .and_then(|l| l.split_once(" -> "))
        .map(|(a, b)| {
            (
                a.trim().parse::<usize>().unwrap(),
                b.trim().parse::<usize>().unwrap(),
            )
        })
        .expect("a `faults: N -> M` line");
    assert!(after < before, "shrink kept {after} of {before} faults");
    let text = std::fs::read_to_string(&shrunk).unwrap();
    assert!(
        text.contains(&format!(
            "description = \"Shrunk from {f} (seed 0, plant skip-verify): integrity still fails with {after} of {before} faults"
        )),
        "{text}"
    );
    // The shrunk scenario still fails the same oracle.
    let o = sovereign(&["sim", "run", &s, "--seed", "0", "--plant", "skip-verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("integrity"), "{}", stdout(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `sovereign` with environment variables set (a cluster engine's), and none of the
/// engines' inherited.
fn sovereign_under(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sovereign"));
    cmd.current_dir(repo()).args(args);
    for var in sovereign_sim::sweep::ENGINE_VARS {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied())
        .output()
        .expect("the binary runs")
}

/// The cases of a JUnit file as (suite, case, failure message) lines, without the wall
/// times and the failure files' folders (which differ between machines).
fn junit_cases(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("junit");
    let mut cases = Vec::new();
    let mut suite = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("<testsuite name=\"") {
            suite = rest.split('"').next().unwrap_or_default().to_string();
        } else if let Some(rest) = line.strip_prefix("<testcase name=\"") {
            cases.push(format!(
                "{suite} {}",
                rest.split('"').next().unwrap_or_default()
            ));
        } else if let Some(rest) = line.strip_prefix("<failure message=\"") {
            let message = rest.split('"').next().unwrap_or_default();
            if let Some(last) = cases.last_mut() {
                last.push_str(&format!(" FAIL {message}"));
            }
        }
    }
    cases
}

#[test]
fn shards_from_cluster_engines_merge_into_the_single_machine_sweep() {
    // Goal: a sweep split three ways — one shard by --shard, one as a Slurm array task,
    // one as a Kubernetes indexed task — merges into what one machine's sweep of the
    // same seeds reports: the same cases and failures, the same counts and exit code;
    // a merge without a shard names it and exits 2.
    let dir = scratch("shards");
    let d = |p: &str| dir.join(p).to_string_lossy().into_owned();
    let sweep = [
        "sim",
        "sweep",
        "scenarios/fibre-cut.toml",
        "scenarios/storm.toml",
        "--seeds",
        "8",
        "--jobs",
        "2",
        "--plant",
        "ack-before-fsync",
    ];
    let args = |extra: &[String]| -> Vec<String> {
        sweep
            .iter()
            .map(|s| s.to_string())
            .chain(extra.iter().cloned())
            .collect()
    };
    let run = |env: &[(&str, &str)], extra: &[String]| {
        let a = args(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        sovereign_under(env, &a)
    };
    let whole = run(
        &[],
        &["--junit".into(), d("whole.xml"), "--out".into(), d("whole")],
    );
    assert_eq!(whole.status.code(), Some(1), "{}", stdout(&whole));

    let records = d("records");
    let shard = |env: &[(&str, &str)], extra: &[&str], source: &str| {
        let mut e: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        e.extend(["--records".into(), records.clone(), "--out".into(), d("f")]);
        let o = run(env, &e);
        assert!(
            stdout(&o).contains(source),
            "{}\n{}",
            stdout(&o),
            String::from_utf8_lossy(&o.stderr)
        );
    };
    shard(&[], &["--shard", "0/3"], "(shard 0/3 from --shard: 6 runs)");
    shard(
        &[("JOB_COMPLETION_INDEX", "2")],
        &["--shards", "3"],
        "(shard 2/3 from JOB_COMPLETION_INDEX: 4 runs)",
    );

    let partial = sovereign(&["sim", "merge", &records]);
    assert_eq!(partial.status.code(), Some(2), "{}", stdout(&partial));
    assert!(
        stdout(&partial).contains("MISSING shards 1 of 3: seeds 1, 4, 7 were not run"),
        "{}",
        stdout(&partial)
    );

    shard(
        &[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ],
        &[],
        "(shard 1/3 from SLURM_ARRAY_TASK_ID: 6 runs)",
    );
    let merged = sovereign(&["sim", "merge", &records, "--junit", &d("merged.xml")]);
    let text = stdout(&merged);
    assert_eq!(merged.status.code(), whole.status.code(), "{text}");
    let summary = |t: &str| {
        t.lines()
            .find_map(|l| l.strip_prefix("summary: "))
            .and_then(|l| l.split(';').next())
            .map(str::to_string)
    };
    assert_eq!(summary(&text), summary(&stdout(&whole)), "{text}");
    assert!(text.contains("3 of 3 shards"), "{text}");
    // Rare-moment coverage: the merge of the shards counts what the whole sweep counted.
    let coverage = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("coverage: reached "))
            .map(str::to_string)
    };
    assert!(coverage(&text).is_some(), "{text}");
    assert_eq!(coverage(&text), coverage(&stdout(&whole)), "{text}");
    let cases = junit_cases(&dir.join("merged.xml"));
    assert_eq!(cases.len(), 16);
    assert!(
        cases.iter().any(|c| c.contains(" FAIL durability")),
        "{cases:?}"
    );
    assert_eq!(cases, junit_cases(&dir.join("whole.xml")));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_hunt_reports_runs_to_the_first_catch_and_its_seeds_replay() {
    // Goal: `sim hunt` counts runs until a plant's oracle first fails (and the clean build
    // passes that seed), writes every hunt as JSON, and the catching seed reproduces with
    // `sim run`; a plant never caught within the budget is a miss and exits 1.
    let dir = scratch("hunt");
    let json = dir.join("hunt.json");
    let o = sovereign(&[
        "sim",
        "hunt",
        "scenarios/storm.toml",
        "--plant",
        "skip-verify",
        "--hunts",
        "2",
        "--budget",
        "4",
        "--jobs",
        "2",
        "--json",
        json.to_str().unwrap(),
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("skip-verify"), "{out}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("hunt.json")).unwrap();
    let plant = &doc["plants"][0];
    assert_eq!(plant["plant"], "skip-verify");
    assert_eq!(plant["hunts"], 2);
    let caught = plant["caught"].as_u64().unwrap();
    assert!(caught >= 1, "{doc}");
    let first = plant["hunts_detail"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["runs"].is_u64())
        .expect("a catch");
    let runs = first["runs"].as_u64().unwrap();
    assert!((1..=4).contains(&runs), "{first}");
    let seed = first["seed"].as_u64().unwrap().to_string();
    let scenario = first["scenario"].as_str().unwrap();
    let planted = sovereign(&[
        "sim",
        "run",
        scenario,
        "--seed",
        &seed,
        "--plant",
        "skip-verify",
    ]);
    assert_eq!(planted.status.code(), Some(1), "{}", stdout(&planted));
    assert!(stdout(&planted).contains("integrity"));
    let clean = sovereign(&["sim", "run", scenario, "--seed", &seed]);
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));

    // A calm day never loses a reply, so the bounded dedupe window is never reached.
    let o = sovereign(&[
        "sim",
        "hunt",
        "scenarios/baseline.toml",
        "--plant",
        "bounded-dedupe",
        "--hunts",
        "1",
        "--budget",
        "1",
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("plants never caught within 1 runs: bounded-dedupe"),
        "{out}"
    );
    let o = sovereign(&["sim", "hunt", "scenarios/baseline.toml", "--budget", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--budget 0"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_swarm_sweeps_failure_replays_from_its_file_and_reruns_with_sim_run_swarm() {
    // Goal: `--swarm` runs each seed's variant of the scenario; a failure file holds that
    // variant, so `sim replay` reproduces it exactly, and `sim run --swarm` with the same
    // seed is the same run (same trace hash).
    let dir = scratch("swarm");
    let out_dir = dir.join("failures");
    let o = sovereign(&[
        "sim",
        "sweep",
        "scenarios/storm.toml",
        "--seeds",
        "6",
        "--swarm",
        "--plant",
        "skip-verify",
        "--jobs",
        "2",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let text = stdout(&o);
    assert!(text.contains("as swarm variants"), "{text}");
    let failed: Vec<PathBuf> = std::fs::read_dir(&out_dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    let file = failed
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".failure.toml"))
        .unwrap_or_else(|| panic!("no failure in 6 swarm seeds: {text}"));
    let body = std::fs::read_to_string(file).unwrap();
    assert!(body.contains("swarm of seed"), "{body}");
    let o = sovereign(&["sim", "replay", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("reproduced"), "{}", stdout(&o));
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    let seed = name
        .strip_prefix("storm-seed")
        .and_then(|n| n.strip_suffix(".failure.toml"))
        .unwrap_or_else(|| panic!("file name {name}"))
        .to_string();
    let run = sovereign(&[
        "sim",
        "run",
        "scenarios/storm.toml",
        "--seed",
        &seed,
        "--plant",
        "skip-verify",
        "--swarm",
    ]);
    let run_text = stdout(&run);
    assert_eq!(run.status.code(), Some(1), "{run_text}");
    assert!(run_text.contains("variant: swarm of seed"), "{run_text}");
    let replay = sovereign(&["sim", "replay", file.to_str().unwrap()]);
    assert_eq!(trace_hash(&run), trace_hash(&replay));
    // Without --swarm the same seed is another run.
    let plain = sovereign(&[
        "sim",
        "run",
        "scenarios/storm.toml",
        "--seed",
        &seed,
        "--plant",
        "skip-verify",
    ]);
    assert_ne!(trace_hash(&run), trace_hash(&plain));
}

#[test]
fn buggify_switches_the_fault_sites_on_and_its_rerun_names_the_flag() {
    // Goal: `sim run --buggify` says the sites are on and is another run than without;
    // a failing one's rerun line carries --buggify, so it reruns the same way.
    let on = sovereign(&[
        "sim",
        "run",
        "scenarios/storm.toml",
        "--seed",
        "3",
        "--buggify",
    ]);
    assert!(stdout(&on).contains("buggify: on"), "{}", stdout(&on));
    let off = sovereign(&["sim", "run", "scenarios/storm.toml", "--seed", "3"]);
    assert!(!stdout(&off).contains("buggify"), "{}", stdout(&off));
    assert_ne!(trace_hash(&on), trace_hash(&off));
    let planted = sovereign(&[
        "sim",
        "run",
        "scenarios/storm.toml",
        "--seed",
        "3",
        "--buggify",
        "--plant",
        "skip-verify",
    ]);
    let text = stdout(&planted);
    assert_eq!(planted.status.code(), Some(1), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("rerun: ") && l.contains("--buggify")),
        "{text}"
    );
}

#[test]
fn a_branched_failure_replays_from_its_file_and_a_branch_past_the_end_changes_nothing() {
    // Goal: `--branch-at/--branch-seed` is another run than the seed's (and says so); its
    // failure file records the branch point, and replaying the file reproduces it, same
    // trace hash; a branch after the run's end is the seed's run exactly.
    let dir = scratch("branch");
    let base = [
        "sim",
        "run",
        "scenarios/storm.toml",
        "--seed",
        "3",
        "--plant",
        "skip-verify",
    ];
    let plain = sovereign(&base);
    let mut args = base.to_vec();
    args.extend([
        "--branch-at",
        "30m",
        "--branch-seed",
        "9",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let branched = sovereign(&args);
    let text = stdout(&branched);
    assert!(
        text.contains("branch: at 00:30:00.000, fresh randomness from seed 9 on"),
        "{text}"
    );
    assert_ne!(trace_hash(&branched), trace_hash(&plain));
    let file = dir.join("storm-seed3-branch9.failure.toml");
    let body = std::fs::read_to_string(&file).expect("a failure file named for the branch");
    assert!(
        body.contains("[[branch]]\nat_us = 1800000000  # 00:30:00.000\nseed = "),
        "{body}"
    );
    let replay = sovereign(&["sim", "replay", file.to_str().unwrap()]);
    assert!(
        stdout(&replay).contains("reproduced:"),
        "{}",
        stdout(&replay)
    );
    assert_eq!(trace_hash(&replay), trace_hash(&branched));
    let mut late = base.to_vec();
    late.extend(["--branch-at", "1000h", "--branch-seed", "9"]);
    assert_eq!(trace_hash(&sovereign(&late)), trace_hash(&plain));
    // Shrinking keeps the branch: the shrunk scenario's command carries it, and fails.
    let shrink = sovereign(&["sim", "shrink", file.to_str().unwrap()]);
    let text = stdout(&shrink);
    let run_it = text
        .lines()
        .find_map(|l| l.strip_prefix("run it: sovereign "))
        .unwrap_or_else(|| panic!("no run-it line: {text}"));
    assert!(
        run_it.ends_with("--plant skip-verify --branch-at 1800000000us --branch-seed 9"),
        "{run_it}"
    );
    let args: Vec<&str> = run_it.split_whitespace().collect();
    let again = sovereign(&args);
    assert_eq!(again.status.code(), Some(1), "{}", stdout(&again));
    assert!(stdout(&again).contains("branch: at 00:30:00.000"));
}

#[test]
fn likelihood_branches_a_failure_and_writes_its_table_chart_and_data() {
    // Goal: `replay --likelihood` replays the file, runs points × branches, prints one row
    // per point (the last, at the failure itself, failing every time), says when the run
    // was doomed, and writes likelihood.html (the chart under the fault timeline), .svg
    // and .json with the same counts.
    let dir = scratch("likelihood");
    let out = sovereign(&[
        "sim",
        "run",
        "scenarios/storm.toml",
        "--seed",
        "3",
        "--plant",
        "skip-verify",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let file = dir.join("storm-seed3.failure.toml");
    let report = dir.join("lk");
    let l = sovereign(&[
        "sim",
        "replay",
        file.to_str().unwrap(),
        "--likelihood",
        "--points",
        "3",
        "--branches",
        "4",
        "--jobs",
        "2",
        "--report",
        report.to_str().unwrap(),
    ]);
    let text = stdout(&l);
    assert_eq!(l.status.code(), Some(0), "{text}");
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("  ") && l.contains('/') && l.contains('–'))
        .collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(rows[0].trim_start().starts_with("00:00:00.000"), "{text}");
    assert!(rows[2].contains("4/4"), "{text}");
    assert!(text.contains("doomed from: "), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("likelihood.json")).unwrap())
            .unwrap();
    let points = json["points"].as_array().unwrap();
    assert_eq!(points.len(), 3);
    let recurred: u64 = points.iter().map(|p| p["recurred"].as_u64().unwrap()).sum();
    let shown: u64 = rows
        .iter()
        .map(|r| {
            r.split_whitespace()
                .nth(1)
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(recurred, shown, "{text}");
    let html = std::fs::read_to_string(report.join("likelihood.html")).unwrap();
    assert!(
        html.contains("<svg") && html.contains("P(the failure recurs)"),
        "{html}"
    );
    assert!(
        html.contains("Faults: "),
        "the fault timeline is drawn above the chart"
    );
    let svg = std::fs::read_to_string(report.join("likelihood.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    // Bad input: --points needs --likelihood, and --likelihood does not mix with --trace.
    let bad = sovereign(&["sim", "replay", file.to_str().unwrap(), "--points", "3"]);
    assert_eq!(bad.status.code(), Some(2));
    let bad = sovereign(&[
        "sim",
        "replay",
        file.to_str().unwrap(),
        "--likelihood",
        "--trace",
    ]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn a_guided_hunt_spends_runs_on_branches_and_says_so() {
    // Goal: `sim hunt --guided` names itself, and on a scenario where every run reaches a
    // rare moment (disk-faults: the origin loses unsynced writes) its hunts spend part of
    // the budget on branches, which the JSON counts; unguided, none.
    let dir = scratch("guided");
    let hunt = |guided: bool| {
        let json = dir.join(format!("hunt-{guided}.json"));
        let mut args = vec![
            "sim",
            "hunt",
            "scenarios/disk-faults.toml",
            "--plant",
            "no-failback",
            "--hunts",
            "1",
            "--budget",
            "10",
            "--buggify",
            "--json",
            json.to_str().unwrap(),
        ];
        if guided {
            args.push("--guided");
        }
        let o = sovereign(&args);
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).expect("hunt json")).unwrap();
        (stdout(&o), doc)
    };
    let (out, doc) = hunt(true);
    assert!(out.contains("buggify, guided runs"), "{out}");
    assert_eq!(doc["guided"], true);
    let h = &doc["plants"][0]["hunts_detail"][0];
    assert!(h["branch_runs"].as_u64().unwrap() >= 4, "{doc}");
    let (out, doc) = hunt(false);
    assert!(!out.contains(", guided runs"), "{out}");
    assert_eq!(doc["plants"][0]["hunts_detail"][0]["branch_runs"], 0);
    let _ = std::fs::remove_dir_all(&dir);
}
