//! The world's events: what can happen next, the queue that orders them, and the words
//! and text the trace records of them.
//!
//! Map: [`Node`] (a host with a disk), [`Ev`] (every kind of event), [`Queue`] (a total,
//! deterministic order: by time, then by push order), [`node_word`], [`peer_word`] and
//! [`summary`] (trace payload words and trace text).
//!
//! Not covered: what an event does (`World::dispatch`).

use sovereign_logic::Time;
use sovereign_logic::protocol::{LinkKind, Message, Peer};
use sovereign_logic::tower::link::ProbeOutcome;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Node {
    Origin,
    Tower(usize),
}

pub(super) enum Ev {
    /// A message arrives.
    ToOrigin {
        tower: usize,
        link: LinkKind,
        msg: Message,
    },
    ToTower {
        tower: usize,
        incarnation: u64,
        from: Peer,
        link: Option<LinkKind>,
        msg: Message,
    },
    ToDevice {
        device: usize,
        msg: Message,
    },
    /// A storage operation completes.
    WriteDone {
        node: Node,
        incarnation: u64,
        id: sovereign_logic::io::WriteId,
        ok: Result<(), String>,
    },
    FsyncDone {
        node: Node,
        incarnation: u64,
        id: sovereign_logic::io::WriteId,
        upto: u64,
        fail: bool,
    },
    ProbeDone {
        tower: usize,
        incarnation: u64,
        link: LinkKind,
        outcome: ProbeOutcome,
    },
    TowerTimer {
        tower: usize,
        generation: u64,
    },
    DeviceTimer {
        device: usize,
        generation: u64,
    },
    FaultStart {
        id: usize,
    },
    FaultEnd {
        id: usize,
    },
    CrashLoopTick {
        id: usize,
    },
    TowerBoot {
        tower: usize,
        incarnation: u64,
    },
    OriginRestart {
        incarnation: u64,
    },
    PowerTick {
        tower: usize,
    },
    Publish {
        class: usize,
    },
    DeviceRead {
        device: usize,
    },
    DeviceOp {
        device: usize,
    },
    /// The `key_reuse_per_device_hour` workload: the device sends an acknowledged key again
    /// with another body.
    KeyReuse {
        device: usize,
    },
    /// The `key_theft_per_hour` workload: a stranger submits under a guessed key.
    KeyTheft,
    /// A `rogue-forward` fault's next forward.
    RogueTick {
        id: usize,
    },
    Sample,
    Heal,
    End,
}

/// The event queue: a binary heap of small `(time, seq, slot)` keys over a slab of
/// events, so that the (large) events never move while the heap reorders. `seq` is unique
/// and increasing, so ties in time pop in push order: the order is total and
/// deterministic.
#[derive(Default)]
pub(super) struct Queue {
    heap: std::collections::BinaryHeap<std::cmp::Reverse<(Time, u64, u32)>>,
    slots: Vec<Option<Ev>>,
    free: Vec<u32>,
}

impl Queue {
    pub(super) fn push(&mut self, at: Time, seq: u64, ev: Ev) {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(ev);
                slot
            }
            None => {
                self.slots.push(Some(ev));
                (self.slots.len() - 1) as u32
            }
        };
        self.heap.push(std::cmp::Reverse((at, seq, slot)));
    }

    pub(super) fn pop(&mut self) -> Option<(Time, Ev)> {
        let std::cmp::Reverse((at, _, slot)) = self.heap.pop()?;
        let ev = self.slots[slot as usize]
            .take()
            .expect("a queued slot holds its event");
        self.free.push(slot);
        Some((at, ev))
    }

    pub(super) fn peek_time(&self) -> Option<Time> {
        self.heap.peek().map(|std::cmp::Reverse((t, _, _))| *t)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

pub(super) fn node_word(n: Node) -> u64 {
    match n {
        Node::Origin => u64::MAX,
        Node::Tower(i) => i as u64,
    }
}

pub(super) fn peer_word(p: Peer) -> u64 {
    match p {
        Peer::Origin => u64::MAX,
        Peer::Tower(t) => u64::from(t.0) | 1 << 40,
        Peer::Device(d) => (d.0 as u64) | 1 << 41,
    }
}

pub(super) fn summary(msg: &Message) -> String {
    match msg {
        Message::CatalogRequest { since_seq } => format!("CatalogRequest since {since_seq}"),
        Message::CatalogReply { entries, .. } => {
            format!("CatalogReply ({} entries)", entries.len())
        }
        Message::ChunkRequest { hash } => format!("ChunkRequest {hash:?}"),
        Message::ChunkReply { hash, bytes } => {
            format!(
                "ChunkReply {hash:?} ({} bytes)",
                bytes.as_ref().map_or(0, |b| b.len())
            )
        }
        Message::ForwardOps { ops } => format!("ForwardOps ({} ops)", ops.len()),
        Message::ForwardReply { receipts } => format!("ForwardReply ({} receipts)", receipts.len()),
        Message::SubmitOp { op } => format!("SubmitOp {}", op.key),
        Message::SubmitReply { key, reply } => format!("SubmitReply {key} {reply:?}"),
        Message::StatusRequest { keys } => format!("StatusRequest ({} keys)", keys.len()),
        Message::StatusReply { statuses } => format!("StatusReply ({} statuses)", statuses.len()),
        Message::ReadItem { item } => format!("ReadItem {item}"),
        Message::ItemData { manifest, .. } => {
            format!("ItemData {} v{}", manifest.item, manifest.version)
        }
        Message::Unavailable { item, reason } => format!("Unavailable {item}: {reason}"),
        Message::Refused { reason } => format!("Refused: {reason}"),
    }
}
