//! Tests of the OpenAPI documents: structure, the brief's paths, resolvable references,
//! security on admin operations, and the wire DTOs validating against their schemas.

use super::*;
use sovereign_wire::{
    ChunkRefDto, ManifestDto, OpKindDto, OpOutcomeDto, OpReceiptDto, OperationDto, PowerReadingDto,
};
use std::collections::BTreeSet;

const TOWER_OPS: [(&str, &str); 20] = [
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
    ("GET", "/admin/links"),
    ("GET", "/admin/power"),
    ("POST", "/admin/power"),
    ("POST", "/admin/rehome"),
    ("GET", "/admin/outbox"),
    ("GET", "/admin/faults"),
    ("POST", "/admin/faults"),
    ("DELETE", "/admin/faults"),
    ("GET", "/admin/audit"),
];

const ORIGIN_OPS: [(&str, &str); 18] = [
    ("GET", "/v1/catalog"),
    ("GET", "/v1/chunks/{sha256}"),
    ("POST", "/v1/forward"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/admin/status"),
    ("POST", "/admin/publish"),
    ("GET", "/admin/ledger"),
    ("GET", "/admin/ops/{key}"),
    ("GET", "/admin/towers"),
    ("POST", "/admin/towers/{tower}"),
    ("DELETE", "/admin/towers/{tower}"),
    ("GET", "/admin/faults"),
    ("POST", "/admin/faults"),
    ("DELETE", "/admin/faults"),
    ("GET", "/admin/audit"),
];

/// The origin's routes only known towers may call.
const TOWER_CALLS: [(&str, &str); 3] = [
    ("GET", "/v1/catalog"),
    ("GET", "/v1/chunks/{sha256}"),
    ("POST", "/v1/forward"),
];

fn docs() -> [(&'static str, Value); 2] {
    [("tower", tower_openapi()), ("origin", origin_openapi())]
}

/// Each operation object with its method and path.
fn each_op(doc: &Value) -> Vec<(String, String, &Value)> {
    operations(doc)
        .into_iter()
        .map(|(m, p)| {
            let op = &doc["paths"][&p][m.to_ascii_lowercase()];
            (m, p, op)
        })
        .collect()
}

#[test]
fn documents_are_openapi_3_1_json() {
    // Goal: both documents serialize, parse back unchanged and declare OpenAPI 3.1.
    for (what, doc) in docs() {
        let text = serde_json::to_string_pretty(&doc).expect("serializes");
        let back: Value = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, doc, "{what}");
        assert!(
            doc["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1."))
        );
        assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
        assert!(doc["paths"].is_object() && doc["components"]["schemas"].is_object());
    }
}

#[test]
fn every_path_of_the_api_is_described() {
    // Goal: the brief's endpoints are all in the documents, and nothing else is.
    for ((what, doc), want) in docs().iter().zip([&TOWER_OPS[..], &ORIGIN_OPS[..]]) {
        let have = operations(doc);
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        let mut want_sorted = want.clone();
        want_sorted.sort();
        assert_eq!(have, want_sorted, "{what}");
    }
}

#[test]
fn every_ref_resolves() {
    // Goal: no $ref or discriminator mapping points outside the document.
    for (what, doc) in docs() {
        let bad = unresolved_refs(&doc);
        assert!(bad.is_empty(), "{what}: {bad:?}");
    }
}

#[test]
fn a_broken_ref_is_reported() {
    // Goal: the resolver can fail — a dangling reference is found with its location.
    let mut doc = tower_openapi();
    doc["paths"]["/v1/catalog"]["get"]["responses"]["200"] =
        json!({ "$ref": "#/components/responses/Nope" });
    let bad = unresolved_refs(&doc);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].0.contains("~1v1~1catalog"), "{bad:?}");
    doc["components"]["schemas"]["OpKind"]["discriminator"]["mapping"]["message"] =
        json!("#/components/schemas/Gone");
    assert_eq!(unresolved_refs(&doc).len(), 2);
}

