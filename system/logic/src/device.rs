//! A device (phone, tablet, laptop): an offline outbox of operations, and verified reads.
//!
//! A [`Device`] queues operations while it cannot reach a tower, each under an
//! idempotency key that stays the same across retries. It keeps an operation until its
//! tower acknowledges it as durable (`Accepted` or `Duplicate`), retrying with
//! exponential backoff and jitter. Reads are verified against the manifest that comes
//! with them: bytes that do not match are refused, never shown.
//!
//! Call order: like the tower — `handle_*` inputs, then drain [`Device::poll_action`];
//! call [`Device::handle_timeout`] once `now >= poll_timeout()`. The device persists its
//! outbox with `Write`/`Fsync` actions (a local file in the real client) and is rebuilt by
//! [`Device::recover`].
//!
//! Not covered: which tower a device talks to (the driver routes `Peer::Tower`), UI.

use crate::backoff::{Backoff, BackoffPolicy};
use crate::content::{ItemId, Manifest, ReassembleError};
use crate::entropy::SplitMix64;
use crate::io::{Action, DurableState, Key, Record, WriteId};
use crate::protocol::{DeviceId, IdemKey, Message, OpKind, Operation, Peer, SubmitReply, TowerId};
use crate::time::Time;
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// A device's settings.
#[derive(Clone, Debug)]
pub struct DeviceConfig {
    /// This device.
    pub id: DeviceId,
    /// The tower it talks to.
    pub tower: TowerId,
    /// Retry spacing for unacknowledged operations.
    pub retry: BackoffPolicy,
    /// A submission not answered within this long is retried.
    pub reply_timeout: Duration,
    /// Bound on queued operations.
    pub outbox_max: usize,
}

impl DeviceConfig {
    /// Defaults for a device of `tower`: retries from 2 s up to 10 min, 5 s reply timeout.
    pub fn new(id: DeviceId, tower: TowerId) -> Self {
        DeviceConfig {
            id,
            tower,
            retry: BackoffPolicy {
                base: Duration::from_secs(2),
                max: Duration::from_secs(600),
                ..BackoffPolicy::default()
            },
            reply_timeout: Duration::from_secs(5),
            outbox_max: 10_000,
        }
    }
}

/// Why a device refused a request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    /// The offline outbox is full; the user must wait for the tower.
    #[error("outbox full ({0} operations queued)")]
    OutboxFull(usize),
}

/// What became of a device read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Verified content.
    Ok {
        /// the version read
        version: u64,
        /// its bytes
        bytes: Bytes,
    },
    /// The tower could not serve it.
    Unavailable(String),
    /// The bytes failed verification and were discarded.
    Corrupt(ReassembleError),
}

#[derive(Clone, Debug)]
struct Pending {
    op: Operation,
    backoff: Backoff,
    /// When to (re)send; `None` while a submission awaits its reply.
    next_try: Option<Time>,
    /// When an unanswered submission counts as lost.
    reply_deadline: Option<Time>,
    attempts: u32,
}

/// A device state machine.
pub struct Device {
    config: DeviceConfig,
    rng: SplitMix64,
    outbox: BTreeMap<IdemKey, Pending>,
    next_n: u64,
    next_write: u64,
    actions: VecDeque<Action>,
    reads: BTreeMap<ItemId, ReadOutcome>,
    acked: Vec<IdemKey>,
    conflicts: Vec<IdemKey>,
}

impl Device {
    /// A device with an empty outbox.
    pub fn new(config: DeviceConfig, seed: u64) -> Device {
        Device {
            config,
            rng: SplitMix64::new(seed),
            outbox: BTreeMap::new(),
            next_n: 1,
            next_write: 1,
            actions: VecDeque::new(),
            reads: BTreeMap::new(),
            acked: Vec::new(),
            conflicts: Vec::new(),
        }
    }

