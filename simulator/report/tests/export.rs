//! Exports of a real simulated run: the OpenMetrics text is well-formed (our checker,
//! and `promtool tsdb create-blocks-from openmetrics` when promtool is installed), the
//! annotations have Grafana's shape, the HTML report is self-contained with its charts
//! (and renders non-blank in headless Chromium when it is installed), and a report
//! rebuilds identically from its saved data.

use sovereign_promcheck::openmetrics::check;
use sovereign_report::annotations::run_annotations;
use sovereign_report::data::{GamedayData, TimelineRow, ToleranceRow};
use sovereign_report::openmetrics::{
    DEFAULT_START, Exposition, MetricType, RUN_METRICS, run_openmetrics,
};
use sovereign_report::render::{run_html, run_markdown, run_summary};
use sovereign_report::{RunData, rebuild, record, write_run};
use sovereign_sim::RunOptions;
use sovereign_sim::scenario::parse_file;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A run of the fibre-cut scenario (faults, failovers, satellite bytes), as data.
fn fibre_cut() -> RunData {
    let path = repo().join("scenarios/fibre-cut.toml");
    let sc = parse_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let opts = RunOptions {
        seed: sc.seed,
        ..RunOptions::default()
    };
    let (report, series) = record(&sc, &opts);
    let plain = sovereign_sim::run(&sc, &opts);
    assert_eq!(
        report.trace_hash, plain.trace_hash,
        "recording changed the run"
    );
    RunData::build(
        &sc,
        &report,
        series,
        "scenarios/fibre-cut.toml",
        "test",
        "sovereign sim run scenarios/fibre-cut.toml --seed 1".into(),
        None,
    )
}

/// `d` as a game day: an operator's fibre cut at 2h10m and a note, a tolerance missed.
fn with_gameday(mut d: RunData) -> RunData {
    d.gameday = Some(GamedayData {
        plan: "fibre-drill".into(),
        title: "Fibre drill <tower-0>".into(),
        plan_file: "gamedays/fibre-drill.toml".into(),
        quarter: "2026-Q4".into(),
        hypothesis: "LTE carries P0 within 5 minutes".into(),
        operator: "alice".into(),
        headless: false,
        confirmed: false,
        reasons: vec!["availability out of tolerance: 0.9 (tolerance >= 0.99)".into()],
        tolerances: vec![ToleranceRow {
            name: "availability".into(),
            tolerance: ">= 0.99".into(),
            measured: "0.9".into(),
            pass: false,
            bound: Some(0.99),
        }],
        timeline: vec![
            TimelineRow {
                at_s: 7800.0,
                who: "alice".into(),
                what: "injected fault 0: link-down on tower-0/fibre for 45m".into(),
            },
            TimelineRow {
                at_s: 8100.0,
                who: "bob".into(),
                what: "note: LTE took over".into(),
            },
        ],
        action_items: vec!["Investigate: availability".into()],
        replay_caveats: vec![],
        lessons: "lessons-learned.md".into(),
    });
    d
}

