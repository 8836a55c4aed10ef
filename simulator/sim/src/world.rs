//! The simulated world. (Being written.)

use crate::kpi::Kpis;
use crate::plant::Plant;
use crate::report::RunReport;
use crate::scenario::{FaultSpec, Scenario};
use sovereign_logic::Time;

/// How to run a scenario.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The seed.
    pub seed: u64,
    /// A planted bug.
    pub plant: Option<Plant>,
    /// Record text trace lines (for `replay --trace`).
    pub record_trace: bool,
    /// Replace the scenario's faults and nemesis with this explicit schedule (replay,
    /// shrink).
    pub schedule: Option<Vec<FaultSpec>>,
}

/// Run a scenario to its end.
pub fn run(scenario: &Scenario, opts: &RunOptions) -> RunReport {
    RunReport {
        scenario: scenario.name.clone(),
        seed: opts.seed,
        plant: opts.plant,
        trace_hash: String::new(),
        events: 0,
        end: Time::ZERO,
        violations: Vec::new(),
        kpis: Kpis::default(),
        slo: Vec::new(),
        schedule: Vec::new(),
        trace: Vec::new(),
    }
}
