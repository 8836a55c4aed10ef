//! The origin as a sans-IO state machine: it publishes versions, answers towers' catalog
//! and chunk requests, applies forwarded device operations exactly once and holds the
//! ledger.
//!
//! # Call order (quinn-proto style)
//!
//! The driver calls [`Origin::publish`] / [`Origin::handle_message`] with inputs, then drains
//! [`Origin::poll_action`] until `None`, performs each action, and reports each write's and
//! fsync's completion through [`Origin::handle_write_done`] / [`Origin::handle_fsync_done`]
//! (then drains again).
//!
//! # Durability rules
//!
//! - A published version becomes visible to `CatalogRequest` only once the fsync that
//!   follows its chunk and entry writes completes OK.
//! - A `ForwardOps` batch is answered only once the fsync that follows its
//!   `Record::Applied` writes completes OK; the `OpApplied` event of an operation applied
//!   for the first time is emitted at that moment, too. A batch made only of replays of
//!   durable outcomes and conflicts needs no write and is answered at once.
//! - An fsync completing OK makes everything issued before it durable, so completions that
//!   arrive out of order settle every earlier pending publish and batch as well.
//! - Any write or fsync failure stops the origin (fail-stop, as PostgreSQL does on fsync
//!   failure): it cannot know what reached the disk. It emits nothing further; the driver
//!   restarts it through [`Origin::recover`], which rebuilds everything (the ledger
//!   included) from the durable records alone. A recovery reads the whole durable state,
//!   so its cost grows with the origin's history; the drivers pace restarts with
//!   [`RestartPacing`]: the first failure since an fsync last succeeded is rebuilt at
//!   once, each further one in a row waits [`RESTART_BACKOFF`] (2 s, doubling to 64 s),
//!   so a full disk does not turn every tower request into a full recovery. Meanwhile
//!   the origin answers nothing (towers retry).
//!
//! # Exactly once
//!
//! Each operation carries an [`IdemKey`]. The first delivery is applied and its outcome
//! recorded under the key (`Record::Applied`); later deliveries with the same body
//! (fingerprint) get the recorded outcome back, with a different body they get
//! [`OpOutcome::Conflict`]. Duplicates of an operation whose apply still waits for its fsync
//! join that outcome (the reply of their batch waits for its own, later fsync, which covers
//! the first). The planted bug `no-idempotency` (`OriginConfig::idempotency = false`)
//! skips the lookup: every delivery is applied again, with a fresh effect and event.
//!
//! # Who may ask
//!
//! [`OriginConfig::towers`] names the towers the origin knows (`None`: any peer, as for
//! callers that predate it). A catalog, chunk or forward request from any other peer gets
//! [`Message::Refused`] and has no effect: nothing is read, nothing applied, nothing
//! written. The real servers authenticate each tower with its own credential before the
//! logic sees the request and keep this set equal to the provisioned towers; the check
//! here is what the simulator exercises. The planted bug `OriginConfig::authenticate_towers
//! = false` answers every peer, as the origin did before towers were known.
//! Each applied operation's record names the tower that forwarded it first
//! ([`Origin::forwarded_by`]).
//!
//! # Identity
//!
//! An origin has an [`OriginId`], drawn by its driver at the first start
//! ([`Origin::establish_identity`]) and kept as `Record::Identity`; it is announced in
//! every catalog reply once durable, so towers notice a different origin at the same
//! address. An origin without one (the simulator's, older stores) announces `None`.
//!
//! Map: [`OriginConfig`], [`OriginError`], [`Origin`]; limits [`CATALOG_REPLY_ENTRIES_MAX`],
//! [`CATALOG_REPLY_REFS_MAX`],
//! [`ITEM_BYTES_MAX`], [`ITEM_CHUNKS_MAX`], [`IDEM_KEY_BYTES_MAX`], [`PENDING_FSYNCS_MAX`]; restarts
//! [`RestartPacing`], [`RESTART_BACKOFF`].
//!
//! Not covered: HTTP, SQL and files (the drivers'), withdrawals from the ledger (no
//! operation asks for one yet), deleting old versions or unreferenced chunks.

use crate::Time;
use crate::backoff::{Backoff, BackoffPolicy, Jitter};
use crate::content::{
    self, Chunk, ChunkHash, ChunkParams, ChunkParamsError, ChunkRef, Chunker, ItemId, Manifest,
    ManifestChanges, Priority,
};
use crate::io::{Action, DurableState, Event, Key, Record, WriteId};
use crate::ledger::{Ledger, Rounding};
use crate::protocol::{
    CatalogEntry, IdemKey, Message, OpKind, OpOutcome, OpReceipt, Operation, OriginId, Peer,
    SentEntry, TowerId,
};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::{Bound, RangeBounds};

/// Default for [`OriginConfig::batch_max`].
pub const BATCH_MAX_DEFAULT: usize = 64;
/// Most entries in one `CatalogReply`. Entries go out in seq order, so a tower that got a
/// truncated reply asks again from the highest seq it received.
pub const CATALOG_REPLY_ENTRIES_MAX: usize = 1024;
/// Most chunk references in one `CatalogReply` ([`SentEntry::refs`]) by default
/// ([`OriginConfig::catalog_page_refs`]), unless its first entry alone has more (an entry
/// is never split). A page of 1024 whole manifests of large items ran to hundreds of
/// megabytes of JSON, past what a tower reads in one answer
/// ([`crate::protocol::ANSWER_BYTES_MAX`], 64 MiB): a new tower's first poll failed the
/// same way for ever and it synced nothing. 262,144: at most ~95 bytes of JSON per
/// reference, a page stays under 26 MB.
pub const CATALOG_REPLY_REFS_MAX: usize =
    crate::protocol::catalog_page_refs(crate::protocol::ANSWER_BYTES_MAX);
/// Largest item version [`Origin::publish`] accepts, in bytes. Neither a publish (its
/// body is cut and written as it arrives) nor a tower's read (sent as it is read) holds
/// an item whole; what bounds it is [`ITEM_CHUNKS_MAX`], which an item this large cannot
/// reach at the default chunk sizes (2 KiB at least).
pub const ITEM_BYTES_MAX: usize = 1 << 30;
/// Most chunks one version may have. A catalog entry is never split across answers, and
/// a reference costs at most ~95 bytes of JSON (the server's catalog test checks it), so
/// an entry of this many fits what a tower reads in one answer
/// ([`crate::protocol::ANSWER_BYTES_MAX`], 64 MiB) with room to spare.
pub const ITEM_CHUNKS_MAX: usize = (crate::protocol::ANSWER_BYTES_MAX / 128) as usize;
/// Longest idempotency key accepted, in bytes; longer keys are rejected (and recorded).
pub use crate::protocol::IDEM_KEY_BYTES_MAX;
/// Most publishes and forward batches waiting for their fsync at once. Beyond it, publish
/// returns [`OriginError::Busy`] and a `ForwardOps` is dropped unanswered (the tower
/// retries after its timeout).
pub const PENDING_FSYNCS_MAX: usize = 4096;
const _: () = assert!(BATCH_MAX_DEFAULT <= PENDING_FSYNCS_MAX);
const _: () = assert!(CATALOG_REPLY_ENTRIES_MAX > 0);

/// The waits of [`RestartPacing`] after the first failure in a row: 2 s, doubling up to
/// 64 s. No jitter: the origin is one process.
pub const RESTART_BACKOFF: BackoffPolicy = BackoffPolicy {
    base: std::time::Duration::from_secs(2),
    max: std::time::Duration::from_secs(64),
    multiplier: 2,
    jitter: Jitter::None,
};

/// When a driver rebuilds a fail-stopped origin with [`Origin::recover`], which reads the
/// whole durable state: at once after the first failure since an fsync last completed
/// OK, then after [`RESTART_BACKOFF`]'s waits while failures keep coming (a full disk,
/// a dying device). Both drivers (the simulator, the real origin's node) use it.
#[derive(Clone, Debug)]
pub struct RestartPacing {
    /// Failures in a row since the last good fsync.
    failures: u32,
    backoff: Backoff,
}

impl Default for RestartPacing {
    fn default() -> Self {
        RestartPacing {
            failures: 0,
            backoff: Backoff::new(RESTART_BACKOFF),
        }
    }
}

impl RestartPacing {
    /// The origin failed: how long to wait before rebuilding it (zero the first time).
    pub fn on_failure(&mut self) -> std::time::Duration {
        self.failures = self.failures.saturating_add(1);
        if self.failures == 1 {
            std::time::Duration::ZERO
        } else {
            self.backoff.next_fixed_delay()
        }
    }

    /// An fsync completed OK: the next failure is rebuilt at once again.
    pub fn on_durable(&mut self) {
        self.failures = 0;
        self.backoff.reset();
    }

