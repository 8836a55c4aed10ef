//! Freshness per priority class: publish at the origin → servable at a tower.
//!
//! One computation gives: the totals ([`Kpis::freshness`] p50/p99, samples and versions
//! never servable per class; [`Kpis::freshness_superseded`]), the chart samples (every
//! sample so far in time order per class, [`Freshness::samples`], which a chart windows
//! and sums; versions made servable per tower and class, [`Freshness::servable`]) and
//! the text rows.
//!
//! The rule: a sample is the first `ContentServable` of (tower, item, version) minus the
//! first publish of (item, version), in the class it was published in. At the end a
//! (tower, item, version) published but never servable is "never servable", unless a
//! later version of the item became servable at that tower (superseded). Not covered:
//! versions made servable whose publish was not seen (no sample).

use super::{Kpis, Row, grow, percentile};
use crate::obs::{Obs, Stamped};
use sovereign_logic::Time;
use sovereign_logic::content::{ItemId, Priority};
use sovereign_logic::io::Event;
use std::collections::BTreeMap;

/// Freshness of one priority class.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassFreshness {
    /// (tower, item, version) that became servable after their publish was seen.
    pub samples: u64,
    /// Median publish → servable, microseconds (nearest rank).
    #[serde(rename = "p50_s", with = "crate::kpi_serde::opt_us_as_secs")]
    pub p50_us: Option<u64>,
    /// 99th percentile publish → servable, microseconds (nearest rank).
    #[serde(rename = "p99_s", with = "crate::kpi_serde::opt_us_as_secs")]
    pub p99_us: Option<u64>,
    /// (tower, item, version) that never became servable, nor any later version of the
    /// item at that tower (a skipped, superseded version is counted apart).
    pub unservable: u64,
}

/// Publishes, versions made servable and the samples.
#[derive(Clone, Debug, Default)]
pub struct Freshness {
    /// (item, version) → first publish and its class.
    published: BTreeMap<(ItemId, u64), (Time, Priority)>,
    /// (tower, item, version) made servable → publish → servable µs (`None`: its publish
    /// was not seen).
    servable: BTreeMap<(usize, ItemId, u64), Option<u64>>,
    /// Per class: (servable at, publish → servable µs), in time order.
    samples: [Vec<(Time, u64)>; 4],
    /// Per tower: versions made servable per class (the event's class).
    towers: Vec<[u64; 4]>,
}

impl Freshness {
    /// Feed one observation (in time order; a caller may fold freshness alone).
    pub fn observe(&mut self, s: &Stamped) {
        match &s.obs {
            Obs::Published { manifest } => {
                self.published
                    .entry((manifest.item.clone(), manifest.version))
                    .or_insert((s.at, manifest.priority));
            }
            Obs::Tower {
                tower,
                event:
                    Event::ContentServable {
                        item,
                        version,
                        priority,
                    },
            } => {
                let key = (*tower, item.clone(), *version);
                if self.servable.contains_key(&key) {
                    return;
                }
                grow(&mut self.towers, *tower)[priority.index()] += 1;
                let sample = self
                    .published
                    .get(&(item.clone(), *version))
                    .map(|(at, class)| (s.at.saturating_since(*at).as_micros() as u64, *class));
                if let Some((us, class)) = sample {
                    self.samples[class.index()].push((s.at, us));
                }
                self.servable.insert(key, sample.map(|(us, _)| us));
            }
            _ => {}
        }
    }

    /// Every sample of a class so far: (servable at, publish → servable µs), in time
    /// order.
    pub fn samples(&self, class: Priority) -> &[(Time, u64)] {
        &self.samples[class.index()]
    }

    /// Every version published so far: (item, version) → (first publish, class).
    pub fn published(&self) -> &BTreeMap<(ItemId, u64), (Time, Priority)> {
        &self.published
    }

    /// Publish → servable of (tower, item, version), µs; `None` when it is not servable
    /// there (or its publish was not seen).
    pub fn version_us(&self, tower: usize, item: &ItemId, version: u64) -> Option<u64> {
        self.servable
            .get(&(tower, item.clone(), version))
            .copied()
            .flatten()
    }

    /// Versions made servable at a tower so far, per class.
    pub fn servable(&self, tower: usize) -> [u64; 4] {
        self.towers.get(tower).copied().unwrap_or_default()
    }

    /// `towers`: towers in the run.
    pub(super) fn finish(&self, k: &mut Kpis, towers: usize) {
        for ((item, version), (_, class)) in &self.published {
            for t in 0..towers {
                if self.servable.contains_key(&(t, item.clone(), *version)) {
                    continue;
                }
                let later = self
                    .servable
                    .range((t, item.clone(), version.saturating_add(1))..)
                    .next()
                    .is_some_and(|((tt, it, _), _)| *tt == t && it == item);
                if later {
                    k.freshness_superseded += 1;
                } else {
                    k.freshness[class.index()].unservable += 1;
                }
            }
        }
        for (f, samples) in k.freshness.iter_mut().zip(&self.samples) {
            let mut us: Vec<u64> = samples.iter().map(|(_, us)| *us).collect();
            us.sort_unstable();
            f.samples = us.len() as u64;
            f.p50_us = percentile(&us, 50);
            f.p99_us = percentile(&us, 99);
        }
    }
}

pub(super) fn rows(k: &Kpis) -> Vec<Row> {
    let opt_us = |v: Option<u64>| v.map_or_else(|| "n/a".to_string(), super::format_us);
    let mut rows: Vec<Row> = Priority::ALL
        .iter()
        .zip(&k.freshness)
        .map(|(class, f)| {
            (
                format!("freshness {class}"),
                format!(
                    "p50 {}, p99 {} ({} samples, {} never servable)",
                    opt_us(f.p50_us),
                    opt_us(f.p99_us),
                    f.samples,
                    f.unservable
                ),
            )
        })
        .collect();
    rows.push((
        "superseded versions".into(),
        format!("{} (skipped for a later one)", k.freshness_superseded),
    ));
    rows
}
