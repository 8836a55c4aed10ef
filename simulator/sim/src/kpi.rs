//! KPIs (DESIGN.md §7) computed from observations, and SLO checks. (Being written.)

use crate::obs::Stamped;
use crate::scenario::Slo;

/// The KPIs of one run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Kpis {
    /// Good device reads / valid device reads.
    pub availability: f64,
    /// Invariant violations found (set by the world).
    pub violations: u64,
}

impl Kpis {
    /// Compute the KPIs from a run's observations.
    pub fn from_observations(obs: &[Stamped]) -> Kpis {
        let _ = obs;
        Kpis::default()
    }

    /// Human-readable summary lines (`name: value`).
    pub fn lines(&self) -> Vec<String> {
        vec![format!("availability: {:.4}", self.availability)]
    }

    /// Check the scenario's SLOs.
    pub fn check(&self, slo: &Slo) -> Vec<SloCheck> {
        let _ = slo;
        Vec::new()
    }
}

/// One SLO and whether it held.
#[derive(Clone, Debug, PartialEq)]
pub struct SloCheck {
    /// e.g. `availability >= 0.99`
    pub name: String,
    /// held?
    pub pass: bool,
    /// the measured value, formatted
    pub measured: String,
}
