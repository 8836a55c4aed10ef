//! The tower's node task: the one owner of the logic's [`Tower`], turning its actions into
//! HTTP requests, store calls, probes and events, and its inputs (replies, probe results,
//! power readings, device submissions, timeouts) back into `handle_*` calls.
//!
//! Everything the HTTP handlers need from the logic goes through a [`TowerHandle`] (a
//! channel to this task), so the state machine is never shared or locked. The one
//! exception is the hottest path, planning a device read: after every step the task
//! publishes the logic's own [`ReadView`] (`Tower::refresh_read_view`: replaced only when
//! the servable set or the refusal moved) in a [`PublishedView`],
//! [`TowerHandle::plan_read`] plans from it with `ReadView::plan` — the logic's rule, not a
//! copy — and the reads' demand notes reach the logic's cache warmer in batches. What a
//! planned read answers once its chunks are judged is the logic's too
//! (`ServePlan::decide`, see `sovereign_logic::tower::read`); the outcome goes back with
//! [`TowerHandle::report_read`]. A read therefore sees the state as of the task's last step: it is ordered
//! before anything the task is doing at that moment — except behind a power reading
//! handed in through [`TowerHandle::power`]: until the task has taken it, reads go through
//! the task, as all reads did before the view. Store calls are
//! synchronous and run on this task (inside `block_in_place` on a multi-threaded runtime):
//! a write's completion is reported before the next action runs, so an fsync's `Ok`
//! reaches the logic only after the bytes are on disk — which is when the logic acks.
//!
//! Requests to the origin carry the tower's number ([`TOWER_HEADER`]), its credential
//! (`Authorization: Bearer`, from [`TowerCredential`]) and, once it trusts an origin, that
//! origin's id (`x-sovereign-expect-origin`). The origin id every answer carries
//! (`x-sovereign-origin`) is checked here (see `sovereign_logic::tower::trust`): a catalog
//! reply hands it to the logic with the entries; any other answer from an origin that
//! is not the trusted one is reported with `Tower::handle_origin_identity` and dropped —
//! a forward's receipts from a stranger never empty the outbox. A mismatch is logged at
//! ERROR. [`TowerHandle::rehome`] re-reads the credential file and orders the re-home.
//!
//! Map: [`TowerNodeConfig`], [`TowerCredential`], [`PowerSource`], [`TowerHandle`],
//! [`PublishedView`], [`NodeGone`], [`RehomeError`], [`spawn`], [`Observer`],
//! [`origin_exchange`] / [`Exchange`], [`DEMAND_PENDING_MAX`], [`DEMAND_FLUSH`].
//!
//! Not covered: HTTP routing (`api`), metrics formatting (`metrics`).

use crate::clock::Clock;
use crate::slots::FetchSlots;
use crate::transport::{Request, Transport};
use bytes::Bytes;
use hyper::http::{HeaderValue, StatusCode, header::HeaderName};
use sovereign_logic::Time;
use sovereign_logic::content::{ChunkHash, ItemId, Priority};
use sovereign_logic::io::{Action, Event, Key, TaskKind};
use sovereign_logic::protocol::{
    DeviceId, IdemKey, LinkKind, Message, Operation, OriginId, Peer, SentEntry, SubmitReply,
};
use sovereign_logic::tower::link::ProbeOutcome;
use sovereign_logic::tower::power::PowerReading;
use sovereign_logic::tower::read::{ReadOutcome, ReadView};
use sovereign_logic::tower::{Refusal, ServePlan, Tower, TowerConfig};
use sovereign_store::Store;
use sovereign_wire::{
    CatalogChangesDto, CatalogEntryDto, OpReceiptDto, OperationDto, PowerReadingDto,
};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// The header a tower names itself with in requests to the origin.
pub const TOWER_HEADER: &str = "x-sovereign-tower";

/// A tower's credential for the origin: the secret, and the file it came from (re-read by
/// [`TowerHandle::rehome`]). `Debug` never shows the secret.
#[derive(Clone)]
pub struct TowerCredential {
    secret: Arc<str>,
    file: Option<PathBuf>,
}

impl std::fmt::Debug for TowerCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TowerCredential")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl TowerCredential {
    /// A credential given as is (tests).
    pub fn secret(secret: impl Into<String>) -> TowerCredential {
        TowerCredential {
            secret: Arc::from(secret.into()),
            file: None,
        }
    }

    /// The credential in `path` (`--credential FILE`), validated.
    pub fn from_file(path: PathBuf) -> Result<TowerCredential, crate::tower_auth::CredentialError> {
        let secret = crate::tower_auth::read_credential_file(&path)?;
        Ok(TowerCredential {
            secret: Arc::from(secret),
            file: Some(path),
        })
    }
}

/// Where power telemetry comes from: a JSON file a charge controller rewrites, or an HTTP
/// endpoint answering the same JSON ([`PowerReadingDto`]).
#[derive(Clone, Debug)]
pub enum PowerSource {
    /// Read this file.
    File(PathBuf),
    /// GET this URL.
    Url(String),
}

impl std::str::FromStr for PowerSource {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(if s.starts_with("http://") || s.starts_with("https://") {
            PowerSource::Url(s.to_string())
        } else {
            PowerSource::File(PathBuf::from(s))
        })
    }
}

/// How a tower node runs.
#[derive(Clone, Debug)]
pub struct TowerNodeConfig {
    /// The logic's configuration (links, policies, switches).
    pub tower: TowerConfig,
    /// Base URL of the origin over each uplink (`http://host:port`).
    pub uplinks: BTreeMap<LinkKind, String>,
    /// Power telemetry, if any (without it the power manager is not armed).
    pub power: Option<PowerSource>,
    /// How often telemetry is read.
    pub power_interval: Duration,
    /// Seed for the logic's jitter.
    pub seed: u64,
    /// The credential sent to the origin (`None`: none; the origin refuses the tower
    /// unless it allows unauthenticated towers).
    pub credential: Option<TowerCredential>,
}

/// What the node reports to metrics and caches.
pub trait Observer: Send + Sync + 'static {
    /// An event the logic emitted; `tower` is its state right after.
    fn event(&self, event: &Event, tower: &Tower);
    /// A power reading handed to the logic.
    fn power(&self, reading: &PowerReading);
    /// Bytes of an exchange with the origin over `link` (both directions).
    fn traffic(&self, link: LinkKind, bytes: u64);
    /// After every step: the sync tasks the supervisor has parked now (readiness).
    fn parked(&self, _tasks: &[TaskKind]) {}
    /// The origin refused a request with `status` (401, 403, 412).
    fn refused(&self, _status: u16) {}
}

