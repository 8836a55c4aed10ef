//! Game-day plans (`gamedays/*.toml`): the model and its parser.
//!
//! A plan is what a chaos team writes before a game day: title, quarter and date, roles,
//! the hypothesis, the steady state (KPI tolerances), the scenario it runs on, the blast
//! radius, abort conditions, the steps (inject, wait, observe, checklist) and the
//! rollback. `docs/GAMEDAYS.md` documents the format.
//!
//! Errors name the file, the line and the field, and say what was expected; unknown keys
//! are errors (the readers of `sovereign_sim::tomlspan`, shared with the scenario parser,
//! on toml's spanned `DeTable`). An inject step's `fault` uses the scenario file's `[[fault]]` grammar and
//! is checked by the scenario parser itself against the plan's scenario
//! ([`Plan::resolve`]), so both files always mean the same thing by a fault.
//!
//! Not covered: running a plan (see `gameday.rs`).

use sovereign_logic::content::Priority;
use sovereign_logic::protocol::LinkKind;
use sovereign_sim::scenario::parse::resolve_targets;
use sovereign_sim::scenario::{FaultKind, FaultSpec, Scenario, Target};
use sovereign_sim::tomlspan::{Ctx, Res, SpanError, Tbl, Val};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use toml::de::{DeTable, DeValue};

/// Largest plan file, bytes.
pub const TEXT_BYTES_MAX: usize = 256 * 1024;
/// Most steps in a plan.
pub const STEPS_MAX: usize = 256;
/// Most abort conditions.
pub const ABORTS_MAX: usize = 32;
/// Most entries in a list (operators, observers, checklist items, towers).
pub const LIST_MAX: usize = 64;
/// Longest text field, bytes.
pub const TEXT_LEN_MAX: usize = 4096;
/// Longest wait or game-day time.
pub const DURATION_MAX: Duration = Duration::from_secs(30 * 86_400);

/// A plan file that could not be used.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("{}", sovereign_sim::tomlspan::located(file, *line, field, message))]
pub struct PlanError {
    /// The file.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// The field path, e.g. `step[2].fault.target`.
    pub field: String,
    /// What was wrong and what was expected.
    pub message: String,
}

/// Who is in the room.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Roles {
    /// Runs the game day.
    pub facilitator: String,
    /// Hands on the console.
    pub operators: Vec<String>,
    /// Watch and take notes.
    pub observers: Vec<String>,
}

/// KPI tolerances that define "steady" for this game day (checked on the final KPIs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SteadyState {
    /// Lowest acceptable device-read availability.
    pub availability_min: Option<f64>,
    /// Highest acceptable p99 freshness per class.
    pub freshness_p99_max: [Option<Duration>; 4],
    /// Highest acceptable outbox backlog (operations, all towers).
    pub backlog_max: Option<u64>,
    /// Lowest acceptable battery state of charge.
    pub soc_min: Option<f64>,
    /// Invariant violations tolerated (normally 0).
    pub violations_max: u64,
}

/// Which towers the game day may touch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BlastRadius {
    /// Towers faults may target (the origin is named `origin`).
    pub towers: Vec<String>,
    /// Why this radius.
    pub note: String,
}

/// A live metric an abort condition watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Device-read availability over the last 30 virtual minutes.
    Availability,
    /// Outbox backlog, operations, all towers.
    Backlog,
    /// Lowest battery state of charge of any tower.
    Soc,
    /// Invariant violations so far.
    Violations,
    /// Towers not running.
    TowersDown,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Metric; 5] = [
        Metric::Availability,
        Metric::Backlog,
        Metric::Soc,
        Metric::Violations,
        Metric::TowersDown,
    ];

    /// Its name in plan files.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Availability => "availability",
            Metric::Backlog => "backlog",
            Metric::Soc => "soc",
            Metric::Violations => "violations",
            Metric::TowersDown => "towers-down",
        }
    }
}

/// An abort condition: when `metric` goes below or above `threshold`, stop.
#[derive(Clone, Debug, PartialEq)]
pub struct Abort {
    /// What is watched.
    pub metric: Metric,
    /// `true`: abort when the metric is below the threshold; `false`: above.
    pub below: bool,
    /// The threshold.
    pub threshold: f64,
    /// Why it matters (goes into the report).
    pub reason: String,
}

