//! The tower: a community edge server's whole decision-making, as one sans-IO state machine.
//!
//! A [`Tower`] serves devices from its local store whatever its uplinks do, and syncs
//! content from the origin over the best working uplink. It never touches a socket, a
//! file or a clock: the driver feeds it inputs and carries out its [`Action`]s.
//!
//! # Call order (the driver's contract)
//! 1. Build with [`Tower::new`] (empty store), [`Tower::recover`] (from durable state), or
//!    [`Tower::recover_verified`] (durable state whose chunks the store verified and
//!    hands over as lengths only, so a big store's bytes need not be in memory).
//! 2. Feed inputs as they happen: [`Tower::handle_message`] (origin replies, device
//!    requests), [`Tower::handle_probe`], [`Tower::handle_power`],
//!    [`Tower::handle_write_done`], [`Tower::handle_fsync_done`], and
//!    [`Tower::handle_timeout`] once `now >= poll_timeout()`.
//! 3. After each input, drain [`Tower::poll_action`] until it returns `None` and carry
//!    the actions out in order (writes and fsyncs in issue order: an fsync covers every
//!    write issued before it).
//! 4. Serve device reads as [`read`] says: plan with [`Tower::serve_plan`] (or from a
//!    shared [`read::ReadView`], kept fresh with [`Tower::refresh_read_view`]), verify
//!    every chunk read from disk with [`crate::content::verify_chunk`], let
//!    [`read::ServePlan::decide`] answer, and hand a read that found rot to
//!    [`Tower::handle_read_result`].
//!
//! # Map
//! - [`link`]: probe hysteresis, failover/fail-back, per-link class policy.
//! - [`scheduler`]: strict P0, deficit round robin for P1–P3.
//! - [`throttle`]: AIMD window of chunk requests in flight.
//! - [`breaker`]: circuit breaker on calls to the origin.
//! - [`supervisor`]: restart budget for the sync tasks.
//! - [`power`]: load shedding and clean shutdown from battery state.
//! - [`warmer`]: demand tracking; popular items are queued first.
//! - [`events`]: bounded subscriber queues for content/link/power events.
//! - [`trust`]: the origin the tower trusts, mismatches, operator-ordered re-homes.
//! - [`read`]: the read path — planning a device read and deciding it from the driver's
//!   per-chunk verdicts.
//! - this file: the [`Tower`] that composes them, the device outbox and integrity rules.
//!
//! # Invariants kept here
//! - A chunk is kept only after its SHA-256 matches; it counts as held only once its
//!   write was fsynced; an item is servable only when its entry and all its chunks are.
//! - A device operation is acknowledged only after the fsync that covers its write
//!   completed; it leaves the outbox only when the origin confirmed it.
//! - While P0 work is queued or in flight, no request of a lower class is sent.
//! - Nothing is synced from an origin other than the trusted one (see [`trust`]).
//!
//! Not covered: HTTP, files, SQL (drivers); what the origin does (see [`crate::origin`]).

pub mod breaker;
pub mod events;
pub mod link;
pub mod power;
pub mod read;
pub mod scheduler;
pub mod supervisor;
pub mod throttle;
pub mod trust;
pub mod warmer;

use crate::content::{ChunkHash, ItemId, Manifest, Priority, missing_chunks};
use crate::entropy::SplitMix64;
use crate::io::{Action, DurableState, Event, Key, PowerMode, Record, TaskKind, WriteId};
use crate::origin::CATALOG_REPLY_ENTRIES_MAX;
use crate::protocol::{
    CatalogEntry, IdemKey, LinkKind, Message, OpOutcome, OpStatus, Operation, OriginId, Peer,
    SentEntry, SubmitReply, TowerId,
};
use crate::time::Time;
use breaker::{Breaker, BreakerConfig};
use events::EventGateway;
use link::{ClassPolicy, Failover, ProbeOutcome, ProbePolicy};
use power::{PowerManager, PowerReading, PowerThresholds};
use scheduler::{Scheduler, SchedulerConfig};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;
use supervisor::{Decision, Supervisor, SupervisorPolicy};
use throttle::{Throttle, ThrottleConfig};
use trust::Trust;
use warmer::Warmer;

/// Most keys one status request is answered for (the rest are ignored; the device asks
/// again).
pub const STATUS_KEYS_MAX: usize = 256;

/// Stale jobs the fetch queue may hold beyond twice the live ones before it is compacted
/// (jobs for chunks no longer wanted, see `Tower::compact_queue`).
const QUEUE_SLACK: usize = 64;

/// Everything a tower is configured with. The `bool` switches default to correct
/// behaviour; the simulator flips them to plant the bugs its oracles must catch.
#[derive(Clone, Debug)]
pub struct TowerConfig {
    /// This tower.
    pub id: TowerId,
    /// Its uplinks (any subset of fibre, LTE, satellite).
    pub links: Vec<LinkKind>,
    /// Probe interval and hysteresis for terrestrial links (fibre, LTE).
    pub probe: ProbePolicy,
    /// Probe policy for the satellite link (latency thresholds above a GEO RTT).
    pub probe_satellite: ProbePolicy,
    /// Return to a more preferred link once it is healthy again (`false`: planted
    /// `no-failback`).
    pub failback: bool,
    /// Leave an uplink that went down for the next one up (`false`: planted
    /// `no-failover`, the real tower's `--plant no-failover`).
    pub failover: bool,
    /// Which classes each link may carry.
    pub classes: ClassPolicy,
    /// Download scheduling.
    pub scheduler: SchedulerConfig,
    /// AIMD window.
    pub throttle: ThrottleConfig,
    /// Circuit breaker on origin calls.
    pub breaker: BreakerConfig,
    /// Restart budget for sync tasks.
    pub supervisor: SupervisorPolicy,
    /// Battery thresholds.
    pub power: PowerThresholds,
    /// Act on battery state (`false`: planted `ignore-battery`).
    pub power_managed: bool,
    /// Verify chunk hashes before keeping and serving (`false`: planted `skip-verify`).
    pub verify: bool,
    /// Acknowledge device operations only after fsync (`false`: planted `ack-before-fsync`).
    pub ack_after_fsync: bool,
    /// Serve devices while no uplink works (`false`: planted `offline-refuse`).
    pub serve_offline: bool,
    /// Refuse an operation whose key or `device` is not the presenting device's
    /// (`false`: planted `no-key-owner-check`).
    pub check_key_owner: bool,
    /// Refuse at the edge an operation the origin would reject (`false`: planted
    /// `no-edge-validation`).
    pub validate_ops: bool,
    /// Remember confirmed keys (`false`: planted `forget-confirmed`, the tower forgets a
    /// key once the origin confirmed it, so a reused key with another body is accepted).
    pub remember_confirmed: bool,
    /// How long a confirmed operation's key, fingerprint and outcome are remembered
    /// (measured in this tower's time: a restart starts the window again for what it
    /// recovers, so a key is remembered at least this long).
    pub confirmed_window: Duration,
    /// Bound on remembered confirmed operations; the oldest are forgotten first.
    pub confirmed_max: usize,
    /// Match a forward reply's receipts to operations by their keys. `false` = planted
    /// bug `receipts-by-position`: receipt `i` confirms operation `i` of the batch sent
    /// last, so a late reply to an earlier batch (answered after a timeout, a failover or a
    /// retry sent another batch) confirms operations the origin never received.
    pub correlate_receipts: bool,
    /// Check the identity the origin announces against the trusted one (see [`trust`]).
    /// `false` = planted bug: a different origin at the same address is synced from
    /// silently, as before origins had identities.
    pub check_origin: bool,
    /// How often to poll the origin's catalog.
    pub catalog_interval: Duration,
    /// A request to the origin that has not been answered after this long (plus the
    /// link's transfer time estimate) is a timeout.
    pub request_timeout: Duration,
    /// Operations per forward batch.
    pub forward_batch_max: usize,
    /// Bound on the device outbox (operations held).
    pub outbox_max: usize,
    /// Demand half-life for the cache warmer.
    pub warmer_half_life: Duration,
    /// How long the chunks of a version the tower moved past stay on disk before they are
    /// deleted (when no kept version uses them). A driver that plans device reads from a
    /// snapshot ([`read::ReadView`]) may still be reading the old version's chunks: every
    /// read must finish within this grace, or it finds a chunk gone and answers
    /// "repairing" (never wrong bytes).
    pub chunk_gc_grace: Duration,
}

impl TowerConfig {
    /// Defaults for a tower with the given uplinks.
    pub fn new(id: TowerId, links: &[LinkKind]) -> Self {
        TowerConfig {
            id,
            links: links.to_vec(),
            probe: ProbePolicy::default(),
            probe_satellite: ProbePolicy::satellite(),
            failback: true,
            failover: true,
            classes: ClassPolicy::default(),
            scheduler: SchedulerConfig::default(),
            throttle: ThrottleConfig::default(),
            breaker: BreakerConfig::default(),
            supervisor: SupervisorPolicy::default(),
            power: PowerThresholds::default(),
            power_managed: true,
            verify: true,
            ack_after_fsync: true,
            serve_offline: true,
            check_key_owner: true,
            validate_ops: true,
            remember_confirmed: true,
            confirmed_window: Duration::from_secs(30 * 86_400),
            confirmed_max: 200_000,
            check_origin: true,
            correlate_receipts: true,
            catalog_interval: Duration::from_secs(30),
            request_timeout: Duration::from_secs(20),
            forward_batch_max: 32,
            outbox_max: 100_000,
            warmer_half_life: Duration::from_secs(3600),
            chunk_gc_grace: Duration::from_secs(600),
        }
    }
}

