//! The event trace: every input the world hands to a state machine, folded into a
//! SHA-256 as it happens; optionally recorded as text lines for `replay --trace`.
//!
//! Same seed + scenario + build ⇒ byte-identical trace ⇒ the same hash. The hash covers
//! what each node was told and when (kind, node, virtual time, and a digest of the
//! payload), which is what determines everything the logic does.
//!
//! Not covered: the contents of the text lines are for people; only the hash is a contract.

use sha2::{Digest, Sha256};
use sovereign_logic::Time;

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

    /// Fold one event: its time, a kind tag, a node number and payload words.
    pub fn event(&mut self, at: Time, kind: u8, node: u64, payload: &[u64]) {
        self.events += 1;
        self.hasher.update(at.as_micros().to_le_bytes());
        self.hasher.update([kind]);
        self.hasher.update(node.to_le_bytes());
        for w in payload {
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
