//! Oracles: one checker per invariant of DESIGN.md §6. (Being written.)

use crate::obs::Stamped;
use crate::report::Violation;
use crate::scenario::Oracle;
use std::collections::BTreeSet;

/// Runs the enabled checkers over a stream of observations.
pub struct Oracles {
    enabled: BTreeSet<Oracle>,
    violations: Vec<Violation>,
}

impl Oracles {
    /// Checkers for the given invariants.
    pub fn new(enabled: &BTreeSet<Oracle>) -> Oracles {
        Oracles {
            enabled: enabled.clone(),
            violations: Vec::new(),
        }
    }

    /// Feed one observation.
    pub fn observe(&mut self, obs: &Stamped) {
        let _ = (obs, &self.enabled);
    }

    /// Violations found so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Finish (end-of-run checks) and return every violation.
    pub fn finish(self) -> Vec<Violation> {
        self.violations
    }
}
