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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_whose_clients_went_away_give_their_upload_slots_back() {
    // Goal: UPLOADS_MAX publishes whose bodies stall hold every upload slot, and one more
    // is answered 503 with Retry-After (busy, not a refusal). Once their clients go away
    // (the requests dropped mid-body), their uploads are aborted and a publish goes
    // through. A slot held until the origin restarts would stop all publishing.
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use sovereign_logic::origin::UPLOADS_MAX;
    use tower::ServiceExt;
    let s = Servers::start(None).await;
    let stalled = |i: usize| {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
        let pieces = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|piece| (piece, rx))
        });
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("/admin/publish?item=stalled-{i}&priority=P1"))
            .header("authorization", format!("Bearer {}", support::OPERATOR))
            .body(Body::from_stream(pieces))
            .expect("request");
        let router = s.origin_admin.clone();
        let task = tokio::spawn(async move { router.oneshot(request).await });
        (tx, task)
    };
    let mut held = Vec::new();
    for i in 0..UPLOADS_MAX {
        let (tx, task) = stalled(i);
        // The channel holds one piece: the second is taken only once the handler reads
        // the body, which it does only after its upload began.
        for _ in 0..2 {
            let piece = bytes::Bytes::from(vec![1u8; 1000]);
            tx.send(Ok(piece)).await.expect("a piece");
        }
        held.push((tx, task));
    }
    let a = support::send(
        &s.origin_admin,
        support::req(Method::POST, "/admin/publish?item=one-more&priority=P1")
            .bearer(support::OPERATOR)
            .body(b"x".to_vec()),
    )
    .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{a}");
    assert!(!a.header("retry-after").is_empty(), "{a}");
    // Their clients go away: the requests are dropped mid-body.
    for (tx, task) in held {
        task.abort();
        let _ = task.await;
        drop(tx);
    }
    let a = support::send(
        &s.origin_admin,
        support::req(Method::POST, "/admin/publish?item=after&priority=P1")
            .bearer(support::OPERATOR)
            .body(b"after".to_vec()),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{a}");
}
