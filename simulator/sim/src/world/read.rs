//! The simulator's side of a device read: the logic's read path (`tower::read`) run
//! against the simulated disk. [`tower_read`] is what `World::device_read` does once the
//! device has reached a running tower; it is public so that a conformance test can drive
//! the very same code next to the real tower's device API.
//!
//! `World::device_read` is the whole of a device's read in the simulator: the workload
//! picks the item (popularity falls with age, Zipf-like), the device must reach a running,
//! unpaused tower over Wi-Fi, the disk says what it holds of each chunk, and what was
//! served is checked against what the origin published.
//!
//! Map: [`tower_read`], [`TowerRead`], [`Served`]; `World::device_read`.
//!
//! Not covered: devices' own caches, reads over the real tower's HTTP API (the conformance
//! test's side).

use super::World;
use crate::obs::{Obs, ReadResult};
use crate::trace::TraceKind;
use bytes::Bytes;
use sovereign_logic::Time;
use sovereign_logic::content::{ChunkHash, ItemId, Manifest};
use sovereign_logic::device::ReadOutcome as DeviceRead;
use sovereign_logic::entropy::Entropy;
use sovereign_logic::io::{Key, PowerMode, Record};
use sovereign_logic::protocol::Message;
use sovereign_logic::tower::Tower;
use sovereign_logic::tower::read::{ChunkVerdict, ReadOutcome};
use std::sync::Arc;

/// What a served read sent: the manifest and every chunk with whether its bytes matched
/// their hash (`false` only under `skip-verify`).
pub type Served = (Arc<Manifest>, Vec<(ChunkHash, bool)>);

/// What one read through [`tower_read`] came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TowerRead {
    /// The device's answer.
    pub result: ReadResult,
    /// When served: what `Obs::Served` reports.
    pub served: Option<Served>,
    /// The chunks the read reported to the tower as rotten or missing (each quarantined
    /// and fetched again), in manifest order.
    pub reported: Vec<ChunkHash>,
}

/// Read `item` at `tower` as a driver must: plan it ([`Tower::serve_plan`], which notes
/// the demand), judge every chunk of the plan with `verdict` (what the disk holds for
/// it), let the plan decide, and hand the outcome back to the tower
/// ([`Tower::handle_read_result`]: every rotten or missing chunk is quarantined and
/// fetched again). The caller drains the tower's actions afterwards.
pub fn tower_read(
    tower: &mut Tower,
    now: Time,
    item: &ItemId,
    mut verdict: impl FnMut(&ChunkHash) -> ChunkVerdict,
) -> TowerRead {
    let plan = match tower.serve_plan(now, item) {
        Ok(plan) => plan,
        Err(refusal) => {
            return TowerRead {
                result: ReadResult::Refused(refusal),
                served: None,
                reported: Vec::new(),
            };
        }
    };
    let verdicts: Vec<ChunkVerdict> = plan
        .manifest
        .chunks
        .iter()
        .map(|c| verdict(&c.hash))
        .collect();
    let outcome = plan.decide(verdicts.iter().copied());
    tower.handle_read_result(now, &outcome);
    let reported = match &outcome {
        ReadOutcome::Repair { rotten } => rotten.clone(),
        ReadOutcome::Serve => Vec::new(),
    };
    match outcome.refusal() {
        Some(refusal) => TowerRead {
            result: ReadResult::Refused(refusal),
            served: None,
            reported,
        },
        None => {
            let chunks = plan
                .manifest
                .chunks
                .iter()
                .zip(&verdicts)
                .map(|(c, v)| (c.hash, *v == ChunkVerdict::Intact))
                .collect();
            TowerRead {
                result: ReadResult::Served,
                served: Some((plan.manifest, chunks)),
                reported,
            }
        }
    }
}

