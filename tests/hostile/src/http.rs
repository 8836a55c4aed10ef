//! The HTTP APIs under hostile requests: the tower's device API and admin API, the
//! origin's tower-facing API and admin API, as `serve::tower_parts` / `serve::origin_parts`
//! build them (memory stores behind the fault switchboard, all three admin roles, audit
//! logs in a temporary directory), called in-process with `tower::ServiceExt::oneshot`.
//! The tower's uplink is the origin served on a loopback port, and one item
//! ([`ITEM`]) is published and servable before the first request, so reads, ranges and
//! chunk fetches reach real content.
//!
//! An input is up to [`REQUESTS_MAX`] requests written as text, separated by a line
//! `~~~`; each is a request line `<server> <METHOD> <target>` (`server` one of
//! `tower`, `tower-admin`, `origin`, `origin-admin`), header lines `name: value`, an empty
//! line and the body. In targets and header values, `$CHUNK` stands for the hash of the
//! item's first chunk and `$VIEWER`, `$OPERATOR`, `$CHAOS` for the role tokens. A request
//! that `http::Request` cannot represent (a bad method, URI or header) is skipped: hyper
//! refuses it before any router sees it.
//!
//! Every answer must: not be a 5xx other than 503; as an error (4xx/5xx), be JSON with a
//! non-empty `error`; as a 200 of an item or a chunk, carry bytes whose SHA-256 is their
//! `ETag` (and, for a chunk asked for by its hash, that hash); as a 206, carry as many
//! bytes as its `Content-Range` says, equal to the published content there.
//!
//! Faults injected by a request (chaos role) are cleared after each input, so that one
//! input's faults do not answer for the next. `slow-disk` is not injected (the request is
//! skipped): it sleeps up to 60 s per storage call by design, which would only stall
//! the fuzzer.
//!
//! Not covered: hyper's parsing below the router, TLS, and concurrency between requests
//! (they are sent one after another).

use crate::Verdict;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use sha2::{Digest, Sha256};
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
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tower::ServiceExt;

/// The published item every input can read.
pub const ITEM: &str = "fuzz-item";
/// Most requests taken from one input.
pub const REQUESTS_MAX: usize = 4;
/// Token of the viewer role (`$VIEWER`).
pub const VIEWER: &str = "viewer-token-0123456789";
/// Token of the operator role (`$OPERATOR`).
pub const OPERATOR: &str = "operator-token-0123456789";
/// Token of the chaos role (`$CHAOS`).
pub const CHAOS: &str = "chaos-token-0123456789";
/// Tower 1's credential at the origin.
const TOWER_CREDENTIAL: &str = "tower-1-credential-0123456789abcdef";
/// Largest answer body read.
const ANSWER_BYTES_MAX: usize = 64 * 1024 * 1024;

/// An origin and a tower in this process, started once.
struct Servers {
    rt: tokio::runtime::Runtime,
    tower: Router,
    tower_admin: Router,
    origin: Router,
    origin_admin: Router,
    tower_faults: Faults,
    origin_faults: Faults,
    /// The published bytes of [`ITEM`].
    content: Vec<u8>,
    /// The hash of its first chunk, hex.
    chunk: String,
    _dir: tempfile::TempDir,
}

fn tokens() -> Tokens {
    Tokens::new(
        Some(VIEWER.into()),
        Some(OPERATOR.into()),
        Some(CHAOS.into()),
    )
    .expect("valid tokens")
}

fn mem_store(faults: &Faults) -> Arc<dyn Store> {
    Arc::new(FaultyStore::new(
        MemStore::new(MemDisk::new()),
        faults.clone(),
    ))
}

/// Bytes that FastCDC cuts into several chunks.
fn content() -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..300_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

