//! The servers' accept loop: HTTP/1.1 over TCP, or over TLS, with limits on what a client
//! can hold.
//!
//! [`serve`] accepts on one listener and serves a router on each connection with hyper's
//! HTTP/1 connection builder, under these limits ([`Limits`], flags in `serve`):
//!
//! - **connections**: at most `connections_max` open on the listener and
//!   `connections_per_client_max` from one client address. A connection beyond either is
//!   closed at once, on a plain listener after a best-effort JSON answer (503 for the
//!   listener, 429 for the address) written without waiting. The accept loop never
//!   waits on a client, so a flood from one address costs others only an accept and a
//!   close per connection.
//! - **request heads**: the whole head (request line and headers) must arrive within
//!   `header_timeout` of the connection becoming ready for it — also on an idle
//!   keep-alive connection, and the TLS handshake of a new connection gets the same —
//!   else the connection is closed; at most [`HEAD_BYTES_MAX`] bytes and
//!   [`HEADERS_MAX`] headers (431), a request target of at most [`URI_BYTES_MAX`] bytes
//!   (414).
//! - **request bodies**: the whole body must arrive within `body_timeout` of its head,
//!   plus a second for each MiB it has brought ([`BODY_RATE_MIN`]: a large publish that
//!   keeps coming at 1 MiB/s or more is not cut, a trickle still is); after that, reading
//!   it fails with [`BodyTimeout`] (the API answers 408) and the connection is closed. A body the handler never reads (a `Content-Length` that lies
//!   on a GET) is dropped with the request, which closes the connection after the answer.
//!
//! Every error answer is the JSON `{"error": …}` body the APIs document, including the
//! ones hyper writes itself for a head it cannot parse or that is too large (400, 431):
//! [`JsonErrors`] replaces those on their way out.
//!
//! Each request carries the client's address (`axum::extract::ConnectInfo<SocketAddr>`)
//! and the listener's [`RateLimits`] as extensions, for the rate-limit middleware of the
//! public APIs (`api::common`). TCP_NODELAY is set on every connection. Shutdown is
//! graceful: the listener closes, idle connections close, requests in progress finish —
//! for at most [`SHUTDOWN_GRACE`], after which what is still open (an event stream, a
//! client that does not read) is abandoned, so that a stop never waits on a client.
//!
//! [`raise_nofile_limit`] raises the process's open-file limit to its hard limit.
//!
//! Map: [`Limits`], [`RateLimits`], [`serve`], [`BodyTimeout`], [`JsonErrors`],
//! [`raise_nofile_limit`], [`HEAD_BYTES_MAX`], [`HEADERS_MAX`], [`URI_BYTES_MAX`].
//!
//! Not covered: HTTP/2; rate limits themselves (`limit`); which routes exist (`api`).

use crate::limit::KeyedLimiter;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::http::{Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tower_service::Service;

/// Largest request head (request line and headers), bytes; beyond it: 431.
pub const HEAD_BYTES_MAX: usize = 64 * 1024;
/// Most headers in a request; beyond it: 431.
pub const HEADERS_MAX: usize = 100;
/// Longest request target (path and query), bytes; beyond it: 414.
pub const URI_BYTES_MAX: usize = 8 * 1024;
/// hyper's read buffer: a head of [`HEAD_BYTES_MAX`] fits with room to spare; bounds the
/// memory a slow client's half-sent head can hold.
const READ_BUF_BYTES_MAX: usize = 2 * HEAD_BYTES_MAX;
/// Most warnings about refused connections or accept errors per listener, per this
/// period (each says how many it stands for).
const WARN_EVERY: Duration = Duration::from_secs(10);

const _: () = assert!(URI_BYTES_MAX < HEAD_BYTES_MAX);
const _: () = assert!(READ_BUF_BYTES_MAX >= HEAD_BYTES_MAX);

/// What one listener allows a client.
#[derive(Clone, Debug)]
pub struct Limits {
    /// A request head must arrive within this (and a TLS handshake).
    pub header_timeout: Duration,
    /// A request body must arrive within this of its head, plus a second for each MiB
    /// it has brought ([`BODY_RATE_MIN`]).
    pub body_timeout: Duration,
    /// Most connections open on the listener.
    pub connections_max: usize,
    /// Most connections open from one client address.
    pub connections_per_client_max: usize,
    /// Rate limits per client address (`None`: none).
    pub rates: Option<Arc<RateLimits>>,
    /// Headers every refusal answer carries too (the origin's `x-sovereign-origin`: a
    /// tower refused for its connections must still learn who refused it, not take the
    /// answer for another server's).
    pub refusal_headers: Vec<(String, String)>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            connections_max: 1024,
            connections_per_client_max: 64,
            rates: None,
            refusal_headers: Vec::new(),
        }
    }
}

