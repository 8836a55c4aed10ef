//! The simulated disks: one [`SimDisk`] per tower and one for the origin, and the
//! world's side of a storage action (write, delete, fsync) and its completion.
//!
//! A disk keeps pending and durable records apart with the model every simulated disk
//! shares (`sovereign_logic::io::DiskModel`): every write or delete is numbered when
//! issued and stays pending; an fsync makes durable exactly the writes issued before it,
//! and a failed fsync loses them (the kernel dropped the dirty pages: what it covered is
//! gone, and later writes are unaffected). A crash drops everything pending; a torn write
//! (a crash mid-write) leaves the newest pending chunk write durable with half its bytes.
//! Bit rot flips one bit in durable chunks chosen from the `disk` stream. Fault overlays
//! ([`DiskFaults`]: write and fsync errors, disk full, a lost database connection, extra
//! latency) are recomputed by the world from the active faults.
//!
//! Each stored chunk carries whether its bytes match their hash, computed when they are
//! written or changed — equivalent to hashing on every read, and far cheaper. The disks
//! share one memory of the buffers they hashed ([`Hashes`]): a chunk's bytes are shared
//! (not copied) from the origin's publish to every tower that fetches them, so each
//! buffer is hashed once per run, not once per disk it lands on.
//!
//! Map: [`DiskFaults`], [`Stored`], [`Hashes`], [`SimDisk`]; `World::disk_action` (issue) and
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
use sovereign_logic::content::{ChunkHash, verify_chunk};
use sovereign_logic::entropy::Entropy;
use sovereign_logic::io::{Action, DiskModel, Key, Record};
use sovereign_logic::protocol::IdemKey;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
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
    /// Active `db-pause` faults: the database is frozen while any is, so every call but
    /// a chunk file's is held until it thaws ([`SimDisk::held`]); none fails.
    pub(super) frozen: u32,
    pub(super) extra_latency: Duration,
}

/// A stored record and, for chunks, whether its bytes match their hash.
#[derive(Clone, Debug)]
pub(super) struct Stored {
    pub(super) record: Record,
    pub(super) intact: bool,
    /// For an apply-log record, its operation's fingerprint, computed once when written
    /// (no fault changes such a record), so that the origin's rebuilds do not hash every
    /// operation ever applied again (`Origin::recover_fingerprinted`). Boxed: most
    /// records are not apply-log records and pay one pointer, not 33 bytes.
    pub(super) fingerprint: Option<Box<ChunkHash>>,
}

impl Stored {
    fn new(record: Record, hashes: &mut Hashes) -> Stored {
        let intact = match &record {
            Record::Chunk(c) => hashes.verify(&c.hash, &c.bytes),
            _ => true,
        };
        let fingerprint = match &record {
            Record::Applied { op, .. } => Some(Box::new(op.fingerprint())),
            _ => None,
        };
        Stored {
            record,
            intact,
            fingerprint,
        }
    }
}

/// The SHA-256 of chunk buffers the disks have hashed, by where the bytes live (address
/// and length), each with a handle on its buffer. `Bytes` never change while a handle
/// exists, and the handle keeps the memory from being freed and reused for other bytes,
/// so a buffer found here has exactly the bytes that were hashed: the verdict is the one
/// hashing again would give. Bytes changed by a fault (bit rot, a torn write) are new
/// buffers and are hashed anew. At most [`Hashes::KEPT`] buffers are remembered, the
/// oldest forgotten first; a forgotten one is hashed again if it comes back. Whether a
/// buffer is found never changes a verdict, so the addresses (which differ from run to
/// run) never reach the trace.
#[derive(Default)]
pub(super) struct Hashes {
    by_place: BTreeMap<(usize, usize), (ChunkHash, Bytes)>,
    order: VecDeque<(usize, usize)>,
}

impl Hashes {
    /// How many buffers are remembered: a run's recent publishes, which is what the towers
    /// fetch and write next.
    const KEPT: usize = 16 * 1024;

