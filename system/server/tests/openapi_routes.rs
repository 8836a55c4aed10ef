//! The OpenAPI documents against the routers that serve them and the bodies they describe.
//!
//! The documents are derived (`#[utoipa::path]` on the handlers, `ToSchema` on the bodies,
//! the routers built from the same `OpenApiRouter`s), so a route cannot be served
//! undocumented through them; what is checked here is what derivation does not give:
//! the API is the one the lists below name (a route dropped or added shows), every
//! documented operation answers as documented — a status the document lists, a JSON body
//! valid against the documented schema (JSON Schema 2020-12, the `jsonschema` crate) — no
//! documented path serves a method the document does not list, the role an admin
//! operation names is the one its handler asks for, the security and error answers are on
//! the operations that need them, the wire DTOs validate, and `GET /openapi.json` returns
//! the document.
//!
//! Map: the route lists ([`TOWER_OPS`], [`ORIGIN_OPS`]), the schema checks ([`check`],
//! [`valid`], [`unresolved_refs`]), [`sample`] (a request that should succeed on each
//! route), the tests.

mod support;

use axum::Router;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sovereign_server::openapi::{origin_openapi, tower_openapi};
use std::collections::BTreeSet;
use support::{Answer, CHAOS, OPERATOR, Req, Servers, VIEWER, device_auth, device_key, req, send};

/// The tower's API: the device API, then the admin API.
const TOWER_OPS: &[(&str, &str)] = &[
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
    ("GET", "/admin/events"),
];

/// The origin's API: the tower-facing API, then the admin API.
const ORIGIN_OPS: &[(&str, &str)] = &[
    ("GET", "/v1/catalog"),
    ("GET", "/v1/chunks/{sha256}"),
    ("POST", "/v1/forward"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
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
    ("GET", "/admin/events"),
];

/// The origin's routes only known towers may call.
const TOWER_CALLS: [&str; 3] = ["/v1/catalog", "/v1/chunks/{sha256}", "/v1/forward"];

/// (method, path) pairs.
type Ops = &'static [(&'static str, &'static str)];

fn docs() -> [(&'static str, Value, Ops); 2] {
    let json = |d: utoipa::openapi::OpenApi| serde_json::to_value(d).expect("serializes");
    [
        ("tower", json(tower_openapi()), TOWER_OPS),
        ("origin", json(origin_openapi()), ORIGIN_OPS),
    ]
}

/// Each operation of `doc`: its method (upper case), path and object.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            out.push((method.to_ascii_uppercase(), path.clone(), op));
        }
    }
    out
}

/// The admin role `op` needs: the scope of its `adminBearer` requirement.
fn role(op: &Value) -> Option<&str> {
    op["security"][0]["adminBearer"][0].as_str()
}