    /// Failures in a row since the last good fsync.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// How the origin behaves; the two planted bugs are switched here.
#[derive(Clone, Debug)]
pub struct OriginConfig {
    /// FastCDC sizes used to split published versions.
    pub chunk_params: ChunkParams,
    /// Ledger rounding; `Nearest` is the planted bug `ledger-rounding`.
    pub rounding: Rounding,
    /// Look up idempotency keys before applying. `false` = planted bug `no-idempotency`:
    /// every delivery is applied.
    pub idempotency: bool,
    /// Operations per `ForwardOps` accepted; the rest of a longer batch gets no receipt and
    /// stays in the tower's outbox for its next batch.
    pub batch_max: usize,
    /// The towers this origin answers (`None`: every peer, for callers that do not track
    /// towers). A request from any other peer is refused with [`Message::Refused`].
    pub towers: Option<BTreeSet<TowerId>>,
    /// Refuse peers outside [`OriginConfig::towers`]. `false` = planted bug: every peer is
    /// answered and its operations applied, as before towers were authenticated.
    pub authenticate_towers: bool,
    /// Answer a `ForwardOps` batch only once the fsync that makes its applies durable
    /// completed OK. `false` = planted bug `reply-before-fsync`: the receipts go out on
    /// receipt, before the batch's writes, so a storage failure before its fsync loses
    /// operations the tower was told are applied (and has dropped from its outbox).
    pub reply_after_fsync: bool,
    /// Enter a published version into the catalog only once the fsync of its chunks and
    /// entry completed. `false` = planted bug `publish-before-fsync`: the version is
    /// announced at once, so a crash before the fsync takes back a version towers already
    /// adopted — and the next publish hands its version and seq out again, with other bytes.
    pub catalog_after_fsync: bool,
    /// Remember every applied key for good (`None`). `Some(n)` = planted bug
    /// `bounded-dedupe`: a key is recognised only while it is among the last `n` applies, so
    /// a delivery retried after `n` newer applies (a reply lost, then an outage) is applied
    /// a second time.
    pub dedupe_window: Option<u64>,
    /// Most chunk references in one catalog page ([`CATALOG_REPLY_REFS_MAX`] by
    /// default; [`crate::protocol::catalog_page_refs`] of a smaller answer limit in a
    /// scenario that models one). `usize::MAX` = planted bug `uncut-catalog`: pages are
    /// cut at their entry count only, as before, and can outgrow what a tower reads.
    pub catalog_page_refs: usize,
    /// Most chunks one version may have ([`ITEM_CHUNKS_MAX`]; smaller in tests).
    pub item_chunks_max: usize,
}

impl Default for OriginConfig {
    fn default() -> Self {
        OriginConfig {
            chunk_params: ChunkParams::default(),
            rounding: Rounding::Floor,
            idempotency: true,
            batch_max: BATCH_MAX_DEFAULT,
            towers: None,
            authenticate_towers: true,
            reply_after_fsync: true,
            catalog_after_fsync: true,
            dedupe_window: None,
            catalog_page_refs: CATALOG_REPLY_REFS_MAX,
            item_chunks_max: ITEM_CHUNKS_MAX,
        }
    }
}

impl OriginConfig {
    /// Check the configuration (drivers call this on what they read from a file).
    pub fn validate(&self) -> Result<(), OriginError> {
        self.chunk_params.validate()?;
        if self.batch_max == 0 {
            return Err(OriginError::BatchMaxZero);
        }
        Ok(())
    }
}

/// Why the origin refused a request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OriginError {
    /// The configured chunk sizes are out of FastCDC's range.
    #[error("bad chunk params: {0}")]
    ChunkParams(#[from] ChunkParamsError),
    /// `batch_max` must admit at least one operation per batch.
    #[error("batch_max must be at least 1")]
    BatchMaxZero,
    /// The origin stopped after a storage failure; restart it through `Origin::recover`.
    #[error("the origin stopped after a storage failure and must be recovered")]
    Failed,
    /// Item ids must not be empty.
    #[error("item id must not be empty")]
    EmptyItem,
    /// The content is larger than [`ITEM_BYTES_MAX`].
    #[error("item of {bytes} bytes exceeds the limit of {ITEM_BYTES_MAX} bytes")]
    ItemTooLarge {
        /// its size
        bytes: usize,
    },
    /// The content cuts into more chunks than [`OriginConfig::item_chunks_max`].
    #[error("item of {chunks} chunks or more exceeds the limit of {max} chunks")]
    ItemTooManyChunks {
        /// how many it had when refused
        chunks: usize,
        /// the limit
        max: usize,
    },
    /// Too many fsyncs are pending ([`PENDING_FSYNCS_MAX`]); try again once they complete.
    #[error("{pending} fsyncs pending; try again later")]
    Busy {
        /// publishes and batches waiting for their fsync
        pending: usize,
    },
    /// A version or sequence counter reached its maximum.
    #[error("version or sequence counter exhausted")]
    Exhausted,
    /// [`UPLOADS_MAX`] uploads are open already.
    #[error("{open} uploads are open, the most at once; finish or abort one")]
    Uploads {
        /// uploads open
        open: usize,
    },
    /// No upload of this number is open (finished, aborted, refused, or the origin was
    /// rebuilt since it began).
    #[error("no upload {0} is open")]
    UnknownUpload(u64),
}

/// Most uploads open at once ([`Origin::begin_upload`]).
pub const UPLOADS_MAX: usize = 8;

/// An upload's number ([`Origin::begin_upload`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UploadId(pub u64);

/// A publish whose content arrives in pieces: what is known of it so far. Its chunks are
/// written as they are cut; its bytes are not kept.
#[derive(Clone, Debug)]
struct Upload {
    item: ItemId,
    priority: Priority,
    chunker: Chunker,
    digest: sha2::Sha256,
    refs: Vec<ChunkRef>,
    size: usize,
}

/// What the origin knows about one idempotency key.
#[derive(Clone, Debug)]
struct AppliedOp {
    /// The body of the first submission: a different body under this key is a conflict.
    fingerprint: ChunkHash,
    /// The recorded verdict, returned to every replay.
    outcome: OpOutcome,
    /// The fsync that makes the record durable, while it is still pending.
    pending_fsync: Option<WriteId>,
    /// The tower that forwarded it first.
    tower: Option<TowerId>,
}

/// A published version waiting for its fsync before it enters the catalog.
#[derive(Clone, Debug)]
struct PendingPublish {
    fsync: WriteId,
    entry: CatalogEntry,
}

/// A `ForwardOps` batch waiting for its fsync before it is answered.
#[derive(Clone, Debug)]
struct PendingBatch {
    fsync: WriteId,
    to: Peer,
    /// Sent when the fsync completes (`None`: already sent, by the planted bug
    /// `reply-before-fsync`).
    receipts: Option<Vec<OpReceipt>>,
    /// Operations this batch applied for the first time: their events go out with the reply.
    first_applied: Vec<(IdemKey, OpOutcome)>,
}

/// The origin state machine. See the module doc for the call order and durability rules.
///
/// `Clone` lets a driver keep what [`Origin::recover`] made of a store and start the next
/// recovery from a copy, taking in only the records made durable since ([`Origin::absorb`];
/// the simulator does: a storage fault rebuilds its origin again and again from a history
/// that grows by a few records each time).
#[derive(Clone, Debug)]
pub struct Origin {
    config: OriginConfig,
    /// Set by a write or fsync failure; everything but the accessors is then inert.
    failed: bool,
    /// The last [`WriteId`] handed out (ids start at 1).
    write_id_last: u64,
    actions: VecDeque<Action>,
    /// The chunks this origin holds, by length; their bytes stay in storage and are read
    /// when a tower asks ([`Action::ReadChunk`]), so memory grows with the number of
    /// chunks, not their bytes. Includes chunks whose write is not yet durable: only
    /// durable entries point at them for towers, and a version's chunks are fsynced with
    /// its entry.
    chunks: BTreeMap<ChunkHash, u32>,
    /// The durable catalog: the latest durable entry per item.
    catalog: BTreeMap<ItemId, CatalogEntry>,
    /// The catalog's items by their entry's publish seq (unique), so that a tower's poll
    /// reads the entries after its `since_seq` without scanning the whole catalog.
    catalog_by_seq: BTreeMap<u64, ItemId>,
    /// Per item whose catalog entry replaced another while this origin has run: that
    /// entry's seq and the current entry as changes from it, made once when it was
    /// replaced and sent to every tower that holds it ([`SentEntry::Changes`]). Not
    /// durable: after a restart, an item's next version goes whole once.
    superseded: BTreeMap<ItemId, (u64, ManifestChanges)>,
    /// The latest version number handed out per item (durable or not), so versions only grow.
    versions: BTreeMap<ItemId, u64>,
    /// The last publish seq handed out.
    publish_seq_last: u64,
    pending_publishes: VecDeque<PendingPublish>,
    /// Uploads open ([`Origin::begin_upload`]); none survives a rebuild.
    uploads: BTreeMap<UploadId, Upload>,
    /// The last upload number handed out.
    upload_last: u64,
    /// Every key recorded (durable or waiting for its fsync). A persistent map: a clone
    /// shares it (a driver keeping a rebuilt origin to start from again copies nothing per
    /// operation ever applied), and a change copies only the path it touches.
    applied: imbl::OrdMap<IdemKey, AppliedOp>,
    /// The last apply-log seq handed out.
    apply_seq_last: u64,
    /// Applications with an effect (outcome `Applied`) in the current state.
    applied_count: u64,
    pending_batches: VecDeque<PendingBatch>,
    /// In-memory ledger; it may run ahead of the disk by the pending batches, which is
    /// harmless because any storage failure discards it (fail-stop, then recover).
    ledger: Ledger,
    /// This origin's identity, once taken (durable or waiting for `identity_fsync`).
    identity: Option<OriginId>,
    /// The fsync that makes `identity` durable, while pending; it is announced only after.
    identity_fsync: Option<WriteId>,
    /// Durable entries the recovery left out of the catalog: not servable, because a chunk
    /// is not durable (a crash came before their fsync), fails its hash, or the manifest
    /// is inconsistent. A chunk made durable later may complete one ([`Origin::absorb`]).
    /// A running origin adds the entries a lost chunk takes out of the catalog
    /// ([`Origin::chunk_lost`]) and does not put them back (a newer version of the item
    /// replaces one).
    left_out: BTreeMap<ItemId, CatalogEntry>,
}

impl Origin {
    /// A fresh origin with empty storage. Panics if `config.batch_max` is 0 (drivers check
    /// [`OriginConfig::validate`] first); bad chunk params surface as publish errors.
    pub fn new(config: OriginConfig) -> Self {
        assert!(config.batch_max > 0, "OriginConfig::batch_max must be >= 1");
        let ledger = Ledger::new(config.rounding);
        Origin {
            config,
            failed: false,
            write_id_last: 0,
            actions: VecDeque::new(),
            chunks: BTreeMap::new(),
            catalog: BTreeMap::new(),
            catalog_by_seq: BTreeMap::new(),
            superseded: BTreeMap::new(),
            versions: BTreeMap::new(),
            publish_seq_last: 0,
            pending_publishes: VecDeque::new(),
            uploads: BTreeMap::new(),
            upload_last: 0,
            applied: imbl::OrdMap::new(),
            apply_seq_last: 0,
            applied_count: 0,
            pending_batches: VecDeque::new(),
            ledger,
            identity: None,
            identity_fsync: None,
            left_out: BTreeMap::new(),
        }
    }

    /// Rebuild from durable state alone: catalog entries, chunks, the apply log
    /// (`Record::Applied`) — the ledger is recomputed by re-applying the Applied
    /// contributions in seq order. Must be consistent (asserted).
    ///
    /// Chunks that fail verification are dropped; an entry whose chunks are not all present
    /// (its write reached the disk, its chunks' did not, and its fsync never completed) was
    /// never visible and is left out of the catalog, though its version and seq numbers are
    /// not reused.
    pub fn recover(config: OriginConfig, durable: &DurableState) -> Self {
        Origin::recover_from(config, durable)
    }

    /// [`Origin::recover`] for a driver whose store verified its chunks itself and kept
    /// their bytes on disk: `verified` holds every durable chunk that matched its hash, by
    /// length (`durable` may then hold no chunk records at all). A rebuild then reads no
    /// chunk bytes into memory, so an origin's memory does not grow with its catalogue.
    pub fn recover_verified(
        config: OriginConfig,
        durable: &DurableState,
        verified: &BTreeMap<ChunkHash, u32>,
    ) -> Self {
        let records = durable.iter().map(|(k, r)| (k, r, None));
        Origin::rebuilt(config, verified, records)
    }

    /// [`Origin::recover`] from durable records the driver lends in key order (a
    /// `DurableState`, or a simulated disk's own map), so that a rebuild copies nothing
    /// but what the origin keeps: a restart of an origin with a long history must not
    /// first clone that history.
    pub fn recover_from<'a>(
        config: OriginConfig,
        durable: impl IntoIterator<Item = (&'a Key, &'a Record)>,
    ) -> Self {
        Origin::recover_fingerprinted(config, durable.into_iter().map(|(k, r)| (k, r, None)))
    }

