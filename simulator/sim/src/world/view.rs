//! Read-only views of the world for consoles and game days: a [`Snapshot`] of the run
//! (phase, towers, their links, the faults, violations), made by [`World::snapshot`].
//!
//! Map: [`Phase`], [`Snapshot`], [`TowerView`], [`LinkView`], [`FaultView`];
//! [`World::snapshot`].
//!
//! Not covered: the observations (`World::observations`), mutating the world (a console
//! injects faults through [`World::inject`]).

use super::World;
use crate::report::Violation;
use crate::scenario::FaultSpec;
use sovereign_logic::Time;
use sovereign_logic::io::PowerMode;
use sovereign_logic::protocol::LinkKind;

/// Which phase a run is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Faults on.
    Safety,
    /// Faults healed; towers must converge.
    Liveness,
    /// Over.
    Done,
}

/// A read-only view of the world (consoles, game days).
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Virtual time.
    pub now: Time,
    /// The run's phase.
    pub phase: Phase,
    /// When the safety phase ends.
    pub heal_at: Time,
    /// The origin process is up.
    pub origin_up: bool,
    /// Every tower.
    pub towers: Vec<TowerView>,
    /// Every scheduled fault (explicit, nemesis and injected), with whether it is active.
    pub faults: Vec<FaultView>,
    /// Violations so far.
    pub violations: Vec<Violation>,
    /// Events processed.
    pub events: u64,
}

/// One tower in a [`Snapshot`].
#[derive(Clone, Debug)]
pub struct TowerView {
    /// Its name.
    pub name: String,
    /// The process is up.
    pub running: bool,
    /// Stopped by a pause fault.
    pub paused: bool,
    /// Its power mode (Off when not running).
    pub power_mode: PowerMode,
    /// Battery state of charge 0..=1.
    pub soc: f64,
    /// Solar power now, W.
    pub solar_w: f64,
    /// The uplink the tower uses.
    pub active_link: Option<LinkKind>,
    /// Its uplinks.
    pub links: Vec<LinkView>,
    /// Device Wi-Fi passes traffic.
    pub wifi_up: bool,
    /// Items servable.
    pub items_servable: u64,
    /// Items syncing.
    pub items_pending: u64,
    /// Operations in the outbox.
    pub outbox: u64,
    /// Chunk requests queued per class.
    pub queued: [u64; 4],
    /// In its steady state.
    pub steady: bool,
    /// Devices attached.
    pub devices: u32,
}

/// One uplink in a [`TowerView`].
#[derive(Clone, Debug)]
pub struct LinkView {
    /// Which uplink.
    pub kind: LinkKind,
    /// The simulated link passes traffic now (ground truth).
    pub passing: bool,
    /// The tower considers it healthy (its probes' verdict).
    pub healthy: bool,
}

/// One fault in a [`Snapshot`].
#[derive(Clone, Debug)]
pub struct FaultView {
    /// Its id.
    pub id: usize,
    /// What, where, when.
    pub spec: FaultSpec,
    /// Active now.
    pub active: bool,
}

impl World {
    /// A view of the world for consoles and game days (read-only).
    pub fn snapshot(&self) -> Snapshot {
        let now = self.now;
        Snapshot {
            now,
            phase: if self.ended || self.step_budget_hit {
                Phase::Done
            } else if self.healed {
                Phase::Liveness
            } else {
                Phase::Safety
            },
            heal_at: self.heal_at,
            origin_up: self.origin.up,
            towers: self
                .towers
                .iter()
                .map(|t| {
                    let status = t.tower.as_ref().map(|x| x.status());
                    TowerView {
                        name: t.spec.name.clone(),
                        running: t.running(),
                        paused: t.paused_until.is_some_and(|u| u > now),
                        power_mode: status.as_ref().map_or(PowerMode::Off, |s| s.power_mode),
                        soc: t.power.soc(),
                        solar_w: t.power.solar_w,
                        active_link: status.as_ref().and_then(|s| s.active_link),
                        links: t
                            .links
                            .iter()
                            .filter_map(|l| {
                                let kind = l.kind?;
                                Some(LinkView {
                                    kind,
                                    passing: l.is_up(now),
                                    healthy: status
                                        .as_ref()
                                        .is_some_and(|s| s.links_up.contains(&kind)),
                                })
                            })
                            .collect(),
                        wifi_up: t.wifi.is_up(now),
                        items_servable: status.as_ref().map_or(0, |s| s.items_servable),
                        items_pending: status.as_ref().map_or(0, |s| s.items_pending),
                        outbox: status.as_ref().map_or(0, |s| s.outbox),
                        queued: status.as_ref().map_or([0; 4], |s| s.queued),
                        steady: t.steady,
                        devices: t.spec.devices,
                    }
                })
                .collect(),
            faults: self
                .faults
                .iter()
                .enumerate()
                .map(|(id, f)| FaultView {
                    id,
                    spec: f.spec.clone(),
                    active: f.active,
                })
                .collect(),
            violations: self.oracles.violations().to_vec(),
            events: self.events,
        }
    }
}
