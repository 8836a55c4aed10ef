//! The proxy driven by a Toxiproxy client nobody here wrote (`toxiproxy_rust`, blocking
//! reqwest): proxies are populated, toxics added and removed through it, and each toxic's
//! effect is measured through the proxy on real loopback sockets.
//!
//! `toxiproxy_rust` has no call for toxic types outside Toxiproxy's own list and ignores
//! HTTP statuses when creating toxics, so `noop` and `loss` go through raw HTTP and every
//! creation is checked by listing the toxics back.
//!
//! These tests measure from outside, on the wall clock, what a client of the proxy sees
//! (the crate's lint asks the proxy itself for tokio's clock).
#![allow(
    clippy::disallowed_methods,
    reason = "wall-clock measurements of a client's view"
)]

mod common;

use common::*;
use sovereign_proxy::Config;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use toxiproxy_rust::client::Client;
use toxiproxy_rust::proxy::{Proxy, ProxyPack};

/// A fixture with one proxy `name` in front of `upstream`, created through the client.
fn proxied(
    f: &Fixture,
    name: &str,
    upstream: std::net::SocketAddr,
) -> (Client, Proxy, std::net::SocketAddr) {
    let client = Client::new(f.api);
    let created = client
        .populate(vec![ProxyPack::new(
            name.into(),
            "127.0.0.1:0".into(),
            upstream.to_string(),
        )])
        .unwrap();
    assert_eq!(created.len(), 1);
    let proxy = client.find_proxy(name).unwrap();
    let listen = proxy.proxy_pack.listen.parse().unwrap();
    (client, proxy, listen)
}