impl Abort {
    /// The condition in words: `availability < 0.8`.
    pub fn text(&self) -> String {
        let op = if self.below { "<" } else { ">" };
        format!("{} {op} {}", self.metric.name(), self.threshold)
    }
}

/// What an observe step checks (every given field must hold).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observe {
    /// What the team expects to see, in words.
    pub expect: String,
    /// The tower the tower checks apply to.
    pub tower: Option<String>,
    /// Its active uplink (`Some(None)`: no uplink).
    pub active_link: Option<Option<LinkKind>>,
    /// Its process is running.
    pub running: Option<bool>,
    /// It is in its steady state.
    pub steady: Option<bool>,
    /// Its power mode, by name (`normal`, `shed-p3`, …).
    pub power_mode: Option<String>,
    /// Availability so far at least this.
    pub availability_min: Option<f64>,
    /// No invariant violated so far.
    pub no_violations: Option<bool>,
}

/// What a step does.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Inject a fault, given in the scenario `[[fault]]` grammar without `at` and read by
    /// the scenario's own fault reader; its target is resolved against the scenario's
    /// towers by [`Plan::resolve`].
    Inject {
        /// The inline table's source text (the step's default title), e.g.
        /// `{ kind = "link-down", target = "tower-0/fibre", for = "30m" }`.
        fault_text: String,
        /// The kind with its parameters.
        kind: FaultKind,
        /// `for`, when given.
        lasts: Option<Duration>,
        /// The target as written (`tower-0/fibre`, `*`, `origin`).
        target: String,
        /// Its line in the plan file (errors found while resolving point at it).
        line: usize,
    },
    /// Let virtual time pass.
    Wait {
        /// how long
        duration: Duration,
    },
    /// Check the system against expectations.
    Observe(Observe),
    /// Items the operator confirms in the console.
    Checklist {
        /// the items
        items: Vec<String>,
    },
}

/// One step.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Line of the step in the plan file.
    pub line: usize,
    /// Wait until this virtual time (from the run's start) before the step.
    pub at: Option<Duration>,
    /// What it does.
    pub action: Action,
    /// A short title for the timeline.
    pub title: String,
}

/// What to do after the steps (or an abort).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rollback {
    /// Heal every active fault.
    pub heal: bool,
    /// Then let this much virtual time pass.
    pub wait: Duration,
    /// Then confirm these items.
    pub checklist: Vec<String>,
}

/// A parsed game-day plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// File stem (reports are named after it).
    pub name: String,
    /// Title.
    pub title: String,
    /// Quarter, e.g. `2026-Q3`.
    pub quarter: String,
    /// Date, free form (`2026-07-14`).
    pub date: String,
    /// Roles.
    pub roles: Roles,
    /// The hypothesis under test.
    pub hypothesis: String,
    /// Path of the scenario file (relative to the working directory).
    pub scenario: String,
    /// 1-based line of the `scenario` key: errors reading that file point here too.
    pub scenario_line: usize,
    /// Shorten (or lengthen) the scenario's safety phase for this game day.
    pub duration: Option<Duration>,
    /// The seed when none is given on the command line.
    pub seed: Option<u64>,
    /// KPI tolerances.
    pub steady_state: SteadyState,
    /// Blast radius.
    pub blast_radius: BlastRadius,
    /// Abort conditions, checked continuously.
    pub aborts: Vec<Abort>,
    /// The steps.
    pub steps: Vec<Step>,
    /// The rollback.
    pub rollback: Rollback,
    /// The file the plan came from (for errors while resolving).
    pub file: String,
}

/// Parse a plan file.
pub fn parse_file(path: &Path) -> Result<Plan, PlanError> {
    let file = path.display().to_string();
    let text = sovereign_wire::input::read_capped_text(path, TEXT_BYTES_MAX as u64, "plan file")
        .map_err(SpanError::from)?;
    parse_str(&file, &text)
}

