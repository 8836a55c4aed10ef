//! The origin on PostgreSQL, as real processes: `sovereign origin serve --postgres` keeps
//! its catalog and apply log (the ledger's source) in a real PostgreSQL server. A tower
//! syncs from it and forwards operations; the origin is killed with SIGKILL and restarted
//! on the same database: the catalog, the applied operations and the ledger are all still
//! there, and replays of the same keys are not applied twice.
//!
//! Needs `SOVEREIGN_TEST_PG` (a libpq connection string; `.ci/run` starts a throwaway
//! server with `scripts/pg-test-server.sh`). Without it the test is skipped loudly — or
//! fails when `CI` is set.

// Real processes on a real clock: waiting and sleeping are the point here.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use sovereign_logic::content::ChunkHash;
use std::time::Duration;
use support::*;

fn conninfo() -> Option<String> {
    match std::env::var("SOVEREIGN_TEST_PG") {
        Ok(c) if !c.trim().is_empty() => Some(c),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("SOVEREIGN_TEST_PG is not set but CI is: CI must run the PostgreSQL tests");
            }
            eprintln!(
                "SKIPPED origin_postgres: set SOVEREIGN_TEST_PG \
                 (eval \"$(scripts/pg-test-server.sh start)\")"
            );
            None
        }
    }
}

/// A fresh database for this test, so that runs never see each other's rows.
fn fresh_database(base: &str) -> String {
    let name = format!("sovereign_e2e_{}", std::process::id());
    let mut client =
        postgres::Client::connect(base, postgres::NoTls).expect("connect to PostgreSQL");
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .expect("drop");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create database");
    format!("{base} dbname={name}")
}

fn submit(tower: &str, key: &str, amount: u64) -> u16 {
    contribute(tower, 9, key, "ngong", amount)
}

fn ledger(origin_admin: &str) -> serde_json::Value {
    admin_get(origin_admin, "/admin/ledger", VIEWER)
        .expect("ledger")
        .json()
}

#[test]
fn an_origin_on_postgres_survives_kill_9_with_its_catalog_and_ledger() {
    let Some(base) = conninfo() else { return };
    let db = fresh_database(&base);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut origin = origin(d, &["--postgres", &db]);
    let bulletin = content(7, 200_000);
    publish(&origin.admin, d, "bulletin", "P1", &bulletin);
    let t = tower(d, 1, &origin.addr, &[]);
    for (i, amount) in [1001u64, 2002, 3003].iter().enumerate() {
        assert_eq!(submit(&t.addr, &device_key(9, i as u64), *amount), 202);
    }
    wait_for(
        "the tower to serve the bulletin",
        Duration::from_secs(30),
        || {
            get(&t.addr, "/v1/items/bulletin")
                .ok()
                .filter(|r| r.status == 200)
        },
    );
    wait_for("three operations applied", Duration::from_secs(30), || {
        (ledger(&origin.admin)["applied"] == 3).then_some(())
    });

    let id = get(&origin.addr, "/healthz").expect("healthz");
    let id = id
        .header("x-sovereign-origin")
        .expect("origin id")
        .to_string();
    origin.kill9();
    let origin = support::origin_at(d, &origin.addr, &origin.admin, &["--postgres", &db]);
    // The identity is kept with the data (in PostgreSQL): the same origin came back, and
    // the tower goes on syncing from it.
    let again = get(&origin.addr, "/healthz").expect("healthz");
    assert_eq!(again.header("x-sovereign-origin"), Some(id.as_str()));
    let l = ledger(&origin.admin);
    assert_eq!(l["applied"], 3, "{l}");
    assert_eq!(l["contributed_minor"], "6006", "{l}");
    assert_eq!(l["conserved"], true);
    // The catalog came back from PostgreSQL: the tower can still fetch a new version's
    // chunks and the old entry is there.
    let cat = tower_get(&origin.addr, "/v1/catalog?since=0", d, 1)
        .expect("catalog")
        .json();
    assert_eq!(cat["entries"].as_array().map(Vec::len), Some(1), "{cat}");
    publish(&origin.admin, d, "bulletin", "P1", &content(8, 200_000));
    let want = ChunkHash::of(&content(8, 200_000)).to_hex();
    wait_for(
        "the tower to serve version 2",
        Duration::from_secs(30),
        || {
            get(&t.addr, "/v1/items/bulletin")
                .ok()
                .filter(|r| r.status == 200 && ChunkHash::of(&r.body).to_hex() == want)
        },
    );
    // Replaying an applied key at the tower is forwarded again and answered from the
    // apply log: no second effect.
    assert_eq!(submit(&t.addr, &device_key(9, 0), 1001), 202);
    assert_eq!(submit(&t.addr, &device_key(9, 3), 4004), 202);
    wait_for(
        "the fourth operation applied",
        Duration::from_secs(30),
        || (ledger(&origin.admin)["applied"] == 4).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(2));
    let l = ledger(&origin.admin);
    assert_eq!(
        l["contributed_minor"], "10010",
        "replayed key applied twice: {l}"
    );
}
