//! A tower sends an item over `STREAMED_ABOVE_BYTES` (8 MiB) as it reads it, chunk by
//! chunk, after judging every chunk: the bytes, ranges and revalidation are those of an
//! item sent whole, a rotten chunk found by the judging is answered 503 before any byte,
//! and a chunk that rots after the judging cuts the body short of its `Content-Length` —
//! what was sent before the cut is the item's true prefix, and the chunk is reported, so
//! the item is served whole again once fetched.
//!
//! Run: `cargo test -p sovereign-server --test streamed_read`.

mod support;

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use http_body_util::BodyExt;
use support::{CHAOS, Servers, req, send};
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_item_is_streamed_with_ranges_and_rot_never_passes_for_the_item() {
    let s = Servers::start(None).await;
    let item = sovereign_store::fixtures::noise(9 * 1024 * 1024 + 5);
    let small = sovereign_store::fixtures::noise(300_000);
    s.publish("big", &item).await;
    s.publish("small", &small).await;
    assert!(
        s.wait_servable("small").await == small,
        "small: wrong bytes"
    );
    assert!(s.wait_servable("big").await == item, "big: wrong bytes");

    // Streamed: no exact body size known up front (the item is not held whole), yet the
    // answer states its length. The small item is sent from one buffer.
    let head = |id: &str, range: Option<&str>| {
        let mut r = req(Method::GET, &format!("/v1/items/{id}"));
        if let Some(range) = range {
            r = r.header("range", range);
        }
        let request = r.build().expect("request");
        let router = s.tower.clone();
        async move { router.oneshot(request).await.expect("answer") }
    };
    let big = head("big", None).await;
    assert_eq!(big.status(), StatusCode::OK);
    assert_eq!(
        big.headers()[header::CONTENT_LENGTH],
        item.len().to_string()
    );
    assert_eq!(hyper::body::Body::size_hint(big.body()).exact(), None);
    let etag = big.headers()[header::ETAG].clone();
    let small_answer = head("small", None).await;
    assert_eq!(
        hyper::body::Body::size_hint(small_answer.body()).exact(),
        Some(small.len() as u64)
    );

    // Ranges: across chunk boundaries, a suffix, the last byte.
    for (range, from, to) in [
        ("bytes=1000000-5000000", 1_000_000, 5_000_001),
        ("bytes=-10", item.len() - 10, item.len()),
        (
            &format!("bytes={}-", item.len() - 1),
            item.len() - 1,
            item.len(),
        ),
        ("bytes=0-0", 0, 1),
    ] {
        let a = head("big", Some(range)).await;
        assert_eq!(a.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            a.headers()[header::CONTENT_RANGE],
            format!("bytes {}-{}/{}", from, to - 1, item.len()),
            "{range}"
        );
        let body = a.into_body().collect().await.expect("body").to_bytes();
        assert!(body[..] == item[from..to], "{range}: wrong bytes");
    }
    // Revalidation: the client holds this version.
    let a = send(
        &s.tower,
        req(Method::GET, "/v1/items/big").header("if-none-match", etag.as_bytes()),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_MODIFIED);
    assert!(a.body.is_empty());
    // The client's copy is current: 304 even with a range past the end (RFC 9110 takes
    // If-None-Match first); without it, that range is 416.
    let past = format!("bytes={}-", item.len() + 10);
    let a = send(
        &s.tower,
        req(Method::GET, "/v1/items/big")
            .header("if-none-match", etag.as_bytes())
            .header("range", &past),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_MODIFIED, "{a}");
    let a = send(
        &s.tower,
        req(Method::GET, "/v1/items/big").header("range", &past),
    )
    .await;
    assert_eq!(a.status, StatusCode::RANGE_NOT_SATISFIABLE, "{a}");

    // Rot after the judging: the answer (200) is out, then every stored chunk rots. The
    // chunks the body reads from the store now fail, and the body ends in an error
    // before its length, having sent only true bytes.
    let a = head("big", None).await;
    assert_eq!(a.status(), StatusCode::OK);
    faults(&s, true).await;
    let (sent, cut) = drain(a.into_body()).await;
    assert!(cut, "the body ran to its end over rotten chunks");
    assert!(sent.len() < item.len(), "{} bytes", sent.len());
    assert!(
        sent[..] == item[..sent.len()],
        "bytes that are not the item's were sent"
    );

    // Reported: the tower fetches what rotted and serves the item whole again.
    faults(&s, false).await;
    assert!(
        s.wait_servable("big").await == item,
        "big: wrong bytes after the repair"
    );

    // A range judges the chunks it covers before any byte: with every stored chunk rotten,
    // the first byte (its chunk long out of the 8 MiB cache) is 503, not a 206 cut short.
    // A HEAD before it reads nothing and answers the item's length.
    faults(&s, true).await;
    let a = send(&s.tower, req(Method::HEAD, "/v1/items/big")).await;
    assert_eq!(a.status, StatusCode::OK, "{a}");
    assert_eq!(a.header(header::CONTENT_LENGTH), item.len().to_string());
    assert!(a.body.is_empty());
    let a = send(
        &s.tower,
        req(Method::GET, "/v1/items/big").header("range", "bytes=0-0"),
    )
    .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{a}");
    faults(&s, false).await;
    assert!(s.wait_servable("big").await == item, "big: not repaired");
}

/// Rot every chunk the tower's store holds (`true`), or clear the faults.
async fn faults(s: &Servers, rot: bool) {
    let r = if rot {
        req(Method::POST, "/admin/faults").json(r#"{"kind": "corrupt", "count": 5000}"#)
    } else {
        req(Method::DELETE, "/admin/faults")
    };
    let a = send(&s.tower_admin, r.bearer(CHAOS)).await;
    assert!(a.status.is_success(), "{a}");
}

/// The bytes of `body` up to its end or its first error, and whether it ended in one.
async fn drain(mut body: Body) -> (Vec<u8>, bool) {
    let mut sent = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => sent.extend_from_slice(f.data_ref().map_or(&[][..], |d| &d[..])),
            Err(_) => return (sent, true),
        }
    }
    (sent, false)
}