/// Parse plan text; `file` names it in errors and its stem names the plan.
pub fn parse_str(file: &str, text: &str) -> Result<Plan, PlanError> {
    let ctx = Ctx { file, text };
    if text.len() > TEXT_BYTES_MAX {
        return Err(ctx
            .err(
                &(0..0),
                "(file)",
                format!("{} bytes; expected at most {TEXT_BYTES_MAX}", text.len()),
            )
            .into());
    }
    let doc = DeTable::parse(text).map_err(|e| {
        let at = e.span().map_or(0..0, |s| s);
        ctx.err(
            &at,
            "(syntax)",
            format!("TOML syntax error: {}", e.message()),
        )
    })?;
    let root = Tbl::root(&ctx, &doc);
    Ok(plan(&ctx, &root)?)
}

// ---------------------------------------------------------------------------------------
// Spanned walking: the shared readers of `sovereign_sim::tomlspan`, plus the plan's own.

impl From<SpanError> for PlanError {
    fn from(e: SpanError) -> Self {
        PlanError {
            file: e.file,
            line: e.line,
            field: e.field,
            message: e.message,
        }
    }
}

/// Plan-only readers of a table.
trait PlanTbl {
    /// A required [`PlanVal::text`].
    fn text(&self, key: &str, what: &str) -> Res<String>;
    /// An optional [`PlanVal::text`] (empty when absent).
    fn opt_text(&self, key: &str) -> Res<String>;
}

impl PlanTbl for Tbl<'_> {
    fn text(&self, key: &str, what: &str) -> Res<String> {
        self.req(key, what)?.text()
    }

    fn opt_text(&self, key: &str) -> Res<String> {
        self.get(key).map_or(Ok(String::new()), |v| v.text())
    }
}

/// Plan-only readers of a value.
trait PlanVal {
    /// A non-empty string of at most TEXT_LEN_MAX bytes, trimmed.
    fn text(&self) -> Res<String>;
    /// A list of at most LIST_MAX texts.
    fn texts(&self) -> Res<Vec<String>>;
    /// A finite number in `lo..=hi` (an infinite one is "out of range").
    fn number_in(&self, lo: f64, hi: f64) -> Res<f64>;
    /// A non-negative integer.
    fn u64(&self) -> Res<u64>;
    /// A duration from `min` to DURATION_MAX.
    fn duration(&self, min: Duration) -> Res<Duration>;
}

impl PlanVal for Val<'_> {
    fn text(&self) -> Res<String> {
        let s = self.str()?.trim();
        if s.is_empty() {
            return Err(self.err("empty; expected some text"));
        }
        if s.len() > TEXT_LEN_MAX {
            return Err(self.err(format!(
                "{} bytes; expected at most {TEXT_LEN_MAX}",
                s.len()
            )));
        }
        Ok(s.to_string())
    }

    fn texts(&self) -> Res<Vec<String>> {
        self.array(LIST_MAX)?.iter().map(|v| v.text()).collect()
    }

    fn number_in(&self, lo: f64, hi: f64) -> Res<f64> {
        let expected = format!("a number in {lo}..={hi}");
        match self.number(&expected)? {
            Some(x) if x.is_finite() && (lo..=hi).contains(&x) => Ok(x),
            Some(x) => Err(self.err(format!("{x} is out of range; expected {expected}"))),
            None => Err(self.err(format!("not a number; expected {expected}"))),
        }
    }

    fn u64(&self) -> Res<u64> {
        match self.v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| self.err("expected a non-negative integer")),
            _ => Err(self.wrong_type("a non-negative integer")),
        }
    }

    fn duration(&self, min: Duration) -> Res<Duration> {
        self.duration_within(min, DURATION_MAX, "a duration string such as \"30m\"")
    }
}

// ---------------------------------------------------------------------------------------
// The plan.

