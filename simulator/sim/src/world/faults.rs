//! Fault application: a fault's start and end, the overlays the active faults put on
//! links, disks and power plants, the crash loop and rogue forwards they drive, and the
//! heal that ends them all (the start of the liveness phase).
//!
//! Faults come from the scenario's explicit schedule, the nemesis (`nemesis.rs`) or
//! [`World::inject`] (game days, the console); every one is a [`ScheduledFault`]. Effects
//! that happen once (a crash, bit rot, a clock jump) are done in `fault_start`; lasting
//! ones are overlays rebuilt from every active fault by `recompute_overlays`, so that
//! overlapping faults compose and ending one leaves the others in place.
//!
//! Map: [`ScheduledFault`]; `World::inject`, `heal_faults`, `fault_start`,
//! `crash_loop_tick`, `fault_end`, `recompute_overlays`, `heal`, `rogue_tick`,
//! `rogue_forward`.
//!
//! Not covered: which faults exist and how they are written (`scenario`), drawing them
//! (`nemesis.rs`), what the devices themselves do (the workload).

use super::World;
use super::disk::DiskFaults;
use super::events::Ev;
use super::hosts::{BOOT, Proc};
use super::net::{LinkFaults, SimLink};
use super::workload::STRANGER_ID_BASE;
use crate::obs::Obs;
use crate::plant::Plant;
use crate::scenario::{Family, FaultKind, FaultSpec, Target};
use crate::trace::TraceKind;
use sovereign_logic::Time;
use sovereign_logic::entropy::Entropy;
use sovereign_logic::protocol::{
    DeviceId, IdemKey, LinkKind, Message, OpKind, Operation, Peer, TowerId,
};
use sovereign_logic::tower::power::PowerManager;
use std::time::Duration;

/// The tower number a rogue forward claims (no scenario has that many towers).
const ROGUE_TOWER: u32 = 999_999;
/// Between two rogue forwards while a `rogue-forward` fault lasts.
const ROGUE_EVERY: Duration = Duration::from_secs(300);

/// One fault of the run and whether it is in effect now.
pub(super) struct ScheduledFault {
    pub(super) spec: FaultSpec,
    pub(super) active: bool,
}

impl World {
    /// Inject a fault by hand (game days, the console): it starts at `spec.at` (clamped to
    /// now) and becomes part of the run's explicit schedule, so the report's schedule —
    /// and a replay of it — includes it. Returns its id. Ignored after the heal.
    pub fn inject(&mut self, mut spec: FaultSpec) -> Option<usize> {
        self.start();
        if self.healed {
            return None;
        }
        // Never in the past, and on a whole millisecond (the scenario format's resolution)
        // so that the replay file's explicit schedule reproduces the run.
        let now_ms = self.now.as_micros().div_ceil(1000);
        if spec.at < Duration::from_millis(now_ms) {
            spec.at = Duration::from_millis(now_ms);
        }
        spec.at = Duration::from_millis(spec.at.as_millis() as u64);
        spec.duration = Duration::from_millis(spec.duration.as_millis() as u64);
        let id = self.faults.len();
        let at = Time::ZERO + spec.at;
        self.faults.push(ScheduledFault {
            spec,
            active: false,
        });
        self.push(at, Ev::FaultStart { id });
        Some(id)
    }

    /// End every active fault now (a game day's abort or rollback).
    pub fn heal_faults(&mut self) {
        for id in 0..self.faults.len() {
            if self.faults[id].active {
                self.fault_end(id);
            }
        }
    }

