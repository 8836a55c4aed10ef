//! The tower's public (device) API. Reads go through the logic's read path
//! (`sovereign_logic::tower::read`, the same code the simulator's device reads run): the
//! logic plans the read (which version is servable, or why not), this driver reads every
//! chunk of it from the cache or the store and hashes it, and the plan decides from those
//! verdicts — served only if every chunk verified; otherwise 503 (retry) and every rotten
//! or missing chunk of the item goes back to the logic, which quarantines it and fetches it
//! again. Bytes that fail their hash never leave. Submissions go to the
//! logic's outbox and are answered only once durable; a 503 says whether the operation
//! was not stored (its write failed) or its outcome is unknown (its commit failed: it may
//! have reached the disk), and asks for a retry with the same key either way. `/readyz`
//! answers 503 with the reasons while the tower is degraded (storage failing, disk full
//! or low, a sync task parked).
//!
//! Routes: `GET /v1/catalog`, `GET /v1/items/{id}`, `GET /v1/items/{id}/manifest`,
//! `GET /v1/chunks/{sha256}`, `POST /v1/ops`, `GET /v1/ops/{key}`, `GET /healthz`,
//! `GET /readyz` (503 while powered down, or while degraded: storage failing, a sync task
//! parked, or another origin answering in place of the trusted one — reads go on, syncing
//! does not), `GET /metrics`, `GET /openapi.json`. Nothing under `/admin/` (that is the
//! admin listener's).
//!
//! Devices authenticate their operations with `Authorization: Device <secret>` (64 hex
//! digits): the tower derives the device's identity from the secret
//! ([`DeviceId::from_secret`]) and hands the logic that identity, never one a body
//! claims, so the logic can refuse a key or operation that belongs to another device.
//! Reads need no identity.
//!
//! Items over [`STREAMED_ABOVE_BYTES`] are judged first, then sent as they are read.
//!
//! Map: [`TowerApi`], [`routes`] (documented: `#[utoipa::path]` on each handler),
//! [`router`], [`device_identity`], [`ReadError`], [`read_item`], [`read_chunk`]; the
//! bodies [`TowerCatalog`], [`SubmitReply`], [`Ready`].

use super::common::{
    ApiError, ByteRange, NotReady, OP_BODY_MAX, PathParam, PublicApi, content_response,
    content_response_with, not_modified, parse_range, public_router, public_routes, read_body,
    sha256_etag,
};
use crate::cache::VerifiedCache;
use crate::metrics::TowerMetrics;
use crate::openapi::{
    BadRequest, ChunkPath, Conflict, DeviceForbidden, DeviceUnauthorized, IfNoneMatch, ItemPath,
    NotFound, NotModified, OpKeyPath, PayloadTooLarge, Range, RangeNotSatisfiable, RequestTimeout,
    TooManyRequests, Unavailable, Unprocessable, UnsupportedMediaType,
};
use crate::tower_node::TowerHandle;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sovereign_logic::content::{ChunkHash, ItemId, Manifest, verify_chunk};
use sovereign_logic::protocol::{DEVICE_SECRET_BYTES, DeviceId, Operation, SubmitReply as Reply};
use sovereign_logic::tower::read::{ChunkVerdict, ReadOutcome, ServePlan};
use sovereign_logic::tower::{RETRY_OUTCOME_UNKNOWN, Refusal, TowerStatus};
use sovereign_store::Store;
use sovereign_wire::{DeviceDto, ManifestDto, OpKindDto, OpStatusDto};
use std::collections::BTreeSet;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// `x-sovereign-priority` values by [`Priority::index`](sovereign_logic::content::Priority::index)
/// (what `Priority`'s `Display` spells), static so a read allocates none.
const PRIORITY_NAMES: [&str; 4] = ["P0", "P1", "P2", "P3"];

/// Header carrying an operation's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Everything the device API's handlers share.
pub struct TowerApi {
    /// The node task.
    pub node: TowerHandle,
    /// The store (chunk reads).
    pub store: Arc<dyn Store>,
    /// Verified bytes.
    pub cache: Arc<VerifiedCache>,
    /// `tower-N`.
    pub name: String,
    /// Verify bytes read from the store before serving them (`false` only with the
    /// planted bug `skip-verify`, which the real-process tests use to show that their
    /// corruption check can fail).
    pub verify: bool,
    /// The tower's metrics (device reads, devices seen, `/metrics`).
    pub metrics: Arc<TowerMetrics>,
    /// The OpenAPI document, serialized (`crate::openapi::tower_openapi`).
    pub openapi: Bytes,
    /// Manifests of large items (streamed reads) whose whole content was checked against
    /// their digest — a manifest's chunk list never changes, so once is enough; later reads
    /// verify each chunk still. Named by their digest and their list's
    /// ([`Manifest::list_digest`]), so another manifest claiming the same content digest is
    /// checked for itself. At most [`WHOLE_CHECKED_MAX`], the oldest forgotten first.
    pub whole_checked: std::sync::Mutex<WholeChecked>,
    /// Reads of more than [`STREAMED_ABOVE_BYTES`] being judged at once: at most
    /// [`LARGE_JUDGES_MAX`] (each hashes what it covers, and cannot be cut short once begun).
    pub large_judges: tokio::sync::Semaphore,
}

