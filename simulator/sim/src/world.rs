//! The simulated world: a discrete-event run of the real logic from one seed.
//!
//! One [`World`] holds all simulated state — the virtual clock, one event queue, seeded
//! random streams (one per component, derived from the run's seed), the origin, the
//! towers and their devices, every link, disk, battery and clock — and runs the
//! `sovereign-logic` state machines against it. Time jumps from event to event, so cost
//! grows with events, not with virtual time.
//!
//! # Map
//! The run loop is here; the simulated environment, the workload and the faults each have
//! a module, as VOPR keeps its simulator apart from the packet simulator and the storage.
//! - here: [`run`], [`RunOptions`], [`World`] — build a world for a scenario, run the
//!   safety phase (faults on), heal, run the liveness phase (converge within the bound),
//!   report; `dispatch` of every event, the drains of each state machine's actions,
//!   steady state and convergence.
//! - `events`: `Ev`, `Node`, `Queue` (time, then push order), trace words and text.
//! - `rng`: `Stream`, one seeded random stream per component.
//! - `net`: `SimLink` — latency + jitter, serialised bandwidth per direction, loss, LEO
//!   handovers, fault overlays (down, partition, extra latency/loss, caps, flapping,
//!   duplication, reordering), probes. A message in flight on a link that goes down is
//!   lost.
//! - `disk`: `SimDisk` — pending vs durable records (an fsync makes durable exactly the
//!   writes issued before it; a crash drops the rest, a torn write leaves half a chunk),
//!   write and fsync errors, disk full, lost DB connection, latency, bit rot.
//! - `power`: `PowerModel` — solar from a day curve and daily cloud cover, a battery with
//!   fade, load by power mode, grid and UPS; the power tick.
//! - `hosts`: the origin, towers and devices; processes: boot, crash (kill -9), clean
//!   restart from durable state only, replacement; clocks with skew and jumps (the logic
//!   sees local time).
//! - `workload`: publishing, device operations, misuse. `read`: device reads
//!   ([`tower_read`]).
//! - `faults`: fault start/end, overlays, crash loops, pause, slow, the heal. `nemesis`:
//!   faults drawn from their own stream (an explicit replay of the drawn schedule
//!   reproduces the run exactly).
//! - `view`: [`Snapshot`] and its parts, for consoles and game days.
//!
//! Not covered: device crashes, wire-level corruption on Wi-Fi, the origin's own power.

use crate::Observer;
use crate::kpi::KpiScan;
use crate::obs::{Obs, Stamped};
use crate::oracle::Oracles;
use crate::plant::Plant;
use crate::report::{RunReport, Violation};
use crate::scenario::{FaultSpec, Oracle, Scenario};
use crate::trace::{Trace, TraceKind};
use sovereign_logic::Time;
use sovereign_logic::content::{ChunkHash, ItemId, Manifest};
use sovereign_logic::device::{Device, DeviceConfig};
use sovereign_logic::entropy::{Entropy, SplitMix64};
use sovereign_logic::io::{Action, Event, Key, PowerMode, Record};
use sovereign_logic::ledger::Rounding;
use sovereign_logic::origin::OriginConfig;
use sovereign_logic::protocol::{
    DeviceId, HTTP_HEAD, IdemKey, LinkKind, Message, OpOutcome, Peer, SubmitReply, TowerId,
    catalog_page_refs,
};
use sovereign_logic::tower::scheduler::SchedulePolicy;
use sovereign_logic::tower::{RETRY_NOT_STORED, TowerConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

mod buggify;
mod disk;
mod events;
mod faults;
mod hosts;
mod nemesis;
mod net;
mod power;
mod read;
mod rng;
mod sometimes;
mod view;
mod workload;

use buggify::{LATE_DUPLICATE_MAX, Site};
use disk::Stored;
use events::{Ev, Node, Queue, node_word, peer_word, summary};
use faults::ScheduledFault;
use hosts::{DeviceHost, OriginHost, Proc, Timer, TowerHost, origin_id, proc_delay};
use nemesis::draw_nemesis;
pub use read::{TowerRead, tower_read};
use rng::Stream;
pub use sometimes::Sometimes;
use sovereign_scenario::power::power_tick_every;
pub use view::{FaultView, LinkView, Phase, Snapshot, TowerView};

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
    /// Branch the run: the same run up to a moment, fresh randomness after it; then
    /// again at the next moment (a branch of a branch), in time order.
    pub branches: Vec<Branch>,
}

