//! What every router shares: the JSON error body, body limits, byte ranges and
//! conditional requests, and JSON answers where axum's own would be plain text (path and
//! query rejections, 404 and 405); and the wiring of the two public APIs (their shared
//! routes, fallbacks and timing middleware).
//!
//! Map: [`ApiError`] (+ [`ApiError::from_wire`]), [`read_body`], [`parse_range`],
//! [`ByteRange`], [`content_response`], [`PathParam`], [`QueryParams`], [`not_found`],
//! [`method_not_allowed`], [`not_ready`] (a degraded server's `/readyz`), [`sha256_etag`],
//! [`timed`], [`PublicApi`], [`public_routes`] (the routes both public APIs serve) and
//! [`public_router`] (with the listeners' per-address rate limits: 429 + `Retry-After`);
//! the bodies [`ErrorBody`] and [`NotReady`].

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRef, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest request body a device may send (an operation).
pub const OP_BODY_MAX: usize = 64 * 1024;
/// Largest forward batch a tower may send.
pub const FORWARD_BODY_MAX: usize = 8 * 1024 * 1024;

/// Every error body. `field` names the offending request field or header when there is
/// one.
#[derive(Debug, serde::Serialize, serde::Deserialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong and what was expected.
    pub error: String,
    /// The field or header at fault, e.g. `op.amount_minor` or `Idempotency-Key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// A server's readiness when it is not ready: `error` says why; a degraded server (storage
/// failing, disk full or low, a sync task parked, another origin answering) also lists the
/// reasons in `degraded`, one sentence each.
#[derive(serde::Serialize, ToSchema)]
pub struct NotReady {
    /// The reasons, joined.
    pub error: String,
    /// `false` when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// Why the server is not ready (absent: shutting down or recovering).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded: Option<Vec<String>>,
}

/// An error answer: a status and `{"error": "...", "field": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong, for a person.
    pub message: String,
    /// The offending field or header, when there is one.
    pub field: Option<String>,
    /// Extra headers (Retry-After, WWW-Authenticate, Content-Range).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            field: None,
            headers: Vec::new(),
        }
    }

    /// 400 naming `field`.
    pub fn bad_field(field: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message).field(field)
    }

    /// Name the offending field.
    pub fn field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }

    /// Add a header.
    pub fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(message: impl Into<String>, retry_after_s: u32) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
            .header(header::RETRY_AFTER, HeaderValue::from(retry_after_s))
    }

    /// 400 for a body `sovereign_wire` refused, naming the field when the error does:
    /// `within` is the path of the value that was decoded (`""` for the whole body,
    /// `"ops[3]"` for one operation of a batch), `what` names the body in the message.
    pub fn from_wire(what: &str, within: &str, e: &sovereign_wire::WireError) -> Self {
        let join = |inner: &str| match (within.is_empty(), inner.is_empty()) {
            (_, true) => within.to_string(),
            (true, false) => inner.to_string(),
            (false, false) => format!("{within}.{inner}"),
        };
        let field = match e {
            sovereign_wire::WireError::Field { field, .. } => Some(join(field)),
            sovereign_wire::WireError::Json(msg) => {
                // `from_json` prefixes the path of the failing value: "field `a.b`: …".
                let (path, rest) = msg
                    .strip_prefix("field `")
                    .and_then(|r| r.split_once("`: "))
                    .unwrap_or(("", msg));
                // `?` marks where the decoder lost track (e.g. at the end of the input).
                let path = path.strip_suffix('?').unwrap_or(path);
                let path = path.strip_suffix('.').unwrap_or(path);
                // serde names a missing field (and, inside a tagged enum, an unknown
                // one) in its message; the path then ends at the enclosing object.
                let named = ["unknown field `", "missing field `"].iter().find_map(|p| {
                    rest.strip_prefix(p)
                        .and_then(|r| r.split_once('`'))
                        .map(|(f, _)| f)
                });
                let path = match named {
                    Some(n) if path.rsplit('.').next() != Some(n) => {
                        if path.is_empty() {
                            n.to_string()
                        } else {
                            format!("{path}.{n}")
                        }
                    }
                    _ => path.to_string(),
                };
                (!path.is_empty() || !within.is_empty()).then(|| join(&path))
            }
        };
        let prefix = if within.is_empty() {
            what.to_string()
        } else {
            format!("{what}: {within}")
        };
        let mut err = ApiError::new(StatusCode::BAD_REQUEST, format!("{prefix}: {e}"));
        err.field = field;
        err
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            field: self.field,
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        for (k, v) in self.headers {
            resp.headers_mut().insert(k, v);
        }
        resp
    }
}

