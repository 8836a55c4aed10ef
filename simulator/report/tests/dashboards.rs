//! The Grafana dashboards and the Prometheus config in `dashboards/`: every metric a
//! dashboard queries is one a real sim export emits; every panel has a datasource, a
//! unique id and a valid gridPos; uids are stable; `promtool check config` passes on
//! `prometheus.yml` (when promtool is installed).

use serde_json::Value;
use sovereign_promcheck::openmetrics::check;
use sovereign_promcheck::promql::{metric_names, selectors};
use sovereign_report::openmetrics::{DEFAULT_START, run_openmetrics, sweep_openmetrics};
use sovereign_report::sweep::{SWEEP_DATA_FORMAT, SweepData};
use sovereign_report::{RunData, record};
use sovereign_sim::scenario::parse_file;
use sovereign_sim::{Plant, RunOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn dashboards() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dashboards")
}

/// Every dashboard JSON, by file name.
fn load() -> BTreeMap<String, Value> {
    sovereign_promcheck::dashboards::load(&dashboards().join("grafana"))
}

/// The sample names of a real run's export plus a planted-bug sweep's export.
fn exported_names() -> BTreeSet<String> {
    let sc = parse_file(&dashboards().join("../scenarios/fibre-cut.toml")).expect("scenario");
    let opts = RunOptions {
        seed: 1,
        ..RunOptions::default()
    };
    let (report, series) = record(&sc, &opts);
    let d = RunData::build(
        &sc,
        &report,
        series,
        "fibre-cut.toml",
        "test",
        String::new(),
        None,
    );
    let mut names = check(&run_openmetrics(&d, DEFAULT_START))
        .expect("run export")
        .sample_names;
    let plant = Plant::SkipVerify;
    let sweep = SweepData {
        format: SWEEP_DATA_FORMAT,
        scenarios: vec![sc.name.clone()],
        from: 0,
        seeds: 1,
        shard: "0/1".into(),
        plant: Some(plant.name().into()),
        plant_oracle: Some(plant.oracle().name().into()),
        build: "test".into(),
        runs: 1,
        failures: 1,
        failures_by_oracle: [("integrity".to_string(), 1)].into(),
        plant_catch_ratio: Some(1.0),
        wall_s: 0.0,
        exit_code: 1,
        failure_list: Vec::new(),
        sometimes: Vec::new(),
    };
    names.extend(
        check(&sweep_openmetrics(&sweep, DEFAULT_START))
            .expect("sweep export")
            .sample_names,
    );
    names
}

/// (dashboard, where, PromQL) for every query: panel targets, annotation queries, and
/// the metric of `label_values(metric, label)` variables.
fn queries(dash: &BTreeMap<String, Value>) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (name, d) in dash {
        for p in d["panels"].as_array().expect("panels") {
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name}: a target without expr"));
                out.push((name.clone(), format!("panel {}", p["id"]), expr.to_string()));
            }
        }
        for a in d["annotations"]["list"].as_array().expect("annotations") {
            if let Some(expr) = a["expr"].as_str() {
                out.push((
                    name.clone(),
                    format!("annotation {}", a["name"]),
                    expr.to_string(),
                ));
            }
        }
        for v in d["templating"]["list"].as_array().expect("templating") {
            let q = v["query"]["query"]
                .as_str()
                .or(v["query"].as_str())
                .unwrap_or("");
            if let Some(rest) = q.strip_prefix("label_values(") {
                let metric = rest.split(',').next().unwrap_or("").trim();
                out.push((
                    name.clone(),
                    format!("variable {}", v["name"]),
                    metric.to_string(),
                ));
            }
        }
    }
    out
}

#[test]
fn every_queried_metric_is_exported() {
    // Goal: no dashboard query names a metric the sim export does not emit.
    let dash = load();
    assert_eq!(dash.len(), 3, "{:?}", dash.keys());
    let exported = exported_names();
    let mut missing = Vec::new();
    let mut queried = BTreeSet::new();
    for (d, at, expr) in queries(&dash) {
        let names = metric_names(&expr).unwrap_or_else(|e| panic!("{d} {at}: {e}: {expr}"));
        assert!(!names.is_empty(), "{d} {at}: no metric in {expr}");
        for n in names {
            assert!(
                n.starts_with("sovereign_"),
                "{d} {at}: {n} lacks the sovereign_ prefix"
            );
            if !exported.contains(&n) {
                missing.push(format!("{d} {at}: {n}"));
            }
            queried.insert(n);
        }
    }
    assert!(missing.is_empty(), "not exported:\n{}", missing.join("\n"));
    assert!(
        queried.len() >= 25,
        "only {} metrics queried",
        queried.len()
    );
}