    pub(super) fn fault_start(&mut self, id: usize) {
        if self.healed {
            return;
        }
        let spec = self.faults[id].spec.clone();
        self.faults[id].active = true;
        self.trace
            .event(self.now, TraceKind::FaultStart, id as u64, &[]);
        self.trace.line(self.now, || {
            format!(
                "fault {id} starts: {} on {:?} for {:?}",
                spec.kind.name(),
                spec.target,
                spec.duration
            )
        });
        self.observe(Obs::FaultStart {
            id: id as u64,
            spec: spec.clone(),
        });
        let end = self.now + spec.duration;
        match (&spec.kind, &spec.target) {
            (FaultKind::Crash | FaultKind::TornWrite, Target::Tower(i)) => {
                self.towers[*i].crash_faults += 1;
                let torn = spec.kind == FaultKind::TornWrite;
                self.crash_tower(*i, torn, None);
            }
            // The origin's recovery does not model a torn last write.
            (FaultKind::Crash | FaultKind::TornWrite, Target::Origin) => {
                self.origin.crash_faults += 1;
                self.crash_origin(spec.duration);
            }
            (FaultKind::Restart, Target::Tower(i)) => {
                let i = *i;
                if self.towers[i].running() {
                    let upto = self.towers[i].disk.issued();
                    self.towers[i].disk.sync(upto);
                    self.tower_down(i, true, Proc::Down);
                    let inc = self.towers[i].incarnation;
                    self.push(
                        self.now + BOOT,
                        Ev::TowerBoot {
                            tower: i,
                            incarnation: inc,
                        },
                    );
                }
            }
            (FaultKind::Restart, Target::Origin) => {
                // A graceful stop: what was issued reaches the disk, and the fsyncs in
                // flight finish, so their batches are answered and their applies reported
                // before the process exits (then the rebuilt origin holds exactly those) —
                // unless a write they cover was refused: that one's error would have
                // failed the origin first, so none is confirmed.
                if !self.origin.fsyncs_in_flight.is_empty() {
                    self.reach(super::sometimes::Sometimes::OriginRestartWithFsyncInFlight);
                }
                let upto = self.origin.disk.issued();
                self.origin.disk.sync(upto);
                if self.origin.up && self.origin.paused_until.is_none_or(|u| u <= self.now) {
                    let inc = self.origin.incarnation;
                    let mine: Vec<_> = std::mem::take(&mut self.origin.fsyncs_in_flight)
                        .into_iter()
                        .filter(|(i, _, _)| *i == inc)
                        .collect();
                    let clean = mine.iter().all(|(_, _, c)| *c);
                    let ids: Vec<_> = if clean {
                        mine.into_iter().map(|(_, id, _)| id).collect()
                    } else {
                        Vec::new()
                    };
                    for id in ids {
                        self.origin.restarts.on_durable();
                        self.origin.origin.handle_fsync_done(self.now, id, Ok(()));
                    }
                    self.drain_origin();
                }
                self.crash_origin(BOOT);
            }
            (FaultKind::OriginReplace, Target::Origin) => self.replace_origin(),
            (FaultKind::RogueForward, Target::Origin) => {
                self.push(self.now, Ev::RogueTick { id });
            }
            (FaultKind::Pause, Target::Tower(i)) => self.towers[*i].paused_until = Some(end),
            (FaultKind::Pause, Target::Origin) => self.origin.paused_until = Some(end),
            (FaultKind::Slow { factor }, Target::Tower(i)) => {
                self.towers[*i].slow = factor.max(1.0)
            }
            (FaultKind::Slow { factor }, Target::Origin) => self.origin.slow = factor.max(1.0),
            (FaultKind::CrashLoop { .. }, _) => {
                match spec.target {
                    Target::Tower(i) => self.towers[i].crash_faults += 1,
                    Target::Origin => self.origin.crash_faults += 1,
                    _ => {}
                }
                self.crash_loop_tick(id);
            }
            (FaultKind::Corruption { chunks }, target) => {
                let n = *chunks;
                match target {
                    Target::Tower(i) => {
                        self.towers[*i].disk.rot(n, &mut self.disk_rng);
                    }
                    Target::Origin => {
                        self.origin.disk.rot(n, &mut self.disk_rng);
                    }
                    _ => {}
                }
            }
            (FaultKind::HardCut, Target::Tower(i)) => {
                let i = *i;
                self.towers[i].power.hard_cut += 1;
                self.crash_tower(i, false, None);
            }
            (FaultKind::BrownOut, Target::Tower(i)) => {
                let i = *i;
                let protected =
                    self.towers[i].spec.power.ups && self.towers[i].power.ups_failed == 0;
                if !protected {
                    self.crash_tower(i, false, Some(BOOT));
                }
            }
            (FaultKind::ClockJump { by_ms }, Target::Tower(i)) => {
                self.towers[*i].clock_offset_us += by_ms * 1000;
            }
            (FaultKind::ClockSkew { ppm }, Target::Tower(i)) => {
                let t = &mut self.towers[*i];
                let local = t.local(self.now);
                t.clock_offset_us = local.as_micros() as i64 - self.now.as_micros() as i64;
                t.skew_ppm = *ppm;
                t.skew_since = self.now;
            }
            (FaultKind::BatteryFade { capacity }, Target::Tower(i)) => {
                let t = &mut self.towers[*i];
                t.power.fade = capacity.clamp(0.01, 1.0);
                t.power.soc_wh = t.power.soc_wh.min(t.power.capacity());
            }
            _ => {}
        }
        self.recompute_overlays();
        for i in 0..self.towers.len() {
            self.update_steady(i);
        }
        if !spec.duration.is_zero()
            || matches!(
                spec.kind,
                FaultKind::Crash | FaultKind::TornWrite | FaultKind::HardCut
            )
        {
            self.push(end, Ev::FaultEnd { id });
        } else {
            self.faults[id].active = false;
            self.observe(Obs::FaultEnd {
                id: id as u64,
                target: spec.target.clone(),
            });
        }
    }

