//! Reports: a run's or a sweep's saved data rendered as Markdown (`report.md`), a
//! self-contained HTML page with inline SVG charts (`report.html`) and a JSON summary
//! (`summary.json`); written next to the data (`run.json` / `sweep.json`) so that
//! [`rebuild`] can render them again from the directory alone.
//!
//! Map: [`write_run`], [`write_sweep`], [`rebuild`] (files); [`run_markdown`],
//! [`run_html`], [`run_summary`], [`sweep_markdown`], [`sweep_html`], [`sweep_summary`]
//! (text); [`ReportError`].
//!
//! Not covered: running anything (the CLI runs, then hands the data here), OpenMetrics
//! (see `openmetrics.rs`).

use crate::data::{GamedayData, RunData, verdict};
use crate::svg::{
    Band, BarGroup, Chart, Lane, Line, Span, bar_chart, esc, line_chart, timeline_chart,
};
use crate::sweep::SweepData;
use serde_json::json;
use sovereign_logic::content::Priority;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// The saved data of a run, in a report directory.
pub const RUN_DATA_FILE: &str = "run.json";
/// The saved data of a sweep, in a report directory.
pub const SWEEP_DATA_FILE: &str = "sweep.json";

/// Why a report could not be written or rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// the file
        path: String,
        /// why
        source: std::io::Error,
    },
    /// Saved data could not be read: missing, larger than [`DATA_BYTES_MAX`], not UTF-8.
    #[error(transparent)]
    Input(#[from] sovereign_wire::input::InputError),
    /// Saved data did not parse.
    #[error("{path}: line {line}, column {column}: {message}")]
    Json {
        /// the file
        path: String,
        /// where
        line: usize,
        /// where
        column: usize,
        /// what was wrong
        message: String,
    },
    /// The directory holds neither a run's nor a sweep's data.
    #[error(
        "{dir}: no {RUN_DATA_FILE} or {SWEEP_DATA_FILE} here (write one with `sovereign sim run … --report DIR`)"
    )]
    NoData {
        /// the directory
        dir: String,
    },
    /// The data was written by an incompatible version.
    #[error("{path}: format {found}, this build reads format {expected}")]
    Format {
        /// the file
        path: String,
        /// in the file
        found: u32,
        /// this build's
        expected: u32,
    },
}

