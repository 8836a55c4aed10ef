//! The origin's node task: the one owner of the logic's [`Origin`]. HTTP handlers hand it
//! publishes and towers' messages through an [`OriginHandle`]; it performs the actions
//! (store writes, fsyncs) synchronously and answers each request with the reply the logic
//! produced for it — for a forward batch, only after the fsync that made it durable.
//!
//! The origin is fail-stop: when a write or fsync fails the logic stops; this task then
//! discards what the store staged for it ([`Store::discard`]: records dropped, chunk files
//! the failed publish created removed — a failed publish leaves nothing behind, and the
//! origin never fills its disk with its own garbage), rebuilds it from the store's durable
//! state ([`Origin::recover`], as PostgreSQL restarts after an fsync failure) and answers
//! the requests of that moment with "retry". A rebuild reads the whole store, so it is
//! paced ([`RestartPacing`]): the first failure since an fsync last succeeded is rebuilt at
//! once, each further one in a row only on the first request after a wait of 2 s doubling
//! to 64 s; requests meanwhile get "retry" without touching the store. At start-up and at each such restart, chunk
//! files no committed entry names are garbage-collected (a crash between a publish's chunk
//! writes and its commit leaves them).
//!
//! The origin keeps no chunk bytes in memory ([`Origin::recover_verified`] at start-up and
//! restart; a publish's bytes are freed once written): a tower's chunk request is answered
//! by a blocking task that reads the chunk from the store and verifies it, next to the node
//! task rather than on it, so reads of many chunks run side by side (on the node task on a
//! current-thread runtime, as under turmoil: see [`detached`]). Bytes that fail their
//! hash are never sent: the tower hears "not held" and the node tells the logic
//! ([`Origin::chunk_lost`]), so the next publish of those bytes writes them again.
//!
//! At the first start (a store without `Record::Identity`) [`spawn`] draws the origin's
//! identity from the OS's random source and makes it durable before anything is served;
//! later starts read it back ([`OriginHandle::identity`]).
//!
//! Map: [`OriginHandle`], [`spawn`], [`PublishError`], [`OriginSink`].
//!
//! Not covered: HTTP routing (`api`).

use crate::clock::Clock;
use crate::tower_node::{NodeGone, blocking, detached};
use sovereign_logic::Time;
use sovereign_logic::content::{ChunkHash, ItemId, Priority, chunk_intact};
use sovereign_logic::io::{Action, Event, Record};
use sovereign_logic::origin::{Origin, OriginConfig, OriginError, RestartPacing, UploadId};
use sovereign_logic::protocol::{CatalogEntry, Message, OriginId, Peer, TowerId};
use sovereign_store::Store;
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// What the node reports to metrics and logs.
pub type OriginSink = Arc<dyn Fn(&Event, &Origin) + Send + Sync>;

type Query = Box<dyn FnOnce(&mut Origin, Time) + Send>;

enum Input {
    Publish {
        item: ItemId,
        priority: Priority,
        bytes: bytes::Bytes,
        reply: oneshot::Sender<Result<CatalogEntry, PublishError>>,
    },
    Message {
        from: TowerId,
        msg: Message,
        reply: oneshot::Sender<Option<Message>>,
    },
    Upload {
        step: UploadStep,
        reply: oneshot::Sender<Result<UploadAnswer, PublishError>>,
    },
    Query(Query),
}

/// One step of a publish whose content arrives in pieces ([`OriginHandle::upload`]).
#[derive(Debug)]
pub enum UploadStep {
    /// Begin a publish of `item`.
    Begin {
        /// the item
        item: ItemId,
        /// its class
        priority: Priority,
    },
    /// The next piece of the content.
    Bytes {
        /// the upload
        id: UploadId,
        /// the piece
        piece: bytes::Bytes,
    },
    /// The content is whole: publish it.
    Finish {
        /// the upload
        id: UploadId,
    },
    /// Give it up.
    Abort {
        /// the upload
        id: UploadId,
    },
}

