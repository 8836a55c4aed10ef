//! The listeners' limits, on the real routers served by `listener::serve` on loopback:
//! half-open connections are closed after the header timeout; a flood of connections
//! from one address beyond its limit neither holds them nor stops another address; the
//! listener-wide limit refuses quickly; a lying `Content-Length` is cut at the body
//! timeout (408), a body that keeps coming at 1 MiB/s or more is not, a trickle is; oversized and malformed heads get JSON answers (431, 414, 400); reads
//! and `POST /v1/ops` are rate limited per address (429 + `Retry-After`); TLS round
//! trips on a listener with a certificate, and a client that does not trust its CA is
//! refused; shutdown lets a request in progress finish.
//!
//! Clients here are raw TCP (tokio), so each test sees exactly what goes over the wire;
//! another client address is 127.0.0.2 (all of 127/8 is loopback on Linux).

mod support;

use axum::Router;
use sovereign_server::limit::KeyedLimiter;
use sovereign_server::listener::{Limits, RateLimits};
use sovereign_server::transport::{HyperTransport, Request, Transport};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use support::{Servers, device_auth, device_key};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const ME: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Serve `router` on a loopback port under `limits` (plain or TLS) until the returned
/// sender is dropped or sent to; the address and the server task.
async fn serve(
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(sovereign_server::listener::serve(
        listener,
        router,
        tls,
        limits,
        async move {
            let _ = rx.await;
        },
    ));
    (addr, tx, task)
}

fn limits(header_s: f64, body_s: f64, max: usize, per_client: usize) -> Limits {
    Limits {
        header_timeout: Duration::from_secs_f64(header_s),
        body_timeout: Duration::from_secs_f64(body_s),
        connections_max: max,
        connections_per_client_max: per_client,
        rates: None,
        refusal_headers: vec![("x-sovereign-origin".into(), "refuser".into())],
    }
}

/// Connect to `addr` from `from`.
async fn connect(addr: SocketAddr, from: IpAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(from, 0))?;
    s.connect(addr).await
}

/// Send `raw` from `from` and read until the server closes (or `wait` passes): what came
/// back, and after how long the server closed (`None`: still open).
async fn exchange(
    addr: SocketAddr,
    from: IpAddr,
    raw: &[u8],
    wait: Duration,
) -> (String, Option<Duration>) {
    let mut s = connect(addr, from).await.expect("connect");
    let start = Instant::now();
    s.write_all(raw).await.expect("send");
    let mut out = Vec::new();
    let closed = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 8192];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
    .map(|()| start.elapsed());
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// The status and the JSON `error` of a raw answer (panics if the body is not JSON
/// `{"error": …}`).
fn json_error(raw: &str) -> (u16, String) {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {raw:?}"));
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{raw}"
    );
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {raw}"));
    let e = v["error"].as_str().unwrap_or_default().to_string();
    assert!(!e.is_empty(), "{raw}");
    (status, e)
}

