//! OpenAPI 3.1 descriptions of the tower's and the origin's HTTP APIs, served at
//! `/openapi.json`.
//!
//! One document per server, covering both of its listeners: the public paths (`/v1/…`,
//! health, metrics) and the admin paths (`/admin/…`, tag `admin`, served on the separate
//! admin listener, bearer token per role — the role an operation needs is in its
//! description and in the `x-sovereign-role` extension). Request and response bodies are
//! the `sovereign-wire` DTOs (`Manifest`, `CatalogEntry`, `Operation`, `OpOutcome`,
//! `OpReceipt`, `PowerReading`) plus the API's own envelopes and the error body
//! `{"error": "...", "field": "..."}`.
//!
//! Map: [`tower_openapi`], [`origin_openapi`] (the documents), [`operations`] (the
//! (method, path) pairs of a document, to compare with a router), [`unresolved_refs`]
//! (every `$ref` that does not point into the document), [`validate`] /
//! [`check_schema`] (a body against a documented schema, for tests); the schemas,
//! parameters and responses are built by private functions shared by both documents.
//!
//! The documents follow the routers (`api::tower`, `api::origin`, `admin`); the
//! integration test `tests/openapi_routes.rs` calls every documented operation and
//! checks the answer's status and body against the document, and that no route or
//! method is served undocumented.
//!
//! Not covered: the admin bodies beyond their documented fields (status, links, power
//! and ledger objects allow further properties: the handlers own their exact shape),
//! examples for every operation, content negotiation (JSON only), HEAD (answered like
//! GET without a body), the 404/405 of unknown paths and methods (described once, in
//! `info` and `components.responses.MethodNotAllowed`, not on each operation).

use serde_json::{Map, Value, json};

/// The OpenAPI version the documents declare.
pub const OPENAPI_VERSION: &str = "3.1.0";

/// A `$ref` to `#/components/<kind>/<name>`.
fn r(kind: &str, name: &str) -> Value {
    json!({ "$ref": format!("#/components/{kind}/{name}") })
}

fn schema(name: &str) -> Value {
    r("schemas", name)
}

fn json_body(schema_name: &str) -> Value {
    json!({ "application/json": { "schema": schema(schema_name) } })
}

/// A response with a JSON body.
fn ok_json(description: &str, schema_name: &str) -> Value {
    json!({ "description": description, "content": json_body(schema_name) })
}

// ----- schemas ------------------------------------------------------------------------

fn sha256_schema(description: &str) -> Value {
    json!({
        "type": "string",
        "pattern": "^[0-9a-f]{64}$",
        "description": description,
    })
}

fn wire_schemas() -> Map<String, Value> {
    let mut s = Map::new();
    s.insert(
        "Degraded".into(),
        json!({
            "type": "array",
            "description": "Why the server is not ready, one sentence each (empty: it is): a store operation failing (an error in the last 5 minutes and no success since), the disk full, free space under --storage-free-min-mib, a sync task parked by the supervisor (tower).",
            "items": { "type": "string" }
        }),
    );
    s.insert(
        "NotReady".into(),
        json!({
            "type": "object",
            "description": "A degraded server's readiness: `error` joins the reasons.",
            "required": ["error", "ready", "degraded"],
            "properties": {
                "error": { "type": "string" },
                "ready": { "const": false },
                "degraded": schema("Degraded")
            }
        }),
    );
    s.insert(
        "Error".into(),
        json!({
            "type": "object",
            "description": "Every error body. `field` names the offending request field or header when there is one.",
            "required": ["error"],
            "properties": {
                "error": { "type": "string", "description": "What went wrong and what was expected." },
                "field": { "type": "string", "description": "The field or header at fault, e.g. `op.amount_minor` or `Idempotency-Key`." }
            }
        }),
    );
    s.insert(
        "Priority".into(),
        json!({
            "type": "string",
            "enum": ["P0", "P1", "P2", "P3"],
            "description": "Content class: P0 critical (alerts), P1 important, P2 normal, P3 bulk."
        }),
    );
    s.insert(
        "ChunkRef".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["sha256", "len"],
            "properties": {
                "sha256": sha256_schema("SHA-256 of the chunk's bytes, lower-case hex."),
                "len": { "type": "integer", "minimum": 1, "maximum": 4294967295u64, "description": "Length in bytes." }
            }
        }),
    );
    s.insert(
        "Manifest".into(),
        json!({
            "type": "object",
            "description": "A published version of an item: its chunks in order.",
            "additionalProperties": false,
            "required": ["item", "version", "priority", "size", "sha256", "chunks"],
            "properties": {
                "item": { "type": "string", "minLength": 1 },
                "version": { "type": "integer", "minimum": 1 },
                "priority": schema("Priority"),
                "size": { "type": "integer", "minimum": 0, "description": "Total bytes: the sum of the chunk lengths." },
                "sha256": sha256_schema("SHA-256 of the whole content; also the item's ETag."),
                "chunks": { "type": "array", "items": schema("ChunkRef") }
            }
        }),
    );
    s.insert(
        "CatalogEntry".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["seq", "manifest"],
            "properties": {
                "seq": { "type": "integer", "minimum": 1, "description": "Position in the origin's publish log." },
                "manifest": schema("Manifest")
            }
        }),
    );
    s.insert(
        "OpMessage".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["type", "to", "body"],
            "properties": {
                "type": { "const": "message" },
                "to": { "type": "string" },
                "body": { "type": "string" }
            }
        }),
    );
    s.insert(
        "OpForm".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["type", "name", "fields"],
            "properties": {
                "type": { "const": "form" },
                "name": { "type": "string" },
                "fields": {
                    "type": "array",
                    "description": "`[name, value]` pairs in order.",
                    "items": {
                        "type": "array",
                        "prefixItems": [{ "type": "string" }, { "type": "string" }],
                        "minItems": 2,
                        "maxItems": 2
                    }
                }
            }
        }),
    );
    s.insert(
        "OpContribution".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["type", "community", "nation", "amount_minor"],
            "properties": {
                "type": { "const": "contribution" },
                "community": { "type": "string", "minLength": 1, "maxLength": 128 },
                "nation": { "type": "string", "minLength": 1, "maxLength": 128 },
                "amount_minor": { "type": "integer", "minimum": 1, "description": "Integer minor units (cents); split 50/30/20 community/nation/reserve." }
            }
        }),
    );
    s.insert(
        "OpKind".into(),
        json!({
            "description": "What a device asks to be done; `type` selects the variant.",
            "oneOf": [schema("OpMessage"), schema("OpForm"), schema("OpContribution")],
            "discriminator": {
                "propertyName": "type",
                "mapping": {
                    "message": "#/components/schemas/OpMessage",
                    "form": "#/components/schemas/OpForm",
                    "contribution": "#/components/schemas/OpContribution"
                }
            }
        }),
    );
    s.insert(
        "IdemKey".into(),
        json!({
            "type": "string",
            "pattern": "^[\\x21-\\x7e]{1,256}$",
            "description": "Idempotency key: 1 to 256 visible ASCII characters, unique per operation. Devices make `<device>:<n>:<nonce>`: their identity, a running number (8 digits at least) and 64 random bits (16 hex digits). A tower accepts a key only from the device it belongs to (its first part)."
        }),
    );
    s.insert(
        "DeviceId".into(),
        json!({
            "type": "string",
            "pattern": "^(0|[1-9a-f][0-9a-f]{0,31})$",
            "description": "A device's identity: 128 bits as lower-case hex without leading zeros, derived from the secret the device presents (first 16 bytes of SHA-256(\"sovereign-device-id/1\" || secret))."
        }),
    );
    s.insert(
        "OpStatus".into(),
        json!({
            "type": "object",
            "description": "What the tower knows of one of the presenting device's operations.",
            "additionalProperties": false,
            "required": ["status", "key"],
            "properties": {
                "status": {
                    "type": "string",
                    "enum": ["pending", "done", "unknown"],
                    "description": "`pending`: acknowledged, held durably, not yet confirmed by the origin. `done`: the origin's verdict (`outcome`) on the operation whose fingerprint is `fingerprint` (if it is not the device's own operation's, its operation was not the one applied). `unknown`: nothing held under the key for this device (never acknowledged, another device's key, or confirmed longer ago than the tower remembers: 30 days by default)."
                },
                "key": schema("IdemKey"),
                "outcome": schema("OpOutcome"),
                "fingerprint": sha256_schema("SHA-256 fingerprint of the operation the verdict is about (its device and body, not its key).")
            }
        }),
    );
    s.insert(
        "Operation".into(),
        json!({
            "type": "object",
            "description": "A device operation as forwarded and stored.",
            "additionalProperties": false,
            "required": ["key", "device", "op"],
            "properties": {
                "key": schema("IdemKey"),
                "device": {
                    "anyOf": [schema("DeviceId"), { "type": "integer", "minimum": 0, "maximum": 4294967295u64 }],
                    "description": "The device's identity; a number only in records stored before identities were 128-bit."
                },
                "op": schema("OpKind")
            }
        }),
    );
    s.insert(
        "OpOutcomeApplied".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["result", "seq"],
            "properties": {
                "result": { "const": "applied" },
                "seq": { "type": "integer", "minimum": 1, "description": "Position in the origin's apply log." }
            }
        }),
    );
    s.insert(
        "OpOutcomeConflict".into(),
        json!({
            "type": "object",
            "description": "Same key, different body than the first submission.",
            "additionalProperties": false,
            "required": ["result"],
            "properties": { "result": { "const": "conflict" } }
        }),
    );
    s.insert(
        "OpOutcomeRejected".into(),
        json!({
            "type": "object",
            "description": "Invalid; recorded so that it is not retried.",
            "additionalProperties": false,
            "required": ["result", "reason"],
            "properties": {
                "result": { "const": "rejected" },
                "reason": { "type": "string" }
            }
        }),
    );
    s.insert(
        "OpOutcome".into(),
        json!({
            "oneOf": [schema("OpOutcomeApplied"), schema("OpOutcomeConflict"), schema("OpOutcomeRejected")],
            "discriminator": {
                "propertyName": "result",
                "mapping": {
                    "applied": "#/components/schemas/OpOutcomeApplied",
                    "conflict": "#/components/schemas/OpOutcomeConflict",
                    "rejected": "#/components/schemas/OpOutcomeRejected"
                }
            }
        }),
    );
    s.insert(
        "OpReceipt".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["key", "outcome"],
            "properties": { "key": schema("IdemKey"), "outcome": schema("OpOutcome") }
        }),
    );
    s.insert(
        "PowerReading".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["battery_soc", "solar_w", "ups"],
            "properties": {
                "battery_soc": { "type": "number", "minimum": 0, "maximum": 1 },
                "solar_w": { "type": "number", "minimum": 0, "maximum": 4000000 },
                "load_w": { "type": "number", "minimum": 0, "maximum": 4000000, "default": 0 },
                "ups": { "type": "string", "enum": ["online", "on-battery", "failed"] }
            }
        }),
    );
    s
}