impl From<crate::tower_node::NodeGone> for ApiError {
    fn from(_: crate::tower_node::NodeGone) -> Self {
        ApiError::unavailable("the node is stopped (powered off or restarting)", 30)
    }
}

/// `/readyz` of a degraded server: 503, `Retry-After`, the reasons (also in `degraded`).
pub fn not_ready(degraded: Vec<String>) -> Response {
    let body = NotReady {
        error: format!("not ready: {}", degraded.join("; ")),
        ready: Some(false),
        degraded: Some(degraded),
    };
    let mut resp = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(30));
    resp
}

/// The fallback of every router: 404 as JSON.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such route: {}", uri.path()),
    )
}

/// The answer to a known path with a method it does not serve: 405 as JSON (axum's own
/// has no body). axum adds the `Allow` header listing the methods that are served.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "method {method} is not allowed on {}; the Allow header lists those that are",
            uri.path()
        ),
    )
}

/// The one path parameter of a route (`{id}`, `{sha256}`, `{key}`), percent-decoded.
/// Unlike axum's `Path`, a rejection (a parameter that is not UTF-8 once decoded) is a
/// JSON 400 naming the parameter.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(PathParam(v)),
            Err(e) => {
                let field = match &e {
                    PathRejection::FailedToDeserializePathParams(d) => match d.kind() {
                        ErrorKind::InvalidUtf8InPathParam { key } => Some(key.clone()),
                        _ => None,
                    },
                    _ => None,
                };
                let mut err = ApiError::new(
                    e.status(),
                    format!(
                        "{}; a path parameter must be UTF-8 once percent-decoded",
                        e.body_text()
                    ),
                );
                err.field = field;
                Err(err)
            }
        }
    }
}

/// Query parameters by name. Unlike axum's `Query`, a rejection is a JSON 400, and a
/// parameter given twice is refused (naming it) instead of one value silently winning.
pub struct QueryParams(pub BTreeMap<String, String>);

impl QueryParams {
    /// 400 naming the first parameter not in `known`.
    pub fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) => Err(ApiError::bad_field(
                k,
                format!(
                    "unknown query parameter {k:?}; expected {}",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            )),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("query string: {}", e.body_text()),
                )
            })?;
        let mut map = BTreeMap::new();
        for (k, v) in pairs {
            if map.contains_key(&k) {
                return Err(ApiError::bad_field(
                    &k,
                    format!("query parameter {k:?} given more than once"),
                ));
            }
            map.insert(k, v);
        }
        Ok(QueryParams(map))
    }
}

