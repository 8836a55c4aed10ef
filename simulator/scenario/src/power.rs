//! A tower's power plant as both worlds model it: solar from a day curve dimmed by cloud
//! cover, a battery with fade that charges from the sun (and the grid when there is one
//! and it is up) and drains by the load of the tower's power mode, a UPS, and the power
//! faults' overlays on them. The simulator steps it on its clock; the lab steps it on
//! the wall clock and writes each reading where the real tower reads its telemetry.
//!
//! Map: [`PowerModel`] (`step`, `reading`, `solar_w`), [`load_factor`], [`POWER_TICK`].
//!
//! Not covered: who steps it, what happens when the battery is empty (the worlds kill the
//! tower), the daily weather draw (the caller's random stream), the origin's power.

use crate::PowerSpec;
use sovereign_logic::io::PowerMode;
use sovereign_logic::tower::power::{PowerReading, UpsState};
use std::collections::BTreeMap;
use std::time::Duration;

/// Power telemetry and battery model step.
pub const POWER_TICK: Duration = Duration::from_secs(10);
/// Power observations are sampled every this many ticks.
pub const POWER_OBS_EVERY: u64 = 60;
/// The largest power time scale a scenario may ask for (a day in two minutes; the lab
/// then steps the model every 14 ms).
pub const POWER_TIME_SCALE_MAX: u32 = 720;

/// How often the power model is stepped, in run time, at time scale `scale`
/// (`Scenario::power_time_scale`): [`POWER_TICK`] / scale; each step is [`POWER_TICK`]
/// of the model's time.
pub fn power_tick_every(scale: u32) -> Duration {
    POWER_TICK / scale.max(1)
}

/// What the grid supplies when it is present and up, watts.
pub const GRID_W: f64 = 20.0;

/// A tower's power plant: solar panel, battery, load, grid and UPS, and the power
/// faults' overlays on them.
#[derive(Clone, Debug)]
pub struct PowerModel {
    /// Battery charge, watt-hours.
    pub soc_wh: f64,
    /// Battery capacity when new, watt-hours.
    pub capacity_wh: f64,
    /// Share of the capacity left (`battery-fade`).
    pub fade: f64,
    /// Cloud cover a `clouds` fault imposes (0 without one).
    pub clouds: f64,
    /// `grid-loss` faults on.
    pub grid_lost: u32,
    /// `ups-failure` faults on.
    pub ups_failed: u32,
    /// `hard-cut` faults on.
    pub hard_cut: u32,
    /// Energy drawn by the load since the start, Wh.
    pub energy_wh: f64,
    /// Solar output at the last step, W.
    pub solar_w: f64,
    /// Steps taken.
    pub ticks: u64,
    /// Daily weather (extra cloudiness per day), drawn lazily by the caller.
    pub weather: BTreeMap<u64, f64>,
}

/// The share of the full load a tower draws in `mode`.
pub fn load_factor(mode: PowerMode) -> f64 {
    match mode {
        PowerMode::Normal => 1.0,
        PowerMode::ShedP3 => 0.85,
        PowerMode::ShedP2 => 0.7,
        PowerMode::Essential | PowerMode::ShuttingDown => 0.5,
        PowerMode::Off => 0.02,
    }
}

impl PowerModel {
    /// A new battery (full capacity, charged to the spec's initial state), clear skies.
    pub fn new(spec: &PowerSpec) -> PowerModel {
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

    /// The battery's capacity now (faded), Wh.
    pub fn capacity(&self) -> f64 {
        (self.capacity_wh * self.fade).max(0.001)
    }

    /// State of charge, 0..=1.
    pub fn soc(&self) -> f64 {
        (self.soc_wh / self.capacity()).clamp(0.0, 1.0)
    }

    /// State of charge in per-mille, as the power manager's thresholds read it.
    pub fn soc_permille(&self) -> u16 {
        (self.soc() * 1000.0) as u16
    }

    /// The model's clock at its next step, whole seconds from the run's start (0 is
    /// midnight): one [`POWER_TICK`] per step, whatever the time scale (each world steps
    /// it every [`power_tick_every`] of its own time, the first one tick after the
    /// start).
    pub fn next_step_secs(&self) -> u64 {
        (self.ticks + 1) * POWER_TICK.as_secs()
    }

    /// Mains present and up.
    pub fn grid(&self, spec: &PowerSpec) -> bool {
        spec.grid && self.grid_lost == 0
    }

    /// Solar output `secs` seconds after the run's start (time 0 is midnight), with the
    /// day's extra cloudiness `daily`: the day curve (06:00–18:00) dimmed by the cover.
    pub fn solar_w(&self, spec: &PowerSpec, secs: u64, daily: f64) -> f64 {
        let hour = (secs % 86_400) as f64 / 3600.0;
        let curve = if (6.0..18.0).contains(&hour) {
            (std::f64::consts::PI * (hour - 6.0) / 12.0).sin()
        } else {
            0.0
        };
        let cover = (spec.cloud_cover + daily).clamp(0.0, 1.0).max(self.clouds);
        spec.solar_peak_w * curve * (1.0 - 0.9 * cover)
    }

    /// One step of `dt` with solar output `solar` and the tower in `mode` (`Off` when it
    /// does not run): the battery charges or drains, the load's energy is counted.
    /// Whether the battery is now empty with no grid to run from.
    pub fn step(&mut self, spec: &PowerSpec, solar: f64, mode: PowerMode, dt: Duration) -> bool {
        let dt_h = dt.as_secs_f64() / 3600.0;
        let load = spec.load_w * load_factor(mode);
        let grid = self.grid(spec);
        let supply = solar + if grid { GRID_W } else { 0.0 };
        let cap = self.capacity();
        self.soc_wh = (self.soc_wh + (supply - load) * dt_h).clamp(0.0, cap);
        self.energy_wh += load * dt_h;
        self.solar_w = solar;
        self.ticks += 1;
        self.soc_wh <= 0.0 && !grid
    }

    /// The charge controller's reading with the tower in `mode`.
    pub fn reading(&self, spec: &PowerSpec, mode: PowerMode) -> PowerReading {
        PowerReading {
            soc_permille: (self.soc() * 1000.0).round() as u16,
            solar_mw: (self.solar_w * 1000.0) as u32,
            load_mw: (spec.load_w * load_factor(mode) * 1000.0) as u32,
            ups: if self.ups_failed > 0 {
                UpsState::Failed
            } else if self.grid(spec) {
                UpsState::Online
            } else {
                UpsState::OnBattery
            },
        }
    }
}
