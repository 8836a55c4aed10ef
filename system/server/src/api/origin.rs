//! The origin's public API, which towers call over their uplinks: the catalog since a
//! publish seq, chunks by hash, and forward batches of device operations (answered only
//! once their outcomes are durable). Health, readiness, metrics and the OpenAPI document.
//!
//! Routes: `GET /v1/catalog?since=N`, `GET /v1/chunks/{sha256}`, `POST /v1/forward`,
//! `GET /healthz` (the towers' link probe), `GET /readyz`, `GET /metrics`,
//! `GET /openapi.json`. Publishing is an admin call (`/admin/publish`, admin listener).
//!
//! Who may call (see [`crate::tower_auth`]): the catalog, chunk and forward routes need a
//! known tower — `x-sovereign-tower: N` and that tower's credential as a bearer token —
//! checked before anything else is read (401 missing or unknown, 403 another tower's,
//! counted in `sovereign_tower_auth_refusals_total`); a request whose
//! `x-sovereign-expect-origin` names another origin gets 412 and no effect. Every answer
//! of this listener carries the origin's id in `x-sovereign-origin`; the catalog repeats
//! it as `origin`. The probe, readiness, metrics and document routes stay open.
//!
//! Map: [`OriginApi`], [`routes`] (documented: `#[utoipa::path]` on each handler),
//! [`router`]; the bodies [`OriginCatalog`], [`ForwardRequest`], [`ForwardReply`],
//! [`Ready`].

use super::common::{
    ApiError, FORWARD_BODY_MAX, NotReady, PathParam, PublicApi, QueryParams, public_router,
    public_routes, read_body,
};
use crate::metrics::OriginMetrics;
use crate::openapi::{
    BadRequest, ChunkPath, NotFound, PayloadTooLarge, TowerCall, TowerRefusals, Unavailable,
};
use crate::origin_node::OriginHandle;
use crate::tower_auth::{EXPECT_ORIGIN_HEADER, ORIGIN_HEADER, TowerCredentials};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sovereign_logic::content::ChunkHash;
use sovereign_logic::protocol::{Message, OriginId, SentEntry, TowerId};
use sovereign_wire::{CatalogChangesDto, CatalogEntryDto, OpReceiptDto, OperationDto};
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Everything the origin API's handlers share.
pub struct OriginApi {
    /// The node task.
    pub node: OriginHandle,
    /// The origin's metrics.
    pub metrics: Arc<OriginMetrics>,
    /// The OpenAPI document, serialized (`crate::openapi::origin_openapi`).
    pub openapi: Bytes,
    /// The towers' credentials.
    pub credentials: TowerCredentials,
    /// This origin's identity, announced on every answer.
    pub identity: OriginId,
}

/// The origin's public routes, each with its description.
pub fn routes() -> OpenApiRouter<Arc<OriginApi>> {
    public_routes(
        OpenApiRouter::new()
            .routes(routes!(catalog))
            .routes(routes!(chunk))
            .routes(routes!(forward))
            .routes(routes!(readyz)),
    )
}

/// The origin's public router.
pub fn router(api: Arc<OriginApi>) -> Router {
    let id = HeaderValue::from_str(&api.identity.to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    public_router(routes(), api)
        // Outermost: every answer says who answered, errors and 404s included, so that a
        // tower notices another origin whatever it asked.
        .layer(axum::middleware::map_response(move |mut resp: Response| {
            let id = id.clone();
            async move {
                resp.headers_mut().insert(ORIGIN_HEADER, id);
                resp
            }
        }))
}

impl OriginApi {
    /// The calling tower, authenticated, and the request meant for this origin; or the
    /// refusal (counted).
    fn tower_of(&self, headers: &HeaderMap) -> Result<TowerId, ApiError> {
        let tower = self.credentials.authenticate(headers).map_err(|e| {
            self.metrics.tower_refused(e.reason());
            if matches!(e, crate::tower_auth::TowerAuthError::WrongTower { .. }) {
                tracing::warn!(error = %e, "tower credential presented for another tower");
            }
            ApiError::from(e)
        })?;
        if let Some(v) = headers.get(EXPECT_ORIGIN_HEADER) {
            let expected = v.to_str().ok().and_then(|s| s.parse::<OriginId>().ok());
            if expected != Some(self.identity) {
                self.metrics.tower_refused("other_origin");
                return Err(ApiError::new(
                    StatusCode::PRECONDITION_FAILED,
                    format!(
                        "{tower} expects origin {}; this is origin {}: nothing was done",
                        v.to_str().unwrap_or("(not ASCII)"),
                        self.identity
                    ),
                )
                .field(EXPECT_ORIGIN_HEADER));
            }
        }
        Ok(tower)
    }
}

/// The logic refused the tower (it is no longer known: revoked meanwhile).
fn refused(reason: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, reason)
}