/// An observer that ignores everything (tests).
pub struct NoObserver;

impl Observer for NoObserver {
    fn event(&self, _: &Event, _: &Tower) {}
    fn power(&self, _: &PowerReading) {}
    fn traffic(&self, _: LinkKind, _: u64) {}
}

/// Most distinct items with demand notes waiting for the node; notes for further items
/// are dropped until it catches up (the warmer only ranks, and tracks a bounded set too).
pub const DEMAND_PENDING_MAX: usize = 4096;

/// How often the node hands waiting demand notes to the logic's cache warmer.
pub const DEMAND_FLUSH: Duration = Duration::from_millis(250);

/// The logic's read view as of the node's last step, and how many power readings handed
/// in through [`TowerHandle::power`] the logic had taken by then.
#[derive(Debug)]
pub struct PublishedView {
    /// `Tower::read_view`, kept fresh with `Tower::refresh_read_view`.
    pub read: ReadView,
    /// Readings taken (see [`TowerHandle::plan_read`]).
    pub power_done: u64,
}

/// The read side shared between the handles and the node.
struct Shared {
    view: RwLock<Arc<PublishedView>>,
    /// Reads not yet noted to the logic: item → count.
    demand: Mutex<BTreeMap<ItemId, u32>>,
    /// Readings handed in through [`TowerHandle::power`] so far.
    power_sent: AtomicU64,
    /// The credential requests to the origin carry (replaced by a re-home's re-read).
    credential: RwLock<Option<TowerCredential>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded maps are consistent after any panic (single inserts and takes).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A query's answer, delivered once the node has finished the step (see `Node::run`).
type Reply = Box<dyn FnOnce() + Send>;
type Query = Box<dyn FnOnce(&mut Tower, Time) -> Reply + Send>;

enum Input {
    /// An answer from the origin: the reply the logic takes (if any) and the origin id
    /// the answer announced.
    Reply {
        reply: Option<Message>,
        origin: Option<OriginId>,
        /// The request was a catalog poll.
        catalog: bool,
    },
    Probe(LinkKind, ProbeOutcome),
    /// A reading; `true` when it came through [`TowerHandle::power`] (counted).
    Power(PowerReading, bool),
    Submit {
        /// The device that authenticated the request.
        presenter: DeviceId,
        op: Operation,
        reply: oneshot::Sender<SubmitReply>,
    },
    Query(Query),
    /// Demand notes are waiting in `Shared::demand`.
    Demand,
}

/// The node task has stopped (powered off or crashed).
#[derive(Debug, thiserror::Error)]
#[error("the tower node has stopped")]
pub struct NodeGone;

/// Why a re-home was not started.
#[derive(Debug, thiserror::Error)]
pub enum RehomeError {
    /// The credential file could not be read again.
    #[error("re-reading the credential file: {0}")]
    Credential(#[from] crate::tower_auth::CredentialError),
    /// The node is gone.
    #[error(transparent)]
    Gone(#[from] NodeGone),
}

/// A cheap, cloneable handle on the node task.
#[derive(Clone)]
pub struct TowerHandle {
    tx: mpsc::UnboundedSender<Input>,
    off: watch::Receiver<Option<bool>>,
    shared: Arc<Shared>,
}

impl TowerHandle {
    /// Queue a device operation; resolves with the tower's answer (after the fsync for an
    /// acceptance).
    pub async fn submit(
        &self,
        presenter: DeviceId,
        op: Operation,
    ) -> Result<SubmitReply, NodeGone> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Input::Submit {
                presenter,
                op,
                reply,
            })
            .map_err(|_| NodeGone)?;
        rx.await.map_err(|_| NodeGone)
    }

    /// Run `f` on the tower (on the node task) and return its result.
    pub async fn query<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tower, Time) -> R + Send + 'static,
    ) -> Result<R, NodeGone> {
        let (tx, rx) = oneshot::channel();
        let q: Query = Box::new(move |t, now| {
            let r = f(t, now);
            Box::new(move || {
                let _ = tx.send(r);
            })
        });
        self.tx.send(Input::Query(q)).map_err(|_| NodeGone)?;
        rx.await.map_err(|_| NodeGone)
    }

    /// A chunk read from the store failed verification: the tower quarantines it.
    pub fn report_corrupt(&self, hash: ChunkHash) {
        self.report_read(ReadOutcome::Repair { rotten: vec![hash] });
    }

    /// What a planned read came to (`ServePlan::decide`): the tower quarantines every
    /// chunk a repair lists and fetches it again (`Tower::handle_read_result`).
    pub fn report_read(&self, outcome: ReadOutcome) {
        if outcome == ReadOutcome::Serve {
            return;
        }
        let _ = self.tx.send(Input::Query(Box::new(move |t, now| {
            t.handle_read_result(now, &outcome);
            Box::new(|| {})
        })));
    }

    /// Plan a device read of `item` as `Tower::serve_plan` would, without a round trip to
    /// the node: from the [`ReadView`] it published after its last step. The read is
    /// noted for the cache warmer (in a batch the node applies within [`DEMAND_FLUSH`]),
    /// whether or not it can be served, as `serve_plan` does.
    ///
    /// While a reading handed in through [`TowerHandle::power`] waits for the node, the
    /// read goes through the node instead (behind that reading, as before the view
    /// existed): whoever pushed a shutdown reading never sees a read served after it.
    pub async fn plan_read(&self, item: &ItemId) -> Result<Result<ServePlan, Refusal>, NodeGone> {
        if self.tx.is_closed() {
            return Err(NodeGone);
        }
        let view = self.read_view();
        if view.power_done < self.shared.power_sent.load(Ordering::SeqCst) {
            let it = item.clone();
            return self.query(move |t, now| t.serve_plan(now, &it)).await;
        }
        self.note_demand(item);
        Ok(view.read.plan(item))
    }

    fn note_demand(&self, item: &ItemId) {
        let mut pending = lock(&self.shared.demand);
        let mut half_full = false;
        if let Some(n) = pending.get_mut(item) {
            *n = n.saturating_add(1);
        } else if pending.len() < DEMAND_PENDING_MAX {
            pending.insert(item.clone(), 1);
            half_full = pending.len() == DEMAND_PENDING_MAX / 2;
        } else {
            tracing::debug!(item = %item.0, "demand note dropped: too many items pending");
        }
        drop(pending);
        // The node takes the notes every DEMAND_FLUSH (no wake-up per read), or at once when
        // many distinct items pile up.
        if half_full {
            let _ = self.tx.send(Input::Demand);
        }
    }

    /// The view reads are planned from now.
    pub fn read_view(&self) -> Arc<PublishedView> {
        self.shared
            .view
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Hand the tower a power reading (telemetry pushed by chaos tooling or tests).
    pub fn power(&self, reading: PowerReading) {
        // Counted before it is sent: a read from now on waits for it (see `plan_read`).
        self.shared.power_sent.fetch_add(1, Ordering::SeqCst);
        let _ = self.tx.send(Input::Power(reading, true));
    }

    /// Resolves once the logic powered the tower off; `Some(clean)`.
    pub async fn powered_off(&self) -> bool {
        let mut off = self.off.clone();
        loop {
            if let Some(clean) = *off.borrow_and_update() {
                return clean;
            }
            if off.changed().await.is_err() {
                return false;
            }
        }
    }

    /// Whether the logic powered the tower off.
    pub fn is_off(&self) -> bool {
        self.off.borrow().is_some()
    }

    /// An operator re-homes the tower: re-read the credential file (if the credential
    /// came from one; a new origin issues a new credential), then let the logic adopt the
    /// origin that answers next once its catalog is reconciled. Returns what happened to
    /// the credential: `reloaded`, `unchanged` (same secret) or `none` (no file).
    pub async fn rehome(&self) -> Result<&'static str, RehomeError> {
        let file = self
            .shared
            .credential
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|c| c.file.clone());
        let outcome = match file {
            Some(path) => {
                let fresh = crate::tower_node::blocking(|| TowerCredential::from_file(path))?;
                let mut slot = self
                    .shared
                    .credential
                    .write()
                    .unwrap_or_else(|p| p.into_inner());
                let same = slot.as_ref().is_some_and(|c| c.secret == fresh.secret);
                *slot = Some(fresh);
                if same { "unchanged" } else { "reloaded" }
            }
            None => "none",
        };
        self.query(|t, now| t.rehome(now)).await?;
        Ok(outcome)
    }
}

