//! A hand-driven test harness: one origin, one tower, a few devices, passing messages by
//! hand (quinn-proto's `Pair` is the model). It exists so that the logic can be tested end
//! to end before — and independently of — the simulator.
//!
//! What it models: one uplink between tower and origin with a bandwidth cap and latency,
//! serialised per direction (a byte queues behind the bytes sent before it); local Wi-Fi
//! to devices with a fixed latency; a disk per node that keeps pending and durable
//! writes apart (an fsync makes durable exactly the writes issued before it; a crash
//! drops the rest), with an optional fsync delay so a test can crash in between.
//!
//! What it does not model: loss, jitter, several towers, power physics, probes failing
//! (probes answer "up" unless the link is cut). The simulator does all of that.

use crate::content::{ChunkHash, ItemId, Priority, verify_chunk};
use crate::device::{Device, DeviceConfig};
use crate::io::{Action, DiskModel, Event, Key, Record, WriteId};
use crate::origin::{Origin, OriginConfig};
use crate::protocol::{DeviceId, LinkKind, Message, OpKind, Peer, SentEntry, TowerId};
use crate::time::Time;
use crate::tower::link::ProbeOutcome;
use crate::tower::read::ChunkVerdict;
use crate::tower::{Tower, TowerConfig};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::Duration;

/// Which node a disk or completion belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Node {
    Origin,
    Tower,
}

/// A disk with pending and durable state (the shared model; no faults here).
pub type Disk = DiskModel<Record>;

enum Delivery {
    ToOrigin(Message),
    ToTower(Peer, Message),
    ToDevice(DeviceId, Message),
    WriteDone(Node, u64, WriteId),
    FsyncDone(Node, u64, WriteId, u64),
    Probe(u64, LinkKind),
}

/// A transmission over the uplink, for assertions about what moved when.
#[derive(Clone, Debug)]
pub struct Transmission {
    pub start: Time,
    pub msg: Message,
}

/// The world of the harness.
pub struct Pair {
    pub now: Time,
    pub origin: Origin,
    pub origin_disk: Disk,
    pub tower: Tower,
    pub tower_up: bool,
    pub tower_disk: Disk,
    pub tower_config: TowerConfig,
    tower_incarnation: u64,
    pub devices: BTreeMap<DeviceId, Device>,
    queue: BTreeMap<(Time, u64), Delivery>,
    seq: u64,
    pub link_up: bool,
    pub latency: Duration,
    pub bytes_per_s: u64,
    up_busy: Time,
    down_busy: Time,
    pub wifi_latency: Duration,
    pub fsync_delay: Duration,
    pub downlink: Vec<Transmission>,
    pub events: Vec<(Time, Event)>,
    /// Corrupt the next `n` chunk replies in transit (flip a byte).
    pub corrupt_next_chunks: u32,
}

impl Pair {
    pub fn new(tower_config: TowerConfig, bytes_per_s: u64) -> Pair {
        let tower = Tower::new(tower_config.clone(), 7, Time::ZERO);
        let mut pair = Pair {
            now: Time::ZERO,
            origin: Origin::new(OriginConfig::default()),
            origin_disk: Disk::default(),
            tower,
            tower_up: true,
            tower_disk: Disk::default(),
            tower_config,
            tower_incarnation: 0,
            devices: BTreeMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            link_up: true,
            latency: Duration::from_millis(40),
            bytes_per_s,
            up_busy: Time::ZERO,
            down_busy: Time::ZERO,
            wifi_latency: Duration::from_millis(5),
            fsync_delay: Duration::ZERO,
            downlink: Vec::new(),
            events: Vec::new(),
            corrupt_next_chunks: 0,
        };
        pair.drain();
        pair
    }

    pub fn add_device(&mut self, id: DeviceId) {
        let cfg = DeviceConfig::new(id, self.tower_config.id);
        self.devices.insert(id, Device::new(cfg, id.0 as u64));
    }

