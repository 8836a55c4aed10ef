//! Read-path conformance: the simulator's device reads and the real tower's device API
//! answer the same sequence of reads the same way and quarantine the same chunks — both
//! run the logic's read path (`sovereign_logic::tower::read`), and this test would catch a
//! driver that grew a policy of its own (stopping at the first rotten chunk, answering
//! "not held" for rot, serving a shed class differently, …).
//!
//! The sequence, one P3 item of several chunks: a clean read; one rotten chunk (answered
//! "repairing", that chunk quarantined, then served again once fetched); every chunk
//! rotten (all of them quarantined by the one read); its class shed by the power manager
//! (still served); a new version published while the class is shed (the tower adopts it
//! and cannot fetch it: mid-sync, the last complete version is served); a chunk of that
//! last complete version rotten while the new one cannot sync (repairing, and still
//! repairing on the next read: the tower lost what it held and is fetching);
//! power back (the new version syncs and is served).
//!
//! The simulator's side is `sovereign_sim::world::tower_read` (what `World::device_read`
//! runs) on a logic `Tower` synced from a logic `Origin` by hand, over a disk that is a map
//! of chunk bytes. The real side is the tower `serve::tower_parts` builds, in this process,
//! over a memory store wrapped in [`RotStore`] (rot flips a byte of what a read returns;
//! a fresh write of the chunk heals it; deletes of chunks — quarantines — are recorded),
//! synced from an origin served on a loopback port, read with `GET /v1/items/{id}`. Its
//! verified-bytes cache is off (0 bytes), as the simulator has none: a read goes to the
//! store as the simulator's goes to its disk.
//!
//! Not covered: power-down refusals (the node stops; the tower_node unit tests cover a
//! shutdown reading), the offline-refuse plant, ranges and conditional requests.

mod support;

use axum::http::{Method, StatusCode};
use bytes::Bytes;
use sovereign_logic::Time;
use sovereign_logic::content::{ChunkHash, ChunkParams, ItemId, Manifest, Priority, verify_chunk};
use sovereign_logic::io::{Action, Key, Record};
use sovereign_logic::origin::{Origin, OriginConfig};
use sovereign_logic::protocol::{LinkKind, Message, Peer, TowerId};
use sovereign_logic::tower::link::ProbeOutcome;
use sovereign_logic::tower::power::{PowerReading, UpsState};
use sovereign_logic::tower::read::ChunkVerdict;
use sovereign_logic::tower::{Refusal, Tower, TowerConfig};
use sovereign_server::audit::AuditLog;
use sovereign_server::serve::{origin_parts, tower_parts};
use sovereign_server::tower_node::{PowerSource, TowerCredential, TowerHandle, TowerNodeConfig};
use sovereign_server::transport::{HyperTransport, Transport};
use sovereign_sim::obs::ReadResult;
use sovereign_sim::world::tower_read;
use sovereign_store::{
    Faults, FaultyStore, Garbage, MemDisk, MemStore, Recovered, Store, StoreError,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{OPERATOR, req, send};

const ITEM: &str = "news";

/// What a read answered, in terms both drivers share.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    Served { version: u64 },
    NotHeld,
    Repairing,
    Other(String),
}