impl Servers {
    fn start() -> Servers {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let (origin_faults, tower_faults) = (Faults::default(), Faults::default());
        let (origin, tower) = rt.block_on(async {
            // Tower 1 holds a credential at the origin: the tower syncs; every other
            // tower call the fuzzer makes is refused (401/403), which must stay a 4xx.
            let credentials = TowerCredentials::in_memory();
            credentials
                .register(TowerId(1), TOWER_CREDENTIAL)
                .expect("a valid credential");
            let origin = origin_parts(
                OriginConfig::default(),
                mem_store(&origin_faults),
                origin_faults.clone(),
                tokens(),
                Arc::new(AuditLog::open(dir.path().join("origin-audit.jsonl")).expect("audit")),
                credentials,
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
            let mut config = TowerConfig::new(TowerId(1), &[LinkKind::Fibre]);
            config.catalog_interval = Duration::from_millis(300);
            config.request_timeout = Duration::from_secs(3);
            let tower = tower_parts(
                TowerNodeConfig {
                    tower: config,
                    uplinks: BTreeMap::from([(LinkKind::Fibre, origin_url)]),
                    power: None,
                    power_interval: Duration::from_secs(5),
                    seed: 7,
                    credential: Some(TowerCredential::secret(TOWER_CREDENTIAL.to_string())),
                },
                mem_store(&tower_faults),
                tower_faults.clone(),
                Arc::new(HyperTransport::tcp()) as Arc<dyn Transport>,
                tokens(),
                Arc::new(AuditLog::open(dir.path().join("tower-audit.jsonl")).expect("audit")),
                8 * 1024 * 1024,
            )
            .expect("tower starts");
            (origin, tower)
        });
        let content = content();
        let s = Servers {
            rt,
            tower: tower.public,
            tower_admin: tower.admin,
            origin: origin.public,
            origin_admin: origin.admin,
            tower_faults,
            origin_faults,
            chunk: String::new(),
            content,
            _dir: dir,
        };
        let chunk = s.rt.block_on(s.publish());
        Servers { chunk, ..s }
    }

    /// Publish [`ITEM`], wait until the tower serves it; the hash of its first chunk.
    async fn publish(&self) -> String {
        let publish = Request::post(format!("/admin/publish?item={ITEM}&priority=P1"))
            .header(header::AUTHORIZATION, format!("Bearer {OPERATOR}"))
            .body(Body::from(self.content.clone()))
            .expect("request");
        let a = send(&self.origin_admin, publish).await;
        assert_eq!(a.status, StatusCode::CREATED, "publish: {a:?}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let get = Request::get(format!("/v1/items/{ITEM}/manifest"))
                .body(Body::empty())
                .expect("request");
            let a = send(&self.tower, get).await;
            if a.status == StatusCode::OK {
                let m: serde_json::Value = serde_json::from_slice(&a.body).expect("manifest");
                let chunk = m["chunks"][0]["sha256"].as_str().expect("a chunk");
                let get = Request::get(format!("/v1/items/{ITEM}"))
                    .body(Body::empty())
                    .expect("request");
                if send(&self.tower, get).await.status == StatusCode::OK {
                    return chunk.to_string();
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{ITEM} not servable at the tower after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn router(&self, server: &[u8]) -> Option<&Router> {
        match server {
            b"tower" => Some(&self.tower),
            b"tower-admin" => Some(&self.tower_admin),
            b"origin" => Some(&self.origin),
            b"origin-admin" => Some(&self.origin_admin),
            _ => None,
        }
    }
}

fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(Servers::start)
}

/// An answer, read whole.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn send(router: &Router, request: Request<Body>) -> Answer {
    let resp = router
        .clone()
        .oneshot(request)
        .await
        .unwrap_or_else(|e: std::convert::Infallible| match e {});
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), ANSWER_BYTES_MAX)
        .await
        .expect("answer body")
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

/// One request of an input, parsed.
struct Call<'a> {
    server: &'a [u8],
    request: Request<Body>,
    /// The body, also kept here (to recognise a slow-disk fault).
    body: &'a [u8],
}

/// Replace the `$…` placeholders.
fn substitute(bytes: &[u8], chunk: &str) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for (from, to) in [
        ("$CHUNK", chunk),
        ("$VIEWER", VIEWER),
        ("$OPERATOR", OPERATOR),
        ("$CHAOS", CHAOS),
    ] {
        let mut next = Vec::with_capacity(out.len());
        let mut rest = &out[..];
        while let Some(i) = rest.windows(from.len()).position(|w| w == from.as_bytes()) {
            next.extend_from_slice(&rest[..i]);
            next.extend_from_slice(to.as_bytes());
            rest = &rest[i + from.len()..];
        }
        next.extend_from_slice(rest);
        out = next;
    }
    out
}

/// Split at the first occurrence of `sep`.
fn split_once<'a>(bytes: &'a [u8], sep: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let i = bytes.windows(sep.len()).position(|w| w == sep)?;
    Some((&bytes[..i], &bytes[i + sep.len()..]))
}

