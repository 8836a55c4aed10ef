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
        let plan = sovereign_lab::plan::plan(&sc, &f.display().to_string())
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(plan.len(), sc.faults.len());
        let opts = sovereign_sim::RunOptions {
            seed: sc.seed,
            plant: None,
            record_trace: false,
            schedule: None,
        };
        let r = sovereign_sim::run(&sc, &opts);
        assert_eq!(r.exit_code(), 0, "{}: {:?}", f.display(), r.violations);
    }
}

#[test]
fn a_scenario_with_faults_the_lab_cannot_inject_is_refused_naming_each() {
    // Goal: every fault without a real injection is named with its file and why.
    let text = "duration = \"1m\"\n[[tower]]\ndevices = 1\nlinks = [\"fibre\"]\n\
                [[fault]]\nat = \"5s\"\nfor = \"5s\"\ntarget = \"tower-0\"\nkind = \"clock-skew\"\nppm = 1000\n\
                [[fault]]\nat = \"5s\"\nfor = \"5s\"\ntarget = \"tower-0/fibre\"\nkind = \"link-down\"\n\
                [[fault]]\nat = \"6s\"\nfor = \"5s\"\ntarget = \"tower-0\"\nkind = \"write-error\"\np = 0.5\n";
    let sc = sovereign_scenario::parse_str("x.toml", text).expect("parses");
    let e = format!(
        "{:#}",
        sovereign_lab::plan::plan(&sc, "x.toml").unwrap_err()
    );
    assert!(e.contains("x.toml: fault[0] (clock-skew on tower-0"), "{e}");
    assert!(e.contains("real clock fault"), "{e}");
    assert!(!e.contains("fault[1]"), "link-down is injectable: {e}");
    assert!(
        e.contains("x.toml: fault[2] (write-error on tower-0"),
        "{e}"
    );
    assert!(e.contains("only p = 1"), "{e}");
}