/// Most manifests [`TowerApi::whole_checked`] remembers.
pub const WHOLE_CHECKED_MAX: usize = 4096;
/// Most reads of more than [`STREAMED_ABOVE_BYTES`] judged at once; another waits up to
/// [`LARGE_JUDGE_WAIT`], then is answered 503 with `Retry-After`.
pub const LARGE_JUDGES_MAX: usize = 4;
/// How long a large read waits for its turn to be judged.
pub const LARGE_JUDGE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The manifests whose whole content was checked, in the order they were (see
/// [`TowerApi::whole_checked`]).
#[derive(Default)]
pub struct WholeChecked {
    set: BTreeSet<(ChunkHash, ChunkHash)>,
    order: std::collections::VecDeque<(ChunkHash, ChunkHash)>,
}

impl WholeChecked {
    fn contains(&self, key: &(ChunkHash, ChunkHash)) -> bool {
        self.set.contains(key)
    }

    fn insert(&mut self, key: (ChunkHash, ChunkHash)) {
        if !self.set.insert(key) {
            return;
        }
        self.order.push_back(key);
        if self.order.len() > WHOLE_CHECKED_MAX {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

/// The device API's routes, each with its description.
pub fn routes() -> OpenApiRouter<Arc<TowerApi>> {
    public_routes(
        OpenApiRouter::new()
            .routes(routes!(catalog))
            .routes(routes!(item))
            .routes(routes!(manifest))
            .routes(routes!(chunk))
            .routes(routes!(submit))
            .routes(routes!(op_status))
            .routes(routes!(readyz)),
    )
}

/// The device API's router.
pub fn router(api: Arc<TowerApi>) -> Router {
    public_router(routes(), api)
}

/// What a tower can serve now.
#[derive(serde::Serialize, ToSchema)]
pub struct TowerCatalog {
    /// `tower-N`.
    #[schema(examples("tower-1"))]
    pub tower: String,
    /// Servable items (complete, verified, durable), latest version each.
    pub items: Vec<ManifestDto>,
}

/// What this tower can serve now.
#[utoipa::path(get, path = "/v1/catalog", tag = "content", responses(
    (status = 200, description = "Servable items.", body = TowerCatalog),
    (status = 503, response = Unavailable)))]
async fn catalog(State(api): State<Arc<TowerApi>>) -> Result<Response, ApiError> {
    let manifests = api.node.query(|t, _| t.servable_manifests()).await?;
    let items: Vec<ManifestDto> = manifests.iter().map(ManifestDto::from).collect();
    let tower = api.name.clone();
    Ok(axum::Json(TowerCatalog { tower, items }).into_response())
}

fn item_id(raw: &str) -> Result<ItemId, ApiError> {
    if raw.is_empty() || raw.len() > 256 || raw.chars().any(char::is_control) {
        return Err(ApiError::bad_field(
            "id",
            "an item id is 1 to 256 characters without control characters",
        ));
    }
    Ok(ItemId::new(raw))
}

fn refusal(r: Refusal, item: &ItemId) -> ApiError {
    match r {
        Refusal::NotHeld => ApiError::new(
            StatusCode::NOT_FOUND,
            format!("item {item:?} is not held complete and verified at this tower"),
        ),
        Refusal::PoweredDown => ApiError::unavailable("the tower is shutting down", 300),
        Refusal::Offline => ApiError::unavailable("the tower refuses service offline", 60),
        Refusal::Repairing => ApiError::unavailable(
            format!(
                "a stored chunk of {item:?} failed verification; it is quarantined and being fetched again"
            ),
            30,
        ),
    }
}

/// Why a read could not be served.
#[derive(Debug)]
pub enum ReadError {
    /// The logic refused (not held, powered down).
    Refused(Refusal),
    /// Stored chunks failed verification or are missing (reported to the logic, which
    /// quarantines them): every such chunk of the item, in manifest order.
    Corrupt(Vec<ChunkHash>),
    /// The store failed.
    Store(String),
    /// The node is gone.
    Gone,
}

/// Read one chunk and judge it: its bytes and [`ChunkVerdict::Intact`] from the cache
/// (verified bytes only) or from the store after checking them against the hash and `len`
/// (when `verify`), or the verdict that it is rotten or missing. Reporting a bad chunk is
/// the caller's.
fn judge_chunk(
    api: &TowerApi,
    hash: &ChunkHash,
    len: Option<u32>,
    verify: bool,
) -> Result<(Option<Bytes>, ChunkVerdict), ReadError> {
    if let Some(b) = api.cache.get(hash) {
        return Ok((Some(b), ChunkVerdict::Intact));
    }
    let bytes = crate::tower_node::blocking(|| api.store.chunk(hash))
        .map_err(|e| ReadError::Store(e.to_string()))?;
    let Some(bytes) = bytes else {
        return Ok((None, ChunkVerdict::Missing));
    };
    if verify && (len.is_some_and(|l| l as usize != bytes.len()) || !verify_chunk(hash, &bytes)) {
        tracing::warn!(chunk = %hash, "stored chunk failed verification on read; quarantining");
        return Ok((None, ChunkVerdict::Rotten));
    }
    if verify {
        api.cache.insert_verified(*hash, bytes.clone());
    }
    Ok((Some(bytes), ChunkVerdict::Intact))
}

/// Read a chunk's verified bytes: from the cache, or from the store after checking them.
/// A mismatch (or a chunk the store lost) is reported to the logic (quarantine, fetch
/// again) and never served.
pub fn read_chunk(api: &TowerApi, hash: &ChunkHash, len: Option<u32>) -> Result<Bytes, ReadError> {
    match judge_chunk(api, hash, len, api.verify)? {
        (Some(bytes), ChunkVerdict::Intact) => Ok(bytes),
        _ => {
            api.node.report_corrupt(*hash);
            Err(ReadError::Corrupt(vec![*hash]))
        }
    }
}

/// Items larger than this are sent as they are read, a chunk at a time, so a request
/// holds about one chunk rather than the item; smaller ones are assembled and kept whole
/// in the verified cache. Measured before: 24 concurrent reads of two 200 MiB items took
/// a tower to a 2.9 GB peak, and a client may hold 64 connections.
pub const STREAMED_ABOVE_BYTES: u64 = 8 << 20;

/// Read the version `plan` serves: its verified bytes, from the cache or judged chunk by
/// chunk ([`judge_item`]) and then kept whole in the cache.
pub fn read_item(api: &TowerApi, plan: &ServePlan) -> Result<Bytes, ReadError> {
    let m = &plan.manifest;
    if let Some(b) = api.cache.get(&m.digest) {
        return Ok(b);
    }
    let bytes = judge_item(api, plan, true)?.unwrap_or_default();
    if plan.verifies() {
        api.cache.insert_verified(m.digest, bytes.clone());
    }
    Ok(bytes)
}

/// The logic's plan for reading `item` (its servable version), or why it cannot be read.
async fn plan_item(api: &TowerApi, item: &ItemId) -> Result<ServePlan, ReadError> {
    api.node
        .plan_read(item)
        .await
        .map_err(|_| ReadError::Gone)?
        .map_err(ReadError::Refused)
}

/// Judge every chunk of `plan`'s version (planned from the node's published view of the
/// logic, no round trip: see `tower_node`; the plan also notes the read for the cache
/// warmer) — every chunk, not only up to the first bad one — and, when the plan verifies, the whole content
/// against its digest; the logic's plan decides, and a read that found rot hands it the
/// outcome. The bytes are kept (and returned) only when `keep`: a streamed read judges
/// first, holding one chunk at a time, and sends only what this pass found whole.
fn judge_item(api: &TowerApi, plan: &ServePlan, keep: bool) -> Result<Option<Bytes>, ReadError> {
    use sha2::Digest;
    let m = &plan.manifest;
    let memo = || (api.whole_checked.lock()).unwrap_or_else(|p| p.into_inner());
    // Kept bytes go into the cache under the content digest: always checked.
    let key = (!keep).then(|| (m.digest, m.list_digest()));
    let check_whole = plan.verifies() && !key.is_some_and(|k| memo().contains(&k));
    let mut out = Vec::with_capacity(if keep { m.size as usize } else { 0 });
    let mut digest = sha2::Sha256::new();
    let mut verdicts = Vec::with_capacity(m.chunks.len());
    for c in &m.chunks {
        let (bytes, verdict) = judge_chunk(api, &c.hash, Some(c.len), plan.verifies())?;
        if let Some(b) = bytes {
            if check_whole {
                digest.update(&b);
            }
            if keep {
                out.extend_from_slice(&b);
            }
        }
        verdicts.push(verdict);
    }
    let outcome = plan.decide(verdicts);
    if let ReadOutcome::Repair { rotten } = &outcome {
        let rotten = rotten.clone();
        api.node.report_read(outcome);
        return Err(ReadError::Corrupt(rotten));
    }
    if check_whole {
        if ChunkHash(digest.finalize().into()) != m.digest {
            // Every chunk verified, so the manifest itself disagrees with its digest.
            return Err(ReadError::Store(format!(
                "{} v{} does not match its digest",
                m.item, m.version
            )));
        }
        if let Some(key) = key {
            memo().insert(key);
        }
    }
    Ok(keep.then(|| Bytes::from(out)))
}

/// Each chunk of `m` overlapping bytes `start..=end`: its hash, length, and the part of it
/// wanted (`lo..hi` within the chunk); walked lazily, so a streamed read holds the
/// manifest it shares, not a list of its own.
fn covered(
    m: Arc<Manifest>,
    start: u64,
    end: u64,
) -> impl Iterator<Item = (ChunkHash, u32, usize, usize)> {
    let mut offset = 0u64;
    let mut i = 0usize;
    std::iter::from_fn(move || {
        while let Some(c) = m.chunks.get(i) {
            i += 1;
            let (from, to) = (offset, offset + u64::from(c.len));
            offset = to;
            if from > end {
                return None;
            }
            if to <= start || c.len == 0 {
                continue;
            }
            let lo = start.saturating_sub(from) as usize;
            let hi = ((end + 1).min(to) - from) as usize;
            return Some((c.hash, c.len, lo, hi));
        }
        None
    })
}

/// Judge the chunks of `plan`'s version a range `start..=end` (not the whole) covers,
/// keeping none: rotten or missing ones go to the logic, as a whole read's would, and the
/// read is refused; the others' verdicts are not needed for this answer.
fn judge_part(api: &TowerApi, plan: &ServePlan, start: u64, end: u64) -> Result<(), ReadError> {
    let mut rotten: Vec<ChunkHash> = Vec::new();
    for (hash, len, _, _) in covered(plan.manifest.clone(), start, end) {
        let (_, verdict) = judge_chunk(api, &hash, Some(len), plan.verifies())?;
        let bad = match verdict {
            ChunkVerdict::Intact => false,
            ChunkVerdict::Rotten => plan.verifies(),
            ChunkVerdict::Missing => true,
        };
        if bad && !rotten.contains(&hash) {
            rotten.push(hash);
        }
    }
    if rotten.is_empty() {
        return Ok(());
    }
    api.node.report_read(ReadOutcome::Repair {
        rotten: rotten.clone(),
    });
    Err(ReadError::Corrupt(rotten))
}

/// The body of a streamed read of `plan`'s version ([`STREAMED_ABOVE_BYTES`]): the bytes
/// of `range` (all of them if none), read chunk by chunk — from the cache or the store,
/// each checked against its hash again as it is sent. A chunk that fails now (it rotted
/// since the read was judged, or the store lost it) is reported to the logic like any
/// other and ends the body with an error: the connection is cut short of its
/// `Content-Length`, so a client never takes the truncated body for the item.
fn streamed_body(api: Arc<TowerApi>, plan: ServePlan, range: Option<ByteRange>) -> Body {
    let m = plan.manifest.clone();
    let (start, end) = range.map_or((0, m.size.saturating_sub(1)), |r| (r.start, r.end));
    let parts = covered(m, start, end);
    // Lazily: each chunk is read when the connection asks for the next piece.
    let verify = plan.verifies();
    let pieces = parts.into_iter().map(move |(hash, len, lo, hi)| {
        match judge_chunk(&api, &hash, Some(len), verify) {
            Ok((Some(bytes), ChunkVerdict::Intact)) => {
                // Unverified bytes (the planted skip-verify) may be short: the body then
                // ends short of its length.
                Ok(bytes.slice(lo.min(bytes.len())..hi.min(bytes.len())))
            }
            Ok(_) => {
                api.node.report_corrupt(hash);
                Err(std::io::Error::other(format!(
                    "chunk {hash} failed verification while it was sent; reported"
                )))
            }
            Err(e) => Err(std::io::Error::other(format!(
                "reading chunk {hash}: {e:?}"
            ))),
        }
    });
    Body::from_stream(futures_util::stream::iter(pieces))
}

fn read_error(api: &TowerApi, e: ReadError, item: &ItemId) -> ApiError {
    let outcome = match &e {
        ReadError::Refused(_) => "refused",
        ReadError::Corrupt(_) => "corrupt",
        ReadError::Store(_) | ReadError::Gone => "unavailable",
    };
    api.metrics.device_read(outcome);
    match e {
        ReadError::Refused(r) => refusal(r, item),
        ReadError::Corrupt(rotten) => ApiError::unavailable(
            format!(
                "{} stored chunk(s) of {item:?} failed verification ({}); they are quarantined and being fetched again",
                rotten.len(),
                rotten
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            30,
        ),
        ReadError::Store(e) => ApiError::unavailable(format!("storage: {e}"), 30),
        ReadError::Gone => crate::tower_node::NodeGone.into(),
    }
}

/// Count a served read (`not_modified` for a 304) and pass its answer on.
fn count_served(api: &TowerApi, resp: Response) -> Response {
    api.metrics
        .device_read(if resp.status() == StatusCode::NOT_MODIFIED {
            "not_modified"
        } else {
            "served"
        });
    resp
}

/// An item's bytes (latest servable version), with ranges and revalidation.
#[utoipa::path(get, path = "/v1/items/{id}", tag = "content", params(
    ItemPath, Range, IfNoneMatch),
  responses(
    (status = 200, description = "The whole item.", body = String, content_type = "application/octet-stream", headers(
        ("ETag" = String, description = "`\"<sha256 hex>\"` of the content."), ("Accept-Ranges" = String),
        ("X-Sovereign-Version" = u64, description = "The version served."),
        ("X-Sovereign-Priority" = String, description = "The item's class."))),
    (status = 206, description = "The requested range.", body = String, content_type = "application/octet-stream", headers(
        ("ETag" = String), ("Content-Range" = String, description = "`bytes a-b/size`."), ("Accept-Ranges" = String),
        ("X-Sovereign-Version" = u64), ("X-Sovereign-Priority" = String))),
    (status = 304, response = NotModified), (status = 400, response = BadRequest),
    (status = 404, response = NotFound), (status = 416, response = RangeNotSatisfiable),
    (status = 503, response = Unavailable)))]
