//! The simulated world: a discrete-event run of the real logic from one seed.
//!
//! One [`World`] holds all simulated state — the virtual clock, one event queue, seeded
//! random streams (one per component, derived from the run's seed), the origin, the
//! towers and their devices, every link, disk, battery and clock — and runs the
//! `sovereign-logic` state machines against it. Time jumps from event to event, so cost
//! grows with events, not with virtual time.
//!
//! # Map
//! - [`run`]: build a world for a scenario, run the safety phase (faults on), heal, run
//!   the liveness phase (converge within the bound), report.
//! - `SimLink`: latency + jitter, serialised bandwidth per direction, loss, LEO
//!   handovers, and fault overlays (down, partition, extra latency/loss, caps, flapping,
//!   duplication, reordering). A message in flight on a link that goes down is lost.
//! - `SimDisk`: pending vs durable records (an fsync makes durable exactly the writes
//!   issued before it; a crash drops the rest, a torn write leaves half a chunk), write
//!   and fsync errors, disk full, lost DB connection, latency, bit rot. Each stored
//!   chunk carries whether its bytes match their hash, computed when they are written or
//!   changed — equivalent to hashing on every read, and far cheaper.
//! - `PowerModel`: solar from a day curve and daily cloud cover, a battery with fade,
//!   load by power mode, grid and UPS.
//! - processes: crash (kill -9), clean restart, pause, slow, crash loop; restarts run
//!   the logic's recovery from durable state only.
//! - clocks: skew and jumps per tower (the logic sees local time).
//! - faults: the scenario's explicit schedule plus nemesis draws (their own random
//!   stream, so an explicit replay of the drawn schedule reproduces the run exactly).
//!
//! Not covered: device crashes, wire-level corruption on Wi-Fi, the origin's own power.

use crate::kpi::KpiScan;
use crate::obs::{Obs, Stamped};
use crate::oracle::Oracles;
use crate::plant::Plant;
use crate::report::{RunReport, Violation};
use crate::scenario::{Family, FaultKind, FaultSpec, Oracle, Scenario, Target};
use crate::trace::Trace;
use sovereign_logic::Time;
use sovereign_logic::content::{ChunkHash, ItemId, Manifest};
use sovereign_logic::device::{Device, DeviceConfig};
use sovereign_logic::entropy::{Entropy, SplitMix64};
use sovereign_logic::io::{Action, Event, PowerMode};
use sovereign_logic::ledger::Rounding;
use sovereign_logic::origin::OriginConfig;
use sovereign_logic::protocol::{
    DeviceId, IdemKey, LinkKind, Message, OpKind, OpOutcome, Operation, Peer, SubmitReply, TowerId,
};
use sovereign_logic::tower::power::PowerManager;
use sovereign_logic::tower::scheduler::SchedulePolicy;
use sovereign_logic::tower::{RETRY_NOT_STORED, TowerConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How to run a scenario.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The seed.
    pub seed: u64,
    /// A planted bug.
    pub plant: Option<Plant>,
    /// Record text trace lines (for `replay --trace`).
    pub record_trace: bool,
    /// Replace the scenario's faults and nemesis with this explicit schedule (replay,
    /// shrink).
    pub schedule: Option<Vec<FaultSpec>>,
}

/// Run a scenario to its end.
pub fn run(scenario: &Scenario, opts: &RunOptions) -> RunReport {
    let mut world = World::new(scenario, opts);
    world.run();
    world.finish()
}

/// Upper bound on processed events in one run (a runaway loop is a finding, not a hang).
const EVENTS_MAX: u64 = 200_000_000;
/// Backlog and steady-state sampling period.
const SAMPLE_EVERY: Duration = Duration::from_secs(60);
/// Text trace lines kept when recording.
const TRACE_LINES_MAX: usize = 2_000_000;
/// The tower number a rogue forward claims (no scenario has that many towers).
const ROGUE_TOWER: u32 = 999_999;
/// Between two rogue forwards while a `rogue-forward` fault lasts.
const ROGUE_EVERY: Duration = Duration::from_secs(300);

struct ScheduledFault {
    spec: FaultSpec,
    active: bool,
}

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

/// The whole simulated world of one run.
pub struct World {
    sc: Scenario,
    plant: Option<Plant>,
    seed: u64,
    now: Time,
    queue: Queue,
    seq: u64,
    net: Stream,
    disk_rng: Stream,
    workload: Stream,
    weather: Stream,
    trace: Trace,
    origin: OriginHost,
    towers: Vec<TowerHost>,
    devices: Vec<DeviceHost>,
    faults: Vec<ScheduledFault>,
    oracles: Oracles,
    /// The KPIs, measured as observations come.
    kpis: KpiScan,
    /// Every observation, oldest first, only when asked for ([`World::keep_observations`]):
    /// the oracles and KPIs read each one as it comes, so a run without it keeps memory
    /// that does not grow with every read and transfer.
    observations: Option<Vec<Stamped>>,
    /// Published versions visible at the origin: (item, version) → manifest.
    published: BTreeMap<(ItemId, u64), Manifest>,
    /// Items visible at the origin, by class, for reads and republishing.
    items: [Vec<ItemId>; 4],
    /// Latest bytes per item (republishing edits them).
    content: BTreeMap<ItemId, Vec<u8>>,
    /// Entries published but not yet seen visible.
    publishing: Vec<(ItemId, u64)>,
    next_item: u64,
    /// Contribution amounts by operation (key, fingerprint), recorded when devices (and
    /// strangers) submit them.
    amounts: BTreeMap<(IdemKey, ChunkHash), u64>,
    /// Towers that reported another origin and have not been re-homed yet.
    mismatched: BTreeSet<usize>,
    /// An `origin-replace` fault's delay has passed: reporting towers are re-homed.
    rehome_open: bool,
    /// Manifests published by origins since replaced (a tower may serve them until it is
    /// re-homed: genuine, if no longer the origin's).
    published_before: BTreeMap<(ItemId, u64), Manifest>,
    /// Rogue forward batches sent so far.
    rogue_sent: u64,
    /// Draws of the misuse workload (its own stream: runs without misuse draw nothing).
    misuse: Stream,
    /// Device hosts by the identity they present (several share one with
    /// `shared_identity`).
    by_identity: BTreeMap<DeviceId, Vec<usize>>,
    healed: bool,
    heal_at: Time,
    ended: bool,
    events: u64,
    step_budget_hit: bool,
    started: bool,
}

