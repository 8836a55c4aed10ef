//! Observations: what the world reports to the oracles and the KPI collector as a run
//! goes. Each is stamped with the virtual time it happened at ([`Stamped`]).
//!
//! Observations are the outside view of a run: what devices got, what the origin
//! applied, what was durable when a tower went down, what the links carried, what the
//! battery did — plus the events the logic itself emitted ([`Obs::Tower`],
//! [`Obs::Origin`]). Oracles must never need to look inside a state machine beyond this.
//!
//! Not covered: the trace (see `trace.rs`), which hashes every processed input.

use sovereign_logic::Time;
use sovereign_logic::content::{ChunkHash, ItemId, Manifest, Priority};
use sovereign_logic::io::{Event, PowerMode};
use sovereign_logic::protocol::{IdemKey, LinkKind, OriginId};
use sovereign_logic::tower::Refusal;
use std::collections::{BTreeMap, BTreeSet};

use sovereign_scenario::{FaultSpec, Scenario, Target};

/// An observation and when it happened.
#[derive(Clone, Debug, PartialEq)]
pub struct Stamped {
    /// Virtual time.
    pub at: Time,
    /// What happened.
    pub obs: Obs,
}

/// What became of one device read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadResult {
    /// Bytes were served (see [`Obs::Served`] for their integrity).
    Served,
    /// The tower refused.
    Refused(Refusal),
    /// The device could not reach its tower (tower down/off/paused, Wi-Fi cut).
    Unreachable,
}

