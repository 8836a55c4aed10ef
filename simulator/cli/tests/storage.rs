//! Real processes on loopback against a failing disk: a real full file system (a small
//! tmpfs mounted over a server's data directory) and the admin faults (`fsync-failure`,
//! `disk-full`). What must hold:
//!
//! - A 503 for `POST /v1/ops` is never stored later: the operation a failed commit carried
//!   is neither committed by the next fsync nor recovered and forwarded after a restart;
//!   the device's retry with the same key is applied exactly once (issue 11, item 3).
//! - A publish that fails on a full disk leaves no chunk behind, and the origin goes on
//!   publishing and applying forwards without anyone deleting files; chunks no committed
//!   entry names are garbage-collected when an origin or a tower starts
//!   (item 4).
//! - A server that cannot store is visible: `/readyz` 503 with the reasons,
//!   `sovereign_storage_errors_total`, `sovereign_storage_free_bytes`,
//!   `sovereign_tower_steady` 0, `degraded` in `/admin/status` — and ready again once the
//!   disk works (item 7).
//!
//! Mounting needs root: where `mount -t tmpfs` is refused the tmpfs tests print a loud
//! skip, unless `CI` is set (CI runs as root): then they fail. The fault-based tests run
//! everywhere.
//!
//! Not covered: an fsync error after the bytes reached the disk (a failed commit that
//! lands anyway: no file system here produces one on demand; the 503 says "outcome
//! unknown" for exactly that case).

// Real processes on a real clock: waiting and sleeping are the point here.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

/// A tmpfs mounted at a directory for the life of the value (unmounted on drop).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mount a tmpfs of `size` (`mount`'s syntax, e.g. `4m`) at `dir`, or `None` after a
    /// loud skip when this machine does not allow it (outside CI).
    fn mount(dir: &Path, size: &str, test: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs {
                dir: dir.to_path_buf(),
            }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var_os("CI").is_none(),
                    "{test}: cannot mount a tmpfs ({why}), and CI must run this test (as root)"
                );
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** {test}: SKIPPED: cannot mount a tmpfs ({why}); run as root ***"
                );
                None
            }
        }
    }

    /// Fill the file system: a file grows until the disk refuses more. Returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let block = vec![0x5a_u8; 4096];
        loop {
            match f.write_all(&block) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// Submit a contribution as test device 3 under one of its keys; the status and the body.
fn submit(tower: &str, key: &str, amount: u64) -> Resp {
    let body = serde_json::json!({
        "op": {"type": "contribution", "community": "kibera", "nation": "ke", "amount_minor": amount}
    })
    .to_string();
    submit_op(tower, 3, key, &body).expect("the tower answers")
}

fn applied_at_origin(origin_admin: &str, key: &str) -> bool {
    let r = admin_get(origin_admin, &format!("/admin/ops/{key}"), VIEWER).expect("ops");
    match r.status {
        200 => true,
        404 => false,
        s => panic!("origin /admin/ops: {s} {}", r.text()),
    }
}

fn wait_applied(origin_admin: &str, key: &str) {
    wait_for(
        &format!("{key} applied at the origin"),
        Duration::from_secs(30),
        || applied_at_origin(origin_admin, key).then_some(()),
    );
}

fn outbox_len(tower_admin: &str) -> u64 {
    admin_get(tower_admin, "/admin/outbox", VIEWER)
        .expect("outbox")
        .json()["count"]
        .as_u64()
        .expect("count")
}

fn chaos(admin: &str, method: &str, body: &str) {
    let r = http(
        method,
        admin,
        "/admin/faults",
        &[("Authorization", &format!("Bearer {CHAOS}"))],
        body.as_bytes(),
    )
    .expect("faults");
    assert!(r.status == 201 || r.status == 200, "{}", r.text());
}

/// The sum of the samples of `name` in `/metrics` whose labels include every pair of
/// `labels` (`None`: no such sample).
fn metric(addr: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let text = get(addr, "/metrics").expect("metrics").text();
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        if n == name
            && labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        {
            *found.get_or_insert(0.0) += value.parse::<f64>().ok()?;
        }
    }
    found
}

