//! The console end to end in a real terminal: `sovereign console scenarios/baseline.toml`
//! runs in a detached tmux session; the test presses keys with `send-keys` (pause, step,
//! select a link, inject a fault, quit) and reads the screen with `capture-pane -p`.
//!
//! Bounded: every wait polls with short sleeps under one deadline (< 20 s in all), and
//! the tmux server (a private socket per test process) is always killed. Skipped, with a
//! message, only when `tmux -V` does not run and `CI` is unset; under `CI` a missing tmux
//! fails the test, as a missing promtool or PostgreSQL does.
#![allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "a real terminal is driven in wall time: the test polls with a deadline"
)]

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The whole test's budget.
const BUDGET: Duration = Duration::from_secs(18);

struct Tmux {
    socket: String,
    session: String,
    deadline: Instant,
}

impl Tmux {
    /// A detached session `width` × `height` in `dir` running `cmd`.
    fn start(&self, width: u16, height: u16, dir: &std::path::Path, cmd: &str) {
        let (w, h) = (width.to_string(), height.to_string());
        let o = self.cmd(&[
            "new-session",
            "-d",
            "-s",
            &self.session,
            "-x",
            &w,
            "-y",
            &h,
            "-c",
            dir.to_str().expect("utf-8 path"),
            cmd,
        ]);
        assert!(o.status.success(), "new-session: {o:?}");
    }

    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .env("TERM", "xterm-256color")
            .output()
            .expect("tmux runs")
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.session];
        args.extend_from_slice(keys);
        let o = self.cmd(&args);
        assert!(o.status.success(), "send-keys: {o:?}");
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(
            &self
                .cmd(&["capture-pane", "-p", "-t", &self.session])
                .stdout,
        )
        .into_owned()
    }

    /// Poll the screen until `pred` holds; fail with the last screen at the deadline.
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if Instant::now() > self.deadline {
                panic!("timed out waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn alive(&self) -> bool {
        self.cmd(&["has-session", "-t", &self.session])
            .status
            .success()
    }
}

