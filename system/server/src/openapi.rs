//! The OpenAPI 3.1 documents of the tower's and the origin's HTTP APIs, served at
//! `/openapi.json` on each server's public listener.
//!
//! Nothing here restates a route or a body: each handler carries `#[utoipa::path]` (its
//! method, path, parameters, answers), each body derives `ToSchema` (the `sovereign-wire`
//! DTOs and the API's own envelopes), and the routers are built with utoipa-axum's
//! `OpenApiRouter`, so a route is served only together with its description and a
//! description only with its route. [`tower_openapi`] and [`origin_openapi`] take the paths
//! from the same route lists the servers serve (`api::tower::routes`, `admin::tower_routes`,
//! `api::origin::routes`, `admin::origin_routes`) and add what is common to every document:
//! the info and tags, the security schemes, and the shared error answers.
//!
//! One document per server covers both of its listeners: the public paths (`/v1/…`,
//! health, metrics, this document) and the admin paths (`/admin/…`, tag `admin`, served on
//! the separate admin listener). An admin operation names the role it needs as the scope
//! of its `adminBearer` requirement (OpenAPI 3.1 allows role names there).
//!
//! Map: [`tower_openapi`], [`origin_openapi`]; the shared answers ([`BadRequest`] …
//! [`NotModified`]), referenced by the handlers as `#/components/responses/<name>`, and
//! the sets of them every admin call ([`AdminRefusals`]) or tower call ([`TowerRefusals`])
//! may get; the
//! shared parameters ([`ItemPath`], [`ChunkPath`], [`OpKeyPath`], [`TowerPath`],
//! [`TowerCall`], [`IfNoneMatch`], [`Range`]).
//!
//! Not covered: the admin bodies beyond their documented fields, examples, content
//! negotiation (JSON only), HEAD (answered like GET without a body), the 404/405 of unknown
//! paths and methods and the listener's own refusals (described once, in `info`).

use crate::api::common::ErrorBody;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi as _, ToResponse};

/// The tower's document: devices on the public listener, operators on the admin listener.
pub fn tower_openapi() -> OpenApi {
    document(
        "Sovereign tower",
        "A tower serves content to nearby devices from its verified store and accepts device operations, which it makes durable and forwards to the origin.",
        crate::api::tower::routes().into_openapi(),
        crate::admin::tower_routes().into_openapi(),
    )
}

/// The origin's document: towers on the public listener, operators on the admin listener.
pub fn origin_openapi() -> OpenApi {
    document(
        "Sovereign origin",
        "The origin publishes content (catalog and chunks) to towers and applies the device operations they forward.",
        crate::api::origin::routes().into_openapi(),
        crate::admin::origin_routes().into_openapi(),
    )
}

/// `doc` as `/openapi.json` serves it.
pub fn serialized(doc: &OpenApi) -> bytes::Bytes {
    // A document of strings, maps and numbers always serializes.
    doc.to_json().unwrap_or_default().into()
}

/// What every answer may also be, whatever the route (in each document's `info`).
const EVERY_ANSWER: &str = " Errors are JSON `{\"error\": …, \"field\": …}`; an unknown path is 404 and a known path with another method 405 (with `Allow`), both with that body. Any request may also get, from the listener before any route: 400 (a malformed request line or header), 414 (a request target over 8 KiB), 431 (a head over 64 KiB or 100 headers), 408 (a body that did not arrive within the body timeout), 429 with `Retry-After` (this client address is over its rate, or its connection limit), 503 (the listener is at its connection limit) — each with the same JSON body.";

