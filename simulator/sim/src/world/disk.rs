//! The simulated disks: one [`SimDisk`] per tower and one for the origin, and the
//! world's side of a storage action (write, delete, fsync) and its completion.
//!
//! A disk keeps pending and durable records apart. Every write or delete is numbered when
//! issued and stays pending; an fsync makes durable exactly the writes issued before it,
//! and a failed fsync loses them (the kernel dropped the dirty pages: what it covered is
//! gone, and later writes are unaffected). A crash drops everything pending; a torn write
//! (a crash mid-write) leaves the newest pending chunk write durable with half its bytes.
//! Bit rot flips one bit in durable chunks chosen from the `disk` stream. Fault overlays
//! ([`DiskFaults`]: write and fsync errors, disk full, a lost database connection, extra
//! latency) are recomputed by the world from the active faults.
//!
//! Each stored chunk carries whether its bytes match their hash, computed when they are
//! written or changed — equivalent to hashing on every read, and far cheaper.
//!
//! Map: [`DiskFaults`], [`Stored`], [`SimDisk`]; `World::disk_action` (issue) and
//! `World::fsync_done` (complete).
//!
//! Not covered: the devices' own storage (devices do not crash in the simulator), space
//! accounting (a disk is full only under the `disk-full` fault), partial writes of
//! records other than chunks.

use super::World;
use super::events::{Ev, Node};
use super::rng::Stream;
use crate::obs::Obs;
use crate::plant::Plant;
use bytes::Bytes;
use sovereign_logic::content::verify_chunk;
use sovereign_logic::entropy::Entropy;
use sovereign_logic::io::{Action, DurableState, Key, Record};
use sovereign_logic::protocol::IdemKey;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Base latency of a write or delete.
const WRITE_LATENCY: Duration = Duration::from_micros(300);
/// Base latency of an fsync.
const FSYNC_LATENCY: Duration = Duration::from_millis(3);

/// Fault overlays on a disk, recomputed from the active faults.
#[derive(Clone, Debug, Default)]
pub(super) struct DiskFaults {
    pub(super) write_error: f64,
    pub(super) fsync_error: f64,
    /// Active `disk-full` faults: every write fails while any is.
    pub(super) full: u32,
    /// Active `db-lost` faults: every write but a chunk's fails while any is.
    pub(super) db_lost: u32,
    pub(super) extra_latency: Duration,
}

/// A stored record and, for chunks, whether its bytes match their hash.
#[derive(Clone, Debug)]
pub(super) struct Stored {
    pub(super) record: Record,
    pub(super) intact: bool,
}

impl Stored {
    fn new(record: Record) -> Stored {
        let intact = match &record {
            Record::Chunk(c) => verify_chunk(&c.hash, &c.bytes),
            _ => true,
        };
        Stored { record, intact }
    }
}

/// One simulated disk.
pub(super) struct SimDisk {
    durable: BTreeMap<Key, Stored>,
    /// Issued writes (`Some`) and deletes (`None`) no fsync has covered yet, by number.
    pending: Vec<(u64, Key, Option<Stored>)>,
    /// The number of the last write or delete issued.
    pub(super) issued: u64,
    pub(super) faults: DiskFaults,
}

impl SimDisk {
    pub(super) fn new() -> SimDisk {
        SimDisk {
            durable: BTreeMap::new(),
            pending: Vec::new(),
            issued: 0,
            faults: DiskFaults::default(),
        }
    }

    /// What a process recovering from this disk finds (the durable records only).
    pub(super) fn durable_state(&self) -> DurableState {
        self.durable
            .iter()
            .map(|(k, s)| (k.clone(), s.record.clone()))
            .collect()
    }

    /// What a read of `key` finds: the newest pending write or delete, else the durable
    /// record.
    pub(super) fn read(&self, key: &Key) -> Option<&Stored> {
        for (_, k, s) in self.pending.iter().rev() {
            if k == key {
                return s.as_ref();
            }
        }
        self.durable.get(key)
    }

    /// Issue a write of `record` (pending until an fsync covers it).
    pub(super) fn write(&mut self, record: Record) {
        self.issued += 1;
        let n = self.issued;
        self.pending
            .push((n, record.key(), Some(Stored::new(record))));
    }

    /// Issue a delete of `key` (pending until an fsync covers it).
    pub(super) fn delete(&mut self, key: Key) {
        self.issued += 1;
        let n = self.issued;
        self.pending.push((n, key, None));
    }

    /// Why a write of `record` fails under the disk's faults, if it does (a write error
    /// is drawn from `rng`).
    pub(super) fn write_error(&self, record: &Record, rng: &mut Stream) -> Option<String> {
        let f = &self.faults;
        if f.full > 0 {
            return Some("ENOSPC: disk full".into());
        }
        if f.db_lost > 0 && !matches!(record, Record::Chunk(_)) {
            return Some("database connection lost".into());
        }
        if f.write_error > 0.0 && rng.chance(f.write_error) {
            return Some("EIO: write failed".into());
        }
        None
    }

    /// Make durable the writes issued up to `upto` (a good fsync).
    pub(super) fn sync(&mut self, upto: u64) {
        let pending = std::mem::take(&mut self.pending);
        for (n, k, s) in pending {
            if n <= upto {
                match s {
                    Some(s) => {
                        self.durable.insert(k, s);
                    }
                    None => {
                        self.durable.remove(&k);
                    }
                }
            } else {
                self.pending.push((n, k, s));
            }
        }
    }

