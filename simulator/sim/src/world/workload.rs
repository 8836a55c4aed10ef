//! The workload: what users do, drawn from the `workload` stream — publishing at the
//! origin (new items and ~1% edits), device reads (`World::device_read`) and device
//! operations (contributions and messages) — and the misuse of the `misuse` stream:
//! invalid contributions, a device reusing an acknowledged key, strangers guessing keys.
//!
//! Map: `schedule_*` (the next event of each kind, exponential waits), `publish_tick`,
//! `publish_new`, `publish`, `check_published` (what became visible at the origin),
//! `device_op`, `note_submitted`, `send_over_wifi`, `key_reuse`, `key_theft`;
//! [`STRANGER_ID_BASE`].
//!
//! Not covered: the catalog published before the towers boot (`World::start`), the
//! `rogue-forward` fault (`faults.rs`). Nothing is drawn after the heal: the liveness phase
//! only drains what is left.

use super::World;
use super::events::Ev;
use crate::obs::Obs;
use crate::trace::TraceKind;
use sovereign_logic::content::{ItemId, Priority};
use sovereign_logic::entropy::Entropy;
use sovereign_logic::protocol::{DeviceId, IdemKey, Message, OpKind, Operation, Peer};

/// Identities of the strangers of the `key_theft_per_hour` workload (one per tower): far
/// above any device's number, so no device has one.
pub(super) const STRANGER_ID_BASE: u128 = 1 << 100;

impl World {
    pub(super) fn schedule_publish(&mut self, class: usize) {
        let rate = self.sc.workload.publish_per_hour[class];
        if rate > 0.0 {
            let dt = self.workload.exp(3600.0 / rate);
            self.push(self.now + dt, Ev::Publish { class });
        }
    }

    pub(super) fn schedule_read(&mut self, device: usize) {
        let rate = self.sc.workload.reads_per_device_hour;
        if rate > 0.0 {
            let dt = self.workload.exp(3600.0 / rate);
            self.push(self.now + dt, Ev::DeviceRead { device });
        }
    }

    pub(super) fn schedule_op(&mut self, device: usize) {
        let rate = self.sc.workload.ops_per_device_hour;
        if rate > 0.0 && !self.healed {
            let dt = self.workload.exp(3600.0 / rate);
            self.push(self.now + dt, Ev::DeviceOp { device });
        }
    }

    pub(super) fn schedule_key_reuse(&mut self, device: usize) {
        let rate = self.sc.workload.misuse.key_reuse_per_device_hour;
        if rate > 0.0 && !self.healed {
            let dt = self.misuse.exp(3600.0 / rate);
            self.push(self.now + dt, Ev::KeyReuse { device });
        }
    }

    pub(super) fn schedule_key_theft(&mut self) {
        let rate = self.sc.workload.misuse.key_theft_per_hour;
        if rate > 0.0 && !self.healed && !self.devices.is_empty() {
            let dt = self.misuse.exp(3600.0 / rate);
            self.push(self.now + dt, Ev::KeyTheft);
        }
    }

    /// A publication of `class` is due: an edit of an item it has (half the time) or a new
    /// one; then the next one is scheduled.
    pub(super) fn publish_tick(&mut self, class: usize) {
        if self.healed {
            return;
        }
        let now = self.now;
        self.trace.event(now, TraceKind::Publish, class as u64, &[]);
        let prio = Priority::from_index(class).unwrap_or(Priority::P3);
        let size = self.sc.workload.publish_bytes[class];
        let existing = self.items[class].len();
        if existing > 0 && self.workload.chance(0.5) {
            let item = self.items[class][self.workload.below(existing as u64) as usize].clone();
            let mut bytes = self.content.get(&item).cloned().unwrap_or_default();
            if !bytes.is_empty() {
                // A ~1% edit: delta sync moves little.
                let n = (bytes.len() / 100).max(1);
                let at = self.workload.below((bytes.len() - n + 1) as u64) as usize;
                for b in &mut bytes[at..at + n] {
                    *b = b.wrapping_add(1);
                }
            }
            self.publish(item, prio, bytes);
        } else {
            self.publish_new(prio, size);
        }
        self.drain_origin();
        self.schedule_publish(class);
    }

    pub(super) fn publish_new(&mut self, class: Priority, len: u64) {
        self.next_item += 1;
        let item = ItemId::new(format!(
            "{}-{:05}",
            class.to_string().to_lowercase(),
            self.next_item
        ));
        let bytes = self.workload.bytes(len as usize);
        self.publish(item, class, bytes);
    }

    pub(super) fn publish(&mut self, item: ItemId, class: Priority, bytes: Vec<u8>) {
        // A failed origin refuses a publish (and the first one after its wait rebuilds it).
        if !self.origin.up || self.refused_by_failed_origin() {
            return;
        }
        if let Ok(entry) = self
            .origin
            .origin
            .publish(self.now, item.clone(), class, &bytes)
        {
            self.publishing.push((item.clone(), entry.manifest.version));
            self.content.insert(item, bytes);
        }
    }

    pub(super) fn check_published(&mut self) {
        if self.publishing.is_empty() {
            return;
        }
        let catalog = self.origin.origin.catalog();
        let mut still = Vec::new();
        for (item, version) in std::mem::take(&mut self.publishing) {
            match catalog.iter().find(|e| e.manifest.item == item) {
                Some(e) if e.manifest.version >= version => {
                    if e.manifest.version == version {
                        let m = e.manifest.clone();
                        let class = m.priority.index();
                        if !self.items[class].contains(&item) {
                            self.items[class].push(item.clone());
                        }
                        self.published.insert((item, version), m.clone());
                        self.observe(Obs::Published { manifest: m });
                    }
                }
                _ => still.push((item, version)),
            }
        }
        self.publishing = still;
    }

