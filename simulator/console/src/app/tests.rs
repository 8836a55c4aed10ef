//! Screens rendered with ratatui's `TestBackend` at 80×24 and 120×40, asserted on their
//! content, and the keys that drive them.

use super::*;
use crate::gameday::GameDay;
use crate::source::SimSource;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::KeyEvent;
use sovereign_logic::protocol::LinkKind;

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

fn scenario() -> sovereign_sim::scenario::Scenario {
    sovereign_sim::scenario::parse_str(
        "t.toml",
        "name = \"small\"\nduration = \"3h\"\nliveness_bound = \"1h\"\n[[tower]]\ncount = 2\n\
         devices = 3\nlinks = [\"fibre\", \"lte\", \"satellite:geo\"]\n",
    )
    .expect("test scenario parses")
}

fn app(gameday: Option<GameDay>) -> App {
    App::new(
        Box::new(SimSource::new(scenario(), 4)),
        "alice".into(),
        gameday,
    )
}

fn key(c: char) -> KeyEvent {
    KeyEvent::from(KeyCode::Char(c))
}

/// The screen as text, one string per row.
fn render(app: &App, (w, h): (u16, u16)) -> Vec<String> {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    t.draw(|f| f.render_widget(app, f.area())).expect("draws");
    let buf = t.backend().buffer();
    (0..h)
        .map(|y| (0..w).map(|x| buf[(x, y)].symbol()).collect::<String>())
        .collect()
}

fn contains(screen: &[String], s: &str) -> bool {
    screen.iter().any(|l| l.contains(s))
}

#[test]
fn main_screen_shows_every_panel_at_both_sizes() {
    // Goal: header, topology with links, KPIs, faults, invariants, log and footer all show.
    let mut a = app(None);
    a.tick(Duration::from_secs(2)); // ×1000: about 33 virtual minutes
    for size in SIZES {
        let s = render(&a, size);
        assert!(s[0].contains("sovereign · small · seed 4"), "{}", s[0]);
        assert!(s[0].contains("op alice"), "{}", s[0]);
        for panel in ["Topology", "KPIs", "Faults", "Invariants", "Events [all]"] {
            assert!(
                contains(&s, panel),
                "{panel} missing at {size:?}:\n{}",
                s.join("\n")
            );
        }
        assert!(contains(&s, "tower-0"));
        assert!(contains(&s, "*fibre up"), "{}", s.join("\n"));
        assert!(contains(&s, "✓ all 9 invariants holding"));
        assert!(contains(&s, "avail"));
        assert!(s[usize::from(size.1) - 1].contains("? help"));
    }
}

#[test]
fn help_lists_every_key() {
    // Goal: `?` opens a help screen naming every key, at 80×24 too, and holds virtual
    // time while it is open; any key closes it and the run goes on as before.
    let mut a = app(None);
    a.tick(Duration::from_secs(1));
    a.handle_key(key('?'));
    assert_eq!(a.screen, Screen::Help);
    let t = a.snapshot().now;
    a.tick(Duration::from_secs(5));
    assert_eq!(a.snapshot().now, t, "time held while help is open");
    for size in SIZES {
        let s = render(&a, size);
        for (k, what) in crate::ui::HELP {
            assert!(
                contains(&s, k) && contains(&s, what),
                "{k} / {what} missing at {size:?}:\n{}",
                s.join("\n")
            );
        }
    }
    a.handle_key(key('x'));
    assert_eq!(a.screen, Screen::Main);
    assert!(!a.paused, "running again as before");
    a.tick(Duration::from_secs(1));
    assert!(a.snapshot().now > t);
}

/// What a key can change, as text: two states with the same fingerprint look the same to
/// the operator and to a game day.
fn fingerprint(a: &App) -> String {
    let gd = a
        .gameday
        .as_ref()
        .map(|g| (g.confirmations.len(), g.aborted.is_some(), g.injected.len()));
    format!(
        "{:?}|{}|{}|{:?}|{:?}|{:?}|{:?}|{}|{}|{:?}|{:?}|{}|{:?}|{}|{gd:?}",
        a.screen,
        a.paused,
        a.speed,
        a.selected,
        a.filter,
        a.text_filter,
        a.log_pin,
        a.notes.len(),
        a.status,
        a.jump_to,
        a.note_at,
        a.quit,
        a.source.now(),
        a.live.log_lines().count(),
    )
}