/// The reasons without their details (what follows the first colon), for comparing two
/// reports taken a moment apart.
fn heads(reasons: &[String]) -> Vec<String> {
    reasons
        .iter()
        .map(|r| r.split(':').next().unwrap_or_default().to_string())
        .collect()
}

/// `/readyz`'s status and its `degraded` reasons.
fn readiness(addr: &str) -> (u16, Vec<String>) {
    let r = get(addr, "/readyz").expect("readyz");
    let reasons = r.json()["degraded"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    (r.status, reasons)
}

fn status_degraded(admin: &str) -> Vec<String> {
    let s = admin_get(admin, "/admin/status", VIEWER)
        .expect("status")
        .json();
    s["degraded"]
        .as_array()
        .unwrap_or_else(|| panic!("no degraded in {s}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect()
}

/// A log without its ANSI colour codes.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... m
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `log` has a garbage-collection line for `chunks` chunks of `bytes` bytes.
fn collected(log: &str, chunks: usize, bytes: u64) -> bool {
    plain(log).lines().any(|l| {
        l.contains("garbage-collected chunks no committed entry names")
            && l.contains(&format!("chunks={chunks} "))
            && l.contains(&format!("bytes={bytes}"))
    })
}

/// The `outbox` count of the last `Recovered` event in a tower's log.
fn last_recovered_outbox(log: &str) -> u64 {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("Recovered {"))
        .expect("a Recovered event in the log");
    let rest = &line[line.find("outbox: ").expect("outbox count") + 8..];
    rest.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .expect("a number")
}

/// The ledger's total, in minor units.
fn contributed(origin_admin: &str) -> u64 {
    admin_get(origin_admin, "/admin/ledger", VIEWER)
        .expect("ledger")
        .json()["contributed_minor"]
        .as_str()
        .expect("contributed_minor")
        .parse()
        .expect("a number")
}

/// Item 3 as reported, and item 7: the tower's disk is really full.
#[test]
fn an_operation_refused_on_a_full_disk_is_never_stored_later() {
    // Goal: a 503 on a full disk is an honest answer: the refused operation is not
    // committed by the next fsync once space is back, not recovered and forwarded after a
    // restart, and its retry with the same key is applied once. Meanwhile the tower
    // reports itself degraded (readyz, metrics, status) and recovers its readiness.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let Some(fs) = Tmpfs::mount(&d.join("tower-1"), "4m", "full-disk submit") else {
        return;
    };
    let origin = origin(d, &[]);
    let extra = ["--storage-free-min-mib", "0"];
    let mut t = tower(d, 1, &origin.addr, &extra);
    assert_eq!(submit(&t.addr, &device_key(3, 100), 100).status, 202);
    wait_applied(&origin.admin, &device_key(3, 100));
    // Its confirmation deleted at the tower, before the disk fills. (A delete whose
    // commit fails is dropped: the confirmed operation is recovered after a restart and
    // forwarded again, which the origin answers from its record without applying it
    // twice — harmless, but it would blur the count checked below.)
    wait_for("the outbox to drain", Duration::from_secs(30), || {
        (outbox_len(&t.admin) == 0).then_some(())
    });
    assert_eq!(readiness(&t.addr).0, 200, "ready before the disk fills");

    let filler = fs.fill();
    let refused = submit(&t.addr, &device_key(3, 101), 1_000);
    assert_eq!(refused.status, 503, "{}", refused.text());
    let msg = refused.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.contains("outcome unknown") && msg.contains("same Idempotency-Key"),
        "the answer must say the outcome is unknown and how to retry: {msg}"
    );
    // Item 7: visible while it lasts.
    let (code, reasons) = readiness(&t.addr);
    assert_eq!(code, 503, "ready on a full disk: {reasons:?}");
    assert!(
        reasons.iter().any(|r| r.starts_with("disk full"))
            && reasons
                .iter()
                .any(|r| r.starts_with("storage fsync failing")),
        "{reasons:?}"
    );
    assert!(!status_degraded(&t.admin).is_empty());
    assert!(
        metric(
            &t.addr,
            "sovereign_storage_errors_total",
            &[("op", "fsync")]
        )
        .is_some_and(|v| v >= 1.0)
    );
    assert!(
        metric(&t.addr, "sovereign_storage_free_bytes", &[]).is_some_and(|v| v < 64.0 * 1024.0)
    );
    assert_eq!(metric(&t.addr, "sovereign_tower_steady", &[]), Some(0.0));

    // Space is back; the next operation's fsync must commit only itself.
    std::fs::remove_file(&filler).expect("free the disk");
    assert_eq!(submit(&t.addr, &device_key(3, 102), 10_000).status, 202);
    wait_applied(&origin.admin, &device_key(3, 102));
    wait_for("the outbox to drain", Duration::from_secs(30), || {
        (outbox_len(&t.admin) == 0).then_some(())
    });
    assert_eq!(readiness(&t.addr).0, 200, "ready again once commits work");
    assert!(status_degraded(&t.admin).is_empty());

    // A restart recovers nothing of the refused operation, so nothing forwards it.
    t.kill9();
    let t = tower(d, 1, &origin.addr, &extra);
    wait_for(
        "the restarted tower to forward",
        Duration::from_secs(30),
        || (outbox_len(&t.admin) == 0).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        last_recovered_outbox(&t.log_text()),
        0,
        "the restarted tower recovered an operation it had refused:\n{}",
        plain(&t.log_text())
    );
    assert!(
        !applied_at_origin(&origin.admin, &device_key(3, 101)),
        "the origin applied an operation the tower answered 503"
    );
    assert_eq!(contributed(&origin.admin), 10_100);
    // The device retries with the same key, as told: applied once.
    assert_eq!(submit(&t.addr, &device_key(3, 101), 1_000).status, 202);
    wait_applied(&origin.admin, &device_key(3, 101));
    assert_eq!(contributed(&origin.admin), 11_100);
}

