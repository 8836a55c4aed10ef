//! The boundary: what the logic asks its driver to do, and what the driver reports back.
//!
//! State machines in this crate never touch a socket, a file or a clock. They return
//! [`Action`]s — send a message, write a record, fsync, probe a link, emit an [`Event`],
//! power off — and take completions back through their `handle_*` methods. Storage is a
//! keyed record store with a write/fsync split: a write may be lost by a crash until an
//! fsync issued after it completes (the simulator's disk and the real SQLite/file store
//! honour the same contract).
//!
//! Map: [`Key`]/[`Record`] (durable state), [`WriteId`], [`Action`], [`Event`],
//! [`PowerMode`], [`TaskKind`], [`DurableState`] (what recovery reads); [`disk`]: the
//! contract as a model every simulated disk is built on ([`DiskModel`]).
//!
//! Not covered: how a driver lays records out (SQLite rows, files) — see the store crates.

use crate::content::{Chunk, ChunkHash, ItemId, Priority};
use crate::protocol::{
    CatalogEntry, IdemKey, LinkKind, Message, OpOutcome, Operation, OriginId, Peer, TowerId,
};
use std::collections::BTreeMap;
use std::fmt;

pub mod disk;
pub use disk::DiskModel;

/// Identifies a write or fsync so that its completion can be matched to it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct WriteId(pub u64);

/// The key a record is stored under. Each record has exactly one key ([`Record::key`]).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Key {
    /// A verified chunk (content-addressed).
    Chunk(ChunkHash),
    /// The latest known catalog entry of an item.
    Entry(ItemId),
    /// A device operation a tower holds until the origin confirms it.
    Outbox(IdemKey),
    /// The origin's record that an operation was applied (or refused), and how.
    Applied(IdemKey),
    /// A tower's memory of an operation the origin confirmed (see [`ConfirmedOp`]).
    Confirmed(IdemKey),
    /// A device's operation that its tower acknowledged and whose final outcome the
    /// device has not learnt yet.
    Awaiting(IdemKey),
    /// The origin's own identity (one record per origin store).
    Identity,
    /// The origin a tower trusts (one record per tower store).
    TrustedOrigin,
}

/// What a tower remembers of an operation after the origin confirmed it and it left the
/// outbox: enough to answer a replay (same fingerprint: the original answer; another:
/// 422) and to tell the owner the origin's verdict, for a bounded window.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ConfirmedOp {
    /// The operation's key.
    pub key: IdemKey,
    /// [`Operation::fingerprint`] of the operation the tower forwarded under the key.
    pub fingerprint: ChunkHash,
    /// The origin's verdict.
    pub outcome: OpOutcome,
    /// Confirmation order at this tower (1-based, increasing): the oldest are forgotten
    /// first when the memory is full.
    pub seq: u64,
}

/// A durable record.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Record {
    /// Chunk bytes.
    Chunk(Chunk),
    /// A catalog entry (manifest + publish seq).
    Entry(CatalogEntry),
    /// A queued device operation (tower side).
    Outbox(Operation),
    /// An applied operation (origin side): the operation and its outcome.
    Applied {
        /// the operation as first received
        op: Operation,
        /// what applying it did
        outcome: OpOutcome,
        /// The tower that forwarded it first (`None`: recorded before the origin kept it,
        /// or received from a peer that is not a tower).
        tower: Option<TowerId>,
    },
    /// A confirmed operation a tower remembers (tower side).
    Confirmed(ConfirmedOp),
    /// An acknowledged operation awaiting its final outcome (device side).
    Awaiting(Operation),
    /// The origin's identity (origin side), written once at its first start.
    Identity(OriginId),
    /// The origin a tower trusts (tower side): `Some(id)` once it adopted one; `None`
    /// while an operator-ordered re-home waits to reconcile with the next origin's
    /// catalog. No record at all: a tower that never saw an origin with an identity.
    TrustedOrigin(Option<OriginId>),
}

impl Record {
    /// The key this record lives under.
    pub fn key(&self) -> Key {
        match self {
            Record::Chunk(c) => Key::Chunk(c.hash),
            Record::Entry(e) => Key::Entry(e.manifest.item.clone()),
            Record::Outbox(op) => Key::Outbox(op.key.clone()),
            Record::Applied { op, .. } => Key::Applied(op.key.clone()),
            Record::Confirmed(c) => Key::Confirmed(c.key.clone()),
            Record::Awaiting(op) => Key::Awaiting(op.key.clone()),
            Record::Identity(_) => Key::Identity,
            Record::TrustedOrigin(_) => Key::TrustedOrigin,
        }
    }
}

/// What a node's durable storage held at the moment it (re)started: everything whose
/// write was followed by a successful fsync, and possibly some writes that were not
/// (a real disk may have flushed them on its own). Recovery must be correct either way.
pub type DurableState = BTreeMap<Key, Record>;