struct Node {
    tower: Tower,
    store: Arc<dyn Store>,
    transport: Arc<dyn Transport>,
    clock: Clock,
    config: TowerNodeConfig,
    tx: mpsc::UnboundedSender<Input>,
    waiters: BTreeMap<IdemKey, VecDeque<(DeviceId, oneshot::Sender<SubmitReply>)>>,
    sink: Arc<dyn Observer>,
    off: watch::Sender<Option<bool>>,
    shared: Arc<Shared>,
    /// Readings from [`TowerHandle::power`] handed to the logic so far.
    power_done: u64,
    /// The submission being handled right now: its immediate answer goes to it.
    current: Option<(IdemKey, DeviceId, oneshot::Sender<SubmitReply>)>,
    /// Chunk fetches under way with the origin on each uplink, at most
    /// [`ORIGIN_EXCHANGES_MAX`]: each holds a connection, and an origin closes
    /// connections past its per-client limit (64 by default) with a 429. Waiting fetches
    /// get a slot by class, P0 first ([`FetchSlots`]).
    slots: BTreeMap<LinkKind, Arc<FetchSlots>>,
}

/// The most chunk fetches a tower has under way with its origin on one uplink (catalog
/// polls, forwards and probes aside: one of each at a time, and they must not wait behind
/// data). Half the origin's default connections per client, with room for those and a
/// restart's lingering connections; the logic's fetch window (up to 64 requests) queues
/// here, P0 first ([`FetchSlots`]), each fetch for at most its request timeout.
pub const ORIGIN_EXCHANGES_MAX: usize = 32;

/// Recover the tower from `store` and start its node task. Returns the handle; the task
/// runs until the logic powers the tower off or every handle is dropped.
pub fn spawn(
    config: TowerNodeConfig,
    store: Arc<dyn Store>,
    transport: Arc<dyn Transport>,
    sink: Arc<dyn Observer>,
) -> Result<TowerHandle, sovereign_store::StoreError> {
    let clock = Clock::start();
    // The lean start-up: the store verifies each chunk file in turn and hands over only
    // lengths (all the logic keeps of a held chunk), so memory does not grow with content.
    let mut recovered = blocking(|| store.recover_index())?;
    for hash in &recovered.quarantined {
        tracing::warn!(chunk = %hash, "corrupt chunk quarantined at start-up");
    }
    // Chunks no committed entry names: a sync whose entry never committed, an old
    // version the entry moved past. The tower cannot serve them; they only take space.
    match blocking(|| sovereign_store::collect_garbage(&*store, &mut recovered)) {
        Ok(g) if g.chunks > 0 => tracing::warn!(
            chunks = g.chunks,
            bytes = g.bytes,
            "garbage-collected chunks no committed entry names"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "chunk garbage collection failed; going on"),
    }
    let mut tcfg = config.tower.clone();
    tcfg.links = config.uplinks.keys().copied().collect();
    tcfg.power_managed = tcfg.power_managed && config.power.is_some();
    let tower = Tower::recover_verified(
        tcfg,
        config.seed,
        clock.now(),
        &recovered.durable,
        &recovered.chunks,
    );
    let (tx, rx) = mpsc::unbounded_channel();
    let (off_tx, off_rx) = watch::channel(None);
    let shared = Arc::new(Shared {
        view: RwLock::new(Arc::new(PublishedView {
            read: tower.read_view(),
            power_done: 0,
        })),
        demand: Mutex::new(BTreeMap::new()),
        power_sent: AtomicU64::new(0),
        credential: RwLock::new(config.credential.clone()),
    });
    if let Some(expected) = tower.trusted_origin() {
        tracing::info!(origin = %expected, "trusting the origin remembered in the store");
    } else if tower.rehoming() {
        tracing::warn!(
            "a re-home was in progress: the next origin to answer will be reconciled with"
        );
    }
    if let Some(source) = config.power.clone() {
        tokio::spawn(poll_power(
            source,
            config.power_interval,
            transport.clone(),
            tx.clone(),
        ));
    }
    let node = Node {
        tower,
        store,
        transport,
        clock,
        config,
        tx: tx.clone(),
        waiters: BTreeMap::new(),
        sink,
        off: off_tx,
        shared: shared.clone(),
        power_done: 0,
        current: None,
        slots: BTreeMap::new(),
    };
    tokio::spawn(node.run(rx));
    tokio::spawn(flush_demand(tx.downgrade(), shared.clone()));
    Ok(TowerHandle {
        tx,
        off: off_rx,
        shared,
    })
}

/// The most inputs one step of the node takes before it performs their actions.
const INPUT_BATCH_MAX: usize = 256;

