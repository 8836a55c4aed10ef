//! Every lab scenario (`scenarios/lab/*.toml`) is one the lab can carry out (no refused
//! fault) and runs clean in the simulator on its default seed: the same file, both worlds.

use std::path::{Path, PathBuf};

fn lab_scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/lab");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("scenarios/lab exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    out.sort();
    out
}

#[test]
fn every_lab_scenario_is_injectable_and_runs_clean_in_the_simulator() {
    // Goal: a lab scenario never asks for a fault the lab refuses, and `sim run` of it
    // exits 0 (so the lab's verdict can be compared with the simulator's).
    let files = lab_scenarios();
    assert!(files.len() >= 2, "lab scenarios: {files:?}");
    for f in files {
        let sc = sovereign_scenario::parse_file(&f).unwrap_or_else(|e| panic!("{e}"));
        let plan = sovereign_lab::plan::plan(&sc, &f.display().to_string(), sc.seed)
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(plan.faults.len(), sc.faults.len());
        assert!(plan.not_injected.is_empty(), "{:?}", plan.not_injected);
        let opts = sovereign_sim::RunOptions {
            seed: sc.seed,
            ..sovereign_sim::RunOptions::default()
        };
        let r = sovereign_sim::run(&sc, &opts);
        assert_eq!(r.exit_code(), 0, "{}: {:?}", f.display(), r.violations);
    }
}

#[test]
fn a_scenario_with_faults_the_lab_cannot_inject_is_refused_naming_each() {
    // Goal: every fault without a real injection is named with its file and why; a
    // clock fault is not refused but skipped with a line that says so.
    let text = "duration = \"1m\"\n[[tower]]\ndevices = 1\nlinks = [\"fibre\"]\n\
                [[fault]]\nat = \"5s\"\nfor = \"5s\"\ntarget = \"tower-0\"\nkind = \"duplicate\"\np = 0.1\n\
                [[fault]]\nat = \"5s\"\nfor = \"5s\"\ntarget = \"tower-0/fibre\"\nkind = \"link-down\"\n\
                [[fault]]\nat = \"6s\"\nfor = \"5s\"\ntarget = \"tower-0\"\nkind = \"write-error\"\np = 0.5\n\
                [[fault]]\nat = \"7s\"\nfor = \"5s\"\ntarget = \"tower-0\"\nkind = \"clock-skew\"\nppm = 1000\n";
    let sc = sovereign_scenario::parse_str("x.toml", text).expect("parses");
    let e = format!(
        "{:#}",
        sovereign_lab::plan::plan(&sc, "x.toml", 1).unwrap_err()
    );
    assert!(e.contains("x.toml: fault[0] (duplicate on tower-0"), "{e}");
    assert!(e.contains("TCP delivers each byte once"), "{e}");
    assert!(!e.contains("fault[1]"), "link-down is injectable: {e}");
    assert!(
        e.contains("x.toml: fault[2] (write-error on tower-0"),
        "{e}"
    );
    assert!(e.contains("only p = 1"), "{e}");
    assert!(
        !e.contains("fault[3]"),
        "a clock fault is skipped, not refused: {e}"
    );
    // Without the refused ones: the clock fault is planned as not injected, with why.
    let text: String = text
        .split("[[fault]]")
        .enumerate()
        .filter(|(i, _)| ![1, 3].contains(i))
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join("[[fault]]");
    let sc = sovereign_scenario::parse_str("x.toml", &text).expect("parses");
    let plan = sovereign_lab::plan::plan(&sc, "x.toml", 1).expect("plans");
    assert_eq!(plan.faults.len(), 1, "{plan:?}");
    assert_eq!(plan.not_injected.len(), 1, "{plan:?}");
    assert!(
        plan.not_injected[0].contains("fault[1] (clock-skew on tower-0")
            && plan.not_injected[0].contains("NOT INJECTED in the lab: a real clock fault"),
        "{plan:?}"
    );
}

#[test]
fn a_nemesis_is_drawn_as_the_simulator_draws_it() {
    // Goal: the lab injects the faults the simulator's nemesis draws for the same seed,
    // with the same ids, times and targets; kinds it cannot inject are listed as not
    // injected, never dropped silently.
    let text = "duration = \"2m\"\n[[tower]]\ndevices = 1\nlinks = [\"fibre\", \"lte\"]\n\
                [[fault]]\nat = \"5s\"\nfor = \"5s\"\ntarget = \"tower-0/fibre\"\nkind = \"link-down\"\n\
                [nemesis]\nnetwork_per_hour = 120.0\nprocess_per_hour = 60.0\nduration_mean = \"5s\"\nduration_max = \"10s\"\n";
    let sc = sovereign_scenario::parse_str("n.toml", text).expect("parses");
    for seed in 1..=5 {
        let drawn = sovereign_sim::nemesis_schedule(&sc, seed);
        let plan = sovereign_lab::plan::plan(&sc, "n.toml", seed).expect("plans");
        assert_eq!(plan.drawn, drawn.len());
        assert_eq!(plan.faults.len() + plan.not_injected.len(), 1 + drawn.len());
        for (k, spec) in drawn.iter().enumerate() {
            let id = 1 + k as u64;
            match plan.faults.iter().find(|p| p.id == id) {
                Some(p) => assert_eq!(&p.spec, spec),
                None => assert!(
                    plan.not_injected.iter().any(|l| l
                        .contains(&format!("fault[{id}] ({}", spec.kind.name()))
                        && l.contains("drawn by the nemesis")),
                    "fault[{id}] neither planned nor listed: {plan:?}"
                ),
            }
        }
    }
    let drawn: usize = (1..=5)
        .map(|s| sovereign_sim::nemesis_schedule(&sc, s).len())
        .sum();
    assert!(drawn >= 5, "the nemesis draws faults: {drawn}");
}