impl World {
    /// Build the world for `sc` (nothing runs yet).
    pub fn new(sc: &Scenario, opts: &RunOptions) -> World {
        let seed = opts.seed;
        let plant = opts.plant;
        let mut origin_config = OriginConfig {
            chunk_params: sc.origin.chunk,
            ..OriginConfig::default()
        };
        if plant == Some(Plant::NoIdempotency) {
            origin_config.idempotency = false;
        }
        if plant == Some(Plant::LedgerRounding) {
            origin_config.rounding = Rounding::Nearest;
        }
        // The origin answers the scenario's towers only (the real one: those holding a
        // credential); the planted `accept-unknown-towers` answers anyone.
        origin_config.towers = Some((0..sc.towers.len() as u32).map(TowerId).collect());
        if plant == Some(Plant::AcceptUnknownTowers) {
            origin_config.authenticate_towers = false;
        }
        let origin = OriginHost::new(origin_config, origin_id(seed, 0));
        let mut towers = Vec::new();
        let mut devices = Vec::new();
        let mut weather = Stream::new(seed, "weather");
        let mut identities = Stream::new(seed, "identities");
        let mut by_identity: BTreeMap<DeviceId, Vec<usize>> = BTreeMap::new();
        for (i, spec) in sc.towers.iter().enumerate() {
            let kinds: Vec<LinkKind> = spec.links.iter().map(|l| l.kind).collect();
            let mut config = TowerConfig::new(TowerId(i as u32), &kinds);
            match plant {
                Some(Plant::SkipVerify) => config.verify = false,
                Some(Plant::AckBeforeFsync) => config.ack_after_fsync = false,
                Some(Plant::FifoScheduler) => config.scheduler.policy = SchedulePolicy::Fifo,
                Some(Plant::NoFailback) => config.failback = false,
                Some(Plant::OfflineRefuse) => config.serve_offline = false,
                Some(Plant::IgnoreBattery) => config.power_managed = false,
                Some(Plant::ForgetConfirmed) => config.remember_confirmed = false,
                Some(Plant::NoKeyOwnerCheck) => config.check_key_owner = false,
                Some(Plant::NoEdgeValidation) => config.validate_ops = false,
                Some(Plant::NoOriginCheck) => config.check_origin = false,
                _ => {}
            }
            let first = devices.len();
            for d in 0..spec.devices {
                let own = DeviceId((first + d as usize) as u128);
                // A copy of the device before it (same tower): same identity, own RNG.
                let identity = if d > 0 && identities.chance(sc.workload.misuse.shared_identity) {
                    devices.last().map_or(own, |h: &DeviceHost| h.identity)
                } else {
                    own
                };
                let mut cfg = DeviceConfig::new(identity, TowerId(i as u32));
                if plant == Some(Plant::SequentialKeys) {
                    cfg.key_nonce = false;
                }
                by_identity.entry(identity).or_default().push(devices.len());
                devices.push(DeviceHost {
                    device: Device::new(
                        cfg,
                        SplitMix64::derive(seed, &format!("device-{}", own.0)),
                    ),
                    identity,
                    tower: i,
                    timer: Timer::default(),
                });
            }
            let _ = weather.next_u64();
            towers.push(TowerHost::new(spec, config));
        }
        let mut nemesis = Stream::new(seed, "nemesis");
        let schedule = match &opts.schedule {
            Some(s) => s.clone(),
            None => {
                let mut s = sc.faults.clone();
                s.extend(draw_nemesis(sc, &mut nemesis));
                s
            }
        };
        let mut enabled = sc.invariants.clone();
        if let Some(p) = plant {
            // A plant is pointless unless its oracle watches.
            enabled.insert(p.oracle());
        }
        World {
            sc: sc.clone(),
            plant,
            seed,
            now: Time::ZERO,
            queue: Queue::default(),
            seq: 0,
            net: Stream::new(seed, "net"),
            disk_rng: Stream::new(seed, "disk"),
            workload: Stream::new(seed, "workload"),
            weather,
            trace: Trace::new(opts.record_trace, TRACE_LINES_MAX),
            origin,
            towers,
            devices,
            faults: schedule
                .into_iter()
                .map(|spec| ScheduledFault {
                    spec,
                    active: false,
                })
                .collect(),
            oracles: Oracles::new(&enabled),
            kpis: KpiScan::default(),
            observations: None,
            published: BTreeMap::new(),
            items: Default::default(),
            content: BTreeMap::new(),
            publishing: Vec::new(),
            next_item: 0,
            amounts: BTreeMap::new(),
            misuse: Stream::new(seed, "misuse"),
            mismatched: BTreeSet::new(),
            rehome_open: false,
            published_before: BTreeMap::new(),
            rogue_sent: 0,
            by_identity,
            healed: false,
            heal_at: Time::ZERO + sc.duration,
            ended: false,
            events: 0,
            step_budget_hit: false,
            started: false,
        }
    }

