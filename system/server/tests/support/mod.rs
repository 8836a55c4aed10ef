//! In-process servers for the HTTP tests: an origin (memory store) served on a loopback
//! port, a tower whose uplink points at it, their four routers, and helpers to send a
//! request with `tower::ServiceExt::oneshot` and look at the answer.
//!
//! Map: [`Servers`] ([`Servers::start`], [`Servers::publish`], [`Servers::wait_servable`]),
//! [`Answer`], [`send`], [`req`], tokens [`VIEWER`] / [`OPERATOR`] / [`CHAOS`], the test
//! device ([`device_auth`], [`device_key`]), tower credentials [`tower_credential`]
//! (towers 1 to [`TOWERS_CREDENTIALED`] hold one at the origin; the in-process tower is
//! tower 1), [`Req::tower`].
//!
//! Not covered: real stores (the durability tests' job) and real processes (the CLI's
//! kill -9 test).

#![allow(dead_code)] // each test binary uses a different part of this module

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use sovereign_logic::origin::OriginConfig;
use sovereign_logic::protocol::{LinkKind, TowerId};
use sovereign_logic::tower::TowerConfig;
use sovereign_server::audit::AuditLog;
use sovereign_server::auth::Tokens;
use sovereign_server::serve::{origin_parts, tower_parts};
use sovereign_server::tower_auth::TowerCredentials;
use sovereign_server::tower_node::{TowerCredential, TowerNodeConfig};
use sovereign_server::transport::{HyperTransport, Transport};
use sovereign_store::{Faults, FaultyStore, MemDisk, MemStore, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// The test device's secret (see [`device`], [`device_key`], [`device_auth`]).
pub const DEVICE_SECRET: [u8; 32] = [0x5e; 32];

/// The test device's identity.
pub fn device() -> sovereign_logic::protocol::DeviceId {
    sovereign_logic::protocol::DeviceId::from_secret(&DEVICE_SECRET)
}

/// The test device's `n`-th idempotency key.
pub fn device_key(n: u64) -> String {
    sovereign_logic::protocol::IdemKey::for_device(device(), n, 0xabc)
        .0
        .to_string()
}

/// `Authorization: Device <DEVICE_SECRET>`: the test device's proof of identity.
pub fn device_auth() -> String {
    let hex: String = DEVICE_SECRET.iter().map(|b| format!("{b:02x}")).collect();
    format!("Device {hex}")
}

/// Token of the viewer role.
pub const VIEWER: &str = "viewer-token-0123456789";
/// Token of the operator role.
pub const OPERATOR: &str = "operator-token-0123456789";
/// Token of the chaos role.
pub const CHAOS: &str = "chaos-token-0123456789";

/// Towers 1 to this hold a credential at the origin of [`Servers`].
pub const TOWERS_CREDENTIALED: u32 = 3;

/// Tower `n`'s credential at the origin of [`Servers`].
pub fn tower_credential(n: u32) -> String {
    format!("tower-{n}-credential-0123456789abcdef")
}

/// The origin's credential table: towers 1 to [`TOWERS_CREDENTIALED`].
pub fn tower_credentials() -> TowerCredentials {
    let c = TowerCredentials::in_memory();
    for n in 1..=TOWERS_CREDENTIALED {
        c.register(TowerId(n), &tower_credential(n))
            .expect("valid test credential");
    }
    c
}

/// The tokens of all three roles.
pub fn tokens() -> Tokens {
    Tokens::new(
        Some(VIEWER.into()),
        Some(OPERATOR.into()),
        Some(CHAOS.into()),
    )
    .expect("valid tokens")
}

/// An origin and a tower, in this process.
pub struct Servers {
    /// The tower's device API.
    pub tower: Router,
    /// The tower's admin API.
    pub tower_admin: Router,
    /// The origin's tower-facing API.
    pub origin: Router,
    /// The origin's admin API.
    pub origin_admin: Router,
    /// Where the origin's public API listens.
    pub origin_url: String,
    /// Audit logs live here.
    _dir: tempfile::TempDir,
}

fn mem_store(faults: &Faults) -> Arc<dyn Store> {
    Arc::new(FaultyStore::new(
        MemStore::new(MemDisk::new()),
        faults.clone(),
    ))
}

impl Servers {
    /// Start an origin on 127.0.0.1:0 and a tower whose fibre uplink is that origin
    /// (`uplink` overrides it, e.g. an unreachable `http://127.0.0.1:9`).
    pub async fn start(uplink: Option<&str>) -> Servers {
        let dir = tempfile::tempdir().expect("tempdir");
        let faults = Faults::default();
        let origin = origin_parts(
            OriginConfig::default(),
            mem_store(&faults),
            faults,
            tokens(),
            Arc::new(AuditLog::open(dir.path().join("origin-audit.jsonl")).expect("audit")),
            tower_credentials(),
        )
        .expect("origin starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let origin_url = format!("http://{}", listener.local_addr().expect("addr"));
        let public = origin.public.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, public).await;
        });

        let mut tower = TowerConfig::new(TowerId(1), &[LinkKind::Fibre]);
        tower.catalog_interval = Duration::from_millis(300);
        tower.request_timeout = Duration::from_secs(3);
        let config = TowerNodeConfig {
            tower,
            uplinks: BTreeMap::from([(
                LinkKind::Fibre,
                uplink.map_or_else(|| origin_url.clone(), str::to_string),
            )]),
            power: None,
            power_interval: Duration::from_secs(5),
            seed: 7,
            credential: Some(TowerCredential::secret(tower_credential(1))),
        };
        let faults = Faults::default();
        let transport: Arc<dyn Transport> = Arc::new(HyperTransport::tcp());
        let tower = tower_parts(
            config,
            mem_store(&faults),
            faults,
            transport,
            tokens(),
            Arc::new(AuditLog::open(dir.path().join("tower-audit.jsonl")).expect("audit")),
            8 * 1024 * 1024,
        )
        .expect("tower starts");
        Servers {
            tower: tower.public,
            tower_admin: tower.admin,
            origin: origin.public,
            origin_admin: origin.admin,
            origin_url,
            _dir: dir,
        }
    }

    /// Publish `bytes` as `item` at the origin (operator token); panics unless 201.
    pub async fn publish(&self, item: &str, bytes: &[u8]) -> Answer {
        let a = send(
            &self.origin_admin,
            req(
                Method::POST,
                &format!("/admin/publish?item={item}&priority=P1"),
            )
            .bearer(OPERATOR)
            .body(bytes.to_vec()),
        )
        .await;
        assert_eq!(a.status, StatusCode::CREATED, "publish {item}: {a}");
        a
    }

    /// Wait until the tower serves `item` (up to 30 s); its bytes.
    pub async fn wait_servable(&self, item: &str) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let a = send(&self.tower, req(Method::GET, &format!("/v1/items/{item}"))).await;
            if a.status == StatusCode::OK {
                return a.body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{item} not servable at the tower after 30 s: {a}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A request being built.
pub struct Req {
    method: Method,
    uri: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Vec<u8>,
}

/// Start a request. `uri` is sent as given (percent-encode it yourself).
pub fn req(method: Method, uri: &str) -> Req {
    Req {
        method,
        uri: uri.to_string(),
        headers: Vec::new(),
        body: Vec::new(),
    }
}

impl Req {
    /// Add a header (raw bytes: may be non-ASCII).
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.push((
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_bytes(value.as_ref()).expect("header value"),
        ));
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// As tower `n`, with its credential (`x-sovereign-tower` and the bearer token).
    pub fn tower(self, n: u32) -> Self {
        self.header("x-sovereign-tower", n.to_string())
            .bearer(&tower_credential(n))
    }

    /// The body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// A JSON body (`Content-Type: application/json`).
    pub fn json(self, body: &str) -> Self {
        self.header("content-type", "application/json")
            .body(body.as_bytes().to_vec())
    }

    /// The request, or why it cannot be built (a URI axum would never see).
    pub fn build(self) -> Result<Request<Body>, String> {
        let mut b = Request::builder().method(self.method).uri(&self.uri);
        for (k, v) in self.headers {
            b = b.header(k, v);
        }
        b.body(Body::from(self.body))
            .map_err(|e| format!("{}: {e}", self.uri))
    }
}

/// An answer, read whole.
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// A header as text ("" when absent).
    pub fn header(&self, name: impl header::AsHeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(300).collect();
        write!(
            f,
            "{} [{}] {body}",
            self.status,
            self.header(header::CONTENT_TYPE)
        )
    }
}

/// Send `r` to `router` in-process.
pub async fn send(router: &Router, r: Req) -> Answer {
    let request = r.build().expect("a valid request");
    send_request(router, request).await
}

/// Send a built request to `router` in-process.
pub async fn send_request(router: &Router, request: Request<Body>) -> Answer {
    let resp = router
        .clone()
        .oneshot(request)
        .await
        .unwrap_or_else(|e: std::convert::Infallible| match e {});
    let status = resp.status();
    let headers = resp.headers().clone();
    // An event stream (`GET /admin/events`) never ends: its head is the answer.
    if headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
    {
        return Answer {
            status,
            headers,
            body: Vec::new(),
        };
    }
    let body = axum::body::to_bytes(resp.into_body(), 64 * 1024 * 1024)
        .await
        .expect("body")
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

/// Percent-encode every byte that is not RFC 3986 unreserved.
pub fn pct(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
