//! The device client against a small fake tower (axum on 127.0.0.1:0) that serves a real
//! manifest (made by `sovereign_logic::content::publish`), its bytes — honestly or with one
//! byte flipped — through the same `content_response` the real tower uses (ETag, Range),
//! and answers `POST /v1/ops` like the real one: 202, 202 + `idempotent-replayed` for a
//! repeat, 422 for a key reused with another body; counting requests per key.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sovereign_logic::content::{ChunkParams, ItemId, Manifest, Priority, publish};
use sovereign_logic::protocol::OpKind;
use sovereign_server::api::common::content_response;
use sovereign_server::device_client::fetch::{FetchError, FetchOptions, fetch, partial_path};
use sovereign_server::device_client::http::Client;
use sovereign_server::device_client::session::{DeviceSession, SendResult};
use sovereign_server::device_client::{catalog_table, describe};
use sovereign_wire::ManifestDto;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Ops {
    /// Requests per key.
    requests: BTreeMap<String, u32>,
    /// The body first stored under each key.
    stored: BTreeMap<String, Vec<u8>>,
}

struct FakeState {
    manifest: Manifest,
    /// What is served for the item (maybe tampered).
    served: Bytes,
    /// `Range` header of each item request (None: none).
    ranges: Mutex<Vec<Option<String>>>,
    ops: Mutex<Ops>,
    /// Store the first submission of a key but answer 503, as if the ack were lost.
    lose_first_ack: bool,
    /// Item requests beyond this many hang (past any client deadline).
    stall_after: Mutex<Option<usize>>,
}

struct Fake {
    state: Arc<FakeState>,
    url: String,
    _rt: tokio::runtime::Runtime,
}

fn sample(len: usize) -> Vec<u8> {
    sovereign_store::fixtures::noise(len)
}

fn manifest_of(data: &[u8]) -> Manifest {
    publish(
        ItemId::new("alert-cholera"),
        3,
        Priority::P0,
        data,
        ChunkParams::default(),
    )
    .expect("default chunk params are valid")
    .0
}

async fn catalog(State(s): State<Arc<FakeState>>) -> Response {
    axum::Json(serde_json::json!({
        "tower": "tower-fake",
        "items": [ManifestDto::from(&s.manifest)],
    }))
    .into_response()
}

async fn manifest_route(State(s): State<Arc<FakeState>>, Path(id): Path<String>) -> Response {
    if id != s.manifest.item.as_str() {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"error": "no such item"})),
        )
            .into_response();
    }
    let mut r = axum::Json(ManifestDto::from(&s.manifest)).into_response();
    r.headers_mut().insert(
        header::ETAG,
        HeaderValue::from_str(&s.manifest.etag()).unwrap(),
    );
    r
}