/// Check `v` against `schema`, a schema of `doc` (its `$ref`s point into `doc`).
fn check(doc: &Value, schema: &Value, v: &Value) -> Result<(), String> {
    let mut root = schema.clone();
    root["components"] = doc["components"].clone();
    let validator = jsonschema::draft202012::new(&root).map_err(|e| format!("schema: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(v)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Check `v` against `#/components/schemas/<name>` of `doc`.
fn valid(doc: &Value, name: &str, v: &Value) -> Result<(), String> {
    check(
        doc,
        &json!({ "$ref": format!("#/components/schemas/{name}") }),
        v,
    )
}

/// Every `$ref` in `doc` that does not point to a node of `doc`, with where it is.
fn unresolved_refs(doc: &Value) -> Vec<String> {
    fn walk(doc: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    let target = x.as_str().and_then(|t| t.strip_prefix('#'));
                    if k == "$ref" && target.and_then(|t| doc.pointer(t)).is_none() {
                        out.push(format!("{at}: {x}"));
                    }
                    walk(doc, x, &format!("{at}/{k}"), out);
                }
            }
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, x)| walk(doc, x, &format!("{at}/{i}"), out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, doc, "", &mut out);
    out
}

#[test]
fn documents_are_openapi_3_1_and_every_ref_resolves() {
    // Goal: both documents declare OpenAPI 3.1, every `$ref` points into the document, and
    // the official schema accepts them (with `openapi-spec-validator`, from
    // $OPENAPI_SPEC_VALIDATOR or PATH; that part is skipped without it).
    let tool = std::env::var("OPENAPI_SPEC_VALIDATOR")
        .unwrap_or_else(|_| "openapi-spec-validator".to_string());
    let dir = tempfile::tempdir().expect("tempdir");
    for (what, doc, _) in docs() {
        assert_eq!(doc["openapi"], "3.1.0", "{what}");
        let bad = unresolved_refs(&doc);
        assert!(bad.is_empty(), "{what}: {bad:?}");
        let file = dir.path().join(format!("{what}.json"));
        std::fs::write(&file, serde_json::to_string_pretty(&doc).expect("json")).expect("write");
        let Ok(out) = std::process::Command::new(&tool).arg(&file).output() else {
            eprintln!("SKIP: {tool} not found (pip install openapi-spec-validator)");
            continue;
        };
        assert!(
            out.status.success(),
            "{what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The walker can fail: a dangling reference is found.
    let mut doc = docs()[0].1.clone();
    doc["paths"]["/v1/catalog"]["get"]["responses"]["503"] =
        json!({ "$ref": "#/components/responses/Nope" });
    assert_eq!(unresolved_refs(&doc).len(), 1);
}

#[test]
fn every_operation_of_the_api_is_described_once() {
    // Goal: the documents hold exactly the operations listed above, with unique ids and a
    // parameter for every `{x}` of their path.
    for (what, doc, want) in docs() {
        let have: BTreeSet<(String, String)> = operations(&doc)
            .into_iter()
            .map(|(m, p, _)| (m, p))
            .collect();
        let want: BTreeSet<(String, String)> = want
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(have, want, "{what}");
        let mut ids = BTreeSet::new();
        for (m, p, op) in operations(&doc) {
            let id = op["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_string()), "{what}: duplicate id {id}");
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|prm| prm["in"] == "path")
                .filter_map(|prm| prm["name"].as_str())
                .collect();
            let in_path: BTreeSet<&str> = p
                .split('/')
                .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            assert_eq!(declared, in_path, "{what} {m} {p}");
        }
    }
}

#[test]
fn each_operation_declares_who_may_call_it_and_the_refusals() {
    // Goal: /admin/* needs adminBearer with a role (reads viewer, mutations not) and lists
    // 401 and 403; device operations need the device's secret and list 401; the origin's
    // tower calls need towerBearer and list 401, 403 and 412; the rest is open.
    for (what, doc, _) in docs() {
        for (m, p, op) in operations(&doc) {
            let codes = |want: &[&str]| {
                for c in want {
                    assert!(op["responses"].get(c).is_some(), "{what} {m} {p}: no {c}");
                }
            };
            let scheme = op["security"][0]
                .as_object()
                .map(|o| o.keys().next().cloned());
            if p.starts_with("/admin/") {
                let role = role(op).unwrap_or_else(|| panic!("{what} {m} {p}: no role"));
                assert!(["viewer", "operator", "chaos"].contains(&role), "{m} {p}");
                assert_eq!(m == "GET", role == "viewer", "{what} {m} {p}: role {role}");
                assert_eq!(op["tags"], json!(["admin"]), "{what} {m} {p}");
                codes(&["401", "403"]);
            } else if what == "origin" && TOWER_CALLS.contains(&p.as_str()) {
                assert_eq!(scheme, Some(Some("towerBearer".into())), "{what} {m} {p}");
                codes(&["401", "403", "412"]);
            } else if p.starts_with("/v1/ops") {
                assert_eq!(scheme, Some(Some("deviceSecret".into())), "{what} {m} {p}");
                codes(&["401"]);
            } else {
                assert!(op.get("security").is_none(), "{what} {m} {p}");
            }
        }
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["adminBearer"]["scheme"], "bearer", "{what}");
        assert_eq!(schemes["towerBearer"]["scheme"], "bearer", "{what}");
        assert_eq!(schemes["deviceSecret"]["name"], "Authorization", "{what}");
        let unauthorized = &doc["components"]["responses"]["Unauthorized"];
        assert!(unauthorized["headers"].get("WWW-Authenticate").is_some());
    }
}

#[test]
fn the_documented_answers_are_the_handlers_answers() {
    // Goal: the status codes and headers the handlers give are documented where they give
    // them: POST /v1/ops 202 (replays too, with Idempotent-Replayed), 409 and 503 with
    // Retry-After, 415 and 422; ranges, ETags and Cache-Control on reads; 201 on publish.
    let (tower, origin) = (&docs()[0].1, &docs()[1].1);
    let responses = &tower["paths"]["/v1/ops"]["post"]["responses"];
    assert!(responses.get("200").is_none(), "a replay is 202, not 200");
    assert!(
        responses["202"]["headers"]
            .get("Idempotent-Replayed")
            .is_some()
    );
    assert!(responses["503"]["headers"].get("Retry-After").is_some());
    let conflict = &tower["components"]["responses"]["Conflict"];
    assert!(conflict["headers"].get("Retry-After").is_some());
    for code in ["400", "409", "413", "415", "422", "429"] {
        assert!(responses.get(code).is_some(), "{code}");
    }
    let item = &tower["paths"]["/v1/items/{id}"]["get"];
    let params = item["parameters"].to_string();
    assert!(params.contains("\"Range\"") && params.contains("\"If-None-Match\""));
    assert!(
        item["responses"]["206"]["headers"]
            .get("Content-Range")
            .is_some()
    );
    assert!(item["responses"]["200"]["headers"].get("ETag").is_some());
    let chunk = &origin["paths"]["/v1/chunks/{sha256}"]["get"]["responses"]["200"];
    assert!(chunk["headers"].get("Cache-Control").is_some());
    let publish = &origin["paths"]["/admin/publish"]["post"]["responses"];
    assert!(publish.get("201").is_some() && publish.get("200").is_none());
}

// ----- the bodies against their schemas -------------------------------------------------

fn manifest() -> Value {
    json!({ "item": "alert-1", "version": 2, "priority": "P0", "size": 10,
        "sha256": "ab".repeat(32), "chunks": [{ "sha256": "cd".repeat(32), "len": 10 }] })
}

fn m_of(v: &Value) -> sovereign_logic::content::Manifest {
    let dto: sovereign_wire::ManifestDto = serde_json::from_value(v.clone()).expect("manifest");
    dto.to_manifest().expect("valid manifest")
}

#[test]
fn wire_dtos_validate_against_their_schemas() {
    // Goal: what sovereign-wire serializes is what the documents describe, and the schemas
    // are strict where decoding is (a wrong body does not validate).
    use sovereign_wire::{
        DeviceDto, ManifestDto, OpKindDto, OpOutcomeDto, OpReceiptDto, OperationDto,
        PowerReadingDto,
    };
    let (tower, origin) = (&docs()[0].1, &docs()[1].1);
    let m: ManifestDto = serde_json::from_value(manifest()).expect("manifest");
    let m = serde_json::to_value(m).expect("json");
    valid(tower, "Manifest", &m).unwrap();
    valid(
        tower,
        "TowerCatalog",
        &json!({ "tower": "tower-1", "items": [m] }),
    )
    .unwrap();
    let entry = json!({ "seq": 3, "manifest": m });
    valid(origin, "CatalogEntry", &entry).unwrap();
    let catalog =
        json!({ "entries": [entry], "origin": "0123456789abcdef0123456789abcdef", "more": false });
    valid(origin, "OriginCatalog", &catalog).unwrap();
    // An entry sent as changes, as the origin serializes it.
    let base = m_of(&manifest());
    let mut next = base.clone();
    next.version = 3;
    next.chunks.insert(0, next.chunks[0]);
    next.size *= 2;
    let changes = sovereign_logic::content::ManifestChanges::between(&base, &next);
    let changed =
        serde_json::to_value(sovereign_wire::CatalogChangesDto::new(4, &changes)).expect("json");
    valid(origin, "CatalogChanges", &changed).unwrap();
    let page = json!({ "entries": [], "changes": [changed], "origin": null, "more": true });
    valid(origin, "OriginCatalog", &page).unwrap();
    let mut bad_run = changed.clone();
    bad_run["runs"][0] = json!({ "keep": { "start": 0 } });
    assert!(valid(origin, "CatalogChanges", &bad_run).is_err());
    let kinds = [
        OpKindDto::Message {
            to: "clinic".into(),
            body: "hello".into(),
        },
        OpKindDto::Form {
            name: "census".into(),
            fields: vec![("household".into(), "4".into())],
        },
        OpKindDto::Contribution {
            community: "village".into(),
            nation: "n".into(),
            amount_minor: 700,
        },
    ];
    let ops: Vec<OperationDto> = kinds
        .into_iter()
        .enumerate()
        .map(|(i, op)| OperationDto {
            key: format!("7:{i:08}:00000000000000ab"),
            device: DeviceDto::Hex("7".into()),
            op,
        })
        .collect();
    for op in &ops {
        let v = serde_json::to_value(op).expect("json");
        valid(origin, "Operation", &v).unwrap();
        let submission = json!({ "device": op.device, "op": v["op"] });
        valid(tower, "SubmitOp", &submission).unwrap();
    }
    valid(origin, "ForwardRequest", &json!({ "ops": ops })).unwrap();
    let receipts: Vec<OpReceiptDto> = [
        OpOutcomeDto::Applied { seq: 1 },
        OpOutcomeDto::Conflict,
        OpOutcomeDto::Rejected {
            reason: "zero amount".into(),
        },
    ]
    .into_iter()
    .map(|outcome| OpReceiptDto {
        key: "7:00000000".into(),
        outcome,
    })
    .collect();
    valid(origin, "ForwardReply", &json!({ "receipts": receipts })).unwrap();
    let power = PowerReadingDto {
        battery_soc: 0.82,
        solar_w: 120.5,
        load_w: 40.0,
        ups: "on-battery".into(),
    };
    valid(
        tower,
        "PowerReading",
        &serde_json::to_value(power).expect("json"),
    )
    .unwrap();
    valid(
        tower,
        "SubmitReply",
        &json!({ "key": "7:00000001", "status": "accepted" }),
    )
    .unwrap();
    valid(
        tower,
        "Error",
        &json!({ "error": "bad", "field": "op.type" }),
    )
    .unwrap();

    let refused = [
        ("Manifest", json!({ "priority": "P9" })),
        ("Manifest", json!({ "extra": 1 })),
        ("Manifest", json!({ "sha256": "XYZ" })),
        ("OriginCatalog", json!({ "entries": [], "origin": "XYZ" })),
    ];
    for (name, patch) in refused {
        let mut v = if name == "Manifest" {
            manifest()
        } else {
            json!({})
        };
        for (k, x) in patch.as_object().expect("patch") {
            v[k] = x.clone();
        }
        assert!(valid(origin, name, &v).is_err(), "{name} {v}");
    }
    for bad in [
        json!({ "key": "k", "device": 1, "op": { "type": "telegram", "to": "x" } }),
        json!({ "key": "k", "device": 1, "op": { "type": "contribution", "community": "c", "nation": "n", "amount_minor": 0 } }),
        json!({ "key": "a b", "device": 1, "op": { "type": "message", "to": "a", "body": "b" } }),
        json!({ "key": "k", "device": "0ff", "op": { "type": "message", "to": "a", "body": "b" } }),
    ] {
        assert!(valid(origin, "Operation", &bad).is_err(), "{bad}");
    }
    let receipt = json!({ "key": "k", "outcome": { "result": "applied" } });
    assert!(valid(origin, "OpReceipt", &receipt).is_err());
    assert!(valid(origin, "ForwardRequest", &json!({})).is_err());
    let ledger = json!({ "contributed_minor": "10", "held_minor": "x", "conserved": true,
        "communities": {}, "nations": {}, "reserve": 0, "applied": 0 });
    assert!(
        valid(origin, "Ledger", &ledger).is_err(),
        "pattern ^[0-9]+$"
    );
}

#[test]
fn admin_bodies_validate_against_their_schemas() {
    // Goal: GET /admin/audit's body (audit::Tail), the fault requests of POST /admin/faults
    // and sovereign_store::FaultsSnapshot are what both documents describe.
    use sovereign_server::audit::{AuditRecord, Tail};
    use sovereign_server::auth::Role;
    let tail = Tail {
        records: vec![AuditRecord {
            time: "2026-01-01T00:00:00.000Z".into(),
            role: Role::Operator,
            token_id: "ba7816bf".into(),
            action: "publish".into(),
            target: "alert-1".into(),
            detail: json!({ "priority": "P0" }),
            outcome: "ok".into(),
        }],
        skipped: 0,
    };
    for (_, doc, _) in docs() {
        valid(
            &doc,
            "AuditTail",
            &serde_json::to_value(&tail).expect("json"),
        )
        .unwrap();
        for body in [
            json!({ "kind": "fsync-failure" }),
            json!({ "kind": "fsync-failure", "count": 3 }),
            json!({ "kind": "write-error" }),
            json!({ "kind": "disk-full" }),
            json!({ "kind": "lying-fsync" }),
            json!({ "kind": "slow-disk", "delay_ms": 250 }),
            json!({ "kind": "corrupt" }),
            json!({ "kind": "corrupt", "count": 2 }),
        ] {
            valid(&doc, "FaultRequest", &body).unwrap();
        }
        for bad in [
            json!({ "kind": "meteor" }),
            json!({ "kind": "slow-disk" }),
            json!({ "kind": "slow-disk", "delay_ms": 60001 }),
            json!({ "kind": "corrupt", "count": 0 }),
        ] {
            assert!(valid(&doc, "FaultRequest", &bad).is_err(), "{bad}");
        }
        let faults = sovereign_store::Faults::default();
        let snapshot = serde_json::to_value(faults.snapshot()).expect("json");
        valid(&doc, "FaultsSnapshot", &snapshot).unwrap();
        faults.fail_fsyncs(2);
        faults.set_delay(Some(std::time::Duration::from_millis(5)));
        let snapshot = serde_json::to_value(faults.snapshot()).expect("json");
        valid(&doc, "FaultsSnapshot", &snapshot).unwrap();
    }
}

// ----- the documents against the routers -------------------------------------------------

const GOOD_OP: &str = r#"{"op":{"type":"message","to":"clinic","body":"hi"}}"#;
const FORWARDED_KEY: &str = "3:00000001";

/// What the samples need: a published item's id and one of its chunks.
struct Ctx {
    item: String,
    chunk: String,
}

/// A request that should succeed on `(method, path)`, as `token` on the admin listener.
fn sample(c: &Ctx, method: &str, path: &str, token: &str) -> Req {
    let m = Method::from_bytes(method.as_bytes()).expect("method");
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
        r.bearer(token)
    } else {
        r
    }
}

/// Why answer `a` to `op` does not fit `doc`, if it does not.
fn misfit(doc: &Value, op: &Value, a: &Answer) -> Option<String> {
    let Some(mut resp) = op["responses"].get(a.status.as_str()) else {
        return Some(format!("answered {a}, not a documented status"));
    };
    if let Some(target) = resp["$ref"].as_str().and_then(|t| t.strip_prefix('#')) {
        resp = doc.pointer(target)?;
    }
    let schema = resp["content"].get("application/json")?.get("schema")?;
    let Some(body) = a.json() else {
        return Some(format!("documented as JSON, got {a}"));
    };
    check(doc, schema, &body)
        .err()
        .map(|e| format!("{e} (answer {a})"))
}

/// Check one server: every documented operation answers as documented, with the role
/// its document names (and is refused to the role below it); no extra method on a
/// documented path.
async fn check_server(what: &str, doc: &Value, public: &Router, admin: &Router, c: &Ctx) {
    let router_for = |p: &str| {
        if p.starts_with("/admin/") {
            admin
        } else {
            public
        }
    };
    let mut bad = Vec::new();
    // Ordered so that the samples build on each other: the forward comes before the op
    // lookup (public routes first), an issue before a revoke (deletions last).
    let mut ops = operations(doc);
    ops.sort_by_key(|(m, p, _)| (p.starts_with("/admin/"), m == "DELETE"));
    for (m, p, op) in &ops {
        let token = match role(op) {
            Some("operator") => OPERATOR,
            Some("chaos") => CHAOS,
            _ => VIEWER,
        };
        if role(op).is_some_and(|r| r != "viewer") {
            let a = send(router_for(p), sample(c, m, p, VIEWER)).await;
            if a.status != StatusCode::FORBIDDEN {
                bad.push(format!(
                    "{m} {p}: documented for {token:?}, a viewer got {a}"
                ));
            }
        }
        let a = send(router_for(p), sample(c, m, p, token)).await;
        if !a.status.is_success() {
            bad.push(format!("{m} {p}: the sample request failed: {a}"));
        } else if let Some(why) = misfit(doc, op, &a) {
            bad.push(format!("{m} {p}: {why}"));
        }
    }
    let paths: BTreeSet<&String> = ops.iter().map(|(_, p, _)| p).collect();
    for p in paths {
        for m in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            if ops.iter().any(|(om, op, _)| om == m && op == p) {
                continue;
            }
            let a = send(router_for(p), sample(c, m, p, CHAOS)).await;
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
    let item = "doc-1".into();
    (s, Ctx { item, chunk })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tower_answers_as_its_document_says() {
    // Goal: each operation of the tower's document answers as documented.
    let (s, c) = servers_with_content().await;
    let doc = &docs()[0].1;
    check_server("tower", doc, &s.tower, &s.tower_admin, &c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_answers_as_its_document_says() {
    // Goal: each operation of the origin's document answers as documented.
    let (s, c) = servers_with_content().await;
    let doc = &docs()[1].1;
    check_server("origin", doc, &s.origin, &s.origin_admin, &c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_json_is_the_document() {
    // Goal: GET /openapi.json on each public router returns its server's document.
    let s = Servers::start(Some("http://127.0.0.1:9")).await;
    let [(_, tower, _), (_, origin, _)] = docs();
    for (what, router, doc) in [("tower", &s.tower, tower), ("origin", &s.origin, origin)] {
        let a = send(router, req(Method::GET, "/openapi.json")).await;
        assert_eq!(a.status, StatusCode::OK, "{what}: {a}");
        assert!(
            a.header("content-type").starts_with("application/json"),
            "{what}: {a}"
        );
        assert_eq!(a.json().as_ref(), Some(&doc), "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_id_pattern_refuses_what_the_handlers_refuse() {
    // Goal: the documented item-id rule is the handlers' rule ("no control characters":
    // C0, DEL, C1; 1 to 256), so a schema-valid id is never a 400 and a schema-invalid one
    // always is.
    let s = Servers::start(Some("http://127.0.0.1:9")).await;
    let doc = &docs()[0].1;
    let params = &doc["paths"]["/v1/items/{id}/manifest"]["get"]["parameters"];
    let schema = &params[0]["schema"];
    assert_eq!(params[0]["name"], "id");
    let mut ids: Vec<String> = ["alert-water", "façade/été 1", &"x".repeat(256)]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for control in ['\u{0}', '\u{18}', '\u{7f}', '\u{85}', '\u{9f}'] {
        ids.push(format!("a{control}b"));
    }
    for id in ids {
        let schema_valid = check(doc, schema, &json!(id)).is_ok();
        let uri = format!("/v1/items/{}/manifest", support::pct(id.as_bytes()));
        let a = send(&s.tower, req(Method::GET, &uri)).await;
        let refused = a.status == StatusCode::BAD_REQUEST;
        assert_eq!(schema_valid, !refused, "{id:?}: {a}");
    }
}
