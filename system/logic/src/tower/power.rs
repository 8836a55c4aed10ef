//! The tower's power manager: sheds load in steps as the battery drains, and shuts down
//! cleanly before it is empty.
//!
//! Input is telemetry from the charge controller / UPS ([`PowerReading`]: state of charge
//! in per-mille, solar and load in milliwatts, UPS state). The mode ([`PowerMode`]) follows
//! the SoC through four thresholds: shed P3 sync, shed P2 sync, essential only, shut down.
//! Going down is immediate and may skip steps; going up needs the SoC to clear the
//! threshold by a hysteresis margin, so a SoC wobbling around a threshold cannot make the
//! mode flap. Once shutting down, the shutdown completes: readings never bring the tower
//! back, and powering on again is a new boot decided by [`PowerManager::may_power_on`] at a
//! reconnect threshold well above the shutdown one (a low-voltage disconnect's hysteresis).
//! As NUT's `upsmon` does, silence is treated as danger: no reading for
//! `telemetry_timeout`, or a UPS that reports itself failed, counts as a low battery and
//! shuts the tower down.
//!
//! Map: [`UpsState`], [`PowerReading`], [`PowerThresholds`] (+ `validate`, [`PowerError`]),
//! [`PowerManager`] (`handle_reading`, `handle_tick`, `mark_off`, `next_timeout`,
//! `may_power_on`).
//!
//! Not covered: carrying out a mode (the tower pauses sync classes via
//! [`PowerMode::allows_sync`], flushes, fsyncs and emits `Action::PowerOff`), emitting
//! [`crate::io::Event::PowerMode`] (the owner does, from the returned pair), energy
//! accounting and battery models (the simulator's business).

use crate::Time;
use crate::io::PowerMode;
use std::time::Duration;

/// Full charge in per-mille.
pub const SOC_PERMILLE_MAX: u16 = 1000;

/// What the UPS / inverter reports about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpsState {
    /// Charging or supplied from outside (grid, solar surplus).
    Online,
    /// Running from the battery.
    OnBattery,
    /// The UPS reports a fault: its SoC cannot be trusted and power may drop at any time.
    Failed,
}

/// One telemetry reading from the charge controller / UPS. SoC in per-mille (0..=1000) to
/// stay integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerReading {
    /// Battery state of charge, per-mille (values above 1000 are read as 1000).
    pub soc_permille: u16,
    /// Solar output, milliwatts.
    pub solar_mw: u32,
    /// The tower's load, milliwatts.
    pub load_mw: u32,
    /// The UPS's own state.
    pub ups: UpsState,
}

/// Thresholds in per-mille SoC. Default: shed P3 below 600, shed P2 below 450, essential
/// below 350, shut down below 250; hysteresis 50 (a mode is left upwards only at
/// threshold plus hysteresis); power back on (reconnect) at >= 400; telemetry timeout 15 s
/// (NUT: a silent UPS counts as low battery).
#[derive(Clone, Debug, PartialEq)]
pub struct PowerThresholds {
    /// Below this SoC, P3 sync pauses ([`PowerMode::ShedP3`]).
    pub shed_p3_below: u16,
    /// Below this SoC, P2 sync pauses too ([`PowerMode::ShedP2`]).
    pub shed_p2_below: u16,
    /// Below this SoC, only essential service runs ([`PowerMode::Essential`]).
    pub essential_below: u16,
    /// Below this SoC, the tower shuts down cleanly ([`PowerMode::ShuttingDown`]); the
    /// margin under it must cover the flush and fsync.
    pub shutdown_below: u16,
    /// How far above a threshold the SoC must climb before the mode above is restored.
    pub hysteresis: u16,
    /// A powered-off tower boots only at or above this SoC.
    pub reconnect_at: u16,
    /// Silence longer than this counts as a low battery.
    pub telemetry_timeout: Duration,
}

