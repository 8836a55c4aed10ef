//! Running a game-day plan against a [`Source`]: steps in order, waits, observations,
//! checklists, abort conditions checked continuously, and the rollback.
//!
//! [`GameDay`] is a small state machine the console and the headless runner both drive:
//! [`GameDay::poll`] performs every step that can happen now and says what it waits for
//! ([`Poll`]): virtual time to pass, a checklist to be confirmed, or nothing (done).
//! [`GameDay::check_aborts`] is called after every advance; a hit heals every fault and
//! jumps to the rollback. [`run_headless`] drives a plan with no terminal, confirming
//! checklist items itself (marked as auto-confirmed in the report).
//!
//! Not covered: drawing (see `ui.rs`), the report (see `report.rs`).

use crate::live::{Category, Live, fault_text};
use crate::plan::{Action, Metric, Observe, Plan, PlanError};
use crate::source::{Advance, Finished, Source, SourceError};
use sovereign_logic::Time;
use sovereign_sim::scenario::{FaultSpec, Scenario, ScenarioError};
use std::path::Path;
use std::time::Duration;

/// In headless runs, abort conditions are checked at least this often (virtual time).
pub const ABORT_CHECK_EVERY: Duration = Duration::from_secs(60);
/// Sparkline buckets the availability abort condition looks at (3 × 10 min).
pub const ABORT_AVAILABILITY_BUCKETS: usize = 3;
/// Most polls of one headless game day (each advances time or confirms an item).
pub const HEADLESS_POLLS_MAX: u64 = 10_000_000;

/// A game day that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum GameDayError {
    /// The plan file is invalid.
    #[error("{0}")]
    Plan(#[from] PlanError),
    /// The plan's scenario file (its `scenario` field) is unreadable or invalid.
    #[error("{plan}:{line}: scenario: the plan's scenario file is unusable: {source}")]
    Scenario {
        /// The plan file.
        plan: String,
        /// The line of its `scenario` key.
        line: usize,
        /// What was wrong with the scenario file.
        source: ScenarioError,
    },
}

/// An observe step's verdict while part of it waits for the end of a real-time run.
const PENDING: &str = "pending (violations are judged at the end)";

/// One line of the game day's timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Virtual time.
    pub at: Time,
    /// Who: an operator's name, `plan`, or `abort`.
    pub who: String,
    /// What happened.
    pub what: String,
}

/// The outcome of one observe step.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// Step index.
    pub step: usize,
    /// When.
    pub at: Time,
    /// What was expected.
    pub expect: String,
    /// Every check held.
    pub pass: bool,
    /// What was seen.
    pub seen: String,
    /// `no_violations` on a real-time source, judged when the run's report is made
    /// ([`GameDay::settle`]): the value wanted.
    pub violations_due: Option<bool>,
}

/// An operator's answer to a checklist item: what they saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Seen as stated.
    Yes,
    /// Not as stated: counts against the hypothesis, with the operator's words.
    No,
    /// Could not be judged (left for later, with a reason).
    Skip,
}

impl Answer {
    /// As the timeline and the reports write it.
    pub fn word(self) -> &'static str {
        match self {
            Answer::Yes => "confirmed",
            Answer::No => "answered no",
            Answer::Skip => "skipped",
        }
    }
}

/// An answered checklist item.
#[derive(Clone, Debug, PartialEq)]
pub struct Confirmation {
    /// When.
    pub at: Time,
    /// The item.
    pub item: String,
    /// Who answered.
    pub by: String,
    /// Confirmed by the headless runner, not a person.
    pub auto: bool,
    /// The answer.
    pub answer: Answer,
    /// The operator's words (required for a "no").
    pub comment: String,
}

/// A note an operator typed in the console.
#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    /// Virtual time.
    pub at: Time,
    /// Who.
    pub by: String,
    /// The note.
    pub text: String,
}

/// What a game day waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Virtual time must reach this first.
    Advance(Time),
    /// A checklist item must be confirmed.
    Checklist,
    /// The plan is over (steps and rollback).
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Steps,
    RollbackHeal,
    RollbackWait,
    RollbackChecklist,
    Done,
}

/// The scenario's tower names, index = tower id.
fn tower_names(src: &dyn Source) -> Vec<String> {
    src.scenario()
        .towers
        .iter()
        .map(|t| t.name.clone())
        .collect()
}

