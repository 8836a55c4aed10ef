//! Priority inversions: lower-class chunk requests issued while P0 work waited.
//!
//! One computation gives: the totals ([`Kpis::priority_inversions`],
//! `priority_inversion_bytes`), the chart samples (per tower: inversions and chunk bytes
//! requested per class so far, [`Inversions::tower`]) and the text row.
//!
//! The rule is the priority oracle's ([`crate::oracle::priority::is_inversion`]), not a
//! copy. Not covered: reporting them as violations (the oracle does).

use super::{Kpis, Row, grow};
use crate::obs::{Obs, Stamped};
use crate::oracle::priority::is_inversion;

/// One tower's chunk requests.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TowerRequests {
    /// Inversions so far.
    pub inversions: u64,
    /// Chunk bytes requested per class so far.
    pub bytes: [u64; 4],
}

/// Chunk requests per tower and the inversions among them.
#[derive(Clone, Debug, Default)]
pub struct Inversions {
    towers: Vec<TowerRequests>,
    count: u64,
    bytes: u64,
}

impl Inversions {
    pub(super) fn observe(&mut self, s: &Stamped) {
        let Obs::Requested {
            tower,
            class,
            bytes,
            ..
        } = &s.obs
        else {
            return;
        };
        let t = grow(&mut self.towers, *tower);
        t.bytes[class.index()] = t.bytes[class.index()].saturating_add(*bytes);
        if let Some(moved) = is_inversion(&s.obs) {
            t.inversions += 1;
            self.count += 1;
            self.bytes = self.bytes.saturating_add(moved);
        }
    }

    /// A tower's requests so far.
    pub fn tower(&self, tower: usize) -> TowerRequests {
        self.towers.get(tower).copied().unwrap_or_default()
    }

    pub(super) fn finish(&self, k: &mut Kpis) {
        k.priority_inversions = self.count;
        k.priority_inversion_bytes = self.bytes;
    }
}

pub(super) fn row(k: &Kpis) -> Row {
    let bytes = k.priority_inversion_bytes;
    let text = format!("{} ({})", k.priority_inversions, super::format_bytes(bytes));
    ("priority inversions".into(), text)
}
