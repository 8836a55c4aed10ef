//! Which origin a tower trusts, and what it does when another one answers.
//!
//! A tower remembers the identity ([`OriginId`]) of the origin it syncs from, durably
//! (`Record::TrustedOrigin`), and compares every identity the origin announces with it:
//!
//! - **Adoption.** A tower that trusts no origin yet (a new one, or one that predates
//!   identities: it has no `TrustedOrigin` record) adopts the first origin whose catalog
//!   reply carries an identity, and syncs on as before. A reply without an identity while
//!   nothing is trusted is taken as before (older origins, the simulator's).
//! - **Mismatch.** When a reply (a catalog reply, or any reply whose identity the driver
//!   reports through [`Tower::handle_origin_identity`]) comes from another origin, or
//!   from one that announces none, the tower stops syncing: it adopts nothing from that
//!   catalog, requests no chunks and forwards no operations (a forward reply that arrives
//!   meanwhile is ignored, so the operations stay in the outbox and are retried with the
//!   trusted origin; replays are idempotent). It keeps serving everything it verified
//!   from the trusted origin — offline service does not depend on the uplink — and emits
//!   [`Event::OriginMismatch`]. It keeps polling the catalog (adopting nothing), so that
//!   if the trusted origin answers again it resumes ([`Event::OriginRestored`]).
//! - **Re-home** ([`Tower::rehome`], an operator's decision). The tower writes
//!   `TrustedOrigin(None)` (re-home pending, durable: a crash resumes it), stops forwarding
//!   and fetching, and reads the next origin's whole catalog from seq 0, page by page.
//!   Each held item is reconciled: an entry identical to the new origin's (same manifest:
//!   id, version, chunk hashes) is kept and served on, re-stamped with the new origin's
//!   seq; an item the new origin has with another manifest (other bytes under the same id
//!   and version, or another version) stops being served at once and syncs the new one
//!   (chunks already held are reused); an item the new origin lacks is withdrawn and its
//!   entry deleted. Then the tower trusts the new origin ([`Event::OriginAdopted`] with
//!   `rehomed: true`), its catalog cursor is the highest new seq, and syncing resumes.
//!   `TrustedOrigin(Some(new))` is written only once every entry write and delete of the
//!   reconciliation is durable, so a crash in between redoes the re-home rather than
//!   trusting a half-reconciled store.
//!
//! The planted bug `TowerConfig::check_origin = false` ignores identities altogether:
//! whatever answers at the address is synced from, as before identities existed.
//!
//! Map: [`Trust`] (state), [`Tower::handle_origin_identity`], [`Tower::rehome`],
//! [`Tower::trusted_origin`], [`Tower::origin_mismatch`], [`Tower::rehoming`]; the rest are
//! the tower's internal steps (`on_catalog_from`, `rehome_page`, `settle_rehome`).
//!
//! Not covered: how the identity reaches the tower (the real origin sends it in a
//! response header, the driver parses it); authentication of the tower to the origin (the
//! real servers' credentials); re-homing without an operator.

use super::{Purpose, Tower};
use crate::Time;
use crate::content::ItemId;
use crate::io::{Event, Key, Record};
use crate::origin::CATALOG_REPLY_ENTRIES_MAX;
use crate::protocol::{CatalogEntry, OriginId};
use std::collections::BTreeSet;

/// The tower's relation to its origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// No origin trusted yet: the first one announcing an identity is adopted.
    Unset,
    /// This origin's replies are synced from; others are a mismatch.
    Trusted(OriginId),
    /// An operator-ordered re-home is reconciling with the next origin's catalog.
    Rehoming(Rehome),
}

/// Progress of a re-home.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Rehome {
    /// The origin whose catalog is being read (the first to answer after the order).
    pub candidate: Option<OriginId>,
    /// Items that origin's catalog listed so far.
    pub seen: BTreeSet<ItemId>,
    /// The highest seq read so far: the next page is asked from here.
    pub since: u64,
}

impl Tower {
    // ----- inputs and queries -----------------------------------------------------------

    /// The driver saw which origin answered a request other than a catalog poll (a chunk,
    /// a forward, an error response): `found` is the identity it announced (`None`: none).
    /// A different origin than the trusted one starts a mismatch, exactly as a catalog
    /// reply from it would; the trusted one answering ends a mismatch. Nothing is adopted
    /// from here (adoption needs a catalog). The driver must not hand the logic a reply
    /// from a mismatched origin.
    pub fn handle_origin_identity(&mut self, now: Time, found: Option<OriginId>) {
        self.advance(now);
        if self.config.check_origin
            && let Trust::Trusted(expected) = self.trust
        {
            self.compare_origin(expected, found);
        }
        self.pump();
    }