fn admin_schemas() -> Map<String, Value> {
    let mut s = Map::new();
    s.insert(
        "Role".into(),
        json!({ "type": "string", "enum": ["viewer", "operator", "chaos"] }),
    );
    s.insert(
        "AuditRecord".into(),
        json!({
            "type": "object",
            "description": "One line of DATA/audit.jsonl.",
            "required": ["time", "role", "token_id", "action", "target", "detail", "outcome"],
            "properties": {
                "time": { "type": "string", "format": "date-time", "description": "RFC 3339 UTC." },
                "role": schema("Role"),
                "token_id": { "type": "string", "pattern": "^[0-9a-f]{8}$", "description": "First 8 hex digits of the token's SHA-256 (never the token)." },
                "action": { "type": "string", "examples": ["publish", "fault.inject", "fault.clear"] },
                "target": { "type": "string" },
                "detail": { "description": "Parameters of the call; any JSON value." },
                "outcome": { "type": "string", "description": "`ok` or what failed." }
            }
        }),
    );
    s.insert(
        "AuditTail".into(),
        json!({
            "type": "object",
            "required": ["records", "skipped"],
            "properties": {
                "records": { "type": "array", "items": schema("AuditRecord"), "description": "Oldest first." },
                "skipped": { "type": "integer", "minimum": 0, "description": "Lines in the scanned range that did not parse (torn by a crash)." }
            }
        }),
    );
    let fault = |kind: &str, description: &str, props: Value, required: &[&str]| {
        let mut properties = json!({ "kind": { "const": kind } });
        for (k, v) in props.as_object().into_iter().flatten() {
            properties[k] = v.clone();
        }
        let mut req = vec!["kind".to_string()];
        req.extend(required.iter().map(|r| r.to_string()));
        json!({
            "type": "object",
            "description": description,
            "additionalProperties": false,
            "required": req,
            "properties": properties
        })
    };
    s.insert(
        "FaultFsyncFailure".into(),
        fault(
            "fsync-failure",
            "The next `count` fsyncs fail; without `count`, every fsync fails until the faults are cleared.",
            json!({ "count": { "type": "integer", "minimum": 0, "maximum": 4294967295u64, "description": "How many; 0 turns the fault off; values above 1000000 are taken as 1000000." } }),
            &[],
        ),
    );
    s.insert(
        "FaultWriteError".into(),
        fault(
            "write-error",
            "Writes and deletes fail with an I/O error.",
            json!({}),
            &[],
        ),
    );
    s.insert(
        "FaultDiskFull".into(),
        fault(
            "disk-full",
            "Writes fail as on a full disk.",
            json!({}),
            &[],
        ),
    );
    s.insert(
        "FaultLyingFsync".into(),
        fault(
            "lying-fsync",
            "Fsync answers success without making anything durable, as a disk cache that ignores flushes does: what is acknowledged meanwhile is lost by a crash.",
            json!({}),
            &[],
        ),
    );
    s.insert(
        "FaultSlowDisk".into(),
        fault(
            "slow-disk",
            "Every storage call takes `delay_ms` longer (0 turns it off).",
            json!({ "delay_ms": { "type": "integer", "minimum": 0, "maximum": 60000 } }),
            &["delay_ms"],
        ),
    );
    s.insert(
        "FaultCorrupt".into(),
        fault(
            "corrupt",
            "Flip a byte in `count` stored chunks (bit rot), at the next storage call.",
            json!({ "count": { "type": "integer", "minimum": 1, "maximum": 10000, "default": 1 } }),
            &[],
        ),
    );
    s.insert(
        "FaultRequest".into(),
        json!({
            "description": "A fault to inject into the node's store; `kind` selects it. A parameter the kind does not take is refused (400).",
            "oneOf": [
                schema("FaultFsyncFailure"), schema("FaultWriteError"), schema("FaultDiskFull"),
                schema("FaultLyingFsync"), schema("FaultSlowDisk"), schema("FaultCorrupt")
            ],
            "discriminator": {
                "propertyName": "kind",
                "mapping": {
                    "fsync-failure": "#/components/schemas/FaultFsyncFailure",
                    "write-error": "#/components/schemas/FaultWriteError",
                    "disk-full": "#/components/schemas/FaultDiskFull",
                    "lying-fsync": "#/components/schemas/FaultLyingFsync",
                    "slow-disk": "#/components/schemas/FaultSlowDisk",
                    "corrupt": "#/components/schemas/FaultCorrupt"
                }
            }
        }),
    );
    s.insert(
        "FaultsSnapshot".into(),
        json!({
            "type": "object",
            "description": "The store faults active now (sovereign_store::FaultsSnapshot).",
            "additionalProperties": false,
            "required": [
                "fsync_fail_next", "fsync_fail_until_cleared", "write_errors", "disk_full",
                "lying_fsync", "delay_ms", "corrupt_pending", "corrupted", "corrupt_error", "injected_total"
            ],
            "properties": {
                "fsync_fail_next": { "type": "integer", "minimum": 0, "description": "How many of the next fsyncs will fail (0 when off or failing until cleared)." },
                "fsync_fail_until_cleared": { "type": "boolean" },
                "write_errors": { "type": "boolean" },
                "disk_full": { "type": "boolean" },
                "lying_fsync": { "type": "boolean", "description": "Fsync answers Ok without making anything durable." },
                "delay_ms": { "type": "integer", "minimum": 0, "description": "Added to every storage call (0: off)." },
                "corrupt_pending": { "type": "integer", "minimum": 0, "description": "Chunks still to corrupt at the next call." },
                "corrupted": { "type": "array", "items": sha256_schema("A chunk corrupted so far."), "description": "Most recent last, at most 64." },
                "corrupt_error": { "type": ["string", "null"], "description": "Why the last corruption attempt failed, if it did." },
                "injected_total": { "type": "integer", "minimum": 0, "description": "Calls failed on purpose since start." }
            }
        }),
    );
    s
}

