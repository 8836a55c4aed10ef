//! Power and serving time: each tower's power mode, running state, battery and energy.
//!
//! One computation gives: the totals ([`Kpis::tower_availability`] — powered-and-serving
//! time / run time, DESIGN §7's per-tower availability —, `energy_wh`, `soc_lowest`),
//! the chart samples (a tower's state now,
//! [`Power::tower`]) and the text rows.
//!
//! The rule: a tower serves while it runs (assumed from the run's start until told
//! otherwise; a first word that is a start means it was booting) and is not shutting down
//! or off. Not covered: whether reads were served (see `reads.rs`).

use super::{Kpis, Row, grow};
use crate::obs::{Obs, Stamped};
use sovereign_logic::Time;
use sovereign_logic::io::{Event, PowerMode};

/// One tower's power state.
#[derive(Clone, Debug, Default)]
pub struct TowerPower {
    /// Running (`None`: no TowerUp/TowerDown seen yet — assumed running).
    up: Option<bool>,
    /// The power mode.
    pub mode: PowerMode,
    /// Serving since (when serving now; `None` at creation means since the run's start).
    serving_since: Option<Time>,
    /// Not serving now (set once it stopped; a new tower serves from the start).
    stopped: bool,
    serving_us: u64,
    /// Energy drawn by the load since the start, Wh.
    pub energy_wh: f64,
    /// The last state of charge reported.
    pub soc: Option<f64>,
    /// The last solar power reported, W.
    pub solar_w: Option<f64>,
}

impl TowerPower {
    /// Running and not shutting down or off.
    pub fn serving(&self) -> bool {
        self.up.unwrap_or(true) && self.mode < PowerMode::ShuttingDown
    }

    /// Account the serving time up to `now`, then apply `change`. `t0`: the run's start.
    fn update(&mut self, now: Time, t0: Time, change: impl FnOnce(&mut TowerPower)) {
        change(self);
        match (!self.stopped, self.serving()) {
            (true, false) => {
                let since = self.serving_since.unwrap_or(t0);
                self.serving_us += now.saturating_since(since).as_micros() as u64;
                self.stopped = true;
            }
            (false, true) => {
                self.serving_since = Some(now);
                self.stopped = false;
            }
            _ => {}
        }
    }
}

/// Every tower's power state and the lowest state of charge.
#[derive(Clone, Debug, Default)]
pub struct Power {
    towers: Vec<TowerPower>,
    soc_lowest: Option<f64>,
}

impl Power {
    pub(super) fn observe(&mut self, s: &Stamped, t0: Time) {
        let at = s.at;
        match &s.obs {
            Obs::Tower {
                tower,
                event: Event::PowerMode { to, .. },
            } => grow(&mut self.towers, *tower).update(at, t0, |t| t.mode = *to),
            Obs::TowerDown { tower, .. } => {
                grow(&mut self.towers, *tower).update(at, t0, |t| t.up = Some(false));
            }
            Obs::TowerUp { tower } => grow(&mut self.towers, *tower).update(at, t0, |t| {
                if t.up.is_none() {
                    // The first word on this tower is a start: it was not running
                    // before (booting), contrary to the assumption.
                    t.serving_us = 0;
                    t.stopped = true;
                }
                t.up = Some(true);
                if t.mode >= PowerMode::ShuttingDown {
                    // A started process serves; its mode is reported next.
                    t.mode = PowerMode::Normal;
                }
            }),
            Obs::Power {
                tower,
                soc,
                mode,
                energy_wh,
                solar_w,
            } => {
                grow(&mut self.towers, *tower).update(at, t0, |t| {
                    t.mode = *mode;
                    t.energy_wh = *energy_wh;
                    t.soc = Some(*soc);
                    t.solar_w = Some(*solar_w);
                });
                self.soc_lowest = Some(self.soc_lowest.map_or(*soc, |m| m.min(*soc)));
            }
            _ => {}
        }
    }

    /// A tower's power state now (a tower not heard of yet: its defaults).
    pub fn tower(&self, tower: usize) -> TowerPower {
        self.towers.get(tower).cloned().unwrap_or_default()
    }

    /// The lowest state of charge of any tower so far.
    pub fn soc_lowest(&self) -> Option<f64> {
        self.soc_lowest
    }

    /// `towers`: towers in the run; the run went from `t0` to `end`.
    pub(super) fn finish(&self, k: &mut Kpis, towers: usize, t0: Time, end: Time) {
        let run_us = end.saturating_since(t0).as_micros() as u64;
        let mut all = self.towers.clone();
        all.resize_with(towers.max(all.len()), TowerPower::default);
        for t in &mut all {
            t.update(end, t0, |t| t.up = Some(false));
        }
        k.tower_availability = all
            .iter()
            .map(|t| {
                if run_us == 0 {
                    1.0
                } else {
                    t.serving_us as f64 / run_us as f64
                }
            })
            .collect();
        k.energy_wh = all.iter().map(|t| t.energy_wh).sum();
        k.soc_lowest = self.soc_lowest;
    }
}

pub(super) fn serving_row(k: &Kpis) -> Option<Row> {
    if k.tower_availability.is_empty() {
        return None;
    }
    let per: Vec<String> = k
        .tower_availability
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{} {a:.4}", k.tower_name(i)))
        .collect();
    Some(("serving time per tower".into(), per.join(", ")))
}

pub(super) fn rows(k: &Kpis) -> [Row; 2] {
    [
        ("energy used".into(), format!("{:.1} Wh", k.energy_wh)),
        ("lowest soc".into(), super::opt_f(k.soc_lowest, 3)),
    ]
}