/// The keys a help entry names ("Tab / j / ↓", "q / Ctrl-C", "← → / h l", …).
fn help_keys(entry: &str) -> Vec<KeyEvent> {
    // Keys are separated by spaces, alternatives by " / "; "/" alone is the key itself.
    entry
        .split(' ')
        .filter(|t| !t.is_empty() && (*t != "/" || entry == "/"))
        .map(|t| match t {
            "space" => key(' '),
            "Tab" => KeyEvent::from(KeyCode::Tab),
            "S-Tab" => KeyEvent::from(KeyCode::BackTab),
            "Enter" => KeyEvent::from(KeyCode::Enter),
            "Esc" => KeyEvent::from(KeyCode::Esc),
            "PgUp" => KeyEvent::from(KeyCode::PageUp),
            "PgDn" => KeyEvent::from(KeyCode::PageDown),
            "Home" => KeyEvent::from(KeyCode::Home),
            "End" => KeyEvent::from(KeyCode::End),
            "↑" => KeyEvent::from(KeyCode::Up),
            "↓" => KeyEvent::from(KeyCode::Down),
            "←" => KeyEvent::from(KeyCode::Left),
            "→" => KeyEvent::from(KeyCode::Right),
            "Ctrl-C" => KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
            one if one.chars().count() == 1 => key(one.chars().next().unwrap_or(' ')),
            other => panic!("help names a key this test cannot press: {other:?}"),
        })
        .collect()
}

#[test]
fn help_names_exactly_the_keys_the_handler_handles() {
    // Goal: press every key a keyboard has on the main screen (in a game day with a
    // checklist pending and log filters set, so that every key has something to act on):
    // the keys that change anything are exactly the keys the help names.
    let fresh = || {
        let mut a = app(Some(plan_gameday()));
        a.text_filter = "tower".into();
        a.jump_to = Some(Time::from_secs(7200));
        a
    };
    let mut keyboard: Vec<KeyEvent> = (' '..='~').map(key).collect();
    keyboard.extend(
        [
            KeyCode::Enter,
            KeyCode::Esc,
            KeyCode::Tab,
            KeyCode::BackTab,
            KeyCode::Backspace,
            KeyCode::Delete,
            KeyCode::Insert,
            KeyCode::Home,
            KeyCode::End,
            KeyCode::PageUp,
            KeyCode::PageDown,
            KeyCode::Up,
            KeyCode::Down,
            KeyCode::Left,
            KeyCode::Right,
            KeyCode::F(1),
        ]
        .map(KeyEvent::from),
    );
    keyboard
        .extend(['c', 'q', 'x'].map(|c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)));
    let before = fingerprint(&fresh());
    let handled: Vec<String> = keyboard
        .iter()
        .filter(|k| {
            let mut a = fresh();
            a.handle_key(**k);
            fingerprint(&a) != before
        })
        .map(|k| format!("{k:?}"))
        .collect();
    let mut documented: Vec<String> = crate::ui::HELP
        .iter()
        .flat_map(|(keys, _)| help_keys(keys))
        .map(|k| format!("{k:?}"))
        .collect();
    documented.sort();
    documented.dedup();
    let mut handled_sorted = handled.clone();
    handled_sorted.sort();
    let undocumented: Vec<&String> = handled_sorted
        .iter()
        .filter(|k| !documented.contains(k))
        .collect();
    let dead: Vec<&String> = documented
        .iter()
        .filter(|k| !handled_sorted.contains(k))
        .collect();
    assert!(
        undocumented.is_empty() && dead.is_empty(),
        "handled but not in the help: {undocumented:?}\nin the help but doing nothing: {dead:?}"
    );
}

#[test]
fn inject_menu_cuts_the_selected_link_and_logs_the_operator() {
    // Goal: select tower-0/fibre, open the menu, cut it: the fault starts, named and logged.
    let mut a = app(None);
    a.tick(Duration::from_secs(1));
    a.handle_key(key('l')); // tower-0 → its first uplink
    assert_eq!(a.selection_text(), "tower-0/fibre");
    a.handle_key(key('i'));
    for size in SIZES {
        let s = render(&a, size);
        assert!(contains(&s, "Inject on tower-0/fibre"), "{}", s.join("\n"));
        for l in injections() {
            assert!(contains(&s, l.label), "{} missing", l.label);
        }
    }
    a.handle_key(key('c'));
    // The form: the fault as a plan step writes it; Enter injects it as it stands.
    assert_eq!(
        a.screen,
        Screen::Input(
            Prompt::Fault,
            "kind = \"link-down\", target = \"tower-0/fibre\", for = \"10m\"".to_string()
        )
    );
    let s = render(&a, (80, 24));
    assert!(contains(&s, "link-down: no parameters"), "{}", s.join("\n"));
    a.handle_key(KeyEvent::from(KeyCode::Enter));
    assert_eq!(a.screen, Screen::Main);
    a.handle_key(key('n')); // the fault starts on the next event
    let f = &a.snapshot().faults[0];
    assert_eq!(f.spec.kind, FaultKind::LinkDown);
    assert_eq!(f.spec.target, Target::Link(0, LinkKind::Fibre));
    assert!(f.active);
    assert_eq!(a.injected_by.get(&0).map(String::as_str), Some("alice"));
    assert!(a.live.log_lines().any(|l| {
        l.text
            .starts_with("alice: injected fault 0: link-down on tower-0/fibre")
    }));
    let s = render(&a, (80, 24));
    assert!(contains(&s, "●0 00:"), "{}", s.join("\n"));
    assert!(contains(&s, "link-down tower-0/fibre"), "{}", s.join("\n"));
    let s = render(&a, (120, 40));
    assert!(
        contains(&s, "link-down tower-0/fibre 10m @alice"),
        "{}",
        s.join("\n")
    );
}

