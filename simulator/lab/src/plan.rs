//! What the lab does for each fault of a scenario: the real injection of each kind it
//! can inject, and a refusal — before anything starts — for every kind, target or
//! parameter it cannot (docs/LAB.md has the table); clock faults and nemesis draws it
//! cannot inject are not refused but skipped, each with a line that says so
//! ([`Plan::not_injected`]). Also the scenario-wide refusals (device misuse) and the
//! oracles the lab cannot feed.
//!
//! Not covered: carrying the injections out (`run.rs`).

use crate::database::{DATABASE, DB_NAME};
use anyhow::{Result, bail};
use sovereign_logic::protocol::LinkKind;
use sovereign_report::data::target_name;
use sovereign_scenario::faults::{BOOT, FaultKind, crash_loop_period};
use sovereign_scenario::{Database, Family, FaultSpec, Oracle, Scenario, Target};
use std::collections::BTreeSet;
use std::time::Duration;

/// A real injection.
#[derive(Clone, Debug, PartialEq)]
pub enum Injection {
    /// Take these proxies down for the fault's duration (`Lab::cut`).
    ProxyDown {
        /// which
        cut: Cut,
    },
    /// Add a toxic on both streams of these proxies for the fault's duration.
    Toxic {
        /// proxy names
        proxies: Vec<String>,
        /// Toxiproxy type (`latency`, `bandwidth`, `loss`)
        kind: &'static str,
        /// its attributes
        attributes: serde_json::Value,
    },
    /// Garble what tower `tower`'s Wi-Fi carries to its devices: the proxy's `corrupt`
    /// toxic on the downstream of its Wi-Fi proxy (one bit flipped in a `window`-byte
    /// window with probability `p`), and the devices' reads of that tower checked by the
    /// device logic (`Obs::Delivered`) while it lasts.
    Garble {
        /// the tower's index
        tower: usize,
        /// per window
        p: f64,
        /// bytes
        window: u64,
    },
    /// SIGKILL the server; start it again when the fault ends.
    Crash {
        /// server name (`origin` or the tower's)
        server: String,
    },
    /// SIGKILL the server at the start and every `period` after; each time it starts
    /// again [`BOOT`] later; started again at the end if it is down.
    CrashLoop {
        /// server name
        server: String,
        /// between two kills ([`crash_loop_period`] of the fault's `every`)
        period: Duration,
    },
    /// Black-hole these proxies (as [`Injection::ProxyDown`]) for the first half of every
    /// `period` from the start, open them for the second half.
    Flapping {
        /// which
        cut: Cut,
        /// full period
        period: Duration,
    },
    /// A power fault on tower `tower`'s power plant, which the lab steps and whose
    /// readings the tower reads as its telemetry (`clouds`, `grid-loss`, `ups-failure`,
    /// `battery-fade` change the plant; `hard-cut` also SIGKILLs the tower and keeps it
    /// down until the fault ends; `brown-out` SIGKILLs a tower its UPS does not protect
    /// and starts it [`BOOT`] later).
    Power {
        /// the tower's index
        tower: usize,
        /// the fault
        kind: FaultKind,
    },
    /// SIGTERM the server, wait for it to exit, start it again at once.
    Restart {
        /// server name
        server: String,
    },
    /// SIGSTOP the server; SIGCONT when the fault ends.
    Pause {
        /// server name
        server: String,
    },
    /// Stop the server cleanly with SIGINT (PostgreSQL's fast shutdown: sessions ended,
    /// every commit kept) and keep it down; start it again when the fault ends.
    Shutdown {
        /// server name
        server: String,
    },
    /// The origin's database closed to connections (`ALTER DATABASE ... ALLOW_CONNECTIONS
    /// false`, not even a superuser may connect) and its open sessions ended
    /// (`pg_terminate_backend`); opened again when the fault ends.
    DbGate,
    /// `POST /admin/faults` on the server's admin API (chaos role); `DELETE
    /// /admin/faults` when the fault ends if `clear`.
    Admin {
        /// server name
        server: String,
        /// the request body
        body: serde_json::Value,
        /// clear the switchboard when the fault ends (`false` for an instant fault)
        clear: bool,
    },
}

