//! The read path: how a device read of an item is decided, the one policy both drivers
//! (the simulator and the real tower) run.
//!
//! A read has two halves. The logic plans it — [`ReadView::plan`] (a snapshot drivers may
//! share across threads) or [`Tower::serve_plan`](super::Tower::serve_plan) (on the state
//! machine itself, which also notes the demand) — and answers either a [`Refusal`] or a
//! [`ServePlan`]: the manifest of the servable version, whose chunks the driver reads and
//! hashes (the logic does no I/O). The driver hands the plan one [`ChunkVerdict`] per
//! chunk, in manifest order, and [`ServePlan::decide`] says what the read answers:
//!
//! - every chunk intact: [`ReadOutcome::Serve`] the bytes;
//! - any chunk rotten (bytes that do not hash to their address, or of the wrong length) or
//!   missing from the store: [`ReadOutcome::Repair`], listing *every* such chunk of the
//!   item — the driver checks them all, not only up to the first bad one, so that one
//!   read lets the tower quarantine and fetch them all again at once. The read answers
//!   [`Refusal::Repairing`] ("temporarily unavailable, retry"; 503 on the real API), never
//!   "not held", and the driver hands the outcome to
//!   [`Tower::handle_read_result`](super::Tower::handle_read_result), which quarantines
//!   every listed chunk and queues it for fetching. Bytes that fail their hash are never
//!   served.
//!
//! What the plan answers before any byte is read:
//!
//! - the tower is shutting down or off: [`Refusal::PoweredDown`] (whatever the item);
//! - no uplink works and the tower refuses offline service (only the planted
//!   `offline-refuse`): [`Refusal::Offline`];
//! - the item's servable version was lost to a quarantine (a read found rot) and it has
//!   not been servable since: [`Refusal::Repairing`], as the read that found the rot
//!   answered — the tower is fetching it again (or a newer version), so "retry", not "not
//!   held". This is not durable: after a restart such an item answers "not held" until
//!   it is servable again;
//! - the item has no complete, verified version otherwise: [`Refusal::NotHeld`] (404 on
//!   the real API);
//! - otherwise the servable version. An item whose newer version is still syncing serves
//!   its last complete verified version; a class whose syncing the power manager shed
//!   (`ShedP3`, `ShedP2`, `Essential`) is still served from what is held — shedding stops
//!   fetching, not service.
//!
//! With the planted `skip-verify` ([`ServePlan::verifies`] is `false`) the driver need not
//! hash, and rotten verdicts do not stop the read (that is the bug the integrity oracle
//! catches); a missing chunk still does — there are no bytes to serve.
//!
//! Map: [`ReadView`], [`ServePlan`], [`ChunkVerdict`], [`ReadOutcome`].
//!
//! Not covered: reading and hashing bytes, caching verified bytes, HTTP status codes (the
//! drivers'); demand notes for the cache warmer ([`super::warmer`]).

use super::Refusal;
use crate::content::{ChunkHash, ItemId, Manifest};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What planning a device read needs from the tower, as of one moment: a snapshot a
/// driver may keep behind a lock and read from many tasks at once (the real tower
/// publishes one after each step of its node task; see
/// [`Tower::refresh_read_view`](super::Tower::refresh_read_view)). Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadView {
    pub(super) refusal: Option<Refusal>,
    pub(super) epoch: u64,
    pub(super) verify: bool,
    pub(super) items: Arc<BTreeMap<ItemId, Arc<Manifest>>>,
    /// Items whose servable version was lost to a quarantine (see the module doc).
    pub(super) repairing: Arc<BTreeSet<ItemId>>,
}

impl ReadView {
    /// Plan a read of `item` exactly as [`Tower::serve_plan`](super::Tower::serve_plan)
    /// would have at the moment this view was taken (without noting demand).
    pub fn plan(&self, item: &ItemId) -> Result<ServePlan, Refusal> {
        plan(
            self.refusal.clone(),
            self.items.get(item).cloned(),
            self.repairing.contains(item),
            self.verify,
        )
    }

    /// Why every read is refused, if it is ([`Tower::read_refusal`](super::Tower::read_refusal)).
    pub fn refusal(&self) -> Option<&Refusal> {
        self.refusal.as_ref()
    }

    /// The tower's [`serve_epoch`](super::Tower::serve_epoch) when the servable set was
    /// taken.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The servable versions by item.
    pub fn items(&self) -> &BTreeMap<ItemId, Arc<Manifest>> {
        &self.items
    }
}

/// The one planning rule: a refusal of every read first, then the item's servable
/// version, then whether it is being repaired.
pub(super) fn plan(
    refusal: Option<Refusal>,
    servable: Option<Arc<Manifest>>,
    repairing: bool,
    verify: bool,
) -> Result<ServePlan, Refusal> {
    if let Some(r) = refusal {
        return Err(r);
    }
    match servable {
        Some(manifest) => Ok(ServePlan { manifest, verify }),
        None if repairing => Err(Refusal::Repairing),
        None => Err(Refusal::NotHeld),
    }
}

/// A planned read: the manifest of the version to serve, whose chunks the driver reads and
/// judges before [`ServePlan::decide`] says whether to serve them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServePlan {
    /// The servable version.
    pub manifest: Arc<Manifest>,
    verify: bool,
}

impl ServePlan {
    /// Whether the driver must hash chunk bytes (`false` only with the planted
    /// `skip-verify`).
    pub fn verifies(&self) -> bool {
        self.verify
    }

    /// What the read answers, given one verdict per chunk of the manifest, in order. Every
    /// chunk must be judged: a read with fewer verdicts than chunks is not served (it
    /// answers [`ReadOutcome::Repair`] listing only the chunks judged bad, so no unjudged
    /// chunk is quarantined); extra verdicts are ignored.
    pub fn decide(&self, verdicts: impl IntoIterator<Item = ChunkVerdict>) -> ReadOutcome {
        let mut verdicts = verdicts.into_iter();
        let mut rotten: Vec<ChunkHash> = Vec::new();
        let mut unjudged = false;
        for c in &self.manifest.chunks {
            let bad = match verdicts.next() {
                Some(ChunkVerdict::Intact) => false,
                Some(ChunkVerdict::Rotten) => self.verify,
                Some(ChunkVerdict::Missing) => true,
                None => {
                    unjudged = true;
                    false
                }
            };
            // A chunk the item uses twice is reported once.
            if bad && !rotten.contains(&c.hash) {
                rotten.push(c.hash);
            }
        }
        if rotten.is_empty() && !unjudged {
            ReadOutcome::Serve
        } else {
            ReadOutcome::Repair { rotten }
        }
    }
}

/// What the driver found when it read one chunk of a planned read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkVerdict {
    /// The bytes hash to the chunk's address and have its length (or, with `skip-verify`,
    /// were not checked).
    Intact,
    /// The bytes do not hash to the chunk's address, or have the wrong length.
    Rotten,
    /// The store has no bytes for the chunk.
    Missing,
}

/// What a planned read answers (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Serve the bytes read.
    Serve,
    /// Serve nothing: answer [`Refusal::Repairing`] and hand this outcome to
    /// [`Tower::handle_read_result`](super::Tower::handle_read_result).
    Repair {
        /// Every chunk of the item found rotten or missing, in manifest order.
        rotten: Vec<ChunkHash>,
    },
}

impl ReadOutcome {
    /// The refusal the read answers with, if it is not served.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            ReadOutcome::Serve => None,
            ReadOutcome::Repair { .. } => Some(Refusal::Repairing),
        }
    }
}