    pub(super) fn crash_loop_tick(&mut self, id: usize) {
        let f = &self.faults[id];
        if !f.active {
            return;
        }
        let FaultKind::CrashLoop { every } = f.spec.kind else {
            return;
        };
        let target = f.spec.target.clone();
        match target {
            Target::Tower(i) => {
                self.crash_tower(i, false, None);
                let inc = self.towers[i].incarnation;
                self.push(
                    self.now + BOOT,
                    Ev::TowerBoot {
                        tower: i,
                        incarnation: inc,
                    },
                );
            }
            Target::Origin => {
                self.crash_origin(BOOT);
                let inc = self.origin.incarnation;
                self.push(self.now + BOOT, Ev::OriginRestart { incarnation: inc });
            }
            _ => {}
        }
        let period = sovereign_scenario::faults::crash_loop_period(every);
        self.push(self.now + period, Ev::CrashLoopTick { id });
    }

    pub(super) fn fault_end(&mut self, id: usize) {
        if !self.faults[id].active {
            return;
        }
        self.faults[id].active = false;
        let spec = self.faults[id].spec.clone();
        self.trace
            .event(self.now, TraceKind::FaultEnd, id as u64, &[]);
        self.trace.line(self.now, || {
            format!("fault {id} ends: {}", spec.kind.name())
        });
        match (&spec.kind, &spec.target) {
            (FaultKind::OriginReplace, Target::Origin) => {
                // The operator has noticed: every tower that reported the new origin is
                // re-homed now, any that reports later at once.
                self.rehome_open = true;
                for i in std::mem::take(&mut self.mismatched) {
                    self.rehome(i);
                }
            }
            (
                FaultKind::Crash | FaultKind::TornWrite | FaultKind::CrashLoop { .. },
                Target::Tower(i),
            ) => {
                let i = *i;
                self.towers[i].crash_faults = self.towers[i].crash_faults.saturating_sub(1);
                if self.towers[i].crash_faults == 0
                    && !self.towers[i].running()
                    && self.towers[i].power.hard_cut == 0
                {
                    self.boot_tower(i);
                }
            }
            (
                FaultKind::Crash | FaultKind::TornWrite | FaultKind::CrashLoop { .. },
                Target::Origin,
            ) => {
                self.origin.crash_faults = self.origin.crash_faults.saturating_sub(1);
                if self.origin.crash_faults == 0 && !self.origin.up {
                    self.restart_origin();
                }
            }
            (FaultKind::HardCut, Target::Tower(i)) => {
                let i = *i;
                self.towers[i].power.hard_cut = self.towers[i].power.hard_cut.saturating_sub(1);
                if self.towers[i].power.hard_cut == 0
                    && self.towers[i].crash_faults == 0
                    && !self.towers[i].running()
                {
                    let soc = (self.towers[i].power.soc() * 1000.0) as u16;
                    if PowerManager::may_power_on(&self.towers[i].config.power, soc) {
                        self.boot_tower(i);
                    } else {
                        self.towers[i].proc = Proc::Dead; // waits for the sun
                    }
                }
            }
            (FaultKind::Pause, Target::Tower(i)) => {
                let i = *i;
                self.towers[i].paused_until = None;
                // Telemetry that arrived during the pause waits in the socket buffer: the
                // process reads a fresh reading before its timers run.
                if self.towers[i].running() {
                    self.send_power_reading(i);
                }
            }
            (FaultKind::Pause, Target::Origin) => self.origin.paused_until = None,
            (FaultKind::Slow { .. }, Target::Tower(i)) => self.towers[*i].slow = 1.0,
            (FaultKind::Slow { .. }, Target::Origin) => self.origin.slow = 1.0,
            (FaultKind::ClockSkew { .. }, Target::Tower(i)) => {
                let t = &mut self.towers[*i];
                let local = t.local(self.now);
                t.clock_offset_us = local.as_micros() as i64 - self.now.as_micros() as i64;
                t.skew_ppm = 0;
            }
            _ => {}
        }
        self.recompute_overlays();
        self.observe(Obs::FaultEnd {
            id: id as u64,
            target: spec.target.clone(),
        });
        for i in 0..self.towers.len() {
            self.update_steady(i);
            // Wake the tower so it notices healed links promptly (its probes will).
            if self.towers[i].running() {
                self.schedule_tower_timer(i);
            }
        }
    }