#[test]
fn operation_ids_are_unique_and_path_parameters_declared() {
    // Goal: each operation has a unique id, responses, and a parameter for every `{x}`.
    for (what, doc) in docs() {
        let mut ids = BTreeSet::new();
        for (m, p, op) in each_op(&doc) {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{what} {m} {p}: no id"));
            assert!(
                ids.insert(id.to_string()),
                "{what}: duplicate operationId {id}"
            );
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{what} {m} {p}: no responses"
            );
            let declared: BTreeSet<String> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|prm| {
                    let prm = match prm["$ref"].as_str() {
                        Some(t) => doc.pointer(&t[1..])?,
                        None => prm,
                    };
                    (prm["in"] == "path").then(|| prm["name"].as_str().unwrap_or("").to_string())
                })
                .collect();
            let in_path: BTreeSet<String> = p
                .split('/')
                .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
                .map(str::to_string)
                .collect();
            assert_eq!(declared, in_path, "{what} {m} {p}");
        }
    }
}

#[test]
fn admin_operations_need_a_bearer_token_and_public_ones_do_not() {
    // Goal: /admin/* declares adminBearer, a role, 401 and 403; device operations declare
    // the device's secret and 401; the origin's tower calls declare towerBearer, 401, 403
    // and 412; the rest is open.
    for (what, doc) in docs() {
        assert_eq!(
            doc["components"]["securitySchemes"]["adminBearer"]["scheme"],
            "bearer"
        );
        for (m, p, op) in each_op(&doc) {
            if p.starts_with("/admin/") {
                assert_eq!(
                    op["security"],
                    json!([{ "adminBearer": [] }]),
                    "{what} {m} {p}"
                );
                let role = op["x-sovereign-role"].as_str().unwrap_or("");
                assert!(
                    ["viewer", "operator", "chaos"].contains(&role),
                    "{what} {m} {p}"
                );
                // Reads are viewer; mutations are not.
                assert_eq!(m == "GET", role == "viewer", "{what} {m} {p}: role {role}");
                for code in ["401", "403"] {
                    assert!(
                        op["responses"].get(code).is_some(),
                        "{what} {m} {p}: no {code}"
                    );
                }
            } else if what == "origin" && TOWER_CALLS.contains(&(m.as_str(), p.as_str())) {
                assert_eq!(
                    op["security"],
                    json!([{ "towerBearer": [] }]),
                    "{what} {m} {p}"
                );
                for code in ["401", "403", "412"] {
                    assert!(
                        op["responses"].get(code).is_some(),
                        "{what} {m} {p}: no {code}"
                    );
                }
            } else if p.starts_with("/v1/ops") {
                assert_eq!(
                    op["security"],
                    json!([{ "deviceSecret": [] }]),
                    "{what} {m} {p}"
                );
                assert!(op["responses"].get("401").is_some(), "{what} {m} {p}");
            } else {
                assert_eq!(op["security"], json!([]), "{what} {m} {p}");
            }
        }
    }
    let unauthorized = &tower_openapi()["components"]["responses"]["Unauthorized"];
    assert!(unauthorized["headers"].get("WWW-Authenticate").is_some());
}

#[test]
fn the_documented_status_codes_and_headers_are_all_used() {
    // Goal: the API's status codes and its HTTP headers appear where the brief puts them.
    let (tower, origin) = (tower_openapi(), origin_openapi());
    let mut codes = BTreeSet::new();
    for doc in [&tower, &origin] {
        for (_, _, op) in each_op(doc) {
            codes.extend(op["responses"].as_object().unwrap().keys().cloned());
        }
    }
    for c in [
        "200", "201", "202", "206", "304", "400", "401", "403", "404", "408", "409", "413", "416",
        "422", "429", "503",
    ] {
        assert!(codes.contains(c), "status {c} is not used");
    }
    let ops = &tower["paths"]["/v1/ops"]["post"];
    let params = ops["parameters"].to_string();
    assert!(params.contains("IdempotencyKey"));
    let item = &tower["paths"]["/v1/items/{id}"]["get"];
    let params = item["parameters"].to_string();
    assert!(params.contains("Range") && params.contains("IfNoneMatch"));
    assert!(
        item["responses"]["206"]["headers"]
            .get("Content-Range")
            .is_some()
    );
    assert!(item["responses"]["200"]["headers"].get("ETag").is_some());
    let chunk = &origin["paths"]["/v1/chunks/{sha256}"]["get"];
    assert!(
        chunk["responses"]["200"]["headers"]
            .get("Cache-Control")
            .is_some()
    );
}