impl Injection {
    /// One line: what is done.
    pub fn describe(&self) -> String {
        match self {
            Injection::ProxyDown { cut } => cut.describe(),
            Injection::Toxic {
                proxies,
                kind,
                attributes,
            } => format!("{kind} toxic {attributes} on {}", proxies.join(", ")),
            Injection::Garble { tower, p, window } => format!(
                "corrupt toxic on {} downstream (one bit in {window} B flipped with p = {p}); devices' reads checked by the device logic",
                wifi_proxy_name(*tower)
            ),
            Injection::Crash { server } => format!("SIGKILL {server}, restart at the end"),
            Injection::CrashLoop { server, period } => {
                format!("SIGKILL {server} every {period:?}, each time restarted {BOOT:?} later")
            }
            Injection::Flapping { cut, period } => {
                format!("{} for the first half of every {period:?}", cut.describe())
            }
            Injection::Restart { server } => format!("SIGTERM {server}, restart"),
            Injection::Power { tower, kind } => format!(
                "{} on tower {tower}'s power plant (its telemetry){}",
                kind.name(),
                match kind {
                    FaultKind::HardCut => ", SIGKILL, down until the end",
                    FaultKind::BrownOut => ", SIGKILL unless its UPS holds",
                    _ => "",
                }
            ),
            Injection::Pause { server } => format!("SIGSTOP {server}, SIGCONT at the end"),
            Injection::Shutdown { server } => {
                format!("SIGINT {server} (fast shutdown), started again at the end")
            }
            Injection::DbGate => format!(
                "ALTER DATABASE {DB_NAME} ALLOW_CONNECTIONS false and pg_terminate_backend of its sessions on {DATABASE}; allowed again at the end"
            ),
            Injection::Admin { server, body, .. } => {
                format!("POST /admin/faults {body} on {server}")
            }
        }
    }
}

/// One fault of the schedule and its injection.
#[derive(Clone, Debug)]
pub struct Planned {
    /// Its id in the run (its position in the schedule).
    pub id: u64,
    /// The fault as the scenario says it.
    pub spec: FaultSpec,
    /// What the lab does.
    pub injection: Injection,
}

/// The name of tower `i`'s proxy for its `kind` uplink.
pub fn proxy_name(i: usize, kind: LinkKind) -> String {
    format!("t{i}-{}", kind.name())
}

/// The name of tower `i`'s Wi-Fi proxy (between its devices and it).
pub fn wifi_proxy_name(i: usize) -> String {
    format!("t{i}-wifi")
}

/// The proxies a link cut takes down: uplinks are black-holed (a timeout toxic 0), a
/// tower's Wi-Fi is switched off (`Lab::cut` says why they differ).
#[derive(Clone, Debug, PartialEq)]
pub struct Cut {
    /// uplink proxies' names
    pub uplinks: Vec<String>,
    /// Wi-Fi proxies' names
    pub wifi: Vec<String>,
}

impl Cut {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.uplinks.is_empty() {
            parts.push(format!("uplinks {} black-holed", self.uplinks.join(", ")));
        }
        if !self.wifi.is_empty() {
            parts.push(format!("Wi-Fi {} switched off", self.wifi.join(", ")));
        }
        parts.join(", ")
    }
}

/// The tower-default configuration of the logic: what a `[[tower]]` without a catalog
/// poll, request timeout or power thresholds runs with.
pub fn tower_defaults() -> sovereign_logic::tower::TowerConfig {
    sovereign_logic::tower::TowerConfig::new(
        sovereign_logic::protocol::TowerId(0),
        &[LinkKind::Fibre],
    )
}

/// The server a target names (`origin` or the tower's name).
pub fn server_name(sc: &Scenario, t: &Target) -> String {
    match t {
        Target::Origin => "origin".to_string(),
        Target::Tower(i) | Target::Link(i, _) | Target::Wifi(i) => sc.towers[*i].name.clone(),
    }
}

fn proxies(sc: &Scenario, t: &Target) -> Option<Vec<String>> {
    match t {
        Target::Tower(i) => Some(
            sc.towers[*i]
                .links
                .iter()
                .map(|l| proxy_name(*i, l.kind))
                .collect(),
        ),
        Target::Link(i, k) => Some(vec![proxy_name(*i, *k)]),
        Target::Wifi(i) => Some(vec![wifi_proxy_name(*i)]),
        Target::Origin => None,
    }
}

