//! Plan parser tests on valid and invalid fixtures (`tests/plans/{valid,invalid}/`) and
//! on the shipped `gamedays/*.toml`. Each invalid fixture's first line says what the
//! error must be: `# expect: <line> <field> <part of the message>`.

use super::*;
use std::path::PathBuf;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn repo() -> PathBuf {
    crate_dir().join("../..")
}

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(crate_dir().join("tests/plans").join(kind))
        .expect("fixture directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no {kind} fixtures");
    v
}

fn baseline() -> Scenario {
    sovereign_sim::scenario::parse_file(&repo().join("scenarios/baseline.toml"))
        .expect("baseline parses")
}

/// Parse, then resolve against the baseline scenario.
fn load(path: &Path) -> Result<(Plan, Vec<Vec<FaultSpec>>), PlanError> {
    let plan = parse_file(path)?;
    let faults = plan.resolve(&baseline())?;
    Ok((plan, faults))
}

#[test]
fn valid_fixtures_parse_and_resolve() {
    // Goal: every valid fixture parses and resolves against the baseline scenario.
    for p in fixtures("valid") {
        let (plan, faults) = load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(faults.len(), plan.steps.len());
    }
}

#[test]
fn the_full_fixture_reads_every_field() {
    // Goal: each field of the format lands where it should.
    let (plan, faults) = load(&crate_dir().join("tests/plans/valid/full.toml")).expect("valid");
    assert_eq!(plan.name, "full");
    assert_eq!(plan.quarter, "2026-Q2");
    assert_eq!(plan.duration, Some(Duration::from_secs(4 * 3600)));
    assert_eq!(plan.seed, Some(9));
    assert_eq!(plan.roles.operators, vec!["O1", "O2"]);
    assert_eq!(
        plan.steady_state.freshness_p99_max[0],
        Some(Duration::from_secs(300))
    );
    assert_eq!(plan.steady_state.freshness_p99_max[1], None);
    assert_eq!(plan.steady_state.backlog_max, Some(100));
    assert_eq!(plan.blast_radius.towers, vec!["tower-0", "origin"]);
    assert_eq!(plan.aborts.len(), 2);
    assert!(plan.aborts[0].below && !plan.aborts[1].below);
    assert_eq!(plan.aborts[1].metric, Metric::TowersDown);
    assert_eq!(plan.steps[0].at, Some(Duration::from_secs(3600)));
    assert_eq!(plan.steps[0].title, "cut");
    assert_eq!(faults[0].len(), 1);
    assert_eq!(
        faults[0][0].target,
        Target::Link(0, sovereign_logic::protocol::LinkKind::Lte)
    );
    assert_eq!(faults[0][0].duration, Duration::from_secs(600));
    match &plan.steps[1].action {
        Action::Observe(o) => {
            assert_eq!(
                o.active_link,
                Some(Some(sovereign_logic::protocol::LinkKind::Fibre))
            );
            assert_eq!(o.power_mode.as_deref(), Some("normal"));
        }
        other => panic!("expected observe, got {other:?}"),
    }
    assert!(!plan.rollback.heal);
    assert_eq!(plan.rollback.checklist, vec!["c"]);
}

#[test]
fn invalid_fixtures_name_file_line_and_field() {
    // Goal: each invalid fixture fails with the file, line, field and message it states.
    for p in fixtures("invalid") {
        let text = std::fs::read_to_string(&p).expect("readable");
        let head = text.lines().next().expect("a first line");
        let spec = head.strip_prefix("# expect: ").expect("an expect line");
        let mut parts = spec.splitn(3, ' ');
        let line: usize = parts.next().expect("line").parse().expect("a number");
        let field = parts.next().expect("field");
        let message = parts.next().expect("message");
        let e = match load(&p) {
            Ok(_) => panic!("{} should fail", p.display()),
            Err(e) => e,
        };
        assert_eq!(e.file, p.display().to_string(), "{e}");
        assert_eq!(e.line, line, "{}: {e}", p.display());
        assert_eq!(e.field, field, "{}: {e}", p.display());
        assert!(e.message.contains(message), "{}: {e}", p.display());
    }
}

#[test]
fn shipped_game_days_parse_and_resolve() {
    // Goal: every plan in gamedays/ is valid against its own scenario, and one per fault
    // family plus a drill combining them is shipped.
    let dir = repo().join("gamedays");
    let mut families = std::collections::BTreeSet::new();
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("gamedays/") {
        let p = e.expect("entry").path();
        if p.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        n += 1;
        let plan = parse_file(&p).unwrap_or_else(|e| panic!("{e}"));
        let sc = sovereign_sim::scenario::parse_file(&repo().join(&plan.scenario))
            .unwrap_or_else(|e| panic!("{e}"));
        let faults = plan.resolve(&sc).unwrap_or_else(|e| panic!("{e}"));
        let fams: std::collections::BTreeSet<_> =
            faults.iter().flatten().map(|f| f.kind.family()).collect();
        if fams.len() >= 4 {
            families.insert("drill".to_string());
        }
        for f in fams {
            families.insert(format!("{f:?}"));
        }
    }
    assert!(n >= 5, "{n} plans");
    for want in ["Network", "Process", "Disk", "Power", "drill"] {
        assert!(families.contains(want), "no plan for {want}: {families:?}");
    }
}

#[test]
fn an_inject_step_must_be_an_inline_table() {
    // Goal: a `[step.fault]` sub-table is refused with a clear message, not misread.
    let text = "title = \"T\"\nquarter = \"Q\"\nhypothesis = \"H\"\nscenario = \"s.toml\"\n\
                [[step]]\naction = \"inject\"\n[step.fault]\nkind = \"crash\"\ntarget = \"tower-0\"\n";
    let e = parse_str("p.toml", text).expect_err("not inline");
    assert_eq!(e.field, "step[0].fault");
    assert!(e.message.contains("inline table"), "{e}");
}
