//! The origin on PostgreSQL, as real processes: `sovereign origin serve --postgres` keeps
//! its catalog and apply log (the ledger's source) in a real PostgreSQL server. A tower
//! syncs from it and forwards operations; the origin is killed with SIGKILL and restarted
//! on the same database: the catalog, the applied operations and the ledger are all still
//! there, and replays of the same keys are not applied twice.
//!
//! Needs `SOVEREIGN_TEST_PG` (a libpq connection string; `.ci/run` starts a throwaway
//! server with `scripts/pg-test-server.sh`). Without it the test is skipped loudly — or
//! fails when `CI` is set.
//!
//! The second test runs PostgreSQL in a Docker container (testcontainers; the image of
//! `sovereign_lab::containers::ensure_postgres_image` with the host's PostgreSQL mounted
//! read-only) and kills the container mid-run: nothing acknowledged is lost, nothing is
//! applied twice. Needs a Docker engine (skipped loudly without one, failed under `CI`).

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

#[test]
fn an_origin_on_postgres_in_a_container_keeps_every_acknowledged_operation_when_it_is_killed() {
    // Goal: PostgreSQL under the origin dies (SIGKILL to its container) with operations
    // in flight and more acknowledged by the tower while it is down; once the container
    // is started again, every acknowledged operation is applied exactly once (the ledger
    // counts and sums them), and replays of applied keys change nothing.
    use testcontainers::core::{AccessMode, Mount, WaitFor};
    use testcontainers::runners::SyncRunner;
    use testcontainers::{GenericImage, ImageExt};
    if !docker_here("an_origin_on_postgres_in_a_container_keeps_every_acknowledged_operation") {
        return;
    }
    let engine = sovereign_lab::containers::Engine::connect().expect("Docker engine");
    let image = sovereign_lab::containers::ensure_postgres_image(&engine).expect("image");
    let (name, tag) = image.split_once(':').expect("name:tag");
    let port = free_port();
    let bin = sovereign_lab::database::bindir()
        .expect("PostgreSQL under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
        .display()
        .to_string();
    let data = "/var/lib/postgresql/data";
    // initdb on the first start only: a restart of the same container finds its data.
    let script = format!(
        "[ -f {data}/PG_VERSION ] || {bin}/initdb -D {data} -U postgres -A trust >/dev/null; \
         exec {bin}/postgres -D {data} -p {port} -k /tmp -c listen_addresses=127.0.0.1"
    );
    let pg = GenericImage::new(name, tag)
        .with_wait_for(WaitFor::message_on_stderr(
            "database system is ready to accept connections",
        ))
        .with_network("host")
        .with_mount(Mount::bind_mount("/usr", "/usr").with_access_mode(AccessMode::ReadOnly))
        .with_user(sovereign_lab::containers::POSTGRES_USER)
        .with_cmd(["/bin/sh", "-c", &script])
        .with_startup_timeout(Duration::from_secs(120))
        .start()
        .expect("the PostgreSQL container starts");
    let db = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let origin = origin(d, &["--postgres", &db]);
    let t = tower(d, 1, &origin.addr, &[]);
    let amounts = [1001u64, 2002, 3003, 4004, 5005, 6006];
    for (i, amount) in amounts[..3].iter().enumerate() {
        assert_eq!(submit(&t.addr, &device_key(9, i as u64), *amount), 202);
    }
    wait_for("three operations applied", Duration::from_secs(30), || {
        (ledger(&origin.admin)["applied"] == 3).then_some(())
    });
    engine.kill(pg.id(), "SIGKILL").expect("kill the container");
    wait_for("PostgreSQL to be dead", Duration::from_secs(10), || {
        (!pg.is_running().unwrap_or(true)).then_some(())
    });
    // PostgreSQL is down: the tower still acknowledges (durably, in its outbox).
    for (i, amount) in amounts.iter().enumerate().skip(3) {
        assert_eq!(submit(&t.addr, &device_key(9, i as u64), *amount), 202);
    }
    std::thread::sleep(Duration::from_secs(2));
    pg.start().expect("the PostgreSQL container starts again");
    wait_for(
        "PostgreSQL to accept connections",
        Duration::from_secs(60),
        || postgres::Client::connect(&db, postgres::NoTls).ok(),
    );
    wait_for(
        "all six operations applied",
        Duration::from_secs(60),
        || {
            admin_get(&origin.admin, "/admin/ledger", VIEWER)
                .ok()
                .filter(|r| r.status == 200 && r.json()["applied"] == 6)
        },
    );
    // Replays of applied keys (one from before the kill, one from during it): answered,
    // not applied again.
    assert_eq!(submit(&t.addr, &device_key(9, 0), amounts[0]), 202);
    assert_eq!(submit(&t.addr, &device_key(9, 4), amounts[4]), 202);
    std::thread::sleep(Duration::from_secs(3));
    let l = ledger(&origin.admin);
    let total: u64 = amounts.iter().sum();
    assert_eq!(l["applied"], 6, "{l}");
    assert_eq!(
        l["contributed_minor"],
        total.to_string(),
        "replayed or lost: {l}"
    );
    assert_eq!(l["conserved"], true, "{l}");
    let id = pg.id().to_string();
    drop(t);
    drop(origin);
    pg.rm().expect("remove the container");
    assert!(
        engine.remove(&id).is_ok(),
        "the container is gone (removing it again is a no-op)"
    );
}
