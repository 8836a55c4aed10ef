//! Branching a run (issue 17: guided exploration, `replay --likelihood`): the same run up
//! to a moment, fresh randomness after it. The prefix must be the seed's run line for
//! line (or a branch would not be a branch *of* that run), the rest another run, the
//! whole a function of (seed, branch points), and a branched run of the clean build
//! must hold every invariant (fresh streams mid-run must not break the model itself).

use crate::common::load;
use sovereign_sim::{Branch, RunOptions, run};
use std::time::Duration;

fn opts(seed: u64, branches: &[(u64, u64)]) -> RunOptions {
    RunOptions {
        seed,
        record_trace: true,
        branches: branches
            .iter()
            .map(|&(at_s, seed)| Branch {
                at: Duration::from_secs(at_s),
                seed,
            })
            .collect(),
        ..RunOptions::default()
    }
}

#[test]
fn a_branch_keeps_the_prefix_line_for_line_and_changes_the_rest() {
    // Goal: up to the branch line, the trace is the plain run's; the branch line comes
    // before the first event after the branch point; after it the runs differ; the same
    // branch gives the same run, another seed another.
    let sc = load("storm");
    let plain = run(&sc, &opts(4, &[]));
    let at = 6 * 3600;
    let a = run(&sc, &opts(4, &[(at, 11)]));
    let idx = a
        .trace
        .iter()
        .position(|l| l.contains("branch: fresh randomness from seed 11 on"))
        .expect("a branch line");
    assert!(
        idx > 1000,
        "the prefix is a real part of the run: {idx} lines"
    );
    assert_eq!(a.trace[..idx], plain.trace[..idx]);
    assert!(
        a.trace[idx].starts_with("06:00:00.000 "),
        "{}",
        a.trace[idx]
    );
    assert!(!plain.trace[idx].starts_with("05:"), "{}", plain.trace[idx]);
    assert_ne!(a.trace[idx + 1..], plain.trace[idx..]);
    assert_eq!(run(&sc, &opts(4, &[(at, 11)])).trace_hash, a.trace_hash);
    assert_ne!(run(&sc, &opts(4, &[(at, 12)])).trace_hash, a.trace_hash);
    assert_eq!(a.branches.len(), 1);
}

#[test]
fn a_branch_of_a_branch_is_its_own_run_and_order_does_not_matter() {
    // Goal: two branch points give another run than either alone; the list is taken in
    // time order whatever order it is given in.
    let sc = load("storm");
    let both = run(&sc, &opts(4, &[(3 * 3600, 1), (9 * 3600, 2)]));
    let swapped = run(&sc, &opts(4, &[(9 * 3600, 2), (3 * 3600, 1)]));
    assert_eq!(both.trace_hash, swapped.trace_hash);
    assert_ne!(
        both.trace_hash,
        run(&sc, &opts(4, &[(3 * 3600, 1)])).trace_hash
    );
    assert_ne!(
        both.trace_hash,
        run(&sc, &opts(4, &[(9 * 3600, 2)])).trace_hash
    );
    assert_eq!(
        both.trace
            .iter()
            .filter(|l| l.contains("branch: fresh randomness"))
            .count(),
        2
    );
}

#[test]
fn branched_runs_of_the_clean_build_hold_every_invariant() {
    // Goal: fresh streams taken mid-run raise no false alarm: 24 branched runs of three
    // scenarios (fault sites on in one) pass.
    for name in ["storm", "region", "crash-loop"] {
        let mut sc = load(name);
        sc.buggify = name == "crash-loop";
        for seed in 0..2u64 {
            for (i, at_s) in [600u64, 4 * 3600, 10 * 3600, 20 * 3600]
                .into_iter()
                .enumerate()
            {
                let r = run(&sc, &opts(seed, &[(at_s, 100 + i as u64)]));
                assert!(
                    r.violations.is_empty(),
                    "{name} seed {seed} branched at {at_s} s: {:?}",
                    r.violations
                );
            }
        }
    }
}

#[test]
fn rare_moments_are_noted_where_they_happen_and_not_on_a_calm_day() {
    // Goal: a calm day reaches no rare moment (the notes are not always on); a storm
    // reaches some, in time order; a disk-faults run that catches publish-before-fsync
    // (seed 129) notes the origin losing an unsynced publish before the violation; noting them leaves the trace as it was (the golden hashes in
    // `determinism` pin that).
    use sovereign_sim::Sometimes;
    let calm = run(&load("baseline"), &opts(7, &[]));
    assert!(calm.sometimes.is_empty(), "{:?}", calm.sometimes);
    let storm = run(&load("storm"), &opts(3, &[]));
    assert!(!storm.sometimes.is_empty());
    assert!(storm.sometimes.windows(2).all(|w| w[0].1 <= w[1].1));
    let mut sc = load("disk-faults");
    sc.buggify = true;
    let r = run(
        &sc,
        &RunOptions {
            plant: Some(sovereign_sim::Plant::PublishBeforeFsync),
            ..opts(129, &[])
        },
    );
    let lost = r
        .sometimes
        .iter()
        .find(|(m, _)| *m == Sometimes::OriginLostPublish)
        .expect("the origin lost an unsynced publish");
    let v = r.first_violation().expect("the plant is caught");
    assert!(lost.1 < v.at, "{lost:?} before {v:?}");
}