impl Default for PowerThresholds {
    fn default() -> Self {
        PowerThresholds {
            shed_p3_below: 600,
            shed_p2_below: 450,
            essential_below: 350,
            shutdown_below: 250,
            hysteresis: 50,
            reconnect_at: 400,
            telemetry_timeout: Duration::from_secs(15),
        }
    }
}

/// Why a [`PowerThresholds`] was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PowerError {
    /// A per-mille value (alone, or a threshold plus the hysteresis) exceeds 1000.
    #[error("power threshold {field} = {value} exceeds {SOC_PERMILLE_MAX} per-mille")]
    OutOfRange {
        /// which value
        field: &'static str,
        /// its value
        value: u32,
    },
    /// The thresholds are not strictly decreasing from shed P3 to shutdown.
    #[error("power threshold {upper} ({upper_value}) must be above {lower} ({lower_value})")]
    NotDecreasing {
        /// the threshold that should be higher
        upper: &'static str,
        /// its value
        upper_value: u16,
        /// the threshold that should be lower
        lower: &'static str,
        /// its value
        lower_value: u16,
    },
    /// Shutdown at 0 per-mille would mean never shutting down before empty.
    #[error("power shutdown_below must be > 0")]
    ShutdownAtEmpty,
    /// The reconnect threshold must sit above where the tower left shutdown hysteresis.
    #[error("power reconnect_at {reconnect_at} must be above shutdown_below + hysteresis = {min}")]
    ReconnectTooLow {
        /// reconnect_at
        reconnect_at: u16,
        /// shutdown_below + hysteresis
        min: u32,
    },
    /// A zero telemetry timeout would shut down between any two readings.
    #[error("power telemetry_timeout must be > 0")]
    ZeroTelemetryTimeout,
}

impl PowerThresholds {
    /// Check: strictly decreasing thresholds, `reconnect_at > shutdown_below + hysteresis`,
    /// every value (and `shed_p3_below + hysteresis`) `<= 1000`, `shutdown_below > 0`, a
    /// non-zero telemetry timeout.
    pub fn validate(&self) -> Result<(), PowerError> {
        let values = [
            ("shed_p3_below", u32::from(self.shed_p3_below)),
            ("shed_p2_below", u32::from(self.shed_p2_below)),
            ("essential_below", u32::from(self.essential_below)),
            ("shutdown_below", u32::from(self.shutdown_below)),
            ("hysteresis", u32::from(self.hysteresis)),
            ("reconnect_at", u32::from(self.reconnect_at)),
            (
                "shed_p3_below + hysteresis",
                u32::from(self.shed_p3_below) + u32::from(self.hysteresis),
            ),
        ];
        for (field, value) in values {
            if value > u32::from(SOC_PERMILLE_MAX) {
                return Err(PowerError::OutOfRange { field, value });
            }
        }
        let steps = self.steps();
        for pair in steps.windows(2) {
            let ((upper_value, _, upper), (lower_value, _, lower)) = (pair[0], pair[1]);
            if upper_value <= lower_value {
                return Err(PowerError::NotDecreasing {
                    upper,
                    upper_value,
                    lower,
                    lower_value,
                });
            }
        }
        if self.shutdown_below == 0 {
            return Err(PowerError::ShutdownAtEmpty);
        }
        let min = u32::from(self.shutdown_below) + u32::from(self.hysteresis);
        if u32::from(self.reconnect_at) <= min {
            return Err(PowerError::ReconnectTooLow {
                reconnect_at: self.reconnect_at,
                min,
            });
        }
        if self.telemetry_timeout.is_zero() {
            return Err(PowerError::ZeroTelemetryTimeout);
        }
        Ok(())
    }