/// Backspace `n` characters of the open prompt.
fn erase(a: &mut App, n: usize) {
    for _ in 0..n {
        a.handle_key(KeyEvent::from(KeyCode::Backspace));
    }
}

#[test]
fn the_inject_form_takes_parameters_a_duration_and_a_target_and_refuses_bad_ones() {
    // Goal: the form offers the hotkey's fault; the operator's edits (a parameter, the
    // duration, another target) are what gets injected; a bad value keeps the form open
    // with the field and what was expected, and injects nothing; Esc cancels.
    let mut a = app(None);
    a.tick(Duration::from_secs(1));
    a.handle_key(key('l')); // tower-0/fibre
    let latency = injections()
        .find(|l| matches!(l.kind, FaultKind::Latency { .. }))
        .expect("a latency hotkey")
        .key;
    a.handle_key(key('i'));
    a.handle_key(key(latency));
    let Screen::Input(Prompt::Fault, text) = a.screen.clone() else {
        panic!("no form: {:?}", a.screen);
    };
    assert!(
        text.starts_with("kind = \"latency\", target = \"tower-0/fibre\", extra = ")
            && text.ends_with(", for = \"10m\""),
        "{text}"
    );
    let s = render(&a, (120, 40));
    assert!(contains(&s, "latency takes extra"), "{}", s.join("\n"));
    // A bad duration: refused, the form stays with what was typed.
    erase(&mut a, "10m\"".len());
    typed(&mut a, "ten minutes\"");
    let Screen::Input(Prompt::Fault, kept) = a.screen.clone() else {
        panic!("the form closed on a bad value: {:?}", a.screen);
    };
    assert!(kept.ends_with("for = \"ten minutes\""), "{kept}");
    assert!(
        a.status.starts_with("not injected: fault.for: "),
        "{}",
        a.status
    );
    assert!(a.snapshot().faults.is_empty());
    // 3 s of 750 ms on tower-0's LTE instead.
    a.screen = Screen::Input(
        Prompt::Fault,
        "kind = \"latency\", target = \"tower-0/lte\", extra = \"750ms\", for = \"3s".to_string(),
    );
    typed(&mut a, "\"");
    assert_eq!(a.screen, Screen::Main, "{}", a.status);
    a.handle_key(key('n'));
    let f = &a.snapshot().faults[0];
    assert_eq!(f.spec.target, Target::Link(0, LinkKind::Lte));
    assert_eq!(
        f.spec.kind,
        FaultKind::Latency {
            extra: Duration::from_millis(750)
        }
    );
    assert_eq!(f.spec.duration, Duration::from_secs(3));
    // An unknown parameter names what the kind takes; Esc cancels.
    a.handle_key(key('i'));
    a.handle_key(key(latency));
    erase(&mut a, 1);
    typed(&mut a, "\", p = 0.3");
    assert!(
        a.status
            .contains("`p` is not a parameter of fault kind `latency`; it takes extra"),
        "{}",
        a.status
    );
    a.handle_key(KeyEvent::from(KeyCode::Esc));
    assert_eq!(a.screen, Screen::Main);
    assert_eq!(a.status, "injection cancelled");
    assert_eq!(a.snapshot().faults.len(), 1);
}

#[test]
fn pause_step_speed_and_jump_move_virtual_time_as_asked() {
    // Goal: paused time stands still, a step moves to the next event, a jump lands exactly.
    let mut a = app(None);
    a.handle_key(key(' '));
    assert!(a.paused);
    let t0 = a.snapshot().now;
    a.tick(Duration::from_secs(5));
    assert_eq!(a.snapshot().now, t0);
    let next = a.source().next_event_time().expect("an event");
    a.handle_key(key('n'));
    assert_eq!(a.snapshot().now, next);
    a.handle_key(key('+'));
    assert_eq!(a.speed(), Some(10_000));
    a.handle_key(key('u'));
    assert_eq!(a.speed(), None);
    a.handle_key(key('g'));
    for c in "1h30m".chars() {
        a.handle_key(key(c));
    }
    a.handle_key(KeyEvent::from(KeyCode::Enter));
    for _ in 0..1000 {
        a.tick(Duration::ZERO);
        if a.status.starts_with("jumped") {
            break;
        }
    }
    assert_eq!(a.snapshot().now, Time::from_secs(5400));
}