async fn item(
    State(api): State<Arc<TowerApi>>,
    PathParam(id): PathParam,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let item = item_id(&id)?;
    let plan = (plan_item(&api, &item).await).map_err(|e| read_error(&api, e, &item))?;
    let m = plan.manifest.clone();
    let extra = [
        (
            HeaderName::from_static("x-sovereign-version"),
            HeaderValue::from(m.version),
        ),
        (
            HeaderName::from_static("x-sovereign-priority"),
            HeaderValue::from_static(PRIORITY_NAMES[m.priority.index()]),
        ),
    ];
    // The id names the latest version, which changes: revalidate with the ETag.
    let etag = sha256_etag(&m.digest);
    let resp = if m.size > STREAMED_ABOVE_BYTES {
        // Judged first (rot is answered 503 before any byte): the whole, or the chunks a
        // range covers; not for a HEAD (no byte goes) or a client that holds this version
        // already. Off the async workers: a GiB takes seconds to hash.
        if method != Method::HEAD && !not_modified(&headers, etag.to_str().unwrap_or_default()) {
            let range = parse_range(&headers, m.size)?;
            let span = range.map_or(m.size, |r| r.end - r.start + 1);
            // A large span waits its turn: judging hashes it all, and cannot be cut short.
            let _turn = if span > STREAMED_ABOVE_BYTES {
                let turn = tokio::time::timeout(LARGE_JUDGE_WAIT, api.large_judges.acquire());
                let Ok(Ok(turn)) = turn.await else {
                    api.metrics.device_read("unavailable");
                    return Err(ApiError::unavailable(
                        format!("{LARGE_JUDGES_MAX} large reads are being checked; retry"),
                        5,
                    ));
                };
                Some(turn)
            } else {
                None
            };
            let judged = crate::tower_node::blocking(|| match range {
                Some(r) if span < m.size => judge_part(&api, &plan, r.start, r.end),
                _ => judge_item(&api, &plan, false).map(drop),
            });
            judged.map_err(|e| read_error(&api, e, &item))?;
        }
        let api = api.clone();
        let body = move |range| streamed_body(api, plan, range);
        content_response_with(&headers, m.size, body, etag, "no-cache", &extra)?
    } else {
        let bytes = read_item(&api, &plan).map_err(|e| read_error(&api, e, &item))?;
        content_response(&headers, bytes, etag, "no-cache", &extra)?
    };
    Ok(count_served(&api, resp))
}