    /// A device rebuilt from its persisted outbox; queued operations are sent again.
    ///
    /// `keys_issued` is the highest key number this device ever issued (0: none), which
    /// the driver must keep durably beside the outbox: an acknowledged operation leaves
    /// the outbox, so the outbox alone cannot say which keys were used, and a reused key
    /// would be answered as a duplicate (the new operation silently lost) or a conflict.
    /// New keys are numbered after both `keys_issued` and every key still queued.
    pub fn recover(
        config: DeviceConfig,
        seed: u64,
        now: Time,
        durable: &DurableState,
        keys_issued: u64,
    ) -> Device {
        let mut device = Device::new(config, seed);
        device.next_n = keys_issued.saturating_add(1);
        for record in durable.values() {
            if let Record::Outbox(op) = record
                && op.device == device.config.id
            {
                device.next_n = device.next_n.max(op.key.number() + 1);
                device.outbox.insert(
                    op.key.clone(),
                    Pending {
                        op: op.clone(),
                        backoff: Backoff::new(device.config.retry.clone()),
                        next_try: Some(now),
                        reply_deadline: None,
                        attempts: 0,
                    },
                );
            }
        }
        device.pump(now);
        device
    }

    /// Queue an operation; returns its idempotency key. It is persisted and sent at once
    /// (and again, with backoff, until the tower acknowledges it).
    pub fn submit(&mut self, now: Time, kind: OpKind) -> Result<IdemKey, DeviceError> {
        if self.outbox.len() >= self.config.outbox_max {
            return Err(DeviceError::OutboxFull(self.outbox.len()));
        }
        let key = IdemKey::for_device(self.config.id, self.next_n);
        self.next_n += 1;
        let op = Operation {
            key: key.clone(),
            device: self.config.id,
            kind,
        };
        self.persist(Record::Outbox(op.clone()));
        self.outbox.insert(
            key.clone(),
            Pending {
                op,
                backoff: Backoff::new(self.config.retry.clone()),
                next_try: Some(now),
                reply_deadline: None,
                attempts: 0,
            },
        );
        self.pump(now);
        Ok(key)
    }

    /// Ask the tower for the latest version of `item`.
    pub fn read(&mut self, _now: Time, item: ItemId) {
        self.actions.push_back(Action::Send {
            to: Peer::Tower(self.config.tower),
            via: None,
            msg: Message::ReadItem { item },
        });
    }

    /// A message from the tower.
    pub fn handle_message(&mut self, now: Time, msg: Message) {
        match msg {
            Message::SubmitReply { key, reply } => self.on_reply(now, key, reply),
            Message::ItemData { manifest, bytes } => self.on_item(manifest, bytes),
            Message::Unavailable { item, reason } => {
                self.reads.insert(item, ReadOutcome::Unavailable(reason));
            }
            _ => {}
        }
        self.pump(now);
    }

    /// Retry what is due.
    pub fn handle_timeout(&mut self, now: Time) {
        for p in self.outbox.values_mut() {
            if p.reply_deadline.is_some_and(|d| d <= now) {
                // No answer: the tower or the path is down. Back off and try again.
                p.reply_deadline = None;
                p.next_try = Some(now + p.backoff.next_delay(&mut self.rng));
            }
        }
        self.pump(now);
    }

    /// When [`Device::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.outbox
            .values()
            .filter_map(|p| p.reply_deadline.or(p.next_try))
            .min()
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Operations not yet acknowledged by a tower.
    pub fn pending(&self) -> usize {
        self.outbox.len()
    }

    /// Keys the tower acknowledged, in order.
    pub fn acked(&self) -> &[IdemKey] {
        &self.acked
    }

    /// Keys the tower refused as conflicting (same key, different body).
    pub fn conflicts(&self) -> &[IdemKey] {
        &self.conflicts
    }

    /// The last outcome of reading `item`.
    pub fn last_read(&self, item: &ItemId) -> Option<&ReadOutcome> {
        self.reads.get(item)
    }

    fn persist(&mut self, record: Record) {
        let id = WriteId(self.next_write);
        self.next_write += 1;
        self.actions.push_back(Action::Write { id, record });
        let id = WriteId(self.next_write);
        self.next_write += 1;
        self.actions.push_back(Action::Fsync { id });
    }

    fn forget(&mut self, key: &IdemKey) {
        if self.outbox.remove(key).is_some() {
            let id = WriteId(self.next_write);
            self.next_write += 1;
            self.actions.push_back(Action::Delete {
                id,
                key: Key::Outbox(key.clone()),
            });
        }
    }