/// A running game day.
#[derive(Clone, Debug)]
pub struct GameDay {
    /// The plan.
    pub plan: Plan,
    faults: Vec<Vec<FaultSpec>>,
    cursor: usize,
    stage: Stage,
    wait_until: Option<Time>,
    checklist_done: usize,
    /// What happened, in order.
    pub timeline: Vec<Entry>,
    /// Observe steps' outcomes.
    pub observed: Vec<Observed>,
    /// Confirmed checklist items.
    pub confirmations: Vec<Confirmation>,
    /// When and why the game day was aborted.
    pub aborted: Option<(Time, String)>,
    /// Injections an operator made outside the blast radius: (when, who, the fault, the
    /// reason they typed).
    pub overrides: Vec<(Time, String, String, String)>,
    /// Faults injected by the plan or by operators: (fault id, start, who, text).
    pub injected: Vec<(usize, Time, String, String)>,
}

/// Load a plan and its scenario, apply the plan's duration, and resolve its faults.
/// Returns the game day, the scenario to run and the plan's seed (if it has one).
pub fn load(plan_path: &Path) -> Result<(GameDay, Scenario), GameDayError> {
    load_in(plan_path, Path::new("."))
}

/// [`load`], with the plan's scenario path taken relative to `root` (the repository's
/// top level; tests run elsewhere).
pub fn load_in(plan_path: &Path, root: &Path) -> Result<(GameDay, Scenario), GameDayError> {
    let plan = crate::plan::parse_file(plan_path)?;
    let mut scenario =
        sovereign_sim::scenario::parse_file(&root.join(&plan.scenario)).map_err(|source| {
            GameDayError::Scenario {
                plan: plan_path.display().to_string(),
                line: plan.scenario_line,
                source,
            }
        })?;
    if let Some(d) = plan.duration {
        scenario.duration = d;
    }
    let faults = plan.resolve(&scenario)?;
    Ok((GameDay::new(plan, faults), scenario))
}

impl GameDay {
    /// A game day for `plan`, with `faults` from [`Plan::resolve`].
    pub fn new(plan: Plan, faults: Vec<Vec<FaultSpec>>) -> GameDay {
        assert_eq!(plan.steps.len(), faults.len(), "one fault list per step");
        GameDay {
            plan,
            faults,
            cursor: 0,
            stage: Stage::Steps,
            wait_until: None,
            checklist_done: 0,
            timeline: Vec::new(),
            observed: Vec::new(),
            confirmations: Vec::new(),
            overrides: Vec::new(),
            aborted: None,
            injected: Vec::new(),
        }
    }

    /// Record something in the timeline (and the console's log).
    pub fn record(&mut self, live: &mut Live, at: Time, who: &str, what: String) {
        live.log(at, Category::Operator, format!("{who}: {what}"));
        self.timeline.push(Entry {
            at,
            who: who.to_string(),
            what,
        });
    }

    /// Whether the plan is over.
    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// Step index now (`steps.len()` once in the rollback).
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// What the game day is doing, in a few words (for the console).
    pub fn status(&self, now: Time) -> String {
        let waiting = self
            .wait_until
            .filter(|t| *t > now)
            .map(|t| format!(" (until {})", crate::ui::clock(t)))
            .unwrap_or_default();
        match self.stage {
            Stage::Steps => match self.plan.steps.get(self.cursor) {
                Some(s) => format!(
                    "step {}/{}: {}{waiting}",
                    self.cursor + 1,
                    self.plan.steps.len(),
                    s.title
                ),
                None => "steps done".into(),
            },
            Stage::RollbackHeal | Stage::RollbackWait => format!("rollback{waiting}"),
            Stage::RollbackChecklist => "rollback checklist".into(),
            Stage::Done => "complete: q writes the report".into(),
        }
    }

    /// The checklist waiting for confirmation: its title, items, and how many are done.
    pub fn pending_checklist(&self) -> Option<(String, &[String], usize)> {
        match self.stage {
            Stage::Steps => match self.plan.steps.get(self.cursor) {
                Some(s) => match &s.action {
                    Action::Checklist { items } if self.checklist_done < items.len() => {
                        Some((s.title.clone(), items, self.checklist_done))
                    }
                    _ => None,
                },
                None => None,
            },
            Stage::RollbackChecklist
                if self.checklist_done < self.plan.rollback.checklist.len() =>
            {
                Some((
                    "rollback".to_string(),
                    &self.plan.rollback.checklist,
                    self.checklist_done,
                ))
            }
            _ => None,
        }
    }

