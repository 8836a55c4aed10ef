//! The saved data of a run ([`RunData`], `run.json`): everything a report, an
//! OpenMetrics export or Grafana annotations are rebuilt from, with no simulator needed.
//!
//! Map: [`RunData`] and its rows ([`TowerInfo`], [`SloRow`], [`ViolationRow`],
//! [`FaultRow`]; the KPIs are `sovereign_sim`'s [`Kpis`], which serialise themselves);
//! for game days [`GamedayData`] ([`ToleranceRow`], [`TimelineRow`]); [`record`] runs a
//! scenario keeping what the data needs; [`RunData::build`] assembles it from a report and its series; [`target_name`]
//! writes a fault target as scenario files do.
//!
//! Not covered: rendering (see `render.rs`), sweeps (see `sweep.rs`).

use crate::series::{RunSeries, SeriesScan};
use serde::{Deserialize, Serialize};
use sovereign_sim::kpi::{Detection, Kpis};
use sovereign_sim::report::RunReport;
use sovereign_sim::scenario::{Scenario, Target};
use sovereign_sim::world::{RunOptions, World};
use std::time::Duration;

/// Version of the `run.json` layout; bumped on incompatible changes.
pub const RUN_DATA_FORMAT: u32 = 1;

/// One tower of the scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TowerInfo {
    /// Its name.
    pub name: String,
    /// Devices attached.
    pub devices: u32,
    /// Uplinks (`kind:profile`), preference order.
    pub links: Vec<String>,
}

/// One SLO check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SloRow {
    /// e.g. `availability >= 0.99`.
    pub name: String,
    /// Held.
    pub pass: bool,
    /// Measured, formatted.
    pub measured: String,
}

/// One numeric objective of the scenario's SLOs, for the SLO lines of charts and the
/// dashboards' thresholds (`sovereign_slo_objective{kpi, class}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// `availability` (a minimum ratio), `freshness_p99_seconds` (a maximum, per class),
    /// `mttr_seconds` (a maximum), `soc_lowest_ratio` (a minimum), `rpo_operations` (a
    /// maximum).
    pub kpi: String,
    /// The priority class (`P0`…), for freshness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// The bound.
    pub value: f64,
}

/// The numeric objectives of a scenario's SLOs, in [`Objective`]'s order.
pub fn objectives(slo: &sovereign_sim::scenario::Slo) -> Vec<Objective> {
    let o = |kpi: &str, class: Option<String>, value: f64| Objective {
        kpi: kpi.into(),
        class,
        value,
    };
    let mut out = Vec::new();
    if let Some(min) = slo.availability_min {
        out.push(o("availability", None, min));
    }
    for (c, max) in slo.freshness_p99_max.iter().enumerate() {
        if let Some(max) = max {
            out.push(o(
                "freshness_p99_seconds",
                Some(format!("P{c}")),
                max.as_secs_f64(),
            ));
        }
    }
    if let Some(max) = slo.mttr_max {
        out.push(o("mttr_seconds", None, max.as_secs_f64()));
    }
    if let Some(min) = slo.soc_min {
        out.push(o("soc_lowest_ratio", None, min));
    }
    out.push(o("rpo_operations", None, slo.rpo_max as f64));
    out
}

/// One invariant violation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViolationRow {
    /// The oracle's name.
    pub oracle: String,
    /// Virtual time, seconds.
    pub at_s: f64,
    /// What, in one line.
    pub detail: String,
    /// A liveness (convergence) failure rather than a safety one.
    pub liveness: bool,
}

/// One injected fault and what came of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultRow {
    /// Its id in the run.
    pub id: u64,
    /// Start, virtual seconds.
    pub start_s: f64,
    /// End, virtual seconds (the run's end if it never ended).
    pub end_s: f64,
    /// The target as scenario files write it (`tower-0/fibre`).
    pub target: String,
    /// The fault kind's name (`link-down`).
    pub kind: String,
    /// Its family (`network`, `process`, …).
    pub family: String,
    /// `at`, `never` or `excluded` (nothing in the log can detect it).
    pub detection: String,
    /// Detection − start, seconds.
    pub detected_after_s: Option<f64>,
    /// It disrupted a target's steady state.
    pub disrupting: bool,
    /// Steady again − start, seconds.
    pub recovered_after_s: Option<f64>,
    /// Towers not steady during it.
    pub towers_unsteady: u64,
}

