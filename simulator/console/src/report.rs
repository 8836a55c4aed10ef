//! The end of a game day: a lessons-learned report (Markdown) and a replay file, written
//! under `reports/<plan>-<seed>/` (or a directory the operator names).
//!
//! The report holds the timeline (plan steps, operator injections and heals, checklist
//! confirmations — auto-confirmed ones marked — and notes), whether the hypothesis was
//! confirmed or refuted and why, the KPIs against the plan's tolerances, the operators'
//! notes, and action items derived from what went wrong. The replay file is the
//! simulator's failure-file format (`sovereign_sim::failure`), written even when nothing
//! failed, with the operator's injections in its explicit schedule, so
//! `sovereign sim replay` re-runs the whole game day and checks its trace hash. Beside
//! them, the run's data with the game day attached ([`run_data`], `run.json`) and the
//! reports every run gets, rendered by `sovereign_report`: `report.md`,
//! `report.html` (charts, with the timeline as numbered markers) and `summary.json`;
//! `sovereign report DIR` rebuilds those three from `run.json`.
//!
//! Not covered: rendering the charts (`sovereign_report`); running anything.

use crate::gameday::{Answer, Confirmation, Outcome};
use crate::plan::SteadyState;
use crate::ui::clock;
use sovereign_logic::Time;
use sovereign_logic::content::Priority;
use sovereign_report::RunData;
use sovereign_report::data::{GamedayData, TimelineRow};
use sovereign_sim::failure::{FailureFile, replay_command};
use sovereign_sim::kpi::{Kpis, format_us};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// File name of the report inside its directory.
pub const LESSONS_FILE: &str = "lessons-learned.md";

/// One KPI against its tolerance (the row the run reports show).
pub use sovereign_report::data::ToleranceRow as Tolerance;

/// Check the final KPIs against the plan's steady state.
pub fn tolerances(ss: &SteadyState, kpis: &Kpis, violations: usize) -> Vec<Tolerance> {
    let mut out = Vec::new();
    if let Some(min) = ss.availability_min {
        out.push(Tolerance {
            name: "availability".into(),
            tolerance: format!(">= {min}"),
            measured: format!("{:.4}", kpis.availability),
            pass: kpis.availability >= min,
            bound: Some(min),
        });
    }
    for p in Priority::ALL {
        if let Some(max) = ss.freshness_p99_max[p.index()] {
            let got = kpis.freshness[p.index()].p99_us;
            out.push(Tolerance {
                name: format!("freshness p99 {p}"),
                tolerance: format!("<= {}", sovereign_sim::scenario::format_duration(max)),
                measured: got.map_or("n/a".into(), format_us),
                pass: got.is_none_or(|us| us <= max.as_micros() as u64),
                bound: Some(max.as_secs_f64()),
            });
        }
    }
    if let Some(max) = ss.backlog_max {
        out.push(Tolerance {
            name: "outbox backlog (max)".into(),
            tolerance: format!("<= {max}"),
            measured: kpis.backlog_max.to_string(),
            pass: kpis.backlog_max <= max,
            bound: Some(max as f64),
        });
    }
    if let Some(min) = ss.soc_min {
        out.push(Tolerance {
            name: "lowest battery SoC".into(),
            tolerance: format!(">= {min}"),
            measured: kpis.soc_lowest.map_or("n/a".into(), |s| format!("{s:.3}")),
            pass: kpis.soc_lowest.is_none_or(|s| s >= min),
            bound: Some(min),
        });
    }
    out.push(Tolerance {
        name: "invariant violations".into(),
        tolerance: format!("<= {}", ss.violations_max),
        measured: violations.to_string(),
        pass: violations as u64 <= ss.violations_max,
        bound: None,
    });
    out
}

/// The checklist items answered `answer`.
fn answered(o: &Outcome, answer: Answer) -> impl Iterator<Item = &Confirmation> {
    o.gameday
        .confirmations
        .iter()
        .filter(move |c| c.answer == answer)
}

/// Whether the hypothesis held, and every reason it did not.
pub fn verdict(o: &Outcome) -> (bool, Vec<String>) {
    let r = &o.finished.report;
    let mut why = Vec::new();
    if let Some((at, reason)) = &o.gameday.aborted {
        why.push(format!("aborted at {}: {reason}", clock(*at)));
    }
    for ob in o.gameday.observed.iter().filter(|x| !x.pass) {
        why.push(format!(
            "step {} at {}: expected {} — saw {}",
            ob.step + 1,
            clock(ob.at),
            ob.expect,
            ob.seen
        ));
    }
    for c in answered(o, Answer::No) {
        why.push(format!(
            "checklist at {}: \"{}\" — {} answered no: {}",
            clock(c.at),
            c.item,
            c.by,
            c.comment
        ));
    }
    for t in tolerances(&o.gameday.plan.steady_state, &r.kpis, r.violations.len()) {
        if !t.pass {
            why.push(format!(
                "{} out of tolerance: {} (tolerance {})",
                t.name, t.measured, t.tolerance
            ));
        }
    }
    (why.is_empty(), why)
}

