//! Scenarios: what a simulated run contains — topology, workload, duration, faults,
//! nemesis, invariants and SLOs — as validated data the world consumes.
//!
//! Map:
//! - this file: the validated model ([`Scenario`] and its parts) and the built-in link
//!   profiles.
//! - [`parse`]: `scenarios/*.toml` → raw structs (serde, unknown keys are errors) →
//!   validated [`Scenario`], with errors naming file, line, field and what was expected.
//! - [`write`](mod@write): [`Scenario`] → the same raw structs → TOML that parses back to an
//!   equal scenario (failure files and shrunk scenarios are written with it).
//! - [`limits`]: the cost of a scenario as a whole (devices in all, content bytes,
//!   publications, operations, reads …), checked by the parser before any run allocates.
//! - [`faults`]: the fault table — every fault kind's parameters, targets, duration rule,
//!   nemesis draws, live injection, disturbed invariants and detection, declared once.
//! - [`tomlspan`]: TOML read with serde, errors that name the file, line and field (from a
//!   value's span), and value types checked as they are read.
//! - [`build`]: scenarios built in code (the parser's defaults as constructors, for tests
//!   and benches).
//!
//! Not covered: running a scenario (see the simulator's world), reporting.

#![warn(missing_docs)]

pub mod build;
pub mod faults;
pub mod limits;
pub mod parse;
pub mod power;
pub mod reads;
pub mod tomlspan;
pub mod write;

use sovereign_logic::content::{ChunkParams, Priority};
use sovereign_logic::protocol::LinkKind;
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

pub use faults::{FaultDecl, FaultKind};
pub use parse::{ScenarioError, parse_file, parse_str};

/// A validated scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Short name (file stem by default).
    pub name: String,
    /// What the scenario is about, in a sentence or two.
    pub description: String,
    /// Length of the safety phase (faults on).
    pub duration: Duration,
    /// After the safety phase every fault is healed and power restored; every tower
    /// must then converge to the origin's catalog within this bound (liveness phase).
    pub liveness_bound: Duration,
    /// The seed used when none is given on the command line.
    pub seed: u64,
    /// The origin.
    pub origin: OriginSpec,
    /// The towers, each with its devices, uplinks and power set-up.
    pub towers: Vec<TowerSpec>,
    /// What users do.
    pub workload: Workload,
    /// The explicit fault schedule.
    pub faults: Vec<FaultSpec>,
    /// Random faults drawn from the seed.
    pub nemesis: Nemesis,
    /// Which invariants to check.
    pub invariants: BTreeSet<Oracle>,
    /// Thresholds on KPIs.
    pub slo: Slo,
    /// Seconds of the towers' power model (sun, battery, load) per second of the run: 1
    /// is real time; more compresses a solar day into a short run (720: a day in two
    /// minutes), in both worlds — the power tick comes that much more often, each still
    /// stepping the model by [`power::POWER_TICK`] ([`power::power_tick_every`]).
    pub power_time_scale: u32,
    /// Fault sites inside the simulator's drivers (BUGGIFY): each run enables a random
    /// subset of them, and an enabled site fires now and then (a slow fsync, a crash while
    /// one is pending, a reply just after the tower's deadline, a late duplicate of a
    /// forward). Off by default.
    pub buggify: bool,
}

/// The origin's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct OriginSpec {
    /// FastCDC sizes for published content.
    pub chunk: ChunkParams,
    /// Where the origin keeps its records.
    pub database: Database,
    /// The largest answer a tower reads, in the link model's bytes (`[origin]
    /// answer_bytes_max`; the real servers' 64 MiB by default,
    /// [`sovereign_logic::protocol::ANSWER_BYTES_MAX`]): a message the link charges more
    /// for is dropped by the tower, and the origin cuts its catalog pages to fit
    /// ([`sovereign_logic::protocol::catalog_page_refs`]). A smaller one lets a scenario
    /// outgrow it with a catalog of hundreds of small items instead of gigabytes.
    pub answer_bytes_max: u64,
}