    fn push(&mut self, at: Time, ev: Ev) {
        self.seq += 1;
        self.queue.push(at.max(self.now), self.seq, ev);
    }

    fn observe(&mut self, obs: Obs) {
        let s = Stamped { at: self.now, obs };
        self.oracles.observe(&s);
        self.kpis.observe(&s);
        if let Some(log) = &mut self.observations {
            log.push(s);
        }
    }

    // ----- set-up ---------------------------------------------------------------------

    fn start(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        self.observe(Obs::Start {
            towers: self.sc.towers.iter().map(|t| t.name.clone()).collect(),
            links: self
                .sc
                .towers
                .iter()
                .map(|t| {
                    let mut k: Vec<LinkKind> = t.links.iter().map(|l| l.kind).collect();
                    k.sort();
                    k
                })
                .collect(),
            devices: self.devices.len() as u32,
        });
        // The origin's identity, then the initial catalog, published before the towers boot.
        let _ = self.origin.origin.establish_identity(self.origin.id);
        let catalog = self.sc.workload.catalog.clone();
        for group in &catalog {
            for _ in 0..group.items {
                self.publish_new(group.priority, group.bytes);
            }
        }
        self.drain_origin();
        for i in 0..self.towers.len() {
            self.boot_tower(i);
            self.push(self.now + POWER_TICK, Ev::PowerTick { tower: i });
        }
        for (id, f) in self.faults.iter().enumerate() {
            let at = Time::ZERO + f.spec.at;
            self.seq += 1;
            self.queue.push(at, self.seq, Ev::FaultStart { id });
        }
        for class in 0..4 {
            self.schedule_publish(class);
        }
        for d in 0..self.devices.len() {
            self.schedule_read(d);
            self.schedule_op(d);
            self.schedule_key_reuse(d);
        }
        self.schedule_key_theft();
        self.push(self.now + SAMPLE_EVERY, Ev::Sample);
        self.push(self.heal_at, Ev::Heal);
    }

    // ----- the run loop ---------------------------------------------------------------

    /// Run to the end.
    pub fn run(&mut self) {
        while self.step() {}
    }

    /// Process the next event. `false` once the run is over (nothing left, the end was
    /// reached, or the step budget ran out).
    pub fn step(&mut self) -> bool {
        self.start();
        if self.ended || self.step_budget_hit {
            return false;
        }
        let Some((at, ev)) = self.queue.pop() else {
            return false;
        };
        self.events += 1;
        if self.events > EVENTS_MAX {
            self.step_budget_hit = true;
            return false;
        }
        self.now = self.now.max(at);
        self.dispatch(ev);
        !self.ended
    }

    /// Process every event up to and including virtual time `t` (bounded by the step
    /// budget); returns whether the run goes on.
    pub fn run_until(&mut self, t: Time) -> bool {
        self.start();
        loop {
            match self.queue.peek_time() {
                Some(at) if at <= t => {
                    if !self.step() {
                        return false;
                    }
                }
                Some(_) => {
                    self.now = self.now.max(t);
                    return true;
                }
                None => return false,
            }
        }
    }

    /// Virtual time now.
    pub fn now(&self) -> Time {
        self.now
    }

    /// When the next event happens.
    pub fn next_event_time(&self) -> Option<Time> {
        self.queue.peek_time()
    }

    /// Whether the run is over.
    pub fn is_done(&self) -> bool {
        self.ended || self.step_budget_hit || (self.started && self.queue.is_empty())
    }

    /// The scenario being run.
    pub fn scenario(&self) -> &Scenario {
        &self.sc
    }

    /// Events processed so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Keep every observation for [`World::observations`] (the console's live view, a
    /// report's charts). Call it before the run starts. A world that does not keep them
    /// still checks every oracle and measures every KPI.
    pub fn keep_observations(&mut self) {
        assert!(
            !self.started,
            "keep_observations must be called before the run starts"
        );
        self.observations.get_or_insert_with(Vec::new);
    }

    /// Every observation so far, oldest first (kept since [`World::keep_observations`]).
    pub fn observations(&self) -> &[Stamped] {
        self.observations
            .as_deref()
            .expect("observations are kept only after World::keep_observations")
    }

    /// Violations found so far.
    pub fn violations(&self) -> &[Violation] {
        self.oracles.violations()
    }

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

