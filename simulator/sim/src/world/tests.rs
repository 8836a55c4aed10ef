//! World tests on scenarios built in code (the shipped files are tested elsewhere).

use super::*;
use crate::scenario::{CatalogSpec, LinkSpec, Nemesis, OriginSpec, PowerSpec, Slo, Workload};
use sovereign_logic::content::ChunkParams;

pub(crate) fn small(duration_h: u64) -> Scenario {
    let tower = |name: &str| TowerSpec {
        name: name.to_string(),
        devices: 5,
        links: vec![
            LinkSpec {
                kind: LinkKind::Fibre,
                profile: LinkProfile::builtin("fibre").unwrap(),
            },
            LinkSpec {
                kind: LinkKind::Lte,
                profile: LinkProfile::builtin("lte").unwrap(),
            },
            LinkSpec {
                kind: LinkKind::Satellite,
                profile: LinkProfile::builtin("geo").unwrap(),
            },
        ],
        wifi: LinkProfile::builtin("wifi").unwrap(),
        power: PowerSpec {
            solar_peak_w: 50.0,
            battery_wh: 40.0,
            soc_initial: 0.8,
            load_w: 2.5,
            grid: false,
            ups: true,
            cloud_cover: 0.2,
        },
    };
    Scenario {
        name: "small".into(),
        description: "test".into(),
        duration: Duration::from_secs(duration_h * 3600),
        liveness_bound: Duration::from_secs(2 * 3600),
        seed: 1,
        origin: OriginSpec {
            chunk: ChunkParams::default(),
        },
        towers: vec![tower("tower-0"), tower("tower-1")],
        workload: Workload {
            catalog: vec![
                CatalogSpec {
                    priority: Priority::P0,
                    items: 3,
                    bytes: 16 * 1024,
                },
                CatalogSpec {
                    priority: Priority::P1,
                    items: 4,
                    bytes: 64 * 1024,
                },
                CatalogSpec {
                    priority: Priority::P2,
                    items: 3,
                    bytes: 256 * 1024,
                },
                CatalogSpec {
                    priority: Priority::P3,
                    items: 2,
                    bytes: 1024 * 1024,
                },
            ],
            publish_per_hour: [0.5, 1.0, 0.5, 0.2],
            publish_bytes: [8 * 1024, 64 * 1024, 256 * 1024, 1024 * 1024],
            reads_per_device_hour: 2.0,
            ops_per_device_hour: 1.0,
            contribution_share: 0.5,
        },
        faults: Vec::new(),
        nemesis: Nemesis::off(),
        invariants: Oracle::ALL.into_iter().collect(),
        slo: Slo::default(),
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
