//! World tests on scenarios built in code (the shipped files are tested elsewhere).

use super::*;
use crate::scenario::{TowerSpec, Workload};

/// Two towers of 5 devices on fibre, LTE and GEO satellite, the mixed workload, no
/// faults, for `duration_h` hours.
pub(crate) fn small(duration_h: u64) -> Scenario {
    let tower = |name: &str| {
        TowerSpec::builtin(
            name,
            5,
            &[LinkKind::Fibre, LinkKind::Lte, LinkKind::Satellite],
        )
    };
    Scenario {
        description: "test".into(),
        workload: Workload::mixed(),
        ..Scenario::new(
            "small",
            Duration::from_secs(duration_h * 3600),
            vec![tower("tower-0"), tower("tower-1")],
        )
    }
}

fn opts(seed: u64) -> RunOptions {
    RunOptions {
        seed,
        ..RunOptions::default()
    }
}

#[test]
fn a_calm_day_converges_and_holds_every_invariant() {
    // Goal: the clean build on a calm day: no violation, everything synced, ops applied.
    let sc = small(6);
    let r = run(&sc, &opts(1));
    assert!(r.violations.is_empty(), "{:#?}", r.violations);
    assert!(r.events > 1000, "events {}", r.events);
    assert!(r.end >= Time::from_secs(6 * 3600));
}

#[test]
fn same_seed_same_trace_different_seed_different_trace() {
    // Goal: the determinism contract.
    let sc = small(2);
    let a = run(&sc, &opts(7));
    let b = run(&sc, &opts(7));
    let c = run(&sc, &opts(8));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.events, b.events);
    assert_ne!(a.trace_hash, c.trace_hash);
}