    /// Confirm the next pending checklist item.
    pub fn confirm(&mut self, live: &mut Live, now: Time, by: &str, auto: bool) {
        self.answer(live, now, by, auto, Answer::Yes, "");
    }

    /// Answer the next pending checklist item, with the operator's words.
    pub fn answer(
        &mut self,
        live: &mut Live,
        now: Time,
        by: &str,
        auto: bool,
        answer: Answer,
        comment: &str,
    ) {
        let Some((_, items, done)) = self.pending_checklist() else {
            return;
        };
        let item = items[done].clone();
        self.checklist_done += 1;
        let how = if auto {
            "auto-confirmed"
        } else {
            answer.word()
        };
        let comment = comment.trim().to_string();
        let words = if comment.is_empty() {
            String::new()
        } else {
            format!(" — \"{comment}\"")
        };
        self.record(live, now, by, format!("{how}: {item}{words}"));
        self.confirmations.push(Confirmation {
            at: now,
            item,
            by: by.to_string(),
            auto,
            answer,
            comment,
        });
    }

    /// The answers given to the checklist pending now, in item order.
    pub fn pending_answers(&self) -> &[Confirmation] {
        let done = self.pending_checklist().map_or(0, |(_, _, d)| d);
        &self.confirmations[self.confirmations.len().saturating_sub(done)..]
    }

    /// Perform everything that can happen now; say what the plan waits for.
    pub fn poll(&mut self, src: &mut dyn Source, live: &mut Live) -> Poll {
        // Each pass either returns or moves the cursor/stage forward, so this ends.
        loop {
            let now = src.now();
            match self.stage {
                Stage::Steps => {
                    let Some(step) = self.plan.steps.get(self.cursor).cloned() else {
                        self.stage = Stage::RollbackHeal;
                        continue;
                    };
                    if let Some(at) = step.at {
                        let t = Time::ZERO + at;
                        if now < t && !src.is_done() {
                            return Poll::Advance(t);
                        }
                    }
                    match &step.action {
                        Action::Inject { .. } => {
                            let faults = self.faults[self.cursor].clone();
                            for spec in faults {
                                // A failure is recorded in the timeline.
                                let _ = self.inject(src, live, spec, "plan");
                            }
                        }
                        Action::Wait { duration } => {
                            let until = *self.wait_until.get_or_insert(now + *duration);
                            if now < until && !src.is_done() {
                                return Poll::Advance(until);
                            }
                            self.wait_until = None;
                        }
                        Action::Observe(o) => {
                            let (pass, seen) = evaluate(o, src, live);
                            let violations_due = o.no_violations.filter(|_| src.real_time());
                            let verdict = match (pass, violations_due) {
                                (false, _) => "NOT as expected",
                                (true, None) => "as expected",
                                (true, Some(_)) => PENDING,
                            };
                            self.record(
                                live,
                                now,
                                "plan",
                                format!("observe: {} — {verdict}: {seen}", o.expect),
                            );
                            self.observed.push(Observed {
                                step: self.cursor,
                                at: now,
                                expect: o.expect.clone(),
                                pass,
                                seen,
                                violations_due,
                            });
                        }
                        Action::Checklist { items } => {
                            if self.checklist_done < items.len() {
                                return Poll::Checklist;
                            }
                            self.checklist_done = 0;
                        }
                    }
                    self.cursor += 1;
                }
                Stage::RollbackHeal => {
                    if self.plan.rollback.heal {
                        self.heal(src, live, "rollback");
                    }
                    self.enter_rollback_wait(now);
                }
                Stage::RollbackWait => {
                    if let Some(t) = self.wait_until
                        && now < t
                        && !src.is_done()
                    {
                        return Poll::Advance(t);
                    }
                    self.wait_until = None;
                    self.checklist_done = 0;
                    self.stage = Stage::RollbackChecklist;
                }
                Stage::RollbackChecklist => {
                    if self.checklist_done < self.plan.rollback.checklist.len() {
                        return Poll::Checklist;
                    }
                    if !self.plan.free_play {
                        self.record(live, now, "plan", "game day complete".into());
                    }
                    self.stage = Stage::Done;
                }
                Stage::Done => return Poll::Done,
            }
        }
    }

    fn enter_rollback_wait(&mut self, now: Time) {
        self.wait_until = Some(now + self.plan.rollback.wait);
        self.stage = Stage::RollbackWait;
    }

