//! Sovereign's deterministic simulator: a discrete-event world that runs the system's
//! real logic (`sovereign-logic`) from one seed, injects faults, checks invariants and
//! measures KPIs.
//!
//! # Layout
//! - [`scenario`]: the scenario files (the `sovereign-scenario` crate, re-exported):
//!   the model, the fault table, the TOML reader (file/line/field errors) and writer;
//!   [`tomlspan`] reads TOML with serde for it and the other file formats (failure files,
//!   game-day plans), with the same errors.
//! - [`world`]: the run loop — virtual clock, event queue, seeded RNG; hosts (origin,
//!   towers, devices), links, disks, power, processes and clocks; fault injection.
//! - [`obs`], [`oracle`], [`kpi`], [`Observer`]: the observation stream the world reports
//!   and what reads it as the run goes — one checker per invariant of DESIGN.md §6, the
//!   KPIs of §7 (the `sovereign-observe` crate, re-exported; it does not depend on the
//!   simulator, so the lab feeds it from real processes).
//! - [`plant`]: planted bugs, one per oracle; [`hunt`]: runs to the first catch of one;
//!   [`swarm`]: a per-run variant of a scenario with features switched off (swarm testing);
//!   [`likelihood`]: how often a failure recurs when its run branches at points before it
//!   ([`Branch`]: the same run up to a moment, fresh randomness after it).
//! - [`report`]: a run's result and its exit code.
//! - [`trace`]: the event trace and its hash (determinism).
//!
//! Not covered: rendering runs for people and tools (reports, OpenMetrics, Grafana
//! annotations, JUnit: the `sovereign-report` crate).
//!
//! Determinism contract: no wall clock, no OS randomness, no threads, no iteration over
//! std hash maps in this crate (clippy enforces it). Same seed + scenario + build ⇒ the
//! same trace hash.
#![warn(missing_docs)]

pub mod failure;
pub mod hunt;
pub mod likelihood;
pub mod plant;
pub mod report;
pub mod shrink;
pub mod swarm;
pub mod sweep;
pub mod trace;
pub mod world;

pub use sovereign_observe::{Observer, kpi, obs, oracle};
pub use sovereign_scenario as scenario;
pub use sovereign_scenario::tomlspan;

pub use plant::Plant;
pub use report::{RunReport, Violation};
pub use scenario::{Oracle, Scenario};
pub use world::{
    Branch, FaultView, LinkView, Phase, RunOptions, Snapshot, Sometimes, TowerView, World,
    nemesis_schedule, run,
};