/// `m` without the schemas named in `unused` (each must exist: a typo here would keep a
/// schema the test then reports as orphaned).
fn without(mut m: Map<String, Value>, unused: &[&str]) -> Map<String, Value> {
    for name in unused {
        let removed = m.remove(*name);
        debug_assert!(removed.is_some(), "no schema {name} to leave out");
    }
    m
}

fn tower_schemas() -> Map<String, Value> {
    // The tower's public API speaks manifests and device submissions; catalog entries,
    // stored operations and receipts are between the tower and the origin.
    let unused = ["CatalogEntry", "Operation", "OpReceipt"];
    let mut s = without(wire_schemas(), &unused);
    s.append(&mut admin_schemas());
    s.insert(
        "TowerCatalog".into(),
        json!({
            "type": "object",
            "required": ["tower", "items"],
            "properties": {
                "tower": { "type": "string", "examples": ["tower-1"] },
                "items": { "type": "array", "items": schema("Manifest"), "description": "Servable items (complete, verified, durable), latest version each." }
            }
        }),
    );
    s.insert(
        "SubmitOp".into(),
        json!({
            "type": "object",
            "description": "An operation from a device; its key is the Idempotency-Key header, its device the one that authenticated (`Authorization: Device <secret>`).",
            "additionalProperties": false,
            "required": ["op"],
            "properties": {
                "device": { "allOf": [schema("DeviceId")], "description": "Optional; if present it must be the authenticated device's identity (else 403)." },
                "op": schema("OpKind")
            }
        }),
    );
    s.insert(
        "SubmitReply".into(),
        json!({
            "type": "object",
            "required": ["key", "status"],
            "properties": {
                "key": schema("IdemKey"),
                "status": {
                    "type": "string",
                    "enum": ["accepted"],
                    "description": "`accepted`: written and fsynced at the tower. A replay of an accepted key and body gets the same answer with `Idempotent-Replayed: true`."
                }
            }
        }),
    );
    s.insert(
        "TowerStatus".into(),
        json!({
            "type": "object",
            "description": "The tower's state machine status.",
            "properties": {
                "tower": { "type": "string", "examples": ["tower-1"] },
                "uptime_s": { "type": "number", "minimum": 0 },
                "active_link": { "type": ["string", "null"], "enum": ["fibre", "lte", "satellite", null] },
                "links_up": { "type": "array", "items": { "type": "string", "enum": ["fibre", "lte", "satellite"] } },
                "power_mode": { "type": "string", "enum": ["normal", "shed-p3", "shed-p2", "essential", "shutting-down", "off"] },
                "items_servable": { "type": "integer", "minimum": 0 },
                "items_pending": { "type": "integer", "minimum": 0 },
                "chunks_held": { "type": "integer", "minimum": 0 },
                "queued": {
                    "type": "object",
                    "description": "Chunk requests queued per class.",
                    "additionalProperties": false,
                    "required": ["P0", "P1", "P2", "P3"],
                    "properties": {
                        "P0": { "type": "integer", "minimum": 0 },
                        "P1": { "type": "integer", "minimum": 0 },
                        "P2": { "type": "integer", "minimum": 0 },
                        "P3": { "type": "integer", "minimum": 0 }
                    }
                },
                "in_flight": { "type": "integer", "minimum": 0 },
                "outbox": { "type": "integer", "minimum": 0 },
                "window": { "type": "integer", "minimum": 0 },
                "failovers": { "type": "integer", "minimum": 0 },
                "breaker_openings": { "type": "integer", "minimum": 0 },
                "servable": {
                    "type": "object",
                    "description": "Servable items: id -> version.",
                    "additionalProperties": { "type": "integer", "minimum": 1 }
                },
                "degraded": schema("Degraded"),
                "storage_free_bytes": { "type": ["integer", "null"], "minimum": 0, "description": "Free bytes on the data directory's file system (null: not watched)." },
                "origin": schema("OriginTrust")
            },
            "additionalProperties": true
        }),
    );
    s.insert(
        "OriginTrust".into(),
        json!({
            "type": "object",
            "description": "The origin this tower trusts. `mismatch`: another origin (or one announcing no id) answers at the uplinks' address; syncing is stopped until the trusted one returns or an operator re-homes the tower. `rehoming`: a re-home is reconciling with the next origin's catalog.",
            "additionalProperties": false,
            "required": ["trusted", "mismatch", "rehoming"],
            "properties": {
                "trusted": { "type": ["string", "null"], "pattern": "^[0-9a-f]{32}$", "description": "An origin id (32 hex digits), or null." },
                "mismatch": { "oneOf": [
                    {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["expected", "found"],
                        "properties": {
                            "expected": schema("OriginId"),
                            "found": { "type": ["string", "null"], "pattern": "^[0-9a-f]{32}$", "description": "An origin id (32 hex digits), or null." }
                        }
                    },
                    { "type": "null" }
                ] },
                "rehoming": { "type": "boolean" }
            }
        }),
    );
    s.insert(
        "OriginId".into(),
        json!({ "type": "string", "pattern": "^[0-9a-f]{32}$", "description": "An origin's identity, drawn at its first start." }),
    );
    s.insert(
        "Rehome".into(),
        json!({
            "type": "object",
            "description": "The re-home was ordered: the next origin to answer is trusted once everything held is reconciled with its catalog.",
            "additionalProperties": false,
            "required": ["rehoming", "before", "credential"],
            "properties": {
                "rehoming": { "const": true },
                "before": schema("OriginTrust"),
                "credential": { "type": "string", "enum": ["reloaded", "unchanged", "none"], "description": "What re-reading --credential FILE did." }
            }
        }),
    );
    s.insert(
        "Outbox".into(),
        json!({
            "type": "object",
            "description": "Device operations accepted (durable) and not yet acknowledged by the origin.",
            "additionalProperties": false,
            "required": ["count", "keys"],
            "properties": {
                "count": { "type": "integer", "minimum": 0 },
                "keys": { "type": "array", "items": schema("IdemKey") }
            }
        }),
    );
    s.insert(
        "Links".into(),
        json!({
            "type": "object",
            "description": "Uplinks: which are healthy, which is active, and per-link probe state.",
            "required": ["links"],
            "properties": {
                "links": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["link", "active", "healthy"],
                        "properties": {
                            "link": { "type": "string", "enum": ["fibre", "lte", "satellite"] },
                            "active": { "type": "boolean" },
                            "healthy": { "type": "boolean" },
                            "rtt_ms": { "type": ["number", "null"], "description": "Smoothed probe round trip." },
                            "loss_pct": { "type": ["number", "null"] },
                            "last_change_s": { "type": ["number", "null"], "description": "Seconds since start at the last up/down change." }
                        },
                        "additionalProperties": true
                    }
                }
            },
            "additionalProperties": true
        }),
    );
    s.insert(
        "Power".into(),
        json!({
            "type": "object",
            "description": "The last power reading and the power mode.",
            "properties": {
                "mode": { "type": "string", "enum": ["normal", "shed-p3", "shed-p2", "essential", "shutting-down", "off"] },
                "reading": { "oneOf": [schema("PowerReading"), { "type": "null" }] }
            },
            "additionalProperties": true
        }),
    );
    s
}