/// Why a device read cannot be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The tower does not hold a complete, verified version of the item.
    NotHeld,
    /// The tower is shutting down or off.
    PoweredDown,
    /// Refused because no uplink works (only with the planted `offline-refuse`).
    Offline,
    /// A chunk of the item failed verification (or was missing) on this read: it is
    /// quarantined and being fetched again; retry later (see [`read`]).
    Repairing,
}

impl Refusal {
    /// A short reason for replies and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NotHeld => "not held",
            Refusal::PoweredDown => "powered down",
            Refusal::Offline => "offline",
            Refusal::Repairing => "repairing",
        }
    }
}

pub use read::ServePlan;

/// A point-in-time view of a tower for consoles, metrics and oracles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TowerStatus {
    /// The active uplink.
    pub active_link: Option<LinkKind>,
    /// Links currently considered up.
    pub links_up: Vec<LinkKind>,
    /// Power mode.
    pub power_mode: PowerMode,
    /// Items servable now.
    pub items_servable: u64,
    /// Items known but not yet complete.
    pub items_pending: u64,
    /// Verified, durable chunks.
    pub chunks_held: u64,
    /// Chunk requests queued per class.
    pub queued: [u64; 4],
    /// Chunk requests in flight.
    pub in_flight: u64,
    /// Operations held in the outbox (acknowledged or being made durable).
    pub outbox: u64,
    /// Confirmed operations remembered (key, fingerprint, outcome).
    pub confirmed: u64,
    /// AIMD window.
    pub window: u32,
    /// Failovers so far.
    pub failovers: u64,
    /// Breaker openings so far.
    pub breaker_openings: u64,
}

/// How the reason of a [`SubmitReply::Retry`] begins when the fsync that was to make the
/// operation durable failed: the store discarded the write, but a failed commit may still
/// have reached the disk, so the device must treat the outcome as unknown and retry with
/// the same idempotency key (which makes the retry safe). A failed write stored nothing:
/// its reason begins with [`RETRY_NOT_STORED`].
pub const RETRY_OUTCOME_UNKNOWN: &str = "outcome unknown";
/// How the reason of a [`SubmitReply::Retry`] begins when the operation's write itself
/// failed (nothing was stored).
pub const RETRY_NOT_STORED: &str = "not stored";

/// What an issued write or delete was for, so that its completion can be acted on.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Purpose {
    /// A verified chunk; `bytes` for accounting.
    Chunk(ChunkHash),
    /// A catalog entry (item, version).
    Entry(ItemId, u64),
    /// A device operation entering the outbox.
    Outbox(IdemKey),
    /// The record of the trusted origin (re-issued if it fails).
    Trust,
    /// The delete of an item's entry that a re-home withdrew (re-issued if it fails).
    Drop(ItemId),
    /// A delete we do not track (confirmed ops, quarantined chunks).
    Untracked,
}

/// The state of one operation in the tower's outbox.
#[derive(Clone, Debug)]
struct OutboxEntry {
    op: Operation,
    /// Insertion order: forwarding is oldest first.
    seq: u64,
    /// The fsync covering the write completed: acknowledged and forwardable.
    durable: bool,
    /// Devices waiting for the acknowledgement (the submitter and duplicates).
    waiting: BTreeSet<crate::protocol::DeviceId>,
}

/// A chunk request on the wire.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    class: Priority,
    deadline: Time,
    /// The uplink the request went over (bytes are charged to it).
    link: LinkKind,
}

/// Per-item sync state.
#[derive(Clone, Debug)]
struct ItemState {
    /// The latest entry known (durable or being written).
    entry: CatalogEntry,
    /// The entry's record is durable.
    entry_durable: bool,
    /// Chunks of `entry` not yet held.
    missing: BTreeSet<ChunkHash>,
    /// The servable version, if any (may be older than `entry` while a newer syncs).
    servable: Option<Manifest>,
    /// The servable version was lost to a quarantine and the item has not been servable
    /// since: reads answer "repairing", not "not held" (not durable: a restart forgets it).
    repairing: bool,
}

impl ItemState {
    /// The chunks the item's versions name: its latest entry's and its servable one's.
    fn chunk_hashes(&self) -> impl Iterator<Item = ChunkHash> + '_ {
        self.entry
            .manifest
            .chunks
            .iter()
            .chain(self.servable.iter().flat_map(|m| m.chunks.iter()))
            .map(|c| c.hash)
    }
}

/// A confirmed operation remembered, and when it is forgotten.
#[derive(Clone, Debug)]
struct Remembered {
    op: crate::io::ConfirmedOp,
}

/// A forward batch on the wire.
#[derive(Clone, Debug)]
struct ForwardInFlight {
    deadline: Time,
}

/// The tower state machine. See the module documentation for the call order.
pub struct Tower {
    config: TowerConfig,
    rng: SplitMix64,
    failover: Failover,
    scheduler: Scheduler<ChunkHash>,
    throttle: Throttle,
    breaker: Breaker,
    supervisor: Supervisor,
    power: PowerManager,
    warmer: Warmer,
    gateway: EventGateway,

    items: BTreeMap<ItemId, ItemState>,
    /// Verified chunks whose write an fsync has covered, with their lengths.
    held: BTreeMap<ChunkHash, u32>,
    /// Verified chunks written but not yet covered by a completed fsync.
    writing: BTreeSet<ChunkHash>,
    /// Chunks some item is missing → the most urgent class that wants them and their length.
    wanted: BTreeMap<ChunkHash, (Priority, u32)>,
    /// Which items wait for a chunk.
    waiters: BTreeMap<ChunkHash, BTreeSet<ItemId>>,
    in_flight: BTreeMap<ChunkHash, InFlight>,
    /// The highest catalog seq whose entry is durable here.
    catalog_cursor: u64,
    catalog_deadline: Option<Time>,
    next_catalog_at: Time,
    /// An entry sent as changes could not be rebuilt here: the next poll asks for whole
    /// manifests (once).
    catalog_whole: bool,

    outbox: BTreeMap<IdemKey, OutboxEntry>,
    outbox_order: BTreeMap<u64, IdemKey>,
    outbox_seq: u64,
    forward: Option<ForwardInFlight>,
    /// The keys of the forward batch sent last, in order (read only by the planted
    /// `receipts-by-position`).
    last_batch: Vec<IdemKey>,
    /// Confirmed operations remembered, by key.
    confirmed: BTreeMap<IdemKey, Remembered>,
    /// The same, by confirmation seq (oldest first), with when each is forgotten: what
    /// to forget first. `until` grows with the seq, so the first entry is the next due.
    confirmed_order: BTreeMap<u64, (Time, IdemKey)>,
    confirmed_seq: u64,

    actions: VecDeque<Action>,
    next_write: u64,
    /// Writes issued since the last fsync, in order.
    unsynced: Vec<(WriteId, Purpose)>,
    /// Issued fsyncs and the writes each covers.
    fsyncs: BTreeMap<WriteId, Vec<(WriteId, Purpose)>>,
    /// Chunk jobs the bounded scheduler had no room for; re-queued as room frees up.
    overflow: BTreeSet<ChunkHash>,
    /// Chunks of versions the tower moved past, with when they may be deleted (now + the
    /// grace when they were retired), oldest first: `collect_chunks` deletes those no
    /// kept version uses by then. Not durable: a restart retires every unused chunk.
    retired: VecDeque<(Time, Vec<ChunkHash>)>,
    /// Catalog entries whose write failed; written again when sync may run.
    rewrite: BTreeSet<ItemId>,
    next_probe_at: BTreeMap<LinkKind, Time>,
    /// Set once a clean shutdown began; the id of the final fsync.
    shutdown_fsync: Option<WriteId>,
    now: Time,
    /// Bumped whenever an item's servable version may have changed (see
    /// [`Tower::serve_epoch`]).
    serve_epoch: u64,

    /// The origin trusted, or a re-home in progress (see [`trust`]).
    trust: Trust,
    /// While another origin answers in place of the trusted one: (expected, found).
    origin_mismatch: Option<(OriginId, Option<OriginId>)>,
    /// A finished re-home whose trust record waits for the reconciliation's writes.
    rehome_settle: Option<OriginId>,
    /// The `since_seq` of the catalog request in flight, when it was a re-home page.
    catalog_rehome_since: Option<u64>,
    /// Entry deletes of a re-home that failed; issued again when sync may run.
    redrop: BTreeSet<ItemId>,
    /// The trust record's write failed; written again on the next pump.
    trust_rewrite: bool,
}

impl Tower {
    /// A tower with an empty store, booting at `now`. `seed` feeds its jitter (the driver
    /// derives it from the run's seed, or from the OS once, outside the logic).
    pub fn new(config: TowerConfig, seed: u64, now: Time) -> Tower {
        let mut tower = Tower::build(config, seed, now);
        tower.pump();
        tower
    }