    /// Publish at the origin and wait until the entry is durable there (visible).
    pub fn publish(&mut self, item: &str, priority: Priority, bytes: &[u8]) {
        let entry = self
            .origin
            .publish(self.now, ItemId::new(item), priority, bytes)
            .expect("publish");
        self.drain();
        let visible = self.run_until(10_000, |p| {
            p.origin
                .catalog()
                .iter()
                .any(|e| e.manifest.item == entry.manifest.item && e.seq == entry.seq)
        });
        assert!(visible, "published entry became visible");
    }

    pub fn submit(&mut self, device: DeviceId, kind: OpKind) -> crate::protocol::IdemKey {
        let d = self.devices.get_mut(&device).expect("device");
        let key = d.submit(self.now, kind).expect("submit");
        self.drain();
        key
    }

    pub fn read(&mut self, device: DeviceId, item: &str) {
        let d = self.devices.get_mut(&device).expect("device");
        d.read(self.now, ItemId::new(item));
        self.drain();
    }

    /// Kill -9 the tower: unsynced writes and everything in flight to it are lost.
    pub fn crash_tower(&mut self) {
        self.tower_disk.crash();
        self.tower_up = false;
        self.tower_incarnation += 1;
    }

    /// Boot the tower from its durable state alone.
    pub fn restart_tower(&mut self) {
        self.tower = Tower::recover(
            self.tower_config.clone(),
            100 + self.tower_incarnation,
            self.now,
            self.tower_disk.durable(),
        );
        self.tower_up = true;
        self.drain();
    }

    fn push(&mut self, at: Time, d: Delivery) {
        self.seq += 1;
        self.queue.insert((at, self.seq), d);
    }

    fn transmit(&mut self, upstream: bool, msg: Message) -> Time {
        let bytes = msg.wire_size();
        let busy = if upstream {
            self.up_busy
        } else {
            self.down_busy
        };
        let start = busy.max(self.now);
        let end = start + Duration::from_micros(bytes * 1_000_000 / self.bytes_per_s.max(1));
        if upstream {
            self.up_busy = end;
        } else {
            self.down_busy = end;
            self.downlink.push(Transmission {
                start,
                msg: msg.clone(),
            });
        }
        end + self.latency
    }

    /// Carry out every pending action of every node.
    fn drain(&mut self) {
        loop {
            let mut any = false;
            while let Some(a) = self.origin.poll_action() {
                any = true;
                self.origin_action(a);
            }
            if self.tower_up {
                while let Some(a) = self.tower.poll_action() {
                    any = true;
                    self.tower_action(a);
                }
            }
            let ids: Vec<DeviceId> = self.devices.keys().copied().collect();
            for id in ids {
                while let Some(a) = self.devices.get_mut(&id).and_then(|d| d.poll_action()) {
                    any = true;
                    self.device_action(id, a);
                }
            }
            if !any {
                break;
            }
        }
    }

    fn disk_action(&mut self, node: Node, incarnation: u64, a: Action) {
        let delay = self.fsync_delay;
        let disk = match node {
            Node::Origin => &mut self.origin_disk,
            Node::Tower => &mut self.tower_disk,
        };
        match a {
            Action::Write { id, record } => {
                disk.write(record.key(), record);
                self.push(self.now, Delivery::WriteDone(node, incarnation, id));
            }
            Action::Delete { id, key } => {
                disk.delete(key);
                self.push(self.now, Delivery::WriteDone(node, incarnation, id));
            }
            Action::Fsync { id } => {
                let upto = disk.issued();
                self.push(
                    self.now + delay,
                    Delivery::FsyncDone(node, incarnation, id, upto),
                );
            }
            _ => unreachable!("not a disk action"),
        }
    }

