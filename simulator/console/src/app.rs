//! The console's state and what each key does (ratatui demo2's `App`).
//!
//! [`App`] holds the data source, the live KPIs and log, the operator's selection, the
//! screen shown and the game day if one runs. [`App::handle_key`] maps a key to one small
//! method; [`App::tick`] moves virtual time forward by the wall time the driver measured
//! times the speed. Given the same keys and ticks, an `App` does the same thing: it reads
//! no clock of its own, so tests drive it directly.
//!
//! The console acts on the run only through the [`Source`] verbs (advance, step, inject,
//! heal, restart); everything it shows comes from snapshots and observations.
//!
//! Not covered: drawing (see `ui.rs`), the terminal loop (see `driver.rs`).

use crate::gameday::{Answer, GameDay, Note, Outcome, Poll};
use crate::live::{Category, Live, fault_text};
use crate::source::{Advance, Source, SourceError};
use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::{Position, Rect};
use sovereign_logic::Time;
use sovereign_sim::scenario::faults::Live as Injection;
use sovereign_sim::scenario::{FaultKind, FaultSpec, Target};
use sovereign_sim::world::Snapshot;
use std::collections::BTreeMap;
use std::time::Duration;

/// Speeds: virtual seconds per wall second; `None` is unthrottled.
pub const SPEEDS: [Option<u64>; 7] = [
    Some(1),
    Some(10),
    Some(100),
    Some(1_000),
    Some(10_000),
    Some(100_000),
    None,
];
/// Most events one tick processes (keeps the console responsive when unthrottled).
pub const TICK_EVENTS_MAX: u64 = 20_000;
/// Longest text typed in a prompt.
pub const INPUT_LEN_MAX: usize = 200;
/// Log lines one PgUp / PgDn moves.
pub const LOG_PAGE: usize = 10;
/// Log lines one turn of the mouse wheel moves.
pub const LOG_WHEEL: usize = 3;

/// The faults an operator can inject by hotkey (in the inject menu), as the fault table
/// declares them: key, label, the fault and how long it lasts.
pub fn injections() -> impl Iterator<Item = &'static Injection> {
    FaultKind::all().filter_map(|d| d.live.as_ref())
}

/// What a prompt is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prompt {
    /// A note for the report.
    Note,
    /// Jump to a virtual time.
    Jump,
    /// Restart with a seed.
    Seed,
    /// Filter the log by text.
    Filter,
    /// Why inject outside the game day's blast radius.
    Override,
    /// The inject form: the fault a hotkey chose, as a plan step writes it, to edit.
    Fault,
    /// The operator's words for a checklist answer.
    Answer(Answer),
}

impl Prompt {
    /// Its label.
    pub fn label(self) -> &'static str {
        match self {
            Prompt::Note => "note",
            Prompt::Jump => "jump to (e.g. 6h, +30m)",
            Prompt::Seed => "restart with seed",
            Prompt::Filter => "filter log",
            Prompt::Override => "outside the blast radius: type why to inject anyway (Esc cancels)",
            Prompt::Fault => "inject — edit target, parameters, `for`; Enter injects, Esc cancels",
            Prompt::Answer(Answer::No) => "answer no: what did you see?",
            Prompt::Answer(Answer::Skip) => "skip: why can it not be judged now? (optional)",
            Prompt::Answer(Answer::Yes) => "confirm (a comment is optional)",
        }
    }
}

/// Which screen is up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Screen {
    /// The panels.
    Main,
    /// Every key.
    Help,
    /// The inject menu.
    Inject,
    /// Typing into a prompt.
    Input(Prompt, String),
    /// A destructive key waits for `y`.
    Confirm(Danger),
}

/// What a destructive key would do, asked before it is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Danger {
    /// Quit while the run goes on.
    Quit,
    /// Heal every active fault.
    Heal,
    /// Abort the game day.
    Abort,
}

impl Danger {
    /// The question.
    pub fn question(self) -> &'static str {
        match self {
            Danger::Quit => "quit now? the run is not over (a game day writes its report)",
            Danger::Heal => "heal every active fault?",
            Danger::Abort => "abort the game day? (heals, runs the rollback, refutes)",
        }
    }
}

/// What is selected in the topology: the origin or a tower, and optionally one of the
/// tower's uplinks (or its Wi-Fi).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selected {
    /// The origin.
    Origin,
    /// A tower; `link` indexes its uplinks, and `links.len()` means its Wi-Fi.
    Tower {
        /// tower index
        tower: usize,
        /// uplink index (None: the whole tower)
        link: Option<usize>,
    },
}