fn origin_schemas() -> Map<String, Value> {
    // No power telemetry at the origin, and devices ask their tower, not the origin, what
    // became of their operations.
    let mut s = without(wire_schemas(), &["PowerReading", "OpStatus"]);
    s.append(&mut admin_schemas());
    s.insert(
        "OriginCatalog".into(),
        json!({
            "type": "object",
            "required": ["entries", "origin"],
            "properties": {
                "entries": { "type": "array", "items": schema("CatalogEntry"), "description": "Entries with seq > since, in seq order." },
                "origin": { "type": ["string", "null"], "pattern": "^[0-9a-f]{32}$", "description": "This origin's id (also in the `x-sovereign-origin` header of every answer)." }
            }
        }),
    );
    s.insert(
        "TowerList".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["towers", "allow_unauthenticated"],
            "properties": {
                "towers": { "type": "array", "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["tower", "credential_id", "issued"],
                    "properties": {
                        "tower": { "type": "integer", "minimum": 0 },
                        "credential_id": { "type": "string", "pattern": "^[0-9a-f]{8}$", "description": "First 8 hex digits of the credential's SHA-256 (never the credential)." },
                        "issued": { "type": "string", "format": "date-time" }
                    }
                } },
                "allow_unauthenticated": { "type": "boolean", "description": "--allow-unauthenticated-towers." }
            }
        }),
    );
    s.insert(
        "IssuedCredential".into(),
        json!({
            "type": "object",
            "description": "A tower's new credential: shown this once (the origin keeps its SHA-256 only). An earlier credential of the tower stops working.",
            "additionalProperties": false,
            "required": ["tower", "credential", "credential_id", "replaced"],
            "properties": {
                "tower": { "type": "integer", "minimum": 0 },
                "credential": { "type": "string", "pattern": "^[0-9a-f]{64}$" },
                "credential_id": { "type": "string", "pattern": "^[0-9a-f]{8}$" },
                "replaced": { "type": "boolean" }
            }
        }),
    );
    s.insert(
        "RevokedCredential".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["tower", "revoked"],
            "properties": { "tower": { "type": "integer", "minimum": 0 }, "revoked": { "const": true } }
        }),
    );
    s.insert(
        "ForwardRequest".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["ops"],
            "properties": { "ops": { "type": "array", "items": schema("Operation") } }
        }),
    );
    s.insert(
        "ForwardReply".into(),
        json!({
            "type": "object",
            "required": ["receipts"],
            "properties": {
                "receipts": { "type": "array", "items": schema("OpReceipt"), "description": "One receipt per durable operation (applied or recorded), same order as the request; an operation without a receipt is to be forwarded again." }
            }
        }),
    );
    s.insert(
        "OriginStatus".into(),
        json!({
            "type": "object",
            "required": ["uptime_s", "failed", "items", "applied", "pending_fsyncs"],
            "properties": {
                "uptime_s": { "type": "number", "minimum": 0 },
                "failed": { "type": "boolean", "description": "Storage failed; the origin is recovering." },
                "items": { "type": "integer", "minimum": 0, "description": "Items in the catalog." },
                "applied": { "type": "integer", "minimum": 0, "description": "Operations in the apply log." },
                "pending_fsyncs": { "type": "integer", "minimum": 0 },
                "degraded": schema("Degraded"),
                "storage_free_bytes": { "type": ["integer", "null"], "minimum": 0, "description": "Free bytes on the data directory's file system (null: not watched)." },
                "origin": { "type": ["string", "null"], "pattern": "^[0-9a-f]{32}$", "description": "An origin id (32 hex digits), or null." },
                "towers_credentialed": { "type": "integer", "minimum": 0 },
                "allow_unauthenticated_towers": { "type": "boolean" }
            },
            "additionalProperties": true
        }),
    );
    s.insert(
        "OpRecord".into(),
        json!({
            "type": "object",
            "description": "The recorded outcome of a device operation.",
            "additionalProperties": false,
            "required": ["key", "outcome", "tower"],
            "properties": {
                "key": schema("IdemKey"),
                "outcome": schema("OpOutcome"),
                "tower": { "type": ["integer", "null"], "minimum": 0, "description": "The tower that forwarded it first (null: recorded before the origin kept it)." }
            }
        }),
    );
    s.insert(
        "Ledger".into(),
        json!({
            "type": "object",
            "description": "Ledger totals and balances in integer minor units; `conserved` is the check that the balances add up to what was contributed.",
            "required": ["contributed_minor", "held_minor", "conserved", "communities", "nations", "reserve", "applied"],
            "properties": {
                "contributed_minor": { "type": "string", "pattern": "^[0-9]+$", "description": "A decimal string: the total can exceed 2^53." },
                "held_minor": { "type": "string", "pattern": "^[0-9]+$", "description": "The sum of the balances, a decimal string." },
                "conserved": { "type": "boolean" },
                "communities": { "type": "object", "additionalProperties": { "type": "integer", "minimum": 0 }, "description": "Community -> balance." },
                "nations": { "type": "object", "additionalProperties": { "type": "integer", "minimum": 0 }, "description": "Nation -> balance." },
                "reserve": { "type": "integer", "minimum": 0 },
                "applied": { "type": "integer", "minimum": 0, "description": "Operations in the apply log." }
            },
            "additionalProperties": true
        }),
    );
    s
}

// ----- parameters, headers, responses ----------------------------------------------------

/// An item id in a path: no control characters (Unicode `Cc`, as `char::is_control`).
const ITEM_ID_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$";

fn parameters() -> Value {
    json!({
        "ItemId": {
            "name": "id", "in": "path", "required": true,
            "schema": { "type": "string", "minLength": 1, "maxLength": 256, "pattern": ITEM_ID_PATTERN },
            "description": "The item's id: 1 to 256 bytes of UTF-8 without control characters (else 400)."
        },
        "ChunkSha256": { "name": "sha256", "in": "path", "required": true, "schema": sha256_schema("The chunk's SHA-256.") },
        "IdempotencyKey": {
            "name": "Idempotency-Key", "in": "header", "required": true,
            "schema": schema("IdemKey"),
            "description": "The operation's key. Resubmitting the same key and body is safe (202 again, with `Idempotent-Replayed: true`); the same key with another body is 422."
        },
        "Range": {
            "name": "Range", "in": "header", "required": false,
            "schema": { "type": "string", "pattern": "^bytes=" },
            "description": "One byte range (`bytes=0-1023`, `bytes=1024-`, `bytes=-512`): 206 with that part, 416 when it lies outside the content. A header that is malformed or asks for several ranges is ignored (RFC 9110 §14.2): 200 with the whole content."
        },
        "IfNoneMatch": {
            "name": "If-None-Match", "in": "header", "required": false,
            "schema": { "type": "string" },
            "description": "An ETag the client holds; a match gives 304 with no body."
        },
        "Since": {
            "name": "since", "in": "query", "required": false,
            "schema": { "type": "integer", "minimum": 0, "default": 0 },
            "description": "Only entries with seq > since."
        },
        "AuditN": {
            "name": "n", "in": "query", "required": false,
            "schema": { "type": "integer", "minimum": 0, "default": 100 },
            "description": "How many of the last entries (at most 10000 are returned)."
        },
        "PublishItem": { "name": "item", "in": "query", "required": true, "schema": { "type": "string", "minLength": 1, "maxLength": 256 }, "description": "The item's id (no control characters)." },
        "OpKey": { "name": "key", "in": "path", "required": true, "schema": schema("IdemKey"), "description": "The operation's idempotency key." },
        "PublishPriority": { "name": "priority", "in": "query", "required": true, "schema": schema("Priority") },
        "TowerHeader": {
            "name": "x-sovereign-tower", "in": "header", "required": true,
            "schema": { "type": "integer", "minimum": 0, "maximum": 4294967295u64 },
            "description": "The calling tower's number; the bearer credential must be this tower's."
        },
        "ExpectOrigin": {
            "name": "x-sovereign-expect-origin", "in": "header", "required": false,
            "schema": { "type": "string", "pattern": "^[0-9a-f]{32}$" },
            "description": "The origin id the tower trusts; another origin answers 412 and does nothing."
        },
        "TowerNumber": { "name": "tower", "in": "path", "required": true, "schema": { "type": "integer", "minimum": 0, "maximum": 4294967295u64 }, "description": "The tower's number." }
    })
}