/// Catalog entries published after `since`, and this origin's id.
#[derive(serde::Serialize, ToSchema)]
pub struct OriginCatalog {
    /// Entries with seq > since sent whole, in seq order.
    pub entries: Vec<CatalogEntryDto>,
    /// Entries with seq > since sent as the changes from the version the tower holds
    /// (only when asked with `changes=true`), in seq order. Together with `entries`: the
    /// latest version of every item published after `since`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<CatalogChangesDto>,
    /// This origin's id (also in the `x-sovereign-origin` header of every answer).
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub origin: Option<String>,
    /// `true`: the page was cut (at 1024 entries or 262,144 chunk references, a whole
    /// entry at a time) and more entries follow; ask again with `since` set to the last
    /// seq here.
    pub more: bool,
}

/// Catalog entries published after `since`.
///
/// Only known towers: `x-sovereign-tower` and that tower's credential as a bearer token,
/// checked before anything else. Every answer carries this origin's id in
/// `x-sovereign-origin`.
#[utoipa::path(get, path = "/v1/catalog", tag = "content", security(("towerBearer" = [])),
  params(TowerCall, ("since" = Option<u64>, Query, description = "Only entries with seq > since (default 0)."),
    ("changes" = Option<bool>, Query, description = "`true`: an entry whose item's previous version has a seq at most `since` may come as the changes from it (`changes` in the answer); default `false`: every entry whole.")),
  responses(TowerRefusals,
    (status = 200, description = "Entries in seq order.", body = OriginCatalog),
    (status = 400, response = BadRequest), (status = 503, response = Unavailable)))]
async fn catalog(
    State(api): State<Arc<OriginApi>>,
    q: QueryParams,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tower = api.tower_of(&headers)?;
    q.only(&["since", "changes"])?;
    let since = match q.0.get("since") {
        None => 0u64,
        Some(v) => v.parse().map_err(|_| {
            ApiError::bad_field(
                "since",
                format!("expected a publish seq (an unsigned integer), found {v:?}"),
            )
        })?,
    };
    let changes = match q.0.get("changes").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(ApiError::bad_field(
                "changes",
                format!("expected true or false, found {v:?}"),
            ));
        }
    };
    api.metrics.catalog_request();
    let msg = Message::CatalogRequest {
        since_seq: since,
        changes,
    };
    match api.node.message(tower, msg).await? {
        Some(Message::CatalogReply {
            entries,
            origin,
            more,
        }) => {
            let (mut whole, mut changed) = (Vec::new(), Vec::new());
            for e in &entries {
                match e {
                    SentEntry::Whole(e) => whole.push(CatalogEntryDto::from(e)),
                    SentEntry::Changes { seq, changes } => {
                        changed.push(CatalogChangesDto::new(*seq, changes))
                    }
                }
            }
            api.metrics.catalog_sent(whole.len(), changed.len());
            let page = OriginCatalog {
                entries: whole,
                changes: changed,
                origin: origin.map(|o| o.to_string()),
                more,
            };
            let json = serde_json::to_vec(&page)
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            let mut resp = encoded(&headers, json.into());
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(resp)
        }
        Some(Message::Refused { reason }) => Err(refused(reason)),
        _ => Err(ApiError::unavailable("the origin is restarting", 5)),
    }
}

/// A chunk's bytes by SHA-256 (content-addressed, immutable).
///
/// Only known towers, as for the catalog.
#[utoipa::path(get, path = "/v1/chunks/{sha256}", tag = "content", security(("towerBearer" = [])),
  params(TowerCall, ChunkPath),
  responses(TowerRefusals,
    (status = 200, description = "The chunk; its SHA-256 is the path's (of the decoded bytes when zstd-encoded).", body = String, content_type = "application/octet-stream",
        headers(("ETag" = String), ("Content-Encoding" = String, description = "`zstd` when the request's Accept-Encoding lists it and compression saves at least an eighth."), ("Vary" = String), ("Cache-Control" = String, description = "`public, max-age=31536000, immutable`."))),
    (status = 400, response = BadRequest), (status = 404, response = NotFound), (status = 503, response = Unavailable)))]