    /// An operator re-homes the tower to whatever origin answers next (see the module
    /// doc). Durable first: a crash before the reconciliation ends resumes it.
    pub fn rehome(&mut self, now: Time) {
        self.advance(now);
        let from = self.trusted_origin();
        self.trust = Trust::Rehoming(Rehome::default());
        self.origin_mismatch = None;
        self.rehome_settle = None;
        self.catalog_cursor = 0;
        self.next_catalog_at = self.now;
        self.write(Record::TrustedOrigin(None), Purpose::Trust);
        self.emit(Event::RehomeStarted { from });
        self.pump();
    }

    /// The origin this tower trusts (none before adoption and while re-homing).
    pub fn trusted_origin(&self) -> Option<OriginId> {
        match self.trust {
            Trust::Trusted(id) => Some(id),
            Trust::Unset | Trust::Rehoming(_) => None,
        }
    }

    /// While another origin answers in place of the trusted one: (expected, found).
    pub fn origin_mismatch(&self) -> Option<(OriginId, Option<OriginId>)> {
        self.origin_mismatch
    }

    /// Whether a re-home is in progress.
    pub fn rehoming(&self) -> bool {
        matches!(self.trust, Trust::Rehoming(_))
    }

    /// Whether syncing (chunk requests, forwarding) must wait: a mismatch or a re-home.
    pub(super) fn sync_held(&self) -> bool {
        self.origin_mismatch.is_some() || self.rehoming()
    }

    // ----- internals ----------------------------------------------------------------------

    /// Compare an announced identity with the trusted one; start, update or end a
    /// mismatch. Returns whether the origin is the trusted one.
    fn compare_origin(&mut self, expected: OriginId, found: Option<OriginId>) -> bool {
        if found == Some(expected) {
            if self.origin_mismatch.take().is_some() {
                self.emit(Event::OriginRestored { origin: expected });
                // Catch up at once with the origin we trust.
                self.next_catalog_at = self.now;
            }
            return true;
        }
        if self.origin_mismatch != Some((expected, found)) {
            self.origin_mismatch = Some((expected, found));
            self.emit(Event::OriginMismatch { expected, found });
        }
        false
    }

    /// A catalog reply from the origin that announced `found`.
    pub(super) fn on_catalog_from(
        &mut self,
        found: Option<OriginId>,
        entries: Vec<CatalogEntry>,
        more: bool,
    ) {
        if !self.config.check_origin {
            self.on_catalog(entries); // planted bug: whoever answers is synced from
            return;
        }
        match self.trust.clone() {
            Trust::Unset => {
                if let Some(id) = found {
                    self.trust = Trust::Trusted(id);
                    self.write(Record::TrustedOrigin(Some(id)), Purpose::Trust);
                    self.emit(Event::OriginAdopted {
                        origin: id,
                        rehomed: false,
                        dropped: 0,
                    });
                }
                self.on_catalog(entries);
            }
            Trust::Trusted(expected) => {
                if self.compare_origin(expected, found) {
                    self.on_catalog(entries);
                } else {
                    // The exchange worked (the breaker need not open over it); the answer
                    // is not ours to adopt. Poll again at the usual pace to notice the
                    // trusted origin's return.
                    self.catalog_deadline = None;
                    self.next_catalog_at = self.now + self.config.catalog_interval;
                    self.origin_answered();
                }
            }
            Trust::Rehoming(state) => self.rehome_page(state, found, entries, more),
        }
    }

    /// One page of the next origin's catalog during a re-home.
    fn rehome_page(
        &mut self,
        mut state: Rehome,
        found: Option<OriginId>,
        entries: Vec<CatalogEntry>,
        more: bool,
    ) {
        self.catalog_deadline = None;
        // The exchange worked, whatever the page says: a breaker whose half-open trial
        // this poll was must hear it, or it stays half-open, refusing every call, forever
        // (found with `origin-busy` over a re-home).
        self.origin_answered();
        let asked = self.catalog_rehome_since.take();
        let Some(found) = found else {
            // An origin without an identity cannot be trusted by name: wait for one.
            self.next_catalog_at = self.now + self.config.catalog_interval;
            return;
        };
        if state.candidate != Some(found) {
            // The first page, or another origin answered mid-way: start over with it.
            state = Rehome {
                candidate: Some(found),
                ..Rehome::default()
            };
        }
        if asked != Some(state.since) {
            // The reply to a request sent before the re-home (or from an abandoned
            // candidate): not a page of this reconciliation. Ask for the right one now.
            self.trust = Trust::Rehoming(state);
            self.next_catalog_at = self.now;
            return;
        }
        // A page the origin cut: by its word, or (an older origin's) by its length.
        let full_page = more || entries.len() >= CATALOG_REPLY_ENTRIES_MAX;
        let mut entries = entries;
        entries.sort_by_key(|e| e.seq);
        for entry in entries {
            state.since = state.since.max(entry.seq);
            let item = entry.manifest.item.clone();
            state.seen.insert(item.clone());
            let version = entry.manifest.version;
            let same = self.items.get(&item).map(|s| {
                (
                    s.entry.manifest == entry.manifest,
                    s.entry.seq,
                    s.entry_durable,
                )
            });
            match same {
                Some((true, seq, durable)) => {
                    // Vouched for by the new origin: keep it; serve only this version.
                    if let Some(s) = self.items.get_mut(&item) {
                        let withdrawn = s.servable.as_ref().is_some_and(|m| *m != entry.manifest);
                        if withdrawn {
                            s.servable = None;
                            self.serve_epoch += 1;
                        }
                        s.entry.seq = entry.seq;
                        if withdrawn {
                            self.emit(Event::ContentWithdrawn { item: item.clone() });
                        }
                    }
                    if seq != entry.seq || !durable {
                        self.write(Record::Entry(entry), Purpose::Entry(item, version));
                    }
                }
                held => {
                    // Other bytes (or another version) under this id, or an item not held:
                    // nothing held for it is served until the new origin's version is.
                    if held.is_some()
                        && let Some(s) = self.items.get_mut(&item)
                        && s.servable.take().is_some()
                    {
                        self.serve_epoch += 1;
                        self.emit(Event::ContentWithdrawn { item: item.clone() });
                    }
                    self.write(Record::Entry(entry.clone()), Purpose::Entry(item, version));
                    self.adopt_entry(entry, false);
                }
            }
        }
        if full_page {
            // More to read: the next page at once.
            self.trust = Trust::Rehoming(state);
            self.next_catalog_at = self.now;
            return;
        }
        self.finish_rehome(found, &state.seen);
    }