/// A fresh scratch directory under the target directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_game_day_adds_its_verdict_tolerances_and_timeline_to_every_output() {
    // Goal: with a game day attached, the Markdown, HTML, JSON summary and annotations
    // carry its title, refuted hypothesis, missed tolerance and timeline (numbered
    // markers on the availability chart, points in Grafana); without one, none do.
    let plain = fibre_cut();
    let d = with_gameday(plain.clone());
    let md = run_markdown(&d);
    for want in [
        "# Game-day report: Fibre drill <tower-0> (seed",
        "Verdict: hypothesis refuted; held (exit 0)",
        "## Game day",
        "> LTE carries P0 within 5 minutes",
        "- availability out of tolerance: 0.9 (tolerance >= 0.99)",
        "| availability | >= 0.99 | 0.9 | **out** |",
        "| 1 | 02:10:00 | alice | injected fault 0: link-down on tower-0/fibre for 45m |",
        "| 2 | 02:15:00 | bob | note: LTE took over |",
        "- [ ] Investigate: availability",
        "[lessons-learned.md](lessons-learned.md)",
    ] {
        assert!(md.contains(want), "{want:?} missing from:\n{md}");
    }
    let html = run_html(&d);
    assert!(html.contains("<title>Game-day report: Fibre drill &lt;tower-0&gt; (seed"));
    assert!(html.contains("<p class=\"verdict bad\">hypothesis refuted</p>"));
    assert_eq!(html.matches("class=\"marker\"").count(), 2);
    assert!(html.contains("<title>2. 02:15:00 bob: note: LTE took over</title>"));
    let summary: serde_json::Value = serde_json::from_str(&run_summary(&d)).expect("json");
    assert_eq!(summary["kind"], "gameday");
    assert_eq!(summary["gameday"]["confirmed"], false);
    assert_eq!(summary["gameday"]["timeline_entries"], 2);
    assert_eq!(summary["gameday"]["tolerances"][0]["pass"], false);
    let ann = run_annotations(&d, DEFAULT_START);
    let points: Vec<_> = ann
        .iter()
        .filter(|a| a.tags.iter().any(|t| t == "gameday"))
        .collect();
    assert_eq!(points.len(), 2);
    assert_eq!(points[0].time, (DEFAULT_START + 7800) * 1000);
    assert!(!points[0].is_region);
    assert_eq!(points[0].tags, ["sovereign", "gameday", "fibre-drill"]);
    // A plain run has none of it.
    assert!(!run_markdown(&plain).contains("Game day"));
    assert!(!run_html(&plain).contains("class=\"marker\""));
    assert!(run_summary(&plain).contains("\"kind\": \"run\""));
    assert!(
        run_annotations(&plain, DEFAULT_START)
            .iter()
            .all(|a| !a.tags.iter().any(|t| t == "gameday"))
    );
    // The game day survives run.json: the rebuilt report is the same.
    let dir = scratch("gameday-rebuild");
    write_run(&dir, &d).expect("written");
    let before = std::fs::read_to_string(dir.join("report.html")).expect("html");
    std::fs::remove_file(dir.join("report.html")).expect("rm");
    rebuild(&dir).expect("rebuilt");
    assert_eq!(
        std::fs::read_to_string(dir.join("report.html")).expect("html"),
        before
    );
    // And run.json of a plain run has no `gameday` key (older readers still read it).
    let dir = scratch("plain-run-json");
    write_run(&dir, &plain).expect("written");
    let json = std::fs::read_to_string(dir.join("run.json")).expect("json");
    assert!(!json.contains("\"gameday\""));
}

