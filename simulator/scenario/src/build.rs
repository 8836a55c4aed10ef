//! Scenarios built in code: the parser's defaults as constructors, for the unit tests,
//! the benches and any tool that needs a scenario without a file.
//!
//! Map:
//! - [`Scenario::new`]: a scenario with every default a minimal file gets (seed 1,
//!   two-hour liveness bound, default chunking, an idle workload, no faults, nemesis
//!   off, every invariant, default SLOs).
//! - [`TowerSpec::builtin`]: a tower on the built-in link profiles, built-in Wi-Fi and
//!   the default power set-up — what `[[tower]]` with only `name`, `devices` and
//!   `links` parses to.
//! - [`Workload::idle`] (the parser's default) and [`Workload::mixed`] (a day of every
//!   class published, read and operated on, shared by the world tests and the region
//!   bench).
//!
//! Change a field after construction with struct update syntax
//! (`Scenario { seed: 7, ..Scenario::new(…) }`).
//!
//! Not covered: validation (the parser checks files; code that builds a scenario is
//! trusted to build a valid one), and fault schedules (give them as data).

use super::parse::{PUBLISH_BYTES_DEFAULT, default_profile, power_default};
use super::{
    CatalogSpec, LinkProfile, LinkSpec, Nemesis, Oracle, OriginSpec, Scenario, Slo, TowerSpec,
    Workload,
};
use sovereign_logic::content::Priority;
use sovereign_logic::protocol::LinkKind;
use std::time::Duration;

/// The liveness bound when a scenario gives none.
pub const LIVENESS_BOUND_DEFAULT: Duration = Duration::from_secs(2 * 3600);

impl Scenario {
    /// A scenario named `name` of `towers`, whose safety phase lasts `duration`, with
    /// the defaults of a file that gives only those (an empty description).
    pub fn new(name: impl Into<String>, duration: Duration, towers: Vec<TowerSpec>) -> Scenario {
        Scenario {
            name: name.into(),
            description: String::new(),
            duration,
            liveness_bound: LIVENESS_BOUND_DEFAULT,
            power_time_scale: 1,
            buggify: false,
            seed: 1,
            origin: OriginSpec::default(),
            towers,
            workload: Workload::idle(),
            faults: Vec::new(),
            nemesis: Nemesis::off(),
            invariants: Oracle::ALL.into_iter().collect(),
            slo: Slo::default(),
        }
    }
}

impl TowerSpec {
    /// A tower named `name` with `devices` devices and one uplink of each of `links`
    /// (each with its kind's default built-in profile: fibre, lte, geo), built-in Wi-Fi
    /// and the default power set-up.
    pub fn builtin(name: impl Into<String>, devices: u32, links: &[LinkKind]) -> TowerSpec {
        let builtin = |profile: &str| {
            LinkProfile::builtin(profile)
                .unwrap_or_else(|| panic!("`{profile}` is a built-in link profile"))
        };
        TowerSpec {
            name: name.into(),
            devices,
            links: links
                .iter()
                .map(|&kind| LinkSpec {
                    kind,
                    profile: builtin(default_profile(kind)),
                })
                .collect(),
            wifi: builtin("wifi"),
            power: power_default(),
            catalog_poll: None,
            request_timeout: None,
            probe_interval: None,
        }
    }
}

impl Workload {
    /// Nothing happens: no catalog, no publishing, no reads, no operations (the
    /// default of a file without `[workload]`).
    pub fn idle() -> Workload {
        Workload {
            catalog: Vec::new(),
            publish_per_hour: [0.0; 4],
            publish_bytes: PUBLISH_BYTES_DEFAULT,
            reads_per_device_hour: 0.0,
            ops_per_device_hour: 0.0,
            contribution_share: 0.0,
            misuse: crate::Misuse::default(),
        }
    }

    /// A mixed day: a catalog of every class (3 × 16 KiB P0, 4 × 64 KiB P1, 3 × 256 KiB
    /// P2, 2 × 1 MiB P3), steady publishing (0.5, 1, 0.5, 0.2 per hour by class, at the
    /// default sizes), 2 reads and 1 operation per device-hour, half of the operations
    /// ledger contributions.
    pub fn mixed() -> Workload {
        let group = |priority, items, bytes| CatalogSpec {
            priority,
            items,
            bytes,
        };
        Workload {
            catalog: vec![
                group(Priority::P0, 3, 16 * 1024),
                group(Priority::P1, 4, 64 * 1024),
                group(Priority::P2, 3, 256 * 1024),
                group(Priority::P3, 2, 1024 * 1024),
            ],
            publish_per_hour: [0.5, 1.0, 0.5, 0.2],
            reads_per_device_hour: 2.0,
            ops_per_device_hour: 1.0,
            contribution_share: 0.5,
            ..Workload::idle()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_str;

    #[test]
    fn the_constructors_build_what_a_minimal_file_parses_to() {
        // Goal: Scenario::new, TowerSpec::builtin and Workload::idle are the parser's
        // defaults, so code-built and file-built scenarios agree.
        let file = "name = \"m\"\nduration = \"3h\"\n[[tower]]\nname = \"t\"\ndevices = 4\n\
                    links = [\"fibre\", \"lte\", \"satellite\"]\n";
        let parsed = parse_str("m.toml", file).expect("parses");
        let built = Scenario::new(
            "m",
            Duration::from_secs(3 * 3600),
            vec![TowerSpec::builtin(
                "t",
                4,
                &[LinkKind::Fibre, LinkKind::Lte, LinkKind::Satellite],
            )],
        );
        assert_eq!(built, parsed);
    }
}