#[test]
fn restart_takes_a_new_seed_and_notes_are_kept() {
    // Goal: R restarts the run with the typed seed; m records a note with the operator.
    let mut a = app(None);
    a.tick(Duration::from_secs(1));
    a.handle_key(key('R'));
    for c in "42".chars() {
        a.handle_key(key(c));
    }
    a.handle_key(KeyEvent::from(KeyCode::Enter));
    assert_eq!(a.source().seed(), 42);
    assert_eq!(a.snapshot().now, Time::ZERO);
    a.handle_key(key('m'));
    let opened = a.snapshot().now;
    a.tick(Duration::from_secs(1)); // time runs on while the operator types
    for c in "lte slow".chars() {
        a.handle_key(key(c));
    }
    a.handle_key(KeyEvent::from(KeyCode::Enter));
    assert_eq!(a.notes.len(), 1);
    assert_eq!(a.notes[0].text, "lte slow");
    assert_eq!(a.notes[0].by, "alice");
    assert_eq!(a.notes[0].at, opened, "stamped when the prompt opened");
    assert!(a.snapshot().now > opened);
}

fn plan_gameday() -> GameDay {
    let text = "title = \"t\"\nquarter = \"2026-Q1\"\nhypothesis = \"h\"\n\
                scenario = \"x.toml\"\n\
                [[step]]\naction = \"checklist\"\nitems = [\"Fibre is up on tower-0\", \"Log is green\"]\n\
                [[step]]\naction = \"inject\"\nfault = { kind = \"link-down\", target = \"tower-0/fibre\", for = \"5m\" }\n";
    let plan = crate::plan::parse_str("gd.toml", text).expect("plan parses");
    let faults = plan.resolve(&scenario()).expect("resolves");
    GameDay::new(plan, faults)
}

#[test]
fn game_day_checklist_blocks_time_until_confirmed() {
    // Goal: a pending checklist shows as an overlay, holds virtual time, and Enter
    // confirms items one by one with the operator's name; then the plan goes on.
    let mut a = app(Some(plan_gameday()));
    a.tick(Duration::from_secs(1));
    let t0 = a.snapshot().now;
    for size in SIZES {
        let s = render(&a, size);
        assert!(contains(&s, "GAME DAY"), "{}", s.join("\n"));
        assert!(
            contains(&s, "Checklist: checklist (2 items)"),
            "{}",
            s.join("\n")
        );
        assert!(contains(&s, "[ ] Fibre is up on tower-0"));
        assert!(contains(&s, "y/Enter yes · n no"), "{}", s.join("\n"));
    }
    a.tick(Duration::from_secs(3));
    assert_eq!(a.snapshot().now, t0, "time held while the checklist waits");
    a.handle_key(KeyEvent::from(KeyCode::Enter));
    let s = render(&a, (80, 24));
    assert!(
        contains(&s, "[x] Fibre is up on tower-0"),
        "{}",
        s.join("\n")
    );
    a.handle_key(key('y'));
    let gd = a.gameday.as_ref().expect("game day");
    assert_eq!(gd.confirmations.len(), 2);
    assert!(gd.confirmations.iter().all(|c| c.by == "alice" && !c.auto));
    assert_eq!(
        gd.injected.len(),
        1,
        "the inject step ran after the checklist"
    );
    let out = a
        .finish()
        .expect("a simulated run finishes")
        .expect("an outcome");
    assert!(!out.headless);
    assert_eq!(out.finished.replay_schedule.len(), 1);
}

fn typed(a: &mut App, text: &str) {
    for c in text.chars() {
        a.handle_key(key(c));
    }
    a.handle_key(KeyEvent::from(KeyCode::Enter));
}