#[test]
fn the_reports_kpi_tables_show_the_cli_lines_and_their_slos() {
    // Goal: one truth on every screen — each KPI row of report.md and report.html is a
    // line `sim run` prints (same name, same value text), in its order, and each SLO
    // `sim run` checks stands on the row of its KPI with its verdict.
    let d = fibre_cut();
    let md = run_markdown(&d);
    let html = run_html(&d);
    let table: Vec<&str> = md
        .lines()
        .skip_while(|l| !l.starts_with("| KPI | measured | SLO |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    let rows = d.kpis.rows();
    assert_eq!(table.len(), rows.len(), "{md}");
    assert!(rows.len() >= 15, "{rows:?}");
    for ((name, value), line) in rows.iter().zip(&table) {
        let want = format!("| {name} | {} |", value.replace('|', "\\|"));
        assert!(line.starts_with(&want), "{line:?} is not {want:?}");
        assert!(
            html.contains(&format!("<td>{name}</td>")),
            "{name} in the HTML"
        );
    }
    let cli = d.kpis.lines();
    for (name, value) in &rows {
        assert!(
            cli.iter()
                .any(|l| l.starts_with(name.as_str()) && l.ends_with(value.as_str())),
            "{name}: {value} is not a line sim run prints"
        );
    }
    assert!(!d.slo.is_empty(), "fibre-cut has SLOs");
    for slo in &d.slo {
        let verdict = if slo.pass { "PASS" } else { "**FAIL**" };
        let line = table
            .iter()
            .find(|l| l.contains(&slo.name))
            .unwrap_or_else(|| panic!("SLO {} on no KPI row: {md}", slo.name));
        assert!(line.contains(&format!("{verdict} {}", slo.name)), "{line}");
    }
}

#[test]
fn every_tag_annotation_query_of_the_game_day_dashboard_matches_exported_annotations() {
    // Goal: each tag query of dashboards/grafana/gameday.json (all tags must match)
    // selects some annotation a game day exports: fault windows, violations, timeline.
    let text =
        std::fs::read_to_string(repo().join("dashboards/grafana/gameday.json")).expect("dashboard");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("json");
    let mut d = with_gameday(fibre_cut());
    // A violation too, so the violation layer has something to match.
    d.violations.push(sovereign_report::data::ViolationRow {
        oracle: "integrity".into(),
        at_s: 100.0,
        detail: "planted".into(),
        liveness: false,
    });
    let ann = run_annotations(&d, DEFAULT_START);
    let mut queries = 0;
    for layer in dash["annotations"]["list"].as_array().expect("list") {
        let Some(tags) = layer["target"]["tags"].as_array() else {
            continue;
        };
        assert_eq!(layer["target"]["matchAny"], false, "{layer}");
        queries += 1;
        let tags: Vec<&str> = tags.iter().map(|t| t.as_str().expect("tag")).collect();
        assert!(
            ann.iter()
                .any(|a| tags.iter().all(|t| a.tags.iter().any(|x| x == t))),
            "no exported annotation has all of {tags:?}"
        );
    }
    assert_eq!(queries, 3, "faults, violations, game-day timeline");
}

#[test]
fn exposition_writes_what_the_checker_accepts() {
    // Goal: what Exposition writes (label values escaped, counters, summaries) passes the
    // strict checker, with names counted.
    let mut e = Exposition::default();
    e.family("a_bytes", MetricType::Counter, "help");
    e.sample("_total", &[("x", "q\"uote\\\n")], 1.0, 10);
    e.sample("_total", &[("x", "q\"uote\\\n")], 2.0, 20);
    e.family("b_seconds", MetricType::Summary, "help\non two lines");
    e.sample("", &[("quantile", "0.5")], 1.0, 10);
    e.sample("_sum", &[], 1.0, 10);
    e.sample("_count", &[], 1.0, 10);
    e.family("c_ratio", MetricType::Gauge, "help");
    e.sample("", &[], f64::NAN, 10);
    let text = e.finish();
    let seen = check(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    let names = [
        "a_bytes_total",
        "b_seconds",
        "b_seconds_count",
        "b_seconds_sum",
        "c_ratio",
    ];
    assert_eq!(seen.sample_names, names.map(String::from).into());
    assert_eq!((seen.samples, seen.series), (6, 5), "{text}");
}

#[test]
fn openmetrics_export_is_well_formed_and_complete() {
    // Goal: a real run's export passes the strict checker, holds every family the
    // dashboards rely on, and is deterministic.
    let d = fibre_cut();
    let text = run_openmetrics(&d, DEFAULT_START);
    let stats = check(&text).unwrap_or_else(|e| panic!("{e:#?}"));
    for family in RUN_METRICS {
        assert!(stats.families.contains(family), "{family} missing");
    }
    assert!(stats.sample_names.contains("sovereign_link_bytes_total"));
    assert!(
        stats
            .sample_names
            .contains("sovereign_freshness_seconds_count")
    );
    assert!(stats.series > 50, "{} series", stats.series);
    // Every sample names the run (the dashboards' `run` variable), after its own labels.
    let run = format!("run=\"fibre-cut/seed-{}\"", d.seed);
    assert!(text.contains(&format!(
        "sovereign_link_bytes_total{{tower=\"tower-0\",link=\"satellite\",{run}}}"
    )));
    let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(
        samples.iter().all(|l| l.contains(&run)),
        "a sample without {run}"
    );
    // The scenario's objectives (availability >= 0.95, P0 p99 <= 45m), the error budget
    // and the score, ending where the run's KPIs end.
    let last = |prefix: &str| -> f64 {
        let l = samples
            .iter()
            .rev()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}"));
        let mut w = l.rsplit(' ');
        w.next();
        w.next().expect("value").parse().expect("a number")
    };
    assert_eq!(last("sovereign_slo_objective{kpi=\"availability\","), 0.95);
    assert_eq!(
        last("sovereign_slo_objective{kpi=\"freshness_p99_seconds\",class=\"P0\","),
        2700.0
    );
    let budget = d.kpis.error_budget_remaining.expect("an availability SLO");
    assert!((last("sovereign_error_budget_remaining_ratio{") - budget).abs() < 1e-9);
    let score = d.kpis.resilience_score.expect("a score");
    assert_eq!(last("sovereign_resilience_score{"), score);
    assert_eq!(
        text,
        run_openmetrics(&fibre_cut(), DEFAULT_START),
        "not deterministic"
    );
    // Faults active: the fibre cut alone at 2h10m; fibre, LTE and satellite at 3h10m.
    for (at_s, active) in [(2 * 3600 + 600, 1), (3 * 3600 + 600, 3), (6 * 3600, 0)] {
        let line = format!(
            "sovereign_faults_active{{{run}}} {active} {}",
            DEFAULT_START + at_s
        );
        assert!(text.contains(&line), "{line} missing");
    }
}

#[test]
fn promtool_accepts_the_openmetrics_export() {
    // Goal: Prometheus' own importer loads a sim export (skipped without promtool).
    if !on_path("promtool") {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is not on PATH, and CI must run this test (apt-get install prometheus)"
        );
        eprintln!("SKIP: promtool not on PATH (Debian package `prometheus`)");
        return;
    }
    let dir = scratch("promtool-import");
    let file = dir.join("run.om");
    std::fs::write(&file, run_openmetrics(&fibre_cut(), DEFAULT_START)).expect("write");
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&file)
        .arg(dir.join("tsdb"))
        .output()
        .expect("promtool runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "promtool failed:\n{stdout}\n{stderr}");
    let blocks = std::fs::read_dir(dir.join("tsdb"))
        .expect("tsdb dir")
        .count();
    assert!(blocks >= 1, "no block written:\n{stdout}");
}

#[test]
fn annotations_have_grafanas_shape() {
    // Goal: each fault is a region with time ≤ timeEnd in ms and the fault tags.
    let d = fibre_cut();
    let a = run_annotations(&d, DEFAULT_START);
    assert_eq!(a.len(), d.faults.len() + d.violations.len());
    let v = serde_json::to_value(&a).expect("serialises");
    let first = &v[0];
    assert_eq!(first["time"], (DEFAULT_START + 2 * 3600) * 1000);
    assert_eq!(first["timeEnd"], (DEFAULT_START + 5 * 3600) * 1000);
    assert_eq!(first["isRegion"], true);
    assert_eq!(first["tags"][1], "fault");
    assert!(
        first["text"]
            .as_str()
            .is_some_and(|t| t.contains("tower-0/fibre"))
    );
    for x in &a {
        assert!(x.time <= x.time_end);
    }
}

#[test]
fn html_report_is_self_contained_with_charts_and_rebuilds() {
    // Goal: report.html needs nothing outside itself, carries the SVG charts with fault
    // windows shaded, and `rebuild` renders identical files from run.json.
    let dir = scratch("report");
    let d = fibre_cut();
    let files = write_run(&dir, &d).expect("written");
    assert_eq!(files.len(), 4);
    let html = std::fs::read_to_string(dir.join("report.html")).expect("html");
    for banned in [
        "<script", "<link", " src=", "url(", "@import", "http://", "https://",
    ] {
        let hits: Vec<_> = html
            .match_indices(banned)
            .filter(|(i, _)| !html[..*i].ends_with("xmlns=\""))
            .filter(|(i, _)| !html[*i..].starts_with("http://www.w3.org/2000/svg"))
            .collect();
        assert!(hits.is_empty(), "{banned} in report.html");
    }
    assert!(html.matches("<svg ").count() >= 8, "charts missing");
    assert!(html.contains("class=\"fault\""), "fault windows not shaded");
    for title in [
        "Availability",
        "Freshness",
        "state of charge",
        "Bytes per link",
    ] {
        assert!(html.contains(title), "{title} chart missing");
    }
    let md = std::fs::read_to_string(dir.join("report.md")).expect("md");
    assert!(md.contains("| tower-0/fibre | link-down |"), "{md}");
    let before: Vec<String> = ["report.md", "report.html", "summary.json"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).expect("read"))
        .collect();
    for f in ["report.md", "report.html", "summary.json"] {
        std::fs::remove_file(dir.join(f)).expect("rm");
    }
    rebuild(&dir).expect("rebuilt");
    for (f, old) in ["report.md", "report.html", "summary.json"]
        .iter()
        .zip(before)
    {
        assert_eq!(
            std::fs::read_to_string(dir.join(f)).expect("read"),
            old,
            "{f} differs"
        );
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("s"))
            .expect("json");
    assert_eq!(summary["verdict"], "held");
    assert_eq!(summary["kpis"]["faults"], 4);
}

