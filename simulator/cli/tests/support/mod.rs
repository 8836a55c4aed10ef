//! Shared by the real-process tests: start `sovereign` servers on loopback, a tiny
//! HTTP/1.1 client over std's TCP (one request per connection), waiting helpers.
//!
//! Tower credentials: [`origin_at`] issues one for each of towers 1 to
//! [`TOWERS_PROVISIONED`] whose credential file (`DIR/tower-N.credential`, see
//! [`credential_file`]) does not exist yet, through the origin's admin API
//! ([`provision`]); [`tower`] passes that file as `--credential` when it exists. A test
//! that wants a tower without a credential (or another origin's) manages the file itself.
#![allow(dead_code)]
// Real processes on a real clock: waiting and sleeping are the point here.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const OPERATOR: &str = "operator-token-0123456789";
pub const VIEWER: &str = "viewer-token-0123456789ab";
pub const CHAOS: &str = "chaos-token-0123456789abc";

/// Towers [`origin_at`] issues credentials for.
pub const TOWERS_PROVISIONED: u32 = 4;

/// Where tower `id`'s credential is kept for the tests in `dir`.
pub fn credential_file(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("tower-{id}.credential"))
}

/// Issue tower `id`'s credential at the origin (`POST /admin/towers/{id}`, operator) and
/// write it to `file` (mode 0600); the credential.
pub fn provision_to(origin_admin: &str, id: u32, file: &Path) -> String {
    let r = http(
        "POST",
        origin_admin,
        &format!("/admin/towers/{id}"),
        &[("Authorization", &format!("Bearer {OPERATOR}"))],
        b"",
    )
    .expect("the origin's admin API answers");
    assert_eq!(
        r.status,
        201,
        "issuing tower-{id}'s credential: {}",
        r.text()
    );
    let credential = r.json()["credential"]
        .as_str()
        .expect("a credential")
        .to_string();
    std::fs::write(
        file,
        format!(
            "{credential}
"
        ),
    )
    .expect("write the credential");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    }
    credential
}

/// [`provision_to`] the usual file, [`credential_file`]`(dir, id)`.
pub fn provision(origin_admin: &str, dir: &Path, id: u32) -> String {
    provision_to(origin_admin, id, &credential_file(dir, id))
}

/// A free loopback port, handed out as the lab hands out its servers' ports: below the
/// kernel's ephemeral range (32768 up), so that no client connection of a test running
/// alongside takes it as its local port between this call and the server's bind, and
/// reserved against the other test processes.
pub fn free_port() -> u16 {
    sovereign_lab::backend::free_port().expect("a free port")
}

/// A response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One HTTP/1.1 exchange (Connection: close). `Err` when nothing answers.
pub fn http(
    method: &str,
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Ok(Resp {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(pos) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&b[..pos])
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = pos + 2;
        out.extend_from_slice(&b[start..start + size]);
        b = &b[start + size + 2..];
    }
}

pub fn get(addr: &str, path: &str) -> std::io::Result<Resp> {
    http("GET", addr, path, &[], b"")
}

/// GET on the origin's tower API as tower `id`, with its credential from `dir`.
pub fn tower_get(addr: &str, path: &str, dir: &Path, id: u32) -> std::io::Result<Resp> {
    let credential = std::fs::read_to_string(credential_file(dir, id))?;
    http(
        "GET",
        addr,
        path,
        &[
            ("x-sovereign-tower", &id.to_string()),
            ("Authorization", &format!("Bearer {}", credential.trim())),
        ],
        b"",
    )
}

pub fn admin_get(addr: &str, path: &str, token: &str) -> std::io::Result<Resp> {
    http(
        "GET",
        addr,
        path,
        &[("Authorization", &format!("Bearer {token}"))],
        b"",
    )
}

/// Poll `f` every 50 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `sovereign` server process, killed (SIGKILL) on drop.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub admin: String,
    pub log: PathBuf,
}