fn headers() -> Value {
    json!({
        "ETag": { "schema": { "type": "string" }, "description": "`\"<sha256 hex>\"` of the representation." },
        "AcceptRanges": { "schema": { "type": "string", "const": "bytes" } },
        "ContentRange": { "schema": { "type": "string" }, "description": "`bytes a-b/size` (206), `bytes */size` (416)." },
        "CacheControl": { "schema": { "type": "string" }, "description": "Chunks: `public, max-age=31536000, immutable` (content-addressed)." },
        "RetryAfter": { "schema": { "type": "integer", "minimum": 0 }, "description": "Seconds to wait before retrying." },
        "WWWAuthenticate": { "schema": { "type": "string" }, "description": "`Bearer realm=\"sovereign-admin\"`." },
        "IdempotentReplayed": { "schema": { "type": "string", "const": "true" }, "description": "Present on the answer to a replay: the key and body were accepted before." },
        "Allow": { "schema": { "type": "string" }, "description": "The methods the path serves." },
        "ItemVersion": { "schema": { "type": "integer", "minimum": 1 }, "description": "`X-Sovereign-Version`: the version served." },
        "ItemPriority": { "schema": schema("Priority"), "description": "`X-Sovereign-Priority`: the item's class." }
    })
}

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": json_body("Error") })
}

fn responses() -> Value {
    let mut m = Map::new();
    m.insert("BadRequest".into(), error_response("The request is malformed: bad JSON, a missing or invalid field or header (named in `field`)."));
    m.insert(
        "Unauthorized".into(),
        json!({
            "description": "No admin token, an unknown one, or the admin API has no token configured (fail closed).",
            "headers": { "WWW-Authenticate": r("headers", "WWWAuthenticate") },
            "content": json_body("Error")
        }),
    );
    m.insert(
        "DeviceUnauthorized".into(),
        json!({
            "description": "No `Authorization: Device <secret>`, or a secret that is not 64 hex digits (field `Authorization`).",
            "headers": { "WWW-Authenticate": { "schema": { "type": "string" }, "description": "`Device realm=\"sovereign-tower\"`." } },
            "content": json_body("Error")
        }),
    );
    m.insert(
        "DeviceForbidden".into(),
        error_response("The Idempotency-Key belongs to another device, or the body names another device than the one that authenticated. Nothing was stored."),
    );
    m.insert(
        "Forbidden".into(),
        error_response("The token is valid but its role does not allow this call."),
    );
    m.insert(
        "TowerUnauthorized".into(),
        json!({
            "description": "No tower credential, an unknown one, no x-sovereign-tower header, or no credential provisioned at this origin (fail closed). `WWW-Authenticate: Bearer realm=\"sovereign-towers\"`.",
            "headers": { "WWW-Authenticate": r("headers", "WWWAuthenticate") },
            "content": json_body("Error")
        }),
    );
    m.insert(
        "TowerForbidden".into(),
        error_response("The credential belongs to another tower than the one named in x-sovereign-tower (or the tower was revoked meanwhile)."),
    );
    m.insert(
        "PreconditionFailed".into(),
        error_response("x-sovereign-expect-origin names another origin: nothing was done (field `x-sovereign-expect-origin`)."),
    );
    m.insert(
        "NotFound".into(),
        error_response("No such item, chunk or path."),
    );
    m.insert(
        "Conflict".into(),
        json!({
            "description": "An operation with this key is being made durable right now: retry shortly.",
            "headers": { "Retry-After": r("headers", "RetryAfter") },
            "content": json_body("Error")
        }),
    );
    m.insert(
        "UnsupportedMediaType".into(),
        error_response("The body is not `application/json` (field `Content-Type`)."),
    );
    m.insert(
        "MethodNotAllowed".into(),
        json!({
            "description": "The path exists but does not serve this method.",
            "headers": { "Allow": r("headers", "Allow") },
            "content": json_body("Error")
        }),
    );
    m.insert(
        "PayloadTooLarge".into(),
        error_response("The body is larger than the server accepts."),
    );
    m.insert(
        "RequestTimeout".into(),
        error_response(
            "The body did not arrive within the listener's body timeout; the connection is closed.",
        ),
    );
    m.insert(
        "TooManyRequests".into(),
        json!({
            "description": "This client address is over its rate (reads, or operations); retry after the given delay.",
            "headers": { "Retry-After": r("headers", "RetryAfter") },
            "content": json_body("Error")
        }),
    );
    m.insert(
        "RangeNotSatisfiable".into(),
        json!({
            "description": "The range lies outside the content.",
            "headers": { "Content-Range": r("headers", "ContentRange") },
            "content": json_body("Error")
        }),
    );
    m.insert("Unprocessable".into(), error_response("Well-formed but refused: the same Idempotency-Key with a different body, or an invalid value."));
    m.insert(
        "Unavailable".into(),
        json!({
            "description": "Not now: storage not durable yet, shutting down, shedding load, or (for items) not servable yet. Retry after the given delay.",
            "headers": { "Retry-After": r("headers", "RetryAfter") },
            "content": json_body("Error")
        }),
    );
    m.insert(
        "NotModified".into(),
        json!({
            "description": "The client's copy (If-None-Match) is current.",
            "headers": { "ETag": r("headers", "ETag") }
        }),
    );
    Value::Object(m)
}

fn components(schemas: Map<String, Value>) -> Value {
    json!({
        "schemas": Value::Object(schemas),
        "parameters": parameters(),
        "headers": headers(),
        "responses": responses(),
        "securitySchemes": {
            "deviceSecret": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "`Device <secret>`: the device's 32-byte secret as 64 hex digits, generated on first use and kept in the device's state directory. The tower derives the device's identity from it; it accepts only keys that belong to that identity."
            },
            "adminBearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "One token per role (viewer, operator, chaos), at least 16 characters, configured with --admin-token-<role> or SOVEREIGN_ADMIN_TOKEN_<ROLE>. Operator and chaos each include viewer. Without any token configured every admin call is 401."
            },
            "towerBearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "A tower's own credential (issued by POST /admin/towers/{tower} on the origin's admin listener), with the tower's number in x-sovereign-tower. Only the origin's tower-facing routes use it."
            }
        }
    })
}

// ----- operations ---------------------------------------------------------------------

fn std_responses(codes: &[(&str, &str)]) -> Map<String, Value> {
    codes
        .iter()
        .map(|(code, name)| ((*code).to_string(), r("responses", name)))
        .collect()
}

fn health_paths(what: &str) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert(
        "/healthz".into(),
        json!({ "get": {
            "operationId": "healthz", "tags": ["ops"], "security": [],
            "summary": format!("Liveness: the {what} process answers."),
            "responses": { "200": {
                "description": "Alive: `ok`.",
                "content": { "text/plain": { "schema": { "type": "string", "const": "ok\n" } } }
            }}
        }}),
    );
    p.insert(
        "/readyz".into(),
        json!({ "get": {
            "operationId": "readyz", "tags": ["ops"], "security": [],
            "summary": format!("Readiness: the {what} recovered its durable state and serves."),
            "responses": {
                "200": {
                    "description": "Ready.",
                    "content": { "application/json": { "schema": {
                        "type": "object",
                        "required": ["ready"],
                        "properties": { "ready": { "const": true } },
                        "additionalProperties": true
                    }}}
                },
                "503": {
                    "description": "Not ready: shutting down or recovering (an `Error` body), or degraded (a `NotReady` body naming the reasons). `Retry-After` says when to look again.",
                    "headers": { "Retry-After": r("headers", "RetryAfter") },
                    "content": { "application/json": { "schema": { "oneOf": [schema("NotReady"), schema("Error")] } } }
                }
            }
        }}),
    );
    p.insert(
        "/metrics".into(),
        json!({ "get": {
            "operationId": "metrics", "tags": ["ops"], "security": [],
            "summary": "Prometheus metrics (text exposition format 0.0.4).",
            "responses": { "200": {
                "description": "The exposition.",
                "content": { "text/plain; version=0.0.4": { "schema": { "type": "string" } } }
            }}
        }}),
    );
    p.insert(
        "/openapi.json".into(),
        json!({ "get": {
            "operationId": "openapi", "tags": ["ops"], "security": [],
            "summary": "This document.",
            "responses": { "200": {
                "description": "OpenAPI 3.1 document.",
                "content": { "application/json": { "schema": { "type": "object" } } }
            }}
        }}),
    );
    p
}

