//! Simulator benchmarks (criterion): how fast the world runs, and how it compares with
//! turmoil on the same small sync workload.
//!
//! Map:
//! - `region/*`: the region scenario (10 towers × 100 devices, 24 virtual hours, storm
//!   nemesis), built in code ([`region`]); and `scenarios/region.toml` when it exists and
//!   parses (skipped, with a note, otherwise). Goal: under 2 s wall per run in release.
//! - `sync/sovereign_small` vs `sync/turmoil_small`: one origin, one tower, 500 chunks of
//!   8 KiB fetched request/response over a 20 ms one-way link, in our world
//!   ([`sync_small`]) and as tokio tasks over turmoil's simulated TCP ([`turmoil_small`]).
//! - after each group, a summary line per bench: events/run, virtual seconds, mean wall
//!   time, events per wall second, virtual seconds per wall second, and the
//!   turmoil/sovereign wall-time ratio. docs/BENCHMARKS.md records the figures.
//!
//! Run: `cargo bench -p sovereign-sim --bench sim`.
//!
//! Not covered: correctness (the world's tests and oracles do that; here a run with a
//! violation only fails an assertion so that a broken world is not benchmarked), and
//! multi-core scaling (one run is single-threaded by design).

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use sha2::{Digest, Sha256};
use sovereign_logic::Time;
use sovereign_logic::content::{ChunkParams, Priority};
use sovereign_logic::entropy::{Entropy, SplitMix64};
use sovereign_logic::protocol::LinkKind;
use sovereign_sim::scenario::parse::power_default;
use sovereign_sim::scenario::{
    CatalogSpec, Family, LinkProfile, LinkSpec, Nemesis, OriginSpec, PowerSpec, TowerSpec, Workload,
};
use sovereign_sim::{RunOptions, RunReport, Scenario, run};
use std::cell::Cell;
use std::hint::black_box;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The region run's wall-time goal (the acceptance bound).
const REGION_WALL_GOAL: Duration = Duration::from_secs(2);
/// Chunks in the small sync workload.
const SYNC_CHUNKS: u32 = 500;
/// Size of each chunk, bytes.
const SYNC_CHUNK_BYTES: u32 = 8 * 1024;
/// Requests in flight in the turmoil client (= connections); the tower's AIMD window
/// starts at the same value.
const SYNC_IN_FLIGHT: u32 = 4;
/// One-way latency of the small workload's link.
const SYNC_LATENCY: Duration = Duration::from_millis(20);
/// Bandwidth of the small workload's link (100 Mbit/s).
const SYNC_BYTES_PER_S: u64 = 100_000_000 / 8;
/// Items the small catalog is split into (each a whole number of chunks).
const SYNC_ITEMS: u32 = 5;
const _: () = assert!(SYNC_CHUNKS % SYNC_ITEMS == 0 && SYNC_CHUNKS % SYNC_IN_FLIGHT == 0);
/// Virtual-time cap on the turmoil run (it finishes in a few seconds).
const TURMOIL_DURATION_MAX: Duration = Duration::from_secs(120);
/// Turmoil request kinds.
const REQ_CATALOG: u8 = 0;
const REQ_CHUNK: u8 = 1;

// ----- stopwatch ------------------------------------------------------------------------

/// Wall time of `iters` calls of `f`.
// Benches measure wall time; the determinism contract covers the simulation, not its
// stopwatch.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
fn timed(iters: u64, mut f: impl FnMut()) -> Duration {
    let start = std::time::Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed()
}

/// Wall time accumulated over every call of one bench (warm-up included), for the
/// derived rates printed after each group.
#[derive(Default)]
struct Tally {
    iters: u64,
    wall: Duration,
}

impl Tally {
    /// Time `iters` calls of `f`, add them to the tally, return the time (criterion's
    /// `iter_custom` contract).
    fn measure(&mut self, iters: u64, f: impl FnMut()) -> Duration {
        let d = timed(iters, f);
        self.iters += iters;
        self.wall += d;
        d
    }

    /// Mean wall time per call.
    fn mean(&self) -> Duration {
        self.wall / u32::try_from(self.iters.max(1)).unwrap_or(u32::MAX)
    }
}