    /// Rebuild every link, disk and power overlay from the active faults.
    pub(super) fn recompute_overlays(&mut self) {
        for t in &mut self.towers {
            for l in &mut t.links {
                l.faults = LinkFaults::default();
            }
            t.wifi.faults = LinkFaults::default();
            t.disk.faults = DiskFaults::default();
            t.power.clouds = 0.0;
            t.power.grid_lost = 0;
            t.power.ups_failed = 0;
        }
        self.origin.disk.faults = DiskFaults::default();
        self.origin.busy = 0.0;
        for f in &self.faults {
            if !f.active {
                continue;
            }
            let spec = &f.spec;
            let start = Time::ZERO + spec.at;
            // Network overlays.
            let apply = |l: &mut SimLink| match &spec.kind {
                FaultKind::LinkDown | FaultKind::Partition => l.faults.down += 1,
                FaultKind::Latency { extra } => l.faults.extra_latency += *extra,
                FaultKind::Loss { p } => {
                    l.faults.extra_loss = 1.0 - (1.0 - l.faults.extra_loss) * (1.0 - p)
                }
                FaultKind::Bandwidth { bytes_per_s } => {
                    l.faults.cap_bytes_per_s = Some(
                        l.faults
                            .cap_bytes_per_s
                            .map_or(*bytes_per_s, |c| c.min(*bytes_per_s)),
                    )
                }
                FaultKind::Flapping { period } => l.faults.flapping = Some((start, *period)),
                FaultKind::Duplicate { p } => l.faults.duplicate = l.faults.duplicate.max(*p),
                FaultKind::Reorder { p, extra } => l.faults.reorder = Some((*p, *extra)),
                FaultKind::WifiCorruption { p } => {
                    l.faults.corrupt = 1.0 - (1.0 - l.faults.corrupt) * (1.0 - p)
                }
                _ => {}
            };
            if spec.kind.family() == Family::Network {
                match &spec.target {
                    Target::Link(i, k) => {
                        if let Some(l) = self.towers[*i]
                            .links
                            .iter_mut()
                            .find(|l| l.kind == Some(*k))
                        {
                            apply(l);
                        }
                    }
                    Target::Tower(i) => {
                        for l in &mut self.towers[*i].links {
                            apply(l);
                        }
                    }
                    Target::Wifi(i) => apply(&mut self.towers[*i].wifi),
                    Target::Origin => {
                        for t in &mut self.towers {
                            for l in &mut t.links {
                                apply(l);
                            }
                        }
                    }
                }
                continue;
            }
            if let (FaultKind::OriginBusy { p }, Target::Origin) = (&spec.kind, &spec.target) {
                self.origin.busy = 1.0 - (1.0 - self.origin.busy) * (1.0 - p);
            }
            let disk = match &spec.target {
                Target::Tower(i) => Some(&mut self.towers[*i].disk),
                Target::Origin => Some(&mut self.origin.disk),
                _ => None,
            };
            if let Some(d) = disk {
                match &spec.kind {
                    FaultKind::WriteError { p } => {
                        d.faults.write_error = d.faults.write_error.max(*p)
                    }
                    FaultKind::FsyncError { p } => {
                        d.faults.fsync_error = d.faults.fsync_error.max(*p)
                    }
                    FaultKind::DiskFull => d.faults.full += 1,
                    // The database server killed or stopped: the origin's record writes
                    // fail, as when its connection is lost.
                    FaultKind::DbLost | FaultKind::DbKill | FaultKind::DbRestart => {
                        d.faults.db_lost += 1
                    }
                    // Frozen (SIGSTOP): its calls hang until it thaws, and none fails.
                    FaultKind::DbPause => d.faults.frozen += 1,
                    FaultKind::DiskLatency { extra } => d.faults.extra_latency += *extra,
                    _ => {}
                }
            }
            if let Target::Tower(i) = &spec.target {
                let p = &mut self.towers[*i].power;
                match &spec.kind {
                    FaultKind::Clouds { cover } => p.clouds = p.clouds.max(*cover),
                    FaultKind::GridLoss => p.grid_lost += 1,
                    FaultKind::UpsFailure => p.ups_failed += 1,
                    _ => {}
                }
            }
        }
        // A database no longer frozen (its pause ended, or was healed early) answers the
        // calls it held, each after its own latency from now.
        if self.origin.disk.faults.frozen == 0 {
            let now = self.now;
            for (latency, ev) in std::mem::take(&mut self.origin.disk.held) {
                self.push(now + latency, ev);
            }
        }
    }

