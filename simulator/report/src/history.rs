//! Run history: every report written into a reports folder appends one line to its
//! `history.jsonl` ([`HistoryEntry`]); `sovereign runs` lists the history with each
//! scenario's resilience score and trend ([`trends`], [`runs_text`]) and writes the
//! folder's `index.html` ([`index_html`]), which links every report still on disk.
//!
//! The history outlives the report folders: a rerun of the same scenario and seed
//! overwrites its folder, but its line stays, so a nightly job's scores form a trend.
//!
//! Map: [`HISTORY_FILE`], [`HistoryEntry`] (`of`), [`parse_history`] (line-numbered
//! errors), [`Trend`] / [`trends`], [`runs_text`], [`index_html`].
//!
//! Not covered: the wall clock (the CLI stamps each entry: a run itself never sees it),
//! reading the folders (the CLI does, with [`parse_history`] on the file's text).

use crate::data::RunData;
use crate::render::{ReportError, html_head};
use crate::svg::esc;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The history file in a reports folder.
pub const HISTORY_FILE: &str = "history.jsonl";
/// Most history lines read (older ones beyond it are left out, and said so).
pub const HISTORY_LINES_MAX: usize = 100_000;
/// Runs of a scenario the rolling mean covers.
pub const MEAN_OF: usize = 5;

/// One run or game day in the history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When its report was written, UTC (`2026-12-05T21:26:17Z`).
    pub at: String,
    /// Its report folder, relative to the reports folder.
    pub dir: String,
    /// `run` or `gameday`.
    pub kind: String,
    /// The scenario's name.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// The planted bug, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plant: Option<String>,
    /// The run's exit code.
    pub exit_code: u8,
    /// The verdict in a word (`pass`, `safety`, …).
    pub verdict: String,
    /// The resilience score, 0 to 100.
    pub score: Option<f64>,
    /// A game day's hypothesis: confirmed or refuted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<bool>,
    /// The build that ran it.
    pub build: String,
    /// Its trace hash (same hash, same run).
    pub trace_hash: String,
}

impl HistoryEntry {
    /// The entry for run `d`, written into folder `dir` at `at` (UTC text).
    pub fn of(d: &RunData, dir: &str, at: &str) -> HistoryEntry {
        HistoryEntry {
            at: at.to_string(),
            dir: dir.to_string(),
            kind: if d.gameday.is_some() {
                "gameday"
            } else {
                "run"
            }
            .into(),
            scenario: d.scenario.clone(),
            seed: d.seed,
            plant: d.plant.clone(),
            exit_code: d.exit_code,
            verdict: d.verdict().into(),
            score: d.kpis.resilience_score,
            confirmed: d.gameday.as_ref().map(|g| g.confirmed),
            build: d.build.clone(),
            trace_hash: d.trace_hash.clone(),
        }
    }

    /// One JSON line, with its newline.
    pub fn line(&self) -> String {
        let mut l = serde_json::to_string(self).expect("an entry serialises");
        l.push('\n');
        l
    }

    /// The verdict for people: a game day's hypothesis, else the run's verdict.
    fn outcome(&self) -> String {
        match self.confirmed {
            Some(true) => "confirmed".into(),
            Some(false) => "refuted".into(),
            None => self.verdict.clone(),
        }
    }
}

/// The entries of a history file's text (`file` names it in errors), oldest first as
/// written; blank lines are skipped. Returns the entries and how many older lines were
/// left out beyond [`HISTORY_LINES_MAX`].
pub fn parse_history(text: &str, file: &str) -> Result<(Vec<HistoryEntry>, usize), ReportError> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let skipped = lines.len().saturating_sub(HISTORY_LINES_MAX);
    let mut out = Vec::with_capacity(lines.len() - skipped);
    for (i, l) in &lines[skipped..] {
        let e: HistoryEntry = serde_json::from_str(l).map_err(|e| ReportError::Json {
            path: file.to_string(),
            line: i + 1,
            column: e.column(),
            message: e.to_string(),
        })?;
        out.push(e);
    }
    Ok((out, skipped))
}

