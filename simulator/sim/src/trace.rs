//! The event trace: every input the world hands to a state machine, folded into a
//! SHA-256 as it happens; optionally recorded as text lines for `replay --trace`.
//!
//! Same seed + scenario + build ⇒ byte-identical trace ⇒ the same hash. The hash covers
//! what each node was told and when (kind, node, virtual time, and a digest of the
//! payload), which is what determines everything the logic does.
//!
//! Map: [`Trace`], [`TraceKind`].
//!
//! Not covered: the contents of the text lines are for people; only the hash is a contract.

use sha2::{Digest, Sha256};
use sovereign_logic::Time;

/// What a traced event is. The number of each kind is folded into the hash, so it is part
/// of the determinism contract: a kind keeps its number for good (20 was never used), and a
/// new kind takes a new one. The node word and payload words each kind carries are listed
/// with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TraceKind {
    /// A message reaches the origin. Node: the tower; payload: wire size, link.
    ToOrigin = 1,
    /// A message reaches a tower. Node: the tower; payload: wire size, sender.
    ToTower = 2,
    /// A message reaches a device. Node: the device; payload: wire size.
    ToDevice = 3,
    /// A disk write or delete completes. Node: the disk's host; payload: write id, ok.
    WriteDone = 4,
    /// An fsync completes. Node: the disk's host; payload: write id, failed.
    FsyncDone = 5,
    /// A link probe reports. Node: the tower; payload: link, reachable.
    ProbeDone = 6,
    /// A tower's logic timer fires. Node: the tower.
    TowerTimer = 7,
    /// A device's logic timer fires. Node: the device.
    DeviceTimer = 8,
    /// The workload publishes. Node: the class.
    Publish = 9,
    /// A device submits an operation. Node: the device.
    DeviceOp = 10,
    /// A device reads an item. Node: the device; payload: class, rank of the item.
    DeviceRead = 11,
    /// A tower process boots. Node: the tower; payload: its incarnation.
    TowerBoot = 12,
    /// A tower process stops. Node: the tower; payload: clean.
    TowerDown = 13,
    /// The origin process goes down.
    OriginDown = 14,
    /// The origin process restarts from its disk.
    OriginRestart = 15,
    /// A tower is handed a power reading. Node: the tower; payload: state of charge ‰.
    PowerReading = 16,
    /// A fault starts. Node: the fault's id.
    FaultStart = 17,
    /// A fault ends. Node: the fault's id.
    FaultEnd = 18,
    /// Every fault is healed: the liveness phase begins.
    Heal = 19,
    /// A device sends an acknowledged key again (misuse). Node: the device.
    KeyReuse = 21,
    /// A stranger submits under a guessed key (misuse). Node: the victim's tower; payload:
    /// the key's number.
    KeyTheft = 22,
    /// An operator re-homes a tower onto the origin that answers now. Node: the tower.
    Rehome = 23,
    /// A fresh origin replaces the old one. Node: the new origin's epoch.
    OriginReplaced = 24,
    /// A rogue forwards operations to the origin. Node: how many it has sent.
    RogueForward = 25,
    /// A fault site inside the drivers fires (`buggify`). Node: the site; payload: the
    /// host (0 the origin, 1 + i tower i), the delay in µs where it has one.
    Buggify = 26,
    /// The run branches: from here on the environment draws from fresh streams. Node:
    /// none; payload: the branch seed.
    Branch = 27,
    /// The origin refuses a request as busy (`origin-busy`). Node: the tower; payload:
    /// the link.
    OriginBusy = 28,
    /// A busy refusal reaches the tower. Node: the tower; payload: the link.
    BusyRefusal = 29,
}

/// The trace of one run.
pub struct Trace {
    hasher: Sha256,
    events: u64,
    record: bool,
    lines: Vec<String>,
    lines_max: usize,
}

impl Trace {
    /// A new trace; `record` keeps text lines (up to `lines_max`, oldest dropped first is
    /// not done: recording stops at the limit).
    pub fn new(record: bool, lines_max: usize) -> Trace {
        Trace {
            hasher: Sha256::new(),
            events: 0,
            record,
            lines: Vec::new(),
            lines_max,
        }
    }

    /// Whether text lines are being recorded (callers skip formatting when not).
    pub fn recording(&self) -> bool {
        self.record
    }

    /// Fold one event: its time, its kind, a node number and payload words.
    pub fn event(&mut self, at: Time, kind: TraceKind, node: u64, payload: &[u64]) {
        self.events += 1;
        // The same bytes as one update per field, in one call: time, kind, node, and the
        // first payload words (every kind has at most two), any further words after.
        const WORDS: usize = 2;
        let mut buf = [0u8; 17 + 8 * WORDS];
        buf[..8].copy_from_slice(&at.as_micros().to_le_bytes());
        buf[8] = kind as u8;
        buf[9..17].copy_from_slice(&node.to_le_bytes());
        let (first, rest) = payload.split_at(payload.len().min(WORDS));
        for (i, w) in first.iter().enumerate() {
            buf[17 + 8 * i..25 + 8 * i].copy_from_slice(&w.to_le_bytes());
        }
        self.hasher.update(&buf[..17 + 8 * first.len()]);
        for w in rest {
            self.hasher.update(w.to_le_bytes());
        }
    }

    /// Record a text line (only kept when recording).
    pub fn line(&mut self, at: Time, text: impl FnOnce() -> String) {
        if self.record && self.lines.len() < self.lines_max {
            let t = text();
            self.lines.push(format!("{at} {t}"));
        }
    }

    /// Events folded so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Finish: the hex hash and the recorded lines.
    pub fn finish(self) -> (String, Vec<String>) {
        let digest = self.hasher.finalize();
        let mut hex = String::with_capacity(64);
        for b in digest.iter() {
            hex.push_str(&format!("{b:02x}"));
        }
        (hex, self.lines)
    }
}