/// Run `next` and report the matched route template (never the raw path), the method,
/// the status and the seconds to the response head.
pub async fn timed(
    req: axum::extract::Request,
    next: axum::middleware::Next,
    report: impl FnOnce(&str, &str, u16, f64),
) -> Response {
    // (cheap clones: the matched path is shared, a standard method is inline)
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let method = req.method().clone();
    let start = tokio::time::Instant::now();
    let resp = next.run(req).await;
    report(
        route.as_ref().map_or("unmatched", |m| m.as_str()),
        method.as_str(),
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

/// What the routes and middleware every public API shares need from its state.
pub trait PublicApi: Send + Sync + 'static {
    /// Count one answered request (the route template, method, status and seconds).
    fn http_request(&self, route: &str, method: &str, status: u16, seconds: f64);
    /// The `/metrics` exposition text.
    fn render_metrics(&self) -> String;
    /// The `/openapi.json` document, serialized.
    fn openapi(&self) -> &Bytes;
}

/// A public API's state as the shared routes see it.
#[derive(Clone)]
pub struct Shared(Arc<dyn PublicApi>);

impl<A: PublicApi> FromRef<Arc<A>> for Shared {
    fn from_ref(api: &Arc<A>) -> Self {
        Shared(api.clone())
    }
}

/// `routes` and the routes every public API serves: `GET /healthz`, `GET /metrics`,
/// `GET /openapi.json`.
pub fn public_routes<S>(routes: OpenApiRouter<S>) -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Shared: FromRef<S>,
{
    routes
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
}

/// Finish a public API's router: the JSON 405 and 404 fallbacks (after every route, so
/// that the 405 covers them all) and the timing middleware around all of it, then bind
/// `api`.
pub fn public_router<A: PublicApi>(routes: OpenApiRouter<Arc<A>>, api: Arc<A>) -> Router {
    let (routes, _) = routes.split_for_parts();
    routes
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(axum::middleware::from_fn(rate_limit))
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            timing::<A>,
        ))
        .with_state(api)
}

/// The rate limits of the listener a request came in on (`listener::RateLimits`, put in
/// its extensions with the client's address): a read (GET, HEAD) takes a token from the
/// client address's read bucket, `POST /v1/ops` from its operations bucket; an empty
/// bucket is 429 with `Retry-After`. Requests with no limits attached (in-process tests)
/// pass.
async fn rate_limit(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let limits = req
        .extensions()
        .get::<Arc<crate::listener::RateLimits>>()
        .cloned();
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    if let (Some(limits), Some(ip)) = (limits, peer) {
        let (limiter, what) = match *req.method() {
            Method::GET | Method::HEAD => (limits.reads.as_ref(), "reads"),
            Method::POST if req.uri().path() == "/v1/ops" => (limits.ops.as_ref(), "operations"),
            _ => (None, ""),
        };
        if let Some(Err(wait)) = limiter.map(|l| l.check(&ip.to_string())) {
            return too_many(format!("{what} from your address"), &ip.to_string(), wait);
        }
        // Operations are also limited per device (whatever address it comes from); a
        // request without a valid device secret is refused by the handler (401).
        if req.method() == Method::POST
            && req.uri().path() == "/v1/ops"
            && let Some(l) = limits.device_ops.as_ref()
            && let Ok(device) = crate::api::tower::device_identity(req.headers())
            && let Err(wait) = l.check(&device.hex())
        {
            return too_many(
                "operations from your device".into(),
                &device.to_string(),
                wait,
            );
        }
    }
    next.run(req).await
}

/// 429 with `Retry-After` for `who`, over its limit of `what` for `wait`.
fn too_many(what: String, who: &str, wait: std::time::Duration) -> Response {
    let retry = crate::limit::retry_after_s(wait);
    tracing::debug!(client = who, what, retry_after_s = retry, "rate limited");
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many {what}; retry in {retry} s"),
    )
    .header(header::RETRY_AFTER, HeaderValue::from(retry))
    .into_response()
}

/// The middleware of [`public_router`]: [`timed`], reported to the API's metrics.
async fn timing<A: PublicApi>(
    State(api): State<Arc<A>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    timed(req, next, move |route, method, status, secs| {
        api.http_request(route, method, status, secs)
    })
    .await
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "Alive: `ok`.", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "ops", responses(
    (status = 200, description = "The exposition.", body = String, content_type = "text/plain; version=0.0.4")))]
async fn metrics(State(Shared(api)): State<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        )],
        api.render_metrics(),
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "OpenAPI 3.1 document.", body = Object)))]
async fn openapi(State(Shared(api)): State<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        api.openapi().clone(),
    )
        .into_response()
}