/// One round trip of `n` bytes through an echo; returns its duration.
fn round_trip(s: &mut TcpStream, n: usize) -> Duration {
    let data = pattern(n);
    let t = Instant::now();
    s.write_all(&data).unwrap();
    let mut got = vec![0u8; n];
    s.read_exact(&mut got).unwrap();
    let d = t.elapsed();
    assert_eq!(got, data);
    d
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn populate_list_version_reset_through_the_client() {
    // Goal: the client's populate, all, find_proxy, version, toxics and reset work on our API.
    let f = fixture(Config::default());
    let echo = f.echo();
    let client = Client::new(f.api);
    assert!(client.is_running());
    let made = client
        .populate(vec![
            ProxyPack::new("fibre".into(), "127.0.0.1:0".into(), echo.to_string()),
            ProxyPack::new("lte".into(), "127.0.0.1:0".into(), echo.to_string()),
        ])
        .unwrap();
    assert_eq!(made.len(), 2);
    let all = client.all().unwrap();
    let mut names: Vec<_> = all.keys().cloned().collect();
    names.sort();
    assert_eq!(names, ["fibre", "lte"]);
    assert!(all["fibre"].proxy_pack.enabled);
    assert_ne!(
        all["fibre"].proxy_pack.listen, "127.0.0.1:0",
        "listen is the bound address"
    );
    assert!(client.version().unwrap().contains("2.12.0"));
    let fibre = client.find_proxy("fibre").unwrap();
    fibre.with_latency("downstream".into(), 10, 0, 1.0);
    fibre.with_bandwidth("upstream".into(), 100, 0.5);
    let toxics = fibre.toxics().unwrap();
    assert_eq!(toxics.len(), 2);
    assert_eq!(toxics[0].name, "latency_downstream");
    assert_eq!(toxics[0].attributes["latency"], 10);
    assert_eq!(toxics[1].name, "bandwidth_upstream");
    assert_eq!(toxics[1].toxicity, 0.5);
    fibre.disable().unwrap();
    assert!(!client.find_proxy("fibre").unwrap().proxy_pack.enabled);
    client.reset().unwrap();
    let after = client.find_proxy("fibre").unwrap();
    assert!(after.proxy_pack.enabled);
    assert!(after.toxics().unwrap().is_empty());
    // Populating again with the same proxies changes nothing and keeps them.
    assert_eq!(
        client
            .populate(vec![ProxyPack::new(
                "lte".into(),
                "127.0.0.1:0".into(),
                echo.to_string()
            )])
            .unwrap()
            .len(),
        1
    );
    assert_eq!(client.all().unwrap().len(), 2);
    fibre.delete().unwrap();
    assert_eq!(client.all().unwrap().len(), 1);
}

/// Runs a timing check up to `attempts` times and returns at the first pass. Only upper
/// bounds on time go through here: a loaded machine can make a transfer slower than the
/// toxic asks, never faster, so bounds a toxic guarantees (a delay at least this long, a
/// rate at most this high) are asserted on every attempt and a toxic that does nothing
/// fails every attempt.
fn retry<T>(attempts: usize, mut check: impl FnMut() -> Result<T, String>) -> T {
    let mut errors = Vec::new();
    for _ in 0..attempts {
        match check() {
            Ok(v) => return v,
            Err(e) => errors.push(e),
        }
    }
    panic!("all {attempts} attempts failed: {errors:?}")
}

#[test]
fn latency_adds_its_delay_with_jitter_on_live_connections() {
    // Goal: latency 100±10 ms adds 100 ms ±10% (plus the jitter bound) to a round trip, stacks across streams, reaches an open connection, and leaves nothing behind when removed.
    let f = fixture(Config::default());
    let (_client, proxy, listen) = proxied(&f, "lat", f.echo());
    let mut s = connect(listen);
    let base = median((0..5).map(|_| round_trip(&mut s, 100)).collect());
    proxy.with_latency("downstream".into(), 100, 10, 1.0);
    assert_eq!(proxy.toxics().unwrap().len(), 1);
    retry(3, || {
        let samples: Vec<Duration> = (0..5).map(|_| round_trip(&mut s, 100)).collect();
        for d in &samples {
            let added = d.saturating_sub(base);
            assert!(
                added >= Duration::from_millis(80),
                "added {added:?} < 100 - 10 (jitter) - 10%"
            );
        }
        let added = median(samples).saturating_sub(base);
        if added <= Duration::from_millis(120) {
            Ok(())
        } else {
            Err(format!("added {added:?} > 100 + 10 (jitter) + 10%"))
        }
    });
    // Upstream latency stacks with downstream.
    proxy.with_latency("upstream".into(), 50, 0, 1.0);
    retry(3, || {
        let both = median((0..3).map(|_| round_trip(&mut s, 100)).collect()).saturating_sub(base);
        assert!(
            both >= Duration::from_millis(135),
            "both {both:?} < 150 - 10 - 10%"
        );
        if both <= Duration::from_millis(175) {
            Ok(())
        } else {
            Err(format!("both {both:?} > 150 + 10 + 10%"))
        }
    });
    proxy.delete_all_toxics().unwrap();
    // Below the 90 ms the removed toxic could not go under: it is gone.
    let after = median((0..5).map(|_| round_trip(&mut s, 100)).collect());
    assert!(
        after < Duration::from_millis(80),
        "latency leaked after removal: {after:?}"
    );
}

#[test]
fn bandwidth_holds_the_rate_over_two_megabytes() {
    // Goal: bandwidth 4000 KB/s moves 2 MB in 0.5 s ±10%.
    let f = fixture(Config::default());
    let n = 2_000_000;
    let (_client, proxy, listen) = proxied(&f, "bw", f.source(n));
    proxy.with_bandwidth("downstream".into(), 4000, 1.0);
    assert_eq!(proxy.toxics().unwrap().len(), 1);
    retry(3, || {
        let t = Instant::now();
        let mut s = connect(listen);
        let (got, err) = read_all(&mut s);
        let took = t.elapsed();
        assert!(err.is_none(), "{err:?}");
        assert_eq!(got, pattern(n));
        let rate = n as f64 / took.as_secs_f64() / 1000.0;
        assert!(
            rate <= 4400.0,
            "rate {rate:.0} KB/s over {took:?}: more than 4000 + 10%"
        );
        if rate >= 3600.0 {
            Ok(())
        } else {
            Err(format!(
                "rate {rate:.0} KB/s over {took:?}: less than 4000 - 10%"
            ))
        }
    });
}

#[test]
fn timeout_closes_after_its_time_and_zero_drops_until_removed() {
    // Goal: timeout 200 drops data and closes ~200 ms after it took effect; timeout 0 never closes and drops data until removed.
    let f = fixture(Config::default());
    let (_client, proxy, listen) = proxied(&f, "to", f.echo());
    proxy.with_timeout("downstream".into(), 200, 1.0);
    assert_eq!(proxy.toxics().unwrap().len(), 1);
    let t = Instant::now();
    let mut s = connect(listen);
    s.write_all(b"hello").unwrap();
    let (got, _) = read_all(&mut s);
    let took = t.elapsed();
    assert!(got.is_empty(), "data passed a timeout toxic: {got:?}");
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_millis(1500),
        "closed after {took:?}"
    );
    proxy.delete_all_toxics().unwrap();

    proxy.with_timeout("downstream".into(), 0, 1.0);
    let mut s = connect(listen);
    s.set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    s.write_all(b"dropped").unwrap();
    let mut buf = [0u8; 16];
    let e = s
        .read(&mut buf)
        .expect_err("timeout 0 must neither pass data nor close");
    assert!(
        matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{e:?}"
    );
    proxy.delete_all_toxics().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"after").unwrap();
    let mut got = [0u8; 5];
    s.read_exact(&mut got).unwrap();
    assert_eq!(
        &got, b"after",
        "the connection carries data again once the toxic is removed"
    );
}