/// Item 3 with the admin fault: the same contract when the fsync itself fails.
#[test]
fn an_operation_refused_by_a_failed_fsync_is_never_stored_later() {
    // Goal: an injected fsync failure behaves like a real one: the 503 says "outcome
    // unknown", and the next successful fsync does not commit the refused operation (so
    // a restart does not forward it).
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let origin = origin(d, &[]);
    let mut t = tower(d, 1, &origin.addr, &[]);
    chaos(&t.admin, "POST", r#"{"kind":"fsync-failure","count":1}"#);
    let refused = submit(&t.addr, &device_key(3, 201), 1_000);
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(
        refused.text().contains("outcome unknown"),
        "{}",
        refused.text()
    );
    assert_eq!(submit(&t.addr, &device_key(3, 202), 20).status, 202);
    wait_applied(&origin.admin, &device_key(3, 202));
    // Confirmed and deleted at the tower too, so that a restart has nothing to recover.
    wait_for("the outbox to drain", Duration::from_secs(30), || {
        (outbox_len(&t.admin) == 0).then_some(())
    });
    t.kill9();
    let t = tower(d, 1, &origin.addr, &[]);
    wait_for(
        "the restarted tower to forward",
        Duration::from_secs(30),
        || (outbox_len(&t.admin) == 0).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        last_recovered_outbox(&t.log_text()),
        0,
        "the restarted tower recovered an operation it had refused"
    );
    assert!(
        !applied_at_origin(&origin.admin, &device_key(3, 201)),
        "the origin applied an operation the tower answered 503"
    );
    assert_eq!(contributed(&origin.admin), 20);
}

/// `sovereign origin publish`'s exit status and stderr.
fn try_publish(origin_admin: &str, dir: &Path, item: &str, bytes: &[u8]) -> (bool, String) {
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
            "P2",
            "--token",
            OPERATOR,
        ])
        .arg(&file)
        .output()
        .expect("publish runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What a server's chunk store takes on its disk: its pack files under `data/packs`,
/// count and bytes.
fn chunk_store_size(data: &Path) -> (u64, u64) {
    let mut n = (0, 0);
    for f in std::fs::read_dir(data.join("packs")).expect("packs dir") {
        let m = f.expect("entry").metadata().expect("metadata");
        n.0 += 1;
        n.1 += m.len();
    }
    n
}

/// Item 4 as reported: the origin's disk is really full.
#[test]
fn a_publish_that_fails_on_a_full_disk_leaves_nothing_and_the_origin_goes_on() {
    // Goal: the chunk bytes a failed publish wrote are taken back at once, so the origin
    // is not wedged by its own garbage: later publishes and tower forwards succeed
    // without anyone deleting files.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let Some(_fs) = Tmpfs::mount(&d.join("origin"), "8m", "full-disk publish") else {
        return;
    };
    let data = d.join("origin");
    let origin = origin(d, &["--storage-free-min-mib", "0"]);
    let (ok, err) = try_publish(&origin.admin, d, "before", &content(1, 200_000));
    assert!(ok, "{err}");
    let before = chunk_store_size(&data);
    let (ok, err) = try_publish(&origin.admin, d, "big", &content(2, 12_000_000));
    assert!(!ok, "a 12 MB publish fit on an 8 MiB disk");
    assert!(
        err.contains("503") && err.contains("storage failed"),
        "{err}"
    );
    let after = chunk_store_size(&data);
    assert_eq!(
        after, before,
        "chunk bytes left behind by the failed publish (pack files, bytes)"
    );
    // One failed write stops the publish: the writes after it (written together on
    // several threads, all failing on the full disk) are neither reported nor counted.
    assert_eq!(
        metric(
            &origin.addr,
            "sovereign_storage_errors_total",
            &[("op", "write")]
        ),
        Some(1.0)
    );
    // And the failure is what readiness reports until a write succeeds again: nothing of
    // the failed publish (its catalog entry) was written after its failed chunk.
    let (_, reasons) = readiness(&origin.addr);
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("storage write failing")),
        "{reasons:?}"
    );
    // Not wedged: the next publish and a tower's forward both succeed.
    let (ok, err) = try_publish(&origin.admin, d, "after", &content(3, 200_000));
    assert!(ok, "the origin is wedged after a failed publish: {err}");
    let t = tower(d, 1, &origin.addr, &[]);
    assert_eq!(submit(&t.addr, &device_key(3, 301), 300).status, 202);
    wait_applied(&origin.admin, &device_key(3, 301));
    wait_for(
        "the tower to serve `after`",
        Duration::from_secs(30),
        || {
            get(&t.addr, "/v1/items/after")
                .ok()
                .filter(|r| r.status == 200)
        },
    );
    assert_eq!(readiness(&origin.addr).0, 200);
}

