//! The turmoil harness for the real servers: simulated TCP under the real hyper client and
//! the real axum routers, an in-memory disk per host that survives crashes, power cuts at
//! an fsync, a driver that applies a schedule of network faults and crashes, and the
//! clients that play the operator, devices, readers and the final checker.
//!
//! Everything runs on the test's thread (turmoil steps each host's current-thread runtime
//! in turn), so the clients share what they observe through an `Rc<RefCell<Obs>>`.
//!
//! Map: [`SimConnector`] / [`SimConn`] (hyper over turmoil TCP), [`SimListener`] (axum over
//! turmoil TCP), [`Disk`] / [`HostStore`] / [`Cut`] (crash and power-cut semantics),
//! [`Net`] (topology and driver), [`Act`] (scheduled faults), [`Obs`] / [`Report`] (what
//! the clients saw), the client tasks [`operator`], [`device`], [`reader`], [`checker`],
//! and [`assert_invariants`].
//!
//! Not covered: TLS, HTTP/2, torn writes (a power cut drops every unsynced change, never
//! some of them), clock skew between hosts.
#![allow(dead_code)]

use bytes::Bytes;
use hyper::Uri;
use hyper::http::{HeaderValue, Method, StatusCode, header};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use sovereign_logic::content::ChunkHash;
use sovereign_logic::io::{Key, Record};
use sovereign_logic::origin::OriginConfig;
use sovereign_logic::protocol::{LinkKind, TowerId};
use sovereign_logic::tower::TowerConfig;
use sovereign_server::audit::AuditLog;
use sovereign_server::auth::Tokens;
use sovereign_server::serve::{origin_parts, tower_parts};
use sovereign_server::tower_node::TowerNodeConfig;
use sovereign_server::transport::{HyperTransport, Request, Response, Transport};
use sovereign_store::{Faults, MemDisk, MemStore, Recovered, Store, StoreError};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// The origin's tower-facing port.
pub const ORIGIN_PORT: u16 = 8090;
/// The origin's admin port.
pub const ORIGIN_ADMIN_PORT: u16 = 8190;
/// A tower's device port.
pub const TOWER_PORT: u16 = 8080;
/// A tower's admin port.
pub const TOWER_ADMIN_PORT: u16 = 8180;
/// Admin tokens.
pub const VIEWER: &str = "viewer-token-0123456789ab";
/// Admin tokens.
pub const OPERATOR: &str = "operator-token-0123456789";
/// Admin tokens.
pub const CHAOS: &str = "chaos-token-0123456789abc";
/// The towers of every topology.
pub const TOWERS: [&str; 2] = ["tower1", "tower2"];

fn tokens() -> Tokens {
    Tokens::new(
        Some(VIEWER.to_string()),
        Some(OPERATOR.to_string()),
        Some(CHAOS.to_string()),
    )
    .expect("valid test tokens")
}

// ----- hyper and axum over turmoil's TCP ------------------------------------------------

/// A hyper-util connector that dials turmoil's simulated TCP (the URI's host is a turmoil
/// host name).
#[derive(Clone, Copy, Debug, Default)]
pub struct SimConnector;

impl tower_service::Service<Uri> for SimConnector {
    type Response = SimConn;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<SimConn>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("no host in {uri}"))
                })?
                .to_string();
            let port = uri.port_u16().unwrap_or(80);
            let stream = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
            Ok(SimConn(TokioIo::new(stream)))
        })
    }
}

/// A simulated TCP connection as hyper sees it.
pub struct SimConn(TokioIo<turmoil::net::TcpStream>);

impl Connection for SimConn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for SimConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for SimConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The real HTTP client over simulated TCP.
pub fn sim_transport() -> HyperTransport<SimConnector> {
    HyperTransport::with_connector(SimConnector)
}

/// A turmoil listener that `axum::serve` accepts.
pub struct SimListener(turmoil::net::TcpListener);

impl SimListener {
    /// Bind `0.0.0.0:port` on the current host.
    pub async fn bind(port: u16) -> io::Result<SimListener> {
        Ok(SimListener(
            turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?,
        ))
    }
}