async fn chunk(
    State(api): State<Arc<OriginApi>>,
    PathParam(raw): PathParam,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tower = api.tower_of(&headers)?;
    let hash: ChunkHash = raw.parse().map_err(|_| {
        ApiError::bad_field(
            "sha256",
            format!(
                "expected 64 hex digits (a SHA-256), found {:?}",
                raw.chars().take(80).collect::<String>()
            ),
        )
    })?;
    let reply = api
        .node
        .message(tower, Message::ChunkRequest { hash })
        .await?;
    match reply {
        Some(Message::ChunkReply {
            bytes: Some(bytes), ..
        }) => {
            api.metrics.chunk_served(bytes.len() as u64);
            let mut resp = encoded(&headers, bytes);
            // A strong validator per representation (RFC 9110 §8.8.3.3).
            let etag = match resp.headers().contains_key(header::CONTENT_ENCODING) {
                true => format!("\"{hash}-zstd\""),
                false => format!("\"{hash}\""),
            };
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            if let Ok(v) = HeaderValue::from_str(&etag) {
                h.insert(header::ETAG, v);
            }
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
            Ok(resp)
        }
        Some(Message::ChunkReply { bytes: None, .. }) => {
            api.metrics.chunk_missing();
            Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("the origin holds no chunk {hash}"),
            ))
        }
        Some(Message::Refused { reason }) => Err(refused(reason)),
        _ => Err(ApiError::unavailable(
            "the origin could not read the chunk now (restarting, or its storage failed a read)",
            5,
        )),
    }
}

/// `bytes` as the response body, zstd-encoded when the request accepts it and that saves
/// bytes (see [`crate::encoding`]); `Vary: Accept-Encoding` either way.
fn encoded(request: &HeaderMap, bytes: Bytes) -> Response {
    let packed = match crate::encoding::accepts_zstd(request) {
        true => crate::encoding::encode(&bytes),
        false => None,
    };
    let mut resp = match packed {
        Some(p) => {
            let mut r = Response::new(Body::from(p));
            r.headers_mut().insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_static(crate::encoding::ZSTD),
            );
            r
        }
        None => Response::new(Body::from(bytes)),
    };
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    resp
}

/// A batch of operations forwarded by a tower.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardRequest {
    /// The operations, in the tower's order.
    pub ops: Vec<OperationDto>,
}

/// The origin's answers to a forwarded batch.
#[derive(serde::Serialize, ToSchema)]
pub struct ForwardReply {
    /// One receipt per durable operation (applied or recorded), same order as the request;
    /// an operation without a receipt is to be forwarded again.
    pub receipts: Vec<OpReceiptDto>,
}

/// Apply a batch of operations forwarded by a tower (idempotent per key); the origin
/// records which tower forwarded each.
///
/// Only known towers, as for the catalog. Answered once the outcomes are durable.
#[utoipa::path(post, path = "/v1/forward", tag = "operations", security(("towerBearer" = [])),
  params(TowerCall), request_body = ForwardRequest,
  responses(TowerRefusals,
    (status = 200, description = "Receipts for the durable operations.", body = ForwardReply),
    (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge), (status = 503, response = Unavailable)))]
async fn forward(
    State(api): State<Arc<OriginApi>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let tower = api.tower_of(&headers)?;
    let bytes = read_body(body, FORWARD_BODY_MAX).await?;
    let batch: ForwardRequest = sovereign_wire::from_json(&bytes)
        .map_err(|e| ApiError::from_wire("forward batch", "", &e))?;
    let mut ops = Vec::with_capacity(batch.ops.len());
    for (i, dto) in batch.ops.iter().enumerate() {
        ops.push(
            dto.to_operation()
                .map_err(|e| ApiError::from_wire("forward batch", &format!("ops[{i}]"), &e))?,
        );
    }
    api.metrics.forward_batch(ops.len());
    let reply = api.node.message(tower, Message::ForwardOps { ops }).await?;
    match reply {
        Some(Message::ForwardReply { receipts }) => {
            let receipts: Vec<OpReceiptDto> = receipts.iter().map(OpReceiptDto::from).collect();
            Ok(axum::Json(ForwardReply { receipts }).into_response())
        }
        Some(Message::Refused { reason }) => Err(refused(reason)),
        _ => Err(ApiError::unavailable(
            "the batch is not durable (storage failed; the origin restarted); retry",
            5,
        )),
    }
}