/// The power-management mode of a tower, from full service to off. Ordered by severity.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub enum PowerMode {
    /// Everything runs.
    #[default]
    Normal,
    /// P3 sync paused.
    ShedP3,
    /// P2 and P3 sync paused.
    ShedP2,
    /// Only P0/P1 sync, device service and the outbox; non-critical services dimmed.
    Essential,
    /// Flushing and fsyncing before power-off; no new work.
    ShuttingDown,
    /// Powered off (cleanly or not).
    Off,
}

impl PowerMode {
    /// All modes, by severity.
    pub const ALL: [PowerMode; 6] = [
        PowerMode::Normal,
        PowerMode::ShedP3,
        PowerMode::ShedP2,
        PowerMode::Essential,
        PowerMode::ShuttingDown,
        PowerMode::Off,
    ];

    /// Lower-case name for metrics, files and the console.
    pub const fn name(self) -> &'static str {
        match self {
            PowerMode::Normal => "normal",
            PowerMode::ShedP3 => "shed-p3",
            PowerMode::ShedP2 => "shed-p2",
            PowerMode::Essential => "essential",
            PowerMode::ShuttingDown => "shutting-down",
            PowerMode::Off => "off",
        }
    }

    /// Whether sync of `class` may run in this mode.
    pub fn allows_sync(self, class: Priority) -> bool {
        match self {
            PowerMode::Normal => true,
            PowerMode::ShedP3 => class <= Priority::P2,
            PowerMode::ShedP2 | PowerMode::Essential => class <= Priority::P1,
            PowerMode::ShuttingDown | PowerMode::Off => false,
        }
    }
}

impl fmt::Display for PowerMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The supervised sync tasks of a tower.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum TaskKind {
    /// Polls the origin's catalog.
    Catalog,
    /// Fetches chunks.
    Fetch,
    /// Forwards the device outbox.
    Forward,
}

impl TaskKind {
    /// All tasks.
    pub const ALL: [TaskKind; 3] = [TaskKind::Catalog, TaskKind::Fetch, TaskKind::Forward];
    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            TaskKind::Catalog => "catalog",
            TaskKind::Fetch => "fetch",
            TaskKind::Forward => "forward",
        }
    }
}

/// Why a tower refused a device's operation at the edge.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum OpRefusal {
    /// The key or the operation belongs to another device (HTTP 403).
    NotOwner,
    /// The operation breaks a rule the origin would reject it for (HTTP 422).
    Invalid,
    /// The key was used before with another body (HTTP 422).
    Conflict,
}

impl OpRefusal {
    /// All reasons.
    pub const ALL: [OpRefusal; 3] = [OpRefusal::NotOwner, OpRefusal::Invalid, OpRefusal::Conflict];
    /// Lower-case name (metric label).
    pub const fn name(self) -> &'static str {
        match self {
            OpRefusal::NotOwner => "not-owner",
            OpRefusal::Invalid => "invalid",
            OpRefusal::Conflict => "conflict",
        }
    }
}