/// Parse one request of an input; `None` when it is not one `http::Request` can carry.
fn parse_call<'a>(text: &'a [u8], chunk: &str) -> Option<Call<'a>> {
    let (head, body) = split_once(text, b"\n\n").unwrap_or((text, b""));
    let mut lines = head.split(|&b| b == b'\n');
    let first = lines.next()?;
    let mut words = first.splitn(3, |&b| b == b' ');
    let server = words.next()?;
    let method = Method::from_bytes(words.next()?).ok()?;
    let target = String::from_utf8(substitute(words.next()?, chunk)).ok()?;
    let mut b = Request::builder().method(method).uri(target);
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (name, value) = split_once(line, b":")?;
        let value = substitute(value.strip_prefix(b" ").unwrap_or(value), chunk);
        b = b.header(
            HeaderName::from_bytes(name).ok()?,
            HeaderValue::from_bytes(&value).ok()?,
        );
    }
    let request = b.body(Body::from(body.to_vec())).ok()?;
    Some(Call {
        server,
        request,
        body,
    })
}

/// Whether `request` would inject the slow-disk fault (see the module doc).
fn injects_slow_disk(path: &str, method: &Method, body: &[u8]) -> bool {
    path.trim_end_matches('/') == "/admin/faults"
        && method == Method::POST
        && serde_json::from_slice::<serde_json::Value>(body)
            .is_ok_and(|v| v["kind"].as_str() == Some("slow-disk"))
}

/// Hex SHA-256.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why `a`, the answer to `method path` from `server`, breaks the contract, if it does.
/// `content` is the published bytes of [`ITEM`].
fn problem(
    content: &[u8],
    server: &[u8],
    method: &Method,
    path: &str,
    a: &Answer,
) -> Option<String> {
    let status = a.status.as_u16();
    if status >= 500 && status != 503 {
        return Some(format!("server error {status}"));
    }
    if status >= 400 && method != Method::HEAD {
        if !a
            .header(header::CONTENT_TYPE)
            .starts_with("application/json")
        {
            return Some(format!(
                "error {status} is not JSON ({:?})",
                a.header(header::CONTENT_TYPE)
            ));
        }
        let v: Option<serde_json::Value> = serde_json::from_slice(&a.body).ok();
        if v.as_ref()
            .and_then(|v| v["error"].as_str())
            .is_none_or(|e| e.trim().is_empty())
        {
            return Some(format!("error {status} has no non-empty \"error\""));
        }
    }
    let reads = server == b"tower" || server == b"origin";
    if !reads || method == Method::HEAD {
        return None;
    }
    let etag = a.header(header::ETAG).trim_matches('"');
    let chunk = path.strip_prefix("/v1/chunks/");
    let item = path
        .strip_prefix("/v1/items/")
        .filter(|rest| !rest.contains('/'));
    if status == 200 && (chunk.is_some() || item.is_some()) {
        let got = sha256_hex(&a.body);
        if got != etag {
            return Some(format!("200 with bytes of SHA-256 {got}, ETag {etag:?}"));
        }
        if let Some(asked) = chunk.filter(|h| h.len() == 64) {
            if asked != etag {
                return Some(format!("asked for chunk {asked}, got {etag}"));
            }
        }
    }
    if status == 206 && item.is_some() {
        let range = a.header(header::CONTENT_RANGE);
        let parsed = range
            .strip_prefix("bytes ")
            .and_then(|r| r.split_once('/'))
            .and_then(|(span, len)| {
                let (first, last) = span.split_once('-')?;
                Some((
                    first.parse::<usize>().ok()?,
                    last.parse::<usize>().ok()?,
                    len.parse::<usize>().ok()?,
                ))
            });
        let Some((first, last, len)) = parsed else {
            return Some(format!("206 with Content-Range {range:?}"));
        };
        if first > last || last >= len || a.body.len() != last - first + 1 {
            return Some(format!(
                "206 with Content-Range {range:?} and {} bytes",
                a.body.len()
            ));
        }
        if item == Some(ITEM) && (len != content.len() || a.body != content[first..=last]) {
            return Some(format!("206 {range:?}: not the published bytes"));
        }
    }
    None
}

/// Send the requests of `data` in order; panic on the first answer that breaks the
/// contract (module doc).
pub fn check(data: &[u8]) -> Verdict {
    let s = servers();
    let mut failures = Vec::new();
    let mut verdict = Verdict::Skipped;
    for text in requests(data).into_iter().take(REQUESTS_MAX) {
        let Some(call) = parse_call(text, &s.chunk) else {
            continue;
        };
        let Some(router) = s.router(call.server) else {
            continue;
        };
        let method = call.request.method().clone();
        let path = call.request.uri().path().to_string();
        if injects_slow_disk(&path, &method, call.body) {
            continue;
        }
        let a = s.rt.block_on(send(router, call.request));
        verdict = match (verdict, a.status.as_u16() < 400) {
            (Verdict::Skipped | Verdict::Accepted, true) => Verdict::Accepted,
            _ => Verdict::Refused,
        };
        if let Some(p) = problem(&s.content, call.server, &method, &path, &a) {
            failures.push(format!(
                "{} {method} {}: {p}\n  answer: {} {}",
                String::from_utf8_lossy(call.server),
                path,
                a.status,
                String::from_utf8_lossy(&a.body[..a.body.len().min(300)])
            ));
            break;
        }
    }
    s.tower_faults.clear();
    s.origin_faults.clear();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    verdict
}