    /// (threshold, the mode below it, name), most severe last.
    fn steps(&self) -> [(u16, PowerMode, &'static str); 4] {
        [
            (self.shed_p3_below, PowerMode::ShedP3, "shed_p3_below"),
            (self.shed_p2_below, PowerMode::ShedP2, "shed_p2_below"),
            (
                self.essential_below,
                PowerMode::Essential,
                "essential_below",
            ),
            (
                self.shutdown_below,
                PowerMode::ShuttingDown,
                "shutdown_below",
            ),
        ]
    }

    /// The mode for `soc` with every threshold raised by `raise`: the most severe mode
    /// whose (raised) threshold `soc` is below.
    fn level(&self, soc: u16, raise: u16) -> PowerMode {
        self.steps()
            .iter()
            .rev()
            .find(|(threshold, _, _)| u32::from(soc) < u32::from(*threshold) + u32::from(raise))
            .map_or(PowerMode::Normal, |&(_, mode, _)| mode)
    }
}

/// The tower's power manager. Call order: `handle_reading` for each telemetry reading,
/// `handle_tick` when `next_timeout` passes, `mark_off` once the clean shutdown is done.
#[derive(Clone, Debug)]
pub struct PowerManager {
    thresholds: PowerThresholds,
    /// `false` is the planted bug `ignore-battery`: the mode stays Normal whatever happens.
    enabled: bool,
    mode: PowerMode,
    last_reading: Option<PowerReading>,
    /// When the last reading arrived (or the manager started): the telemetry timer's origin.
    /// When the last reading arrived. `None` until the first: the watchdog arms only
    /// once telemetry has been heard, so a tower with no charge controller (mains only)
    /// is not shut down for silence it never promised to break.
    last_heard: Option<Time>,
}

impl PowerManager {
    /// `enabled = false` is the planted bug `ignore-battery`: the mode never leaves Normal,
    /// so the tower runs until the battery is empty. Panics on invalid thresholds (validate
    /// configs first). The telemetry watchdog arms with the first reading; `now` is the
    /// boot time, kept for symmetry with the other constructors.
    pub fn new(thresholds: PowerThresholds, enabled: bool, now: Time) -> Self {
        let _ = now;
        if let Err(e) = thresholds.validate() {
            panic!("invalid power thresholds: {e}");
        }
        PowerManager {
            thresholds,
            enabled,
            mode: PowerMode::Normal,
            last_reading: None,
            last_heard: None,
        }
    }

    /// Returns Some((from, to)) when the mode changes. Modes are crate::io::PowerMode:
    /// Normal, ShedP3, ShedP2, Essential, ShuttingDown (Off is set by the tower after the
    /// clean shutdown finishes via mark_off).
    /// Going down is immediate (may skip steps); going up needs SoC >= threshold +
    /// hysteresis. Once ShuttingDown, readings do not bring it back (the shutdown
    /// completes; power-on is a new boot decided by may_power_on). A UPS reporting
    /// [`UpsState::Failed`] cannot ride through a brown-out, so the tower runs no more
    /// than [`PowerMode::Essential`] until it is healthy (the battery still decides when
    /// to shut down).
    pub fn handle_reading(
        &mut self,
        now: Time,
        reading: PowerReading,
    ) -> Option<(PowerMode, PowerMode)> {
        let reading = PowerReading {
            soc_permille: reading.soc_permille.min(SOC_PERMILLE_MAX),
            ..reading
        };
        self.last_reading = Some(reading);
        self.last_heard = Some(now);
        if !self.enabled || self.mode >= PowerMode::ShuttingDown {
            return None;
        }
        let soc = reading.soc_permille;
        let floor = if reading.ups == UpsState::Failed {
            PowerMode::Essential
        } else {
            PowerMode::Normal
        };
        let down = self.thresholds.level(soc, 0).max(floor);
        let up = self
            .thresholds
            .level(soc, self.thresholds.hysteresis)
            .max(floor);
        debug_assert!(up >= down, "raised thresholds are never less severe");
        let next = if down > self.mode {
            down
        } else if up < self.mode {
            up
        } else {
            self.mode
        };
        self.set(next)
    }

