//! Game-day plans (`gamedays/*.toml`): the model and its parser.
//!
//! A plan is what a chaos team writes before a game day: title, quarter and date, roles,
//! the hypothesis, the steady state (KPI tolerances), the scenario it runs on, the blast
//! radius, abort conditions, the steps (inject, wait, observe, checklist) and the
//! rollback. `docs/GAMEDAYS.md` documents the format.
//!
//! The file is read with serde into raw structs (`RawPlan` and its parts,
//! `deny_unknown_fields`, through `sovereign_sim::tomlspan` as the scenario parser reads
//! scenarios), then validated into the [`Plan`]; errors name the file, the line and the
//! field, and say what was expected. An inject step's `fault` uses the scenario file's
//! `[[fault]]` grammar and is checked by the scenario parser itself
//! (`scenario::parse::fault_parts`; its target against the plan's scenario in
//! [`Plan::resolve`]), so both files always mean the same thing by a fault.
//!
//! Not covered: running a plan (see `gameday.rs`).

use serde::Deserialize;
use sovereign_logic::protocol::LinkKind;
use sovereign_sim::scenario::parse::{
    PerPriority, RawFault, classes, fault_parts, resolve_targets,
};
use sovereign_sim::scenario::{FaultKind, FaultSpec, Scenario, Target};
use sovereign_sim::tomlspan::{Capped, Ctx, Dur, Int, Num, Res, SpanError, Unit, checked, wrong};
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use toml::{Spanned, Value};

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

/// A plan file that could not be used: `file:line: field: message` (the field path, e.g.
/// `step[2].fault.target`), the shared [`SpanError`] of every file format.
pub type PlanError = SpanError;

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

impl BlastRadius {
    /// Whether a fault on `target` stays inside the radius (`towers`: the scenario's
    /// tower names by index). An empty radius allows everything.
    pub fn allows(&self, target: &Target, towers: &[String]) -> bool {
        let named = |name: &str| self.towers.iter().any(|t| t == name);
        self.towers.is_empty()
            || match target {
                Target::Origin => named("origin"),
                Target::Tower(t) | Target::Link(t, _) | Target::Wifi(t) => {
                    towers.get(*t).is_some_and(|n| named(n))
                }
            }
    }
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
    /// Not a written plan: the journal of a free-play console run ([`Plan::free_play`]).
    pub free_play: bool,
}

impl Plan {
    /// The implicit plan of a free-play console run on `scenario_file`: no steps, no
    /// radius, no tolerance but the invariants; its report is the run's journal (what the
    /// operators injected, healed and noted, the KPIs and the replay file).
    pub fn free_play(scenario_file: &str, scenario: &Scenario) -> Plan {
        Plan {
            name: format!("console-{}", scenario.name),
            title: format!("Free play on {}", scenario.name),
            quarter: String::new(),
            date: String::new(),
            roles: Roles::default(),
            hypothesis: "No invariant breaks while operators inject faults by hand.".into(),
            scenario: scenario_file.to_string(),
            scenario_line: 0,
            duration: None,
            seed: None,
            steady_state: SteadyState::default(),
            blast_radius: BlastRadius::default(),
            aborts: Vec::new(),
            steps: Vec::new(),
            rollback: Rollback::default(),
            file: "(free play: no plan file)".into(),
            free_play: true,
        }
    }
}

/// Parse a plan file.
pub fn parse_file(path: &Path) -> Result<Plan, PlanError> {
    let file = path.display().to_string();
    let text = sovereign_wire::input::read_capped_text(path, TEXT_BYTES_MAX as u64, "plan file")?;
    parse_str(&file, &text)
}

/// Parse plan text; `file` names it in errors and its stem names the plan.
pub fn parse_str(file: &str, text: &str) -> Result<Plan, PlanError> {
    let ctx = Ctx { file, text };
    if text.len() > TEXT_BYTES_MAX {
        return Err(ctx.err(
            &(0..0),
            format!("{} bytes; expected at most {TEXT_BYTES_MAX}", text.len()),
        ));
    }
    let raw: Spanned<RawPlan> = ctx.read(64).map_err(|e| step_keys(text, e))?;
    plan(&ctx, raw.get_ref(), &raw.span())
}