fn plan(ctx: &Ctx<'_>, root: &Tbl<'_>) -> Res<Plan> {
    root.keys(&[
        "title",
        "quarter",
        "date",
        "hypothesis",
        "scenario",
        "duration",
        "seed",
        "roles",
        "steady_state",
        "blast_radius",
        "abort",
        "step",
        "rollback",
    ])?;
    let name = Path::new(ctx.file)
        .file_stem()
        .map_or("gameday".to_string(), |s| s.to_string_lossy().to_string());
    let roles = match root.get("roles") {
        None => Roles::default(),
        Some(v) => {
            let t = v.table()?;
            t.keys(&["facilitator", "operators", "observers"])?;
            Roles {
                facilitator: t.text("facilitator", "the facilitator's name")?,
                operators: t.req("operators", "a list of names")?.texts()?,
                observers: t.get("observers").map_or(Ok(Vec::new()), |v| v.texts())?,
            }
        }
    };
    let steps_v = root.req("step", "at least one [[step]]")?;
    let mut steps = Vec::new();
    for v in steps_v.array(STEPS_MAX)? {
        steps.push(step(&v)?);
    }
    if steps.is_empty() {
        return Err(steps_v.err("no steps; expected at least one [[step]]"));
    }
    let mut aborts = Vec::new();
    if let Some(v) = root.get("abort") {
        for a in v.array(ABORTS_MAX)? {
            aborts.push(abort(&a)?);
        }
    }
    let scenario_v = root.req(
        "scenario",
        "a scenario path such as \"scenarios/baseline.toml\"",
    )?;
    Ok(Plan {
        name,
        title: root.text("title", "a title")?,
        quarter: root.text("quarter", "the quarter, e.g. \"2026-Q3\"")?,
        date: root.opt_text("date")?,
        roles,
        hypothesis: root.text("hypothesis", "the hypothesis under test")?,
        scenario: scenario_v.text()?,
        scenario_line: ctx.line(scenario_v.v.span().start),
        duration: root
            .get("duration")
            .map(|v| v.duration(Duration::from_secs(60)))
            .transpose()?,
        seed: root.get("seed").map(|v| v.u64()).transpose()?,
        steady_state: root
            .get("steady_state")
            .map_or(Ok(SteadyState::default()), |v| steady_state(&v))?,
        blast_radius: match root.get("blast_radius") {
            None => BlastRadius::default(),
            Some(v) => {
                let t = v.table()?;
                t.keys(&["towers", "note"])?;
                BlastRadius {
                    towers: t.req("towers", "a list of tower names")?.texts()?,
                    note: t.opt_text("note")?,
                }
            }
        },
        aborts,
        steps,
        rollback: match root.get("rollback") {
            None => Rollback {
                heal: true,
                ..Rollback::default()
            },
            Some(v) => {
                let t = v.table()?;
                t.keys(&["heal", "wait", "checklist"])?;
                Rollback {
                    heal: t.get("heal").map_or(Ok(true), |v| v.bool())?,
                    wait: t
                        .get("wait")
                        .map_or(Ok(Duration::ZERO), |v| v.duration(Duration::ZERO))?,
                    checklist: t.get("checklist").map_or(Ok(Vec::new()), |v| v.texts())?,
                }
            }
        },
        file: ctx.file.to_string(),
    })
}

fn steady_state(v: &Val<'_>) -> Res<SteadyState> {
    let t = v.table()?;
    t.keys(&[
        "availability_min",
        "freshness_p99_max",
        "backlog_max",
        "soc_min",
        "violations_max",
    ])?;
    let mut fresh = [None; 4];
    if let Some(f) = t.get("freshness_p99_max") {
        let ft = f.table()?;
        ft.keys(&["P0", "P1", "P2", "P3"])?;
        for p in Priority::ALL {
            if let Some(d) = ft.get(&p.to_string()) {
                fresh[p.index()] = Some(d.duration(Duration::from_millis(1))?);
            }
        }
    }
    Ok(SteadyState {
        availability_min: t
            .get("availability_min")
            .map(|v| v.number_in(0.0, 1.0))
            .transpose()?,
        freshness_p99_max: fresh,
        backlog_max: t.get("backlog_max").map(|v| v.u64()).transpose()?,
        soc_min: t
            .get("soc_min")
            .map(|v| v.number_in(0.0, 1.0))
            .transpose()?,
        violations_max: t.get("violations_max").map_or(Ok(0), |v| v.u64())?,
    })
}

fn abort(v: &Val<'_>) -> Res<Abort> {
    let t = v.table()?;
    t.keys(&["metric", "below", "above", "reason"])?;
    let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
    let mv = t.req("metric", &format!("one of: {}", names.join(", ")))?;
    let m = mv.str()?;
    let metric = Metric::ALL
        .into_iter()
        .find(|x| x.name() == m)
        .ok_or_else(|| {
            mv.err(format!(
                "unknown metric `{m}`; expected one of: {}",
                names.join(", ")
            ))
        })?;
    let (below, tv) = match (t.get("below"), t.get("above")) {
        (Some(b), None) => (true, b),
        (None, Some(a)) => (false, a),
        (Some(_), Some(_)) => {
            return Err(v.err("both `below` and `above`; expected exactly one"));
        }
        (None, None) => {
            return Err(t.ctx.err(
                &t.span,
                &t.field("below"),
                "missing; expected `below = <number>` or `above = <number>`",
            ));
        }
    };
    Ok(Abort {
        metric,
        below,
        threshold: tv.number_in(-1e12, 1e12)?,
        reason: t.text("reason", "why this condition stops the game day")?,
    })
}