/// Read a request body of at most `max` bytes (413 beyond it; 408 when it does not
/// arrive within the listener's body timeout).
///
/// The body is copied into one buffer as its frames arrive, sized from its declared
/// length (at most `max`; pages are only touched as bytes arrive), so each frame is freed
/// at once and a large upload costs one allocation of its size: collecting every frame
/// first and copying them at the end held the upload twice, and left the allocator with a
/// heap of freed frames it did not give back (an origin kept ~170 MB after 1 GiB of
/// publishes).
pub async fn read_body(body: Body, max: usize) -> Result<Bytes, ApiError> {
    use axum::body::HttpBody;
    use http_body_util::BodyExt;
    let declared = usize::try_from(body.size_hint().lower()).unwrap_or(usize::MAX);
    let mut buf = bytes::BytesMut::with_capacity(declared.min(max));
    let mut body = http_body_util::Limited::new(body, max);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| body_error(&*e, max))?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// A body read in pieces of `piece` bytes (the last may be shorter), at most `max` bytes
/// in all: never held whole.
pub struct Pieces {
    body: http_body_util::Limited<Body>,
    max: usize,
    piece: usize,
    buf: bytes::BytesMut,
    ended: bool,
}

impl Pieces {
    /// Pieces of `body`.
    pub fn new(body: Body, max: usize, piece: usize) -> Pieces {
        Pieces {
            body: http_body_util::Limited::new(body, max),
            max,
            piece,
            buf: bytes::BytesMut::with_capacity(piece),
            ended: false,
        }
    }

    /// The next piece; `None` at the end; `Err` is the answer for a body that could not
    /// be read (as [`read_body`]'s).
    pub async fn next(&mut self) -> Result<Option<Bytes>, ApiError> {
        use http_body_util::BodyExt;
        while !self.ended && self.buf.len() < self.piece {
            match self.body.frame().await {
                None => self.ended = true,
                Some(frame) => {
                    let frame = frame.map_err(|e| body_error(&*e, self.max))?;
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        let n = self.piece.min(self.buf.len());
        Ok(Some(self.buf.split_to(n).freeze()))
    }
}

/// The answer for a body that could not be read: 408 for the listener's body timeout, 413
/// past `max`, else 400.
fn body_error(e: &(dyn std::error::Error + 'static), max: usize) -> ApiError {
    let mut source = Some(e);
    let mut too_big = false;
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<crate::listener::BodyTimeout>() {
            return ApiError::new(StatusCode::REQUEST_TIMEOUT, t.to_string())
                .header(header::CONNECTION, HeaderValue::from_static("close"));
        }
        too_big |= s.is::<http_body_util::LengthLimitError>();
        source = s.source();
    }
    if too_big {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {max} bytes"),
        )
    } else {
        ApiError::new(StatusCode::BAD_REQUEST, format!("reading the body: {e}"))
    }
}

/// A satisfiable byte range, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
}

/// Parse a `Range` header against a representation of `len` bytes, as RFC 9110 §14.2
/// says a server that answers single ranges should: `Ok(None)` (serve the whole
/// representation, 200) when there is none, when it is not a syntactically valid
/// `bytes=` range set (malformed, another unit, first position after the last) or when it
/// asks for several ranges (multipart answers are not offered; ignoring the header is
/// allowed); 416 (with `Content-Range: bytes */len`) when its one range cannot be
/// satisfied. A last position beyond the end, even one too large for 64 bits, means
/// "to the end" (§14.1.2).
pub fn parse_range(headers: &HeaderMap, len: u64) -> Result<Option<ByteRange>, ApiError> {
    let Some(v) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    let Some(s) = v.to_str().ok().map(str::trim) else {
        return Ok(None);
    };
    // The unit is case-insensitive (§14.1); anything but one `first-last` is ignored.
    let Some(spec) = s
        .get(..6)
        .filter(|u| u.eq_ignore_ascii_case("bytes="))
        .map(|_| &s[6..])
    else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
    // 1*DIGIT that does not fit in 64 bits is larger than any representation.
    let num = |x: &str| x.parse::<u64>().unwrap_or(u64::MAX);
    let unsatisfiable = || {
        ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            format!("range {s:?} is outside the {len} bytes of the content"),
        )
        .field("Range")
        .header(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes */{len}"))
                .unwrap_or(HeaderValue::from_static("bytes */0")),
        )
    };
    let range = match (a.is_empty(), b.is_empty()) {
        // `bytes=-N`: the last N bytes.
        (true, false) if digits(b) => {
            let n = num(b);
            if n == 0 || len == 0 {
                return Err(unsatisfiable());
            }
            ByteRange {
                start: len.saturating_sub(n),
                end: len - 1,
            }
        }
        // `bytes=N-`: from N to the end.
        (false, true) if digits(a) => {
            let start = num(a);
            if start >= len {
                return Err(unsatisfiable());
            }
            ByteRange {
                start,
                end: len - 1,
            }
        }
        (false, false) if digits(a) && digits(b) => {
            let (start, end) = (num(a), num(b));
            if start > end {
                // An invalid range (§14.1.1): the header is ignored.
                return Ok(None);
            }
            if start >= len {
                return Err(unsatisfiable());
            }
            ByteRange {
                start,
                end: end.min(len - 1),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(range))
}

/// Whether `If-None-Match` matches `etag` (strong comparison; `*` matches).
pub fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
        })
}

