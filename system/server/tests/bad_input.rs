//! Bad input on every endpoint of the real routers: each answer is a 4xx (or a
//! documented 503) with a JSON body whose `error` says what is wrong and whose `field`
//! names the offending field, header or parameter when there is one; nothing panics.
//!
//! The routers are the ones `serve::tower_parts` / `serve::origin_parts` build (memory
//! stores, all three admin roles, audit logs in a temporary directory), called in-process
//! with `tower::ServiceExt::oneshot`; the tower's uplink is an origin served on a loopback
//! port so that range requests can be made against real content.
//!
//! Map: [`Case`] / [`Want`] / [`check_all`] (a table of requests and what each must
//! answer, in groups that must get the same), one test per area (tower public, origin
//! public, tower admin, origin admin, the device API not exposing admin), and proptests
//! throwing arbitrary bytes at `POST /v1/ops`, `GET /v1/chunks/{x}` and
//! `GET /v1/items/{x}`.
//!
//! Not covered: bad input below the routers (malformed request lines, oversized heads,
//! slow or lying bodies, too many connections): the listener answers those, see
//! `tests/limits.rs`.

mod support;

use axum::Router;
use axum::http::{Method, StatusCode, header};
use proptest::prelude::*;
use support::{
    Answer, CHAOS, OPERATOR, Req, Servers, VIEWER, device, device_auth, device_key, pct, req, send,
};

const GOOD_OP: &str = r#"{"op":{"type":"message","to":"clinic","body":"hi"}}"#;

const HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn key(n: u64) -> String {
    device_key(n)
}

fn auth() -> String {
    device_auth()
}

/// One bad request and what it must get.
struct Case {
    /// What it tries.
    what: &'static str,
    req: Req,
    status: u16,
    /// The field, header or parameter the answer must name in `field` (`None`: not
    /// checked, e.g. for 401/403/404/405).
    field: Option<&'static str>,
}

fn case(what: &'static str, req: Req, status: u16, field: Option<&'static str>) -> Case {
    Case {
        what,
        req,
        status,
        field,
    }
}