#[test]
fn a_checklist_no_needs_words_and_refutes_a_skip_becomes_an_action_item() {
    // Goal: `n` asks what the operator saw (an empty answer is refused), the "no" is
    // marked on the overlay, in the timeline and in the verdict with those words; `s`
    // skips with a reason that becomes an action item; the log stays visible meanwhile.
    let mut a = app(Some(plan_gameday()));
    a.tick(Duration::from_secs(1));
    a.handle_key(key('n'));
    assert_eq!(
        a.screen,
        Screen::Input(Prompt::Answer(Answer::No), String::new())
    );
    a.handle_key(KeyEvent::from(KeyCode::Enter)); // nothing typed
    assert!(a.status.contains("needs what you saw"), "{}", a.status);
    assert_eq!(a.gameday.as_ref().unwrap().confirmations.len(), 0);
    a.handle_key(key('n'));
    typed(&mut a, "fibre shows down on tower-0");
    let s = render(&a, (120, 40));
    assert!(
        contains(&s, "[✗] Fibre is up on tower-0"),
        "{}",
        s.join("\n")
    );
    assert!(
        contains(&s, "Events"),
        "the log stays visible: {}",
        s.join("\n")
    );
    a.handle_key(key('s'));
    typed(&mut a, "log panel was filtered");
    let gd = a.gameday.as_ref().unwrap();
    let answers: Vec<(Answer, &str)> = gd
        .confirmations
        .iter()
        .map(|c| (c.answer, c.comment.as_str()))
        .collect();
    assert_eq!(
        answers,
        [
            (Answer::No, "fibre shows down on tower-0"),
            (Answer::Skip, "log panel was filtered")
        ]
    );
    assert!(gd.timeline.iter().any(|e| e.who == "alice"
        && e.what == "answered no: Fibre is up on tower-0 — \"fibre shows down on tower-0\""));
    let out = a
        .finish()
        .expect("a simulated run finishes")
        .expect("an outcome");
    let (confirmed, why) = crate::report::verdict(&out);
    assert!(!confirmed);
    assert!(
        why.iter()
            .any(|w| w.contains("alice answered no: fibre shows down on tower-0")),
        "{why:?}"
    );
    let items = crate::report::action_items(&out, &why);
    assert!(
        items.iter().any(|i| i.contains("skipped")
            || i.contains("Check what the game day skipped: \"Log is green\"")),
        "{items:?}"
    );
}

fn radius_gameday() -> GameDay {
    let text = "title = \"t\"\nquarter = \"2026-Q1\"\nhypothesis = \"h\"\n\
                scenario = \"x.toml\"\n[blast_radius]\ntowers = [\"tower-0\"]\n\
                [[step]]\naction = \"wait\"\nfor = \"2h\"\n";
    let plan = crate::plan::parse_str("gd.toml", text).expect("plan parses");
    let faults = plan.resolve(&scenario()).expect("resolves");
    GameDay::new(plan, faults)
}

#[test]
fn an_injection_outside_the_blast_radius_needs_a_typed_reason() {
    // Goal: on tower-1 (outside a radius of tower-0) the crash key asks why; Esc or an
    // empty reason injects nothing; a reason injects it and lands in the timeline and the
    // report's action items. Inside the radius nothing is asked.
    let mut a = app(Some(radius_gameday()));
    a.tick(Duration::from_secs(1));
    a.handle_key(KeyEvent::from(KeyCode::Tab)); // tower-1
    assert_eq!(a.selection_text(), "tower-1");
    let crash = injections()
        .find(|l| l.kind == FaultKind::Crash)
        .expect("a crash hotkey")
        .key;
    a.handle_key(key('i'));
    a.handle_key(key(crash));
    a.handle_key(KeyEvent::from(KeyCode::Enter)); // the form as offered
    assert_eq!(a.screen, Screen::Input(Prompt::Override, String::new()));
    assert!(
        a.status.contains("outside the blast radius (tower-0)"),
        "{}",
        a.status
    );
    a.handle_key(KeyEvent::from(KeyCode::Esc));
    assert_eq!(a.gameday.as_ref().unwrap().injected.len(), 0);
    a.handle_key(key('i'));
    a.handle_key(key(crash));
    a.handle_key(KeyEvent::from(KeyCode::Enter));
    a.handle_key(KeyEvent::from(KeyCode::Enter)); // no reason
    assert_eq!(a.gameday.as_ref().unwrap().injected.len(), 0);
    a.handle_key(key('i'));
    a.handle_key(key(crash));
    a.handle_key(KeyEvent::from(KeyCode::Enter));
    typed(&mut a, "control tower must survive too");
    let gd = a.gameday.as_ref().unwrap();
    assert_eq!(gd.injected.len(), 1);
    assert_eq!(gd.overrides.len(), 1);
    assert!(
        gd.timeline
            .iter()
            .any(|e| e.what.contains("overrode the blast radius (tower-0)")
                && e.what.contains("control tower must survive too"))
    );
    // Inside the radius: no question.
    a.handle_key(KeyEvent::from(KeyCode::BackTab)); // tower-0
    a.handle_key(key('i'));
    a.handle_key(key(crash));
    a.handle_key(KeyEvent::from(KeyCode::Enter));
    assert_eq!(a.screen, Screen::Main);
    assert_eq!(a.gameday.as_ref().unwrap().injected.len(), 2);
    let out = a
        .finish()
        .expect("a simulated run finishes")
        .expect("an outcome");
    let (_, why) = crate::report::verdict(&out);
    let items = crate::report::action_items(&out, &why);
    assert!(
        items
            .iter()
            .any(|i| i.starts_with("Review the blast radius: alice injected")
                && i.contains("control tower must survive too")),
        "{items:?}"
    );
}