/// A scenario's score over time.
#[derive(Clone, Debug, PartialEq)]
pub struct Trend {
    /// The scenario.
    pub scenario: String,
    /// Its runs in the history (game days included).
    pub runs: usize,
    /// The latest run's score.
    pub latest: Option<f64>,
    /// The run before it.
    pub previous: Option<f64>,
    /// The mean of the last [`MEAN_OF`] scores.
    pub mean: Option<f64>,
    /// Every score, oldest first (the sparkline).
    pub scores: Vec<f64>,
}

impl Trend {
    /// Latest − previous, when both exist.
    pub fn change(&self) -> Option<f64> {
        Some(self.latest? - self.previous?)
    }

    /// The change as an arrow and a signed figure: `↑ +2.5`, `↓ -10.0`, `= 0.0`, `–`.
    pub fn change_text(&self) -> String {
        match self.change() {
            None => "–".into(),
            Some(c) if c > 0.05 => format!("↑ +{c:.1}"),
            Some(c) if c < -0.05 => format!("↓ {c:.1}"),
            Some(_) => "= 0.0".into(),
        }
    }
}

/// Each scenario's trend, by name, from entries in time order.
pub fn trends(entries: &[HistoryEntry]) -> Vec<Trend> {
    let mut by: BTreeMap<&str, Vec<&HistoryEntry>> = BTreeMap::new();
    for e in entries {
        by.entry(e.scenario.as_str()).or_default().push(e);
    }
    by.into_iter()
        .map(|(scenario, es)| {
            let scores: Vec<f64> = es.iter().filter_map(|e| e.score).collect();
            let last = &scores[scores.len().saturating_sub(MEAN_OF)..];
            Trend {
                scenario: scenario.to_string(),
                runs: es.len(),
                latest: scores.last().copied(),
                previous: scores.len().checked_sub(2).map(|i| scores[i]),
                mean: (!last.is_empty()).then(|| last.iter().sum::<f64>() / last.len() as f64),
                scores,
            }
        })
        .collect()
}

fn opt1(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.1}"))
}

/// The history as `sovereign runs` prints it: the runs, newest first (at most `limit`),
/// then one line per scenario with its score, rolling mean and trend.
pub fn runs_text(entries: &[HistoryEntry], limit: usize) -> String {
    let mut w = String::new();
    if entries.is_empty() {
        w.push_str("no runs yet: `sovereign sim run … --report`, `sovereign gameday …` and the console write them\n");
        return w;
    }
    let _ = writeln!(
        w,
        "{:<20}  {:<24} {:>6}  {:<8} {:<10} {:>6}  report",
        "written (UTC)", "scenario", "seed", "kind", "verdict", "score"
    );
    for e in entries.iter().rev().take(limit) {
        let name = match &e.plant {
            Some(p) => format!("{} +{p}", e.scenario),
            None => e.scenario.clone(),
        };
        let _ = writeln!(
            w,
            "{:<20}  {:<24} {:>6}  {:<8} {:<10} {:>6}  {}",
            e.at.replace('T', " "),
            name,
            e.seed,
            e.kind,
            e.outcome(),
            opt1(e.score),
            e.dir
        );
    }
    if entries.len() > limit {
        let _ = writeln!(w, "… {} older", entries.len() - limit);
    }
    let _ = writeln!(
        w,
        "\n{:<24} {:>5} {:>7} {:>9}  trend (latest − previous)",
        "scenario",
        "runs",
        "score",
        format!("mean/{MEAN_OF}")
    );
    for t in trends(entries) {
        let _ = writeln!(
            w,
            "{:<24} {:>5} {:>7} {:>9}  {}",
            t.scenario,
            t.runs,
            opt1(t.latest),
            opt1(t.mean),
            t.change_text()
        );
    }
    w
}