/// The chromium binary, or `None` (a skip) when it is not installed; in CI a missing
/// chromium is a failure, not a skip.
fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|t| on_path(t));
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is not on PATH, and CI must run this test (apt-get install chromium)"
        );
        eprintln!("SKIP: chromium not on PATH (Debian package `chromium`)");
    }
    found
}

/// Open `dir/report.html` in headless Chromium and check the screenshot: many colours,
/// few blank rows, and the charts' line colour present.
fn assert_renders_with_charts(chromium: &str, dir: &Path) {
    let shot = dir.join("out.png");
    let profile = dir.join("profile");
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1200,2000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!(
            "file://{}",
            dir.join("report.html")
                .canonicalize()
                .expect("abs")
                .display()
        ))
        .output()
        .expect("chromium runs");
    assert!(
        shot.is_file(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&shot).expect("open"),
    ));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("png frame");
    assert_eq!((info.width, info.height), (1200, 2000));
    let bpp = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let mut colours = std::collections::BTreeSet::new();
    let mut non_white = 0u64;
    for px in pixels.chunks(bpp) {
        colours.insert(px[..3.min(bpp)].to_vec());
        if px[..3.min(bpp)].iter().any(|c| *c < 240) {
            non_white += 1;
        }
    }
    let total = u64::from(info.width) * u64::from(info.height);
    assert!(colours.len() > 50, "{} colours: blank?", colours.len());
    assert!(
        non_white * 100 > total * 2,
        "only {non_white} of {total} pixels drawn"
    );
    // The chart palette's blue is on the page: the SVG charts rendered.
    assert!(
        colours.contains(&vec![0x00, 0x72, 0xb2]),
        "no chart line colour rendered"
    );
}