/// The strong ETag of content whose SHA-256 is `hash`: `"<64 hex digits>"` (what
/// `Manifest::etag` spells), built without formatting machinery: it is on every read.
pub fn sha256_etag(hash: &sovereign_logic::content::ChunkHash) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'"'; 66];
    for (i, b) in hash.0.iter().enumerate() {
        out[1 + 2 * i] = HEX[usize::from(b >> 4)];
        out[2 + 2 * i] = HEX[usize::from(b & 0xf)];
    }
    // Quotes and hex digits are always a valid header value.
    HeaderValue::from_bytes(&out).unwrap_or(HeaderValue::from_static("\"\""))
}

/// Answer a GET of verified content: 304 on a matching `If-None-Match`, 206 for a range,
/// else 200; with the ETag, `Accept-Ranges` and the given `Cache-Control`.
pub fn content_response(
    headers: &HeaderMap,
    bytes: Bytes,
    etag: HeaderValue,
    cache_control: &'static str,
    extra: &[(header::HeaderName, HeaderValue)],
) -> Result<Response, ApiError> {
    let len = bytes.len() as u64;
    let body = move |range: Option<ByteRange>| match range {
        None => Body::from(bytes),
        Some(ByteRange { start, end }) => Body::from(bytes.slice(start as usize..=end as usize)),
    };
    content_response_with(headers, len, body, etag, cache_control, extra)
}