/// What a crash between puts and their commit leaves: `n` chunks nothing names, appended
/// to `data`'s chunk store and flushed (the server is down). Their hashes and bytes.
fn plant_strays(data: &Path, seed: u64, n: usize) -> (Vec<String>, u64) {
    let strays: Vec<(sovereign_logic::content::ChunkHash, Vec<u8>)> = (0..n)
        .map(|i| {
            let b = content(seed * 1000 + i as u64, 5_000 + i);
            (sovereign_logic::content::ChunkHash::of(&b), b)
        })
        .collect();
    let store = sovereign_store::packs::PackDir::open(data).expect("open the chunk store");
    let batch: Vec<_> = strays.iter().map(|(h, b)| (*h, &b[..])).collect();
    for r in store.put_many(&batch) {
        r.expect("stray chunk");
    }
    store.sync().expect("flush the strays");
    let bytes = strays.iter().map(|(_, b)| b.len() as u64).sum();
    (strays.iter().map(|(h, _)| h.to_hex()).collect(), bytes)
}

/// Item 4, the crash case: chunks a publish or a sync wrote before a crash, never named
/// by a committed entry, are collected when the server starts again.
#[test]
fn chunks_no_entry_names_are_collected_when_origin_and_tower_start() {
    // Goal: start-up garbage collection removes exactly the unreferenced chunks on both
    // servers (and logs how many and how many bytes), giving their disk space back; what
    // entries name is kept and served.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut origin = origin(d, &[]);
    let data = content(9, 300_000);
    publish(&origin.admin, d, "kept", "P1", &data);
    let mut t = tower(d, 1, &origin.addr, &[]);
    wait_for("the tower to serve `kept`", Duration::from_secs(30), || {
        get(&t.addr, "/v1/items/kept")
            .ok()
            .filter(|r| r.status == 200)
    });
    let origin_kept = chunk_store_size(&d.join("origin"));
    let tower_kept = chunk_store_size(&d.join("tower-1"));
    origin.kill9();
    t.kill9();
    let (o_strays, o_bytes) = plant_strays(&d.join("origin"), 1, 40);
    let (t_strays, t_bytes) = plant_strays(&d.join("tower-1"), 2, 25);

    let origin = origin_at(d, &origin.addr.clone(), &origin.admin.clone(), &[]);
    assert_eq!(chunk_store_size(&d.join("origin")), origin_kept);
    assert!(
        collected(&origin.log_text(), 40, o_bytes),
        "no garbage-collection line with files=40 bytes={o_bytes}:\n{}",
        origin.log_text()
    );
    let r = tower_get(&origin.addr, &format!("/v1/chunks/{}", o_strays[0]), d, 1).expect("chunk");
    assert_eq!(r.status, 404, "a collected chunk is still served");

    let t = tower(d, 1, &origin.addr, &[]);
    assert_eq!(chunk_store_size(&d.join("tower-1")), tower_kept);
    assert!(
        collected(&t.log_text(), 25, t_bytes),
        "no garbage-collection line with files=25 bytes={t_bytes}:\n{}",
        t.log_text()
    );
    let r = get(&t.addr, &format!("/v1/chunks/{}", t_strays[0])).expect("chunk");
    assert_eq!(r.status, 404);
    let served = wait_for("`kept` after the restarts", Duration::from_secs(30), || {
        get(&t.addr, "/v1/items/kept")
            .ok()
            .filter(|r| r.status == 200)
    });
    assert_eq!(served.body, data);
}

