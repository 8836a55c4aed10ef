//! One lab run: start the topology, publish the catalog, run the devices and the fault
//! schedule in wall-clock time, heal, wait for convergence, stop everything, and turn
//! what was observed into the run's report.
//!
//! Map: [`run`] (the sequence); [`Log`] (observations stamped with the wall clock,
//! relative to the run's start); the threads: [`tower_events`], [`origin_events`]
//! (`GET /admin/events`), [`device`] (reads verified by hash, submissions); the fault
//! actions ([`Lab::inject`], [`Lab::lift`]); [`derive_steady`] and [`judge`] (the
//! observers).
//!
//! Observations are stamped with wall time: the servers' event records carry the time
//! the server saw them (`at_unix_us`), the lab's own with the time it saw them (a read's
//! outcome when its answer arrived). Everything is collected, sorted by that stamp and fed
//! to the oracles and KPIs once the run is over (a lab run lasts minutes, its log is
//! small), so a tower's quarantine event comes before the refused read that caused it,
//! as in the simulator.
//!
//! Not covered: which faults can be injected (`plan.rs`), the processes (`backend.rs`).

use crate::backend::{Backend, BackendKind, Sig, free_port};
use crate::database::{DATABASE, DB_NAME};
use crate::http::{self, Resp};
use crate::plan::{
    Cut, Injection, Planned, lab_invariants, proxy_name, tower_defaults, wifi_proxy_name,
};
use anyhow::{Context, Result, anyhow, bail};
use sovereign_logic::Time;
use sovereign_logic::content::{ChunkHash, ItemId, Manifest, Priority};
use sovereign_logic::entropy::{Entropy, SplitMix64};
use sovereign_logic::io::{Event, Key, PowerMode};
use sovereign_logic::protocol::{DeviceId, IdemKey, LinkKind, OpKind, OpOutcome, Operation};
use sovereign_logic::tower::Refusal;
use sovereign_logic::tower::link::ClassPolicy;
use sovereign_observe::Observer;
use sovereign_observe::kpi::KpiScan;
use sovereign_observe::obs::{Obs, ReadResult, Stamped};
use sovereign_observe::oracle::Oracles;
use sovereign_report::series::{RunSeries, SeriesScan};
use sovereign_scenario::faults::FaultKind;
use sovereign_scenario::power::{POWER_OBS_EVERY, POWER_TICK, PowerModel, power_tick_every};
use sovereign_scenario::{Database, FaultSpec, Scenario, Target};
use sovereign_sim::RunReport;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Admin tokens of the lab's servers (loopback only; one run's life).
const VIEWER: &str = "lab-viewer-token-0123456789";
const OPERATOR: &str = "lab-operator-token-0123456789";
const CHAOS: &str = "lab-chaos-token-0123456789";
/// Deadline of one of the lab's own calls.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server gets to answer `/healthz` after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// A toxic on both streams of a proxy (a link's fault), or on what flows to the client
/// only (what a Wi-Fi carries to the devices).
const BOTH: &[&str] = &["downstream", "upstream"];
const DOWN: &[&str] = &["downstream"];
/// Attempts of one device operation (a retry after 1 s each).
const SUBMIT_ATTEMPTS_MAX: u32 = 5;

/// What a lab run needs.
pub struct LabOptions {
    /// The scenario file (for messages).
    pub file: String,
    /// The scenario.
    pub scenario: Scenario,
    /// Seeds the devices' schedules and content.
    pub seed: u64,
    /// A planted bug switched on in every tower (`--plant` of `tower serve`, or the
    /// switchboard's), or in the origin (`--plant` of `origin serve`).
    pub plant: Option<String>,
    /// The `sovereign` executable to run the servers with.
    pub exe: PathBuf,
    /// Processes or containers.
    pub backend: BackendKind,
    /// Where state files go ([`crate::backend::down`] reads them).
    pub state_dir: PathBuf,
    /// Keep the run's directory (data, logs) instead of removing it.
    pub keep: bool,
    /// Set by Ctrl-C / SIGTERM: stop, clean up, and report what was seen.
    pub interrupt: Arc<AtomicBool>,
    /// The publications after the initial catalog, e.g. the simulator's own (`lab
    /// fidelity`); `None`: drawn from the seed at the scenario's `publish_per_hour`.
    pub publications: Option<Vec<Publication>>,
}

/// One publication at the origin during the run. An item the origin already has gets a
/// ~1% edit of its bytes (as the simulator edits: delta sync moves little); a new one
/// gets `size` fresh bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Publication {
    /// When, from the run's start.
    pub at: Duration,
    /// The item (the simulator's names: `p0-00004`).
    pub item: String,
    /// Its class.
    pub class: Priority,
    /// Its size when new.
    pub size: u64,
}

/// An item's name as the simulator gives it: class and a run-wide number (`p1-00007`).
pub fn item_name(class: Priority, n: u64) -> String {
    format!("{}-{n:05}", class.to_string().to_lowercase())
}

/// The initial catalog's items in publishing order, named as the simulator names them:
/// (name, class, size).
pub fn initial_items(sc: &Scenario) -> Vec<(String, Priority, u64)> {
    let mut out = Vec::new();
    for group in &sc.workload.catalog {
        for _ in 0..group.items {
            let n = out.len() as u64 + 1;
            out.push((item_name(group.priority, n), group.priority, group.bytes));
        }
    }
    out
}

/// `bytes` with a run of ~1% of them changed at a drawn place: the simulator's edit.
fn edit(bytes: &mut [u8], rng: &mut Rng) {
    if bytes.is_empty() {
        return;
    }
    let n = (bytes.len() / 100).max(1);
    let at = (rng.next() % (bytes.len() - n + 1) as u64) as usize;
    for b in &mut bytes[at..at + n] {
        *b = b.wrapping_add(1);
    }
}

/// What a lab run gives back.
pub struct LabRun {
    /// Verdict, KPIs and SLOs (the same type `sim run` prints).
    pub report: RunReport,
    /// The KPI series, for the report files.
    pub series: RunSeries,
    /// The run's directory (removed unless `keep`).
    pub run_dir: PathBuf,
    /// Warnings the run printed (also in the report's data).
    pub warnings: Vec<String>,
    /// Each version's freshness at each tower (`lab fidelity` pairs it with the
    /// simulator's).
    pub versions: sovereign_observe::kpi::freshness::Freshness,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The observation log: stamped relative to the run's start.
pub struct Log {
    t0_us: std::sync::atomic::AtomicU64,
    entries: Mutex<Vec<Stamped>>,
}

impl Log {
    fn new() -> Log {
        Log {
            t0_us: std::sync::atomic::AtomicU64::new(now_us()),
            entries: Mutex::new(Vec::new()),
        }
    }

    /// The run's time at `unix_us`.
    fn stamp(&self, unix_us: u64) -> Time {
        Time::from_micros(unix_us.saturating_sub(self.t0_us.load(Ordering::Relaxed)))
    }

    /// Record `obs` as seen at `unix_us`.
    fn at(&self, unix_us: u64, obs: Obs) {
        let at = self.stamp(unix_us);
        lock(&self.entries).push(Stamped { at, obs });
    }

    /// Record `obs` as seen now.
    fn now(&self, obs: Obs) {
        self.at(now_us(), obs);
    }