#[test]
fn html_report_renders_non_blank_in_headless_chromium() {
    // Goal: the page renders: the screenshot has many colours and few blank rows, and
    // the charts are drawn (skipped without chromium, except in CI).
    let Some(chromium) = chromium() else { return };
    let dir = scratch("screenshot");
    write_run(&dir, &fibre_cut()).expect("written");
    assert_renders_with_charts(chromium, &dir);
}

#[test]
fn game_day_html_report_renders_non_blank_in_headless_chromium() {
    // Goal: a game day's page (its section above the charts pushes them down the page)
    // still renders with its charts in the first screenful of 2000 px.
    let Some(chromium) = chromium() else { return };
    let dir = scratch("screenshot-gameday");
    write_run(&dir, &with_gameday(fibre_cut())).expect("written");
    let html = std::fs::read_to_string(dir.join("report.html")).expect("html");
    assert!(html.contains("class=\"marker\""), "no timeline markers");
    // The plan's tolerance is drawn on its KPI's chart, beside the scenario's SLO.
    assert!(
        html.contains("game-day tolerance ≥ 0.99"),
        "no tolerance line"
    );
    assert!(
        !sovereign_report::render::run_html(&fibre_cut()).contains("game-day tolerance"),
        "a plain run has no tolerance to draw"
    );
    assert_renders_with_charts(chromium, &dir);
}

