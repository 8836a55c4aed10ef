//! The origin's public API, which towers call over their uplinks: the catalog since a
//! publish seq, chunks by hash, and forward batches of device operations (answered only
//! once their outcomes are durable). Health, readiness, metrics and the OpenAPI document.
//!
//! Routes: `GET /v1/catalog?since=N`, `GET /v1/chunks/{sha256}`, `POST /v1/forward`,
//! `GET /healthz` (the towers' link probe), `GET /readyz`, `GET /metrics`,
//! `GET /openapi.json`. Publishing is an admin call (`/admin/publish`, admin listener).
//!
//! Map: [`OriginApi`], [`router`].

use super::common::{
    ApiError, FORWARD_BODY_MAX, PathParam, PublicApi, QueryParams, public_router, read_body,
};
use crate::metrics::OriginMetrics;
use crate::origin_node::OriginHandle;
use crate::tower_node::TOWER_HEADER;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sovereign_logic::content::ChunkHash;
use sovereign_logic::protocol::{Message, TowerId};
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
}

/// The origin's public router.
pub fn router(api: Arc<OriginApi>) -> Router {
    public_router(
        Router::new()
            .route("/v1/catalog", get(catalog))
            .route("/v1/chunks/{sha256}", get(chunk))
            .route("/v1/forward", post(forward))
            .route("/readyz", get(readyz)),
        api,
    )
}

fn tower_of(headers: &HeaderMap) -> Result<TowerId, ApiError> {
    match headers.get(TOWER_HEADER) {
        None => Ok(TowerId(0)),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .map(TowerId)
            .ok_or_else(|| {
                ApiError::bad_field(TOWER_HEADER, "expected the tower's number (0..=4294967295)")
            }),
    }
}

async fn catalog(
    State(api): State<Arc<OriginApi>>,
    q: QueryParams,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tower = tower_of(&headers)?;
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
        Some(Message::CatalogReply { entries }) => {
            let entries: Vec<CatalogEntryDto> = entries.iter().map(CatalogEntryDto::from).collect();
            Ok(axum::Json(serde_json::json!({ "entries": entries })).into_response())
        }
        _ => Err(ApiError::unavailable("the origin is restarting", 5)),
    }
}

async fn chunk(
    State(api): State<Arc<OriginApi>>,
    PathParam(raw): PathParam,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tower = tower_of(&headers)?;
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
    let tower = tower_of(&headers)?;
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