/// An admin operation needing `role`.
fn admin_op(
    id: &str,
    role: &str,
    summary: &str,
    ok: (&str, Value),
    extra: &[(&str, &str)],
) -> Value {
    let mut responses = Map::new();
    responses.insert(ok.0.into(), ok.1);
    responses.append(&mut std_responses(&[
        ("401", "Unauthorized"),
        ("403", "Forbidden"),
    ]));
    responses.append(&mut std_responses(extra));
    json!({
        "operationId": id,
        "tags": ["admin"],
        "summary": summary,
        "description": format!("Admin listener. Needs role `{role}`."),
        "security": [{ "adminBearer": [] }],
        "x-sovereign-role": role,
        "responses": Value::Object(responses)
    })
}

/// `op` as a call only a known tower may make: its credential, its number, the origin it
/// expects, and the refusals that go with them.
fn tower_call(mut op: Value) -> Value {
    op["security"] = json!([{ "towerBearer": [] }]);
    let mut params = vec![
        r("parameters", "TowerHeader"),
        r("parameters", "ExpectOrigin"),
    ];
    if let Some(existing) = op["parameters"].as_array() {
        params.extend(existing.iter().cloned());
    }
    op["parameters"] = Value::Array(params);
    if let Some(responses) = op["responses"].as_object_mut() {
        responses.insert("401".into(), r("responses", "TowerUnauthorized"));
        responses.insert("403".into(), r("responses", "TowerForbidden"));
        responses.insert("412".into(), r("responses", "PreconditionFailed"));
    }
    op["description"] = json!(
        "Only known towers: `x-sovereign-tower` and that tower's credential as a bearer token, checked before anything else. Every answer carries this origin's id in `x-sovereign-origin`."
    );
    op
}

fn chunk_path() -> Value {
    json!({ "get": {
        "operationId": "getChunk", "tags": ["content"], "security": [],
        "summary": "A chunk's bytes by SHA-256 (content-addressed, immutable).",
        "parameters": [r("parameters", "ChunkSha256"), r("parameters", "IfNoneMatch")],
        "responses": {
            "200": {
                "description": "The chunk; its SHA-256 is the path's.",
                "headers": { "ETag": r("headers", "ETag"), "Cache-Control": r("headers", "CacheControl") },
                "content": { "application/octet-stream": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } } }
            },
            "304": r("responses", "NotModified"),
            "400": r("responses", "BadRequest"),
            "404": r("responses", "NotFound"),
            "503": r("responses", "Unavailable")
        }
    }})
}

fn faults_path() -> Value {
    let mut inject = admin_op(
        "injectFault",
        "chaos",
        "Inject a store fault (audited, refusals too).",
        (
            "201",
            ok_json("Injected: the faults now active.", "FaultsSnapshot"),
        ),
        &[("400", "BadRequest"), ("413", "PayloadTooLarge")],
    );
    inject["requestBody"] = json!({ "required": true, "content": json_body("FaultRequest") });
    json!({
        "get": admin_op("listFaults", "viewer", "The store faults active now.", ("200", ok_json("The faults.", "FaultsSnapshot")), &[]),
        "post": inject,
        "delete": admin_op(
            "clearFaults", "chaos", "Clear every injected fault (audited).",
            ("200", ok_json("Cleared: the faults now (all off).", "FaultsSnapshot")), &[],
        )
    })
}

fn audit_path() -> Value {
    let mut op = admin_op(
        "getAudit",
        "viewer",
        "The last entries of the audit trail.",
        ("200", ok_json("Oldest first.", "AuditTail")),
        &[("400", "BadRequest")],
    );
    op["parameters"] = json!([r("parameters", "AuditN")]);
    op["description"] = json!(
        "Admin listener. Needs role `viewer`. `n` is the only query parameter; another is 400."
    );
    json!({ "get": op })
}

fn info(title: &str, description: &str) -> Value {
    json!({
        "title": title,
        "version": env!("CARGO_PKG_VERSION"),
        "description": description,
        "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" }
    })
}

fn tags() -> Value {
    json!([
        { "name": "content", "description": "Catalog, items and chunks." },
        { "name": "ops", "description": "Health, readiness, metrics, this document." },
        { "name": "operations", "description": "Device operations (messages, forms, contributions)." },
        { "name": "admin", "description": "Admin listener (separate port), bearer token per role; every mutation is appended to DATA/audit.jsonl." }
    ])
}

