//! The outbox backlog: operations acknowledged to devices and not yet applied upstream.
//!
//! One computation gives: the totals ([`Kpis::backlog_max`], `backlog_final`), the chart
//! samples (a tower's outbox now,
//! [`Backlog::tower`]; all towers', [`Backlog::total`]) and the text row.
//!
//! The rule: each tower reports its outbox's size; the backlog is their sum. Not
//! covered: how old the held operations are.

use super::{Kpis, Row, grow};
use crate::obs::{Obs, Stamped};

/// Every tower's outbox, the total and its highest level.
#[derive(Clone, Debug, Default)]
pub struct Backlog {
    towers: Vec<u64>,
    total: u64,
    max: u64,
}

impl Backlog {
    pub(super) fn observe(&mut self, s: &Stamped) {
        let Obs::Backlog { tower, ops } = &s.obs else {
            return;
        };
        *grow(&mut self.towers, *tower) = *ops;
        self.total = self.towers.iter().sum();
        self.max = self.max.max(self.total);
    }

    /// A tower's outbox now, operations.
    pub fn tower(&self, tower: usize) -> u64 {
        self.towers.get(tower).copied().unwrap_or(0)
    }

    /// All towers' outboxes now, operations.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub(super) fn finish(&self, k: &mut Kpis) {
        k.backlog_max = self.max;
        k.backlog_final = self.total;
    }
}

pub(super) fn row(k: &Kpis) -> Row {
    let (max, last) = (k.backlog_max, k.backlog_final);
    let text = format!("max {max}, final {last} operations");
    ("outbox backlog".into(), text)
}
