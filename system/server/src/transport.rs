//! Outgoing HTTP: how a tower talks to the origin over an uplink, and how the device
//! client talks to a tower.
//!
//! [`Transport`] is the seam: the real servers use [`HyperTransport`] over the OS's TCP
//! ([`HyperTransport::tcp_tls`]: `http://` and `https://`; [`HyperTransport::tcp`]:
//! `http://` only); the turmoil tests build the same client over turmoil's
//! simulated TCP by handing [`HyperTransport::with_connector`] their own connector. Every
//! request has a deadline and a bound on the response body.
//!
//! Map: [`Request`], [`Response`], [`TransportError`], [`Transport`], [`HyperTransport`].
//!
//! Connections per host are bounded ([`Capped`], [`CONNECTIONS_PER_HOST_MAX`], idle ones
//! [`IDLE_PER_HOST_MAX`]): a server's per-client connection limit is never the reason a
//! request fails.
//!
//! Not covered: client certificates (mutual TLS), HTTP/2, connection-level metrics.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::TokioExecutor;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Idle keep-alive connections kept per host: as many as a tower's exchanges with its
/// origin ([`crate::tower_node::ORIGIN_EXCHANGES_MAX`]), so a syncing tower reuses its
/// connections instead of closing and reopening them (a server counts a closed
/// connection until it notices, so churn looks like more connections to it).
pub const IDLE_PER_HOST_MAX: usize = 32;

/// Connections open to one host at once, idle ones included: a request past it waits
/// (within its deadline) for one to free. Servers limit connections per client — the
/// origin closes those past 64 from one address with a 429 — and a tower keeps at most
/// [`crate::tower_node::ORIGIN_EXCHANGES_MAX`] (32) exchanges per uplink, so it never
/// waits here in normal operation.
pub const CONNECTIONS_PER_HOST_MAX: usize = 40;

/// The longest a new connection waits for its host's permit ([`Capped`]).
const PERMIT_WAIT_MAX: Duration = Duration::from_secs(30);

/// Largest response body accepted: the protocol's answer limit
/// ([`sovereign_logic::protocol::ANSWER_BYTES_MAX`]), which the origin's catalog pages are
/// cut to fit (a chunk is far smaller).
pub const RESPONSE_BYTES_MAX: usize = sovereign_logic::protocol::ANSWER_BYTES_MAX as usize;

/// One outgoing request.
#[derive(Clone, Debug)]
pub struct Request {
    /// GET, POST, …
    pub method: Method,
    /// Absolute URL (`http://host:port/path?query`).
    pub url: String,
    /// Extra headers.
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
    /// Body (empty for GET).
    pub body: Bytes,
    /// Deadline for the whole exchange, body included.
    pub timeout: Duration,
}

impl Request {
    /// A GET of `url`.
    pub fn get(url: impl Into<String>, timeout: Duration) -> Self {
        Request {
            method: Method::GET,
            url: url.into(),
            headers: Vec::new(),
            body: Bytes::new(),
            timeout,
        }
    }

    /// A POST of a JSON body to `url`.
    pub fn post_json(url: impl Into<String>, body: Vec<u8>, timeout: Duration) -> Self {
        Request {
            method: Method::POST,
            url: url.into(),
            headers: vec![(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body: Bytes::from(body),
            timeout,
        }
    }

    /// Add a header.
    pub fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// A complete response.
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

/// Why an exchange produced no response.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The URL could not be parsed.
    #[error("bad URL {url:?}: {reason}")]
    Url {
        /// the URL
        url: String,
        /// why
        reason: String,
    },
    /// Connecting or exchanging failed.
    #[error("{url}: {reason}")]
    Failed {
        /// the URL
        url: String,
        /// why
        reason: String,
    },
    /// The deadline passed.
    #[error("{url}: no answer within {timeout:?}")]
    Timeout {
        /// the URL
        url: String,
        /// the deadline
        timeout: Duration,
    },
}

/// A boxed future, as [`Transport::send`] returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Sends requests. Cheap to share (`Arc<dyn Transport>`).
pub trait Transport: Send + Sync + 'static {
    /// Send `req` and wait for the whole response or the deadline.
    fn send(&self, req: Request) -> BoxFuture<Result<Response, TransportError>>;
}

/// A hyper client (HTTP/1.1, pooled connections, at most [`CONNECTIONS_PER_HOST_MAX`]
/// per host) over any connector.
pub struct HyperTransport<C> {
    client: Client<Capped<C>, Full<Bytes>>,
}

/// A connector that keeps at most `max` connections per host (scheme and authority) open
/// at once: each connection holds a permit of its host's semaphore until it closes.
#[derive(Clone)]
pub struct Capped<C> {
    inner: C,
    max: usize,
    hosts: std::sync::Arc<std::sync::Mutex<BTreeMap<String, std::sync::Arc<Semaphore>>>>,
}

impl<C> Capped<C> {
    /// `inner`, at most `max` (>= 1) connections per host.
    pub fn new(inner: C, max: usize) -> Self {
        Capped {
            inner,
            max: max.max(1),
            hosts: Default::default(),
        }
    }