#[test]
fn reset_peer_sends_rst() {
    // Goal: reset_peer makes the client see ECONNRESET, after its timeout.
    let f = fixture(Config::default());
    let (client, _proxy, listen) = proxied(&f, "rst", f.echo());
    let (status, v) = http(
        f.api,
        "POST",
        "/proxies/rst/toxics",
        r#"{"type":"reset_peer","attributes":{"timeout":100}}"#,
        &[],
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        client.find_proxy("rst").unwrap().toxics().unwrap()[0].r#type,
        "reset_peer"
    );
    let mut s = connect(listen);
    let t = Instant::now();
    s.write_all(b"ping").unwrap();
    let (got, err) = read_all(&mut s);
    assert!(got.is_empty());
    let err = err.expect("a reset, not a clean close");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(95),
        "reset before its timeout: {:?}",
        t.elapsed()
    );
}

#[test]
fn limit_data_closes_after_n_bytes() {
    // Goal: limit_data 1000 passes exactly the first 1000 bytes, then closes.
    let f = fixture(Config::default());
    let (_client, proxy, listen) = proxied(&f, "lim", f.source(100_000));
    proxy.with_limit_data("downstream".into(), 1000, 1.0);
    assert_eq!(proxy.toxics().unwrap().len(), 1);
    let mut s = connect(listen);
    let (got, _) = read_all(&mut s);
    assert_eq!(got, pattern(100_000)[..1000]);
}

#[test]
fn slicer_delivers_the_same_bytes_in_timed_slices() {
    // Goal: slicer 100±20 bytes, 2000 µs apart, delivers the same 10 kB, in many reads, taking at least (slices - 1) × delay.
    let f = fixture(Config::default());
    let n = 10_000;
    let (_client, proxy, listen) = proxied(&f, "sl", f.source(n));
    proxy.with_slicer("downstream".into(), 100, 20, 2000, 1.0);
    assert_eq!(proxy.toxics().unwrap().len(), 1);
    let t = Instant::now();
    let mut s = connect(listen);
    let mut got = Vec::new();
    let mut reads = 0;
    let mut buf = [0u8; 64 * 1024];
    loop {
        let k = s.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        reads += 1;
        got.extend_from_slice(&buf[..k]);
    }
    assert_eq!(got, pattern(n));
    // At least 10000 / 120 = 84 slices, 83 gaps of 2 ms.
    assert!(
        t.elapsed() >= Duration::from_millis(160),
        "too fast for slices: {:?}",
        t.elapsed()
    );
    assert!(reads >= 20, "only {reads} reads: not sliced");
}

#[test]
fn slow_close_delays_the_eof() {
    // Goal: slow_close 300 delays the close by 300 ms; the data arrives at once.
    let f = fixture(Config::default());
    let (_client, proxy, listen) = proxied(&f, "sc", f.source(10));
    proxy.with_slow_close("downstream".into(), 300, 1.0);
    assert_eq!(proxy.toxics().unwrap().len(), 1);
    let t = Instant::now();
    let mut s = connect(listen);
    let mut first = [0u8; 10];
    s.read_exact(&mut first).unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(290),
        "the data waited for the close"
    );
    let (rest, _) = read_all(&mut s);
    assert!(rest.is_empty());
    assert!(
        t.elapsed() >= Duration::from_millis(290),
        "closed after {:?}",
        t.elapsed()
    );
}