/// The console.
pub struct App {
    source: Box<dyn Source>,
    /// Live KPIs and the event log.
    pub live: Live,
    snapshot: Snapshot,
    /// Who is at the keyboard (logged with every injection).
    pub operator: String,
    /// Virtual time stands still.
    pub paused: bool,
    speed: usize,
    /// The topology selection.
    pub selected: Selected,
    /// The screen shown.
    pub screen: Screen,
    /// Show only this category in the log.
    pub filter: Option<Category>,
    /// Show only log lines containing this.
    pub text_filter: String,
    /// The event log's scrollback: `None` follows the newest line; `Some(n)` holds the
    /// view with line `n` (a number in the run's log) at the bottom while new lines
    /// arrive (k9s' and bottom's follow mode).
    pub log_pin: Option<u64>,
    /// The event-log panel's height at the last draw (scrolling keeps a full panel).
    pub log_height: std::cell::Cell<usize>,
    /// Notes typed by the operator.
    pub notes: Vec<Note>,
    /// The game day, if one runs.
    pub gameday: Option<GameDay>,
    /// Who injected each fault (fault id → operator).
    pub injected_by: BTreeMap<usize, String>,
    /// One line of feedback.
    pub status: String,
    jump_to: Option<Time>,
    /// When the note prompt opened: a note is about what the operator saw then, even if
    /// virtual time ran on while they typed.
    note_at: Option<Time>,
    /// An injection outside the blast radius, waiting for the operator's reason (empty:
    /// none).
    pending_injection: Vec<FaultSpec>,
    /// Whether the run was paused when help opened (help holds time; closing restores).
    paused_before_help: bool,
    /// The run's KPIs so far, against the scenario's SLOs (the same computation as the
    /// report's), and how many observations they cover.
    summary: (u64, sovereign_sim::kpi::Kpis),
    quit: bool,
}

