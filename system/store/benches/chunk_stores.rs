//! One batch of chunks made durable, side by side: the chunk directory (a file per
//! chunk: temp file, syncfs, rename, directory flush) and the pack store (appended to
//! one file, one fdatasync). The batch is what a 16 MiB slice of a publish brings: 1,600
//! chunks of 10 KiB, pseudo-random. Each sample writes into a new directory on the
//! temp directory's filesystem (`TMPDIR`), created and removed outside the timing.
//!
//! ```sh
//! cargo bench -p sovereign-store --bench chunk_stores
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use sovereign_logic::content::ChunkHash;
use sovereign_store::packs::PackDir;
use sovereign_store::{ChunkDir, ChunkStore};

/// Opens one layout's store in a directory.
type OpenStore = fn(&Path) -> ChunkStore;

const CHUNKS: u32 = 1_600;
const CHUNK_BYTES: usize = 10 * 1024;

fn chunks() -> Vec<(ChunkHash, Vec<u8>)> {
    (sovereign_store::fixtures::noise(CHUNKS as usize * CHUNK_BYTES).chunks(CHUNK_BYTES))
        .map(|b| (ChunkHash::of(b), b.to_vec()))
        .collect()
}

fn bench(c: &mut Criterion) {
    let data = chunks();
    let batch: Vec<(ChunkHash, &[u8])> = data.iter().map(|(h, b)| (*h, &b[..])).collect();
    let mut g = c.benchmark_group("1600 chunks of 10 KiB made durable");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(20));
    let layouts: [(&str, OpenStore); 2] = [
        ("chunk directory (a file per chunk)", |dir| {
            ChunkStore::Files(ChunkDir::open(dir).expect("open"))
        }),
        ("pack store (appended, one fdatasync)", |dir| {
            let packs = PackDir::open(dir).expect("open");
            packs.scan_index().expect("scan");
            ChunkStore::Packs(packs)
        }),
    ];
    for (name, open) in layouts {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let store = open(dir.path());
                    let started = Instant::now();
                    for r in store.put_many(&batch) {
                        r.expect("put");
                    }
                    store.sync().expect("sync");
                    store.committed();
                    spent += started.elapsed();
                }
                spent
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
