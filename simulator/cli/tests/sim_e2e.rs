//! The simulator's command line end to end on shipped scenarios: run prints KPIs and a
//! trace hash, planted bugs exit with their class, a sweep writes failure files that
//! replay exactly, and shrink reduces a storm's fault schedule while keeping its oracle.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sovereign(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sovereign"))
        .current_dir(repo())
        .args(args)
        .output()
        .expect("the binary runs")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sovereign-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn run_prints_kpis_slos_and_a_trace_hash_and_exits_0_on_a_calm_day() {
    // Goal: the README's main job works and its output carries the contract lines.
    let o = sovereign(&[
        "sim",
        "run",
        "scenarios/baseline.toml",
        "--seed",
        "3",
        "--check-determinism",
    ]);
    let out = stdout(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("availability"), "{out}");
    assert!(out.contains("slo availability"), "{out}");
    let hash = out
        .lines()
        .find_map(|l| l.strip_prefix("trace-hash: "))
        .expect("a trace-hash line");
    assert_eq!(hash.len(), 64);
}

#[test]
fn planted_bugs_exit_with_their_failure_class() {
    // Goal: exit 1 for a safety violation, 3 for liveness (DESIGN's exit codes).
    let o = sovereign(&[
        "sim",
        "run",
        "scenarios/baseline.toml",
        "--seed",
        "0",
        "--plant",
        "ledger-rounding",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("conservation"));
    let o = sovereign(&[
        "sim",
        "run",
        "scenarios/fibre-cut.toml",
        "--seed",
        "0",
        "--plant",
        "no-failback",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert!(stdout(&o).contains("convergence"));
}

#[test]
fn a_storm_failure_replays_exactly_and_shrinks_to_fewer_faults() {
    // Goal: sweep -> failure file -> replay (same violation, same hash) -> shrink (fewer
    // faults, same oracle), the loop a developer runs on a CI failure.
    let dir = scratch("storm");
    let out_dir = dir.to_string_lossy().into_owned();
    let o = sovereign(&[
        "sim",
        "sweep",
        "scenarios/storm.toml",
        "--seeds",
        "1",
        "--jobs",
        "1",
        "--plant",
        "skip-verify",
        "--out",
        &out_dir,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let failure = std::fs::read_dir(&dir)
        .expect("out dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(".failure.toml"))
        .expect("a failure file");
    let f = failure.to_string_lossy().into_owned();
    assert!(
        stdout(&o).contains(&format!("sovereign sim replay {f}")),
        "{}",
        stdout(&o)
    );

    let o = sovereign(&["sim", "replay", &f]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("reproduced"), "{}", stdout(&o));
    // The trace around the violation, one tower's lines only, the violation marked.
    let o = sovereign(&[
        "sim", "replay", &f, "--trace", "--tower", "tower-1", "--lines", "8",
    ]);
    let text = stdout(&o);
    let shown: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("    ") && l.as_bytes().get(4).is_some_and(u8::is_ascii_digit))
        .collect();
    assert_eq!(shown.len(), 8, "{text}");
    assert!(shown.iter().all(|l| l.contains("tower-1")), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(">>> ") && l.contains("VIOLATION integrity")),
        "{text}"
    );

    let shrunk = dir.join("storm.shrunk.toml");
    let s = shrunk.to_string_lossy().into_owned();
    let o = sovereign(&["sim", "shrink", &f, "--out", &s, "--budget-runs", "16"]);
    let text = stdout(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (before, after) = text
        .lines()
        .find_map(|l| l.strip_prefix("faults: "))
        .and_then(|l| l.split_once(" -> "))
        .map(|(a, b)| {
            (
                a.trim().parse::<usize>().unwrap(),
                b.trim().parse::<usize>().unwrap(),
            )
        })
        .expect("a `faults: N -> M` line");
    assert!(after < before, "shrink kept {after} of {before} faults");
    let text = std::fs::read_to_string(&shrunk).unwrap();
    assert!(
        text.contains(&format!(
            "description = \"Shrunk from {f} (seed 0, plant skip-verify): integrity still fails with {after} of {before} faults"
        )),
        "{text}"
    );
    // The shrunk scenario still fails the same oracle.
    let o = sovereign(&["sim", "run", &s, "--seed", "0", "--plant", "skip-verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("integrity"), "{}", stdout(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
