//! Uplinks: bytes per link, failovers, circuit-breaker openings.
//!
//! One computation gives: the totals ([`Kpis::bytes_per_link`], `failovers`,
//! `breaker_openings`), the chart samples (a tower's uplinks now — bytes so far, health,
//! which is active —, failovers and breaker openings so far, [`Links::tower`]) and the
//! text rows.
//!
//! The rules: bytes are every transfer on the link, both directions; a failover is a
//! change of a tower's active uplink; breaker openings count the towers' and the
//! origin's. Not covered: traffic on the device Wi-Fi.

use super::{Kpis, Row, grow};
use crate::obs::{Obs, Stamped};
use sovereign_logic::io::Event;
use sovereign_logic::protocol::LinkKind;
use std::collections::BTreeMap;

/// One uplink of a tower.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkState {
    /// Which.
    pub kind: LinkKind,
    /// Bytes moved on it so far, both directions.
    pub bytes: u64,
    /// The tower's probes consider it healthy (until told otherwise: yes).
    pub healthy: bool,
}

/// One tower's uplinks.
#[derive(Clone, Debug, Default)]
pub struct TowerLinks {
    /// Its uplinks: the scenario's, in preference order, then any seen later.
    pub links: Vec<LinkState>,
    /// The active uplink (at the start: the first).
    pub active: Option<LinkKind>,
    /// Active-link changes so far.
    pub failovers: u64,
    /// Circuit-breaker openings so far.
    pub breaker_openings: u64,
}

impl TowerLinks {
    fn link(&mut self, kind: LinkKind) -> &mut LinkState {
        let i = match self.links.iter().position(|l| l.kind == kind) {
            Some(i) => i,
            None => {
                self.links.push(LinkState {
                    kind,
                    bytes: 0,
                    healthy: true,
                });
                self.links.len() - 1
            }
        };
        &mut self.links[i]
    }
}

/// Every tower's uplinks and the run's totals.
#[derive(Clone, Debug, Default)]
pub struct Links {
    towers: Vec<TowerLinks>,
    bytes_per_link: BTreeMap<LinkKind, u64>,
    failovers: u64,
    breaker_openings: u64,
}

impl Links {
    pub(super) fn observe(&mut self, s: &Stamped) {
        match &s.obs {
            Obs::Start { links, .. } => {
                for (t, kinds) in links.iter().enumerate() {
                    let tower = grow(&mut self.towers, t);
                    tower.active = kinds.first().copied();
                    for k in kinds {
                        tower.link(*k);
                    }
                }
            }
            Obs::Transfer { tower, link, bytes } => {
                let l = grow(&mut self.towers, *tower).link(*link);
                l.bytes = l.bytes.saturating_add(*bytes);
                let e = self.bytes_per_link.entry(*link).or_insert(0);
                *e = e.saturating_add(*bytes);
            }
            Obs::Tower { tower, event } => match event {
                Event::LinkHealth { link, up } => {
                    grow(&mut self.towers, *tower).link(*link).healthy = *up;
                }
                Event::ActiveLink { to, .. } => {
                    let t = grow(&mut self.towers, *tower);
                    t.failovers += 1;
                    t.active = *to;
                    self.failovers += 1;
                }
                Event::BreakerOpened => {
                    grow(&mut self.towers, *tower).breaker_openings += 1;
                    self.breaker_openings += 1;
                }
                _ => {}
            },
            Obs::Origin {
                event: Event::BreakerOpened,
            } => self.breaker_openings += 1,
            _ => {}
        }
    }

    /// A tower's uplinks now (a tower not heard of yet: none).
    pub fn tower(&self, tower: usize) -> Option<&TowerLinks> {
        self.towers.get(tower)
    }

    /// Bytes per uplink kind so far, all towers.
    pub fn bytes_per_link(&self) -> &BTreeMap<LinkKind, u64> {
        &self.bytes_per_link
    }

    pub(super) fn finish(&self, k: &mut Kpis) {
        k.bytes_per_link = self.bytes_per_link.clone();
        k.failovers = self.failovers;
        k.breaker_openings = self.breaker_openings;
    }
}

pub(super) fn rows(k: &Kpis) -> Vec<Row> {
    let mut rows: Vec<Row> = k
        .bytes_per_link
        .iter()
        .map(|(link, bytes)| {
            let text = match *bytes {
                b if b < 1024 => super::format_bytes(b),
                b => format!("{} ({b} B)", super::format_bytes(b)),
            };
            (format!("bytes {link}"), text)
        })
        .collect();
    rows.push(("failovers".into(), format!("{}", k.failovers)));
    rows.push(("breaker openings".into(), format!("{}", k.breaker_openings)));
    rows
}