fn step(v: &Val<'_>) -> Res<Step> {
    let t = v.table()?;
    let actions = ["inject", "wait", "observe", "checklist"];
    let av = t.req("action", "one of: inject, wait, observe, checklist")?;
    let a = av.str()?;
    let common = ["action", "at", "title"];
    let specific: &[&str] = match a {
        "inject" => &["fault"],
        "wait" => &["for"],
        "observe" => &[
            "expect",
            "tower",
            "active_link",
            "running",
            "steady",
            "power_mode",
            "availability_min",
            "no_violations",
        ],
        "checklist" => &["items"],
        _ => {
            return Err(av.err(format!(
                "unknown action `{a}`; expected one of: {}",
                actions.join(", ")
            )));
        }
    };
    let allowed: Vec<&str> = common.iter().chain(specific).copied().collect();
    t.keys(&allowed)?;
    let action = match a {
        "inject" => {
            let f = t.req("fault", "an inline table such as { kind = \"link-down\", target = \"tower-0/fibre\", for = \"30m\" }")?;
            let ft = f.table()?;
            if let Some((k, _)) = ft.map.get_key_value("at") {
                return Err(t.ctx.err(
                    &k.span(),
                    &ft.field("at"),
                    "a fault in a step takes no `at`; give the step an `at` instead",
                ));
            }
            let span = f.v.span();
            let raw = &t.ctx.text[span.clone()];
            if !raw.trim_start().starts_with('{') {
                return Err(f.err("expected an inline table: fault = { kind = …, target = … }"));
            }
            let parts = sovereign_sim::scenario::parse::fault_parts(&ft, &[])?;
            Action::Inject {
                fault_text: raw.to_string(),
                target: parts.target.str()?.to_string(),
                kind: parts.kind,
                lasts: parts.lasts,
                line: f.line(),
            }
        }
        "wait" => Action::Wait {
            duration: t
                .req("for", "a duration such as \"10m\"")?
                .duration(Duration::from_millis(1))?,
        },
        "observe" => {
            let link = t
                .get("active_link")
                .map(|v| {
                    let s = v.str()?;
                    if s == "none" {
                        Ok(None)
                    } else {
                        LinkKind::from_str(s).map(Some).map_err(|_| {
                            v.err(format!(
                                "unknown link `{s}`; expected fibre, lte, satellite or none"
                            ))
                        })
                    }
                })
                .transpose()?;
            let o = Observe {
                expect: t.text("expect", "what the team expects to see")?,
                tower: t.get("tower").map(|v| v.text()).transpose()?,
                active_link: link,
                running: t.get("running").map(|v| v.bool()).transpose()?,
                steady: t.get("steady").map(|v| v.bool()).transpose()?,
                power_mode: t.get("power_mode").map(|v| v.text()).transpose()?,
                availability_min: t
                    .get("availability_min")
                    .map(|v| v.number_in(0.0, 1.0))
                    .transpose()?,
                no_violations: t.get("no_violations").map(|v| v.bool()).transpose()?,
            };
            let tower_checks = o.active_link.is_some()
                || o.running.is_some()
                || o.steady.is_some()
                || o.power_mode.is_some();
            if tower_checks && o.tower.is_none() {
                return Err(t.ctx.err(
                    &t.span,
                    &t.field("tower"),
                    "missing; tower checks (active_link, running, steady, power_mode) need a tower",
                ));
            }
            if !tower_checks && o.availability_min.is_none() && o.no_violations.is_none() {
                return Err(t.ctx.err(
                    &t.span,
                    &t.field("expect"),
                    "nothing to check; give at least one of active_link, running, steady, \
                     power_mode, availability_min, no_violations",
                ));
            }
            if let (Some(pm), Some(v)) = (&o.power_mode, t.get("power_mode")) {
                const MODES: [&str; 6] = [
                    "normal",
                    "shed-p3",
                    "shed-p2",
                    "essential",
                    "shutting-down",
                    "off",
                ];
                if !MODES.contains(&pm.as_str()) {
                    return Err(v.err(format!(
                        "unknown power mode `{pm}`; expected one of: {}",
                        MODES.join(", ")
                    )));
                }
            }
            Action::Observe(o)
        }
        _ => {
            let iv = t.req("items", "a list of checklist items")?;
            let items = iv.texts()?;
            if items.is_empty() {
                return Err(iv.err("empty; expected at least one item"));
            }
            Action::Checklist { items }
        }
    };
    let title = match t.get("title") {
        Some(v) => v.text()?,
        None => match &action {
            Action::Inject { fault_text, .. } => format!("inject {}", fault_text.trim()),
            Action::Wait { duration } => {
                format!(
                    "wait {}",
                    sovereign_sim::scenario::format_duration(*duration)
                )
            }
            Action::Observe(o) => format!("observe: {}", o.expect),
            Action::Checklist { items } => format!("checklist ({} items)", items.len()),
        },
    };
    Ok(Step {
        line: av.line(),
        at: t
            .get("at")
            .map(|v| v.duration(Duration::ZERO))
            .transpose()?,
        action,
        title,
    })
}