    fn origin_action(&mut self, a: Action) {
        let a = match a {
            Action::ReadChunk { to, hash } => {
                let stored = match self.origin_disk.read(&Key::Chunk(hash)) {
                    Some(Record::Chunk(c)) => Some(c.bytes.clone()),
                    _ => None,
                };
                let msg = self.origin.chunk_reply(hash, stored);
                Action::Send { to, via: None, msg }
            }
            a => a,
        };
        match a {
            Action::Send { msg, .. } if self.link_up => {
                let at = self.transmit(false, msg.clone());
                self.push(at, Delivery::ToTower(Peer::Origin, msg));
            }
            Action::Emit(e) => self.events.push((self.now, e)),
            a @ (Action::Write { .. } | Action::Delete { .. } | Action::Fsync { .. }) => {
                self.disk_action(Node::Origin, 0, a)
            }
            _ => {}
        }
    }

    fn tower_action(&mut self, a: Action) {
        match a {
            Action::Send {
                to: Peer::Origin,
                msg,
                ..
            } if self.link_up => {
                let at = self.transmit(true, msg.clone());
                self.push(at, Delivery::ToOrigin(msg));
            }
            Action::Send {
                to: Peer::Origin, ..
            } => {}
            Action::Send {
                to: Peer::Device(d),
                msg,
                ..
            } => {
                let at = self.now + self.wifi_latency;
                self.push(at, Delivery::ToDevice(d, msg));
            }
            Action::Send { .. } => {}
            Action::Probe { link } => {
                let at = self.now + self.latency * 2;
                self.push(at, Delivery::Probe(self.tower_incarnation, link));
            }
            Action::Emit(e) => self.events.push((self.now, e)),
            Action::PowerOff { .. } => self.tower_up = false,
            a => self.disk_action(Node::Tower, self.tower_incarnation, a),
        }
    }

    fn device_action(&mut self, id: DeviceId, a: Action) {
        if let Action::Send { msg, .. } = a {
            let at = self.now + self.wifi_latency;
            self.push(at, Delivery::ToTower(Peer::Device(id), msg));
        }
    }

    /// Serve a device read the way a driver does: plan, read and judge every chunk, let
    /// the plan decide, report what it found (see `tower::read`).
    fn serve(&mut self, device: DeviceId, item: ItemId) {
        let reply = match self.tower.serve_plan(self.now, &item) {
            Err(refusal) => Message::Unavailable {
                item,
                reason: refusal.reason().to_string(),
            },
            Ok(plan) => {
                let mut body = Vec::with_capacity(plan.manifest.size as usize);
                let mut verdicts = Vec::with_capacity(plan.manifest.chunks.len());
                for c in &plan.manifest.chunks {
                    verdicts.push(match self.tower_disk.read(&Key::Chunk(c.hash)) {
                        Some(Record::Chunk(chunk)) => {
                            body.extend_from_slice(&chunk.bytes);
                            if !plan.verifies() || verify_chunk(&c.hash, &chunk.bytes) {
                                ChunkVerdict::Intact
                            } else {
                                ChunkVerdict::Rotten
                            }
                        }
                        _ => ChunkVerdict::Missing,
                    });
                }
                let outcome = plan.decide(verdicts);
                self.tower.handle_read_result(self.now, &outcome);
                match outcome.refusal() {
                    Some(refusal) => Message::Unavailable {
                        item,
                        reason: refusal.reason().to_string(),
                    },
                    None => Message::ItemData {
                        manifest: (*plan.manifest).clone(),
                        bytes: Bytes::from(body),
                    },
                }
            }
        };
        let at = self.now + self.wifi_latency;
        self.push(at, Delivery::ToDevice(device, reply));
    }

    /// Advance to the next event and process it. `false` when nothing is left.
    pub fn step(&mut self) -> bool {
        let t_queue = self.queue.keys().next().map(|(t, _)| *t);
        let t_tower = if self.tower_up {
            self.tower.poll_timeout()
        } else {
            None
        };
        let t_dev = self
            .devices
            .iter()
            .filter_map(|(id, d)| d.poll_timeout().map(|t| (t, *id)))
            .min();
        let next = [t_queue, t_tower, t_dev.map(|(t, _)| t)]
            .into_iter()
            .flatten()
            .min();
        let Some(t) = next else {
            return false;
        };
        self.now = self.now.max(t);
        if t_queue == Some(t) {
            let (_, d) = self.queue.pop_first().expect("non-empty");
            self.deliver(d);
        } else if t_tower == Some(t) {
            self.tower.handle_timeout(self.now);
        } else if let Some((_, id)) = t_dev {
            if let Some(d) = self.devices.get_mut(&id) {
                d.handle_timeout(self.now);
            }
        }
        self.drain();
        true
    }