/// What every case of a group must get: a status, and the field to name (`None`: not
/// checked).
struct Want(u16, Option<&'static str>);

impl Want {
    /// One case per `(what, request)`, each wanting this.
    fn cases(&self, rows: Vec<(&'static str, Req)>) -> Vec<Case> {
        rows.into_iter()
            .map(|(what, req)| case(what, req, self.0, self.1))
            .collect()
    }
}

/// Why `a` is not a proper client-error answer with `status` naming `field`, if it is not.
fn problem(a: &Answer, status: u16, field: Option<&str>) -> Option<String> {
    if a.status.as_u16() != status {
        return Some(format!("expected {status}, got {a}"));
    }
    if !a
        .header(header::CONTENT_TYPE)
        .starts_with("application/json")
    {
        return Some(format!("not JSON: {a}"));
    }
    let Some(v) = a.json() else {
        return Some(format!("body does not parse as JSON: {a}"));
    };
    if v["error"].as_str().is_none_or(|e| e.trim().is_empty()) {
        return Some(format!("no non-empty \"error\": {a}"));
    }
    if let Some(f) = field {
        if v["field"].as_str() != Some(f) {
            return Some(format!("expected \"field\": {f:?}, got {a}"));
        }
    }
    None
}

/// Send every case to `router`, in order; fail with the list of every wrong answer.
async fn check_all(server: &str, router: &Router, cases: impl IntoIterator<Item = Case>) {
    let mut bad = Vec::new();
    let mut n = 0;
    for c in cases {
        n += 1;
        let a = send(router, c.req).await;
        if let Some(p) = problem(&a, c.status, c.field) {
            bad.push(format!("{server}: {}: {p}", c.what));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {n} cases wrong:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

fn op(body: &str) -> Req {
    req(Method::POST, "/v1/ops")
        .header("idempotency-key", key(1))
        .header("authorization", auth())
        .json(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_public_answers_bad_operations_with_4xx_json() {
    // Goal: every way a device can get POST /v1/ops wrong is a 4xx naming what is wrong.
    let s = Servers::start(Some("http://127.0.0.1:9")).await;
    let op_with = |key: &[u8]| {
        req(Method::POST, "/v1/ops")
            .header("idempotency-key", key)
            .header("authorization", auth())
            .json(GOOD_OP)
    };
    let authorized = |authorization: Option<&str>| {
        let r = req(Method::POST, "/v1/ops").header("idempotency-key", key(1));
        match authorization {
            Some(a) => r.header("authorization", a),
            None => r,
        }
        .json(GOOD_OP)
    };
    let message_from = |device: &str| {
        op(&format!(
            r#"{{"device":{device},"op":{{"type":"message","to":"c","body":"b"}}}}"#
        ))
    };
    let typed = |content_type: &str| {
        req(Method::POST, "/v1/ops")
            .header("idempotency-key", key(1))
            .header("authorization", auth())
            .header("content-type", content_type)
    };
    let contribution = |amount: &str| {
        op(&format!(
            r#"{{"op":{{"type":"contribution","community":"c","nation":"n","amount_minor":{amount}}}}}"#
        ))
    };
    let cases = [
        Want(400, None).cases(vec![
            ("malformed JSON", op(r#"{"device":7,"#)),
            ("not JSON at all", op("device=7")),
            ("empty body", op("")),
            ("JSON null", op("null")),
            ("JSON array", op("[]")),
            ("trailing garbage", op(&format!("{GOOD_OP} x"))),
            (
                "non-UTF-8 body",
                typed("application/json").body(vec![b'{', 0xff, 0xfe, b'}']),
            ),
        ]),
        Want(400, Some("device")).cases(vec![
            ("device is not hex", message_from(r#""seven""#)),
            ("device with a leading zero", message_from(r#""07""#)),
            ("device is negative", message_from("-1")),
            ("device above u32", message_from("4294967296")),
            ("device is an object", message_from("{}")),
        ]),
        Want(401, Some("Authorization")).cases(vec![
            ("no Authorization", authorized(None)),
            ("a bearer token", authorized(Some("Bearer abc"))),
            ("a short secret", authorized(Some("Device abcd"))),
            (
                "a secret that is not hex",
                authorized(Some(&format!("Device {}", "z".repeat(64)))),
            ),
        ]),
        Want(403, Some("Idempotency-Key")).cases(vec![
            ("the body names another device", message_from(r#""7""#)),
            (
                "another device's key",
                op_with(b"7:00000001:0000000000000abc"),
            ),
            ("a key of no device", op_with(b"7:1")),
        ]),
        Want(422, Some("op.amount_minor")).cases(vec![
            ("a zero contribution", contribution("0")),
            (
                "a contribution above the limit",
                contribution("1000000000000001"),
            ),
        ]),
        vec![
            case(
                "op is a string",
                op(r#"{"device":7,"op":"message"}"#),
                400,
                Some("op"),
            ),
            case(
                "unknown op type",
                op(r#"{"device":7,"op":{"type":"telegram","to":"c","body":"b"}}"#),
                400,
                Some("op.type"),
            ),
            case(
                "unknown top-level field",
                op(r#"{"device":7,"op":{"type":"message","to":"c","body":"b"},"extra":1}"#),
                400,
                Some("extra"),
            ),
            case(
                "unknown field in op",
                op(r#"{"device":7,"op":{"type":"message","to":"c","body":"b","cc":"x"}}"#),
                400,
                Some("op.cc"),
            ),
            case(
                "amount is a float",
                op(
                    r#"{"device":7,"op":{"type":"contribution","community":"c","nation":"n","amount_minor":1.5}}"#,
                ),
                400,
                Some("op"),
            ),
        ],
        Want(400, Some("Idempotency-Key")).cases(vec![
            (
                "missing Idempotency-Key",
                req(Method::POST, "/v1/ops")
                    .header("authorization", auth())
                    .json(GOOD_OP),
            ),
            ("empty Idempotency-Key", op_with(b"")),
            (
                "Idempotency-Key of 257 characters",
                op_with("k".repeat(257).as_bytes()),
            ),
            ("non-ASCII Idempotency-Key", op_with("clé-1".as_bytes())),
            ("Idempotency-Key with a space", op_with(b"7 1")),
        ]),
        vec![case(
            "body over 64 KiB",
            op(&format!(
                r#"{{"device":7,"op":{{"type":"message","to":"c","body":"{}"}}}}"#,
                "x".repeat(64 * 1024)
            )),
            413,
            None,
        )],
        Want(415, Some("Content-Type")).cases(vec![
            ("Content-Type text/plain", typed("text/plain").body(GOOD_OP)),
            (
                "Content-Type form",
                typed("application/x-www-form-urlencoded").body(GOOD_OP),
            ),
        ]),
    ];
    check_all("tower", &s.tower, cases.into_iter().flatten()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_public_answers_bad_paths_and_methods_with_4xx_json() {
    // Goal: bad hashes, bad item ids, unknown routes and wrong methods are 4xx JSON.
    let s = Servers::start(Some("http://127.0.0.1:9")).await;
    let get = |p: &str| req(Method::GET, p);
    let long_id = format!("/v1/items/{}", "i".repeat(257));
    let cases = [
        Want(400, Some("sha256")).cases(vec![
            ("chunk hash not hex", get("/v1/chunks/xyz")),
            (
                "chunk hash of 63 digits",
                get(&format!("/v1/chunks/{}", &HASH[1..])),
            ),
            (
                "chunk hash of 65 digits",
                get(&format!("/v1/chunks/{HASH}0")),
            ),
            ("chunk hash with invalid UTF-8", get("/v1/chunks/%FF")),
        ]),
        vec![case(
            "chunk not held",
            get(&format!("/v1/chunks/{HASH}")),
            404,
            None,
        )],
        Want(400, Some("id")).cases(vec![
            ("item id with NUL", get("/v1/items/a%00b")),
            ("item id with ESC", get("/v1/items/a%1Bb")),
            ("item id with newline", get("/v1/items/a%0Ab/manifest")),
            ("item id with DEL", get("/v1/items/a%7F")),
            ("item id of 257 characters", get(&long_id)),
            ("item id with invalid UTF-8", get("/v1/items/%C3%28")),
            (
                "manifest id with invalid UTF-8",
                get("/v1/items/%FF/manifest"),
            ),
        ]),
        Want(404, None).cases(vec![
            ("item not held", get("/v1/items/nothing-here")),
            ("unknown route", get("/nope")),
            ("unknown route under /v1", get("/v1/items")),
            ("too deep under an item", get("/v1/items/a/b/c")),
        ]),
        Want(405, None).cases(vec![
            ("POST /v1/catalog", req(Method::POST, "/v1/catalog")),
            ("DELETE /v1/items/x", req(Method::DELETE, "/v1/items/x")),
            (
                "PUT /v1/chunks/h",
                req(Method::PUT, &format!("/v1/chunks/{HASH}")),
            ),
            ("GET /v1/ops", get("/v1/ops")),
            ("PATCH /healthz", req(Method::PATCH, "/healthz")),
            ("POST /openapi.json", req(Method::POST, "/openapi.json")),
        ]),
    ];
    check_all("tower", &s.tower, cases.into_iter().flatten()).await;
    // A 405 says which methods would do.
    let a = send(&s.tower, req(Method::GET, "/v1/ops")).await;
    assert_eq!(a.header(header::ALLOW), "POST", "{a}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_public_answers_bad_ranges_on_real_content() {
    // Goal: on an item and a chunk the tower holds, a Range header that is malformed or
    // asks for several ranges is ignored as RFC 9110 §14.2 says (200 with the whole
    // content), and an unsatisfiable one is 416 with `Content-Range: bytes */len`.
    let s = Servers::start(None).await;
    let content: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let published = s.publish("doc-1", &content).await;
    assert_eq!(s.wait_servable("doc-1").await, content);
    let chunk = published.json().expect("catalog entry")["manifest"]["chunks"][0]["sha256"]
        .as_str()
        .expect("a chunk")
        .to_string();
    let chunk_len = published.json().expect("entry")["manifest"]["chunks"][0]["len"]
        .as_u64()
        .expect("len");
    // A good range works, so the ignored ones below are ignored for their badness.
    let a = send(
        &s.tower,
        req(Method::GET, "/v1/items/doc-1").header("range", "bytes=10-19"),
    )
    .await;
    assert_eq!(a.status, StatusCode::PARTIAL_CONTENT, "{a}");
    assert_eq!(a.body, content[10..20]);

    let chunk_path = format!("/v1/chunks/{chunk}");
    let whole_chunk = send(&s.tower, req(Method::GET, &chunk_path)).await.body;
    assert_eq!(whole_chunk.len() as u64, chunk_len);
    let mut wrong = Vec::new();
    for (path, whole) in [
        ("/v1/items/doc-1", &content),
        (chunk_path.as_str(), &whole_chunk),
    ] {
        let ranged = |v: &str| req(Method::GET, path).header("range", v);
        for (what, v) in [
            ("range not bytes", "items=0-1"),
            ("range not numbers", "bytes=a-b"),
            ("range without dash", "bytes=5"),
            ("range empty", "bytes=-"),
            ("range backwards", "bytes=9-1"),
            ("range negative", "bytes=--5"),
            ("several ranges", "bytes=0-1,5-6"),
            ("several unsatisfiable ranges", "bytes=999999-,999998-"),
            ("non-ASCII range", "bytes=0-1é"),
        ] {
            let a = send(&s.tower, ranged(v)).await;
            if a.status != StatusCode::OK
                || &a.body != whole
                || !a.header(header::CONTENT_RANGE).is_empty()
            {
                wrong.push(format!(
                    "{path}: {what} ({v:?}): expected 200 with the whole, got {a}"
                ));
            }
        }
        // A last position past the end (even past u64) is "to the end".
        let a = send(&s.tower, ranged("bytes=0-99999999999999999999")).await;
        if a.status != StatusCode::PARTIAL_CONTENT || &a.body != whole {
            wrong.push(format!(
                "{path}: range overflowing u64: expected 206 with all, got {a}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let mut cases = Vec::new();
    for path in ["/v1/items/doc-1", chunk_path.as_str()] {
        let ranged = |v: &str| req(Method::GET, path).header("range", v);
        cases.extend(Want(416, Some("Range")).cases(vec![
            ("range past the end", ranged("bytes=999999-")),
            ("range from the end", ranged("bytes=999999-9999999")),
            ("empty suffix", ranged("bytes=-0")),
        ]));
    }
    check_all("tower", &s.tower, cases).await;
    for (path, len) in [
        ("/v1/items/doc-1".to_string(), content.len() as u64),
        (chunk_path, chunk_len),
    ] {
        let a = send(
            &s.tower,
            req(Method::GET, &path).header("range", "bytes=999999-"),
        )
        .await;
        assert_eq!(a.status, StatusCode::RANGE_NOT_SATISFIABLE, "{path}: {a}");
        assert_eq!(
            a.header(header::CONTENT_RANGE),
            format!("bytes */{len}"),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_api_does_not_expose_admin() {
    // Goal: no /admin/* path answers on the tower's public router, with or without a
    // token, for any method: all are 404 (never 401, which would say it exists).
    let s = Servers::start(Some("http://127.0.0.1:9")).await;
    let paths = [
        "/admin",
        "/admin/",
        "/admin/status",
        "/admin/links",
        "/admin/power",
        "/admin/outbox",
        "/admin/faults",
        "/admin/audit",
        "/admin/audit?n=5",
        "/admin/publish?item=x&priority=P0",
        "/admin/ledger",
        "/admin/ops/7:1",
    ];
    let mut cases = Vec::new();
    for p in paths {
        for m in [Method::GET, Method::POST, Method::DELETE, Method::PUT] {
            cases.extend(Want(404, None).cases(vec![
                ("admin path", req(m.clone(), p)),
                ("admin path with a chaos token", req(m, p).bearer(CHAOS)),
            ]));
        }
    }
    check_all("tower public", &s.tower, cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_public_answers_bad_input_with_4xx_json() {
    // Goal: a missing, unknown or borrowed tower credential, bad `since`, unknown
    // parameters, a bad tower header, malformed forward batches (with the field path of
    // the bad operation), huge batches, unknown routes and wrong methods are 4xx JSON.
    let s = Servers::start(Some("http://127.0.0.1:9")).await;
    // As tower 1, with its credential: the input is what is at fault.
    let get = |p: &str| req(Method::GET, p).tower(1);
    let fwd = |body: &str| req(Method::POST, "/v1/forward").tower(1).json(body);
    let anon = |p: &str| req(Method::GET, p);
    let good = |i: u32| {
        format!(r#"{{"key":"1:{i}","device":1,"op":{{"type":"message","to":"c","body":"b"}}}}"#)
    };
    // A batch of three good operations and `last`.
    let batch = |last: &str| {
        fwd(&format!(
            r#"{{"ops":[{},{},{},{last}]}}"#,
            good(0),
            good(1),
            good(2)
        ))
    };
    let huge = format!(
        r#"{{"ops":[{{"key":"1:1","device":1,"op":{{"type":"message","to":"c","body":"{}"}}}}]}}"#,
        "x".repeat(8 * 1024 * 1024)
    );
    let cases = [
        Want(401, Some("authorization")).cases(vec![
            (
                "catalog without a credential",
                anon("/v1/catalog").header("x-sovereign-tower", "1"),
            ),
            (
                "chunk with an unknown credential",
                anon(&format!("/v1/chunks/{HASH}"))
                    .header("x-sovereign-tower", "1")
                    .bearer("not-a-credential-of-any-tower-at-all"),
            ),
            (
                "forward without a credential",
                req(Method::POST, "/v1/forward")
                    .header("x-sovereign-tower", "99")
                    .json(r#"{"ops":[]}"#),
            ),
            (
                "a credential in another scheme",
                anon("/v1/catalog").header("x-sovereign-tower", "1").header(
                    "authorization",
                    format!("Basic {}", support::tower_credential(1)),
                ),
            ),
        ]),
        Want(403, Some("authorization")).cases(vec![(
            "tower 2's credential as tower 1",
            anon("/v1/catalog")
                .header("x-sovereign-tower", "1")
                .bearer(&support::tower_credential(2)),
        )]),
        Want(401, Some("x-sovereign-tower")).cases(vec![(
            "a credential without the tower header",
            anon("/v1/catalog").bearer(&support::tower_credential(1)),
        )]),
        Want(400, Some("since")).cases(vec![
            ("since not a number", get("/v1/catalog?since=abc")),
            ("since negative", get("/v1/catalog?since=-1")),
            ("since a float", get("/v1/catalog?since=1.5")),
            (
                "since too big",
                get("/v1/catalog?since=99999999999999999999"),
            ),
            ("since empty", get("/v1/catalog?since=")),
            ("since twice", get("/v1/catalog?since=1&since=2")),
        ]),
        vec![case(
            "unknown query parameter",
            get("/v1/catalog?limit=5"),
            400,
            Some("limit"),
        )],
        Want(400, Some("x-sovereign-tower")).cases(vec![
            (
                "tower header not a number",
                anon("/v1/catalog").header("x-sovereign-tower", "tower-1"),
            ),
            (
                "tower header negative",
                anon(&format!("/v1/chunks/{HASH}")).header("x-sovereign-tower", "-3"),
            ),
            (
                "tower header non-ASCII",
                req(Method::POST, "/v1/forward")
                    .header("x-sovereign-tower", "тower".as_bytes())
                    .json(r#"{"ops":[]}"#),
            ),
            (
                "tower header twice",
                get("/v1/catalog").header("x-sovereign-tower", "1"),
            ),
        ]),
        Want(400, Some("sha256")).cases(vec![
            ("chunk hash not hex", get("/v1/chunks/nope")),
            ("chunk hash with invalid UTF-8", get("/v1/chunks/%FF%FE")),
        ]),
        vec![
            case(
                "chunk unknown",
                get(&format!("/v1/chunks/{HASH}")),
                404,
                None,
            ),
            case("forward: malformed JSON", fwd(r#"{"ops":["#), 400, None),
        ],
        Want(400, Some("ops")).cases(vec![
            ("forward: ops missing", fwd("{}")),
            ("forward: ops a string", fwd(r#"{"ops":"x"}"#)),
        ]),
        vec![case(
            "forward: unknown field",
            fwd(r#"{"ops":[],"more":1}"#),
            400,
            Some("more"),
        )],
        Want(400, Some("ops[3].key")).cases(vec![
            (
                "forward: ops[3].key empty",
                batch(r#"{"key":"","device":1,"op":{"type":"message","to":"c","body":"b"}}"#),
            ),
            (
                "forward: ops[3].key with a space",
                batch(r#"{"key":"a b","device":1,"op":{"type":"message","to":"c","body":"b"}}"#),
            ),
            (
                "forward: ops[3].key a number",
                batch(r#"{"key":5,"device":1,"op":{"type":"message","to":"c","body":"b"}}"#),
            ),
        ]),
        vec![
            case(
                "forward: ops[3].device a string",
                batch(r#"{"key":"k","device":"one","op":{"type":"message","to":"c","body":"b"}}"#),
                400,
                Some("ops[3].device"),
            ),
            case(
                "forward: ops[3] unknown field",
                batch(
                    r#"{"key":"k","device":1,"op":{"type":"message","to":"c","body":"b"},"x":0}"#,
                ),
                400,
                Some("ops[3].x"),
            ),
            case(
                "forward: ops[3].op unknown type",
                batch(r#"{"key":"k","device":1,"op":{"type":"nope"}}"#),
                400,
                Some("ops[3].op.type"),
            ),
            case("forward: body over 8 MiB", fwd(&huge), 413, None),
        ],
        Want(404, None).cases(vec![
            ("unknown route", get("/v2/catalog")),
            (
                "publish is not public",
                req(Method::POST, "/admin/publish?item=x&priority=P0").bearer(OPERATOR),
            ),
            (
                "admin status is not public",
                get("/admin/status").bearer(VIEWER),
            ),
        ]),
        Want(405, None).cases(vec![
            ("GET /v1/forward", get("/v1/forward")),
            ("POST /v1/catalog", req(Method::POST, "/v1/catalog")),
            (
                "DELETE /v1/chunks/h",
                req(Method::DELETE, &format!("/v1/chunks/{HASH}")),
            ),
        ]),
    ];
    check_all("origin", &s.origin, cases.into_iter().flatten()).await;
}

/// Admin cases both servers share: auth, faults, audit, unknown routes, wrong methods.
fn common_admin_cases() -> Vec<Case> {
    let fault = |body: &str| req(Method::POST, "/admin/faults").bearer(CHAOS).json(body);
    let audit = |query: &str| req(Method::GET, &format!("/admin/audit{query}")).bearer(VIEWER);
    let authorized = |value: &[u8]| req(Method::GET, "/admin/audit").header("authorization", value);
    [
        Want(401, None).cases(vec![
            ("no token", req(Method::GET, "/admin/status")),
            (
                "no token, faults",
                req(Method::POST, "/admin/faults").json(r#"{"kind":"disk-full"}"#),
            ),
            (
                "unknown token",
                req(Method::GET, "/admin/audit").bearer("not-a-token-at-all-xx"),
            ),
            ("not a bearer", authorized(b"Basic dXNlcjpwdw==")),
            ("empty bearer", authorized(b"Bearer ")),
            ("non-ASCII token", authorized("Bearer tökén".as_bytes())),
        ]),
        Want(403, None).cases(vec![
            (
                "viewer injects a fault",
                req(Method::POST, "/admin/faults")
                    .bearer(VIEWER)
                    .json(r#"{"kind":"disk-full"}"#),
            ),
            (
                "operator injects a fault",
                req(Method::POST, "/admin/faults")
                    .bearer(OPERATOR)
                    .json(r#"{"kind":"disk-full"}"#),
            ),
            (
                "viewer clears faults",
                req(Method::DELETE, "/admin/faults").bearer(VIEWER),
            ),
        ]),
        vec![case(
            "fault: malformed JSON",
            fault(r#"{"kind":"#),
            400,
            None,
        )],
        Want(400, Some("kind")).cases(vec![
            ("fault: no kind", fault("{}")),
            ("fault: unknown kind", fault(r#"{"kind":"meteor-strike"}"#)),
        ]),
        vec![case(
            "fault: unknown field",
            fault(r#"{"kind":"disk-full","target":"x"}"#),
            400,
            Some("target"),
        )],
        Want(400, Some("delay_ms")).cases(vec![
            (
                "fault: delay too large",
                fault(r#"{"kind":"slow-disk","delay_ms":60001}"#),
            ),
            ("fault: delay missing", fault(r#"{"kind":"slow-disk"}"#)),
        ]),
        vec![
            case(
                "fault: count for disk-full",
                fault(r#"{"kind":"disk-full","count":1}"#),
                400,
                Some("count"),
            ),
            case(
                "fault: delay for corrupt",
                fault(r#"{"kind":"corrupt","delay_ms":1}"#),
                400,
                Some("delay_ms"),
            ),
            case(
                "fault: kind a number",
                fault(r#"{"kind":3}"#),
                400,
                Some("kind"),
            ),
            case(
                "fault: delay negative",
                fault(r#"{"kind":"slow-disk","delay_ms":-5}"#),
                400,
                Some("delay_ms"),
            ),
        ],
        Want(400, Some("count")).cases(vec![
            (
                "fault: count a string",
                fault(r#"{"kind":"fsync-failure","count":"3"}"#),
            ),
            (
                "fault: corrupt zero chunks",
                fault(r#"{"kind":"corrupt","count":0}"#),
            ),
        ]),
        vec![
            case(
                "fault: body over 4 KiB",
                fault(&format!(
                    r#"{{"kind":"disk-full","x":"{}"}}"#,
                    "y".repeat(5000)
                )),
                413,
                None,
            ),
            case("audit: n not a number", audit("?n=lots"), 400, Some("n")),
            case("audit: n negative", audit("?n=-1"), 400, Some("n")),
            case(
                "audit: unknown parameter",
                audit("?last=5"),
                400,
                Some("last"),
            ),
            case("audit: n twice", audit("?n=1&n=2"), 400, Some("n")),
            case(
                "audit: bad query, no token",
                req(Method::GET, "/admin/audit?n=x"),
                401,
                None,
            ),
        ],
        Want(404, None).cases(vec![
            (
                "unknown admin route",
                req(Method::GET, "/admin/nope").bearer(VIEWER),
            ),
            (
                "unknown route",
                req(Method::GET, "/v1/catalog").bearer(VIEWER),
            ),
        ]),
        Want(405, None).cases(vec![
            (
                "PUT /admin/faults",
                req(Method::PUT, "/admin/faults").bearer(CHAOS),
            ),
            (
                "POST /admin/status",
                req(Method::POST, "/admin/status").bearer(VIEWER),
            ),
            (
                "DELETE /admin/audit",
                req(Method::DELETE, "/admin/audit").bearer(VIEWER),
            ),
        ]),
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_admin_answers_bad_input_with_4xx_json() {
    // Goal: auth failures, bad fault bodies, bad power readings and a bad audit `n` are
    // 4xx JSON; a 401 carries WWW-Authenticate.
    let s = Servers::start(Some("http://127.0.0.1:9")).await;
    let power = |body: &str| {
        req(Method::POST, "/admin/power")
            .bearer(OPERATOR)
            .json(body)
    };
    let reading = r#"{"battery_soc":0.5,"solar_w":1,"ups":"online"}"#;
    let cases = [
        common_admin_cases(),
        Want(403, None).cases(vec![
            (
                "viewer posts power",
                req(Method::POST, "/admin/power")
                    .bearer(VIEWER)
                    .json(reading),
            ),
            (
                "chaos posts power",
                req(Method::POST, "/admin/power")
                    .bearer(CHAOS)
                    .json(reading),
            ),
        ]),
        Want(400, Some("battery_soc")).cases(vec![
            (
                "power: soc 1.5",
                power(r#"{"battery_soc":1.5,"solar_w":1,"ups":"online"}"#),
            ),
            (
                "power: soc negative",
                power(r#"{"battery_soc":-0.1,"solar_w":1,"ups":"online"}"#),
            ),
            (
                "power: soc a string",
                power(r#"{"battery_soc":"full","solar_w":1,"ups":"online"}"#),
            ),
        ]),
        vec![
            case(
                "power: solar negative",
                power(r#"{"battery_soc":0.5,"solar_w":-1,"ups":"online"}"#),
                400,
                Some("solar_w"),
            ),
            case(
                "power: load huge",
                power(r#"{"battery_soc":0.5,"solar_w":1,"load_w":1e12,"ups":"online"}"#),
                400,
                Some("load_w"),
            ),
            case(
                "power: unknown ups",
                power(r#"{"battery_soc":0.5,"solar_w":1,"ups":"exploded"}"#),
                400,
                Some("ups"),
            ),
            case(
                "power: unknown field",
                power(r#"{"battery_soc":0.5,"solar_w":1,"ups":"online","volts":12}"#),
                400,
                Some("volts"),
            ),
            case(
                "power: missing ups",
                power(r#"{"battery_soc":0.5,"solar_w":1}"#),
                400,
                Some("ups"),
            ),
        ],
        Want(400, None).cases(vec![
            ("power: malformed", power("{")),
            ("power: not JSON", power("soc=0.5")),
        ]),
        vec![case(
            "publish is the origin's",
            req(Method::POST, "/admin/publish?item=x&priority=P0").bearer(OPERATOR),
            404,
            None,
        )],
        Want(405, None).cases(vec![
            (
                "PUT /admin/power",
                req(Method::PUT, "/admin/power").bearer(OPERATOR),
            ),
            (
                "DELETE /admin/outbox",
                req(Method::DELETE, "/admin/outbox").bearer(CHAOS),
            ),
        ]),
    ];
    check_all("tower admin", &s.tower_admin, cases.into_iter().flatten()).await;
    let a = send(&s.tower_admin, req(Method::GET, "/admin/status")).await;
    assert!(
        a.header(header::WWW_AUTHENTICATE).starts_with("Bearer"),
        "401 without WWW-Authenticate: {a}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_admin_answers_bad_input_with_4xx_json() {
    // Goal: bad publish parameters, bad op keys and the shared admin cases are 4xx JSON.
    let s = Servers::start(Some("http://127.0.0.1:9")).await;
    let publish = |q: &str| {
        req(Method::POST, &format!("/admin/publish{q}"))
            .bearer(OPERATOR)
            .body(b"content".to_vec())
    };
    let publish_x = || req(Method::POST, "/admin/publish?item=x&priority=P0");
    let cases = [
        common_admin_cases(),
        vec![case(
            "no token publishes",
            publish_x().body(b"x".to_vec()),
            401,
            None,
        )],
        Want(403, None).cases(vec![
            (
                "viewer publishes",
                publish_x().bearer(VIEWER).body(b"x".to_vec()),
            ),
            (
                "chaos publishes",
                publish_x().bearer(CHAOS).body(b"x".to_vec()),
            ),
        ]),
        Want(400, Some("item")).cases(vec![
            ("publish: no parameters", publish("")),
            ("publish: item missing", publish("?priority=P0")),
            ("publish: item empty", publish("?item=&priority=P0")),
            ("publish: item with NUL", publish("?item=a%00b&priority=P0")),
        ]),
        Want(400, Some("priority")).cases(vec![
            ("publish: priority missing", publish("?item=x")),
            ("publish: priority P9", publish("?item=x&priority=P9")),
            (
                "publish: priority lower-case",
                publish("?item=x&priority=high"),
            ),
        ]),
        vec![
            case(
                "publish: unknown parameter",
                publish("?item=x&priority=P0&force=1"),
                400,
                Some("force"),
            ),
            case(
                "publish: item twice",
                publish("?item=x&item=y&priority=P0"),
                400,
                Some("item"),
            ),
            case(
                "publish: bad query, no token",
                req(Method::POST, "/admin/publish?item=x&item=y").body(b"x".to_vec()),
                401,
                None,
            ),
            case(
                "GET /admin/publish",
                req(Method::GET, "/admin/publish").bearer(OPERATOR),
                405,
                None,
            ),
        ],
        Want(400, Some("key")).cases(vec![
            (
                "op key with a space",
                req(Method::GET, "/admin/ops/a%20b").bearer(VIEWER),
            ),
            (
                "op key with invalid UTF-8",
                req(Method::GET, "/admin/ops/%FF").bearer(VIEWER),
            ),
        ]),
        vec![
            case(
                "op key never applied",
                req(Method::GET, "/admin/ops/7:1").bearer(VIEWER),
                404,
                None,
            ),
            case(
                "no token for an op",
                req(Method::GET, "/admin/ops/7:1"),
                401,
                None,
            ),
            case(
                "power is the tower's",
                req(Method::POST, "/admin/power")
                    .bearer(OPERATOR)
                    .json("{}"),
                404,
                None,
            ),
            case(
                "POST /admin/ledger",
                req(Method::POST, "/admin/ledger").bearer(OPERATOR),
                405,
                None,
            ),
        ],
    ];
    check_all("origin admin", &s.origin_admin, cases.into_iter().flatten()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operation_answers_keep_their_documented_shapes() {
    // Goal: the happy and the refused answers of POST /v1/ops: 202 {"key","status"},
    // a replay is 202 with `Idempotent-Replayed: true`, the same key with another body
    // is 422 naming the header.
    let s = Servers::start(Some("http://127.0.0.1:9")).await;
    let a = send(&s.tower, op(GOOD_OP)).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{a}");
    assert_eq!(
        a.json(),
        Some(serde_json::json!({ "key": key(1), "status": "accepted" }))
    );
    // Naming the device in the body is the same operation.
    let named = format!(
        r#"{{"device":"{}","op":{{"type":"message","to":"clinic","body":"hi"}}}}"#,
        device().hex()
    );
    let replay = send(&s.tower, op(&named)).await;
    assert_eq!(replay.status, StatusCode::ACCEPTED, "{replay}");
    assert_eq!(replay.header("idempotent-replayed"), "true");
    let other = send(
        &s.tower,
        op(r#"{"op":{"type":"message","to":"clinic","body":"bye"}}"#),
    )
    .await;
    assert_eq!(problem(&other, 422, Some("Idempotency-Key")), None);
    // Its status, to its owner only.
    let status = send(
        &s.tower,
        req(Method::GET, &format!("/v1/ops/{}", key(1))).header("authorization", auth()),
    )
    .await;
    assert_eq!(
        status.json(),
        Some(serde_json::json!({ "status": "pending", "key": key(1) })),
        "{status}"
    );
    let stranger = send(
        &s.tower,
        req(Method::GET, &format!("/v1/ops/{}", key(1)))
            .header("authorization", format!("Device {}", "ab".repeat(32))),
    )
    .await;
    assert_eq!(
        stranger.json(),
        Some(serde_json::json!({ "status": "unknown", "key": key(1) })),
        "{stranger}"
    );
    let anonymous = send(&s.tower, req(Method::GET, &format!("/v1/ops/{}", key(1)))).await;
    assert_eq!(problem(&anonymous, 401, Some("Authorization")), None);
}

// ----- arbitrary input -----------------------------------------------------------------

/// Whether `a` is acceptable for arbitrary input: no 5xx but 503, and every error JSON.
fn sane(a: &Answer) -> Result<(), String> {
    let s = a.status.as_u16();
    if s >= 500 && s != 503 {
        return Err(format!("server error: {a}"));
    }
    if s >= 400 {
        return problem(a, s, None).map_or(Ok(()), Err);
    }
    Ok(())
}

/// A runtime and a tower (unreachable uplink) shared by the proptests' cases.
static PROPTEST_TOWER: std::sync::LazyLock<(tokio::runtime::Runtime, Servers)> =
    std::sync::LazyLock::new(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let s = rt.block_on(Servers::start(Some("http://127.0.0.1:9")));
        (rt, s)
    });

/// Bodies that are mostly near-JSON: arbitrary bytes, or a valid operation with a slice
/// replaced by arbitrary text.
fn bodies() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        (0..GOOD_OP.len(), 0..GOOD_OP.len(), ".{0,20}").prop_map(|(a, b, s)| {
            let (a, b) = (a.min(b), a.max(b));
            let mut v = GOOD_OP.as_bytes()[..a].to_vec();
            v.extend_from_slice(s.as_bytes());
            v.extend_from_slice(&GOOD_OP.as_bytes()[b..]);
            v
        }),
        "[{}\\[\\]\":,0-9a-z ]{0,80}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_operations_never_get_a_server_error(
        body in bodies(),
        key in proptest::collection::vec(any::<u8>(), 0..40),
        content_type in prop_oneof![Just(b"application/json".to_vec()), proptest::collection::vec(any::<u8>(), 0..30)],
    ) {
        // Goal: whatever a device sends to POST /v1/ops, the tower answers without a 5xx
        // (503 aside) and without panicking.
        let mut r = req(Method::POST, "/v1/ops").body(body).header("authorization", auth());
        // A header value cannot hold control characters: such a request never reaches a
        // router, so those headers are left out.
        let valid = |v: &[u8]| axum::http::HeaderValue::from_bytes(v).is_ok();
        if valid(&key) {
            r = r.header("idempotency-key", key.as_slice());
        }
        if valid(&content_type) {
            r = r.header("content-type", content_type.as_slice());
        }
        let (rt, s) = &*PROPTEST_TOWER;
        let a = rt.block_on(send(&s.tower, r));
        prop_assert_eq!(sane(&a), Ok(()));
    }

    #[test]
    fn arbitrary_chunk_and_item_paths_never_get_a_server_error(
        raw in proptest::collection::vec(any::<u8>(), 0..300),
        range in proptest::option::of("[ -~]{0,30}"),
    ) {
        // Goal: whatever follows /v1/chunks/ or /v1/items/ (percent-encoded bytes, valid
        // UTF-8 or not), with any Range, the tower answers 4xx JSON or 200, never 5xx
        // (503 aside), never a panic.
        let seg = pct(&raw);
        for path in [
            format!("/v1/chunks/{seg}"),
            format!("/v1/items/{seg}"),
            format!("/v1/items/{seg}/manifest"),
        ] {
            let mut r = req(Method::GET, &path);
            if let Some(v) = &range {
                r = r.header("range", v.as_bytes());
            }
            let (rt, s) = &*PROPTEST_TOWER;
        let a = rt.block_on(send(&s.tower, r));
            prop_assert_eq!(sane(&a), Ok(()), "{}", path);
        }
    }
}
