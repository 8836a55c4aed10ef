//! The `sovereign` binary's contract at its edges: version, help, and exit code 2 with a
//! clear message for bad input or usage. (End-to-end runs on real scenarios come with the
//! world and the scenario parser.)

use std::path::Path;
use std::process::{Command, Output};

fn sovereign(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sovereign"));
    for var in sovereign_sim::sweep::ENGINE_VARS {
        cmd.env_remove(var);
    }
    cmd.args(args).output().expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The OpenMetrics file the binary wrote at `path`, after the strict checker passed it.
fn checked_openmetrics(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    if let Err(errs) = sovereign_promcheck::openmetrics::check(&text) {
        panic!("{}: {errs:#?}", path.display());
    }
    text
}

/// The value of the last sample of `family` (any labels) in OpenMetrics `text`.
fn last_sample(text: &str, family: &str) -> Option<f64> {
    text.lines()
        .rev()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .find_map(|l| {
            let mut w = l.rsplit(' ');
            w.next()?;
            w.next()?.parse().ok()
        })
}

/// One truth on every screen: the KPIs a run's report folder (`dir`) and its OpenMetrics
/// export (`om`) show agree — run.json's KPI lines are report.md's KPI table row for row
/// (and, when given, what the CLI printed), and summary.json's figures are the export's
/// last samples. Returns how many figures were compared.
fn assert_one_truth(dir: &Path, om: &str, printed: Option<&str>) -> usize {
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let mut compared = 0;
    for line in run["kpi_lines"].as_array().unwrap() {
        let line = line.as_str().unwrap();
        let (name, value) = line.split_once("  ").unwrap();
        let (name, value) = (name.trim(), value.trim());
        let row = format!("| {name} | {} |", value.replace('|', "\\|"));
        assert!(md.contains(&row), "report.md lacks `{row}`");
        if let Some(out) = printed {
            assert!(out.contains(line), "the CLI did not print `{line}`");
        }
        compared += 1;
    }
    let k = &summary["kpis"];
    assert_eq!(k, &run["kpis"], "summary.json and run.json disagree");
    for (field, family) in [
        ("availability", "sovereign_availability_ratio"),
        ("mttd_s", "sovereign_mttd_seconds"),
        ("mttr_s", "sovereign_mttr_seconds"),
        ("rpo", "sovereign_rpo_operations"),
        (
            "error_budget_remaining",
            "sovereign_error_budget_remaining_ratio",
        ),
        ("resilience_score", "sovereign_resilience_score"),
        ("rto_compliance", "sovereign_rto_compliance_ratio"),
    ] {
        let exported = last_sample(om, family);
        match k[field].as_f64() {
            Some(v) => {
                let e = exported.unwrap_or_else(|| panic!("{family} not exported, {field} = {v}"));
                assert!(
                    (e - v).abs() <= 1e-9 * v.abs().max(1.0),
                    "{field} {v} but {family} {e}"
                );
                compared += 1;
            }
            None => assert!(exported.is_none(), "{family} exported without a {field}"),
        }
    }
    compared
}

#[test]
fn version_names_the_crate_version() {
    // Goal: `--version` prints the package version and exits 0.
    let o = sovereign(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("sovereign "), "{out}");
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
}

#[test]
fn help_lists_sim_and_its_commands() {
    // Goal: `--help` lists `sim`; `sim --help` lists run, sweep, replay and shrink.
    let o = sovereign(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("sim"));
    let o = sovereign(&["sim", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    for cmd in ["run", "sweep", "replay", "shrink"] {
        assert!(out.contains(cmd), "{cmd} missing from:\n{out}");
    }
}

#[test]
fn run_on_a_missing_file_is_exit_2_naming_the_path() {
    // Goal: bad input is exit 2 with the offending path on stderr.
    let path = "no/such/dir/missing-scenario.toml";
    let o = sovereign(&["sim", "run", path]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains(path), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn unknown_plant_is_a_usage_error() {
    // Goal: `--plant bogus` is rejected by the argument parser with exit 2.
    let o = sovereign(&["sim", "run", "x.toml", "--plant", "bogus"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bogus"));
}

#[test]
fn shard_index_must_be_below_count() {
    // Goal: `--shard 3/2` is a usage error (exit 2).
    let o = sovereign(&["sim", "sweep", "x.toml", "--seeds", "4", "--shard", "3/2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("3/2"));
}

#[test]
fn sweep_and_replay_on_missing_files_are_exit_2() {
    // Goal: every command reports unreadable inputs as exit 2 naming the file.
    let o = sovereign(&["sim", "sweep", "missing-a.toml", "--seeds", "2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing-a.toml"));
    let o = sovereign(&["sim", "replay", "missing-b.failure.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing-b.failure.toml"));
    let o = sovereign(&["sim", "shrink", "missing-c.failure.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing-c.failure.toml"));
    let o = sovereign(&["sim", "sweep", "x.toml", "--seeds", "0"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn run_writes_a_report_and_exports_that_report_rebuilds() {
    // Goal: `sim run --report DIR --openmetrics F --annotations F` writes the report
    // files and exports (the OpenMetrics file passes the strict checker); `sovereign
    // report DIR` renders the same report again.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-report");
    let _ = std::fs::remove_dir_all(&dir);
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/fibre-cut.toml"
    );
    // Into a folder named `reports`: its history records the run.
    let report = dir.join("reports/run");
    let om = dir.join("run.om");
    let ann = dir.join("ann.json");
    let o = sovereign(&[
        "sim",
        "run",
        scenario,
        "--report",
        report.to_str().unwrap(),
        "--openmetrics",
        om.to_str().unwrap(),
        "--annotations",
        ann.to_str().unwrap(),
        "--start",
        "2026-03-01T00:00:00Z",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("report: ") && out.contains("openmetrics: "),
        "{out}"
    );
    for f in ["run.json", "report.md", "report.html", "summary.json"] {
        assert!(report.join(f).is_file(), "{f} missing");
    }
    let text = checked_openmetrics(&om);
    assert!(text.ends_with("# EOF\n"));
    // 2026-03-01T00:00:00Z is 1772323200.
    assert!(
        text.contains(" 1772323200\n"),
        "virtual time 0 not at --start"
    );
    assert!(
        std::fs::read_to_string(&ann)
            .unwrap()
            .contains("\"timeEnd\"")
    );
    // One truth: the printed KPI lines, report.md, summary.json and the export agree.
    assert!(assert_one_truth(&report, &text, Some(&out)) > 20);
    // The run joined the reports folder's history, and its index links the report.
    let reports = dir.join("reports");
    let history = std::fs::read_to_string(reports.join("history.jsonl")).unwrap();
    assert_eq!(history.lines().count(), 1, "{history}");
    assert!(history.contains("\"dir\":\"run\"") && history.contains("\"scenario\":\"fibre-cut\""));
    let index = std::fs::read_to_string(reports.join("index.html")).unwrap();
    assert!(index.contains("<a href=\"run/report.html\">"), "{index}");
    let o = sovereign(&["runs", reports.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let listed = String::from_utf8_lossy(&o.stdout);
    let score = serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(report.join("summary.json")).unwrap(),
    )
    .unwrap()["kpis"]["resilience_score"]
        .as_f64()
        .unwrap();
    assert!(
        listed.contains("fibre-cut") && listed.contains(&format!("{score:.1}")),
        "{listed}"
    );
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    std::fs::remove_file(report.join("report.md")).unwrap();
    let o = sovereign(&["report", report.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(report.join("report.md")).unwrap(),
        md
    );
}

#[test]
fn a_storm_run_shows_the_same_kpis_on_every_screen() {
    // Goal: one truth for the issue's own example, storm seed 1 (44-odd faults of every
    // family): the KPI lines `sim run` prints are report.md's table, and summary.json's
    // figures are the OpenMetrics export's last samples (the dashboards read those).
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-storm");
    let _ = std::fs::remove_dir_all(&dir);
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/storm.toml");
    let report = dir.join("storm");
    let om = dir.join("storm.om");
    let o = sovereign(&[
        "sim",
        "run",
        scenario,
        "--seed",
        "1",
        "--report",
        report.to_str().unwrap(),
        "--openmetrics",
        om.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let compared = assert_one_truth(&report, &checked_openmetrics(&om), Some(&out));
    assert!(compared > 20, "only {compared} figures compared");
    // Written outside a reports folder: no history, no index beside it.
    assert!(!dir.join("history.jsonl").exists() && !dir.join("index.html").exists());
}

#[test]
fn gameday_writes_reports_with_charts_and_exports_its_timeline() {
    // Goal: a headless game day writes lessons-learned.md, the replay file and the
    // reports every run gets (report.html with charts, report.md, summary.json,
    // run.json); its OpenMetrics export passes the strict checker, is stamped at --start,
    // and its annotations hold the fault windows and the timeline; `sovereign report`
    // rebuilds the report.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-gameday");
    let _ = std::fs::remove_dir_all(&dir);
    let plan = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../gamedays/network-fibre-cut.toml"
    );
    let om = dir.join("gd.om");
    let ann = dir.join("ann.json");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_sovereign"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .args(["gameday", plan, "--headless", "--operator", "ci", "--out"])
        .arg(&dir)
        .arg("--openmetrics")
        .arg(&om)
        .arg("--annotations")
        .arg(&ann)
        .args(["--start", "2026-03-01T00:00:00Z"])
        .output()
        .expect("sovereign runs");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("hypothesis: confirmed"), "{out}");
    assert!(
        out.contains("report: ") && out.contains("report.html"),
        "{out}"
    );
    for f in [
        "lessons-learned.md",
        "network-fibre-cut-seed7.replay.toml",
        "run.json",
        "report.md",
        "report.html",
        "summary.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing; {out}");
    }
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("class=\"marker\""));
    let text = checked_openmetrics(&om);
    assert!(text.ends_with("# EOF\n") && text.contains(" 1772323200\n"));
    assert!(assert_one_truth(&dir, &text, None) > 20);
    let ann: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ann).unwrap()).unwrap();
    let tagged = |tag: &str| {
        ann.as_array()
            .unwrap()
            .iter()
            .filter(|a| a["tags"].as_array().unwrap().iter().any(|t| t == tag))
            .count()
    };
    assert_eq!(tagged("fault"), 2, "the plan's two injections");
    assert!(tagged("gameday") >= 4, "{ann}");
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    std::fs::remove_file(dir.join("report.md")).unwrap();
    let o = sovereign(&["report", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(dir.join("report.md")).unwrap(), md);
}

#[test]
fn report_on_a_directory_without_data_is_exit_2() {
    // Goal: `sovereign report` on an empty directory says what is missing, exit 2.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-report-empty");
    std::fs::create_dir_all(&dir).unwrap();
    let o = sovereign(&["report", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("run.json"), "{}", stderr(&o));
}

#[test]
fn bad_start_is_a_usage_error() {
    // Goal: a malformed --start is rejected before any run, exit 2.
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/fibre-cut.toml"
    );
    let o = sovereign(&[
        "sim",
        "run",
        scenario,
        "--openmetrics",
        "/dev/null",
        "--start",
        "yesterday",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--start"), "{}", stderr(&o));
}

#[test]
fn sweep_with_a_plant_reports_its_catch_rate() {
    // Goal: a planted-bug sweep writes sweep.json with the catch rate, a report listing
    // each failure with its replay command, an OpenMetrics export of the totals that
    // passes the strict checker, and JUnit with each case's time; off a terminal it says
    // how far it got on stderr (a CI log is not silent for minutes).
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-sweep-report");
    let _ = std::fs::remove_dir_all(&dir);
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/fibre-cut.toml"
    );
    let report = dir.join("sweep");
    let om = dir.join("sweep.om");
    let junit = dir.join("junit.xml");
    let o = sovereign(&[
        "sim",
        "sweep",
        scenario,
        "--seeds",
        "2",
        "--jobs",
        "1",
        "--plant",
        "skip-verify",
        "--out",
        dir.join("failures").to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--openmetrics",
        om.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert!(
        matches!(o.status.code(), Some(0 | 1 | 3 | 4)),
        "{}",
        stderr(&o)
    );
    let err = stderr(&o);
    assert!(
        err.contains("sweep: 1/2 runs, ")
            && err.contains("sweep: 2/2 runs, ")
            && err.contains("done"),
        "{err}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 2, "{xml}");
    assert_eq!(
        xml.matches(" time=\"").count(),
        4,
        "two cases, their suite, the whole: {xml}"
    );

    let data = std::fs::read_to_string(report.join("sweep.json")).unwrap();
    assert!(data.contains("\"plant_catch_ratio\""), "{data}");
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    if data.contains("\"failures\": 0") {
        assert!(md.contains("None."), "{md}");
    } else {
        assert!(md.contains("replay: `sovereign sim replay"), "{md}");
    }
    let text = checked_openmetrics(&om);
    assert!(
        text.contains("sovereign_sweep_plant_catch_ratio{plant=\"skip-verify\"}"),
        "{text}"
    );
}

#[test]
fn validate_checks_every_shipped_scenario_and_plan_and_names_a_bad_line() {
    // Goal: `sim validate` and `gameday validate` accept every shipped file (exit 0, a
    // summary each) and reject a bad one with exit 2 and its file:line, without running.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let toml_in = |dir: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(Path::new(root).join(dir))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let run = |args: Vec<String>| {
        Command::new(env!("CARGO_BIN_EXE_sovereign"))
            .current_dir(root)
            .args(args)
            .output()
            .unwrap()
    };
    let scenarios = toml_in("scenarios");
    let o = run([vec!["sim".into(), "validate".into()], scenarios.clone()].concat());
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert_eq!(out.matches(": ok\n").count(), scenarios.len(), "{out}");
    assert!(
        out.contains("invariants (") && out.contains("SLOs: "),
        "{out}"
    );
    let plans = toml_in("gamedays");
    let o = run([vec!["gameday".into(), "validate".into()], plans.clone()].concat());
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert_eq!(out.matches(": ok\n").count(), plans.len(), "{out}");
    assert!(out.contains("blast radius: "), "{out}");

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-validate");
    let _ = std::fs::create_dir_all(&dir);
    let bad = dir.join("bad.toml");
    let text = std::fs::read_to_string(Path::new(root).join("scenarios/baseline.toml"))
        .unwrap()
        .replacen("duration = ", "durration = ", 1);
    std::fs::write(&bad, text).unwrap();
    let bad = bad.to_string_lossy().into_owned();
    let o = run(vec![
        "sim".into(),
        "validate".into(),
        scenarios[0].clone(),
        bad.clone(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains(&format!("{bad}: invalid")) && out.contains("1 of 2 valid"),
        "{out}"
    );
    assert!(
        stderr(&o).contains(&format!("{bad}:")) && stderr(&o).contains("durration"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_game_day_without_a_terminal_suggests_headless() {
    // Goal: with no terminal the console cannot start; the error says what to do instead
    // of "No such device or address".
    let plan = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../gamedays/network-fibre-cut.toml"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_sovereign"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .args(["gameday", plan])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--headless"), "{}", stderr(&o));
}