/// The manifest of an item's latest servable version.
#[utoipa::path(get, path = "/v1/items/{id}/manifest", tag = "content", params(ItemPath), responses(
    (status = 200, description = "The manifest.", body = ManifestDto, headers(("ETag" = String))),
    (status = 400, response = BadRequest), (status = 404, response = NotFound),
    (status = 503, response = Unavailable)))]
async fn manifest(
    State(api): State<Arc<TowerApi>>,
    PathParam(id): PathParam,
) -> Result<Response, ApiError> {
    let item = item_id(&id)?;
    let it = item.clone();
    let plan = api
        .node
        .query(move |t, now| t.serve_plan(now, &it))
        .await?
        .map_err(|r| refusal(r, &item))?;
    let mut resp = axum::Json(ManifestDto::from(&*plan.manifest)).into_response();
    if let Ok(v) = HeaderValue::from_str(&plan.manifest.etag()) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

fn parse_hash(raw: &str) -> Result<ChunkHash, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::bad_field(
            "sha256",
            format!(
                "expected 64 hex digits (a SHA-256), found {:?}",
                raw.chars().take(80).collect::<String>()
            ),
        )
    })
}

/// A chunk's bytes by SHA-256 (content-addressed, immutable).
#[utoipa::path(get, path = "/v1/chunks/{sha256}", tag = "content", params(ChunkPath, IfNoneMatch),
  responses(
    (status = 200, description = "The chunk; its SHA-256 is the path's.", body = String, content_type = "application/octet-stream",
        headers(("ETag" = String), ("Cache-Control" = String, description = "`public, max-age=31536000, immutable`."))),
    (status = 304, response = NotModified), (status = 400, response = BadRequest),
    (status = 404, response = NotFound), (status = 503, response = Unavailable)))]