/// Why the lab cannot inject `spec`, or its injection.
pub fn injection(sc: &Scenario, spec: &FaultSpec) -> Result<Injection, String> {
    let net = || {
        proxies(sc, &spec.target).ok_or_else(|| {
            "network faults need a tower or one of its uplinks as the target".to_string()
        })
    };
    let cut = || {
        Ok::<_, String>(match spec.target {
            Target::Wifi(i) => Cut {
                uplinks: Vec::new(),
                wifi: vec![wifi_proxy_name(i)],
            },
            _ => Cut {
                uplinks: net()?,
                wifi: Vec::new(),
            },
        })
    };
    let server = || server_name(sc, &spec.target);
    let whole = |p: f64, what: &str| {
        if p >= 1.0 {
            Ok(())
        } else {
            Err(format!(
                "p = {p}: the servers' fault switchboard fails every {what} or none; only p = 1 is injectable"
            ))
        }
    };
    Ok(match &spec.kind {
        FaultKind::LinkDown | FaultKind::Partition => Injection::ProxyDown { cut: cut()? },
        FaultKind::Latency { extra } => Injection::Toxic {
            proxies: net()?,
            kind: "latency",
            attributes: serde_json::json!({ "latency": extra.as_millis() as u64, "jitter": 0 }),
        },
        FaultKind::Bandwidth { bytes_per_s } => Injection::Toxic {
            proxies: net()?,
            kind: "bandwidth",
            // Toxiproxy's rate is in KB/s (1000 bytes); at least 1 (0 would mean no limit).
            attributes: serde_json::json!({ "rate": (bytes_per_s / 1000).max(1) }),
        },
        FaultKind::Loss { p } => Injection::Toxic {
            proxies: net()?,
            kind: "loss",
            attributes: serde_json::json!({ "loss_rate": p }),
        },
        // The simulator flips a bit in a chunk with probability p: the window is the
        // origin's average chunk (the real origin chunks with the logic's defaults).
        FaultKind::WifiCorruption { p } => match spec.target {
            Target::Wifi(i) => Injection::Garble {
                tower: i,
                p: *p,
                window: u64::from(sovereign_logic::content::ChunkParams::default().size_avg),
            },
            _ => return Err("wifi-corruption needs a tower's Wi-Fi as the target".into()),
        },
        FaultKind::Crash => Injection::Crash { server: server() },
        FaultKind::CrashLoop { every } => Injection::CrashLoop {
            server: server(),
            period: crash_loop_period(*every),
        },
        FaultKind::Flapping { period } => {
            if *period < Duration::from_millis(200) {
                return Err(format!(
                    "period = {period:?}: the lab switches a proxy's toxics by HTTP calls; a period under 200 ms cannot be kept"
                ));
            }
            Injection::Flapping {
                cut: cut()?,
                period: *period,
            }
        }
        FaultKind::Restart => Injection::Restart { server: server() },
        FaultKind::Clouds { .. }
        | FaultKind::GridLoss
        | FaultKind::UpsFailure
        | FaultKind::BatteryFade { .. }
        | FaultKind::HardCut
        | FaultKind::BrownOut => match spec.target {
            Target::Tower(i) => Injection::Power {
                tower: i,
                kind: spec.kind.clone(),
            },
            _ => return Err("power faults need a tower as the target".into()),
        },
        FaultKind::Pause => Injection::Pause { server: server() },
        // The origin's PostgreSQL (the parser refuses these on an SQLite origin).
        FaultKind::DbKill => Injection::Crash {
            server: DATABASE.into(),
        },
        FaultKind::DbPause => Injection::Pause {
            server: DATABASE.into(),
        },
        FaultKind::DbRestart => Injection::Shutdown {
            server: DATABASE.into(),
        },
        FaultKind::DbLost
            if spec.target == Target::Origin && sc.origin.database == Database::Postgres =>
        {
            Injection::DbGate
        }
        FaultKind::WriteError { p } => {
            whole(*p, "write")?;
            Injection::Admin {
                server: server(),
                body: serde_json::json!({ "kind": "write-error" }),
                clear: true,
            }
        }
        FaultKind::FsyncError { p } => {
            whole(*p, "fsync")?;
            Injection::Admin {
                server: server(),
                body: serde_json::json!({ "kind": "fsync-failure" }),
                clear: true,
            }
        }
        FaultKind::DiskFull => Injection::Admin {
            server: server(),
            body: serde_json::json!({ "kind": "disk-full" }),
            clear: true,
        },
        FaultKind::DiskLatency { extra } => {
            let ms = extra.as_millis();
            if ms > 60_000 {
                return Err(format!(
                    "extra = {ms} ms: the servers' slow-disk fault takes at most 60000 ms"
                ));
            }
            Injection::Admin {
                server: server(),
                body: serde_json::json!({ "kind": "slow-disk", "delay_ms": ms as u64 }),
                clear: true,
            }
        }
        FaultKind::Corruption { chunks } => {
            if *chunks > 10_000 {
                return Err(format!(
                    "chunks = {chunks}: the servers' corrupt fault takes at most 10000"
                ));
            }
            Injection::Admin {
                server: server(),
                body: serde_json::json!({ "kind": "corrupt", "count": chunks }),
                clear: false,
            }
        }
        other => return Err(not_real(other.name()).to_string()),
    })
}

