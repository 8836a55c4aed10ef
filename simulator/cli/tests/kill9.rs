//! Real processes on loopback: an origin and two towers (`sovereign origin serve`,
//! `sovereign tower serve`), content of every class published with
//! `sovereign origin publish`, and one tower killed with SIGKILL mid-sync ten times in a
//! row. After each restart the tower must serve no byte that fails its hash, must still
//! hold (or have delivered) every operation it acknowledged, and in the end must finish
//! the sync; the origin must have applied every acknowledged operation exactly once (the
//! ledger's total is the sum of the distinct amounts). Also here: the checks can fail
//! (lying fsync, unverified reads), one read of a rotten item finds every bad chunk, and a
//! restarted tower serves what it stored without fetching it again.

// Real processes on a real clock: waiting and sleeping are the point here.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use sovereign_logic::content::ChunkHash;
use std::collections::BTreeMap;
use std::time::Duration;
use support::*;

/// Every item the tower lists must come back byte-exact and hash-verified (or be
/// refused); returns the catalog as item → (version, sha256), or what was wrong.
fn check_served(tower: &str) -> Result<BTreeMap<String, (u64, String)>, String> {
    let cat = get(tower, "/v1/catalog").expect("catalog").json();
    let mut out = BTreeMap::new();
    for m in cat["items"].as_array().expect("items") {
        let id = m["item"].as_str().unwrap().to_string();
        let sha = m["sha256"].as_str().unwrap().to_string();
        let r = get(tower, &format!("/v1/items/{id}")).expect("item");
        match r.status {
            200 => {
                // The answer must be true to itself: the bytes hash to the version its
                // ETag names.
                let got = ChunkHash::of(&r.body).to_hex();
                if r.header("etag") != Some(format!("\"{got}\"").as_str()) {
                    return Err(format!(
                        "{id}: served bytes hash to {got}, the answer's etag is {:?} \
                         (catalog: {sha})",
                        r.header("etag")
                    ));
                }
                // And name the version the catalog listed — or a newer one the tower
                // finished syncing between the catalog read and the item read, which the
                // catalog then lists.
                if got != sha && current_sha(tower, &id).as_deref() != Some(got.as_str()) {
                    return Err(format!(
                        "{id}: served bytes hash to {got}, manifest says {sha}, and the \
                         catalog now says {:?}",
                        current_sha(tower, &id)
                    ));
                }
            }
            // A chunk found corrupt on read is refused (and refetched), never served; the
            // read rate limit refuses this test's tight polling now and then (429).
            // Refusals are never corrupt bytes.
            503 | 429 => {}
            s => return Err(format!("{id}: unexpected status {s}: {}", r.text())),
        }
        for c in m["chunks"].as_array().unwrap().iter().take(3) {
            let h = c["sha256"].as_str().unwrap();
            let r = get(tower, &format!("/v1/chunks/{h}")).expect("chunk");
            if r.status == 200 && ChunkHash::of(&r.body).to_hex() != h {
                return Err(format!("chunk {h}: served bytes differ"));
            }
        }
        out.insert(id, (m["version"].as_u64().unwrap(), sha));
    }
    Ok(out)
}

/// The sha256 the tower's catalog lists for `item` now.
fn current_sha(tower: &str, item: &str) -> Option<String> {
    let cat = get(tower, "/v1/catalog").expect("catalog").json();
    cat["items"]
        .as_array()?
        .iter()
        .find(|m| m["item"] == item)
        .and_then(|m| m["sha256"].as_str().map(str::to_string))
}

/// Acknowledged operations neither in the tower's outbox nor applied at the origin.
fn lost(tower_admin: &str, origin_admin: &str, acked: &BTreeMap<String, u64>) -> Vec<String> {
    let held = outbox(tower_admin);
    acked
        .keys()
        .filter(|k| !held.contains(k) && !applied_at_origin(origin_admin, k))
        .cloned()
        .collect()
}

fn submit(tower: &str, key: &str, amount: u64) -> u16 {
    contribute(tower, 7, key, "kibera", amount)
}