/// The tower's API: devices on the public listener, operators on the admin listener.
pub fn tower_openapi() -> Value {
    let mut paths = health_paths("tower");
    paths.insert(
        "/v1/catalog".into(),
        json!({ "get": {
            "operationId": "getCatalog", "tags": ["content"], "security": [],
            "summary": "What this tower can serve now.",
            "responses": { "200": ok_json("Servable items.", "TowerCatalog"), "503": r("responses", "Unavailable") }
        }}),
    );
    paths.insert(
        "/v1/items/{id}".into(),
        json!({ "get": {
            "operationId": "getItem", "tags": ["content"], "security": [],
            "summary": "An item's bytes (latest servable version), with ranges and revalidation.",
            "parameters": [r("parameters", "ItemId"), r("parameters", "Range"), r("parameters", "IfNoneMatch")],
            "responses": {
                "200": {
                    "description": "The whole item.",
                    "headers": {
                        "ETag": r("headers", "ETag"), "Accept-Ranges": r("headers", "AcceptRanges"),
                        "X-Sovereign-Version": r("headers", "ItemVersion"), "X-Sovereign-Priority": r("headers", "ItemPriority")
                    },
                    "content": { "application/octet-stream": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } } }
                },
                "206": {
                    "description": "The requested range.",
                    "headers": {
                        "ETag": r("headers", "ETag"), "Content-Range": r("headers", "ContentRange"), "Accept-Ranges": r("headers", "AcceptRanges"),
                        "X-Sovereign-Version": r("headers", "ItemVersion"), "X-Sovereign-Priority": r("headers", "ItemPriority")
                    },
                    "content": { "application/octet-stream": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } } }
                },
                "304": r("responses", "NotModified"),
                "400": r("responses", "BadRequest"),
                "404": r("responses", "NotFound"),
                "416": r("responses", "RangeNotSatisfiable"),
                "503": r("responses", "Unavailable")
            }
        }}),
    );
    paths.insert(
        "/v1/items/{id}/manifest".into(),
        json!({ "get": {
            "operationId": "getManifest", "tags": ["content"], "security": [],
            "summary": "The manifest of an item's latest servable version.",
            "parameters": [r("parameters", "ItemId")],
            "responses": {
                "200": {
                    "description": "The manifest.",
                    "headers": { "ETag": r("headers", "ETag") },
                    "content": json_body("Manifest")
                },
                "400": r("responses", "BadRequest"),
                "404": r("responses", "NotFound"),
                "503": r("responses", "Unavailable")
            }
        }}),
    );
    paths.insert("/v1/chunks/{sha256}".into(), chunk_path());
    paths.insert(
        "/v1/ops".into(),
        json!({ "post": {
            "operationId": "submitOp", "tags": ["operations"], "security": [{ "deviceSecret": [] }],
            "summary": "Submit a device operation; acknowledged only once durable at the tower. Refused (nothing stored) when the key or the operation is another device's (403), when the origin would reject it (422 naming the field), or when the key was used before with another body — also after the origin confirmed it (422, field `Idempotency-Key`).",
            "parameters": [r("parameters", "IdempotencyKey")],
            "requestBody": { "required": true, "content": json_body("SubmitOp") },
            "responses": {
                "202": {
                    "description": "Accepted: written and fsynced; the tower will forward it. A replay of an accepted key and body gets the same answer with `Idempotent-Replayed: true`.",
                    "headers": { "Idempotent-Replayed": r("headers", "IdempotentReplayed") },
                    "content": json_body("SubmitReply")
                },
                "400": r("responses", "BadRequest"),
                "401": r("responses", "DeviceUnauthorized"),
                "403": r("responses", "DeviceForbidden"),
                "408": r("responses", "RequestTimeout"),
                "409": r("responses", "Conflict"),
                "413": r("responses", "PayloadTooLarge"),
                "415": r("responses", "UnsupportedMediaType"),
                "422": r("responses", "Unprocessable"),
                "429": r("responses", "TooManyRequests"),
                "503": {
                    "description": "Not acknowledged; retry with the same Idempotency-Key (the key makes the retry safe). `error` says which: `not stored (…)` — the write was refused, the outbox is full or the tower is shutting down: nothing was stored; or `not acknowledged, outcome unknown: …` — the commit failed after the write, and a failed commit may have reached the disk: the operation may or may not have been stored, and only a retry with the same key settles it.",
                    "headers": { "Retry-After": r("headers", "RetryAfter") },
                    "content": json_body("Error")
                }
            }
        }}),
    );
    paths.insert(
        "/v1/ops/{key}".into(),
        json!({ "get": {
            "operationId": "getOpStatus", "tags": ["operations"], "security": [{ "deviceSecret": [] }],
            "summary": "What became of one of the presenting device's operations: pending at the tower, the origin's verdict, or unknown. Another device's key is always unknown.",
            "parameters": [r("parameters", "OpKey")],
            "responses": {
                "200": { "description": "The status.", "content": json_body("OpStatus") },
                "400": r("responses", "BadRequest"),
                "401": r("responses", "DeviceUnauthorized"),
                "429": r("responses", "TooManyRequests"),
                "503": r("responses", "Unavailable")
            }
        }}),
    );
    paths.insert(
        "/admin/status".into(),
        json!({ "get": admin_op("getStatus", "viewer", "The tower's status.", ("200", ok_json("Status.", "TowerStatus")), &[]) }),
    );
    paths.insert(
        "/admin/links".into(),
        json!({ "get": admin_op("getLinks", "viewer", "Uplink health and the active uplink.", ("200", ok_json("Links.", "Links")), &[]) }),
    );
    let mut power_post = admin_op(
        "postPowerReading",
        "operator",
        "Hand the power manager a reading, as telemetry would (audited).",
        (
            "202",
            ok_json(
                "Delivered to the power manager: the reading.",
                "PowerReading",
            ),
        ),
        &[("400", "BadRequest"), ("413", "PayloadTooLarge")],
    );
    power_post["requestBody"] = json!({ "required": true, "content": json_body("PowerReading") });
    paths.insert(
        "/admin/power".into(),
        json!({
            "get": admin_op("getPower", "viewer", "Power mode and the last reading.", ("200", ok_json("Power.", "Power")), &[]),
            "post": power_post
        }),
    );
    paths.insert(
        "/admin/rehome".into(),
        json!({ "post": admin_op(
            "rehome", "operator",
            "Re-home the tower (audited): re-read --credential FILE, then trust the origin that answers next once everything held is reconciled with its catalog (identical items kept, others replaced, missing ones withdrawn).",
            ("202", ok_json("Ordered.", "Rehome")),
            &[("422", "Unprocessable"), ("503", "Unavailable")],
        ) }),
    );
    paths.insert(
        "/admin/outbox".into(),
        json!({ "get": admin_op("getOutbox", "viewer", "Accepted device operations the origin has not acknowledged yet.", ("200", ok_json("The outbox.", "Outbox")), &[]) }),
    );
    paths.insert("/admin/faults".into(), faults_path());
    paths.insert("/admin/audit".into(), audit_path());
    json!({
        "openapi": OPENAPI_VERSION,
        "info": info(
            "Sovereign tower",
            "A tower serves content to nearby devices from its verified store and accepts device operations, which it makes durable and forwards to the origin. Errors are JSON `{\"error\": …, \"field\": …}`; an unknown path is 404 and a known path with another method 405 (with `Allow`), both with that body. Any request may also get, from the listener before any route: 400 (a malformed request line or header), 414 (a request target over 8 KiB), 431 (a head over 64 KiB or 100 headers), 408 (a body that did not arrive within the body timeout), 429 with `Retry-After` (this client address is over its rate, or its connection limit), 503 (the listener is at its connection limit) — each with the same JSON body."
        ),
        "tags": tags(),
        "security": [],
        "paths": Value::Object(paths),
        "components": components(tower_schemas())
    })
}

/// The origin's API: towers on the public listener, operators on the admin listener.
pub fn origin_openapi() -> Value {
    let mut paths = health_paths("origin");
    paths.insert(
        "/v1/catalog".into(),
        json!({ "get": tower_call(json!({
            "operationId": "getCatalog", "tags": ["content"],
            "summary": "Catalog entries published after `since`.",
            "parameters": [r("parameters", "Since")],
            "responses": {
                "200": ok_json("Entries in seq order.", "OriginCatalog"),
                "400": r("responses", "BadRequest"),
                "503": r("responses", "Unavailable")
            }
        }))}),
    );
    let mut chunk = chunk_path();
    chunk["get"] = tower_call(chunk["get"].clone());
    paths.insert("/v1/chunks/{sha256}".into(), chunk);
    paths.insert(
        "/v1/forward".into(),
        json!({ "post": tower_call(json!({
            "operationId": "forward", "tags": ["operations"],
            "summary": "Apply a batch of operations forwarded by a tower (idempotent per key); the origin records which tower forwarded each.",
            "requestBody": { "required": true, "content": json_body("ForwardRequest") },
            "responses": {
                "200": ok_json("Receipts for the durable operations.", "ForwardReply"),
                "400": r("responses", "BadRequest"),
                "413": r("responses", "PayloadTooLarge"),
                "503": r("responses", "Unavailable")
            }
        }))}),
    );
    paths.insert(
        "/admin/towers".into(),
        json!({ "get": admin_op("getTowers", "viewer", "The towers holding a credential (ids of the credentials, never the secrets).", ("200", ok_json("The towers.", "TowerList")), &[]) }),
    );
    let mut issue = admin_op(
        "issueTowerCredential",
        "operator",
        "Issue a new random credential for the tower (audited); shown once. An earlier one stops working.",
        ("201", ok_json("The credential.", "IssuedCredential")),
        &[("400", "BadRequest")],
    );
    issue["parameters"] = json!([r("parameters", "TowerNumber")]);
    let mut revoke = admin_op(
        "revokeTowerCredential",
        "operator",
        "Revoke the tower's credential (audited): its requests are refused from now on.",
        ("200", ok_json("Revoked.", "RevokedCredential")),
        &[("400", "BadRequest"), ("404", "NotFound")],
    );
    revoke["parameters"] = json!([r("parameters", "TowerNumber")]);
    paths.insert(
        "/admin/towers/{tower}".into(),
        json!({ "post": issue, "delete": revoke }),
    );
    paths.insert(
        "/admin/status".into(),
        json!({ "get": admin_op("getStatus", "viewer", "The origin's status.", ("200", ok_json("Status.", "OriginStatus")), &[]) }),
    );
    let mut publish = admin_op(
        "publish",
        "operator",
        "Publish a new version of an item (audited): the body is the content.",
        (
            "201",
            ok_json("Published: the new catalog entry.", "CatalogEntry"),
        ),
        &[
            ("400", "BadRequest"),
            ("413", "PayloadTooLarge"),
            ("422", "Unprocessable"),
            ("503", "Unavailable"),
        ],
    );
    publish["parameters"] = json!([
        r("parameters", "PublishItem"),
        r("parameters", "PublishPriority")
    ]);
    publish["requestBody"] = json!({
        "required": true,
        "content": { "application/octet-stream": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } } }
    });
    paths.insert("/admin/publish".into(), json!({ "post": publish }));
    paths.insert(
        "/admin/ledger".into(),
        json!({ "get": admin_op("getLedger", "viewer", "Ledger totals and balances.", ("200", ok_json("The ledger.", "Ledger")), &[]) }),
    );
    let mut op = admin_op(
        "getOp",
        "viewer",
        "The recorded outcome of a device operation, by its idempotency key.",
        ("200", ok_json("The outcome.", "OpRecord")),
        &[("400", "BadRequest"), ("404", "NotFound")],
    );
    op["parameters"] = json!([r("parameters", "OpKey")]);
    paths.insert("/admin/ops/{key}".into(), json!({ "get": op }));
    paths.insert("/admin/faults".into(), faults_path());
    paths.insert("/admin/audit".into(), audit_path());
    json!({
        "openapi": OPENAPI_VERSION,
        "info": info(
            "Sovereign origin",
            "The origin publishes content (catalog and chunks) to towers and applies the device operations they forward. Errors are JSON `{\"error\": …, \"field\": …}`; an unknown path is 404 and a known path with another method 405 (with `Allow`), both with that body. Any request may also get, from the listener before any route: 400 (a malformed request line or header), 414 (a request target over 8 KiB), 431 (a head over 64 KiB or 100 headers), 408 (a body that did not arrive within the body timeout), 429 with `Retry-After` (this client address is over its rate, or its connection limit), 503 (the listener is at its connection limit) — each with the same JSON body."
        ),
        "tags": tags(),
        "security": [],
        "paths": Value::Object(paths),
        "components": components(origin_schemas())
    })
}

