//! The observation stream of a run and everything that reads it as it goes: the
//! oracles (invariants) and the KPIs. A run's source — the simulator's world today, real
//! processes in the lab — stamps each [`obs::Obs`] with its time and hands it to every
//! [`Observer`] once, in time order; nothing here keeps the whole log or depends on
//! where the observations come from.
//!
//! Map:
//! - [`obs`]: the vocabulary ([`obs::Obs`], [`obs::Stamped`]).
//! - [`oracle`]: one checker per invariant of DESIGN.md §6 and [`oracle::Oracles`], which
//!   runs the enabled ones.
//! - [`kpi`]: the resilience KPIs ([`kpi::KpiScan`] measures them, [`kpi::Kpis`] holds
//!   them and serialises itself).
//! - this file: the [`Observer`] interface and [`Violation`], what an oracle reports.
//!
//! Not covered: producing observations (the simulator's world, the lab), reports.

#![warn(missing_docs)]

pub mod kpi;
mod kpi_serde;
pub mod obs;
pub mod oracle;

use sovereign_logic::Time;
use sovereign_scenario::Oracle;

/// Anything fed the observation stream: each observation once, in time order.
pub trait Observer {
    /// Take one observation.
    fn observe(&mut self, s: &obs::Stamped);
}

impl Observer for oracle::Oracles {
    fn observe(&mut self, s: &obs::Stamped) {
        oracle::Oracles::observe(self, s);
    }
}

impl Observer for kpi::KpiScan {
    fn observe(&mut self, s: &obs::Stamped) {
        kpi::KpiScan::observe(self, s);
    }
}

/// Keeping every observation: for tests and short runs only (a long run's log is large).
impl Observer for Vec<obs::Stamped> {
    fn observe(&mut self, s: &obs::Stamped) {
        self.push(s.clone());
    }
}

/// One invariant violation.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    /// Which oracle fired.
    pub oracle: Oracle,
    /// When (the run's time: virtual in the simulator).
    pub at: Time,
    /// What exactly, in one line.
    pub detail: String,
    /// A liveness failure (convergence) rather than a safety one.
    pub liveness: bool,
}