async fn chunk(
    State(api): State<Arc<TowerApi>>,
    PathParam(raw): PathParam,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let hash = parse_hash(&raw)?;
    let held = api.node.query(move |t, _| t.holds_chunk(&hash)).await?;
    if !held {
        api.metrics.device_read("refused");
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("chunk {hash} is not held at this tower"),
        ));
    }
    let bytes = read_chunk(&api, &hash, None)
        .map_err(|e| read_error(&api, e, &ItemId::new(hash.to_hex())))?;
    // Content-addressed: the bytes under this URL never change.
    let resp = content_response(
        &headers,
        bytes,
        sha256_etag(&hash),
        "public, max-age=31536000, immutable",
        &[],
    )?;
    Ok(count_served(&api, resp))
}

/// The authentication scheme of device requests: `Authorization: Device <secret>`.
pub const DEVICE_AUTH_SCHEME: &str = "Device";

/// The identity of the device presenting a request: `Authorization: Device <secret>`, the
/// secret as 64 hex digits (32 bytes), the identity derived from it. 401 with
/// `WWW-Authenticate: Device` when the header is missing or malformed.
pub fn device_identity(headers: &HeaderMap) -> Result<DeviceId, ApiError> {
    let challenge = |msg: &str| {
        ApiError::new(StatusCode::UNAUTHORIZED, msg)
            .field("Authorization")
            .header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Device realm=\"sovereign-tower\""),
            )
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(challenge(
            "missing Authorization: Device <secret>: operations are accepted from an identified device only (the device client generates its secret on first use)",
        ));
    };
    let value = value
        .to_str()
        .map_err(|_| challenge("Authorization is not visible ASCII"))?;
    let secret = value
        .strip_prefix(DEVICE_AUTH_SCHEME)
        .and_then(|r| r.strip_prefix(' '))
        .map(str::trim)
        .ok_or_else(|| challenge("expected Authorization: Device <secret>"))?;
    let mut bytes = [0u8; DEVICE_SECRET_BYTES];
    if secret.len() != 2 * DEVICE_SECRET_BYTES
        || secret
            .as_bytes()
            .chunks(2)
            .zip(bytes.iter_mut())
            .any(|(pair, out)| {
                match std::str::from_utf8(pair)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                {
                    Some(b) => {
                        *out = b;
                        false
                    }
                    None => true,
                }
            })
    {
        return Err(challenge(
            "the device secret must be 64 hex digits (32 bytes)",
        ));
    }
    Ok(DeviceId::from_secret(&bytes))
}