/// One summary line: per-run work and the rates it implies at the measured mean.
fn summary(name: &str, events: u64, virtual_s: f64, tally: &Tally) -> String {
    let wall_s = tally.mean().as_secs_f64().max(1e-9);
    format!(
        "{name}: {events} events, {virtual_s:.1} virtual s per run; mean wall {:.1} ms over {} runs \
         => {:.0} events/s, {:.0} virtual s per wall s",
        wall_s * 1e3,
        tally.iters,
        events as f64 / wall_s,
        virtual_s / wall_s,
    )
}

// ----- scenarios built in code ----------------------------------------------------------

/// The region scenario: 10 towers × 100 devices on fibre + LTE + GEO satellite, 24
/// virtual hours, the mixed workload (a catalog of every class, steady publishing, reads
/// and operations), and the storm nemesis (every fault family).
fn region() -> Scenario {
    let tower = |i: usize| {
        TowerSpec::builtin(
            format!("tower-{i}"),
            100,
            &[LinkKind::Fibre, LinkKind::Lte, LinkKind::Satellite],
        )
    };
    Scenario {
        description: "10 towers, 1,000 devices, 24 hours under the storm nemesis".into(),
        workload: Workload::mixed(),
        nemesis: Nemesis {
            rates_per_hour: vec![
                (Family::Network, 1.0),
                (Family::Process, 0.3),
                (Family::Disk, 0.3),
                (Family::Power, 0.2),
                (Family::Clock, 0.1),
            ],
            duration_mean: Duration::from_secs(600),
            duration_max: Duration::from_secs(3600),
        },
        ..Scenario::new(
            "region",
            Duration::from_secs(24 * 3600),
            (0..10).map(tower).collect(),
        )
    }
}

/// The small sync workload in our world: one tower, no devices, one fibre link at 20 ms
/// one-way and 100 Mbit/s without jitter or loss, and a catalog of exactly 500 chunks of
/// 8 KiB (fixed-size chunking: min = avg = max), nothing else happening.
fn sync_small() -> Scenario {
    let link = LinkProfile {
        name: "bench".into(),
        latency: SYNC_LATENCY,
        jitter: Duration::ZERO,
        bytes_per_s: SYNC_BYTES_PER_S,
        loss: 0.0,
        handover_every: None,
        handover_outage: Duration::ZERO,
    };
    let tower = TowerSpec {
        catalog_poll: None,
        links: vec![LinkSpec {
            kind: LinkKind::Fibre,
            profile: link,
        }],
        power: PowerSpec {
            grid: true,
            soc_initial: 1.0,
            ..power_default()
        },
        ..TowerSpec::builtin("tower-0", 0, &[])
    };
    Scenario {
        description: "one tower fetches 500 chunks of 8 KiB over one link".into(),
        liveness_bound: Duration::from_secs(600),
        origin: OriginSpec {
            chunk: ChunkParams {
                size_min: SYNC_CHUNK_BYTES,
                size_avg: SYNC_CHUNK_BYTES,
                size_max: SYNC_CHUNK_BYTES,
            },
            ..Default::default()
        },
        workload: Workload {
            catalog: vec![CatalogSpec {
                priority: Priority::P1,
                items: SYNC_ITEMS,
                bytes: u64::from(SYNC_CHUNKS / SYNC_ITEMS) * u64::from(SYNC_CHUNK_BYTES),
            }],
            publish_bytes: [0; 4],
            ..Workload::idle()
        },
        // Heal (and the first convergence check) at 30 s; the sync is done by then, so
        // the run ends there.
        ..Scenario::new("sync-small", Duration::from_secs(30), vec![tower])
    }
}

/// One reference run, checked: a world that violates an invariant is not worth timing.
fn reference_run(sc: &Scenario, record_trace: bool) -> RunReport {
    let opts = RunOptions {
        seed: sc.seed,
        record_trace,
        ..RunOptions::default()
    };
    let r = run(sc, &opts);
    assert!(r.events > 0, "{}: no events", sc.name);
    if !r.violations.is_empty() {
        println!(
            "note: {} seed {} reports {} violation(s), first: {:?}",
            sc.name,
            sc.seed,
            r.violations.len(),
            r.violations.first()
        );
    }
    r
}

