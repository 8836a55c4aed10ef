//! The API's refusals and guards: a table of malformed requests (each its 4xx in
//! Toxiproxy's error shape, and nothing changed), the bearer token, the limits, metrics.

mod common;

use common::*;
use serde_json::Value;
use sovereign_proxy::{Config, Limits};

fn state(api: std::net::SocketAddr) -> Value {
    let (status, v) = http(api, "GET", "/proxies", "", &[]);
    assert_eq!(status, 200);
    v
}

#[test]
fn bad_requests_get_their_4xx_and_change_nothing() {
    // Goal: every malformed request is refused with its status and a Toxiproxy-shaped error, and the proxies and toxics stay as they were.
    let f = fixture(Config::default());
    let echo = f.echo().to_string();
    let (st, v) = http(
        f.api,
        "POST",
        "/proxies",
        &format!(r#"{{"name":"p","upstream":"{echo}"}}"#),
        &[],
    );
    assert_eq!(st, 201, "{v}");
    let (st, v) = http(
        f.api,
        "POST",
        "/proxies/p/toxics",
        r#"{"type":"latency","attributes":{"latency":5}}"#,
        &[],
    );
    assert_eq!(st, 200, "{v}");
    let before = state(f.api);
    let long = "x".repeat(100_000);
    let too_big = format!(r#"{{"name":"big","upstream":"{echo}","pad":"{long}"}}"#);
    let up = format!(r#"{{"name":"p","upstream":"{echo}"}}"#);
    let table: Vec<(&str, &str, &str, u16)> = vec![
        ("POST", "/proxies", "{not json", 400),
        ("POST", "/proxies", "[]", 400),
        ("POST", "/proxies", r#"{"upstream":"127.0.0.1:1"}"#, 400),
        ("POST", "/proxies", r#"{"name":"q"}"#, 400),
        (
            "POST",
            "/proxies",
            r#"{"name":"q","upstream":"nowhere"}"#,
            400,
        ),
        (
            "POST",
            "/proxies",
            r#"{"name":"a b","upstream":"127.0.0.1:1"}"#,
            400,
        ),
        (
            "POST",
            "/proxies",
            r#"{"name":"q","upstream":"127.0.0.1:1","enabled":"yes"}"#,
            400,
        ),
        (
            "POST",
            "/proxies",
            r#"{"name":"q","upstream":"127.0.0.1:1","colour":"red"}"#,
            400,
        ),
        (
            "POST",
            "/proxies",
            r#"{"name":"q","upstream":"127.0.0.1:1","seed":-1}"#,
            400,
        ),
        ("POST", "/proxies", &up, 409),
        ("POST", "/proxies", &too_big, 413),
        ("POST", "/populate", r#"{"name":"q"}"#, 400),
        (
            "POST",
            "/populate",
            r#"[{"name":"q","upstream":"127.0.0.1:1"},{"name":"r"}]"#,
            400,
        ),
        (
            "POST",
            "/populate",
            r#"[{"name":"q","upstream":"127.0.0.1:1"},{"name":"q","upstream":"127.0.0.1:2"}]"#,
            400,
        ),
        ("GET", "/proxies/nope", "", 404),
        ("POST", "/proxies/nope", r#"{"enabled":false}"#, 404),
        ("POST", "/proxies/p", r#"{"enabled":0}"#, 400),
        ("POST", "/proxies/p", r#"{"name":"renamed"}"#, 400),
        ("PATCH", "/proxies/p", r#"{"listen":"no-port"}"#, 400),
        ("DELETE", "/proxies/nope", "", 404),
        ("POST", "/proxies/p/toxics", r#"{"type":"teleport"}"#, 400),
        ("POST", "/proxies/p/toxics", r#"{"attributes":{}}"#, 400),
        (
            "POST",
            "/proxies/p/toxics",
            r#"{"type":"latency","attributes":{"latency":"5"}}"#,
            400,
        ),
        (
            "POST",
            "/proxies/p/toxics",
            r#"{"type":"latency","attributes":{"latency":-5}}"#,
            400,
        ),
        (
            "POST",
            "/proxies/p/toxics",
            r#"{"type":"latency","attributes":{"latency":1.5}}"#,
            400,
        ),
        (
            "POST",
            "/proxies/p/toxics",
            r#"{"type":"latency","attributes":{"delay":5}}"#,
            400,
        ),
        (
            "POST",
            "/proxies/p/toxics",
            r#"{"type":"latency","attributes":{"latency":99999999999}}"#,
            400,
        ),
        (
            "POST",
            "/proxies/p/toxics",
            r#"{"type":"latency","stream":"sideways"}"#,
            400,
        ),
        (
            "POST",
            "/proxies/p/toxics",
            r#"{"type":"latency","toxicity":1.5}"#,
            400,
        ),
        (
            "POST",
            "/proxies/p/toxics",
            r#"{"type":"latency","toxicity":-0.1}"#,
            400,
        ),
        ("POST", "/proxies/p/toxics", r#"{"type":"latency"}"#, 409),
        (
            "POST",
            "/proxies/p/toxics",
            r#"{"type":"slicer","attributes":{"average_size":0}}"#,
            400,
        ),
        (
            "POST",
            "/proxies/p/toxics",
            r#"{"type":"loss","attributes":{"loss_rate":2}}"#,
            400,
        ),
        (
            "POST",
            "/proxies/p/toxics",
            r#"{"type":"loss","attributes":{"rto":0}}"#,
            400,
        ),
        ("POST", "/proxies/nope/toxics", r#"{"type":"latency"}"#, 404),
        (
            "POST",
            "/proxies/p/toxics/latency_downstream",
            r#"{"attributes":{"latency":-1}}"#,
            400,
        ),
        (
            "POST",
            "/proxies/p/toxics/latency_downstream",
            r#"{"stream":"upstream"}"#,
            400,
        ),
        (
            "POST",
            "/proxies/p/toxics/latency_downstream",
            r#"{"type":"bandwidth"}"#,
            400,
        ),
        (
            "PATCH",
            "/proxies/p/toxics/nope",
            r#"{"toxicity":0.5}"#,
            404,
        ),
        ("DELETE", "/proxies/p/toxics/nope", "", 404),
        ("GET", "/nowhere", "", 404),
        ("PUT", "/proxies", "{}", 405),
    ];
    for (method, path, body, want) in table {
        let (status, v) = http(f.api, method, path, body, &[]);
        let shown = &body[..body.len().min(80)];
        assert_eq!(status, want, "{method} {path} {shown}: {v}");
        assert_eq!(
            v["status"], want,
            "{method} {path} {shown}: error shape {v}"
        );
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{method} {path}: {v}"
        );
        assert_eq!(
            state(f.api),
            before,
            "{method} {path} {shown} changed the state"
        );
    }
}

#[test]
fn a_token_guards_every_route() {
    // Goal: with a token, requests without it (or with a wrong one) get 401 and change nothing; with it they pass.
    let f = fixture(Config {
        token: Some("s3cret".into()),
        ..Config::default()
    });
    let body = r#"{"name":"p","upstream":"127.0.0.1:1"}"#;
    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong")],
        vec![("Authorization", "s3cret")],
    ] {
        let (st, v) = http(f.api, "POST", "/proxies", body, &headers);
        assert_eq!((st, v["status"].as_u64()), (401, Some(401)), "{headers:?}");
        assert_eq!(http(f.api, "GET", "/version", "", &headers).0, 401);
    }
    let auth = [("Authorization", "Bearer s3cret")];
    assert_eq!(
        http(f.api, "GET", "/proxies", "", &auth).1,
        serde_json::json!({})
    );
    assert_eq!(http(f.api, "POST", "/proxies", body, &auth).0, 201);
}

#[test]
fn limits_on_proxies_and_toxics_hold() {
    // Goal: past max_proxies and max_toxics a create is refused (409) and nothing is added.
    let limits = Limits {
        max_proxies: 2,
        max_toxics: 1,
        ..Limits::default()
    };
    let f = fixture(Config {
        limits,
        ..Config::default()
    });
    for name in ["a", "b"] {
        let body = format!(r#"{{"name":"{name}","upstream":"127.0.0.1:1"}}"#);
        assert_eq!(http(f.api, "POST", "/proxies", &body, &[]).0, 201);
    }
    assert_eq!(
        http(
            f.api,
            "POST",
            "/proxies",
            r#"{"name":"c","upstream":"127.0.0.1:1"}"#,
            &[]
        )
        .0,
        409
    );
    assert_eq!(
        http(
            f.api,
            "POST",
            "/populate",
            r#"[{"name":"c","upstream":"127.0.0.1:1"}]"#,
            &[]
        )
        .0,
        409
    );
    assert_eq!(state(f.api).as_object().unwrap().len(), 2);
    assert_eq!(
        http(
            f.api,
            "POST",
            "/proxies/a/toxics",
            r#"{"type":"noop"}"#,
            &[]
        )
        .0,
        200
    );
    assert_eq!(
        http(
            f.api,
            "POST",
            "/proxies/a/toxics",
            r#"{"type":"latency"}"#,
            &[]
        )
        .0,
        409
    );
    assert_eq!(
        http(f.api, "GET", "/proxies/a/toxics", "", &[])
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn metrics_count_bytes_connections_and_toxics() {
    // Goal: /metrics reports bytes per direction, connections and toxics per proxy in Prometheus text.
    let f = fixture(Config::default());
    let echo = f.echo();
    let (st, _) = http(
        f.api,
        "POST",
        "/proxies",
        &format!(r#"{{"name":"m","upstream":"{echo}"}}"#),
        &[],
    );
    assert_eq!(st, 201);
    http(
        f.api,
        "POST",
        "/proxies/m/toxics",
        r#"{"type":"noop","stream":"upstream"}"#,
        &[],
    );
    let mut s = connect(listen_of(f.api, "m"));
    use std::io::{Read, Write};
    s.write_all(&[7u8; 1234]).unwrap();
    let mut back = [0u8; 1234];
    s.read_exact(&mut back).unwrap();
    let want = [
        "sovereign_proxy_bytes_total{proxy=\"m\",direction=\"upstream\"} 1234",
        "sovereign_proxy_bytes_total{proxy=\"m\",direction=\"downstream\"} 1234",
        "sovereign_proxy_connections_total{proxy=\"m\"} 1",
        "sovereign_proxy_connections_active{proxy=\"m\"} 1",
        "sovereign_proxy_toxics_active{proxy=\"m\",stream=\"upstream\"} 1",
        "sovereign_proxy_toxics_active{proxy=\"m\",stream=\"downstream\"} 0",
        "sovereign_proxy_enabled{proxy=\"m\"} 1",
    ];
    // A direction's bytes are counted once its write has completed, which the client can
    // see (and read) before the pump's bookkeeping runs: wait for the counters, briefly.
    let mut text = String::new();
    for _ in 0..250 {
        text = reqwest_free_get(f.api, "/metrics");
        if want.iter().all(|w| text.lines().any(|l| l == *w)) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for line in want {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

/// A GET whose body is returned as text.
fn reqwest_free_get(api: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(api).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n")
        .map(|b| b.1.to_owned())
        .unwrap_or_default()
}
