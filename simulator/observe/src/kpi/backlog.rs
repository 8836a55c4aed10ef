//! The outbox backlog: operations acknowledged to devices and not yet applied upstream.
//!
//! One computation gives: the totals ([`Kpis::backlog_max`], `backlog_final`, the level
//! at the end of each sample period), the chart samples (a tower's outbox now,
//! [`Backlog::tower`]; all towers', [`Backlog::total`]) and the text row.
//!
//! The rule: each tower reports its outbox's size; the backlog is their sum. Not
//! covered: how old the held operations are.

use super::{Kpis, Row, grow};
use crate::obs::{Obs, Stamped};

/// Every tower's outbox and the total's history.
#[derive(Clone, Debug, Default)]
pub struct Backlog {
    towers: Vec<u64>,
    total: u64,
    max: u64,
    /// The total at the end of each sample period, up to the last one with a report.
    periods: Vec<u64>,
}

impl Backlog {
    pub(super) fn observe(&mut self, s: &Stamped, period: Option<usize>) {
        let Obs::Backlog { tower, ops } = &s.obs else {
            return;
        };
        *grow(&mut self.towers, *tower) = *ops;
        let before = self.total;
        self.total = self.towers.iter().sum();
        self.max = self.max.max(self.total);
        if let Some(p) = period {
            // Periods since the last report held the level before this one.
            if self.periods.len() <= p {
                self.periods.resize(p + 1, before);
            }
            self.periods[p] = self.total;
        }
    }

    /// A tower's outbox now, operations.
    pub fn tower(&self, tower: usize) -> u64 {
        self.towers.get(tower).copied().unwrap_or(0)
    }

    /// All towers' outboxes now, operations.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The total at the end of sample period `p` (`p` not after the current one).
    pub(super) fn period(&self, p: usize) -> u64 {
        self.periods.get(p).copied().unwrap_or(self.total)
    }

    pub(super) fn finish(&self, k: &mut Kpis) {
        k.backlog_max = self.max;
        k.backlog_final = self.total;
    }
}

pub(super) fn row(k: &Kpis) -> Row {
    (
        "outbox backlog".into(),
        format!(
            "max {}, final {} operations",
            k.backlog_max, k.backlog_final
        ),
    )
}