    /// `device` submits an operation (a contribution or a message); then its next one is
    /// scheduled.
    pub(super) fn device_op(&mut self, device: usize) {
        if self.healed {
            return;
        }
        let now = self.now;
        self.trace
            .event(now, TraceKind::DeviceOp, device as u64, &[]);
        let contribution = self.workload.chance(self.sc.workload.contribution_share);
        let kind = if contribution {
            OpKind::Contribution {
                community: format!("community-{}", self.devices[device].tower),
                nation: ["ke", "ug", "tz", "rw"][self.workload.below(4) as usize].to_string(),
                amount_minor: 1 + self.workload.below(10_000),
            }
        } else {
            OpKind::Message {
                to: format!("clinic-{}", self.workload.below(10)),
                body: format!("report {}", self.workload.next_u64() % 100_000),
            }
        };
        // A device that gets its contribution wrong (the origin rejects 0).
        let kind = match kind {
            OpKind::Contribution {
                community, nation, ..
            } if self.sc.workload.misuse.invalid_share > 0.0
                && self.misuse.chance(self.sc.workload.misuse.invalid_share) =>
            {
                OpKind::Contribution {
                    community,
                    nation,
                    amount_minor: 0,
                }
            }
            k => k,
        };
        if let Ok(key) = self.devices[device].device.submit(now, kind) {
            self.note_submitted(device, &key, true);
        }
        self.drain_device(device);
        self.schedule_op(device);
    }

    /// A device of `device`'s queued operation under `key`, observed as submitted.
    pub(super) fn note_submitted(&mut self, device: usize, key: &IdemKey, own_key: bool) {
        let Some(op) = self.devices[device].device.queued(key).cloned() else {
            return;
        };
        let fingerprint = op.fingerprint();
        if let OpKind::Contribution { amount_minor, .. } = &op.kind {
            self.amounts
                .insert((key.clone(), fingerprint), *amount_minor);
        }
        self.observe(Obs::Submitted {
            device,
            key: key.clone(),
            fingerprint,
            own_key,
        });
    }

    /// Send `op` from `from` over `tower`'s Wi-Fi (what a device's submission does).
    pub(super) fn send_over_wifi(&mut self, tower: usize, from: DeviceId, msg: Message) {
        let t = &mut self.towers[tower];
        let incarnation = t.incarnation;
        let arrivals = t
            .wifi
            .transmit(self.now, msg.wire_size(), true, &mut self.net);
        for at in arrivals {
            self.push(
                at,
                Ev::ToTower {
                    tower,
                    incarnation,
                    from: Peer::Device(from),
                    link: None,
                    msg: msg.clone(),
                },
            );
        }
    }

    /// The `key_reuse_per_device_hour` misuse: `device` sends its latest acknowledged key
    /// again with another body.
    pub(super) fn key_reuse(&mut self, device: usize) {
        if self.healed {
            return;
        }
        let now = self.now;
        // The device's latest acknowledged key, again, with another body.
        let key = self.devices[device].device.acked().back().cloned();
        if let Some(key) = key {
            let kind = OpKind::Message {
                to: "clinic-0".into(),
                body: format!("restored {}", self.misuse.next_u64() % 100_000),
            };
            self.trace
                .event(now, TraceKind::KeyReuse, device as u64, &[]);
            if self.devices[device]
                .device
                .submit_under(now, key.clone(), kind)
                .is_ok()
            {
                self.note_submitted(device, &key, false);
            }
            self.drain_device(device);
        }
        self.schedule_key_reuse(device);
    }

    /// The `key_theft_per_hour` misuse: a stranger on a victim's tower submits under the
    /// victim's guessed next key.
    pub(super) fn key_theft(&mut self) {
        if self.healed {
            return;
        }
        let now = self.now;
        // A stranger on a victim's tower guesses the victim's next key: the
        // number is easy; the random part (when keys have one) is a guess.
        let victim = self.misuse.below(self.devices.len() as u64) as usize;
        let tower = self.devices[victim].tower;
        let owner = self.devices[victim].identity;
        let n = self.devices[victim].device.next_number();
        let key = if self.devices[victim].device.config().key_nonce {
            IdemKey::for_device(owner, n, self.misuse.next_u64())
        } else {
            IdemKey::sequential(owner, n)
        };
        let stranger = DeviceId(STRANGER_ID_BASE + tower as u128);
        let op = Operation {
            key: key.clone(),
            device: stranger,
            kind: OpKind::Contribution {
                community: "stranger".into(),
                nation: "xx".into(),
                amount_minor: 1 + self.misuse.below(10_000),
            },
        };
        let fingerprint = op.fingerprint();
        if let OpKind::Contribution { amount_minor, .. } = &op.kind {
            self.amounts
                .insert((key.clone(), fingerprint), *amount_minor);
        }
        self.trace
            .event(now, TraceKind::KeyTheft, tower as u64, &[n]);
        self.observe(Obs::Submitted {
            device: self.devices.len() + tower,
            key,
            fingerprint,
            own_key: false,
        });
        self.send_over_wifi(tower, stranger, Message::SubmitOp { op });
        self.schedule_key_theft();
    }
}