/// Run a blocking store call: inside `block_in_place` on a multi-threaded runtime (so the
/// other workers keep serving), directly on a current-thread one (turmoil).
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Run a blocking call that answers through a channel of its own: on a blocking thread on
/// a multi-threaded runtime (the caller goes on meanwhile), directly on a current-thread
/// one. Under turmoil a thread of its own would finish at a wall-clock moment, so when its
/// answer arrived, in virtual time, would depend on the machine's load, not on the seed.
pub fn detached(f: impl FnOnce() + Send + 'static) {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
            tokio::task::spawn_blocking(f);
        }
        _ => f(),
    }
}

impl Node {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Input>) {
        loop {
            self.drain();
            self.publish_view();
            self.sink.parked(&self.tower.parked(self.clock.now()));
            if self.off.borrow().is_some() {
                break;
            }
            let deadline = self.tower.poll_timeout().map(|t| self.clock.instant(t));
            let input = match deadline {
                Some(at) => tokio::select! {
                    biased;
                    input = rx.recv() => input,
                    () = tokio::time::sleep_until(at) => {
                        let now = self.clock.now();
                        self.tower.handle_timeout(now);
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            let Some(input) = input else { break };
            self.handle_input(input);
            // Take what else has arrived before the step's I/O runs: one fsync then covers
            // the writes of every reply in the batch (group commit across inputs; a
            // sync's chunk replies arrive many at a time).
            for _ in 1..INPUT_BATCH_MAX {
                match rx.try_recv() {
                    Ok(input) => self.handle_input(input),
                    Err(_) => break,
                }
            }
        }
        tracing::info!("tower node stopped");
    }

    /// One input to the logic (its actions wait for the next [`Node::drain`], unless the
    /// input needs its answer at once).
    fn handle_input(&mut self, input: Input) {
        let now = self.clock.now();
        match input {
            Input::Reply {
                reply,
                origin,
                catalog,
            } => self.on_reply(now, reply, origin, catalog),
            Input::Probe(link, outcome) => self.tower.handle_probe(now, link, outcome),
            Input::Power(reading, counted) => {
                self.sink.power(&reading);
                self.tower.handle_power(now, reading);
                if counted {
                    self.power_done += 1;
                }
            }
            Input::Submit {
                presenter,
                op,
                reply,
            } => {
                // The device is who authenticated, never what the body claims: the
                // logic refuses a key or operation that is not the presenter's.
                let key = op.key.clone();
                let device = presenter;
                self.current = Some((key, device, reply));
                self.tower
                    .handle_message(now, Peer::Device(device), Message::SubmitOp { op });
                self.drain();
                if let Some((key, device, reply)) = self.current.take() {
                    // No immediate answer: wait for the fsync.
                    self.waiters
                        .entry(key)
                        .or_default()
                        .push_back((device, reply));
                }
            }
            Input::Query(q) => {
                // Answer only once the step's actions ran and the view shows its
                // effect: a caller that saw the answer never plans a read from older
                // state.
                let reply = q(&mut self.tower, now);
                self.drain();
                self.publish_view();
                reply();
            }
            Input::Demand => {
                let notes = std::mem::take(&mut *lock(&self.shared.demand));
                for (item, n) in notes {
                    for _ in 0..n {
                        self.tower.note_request(now, &item);
                    }
                }
            }
        }
    }

    /// An answer from the origin: check who answered (see the module doc), then hand the
    /// reply to the logic.
    fn on_reply(
        &mut self,
        now: Time,
        reply: Option<Message>,
        origin: Option<OriginId>,
        catalog: bool,
    ) {
        let before = self.tower.origin_mismatch();
        let trusted = self.tower.trusted_origin();
        // A catalog poll refused (401/403/412) by another origin than the trusted one is
        // that origin's (empty) answer: the logic notes the mismatch and its poll ends
        // there, instead of timing out into the breaker.
        let reply = match reply {
            None if catalog && trusted.is_some() && origin.is_some() && origin != trusted => {
                Some(Message::CatalogReply {
                    entries: Vec::new(),
                    origin,
                    more: false,
                })
            }
            other => other,
        };
        match reply {
            // The logic compares the catalog's origin itself (and adopts the first one).
            Some(Message::CatalogReply { entries, more, .. }) => self.tower.handle_message(
                now,
                Peer::Origin,
                Message::CatalogReply {
                    entries,
                    origin,
                    more,
                },
            ),
            other => {
                if trusted.is_some() {
                    self.tower.handle_origin_identity(now, origin);
                }
                match other {
                    Some(msg) if trusted.is_none() || trusted == origin => {
                        self.tower.handle_message(now, Peer::Origin, msg)
                    }
                    Some(msg) => tracing::error!(
                        expected = ?trusted.map(|o| o.to_string()),
                        found = ?origin.map(|o| o.to_string()),
                        reply = sync_job_reply(&msg),
                        "reply from an origin that is not the trusted one dropped"
                    ),
                    None => {}
                }
            }
        }
        let after = self.tower.origin_mismatch();
        if after != before {
            match after {
                Some((expected, found)) => tracing::error!(
                    expected = %expected,
                    found = %found.map_or_else(|| "none".to_string(), |f| f.to_string()),
                    "ORIGIN MISMATCH: another origin answers at the uplinks' address; syncing stopped (nothing adopted, fetched or forwarded), serving what this tower holds; re-home with POST /admin/rehome if the change is intended"
                ),
                None => tracing::warn!("the trusted origin answers again; syncing resumed"),
            }
        }
    }

    /// Publish a new [`PublishedView`] if the logic's read view moved
    /// (`Tower::refresh_read_view`), or a counted power reading was taken.
    fn publish_view(&mut self) {
        let current = self
            .shared
            .view
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let fresh = self.tower.refresh_read_view(&current.read);
        if fresh.is_none() && current.power_done == self.power_done {
            return;
        }
        let view = Arc::new(PublishedView {
            read: fresh.unwrap_or_else(|| current.read.clone()),
            power_done: self.power_done,
        });
        *self.shared.view.write().unwrap_or_else(|p| p.into_inner()) = view;
    }

    /// Perform every pending action, feeding completions back, until the logic is quiet.
    /// The fsyncs asked for on the way are one store fsync once the queue is empty: it
    /// commits every write performed before it, so it covers each of them (a failure
    /// fails each).
    fn drain(&mut self) {
        let mut fsyncs = Vec::new();
        loop {
            let Some(action) = self.tower.poll_action() else {
                if fsyncs.is_empty() {
                    break;
                }
                let r = blocking(|| self.store.fsync()).map_err(|e| e.to_string());
                if let Err(e) = &r {
                    tracing::error!(error = %e, "store fsync failed");
                }
                let now = self.clock.now();
                for id in std::mem::take(&mut fsyncs) {
                    self.tower.handle_fsync_done(now, id, r.clone());
                }
                continue;
            };
            match action {
                Action::Send { to, via, msg } => self.send(to, via, msg),
                Action::Write { id, record } => {
                    let r = blocking(|| self.store.write(&record)).map_err(|e| e.to_string());
                    if let Err(e) = &r {
                        tracing::error!(error = %e, "store write failed");
                    }
                    let now = self.clock.now();
                    self.tower.handle_write_done(now, id, r);
                }
                Action::Delete { id, key } => {
                    let r = blocking(|| self.store.delete(&key)).map_err(|e| e.to_string());
                    if let Err(e) = &r {
                        tracing::error!(error = %e, "store delete failed");
                    }
                    let now = self.clock.now();
                    self.tower.handle_write_done(now, id, r);
                    if let Key::Chunk(_) = key {
                        // (the serving cache is invalidated on ChunkQuarantined)
                    }
                }
                Action::Fsync { id } => fsyncs.push(id),
                Action::Probe { link } => self.probe(link),
                Action::Emit(event) => {
                    log_event(&event);
                    self.sink.event(&event, &self.tower);
                }
                Action::PowerOff { clean } => {
                    tracing::warn!(clean, "the power manager switched the tower off");
                    let _ = self.off.send(Some(clean));
                }
                // The origin's alone.
                Action::ReadChunk { .. } => {}
            }
        }
    }

    fn send(&mut self, to: Peer, via: Option<LinkKind>, msg: Message) {
        match (to, msg) {
            (Peer::Device(device), Message::SubmitReply { key, reply }) => {
                self.answer(device, key, reply)
            }
            (Peer::Origin, msg) => {
                let link = via
                    .or_else(|| self.tower.active_link())
                    .or_else(|| self.config.uplinks.keys().next().copied());
                let Some(base) = link.and_then(|l| self.config.uplinks.get(&l)).cloned() else {
                    tracing::warn!("no uplink to send on; the logic's timeout will retry");
                    return;
                };
                let tower_id = self.tower.config().id.0;
                let timeout = self.tower.config().request_timeout;
                let auth = OriginAuth {
                    credential: self
                        .shared
                        .credential
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .as_ref()
                        .map(|c| c.secret.clone()),
                    expect: self.tower.trusted_origin(),
                };
                let transport = self.transport.clone();
                let tx = self.tx.clone();
                let sink = self.sink.clone();
                // A fetch's class orders it among the waiting ones (one the logic no
                // longer has in flight waits last).
                let fetch = match &msg {
                    Message::ChunkRequest { hash } => {
                        Some(self.tower.in_flight_class(hash).unwrap_or(Priority::P3))
                    }
                    _ => None,
                };
                let slots = link.zip(fetch).map(|(l, class)| {
                    let slots = (self.slots.entry(l))
                        .or_insert_with(|| FetchSlots::new(ORIGIN_EXCHANGES_MAX));
                    (slots.clone(), class)
                });
                let up = msg.wire_size();
                let catalog = matches!(msg, Message::CatalogRequest { .. });
                // One span per sync exchange (catalog poll, chunk fetch, forward batch):
                // structured logs carry it, a tracing subscriber can export it.
                let span = tracing::info_span!(
                    "sync",
                    job = sync_job(&msg),
                    link = link.map(LinkKind::name),
                    tower = tower_id,
                    bytes_up = up,
                );
                let task = async move {
                    // A fetch waits for a slot at most its own timeout: past that the
                    // logic has given up on it (and asked again), so it is not sent.
                    let _slot = match &slots {
                        Some((s, class)) => {
                            match tokio::time::timeout(timeout, s.acquire(*class)).await {
                                Ok(slot) => Some(slot),
                                Err(_) => return,
                            }
                        }
                        None => None,
                    };
                    let ex =
                        origin_exchange(&*transport, &base, tower_id, &auth, timeout, msg).await;
                    // What crossed the link, whatever came of it.
                    if let Some(l) = link
                        && ex.wire > 0
                    {
                        sink.traffic(l, ex.wire);
                    }
                    let reply = match ex.result {
                        Ok(Some(reply)) => Some(reply),
                        Ok(None) => None,
                        Err(e) => {
                            if let ExchangeError::Status { status, .. } = &e {
                                sink.refused(status.as_u16());
                                if matches!(status.as_u16(), 401 | 403) {
                                    tracing::warn!(error = %e, "the origin refused this tower's credential");
                                } else {
                                    tracing::debug!(error = %e, "origin request failed");
                                }
                            } else {
                                tracing::debug!(error = %e, "origin request failed");
                            }
                            None
                        }
                    };
                    // Whoever answered, even with an error, said who it is.
                    if ex.responded {
                        let _ = tx.send(Input::Reply {
                            reply,
                            origin: ex.origin,
                            catalog,
                        });
                    }
                };
                tokio::spawn(tracing::Instrument::instrument(task, span));
            }
            (to, msg) => tracing::debug!(?to, ?msg, "message with no route dropped"),
        }
    }

    fn answer(&mut self, device: DeviceId, key: IdemKey, reply: SubmitReply) {
        // An answer to the submission being handled goes to it, except an acceptance an
        // earlier submission of the same key and device is still waiting for.
        let earlier_waits = matches!(reply, SubmitReply::Accepted)
            && self
                .waiters
                .get(&key)
                .is_some_and(|q| q.iter().any(|(d, _)| *d == device));
        if !earlier_waits
            && self
                .current
                .as_ref()
                .is_some_and(|(k, d, _)| *k == key && *d == device)
        {
            if let Some((_, _, tx)) = self.current.take() {
                let _ = tx.send(reply);
            }
            return;
        }
        if let Some(q) = self.waiters.get_mut(&key) {
            if let Some(pos) = q.iter().position(|(d, _)| *d == device) {
                if let Some((_, tx)) = q.remove(pos) {
                    let _ = tx.send(reply);
                }
            }
            if q.is_empty() {
                self.waiters.remove(&key);
            }
        }
    }

    fn probe(&mut self, link: LinkKind) {
        let Some(base) = self.config.uplinks.get(&link).cloned() else {
            return;
        };
        let timeout = sovereign_logic::tower::link::probe_timeout(link);
        let transport = self.transport.clone();
        let tx = self.tx.clone();
        let sink = self.sink.clone();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let req = Request::get(format!("{base}/healthz"), timeout);
            let sent = request_wire_bytes(&req);
            let result = transport.send(req).await;
            // Probes cross the link too.
            sink.traffic(link, crossed(sent, &result));
            let outcome = match result {
                Ok(r) if r.status.is_success() => ProbeOutcome::ok(started.elapsed()),
                Ok(_) | Err(_) => ProbeOutcome::failed(),
            };
            let _ = tx.send(Input::Probe(link, outcome));
        });
    }
}

