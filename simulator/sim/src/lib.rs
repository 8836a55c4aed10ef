//! Sovereign's deterministic simulator: a discrete-event world that runs the system's
//! real logic (`sovereign-logic`) from one seed, injects faults, checks invariants and
//! measures KPIs.
//!
//! # Layout
//! - [`scenario`]: the scenario model, its TOML parser (file/line/field errors) and writer.
//! - [`world`]: the run loop — virtual clock, event queue, seeded RNG; hosts (origin,
//!   towers, devices), links, disks, power, processes and clocks; fault injection.
//! - [`obs`]: observations the world reports to oracles and KPIs.
//! - [`oracle`]: one checker per invariant of DESIGN.md §6.
//! - [`kpi`]: KPIs of DESIGN.md §7 computed from observations; SLO checks; `kpi_serde`:
//!   how they read and write themselves in JSON (seconds, class rows, link names).
//! - [`plant`]: planted bugs, one per oracle.
//! - [`report`]: a run's result and its exit code.
//! - [`trace`]: the event trace and its hash (determinism).
//! - [`tomlspan`]: reading spanned TOML with file/line/field errors (shared parsers).
//!
//! Not covered: rendering runs for people and tools (reports, OpenMetrics, Grafana
//! annotations, JUnit: the `sovereign-report` crate).
//!
//! Determinism contract: no wall clock, no OS randomness, no threads, no iteration over
//! std hash maps in this crate (clippy enforces it). Same seed + scenario + build ⇒ the
//! same trace hash.
#![warn(missing_docs)]

pub mod failure;
pub mod kpi;
mod kpi_serde;
pub mod obs;
pub mod oracle;
pub mod plant;
pub mod report;
pub mod scenario;
pub mod shrink;
pub mod sweep;
pub mod tomlspan;
pub mod trace;
pub mod world;

pub use plant::Plant;
pub use report::{RunReport, Violation};
pub use scenario::{Oracle, Scenario};
pub use world::{FaultView, LinkView, Phase, RunOptions, Snapshot, TowerView, World, run};