/// The rate limits of one listener's requests, per client address: reads (GET, HEAD) and
/// operations (`POST /v1/ops`). Applied by the public APIs' middleware (`api::common`).
#[derive(Debug, Default)]
pub struct RateLimits {
    /// Reads per client address.
    pub reads: Option<KeyedLimiter>,
    /// `POST /v1/ops` per client address.
    pub ops: Option<KeyedLimiter>,
    /// `POST /v1/ops` per device identity (the one its `Authorization: Device` proves):
    /// one device cannot flood a tower's outbox from many addresses, nor starve the
    /// other devices behind one address.
    pub device_ops: Option<KeyedLimiter>,
}

/// Reading a request body took longer than the listener's body timeout.
#[derive(Debug, thiserror::Error)]
#[error(
    "the request body did not arrive within {0:?} of its head (and a second per MiB it brought)"
)]
pub struct BodyTimeout(pub Duration);

/// Open connections, in all and per client address.
#[derive(Default)]
struct Table {
    total: usize,
    per_client: BTreeMap<IpAddr, usize>,
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    Listener,
    Client,
}

/// A connection's place in the table; released on drop. Also keeps the listener's
/// "connections still open" channel open until the connection ends.
struct Admitted {
    table: Arc<Mutex<Table>>,
    ip: IpAddr,
    _open: tokio::sync::mpsc::Sender<()>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.total -= 1;
        if let Some(n) = t.per_client.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                t.per_client.remove(&self.ip);
            }
        }
    }
}

fn admit(
    table: &Arc<Mutex<Table>>,
    limits: &Limits,
    ip: IpAddr,
    open: &tokio::sync::mpsc::Sender<()>,
) -> Result<Admitted, Refusal> {
    let mut t = table.lock().unwrap_or_else(|e| e.into_inner());
    if t.total >= limits.connections_max {
        return Err(Refusal::Listener);
    }
    let n = t.per_client.entry(ip).or_insert(0);
    if *n >= limits.connections_per_client_max {
        return Err(Refusal::Client);
    }
    *n += 1;
    t.total += 1;
    Ok(Admitted {
        table: table.clone(),
        ip,
        _open: open.clone(),
    })
}

/// A warning at most once per [`WARN_EVERY`], counting what it stands for.
struct Throttled {
    count: AtomicU64,
    last: Mutex<Option<tokio::time::Instant>>,
}

impl Throttled {
    fn new() -> Self {
        Throttled {
            count: AtomicU64::new(0),
            last: Mutex::new(None),
        }
    }

    /// Count one; `Some(n)` when a warning for `n` is due.
    fn hit(&self) -> Option<u64> {
        self.count.fetch_add(1, Ordering::Relaxed);
        let now = tokio::time::Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|l| now.duration_since(l) < WARN_EVERY) {
            return None;
        }
        *last = Some(now);
        Some(self.count.swap(0, Ordering::Relaxed))
    }
}

/// The JSON answer written (best effort) to a refused plain connection.
fn refusal_answer(r: Refusal, limits: &Limits) -> Vec<u8> {
    let (status, message) = match r {
        Refusal::Listener => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "this listener has {} connections open, its limit; retry later",
                limits.connections_max
            ),
        ),
        Refusal::Client => (
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "your address has {} connections open here, the limit per client; reuse one or close some",
                limits.connections_per_client_max
            ),
        ),
    };
    let mut headers = vec![("retry-after", "1")];
    headers.extend(
        (limits.refusal_headers.iter())
            .filter(|(k, v)| is_header_text(k) && is_header_text(v))
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    raw_json_answer(status, &message, &headers)
}

