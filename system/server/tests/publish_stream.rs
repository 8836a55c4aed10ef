//! The admin API's publish takes its body in pieces (`Pieces`, 4 MiB each) and hands them
//! to the origin's logic as they arrive (`Origin::upload_bytes`): the version it publishes
//! is the one a publish of the whole body makes, and a tower serves it whole.
//!
//! Run: `cargo test -p sovereign-server --test publish_stream`.

mod support;

use sovereign_logic::content::{ChunkParams, ItemId, Priority, publish};
use support::Servers;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_several_pieces_publishes_what_the_whole_would_and_a_tower_serves_it() {
    // Goal: 9 MiB + 5 bytes (three pieces, the last short) give the manifest the logic's
    // whole-content publish gives (every chunk, the size, the digest), and the tower
    // serves exactly those bytes.
    let s = Servers::start(None).await;
    let body = sovereign_store::fixtures::noise(9 * 1024 * 1024 + 5);
    let a = s.publish("big", &body).await;
    let got = a.json().expect("a catalog entry");
    let (want, _) = publish(
        ItemId::new("big"),
        1,
        Priority::P1,
        &body,
        ChunkParams::default(),
    )
    .unwrap();
    let manifest = &got["manifest"];
    assert_eq!(manifest["size"], want.size);
    assert_eq!(manifest["sha256"], want.digest.to_hex());
    let chunks: Vec<(String, u64)> = (manifest["chunks"].as_array().unwrap().iter())
        .map(|c| {
            (
                c["sha256"].as_str().unwrap().to_string(),
                c["len"].as_u64().unwrap(),
            )
        })
        .collect();
    let want_chunks: Vec<(String, u64)> = (want.chunks.iter())
        .map(|c| (c.hash.to_hex(), u64::from(c.len)))
        .collect();
    assert_eq!(chunks, want_chunks);
    assert_eq!(s.wait_servable("big").await, body);
}