/// What an [`UploadStep`] came to.
#[derive(Debug)]
pub enum UploadAnswer {
    /// Begun: the upload's number.
    Begun(UploadId),
    /// The piece's chunks are written.
    Taken,
    /// Published: durable and in the catalog.
    Published(CatalogEntry),
    /// Given up.
    Aborted,
}

/// What a publish step answers: `r`, unless the step's storage failed (`failed`: the
/// origin discarded its writes and restarted).
fn publish_answer<T>(r: Result<T, OriginError>, failed: Option<String>) -> Result<T, PublishError> {
    if let Some(e) = failed {
        return Err(PublishError::Storage(e));
    }
    r.map_err(|e| match e {
        OriginError::ItemTooLarge { .. } | OriginError::ItemTooManyChunks { .. } => {
            PublishError::TooLarge(e.to_string())
        }
        OriginError::Busy { .. }
        | OriginError::Uploads { .. }
        | OriginError::UnknownUpload(_)
        | OriginError::Failed => PublishError::Busy(e.to_string()),
        e => PublishError::Refused(e.to_string()),
    })
}

/// A publish in pieces begun at the origin ([`OriginHandle::begin_upload`]). Dropped
/// unfinished — its client went away mid-body and the handler with it, or a step failed —
/// it is aborted, so it does not hold one of the origin's few upload slots for ever.
pub struct OpenUpload {
    node: OriginHandle,
    id: UploadId,
}

impl OpenUpload {
    /// The next piece of the content: its chunks are written when this returns.
    pub async fn bytes(&self, piece: bytes::Bytes) -> Result<(), PublishError> {
        let id = self.id;
        self.node.upload(UploadStep::Bytes { id, piece }).await?;
        Ok(())
    }

    /// The content is whole: publish it (durable and in the catalog when this returns).
    pub async fn finish(self) -> Result<CatalogEntry, PublishError> {
        match self.node.upload(UploadStep::Finish { id: self.id }).await? {
            UploadAnswer::Published(entry) => Ok(entry),
            other => Err(PublishError::Refused(format!("unexpected {other:?}"))),
        }
    }
}

impl Drop for OpenUpload {
    fn drop(&mut self) {
        // Queued after any step sent before: an upload already finished (or refused and
        // dropped by the logic) is not open, and its abort changes nothing.
        let (reply, _) = oneshot::channel();
        let step = UploadStep::Abort { id: self.id };
        let _ = self.node.tx.send(Input::Upload { step, reply });
    }
}

/// Why a publish did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Refused by the logic (an empty id, a counter exhausted).
    #[error("{0}")]
    Refused(String),
    /// Not now: too many fsyncs pending or uploads open, or the origin restarted since
    /// the upload began (it is gone). Retry.
    #[error("{0}; retry")]
    Busy(String),
    /// The content is over the logic's limits (`ITEM_BYTES_MAX`, `ITEM_CHUNKS_MAX`).
    #[error("{0}")]
    TooLarge(String),
    /// Storage failed; the origin discarded the step's writes and restarted from its
    /// durable state. Retry.
    #[error(
        "storage failed ({0}); the origin discarded this publish's writes and restarted from its durable state, retry"
    )]
    Storage(String),
    /// The node is gone.
    #[error(transparent)]
    Gone(#[from] NodeGone),
}

/// A cheap, cloneable handle on the origin's node task.
#[derive(Clone)]
pub struct OriginHandle {
    tx: mpsc::UnboundedSender<Input>,
    identity: OriginId,
}

impl OriginHandle {
    /// This origin's identity (durable since before the node started).
    pub fn identity(&self) -> OriginId {
        self.identity
    }

    /// The towers the logic answers (`None`: any); kept across the node's restarts.
    pub async fn set_towers(&self, towers: Option<BTreeSet<TowerId>>) -> Result<(), NodeGone> {
        self.query(move |o, _| o.set_towers(towers)).await
    }

