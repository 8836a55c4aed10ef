//! The simulated power plant of each tower, and the world's power tick.
//!
//! Solar follows a day curve (06:00–18:00) dimmed by the tower's cloud cover, a daily
//! weather draw (from the `weather` stream) and a `clouds` fault; a battery with fade
//! charges from it (and from the grid when there is one) and drains by the load of the
//! tower's power mode. Every [`POWER_TICK`] the world steps the battery, kills a tower
//! whose battery is flat, boots one the battery allows again, and hands the tower a
//! telemetry reading, as a charge controller would.
//!
//! Map: [`PowerModel`], [`load_factor`]; `World::power_tick`, `World::send_power_reading`.
//!
//! Not covered: the origin's power, devices' batteries, temperature.

use super::World;
use super::events::Ev;
use super::hosts::Proc;
use crate::obs::Obs;
use crate::scenario::PowerSpec;
use crate::trace::TraceKind;
use sovereign_logic::entropy::Entropy;
use sovereign_logic::io::PowerMode;
use sovereign_logic::tower::power::{PowerManager, PowerReading, UpsState};
use std::collections::BTreeMap;
use std::time::Duration;

/// Power telemetry and battery model step.
pub(super) const POWER_TICK: Duration = Duration::from_secs(10);
/// Power observations are sampled every this many ticks.
const POWER_OBS_EVERY: u64 = 60;

/// A tower's power plant: solar panel, battery, load, grid and UPS, and the power
/// faults' overlays on them.
pub(super) struct PowerModel {
    pub(super) soc_wh: f64,
    pub(super) capacity_wh: f64,
    pub(super) fade: f64,
    pub(super) clouds: f64,
    pub(super) grid_lost: u32,
    pub(super) ups_failed: u32,
    pub(super) hard_cut: u32,
    pub(super) energy_wh: f64,
    pub(super) solar_w: f64,
    pub(super) ticks: u64,
    /// Daily weather (extra cloudiness per day), drawn lazily.
    pub(super) weather: BTreeMap<u64, f64>,
}

impl PowerModel {
    /// A new battery (full capacity, charged to the spec's initial state), clear skies.
    pub(super) fn new(spec: &PowerSpec) -> PowerModel {
        let capacity = spec.battery_wh.max(0.001);
        PowerModel {
            soc_wh: capacity * spec.soc_initial.clamp(0.0, 1.0),
            capacity_wh: capacity,
            fade: 1.0,
            clouds: 0.0,
            grid_lost: 0,
            ups_failed: 0,
            hard_cut: 0,
            energy_wh: 0.0,
            solar_w: 0.0,
            ticks: 0,
            weather: BTreeMap::new(),
        }
    }

    pub(super) fn capacity(&self) -> f64 {
        (self.capacity_wh * self.fade).max(0.001)
    }
    pub(super) fn soc(&self) -> f64 {
        (self.soc_wh / self.capacity()).clamp(0.0, 1.0)
    }
}

fn load_factor(mode: PowerMode) -> f64 {
    match mode {
        PowerMode::Normal => 1.0,
        PowerMode::ShedP3 => 0.85,
        PowerMode::ShedP2 => 0.7,
        PowerMode::Essential | PowerMode::ShuttingDown => 0.5,
        PowerMode::Off => 0.02,
    }
}

impl World {
    fn solar_w(&mut self, i: usize) -> f64 {
        let now = self.now;
        let t = &self.towers[i];
        let secs = now.as_micros() / 1_000_000;
        let day = secs / 86_400;
        let hour = (secs % 86_400) as f64 / 3600.0;
        let curve = if (6.0..18.0).contains(&hour) {
            (std::f64::consts::PI * (hour - 6.0) / 12.0).sin()
        } else {
            0.0
        };
        let base = t.spec.power.cloud_cover;
        let peak = t.spec.power.solar_peak_w;
        let fault_clouds = t.power.clouds;
        let daily = match self.towers[i].power.weather.get(&day) {
            Some(w) => *w,
            None => {
                let w = (self.weather.unit() - 0.5) * 0.4;
                self.towers[i].power.weather.insert(day, w);
                w
            }
        };
        let cover = (base + daily).clamp(0.0, 1.0).max(fault_clouds);
        peak * curve * (1.0 - 0.9 * cover)
    }