    /// The state of a tower that holds nothing yet, without starting any work.
    fn build(config: TowerConfig, seed: u64, now: Time) -> Tower {
        let failover = Failover::new(&config.links, config.probe.clone(), config.failback)
            .with_link_policy(LinkKind::Satellite, config.probe_satellite.clone())
            .with_failover(config.failover);
        let mut next_probe_at = BTreeMap::new();
        for link in failover.links() {
            // All uplinks are probed together: one wake-up per interval, not one per link.
            next_probe_at.insert(link, now);
        }
        Tower {
            rng: SplitMix64::new(seed),
            failover,
            scheduler: Scheduler::new(config.scheduler.clone()),
            throttle: Throttle::new(config.throttle.clone()),
            breaker: Breaker::new(config.breaker.clone()),
            supervisor: Supervisor::new(config.supervisor.clone()),
            power: PowerManager::new(config.power.clone(), config.power_managed, now),
            warmer: Warmer::new(config.warmer_half_life, 10_000),
            gateway: EventGateway::new(64),
            items: BTreeMap::new(),
            held: BTreeMap::new(),
            writing: BTreeSet::new(),
            wanted: BTreeMap::new(),
            waiters: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            catalog_cursor: 0,
            catalog_deadline: None,
            next_catalog_at: now,
            catalog_whole: false,
            outbox: BTreeMap::new(),
            outbox_order: BTreeMap::new(),
            outbox_seq: 0,
            forward: None,
            last_batch: Vec::new(),
            confirmed: BTreeMap::new(),
            confirmed_order: BTreeMap::new(),
            confirmed_seq: 0,
            actions: VecDeque::new(),
            next_write: 1,
            unsynced: Vec::new(),
            fsyncs: BTreeMap::new(),
            next_probe_at,
            shutdown_fsync: None,
            overflow: BTreeSet::new(),
            retired: VecDeque::new(),
            rewrite: BTreeSet::new(),
            now,
            serve_epoch: 0,
            trust: Trust::Unset,
            origin_mismatch: None,
            rehome_settle: None,
            catalog_rehome_since: None,
            redrop: BTreeSet::new(),
            trust_rewrite: false,
            config,
        }
    }

    /// Rebuild a tower from its durable state alone (what was fsynced before a crash or a
    /// clean shutdown). Every stored chunk is verified: a mismatch is quarantined (deleted
    /// and fetched again). Entries resume syncing their missing chunks; outbox operations
    /// are acknowledged already and will be forwarded.
    pub fn recover(config: TowerConfig, seed: u64, now: Time, durable: &DurableState) -> Tower {
        Tower::recover_verified(config, seed, now, durable, &BTreeMap::new())
    }

    /// [`Tower::recover`] for a driver whose store already verified its chunks at start-up
    /// (read, hashed against the address, quarantined on a mismatch) and hands over only
    /// the survivors' lengths in `verified`: the tower keeps nothing but `hash -> len` of a
    /// held chunk, so its bytes need not be in memory at once. `durable` may still carry
    /// chunk records; those are verified here as in [`Tower::recover`] (one listed in both
    /// counts once, as its record says).
    pub fn recover_verified(
        config: TowerConfig,
        seed: u64,
        now: Time,
        durable: &DurableState,
        verified: &BTreeMap<ChunkHash, u32>,
    ) -> Tower {
        Tower::recover_from(config, seed, now, durable.values(), verified)
    }