/// Something that happened, for the event gateway, metrics, KPIs and the trace.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Event {
    /// A link's health changed (the probe hysteresis decided).
    LinkHealth {
        /// which link
        link: LinkKind,
        /// now up?
        up: bool,
    },
    /// The active uplink changed (`None`: no usable uplink).
    ActiveLink {
        /// before
        from: Option<LinkKind>,
        /// after
        to: Option<LinkKind>,
    },
    /// An item version is complete, verified and durable: servable from now on.
    ContentServable {
        /// the item
        item: ItemId,
        /// its version
        version: u64,
        /// its class
        priority: Priority,
    },
    /// An item the tower served is served no more: a re-home found other bytes (or
    /// another version) under its id, or the new origin lacks it. Reads of it are refused
    /// until a version is servable again ([`Event::ContentServable`]).
    ContentWithdrawn {
        /// the item
        item: ItemId,
    },
    /// A chunk's bytes passed verification and were handed to storage.
    ChunkVerified {
        /// the chunk
        hash: ChunkHash,
        /// its class (the most urgent class that wanted it)
        priority: Priority,
        /// bytes
        bytes: u64,
        /// the link it came over
        link: LinkKind,
    },
    /// A chunk's bytes failed verification and were dropped (they will be fetched again).
    ChunkRejected {
        /// the chunk
        hash: ChunkHash,
        /// the link it came over
        link: LinkKind,
    },
    /// A stored chunk failed verification on read or at start-up and was quarantined.
    ChunkQuarantined {
        /// the chunk
        hash: ChunkHash,
    },
    /// A chunk request was sent: `bytes` of class `priority` will move over `link`.
    ChunkRequested {
        /// the chunk
        hash: ChunkHash,
        /// its class
        priority: Priority,
        /// expected bytes
        bytes: u64,
        /// the link
        link: LinkKind,
    },
    /// A device operation became durable at the tower and was acknowledged.
    OpAcked {
        /// the key
        key: IdemKey,
    },
    /// A tower refused a device's operation at the edge; nothing was stored.
    OpRefused {
        /// the key
        key: IdemKey,
        /// why
        reason: OpRefusal,
    },
    /// The origin confirmed a forwarded operation; the tower dropped it from its outbox.
    OpConfirmed {
        /// the key
        key: IdemKey,
        /// the origin's outcome
        outcome: OpOutcome,
    },
    /// The origin applied an operation (origin side).
    OpApplied {
        /// the key
        key: IdemKey,
        /// outcome
        outcome: OpOutcome,
    },
    /// The power mode changed.
    PowerMode {
        /// before
        from: PowerMode,
        /// after
        to: PowerMode,
    },
    /// The origin circuit breaker opened (calls stop until it half-opens).
    BreakerOpened,
    /// The breaker closed again after a successful trial call.
    BreakerClosed,
    /// A supervised task failed and will restart.
    TaskRestarted {
        /// which
        task: TaskKind,
        /// restarts within the current window
        attempt: u32,
    },
    /// A supervised task exceeded its restart budget and is parked until `retry_at`.
    TaskParked {
        /// which
        task: TaskKind,
    },
    /// The tower finished recovery from durable state.
    Recovered {
        /// chunks kept
        chunks: u64,
        /// chunks quarantined
        quarantined: u64,
        /// outbox operations still to forward
        outbox: u64,
    },
    /// The adaptive throttle changed its window (in requests in flight).
    Throttle {
        /// new window
        window: u32,
    },
    /// The tower now trusts `origin`: the first origin it saw (`rehomed: false`), or the
    /// one an operator-ordered re-home reconciled with (`rehomed: true`, `dropped` items
    /// that origin lacks or holds other bytes for were withdrawn from service).
    OriginAdopted {
        /// the origin now trusted
        origin: OriginId,
        /// after a re-home?
        rehomed: bool,
        /// items withdrawn by the re-home (0 otherwise)
        dropped: u64,
    },
    /// A different origin (or one with no identity) answered in place of the trusted one:
    /// the tower stops syncing (no catalog adoption, no chunk requests, no forwarding)
    /// and keeps serving what it holds, until the trusted origin answers again or an
    /// operator re-homes it. Emitted when the mismatch begins or `found` changes.
    OriginMismatch {
        /// the origin the tower trusts
        expected: OriginId,
        /// what answered instead
        found: Option<OriginId>,
    },
    /// The trusted origin answers again after a mismatch: syncing resumes.
    OriginRestored {
        /// the trusted origin
        origin: OriginId,
    },
    /// An operator ordered a re-home: the next origin to answer becomes the trusted one
    /// once everything held is reconciled with its catalog.
    RehomeStarted {
        /// the origin trusted until now
        from: Option<OriginId>,
    },
}

/// An instruction from a state machine to its driver.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Action {
    /// Send `msg` to `to`; for a tower's upstream traffic, over uplink `via`.
    Send {
        /// destination
        to: Peer,
        /// the uplink to use (upstream traffic only)
        via: Option<LinkKind>,
        /// the message
        msg: Message,
    },
    /// Store `record` under its key (replacing any previous one). Not durable until a
    /// later [`Action::Fsync`] completes.
    Write {
        /// completion id
        id: WriteId,
        /// the record
        record: Record,
    },
    /// Remove the record under `key`. Not durable until a later fsync completes.
    Delete {
        /// completion id
        id: WriteId,
        /// which record
        key: Key,
    },
    /// Origin only: read chunk `hash` from storage and send `to` the message
    /// [`crate::origin::Origin::chunk_reply`] makes of what was found (its bytes when they
    /// verify; else the origin no longer holds it). The origin keeps no chunk bytes in
    /// memory; a driver may read and verify elsewhere than the origin's own task.
    ReadChunk {
        /// who asked
        to: Peer,
        /// which chunk
        hash: ChunkHash,
    },
    /// Make every write and delete issued before this one durable.
    Fsync {
        /// completion id
        id: WriteId,
    },
    /// Measure an uplink and report with `handle_probe`.
    Probe {
        /// which uplink
        link: LinkKind,
    },
    /// Something happened (metrics, event gateway, trace).
    Emit(Event),
    /// Cut power now. `clean`: everything acknowledged was fsynced first.
    PowerOff {
        /// orderly shutdown?
        clean: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_modes_shed_in_steps() {
        assert!(PowerMode::Normal.allows_sync(Priority::P3));
        assert!(!PowerMode::ShedP3.allows_sync(Priority::P3));
        assert!(PowerMode::ShedP3.allows_sync(Priority::P2));
        assert!(!PowerMode::ShedP2.allows_sync(Priority::P2));
        assert!(PowerMode::Essential.allows_sync(Priority::P0));
        assert!(!PowerMode::ShuttingDown.allows_sync(Priority::P0));
        assert!(PowerMode::Normal < PowerMode::Off);
    }
}