async fn item(
    State(s): State<Arc<FakeState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if id != s.manifest.item.as_str() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let seen = {
        let mut ranges = s.ranges.lock().unwrap();
        ranges.push(
            headers
                .get(header::RANGE)
                .map(|v| v.to_str().unwrap().to_string()),
        );
        ranges.len()
    };
    let stall = *s.stall_after.lock().unwrap();
    if stall.is_some_and(|n| seen > n) {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    match content_response(
        &headers,
        s.served.clone(),
        sovereign_server::api::common::sha256_etag(&s.manifest.digest),
        "no-cache",
        &[],
    ) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn submit(State(s): State<Arc<FakeState>>, headers: HeaderMap, body: Bytes) -> Response {
    let key = headers
        .get("idempotency-key")
        .expect("the client sends Idempotency-Key")
        .to_str()
        .unwrap()
        .to_string();
    let mut ops = s.ops.lock().unwrap();
    *ops.requests.entry(key.clone()).or_default() += 1;
    let ack = axum::Json(serde_json::json!({"key": key, "status": "accepted"}));
    match ops.stored.get(&key) {
        None => {
            ops.stored.insert(key.clone(), body.to_vec());
            if s.lose_first_ack {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(serde_json::json!({"error": "ack lost on the way"})),
                )
                    .into_response();
            }
            (StatusCode::ACCEPTED, ack).into_response()
        }
        Some(first) if first[..] == body[..] => {
            let mut r = (StatusCode::ACCEPTED, ack).into_response();
            r.headers_mut().insert(
                HeaderName::from_static("idempotent-replayed"),
                HeaderValue::from_static("true"),
            );
            r
        }
        Some(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(serde_json::json!({
                "error": format!("Idempotency-Key {key} was used before with a different body"),
                "field": "Idempotency-Key",
            })),
        )
            .into_response(),
    }
}

impl Fake {
    fn start(data: &[u8], tamper_at: Option<usize>, lose_first_ack: bool) -> Fake {
        let manifest = manifest_of(data);
        let mut served = data.to_vec();
        if let Some(i) = tamper_at {
            served[i] ^= 0x01;
        }
        let state = Arc::new(FakeState {
            manifest,
            served: Bytes::from(served),
            ranges: Mutex::new(Vec::new()),
            ops: Mutex::new(Ops::default()),
            lose_first_ack,
            stall_after: Mutex::new(None),
        });
        let app = Router::new()
            .route("/v1/catalog", get(catalog))
            .route("/v1/items/{id}/manifest", get(manifest_route))
            .route("/v1/items/{id}", get(item))
            .route("/v1/ops", post(submit))
            .with_state(state.clone());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        rt.spawn(async move { axum::serve(listener, app).await });
        Fake {
            state,
            url,
            _rt: rt,
        }
    }

    fn requests(&self, key: &str) -> u32 {
        self.state
            .ops
            .lock()
            .unwrap()
            .requests
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    fn ranges(&self) -> Vec<Option<String>> {
        self.state.ranges.lock().unwrap().clone()
    }
}

fn client(url: &str) -> Client {
    Client::tcp(url, Duration::from_secs(10)).unwrap()
}

/// A URL where nothing listens: bind a port, then let it go.
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

fn leftovers(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn message(body: &str) -> OpKind {
    OpKind::Message {
        to: "clinic".into(),
        body: body.into(),
    }
}

#[test]
fn catalog_lists_the_items_with_their_class_and_digest() {
    // Goal: the catalog decodes and prints item, version, class, size and a digest prefix.
    let data = sample(40_000);
    let fake = Fake::start(&data, None, false);
    let (cat, _raw) = client(&fake.url).catalog().unwrap();
    let table = catalog_table(&cat);
    let m = &fake.state.manifest;
    assert!(table.contains("alert-cholera"), "{table}");
    assert!(table.contains("v3") && table.contains("P0"), "{table}");
    assert!(table.contains("40000"), "{table}");
    assert!(table.contains(&m.digest.to_hex()[..12]), "{table}");
}

#[test]
fn fetch_writes_a_verified_file_and_nothing_else() {
    // Goal: a good download lands at --out with the exact bytes, and no partial remains.
    let data = sample(300_000);
    let fake = Fake::start(&data, None, false);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("alert.bin");
    let f = fetch(
        &client(&fake.url),
        "alert-cholera",
        &out,
        &FetchOptions::default(),
    )
    .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
    assert_eq!(f.manifest, fake.state.manifest);
    assert_eq!(f.resumed_from, 0);
    assert_eq!(leftovers(dir.path()), vec!["alert.bin".to_string()]);
}

#[test]
fn fetch_in_small_windows_asks_for_whole_chunks_by_range() {
    // Goal: several range requests, each of whole chunks, still assemble the exact bytes.
    let data = sample(200_000);
    let fake = Fake::start(&data, None, false);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a");
    let opts = FetchOptions {
        resume: false,
        window_bytes: 20_000,
    };
    let f = fetch(&client(&fake.url), "alert-cholera", &out, &opts).unwrap();
    assert!(f.requests >= 5, "{} requests", f.requests);
    assert_eq!(std::fs::read(&out).unwrap(), data);
    let ranges = fake.ranges();
    assert_eq!(ranges.len() as u32, f.requests);
    assert!(ranges.iter().all(Option::is_some), "{ranges:?}");
}

#[test]
fn fetch_refuses_a_flipped_byte_naming_the_chunk_and_writes_nothing() {
    // Goal: tampered bytes are refused, the error names the chunk, no file appears.
    let data = sample(300_000);
    let m = manifest_of(&data);
    let bad = 5usize;
    let at: usize = m.chunks[..bad]
        .iter()
        .map(|c| c.len as usize)
        .sum::<usize>()
        + 17;
    let fake = Fake::start(&data, Some(at), false);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("alert.bin");
    let err = fetch(
        &client(&fake.url),
        "alert-cholera",
        &out,
        &FetchOptions::default(),
    )
    .unwrap_err();
    match &err {
        FetchError::BadChunk(b) => {
            assert_eq!(b.index, bad);
            assert_eq!(b.expected, m.chunks[bad].hash);
        }
        other => panic!("expected a bad chunk, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&format!("chunks[{bad}]")), "{msg}");
    assert!(msg.contains("nothing was written"), "{msg}");
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
}

#[test]
fn fetch_resume_continues_with_a_range_from_the_partial_length() {
    // Goal: --resume asks only for what is missing, and still verifies the whole.
    let data = sample(300_000);
    let fake = Fake::start(&data, None, false);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("alert.bin");
    let half = 150_001usize;
    std::fs::write(partial_path(&out, &fake.state.manifest), &data[..half]).unwrap();
    let opts = FetchOptions {
        resume: true,
        ..FetchOptions::default()
    };
    let f = fetch(&client(&fake.url), "alert-cholera", &out, &opts).unwrap();
    assert_eq!(f.resumed_from, half as u64);
    assert_eq!(
        fake.ranges()[0].as_deref(),
        Some(format!("bytes={half}-{}", data.len() - 1).as_str())
    );
    assert_eq!(std::fs::read(&out).unwrap(), data);
    assert_eq!(leftovers(dir.path()), vec!["alert.bin".to_string()]);
}

#[test]
fn fetch_resume_drops_a_corrupt_partial_and_starts_over() {
    // Goal: a partial that fails verification is never built upon.
    let data = sample(100_000);
    let fake = Fake::start(&data, None, false);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a");
    let mut partial = data[..60_000].to_vec();
    partial[10] ^= 0xff; // inside chunk 0
    std::fs::write(partial_path(&out, &fake.state.manifest), &partial).unwrap();
    let opts = FetchOptions {
        resume: true,
        ..FetchOptions::default()
    };
    let f = fetch(&client(&fake.url), "alert-cholera", &out, &opts).unwrap();
    assert_eq!(f.resumed_from, 0);
    assert_eq!(fake.ranges()[0].as_deref(), Some("bytes=0-99999"));
    assert_eq!(std::fs::read(&out).unwrap(), data);
}

#[test]
fn a_fetch_cut_short_keeps_its_verified_part_and_resume_finishes_it() {
    // Goal: a tower that stops answering leaves a resumable partial (and says so); the
    // resumed fetch asks only for the rest and verifies the whole.
    let data = sample(200_000);
    let fake = Fake::start(&data, None, false);
    *fake.state.stall_after.lock().unwrap() = Some(1);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a");
    let impatient = Client::tcp(&fake.url, Duration::from_millis(500)).unwrap();
    let opts = FetchOptions {
        resume: false,
        window_bytes: 50_000,
    };
    let err = fetch(&impatient, "alert-cholera", &out, &opts).unwrap_err();
    let FetchError::Interrupted { kept, partial, .. } = &err else {
        panic!("expected an interrupted fetch, got {err:?}");
    };
    assert!(*kept > 0 && *kept < data.len() as u64, "kept {kept}");
    assert!(err.to_string().contains("--resume"), "{err}");
    assert_eq!(std::fs::read(partial).unwrap(), data[..*kept as usize]);
    assert!(!out.exists());

    *fake.state.stall_after.lock().unwrap() = None;
    let resumed = FetchOptions {
        resume: true,
        ..opts
    };
    let f = fetch(&client(&fake.url), "alert-cholera", &out, &resumed).unwrap();
    assert_eq!(f.resumed_from, *kept);
    let last = fake.ranges().len();
    assert!(
        fake.ranges()[last - f.requests as usize]
            .as_deref()
            .is_some_and(|r| r.starts_with(&format!("bytes={kept}-"))),
        "{:?}",
        fake.ranges()
    );
    assert_eq!(std::fs::read(&out).unwrap(), data);
    assert_eq!(leftovers(dir.path()), vec!["a".to_string()]);
}

#[test]
fn fetch_from_an_unreachable_tower_fails_and_writes_nothing() {
    // Goal: no tower, no file; the error says unreachable.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a");
    let err = fetch(&client(&dead_url()), "x", &out, &FetchOptions::default()).unwrap_err();
    assert!(err.to_string().contains("unreachable"), "{err}");
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn submit_offline_queues_durably_and_a_later_flush_delivers_exactly_once() {
    // Goal: an operation queued with the tower down survives a fresh load, is delivered
    // once by a later flush, leaves the outbox, and its key is never issued again.
    let state = tempfile::tempdir().unwrap();
    let dead = client(&dead_url());
    let key = {
        let mut s = DeviceSession::open(state.path()).unwrap();
        let op = s.submit(message("boil water")).unwrap();
        let out = s.send(Some(&dead)).unwrap();
        assert_eq!(out.len(), 1);
        assert!(
            matches!(
                &out[0].result,
                SendResult::Queued {
                    reachable: false,
                    ..
                }
            ),
            "{:?}",
            out[0]
        );
        assert!(
            describe(&out[0]).contains("queued offline"),
            "{}",
            describe(&out[0])
        );
        op.key
    };
    // A fresh process: the outbox is on disk, with its attempt.
    let log = DeviceSession::open(state.path()).unwrap().log().unwrap();
    assert_eq!(
        log.ops.keys().cloned().collect::<Vec<_>>(),
        vec![key.clone()]
    );
    assert_eq!(log.ops[&key].attempts, 1);

    let fake = Fake::start(&sample(10), None, false);
    let tower = client(&fake.url);
    let mut s = DeviceSession::open(state.path()).unwrap();
    let out = s.send(Some(&tower)).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].result, SendResult::Acked { duplicate: false });
    assert_eq!(fake.requests(&key.0), 1);
    drop(s);

    // Flushing again sends nothing: the acknowledgement was made durable.
    let mut s = DeviceSession::open(state.path()).unwrap();
    assert!(s.log().unwrap().ops.is_empty());
    assert!(s.send(Some(&tower)).unwrap().is_empty());
    assert_eq!(fake.requests(&key.0), 1);

    // The next operation gets a new key, though the outbox was empty.
    let op2 = s.submit(message("second")).unwrap();
    assert_ne!(op2.key, key);
    let out = s.send(Some(&tower)).unwrap();
    assert_eq!(out[0].result, SendResult::Acked { duplicate: false });
    assert_eq!(fake.requests(&op2.key.0), 1);
}

#[test]
fn a_lost_acknowledgement_is_retried_and_the_tower_deduplicates_it() {
    // Goal: when the ack is lost the op stays queued; the retry is answered as a replay
    // and the op leaves the outbox — one effect, two requests.
    let fake = Fake::start(&sample(10), None, true);
    let tower = client(&fake.url);
    let state = tempfile::tempdir().unwrap();
    let mut s = DeviceSession::open(state.path()).unwrap();
    let op = s
        .submit(OpKind::Contribution {
            community: "kibera".into(),
            nation: "ke".into(),
            amount_minor: 1234,
        })
        .unwrap();
    let out = s.send(Some(&tower)).unwrap();
    assert!(
        matches!(&out[0].result, SendResult::Queued { reachable: true, reason } if reason.contains("503")),
        "{:?}",
        out[0]
    );
    drop(s);
    let mut s = DeviceSession::open(state.path()).unwrap();
    let out = s.send(Some(&tower)).unwrap();
    assert_eq!(out[0].result, SendResult::Acked { duplicate: true });
    assert_eq!(out[0].attempts, 2);
    assert_eq!(fake.requests(&op.key.0), 2);
    assert_eq!(fake.state.ops.lock().unwrap().stored.len(), 1);
    assert_eq!(s.pending(), 0);
}

#[test]
fn a_conflict_is_surfaced_with_the_operation_and_dropped() {
    // Goal: 422 (key reused with another body) is an error naming the op, not a retry
    // loop, and the log keeps it as the operation's outcome.
    let fake = Fake::start(&sample(10), None, false);
    let tower = client(&fake.url);
    let state = tempfile::tempdir().unwrap();
    let mut s = DeviceSession::open(state.path()).unwrap();
    let op = s.submit(message("hello")).unwrap();
    // Someone else's body is already stored under the key.
    fake.state
        .ops
        .lock()
        .unwrap()
        .stored
        .insert(op.key.0.to_string(), b"{\"something\":\"else\"}".to_vec());
    let out = s.send(Some(&tower)).unwrap();
    let SendResult::Conflict { message } = &out[0].result else {
        panic!("expected a conflict, got {:?}", out[0]);
    };
    assert!(
        message.contains("422") && message.contains("different body"),
        "{message}"
    );
    let line = describe(&out[0]);
    assert!(
        line.contains("hello") && line.contains(&*op.key.0),
        "{line}"
    );
    drop(s);
    let log = DeviceSession::open(state.path()).unwrap().log().unwrap();
    assert!(log.ops.is_empty());
    assert_eq!(log.outcomes.len(), 1);
    assert_eq!(
        (
            log.outcomes[0].op.key.clone(),
            log.outcomes[0].result.as_str()
        ),
        (op.key, "conflict")
    );
}

/// The device client against the real servers, end to end: an origin and a tower built by
/// `serve::{origin_parts, tower_parts}` over in-memory stores, on 127.0.0.1. Content goes
/// origin → tower → device; an operation device → tower.
mod real_servers {
    use super::*;
    use sovereign_logic::device::FinalOutcome;
    use sovereign_logic::io::Key;
    use sovereign_logic::origin::OriginConfig;
    use sovereign_logic::protocol::{LinkKind, Message, SubmitReply, TowerId};
    use sovereign_logic::tower::TowerConfig;
    use sovereign_server::audit::AuditLog;
    use sovereign_server::auth::Tokens;
    use sovereign_server::device_client::identity::DeviceIdentity;
    use sovereign_server::device_client::session::StatusResult;
    use sovereign_server::serve::{origin_parts, tower_parts};
    use sovereign_server::tower_auth::TowerCredentials;
    use sovereign_server::tower_node::{TowerCredential, TowerNodeConfig};
    use sovereign_server::transport::HyperTransport;
    use sovereign_store::{Faults, MemDisk, MemStore, Store};

    /// The tower's credential at the origin.
    const CREDENTIAL: &str = "tower-1-credential-0123456789abcdef";

    struct Servers {
        tower_url: String,
        tower_disk: MemDisk,
        rt: tokio::runtime::Runtime,
        origin: sovereign_server::origin_node::OriginHandle,
        _dir: tempfile::TempDir,
    }

    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        url
    }

    /// `origin_up: false`: the tower's uplink leads nowhere, so operations stay in its
    /// outbox (and the tower, not the origin, answers replays).
    fn start(origin_up: bool) -> Servers {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let tower_disk = MemDisk::new();
        let (tower_url, origin) = rt.block_on(async {
            let origin_store: Arc<dyn Store> = Arc::new(MemStore::new(MemDisk::new()));
            let origin = origin_parts(
                OriginConfig::default(),
                origin_store,
                Faults::new(),
                Tokens::none(),
                Arc::new(AuditLog::open(dir.path().join("origin-audit.jsonl")).unwrap()),
                {
                    let c = TowerCredentials::in_memory();
                    c.register(TowerId(1), CREDENTIAL).unwrap();
                    c
                },
            )
            .unwrap();
            let origin_url = if origin_up {
                serve(origin.public).await
            } else {
                dead_url()
            };
            let mut tower = TowerConfig::new(TowerId(1), &[LinkKind::Fibre]);
            tower.catalog_interval = Duration::from_millis(200);
            tower.probe.interval = Duration::from_millis(50);
            let parts = tower_parts(
                TowerNodeConfig {
                    tower,
                    uplinks: [(LinkKind::Fibre, origin_url)].into_iter().collect(),
                    power: None,
                    power_interval: Duration::from_secs(60),
                    seed: 1,
                    credential: Some(TowerCredential::secret(CREDENTIAL)),
                },
                Arc::new(MemStore::new(tower_disk.clone())),
                Faults::new(),
                Arc::new(HyperTransport::tcp()),
                Tokens::none(),
                Arc::new(AuditLog::open(dir.path().join("tower-audit.jsonl")).unwrap()),
                1 << 20,
            )
            .unwrap();
            (serve(parts.public).await, origin.handle)
        });
        Servers {
            tower_url,
            tower_disk,
            rt,
            origin,
            _dir: dir,
        }
    }

    #[test]
    fn content_published_at_the_origin_is_fetched_verified_through_the_tower() {
        // Goal: the client's reading of the tower's catalog, manifest, ETag and ranges
        // matches the real tower's.
        let s = start(true);
        let data = Bytes::from(sample(150_000));
        s.rt.block_on(
            s.origin
                .publish(ItemId::new("guide"), Priority::P1, data.clone()),
        )
        .unwrap();
        let tower = client(&s.tower_url);
        // The tower syncs on its own schedule: wait (at most 30 s) until it serves the item.
        for tries in 0.. {
            let (cat, _) = tower.catalog().unwrap();
            if cat.items.iter().any(|m| m.item == "guide") {
                assert_eq!(cat.tower, "tower-1");
                break;
            }
            assert!(tries < 300, "the tower never listed the item");
            std::thread::sleep(Duration::from_millis(100));
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("guide");
        let opts = FetchOptions {
            resume: false,
            window_bytes: 40_000,
        };
        let f = fetch(&tower, "guide", &out, &opts).unwrap();
        assert!(f.requests > 1, "{} requests", f.requests);
        assert_eq!(std::fs::read(&out).unwrap(), data);

        // An item the tower does not hold: refused with the tower's reason, nothing written.
        let err = fetch(
            &tower,
            "nothing",
            &dir.path().join("n"),
            &FetchOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("404"), "{err}");
        assert!(!dir.path().join("n").exists());
    }

    #[test]
    fn the_real_tower_acknowledges_replays_and_refuses_as_the_client_expects() {
        // Goal: the client's reading of POST /v1/ops matches the real tower's: 202, a
        // replay for the same key and body, 422 for the same key with another body.
        let s = start(false);
        let tower = client(&s.tower_url);
        let state = tempfile::tempdir().unwrap();
        let mut session = DeviceSession::open(state.path()).unwrap();
        let op = session.submit(message("hello tower")).unwrap();
        let out = session.send(Some(&tower)).unwrap();
        assert_eq!(
            out[0].result,
            SendResult::Acked { duplicate: false },
            "{out:?}"
        );
        // Acknowledged means durable at the tower (its origin is out of reach: it stays).
        assert!(
            s.tower_disk
                .durable()
                .contains_key(&Key::Outbox(op.key.clone()))
        );

        let me = DeviceIdentity::load_or_create(state.path()).unwrap();
        let again = tower.submit(&op, &me).unwrap();
        assert_eq!(again.reply, SubmitReply::Duplicate, "{again:?}");
        let mut other = op.clone();
        other.kind = message("something else");
        let conflict = tower.submit(&other, &me).unwrap();
        assert_eq!(conflict.reply, SubmitReply::Conflict, "{conflict:?}");
        assert!(conflict.detail.contains("422"), "{}", conflict.detail);
    }

    #[test]
    fn another_devices_key_or_identity_is_refused_by_the_real_tower() {
        // Goal: issue 11 item 1 — a device cannot take another's key (or claim to be it),
        // whatever it guesses; the victim's operation is accepted afterwards.
        let s = start(false);
        let tower = client(&s.tower_url);
        let victim_dir = tempfile::tempdir().unwrap();
        let mut victim = DeviceSession::open(victim_dir.path()).unwrap();
        let op = victim.submit(message("mine")).unwrap();
        let thief = DeviceIdentity::from_secret([7; 32]);
        let mut stolen = op.clone();
        stolen.kind = message("the thief's body");
        let r = tower.submit(&stolen, &thief).unwrap();
        assert!(matches!(r.reply, SubmitReply::Forbidden { .. }), "{r:?}");
        assert!(r.detail.contains("403"), "{}", r.detail);
        let mut as_itself = stolen.clone();
        as_itself.device = thief.id();
        let r = tower.submit(&as_itself, &thief).unwrap();
        assert!(matches!(r.reply, SubmitReply::Forbidden { .. }), "{r:?}");
        assert!(s.tower_disk.durable().is_empty(), "nothing stored");
        let out = victim.send(Some(&tower)).unwrap();
        assert_eq!(out[0].result, SendResult::Acked { duplicate: false });
        // Invalid at the edge: the origin's rules, 422 naming the field, nothing stored.
        let zero = victim
            .submit(OpKind::Contribution {
                community: "kibera".into(),
                nation: "ke".into(),
                amount_minor: 0,
            })
            .unwrap();
        let out = victim.send(Some(&tower)).unwrap();
        assert!(
            matches!(&out[0].result, SendResult::Refused { message } if message.contains("422") && message.contains("op.amount_minor")),
            "{out:?}"
        );
        assert!(!s.tower_disk.durable().contains_key(&Key::Outbox(zero.key)));
    }

    #[test]
    fn a_conflict_found_later_at_the_origin_reaches_the_device() {
        // Goal: issue 11 item 1 — "acknowledged" then dropped without a word no more: the
        // origin already applied another body under the device's key; the tower
        // acknowledges, the origin answers conflict, and `device status` (check_status)
        // reports the operation as not applied, with it, and keeps that in the log.
        let s = start(true);
        let tower = client(&s.tower_url);
        let state = tempfile::tempdir().unwrap();
        let mut session = DeviceSession::open(state.path()).unwrap();
        let op = session
            .submit(OpKind::Contribution {
                community: "phoneB".into(),
                nation: "ke".into(),
                amount_minor: 2_000,
            })
            .unwrap();
        let mut first = op.clone();
        first.kind = OpKind::Contribution {
            community: "phoneA".into(),
            nation: "ke".into(),
            amount_minor: 1_000,
        };
        let applied =
            s.rt.block_on(
                s.origin
                    .message(TowerId(1), Message::ForwardOps { ops: vec![first] }),
            )
            .unwrap();
        assert!(
            matches!(applied, Some(Message::ForwardReply { .. })),
            "{applied:?}"
        );
        let out = session.send(Some(&tower)).unwrap();
        assert_eq!(out[0].result, SendResult::Acked { duplicate: false });
        let mut last = Vec::new();
        for _ in 0..300 {
            last = session.check_status(Some(&tower)).unwrap();
            if matches!(last.as_slice(), [(_, StatusResult::Final(_))]) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            last,
            vec![(op.clone(), StatusResult::Final(FinalOutcome::Conflict))]
        );
        drop(session);
        let log = DeviceSession::open(state.path()).unwrap().log().unwrap();
        assert!(log.awaiting.is_empty(), "settled");
        assert_eq!(
            log.outcomes
                .last()
                .map(|o| (o.op.key.clone(), o.result.clone())),
            Some((op.key, "conflict".to_string()))
        );
    }

    #[test]
    fn an_applied_operation_is_reported_applied() {
        // Goal: the usual case: acknowledged, forwarded, applied — and the device knows.
        let s = start(true);
        let tower = client(&s.tower_url);
        let state = tempfile::tempdir().unwrap();
        let mut session = DeviceSession::open(state.path()).unwrap();
        let op = session.submit(message("applied please")).unwrap();
        assert_eq!(
            session.send(Some(&tower)).unwrap()[0].result,
            SendResult::Acked { duplicate: false }
        );
        let mut last = Vec::new();
        for _ in 0..300 {
            last = session.check_status(Some(&tower)).unwrap();
            if matches!(last.as_slice(), [(_, StatusResult::Final(_))]) {
                break;
            }
            assert!(
                matches!(last.as_slice(), [(_, StatusResult::Pending)]),
                "{last:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            matches!(last.as_slice(), [(o, StatusResult::Final(FinalOutcome::Applied { .. }))] if o.key == op.key),
            "{last:?}"
        );
    }
}