/// The lessons-learned Markdown.
pub fn lessons_learned(o: &Outcome, replay_file: &str) -> String {
    let plan = &o.gameday.plan;
    let r = &o.finished.report;
    let mut md = String::new();
    let mut line = |s: String| {
        md.push_str(&s);
        md.push('\n');
    };
    line(format!("# Lessons learned: {}", plan.title));
    line(String::new());
    if !plan.quarter.is_empty() {
        line(format!(
            "- Quarter: {}{}",
            plan.quarter,
            if plan.date.is_empty() {
                String::new()
            } else {
                format!(" ({})", plan.date)
            }
        ));
    }
    if plan.free_play {
        line("- Plan: none (free play in the console)".into());
    } else {
        line(format!("- Plan: `{}`", plan.file));
    }
    line(format!(
        "- Scenario: `{}` (`{}`), seed {}",
        plan.scenario, r.scenario, r.seed
    ));
    let roles = &plan.roles;
    if !(roles.facilitator.is_empty() && roles.operators.is_empty() && roles.observers.is_empty()) {
        line(format!(
            "- Facilitator: {}; operators: {}; observers: {}",
            or_none(&roles.facilitator),
            or_none(&roles.operators.join(", ")),
            or_none(&roles.observers.join(", "))
        ));
    }
    line(format!(
        "- Run by: {}{}",
        o.operator,
        if o.headless {
            " (headless: checklist items auto-confirmed)"
        } else {
            ""
        }
    ));
    if !plan.blast_radius.towers.is_empty() {
        line(format!(
            "- Blast radius: {}{}",
            plan.blast_radius.towers.join(", "),
            if plan.blast_radius.note.is_empty() {
                String::new()
            } else {
                format!(" — {}", plan.blast_radius.note)
            }
        ));
    }
    line(String::new());
    line("## Hypothesis".into());
    line(String::new());
    line(format!("> {}", plan.hypothesis));
    line(String::new());
    let (confirmed, why) = verdict(o);
    if confirmed {
        line(
            "**Confirmed.** Every observation matched and every KPI stayed within tolerance."
                .into(),
        );
    } else {
        line("**Refuted.**".into());
        line(String::new());
        for w in &why {
            line(format!("- {w}"));
        }
    }
    line(String::new());
    line("## Timeline".into());
    line(String::new());
    line("| virtual time | who | what |".into());
    line("|---|---|---|".into());
    for e in timeline_rows(o) {
        line(format!(
            "| {} | {} | {} |",
            clock(Time::from_micros((e.at_s * 1e6).round() as u64)),
            cell(&e.who),
            cell(&e.what)
        ));
    }
    line(String::new());
    line("## KPIs against tolerances".into());
    line(String::new());
    line("| KPI | tolerance | measured | |".into());
    line("|---|---|---|---|".into());
    for t in tolerances(&plan.steady_state, &r.kpis, r.violations.len()) {
        line(format!(
            "| {} | {} | {} | {} |",
            t.name,
            t.tolerance,
            t.measured,
            if t.pass { "ok" } else { "**out**" }
        ));
    }
    line(String::new());
    line("<details><summary>All KPIs</summary>".into());
    line(String::new());
    line("```".into());
    for l in r.kpis.lines() {
        line(l);
    }
    line("```".into());
    line("</details>".into());
    line(String::new());
    line("## Invariants".into());
    line(String::new());
    if r.violations.is_empty() {
        line("All invariants held.".into());
    } else {
        for v in &r.violations {
            line(format!(
                "- **{}** at {}: {}",
                v.oracle,
                clock(v.at),
                v.detail
            ));
        }
    }
    line(String::new());
    line("## Operator notes".into());
    line(String::new());
    if o.notes.is_empty() {
        line("(none)".into());
    }
    for n in &o.notes {
        line(format!("- {} — {}: {}", clock(n.at), n.by, n.text));
    }
    line(String::new());
    line("## Action items".into());
    line(String::new());
    let items = action_items(o, &why);
    for i in &items {
        line(format!("- [ ] {i}"));
    }
    line(String::new());
    line("## Replay".into());
    line(String::new());
    line(format!(
        "The run, operator injections included, replays with `{}` (trace hash `{}`).",
        replay_command(replay_file),
        r.trace_hash
    ));
    for c in &o.finished.replay_caveats {
        line(format!("- caveat: {c}"));
    }
    md
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "(none)" } else { s }
}