    /// Publish a new version of `item`; resolves once it is durable and in the catalog.
    pub async fn publish(
        &self,
        item: ItemId,
        priority: Priority,
        bytes: bytes::Bytes,
    ) -> Result<CatalogEntry, PublishError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Input::Publish {
                item,
                priority,
                bytes,
                reply,
            })
            .map_err(|_| NodeGone)?;
        rx.await.map_err(|_| NodeGone)?
    }

    /// One step of a publish whose content arrives in pieces (the admin API's streamed
    /// publish): each resolves once the step's writes are done (`Finish`: once the version
    /// is durable and in the catalog). A storage failure restarts the origin, which
    /// forgets every open upload.
    pub async fn upload(&self, step: UploadStep) -> Result<UploadAnswer, PublishError> {
        let (reply, rx) = oneshot::channel();
        (self.tx.send(Input::Upload { step, reply })).map_err(|_| NodeGone)?;
        rx.await.map_err(|_| NodeGone)?
    }

    /// Begin a publish of `item` whose content arrives in pieces: an [`OpenUpload`],
    /// aborted when dropped unfinished.
    pub async fn begin_upload(
        &self,
        item: ItemId,
        priority: Priority,
    ) -> Result<OpenUpload, PublishError> {
        match self.upload(UploadStep::Begin { item, priority }).await? {
            UploadAnswer::Begun(id) => Ok(OpenUpload {
                node: self.clone(),
                id,
            }),
            other => Err(PublishError::Refused(format!("unexpected {other:?}"))),
        }
    }

    /// A tower's message; resolves with the origin's reply (`None`: no reply, e.g. the
    /// origin restarted after a storage failure — the tower retries).
    pub async fn message(&self, from: TowerId, msg: Message) -> Result<Option<Message>, NodeGone> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Input::Message { from, msg, reply })
            .map_err(|_| NodeGone)?;
        rx.await.map_err(|_| NodeGone)
    }

    /// Run `f` on the origin (on the node task).
    pub async fn query<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Origin, Time) -> R + Send + 'static,
    ) -> Result<R, NodeGone> {
        let (tx, rx) = oneshot::channel();
        let q: Query = Box::new(move |o, now| {
            let _ = tx.send(f(o, now));
        });
        self.tx.send(Input::Query(q)).map_err(|_| NodeGone)?;
        rx.await.map_err(|_| NodeGone)
    }
}

/// What the current input answers a tower with.
enum Reply {
    /// A message the logic made.
    Message(Message),
    /// The logic's [`Action::ReadChunk`]: the chunk, read from the store (of this length).
    ReadChunk { hash: ChunkHash, len: Option<u32> },
}

/// Tell the origin that chunk `hash` is lost — if the store still says so when the node
/// task runs it: a publish may have written the chunk again since the read that found it
/// rotten (or the origin been rebuilt from a scan that quarantined it), and an intact
/// chunk must not be disowned. Confirming reads the chunk once more, on the node task;
/// it happens only for a chunk found missing or rotten.
fn lost(store: Arc<dyn Store>, hash: ChunkHash) -> Query {
    Box::new(move |o, _| {
        let Some(len) = o.chunk_len(&hash) else {
            return;
        };
        let intact = match blocking(|| store.chunk(&hash)) {
            Ok(Some(b)) => chunk_intact(&hash, Some(len), &b),
            Ok(None) => false,
            // Not a verdict on the chunk: keep claiming it.
            Err(_) => true,
        };
        if !intact {
            o.chunk_lost(hash);
        }
    })
}

struct Node {
    origin: Origin,
    /// The node's own input, for the chunk reads it hands to blocking tasks to report a
    /// lost chunk back. Weak: the node stops when the last handle is dropped.
    own: mpsc::WeakUnboundedSender<Input>,
    config: OriginConfig,
    store: Arc<dyn Store>,
    clock: Clock,
    sink: OriginSink,
    /// Replies the current input produced (`Send` and `ReadChunk` actions), in order.
    replies: Vec<(Peer, Reply)>,
    /// Storage errors seen while draining.
    failure: Option<String>,
    /// When a fail-stopped origin is rebuilt: the first failure at once, further ones in
    /// a row after a growing wait ([`RestartPacing`]).
    pacing: RestartPacing,
    /// The origin failed and waits for its rebuild until then (the instant and why).
    stopped: Option<(tokio::time::Instant, String)>,
}