    fn deliver(&mut self, d: Delivery) {
        let now = self.now;
        match d {
            Delivery::ToOrigin(msg) => {
                self.origin
                    .handle_message(now, Peer::Tower(self.tower_config.id), msg)
            }
            Delivery::ToTower(from, mut msg) => {
                if !self.tower_up {
                    return;
                }
                if let Message::ChunkReply { bytes: Some(b), .. } = &mut msg
                    && self.corrupt_next_chunks > 0
                    && !b.is_empty()
                {
                    self.corrupt_next_chunks -= 1;
                    let mut v = b.to_vec();
                    v[0] ^= 0x5a;
                    *b = Bytes::from(v);
                }
                match (from, msg) {
                    (Peer::Device(d), Message::ReadItem { item }) => self.serve(d, item),
                    (from, msg) => self.tower.handle_message(now, from, msg),
                }
            }
            Delivery::ToDevice(id, msg) => {
                if let Some(d) = self.devices.get_mut(&id) {
                    d.handle_message(now, msg);
                }
            }
            Delivery::WriteDone(node, inc, id) => match node {
                Node::Origin => self.origin.handle_write_done(now, id, Ok(())),
                Node::Tower if inc == self.tower_incarnation && self.tower_up => {
                    self.tower.handle_write_done(now, id, Ok(()))
                }
                _ => {}
            },
            Delivery::FsyncDone(node, inc, id, upto) => match node {
                Node::Origin => {
                    self.origin_disk.sync(upto);
                    self.origin.handle_fsync_done(now, id, Ok(()));
                }
                Node::Tower if inc == self.tower_incarnation => {
                    self.tower_disk.sync(upto);
                    if self.tower_up {
                        self.tower.handle_fsync_done(now, id, Ok(()));
                    }
                }
                _ => {}
            },
            Delivery::Probe(inc, link) => {
                if inc == self.tower_incarnation && self.tower_up {
                    let outcome = if self.link_up {
                        ProbeOutcome::ok(self.latency * 2)
                    } else {
                        ProbeOutcome::failed()
                    };
                    self.tower.handle_probe(now, link, outcome);
                }
            }
        }
    }

    /// Step until `done` holds or `steps_max` steps ran; returns whether `done` held.
    pub fn run_until(&mut self, steps_max: u64, mut done: impl FnMut(&Pair) -> bool) -> bool {
        for _ in 0..steps_max {
            if done(self) {
                return true;
            }
            if !self.step() {
                return done(self);
            }
        }
        done(self)
    }