fn document(title: &str, about: &str, public: OpenApi, admin: OpenApi) -> OpenApi {
    let mut doc = Base::openapi();
    doc.merge(public);
    doc.merge(admin);
    doc.info.title = title.to_string();
    doc.info.description = Some(format!("{about}{EVERY_ANSWER}"));
    doc
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(license(name = "Apache-2.0", identifier = "Apache-2.0")),
    tags(
        (name = "content", description = "Catalog, items and chunks."),
        (name = "ops", description = "Health, readiness, metrics, this document."),
        (name = "operations", description = "Device operations (messages, forms, contributions)."),
        (name = "admin", description = "Admin listener (separate port), bearer token per role; every mutation is appended to DATA/audit.jsonl."),
    ),
    components(schemas(ErrorBody), responses(
        BadRequest, Unauthorized, Forbidden, DeviceUnauthorized, DeviceForbidden,
        TowerUnauthorized, TowerForbidden, PreconditionFailed, NotFound, Conflict,
        UnsupportedMediaType, PayloadTooLarge, RequestTimeout, TooManyRequests,
        RangeNotSatisfiable, Unprocessable, Unavailable, NotModified,
    )),
    modifiers(&SecuritySchemes),
)]
struct Base;

/// The three ways a caller is known: a device's secret, an admin token, a tower's
/// credential.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut OpenApi) {
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "deviceSecret",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`Device <secret>`: the device's 32-byte secret as 64 hex digits, generated on first use and kept in the device's state directory. The tower derives the device's identity from it; it accepts only keys that belong to that identity.",
            ))),
        );
        components.add_security_scheme(
            "adminBearer",
            bearer(
                "One token per role (viewer, operator, chaos), at least 16 characters, configured with --admin-token-<role> or SOVEREIGN_ADMIN_TOKEN_<ROLE>. Operator and chaos each include viewer. An operation's requirement names the role it needs. Without any token configured every admin call is 401.",
            ),
        );
        components.add_security_scheme(
            "towerBearer",
            bearer(
                "A tower's own credential (issued by POST /admin/towers/{tower} on the origin's admin listener), with the tower's number in x-sovereign-tower. Only the origin's tower-facing routes use it.",
            ),
        );
    }
}

// ----- shared answers ------------------------------------------------------------------

/// The request is malformed: bad JSON, a missing or invalid field or header (named in
/// `field`).
#[derive(ToResponse)]
pub struct BadRequest(pub ErrorBody);

/// No admin token, an unknown one, or the admin API has no token configured (fail closed).
#[derive(ToResponse)]
#[response(headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"sovereign-admin\"`.")))]
pub struct Unauthorized(pub ErrorBody);

/// The token is valid but its role does not allow this call.
#[derive(ToResponse)]
pub struct Forbidden(pub ErrorBody);

/// No `Authorization: Device <secret>`, or a secret that is not 64 hex digits (field
/// `Authorization`).
#[derive(ToResponse)]
#[response(headers(("WWW-Authenticate" = String, description = "`Device realm=\"sovereign-tower\"`.")))]
pub struct DeviceUnauthorized(pub ErrorBody);

/// The Idempotency-Key belongs to another device, or the body names another device than
/// the one that authenticated. Nothing was stored.
#[derive(ToResponse)]
pub struct DeviceForbidden(pub ErrorBody);

/// No tower credential, an unknown one, no x-sovereign-tower header, or no credential
/// provisioned at this origin (fail closed).
#[derive(ToResponse)]
#[response(headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"sovereign-towers\"`.")))]
pub struct TowerUnauthorized(pub ErrorBody);

/// The credential belongs to another tower than the one named in x-sovereign-tower (or the
/// tower was revoked meanwhile).
#[derive(ToResponse)]
pub struct TowerForbidden(pub ErrorBody);

/// x-sovereign-expect-origin names another origin: nothing was done (field
/// `x-sovereign-expect-origin`).
#[derive(ToResponse)]
pub struct PreconditionFailed(pub ErrorBody);

/// No such item, chunk or record.
#[derive(ToResponse)]
pub struct NotFound(pub ErrorBody);

/// An operation with this key is being made durable right now: retry shortly.
#[derive(ToResponse)]
#[response(headers(("Retry-After" = u32, description = "Seconds to wait before retrying.")))]
pub struct Conflict(pub ErrorBody);

/// The body is not `application/json` (field `Content-Type`).
#[derive(ToResponse)]
pub struct UnsupportedMediaType(pub ErrorBody);

/// The body is larger than the server accepts.
#[derive(ToResponse)]
pub struct PayloadTooLarge(pub ErrorBody);