impl Default for OriginSpec {
    fn default() -> Self {
        OriginSpec {
            chunk: ChunkParams::default(),
            database: Database::default(),
            answer_bytes_max: sovereign_logic::protocol::ANSWER_BYTES_MAX,
        }
    }
}

/// Where the origin keeps its records (catalog, apply log, ledger): `[origin] database`.
/// The simulator's origin is the same logic whichever it is; the lab starts a PostgreSQL
/// server for `Postgres`, and only then can it inject `db-kill`, `db-pause` and
/// `db-restart`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Database {
    /// SQLite in the origin's data directory (the default).
    #[default]
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Database {
    /// Every kind with its name in scenario files.
    pub const ALL: [(Database, &'static str); 2] = [
        (Database::Sqlite, "sqlite"),
        (Database::Postgres, "postgres"),
    ];

    /// Its name in scenario files.
    pub fn name(self) -> &'static str {
        Database::ALL
            .iter()
            .find(|(d, _)| *d == self)
            .map_or("sqlite", |(_, n)| n)
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<Database> {
        Database::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(d, _)| *d)
    }
}

/// One tower.
#[derive(Clone, Debug, PartialEq)]
pub struct TowerSpec {
    /// Unique name, e.g. `tower-0` (used by fault targets, the console and metrics).
    pub name: String,
    /// Devices attached over local Wi-Fi.
    pub devices: u32,
    /// Uplinks, each with a profile.
    pub links: Vec<LinkSpec>,
    /// The local Wi-Fi to devices.
    pub wifi: LinkProfile,
    /// Power set-up.
    pub power: PowerSpec,
    /// How often the tower polls the origin's catalog; `None`: the logic's default
    /// (`TowerConfig::catalog_interval`, 30 s). Whole seconds, 1 s..=1 h.
    pub catalog_poll: Option<Duration>,
    /// How long the tower waits for an answer from the origin before it gives the request
    /// up; `None`: the logic's default (`TowerConfig::request_timeout`, 20 s). Whole
    /// seconds, 1 s..=10 min.
    pub request_timeout: Option<Duration>,
    /// Time between two probes of each of the tower's links; `None`: the logic's default
    /// (`ProbePolicy::interval`, 5 s). Whole seconds, 1 s..=1 h. Detection takes
    /// `down_after` (3) failed probes, fail-back `up_after` (8) good ones.
    pub probe_interval: Option<Duration>,
}

/// One uplink of a tower.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkSpec {
    /// Which uplink (fibre, LTE, satellite).
    pub kind: LinkKind,
    /// How it behaves.
    pub profile: LinkProfile,
}

/// How a link behaves when healthy.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkProfile {
    /// Profile name (`fibre`, `lte`, `geo`, `leo`, `wifi`, or a custom one).
    pub name: String,
    /// One-way base latency.
    pub latency: Duration,
    /// Uniform jitter added to each delivery, `0..=jitter`.
    pub jitter: Duration,
    /// Bandwidth per direction.
    pub bytes_per_s: u64,
    /// Probability that a message is lost.
    pub loss: f64,
    /// LEO-style handovers: every `handover_every`, the link drops everything for
    /// `handover_outage`.
    pub handover_every: Option<Duration>,
    /// How long a handover outage lasts.
    pub handover_outage: Duration,
}

impl LinkProfile {
    /// The built-in profiles (DESIGN.md §10): `fibre`, `lte`, `geo`, `leo`, `wifi`.
    pub fn builtin(name: &str) -> Option<LinkProfile> {
        let ms = Duration::from_millis;
        let p = |latency, jitter, mbit: u64, loss, handover| LinkProfile {
            name: name.to_string(),
            latency,
            jitter,
            bytes_per_s: mbit * 1_000_000 / 8,
            loss,
            handover_every: handover,
            handover_outage: if handover.is_some() {
                ms(150)
            } else {
                Duration::ZERO
            },
        };
        Some(match name {
            // 30–160 ms RTT terrestrial; 100 Mbit/s.
            "fibre" => p(ms(20), ms(5), 100, 0.0, None),
            // Rural LTE: 13–19 Mbit/s down; some loss.
            "lte" => p(ms(45), ms(20), 15, 0.005, None),
            // GEO satellite: ~600 ms RTT.
            "geo" => p(ms(300), ms(20), 10, 0.01, None),
            // LEO (Starlink): ~50 ms RTT, handover about every 15 s.
            "leo" => p(ms(25), ms(10), 100, 0.002, Some(Duration::from_secs(15))),
            // Local Wi-Fi to devices.
            "wifi" => p(ms(3), ms(2), 50, 0.0, None),
            _ => return None,
        })
    }