impl Server {
    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn spawn(args: &[String], log: &Path, addr: String, admin: String) -> Server {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_sovereign"))
        .args(args)
        .env("SOVEREIGN_LOG", "info")
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .expect("spawn sovereign");
    let mut server = Server {
        child,
        addr,
        admin,
        log: log.to_path_buf(),
    };
    let a = server.addr.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&a, "/healthz")
        .ok()
        .filter(|r| r.status == 200)
        .is_none()
    {
        // A server that never comes up says why: its log is in the failure message.
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!(
                "{args:?} exited ({status}) before answering {a}/healthz; it logged:\n{}",
                server.log_text()
            );
        }
        assert!(
            Instant::now() < deadline,
            "timed out after 30s waiting for {a}/healthz; {args:?} logged:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

fn tokens() -> Vec<String> {
    [
        ("--admin-token-viewer", VIEWER),
        ("--admin-token-operator", OPERATOR),
        ("--admin-token-chaos", CHAOS),
    ]
    .iter()
    .flat_map(|(k, v)| [k.to_string(), v.to_string()])
    .collect()
}

/// Start an origin with its data in `dir` (extra flags appended).
pub fn origin(dir: &Path, extra: &[&str]) -> Server {
    let addr = format!("127.0.0.1:{}", free_port());
    let admin = format!("127.0.0.1:{}", free_port());
    origin_at(dir, &addr, &admin, extra)
}

/// Start (or restart) an origin with its data in `dir` on the given addresses.
pub fn origin_at(dir: &Path, addr: &str, admin: &str, extra: &[&str]) -> Server {
    let mut args: Vec<String> = vec![
        "origin".into(),
        "serve".into(),
        "--data".into(),
        dir.join("origin").display().to_string(),
        "--listen".into(),
        addr.to_string(),
        "--admin-listen".into(),
        admin.to_string(),
    ];
    args.extend(tokens());
    args.extend(extra.iter().map(|s| s.to_string()));
    let server = spawn(
        &args,
        &dir.join("origin.log"),
        addr.to_string(),
        admin.to_string(),
    );
    for id in 1..=TOWERS_PROVISIONED {
        if !credential_file(dir, id).exists() {
            provision(admin, dir, id);
        }
    }
    server
}

/// Start tower `id` syncing from `origin`, data in `dir/tower-<id>`.
pub fn tower(dir: &Path, id: u32, origin: &str, extra: &[&str]) -> Server {
    let (p, a) = (free_port(), free_port());
    let addr = format!("127.0.0.1:{p}");
    let admin = format!("127.0.0.1:{a}");
    let mut args: Vec<String> = vec![
        "tower".into(),
        "serve".into(),
        "--id".into(),
        id.to_string(),
        "--data".into(),
        dir.join(format!("tower-{id}")).display().to_string(),
        "--listen".into(),
        addr.clone(),
        "--admin-listen".into(),
        admin.clone(),
        "--uplink".into(),
        format!("fibre=http://{origin}"),
        "--catalog-interval-s".into(),
        "1".into(),
        "--request-timeout-s".into(),
        "3".into(),
    ];
    args.extend(tokens());
    let credential = credential_file(dir, id);
    if credential.exists() {
        args.extend(["--credential".to_string(), credential.display().to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    spawn(&args, &dir.join(format!("tower-{id}.log")), addr, admin)
}

/// Publish `bytes` as `item` in class `priority` with `sovereign origin publish`.
pub fn publish(origin_admin: &str, dir: &Path, item: &str, priority: &str, bytes: &[u8]) {
    let file = dir.join(format!("{item}.bin"));
    std::fs::write(&file, bytes).expect("write content");
    let out = Command::new(env!("CARGO_BIN_EXE_sovereign"))
        .args([
            "origin",
            "publish",
            "--origin",
            &format!("http://{origin_admin}"),
            "--id",
            item,
            "--priority",
            priority,
            "--token",
            OPERATOR,
        ])
        .arg(&file)
        .output()
        .expect("publish runs");
    assert!(
        out.status.success(),
        "publish {item}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deterministic pseudo-random bytes.
pub fn content(seed: u64, len: usize) -> Vec<u8> {
    sovereign_store::fixtures::noise_from(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1, len)
}

/// Test device `device`'s secret: 32 bytes of `device`.
pub fn device_secret(device: u32) -> [u8; 32] {
    [device as u8; 32]
}

/// Test device `device`'s `n`-th idempotency key (owned by its identity).
pub fn device_key(device: u32, n: u64) -> String {
    let id = sovereign_logic::protocol::DeviceId::from_secret(&device_secret(device));
    sovereign_logic::protocol::IdemKey::for_device(id, n, 0x5eed)
        .0
        .to_string()
}

/// `Authorization: Device <secret>` of test device `device`.
pub fn device_auth(device: u32) -> String {
    let hex: String = device_secret(device)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("Device {hex}")
}

/// `POST /v1/ops` with `body` under `key` as test device `device` ([`device_auth`]); the
/// answer, or the error when nothing answered.
pub fn submit_op(tower: &str, device: u32, key: &str, body: &str) -> std::io::Result<Resp> {
    http(
        "POST",
        tower,
        "/v1/ops",
        &[
            ("Idempotency-Key", key),
            ("Authorization", &device_auth(device)),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

/// Submit a contribution of `amount` minor units under `key` as test device `device`
/// (the key must be one of its own, [`device_key`]); the status (0 when nothing answered).
pub fn contribute(tower: &str, device: u32, key: &str, community: &str, amount: u64) -> u16 {
    let body = serde_json::json!({
        "op": {"type": "contribution", "community": community, "nation": "ke", "amount_minor": amount}
    })
    .to_string();
    submit_op(tower, device, key, &body)
        .map(|r| r.status)
        .unwrap_or(0)
}

/// Whether `program args` succeeds here (a tool a test needs: tmux, a Docker engine);
/// without it the test is skipped loudly, and under `CI` fails: CI must run it
/// (`install` says how to get it).
pub fn tool_here(test: &str, program: &str, args: &[&str], install: &str) -> bool {
    if Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "`{program} {}` failed, and CI must run this test ({install})",
        args.join(" ")
    );
    eprintln!(
        "\n*** SKIP {test}: `{program} {}` failed; the test did not run ***\n",
        args.join(" ")
    );
    false
}

/// Whether a Docker engine answers ([`tool_here`]; .ci/run installs docker.io and starts
/// dockerd).
pub fn docker_here(test: &str) -> bool {
    tool_here(
        test,
        "docker",
        &["info", "--format", "{{.ServerVersion}}"],
        "apt-get install docker.io; dockerd &",
    )
}