    /// Drop writes issued up to `upto` that were not synced (a failed fsync).
    pub(super) fn lose(&mut self, upto: u64) {
        self.pending.retain(|(n, _, _)| *n > upto);
    }

    /// A crash: unsynced writes are lost; with `torn`, the newest unsynced chunk write
    /// lands half-written.
    pub(super) fn crash(&mut self, torn: bool) {
        if torn
            && let Some((_, key, Some(s))) = self
                .pending
                .iter()
                .rev()
                .find(|(_, _, s)| {
                    matches!(
                        s,
                        Some(Stored {
                            record: Record::Chunk(_),
                            ..
                        })
                    )
                })
                .cloned()
            && let Record::Chunk(mut c) = s.record
        {
            let half = c.bytes.len() / 2;
            c.bytes = c.bytes.slice(..half);
            let intact = verify_chunk(&c.hash, &c.bytes);
            self.durable.insert(
                key,
                Stored {
                    record: Record::Chunk(c),
                    intact,
                },
            );
        }
        self.pending.clear();
    }

    /// Bit rot in up to `n` durable chunks, chosen by `rng`; returns how many rotted.
    pub(super) fn rot(&mut self, n: u32, rng: &mut Stream) -> u32 {
        let keys: Vec<Key> = self
            .durable
            .iter()
            .filter(|(_, s)| matches!(s.record, Record::Chunk(_)))
            .map(|(k, _)| k.clone())
            .collect();
        let mut done = 0;
        for _ in 0..n {
            if keys.is_empty() {
                break;
            }
            let k = &keys[rng.below(keys.len() as u64) as usize];
            if let Some(s) = self.durable.get_mut(k)
                && let Record::Chunk(c) = &mut s.record
                && !c.bytes.is_empty()
            {
                let mut v = c.bytes.to_vec();
                let i = rng.below(v.len() as u64) as usize;
                v[i] ^= 1 << rng.below(8);
                c.bytes = Bytes::from(v);
                s.intact = verify_chunk(&c.hash, &c.bytes);
                done += 1;
            }
        }
        done
    }

    /// The operations in the durable outbox.
    pub(super) fn outbox_keys(&self) -> BTreeSet<IdemKey> {
        self.durable
            .keys()
            .filter_map(|k| match k {
                Key::Outbox(key) => Some(key.clone()),
                _ => None,
            })
            .collect()
    }
}

impl World {
    fn disk_mut(&mut self, node: Node) -> &mut SimDisk {
        match node {
            Node::Origin => &mut self.origin.disk,
            Node::Tower(i) => &mut self.towers[i].disk,
        }
    }

    /// Complete an fsync of `node`'s disk up to write `upto`: a failed one loses those
    /// writes (and is observed as a storage error), a good one makes them durable.
    pub(super) fn fsync_done(&mut self, node: Node, upto: u64, fail: bool) -> Result<(), String> {
        if fail {
            self.disk_mut(node).lose(upto);
            let tower = match node {
                Node::Origin => None,
                Node::Tower(i) => Some(i),
            };
            self.observe(Obs::StorageError { tower });
            Err("EIO: fsync failed".to_string())
        } else {
            self.disk_mut(node).sync(upto);
            Ok(())
        }
    }

    /// Carry out a write, delete or fsync of `node` on its simulated disk; the completion
    /// comes back as an event after the disk's latency (scaled by a slow fault).
    pub(super) fn disk_action(&mut self, node: Node, action: Action) {
        let (slow, incarnation) = match node {
            Node::Origin => (self.origin.slow, self.origin.incarnation),
            Node::Tower(i) => (self.towers[i].slow, self.towers[i].incarnation),
        };
        let now = self.now;
        match action {
            Action::Write { id, record } => {
                let disk = match node {
                    Node::Origin => &self.origin.disk,
                    Node::Tower(i) => &self.towers[i].disk,
                };
                let fail = disk.write_error(&record, &mut self.disk_rng);
                // Planted `keep-refused-writes`: the disk reports the error but keeps what
                // it was given, and the next good fsync makes it durable.
                let keep = self.plant == Some(Plant::KeepRefusedWrites);
                let d = self.disk_mut(node);
                if fail.is_none() || keep {
                    d.write(record);
                }
                let at = now + (WRITE_LATENCY + d.faults.extra_latency).mul_f64(slow);
                let ok = fail.map_or(Ok(()), Err);
                self.push(
                    at,
                    Ev::WriteDone {
                        node,
                        incarnation,
                        id,
                        ok,
                    },
                );
            }
            Action::Delete { id, key } => {
                let d = self.disk_mut(node);
                d.delete(key);
                let at = now + (WRITE_LATENCY + d.faults.extra_latency).mul_f64(slow);
                self.push(
                    at,
                    Ev::WriteDone {
                        node,
                        incarnation,
                        id,
                        ok: Ok(()),
                    },
                );
            }
            Action::Fsync { id } => {
                let p = self.disk_mut(node).faults.fsync_error;
                let fail = self.disk_rng.chance(p);
                let d = self.disk_mut(node);
                let at = now + (FSYNC_LATENCY + d.faults.extra_latency).mul_f64(slow);
                let upto = d.issued;
                self.push(
                    at,
                    Ev::FsyncDone {
                        node,
                        incarnation,
                        id,
                        upto,
                        fail,
                    },
                );
            }
            other => debug_assert!(false, "not a disk action: {other:?}"),
        }
    }
}