    fn dispatch(&mut self, ev: Ev) {
        let now = self.now;
        // A message or probe result for a tower process: dropped when it was meant for
        // an earlier incarnation (or the process is down), held back while it is paused.
        if let Ev::ToTower {
            tower, incarnation, ..
        }
        | Ev::ProbeDone {
            tower, incarnation, ..
        } = &ev
        {
            let t = &self.towers[*tower];
            if t.incarnation != *incarnation || !t.running() {
                return;
            }
            if let Some(until) = t.paused_until.filter(|u| *u > now) {
                self.push(until, ev);
                return;
            }
        }
        match ev {
            Ev::ToOrigin { tower, link, msg } => {
                if !self.origin.up {
                    return;
                }
                if let Some(until) = self.origin.paused_until.filter(|u| *u > now) {
                    self.push(until, Ev::ToOrigin { tower, link, msg });
                    return;
                }
                if !self.towers[tower]
                    .links
                    .iter()
                    .any(|l| l.kind == Some(link) && l.is_up(now))
                {
                    return; // cut while in flight
                }
                self.trace
                    .event(now, 1, tower as u64, &[msg.wire_size(), link as u64]);
                self.trace.line(now, || {
                    format!("origin <- tower-{tower} via {link}: {}", summary(&msg))
                });
                self.origin.reply_link.insert(tower, link);
                self.origin
                    .origin
                    .handle_message(now, Peer::Tower(TowerId(tower as u32)), msg);
                self.drain_origin();
            }
            Ev::ToTower {
                tower,
                from,
                link,
                msg,
                ..
            } => {
                let t = &self.towers[tower];
                if let Some(l) = link
                    && !t.links.iter().any(|x| x.kind == Some(l) && x.is_up(now))
                {
                    return;
                }
                if matches!(from, Peer::Device(_)) && !t.wifi.is_up(now) {
                    return;
                }
                self.trace
                    .event(now, 2, tower as u64, &[msg.wire_size(), peer_word(from)]);
                self.trace.line(now, || {
                    format!("tower-{tower} <- {from:?}: {}", summary(&msg))
                });
                let local = t.local(now);
                if let Some(tw) = self.towers[tower].tower.as_mut() {
                    tw.handle_message(local, from, msg);
                }
                self.drain_tower(tower);
            }
            Ev::ToDevice { device, msg } => {
                let tower = self.devices[device].tower;
                if !self.towers[tower].wifi.is_up(now) {
                    return;
                }
                self.trace.event(now, 3, device as u64, &[msg.wire_size()]);
                self.trace.line(now, || {
                    format!("device-{device} <- tower-{tower}: {}", summary(&msg))
                });
                if let Message::SubmitReply {
                    key,
                    reply: SubmitReply::Accepted | SubmitReply::Duplicate,
                } = &msg
                    && let Some(op) = self.devices[device].device.queued(key)
                {
                    let tower = self.devices[device].tower;
                    let fingerprint = op.fingerprint();
                    self.observe(Obs::Acked {
                        tower,
                        key: key.clone(),
                        fingerprint,
                    });
                }
                self.devices[device].device.handle_message(now, msg);
                self.drain_device(device);
            }
            Ev::WriteDone {
                node,
                incarnation,
                id,
                ok,
            } => {
                self.trace
                    .event(now, 4, node_word(node), &[id.0, ok.is_ok() as u64]);
                match node {
                    Node::Origin => {
                        if self.origin.incarnation == incarnation && self.origin.up {
                            if ok.is_err() {
                                self.observe(Obs::StorageError { tower: None });
                            }
                            self.origin.origin.handle_write_done(now, id, ok);
                            self.drain_origin();
                        }
                    }
                    Node::Tower(i) => {
                        if self.towers[i].incarnation == incarnation && self.towers[i].running() {
                            if let Some(until) = self.towers[i].paused_until.filter(|u| *u > now) {
                                self.push(
                                    until,
                                    Ev::WriteDone {
                                        node,
                                        incarnation,
                                        id,
                                        ok,
                                    },
                                );
                                return;
                            }
                            if ok.is_err() {
                                self.observe(Obs::StorageError { tower: Some(i) });
                            }
                            let local = self.towers[i].local(now);
                            if let Some(t) = self.towers[i].tower.as_mut() {
                                t.handle_write_done(local, id, ok);
                            }
                            self.drain_tower(i);
                        }
                    }
                }
            }
            Ev::FsyncDone {
                node,
                incarnation,
                id,
                upto,
                fail,
            } => {
                self.trace
                    .event(now, 5, node_word(node), &[id.0, fail as u64]);
                match node {
                    Node::Origin => {
                        if self.origin.incarnation != incarnation || !self.origin.up {
                            return;
                        }
                        let res = self.fsync_done(node, upto, fail);
                        if res.is_ok() {
                            self.origin.restarts.on_durable();
                        }
                        self.origin.origin.handle_fsync_done(now, id, res);
                        self.drain_origin();
                    }
                    Node::Tower(i) => {
                        if self.towers[i].incarnation != incarnation {
                            return;
                        }
                        if let Some(until) = self.towers[i].paused_until.filter(|u| *u > now) {
                            self.push(
                                until,
                                Ev::FsyncDone {
                                    node,
                                    incarnation,
                                    id,
                                    upto,
                                    fail,
                                },
                            );
                            return;
                        }
                        let res = self.fsync_done(node, upto, fail);
                        if self.towers[i].running() {
                            let local = self.towers[i].local(now);
                            if let Some(t) = self.towers[i].tower.as_mut() {
                                t.handle_fsync_done(local, id, res);
                            }
                            self.drain_tower(i);
                        }
                    }
                }
            }
            Ev::ProbeDone {
                tower,
                link,
                outcome,
                ..
            } => {
                let t = &self.towers[tower];
                self.trace.event(
                    now,
                    6,
                    tower as u64,
                    &[link as u64, outcome.reachable as u64],
                );
                self.trace.line(now, || {
                    format!(
                        "tower-{tower} probe {link}: {}",
                        if outcome.reachable { "ok" } else { "failed" }
                    )
                });
                let local = t.local(now);
                if let Some(tw) = self.towers[tower].tower.as_mut() {
                    tw.handle_probe(local, link, outcome);
                }
                self.drain_tower(tower);
            }
            Ev::TowerTimer { tower, generation } => {
                let t = &self.towers[tower];
                if !t.timer.is_current(generation) || !t.running() {
                    return;
                }
                if let Some(until) = t.paused_until.filter(|u| *u > now) {
                    // The same event, later: its generation stays current.
                    self.push(until, Ev::TowerTimer { tower, generation });
                    self.towers[tower].timer.at = Some(until);
                    return;
                }
                let local = t.local(now);
                self.towers[tower].timer.at = None;
                self.trace.event(now, 7, tower as u64, &[]);
                if let Some(tw) = self.towers[tower].tower.as_mut() {
                    tw.handle_timeout(local);
                }
                self.drain_tower(tower);
            }
            Ev::DeviceTimer { device, generation } => {
                if !self.devices[device].timer.is_current(generation) {
                    return;
                }
                self.devices[device].timer.at = None;
                self.trace.event(now, 8, device as u64, &[]);
                self.devices[device].device.handle_timeout(now);
                self.drain_device(device);
            }
            Ev::FaultStart { id } => self.fault_start(id),
            Ev::FaultEnd { id } => self.fault_end(id),
            Ev::RogueTick { id } => {
                if self.faults[id].active && !self.healed {
                    self.rogue_forward();
                    self.push(now + ROGUE_EVERY, Ev::RogueTick { id });
                }
            }
            Ev::CrashLoopTick { id } => self.crash_loop_tick(id),
            Ev::TowerBoot { tower, incarnation } => {
                if self.towers[tower].incarnation == incarnation && !self.towers[tower].running() {
                    self.boot_tower(tower);
                }
            }
            Ev::OriginRestart { incarnation } => {
                if self.origin.incarnation == incarnation && !self.origin.up {
                    self.restart_origin();
                }
            }
            Ev::PowerTick { tower } => self.power_tick(tower),
            Ev::Publish { class } => self.publish_tick(class),
            Ev::DeviceRead { device } => {
                self.device_read(device);
                self.schedule_read(device);
            }
            Ev::DeviceOp { device } => self.device_op(device),
            Ev::KeyReuse { device } => self.key_reuse(device),
            Ev::KeyTheft => self.key_theft(),
            Ev::Sample => {
                for i in 0..self.towers.len() {
                    let ops = self.towers[i]
                        .tower
                        .as_ref()
                        .map_or(0, |t| t.status().outbox);
                    self.observe(Obs::Backlog { tower: i, ops });
                    self.update_steady(i);
                }
                if self.healed {
                    self.check_convergence();
                }
                if !self.ended {
                    self.push(self.now + SAMPLE_EVERY, Ev::Sample);
                }
            }
            Ev::Heal => self.heal(),
            Ev::End => self.ended = true,
        }
    }