/// Text that can stand in a raw header line (no line breaks, visible ASCII and spaces).
fn is_header_text(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

/// A whole HTTP/1.1 answer with a JSON `{"error": message}` body, closing the connection.
fn raw_json_answer(status: StatusCode, message: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    for (k, v) in extra {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&body);
    out.into_bytes()
}

/// Serve `router` on `listener` under `limits` until `shutdown` resolves, then close the
/// listener, let open connections finish their requests, and return. With `tls`, every
/// connection is a TLS connection (the handshake within `header_timeout`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let limits = Arc::new(limits);
    let table = Arc::new(Mutex::new(Table::default()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (open_tx, mut open_rx) = tokio::sync::mpsc::channel::<()>(1);
    let refused = Throttled::new();
    let accept_errors = Throttled::new();
    let local = listener.local_addr()?;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors (EMFILE, ENFILE) or memory: back off
                    // briefly instead of spinning; a client's reset: just go on.
                    let transient = matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::Interrupted
                    );
                    if !transient {
                        if let Some(n) = accept_errors.hit() {
                            tracing::warn!(listener = %local, error = %e, errors = n, "accept failed; backing off 50 ms");
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
        };
        let admitted = match admit(&table, &limits, peer.ip(), &open_tx) {
            Ok(a) => a,
            Err(r) => {
                if tls.is_none() {
                    // Best effort, never waiting: the client may not read it.
                    let _ = stream.try_write(&refusal_answer(r, &limits));
                }
                if let Some(n) = refused.hit() {
                    tracing::warn!(
                        listener = %local,
                        client = %peer.ip(),
                        reason = ?r,
                        refused = n,
                        connections_max = limits.connections_max,
                        connections_per_client_max = limits.connections_per_client_max,
                        "connections refused over the limits"
                    );
                }
                drop(stream);
                continue;
            }
        };
        let router = router.clone();
        let limits = limits.clone();
        let tls = tls.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            let _admitted = admitted;
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
            match tls {
                None => serve_connection(stream, peer, router, &limits, stop).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(s)) => serve_connection(s, peer, router, &limits, stop).await,
                        Ok(Err(e)) => {
                            tracing::debug!(client = %peer, error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(client = %peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(open_tx);
    // Every connection task holds a sender: this returns when the last one ends — or
    // after SHUTDOWN_GRACE, when what is left (an event stream never ends by itself; a
    // client that never reads) is abandoned: a stop must not wait on a client.
    if tokio::time::timeout(SHUTDOWN_GRACE, open_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_s = SHUTDOWN_GRACE.as_secs(),
            "connections still open at the end of the shutdown grace period: closed"
        );
    }
    Ok(())
}

/// How long a stopping listener waits for its open connections to finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serve HTTP/1.1 on one accepted connection (plain TCP or TLS).
async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    limits: &Limits,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let in_flight = Arc::new(AtomicUsize::new(0));
    let io = TokioIo::new(JsonErrors::new(io, in_flight.clone()));
    let body_timeout = limits.body_timeout;
    let rates = limits.rates.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let mut router = router.clone();
        let rates = rates.clone();
        let in_flight = in_flight.clone();
        in_flight.fetch_add(1, Ordering::Relaxed);
        async move {
            let (mut parts, body) = req.into_parts();
            let resp = if parts.uri.to_string().len() > URI_BYTES_MAX {
                json_error(
                    StatusCode::URI_TOO_LONG,
                    &format!("the request target is longer than {URI_BYTES_MAX} bytes, the limit"),
                )
            } else {
                parts.extensions.insert(ConnectInfo(peer));
                if let Some(r) = rates {
                    parts.extensions.insert(r);
                }
                let body = Body::new(Deadline::new(body, body_timeout));
                // The router's error type is Infallible.
                match router.call(Request::from_parts(parts, body)).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                }
            };
            Ok::<_, std::convert::Infallible>(resp.map(|b| Counted {
                inner: b,
                in_flight,
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(HEADERS_MAX)
        .max_header_size(HEAD_BYTES_MAX)
        .max_buf_size(READ_BUF_BYTES_MAX)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = async { let _ = stop.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // Timeouts and resets are a client's business; log them for debugging only.
        tracing::debug!(client = %peer, error = %e, "connection ended with an error");
    }
}

/// A JSON error answer from outside the routers.
fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

/// The slowest a request body may come, past its `body_timeout`, in bytes a second: each
/// byte that arrives moves the body's deadline on by 1/`BODY_RATE_MIN` s. The bodies the
/// APIs take besides a publish are at most 8 MiB (8 s more); a publish of the largest item
/// gets as long as it takes at 1 MiB/s, what `sovereign origin publish` allows too.
pub const BODY_RATE_MIN: u64 = 1 << 20;

/// A request body that fails with [`BodyTimeout`] once its deadline passes; the deadline
/// moves on as bytes arrive ([`BODY_RATE_MIN`]).
struct Deadline {
    inner: Incoming,
    timeout: Duration,
    deadline: tokio::time::Instant,
    /// Made on the first poll that has to wait (most bodies are empty or already here).
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Deadline {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        Deadline {
            inner,
            timeout,
            deadline: tokio::time::Instant::now() + timeout,
            sleep: None,
        }
    }
}

impl hyper::body::Body for Deadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if let Some(data) = frame.as_ref().and_then(|f| f.as_ref().ok()?.data_ref()) {
                let more = data.len() as u64 * 1_000_000_000 / BODY_RATE_MIN;
                this.deadline += Duration::from_nanos(more);
                if let Some(sleep) = this.sleep.as_mut() {
                    sleep.as_mut().reset(this.deadline);
                }
            }
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout)))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that counts itself out of the connection's requests in flight when
/// dropped (hyper drops it once written): [`JsonErrors`] only touches answers written
/// while none is.
struct Counted {
    inner: Body,
    in_flight: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl hyper::body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's IO, replacing the bodyless error answers hyper writes on its own (for
/// a request head it cannot parse, 400, or that is too large, 431 — before any router
/// sees the request) with the same status and a JSON `{"error": …}` body.
///
/// An answer is hyper's own when it is written while no request of the connection is in
/// flight (every answer from a router is counted while it is written), starts a write,
/// and is exactly a head of status 400, 414 or 431 whose only headers are the ones hyper
/// adds (`connection`, `content-length: 0`, `date`). hyper closes the connection after
/// it. An answer of hyper's that shares one write with the end of the previous answer (a
/// pipelining client) goes out as hyper wrote it.
pub struct JsonErrors<I> {
    io: I,
    in_flight: Arc<AtomicUsize>,
    /// The replacement still to write, and how much of it is written.
    pending: Option<(Vec<u8>, usize)>,
}

impl<I> JsonErrors<I> {
    /// Wrap `io`; `in_flight` counts the connection's answers being written.
    pub fn new(io: I, in_flight: Arc<AtomicUsize>) -> Self {
        JsonErrors {
            io,
            in_flight,
            pending: None,
        }
    }
}

/// If `buf` is one of hyper's bodyless error answers, its status.
fn hyper_error_head(buf: &[u8]) -> Option<StatusCode> {
    let rest = buf.strip_prefix(b"HTTP/1.1 ")?;
    let code = std::str::from_utf8(rest.get(..3)?).ok()?;
    let status = match code {
        "400" | "414" | "431" => StatusCode::from_bytes(code.as_bytes()).ok()?,
        _ => return None,
    };
    let head = std::str::from_utf8(buf).ok()?.strip_suffix("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    lines.next()?;
    let mut empty_body = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" => empty_body = value.trim() == "0",
            "connection" | "date" => {}
            _ => return None,
        }
    }
    empty_body.then_some(status)
}

/// The JSON answer that replaces hyper's own for `status`.
fn json_replacement(status: StatusCode) -> Vec<u8> {
    let message = match status {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => format!(
            "the request head is too large: at most {HEAD_BYTES_MAX} bytes of request line and headers, and at most {HEADERS_MAX} headers"
        ),
        StatusCode::URI_TOO_LONG => {
            format!("the request target is longer than {URI_BYTES_MAX} bytes, the limit")
        }
        _ => "malformed HTTP/1.1 request: its request line or a header could not be parsed"
            .to_string(),
    };
    raw_json_answer(status, &message, &[])
}

impl<I: AsyncWrite + Unpin> JsonErrors<I> {
    /// Write what is left of the replacement.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, done)) = &mut self.pending {
            if *done == bytes.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &bytes[*done..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *done += n;
        }
        Poll::Ready(Ok(()))
    }

    /// Whether `buf`, starting a write, is one of hyper's own answers to replace.
    fn replace(&mut self, buf: &[u8]) -> bool {
        if self.in_flight.load(Ordering::Relaxed) != 0 {
            return false;
        }
        match hyper_error_head(buf) {
            Some(status) => {
                self.pending = Some((json_replacement(status), 0));
                true
            }
            None => false,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for JsonErrors<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for JsonErrors<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if self.replace(buf) {
            // Taken whole; the replacement goes out now or on the flush.
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        let mut nonempty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(first), None) = (nonempty.next(), nonempty.next()) {
            if self.replace(first) {
                let _ = self.poll_pending(cx)?;
                return Poll::Ready(Ok(first.len()));
            }
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Raise this process's soft limit on open files (RLIMIT_NOFILE) to its hard limit;
/// returns the soft limit in force afterwards (`None`: unlimited, or not known on this
/// platform).
pub fn raise_nofile_limit() -> io::Result<Option<u64>> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let now = getrlimit(Resource::Nofile);
        if now.current != now.maximum {
            setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: now.maximum,
                    maximum: now.maximum,
                },
            )
            .map_err(io::Error::from)?;
        }
        Ok(getrlimit(Resource::Nofile).current)
    }
    #[cfg(not(unix))]
    {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_error_heads_are_recognised_and_nothing_else() {
        // Goal: hyper's own bodyless 400/414/431 heads are replaced; answers with a body,
        // a content type, another status or anything after the head are not.
        let date = "date: Thu, 01 Jan 2026 00:00:00 GMT";
        let head = |status: &str, headers: &str| format!("HTTP/1.1 {status}\r\n{headers}\r\n\r\n");
        let ok = [
            (
                head(
                    "431 Request Header Fields Too Large",
                    &format!("connection: close\r\ncontent-length: 0\r\n{date}"),
                ),
                431,
            ),
            (
                head("400 Bad Request", &format!("content-length: 0\r\n{date}")),
                400,
            ),
            (head("414 URI Too Long", "content-length: 0"), 414),
        ];
        for (h, code) in ok {
            assert_eq!(
                hyper_error_head(h.as_bytes()).map(|s| s.as_u16()),
                Some(code),
                "{h}"
            );
        }
        let not = [
            head(
                "400 Bad Request",
                "content-type: application/json\r\ncontent-length: 0",
            ),
            head("400 Bad Request", "content-length: 12"),
            head("404 Not Found", "content-length: 0"),
            head("200 OK", "content-length: 0"),
            format!("{}{{}}", head("400 Bad Request", "content-length: 0")),
            head(
                "400 Bad Request",
                "content-length: 0\r\nx-sovereign-version: 1",
            ),
            "HTTP/1.1 400".to_string(),
        ];
        for h in not {
            assert_eq!(hyper_error_head(h.as_bytes()), None, "{h}");
        }
    }

    #[test]
    fn replacements_are_json_answers() {
        for status in [
            StatusCode::BAD_REQUEST,
            StatusCode::URI_TOO_LONG,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ] {
            let raw = String::from_utf8(json_replacement(status)).unwrap();
            let (head, body) = raw.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(&format!("HTTP/1.1 {}", status.as_u16())));
            assert!(head.contains(&format!("content-length: {}", body.len())));
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()));
        }
    }
}