#[test]
fn destructive_keys_ask_first() {
    // Goal: q (while the run goes on), H and A ask; only `y` does it.
    let mut a = app(Some(radius_gameday()));
    a.tick(Duration::from_secs(1));
    for (k, danger) in [
        ('q', Danger::Quit),
        ('H', Danger::Heal),
        ('A', Danger::Abort),
    ] {
        a.handle_key(key(k));
        assert_eq!(a.screen, Screen::Confirm(danger));
        let s = render(&a, (80, 24));
        assert!(contains(&s, "y: yes"), "{}", s.join("\n"));
        a.handle_key(key('x'));
        assert_eq!(a.screen, Screen::Main);
        assert_eq!(a.status, "cancelled");
    }
    assert!(!a.quit && a.gameday.as_ref().unwrap().aborted.is_none());
    a.handle_key(key('A'));
    a.handle_key(key('y'));
    assert!(a.gameday.as_ref().unwrap().aborted.is_some());
    a.handle_key(key('q'));
    a.handle_key(key('y'));
    assert!(a.quit);
}

#[test]
fn the_end_of_a_run_shows_the_verdict_and_the_reports_kpis() {
    // Goal: once the run is over, the faults panel gives way to the verdict and the
    // headline KPIs, in the report's own words and figures; MTTD/MTTR and the error
    // budget show in the KPI panel all along.
    let mut a = app(None);
    a.handle_key(key('u'));
    for _ in 0..10_000 {
        if a.source().is_done() {
            break;
        }
        a.tick(Duration::from_secs(1));
    }
    assert!(a.source().is_done());
    let s = render(&a, (120, 40));
    assert!(contains(&s, "Run over"), "{}", s.join("\n"));
    assert!(contains(&s, "every invariant held"), "{}", s.join("\n"));
    let avail = a
        .summary()
        .lines()
        .into_iter()
        .find(|l| l.starts_with("availability"))
        .expect("an availability line");
    let figure = avail.split_whitespace().nth(1).expect("a figure");
    assert!(
        contains(&s, &format!("availability: {figure}")),
        "{figure}: {}",
        s.join("\n")
    );
    assert!(contains(&s, "mttd/r"), "{}", s.join("\n"));
    assert!(contains(&s, "budget n/a (no SLO)"), "{}", s.join("\n"));
}

/// The simulator dressed as a real-time source (the lab's [`Source::real_time`]), so that
/// the console's handling of one is tested without processes.
struct RealTime(SimSource);

impl Source for RealTime {
    fn snapshot(&self) -> Snapshot {
        self.0.snapshot()
    }
    fn now(&self) -> Time {
        self.0.now()
    }
    fn next_event_time(&self) -> Option<Time> {
        self.0.next_event_time()
    }
    fn is_done(&self) -> bool {
        self.0.is_done()
    }
    fn take_observations(&mut self) -> Vec<sovereign_sim::obs::Stamped> {
        self.0.take_observations()
    }
    fn scenario(&self) -> &sovereign_sim::scenario::Scenario {
        self.0.scenario()
    }
    fn seed(&self) -> u64 {
        self.0.seed()
    }
    fn step(&mut self) -> bool {
        self.0.step()
    }
    fn advance(&mut self, to: Time, events_max: u64) -> Advance {
        self.0.advance(to, events_max)
    }
    fn inject(&mut self, spec: FaultSpec) -> Result<(usize, Time), SourceError> {
        self.0.inject(spec)
    }
    fn heal(&mut self) -> Result<(Vec<usize>, Time), SourceError> {
        self.0.heal()
    }
    fn restart(&mut self, seed: u64) {
        self.0.restart(seed)
    }
    fn finish(self: Box<Self>) -> Result<crate::source::Finished, SourceError> {
        Box::new(self.0).finish()
    }
    fn real_time(&self) -> bool {
        true
    }
}