    /// Call on timers: if no reading for telemetry_timeout, the battery is treated as low:
    /// → ShuttingDown.
    pub fn handle_tick(&mut self, now: Time) -> Option<(PowerMode, PowerMode)> {
        if !self.enabled || self.mode >= PowerMode::ShuttingDown {
            return None;
        }
        if self
            .last_heard
            .is_some_and(|t| now.saturating_since(t) >= self.thresholds.telemetry_timeout)
        {
            return self.set(PowerMode::ShuttingDown);
        }
        None
    }

    /// The clean shutdown finished (or power is gone): → Off, from any mode.
    pub fn mark_off(&mut self) -> Option<(PowerMode, PowerMode)> {
        self.set(PowerMode::Off)
    }

    fn set(&mut self, to: PowerMode) -> Option<(PowerMode, PowerMode)> {
        let from = self.mode;
        if from == to {
            return None;
        }
        debug_assert!(
            from < PowerMode::ShuttingDown || to > from,
            "no way back from {from} to {to}"
        );
        debug_assert!(self.enabled || to == PowerMode::Off);
        self.mode = to;
        Some((from, to))
    }

    /// The current mode.
    pub fn mode(&self) -> PowerMode {
        self.mode
    }

    /// The latest reading (SoC clamped to 1000), if any.
    pub fn last_reading(&self) -> Option<PowerReading> {
        self.last_reading
    }

    /// When the telemetry timeout would fire (for the owner's timer table); None when it
    /// cannot change anything (disabled, already shutting down or off).
    pub fn next_timeout(&self) -> Option<Time> {
        if !self.enabled || self.mode >= PowerMode::ShuttingDown {
            return None;
        }
        self.last_heard
            .map(|t| t + self.thresholds.telemetry_timeout)
    }

    /// The thresholds in use.
    pub fn thresholds(&self) -> &PowerThresholds {
        &self.thresholds
    }