/// The faults a step's (or the inject form's) fault makes, starting now: one per target
/// `target` names (`*` is every tower), lasting `lasts` or the kind's default out of
/// `rest`, the time left of the scenario.
fn faults_now(
    kind: &FaultKind,
    lasts: Option<Duration>,
    target: &str,
    scenario: &Scenario,
    rest: Duration,
) -> Result<Vec<FaultSpec>, String> {
    let decl = kind.decl();
    Ok(resolve_targets(decl, target, &scenario.towers)?
        .into_iter()
        .map(|target| FaultSpec {
            at: Duration::ZERO,
            duration: decl.duration(lasts, rest),
            target,
            kind: kind.clone(),
        })
        .collect())
}

/// The faults an operator typed into the console's inject form at `now`: the body of a
/// plan step's inline table (`kind = "latency", target = "tower-1/lte", extra =
/// "200ms", for = "2m"`), checked exactly as a plan step's fault is against `scenario`
/// (`*` as the target is every tower). A missing `for` of a fault that needs one is an
/// error here too; a kind that lasts the rest of the run lasts what is left of it.
pub fn parse_inline_fault(
    text: &str,
    scenario: &Scenario,
    now: Duration,
) -> Result<Vec<FaultSpec>, PlanError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Form {
        fault: Spanned<RawFault>,
    }
    let doc = format!("fault = {{ {text} }}\n");
    let ctx = Ctx {
        file: "the inject form",
        text: &doc,
    };
    if text.len() > TEXT_BYTES_MAX || text.contains('\n') {
        return Err(ctx.err(&(0..0), "expected one line of `key = value` pairs"));
    }
    let form: Form = ctx.read(64)?;
    let f = &form.fault;
    if let Some((at, _)) = f.get_ref().get_key_value("at") {
        return Err(ctx.err(&at.span(), "an injection starts now: it takes no `at`"));
    }
    let parts = fault_parts(&ctx, f.get_ref(), &f.span(), &[])?;
    let rest = scenario.duration.saturating_sub(now);
    faults_now(
        &parts.kind,
        parts.lasts,
        parts.target.get_ref(),
        scenario,
        rest,
    )
    .map_err(|m| ctx.err(&parts.target.span(), m))
}

// ---------------------------------------------------------------------------------------
// The raw file, as serde reads it.

/// Milliseconds in [`DURATION_MAX`].
const DURATION_MAX_MS: u64 = DURATION_MAX.as_millis() as u64;
/// A count: a non-negative integer.
type Count = Int<0, { i64::MAX }>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    title: Option<Text>,
    quarter: Option<Text>,
    date: Option<Text>,
    hypothesis: Option<Text>,
    scenario: Option<Spanned<Text>>,
    duration: Option<Dur<60_000, DURATION_MAX_MS>>,
    seed: Option<Count>,
    roles: Option<Spanned<RawRoles>>,
    #[serde(default)]
    steady_state: RawSteady,
    blast_radius: Option<Spanned<RawBlast>>,
    abort: Option<Capped<Spanned<RawAbort>, ABORTS_MAX>>,
    step: Option<Spanned<Capped<Spanned<RawStep>, STEPS_MAX>>>,
    rollback: Option<RawRollback>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoles {
    facilitator: Option<Text>,
    operators: Option<Texts>,
    observers: Option<Texts>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSteady {
    availability_min: Option<Unit>,
    #[serde(default)]
    freshness_p99_max: PerPriority<Dur<1, DURATION_MAX_MS>>,
    backlog_max: Option<Count>,
    soc_min: Option<Unit>,
    violations_max: Option<Count>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBlast {
    towers: Option<Texts>,
    note: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAbort {
    metric: Option<Spanned<String>>,
    below: Option<Num<-1_000_000_000_000, 1_000_000_000_000>>,
    above: Option<Num<-1_000_000_000_000, 1_000_000_000_000>>,
    reason: Option<Text>,
}

/// A step: the keys of every action; [`step`] refuses those of another action.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    action: Option<Spanned<String>>,
    at: Option<Dur<0, DURATION_MAX_MS>>,
    title: Option<Text>,
    fault: Option<Spanned<RawFault>>,
    #[serde(rename = "for")]
    wait: Option<Spanned<Dur<1, DURATION_MAX_MS>>>,
    expect: Option<Spanned<Text>>,
    tower: Option<Spanned<Text>>,
    active_link: Option<Spanned<String>>,
    running: Option<Spanned<bool>>,
    steady: Option<Spanned<bool>>,
    power_mode: Option<Spanned<Text>>,
    availability_min: Option<Spanned<Unit>>,
    no_violations: Option<Spanned<bool>>,
    items: Option<Spanned<Texts>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRollback {
    heal: Option<bool>,
    wait: Option<Dur<0, DURATION_MAX_MS>>,
    checklist: Option<Texts>,
}

/// A non-empty string of at most [`TEXT_LEN_MAX`] bytes, trimmed.
#[derive(Clone, Debug)]
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, |v| match v {
            Value::String(s) if s.trim().is_empty() => Err("empty; expected some text".into()),
            Value::String(s) if s.trim().len() > TEXT_LEN_MAX => Err(format!(
                "{} bytes; expected at most {TEXT_LEN_MAX}",
                s.trim().len()
            )),
            Value::String(s) => Ok(Text(s.trim().to_string())),
            v => Err(wrong(v, "some text")),
        })
    }
}