/// An operation from a device; its key is the Idempotency-Key header, its device the one
/// that authenticated (`Authorization: Device <secret>`).
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SubmitOp)]
struct Submission {
    /// Optional; if present it must be the authenticated device's identity (else 403).
    #[serde(default)]
    device: Option<DeviceDto>,
    /// What to do.
    op: OpKindDto,
}

/// The answer to an operation made durable.
#[derive(serde::Serialize, ToSchema)]
pub struct SubmitReply {
    /// The operation's key.
    #[schema(pattern = "^[\\x21-\\x7e]{1,256}$")]
    pub key: String,
    /// `accepted`: written and fsynced at the tower.
    #[schema(value_type = SubmitStatus)]
    pub status: &'static str,
}

/// What became of a submission (documentation only).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum SubmitStatus {
    /// written and fsynced at the tower
    Accepted,
}

/// Submit a device operation; acknowledged only once durable at the tower.
///
/// Refused (nothing stored) when the key or the operation is another device's (403), when
/// the origin would reject it (422 naming the field), or when the key was used before with
/// another body — also after the origin confirmed it (422, field `Idempotency-Key`).
#[utoipa::path(post, path = "/v1/ops", tag = "operations", security(("deviceSecret" = [])),
  params(("Idempotency-Key" = String, Header, pattern = "^[\\x21-\\x7e]{1,256}$", description = "The operation's key. Resubmitting the same key and body is safe (202 again, with `Idempotent-Replayed: true`); the same key with another body is 422.")),
  request_body = Submission,
  responses(
    (status = 202, description = "Accepted: written and fsynced; the tower will forward it. A replay of an accepted key and body gets the same answer with `Idempotent-Replayed: true`.",
        body = SubmitReply, headers(("Idempotent-Replayed" = String, description = "`true` on the answer to a replay."))),
    (status = 400, response = BadRequest), (status = 401, response = DeviceUnauthorized),
    (status = 403, response = DeviceForbidden), (status = 408, response = RequestTimeout),
    (status = 409, response = Conflict), (status = 413, response = PayloadTooLarge),
    (status = 415, response = UnsupportedMediaType), (status = 422, response = Unprocessable),
    (status = 429, response = TooManyRequests),
    (status = 503, description = "Not acknowledged; retry with the same Idempotency-Key (the key makes the retry safe). `error` says which: `not stored (…)` — the write was refused, the outbox is full or the tower is shutting down: nothing was stored; or `not acknowledged, outcome unknown: …` — the commit failed after the write, and a failed commit may have reached the disk: the operation may or may not have been stored, and only a retry with the same key settles it.",
        body = super::common::ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait before retrying.")))))]
async fn submit(
    State(api): State<Arc<TowerApi>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = headers
        .get(IDEMPOTENCY_KEY)
        .ok_or_else(|| {
            ApiError::bad_field(
                "Idempotency-Key",
                "missing Idempotency-Key header: every operation needs a key that stays the same across retries",
            )
        })?
        .to_str()
        .map_err(|_| ApiError::bad_field("Idempotency-Key", "not visible ASCII"))?;
    let key = sovereign_wire::idem_key("Idempotency-Key", key)
        .map_err(|e| ApiError::bad_field("Idempotency-Key", e.to_string()))?;
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        if !ct.to_str().unwrap_or("").starts_with("application/json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected Content-Type: application/json",
            )
            .field("Content-Type"));
        }
    }
    let presenter = device_identity(&headers)?;
    let bytes = read_body(body, OP_BODY_MAX).await?;
    let sub: Submission = sovereign_wire::from_json(&bytes)
        .map_err(|e| ApiError::from_wire("operation body", "", &e))?;
    // A body may name a device; the logic refuses (403) one that is not the presenter.
    let device = match &sub.device {
        Some(d) => d
            .to_device("device")
            .map_err(|e| ApiError::from_wire("operation body", "", &e))?,
        None => presenter,
    };
    api.metrics
        .device_seen(presenter, tokio::time::Instant::now());
    let op = Operation {
        key: key.clone(),
        device,
        kind: sub.op.into(),
    };
    let reply = api.node.submit(presenter, op).await?;
    let accepted = || {
        let body = SubmitReply {
            key: key.0.to_string(),
            status: "accepted",
        };
        (StatusCode::ACCEPTED, axum::Json(body)).into_response()
    };
    let resp = match reply {
        Reply::Accepted => accepted(),
        Reply::Duplicate => {
            // The original result, marked as a replay.
            let mut r = accepted();
            r.headers_mut().insert(
                HeaderName::from_static("idempotent-replayed"),
                HeaderValue::from_static("true"),
            );
            r
        }
        Reply::InFlight => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("operation {key} is still being made durable; retry shortly"),
            )
            .header(header::RETRY_AFTER, HeaderValue::from(1)));
        }
        Reply::Conflict => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("Idempotency-Key {key} was used before with a different body"),
            )
            .field("Idempotency-Key"));
        }
        Reply::Retry { reason } => {
            // A failed commit may have reached the disk anyway: say so, not "not stored".
            let message = if reason.starts_with(RETRY_OUTCOME_UNKNOWN) {
                format!(
                    "not acknowledged, {reason}: the operation may or may not have been \
                     stored; retry with the same Idempotency-Key (the retry is idempotent)"
                )
            } else {
                format!("not stored ({reason}); retry with the same Idempotency-Key")
            };
            return Err(ApiError::unavailable(message, 5));
        }
        Reply::Forbidden { reason } => {
            return Err(ApiError::new(StatusCode::FORBIDDEN, reason).field("Idempotency-Key"));
        }
        Reply::Invalid { invalid } => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the operation would be rejected by the origin: {invalid}"),
            )
            .field(invalid.field));
        }
    };
    Ok(resp)
}