/// The requests of an input: the parts between lines `~~~`.
fn requests(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some((one, more)) = split_once(rest, b"\n~~~\n") {
        out.push(one);
        rest = more;
    }
    out.push(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        let mut map = axum::http::HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: body.to_vec(),
        }
    }

    const JSON: (&str, &str) = ("content-type", "application/json");

    #[test]
    fn the_check_refuses_what_the_contract_forbids() {
        // Goal: each rule of the contract fires on an answer that breaks it, and only then.
        let get = Method::GET;
        let content = b"0123456789";
        let err = br#"{"error":"no"}"#;
        let p = |server: &[u8], path: &str, a: &Answer| problem(content, server, &get, path, a);
        assert!(p(b"tower", "/x", &answer(500, &[JSON], err)).is_some());
        assert!(p(b"tower", "/x", &answer(502, &[JSON], err)).is_some());
        assert_eq!(p(b"tower", "/x", &answer(503, &[JSON], err)), None);
        assert!(p(b"tower", "/x", &answer(404, &[], b"not found")).is_some());
        assert!(p(b"tower", "/x", &answer(404, &[JSON], br#"{"error":" "}"#)).is_some());
        assert_eq!(p(b"tower", "/x", &answer(404, &[JSON], err)), None);
        let head = problem(
            content,
            b"tower",
            &Method::HEAD,
            "/x",
            &answer(404, &[], b""),
        );
        assert_eq!(head, None, "a HEAD answer has no body to check");

        let body = b"chunk bytes";
        let good = format!("\"{}\"", sha256_hex(body));
        let chunk_path = format!("/v1/chunks/{}", sha256_hex(body));
        let ok = answer(200, &[("etag", &good)], body);
        assert_eq!(p(b"origin", &chunk_path, &ok), None);
        let rotten = answer(200, &[("etag", &good)], b"chunk bytez");
        assert!(p(b"origin", &chunk_path, &rotten).is_some());
        let other = format!("/v1/chunks/{}", sha256_hex(b"other"));
        assert!(
            p(b"tower", &other, &ok).is_some(),
            "not the chunk asked for"
        );
        assert!(p(b"tower", "/v1/items/a", &rotten).is_some());

        let item = format!("/v1/items/{ITEM}");
        let range = |r: &str, b: &[u8]| answer(206, &[("content-range", r)], b);
        assert_eq!(p(b"tower", &item, &range("bytes 2-4/10", b"234")), None);
        assert!(p(b"tower", &item, &range("bytes 2-4/10", b"23")).is_some());
        assert!(p(b"tower", &item, &range("bytes 2-4/10", b"999")).is_some());
        assert!(p(b"tower", &item, &range("bytes 4-2/10", b"")).is_some());
        assert!(p(b"tower", &item, &range("bytes 2-4/11", b"234")).is_some());
        assert!(p(b"tower", &item, &range("2-4", b"234")).is_some());
    }

    #[test]
    fn inputs_split_into_requests_with_placeholders() {
        // Goal: the text format means what the module doc says.
        let data = b"tower GET /v1/chunks/$CHUNK\nauthorization: Bearer $CHAOS\n\nbody\n~~~\nnope";
        let parts = requests(data);
        assert_eq!(parts.len(), 2);
        let call = parse_call(parts[0], "abc").expect("a request");
        assert_eq!(call.server, b"tower");
        assert_eq!(call.request.uri().path(), "/v1/chunks/abc");
        assert_eq!(
            call.request.headers()["authorization"],
            format!("Bearer {CHAOS}").as_str()
        );
        assert_eq!(call.body, b"body");
        assert!(
            parse_call(parts[1], "abc").is_none(),
            "no method, no request"
        );
        assert!(injects_slow_disk(
            "/admin/faults",
            &Method::POST,
            br#"{"kind":"slow-disk","delay_ms":5}"#
        ));
        assert!(!injects_slow_disk(
            "/admin/faults",
            &Method::POST,
            br#"{"kind":"corrupt"}"#
        ));
    }
}
