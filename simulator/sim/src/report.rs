//! What a run produces: violations, KPIs, SLO checks, the explicit fault schedule and
//! the trace hash — and the exit code they map to.
//!
//! Exit codes (the CLI's contract): 0 all held; 1 an invariant was violated; 2 bad input
//! or usage (the CLI's own); 3 liveness (no convergence within the bound); 4 only SLOs
//! missed.

use crate::kpi::{Kpis, SloCheck};
use crate::plant::Plant;
use crate::scenario::{FaultSpec, Oracle};
use sovereign_logic::Time;
pub use sovereign_observe::Violation;

/// The result of one run.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// Scenario name.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// The planted bug, if any.
    pub plant: Option<Plant>,
    /// Hex SHA-256 of the event trace.
    pub trace_hash: String,
    /// Events processed.
    pub events: u64,
    /// Virtual time at the end.
    pub end: Time,
    /// Violations, in the order found.
    pub violations: Vec<Violation>,
    /// KPIs.
    pub kpis: Kpis,
    /// SLO checks.
    pub slo: Vec<SloCheck>,
    /// Every fault that was applied, explicit and nemesis-drawn (replaying with this
    /// schedule and no nemesis reproduces the run's faults).
    pub schedule: Vec<FaultSpec>,
    /// The run's branch points, in time order (replay needs them too).
    pub branches: Vec<crate::world::Branch>,
    /// The rare moments the run reached, with when it first reached each.
    pub sometimes: Vec<(crate::world::Sometimes, Time)>,
    /// The recorded trace lines, when recording was asked for.
    pub trace: Vec<String>,
}

impl RunReport {
    /// Whether this run violated `oracle` (at least once).
    pub fn violates(&self, oracle: Oracle) -> bool {
        self.violations.iter().any(|v| v.oracle == oracle)
    }

    /// The exit code: 1 safety violation, 3 liveness only, 4 SLO only, 0 all held.
    pub fn exit_code(&self) -> u8 {
        if self.violations.iter().any(|v| !v.liveness) {
            1
        } else if !self.violations.is_empty() {
            3
        } else if self.slo.iter().any(|c| !c.pass) {
            4
        } else {
            0
        }
    }

    /// The first violation, if any.
    pub fn first_violation(&self) -> Option<&Violation> {
        self.violations.first()
    }
}