impl axum::serve::Listener for SimListener {
    type Io = turmoil::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok(pair) => return pair,
                Err(e) => {
                    tracing::debug!(error = %e, "simulated accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

async fn serve_pair(
    public: axum::Router,
    port: u16,
    admin: axum::Router,
    admin_port: u16,
) -> turmoil::Result {
    let p = axum::serve(SimListener::bind(port).await?, public);
    let a = axum::serve(SimListener::bind(admin_port).await?, admin);
    tokio::try_join!(async { p.await }, async { a.await })?;
    Ok(())
}

// ----- disks, crashes and power cuts ----------------------------------------------------

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
    fn arm(&self, covering: Covering, skip: u32, down: Duration) {
        let mut c = self.lock();
        c.armed = Some((covering, skip));
        c.down = down;
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
    fn store(&self) -> HostStore {
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
    }
}

fn kind_name(c: Covering) -> &'static str {
    match c {
        Covering::Outbox => "outbox",
        Covering::Chunk => "chunk",
        Covering::Applied => "applied",
        Covering::Entry => "entry",
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
    fn recover(&self) -> Result<Recovered, StoreError> {
        self.alive()?;
        self.inner.recover()
    }
    fn chunk(&self, hash: &ChunkHash) -> Result<Option<Bytes>, StoreError> {
        self.alive()?;
        self.inner.chunk(hash)
    }
}

// ----- topology and driver --------------------------------------------------------------

/// How the servers are configured in one run.
#[derive(Clone)]
pub struct Setup {
    /// turmoil's seed (network latencies, runtime scheduling).
    pub seed: u64,
    /// Virtual time limit.
    pub duration: Duration,
    /// Global one-way latency bounds.
    pub latency: (Duration, Duration),
    /// Changes to every tower's logic configuration (plants go here).
    pub tower: fn(&mut TowerConfig),
    /// The origin's logic configuration.
    pub origin: OriginConfig,
}

impl Setup {
    /// Defaults: 240 s of virtual time, 1–20 ms links.
    pub fn new(seed: u64) -> Setup {
        Setup {
            seed,
            duration: Duration::from_secs(240),
            latency: (Duration::from_millis(1), Duration::from_millis(20)),
            tower: |_| {},
            origin: OriginConfig::default(),
        }
    }
}

/// A scheduled change to the world.
#[derive(Clone, Debug)]
pub enum Act {
    /// Drop everything between two hosts.
    Partition(&'static str, &'static str),
    /// Drop what `from` sends to `to` (replies lost, requests delivered).
    PartitionOneway(&'static str, &'static str),
    /// Heal both directions.
    Repair(&'static str, &'static str),
    /// Fixed one-way latency on a link.
    Latency(&'static str, &'static str, Duration),
    /// `kill -9`: the process stops, its unsynced changes vanish.
    Crash(&'static str),
    /// Start a crashed host again.
    Bounce(&'static str),
    /// The power goes off at the next fsync covering `covering` (after `skip` such
    /// fsyncs); the host comes back `down` later.
    PowerCut {
        /// the host
        host: &'static str,
        /// what the fatal fsync covers
        covering: Covering,
        /// fsyncs of that kind let through first
        skip: u32,
        /// how long the host stays down
        down: Duration,
    },
}

/// What the clients observed (shared by every client and the driver).
#[derive(Debug, Default)]
pub struct Obs {
    /// `(virtual ms, event)` in the order observed.
    pub trace: Vec<(u64, String)>,
    /// Publishes the origin acknowledged (201): item → versions with their SHA-256.
    pub published: BTreeMap<String, Vec<(u64, String)>>,
    /// Every operation a device submitted.
    pub ops: BTreeMap<String, OpRecord>,
    /// Every read a reader made.
    pub reads: Vec<ReadRecord>,
    /// Bodies that did not hash to what they claimed (must stay empty).
    pub corrupt: Vec<String>,
    /// When each `(tower, item, version)` first appeared in the tower's catalog.
    pub first_seen: BTreeMap<(String, String, u64), u64>,
    /// Devices that finished their work.
    pub devices_done: usize,
    /// Devices started.
    pub devices: usize,
    /// Host (re)starts and power cuts, as the driver did them.
    pub restarts: BTreeMap<String, u32>,
    /// The checker's findings.
    pub report: Option<Report>,
}

/// A device operation.
#[derive(Clone, Debug)]
pub struct OpRecord {
    /// The tower it was submitted to.
    pub tower: String,
    /// Its contribution.
    pub amount: u64,
    /// Virtual ms of the 202, if one came.
    pub acked_at: Option<u64>,
    /// Submissions made (retries included).
    pub attempts: u32,
}

/// One read of an item.
#[derive(Clone, Debug)]
pub struct ReadRecord {
    /// Virtual ms.
    pub at: u64,
    /// The tower read.
    pub tower: String,
    /// The item.
    pub item: String,
    /// HTTP status (0: no answer).
    pub status: u16,
    /// `x-sovereign-version` of a 200.
    pub version: Option<u64>,
}

/// The checker's findings after the heal.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The origin's latest version of each item: `(version, sha256)`.
    pub expected: BTreeMap<String, (u64, String)>,
    /// Virtual ms at which each tower served every expected version with matching bytes
    /// (`None`: never before the deadline).
    pub converged_at: BTreeMap<String, Option<u64>>,
    /// What each tower last served: item → `(version, body hashes to the manifest)`.
    pub served: BTreeMap<String, BTreeMap<String, (u64, bool)>>,
    /// The origin's answer for each submitted key (`None`: not applied).
    pub outcomes: BTreeMap<String, Option<String>>,
    /// `/admin/ledger`: contributed_minor.
    pub contributed_minor: u128,
    /// `/admin/ledger`: applied.
    pub applied: u64,
    /// `/admin/ledger`: conserved.
    pub conserved: bool,
    /// Each tower's outbox size at the end.
    pub outbox: BTreeMap<String, u64>,
}

/// Shared observations.
pub type Shared = Rc<RefCell<Obs>>;

/// Virtual milliseconds since the simulation started.
pub fn now_ms() -> u64 {
    turmoil::sim_elapsed().map_or(0, |d| d.as_millis() as u64)
}

/// Record an event in the trace.
pub fn note(obs: &Shared, event: impl Into<String>) {
    let at = now_ms();
    obs.borrow_mut().trace.push((at, event.into()));
}

/// Log lines stamped with virtual time.
struct SimTime;

impl tracing_subscriber::fmt::time::FormatTime for SimTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(w, "{:>9.3}s", now_ms() as f64 / 1000.0)
    }
}

/// The simulated world: origin, two towers, their disks, and the clients.
pub struct Net {
    /// The simulation.
    pub sim: turmoil::Sim<'static>,
    /// Each host's disk.
    pub disks: BTreeMap<&'static str, Disk>,
    /// What the clients saw.
    pub obs: Shared,
    _dir: tempfile::TempDir,
}

impl Net {
    /// Build the topology: `origin`, `tower1`, `tower2`, each on its own disk.
    pub fn new(setup: &Setup) -> Net {
        let _ = tracing_subscriber::fmt()
            .with_timer(SimTime)
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_ansi(false)
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("a temporary directory for the audit logs");
        let mut sim = turmoil::Builder::new()
            .rng_seed(setup.seed)
            .epoch(std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .simulation_duration(setup.duration)
            .min_message_latency(setup.latency.0)
            .max_message_latency(setup.latency.1)
            .build();
        let mut disks = BTreeMap::new();

        let disk = Disk::default();
        disks.insert("origin", disk.clone());
        let audit = dir.path().join("origin-audit.jsonl");
        let config = setup.origin.clone();
        sim.host("origin", move || {
            origin_main(disk.clone(), config.clone(), audit.clone())
        });

        for (i, name) in TOWERS.iter().enumerate() {
            let disk = Disk::default();
            disks.insert(*name, disk.clone());
            let audit = dir.path().join(format!("{name}-audit.jsonl"));
            let tweak = setup.tower;
            let id = i as u32 + 1;
            sim.host(*name, move || {
                tower_main(id, disk.clone(), tweak, audit.clone())
            });
        }
        Net {
            sim,
            disks,
            obs: Rc::new(RefCell::new(Obs::default())),
            _dir: dir,
        }
    }

    /// Add a client.
    pub fn client(
        &mut self,
        name: &'static str,
        f: impl Future<Output = turmoil::Result> + 'static,
    ) {
        self.sim.client(name, f);
    }

    fn note(&self, event: String) {
        let at = self.sim.elapsed().as_millis() as u64;
        self.obs.borrow_mut().trace.push((at, event));
    }

    /// Run until every client finished, applying `schedule` on the way.
    pub fn run(&mut self, schedule: Vec<(Duration, Act)>) -> turmoil::Result {
        let mut schedule = schedule;
        loop {
            schedule.sort_by_key(|(t, _)| *t);
            let now = self.sim.elapsed();
            let due = schedule.iter().take_while(|(t, _)| *t <= now).count();
            for (_, act) in schedule.drain(..due).collect::<Vec<_>>() {
                self.apply(act);
            }
            // A power cut fired during the last step: the host is dead; restart it later.
            for (name, disk) in &self.disks {
                let mut c = disk.cut.lock();
                if c.dead && !c.handled {
                    c.handled = true;
                    let down = c.down;
                    drop(c);
                    self.sim.crash(*name);
                    let at = now.as_millis() as u64;
                    self.obs
                        .borrow_mut()
                        .trace
                        .push((at, format!("power cut {name}")));
                    schedule.push((now + down, Act::Bounce(name)));
                }
            }
            if self.sim.step()? {
                return Ok(());
            }
        }
    }

    fn apply(&mut self, act: Act) {
        self.note(format!("{act:?}"));
        match act {
            Act::Partition(a, b) => self.sim.partition(a, b),
            Act::PartitionOneway(a, b) => self.sim.partition_oneway(a, b),
            Act::Repair(a, b) => self.sim.repair(a, b),
            Act::Latency(a, b, d) => self.sim.set_link_latency(a, b, d),
            Act::Crash(host) => {
                self.sim.crash(host);
                self.disks[host].mem.crash();
            }
            Act::Bounce(host) => {
                self.sim.bounce(host);
                *self
                    .obs
                    .borrow_mut()
                    .restarts
                    .entry(host.to_string())
                    .or_default() += 1;
            }
            Act::PowerCut {
                host,
                covering,
                skip,
                down,
            } => self.disks[host].cut.arm(covering, skip, down),
        }
    }
}

// ----- the hosts' software --------------------------------------------------------------

async fn origin_main(disk: Disk, config: OriginConfig, audit: PathBuf) -> turmoil::Result {
    let store: Arc<dyn Store> = Arc::new(disk.store());
    let audit = Arc::new(AuditLog::open(&audit)?);
    let parts = origin_parts(config, store, Faults::default(), tokens(), audit)?;
    serve_pair(parts.public, ORIGIN_PORT, parts.admin, ORIGIN_ADMIN_PORT).await
}

async fn tower_main(
    id: u32,
    disk: Disk,
    tweak: fn(&mut TowerConfig),
    audit: PathBuf,
) -> turmoil::Result {
    let mut tower = TowerConfig::new(TowerId(id), &[LinkKind::Fibre]);
    tower.catalog_interval = Duration::from_secs(1);
    tower.request_timeout = Duration::from_secs(2);
    tweak(&mut tower);
    let config = TowerNodeConfig {
        tower,
        uplinks: BTreeMap::from([(LinkKind::Fibre, format!("http://origin:{ORIGIN_PORT}"))]),
        power: None,
        power_interval: Duration::from_secs(5),
        seed: u64::from(id),
    };
    let store: Arc<dyn Store> = Arc::new(disk.store());
    let audit = Arc::new(AuditLog::open(&audit)?);
    let transport: Arc<dyn Transport> = Arc::new(sim_transport());
    let parts = tower_parts(
        config,
        store,
        Faults::default(),
        transport,
        tokens(),
        audit,
        16 * 1024 * 1024,
    )?;
    serve_pair(parts.public, TOWER_PORT, parts.admin, TOWER_ADMIN_PORT).await
}

// ----- the clients ----------------------------------------------------------------------

/// A small HTTP client over simulated TCP (the servers' own hyper transport).
pub struct Http(HyperTransport<SimConnector>);

impl Http {
    /// A client with its own connection pool.
    pub fn new() -> Http {
        Http(sim_transport())
    }

    /// One exchange; `Err` when nothing answered within `timeout`.
    pub async fn call(
        &self,
        method: Method,
        url: String,
        headers: &[(&'static str, String)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<Response, String> {
        let mut req = Request::get(url, timeout);
        req.method = method;
        req.body = body;
        for (name, value) in headers {
            let value = HeaderValue::from_str(value).map_err(|e| e.to_string())?;
            req = req.header(header::HeaderName::from_static(name), value);
        }
        self.0.send(req).await.map_err(|e| e.to_string())
    }

    /// GET with a 3 s deadline.
    pub async fn get(
        &self,
        url: String,
        headers: &[(&'static str, String)],
    ) -> Result<Response, String> {
        self.call(
            Method::GET,
            url,
            headers,
            Bytes::new(),
            Duration::from_secs(3),
        )
        .await
    }
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

/// Sleep until virtual time `at`.
pub async fn sleep_until(at: Duration) {
    let now = Duration::from_millis(now_ms());
    if at > now {
        tokio::time::sleep(at - now).await;
    }
}

/// Deterministic, incompressible content.
pub fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        // splitmix64
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha_hex(bytes: &[u8]) -> String {
    ChunkHash::of(bytes).to_hex()
}

/// Something the operator publishes.
#[derive(Clone, Debug)]
pub struct Publish {
    /// Virtual time to publish at.
    pub at: Duration,
    /// Item id.
    pub item: &'static str,
    /// `P0`..`P3`.
    pub priority: &'static str,
    /// Bytes.
    pub size: usize,
    /// Content seed (a new seed makes a new version's bytes).
    pub seed: u64,
}

/// The operator: publishes through the origin's admin API with an operator token,
/// retrying each publish every second until the origin answers 201.
pub async fn operator(obs: Shared, plan: Vec<Publish>) -> turmoil::Result {
    let http = Http::new();
    for p in plan {
        sleep_until(p.at).await;
        let bytes = Bytes::from(content(p.seed, p.size));
        loop {
            let url = format!(
                "http://origin:{ORIGIN_ADMIN_PORT}/admin/publish?item={}&priority={}",
                p.item, p.priority
            );
            let r = http
                .call(
                    Method::POST,
                    url,
                    &[
                        bearer(OPERATOR),
                        ("content-type", "application/octet-stream".into()),
                    ],
                    bytes.clone(),
                    Duration::from_secs(5),
                )
                .await;
            match r {
                Ok(resp) if resp.status == StatusCode::CREATED => {
                    let e: sovereign_wire::CatalogEntryDto =
                        serde_json::from_slice(&resp.body).map_err(|e| e.to_string())?;
                    if e.manifest.sha256 != sha_hex(&bytes) {
                        obs.borrow_mut().corrupt.push(format!(
                            "origin answered publish of {} with sha256 {} for other bytes",
                            p.item, e.manifest.sha256
                        ));
                    }
                    note(
                        &obs,
                        format!("published {} v{}", p.item, e.manifest.version),
                    );
                    obs.borrow_mut()
                        .published
                        .entry(p.item.to_string())
                        .or_default()
                        .push((e.manifest.version, e.manifest.sha256));
                    break;
                }
                Ok(resp) => note(
                    &obs,
                    format!("publish {}: {}", p.item, resp.status.as_u16()),
                ),
                Err(_) => note(&obs, format!("publish {}: no answer", p.item)),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Ok(())
}

/// A device's work: `count` contributions to `tower`, one every `every` from `start`, each
/// retried (same key, same body) every second until the tower answers 202 or `give_up`.
#[derive(Clone, Debug)]
pub struct Device {
    /// Device number (also the key prefix).
    pub id: u32,
    /// The tower it talks to.
    pub tower: &'static str,
    /// Operations to submit.
    pub count: u32,
    /// First submission.
    pub start: Duration,
    /// Between submissions.
    pub every: Duration,
    /// Stop retrying after this virtual time.
    pub give_up: Duration,
}

/// The amount device `id` contributes with its `n`th operation (distinct per key).
pub fn amount(id: u32, n: u32) -> u64 {
    u64::from(id) * 1000 + u64::from(n)
}

/// Run a [`Device`].
pub async fn device(obs: Shared, d: Device) -> turmoil::Result {
    let http = Http::new();
    for n in 1..=d.count {
        sleep_until(d.start + d.every * (n - 1)).await;
        let key = format!("d{}-{n:03}", d.id);
        let amount = amount(d.id, n);
        obs.borrow_mut().ops.insert(
            key.clone(),
            OpRecord {
                tower: d.tower.to_string(),
                amount,
                acked_at: None,
                attempts: 0,
            },
        );
        let body = serde_json::json!({
            "device": d.id,
            "op": {"type": "contribution", "community": "kibera", "nation": "ke", "amount_minor": amount},
        });
        let body = Bytes::from(serde_json::to_vec(&body)?);
        loop {
            if let Some(o) = obs.borrow_mut().ops.get_mut(&key) {
                o.attempts += 1;
            }
            let r = http
                .call(
                    Method::POST,
                    format!("http://{}:{TOWER_PORT}/v1/ops", d.tower),
                    &[
                        ("idempotency-key", key.clone()),
                        ("content-type", "application/json".into()),
                    ],
                    body.clone(),
                    Duration::from_secs(3),
                )
                .await;
            match r {
                Ok(resp) if resp.status == StatusCode::ACCEPTED => {
                    let at = now_ms();
                    if let Some(o) = obs.borrow_mut().ops.get_mut(&key) {
                        o.acked_at = Some(at);
                    }
                    note(&obs, format!("{} acked {key}", d.tower));
                    break;
                }
                Ok(resp) => note(
                    &obs,
                    format!("{} op {key}: {}", d.tower, resp.status.as_u16()),
                ),
                Err(_) => note(&obs, format!("{} op {key}: no answer", d.tower)),
            }
            if Duration::from_millis(now_ms()) > d.give_up {
                note(&obs, format!("{} gave up {key}", d.tower));
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct TowerCatalog {
    items: Vec<sovereign_wire::ManifestDto>,
}

/// Read every item a tower lists (and every item it listed before) every `every` until
/// `until`, checking each 200 body against its ETag and the listed manifest.
pub async fn reader(
    obs: Shared,
    tower: &'static str,
    every: Duration,
    until: Duration,
) -> turmoil::Result {
    let http = Http::new();
    let mut known: BTreeMap<String, BTreeMap<u64, String>> = BTreeMap::new();
    while Duration::from_millis(now_ms()) < until {
        if let Ok(resp) = http
            .get(format!("http://{tower}:{TOWER_PORT}/v1/catalog"), &[])
            .await
        {
            if resp.status == StatusCode::OK {
                let cat: TowerCatalog = serde_json::from_slice(&resp.body)?;
                let at = now_ms();
                let mut o = obs.borrow_mut();
                for m in cat.items {
                    o.first_seen
                        .entry((tower.to_string(), m.item.clone(), m.version))
                        .or_insert(at);
                    known.entry(m.item).or_default().insert(m.version, m.sha256);
                }
            }
        }
        for (item, versions) in &known {
            let r = http
                .get(format!("http://{tower}:{TOWER_PORT}/v1/items/{item}"), &[])
                .await;
            let at = now_ms();
            let (status, version) = match r {
                Err(_) => (0, None),
                Ok(resp) => {
                    let version = resp
                        .headers
                        .get("x-sovereign-version")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    if resp.status == StatusCode::OK {
                        check_body(&obs, tower, item, &resp, version, versions);
                    }
                    (resp.status.as_u16(), version)
                }
            };
            obs.borrow_mut().reads.push(ReadRecord {
                at,
                tower: tower.to_string(),
                item: item.clone(),
                status,
                version,
            });
        }
        tokio::time::sleep(every).await;
    }
    Ok(())
}

fn check_body(
    obs: &Shared,
    tower: &str,
    item: &str,
    resp: &Response,
    version: Option<u64>,
    versions: &BTreeMap<u64, String>,
) {
    let sha = sha_hex(&resp.body);
    let etag = resp
        .headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim_matches('"')
        .to_string();
    let listed = version.and_then(|v| versions.get(&v));
    let bad = if etag != sha {
        Some(format!("ETag {etag}"))
    } else if listed.is_some_and(|l| *l != sha) {
        Some(format!("manifest says {listed:?}"))
    } else {
        None
    };
    if let Some(why) = bad {
        obs.borrow_mut().corrupt.push(format!(
            "{tower} served {item} v{version:?}: {} bytes hashing to {sha}, {why}",
            resp.body.len()
        ));
    }
}

#[derive(serde::Deserialize)]
struct OriginCatalog {
    entries: Vec<sovereign_wire::CatalogEntryDto>,
}

/// After `start` (and once every other client is done), wait until `deadline` for the
/// towers to converge on the origin's catalog and for every acknowledged operation to be
/// applied; then record the [`Report`].
pub async fn checker(obs: Shared, start: Duration, deadline: Duration) -> turmoil::Result {
    let http = Http::new();
    sleep_until(start).await;
    let past = |d: Duration| Duration::from_millis(now_ms()) > d;
    while obs.borrow().devices_done < obs.borrow().devices && !past(deadline) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    note(&obs, "checker: workers done");
    let mut report = Report::default();

    // What the origin holds: the latest version of each item.
    loop {
        if let Ok(resp) = http
            .get(
                format!("http://origin:{ORIGIN_PORT}/v1/catalog?since=0"),
                &[],
            )
            .await
        {
            if resp.status == StatusCode::OK {
                let cat: OriginCatalog = serde_json::from_slice(&resp.body)?;
                for e in cat.entries {
                    let slot = report
                        .expected
                        .entry(e.manifest.item.clone())
                        .or_insert((0, String::new()));
                    if e.manifest.version > slot.0 {
                        *slot = (e.manifest.version, e.manifest.sha256);
                    }
                }
                break;
            }
        }
        if past(deadline) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Each tower serves every latest version, with bytes that hash to it.
    for tower in TOWERS {
        let mut converged = None;
        loop {
            let mut served = BTreeMap::new();
            for (item, (version, sha)) in &report.expected {
                if let Ok(resp) = http
                    .get(format!("http://{tower}:{TOWER_PORT}/v1/items/{item}"), &[])
                    .await
                {
                    if resp.status == StatusCode::OK {
                        let v = resp
                            .headers
                            .get("x-sovereign-version")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<u64>().ok())
                            .unwrap_or(0);
                        let ok = v != *version || sha_hex(&resp.body) == *sha;
                        served.insert(item.clone(), (v, ok));
                    }
                }
            }
            let done = report
                .expected
                .iter()
                .all(|(item, (version, _))| served.get(item) == Some(&(*version, true)));
            report.served.insert(tower.to_string(), served);
            if done {
                converged = Some(now_ms());
                break;
            }
            if past(deadline) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        note(&obs, format!("checker: {tower} converged {converged:?}"));
        report.converged_at.insert(tower.to_string(), converged);
    }

    // Every submitted key's fate at the origin; wait for the acknowledged ones.
    let keys: Vec<(String, bool)> = obs
        .borrow()
        .ops
        .iter()
        .map(|(k, o)| (k.clone(), o.acked_at.is_some()))
        .collect();
    loop {
        for (key, _) in &keys {
            let url = format!("http://origin:{ORIGIN_ADMIN_PORT}/admin/ops/{key}");
            let outcome = match http.get(url, &[bearer(VIEWER)]).await {
                Ok(resp) if resp.status == StatusCode::OK => {
                    let v: serde_json::Value = serde_json::from_slice(&resp.body)?;
                    Some(v["outcome"].to_string())
                }
                _ => None,
            };
            report.outcomes.insert(key.clone(), outcome);
        }
        let all_acked_known = keys
            .iter()
            .all(|(k, acked)| !acked || report.outcomes.get(k).is_some_and(Option::is_some));
        if all_acked_known || past(deadline) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // The towers' outboxes drain.
    for tower in TOWERS {
        loop {
            let url = format!("http://{tower}:{TOWER_ADMIN_PORT}/admin/outbox");
            let count = match http.get(url, &[bearer(VIEWER)]).await {
                Ok(resp) if resp.status == StatusCode::OK => {
                    let v: serde_json::Value = serde_json::from_slice(&resp.body)?;
                    v["count"].as_u64()
                }
                _ => None,
            };
            if count == Some(0) || past(deadline) {
                report
                    .outbox
                    .insert(tower.to_string(), count.unwrap_or(u64::MAX));
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    // The ledger.
    loop {
        let url = format!("http://origin:{ORIGIN_ADMIN_PORT}/admin/ledger");
        if let Ok(resp) = http.get(url, &[bearer(VIEWER)]).await {
            if resp.status == StatusCode::OK {
                let v: serde_json::Value = serde_json::from_slice(&resp.body)?;
                report.contributed_minor = v["contributed_minor"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(u128::MAX);
                report.applied = v["applied"].as_u64().unwrap_or(u64::MAX);
                report.conserved = v["conserved"].as_bool().unwrap_or(false);
                break;
            }
        }
        if past(deadline) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    note(&obs, "checker: done");
    obs.borrow_mut().report = Some(report);
    Ok(())
}

impl Net {
    /// Add a device client (the checker waits for it to finish).
    pub fn device(&mut self, name: &'static str, d: Device) {
        let obs = self.obs.clone();
        self.obs.borrow_mut().devices += 1;
        self.sim.client(name, async move {
            let r = device(obs.clone(), d).await;
            obs.borrow_mut().devices_done += 1;
            r
        });
    }

    /// Add the operator.
    pub fn operator(&mut self, plan: Vec<Publish>) {
        let obs = self.obs.clone();
        self.obs.borrow_mut().devices += 1;
        self.sim.client("operator", async move {
            let r = operator(obs.clone(), plan).await;
            obs.borrow_mut().devices_done += 1;
            r
        });
    }

    /// Add a reader of `tower`.
    pub fn reader(
        &mut self,
        name: &'static str,
        tower: &'static str,
        every: Duration,
        until: Duration,
    ) {
        self.sim
            .client(name, reader(self.obs.clone(), tower, every, until));
    }

    /// Add the checker.
    pub fn checker(&mut self, start: Duration, deadline: Duration) {
        self.sim
            .client("checker", checker(self.obs.clone(), start, deadline));
    }
}

/// What every scenario must end with: no corrupt bytes served, both towers converged on
/// the origin's latest versions, every acknowledged publish kept, every acknowledged
/// operation applied exactly once, outboxes drained, the ledger conserved.
pub fn assert_invariants(obs: &Obs) {
    let r = obs.report.as_ref().expect("the checker finished");
    assert!(
        obs.corrupt.is_empty(),
        "corrupt bytes served: {:#?}",
        obs.corrupt
    );
    assert!(!r.expected.is_empty(), "the origin's catalog is empty");
    for tower in TOWERS {
        assert!(
            r.converged_at.get(tower).is_some_and(Option::is_some),
            "{tower} did not converge: served {:?}, expected {:?}",
            r.served.get(tower),
            r.expected
        );
    }
    for (item, versions) in &obs.published {
        let (latest, sha) = versions.iter().max().expect("at least one version");
        let (v, s) = r
            .expected
            .get(item)
            .unwrap_or_else(|| panic!("published {item} is missing from the origin's catalog"));
        assert!(
            latest <= v,
            "{item}: the origin acknowledged v{latest} but holds v{v}"
        );
        if latest == v {
            assert_eq!(sha, s, "{item} v{v}: the acknowledged bytes differ");
        }
    }
    let mut applied_sum: u128 = 0;
    let mut applied_count = 0u64;
    for (key, op) in &obs.ops {
        let outcome = r.outcomes.get(key).cloned().flatten();
        if op.acked_at.is_some() {
            assert!(
                outcome.as_deref().is_some_and(is_applied),
                "{key} was acknowledged by {} but the origin says {outcome:?}",
                op.tower
            );
        }
        if outcome.as_deref().is_some_and(is_applied) {
            applied_sum += u128::from(op.amount);
            applied_count += 1;
        }
    }
    assert_eq!(
        r.contributed_minor, applied_sum,
        "the ledger's contributions are not the sum of the applied operations (once each)"
    );
    assert_eq!(
        r.applied, applied_count,
        "the origin applied a different number of operations than it has keys for"
    );
    assert!(r.conserved, "the ledger is not conserved");
    for tower in TOWERS {
        assert_eq!(
            r.outbox.get(tower),
            Some(&0),
            "{tower}'s outbox did not drain"
        );
    }
}

/// Whether an `/admin/ops/{key}` outcome (JSON) says "applied".
pub fn is_applied(outcome: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(outcome).is_ok_and(|v| v["result"] == "applied")
}

/// The acknowledged operations.
pub fn acked(obs: &Obs) -> usize {
    obs.ops.values().filter(|o| o.acked_at.is_some()).count()
}

/// Print the trace and the report when `SOVEREIGN_TURMOIL_TRACE` is set.
pub fn dump(obs: &Obs) {
    if std::env::var_os("SOVEREIGN_TURMOIL_TRACE").is_none() {
        return;
    }
    for (at, e) in &obs.trace {
        eprintln!("{:>8.3}s {e}", *at as f64 / 1000.0);
    }
    eprintln!("first seen: {:#?}", obs.first_seen);
    eprintln!("restarts: {:?}", obs.restarts);
    eprintln!("report: {:#?}", obs.report);
    eprintln!("reads: {}", obs.reads.len());
}