/// The body did not arrive within the listener's body timeout; the connection is closed.
#[derive(ToResponse)]
pub struct RequestTimeout(pub ErrorBody);

/// This client address (or device) is over its rate; retry after the given delay.
#[derive(ToResponse)]
#[response(headers(("Retry-After" = u32, description = "Seconds to wait before retrying.")))]
pub struct TooManyRequests(pub ErrorBody);

/// The range lies outside the content.
#[derive(ToResponse)]
#[response(headers(("Content-Range" = String, description = "`bytes */size`.")))]
pub struct RangeNotSatisfiable(pub ErrorBody);

/// Well-formed but refused: the same Idempotency-Key with a different body, or an invalid
/// value.
#[derive(ToResponse)]
pub struct Unprocessable(pub ErrorBody);

/// Not now: storage not durable yet, shutting down, the origin restarting, or (for items) a
/// stored chunk failed verification and is being fetched again. Retry after the given
/// delay.
#[derive(ToResponse)]
#[response(headers(("Retry-After" = u32, description = "Seconds to wait before retrying.")))]
pub struct Unavailable(pub ErrorBody);

/// The client's copy (If-None-Match) is current.
#[derive(ToResponse)]
#[response(headers(("ETag" = String, description = "`\"<sha256 hex>\"` of the representation.")))]
pub struct NotModified;

/// The refusals of every admin call: no token or an unknown one (401), a role that does
/// not grant the call (403).
#[derive(IntoResponses)]
pub enum AdminRefusals {
    /// 401
    #[response(status = 401)]
    Unauthorized(#[ref_response] Unauthorized),
    /// 403
    #[response(status = 403)]
    Forbidden(#[ref_response] Forbidden),
}

/// The refusals of every call only known towers may make (the origin's tower-facing
/// routes): 401, 403 and 412.
#[derive(IntoResponses)]
pub enum TowerRefusals {
    /// 401
    #[response(status = 401)]
    Unauthorized(#[ref_response] TowerUnauthorized),
    /// 403
    #[response(status = 403)]
    Forbidden(#[ref_response] TowerForbidden),
    /// 412
    #[response(status = 412)]
    PreconditionFailed(#[ref_response] PreconditionFailed),
}

// ----- shared parameters ---------------------------------------------------------------

/// An item in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ItemPath {
    /// The item's id: 1 to 256 bytes of UTF-8 without control characters (else 400).
    #[param(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    pub id: String,
}

/// A chunk in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ChunkPath {
    /// The chunk's SHA-256, 64 lower-case hex digits.
    #[param(pattern = "^[0-9a-f]{64}$")]
    pub sha256: String,
}

/// An operation in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct OpKeyPath {
    /// The operation's idempotency key: 1 to 256 visible ASCII characters.
    #[param(pattern = "^[\\x21-\\x7e]{1,256}$")]
    pub key: String,
}

/// A tower in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TowerPath {
    /// The tower's number.
    pub tower: u32,
}

/// Who calls the origin's tower-facing routes, and which origin it expects.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct TowerCall {
    /// The calling tower's number; the bearer credential must be this tower's.
    #[param(rename = "x-sovereign-tower")]
    pub tower: u32,
    /// The origin id the tower trusts; another origin answers 412 and does nothing.
    #[param(
        rename = "x-sovereign-expect-origin",
        required = false,
        pattern = "^[0-9a-f]{32}$"
    )]
    pub expect_origin: String,
}

/// Revalidation of content the client holds.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfNoneMatch {
    /// An ETag the client holds; a match gives 304 with no body.
    #[param(rename = "If-None-Match", required = false)]
    pub if_none_match: String,
}

/// Part of an item.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct Range {
    /// One byte range (`bytes=0-1023`, `bytes=1024-`, `bytes=-512`): 206 with that part,
    /// 416 when it lies outside the content. A header that is malformed or asks for several
    /// ranges is ignored (RFC 9110 §14.2): 200 with the whole content.
    #[param(rename = "Range", required = false, pattern = "^bytes=")]
    pub range: String,
}
