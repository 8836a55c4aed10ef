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
//! Map: [`OriginApi`], [`router`].

use super::common::{
    ApiError, FORWARD_BODY_MAX, PathParam, PublicApi, QueryParams, public_router, read_body,
};
use crate::metrics::OriginMetrics;
use crate::origin_node::OriginHandle;
use crate::tower_auth::{EXPECT_ORIGIN_HEADER, ORIGIN_HEADER, TowerCredentials};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sovereign_logic::content::ChunkHash;
use sovereign_logic::protocol::{Message, OriginId, TowerId};
use sovereign_wire::{CatalogEntryDto, OpReceiptDto, OperationDto};
use std::sync::Arc;

/// Everything the origin API's handlers share.
pub struct OriginApi {
    /// The node task.
    pub node: OriginHandle,
    /// The origin's metrics.
    pub metrics: Arc<OriginMetrics>,
    /// The OpenAPI document.
    pub openapi: Arc<serde_json::Value>,
    /// The towers' credentials.
    pub credentials: TowerCredentials,
    /// This origin's identity, announced on every answer.
    pub identity: OriginId,
}

/// The origin's public router.
pub fn router(api: Arc<OriginApi>) -> Router {
    let id = HeaderValue::from_str(&api.identity.to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    public_router(
        Router::new()
            .route("/v1/catalog", get(catalog))
            .route("/v1/chunks/{sha256}", get(chunk))
            .route("/v1/forward", post(forward))
            .route("/readyz", get(readyz)),
        api,
    )
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

async fn catalog(
    State(api): State<Arc<OriginApi>>,
    q: QueryParams,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tower = api.tower_of(&headers)?;
    q.only(&["since"])?;
    let since = match q.0.get("since") {
        None => 0u64,
        Some(v) => v.parse().map_err(|_| {
            ApiError::bad_field(
                "since",
                format!("expected a publish seq (an unsigned integer), found {v:?}"),
            )
        })?,
    };
    api.metrics.catalog_request();
    let reply = api
        .node
        .message(tower, Message::CatalogRequest { since_seq: since })
        .await?;
    match reply {
        Some(Message::CatalogReply { entries, origin }) => {
            let entries: Vec<CatalogEntryDto> = entries.iter().map(CatalogEntryDto::from).collect();
            let origin = origin.map(|o| o.to_string());
            Ok(
                axum::Json(serde_json::json!({ "entries": entries, "origin": origin }))
                    .into_response(),
            )
        }
        Some(Message::Refused { reason }) => Err(refused(reason)),
        _ => Err(ApiError::unavailable("the origin is restarting", 5)),
    }
}

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
            let mut resp = Response::new(Body::from(bytes));
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("\"{hash}\"")) {
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
        _ => Err(ApiError::unavailable("the origin is restarting", 5)),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    ops: Vec<OperationDto>,
}

async fn forward(
    State(api): State<Arc<OriginApi>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let tower = api.tower_of(&headers)?;
    let bytes = read_body(body, FORWARD_BODY_MAX).await?;
    let batch: Batch = sovereign_wire::from_json(&bytes)
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
            Ok(axum::Json(serde_json::json!({ "receipts": receipts })).into_response())
        }
        Some(Message::Refused { reason }) => Err(refused(reason)),
        _ => Err(ApiError::unavailable(
            "the batch is not durable (storage failed; the origin restarted); retry",
            5,
        )),
    }
}

async fn readyz(State(api): State<Arc<OriginApi>>) -> Result<Response, ApiError> {
    let (failed, items) = api
        .node
        .query(|o, _| (o.is_failed(), o.catalog().len()))
        .await?;
    if failed {
        return Err(ApiError::unavailable("storage failed; recovering", 5));
    }
    let degraded = api.metrics.storage().reasons();
    if !degraded.is_empty() {
        return Ok(super::common::not_ready(degraded));
    }
    Ok(axum::Json(serde_json::json!({
        "ready": true,
        "items": items,
        "storage_free_bytes": api.metrics.storage().free_bytes(),
        "origin": api.identity.to_string(),
        "towers": api.credentials.towers().len(),
    }))
    .into_response())
}

impl PublicApi for OriginApi {
    fn http_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.metrics.http_request(route, method, status, seconds);
    }

    fn render_metrics(&self) -> String {
        self.metrics.render()
    }

    fn openapi(&self) -> &serde_json::Value {
        &self.openapi
    }
}