const GET_HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_are_closed_after_the_header_timeout() {
    // Goal: 200 connections that send half a head (and 50 that send nothing) are all
    // closed by the server within the header timeout plus slack, and a keep-alive
    // connection that goes idle after an answer is closed the same way.
    let s = Servers::start(Some("http://127.0.0.1:9")).await;
    let (addr, _stop, _task) = serve(s.tower.clone(), None, limits(1.0, 5.0, 1024, 1024)).await;
    let start = Instant::now();
    let mut conns = Vec::new();
    for i in 0..250 {
        let mut c = connect(addr, ME).await.expect("connect");
        if i < 200 {
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
                .await
                .expect("half a head");
        }
        conns.push(c);
    }
    let mut closed_by = Duration::ZERO;
    for mut c in conns {
        let mut buf = [0u8; 64];
        let r = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf)).await;
        assert!(
            matches!(r, Ok(Ok(0)) | Ok(Err(_))),
            "a half-open connection stayed open or got data: {r:?}"
        );
        closed_by = closed_by.max(start.elapsed());
    }
    assert!(
        closed_by < Duration::from_millis(2500),
        "the last one closed after {closed_by:?}"
    );
    // Keep-alive: an answer, then silence: closed after the timeout too.
    let (raw, closed) = exchange(
        addr,
        ME,
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    let closed = closed.expect("the idle keep-alive connection was closed");
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_secs(3),
        "{closed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_does_not_stop_another() {
    // Goal: with 20 connections per address, 500 idle connections from 127.0.0.1 get
    // 20 admitted and 480 refused at once (429 JSON, closed), while 127.0.0.2's requests
    // are answered, quickly, during the flood.
    let s = Servers::start(Some("http://127.0.0.1:9")).await;
    let (addr, _stop, _task) = serve(s.tower.clone(), None, limits(10.0, 5.0, 1024, 20)).await;
    let mut flood = Vec::new();
    for _ in 0..500 {
        flood.push(connect(addr, ME).await.expect("connect"));
    }
    let mut refused = 0;
    let mut answered = 0;
    let mut open = 0;
    for c in &mut flood {
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(Duration::from_millis(200), c.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                let (status, e) = json_error(&String::from_utf8_lossy(&buf[..n]));
                assert_eq!(status, 429, "{e}");
                assert!(e.contains("20 connections"), "{e}");
                // Who refused is said on the refusal too.
                let head = String::from_utf8_lossy(&buf[..n]);
                assert!(
                    head.contains("\r\nx-sovereign-origin: refuser\r\n"),
                    "{head}"
                );
                answered += 1;
                refused += 1;
            }
            Ok(_) => refused += 1, // closed before the answer could be read
            Err(_) => open += 1,
        }
    }
    assert_eq!((open, refused), (20, 480));
    assert!(answered > 0, "no refusal's answer was read");
    for _ in 0..20 {
        let start = Instant::now();
        let (raw, _) = exchange(addr, OTHER, GET_HEALTHZ, Duration::from_secs(5)).await;
        assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    }
    // The flood's own address gets in again once its connections close.
    drop(flood);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (raw, _) = exchange(addr, ME, GET_HEALTHZ, Duration::from_secs(5)).await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_limit_refuses_quickly_with_503() {
    // Goal: beyond connections_max, a connection (from any address) is answered 503 JSON
    // and closed at once; a slot that frees is usable again.
    let s = Servers::start(Some("http://127.0.0.1:9")).await;
    let (addr, _stop, _task) = serve(s.tower.clone(), None, limits(10.0, 5.0, 10, 10)).await;
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(connect(addr, ME).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (raw, closed) = exchange(addr, OTHER, GET_HEALTHZ, Duration::from_secs(2)).await;
    let (status, e) = json_error(&raw);
    assert_eq!(status, 503, "{e}");
    assert!(closed.is_some_and(|c| c < Duration::from_millis(500)));
    held.pop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (raw, _) = exchange(addr, OTHER, GET_HEALTHZ, Duration::from_secs(2)).await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_content_length_is_cut_at_the_body_timeout() {
    // Goal: POST /v1/ops announcing 1000 bytes and sending 10 is answered 408 (JSON) at
    // the body timeout and the connection is closed; a GET with a lying Content-Length is
    // answered at once and closed (its body is never waited for).
    let s = Servers::start(Some("http://127.0.0.1:9")).await;
    let (addr, _stop, _task) = serve(s.tower.clone(), None, limits(5.0, 1.0, 1024, 64)).await;
    let post = format!(
        "POST /v1/ops HTTP/1.1\r\nHost: t\r\nIdempotency-Key: {}\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"op\":",
        device_key(1),
        device_auth()
    );
    let (raw, closed) = exchange(addr, ME, post.as_bytes(), Duration::from_secs(5)).await;
    let (status, e) = json_error(&raw);
    assert_eq!(status, 408, "{e}");
    assert!(e.contains("did not arrive within 1s"), "{e}");
    let closed = closed.expect("closed");
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_millis(2000),
        "{closed:?}"
    );
    let get = b"GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\nxx";
    let (raw, closed) = exchange(addr, ME, get, Duration::from_secs(5)).await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(
        closed.is_some_and(|c| c < Duration::from_millis(500)),
        "{closed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_keeps_coming_outlives_the_body_timeout_and_a_trickle_does_not() {
    // Goal: with a 1 s body timeout, a 6 MiB publish sent at about 2.5 MiB/s (2.4 s) is
    // taken (201): each MiB that arrives moves the deadline a second on. The same publish
    // sent at about 0.2 MiB/s is cut (408) long before it ends: the deadline moves less
    // than the time passes.
    let s = Servers::start(Some("http://127.0.0.1:9")).await;
    let (addr, _stop, _task) =
        serve(s.origin_admin.clone(), None, limits(5.0, 1.0, 1024, 64)).await;
    let body = sovereign_store::fixtures::noise(6 << 20);
    let send = |item: &'static str, piece: usize, every: Duration| {
        let body = body.clone();
        async move {
            let mut c = connect(addr, ME).await.expect("connect");
            let head = format!(
                "POST /admin/publish?item={item}&priority=P1 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                support::OPERATOR,
                body.len()
            );
            c.write_all(head.as_bytes()).await.expect("head");
            let start = Instant::now();
            for p in body.chunks(piece) {
                if c.write_all(p).await.is_err() {
                    break; // cut: the answer is waiting
                }
                tokio::time::sleep(every).await;
            }
            let mut out = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut out)).await;
            (String::from_utf8_lossy(&out).into_owned(), start.elapsed())
        }
    };
    let (raw, took) = send("steady", 512 << 10, Duration::from_millis(200)).await;
    assert!(raw.starts_with("HTTP/1.1 201"), "{raw}");
    assert!(
        took > Duration::from_secs(2),
        "{took:?}: not past the timeout"
    );
    let (raw, took) = send("trickle", 64 << 10, Duration::from_millis(300)).await;
    let (status, e) = json_error(&raw);
    assert_eq!(status, 408, "{e}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_heads_get_json_errors() {
    // Goal: a head over 64 KiB or with over 100 headers is 431, a target over 8 KiB is
    // 414, a malformed request line is 400 — each with a JSON {"error": …} body — on the
    // tower's and the origin's listeners, plain and admin alike.
    let s = Servers::start(Some("http://127.0.0.1:9")).await;
    let big_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many_headers = format!("GET /healthz HTTP/1.1\r\nHost: t\r\n{many}\r\n");
    let long_target = format!(
        "GET /v1/items/{} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "a".repeat(9000)
    );
    let cases: [(&str, &[u8], u16); 4] = [
        ("70 KB header", big_header.as_bytes(), 431),
        ("150 headers", many_headers.as_bytes(), 431),
        ("9000-byte target", long_target.as_bytes(), 414),
        ("not HTTP", b"GARBAGE\r\n\r\n", 400),
    ];
    for router in [s.tower.clone(), s.origin.clone(), s.tower_admin.clone()] {
        let (addr, _stop, _task) = serve(router, None, limits(5.0, 5.0, 1024, 64)).await;
        for (what, raw, want) in cases {
            let (answer, _) = exchange(addr, ME, raw, Duration::from_secs(5)).await;
            let (status, e) = json_error(&answer);
            assert_eq!(status, want, "{what}: {e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_operations_get_429_after_their_rate() {
    // Goal: a client address gets its burst of reads, then 429 JSON with Retry-After;
    // another address is not affected; POST /v1/ops has its own bucket.
    let s = Servers::start(Some("http://127.0.0.1:9")).await;
    let mut l = limits(5.0, 5.0, 1024, 64);
    l.rates = Some(Arc::new(RateLimits {
        reads: Some(KeyedLimiter::new(0.5, 5, 100)),
        ops: Some(KeyedLimiter::new(0.5, 2, 100)),
        device_ops: None,
    }));
    let (addr, _stop, _task) = serve(s.tower.clone(), None, l).await;
    for i in 0..5 {
        let (raw, _) = exchange(addr, ME, GET_HEALTHZ, Duration::from_secs(5)).await;
        assert!(raw.starts_with("HTTP/1.1 200"), "read {i}: {raw}");
    }
    let (raw, _) = exchange(addr, ME, GET_HEALTHZ, Duration::from_secs(5)).await;
    let (status, e) = json_error(&raw);
    assert_eq!(status, 429, "{e}");
    assert!(
        raw.to_ascii_lowercase().contains("retry-after: 2\r\n"),
        "{raw}"
    );
    let (raw, _) = exchange(addr, OTHER, GET_HEALTHZ, Duration::from_secs(5)).await;
    assert!(raw.starts_with("HTTP/1.1 200"), "another address: {raw}");
    // The operations' bucket is separate from the (empty) reads' bucket: two pass the
    // limiter (the tower has no uplink, but stores them: 202), the third is 429.
    for n in [1, 2] {
        let (raw, _) = exchange(addr, ME, op(n).as_bytes(), Duration::from_secs(10)).await;
        assert!(raw.starts_with("HTTP/1.1 202"), "{n}: {raw}");
    }
    let (raw, _) = exchange(addr, ME, op(3).as_bytes(), Duration::from_secs(5)).await;
    let (status, e) = json_error(&raw);
    assert_eq!(status, 429, "{e}");
    assert!(e.contains("operations"), "{e}");
}

/// `POST /v1/ops` of the test device's `n`-th key, as a raw request.
fn op(n: u64) -> String {
    let body = r#"{"op":{"type":"message","to":"clinic","body":"hi"}}"#;
    format!(
        "POST /v1/ops HTTP/1.1\r\nHost: t\r\nConnection: close\r\nIdempotency-Key: {}\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        device_key(n),
        device_auth(),
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_gets_429_after_its_rate_whatever_address_it_uses() {
    // Goal: operations are limited per device identity too: a device that moves between
    // addresses (or many addresses presenting one identity) gets its burst, then 429;
    // without the per-device limit the second address would start a fresh bucket.
    let s = Servers::start(Some("http://127.0.0.1:9")).await;
    let mut l = limits(5.0, 5.0, 1024, 64);
    l.rates = Some(Arc::new(RateLimits {
        reads: None,
        ops: Some(KeyedLimiter::new(0.5, 100, 100)),
        device_ops: Some(KeyedLimiter::new(0.5, 2, 100)),
    }));
    let (addr, _stop, _task) = serve(s.tower.clone(), None, l).await;
    let (raw, _) = exchange(addr, ME, op(1).as_bytes(), Duration::from_secs(10)).await;
    assert!(raw.starts_with("HTTP/1.1 202"), "{raw}");
    let (raw, _) = exchange(addr, OTHER, op(2).as_bytes(), Duration::from_secs(10)).await;
    assert!(raw.starts_with("HTTP/1.1 202"), "{raw}");
    let (raw, _) = exchange(addr, OTHER, op(3).as_bytes(), Duration::from_secs(5)).await;
    let (status, e) = json_error(&raw);
    assert_eq!(status, 429, "{e}");
    assert!(e.contains("from your device"), "{e}");
    assert!(raw.to_ascii_lowercase().contains("retry-after: "), "{raw}");
}

/// A CA and a server certificate for 127.0.0.1 and localhost it signed: (CA PEM,
/// server chain PEM, server key PEM).
fn certificates() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "sovereign test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA cert");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().expect("server key");
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("server params");
    let cert = params.signed_by(&key, &issuer).expect("server cert");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_round_trips_and_an_untrusted_client_is_refused() {
    // Goal: a listener with a certificate answers https:// requests from a client that
    // trusts its CA (the uplink/device/publish transport), refuses one that does not
    // (system roots only), and a plain-HTTP client gets nothing.
    let s = Servers::start(Some("http://127.0.0.1:9")).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, chain, key) = certificates();
    for (name, pem) in [("ca.pem", &ca), ("cert.pem", &chain), ("key.pem", &key)] {
        std::fs::write(dir.path().join(name), pem).expect("write pem");
    }
    let acceptor = sovereign_server::tls::acceptor(&sovereign_server::tls::TlsFiles {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
        cert_flag: "--tls-cert",
        key_flag: "--tls-key",
    })
    .expect("acceptor");
    let (addr, _stop, _task) =
        serve(s.origin.clone(), Some(acceptor), limits(2.0, 5.0, 1024, 64)).await;
    let url = format!("https://{addr}/healthz");

    let trusted =
        sovereign_server::tls::client_config(Some(&dir.path().join("ca.pem")), "--origin-ca", true)
            .expect("client config");
    let t = HyperTransport::tcp_tls(trusted);
    let r = t
        .send(Request::get(url.clone(), Duration::from_secs(5)))
        .await
        .expect("a TLS round trip");
    assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"ok\n"[..]));

    let untrusted =
        sovereign_server::tls::client_config(None, "--origin-ca", true).expect("system roots");
    let e = HyperTransport::tcp_tls(untrusted)
        .send(Request::get(url.clone(), Duration::from_secs(5)))
        .await
        .expect_err("a client without the CA must be refused");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");

    // Plain HTTP to a TLS listener: no HTTP answer (the handshake fails).
    let (raw, closed) = exchange(addr, ME, GET_HEALTHZ, Duration::from_secs(5)).await;
    assert!(!raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(closed.is_some());

    // A certificate that is not PEM is an error naming the file and the flag.
    std::fs::write(dir.path().join("bad.pem"), "not a certificate").unwrap();
    let e = sovereign_server::tls::acceptor(&sovereign_server::tls::TlsFiles {
        cert: dir.path().join("bad.pem"),
        key: dir.path().join("key.pem"),
        cert_flag: "--tls-cert",
        key_flag: "--tls-key",
    })
    .err()
    .expect("refused");
    assert!(
        e.to_string()
            .contains("bad.pem: --tls-cert: no certificate"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_request_in_progress_finish() {
    // Goal: after shutdown starts, new connections are not accepted, a request already
    // sending its body is still answered, and `serve` then returns.
    let s = Servers::start(Some("http://127.0.0.1:9")).await;
    let (addr, stop, task) = serve(s.tower.clone(), None, limits(5.0, 5.0, 1024, 64)).await;
    let body = r#"{"op":{"type":"message","to":"clinic","body":"hi"}}"#;
    let head = format!(
        "POST /v1/ops HTTP/1.1\r\nHost: t\r\nIdempotency-Key: {}\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        device_key(9),
        device_auth(),
        body.len()
    );
    let mut c = connect(addr, ME).await.expect("connect");
    c.write_all(head.as_bytes()).await.expect("head");
    c.write_all(&body.as_bytes()[..10]).await.expect("part");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).expect("stop");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(connect(addr, OTHER).await.is_err(), "still accepting");
    c.write_all(&body.as_bytes()[10..]).await.expect("rest");
    let mut out = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut out))
        .await
        .expect("answered")
        .expect("read");
    let raw = String::from_utf8_lossy(&out[..n]);
    assert!(raw.starts_with("HTTP/1.1 202"), "{raw}");
    drop(c);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("serve returned")
        .expect("joined")
        .expect("ok");
}