    /// [`Tower::recover_verified`] from durable records the driver lends in key order (a
    /// `DurableState`'s values, or a simulated disk's own map), so that a restart copies
    /// nothing but what the tower keeps.
    pub fn recover_from<'a, I>(
        config: TowerConfig,
        seed: u64,
        now: Time,
        durable: I,
        verified: &BTreeMap<ChunkHash, u32>,
    ) -> Tower
    where
        I: IntoIterator<Item = &'a Record>,
        I::IntoIter: Clone,
    {
        let durable = durable.into_iter();
        let verify = config.verify;
        let mut tower = Tower::build(config, seed, now);
        // `held` is a map: inserting these first leaves the order of everything the loop
        // below emits (quarantines) as it was.
        tower
            .held
            .extend(verified.iter().map(|(h, len)| (*h, *len)));
        let mut quarantined = 0u64;
        for record in durable.clone() {
            match record {
                Record::Chunk(chunk) => {
                    if !verify || crate::content::verify_chunk(&chunk.hash, &chunk.bytes) {
                        tower.held.insert(chunk.hash, chunk.bytes.len() as u32);
                    } else {
                        quarantined += 1;
                        tower.held.remove(&chunk.hash);
                        tower.quarantine(chunk.hash);
                    }
                }
                Record::Entry(entry) => {
                    tower.catalog_cursor = tower.catalog_cursor.max(entry.seq);
                }
                Record::Outbox(op) => {
                    tower.outbox_seq += 1;
                    tower.outbox_order.insert(tower.outbox_seq, op.key.clone());
                    tower.outbox.insert(
                        op.key.clone(),
                        OutboxEntry {
                            op: op.clone(),
                            seq: tower.outbox_seq,
                            durable: true,
                            waiting: BTreeSet::new(),
                        },
                    );
                }
                Record::Confirmed(c) => {
                    tower.confirmed_seq = tower.confirmed_seq.max(c.seq);
                    let until = now + tower.config.confirmed_window;
                    tower.confirmed_order.insert(c.seq, (until, c.key.clone()));
                    tower
                        .confirmed
                        .insert(c.key.clone(), Remembered { op: c.clone() });
                }
                Record::TrustedOrigin(Some(id)) => tower.trust = Trust::Trusted(*id),
                // A re-home was ordered and not finished: it starts over.
                Record::TrustedOrigin(None) => {
                    tower.trust = Trust::Rehoming(trust::Rehome::default());
                }
                Record::Applied { .. } | Record::Identity(_) | Record::Awaiting(_) => {
                    debug_assert!(
                        false,
                        "a tower never stores the origin's or a device's records"
                    );
                }
            }
        }
        // Entries after chunks so that `missing` reflects what survived verification.
        for record in durable {
            if let Record::Entry(entry) = record {
                tower.adopt_entry(entry.clone(), true);
            }
        }
        // Chunks no entry names (versions moved past before the crash, whose deletes were
        // not done or not durable) go after the grace like any other.
        let held: Vec<ChunkHash> = tower.held.keys().copied().collect();
        tower.retire(held);
        let event = Event::Recovered {
            chunks: tower.held.len() as u64,
            quarantined,
            outbox: tower.outbox.len() as u64,
        };
        tower.emit(event);
        tower.pump();
        tower
    }

    // ----- inputs ---------------------------------------------------------------------

    /// A message from the origin (a reply) or from a device (a request).
    pub fn handle_message(&mut self, now: Time, from: Peer, msg: Message) {
        self.advance(now);
        if self.power.mode() == PowerMode::Off {
            return; // a powered-off tower hears nothing
        }
        match (from, msg) {
            (
                Peer::Origin,
                Message::CatalogReply {
                    entries,
                    origin,
                    more,
                },
            ) => self.on_catalog_reply(origin, entries, more),
            // Sent before a mismatch was noticed, answered by who knows: the operations
            // stay in the outbox and go to the trusted origin later (see `trust`).
            (Peer::Origin, Message::ForwardReply { .. }) if self.origin_mismatch.is_some() => {
                self.forward = None;
                self.origin_answered();
            }
            (Peer::Origin, Message::ChunkReply { hash, bytes }) => self.on_chunk(hash, bytes),
            (Peer::Origin, Message::ForwardReply { receipts }) => self.on_forward_reply(receipts),
            (Peer::Device(device), Message::SubmitOp { op }) => self.on_submit(device, op),
            (Peer::Device(device), Message::StatusRequest { keys }) => {
                let statuses = keys
                    .into_iter()
                    .take(STATUS_KEYS_MAX)
                    .map(|k| {
                        let status = self.op_status(device, &k);
                        (k, status)
                    })
                    .collect();
                self.actions.push_back(Action::Send {
                    to: Peer::Device(device),
                    via: None,
                    msg: Message::StatusReply { statuses },
                });
            }
            _ => {} // anything else is not for a tower; drivers answer reads via serve_plan
        }
        self.pump();
    }

    /// A probe of `link` completed.
    pub fn handle_probe(&mut self, now: Time, link: LinkKind, outcome: ProbeOutcome) {
        self.advance(now);
        if self.power.mode() == PowerMode::Off {
            return;
        }
        let events = self.failover.observe(now, link, &outcome);
        self.on_link_events(events);
        self.pump();
    }

    /// A power telemetry reading arrived.
    pub fn handle_power(&mut self, now: Time, reading: PowerReading) {
        self.advance(now);
        if let Some((from, to)) = self.power.handle_reading(now, reading) {
            self.on_power_mode(from, to);
        }
        self.pump();
    }

    /// A write or delete completed. `Err` means it did not happen (or cannot be trusted).
    pub fn handle_write_done(&mut self, now: Time, id: WriteId, result: Result<(), String>) {
        self.advance(now);
        if let Err(reason) = result {
            // The write is not on disk: no fsync may count it. Undo what it was for,
            // whether or not its covering fsync was already issued.
            let mut failed = None;
            if let Some(pos) = self.unsynced.iter().position(|(w, _)| *w == id) {
                failed = Some(self.unsynced.remove(pos).1);
            } else {
                for covered in self.fsyncs.values_mut() {
                    if let Some(pos) = covered.iter().position(|(w, _)| *w == id) {
                        failed = Some(covered.remove(pos).1);
                        break;
                    }
                }
            }
            if let Some(purpose) = failed {
                // Storage trouble stalls the sync under supervision (backoff, then a
                // park), instead of refetching bytes the disk cannot keep in a tight loop.
                let sync_write = matches!(purpose, Purpose::Chunk(_) | Purpose::Entry(..));
                let reason = format!("{RETRY_NOT_STORED}: the write failed: {reason}");
                self.on_not_durable(purpose, &reason);
                if sync_write {
                    let decision = self
                        .supervisor
                        .on_failure(now, TaskKind::Fetch, &mut self.rng);
                    self.on_supervision(decision);
                }
            }
        }
        self.pump();
    }

    /// An fsync completed. `Ok`: every write issued before it is durable. `Err`: none of
    /// the writes it covered can be trusted (fsyncgate) — they are treated as lost.
    pub fn handle_fsync_done(&mut self, now: Time, id: WriteId, result: Result<(), String>) {
        self.advance(now);
        let purposes = self.fsyncs.remove(&id).unwrap_or_default();
        match result {
            Ok(()) => {
                for (_, purpose) in purposes {
                    self.on_durable(purpose);
                }
            }
            Err(reason) => {
                // The store discarded these writes, but a commit that failed may have
                // reached the disk anyway: what a device is told is "unknown".
                let reason = format!("{RETRY_OUTCOME_UNKNOWN}: the commit failed: {reason}");
                for (_, purpose) in purposes {
                    self.on_not_durable(purpose, &reason);
                }
                let decision = self
                    .supervisor
                    .on_failure(now, TaskKind::Fetch, &mut self.rng);
                self.on_supervision(decision);
            }
        }
        self.settle_rehome();
        if self.shutdown_fsync == Some(id) {
            self.finish_shutdown();
        }
        self.pump();
    }

    /// Timers: probes, request deadlines, catalog polls, power telemetry watchdog,
    /// breaker and supervisor wake-ups. Call when `now >= poll_timeout()`.
    pub fn handle_timeout(&mut self, now: Time) {
        self.advance(now);
        if self.power.mode() == PowerMode::Off {
            return;
        }
        if let Some((from, to)) = self.power.handle_tick(now) {
            self.on_power_mode(from, to);
        }
        // Clear waits that have ended so that poll_timeout never reports a past time.
        self.breaker.handle_timeout(now);
        self.supervisor.handle_timeout(now);
        let due: Vec<LinkKind> = self
            .next_probe_at
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(l, _)| *l)
            .collect();
        for link in due {
            self.next_probe_at
                .insert(link, now + self.config.probe.interval);
            if self.power.mode() < PowerMode::ShuttingDown {
                self.actions.push_back(Action::Probe { link });
            }
        }
        let expired: Vec<ChunkHash> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(h, _)| *h)
            .collect();
        if !expired.is_empty() {
            for hash in &expired {
                if self.in_flight.remove(hash).is_some() {
                    self.requeue(*hash);
                }
            }
            self.on_origin_failure();
            if let Some(w) = self.throttle.on_loss(now) {
                self.emit(Event::Throttle { window: w });
            }
        }
        if self.catalog_deadline.is_some_and(|d| d <= now) {
            self.catalog_deadline = None;
            self.on_origin_failure();
        }
        if self.forward.as_ref().is_some_and(|f| f.deadline <= now) {
            self.forward = None;
            self.on_origin_failure();
        }
        self.forget_confirmed(now);
        self.collect_chunks(now);
        self.pump();
    }

    /// The earliest time at which [`Tower::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Time> {
        if self.power.mode() == PowerMode::Off {
            return None;
        }
        let mut t = Time::MAX;
        let mut take = |x: Option<Time>| {
            if let Some(x) = x {
                t = t.min(x);
            }
        };
        take(self.next_probe_at.values().min().copied());
        take(self.in_flight.values().map(|f| f.deadline).min());
        take(self.catalog_deadline);
        take(self.forward.as_ref().map(|f| f.deadline));
        take(self.power.next_timeout());
        take(self.breaker.next_timeout());
        take(self.supervisor.next_timeout());
        take(
            self.confirmed_order
                .first_key_value()
                .map(|(_, (until, _))| *until),
        );
        take(self.retired.front().map(|(at, _)| *at));
        // A catalog poll that is due but blocked (breaker, supervisor) is woken by the
        // blocker's own timer; only a future poll needs a timer of its own.
        if self.catalog_deadline.is_none()
            && self.failover.active().is_some()
            && self.next_catalog_at > self.now
        {
            take(Some(self.next_catalog_at));
        }
        (t != Time::MAX).then_some(t)
    }

    /// The next action for the driver, in issue order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    // ----- device reads ---------------------------------------------------------------

    /// Plan a device read of `item`: the manifest of its servable version (the rule is
    /// [`read`]'s, shared with [`read::ReadView::plan`]). Records demand for the cache
    /// warmer either way.
    pub fn serve_plan(&mut self, now: Time, item: &ItemId) -> Result<ServePlan, Refusal> {
        self.note_request(now, item);
        let state = self.items.get(item);
        read::plan(
            self.read_refusal(),
            state
                .and_then(|s| s.servable.clone())
                .map(std::sync::Arc::new),
            state.is_some_and(|s| s.repairing),
            self.config.verify,
        )
    }

    /// A snapshot of what planning reads needs ([`read::ReadView`]), for drivers that plan
    /// reads from a shared copy on many tasks at once.
    pub fn read_view(&self) -> read::ReadView {
        read::ReadView {
            refusal: self.read_refusal(),
            epoch: self.serve_epoch,
            verify: self.config.verify,
            items: std::sync::Arc::new(
                self.items
                    .iter()
                    .filter_map(|(id, s)| {
                        s.servable
                            .as_ref()
                            .map(|m| (id.clone(), std::sync::Arc::new(m.clone())))
                    })
                    .collect(),
            ),
            repairing: std::sync::Arc::new(
                self.items
                    .iter()
                    .filter(|(_, s)| s.repairing)
                    .map(|(id, _)| id.clone())
                    .collect(),
            ),
        }
    }

    /// `current` brought up to date: `None` when it still answers every read as
    /// [`Tower::serve_plan`] would; otherwise a new view, sharing `current`'s servable set
    /// when only the refusal moved.
    pub fn refresh_read_view(&self, current: &read::ReadView) -> Option<read::ReadView> {
        let refusal = self.read_refusal();
        if current.refusal == refusal && current.epoch == self.serve_epoch {
            return None;
        }
        if current.epoch == self.serve_epoch {
            return Some(read::ReadView {
                refusal,
                ..current.clone()
            });
        }
        Some(self.read_view())
    }

    /// The driver read a planned item and [`read::ServePlan::decide`] answered: a
    /// [`read::ReadOutcome::Repair`] quarantines every chunk it lists (delete, fetch
    /// again) and stops serving the items that need them until they are back. A served
    /// read changes nothing.
    pub fn handle_read_result(&mut self, now: Time, outcome: &read::ReadOutcome) {
        if let read::ReadOutcome::Repair { rotten } = outcome {
            for hash in rotten {
                self.report_corrupt(now, *hash);
            }
        }
    }

    /// Why every device read is refused right now, whatever the item (power-down, or
    /// offline with the planted `offline-refuse`); `None` when reads of servable items are
    /// served. [`Tower::serve_plan`] checks this before the item.
    pub fn read_refusal(&self) -> Option<Refusal> {
        if self.power.mode() >= PowerMode::ShuttingDown {
            return Some(Refusal::PoweredDown);
        }
        if !self.config.serve_offline && self.failover.active().is_none() {
            return Some(Refusal::Offline);
        }
        None
    }

    /// Record a device read of `item` for the cache warmer, without planning it (a driver
    /// that plans reads from its own copy of the servable set, see [`Tower::serve_epoch`],
    /// reports them here, possibly in batches).
    pub fn note_request(&mut self, now: Time, item: &ItemId) {
        self.advance(now);
        self.warmer.record_request(now, item);
    }

    /// A number that changes whenever the servable version of some item may have changed
    /// (a version became servable, one stopped being servable, an entry was adopted). A
    /// driver that serves reads from a copy of [`Tower::servable_manifests`] rebuilds it
    /// when this moves; power mode and uplink, the other inputs of [`Tower::serve_plan`],
    /// have their own accessors.
    pub fn serve_epoch(&self) -> u64 {
        self.serve_epoch
    }

    /// A chunk read from the store failed verification: quarantine it (delete, fetch
    /// again) and stop serving the items that need it until it is back (their reads
    /// answer [`Refusal::Repairing`] meanwhile).
    pub fn report_corrupt(&mut self, now: Time, hash: ChunkHash) {
        self.advance(now);
        if self.held.remove(&hash).is_none() {
            return;
        }
        self.quarantine(hash);
        let affected: Vec<ItemId> = self
            .items
            .iter()
            .filter(|(_, s)| {
                s.servable
                    .as_ref()
                    .is_some_and(|m| m.chunks.iter().any(|c| c.hash == hash))
                    || s.entry.manifest.chunks.iter().any(|c| c.hash == hash)
            })
            .map(|(id, _)| id.clone())
            .collect();
        let mut retired = Vec::new();
        for id in affected {
            let Some(state) = self.items.get_mut(&id) else {
                continue;
            };
            if state
                .servable
                .as_ref()
                .is_some_and(|m| m.chunks.iter().any(|c| c.hash == hash))
            {
                if let Some(old) = state.servable.take() {
                    retired.extend(old.chunks.iter().map(|c| c.hash));
                }
                state.repairing = true;
                self.serve_epoch += 1;
            }
            if state.entry.manifest.chunks.iter().any(|c| c.hash == hash) {
                state.missing.insert(hash);
                let class = state.entry.manifest.priority;
                let len = state
                    .entry
                    .manifest
                    .chunks
                    .iter()
                    .find(|c| c.hash == hash)
                    .map_or(0, |c| c.len);
                self.waiters.entry(hash).or_default().insert(id.clone());
                self.want(hash, class, len);
            }
        }
        self.retire(retired);
        self.pump();
    }

    // ----- queries --------------------------------------------------------------------

    /// This tower's configuration.
    pub fn config(&self) -> &TowerConfig {
        &self.config
    }

    /// Whether chunk bytes are verified (drivers verify on read only if so; `false` is the
    /// planted `skip-verify`).
    pub fn verifies(&self) -> bool {
        self.config.verify
    }

    /// A summary for consoles and metrics.
    pub fn status(&self) -> TowerStatus {
        let mut queued = [0u64; 4];
        for class in Priority::ALL {
            queued[class.index()] = self.scheduler.len_class(class) as u64;
        }
        TowerStatus {
            active_link: self.failover.active(),
            links_up: self
                .failover
                .links()
                .into_iter()
                .filter(|l| self.failover.health(*l).is_some_and(|h| h.is_up()))
                .collect(),
            power_mode: self.power.mode(),
            items_servable: self.items.values().filter(|s| s.servable.is_some()).count() as u64,
            items_pending: self
                .items
                .values()
                .filter(|s| !s.missing.is_empty())
                .count() as u64,
            chunks_held: self.held.len() as u64,
            queued,
            in_flight: self.in_flight.len() as u64,
            outbox: self.outbox.len() as u64,
            confirmed: self.confirmed.len() as u64,
            window: self.throttle.window(),
            failovers: self.failover.failovers(),
            breaker_openings: self.breaker.openings(),
        }
    }

    /// The sync tasks the supervisor has parked at `now` (restart budget spent): a tower
    /// in this state is not ready, whatever its links say.
    pub fn parked(&self, now: Time) -> Vec<TaskKind> {
        TaskKind::ALL
            .iter()
            .copied()
            .filter(|t| self.supervisor.is_parked(now, *t))
            .collect()
    }

    /// The servable version of every item (item → version).
    pub fn servable(&self) -> BTreeMap<ItemId, u64> {
        self.items
            .iter()
            .filter_map(|(id, s)| s.servable.as_ref().map(|m| (id.clone(), m.version)))
            .collect()
    }

    /// The manifest of `item`'s servable version, if it has one.
    pub fn servable_manifest(&self, item: &ItemId) -> Option<&Manifest> {
        self.items.get(item).and_then(|s| s.servable.as_ref())
    }

    /// Operations held in the outbox ([`TowerStatus::outbox`] without building the rest
    /// of the status, which counts every item).
    pub fn outbox_len(&self) -> u64 {
        self.outbox.len() as u64
    }

    /// The last power telemetry reading, if any arrived.
    pub fn power_reading(&self) -> Option<power::PowerReading> {
        self.power.last_reading()
    }

    /// The manifest of every servable version, in item order (what a device's catalog
    /// lists). Unlike [`Tower::serve_plan`] this records no demand.
    pub fn servable_manifests(&self) -> Vec<Manifest> {
        self.items
            .values()
            .filter_map(|s| s.servable.clone())
            .collect()
    }

    /// Whether the chunk is held (verified and durable).
    pub fn holds_chunk(&self, hash: &ChunkHash) -> bool {
        self.held.contains_key(hash)
    }

    /// Keys of the operations in the outbox that are acknowledged (durable).
    pub fn outbox_acked(&self) -> Vec<IdemKey> {
        self.outbox
            .values()
            .filter(|e| e.durable)
            .map(|e| e.op.key.clone())
            .collect()
    }

    /// The class of the chunk request in flight for `hash` (`None`: none in flight).
    /// Drivers that queue requests order them by it.
    pub fn in_flight_class(&self, hash: &ChunkHash) -> Option<Priority> {
        self.in_flight.get(hash).map(|f| f.class)
    }

    /// Whether P0 work is queued or in flight (the priority oracle's "P0 waiting").
    pub fn p0_waiting(&self) -> bool {
        self.scheduler.has_waiting(Priority::P0)
            || self.in_flight.values().any(|f| f.class == Priority::P0)
    }

    /// The current power mode.
    pub fn power_mode(&self) -> PowerMode {
        self.power.mode()
    }

    /// The active uplink.
    pub fn active_link(&self) -> Option<LinkKind> {
        self.failover.active()
    }

    /// The failover state (health per link).
    pub fn failover(&self) -> &Failover {
        &self.failover
    }

    /// The event gateway (subscribe, poll).
    pub fn gateway(&mut self) -> &mut EventGateway {
        &mut self.gateway
    }

    // ----- internals ------------------------------------------------------------------

    fn advance(&mut self, now: Time) {
        // A clock jumping backwards is a fault the simulator injects; never go back.
        self.now = self.now.max(now);
    }

    fn emit(&mut self, event: Event) {
        self.gateway.publish(self.now, &event);
        self.actions.push_back(Action::Emit(event));
    }

    fn write(&mut self, record: Record, purpose: Purpose) -> WriteId {
        let id = WriteId(self.next_write);
        self.next_write += 1;
        self.actions.push_back(Action::Write { id, record });
        self.unsynced.push((id, purpose));
        id
    }

    fn delete(&mut self, key: Key) {
        let id = WriteId(self.next_write);
        self.next_write += 1;
        self.actions.push_back(Action::Delete { id, key });
        self.unsynced.push((id, Purpose::Untracked));
    }

    /// Group commit: one fsync covers every write issued since the last one.
    fn fsync(&mut self) -> Option<WriteId> {
        if self.unsynced.is_empty() {
            return None;
        }
        let id = WriteId(self.next_write);
        self.next_write += 1;
        let covered: Vec<(WriteId, Purpose)> = self.unsynced.drain(..).collect();
        self.fsyncs.insert(id, covered);
        self.actions.push_back(Action::Fsync { id });
        Some(id)
    }

    fn quarantine(&mut self, hash: ChunkHash) {
        self.delete(Key::Chunk(hash));
        self.emit(Event::ChunkQuarantined { hash });
    }

    /// Some item needs `hash` at `class`: queue it unless it is held, being written, or
    /// already queued at least as urgently.
    fn want(&mut self, hash: ChunkHash, class: Priority, len: u32) {
        if self.held.contains_key(&hash) || self.writing.contains(&hash) {
            return;
        }
        match self.wanted.get_mut(&hash) {
            None => {
                self.wanted.insert(hash, (class, len));
                self.enqueue(hash, class, len);
            }
            Some(w) if class < w.0 => {
                // More urgent now: a second, more urgent job; the stale one is skipped
                // when popped (see `pump_fetch`).
                w.0 = class;
                self.enqueue(hash, class, len);
            }
            Some(_) => {}
        }
    }

    /// Put a wanted chunk back in the queue (after a timeout, a rejected reply, a failed
    /// write), at the class it is wanted at.
    fn requeue(&mut self, hash: ChunkHash) {
        if let Some(&(class, len)) = self.wanted.get(&hash) {
            self.enqueue(hash, class, len);
        }
    }

    fn enqueue(&mut self, hash: ChunkHash, class: Priority, len: u32) {
        if self.scheduler.push(class, hash, u64::from(len)).is_err() {
            self.overflow.insert(hash);
        }
    }

    /// Take a catalog entry as the item's latest: compute its delta and queue it.
    fn adopt_entry(&mut self, entry: CatalogEntry, durable: bool) {
        let item = entry.manifest.item.clone();
        // The item's previous state, taken out whole (it is replaced below): no copy of
        // its missing set.
        let previous = self.items.remove(&item);
        let previous_servable = previous.as_ref().and_then(|s| s.servable.clone());
        let repairing = previous.as_ref().is_some_and(|s| s.repairing);
        // The entry it replaces is retired (its chunks go after the grace unless a kept
        // version names them: the servable one still may).
        let mut retired: Vec<ChunkHash> = previous
            .as_ref()
            .map(|s| s.entry.manifest.chunks.iter().map(|c| c.hash).collect())
            .unwrap_or_default();
        let previous_missing = previous.map(|s| s.missing).unwrap_or_default();
        let missing: BTreeSet<ChunkHash> =
            missing_chunks(&entry.manifest, |h| self.held.contains_key(h))
                .into_iter()
                .map(|c| c.hash)
                .collect();
        let class = entry.manifest.priority;
        let lens: Vec<(ChunkHash, u32)> = entry
            .manifest
            .chunks
            .iter()
            .filter(|c| missing.contains(&c.hash))
            .map(|c| (c.hash, c.len))
            .collect();
        let complete_now = missing.is_empty() && durable;
        if complete_now && let Some(old) = &previous_servable {
            retired.extend(old.chunks.iter().map(|c| c.hash));
        }
        let manifest = entry.manifest.clone();
        self.serve_epoch += 1;
        self.items.insert(
            item.clone(),
            ItemState {
                entry,
                entry_durable: durable,
                missing,
                servable: if complete_now {
                    Some(manifest)
                } else {
                    previous_servable
                },
                repairing,
            },
        );
        for (hash, len) in lens {
            self.waiters.entry(hash).or_default().insert(item.clone());
            self.want(hash, class, len);
        }
        self.release_superseded(&item, previous_missing);
        self.retire(retired);
        if complete_now {
            self.mark_servable(&item);
        }
    }

    /// `item` moved to a newer entry: the chunks only its previous entry missed are no
    /// longer wanted for it, and one that no other item waits for leaves the fetch queue
    /// (it is not fetched, and not kept waiting forever on a link whose class policy never
    /// carries it — satellite and P2/P3). A chunk being written stays wanted, so that it
    /// is recorded as held when its write is durable.
    fn release_superseded(&mut self, item: &ItemId, previous_missing: BTreeSet<ChunkHash>) {
        let Some(state) = self.items.get(item) else {
            return;
        };
        let mut released = false;
        for hash in previous_missing {
            if state.missing.contains(&hash) {
                continue;
            }
            let Some(waiting) = self.waiters.get_mut(&hash) else {
                continue;
            };
            waiting.remove(item);
            if !waiting.is_empty() {
                continue;
            }
            self.waiters.remove(&hash);
            if !self.writing.contains(&hash) {
                self.wanted.remove(&hash);
                self.overflow.remove(&hash);
                released = true;
            }
        }
        if released {
            self.compact_queue();
        }
    }

    /// Drop the queue's jobs for chunks no longer wanted (or wanted at another class)
    /// once they outnumber the live ones: popping skips them anyway, but a class no link
    /// may carry is never popped. Amortised: the queue is at most about twice the live
    /// jobs plus [`QUEUE_SLACK`].
    fn compact_queue(&mut self) {
        if self.scheduler.len() <= 2 * self.wanted.len() + QUEUE_SLACK {
            return;
        }
        let wanted = &self.wanted;
        self.scheduler
            .retain(|class, hash| wanted.get(hash).is_some_and(|w| w.0 == class));
    }

    fn mark_servable(&mut self, item: &ItemId) {
        let Some(state) = self.items.get_mut(item) else {
            return;
        };
        if !state.missing.is_empty() || !state.entry_durable {
            return;
        }
        let m = &state.entry.manifest;
        let old = state.servable.replace(m.clone());
        state.repairing = false;
        self.serve_epoch += 1;
        let event = Event::ContentServable {
            item: m.item.clone(),
            version: m.version,
            priority: m.priority,
        };
        // The version it replaces is retired (a version moved past).
        let retired: Vec<ChunkHash> = old
            .filter(|o| o.chunks != m.chunks)
            .map(|o| o.chunks.iter().map(|c| c.hash).collect())
            .unwrap_or_default();
        self.emit(event);
        self.retire(retired);
    }

    /// The chunks of a version the tower moved past (or of all held chunks, after a
    /// restart): each is deleted after [`TowerConfig::chunk_gc_grace`] unless a kept
    /// version (an item's latest entry or its servable version) names it by then.
    fn retire(&mut self, mut hashes: Vec<ChunkHash>) {
        hashes.retain(|h| self.held.contains_key(h));
        if hashes.is_empty() {
            return;
        }
        hashes.sort_unstable();
        hashes.dedup();
        let at = self.now + self.config.chunk_gc_grace;
        debug_assert!(
            self.retired.back().is_none_or(|(last, _)| *last <= at),
            "retirements are queued in time order"
        );
        self.retired.push_back((at, hashes));
    }

    /// Delete the retired chunks whose grace has ended and that no kept version names:
    /// content-addressed chunks shared with a kept version (of this item or another) stay,
    /// as do chunks wanted again, being written, or in flight.
    fn collect_chunks(&mut self, now: Time) {
        if self.retired.front().is_none_or(|(at, _)| *at > now) {
            return;
        }
        let mut due = Vec::new();
        while self.retired.front().is_some_and(|(at, _)| *at <= now) {
            let Some((_, hashes)) = self.retired.pop_front() else {
                break;
            };
            due.extend(hashes);
        }
        // Those no kept version names: one pass over the kept versions' chunks, striking
        // each off the few due (not a set of every kept chunk, built anew each time: the
        // catalog only grows).
        let mut unnamed: BTreeSet<ChunkHash> = due.iter().copied().collect();
        for hash in self.items.values().flat_map(ItemState::chunk_hashes) {
            unnamed.remove(&hash);
            if unnamed.is_empty() {
                break;
            }
        }
        for hash in due {
            if !unnamed.contains(&hash)
                || self.wanted.contains_key(&hash)
                || self.writing.contains(&hash)
            {
                continue;
            }
            if self.held.remove(&hash).is_some() {
                self.delete(Key::Chunk(hash));
            }
        }
    }

    /// A catalog reply, as sent: rebuilt ([`Tower::rebuild_entries`]) and handed to the
    /// trust check, which adopts it or not. `more`: the origin cut the page (see
    /// [`Message::CatalogReply`]).
    fn on_catalog_reply(&mut self, origin: Option<OriginId>, entries: Vec<SentEntry>, more: bool) {
        // Another origin's answer is not adopted (see `trust`): nothing of it is rebuilt
        // either, and it changes nothing about the next poll's form.
        let foreign = self.config.check_origin
            && matches!(self.trust, Trust::Trusted(t) if origin != Some(t));
        if foreign {
            self.on_catalog_from(origin, Vec::new(), false);
            return;
        }
        let (entries, complete) = self.rebuild_entries(entries);
        if !complete && matches!(self.trust, Trust::Rehoming(_)) {
            // A page that cannot be taken whole is no page of the reconciliation (a short
            // one would end it): asked for again at the usual pace.
            self.catalog_deadline = None;
            self.next_catalog_at = self.now + self.config.catalog_interval;
            self.origin_answered();
            return;
        }
        let asked_whole = self.catalog_whole;
        self.on_catalog_from(origin, entries, more);
        // Whole entries are asked for until a reply is taken completely: at once after
        // changes failed, at the usual pace if whole entries did too.
        self.catalog_whole = !complete;
        if !complete && !asked_whole {
            self.next_catalog_at = self.now;
        }
    }

    /// A catalog reply's entries with their manifests: an entry sent as changes is rebuilt
    /// from this tower's entry of the item ([`crate::content::ManifestChanges::apply`]
    /// checks the base and the rebuilt list's digest); one for a version this tower holds
    /// already is skipped. From the first entry that cannot be taken on, entries are set
    /// aside (`false` second): the cursor does not pass them, and the next poll asks for
    /// whole manifests at once. Never a wrong manifest. What a reply may make this tower
    /// build is bounded: at most [`CATALOG_REPLY_ENTRIES_MAX`] entries, one per item, and
    /// [`crate::content::changes::CHUNKS_MAX`] rebuilt chunk references in all (keep runs
    /// repeat the held list, so a small reply could otherwise ask for gigabytes).
    fn rebuild_entries(&self, mut sent: Vec<SentEntry>) -> (Vec<CatalogEntry>, bool) {
        sent.sort_by_key(SentEntry::seq);
        let complete = sent.len() <= CATALOG_REPLY_ENTRIES_MAX;
        sent.truncate(CATALOG_REPLY_ENTRIES_MAX);
        let mut entries: Vec<CatalogEntry> = Vec::with_capacity(sent.len());
        let mut items: BTreeSet<ItemId> = BTreeSet::new();
        let mut budget = crate::content::changes::CHUNKS_MAX;
        for s in sent {
            let item = match &s {
                SentEntry::Whole(e) => &e.manifest.item,
                SentEntry::Changes { changes, .. } => &changes.item,
            };
            if !items.insert(item.clone()) {
                return (entries, false); // two versions of one item: not an origin's reply
            }
            let entry = match s {
                SentEntry::Whole(e) => Some(e),
                SentEntry::Changes { seq, changes } => {
                    let held = self.items.get(&changes.item);
                    if held.is_some_and(|h| h.entry.manifest.version >= changes.version) {
                        continue;
                    }
                    held.and_then(|h| changes.apply_within(&h.entry.manifest, budget))
                        .map(|manifest| {
                            budget -= manifest.chunks.len();
                            CatalogEntry { seq, manifest }
                        })
                }
            };
            match entry {
                Some(e) => entries.push(e),
                None => return (entries, false),
            }
        }
        (entries, complete)
    }

    fn on_catalog(&mut self, entries: Vec<CatalogEntry>) {
        self.catalog_deadline = None;
        self.next_catalog_at = self.now + self.config.catalog_interval;
        self.origin_answered();
        self.supervisor.on_success(TaskKind::Catalog);
        // Newer versions only; the most demanded items queue first (cache warmer).
        let mut fresh: Vec<CatalogEntry> = entries
            .into_iter()
            .filter(|e| {
                self.items
                    .get(&e.manifest.item)
                    .is_none_or(|s| s.entry.manifest.version < e.manifest.version)
            })
            .collect();
        let order = self
            .warmer
            .rank(self.now, fresh.iter().map(|e| &e.manifest.item));
        fresh.sort_by_key(|e| {
            (
                e.manifest.priority,
                order.iter().position(|i| *i == e.manifest.item),
            )
        });
        for entry in fresh {
            let purpose = Purpose::Entry(entry.manifest.item.clone(), entry.manifest.version);
            self.write(Record::Entry(entry.clone()), purpose);
            self.adopt_entry(entry, false);
        }
        self.fsync();
    }

    fn on_chunk(&mut self, hash: ChunkHash, bytes: Option<bytes::Bytes>) {
        let flight = match self.in_flight.remove(&hash) {
            Some(f) => f,
            // A late reply (its request timed out and was requeued): still worth keeping
            // if wanted — on a satellite link the bytes are paid for already. It goes
            // through the same verification; its stale queue entry is skipped when popped.
            None => match self.wanted.get(&hash) {
                Some(&(class, _))
                    if bytes.is_some()
                        && !self.writing.contains(&hash)
                        && !self.held.contains_key(&hash) =>
                {
                    InFlight {
                        class,
                        deadline: self.now,
                        link: self.failover.active().unwrap_or(LinkKind::Fibre),
                    }
                }
                _ => return, // duplicate, or no longer wanted
            },
        };
        let Some(bytes) = bytes else {
            // The origin answered (it does not hold the chunk): the call worked.
            self.origin_answered();
            if !self.still_missing(&hash) {
                // Only versions the items have moved past named it, and the origin no
                // longer has it (it collects the chunks of versions no entry names any
                // more): nothing to fetch, and no failure.
                self.wanted.remove(&hash);
                self.waiters.remove(&hash);
                return;
            }
            // The origin does not have it (yet): a task failure, retried under supervision.
            self.requeue(hash);
            let decision = self
                .supervisor
                .on_failure(self.now, TaskKind::Fetch, &mut self.rng);
            self.on_supervision(decision);
            return;
        };
        self.origin_answered();
        let link = flight.link;
        if self.config.verify && !crate::content::verify_chunk(&hash, &bytes) {
            // Damaged in transit: drop the bytes and fetch again. Treated like loss (the
            // window shrinks), not as a task failure: one bad chunk should not stall
            // the whole fetch task.
            self.emit(Event::ChunkRejected { hash, link });
            self.requeue(hash);
            if let Some(w) = self.throttle.on_loss(self.now) {
                self.emit(Event::Throttle { window: w });
            }
            return;
        }
        if let Some(w) = self.throttle.on_success(self.now) {
            self.emit(Event::Throttle { window: w });
        }
        if !self.wanted.contains_key(&hash) || self.held.contains_key(&hash) {
            return;
        }
        self.emit(Event::ChunkVerified {
            hash,
            priority: flight.class,
            bytes: bytes.len() as u64,
            link,
        });
        self.writing.insert(hash);
        self.write(
            Record::Chunk(crate::content::Chunk { hash, bytes }),
            Purpose::Chunk(hash),
        );
    }

    /// Whether some item's latest entry still misses `hash` (a chunk wanted for an older
    /// version only is not).
    fn still_missing(&self, hash: &ChunkHash) -> bool {
        self.waiters.get(hash).is_some_and(|items| {
            items
                .iter()
                .any(|i| self.items.get(i).is_some_and(|s| s.missing.contains(hash)))
        })
    }

    fn on_submit(&mut self, device: crate::protocol::DeviceId, op: Operation) {
        let reply = |key: &IdemKey, reply: SubmitReply| Action::Send {
            to: Peer::Device(device),
            via: None,
            msg: Message::SubmitReply {
                key: key.clone(),
                reply,
            },
        };
        if self.power.mode() >= PowerMode::ShuttingDown {
            let a = reply(
                &op.key,
                SubmitReply::Retry {
                    reason: "tower shutting down".into(),
                },
            );
            self.actions.push_back(a);
            return;
        }
        // Trust first: nothing a device sends may touch another device's operations, so a
        // key or an operation that is not the presenting device's is refused before it is
        // compared with anything stored (the answer must not tell a stranger whether the
        // key exists).
        if self.config.check_key_owner && (op.device != device || op.key.owner() != Some(device)) {
            let why = if op.device != device {
                format!(
                    "the operation names {} but {device} presented it",
                    op.device
                )
            } else {
                format!("idempotency key {} does not belong to {device}", op.key)
            };
            self.refuse(&op.key, crate::io::OpRefusal::NotOwner);
            let a = reply(&op.key, SubmitReply::Forbidden { reason: why });
            self.actions.push_back(a);
            return;
        }
        if let Some(existing) = self.outbox.get_mut(&op.key) {
            let answer = if existing.op.fingerprint() != op.fingerprint() {
                SubmitReply::Conflict
            } else if existing.durable {
                SubmitReply::Duplicate
            } else {
                existing.waiting.insert(device);
                SubmitReply::InFlight
            };
            if answer == SubmitReply::Conflict {
                self.refuse(&op.key, crate::io::OpRefusal::Conflict);
            }
            let a = reply(&op.key, answer);
            self.actions.push_back(a);
            return;
        }
        if let Some(done) = self.confirmed.get(&op.key) {
            // Confirmed already: the same operation again gets the original answer, another
            // body under the key is a conflict (never a second, silently dropped entry).
            let answer = if done.op.fingerprint == op.fingerprint() {
                SubmitReply::Duplicate
            } else {
                self.refuse(&op.key, crate::io::OpRefusal::Conflict);
                SubmitReply::Conflict
            };
            let a = reply(&op.key, answer);
            self.actions.push_back(a);
            return;
        }
        if self.config.validate_ops
            && let Err(invalid) = op.validate()
        {
            self.refuse(&op.key, crate::io::OpRefusal::Invalid);
            let a = reply(&op.key, SubmitReply::Invalid { invalid });
            self.actions.push_back(a);
            return;
        }
        if self.outbox.len() >= self.config.outbox_max {
            let a = reply(
                &op.key,
                SubmitReply::Retry {
                    reason: "outbox full".into(),
                },
            );
            self.actions.push_back(a);
            return;
        }
        self.outbox_seq += 1;
        let key = op.key.clone();
        self.outbox_order.insert(self.outbox_seq, key.clone());
        self.outbox.insert(
            key.clone(),
            OutboxEntry {
                op: op.clone(),
                seq: self.outbox_seq,
                durable: false,
                waiting: BTreeSet::from([device]),
            },
        );
        self.write(Record::Outbox(op), Purpose::Outbox(key.clone()));
        if !self.config.ack_after_fsync {
            // Planted bug: acknowledge before the fsync has made the operation durable.
            if let Some(e) = self.outbox.get_mut(&key) {
                e.waiting.clear();
            }
            let a = reply(&key, SubmitReply::Accepted);
            self.actions.push_back(a);
            self.emit(Event::OpAcked { key });
        }
    }

    fn refuse(&mut self, key: &IdemKey, reason: crate::io::OpRefusal) {
        self.emit(Event::OpRefused {
            key: key.clone(),
            reason,
        });
    }

    /// What this tower knows of `key`, for `device`. Only the key's owner learns anything:
    /// for anyone else every key is [`OpStatus::Unknown`].
    pub fn op_status(&self, device: crate::protocol::DeviceId, key: &IdemKey) -> OpStatus {
        if key.owner() != Some(device) {
            return OpStatus::Unknown;
        }
        if let Some(entry) = self.outbox.get(key) {
            // Only an operation that was acknowledged is pending; one still being made
            // durable may yet fail (the device has not been told it is held).
            return if entry.durable {
                OpStatus::Pending
            } else {
                OpStatus::Unknown
            };
        }
        match self.confirmed.get(key) {
            Some(r) => OpStatus::Done {
                outcome: r.op.outcome.clone(),
                fingerprint: r.op.fingerprint,
            },
            None => OpStatus::Unknown,
        }
    }

    fn on_forward_reply(&mut self, mut receipts: Vec<crate::protocol::OpReceipt>) {
        self.forward = None;
        if !self.config.correlate_receipts {
            // Planted bug: the reply is taken for an answer to the batch sent last.
            for (receipt, key) in receipts.iter_mut().zip(&self.last_batch) {
                receipt.key = key.clone();
            }
        }
        self.origin_answered();
        self.supervisor.on_success(TaskKind::Forward);
        for receipt in receipts {
            if let Some(entry) = self.outbox.remove(&receipt.key) {
                self.outbox_order.remove(&entry.seq);
                // One batch (one fsync, one transaction): the outbox entry goes and the
                // memory of its confirmation comes, so a crash keeps one or the other.
                self.delete(Key::Outbox(receipt.key.clone()));
                if self.config.remember_confirmed {
                    self.remember(&entry.op, receipt.outcome.clone());
                }
                let outcome: OpOutcome = receipt.outcome;
                self.emit(Event::OpConfirmed {
                    key: receipt.key,
                    outcome,
                });
            }
        }
    }

    /// Remember a confirmed operation (durably, with the next fsync) for the window.
    fn remember(&mut self, op: &Operation, outcome: OpOutcome) {
        self.confirmed_seq += 1;
        let c = crate::io::ConfirmedOp {
            key: op.key.clone(),
            fingerprint: op.fingerprint(),
            outcome,
            seq: self.confirmed_seq,
        };
        if let Some(old) = self.confirmed.remove(&c.key) {
            self.confirmed_order.remove(&old.op.seq);
        }
        let until = self.now + self.config.confirmed_window;
        self.confirmed_order.insert(c.seq, (until, c.key.clone()));
        self.write(Record::Confirmed(c.clone()), Purpose::Untracked);
        self.confirmed.insert(c.key.clone(), Remembered { op: c });
        while self.confirmed.len() > self.config.confirmed_max {
            let Some((_, (_, key))) = self.confirmed_order.pop_first() else {
                break;
            };
            self.confirmed.remove(&key);
            self.delete(Key::Confirmed(key));
        }
        debug_assert_eq!(self.confirmed.len(), self.confirmed_order.len());
    }

    /// Forget confirmed operations whose window has ended.
    fn forget_confirmed(&mut self, now: Time) {
        while let Some((_, (until, _))) = self.confirmed_order.first_key_value() {
            if *until > now {
                break;
            }
            let Some((_, (_, key))) = self.confirmed_order.pop_first() else {
                break;
            };
            self.confirmed.remove(&key);
            self.delete(Key::Confirmed(key));
        }
    }

    fn on_durable(&mut self, purpose: Purpose) {
        match purpose {
            Purpose::Chunk(hash) => {
                self.writing.remove(&hash);
                // Progress is a chunk kept, not a chunk received: a disk that cannot keep
                // what arrives must not reset the fetch task's restart budget.
                self.supervisor.on_success(TaskKind::Fetch);
                let Some((_, len)) = self.wanted.remove(&hash) else {
                    return;
                };
                self.held.insert(hash, len);
                let items = self.waiters.remove(&hash).unwrap_or_default();
                if items.is_empty() {
                    // Kept for a version moved past while it was being written.
                    self.retire(vec![hash]);
                }
                for item in items {
                    let done = self.items.get_mut(&item).is_some_and(|s| {
                        s.missing.remove(&hash);
                        s.missing.is_empty()
                    });
                    if done {
                        self.mark_servable(&item);
                    }
                }
            }
            Purpose::Entry(item, version) => {
                let is_current = self
                    .items
                    .get(&item)
                    .is_some_and(|s| s.entry.manifest.version == version);
                if is_current {
                    let seq = self.items.get(&item).map_or(0, |s| s.entry.seq);
                    self.catalog_cursor = self.catalog_cursor.max(seq);
                    if let Some(s) = self.items.get_mut(&item) {
                        s.entry_durable = true;
                    }
                    self.mark_servable(&item);
                }
            }
            Purpose::Outbox(key) => {
                let Some(entry) = self.outbox.get_mut(&key) else {
                    return;
                };
                entry.durable = true;
                let waiting = std::mem::take(&mut entry.waiting);
                if !self.config.ack_after_fsync {
                    return; // already acknowledged at write time (planted bug)
                }
                for device in waiting {
                    self.actions.push_back(Action::Send {
                        to: Peer::Device(device),
                        via: None,
                        msg: Message::SubmitReply {
                            key: key.clone(),
                            reply: SubmitReply::Accepted,
                        },
                    });
                }
                self.emit(Event::OpAcked { key });
            }
            Purpose::Trust | Purpose::Drop(_) | Purpose::Untracked => {}
        }
    }

    fn on_not_durable(&mut self, purpose: Purpose, reason: &str) {
        match purpose {
            Purpose::Chunk(hash) => {
                self.writing.remove(&hash);
                self.requeue(hash);
            }
            Purpose::Entry(item, version) => {
                // Write the entry again once the supervisor lets sync run (see `pump`).
                if self
                    .items
                    .get(&item)
                    .is_some_and(|s| s.entry.manifest.version == version)
                {
                    self.rewrite.insert(item);
                }
            }
            Purpose::Outbox(key) => {
                if let Some(entry) = self.outbox.get(&key)
                    && !entry.durable
                {
                    let entry = self.outbox.remove(&key).expect("present");
                    self.outbox_order.remove(&entry.seq);
                    for device in entry.waiting {
                        self.actions.push_back(Action::Send {
                            to: Peer::Device(device),
                            via: None,
                            msg: Message::SubmitReply {
                                key: key.clone(),
                                reply: SubmitReply::Retry {
                                    reason: reason.to_string(),
                                },
                            },
                        });
                    }
                }
            }
            Purpose::Trust => self.trust_rewrite = true,
            Purpose::Drop(item) => {
                if !self.items.contains_key(&item) {
                    self.redrop.insert(item);
                }
            }
            Purpose::Untracked => {}
        }
    }

    fn on_link_events(&mut self, events: Vec<Event>) {
        for event in events {
            let changed = matches!(event, Event::ActiveLink { .. });
            self.emit(event);
            if changed {
                self.throttle.reset();
                self.next_catalog_at = self.now; // new path: catch up at once
            }
        }
    }

    fn on_power_mode(&mut self, from: PowerMode, to: PowerMode) {
        self.emit(Event::PowerMode { from, to });
        if to == PowerMode::ShuttingDown && self.shutdown_fsync.is_none() {
            // Flush: everything issued gets one last fsync; power off when it completes.
            match self.fsync() {
                Some(id) => self.shutdown_fsync = Some(id),
                None if self.fsyncs.is_empty() => self.finish_shutdown(),
                None => {
                    // Wait for the newest outstanding fsync.
                    self.shutdown_fsync = self.fsyncs.keys().next_back().copied();
                }
            }
        }
    }

    fn finish_shutdown(&mut self) {
        if self.power.mode() == PowerMode::Off {
            return;
        }
        if let Some((from, to)) = self.power.mark_off() {
            self.emit(Event::PowerMode { from, to });
        }
        self.in_flight.clear();
        self.actions.push_back(Action::PowerOff { clean: true });
    }

    /// The origin answered a call (whatever it said): the breaker hears of every call it
    /// admitted — its half-open trial included — except those that time out
    /// ([`Tower::on_origin_failure`]).
    pub(super) fn origin_answered(&mut self) {
        if let Some(e) = self.breaker.on_success(self.now) {
            self.emit(e);
        }
    }

    fn on_origin_failure(&mut self) {
        if let Some(e) = self.breaker.on_failure(self.now, &mut self.rng) {
            self.emit(e);
        }
    }

    fn on_supervision(&mut self, (decision, events): (Decision, Vec<Event>)) {
        let _ = decision; // the supervisor's may_run/next_timeout carry the decision
        for e in events {
            self.emit(e);
        }
    }

    /// After every input: start whatever work the state now allows, then group-commit.
    fn pump(&mut self) {
        self.drain_overflow();
        if !self.rewrite.is_empty() && self.supervisor.may_run(self.now, TaskKind::Fetch) {
            for item in std::mem::take(&mut self.rewrite) {
                let entry = self.items.get(&item).map(|s| s.entry.clone());
                if let Some(entry) = entry {
                    let version = entry.manifest.version;
                    self.write(Record::Entry(entry), Purpose::Entry(item, version));
                }
            }
        }
        if !self.redrop.is_empty() && self.supervisor.may_run(self.now, TaskKind::Fetch) {
            for item in std::mem::take(&mut self.redrop) {
                self.drop_entry(item);
            }
        }
        if std::mem::take(&mut self.trust_rewrite)
            && let Some(record) = self.trust_record()
        {
            self.write(record, Purpose::Trust);
        }
        let mode = self.power.mode();
        if mode < PowerMode::ShuttingDown
            && let Some(link) = self.failover.active()
        {
            self.pump_catalog(link);
            // Nothing is fetched from or forwarded to an origin that is not trusted.
            if !self.sync_held() {
                self.pump_forward(link);
                self.pump_fetch(link);
            }
        }
        if self.shutdown_fsync.is_none() {
            self.fsync();
        }
    }

    /// Move jobs the bounded queue refused back in, as room allows.
    fn drain_overflow(&mut self) {
        while let Some(hash) = self.overflow.pop_first() {
            let Some(&(class, len)) = self.wanted.get(&hash) else {
                continue;
            };
            if self.scheduler.push(class, hash, u64::from(len)).is_err() {
                self.overflow.insert(hash);
                break;
            }
        }
    }

    fn transfer_deadline(&self, link: LinkKind, bytes: u64) -> Time {
        let health = self.failover.health(link);
        let rtt = health
            .and_then(|h| h.rtt_ewma())
            .unwrap_or(Duration::from_millis(600));
        let transfer = health
            .and_then(|h| h.bandwidth_bps())
            .filter(|bw| *bw > 0)
            .map_or(Duration::ZERO, |bw| {
                Duration::from_micros(bytes.saturating_mul(8_000_000) / bw)
            });
        self.now + self.config.request_timeout + rtt * 2 + transfer * 2
    }

    fn pump_catalog(&mut self, link: LinkKind) {
        if self.catalog_deadline.is_some()
            || self.now < self.next_catalog_at
            || !self.supervisor.may_run(self.now, TaskKind::Catalog)
            || !self.breaker.allow(self.now)
        {
            return;
        }
        self.catalog_deadline = Some(self.transfer_deadline(link, 64 * 1024));
        // Changes are asked for only from the trusted origin's catalog: a re-home compares
        // whole manifests, and after a reply this tower could not rebuild, one poll is whole.
        let (since_seq, changes) = match &self.trust {
            Trust::Rehoming(r) => {
                self.catalog_rehome_since = Some(r.since);
                (r.since, false)
            }
            Trust::Unset | Trust::Trusted(_) => {
                self.catalog_rehome_since = None;
                (self.catalog_cursor, !self.catalog_whole)
            }
        };
        self.actions.push_back(Action::Send {
            to: Peer::Origin,
            via: Some(link),
            msg: Message::CatalogRequest { since_seq, changes },
        });
    }

    fn pump_forward(&mut self, link: LinkKind) {
        if self.forward.is_some() || !self.supervisor.may_run(self.now, TaskKind::Forward) {
            return;
        }
        let ops: Vec<Operation> = self
            .outbox_order
            .values()
            .filter_map(|k| self.outbox.get(k))
            .filter(|e| e.durable)
            .take(self.config.forward_batch_max)
            .map(|e| e.op.clone())
            .collect();
        if ops.is_empty() || !self.breaker.allow(self.now) {
            return;
        }
        if !self.config.correlate_receipts {
            self.last_batch = ops.iter().map(|o| o.key.clone()).collect();
        }
        let msg = Message::ForwardOps { ops };
        self.forward = Some(ForwardInFlight {
            deadline: self.transfer_deadline(link, msg.wire_size()),
        });
        self.actions.push_back(Action::Send {
            to: Peer::Origin,
            via: Some(link),
            msg,
        });
    }

    fn pump_fetch(&mut self, link: LinkKind) {
        if !self.supervisor.may_run(self.now, TaskKind::Fetch) {
            return;
        }
        let mode = self.power.mode();
        let classes = self.config.classes.clone();
        let strict = matches!(
            self.config.scheduler.policy,
            scheduler::SchedulePolicy::Priority
        );
        // Bounded: at most one pass over the queue per pump.
        let mut budget = self.scheduler.len() + 1;
        while budget > 0 && self.throttle.can_send(self.in_flight.len() as u32) {
            budget -= 1;
            // P0 in flight holds every lower class back (the priority invariant).
            let p0_in_flight = strict && self.in_flight.values().any(|f| f.class == Priority::P0);
            let eligible = |c: Priority| {
                classes.allows(link, c)
                    && mode.allows_sync(c)
                    && (c == Priority::P0 || !p0_in_flight)
            };
            let Some((class, hash)) = self.scheduler.pop(eligible) else {
                break;
            };
            let Some(&(want_class, len)) = self.wanted.get(&hash) else {
                continue; // no longer wanted
            };
            if self.in_flight.contains_key(&hash) || self.writing.contains(&hash) {
                continue;
            }
            if want_class < class {
                continue; // a more urgent copy of this job is queued
            }
            if !self.breaker.allow(self.now) {
                let _ = self.scheduler.push(class, hash, u64::from(len));
                break;
            }
            self.in_flight.insert(
                hash,
                InFlight {
                    class,
                    deadline: self.transfer_deadline(link, u64::from(len)),
                    link,
                },
            );
            self.emit(Event::ChunkRequested {
                hash,
                priority: class,
                bytes: u64::from(len),
                link,
            });
            self.actions.push_back(Action::Send {
                to: Peer::Origin,
                via: Some(link),
                msg: Message::ChunkRequest { hash },
            });
        }
    }
}

#[cfg(test)]
mod tests;