fn outbox(tower_admin: &str) -> Vec<String> {
    let r = admin_get(tower_admin, "/admin/outbox", VIEWER).expect("outbox");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

fn applied_at_origin(origin_admin: &str, key: &str) -> bool {
    let r = admin_get(origin_admin, &format!("/admin/ops/{key}"), VIEWER).expect("ops");
    match r.status {
        200 => true,
        404 => false,
        s => panic!("origin /admin/ops: {s} {}", r.text()),
    }
}

#[test]
fn a_tower_killed_mid_sync_ten_times_loses_nothing_and_serves_nothing_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let origin = origin(d, &[]);
    // Every class; P3 large enough (6 MB, ~750 chunks) that a kill lands mid-sync.
    let items = [
        ("alert-cholera", "P0", 40_000usize),
        ("clinic-hours", "P1", 300_000),
        ("school-maths", "P2", 1_500_000),
        ("video-farming", "P3", 6_000_000),
    ];
    for (i, (id, p, len)) in items.iter().enumerate() {
        publish(&origin.admin, d, id, p, &content(i as u64 + 1, *len));
    }
    let other = tower(d, 2, &origin.addr, &[]);

    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    let mut pending: BTreeMap<String, u64> = BTreeMap::new();
    let mut next = 1u64;
    let mut t = tower(d, 1, &origin.addr, &[]);
    let mut killed_mid_sync = 0;
    for round in 0..10u64 {
        // A new version of the bulk item each round, so that there is always a sync to
        // interrupt (its chunks differ, as a re-encoded video's would).
        publish(
            &origin.admin,
            d,
            "video-farming",
            "P3",
            &content(100 + round, 3_000_000),
        );
        // Let it sync for a while (different each round), submitting operations.
        for _ in 0..3 {
            let key = device_key(7, next);
            pending.insert(key, next * 100 + 1);
            next += 1;
        }
        for (key, amount) in pending.clone() {
            if submit(&t.addr, &key, amount) == 202 {
                pending.remove(&key);
                acked.insert(key, amount);
            }
        }
        // Kill at a different point of the sync each round: at the first status poll,
        // from poll `2 * round` on, that shows the sync under way (fixed sleeps missed it
        // on a loaded machine, where the sync's speed varies), or once it is over. Polls
        // are counted, not timed (no wall clock in tests: clippy.toml).
        let mut seen = false;
        for poll in 0..500u64 {
            let status = admin_get(&t.admin, "/admin/status", VIEWER)
                .expect("status")
                .json();
            let syncing = status["items_pending"].as_u64().unwrap_or(0) > 0
                || status["in_flight"].as_u64().unwrap_or(0) > 0;
            if syncing && poll >= 2 * round {
                killed_mid_sync += 1;
                break;
            }
            if seen && !syncing {
                break;
            }
            seen |= syncing;
            std::thread::sleep(Duration::from_millis(10));
        }
        t.kill9();
        t = tower(d, 1, &origin.addr, &[]);
        // After the restart: nothing corrupt served; every acknowledged operation is
        // still in the outbox or already applied at the origin.
        if let Err(e) = check_served(&t.addr) {
            panic!("round {round}: {e}");
        }
        let lost = lost(&t.admin, &origin.admin, &acked);
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged operations lost: {lost:?}\n{}",
            t.log_text()
        );
    }
    assert!(
        killed_mid_sync >= 5,
        "only {killed_mid_sync} of 10 kills landed mid-sync; the test would prove little"
    );
    eprintln!("{killed_mid_sync} of 10 kills landed mid-sync");
    // Unacknowledged submissions are retried with the same key, as a device would.
    for (key, amount) in std::mem::take(&mut pending) {
        wait_for(&format!("ack of {key}"), Duration::from_secs(20), || {
            (submit(&t.addr, &key, amount) == 202).then_some(())
        });
        acked.insert(key, amount);
    }
    // The sync finishes: both towers serve every item.
    for (name, tw) in [("tower-1", &t), ("tower-2", &other)] {
        wait_for(
            &format!("{name} to finish the sync"),
            Duration::from_secs(120),
            || {
                let served = check_served(&tw.addr).unwrap_or_else(|e| panic!("{name}: {e}"));
                (served.len() == items.len()).then_some(())
            },
        );
    }
    // Exactly once: the outbox drains and the ledger holds each amount once.
    wait_for("the outbox to drain", Duration::from_secs(60), || {
        outbox(&t.admin).is_empty().then_some(())
    });
    let ledger = admin_get(&origin.admin, "/admin/ledger", VIEWER)
        .expect("ledger")
        .json();
    let want: u64 = acked.values().sum();
    assert_eq!(
        ledger["contributed_minor"].as_str().unwrap(),
        want.to_string(),
        "the ledger must hold every acknowledged contribution exactly once"
    );
    assert_eq!(ledger["applied"].as_u64().unwrap(), acked.len() as u64);
    assert_eq!(ledger["conserved"], true);
}