/// Read the durable state (chunks as verified lengths, their bytes left on disk) and
/// garbage-collect chunks no committed entry names (logged with their count and bytes).
fn recover(store: &dyn Store) -> Result<sovereign_store::Recovered, sovereign_store::StoreError> {
    let mut recovered = blocking(|| store.recover_index())?;
    match blocking(|| sovereign_store::collect_garbage(store, &mut recovered)) {
        Ok(g) if g.chunks > 0 => tracing::warn!(
            chunks = g.chunks,
            bytes = g.bytes,
            "garbage-collected chunks no committed entry names"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "chunk garbage collection failed; going on"),
    }
    Ok(recovered)
}

/// Recover the origin from `store` (taking an identity at the first start) and start its
/// node task.
pub fn spawn(
    config: OriginConfig,
    store: Arc<dyn Store>,
    sink: OriginSink,
) -> Result<OriginHandle, sovereign_store::StoreError> {
    let recovered = recover(&*store)?;
    let origin = Origin::recover_verified(config.clone(), &recovered.durable, &recovered.chunks);
    let (tx, rx) = mpsc::unbounded_channel();
    let mut node = Node {
        origin,
        own: tx.downgrade(),
        config,
        store,
        clock: Clock::start(),
        sink,
        replies: Vec::new(),
        failure: None,
        pacing: RestartPacing::default(),
        stopped: None,
    };
    let identity = node.identity()?;
    tokio::spawn(node.run(rx));
    Ok(OriginHandle { tx, identity })
}