#[test]
fn noop_and_loss_keep_the_bytes_and_loss_stalls() {
    // Goal: noop changes nothing; loss at 0.5 keeps the bytes whole and in order; loss at 1 stalls a chunk until the toxic is removed, which releases it.
    let f = fixture(Config::default());
    let (client, _proxy, listen) = proxied(&f, "loss", f.echo());
    let (st, v) = http(
        f.api,
        "POST",
        "/proxies/loss/toxics",
        r#"{"type":"noop"}"#,
        &[],
    );
    assert_eq!(st, 200, "{v}");
    let mut s = connect(listen);
    assert!(round_trip(&mut s, 1000) < Duration::from_millis(500));
    let (st, v) = http(
        f.api,
        "POST",
        "/proxies/loss/toxics",
        r#"{"type":"loss","attributes":{"loss_rate":0.5,"rto":5}}"#,
        &[],
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["attributes"]["loss_rate"], 0.5);
    for _ in 0..20 {
        round_trip(&mut s, 2000);
    }
    let (st, _) = http(
        f.api,
        "DELETE",
        "/proxies/loss/toxics/loss_downstream",
        "",
        &[],
    );
    assert_eq!(st, 204);
    let (st, v) = http(
        f.api,
        "POST",
        "/proxies/loss/toxics",
        r#"{"type":"loss","stream":"upstream","attributes":{"loss_rate":1,"rto":100}}"#,
        &[],
    );
    assert_eq!(st, 200, "{v}");
    // (Through raw HTTP: toxiproxy_rust decodes attributes as integers, and loss_rate is a
    // fraction.)
    let (st, toxics) = http(f.api, "GET", "/proxies/loss/toxics", "", &[]);
    assert_eq!(st, 200);
    let names: Vec<&str> = toxics
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["noop_downstream", "loss_upstream"]);
    assert!(
        client.find_proxy("loss").is_err(),
        "toxiproxy_rust cannot decode a fractional attribute"
    );
    // Every transmission is lost: the chunk stalls (100, 200, 400 ms … of retransmission).
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s.write_all(b"lost").unwrap();
    let mut got = [0u8; 4];
    let e = s
        .read(&mut got)
        .expect_err("a chunk lost every time does not arrive");
    assert!(
        matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{e:?}"
    );
    // Removing the toxic releases the stalled chunk at once, whole.
    let (st, _) = http(
        f.api,
        "DELETE",
        "/proxies/loss/toxics/loss_upstream",
        "",
        &[],
    );
    assert_eq!(st, 204);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"lost");
}

#[test]
fn disabled_refuses_and_closes_and_reset_restores() {
    // Goal: enabled:false closes open connections and refuses new ones; reset brings the proxy back.
    let f = fixture(Config::default());
    let (client, proxy, listen) = proxied(&f, "down", f.echo());
    let mut open = connect(listen);
    round_trip(&mut open, 10);
    proxy.disable().unwrap();
    let (rest, _) = read_all(&mut open);
    assert!(rest.is_empty(), "the open connection is closed");
    let e = TcpStream::connect(listen).expect_err("a disabled proxy refuses");
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    client.reset().unwrap();
    let mut again = connect(listen);
    round_trip(&mut again, 10);
}

#[test]
fn every_toxic_type_is_added_and_removed_and_leaves_a_clean_link() {
    // Goal: all nine toxic types can be added (through the client where it has a call, raw HTTP otherwise), listed in order, removed one by one, and a link with them removed carries data intact and without delay.
    let f = fixture(Config::default());
    let (_client, proxy, listen) = proxied(&f, "all", f.echo());
    proxy.with_latency("downstream".into(), 500, 0, 1.0);
    proxy.with_bandwidth("upstream".into(), 1, 1.0);
    proxy.with_slow_close("downstream".into(), 500, 1.0);
    proxy.with_timeout("upstream".into(), 0, 1.0);
    proxy.with_slicer("upstream".into(), 1, 0, 1000, 1.0);
    proxy.with_limit_data("downstream".into(), 1, 1.0);
    for body in [
        r#"{"type":"reset_peer","stream":"upstream","attributes":{"timeout":1}}"#,
        r#"{"type":"noop"}"#,
        r#"{"type":"loss","attributes":{"loss_rate":1}}"#,
    ] {
        let (st, v) = http(f.api, "POST", "/proxies/all/toxics", body, &[]);
        assert_eq!(st, 200, "{body}: {v}");
    }
    let names = |api| -> Vec<String> {
        let (st, v) = http(api, "GET", "/proxies/all/toxics", "", &[]);
        assert_eq!(st, 200);
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = names(f.api);
    assert_eq!(
        all,
        [
            "latency_downstream",
            "bandwidth_upstream",
            "slow_close_downstream",
            "timeout_upstream",
            "slicer_upstream",
            "limit_data_downstream",
            "reset_peer_upstream",
            "noop_downstream",
            "loss_downstream",
        ]
    );
    for (i, name) in all.iter().enumerate() {
        let (st, v) = http(
            f.api,
            "DELETE",
            &format!("/proxies/all/toxics/{name}"),
            "",
            &[],
        );
        assert_eq!(st, 204, "{name}: {v}");
        assert_eq!(names(f.api), all[i + 1..], "after removing {name}");
    }
    let mut s = connect(listen);
    let took = round_trip(&mut s, 100_000);
    assert!(
        took < Duration::from_millis(450),
        "a link without toxics took {took:?} for 100 kB"
    );
    // The client's `apply` adds toxics for a closure and removes them after.
    proxy
        .apply(|| {
            proxy.with_latency("downstream".into(), 200, 0, 1.0);
            assert!(round_trip(&mut s, 10) >= Duration::from_millis(180));
        })
        .unwrap();
    assert!(proxy.toxics().unwrap().is_empty());
    assert!(round_trip(&mut s, 10) < Duration::from_millis(180));
}