/// A ready origin's readiness.
#[derive(serde::Serialize, ToSchema)]
pub struct Ready {
    /// Always `true`.
    pub ready: bool,
    /// Items in the catalog.
    pub items: usize,
    /// Free bytes on the data directory's file system (null: not watched).
    pub storage_free_bytes: Option<u64>,
    /// This origin's id.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub origin: String,
    /// Towers holding a credential.
    pub towers: usize,
}

/// Readiness: the origin recovered its durable state and serves.
///
/// 503 while recovering from a storage failure, or while degraded.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, description = "Ready.", body = Ready),
    (status = 503, description = "Not ready; `Retry-After` says when to look again.", body = NotReady,
        headers(("Retry-After" = u32, description = "Seconds to wait before retrying.")))))]
async fn readyz(State(api): State<Arc<OriginApi>>) -> Result<Response, ApiError> {
    let (failed, items) = api
        .node
        .query(|o, _| (o.is_failed(), o.catalog_len()))
        .await?;
    if failed {
        return Err(ApiError::unavailable("storage failed; recovering", 5));
    }
    let degraded = api.metrics.storage().reasons();
    if !degraded.is_empty() {
        return Ok(super::common::not_ready(degraded));
    }
    Ok(axum::Json(Ready {
        ready: true,
        items,
        storage_free_bytes: api.metrics.storage().free_bytes(),
        origin: api.identity.to_string(),
        towers: api.credentials.towers().len(),
    })
    .into_response())
}

impl PublicApi for OriginApi {
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
    use super::*;
    use sovereign_logic::content::{ChunkRef, ItemId, Manifest, Priority};
    use sovereign_logic::origin::{
        CATALOG_REPLY_ENTRIES_MAX, CATALOG_REPLY_REFS_MAX, ITEM_CHUNKS_MAX,
    };
    use sovereign_logic::protocol::CatalogEntry;

    #[test]
    fn the_largest_catalog_page_fits_what_a_tower_reads_in_one_answer() {
        // Goal: the origin's page limits and the tower's answer limit agree. A page whose
        // JSON a tower cannot read is asked for again for ever: a new tower synced nothing
        // (found with 32 items of 256 MiB, ~75 MB of JSON). Largest page: the references
        // at their widest (a length of u32::MAX) and every entry with the longest id the
        // admin API takes (256 characters, each a 4-byte character), on top.
        let widest = |refs: usize, item: ItemId| {
            let chunks = vec![
                ChunkRef {
                    hash: ChunkHash::of(b"x"),
                    len: u32::MAX,
                };
                refs
            ];
            let manifest = Manifest {
                item,
                version: u64::MAX,
                priority: Priority::P3,
                size: u64::MAX,
                digest: ChunkHash::of(b"y"),
                chunks,
            };
            let dto = CatalogEntryDto::from(&CatalogEntry {
                seq: u64::MAX,
                manifest,
            });
            serde_json::to_vec(&dto).unwrap().len() + 1
        };
        let long_id = ItemId::new("\u{10348}".repeat(256));
        let per_ref = widest(2, ItemId::new("i")) - widest(1, ItemId::new("i"));
        let per_entry = widest(0, long_id);
        let page = CATALOG_REPLY_REFS_MAX * per_ref + CATALOG_REPLY_ENTRIES_MAX * per_entry + 4096;
        assert!(
            page < crate::transport::RESPONSE_BYTES_MAX,
            "{page} bytes of JSON at most, {} readable",
            crate::transport::RESPONSE_BYTES_MAX
        );
        // And the limit is not slack by orders of magnitude: a quarter of what fits.
        assert!(page > crate::transport::RESPONSE_BYTES_MAX / 4, "{page}");
        // An entry is never split: the largest version the origin takes goes alone.
        let lone = ITEM_CHUNKS_MAX * per_ref + per_entry + 4096;
        assert!(
            lone < crate::transport::RESPONSE_BYTES_MAX,
            "{lone} bytes of JSON for a lone entry of {ITEM_CHUNKS_MAX} chunks"
        );
    }
}