/// A branch point: the run is the seed's run up to `at`; from the first event after
/// `at` on, the environment (network delays and losses, disk timings, the workload, the
/// weather, misuse and the firings of fault sites) draws from streams derived from
/// `seed` instead. What the run has set up before stays: the fault schedule, the towers'
/// and devices' own generators, which fault sites are on. Guided exploration branches
/// at rare moments, `replay --likelihood` at points before a failure; a failure file
/// records the branch, so a branched failure replays and shrinks like any other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Branch {
    /// The moment, from the run's start.
    pub at: Duration,
    /// The seed of the fresh streams.
    pub seed: u64,
}

/// The faults the scenario's nemesis draws for `seed`, in the order and with the
/// timings a run with that seed injects them after the scenario's own faults (the lab
/// injects the same draws).
pub fn nemesis_schedule(sc: &Scenario, seed: u64) -> Vec<FaultSpec> {
    draw_nemesis(sc, &mut Stream::new(seed, "nemesis"))
}

/// Run a scenario to its end.
pub fn run(scenario: &Scenario, opts: &RunOptions) -> RunReport {
    let mut world = World::new(scenario, opts);
    world.run();
    world.finish()
}

/// The planted `bounded-dedupe`'s window: the origin recognises a key while it is among
/// its last this many applies (a dedupe cache of a realistic size).
const BOUNDED_DEDUPE_WINDOW: u64 = 5000;
/// Upper bound on processed events in one run (a runaway loop is a finding, not a hang).
const EVENTS_MAX: u64 = 200_000_000;
/// Backlog and steady-state sampling period.
const SAMPLE_EVERY: Duration = Duration::from_secs(60);
/// Observations a tap holds before [`World::run_observed`] hands them on.
const TAP_BATCH: usize = 4096;
/// Text trace lines kept when recording.
const TRACE_LINES_MAX: usize = 2_000_000;

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
    /// Fault sites inside the drivers (all off unless the scenario sets `buggify`).
    buggify: buggify::Buggify,
    /// The chunk buffers the disks have hashed (shared by every disk).
    hashes: disk::Hashes,
    /// Which chunks a garbling Wi-Fi flips, and where (drawn only while one is).
    wifi_rng: Stream,
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
    /// Observations not yet taken, only while tapped ([`World::tap_observations`]): the
    /// oracles and KPIs read each one as it comes, and a tap's reader takes them as it
    /// goes, so no run keeps its whole log.
    tap: Option<Vec<Stamped>>,
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
    /// After the heal: something a tower's convergence depends on changed (a version
    /// made servable, an operation confirmed or acknowledged); check at the end of the
    /// step, so that convergence is seen when it happens, not at the next sample.
    converge_dirty: bool,
    heal_at: Time,
    ended: bool,
    events: u64,
    step_budget_hit: bool,
    started: bool,
    /// The run's branch points, in time order, and how many were reached.
    branches: Vec<Branch>,
    branched: usize,
    /// When the run first reached each rare moment ([`Sometimes`], by index).
    sometimes: [Option<Time>; Sometimes::ALL.len()],
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
        if plant == Some(Plant::ReplyBeforeFsync) {
            origin_config.reply_after_fsync = false;
        }
        if plant == Some(Plant::PublishBeforeFsync) {
            origin_config.catalog_after_fsync = false;
        }
        if plant == Some(Plant::BoundedDedupe) {
            origin_config.dedupe_window = Some(BOUNDED_DEDUPE_WINDOW);
        }
        origin_config.catalog_page_refs = match plant {
            Some(Plant::UncutCatalog) => usize::MAX,
            _ => catalog_page_refs(sc.origin.answer_bytes_max),
        };
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
            if let Some(p) = spec.catalog_poll {
                config.catalog_interval = p;
            }
            if let Some(t) = spec.request_timeout {
                config.request_timeout = t;
            }
            if let Some(p) = spec.probe_interval {
                config.probe.interval = p;
                config.probe_satellite.interval = p;
            }
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
                Some(Plant::ReceiptsByPosition) => config.correlate_receipts = false,
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
                cfg.key_nonce = plant != Some(Plant::SequentialKeys);
                cfg.verify_reads = plant != Some(Plant::DeviceSkipVerify);
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
        let schedule = match &opts.schedule {
            Some(s) => s.clone(),
            None => {
                let mut s = sc.faults.clone();
                s.extend(nemesis_schedule(sc, seed));
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
            buggify: buggify::Buggify::new(seed, sc.buggify),
            hashes: disk::Hashes::default(),
            wifi_rng: Stream::new(seed, "wifi"),
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
            tap: None,
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
            converge_dirty: false,
            heal_at: Time::ZERO + sc.duration,
            ended: false,
            events: 0,
            step_budget_hit: false,
            started: false,
            branches: {
                let mut b = opts.branches.clone();
                b.sort_by_key(|b| b.at);
                b
            },
            branched: 0,
            sometimes: [None; Sometimes::ALL.len()],
        }
    }

    /// Switch the environment's streams to the branch's (see [`Branch`]).
    fn take_branch(&mut self, b: Branch) {
        let fresh = |label: &str| Stream::new(b.seed, &format!("branch-{label}"));
        self.net = fresh("net");
        self.disk_rng = fresh("disk");
        self.wifi_rng = fresh("wifi");
        self.workload = fresh("workload");
        self.weather = fresh("weather");
        self.misuse = fresh("misuse");
        self.buggify.reseed(fresh("buggify"));
        self.trace
            .event(self.now, TraceKind::Branch, u64::MAX, &[b.seed]);
        self.trace.line(self.now, || {
            format!("branch: fresh randomness from seed {} on", b.seed)
        });
    }

    fn push(&mut self, at: Time, ev: Ev) {
        self.seq += 1;
        self.queue.push(at.max(self.now), self.seq, ev);
    }

    fn observe(&mut self, obs: Obs) {
        if let Obs::Tower { tower, event } = &obs {
            self.reach_by_tower_event(*tower, event);
        }
        if self.healed
            && matches!(
                obs,
                Obs::Tower {
                    event: Event::ContentServable { .. } | Event::OpConfirmed { .. },
                    ..
                } | Obs::Acked { .. }
            )
        {
            self.converge_dirty = true;
        }
        let s = Stamped { at: self.now, obs };
        self.oracles.observe(&s);
        self.kpis.observe(&s);
        if let Some(tap) = &mut self.tap {
            tap.push(s);
        }
    }

    // ----- set-up ---------------------------------------------------------------------

    fn start(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        debug_assert_eq!(
            self.devices.len() as u64,
            self.sc
                .towers
                .iter()
                .map(|t| u64::from(t.devices))
                .sum::<u64>()
        );
        self.observe(Obs::start(&self.sc));
        if self.sc.buggify {
            let sites = self.buggify.enabled();
            let mask = sites.iter().fold(0u64, |m, s| m | 1 << *s as u64);
            self.trace
                .event(self.now, TraceKind::Buggify, u64::MAX, &[mask]);
            self.trace.line(self.now, || {
                let names: Vec<&str> = sites.iter().map(|s| s.name()).collect();
                format!("buggify: sites on: {}", names.join(", "))
            });
        }
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
            let every = power_tick_every(self.scenario().power_time_scale);
            self.push(self.now + every, Ev::PowerTick { tower: i });
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
        while let Some(b) = self.branches.get(self.branched).copied()
            && self
                .queue
                .peek_time()
                .is_some_and(|t| t > Time::ZERO + b.at)
        {
            self.branched += 1;
            self.now = self.now.max(Time::ZERO + b.at);
            self.take_branch(b);
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
        if std::mem::take(&mut self.converge_dirty) && !self.ended {
            self.check_convergence();
        }
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

    /// Also hand every observation to a reader outside the world (the console's live view,
    /// a report's charts), through [`World::take_observations`]. Call it before the run
    /// starts. Without it the world still checks every oracle and measures every KPI.
    pub fn tap_observations(&mut self) {
        assert!(
            !self.started,
            "tap_observations must be called before the run starts"
        );
        self.tap.get_or_insert_with(Vec::new);
    }

    /// The observations made since the last call, oldest first (empty unless tapped).
    pub fn take_observations(&mut self) -> Vec<Stamped> {
        self.tap.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Run to the end as [`World::run`] does, handing every observation to `reader` as
    /// the run goes (a bounded batch at a time). The trace is the same as `run`'s.
    /// A world tapped before it started may run observed after it started.
    pub fn run_observed(&mut self, reader: &mut dyn Observer) {
        if self.tap.is_none() {
            self.tap_observations();
        }
        loop {
            let more = self.step();
            if !more || self.tap.as_ref().is_some_and(|t| t.len() >= TAP_BATCH) {
                for s in self.take_observations() {
                    reader.observe(&s);
                }
            }
            if !more {
                return;
            }
        }
    }

    /// Violations found so far.
    pub fn violations(&self) -> &[Violation] {
        self.oracles.violations()
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
        }
        | Ev::BusyRefusal {
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
                if !self.towers[tower].uplink_up(link, now) {
                    return; // cut while in flight
                }
                self.trace.event(
                    now,
                    TraceKind::ToOrigin,
                    tower as u64,
                    &[msg.wire_size(), link as u64],
                );
                self.trace.line(now, || {
                    format!("origin <- tower-{tower} via {link}: {}", summary(&msg))
                });
                // A failed origin refuses everything (its rebuild starts here); a busy one
                // refuses at the door before anything is handled.
                if self.refused_by_failed_origin() || self.refused_busy(tower, link) {
                    return;
                }
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
                if link.is_some_and(|l| !t.uplink_up(l, now)) {
                    return;
                }
                if matches!(from, Peer::Device(_)) && !t.wifi.is_up(now) {
                    return;
                }
                self.trace.event(
                    now,
                    TraceKind::ToTower,
                    tower as u64,
                    &[msg.wire_size(), peer_word(from)],
                );
                self.trace.line(now, || {
                    format!("tower-{tower} <- {from:?}: {}", summary(&msg))
                });
                let local = t.local(now);
                if let Some(tw) = self.towers[tower].tower.as_mut() {
                    tw.handle_message(local, from, msg);
                }
                self.drain_tower(tower);
            }
            Ev::BusyRefusal {
                tower,
                link,
                identity,
                ..
            } => {
                if !self.towers[tower].uplink_up(link, now) {
                    return;
                }
                self.trace
                    .event(now, TraceKind::BusyRefusal, tower as u64, &[link as u64]);
                self.trace.line(now, || {
                    let named = identity.map_or_else(|| "no origin".to_string(), |o| o.to_string());
                    format!("tower-{tower} <- Origin: busy refusal naming {named}")
                });
                // What the real tower does with any answer: compare who answered (the
                // request itself is left to time out, as with any refusal).
                let local = self.towers[tower].local(now);
                if let Some(tw) = self.towers[tower].tower.as_mut() {
                    tw.handle_origin_identity(local, identity);
                }
                self.drain_tower(tower);
            }
            Ev::ToDevice { device, msg } => {
                let tower = self.devices[device].tower;
                if !self.towers[tower].wifi.is_up(now) {
                    return;
                }
                self.trace
                    .event(now, TraceKind::ToDevice, device as u64, &[msg.wire_size()]);
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
                self.trace.event(
                    now,
                    TraceKind::WriteDone,
                    node_word(node),
                    &[id.0, ok.is_ok() as u64],
                );
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
                self.trace.event(
                    now,
                    TraceKind::FsyncDone,
                    node_word(node),
                    &[id.0, fail as u64],
                );
                match node {
                    Node::Origin => {
                        if self.origin.incarnation != incarnation || !self.origin.up {
                            return;
                        }
                        self.origin.fsyncs_in_flight.retain(|(_, f, _)| *f != id);
                        let res = self.fsync_done(node, upto, fail);
                        if res.is_ok() {
                            self.origin.restarts.on_durable();
                            self.origin.forget_stale_rebuild();
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
                    TraceKind::ProbeDone,
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
                self.trace
                    .event(now, TraceKind::TowerTimer, tower as u64, &[]);
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
                self.trace
                    .event(now, TraceKind::DeviceTimer, device as u64, &[]);
                self.devices[device].device.handle_timeout(now);
                self.drain_device(device);
            }
            Ev::FaultStart { id } => self.fault_start(id),
            Ev::FaultEnd { id } => self.fault_end(id),
            Ev::RogueTick { id } => self.rogue_tick(id),
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
            Ev::BuggifyCrash { node, incarnation } => self.buggify_crash(node, incarnation),
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
                    let ops = self.towers[i].tower.as_ref().map_or(0, |t| t.outbox_len());
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

    /// `bytes` the origin answers `tower` with on `link`, after its processing delay (a
    /// `slow` factor): when they arrive (none if lost or the link is down).
    fn origin_transmit(
        &mut self,
        tower: usize,
        link: LinkKind,
        bytes: u64,
        slow: f64,
    ) -> Vec<Time> {
        let at = self.now + proc_delay(slow);
        match self.towers[tower].link_mut(link) {
            Some(l) => l.transmit(at, bytes, false, &mut self.net),
            None => Vec::new(),
        }
    }

    /// What the origin sends for chunk `hash` (its [`Action::ReadChunk`]): the bytes its
    /// disk holds when they are intact (their verdict was taken when they were written or
    /// changed by a fault); else the origin has lost the chunk and says it does not hold it.
    fn origin_chunk_reply(&mut self, hash: ChunkHash) -> Message {
        let bytes = match self.origin.disk.read(&Key::Chunk(hash)) {
            Some(Stored {
                record: Record::Chunk(c),
                intact: true,
                ..
            }) => Some(c.bytes.clone()),
            _ => None,
        };
        if bytes.is_none() {
            self.origin.origin.chunk_lost(hash);
        }
        Message::ChunkReply { hash, bytes }
    }

    fn drain_origin(&mut self) {
        let slow = self.origin.slow;
        while let Some(action) = self.origin.origin.poll_action() {
            let action = match action {
                Action::ReadChunk { to, hash } => Action::Send {
                    to,
                    via: None,
                    msg: self.origin_chunk_reply(hash),
                },
                a => a,
            };
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
                    let mut arrivals = self.origin_transmit(t, link, bytes, slow);
                    // The bytes cross the link all the same; a tower reads no answer longer
                    // than the limit (the real one's HTTP client refuses it) and its
                    // request times out.
                    if bytes.saturating_sub(HTTP_HEAD) > self.sc.origin.answer_bytes_max {
                        arrivals.clear();
                    }
                    if !arrivals.is_empty() && !self.healed && self.buggify.fires(Site::LateReply) {
                        self.late_reply(t, &mut arrivals);
                    }
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
                // ReadChunk became a Send above.
                Action::Probe { .. } | Action::PowerOff { .. } | Action::ReadChunk { .. } => {}
            }
        }
        if self.origin.origin.is_failed() && self.origin.up && self.origin.failed_until.is_none() {
            // A write or fsync failed: it fails in place and is rebuilt from its store at
            // a later request (later each time it fails again before an fsync succeeds).
            self.fail_origin_in_place();
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
                    let mut arrivals = match self.towers[i].link_mut(link) {
                        Some(l) => l.transmit(now + delay, bytes, true, &mut self.net),
                        None => Vec::new(),
                    };
                    if matches!(msg, Message::ForwardOps { .. })
                        && !self.healed
                        && let Some(&last) = arrivals.last()
                        && self.buggify.fires(Site::LateDuplicate)
                    {
                        let after = self
                            .buggify
                            .log_uniform(Duration::from_secs(1), LATE_DUPLICATE_MAX);
                        self.trace_buggify(Site::LateDuplicate, 1 + i as u64, after);
                        arrivals.push(last + after);
                    }
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
                    // The probe's bytes cross the link as a real tower's do (counted, too
                    // few to queue behind).
                    self.observe(Obs::Transfer {
                        tower: i,
                        link,
                        bytes: sovereign_logic::protocol::probe_wire_size(outcome.reachable),
                    });
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
                // The origin's alone.
                Action::ReadChunk { .. } => {}
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
            // Converged: every carried item served at the origin's latest version, with
            // the origin's bytes — the same version number with other chunks (a version
            // the origin took back and handed out again) is not the origin's catalog.
            let ok = t.tower.as_ref().is_some_and(|tw| {
                let classes = &tw.config().classes;
                catalog.iter().all(|e| {
                    let carried = t.links.iter().any(|l| {
                        l.kind
                            .is_some_and(|k| classes.allows(k, e.manifest.priority))
                    });
                    !carried
                        || tw
                            .servable_manifest(&e.manifest.item)
                            .is_some_and(|m| m.version > e.manifest.version || *m == e.manifest)
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
            .all(|t| t.tower.as_ref().is_some_and(|x| x.outbox_len() == 0))
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

    /// Finish the run: end-of-run checks, KPIs, SLOs, the report.
    pub fn finish(mut self) -> RunReport {
        if !self.ended {
            self.end();
        }
        // The RPO is the durability checker's count (the rule lives there once).
        let rpo = self.oracles.rpo();
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
        let mut kpis = self.kpis.finish();
        kpis.rpo = rpo;
        kpis.violations = violations.len() as u64;
        kpis.apply_slo(&self.sc.slo);
        let slo = kpis.check(&self.sc.slo);
        let sometimes = self.reached();
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
            sometimes,
            branches: self.branches,
            trace,
        }
    }
}

#[cfg(test)]
mod tests;