    pub(super) fn heal(&mut self) {
        self.trace.event(self.now, TraceKind::Heal, 0, &[]);
        self.trace.line(self.now, || {
            "heal: every fault ends; liveness phase".to_string()
        });
        for id in 0..self.faults.len() {
            if self.faults[id].active {
                self.fault_end(id);
            }
        }
        self.healed = true;
        // Power restored: the battery is topped up and towers boot.
        for i in 0..self.towers.len() {
            let t = &mut self.towers[i];
            t.power.fade = 1.0;
            t.power.soc_wh = t.power.capacity();
            t.power.hard_cut = 0;
            t.crash_faults = 0;
            t.clock_offset_us = 0;
            t.skew_ppm = 0;
            if !t.running() {
                self.boot_tower(i);
            }
        }
        self.origin.crash_faults = 0;
        if !self.origin.up {
            self.restart_origin();
        }
        let bound = self.sc.liveness_bound;
        self.observe(Obs::Healed { bound });
        self.push(self.now + bound, Ev::End);
        self.check_convergence();
    }

    /// `origin-busy`: a request from `tower` that reached the origin over `link` is refused
    /// with the fault's probability instead of being handled, as the real origin refuses
    /// past its limits. The refusal travels back over the link and names the origin —
    /// except under the `anonymous-refusals` plant, as the real origin's connection limit
    /// once answered (found against the real servers: the tower took it for another
    /// origin). `true`: refused.
    pub(super) fn refused_busy(&mut self, tower: usize, link: LinkKind) -> bool {
        if self.origin.busy <= 0.0 || !self.net.chance(self.origin.busy) {
            return false;
        }
        let identity = (self.plant != Some(Plant::AnonymousRefusals)).then_some(self.origin.id);
        let reply = Message::Refused {
            reason: "busy: too many requests from this tower".to_string(),
        };
        let bytes = reply.wire_size();
        let incarnation = self.towers[tower].incarnation;
        let arrivals = self.origin_transmit(tower, link, bytes, self.origin.slow);
        self.trace.event(
            self.now,
            TraceKind::OriginBusy,
            tower as u64,
            &[link as u64],
        );
        self.trace.line(self.now, || {
            format!("origin busy: refuses tower-{tower}'s request via {link}")
        });
        self.observe(Obs::Transfer { tower, link, bytes });
        for at in arrivals {
            self.push(
                at,
                Ev::BusyRefusal {
                    tower,
                    incarnation,
                    link,
                    identity,
                },
            );
        }
        true
    }

    /// A `rogue-forward` fault's next forward, while it lasts.
    pub(super) fn rogue_tick(&mut self, id: usize) {
        if self.faults[id].active && !self.healed {
            self.rogue_forward();
            self.push(self.now + ROGUE_EVERY, Ev::RogueTick { id });
        }
    }

    /// Someone who is not a tower forwards a contribution to the origin.
    fn rogue_forward(&mut self) {
        let now = self.now;
        if !self.origin.up
            || self.origin.paused_until.is_some_and(|u| u > now)
            || self.refused_by_failed_origin()
        {
            return;
        }
        self.rogue_sent += 1;
        let op = Operation {
            key: IdemKey(format!("rogue:{}", self.rogue_sent).into()),
            device: DeviceId(STRANGER_ID_BASE - 1),
            kind: OpKind::Contribution {
                community: "attacker".into(),
                nation: "xx".into(),
                amount_minor: 5_000_000,
            },
        };
        self.amounts
            .insert((op.key.clone(), op.fingerprint()), 5_000_000);
        self.trace
            .event(now, TraceKind::RogueForward, self.rogue_sent, &[]);
        let n = self.rogue_sent;
        self.trace.line(now, || {
            format!("rogue forward {n}: a stranger posing as tower {ROGUE_TOWER} sends the origin a contribution")
        });
        self.origin.origin.handle_message(
            now,
            Peer::Tower(TowerId(ROGUE_TOWER)),
            Message::ForwardOps { ops: vec![op] },
        );
        self.drain_origin();
    }
}