/// A score sparkline, 0 to 100, as inline SVG.
fn sparkline(scores: &[f64]) -> String {
    const W: f64 = 160.0;
    const H: f64 = 28.0;
    if scores.is_empty() {
        return String::new();
    }
    let n = scores.len().max(2) as f64 - 1.0;
    let pts: Vec<String> = scores
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let x = if scores.len() == 1 {
                W / 2.0
            } else {
                i as f64 / n * W
            };
            format!("{x:.1},{:.1}", H - s.clamp(0.0, 100.0) / 100.0 * H)
        })
        .collect();
    let last = pts.last().cloned().unwrap_or_default();
    let (lx, ly) = last.split_once(',').unwrap_or(("0", "0"));
    format!(
        "<svg class=\"spark\" width=\"{W}\" height=\"{H}\" viewBox=\"-3 -3 {} {}\" role=\"img\" \
         aria-label=\"score over {} runs\"><polyline fill=\"none\" stroke=\"#0072b2\" \
         stroke-width=\"1.5\" points=\"{}\"/><circle cx=\"{lx}\" cy=\"{ly}\" r=\"2.5\" \
         fill=\"#0072b2\"/></svg>",
        W + 6.0,
        H + 6.0,
        scores.len(),
        pts.join(" ")
    )
}

/// A score's colour class: green from 80, orange from 50, red below (the dashboard's
/// stat uses the same steps).
fn score_class(s: Option<f64>) -> &'static str {
    match s {
        Some(s) if s >= 80.0 => "pass",
        Some(s) if s >= 50.0 => "warn",
        Some(_) => "fail",
        None => "",
    }
}

/// A folder name as one percent-encoded URL path segment, or `None` when it is not a
/// single plain folder name (empty, `.`, `..`, a path, a control character): an edited
/// history cannot make the index link outside its folder.
fn link_segment(dir: &str) -> Option<String> {
    if dir.is_empty()
        || dir == "."
        || dir == ".."
        || dir.contains(['/', '\\'])
        || dir.chars().any(char::is_control)
    {
        return None;
    }
    Some(
        dir.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect(),
    )
}