#[test]
fn a_real_time_source_refuses_time_controls_and_runs_through_help_and_pauses() {
    // Goal: on real processes (the lab) time cannot stop: pause, step, speed, jump and
    // restart are refused with why (naming the pause fault's key), and the run advances by
    // the wall time only (no ×1000), even while the help is open; the header says real
    // time and the invariants panel says they are judged at the end, not "holding".
    let mut a = App::new(
        Box::new(RealTime(SimSource::new(scenario(), 4))),
        "alice".into(),
        None,
    );
    let t0 = a.source().now();
    for k in [' ', 'n', '+', '-', 'u'] {
        a.handle_key(key(k));
        assert!(!a.paused, "{k:?} paused a real-time run");
        assert!(
            a.status.starts_with("real processes run in real time")
                && a.status.contains("a pause fault: i, then z"),
            "{k:?}: {}",
            a.status
        );
    }
    a.jump("+1h");
    assert!(a.status.starts_with("real processes run in real time"));
    a.restart("9");
    assert_eq!(a.source().seed(), 4);
    a.handle_key(key('?'));
    assert_eq!(a.screen, Screen::Help);
    a.tick(Duration::from_secs(2));
    let moved = a.source().now().as_micros() - t0.as_micros();
    assert!(
        (1_000_000..=2_000_000).contains(&moved),
        "advanced {moved} µs for 2 s of wall time"
    );
    let s = render(&a, (120, 40));
    assert!(s[0].contains("real time ▶ real processes"), "{}", s[0]);
    a.handle_key(KeyEvent::from(KeyCode::Esc));
    let s = render(&a, (120, 40));
    assert!(
        contains(&s, "invariants: judged at the end of a lab run"),
        "{}",
        s.join("\n")
    );
    assert!(!contains(&s, "invariants holding"), "{}", s.join("\n"));
    // At the end of the run the verdict box does not claim the invariants held: they are
    // judged when the operator quits.
    for _ in 0..100 {
        if a.source().is_done() {
            break;
        }
        a.tick(Duration::from_secs(600));
    }
    assert!(a.source().is_done(), "the real-time run did not end");
    let s = render(&a, (120, 40));
    assert!(contains(&s, "Run over"), "{}", s.join("\n"));
    assert!(contains(&s, "judged when you quit"), "{}", s.join("\n"));
    assert!(!contains(&s, "every invariant held"), "{}", s.join("\n"));
}

/// A console with a busy log: the nemesis draws network faults (their starts, ends, link
/// verdicts and failovers are log lines).
fn busy_app() -> App {
    let sc = sovereign_sim::scenario::parse_str(
        "busy.toml",
        "name = \"busy\"\nduration = \"6h\"\nliveness_bound = \"1h\"\n[[tower]]\ncount = 2\n\
         devices = 3\nlinks = [\"fibre\", \"lte\", \"satellite:geo\"]\n[nemesis]\n\
         network_per_hour = 20\nduration_mean = \"2m\"\n",
    )
    .expect("test scenario parses");
    App::new(Box::new(SimSource::new(sc, 4)), "alice".into(), None)
}

/// `a` run (unthrottled, by ticks) to virtual time `to`.
fn run_to(a: &mut App, to: Time) {
    a.handle_key(key('g'));
    for c in format!("{}s", to.as_micros() / 1_000_000).chars() {
        a.handle_key(key(c));
    }
    a.handle_key(KeyEvent::from(KeyCode::Enter));
    for _ in 0..10_000 {
        a.tick(Duration::ZERO);
        if a.status.starts_with("jumped") {
            return;
        }
    }
    panic!("no jump to {to:?}: {}", a.status);
}

/// The rows of the event-log panel (its last `n` lines of text).
fn log_rows(screen: &[String], a: &App, size: (u16, u16)) -> Vec<String> {
    let r = a.areas(Rect::new(0, 0, size.0, size.1)).log;
    screen[usize::from(r.y) + 1..usize::from(r.y + r.height) - 1]
        .iter()
        .map(|l| {
            l.chars()
                .skip(usize::from(r.x) + 1)
                .take(usize::from(r.width) - 2)
                .collect()
        })
        .collect()
}

