//! The world's events: what can happen next, the queue that orders them, and the words
//! and text the trace records of them.
//!
//! Map: [`Node`] (a host with a disk), [`Ev`] (every kind of event), [`Queue`] (a total,
//! deterministic order: by time, then by push order), [`node_word`], [`peer_word`] and
//! [`summary`] (trace payload words and trace text).
//!
//! Not covered: what an event does (`World::dispatch`).

use sovereign_logic::Time;
use sovereign_logic::protocol::{LinkKind, Message, OriginId, Peer};
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
    /// The origin's refusal of a request it was too busy to handle (`origin-busy`)
    /// arrives: the identity it named (`None`: none).
    BusyRefusal {
        tower: usize,
        incarnation: u64,
        link: LinkKind,
        identity: Option<OriginId>,
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
    /// A `crash-in-fsync` fault site's crash of a host's incarnation (`buggify`).
    BuggifyCrash {
        node: Node,
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

/// The event queue: a binary heap of small keys over a slab of events, so that the
/// (large) events never move while the heap reorders. A key is one `u128` — the time in
/// its high 64 bits, then the push's `seq` ([`SEQ_BITS`]) and the event's slot
/// ([`SLOT_BITS`]) — so that ordering compares one number. `seq` is unique and
/// increasing, so ties in time pop in push order: the order is total and deterministic,
/// and the slot (below `seq`) never decides it. (A radix heap was tried: it was no
/// faster on region.toml.)
#[derive(Default)]
pub(super) struct Queue {
    heap: std::collections::BinaryHeap<std::cmp::Reverse<u128>>,
    slots: Vec<Option<Ev>>,
    free: Vec<u32>,
}

/// Bits of a key for the push's sequence number: room for every push of the longest
/// run (the step budget, plus what is pending at its end).
const SEQ_BITS: u32 = 38;
/// Bits of a key for the event's slot: room for every event pending at once (a few per
/// device at the scenario limits' million devices).
const SLOT_BITS: u32 = 26;
const _: () = assert!(SEQ_BITS + SLOT_BITS == 64);
const _: () = assert!(super::EVENTS_MAX < 1 << (SEQ_BITS - 1));

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
        assert!(
            seq < 1 << SEQ_BITS && u64::from(slot) < 1 << SLOT_BITS,
            "event queue key out of range: push {seq}, slot {slot}"
        );
        let key = u128::from(at.as_micros()) << 64 | u128::from(seq << SLOT_BITS | u64::from(slot));
        self.heap.push(std::cmp::Reverse(key));
    }

    pub(super) fn pop(&mut self) -> Option<(Time, Ev)> {
        let std::cmp::Reverse(key) = self.heap.pop()?;
        let slot = (key as u64 & ((1 << SLOT_BITS) - 1)) as u32;
        let ev = self.slots[slot as usize]
            .take()
            .expect("a queued slot holds its event");
        self.free.push(slot);
        Some((key_time(key), ev))
    }

    pub(super) fn peek_time(&self) -> Option<Time> {
        self.heap
            .peek()
            .map(|std::cmp::Reverse(key)| key_time(*key))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

fn key_time(key: u128) -> Time {
    Time::from_micros((key >> 64) as u64)
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
        Message::CatalogRequest { since_seq, changes } => {
            format!("CatalogRequest since {since_seq} changes {changes}")
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use sovereign_logic::entropy::{Entropy, SplitMix64};
    use std::collections::BTreeMap;

    #[test]
    fn the_queue_pops_in_time_then_push_order() {
        // Goal: the queue pops exactly what an ordered map of (time, push) would,
        // over interleaved pushes and pops where each push is at or after the time of the
        // last pop (as the world schedules), with ties in time, far-future events, and
        // runs of pops that empty the queue and start it again.
        let mut rng = SplitMix64::new(12);
        let (mut q, mut model) = (Queue::default(), BTreeMap::new());
        let (mut now, mut seq) = (0u64, 0u64);
        for step in 0..20_000 {
            if rng.below(3) > 0 || model.is_empty() {
                let after = match rng.below(4) {
                    0 => 0,
                    1 => rng.below(1_000),
                    2 => rng.below(1_000_000_000),
                    _ => rng.below(1 << 50),
                };
                seq += 1;
                q.push(
                    Time::from_micros(now + after),
                    seq,
                    Ev::PowerTick { tower: step },
                );
                model.insert((now + after, seq), step);
            } else {
                let ((at, _), want) = model.pop_first().expect("not empty");
                assert_eq!(q.peek_time(), Some(Time::from_micros(at)), "step {step}");
                let Some((t, Ev::PowerTick { tower })) = q.pop() else {
                    panic!("step {step}: the queue lost an event");
                };
                assert_eq!((t.as_micros(), tower), (at, want), "step {step}");
                now = at;
            }
            assert_eq!(q.is_empty(), model.is_empty());
        }
        while let Some(((at, _), want)) = model.pop_first() {
            let Some((t, Ev::PowerTick { tower })) = q.pop() else {
                panic!("the queue lost an event");
            };
            assert_eq!((t.as_micros(), tower), (at, want));
        }
        assert!(q.pop().is_none() && q.peek_time().is_none());
    }
}