    /// [`Origin::recover_from`] for a driver that kept each apply-log record's
    /// [`Operation::fingerprint`] when it was written (`Some`; `None` for other records
    /// or when it did not): a rebuild then hashes nothing per operation ever applied, as
    /// [`crate::tower::Tower::recover_verified`] takes the lengths of chunks its store
    /// verified. A fingerprint handed over must be the record's own (checked in debug
    /// builds): exactly-once tells a replay from a conflicting reuse of a key by it.
    pub fn recover_fingerprinted<'a>(
        config: OriginConfig,
        durable: impl IntoIterator<Item = (&'a Key, &'a Record, Option<ChunkHash>)>,
    ) -> Self {
        Origin::rebuilt(config, &BTreeMap::new(), durable)
    }

    /// A fresh origin that holds the `verified` chunks and took in `records`.
    fn rebuilt<'a>(
        config: OriginConfig,
        verified: &BTreeMap<ChunkHash, u32>,
        records: impl IntoIterator<Item = (&'a Key, &'a Record, Option<ChunkHash>)>,
    ) -> Self {
        let mut o = Origin::new(config);
        o.chunks.extend(verified.iter().map(|(h, len)| (*h, *len)));
        let taken = o.take_in(records, false);
        debug_assert!(taken.is_some(), "a recovery takes in every record");
        o
    }

    /// What [`Origin::recover_fingerprinted`] makes of the records this origin was
    /// recovered from with `written` added or written over (each key once), without
    /// reading the others again: a driver that kept a recovered origin brings it up to
    /// date with the records made durable since ([`crate::io::disk::DiskModel::since_mark`]).
    ///
    /// `None` when the written records alone cannot tell, and the driver must recover from
    /// all of them: this origin acted since its recovery (failed, wrote, or has actions to
    /// hand out: a driver absorbs into the copy it kept, never into the origin it runs); a
    /// written chunk fails its hash; a written entry is not newer than every entry before;
    /// an operation is recorded again, or not after every one before.
    pub fn absorb<'a>(
        mut self,
        written: impl IntoIterator<Item = (&'a Key, &'a Record, Option<ChunkHash>)>,
    ) -> Option<Origin> {
        if self.failed || self.write_id_last > 0 || !self.actions.is_empty() {
            return None;
        }
        self.take_in(written, true)?;
        Some(self)
    }

    /// Adds durable records to a recovered origin: chunks first, then entries, then the
    /// apply log replayed in seq order (the ledger recomputed from its contributions).
    /// Recovering (`absorbing` false) from all the records, it drops what fails its hash,
    /// leaves out entries that are not servable, and asserts the log is consistent;
    /// absorbing (true) records written since, it declines (`None`, leaving `self`
    /// half-changed) where the result would differ from recovering from all of them.
    fn take_in<'a>(
        &mut self,
        records: impl IntoIterator<Item = (&'a Key, &'a Record, Option<ChunkHash>)>,
        absorbing: bool,
    ) -> Option<()> {
        let mut entries = Vec::new();
        let mut log = Vec::new();
        for (key, record, fingerprint) in records {
            debug_assert_eq!(&record.key(), key, "record stored under a foreign key");
            if record.key() != *key {
                if absorbing {
                    return None;
                }
                continue;
            }
            match record {
                Record::Chunk(c) => {
                    if content::verify_chunk(&c.hash, &c.bytes) {
                        self.chunks.insert(c.hash, c.bytes.len() as u32);
                    } else if absorbing {
                        return None;
                    }
                }
                Record::Entry(e) => entries.push(e),
                Record::Applied { op, outcome, tower } => {
                    debug_assert!(
                        fingerprint.is_none_or(|f| f == op.fingerprint()),
                        "the fingerprint handed over for {} is not its record's",
                        op.key
                    );
                    let fingerprint = fingerprint.unwrap_or_else(|| op.fingerprint());
                    log.push((op, outcome, *tower, fingerprint));
                }
                Record::Identity(id) => self.identity = Some(*id),
                // A tower's or a device's records; an origin store never holds one.
                Record::Outbox(_)
                | Record::TrustedOrigin(_)
                | Record::Confirmed(_)
                | Record::Awaiting(_) => {
                    debug_assert!(false, "tower or device record {key:?} in the origin store");
                    if absorbing {
                        return None;
                    }
                }
            }
        }
        let seq_before = self.publish_seq_last;
        for e in entries {
            let item = &e.manifest.item;
            let newer = e.seq > seq_before
                && self
                    .versions
                    .get(item)
                    .is_none_or(|v| *v <= e.manifest.version);
            if absorbing && !newer {
                return None;
            }
            let v = self.versions.entry(item.clone()).or_insert(0);
            *v = (*v).max(e.manifest.version);
            self.publish_seq_last = self.publish_seq_last.max(e.seq);
            // The item's one durable entry: in the catalog if servable, else left out.
            self.left_out.remove(item);
            if self.servable(e) {
                self.catalog_put(e.clone());
            } else {
                self.catalog_remove(item);
                self.left_out.insert(item.clone(), e.clone());
            }
        }
        // Entries left out before whose chunks the written ones completed.
        self.complete_left_out();
        // What replaced what is not durable: a restarted origin knows only its records,
        // however it was rebuilt (absorbing or recovering).
        self.superseded.clear();
        // Conflicts are answered, never recorded.
        let mut replay = Vec::new();
        for (op, outcome, tower, fingerprint) in log {
            match outcome {
                OpOutcome::Applied { seq } => replay.push((*seq, op)),
                OpOutcome::Rejected { .. } => {}
                OpOutcome::Conflict => {
                    debug_assert!(false, "conflict recorded for {}", op.key);
                    if absorbing {
                        return None;
                    }
                    continue;
                }
            }
            let applied = AppliedOp {
                fingerprint,
                outcome: outcome.clone(),
                pending_fsync: None,
                tower,
            };
            if self.applied.insert(op.key.clone(), applied).is_some() && absorbing {
                return None;
            }
        }
        // Replayed in seq order (rejected outcomes carry no seq and no effect).
        replay.sort_unstable_by_key(|(seq, _)| *seq);
        let mut contributed_minor = self.ledger.contributed_minor();
        for (seq, op) in replay {
            if absorbing && seq <= self.apply_seq_last {
                return None;
            }
            assert!(
                seq > self.apply_seq_last,
                "apply log seq {seq} repeated or out of order"
            );
            self.apply_seq_last = seq;
            self.applied_count += 1;
            if let OpKind::Contribution {
                community,
                nation,
                amount_minor,
            } = &op.kind
            {
                let replayed = self.ledger.contribute(community, nation, *amount_minor);
                if absorbing && replayed.is_err() {
                    return None;
                }
                assert!(
                    replayed.is_ok(),
                    "recorded contribution {} no longer applies: {replayed:?}",
                    op.key
                );
                contributed_minor += u128::from(*amount_minor);
            }
        }
        assert_eq!(self.ledger.contributed_minor(), contributed_minor);
        if self.config.rounding == Rounding::Floor {
            assert!(self.ledger.check_conserved().is_ok(), "recovered ledger");
        }
        Some(())
    }

    /// Publish a new version of `item` (version = previous + 1). Emits Write for each chunk
    /// it doesn't already hold, Write(Record::Entry) and an Fsync. The entry becomes
    /// visible to CatalogRequest only when that fsync completes OK.
    pub fn publish(
        &mut self,
        now: Time,
        item: ItemId,
        priority: Priority,
        bytes: &[u8],
    ) -> Result<CatalogEntry, OriginError> {
        if bytes.len() > ITEM_BYTES_MAX {
            return Err(OriginError::ItemTooLarge { bytes: bytes.len() });
        }
        self.publish_shared(now, item, priority, Bytes::copy_from_slice(bytes))
    }

    /// [`Origin::publish`] of bytes the driver holds as [`Bytes`] (a request body): the
    /// chunk writes it emits are slices of them, not copies, and nothing of them is kept
    /// once the driver has performed those writes.
    pub fn publish_shared(
        &mut self,
        _now: Time,
        item: ItemId,
        priority: Priority,
        bytes: Bytes,
    ) -> Result<CatalogEntry, OriginError> {
        if self.failed {
            return Err(OriginError::Failed);
        }
        if item.as_str().is_empty() {
            return Err(OriginError::EmptyItem);
        }
        if bytes.len() > ITEM_BYTES_MAX {
            return Err(OriginError::ItemTooLarge { bytes: bytes.len() });
        }
        let pending = self.pending_fsyncs();
        if pending >= PENDING_FSYNCS_MAX {
            return Err(OriginError::Busy { pending });
        }
        let (version, seq) = self.next_version(&item)?;
        let (manifest, chunks) = content::publish_shared(
            item.clone(),
            version,
            priority,
            bytes,
            self.config.chunk_params,
        )?;
        debug_assert!(manifest.is_consistent());
        self.within_item_chunks(manifest.chunks.len())?;
        for chunk in chunks {
            self.keep_chunk(chunk);
        }
        Ok(self.commit_version(seq, manifest))
    }

    /// The next version of `item` and the next publish seq (not taken yet).
    fn next_version(&self, item: &ItemId) -> Result<(u64, u64), OriginError> {
        let version_last = self.versions.get(item).copied().unwrap_or(0);
        let version = version_last.checked_add(1).ok_or(OriginError::Exhausted)?;
        let seq = self
            .publish_seq_last
            .checked_add(1)
            .ok_or(OriginError::Exhausted)?;
        Ok((version, seq))
    }

    /// Refuse a version of `chunks` chunks if that is over the limit.
    fn within_item_chunks(&self, chunks: usize) -> Result<(), OriginError> {
        let max = self.config.item_chunks_max;
        if chunks > max {
            return Err(OriginError::ItemTooManyChunks { chunks, max });
        }
        Ok(())
    }

    /// Write `chunk` unless this origin holds it already.
    fn keep_chunk(&mut self, chunk: Chunk) {
        if self.chunks.contains_key(&chunk.hash) {
            return;
        }
        self.chunks.insert(chunk.hash, chunk.bytes.len() as u32);
        let id = self.next_write_id();
        self.actions.push_back(Action::Write {
            id,
            record: Record::Chunk(chunk),
        });
    }

    /// Take `seq` and `manifest`'s version, write the entry and ask for the fsync after
    /// which it enters the catalog (its chunks were written before it).
    fn commit_version(&mut self, seq: u64, manifest: Manifest) -> CatalogEntry {
        let (item, version) = (manifest.item.clone(), manifest.version);
        let entry = CatalogEntry { seq, manifest };
        let id = self.next_write_id();
        self.actions.push_back(Action::Write {
            id,
            record: Record::Entry(entry.clone()),
        });
        let fsync = self.next_write_id();
        self.actions.push_back(Action::Fsync { id: fsync });
        self.versions.insert(item, version);
        self.publish_seq_last = seq;
        if self.config.catalog_after_fsync {
            self.pending_publishes.push_back(PendingPublish {
                fsync,
                entry: entry.clone(),
            });
        } else {
            // Announced before it is durable (planted bug).
            self.catalog_put(entry.clone());
        }
        entry
    }

    /// Begin a publish of `item` whose content arrives in pieces ([`Origin::upload_bytes`],
    /// then [`Origin::finish_upload`]): the same version, manifest and writes as
    /// [`Origin::publish`] of the whole content, with no more of it held than
    /// [`Chunker`] holds. At most [`UPLOADS_MAX`] at once; none survives a rebuild.
    pub fn begin_upload(
        &mut self,
        item: ItemId,
        priority: Priority,
    ) -> Result<UploadId, OriginError> {
        if self.failed {
            return Err(OriginError::Failed);
        }
        if item.as_str().is_empty() {
            return Err(OriginError::EmptyItem);
        }
        if self.uploads.len() >= UPLOADS_MAX {
            return Err(OriginError::Uploads {
                open: self.uploads.len(),
            });
        }
        let chunker = Chunker::new(self.config.chunk_params)?;
        self.upload_last += 1;
        let id = UploadId(self.upload_last);
        use sha2::Digest;
        self.uploads.insert(
            id,
            Upload {
                item,
                priority,
                chunker,
                digest: sha2::Sha256::new(),
                refs: Vec::new(),
                size: 0,
            },
        );
        Ok(id)
    }

    /// The next piece of upload `id`: the chunks it completes are written (those this
    /// origin does not hold). Past [`ITEM_BYTES_MAX`] in all the upload is dropped.
    pub fn upload_bytes(&mut self, id: UploadId, piece: &[u8]) -> Result<(), OriginError> {
        if self.failed {
            return Err(OriginError::Failed);
        }
        let up = (self.uploads.get_mut(&id)).ok_or(OriginError::UnknownUpload(id.0))?;
        let size = up.size.saturating_add(piece.len());
        if size > ITEM_BYTES_MAX {
            self.uploads.remove(&id);
            return Err(OriginError::ItemTooLarge { bytes: size });
        }
        up.size = size;
        use sha2::Digest;
        up.digest.update(piece);
        let cut = up.chunker.push(piece);
        let chunks = up.refs.len() + cut.len();
        if let Err(e) = self.within_item_chunks(chunks) {
            self.uploads.remove(&id);
            return Err(e);
        }
        let refs = self.keep_cut(cut);
        if let Some(up) = self.uploads.get_mut(&id) {
            up.refs.extend(refs);
        }
        Ok(())
    }

    /// Upload `id`'s content is whole: its last chunks are written, then its entry, and
    /// the fsync after which it enters the catalog (as [`Origin::publish`]). `Busy` leaves
    /// the upload open (the admin API's publish aborts it and answers 503: the operator
    /// sends it again).
    pub fn finish_upload(&mut self, _now: Time, id: UploadId) -> Result<CatalogEntry, OriginError> {
        if self.failed {
            return Err(OriginError::Failed);
        }
        let pending = self.pending_fsyncs();
        if pending >= PENDING_FSYNCS_MAX {
            return Err(OriginError::Busy { pending });
        }
        let item = (self.uploads.get(&id).map(|u| u.item.clone()))
            .ok_or(OriginError::UnknownUpload(id.0))?;
        let (version, seq) = self.next_version(&item)?;
        let up = (self.uploads.remove(&id)).ok_or(OriginError::UnknownUpload(id.0))?;
        let Upload {
            priority,
            chunker,
            digest,
            mut refs,
            size,
            ..
        } = up;
        let cut = chunker.finish();
        self.within_item_chunks(refs.len() + cut.len())?;
        refs.extend(self.keep_cut(cut));
        use sha2::Digest;
        let manifest = Manifest {
            item,
            version,
            priority,
            size: size as u64,
            digest: ChunkHash(digest.finalize().into()),
            chunks: refs,
        };
        debug_assert!(manifest.is_consistent());
        Ok(self.commit_version(seq, manifest))
    }

    /// The number of the last upload begun: a driver that rebuilds the origin after a
    /// storage failure hands it to the new one ([`Origin::number_uploads_after`]), so a
    /// number an open upload of the old one held never names a new upload.
    pub fn uploads_numbered(&self) -> u64 {
        self.upload_last
    }

    /// Number the next uploads after `last` (see [`Origin::uploads_numbered`]).
    pub fn number_uploads_after(&mut self, last: u64) {
        self.upload_last = self.upload_last.max(last);
    }

    /// Drop upload `id` (what it wrote stays until a start-up's collection, unless a
    /// later version names it).
    pub fn abort_upload(&mut self, id: UploadId) {
        self.uploads.remove(&id);
    }

    /// Write the chunks of an upload's `cut` (those not held); their references, in order.
    fn keep_cut(&mut self, cut: Vec<Bytes>) -> Vec<ChunkRef> {
        let mut refs = Vec::with_capacity(cut.len());
        for bytes in cut {
            let chunk = Chunk {
                hash: ChunkHash::of(&bytes),
                bytes,
            };
            refs.push(ChunkRef {
                hash: chunk.hash,
                len: chunk.bytes.len() as u32,
            });
            self.keep_chunk(chunk);
        }
        refs
    }

    /// A message from a tower. CatalogRequest{since_seq} → CatalogReply with the durable
    /// entries with seq > since_seq (latest version per item only, seq order, at most
    /// [`CATALOG_REPLY_ENTRIES_MAX`] entries and [`CATALOG_REPLY_REFS_MAX`] chunk
    /// references; `more` when cut). ChunkRequest → ChunkReply (bytes None if unknown).
    /// ForwardOps → for each of the first `batch_max` ops: already applied with the same
    /// fingerprint → its original outcome; same key, different fingerprint →
    /// OpOutcome::Conflict; invalid (e.g. zero contribution) → Rejected{reason}; else apply
    /// it (ledger effect for contributions), Write(Record::Applied). Then one Fsync for the
    /// batch; the ForwardReply (all receipts, in op order) is sent only after that fsync
    /// completes OK. Duplicates of an op whose apply is still waiting for its fsync join
    /// that pending batch's outcome (no second effect). A request from a peer outside
    /// [`OriginConfig::towers`] gets [`Message::Refused`] and nothing else (see the module
    /// doc). Messages meant for towers or devices are ignored, as is everything once the
    /// origin has failed.
    pub fn handle_message(&mut self, _now: Time, from: Peer, msg: Message) {
        if self.failed {
            return;
        }
        let request = matches!(
            msg,
            Message::CatalogRequest { .. }
                | Message::ChunkRequest { .. }
                | Message::ForwardOps { .. }
        );
        if request && !self.admits(from) {
            let reason = match from {
                Peer::Tower(t) => format!("{t} is not a tower this origin knows"),
                other => format!("{other:?} is not a tower"),
            };
            self.send(from, Message::Refused { reason });
            return;
        }
        match msg {
            Message::CatalogRequest { since_seq, changes } => {
                let (entries, more) = self.catalog_page(since_seq, changes);
                let origin = self.identity();
                let reply = Message::CatalogReply {
                    entries,
                    origin,
                    more,
                };
                self.send(from, reply);
            }
            Message::ChunkRequest { hash } => match self.chunks.contains_key(&hash) {
                true => self.actions.push_back(Action::ReadChunk { to: from, hash }),
                false => self.send(from, Message::ChunkReply { hash, bytes: None }),
            },
            Message::ForwardOps { ops } => self.forward(from, ops),
            Message::CatalogReply { .. }
            | Message::ChunkReply { .. }
            | Message::ForwardReply { .. }
            | Message::SubmitOp { .. }
            | Message::SubmitReply { .. }
            | Message::StatusRequest { .. }
            | Message::StatusReply { .. }
            | Message::ReadItem { .. }
            | Message::ItemData { .. }
            | Message::Unavailable { .. }
            | Message::Refused { .. } => {}
        }
    }

    /// Take `candidate` as this origin's identity unless it has one already (drivers draw
    /// it from the OS's randomness at the first start; the logic never draws one). Emits
    /// the identity's write and an fsync; it is announced once that fsync completes OK.
    /// Returns the identity in force (the old one if there was one).
    pub fn establish_identity(&mut self, candidate: OriginId) -> Result<OriginId, OriginError> {
        if self.failed {
            return Err(OriginError::Failed);
        }
        if let Some(id) = self.identity {
            return Ok(id);
        }
        self.identity = Some(candidate);
        let id = self.next_write_id();
        self.actions.push_back(Action::Write {
            id,
            record: Record::Identity(candidate),
        });
        let fsync = self.next_write_id();
        self.actions.push_back(Action::Fsync { id: fsync });
        self.identity_fsync = Some(fsync);
        Ok(candidate)
    }

    /// This origin's identity, once durable (what catalog replies announce).
    pub fn identity(&self) -> Option<OriginId> {
        self.identity.filter(|_| self.identity_fsync.is_none())
    }

    /// Replace the set of towers this origin answers (see [`OriginConfig::towers`]); the
    /// real origin calls this when a tower's credential is added or revoked.
    pub fn set_towers(&mut self, towers: Option<BTreeSet<TowerId>>) {
        self.config.towers = towers;
    }

    /// Whether `from` may read the catalog and chunks and forward operations.
    fn admits(&self, from: Peer) -> bool {
        if !self.config.authenticate_towers {
            return true; // planted bug: every peer is answered
        }
        match (&self.config.towers, from) {
            (None, _) => true,
            (Some(known), Peer::Tower(t)) => known.contains(&t),
            (Some(_), _) => false,
        }
    }

    /// A write completed. A failed write before its fsync is treated like a failed fsync:
    /// the origin stops.
    pub fn handle_write_done(&mut self, _now: Time, _id: WriteId, result: Result<(), String>) {
        if self.failed {
            return;
        }
        if result.is_err() {
            self.fail();
        }
    }

    /// Fsync failure: the origin cannot know what is durable; it stops (is_failed() = true,
    /// emits nothing further) and must be restarted through recover() — as PostgreSQL does
    /// on fsync failure. Success settles every publish and batch whose fsync is `id` or
    /// earlier: entries become visible, replies and `OpApplied` events go out.
    pub fn handle_fsync_done(&mut self, _now: Time, id: WriteId, result: Result<(), String>) {
        if self.failed {
            return;
        }
        if result.is_err() {
            self.fail();
            return;
        }
        if self.identity_fsync.is_some_and(|f| f <= id) {
            self.identity_fsync = None;
        }
        while self
            .pending_publishes
            .front()
            .is_some_and(|p| p.fsync <= id)
        {
            let Some(p) = self.pending_publishes.pop_front() else {
                break;
            };
            let newer = self
                .catalog
                .get(&p.entry.manifest.item)
                .is_none_or(|e| e.manifest.version < p.entry.manifest.version);
            debug_assert!(newer, "versions are settled in order");
            // A chunk it took as held may have been lost since (`chunk_lost`): then it
            // is left out, as a recovery would leave it.
            if newer && self.servable(&p.entry) {
                self.catalog_put(p.entry);
            } else if newer {
                self.leave_out(p.entry);
            }
        }
        while self.pending_batches.front().is_some_and(|b| b.fsync <= id) {
            let Some(b) = self.pending_batches.pop_front() else {
                break;
            };
            for (key, outcome) in b.first_applied {
                if let Some(a) = self.applied.get_mut(&key) {
                    if a.pending_fsync.is_some_and(|f| f <= id) {
                        a.pending_fsync = None;
                    }
                }
                self.actions
                    .push_back(Action::Emit(Event::OpApplied { key, outcome }));
            }
            if let Some(receipts) = b.receipts {
                self.send(b.to, Message::ForwardReply { receipts });
            }
        }
    }

    /// The next action for the driver, in the order they must be performed.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Whether a storage failure stopped the origin (restart it with [`Origin::recover`]).
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// The configuration.
    pub fn config(&self) -> &OriginConfig {
        &self.config
    }

    /// The ledger (including effects of batches still waiting for their fsync).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The durable catalog: the latest durable entry per item, in seq order.
    pub fn catalog(&self) -> Vec<CatalogEntry> {
        self.catalog_in_seq_order(..).cloned().collect()
    }

    /// How many items the catalog serves (`catalog().len()` without copying manifests).
    pub fn catalog_len(&self) -> usize {
        self.catalog.len()
    }

    /// The catalog's entries whose publish seq is in `seqs`, in seq order.
    fn catalog_in_seq_order(
        &self,
        seqs: impl RangeBounds<u64>,
    ) -> impl Iterator<Item = &CatalogEntry> {
        self.catalog_by_seq
            .range(seqs)
            .filter_map(|(_, item)| self.catalog.get(item))
    }

    /// `entry` as a reply to a tower that polled `since_seq` sends it: as the changes from
    /// the version it replaced when the tower asked for changes and most likely holds that
    /// version (its seq is at most `since_seq`: a tower's cursor passes the entries it
    /// took), else whole; whole too when the new list is longer than a tower rebuilds.
    /// The tower checks the rebuilt manifest's digest, so a wrong guess (a version this
    /// origin left out and completed after the tower's cursor passed it) costs a second
    /// poll, never a wrong manifest.
    fn sent_entry(&self, entry: &CatalogEntry, since_seq: u64, changes: bool) -> SentEntry {
        let fits = entry.manifest.chunks.len() <= content::changes::CHUNKS_MAX;
        match self.superseded.get(&entry.manifest.item) {
            Some((base_seq, c)) if changes && fits && since_seq > 0 && *base_seq <= since_seq => {
                SentEntry::Changes {
                    seq: entry.seq,
                    changes: c.clone(),
                }
            }
            _ => SentEntry::Whole(entry.clone()),
        }
    }

    /// The entries a catalog poll from `since_seq` gets, in seq order, and whether more
    /// follow: at most [`CATALOG_REPLY_ENTRIES_MAX`] entries and
    /// [`OriginConfig::catalog_page_refs`] chunk references (the first entry always goes).
    fn catalog_page(&self, since_seq: u64, changes: bool) -> (Vec<SentEntry>, bool) {
        let mut entries = Vec::new();
        let mut refs = 0usize;
        let after = (Bound::Excluded(since_seq), Bound::Unbounded);
        for e in self.catalog_in_seq_order(after) {
            let sent = self.sent_entry(e, since_seq, changes);
            // An entry's own fields count as one reference more: a page of entries with
            // few chunks (or none) is bounded too, under a small answer limit.
            let cost = sent.refs().saturating_add(1);
            let over = refs.saturating_add(cost) > self.config.catalog_page_refs;
            if entries.len() == CATALOG_REPLY_ENTRIES_MAX || (over && !entries.is_empty()) {
                return (entries, true);
            }
            refs = refs.saturating_add(cost);
            entries.push(sent);
        }
        (entries, false)
    }

    /// Whether `entry` may be served: a consistent manifest whose chunks are all held.
    fn servable(&self, entry: &CatalogEntry) -> bool {
        entry.manifest.is_consistent()
            && (entry.manifest.chunks.iter()).all(|c| self.chunks.contains_key(&c.hash))
    }

    /// Put back into the catalog the entries left out whose chunks are all held now.
    fn complete_left_out(&mut self) {
        let completed: Vec<ItemId> = (self.left_out.iter())
            .filter(|(_, e)| self.servable(e))
            .map(|(item, _)| item.clone())
            .collect();
        for item in completed {
            if let Some(e) = self.left_out.remove(&item) {
                self.catalog_put(e);
            }
        }
    }

    /// Make `entry` its item's entry in the catalog (replacing the one before it, and any
    /// older one left out).
    fn catalog_put(&mut self, entry: CatalogEntry) {
        let seq = entry.seq;
        let item = entry.manifest.item.clone();
        self.left_out.remove(&item);
        if let Some(old) = self.catalog_remove(&item) {
            let changes = ManifestChanges::between(&old.manifest, &entry.manifest);
            self.superseded.insert(item.clone(), (old.seq, changes));
        }
        self.catalog.insert(item.clone(), entry);
        let earlier = self.catalog_by_seq.insert(seq, item);
        debug_assert!(earlier.is_none(), "publish seq {seq} names two entries");
    }

    /// Take `item` out of the catalog and its seq index.
    fn catalog_remove(&mut self, item: &ItemId) -> Option<CatalogEntry> {
        let old = self.catalog.remove(item)?;
        self.catalog_by_seq.remove(&old.seq);
        Some(old)
    }

    /// A chunk's length, if the origin holds it (its bytes are in storage).
    pub fn chunk_len(&self, hash: &ChunkHash) -> Option<u32> {
        self.chunks.get(hash).copied()
    }

    /// What a driver sends for [`Action::ReadChunk`] once it has read `hash` from storage:
    /// `stored` is what it found (`None`: nothing, or the read failed). Bytes that fail
    /// their hash or length are never sent: the chunk is then lost, as a missing one is
    /// ([`Origin::chunk_lost`]), and the tower is told the origin does not hold it. Costs
    /// one SHA-256 of the chunk; a driver that verified the bytes itself calls
    /// [`Origin::chunk_lost`] or sends them as they are.
    pub fn chunk_reply(&mut self, hash: ChunkHash, stored: Option<Bytes>) -> Message {
        let len = self.chunks.get(&hash).copied();
        let bytes = stored.filter(|b| content::chunk_intact(&hash, len, b));
        if bytes.is_none() {
            self.chunk_lost(hash);
        }
        Message::ChunkReply { hash, bytes }
    }

    /// Storage no longer holds `hash` intact (a read found it missing, unreadable or
    /// failing its hash): the origin stops saying it holds it ([`Event::ChunkQuarantined`]),
    /// and the catalog entries that name it leave the catalog ([`Event::ContentWithdrawn`]
    /// each), as a recovery from this storage would leave them out: a version the origin
    /// can no longer serve whole is offered to no tower. The next publish that cuts the
    /// same bytes writes the chunk again; the item is offered again with its next version.
    /// (A withdrawn version is not put back at its old seq while running: a tower whose
    /// cursor passed that seq meanwhile would never hear of it. A restart's recovery does
    /// put it back when its chunks are all there.) Nothing happens for a chunk it does not
    /// hold.
    pub fn chunk_lost(&mut self, hash: ChunkHash) {
        if self.chunks.remove(&hash).is_none() {
            return;
        }
        self.actions
            .push_back(Action::Emit(Event::ChunkQuarantined { hash }));
        let naming: Vec<ItemId> = (self.catalog.values())
            .filter(|e| e.manifest.chunks.iter().any(|c| c.hash == hash))
            .map(|e| e.manifest.item.clone())
            .collect();
        for item in naming {
            if let Some(e) = self.catalog_remove(&item) {
                self.leave_out(e);
            }
        }
    }

    /// Withdraw `entry`'s item while running: it leaves the catalog (towers are told,
    /// [`Event::ContentWithdrawn`]) and is kept left out, as a recovery would keep it.
    fn leave_out(&mut self, entry: CatalogEntry) {
        let item = entry.manifest.item.clone();
        self.catalog_remove(&item);
        self.superseded.remove(&item);
        self.left_out.insert(item.clone(), entry);
        self.actions
            .push_back(Action::Emit(Event::ContentWithdrawn { item }));
    }

    /// The recorded outcome for `key` (including one whose fsync is still pending).
    pub fn applied(&self, key: &IdemKey) -> Option<&OpOutcome> {
        self.applied.get(key).map(|a| &a.outcome)
    }

    /// Whether the record of `key` is durable: recorded, its fsync completed OK. `false`
    /// while that fsync is pending, and for a record of a step whose storage failed (the
    /// origin rebuilds without it).
    pub fn applied_durably(&self, key: &IdemKey) -> bool {
        self.applied
            .get(key)
            .is_some_and(|a| a.pending_fsync.is_none())
    }

    /// The fingerprint of the operation first received under `key` (the one its verdict
    /// is about).
    pub fn applied_fingerprint(&self, key: &IdemKey) -> Option<crate::content::ChunkHash> {
        self.applied.get(key).map(|a| a.fingerprint)
    }

    /// The tower that first forwarded the operation under `key` (`None`: unknown key, or
    /// a record from before the origin kept it).
    pub fn forwarded_by(&self, key: &IdemKey) -> Option<TowerId> {
        self.applied.get(key).and_then(|a| a.tower)
    }

    /// How many applications with an effect (outcome `Applied`) the current state holds;
    /// with the `no-idempotency` bug every re-application counts.
    pub fn applied_count(&self) -> u64 {
        self.applied_count
    }

    /// Publishes and forward batches waiting for their fsync.
    pub fn pending_fsyncs(&self) -> usize {
        self.pending_publishes.len() + self.pending_batches.len()
    }

    fn next_write_id(&mut self) -> WriteId {
        self.write_id_last += 1;
        WriteId(self.write_id_last)
    }

    fn send(&mut self, to: Peer, msg: Message) {
        self.actions.push_back(Action::Send { to, via: None, msg });
    }

    /// Fail-stop: drop everything queued and pending; nothing goes out any more.
    fn fail(&mut self) {
        self.failed = true;
        self.actions.clear();
        self.pending_publishes.clear();
        self.pending_batches.clear();
        // An identity whose fsync never completed is not known to be durable.
        if self.identity_fsync.is_some() {
            self.identity = None;
            self.identity_fsync = None;
        }
    }

    fn forward(&mut self, from: Peer, ops: Vec<Operation>) {
        if self.pending_fsyncs() >= PENDING_FSYNCS_MAX {
            return; // unanswered: the tower retries
        }
        // Where the batch's actions start (the planted early reply goes there).
        let first_action = self.actions.len();
        let mut fsync: Option<WriteId> = None;
        let mut waits_on_pending = false;
        let mut receipts = Vec::new();
        let mut first_applied = Vec::new();
        let tower = match from {
            Peer::Tower(t) => Some(t),
            Peer::Origin | Peer::Device(_) => None,
        };
        for op in ops.into_iter().take(self.config.batch_max) {
            let fingerprint = op.fingerprint();
            if self.config.idempotency {
                if let Some(a) = self.applied.get(&op.key).filter(|a| self.remembers(a)) {
                    let outcome = if a.fingerprint == fingerprint {
                        waits_on_pending |= a.pending_fsync.is_some();
                        a.outcome.clone()
                    } else {
                        OpOutcome::Conflict
                    };
                    receipts.push(OpReceipt {
                        key: op.key,
                        outcome,
                    });
                    continue;
                }
            }
            // The batch's fsync id is taken before its first write, so every record of
            // the batch is pending on it from the start (later duplicates see that).
            let batch_fsync = match fsync {
                Some(f) => f,
                None => {
                    let f = self.next_write_id();
                    fsync = Some(f);
                    f
                }
            };
            let outcome = self.execute(&op);
            let id = self.next_write_id();
            self.applied.insert(
                op.key.clone(),
                AppliedOp {
                    fingerprint,
                    outcome: outcome.clone(),
                    pending_fsync: Some(batch_fsync),
                    tower,
                },
            );
            first_applied.push((op.key.clone(), outcome.clone()));
            receipts.push(OpReceipt {
                key: op.key.clone(),
                outcome: outcome.clone(),
            });
            self.actions.push_back(Action::Write {
                id,
                record: Record::Applied { op, outcome, tower },
            });
        }
        let fsync = match (fsync, waits_on_pending) {
            (Some(f), _) => f,
            // Only replays of records whose fsync is pending: a fresh fsync, issued after
            // theirs, covers them.
            (None, true) => self.next_write_id(),
            (None, false) => {
                self.send(from, Message::ForwardReply { receipts });
                return;
            }
        };
        self.actions.push_back(Action::Fsync { id: fsync });
        let receipts = if self.config.reply_after_fsync {
            Some(receipts)
        } else {
            // Answered on receipt, before the batch's writes: a failure of any of them
            // (which stops the origin and drops its queued actions) comes too late.
            self.actions.insert(
                first_action,
                Action::Send {
                    to: from,
                    via: None,
                    msg: Message::ForwardReply { receipts },
                },
            );
            None
        };
        self.pending_batches.push_back(PendingBatch {
            fsync,
            to: from,
            receipts,
            first_applied,
        });
    }

    /// Whether a delivery of `a`'s key is recognised as a replay: always, but for the
    /// planted `bounded-dedupe`, which forgets an apply once `n` newer ones came after it.
    fn remembers(&self, a: &AppliedOp) -> bool {
        match (self.config.dedupe_window, &a.outcome) {
            (Some(n), OpOutcome::Applied { seq }) => seq.saturating_add(n) > self.apply_seq_last,
            _ => true,
        }
    }

    /// Apply one operation not seen before (or every time, with the `no-idempotency` bug).
    fn execute(&mut self, op: &Operation) -> OpOutcome {
        // The same rules a tower checks at the edge (one function), so an operation a
        // correct tower acknowledged is never rejected here for breaking them.
        if let Err(invalid) = op.validate() {
            return OpOutcome::Rejected {
                reason: invalid.to_string(),
            };
        }
        let Some(seq) = self.apply_seq_last.checked_add(1) else {
            return OpOutcome::Rejected {
                reason: "apply log full".to_string(),
            };
        };
        if let OpKind::Contribution {
            community,
            nation,
            amount_minor,
        } = &op.kind
        {
            if let Err(e) = self.ledger.contribute(community, nation, *amount_minor) {
                return OpOutcome::Rejected {
                    reason: e.to_string(),
                };
            }
        }
        self.apply_seq_last = seq;
        self.applied_count += 1;
        OpOutcome::Applied { seq }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{ChunkRef, Manifest};
    use crate::entropy::{Entropy, SplitMix64};
    use crate::io::Key;
    use crate::ledger::Account;
    use crate::protocol::{DeviceId, TowerId};
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::time::Duration;

    const TOWER: Peer = Peer::Tower(TowerId(1));
    const T0: Time = Time::ZERO;

    /// Goal: a fail-stopped origin is rebuilt at once the first time, then after 2, 4, 8,
    /// … 64 s while failures keep coming; a good fsync makes the next one immediate again.
    #[test]
    fn restarts_are_paced_while_failures_keep_coming() {
        let s = Duration::from_secs;
        let mut p = RestartPacing::default();
        let waits: Vec<Duration> = (0..9).map(|_| p.on_failure()).collect();
        assert_eq!(
            waits,
            [0, 2, 4, 8, 16, 32, 64, 64, 64].map(s).to_vec(),
            "paced waits"
        );
        assert_eq!(p.failures(), 9);
        p.on_durable();
        assert_eq!(p.failures(), 0);
        assert_eq!(
            p.on_failure(),
            Duration::ZERO,
            "first again after a good fsync"
        );
        assert_eq!(p.on_failure(), s(2), "the backoff starts over");
    }

    /// A hand-driven origin with a disk model: writes are pending until a later fsync
    /// completes; a crash loses pending writes (except the ones `crash` is told to flush).
    struct Node {
        config: OriginConfig,
        origin: Origin,
        durable: DurableState,
        /// writes not yet covered by a completed fsync, in issue order
        unsynced: Vec<Record>,
        /// issued fsyncs: id and how many of `unsynced` were issued before it
        fsyncs: VecDeque<(WriteId, usize)>,
        /// every record ever written, across incarnations
        written: Vec<Record>,
        sent: Vec<(Peer, Message)>,
        events: Vec<Event>,
        /// What the last crash recovered, and the keys made durable since: each crash
        /// also absorbs them into it and checks that it gets what recovering does.
        kept: Option<Origin>,
        since: BTreeSet<Key>,
        /// How many crashes absorbed (not declined).
        absorbed: usize,
    }

    impl Node {
        fn new(config: OriginConfig) -> Node {
            Node {
                origin: Origin::new(config.clone()),
                config,
                durable: DurableState::new(),
                unsynced: Vec::new(),
                fsyncs: VecDeque::new(),
                written: Vec::new(),
                sent: Vec::new(),
                events: Vec::new(),
                kept: None,
                since: BTreeSet::new(),
                absorbed: 0,
            }
        }

        fn make_durable(&mut self, record: Record) {
            self.since.insert(record.key());
            self.durable.insert(record.key(), record);
        }

        fn drain(&mut self) {
            while let Some(a) = self.origin.poll_action() {
                match a {
                    Action::Write { id, record } => {
                        self.unsynced.push(record.clone());
                        self.written.push(record);
                        self.origin.handle_write_done(T0, id, Ok(()));
                    }
                    Action::Fsync { id } => self.fsyncs.push_back((id, self.unsynced.len())),
                    Action::Send { to, msg, .. } => self.sent.push((to, msg)),
                    Action::ReadChunk { to, hash } => {
                        let msg = self.origin.chunk_reply(hash, self.stored(&hash));
                        self.sent.push((to, msg));
                    }
                    Action::Emit(e) => self.events.push(e),
                    other => panic!("origin emitted {other:?}"),
                }
            }
        }

        /// The bytes of chunk `hash` as storage holds them: the newest write, else the
        /// durable record.
        fn stored(&self, hash: &ChunkHash) -> Option<Bytes> {
            let mut written = self.written.iter().rev().chain(self.durable.values());
            written.find_map(|r| match r {
                Record::Chunk(c) if c.hash == *hash => Some(c.bytes.clone()),
                _ => None,
            })
        }

        fn deliver(&mut self, ops: Vec<Operation>) {
            self.origin
                .handle_message(T0, TOWER, Message::ForwardOps { ops });
            self.drain();
        }

        fn ask(&mut self, msg: Message) -> Message {
            self.origin.handle_message(T0, TOWER, msg);
            self.drain();
            self.sent.pop().expect("a reply").1
        }

        fn publish(&mut self, item: &str, bytes: &[u8]) -> CatalogEntry {
            let e = self
                .origin
                .publish(T0, ItemId::new(item), Priority::P1, bytes)
                .unwrap();
            self.drain();
            e
        }

        /// Complete the oldest outstanding fsync OK. Returns false if there was none.
        fn sync_one(&mut self) -> bool {
            let Some((id, n)) = self.fsyncs.pop_front() else {
                return false;
            };
            for r in self.unsynced.drain(..n).collect::<Vec<_>>() {
                self.make_durable(r);
            }
            for f in &mut self.fsyncs {
                f.1 -= n;
            }
            self.origin.handle_fsync_done(T0, id, Ok(()));
            self.drain();
            true
        }

        fn sync_all(&mut self) {
            while self.sync_one() {}
        }

        /// Fail the oldest outstanding fsync (its writes stay unsynced).
        fn fail_fsync(&mut self) {
            if let Some((id, _)) = self.fsyncs.pop_front() {
                self.origin.handle_fsync_done(T0, id, Err("EIO".into()));
                self.drain();
            }
        }

        /// Crash and restart through recover(). `flush(i)` says whether unsynced write `i`
        /// reached the disk anyway.
        fn crash(&mut self, flush: impl Fn(usize) -> bool) {
            for (i, r) in std::mem::take(&mut self.unsynced).into_iter().enumerate() {
                if flush(i) {
                    self.make_durable(r);
                }
            }
            self.fsyncs.clear();
            self.origin = Origin::recover(self.config.clone(), &self.durable);
            let written = self
                .since
                .iter()
                .filter_map(|k| self.durable.get_key_value(k))
                .map(|(k, r)| (k, r, None));
            if let Some(absorbed) = self.kept.take().and_then(|kept| kept.absorb(written)) {
                assert_eq!(
                    format!("{absorbed:?}"),
                    format!("{:?}", self.origin),
                    "absorbing the records made durable since differs from recovering"
                );
                self.absorbed += 1;
            }
            self.kept = Some(self.origin.clone());
            self.since.clear();
        }

        fn replies(&self) -> Vec<&Vec<OpReceipt>> {
            self.sent
                .iter()
                .filter_map(|(_, m)| match m {
                    Message::ForwardReply { receipts } => Some(receipts),
                    _ => None,
                })
                .collect()
        }

        fn applied_events(&self, key: &IdemKey) -> usize {
            self.events
                .iter()
                .filter(|e| matches!(e, Event::OpApplied { key: k, .. } if k == key))
                .count()
        }
    }

    fn contribution(n: u64, amount_minor: u64) -> Operation {
        Operation {
            key: IdemKey::for_device(DeviceId(7), n, 0),
            device: DeviceId(7),
            kind: OpKind::Contribution {
                community: "kibera".into(),
                nation: "ke".into(),
                amount_minor,
            },
        }
    }

    fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut r = SplitMix64::new(seed);
        (0..len).map(|_| r.next_u64() as u8).collect()
    }

    fn catalog_reply(node: &mut Node, since_seq: u64) -> Vec<CatalogEntry> {
        let changes = false;
        match node.ask(Message::CatalogRequest { since_seq, changes }) {
            Message::CatalogReply { entries, .. } => (entries.into_iter())
                .map(|e| match e {
                    SentEntry::Whole(e) => e,
                    SentEntry::Changes { .. } => panic!("changes sent when whole asked"),
                })
                .collect(),
            other => panic!("expected a catalog reply, got {other:?}"),
        }
    }

    #[test]
    fn an_upload_in_pieces_publishes_what_a_whole_publish_does_and_is_durable_only_after_its_fsync()
    {
        // Goal: content sent in pieces gives the same manifest (chunks, size, digest) and
        // writes the same chunks, once each, as a publish of the whole; its entry enters
        // the catalog only after its fsync; a rebuild forgets open uploads; the limits hold.
        let data = random_bytes(9, 700_000);
        // Both origins hold a first item sharing chunks with it (written again: never).
        let mut whole = Node::new(OriginConfig::default());
        whole.publish("other", &data[..100_000]);
        whole.sync_all();
        let w = whole.publish("atlas", &data);
        let mut node = Node::new(OriginConfig::default());
        node.publish("other", &data[..100_000]);
        node.sync_all();
        let id = node
            .origin
            .begin_upload(ItemId::new("atlas"), Priority::P1)
            .unwrap();
        for piece in data.chunks(70_001) {
            node.origin.upload_bytes(id, piece).unwrap();
            node.drain();
        }
        let e = node.origin.finish_upload(T0, id).unwrap();
        node.drain();
        assert_eq!(e.manifest.chunks, w.manifest.chunks);
        assert_eq!(e.manifest.digest, w.manifest.digest);
        assert_eq!((e.manifest.size, e.manifest.version), (700_000, 1));
        let chunk_writes = |n: &Node| -> Vec<ChunkHash> {
            let mut h: Vec<ChunkHash> = (n.written.iter())
                .filter_map(|r| match r {
                    Record::Chunk(c) => Some(c.hash),
                    _ => None,
                })
                .collect();
            h.sort();
            h
        };
        let all = chunk_writes(&whole);
        assert_eq!(chunk_writes(&node), all, "each chunk written once");
        assert!(
            catalog_reply(&mut node, 1).is_empty(),
            "visible before its fsync"
        );
        node.sync_all();
        let listed = catalog_reply(&mut node, 1);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].manifest, e.manifest);
        // Limits: uploads open at once, unknown ids, the size limit.
        let ids: Vec<UploadId> = (0..UPLOADS_MAX)
            .map(|i| {
                node.origin
                    .begin_upload(ItemId::new(format!("u{i}")), Priority::P3)
                    .unwrap()
            })
            .collect();
        assert_eq!(
            node.origin
                .begin_upload(ItemId::new("one-more"), Priority::P3),
            Err(OriginError::Uploads { open: UPLOADS_MAX })
        );
        node.origin.abort_upload(ids[0]);
        assert_eq!(
            node.origin.upload_bytes(ids[0], b"x"),
            Err(OriginError::UnknownUpload(ids[0].0))
        );
        let big = vec![7u8; 1 << 20];
        let too_large = (0..=ITEM_BYTES_MAX / big.len())
            .map(|_| node.origin.upload_bytes(ids[1], &big))
            .find(Result::is_err);
        assert!(matches!(
            too_large,
            Some(Err(OriginError::ItemTooLarge { .. }))
        ));
        assert_eq!(
            node.origin.finish_upload(T0, ids[1]),
            Err(OriginError::UnknownUpload(ids[1].0)),
            "an upload past the limit is dropped"
        );
        node.drain();
        let mut rebuilt = Origin::recover(node.config.clone(), &node.durable);
        assert_eq!(
            rebuilt.upload_bytes(ids[2], b"x"),
            Err(OriginError::UnknownUpload(ids[2].0)),
            "an upload outlived a rebuild"
        );
        // Numbered on from the old origin's: an old upload's next piece never lands in a
        // new upload (it would publish two uploads' bytes mixed).
        rebuilt.number_uploads_after(node.origin.uploads_numbered());
        let fresh = (rebuilt.begin_upload(ItemId::new("fresh"), Priority::P3)).unwrap();
        assert!(
            ids.iter().all(|old| old.0 < fresh.0),
            "{fresh:?} reuses a number"
        );
        assert_eq!(
            rebuilt.upload_bytes(ids[2], b"x"),
            Err(OriginError::UnknownUpload(ids[2].0))
        );
    }

    #[test]
    fn a_version_of_more_chunks_than_a_catalog_answer_carries_is_refused_before_it_is_written() {
        // Goal: the chunk limit holds for a whole publish and an upload alike: at the limit
        // it publishes; one chunk over, it is refused with nothing written (an upload is
        // dropped at the piece that crosses it, or at its finish), and the limit an item of
        // ITEM_BYTES_MAX cannot reach at the default chunk sizes is the one a lone catalog
        // entry fits an answer with.
        assert!(ITEM_BYTES_MAX / ChunkParams::default().size_min as usize <= ITEM_CHUNKS_MAX);
        let data = random_bytes(9, 400_000);
        let params = ChunkParams::default();
        let chunks = crate::content::split(&data, params).unwrap().len();
        assert!(chunks > 20, "{chunks}");
        let config = |max| OriginConfig {
            item_chunks_max: max,
            ..OriginConfig::default()
        };
        let mut at = Node::new(config(chunks));
        assert_eq!(at.publish("atlas", &data).manifest.chunks.len(), chunks);
        let mut over = Node::new(config(chunks - 1));
        let refused = over
            .origin
            .publish(T0, ItemId::new("atlas"), Priority::P1, &data);
        assert_eq!(
            refused,
            Err(OriginError::ItemTooManyChunks {
                chunks,
                max: chunks - 1
            })
        );
        over.drain();
        assert!(
            over.written.is_empty(),
            "{} records written",
            over.written.len()
        );
        // In pieces: refused at a piece (dropped there) or at the finish.
        for (max, piece) in [(chunks / 2, 10_000), (chunks - 1, data.len())] {
            let mut node = Node::new(config(max));
            let id = (node.origin)
                .begin_upload(ItemId::new("atlas"), Priority::P1)
                .unwrap();
            let mut refused = None;
            for p in data.chunks(piece) {
                if let Err(e) = node.origin.upload_bytes(id, p) {
                    refused = Some(e);
                    break;
                }
            }
            let refused = refused.or_else(|| node.origin.finish_upload(T0, id).err());
            assert!(
                matches!(refused, Some(OriginError::ItemTooManyChunks { max: m, .. }) if m == max),
                "{refused:?}"
            );
            assert_eq!(
                node.origin.finish_upload(T0, id),
                Err(OriginError::UnknownUpload(id.0))
            );
            node.drain();
            let entries = (node.written.iter())
                .filter(|r| matches!(r, Record::Entry(_)))
                .count();
            assert_eq!(entries, 0);
            let written: usize = (node.written.iter())
                .filter(|r| matches!(r, Record::Chunk(_)))
                .count();
            assert!(written <= max, "{written} chunks written, limit {max}");
        }
    }

    #[test]
    fn a_version_goes_as_changes_only_to_a_tower_past_its_base_and_whole_after_a_restart() {
        // Goal: changes are sent from the replaced entry only when the poll asked for them
        // and its cursor is at or past that entry's seq; otherwise, and from a restarted
        // origin (which knows only its records), whole.
        let mut node = Node::new(OriginConfig::default());
        let v1 = random_bytes(3, 60_000);
        node.publish("atlas", &v1);
        node.publish("other", &random_bytes(4, 3_000));
        node.sync_all();
        let mut v2 = v1.clone();
        v2[30_000] ^= 1;
        let e2 = node.publish("atlas", &v2);
        node.sync_all();
        let form = |node: &mut Node, since_seq, changes| match node
            .ask(Message::CatalogRequest { since_seq, changes })
        {
            Message::CatalogReply { entries, .. } => (entries.iter())
                .find(|e| e.seq() == e2.seq)
                .map(|e| matches!(e, SentEntry::Changes { .. })),
            other => panic!("expected a catalog reply, got {other:?}"),
        };
        assert_eq!(form(&mut node, 1, true), Some(true), "cursor at v1's seq");
        assert_eq!(form(&mut node, 2, true), Some(true), "cursor past it");
        assert_eq!(
            form(&mut node, 0, true),
            Some(false),
            "a tower that holds nothing"
        );
        assert_eq!(form(&mut node, 2, false), Some(false), "whole asked");
        assert_eq!(form(&mut node, e2.seq, true), None, "nothing newer");
        let mut fresh = Node::new(OriginConfig::default());
        fresh.origin = Origin::recover(OriginConfig::default(), &node.durable);
        assert_eq!(form(&mut fresh, 1, true), Some(false), "after a restart");
    }

    #[test]
    fn published_entry_is_visible_only_after_its_fsync() {
        // Goal: a version enters the catalog when its fsync completes OK, not before.
        let mut node = Node::new(OriginConfig::default());
        let e = node.publish("alert", &random_bytes(1, 30_000));
        assert_eq!((e.seq, e.manifest.version), (1, 1));
        assert!(catalog_reply(&mut node, 0).is_empty());
        assert!(node.origin.catalog().is_empty());
        assert!(node.sync_one());
        assert_eq!(catalog_reply(&mut node, 0), vec![e.clone()]);
        assert!(catalog_reply(&mut node, 1).is_empty());
        assert_eq!(node.origin.catalog(), vec![e]);
    }

    #[test]
    fn versions_increment_and_catalog_keeps_the_latest() {
        // Goal: re-publishing an item bumps its version; the catalog lists only the latest.
        let mut node = Node::new(OriginConfig::default());
        let a1 = node.publish("a", b"one");
        let b1 = node.publish("b", b"bee");
        let a2 = node.publish("a", b"two");
        node.sync_all();
        assert_eq!((a1.manifest.version, a2.manifest.version), (1, 2));
        assert_eq!(b1.manifest.version, 1);
        assert_eq!(catalog_reply(&mut node, 0), vec![b1, a2.clone()]);
        assert_eq!(catalog_reply(&mut node, 2), vec![a2]);
    }

    #[test]
    fn republishing_a_small_change_writes_only_new_chunks() {
        // Goal: delta at the origin — only chunks it does not hold are written again.
        let mut node = Node::new(OriginConfig::default());
        let old = random_bytes(5, 300_000);
        let e1 = node.publish("video", &old);
        node.sync_all();
        let have = e1.manifest.chunk_set();
        let before = node.written.len();
        let mut new = old.clone();
        for b in &mut new[150_000..150_100] {
            *b ^= 0xff;
        }
        let e2 = node.publish("video", &new);
        let chunk_writes: Vec<ChunkHash> = node.written[before..]
            .iter()
            .filter_map(|r| match r {
                Record::Chunk(c) => Some(c.hash),
                _ => None,
            })
            .collect();
        let fresh: BTreeSet<ChunkHash> =
            e2.manifest.chunk_set().difference(&have).copied().collect();
        assert!(!fresh.is_empty());
        assert_eq!(chunk_writes.iter().copied().collect::<BTreeSet<_>>(), fresh);
        assert_eq!(chunk_writes.len(), fresh.len());
        assert!(chunk_writes.len() * 4 < e2.manifest.chunks.len());
    }

    #[test]
    fn chunk_requests_are_answered() {
        // Goal: a known chunk comes back with its bytes, an unknown one with None.
        let mut node = Node::new(OriginConfig::default());
        let e = node.publish("doc", &random_bytes(2, 20_000));
        node.sync_all();
        let hash = e.manifest.chunks[0].hash;
        match node.ask(Message::ChunkRequest { hash }) {
            Message::ChunkReply { hash: h, bytes } => {
                assert_eq!(h, hash);
                assert!(content::verify_chunk(&hash, &bytes.unwrap()));
            }
            other => panic!("{other:?}"),
        }
        let unknown = ChunkHash::of(b"nothing");
        assert_eq!(
            node.ask(Message::ChunkRequest { hash: unknown }),
            Message::ChunkReply {
                hash: unknown,
                bytes: None
            }
        );
        assert_eq!(node.origin.chunk_len(&hash), Some(e.manifest.chunks[0].len));
    }

    #[test]
    fn a_chunk_storage_lost_is_never_sent_and_the_next_publish_writes_it_again() {
        // Goal: the origin keeps no chunk bytes; what storage hands back is verified before
        // it is sent. Rotten or missing bytes: the tower hears "not held", the origin
        // stops claiming the chunk (one ChunkQuarantined) and stops offering the version
        // that names it (ContentWithdrawn: out of the catalog, as a recovery would leave
        // it); publishing the same bytes again writes the chunks again instead of skipping
        // them as held, and once durable, the version is back.
        let bytes = random_bytes(4, 20_000);
        let mut node = Node::new(OriginConfig::default());
        let e = node.publish("doc", &bytes);
        node.sync_all();
        let doc = ItemId::new("doc");
        let hash = e.manifest.chunks[0].hash;
        let mut rotten = node.stored(&hash).unwrap().to_vec();
        rotten[0] ^= 1;
        let rotten = Record::Chunk(content::Chunk {
            hash,
            bytes: Bytes::from(rotten),
        });
        node.written.push(rotten);
        let events = node.events.len();
        let reply = node.ask(Message::ChunkRequest { hash });
        assert_eq!(reply, Message::ChunkReply { hash, bytes: None });
        assert_eq!(
            node.events[events..],
            [
                Event::ChunkQuarantined { hash },
                Event::ContentWithdrawn { item: doc.clone() }
            ],
        );
        assert_eq!(node.origin.chunk_len(&hash), None);
        assert!(
            node.origin.catalog().is_empty(),
            "no version it cannot serve whole"
        );
        // Asked again: "not held" without reading storage (nothing more happens).
        let reply = node.ask(Message::ChunkRequest { hash });
        assert_eq!(reply, Message::ChunkReply { hash, bytes: None });
        assert_eq!(node.events.len(), events + 2);
        // Storage that lost the bytes altogether is "not held" too.
        let other = e.manifest.chunks[1].hash;
        assert_eq!(
            node.origin.chunk_reply(other, None),
            Message::ChunkReply {
                hash: other,
                bytes: None
            }
        );
        assert_eq!(node.origin.chunk_len(&other), None);
        // The same bytes published under another id write exactly the two lost chunks
        // again; doc's withdrawn version stays out (its old seq would not reach a tower
        // whose cursor passed it), and a new version of doc is offered as any publish.
        let written = node.written.len();
        node.publish("copy", &bytes);
        let chunks: BTreeSet<ChunkHash> = (node.written[written..].iter())
            .filter_map(|r| match r {
                Record::Chunk(c) => Some(c.hash),
                _ => None,
            })
            .collect();
        assert_eq!(chunks, BTreeSet::from([hash, other]));
        node.sync_all();
        let items = |node: &Node| -> Vec<ItemId> {
            (node.origin.catalog().into_iter())
                .map(|e| e.manifest.item)
                .collect()
        };
        assert_eq!(items(&node), vec![ItemId::new("copy")]);
        match node.ask(Message::ChunkRequest { hash }) {
            Message::ChunkReply { bytes: Some(b), .. } => assert!(content::verify_chunk(&hash, &b)),
            other => panic!("{other:?}"),
        }
        let v2 = node.publish("doc", &bytes);
        node.sync_all();
        assert_eq!(items(&node), vec![ItemId::new("copy"), doc.clone()]);
        assert_eq!(node.origin.catalog()[1], v2);
        // A publish that took a chunk as held, lost before its fsync, is left out too.
        let v3_bytes = random_bytes(6, 20_000);
        let v3 = node.publish("doc", &v3_bytes);
        let first = v3.manifest.chunks[0].hash;
        node.origin.chunk_lost(first);
        node.sync_all();
        assert_eq!(
            items(&node),
            vec![ItemId::new("copy")],
            "v3 names a lost chunk"
        );
        assert!(
            node.events
                .ends_with(&[Event::ContentWithdrawn { item: doc.clone() }]),
            "{:?}",
            node.events.last()
        );
    }

    #[test]
    fn a_page_of_entries_with_few_chunks_is_bounded_too() {
        // Goal: each entry costs one reference more than its chunks, so a small budget
        // (a scenario's small answer limit) bounds a page of empty or one-chunk items too.
        let config = OriginConfig {
            catalog_page_refs: 10,
            ..OriginConfig::default()
        };
        let mut node = Node::new(config);
        for i in 0..12 {
            node.publish(&format!("empty-{i}"), b"");
            node.publish(&format!("one-{i}"), &random_bytes(i, 1_000));
        }
        node.sync_all();
        let Message::CatalogReply { entries, more, .. } = node.ask(Message::CatalogRequest {
            since_seq: 0,
            changes: false,
        }) else {
            panic!("no catalog reply");
        };
        // empty (1), one (2), empty (1), one (2), empty (1), one (2), empty (1): 10; the
        // next one-chunk entry would make 12.
        assert_eq!((entries.len(), more), (7, true));
    }

    #[test]
    fn a_catalog_page_is_cut_by_its_chunk_references_and_says_more_follow() {
        // Goal: a page never lists much more than CATALOG_REPLY_REFS_MAX chunk references
        // (1024 whole manifests of large items ran past what a tower reads in one answer,
        // and a new tower never synced), always carries at least one entry, and says when
        // more follow; reading on from its last seq gets every entry once.
        let per_item = CATALOG_REPLY_REFS_MAX * 2 / 5;
        let mut durable = DurableState::new();
        let mut verified = BTreeMap::new();
        let mut items = Vec::new();
        for i in 0..5u64 {
            let chunks: Vec<ChunkRef> = (0..per_item as u64 + i)
                .map(|n| ChunkRef {
                    hash: ChunkHash::of(&(i << 32 | n).to_le_bytes()),
                    len: 4096,
                })
                .collect();
            verified.extend(chunks.iter().map(|c| (c.hash, c.len)));
            let manifest = Manifest {
                item: ItemId::new(format!("big-{i}")),
                version: 1,
                priority: Priority::P2,
                size: 4096 * chunks.len() as u64,
                digest: ChunkHash::of(&i.to_le_bytes()),
                chunks,
            };
            items.push(manifest.item.clone());
            let entry = CatalogEntry {
                seq: i + 1,
                manifest,
            };
            durable.insert(
                Key::Entry(entry.manifest.item.clone()),
                Record::Entry(entry),
            );
        }
        // One small item after them.
        let mut node = Node::new(OriginConfig::default());
        node.durable = durable;
        node.origin = Origin::recover_verified(OriginConfig::default(), &node.durable, &verified);
        let e = node.publish("small", &random_bytes(7, 10_000));
        node.sync_all();
        items.push(e.manifest.item.clone());
        let mut since = 0;
        let mut got = Vec::new();
        let mut pages = Vec::new();
        loop {
            let reply = node.ask(Message::CatalogRequest {
                since_seq: since,
                changes: true,
            });
            let Message::CatalogReply { entries, more, .. } = reply else {
                panic!("{reply:?}");
            };
            assert!(!entries.is_empty(), "a page has at least one entry");
            let refs: usize = entries.iter().map(SentEntry::refs).sum();
            pages.push((entries.len(), refs, more));
            since = entries.last().map(SentEntry::seq).unwrap();
            got.extend(entries.into_iter().map(|e| match e {
                SentEntry::Whole(e) => e.manifest.item,
                SentEntry::Changes { changes, .. } => changes.item,
            }));
            if !more {
                break;
            }
        }
        assert_eq!(got, items, "every entry once, in seq order");
        // Two big manifests fit a page (0.8 of the budget), a third does not; the last
        // page takes the fifth big one and the small one.
        let shape: Vec<(usize, bool)> = pages.iter().map(|(n, _, more)| (*n, *more)).collect();
        assert_eq!(shape, vec![(2, true), (2, true), (2, false)]);
        for (_, refs, _) in &pages {
            assert!(
                *refs <= CATALOG_REPLY_REFS_MAX,
                "{refs} references in a page"
            );
        }
        // A lone entry above the budget still goes, alone.
        let mut alone = Node::new(OriginConfig::default());
        let (mut d, mut v) = (DurableState::new(), BTreeMap::new());
        let big: Vec<ChunkRef> = (0..CATALOG_REPLY_REFS_MAX as u64 + 10)
            .map(|n| ChunkRef {
                hash: ChunkHash::of(&n.to_be_bytes()),
                len: 1,
            })
            .collect();
        v.extend(big.iter().map(|c| (c.hash, c.len)));
        let manifest = Manifest {
            item: ItemId::new("huge"),
            version: 1,
            priority: Priority::P3,
            size: big.len() as u64,
            digest: ChunkHash::of(b"huge"),
            chunks: big,
        };
        d.insert(
            Key::Entry(manifest.item.clone()),
            Record::Entry(CatalogEntry { seq: 1, manifest }),
        );
        alone.origin = Origin::recover_verified(OriginConfig::default(), &d, &v);
        let reply = alone.ask(Message::CatalogRequest {
            since_seq: 0,
            changes: false,
        });
        assert!(
            matches!(&reply, Message::CatalogReply { entries, more: false, .. } if entries.len() == 1)
        );
    }

    #[test]
    fn a_recovery_from_verified_lengths_holds_what_one_from_chunk_records_holds() {
        // Goal: a driver whose store verified its chunks hands their lengths instead of
        // their bytes; the rebuilt origin serves the same catalog and claims the same
        // chunks, and an entry whose chunk the store did not verify is left out alike.
        let mut node = Node::new(OriginConfig::default());
        let a = node.publish("a", &random_bytes(5, 30_000));
        let b = node.publish("b", &random_bytes(6, 30_000));
        node.sync_all();
        let lost = b.manifest.chunks[0].hash;
        let mut records = node.durable.clone();
        records.remove(&Key::Chunk(lost));
        let full = Origin::recover(OriginConfig::default(), &records);
        let mut verified = BTreeMap::new();
        records.retain(|_, r| match r {
            Record::Chunk(c) => {
                verified.insert(c.hash, c.bytes.len() as u32);
                false
            }
            _ => true,
        });
        let lean = Origin::recover_verified(OriginConfig::default(), &records, &verified);
        assert_eq!(lean.catalog(), full.catalog());
        assert_eq!(lean.catalog().len(), 1, "b's entry is left out");
        assert_eq!(lean.catalog()[0].manifest.item, a.manifest.item);
        for c in a.manifest.chunks.iter().chain(&b.manifest.chunks) {
            assert_eq!(lean.chunk_len(&c.hash), full.chunk_len(&c.hash));
        }
        assert_eq!(lean.chunk_len(&lost), None);
    }

    #[test]
    fn forward_reply_waits_for_the_fsync() {
        // Goal: receipts and OpApplied go out only after the batch's fsync completes.
        let mut node = Node::new(OriginConfig::default());
        let op = contribution(1, 100);
        node.deliver(vec![op.clone()]);
        assert!(node.replies().is_empty());
        assert!(node.events.is_empty());
        assert_eq!(node.fsyncs.len(), 1);
        node.sync_one();
        assert_eq!(
            node.replies(),
            vec![&vec![OpReceipt {
                key: op.key.clone(),
                outcome: OpOutcome::Applied { seq: 1 }
            }]]
        );
        assert_eq!(node.applied_events(&op.key), 1);
        assert_eq!(node.origin.ledger().balance(&Account::Reserve), 20);
    }

    #[test]
    fn the_planted_reply_before_fsync_loses_an_operation_it_answered_applied() {
        // Goal: the bug's shape. With `reply_after_fsync` off the receipt goes out before
        // the fsync; the fsync then fails and the restarted origin has no record of the
        // operation its receipt called applied (the tower has already dropped it). The
        // clean build, under the same failure, never answered.
        for clean in [true, false] {
            let config = OriginConfig {
                reply_after_fsync: clean,
                ..OriginConfig::default()
            };
            let mut node = Node::new(config);
            let op = contribution(1, 100);
            node.deliver(vec![op.clone()]);
            let answered = node
                .replies()
                .iter()
                .any(|r| r.iter().any(|r| r.key == op.key));
            assert!(
                !node.origin.applied_durably(&op.key),
                "its fsync is pending"
            );
            node.fail_fsync();
            assert!(node.origin.is_failed());
            assert!(
                !node.origin.applied_durably(&op.key),
                "a failed step's record is not durable"
            );
            node.crash(|_| false);
            assert_eq!(node.origin.applied(&op.key), None, "not durable");
            assert_eq!(answered, !clean, "clean: {clean}");
            // No second reply (the planted one answered once, the clean one never).
            assert_eq!(node.replies().len(), usize::from(!clean));
        }
    }

    #[test]
    fn the_planted_bounded_dedupe_applies_a_late_retry_again() {
        // Goal: the bug's shape. With a dedupe window of 3 applies, a retry of an operation
        // arriving after 3 newer applies (its reply was lost, an outage came between) is
        // applied a second time; a retry inside the window is not. The clean build
        // recognises the late retry too.
        for window in [None, Some(3)] {
            let mut node = Node::new(OriginConfig {
                dedupe_window: window,
                ..OriginConfig::default()
            });
            let op = contribution(1, 100);
            node.deliver(vec![op.clone()]);
            node.sync_all();
            node.deliver(vec![contribution(2, 5), contribution(3, 5)]);
            node.sync_all();
            node.deliver(vec![op.clone()]); // two newer applies: inside the window
            node.sync_all();
            assert_eq!(node.applied_events(&op.key), 1, "window {window:?}");
            node.deliver(vec![contribution(4, 5)]);
            node.sync_all();
            node.deliver(vec![op.clone()]); // three newer applies: past it
            node.sync_all();
            let twice = window.is_some();
            assert_eq!(node.applied_events(&op.key), 1 + usize::from(twice));
            let contributed = node.origin.ledger().contributed_minor();
            assert_eq!(contributed, if twice { 215 } else { 115 }, "{window:?}");
        }
    }

    #[test]
    fn the_planted_publish_before_fsync_hands_a_version_out_twice() {
        // Goal: the bug's shape. With `catalog_after_fsync` off a published version is in
        // the catalog before its fsync; a crash before the fsync takes it back, and the
        // next publish of the item reuses its version and seq with other bytes — a tower
        // that adopted the first one sees nothing newer and keeps bytes the origin no
        // longer has. The clean build announces only what survives.
        for clean in [true, false] {
            let mut node = Node::new(OriginConfig {
                catalog_after_fsync: clean,
                ..OriginConfig::default()
            });
            let first = node.publish("alert", &random_bytes(1, 20_000));
            let seen = catalog_reply(&mut node, 0);
            assert_eq!(seen.is_empty(), clean, "clean: {clean}");
            node.crash(|_| false); // before the publish's fsync
            assert!(node.origin.catalog().is_empty());
            let second = node.publish("alert", &random_bytes(2, 20_000));
            node.sync_all();
            assert_eq!(
                (second.seq, second.manifest.version),
                (first.seq, first.manifest.version),
                "the lost version's numbers are handed out again"
            );
            assert_ne!(second.manifest, first.manifest);
            if let Some(adopted) = seen.first() {
                // What a tower adopted names the same (seq, version) as what the origin
                // now serves, with other chunks: its cursor is past the new entry.
                assert!(catalog_reply(&mut node, adopted.seq).is_empty());
                assert_ne!(node.origin.catalog(), seen);
            }
        }
    }

    #[test]
    fn duplicates_in_and_across_batches_apply_once() {
        // Goal: the same op twice in a batch, again while pending, and again once durable,
        // has one effect and one event; every receipt carries the original outcome.
        let mut node = Node::new(OriginConfig::default());
        let op = contribution(1, 101);
        node.deliver(vec![op.clone(), op.clone()]);
        // A second batch while the first is pending joins it, and waits for its own fsync.
        node.deliver(vec![op.clone()]);
        assert_eq!(node.fsyncs.len(), 2);
        // The later fsync completing first settles both batches.
        let (first, _) = node.fsyncs[0];
        let (second, n) = node.fsyncs[1];
        for r in node.unsynced.drain(..n) {
            node.durable.insert(r.key(), r);
        }
        node.fsyncs.clear();
        node.origin.handle_fsync_done(T0, second, Ok(()));
        node.origin.handle_fsync_done(T0, first, Ok(()));
        node.drain();
        assert_eq!(node.replies().len(), 2);
        // Once durable, a replay is answered at once without a write.
        let writes = node.written.len();
        node.deliver(vec![op.clone()]);
        assert_eq!(node.written.len(), writes);
        assert!(node.fsyncs.is_empty());
        let applied = OpOutcome::Applied { seq: 1 };
        for receipts in node.replies() {
            assert!(receipts.iter().all(|r| r.outcome == applied));
        }
        assert_eq!(node.replies().len(), 3);
        assert_eq!(node.origin.ledger().contributed_minor(), 101);
        assert_eq!(
            node.origin
                .ledger()
                .balance(&Account::Community("kibera".into())),
            50
        );
        assert_eq!(node.origin.applied_count(), 1);
        assert_eq!(node.applied_events(&op.key), 1);
    }

    #[test]
    fn same_key_different_body_is_a_conflict() {
        // Goal: a key reused with another body gets Conflict and no effect.
        let mut node = Node::new(OriginConfig::default());
        let op = contribution(1, 100);
        let mut other = contribution(1, 999);
        other.key = op.key.clone();
        node.deliver(vec![op.clone(), other.clone()]);
        node.sync_all();
        node.deliver(vec![other]);
        let replies = node.replies();
        assert_eq!(replies[0][1].outcome, OpOutcome::Conflict);
        assert_eq!(replies[1][0].outcome, OpOutcome::Conflict);
        assert_eq!(
            node.origin.applied(&op.key),
            Some(&OpOutcome::Applied { seq: 1 })
        );
        assert_eq!(node.origin.ledger().contributed_minor(), 100);
    }

    #[test]
    fn invalid_ops_are_rejected_and_recorded() {
        // Goal: a zero contribution is Rejected, recorded, and replays get the same verdict.
        let mut node = Node::new(OriginConfig::default());
        let zero = contribution(1, 0);
        node.deliver(vec![zero.clone()]);
        node.sync_all();
        node.deliver(vec![zero.clone()]);
        let replies = node.replies();
        assert!(
            matches!(&replies[0][0].outcome, OpOutcome::Rejected { reason } if reason.contains("at least one"))
        );
        assert_eq!(replies[0], replies[1]);
        assert_eq!(node.origin.applied_count(), 0);
        assert_eq!(node.origin.ledger().contributed_minor(), 0);
        assert_eq!(node.applied_events(&zero.key), 1);
    }

    #[test]
    fn long_batches_are_cut_at_batch_max() {
        // Goal: only the first batch_max ops of a batch are applied and answered.
        let mut node = Node::new(OriginConfig {
            batch_max: 2,
            ..OriginConfig::default()
        });
        node.deliver((1..=5).map(|n| contribution(n, 10)).collect());
        node.sync_all();
        assert_eq!(node.replies()[0].len(), 2);
        assert_eq!(node.origin.ledger().contributed_minor(), 20);
    }

    #[test]
    fn fsync_failure_stops_and_recovery_does_not_double_apply() {
        // Goal: fail-stop on fsync failure; recover() from the fsynced writes rebuilds the
        // ledger and apply log, and a retried batch is not applied twice.
        let mut node = Node::new(OriginConfig::default());
        let (a, b, c) = (
            contribution(1, 100),
            contribution(2, 7),
            contribution(3, 50),
        );
        node.deliver(vec![a.clone(), b.clone()]);
        node.sync_all();
        node.publish("alert", b"boil water");
        node.sync_all();
        node.deliver(vec![c.clone()]);
        node.fail_fsync();
        assert!(node.origin.is_failed());
        assert!(node.origin.poll_action().is_none());
        node.deliver(vec![c.clone()]);
        assert!(node.origin.poll_action().is_none());
        assert_eq!(
            node.origin
                .publish(T0, ItemId::new("x"), Priority::P0, b"x"),
            Err(OriginError::Failed)
        );
        node.crash(|_| false);
        assert!(!node.origin.is_failed());
        assert_eq!(node.origin.ledger().contributed_minor(), 107);
        assert_eq!(node.origin.ledger().check_conserved(), Ok(()));
        assert_eq!(
            node.origin.applied(&b.key),
            Some(&OpOutcome::Applied { seq: 2 })
        );
        assert_eq!(node.origin.applied(&c.key), None);
        assert_eq!(node.origin.catalog().len(), 1);
        // The tower retries everything it holds.
        node.deliver(vec![a.clone(), b.clone(), c.clone()]);
        node.sync_all();
        let last = node.replies().pop().unwrap().clone();
        assert_eq!(last[0].outcome, OpOutcome::Applied { seq: 1 });
        assert_eq!(last[1].outcome, OpOutcome::Applied { seq: 2 });
        assert_eq!(last[2].outcome, OpOutcome::Applied { seq: 3 });
        assert_eq!(node.origin.ledger().contributed_minor(), 157);
        assert_eq!(node.origin.applied_count(), 3);
        for op in [&a, &b, &c] {
            assert_eq!(node.applied_events(&op.key), 1);
        }
        // A second recovery agrees with the live state.
        let live = node.origin.ledger().balances().clone();
        node.crash(|_| false);
        assert_eq!(node.origin.ledger().balances(), &live);
        let e2 = node.publish("alert", b"boil water, again");
        assert_eq!((e2.manifest.version, e2.seq), (2, 2));
    }

    #[test]
    fn write_failure_stops_the_origin() {
        // Goal: a failed write before its fsync is a fail-stop, like a failed fsync.
        let mut node = Node::new(OriginConfig::default());
        node.origin.handle_message(
            T0,
            TOWER,
            Message::ForwardOps {
                ops: vec![contribution(1, 5)],
            },
        );
        let Some(Action::Write { id, .. }) = node.origin.poll_action() else {
            panic!("expected a write first");
        };
        node.origin.handle_write_done(T0, id, Err("ENOSPC".into()));
        assert!(node.origin.is_failed());
        assert_eq!(node.origin.poll_action(), None);
    }

    #[test]
    fn a_recovered_origin_absorbs_the_records_made_durable_since_as_a_recovery_would() {
        // Goal: absorbing new entries (one over an item's older one), chunks and operations
        // into the last recovery gives what reading every record gives (`Node::crash`
        // compares the two), entries whose chunks are not durable left out as a recovery
        // leaves them out, until a later chunk completes them.
        let mut node = Node::new(OriginConfig::default());
        node.publish("a", &random_bytes(1, 5000));
        node.deliver(vec![contribution(0, 100)]);
        node.sync_all();
        node.crash(|_| false);
        assert_eq!(node.absorbed, 0, "nothing kept before the first recovery");

        node.publish("a", &random_bytes(2, 5000));
        node.publish("b", &random_bytes(3, 5000));
        node.deliver(vec![contribution(1, 250), contribution(0, 100)]);
        node.sync_all();
        node.crash(|_| false);
        assert_eq!(node.absorbed, 1);
        let versions: Vec<_> = node
            .origin
            .catalog()
            .iter()
            .map(|e| (e.manifest.item.as_str().to_owned(), e.manifest.version))
            .collect();
        assert_eq!(versions, [("a".to_owned(), 2), ("b".to_owned(), 1)]);
        assert_eq!(node.origin.ledger().contributed_minor(), 350);

        // The entry of "c" reaches the disk without its chunks: left out on recovery.
        node.publish("c", &random_bytes(4, 5000));
        let entry = node.unsynced.len() - 1;
        node.crash(|i| i == entry);
        assert_eq!(node.absorbed, 2, "left out as a recovery leaves it out");
        assert_eq!(node.origin.catalog().len(), 2);
        // The same bytes published as "e" write the chunks that complete "c"; then "c" is
        // published anew and its entry left out again: gone from the catalog.
        node.publish("e", &random_bytes(4, 5000));
        node.sync_all();
        node.crash(|_| false);
        assert_eq!((node.absorbed, node.origin.catalog().len()), (3, 4));
        node.publish("c", &random_bytes(6, 5000));
        let entry = node.unsynced.len() - 1;
        node.crash(|i| i == entry);
        assert_eq!((node.absorbed, node.origin.catalog().len()), (4, 3));
    }

    #[test]
    fn recovery_drops_an_entry_whose_chunks_never_reached_the_disk() {
        // Goal: an entry flushed without its chunks was never visible and stays invisible.
        let mut node = Node::new(OriginConfig::default());
        node.publish("doc", &random_bytes(3, 40_000));
        let entry_index = node.unsynced.len() - 1;
        assert!(matches!(node.unsynced[entry_index], Record::Entry(_)));
        node.crash(|i| i == entry_index);
        assert!(node.origin.catalog().is_empty());
        assert!(node.durable.contains_key(&Key::Entry(ItemId::new("doc"))));
        let e = node.publish("doc", b"short");
        assert_eq!((e.manifest.version, e.seq), (2, 2));
    }

    #[test]
    fn without_idempotency_every_delivery_applies_again() {
        // Goal: the planted bug `no-idempotency` double-applies, visibly to an oracle.
        let mut node = Node::new(OriginConfig {
            idempotency: false,
            ..OriginConfig::default()
        });
        let op = contribution(1, 100);
        node.deliver(vec![op.clone()]);
        node.sync_all();
        node.deliver(vec![op.clone()]);
        node.sync_all();
        assert_eq!(node.origin.ledger().contributed_minor(), 200);
        assert_eq!(node.origin.applied_count(), 2);
        assert_eq!(node.applied_events(&op.key), 2);
        assert_eq!(
            node.origin.applied(&op.key),
            Some(&OpOutcome::Applied { seq: 2 })
        );
    }

    #[test]
    fn nearest_rounding_shows_up_in_the_origin_ledger() {
        // Goal: the planted bug `ledger-rounding` reaches the origin's ledger.
        let mut node = Node::new(OriginConfig {
            rounding: Rounding::Nearest,
            ..OriginConfig::default()
        });
        node.deliver(vec![contribution(1, 3)]);
        node.sync_all();
        assert!(node.origin.ledger().check_conserved().is_err());
        node.crash(|_| false);
        assert_eq!(node.origin.ledger().held_minor(), 4);
    }

    /// A config that knows only tower 1 (`TOWER`).
    fn knows_tower_1() -> OriginConfig {
        OriginConfig {
            towers: Some(BTreeSet::from([TowerId(1)])),
            ..OriginConfig::default()
        }
    }

    /// Send `msg` as `from`; the reply addressed to `from`.
    fn ask_as(node: &mut Node, from: Peer, msg: Message) -> Message {
        node.origin.handle_message(T0, from, msg);
        node.drain();
        let (to, reply) = node.sent.pop().expect("a reply");
        assert_eq!(to, from);
        reply
    }

    #[test]
    fn an_unknown_tower_is_refused_and_changes_nothing() {
        // Goal: catalog, chunk and forward requests from a tower outside the known set get
        // Refused, and the forward applies nothing, writes nothing and emits nothing.
        let mut node = Node::new(knows_tower_1());
        let e = node.publish("alert", b"boil water");
        node.sync_all();
        let written = node.written.len();
        let stranger = Peer::Tower(TowerId(99));
        let refused =
            |m: Message| matches!(m, Message::Refused { reason } if reason.contains("tower-99"));
        let op = contribution(1, 5_000_000);
        assert!(refused(ask_as(
            &mut node,
            stranger,
            Message::ForwardOps {
                ops: vec![op.clone()]
            }
        )));
        assert!(refused(ask_as(
            &mut node,
            stranger,
            Message::CatalogRequest {
                since_seq: 0,
                changes: true
            }
        )));
        let hash = e.manifest.chunks[0].hash;
        assert!(refused(ask_as(
            &mut node,
            stranger,
            Message::ChunkRequest { hash }
        )));
        // A device is no tower either.
        let device = Peer::Device(DeviceId(3));
        assert!(matches!(
            ask_as(
                &mut node,
                device,
                Message::ForwardOps {
                    ops: vec![op.clone()]
                }
            ),
            Message::Refused { .. }
        ));
        assert_eq!(node.written.len(), written, "a refusal writes nothing");
        assert!(node.fsyncs.is_empty());
        assert_eq!(node.origin.applied(&op.key), None);
        assert_eq!(node.origin.ledger().contributed_minor(), 0);
        assert_eq!(node.applied_events(&op.key), 0);
        // The known tower is served and its operation applied.
        node.deliver(vec![op.clone()]);
        node.sync_all();
        assert_eq!(
            node.origin.applied(&op.key),
            Some(&OpOutcome::Applied { seq: 1 })
        );
        assert_eq!(node.origin.ledger().contributed_minor(), 5_000_000);
        // Revoking the tower refuses it from then on.
        node.origin.set_towers(Some(BTreeSet::new()));
        assert!(matches!(
            ask_as(
                &mut node,
                TOWER,
                Message::CatalogRequest {
                    since_seq: 0,
                    changes: true
                }
            ),
            Message::Refused { .. }
        ));
    }

    #[test]
    fn without_tower_authentication_a_stranger_is_applied() {
        // Goal: the planted bug (authenticate_towers = false) answers an unknown tower and
        // applies its operation, as the origin did before towers were known.
        let mut node = Node::new(OriginConfig {
            authenticate_towers: false,
            ..knows_tower_1()
        });
        let stranger = Peer::Tower(TowerId(99));
        let op = contribution(1, 5_000_000);
        node.origin.handle_message(
            T0,
            stranger,
            Message::ForwardOps {
                ops: vec![op.clone()],
            },
        );
        node.drain();
        node.sync_all();
        assert_eq!(
            node.origin.applied(&op.key),
            Some(&OpOutcome::Applied { seq: 1 })
        );
        assert_eq!(node.origin.ledger().contributed_minor(), 5_000_000);
        assert_eq!(node.origin.forwarded_by(&op.key), Some(TowerId(99)));
    }

    #[test]
    fn the_forwarding_tower_is_recorded_and_survives_recovery() {
        // Goal: each applied record names the tower that forwarded it first; a replay from
        // another tower does not change it; recovery keeps it.
        let mut node = Node::new(OriginConfig::default());
        let op = contribution(1, 100);
        node.deliver(vec![op.clone()]);
        node.sync_all();
        let other = Peer::Tower(TowerId(2));
        node.origin.handle_message(
            T0,
            other,
            Message::ForwardOps {
                ops: vec![op.clone()],
            },
        );
        node.drain();
        assert_eq!(node.origin.forwarded_by(&op.key), Some(TowerId(1)));
        assert!(node.written.iter().any(|r| matches!(
            r,
            Record::Applied {
                tower: Some(TowerId(1)),
                ..
            }
        )));
        node.crash(|_| false);
        assert_eq!(node.origin.forwarded_by(&op.key), Some(TowerId(1)));
        assert_eq!(node.origin.forwarded_by(&IdemKey("none".into())), None);
    }

    #[test]
    fn the_identity_is_announced_once_durable_and_kept() {
        // Goal: an origin announces no identity until its identity's fsync completed;
        // then every catalog reply carries it; recovery keeps it and a second
        // establish_identity does not replace it; a crash before the fsync forgets it.
        let mut node = Node::new(OriginConfig::default());
        let announced = |node: &mut Node| match node.ask(Message::CatalogRequest {
            since_seq: 0,
            changes: true,
        }) {
            Message::CatalogReply { origin, .. } => origin,
            other => panic!("{other:?}"),
        };
        let id = OriginId(0xfeed);
        assert_eq!(node.origin.establish_identity(id), Ok(id));
        node.drain();
        assert_eq!(announced(&mut node), None, "not durable yet");
        node.crash(|_| false);
        assert_eq!(node.origin.identity(), None, "lost with the crash");
        assert_eq!(node.origin.establish_identity(id), Ok(id));
        node.drain();
        node.sync_all();
        assert_eq!(announced(&mut node), Some(id));
        node.crash(|_| false);
        assert_eq!(announced(&mut node), Some(id));
        assert_eq!(node.origin.establish_identity(OriginId(1)), Ok(id));
        node.drain();
        assert_eq!(node.origin.identity(), Some(id));
    }

    #[derive(Clone, Debug)]
    enum Step {
        /// deliver these ops (indices, with duplicates and in any order) as one batch
        Deliver(Vec<usize>),
        /// publish a new version of item `.0` (of three) with bytes from seed `.1`
        Publish(usize, u64),
        /// complete the oldest outstanding fsync OK
        Sync,
        /// crash (after failing the oldest fsync if `fail_fsync`); `flush[i]` says
        /// whether unsynced write `i` reached the disk anyway
        Crash { fail_fsync: bool, flush: Vec<bool> },
    }

    fn step(n: usize) -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => proptest::collection::vec(0..n, 0..6).prop_map(Step::Deliver),
            4 => Just(Step::Sync),
            2 => (0..3usize, any::<u64>()).prop_map(|(item, seed)| Step::Publish(item, seed)),
            1 => (any::<bool>(), proptest::collection::vec(proptest::bool::weighted(0.3), 0..12))
                .prop_map(|(fail_fsync, flush)| Step::Crash { fail_fsync, flush }),
        ]
    }

    fn scenario() -> impl Strategy<Value = (Vec<u64>, Vec<Step>)> {
        proptest::collection::vec(1u64..10_000, 1..7).prop_flat_map(|amounts| {
            let n = amounts.len();
            (Just(amounts), proptest::collection::vec(step(n), 0..30))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Goal: under duplication, loss, reordering, publishes, fsync failures and crashes
        /// (with or without unsynced writes surviving), each op's effect lands exactly once,
        /// replies never contradict each other, and OpApplied is emitted at most once per
        /// key; and each crash's recovery is what absorbing the records made durable since
        /// the last one gives, where it does not decline (checked in `Node::crash`).
        #[test]
        fn each_op_applies_exactly_once((amounts, steps) in scenario()) {
            let config = OriginConfig { batch_max: 4, ..OriginConfig::default() };
            let mut node = Node::new(config);
            let ops: Vec<Operation> = amounts
                .iter()
                .enumerate()
                .map(|(i, &a)| contribution(i as u64, a))
                .collect();
            let mut spontaneous_flush = false;
            for s in steps {
                match s {
                    Step::Deliver(idx) => node.deliver(idx.iter().map(|&i| ops[i].clone()).collect()),
                    Step::Publish(item, seed) => {
                        let bytes = random_bytes(seed, 3000);
                        // Refused while failed or busy; its records otherwise.
                        let _ = node.origin.publish(T0, ItemId::new(format!("item-{item}")), Priority::P2, &bytes);
                        node.drain();
                    }
                    Step::Sync => {
                        node.sync_one();
                    }
                    Step::Crash { fail_fsync, flush } => {
                        if fail_fsync {
                            node.fail_fsync();
                        }
                        spontaneous_flush |= flush.iter().take(node.unsynced.len()).any(|&f| f);
                        node.crash(|i| flush.get(i).copied().unwrap_or(false));
                        // The recovered ledger is exactly the recorded contributions.
                        let recorded: u128 = ops
                            .iter()
                            .filter(|o| matches!(node.origin.applied(&o.key), Some(OpOutcome::Applied { .. })))
                            .map(|o| match o.kind {
                                OpKind::Contribution { amount_minor, .. } => u128::from(amount_minor),
                                _ => 0,
                            })
                            .sum();
                        prop_assert_eq!(node.origin.ledger().contributed_minor(), recorded);
                        prop_assert_eq!(node.origin.ledger().check_conserved(), Ok(()));
                    }
                }
            }
            // Heal: every op delivered at least once after the last crash, all fsyncs done.
            for op in &ops {
                node.deliver(vec![op.clone()]);
            }
            node.sync_all();
            let total: u128 = amounts.iter().map(|&a| u128::from(a)).sum();
            prop_assert_eq!(node.origin.ledger().contributed_minor(), total);
            prop_assert_eq!(node.origin.ledger().check_conserved(), Ok(()));
            prop_assert_eq!(node.origin.applied_count(), ops.len() as u64);
            for op in &ops {
                let outcome = node.origin.applied(&op.key).cloned();
                let applied = matches!(outcome, Some(OpOutcome::Applied { .. }));
                prop_assert!(applied, "op {} not applied", op.key);
                for receipts in node.replies() {
                    for r in receipts.iter().filter(|r| r.key == op.key) {
                        prop_assert_eq!(Some(&r.outcome), outcome.as_ref());
                    }
                }
                let events = node.applied_events(&op.key);
                prop_assert!(events <= 1, "{} OpApplied events for {}", events, op.key);
                if !spontaneous_flush {
                    prop_assert_eq!(events, 1);
                }
            }
        }
    }
}