/// One observation.
#[derive(Clone, Debug, PartialEq)]
pub enum Obs {
    /// The run starts: tower names (index = tower id), device count, which link kinds
    /// each tower has.
    Start {
        /// tower names in index order
        towers: Vec<String>,
        /// uplinks per tower, preference order
        links: Vec<Vec<LinkKind>>,
        /// total devices
        devices: u32,
    },
    /// The origin made a version visible (durable): its manifest.
    Published {
        /// the manifest
        manifest: Manifest,
    },
    /// An event a tower's logic emitted.
    Tower {
        /// tower index
        tower: usize,
        /// the event
        event: Event,
    },
    /// An event the origin's logic emitted.
    Origin {
        /// the event
        event: Event,
    },
    /// A device read, and what came of it.
    Read {
        /// tower index
        tower: usize,
        /// the item asked for
        item: ItemId,
        /// whether the item exists at the origin (a valid read)
        valid: bool,
        /// the outcome
        result: ReadResult,
        /// the tower was running and powered (not off, not shutting down, not crashed)
        tower_powered: bool,
    },
    /// Bytes a tower served for a read: every chunk with whether its bytes matched its
    /// hash at the moment they were served, and whether the manifest served is the
    /// one the origin published for that version.
    Served {
        /// tower index
        tower: usize,
        /// the item
        item: ItemId,
        /// the version served
        version: u64,
        /// chunk address → bytes matched
        chunks: Vec<(ChunkHash, bool)>,
        /// the manifest equals the origin's for (item, version)
        manifest_ok: bool,
    },
    /// A device received the bytes of a served read over a Wi-Fi that garbles them
    /// (`wifi-corruption`): whether they matched their hashes on arrival, and whether the
    /// device kept them.
    Delivered {
        /// tower index
        tower: usize,
        /// device index
        device: usize,
        /// the item
        item: ItemId,
        /// the version served
        version: u64,
        /// every chunk arrived as the tower sent it and matched its hash
        intact: bool,
        /// the device's read accepted the bytes
        accepted: bool,
    },
    /// A device queued an operation (its first submission under this key and body).
    Submitted {
        /// device index (its host, not its identity: two devices may share one)
        device: usize,
        /// the key
        key: IdemKey,
        /// the operation's fingerprint
        fingerprint: ChunkHash,
        /// whether the key is one the device made for this operation (`false`: a key it
        /// reused, or a stranger's guess at another device's key)
        own_key: bool,
    },
    /// A device received an acknowledgement (Accepted/Duplicate) for an operation it
    /// held.
    Acked {
        /// tower index
        tower: usize,
        /// the operation
        key: IdemKey,
        /// the fingerprint of the operation the device held under the key
        fingerprint: ChunkHash,
    },
    /// A fresh origin replaced the origin (`origin-replace`): what the old one applied and
    /// published is gone with it.
    OriginReplaced {
        /// the identity of the origin replaced
        old: OriginId,
        /// the identity of the one answering at the address from now on
        new: OriginId,
    },
    /// A tower answered a submission "not stored" (its write was refused: nothing of it
    /// may become durable unless the tower acknowledges it later).
    NotStored {
        /// tower index
        tower: usize,
        /// the operation's key
        key: IdemKey,
    },
    /// The origin applied an operation (an `OpApplied` with outcome Applied), with the
    /// contribution amount if it was one.
    Applied {
        /// the operation
        key: IdemKey,
        /// the fingerprint of the operation the origin applied
        fingerprint: ChunkHash,
        /// minor units contributed, if a contribution
        amount_minor: Option<u64>,
    },
    /// The origin's ledger after an apply: totals in minor units.
    Ledger {
        /// sum of contributions applied
        contributed: u128,
        /// sum withdrawn
        withdrawn: u128,
        /// sum of balances
        held: u128,
    },
    /// A chunk request left a tower: its class, link, size, and whether P0 work was
    /// waiting (queued or in flight) at that tower right after the request was issued.
    Requested {
        /// tower index
        tower: usize,
        /// the link
        link: LinkKind,
        /// the class
        class: Priority,
        /// bytes
        bytes: u64,
        /// P0 waiting at that tower
        p0_waiting: bool,
    },
    /// Bytes crossed a tower's uplink (either direction).
    Transfer {
        /// tower index
        tower: usize,
        /// the link
        link: LinkKind,
        /// bytes
        bytes: u64,
    },
    /// A tower process stopped. `durable_outbox`: the operation keys in its durable
    /// state at that moment (what recovery will see).
    TowerDown {
        /// tower index
        tower: usize,
        /// clean shutdown (flush + fsync) vs crash / power loss
        clean: bool,
        /// outbox keys that survived
        durable_outbox: BTreeSet<IdemKey>,
    },
    /// A tower process started (boot or recovery).
    TowerUp {
        /// tower index
        tower: usize,
    },
    /// A storage operation failed on a node (detection signal for disk faults).
    StorageError {
        /// `None` for the origin
        tower: Option<usize>,
    },
    /// Periodic power sample of a tower.
    Power {
        /// tower index
        tower: usize,
        /// state of charge 0..=1
        soc: f64,
        /// the tower's power mode (Off when not running)
        mode: PowerMode,
        /// energy drawn by the load since the start, Wh
        energy_wh: f64,
        /// solar power now, W
        solar_w: f64,
    },
    /// A tower's battery hit empty. `running`: the tower was still up (not cleanly off).
    BatteryEmpty {
        /// tower index
        tower: usize,
        /// still running at that moment
        running: bool,
        /// a hard-cut fault was active on it (then an unclean stop is expected)
        hard_cut: bool,
    },
    /// Periodic sample of a tower's outbox (operations held, acked or not).
    Backlog {
        /// tower index
        tower: usize,
        /// operations
        ops: u64,
    },
    /// Whether a tower is in its steady state (running, powered in Normal mode, on its
    /// most preferred healthy uplink); reported on every change.
    Steady {
        /// tower index
        tower: usize,
        /// steady now?
        steady: bool,
    },
    /// A fault started (`id` is unique within the run).
    FaultStart {
        /// fault id
        id: u64,
        /// the fault
        spec: FaultSpec,
    },
    /// A fault ended.
    FaultEnd {
        /// fault id
        id: u64,
        /// its target
        target: Target,
    },
    /// The safety phase ended: every fault healed, power restored; the liveness phase
    /// begins with `bound` to converge.
    Healed {
        /// the convergence budget
        bound: std::time::Duration,
    },
    /// A tower holds (servable) every item the origin publishes in the classes its
    /// links may carry, at the origin's latest versions.
    Converged {
        /// tower index
        tower: usize,
    },
    /// The run ended. `outboxes`: each tower's durable outbox keys at the end;
    /// `contributed_by_key` is not needed (see [`Obs::Applied`]).
    End {
        /// durable outbox keys per tower
        outboxes: BTreeMap<usize, BTreeSet<IdemKey>>,
        /// the origin ledger's contributed total
        ledger_contributed: u128,
    },
}

impl Obs {
    /// The start of a run of `sc`: its towers, their uplinks (sorted) and its devices.
    pub fn start(sc: &Scenario) -> Obs {
        Obs::Start {
            towers: sc.towers.iter().map(|t| t.name.clone()).collect(),
            links: sc
                .towers
                .iter()
                .map(|t| {
                    let mut k: Vec<LinkKind> = t.links.iter().map(|l| l.kind).collect();
                    k.sort();
                    k
                })
                .collect(),
            devices: sc.towers.iter().map(|t| t.devices).sum(),
        }
    }
}