    /// Step until virtual time reaches `until` (or nothing is left).
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        let mut steps = 0u64;
        while steps < 5_000_000 {
            let next = [
                self.queue.keys().next().map(|(t, _)| *t),
                if self.tower_up {
                    self.tower.poll_timeout()
                } else {
                    None
                },
                self.devices.values().filter_map(|d| d.poll_timeout()).min(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) if t <= until => {
                    self.step();
                }
                _ => break,
            }
            steps += 1;
        }
        self.now = self.now.max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::{Entropy, SplitMix64};
    use crate::protocol::OpOutcome;
    use std::collections::BTreeSet;

    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut r = SplitMix64::new(seed);
        (0..len).map(|_| r.next_u64() as u8).collect()
    }

    fn fibre_tower() -> TowerConfig {
        TowerConfig::new(TowerId(1), &[LinkKind::Fibre])
    }

    fn contribution(amount: u64) -> OpKind {
        OpKind::Contribution {
            community: "kisumu".into(),
            nation: "ke".into(),
            amount_minor: amount,
        }
    }

    fn chunk_class(pair: &Pair) -> BTreeMap<ChunkHash, Priority> {
        let mut m = BTreeMap::new();
        for e in pair.origin.catalog() {
            for c in &e.manifest.chunks {
                let class = m.entry(c.hash).or_insert(e.manifest.priority);
                *class = (*class).min(e.manifest.priority);
            }
        }
        m
    }

    #[test]
    fn mixed_catalog_under_a_bandwidth_cap_p0_completes_before_any_p3_byte_moves() {
        // Goal: end to end under a 1 Mbit/s cap, every P0 item is servable before the
        // first byte of a P3 chunk starts down the link; everything arrives eventually.
        let mut pair = Pair::new(fibre_tower(), 125_000);
        // Bulk first, critical last: the scheduler, not the publish order, must decide.
        for i in 0..4 {
            pair.publish(&format!("video-{i}"), Priority::P3, &bytes(10 + i, 300_000));
        }
        for i in 0..3 {
            pair.publish(
                &format!("course-{i}"),
                Priority::P2,
                &bytes(20 + i, 120_000),
            );
        }
        for i in 0..3 {
            pair.publish(&format!("news-{i}"), Priority::P1, &bytes(30 + i, 60_000));
        }
        for i in 0..3 {
            pair.publish(&format!("alert-{i}"), Priority::P0, &bytes(40 + i, 40_000));
        }
        let classes = chunk_class(&pair);
        let expected = pair.origin.catalog().len();
        assert_eq!(expected, 13);
        let synced = pair.run_until(2_000_000, |p| p.tower.servable().len() == expected);
        assert!(synced, "servable {:?}", pair.tower.servable());

        let p0_done = pair
            .events
            .iter()
            .filter(|(_, e)| {
                matches!(
                    e,
                    Event::ContentServable {
                        priority: Priority::P0,
                        ..
                    }
                )
            })
            .map(|(t, _)| *t)
            .max()
            .expect("P0 items became servable");
        let first_p3_byte = pair
            .downlink
            .iter()
            .filter(|t| {
                matches!(&t.msg, Message::ChunkReply { hash, .. }
                    if classes.get(hash) == Some(&Priority::P3))
            })
            .map(|t| t.start)
            .min()
            .expect("P3 chunks moved");
        assert!(
            p0_done <= first_p3_byte,
            "last P0 item servable at {p0_done}, first P3 byte at {first_p3_byte}"
        );
        // And the cap was real: 1.2 MB + overhead over 125 kB/s takes > 9 s of virtual time.
        assert!(pair.now > Time::from_secs(9), "finished at {}", pair.now);
        // Delta sync: no chunk crossed the link twice.
        let mut seen = BTreeSet::new();
        for t in &pair.downlink {
            if let Message::ChunkReply { hash, .. } = &t.msg {
                assert!(seen.insert(*hash), "chunk {hash:?} fetched twice");
            }
        }
    }

    #[test]
    fn a_new_version_moves_only_the_changed_chunks() {
        // Goal: delta sync end to end — a 1% edit of a synced item moves ~1% of its bytes.
        let mut pair = Pair::new(fibre_tower(), 10_000_000);
        let v1 = bytes(5, 1_000_000);
        pair.publish("atlas", Priority::P2, &v1);
        assert!(pair.run_until(1_000_000, |p| p.tower.servable().len() == 1));
        let before: u64 = pair.downlink.iter().map(|t| t.msg.wire_size()).sum();
        let mut v2 = v1.clone();
        for b in &mut v2[500_000..510_000] {
            *b = b.wrapping_add(1);
        }
        pair.publish("atlas", Priority::P2, &v2);
        let ok = pair.run_until(1_000_000, |p| {
            p.tower.servable().get(&ItemId::new("atlas")) == Some(&2)
        });
        assert!(ok);
        let after: u64 = pair.downlink.iter().map(|t| t.msg.wire_size()).sum();
        let moved = after - before;
        assert!(
            moved < 150_000,
            "moved {moved} bytes for a 10 kB edit of 1 MB"
        );
        assert!(moved > 10_000);
    }

    #[test]
    fn a_new_versions_manifest_travels_as_its_changes_from_the_held_one() {
        // Goal: a small edit of a large item costs a few hundred bytes of catalog, not the
        // whole chunk list again; the tower rebuilds exactly the origin's manifest.
        let mut pair = Pair::new(fibre_tower(), 10_000_000);
        let v1 = bytes(9, 4_000_000);
        pair.publish("atlas", Priority::P1, &v1);
        assert!(pair.run_until(1_000_000, |p| p.tower.servable().len() == 1));
        let mut v2 = v1.clone();
        v2[2_000_000] ^= 0xff;
        pair.publish("atlas", Priority::P1, &v2);
        let ok = pair.run_until(1_000_000, |p| {
            p.tower.servable().get(&ItemId::new("atlas")) == Some(&2)
        });
        assert!(ok);
        let sent: Vec<(u64, &SentEntry)> = (pair.downlink.iter())
            .filter_map(|t| match &t.msg {
                Message::CatalogReply { entries, .. } if !entries.is_empty() => {
                    Some((t.msg.wire_size(), &entries[0]))
                }
                _ => None,
            })
            .collect();
        assert_eq!(sent.len(), 2, "one reply per version");
        assert!(matches!(sent[0].1, SentEntry::Whole(_)) && sent[0].0 > 10_000);
        assert!(
            matches!(sent[1].1, SentEntry::Changes { .. }) && sent[1].0 < 600,
            "the second version cost {} bytes of catalog",
            sent[1].0
        );
        assert_eq!(
            pair.tower.servable_manifests(),
            pair.origin
                .catalog()
                .into_iter()
                .map(|e| e.manifest)
                .collect::<Vec<_>>()
        );
    }

    /// The chunk hashes of `item`'s servable version at the tower.
    fn servable_chunks(pair: &Pair, item: &str) -> BTreeSet<ChunkHash> {
        pair.tower
            .servable_manifests()
            .into_iter()
            .filter(|m| m.item == ItemId::new(item))
            .flat_map(|m| m.chunks.into_iter().map(|c| c.hash))
            .collect()
    }

    fn on_tower_disk(pair: &Pair, hash: &ChunkHash) -> bool {
        pair.tower_disk.durable().contains_key(&Key::Chunk(*hash))
    }

    /// Sync `v1` of "atlas", then a 2% edit of it: (v1's chunks, v2's chunks), with v2
    /// servable when it returns.
    fn two_versions(pair: &mut Pair) -> (BTreeSet<ChunkHash>, BTreeSet<ChunkHash>) {
        let v1 = bytes(5, 400_000);
        pair.publish("atlas", Priority::P2, &v1);
        assert!(pair.run_until(1_000_000, |p| p.tower.servable().len() == 1));
        let old = servable_chunks(pair, "atlas");
        let mut v2 = v1.clone();
        for b in &mut v2[200_000..208_000] {
            *b = b.wrapping_add(1);
        }
        pair.publish("atlas", Priority::P2, &v2);
        assert!(pair.run_until(1_000_000, |p| {
            p.tower.servable().get(&ItemId::new("atlas")) == Some(&2)
        }));
        (old, servable_chunks(pair, "atlas"))
    }

    #[test]
    fn a_moved_past_versions_chunks_are_deleted_after_the_grace_and_shared_ones_stay() {
        // Goal: garbage collection of chunks — once a newer version is servable, the
        // chunks only the older one used leave the disk, but not before the grace (a read
        // planned from the old version may still be reading them), and never a chunk the
        // kept version shares with it (content addressing).
        let mut config = fibre_tower();
        config.chunk_gc_grace = Duration::from_secs(60);
        let mut pair = Pair::new(config, 10_000_000);
        let (old, new) = two_versions(&mut pair);
        let gone: Vec<&ChunkHash> = old.difference(&new).collect();
        let shared: Vec<&ChunkHash> = old.intersection(&new).collect();
        assert!(
            !gone.is_empty() && !shared.is_empty(),
            "an edit shares most chunks"
        );
        // A read planned from the old version just before the switch finds every chunk.
        for h in &old {
            assert!(
                on_tower_disk(&pair, h),
                "within the grace, {h} is still there"
            );
        }
        pair.run_for(Duration::from_secs(61));
        for h in &gone {
            assert!(
                !on_tower_disk(&pair, h),
                "{h} of v1 only is deleted after the grace"
            );
            assert!(!pair.tower.holds_chunk(h));
        }
        for h in &new {
            assert!(on_tower_disk(&pair, h), "{h} of the kept version stays");
            assert!(pair.tower.holds_chunk(h));
        }
        assert_eq!(pair.tower.servable().get(&ItemId::new("atlas")), Some(&2));
    }

    #[test]
    fn chunks_left_by_a_crash_before_their_delete_are_collected_after_restart() {
        // Goal: a tower that crashed before it deleted a moved-past version's chunks
        // finds them unused when it recovers and deletes them after the grace.
        let mut config = fibre_tower();
        config.chunk_gc_grace = Duration::from_secs(60);
        let mut pair = Pair::new(config, 10_000_000);
        let (old, new) = two_versions(&mut pair);
        pair.crash_tower();
        pair.restart_tower();
        pair.run_for(Duration::from_secs(61));
        for h in old.difference(&new) {
            assert!(!on_tower_disk(&pair, h), "{h} of v1 only is collected");
        }
        for h in &new {
            assert!(on_tower_disk(&pair, h) && pair.tower.holds_chunk(h));
        }
    }

    #[test]
    fn corrupt_bytes_in_transit_are_refetched_and_never_served() {
        // Goal: integrity — a corrupted chunk is rejected, fetched again, and the device
        // reads verified bytes.
        let mut pair = Pair::new(fibre_tower(), 1_000_000);
        pair.add_device(DeviceId(1));
        let data = bytes(77, 100_000);
        pair.corrupt_next_chunks = 3;
        pair.publish("clinic-hours", Priority::P0, &data);
        assert!(pair.run_until(1_000_000, |p| p.tower.servable().len() == 1));
        let rejected = pair
            .events
            .iter()
            .filter(|(_, e)| matches!(e, Event::ChunkRejected { .. }))
            .count();
        assert_eq!(rejected, 3);
        pair.read(DeviceId(1), "clinic-hours");
        pair.run_for(Duration::from_secs(1));
        let d = &pair.devices[&DeviceId(1)];
        assert!(matches!(d.last_read(&ItemId::new("clinic-hours")),
                Some(crate::device::ReadOutcome::Ok { bytes, .. }) if bytes[..] == data[..]));
    }

    #[test]
    fn rot_on_the_tower_disk_is_quarantined_on_read_and_refetched() {
        // Goal: a chunk that rots on disk is never served; it is fetched again.
        let mut pair = Pair::new(fibre_tower(), 1_000_000);
        pair.add_device(DeviceId(1));
        let data = bytes(78, 50_000);
        pair.publish("water-notice", Priority::P0, &data);
        assert!(pair.run_until(1_000_000, |p| p.tower.servable().len() == 1));
        // Flip a bit in one stored chunk.
        let key = pair
            .tower_disk
            .durable()
            .keys()
            .find(|k| matches!(k, Key::Chunk(_)))
            .cloned()
            .expect("a chunk");
        if let Some(Record::Chunk(c)) = pair.tower_disk.durable_mut().get_mut(&key) {
            let mut v = c.bytes.to_vec();
            v[3] ^= 1;
            c.bytes = Bytes::from(v);
        }
        pair.read(DeviceId(1), "water-notice");
        pair.run_for(Duration::from_millis(20));
        let d = &pair.devices[&DeviceId(1)];
        assert!(matches!(
            d.last_read(&ItemId::new("water-notice")),
            Some(crate::device::ReadOutcome::Unavailable(_))
        ));
        assert!(pair.run_until(1_000_000, |p| p.tower.servable().len() == 1));
        pair.read(DeviceId(1), "water-notice");
        pair.run_for(Duration::from_secs(1));
        let d = &pair.devices[&DeviceId(1)];
        assert!(matches!(
            d.last_read(&ItemId::new("water-notice")),
            Some(crate::device::ReadOutcome::Ok { .. })
        ));
    }

    /// Submit contributions while the uplink is cut, wait for the acks, crash the tower
    /// with `fsync_delay` in force, restart it from durable state, heal the link, and
    /// return (acked keys, the origin's applied outcomes for them).
    fn acked_ops_across_a_crash(
        config: TowerConfig,
        fsync_delay: Duration,
    ) -> (Vec<crate::protocol::IdemKey>, Vec<Option<OpOutcome>>, u128) {
        let mut pair = Pair::new(config, 1_000_000);
        pair.fsync_delay = fsync_delay;
        pair.add_device(DeviceId(9));
        pair.link_up = false;
        for amount in [100, 250, 999, 1, 3] {
            pair.submit(DeviceId(9), contribution(amount));
        }
        // Wait until the device saw every ack (or a bound).
        pair.run_until(100_000, |p| p.devices[&DeviceId(9)].acked().len() == 5);
        let acked: Vec<crate::protocol::IdemKey> =
            pair.devices[&DeviceId(9)].acked().iter().cloned().collect();
        pair.crash_tower();
        pair.run_for(Duration::from_secs(1));
        pair.restart_tower();
        pair.link_up = true;
        pair.run_for(Duration::from_secs(600));
        let outcomes = acked
            .iter()
            .map(|k| pair.origin.applied(k).cloned())
            .collect();
        (acked, outcomes, pair.origin.ledger().contributed_minor())
    }

    #[test]
    fn an_acked_operation_survives_a_tower_restart_from_durable_state() {
        // Goal: durability + exactly once — every acknowledged op reaches the origin once
        // after a crash, even with slow fsyncs.
        let (acked, outcomes, contributed) =
            acked_ops_across_a_crash(fibre_tower(), Duration::from_millis(50));
        assert_eq!(acked.len(), 5);
        for (k, o) in acked.iter().zip(&outcomes) {
            assert!(
                matches!(o, Some(OpOutcome::Applied { .. })),
                "acked op {k} was lost: {o:?}"
            );
        }
        assert_eq!(
            contributed,
            100 + 250 + 999 + 1 + 3,
            "each applied exactly once"
        );
    }

    #[test]
    fn ack_before_fsync_loses_acked_operations_in_the_same_scenario() {
        // Goal: the test above can fail — with the planted bug, acks precede durability
        // and a crash inside the fsync window loses acknowledged operations.
        let mut config = fibre_tower();
        config.ack_after_fsync = false;
        let (acked, outcomes, _) = acked_ops_across_a_crash(config, Duration::from_secs(5));
        assert_eq!(acked.len(), 5);
        let lost = outcomes.iter().filter(|o| o.is_none()).count();
        assert!(lost > 0, "the planted bug should lose acked operations");
    }

    #[test]
    fn a_tower_serves_what_it_holds_while_its_uplink_is_cut() {
        // Goal: offline service — reads keep working with no uplink.
        let mut pair = Pair::new(fibre_tower(), 1_000_000);
        pair.add_device(DeviceId(2));
        pair.publish("map", Priority::P1, &bytes(3, 30_000));
        assert!(pair.run_until(100_000, |p| p.tower.servable().len() == 1));
        pair.link_up = false;
        pair.run_for(Duration::from_secs(120));
        assert_eq!(
            pair.tower.active_link(),
            None,
            "probes declared the link down"
        );
        pair.read(DeviceId(2), "map");
        pair.run_for(Duration::from_secs(1));
        assert!(matches!(
            pair.devices[&DeviceId(2)].last_read(&ItemId::new("map")),
            Some(crate::device::ReadOutcome::Ok { .. })
        ));
    }
}