    // ----- draining actions -------------------------------------------------------------

    fn drain_origin(&mut self) {
        let slow = self.origin.slow;
        while let Some(action) = self.origin.origin.poll_action() {
            match action {
                Action::Send {
                    to: Peer::Tower(TowerId(t)),
                    msg,
                    ..
                } => {
                    let t = t as usize;
                    let Some(&link) = self.origin.reply_link.get(&t) else {
                        continue;
                    };
                    let incarnation = self.towers[t].incarnation;
                    let bytes = msg.wire_size();
                    let delay = proc_delay(slow);
                    let arrivals = match self.towers[t].link_mut(link) {
                        Some(l) => l.transmit(self.now + delay, bytes, false, &mut self.net),
                        None => Vec::new(),
                    };
                    self.observe(Obs::Transfer {
                        tower: t,
                        link,
                        bytes,
                    });
                    for at in arrivals {
                        self.push(
                            at,
                            Ev::ToTower {
                                tower: t,
                                incarnation,
                                from: Peer::Origin,
                                link: Some(link),
                                msg: msg.clone(),
                            },
                        );
                    }
                }
                Action::Send { .. } => {}
                a @ (Action::Write { .. } | Action::Delete { .. } | Action::Fsync { .. }) => {
                    self.disk_action(Node::Origin, a);
                }
                Action::Emit(event) => {
                    if let Event::OpApplied {
                        key,
                        outcome: OpOutcome::Applied { .. },
                    } = &event
                    {
                        let fingerprint = self
                            .origin
                            .origin
                            .applied_fingerprint(key)
                            .unwrap_or(ChunkHash([0; 32]));
                        let amount = self.amounts.get(&(key.clone(), fingerprint)).copied();
                        self.observe(Obs::Applied {
                            key: key.clone(),
                            fingerprint,
                            amount_minor: amount,
                        });
                        let l = self.origin.origin.ledger();
                        let obs = Obs::Ledger {
                            contributed: l.contributed_minor(),
                            withdrawn: l.withdrawn_minor(),
                            held: l.held_minor(),
                        };
                        self.observe(obs);
                    }
                    self.observe(Obs::Origin { event });
                }
                Action::Probe { .. } | Action::PowerOff { .. } => {}
            }
        }
        if self.origin.origin.is_failed() && self.origin.up {
            // Fail-stop (fsync/write failure): its supervisor restarts it from disk, later
            // each time it fails again before an fsync succeeds.
            let after = ORIGIN_RESTART + self.origin.restarts.on_failure();
            self.crash_origin(after);
        }
        self.check_published();
    }