impl App {
    /// A console on `source`, paused or not, at speed ×1000.
    pub fn new(source: Box<dyn Source>, operator: String, gameday: Option<GameDay>) -> App {
        let mut source = source;
        let snapshot = source.snapshot();
        let mut live = Live::new();
        live.update(&source.take_observations());
        let mut app = App {
            source,
            live,
            snapshot,
            operator,
            paused: false,
            speed: 3,
            selected: Selected::Tower {
                tower: 0,
                link: None,
            },
            screen: Screen::Main,
            filter: None,
            text_filter: String::new(),
            log_pin: None,
            log_height: std::cell::Cell::new(LOG_PAGE),
            notes: Vec::new(),
            gameday,
            injected_by: BTreeMap::new(),
            status: "press ? for every key".into(),
            jump_to: None,
            note_at: None,
            pending_injection: Vec::new(),
            paused_before_help: false,
            summary: (0, sovereign_sim::kpi::Kpis::default()),
            quit: false,
        };
        if app.snapshot.towers.is_empty() {
            app.selected = Selected::Origin;
        }
        app
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The source (read-only).
    pub fn source(&self) -> &dyn Source {
        self.source.as_ref()
    }

    /// Speed now (`None`: unthrottled).
    pub fn speed(&self) -> Option<u64> {
        SPEEDS[self.speed]
    }

    /// Whether the operator asked to quit.
    pub fn should_quit(&self) -> bool {
        self.quit
    }

    fn refresh(&mut self) {
        self.live.update(&self.source.take_observations());
        self.snapshot = self.source.snapshot();
        if self.summary.0 != self.live.seen() {
            let mut k = self.live.kpis().finish();
            // The oracles' violations so far (the score's safety gate reads them).
            k.violations = self.snapshot.violations.len() as u64;
            k.apply_slo(&self.source.scenario().slo);
            self.summary = (self.live.seen(), k);
        }
    }

    /// The towers' names, index = tower id.
    fn tower_names(&self) -> Vec<String> {
        self.snapshot
            .towers
            .iter()
            .map(|t| t.name.clone())
            .collect()
    }

    /// The run's KPIs so far (MTTD, MTTR, error budget, …), as the report computes them.
    pub fn summary(&self) -> &sovereign_sim::kpi::Kpis {
        &self.summary.1
    }

    // ----- time ----------------------------------------------------------------------

    /// Move virtual time forward by `wall` × speed (or by a bounded number of events when
    /// unthrottled or jumping), run the game day, check its abort conditions.
    pub fn tick(&mut self, wall: Duration) {
        if self.source.real_time() {
            return self.tick_real(wall);
        }
        self.run_gameday();
        let checklist = self
            .gameday
            .as_ref()
            .is_some_and(|g| g.pending_checklist().is_some());
        if self.source.is_done() || checklist {
            self.refresh();
            return;
        }
        let now = self.source.now();
        let mut target = match (self.jump_to, self.paused, self.speed()) {
            (Some(t), _, _) => t,
            (None, true, _) => {
                self.refresh();
                return;
            }
            (None, false, Some(x)) => now + wall.saturating_mul(x.min(u32::MAX as u64) as u32),
            (None, false, None) => Time::from_micros(u64::MAX / 2),
        };
        if let Some(Poll::Advance(t)) = self.peek_gameday() {
            target = target.min(t);
        }
        let r = self.source.advance(target, TICK_EVENTS_MAX);
        if let Some(j) = self.jump_to
            && (self.source.now() >= j || r == Advance::Done)
        {
            self.jump_to = None;
            self.status = format!("jumped to {}", crate::ui::clock(self.source.now()));
        }
        self.after_advance();
    }

    /// After the source advanced: the view refreshed, the game day's abort conditions
    /// checked and its next step run, the view refreshed again.
    fn after_advance(&mut self) {
        self.refresh();
        if let Some(gd) = self.gameday.as_mut() {
            gd.check_aborts(self.source.as_mut(), &mut self.live);
        }
        self.run_gameday();
        self.refresh();
    }

    /// A tick of a real-time source: real processes run on whatever the console shows (a
    /// pending checklist, the help, a prompt), so the lab's own schedule is carried out
    /// every frame; the game day acts on what it sees.
    fn tick_real(&mut self, wall: Duration) {
        self.run_gameday();
        if !self.source.is_done() {
            let target = self.source.now() + wall;
            self.source.advance(target, TICK_EVENTS_MAX);
        }
        self.after_advance();
    }

    /// For a real-time source, refuse a time control (with why, on the status line).
    fn no_time_control(&mut self) -> bool {
        if self.source.real_time() {
            let pause = FaultKind::decl_named("pause")
                .and_then(|d| d.live.as_ref())
                .map_or(String::new(), |l| {
                    format!(" (a pause fault: i, then {})", l.key)
                });
            self.status = format!(
                "real processes run in real time: no pause, step, speed, jump or restart{pause}"
            );
            return true;
        }
        false
    }

    fn peek_gameday(&mut self) -> Option<Poll> {
        let gd = self.gameday.as_mut()?;
        Some(gd.poll(self.source.as_mut(), &mut self.live))
    }

    fn run_gameday(&mut self) {
        if let Some(gd) = self.gameday.as_mut() {
            gd.poll(self.source.as_mut(), &mut self.live);
        }
    }

    /// Pause or resume.
    pub fn toggle_pause(&mut self) {
        if self.no_time_control() {
            return;
        }
        self.paused = !self.paused;
        self.status = if self.paused { "paused" } else { "running" }.into();
    }

    /// Process the next event only (pauses).
    pub fn step_next(&mut self) {
        if self.no_time_control() {
            return;
        }
        self.paused = true;
        if self.source.step() {
            self.status = format!("stepped to {}", crate::ui::clock(self.source.now()));
        } else {
            self.status = "the run is over".into();
        }
        self.refresh();
        self.run_gameday();
    }

    /// One speed up.
    pub fn faster(&mut self) {
        if self.no_time_control() {
            return;
        }
        self.speed = (self.speed + 1).min(SPEEDS.len() - 1);
        self.status = format!("speed {}", crate::ui::speed_text(self.speed()));
    }

    /// One speed down.
    pub fn slower(&mut self) {
        if self.no_time_control() {
            return;
        }
        self.speed = self.speed.saturating_sub(1);
        self.status = format!("speed {}", crate::ui::speed_text(self.speed()));
    }

    /// Unthrottled (or back to ×1000).
    pub fn toggle_unthrottled(&mut self) {
        if self.no_time_control() {
            return;
        }
        self.speed = if self.speed().is_none() {
            3
        } else {
            SPEEDS.len() - 1
        };
        self.status = format!("speed {}", crate::ui::speed_text(self.speed()));
    }

    /// Jump to a virtual time: `6h` (absolute) or `+30m` (from now).
    pub fn jump(&mut self, text: &str) {
        if self.no_time_control() {
            return;
        }
        let (rel, s) = match text.trim().strip_prefix('+') {
            Some(r) => (true, r),
            None => (false, text.trim()),
        };
        match sovereign_sim::scenario::parse::parse_duration(s, false) {
            Ok((_, d)) => {
                let t = if rel {
                    self.source.now() + d
                } else {
                    Time::ZERO + d
                };
                if t <= self.source.now() {
                    self.status = format!(
                        "cannot go back to {} (now {})",
                        crate::ui::clock(t),
                        crate::ui::clock(self.source.now())
                    );
                } else {
                    self.jump_to = Some(t);
                    self.status = format!("jumping to {}", crate::ui::clock(t));
                }
            }
            Err(e) => self.status = e,
        }
    }

    /// Start over with `seed` (not during a game day: its plan and report belong to one
    /// run).
    pub fn restart(&mut self, text: &str) {
        if self.no_time_control() {
            return;
        }
        if self.gameday.as_ref().is_some_and(|g| !g.plan.free_play) {
            self.status = "no restart during a game day".into();
            return;
        }
        let seed = if text.trim().is_empty() {
            self.source.seed().wrapping_add(1)
        } else {
            match text.trim().parse::<u64>() {
                Ok(s) => s,
                Err(_) => {
                    self.status = format!("not a seed: {text:?}");
                    return;
                }
            }
        };
        self.source.restart(seed);
        // A free-play journal belongs to one run: the new run starts a new one.
        if let Some(gd) = self.gameday.as_mut() {
            *gd = GameDay::new(gd.plan.clone(), Vec::new());
            self.notes.clear();
        }
        self.live = Live::new();
        self.injected_by.clear();
        self.jump_to = None;
        self.refresh();
        let now = self.source.now();
        let who = self.operator.clone();
        self.live.log(
            now,
            Category::Operator,
            format!("{who}: restarted with seed {seed}"),
        );
        self.status = format!("restarted with seed {seed}");
    }

    // ----- the event log's scrollback ------------------------------------------------

    /// The log lines the filters let through, with their numbers, oldest first (what
    /// the event-log panel draws and scrolls over).
    pub fn shown_log_lines(&self) -> Vec<(u64, &crate::live::LogLine)> {
        self.live
            .numbered_log_lines()
            .filter(|(_, l)| self.filter.is_none_or(|c| c == l.category))
            .filter(|(_, l)| self.text_filter.is_empty() || l.text.contains(&self.text_filter))
            .collect()
    }

    /// The numbers of the log lines the filters let through, oldest first.
    pub fn shown_log(&self) -> Vec<u64> {
        self.shown_log_lines().into_iter().map(|(n, _)| n).collect()
    }

    /// Scroll the event log `up` lines back (down when negative); reaching the newest
    /// line follows again.
    pub fn scroll_log(&mut self, up: i64) {
        let shown = self.shown_log();
        let Some(last) = shown.len().checked_sub(1) else {
            self.status = "log: nothing to scroll".into();
            return;
        };
        // The bottom line never rises above the panel's height: the view stays full.
        let lowest = self.log_height.get().max(1).min(shown.len()) - 1;
        let bottom = self.log_pin.map_or(last, |pin| {
            (shown.partition_point(|n| *n <= pin).max(1) - 1).max(lowest)
        });
        let by = usize::try_from(up.unsigned_abs()).unwrap_or(usize::MAX);
        let target = if up >= 0 {
            bottom.saturating_sub(by).max(lowest)
        } else {
            bottom.saturating_add(by)
        };
        if target >= last {
            self.follow_log();
        } else {
            self.log_pin = Some(shown[target]);
            self.status = format!("log: {} newer line(s) below · End follows", last - target);
        }
    }

    /// Follow the newest log line again.
    pub fn follow_log(&mut self) {
        self.log_pin = None;
        self.status = "log: following the newest line".into();
    }

    // ----- selection -----------------------------------------------------------------

    /// Next tower (the origin comes first).
    pub fn select_next(&mut self) {
        let n = self.snapshot.towers.len();
        self.selected = match self.selected {
            Selected::Origin if n > 0 => Selected::Tower {
                tower: 0,
                link: None,
            },
            Selected::Tower { tower, .. } if tower + 1 < n => Selected::Tower {
                tower: tower + 1,
                link: None,
            },
            _ => Selected::Origin,
        };
    }

    /// Previous tower.
    pub fn select_prev(&mut self) {
        let n = self.snapshot.towers.len();
        self.selected = match self.selected {
            Selected::Tower { tower: 0, .. } => Selected::Origin,
            Selected::Tower { tower, .. } => Selected::Tower {
                tower: tower - 1,
                link: None,
            },
            Selected::Origin if n > 0 => Selected::Tower {
                tower: n - 1,
                link: None,
            },
            Selected::Origin => Selected::Origin,
        };
    }

    /// Cycle the selected tower's link: whole tower → each uplink → Wi-Fi → whole tower.
    pub fn select_link(&mut self, forward: bool) {
        if let Selected::Tower { tower, link } = self.selected {
            let n = self.snapshot.towers[tower].links.len() + 1; // + Wi-Fi
            let pos = link.map_or(0, |l| l + 1); // 0 = whole tower
            let next = if forward {
                (pos + 1) % (n + 1)
            } else {
                (pos + n) % (n + 1)
            };
            self.selected = Selected::Tower {
                tower,
                link: next.checked_sub(1),
            };
        }
    }

    /// The selection in words: `origin`, `tower-0`, `tower-0/fibre`, `tower-0/wifi`.
    pub fn selection_text(&self) -> String {
        match self.selected {
            Selected::Origin => "origin".into(),
            Selected::Tower { tower, link } => {
                let t = &self.snapshot.towers[tower];
                match link {
                    None => t.name.clone(),
                    Some(l) if l < t.links.len() => format!("{}/{}", t.name, t.links[l].kind),
                    Some(_) => format!("{}/wifi", t.name),
                }
            }
        }
    }

    // ----- faults --------------------------------------------------------------------

    /// The fault a hotkey means on the current selection, or why it does not apply: the
    /// selected link or Wi-Fi when the kind may target it, else the selected tower (or
    /// its Wi-Fi, for a Wi-Fi-only kind), else the origin.
    pub fn fault_for(&self, key: char) -> Result<FaultSpec, String> {
        let live = injections()
            .find(|l| l.key == key)
            .ok_or_else(|| format!("no fault on key {key:?}"))?;
        let allowed = live.kind.decl().targets;
        let mut candidates = Vec::with_capacity(3);
        match self.selected {
            Selected::Origin => candidates.push(Target::Origin),
            Selected::Tower { tower, link } => {
                match link.map(|l| self.snapshot.towers[tower].links.get(l).map(|x| x.kind)) {
                    Some(Some(kind)) => candidates.push(Target::Link(tower, kind)),
                    Some(None) => candidates.push(Target::Wifi(tower)),
                    None => {}
                }
                candidates.extend([Target::Tower(tower), Target::Wifi(tower)]);
            }
        }
        let target = candidates
            .into_iter()
            .find(|t| allowed.contains(t))
            .ok_or_else(|| {
                format!(
                    "{} needs {}: select one with Tab",
                    live.label,
                    allowed.phrase()
                )
            })?;
        Ok(FaultSpec {
            at: Duration::ZERO,
            duration: live.lasts,
            target,
            kind: live.kind.clone(),
        })
    }

    /// Open the inject form on the fault a hotkey names on the selection: its target,
    /// parameters and duration as a plan step writes them (`kind = …, target = …, …,
    /// for = …`), for the operator to edit; Enter injects ([`App::inject_form`]). The
    /// duration offered is the hotkey's, or the rest of the scenario if that is shorter.
    pub fn inject_key(&mut self, key: char) {
        self.screen = Screen::Main;
        let mut spec = match self.fault_for(key) {
            Ok(s) => s,
            Err(e) => {
                self.status = e;
                return;
            }
        };
        let now = self.source.now().saturating_since(Time::ZERO);
        let rest = self.source.scenario().duration.saturating_sub(now);
        // Whole seconds, at least one: the form shows what will run.
        let rest = Duration::from_secs(rest.as_secs().max(1));
        spec.duration = spec.duration.min(rest);
        let text = self.source.scenario().fault_inline(&spec);
        self.status = format!("inject {}: edit, then Enter", spec.kind.name());
        self.screen = Screen::Input(Prompt::Fault, text);
    }

    /// Inject what the inject form says, checked as a plan step's fault is; a mistake
    /// keeps the form open with the field and what was expected. Outside a game day's
    /// blast radius it asks for the operator's reason first.
    pub fn inject_form(&mut self, text: &str) {
        let now = self.source.now().saturating_since(Time::ZERO);
        let specs = match crate::plan::parse_inline_fault(text, self.source.scenario(), now) {
            Ok(s) => s,
            Err(e) => {
                self.status = format!("not injected: {}: {}", e.field, e.message);
                self.screen = Screen::Input(Prompt::Fault, text.to_string());
                return;
            }
        };
        let towers = self.tower_names();
        if let Some(gd) = &self.gameday
            && let Some(out) = specs
                .iter()
                .find(|s| !gd.plan.blast_radius.allows(&s.target, &towers))
        {
            // Outside the plan's radius: not without a reason that goes in the report.
            self.status = format!(
                "{} is outside the blast radius ({})",
                fault_text(out, &towers),
                gd.plan.blast_radius.towers.join(", ")
            );
            self.pending_injection = specs;
            self.screen = Screen::Input(Prompt::Override, String::new());
            return;
        }
        self.inject_all(specs, None);
    }

    /// Inject every fault of one form (a `*` target is one per tower) and say in the
    /// status line what came of all of them, not only of the last.
    fn inject_all(&mut self, specs: Vec<FaultSpec>, reason: Option<&str>) {
        let n = specs.len();
        let before = self.snapshot.faults.len();
        let mut failed = Vec::new();
        for spec in specs {
            if let Err(e) = self.inject_spec(spec, reason) {
                failed.push(e);
            }
        }
        if n > 1 {
            let ids: Vec<String> = (before..self.snapshot.faults.len())
                .map(|i| i.to_string())
                .collect();
            self.status = format!(
                "{} injected {} of {n} faults ({}) at {}",
                self.operator,
                ids.len(),
                ids.join(", "),
                crate::ui::clock(self.source.now())
            );
            if let Some(last) = failed.last() {
                self.status.push_str(&format!("; {last}"));
            }
        }
    }

    /// Inject `spec` now; `reason`: the operator's words for going outside the blast
    /// radius. The status line says what came of it; a failure's text is also returned.
    fn inject_spec(&mut self, spec: FaultSpec, reason: Option<&str>) -> Result<(), String> {
        let who = self.operator.clone();
        let towers = self.tower_names();
        let text = fault_text(&spec, &towers);
        let before = self.snapshot.faults.len();
        let outcome = if let Some(gd) = self.gameday.as_mut() {
            match reason {
                Some(r) => gd.inject_outside(self.source.as_mut(), &mut self.live, spec, &who, r),
                None => gd.inject(self.source.as_mut(), &mut self.live, spec, &who),
            }
        } else {
            match self.source.inject(spec) {
                Ok((id, at)) => {
                    self.live.log(
                        at,
                        Category::Operator,
                        format!("{who}: injected fault {id}: {text}"),
                    );
                    Ok(())
                }
                Err(e) => Err(format!("could not inject {text}: {e}")),
            }
        };
        if let Err(e) = &outcome {
            self.status = e.clone();
        }
        self.refresh();
        if self.snapshot.faults.len() > before {
            let id = self.snapshot.faults.len() - 1;
            self.injected_by.insert(id, who.clone());
            self.status = format!(
                "{who} injected fault {id} at {}: {text}",
                crate::ui::clock(self.source.now())
            );
        }
        outcome
    }

    /// Heal every active fault (logged with the operator's name).
    pub fn heal(&mut self) {
        let who = self.operator.clone();
        if let Some(gd) = self.gameday.as_mut() {
            gd.heal(self.source.as_mut(), &mut self.live, &who);
        } else {
            match self.source.heal() {
                Ok((ids, at)) => self.live.log(
                    at,
                    Category::Operator,
                    format!("{who}: healed faults {ids:?}"),
                ),
                Err(e) => self.status = format!("could not heal: {e}"),
            }
        }
        self.refresh();
        self.status = format!("{who} healed every active fault");
    }

    // ----- game day ------------------------------------------------------------------

    /// Confirm the next checklist item.
    pub fn confirm(&mut self) {
        self.answer(Answer::Yes, "");
    }

    /// Answer the next checklist item with the operator's words; a "no" needs them.
    pub fn answer(&mut self, answer: Answer, comment: &str) {
        if answer == Answer::No && comment.trim().is_empty() {
            self.status = "a \"no\" needs what you saw: press n and type it".into();
            return;
        }
        let now = self.source.now();
        let who = self.operator.clone();
        if let Some(gd) = self.gameday.as_mut() {
            gd.answer(&mut self.live, now, &who, false, answer, comment);
            gd.poll(self.source.as_mut(), &mut self.live);
            self.status = answer.word().to_string();
        }
        self.refresh();
    }

    /// Abort the game day (heals and goes to the rollback).
    pub fn abort(&mut self) {
        let who = self.operator.clone();
        if let Some(gd) = self.gameday.as_mut() {
            gd.abort(
                self.source.as_mut(),
                &mut self.live,
                &who,
                "aborted by the operator",
            );
            self.status = "game day aborted: faults healed, rollback running".into();
        }
        self.refresh();
    }

    /// Add an operator note.
    pub fn note(&mut self, text: &str) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        let at = self.note_at.take().unwrap_or_else(|| self.source.now());
        self.notes.push(Note {
            at,
            by: self.operator.clone(),
            text: text.to_string(),
        });
        let who = self.operator.clone();
        self.live
            .log(at, Category::Operator, format!("{who} noted: {text}"));
        self.status = "note saved".into();
    }

