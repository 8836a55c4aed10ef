//! End-to-end tests of the simulator on the shipped scenarios: every scenario runs
//! clean, every planted bug is caught by its oracle, and runs are deterministic.
//!
//! One test binary for the area (turmoil's `tests/fs/main.rs` layout); each module says
//! what it guards.

mod branch;
mod buggify;
mod common;
mod determinism;
mod faults;
mod plants;
mod scenarios;