/// A list of at most [`LIST_MAX`] texts.
type Texts = Capped<Text, LIST_MAX>;

fn texts(v: Option<&Texts>) -> Vec<String> {
    v.iter().flat_map(|t| &t.0).map(|t| t.0.clone()).collect()
}

// ---------------------------------------------------------------------------------------
// Validation: the raw file → the plan.

fn plan(ctx: &Ctx<'_>, raw: &RawPlan, root: &Range<usize>) -> Res<Plan> {
    let name = Path::new(ctx.file)
        .file_stem()
        .map_or("gameday".to_string(), |s| s.to_string_lossy().to_string());
    // A required list of texts.
    let list = |v: &Option<Texts>, table: Range<usize>, key: &str, what: &str| {
        ctx.req(v, &table, key, what).map(|t| texts(Some(t)))
    };
    let roles = match &raw.roles {
        None => Roles::default(),
        Some(r) => Roles {
            facilitator: ctx
                .req(
                    &r.get_ref().facilitator,
                    &r.span(),
                    "facilitator",
                    "the facilitator's name",
                )?
                .0
                .clone(),
            operators: list(
                &r.get_ref().operators,
                r.span(),
                "operators",
                "a list of names",
            )?,
            observers: texts(r.get_ref().observers.as_ref()),
        },
    };
    let steps_v = ctx.req(&raw.step, root, "step", "at least one [[step]]")?;
    let mut steps = Vec::new();
    for v in &steps_v.get_ref().0 {
        steps.push(step(ctx, v)?);
    }
    if steps.is_empty() {
        return Err(ctx.err(&steps_v.span(), "no steps; expected at least one [[step]]"));
    }
    let mut aborts = Vec::new();
    for a in raw.abort.iter().flat_map(|a| &a.0) {
        aborts.push(abort(ctx, a)?);
    }
    let text =
        |v: &Option<Text>, key: &str, what: &str| ctx.req(v, root, key, what).map(|t| t.0.clone());
    let title = text(&raw.title, "title", "a title")?;
    let quarter = text(&raw.quarter, "quarter", "the quarter, e.g. \"2026-Q3\"")?;
    let hypothesis = text(&raw.hypothesis, "hypothesis", "the hypothesis under test")?;
    let scenario_v = ctx.req(
        &raw.scenario,
        root,
        "scenario",
        "a scenario path such as \"scenarios/baseline.toml\"",
    )?;
    let s = &raw.steady_state;
    Ok(Plan {
        name,
        title,
        quarter,
        date: raw.date.as_ref().map_or(String::new(), |t| t.0.clone()),
        roles,
        hypothesis,
        scenario: scenario_v.get_ref().0.clone(),
        scenario_line: ctx.line(scenario_v.span().start),
        duration: raw.duration.map(|d| d.0),
        seed: raw.seed.map(|n| n.0 as u64),
        steady_state: SteadyState {
            availability_min: s.availability_min.map(|v| v.0),
            freshness_p99_max: classes(ctx, &s.freshness_p99_max)?.map(|d| d.map(|d| d.0)),
            backlog_max: s.backlog_max.map(|n| n.0 as u64),
            soc_min: s.soc_min.map(|v| v.0),
            violations_max: s.violations_max.map_or(0, |n| n.0 as u64),
        },
        blast_radius: match &raw.blast_radius {
            None => BlastRadius::default(),
            Some(b) => BlastRadius {
                towers: list(
                    &b.get_ref().towers,
                    b.span(),
                    "towers",
                    "a list of tower names",
                )?,
                note: b
                    .get_ref()
                    .note
                    .as_ref()
                    .map_or(String::new(), |t| t.0.clone()),
            },
        },
        aborts,
        steps,
        rollback: match &raw.rollback {
            None => Rollback {
                heal: true,
                ..Rollback::default()
            },
            Some(r) => Rollback {
                heal: r.heal.unwrap_or(true),
                wait: r.wait.map_or(Duration::ZERO, |d| d.0),
                checklist: texts(r.checklist.as_ref()),
            },
        },
        file: ctx.file.to_string(),
        free_play: false,
    })
}