    /// May a powered-off tower boot at this SoC? (>= reconnect_at; the reconnect threshold
    /// sits above the disconnect one).
    pub fn may_power_on(thresholds: &PowerThresholds, soc_permille: u16) -> bool {
        debug_assert!(thresholds.reconnect_at > thresholds.shutdown_below);
        soc_permille >= thresholds.reconnect_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reading(soc: u16) -> PowerReading {
        PowerReading {
            soc_permille: soc,
            solar_mw: 0,
            load_mw: 3_000,
            ups: UpsState::OnBattery,
        }
    }

    fn s(n: u64) -> Time {
        Time::from_secs(n)
    }

    #[test]
    fn steps_down_through_each_mode_then_off() {
        // Goal: a draining battery passes Normal → ShedP3 → ShedP2 → Essential →
        // ShuttingDown exactly at the thresholds, and mark_off ends it.
        let mut pm = PowerManager::new(PowerThresholds::default(), true, s(0));
        let mut changes = Vec::new();
        for (i, soc) in (200..=800u16).rev().step_by(10).enumerate() {
            if let Some(c) = pm.handle_reading(s(i as u64), reading(soc)) {
                changes.push((soc, c));
            }
        }
        use PowerMode::*;
        assert_eq!(
            changes,
            [
                (590, (Normal, ShedP3)),
                (440, (ShedP3, ShedP2)),
                (340, (ShedP2, Essential)),
                (240, (Essential, ShuttingDown)),
            ]
        );
        assert_eq!(pm.mark_off(), Some((ShuttingDown, Off)));
        assert_eq!(pm.mark_off(), None);
        assert_eq!(pm.mode(), Off);
    }

    #[test]
    fn down_skips_steps_and_up_needs_the_hysteresis() {
        // Goal: a sudden drop skips modes; recovery happens only at threshold + 50, and
        // may also skip modes.
        use PowerMode::*;
        let mut pm = PowerManager::new(PowerThresholds::default(), true, s(0));
        assert_eq!(
            pm.handle_reading(s(1), reading(300)),
            Some((Normal, Essential))
        );
        assert_eq!(pm.handle_reading(s(2), reading(399)), None);
        assert_eq!(
            pm.handle_reading(s(3), reading(400)),
            Some((Essential, ShedP2))
        );
        assert_eq!(
            pm.handle_reading(s(4), reading(649)),
            Some((ShedP2, ShedP3))
        );
        assert_eq!(
            pm.handle_reading(s(5), reading(650)),
            Some((ShedP3, Normal))
        );
        assert_eq!(
            pm.handle_reading(s(6), reading(340)),
            Some((Normal, Essential))
        );
        assert_eq!(
            pm.handle_reading(s(7), reading(1000)),
            Some((Essential, Normal))
        );
        assert_eq!(pm.last_reading(), Some(reading(1000)));
    }

    #[test]
    fn shutting_down_is_final_until_off() {
        // Goal: once ShuttingDown, even a full battery does not bring the tower back.
        let mut pm = PowerManager::new(PowerThresholds::default(), true, s(0));
        assert!(pm.handle_reading(s(1), reading(100)).is_some());
        assert_eq!(pm.mode(), PowerMode::ShuttingDown);
        assert_eq!(pm.handle_reading(s(2), reading(1000)), None);
        assert_eq!(pm.mode(), PowerMode::ShuttingDown);
        assert_eq!(pm.next_timeout(), None);
    }

    #[test]
    fn telemetry_loss_shuts_down() {
        // Goal: silence for telemetry_timeout counts as a low battery; readings re-arm it.
        let mut pm = PowerManager::new(PowerThresholds::default(), true, s(0));
        assert_eq!(
            pm.next_timeout(),
            None,
            "no watchdog before the first reading"
        );
        assert_eq!(pm.handle_tick(s(100)), None);
        assert_eq!(pm.handle_reading(s(10), reading(900)), None);
        assert_eq!(pm.next_timeout(), Some(s(25)));
        assert_eq!(pm.handle_tick(s(24)), None);
        assert_eq!(
            pm.handle_tick(s(25)),
            Some((PowerMode::Normal, PowerMode::ShuttingDown))
        );
        assert_eq!(pm.handle_tick(s(30)), None);
    }

    #[test]
    fn a_failed_ups_dims_to_essential_until_repaired() {
        // Goal: without a working UPS the tower runs essential services only; the
        // battery, not the UPS fault, decides the shutdown.
        let mut pm = PowerManager::new(PowerThresholds::default(), true, s(0));
        let r = PowerReading {
            ups: UpsState::Failed,
            ..reading(900)
        };
        assert_eq!(
            pm.handle_reading(s(1), r),
            Some((PowerMode::Normal, PowerMode::Essential))
        );
        assert_eq!(
            pm.handle_reading(s(2), reading(900)),
            Some((PowerMode::Essential, PowerMode::Normal))
        );
        let low = PowerReading {
            ups: UpsState::Failed,
            ..reading(100)
        };
        assert_eq!(
            pm.handle_reading(s(3), low),
            Some((PowerMode::Normal, PowerMode::ShuttingDown))
        );
    }

    #[test]
    fn ignore_battery_stays_normal() {
        // Goal: the planted bug `ignore-battery` never leaves Normal (the oracle's target).
        let mut pm = PowerManager::new(PowerThresholds::default(), false, s(0));
        for (i, soc) in (0..=1000u16).rev().step_by(25).enumerate() {
            assert_eq!(pm.handle_reading(s(i as u64), reading(soc)), None);
        }
        assert_eq!(pm.handle_tick(s(10_000)), None);
        assert_eq!(pm.next_timeout(), None);
        assert_eq!(pm.mode(), PowerMode::Normal);
        assert_eq!(pm.last_reading(), Some(reading(0)));
    }

    #[test]
    fn may_power_on_only_above_reconnect() {
        // Goal: a tower that shut down at < 250 does not boot again until >= 400.
        let t = PowerThresholds::default();
        assert!(!PowerManager::may_power_on(&t, 249));
        assert!(!PowerManager::may_power_on(&t, 300));
        assert!(!PowerManager::may_power_on(&t, 399));
        assert!(PowerManager::may_power_on(&t, 400));
        assert!(t.reconnect_at > t.shutdown_below + t.hysteresis);
    }

    #[test]
    fn validate_rejects_bad_thresholds() {
        // Goal: misordered, out-of-range and unsafe thresholds are configuration errors.
        let ok = PowerThresholds::default();
        assert_eq!(ok.validate(), Ok(()));
        let t = PowerThresholds {
            shed_p2_below: 600,
            ..ok.clone()
        };
        assert!(matches!(
            t.validate(),
            Err(PowerError::NotDecreasing {
                upper: "shed_p3_below",
                ..
            })
        ));
        let t = PowerThresholds {
            essential_below: 200,
            ..ok.clone()
        };
        assert!(matches!(
            t.validate(),
            Err(PowerError::NotDecreasing {
                lower: "shutdown_below",
                ..
            })
        ));
        let t = PowerThresholds {
            reconnect_at: 300,
            ..ok.clone()
        };
        assert_eq!(
            t.validate(),
            Err(PowerError::ReconnectTooLow {
                reconnect_at: 300,
                min: 300
            })
        );
        let t = PowerThresholds {
            reconnect_at: 1001,
            ..ok.clone()
        };
        assert!(matches!(t.validate(), Err(PowerError::OutOfRange { .. })));
        let t = PowerThresholds {
            shed_p3_below: 980,
            ..ok.clone()
        };
        assert!(matches!(
            t.validate(),
            Err(PowerError::OutOfRange {
                field: "shed_p3_below + hysteresis",
                ..
            })
        ));
        let t = PowerThresholds {
            telemetry_timeout: Duration::ZERO,
            ..ok.clone()
        };
        assert_eq!(t.validate(), Err(PowerError::ZeroTelemetryTimeout));
        let t = PowerThresholds {
            shutdown_below: 0,
            ..ok
        };
        assert_eq!(t.validate(), Err(PowerError::ShutdownAtEmpty));
    }

    /// Feed `socs` and count mode changes; also report whether the mode ever went up.
    fn run(thresholds: PowerThresholds, socs: &[u16]) -> (usize, bool) {
        let mut pm = PowerManager::new(thresholds, true, s(0));
        let mut changes = 0;
        let mut went_up = false;
        for (i, &soc) in socs.iter().enumerate() {
            if let Some((from, to)) = pm.handle_reading(s(i as u64), reading(soc)) {
                changes += 1;
                went_up |= to < from;
            }
        }
        (changes, went_up)
    }

    #[test]
    fn without_hysteresis_the_same_wobble_flaps() {
        // Goal: control for the property below — with hysteresis 0, ±20 around a
        // threshold does flap, so the property is able to fail.
        let t = PowerThresholds {
            hysteresis: 0,
            ..PowerThresholds::default()
        };
        let socs: Vec<u16> = (0..20)
            .map(|i| if i % 2 == 0 { 470 } else { 430 })
            .collect();
        let (changes, went_up) = run(t, &socs);
        assert!(went_up);
        assert!(changes >= 10, "{changes}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn hysteresis_prevents_flapping(
            which in 0usize..4,
            wobble in proptest::collection::vec(-20i32..=20, 1..120),
        ) {
            // Goal: a SoC oscillating ±20 around any threshold never moves the mode back
            // up, so it changes at most twice (Normal → the step above → the step below).
            let t = PowerThresholds::default();
            let centre = i32::from(t.steps()[which].0);
            let socs: Vec<u16> = wobble
                .iter()
                .map(|d| u16::try_from(centre + d).expect("in range"))
                .collect();
            let (changes, went_up) = run(t, &socs);
            prop_assert!(!went_up);
            prop_assert!(changes <= 2, "{} changes", changes);
        }
    }
}