    /// Inject the pending out-of-radius faults with the operator's reason (none: cancel).
    fn override_radius(&mut self, reason: &str) {
        let specs = std::mem::take(&mut self.pending_injection);
        if specs.is_empty() {
            return;
        }
        if reason.trim().is_empty() {
            self.status = "not injected: going outside the blast radius needs a reason".into();
            return;
        }
        self.inject_all(specs, Some(reason.trim()));
    }

    /// Cycle the log's category filter: all → each category → all.
    pub fn cycle_filter(&mut self) {
        self.filter = match self.filter {
            None => Some(Category::ALL[0]),
            Some(c) => {
                let i = Category::ALL.iter().position(|x| *x == c).unwrap_or(0);
                Category::ALL.get(i + 1).copied()
            }
        };
    }

    // ----- the mouse -----------------------------------------------------------------

    /// A mouse event on a screen of `area`: the wheel over the event log scrolls it; a
    /// left click in the topology selects the origin, a tower or one of its links. Only
    /// on the main screen (overlays and prompts take keys only).
    pub fn handle_mouse(&mut self, m: MouseEvent, area: Rect) {
        if self.screen != Screen::Main {
            return;
        }
        let at = Position::new(m.column, m.row);
        match m.kind {
            MouseEventKind::ScrollUp if self.areas(area).log.contains(at) => {
                self.scroll_log(LOG_WHEEL as i64);
            }
            MouseEventKind::ScrollDown if self.areas(area).log.contains(at) => {
                self.scroll_log(-(LOG_WHEEL as i64));
            }
            MouseEventKind::Down(MouseButton::Left) => {
                if let Some(s) = self.topology_at(area, m.column, m.row) {
                    self.selected = s;
                    self.status = format!("selected {}", self.selection_text());
                }
            }
            _ => {}
        }
    }