impl World {
    /// A served read over a Wi-Fi that garbles bytes (`wifi-corruption`): the bytes the
    /// tower sent (its disk's), each chunk arriving with one flipped bit with probability
    /// `p`, are handed to the device's own read check (`Device::handle_message` with the
    /// item's data), and whether they arrived intact and whether the device kept them is
    /// observed. Only while the fault is on: elsewhere the device would get exactly what
    /// `Obs::Served` reports, so the simulator spares the hashing.
    fn deliver_garbled(&mut self, device: usize, m: &Manifest, p: f64) {
        let tower = self.devices[device].tower;
        let mut bytes = Vec::with_capacity(usize::try_from(m.size).unwrap_or(0));
        let mut intact = true;
        for c in &m.chunks {
            let mut piece = match self.towers[tower].disk.read(&Key::Chunk(c.hash)) {
                Some(s) => {
                    intact &= s.intact;
                    match &s.record {
                        Record::Chunk(chunk) => chunk.bytes.to_vec(),
                        _ => Vec::new(),
                    }
                }
                None => Vec::new(),
            };
            if piece.len() as u64 != u64::from(c.len) {
                intact = false;
            }
            if !piece.is_empty() && self.wifi_rng.chance(p) {
                let at = self.wifi_rng.below(piece.len() as u64) as usize;
                piece[at] ^= 1 << self.wifi_rng.below(8);
                intact = false;
            }
            bytes.extend_from_slice(&piece);
        }
        let now = self.now;
        let d = &mut self.devices[device].device;
        d.handle_message(
            now,
            Message::ItemData {
                manifest: m.clone(),
                bytes: Bytes::from(bytes),
            },
        );
        let accepted = matches!(
            d.last_read(&m.item),
            Some(DeviceRead::Ok { version, .. }) if *version == m.version
        );
        self.drain_device(device);
        self.observe(Obs::Delivered {
            tower,
            device,
            item: m.item.clone(),
            version: m.version,
            intact,
            accepted,
        });
    }

    pub(super) fn device_read(&mut self, device: usize) {
        let tower = self.devices[device].tower;
        let now = self.now;
        // Which item: by class, popularity falling with the item's age rank (the lab's
        // devices choose the same way).
        let items = &self.items;
        let Some((class, idx)) =
            sovereign_scenario::reads::pick_read(&mut self.workload, |c| items[c].len())
        else {
            return;
        };
        let item = self.items[class][idx].clone();
        self.trace.event(
            now,
            TraceKind::DeviceRead,
            device as u64,
            &[class as u64, idx as u64],
        );
        let t = &self.towers[tower];
        let powered = t.running()
            && t.tower
                .as_ref()
                .is_some_and(|x| x.power_mode() < PowerMode::ShuttingDown);
        let paused = t.paused_until.is_some_and(|u| u > now);
        if !t.running() || paused || !t.wifi.is_up(now) {
            self.observe(Obs::Read {
                tower,
                item,
                valid: true,
                result: ReadResult::Unreachable,
                tower_powered: powered && !paused,
            });
            return;
        }
        let local = t.local(now);
        let t = &mut self.towers[tower];
        let result = match t.tower.as_mut() {
            None => ReadResult::Unreachable,
            Some(tw) => {
                let disk = &t.disk;
                let read = tower_read(tw, local, &item, |hash| {
                    match disk.read(&Key::Chunk(*hash)) {
                        Some(s) if s.intact => ChunkVerdict::Intact,
                        Some(_) => ChunkVerdict::Rotten,
                        None => ChunkVerdict::Missing,
                    }
                });
                if !read.reported.is_empty() {
                    // The quarantines a read caused are observed before the read itself.
                    self.drain_tower(tower);
                }
                if let Some((m, chunks)) = read.served {
                    let manifest_ok = self.published.get(&(m.item.clone(), m.version)) == Some(&*m)
                        || self.published_before.get(&(m.item.clone(), m.version)) == Some(&*m);
                    self.observe(Obs::Served {
                        tower,
                        item: m.item.clone(),
                        version: m.version,
                        chunks,
                        manifest_ok,
                    });
                    let p = self.towers[tower].wifi.faults.corrupt;
                    if p > 0.0 {
                        self.deliver_garbled(device, &m, p);
                    }
                }
                read.result
            }
        };
        self.observe(Obs::Read {
            tower,
            item,
            valid: true,
            result,
            tower_powered: powered,
        });
    }
}
