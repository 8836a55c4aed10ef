//! The OpenAPI documents against the routers that serve them: every documented operation
//! is served (neither the router's 404 nor a 405), answers with a status the document
//! lists for it, and a JSON body that validates against the documented schema; every
//! route the routers serve is documented, and no documented path serves a method the
//! document does not list. `GET /openapi.json` returns the document.
//!
//! The routes are listed by hand below ([`TOWER_PUBLIC`], [`TOWER_ADMIN`],
//! [`ORIGIN_PUBLIC`], [`ORIGIN_ADMIN`]) — axum cannot enumerate a router's routes — and
//! must be kept in step with `api::tower`, `api::origin` and `admin`: a route added to a
//! router without a line here is caught only if it is also documented (then the
//! document and the list disagree); one added to the list and the document but not the
//! router answers 404/405.
//!
//! Map: the route lists, [`sample`] (a request that should succeed on each route),
//! one test per server, and the `/openapi.json` test.

mod support;

use axum::Router;
use axum::http::{Method, StatusCode};
use serde_json::Value;
use sovereign_server::openapi;
use std::collections::BTreeSet;
use support::{Answer, CHAOS, OPERATOR, Req, Servers, VIEWER, device_auth, device_key, req, send};

/// The tower's device API (`api::tower::router`).
const TOWER_PUBLIC: &[(&str, &str)] = &[
    ("GET", "/v1/catalog"),
    ("GET", "/v1/items/{id}"),
    ("GET", "/v1/items/{id}/manifest"),
    ("GET", "/v1/chunks/{sha256}"),
    ("POST", "/v1/ops"),
    ("GET", "/v1/ops/{key}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

/// The tower's admin API (`admin::tower_router`).
const TOWER_ADMIN: &[(&str, &str)] = &[
    ("GET", "/admin/status"),
    ("POST", "/admin/rehome"),
    ("GET", "/admin/outbox"),
    ("GET", "/admin/links"),
    ("GET", "/admin/power"),
    ("POST", "/admin/power"),
    ("GET", "/admin/faults"),
    ("POST", "/admin/faults"),
    ("DELETE", "/admin/faults"),
    ("GET", "/admin/audit"),
];

/// The origin's tower-facing API (`api::origin::router`).
const ORIGIN_PUBLIC: &[(&str, &str)] = &[
    ("GET", "/v1/catalog"),
    ("GET", "/v1/chunks/{sha256}"),
    ("POST", "/v1/forward"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

/// The origin's admin API (`admin::origin_router`).
const ORIGIN_ADMIN: &[(&str, &str)] = &[
    ("GET", "/admin/status"),
    ("GET", "/admin/towers"),
    ("POST", "/admin/towers/{tower}"),
    ("DELETE", "/admin/towers/{tower}"),
    ("GET", "/admin/ops/{key}"),
    ("POST", "/admin/publish"),
    ("GET", "/admin/ledger"),
    ("GET", "/admin/faults"),
    ("POST", "/admin/faults"),
    ("DELETE", "/admin/faults"),
    ("GET", "/admin/audit"),
];

const GOOD_OP: &str = r#"{"op":{"type":"message","to":"clinic","body":"hi"}}"#;
const FORWARDED_KEY: &str = "3:00000001";

/// What the samples need: a published item's id and one of its chunks.
struct Ctx {
    item: String,
    chunk: String,
}

/// A request that should succeed on `(method, path)`.
fn sample(c: &Ctx, method: &str, path: &str) -> Req {
    let m = Method::from_bytes(method.as_bytes()).expect("method");
    let role = match (method, path) {
        ("POST" | "DELETE", "/admin/faults") => CHAOS,
        ("POST", _) | ("DELETE", "/admin/towers/{tower}") => OPERATOR,
        _ => VIEWER,
    };
    let uri = path
        .replace("{id}", &c.item)
        .replace("{sha256}", &c.chunk)
        .replace("{key}", FORWARDED_KEY)
        // A tower without a credential: issued, then revoked (towers 1..=3 are in use).
        .replace("{tower}", "9");
    let r = match (method, path) {
        ("POST", "/v1/ops") => req(m, &uri)
            .header("idempotency-key", device_key(1))
            .header("authorization", device_auth())
            .json(GOOD_OP),
        ("GET", "/v1/ops/{key}") => req(m, &path.replace("{key}", &device_key(1)))
            .header("authorization", device_auth()),
        ("POST", "/v1/forward") => req(m, &uri).tower(3).json(&format!(
            r#"{{"ops":[{{"key":"{FORWARDED_KEY}","device":3,"op":{{"type":"contribution","community":"village","nation":"n","amount_minor":700}}}}]}}"#
        )),
        ("POST", "/admin/power") => {
            req(m, &uri).json(r#"{"battery_soc":0.9,"solar_w":100,"load_w":20,"ups":"online"}"#)
        }
        ("POST", "/admin/faults") => req(m, &uri).json(r#"{"kind":"slow-disk","delay_ms":0}"#),
        ("POST", "/admin/publish") => req(m, &format!("{uri}?item=doc-2&priority=P2"))
            .header("content-type", "application/octet-stream")
            .body(b"second document".to_vec()),
        // The origin's tower-facing reads need a tower's credential (the tower's device
        // API ignores it).
        (_, "/v1/catalog" | "/v1/chunks/{sha256}") => req(m, &uri).tower(3),
        _ => req(m, &uri),
    };
    if path.starts_with("/admin/") {
        r.bearer(role)
    } else {
        r
    }
}

/// `v` with a `$ref` followed (one level; the documents' responses refer once).
fn deref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    v["$ref"]
        .as_str()
        .and_then(|t| doc.pointer(t.strip_prefix('#')?))
        .unwrap_or(v)
}

/// Why answer `a` to `(method, path)` does not fit the document, if it does not.
fn misfit(doc: &Value, method: &str, path: &str, a: &Answer) -> Option<String> {
    let op = &doc["paths"][path][method.to_ascii_lowercase()];
    let code = a.status.as_str();
    let Some(resp) = op["responses"].get(code) else {
        return Some(format!("answered {a}, not a documented status"));
    };
    let resp = deref(doc, resp);
    if let Some(schema) = resp["content"]
        .get("application/json")
        .map(|c| &c["schema"])
    {
        let Some(body) = a.json() else {
            return Some(format!("documented as JSON, got {a}"));
        };
        if let Err(e) = openapi::check_schema(doc, schema, &body, "body") {
            return Some(format!("{e} (answer {a})"));
        }
    }
    None
}

/// Check one server: the document against the route lists, every listed route answered
/// as documented, and no extra method on a documented path.
async fn check_server(
    what: &str,
    doc: &Value,
    public: (&Router, &[(&str, &str)]),
    admin: (&Router, &[(&str, &str)]),
    c: &Ctx,
) {
    let documented: BTreeSet<(String, String)> = openapi::operations(doc).into_iter().collect();
    let served: BTreeSet<(String, String)> = public
        .1
        .iter()
        .chain(admin.1)
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "{what}: served but not documented: {undocumented:?}; documented but not in the route list: {unserved:?}"
    );
    let router_for = |p: &str| {
        if p.starts_with("/admin/") {
            admin.0
        } else {
            public.0
        }
    };
    let mut bad = Vec::new();
    // Documented -> served, as documented. Ordered so that the samples build on each
    // other: the forward comes before the op lookup.
    let mut order: Vec<&(&str, &str)> = public.1.iter().chain(admin.1).collect();
    order.sort_by_key(|(_, p)| p.starts_with("/admin/"));
    for (m, p) in order {
        let a = send(router_for(p), sample(c, m, p)).await;
        let routed = !(a.status == StatusCode::METHOD_NOT_ALLOWED
            || (a.status == StatusCode::NOT_FOUND
                && a.json().is_some_and(|v| {
                    v["error"]
                        .as_str()
                        .is_some_and(|e| e.starts_with("no such route"))
                })));
        if !routed {
            bad.push(format!("{m} {p}: not served: {a}"));
        } else if !a.status.is_success() {
            bad.push(format!("{m} {p}: the sample request failed: {a}"));
        } else if let Some(why) = misfit(doc, m, p, &a) {
            bad.push(format!("{m} {p}: {why}"));
        }
    }
    // No method beyond the documented ones on a documented path.
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for p in paths {
        for m in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            if documented.contains(&(m.to_string(), p.clone())) {
                continue;
            }
            let a = send(router_for(p), sample(c, m, p)).await;
            if a.status != StatusCode::METHOD_NOT_ALLOWED {
                bad.push(format!("{m} {p}: undocumented method answered {a}"));
            }
        }
    }
    assert!(bad.is_empty(), "{what}:\n{}", bad.join("\n"));
}

async fn servers_with_content() -> (Servers, Ctx) {
    let s = Servers::start(None).await;
    let content: Vec<u8> = (0..3000u32).map(|i| (i % 253) as u8).collect();
    let entry = s.publish("doc-1", &content).await.json().expect("entry");
    s.wait_servable("doc-1").await;
    let chunk = entry["manifest"]["chunks"][0]["sha256"]
        .as_str()
        .expect("chunk")
        .to_string();
    (
        s,
        Ctx {
            item: "doc-1".into(),
            chunk,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tower_document_matches_the_tower_routers() {
    // Goal: the tower's document lists exactly what its two routers serve, and each
    // operation answers as documented.
    let (s, c) = servers_with_content().await;
    check_server(
        "tower",
        &openapi::tower_openapi(),
        (&s.tower, TOWER_PUBLIC),
        (&s.tower_admin, TOWER_ADMIN),
        &c,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_document_matches_the_origin_routers() {
    // Goal: the origin's document lists exactly what its two routers serve, and each
    // operation answers as documented.
    let (s, c) = servers_with_content().await;
    check_server(
        "origin",
        &openapi::origin_openapi(),
        (&s.origin, ORIGIN_PUBLIC),
        (&s.origin_admin, ORIGIN_ADMIN),
        &c,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_json_is_the_document() {
    // Goal: GET /openapi.json on each public router returns its server's document.
    let s = Servers::start(Some("http://127.0.0.1:9")).await;
    for (what, router, doc) in [
        ("tower", &s.tower, openapi::tower_openapi()),
        ("origin", &s.origin, openapi::origin_openapi()),
    ] {
        let a = send(router, req(Method::GET, "/openapi.json")).await;
        assert_eq!(a.status, StatusCode::OK, "{what}: {a}");
        assert!(
            a.header("content-type").starts_with("application/json"),
            "{what}: {a}"
        );
        assert_eq!(a.json().as_ref(), Some(&doc), "{what}");
    }
}

#[test]
fn the_operation_answers_are_documented() {
    // Goal: POST /v1/ops documents 202 (replays too, with Idempotent-Replayed), 409 and
    // 503 with Retry-After, 415 and 422 — the answers the handler gives.
    let doc = openapi::tower_openapi();
    let responses = &doc["paths"]["/v1/ops"]["post"]["responses"];
    assert!(responses.get("200").is_none(), "a replay is 202, not 200");
    assert!(
        responses["202"]["headers"]
            .get("Idempotent-Replayed")
            .is_some()
    );
    for code in ["409", "503"] {
        let r = deref(&doc, &responses[code]);
        assert!(r["headers"].get("Retry-After").is_some(), "{code}");
    }
    for code in ["400", "413", "415", "422"] {
        assert!(responses.get(code).is_some(), "{code}");
    }
    let publish = &openapi::origin_openapi()["paths"]["/admin/publish"]["post"]["responses"];
    assert!(publish.get("201").is_some() && publish.get("200").is_none());
}