/// Everything saved about one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunData {
    /// [`RUN_DATA_FORMAT`].
    pub format: u32,
    /// Scenario name.
    pub scenario: String,
    /// Its description.
    pub description: String,
    /// The scenario file the run came from.
    pub source: String,
    /// The seed.
    pub seed: u64,
    /// The planted bug's name, if any.
    pub plant: Option<String>,
    /// The build that ran it.
    pub build: String,
    /// Hex SHA-256 of the event trace.
    pub trace_hash: String,
    /// Events processed.
    pub events: u64,
    /// Virtual time at the end, seconds.
    pub end_s: f64,
    /// The run's exit code (0 held, 1 safety, 3 liveness, 4 SLO).
    pub exit_code: u8,
    /// The command that reruns it (a replay of the failure file when one was written).
    pub replay: String,
    /// The failure file written for it, if any.
    pub failure_file: Option<String>,
    /// Towers of the scenario.
    pub towers: Vec<TowerInfo>,
    /// Run-wide KPIs (durations in seconds: `mttd_s`, …; see `sovereign_sim::kpi`).
    pub kpis: Kpis,
    /// The KPI lines as `sim run` prints them.
    pub kpi_lines: Vec<String>,
    /// SLO checks.
    pub slo: Vec<SloRow>,
    /// The SLOs' numeric objectives.
    #[serde(default)]
    pub objectives: Vec<Objective>,
    /// Violations in the order found.
    pub violations: Vec<ViolationRow>,
    /// Every fault applied.
    pub faults: Vec<FaultRow>,
    /// Time series.
    pub series: RunSeries,
    /// The game day this run was, if it was one (absent in plain runs' `run.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gameday: Option<GamedayData>,
}

/// One KPI of a game day against the plan's tolerance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToleranceRow {
    /// The KPI.
    pub name: String,
    /// The tolerance, in words (`>= 0.95`).
    pub tolerance: String,
    /// What was measured, formatted.
    pub measured: String,
    /// Within tolerance.
    pub pass: bool,
    /// The bound as a number in the KPI's chart unit (a ratio, seconds, operations), for
    /// the tolerance line on the report's chart; `None` when not charted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<f64>,
}

/// One line of a game day's timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    /// Virtual time, seconds.
    pub at_s: f64,
    /// Who: an operator's name, `plan`, or `abort`.
    pub who: String,
    /// What happened (`note: …` for operator notes).
    pub what: String,
}

/// What a game day adds to a run's data: the plan, the verdict on its hypothesis, the
/// KPIs against its tolerances and the timeline (steps, injections, heals, checklist
/// confirmations and notes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GamedayData {
    /// The plan's file stem.
    pub plan: String,
    /// Its title.
    pub title: String,
    /// The plan file.
    pub plan_file: String,
    /// Quarter (`2026-Q3`).
    pub quarter: String,
    /// The hypothesis under test.
    pub hypothesis: String,
    /// Who ran it.
    pub operator: String,
    /// Run headless (checklists auto-confirmed).
    pub headless: bool,
    /// The hypothesis held.
    pub confirmed: bool,
    /// Every reason it did not (empty when confirmed).
    pub reasons: Vec<String>,
    /// The KPIs against the plan's steady-state tolerances.
    pub tolerances: Vec<ToleranceRow>,
    /// The timeline, in time order.
    pub timeline: Vec<TimelineRow>,
    /// Action items from the lessons-learned report.
    pub action_items: Vec<String>,
    /// Why the replay might not be exact (empty: exact).
    pub replay_caveats: Vec<String>,
    /// The lessons-learned report's file name, beside this report.
    pub lessons: String,
}

/// A fault target as scenario files write it (tower names, not indices).
pub fn target_name(sc: &Scenario, t: &Target) -> String {
    let tower = |i: usize| {
        sc.towers
            .get(i)
            .map_or_else(|| format!("tower#{i}"), |t| t.name.clone())
    };
    match t {
        Target::Origin => "origin".into(),
        Target::Tower(i) => tower(*i),
        Target::Link(i, k) => format!("{}/{k}", tower(*i)),
        Target::Wifi(i) => format!("{}/wifi", tower(*i)),
    }
}

/// Devices per tower of a scenario.
pub fn devices_of(sc: &Scenario) -> Vec<u32> {
    sc.towers.iter().map(|t| t.devices).collect()
}

/// The last point of a world's series: its virtual time now, in whole seconds up.
pub fn series_end(world: &World) -> u64 {
    world.now().as_micros().div_ceil(1_000_000)
}