/// Item 7 with the admin faults, on both servers.
#[test]
fn storage_failures_show_in_readiness_metrics_and_status() {
    // Goal: a store that refuses writes (disk-full fault) or fails an fsync makes the
    // server unready with reasons, counts the errors, zeroes the tower's steady gauge and
    // names the reasons in /admin/status; once the store works again, all of it clears.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let origin = origin(d, &[]);
    let t = tower(d, 1, &origin.addr, &[]);
    wait_for("the tower to be steady", Duration::from_secs(60), || {
        (metric(&t.addr, "sovereign_tower_steady", &[]) == Some(1.0)).then_some(())
    });
    assert_eq!(readiness(&t.addr).0, 200);
    assert!(metric(&t.addr, "sovereign_storage_free_bytes", &[]).is_some_and(|v| v > 0.0));

    chaos(&t.admin, "POST", r#"{"kind":"disk-full"}"#);
    let r = submit(&t.addr, &device_key(3, 401), 5);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("not stored"), "{}", r.text());
    let (code, reasons) = readiness(&t.addr);
    assert_eq!(code, 503);
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("storage write failing"))
            && reasons.iter().any(|r| r.starts_with("disk full")),
        "{reasons:?}"
    );
    assert_eq!(heads(&status_degraded(&t.admin)), heads(&reasons));
    assert_eq!(metric(&t.addr, "sovereign_tower_steady", &[]), Some(0.0));
    assert!(
        metric(
            &t.addr,
            "sovereign_storage_errors_total",
            &[("op", "write")]
        )
        .is_some_and(|v| v >= 1.0)
    );
    chaos(&t.admin, "DELETE", "");
    assert_eq!(submit(&t.addr, &device_key(3, 401), 5).status, 202);
    assert_eq!(readiness(&t.addr), (200, vec![]));
    assert!(status_degraded(&t.admin).is_empty());
    wait_for("steady again", Duration::from_secs(10), || {
        (metric(&t.addr, "sovereign_tower_steady", &[]) == Some(1.0)).then_some(())
    });

    // The origin: a failed fsync makes it unready until a commit works again.
    chaos(
        &origin.admin,
        "POST",
        r#"{"kind":"fsync-failure","count":1}"#,
    );
    let (ok, _) = try_publish(&origin.admin, d, "first", &content(4, 50_000));
    assert!(!ok, "a publish through a failing fsync succeeded");
    let (code, reasons) = readiness(&origin.addr);
    assert_eq!(code, 503);
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("storage fsync failing")),
        "{reasons:?}"
    );
    assert_eq!(heads(&status_degraded(&origin.admin)), heads(&reasons));
    assert!(
        metric(
            &origin.addr,
            "sovereign_storage_errors_total",
            &[("op", "fsync")]
        )
        .is_some_and(|v| v >= 1.0)
    );
    let (ok, err) = try_publish(&origin.admin, d, "first", &content(4, 50_000));
    assert!(ok, "{err}");
    assert_eq!(readiness(&origin.addr).0, 200);
}