/// From a recorded trace: (chunk replies the tower received, virtual time from the
/// tower's first catalog request to its last chunk reply).
fn sync_span(trace: &[String]) -> (u64, Duration) {
    // Runs this short stay within the first day: the stamp is the line's first word.
    let at = |line: &str| -> Option<Time> { Time::parse_clock(line.split(' ').next()?) };
    let first = trace
        .iter()
        .find(|l| l.contains("origin <- tower-0") && l.contains("CatalogRequest"))
        .and_then(|l| at(l));
    let replies: Vec<&String> = trace
        .iter()
        .filter(|l| l.contains("tower-0 <-") && l.contains("ChunkReply"))
        .collect();
    let last = replies.last().and_then(|l| at(l));
    let span = match (first, last) {
        (Some(a), Some(b)) => b.saturating_since(a),
        _ => Duration::ZERO,
    };
    (replies.len() as u64, span)
}

// ----- the same workload under turmoil --------------------------------------------------

/// The bytes of chunk `i` (deterministic, incompressible).
fn turmoil_chunk(i: u32) -> Vec<u8> {
    let mut rng = SplitMix64::new(SplitMix64::derive(1, &format!("chunk-{i}")));
    let mut v = Vec::with_capacity(SYNC_CHUNK_BYTES as usize);
    while v.len() < SYNC_CHUNK_BYTES as usize {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v
}

/// Origin host: builds its content (and the catalog of hashes) at start, then answers
/// `[kind u8][index u32]` requests on every connection with `[len u32][bytes]`.
async fn turmoil_origin() -> turmoil::Result {
    let chunks: Vec<Vec<u8>> = (0..SYNC_CHUNKS).map(turmoil_chunk).collect();
    let catalog: Vec<u8> = chunks
        .iter()
        .flat_map(|c| Sha256::digest(c).to_vec())
        .collect();
    let content = Arc::new((chunks, catalog));
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", 9000)).await?;
    loop {
        let (mut stream, _) = listener.accept().await?;
        let content = Arc::clone(&content);
        tokio::task::spawn_local(async move {
            let mut req = [0u8; 5];
            while stream.read_exact(&mut req).await.is_ok() {
                let index = u32::from_be_bytes([req[1], req[2], req[3], req[4]]);
                let body: &[u8] = match req[0] {
                    REQ_CATALOG => &content.1,
                    REQ_CHUNK => match content.0.get(index as usize) {
                        Some(c) => c,
                        None => &[],
                    },
                    _ => &[],
                };
                let len = u32::try_from(body.len()).expect("body under 4 GiB");
                if stream.write_all(&len.to_be_bytes()).await.is_err()
                    || stream.write_all(body).await.is_err()
                {
                    break;
                }
            }
        });
    }
}

/// One request/response on `stream`.
async fn turmoil_call(
    stream: &mut turmoil::net::TcpStream,
    kind: u8,
    index: u32,
) -> std::io::Result<Vec<u8>> {
    let mut req = [kind, 0, 0, 0, 0];
    req[1..].copy_from_slice(&index.to_be_bytes());
    stream.write_all(&req).await?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).await?;
    Ok(body)
}

/// One of the tower's connections: fetch chunks `first, first + step, …`, verify each
/// against the catalog; the number verified.
async fn turmoil_lane(
    mut stream: turmoil::net::TcpStream,
    catalog: &[u8],
    first: u32,
    step: u32,
) -> std::io::Result<u32> {
    let mut verified = 0;
    for i in (first..SYNC_CHUNKS).step_by(step as usize) {
        let body = turmoil_call(&mut stream, REQ_CHUNK, i).await?;
        let want = &catalog[i as usize * 32..(i as usize + 1) * 32];
        if Sha256::digest(&body).as_slice() == want {
            verified += 1;
        }
    }
    Ok(verified)
}