fn write_file(path: &Path, text: &str) -> Result<PathBuf, ReportError> {
    std::fs::write(path, text).map_err(|source| ReportError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(path.to_path_buf())
}

fn create_dir(dir: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        path: dir.display().to_string(),
        source,
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("plain data serialises");
    s.push('\n');
    s
}

/// Write a run's data and its reports into `dir` (created if missing); returns the
/// files written.
pub fn write_run(dir: &Path, d: &RunData) -> Result<Vec<PathBuf>, ReportError> {
    create_dir(dir)?;
    Ok(vec![
        write_file(&dir.join(RUN_DATA_FILE), &to_json(d))?,
        write_file(&dir.join("report.md"), &run_markdown(d))?,
        write_file(&dir.join("report.html"), &run_html(d))?,
        write_file(&dir.join("summary.json"), &run_summary(d))?,
    ])
}

/// Write a sweep's data and its reports into `dir`; returns the files written.
pub fn write_sweep(dir: &Path, d: &SweepData) -> Result<Vec<PathBuf>, ReportError> {
    create_dir(dir)?;
    Ok(vec![
        write_file(&dir.join(SWEEP_DATA_FILE), &to_json(d))?,
        write_file(&dir.join("report.md"), &sweep_markdown(d))?,
        write_file(&dir.join("report.html"), &sweep_html(d))?,
        write_file(&dir.join("summary.json"), &sweep_summary(d))?,
    ])
}

/// Largest saved run or sweep data file `sovereign report` reads (a run's series over a
/// year of virtual time at the export's resolution stays far below it).
pub const DATA_BYTES_MAX: u64 = 256 << 20;

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ReportError> {
    let text = sovereign_wire::input::read_capped_text(path, DATA_BYTES_MAX, "report data file")?;
    serde_json::from_str(&text).map_err(|e| ReportError::Json {
        path: path.display().to_string(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// Read the saved data of a run or a sweep in `dir` and write its reports again.
pub fn rebuild(dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let run = dir.join(RUN_DATA_FILE);
    let sweep = dir.join(SWEEP_DATA_FILE);
    if run.is_file() {
        let d: RunData = read_json(&run)?;
        if d.format != crate::data::RUN_DATA_FORMAT {
            return Err(ReportError::Format {
                path: run.display().to_string(),
                found: d.format,
                expected: crate::data::RUN_DATA_FORMAT,
            });
        }
        write_run(dir, &d)
    } else if sweep.is_file() {
        let d: SweepData = read_json(&sweep)?;
        if d.format != crate::sweep::SWEEP_DATA_FORMAT {
            return Err(ReportError::Format {
                path: sweep.display().to_string(),
                found: d.format,
                expected: crate::sweep::SWEEP_DATA_FORMAT,
            });
        }
        write_sweep(dir, &d)
    } else {
        Err(ReportError::NoData {
            dir: dir.display().to_string(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Formatting helpers

/// Seconds of a KPI measured in microseconds, as `run.json` writes them.
fn us_secs(us: u64) -> f64 {
    us as f64 / 1e6
}

fn dur(s: Option<f64>) -> String {
    s.map_or_else(
        || "n/a".into(),
        |s| sovereign_sim::kpi::format_us((s * 1e6).round().max(0.0) as u64),
    )
}

fn ratio(v: Option<f64>, p: usize) -> String {
    v.map_or_else(|| "n/a".into(), |x| format!("{x:.p$}"))
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Virtual seconds as a clock, `HH:MM:SS` (`1d 02:03:04` past the first day), as the
/// console shows time.
fn clock(s: f64) -> String {
    let s = s.max(0.0) as u64;
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d {h:02}:{m:02}:{sec:02}")
    } else {
        format!("{h:02}:{m:02}:{sec:02}")
    }
}

/// A moment of the run as every screen writes it (`1d 02:03:04.567`).
pub(crate) fn at_clock(s: f64) -> String {
    sovereign_logic::Time::from_micros((s.max(0.0) * 1e6).round() as u64).to_string()
}

/// A report's title: the game day's, or the run's.
fn run_title(d: &RunData) -> String {
    match &d.gameday {
        Some(g) => format!("Game-day report: {} (seed {})", g.title, d.seed),
        None => format!("Run report: {} (seed {})", d.scenario, d.seed),
    }
}

fn run_by(g: &GamedayData) -> String {
    let how = if g.headless {
        " (headless: checklists auto-confirmed)"
    } else {
        ""
    };
    format!("{}{how}", g.operator)
}

fn confirmed_text(g: &GamedayData) -> &'static str {
    if g.confirmed {
        "hypothesis confirmed"
    } else {
        "hypothesis refuted"
    }
}

/// One KPI row: name, value, and the SLO (name, held) if one applies.
type KpiRow = (String, String, Option<(String, bool)>);

/// The KPI rows of a report: the CLI's rows ([`sovereign_observe::kpi::Kpis::rows`],
/// the same words and numbers), each with the scenario's SLO on it, if any (an SLO is
/// named after its KPI: `availability >= 0.95`, `freshness P0 p99 <= 5m`).
fn kpi_rows(d: &RunData) -> Vec<KpiRow> {
    d.kpis
        .rows()
        .into_iter()
        .map(|(name, value)| {
            let slo = d
                .slo
                .iter()
                .find(|s| s.name.starts_with(&format!("{name} ")))
                .map(|s| (s.name.clone(), s.pass));
            (name, value, slo)
        })
        .collect()
}

fn plant_text(p: &Option<String>) -> &str {
    p.as_deref().unwrap_or("none")
}

// ---------------------------------------------------------------------------------------
// Run: Markdown

/// A run's Markdown report.
pub fn run_markdown(d: &RunData) -> String {
    let mut w = String::new();
    let _ = writeln!(w, "# {}\n", run_title(d));
    if !d.description.is_empty() {
        let _ = writeln!(w, "{}\n", d.description);
    }
    let game = d
        .gameday
        .as_ref()
        .map_or_else(String::new, |g| format!("{}; ", confirmed_text(g)));
    let _ = writeln!(
        w,
        "**Verdict: {game}{} (exit {}).** Charts: [report.html](report.html).\n",
        d.verdict(),
        d.exit_code
    );
    let _ = writeln!(w, "| | |\n|---|---|");
    let towers: Vec<String> = d
        .towers
        .iter()
        .map(|t| format!("{} ({} devices; {})", t.name, t.devices, t.links.join(", ")))
        .collect();
    for (k, v) in [
        ("scenario", format!("{} (`{}`)", d.scenario, d.source)),
        ("seed", d.seed.to_string()),
        ("plant", plant_text(&d.plant).to_string()),
        ("towers", towers.join("; ")),
        ("virtual time", dur(Some(d.end_s))),
        ("events", d.events.to_string()),
        ("build", d.build.clone()),
        ("trace hash", format!("`{}`", d.trace_hash)),
        ("rerun", format!("`{}`", d.replay)),
    ] {
        let _ = writeln!(w, "| {k} | {} |", md_cell(&v));
    }
    if let Some(g) = &d.gameday {
        gameday_markdown(&mut w, g);
    }
    let _ = writeln!(w, "\n## KPIs and SLOs\n");
    let _ = writeln!(w, "| KPI | measured | SLO |\n|---|---|---|");
    for (name, value, slo) in kpi_rows(d) {
        let s = slo.map_or_else(String::new, |(n, pass)| {
            format!("{} {n}", if pass { "PASS" } else { "**FAIL**" })
        });
        let _ = writeln!(w, "| {name} | {} | {} |", md_cell(&value), md_cell(&s));
    }
    let failing: Vec<_> = d.slo.iter().filter(|s| !s.pass).collect();
    if !failing.is_empty() {
        let _ = writeln!(w, "\nSLOs missed:");
        for s in failing {
            let _ = writeln!(w, "- {} (measured {})", s.name, s.measured);
        }
    }
    let _ = writeln!(w, "\n## Violations\n");
    if d.violations.is_empty() {
        let _ = writeln!(w, "None: every checked invariant held.");
    } else {
        let _ = writeln!(w, "| oracle | at | kind | detail |\n|---|---|---|---|");
        for v in &d.violations {
            let kind = if v.liveness { "liveness" } else { "safety" };
            let _ = writeln!(
                w,
                "| {} | {} | {kind} | {} |",
                v.oracle,
                at_clock(v.at_s),
                md_cell(&v.detail)
            );
        }
        let _ = writeln!(w, "\nReproduce:\n\n```sh\n{}\n```", d.replay);
        if let Some(f) = &d.failure_file {
            let _ = writeln!(
                w,
                "\nShrink to a minimal fault schedule:\n\n```sh\nsovereign sim shrink {}\n```",
                sovereign_sim::failure::shell_quote(f)
            );
        }
    }
    let _ = writeln!(w, "\n## Fault schedule\n");
    if d.faults.is_empty() {
        let _ = writeln!(w, "No faults were injected.");
    } else {
        let _ = writeln!(
            w,
            "| # | start | end | target | kind | family | detected | recovered | towers unsteady |\n|---|---|---|---|---|---|---|---|---|"
        );
        for f in &d.faults {
            let detected = match f.detected_after_s {
                Some(s) => format!("after {}", dur(Some(s))),
                None => f.detection.clone(),
            };
            let recovered = match (f.disrupting, f.recovered_after_s) {
                (false, _) => "not disrupting".to_string(),
                (true, Some(s)) => format!("after {}", dur(Some(s))),
                (true, None) => "**never**".to_string(),
            };
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | {detected} | {recovered} | {} |",
                f.id,
                dur(Some(f.start_s)),
                dur(Some(f.end_s)),
                md_cell(&f.target),
                f.kind,
                f.family,
                f.towers_unsteady
            );
        }
    }
    let _ = writeln!(w, "\n## KPI lines\n\n```text");
    for l in &d.kpi_lines {
        let _ = writeln!(w, "{l}");
    }
    let _ = writeln!(w, "```");
    w
}

/// A game day's part of a Markdown report: plan, hypothesis and verdict, KPIs against
/// tolerances, timeline, action items.
fn gameday_markdown(w: &mut String, g: &GamedayData) {
    let _ = writeln!(w, "\n## Game day\n");
    let _ = writeln!(w, "| | |\n|---|---|");
    for (k, v) in [
        ("plan", format!("{} (`{}`)", g.title, g.plan_file)),
        ("quarter", g.quarter.clone()),
        ("run by", run_by(g)),
        ("lessons learned", format!("[{0}]({0})", g.lessons)),
    ] {
        let _ = writeln!(w, "| {k} | {} |", md_cell(&v));
    }
    let _ = writeln!(w, "\n> {}\n", g.hypothesis.replace('\n', " "));
    if g.confirmed {
        let _ = writeln!(
            w,
            "**Hypothesis confirmed.** Every observation matched and every KPI stayed within \
             tolerance."
        );
    } else {
        let _ = writeln!(w, "**Hypothesis refuted.**\n");
        for r in &g.reasons {
            let _ = writeln!(w, "- {r}");
        }
    }
    let _ = writeln!(w, "\n### KPIs against tolerances\n");
    let _ = writeln!(w, "| KPI | tolerance | measured | |\n|---|---|---|---|");
    for t in &g.tolerances {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} |",
            md_cell(&t.name),
            md_cell(&t.tolerance),
            md_cell(&t.measured),
            if t.pass { "ok" } else { "**out**" }
        );
    }
    let _ = writeln!(
        w,
        "\n### Timeline\n\nNumbers match the dashed markers on the availability chart.\n"
    );
    let _ = writeln!(w, "| # | virtual time | who | what |\n|---|---|---|---|");
    for (i, e) in g.timeline.iter().enumerate() {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} |",
            i + 1,
            clock(e.at_s),
            md_cell(&e.who),
            md_cell(&e.what)
        );
    }
    let _ = writeln!(w, "\n### Action items\n");
    for a in &g.action_items {
        let _ = writeln!(w, "- [ ] {a}");
    }
    for c in &g.replay_caveats {
        let _ = writeln!(w, "\nReplay caveat: {c}");
    }
}

/// A game day's part of an HTML report.
fn gameday_html(w: &mut String, g: &GamedayData) {
    let _ = writeln!(w, "<h2>Game day</h2>\n<table>");
    for (k, v) in [
        ("plan", format!("{} ({})", g.title, g.plan_file)),
        ("quarter", g.quarter.clone()),
        ("run by", run_by(g)),
    ] {
        let _ = writeln!(w, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    let _ = writeln!(
        w,
        "<tr><th>lessons learned</th><td><a href=\"{0}\">{0}</a></td></tr></table>",
        esc(&g.lessons)
    );
    let _ = writeln!(w, "<blockquote>{}</blockquote>", esc(&g.hypothesis));
    let class = if g.confirmed { "ok" } else { "bad" };
    let _ = writeln!(w, "<p class=\"verdict {class}\">{}</p>", confirmed_text(g));
    if !g.reasons.is_empty() {
        let _ = writeln!(w, "<ul>");
        for r in &g.reasons {
            let _ = writeln!(w, "<li>{}</li>", esc(r));
        }
        let _ = writeln!(w, "</ul>");
    }
    let _ = writeln!(
        w,
        "<h3>KPIs against tolerances</h3>\n<table><tr><th>KPI</th><th>tolerance</th><th>measured</th><th></th></tr>"
    );
    for t in &g.tolerances {
        let (c, word) = if t.pass {
            ("pass", "ok")
        } else {
            ("fail", "out")
        };
        let _ = writeln!(
            w,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{c}\">{word}</td></tr>",
            esc(&t.name),
            esc(&t.tolerance),
            esc(&t.measured)
        );
    }
    let _ = writeln!(
        w,
        "</table>\n<h3>Timeline</h3>\n<p>Numbers match the dashed markers on the availability chart.</p>\n<table class=\"timeline\"><tr><th>#</th><th>virtual time</th><th>who</th><th>what</th></tr>"
    );
    for (i, e) in g.timeline.iter().enumerate() {
        let _ = writeln!(
            w,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            clock(e.at_s),
            esc(&e.who),
            esc(&e.what)
        );
    }
    let _ = writeln!(w, "</table>\n<h3>Action items</h3>\n<ul>");
    for a in &g.action_items {
        let _ = writeln!(w, "<li>{}</li>", esc(a));
    }
    let _ = writeln!(w, "</ul>");
    for c in &g.replay_caveats {
        let _ = writeln!(w, "<p>Replay caveat: {}</p>", esc(c));
    }
}

// ---------------------------------------------------------------------------------------
// Run: HTML

const STYLE: &str = "body{font-family:sans-serif;max-width:1040px;margin:1em auto;color:#222;padding:0 8px}\
table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px;vertical-align:top}\
th{background:#f2f2f2}.pass{color:#006400;font-weight:bold}.fail{color:#b00000;font-weight:bold}\
.note{color:#555;font-style:italic;margin:4px 0}.verdict{font-size:18px;padding:6px 10px;display:inline-block;border-radius:4px}\
.ok{background:#dff0d8}.bad{background:#f2dede}code,pre{background:#f6f6f6;font-size:12px}pre{padding:6px;overflow-x:auto}\
svg.chart{display:block;margin:10px 0;border:1px solid #eee}";

pub(crate) fn html_head(w: &mut String, title: &str) {
    let _ = write!(
        w,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(title)
    );
}

fn hours(t_s: &[u64]) -> Vec<f64> {
    t_s.iter().map(|t| *t as f64 / 3600.0).collect()
}

fn line<T: Copy>(name: &str, x: &[f64], v: &[T], f: impl Fn(T) -> Option<f64>) -> Line {
    Line {
        name: name.into(),
        points: x.iter().zip(v).map(|(x, v)| (*x, f(*v))).collect(),
    }
}

pub(crate) fn fault_bands(d: &RunData) -> Vec<Band> {
    d.faults
        .iter()
        .map(|f| Band {
            from: f.start_s / 3600.0,
            to: f.end_s / 3600.0,
            label: format!(
                "{} {} ({}–{})",
                f.kind,
                f.target,
                clock(f.start_s),
                clock(f.end_s)
            ),
        })
        .collect()
}

/// A fault family's colour on the timeline.
fn family_colour(family: &str) -> &'static str {
    match family {
        "network" => "#0072b2",
        "process" => "#d55e00",
        "disk" => "#cc79a7",
        "power" => "#e69f00",
        "clock" => "#555555",
        _ => "#009e73",
    }
}

/// The fault timeline's lanes: one per fault family and target (families in a fixed
/// order, then targets by name), each fault a span with its detection and recovery.
pub fn fault_lanes(d: &RunData) -> Vec<Lane> {
    const FAMILIES: [&str; 5] = ["network", "process", "disk", "power", "clock"];
    let rank = |f: &str| {
        FAMILIES
            .iter()
            .position(|x| *x == f)
            .unwrap_or(FAMILIES.len())
    };
    let mut lanes: std::collections::BTreeMap<(usize, String, String), Vec<Span>> =
        std::collections::BTreeMap::new();
    for f in &d.faults {
        let h = |s: f64| s / 3600.0;
        let mut tip = format!(
            "#{} {} on {} ({}), {} – {}",
            f.id,
            f.kind,
            f.target,
            f.family,
            clock(f.start_s),
            clock(f.end_s)
        );
        match f.detected_after_s {
            Some(a) => tip.push_str(&format!("; detected after {}", dur(Some(a)))),
            None if f.detection == "excluded" => tip.push_str("; undetectable"),
            None => tip.push_str("; never detected"),
        }
        if f.disrupting {
            match f.recovered_after_s {
                Some(r) => tip.push_str(&format!("; steady again after {}", dur(Some(r)))),
                None => tip.push_str("; never steady again"),
            }
        }
        lanes
            .entry((rank(&f.family), f.family.clone(), f.target.clone()))
            .or_default()
            .push(Span {
                from: h(f.start_s),
                to: h(f.end_s),
                label: f.kind.clone(),
                tip,
                detected: f.detected_after_s.map(|a| h(f.start_s + a)),
                recovered: f.recovered_after_s.map(|r| h(f.start_s + r)),
            });
    }
    lanes
        .into_iter()
        .map(|((_, family, target), spans)| Lane {
            name: format!("{family} {target}"),
            colour: family_colour(&family),
            spans,
        })
        .collect()
}

/// A game day's tolerance bound for the KPI `name` (as the plan's tolerance rows name it).
fn tolerance(d: &RunData, name: &str) -> Option<f64> {
    d.gameday
        .as_ref()?
        .tolerances
        .iter()
        .find(|t| t.name == name)?
        .bound
}

/// A y range from `lo` (rounded down to a twentieth, with a little room) to just above 1:
/// a ratio chart that shows its dips instead of flattening them against 0.
fn ratio_range(lo: f64) -> (f64, f64) {
    let lo = if lo.is_finite() { lo } else { 0.0 };
    (((lo - 0.01) * 20.0).floor().max(0.0) / 20.0, 1.005)
}

/// Whether any point of any line is non-zero (an all-zero chart is left out).
fn any_nonzero(lines: &[Line]) -> bool {
    lines
        .iter()
        .any(|l| l.points.iter().any(|(_, y)| y.is_some_and(|v| v != 0.0)))
}

/// One paragraph standing for a chart left out.
fn left_out(what: &str) -> String {
    format!("<p class=\"note\">{}</p>", esc(what))
}

/// The run's charts, as inline SVG (each one `<svg class="chart">`), or a one-line note
/// where a chart would be empty: first the fault timeline, then the KPIs over the same x
/// axis (they align under it), fault windows shaded, SLOs as dashed lines.
pub fn run_charts(d: &RunData) -> Vec<String> {
    let s = &d.series;
    let x = hours(&s.t_s);
    let span = (
        0.0,
        (d.end_s / 3600.0).max(x.last().copied().unwrap_or(0.0)),
    );
    let bands = fault_bands(d);
    let mut out = Vec::new();
    let chart = |title: &str, y_label: &str| {
        let mut c = Chart::new(title, y_label);
        c.x_range = Some(span);
        c
    };

    let lanes = fault_lanes(d);
    if lanes.is_empty() {
        out.push(left_out("No fault was injected."));
    } else {
        out.push(timeline_chart(
            &format!(
                "Faults: {} in {} lanes (family and target); hover a bar for its detail",
                d.faults.len(),
                lanes.len()
            ),
            "virtual time (h)",
            &lanes,
            span,
        ));
    }

    let mut c = match &d.gameday {
        Some(g) => {
            let mut c = chart(
                "Availability (valid reads served), faults shaded, game-day timeline numbered",
                "ratio",
            );
            c.markers = g
                .timeline
                .iter()
                .map(|e| {
                    (
                        e.at_s / 3600.0,
                        format!("{} {}: {}", clock(e.at_s), e.who, e.what),
                    )
                })
                .collect();
            c
        }
        None => chart("Availability (valid reads served), faults shaded", "ratio"),
    };
    let slo = d.objective("availability", None);
    let tol = tolerance(d, "availability");
    let lowest = s
        .availability_window
        .iter()
        .flatten()
        .chain(&s.availability)
        .copied()
        .chain(slo)
        .chain(tol)
        .fold(f64::INFINITY, f64::min);
    c.y_range = Some(ratio_range(lowest));
    c.hlines.extend(slo.map(|v| (v, format!("SLO ≥ {v}"))));
    c.hlines
        .extend(tol.map(|v| (v, format!("game-day tolerance ≥ {v}"))));
    out.push(line_chart(
        &c,
        &[
            line("last 30 min", &x, &s.availability_window, |v| v),
            line("since start", &x, &s.availability, Some),
        ],
        &bands,
    ));

    let mut c = chart("Towers serving and steady, faults shaded", "towers");
    c.steps = true;
    let n = s.t_s.len();
    let count = |get: &dyn Fn(usize, usize) -> bool| -> Vec<u64> {
        (0..n)
            .map(|i| (0..s.towers.len()).filter(|t| get(*t, i)).count() as u64)
            .collect()
    };
    let up = count(&|t, i| s.towers[t].up[i]);
    let steady = count(&|t, i| s.towers[t].steady[i]);
    let faults_max = s.faults_active.iter().copied().max().unwrap_or(0);
    let top = (s.towers.len() as u64).max(faults_max).max(1);
    c.y_range = Some((0.0, top as f64 + 0.2));
    out.push(line_chart(
        &c,
        &[
            line("serving", &x, &up, |v| Some(v as f64)),
            line("steady", &x, &steady, |v| Some(v as f64)),
            line("faults active", &x, &s.faults_active, |v| Some(v as f64)),
        ],
        &bands,
    ));

    let lines: Vec<Line> = s
        .towers
        .iter()
        .map(|t| line(&t.name, &x, &t.outbox, |v| Some(v as f64)))
        .collect();
    if any_nonzero(&lines) {
        let mut c = chart("Outbox backlog per tower, faults shaded", "operations");
        c.hlines.extend(
            tolerance(d, "outbox backlog (max)").map(|v| (v, format!("game-day tolerance ≤ {v}"))),
        );
        out.push(line_chart(&c, &lines, &bands));
    } else {
        out.push(left_out(
            "Outbox backlog: empty all run (every operation forwarded at once).",
        ));
    }

    let mut c = chart(
        "Freshness p99 per class (publish → servable, last hour; log scale), faults shaded",
        "seconds",
    );
    c.log_y = true;
    for class in Priority::ALL {
        let name = class.to_string();
        if let Some(v) = d.objective("freshness_p99_seconds", Some(&name)) {
            c.hlines.push((v, format!("{name} SLO ≤ {}", dur(Some(v)))));
        }
        if let Some(v) = tolerance(d, &format!("freshness p99 {name}")) {
            c.hlines
                .push((v, format!("{name} game-day tolerance ≤ {}", dur(Some(v)))));
        }
    }
    let lines: Vec<Line> = s
        .freshness
        .iter()
        .map(|f| line(&f.class, &x, &f.p99_s, |v| v))
        .collect();
    if any_nonzero(&lines) {
        out.push(line_chart(&c, &lines, &bands));
    } else {
        out.push(left_out(
            "Freshness: no version became servable at a tower in this run.",
        ));
    }

    let groups: Vec<BarGroup> = d
        .kpis
        .freshness
        .iter()
        .zip(Priority::ALL)
        .map(|(f, class)| BarGroup {
            label: class.to_string(),
            values: vec![f.p50_us.map(us_secs), f.p99_us.map(us_secs)],
        })
        .collect();
    if groups.iter().any(|g| g.values.iter().any(Option::is_some)) {
        out.push(bar_chart(
            "Freshness per class over the run (p50, p99)",
            "seconds",
            &["p50", "p99"],
            &groups,
        ));
    }

    let lines: Vec<Line> = s
        .towers
        .iter()
        .map(|t| line(&t.name, &x, &t.soc, |v| v))
        .collect();
    if lines.iter().any(|l| l.points.iter().any(|p| p.1.is_some())) {
        let mut c = chart("Battery state of charge per tower, faults shaded", "SoC");
        let soc_min = d.objective("soc_lowest_ratio", None);
        let tol = tolerance(d, "lowest battery SoC");
        let lowest = lines
            .iter()
            .flat_map(|l| l.points.iter().filter_map(|p| p.1))
            .chain(soc_min)
            .chain(tol)
            .fold(f64::INFINITY, f64::min);
        c.y_range = Some(ratio_range(lowest));
        c.hlines
            .extend(soc_min.map(|v| (v, format!("SLO: lowest ≥ {v}"))));
        c.hlines
            .extend(tol.map(|v| (v, format!("game-day tolerance: lowest ≥ {v}"))));
        out.push(line_chart(&c, &lines, &bands));
    } else {
        out.push(left_out("Battery: no tower reported a state of charge."));
    }

    let lines: Vec<Line> = s
        .towers
        .iter()
        .map(|t| line(&t.name, &x, &t.solar_w, |v| v))
        .collect();
    if any_nonzero(&lines) {
        let c = chart("Solar power per tower", "W");
        out.push(line_chart(&c, &lines, &bands));
    } else {
        out.push(left_out("Solar power: none all run."));
    }

    let lines: Vec<Line> = s
        .towers
        .iter()
        .flat_map(|t| {
            t.links.iter().map(|l| {
                line(&format!("{}/{}", t.name, l.kind), &x, &l.bytes, |v| {
                    Some(v as f64 / 1_048_576.0)
                })
            })
        })
        .collect();
    if any_nonzero(&lines) {
        let c = chart("Bytes per link (cumulative), faults shaded", "MiB");
        out.push(line_chart(&c, &lines, &bands));
        let groups: Vec<BarGroup> = d
            .kpis
            .bytes_per_link
            .iter()
            .map(|(l, b)| BarGroup {
                label: l.name().to_string(),
                values: vec![Some(*b as f64 / 1_048_576.0)],
            })
            .collect();
        out.push(bar_chart(
            "Bytes per link over the run",
            "MiB",
            &["bytes"],
            &groups,
        ));
    } else {
        out.push(left_out("Bytes per link: no uplink moved a byte."));
    }
    out
}

/// A run's self-contained HTML report.
pub fn run_html(d: &RunData) -> String {
    let mut w = String::new();
    let title = run_title(d);
    html_head(&mut w, &title);
    let _ = writeln!(w, "<h1>{}</h1>", esc(&title));
    if !d.description.is_empty() {
        let _ = writeln!(w, "<p>{}</p>", esc(&d.description));
    }
    let class = if d.exit_code == 0 { "ok" } else { "bad" };
    let _ = writeln!(
        w,
        "<p class=\"verdict {class}\">{} (exit {})</p>",
        d.verdict(),
        d.exit_code
    );
    let _ = writeln!(w, "<table>");
    for (k, v) in [
        ("scenario", format!("{} ({})", d.scenario, d.source)),
        ("seed", d.seed.to_string()),
        ("plant", plant_text(&d.plant).to_string()),
        ("virtual time", dur(Some(d.end_s))),
        ("events", d.events.to_string()),
        ("build", d.build.clone()),
        ("trace hash", d.trace_hash.clone()),
        ("rerun", d.replay.clone()),
    ] {
        let _ = writeln!(w, "<tr><th>{k}</th><td><code>{}</code></td></tr>", esc(&v));
    }
    for t in &d.towers {
        let _ = writeln!(
            w,
            "<tr><th>{}</th><td>{} devices; {}</td></tr>",
            esc(&t.name),
            t.devices,
            esc(&t.links.join(", "))
        );
    }
    let _ = writeln!(w, "</table>");
    if let Some(g) = &d.gameday {
        gameday_html(&mut w, g);
    }
    // The charts first (a fault lined up with its dip is the story), then every KPI.
    let _ = writeln!(w, "<h2>Charts</h2>");
    for svg in run_charts(d) {
        w.push_str(&svg);
        w.push('\n');
    }
    let _ = writeln!(
        w,
        "<h2>KPIs and SLOs</h2>\n<table><tr><th>KPI</th><th>measured</th><th>SLO</th></tr>"
    );
    for (name, value, slo) in kpi_rows(d) {
        let s = slo.map_or_else(String::new, |(n, pass)| {
            let (c, word) = if pass {
                ("pass", "PASS")
            } else {
                ("fail", "FAIL")
            };
            format!("<span class=\"{c}\">{word}</span> {}", esc(&n))
        });
        let _ = writeln!(
            w,
            "<tr><td>{}</td><td>{}</td><td>{s}</td></tr>",
            esc(&name),
            esc(&value)
        );
    }
    let _ = writeln!(w, "</table>");
    let _ = writeln!(w, "<h2>Violations</h2>");
    if d.violations.is_empty() {
        let _ = writeln!(w, "<p>None: every checked invariant held.</p>");
    } else {
        let _ = writeln!(
            w,
            "<table><tr><th>oracle</th><th>at</th><th>kind</th><th>detail</th></tr>"
        );
        for v in &d.violations {
            let _ = writeln!(
                w,
                "<tr><td class=\"fail\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&v.oracle),
                at_clock(v.at_s),
                if v.liveness { "liveness" } else { "safety" },
                esc(&v.detail)
            );
        }
        let _ = writeln!(w, "</table><p>Reproduce:</p><pre>{}</pre>", esc(&d.replay));
    }
    let _ = writeln!(w, "<h2>Fault schedule</h2>");
    if d.faults.is_empty() {
        let _ = writeln!(w, "<p>No faults were injected.</p>");
    } else {
        let _ = writeln!(
            w,
            "<table><tr><th>#</th><th>start</th><th>end</th><th>target</th><th>kind</th><th>family</th><th>detected</th><th>recovered</th></tr>"
        );
        for f in &d.faults {
            let detected = f.detected_after_s.map_or_else(
                || f.detection.clone(),
                |s| format!("after {}", dur(Some(s))),
            );
            let recovered = match (f.disrupting, f.recovered_after_s) {
                (false, _) => "not disrupting".to_string(),
                (true, Some(s)) => format!("after {}", dur(Some(s))),
                (true, None) => "never".to_string(),
            };
            let _ = writeln!(
                w,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                f.id,
                dur(Some(f.start_s)),
                dur(Some(f.end_s)),
                esc(&f.target),
                esc(&f.kind),
                esc(&f.family),
                esc(&detected),
                esc(&recovered)
            );
        }
        let _ = writeln!(w, "</table>");
    }
    let _ = writeln!(
        w,
        "<h2>KPI lines</h2><pre>{}</pre>",
        esc(&d.kpi_lines.join("\n"))
    );
    w.push_str("</body></html>\n");
    w
}

/// A run's JSON summary: verdict, KPIs, SLOs, violations per oracle, how to rerun.
pub fn run_summary(d: &RunData) -> String {
    let mut by_oracle = std::collections::BTreeMap::new();
    for v in &d.violations {
        *by_oracle.entry(v.oracle.clone()).or_insert(0u64) += 1;
    }
    let gameday = d.gameday.as_ref().map(|g| {
        json!({
            "plan": g.plan,
            "title": g.title,
            "plan_file": g.plan_file,
            "quarter": g.quarter,
            "operator": g.operator,
            "headless": g.headless,
            "hypothesis": g.hypothesis,
            "confirmed": g.confirmed,
            "reasons": g.reasons,
            "tolerances": g.tolerances,
            "action_items": g.action_items,
            "timeline_entries": g.timeline.len(),
            "lessons": g.lessons,
        })
    });
    to_json(&json!({
        "kind": if gameday.is_some() { "gameday" } else { "run" },
        "gameday": gameday,
        "scenario": d.scenario,
        "source": d.source,
        "seed": d.seed,
        "plant": d.plant,
        "build": d.build,
        "exit_code": d.exit_code,
        "verdict": d.verdict(),
        "trace_hash": d.trace_hash,
        "events": d.events,
        "end_s": d.end_s,
        "kpis": d.kpis,
        "slo": d.slo,
        "violations_by_oracle": by_oracle,
        "faults": d.faults.len(),
        "replay": d.replay,
        "failure_file": d.failure_file,
    }))
}

// ---------------------------------------------------------------------------------------
// Sweep

/// A sweep's Markdown report.
pub fn sweep_markdown(d: &SweepData) -> String {
    let mut w = String::new();
    let _ = writeln!(
        w,
        "# Sweep report: {} × seeds {}..{}\n",
        d.scenarios.join(", "),
        d.from,
        u128::from(d.from) + u128::from(d.seeds)
    );
    let _ = writeln!(
        w,
        "**Verdict: {} (exit {}).** {} runs, {} failing. Charts: [report.html](report.html).\n",
        verdict(d.exit_code),
        d.exit_code,
        d.runs,
        d.failures
    );
    let _ = writeln!(w, "| | |\n|---|---|");
    let catch = d.plant_catch_ratio.map_or_else(
        || "n/a (no plant)".to_string(),
        |r| {
            format!(
                "{r:.3} ({} caught by {})",
                plant_text(&d.plant),
                d.plant_oracle.as_deref().unwrap_or("?")
            )
        },
    );
    for (k, v) in [
        ("plant", plant_text(&d.plant).to_string()),
        ("planted-bug catch rate", catch),
        ("shard", d.shard.clone()),
        ("build", d.build.clone()),
        ("wall time", format!("{:.1} s", d.wall_s)),
    ] {
        let _ = writeln!(w, "| {k} | {} |", md_cell(&v));
    }
    let _ = writeln!(w, "\n## Failures by oracle\n");
    if d.failures_by_oracle.is_empty() {
        let _ = writeln!(w, "None.");
    } else {
        let _ = writeln!(w, "| oracle | runs |\n|---|---|");
        for (o, n) in &d.failures_by_oracle {
            let _ = writeln!(w, "| {o} | {n} |");
        }
    }
    if !d.sometimes.is_empty() {
        let _ = writeln!(
            w,
            "\n## Rare moments reached\n\n| moment | runs that reached it |\n|---|---|"
        );
        for (m, n) in &d.sometimes {
            let _ = writeln!(w, "| {m} | {n} of {} |", d.runs);
        }
    }
    let _ = writeln!(w, "\n## Failures\n");
    if d.failure_list.is_empty() {
        let _ = writeln!(w, "None.");
    }
    for f in &d.failure_list {
        let _ = writeln!(
            w,
            "- **{} seed {}** (exit {}, {}): {}\n  - replay: `{}`",
            f.scenario,
            f.seed,
            f.exit_code,
            f.oracle,
            md_cell(&f.detail),
            f.replay
        );
        match &f.shrunk {
            Some(s) => {
                let _ = writeln!(w, "  - shrunk scenario: `{s}`");
            }
            None => {
                if let Some(file) = &f.failure_file {
                    let _ = writeln!(
                        w,
                        "  - shrink: `sovereign sim shrink {}`",
                        sovereign_sim::failure::shell_quote(file)
                    );
                }
            }
        }
    }
    if (d.failure_list.len() as u64) < d.failures {
        let _ = writeln!(
            w,
            "\n({} more failures not listed.)",
            d.failures - d.failure_list.len() as u64
        );
    }
    w
}

/// A sweep's self-contained HTML report.
pub fn sweep_html(d: &SweepData) -> String {
    let mut w = String::new();
    let title = format!("Sweep report: {}", d.scenarios.join(", "));
    html_head(&mut w, &title);
    let _ = writeln!(w, "<h1>{}</h1>", esc(&title));
    let class = if d.exit_code == 0 { "ok" } else { "bad" };
    let _ = writeln!(
        w,
        "<p class=\"verdict {class}\">{} (exit {}): {} runs, {} failing</p>",
        verdict(d.exit_code),
        d.exit_code,
        d.runs,
        d.failures
    );
    let _ = writeln!(w, "<table>");
    for (k, v) in [
        (
            "seeds",
            format!("{}..{}", d.from, u128::from(d.from) + u128::from(d.seeds)),
        ),
        ("shard", d.shard.clone()),
        ("plant", plant_text(&d.plant).to_string()),
        ("planted-bug catch rate", ratio(d.plant_catch_ratio, 3)),
        ("build", d.build.clone()),
        ("wall time", format!("{:.1} s", d.wall_s)),
    ] {
        let _ = writeln!(w, "<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    let _ = writeln!(w, "</table>");
    let groups: Vec<BarGroup> = d
        .failures_by_oracle
        .iter()
        .map(|(o, n)| BarGroup {
            label: o.clone(),
            values: vec![Some(*n as f64)],
        })
        .collect();
    w.push_str(&bar_chart(
        "Failing runs by first violated oracle",
        "runs",
        &["runs"],
        &groups,
    ));
    if !d.sometimes.is_empty() {
        let _ = writeln!(
            w,
            "<h2>Rare moments reached</h2>\n<table><tr><th>moment</th><th>runs that reached it</th></tr>"
        );
        for (m, n) in &d.sometimes {
            let _ = writeln!(w, "<tr><td>{}</td><td>{n} of {}</td></tr>", esc(m), d.runs);
        }
        let _ = writeln!(w, "</table>");
    }
    let _ = writeln!(w, "\n<h2>Failures</h2>");
    if d.failure_list.is_empty() {
        let _ = writeln!(w, "<p>None.</p>");
    } else {
        let _ = writeln!(
            w,
            "<table><tr><th>scenario</th><th>seed</th><th>exit</th><th>oracle</th><th>detail</th><th>replay</th><th>shrunk</th></tr>"
        );
        for f in &d.failure_list {
            let _ = writeln!(
                w,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"fail\">{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                esc(&f.scenario),
                f.seed,
                f.exit_code,
                esc(&f.oracle),
                esc(&f.detail),
                esc(&f.replay),
                f.shrunk
                    .as_deref()
                    .map_or_else(|| "-".to_string(), |s| format!("<code>{}</code>", esc(s)))
            );
        }
        let _ = writeln!(w, "</table>");
    }
    w.push_str("</body></html>\n");
    w
}

/// A sweep's JSON summary (the data without the failure list).
pub fn sweep_summary(d: &SweepData) -> String {
    to_json(&json!({
        "kind": "sweep",
        "scenarios": d.scenarios,
        "from": d.from,
        "seeds": d.seeds,
        "shard": d.shard,
        "plant": d.plant,
        "plant_oracle": d.plant_oracle,
        "plant_catch_ratio": d.plant_catch_ratio,
        "build": d.build,
        "runs": d.runs,
        "failures": d.failures,
        "failures_by_oracle": d.failures_by_oracle,
        "exit_code": d.exit_code,
        "verdict": verdict(d.exit_code),
    }))
}