    /// Whether `bytes` hash to `hash` (`verify_chunk`'s verdict, hashing only a buffer
    /// not seen before).
    pub(super) fn verify(&mut self, hash: &ChunkHash, bytes: &Bytes) -> bool {
        let place = (bytes.as_ptr() as usize, bytes.len());
        if let Some((known, _)) = self.by_place.get(&place) {
            return known == hash;
        }
        let actual = ChunkHash::of(bytes);
        if self.order.len() >= Self::KEPT
            && let Some(oldest) = self.order.pop_front()
        {
            self.by_place.remove(&oldest);
        }
        self.by_place.insert(place, (actual, bytes.clone()));
        self.order.push_back(place);
        actual == *hash
    }
}

/// What a crash lost: writes not yet synced, and how many of them were catalog entries
/// (a publish not yet durable).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Lost {
    /// Unsynced writes and deletes dropped.
    pub(super) writes: usize,
    /// Of them, catalog entries.
    pub(super) entries: usize,
}

impl Lost {
    fn of(lost: &[(u64, Key, Option<Stored>)]) -> Lost {
        Lost {
            writes: lost.len(),
            entries: lost
                .iter()
                .filter(|(_, _, s)| {
                    matches!(
                        s,
                        Some(Stored {
                            record: Record::Entry(_),
                            ..
                        })
                    )
                })
                .count(),
        }
    }
}

/// One simulated disk: the shared pending/durable model ([`DiskModel`]) of records with
/// their checksum verdicts, and the faults on top.
pub(super) struct SimDisk {
    writes: DiskModel<Stored>,
    pub(super) faults: DiskFaults,
    /// Completions of calls a frozen database holds, each with its latency: sent when it
    /// thaws (`World::recompute_overlays`), in the order the calls were made.
    pub(super) held: Vec<(Duration, Ev)>,
}

impl SimDisk {
    pub(super) fn new() -> SimDisk {
        SimDisk {
            writes: DiskModel::new(),
            faults: DiskFaults::default(),
            held: Vec::new(),
        }
    }

    /// What a process recovering from this disk finds: the durable records, lent in key
    /// order (a restart copies only what the rebuilt process keeps).
    pub(super) fn durable_records(&self) -> impl Iterator<Item = (&Key, &Record)> + Clone {
        self.writes.durable().iter().map(|(k, s)| (k, &s.record))
    }

    /// [`SimDisk::durable_records`] with each apply-log record's fingerprint.
    pub(super) fn durable_fingerprinted(
        &self,
    ) -> impl Iterator<Item = (&Key, &Record, Option<ChunkHash>)> {
        self.writes
            .durable()
            .iter()
            .map(|(k, s)| (k, &s.record, s.fingerprint.as_deref().copied()))
    }

    /// Start listing the keys made durable from now on ([`DiskModel::mark`]).
    pub(super) fn mark(&mut self) {
        self.writes.mark();
    }

    /// Whether the disk can still list the records made durable since its mark.
    pub(super) fn marked(&self) -> bool {
        self.writes.since_mark().is_some()
    }

    /// The records made durable since the mark, in key order, with their fingerprints;
    /// `None` when the durable records changed in another way since
    /// ([`DiskModel::since_mark`]).
    pub(super) fn durable_since_mark(
        &self,
    ) -> Option<impl Iterator<Item = (&Key, &Record, Option<ChunkHash>)>> {
        let durable = self.writes.durable();
        Some(self.writes.since_mark()?.iter().filter_map(move |k| {
            let (k, s) = durable.get_key_value(k)?;
            Some((k, &s.record, s.fingerprint.as_deref().copied()))
        }))
    }

    /// What a read of `key` finds: the newest pending write or delete, else the durable
    /// record.
    pub(super) fn read(&self, key: &Key) -> Option<&Stored> {
        self.writes.read(key)
    }

    /// Issue a write of `record` (pending until an fsync covers it).
    pub(super) fn write(&mut self, record: Record, hashes: &mut Hashes) {
        self.writes.write(record.key(), Stored::new(record, hashes));
    }

    /// Issue a delete of `key` (pending until an fsync covers it).
    pub(super) fn delete(&mut self, key: Key) {
        self.writes.delete(key);
    }

    /// The number of the last write or delete issued (what an fsync issued now covers).
    pub(super) fn issued(&self) -> u64 {
        self.writes.issued()
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
        self.writes.sync(upto);
    }

