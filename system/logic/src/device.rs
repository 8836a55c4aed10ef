//! A device (phone, tablet, laptop): an offline outbox of operations, and verified reads.
//!
//! A [`Device`] queues operations while it cannot reach a tower, each under an
//! idempotency key that stays the same across retries (`<device>:<n>:<nonce>`: its own
//! identity, a running number and 64 random bits, see [`IdemKey`]). It keeps an operation
//! until its tower acknowledges it as durable (`Accepted` or `Duplicate`), retrying with
//! exponential backoff and jitter. An acknowledged operation is then *awaiting*: the
//! device asks its tower what became of it (`StatusRequest`), at growing intervals, until
//! the origin's verdict is known — applied, or a conflict or rejection found later at
//! the origin, which the device reports ([`Device::outcomes`]) rather than losing without
//! a word. An operation the tower refuses at the edge (not the device's key, invalid,
//! conflicting) leaves the outbox with the refusal recorded ([`Device::refusals`]).
//! Reads are verified against the manifest that comes with them: bytes that do not match
//! are refused, never shown.
//!
//! Call order: like the tower — `handle_*` inputs, then drain [`Device::poll_action`];
//! call [`Device::handle_timeout`] once `now >= poll_timeout()`. The device persists its
//! outbox with `Write`/`Fsync` actions (a local file in the real client) and is rebuilt by
//! [`Device::recover`]: queued operations are `Record::Outbox`, awaiting ones
//! `Record::Awaiting`.
//!
//! Not covered: which tower a device talks to (the driver routes `Peer::Tower`), UI.

use crate::backoff::{Backoff, BackoffPolicy};
use crate::content::{ItemId, Manifest, ReassembleError};
use crate::entropy::{Entropy, SplitMix64};
use crate::io::{Action, DurableState, Key, Record, WriteId};
use crate::protocol::{
    DeviceId, IdemKey, Message, OpKind, OpOutcome, OpStatus, Operation, Peer, SubmitReply, TowerId,
};
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
    /// Give every key a random part (`false`: planted `sequential-keys`, keys are
    /// `<device>:<n>` alone, as before keys had one).
    pub key_nonce: bool,
    /// First status check this long after an acknowledgement; the interval then doubles.
    pub status_after: Duration,
    /// Longest interval between status checks of one operation.
    pub status_interval_max: Duration,
    /// After this many `Unknown` answers in a row the device stops asking and records the
    /// outcome as unknown (the tower no longer remembers the key, or never held it).
    pub status_unknown_max: u32,
    /// Check a read's bytes against its manifest before accepting them (`false`: planted
    /// `device-skip-verify`, whatever arrives is accepted).
    pub verify_reads: bool,
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
            key_nonce: true,
            status_after: Duration::from_secs(600),
            status_interval_max: Duration::from_secs(86_400),
            status_unknown_max: 8,
            verify_reads: true,
        }
    }
}

/// Why a device refused a request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    /// The offline outbox is full; the user must wait for the tower.
    #[error("outbox full ({0} operations queued)")]
    OutboxFull(usize),
    /// An operation under this key is queued already.
    #[error("an operation under {0} is queued already")]
    KeyQueued(IdemKey),
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

/// The final word on an operation a tower acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FinalOutcome {
    /// The origin applied it (this very operation: its fingerprint matched).
    Applied {
        /// position in the origin's apply log
        seq: u64,
    },
    /// Another operation was applied under its key: this one never will be.
    Conflict,
    /// The origin rejected it.
    Rejected {
        /// why
        reason: String,
    },
    /// The tower stopped knowing the key before the device learnt the verdict.
    Unknown,
}

/// Status checks asked about in one request.
pub const STATUS_BATCH_MAX: usize = 64;
/// Entries kept in memory in each of the device's histories — final outcomes,
/// acknowledgements, conflicts, refusals (the oldest are dropped; drivers keep their own
/// log). A device that runs for months must not grow with every operation it ever sent.
pub const OUTCOMES_MAX: usize = 10_000;

