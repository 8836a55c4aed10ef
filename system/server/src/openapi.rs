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
//! (every `$ref` that does not point into the document); the schemas, parameters and
//! responses are built by private functions shared by both documents.
//!
//! Not covered: the admin bodies beyond their documented fields (status, links, faults
//! and ledger objects allow further properties: the handlers own their exact shape),
//! examples for every operation, content negotiation (JSON only), HEAD (answered like
//! GET without a body).

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
            "description": "Idempotency key: 1 to 256 visible ASCII characters, unique per operation (conventionally `<device>:<n>`)."
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
                "device": { "type": "integer", "minimum": 0, "maximum": 4294967295u64 },
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
    s.insert(
        "Fault".into(),
        json!({
            "type": "object",
            "description": "An injected fault (a game-day knob). The handlers define the kinds; `kind` and `target` are always present.",
            "required": ["kind", "target"],
            "properties": {
                "id": { "type": "string" },
                "kind": { "type": "string", "examples": ["link-down", "link-latency", "link-loss", "origin-errors", "disk-slow"] },
                "target": { "type": "string", "examples": ["fibre", "lte", "satellite", "origin"] },
                "for_s": { "type": "number", "minimum": 0, "description": "How long; absent: until cleared." }
            },
            "additionalProperties": true
        }),
    );
    s.insert(
        "Faults".into(),
        json!({
            "type": "object",
            "required": ["faults"],
            "properties": { "faults": { "type": "array", "items": schema("Fault") } },
            "additionalProperties": true
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
    let unused = [
        "CatalogEntry",
        "Operation",
        "OpOutcome",
        "OpOutcomeApplied",
        "OpOutcomeConflict",
        "OpOutcomeRejected",
        "OpReceipt",
    ];
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
            "description": "An operation from a device; its key is the Idempotency-Key header.",
            "additionalProperties": false,
            "required": ["device", "op"],
            "properties": {
                "device": { "type": "integer", "minimum": 0, "maximum": 4294967295u64 },
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
                    "enum": ["accepted", "duplicate"],
                    "description": "`accepted`: written and fsynced at the tower (202). `duplicate`: the same key and body were accepted before (200)."
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
                "tower": { "type": "string" },
                "active_link": { "type": ["string", "null"], "enum": ["fibre", "lte", "satellite", null] },
                "links_up": { "type": "array", "items": { "type": "string", "enum": ["fibre", "lte", "satellite"] } },
                "power_mode": { "type": "string", "enum": ["normal", "shed-p3", "shed-p2", "essential", "shutting-down", "off"] },
                "items_servable": { "type": "integer", "minimum": 0 },
                "items_pending": { "type": "integer", "minimum": 0 },
                "chunks_held": { "type": "integer", "minimum": 0 },
                "queued": { "type": "array", "items": { "type": "integer", "minimum": 0 }, "minItems": 4, "maxItems": 4, "description": "Chunk requests queued per class P0..P3." },
                "in_flight": { "type": "integer", "minimum": 0 },
                "outbox": { "type": "integer", "minimum": 0 },
                "window": { "type": "integer", "minimum": 0 },
                "failovers": { "type": "integer", "minimum": 0 },
                "breaker_openings": { "type": "integer", "minimum": 0 }
            },
            "additionalProperties": true
        }),
    );
    s.insert(
        "Links".into(),
        json!({
            "type": "object",
            "description": "Uplinks: which are healthy, which is active, and per-link probe state.",
            "properties": {
                "active": { "type": ["string", "null"] },
                "links": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["link", "healthy"],
                        "properties": {
                            "link": { "type": "string", "enum": ["fibre", "lte", "satellite"] },
                            "healthy": { "type": "boolean" }
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
    // No power telemetry and no fault injection at the origin.
    let mut s = without(wire_schemas(), &["PowerReading"]);
    s.append(&mut without(admin_schemas(), &["Fault", "Faults"]));
    s.insert(
        "OriginCatalog".into(),
        json!({
            "type": "object",
            "required": ["entries"],
            "properties": {
                "entries": { "type": "array", "items": schema("CatalogEntry"), "description": "Entries with seq > since, in seq order." }
            }
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
            "properties": {
                "catalog_entries": { "type": "integer", "minimum": 0 },
                "applied": { "type": "integer", "minimum": 0 },
                "failed": { "type": "boolean" }
            },
            "additionalProperties": true
        }),
    );
    s.insert(
        "Ledger".into(),
        json!({
            "type": "object",
            "description": "Ledger totals in integer minor units; `conserved` is the check held == contributed − withdrawn.",
            "required": ["contributed_minor", "withdrawn_minor", "held_minor", "conserved"],
            "properties": {
                "contributed_minor": { "type": "integer", "minimum": 0 },
                "withdrawn_minor": { "type": "integer", "minimum": 0 },
                "held_minor": { "type": "integer", "minimum": 0 },
                "conserved": { "type": "boolean" },
                "accounts": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["account", "balance_minor"],
                        "properties": {
                            "account": { "type": "string", "examples": ["community:village", "nation:x", "reserve"] },
                            "balance_minor": { "type": "integer", "minimum": 0 }
                        }
                    }
                }
            },
            "additionalProperties": true
        }),
    );
    s
}

// ----- parameters, headers, responses ----------------------------------------------------

fn parameters() -> Value {
    json!({
        "ItemId": { "name": "id", "in": "path", "required": true, "schema": { "type": "string", "minLength": 1 }, "description": "The item's id." },
        "ChunkSha256": { "name": "sha256", "in": "path", "required": true, "schema": sha256_schema("The chunk's SHA-256.") },
        "IdempotencyKey": {
            "name": "Idempotency-Key", "in": "header", "required": true,
            "schema": schema("IdemKey"),
            "description": "The operation's key. Resubmitting the same key and body is safe (200 duplicate); the same key with another body is 422."
        },
        "Range": {
            "name": "Range", "in": "header", "required": false,
            "schema": { "type": "string", "pattern": "^bytes=" },
            "description": "One byte range (`bytes=0-1023`, `bytes=1024-`, `bytes=-512`); multiple ranges are not supported."
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
            "schema": { "type": "integer", "minimum": 0, "maximum": 1000, "default": 100 },
            "description": "How many of the last entries."
        },
        "PublishItem": { "name": "item", "in": "query", "required": true, "schema": { "type": "string", "minLength": 1 } },
        "PublishPriority": { "name": "priority", "in": "query", "required": true, "schema": schema("Priority") }
    })
}

fn headers() -> Value {
    json!({
        "ETag": { "schema": { "type": "string" }, "description": "`\"<sha256 hex>\"` of the representation." },
        "AcceptRanges": { "schema": { "type": "string", "const": "bytes" } },
        "ContentRange": { "schema": { "type": "string" }, "description": "`bytes a-b/size` (206), `bytes */size` (416)." },
        "CacheControl": { "schema": { "type": "string" }, "description": "Chunks: `public, max-age=31536000, immutable` (content-addressed)." },
        "RetryAfter": { "schema": { "type": "integer", "minimum": 0 }, "description": "Seconds to wait before retrying." },
        "WWWAuthenticate": { "schema": { "type": "string" }, "description": "`Bearer realm=\"sovereign-admin\"`." }
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
        "Forbidden".into(),
        error_response("The token is valid but its role does not allow this call."),
    );
    m.insert(
        "NotFound".into(),
        error_response("No such item, chunk or path."),
    );
    m.insert(
        "Conflict".into(),
        error_response(
            "An operation with this key is being made durable right now: retry shortly.",
        ),
    );
    m.insert(
        "PayloadTooLarge".into(),
        error_response("The body is larger than the server accepts."),
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
            "adminBearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "One token per role (viewer, operator, chaos), at least 16 characters, configured with --admin-token-<role> or SOVEREIGN_ADMIN_TOKEN_<ROLE>. Operator and chaos each include viewer. Without any token configured every admin call is 401."
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
            "responses": { "200": { "description": "Alive." } }
        }}),
    );
    p.insert(
        "/readyz".into(),
        json!({ "get": {
            "operationId": "readyz", "tags": ["ops"], "security": [],
            "summary": format!("Readiness: the {what} recovered its durable state and serves."),
            "responses": { "200": { "description": "Ready." }, "503": r("responses", "Unavailable") }
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
        "Inject a fault (audited).",
        ("201", ok_json("Injected.", "Fault")),
        &[("400", "BadRequest"), ("422", "Unprocessable")],
    );
    inject["requestBody"] = json!({ "required": true, "content": json_body("Fault") });
    json!({
        "get": admin_op("listFaults", "viewer", "Active injected faults.", ("200", ok_json("The faults.", "Faults")), &[]),
        "post": inject,
        "delete": admin_op(
            "clearFaults", "chaos", "Clear every injected fault (audited).",
            ("200", ok_json("Cleared; the faults still active, if any.", "Faults")), &[],
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
                    "headers": { "ETag": r("headers", "ETag"), "Accept-Ranges": r("headers", "AcceptRanges") },
                    "content": { "application/octet-stream": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } } }
                },
                "206": {
                    "description": "The requested range.",
                    "headers": { "ETag": r("headers", "ETag"), "Content-Range": r("headers", "ContentRange"), "Accept-Ranges": r("headers", "AcceptRanges") },
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
                "200": ok_json("The manifest.", "Manifest"),
                "404": r("responses", "NotFound"),
                "503": r("responses", "Unavailable")
            }
        }}),
    );
    paths.insert("/v1/chunks/{sha256}".into(), chunk_path());
    paths.insert(
        "/v1/ops".into(),
        json!({ "post": {
            "operationId": "submitOp", "tags": ["operations"], "security": [],
            "summary": "Submit a device operation; acknowledged only once durable at the tower.",
            "parameters": [r("parameters", "IdempotencyKey")],
            "requestBody": { "required": true, "content": json_body("SubmitOp") },
            "responses": {
                "202": ok_json("Accepted: written and fsynced; the tower will forward it.", "SubmitReply"),
                "200": ok_json("Duplicate: the same key and body were accepted before.", "SubmitReply"),
                "400": r("responses", "BadRequest"),
                "409": r("responses", "Conflict"),
                "413": r("responses", "PayloadTooLarge"),
                "422": r("responses", "Unprocessable"),
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
    paths.insert(
        "/admin/power".into(),
        json!({ "get": admin_op("getPower", "viewer", "Power mode and the last reading.", ("200", ok_json("Power.", "Power")), &[]) }),
    );
    paths.insert("/admin/faults".into(), faults_path());
    paths.insert("/admin/audit".into(), audit_path());
    json!({
        "openapi": OPENAPI_VERSION,
        "info": info(
            "Sovereign tower",
            "A tower serves content to nearby devices from its verified store and accepts device operations, which it makes durable and forwards to the origin. Errors are JSON `{\"error\": …, \"field\": …}`."
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
        json!({ "get": {
            "operationId": "getCatalog", "tags": ["content"], "security": [],
            "summary": "Catalog entries published after `since`.",
            "parameters": [r("parameters", "Since")],
            "responses": {
                "200": ok_json("Entries in seq order.", "OriginCatalog"),
                "400": r("responses", "BadRequest"),
                "503": r("responses", "Unavailable")
            }
        }}),
    );
    paths.insert("/v1/chunks/{sha256}".into(), chunk_path());
    paths.insert(
        "/v1/forward".into(),
        json!({ "post": {
            "operationId": "forward", "tags": ["operations"], "security": [],
            "summary": "Apply a batch of operations forwarded by a tower (idempotent per key).",
            "requestBody": { "required": true, "content": json_body("ForwardRequest") },
            "responses": {
                "200": ok_json("Receipts for the durable operations.", "ForwardReply"),
                "400": r("responses", "BadRequest"),
                "413": r("responses", "PayloadTooLarge"),
                "503": r("responses", "Unavailable")
            }
        }}),
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
            "200",
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
    paths.insert("/admin/audit".into(), audit_path());
    json!({
        "openapi": OPENAPI_VERSION,
        "info": info(
            "Sovereign origin",
            "The origin publishes content (catalog and chunks) to towers and applies the device operations they forward. Errors are JSON `{\"error\": …, \"field\": …}`."
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
