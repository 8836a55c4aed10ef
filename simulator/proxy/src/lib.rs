//! `sovereign-proxy`: a TCP fault proxy that speaks Toxiproxy 2.x's HTTP API, so that
//! chaos tools which already drive Toxiproxy (its clients, chaostoolkit-toxiproxy, curl
//! in its README's shapes) put real towers, origins and databases through the network
//! faults the simulator injects.
//!
//! Map: [`api`] is the HTTP API (routes, bearer-token auth, body limit, Toxiproxy-shaped
//! errors); [`state`] holds the proxies and performs every change (audited); [`toxic`]
//! parses and validates toxics; [`pump`] moves bytes through a connection's toxic chain;
//! [`cli`] is `sovereign proxy serve`.
//!
//! Toxics, with Toxiproxy's names, units and defaults (every attribute defaults to 0):
//! `latency` {latency ms, jitter ms}, `bandwidth` {rate KB/s}, `slow_close` {delay ms},
//! `timeout` {timeout ms; data is dropped while it is active, as Toxiproxy does, and the
//! connection closes after `timeout`, never when 0}, `reset_peer` {timeout ms: RST that
//! long after the first data}, `slicer` {average_size, size_variation bytes, delay µs},
//! `limit_data` {bytes}, `noop`; each with `stream` (upstream = client → server, default
//! downstream), `toxicity` (0–1, drawn once per connection) and a default name
//! `<type>_<stream>`. Toxics stack in the order added and reach open connections.
//!
//! Loss (`loss` {loss_rate 0–1, rto ms, default 200}) is ours: above TCP a lost segment
//! is never a hole in the stream, it is a stall while TCP retransmits. So each chunk the
//! proxy reads is "lost" with probability `loss_rate`, and delivered after `rto` ms,
//! doubling per consecutive loss of the same chunk (capped at 120 s); bytes and order are
//! kept, later chunks wait behind it (head-of-line blocking, as in TCP); after 15
//! consecutive losses (Linux's `tcp_retries2`) the connection is reset. What an
//! application sees under a lossy link is exactly this: stalls, then a reset.
//!
//! Corruption (`corrupt` {probability 0–1, window bytes, default 8192}) is ours too: in
//! each window of the stream one bit is flipped with `probability` (a noisy radio whose
//! errors get past the link layer); the length never changes.
//!
//! Randomness (jitter, toxicity, slicer sizes, loss, corruption) comes from ChaCha streams seeded by
//! the proxy's `seed` (a field of the proxy JSON, our extension; default: the server's
//! `--seed` mixed with the proxy's name), the connection's index and its direction: the
//! same seed and the same traffic draw the same numbers.
//!
//! Not implemented: Toxiproxy's own CLI client (`toxiproxy-cli`; any HTTP client or
//! Toxiproxy client library drives this API), TLS on the API, UDP, persistence of the
//! proxies across restarts (`--config` recreates them).

pub mod api;
pub mod cli;
pub mod pump;
pub mod state;
pub mod toxic;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;

/// The version `/version` reports: the Toxiproxy API version this proxy follows, and ours.
pub const VERSION: &str = concat!("2.12.0 (sovereign-proxy ", env!("CARGO_PKG_VERSION"), ")");

/// Bounds on what clients may create and send.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_proxies: usize,
    pub max_toxics: usize,
    /// Open connections per proxy; more are accepted and closed at once (counted).
    pub max_connections: usize,
    /// Largest request body, in bytes.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_proxies: 256,
            max_toxics: 32,
            max_connections: 1024,
            max_body: 64 * 1024,
        }
    }
}

/// A refused request: Toxiproxy's `{"error": "...", "status": N}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, message)
    }
    /// The same error, its message prefixed with where it happened.
    pub fn context(self, at: &str) -> Self {
        ApiError {
            status: self.status,
            message: format!("{at}: {}", self.message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            axum::Json(serde_json::json!({"error": self.message, "status": self.status})),
        )
            .into_response()
    }
}

/// How to run a proxy server.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Seeds the proxies that carry no `seed` of their own.
    pub seed: u64,
    /// When set, every request needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    pub limits: Limits,
}

/// A running proxy server (its API on `addr`); dropping it does not stop it, abort
/// `task` for that.
pub struct Running {
    pub addr: SocketAddr,
    pub registry: Arc<state::Registry>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Serves the API on `listener` in a task (the proxies run in tasks of their own).
pub fn spawn(listener: tokio::net::TcpListener, config: Config) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let registry = Arc::new(state::Registry::new(config.seed, config.limits.clone()));
    let app = api::router(registry.clone(), &config);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "proxy API stopped");
        }
    });
    Ok(Running {
        addr,
        registry,
        task,
    })
}