    fn drain_tower(&mut self, i: usize) {
        let slow = self.towers[i].slow;
        loop {
            let Some(action) = self.towers[i].tower.as_mut().and_then(|t| t.poll_action()) else {
                break;
            };
            match action {
                Action::Send {
                    to: Peer::Origin,
                    via,
                    msg,
                } => {
                    let Some(link) = via else { continue };
                    let bytes = msg.wire_size();
                    let delay = proc_delay(slow);
                    let now = self.now;
                    let arrivals = match self.towers[i].link_mut(link) {
                        Some(l) => l.transmit(now + delay, bytes, true, &mut self.net),
                        None => Vec::new(),
                    };
                    self.observe(Obs::Transfer {
                        tower: i,
                        link,
                        bytes,
                    });
                    for at in arrivals {
                        self.push(
                            at,
                            Ev::ToOrigin {
                                tower: i,
                                link,
                                msg: msg.clone(),
                            },
                        );
                    }
                }
                Action::Send {
                    to: Peer::Device(id),
                    msg,
                    ..
                } => {
                    if let Message::SubmitReply {
                        key,
                        reply: SubmitReply::Retry { reason },
                    } = &msg
                        && reason.starts_with(RETRY_NOT_STORED)
                    {
                        self.observe(Obs::NotStored {
                            tower: i,
                            key: key.clone(),
                        });
                    }
                    let to = self.recipients(id, &msg);
                    if to.is_empty() {
                        continue; // a stranger: nobody to hear the answer
                    }
                    let bytes = msg.wire_size();
                    let now = self.now + proc_delay(slow);
                    let arrivals = self.towers[i]
                        .wifi
                        .transmit(now, bytes, false, &mut self.net);
                    for at in arrivals {
                        for &device in &to {
                            self.push(
                                at,
                                Ev::ToDevice {
                                    device,
                                    msg: msg.clone(),
                                },
                            );
                        }
                    }
                }
                Action::Send { .. } => {}
                a @ (Action::Write { .. } | Action::Delete { .. } | Action::Fsync { .. }) => {
                    self.disk_action(Node::Tower(i), a);
                }
                Action::Probe { link } => {
                    let now = self.now;
                    let t = &self.towers[i];
                    let incarnation = t.incarnation;
                    let Some(l) = t.links.iter().find(|l| l.kind == Some(link)) else {
                        continue;
                    };
                    let (after, outcome) = l.probe(now, &mut self.net);
                    self.push(
                        now + after,
                        Ev::ProbeDone {
                            tower: i,
                            incarnation,
                            link,
                            outcome,
                        },
                    );
                }
                Action::Emit(event) => {
                    if let Event::ChunkRequested {
                        priority,
                        bytes,
                        link,
                        ..
                    } = &event
                    {
                        let p0_waiting = self.towers[i]
                            .tower
                            .as_ref()
                            .is_some_and(|t| t.p0_waiting());
                        self.observe(Obs::Requested {
                            tower: i,
                            link: *link,
                            class: *priority,
                            bytes: *bytes,
                            p0_waiting,
                        });
                    }
                    if matches!(event, Event::OriginMismatch { .. }) {
                        self.mismatched.insert(i);
                    }
                    self.observe(Obs::Tower { tower: i, event });
                }
                Action::PowerOff { clean } => {
                    self.tower_down(i, clean, Proc::Off);
                    return;
                }
            }
        }
        // The operator re-homes a tower that reported another origin, once the
        // `origin-replace` fault's delay has passed.
        if self.rehome_open && self.mismatched.remove(&i) {
            self.rehome(i);
            return;
        }
        self.schedule_tower_timer(i);
        self.update_steady(i);
    }

    /// Someone who is not a tower forwards a contribution to the origin.
    fn rogue_forward(&mut self) {
        let now = self.now;
        if !self.origin.up || self.origin.paused_until.is_some_and(|u| u > now) {
            return;
        }
        self.rogue_sent += 1;
        let op = Operation {
            key: IdemKey(format!("rogue:{}", self.rogue_sent)),
            device: DeviceId(STRANGER_ID_BASE - 1),
            kind: OpKind::Contribution {
                community: "attacker".into(),
                nation: "xx".into(),
                amount_minor: 5_000_000,
            },
        };
        self.amounts
            .insert((op.key.clone(), op.fingerprint()), 5_000_000);
        self.trace.event(now, 25, self.rogue_sent, &[]);
        self.origin.origin.handle_message(
            now,
            Peer::Tower(TowerId(ROGUE_TOWER)),
            Message::ForwardOps { ops: vec![op] },
        );
        self.drain_origin();
    }

    fn drain_device(&mut self, d: usize) {
        let tower = self.devices[d].tower;
        let identity = self.devices[d].identity;
        while let Some(action) = self.devices[d].device.poll_action() {
            if let Action::Send { msg, .. } = action {
                self.send_over_wifi(tower, identity, msg);
            }
            // Device-local persistence (Write/Fsync/Delete) is not modelled: devices do
            // not crash in the simulator.
        }
        let dh = &mut self.devices[d];
        if let Some(at) = dh.device.poll_timeout()
            && let Some(generation) = dh.timer.arm(at)
        {
            self.push(
                at,
                Ev::DeviceTimer {
                    device: d,
                    generation,
                },
            );
        }
    }