/// One step of the sequence: its name, the read's answer, the chunks it quarantined.
type Step = (&'static str, Answer, BTreeSet<ChunkHash>);

fn content(seed: u8, len: usize) -> Vec<u8> {
    sovereign_store::fixtures::noise_from(u64::from(seed) | 0x9e37_79b9_7f4a_7c15, len)
}

/// The manifest an origin publishes `bytes` under (the chunking is deterministic).
fn manifest(version: u64, bytes: &[u8]) -> Manifest {
    sovereign_logic::content::publish(
        ItemId::new(ITEM),
        version,
        Priority::P3,
        bytes,
        ChunkParams::default(),
    )
    .expect("publishable")
    .0
}

fn reading(soc_permille: u16) -> PowerReading {
    PowerReading {
        soc_permille,
        solar_mw: 0,
        load_mw: 3_000,
        ups: UpsState::OnBattery,
    }
}

/// The tower configuration both sides run.
fn tower_config() -> TowerConfig {
    let mut c = TowerConfig::new(TowerId(1), &[LinkKind::Fibre]);
    c.catalog_interval = Duration::from_millis(300);
    c.request_timeout = Duration::from_secs(3);
    // Readings come from the test only; a silent UPS must not count as a low battery.
    c.power.telemetry_timeout = Duration::from_secs(3600);
    c
}

/// A test's ways to act on a tower and read from it: the same sequence runs against both.
trait Side {
    async fn publish(&mut self, bytes: &[u8]);
    async fn rot(&mut self, chunks: &[ChunkHash]);
    async fn power(&mut self, reading: PowerReading);
    /// Read the item once; its answer and the chunks that read made the tower delete.
    async fn read(&mut self) -> (Answer, BTreeSet<ChunkHash>);
    /// Wait until the tower holds `version` servable and nothing is being fetched for it.
    async fn settle_servable(&mut self, version: u64);
    /// Wait until the tower adopted a newer entry it cannot complete (`pending` items).
    async fn settle_pending(&mut self);
}

/// Read once and record the step.
async fn read(side: &mut impl Side, steps: &mut Vec<Step>, name: &'static str) {
    let (answer, deleted) = side.read().await;
    steps.push((name, answer, deleted));
}

async fn sequence(side: &mut impl Side) -> Vec<Step> {
    let v1 = content(1, 300_000);
    let v2 = content(2, 300_000);
    let m1 = manifest(1, &v1);
    let chunks1: Vec<ChunkHash> = m1.chunks.iter().map(|c| c.hash).collect();
    assert!(chunks1.len() >= 3, "the item needs several chunks");
    let mut steps = Vec::new();

    side.power(reading(1000)).await;
    side.publish(&v1).await;
    side.settle_servable(1).await;
    read(side, &mut steps, "clean").await;

    side.rot(&chunks1[1..2]).await;
    read(side, &mut steps, "one chunk rotten").await;
    side.settle_servable(1).await;
    read(side, &mut steps, "one chunk fetched again").await;

    side.rot(&chunks1).await;
    read(side, &mut steps, "every chunk rotten").await;
    side.settle_servable(1).await;
    read(side, &mut steps, "every chunk fetched again").await;

    side.power(reading(550)).await;
    read(side, &mut steps, "class shed").await;

    side.publish(&v2).await;
    side.settle_pending().await;
    read(side, &mut steps, "new version mid-sync").await;

    side.rot(&chunks1[..1]).await;
    read(side, &mut steps, "last complete version rotten mid-sync").await;
    read(side, &mut steps, "after the quarantine, mid-sync").await;

    side.power(reading(1000)).await;
    side.settle_servable(2).await;
    read(side, &mut steps, "new version synced").await;
    steps
}

// ----- the simulator's read path ------------------------------------------------------

/// A logic origin and tower passing messages by hand, the tower's chunks in a map.
struct SimSide {
    origin: Origin,
    tower: Tower,
    now: Time,
    /// Messages on their way: to the tower (`true`) or the origin.
    wire: VecDeque<(bool, Message)>,
    /// The tower's stored chunks.
    disk: BTreeMap<ChunkHash, Bytes>,
    /// The origin's stored chunks (it keeps none in memory).
    origin_disk: BTreeMap<ChunkHash, Bytes>,
    /// Chunks deleted since last taken.
    deleted: BTreeSet<ChunkHash>,
}

impl SimSide {
    fn new() -> SimSide {
        let mut s = SimSide {
            origin: Origin::new(OriginConfig::default()),
            tower: Tower::new(tower_config(), 7, Time::ZERO),
            now: Time::ZERO,
            wire: VecDeque::new(),
            disk: BTreeMap::new(),
            origin_disk: BTreeMap::new(),
            deleted: BTreeSet::new(),
        };
        s.pump();
        s
    }

    /// Carry out every action of both nodes and deliver every message, until quiet.
    fn pump(&mut self) {
        loop {
            let mut busy = false;
            while let Some(a) = self.origin.poll_action() {
                busy = true;
                match a {
                    Action::Send { msg, .. } => self.wire.push_back((true, msg)),
                    Action::ReadChunk { hash, .. } => {
                        let stored = self.origin_disk.get(&hash).cloned();
                        let msg = self.origin.chunk_reply(hash, stored);
                        self.wire.push_back((true, msg));
                    }
                    Action::Write { id, record } => {
                        if let Record::Chunk(c) = record {
                            self.origin_disk.insert(c.hash, c.bytes);
                        }
                        self.origin.handle_write_done(self.now, id, Ok(()));
                    }
                    Action::Delete { id, .. } => {
                        self.origin.handle_write_done(self.now, id, Ok(()));
                    }
                    Action::Fsync { id } => self.origin.handle_fsync_done(self.now, id, Ok(())),
                    _ => {}
                }
            }
            while let Some(a) = self.tower.poll_action() {
                busy = true;
                let now = self.now;
                match a {
                    Action::Send { msg, .. } => self.wire.push_back((false, msg)),
                    Action::Write { id, record } => {
                        if let Record::Chunk(c) = record {
                            self.disk.insert(c.hash, c.bytes);
                        }
                        self.tower.handle_write_done(now, id, Ok(()));
                    }
                    Action::Delete { id, key } => {
                        if let Key::Chunk(h) = key {
                            self.disk.remove(&h);
                            self.deleted.insert(h);
                        }
                        self.tower.handle_write_done(now, id, Ok(()));
                    }
                    Action::Fsync { id } => self.tower.handle_fsync_done(now, id, Ok(())),
                    Action::Probe { link } => {
                        self.tower.handle_probe(
                            now,
                            link,
                            ProbeOutcome::ok(Duration::from_millis(5)),
                        );
                    }
                    Action::Emit(_) | Action::PowerOff { .. } | Action::ReadChunk { .. } => {}
                }
            }
            while let Some((to_tower, msg)) = self.wire.pop_front() {
                busy = true;
                if to_tower {
                    self.tower.handle_message(self.now, Peer::Origin, msg);
                } else {
                    self.origin
                        .handle_message(self.now, Peer::Tower(TowerId(1)), msg);
                }
            }
            if !busy {
                return;
            }
        }
    }

    /// Let virtual time pass in 50 ms steps until `done`, for at most 120 s.
    fn run_until(&mut self, what: &str, mut done: impl FnMut(&Tower) -> bool) {
        for _ in 0..2_400 {
            self.pump();
            if done(&self.tower) {
                return;
            }
            self.now += Duration::from_millis(50);
            if self.tower.poll_timeout().is_some_and(|t| t <= self.now) {
                self.tower.handle_timeout(self.now);
            }
        }
        panic!("simulated side: {what} did not happen within 120 virtual seconds");
    }
}

impl Side for SimSide {
    async fn publish(&mut self, bytes: &[u8]) {
        self.origin
            .publish(self.now, ItemId::new(ITEM), Priority::P3, bytes)
            .expect("published");
        self.pump();
    }

    async fn rot(&mut self, chunks: &[ChunkHash]) {
        for h in chunks {
            let b = self.disk.get_mut(h).expect("the tower stores the chunk");
            let mut v = b.to_vec();
            v[0] ^= 0x01;
            *b = Bytes::from(v);
        }
    }

    async fn power(&mut self, reading: PowerReading) {
        self.tower.handle_power(self.now, reading);
        self.pump();
    }

    async fn read(&mut self) -> (Answer, BTreeSet<ChunkHash>) {
        let disk = &self.disk;
        let read = tower_read(
            &mut self.tower,
            self.now,
            &ItemId::new(ITEM),
            |h| match disk.get(h) {
                Some(b) if verify_chunk(h, b) => ChunkVerdict::Intact,
                Some(_) => ChunkVerdict::Rotten,
                None => ChunkVerdict::Missing,
            },
        );
        self.pump();
        let deleted = std::mem::take(&mut self.deleted);
        assert_eq!(
            read.reported.iter().copied().collect::<BTreeSet<_>>(),
            deleted,
            "the simulated tower quarantines exactly what the read reported"
        );
        let answer = match read.result {
            ReadResult::Served => Answer::Served {
                version: read.served.expect("served").0.version,
            },
            ReadResult::Refused(Refusal::NotHeld) => Answer::NotHeld,
            ReadResult::Refused(Refusal::Repairing) => Answer::Repairing,
            other => Answer::Other(format!("{other:?}")),
        };
        (answer, deleted)
    }

    async fn settle_servable(&mut self, version: u64) {
        self.run_until(&format!("version {version} servable"), |t| {
            t.servable().get(&ItemId::new(ITEM)) == Some(&version) && t.status().items_pending == 0
        });
        self.deleted.clear();
    }

    async fn settle_pending(&mut self) {
        self.run_until("a new version adopted and pending", |t| {
            t.status().items_pending == 1
        });
    }
}

// ----- the real tower -----------------------------------------------------------------

/// A store whose chunk reads can rot: a rotten chunk's bytes come back with one byte
/// flipped until the chunk is written again. Deletes of chunks are recorded.
struct RotStore {
    inner: Arc<dyn Store>,
    rotten: Mutex<BTreeSet<ChunkHash>>,
    deleted: Mutex<BTreeSet<ChunkHash>>,
}

impl Store for RotStore {
    fn write(&self, record: &Record) -> Result<(), StoreError> {
        if let Record::Chunk(c) = record {
            self.rotten.lock().expect("lock").remove(&c.hash);
        }
        self.inner.write(record)
    }
    fn delete(&self, key: &Key) -> Result<(), StoreError> {
        if let Key::Chunk(h) = key {
            self.deleted.lock().expect("lock").insert(*h);
        }
        self.inner.delete(key)
    }
    fn fsync(&self) -> Result<(), StoreError> {
        self.inner.fsync()
    }
    fn discard(&self) -> Result<(), StoreError> {
        self.inner.discard()
    }
    fn collect_garbage(&self, keep: &BTreeSet<ChunkHash>) -> Result<Garbage, StoreError> {
        self.inner.collect_garbage(keep)
    }
    fn recover(&self) -> Result<Recovered, StoreError> {
        self.inner.recover()
    }
    fn recover_index(&self) -> Result<Recovered, StoreError> {
        self.inner.recover_index()
    }
    fn chunk(&self, hash: &ChunkHash) -> Result<Option<Bytes>, StoreError> {
        let bytes = self.inner.chunk(hash)?;
        if !self.rotten.lock().expect("lock").contains(hash) {
            return Ok(bytes);
        }
        Ok(bytes.map(|b| {
            let mut v = b.to_vec();
            v[0] ^= 0x01;
            Bytes::from(v)
        }))
    }
}

struct RealSide {
    tower: axum::Router,
    handle: TowerHandle,
    origin_admin: axum::Router,
    store: Arc<RotStore>,
    _dir: tempfile::TempDir,
}

impl RealSide {
    async fn start() -> RealSide {
        let dir = tempfile::tempdir().expect("tempdir");
        let faults = Faults::default();
        let origin = origin_parts(
            OriginConfig::default(),
            Arc::new(FaultyStore::new(
                MemStore::new(MemDisk::new()),
                faults.clone(),
            )),
            faults,
            support::tokens(),
            Arc::new(AuditLog::open(dir.path().join("origin-audit.jsonl")).expect("audit")),
            support::tower_credentials(),
        )
        .expect("origin starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let origin_url = format!("http://{}", listener.local_addr().expect("addr"));
        let public = origin.public.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, public).await;
        });
        let store = Arc::new(RotStore {
            inner: Arc::new(MemStore::new(MemDisk::new())),
            rotten: Mutex::new(BTreeSet::new()),
            deleted: Mutex::new(BTreeSet::new()),
        });
        let config = TowerNodeConfig {
            tower: tower_config(),
            uplinks: BTreeMap::from([(LinkKind::Fibre, origin_url)]),
            // Armed (the power manager runs), read from a file that never appears:
            // readings come from the test.
            power: Some(PowerSource::File(PathBuf::from(
                "/nonexistent/sovereign-power.json",
            ))),
            power_interval: Duration::from_secs(3600),
            seed: 7,
            credential: Some(TowerCredential::secret(support::tower_credential(1))),
        };
        let transport: Arc<dyn Transport> = Arc::new(HyperTransport::tcp());
        let parts = tower_parts(
            config,
            store.clone(),
            Faults::default(),
            transport,
            support::tokens(),
            Arc::new(AuditLog::open(dir.path().join("tower-audit.jsonl")).expect("audit")),
            // No verified-bytes cache: every read goes to the store, as the simulator's
            // reads go to its disk.
            0,
        )
        .expect("tower starts");
        RealSide {
            tower: parts.public,
            handle: parts.handle,
            origin_admin: origin.admin,
            store,
            _dir: dir,
        }
    }

    /// Wait (up to 30 s) until `done` holds on the tower's logic.
    async fn wait(&self, what: &str, done: impl Fn(&Tower) -> bool + Clone + Send + 'static) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let d = done.clone();
            if self
                .handle
                .query(move |t, _| d(t))
                .await
                .expect("node runs")
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "real side: {what} did not happen within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Side for RealSide {
    async fn publish(&mut self, bytes: &[u8]) {
        let a = send(
            &self.origin_admin,
            req(
                Method::POST,
                &format!("/admin/publish?item={ITEM}&priority=P3"),
            )
            .bearer(OPERATOR)
            .body(bytes.to_vec()),
        )
        .await;
        assert_eq!(a.status, StatusCode::CREATED, "publish: {a}");
    }

    async fn rot(&mut self, chunks: &[ChunkHash]) {
        self.store
            .rotten
            .lock()
            .expect("lock")
            .extend(chunks.iter().copied());
    }

    async fn power(&mut self, reading: PowerReading) {
        self.handle.power(reading);
        // Taken once a query behind it is answered (the node handles inputs in order).
        self.handle.query(|_, _| ()).await.expect("node runs");
    }

    async fn read(&mut self) -> (Answer, BTreeSet<ChunkHash>) {
        let a = send(&self.tower, req(Method::GET, &format!("/v1/items/{ITEM}"))).await;
        // The read's report reaches the node before this query: once it is answered,
        // every quarantine the read caused was carried out.
        self.handle.query(|_, _| ()).await.expect("node runs");
        let deleted = std::mem::take(&mut *self.store.deleted.lock().expect("lock"));
        let error = a
            .json()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_default();
        let answer = match a.status {
            StatusCode::OK => Answer::Served {
                version: a.header("x-sovereign-version").parse().expect("version"),
            },
            StatusCode::NOT_FOUND => Answer::NotHeld,
            StatusCode::SERVICE_UNAVAILABLE if error.contains("failed verification") => {
                Answer::Repairing
            }
            _ => Answer::Other(format!("{a}")),
        };
        (answer, deleted)
    }

    async fn settle_servable(&mut self, version: u64) {
        self.wait(&format!("version {version} servable"), move |t| {
            t.servable().get(&ItemId::new(ITEM)) == Some(&version) && t.status().items_pending == 0
        })
        .await;
        self.store.deleted.lock().expect("lock").clear();
    }

    async fn settle_pending(&mut self) {
        self.wait("a new version adopted and pending", |t| {
            t.status().items_pending == 1
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_and_the_real_tower_answer_reads_alike() {
    // Goal: the same reads (clean, one rotten chunk, every chunk rotten, class shed,
    // mid-sync of a new version, rot while mid-sync) get the same answers and the same
    // quarantines from the simulator's read path and from the real tower's device API.
    let sim = sequence(&mut SimSide::new()).await;
    let real = sequence(&mut RealSide::start().await).await;
    let m1 = manifest(1, &content(1, 300_000));
    let all: BTreeSet<ChunkHash> = m1.chunks.iter().map(|c| c.hash).collect();
    // The sequence itself: what the shared policy answers.
    let expect: Vec<Step> = vec![
        ("clean", Answer::Served { version: 1 }, BTreeSet::new()),
        (
            "one chunk rotten",
            Answer::Repairing,
            BTreeSet::from([m1.chunks[1].hash]),
        ),
        (
            "one chunk fetched again",
            Answer::Served { version: 1 },
            BTreeSet::new(),
        ),
        ("every chunk rotten", Answer::Repairing, all),
        (
            "every chunk fetched again",
            Answer::Served { version: 1 },
            BTreeSet::new(),
        ),
        ("class shed", Answer::Served { version: 1 }, BTreeSet::new()),
        (
            "new version mid-sync",
            Answer::Served { version: 1 },
            BTreeSet::new(),
        ),
        (
            "last complete version rotten mid-sync",
            Answer::Repairing,
            BTreeSet::from([m1.chunks[0].hash]),
        ),
        (
            "after the quarantine, mid-sync",
            Answer::Repairing,
            BTreeSet::new(),
        ),
        (
            "new version synced",
            Answer::Served { version: 2 },
            BTreeSet::new(),
        ),
    ];
    let table = |steps: &[Step]| {
        steps
            .iter()
            .map(|(n, a, q)| format!("  {n}: {a:?}, quarantined {}", q.len()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        sim,
        real,
        "the two read paths disagree\nsimulator:\n{}\nreal tower:\n{}",
        table(&sim),
        table(&real)
    );
    assert_eq!(sim, expect, "the shared policy changed:\n{}", table(&sim));
}
