//! The turmoil harness for the real servers: an origin and two towers built by
//! `serve::origin_parts` / `serve::tower_parts` and served by `axum::serve` over turmoil's
//! simulated TCP, the towers' uplink client the servers' own `HyperTransport`, each host on
//! an in-memory disk that survives its crashes; a driver that applies a schedule of
//! partitions, latencies, kills and power cuts; the clients that play the operator,
//! devices, readers and the final checker; and the invariants every scenario ends with.
//!
//! Everything runs on the test's thread (turmoil steps each host's current-thread runtime
//! in turn), so the clients share what they observe through an `Rc<RefCell<Obs>>`.
//!
//! Map: [`simnet`] (hyper and axum over turmoil TCP), [`disk`] (crashes and power cuts),
//! [`clients`] (operator, devices, readers, chaos, checker); here [`Setup`], [`Act`],
//! [`Net`] (topology and driver), [`Obs`] / [`Report`] (observations),
//! [`assert_invariants`], [`dump`].
//!
//! Not covered: TLS, HTTP/2, torn writes (a power cut drops every unsynced change, never
//! some of them), clock skew between hosts, more than one uplink per tower.
#![allow(dead_code)]

pub mod clients;
pub mod disk;
pub mod simnet;

pub use clients::{Device, Publish};
pub use disk::{Covering, Disk};

use simnet::{serve_pair, sim_transport};
use sovereign_logic::origin::OriginConfig;
use sovereign_logic::protocol::{LinkKind, TowerId};
use sovereign_logic::tower::TowerConfig;
use sovereign_server::audit::AuditLog;
use sovereign_server::auth::Tokens;
use sovereign_server::serve::{origin_parts, tower_parts};
use sovereign_server::tower_auth::TowerCredentials;
use sovereign_server::tower_node::{TowerCredential, TowerNodeConfig};
use sovereign_server::transport::Transport;
use sovereign_store::{Faults, FaultyStore, Store};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
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

/// Tower `id`'s credential at the origin.
pub fn tower_credential(id: u32) -> String {
    format!("tower-{id}-credential-0123456789abcdef")
}

/// The origin's table: every tower of the topology holds its credential.
fn tower_credentials() -> TowerCredentials {
    let c = TowerCredentials::in_memory();
    for id in 1..=TOWERS.len() as u32 {
        c.register(TowerId(id), &tower_credential(id))
            .expect("valid test credential");
    }
    c
}

fn tokens() -> Tokens {
    Tokens::new(
        Some(VIEWER.to_string()),
        Some(OPERATOR.to_string()),
        Some(CHAOS.to_string()),
    )
    .expect("valid test tokens")
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
    /// Defaults: 240 s of virtual time, 1–20 ms links. `SOVEREIGN_TURMOIL_SEED=N` adds `N`
    /// to every scenario's seed (to explore other interleavings).
    pub fn new(seed: u64) -> Setup {
        let offset = std::env::var("SOVEREIGN_TURMOIL_SEED")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        Setup {
            seed: seed.wrapping_add(offset),
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
    /// `kill -9` between steps: the process stops, its unsynced changes vanish (between
    /// steps there are rarely any; see [`disk`] and [`Act::PowerCut`]).
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
    /// Workers (devices, the operator) that finished; the checker waits for all of them.
    pub workers_done: usize,
    /// Workers started.
    pub workers: usize,
    /// A tower served an older version of an item after a newer one (must stay empty).
    pub regressions: Vec<String>,
    /// Operations an auditor found applied at the origin at its one look (see
    /// `Net::auditor`).
    pub applied_early: Vec<String>,
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
                if let Some(down) = disk.cut.take_fired() {
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
    let parts = origin_parts(
        config,
        store,
        Faults::default(),
        tokens(),
        audit,
        tower_credentials(),
    )?;
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
        credential: Some(TowerCredential::secret(tower_credential(id))),
    };
    // The chaos admin API's faults (bit rot, failing fsyncs) act on this process's store.
    let faults = Faults::default();
    let store: Arc<dyn Store> = Arc::new(FaultyStore::new(disk.store(), faults.clone()));
    let audit = Arc::new(AuditLog::open(&audit)?);
    let transport: Arc<dyn Transport> = Arc::new(sim_transport());
    let parts = tower_parts(
        config,
        store,
        faults,
        transport,
        tokens(),
        audit,
        16 * 1024 * 1024,
    )?;
    serve_pair(parts.public, TOWER_PORT, parts.admin, TOWER_ADMIN_PORT).await
}

/// What every scenario must end with: no corrupt bytes served, both towers converged on
/// the origin's latest versions, every acknowledged publish kept, every acknowledged
/// operation applied exactly once, outboxes drained, the ledger conserved.
pub fn assert_invariants(obs: &Obs) {
    let r = obs.report.as_ref().expect("the checker finished");
    assert!(
        obs.regressions.is_empty(),
        "versions went backwards: {:#?}",
        obs.regressions
    );
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