/// What became of one of the presenting device's operations: pending at the tower, the
/// origin's verdict, or unknown. Another device's key is always unknown.
#[utoipa::path(get, path = "/v1/ops/{key}", tag = "operations", security(("deviceSecret" = [])),
  params(OpKeyPath), responses(
    (status = 200, description = "The status.", body = OpStatusDto),
    (status = 400, response = BadRequest), (status = 401, response = DeviceUnauthorized),
    (status = 429, response = TooManyRequests), (status = 503, response = Unavailable)))]
async fn op_status(
    State(api): State<Arc<TowerApi>>,
    PathParam(raw): PathParam,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let presenter = device_identity(&headers)?;
    let key = sovereign_wire::idem_key("key", &raw)
        .map_err(|e| ApiError::bad_field("key", e.to_string()))?;
    let k = key.clone();
    let status = api
        .node
        .query(move |t, _| t.op_status(presenter, &k))
        .await?;
    Ok(axum::Json(OpStatusDto::new(&key, &status)).into_response())
}

/// A ready tower's readiness.
#[derive(serde::Serialize, ToSchema)]
pub struct Ready {
    /// Always `true`.
    pub ready: bool,
    /// The power manager's mode.
    pub power_mode: &'static str,
    /// The uplink in use, if any.
    pub active_link: Option<&'static str>,
    /// Items servable now.
    pub items_servable: u64,
    /// Free bytes on the data directory's file system (null: not watched).
    pub storage_free_bytes: Option<u64>,
    /// The origin this tower trusts (32 hex digits), if any.
    pub origin: Option<String>,
}