    /// Inject a fault now on behalf of `who` (the plan or an operator); a failure is
    /// recorded, and its text returned.
    pub fn inject(
        &mut self,
        src: &mut dyn Source,
        live: &mut Live,
        spec: FaultSpec,
        who: &str,
    ) -> Result<(), String> {
        let towers = tower_names(src);
        let text = fault_text(&spec, &towers);
        match src.inject(spec) {
            Ok((id, at)) => {
                self.record(live, at, who, format!("injected fault {id}: {text}"));
                self.injected.push((id, at, who.to_string(), text));
                Ok(())
            }
            Err(e) => {
                let now = src.now();
                let failure = format!("could not inject {text}: {e}");
                self.record(live, now, who, failure.clone());
                Err(failure)
            }
        }
    }

    /// Inject a fault outside the plan's blast radius on behalf of `who`, who typed
    /// `reason`: recorded in the timeline and the report before the fault starts.
    pub fn inject_outside(
        &mut self,
        src: &mut dyn Source,
        live: &mut Live,
        spec: FaultSpec,
        who: &str,
        reason: &str,
    ) -> Result<(), String> {
        let towers = tower_names(src);
        let text = fault_text(&spec, &towers);
        let now = src.now();
        self.record(
            live,
            now,
            who,
            format!(
                "overrode the blast radius ({}) for {text}: \"{reason}\"",
                self.plan.blast_radius.towers.join(", ")
            ),
        );
        self.overrides
            .push((now, who.to_string(), text, reason.to_string()));
        self.inject(src, live, spec, who)
    }

    /// Heal every active fault on behalf of `who`.
    pub fn heal(&mut self, src: &mut dyn Source, live: &mut Live, who: &str) {
        match src.heal() {
            Ok((ids, at)) if !ids.is_empty() => {
                self.record(live, at, who, format!("healed faults {ids:?}"));
            }
            Ok(_) => {
                let now = src.now();
                self.record(live, now, who, "heal: no active fault".into());
            }
            Err(e) => {
                let now = src.now();
                self.record(live, now, who, format!("could not heal: {e}"));
            }
        }
    }

    /// Check the abort conditions (during the steps only); on a hit, heal and go to the
    /// rollback. Returns the condition that fired.
    pub fn check_aborts(&mut self, src: &mut dyn Source, live: &mut Live) -> Option<String> {
        if self.stage != Stage::Steps || self.aborted.is_some() {
            return None;
        }
        let snap = src.snapshot();
        let hit = self.plan.aborts.iter().find_map(|a| {
            let value = match a.metric {
                Metric::Availability => live.availability_recent(ABORT_AVAILABILITY_BUCKETS),
                Metric::Backlog => Some(live.backlog() as f64),
                Metric::Soc => live.soc_min(),
                // A real-time source judges at the end: no live count to abort on.
                Metric::Violations if src.real_time() => None,
                Metric::Violations => Some(snap.violations.len() as f64),
                Metric::TowersDown => {
                    Some(snap.towers.iter().filter(|t| !t.running).count() as f64)
                }
            }?;
            let fired = if a.below {
                value < a.threshold
            } else {
                value > a.threshold
            };
            fired.then(|| format!("{} (measured {value:.3}): {}", a.text(), a.reason))
        })?;
        self.abort(src, live, "abort", &hit);
        Some(hit)
    }

    /// Abort now: record why, heal every fault, go to the rollback's wait.
    pub fn abort(&mut self, src: &mut dyn Source, live: &mut Live, who: &str, why: &str) {
        if self.aborted.is_some() || self.stage == Stage::Done {
            return;
        }
        let now = src.now();
        self.aborted = Some((now, why.to_string()));
        self.record(live, now, who, format!("ABORT: {why}"));
        self.heal(src, live, who);
        self.checklist_done = 0;
        self.enter_rollback_wait(src.now());
    }

    /// Settle what a real-time source could only judge at the end: each observe step's
    /// `no_violations` against the report's violations up to the step's time; its
    /// timeline line is rewritten with the verdict.
    pub fn settle(&mut self, report: &sovereign_sim::RunReport) {
        for ob in &mut self.observed {
            let Some(want) = ob.violations_due.take() else {
                continue;
            };
            let n = report.violations.iter().filter(|v| v.at <= ob.at).count();
            let held = (n == 0) == want;
            let pending = format!("observe: {} — {PENDING}: {}", ob.expect, ob.seen);
            ob.seen = ob.seen.replace(
                "violations judged at the end of the run",
                &format!("{n} violations by then (judged at the end of the run)"),
            );
            ob.pass &= held;
            let verdict = if ob.pass {
                "as expected"
            } else {
                "NOT as expected"
            };
            if let Some(e) = self
                .timeline
                .iter_mut()
                .find(|e| e.at == ob.at && e.what == pending)
            {
                e.what = format!("observe: {} — {verdict}: {}", ob.expect, ob.seen);
            }
        }
    }