/// Run `sc` to its end as [`sovereign_sim::run`] does, also sampling its series as it goes
/// (same report, same trace hash).
pub fn record(sc: &Scenario, opts: &RunOptions) -> (RunReport, RunSeries) {
    let mut world = World::new(sc, opts);
    let mut scan = SeriesScan::new(sc);
    world.run_observed(&mut scan);
    let series = scan.finish(series_end(&world));
    (world.finish(), series)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl RunData {
    /// Assemble the data of a run from its report and series. `source`: the scenario
    /// file; `replay`: the command that reruns it; `failure_file`: the failure file
    /// written for it, if any.
    pub fn build(
        sc: &Scenario,
        report: &RunReport,
        mut series: RunSeries,
        source: &str,
        build: &str,
        replay: String,
        failure_file: Option<String>,
    ) -> RunData {
        let k = &report.kpis;
        series.complete(&k.fault_outcomes, &report.violations, k.rpo);
        let faults = k
            .fault_outcomes
            .iter()
            .map(|f| {
                let (detection, detected_after_s) = match f.detected {
                    Detection::Excluded => ("excluded", None),
                    Detection::Never => ("never", None),
                    Detection::At(t) => ("at", Some(secs(t.saturating_since(f.start)))),
                };
                FaultRow {
                    id: f.id,
                    start_s: f.start.as_secs_f64(),
                    end_s: f.end.as_secs_f64(),
                    target: target_name(sc, &f.spec.target),
                    kind: f.spec.kind.name().to_string(),
                    family: format!("{:?}", f.spec.kind.family()).to_lowercase(),
                    detection: detection.to_string(),
                    detected_after_s,
                    disrupting: f.disrupting,
                    recovered_after_s: f.recovered.map(|r| secs(r.saturating_since(f.start))),
                    towers_unsteady: f.towers_unsteady,
                }
            })
            .collect();
        RunData {
            format: RUN_DATA_FORMAT,
            scenario: report.scenario.clone(),
            description: sc.description.clone(),
            source: source.to_string(),
            seed: report.seed,
            plant: report.plant.map(|p| p.name().to_string()),
            build: build.to_string(),
            trace_hash: report.trace_hash.clone(),
            events: report.events,
            end_s: report.end.as_secs_f64(),
            exit_code: report.exit_code(),
            replay,
            failure_file,
            towers: sc
                .towers
                .iter()
                .map(|t| TowerInfo {
                    name: t.name.clone(),
                    devices: t.devices,
                    links: t
                        .links
                        .iter()
                        .map(|l| format!("{}:{}", l.kind, l.profile.name))
                        .collect(),
                })
                .collect(),
            kpis: Kpis {
                // Empty what run.json leaves out (the `#[serde(skip)]` fields of `Kpis`;
                // the series and faults are saved here apart), so that a report renders
                // the same from a run as from its data read back. The tower names and
                // per-tower reads stay: the KPI table prints them as the CLI does.
                read_periods: Vec::new(),
                fault_outcomes: Vec::new(),
                ..k.clone()
            },
            kpi_lines: k.lines(),
            slo: report
                .slo
                .iter()
                .map(|c| SloRow {
                    name: c.name.clone(),
                    pass: c.pass,
                    measured: c.measured.clone(),
                })
                .collect(),
            objectives: objectives(&sc.slo),
            violations: report
                .violations
                .iter()
                .map(|v| ViolationRow {
                    oracle: v.oracle.name().to_string(),
                    at_s: v.at.as_secs_f64(),
                    detail: v.detail.clone(),
                    liveness: v.liveness,
                })
                .collect(),
            faults,
            series,
            gameday: None,
        }
    }

    /// The scenario's objective for `kpi` (and `class`), if it sets one.
    pub fn objective(&self, kpi: &str, class: Option<&str>) -> Option<f64> {
        self.objectives
            .iter()
            .find(|o| o.kpi == kpi && o.class.as_deref() == class)
            .map(|o| o.value)
    }

    /// The verdict in a word, from the exit code.
    pub fn verdict(&self) -> &'static str {
        verdict(self.exit_code)
    }
}

/// An exit code in a word.
pub fn verdict(code: u8) -> &'static str {
    match code {
        0 => "held",
        1 => "safety violation",
        3 => "liveness violation",
        4 => "SLO missed",
        _ => "error",
    }
}
