//! The write/fsync contract as a model: [`DiskModel`], the one simulated disk behind the
//! simulator's disks, the in-memory store the real servers are tested on, and the logic's
//! own test harness, so that all of them lose exactly what a real disk may lose.
//!
//! Writes and deletes are numbered as they are issued and stay pending — visible to reads
//! (the page cache) but not durable. An fsync covers the writes issued before it: when it
//! completes they become durable in issue order; when it fails they are gone (the kernel
//! dropped the dirty pages; fsyncgate). A crash drops everything pending.
//!
//! Map: [`DiskModel`].
//!
//! Not covered: faults beyond those (torn writes, bit rot, write errors, latency) and
//! checksums — each driver adds what it simulates on top, keeping its own value type `R`.

use super::Key;
use std::collections::{BTreeMap, BTreeSet};

/// Durable values by key, and the writes (`Some`) and deletes (`None`) issued since,
/// oldest first, with their issue numbers.
#[derive(Clone, Debug)]
pub struct DiskModel<R> {
    durable: BTreeMap<Key, R>,
    pending: Vec<(u64, Key, Option<R>)>,
    issued: u64,
    /// The keys made durable since [`DiskModel::mark`], or `None` when there is no mark or
    /// `durable` changed in another way since (a delete, a lend to change, too many keys).
    since_mark: Option<BTreeSet<Key>>,
}

impl<R> Default for DiskModel<R> {
    fn default() -> Self {
        DiskModel {
            durable: BTreeMap::new(),
            pending: Vec::new(),
            issued: 0,
            since_mark: None,
        }
    }
}

impl<R> DiskModel<R> {
    /// How many keys [`DiskModel::since_mark`] lists at most: past that, the mark is
    /// dropped (a driver reading that many records may as well read them all).
    pub const SINCE_MARK_MAX: usize = 1 << 16;

    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// Issue a write of `value` under `key`; returns its number.
    pub fn write(&mut self, key: Key, value: R) -> u64 {
        self.issue(key, Some(value))
    }

    /// Issue a delete of `key`; returns its number.
    pub fn delete(&mut self, key: Key) -> u64 {
        self.issue(key, None)
    }

    fn issue(&mut self, key: Key, value: Option<R>) -> u64 {
        self.issued += 1;
        self.pending.push((self.issued, key, value));
        self.issued
    }

    /// The number of the last write or delete issued: what an fsync issued now covers.
    pub fn issued(&self) -> u64 {
        self.issued
    }

    /// What a read of `key` sees now: the newest pending write or delete of it, else the
    /// durable value.
    pub fn read(&self, key: &Key) -> Option<&R> {
        match self.pending.iter().rev().find(|(_, k, _)| k == key) {
            Some((_, _, value)) => value.as_ref(),
            None => self.durable.get(key),
        }
    }