/// Item 7, a parked task: storage failures that spend the fetch task's restart budget.
#[test]
fn a_parked_fetch_task_makes_the_tower_unready() {
    // Goal: when chunk writes keep failing, the supervisor parks the fetch task, and the
    // tower says so in /readyz and /admin/status (not only in task_restarts).
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let origin = origin(d, &[]);
    let t = tower(d, 1, &origin.addr, &[]);
    chaos(&t.admin, "POST", r#"{"kind":"disk-full"}"#);
    publish(&origin.admin, d, "library", "P2", &content(5, 2_000_000));
    let reasons = wait_for("the fetch task to park", Duration::from_secs(120), || {
        let (code, reasons) = readiness(&t.addr);
        (code == 503
            && reasons
                .iter()
                .any(|r| r.starts_with("sync task fetch parked")))
        .then_some(reasons)
    });
    assert!(
        status_degraded(&t.admin)
            .iter()
            .any(|r| r.starts_with("sync task fetch parked")),
        "{reasons:?}"
    );
    assert_eq!(metric(&t.addr, "sovereign_tower_steady", &[]), Some(0.0));
    assert!(
        metric(&t.addr, "sovereign_task_parks_total", &[("task", "fetch")])
            .is_some_and(|v| v >= 1.0),
        "the park is counted"
    );
}

#[test]
fn an_origin_that_keeps_failing_is_not_rebuilt_on_every_request() {
    // Goal: a rebuild reads the whole store, so a failing disk must not turn every request
    // into one: the first failure is rebuilt at once, the next in a row waits (2 s, then
    // longer) and requests meanwhile get "storage failed" without a rebuild; once the
    // disk works, the origin comes back by itself.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let origin = origin(d, &[]);
    let restarted = |o: &Server| {
        plain(&o.log_text())
            .matches("origin restarted from its durable state")
            .count()
    };
    chaos(&origin.admin, "POST", r#"{"kind":"disk-full"}"#);
    // The first failure is rebuilt at once, the second stops the origin for 2 s, the
    // third comes inside those 2 s.
    for n in 0..3 {
        let (ok, err) = try_publish(&origin.admin, d, &format!("p{n}"), &content(n, 20_000));
        assert!(!ok && err.contains("storage failed"), "publish {n}: {err}");
    }
    let log = plain(&origin.log_text());
    assert_eq!(restarted(&origin), 1, "{log}");
    assert!(
        log.contains("rebuilding it later") && log.contains("failures_in_a_row=2"),
        "{log}"
    );
    chaos(&origin.admin, "DELETE", "");
    let started = Instant::now();
    wait_for(
        "a publish after the disk works",
        Duration::from_secs(20),
        || {
            try_publish(&origin.admin, d, "after", &content(9, 20_000))
                .0
                .then_some(())
        },
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(restarted(&origin), 2, "{}", plain(&origin.log_text()));
}