/// Append to a history, dropping its oldest entry beyond [`OUTCOMES_MAX`].
fn remember<T>(history: &mut VecDeque<T>, entry: T) {
    if history.len() >= OUTCOMES_MAX {
        history.pop_front();
    }
    history.push_back(entry);
}

/// An acknowledged operation whose final outcome is not known yet.
#[derive(Clone, Debug)]
struct Awaiting {
    op: Operation,
    next_check: Time,
    interval: Duration,
    unknowns: u32,
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
    awaiting: BTreeMap<IdemKey, Awaiting>,
    /// Deadline of the status request on the wire, if one is.
    status_deadline: Option<Time>,
    next_n: u64,
    next_write: u64,
    actions: VecDeque<Action>,
    reads: BTreeMap<ItemId, ReadOutcome>,
    acked: VecDeque<IdemKey>,
    conflicts: VecDeque<IdemKey>,
    refusals: VecDeque<(IdemKey, SubmitReply)>,
    outcomes: VecDeque<(IdemKey, FinalOutcome)>,
}

impl Device {
    /// A device with an empty outbox.
    pub fn new(config: DeviceConfig, seed: u64) -> Device {
        Device {
            config,
            rng: SplitMix64::new(seed),
            outbox: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            status_deadline: None,
            next_n: 1,
            next_write: 1,
            actions: VecDeque::new(),
            reads: BTreeMap::new(),
            acked: VecDeque::new(),
            conflicts: VecDeque::new(),
            refusals: VecDeque::new(),
            outcomes: VecDeque::new(),
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
            match record {
                Record::Outbox(op) if op.device == device.config.id => {
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
                Record::Awaiting(op) if op.device == device.config.id => {
                    device.next_n = device.next_n.max(op.key.number() + 1);
                    device.await_outcome(op.clone(), now);
                }
                _ => {}
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
        let key = if self.config.key_nonce {
            IdemKey::for_device(self.config.id, self.next_n, self.rng.next_u64())
        } else {
            IdemKey::sequential(self.config.id, self.next_n)
        };
        self.next_n += 1;
        self.queue(now, key.clone(), kind);
        Ok(key)
    }

    /// Queue an operation under a key the caller chooses (a driver importing an outbox
    /// from elsewhere; the simulator's key-reuse workload, a device restored from an old
    /// backup). A key already queued is refused. Prefer [`Device::submit`].
    pub fn submit_under(
        &mut self,
        now: Time,
        key: IdemKey,
        kind: OpKind,
    ) -> Result<(), DeviceError> {
        if self.outbox.len() >= self.config.outbox_max {
            return Err(DeviceError::OutboxFull(self.outbox.len()));
        }
        if self.outbox.contains_key(&key) {
            return Err(DeviceError::KeyQueued(key));
        }
        self.queue(now, key, kind);
        Ok(())
    }

    /// Persist and queue this device's operation `kind` under `key`, and send it.
    fn queue(&mut self, now: Time, key: IdemKey, kind: OpKind) {
        let op = Operation {
            key: key.clone(),
            device: self.config.id,
            kind,
        };
        self.persist(Record::Outbox(op.clone()));
        self.outbox.insert(
            key,
            Pending {
                op,
                backoff: Backoff::new(self.config.retry.clone()),
                next_try: Some(now),
                reply_deadline: None,
                attempts: 0,
            },
        );
        self.pump(now);
    }

    /// The queued (not yet acknowledged) operation under `key`.
    pub fn queued(&self, key: &IdemKey) -> Option<&Operation> {
        self.outbox.get(key).map(|p| &p.op)
    }

    /// The number the next key will carry.
    pub fn next_number(&self) -> u64 {
        self.next_n
    }

    /// The device's settings.
    pub fn config(&self) -> &DeviceConfig {
        &self.config
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
            Message::StatusReply { statuses } => self.on_status(now, statuses),
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
        if self.status_deadline.is_some_and(|d| d <= now) {
            // Unanswered: the keys asked about were rescheduled when the request left.
            self.status_deadline = None;
        }
        self.pump(now);
    }

    /// When [`Device::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Time> {
        let outbox = self
            .outbox
            .values()
            .filter_map(|p| p.reply_deadline.or(p.next_try))
            .min();
        let status = match self.status_deadline {
            Some(d) => Some(d),
            None => self.awaiting.values().map(|a| a.next_check).min(),
        };
        [outbox, status].into_iter().flatten().min()
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Operations not yet acknowledged by a tower.
    pub fn pending(&self) -> usize {
        self.outbox.len()
    }

    /// Keys the tower acknowledged, in order (the last [`OUTCOMES_MAX`]).
    pub fn acked(&self) -> &VecDeque<IdemKey> {
        &self.acked
    }

    /// Keys the tower refused as conflicting (same key, different body; the last
    /// [`OUTCOMES_MAX`]).
    pub fn conflicts(&self) -> &VecDeque<IdemKey> {
        &self.conflicts
    }

    /// Operations the tower refused at the edge for another reason (`Forbidden`,
    /// `Invalid`), with the refusal (the last [`OUTCOMES_MAX`]).
    pub fn refusals(&self) -> &VecDeque<(IdemKey, SubmitReply)> {
        &self.refusals
    }

    /// Acknowledged operations whose final outcome is not known yet.
    pub fn awaiting(&self) -> usize {
        self.awaiting.len()
    }

    /// The keys of the acknowledged operations awaiting their outcome.
    pub fn awaiting_keys(&self) -> impl Iterator<Item = &IdemKey> {
        self.awaiting.keys()
    }

    /// Final outcomes learnt, oldest first (the last [`OUTCOMES_MAX`]).
    pub fn outcomes(&self) -> impl Iterator<Item = &(IdemKey, FinalOutcome)> {
        self.outcomes.iter()
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
                if let Some(p) = self.outbox.get(&key) {
                    remember(&mut self.acked, key.clone());
                    // Awaiting its verdict, durably, before it leaves the outbox: a crash
                    // in between leaves it in both, and resending it is harmless.
                    let op = p.op.clone();
                    self.persist(Record::Awaiting(op.clone()));
                    self.await_outcome(op, now);
                }
                self.forget(&key);
            }
            SubmitReply::Conflict => {
                if self.outbox.contains_key(&key) {
                    remember(&mut self.conflicts, key.clone());
                }
                self.forget(&key);
            }
            SubmitReply::Forbidden { .. } | SubmitReply::Invalid { .. } => {
                if self.outbox.contains_key(&key) {
                    remember(&mut self.refusals, (key.clone(), reply));
                }
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

    fn await_outcome(&mut self, op: Operation, now: Time) {
        let interval = self.config.status_after;
        self.awaiting.insert(
            op.key.clone(),
            Awaiting {
                op,
                next_check: now + interval,
                interval,
                unknowns: 0,
            },
        );
    }

    fn on_status(&mut self, now: Time, statuses: Vec<(IdemKey, OpStatus)>) {
        self.status_deadline = None;
        for (key, status) in statuses {
            let Some(a) = self.awaiting.get_mut(&key) else {
                continue;
            };
            let outcome = match status {
                OpStatus::Pending => {
                    a.unknowns = 0;
                    None
                }
                OpStatus::Unknown => {
                    a.unknowns += 1;
                    (a.unknowns >= self.config.status_unknown_max).then_some(FinalOutcome::Unknown)
                }
                OpStatus::Done {
                    outcome,
                    fingerprint,
                } => Some(if fingerprint != a.op.fingerprint() {
                    FinalOutcome::Conflict
                } else {
                    match outcome {
                        OpOutcome::Applied { seq } => FinalOutcome::Applied { seq },
                        OpOutcome::Conflict => FinalOutcome::Conflict,
                        OpOutcome::Rejected { reason } => FinalOutcome::Rejected { reason },
                    }
                }),
            };
            if let Some(outcome) = outcome {
                self.settle(key, outcome);
            }
        }
        let _ = now;
    }

    /// The final outcome of an awaiting operation is known: record it, drop it.
    fn settle(&mut self, key: IdemKey, outcome: FinalOutcome) {
        if self.awaiting.remove(&key).is_none() {
            return;
        }
        let id = WriteId(self.next_write);
        self.next_write += 1;
        self.actions.push_back(Action::Delete {
            id,
            key: Key::Awaiting(key.clone()),
        });
        remember(&mut self.outcomes, (key, outcome));
    }

    fn on_item(&mut self, manifest: Manifest, bytes: Bytes) {
        if !self.config.verify_reads {
            let version = manifest.version;
            self.reads
                .insert(manifest.item, ReadOutcome::Ok { version, bytes });
            return;
        }
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
        if self.status_deadline.is_none() {
            let max = self.config.status_interval_max;
            let mut keys = Vec::new();
            for (key, a) in &mut self.awaiting {
                if keys.len() >= STATUS_BATCH_MAX {
                    break;
                }
                if a.next_check <= now {
                    keys.push(key.clone());
                    a.interval = (a.interval * 2).min(max);
                    a.next_check = now + a.interval;
                }
            }
            if !keys.is_empty() {
                self.status_deadline = Some(now + timeout);
                self.actions.push_back(Action::Send {
                    to: Peer::Tower(tower),
                    via: None,
                    msg: Message::StatusRequest { keys },
                });
            }
        }
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

    #[test]
    fn histories_keep_the_last_outcomes_max_entries() {
        // Goal: acknowledgements, conflicts, refusals and outcomes are bounded (they grew
        // with every operation a device ever sent: a memory leak on a long-lived device).
        let mut h = VecDeque::new();
        for i in 0..OUTCOMES_MAX + 5 {
            remember(&mut h, i);
        }
        assert_eq!(h.len(), OUTCOMES_MAX);
        assert_eq!(h.front(), Some(&5), "the oldest are dropped");
        assert_eq!(h.back(), Some(&(OUTCOMES_MAX + 4)));
    }
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
        // Acknowledged: the next wake-up is the first check of its final outcome.
        assert_eq!(d.awaiting(), 1);
        assert_eq!(d.poll_timeout(), Some(now + d.config.status_after));
    }

    /// Submit one operation and have the tower acknowledge it; returns it.
    fn acked_op(d: &mut Device, body: &str) -> Operation {
        d.submit(Time::ZERO, msg(body)).unwrap();
        let op = match &sends(d)[..] {
            [Message::SubmitOp { op }] => op.clone(),
            other => panic!("expected one submission, got {other:?}"),
        };
        d.handle_message(
            Time::ZERO,
            Message::SubmitReply {
                key: op.key.clone(),
                reply: SubmitReply::Accepted,
            },
        );
        op
    }

    /// Run the device's timers up to `until` (or up to its first status request, with
    /// `Time::MAX`); the status requests it sent on the way.
    fn status_requests(d: &mut Device, until: Time) -> Vec<(Time, Vec<IdemKey>)> {
        let mut out = Vec::new();
        while let Some(t) = d.poll_timeout().filter(|t| *t <= until) {
            if until == Time::MAX && !out.is_empty() {
                break;
            }
            d.handle_timeout(t);
            while let Some(a) = d.poll_action() {
                if let Action::Send {
                    msg: Message::StatusRequest { keys },
                    ..
                } = a
                {
                    out.push((t, keys));
                }
            }
        }
        out
    }

    #[test]
    fn an_acknowledged_operation_learns_its_verdict_and_a_later_conflict_is_reported() {
        // Goal: "acknowledged" is not the last word: the device asks its tower what became
        // of the operation until the origin's verdict is known, and a conflict or a
        // rejection found later at the origin reaches it rather than being lost unsaid.
        let mut d = device();
        let applied = acked_op(&mut d, "a");
        let conflict = acked_op(&mut d, "b");
        let rejected = acked_op(&mut d, "c");
        let pending = acked_op(&mut d, "d");
        let asked = status_requests(&mut d, Time::from_secs(600));
        assert_eq!(asked.len(), 1, "one batched request: {asked:?}");
        assert_eq!(asked[0].1.len(), 4);
        let done = |op: &Operation, outcome: OpOutcome, same: bool| {
            let mut other = op.clone();
            other.kind = msg("someone else's body");
            OpStatus::Done {
                outcome,
                fingerprint: if same {
                    op.fingerprint()
                } else {
                    other.fingerprint()
                },
            }
        };
        d.handle_message(
            Time::from_secs(600),
            Message::StatusReply {
                statuses: vec![
                    (
                        applied.key.clone(),
                        done(&applied, OpOutcome::Applied { seq: 9 }, true),
                    ),
                    // Applied — but another operation under this key, not this one.
                    (
                        conflict.key.clone(),
                        done(&conflict, OpOutcome::Applied { seq: 10 }, false),
                    ),
                    (
                        rejected.key.clone(),
                        done(
                            &rejected,
                            OpOutcome::Rejected {
                                reason: "overflow".into(),
                            },
                            true,
                        ),
                    ),
                    (pending.key.clone(), OpStatus::Pending),
                ],
            },
        );
        let outcomes: Vec<_> = d.outcomes().cloned().collect();
        assert_eq!(
            outcomes,
            vec![
                (applied.key.clone(), FinalOutcome::Applied { seq: 9 }),
                (conflict.key.clone(), FinalOutcome::Conflict),
                (
                    rejected.key.clone(),
                    FinalOutcome::Rejected {
                        reason: "overflow".into()
                    }
                ),
            ]
        );
        // Settled operations are dropped from durable state; the pending one is asked about
        // again later, at a longer interval.
        let deletes: Vec<Key> = std::iter::from_fn(|| d.poll_action())
            .filter_map(|a| match a {
                Action::Delete { key, .. } => Some(key),
                _ => None,
            })
            .collect();
        assert_eq!(deletes.len(), 3, "{deletes:?}");
        assert!(deletes.iter().all(|k| matches!(k, Key::Awaiting(_))));
        assert_eq!(d.awaiting(), 1);
        let again = status_requests(&mut d, Time::from_secs(4 * 3600));
        assert!(
            again
                .iter()
                .all(|(_, keys)| keys == &vec![pending.key.clone()])
        );
        let gaps: Vec<u64> = again
            .windows(2)
            .map(|w| w[1].0.as_micros() - w[0].0.as_micros())
            .collect();
        assert!(
            gaps.windows(2).all(|g| g[1] > g[0]),
            "intervals grow: {gaps:?}"
        );
    }

    #[test]
    fn a_key_the_tower_no_longer_knows_ends_as_unknown_after_the_limit() {
        // Goal: the device does not ask forever about a key its tower forgot.
        let mut d = device();
        let op = acked_op(&mut d, "a");
        let mut now = Time::ZERO;
        for i in 0..d.config.status_unknown_max {
            let asked = status_requests(&mut d, Time::MAX);
            assert_eq!(asked.len(), 1, "round {i}");
            now = asked[0].0;
            assert_eq!(d.outcomes().count(), 0);
            d.handle_message(
                now,
                Message::StatusReply {
                    statuses: vec![(op.key.clone(), OpStatus::Unknown)],
                },
            );
        }
        assert_eq!(
            d.outcomes().cloned().collect::<Vec<_>>(),
            vec![(op.key.clone(), FinalOutcome::Unknown)]
        );
        assert_eq!(d.awaiting(), 0);
        assert_eq!(d.poll_timeout(), None);
        let _ = now;
    }

    #[test]
    fn awaiting_operations_survive_a_reboot() {
        // Goal: a device that reboots still learns the verdict of what it had acknowledged.
        let mut d = device();
        let mut durable = DurableState::new();
        let op = acked_op(&mut d, "a");
        while let Some(a) = d.poll_action() {
            match a {
                Action::Write { record, .. } => {
                    durable.insert(record.key(), record);
                }
                Action::Delete { key, .. } => {
                    durable.remove(&key);
                }
                _ => {}
            }
        }
        assert_eq!(durable.len(), 1, "only the awaiting record: {durable:?}");
        let mut d2 = Device::recover(d.config.clone(), 2, Time::ZERO, &durable, op.key.number());
        assert_eq!(d2.pending(), 0, "not resent");
        assert_eq!(d2.awaiting(), 1);
        let asked = status_requests(&mut d2, Time::MAX);
        assert_eq!(asked[0].1, vec![op.key.clone()]);
    }

    #[test]
    fn edge_refusals_leave_the_outbox_and_are_recorded() {
        // Goal: a refusal that sending again cannot cure (not the device's key, invalid) is
        // recorded for the user and not retried.
        let mut d = device();
        let a = d.submit(Time::ZERO, msg("a")).unwrap();
        let b = d.submit(Time::ZERO, msg("b")).unwrap();
        let forbidden = SubmitReply::Forbidden {
            reason: "not yours".into(),
        };
        let invalid = SubmitReply::Invalid {
            invalid: crate::protocol::OpInvalid {
                field: "op.amount_minor",
                reason: "zero".into(),
            },
        };
        for (key, reply) in [(&a, &forbidden), (&b, &invalid)] {
            d.handle_message(
                Time::ZERO,
                Message::SubmitReply {
                    key: key.clone(),
                    reply: reply.clone(),
                },
            );
        }
        assert_eq!(d.pending(), 0);
        assert_eq!(d.awaiting(), 0);
        assert_eq!(d.refusals(), &[(a, forbidden), (b, invalid)]);
    }

    #[test]
    fn keys_carry_the_owner_and_a_random_part_unless_planted_sequential() {
        // Goal: keys are unique per device and per operation: owner + number + 64 random
        // bits; the planted `sequential-keys` reproduces the old `<device>:<n>` keys.
        let mut d = device();
        let k1 = d.submit(Time::ZERO, msg("a")).unwrap();
        let k2 = d.submit(Time::ZERO, msg("b")).unwrap();
        assert_eq!(k1.owner(), Some(DeviceId(7)));
        assert_eq!((k1.number(), k2.number()), (1, 2));
        assert_eq!(k1.0.split(':').count(), 3);
        assert!(k1.0.starts_with("7:00000001:") && k1.0.len() == "7:00000001:".len() + 16);
        let mut other = Device::new(DeviceConfig::new(DeviceId(7), TowerId(1)), 43);
        assert_ne!(
            other.submit(Time::ZERO, msg("a")).unwrap(),
            k1,
            "same id, same number"
        );
        let mut cfg = DeviceConfig::new(DeviceId(7), TowerId(1));
        cfg.key_nonce = false;
        let mut planted = Device::new(cfg.clone(), 42);
        let mut twin = Device::new(cfg, 43);
        let p1 = planted.submit(Time::ZERO, msg("a")).unwrap();
        assert_eq!(p1, IdemKey("7:00000001".into()));
        assert_eq!(
            twin.submit(Time::ZERO, msg("z")).unwrap(),
            p1,
            "shared identity collides"
        );
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
        assert_eq!(reused.number(), 1, "without the count, number 1 comes back");
        assert_ne!(reused, keys[0], "but the key's random part keeps it unique");
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
        // The planted bug accepts them.
        let mut planted = device();
        planted.config.verify_reads = false;
        planted.handle_message(
            Time::ZERO,
            Message::ItemData {
                manifest: m.clone(),
                bytes: Bytes::from(vec![0u8; 4]),
            },
        );
        assert!(matches!(
            planted.last_read(&m.item),
            Some(ReadOutcome::Ok { version: 1, .. })
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