fn sync_job_reply(msg: &Message) -> &'static str {
    match msg {
        Message::ChunkReply { .. } => "chunk",
        Message::ForwardReply { .. } => "forward",
        _ => "other",
    }
}

fn sync_job(msg: &Message) -> &'static str {
    match msg {
        Message::CatalogRequest { .. } => "catalog",
        Message::ChunkRequest { .. } => "chunk",
        Message::ForwardOps { .. } => "forward",
        _ => "other",
    }
}

fn log_event(event: &Event) {
    match event {
        Event::ChunkRejected { .. } | Event::ChunkQuarantined { .. } | Event::TaskParked { .. } => {
            tracing::warn!(?event, "tower event")
        }
        Event::ChunkVerified { .. } | Event::ChunkRequested { .. } | Event::Throttle { .. } => {
            tracing::trace!(?event, "tower event")
        }
        _ => tracing::info!(?event, "tower event"),
    }
}

/// Why an exchange with the origin failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// No response.
    #[error(transparent)]
    Transport(#[from] crate::transport::TransportError),
    /// A response the tower cannot use.
    #[error("origin answered {status}: {detail}")]
    Status {
        /// status
        status: StatusCode,
        /// body or decoding error
        detail: String,
    },
}

fn bad(status: StatusCode, detail: impl std::fmt::Display) -> ExchangeError {
    ExchangeError::Status {
        status,
        detail: detail.to_string().chars().take(300).collect(),
    }
}