    /// Drop writes issued up to `upto` that were not synced (a failed fsync).
    pub(super) fn lose(&mut self, upto: u64) -> Lost {
        Lost::of(&self.writes.lose(upto))
    }

    /// A crash: unsynced writes are lost; with `torn`, the newest unsynced chunk write
    /// lands half-written.
    pub(super) fn crash(&mut self, torn: bool) -> Lost {
        let lost = self.writes.crash();
        let n = Lost::of(&lost);
        if torn
            && let Some((_, key, Some(s))) = lost.into_iter().rev().find(|(_, _, s)| {
                matches!(
                    s,
                    Some(Stored {
                        record: Record::Chunk(_),
                        ..
                    })
                )
            })
            && let Record::Chunk(mut c) = s.record
        {
            let half = c.bytes.len() / 2;
            c.bytes = c.bytes.slice(..half);
            let intact = verify_chunk(&c.hash, &c.bytes);
            self.writes.durable_mut().insert(
                key,
                Stored {
                    record: Record::Chunk(c),
                    intact,
                    fingerprint: None,
                },
            );
        }
        n
    }

    /// Bit rot in up to `n` durable chunks, chosen by `rng`; returns how many rotted.
    pub(super) fn rot(&mut self, n: u32, rng: &mut Stream) -> u32 {
        let durable = self.writes.durable_mut();
        let keys: Vec<Key> = durable
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
            if let Some(s) = durable.get_mut(k)
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
        self.writes
            .durable()
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
            let lost = self.disk_mut(node).lose(upto);
            if node == Node::Origin {
                self.reach_by_origin_loss(lost);
            }
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
        // A frozen database answers nothing until it thaws; chunk files are not in it.
        let frozen = !matches!(
            &action,
            Action::Write {
                record: Record::Chunk(_),
                ..
            } | Action::Delete {
                key: Key::Chunk(_),
                ..
            }
        ) && self.disk_mut(node).faults.frozen > 0;
        let (latency, done) = match action {
            Action::Write { id, record } => {
                let disk = match node {
                    Node::Origin => &self.origin.disk,
                    Node::Tower(i) => &self.towers[i].disk,
                };
                let fail = disk.write_error(&record, &mut self.disk_rng);
                if fail.is_some() && node == Node::Origin {
                    self.origin.write_refused = true;
                }
                // Planted `keep-refused-writes`: the disk reports the error but keeps what
                // it was given, and the next good fsync makes it durable.
                let keep = self.plant == Some(Plant::KeepRefusedWrites);
                if fail.is_none() || keep {
                    let mut hashes = std::mem::take(&mut self.hashes);
                    self.disk_mut(node).write(record, &mut hashes);
                    self.hashes = hashes;
                }
                let ok = fail.map_or(Ok(()), Err);
                let done = Ev::WriteDone {
                    node,
                    incarnation,
                    id,
                    ok,
                };
                (WRITE_LATENCY, done)
            }
            Action::Delete { id, key } => {
                self.disk_mut(node).delete(key);
                let done = Ev::WriteDone {
                    node,
                    incarnation,
                    id,
                    ok: Ok(()),
                };
                (WRITE_LATENCY, done)
            }
            Action::Fsync { id } => {
                if node == Node::Origin {
                    let inc = self.origin.incarnation;
                    let clean = !std::mem::take(&mut self.origin.write_refused);
                    let f = &mut self.origin.fsyncs_in_flight;
                    f.retain(|(i, _, _)| *i == inc);
                    f.push((inc, id, clean));
                }
                let d = self.disk_mut(node);
                let (p, upto) = (d.faults.fsync_error, d.issued());
                let fail = self.disk_rng.chance(p);
                let done = Ev::FsyncDone {
                    node,
                    incarnation,
                    id,
                    upto,
                    fail,
                };
                (FSYNC_LATENCY, done)
            }
            other => {
                debug_assert!(false, "not a disk action: {other:?}");
                return;
            }
        };
        let extra = self.disk_mut(node).faults.extra_latency;
        let mut after = (latency + extra).mul_f64(slow);
        if let Ev::FsyncDone { incarnation, .. } = done {
            after = self.buggify_fsync(node, incarnation, after);
        }
        if frozen {
            self.disk_mut(node).held.push((after, done));
        } else {
            self.push(self.now + after, done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sovereign_logic::content::{Chunk, ChunkHash};
    use sovereign_logic::protocol::{DeviceId, OpKind, Operation};

    /// A chunk record of `len` bytes filled with `fill`, and its key.
    fn chunk(fill: u8, len: usize) -> (Key, Record) {
        let bytes = Bytes::from(vec![fill; len]);
        let c = Chunk {
            hash: ChunkHash::of(&bytes),
            bytes,
        };
        (Key::Chunk(c.hash), Record::Chunk(c))
    }

    /// An outbox record (not a chunk) for operation `n`, and its key.
    fn outbox(n: u32) -> (Key, Record) {
        let op = Operation {
            key: IdemKey(format!("op-{n}").into()),
            device: DeviceId(1),
            kind: OpKind::Message {
                to: "clinic-0".into(),
                body: format!("report {n}"),
            },
        };
        (Key::Outbox(op.key.clone()), Record::Outbox(op))
    }

    /// The chunk bytes stored under `key` and whether they are intact.
    fn bytes_at(d: &SimDisk, key: &Key) -> Option<(Bytes, bool)> {
        match d.read(key)? {
            Stored {
                record: Record::Chunk(c),
                intact,
                ..
            } => Some((c.bytes.clone(), *intact)),
            _ => None,
        }
    }

    fn durable_keys(d: &SimDisk) -> Vec<Key> {
        d.durable_records().map(|(k, _)| k.clone()).collect()
    }

    #[test]
    fn a_buffer_hashed_once_gets_the_verdict_hashing_again_would_give() {
        // Goal: the shared memory of hashed buffers answers like `verify_chunk` for the
        // same bytes (shared, not copied), for a wrong claim, for a changed copy, and
        // after the buffer was forgotten.
        let (_, Record::Chunk(good)) = chunk(7, 300) else {
            unreachable!()
        };
        let mut h = Hashes::default();
        assert!(h.verify(&good.hash, &good.bytes));
        let shared = good.bytes.clone();
        assert!(h.verify(&good.hash, &shared), "the same buffer, shared");
        let wrong = ChunkHash::of(b"another chunk");
        assert!(!h.verify(&wrong, &shared), "a claim the bytes do not match");
        let mut flipped = shared.to_vec();
        flipped[3] ^= 1;
        assert!(
            !h.verify(&good.hash, &Bytes::from(flipped)),
            "a changed copy"
        );
        assert!(
            h.verify(&good.hash, &Bytes::from(shared.to_vec())),
            "a good copy"
        );
        let half = shared.slice(..150);
        assert!(!h.verify(&good.hash, &half), "a prefix of the same buffer");
        // Fill the memory past its bound: the first buffer is forgotten, then judged by
        // hashing again, with the same verdict.
        let keep: Vec<Bytes> = (0..Hashes::KEPT)
            .map(|i| Bytes::from((i as u32).to_le_bytes().to_vec()))
            .collect();
        for b in &keep {
            h.verify(&ChunkHash::of(b), b);
        }
        assert!(h.order.len() <= Hashes::KEPT && h.by_place.len() == h.order.len());
        assert!(
            !h.by_place
                .contains_key(&(good.bytes.as_ptr() as usize, 300))
        );
        assert!(h.verify(&good.hash, &good.bytes) && !h.verify(&wrong, &good.bytes));
    }

    #[test]
    fn a_crash_keeps_what_was_synced_and_loses_the_rest() {
        // Goal: writes and deletes are pending (yet readable) until an fsync covers them;
        // a crash drops what no fsync covered and keeps what one did.
        let mut d = SimDisk::new();
        let (a, ra) = chunk(1, 64);
        let (b, rb) = outbox(1);
        let (c, rc) = outbox(2);
        d.write(ra, &mut Hashes::default());
        d.write(rb, &mut Hashes::default());
        d.sync(d.issued());
        d.write(rc, &mut Hashes::default());
        d.delete(a.clone());
        assert!(
            d.read(&c).is_some() && d.read(&a).is_none(),
            "pending is readable"
        );
        d.write(chunk(1, 64).1, &mut Hashes::default());
        assert!(
            d.read(&a).is_some(),
            "reads see the newest pending write of a key"
        );
        assert_eq!(durable_keys(&d), vec![a.clone(), b.clone()]);
        // A pending catalog entry (a publish not yet durable) is counted apart.
        let (manifest, _) = sovereign_logic::content::publish(
            sovereign_logic::content::ItemId::new("news"),
            1,
            sovereign_logic::content::Priority::P1,
            b"headline",
            sovereign_logic::content::ChunkParams::default(),
        )
        .expect("a manifest");
        d.write(
            Record::Entry(sovereign_logic::protocol::CatalogEntry { seq: 1, manifest }),
            &mut Hashes::default(),
        );
        assert_eq!(
            d.crash(false),
            Lost {
                writes: 4,
                entries: 1
            }
        );
        assert_eq!(durable_keys(&d), vec![a.clone(), b.clone()]);
        assert!(d.read(&a).is_some() && d.read(&c).is_none());
        assert_eq!(d.outbox_keys().len(), 1);
    }

    #[test]
    fn an_fsync_makes_durable_exactly_the_writes_issued_before_it() {
        // Goal: an fsync covers the writes issued up to it, not the ones after (they
        // were still in flight when it was issued).
        let mut d = SimDisk::new();
        let (a, ra) = outbox(1);
        let (b, rb) = outbox(2);
        d.write(ra, &mut Hashes::default());
        let upto = d.issued();
        d.write(rb, &mut Hashes::default());
        d.sync(upto);
        assert_eq!(durable_keys(&d), vec![a.clone()]);
        d.crash(false);
        assert_eq!(durable_keys(&d), vec![a.clone()]);
        assert!(d.read(&b).is_none());
        d.delete(a);
        d.sync(d.issued());
        assert!(
            durable_keys(&d).is_empty(),
            "a synced delete removes the record"
        );
    }

    #[test]
    fn a_failed_fsync_loses_the_writes_it_covered_and_only_those() {
        // Goal: the lying fsync of fsyncgate: the writes a failed fsync covered are gone
        // (even to reads, and a later good fsync does not bring them back); the durable
        // version under the same key and later writes are unaffected.
        let mut d = SimDisk::new();
        let (x, x1) = chunk(1, 64);
        d.write(x1.clone(), &mut Hashes::default());
        d.sync(d.issued());
        let (k, rk) = outbox(1);
        d.write(rk, &mut Hashes::default());
        d.delete(x.clone());
        let upto = d.issued();
        let (later, rl) = outbox(2);
        d.write(rl, &mut Hashes::default());
        d.lose(upto);
        assert!(d.read(&k).is_none(), "the covered write is gone");
        assert!(
            d.read(&x).is_some(),
            "the covered delete is gone: the durable one shows"
        );
        d.sync(d.issued());
        assert_eq!(durable_keys(&d), vec![x, later]);
    }

    #[test]
    fn a_torn_write_leaves_the_newest_unsynced_chunk_half_written_and_rotten() {
        // Goal: a crash mid-write (torn) makes the newest pending chunk write durable with
        // half its bytes, which no longer match their hash (a read reports it rotten);
        // older pending writes and non-chunk records are lost as in any crash.
        let setup = || {
            let mut d = SimDisk::new();
            let (a, ra) = chunk(1, 64);
            d.write(ra, &mut Hashes::default());
            d.sync(d.issued());
            let (b, rb) = chunk(2, 64);
            let (c, rc) = chunk(3, 64);
            let (r, rr) = outbox(1);
            d.write(rb, &mut Hashes::default());
            d.write(rc, &mut Hashes::default());
            d.write(rr, &mut Hashes::default());
            (d, [a, b, c, r])
        };
        let (mut d, [a, b, c, r]) = setup();
        d.crash(true);
        assert_eq!(bytes_at(&d, &a), Some((Bytes::from(vec![1; 64]), true)));
        assert_eq!(bytes_at(&d, &c), Some((Bytes::from(vec![3; 32]), false)));
        assert!(d.read(&b).is_none() && d.read(&r).is_none());
        let (mut d, [_, _, c, _]) = setup();
        d.crash(false);
        assert!(d.read(&c).is_none(), "not torn: the chunk is simply lost");
        let mut d = SimDisk::new();
        d.write(outbox(1).1, &mut Hashes::default());
        d.crash(true);
        assert!(
            durable_keys(&d).is_empty(),
            "no chunk pending: nothing torn"
        );
    }

    #[test]
    fn bit_rot_flips_one_bit_of_a_durable_chunk_and_is_seeded() {
        // Goal: rot flips one bit in durable chunks (a read then finds them rotten), never
        // in pending writes or other records; the same seed rots the same bit, and on a
        // disk without chunks it draws nothing.
        let setup = || {
            let mut d = SimDisk::new();
            for fill in 1..=5 {
                d.write(chunk(fill, 256).1, &mut Hashes::default());
            }
            d.write(outbox(1).1, &mut Hashes::default());
            d.sync(d.issued());
            d.write(chunk(9, 256).1, &mut Hashes::default());
            d
        };
        let rotted = |seed: u64| {
            let mut d = setup();
            assert_eq!(d.rot(1, &mut Stream::new(seed, "disk")), 1);
            d
        };
        let d = rotted(7);
        let mut bad = Vec::new();
        for fill in 1..=5 {
            let (key, _) = chunk(fill, 256);
            let (bytes, intact) = bytes_at(&d, &key).expect("still stored");
            let flipped: u32 = bytes.iter().map(|b| (b ^ fill).count_ones()).sum();
            assert_eq!(flipped == 0, intact, "chunk {fill}");
            if !intact {
                assert_eq!((flipped, bytes.len()), (1, 256), "one bit of chunk {fill}");
                bad.push((fill, bytes));
            }
        }
        assert_eq!(bad.len(), 1);
        assert_eq!(bytes_at(&d, &chunk(9, 256).0).map(|(_, ok)| ok), Some(true));
        assert!(d.read(&outbox(1).0).is_some());
        let again = rotted(7);
        assert_eq!(
            bytes_at(&again, &chunk(bad[0].0, 256).0).unwrap().0,
            bad[0].1
        );
        let (mut chunks, mut spots) = (BTreeSet::new(), BTreeSet::new());
        for seed in 0..8 {
            let d = rotted(seed);
            for fill in 1..=5 {
                let (bytes, intact) = bytes_at(&d, &chunk(fill, 256).0).unwrap();
                if !intact {
                    chunks.insert(fill);
                    spots.insert(bytes);
                }
            }
        }
        assert!(
            chunks.len() > 1 && spots.len() > 1,
            "other seeds rot elsewhere"
        );
        let mut empty = SimDisk::new();
        let (mut r, mut twin) = (Stream::new(1, "disk"), Stream::new(1, "disk"));
        assert_eq!(empty.rot(3, &mut r), 0);
        assert_eq!(r.next_u64(), twin.next_u64(), "no draws");
    }

    #[test]
    fn write_faults_refuse_writes_as_the_fault_says() {
        // Goal: a full disk refuses every write, a lost database every write but a
        // chunk's (chunks are files), a write error ~p of them.
        let mut r = Stream::new(3, "disk");
        let mut d = SimDisk::new();
        let (_, c) = chunk(1, 16);
        let (_, o) = outbox(1);
        assert_eq!(d.write_error(&o, &mut r), None);
        d.faults.full = 1;
        assert!(
            d.write_error(&c, &mut r)
                .is_some_and(|e| e.starts_with("ENOSPC"))
        );
        d.faults.full = 0;
        d.faults.db_lost = 1;
        assert_eq!(d.write_error(&c, &mut r), None);
        assert!(d.write_error(&o, &mut r).is_some());
        d.faults.db_lost = 0;
        d.faults.write_error = 0.3;
        let failed = (0..10_000)
            .filter(|_| d.write_error(&o, &mut r).is_some())
            .count();
        assert!((2_800..=3_200).contains(&failed), "failed {failed}");
    }
}
