//! The lab: a scenario file — the same TOML the simulator runs — run against real
//! processes: an origin (SQLite, or PostgreSQL when the scenario asks), the scenario's towers, one `sovereign proxy` in front
//! of every tower uplink, and device load generators. The fault schedule is carried out
//! in wall-clock time by real injections (proxy toxics, signals, the servers' admin fault
//! switchboard); what the servers and devices do is observed into the same
//! `sovereign-observe` oracles and KPIs as a simulated run, and reported the same way.
//!
//! Map:
//! - [`backend`]: the [`backend::Backend`] trait, the `processes` backend, the state file
//!   and [`backend::down`];
//! - [`containers`]: the `containers` backend (Docker Engine API, locally built image);
//! - [`database`]: the origin's PostgreSQL server (scenarios with `[origin] database =
//!   "postgres"`) and the `db-lost` gate;
//! - [`plan`]: each fault kind's real injection, and the refusals (kinds, targets,
//!   parameters, scenario options the lab cannot carry out; oracles it cannot feed);
//! - [`run`]: one run, from start to report ([`run::run`]);
//! - [`http`]: the small blocking HTTP client and event-stream reader it uses;
//! - [`fidelity`]: the simulator's KPIs against the lab's, with the tolerances claimed.
//!
//! Not covered: nemesis faults, device misuse, clock faults (docs/LAB.md says what is
//! real and what is not).

#![warn(missing_docs)]

pub mod backend;
pub mod containers;
pub mod database;
pub mod fidelity;
pub mod http;
pub mod plan;
pub mod run;

pub use backend::{BackendKind, default_state_dir, down};
pub use run::{LabOptions, LabRun, Publication, Session, initial_items, item_name, run};

/// Planted bugs the lab can switch on in its servers, each refused unless explicitly
/// allowed: `skip-verify`, `no-failover`, `no-failback`, `ack-before-fsync` and
/// `ignore-battery` are `tower serve --plant` in every tower;
/// `lying-fsync` is the admin switchboard's fault of that name, switched on in every
/// tower as soon as it answers (and again after each restart): acknowledgements that a
/// crash then loses; `reply-before-fsync` is `origin serve --plant`: the origin answers
/// a forward before its applies are durable; `device-skip-verify` is the lab's devices'
/// (the device logic's `verify_reads` off: they keep what a garbling Wi-Fi delivers).
pub const PLANTS: &[&str] = &[
    "skip-verify",
    "no-failover",
    "no-failback",
    "ack-before-fsync",
    "ignore-battery",
    "lying-fsync",
    "reply-before-fsync",
    "device-skip-verify",
];

/// Whether `plant` is the origin's (`origin serve --plant`) rather than the towers'.
pub fn plant_is_origin(plant: &str) -> bool {
    plant == "reply-before-fsync"
}

/// Whether `plant` is the lab's devices' rather than a server's.
pub fn plant_is_device(plant: &str) -> bool {
    plant == "device-skip-verify"
}

/// Whether `plant` is switched on through the admin switchboard rather than a flag.
pub fn plant_is_switchboard(plant: &str) -> bool {
    plant == "lying-fsync"
}

/// A flag set by Ctrl-C (SIGINT) or SIGTERM: the run stops, kills every process it
/// started and reports. A second signal is not special (the harness still cleans up).
pub fn interrupt_flag() -> anyhow::Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, flag.clone())?;
    }
    Ok(flag)
}

/// Whether the lab's progress lines and warnings stay off the terminal ([`set_quiet`]).
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Warnings held back while quiet, printed when [`set_quiet`] is turned off.
static HELD: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Keep the lab's progress lines and warnings off the terminal, for as long as another
/// program draws on it (the console: a stray line would tear its screen). Nothing is
/// lost: the injections are in the run's audit file, and the warnings are held and
/// printed to stderr when this is turned off again (the run's own warnings are also in
/// its report notes).
pub fn set_quiet(on: bool) {
    QUIET.store(on, std::sync::atomic::Ordering::Relaxed);
    if !on {
        let held = std::mem::take(&mut *HELD.lock().unwrap_or_else(|e| e.into_inner()));
        for line in held {
            eprintln!("{line}");
        }
    }
}

/// A progress line on stdout, unless [`set_quiet`] (then dropped: the audit file has it).
pub(crate) fn say(line: &str) {
    if !QUIET.load(std::sync::atomic::Ordering::Relaxed) {
        println!("{line}");
    }
}

/// A warning on stderr; held until [`set_quiet`] is off.
pub(crate) fn shout(line: &str) {
    if QUIET.load(std::sync::atomic::Ordering::Relaxed) {
        HELD.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line.to_string());
    } else {
        eprintln!("{line}");
    }
}