/// Readiness: the tower recovered its durable state and serves.
///
/// 503 while powered down or shutting down, or while degraded: storage failing, a sync task
/// parked, or another origin answering in place of the trusted one (reads go on).
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, description = "Ready.", body = Ready),
    (status = 503, description = "Not ready; `Retry-After` says when to look again.", body = NotReady,
        headers(("Retry-After" = u32, description = "Seconds to wait before retrying.")))))]
async fn readyz(State(api): State<Arc<TowerApi>>) -> Result<Response, ApiError> {
    if api.node.is_off() {
        return Err(ApiError::unavailable("powered off", 300));
    }
    let (status, parked, mismatch, trusted): (TowerStatus, _, _, _) = api
        .node
        .query(|t, now| {
            (
                t.status(),
                t.parked(now),
                t.origin_mismatch(),
                t.trusted_origin(),
            )
        })
        .await?;
    if status.power_mode >= sovereign_logic::io::PowerMode::ShuttingDown {
        return Err(ApiError::unavailable(
            format!("power mode {}", status.power_mode),
            300,
        ));
    }
    let mut degraded = crate::storage::parked_reasons(&parked);
    degraded.extend(api.metrics.storage().reasons());
    if let Some((expected, found)) = mismatch {
        // Devices are still served what the tower holds; it is not ready to sync.
        degraded.push(format!(
            "origin mismatch: trusting origin {expected}, but origin {} answers at the uplinks' address; syncing stopped (serving what is held); an operator re-homes with POST /admin/rehome",
            found.map_or_else(|| "(none announced)".to_string(), |f| f.to_string())
        ));
    }
    if !degraded.is_empty() {
        return Ok(super::common::not_ready(degraded));
    }
    Ok(axum::Json(Ready {
        ready: true,
        power_mode: status.power_mode.name(),
        active_link: status.active_link.map(|l| l.name()),
        items_servable: status.items_servable,
        storage_free_bytes: api.metrics.storage().free_bytes(),
        origin: trusted.map(|o| o.to_string()),
    })
    .into_response())
}

impl PublicApi for TowerApi {
    fn http_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.metrics.http_request(route, method, status, seconds);
    }

    fn render_metrics(&self) -> String {
        self.metrics.render()
    }

    fn openapi(&self) -> &Bytes {
        &self.openapi
    }
}

#[cfg(test)]
mod tests {
    use super::PRIORITY_NAMES;
    use sovereign_logic::content::Priority;

    #[test]
    fn priority_names_spell_priority_display() {
        for p in Priority::ALL {
            assert_eq!(PRIORITY_NAMES[p.index()], p.to_string());
        }
    }

    #[test]
    fn the_checked_manifests_forget_the_oldest_first_and_name_the_list_too() {
        // Goal: past WHOLE_CHECKED_MAX the oldest entry goes, whatever its hash; a second
        // manifest claiming a checked content digest with another list is not taken for
        // checked; inserting again does not grow the memo.
        use super::{WHOLE_CHECKED_MAX, WholeChecked};
        use sovereign_logic::content::ChunkHash;
        let key = |n: u64| {
            let h = ChunkHash::of(&n.to_le_bytes());
            (h, ChunkHash::of(&h.0))
        };
        let mut memo = WholeChecked::default();
        for n in 0..WHOLE_CHECKED_MAX as u64 {
            memo.insert(key(n));
            memo.insert(key(n));
        }
        assert!(memo.contains(&key(0)));
        assert!(
            !memo.contains(&(key(0).0, key(1).1)),
            "another list, same digest"
        );
        memo.insert(key(u64::MAX));
        assert!(!memo.contains(&key(0)), "the oldest stayed");
        assert!(memo.contains(&key(1)) && memo.contains(&key(u64::MAX)));
        assert_eq!(memo.order.len(), WHOLE_CHECKED_MAX);
    }
}