/// A Markdown table cell: no pipes or newlines.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Action items: one per failed expectation, violation, tolerance miss and abort, plus
/// follow-ups for unconfirmed or auto-confirmed checklists.
pub fn action_items(o: &Outcome, why: &[String]) -> Vec<String> {
    let mut items: Vec<String> = why.iter().map(|w| format!("Investigate: {w}")).collect();
    for v in &o.finished.report.violations {
        items.push(format!(
            "Fix the {} violation at {}; reproduce with the replay file",
            v.oracle,
            clock(v.at)
        ));
    }
    for c in answered(o, Answer::Skip) {
        items.push(format!(
            "Check what the game day skipped: \"{}\" ({} at {}{})",
            c.item,
            c.by,
            clock(c.at),
            if c.comment.is_empty() {
                String::new()
            } else {
                format!(": {}", c.comment)
            }
        ));
    }
    for (at, who, fault, reason) in &o.gameday.overrides {
        items.push(format!(
            "Review the blast radius: {who} injected {fault} outside it at {}: \"{reason}\"",
            clock(*at)
        ));
    }
    if o.gameday.confirmations.iter().any(|c| c.auto) {
        items.push(
            "Checklist items were auto-confirmed (headless run): walk them with an operator at \
             the next game day"
                .into(),
        );
    }
    if !o.gameday.is_done() {
        items.push("The game day ended before its plan did: schedule the remaining steps".into());
    }
    if items.is_empty() {
        items.push(
            "No gaps found: widen the blast radius or combine faults at the next game day".into(),
        );
    }
    items
}

/// Where a game day's report goes by default: `reports/<plan>-<seed>`.
pub fn default_dir(plan_name: &str, seed: u64) -> PathBuf {
    PathBuf::from("reports").join(format!("{plan_name}-{seed}"))
}

/// The files written.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    /// `lessons-learned.md`.
    pub lessons: PathBuf,
    /// The replay file (`sovereign sim replay` accepts it).
    pub replay: PathBuf,
    /// The run's data with the game day attached (`run.json`; `report.md`,
    /// `report.html` and `summary.json` are rendered from it), when the source kept
    /// its time series.
    pub data: Option<RunData>,
}

/// The timeline as the reports show it: plan steps, injections, heals, confirmations
/// and operator notes (`note: …`), in time order.
fn timeline_rows(o: &Outcome) -> Vec<TimelineRow> {
    let mut rows: Vec<(sovereign_logic::Time, String, String)> = o
        .gameday
        .timeline
        .iter()
        .map(|e| (e.at, e.who.clone(), e.what.clone()))
        .collect();
    for n in &o.notes {
        rows.push((n.at, n.by.clone(), format!("note: {}", n.text)));
    }
    rows.sort_by_key(|(at, _, _)| *at);
    rows.into_iter()
        .map(|(at, who, what)| TimelineRow {
            at_s: Duration::from_micros(at.as_micros()).as_secs_f64(),
            who,
            what,
        })
        .collect()
}

/// The run's data for the HTML/Markdown/JSON reports and the exports, with the game day
/// attached; `None` when the source kept no time series.
pub fn run_data(o: &Outcome, replay_file: &str, build: &str) -> Option<RunData> {
    let series = o.finished.series.clone()?;
    let plan = &o.gameday.plan;
    let r = &o.finished.report;
    let mut d = RunData::build(
        &o.finished.scenario,
        r,
        series,
        &plan.scenario,
        build,
        replay_command(replay_file),
        Some(replay_file.to_string()),
    );
    let about = o.finished.scenario.description.trim();
    d.description = if plan.free_play {
        format!(
            "Free play in the console on scenario {}{}{about} The faults below are the \
             scenario's own and those operators injected by hand (the timeline names who).",
            r.scenario,
            if about.is_empty() { "." } else { ": " },
        )
    } else {
        // The scenario's own description may say "no faults": here the plan and its
        // operators brought them.
        format!(
            "Scenario {}{}{about} Every fault below was injected by the game day's plan or \
             its operators.",
            r.scenario,
            if about.is_empty() { "." } else { ": " },
        )
    };
    let (confirmed, reasons) = verdict(o);
    d.gameday = Some(GamedayData {
        plan: plan.name.clone(),
        title: plan.title.clone(),
        plan_file: plan.file.clone(),
        quarter: plan.quarter.clone(),
        hypothesis: plan.hypothesis.clone(),
        operator: o.operator.clone(),
        headless: o.headless,
        confirmed,
        tolerances: tolerances(&plan.steady_state, &r.kpis, r.violations.len()),
        timeline: timeline_rows(o),
        action_items: action_items(o, &reasons),
        reasons,
        replay_caveats: o.finished.replay_caveats.clone(),
        lessons: LESSONS_FILE.into(),
    });
    Some(d)
}

/// Write the lessons-learned report, the replay file and (when the source kept its time
/// series) the run's data with `report.md`, `report.html` (charts) and `summary.json`
/// into `dir` (created if missing). `build` names the build in the replay file.
pub fn write(dir: &Path, o: &Outcome, build: &str) -> std::io::Result<Written> {
    std::fs::create_dir_all(dir)?;
    let plan = &o.gameday.plan;
    let report = o.finished.replay_report();
    let file = FailureFile::from_report(&plan.scenario, &o.finished.scenario, &report, build);
    let replay = dir.join(format!("{}-seed{}.replay.toml", plan.name, report.seed));
    std::fs::write(&replay, file.to_toml())?;
    let replay_name = replay.display().to_string();
    let lessons = dir.join(LESSONS_FILE);
    std::fs::write(&lessons, lessons_learned(o, &replay_name))?;
    let data = run_data(o, &replay_name, build);
    if let Some(d) = &data {
        sovereign_report::write_run(dir, d).map_err(std::io::Error::other)?;
    }
    Ok(Written {
        lessons,
        replay,
        data,
    })
}