// ---------------------------------------------------------------------------------------
// Resolving against the scenario.

impl Plan {
    /// Check the plan against its scenario: each inject step's fault parsed by the
    /// scenario parser (same grammar, same errors), tower names known, every target
    /// inside the blast radius. Returns the faults of each step (empty for other steps).
    pub fn resolve(&self, scenario: &Scenario) -> Result<Vec<Vec<FaultSpec>>, PlanError> {
        let towers: Vec<&str> = scenario.towers.iter().map(|t| t.name.as_str()).collect();
        let err = |line: usize, field: String, message: String| PlanError {
            file: self.file.clone(),
            line,
            field,
            message,
        };
        let known = |name: &str| name == "origin" || towers.contains(&name);
        for name in &self.blast_radius.towers {
            if !known(name) {
                return Err(err(
                    0,
                    "blast_radius.towers".into(),
                    format!(
                        "unknown tower `{name}`; the scenario has: origin, {}",
                        towers.join(", ")
                    ),
                ));
            }
        }
        let mut out = Vec::new();
        for (i, s) in self.steps.iter().enumerate() {
            match &s.action {
                Action::Inject {
                    kind,
                    lasts,
                    target,
                    line,
                    ..
                } => {
                    let decl = kind.decl();
                    let faults: Vec<FaultSpec> = resolve_targets(decl, target, &scenario.towers)
                        .map_err(|m| err(*line, format!("step[{i}].fault.target"), m))?
                        .into_iter()
                        .map(|target| FaultSpec {
                            at: Duration::ZERO,
                            duration: decl.duration(*lasts, scenario.duration),
                            target,
                            kind: kind.clone(),
                        })
                        .collect();
                    if !self.blast_radius.towers.is_empty() {
                        for f in &faults {
                            let inside = match &f.target {
                                Target::Origin => {
                                    self.blast_radius.towers.iter().any(|t| t == "origin")
                                }
                                Target::Tower(t) | Target::Link(t, _) | Target::Wifi(t) => self
                                    .blast_radius
                                    .towers
                                    .iter()
                                    .any(|n| *n == scenario.towers[*t].name),
                            };
                            if !inside {
                                return Err(err(
                                    *line,
                                    format!("step[{i}].fault.target"),
                                    format!(
                                        "target outside the blast radius ({}); widen \
                                         blast_radius.towers or change the target",
                                        self.blast_radius.towers.join(", ")
                                    ),
                                ));
                            }
                        }
                    }
                    out.push(faults);
                }
                Action::Observe(o) => {
                    if let Some(t) = &o.tower
                        && !towers.contains(&t.as_str())
                    {
                        return Err(err(
                            s.line,
                            format!("step[{i}].tower"),
                            format!(
                                "unknown tower `{t}`; the scenario has: {}",
                                towers.join(", ")
                            ),
                        ));
                    }
                    out.push(Vec::new());
                }
                _ => out.push(Vec::new()),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