    fn elapsed(&self) -> Duration {
        Duration::from_micros(now_us().saturating_sub(self.t0_us.load(Ordering::Relaxed)))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What every thread shares.
struct Shared {
    log: Log,
    /// Published manifests by (item, version).
    manifests: Mutex<BTreeMap<(ItemId, u64), Manifest>>,
    /// Items devices may read, by class, in publication order (as the simulator keeps
    /// them: devices choose by class and rank, `sovereign_scenario::reads`).
    items: Mutex<[Vec<ItemId>; 4]>,
    /// Every submitted operation: key → (fingerprint, contribution amount).
    submitted: Mutex<BTreeMap<IdemKey, (ChunkHash, Option<u64>)>>,
    /// Per tower: its process runs and is not frozen.
    powered: Vec<AtomicBool>,
    /// Devices stop submitting (the heal).
    stop_ops: AtomicBool,
    /// Devices stop reading (the end).
    stop_reads: AtomicBool,
    /// Event readers stop.
    stop_events: AtomicBool,
    /// The origin's event reader stops (before the end's last look at the origin, so
    /// that no `Applied` comes after it; and with `stop_events`).
    stop_origin_events: AtomicBool,
    /// The sampler of the servers' outboxes and status stops ([`sample_servers`]).
    stop_sampling: AtomicBool,
    /// Warnings, printed at the end too.
    warnings: Mutex<Vec<String>>,
    /// Reads refused because stored chunks failed verification: (when, tower, item, the
    /// chunks the answer named). See [`order_repairs`].
    repairs: Mutex<Vec<Repair>>,
    /// (when, tower, its active link) read from a tower's status each time its event
    /// stream (re)connects: the choice made before the reader was there. Not an event of
    /// the tower (the KPIs would count it as a failover); only steadiness reads it.
    links_read: Mutex<Vec<StatusRead>>,
    /// Tower event streams opened (reconnections included).
    streams_opened: std::sync::atomic::AtomicUsize,
    /// Per tower: its power mode, from its `PowerMode` events (Normal again when it
    /// stops: each boot starts in Normal).
    modes: Mutex<Vec<PowerMode>>,
    /// Per tower: how many `wifi-corruption` faults garble its Wi-Fi now.
    garbling: Vec<std::sync::atomic::AtomicU32>,
    /// The devices keep reads without checking them (planted `device-skip-verify`).
    device_skip_verify: bool,
    /// Per tower: its last `GET /admin/status` answer (the sampler's, once a second;
    /// `None` before the first or while it does not answer).
    status: Mutex<Vec<Option<serde_json::Value>>>,
}

/// A tower's state read from its `/admin/status` when its event stream (re)opened: what
/// it chose before the reader was there (at boot, after a restart).
#[derive(Clone, Copy, Debug)]
struct StatusRead {
    at: Time,
    tower: usize,
    /// its active link
    link: Option<LinkKind>,
    /// its power mode (a tower that boots on a low battery sheds at its first reading)
    mode: Option<PowerMode>,
}

/// A read answered 503 "repairing", with the chunks the tower named.
#[derive(Clone, Debug)]
struct Repair {
    at: Time,
    tower: usize,
    item: ItemId,
    rotten: Vec<ChunkHash>,
}

impl Shared {
    fn warn(&self, w: String) {
        crate::shout(&format!("lab: WARNING: {w}"));
        lock(&self.warnings).push(w);
    }
}

/// A server's addresses.
#[derive(Clone, Debug)]
struct Addrs {
    public: String,
    admin: String,
}

/// The running lab.
struct Lab {
    sc: Scenario,
    backend: Box<dyn Backend>,
    shared: Arc<Shared>,
    origin: Addrs,
    towers: Vec<Addrs>,
    proxy_api: String,
    run_dir: PathBuf,
    /// Audit lines of the lab's own injections (signals, proxy calls).
    audit: std::fs::File,
    /// The planted bug, if any.
    plant: Option<String>,
    /// Per uplink proxy: (tower, link, bytes through it in both directions when last
    /// read from the proxy's `/metrics`).
    link_bytes: BTreeMap<String, (usize, LinkKind, u64)>,
    /// Every item's latest bytes (what an edit changes).
    content: BTreeMap<String, Vec<u8>>,
    /// The faults on now, by id.
    active: BTreeSet<u64>,
    /// Switchboard faults on now, by fault id: (server, request body). A disk fault
    /// outlives its server's restart, as a real disk's does: each is posted again when
    /// the server starts again, and when another one on the same server is lifted.
    disk_faults: BTreeMap<u64, (String, serde_json::Value)>,
    /// Flapping faults whose link is down now, by id.
    held_down: BTreeSet<u64>,
    /// What keeps a server down besides the power: crash loops and brown-outs in their
    /// down window (fault id → server), and `crash` faults on (server → how many). A
    /// server starts again only when nothing holds it down ([`Lab::held`]).
    down_for: BTreeMap<u64, String>,
    crash_holds: BTreeMap<String, u32>,
    /// Servers frozen by a `pause` fault (SIGSTOP): alive, not serving.
    paused: BTreeSet<String>,
    /// The next steps of crash loops and flapping links, in run time.
    timers: Vec<Timer>,
    /// Per tower: its power plant, stepped every [`POWER_TICK`] of the run.
    power: Vec<PowerModel>,
    /// Per tower: down for want of power (it powered itself off, its battery died, or a
    /// hard cut): the power tick starts it again when the battery allows.
    power_down: Vec<bool>,
    /// Power faults on now, by fault id: (tower, kind).
    power_faults: BTreeMap<u64, (usize, FaultKind)>,
    /// The daily weather draws.
    weather: Rng,
    /// Wi-Fi proxies switched off, with how many faults hold each off.
    wifi_off: BTreeMap<String, u32>,
    /// Uplink proxies black-holed, with how many faults hold each so.
    black_holed: BTreeMap<String, u32>,
    /// The origin's PostgreSQL's port, when the scenario puts the origin on PostgreSQL.
    db_port: Option<u16>,
    /// How many `db-lost` faults hold the origin's database closed ([`Lab::db_gate`]).
    db_closed: u32,
    /// The origin's PostgreSQL was found dead without a fault (warned once).
    db_died: bool,
}

/// A next step of a fault that acts on a schedule ([`Injection::CrashLoop`],
/// [`Injection::Flapping`]).
struct Timer {
    /// When, from the run's start.
    at: Duration,
    fault: Planned,
    step: Step,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Crash loop: kill the server.
    Kill,
    /// Crash loop: start it again.
    Boot,
    /// Flapping: the link goes down.
    Down,
    /// Flapping: the link comes back.
    Up,
}

fn auth(token: &str) -> String {
    format!("Bearer {token}")
}

fn call(method: &str, addr: &str, path: &str, token: Option<&str>, body: &[u8]) -> Result<Resp> {
    let a = token.map(auth);
    let mut headers: Vec<(&str, &str)> = vec![("Content-Type", "application/json")];
    if let Some(a) = &a {
        headers.push(("Authorization", a));
    }
    http::request(method, addr, path, &headers, body, CALL_TIMEOUT)
        .with_context(|| format!("{method} http://{addr}{path}"))
}

fn expect(r: Resp, ok: &[u16], what: &str) -> Result<Resp> {
    if ok.contains(&r.status) {
        Ok(r)
    } else {
        bail!("{what}: HTTP {}: {}", r.status, r.text())
    }
}

fn wait_healthy(backend: &mut dyn Backend, name: &str, addr: &str) -> Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if http::request("GET", addr, "/healthz", &[], b"", Duration::from_secs(1))
            .is_ok_and(|r| r.status == 200)
        {
            return Ok(());
        }
        if backend.wait_exit(name, Duration::ZERO)? {
            bail!(
                "{name} exited at start; its log ({}):\n{}",
                backend.log_path(name).display(),
                tail(&backend.log_path(name))
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{name} did not answer /healthz on {addr} within {START_TIMEOUT:?}; its log:\n{}",
                tail(&backend.log_path(name))
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tail(p: &Path) -> String {
    let t = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = t.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn tokens() -> Vec<String> {
    [
        ("--admin-token-viewer", VIEWER),
        ("--admin-token-operator", OPERATOR),
        ("--admin-token-chaos", CHAOS),
    ]
    .iter()
    .flat_map(|(k, v)| [k.to_string(), v.to_string()])
    .collect()
}

/// The lab's seeded draws (schedules and content; not the servers'): the logic's
/// SplitMix64, one stream per use.
#[derive(Clone)]
struct Rng(SplitMix64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        Rng(SplitMix64::new(
            seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        ))
    }
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn unit(&mut self) -> f64 {
        self.0.unit()
    }
    /// An exponential wait for a rate per hour (`None` for rate 0).
    fn wait(&mut self, per_hour: f64) -> Option<Duration> {
        if per_hour <= 0.0 {
            return None;
        }
        let u = self.unit().max(1e-12);
        Some(Duration::from_secs_f64(-u.ln() * 3600.0 / per_hour))
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

impl sovereign_logic::entropy::Entropy for Rng {
    fn next_u64(&mut self) -> u64 {
        self.next()
    }
}

/// Run a scenario against real processes, from start to report: a [`Session`] ticked
/// every [`TICK`] until it ends.
pub fn run(o: LabOptions) -> Result<LabRun> {
    Session::start(o)?.finish()
}

/// The pause between two ticks of a run that nobody else drives (`lab run`).
pub const TICK: Duration = Duration::from_millis(50);
/// How often the liveness phase asks the towers whether they converged.
const LIVENESS_EVERY: Duration = Duration::from_millis(500);
/// How old an observation is before a live view gets it: the servers' events arrive up
/// to this late behind the lab's own observations.
pub const LIVE_SETTLE: Duration = Duration::from_secs(1);
/// How often a session looks whether the origin runs (for its snapshot).
const ORIGIN_LOOK_EVERY: Duration = Duration::from_millis(500);

/// A lab run in progress, advanced by its caller one [`Session::tick`] at a time:
/// `lab run` ticks it until it ends ([`run`]); the console ticks it from its frame loop,
/// reads its [`Session::snapshot`] and observations, and injects faults into it
/// ([`Session::inject`], [`Session::heal`]). Dropping it (an error, a panic of the
/// caller) stops every thread and process of the run and releases its ports.
pub struct Session {
    lab: Lab,
    o: LabOptions,
    /// The scenario's faults, then the ones injected by [`Session::inject`] (the ids of
    /// the run's schedule).
    planned: Vec<Planned>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// `None` until the topology is up.
    sched: Option<Schedule>,
    phase: Phase,
    /// Faults ended early by [`Session::heal`]: (id, when).
    healed: Vec<(usize, Duration)>,
    /// The schedule's faults [`Session::end_early`] left out: their positions.
    not_injected: Vec<usize>,
    /// Observations of the log moved to `held` by [`Session::take_observations`].
    seen: usize,
    /// Observations taken from the log and not handed out yet (younger than
    /// [`LIVE_SETTLE`]).
    held: Vec<Stamped>,
    /// The time of the last observation handed out.
    handed_out: Time,
    /// The id the next injected fault gets: after every id of the scenario's faults and
    /// nemesis draws, injected or not.
    next_id: u64,
    /// Someone reads snapshots (the console): the tick looks whether the origin runs.
    watched: std::cell::Cell<bool>,
    /// (the origin runs and is not frozen, when last looked).
    origin_up: (bool, Duration),
    /// A tick or an injection failed: the run is over, without a report.
    failed: bool,
    torn_down: bool,
}

/// Where a session is.
#[derive(Clone, Debug, PartialEq)]
enum Phase {
    /// The scenario's duration: faults, publications, operations.
    Safety,
    /// Healed: waiting until every tower converged and every outbox drained, or the
    /// scenario's liveness bound.
    Liveness {
        /// when the heal happened
        heal: Duration,
        /// per tower
        converged: Vec<bool>,
        /// the next look
        next_check: Duration,
    },
    /// Over: the report can be made.
    Ended,
}

/// The timed part of a run: fault starts and ends, publications, samples.
struct Schedule {
    /// (when, start?, planned index), in order; `next_action` is the first not done.
    actions: Vec<(Duration, bool, usize)>,
    next_action: usize,
    publications: Vec<Publication>,
    next_pub: usize,
    /// Edits of published items.
    prng: Rng,
    /// Faults started and not yet ended (planned indexes).
    active: BTreeSet<usize>,
    next_backlog: Duration,
    next_power: Duration,
    /// The outbox and status sampler (joined at the end).
    sampler: Option<std::thread::JoinHandle<()>>,
    /// The origin's event reader's index in the threads (joined before the end).
    origin_reader: usize,
}

impl Session {
    /// Start the topology (origin, proxy, towers, devices), publish the initial catalog:
    /// time 0 of the run. The scenario's faults are planned first; one the lab cannot
    /// inject is an error before anything starts.
    pub fn start(o: LabOptions) -> Result<Session> {
        let sc = o.scenario.clone();
        let plan = crate::plan::plan(&sc, &o.file, o.seed)?;
        let next_id = (sc.faults.len() + plan.drawn) as u64;
        let planned = plan.faults;
        let run_dir =
            std::env::temp_dir().join(format!("sovereign-lab-{}-{}", std::process::id(), now_us()));
        {
            // A fresh private directory: never one that already exists (someone else's).
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&run_dir)
                .with_context(|| format!("cannot create {}", run_dir.display()))?;
        }
        let backend = o.backend.open(&o.exe, &run_dir, &o.state_dir)?;
        let audit = std::fs::File::create(run_dir.join("lab-audit.jsonl"))?;
        let shared = Arc::new(Shared {
            log: Log::new(),
            manifests: Mutex::new(BTreeMap::new()),
            items: Mutex::new(Default::default()),
            submitted: Mutex::new(BTreeMap::new()),
            powered: sc.towers.iter().map(|_| AtomicBool::new(false)).collect(),
            stop_ops: AtomicBool::new(false),
            stop_reads: AtomicBool::new(false),
            stop_events: AtomicBool::new(false),
            stop_origin_events: AtomicBool::new(false),
            stop_sampling: AtomicBool::new(false),
            warnings: Mutex::new(Vec::new()),
            repairs: Mutex::new(Vec::new()),
            links_read: Mutex::new(Vec::new()),
            streams_opened: std::sync::atomic::AtomicUsize::new(0),
            modes: Mutex::new(vec![PowerMode::Normal; sc.towers.len()]),
            status: Mutex::new(vec![None; sc.towers.len()]),
            garbling: sc
                .towers
                .iter()
                .map(|_| std::sync::atomic::AtomicU32::new(0))
                .collect(),
            device_skip_verify: o.plant.as_deref().is_some_and(crate::plant_is_device),
        });
        let lab = Lab {
            sc: sc.clone(),
            backend,
            shared: shared.clone(),
            origin: Addrs {
                public: String::new(),
                admin: String::new(),
            },
            towers: Vec::new(),
            proxy_api: String::new(),
            run_dir: run_dir.clone(),
            audit,
            plant: o.plant.clone(),
            link_bytes: BTreeMap::new(),
            content: BTreeMap::new(),
            active: BTreeSet::new(),
            disk_faults: BTreeMap::new(),
            held_down: BTreeSet::new(),
            down_for: BTreeMap::new(),
            crash_holds: BTreeMap::new(),
            paused: BTreeSet::new(),
            timers: Vec::new(),
            power: sc
                .towers
                .iter()
                .map(|t| PowerModel::new(&t.power))
                .collect(),
            power_down: vec![false; sc.towers.len()],
            power_faults: BTreeMap::new(),
            weather: Rng::new(o.seed, 3),
            wifi_off: BTreeMap::new(),
            black_holed: BTreeMap::new(),
            db_port: None,
            db_closed: 0,
            db_died: false,
        };
        let mut s = Session {
            lab,
            o,
            planned,
            threads: Vec::new(),
            sched: None,
            phase: Phase::Safety,
            healed: Vec::new(),
            not_injected: Vec::new(),
            seen: 0,
            held: Vec::new(),
            handed_out: Time::ZERO,
            next_id,
            watched: std::cell::Cell::new(false),
            origin_up: (true, Duration::ZERO),
            failed: false,
            torn_down: false,
        };
        let sched = s.lab.setup(&s.o, &s.planned, &mut s.threads)?;
        s.sched = Some(sched);
        Ok(s)
    }

    /// One step of the run: the fault starts and ends, steps, power ticks, publications
    /// and samples due now; once the scenario's duration is over, the heal; then the
    /// liveness checks; then the end. `false` once the run has ended
    /// ([`Session::finish`] makes its report). It waits only for the servers: an
    /// injection's calls, and a server it starts again until it answers its health
    /// check. An error ends the run for good (every later tick fails; dropping the
    /// session cleans up).
    pub fn tick(&mut self) -> Result<bool> {
        if self.failed {
            bail!("the run failed earlier");
        }
        let r = self.tick_inner();
        self.failed = r.is_err();
        r
    }

    fn tick_inner(&mut self) -> Result<bool> {
        Lab::interrupted(&self.o)?;
        let Some(sched) = self.sched.as_mut() else {
            return Ok(false);
        };
        let now = self.lab.shared.log.elapsed();
        if self.watched.get() && now >= self.origin_up.1 {
            // For the snapshot only: a backend that cannot say counts as down.
            let up =
                self.lab.alive("origin").unwrap_or(false) && !self.lab.paused.contains("origin");
            self.origin_up = (up, now + ORIGIN_LOOK_EVERY);
        }
        match &mut self.phase {
            Phase::Safety => {
                if !self.lab.tick_safety(sched, &self.planned)? {
                    self.lab.heal_all(sched, &self.planned)?;
                    self.phase = Phase::Liveness {
                        heal: self.lab.shared.log.elapsed(),
                        converged: vec![false; self.lab.sc.towers.len()],
                        next_check: Duration::ZERO,
                    };
                }
                Ok(true)
            }
            Phase::Liveness {
                heal,
                converged,
                next_check,
            } => {
                if now < *next_check {
                    return Ok(true);
                }
                *next_check = now + LIVENESS_EVERY;
                if self.lab.tick_liveness(sched, *heal, converged)? {
                    return Ok(true);
                }
                self.lab.end(sched, &mut self.threads)?;
                self.phase = Phase::Ended;
                Ok(false)
            }
            Phase::Ended => Ok(false),
        }
    }

    /// Time since the run's start.
    pub fn elapsed(&self) -> Duration {
        self.lab.shared.log.elapsed()
    }

    /// The run's directory (data, logs, audit files; removed at the end unless kept).
    pub fn run_dir(&self) -> &Path {
        &self.lab.run_dir
    }

    /// The scenario being run.
    pub fn scenario(&self) -> &Scenario {
        &self.lab.sc
    }

    /// Why faults cannot be injected or healed by hand now, if they cannot: the heal
    /// has begun (or is due), or the run failed.
    fn not_injectable(&self) -> Option<&'static str> {
        if self.failed {
            Some("the run failed")
        } else if self.sched.is_none() || self.phase != Phase::Safety {
            Some("the run has healed")
        } else if self.lab.shared.log.elapsed() >= self.lab.sc.duration {
            Some("the scenario's duration is over: the heal is due")
        } else {
            None
        }
    }

    /// Inject `spec` now (its `at` is ignored), exactly as a scenario's fault of the
    /// same kind is injected; it ends after its duration, at the heal, or at
    /// [`Session::heal`]. `Ok(Ok((id, when)))`: its id (after every id of the scenario's
    /// own faults) and when it started. `Ok(Err(why))`: refused, nothing done — the heal
    /// has begun, or the lab cannot inject it (the reason `lab run` gives for a
    /// scenario's fault). `Err`: the injection failed part way; the run is over.
    pub fn inject(&mut self, mut spec: FaultSpec) -> Result<Result<(usize, Duration), String>> {
        if let Some(why) = self.not_injectable() {
            return Ok(Err(format!("faults can no longer be injected: {why}")));
        }
        let injection = match crate::plan::injection(&self.lab.sc, &spec) {
            Ok(i) => i,
            Err(why) => {
                return Ok(Err(format!(
                    "{} on {} cannot be injected in the lab: {why}",
                    spec.kind.name(),
                    sovereign_report::data::target_name(&self.lab.sc, &spec.target)
                )));
            }
        };
        let now = self.lab.shared.log.elapsed();
        spec.at = now;
        let id = self.next_id;
        let r = self.inject_planned(
            Planned {
                id,
                spec,
                injection,
            },
            now,
        );
        self.failed = r.is_err();
        r?;
        self.next_id += 1;
        Ok(Ok((id as usize, now)))
    }

    fn inject_planned(&mut self, p: Planned, now: Duration) -> Result<()> {
        let sched = self.sched.as_mut().expect("injectable");
        self.lab.inject(&p)?;
        let k = self.planned.len();
        let end = (now + p.spec.duration).min(self.lab.sc.duration);
        self.planned.push(p);
        if end > now {
            let key = (end, false, k);
            let rest = &sched.actions[sched.next_action..];
            let at = sched.next_action + rest.partition_point(|a| *a <= key);
            sched.actions.insert(at, key);
        }
        self.lab.started(sched, &self.planned, k)
    }

    /// End every fault on now (each as it would end by itself); their ids and when.
    /// Refused (`Ok(Err(why))`) once the heal has begun; `Err`: a lift failed, the run
    /// is over.
    pub fn heal(&mut self) -> Result<Result<(Vec<usize>, Duration), String>> {
        if let Some(why) = self.not_injectable() {
            return Ok(Err(format!(
                "faults can no longer be healed by hand: {why}"
            )));
        }
        let sched = self.sched.as_mut().expect("injectable");
        let now = self.lab.shared.log.elapsed();
        let ks: Vec<usize> = std::mem::take(&mut sched.active).into_iter().collect();
        let mut ids = Vec::new();
        for &k in &ks {
            let p = &self.planned[k];
            if let Err(e) = self.lab.lift(p) {
                self.failed = true;
                return Err(e);
            }
            ids.push(p.id as usize);
            self.healed.push((k, now));
        }
        Ok(Ok((ids, now)))
    }

    /// Faults ended early by [`Session::heal`] or [`Session::end_early`]: (their position
    /// in the report's schedule, when).
    pub fn healed(&self) -> &[(usize, Duration)] {
        &self.healed
    }

    /// The positions in the report's schedule of the faults [`Session::end_early`] left
    /// out (never injected: they were due at or after the cut).
    pub fn not_injected(&self) -> &[usize] {
        &self.not_injected
    }

    /// End the scenario now, before its duration is over (an operator quitting the
    /// console): the faults on are healed (recorded as by [`Session::heal`]), none of
    /// the schedule's later faults is injected and nothing more is published; the heal
    /// and the liveness phase follow as after a whole run, and the run's duration
    /// becomes the time of the cut. A warning says so in the report. Nothing to do once
    /// the heal has begun.
    pub fn end_early(&mut self) -> Result<()> {
        if self.failed {
            bail!("the run failed earlier");
        }
        let Some(sched) = self.sched.as_mut().filter(|_| self.phase == Phase::Safety) else {
            return Ok(());
        };
        let now = self.lab.shared.log.elapsed();
        if now >= self.lab.sc.duration {
            return Ok(());
        }
        self.not_injected = sched.actions[sched.next_action..]
            .iter()
            .filter(|(_, start, _)| *start)
            .map(|(_, _, k)| *k)
            .collect();
        let later = self.not_injected.len();
        self.healed.extend(sched.active.iter().map(|&k| (k, now)));
        let healed = self.lab.heal_all(sched, &self.planned);
        self.failed = healed.is_err();
        healed?;
        self.lab.sc.duration = now;
        self.phase = Phase::Liveness {
            heal: self.lab.shared.log.elapsed(),
            converged: vec![false; self.lab.sc.towers.len()],
            next_check: Duration::ZERO,
        };
        self.lab.shared.warn(format!(
            "the run was ended early at {:.1} s: the faults on were healed then, {later} \
             scheduled later were not injected, and the liveness check ran from there",
            now.as_secs_f64()
        ));
        Ok(())
    }

    /// The observations made since the last call, in time order, for a live view (the
    /// log itself is kept whole, and sorted, for the report). They come from several
    /// processes and threads, each stamped when it happened, and arrive out of order: one
    /// is handed out once it is [`LIVE_SETTLE`] old (all of them once the run is over),
    /// and one that arrives later than that with an older stamp is handed out at the time
    /// of the last one handed out, so that the stream never goes back in time.
    pub fn take_observations(&mut self) -> Vec<Stamped> {
        {
            let entries = lock(&self.lab.shared.log.entries);
            let from = self.seen.min(entries.len());
            self.held.extend_from_slice(&entries[from..]);
            self.seen = entries.len();
        }
        self.held.sort_by_key(|s| s.at);
        let ripe = if self.phase == Phase::Ended || self.failed {
            self.held.len()
        } else {
            let cut = Time::ZERO + self.elapsed().saturating_sub(LIVE_SETTLE);
            self.held.partition_point(|s| s.at <= cut)
        };
        let mut out: Vec<Stamped> = self.held.drain(..ripe).collect();
        for s in &mut out {
            s.at = s.at.max(self.handed_out);
            self.handed_out = s.at;
        }
        out
    }

    /// What the run looks like now, in the simulator's terms (the console draws it): each
    /// process as the lab sees it (started, killed, frozen), each tower's power plant as
    /// the lab steps it, each uplink proxy's cut, and each tower's own status (active
    /// link, healthy links, items, outbox, queues) as its last `/admin/status` said,
    /// within a second. No violations: the lab's oracles judge at the end.
    pub fn snapshot(&self) -> sovereign_sim::world::Snapshot {
        use sovereign_sim::world::{FaultView, LinkView, Phase as View, Snapshot, TowerView};
        self.watched.set(true);
        let lab = &self.lab;
        let status = lock(&lab.shared.status);
        let modes = lock(&lab.shared.modes);
        let active: BTreeSet<usize> = self
            .sched
            .as_ref()
            .map(|s| s.active.clone())
            .unwrap_or_default();
        let towers = lab
            .sc
            .towers
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let st = status.get(i).and_then(|s| s.as_ref());
                let running = lab.shared.powered[i].load(Ordering::Relaxed);
                let count = |k: &str| st.and_then(|v| v[k].as_u64()).unwrap_or(0);
                let links_up: Vec<&str> = st
                    .and_then(|v| v["links_up"].as_array())
                    .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
                    .unwrap_or_default();
                let passing = |k: LinkKind| !lab.black_holed.contains_key(&proxy_name(i, k));
                let active_link =
                    st.and_then(|v| v["active_link"].as_str()?.parse::<LinkKind>().ok());
                let paused = lab.paused.contains(&t.name);
                let mode = if running { modes[i] } else { PowerMode::Off };
                let kinds = t.links.iter().map(|l| l.kind);
                let steady = steady_now(running, paused, mode, active_link, kinds, passing);
                TowerView {
                    name: t.name.clone(),
                    running,
                    paused,
                    power_mode: mode,
                    soc: lab.power[i].soc(),
                    solar_w: lab.power[i].solar_w,
                    active_link,
                    links: t
                        .links
                        .iter()
                        .map(|l| LinkView {
                            kind: l.kind,
                            passing: passing(l.kind),
                            healthy: running && links_up.contains(&l.kind.name()),
                        })
                        .collect(),
                    wifi_up: !lab.wifi_off.contains_key(&wifi_proxy_name(i)),
                    items_servable: count("items_servable"),
                    items_pending: count("items_pending"),
                    outbox: count("outbox"),
                    // The status names the classes as `P0`..`P3`.
                    queued: Priority::ALL.map(|c| {
                        st.and_then(|v| v["queued"][c.to_string()].as_u64())
                            .unwrap_or(0)
                    }),
                    steady,
                    devices: t.devices,
                }
            })
            .collect();
        Snapshot {
            now: Time::from_micros(self.elapsed().as_micros() as u64),
            phase: match self.phase {
                Phase::Safety => View::Safety,
                Phase::Liveness { .. } => View::Liveness,
                Phase::Ended => View::Done,
            },
            heal_at: Time::ZERO + lab.sc.duration,
            origin_up: self.origin_up.0,
            towers,
            faults: self
                .planned
                .iter()
                .enumerate()
                .map(|(k, p)| FaultView {
                    id: p.id as usize,
                    spec: p.spec.clone(),
                    active: active.contains(&k),
                })
                .collect(),
            violations: Vec::new(),
            events: lock(&lab.shared.log.entries).len() as u64,
        }
    }

    /// Run to the end (ticking every [`TICK`]), stop everything, and judge what was
    /// observed: the run's report.
    pub fn finish(mut self) -> Result<LabRun> {
        if self.failed {
            bail!("the run failed earlier: no report");
        }
        while self.tick()? {
            std::thread::sleep(TICK);
        }
        self.teardown();
        let shared = self.lab.shared.clone();
        let entries = std::mem::take(&mut *lock(&shared.log.entries));
        let warnings = lock(&shared.warnings).clone();
        let repairs = std::mem::take(&mut *lock(&shared.repairs));
        let links_read = std::mem::take(&mut *lock(&shared.links_read));
        let run_dir = self.lab.run_dir.clone();
        let dump = self.o.keep.then(|| run_dir.join("observations.log"));
        let (mut report, series, versions) = judge(
            &self.lab.sc,
            self.o.seed,
            &self.planned,
            entries,
            &repairs,
            &links_read,
            dump.as_deref(),
        );
        // The simulator's plant of the same name, when there is one (`no-failover` and
        // `lying-fsync` are the lab's own).
        report.plant = self.o.plant.as_deref().and_then(|p| p.parse().ok());
        Ok(LabRun {
            report,
            series,
            run_dir,
            warnings,
            versions,
        })
    }

    /// Stop the threads, kill every process, release the ports; remove the run's
    /// directory unless it is kept. Once.
    fn teardown(&mut self) {
        if std::mem::replace(&mut self.torn_down, true) {
            return;
        }
        let s = &self.lab.shared;
        for flag in [
            &s.stop_ops,
            &s.stop_reads,
            &s.stop_events,
            &s.stop_origin_events,
            &s.stop_sampling,
        ] {
            flag.store(true, Ordering::Relaxed);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(t) = self.sched.as_mut().and_then(|s| s.sampler.take()) {
            let _ = t.join();
        }
        self.lab.backend.shutdown();
        crate::backend::release_ports();
        if !self.o.keep {
            let _ = std::fs::remove_dir_all(&self.lab.run_dir);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.teardown();
    }
}

impl Lab {
    fn interrupted(o: &LabOptions) -> Result<()> {
        if o.interrupt.load(Ordering::Relaxed) {
            bail!("interrupted (Ctrl-C or SIGTERM): every process was stopped");
        }
        Ok(())
    }

    /// Start the topology and publish the initial catalog; the timed rest of the run.
    fn setup(
        &mut self,
        o: &LabOptions,
        planned: &[Planned],
        threads: &mut Vec<std::thread::JoinHandle<()>>,
    ) -> Result<Schedule> {
        let sc = self.sc.clone();
        if sc.origin.chunk != Default::default() {
            self.shared.warn(
                "[origin] chunk sizes are not passed to the real origin (it has no flag for them); it chunks with its defaults".into(),
            );
        }
        if sc.origin.answer_bytes_max != sovereign_logic::protocol::ANSWER_BYTES_MAX {
            self.shared.warn(format!(
                "[origin] answer_bytes_max = {} models a smaller answer limit in the simulator only; the real tower reads answers up to {} bytes and the real origin cuts its catalog pages for that",
                sc.origin.answer_bytes_max,
                sovereign_logic::protocol::ANSWER_BYTES_MAX
            ));
        }
        // The origin's PostgreSQL, when the scenario asks for it.
        let mut database = Vec::new();
        if sc.origin.database == Database::Postgres {
            let port = free_port()?;
            self.backend.start_postgres(DATABASE, port)?;
            self.wait_database(port)?;
            crate::database::create_database(port)?;
            self.db_port = Some(port);
            println!("lab: {DATABASE} (PostgreSQL) listens on 127.0.0.1:{port}");
            database = vec![
                "--postgres".to_string(),
                crate::database::conninfo(port, DB_NAME),
            ];
        }
        // The origin.
        let port = |_: ()| -> Result<String> { Ok(format!("127.0.0.1:{}", free_port()?)) };
        self.origin = Addrs {
            public: port(())?,
            admin: port(())?,
        };
        let mut args: Vec<String> = vec![
            "origin".into(),
            "serve".into(),
            "--data".into(),
            self.run_dir.join("origin").display().to_string(),
            "--listen".into(),
            self.origin.public.clone(),
            "--admin-listen".into(),
            self.origin.admin.clone(),
            "--storage-free-min-mib".into(),
            "0".into(),
        ];
        args.extend(database);
        if let Some(p) = o.plant.as_ref().filter(|p| crate::plant_is_origin(p)) {
            args.extend(["--plant".to_string(), p.clone()]);
        }
        args.extend(tokens());
        self.backend.start("origin", args)?;
        wait_healthy(self.backend.as_mut(), "origin", &self.origin.public)?;
        println!(
            "lab: origin listens on {} (admin {})",
            self.origin.public, self.origin.admin
        );
        // The proxy, one proxy per uplink in front of the origin's tower API.
        self.proxy_api = port(())?;
        self.backend.start(
            "proxy",
            vec![
                "proxy".into(),
                "serve".into(),
                "--listen".into(),
                self.proxy_api.clone(),
                "--seed".into(),
                o.seed.to_string(),
            ],
        )?;
        let deadline = Instant::now() + START_TIMEOUT;
        while !http::request(
            "GET",
            &self.proxy_api,
            "/version",
            &[],
            b"",
            Duration::from_secs(1),
        )
        .is_ok_and(|r| r.status == 200)
        {
            if Instant::now() > deadline {
                bail!(
                    "the proxy did not answer; its log:\n{}",
                    tail(&self.backend.log_path("proxy"))
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut populate = Vec::new();
        for (i, t) in sc.towers.iter().enumerate() {
            for l in &t.links {
                self.link_bytes
                    .insert(proxy_name(i, l.kind), (i, l.kind, 0));
                populate.push(serde_json::json!({
                    "name": proxy_name(i, l.kind),
                    "listen": "127.0.0.1:0",
                    "upstream": self.origin.public,
                }));
            }
        }
        let r = self.proxy(
            "POST",
            "/populate",
            &serde_json::Value::Array(populate),
            &[200, 201],
            "creating the uplink proxies",
        )?;
        let mut listen: BTreeMap<String, String> = BTreeMap::new();
        for p in r.json()?["proxies"].as_array().cloned().unwrap_or_default() {
            if let (Some(n), Some(l)) = (p["name"].as_str(), p["listen"].as_str()) {
                listen.insert(n.to_string(), l.to_string());
            }
        }
        println!(
            "lab: proxy listens on {} (API); uplinks {}",
            self.proxy_api,
            listen
                .iter()
                .map(|(n, l)| format!("{n}={l}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        // The run starts: time 0.
        self.shared.log.t0_reset();
        self.shared.log.now(Obs::start(&sc));
        // Joined before the end (below), or with the others if the run fails first.
        let origin_reader = threads.len();
        {
            let s = self.shared.clone();
            let admin = self.origin.admin.clone();
            threads.push(std::thread::spawn(move || origin_events(&s, &admin)));
        }
        // The towers.
        let defaults = tower_defaults();
        for (i, t) in sc.towers.iter().enumerate() {
            let id = i as u32 + 1;
            let r = call(
                "POST",
                &self.origin.admin,
                &format!("/admin/towers/{id}"),
                Some(OPERATOR),
                b"",
            )?;
            let r = expect(r, &[201], "issuing a tower credential")?;
            let credential = r.json()?["credential"]
                .as_str()
                .ok_or_else(|| anyhow!("no credential in the origin's answer"))?
                .to_string();
            let file = self.run_dir.join(format!("tower-{id}.credential"));
            std::fs::write(&file, format!("{credential}\n"))?;
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            }
            let addrs = Addrs {
                public: port(())?,
                admin: port(())?,
            };
            let mut args: Vec<String> = vec![
                "tower".into(),
                "serve".into(),
                "--id".into(),
                id.to_string(),
                "--data".into(),
                self.run_dir.join(&t.name).display().to_string(),
                "--listen".into(),
                addrs.public.clone(),
                "--admin-listen".into(),
                addrs.admin.clone(),
                "--credential".into(),
                file.display().to_string(),
                // The scenario's catalog poll and request timeout (the simulator runs the
                // same); without them, the logic's defaults, as in the simulator.
                "--catalog-interval-s".into(),
                t.catalog_poll
                    .unwrap_or(defaults.catalog_interval)
                    .as_secs()
                    .to_string(),
                "--request-timeout-s".into(),
                t.request_timeout
                    .unwrap_or(defaults.request_timeout)
                    .as_secs()
                    .to_string(),
                "--probe-interval-s".into(),
                t.probe_interval
                    .unwrap_or(defaults.probe.interval)
                    .as_secs()
                    .to_string(),
                // Every device of the lab reads from 127.0.0.1: no per-address limits.
                "--read-rate-per-s".into(),
                "0".into(),
                "--ops-rate-per-s".into(),
                "0".into(),
                "--device-ops-rate-per-s".into(),
                "0".into(),
                "--storage-free-min-mib".into(),
                "0".into(),
            ];
            for l in &t.links {
                let name = proxy_name(i, l.kind);
                let at = listen
                    .get(&name)
                    .ok_or_else(|| anyhow!("the proxy did not create {name}"))?;
                args.push("--uplink".into());
                args.push(format!("{}=http://{at}", l.kind.name()));
            }
            // The power telemetry the lab writes from the scenario's power model (read
            // every second; the model steps every POWER_TICK, as in the simulator).
            self.write_reading(i)?;
            args.push("--power-telemetry".into());
            args.push(self.telemetry_file(i).display().to_string());
            args.push("--power-interval-s".into());
            args.push("1".into());
            if let Some(p) = o.plant.as_ref().filter(|p| {
                !crate::plant_is_switchboard(p)
                    && !crate::plant_is_origin(p)
                    && !crate::plant_is_device(p)
            }) {
                args.push("--plant".into());
                args.push(p.clone());
            }
            args.extend(tokens());
            self.backend.start(&t.name, args)?;
            self.towers.push(addrs);
        }
        for i in 0..sc.towers.len() {
            let name = sc.towers[i].name.clone();
            wait_healthy(self.backend.as_mut(), &name, &self.towers[i].public)?;
            println!(
                "lab: {name} listens on {} (admin {})",
                self.towers[i].public, self.towers[i].admin
            );
            self.shared.powered[i].store(true, Ordering::Relaxed);
            self.shared.log.now(Obs::TowerUp { tower: i });
            self.switchboard(&name)?;
            let s = self.shared.clone();
            let admin = self.towers[i].admin.clone();
            threads.push(std::thread::spawn(move || tower_events(&s, i, &admin)));
        }
        // The initial catalog, once every tower's event stream is open (the streams have
        // no history: a version made servable before its reader connected would be
        // missing from the freshness samples).
        let deadline = Instant::now() + START_TIMEOUT;
        while self.shared.streams_opened.load(Ordering::Relaxed) < sc.towers.len() {
            if Instant::now() > deadline {
                bail!("the towers' event streams did not open within {START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Named as the simulator names them (one run-wide counter), so that `lab
        // fidelity` can publish the simulator's own schedule.
        let mut rng = Rng::new(o.seed, 1);
        let initial = initial_items(&sc);
        let mut next_item = initial.len() as u64;
        let mut of_class: BTreeMap<Priority, Vec<String>> = BTreeMap::new();
        for (id, class, size) in initial {
            let bytes = rng.bytes(size as usize);
            self.publish(&id, class, &bytes)?;
            of_class.entry(class).or_default().push(id.clone());
            self.content.insert(id, bytes);
        }
        // Each tower's Wi-Fi: a proxy between its devices and it, as its uplinks have one.
        let mut wifi = Vec::new();
        for i in 0..sc.towers.len() {
            let name = wifi_proxy_name(i);
            let body = serde_json::json!({
                "name": name,
                // A reserved port, not port 0: switching the proxy off closes its
                // listener, and switching it on binds the same port again.
                "listen": port(())?,
                "upstream": self.towers[i].public,
            });
            let r = self.proxy(
                "POST",
                "/proxies",
                &body,
                &[200, 201],
                &format!("creating the Wi-Fi proxy {name}"),
            )?;
            let listen = r.json()?["listen"]
                .as_str()
                .ok_or_else(|| anyhow!("the proxy did not say where {name} listens"))?
                .to_string();
            println!(
                "lab: {name} listens on {listen} (devices of {})",
                sc.towers[i].name
            );
            wifi.push(listen);
        }
        // The devices, each through its tower's Wi-Fi proxy.
        let mut d = 0usize;
        for (i, t) in sc.towers.iter().enumerate() {
            for _ in 0..t.devices {
                let s = self.shared.clone();
                let addr = wifi[i].clone();
                let w = sc.workload.clone();
                let seed = o.seed;
                let dev = d;
                threads.push(std::thread::spawn(move || {
                    device(&s, seed, dev, i, &addr, &w)
                }));
                d += 1;
            }
        }
        // The outboxes and the servers' storage state, once a second, in a thread of
        // their own: a server slowed by a fault answers late, and the fault schedule must
        // not wait for it.
        let sampler = {
            let s = self.shared.clone();
            let towers: Vec<String> = self.towers.iter().map(|t| t.admin.clone()).collect();
            let origin = self.origin.admin.clone();
            Some(std::thread::spawn(move || {
                sample_servers(&s, &towers, &origin)
            }))
        };
        // The fault schedule and publications, in wall-clock time.
        let mut actions: Vec<(Duration, bool, usize)> = Vec::new(); // (when, start?, planned index)
        for (k, p) in planned.iter().enumerate() {
            if p.spec.at >= sc.duration {
                continue;
            }
            actions.push((p.spec.at, true, k));
            let end = (p.spec.at + p.spec.duration).min(sc.duration);
            if end > p.spec.at {
                actions.push((end, false, k));
            }
        }
        actions.sort_by_key(|a| (a.0, a.1, a.2)); // an end before a start at the same time
        // Publications: given, or drawn as the simulator draws them (each one an edit of
        // an item of its class half the time, else a new item).
        let mut prng = Rng::new(o.seed, 2);
        let publications: Vec<Publication> = match &o.publications {
            Some(p) => p.clone(),
            None => {
                let mut drawn: Vec<(Duration, Priority)> = Vec::new();
                for (c, rate) in sc.workload.publish_per_hour.iter().enumerate() {
                    let mut t = Duration::ZERO;
                    while let Some(w) = prng.wait(*rate) {
                        t += w;
                        if t >= sc.duration {
                            break;
                        }
                        drawn.push((t, Priority::ALL[c]));
                    }
                }
                drawn.sort_by_key(|p| p.0);
                drawn
                    .into_iter()
                    .map(|(at, class)| {
                        let same = of_class.entry(class).or_default();
                        let item = if !same.is_empty() && prng.unit() < 0.5 {
                            same[(prng.next() % same.len() as u64) as usize].clone()
                        } else {
                            next_item += 1;
                            let id = item_name(class, next_item);
                            same.push(id.clone());
                            id
                        };
                        Publication {
                            at,
                            item,
                            class,
                            size: sc.workload.publish_bytes[class.index()],
                        }
                    })
                    .collect()
            }
        };
        Ok(Schedule {
            actions,
            next_action: 0,
            publications,
            next_pub: 0,
            prng,
            active: BTreeSet::new(),
            next_backlog: Duration::ZERO,
            next_power: power_tick_every(self.sc.power_time_scale),
            sampler,
            origin_reader,
        })
    }

    /// One tick of the scenario's duration: what is due now. `false` once it is over.
    fn tick_safety(&mut self, sc: &mut Schedule, planned: &[Planned]) -> Result<bool> {
        let now = self.shared.log.elapsed();
        while sc.next_action < sc.actions.len() && sc.actions[sc.next_action].0 <= now {
            let (_, start, k) = sc.actions[sc.next_action];
            sc.next_action += 1;
            if start {
                self.inject(&planned[k])?;
                self.started(sc, planned, k)?;
            } else if sc.active.remove(&k) {
                self.lift(&planned[k])?;
            }
        }
        self.run_timers(now)?;
        self.check_exits()?;
        while now >= sc.next_power {
            self.power_tick()?;
            sc.next_power += power_tick_every(self.sc.power_time_scale);
        }
        while sc.next_pub < sc.publications.len() && sc.publications[sc.next_pub].at <= now {
            let p = sc.publications[sc.next_pub].clone();
            sc.next_pub += 1;
            let bytes = match self.content.get_mut(&p.item) {
                Some(b) => {
                    edit(b, &mut sc.prng);
                    b.clone()
                }
                None => sc.prng.bytes(p.size as usize),
            };
            self.publish(&p.item, p.class, &bytes)?;
            self.content.insert(p.item.clone(), bytes);
        }
        if now >= sc.next_backlog {
            sc.next_backlog = now + Duration::from_secs(1);
            self.sample_links();
        }
        Ok(now < self.sc.duration)
    }

    /// Fault `k` was injected: it lasts until its end action, or (an instant fault: a
    /// restart, bit rot; no end action) it ends as it starts.
    fn started(&mut self, sc: &mut Schedule, planned: &[Planned], k: usize) -> Result<()> {
        if sc.actions[sc.next_action..]
            .iter()
            .any(|a| !a.1 && a.2 == k)
        {
            sc.active.insert(k);
            Ok(())
        } else {
            self.lift(&planned[k])
        }
    }

    /// The heal, once the scenario's duration is over.
    fn heal_all(&mut self, sched: &mut Schedule, planned: &[Planned]) -> Result<()> {
        // The heal: every fault still on ends; operations stop (reads go on).
        for k in std::mem::take(&mut sched.active) {
            self.lift(&planned[k])?;
        }
        let _ = call("POST", &self.proxy_api, "/reset", None, b"");
        // As in the simulator's heal: power restored (every battery topped up), nothing
        // holds a server down any more (a brown-out's pending boot included), and every
        // server that is not running starts again.
        self.timers.clear();
        self.down_for.clear();
        self.crash_holds.clear();
        for i in 0..self.power.len() {
            let p = &mut self.power[i];
            p.fade = 1.0;
            p.soc_wh = p.capacity();
            p.hard_cut = 0;
            self.power_down[i] = false;
            self.write_reading(i)?;
        }
        let servers: Vec<String> = std::iter::once("origin".to_string())
            .chain(self.sc.towers.iter().map(|t| t.name.clone()))
            .collect();
        for name in servers {
            if !self.alive(&name)? {
                self.audit("healed-start", serde_json::json!({ "server": name }));
                self.start_again(&name)?;
            }
        }
        self.shared.stop_ops.store(true, Ordering::Relaxed);
        self.shared.log.now(Obs::Healed {
            bound: self.sc.liveness_bound,
        });
        Ok(())
    }

    /// One look of the liveness phase: every tower reaches the origin's catalog, every
    /// outbox drains. `false` once they have, or the scenario's liveness bound is over.
    fn tick_liveness(
        &mut self,
        sched: &mut Schedule,
        heal: Duration,
        converged: &mut [bool],
    ) -> Result<bool> {
        for (i, c) in converged.iter_mut().enumerate() {
            if !*c && self.tower_converged(i) {
                *c = true;
                self.shared.log.now(Obs::Converged { tower: i });
            }
        }
        let drained =
            converged.iter().all(|c| *c) && self.outboxes().values().all(|o| o.is_empty());
        if drained || self.shared.log.elapsed() > heal + self.sc.liveness_bound {
            return Ok(false);
        }
        self.sample_links();
        self.check_exits()?;
        while self.shared.log.elapsed() >= sched.next_power {
            self.power_tick()?;
            sched.next_power += power_tick_every(self.sc.power_time_scale);
        }
        Ok(true)
    }

    /// The end: the last samples, the readers stopped, what the origin applied, the
    /// ledger.
    fn end(
        &mut self,
        sched: &mut Schedule,
        threads: &mut Vec<std::thread::JoinHandle<()>>,
    ) -> Result<()> {
        self.sample_links();
        // Let the devices' last operations settle, then the end (after the sampler's
        // last observation).
        self.shared.stop_sampling.store(true, Ordering::Relaxed);
        if let Some(t) = sched.sampler.take() {
            let _ = t.join();
        }
        self.shared.stop_reads.store(true, Ordering::Relaxed);
        // The origin's events stop here: what it applied from now on is read from it.
        self.shared
            .stop_origin_events
            .store(true, Ordering::Relaxed);
        let _ = threads.remove(sched.origin_reader).join();
        let outboxes = self.outboxes();
        // The backlog at the end is the outboxes the end holds (the sampler's last reading
        // can be a second older, from before the last applies).
        for (tower, keys) in &outboxes {
            self.shared.log.now(Obs::Backlog {
                tower: *tower,
                ops: keys.len() as u64,
            });
        }
        self.applies_not_seen(&outboxes)?;
        let ledger = self.ledger()?;
        self.shared.log.now(Obs::End {
            outboxes,
            ledger_contributed: ledger.0,
        });
        Ok(())
    }

    /// Before the end (the origin's event reader stopped): each acknowledged operation no
    /// tower holds and whose `OpApplied` event the lab did not see is asked for at the
    /// origin (`GET /admin/ops/{key}`); one it holds applied and committed (`durable`) is
    /// observed as applied now, with a warning (under the body the lab submitted: the
    /// answer does not say which body the origin applied). Such an event can be
    /// missed: emitted while the event stream reconnected after a restart, or never
    /// emitted, for a commit whose answer was lost (PostgreSQL) that the restarted origin
    /// recovered. The durability oracle needs the origin's word: a tower's receipt alone
    /// does not prove an apply.
    fn applies_not_seen(&mut self, outboxes: &BTreeMap<usize, BTreeSet<IdemKey>>) -> Result<()> {
        let (acked, applied) = {
            let entries = lock(&self.shared.log.entries);
            let mut acked = BTreeSet::new();
            let mut applied = BTreeSet::new();
            for e in entries.iter() {
                match &e.obs {
                    Obs::Acked { key, .. } => {
                        acked.insert(key.clone());
                    }
                    Obs::Applied { key, .. } => {
                        applied.insert(key.clone());
                    }
                    _ => {}
                }
            }
            (acked, applied)
        };
        let held: BTreeSet<&IdemKey> = outboxes.values().flatten().collect();
        for key in acked.difference(&applied).filter(|k| !held.contains(k)) {
            let r = call(
                "GET",
                &self.origin.admin,
                &format!("/admin/ops/{}", key.0),
                Some(VIEWER),
                b"",
            )?;
            // Only a committed apply counts: one whose commit is pending or failed (the
            // origin rebuilds without it) is what the durability oracle must see missing.
            let j = if r.status == 200 { r.json()? } else { continue };
            if j["outcome"]["result"] != "applied" || j["durable"] != true {
                continue;
            }
            let (fingerprint, amount_minor) = lock(&self.shared.submitted)
                .get(key)
                .copied()
                .unwrap_or((ChunkHash([0; 32]), None));
            self.shared.warn(format!(
                "the origin holds {key} applied, and its OpApplied event was not seen on the origin's event stream (read from GET /admin/ops)"
            ));
            self.shared.log.now(Obs::Applied {
                key: key.clone(),
                fingerprint,
                amount_minor,
            });
        }
        Ok(())
    }

    fn publish(&mut self, id: &str, class: Priority, bytes: &[u8]) -> Result<()> {
        let r = call(
            "POST",
            &self.origin.admin,
            &format!("/admin/publish?item={id}&priority={class}"),
            Some(OPERATOR),
            bytes,
        )?;
        let r = expect(r, &[201], &format!("publishing {id}"))?;
        let dto: sovereign_wire::CatalogEntryDto = serde_json::from_slice(&r.body)
            .with_context(|| format!("the origin's answer to publishing {id}"))?;
        let manifest = dto
            .manifest
            .to_manifest()
            .map_err(|e| anyhow!("the origin's manifest of {id}: {e}"))?;
        let item = manifest.item.clone();
        lock(&self.shared.manifests).insert((item.clone(), manifest.version), manifest.clone());
        {
            let mut items = lock(&self.shared.items);
            let of_class = &mut items[class.index()];
            if !of_class.contains(&item) {
                of_class.push(item);
            }
        }
        self.shared.log.now(Obs::Published { manifest });
        Ok(())
    }

    fn audit(&mut self, what: &str, detail: serde_json::Value) {
        use std::io::Write;
        let line = serde_json::json!({
            "at_unix_us": now_us(),
            "run_s": self.shared.log.elapsed().as_secs_f64(),
            "action": what,
            "detail": detail,
        });
        let _ = writeln!(self.audit, "{line}");
        let _ = self.audit.sync_data();
        crate::say(&format!("lab: {what} {detail}"));
    }

    fn server_index(&self, name: &str) -> Option<usize> {
        self.sc.towers.iter().position(|t| t.name == name)
    }

    fn admin_of(&self, name: &str) -> String {
        match self.server_index(name) {
            Some(i) => self.towers[i].admin.clone(),
            None => self.origin.admin.clone(),
        }
    }

    /// Switch a fault on through server `name`'s admin fault switchboard (chaos role);
    /// `what` names it in an error.
    fn post_fault(&self, name: &str, body: &serde_json::Value, what: &str) -> Result<()> {
        let r = call(
            "POST",
            &self.admin_of(name),
            "/admin/faults",
            Some(CHAOS),
            body.to_string().as_bytes(),
        )?;
        expect(r, &[200, 201], what).map(drop)
    }

    fn public_of(&self, name: &str) -> String {
        match self.server_index(name) {
            Some(i) => self.towers[i].public.clone(),
            None => self.origin.public.clone(),
        }
    }

    /// Kill `name` (SIGKILL); for a tower, what its recovery will find in its outbox.
    /// Nothing to do when it is not running (down for another fault or for want of
    /// power); a frozen process dies too.
    fn kill(&mut self, name: &str) -> Result<()> {
        if !self.alive(name)? {
            return Ok(());
        }
        self.backend.signal(name, Sig::Kill)?;
        // Dead only now: the signal returns once the process is gone, and until then it
        // ran on (a container's kill goes through the engine, milliseconds in which the
        // tower may forward an operation, see it applied and drop it from its outbox — a
        // crash stamped before that saw it lost).
        let at = now_us();
        self.paused.remove(name);
        if let Some(i) = self.server_index(name) {
            self.tower_stopped(i, at, false)?;
        }
        Ok(())
    }

    /// Tower `i`'s process stopped at `at` (wall clock, µs): not powered, back to power
    /// mode Normal for its next boot, and its `TowerDown` with what its store holds.
    fn tower_stopped(&mut self, i: usize, at: u64, clean: bool) -> Result<()> {
        self.shared.powered[i].store(false, Ordering::Relaxed);
        lock(&self.shared.modes)[i] = PowerMode::Normal;
        let durable_outbox = self.durable_outbox(i)?;
        self.shared.log.at(
            at,
            Obs::TowerDown {
                tower: i,
                clean,
                durable_outbox,
            },
        );
        Ok(())
    }

    /// The outbox keys in a stopped tower's store: read with the store's own recovery,
    /// exactly what the tower's recovery will see.
    fn durable_outbox(&self, i: usize) -> Result<BTreeSet<IdemKey>> {
        let dir = self.run_dir.join(&self.sc.towers[i].name);
        let store = sovereign_store::SqliteStore::open(&dir)
            .map_err(|e| anyhow!("reading {}'s store after the crash: {e}", dir.display()))?;
        let rec = sovereign_store::Store::recover_index(&store)
            .map_err(|e| anyhow!("reading {}'s store after the crash: {e}", dir.display()))?;
        Ok(rec
            .durable
            .keys()
            .filter_map(|k| match k {
                Key::Outbox(key) => Some(key.clone()),
                _ => None,
            })
            .collect())
    }

    /// Whether `name`'s process runs (frozen or not).
    fn alive(&mut self, name: &str) -> Result<bool> {
        Ok(!self.backend.wait_exit(name, Duration::ZERO)?)
    }

    /// Whether something keeps `name` down: a `crash` fault on, a crash loop's or a
    /// brown-out's down window, or (a tower) the want of power.
    fn held(&self, name: &str) -> bool {
        self.crash_holds.get(name).is_some_and(|n| *n > 0)
            || self.down_for.values().any(|s| s == name)
            || self
                .server_index(name)
                .is_some_and(|i| self.power_down[i] || self.power[i].hard_cut > 0)
    }

    /// Start `name` again, unless it runs or something still holds it down (then the
    /// last hold to go starts it).
    fn start_again(&mut self, name: &str) -> Result<()> {
        if self.held(name) || self.alive(name)? {
            return Ok(());
        }
        self.backend.restart(name)?;
        if let (DATABASE, Some(port)) = (name, self.db_port) {
            self.wait_database(port)?;
            return self.db_gate();
        }
        let addr = self.public_of(name);
        wait_healthy(self.backend.as_mut(), name, &addr)?;
        if let Some(i) = self.server_index(name) {
            self.shared.powered[i].store(true, Ordering::Relaxed);
            self.shared.log.now(Obs::TowerUp { tower: i });
        }
        self.switchboard(name)
    }

    /// Stop `name` cleanly with `sig` (SIGTERM, or SIGINT for PostgreSQL's fast
    /// shutdown) and wait for its exit: 20 s, then SIGKILL and a warning.
    fn stop(&mut self, name: &str, sig: Sig) -> Result<()> {
        self.backend.signal(name, sig)?;
        if !self.backend.wait_exit(name, Duration::from_secs(20))? {
            self.shared.warn(format!(
                "{name} did not stop within 20 s of {sig:?}; killed"
            ));
            self.backend.signal(name, Sig::Kill)?;
        }
        Ok(())
    }

    /// Wait for the origin's PostgreSQL on `port` to accept connections.
    fn wait_database(&mut self, port: u16) -> Result<()> {
        let backend = &mut self.backend;
        crate::database::wait_ready(port, || backend.wait_exit(DATABASE, Duration::ZERO))
            .with_context(|| {
                format!(
                    "{DATABASE}'s log ({}):\n{}",
                    backend.log_path(DATABASE).display(),
                    tail(&backend.log_path(DATABASE))
                )
            })
    }

    /// Open or close the origin's database to connections as the `db-lost` faults on now
    /// say ([`crate::database::gate`]), when PostgreSQL runs and is not frozen (a
    /// restarted one gets it from [`Lab::start_again`]; the setting is kept in
    /// PostgreSQL's catalog, so a kill does not lose it).
    fn db_gate(&mut self) -> Result<()> {
        let Some(port) = self.db_port else {
            return Ok(());
        };
        if !self.alive(DATABASE)? || self.paused.contains(DATABASE) {
            return Ok(());
        }
        let open = self.db_closed == 0;
        let ended = crate::database::gate(port, open)?;
        self.audit(
            "db-gate",
            serde_json::json!({ "open": open, "sessions_ended": ended }),
        );
        Ok(())
    }

    /// Switch on in server `name` what its admin switchboard must hold: the planted bug
    /// of the switchboard (towers only) and the disk faults on now. The switchboard lives
    /// in memory: a restarted server, or one whose switchboard was just cleared, needs
    /// them again.
    fn switchboard(&mut self, name: &str) -> Result<()> {
        if let Some(p) = self
            .plant
            .clone()
            .filter(|p| crate::plant_is_switchboard(p) && self.server_index(name).is_some())
        {
            let body = serde_json::json!({ "kind": p });
            self.post_fault(name, &body, &format!("planting {p} in {name}"))?;
            self.audit("plant", serde_json::json!({ "plant": p, "tower": name }));
        }
        let again: Vec<(u64, serde_json::Value)> = self
            .disk_faults
            .iter()
            .filter(|(_, (server, _))| server == name)
            .map(|(id, (_, body))| (*id, body.clone()))
            .collect();
        for (id, body) in again {
            self.post_fault(name, &body, &format!("injecting {body} into {name} again"))?;
            self.audit(
                "inject-again",
                serde_json::json!({ "fault": id, "server": name, "body": body }),
            );
        }
        Ok(())
    }

    fn telemetry_file(&self, i: usize) -> PathBuf {
        self.run_dir
            .join(format!("{}.power.json", self.sc.towers[i].name))
    }

    /// Tower `i` runs: serving, or frozen by a pause (a frozen tower still draws its
    /// load and can die of an empty battery, as in the simulator).
    fn running(&self, i: usize) -> bool {
        self.shared.powered[i].load(Ordering::Relaxed)
            || self.paused.contains(&self.sc.towers[i].name)
    }

    /// Tower `i`'s power mode as its events told (`Off` when it does not run).
    fn mode(&self, i: usize) -> PowerMode {
        if self.running(i) {
            lock(&self.shared.modes)[i]
        } else {
            PowerMode::Off
        }
    }

    /// Write tower `i`'s power reading where it reads its telemetry (a new file renamed
    /// over the old one: the tower never reads half a reading).
    fn write_reading(&self, i: usize) -> Result<()> {
        let spec = &self.sc.towers[i].power;
        let reading = self.power[i].reading(spec, self.mode(i));
        let dto = sovereign_wire::PowerReadingDto::from(&reading);
        let file = self.telemetry_file(i);
        let tmp = file.with_extension("json.new");
        std::fs::write(&tmp, serde_json::to_vec(&dto)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &file).with_context(|| format!("writing {}", file.display()))?;
        Ok(())
    }

    /// A tower that was running and whose process is gone without the lab stopping it:
    /// its power manager switched it off (it was shutting down) — a clean stop, down for
    /// want of power until the battery allows a boot — or it died on its own (warned).
    fn check_exits(&mut self) -> Result<()> {
        // The origin's PostgreSQL dying on its own (not for a fault) is a finding: said
        // once, and it stays down (the origin then fails its commits), as a tower that
        // dies on its own does.
        if self.db_port.is_some()
            && !self.db_died
            && !self.held(DATABASE)
            && !self.alive(DATABASE)?
        {
            self.db_died = true;
            self.shared.warn(format!(
                "{DATABASE} exited by itself; its log:\n{}",
                tail(&self.backend.log_path(DATABASE))
            ));
            self.audit("exited", serde_json::json!({ "server": DATABASE }));
        }
        for i in 0..self.sc.towers.len() {
            if !self.shared.powered[i].load(Ordering::Relaxed) {
                continue;
            }
            let name = self.sc.towers[i].name.clone();
            if !self.backend.wait_exit(&name, Duration::ZERO)? {
                continue;
            }
            let at = now_us();
            let shutting_down = lock(&self.shared.modes)[i] >= PowerMode::ShuttingDown;
            if !shutting_down {
                self.shared.warn(format!(
                    "{name} exited by itself while not shutting down; its log:\n{}",
                    tail(&self.backend.log_path(&name))
                ));
            }
            self.audit(
                "exited",
                serde_json::json!({ "tower": name, "power_off": shutting_down }),
            );
            // Down for want of power only after its power manager switched it off; a
            // tower that died on its own stays down (the run shows it), as no simulated
            // tower dies by itself.
            self.power_down[i] = shutting_down;
            self.tower_stopped(i, at, shutting_down)?;
        }
        Ok(())
    }

    /// One step of every tower's power plant, as the simulator's power tick: the battery
    /// charges or drains by the tower's mode; a running tower whose battery is empty dies
    /// (SIGKILL); a sample every [`POWER_OBS_EVERY`] steps; a tower down for want of power
    /// starts again once the grid is back or the battery reaches the reconnect threshold;
    /// a running tower gets the new reading.
    fn power_tick(&mut self) -> Result<()> {
        for i in 0..self.sc.towers.len() {
            let secs = self.power[i].next_step_secs();
            let spec = self.sc.towers[i].power.clone();
            let day = secs / 86_400;
            let daily = match self.power[i].weather.get(&day) {
                Some(w) => *w,
                None => {
                    let w = (self.weather.unit() - 0.5) * 0.4;
                    self.power[i].weather.insert(day, w);
                    w
                }
            };
            let solar = self.power[i].solar_w(&spec, secs, daily);
            let mode = self.mode(i);
            let empty = self.power[i].step(&spec, solar, mode, POWER_TICK);
            let running = self.running(i);
            let name = self.sc.towers[i].name.clone();
            if empty && running {
                let hard_cut = self.power[i].hard_cut > 0;
                self.shared.log.now(Obs::BatteryEmpty {
                    tower: i,
                    running: true,
                    hard_cut,
                });
                self.audit("battery-empty", serde_json::json!({ "tower": name }));
                self.kill(&name)?;
                self.power_down[i] = true;
            }
            let p = &self.power[i];
            if p.ticks % POWER_OBS_EVERY == 0 {
                self.shared.log.now(Obs::Power {
                    tower: i,
                    soc: p.soc(),
                    mode: self.mode(i),
                    energy_wh: p.energy_wh,
                    solar_w: solar,
                });
            }
            // A tower that boots now got its reading before it started.
            if !self.power_on_if_allowed(i)? {
                self.write_reading(i)?;
            }
        }
        Ok(())
    }

    /// A tower down for want of power boots when no hard cut holds it and the grid is
    /// up or the battery has reached the reconnect threshold (the simulator's rule, at
    /// each power tick and when a hard cut ends); other holds (a crash fault) still wait.
    /// Whether it booted (its reading written first, so that it starts on it).
    fn power_on_if_allowed(&mut self, i: usize) -> Result<bool> {
        let thresholds = sovereign_logic::tower::power::PowerThresholds::default();
        let p = &self.power[i];
        let may_boot = p.grid(&self.sc.towers[i].power)
            || sovereign_logic::tower::power::PowerManager::may_power_on(
                &thresholds,
                p.soc_permille(),
            );
        if !self.power_down[i] || p.hard_cut > 0 || !may_boot {
            return Ok(false);
        }
        self.power_down[i] = false;
        let name = self.sc.towers[i].name.clone();
        self.audit(
            "power-on",
            serde_json::json!({ "tower": name, "soc": self.power[i].soc() }),
        );
        self.write_reading(i)?;
        self.start_again(&name)?;
        Ok(true)
    }

    /// Rebuild the power plants' fault overlays (clouds, grid, UPS) from the power
    /// faults on now, as the simulator does at every fault start and end.
    fn power_overlays(&mut self) {
        for p in &mut self.power {
            p.clouds = 0.0;
            p.grid_lost = 0;
            p.ups_failed = 0;
        }
        for (i, kind) in self.power_faults.values() {
            let p = &mut self.power[*i];
            match kind {
                FaultKind::Clouds { cover } => p.clouds = p.clouds.max(*cover),
                FaultKind::GridLoss => p.grid_lost += 1,
                FaultKind::UpsFailure => p.ups_failed += 1,
                _ => {}
            }
        }
    }

    /// Run the crash loops' and flapping links' steps that are due at `now`, in time order.
    fn run_timers(&mut self, now: Duration) -> Result<()> {
        loop {
            let Some(next) = (0..self.timers.len())
                .filter(|&k| self.timers[k].at <= now)
                .min_by_key(|&k| self.timers[k].at)
            else {
                return Ok(());
            };
            let t = self.timers.swap_remove(next);
            // A brown-out's boot is owed whether or not the fault still lasts.
            let owed = t.step == Step::Boot && matches!(t.fault.injection, Injection::Power { .. });
            if owed || self.active.contains(&t.fault.id) {
                self.step(&t.fault, t.step, t.at)?;
            }
        }
    }

    /// One step of a fault on a schedule, due at `at`; schedules the next.
    fn step(&mut self, p: &Planned, step: Step, at: Duration) -> Result<()> {
        let id = p.id;
        let next = |lab: &mut Lab, after: Duration, step: Step| {
            lab.timers.push(Timer {
                at: at + after,
                fault: p.clone(),
                step,
            })
        };
        match (&p.injection, step) {
            (Injection::CrashLoop { server, period }, Step::Kill) => {
                self.audit("crash-loop-kill", serde_json::json!({ "fault": id }));
                self.kill(server)?;
                self.down_for.insert(id, server.clone());
                next(self, sovereign_scenario::faults::BOOT, Step::Boot);
                next(self, *period, Step::Kill);
            }
            (Injection::CrashLoop { server, .. }, Step::Boot)
                if self.down_for.remove(&id).is_some() =>
            {
                self.audit("crash-loop-boot", serde_json::json!({ "fault": id }));
                self.start_again(server)?;
            }
            (Injection::Power { tower, .. }, Step::Boot) if self.down_for.remove(&id).is_some() => {
                let name = self.sc.towers[*tower].name.clone();
                self.audit("brown-out-boot", serde_json::json!({ "fault": id }));
                self.start_again(&name)?;
            }
            (Injection::Flapping { cut, period }, Step::Down) => {
                self.audit("flap-down", serde_json::json!({ "fault": id }));
                self.cut(cut, id, "flap")?;
                self.held_down.insert(id);
                next(self, *period / 2, Step::Up);
            }
            (Injection::Flapping { cut, period }, Step::Up) => {
                if self.held_down.remove(&id) {
                    self.audit("flap-up", serde_json::json!({ "fault": id }));
                    self.uncut(cut, id, "flap")?;
                }
                next(self, *period - *period / 2, Step::Down);
            }
            _ => {}
        }
        Ok(())
    }

    fn inject(&mut self, p: &Planned) -> Result<()> {
        let at = now_us();
        self.audit(
            "inject",
            serde_json::json!({ "fault": p.id, "kind": p.spec.kind.name(), "target": sovereign_report::data::target_name(&self.sc, &p.spec.target), "injection": p.injection.describe() }),
        );
        match &p.injection {
            Injection::ProxyDown { cut } => self.cut(cut, p.id, "down")?,
            Injection::Toxic {
                proxies,
                kind,
                attributes,
            } => self.add_toxics(proxies, BOTH, p.id, kind, kind, attributes)?,
            Injection::Garble {
                tower,
                p: rate,
                window,
            } => {
                let body = serde_json::json!({ "probability": rate, "window": window });
                let proxy = [wifi_proxy_name(*tower)];
                self.add_toxics(&proxy, DOWN, p.id, "corrupt", "corrupt", &body)?;
                self.shared.garbling[*tower].fetch_add(1, Ordering::Relaxed);
            }
            Injection::Crash { server } => {
                *self.crash_holds.entry(server.clone()).or_insert(0) += 1;
                self.kill(server)?;
            }
            Injection::Restart { server } if !self.alive(server)? => {
                self.audit(
                    "skipped",
                    serde_json::json!({ "fault": p.id, "why": format!("{server} is not running") }),
                );
            }
            Injection::Restart { server } => {
                self.stop(server, Sig::Term)?;
                // Stopped once `stop` returns (as a kill, above).
                let t = now_us();
                if let Some(i) = self.server_index(server) {
                    self.tower_stopped(i, t, true)?;
                }
                self.start_again(server)?;
            }
            Injection::Shutdown { server } => {
                *self.crash_holds.entry(server.clone()).or_insert(0) += 1;
                if self.alive(server)? {
                    if self.paused.remove(server) {
                        self.backend.signal(server, Sig::Cont)?;
                    }
                    self.stop(server, Sig::Int)?;
                }
            }
            Injection::DbGate => {
                self.db_closed += 1;
                self.db_gate()?;
            }
            Injection::Pause { server } if !self.alive(server)? => {
                self.audit(
                    "skipped",
                    serde_json::json!({ "fault": p.id, "why": format!("{server} is not running") }),
                );
            }
            Injection::Pause { server } => {
                self.backend.signal(server, Sig::Stop)?;
                self.paused.insert(server.clone());
                if let Some(i) = self.server_index(server) {
                    self.shared.powered[i].store(false, Ordering::Relaxed);
                }
            }
            Injection::CrashLoop { .. } => self.step(p, Step::Kill, p.spec.at)?,
            Injection::Power { tower, kind } => {
                let (i, name) = (*tower, self.sc.towers[*tower].name.clone());
                self.power_faults.insert(p.id, (i, kind.clone()));
                self.power_overlays();
                match kind {
                    FaultKind::BatteryFade { capacity } => {
                        let m = &mut self.power[i];
                        m.fade = capacity.clamp(0.01, 1.0);
                        m.soc_wh = m.soc_wh.min(m.capacity());
                    }
                    FaultKind::HardCut => {
                        self.power[i].hard_cut += 1;
                        self.kill(&name)?;
                        self.power_down[i] = true;
                    }
                    FaultKind::BrownOut => {
                        let protected =
                            self.sc.towers[i].power.ups && self.power[i].ups_failed == 0;
                        if !protected && self.alive(&name)? {
                            self.kill(&name)?;
                            self.down_for.insert(p.id, name.clone());
                            self.timers.push(Timer {
                                at: p.spec.at + sovereign_scenario::faults::BOOT,
                                fault: p.clone(),
                                step: Step::Boot,
                            });
                        }
                    }
                    _ => {}
                }
                self.write_reading(i)?;
            }
            Injection::Flapping { .. } => self.step(p, Step::Down, p.spec.at)?,
            Injection::Admin {
                server,
                body,
                clear,
            } => {
                if self.alive(server)? && !self.paused.contains(server) {
                    self.post_fault(server, body, &format!("injecting {body} into {server}"))?;
                } else if *clear {
                    self.audit(
                        "deferred",
                        serde_json::json!({ "fault": p.id, "why": format!("{server} is not serving; posted when it starts") }),
                    );
                } else {
                    self.shared.warn(format!(
                        "fault {} ({body}) not injected: {server} is not serving",
                        p.id
                    ));
                }
                if *clear {
                    self.disk_faults
                        .insert(p.id, (server.clone(), body.clone()));
                }
            }
        }
        self.active.insert(p.id);
        self.shared.log.at(
            at,
            Obs::FaultStart {
                id: p.id,
                spec: p.spec.clone(),
            },
        );
        Ok(())
    }

    /// Take `proxies` down for fault `id` (`label` names its toxics). An uplink is a black
    /// hole, as in the simulator: nothing gets through and nothing answers (Toxiproxy's
    /// `timeout` toxic with 0: connections stay open, data is dropped) — refusing
    /// connections at once, which no cut fibre does, let the real tower fail over faster
    /// than any real one could. A tower's Wi-Fi is switched off instead (the proxy
    /// disabled: connections refused, open ones closed), as a device without its Wi-Fi
    /// fails at once — the simulator's reads over a down Wi-Fi are unreachable at once.
    fn cut(&mut self, cut: &Cut, id: u64, label: &str) -> Result<()> {
        let black_hole = serde_json::json!({ "timeout": 0 });
        self.add_toxics(&cut.uplinks, BOTH, id, label, "timeout", &black_hole)?;
        for x in &cut.uplinks {
            *self.black_holed.entry(x.clone()).or_insert(0) += 1;
        }
        for x in &cut.wifi {
            let n = self.wifi_off.entry(x.clone()).or_insert(0);
            *n += 1;
            if *n == 1 {
                self.enable(x, false)?;
            }
        }
        Ok(())
    }

    /// Undo [`Lab::cut`] of fault `id`: its toxics deleted, a Wi-Fi switched on again
    /// when no other fault holds it off.
    fn uncut(&mut self, cut: &Cut, id: u64, label: &str) -> Result<()> {
        self.remove_toxics(&cut.uplinks, BOTH, id, label)?;
        for x in &cut.uplinks {
            if let Some(n) = self.black_holed.get_mut(x) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.black_holed.remove(x);
                }
            }
        }
        for x in &cut.wifi {
            let n = self.wifi_off.entry(x.clone()).or_insert(1);
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.wifi_off.remove(x);
                self.enable(x, true)?;
            }
        }
        Ok(())
    }

    fn enable(&self, proxy: &str, on: bool) -> Result<()> {
        let what = format!("switching {proxy} {}", if on { "on" } else { "off" });
        let body = serde_json::json!({ "enabled": on });
        self.proxy("POST", &format!("/proxies/{proxy}"), &body, &[200], &what)?;
        Ok(())
    }

    /// A call to the proxy's API with a JSON body (`null`: none), which must answer one
    /// of `ok` (else an error saying `what` failed).
    fn proxy(
        &self,
        method: &str,
        path: &str,
        body: &serde_json::Value,
        ok: &[u16],
        what: &str,
    ) -> Result<Resp> {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        expect(call(method, &self.proxy_api, path, None, &bytes)?, ok, what)
    }

    /// Add a toxic of `kind` with `attributes` on `streams` of each of `proxies`,
    /// named `f{id}-{label}-{stream}`.
    fn add_toxics(
        &self,
        proxies: &[String],
        streams: &[&str],
        id: u64,
        label: &str,
        kind: &str,
        attributes: &serde_json::Value,
    ) -> Result<()> {
        for x in proxies {
            for stream in streams {
                let body = serde_json::json!({
                    "name": format!("f{id}-{label}-{stream}"),
                    "type": kind,
                    "stream": stream,
                    "attributes": attributes,
                });
                self.proxy(
                    "POST",
                    &format!("/proxies/{x}/toxics"),
                    &body,
                    &[200],
                    &format!("adding a {kind} toxic to {x}"),
                )?;
            }
        }
        Ok(())
    }

    /// Delete fault `id`'s toxics named `f{id}-{label}-{stream}` on `streams` from
    /// `proxies`.
    fn remove_toxics(
        &self,
        proxies: &[String],
        streams: &[&str],
        id: u64,
        label: &str,
    ) -> Result<()> {
        for x in proxies {
            for stream in streams {
                self.proxy(
                    "DELETE",
                    &format!("/proxies/{x}/toxics/f{id}-{label}-{stream}"),
                    &serde_json::Value::Null,
                    &[204],
                    &format!("removing toxic f{id}-{label} from {x}"),
                )?;
            }
        }
        Ok(())
    }

    fn lift(&mut self, p: &Planned) -> Result<()> {
        self.audit(
            "lift",
            serde_json::json!({ "fault": p.id, "kind": p.spec.kind.name() }),
        );
        self.active.remove(&p.id);
        self.timers.retain(|t| {
            t.fault.id != p.id
                || (t.step == Step::Boot && matches!(t.fault.injection, Injection::Power { .. }))
        });
        match &p.injection {
            Injection::ProxyDown { cut } => self.uncut(cut, p.id, "down")?,
            Injection::CrashLoop { server, .. } => {
                if self.down_for.remove(&p.id).is_some() {
                    self.start_again(server)?;
                }
            }
            Injection::Flapping { cut, .. } => {
                if self.held_down.remove(&p.id) {
                    self.uncut(cut, p.id, "flap")?;
                }
            }
            Injection::Power { tower, kind } => {
                let i = *tower;
                self.power_faults.remove(&p.id);
                self.power_overlays();
                if let FaultKind::HardCut = kind {
                    // Boots now if the battery allows, as in the simulator; else the
                    // power tick waits for the sun or the grid.
                    self.power[i].hard_cut = self.power[i].hard_cut.saturating_sub(1);
                    self.power_on_if_allowed(i)?;
                }
                // (a brown-out's boot comes BOOT after it, from its timer)
                self.write_reading(i)?;
            }
            Injection::Toxic { proxies, kind, .. } => {
                self.remove_toxics(proxies, BOTH, p.id, kind)?
            }
            Injection::Garble { tower, .. } => {
                let proxy = [wifi_proxy_name(*tower)];
                self.remove_toxics(&proxy, DOWN, p.id, "corrupt")?;
                self.shared.garbling[*tower].fetch_sub(1, Ordering::Relaxed);
            }
            Injection::Crash { server } | Injection::Shutdown { server } => {
                if let Some(n) = self.crash_holds.get_mut(server) {
                    *n = n.saturating_sub(1);
                }
                self.start_again(server)?;
            }
            Injection::DbGate => {
                self.db_closed = self.db_closed.saturating_sub(1);
                self.db_gate()?;
            }
            Injection::Restart { .. } => {}
            Injection::Pause { server } => {
                // (a frozen server killed meanwhile stays dead: its own hold restarts it)
                if self.paused.remove(server) && self.alive(server)? {
                    self.backend.signal(server, Sig::Cont)?;
                    if let Some(i) = self.server_index(server) {
                        self.shared.powered[i].store(true, Ordering::Relaxed);
                    }
                    if server == DATABASE {
                        // A gate change asked for while it was frozen.
                        self.db_gate()?;
                    }
                }
            }
            Injection::Admin { server, clear, .. } => {
                if *clear {
                    // The switchboard clears as a whole: what else it must hold (the
                    // plant, the other disk faults on now) is switched on again.
                    // A server that is down starts with an empty switchboard and is
                    // given only what is still on.
                    self.disk_faults.remove(&p.id);
                    if self.alive(server)? && !self.paused.contains(server) {
                        let admin = self.admin_of(server);
                        let r = call("DELETE", &admin, "/admin/faults", Some(CHAOS), b"")?;
                        expect(r, &[200, 204], &format!("clearing the faults of {server}"))?;
                        self.switchboard(server)?;
                    }
                }
            }
        }
        self.shared.log.now(Obs::FaultEnd {
            id: p.id,
            target: p.spec.target.clone(),
        });
        Ok(())
    }

    fn outbox(&self, i: usize) -> Option<BTreeSet<IdemKey>> {
        outbox(&self.towers[i].admin)
    }

    fn outboxes(&self) -> BTreeMap<usize, BTreeSet<IdemKey>> {
        (0..self.towers.len())
            .filter_map(|i| self.outbox(i).map(|o| (i, o)))
            .collect()
    }

    /// Once a second: each tower's outbox (`Backlog`), and each server's storage health
    /// (`StorageError` while `/admin/status` says a storage call is failing or the disk
    /// is full — the detection signal of disk faults, at this resolution).
    /// The bytes that crossed each uplink proxy since the last reading, both directions,
    /// as the simulator counts a link's bytes: every byte on the wire (HTTP, catalog
    /// polls, manifests, chunks, forwards, probes).
    fn sample_links(&mut self) {
        let Ok(r) = call("GET", &self.proxy_api, "/metrics", None, b"") else {
            return;
        };
        if r.status != 200 {
            return;
        }
        let mut now: BTreeMap<String, u64> = BTreeMap::new();
        for line in r.text().lines() {
            let Some(rest) = line.strip_prefix("sovereign_proxy_bytes_total{proxy=\"") else {
                continue;
            };
            let Some((name, rest)) = rest.split_once('"') else {
                continue;
            };
            let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()) else {
                continue;
            };
            *now.entry(name.to_string()).or_insert(0) += v;
        }
        for (name, (tower, link, seen)) in &mut self.link_bytes {
            let Some(&total) = now.get(name) else {
                continue;
            };
            // A counter below the last reading was reset: all of it is new.
            let new = if total >= *seen { total - *seen } else { total };
            if new > 0 {
                self.shared.log.now(Obs::Transfer {
                    tower: *tower,
                    link: *link,
                    bytes: new,
                });
            }
            *seen = total;
        }
    }

    /// (contributed, held) of the origin's ledger.
    fn ledger(&self) -> Result<(u128, u128)> {
        ledger(&self.origin.admin)
    }

    /// Whether tower `i` serves every item of the classes its links may carry at the
    /// origin's latest version (what the simulator calls converged).
    fn tower_converged(&self, i: usize) -> bool {
        let Ok(r) = call("GET", &self.towers[i].public, "/v1/catalog", None, b"") else {
            return false;
        };
        let Ok(v) = r.json() else {
            return false;
        };
        let held: BTreeMap<String, u64> = v["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| Some((m["item"].as_str()?.to_string(), m["version"].as_u64()?)))
                    .collect()
            })
            .unwrap_or_default();
        let mut latest: BTreeMap<ItemId, (u64, Priority)> = BTreeMap::new();
        for ((item, version), m) in lock(&self.shared.manifests).iter() {
            let e = latest.entry(item.clone()).or_insert((0, m.priority));
            if *version > e.0 {
                *e = (*version, m.priority);
            }
        }
        let policy = ClassPolicy::default();
        let links: Vec<LinkKind> = self.sc.towers[i].links.iter().map(|l| l.kind).collect();
        latest.iter().all(|(item, (version, class))| {
            !links.iter().any(|k| policy.allows(*k, *class))
                || held.get(&item.0).is_some_and(|v| v >= version)
        })
    }
}

impl Log {
    /// Time 0 is now (the topology is up; the run starts). Only before anything was
    /// recorded: every stamp is relative to one start.
    fn t0_reset(&self) {
        let entries = lock(&self.entries);
        assert!(
            entries.is_empty(),
            "t0 moves only before the first observation"
        );
        self.t0_us.store(now_us(), Ordering::Relaxed);
    }
}

/// The outbox keys a tower reports (`GET /admin/outbox`); `None` when it does not answer.
fn outbox(admin: &str) -> Option<BTreeSet<IdemKey>> {
    let r = call("GET", admin, "/admin/outbox", Some(VIEWER), b"").ok()?;
    if r.status != 200 {
        return None;
    }
    let v = r.json().ok()?;
    Some(
        v["keys"]
            .as_array()?
            .iter()
            .filter_map(|k| k.as_str().map(|s| IdemKey(s.into())))
            .collect(),
    )
}

/// Once a second until told to stop: each tower's outbox length (`Backlog`), and each
/// server whose `GET /admin/status` shows a storage call failed since the last reading
/// (its `storage_errors_total` grew) or reports a full disk (`StorageError`) — as the
/// simulator observes one per failed write, not the state `degraded` keeps until a call
/// of that operation succeeds again (that outlives the fault: a failed commit stays
/// "failing" until the next commit, seconds after the database is back). Nothing is
/// logged once the stop is set.
fn sample_servers(s: &Shared, towers: &[String], origin: &str) {
    let stopped = || s.stop_sampling.load(Ordering::Relaxed);
    // Per server (towers, then the origin): its uptime and error count last read.
    let mut errors_seen: Vec<Option<(f64, u64)>> = vec![None; towers.len() + 1];
    while !stopped() {
        let next = Instant::now() + Duration::from_secs(1);
        for (i, admin) in towers.iter().enumerate() {
            if let Some(o) = outbox(admin)
                && !stopped()
            {
                s.log.now(Obs::Backlog {
                    tower: i,
                    ops: o.len() as u64,
                });
            }
        }
        let servers = towers
            .iter()
            .enumerate()
            .map(|(i, a)| (Some(i), a.as_str()))
            .chain(std::iter::once((None, origin)));
        for ((tower, admin), seen) in servers.zip(errors_seen.iter_mut()) {
            let Ok(r) = call("GET", admin, "/admin/status", Some(VIEWER), b"") else {
                if let Some(i) = tower {
                    lock(&s.status)[i] = None;
                }
                continue;
            };
            let json = r.json().ok().filter(|_| r.status == 200);
            if let Some(i) = tower {
                lock(&s.status)[i] = json.clone();
            }
            let reading = json
                .as_ref()
                .and_then(|v| Some((v["uptime_s"].as_f64()?, v["storage_errors_total"].as_u64()?)));
            // A restarted server (its uptime went back) counts from 0 again.
            let failed = match (reading, *seen) {
                (Some((up, now)), Some((up_before, before))) if up >= up_before => now > before,
                (Some((_, now)), _) => now > 0,
                (None, _) => false,
            };
            if reading.is_some() {
                *seen = reading;
            }
            let full = json.is_some_and(|v| {
                v["degraded"].as_array().is_some_and(|d| {
                    d.iter()
                        .filter_map(|x| x.as_str())
                        .any(|x| x.starts_with("disk full"))
                })
            });
            let failing = failed || full;
            if failing && !stopped() {
                s.log.now(Obs::StorageError { tower });
            }
        }
        while Instant::now() < next && !stopped() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn ledger(admin: &str) -> Result<(u128, u128)> {
    let r = call("GET", admin, "/admin/ledger", Some(VIEWER), b"")?;
    let r = expect(r, &[200], "reading the ledger")?;
    let v = r.json()?;
    let num = |k: &str| -> Result<u128> {
        v[k].as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("the ledger's {k} is not a number: {}", v[k]))
    };
    Ok((num("contributed_minor")?, num("held_minor")?))
}

/// Read tower `i`'s event stream until the run ends, reconnecting after a restart.
fn tower_events(s: &Shared, i: usize, admin: &str) {
    while !s.stop_events.load(Ordering::Relaxed) {
        // The stream has no history: the link the tower chose before this reader
        // connected (at boot, after a restart) is read from its status.
        let opened = || {
            s.streams_opened.fetch_add(1, Ordering::Relaxed);
            let Ok(r) = call("GET", admin, "/admin/status", Some(VIEWER), b"") else {
                return;
            };
            let v = r.json().ok();
            let link = v
                .as_ref()
                .and_then(|v| v["active_link"].as_str()?.parse::<LinkKind>().ok());
            let mode = v.as_ref().and_then(|v| {
                let name = v["power_mode"].as_str()?;
                PowerMode::ALL.into_iter().find(|m| m.name() == name)
            });
            if let Some(m) = mode {
                lock(&s.modes)[i] = m;
            }
            let at = s.log.stamp(now_us());
            lock(&s.links_read).push(StatusRead {
                at,
                tower: i,
                link,
                mode,
            });
        };
        let r = http::events(admin, VIEWER, &s.stop_events, opened, |rec| {
            let Ok(event) = rec.event.to_event() else {
                s.warn(format!("an event of tower {i} did not decode: {rec:?}"));
                return;
            };
            if let Event::PowerMode { to, .. } = event {
                lock(&s.modes)[i] = to;
            }
            s.log.at(rec.at_unix_us, Obs::Tower { tower: i, event });
        });
        if r.is_err() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Read the origin's event stream: its events, and for each applied operation the
/// `Applied` and the ledger after it.
fn origin_events(s: &Shared, admin: &str) {
    while !s.stop_origin_events.load(Ordering::Relaxed) {
        let r = http::events(
            admin,
            VIEWER,
            &s.stop_origin_events,
            || {},
            |rec| {
                let Ok(event) = rec.event.to_event() else {
                    s.warn(format!("an event of the origin did not decode: {rec:?}"));
                    return;
                };
                if let Event::OpApplied {
                    key,
                    outcome: OpOutcome::Applied { .. },
                } = &event
                {
                    let known = lock(&s.submitted).get(key).copied();
                    let (fingerprint, amount_minor) = match known {
                        Some(k) => k,
                        None => {
                            s.warn(format!(
                                "the origin applied {key}, which no lab device submitted"
                            ));
                            (ChunkHash([0; 32]), None)
                        }
                    };
                    s.log.at(
                        rec.at_unix_us,
                        Obs::Applied {
                            key: key.clone(),
                            fingerprint,
                            amount_minor,
                        },
                    );
                    match ledger(admin) {
                        Ok((contributed, held)) => s.log.now(Obs::Ledger {
                            contributed,
                            // The admin API has no withdrawn total; the lab's devices never
                            // withdraw, so it is 0.
                            withdrawn: 0,
                            held,
                        }),
                        Err(e) => {
                            s.warn(format!("could not read the ledger after an apply: {e:#}"))
                        }
                    }
                }
                s.log.at(rec.at_unix_us, Obs::Origin { event });
            },
        );
        if r.is_err() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn sleep_until(deadline: Instant, stop: &AtomicBool) -> bool {
    while Instant::now() < deadline {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50).min(deadline - Instant::now()));
    }
    !stop.load(Ordering::Relaxed)
}

/// One device: reads (every byte verified against the origin's manifest) and
/// submissions at the scenario's rates until the run tells it to stop.
fn device(
    s: &Shared,
    seed: u64,
    dev: usize,
    tower: usize,
    addr: &str,
    w: &sovereign_scenario::Workload,
) {
    let mut rng = Rng::new(seed, 1000 + dev as u64);
    let secret: [u8; 32] = {
        let b = rng.bytes(32);
        let mut a = [0u8; 32];
        a.copy_from_slice(&b);
        a
    };
    let id = DeviceId::from_secret(&secret);
    let auth: String = format!(
        "Device {}",
        secret
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    // The device logic checks what arrives while a fault garbles the Wi-Fi, as the
    // simulator's devices do (the planted bug switches its check off).
    let mut checker = sovereign_logic::device::Device::new(
        sovereign_logic::device::DeviceConfig {
            verify_reads: !s.device_skip_verify,
            ..sovereign_logic::device::DeviceConfig::new(
                id,
                sovereign_logic::protocol::TowerId(tower as u32 + 1),
            )
        },
        seed ^ dev as u64,
    );
    let start = Instant::now();
    let mut next_read = rng.wait(w.reads_per_device_hour).map(|d| start + d);
    let mut next_op = rng.wait(w.ops_per_device_hour).map(|d| start + d);
    let mut n = 0u64;
    loop {
        let (due, is_read) = match (next_read, next_op) {
            (Some(r), Some(o)) if o < r => (o, false),
            (Some(r), _) => (r, true),
            (None, Some(o)) => (o, false),
            (None, None) => return,
        };
        if !is_read && s.stop_ops.load(Ordering::Relaxed) {
            next_op = None;
            continue;
        }
        if !sleep_until(due, &s.stop_reads) {
            return;
        }
        if is_read {
            read(s, &mut rng, tower, addr, dev, &mut checker);
            next_read = rng.wait(w.reads_per_device_hour).map(|d| due + d);
        } else {
            n += 1;
            submit(
                s,
                &mut rng,
                dev,
                tower,
                addr,
                id,
                &auth,
                n,
                w.contribution_share,
            );
            next_op = rng.wait(w.ops_per_device_hour).map(|d| due + d);
        }
    }
}

fn read(
    s: &Shared,
    rng: &mut Rng,
    tower: usize,
    addr: &str,
    dev: usize,
    checker: &mut sovereign_logic::device::Device,
) {
    let item = {
        let items = lock(&s.items);
        let Some((class, idx)) = sovereign_scenario::reads::pick_read(rng, |c| items[c].len())
        else {
            return;
        };
        items[class][idx].clone()
    };
    let powered = s.powered[tower].load(Ordering::Relaxed);
    let garbling = || s.garbling[tower].load(Ordering::Relaxed) > 0;
    let garbled_before = garbling();
    let r = http::request(
        "GET",
        addr,
        &format!("/v1/items/{}", item.0),
        &[],
        b"",
        CALL_TIMEOUT,
    );
    let at = now_us();
    // A read that overlapped a garbling Wi-Fi may have arrived garbled.
    let garbled = garbled_before || garbling();
    let result = match &r {
        Err(_) => ReadResult::Unreachable,
        Ok(r) if r.status == 200 => ReadResult::Served,
        Ok(r) if r.status == 404 => ReadResult::Refused(Refusal::NotHeld),
        Ok(r) if r.status == 503 && r.text().contains("shutting down") => {
            ReadResult::Refused(Refusal::PoweredDown)
        }
        Ok(r) if r.status == 503 => ReadResult::Refused(Refusal::Repairing),
        Ok(r) => {
            s.warn(format!(
                "a read of {item} at tower {tower} answered HTTP {} ({}); counted as unreachable",
                r.status,
                r.text()
            ));
            ReadResult::Unreachable
        }
    };
    s.log.at(
        at,
        Obs::Read {
            tower,
            item: item.clone(),
            valid: true,
            result: result.clone(),
            tower_powered: powered,
        },
    );
    let Ok(r) = r else { return };
    if result == ReadResult::Refused(Refusal::Repairing) {
        lock(&s.repairs).push(Repair {
            at: s.log.stamp(at),
            tower,
            item: item.clone(),
            rotten: hashes_in(&r.text()),
        });
    }
    if result != ReadResult::Served {
        return;
    }
    let version = r
        .header("x-sovereign-version")
        .and_then(|v| v.parse::<u64>().ok());
    let manifest = version.and_then(|v| lock(&s.manifests).get(&(item.clone(), v)).cloned());
    if garbled {
        // What the tower sent cannot be told from what the Wi-Fi garbled: the device's
        // view is observed (as the simulator's `Delivered`), not the tower's `Served`.
        // Bytes under a garbled version header have no manifest to accept them against.
        let (intact, accepted) = match &manifest {
            Some(m) => {
                let intact =
                    r.body.len() as u64 == m.size && verify(m, &r.body).iter().all(|(_, ok)| *ok);
                checker.handle_message(
                    s.log.stamp(at),
                    sovereign_logic::protocol::Message::ItemData {
                        manifest: m.clone(),
                        bytes: bytes::Bytes::copy_from_slice(&r.body),
                    },
                );
                let accepted = matches!(
                    checker.last_read(&item),
                    Some(sovereign_logic::device::ReadOutcome::Ok { version, .. })
                        if *version == m.version
                );
                (intact, accepted)
            }
            None => (false, false),
        };
        s.log.at(
            at,
            Obs::Delivered {
                tower,
                device: dev,
                item,
                version: version.unwrap_or(0),
                intact,
                accepted,
            },
        );
        return;
    }
    let (version, chunks, manifest_ok) = match (version, manifest) {
        (Some(v), Some(m)) => (v, verify(&m, &r.body), true),
        (v, _) => (v.unwrap_or(0), Vec::new(), false),
    };
    s.log.at(
        at,
        Obs::Served {
            tower,
            item,
            version,
            chunks,
            manifest_ok,
        },
    );
}

/// Every 64-hex-digit word of `text` as a chunk hash (the chunks a 503 names).
fn hashes_in(text: &str) -> Vec<ChunkHash> {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .filter(|w| w.len() == 64)
        .filter_map(|w| {
            let mut h = [0u8; 32];
            for (i, b) in h.iter_mut().enumerate() {
                *b = u8::from_str_radix(w.get(2 * i..2 * i + 2)?, 16).ok()?;
            }
            Some(ChunkHash(h))
        })
        .collect()
}

/// How long after a read refused "repairing" the tower's quarantine of the chunks it
/// named may come.
const QUARANTINE_LAG_MAX: Duration = Duration::from_secs(5);

/// Put each read the tower refused because stored chunks failed verification right after
/// the tower's `ChunkQuarantined` events for those chunks, stamped with the last one's
/// time. The real tower answers such a read 503 and hands the verdict to its node task
/// without waiting (`report_read`), so its quarantine events are stamped a little after
/// the answer; in the simulator the two happen at one instant, quarantine first, and the
/// offline-service oracle expects that order (a tower refusing what it still holds is a
/// violation). A refusal whose chunks are not all quarantined within
/// [`QUARANTINE_LAG_MAX`] is left where it was — the oracle judges it.
fn order_repairs(log: Vec<Stamped>, repairs: &[Repair]) -> Vec<Stamped> {
    let mut moved: BTreeMap<usize, Time> = BTreeMap::new(); // log index → new stamp
    for r in repairs {
        if r.rotten.is_empty() {
            continue;
        }
        let Some(idx) = log.iter().position(|s| {
            s.at == r.at
                && matches!(&s.obs, Obs::Read { tower, item, result: ReadResult::Refused(Refusal::Repairing), .. }
                    if *tower == r.tower && *item == r.item)
        }) else {
            continue;
        };
        let window = r.at + QUARANTINE_LAG_MAX;
        let mut last = r.at;
        let all = r.rotten.iter().all(|h| {
            // The first quarantine of the chunk at or after the read (or just before:
            // another read may have reported it first).
            let found = log.iter().find(|s| {
                s.at.as_micros() >= r.at.as_micros().saturating_sub(QUARANTINE_LAG_MAX.as_micros() as u64)
                    && s.at <= window
                    && matches!(&s.obs, Obs::Tower { tower, event: Event::ChunkQuarantined { hash } }
                        if *tower == r.tower && hash == h)
            });
            if let Some(q) = found {
                last = last.max(q.at);
            }
            found.is_some()
        });
        if all {
            moved.insert(idx, last);
        }
    }
    if moved.is_empty() {
        return log;
    }
    let mut out: Vec<Stamped> = Vec::with_capacity(log.len());
    let mut later: Vec<Stamped> = Vec::new();
    for (i, mut s) in log.into_iter().enumerate() {
        if let Some(t) = moved.get(&i) {
            s.at = *t;
            later.push(s);
        } else {
            out.push(s);
        }
    }
    // Each moved read goes after the last observation stamped at or before its new time.
    for s in later {
        let pos = out.partition_point(|o| o.at <= s.at);
        out.insert(pos, s);
    }
    out
}

/// Each chunk of `m` with whether `bytes` hold it intact at its place (a body of the
/// wrong length fails the chunks it does not cover, and its last chunk).
fn verify(m: &Manifest, bytes: &[u8]) -> Vec<(ChunkHash, bool)> {
    let mut off = 0usize;
    let mut out: Vec<(ChunkHash, bool)> = m
        .chunks
        .iter()
        .map(|c| {
            let end = off + c.len as usize;
            let ok = bytes
                .get(off..end)
                .is_some_and(|b| ChunkHash::of(b) == c.hash);
            off = end;
            (c.hash, ok)
        })
        .collect();
    if off != bytes.len() {
        if let Some(last) = out.last_mut() {
            last.1 = false;
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn submit(
    s: &Shared,
    rng: &mut Rng,
    dev: usize,
    tower: usize,
    addr: &str,
    id: DeviceId,
    auth: &str,
    n: u64,
    contribution_share: f64,
) {
    let key = IdemKey::for_device(id, n, rng.next());
    let (kind, body) = if rng.unit() < contribution_share {
        let amount = 1 + rng.next() % 10_000;
        let community = format!("community-{}", rng.next() % 4);
        (
            OpKind::Contribution {
                community: community.clone(),
                nation: "ke".into(),
                amount_minor: amount,
            },
            serde_json::json!({"op": {"type": "contribution", "community": community, "nation": "ke", "amount_minor": amount}}),
        )
    } else {
        let text = format!("hello {n}");
        (
            OpKind::Message {
                to: "lab".into(),
                body: text.clone(),
            },
            serde_json::json!({"op": {"type": "message", "to": "lab", "body": text}}),
        )
    };
    let amount = match &kind {
        OpKind::Contribution { amount_minor, .. } => Some(*amount_minor),
        _ => None,
    };
    let op = Operation {
        key: key.clone(),
        device: id,
        kind,
    };
    let fingerprint = op.fingerprint();
    lock(&s.submitted).insert(key.clone(), (fingerprint, amount));
    s.log.now(Obs::Submitted {
        device: dev,
        key: key.clone(),
        fingerprint,
        own_key: true,
    });
    let body = body.to_string();
    for _ in 0..SUBMIT_ATTEMPTS_MAX {
        let r = http::request(
            "POST",
            addr,
            "/v1/ops",
            &[
                ("Idempotency-Key", &key.0),
                ("Authorization", auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
            CALL_TIMEOUT,
        );
        let at = now_us();
        match r {
            Ok(r) if r.status == 202 => {
                s.log.at(
                    at,
                    Obs::Acked {
                        tower,
                        key: key.clone(),
                        fingerprint,
                    },
                );
                return;
            }
            Ok(r) if r.status == 503 && r.text().contains("not stored") => {
                s.log.at(
                    at,
                    Obs::NotStored {
                        tower,
                        key: key.clone(),
                    },
                );
            }
            Ok(r) if r.status == 503 || r.status == 409 => {}
            Ok(r) => {
                s.warn(format!(
                    "submitting {key} at tower {tower}: HTTP {} ({}); not retried",
                    r.status,
                    r.text()
                ));
                return;
            }
            Err(_) => {}
        }
        if !sleep_until(Instant::now() + Duration::from_secs(1), &s.stop_reads) {
            return;
        }
    }
}

/// A tower's steady state, as the simulator judges it: running, not frozen, in power
/// mode Normal, on the best of its uplinks (`links`, best first once sorted) that
/// `passing` lets traffic through. The live snapshot and [`derive_steady`] both ask it.
fn steady_now(
    up: bool,
    paused: bool,
    mode: PowerMode,
    active: Option<LinkKind>,
    links: impl IntoIterator<Item = LinkKind>,
    passing: impl Fn(LinkKind) -> bool,
) -> bool {
    let mut kinds: Vec<LinkKind> = links.into_iter().collect();
    kinds.sort();
    let best = kinds.into_iter().find(|k| passing(*k));
    up && !paused && mode == PowerMode::Normal && active.is_some() && active == best
}

/// Insert [`Obs::Steady`] where a tower's steadiness changes, as the simulator reports
/// it: running, not frozen, on its most preferred link that no fault holds down. (The
/// lab's towers run without power telemetry: always in Normal mode.)
///
/// `links_read`: each tower's active link and power mode as read from its status when its event stream
/// (re)connected, applied in time order with the log.
fn derive_steady(
    sc: &Scenario,
    planned: &[Planned],
    log: Vec<Stamped>,
    links_read: &[StatusRead],
) -> Vec<Stamped> {
    struct T {
        up: bool,
        paused: bool,
        mode: PowerMode,
        active: Option<LinkKind>,
        down: BTreeMap<LinkKind, u32>,
        steady: bool,
    }
    let mut towers: Vec<T> = sc
        .towers
        .iter()
        .map(|_| T {
            up: false,
            paused: false,
            mode: PowerMode::Normal,
            active: None,
            down: BTreeMap::new(),
            steady: false,
        })
        .collect();
    let by_id: BTreeMap<u64, &Planned> = planned.iter().map(|p| (p.id, p)).collect();
    let links_of = |p: &Planned| -> Vec<(usize, LinkKind)> {
        match (&p.injection, &p.spec.target) {
            (Injection::ProxyDown { .. }, Target::Link(i, k)) => vec![(*i, *k)],
            (Injection::ProxyDown { .. }, Target::Tower(i)) => {
                sc.towers[*i].links.iter().map(|l| (*i, l.kind)).collect()
            }
            _ => Vec::new(),
        }
    };
    let paused_of = |p: &Planned| -> Option<usize> {
        match &p.injection {
            Injection::Pause { server } => sc.towers.iter().position(|t| &t.name == server),
            _ => None,
        }
    };
    let mut out = Vec::with_capacity(log.len() * 2);
    let mut reads = {
        let mut r = links_read.to_vec();
        r.sort_by_key(|x| x.at);
        r.into_iter().peekable()
    };
    for s in log {
        let mut touched: Option<Vec<usize>> = None;
        let mut read_now = Vec::new();
        while let Some(StatusRead {
            tower, link, mode, ..
        }) = reads.next_if(|r| r.at <= s.at)
        {
            if let Some(t) = towers.get_mut(tower) {
                t.active = link;
                if let Some(m) = mode {
                    t.mode = m;
                }
                read_now.push(tower);
            }
        }
        match &s.obs {
            Obs::TowerUp { tower } => {
                towers[*tower].up = true;
                touched = Some(vec![*tower]);
            }
            // A stopped tower has no link; the next incarnation's choice comes as an
            // `ActiveLink` (its event, or its status read when the event stream
            // reconnects), which may be seen before the lab logs `TowerUp`.
            Obs::TowerDown { tower, .. } => {
                towers[*tower].up = false;
                towers[*tower].active = None;
                towers[*tower].mode = PowerMode::Normal;
                touched = Some(vec![*tower]);
            }
            Obs::Tower {
                tower,
                event: Event::ActiveLink { to, .. },
            } => {
                towers[*tower].active = *to;
                touched = Some(vec![*tower]);
            }
            Obs::Tower {
                tower,
                event: Event::PowerMode { to, .. },
            } => {
                towers[*tower].mode = *to;
                touched = Some(vec![*tower]);
            }
            Obs::FaultStart { id, .. } | Obs::FaultEnd { id, .. } => {
                let start = matches!(s.obs, Obs::FaultStart { .. });
                if let Some(p) = by_id.get(id) {
                    let mut t = Vec::new();
                    for (i, k) in links_of(p) {
                        let n = towers[i].down.entry(k).or_insert(0);
                        *n = if start { *n + 1 } else { n.saturating_sub(1) };
                        t.push(i);
                    }
                    if let Some(i) = paused_of(p) {
                        towers[i].paused = start;
                        t.push(i);
                    }
                    touched = Some(t);
                }
            }
            _ => {}
        }
        let at = s.at;
        out.push(s);
        let mut touched = touched.unwrap_or_default();
        touched.extend(read_now);
        for i in touched {
            let t = &mut towers[i];
            let kinds = sc.towers[i].links.iter().map(|l| l.kind);
            let passing = |k: LinkKind| t.down.get(&k).copied().unwrap_or(0) == 0;
            let steady = steady_now(t.up, t.paused, t.mode, t.active, kinds, passing);
            if steady != t.steady {
                t.steady = steady;
                out.push(Stamped {
                    at,
                    obs: Obs::Steady { tower: i, steady },
                });
            }
        }
    }
    out
}

/// Feed the run's observations, in time order, to the oracles, the KPIs and the
/// report's series; the report.
fn judge(
    sc: &Scenario,
    seed: u64,
    planned: &[Planned],
    mut log: Vec<Stamped>,
    repairs: &[Repair],
    links_read: &[StatusRead],
    dump: Option<&Path>,
) -> (
    RunReport,
    RunSeries,
    sovereign_observe::kpi::freshness::Freshness,
) {
    log.sort_by_key(|s| s.at); // stable: what was recorded together stays in order
    let log = order_repairs(log, repairs);
    let log = derive_steady(sc, planned, log, links_read);
    if let Some(path) = dump {
        // `--keep`: the observation log as the oracles and KPIs read it, one per line.
        let text: String = log
            .iter()
            .map(|s| format!("{} {:?}\n", s.at, s.obs))
            .collect();
        let _ = std::fs::write(path, text);
    }
    let enabled = lab_invariants(sc);
    let mut oracles = Oracles::new(&enabled);
    let mut kpis = KpiScan::default();
    let mut series = SeriesScan::new(sc);
    let end = log.last().map_or(Time::ZERO, |s| s.at);
    for s in &log {
        oracles.observe(s);
        kpis.observe(s);
        Observer::observe(&mut series, s);
    }
    // The RPO is the durability checker's count of lost acknowledgements, as in the
    // simulator (it ran whether or not durability is checked).
    let rpo = oracles.rpo();
    let violations = oracles.finish();
    let mut k = kpis.finish();
    k.rpo = rpo;
    k.violations = violations.len() as u64;
    k.apply_slo(&sc.slo);
    let slo = k.check(&sc.slo);
    let report = RunReport {
        scenario: sc.name.clone(),
        seed,
        plant: None,
        trace_hash: "none (a lab run has no deterministic trace)".to_string(),
        events: log.len() as u64,
        end,
        violations,
        kpis: k,
        slo,
        schedule: planned
            .iter()
            .map(|p| p.spec.clone())
            .collect::<Vec<FaultSpec>>(),
        branches: Vec::new(),
        sometimes: Vec::new(),
        trace: Vec::new(),
    };
    let series = series.finish(end.as_micros().div_ceil(1_000_000));
    (report, series, kpis.freshness)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sovereign_logic::content::ChunkRef;

    #[test]
    fn verify_fails_a_flipped_byte_and_a_short_body() {
        // Goal: the device-side check the integrity oracle relies on fails bad bytes.
        let a = b"hello ".to_vec();
        let b = b"world".to_vec();
        let whole = [a.clone(), b.clone()].concat();
        let m = Manifest {
            item: ItemId::new("x"),
            version: 1,
            priority: Priority::P0,
            size: whole.len() as u64,
            digest: ChunkHash::of(&whole),
            chunks: vec![
                ChunkRef {
                    hash: ChunkHash::of(&a),
                    len: a.len() as u32,
                },
                ChunkRef {
                    hash: ChunkHash::of(&b),
                    len: b.len() as u32,
                },
            ],
        };
        assert!(verify(&m, &whole).iter().all(|c| c.1));
        let mut bad = whole.clone();
        bad[7] ^= 1;
        assert_eq!(
            verify(&m, &bad).iter().map(|c| c.1).collect::<Vec<_>>(),
            [true, false]
        );
        assert!(!verify(&m, &whole[..8]).iter().all(|c| c.1));
        let mut long = whole.clone();
        long.push(0);
        assert!(!verify(&m, &long).iter().all(|c| c.1));
    }
}
