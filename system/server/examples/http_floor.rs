//! The HTTP stack's floor for benchmarks: the same axum/hyper/tokio setup as the tower's
//! device listener (multi-threaded runtime, `axum::serve`), answering `GET /{name}` with
//! the bytes of a file from a directory loaded at start-up, and nothing else — no node,
//! no verification, no metrics. `scripts/bench-tower-vs-nginx.sh` runs it beside the
//! tower and nginx so a gap can be split into "the stack" and "the tower's own work".
//!
//!     http_floor ADDR DIR
//!
//! Not covered: anything a real server needs (ranges, ETags, errors beyond 404).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::BTreeMap;
use std::sync::Arc;

type Files = Arc<BTreeMap<String, Bytes>>;

async fn file(State(files): State<Files>, Path(name): Path<String>) -> Response {
    match files.get(&name) {
        Some(b) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            b.clone(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(dir)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: http_floor ADDR DIR");
    };
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            files.insert(name, Bytes::from(std::fs::read(entry.path())?));
        }
    }
    let app = Router::new()
        .route("/{name}", get(file))
        .with_state(Arc::new(files));
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            axum::serve(listener, app).await?;
            Ok(())
        })
}