fn abort(ctx: &Ctx<'_>, a: &Spanned<RawAbort>) -> Res<Abort> {
    let (t, span) = (a.get_ref(), a.span());
    let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
    let mv = ctx.req(
        &t.metric,
        &span,
        "metric",
        &format!("one of: {}", names.join(", ")),
    )?;
    let metric = Metric::ALL
        .into_iter()
        .find(|x| x.name() == mv.get_ref())
        .ok_or_else(|| {
            ctx.err(
                &mv.span(),
                format!(
                    "unknown metric `{}`; expected one of: {}",
                    mv.get_ref(),
                    names.join(", ")
                ),
            )
        })?;
    let (below, threshold) = match (t.below, t.above) {
        (Some(b), None) => (true, b.0),
        (None, Some(a)) => (false, a.0),
        (Some(_), Some(_)) => {
            return Err(ctx.err(&span, "both `below` and `above`; expected exactly one"));
        }
        (None, None) => {
            return Err(ctx.err_key(
                &span,
                "below",
                "missing; expected `below = <number>` or `above = <number>`",
            ));
        }
    };
    Ok(Abort {
        metric,
        below,
        threshold,
        reason: ctx
            .req(
                &t.reason,
                &span,
                "reason",
                "why this condition stops the game day",
            )?
            .0
            .clone(),
    })
}

/// The keys an action takes besides `action`, `at` and `title`.
fn action_keys(action: &str) -> Option<&'static [&'static str]> {
    Some(match action {
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
        _ => return None,
    })
}

/// serde lists the keys of every action for an unknown key in a step: name only those of
/// the step's own action.
fn step_keys(text: &str, mut e: SpanError) -> SpanError {
    let step = e
        .field
        .strip_prefix("step[")
        .and_then(|r| r.split_once(']'));
    let action = step
        .filter(|_| e.message.starts_with("unknown key"))
        .and_then(|(i, _)| {
            let doc: toml::Table = toml::from_str(text).ok()?;
            let step = doc.get("step")?.get(i.parse::<usize>().ok()?)?;
            action_keys(step.get("action")?.as_str()?)
        });
    if let (Some(keys), Some((head, _))) = (action, e.message.split_once("; expected")) {
        let allowed: Vec<&str> = ["action", "at", "title"]
            .iter()
            .chain(keys)
            .copied()
            .collect();
        e.message = format!("{head}; expected one of: {}", allowed.join(", "));
    }
    e
}