#[test]
fn every_run_query_follows_the_run_variable() {
    // Goal: imported runs stay apart in one Prometheus: every dashboard offers `scenario`
    // and `run` variables (run listed per scenario, All matching live towers too), and
    // every selector of a run metric carries `run=~"$run"` (a sweep's metrics carry no
    // run label and are left alone). A query that forgot the matcher fails here.
    let dash = load();
    let mut forgot = Vec::new();
    let mut checked = 0;
    for (name, d) in &dash {
        let vars: Vec<&Value> = d["templating"]["list"]
            .as_array()
            .expect("templating")
            .iter()
            .collect();
        let var = |n: &str| {
            vars.iter()
                .find(|v| v["name"] == n)
                .unwrap_or_else(|| panic!("{name}: no `{n}` variable"))
        };
        let run = var("run");
        assert_eq!(
            run["query"]["query"],
            "label_values(sovereign_sim_run_info{scenario=~\"$scenario\"}, run)",
            "{name}"
        );
        for v in [var("scenario"), run] {
            assert_eq!(v["includeAll"], true, "{name}: {}", v["name"]);
            assert_eq!(v["allValue"], ".*", "{name}: {}", v["name"]);
        }
        let at_scenario = vars.iter().position(|v| v["name"] == "scenario");
        let at_run = vars.iter().position(|v| v["name"] == "run");
        assert!(at_scenario < at_run, "{name}: `run` depends on `scenario`");
    }
    for (d, at, expr) in queries(&dash) {
        if at.starts_with("variable") {
            continue;
        }
        for s in selectors(&expr).unwrap_or_else(|e| panic!("{d} {at}: {e}")) {
            let n = s.name.clone().unwrap_or_default();
            if n.starts_with("sovereign_sweep_") {
                assert!(
                    !s.matchers.iter().any(|m| m.starts_with("run")),
                    "{d} {at}: a sweep carries no run label: {expr}"
                );
                continue;
            }
            checked += 1;
            if !s.matchers.iter().any(|m| m == "run=~\"$run\"") {
                forgot.push(format!("{d} {at}: {n} in {expr}"));
            }
        }
    }
    assert!(checked > 60, "only {checked} selectors");
    assert!(forgot.is_empty(), "no run matcher:\n{}", forgot.join("\n"));
}

#[test]
fn panels_have_datasource_unique_id_and_valid_grid() {
    // Goal: Grafana loads every panel where intended: datasource set, ids unique per
    // dashboard, gridPos inside the 24-column grid and not overlapping.
    let mut uids = BTreeSet::new();
    for (name, d) in load() {
        let uid = d["uid"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no uid"));
        assert!(
            uid.starts_with("sovereign-") && uid.len() <= 40,
            "{name}: uid {uid}"
        );
        assert!(uids.insert(uid.to_string()), "uid {uid} twice");
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
        let mut ids = BTreeSet::new();
        let mut cells = BTreeSet::new();
        for p in d["panels"].as_array().expect("panels") {
            let id = p["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: panel without id"));
            assert!(ids.insert(id), "{name}: panel id {id} twice");
            let ds = &p["datasource"];
            assert_eq!(
                ds["uid"], "sovereign-prometheus",
                "{name} panel {id}: datasource"
            );
            assert_eq!(
                ds["type"], "prometheus",
                "{name} panel {id}: datasource type"
            );
            for t in p["targets"].as_array().expect("targets") {
                assert_eq!(
                    t["datasource"]["uid"], "sovereign-prometheus",
                    "{name} panel {id}"
                );
            }
            let g = &p["gridPos"];
            let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| {
                g[k].as_u64()
                    .unwrap_or_else(|| panic!("{name} panel {id}: gridPos.{k}"))
            });
            assert!(
                w >= 1 && h >= 1 && x + w <= 24,
                "{name} panel {id}: gridPos {g}"
            );
            for cx in x..x + w {
                for cy in y..y + h {
                    assert!(
                        cells.insert((cx, cy)),
                        "{name} panel {id} overlaps at ({cx},{cy})"
                    );
                }
            }
        }
    }
    let ds = std::fs::read_to_string(dashboards().join("provisioning/datasources/prometheus.yaml"))
        .expect("datasource provisioning");
    assert!(ds.contains("uid: sovereign-prometheus"));
    let prov = std::fs::read_to_string(dashboards().join("provisioning/dashboards/sovereign.yaml"))
        .expect("dashboard provisioning");
    assert!(prov.contains("/grafana"));
}

#[test]
fn gameday_dashboard_shades_fault_windows() {
    // Goal: the game-day dashboard has region annotations for faults (tags) and from
    // the faults-active metric.
    let d = &load()["gameday.json"];
    let list = d["annotations"]["list"].as_array().expect("annotations");
    assert!(list.iter().any(|a| {
        a["target"]["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|x| x == "fault"))
    }));
    assert!(list.iter().any(|a| {
        a["expr"]
            .as_str()
            .is_some_and(|e| e.contains("sovereign_faults_active"))
    }));
}

#[test]
fn promtool_accepts_the_prometheus_config() {
    // Goal: `promtool check config` passes on dashboards/prometheus.yml (skipped without
    // promtool).
    let ok = Command::new("sh")
        .args(["-c", "command -v promtool"])
        .output();
    if !ok.is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is not on PATH, and CI must run this test (apt-get install prometheus)"
        );
        eprintln!("SKIP: promtool not on PATH (Debian package `prometheus`)");
        return;
    }
    let out = Command::new("promtool")
        .args(["check", "config"])
        .arg(dashboards().join("prometheus.yml"))
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dashboards().join("prometheus.yml")).expect("read");
    assert!(text.contains("127.0.0.1:8080") && text.contains("127.0.0.1:8090"));
}
