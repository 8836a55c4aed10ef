//! Limits, against the real `sovereign` binary (issue 11's reproductions):
//!
//! - inputs: `sim run/replay/shrink` and `gameday` on `/dev/zero`, a plan whose scenario
//!   is `/dev/zero`, the two reported scenarios that aborted the process, and a failure
//!   file whose `trace_hash` is `zz` are each refused quickly with exit 2 and an error
//!   naming the file and what was wrong;
//! - connections: a tower started with a soft open-file limit of 256 raises it to the
//!   hard limit; a flood of half-open connections from one address is held only up to
//!   the per-address limit and closed at the header timeout, while another address is
//!   served; no "Too many open files";
//! - requests: a lying `Content-Length` is cut at the body timeout (408), heads too large
//!   are 431/414 JSON, reads and operations get 429 + `Retry-After` after their rate, a
//!   malformed or multi-range `Range` gets the whole item (200);
//! - TLS: an origin and a tower with certificates on every listener, publishing over
//!   https with `--ca`, the tower syncing over an https uplink with `--origin-ca`, a device
//!   fetching over https with `--ca`; a device without the CA is refused.

// Real processes on a real clock: waiting and sleeping are the point here.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::*;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sovereign")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Run `sovereign args`; its output and how long it took.
fn run(args: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let out = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("sovereign runs");
    (out, start.elapsed())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `text` without ANSI colour sequences (the servers' logs are coloured).
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Inputs

#[test]
fn endless_inputs_are_refused_quickly_with_exit_2() {
    // Goal: every command that reads an input file refuses /dev/zero after its cap, in
    // well under a second of reading, with exit 2 and the file, the cap and the kind of
    // file named; a plan naming /dev/zero as its scenario is refused at its `scenario`
    // line.
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = dir.path().join("zero-plan.toml");
    let drill = std::fs::read_to_string(repo().join("gamedays/quarterly-drill.toml"))
        .expect("the shipped plan");
    let line = drill
        .lines()
        .position(|l| l.starts_with("scenario = "))
        .expect("a scenario line")
        + 1;
    let zero_plan: String = drill
        .lines()
        .map(|l| {
            if l.starts_with("scenario = ") {
                "scenario = \"/dev/zero\"".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&plan, zero_plan).expect("plan");
    let plan_s = plan.display().to_string();
    let cases: [(&[&str], &str); 5] = [
        (
            &["sim", "run", "/dev/zero"],
            "/dev/zero: the scenario file is larger than 1048576 bytes (1 MiB)",
        ),
        (
            &["sim", "replay", "/dev/zero"],
            "/dev/zero: the failure file is larger than 16777216 bytes (16 MiB)",
        ),
        (
            &["sim", "shrink", "/dev/zero"],
            "/dev/zero: the failure file is larger than 16777216 bytes (16 MiB)",
        ),
        (
            &["gameday", "/dev/zero", "--headless"],
            "/dev/zero: the plan file is larger than 262144 bytes (256 KiB)",
        ),
        (
            &["gameday", &plan_s, "--headless"],
            &format!(
                "{plan_s}:{line}: scenario: the plan's scenario file is unusable: /dev/zero: the scenario file is larger than 1048576 bytes"
            ),
        ),
    ];
    for (args, says) in cases {
        let (o, took) = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
        assert!(took < Duration::from_secs(5), "{args:?} took {took:?}");
    }
}

#[test]
fn the_reported_scenarios_are_refused_before_they_allocate() {
    // Goal: the two scenarios that aborted the process (1000 towers × 100 000 devices;
    // 256 × 10 000 items of 64 MiB) exit 2 at once, naming the field and the limit.
    let fixtures = repo().join("simulator/sim/tests/fixtures/invalid");
    for (file, says) in [
        (
            "devices-in-all-towers.toml",
            ":8: tower[0].devices: devices in all towers (devices × count, summed) would be 100000000, over the limit of 1000000",
        ),
        (
            "catalog-bytes.toml",
            ":12: workload.catalog[0].size: content bytes in the catalog (items × size, summed) would be 671088640000, over the limit of 1073741824",
        ),
    ] {
        let path = fixtures.join(file).display().to_string();
        let (o, took) = run(&["sim", "run", &path]);
        assert_eq!(o.status.code(), Some(2), "{file}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{file}: {}", stderr(&o));
        assert!(took < Duration::from_secs(5), "{file}: {took:?}");
    }
}

#[test]
fn a_failure_file_with_a_bad_trace_hash_is_exit_2_for_replay_and_shrink() {
    // Goal: `trace_hash = "zz"` is refused at its line by replay and shrink alike (exit
    // 2), while the same file with a well-formed hash is read.
    use sovereign_sim::failure::FailureFile;
    let scenario =
        "name = \"tiny\"\nduration = \"10m\"\n[[tower]]\ndevices = 1\nlinks = [\"fibre\"]\n";
    let good = FailureFile {
        scenario_name: "tiny".into(),
        scenario_path: "tiny.toml".into(),
        seed: 1,
        build: "test".into(),
        plant: None,
        violation: Some(sovereign_sim::report::Violation {
            oracle: sovereign_sim::scenario::Oracle::Integrity,
            at: sovereign_logic::Time::from_secs(1),
            detail: "made up".into(),
            liveness: false,
        }),
        trace_hash: "0".repeat(64),
        exit_code: 1,
        scenario_toml: scenario.into(),
        branches: Vec::new(),
    }
    .to_toml();
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = good.replacen(
        &format!("trace_hash = \"{}\"", "0".repeat(64)),
        "trace_hash = \"zz\"",
        1,
    );
    assert_ne!(bad, good);
    let line = bad
        .lines()
        .position(|l| l.starts_with("trace_hash"))
        .unwrap()
        + 1;
    let path = dir.path().join("zz.failure.toml");
    std::fs::write(&path, &bad).unwrap();
    let p = path.display().to_string();
    for cmd in ["replay", "shrink"] {
        let (o, _) = run(&["sim", cmd, &p]);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("{p}:{line}: result.trace_hash: \"zz\" is not a trace hash; expected 64 lower-case hex digits")),
            "{cmd}: {}",
            stderr(&o)
        );
    }
    // The well-formed file replays (and does not reproduce: the hash is made up): exit 1,
    // not 2 — the refusal above is the hash's format alone.
    let okpath = dir.path().join("ok.failure.toml");
    std::fs::write(&okpath, &good).unwrap();
    let (o, _) = run(&["sim", "replay", &okpath.display().to_string()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

// ---------------------------------------------------------------------------------------
// Servers

/// A TCP connection to `to` from the local address `from`.
fn connect_from(from: IpAddr, to: &str) -> std::io::Result<TcpStream> {
    let to: SocketAddr = to.parse().expect("an address");
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::new(from, 0).into())?;
    s.connect(&to.into())?;
    Ok(s.into())
}

/// Send `raw` from `from`, read until the server closes or `wait` passes: the answer
/// and when the server closed (None: it did not).
fn exchange(from: IpAddr, to: &str, raw: &[u8], wait: Duration) -> (String, Option<Duration>) {
    let mut s = connect_from(from, to).expect("connect");
    s.set_read_timeout(Some(wait)).unwrap();
    let start = Instant::now();
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break Some(start.elapsed()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break None;
            }
            Err(_) => break Some(start.elapsed()),
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// The status of a raw answer, and its JSON `error` (checked to be there).
fn json_status(raw: &str) -> (u16, String) {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {raw:?}"));
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "not JSON: {raw}"
    );
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {raw}"));
    (status, v["error"].as_str().expect("an error").to_string())
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Start `sovereign args` with its stderr in `log` and the soft open-file limit set to
/// `nofile_soft` first; wait until the log says it is serving.
fn spawn_logged(
    args: &[String],
    log: &Path,
    nofile_soft: Option<u32>,
    addr: &str,
    admin: &str,
) -> Server {
    let out = std::fs::File::create(log).expect("log");
    let mut cmd = match nofile_soft {
        Some(n) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -Sn {n} && exec \"$0\" \"$@\""))
                .arg(bin());
            c
        }
        None => Command::new(bin()),
    };
    let child = cmd
        .args(args)
        .env("SOVEREIGN_LOG", "info")
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .expect("spawn");
    let server = Server {
        child,
        addr: addr.to_string(),
        admin: admin.to_string(),
        log: log.to_path_buf(),
    };
    wait_for(
        &format!("{} to serve", log.display()),
        Duration::from_secs(30),
        || plain(&server.log_text()).contains(" serving").then_some(()),
    );
    server
}

fn tokens() -> Vec<String> {
    vec![
        "--admin-token-viewer".into(),
        VIEWER.into(),
        "--admin-token-operator".into(),
        OPERATOR.into(),
        "--admin-token-chaos".into(),
        CHAOS.into(),
    ]
}

/// Arguments of a tower syncing from `uplink`, data under `dir`.
fn tower_args(dir: &Path, addr: &str, admin: &str, uplink: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "tower",
        "serve",
        "--id",
        "1",
        "--data",
        &dir.join("tower").display().to_string(),
        "--listen",
        addr,
        "--admin-listen",
        admin,
        "--uplink",
        &format!("fibre={uplink}"),
        "--catalog-interval-s",
        "1",
        "--request-timeout-s",
        "3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(tokens());
    // Tower 1's credential, issued by `origin` (support's `origin_at`), when there is one.
    let credential = credential_file(dir, 1);
    if credential.exists() {
        a.extend(["--credential".to_string(), credential.display().to_string()]);
    }
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn loopback() -> String {
    format!("127.0.0.1:{}", free_port())
}

#[test]
fn a_connection_flood_is_bounded_and_does_not_starve_another_address() {
    // Goal: a tower started under a soft open-file limit of 256 raises it to the hard
    // limit; 600 half-open connections from 127.0.0.1 get 64 held (the per-address limit)
    // and the rest refused at once; the held ones are closed at the 5 s header timeout;
    // during the flood 127.0.0.2 is served in well under a second; the log never says
    // "Too many open files".
    let dir = tempfile::tempdir().expect("tempdir");
    let (addr, admin) = (loopback(), loopback());
    let args = tower_args(
        dir.path(),
        &addr,
        &admin,
        "http://127.0.0.1:9",
        &[
            "--header-timeout-s",
            "5",
            "--connections-per-client-max",
            "64",
        ],
    );
    let tower = spawn_logged(
        &args,
        &dir.path().join("tower.log"),
        Some(256),
        &addr,
        &admin,
    );
    let hard = String::from_utf8(
        Command::new("sh")
            .args(["-c", "ulimit -Hn"])
            .output()
            .expect("sh")
            .stdout,
    )
    .unwrap();
    let hard = hard.trim();
    let log = plain(&tower.log_text());
    assert!(
        log.contains(&format!("open_files_max={hard}")) || hard == "unlimited",
        "the soft limit of 256 was not raised to the hard limit {hard}:\n{log}"
    );

    let start = Instant::now();
    // Half-open: connected, nothing sent (a half-sent head is in system/server's tests;
    // here a refused connection must not be reset over unread bytes before its answer
    // is read).
    let mut flood = Vec::new();
    for _ in 0..600 {
        flood.push(connect_from(ip(1), &addr).expect("flood connect"));
    }
    let flooded = start.elapsed();
    let mut served = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let (raw, _) = exchange(
            ip(2),
            &addr,
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        );
        assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
        served.push(t.elapsed());
    }
    let slowest = served.iter().max().copied().unwrap_or_default();
    assert!(slowest < Duration::from_millis(500), "{served:?}");
    let (mut refused, mut timed_out) = (0, 0);
    let mut last_close = Duration::ZERO;
    for c in &mut flood {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        match c.read(&mut buf) {
            Ok(n) if n > 0 => {
                let (status, _) = json_status(&String::from_utf8_lossy(&buf[..n]));
                assert_eq!(status, 429);
                refused += 1;
            }
            Ok(_) => {
                timed_out += 1;
                last_close = last_close.max(start.elapsed());
            }
            Err(e) => panic!("a flood connection was neither refused nor closed: {e}"),
        }
    }
    eprintln!(
        "flood: 600 connections in {flooded:?}; {refused} refused at once (429), {timed_out} held and closed by {last_close:?}; another address served in at most {slowest:?}"
    );
    assert_eq!((refused, timed_out), (536, 64));
    assert!(
        last_close < flooded + Duration::from_secs(7),
        "{last_close:?}"
    );
    let log = plain(&tower.log_text());
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(log.contains("connections refused over the limits"), "{log}");
}

#[test]
fn under_a_low_hard_file_limit_connections_are_refused_not_starved_of_descriptors() {
    // Goal: a tower started with a hard open-file limit of 600 lowers --connections-max
    // to what fits ((600 - 256) / 2 = 172, logged); 250 connections from 50 addresses
    // (5 each, under the per-address limit) get 172 held and 78 refused with 503 at once;
    // the log never says "Too many open files"; once the held ones time out, requests
    // are served again.
    let dir = tempfile::tempdir().expect("tempdir");
    let (addr, admin) = (loopback(), loopback());
    let args = tower_args(
        dir.path(),
        &addr,
        &admin,
        "http://127.0.0.1:9",
        &["--header-timeout-s", "3"],
    );
    let log_path = dir.path().join("tower.log");
    let out = std::fs::File::create(&log_path).expect("log");
    let child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 600 && exec \"$0\" \"$@\"")
        .arg(bin())
        .args(&args)
        .env("SOVEREIGN_LOG", "info")
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .expect("spawn");
    let tower = Server {
        child,
        addr: addr.clone(),
        admin,
        log: log_path,
    };
    wait_for("the tower to serve", Duration::from_secs(30), || {
        plain(&tower.log_text()).contains(" serving").then_some(())
    });
    let log = plain(&tower.log_text());
    assert!(
        log.contains("open_files_max=600") && log.contains("lowered_to=172"),
        "{log}"
    );
    let mut held = Vec::new();
    for i in 0..250u32 {
        let from = ip(10 + (i / 5) as u8);
        held.push(connect_from(from, &addr).expect("connect"));
    }
    // Refusals are answered at once; look at every connection once, without waiting.
    std::thread::sleep(Duration::from_millis(500));
    let (mut refused, mut open) = (0, 0);
    for c in &mut held {
        c.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4096];
        match c.read(&mut buf) {
            Ok(n) if n > 0 => {
                let (status, e) = json_status(&String::from_utf8_lossy(&buf[..n]));
                assert_eq!(status, 503, "{e}");
                assert!(e.contains("172 connections"), "{e}");
                refused += 1;
            }
            Ok(_) => panic!("closed without an answer"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((open, refused), (172, 78));
    drop(held);
    wait_for(
        "a request to be served again",
        Duration::from_secs(10),
        || {
            let (raw, _) = exchange(
                ip(9),
                &addr,
                b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                Duration::from_secs(5),
            );
            raw.starts_with("HTTP/1.1 200").then_some(())
        },
    );
    let log = plain(&tower.log_text());
    assert!(!log.contains("Too many open files"), "{log}");
}

#[test]
fn request_limits_on_the_real_tower() {
    // Goal: on a real tower with content: a lying Content-Length is cut at the 1 s body
    // timeout (408 JSON, closed); a 70 KB header is 431 and a 9 KB target 414, both JSON;
    // a malformed or multi-range Range gets the whole item (200) while an unsatisfiable
    // one is 416; after their burst, reads and operations from one address get 429 with
    // Retry-After and JSON, and another address is unaffected.
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = origin(dir.path(), &[]);
    let item = content(11, 20_000);
    publish(&origin.admin, dir.path(), "doc", "P0", &item);
    let (addr, admin) = (loopback(), loopback());
    let args = tower_args(
        dir.path(),
        &addr,
        &admin,
        &format!("http://{}", origin.addr),
        &[
            "--body-timeout-s",
            "1",
            "--read-rate-per-s",
            "1",
            "--read-burst",
            "10",
            "--ops-rate-per-s",
            "1",
            "--ops-burst",
            "2",
        ],
    );
    let tower = spawn_logged(&args, &dir.path().join("tower.log"), None, &addr, &admin);
    // Each poll from its own address, so that the reads' buckets tested below are full.
    let mut n = 100u8;
    wait_for("the tower to serve doc", Duration::from_secs(30), || {
        n = n.wrapping_add(1).max(100);
        let (raw, _) = exchange(
            ip(n),
            &tower.addr,
            b"GET /v1/items/doc HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        );
        raw.starts_with("HTTP/1.1 200").then_some(())
    });

    let get = |from: u8, path: &str, headers: &str| {
        exchange(
            ip(from),
            &tower.addr,
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}\r\n")
                .as_bytes(),
            Duration::from_secs(5),
        )
        .0
    };
    // Ranges.
    for (range, status) in [
        ("bytes=5", 200),
        ("bytes=0-1,5-6", 200),
        ("bytes=9-1", 200),
        ("items=0-10", 200),
        ("bytes=10-19", 206),
        ("bytes=999999-", 416),
    ] {
        let raw = get(3, "/v1/items/doc", &format!("Range: {range}\r\n"));
        let got: u16 = raw
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        assert_eq!(got, status, "{range}: {}", &raw[..raw.len().min(300)]);
        if status == 200 {
            // (The body is binary and `raw` lossy text: look at its length header.)
            let head = raw.split_once("\r\n\r\n").map_or("", |(h, _)| h);
            assert!(
                head.to_ascii_lowercase()
                    .contains(&format!("content-length: {}\r\n", item.len())),
                "{range}: not the whole item: {head}"
            );
        }
    }
    // Heads too large.
    let (status, e) = json_status(&get(
        4,
        "/healthz",
        &format!("X-Big: {}\r\n", "a".repeat(70_000)),
    ));
    assert_eq!(status, 431, "{e}");
    let (status, e) = json_status(&get(4, &format!("/v1/items/{}", "a".repeat(9000)), ""));
    assert_eq!(status, 414, "{e}");
    // A lying Content-Length.
    let (raw, closed) = exchange(
        ip(5),
        &tower.addr,
        format!(
            "POST /v1/ops HTTP/1.1\r\nHost: t\r\nAuthorization: {}\r\nIdempotency-Key: {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"op\":",
            device_auth(7),
            device_key(7, 1)
        )
        .as_bytes(),
        Duration::from_secs(10),
    );
    let (status, e) = json_status(&raw);
    assert_eq!(status, 408, "{e}");
    let closed = closed.expect("the connection was closed");
    eprintln!("lying Content-Length: 408 and closed after {closed:?} (body timeout 1 s)");
    assert!(closed < Duration::from_millis(2500), "{closed:?}");
    // Reads: a burst of 10, then 429.
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let raw = get(6, "/v1/catalog", "");
        statuses.push(
            raw.split(' ')
                .nth(1)
                .and_then(|s| s.parse::<u16>().ok())
                .unwrap_or(0),
        );
        if statuses.last() == Some(&429) {
            let (_, e) = json_status(&raw);
            assert!(e.contains("too many reads"), "{e}");
            assert!(raw.to_ascii_lowercase().contains("retry-after: 1"), "{raw}");
        }
    }
    assert_eq!(statuses[..10], [200; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429, 429], "{statuses:?}");
    assert!(get(7, "/v1/catalog", "").starts_with("HTTP/1.1 200"));
    // Operations: a burst of 2, then 429.
    let op = |key: &str| {
        let body = r#"{"op":{"type":"message","to":"clinic","body":"hi"}}"#;
        exchange(
            ip(8),
            &tower.addr,
            format!(
                "POST /v1/ops HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: {}\r\nIdempotency-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                device_auth(7),
                body.len()
            )
            .as_bytes(),
            Duration::from_secs(10),
        )
        .0
    };
    for n in [2, 3] {
        let raw = op(&device_key(7, n));
        assert!(raw.starts_with("HTTP/1.1 202"), "{raw}");
    }
    let raw = op(&device_key(7, 4));
    let (status, e) = json_status(&raw);
    assert_eq!(status, 429, "{e}");
    assert!(e.contains("too many operations"), "{e}");
}

/// A CA and a certificate for 127.0.0.1 it signed, written as `ca.pem`, `cert.pem` and
/// `key.pem` into `dir`.
fn write_certificates(dir: &Path) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "sovereign test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA cert");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("cert");
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

#[test]
fn tls_on_every_listener_and_client() {
    // Goal: an origin with TLS on both listeners, `origin publish` over https with --ca,
    // a tower with TLS syncing over an https uplink with --origin-ca, and a device that
    // fetches over https with --ca gets the published bytes; without --ca the device is
    // refused (the system roots do not know the test CA). The logs say which listener
    // is TLS.
    let dir = tempfile::tempdir().expect("tempdir");
    write_certificates(dir.path());
    let pem = |n: &str| dir.path().join(n).display().to_string();
    let tls_flags = [
        "--tls-cert".to_string(),
        pem("cert.pem"),
        "--tls-key".to_string(),
        pem("key.pem"),
        "--admin-tls-cert".to_string(),
        pem("cert.pem"),
        "--admin-tls-key".to_string(),
        pem("key.pem"),
    ];
    let (o_addr, o_admin) = (loopback(), loopback());
    let mut args: Vec<String> = [
        "origin",
        "serve",
        "--data",
        &dir.path().join("origin").display().to_string(),
        "--listen",
        &o_addr,
        "--admin-listen",
        &o_admin,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(tokens());
    args.extend(tls_flags.iter().cloned());
    let origin = spawn_logged(
        &args,
        &dir.path().join("origin.log"),
        None,
        &o_addr,
        &o_admin,
    );
    let log = plain(&origin.log_text());
    assert!(
        log.contains("listen_scheme=\"https (TLS)\"")
            && log.contains("admin_scheme=\"https (TLS)\""),
        "{log}"
    );
    // Plain HTTP to the TLS listener gets no HTTP answer.
    assert!(get(&o_addr, "/healthz").map_or(true, |r| r.status != 200));

    let item = content(5, 100_000);
    let file = dir.path().join("item.bin");
    std::fs::write(&file, &item).unwrap();
    let publish = |ca: Option<&str>| {
        let mut a = vec![
            "origin".to_string(),
            "publish".into(),
            "--origin".into(),
            format!("https://{o_admin}"),
            "--id".into(),
            "secure-doc".into(),
            "--priority".into(),
            "P0".into(),
            "--token".into(),
            OPERATOR.into(),
            file.display().to_string(),
        ];
        if let Some(ca) = ca {
            a.extend(["--ca".to_string(), ca.to_string()]);
        }
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        run(&refs).0
    };
    let o = publish(None);
    assert_ne!(
        o.status.code(),
        Some(0),
        "published without trusting the CA"
    );
    assert!(
        stderr(&o).to_lowercase().contains("certificate"),
        "{}",
        stderr(&o)
    );
    let o = publish(Some(&pem("ca.pem")));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // Tower 1's credential, issued over the https admin API (add-tower trusts --ca).
    let cred = credential_file(dir.path(), 1);
    let o = run(&[
        "origin",
        "add-tower",
        "--origin",
        &format!("https://{o_admin}"),
        "--tower",
        "1",
        "--out",
        &cred.display().to_string(),
        "--token",
        OPERATOR,
        "--ca",
        &pem("ca.pem"),
    ])
    .0;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let (t_addr, t_admin) = (loopback(), loopback());
    let mut targs = tower_args(
        dir.path(),
        &t_addr,
        &t_admin,
        &format!("https://{o_addr}"),
        &["--origin-ca", &pem("ca.pem")],
    );
    targs.extend(tls_flags.iter().cloned());
    let _tower = spawn_logged(
        &targs,
        &dir.path().join("tower.log"),
        None,
        &t_addr,
        &t_admin,
    );

    let fetch = |ca: Option<&str>| {
        let out = dir.path().join("fetched.bin");
        let state = dir.path().join("device");
        let mut a = vec![
            "device".to_string(),
            "fetch".into(),
            "secure-doc".into(),
            "--out".into(),
            out.display().to_string(),
            "--tower".into(),
            format!("https://{t_addr}"),
            "--state".into(),
            state.display().to_string(),
            "--timeout-s".into(),
            "5".into(),
        ];
        if let Some(ca) = ca {
            a.extend(["--ca".to_string(), ca.to_string()]);
        }
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        (run(&refs).0, out)
    };
    let fetched = wait_for(
        "the device to fetch over https",
        Duration::from_secs(30),
        || {
            let (o, out) = fetch(Some(&pem("ca.pem")));
            (o.status.code() == Some(0)).then(|| std::fs::read(out).expect("fetched file"))
        },
    );
    assert_eq!(fetched, item);
    let (o, _) = fetch(None);
    assert_ne!(o.status.code(), Some(0));
    let says = format!("{}{}", stderr(&o), String::from_utf8_lossy(&o.stdout)).to_lowercase();
    assert!(says.contains("certificate"), "{says}");
}

#[test]
fn origin_publish_streams_its_file_and_refuses_what_no_origin_takes() {
    // Goal: `sovereign origin publish` sends its file as it reads it, so content that
    // comes from a pipe (no length known beforehand) publishes whole: the origin counts
    // every byte and names their digest. A regular file over the origin's limit (a sparse one: nothing written)
    // and a directory are refused before any connection, naming the file; the origin URL
    // here listens nowhere, so only the checks can answer.
    let dir = tempfile::tempdir().expect("tempdir");
    let publish = |origin: &str, file: &Path| {
        Command::new(bin())
            .args(["origin", "publish", "--origin", origin, "--id", "piped"])
            .args(["--priority", "P1", "--token", OPERATOR])
            .arg(file)
            .output()
            .expect("publish runs")
    };
    let nowhere = format!("http://{}", loopback());
    let big = dir.path().join("big.bin");
    let cap = 1u64 << 30;
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(cap + 1))
        .expect("sparse file");
    let o = publish(&nowhere, &big);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("big.bin") && err.contains(&format!("over the {cap} bytes")),
        "{err}"
    );
    let o = publish(&nowhere, dir.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("a directory"), "{err}");

    let origin = origin(dir.path(), &[]);
    let fifo = dir.path().join("content.pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let item = content(5, (3 << 20) + 7);
    let writer = {
        let (fifo, item) = (fifo.clone(), item.clone());
        std::thread::spawn(move || {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&fifo)
                .and_then(|mut f| f.write_all(&item))
        })
    };
    let o = publish(&format!("http://{}", origin.admin), &fifo);
    writer.join().expect("writer").expect("write the pipe");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let answer: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON answer");
    assert_eq!(answer["size"], item.len() as u64);
    assert_eq!(
        answer["sha256"],
        sovereign_logic::content::ChunkHash::of(&item).to_hex()
    );
    assert!(answer["chunks"].as_u64().is_some_and(|n| n > 100), "{out}");
}