/// Run the small sync under turmoil; (chunks verified, virtual time to finish).
fn turmoil_small() -> (u32, Duration) {
    let mut sim = turmoil::Builder::new()
        .simulation_duration(TURMOIL_DURATION_MAX)
        .min_message_latency(SYNC_LATENCY)
        .max_message_latency(SYNC_LATENCY)
        .rng_seed(1)
        .build();
    sim.host("origin", turmoil_origin);
    let verified = Rc::new(Cell::new(0u32));
    let out = Rc::clone(&verified);
    sim.client("tower", async move {
        let mut conns = Vec::new();
        for _ in 0..SYNC_IN_FLIGHT {
            conns.push(turmoil::net::TcpStream::connect(("origin", 9000)).await?);
        }
        let catalog = turmoil_call(&mut conns[0], REQ_CATALOG, 0).await?;
        assert_eq!(catalog.len(), SYNC_CHUNKS as usize * 32, "catalog size");
        let mut it = conns.into_iter();
        let mut lane =
            |k: u32| turmoil_lane(it.next().expect("a connection per lane"), &catalog, k, 4);
        let (a, b, c, d) = tokio::join!(lane(0), lane(1), lane(2), lane(3));
        out.set(a? + b? + c? + d?);
        Ok(())
    });
    sim.run().expect("turmoil run");
    (verified.get(), sim.elapsed())
}

// ----- the benches ----------------------------------------------------------------------

fn bench_region(c: &mut Criterion) {
    let mut scenarios = vec![("region/code", region())];
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/region.toml");
    match sovereign_sim::scenario::parse_file(&file) {
        Ok(sc) => scenarios.push(("region/toml", sc)),
        Err(e) => println!("note: region/toml skipped ({e})"),
    }
    let mut g = c.benchmark_group("region");
    // Flat sampling, 10 samples in ~20 s: one or two runs per sample at ~1.7–1.9 s a
    // run, so the group takes 20–40 s per scenario.
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(1));
    let mut lines = Vec::new();
    for (name, sc) in &scenarios {
        let r = reference_run(sc, false);
        let opts = RunOptions {
            seed: sc.seed,
            ..RunOptions::default()
        };
        let mut tally = Tally::default();
        let id = name.trim_start_matches("region/");
        g.bench_function(id, |b| {
            b.iter_custom(|iters| tally.measure(iters, || drop(black_box(run(sc, &opts)))))
        });
        let verdict = if tally.mean() < REGION_WALL_GOAL {
            "met"
        } else {
            "MISSED"
        };
        lines.push(format!(
            "{} (goal < {} s wall: {verdict})",
            summary(name, r.events, r.end.as_secs_f64(), &tally),
            REGION_WALL_GOAL.as_secs()
        ));
    }
    g.finish();
    for l in lines {
        println!("{l}");
    }
}

fn bench_sync(c: &mut Criterion) {
    let sc = sync_small();
    let r = reference_run(&sc, true);
    let (replies, span) = sync_span(&r.trace);
    let (verified, turmoil_virtual) = turmoil_small();
    assert_eq!(
        verified, SYNC_CHUNKS,
        "turmoil: every chunk fetched and verified"
    );
    let opts = RunOptions {
        seed: sc.seed,
        ..RunOptions::default()
    };
    let mut g = c.benchmark_group("sync");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(1));
    let mut ours = Tally::default();
    let mut theirs = Tally::default();
    g.bench_function("sovereign_small", |b| {
        b.iter_custom(|iters| ours.measure(iters, || drop(black_box(run(&sc, &opts)))))
    });
    g.bench_function("turmoil_small", |b| {
        b.iter_custom(|iters| {
            theirs.measure(iters, || {
                black_box(turmoil_small());
            })
        })
    });
    g.finish();
    println!(
        "{}; {replies} chunk replies, first catalog request to last chunk {:.3} virtual s",
        summary("sync/sovereign_small", r.events, r.end.as_secs_f64(), &ours),
        span.as_secs_f64()
    );
    println!(
        "sync/turmoil_small: {verified} chunks verified in {:.3} virtual s; mean wall {:.1} ms \
         over {} runs => {:.0} virtual s per wall s",
        turmoil_virtual.as_secs_f64(),
        theirs.mean().as_secs_f64() * 1e3,
        theirs.iters,
        turmoil_virtual.as_secs_f64() / theirs.mean().as_secs_f64().max(1e-9)
    );
    println!(
        "sync ratio: turmoil wall / sovereign wall = {:.2}",
        theirs.mean().as_secs_f64() / ours.mean().as_secs_f64().max(1e-9)
    );
}

criterion_group!(benches, bench_region, bench_sync);
criterion_main!(benches);