    /// The whole catalog of `origin` was read: withdraw what it lacks and trust it.
    fn finish_rehome(&mut self, origin: OriginId, seen: &BTreeSet<ItemId>) {
        let lacking: Vec<ItemId> = self
            .items
            .keys()
            .filter(|i| !seen.contains(*i))
            .cloned()
            .collect();
        let dropped = lacking.len() as u64;
        for item in lacking {
            self.forget_item(&item);
            self.drop_entry(item);
        }
        self.catalog_cursor = self.items.values().map(|s| s.entry.seq).max().unwrap_or(0);
        self.trust = Trust::Trusted(origin);
        self.origin_mismatch = None;
        self.rehome_settle = Some(origin);
        self.next_catalog_at = self.now + self.config.catalog_interval;
        self.emit(Event::OriginAdopted {
            origin,
            rehomed: true,
            dropped,
        });
        // Nothing to wait for (no entry re-stamped or withdrawn): the trust is written now.
        self.settle_rehome();
    }

    /// Delete an item's entry record (re-issued by `pump` if the delete fails).
    pub(super) fn drop_entry(&mut self, item: ItemId) {
        let id = crate::io::WriteId(self.next_write);
        self.next_write += 1;
        self.actions.push_back(crate::io::Action::Delete {
            id,
            key: Key::Entry(item.clone()),
        });
        self.unsynced.push((id, Purpose::Drop(item)));
    }

    /// Stop knowing `item`: not served, not synced, its missing chunks no longer wanted
    /// on its behalf.
    fn forget_item(&mut self, item: &ItemId) {
        let Some(state) = self.items.remove(item) else {
            return;
        };
        self.serve_epoch += 1;
        if state.servable.is_some() {
            self.emit(Event::ContentWithdrawn { item: item.clone() });
        }
        let retired = state.chunk_hashes().collect();
        self.retire(retired);
        for hash in state.missing {
            let unwanted = self.waiters.get_mut(&hash).is_some_and(|w| {
                w.remove(item);
                w.is_empty()
            });
            if unwanted {
                self.waiters.remove(&hash);
                self.wanted.remove(&hash);
            }
        }
        self.rewrite.remove(item);
    }

    /// After an fsync: once every entry write and delete of a finished re-home is durable,
    /// make the new trust durable too.
    pub(super) fn settle_rehome(&mut self) {
        let Some(origin) = self.rehome_settle else {
            return;
        };
        let outstanding = |p: &Purpose| matches!(p, Purpose::Entry(..) | Purpose::Drop(_));
        let busy = !self.rewrite.is_empty()
            || !self.redrop.is_empty()
            || self.unsynced.iter().any(|(_, p)| outstanding(p))
            || self.fsyncs.values().flatten().any(|(_, p)| outstanding(p));
        if busy {
            return;
        }
        self.rehome_settle = None;
        self.write(Record::TrustedOrigin(Some(origin)), Purpose::Trust);
    }

    /// The trust record the current state calls for (re-issued after a failed write).
    pub(super) fn trust_record(&self) -> Option<Record> {
        match &self.trust {
            Trust::Unset => None,
            // Not before a re-home's reconciliation is durable (see `settle_rehome`).
            Trust::Trusted(_) if self.rehome_settle.is_some() => None,
            Trust::Trusted(id) => Some(Record::TrustedOrigin(Some(*id))),
            Trust::Rehoming(_) => Some(Record::TrustedOrigin(None)),
        }
    }
}
