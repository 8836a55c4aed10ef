//! Each host's disk ([`Disk`]: a `MemDisk` that outlives the host's processes) and the
//! store a process gets on it ([`HostStore`]), which can lose power at an fsync
//! ([`Cut`], armed by the schedule's `Act::PowerCut`).
//!
//! Why power cuts and not only turmoil crashes: the node tasks perform a write and the
//! fsync covering it in one synchronous drain, and turmoil crashes a host only between
//! steps, when every task has yielded — so `sim.crash` plus `MemDisk::crash` finds nothing
//! unsynced and never separates a write from its fsync. A power cut fires *inside* the
//! fsync instead: the staged changes vanish, the fsync fails, and the driver crashes the
//! host at the end of that step (anything the process sent before the fsync — an early
//! acknowledgement, say — is already on the wire, as in a real power loss).
//!
//! Map: [`Covering`], [`Cut`], [`Disk`], [`HostStore`].

use bytes::Bytes;
use sovereign_logic::content::ChunkHash;
use sovereign_logic::io::{Key, Record};
use sovereign_store::{Garbage, MemDisk, MemStore, Recovered, Store, StoreError};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// When a power cut fires: at an fsync that covers a staged record of this kind, after
/// letting `skip` such fsyncs complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Covering {
    /// a device operation in the tower's outbox
    Outbox,
    /// chunk bytes
    Chunk,
    /// an applied operation at the origin
    Applied,
    /// a catalog entry
    Entry,
    /// a tower's memory of a confirmed operation, or a device's awaited one
    Memory,
    /// the origin's identity or a tower's trusted origin
    Identity,
}

#[derive(Debug, Default)]
struct CutState {
    armed: Option<(Covering, u32)>,
    /// The cut fired; the store refuses everything until the host restarts.
    dead: bool,
    /// The driver noticed and crashed the host.
    handled: bool,
    fired: u32,
    /// How long the host stays down after the cut.
    down: Duration,
}

/// A host's power-cut switch: armed by the schedule, fired by the store at an fsync,
/// noticed by the driver, which then crashes the host.
#[derive(Clone, Debug, Default)]
pub struct Cut(Arc<Mutex<CutState>>);

impl Cut {
    fn lock(&self) -> std::sync::MutexGuard<'_, CutState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// The power goes off at the next fsync covering `covering`, after `skip` of them;
    /// the host stays down for `down`.
    pub fn arm(&self, covering: Covering, skip: u32, down: Duration) {
        let mut c = self.lock();
        c.armed = Some((covering, skip));
        c.down = down;
    }
    /// For the driver: `Some(down)` once after a cut fired (crash the host now, restart it
    /// `down` later).
    pub fn take_fired(&self) -> Option<Duration> {
        let mut c = self.lock();
        if c.dead && !c.handled {
            c.handled = true;
            Some(c.down)
        } else {
            None
        }
    }
    /// How many cuts fired.
    pub fn fired(&self) -> u32 {
        self.lock().fired
    }
}

/// The disk of one host: outlives its processes.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    /// The records and chunks.
    pub mem: MemDisk,
    /// Its power-cut switch.
    pub cut: Cut,
}

impl Disk {
    /// A store for a (re)started process on this disk.
    pub fn store(&self) -> HostStore {
        let mut c = self.cut.lock();
        c.dead = false;
        c.handled = false;
        drop(c);
        HostStore {
            inner: MemStore::new(self.mem.clone()),
            cut: self.cut.clone(),
            staged: Mutex::new(BTreeSet::new()),
        }
    }
}

fn kind_of(key: &Key) -> Covering {
    match key {
        Key::Chunk(_) => Covering::Chunk,
        Key::Entry(_) => Covering::Entry,
        Key::Outbox(_) => Covering::Outbox,
        Key::Applied(_) => Covering::Applied,
        Key::Confirmed(_) | Key::Awaiting(_) => Covering::Memory,
        Key::Identity | Key::TrustedOrigin => Covering::Identity,
    }
}

fn kind_name(c: Covering) -> &'static str {
    match c {
        Covering::Outbox => "outbox",
        Covering::Chunk => "chunk",
        Covering::Applied => "applied",
        Covering::Entry => "entry",
        Covering::Memory => "memory",
        Covering::Identity => "identity",
    }
}

/// A [`MemStore`] that can lose power at an fsync: the staged changes vanish (what
/// `kill -9` or a power loss does before the fsync returns), the fsync fails, and every
/// later call fails until the host restarts on a new store.
pub struct HostStore {
    inner: MemStore,
    cut: Cut,
    staged: Mutex<BTreeSet<&'static str>>,
}

fn power_cut() -> StoreError {
    StoreError::Injected("power cut (simulated)".to_string())
}

impl HostStore {
    fn alive(&self) -> Result<(), StoreError> {
        if self.cut.lock().dead {
            Err(power_cut())
        } else {
            Ok(())
        }
    }
}

impl Store for HostStore {
    fn write(&self, record: &Record) -> Result<(), StoreError> {
        self.alive()?;
        self.staged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kind_name(kind_of(&record.key())));
        self.inner.write(record)
    }
    fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.alive()?;
        self.inner.delete(key)
    }
    fn fsync(&self) -> Result<(), StoreError> {
        self.alive()?;
        let staged = std::mem::take(&mut *self.staged.lock().unwrap_or_else(|p| p.into_inner()));
        let mut c = self.cut.lock();
        if let Some((covering, skip)) = c.armed {
            if staged.contains(kind_name(covering)) {
                if skip == 0 {
                    c.armed = None;
                    c.dead = true;
                    c.fired += 1;
                    drop(c);
                    self.inner.disk().crash();
                    return Err(power_cut());
                }
                c.armed = Some((covering, skip - 1));
            }
        }
        drop(c);
        self.inner.fsync()
    }
    fn discard(&self) -> Result<(), StoreError> {
        self.alive()?;
        self.inner.discard()
    }
    fn collect_garbage(&self, keep: &BTreeSet<ChunkHash>) -> Result<Garbage, StoreError> {
        self.alive()?;
        self.inner.collect_garbage(keep)
    }
    fn recover(&self) -> Result<Recovered, StoreError> {
        self.alive()?;
        self.inner.recover()
    }
    fn recover_index(&self) -> Result<Recovered, StoreError> {
        self.alive()?;
        self.inner.recover_index()
    }
    fn chunk(&self, hash: &ChunkHash) -> Result<Option<Bytes>, StoreError> {
        self.alive()?;
        self.inner.chunk(hash)
    }
    fn corrupt_one(&self) -> Result<Option<ChunkHash>, StoreError> {
        self.alive()?;
        self.inner.corrupt_one()
    }
}