    fn host(&self, uri: &hyper::Uri) -> std::sync::Arc<Semaphore> {
        let key = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or(""),
            uri.authority().map_or("", |a| a.as_str())
        );
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        (hosts.entry(key))
            .or_insert_with(|| std::sync::Arc::new(Semaphore::new(self.max)))
            .clone()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<C> tower_service::Service<hyper::Uri> for Capped<C>
where
    C: tower_service::Service<hyper::Uri> + Clone + Send + 'static,
    C::Future: Send,
    C::Response: Send,
    C::Error: Into<BoxError>,
{
    type Response = Held<C::Response>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Held<C::Response>, BoxError>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        let host = self.host(&uri);
        // The instance `poll_ready` readied makes the call; a clone stays for the next.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        Box::pin(async move {
            // Bounded: hyper finishes a connect its request no longer needs in the
            // background, with no deadline of its own.
            let permit = tokio::time::timeout(PERMIT_WAIT_MAX, host.acquire_owned())
                .await
                .map_err(|_| "no connection to this host freed up in time")??;
            let io = inner.call(uri).await.map_err(Into::into)?;
            Ok(Held {
                io,
                _permit: permit,
            })
        })
    }
}

/// A connection that holds its host's permit (see [`Capped`]) until it is dropped.
pub struct Held<T> {
    io: T,
    _permit: OwnedSemaphorePermit,
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for Held<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for Held<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

impl<T: Connection> Connection for Held<T> {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        self.io.connected()
    }
}

impl HyperTransport<HttpConnector> {
    /// Over the OS's TCP.
    pub fn tcp() -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        Self::with_connector(http)
    }
}

impl HyperTransport<hyper_rustls::HttpsConnector<HttpConnector>> {
    /// Over the OS's TCP, for `http://` and `https://` URLs; the servers of the latter are
    /// checked against `tls`'s roots ([`crate::tls::client_config`]).
    pub fn tcp_tls(tls: std::sync::Arc<rustls::ClientConfig>) -> Self {
        Self::with_connector(https_connector(&tls))
    }
}

/// The OS's TCP for `http://` and `https://` URLs, the latter checked against `tls`'s roots.
fn https_connector(tls: &rustls::ClientConfig) -> hyper_rustls::HttpsConnector<HttpConnector> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    http.enforce_http(false);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

/// A body that is read as it is sent, in pieces (chunked transfer encoding).
pub type StreamedBody = http_body_util::StreamBody<
    Pin<
        Box<
            dyn futures_util::Stream<Item = Result<hyper::body::Frame<Bytes>, std::io::Error>>
                + Send,
        >,
    >,
>;

/// Send `req` with `body` in place of `req.body`, over the OS's TCP (`tls` for https://),
/// on a connection of its own: for a body too large to hold whole (`sovereign origin
/// publish` of a file). An error of `body` fails the request, naming it.
pub async fn send_streamed(
    tls: &rustls::ClientConfig,
    req: Request,
    body: StreamedBody,
) -> Result<Response, TransportError> {
    let client: Client<_, StreamedBody> =
        Client::builder(TokioExecutor::new()).build(https_connector(tls));
    exchange(&client, req, body).await
}

/// One exchange over `client`: `req`'s method, URL and headers with `body`, the answer's
/// body read up to [`RESPONSE_BYTES_MAX`], the whole within `req.timeout`.
async fn exchange<C, B>(
    client: &Client<C, B>,
    req: Request,
    body: B,
) -> Result<Response, TransportError>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let url = req.url.clone();
    let uri: hyper::Uri =
        req.url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| TransportError::Url {
                url: url.clone(),
                reason: e.to_string(),
            })?;
    let mut builder = hyper::Request::builder().method(req.method).uri(uri);
    for (name, value) in req.headers {
        builder = builder.header(name, value);
    }
    let request = builder.body(body).map_err(|e| TransportError::Url {
        url: url.clone(),
        reason: e.to_string(),
    })?;
    let timeout = req.timeout;
    let exchange = async {
        let resp = client
            .request(request)
            .await
            .map_err(|e| TransportError::Failed {
                url: url.clone(),
                reason: error_chain(&e),
            })?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, RESPONSE_BYTES_MAX)
            .collect()
            .await
            .map_err(|e| TransportError::Failed {
                url: url.clone(),
                reason: format!("reading the body: {e}"),
            })?
            .to_bytes();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(TransportError::Timeout { url, timeout }),
    }
}

impl<C> HyperTransport<C>
where
    C: tower_service::Service<hyper::Uri> + Clone + Send + Sync + 'static,
    C::Future: Send,
    C::Error: Into<BoxError>,
    C::Response: hyper::rt::Read + hyper::rt::Write + Connection + Unpin + Send + 'static,
{
    /// Over `connector` (turmoil's TCP in the tests).
    pub fn with_connector(connector: C) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(IDLE_PER_HOST_MAX)
            .build(Capped::new(connector, CONNECTIONS_PER_HOST_MAX));
        HyperTransport { client }
    }
}

impl<C> Transport for HyperTransport<C>
where
    C: tower_service::Service<hyper::Uri> + Clone + Send + Sync + 'static,
    C::Future: Send,
    C::Error: Into<BoxError>,
    C::Response: hyper::rt::Read + hyper::rt::Write + Connection + Unpin + Send + 'static,
{
    fn send(&self, req: Request) -> BoxFuture<Result<Response, TransportError>> {
        let client = self.client.clone();
        Box::pin(async move {
            let body = Full::new(req.body.clone());
            exchange(&client, req, body).await
        })
    }
}

/// An error and its sources, joined (hyper's top-level message alone says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}
