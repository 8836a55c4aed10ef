//! Test fixtures: an in-process proxy server on its own tokio runtime, upstream servers
//! (echo, a fixed-size source), and a raw HTTP/1.1 client for requests no Toxiproxy
//! client library sends (malformed bodies, the `loss` and `noop` toxics).
//!
//! Not here: assertions (each test file states its own goal).
#![allow(dead_code)]

use serde_json::Value;
use sovereign_proxy::{Config, Running};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

/// A proxy server and the runtime it runs on (drop to stop it).
pub struct Fixture {
    pub rt: Runtime,
    pub api: SocketAddr,
    pub running: Running,
}

pub fn fixture(config: Config) -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let running = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        sovereign_proxy::spawn(l, config).unwrap()
    });
    Fixture {
        rt,
        api: running.addr,
        running,
    }
}

impl Fixture {
    /// An echo server: every connection gets back what it sends.
    pub fn echo(&self) -> SocketAddr {
        self.rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            tokio::spawn(async move {
                while let Ok((mut s, _)) = l.accept().await {
                    let _ = s.set_nodelay(true);
                    tokio::spawn(async move {
                        let (mut r, mut w) = s.split();
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                    });
                }
            });
            addr
        })
    }

    /// A source: every connection gets `n` bytes (`pattern(i)`), then EOF.
    pub fn source(&self, n: usize) -> SocketAddr {
        self.rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            tokio::spawn(async move {
                while let Ok((mut s, _)) = l.accept().await {
                    tokio::spawn(async move {
                        let data = pattern(n);
                        let _ = s.write_all(&data).await;
                        let _ = s.shutdown().await;
                        // Wait for the peer to close, so the RST of an early close is
                        // not ours.
                        let mut sink = [0u8; 1024];
                        while let Ok(k) = s.read(&mut sink).await {
                            if k == 0 {
                                break;
                            }
                        }
                    });
                }
            });
            addr
        })
    }
}

/// `n` bytes that are not all alike (so reordering would show).
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 ^ (i / 251) as u8).collect()
}

/// A raw HTTP/1.1 request; returns the status and the body as JSON (Null when empty or
/// not JSON).
pub fn http(
    api: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut s = TcpStream::connect(api).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp);
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|b| b.1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// The proxy's listen address as the API reports it.
pub fn listen_of(api: SocketAddr, name: &str) -> SocketAddr {
    let (status, v) = http(api, "GET", &format!("/proxies/{name}"), "", &[]);
    assert_eq!(status, 200, "{v}");
    v["listen"].as_str().unwrap().parse().unwrap()
}

/// Connects to `addr` with a read timeout.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads until EOF (or an error, returned alongside what was read).
pub fn read_all(s: &mut TcpStream) -> (Vec<u8>, Option<std::io::Error>) {
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Some(e)),
        }
    }
}