/// The reports folder's `index.html`: each scenario's score, mean and trend with a
/// sparkline, then every run newest first, linked to its report when `on_disk(entry)`
/// says its folder still holds that run.
pub fn index_html(entries: &[HistoryEntry], on_disk: impl Fn(&HistoryEntry) -> bool) -> String {
    let mut w = String::new();
    html_head(&mut w, "Sovereign: runs and game days");
    w.push_str(
        "<style>.warn{color:#b35c00;font-weight:bold}svg.spark{vertical-align:middle}</style>\n",
    );
    w.push_str("<h1>Runs and game days</h1>\n");
    let _ = writeln!(
        w,
        "<p>{} entries from <code>{HISTORY_FILE}</code>. The resilience score (0–100) weighs each \
         KPI against the scenario's own SLOs, and is 0 when an invariant broke or acknowledged \
         operations were lost (docs/SCENARIOS.md, “Resilience score”).</p>",
        entries.len()
    );
    w.push_str(
        "<h2>Scenarios</h2>\n<table><tr><th>scenario</th><th>runs</th><th>latest score</th>",
    );
    let _ = writeln!(
        w,
        "<th>mean of last {MEAN_OF}</th><th>trend</th><th>scores over time</th></tr>"
    );
    for t in trends(entries) {
        let _ = writeln!(
            w,
            "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&t.scenario),
            t.runs,
            score_class(t.latest),
            opt1(t.latest),
            opt1(t.mean),
            esc(&t.change_text()),
            sparkline(&t.scores)
        );
    }
    w.push_str(
        "</table>\n<h2>Every run, newest first</h2>\n<table><tr><th>written (UTC)</th>\
        <th>scenario</th><th>seed</th><th>kind</th><th>verdict</th><th>score</th><th>build</th>\
        <th>report</th></tr>\n",
    );
    for e in entries.iter().rev() {
        let report = match link_segment(&e.dir).filter(|_| on_disk(e)) {
            Some(seg) => format!("<a href=\"{seg}/report.html\">{}</a>", esc(&e.dir)),
            None => format!("{} <small>(overwritten or removed)</small>", esc(&e.dir)),
        };
        let ok = matches!(e.confirmed, Some(true)) || (e.confirmed.is_none() && e.exit_code == 0);
        let _ = writeln!(
            w,
            "<tr><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td>\
             <td class=\"{}\">{}</td><td><code>{}</code></td><td>{report}</td></tr>",
            esc(&e.at.replace('T', " ")),
            esc(&e.scenario),
            e.plant
                .as_ref()
                .map(|p| format!(" <small>+{}</small>", esc(p)))
                .unwrap_or_default(),
            e.seed,
            esc(&e.kind),
            if ok { "pass" } else { "fail" },
            esc(&e.outcome()),
            score_class(e.score),
            opt1(e.score),
            esc(&e.build),
        );
    }
    w.push_str("</table>\n</body></html>\n");
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: &str, scenario: &str, score: f64, exit_code: u8) -> HistoryEntry {
        HistoryEntry {
            at: at.into(),
            dir: format!("{scenario}-seed1"),
            kind: "run".into(),
            scenario: scenario.into(),
            seed: 1,
            plant: None,
            exit_code,
            verdict: if exit_code == 0 { "pass" } else { "safety" }.into(),
            score: Some(score),
            confirmed: None,
            build: "test".into(),
            trace_hash: "ab".into(),
        }
    }

    #[test]
    fn trends_follow_each_scenario_in_time_order() {
        let es = vec![
            entry("2026-12-01T00:00:00Z", "storm", 80.0, 0),
            entry("2026-12-02T00:00:00Z", "fibre-cut", 100.0, 0),
            entry("2026-12-03T00:00:00Z", "storm", 90.0, 0),
            entry("2026-12-04T00:00:00Z", "storm", 0.0, 1),
        ];
        let t = trends(&es);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].scenario.as_str(), t[0].runs), ("fibre-cut", 1));
        assert_eq!(t[0].change(), None);
        assert_eq!(t[0].change_text(), "–");
        let storm = &t[1];
        assert_eq!((storm.latest, storm.previous), (Some(0.0), Some(90.0)));
        assert_eq!(storm.mean, Some(170.0 / 3.0));
        assert_eq!(storm.change_text(), "↓ -90.0");
        assert_eq!(storm.scores, [80.0, 90.0, 0.0]);
        // The rolling mean covers the last MEAN_OF scores only.
        let many: Vec<HistoryEntry> = (0..7)
            .map(|i| entry("2026-12-01T00:00:00Z", "s", f64::from(i) * 10.0, 0))
            .collect();
        assert_eq!(trends(&many)[0].mean, Some(40.0));
        let text = runs_text(&es, 2);
        assert!(
            text.contains("storm") && text.contains("… 2 older"),
            "{text}"
        );
        assert!(text.contains("↓ -90.0"), "{text}");
    }

    #[test]
    fn a_bad_history_line_is_named_by_line() {
        let good = entry("2026-12-01T00:00:00Z", "storm", 80.0, 0).line();
        let text = format!("{good}\n{good}{{\"at\": 3}}\n");
        let e = parse_history(&text, "reports/history.jsonl").unwrap_err();
        assert!(
            e.to_string().starts_with("reports/history.jsonl: line 4,"),
            "{e}"
        );
        let (es, skipped) = parse_history(&format!("{good}{good}"), "h").expect("parses");
        assert_eq!((es.len(), skipped), (2, 0));
    }

    #[test]
    fn the_index_links_reports_on_disk_and_escapes_names() {
        let mut es = vec![entry("2026-12-01T00:00:00Z", "storm", 80.0, 0)];
        es.push(HistoryEntry {
            dir: "gone".into(),
            scenario: "<b>x</b>".into(),
            ..entry("2026-12-02T00:00:00Z", "x", 30.0, 1)
        });
        es.push(HistoryEntry {
            dir: "../../etc".into(),
            ..entry("2026-12-03T00:00:00Z", "y", 30.0, 0)
        });
        es.push(HistoryEntry {
            dir: "a b#c".into(),
            ..entry("2026-12-04T00:00:00Z", "z", 30.0, 0)
        });
        let html = index_html(&es, |e| e.dir != "gone");
        assert!(html.contains("<a href=\"storm-seed1/report.html\">"));
        assert!(html.contains("gone <small>(overwritten or removed)</small>"));
        // No link out of the folder; odd names are encoded.
        assert!(!html.contains("href=\"../"), "{html}");
        assert!(html.contains("<a href=\"a%20b%23c/report.html\">a b#c</a>"));
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;") && !html.contains("<b>x</b>"));
        assert!(html.contains("<td class=\"fail\">30.0</td>"));
    }
}