/// The (method in upper case, path) of every operation in `doc`, sorted.
pub fn operations(doc: &Value) -> Vec<(String, String)> {
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    let mut out = Vec::new();
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for (path, item) in paths {
            for m in METHODS {
                if item.get(m).is_some() {
                    out.push((m.to_ascii_uppercase(), path.clone()));
                }
            }
        }
    }
    out.sort();
    out
}

/// Check `v` against the schema `#/components/schemas/<name>` of `doc`; the first
/// mismatch, named by its JSON path. See [`check_schema`].
pub fn validate(doc: &Value, name: &str, v: &Value) -> Result<(), String> {
    check_schema(
        doc,
        &json!({ "$ref": format!("#/components/schemas/{name}") }),
        v,
        name,
    )
}

/// Whether `s` matches `pattern`, for the patterns these documents use (there is no
/// regex engine here); `None` for any other pattern.
fn pattern_matches(pattern: &str, s: &str) -> Option<bool> {
    let hex_lower = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    Some(match pattern {
        "^[0-9a-f]{64}$" => hex_lower(s, 64),
        "^[0-9a-f]{8}$" => hex_lower(s, 8),
        "^[0-9a-f]{32}$" => hex_lower(s, 32),
        "^[0-9]+$" => !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()),
        "^[\\x21-\\x7e]{1,256}$" => {
            (1..=256).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
        }
        "^bytes=" => s.starts_with("bytes="),
        ITEM_ID_PATTERN => !s.is_empty() && !s.chars().any(char::is_control),
        _ => return None,
    })
}

/// A small JSON Schema checker for the keywords these documents use: `$ref`, `type`,
/// `const`, `enum`, `required`, `properties`, `additionalProperties` (`false` or a
/// schema), `items`, `prefixItems`, `minItems`/`maxItems`, `oneOf`,
/// `minimum`/`maximum`, `minLength`/`maxLength`, and the documents' `pattern`s (an
/// unknown pattern is an error, not a pass). Errors name the JSON path from `at`.
pub fn check_schema(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(t) = schema["$ref"].as_str() {
        let target = t
            .strip_prefix('#')
            .and_then(|p| doc.pointer(p))
            .ok_or(format!("{at}: dangling {t}"))?;
        return check_schema(doc, target, v, at);
    }
    let type_ok = |t: &str| match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_u64() || v.is_i64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    };
    match &schema["type"] {
        Value::String(t) if !type_ok(t) => return Err(format!("{at}: not a {t}: {v}")),
        Value::Array(ts) if !ts.iter().any(|t| t.as_str().is_some_and(type_ok)) => {
            return Err(format!("{at}: not any of {ts:?}: {v}"));
        }
        _ => {}
    }
    if let Some(c) = schema.get("const") {
        if c != v {
            return Err(format!("{at}: expected {c}, got {v}"));
        }
    }
    if let Some(e) = schema["enum"].as_array() {
        if !e.contains(v) {
            return Err(format!("{at}: {v} not in {e:?}"));
        }
    }
    if let (Some(min), Some(x)) = (schema["minimum"].as_f64(), v.as_f64()) {
        if x < min {
            return Err(format!("{at}: {x} < {min}"));
        }
    }
    if let (Some(max), Some(x)) = (schema["maximum"].as_f64(), v.as_f64()) {
        if x > max {
            return Err(format!("{at}: {x} > {max}"));
        }
    }
    if let Some(s) = v.as_str() {
        let chars = s.chars().count() as u64;
        if schema["minLength"].as_u64().is_some_and(|min| chars < min) {
            return Err(format!("{at}: shorter than {}", schema["minLength"]));
        }
        if schema["maxLength"].as_u64().is_some_and(|max| chars > max) {
            return Err(format!("{at}: longer than {}", schema["maxLength"]));
        }
        if let Some(p) = schema["pattern"].as_str() {
            match pattern_matches(p, s) {
                Some(true) => {}
                Some(false) => return Err(format!("{at}: {v} does not match {p}")),
                None => return Err(format!("{at}: the checker does not know pattern {p}")),
            }
        }
    }
    if let Some(one_of) = schema["oneOf"].as_array() {
        let ok = one_of
            .iter()
            .filter(|s| check_schema(doc, s, v, at).is_ok())
            .count();
        if ok != 1 {
            return Err(format!("{at}: matches {ok} of oneOf, expected 1: {v}"));
        }
    }
    if let Some(o) = v.as_object() {
        for req in schema["required"].as_array().into_iter().flatten() {
            let k = req.as_str().unwrap_or("");
            if !o.contains_key(k) {
                return Err(format!("{at}: missing required {k}"));
            }
        }
        let props = schema["properties"].as_object();
        for (k, x) in o {
            match (
                props.and_then(|p| p.get(k)),
                &schema["additionalProperties"],
            ) {
                (Some(s), _) => check_schema(doc, s, x, &format!("{at}.{k}"))?,
                (None, Value::Bool(false)) => {
                    return Err(format!("{at}: unexpected property {k}"));
                }
                (None, extra @ Value::Object(_)) => {
                    check_schema(doc, extra, x, &format!("{at}.{k}"))?
                }
                (None, _) => {}
            }
        }
    }
    if let Some(a) = v.as_array() {
        if let Some(min) = schema["minItems"].as_u64() {
            if (a.len() as u64) < min {
                return Err(format!("{at}: fewer than {min} items"));
            }
        }
        if let Some(max) = schema["maxItems"].as_u64() {
            if (a.len() as u64) > max {
                return Err(format!("{at}: more than {max} items"));
            }
        }
        let prefix = schema["prefixItems"].as_array();
        for (i, x) in a.iter().enumerate() {
            let s = prefix
                .and_then(|p| p.get(i))
                .or_else(|| schema.get("items"));
            if let Some(s) = s {
                check_schema(doc, s, x, &format!("{at}[{i}]"))?;
            }
        }
    }
    Ok(())
}

/// Every `$ref` (and discriminator mapping target) in `doc` that does not resolve to a
/// node of `doc`, with where it was found (a JSON pointer).
pub fn unresolved_refs(doc: &Value) -> Vec<(String, String)> {
    fn resolves(doc: &Value, target: &str) -> bool {
        target
            .strip_prefix('#')
            .is_some_and(|ptr| doc.pointer(ptr).is_some())
    }
    fn walk(doc: &Value, v: &Value, at: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                    if k == "$ref" {
                        match x.as_str() {
                            Some(t) if resolves(doc, t) => {}
                            _ => out.push((here.clone(), x.to_string())),
                        }
                    }
                    if k == "mapping" {
                        for (mk, t) in x.as_object().into_iter().flatten() {
                            match t.as_str() {
                                Some(t) if resolves(doc, t) => {}
                                _ => out.push((format!("{here}/{mk}"), t.to_string())),
                            }
                        }
                    }
                    walk(doc, x, &here, out);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(doc, x, &format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, doc, "", &mut out);
    out
}

#[cfg(test)]
mod tests;