fn chaos(admin: &str, body: &str) {
    let r = http(
        "POST",
        admin,
        "/admin/faults",
        &[("Authorization", &format!("Bearer {CHAOS}"))],
        body.as_bytes(),
    )
    .expect("inject");
    assert_eq!(r.status, 201, "{}", r.text());
}

/// The two checks above can fail: a lying fsync (a disk cache that ignores flushes) loses
/// acknowledged operations across a kill -9, and the planted `skip-verify` serves rotten
/// bytes — both are caught by the same functions the test above relies on.
#[test]
fn the_kill9_checks_catch_a_lying_fsync_and_unverified_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let origin = origin(d, &[]);
    publish(&origin.admin, d, "notice", "P1", &content(5, 300_000));

    // A lying fsync: every acknowledgement is a lie, and kill -9 shows it. The tower's
    // uplink leads nowhere, so the operations wait in its outbox (else they would reach
    // the origin at once and survive the lie).
    let nowhere = format!("127.0.0.1:{}", free_port());
    let mut t = tower(d, 1, &nowhere, &[]);
    chaos(&t.admin, r#"{"kind":"lying-fsync"}"#);
    let mut acked = BTreeMap::new();
    for i in 0..3u64 {
        let key = device_key(7, 1_000 + i);
        assert_eq!(submit(&t.addr, &key, 500 + i), 202);
        acked.insert(key, 500 + i);
    }
    t.kill9();
    let t = tower(d, 1, &nowhere, &[]);
    let lost = lost(&t.admin, &origin.admin, &acked);
    assert!(
        !lost.is_empty(),
        "a lying fsync must lose acknowledged operations, and the check must see it"
    );

    // skip-verify: rotten bytes on disk are served, and the check sees it. Without the
    // plant the same corruption is refused.
    for (plant, must_fail) in [(None, false), (Some("skip-verify"), true)] {
        let id = if must_fail { 3 } else { 2 };
        let extra: Vec<&str> = plant.map_or(vec![], |p| vec!["--plant", p]);
        let tw = tower(d, id, &origin.addr, &extra);
        wait_for("the notice to sync", Duration::from_secs(30), || {
            get(&tw.addr, "/v1/items/notice")
                .ok()
                .filter(|r| r.status == 200)
        });
        chaos(&tw.admin, r#"{"kind":"corrupt","count":1000}"#);
        let verdict = check_served(&tw.addr);
        assert_eq!(
            verdict.is_err(),
            must_fail,
            "plant {plant:?}: check said {verdict:?}"
        );
    }
}

/// The value of the metric sample `name` (labels included, e.g.
/// `sovereign_reads_total{outcome="corrupt",tower="tower-1"}`) in the tower's `/metrics`.
fn sample(tower: &str, name: &str) -> Option<f64> {
    let text = get(tower, "/metrics").ok()?.text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Bit rot in several chunks of one item is found by one read: that read is refused
/// (503) and reports every bad chunk of the item, so the tower quarantines and fetches
/// them all again at once — one refused read, not one per rotten chunk — and then serves
/// the item whole and verified.
#[test]
fn one_read_finds_every_rotten_chunk_of_an_item_and_the_tower_repairs_them_together() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let origin = origin(d, &[]);
    let data = content(21, 400_000);
    publish(&origin.admin, d, "atlas", "P1", &data);
    let tw = tower(d, 1, &origin.addr, &[]);
    // Wait on the manifest, not the item: a read would put the bytes in the cache.
    let chunks = wait_for("the atlas to sync", Duration::from_secs(30), || {
        let cat = get(&tw.addr, "/v1/catalog").ok()?.json();
        let m = cat["items"]
            .as_array()?
            .iter()
            .find(|m| m["item"] == "atlas")?;
        let n = m["chunks"].as_array()?.len();
        (get(&tw.addr, "/v1/items/atlas/manifest").ok()?.status == 200).then_some(n)
    });
    assert!(chunks >= 10, "{chunks} chunks: too few to show anything");
    // Exactly as many as are stored: a larger count would stay pending and rot the
    // chunks fetched again too.
    chaos(
        &tw.admin,
        &format!(r#"{{"kind":"corrupt","count":{chunks}}}"#),
    );

    let r = get(&tw.addr, "/v1/items/atlas").expect("item");
    assert_eq!(r.status, 503, "rotten bytes must not be served");
    let quarantined = wait_for(
        "every rotten chunk quarantined",
        Duration::from_secs(10),
        || {
            sample(
                &tw.addr,
                "sovereign_chunks_quarantined_total{tower=\"tower-1\"}",
            )
            .filter(|q| *q as usize >= chunks)
        },
    );
    assert_eq!(quarantined as usize, chunks, "each rotten chunk once");
    // A manifest request goes through the node, behind the step that quarantined the
    // last chunk: once it answers, reads are planned from the view that step published
    // (it counts no device read).
    let _ = get(&tw.addr, "/v1/items/atlas/manifest").expect("manifest");
    let served = wait_for("the atlas served again", Duration::from_secs(30), || {
        get(&tw.addr, "/v1/items/atlas")
            .ok()
            .filter(|r| r.status == 200)
    });
    assert_eq!(served.body, data, "the repaired item is the published one");
    let corrupt_reads = sample(
        &tw.addr,
        "sovereign_reads_total{outcome=\"corrupt\",tower=\"tower-1\"}",
    );
    assert_eq!(
        corrupt_reads,
        Some(1.0),
        "one refused read found all of them"
    );
}

/// The sum of every sample of the metric `name` (all label sets) in the tower's
/// `/metrics`, or `None` if it has none.
fn sum_samples(tower: &str, name: &str) -> Option<f64> {
    let text = get(tower, "/metrics").ok()?.text();
    let mut found = None;
    for l in text.lines() {
        let Some(rest) = l.strip_prefix(name) else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once(' ') else {
            continue;
        };
        if labels.is_empty() || labels.starts_with('{') {
            *found.get_or_insert(0.0) += value.parse::<f64>().ok()?;
        }
    }
    found
}

/// A tower restarted on its own data (start-up reads each chunk file, verifies it and
/// keeps only its length) holds what it stored: it serves the item whole and verified
/// without asking the origin for a single chunk again.
#[test]
fn a_restarted_tower_serves_its_stored_items_without_fetching_them_again() {
    // Goal: the lean start-up loses no verified chunk: after a kill -9 and restart the
    // item is served from disk and the tower's requested-bytes counter stays at 0.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let origin = origin(d, &[]);
    let data = content(33, 600_000);
    publish(&origin.admin, d, "atlas", "P1", &data);
    let requested = "sovereign_sync_requested_bytes_total";
    {
        let mut tw = tower(d, 1, &origin.addr, &[]);
        let served = wait_for("the atlas to sync", Duration::from_secs(30), || {
            get(&tw.addr, "/v1/items/atlas")
                .ok()
                .filter(|r| r.status == 200)
        });
        assert_eq!(served.body, data);
        let before = sum_samples(&tw.addr, requested).unwrap_or(0.0);
        assert!(
            before >= data.len() as f64,
            "the first run fetched the item ({before} bytes requested)"
        );
        tw.kill9();
    }
    let tw = tower(d, 1, &origin.addr, &[]);
    let served = wait_for(
        "the atlas served after restart",
        Duration::from_secs(30),
        || {
            get(&tw.addr, "/v1/items/atlas")
                .ok()
                .filter(|r| r.status == 200)
        },
    );
    assert_eq!(served.body, data, "served from disk, byte-exact");
    // Give the sync a catalog round (interval 1 s) to ask for anything it lacks.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        sum_samples(&tw.addr, requested).unwrap_or(0.0),
        0.0,
        "no chunk was fetched again after the restart"
    );
    let quarantined = sample(
        &tw.addr,
        "sovereign_chunks_quarantined_total{tower=\"tower-1\"}",
    )
    .unwrap_or(0.0);
    assert_eq!(quarantined, 0.0, "nothing quarantined");
}