#[test]
fn the_log_scrolls_back_holds_its_view_while_lines_arrive_and_follows_again() {
    // Goal: k9s-style scrollback: PgUp scrolls the event log back and pins the view, so
    // that new lines do not move what the operator reads; End (or scrolling past the
    // newest line) follows again; the panel's title says which mode it is in.
    let size = (120, 40);
    let mut a = busy_app();
    run_to(&mut a, Time::from_secs(3600));
    let lines = a.shown_log().len();
    assert!(lines > 3 * LOG_PAGE, "only {lines} log lines to scroll");
    let following = render(&a, size);
    assert!(contains(&following, "· following"));
    a.handle_key(KeyEvent::from(KeyCode::PageUp));
    assert!(a.log_pin.is_some());
    assert!(a.status.contains("10 newer line(s) below"), "{}", a.status);
    let pinned = render(&a, size);
    assert!(contains(&pinned, "10 newer below · End follows"));
    let view = log_rows(&pinned, &a, size);
    assert_ne!(view, log_rows(&following, &a, size), "PgUp moved nothing");
    // Time runs on and the log grows: the pinned view stays where it was.
    run_to(&mut a, Time::from_secs(7200));
    assert!(a.shown_log().len() > lines, "no new lines arrived");
    let later = render(&a, size);
    assert_eq!(
        log_rows(&later, &a, size),
        view,
        "new lines moved a pinned view"
    );
    assert!(
        !contains(&later, "10 newer below"),
        "the count of newer lines is stale"
    );
    // PgDn back down to the newest line follows again; so does End.
    for _ in 0..(a.shown_log().len() / LOG_PAGE + 1) {
        a.handle_key(KeyEvent::from(KeyCode::PageDown));
    }
    assert_eq!(a.log_pin, None);
    // Home: the oldest lines, a full panel of them (the pin is the panel's last line).
    a.handle_key(KeyEvent::from(KeyCode::Home));
    let h = a.log_height.get();
    assert!(h > 5, "the panel is {h} lines");
    assert_eq!(a.log_pin, a.shown_log().get(h - 1).copied());
    let oldest = log_rows(&render(&a, size), &a, size);
    assert!(
        oldest.iter().all(|r| !r.trim().is_empty()),
        "a short panel: {oldest:?}"
    );
    a.handle_key(KeyEvent::from(KeyCode::End));
    assert_eq!(a.log_pin, None);
    assert!(contains(&render(&a, size), "· following"));
}

#[test]
fn a_click_selects_a_tower_or_a_link_and_the_wheel_scrolls_the_log() {
    // Goal: the mouse does what the keys do: a left click on a tower's line selects the
    // tower, on one of its links that link; the wheel over the log scrolls it; clicks
    // elsewhere change nothing.
    let size = (120, 40);
    let area = Rect::new(0, 0, size.0, size.1);
    let mut a = busy_app();
    run_to(&mut a, Time::from_secs(3600));
    let screen = render(&a, size);
    let find = |text: &str, after_row: usize| -> (u16, u16) {
        screen
            .iter()
            .enumerate()
            .skip(after_row)
            .find_map(|(y, l)| {
                let x = l.find(text)?;
                Some((l[..x].chars().count() as u16, y as u16))
            })
            .unwrap_or_else(|| panic!("no {text} on screen:\n{}", screen.join("\n")))
    };
    let click = |a: &mut App, (x, y): (u16, u16), kind: MouseEventKind| {
        a.handle_mouse(
            MouseEvent {
                kind,
                column: x,
                row: y,
                modifiers: KeyModifiers::NONE,
            },
            area,
        );
    };
    let left = MouseEventKind::Down(MouseButton::Left);
    let (x, y) = find("tower-1 ", 1);
    click(&mut a, (x + 1, y), left);
    assert_eq!(
        a.selected,
        Selected::Tower {
            tower: 1,
            link: None
        }
    );
    // tower-1's second line: its links, fibre first, lte second.
    let (x, y) = find("lte ", usize::from(y) + 1);
    click(&mut a, (x + 1, y), left);
    assert_eq!(
        a.selected,
        Selected::Tower {
            tower: 1,
            link: Some(1)
        }
    );
    assert!(a.status.contains("tower-1/lte"), "{}", a.status);
    let (x, y) = find("origin", 1);
    click(&mut a, (x, y), left);
    assert_eq!(a.selected, Selected::Origin);
    // A click on the KPIs panel selects nothing new.
    let k = a.areas(area).kpis;
    click(&mut a, (k.x + 2, k.y + 2), left);
    assert_eq!(a.selected, Selected::Origin);
    // The wheel: over the log it scrolls; over the topology it does not.
    let l = a.areas(area).log;
    let t = a.areas(area).topology;
    click(&mut a, (t.x + 2, t.y + 2), MouseEventKind::ScrollUp);
    assert_eq!(a.log_pin, None);
    click(&mut a, (l.x + 2, l.y + 2), MouseEventKind::ScrollUp);
    assert!(a.log_pin.is_some());
    click(&mut a, (l.x + 2, l.y + 2), MouseEventKind::ScrollDown);
    assert_eq!(
        a.log_pin, None,
        "scrolled back down to the newest line: following"
    );
}

#[test]
fn a_form_for_every_tower_reports_every_injection() {
    // Goal: a `*` target injects one fault per tower, and the status line says so for
    // all of them (it used to show only the last one's outcome).
    let mut a = app(None);
    a.handle_key(key(' '));
    a.inject_form("kind = \"crash\", target = \"*\", for = \"10m\"");
    assert_eq!(a.snapshot().faults.len(), 2, "{}", a.status);
    assert!(
        a.status
            .starts_with("alice injected 2 of 2 faults (0, 1) at "),
        "{}",
        a.status
    );
    assert_eq!(a.injected_by.len(), 2);
}