    /// The device hosts a tower's answer to identity `id` reaches. One, unless devices
    /// share the identity: then an answer about a key reaches those holding the key (a
    /// shared identity has no way to tell them apart), a status answer all of them.
    fn recipients(&self, id: DeviceId, msg: &Message) -> Vec<usize> {
        let Some(hosts) = self.by_identity.get(&id) else {
            return Vec::new();
        };
        if hosts.len() == 1 {
            return hosts.clone();
        }
        let holding: Vec<usize> = match msg {
            Message::SubmitReply { key, .. } => hosts
                .iter()
                .copied()
                .filter(|&d| self.devices[d].device.queued(key).is_some())
                .collect(),
            _ => hosts.clone(),
        };
        if holding.is_empty() {
            hosts[..1].to_vec()
        } else {
            holding
        }
    }

    // ----- steady state, convergence ----------------------------------------------------

    fn update_steady(&mut self, i: usize) {
        let t = &self.towers[i];
        let steady = t.running()
            && t.tower.as_ref().is_some_and(|x| {
                x.power_mode() == PowerMode::Normal && x.active_link() == t.best_link()
            });
        if steady != t.steady {
            self.towers[i].steady = steady;
            self.observe(Obs::Steady { tower: i, steady });
        }
    }

    fn check_convergence(&mut self) {
        let catalog = self.origin.origin.catalog();
        let mut all = true;
        for i in 0..self.towers.len() {
            if self.towers[i].converged {
                continue;
            }
            let t = &self.towers[i];
            let ok = t.tower.as_ref().is_some_and(|tw| {
                let servable = tw.servable();
                let classes = &tw.config().classes;
                catalog.iter().all(|e| {
                    let carried = t.links.iter().any(|l| {
                        l.kind
                            .is_some_and(|k| classes.allows(k, e.manifest.priority))
                    });
                    !carried
                        || servable
                            .get(&e.manifest.item)
                            .is_some_and(|v| *v >= e.manifest.version)
                })
            });
            if ok {
                self.towers[i].converged = true;
                self.observe(Obs::Converged { tower: i });
            } else {
                all = false;
            }
        }
        let drained = self
            .towers
            .iter()
            .all(|t| t.tower.as_ref().is_some_and(|x| x.status().outbox == 0))
            && self.devices.iter().all(|d| d.device.pending() == 0);
        if all && drained {
            self.end();
        }
    }

    fn end(&mut self) {
        if self.ended {
            return;
        }
        let outboxes = self
            .towers
            .iter()
            .enumerate()
            .map(|(i, t)| (i, t.disk.outbox_keys()))
            .collect();
        let ledger_contributed = self.origin.origin.ledger().contributed_minor();
        self.observe(Obs::End {
            outboxes,
            ledger_contributed,
        });
        self.ended = true;
    }

    // ----- faults -----------------------------------------------------------------------

