//! Availability and the error budget: valid device reads and how they ended.
//!
//! One computation gives: the totals ([`Kpis::availability`], `reads_good`,
//! `reads_valid`, `tower_reads`; with an availability SLO the error budget and burn
//! rates), the chart samples (each tower's served / refused / unreachable reads so far,
//! [`Reads::tower`], and the run's totals, [`Reads::totals`]) and the text rows.
//!
//! The rule: a read counts when it was valid (the item exists at the origin); it is good
//! when it was served. Not covered: reads of items that do not exist (not valid), the
//! per-tower serving time (see `power.rs`).

use super::{Kpis, Row, grow};
use crate::obs::{Obs, ReadResult, Stamped};
use sovereign_scenario::Slo;

/// Valid reads per tower and per sample period.
#[derive(Clone, Debug, Default)]
pub struct Reads {
    /// Per tower (index = tower id, up to the last tower with a valid read): served,
    /// refused, unreachable.
    towers: Vec<[u64; 3]>,
    /// Valid reads served, all towers.
    good: u64,
    /// Valid reads, all towers.
    valid: u64,
    /// Per [`super::SAMPLE_PERIOD`] (up to [`super::SAMPLES_MAX`]): (served, valid).
    periods: Vec<(u64, u64)>,
}

impl Reads {
    pub(super) fn observe(&mut self, s: &Stamped) {
        let Obs::Read {
            tower,
            valid: true,
            result,
            ..
        } = &s.obs
        else {
            return;
        };
        let i = match result {
            ReadResult::Served => 0,
            ReadResult::Refused(_) => 1,
            ReadResult::Unreachable => 2,
        };
        let good = u64::from(i == 0);
        grow(&mut self.towers, *tower)[i] += 1;
        self.good += good;
        self.valid += 1;
        let period = s.at.as_micros() / super::SAMPLE_PERIOD.as_micros() as u64;
        if let Some(p) = usize::try_from(period)
            .ok()
            .filter(|p| *p < super::SAMPLES_MAX)
        {
            let e = grow(&mut self.periods, p);
            e.0 += good;
            e.1 += 1;
        }
    }

    /// A tower's valid reads so far: served, refused, unreachable.
    pub fn tower(&self, tower: usize) -> [u64; 3] {
        self.towers.get(tower).copied().unwrap_or_default()
    }

    /// Valid reads served and valid reads so far, all towers.
    pub fn totals(&self) -> (u64, u64) {
        (self.good, self.valid)
    }

    /// Served / valid so far (1 before any valid read).
    pub fn availability(&self) -> f64 {
        if self.valid == 0 {
            1.0
        } else {
            self.good as f64 / self.valid as f64
        }
    }

    pub(super) fn finish(&self, k: &mut Kpis) {
        k.reads_good = self.good;
        k.reads_valid = self.valid;
        k.availability = self.availability();
        k.tower_reads = self.towers.iter().map(|r| (r[0], r.iter().sum())).collect();
        k.read_periods = self.periods.clone();
        assert!(k.reads_good <= k.reads_valid);
    }
}

/// The burn rate of a share of bad reads against the share the SLO allows (`1 −
/// availability_min`): 1 spends the error budget exactly; the budget left is `1 −` it.
/// The KPIs and a chart of the budget over time (the OpenMetrics export) both use it.
pub fn burn_rate(bad_share: f64, allowed: f64) -> f64 {
    bad_share / allowed
}

/// The error budget and burn rates against the availability SLO (none without one, or
/// with an SLO of 1, which allows no bad read).
pub(super) fn apply_slo(k: &mut Kpis, slo: &Slo) {
    let allowed = slo.availability_min.map(|m| 1.0 - m).filter(|a| *a > 0.0);
    let burn = |good: u64, valid: u64, allowed: f64| {
        burn_rate((valid - good) as f64 / valid as f64, allowed)
    };
    k.burn_rate = allowed
        .filter(|_| k.reads_valid > 0)
        .map(|a| burn(k.reads_good, k.reads_valid, a));
    k.error_budget_remaining = allowed.map(|_| 1.0 - k.burn_rate.unwrap_or(0.0));
    k.burn_rate_max = allowed.and_then(|a| {
        k.read_periods
            .iter()
            .filter(|(_, valid)| *valid > 0)
            .map(|(good, valid)| burn(*good, *valid, a))
            .reduce(f64::max)
    });
}

pub(super) fn availability_row(k: &Kpis) -> Row {
    (
        "availability".into(),
        format!(
            "{:.4} ({}/{} valid reads served)",
            k.availability, k.reads_good, k.reads_valid
        ),
    )
}

pub(super) fn per_tower_row(k: &Kpis) -> Option<Row> {
    if !k.tower_reads.iter().any(|(_, valid)| *valid > 0) {
        return None;
    }
    let per: Vec<String> = k
        .tower_reads
        .iter()
        .enumerate()
        .map(|(i, (good, valid))| {
            let share = if *valid == 0 {
                "n/a".to_string()
            } else {
                format!("{:.4}", *good as f64 / *valid as f64)
            };
            format!("{} {share}", k.tower_name(i))
        })
        .collect();
    Some(("reads served per tower".into(), per.join(", ")))
}

pub(super) fn budget_row(k: &Kpis) -> Row {
    (
        "error budget remaining".into(),
        format!(
            "{} (burn rate {}, worst 10m {})",
            super::opt_f(k.error_budget_remaining, 3),
            super::opt_f(k.burn_rate, 2),
            super::opt_f(k.burn_rate_max, 2)
        ),
    )
}