#[test]
fn series_sampled_as_the_run_goes_equal_the_whole_log_and_the_kpis() {
    // Goal: the series a run feeds as it goes (bounded memory) are the series of its
    // whole observation log sampled afterwards at the same step, and their last point
    // carries the same read and freshness counts as the run's KPIs.
    let sc = parse_file(&repo().join("scenarios/fibre-cut.toml")).unwrap_or_else(|e| panic!("{e}"));
    let opts = RunOptions {
        seed: sc.seed,
        ..RunOptions::default()
    };
    let (report, live) = record(&sc, &opts);
    // The whole log, taken once at the end (a path apart from run_observed's batches).
    let mut world = sovereign_sim::World::new(&sc, &opts);
    world.tap_observations();
    world.run();
    let log = world.take_observations();
    let end_s = sovereign_report::data::series_end(&world);
    let mut whole = sovereign_report::series::SeriesScan::with_step(
        live.step_s,
        sovereign_report::data::devices_of(&sc),
    );
    for s in &log {
        sovereign_sim::Observer::observe(&mut whole, s);
    }
    assert_eq!(live, whole.finish(end_s));
    assert!(live.t_s.len() > 10, "{} points", live.t_s.len());
    let k = &report.kpis;
    let last = |v: &[u64]| *v.last().expect("points");
    let served: u64 = live.towers.iter().map(|t| last(&t.reads_served)).sum();
    let valid: u64 = live
        .towers
        .iter()
        .map(|t| last(&t.reads_served) + last(&t.reads_refused) + last(&t.reads_unreachable))
        .sum();
    assert_eq!((served, valid), (k.reads_good, k.reads_valid));
    assert_eq!(*live.availability.last().expect("points"), k.availability);
    for (i, t) in live.towers.iter().enumerate() {
        let (good, all) = k.tower_reads[i];
        assert_eq!(last(&t.reads_served), good, "{}", t.name);
        assert_eq!(
            last(&t.reads_served) + last(&t.reads_refused) + last(&t.reads_unreachable),
            all,
            "{}",
            t.name
        );
    }
    for (c, f) in live.freshness.iter().enumerate() {
        assert_eq!(last(&f.count), k.freshness[c].samples, "class {c}");
    }
}

#[test]
fn the_html_report_draws_a_fault_timeline_and_slo_lines_over_aligned_charts() {
    // Goal: a reader can tie a dip to its fault (Jepsen-style): one timeline lane per
    // fault family and target above the KPI charts, every fault a bar with its tooltip,
    // the same x axis under it; the scenario's SLOs drawn as dashed lines; the
    // availability axis fitted to the data (a dip to 0.86 is not flattened against 0);
    // an all-zero chart left out with a note.
    let d = fibre_cut();
    let charts = sovereign_report::render::run_charts(&d);
    let timeline = &charts[0];
    assert!(timeline.contains("Faults: "), "the timeline comes first");
    let lanes = sovereign_report::render::fault_lanes(&d);
    let spans: usize = lanes.iter().map(|l| l.spans.len()).sum();
    assert_eq!(spans, d.faults.len(), "every fault is a bar");
    assert_eq!(
        timeline.matches("<g class=\"span\">").count(),
        d.faults.len()
    );
    for l in &lanes {
        assert!(
            timeline.contains(&format!(">{}</text>", l.name)),
            "{}",
            l.name
        );
    }
    assert!(lanes.iter().any(|l| l.name == "network tower-0/fibre"));
    // The x axis: every chart plots the run from 0 to its end with the same margins, so
    // the timeline's ticks sit where the charts' ticks sit.
    let ticks = |svg: &str| -> Vec<String> {
        svg.split("<text x=\"")
            .skip(1)
            .filter(|t| t.contains("text-anchor=\"middle\">"))
            .map(|t| t.split('"').next().unwrap_or_default().to_string())
            .take(5)
            .collect()
    };
    let availability = charts
        .iter()
        .find(|c| c.contains("Availability (valid reads served)"))
        .expect("availability chart");
    assert_eq!(ticks(timeline), ticks(availability));
    // The SLO (availability >= 0.95) as a dashed line, and a fitted axis.
    assert!(availability.contains("<g class=\"slo\">"));
    assert!(availability.contains("SLO ≥ 0.95"));
    let lowest = d
        .series
        .availability
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .min(0.95);
    assert!(
        lowest > 0.5,
        "fibre-cut's availability stays high: {lowest}"
    );
    assert!(
        !availability.contains("text-anchor=\"end\">0</text>"),
        "the axis starts at 0 although the lowest value is {lowest}"
    );
    let freshness = charts
        .iter()
        .find(|c| c.contains("Freshness p99 per class"))
        .expect("freshness chart");
    assert!(
        freshness.contains("P0 SLO ≤ 45m"),
        "no P0 freshness SLO line"
    );
    // An all-zero series is a note, not a chart.
    let mut quiet = d.clone();
    for t in &mut quiet.series.towers {
        t.outbox.iter_mut().for_each(|v| *v = 0);
    }
    let notes = sovereign_report::render::run_charts(&quiet);
    assert!(
        notes
            .iter()
            .any(|c| c.starts_with("<p class=\"note\">Outbox backlog: empty"))
    );
    assert!(!notes.iter().any(|c| c.contains("Outbox backlog per tower")));
}
