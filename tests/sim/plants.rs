//! Every oracle is shown to fail: each planted bug is caught by a sweep of at most 100
//! seeds of a shipped scenario, and the clean build shows no violation over the same
//! seeds.

use crate::common::load;
use sovereign_sim::{Oracle, Plant, RunOptions, run};

/// The scenario that exercises each plant's invariant.
fn scenario_for(plant: Plant) -> &'static str {
    match plant {
        Plant::SkipVerify => "disk-faults",
        Plant::AckBeforeFsync => "crash-loop",
        Plant::NoIdempotency => "crash-loop",
        Plant::LedgerRounding => "baseline",
        Plant::FifoScheduler => "baseline",
        Plant::NoFailback => "fibre-cut",
        Plant::OfflineRefuse => "fibre-cut",
        Plant::IgnoreBattery => "solar-drought",
        Plant::SequentialKeys
        | Plant::ForgetConfirmed
        | Plant::NoKeyOwnerCheck
        | Plant::NoEdgeValidation
        | Plant::KeepRefusedWrites => "hostile-devices",
        Plant::AcceptUnknownTowers | Plant::NoOriginCheck => "origin-trust",
    }
}

const SEEDS_MAX: u64 = 100;

fn caught_by(plant: Plant) -> (u64, Oracle) {
    let sc = load(scenario_for(plant));
    for seed in 0..SEEDS_MAX {
        let r = run(
            &sc,
            &RunOptions {
                seed,
                plant: Some(plant),
                ..RunOptions::default()
            },
        );
        if let Some(v) = r.violations.iter().find(|v| v.oracle == plant.oracle()) {
            return (seed, v.oracle);
        }
    }
    panic!(
        "{plant} was not caught within {SEEDS_MAX} seeds of {}",
        scenario_for(plant)
    );
}

fn clean_over(name: &str, seeds: u64) {
    let sc = load(name);
    for seed in 0..=seeds {
        let r = run(
            &sc,
            &RunOptions {
                seed,
                ..RunOptions::default()
            },
        );
        assert!(
            r.violations.is_empty(),
            "clean {name} seed {seed}: {:#?}",
            r.violations
        );
    }
}

macro_rules! plant_test {
    ($name:ident, $plant:expr) => {
        #[test]
        fn $name() {
            // Goal: the planted bug makes exactly its oracle fire; the clean build does not.
            let plant = $plant;
            let (seed, oracle) = caught_by(plant);
            assert_eq!(oracle, plant.oracle());
            clean_over(scenario_for(plant), seed);
        }
    };
}

plant_test!(skip_verify_is_caught_by_integrity, Plant::SkipVerify);
plant_test!(
    ack_before_fsync_is_caught_by_durability,
    Plant::AckBeforeFsync
);
plant_test!(
    no_idempotency_is_caught_by_exactly_once,
    Plant::NoIdempotency
);
plant_test!(
    ledger_rounding_is_caught_by_conservation,
    Plant::LedgerRounding
);
plant_test!(fifo_scheduler_is_caught_by_priority, Plant::FifoScheduler);
plant_test!(no_failback_is_caught_by_convergence, Plant::NoFailback);
plant_test!(
    offline_refuse_is_caught_by_offline_service,
    Plant::OfflineRefuse
);
plant_test!(
    ignore_battery_is_caught_by_power_safety,
    Plant::IgnoreBattery
);
plant_test!(
    sequential_keys_are_caught_by_attribution,
    Plant::SequentialKeys
);
plant_test!(
    forget_confirmed_is_caught_by_durability,
    Plant::ForgetConfirmed
);
plant_test!(
    no_key_owner_check_is_caught_by_attribution,
    Plant::NoKeyOwnerCheck
);
plant_test!(
    no_edge_validation_is_caught_by_durability,
    Plant::NoEdgeValidation
);
plant_test!(
    keep_refused_writes_is_caught_by_durability,
    Plant::KeepRefusedWrites
);
plant_test!(
    accept_unknown_towers_is_caught_by_attribution,
    Plant::AcceptUnknownTowers
);
plant_test!(
    no_origin_check_is_caught_by_convergence,
    Plant::NoOriginCheck
);

#[test]
fn every_oracle_has_a_plant_test() {
    // Goal: adding an oracle without a plant (or a plant without a scenario) fails here.
    let covered: std::collections::BTreeSet<Oracle> =
        Plant::ALL.iter().map(|p| p.oracle()).collect();
    assert_eq!(covered.len(), Oracle::ALL.len());
    for p in Plant::ALL {
        let _ = load(scenario_for(p));
    }
}