/// What a tower presents to the origin with each request.
#[derive(Clone, Debug, Default)]
pub struct OriginAuth {
    /// The tower's credential (sent as `Authorization: Bearer`).
    pub credential: Option<Arc<str>>,
    /// The origin the tower trusts (sent as `x-sovereign-expect-origin`).
    pub expect: Option<OriginId>,
}

/// The outcome of one exchange with the origin.
#[derive(Debug)]
pub struct Exchange {
    /// Whether an HTTP answer came back (of any status).
    pub responded: bool,
    /// The origin id the answer announced in `x-sovereign-origin` (`None`: no answer,
    /// no header, or not an id).
    pub origin: Option<OriginId>,
    /// The reply as the logic's message, or why there is none.
    pub result: Result<Option<Message>, ExchangeError>,
    /// Bytes that crossed the link: the HTTP/1.1 requests sent (once they may have left:
    /// answered or timed out) and the responses received (heads and bodies as they
    /// travelled, so compressed), not TCP or TLS framing.
    pub wire: u64,
}

/// Bytes of `req` on the wire as HTTP/1.1: request line, `host`, the headers, a
/// `content-length` for a body, the blank line and the body.
pub fn request_wire_bytes(req: &Request) -> u64 {
    let rest = req
        .url
        .split_once("://")
        .map_or(req.url.as_str(), |(_, r)| r);
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    let mut n = req.method.as_str().len() + 1 + path.len() + " HTTP/1.1\r\n".len();
    n += "host: \r\n".len() + authority.len();
    n += (req.headers.iter())
        .map(|(k, v)| k.as_str().len() + 4 + v.len())
        .sum::<usize>();
    if !req.body.is_empty() {
        n += "content-length: \r\n".len() + req.body.len().to_string().len();
    }
    (n + 2 + req.body.len()) as u64
}

/// The most a chunk decodes to: FastCDC's largest maximum chunk size (what
/// `ChunkParams::validate` accepts). A zstd chunk body decoding past it is refused.
const CHUNK_DECODED_MAX: usize = 16 * 1024 * 1024;

/// Bytes an exchange put on the link: the request's `sent` bytes once it may have left
/// (answered, or timed out waiting), and the response's; nothing for a request that
/// never left (a bad URL, a refused connection, a reset).
fn crossed(
    sent: u64,
    result: &Result<crate::transport::Response, crate::transport::TransportError>,
) -> u64 {
    match result {
        Ok(r) => sent + response_wire_bytes(r),
        Err(crate::transport::TransportError::Timeout { .. }) => sent,
        Err(_) => 0,
    }
}

/// Bytes of `resp` on the wire as HTTP/1.1: status line, headers, blank line, body.
pub fn response_wire_bytes(resp: &crate::transport::Response) -> u64 {
    let reason = resp.status.canonical_reason().unwrap_or("").len();
    let mut n = "HTTP/1.1 000 \r\n".len() + reason;
    n += (resp.headers.iter())
        .map(|(k, v)| k.as_str().len() + 4 + v.len())
        .sum::<usize>();
    (n + 2 + resp.body.len()) as u64
}

/// What an exchange heard as it went: who answered (once anyone did) and the bytes that
/// crossed.
#[derive(Default)]
struct Heard {
    origin: Mutex<Option<Option<OriginId>>>,
    wire: AtomicU64,
}

impl Heard {
    fn answered(&self, origin: Option<OriginId>) {
        *self.origin.lock().unwrap_or_else(|p| p.into_inner()) = Some(origin);
    }
}

/// One tower → origin exchange: the HTTP form of `msg` (with the tower's number, its
/// credential and the origin it expects), and the reply as the logic's message (`None`
/// for messages that have no reply), with the identity of whoever answered.
pub async fn origin_exchange(
    transport: &dyn Transport,
    base: &str,
    tower: u32,
    auth: &OriginAuth,
    timeout: Duration,
    msg: Message,
) -> Exchange {
    let heard = Heard::default();
    let result = exchange(transport, base, tower, auth, timeout, msg, &heard).await;
    let seen = heard.origin.into_inner().unwrap_or_else(|p| p.into_inner());
    Exchange {
        responded: seen.is_some(),
        origin: seen.flatten(),
        result,
        wire: heard.wire.into_inner(),
    }
}

