//! Issue 11, items 1 and 8, against real processes: an origin and a tower on loopback and
//! the `sovereign device` client, as a hostile user tried them.
//!
//! - Two phones that both use the default device number no longer share keys: each state
//!   directory generates its own identity, and both contributions are applied.
//! - Another device's key (even a guessed one) is refused with 403 and stores nothing.
//! - A key reused with another body after the origin confirmed it is 422, not 202 and a
//!   silent drop.
//! - Operations the origin would reject (amount 0, above the per-operation limit) are 422
//!   at the edge, naming the field.
//! - A conflict found later at the origin reaches the device (`device status`).
//!
//! Not covered: the tower ↔ origin trust boundary (`trust.rs`), resource limits.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;
use support::*;

fn sovereign(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sovereign"))
        .args(args)
        .env_remove("SOVEREIGN_DEVICE_STATE")
        .output()
        .expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `sovereign device submit` a contribution from the device in `state`.
fn device_contribute(tower: &str, state: &Path, community: &str, amount: &str) -> Output {
    sovereign(&[
        "device",
        "submit",
        "--tower",
        &format!("http://{tower}"),
        "--state",
        state.to_str().unwrap(),
        "--type",
        "contribution",
        "--community",
        community,
        "--nation",
        "ke",
        "--amount-minor",
        amount,
    ])
}

fn ledger_community(origin_admin: &str, community: &str) -> Option<u64> {
    let l = admin_get(origin_admin, "/admin/ledger", VIEWER)
        .ok()?
        .json();
    l["communities"][community].as_u64()
}

fn raw_submit(tower: &str, device: u32, key: &str, body: &str) -> Resp {
    submit_op(tower, device, key, body).expect("the tower answers")
}

#[test]
fn two_phones_with_the_default_device_number_both_have_their_contributions_applied() {
    // Goal: the reported loss — phoneA and phoneB, both `--device 1` (the default), got
    // the same key `1:00000001`; phoneB's contribution was acknowledged and dropped. Now
    // each has its own identity, both are applied, and `device status` says so.
    let d = tempfile::tempdir().unwrap();
    let origin = origin(d.path(), &[]);
    let tower = tower(d.path(), 1, &origin.addr, &[]);
    let (a, b) = (d.path().join("phoneA"), d.path().join("phoneB"));
    let mut keys = Vec::new();
    for (state, community, amount) in [(&a, "phoneA", "1000"), (&b, "phoneB", "2000")] {
        let o = device_contribute(&tower.addr, state, community, amount);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let out = text(&o.stdout);
        assert!(out.contains("acknowledged: durable at the tower"), "{out}");
        keys.push(out.split_whitespace().next().unwrap().to_string());
    }
    assert_ne!(keys[0], keys[1], "two phones, two keys");
    for (community, share) in [("phoneA", 500), ("phoneB", 1000)] {
        let got = wait_for(
            &format!("{community}'s contribution in the ledger"),
            Duration::from_secs(30),
            || ledger_community(&origin.admin, community),
        );
        assert_eq!(got, share, "50% of the contribution goes to {community}");
    }
    // And each phone learns that its operation was applied.
    for state in [&a, &b] {
        let out = wait_for("device status: applied", Duration::from_secs(30), || {
            let o = sovereign(&[
                "device",
                "status",
                "--tower",
                &format!("http://{}", tower.addr),
                "--state",
                state.to_str().unwrap(),
            ]);
            let out = text(&o.stdout);
            (o.status.code() == Some(0) && out.contains("applied at the origin")).then_some(out)
        });
        assert!(!out.contains("NOT APPLIED"), "{out}");
    }
}

#[test]
fn another_devices_key_and_a_reused_key_are_refused_and_invalid_operations_stop_at_the_edge() {
    // Goal: items 1 and 8 — a guessed key of another device is 403 and stores nothing; a
    // key reused with another body after the origin confirmed it is 422 (the tower
    // remembers); amount 0 and an amount above the limit are 422 naming the field.
    let d = tempfile::tempdir().unwrap();
    let origin = origin(d.path(), &[]);
    let tower = tower(d.path(), 1, &origin.addr, &[]);
    let body = |community: &str, amount: u64| {
        format!(
            r#"{{"op":{{"type":"contribution","community":"{community}","nation":"ke","amount_minor":{amount}}}}}"#
        )
    };
    // Device 9 tries device 7's next key.
    let victim_key = device_key(7, 1);
    let r = raw_submit(&tower.addr, 9, &victim_key, &body("attacker", 5_000_000));
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["field"], "Idempotency-Key");
    // The victim's own operation under that key goes through and is applied.
    let r = raw_submit(&tower.addr, 7, &victim_key, &body("victim", 1_000));
    assert_eq!(r.status, 202, "{}", r.text());
    wait_for("the victim applied", Duration::from_secs(30), || {
        ledger_community(&origin.admin, "victim")
    });
    assert_eq!(ledger_community(&origin.admin, "attacker"), None);
    // Confirmed (it left the outbox): the same key with another body is 422, the same
    // body a replay.
    wait_for("the outbox empties", Duration::from_secs(30), || {
        let r = admin_get(&tower.admin, "/admin/outbox", VIEWER).ok()?;
        r.json()["keys"].as_array()?.is_empty().then_some(())
    });
    let r = raw_submit(&tower.addr, 7, &victim_key, &body("victim", 2_000));
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["field"], "Idempotency-Key");
    let r = raw_submit(&tower.addr, 7, &victim_key, &body("victim", 1_000));
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
    // Invalid at the edge: nothing acknowledged that the origin would reject.
    for (n, amount) in [(2u64, 0u64), (3, u64::MAX)] {
        let r = raw_submit(&tower.addr, 7, &device_key(7, n), &body("victim", amount));
        assert_eq!(r.status, 422, "{}", r.text());
        assert_eq!(r.json()["field"], "op.amount_minor", "{}", r.text());
    }
    // The refusals are counted.
    let m = get(&tower.addr, "/metrics").unwrap().text();
    for (reason, n) in [("not-owner", 1), ("conflict", 1), ("invalid", 2)] {
        let line =
            format!("sovereign_ops_refused_total{{reason=\"{reason}\",tower=\"tower-1\"}} {n}");
        assert!(m.lines().any(|l| l == line), "{line} not in:\n{m}");
    }
    // And the ledger holds the victim's 1,000 once.
    assert_eq!(ledger_community(&origin.admin, "victim"), Some(500));
}