    /// An fsync covering the writes issued up to `upto` completed: they are durable, in
    /// issue order; later ones stay pending.
    pub fn sync(&mut self, upto: u64) {
        let (done, rest) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(n, _, _)| *n <= upto);
        self.pending = rest;
        for (_, key, value) in done {
            match value {
                Some(v) => {
                    if let Some(keys) = &mut self.since_mark {
                        keys.insert(key.clone());
                    }
                    self.durable.insert(key, v);
                }
                None => {
                    if self.durable.remove(&key).is_some() {
                        self.since_mark = None;
                    }
                }
            }
        }
        if self
            .since_mark
            .as_ref()
            .is_some_and(|keys| keys.len() > Self::SINCE_MARK_MAX)
        {
            self.since_mark = None;
        }
    }

    /// An fsync covering the writes issued up to `upto` failed: they are gone; later ones
    /// stay pending. Returns the lost ones, oldest first.
    pub fn lose(&mut self, upto: u64) -> Vec<(u64, Key, Option<R>)> {
        let (lost, kept) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(n, _, _)| *n <= upto);
        self.pending = kept;
        lost
    }

    /// A crash: every pending write and delete is gone. Returns them, oldest first (what a
    /// driver that tears a write picks from).
    pub fn crash(&mut self) -> Vec<(u64, Key, Option<R>)> {
        std::mem::take(&mut self.pending)
    }

    /// Writes and deletes not yet covered by a completed fsync.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// What is durable: what a process restarting on this disk finds.
    pub fn durable(&self) -> &BTreeMap<Key, R> {
        &self.durable
    }

    /// The durable values, to change behind the writes' back (bit rot, a torn write,
    /// garbage collection, quarantine).
    pub fn durable_mut(&mut self) -> &mut BTreeMap<Key, R> {
        self.since_mark = None;
        &mut self.durable
    }

    /// Start listing the keys that become durable from now on ([`DiskModel::since_mark`]),
    /// for a driver that keeps what a rebuild made of the durable records.
    pub fn mark(&mut self) {
        self.since_mark = Some(BTreeSet::new());
    }

    /// Since the last [`DiskModel::mark`], if the durable records changed only by writes
    /// becoming durable: their keys. Empty: a process restarting on this disk finds the
    /// same records as at the mark. `None`: no mark, or records were deleted or changed in
    /// place since, or more than [`DiskModel::SINCE_MARK_MAX`] keys became durable.
    pub fn since_mark(&self) -> Option<&BTreeSet<Key>> {
        self.since_mark.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::IdemKey;

    fn key(n: u32) -> Key {
        Key::Outbox(IdemKey(format!("op-{n}").into()))
    }

    #[test]
    fn an_fsync_makes_durable_exactly_the_writes_issued_before_it() {
        // Goal: the write/fsync split: pending writes are readable but not durable; an
        // fsync covers what was issued before it, in order, deletes included.
        let mut d = DiskModel::new();
        d.write(key(1), "a1");
        d.write(key(2), "b");
        let upto = d.issued();
        d.delete(key(1));
        d.write(key(1), "a2");
        assert_eq!(
            d.read(&key(1)),
            Some(&"a2"),
            "the newest pending write wins"
        );
        assert!(d.durable().is_empty());
        d.sync(upto);
        assert_eq!(d.durable().get(&key(1)), Some(&"a1"));
        assert_eq!(d.pending_len(), 2);
        d.sync(d.issued());
        assert_eq!(d.durable().values().collect::<Vec<_>>(), vec![&"a2", &"b"]);
    }

    #[test]
    fn a_failed_fsync_loses_what_it_covered_and_a_crash_loses_all_that_is_pending() {
        // Goal: a failed fsync drops the writes it covered (reads fall back to the durable
        // value), not later ones; a crash drops every pending one and hands them back.
        let mut d = DiskModel::new();
        d.write(key(1), 1);
        d.sync(d.issued());
        d.write(key(1), 2);
        let upto = d.issued();
        d.write(key(2), 3);
        d.lose(upto);
        assert_eq!(d.read(&key(1)), Some(&1));
        assert_eq!(d.read(&key(2)), Some(&3));
        d.delete(key(1));
        let lost = d.crash();
        assert_eq!(lost, vec![(3, key(2), Some(3)), (4, key(1), None)]);
        assert_eq!((d.read(&key(1)), d.read(&key(2))), (Some(&1), None));
        assert_eq!(d.issued(), 4, "numbers are not reused");
    }

    #[test]
    fn the_keys_since_a_mark_are_every_write_made_durable_and_nothing_else_changed() {
        // Goal: a driver that brings its kept rebuild up to date from the listed keys never
        // misses a change: writes made durable are listed (overwrites too, and writes
        // issued before the mark); pending, lost and crashed writes are not; a delete or a
        // change behind the writes' back drops the list, as does no mark at all.
        let listed = |d: &DiskModel<u32>| d.since_mark().map(|k| k.iter().cloned().collect());
        let mut d = DiskModel::new();
        d.write(key(1), 1);
        d.sync(d.issued());
        assert_eq!(listed(&d), None, "no mark");
        d.write(key(6), 6);
        d.mark();
        d.write(key(2), 2);
        d.delete(key(9));
        assert_eq!(listed(&d), Some(vec![]), "pending writes are not durable");
        d.sync(d.issued());
        d.write(key(3), 3);
        d.lose(d.issued());
        d.write(key(4), 4);
        d.crash();
        d.write(key(1), 10);
        d.write(key(2), 20);
        d.sync(d.issued());
        assert_eq!(
            listed(&d),
            Some(vec![key(1), key(2), key(6)]),
            "durable writes, overwrites and one issued before the mark included; a delete \
             of nothing changes nothing"
        );
        d.write(key(7), 7);
        d.delete(key(7));
        d.sync(d.issued());
        assert_eq!(listed(&d), None, "a write deleted in the same fsync");
        d.mark();
        d.delete(key(2));
        d.sync(d.issued());
        assert_eq!(listed(&d), None, "a durable delete");
        d.mark();
        d.durable_mut().insert(key(5), 5);
        assert_eq!(listed(&d), None, "a change in place (torn write, bit rot)");
        d.mark();
        for n in 0..=DiskModel::<u32>::SINCE_MARK_MAX as u32 {
            d.write(key(n), n);
        }
        d.sync(d.issued());
        assert_eq!(listed(&d), None, "too many to list");
    }
}