fn step(ctx: &Ctx<'_>, v: &Spanned<RawStep>) -> Res<Step> {
    let (t, span) = (v.get_ref(), v.span());
    let actions = ["inject", "wait", "observe", "checklist"];
    let av = ctx.req(
        &t.action,
        &span,
        "action",
        "one of: inject, wait, observe, checklist",
    )?;
    let a = av.get_ref().as_str();
    // The keys each action takes, with the spans of those given.
    let given: [(&str, Option<Range<usize>>); 10] = [
        ("fault", t.fault.as_ref().map(|v| v.span())),
        ("for", t.wait.as_ref().map(|v| v.span())),
        ("expect", t.expect.as_ref().map(|v| v.span())),
        ("tower", t.tower.as_ref().map(|v| v.span())),
        ("active_link", t.active_link.as_ref().map(|v| v.span())),
        ("running", t.running.as_ref().map(|v| v.span())),
        ("steady", t.steady.as_ref().map(|v| v.span())),
        ("power_mode", t.power_mode.as_ref().map(|v| v.span())),
        (
            "availability_min",
            t.availability_min.as_ref().map(|v| v.span()),
        ),
        ("no_violations", t.no_violations.as_ref().map(|v| v.span())),
    ];
    let Some(specific) = action_keys(a) else {
        return Err(ctx.err(
            &av.span(),
            format!(
                "unknown action `{a}`; expected one of: {}",
                actions.join(", ")
            ),
        ));
    };
    let items = ("items", t.items.as_ref().map(|v| v.span()));
    let stray = given
        .iter()
        .chain([&items])
        .filter(|(k, s)| s.is_some() && !specific.contains(k))
        .min_by_key(|(_, s)| s.as_ref().map(|s| s.start));
    if let Some((key, Some(at))) = stray {
        let allowed: Vec<&str> = ["action", "at", "title"]
            .iter()
            .chain(specific)
            .copied()
            .collect();
        return Err(ctx.err(
            at,
            format!(
                "unknown key `{key}`; expected one of: {}",
                allowed.join(", ")
            ),
        ));
    }
    let action = match a {
        "inject" => {
            let f = ctx.req(&t.fault,
                &span,
                "fault",
                "an inline table such as { kind = \"link-down\", target = \"tower-0/fibre\", for = \"30m\" }",
            )?;
            if let Some((at, _)) = f.get_ref().get_key_value("at") {
                return Err(ctx.err(
                    &at.span(),
                    "a fault in a step takes no `at`; give the step an `at` instead",
                ));
            }
            let raw = ctx.text.get(f.span()).unwrap_or("");
            if !raw.trim_start().starts_with('{') {
                return Err(ctx.err(
                    &f.span(),
                    "expected an inline table: fault = { kind = …, target = … }",
                ));
            }
            let parts = fault_parts(ctx, f.get_ref(), &f.span(), &[])?;
            Action::Inject {
                fault_text: raw.to_string(),
                target: parts.target.get_ref().clone(),
                kind: parts.kind,
                lasts: parts.lasts,
                line: ctx.line(f.span().start),
            }
        }
        "wait" => Action::Wait {
            duration: ctx
                .req(&t.wait, &span, "for", "a duration such as \"10m\"")?
                .get_ref()
                .0,
        },
        "observe" => {
            let link = match &t.active_link {
                Some(v) if v.get_ref() == "none" => Some(None),
                Some(v) => Some(Some(LinkKind::from_str(v.get_ref()).map_err(|_| {
                    ctx.err(
                        &v.span(),
                        format!(
                            "unknown link `{}`; expected fibre, lte, satellite or none",
                            v.get_ref()
                        ),
                    )
                })?)),
                None => None,
            };
            let o = Observe {
                expect: ctx
                    .req(&t.expect, &span, "expect", "what the team expects to see")?
                    .get_ref()
                    .0
                    .clone(),
                tower: t.tower.as_ref().map(|v| v.get_ref().0.clone()),
                active_link: link,
                running: t.running.as_ref().map(|v| *v.get_ref()),
                steady: t.steady.as_ref().map(|v| *v.get_ref()),
                power_mode: t.power_mode.as_ref().map(|v| v.get_ref().0.clone()),
                availability_min: t.availability_min.as_ref().map(|v| v.get_ref().0),
                no_violations: t.no_violations.as_ref().map(|v| *v.get_ref()),
            };
            let tower_checks = o.active_link.is_some()
                || o.running.is_some()
                || o.steady.is_some()
                || o.power_mode.is_some();
            if tower_checks && o.tower.is_none() {
                return Err(ctx.err_key(
                    &span,
                    "tower",
                    "missing; tower checks (active_link, running, steady, power_mode) need a tower",
                ));
            }
            if !tower_checks && o.availability_min.is_none() && o.no_violations.is_none() {
                return Err(ctx.err_key(
                    &span,
                    "expect",
                    "nothing to check; give at least one of active_link, running, steady, \
                     power_mode, availability_min, no_violations",
                ));
            }
            if let Some(v) = &t.power_mode {
                const MODES: [&str; 6] = [
                    "normal",
                    "shed-p3",
                    "shed-p2",
                    "essential",
                    "shutting-down",
                    "off",
                ];
                let pm = v.get_ref().0.as_str();
                if !MODES.contains(&pm) {
                    return Err(ctx.err(
                        &v.span(),
                        format!(
                            "unknown power mode `{pm}`; expected one of: {}",
                            MODES.join(", ")
                        ),
                    ));
                }
            }
            Action::Observe(o)
        }
        _ => {
            let iv = ctx.req(&t.items, &span, "items", "a list of checklist items")?;
            if iv.get_ref().0.is_empty() {
                return Err(ctx.err(&iv.span(), "empty; expected at least one item"));
            }
            Action::Checklist {
                items: texts(Some(iv.get_ref())),
            }
        }
    };
    let title = match &t.title {
        Some(v) => v.0.clone(),
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
        line: ctx.line(av.span().start),
        at: t.at.map(|d| d.0),
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
                    let faults = faults_now(kind, *lasts, target, scenario, scenario.duration)
                        .map_err(|m| err(*line, format!("step[{i}].fault.target"), m))?;
                    let names: Vec<String> = towers.iter().map(|t| (*t).to_string()).collect();
                    if faults
                        .iter()
                        .any(|f| !self.blast_radius.allows(&f.target, &names))
                    {
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