    // ----- keys ----------------------------------------------------------------------

    /// Map a key to an action.
    pub fn handle_key(&mut self, key: KeyEvent) {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.quit = true;
            return;
        }
        match self.screen.clone() {
            Screen::Input(prompt, mut text) => {
                match key.code {
                    KeyCode::Enter => {
                        self.screen = Screen::Main;
                        match prompt {
                            Prompt::Note => self.note(&text),
                            Prompt::Jump => self.jump(&text),
                            Prompt::Seed => self.restart(&text),
                            Prompt::Filter => self.text_filter = text.trim().to_string(),
                            Prompt::Override => self.override_radius(&text),
                            Prompt::Fault => self.inject_form(&text),
                            Prompt::Answer(a) => self.answer(a, &text),
                        }
                        return;
                    }
                    KeyCode::Esc => {
                        self.screen = Screen::Main;
                        if !std::mem::take(&mut self.pending_injection).is_empty()
                            || prompt == Prompt::Fault
                        {
                            self.status = "injection cancelled".into();
                        }
                        return;
                    }
                    KeyCode::Backspace => {
                        text.pop();
                    }
                    KeyCode::Char(c) if text.len() < INPUT_LEN_MAX => text.push(c),
                    _ => {}
                }
                self.screen = Screen::Input(prompt, text);
            }
            Screen::Help => {
                self.screen = Screen::Main;
                self.paused = self.paused_before_help;
                if key.code == KeyCode::Char('q') {
                    self.quit = true;
                }
            }
            Screen::Inject => match key.code {
                KeyCode::Char(c) if injections().any(|l| l.key == c) => self.inject_key(c),
                _ => self.screen = Screen::Main,
            },
            Screen::Confirm(danger) => {
                self.screen = Screen::Main;
                if key.code != KeyCode::Char('y') {
                    self.status = "cancelled".into();
                    return;
                }
                match danger {
                    Danger::Quit => self.quit = true,
                    Danger::Heal => self.heal(),
                    Danger::Abort => self.abort(),
                }
            }
            Screen::Main => self.main_key(key),
        }
    }

    fn main_key(&mut self, key: KeyEvent) {
        // Ctrl/Alt chords are not the letter alone (Ctrl-C was handled above).
        if key
            .modifiers
            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
        {
            return;
        }
        let checklist = self
            .gameday
            .as_ref()
            .is_some_and(|g| g.pending_checklist().is_some());
        match key.code {
            // A pending checklist takes y / n / s (time stands still until it is answered).
            KeyCode::Enter | KeyCode::Char('y') if checklist => self.confirm(),
            KeyCode::Char('n') if checklist => {
                self.screen = Screen::Input(Prompt::Answer(Answer::No), String::new());
            }
            KeyCode::Char('s') if checklist => {
                self.screen = Screen::Input(Prompt::Answer(Answer::Skip), String::new());
            }
            KeyCode::Char('q') if self.source.is_done() => self.quit = true,
            KeyCode::Char('q') => self.screen = Screen::Confirm(Danger::Quit),
            KeyCode::Char('?') => {
                // Reading the help must not cost the operator the moment they wait for.
                self.paused_before_help = self.paused;
                self.paused = true;
                self.screen = Screen::Help;
            }
            KeyCode::Char(' ') | KeyCode::Char('p') => self.toggle_pause(),
            KeyCode::Char('n') | KeyCode::Char('.') => self.step_next(),
            KeyCode::Char('+') | KeyCode::Char('=') => self.faster(),
            KeyCode::Char('-') => self.slower(),
            KeyCode::Char('u') => self.toggle_unthrottled(),
            KeyCode::Char('g') => self.screen = Screen::Input(Prompt::Jump, String::new()),
            KeyCode::Char('R') => self.screen = Screen::Input(Prompt::Seed, String::new()),
            KeyCode::Char('m') => {
                self.note_at = Some(self.source.now());
                self.screen = Screen::Input(Prompt::Note, String::new());
            }
            KeyCode::Char('/') => self.screen = Screen::Input(Prompt::Filter, String::new()),
            KeyCode::PageUp => self.scroll_log(LOG_PAGE as i64),
            KeyCode::PageDown => self.scroll_log(-(LOG_PAGE as i64)),
            KeyCode::Home => self.scroll_log(i64::MAX),
            KeyCode::End => self.follow_log(),
            KeyCode::Char('f') => self.cycle_filter(),
            KeyCode::Char('i') => self.screen = Screen::Inject,
            KeyCode::Char('H') => self.screen = Screen::Confirm(Danger::Heal),
            KeyCode::Char('A') if self.gameday.as_ref().is_some_and(|g| !g.plan.free_play) => {
                self.screen = Screen::Confirm(Danger::Abort);
            }
            KeyCode::Tab | KeyCode::Down | KeyCode::Char('j') => self.select_next(),
            KeyCode::BackTab | KeyCode::Up | KeyCode::Char('k') => self.select_prev(),
            KeyCode::Right | KeyCode::Char('l') => self.select_link(true),
            KeyCode::Left | KeyCode::Char('h') => self.select_link(false),
            KeyCode::Esc => {
                self.jump_to = None;
                self.text_filter.clear();
                self.filter = None;
            }
            _ => {}
        }
    }

    /// End the session: run the rest of the run and hand back what a game day report
    /// needs (`None` without a game day); an error if the run failed.
    pub fn finish(mut self) -> Result<Option<Outcome>, SourceError> {
        let Some(mut gd) = self.gameday.take() else {
            return Ok(None);
        };
        let now = self.source.now();
        gd.note_early_end(&mut self.live, now, &self.operator);
        self.source.end_early()?;
        let finished = self.source.finish()?;
        gd.settle(&finished.report);
        Ok(Some(Outcome {
            gameday: gd,
            finished,
            notes: self.notes,
            operator: self.operator,
            headless: false,
        }))
    }
}

#[cfg(test)]
mod tests;
