//! Every shipped scenario runs clean on the default seed, and the names CI relies on exist.

use crate::common::{load, shipped};
use sovereign_sim::{RunOptions, run};

#[test]
fn the_scenarios_ci_relies_on_are_shipped() {
    // Goal: the file names the issue and CI depend on exist.
    let names = shipped();
    for required in [
        "baseline",
        "fibre-cut",
        "satellite-week",
        "solar-drought",
        "disk-faults",
        "crash-loop",
        "storm",
        "region",
    ] {
        assert!(
            names.iter().any(|n| n == required),
            "scenarios/{required}.toml is missing"
        );
    }
}

#[test]
fn every_shipped_scenario_holds_every_invariant_on_its_default_seed() {
    // Goal: the clean build violates nothing in any shipped scenario; SLOs hold too.
    for name in shipped() {
        let sc = load(&name);
        let r = run(
            &sc,
            &RunOptions {
                seed: sc.seed,
                ..RunOptions::default()
            },
        );
        assert!(r.violations.is_empty(), "{name}: {:#?}", r.violations);
        assert_eq!(r.exit_code(), 0, "{name}: SLOs {:#?}", r.slo);
        assert!(
            r.events > 0 && r.end.as_secs_f64() >= sc.duration.as_secs_f64(),
            "{name} ran"
        );
    }
}

#[test]
fn region_is_ten_towers_a_thousand_devices_a_day_with_a_storm_nemesis() {
    // Goal: region.toml is the size the speed goal is stated for.
    let sc = load("region");
    assert_eq!(sc.towers.len(), 10);
    assert_eq!(sc.towers.iter().map(|t| t.devices).sum::<u32>(), 1000);
    assert_eq!(sc.duration.as_secs(), 24 * 3600);
    assert!(sc.nemesis.rates_per_hour.len() >= 4, "storm-level nemesis");
}