#[test]
fn every_schema_is_used() {
    // Goal: no orphan schema (a sign of a renamed or forgotten body).
    for (what, doc) in docs() {
        let text = doc.to_string();
        for name in doc["components"]["schemas"].as_object().unwrap().keys() {
            let needle = format!("#/components/schemas/{name}\"");
            assert!(
                text.contains(&needle),
                "{what}: schema {name} is never referenced"
            );
        }
    }
}

// ----- the wire DTOs against their schemas ------------------------------------------------

fn valid(doc: &Value, name: &str, v: &Value) -> Result<(), String> {
    validate(doc, name, v)
}

fn manifest() -> ManifestDto {
    ManifestDto {
        item: "alert-1".into(),
        version: 2,
        priority: "P0".into(),
        size: 10,
        sha256: "ab".repeat(32),
        chunks: vec![ChunkRefDto {
            sha256: "cd".repeat(32),
            len: 10,
        }],
    }
}

fn ops() -> Vec<OperationDto> {
    [
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
    ]
    .into_iter()
    .enumerate()
    .map(|(i, op)| OperationDto {
        key: format!("7:{i:08}:00000000000000ab"),
        device: sovereign_wire::DeviceDto::Hex("7".into()),
        op,
    })
    .collect()
}

#[test]
fn wire_dtos_validate_against_their_schemas() {
    // Goal: what sovereign-wire serializes is what the documents describe.
    let tower = tower_openapi();
    let origin = origin_openapi();
    let m = serde_json::to_value(manifest()).unwrap();
    valid(&tower, "Manifest", &m).unwrap();
    valid(
        &tower,
        "TowerCatalog",
        &json!({ "tower": "tower-1", "items": [m] }),
    )
    .unwrap();
    let entry = json!({ "seq": 3, "manifest": m });
    valid(&origin, "CatalogEntry", &entry).unwrap();
    valid(
        &origin,
        "OriginCatalog",
        &json!({ "entries": [entry], "origin": "0123456789abcdef0123456789abcdef" }),
    )
    .unwrap();
    assert!(
        valid(
            &origin,
            "OriginCatalog",
            &json!({ "entries": [], "origin": "XYZ" })
        )
        .is_err()
    );
    let ops = ops();
    for op in &ops {
        let v = serde_json::to_value(op).unwrap();
        valid(&origin, "Operation", &v).unwrap();
        // The device's submission is the operation without its key.
        valid(
            &tower,
            "SubmitOp",
            &json!({ "device": op.device, "op": v["op"] }),
        )
        .unwrap();
    }
    valid(&origin, "ForwardRequest", &json!({ "ops": ops })).unwrap();
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
    valid(&origin, "ForwardReply", &json!({ "receipts": receipts })).unwrap();
    let power = PowerReadingDto {
        battery_soc: 0.82,
        solar_w: 120.5,
        load_w: 40.0,
        ups: "on-battery".into(),
    };
    valid(
        &tower,
        "PowerReading",
        &serde_json::to_value(power).unwrap(),
    )
    .unwrap();
    valid(
        &tower,
        "SubmitReply",
        &json!({ "key": "7:00000001", "status": "accepted" }),
    )
    .unwrap();
    valid(
        &tower,
        "Error",
        &json!({ "error": "bad", "field": "op.type" }),
    )
    .unwrap();
}

#[test]
fn audit_records_validate_against_their_schema() {
    // Goal: GET /admin/audit's body (audit::Tail) matches AuditTail.
    use crate::audit::{AuditRecord, Tail};
    use crate::auth::Role;
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
    valid(
        &origin_openapi(),
        "AuditTail",
        &serde_json::to_value(tail).unwrap(),
    )
    .unwrap();
}

#[test]
fn fault_requests_and_snapshots_validate_against_their_schemas() {
    // Goal: the fault kinds of admin::FaultRequest and sovereign_store::FaultsSnapshot
    // are what both documents describe.
    for doc in [tower_openapi(), origin_openapi()] {
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
            json!({ "kind": "disk-full", "count": 1 }),
            json!({ "kind": "corrupt", "count": 0 }),
        ] {
            assert!(valid(&doc, "FaultRequest", &bad).is_err(), "{bad}");
        }
        let faults = sovereign_store::Faults::default();
        valid(
            &doc,
            "FaultsSnapshot",
            &serde_json::to_value(faults.snapshot()).unwrap(),
        )
        .unwrap();
        faults.fail_fsyncs(2);
        faults.set_delay(Some(std::time::Duration::from_millis(5)));
        valid(
            &doc,
            "FaultsSnapshot",
            &serde_json::to_value(faults.snapshot()).unwrap(),
        )
        .unwrap();
    }
}