impl Node {
    /// The origin's identity: the recovered one, or a new one drawn from the OS and made
    /// durable now (a storage failure here fails the start).
    fn identity(&mut self) -> Result<OriginId, sovereign_store::StoreError> {
        if let Some(id) = self.origin.identity() {
            return Ok(id);
        }
        let mut bytes = [0u8; 16];
        crate::tower_auth::secret_bytes(&mut bytes).map_err(|e| {
            sovereign_store::StoreError::Io {
                what: "drawing the origin's identity".into(),
                source: std::io::Error::other(e),
            }
        })?;
        let candidate = OriginId(u128::from_be_bytes(bytes));
        let fail = |what: String| sovereign_store::StoreError::Io {
            what,
            source: std::io::Error::other("the origin's identity is not durable"),
        };
        self.origin
            .establish_identity(candidate)
            .map_err(|e| fail(e.to_string()))?;
        self.drain();
        match (self.origin.identity(), self.failure.take()) {
            (Some(id), None) => {
                tracing::info!(origin = %id, "origin identity created (first start)");
                Ok(id)
            }
            (_, why) => Err(fail(
                why.unwrap_or_else(|| "writing the origin's identity".into()),
            )),
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Input>) {
        while let Some(input) = rx.recv().await {
            let now = self.clock.now();
            match input {
                Input::Publish {
                    item,
                    priority,
                    bytes,
                    reply,
                } => {
                    let r = self.origin.publish_shared(now, item, priority, bytes);
                    self.drain();
                    let _ = reply.send(publish_answer(r, self.restart_if_failed()));
                }
                Input::Message { from, msg, reply } => {
                    self.origin.handle_message(now, Peer::Tower(from), msg);
                    self.drain();
                    let failed = self.restart_if_failed();
                    let mine = self
                        .replies
                        .iter()
                        .position(|(to, _)| *to == Peer::Tower(from));
                    // A step whose storage failed answers nothing: what it decided is
                    // not durable. The planted `reply-before-fsync` answers all the same.
                    let planted = !self.origin.config().reply_after_fsync;
                    let answer = match (failed, mine) {
                        (None, Some(i)) => Some(self.replies.remove(i).1),
                        (Some(_), Some(i)) if planted => Some(self.replies.remove(i).1),
                        _ => None,
                    };
                    match answer {
                        Some(Reply::ReadChunk { hash, len }) => self.read_chunk(hash, len, reply),
                        Some(Reply::Message(m)) => drop(reply.send(Some(m))),
                        None => drop(reply.send(None)),
                    }
                }
                Input::Upload { step, reply } => {
                    let r = match step {
                        UploadStep::Begin { item, priority } => {
                            (self.origin.begin_upload(item, priority)).map(UploadAnswer::Begun)
                        }
                        UploadStep::Bytes { id, piece } => {
                            (self.origin.upload_bytes(id, &piece)).map(|()| UploadAnswer::Taken)
                        }
                        UploadStep::Finish { id } => {
                            (self.origin.finish_upload(now, id)).map(UploadAnswer::Published)
                        }
                        UploadStep::Abort { id } => {
                            self.origin.abort_upload(id);
                            Ok(UploadAnswer::Aborted)
                        }
                    };
                    self.drain();
                    let _ = reply.send(publish_answer(r, self.restart_if_failed()));
                }
                Input::Query(q) => {
                    q(&mut self.origin, now);
                    self.drain();
                }
            }
            // Replies nobody waits for (a tower's request that timed out) are dropped.
            self.replies.clear();
        }
    }

    fn drain(&mut self) {
        // An action taken from the queue while gathering a batch of chunk writes.
        let mut held = None;
        while let Some(action) = held.take().or_else(|| self.origin.poll_action()) {
            let now = self.clock.now();
            match action {
                // A publish's chunks, written together (the store may spread them over
                // threads); each is reported as it would be alone, in order.
                Action::Write {
                    id,
                    record: record @ Record::Chunk(_),
                } => {
                    let (mut ids, mut records) = (vec![id], vec![record]);
                    loop {
                        match self.origin.poll_action() {
                            Some(Action::Write {
                                id,
                                record: record @ Record::Chunk(_),
                            }) => {
                                ids.push(id);
                                records.push(record);
                            }
                            other => {
                                held = other;
                                break;
                            }
                        }
                    }
                    let mut results = blocking(|| self.store.write_many(&records)).into_iter();
                    for id in ids {
                        let r = match results.next() {
                            Some(r) => r.map_err(|e| e.to_string()),
                            None => {
                                Err("not written: an earlier write of its batch failed".to_string())
                            }
                        };
                        self.note(&r);
                        self.origin.handle_write_done(now, id, r);
                        // Fail-stop: the logic dropped what it had queued, the action
                        // taken out ahead of it included; nothing more is written.
                        if self.origin.is_failed() {
                            held = None;
                            break;
                        }
                    }
                }
                Action::Send { to, msg, .. } => self.replies.push((to, Reply::Message(msg))),
                Action::ReadChunk { to, hash } => {
                    let len = self.origin.chunk_len(&hash);
                    self.replies.push((to, Reply::ReadChunk { hash, len }));
                }
                Action::Write { id, record } => {
                    let r = blocking(|| self.store.write(&record)).map_err(|e| e.to_string());
                    self.note(&r);
                    self.origin.handle_write_done(now, id, r);
                }
                Action::Delete { id, key } => {
                    let r = blocking(|| self.store.delete(&key)).map_err(|e| e.to_string());
                    self.note(&r);
                    self.origin.handle_write_done(now, id, r);
                }
                Action::Fsync { id } => {
                    let r = blocking(|| self.store.fsync()).map_err(|e| e.to_string());
                    self.note(&r);
                    if r.is_ok() {
                        self.pacing.on_durable();
                    }
                    self.origin.handle_fsync_done(now, id, r);
                }
                Action::Emit(event) => {
                    tracing::info!(?event, "origin event");
                    (self.sink)(&event, &self.origin);
                }
                Action::Probe { .. } | Action::PowerOff { .. } => {}
            }
        }
    }

    /// Answer a chunk request from a blocking task: the chunk's bytes when the store holds
    /// them and they verify, else "not held" — and the logic is told the chunk is lost.
    fn read_chunk(
        &self,
        hash: ChunkHash,
        len: Option<u32>,
        reply: oneshot::Sender<Option<Message>>,
    ) {
        let store = self.store.clone();
        let own = self.own.clone();
        detached(move || {
            let bytes = match store.chunk(&hash) {
                Ok(bytes) => bytes,
                Err(e) => {
                    // Not a verdict on the chunk (a descriptor limit, a busy disk): no
                    // answer, which the API turns into "retry".
                    tracing::warn!(%hash, error = %e, "reading a chunk failed; the tower will retry");
                    let _ = reply.send(None);
                    return;
                }
            };
            let found = bytes.is_some();
            let bytes = bytes.filter(|b| chunk_intact(&hash, len, b));
            if bytes.is_none() {
                match found {
                    true => {
                        tracing::error!(%hash, "a stored chunk failed verification; it is never served")
                    }
                    false => {
                        tracing::error!(%hash, "a chunk the origin held is missing from its store")
                    }
                }
                if let Some(own) = own.upgrade() {
                    let _ = own.send(Input::Query(lost(store, hash)));
                }
            }
            let _ = reply.send(Some(Message::ChunkReply { hash, bytes }));
        });
    }

    fn note(&mut self, r: &Result<(), String>) {
        if let Err(e) = r {
            tracing::error!(error = %e, "origin storage failed");
            self.failure.get_or_insert_with(|| e.clone());
        }
    }

    /// After a storage failure the logic has stopped: discard what the failed step staged
    /// at once, and rebuild the origin from what is durable — at once the first time, after
    /// [`RestartPacing`]'s wait when it keeps failing (a rebuild reads the whole store).
    /// `Some(why)` while the origin is (still) stopped for this input.
    fn restart_if_failed(&mut self) -> Option<String> {
        if !self.origin.is_failed() {
            self.failure = None;
            return None;
        }
        if let Some(why) = self.failure.take() {
            // A new failure. What the failed step staged must never be committed by a later
            // fsync, and the chunk files a failed publish created must not stay (on a full
            // disk they are what keeps it full).
            if let Err(e) = blocking(|| self.store.discard()) {
                tracing::error!(error = %e, "discarding the failed writes left files behind");
            }
            let wait = self.pacing.on_failure();
            if !wait.is_zero() {
                tracing::warn!(
                    error = %why,
                    failures_in_a_row = self.pacing.failures(),
                    wait_s = wait.as_secs(),
                    "origin stopped after another storage failure; rebuilding it later"
                );
            }
            self.stopped = Some((tokio::time::Instant::now() + wait, why));
        }
        let (at, why) = self
            .stopped
            .clone()
            .unwrap_or_else(|| (tokio::time::Instant::now(), "storage failure".to_string()));
        if tokio::time::Instant::now() < at {
            return Some(why);
        }
        // Towers added or revoked since the start are kept.
        self.config.towers = self.origin.config().towers.clone();
        match recover(&*self.store) {
            Ok(recovered) => {
                let uploads = self.origin.uploads_numbered();
                self.origin = Origin::recover_verified(
                    self.config.clone(),
                    &recovered.durable,
                    &recovered.chunks,
                );
                // The uploads open before are gone; their numbers must not come back.
                self.origin.number_uploads_after(uploads);
                self.stopped = None;
                tracing::warn!(error = %why, "origin restarted from its durable state");
            }
            Err(e) => {
                // Still failed: stay stopped and try again on the next request.
                tracing::error!(error = %e, "origin recovery failed");
            }
        }
        Some(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sovereign_logic::content::{ChunkParams, publish};
    use sovereign_store::SqliteStore;

    /// Ask for chunk `hash`: the hash and length of the bytes sent, if any.
    async fn ask(h: &OriginHandle, hash: ChunkHash) -> Option<(ChunkHash, usize)> {
        match h.message(TowerId(1), Message::ChunkRequest { hash }).await {
            Ok(Some(Message::ChunkReply { hash: h, bytes })) if h == hash => {
                bytes.map(|b| (ChunkHash::of(&b), b.len()))
            }
            other => panic!("chunk {hash}: {other:?}"),
        }
    }

    async fn publish_doc(h: &OriginHandle, body: &[u8]) {
        let bytes = bytes::Bytes::copy_from_slice(body);
        h.publish(ItemId::new("doc"), Priority::P1, bytes)
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_upload_begun_after_a_storage_failure_never_takes_an_old_uploads_number() {
        // Goal: uploads A and B are open; B's chunk write fails and the origin rebuilds
        // itself. A new upload C is numbered after A and B, so A's next piece is refused
        // (503, retry) instead of landing in C and publishing the two mixed.
        use sovereign_store::{Faults, FaultyStore, MemDisk, MemStore};
        let faults = Faults::default();
        let store: Arc<dyn Store> = Arc::new(FaultyStore::new(
            MemStore::new(MemDisk::new()),
            faults.clone(),
        ));
        let sink: OriginSink = Arc::new(|_, _| {});
        let h = spawn(OriginConfig::default(), store, sink).unwrap();
        let begin = |name: &str| h.begin_upload(ItemId::new(name), Priority::P1);
        let a = begin("a").await.unwrap();
        let b = begin("b").await.unwrap();
        faults.set_write_errors(true);
        let noise = bytes::Bytes::from(sovereign_store::fixtures::noise(300_000));
        let failed = b.bytes(noise.clone()).await;
        assert!(
            matches!(failed, Err(PublishError::Storage(_))),
            "{failed:?}"
        );
        faults.set_write_errors(false);
        let c = begin("c").await.unwrap();
        assert!(
            c.id > a.id && c.id > b.id,
            "{:?} after {:?}, {:?}",
            c.id,
            a.id,
            b.id
        );
        let stale = a.bytes(noise.clone()).await;
        assert!(matches!(stale, Err(PublishError::Busy(_))), "{stale:?}");
        c.bytes(noise).await.unwrap();
        let entry = c.finish().await.unwrap();
        assert_eq!(entry.manifest.size, 300_000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chunks_come_from_the_store_verified_and_a_rotten_one_is_written_again() {
        // Goal: the origin keeps no chunk bytes; each reply is read from its store (SQLite
        // + chunk files) and verified first. A chunk file that rots is never sent: the
        // tower hears "not held", the origin stops claiming it, and publishing the same
        // bytes again writes it again. A restart rebuilds from the store's verified index.
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let sink: OriginSink = Arc::new(|_, _| {});
        let h = spawn(OriginConfig::default(), store.clone(), sink.clone()).unwrap();
        let body: Vec<u8> = (0..60_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let (_, chunks) = publish(
            ItemId::new("doc"),
            1,
            Priority::P1,
            &body,
            ChunkParams::default(),
        )
        .unwrap();
        assert!(chunks.len() >= 3, "{} chunks", chunks.len());
        publish_doc(&h, &body).await;
        for c in &chunks {
            assert_eq!(ask(&h, c.hash).await, Some((c.hash, c.bytes.len())));
        }
        let rotten = store.corrupt_one().unwrap().expect("a chunk file to flip");
        let store_again = store.clone();
        assert_eq!(ask(&h, rotten).await, None, "rotten bytes are never sent");
        // The node hears of the loss through its own queue: a query behind it sees it.
        assert_eq!(
            h.query(move |o, _| o.chunk_len(&rotten)).await.unwrap(),
            None
        );
        for c in chunks.iter().filter(|c| c.hash != rotten) {
            assert_eq!(ask(&h, c.hash).await, Some((c.hash, c.bytes.len())));
        }
        publish_doc(&h, &body).await;
        let again = chunks.iter().find(|c| c.hash == rotten).unwrap();
        assert_eq!(ask(&h, rotten).await, Some((rotten, again.bytes.len())));
        // A loss reported by a read from before that publish (a second reader of the
        // rotten file) finds the chunk intact now and changes nothing.
        let len = move |o: &mut Origin, _| o.chunk_len(&rotten);
        h.query(move |o, now| lost(store_again, rotten)(o, now))
            .await
            .unwrap();
        assert_eq!(h.query(len).await.unwrap(), Some(again.bytes.len() as u32));
        drop(h);
        // A restart: every chunk is held again (lengths from the store's verified index).
        let h = spawn(OriginConfig::default(), store, sink).unwrap();
        for c in &chunks {
            let len = h
                .query({
                    let hash = c.hash;
                    move |o, _| o.chunk_len(&hash)
                })
                .await
                .unwrap();
            assert_eq!(len, Some(c.bytes.len() as u32));
            assert_eq!(ask(&h, c.hash).await, Some((c.hash, c.bytes.len())));
        }
    }
}