    /// The names of the built-in profiles.
    pub const BUILTIN: [&'static str; 5] = ["fibre", "lte", "geo", "leo", "wifi"];
}

/// A tower's power set-up.
#[derive(Clone, Debug, PartialEq)]
pub struct PowerSpec {
    /// Solar panel peak output, watts (0 = no panel).
    pub solar_peak_w: f64,
    /// Battery capacity when new, watt-hours.
    pub battery_wh: f64,
    /// State of charge at the start, 0..=1.
    pub soc_initial: f64,
    /// Load at full service, watts (lower in shedding modes).
    pub load_w: f64,
    /// Mains connection (the tower charges from it when present and up).
    pub grid: bool,
    /// A UPS that rides through short outages (brown-outs) and reports its state.
    pub ups: bool,
    /// Average cloud cover, 0 (clear) ..= 1 (overcast).
    pub cloud_cover: f64,
}

/// What users do.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// Items published before the run starts.
    pub catalog: Vec<CatalogSpec>,
    /// New versions published per hour, per class (P0..P3), during the safety phase.
    pub publish_per_hour: [f64; 4],
    /// Size of each new publication per class, bytes.
    pub publish_bytes: [u64; 4],
    /// Reads per device per hour.
    pub reads_per_device_hour: f64,
    /// Operations per device per hour.
    pub ops_per_device_hour: f64,
    /// Share of operations that are ledger contributions (the rest are messages/forms).
    pub contribution_share: f64,
    /// Devices that misuse identities and keys (the lessons of issue 11, item 1).
    pub misuse: Misuse,
}

/// How devices misuse identities and keys, the way the real servers were attacked: every
/// rate 0 by default (well-behaved devices).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Misuse {
    /// Share of devices (after the first on each tower) that are copies of the device
    /// before them: the same identity, their own operations (a cloned state directory, or
    /// two phones on the default device number). `shared_identity`, 0..=1.
    pub shared_identity: f64,
    /// Per device-hour: the device sends one of its earlier, acknowledged keys again with
    /// another body (a restored backup). `key_reuse_per_device_hour`.
    pub key_reuse_per_device_hour: f64,
    /// Per hour, across the deployment: a stranger on a tower's Wi-Fi submits a
    /// contribution under the next key it guesses for one of that tower's devices.
    /// `key_theft_per_hour`.
    pub key_theft_per_hour: f64,
    /// Share of contributions a device gets wrong (amount 0, which the origin rejects).
    /// `invalid_share`, 0..=1.
    pub invalid_share: f64,
}

/// A group of items in the initial catalog.
#[derive(Clone, Debug, PartialEq)]
pub struct CatalogSpec {
    /// Their class.
    pub priority: Priority,
    /// How many items.
    pub items: u32,
    /// Size of each, bytes.
    pub bytes: u64,
}

/// Where a fault lands.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// The origin process / its disk.
    Origin,
    /// A tower (index into `Scenario::towers`): its process, disk, power, clock, or for
    /// network faults, all its uplinks (tower↔origin).
    Tower(usize),
    /// One uplink of a tower.
    Link(usize, LinkKind),
    /// A tower's local Wi-Fi (device↔tower).
    Wifi(usize),
}

/// Fault families (DESIGN.md §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// Links and partitions.
    Network,
    /// Processes.
    Process,
    /// Disks and databases.
    Disk,
    /// Power.
    Power,
    /// Clocks.
    Clock,
}