/// Whether tmux runs here ([`support::tool_here`]).
fn tmux_here(test: &str) -> bool {
    support::tool_here(test, "tmux", &["-V"], "apt-get install tmux")
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

#[test]
fn console_pauses_steps_injects_and_quits_in_tmux() {
    // Goal: an operator's key presses do what the screen then shows, in a real terminal.
    if !tmux_here("console_pauses_steps_injects_and_quits_in_tmux") {
        return;
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let t = Tmux {
        socket: format!("sovereign-test-{}", std::process::id()),
        session: "console".into(),
        deadline: Instant::now() + BUDGET,
    };
    let bin = env!("CARGO_BIN_EXE_sovereign");
    let journal = std::env::temp_dir().join(format!("sovereign-journal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&journal);
    let cmd = format!(
        "{bin} console scenarios/baseline.toml --seed 1 --operator tester --out {}",
        journal.display()
    );
    t.start(100, 30, &repo, &cmd);

    let s = t.wait_for("the console", |s| {
        s.contains("sovereign · baseline · seed 1")
    });
    assert!(s.contains("Topology") && s.contains("Invariants"), "{s}");

    t.keys(&["Space"]);
    t.wait_for("pause", |s| s.contains("paused"));

    t.keys(&["n"]);
    t.wait_for("a step", |s| s.contains("stepped to"));

    t.keys(&["l"]);
    t.wait_for("the fibre selected", |s| {
        s.contains("Topology · tower-0/fibre")
    });
    t.keys(&["i"]);
    t.wait_for("the inject menu", |s| s.contains("Inject on tower-0/fibre"));
    t.keys(&["c"]);
    t.wait_for("the inject form", |s| {
        s.contains("kind = \"link-down\", target = \"tower-0/fibre\"")
    });
    t.keys(&["Enter"]);
    t.wait_for("the injection", |s| s.contains("tester injected fault 0"));
    t.keys(&["n"]);
    let s = t.wait_for("the active fault", |s| s.contains("●0 "));
    assert!(s.contains("link-down tower-0/fibre"), "{s}");
    assert!(s.contains("tester: injected fault 0"), "{s}");

    // q asks while the run goes on; any key but y keeps the console.
    t.keys(&["q"]);
    t.wait_for("the quit question", |s| s.contains("quit now?"));
    t.keys(&["x"]);
    t.wait_for("the question withdrawn", |s| s.contains("cancelled"));
    assert!(t.alive(), "the console quit without a yes");
    t.keys(&["q"]);
    t.wait_for("the quit question", |s| s.contains("quit now?"));
    t.keys(&["y"]);
    while t.alive() {
        assert!(Instant::now() < t.deadline, "the console did not quit");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Free play left its journal: the operator's injection, and a replay file.
    let lessons =
        std::fs::read_to_string(journal.join("lessons-learned.md")).expect("the free-play journal");
    assert!(
        lessons.contains("Free play on baseline")
            && lessons.contains("| tester | injected fault 0: link-down on tower-0/fibre"),
        "{lessons}"
    );
    assert!(journal.join("console-baseline-seed1.replay.toml").exists());
    assert!(journal.join("report.html").exists());
    let _ = std::fs::remove_dir_all(&journal);
}

#[test]
fn a_game_day_in_tmux_takes_a_no_and_refuses_an_injection_outside_its_radius() {
    // Goal: the operator's loop of a game day in a real terminal: a checklist item
    // answered "no" with what they saw, a crash on the control tower (outside the blast
    // radius) held until they type why, and both in the lessons learned.
    if !tmux_here("a_game_day_in_tmux_takes_a_no_and_refuses_an_injection_outside_its_radius") {
        return;
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::env::temp_dir().join(format!("sovereign-gd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let t = Tmux {
        socket: format!("sovereign-gd-{}", std::process::id()),
        session: "gameday".into(),
        deadline: Instant::now() + BUDGET * 2,
    };
    let cmd = format!(
        "{} gameday gamedays/network-fibre-cut.toml --operator tester --out {}",
        env!("CARGO_BIN_EXE_sovereign"),
        out.display()
    );
    t.start(110, 32, &repo, &cmd);
    t.wait_for("the console", |s| s.contains("GAME DAY"));
    t.keys(&["u"]);
    t.wait_for("the first checklist", |s| {
        s.contains("n no (say what you saw)")
    });
    t.keys(&["n"]);
    t.wait_for("the answer prompt", |s| s.contains("what did you see?"));
    t.keys(&["-l", "no star on lte"]);
    t.keys(&["Enter"]);
    t.wait_for("the no marked", |s| s.contains("[✗]"));
    // tower-1 is outside the radius (tower-0): Tab from tower-0, then crash.
    t.keys(&["Tab"]);
    t.wait_for("tower-1 selected", |s| s.contains("Topology · tower-1"));
    t.keys(&["i"]);
    t.wait_for("the inject menu", |s| s.contains("Inject on tower-1"));
    t.keys(&["k"]);
    t.wait_for("the inject form", |s| s.contains("kind = \"crash\""));
    t.keys(&["Enter"]);
    t.wait_for("the radius question", |s| {
        s.contains("outside the blast radius: type why")
    });
    t.keys(&["-l", "control tower drill"]);
    t.keys(&["Enter"]);
    t.keys(&["y"]); // the second checklist item
    t.keys(&["q"]);
    t.wait_for("the quit question", |s| s.contains("quit now?"));
    t.keys(&["y"]);
    while t.alive() {
        assert!(Instant::now() < t.deadline, "the game day did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
    let lessons = std::fs::read_to_string(out.join("lessons-learned.md")).expect("lessons");
    assert!(
        lessons.contains("**Refuted.**") && lessons.contains("tester answered no: no star on lte"),
        "{lessons}"
    );
    assert!(
        lessons.contains("overrode the blast radius (tower-0)")
            && lessons.contains("Review the blast radius: tester injected crash on tower-1"),
        "{lessons}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_lab_console_injects_from_the_form_and_a_quit_ends_the_run_there() {
    // Goal: the console on real processes (`--lab`): the inject form offers the rest of
    // the run as the duration, the operator's edited fault (a latency of 300 ms on
    // tower-0's LTE for 4 s) is injected for real (the lab's audit has it), and `q`, `y`
    // a few seconds in ends the scenario there — its faults from 10 s on are not
    // injected, the report says so — and the journal is written, long before the
    // scenario's 90 s.
    if !tmux_here("a_lab_console_injects_from_the_form_and_a_quit_ends_the_run_there") {
        return;
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = dir.path().join("journal");
    let t = Tmux {
        socket: format!("sovereign-lab-{}", std::process::id()),
        session: "lab".into(),
        deadline: Instant::now() + Duration::from_secs(75),
    };
    let cmd = format!(
        "{} console scenarios/lab/uplink-failover.toml --lab --keep --operator tester \
         --state-dir {} --out {}; echo EXITED $?; sleep 60",
        env!("CARGO_BIN_EXE_sovereign"),
        dir.path().join("state").display(),
        journal.display()
    );
    t.start(120, 34, &repo, &cmd);
    t.wait_for("the console", |s| s.contains("real time ▶ real processes"));
    t.keys(&["l", "l"]); // tower-0 → fibre → lte
    t.wait_for("the LTE selected", |s| s.contains("Topology · tower-0/lte"));
    t.keys(&["i"]);
    t.wait_for("the inject menu", |s| s.contains("Inject on tower-0/lte"));
    t.keys(&["a"]);
    let s = t.wait_for("the inject form", |s| {
        s.contains("kind = \"latency\", target = \"tower-0/lte\", extra = \"500ms\"")
    });
    // The rest of a 90 s run, not the simulator's 10 minutes.
    assert!(!s.contains("for = \"10m\""), "{s}");
    // Replace the whole form with the operator's own fault.
    t.keys(&["BSpace"; 120]);
    t.keys(&[
        "-l",
        "kind = \"latency\", target = \"tower-0/lte\", extra = \"300ms\", for = \"4s\"",
    ]);
    t.keys(&["Enter"]);
    t.wait_for("the injection", |s| s.contains("tester injected fault"));
    t.keys(&["q"]);
    t.wait_for("the quit question", |s| s.contains("quit now?"));
    t.keys(&["y"]);
    t.wait_for("the end", |s| s.contains("EXITED"));
    // Everything the console printed, scrolled off or not.
    let s = String::from_utf8_lossy(
        &t.cmd(&["capture-pane", "-p", "-S", "-1000", "-t", &t.session])
            .stdout,
    )
    .into_owned();
    // The scenario's faults start at 10, 10, 35 and 55 s: those after the cut are not
    // injected.
    let cut: f64 = s
        .split("the run was ended early at ")
        .nth(1)
        .and_then(|r| r.split(" s:").next())
        .and_then(|x| x.trim().parse().ok())
        .unwrap_or_else(|| panic!("no early end: {s}"));
    let later = [10.0, 10.0, 35.0, 55.0]
        .iter()
        .filter(|at| **at > cut)
        .count();
    assert!(
        s.contains(&format!("{later} scheduled later were not injected")),
        "{s}"
    );
    let run_dir = s
        .lines()
        .find_map(|l| l.trim().strip_prefix("run directory (kept): "))
        .map(|d| d.trim().to_string());
    let lessons = std::fs::read_to_string(journal.join("lessons-learned.md")).expect("journal");
    assert!(
        lessons.contains("injected fault 4: latency on tower-0/lte"),
        "{lessons}"
    );
    let audit = run_dir
        .map(|d| {
            std::fs::read_to_string(PathBuf::from(&d).join("lab-audit.jsonl")).unwrap_or_default()
        })
        .unwrap_or_default();
    assert!(audit.contains("\"kind\":\"latency\""), "{audit}");
    // The scenario's first fault (10 s) only if the quit came after it.
    assert_eq!(
        audit.contains("link-down"),
        cut > 10.0,
        "cut at {cut} s: {audit}"
    );
}

/// The first word after `name` on the screen's `… name …` line.
fn first_word_after<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let rest = l.split_once(name)?.1;
        let rest = rest.strip_prefix(':').unwrap_or(rest);
        rest.split_whitespace().next()
    })
}

#[test]
fn the_console_end_screen_shows_what_the_journal_reports() {
    // Goal: one truth on every screen: a free-play run taken to its end shows, on the
    // console's "Run over" box, the same availability, MTTD, MTTR and resilience score
    // as the report it writes (run.json's KPI lines, which the CLI, report.md and
    // report.html print).
    if !tmux_here("the_console_end_screen_shows_what_the_journal_reports") {
        return;
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::env::temp_dir().join(format!("sovereign-end-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let t = Tmux {
        socket: format!("sovereign-end-{}", std::process::id()),
        session: "end".into(),
        deadline: Instant::now() + BUDGET * 4,
    };
    let cmd = format!(
        "{} console scenarios/fibre-cut.toml --seed 1 --operator tester --out {}",
        env!("CARGO_BIN_EXE_sovereign"),
        out.display()
    );
    t.start(200, 40, &repo, &cmd);
    t.wait_for("the console", |s| {
        s.contains("sovereign · fibre-cut · seed 1")
    });
    for _ in 0..6 {
        t.keys(&["+"]);
    }
    let screen = t.wait_for("the end of the run", |s| {
        s.contains("Run over") && s.contains("resilience score")
    });
    t.keys(&["q"]);
    while t.alive() {
        assert!(Instant::now() < t.deadline, "the console did not quit");
        std::thread::sleep(Duration::from_millis(100));
    }
    let data: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("run.json")).expect("the journal's run.json"),
    )
    .expect("json");
    let lines: Vec<&str> = data["kpi_lines"]
        .as_array()
        .expect("kpi lines")
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    let report = lines.join("\n");
    for name in ["availability", "mttd", "mttr", "resilience score"] {
        let on_screen = first_word_after(&screen, &format!("{name}:"))
            .unwrap_or_else(|| panic!("no {name} on the end screen:\n{screen}"));
        // The console shows the first KPI line starting with the name, as here.
        let reported = lines
            .iter()
            .find_map(|l| l.strip_prefix(name)?.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {name} in the report:\n{report}"));
        assert_eq!(on_screen, reported, "{name}: console vs report\n{screen}");
    }
    let score = data["kpis"]["resilience_score"].as_f64().expect("a score");
    assert_eq!(
        first_word_after(&screen, "resilience score:"),
        Some(format!("{score:.1}").as_str())
    );
    let _ = std::fs::remove_dir_all(&out);
}
