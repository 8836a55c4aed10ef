//! Every fault kind is whole: declared once (the table in `scenario/faults.rs`, checked
//! by its own unit tests), documented (its row in docs/SCENARIOS.md names the same
//! targets and parameters) and in effect (on every target shape it accepts, a run with
//! it differs from the same run without it in more than the fault's own start and end).
//! Adding a kind without its docs row or its effect in the world fails here.

use sovereign_logic::protocol::LinkKind;
use sovereign_sim::RunOptions;
use sovereign_sim::obs::{Obs, Stamped};
use sovereign_sim::scenario::faults::Targets;
use sovereign_sim::scenario::{FaultDecl, FaultKind, FaultSpec, Scenario, Target, parse_str};
use sovereign_sim::world::World;
use std::time::Duration;

/// Two towers on fibre + LTE with mains and busy devices; tower-0 has a UPS and tower-1
/// none, so that power faults which need one or the other have somewhere to show.
const SMALL: &str = r#"
duration = "12h"
liveness_bound = "1h"
[[tower]]
devices = 6
links = ["fibre", "lte"]
[tower.power]
grid = true
ups = true
soc_initial = 0.5
[[tower]]
devices = 6
links = ["fibre", "lte"]
[tower.power]
grid = true
ups = false
soc_initial = 0.5
[workload]
catalog = [{ priority = "P0", items = 3, size = "64KiB" }, { priority = "P1", items = 3, size = "64KiB" }]
publish_per_hour = { P0 = 2.0, P1 = 2.0 }
reads_per_device_hour = 30.0
ops_per_device_hour = 6.0
contribution_share = 0.5
"#;

/// The schedule every run shares, so that latent effects surface: tower-1 is cut off
/// for its first 30 minutes (it fetches the catalog after an early fault), and the origin
/// restarts at 10 minutes (the simulated origin serves chunks from memory, so rot on its
/// disk shows only once it reloads them).
fn shared() -> Vec<FaultSpec> {
    vec![
        FaultSpec {
            at: Duration::ZERO,
            duration: Duration::from_secs(1800),
            target: Target::Tower(1),
            kind: FaultKind::LinkDown,
        },
        FaultSpec {
            at: Duration::from_secs(600),
            duration: Duration::ZERO,
            target: Target::Origin,
            kind: FaultKind::Restart,
        },
    ]
}

/// What a run shows: its observations without the faults' own starts and ends, and its
/// trace lines without the faults' own lines.
fn outcome(sc: &Scenario, extra: Option<FaultSpec>) -> (Vec<Stamped>, Vec<String>) {
    let mut faults = shared();
    faults.extend(extra);
    faults.sort_by_key(|f| f.at);
    let mut world = World::new(
        sc,
        &RunOptions {
            seed: 5,
            record_trace: true,
            schedule: Some(faults),
            ..RunOptions::default()
        },
    );
    let mut obs: Vec<Stamped> = Vec::new();
    world.run_observed(&mut obs);
    obs.retain(|s| !matches!(s.obs, Obs::FaultStart { .. } | Obs::FaultEnd { .. }));
    let lines = world
        .finish()
        .trace
        .into_iter()
        .filter(|l| !l.contains(" fault ") && !l.contains("heal"))
        .collect();
    (obs, lines)
}

/// The concrete targets of each shape a kind accepts, in the order tried.
fn shapes(decl: &FaultDecl) -> Vec<(&'static str, Vec<Target>)> {
    [
        ("origin", Targets::ORIGIN, vec![Target::Origin]),
        (
            "tower",
            Targets::TOWER,
            vec![Target::Tower(0), Target::Tower(1)],
        ),
        (
            "link",
            Targets::LINK,
            vec![
                Target::Link(0, LinkKind::Fibre),
                Target::Link(1, LinkKind::Fibre),
            ],
        ),
        (
            "wifi",
            Targets::WIFI,
            vec![Target::Wifi(0), Target::Wifi(1)],
        ),
    ]
    .into_iter()
    .filter(|(_, shape, _)| decl.targets.or(*shape) == decl.targets)
    .map(|(name, _, targets)| (name, targets))
    .collect()
}

#[test]
fn every_fault_kind_has_an_effect_on_every_target_it_accepts() {
    // Goal: a kind whose effect the world lacks (on any target it declares) fails here.
    let sc = parse_str("small.toml", SMALL).unwrap_or_else(|e| panic!("{e}"));
    let clean = outcome(&sc, None);
    let mut missing = Vec::new();
    for decl in FaultKind::all() {
        for (shape, targets) in shapes(decl) {
            // Early (before the towers hold the catalog) or by day (when the sun shines).
            let starts = [
                Duration::from_secs(1),
                Duration::from_secs(60),
                Duration::from_secs(8 * 3600),
            ];
            let shows = targets.iter().any(|target| {
                starts.iter().any(|at| {
                    let fault = FaultSpec {
                        at: *at,
                        duration: decl.duration(Some(Duration::from_secs(3600)), Duration::ZERO),
                        target: target.clone(),
                        kind: decl.example.clone(),
                    };
                    outcome(&sc, Some(fault)) != clean
                })
            });
            if !shows {
                missing.push(format!("{} on {shape}", decl.name));
            }
        }
    }
    assert!(missing.is_empty(), "no effect in the world: {missing:?}");
}