async fn exchange(
    transport: &dyn Transport,
    base: &str,
    tower: u32,
    auth: &OriginAuth,
    timeout: Duration,
    msg: Message,
    heard: &Heard,
) -> Result<Option<Message>, ExchangeError> {
    let with_auth = |mut req: Request| {
        req = req.header(
            HeaderName::from_static(TOWER_HEADER),
            HeaderValue::from(tower),
        );
        if let Some(c) = &auth.credential
            && let Ok(v) = HeaderValue::from_str(&format!("Bearer {c}"))
        {
            req = req.header(hyper::http::header::AUTHORIZATION, v);
        }
        if let Some(o) = auth.expect
            && let Ok(v) = HeaderValue::from_str(&o.to_string())
        {
            req = req.header(
                HeaderName::from_static(crate::tower_auth::EXPECT_ORIGIN_HEADER),
                v,
            );
        }
        req
    };
    let send = |req: Request, limit: usize| async move {
        let req = req.header(
            hyper::http::header::ACCEPT_ENCODING,
            HeaderValue::from_static(crate::encoding::ZSTD),
        );
        let req = with_auth(req);
        let sent = request_wire_bytes(&req);
        let result = transport.send(req).await;
        heard
            .wire
            .fetch_add(crossed(sent, &result), Ordering::Relaxed);
        let mut resp = result?;
        let zstd = (resp.headers.get(hyper::http::header::CONTENT_ENCODING))
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"zstd"));
        if zstd {
            // Decoded before anything reads it; the logic verifies the decoded bytes.
            let body =
                crate::encoding::decode(&resp.body, limit).map_err(|e| bad(resp.status, e))?;
            resp.body = body.into();
        }
        let origin = resp
            .headers
            .get(crate::tower_auth::ORIGIN_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse::<OriginId>().ok());
        Ok::<_, ExchangeError>((resp, origin))
    };
    match msg {
        Message::CatalogRequest { since_seq, changes } => {
            // `changes` only when asked: an origin from before it refuses the parameter
            // (400), and is then asked again without it.
            let whole = format!("{base}/v1/catalog?since={since_seq}");
            let url = match changes {
                true => format!("{whole}&changes=true"),
                false => whole.clone(),
            };
            let page_max = crate::transport::RESPONSE_BYTES_MAX;
            let (mut resp, mut origin) = send(Request::get(url, timeout), page_max).await?;
            if changes && resp.status == StatusCode::BAD_REQUEST {
                (resp, origin) = send(Request::get(whole, timeout), page_max).await?;
            }
            heard.answered(origin);
            if resp.status != StatusCode::OK {
                return Err(bad(resp.status, String::from_utf8_lossy(&resp.body)));
            }
            #[derive(serde::Deserialize)]
            struct Page {
                entries: Vec<CatalogEntryDto>,
                // Absent from an origin that sends every entry whole.
                #[serde(default)]
                changes: Vec<CatalogChangesDto>,
                // The header is what counts; the body's copy is for people.
                #[serde(default)]
                #[allow(dead_code)]
                origin: Option<String>,
                // Absent from an origin that cuts pages only at their entry count.
                #[serde(default)]
                more: bool,
            }
            let page: Page =
                sovereign_wire::from_json(&resp.body).map_err(|e| bad(resp.status, e))?;
            let mut entries = (page.entries.iter())
                .map(|e| e.to_entry().map(SentEntry::Whole))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(resp.status, e))?;
            for c in &page.changes {
                let (seq, changes) = c.to_changes().map_err(|e| bad(resp.status, e))?;
                entries.push(SentEntry::Changes { seq, changes });
            }
            // The logic takes them in seq order.
            entries.sort_by_key(SentEntry::seq);
            Ok(Some(Message::CatalogReply {
                entries,
                origin,
                more: page.more,
            }))
        }
        Message::ChunkRequest { hash } => {
            let req = Request::get(format!("{base}/v1/chunks/{hash}"), timeout);
            let (resp, origin) = send(req, CHUNK_DECODED_MAX).await?;
            heard.answered(origin);
            match resp.status {
                // Unverified here: the logic verifies before it keeps anything.
                StatusCode::OK => Ok(Some(Message::ChunkReply {
                    hash,
                    bytes: Some(resp.body),
                })),
                StatusCode::NOT_FOUND => Ok(Some(Message::ChunkReply { hash, bytes: None })),
                s => Err(bad(s, String::from_utf8_lossy(&resp.body))),
            }
        }
        Message::ForwardOps { ops } => {
            #[derive(serde::Serialize)]
            struct Batch {
                ops: Vec<OperationDto>,
            }
            let body = serde_json::to_vec(&Batch {
                ops: ops.iter().map(OperationDto::from).collect(),
            })
            .map_err(|e| bad(StatusCode::BAD_REQUEST, e))?;
            let req = Request::post_json(format!("{base}/v1/forward"), body, timeout);
            let (resp, origin) = send(req, crate::transport::RESPONSE_BYTES_MAX).await?;
            heard.answered(origin);
            if resp.status != StatusCode::OK {
                return Err(bad(resp.status, String::from_utf8_lossy(&resp.body)));
            }
            #[derive(serde::Deserialize)]
            struct Receipts {
                receipts: Vec<OpReceiptDto>,
            }
            let r: Receipts =
                sovereign_wire::from_json(&resp.body).map_err(|e| bad(resp.status, e))?;
            let receipts = r
                .receipts
                .iter()
                .map(|r| r.to_receipt())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(resp.status, e))?;
            Ok(Some(Message::ForwardReply { receipts }))
        }
        other => {
            tracing::debug!(?other, "not an upstream message");
            Ok(None)
        }
    }
}

/// Every [`DEMAND_FLUSH`], tell the node when demand notes wait. Holds the channel weakly
/// (the node still stops once every handle is gone) and stops with the node.
async fn flush_demand(tx: mpsc::WeakUnboundedSender<Input>, shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(DEMAND_FLUSH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(tx) = tx.upgrade() else { return };
        if !lock(&shared.demand).is_empty() && tx.send(Input::Demand).is_err() {
            return;
        }
    }
}

async fn poll_power(
    source: PowerSource,
    every: Duration,
    transport: Arc<dyn Transport>,
    tx: mpsc::UnboundedSender<Input>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match read_power(&source, &*transport).await {
            Ok(reading) => {
                if tx.send(Input::Power(reading, false)).is_err() {
                    return;
                }
            }
            // Silence is information: the logic's watchdog treats missing telemetry as a
            // low battery after its timeout.
            Err(e) => tracing::warn!(error = %e, "power telemetry unreadable"),
        }
    }
}