    fn on_reply(&mut self, now: Time, key: IdemKey, reply: SubmitReply) {
        match reply {
            SubmitReply::Accepted | SubmitReply::Duplicate => {
                if self.outbox.contains_key(&key) {
                    self.acked.push(key.clone());
                }
                self.forget(&key);
            }
            SubmitReply::Conflict => {
                self.conflicts.push(key.clone());
                self.forget(&key);
            }
            SubmitReply::InFlight | SubmitReply::Retry { .. } => {
                if let Some(p) = self.outbox.get_mut(&key) {
                    p.reply_deadline = None;
                    p.next_try = Some(now + p.backoff.next_delay(&mut self.rng));
                }
            }
        }
    }

    fn on_item(&mut self, manifest: Manifest, bytes: Bytes) {
        // Verify chunk by chunk against the manifest, then the whole digest.
        let mut offset = 0usize;
        let mut pieces = BTreeMap::new();
        for c in &manifest.chunks {
            let end = offset.saturating_add(c.len as usize).min(bytes.len());
            pieces.insert(c.hash, bytes.slice(offset..end));
            offset = end;
        }
        let outcome = if offset != bytes.len() {
            ReadOutcome::Corrupt(ReassembleError::Digest {
                item: manifest.item.clone(),
                version: manifest.version,
            })
        } else {
            match crate::content::reassemble(&manifest, |h| pieces.get(h).cloned()) {
                Ok(_) => ReadOutcome::Ok {
                    version: manifest.version,
                    bytes,
                },
                Err(e) => ReadOutcome::Corrupt(e),
            }
        };
        self.reads.insert(manifest.item, outcome);
    }