/// The docs' row of `kind` in the kinds table of "## Faults": its parameters cell and
/// its targets cell.
fn docs_row<'a>(docs: &'a str, kind: &str) -> Option<(&'a str, &'a str)> {
    let section = docs.split("\n## Faults").nth(1)?.split("\n## ").next()?;
    let needle = format!("| `{kind}` |");
    let line = section.lines().find(|l| l.contains(&needle))?;
    let cells: Vec<&str> = line.split('|').map(str::trim).collect();
    // | family | `kind` | parameters | targets |
    Some((cells.get(3)?, cells.get(4)?))
}

#[test]
fn every_fault_kind_has_its_docs_row() {
    // Goal: SCENARIOS.md lists every declared kind with the targets and parameter keys
    // the table declares; a kind missing there, or documented with other targets, fails.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/SCENARIOS.md");
    let docs = std::fs::read_to_string(path).expect("docs/SCENARIOS.md");
    let mut wrong = Vec::new();
    for decl in FaultKind::all() {
        let Some((params, targets)) = docs_row(&docs, decl.name) else {
            wrong.push(format!("{}: no row", decl.name));
            continue;
        };
        for key in decl.params.iter().flat_map(|p| p.keys()) {
            if !params.contains(&format!("`{key}`")) {
                wrong.push(format!("{}: parameter `{key}` not documented", decl.name));
            }
        }
        // The target words outside parentheses ("tower (tower↔origin)" is a tower).
        let mut depth = 0;
        let bare: String = targets
            .chars()
            .filter(|c| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => return depth == 0,
                }
                false
            })
            .collect();
        let documented: Vec<&str> = ["origin", "tower", "link", "wifi"]
            .into_iter()
            .filter(|w| {
                bare.split(|c: char| !c.is_ascii_alphabetic())
                    .any(|t| t == *w)
            })
            .collect();
        let declared: Vec<&str> = shapes(decl).into_iter().map(|(n, _)| n).collect();
        if documented != declared {
            wrong.push(format!(
                "{}: docs say {documented:?}, the table {declared:?}",
                decl.name
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // The check can fail: a table without a kind's row is named.
    let without = docs.replace("| `wifi-corruption` |", "| `wifi-garble` |");
    assert!(docs_row(&without, "wifi-corruption").is_none());
}

#[test]
fn a_frozen_database_holds_the_origins_writes_and_a_lost_one_fails_them() {
    // Goal: `db-pause` hangs the origin's writes until the database thaws — no storage
    // error in the window, nothing lost, every operation applied — as a SIGSTOPped
    // PostgreSQL does in the lab; `db-lost` over the same window fails them (storage
    // errors: detected) and loses nothing either.
    let text = |kind: &str| {
        format!(
            "duration = \"30s\"\nliveness_bound = \"2m\"\n[origin]\ndatabase = \"postgres\"\n\
             [[tower]]\ndevices = 10\nlinks = [\"fibre\"]\nrequest_timeout = \"3s\"\n\
             [workload]\ncatalog = [{{ priority = \"P0\", items = 1, size = \"16KiB\" }}]\n\
             ops_per_device_hour = 1000.0\n\
             [[fault]]\nat = \"5s\"\nfor = \"10s\"\ntarget = \"origin\"\nkind = \"{kind}\"\n"
        )
    };
    let storage_errors = |kind: &str| {
        let sc = parse_str("db.toml", &text(kind)).expect("parses");
        let opts = RunOptions {
            seed: 1,
            ..RunOptions::default()
        };
        let mut world = World::new(&sc, &opts);
        let mut obs: Vec<Stamped> = Vec::new();
        world.run_observed(&mut obs);
        let report = world.finish();
        let errors = obs
            .iter()
            .filter(|s| matches!(s.obs, Obs::StorageError { tower: None }))
            .count();
        // When the tower heard from the origin that an operation is applied (after its
        // commit), in seconds.
        let confirmed: Vec<f64> = obs
            .iter()
            .filter(|s| {
                matches!(
                    s.obs,
                    Obs::Tower {
                        event: sovereign_logic::io::Event::OpConfirmed { .. },
                        ..
                    }
                )
            })
            .map(|s| s.at.as_micros() as f64 / 1e6)
            .collect();
        (errors, confirmed, report)
    };
    let (paused, confirmed, report) = storage_errors("db-pause");
    assert_eq!(paused, 0, "a frozen database fails nothing");
    // Frozen from 5 s to 15 s: no commit completes in it (a second's margin for what was
    // under way at 5 s), and the held ones complete once it thaws.
    assert!(
        !confirmed.iter().any(|t| (6.0..15.0).contains(t)),
        "confirmed while frozen: {confirmed:?}"
    );
    assert!(confirmed.iter().any(|t| *t < 5.0), "{confirmed:?}");
    assert!(
        confirmed.iter().any(|t| (15.0..17.0).contains(t)),
        "nothing confirmed at the thaw: {confirmed:?}"
    );
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(report.kpis.rpo, 0);
    assert_eq!(report.kpis.faults_detected, 0);
    let (lost, _, report) = storage_errors("db-lost");
    assert!(lost > 0, "a lost database fails the origin's writes");
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(report.kpis.faults_detected, 1);
}