impl Family {
    /// As the docs and the nemesis keys (`network_per_hour`) spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Family::Network => "network",
            Family::Process => "process",
            Family::Disk => "disk",
            Family::Power => "power",
            Family::Clock => "clock",
        }
    }
}

/// One scheduled fault.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultSpec {
    /// When it starts, from the run's start.
    pub at: Duration,
    /// How long it lasts (zero for instantaneous faults such as a clock jump).
    pub duration: Duration,
    /// Where it lands.
    pub target: Target,
    /// What it does.
    pub kind: FaultKind,
}

/// The random nemesis: faults drawn from the seed at the given rates.
#[derive(Clone, Debug, PartialEq)]
pub struct Nemesis {
    /// Faults per hour per family (absent: none of that family).
    pub rates_per_hour: Vec<(Family, f64)>,
    /// Mean fault duration (exponentially distributed, capped at `duration_max`).
    pub duration_mean: Duration,
    /// Longest fault.
    pub duration_max: Duration,
}

impl Nemesis {
    /// No random faults.
    pub fn off() -> Nemesis {
        Nemesis {
            rates_per_hour: Vec::new(),
            duration_mean: Duration::from_secs(600),
            duration_max: Duration::from_secs(3600),
        }
    }
}

/// The invariants of DESIGN.md §6, one oracle each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Oracle {
    /// 1. No tower serves bytes whose hash mismatches their manifest.
    Integrity,
    /// 2. No operation a tower acknowledged is lost.
    Durability,
    /// 3. The origin applies each operation once.
    ExactlyOnce,
    /// 4. The ledger's money is conserved to the minor unit.
    Conservation,
    /// 5. No lower-class byte moves while P0 work waits on the same link.
    Priority,
    /// 6. After faults heal, every tower converges to the origin within the bound.
    Convergence,
    /// 7. While powered, a tower serves what it holds whatever its uplinks do.
    OfflineService,
    /// 8. A tower shuts down cleanly before its battery is empty (unless hard cut).
    PowerSafety,
    /// 9. Trust (DESIGN.md §11): every operation the origin applies is one its
    ///    key's owner submitted, and no two devices ever issue the same key.
    Attribution,
}

impl Oracle {
    /// All oracles.
    pub const ALL: [Oracle; 9] = [
        Oracle::Integrity,
        Oracle::Durability,
        Oracle::ExactlyOnce,
        Oracle::Conservation,
        Oracle::Priority,
        Oracle::Convergence,
        Oracle::OfflineService,
        Oracle::PowerSafety,
        Oracle::Attribution,
    ];

    /// The name used in files and output.
    pub const fn name(self) -> &'static str {
        match self {
            Oracle::Integrity => "integrity",
            Oracle::Durability => "durability",
            Oracle::ExactlyOnce => "exactly-once",
            Oracle::Conservation => "conservation",
            Oracle::Priority => "priority",
            Oracle::Convergence => "convergence",
            Oracle::OfflineService => "offline-service",
            Oracle::PowerSafety => "power-safety",
            Oracle::Attribution => "attribution",
        }
    }

    /// Parse a name.
    pub fn from_name(s: &str) -> Option<Oracle> {
        Oracle::ALL.into_iter().find(|o| o.name() == s)
    }
}

impl fmt::Display for Oracle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Thresholds on KPIs; a missed SLO is exit code 4 when no invariant failed.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Slo {
    /// Minimum device-read availability (good / valid reads), 0..=1.
    pub availability_min: Option<f64>,
    /// Maximum p99 freshness per class (publish → servable at a tower).
    pub freshness_p99_max: [Option<Duration>; 4],
    /// Maximum mean time to recovery.
    pub mttr_max: Option<Duration>,
    /// Maximum acknowledged operations lost (the RPO); 0 unless stated.
    pub rpo_max: u64,
    /// Minimum lowest state of charge seen, 0..=1.
    pub soc_min: Option<f64>,
}

/// Format a duration the way scenario files write them: `1d2h`, `30m`, `1.5s`, `250ms`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let mut s = ms / 1000;
    let mut out = String::new();
    for (unit, len) in [("d", 86_400u128), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    out
}