    fn pump(&mut self, now: Time) {
        let tower = self.config.tower;
        let timeout = self.config.reply_timeout;
        for p in self.outbox.values_mut() {
            if p.next_try.is_some_and(|t| t <= now) {
                p.next_try = None;
                p.reply_deadline = Some(now + timeout);
                p.attempts += 1;
                self.actions.push_back(Action::Send {
                    to: Peer::Tower(tower),
                    via: None,
                    msg: Message::SubmitOp { op: p.op.clone() },
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{ChunkParams, Priority, publish};

    fn device() -> Device {
        Device::new(DeviceConfig::new(DeviceId(7), TowerId(1)), 42)
    }

    fn sends(d: &mut Device) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(a) = d.poll_action() {
            if let Action::Send { msg, .. } = a {
                out.push(msg);
            }
        }
        out
    }

    fn msg(body: &str) -> OpKind {
        OpKind::Message {
            to: "clinic".into(),
            body: body.into(),
        }
    }

    #[test]
    fn an_operation_is_retried_with_the_same_key_until_acknowledged() {
        // Goal: offline devices keep an op and resend it unchanged until the tower acks it.
        let mut d = device();
        let key = d.submit(Time::ZERO, msg("hi")).unwrap();
        let first = sends(&mut d);
        assert_eq!(first.len(), 1);
        // No reply: after the timeout and a backoff, the same key goes out again.
        let mut now = Time::ZERO;
        let mut resent = Vec::new();
        for _ in 0..10 {
            now = d.poll_timeout().expect("a retry is scheduled");
            d.handle_timeout(now);
            resent.extend(sends(&mut d));
        }
        assert!(resent.len() >= 3, "retried {} times", resent.len());
        for m in &resent {
            assert!(matches!(m, Message::SubmitOp { op } if op.key == key));
        }
        d.handle_message(
            now,
            Message::SubmitReply {
                key: key.clone(),
                reply: SubmitReply::Accepted,
            },
        );
        assert_eq!(d.pending(), 0);
        assert_eq!(d.acked(), &[key]);
        assert_eq!(d.poll_timeout(), None);
    }

    #[test]
    fn retry_spacing_grows() {
        // Goal: backoff, not a tight loop, while the tower refuses.
        let mut d = device();
        let key = d.submit(Time::ZERO, msg("x")).unwrap();
        let mut gaps = Vec::new();
        let mut now = Time::ZERO;
        for _ in 0..6 {
            d.handle_message(
                now,
                Message::SubmitReply {
                    key: key.clone(),
                    reply: SubmitReply::Retry {
                        reason: "busy".into(),
                    },
                },
            );
            let next = d.poll_timeout().unwrap();
            gaps.push(next.saturating_since(now));
            now = next;
            d.handle_timeout(now);
        }
        let late: Duration = gaps[3..].iter().sum();
        let early: Duration = gaps[..3].iter().sum();
        assert!(late > early, "gaps {gaps:?}");
    }

    #[test]
    fn recovery_resends_persisted_operations_with_fresh_keys_after_them() {
        // Goal: a device reboot loses nothing it queued and never reuses a key.
        let mut d = device();
        let k1 = d.submit(Time::ZERO, msg("a")).unwrap();
        let mut durable = DurableState::new();
        while let Some(a) = d.poll_action() {
            if let Action::Write { record, .. } = a {
                durable.insert(record.key(), record);
            }
        }
        let mut d2 = Device::recover(d.config.clone(), 1, Time::from_secs(5), &durable, 0);
        let again = sends(&mut d2);
        assert!(matches!(&again[..], [Message::SubmitOp { op }] if op.key == k1));
        let k2 = d2.submit(Time::from_secs(5), msg("b")).unwrap();
        assert_ne!(k1, k2);
    }

    #[test]
    fn recovery_numbers_keys_after_the_keys_issued_even_with_an_empty_outbox() {
        // Goal: once every operation was acknowledged (the outbox is empty), a recovered
        // device still never reuses a key, given the count the driver kept; with none
        // given it would start again at 1, which is why the count is an input.
        let mut d = device();
        let mut keys = Vec::new();
        for body in ["a", "b", "c"] {
            keys.push(d.submit(Time::ZERO, msg(body)).unwrap());
        }
        let empty = DurableState::new();
        let mut d2 = Device::recover(d.config.clone(), 1, Time::from_secs(5), &empty, 3);
        let k4 = d2.submit(Time::from_secs(5), msg("d")).unwrap();
        assert!(!keys.contains(&k4), "{k4:?} reused");
        assert_eq!(k4.number(), 4);
        let mut forgetful = Device::recover(d.config.clone(), 1, Time::from_secs(5), &empty, 0);
        let reused = forgetful.submit(Time::from_secs(5), msg("d")).unwrap();
        assert_eq!(reused, keys[0], "without the count, key 1 comes back");
        // A queued key above the count still wins.
        let mut queued = DurableState::new();
        while let Some(a) = d.poll_action() {
            if let Action::Write { record, .. } = a {
                queued.insert(record.key(), record);
            }
        }
        let mut d3 = Device::recover(d.config.clone(), 1, Time::from_secs(5), &queued, 1);
        assert_eq!(d3.submit(Time::from_secs(5), msg("e")).unwrap().number(), 4);
    }

    #[test]
    fn reads_are_verified_and_corrupt_bytes_refused() {
        // Goal: a device never accepts bytes that fail their manifest.
        let data: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (m, _) = publish(
            ItemId::new("a"),
            1,
            Priority::P0,
            &data,
            ChunkParams::default(),
        )
        .unwrap();
        let mut d = device();
        d.handle_message(
            Time::ZERO,
            Message::ItemData {
                manifest: m.clone(),
                bytes: Bytes::from(data.clone()),
            },
        );
        assert!(matches!(
            d.last_read(&m.item),
            Some(ReadOutcome::Ok { version: 1, .. })
        ));
        let mut bad = data;
        bad[100] ^= 0xff;
        d.handle_message(
            Time::ZERO,
            Message::ItemData {
                manifest: m.clone(),
                bytes: Bytes::from(bad),
            },
        );
        assert!(matches!(
            d.last_read(&m.item),
            Some(ReadOutcome::Corrupt(_))
        ));
    }

    #[test]
    fn conflict_drops_the_operation_and_reports_it() {
        // Goal: a 422-style conflict is surfaced, not retried forever.
        let mut d = device();
        let key = d.submit(Time::ZERO, msg("a")).unwrap();
        d.handle_message(
            Time::ZERO,
            Message::SubmitReply {
                key: key.clone(),
                reply: SubmitReply::Conflict,
            },
        );
        assert_eq!(d.pending(), 0);
        assert_eq!(d.conflicts(), &[key]);
    }

    #[test]
    fn a_full_outbox_is_an_error() {
        // Goal: the outbox is bounded and says so.
        let mut cfg = DeviceConfig::new(DeviceId(1), TowerId(1));
        cfg.outbox_max = 2;
        let mut d = Device::new(cfg, 0);
        d.submit(Time::ZERO, msg("1")).unwrap();
        d.submit(Time::ZERO, msg("2")).unwrap();
        assert_eq!(
            d.submit(Time::ZERO, msg("3")),
            Err(DeviceError::OutboxFull(2))
        );
    }
}
