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

/// The power observations of a one-tower run of `duration` at power time scale `scale`,
/// before the heal (which tops the battery up): (solar W, state of charge), one every
/// 60 steps of the model (10 minutes of its time).
fn power_curve(duration: &str, scale: u32) -> Vec<(f64, f64)> {
    let text = format!(
        "duration = \"{duration}\"\nliveness_bound = \"1h\"\npower_time_scale = {scale}\n\
         [[tower]]\ndevices = 1\nlinks = [\"fibre\"]\n\
         power = {{ battery_wh = 1000, soc_initial = 0.5, load_w = 5, solar_peak_w = 60 }}\n"
    );
    let sc = sovereign_sim::scenario::parse_str("day.toml", &text).expect("parses");
    let mut world = sovereign_sim::World::new(
        &sc,
        &RunOptions {
            seed: 3,
            ..RunOptions::default()
        },
    );
    let mut obs: Vec<sovereign_sim::obs::Stamped> = Vec::new();
    world.run_observed(&mut obs);
    let heal = sovereign_logic::Time::ZERO + sc.duration;
    obs.iter()
        .filter(|s| s.at < heal)
        .filter_map(|s| match &s.obs {
            sovereign_sim::obs::Obs::Power { soc, solar_w, .. } => Some((*solar_w, *soc)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_compressed_power_clock_replays_the_same_solar_day_in_minutes() {
    // Goal: `power_time_scale = 720` runs the towers' power model through a whole day in
    // two minutes of the run: the same readings (sun up at 06:00, down at 18:00, the
    // battery charging by day and draining by night) as a run of a real day; the scale is
    // written back to the scenario's TOML; out-of-range scales are refused with the line.
    let fast = power_curve("2m", 720);
    let slow = power_curve("24h", 1);
    // 143 or 144 before the heal: the last sample falls on the heal time at scale 1,
    // and just before it at 720 (the tick, 10 s / 720, is rounded down to whole ns).
    assert!(
        fast.len().min(slow.len()) >= 143,
        "{} and {}",
        fast.len(),
        slow.len()
    );
    for (f, s) in fast.iter().zip(&slow) {
        assert!(
            (f.0 - s.0).abs() < 1e-9 && (f.1 - s.1).abs() < 1e-9,
            "{f:?} vs {s:?}"
        );
    }
    // Sample j is at (j + 1) × 10 minutes of the model's day.
    let at = |h: u64| &fast[(h * 6 - 1) as usize];
    assert!((7..17).all(|h| at(h).0 > 0.0), "{fast:?}");
    assert!(
        [1, 3, 5, 19, 21, 23].iter().all(|h| at(*h).0 == 0.0),
        "{fast:?}"
    );
    assert!(at(6).1 < at(1).1, "the night drains the battery");
    assert!(at(18).1 > at(6).1, "the day charges it");
    let sc = sovereign_sim::scenario::parse_str(
        "d.toml",
        "duration = \"2m\"\npower_time_scale = 720\n[[tower]]\ndevices = 1\nlinks = [\"fibre\"]\n",
    )
    .expect("parses");
    let again = sovereign_sim::scenario::parse_str("w.toml", &sc.to_toml()).expect("re-parses");
    assert_eq!(again.power_time_scale, 720);
    for bad in ["0", "721", "1.5"] {
        let e = sovereign_sim::scenario::parse_str(
            "b.toml",
            &format!(
                "duration = \"2m\"\npower_time_scale = {bad}\n[[tower]]\ndevices = 1\nlinks = [\"fibre\"]\n"
            ),
        )
        .expect_err("out of range");
        assert_eq!((e.line, e.field.as_str()), (2, "power_time_scale"), "{e}");
    }
}