    pub(super) fn power_tick(&mut self, i: usize) {
        let dt_h = POWER_TICK.as_secs_f64() / 3600.0;
        let solar = self.solar_w(i);
        let t = &mut self.towers[i];
        let mode = match (&t.tower, t.proc) {
            (Some(tw), Proc::Running) => tw.power_mode(),
            _ => PowerMode::Off,
        };
        let load = t.spec.power.load_w * load_factor(mode);
        let grid = t.spec.power.grid && t.power.grid_lost == 0;
        let supply = solar + if grid { 20.0 } else { 0.0 };
        let cap = t.power.capacity();
        t.power.soc_wh = (t.power.soc_wh + (supply - load) * dt_h).clamp(0.0, cap);
        t.power.energy_wh += load * dt_h;
        t.power.solar_w = solar;
        t.power.ticks += 1;
        let empty = t.power.soc_wh <= 0.0 && !grid;
        let running = t.running();
        if empty && running {
            let hard_cut = t.power.hard_cut > 0;
            self.observe(Obs::BatteryEmpty {
                tower: i,
                running: true,
                hard_cut,
            });
            // The battery is flat: the tower dies uncleanly.
            self.tower_down(i, false, Proc::Dead);
        }
        let t = &self.towers[i];
        if t.power.ticks % POWER_OBS_EVERY == 0 {
            let mode = match (&t.tower, t.proc) {
                (Some(tw), Proc::Running) => tw.power_mode(),
                _ => PowerMode::Off,
            };
            let obs = Obs::Power {
                tower: i,
                soc: t.power.soc(),
                mode,
                energy_wh: t.power.energy_wh,
                solar_w: solar,
            };
            self.observe(obs);
        }
        // Boot when the battery allows (after a clean shutdown or a power death); the
        // reconnect threshold sits above the shutdown one.
        let t = &self.towers[i];
        if matches!(t.proc, Proc::Off | Proc::Dead) && t.power.hard_cut == 0 && t.crash_faults == 0
        {
            let soc_permille = (t.power.soc() * 1000.0) as u16;
            if grid || PowerManager::may_power_on(&t.config.power, soc_permille) {
                self.boot_tower(i);
            }
        }
        if self.towers[i].running() {
            self.send_power_reading(i);
        }
        self.push(self.now + POWER_TICK, Ev::PowerTick { tower: i });
    }

    pub(super) fn send_power_reading(&mut self, i: usize) {
        let now = self.now;
        let t = &self.towers[i];
        let mode = t.tower.as_ref().map_or(PowerMode::Off, |x| x.power_mode());
        let grid = t.spec.power.grid && t.power.grid_lost == 0;
        let reading = PowerReading {
            soc_permille: (t.power.soc() * 1000.0).round() as u16,
            solar_mw: (t.power.solar_w * 1000.0) as u32,
            load_mw: (t.spec.power.load_w * load_factor(mode) * 1000.0) as u32,
            ups: if t.power.ups_failed > 0 {
                UpsState::Failed
            } else if grid {
                UpsState::Online
            } else {
                UpsState::OnBattery
            },
        };
        let local = t.local(now);
        if t.paused_until.is_some_and(|u| u > now) {
            return;
        }
        self.trace.event(
            now,
            TraceKind::PowerReading,
            i as u64,
            &[reading.soc_permille as u64],
        );
        if let Some(tw) = self.towers[i].tower.as_mut() {
            tw.handle_power(local, reading);
        }
        self.drain_tower(i);
    }
}