    /// The plan ended before its steps were done (operator quit): say so in the timeline.
    pub fn note_early_end(&mut self, live: &mut Live, now: Time, by: &str) {
        if self.stage != Stage::Done {
            let left = self.plan.steps.len().saturating_sub(self.cursor);
            self.record(
                live,
                now,
                by,
                format!("ended the game day early ({left} steps not run)"),
            );
        }
    }
}

/// Evaluate an observe step: (every check held, what was seen).
fn evaluate(o: &Observe, src: &dyn Source, live: &Live) -> (bool, String) {
    let snap = src.snapshot();
    let mut pass = true;
    let mut seen = Vec::new();
    if let Some(name) = &o.tower {
        match snap.towers.iter().find(|t| &t.name == name) {
            None => {
                pass = false;
                seen.push(format!("no tower {name}"));
            }
            Some(t) => {
                if let Some(want) = o.active_link {
                    let got = t.active_link;
                    pass &= got == want;
                    seen.push(format!(
                        "{name} active link {}",
                        got.map_or("none".to_string(), |l| l.to_string())
                    ));
                }
                if let Some(want) = o.running {
                    pass &= t.running == want;
                    seen.push(format!(
                        "{name} {}",
                        if t.running { "running" } else { "not running" }
                    ));
                }
                if let Some(want) = o.steady {
                    pass &= t.steady == want;
                    seen.push(format!(
                        "{name} {}",
                        if t.steady { "steady" } else { "not steady" }
                    ));
                }
                if let Some(want) = &o.power_mode {
                    pass &= t.power_mode.name() == want;
                    seen.push(format!("{name} power {}", t.power_mode.name()));
                }
            }
        }
    }
    if let Some(min) = o.availability_min {
        let a = live.availability();
        pass &= a >= min;
        seen.push(format!("availability {:.2}%", a * 100.0));
    }
    if o.no_violations.is_some() && src.real_time() {
        // Settled against the report's violations up to now ([`GameDay::settle`]).
        seen.push("violations judged at the end of the run".into());
    } else if let Some(want) = o.no_violations {
        let n = snap.violations.len();
        pass &= (n == 0) == want;
        seen.push(format!("{n} violations"));
    }
    (pass, seen.join(", "))
}

/// Everything a finished game day hands to the report.
#[derive(Debug)]
pub struct Outcome {
    /// The game day's record.
    pub gameday: GameDay,
    /// The finished run.
    pub finished: Finished,
    /// Notes typed by operators.
    pub notes: Vec<Note>,
    /// Who ran it.
    pub operator: String,
    /// Ran without a terminal.
    pub headless: bool,
}

/// Run a game day with no terminal: checklist items are auto-confirmed, abort conditions
/// are checked at least every [`ABORT_CHECK_EVERY`] of virtual time, and the run goes on
/// to its end so the replay file reproduces it whole.
pub fn run_headless(
    mut gd: GameDay,
    mut src: Box<dyn Source>,
    operator: &str,
) -> Result<Outcome, SourceError> {
    let mut live = Live::new();
    live.update(&src.take_observations());
    for _ in 0..HEADLESS_POLLS_MAX {
        gd.check_aborts(src.as_mut(), &mut live);
        match gd.poll(src.as_mut(), &mut live) {
            Poll::Advance(t) => {
                let next = t.min(src.now() + ABORT_CHECK_EVERY);
                let r = src.advance(next, u64::MAX);
                live.update(&src.take_observations());
                if r == Advance::Done {
                    // The run ended first; the plan's remaining waits are moot.
                    let now = src.now();
                    gd.record(
                        &mut live,
                        now,
                        "plan",
                        "the run ended before the plan".into(),
                    );
                    gd.stage = Stage::Done;
                }
            }
            Poll::Checklist => {
                let now = src.now();
                gd.confirm(&mut live, now, operator, true);
            }
            Poll::Done => break,
        }
    }
    let finished = src.finish()?;
    gd.settle(&finished.report);
    Ok(Outcome {
        gameday: gd,
        finished,
        notes: Vec::new(),
        operator: operator.to_string(),
        headless: true,
    })
}