    fn fault_start(&mut self, id: usize) {
        if self.healed {
            return;
        }
        let spec = self.faults[id].spec.clone();
        self.faults[id].active = true;
        self.trace.event(self.now, 17, id as u64, &[]);
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
            (FaultKind::Crash, Target::Tower(i)) => {
                self.towers[*i].crash_faults += 1;
                self.crash_tower(*i, false, None);
            }
            (FaultKind::Crash, Target::Origin) => {
                self.origin.crash_faults += 1;
                self.crash_origin(spec.duration);
            }
            (FaultKind::TornWrite, Target::Tower(i)) => {
                self.towers[*i].crash_faults += 1;
                self.crash_tower(*i, true, None);
            }
            (FaultKind::TornWrite, Target::Origin) => {
                self.origin.crash_faults += 1;
                self.crash_origin(spec.duration);
            }
            (FaultKind::Restart, Target::Tower(i)) => {
                let i = *i;
                if self.towers[i].running() {
                    let upto = self.towers[i].disk.issued;
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
                let upto = self.origin.disk.issued;
                self.origin.disk.sync(upto);
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

    fn crash_loop_tick(&mut self, id: usize) {
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
        let every = every.max(BOOT + Duration::from_secs(1));
        self.push(self.now + every, Ev::CrashLoopTick { id });
    }

    fn fault_end(&mut self, id: usize) {
        if !self.faults[id].active {
            return;
        }
        self.faults[id].active = false;
        let spec = self.faults[id].spec.clone();
        self.trace.event(self.now, 18, id as u64, &[]);
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
    fn recompute_overlays(&mut self) {
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
                    FaultKind::DbLost => d.faults.db_lost += 1,
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
    }

    fn heal(&mut self) {
        self.trace.event(self.now, 19, 0, &[]);
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

    /// Finish the run: end-of-run checks, KPIs, SLOs, the report.
    pub fn finish(mut self) -> RunReport {
        if !self.ended {
            self.end();
        }
        let mut violations =
            std::mem::replace(&mut self.oracles, Oracles::new(&BTreeSet::new())).finish();
        if self.step_budget_hit {
            violations.push(Violation {
                oracle: Oracle::Convergence,
                at: self.now,
                detail: format!("step budget of {EVENTS_MAX} events exhausted"),
                liveness: true,
            });
        }
        let mut kpis = std::mem::take(&mut self.kpis).finish();
        kpis.apply_slo(&self.sc.slo);
        kpis.violations = violations.len() as u64;
        let slo = kpis.check(&self.sc.slo);
        let (trace_hash, trace) = self.trace.finish();
        RunReport {
            scenario: self.sc.name.clone(),
            seed: self.seed,
            plant: self.plant,
            trace_hash,
            events: self.events,
            end: self.now,
            violations,
            kpis,
            slo,
            schedule: self.faults.iter().map(|f| f.spec.clone()).collect(),
            trace,
        }
    }
}

/// Draw the nemesis's faults for the safety phase from its own stream.
fn draw_nemesis(sc: &Scenario, rng: &mut Stream) -> Vec<FaultSpec> {
    let mut out = Vec::new();
    let horizon = sc.duration.as_secs_f64();
    let towers = sc.towers.len();
    if towers == 0 {
        return out;
    }
    for (family, rate) in &sc.nemesis.rates_per_hour {
        if *rate <= 0.0 {
            continue;
        }
        let mut t = 0.0;
        loop {
            t += rng.exp(3600.0 / rate).as_secs_f64();
            if t >= horizon {
                break;
            }
            let mean = sc.nemesis.duration_mean.as_secs_f64();
            let dur = rng.exp(mean).min(sc.nemesis.duration_max);
            let dur = Duration::from_secs(dur.as_secs().max(1));
            let tower = rng.below(towers as u64) as usize;
            let links: Vec<LinkKind> = sc.towers[tower].links.iter().map(|l| l.kind).collect();
            let (target, kind) = match family {
                Family::Network => {
                    let link = links[rng.below(links.len() as u64) as usize];
                    match rng.below(8) {
                        0 | 1 => (Target::Link(tower, link), FaultKind::LinkDown),
                        2 => (Target::Tower(tower), FaultKind::Partition),
                        3 => (
                            Target::Link(tower, link),
                            FaultKind::Latency {
                                extra: Duration::from_millis(100 + rng.below(900)),
                            },
                        ),
                        4 => (
                            Target::Link(tower, link),
                            FaultKind::Loss {
                                p: 0.05 + rng.unit() * 0.3,
                            },
                        ),
                        5 => (
                            Target::Link(tower, link),
                            FaultKind::Bandwidth {
                                bytes_per_s: 10_000 + rng.below(200_000),
                            },
                        ),
                        6 => (
                            Target::Link(tower, link),
                            FaultKind::Duplicate {
                                p: 0.05 + rng.unit() * 0.2,
                            },
                        ),
                        _ => (Target::Wifi(tower), FaultKind::Partition),
                    }
                }
                Family::Process => {
                    let target = if rng.below(5) == 0 {
                        Target::Origin
                    } else {
                        Target::Tower(tower)
                    };
                    let kind = match rng.below(5) {
                        0 | 1 => FaultKind::Crash,
                        2 => FaultKind::Restart,
                        3 => FaultKind::Pause,
                        _ => FaultKind::Slow {
                            factor: 2.0 + rng.unit() * 8.0,
                        },
                    };
                    (target, kind)
                }
                Family::Disk => {
                    let target = if rng.below(5) == 0 {
                        Target::Origin
                    } else {
                        Target::Tower(tower)
                    };
                    let kind = match rng.below(7) {
                        0 => FaultKind::WriteError {
                            p: 0.05 + rng.unit() * 0.2,
                        },
                        1 => FaultKind::FsyncError {
                            p: 0.05 + rng.unit() * 0.2,
                        },
                        2 => FaultKind::TornWrite,
                        3 => FaultKind::Corruption {
                            chunks: 1 + rng.below(3) as u32,
                        },
                        4 => FaultKind::DiskFull,
                        5 => FaultKind::DiskLatency {
                            extra: Duration::from_millis(5 + rng.below(200)),
                        },
                        _ => FaultKind::DbLost,
                    };
                    (target, kind)
                }
                Family::Power => {
                    let kind = match rng.below(5) {
                        0 => FaultKind::Clouds {
                            cover: 0.5 + rng.unit() * 0.5,
                        },
                        1 => FaultKind::GridLoss,
                        2 => FaultKind::UpsFailure,
                        3 => FaultKind::BrownOut,
                        _ => FaultKind::HardCut,
                    };
                    (Target::Tower(tower), kind)
                }
                Family::Clock => {
                    let kind = if rng.below(2) == 0 {
                        FaultKind::ClockSkew {
                            ppm: rng.below(2000) as i64 - 1000,
                        }
                    } else {
                        FaultKind::ClockJump {
                            by_ms: rng.below(120_000) as i64 - 60_000,
                        }
                    };
                    (Target::Tower(tower), kind)
                }
            };
            let duration = match kind {
                FaultKind::Corruption { .. }
                | FaultKind::ClockJump { .. }
                | FaultKind::BrownOut => Duration::ZERO,
                FaultKind::TornWrite | FaultKind::HardCut => dur.min(Duration::from_secs(600)),
                _ => dur,
            };
            out.push(FaultSpec {
                // Whole milliseconds: the scenario format's resolution, so that a failure
                // file's explicit schedule replays the very same run.
                at: Duration::from_millis((t * 1000.0) as u64),
                duration,
                target,
                kind,
            });
        }
    }
    out.sort_by_key(|f| f.at);
    out
}

mod disk;
mod events;
mod hosts;
mod net;
mod power;
mod read;
mod rng;
mod workload;

use disk::DiskFaults;
use events::{Ev, Node, Queue, node_word, peer_word, summary};
use hosts::{
    BOOT, DeviceHost, ORIGIN_RESTART, OriginHost, Proc, Timer, TowerHost, origin_id, proc_delay,
};
use net::{LinkFaults, SimLink};
use power::POWER_TICK;
pub use read::{TowerRead, tower_read};
use rng::Stream;
use workload::STRANGER_ID_BASE;

#[cfg(test)]
mod tests;