#[test]
fn the_schema_checker_rejects_wrong_bodies() {
    // Goal: the checker above can fail, so the conformance tests mean something.
    let doc = origin_openapi();
    let mut m = serde_json::to_value(manifest()).unwrap();
    m["priority"] = json!("P9");
    assert!(valid(&doc, "Manifest", &m).is_err());
    let mut m = serde_json::to_value(manifest()).unwrap();
    m["extra"] = json!(1);
    assert!(valid(&doc, "Manifest", &m).is_err());
    let mut m = serde_json::to_value(manifest()).unwrap();
    m["sha256"] = json!("XYZ");
    assert!(valid(&doc, "Manifest", &m).is_err());
    let op = json!({ "key": "k", "device": 1, "op": { "type": "telegram", "to": "x" } });
    assert!(valid(&doc, "Operation", &op).is_err());
    let op = json!({ "key": "k", "device": 1, "op": { "type": "contribution", "community": "c", "nation": "n", "amount_minor": 0 } });
    assert!(valid(&doc, "Operation", &op).is_err());
    let r = json!({ "key": "k", "outcome": { "result": "applied" } });
    assert!(valid(&doc, "OpReceipt", &r).is_err());
    assert!(valid(&doc, "ForwardRequest", &json!({})).is_err());
    let ledger = json!({ "contributed_minor": "10", "held_minor": "x", "conserved": true,
        "communities": {}, "nations": {}, "reserve": 0, "applied": 0 });
    assert!(valid(&doc, "Ledger", &ledger).is_err(), "pattern ^[0-9]+$");
    let ledger = json!({ "contributed_minor": "10", "held_minor": "10", "conserved": true,
        "communities": { "village": -5 }, "nations": {}, "reserve": 0, "applied": 0 });
    assert!(
        valid(&doc, "Ledger", &ledger).is_err(),
        "additionalProperties schema"
    );
    let unknown = json!({ "type": "string", "pattern": "^a+$" });
    assert!(check_schema(&doc, &unknown, &json!("aaa"), "x").is_err());
}

#[test]
fn openapi_spec_validator_accepts_both_documents() {
    // Goal: the official OpenAPI 3.1 schema accepts both documents. Uses the Python tool
    // `openapi-spec-validator` (from $OPENAPI_SPEC_VALIDATOR or PATH); skipped without it.
    let tool = std::env::var("OPENAPI_SPEC_VALIDATOR")
        .unwrap_or_else(|_| "openapi-spec-validator".to_string());
    let dir = std::env::temp_dir().join(format!("sovereign-openapi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (what, doc) in docs() {
        let file = dir.join(format!("{what}.json"));
        std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        let Ok(out) = std::process::Command::new(&tool).arg(&file).output() else {
            eprintln!("SKIP: {tool} not found (pip install openapi-spec-validator)");
            break;
        };
        assert!(
            out.status.success(),
            "{what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn item_id_pattern_refuses_what_the_handlers_refuse() {
    // Goal: the documented item-id pattern means "no control characters" (C0, DEL, C1),
    // the rule `api::tower::item_id` applies, so a schema-valid id is not a 400.
    let m = |s: &str| pattern_matches(ITEM_ID_PATTERN, s);
    assert_eq!(m("alert-water"), Some(true));
    assert_eq!(m("façade/été 1"), Some(true));
    assert_eq!(m(""), Some(false));
    for control in ['\u{0}', '\u{18}', '\u{7f}', '\u{85}', '\u{9f}'] {
        assert_eq!(m(&format!("a{control}b")), Some(false), "{control:?}");
    }
    let doc = tower_openapi();
    let id = &doc["components"]["parameters"]["ItemId"]["schema"];
    assert_eq!(id["pattern"], ITEM_ID_PATTERN);
    assert_eq!(id["maxLength"], 256);
}