/// Why a kind has no real injection yet (docs/LAB.md says the same).
fn not_real(kind: &str) -> &'static str {
    match kind {
        "duplicate" | "reorder" => {
            "a TCP proxy cannot duplicate or reorder messages: TCP delivers each byte once, in order"
        }
        "slow" => "a slow CPU has no real injection here (no cgroup CPU quota is set by the lab)",
        "origin-replace" | "rogue-forward" | "origin-busy" => {
            "trust faults are not injected by the lab yet"
        }
        "torn-write" => {
            "a torn write needs a crash between a write and its fsync; the servers have no switch for it"
        }
        "db-lost" => {
            "on a tower or an origin on SQLite the servers' switchboard cannot fail record writes alone (write-error fails chunk files too); it is real on an origin on PostgreSQL ([origin] database = \"postgres\")"
        }
        "clock-skew" | "clock-jump" => {
            "a real clock fault needs a clock the servers read through (e.g. libfaketime); none is set up"
        }
        _ => "this kind has no real injection in the lab",
    }
}

/// A lab run's faults: what is injected, and what is not (with why).
#[derive(Debug)]
pub struct Plan {
    /// The faults injected: the scenario's, then its nemesis' draws for the seed (ids are
    /// positions in that list, as in the simulator's schedule).
    pub faults: Vec<Planned>,
    /// One line for each fault the lab does not inject (`FILE: fault[i] (kind on target
    /// at T): NOT INJECTED in the lab: why`): clock faults (no real clock fault here),
    /// and nemesis draws of kinds it has no injection for. Printed, kept in the report's
    /// notes; never silent.
    pub not_injected: Vec<String>,
    /// How many of `faults` and `not_injected` together the nemesis drew.
    pub drawn: usize,
}

/// Check the whole scenario for the lab and plan its faults for `seed`: every reason it
/// cannot run is one line of the error (`FILE: fault[i] (kind on target at T): why`).
/// A `[nemesis]` is drawn as the simulator draws it ([`sovereign_sim::nemesis_schedule`]:
/// the same faults at the same times for the same seed).
pub fn plan(sc: &Scenario, file: &str, seed: u64) -> Result<Plan> {
    let mut errors = Vec::new();
    let m = &sc.workload.misuse;
    if m.shared_identity > 0.0
        || m.key_reuse_per_device_hour > 0.0
        || m.key_theft_per_hour > 0.0
        || m.invalid_share > 0.0
    {
        errors.push(format!(
            "{file}: workload: the lab's devices do not misuse identities or keys yet; set the misuse options to 0"
        ));
    }
    let drawn = sovereign_sim::nemesis_schedule(sc, seed);
    let explicit = sc.faults.len();
    let mut plan = Plan {
        faults: Vec::new(),
        not_injected: Vec::new(),
        drawn: drawn.len(),
    };
    for (i, spec) in sc.faults.iter().chain(&drawn).enumerate() {
        let what = format!(
            "{file}: fault[{i}] ({} on {} at {:?}{})",
            spec.kind.name(),
            target_name(sc, &spec.target),
            spec.at,
            if i >= explicit {
                ", drawn by the nemesis"
            } else {
                ""
            }
        );
        match injection(sc, spec) {
            Ok(injection) => plan.faults.push(Planned {
                id: i as u64,
                spec: spec.clone(),
                injection,
            }),
            Err(why) if i >= explicit || spec.kind.family() == Family::Clock => plan
                .not_injected
                .push(format!("{what}: NOT INJECTED in the lab: {why}")),
            Err(why) => errors.push(format!("{what}: cannot be injected in the lab: {why}")),
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(plan)
}

/// The oracles the lab cannot feed honestly, with why: they are switched off and the
/// reason printed, never left to pass on observations that never come.
pub fn unfed_oracles() -> Vec<(Oracle, &'static str)> {
    vec![(
        Oracle::Priority,
        "needs whether P0 work was waiting at each chunk request (Obs::Requested), which the servers do not expose",
    )]
}

/// The invariants a lab run checks: the scenario's, less [`unfed_oracles`].
pub fn lab_invariants(sc: &Scenario) -> BTreeSet<Oracle> {
    let off: BTreeSet<Oracle> = unfed_oracles().into_iter().map(|(o, _)| o).collect();
    sc.invariants.difference(&off).copied().collect()
}
