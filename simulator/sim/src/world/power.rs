//! The world's power tick: each tower's power plant stepped on the simulated clock.
//!
//! Solar follows a day curve (06:00–18:00) dimmed by the tower's cloud cover, a daily
//! weather draw (from the `weather` stream) and a `clouds` fault; a battery with fade
//! charges from it (and from the grid when there is one) and drains by the load of the
//! tower's power mode. Every [`POWER_TICK`] the world steps the battery, kills a tower
//! whose battery is flat, boots one the battery allows again, and hands the tower a
//! telemetry reading, as a charge controller would.
//!
//! Map: `World::power_tick`, `World::send_power_reading`; the plant itself is
//! [`PowerModel`] (`sovereign_scenario::power`, which the lab steps too).
//!
//! Not covered: the origin's power, devices' batteries, temperature.

use super::World;
use super::events::Ev;
use super::hosts::Proc;
use crate::obs::Obs;
use crate::trace::TraceKind;
use sovereign_logic::entropy::Entropy;
use sovereign_logic::io::PowerMode;
use sovereign_logic::tower::power::PowerManager;

pub(super) use sovereign_scenario::power::{POWER_OBS_EVERY, POWER_TICK, PowerModel};

impl World {
    fn solar_w(&mut self, i: usize) -> f64 {
        let secs = self.towers[i].power.next_step_secs();
        let day = secs / 86_400;
        let daily = match self.towers[i].power.weather.get(&day) {
            Some(w) => *w,
            None => {
                let w = (self.weather.unit() - 0.5) * 0.4;
                self.towers[i].power.weather.insert(day, w);
                w
            }
        };
        let t = &self.towers[i];
        t.power.solar_w(&t.spec.power, secs, daily)
    }

    pub(super) fn power_tick(&mut self, i: usize) {
        let solar = self.solar_w(i);
        let t = &mut self.towers[i];
        let mode = match (&t.tower, t.proc) {
            (Some(tw), Proc::Running) => tw.power_mode(),
            _ => PowerMode::Off,
        };
        let empty = t.power.step(&t.spec.power, solar, mode, POWER_TICK);
        let grid = t.power.grid(&t.spec.power);
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
        if matches!(t.proc, Proc::Off | Proc::Dead)
            && t.power.hard_cut == 0
            && t.crash_faults == 0
            && (grid || PowerManager::may_power_on(&t.config.power, t.power.soc_permille()))
        {
            self.boot_tower(i);
        }
        if self.towers[i].running() {
            self.send_power_reading(i);
        }
        let every = sovereign_scenario::power::power_tick_every(self.scenario().power_time_scale);
        self.push(self.now + every, Ev::PowerTick { tower: i });
    }

    pub(super) fn send_power_reading(&mut self, i: usize) {
        let now = self.now;
        let t = &self.towers[i];
        let mode = t.tower.as_ref().map_or(PowerMode::Off, |x| x.power_mode());
        let reading = t.power.reading(&t.spec.power, mode);
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