/// [`content_response`] for content of `len` bytes whose body `body` makes for the range
/// asked (`None`: all of it) — called only when a body is sent. The answer states its
/// `Content-Length`, so a body that ends early (a streamed read cut short) cannot pass for
/// the whole.
pub fn content_response_with(
    headers: &HeaderMap,
    len: u64,
    body: impl FnOnce(Option<ByteRange>) -> Body,
    etag: HeaderValue,
    cache_control: &'static str,
    extra: &[(header::HeaderName, HeaderValue)],
) -> Result<Response, ApiError> {
    let tag = etag
        .to_str()
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "bad etag"))?;
    let mut resp = if not_modified(headers, tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let range = parse_range(headers, len)?;
        let mut r = Response::new(body(range));
        let sent = match range {
            None => {
                *r.status_mut() = StatusCode::OK;
                len
            }
            Some(ByteRange { start, end }) => {
                *r.status_mut() = StatusCode::PARTIAL_CONTENT;
                if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                end - start + 1
            }
        };
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(sent));
        r
    };
    let h = resp.headers_mut();
    h.reserve(5 + extra.len());
    h.insert(header::ETAG, etag);
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    for (k, v) in extra {
        h.insert(k.clone(), v.clone());
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str, len: u64) -> Result<Option<ByteRange>, StatusCode> {
        let mut h = HeaderMap::new();
        h.insert(
            header::RANGE,
            HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
        parse_range(&h, len).map_err(|e| e.status)
    }

    #[test]
    fn ranges_parse_like_rfc_9110() {
        let r = |start, end| Ok(Some(ByteRange { start, end }));
        assert_eq!(range("bytes=0-9", 100), r(0, 9));
        assert_eq!(range("bytes=90-", 100), r(90, 99));
        assert_eq!(range("bytes=-10", 100), r(90, 99));
        assert_eq!(range("bytes=-500", 100), r(0, 99));
        assert_eq!(range("bytes=50-5000", 100), r(50, 99));
        assert_eq!(
            range("bytes=100-", 100),
            Err(StatusCode::RANGE_NOT_SATISFIABLE)
        );
        assert_eq!(
            range("bytes=-0", 100),
            Err(StatusCode::RANGE_NOT_SATISFIABLE)
        );
        assert_eq!(range("BYTES=0-9", 100), r(0, 9));
        assert_eq!(range("bytes=0-99999999999999999999", 100), r(0, 99));
        assert_eq!(range("bytes=-99999999999999999999", 100), r(0, 99));
        assert_eq!(
            range("bytes=99999999999999999999-", 100),
            Err(StatusCode::RANGE_NOT_SATISFIABLE)
        );
        // Invalid, malformed, another unit or several ranges: ignored (the whole, 200).
        for ignored in [
            "bytes=9-1",
            "bytes=a-b",
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=-",
            "bytes=5",
            "bytes=--5",
            "bytes=+1-2",
            "bytes=0-1é",
            "bytes",
        ] {
            assert_eq!(range(ignored, 100), Ok(None), "{ignored}");
        }
    }

    #[test]
    fn wire_errors_name_their_field() {
        // Goal: from_wire finds the field in each shape of sovereign-wire error (a path, an
        // unknown or missing field named only in serde's message, a checked value), and
        // prefixes the element of a batch.
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Body {
            device: u32,
            op: sovereign_wire::OpKindDto,
        }
        let field = |json: &str| {
            let e = sovereign_wire::from_json::<Body>(json.as_bytes()).unwrap_err();
            ApiError::from_wire("body", "", &e).field
        };
        let op = r#""op":{"type":"message","to":"a","body":"b"}"#;
        assert_eq!(
            field(&format!(r#"{{"device":"x",{op}}}"#)).as_deref(),
            Some("device")
        );
        assert_eq!(field(&format!(r#"{{{op}}}"#)).as_deref(), Some("device"));
        assert_eq!(
            field(&format!(r#"{{"device":1,{op},"z":0}}"#)).as_deref(),
            Some("z")
        );
        assert_eq!(
            field(r#"{"device":1,"op":{"type":"message","to":"a","body":"b","cc":1}}"#).as_deref(),
            Some("op.cc")
        );
        assert_eq!(
            field(r#"{"device":1,"op":{"type":"message","to":"a"}}"#).as_deref(),
            Some("op.body")
        );
        assert_eq!(field("{"), None);
        let dto = sovereign_wire::OperationDto {
            key: "a b".into(),
            device: sovereign_wire::DeviceDto::Hex("1".into()),
            op: sovereign_wire::OpKindDto::Message {
                to: "a".into(),
                body: "b".into(),
            },
        };
        let e = dto.to_operation().unwrap_err();
        let err = ApiError::from_wire("batch", "ops[3]", &e);
        assert_eq!(err.field.as_deref(), Some("ops[3].key"));
        assert!(
            err.message.starts_with("batch: ops[3]: "),
            "{}",
            err.message
        );
    }

    #[test]
    fn sha256_etag_spells_the_manifest_etag() {
        use sovereign_logic::content::ChunkHash;
        for bytes in [&b""[..], b"abc", &[0xff; 100]] {
            let h = ChunkHash::of(bytes);
            assert_eq!(sha256_etag(&h), format!("\"{}\"", h.to_hex()));
        }
    }

    #[test]
    fn if_none_match_compares_strongly() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"a\", \"b\""),
        );
        assert!(not_modified(&h, "\"b\""));
        assert!(!not_modified(&h, "\"c\""));
    }
}