/// Read one power reading from `source`.
pub async fn read_power(
    source: &PowerSource,
    transport: &dyn Transport,
) -> Result<PowerReading, String> {
    let (bytes, what): (Bytes, String) = match source {
        PowerSource::File(path) => {
            // Read with a cap: a reading is a few dozen bytes, and the path may be anything.
            let p = path.clone();
            let read = tokio::task::spawn_blocking(move || {
                sovereign_wire::input::read_capped(&p, 64 * 1024, "--power-telemetry file")
            });
            let bytes = read.await.map_err(|e| e.to_string())?;
            (
                bytes.map_err(|e| e.to_string())?.into(),
                path.display().to_string(),
            )
        }
        PowerSource::Url(url) => {
            let resp = transport
                .send(Request::get(url.clone(), Duration::from_secs(2)))
                .await
                .map_err(|e| e.to_string())?;
            if !resp.status.is_success() {
                return Err(format!("{url}: status {}", resp.status));
            }
            (resp.body, url.clone())
        }
    };
    let dto: PowerReadingDto =
        sovereign_wire::from_json(&bytes).map_err(|e| format!("{what}: {e}"))?;
    dto.to_reading().map_err(|e| format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{BoxFuture, Response, TransportError};
    use sovereign_logic::protocol::TowerId;
    use sovereign_logic::tower::power::UpsState;
    use sovereign_store::{MemDisk, MemStore};

    /// Every exchange with the origin fails: no uplink ever comes up.
    struct Unreachable;

    impl Transport for Unreachable {
        fn send(&self, req: Request) -> BoxFuture<Result<Response, TransportError>> {
            Box::pin(async move {
                Err(TransportError::Failed {
                    url: req.url,
                    reason: "unreachable (test)".into(),
                })
            })
        }
    }

    fn node() -> TowerHandle {
        let tower = TowerConfig::new(TowerId(1), &[LinkKind::Fibre]);
        let config = TowerNodeConfig {
            tower,
            uplinks: [(LinkKind::Fibre, "http://127.0.0.1:9".to_string())].into(),
            // Armed, but read from a file that never appears: readings come from tests.
            power: Some(PowerSource::File(PathBuf::from("/nonexistent/power.json"))),
            power_interval: Duration::from_secs(3600),
            seed: 7,
            credential: None,
        };
        let store: Arc<dyn Store> = Arc::new(MemStore::new(MemDisk::new()));
        spawn(config, store, Arc::new(Unreachable), Arc::new(NoObserver)).expect("spawn")
    }

    /// `plan_read` and the logic's own `serve_plan`, asked right after each other.
    async fn both(h: &TowerHandle, item: &str) -> (Result<(), Refusal>, Result<(), Refusal>) {
        let item = ItemId::new(item);
        let fast = h.plan_read(&item).await.expect("node runs").map(|_| ());
        let it = item.clone();
        let slow = h
            .query(move |t, now| t.serve_plan(now, &it).map(|_| ()))
            .await
            .expect("node runs");
        (fast, slow)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_planned_from_the_view_follow_the_logic_and_note_demand() {
        let h = node();
        let (fast, slow) = both(&h, "news").await;
        assert_eq!(fast, Err(Refusal::NotHeld));
        assert_eq!(fast, slow);

        // Notes are batched, and the node takes them within DEMAND_FLUSH.
        for _ in 0..5 {
            let _ = h.plan_read(&ItemId::new("news")).await;
        }
        // (six with the first plan_read above, unless a flush took that one already)
        let pending = lock(&h.shared.demand).get(&ItemId::new("news")).copied();
        assert!(matches!(pending, Some(5 | 6)), "{pending:?}");
        tokio::time::sleep(DEMAND_FLUSH * 3).await;
        assert!(
            lock(&h.shared.demand).is_empty(),
            "the node took the demand notes"
        );

        // A reading below the shutdown threshold: the very next read is refused as
        // powered down (it waits behind the reading), and so is every later one.
        h.power(PowerReading {
            soc_permille: 100,
            solar_mw: 0,
            load_mw: 10_000,
            ups: UpsState::OnBattery,
        });
        for _ in 0..2 {
            match h.plan_read(&ItemId::new("news")).await {
                Ok(r) => assert_eq!(r.map(|_| ()), Err(Refusal::PoweredDown)),
                Err(NodeGone) => assert!(h.is_off()),
            }
        }
        let mode = h.query(|t, _| t.power_mode()).await;
        if let Ok(mode) = mode {
            assert!(
                mode >= sovereign_logic::io::PowerMode::ShuttingDown,
                "{mode}"
            );
            assert_eq!(h.read_view().power_done, 1, "the view counts the reading");
        }
        match h.plan_read(&ItemId::new("news")).await {
            Ok(r) => assert_eq!(r.map(|_| ()), Err(Refusal::PoweredDown)),
            // The shutdown may already have completed: the node is gone.
            Err(NodeGone) => assert!(h.is_off()),
        }
    }

    /// An origin from before `changes`: 400 for the parameter, an empty page otherwise.
    struct OldOrigin(Mutex<Vec<String>>);

    impl Transport for OldOrigin {
        fn send(&self, req: Request) -> BoxFuture<Result<Response, TransportError>> {
            self.0.lock().unwrap().push(req.url.clone());
            let (status, body) = match req.url.contains("changes") {
                true => (
                    StatusCode::BAD_REQUEST,
                    r#"{"error":"unknown","field":"changes"}"#,
                ),
                false => (StatusCode::OK, r#"{"entries":[]}"#),
            };
            Box::pin(async move {
                Ok(Response {
                    status,
                    headers: hyper::http::HeaderMap::new(),
                    body: body.into(),
                })
            })
        }
    }

    #[tokio::test]
    async fn an_origin_that_refuses_changes_is_asked_again_without() {
        // Goal: a new tower still syncs from an origin that predates `changes`; a poll
        // that asks whole does not name the parameter at all; both requests count.
        let t = OldOrigin(Mutex::new(Vec::new()));
        let auth = OriginAuth {
            credential: None,
            expect: None,
        };
        let ask = |changes| Message::CatalogRequest {
            since_seq: 7,
            changes,
        };
        let second = Duration::from_secs(1);
        let ex = origin_exchange(&t, "http://o", 1, &auth, second, ask(true)).await;
        assert!(
            matches!(ex.result, Ok(Some(Message::CatalogReply { .. }))),
            "{ex:?}"
        );
        let urls = t.0.lock().unwrap().clone();
        let want = [
            "http://o/v1/catalog?since=7&changes=true",
            "http://o/v1/catalog?since=7",
        ];
        assert_eq!(urls, want);
        assert!(ex.wire > 2 * 40, "{} bytes", ex.wire);
        t.0.lock().unwrap().clear();
        let ex = origin_exchange(&t, "http://o", 1, &auth, second, ask(false)).await;
        assert!(ex.result.is_ok());
        assert_eq!(t.0.lock().unwrap().as_slice(), &want[1..]);
    }
}
