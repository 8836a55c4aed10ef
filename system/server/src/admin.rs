//! The admin APIs (served on their own listener, never on the device API): status, links,
//! power, the audit log, and the fault-injection hooks the chaos tooling uses. Every call
//! needs a bearer token with a role ([`crate::auth`]); every change — each injected or
//! cleared fault, each publish, each power override — is appended to the audit log
//! before it is answered.
//!
//! `GET /admin/status` on both servers carries `degraded` (why the server is not ready:
//! storage failing, disk full or under its free-space minimum, a parked sync task; the
//! same reasons `/readyz` gives) and `storage_free_bytes`.
//!
//! Tower: `GET /admin/status`, `GET /admin/outbox`, `GET /admin/links`,
//! `GET /admin/power` (viewer); `POST /admin/power` (operator: hand the power manager a
//! reading); `POST /admin/rehome` (operator: re-read the credential file and adopt the
//! origin that answers next, see `sovereign_logic::tower::trust`); `GET /admin/faults`
//! (viewer), `POST /admin/faults`, `DELETE /admin/faults` (chaos); `GET /admin/audit?n=`
//! (viewer). Origin: the same status/faults/audit routes,
//! `POST /admin/publish?item=&priority=` (operator), `GET /admin/ledger` and
//! `GET /admin/ops/{key}` (viewer; with the tower that forwarded the operation),
//! `GET /admin/towers` (viewer), `POST /admin/towers/{tower}` (operator: issue a new
//! credential, shown once) and `DELETE /admin/towers/{tower}` (operator: revoke). Errors are JSON (`api::common::ApiError`), 404 for
//! an unknown path and 405 for a known one with another method included; the token is
//! checked before the query or path parameters.
//!
//! Map: [`AdminCtx`], [`FaultRequest`], [`tower_router`], [`origin_router`].

// Handlers return a finished `Response` as their error (401/403/4xx bodies); it is large,
// but it is the value axum sends, so boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

use crate::api::common::{
    ApiError, PathParam, QueryParams, method_not_allowed, not_found, read_body,
};
use crate::audit::{AuditEntry, AuditLog};
use crate::auth::{Caller, Role, Tokens, require};
use crate::metrics::OriginMetrics;
use crate::origin_node::{OriginHandle, PublishError};
use crate::storage::{StorageHealth, parked_reasons};
use crate::tower_auth::TowerCredentials;
use crate::tower_node::{RehomeError, TowerHandle};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sovereign_logic::content::{ItemId, Priority};
use sovereign_logic::ledger::Account;
use sovereign_logic::origin::ITEM_BYTES_MAX;
use sovereign_logic::protocol::TowerId;
use sovereign_store::Faults;
use sovereign_wire::{CatalogEntryDto, PowerReadingDto};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What every admin router needs.
#[derive(Clone)]
pub struct AdminCtx {
    /// Who may call.
    pub tokens: Tokens,
    /// Where changes are recorded.
    pub audit: Arc<AuditLog>,
    /// The store's fault switchboard.
    pub faults: Faults,
    /// Called after a fault is injected or cleared (drops caches of verified bytes).
    pub on_fault: Arc<dyn Fn() + Send + Sync>,
    /// The storage health (`degraded` in `/admin/status`).
    pub storage: Arc<StorageHealth>,
}

impl AdminCtx {
    fn caller(&self, role: Role, headers: &HeaderMap) -> Result<Caller, Response> {
        require(role, headers, &self.tokens).map_err(IntoResponse::into_response)
    }

    /// Append to the audit log; an audit failure refuses the change (500).
    fn record(&self, entry: AuditEntry) -> Result<(), Response> {
        crate::tower_node::blocking(|| self.audit.append(&entry))
            .map(|_| ())
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("audit log: {e}; the change was not made"),
                )
                .into_response()
            })
    }
}

/// A fault to inject into the node's store.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FaultRequest {
    /// The next `count` fsyncs fail (all of them while active if `count` is absent).
    FsyncFailure {
        /// how many
        count: Option<u32>,
    },
    /// Writes fail (I/O error).
    WriteError,
    /// Writes fail with "no space left on device".
    DiskFull,
    /// Fsync answers success without making anything durable (a lying disk cache).
    LyingFsync,
    /// Every storage operation takes `delay_ms` longer.
    SlowDisk {
        /// added latency per operation
        delay_ms: u64,
    },
    /// Flip a byte in `count` stored chunk files (bit rot).
    Corrupt {
        /// how many chunks
        count: Option<u32>,
    },
}

/// The body of `POST /admin/faults` as sent. It is decoded flat, then checked against its
/// kind, so that a bad value is reported with its field's name (decoding the tagged
/// [`FaultRequest`] directly loses the path of the value at fault).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultBody {
    kind: String,
    count: Option<u32>,
    delay_ms: Option<u64>,
}

impl FaultBody {
    fn request(self) -> Result<FaultRequest, ApiError> {
        let FaultBody {
            kind,
            count,
            delay_ms,
        } = self;
        let req = match kind.as_str() {
            "fsync-failure" => FaultRequest::FsyncFailure { count },
            "write-error" => FaultRequest::WriteError,
            "disk-full" => FaultRequest::DiskFull,
            "lying-fsync" => FaultRequest::LyingFsync,
            "slow-disk" => FaultRequest::SlowDisk {
                delay_ms: delay_ms.ok_or_else(|| {
                    ApiError::bad_field(
                        "delay_ms",
                        "fault kind slow-disk needs `delay_ms` (milliseconds, at most 60000)",
                    )
                })?,
            },
            "corrupt" => FaultRequest::Corrupt { count },
            other => {
                return Err(ApiError::bad_field(
                    "kind",
                    format!(
                        "unknown fault kind {other:?}; expected fsync-failure, write-error, disk-full, lying-fsync, slow-disk or corrupt"
                    ),
                ));
            }
        };
        let takes_count = matches!(
            req,
            FaultRequest::FsyncFailure { .. } | FaultRequest::Corrupt { .. }
        );
        let takes_delay = matches!(req, FaultRequest::SlowDisk { .. });
        for (field, given, takes) in [
            ("count", count.is_some(), takes_count),
            ("delay_ms", delay_ms.is_some(), takes_delay),
        ] {
            if given && !takes {
                return Err(ApiError::bad_field(
                    field,
                    format!("fault kind {kind:?} takes no `{field}`"),
                ));
            }
        }
        Ok(req)
    }
}

/// Apply `req`; the faults now active, or the field at fault and why.
fn apply_fault(
    faults: &Faults,
    req: &FaultRequest,
) -> Result<serde_json::Value, (&'static str, String)> {
    match req {
        FaultRequest::FsyncFailure { count: Some(n) } => faults.fail_fsyncs(*n),
        FaultRequest::FsyncFailure { count: None } => faults.fail_fsyncs_until_cleared(),
        FaultRequest::WriteError => faults.set_write_errors(true),
        FaultRequest::DiskFull => faults.set_disk_full(true),
        FaultRequest::LyingFsync => faults.set_lying_fsync(true),
        FaultRequest::SlowDisk { delay_ms } => {
            if *delay_ms > 60_000 {
                return Err(("delay_ms", format!("delay_ms {delay_ms} is above 60000")));
            }
            faults.set_delay(Some(Duration::from_millis(*delay_ms)))
        }
        FaultRequest::Corrupt { count } => {
            let n = count.unwrap_or(1);
            if n == 0 || n > 10_000 {
                return Err(("count", format!("count {n} is outside 1..=10000")));
            }
            faults.corrupt_chunks(n)
        }
    }
    Ok(serde_json::to_value(faults.snapshot()).unwrap_or_default())
}

fn json(v: impl serde::Serialize) -> Response {
    axum::Json(v).into_response()
}

/// Routes both servers share: faults and the audit log.
fn common_routes<S: Clone + Send + Sync + 'static>(ctx: AdminCtx) -> Router<S> {
    Router::new()
        .route(
            "/admin/faults",
            get({
                let ctx = ctx.clone();
                move |headers: HeaderMap| async move {
                    ctx.caller(Role::Viewer, &headers)?;
                    Ok::<_, Response>(json(ctx.faults.snapshot()))
                }
            })
            .post({
                let ctx = ctx.clone();
                move |headers: HeaderMap, body: Body| async move {
                    let caller = ctx.caller(Role::Chaos, &headers)?;
                    let bytes = read_body(body, 4096)
                        .await
                        .map_err(IntoResponse::into_response)?;
                    let req = sovereign_wire::from_json::<FaultBody>(&bytes)
                        .map_err(|e| ApiError::from_wire("fault", "", &e))
                        .and_then(FaultBody::request)
                        .map_err(IntoResponse::into_response)?;
                    let detail = serde_json::to_value(&req).unwrap_or_default();
                    match apply_fault(&ctx.faults, &req) {
                        Ok(state) => {
                            (ctx.on_fault)();
                            ctx.record(
                                AuditEntry::new(&caller, "fault.inject", "store")
                                    .detail(detail)
                                    .outcome("injected"),
                            )?;
                            tracing::warn!(?req, token = %caller.token_id, "fault injected");
                            Ok::<_, Response>((StatusCode::CREATED, json(state)).into_response())
                        }
                        Err((field, why)) => {
                            ctx.record(
                                AuditEntry::new(&caller, "fault.inject", "store")
                                    .detail(detail)
                                    .outcome(format!("refused: {why}")),
                            )?;
                            Err(ApiError::bad_field(field, why).into_response())
                        }
                    }
                }
            })
            .delete({
                let ctx = ctx.clone();
                move |headers: HeaderMap| async move {
                    let caller = ctx.caller(Role::Chaos, &headers)?;
                    ctx.faults.clear();
                    (ctx.on_fault)();
                    ctx.record(
                        AuditEntry::new(&caller, "fault.clear", "store").outcome("cleared"),
                    )?;
                    tracing::warn!(token = %caller.token_id, "faults cleared");
                    Ok::<_, Response>(json(ctx.faults.snapshot()))
                }
            }),
        )
        .route(
            "/admin/audit",
            get({
                let ctx = ctx.clone();
                move |headers: HeaderMap, q: Result<QueryParams, ApiError>| async move {
                    ctx.caller(Role::Viewer, &headers)?;
                    let q = q.map_err(IntoResponse::into_response)?;
                    q.only(&["n"]).map_err(IntoResponse::into_response)?;
                    let n = match q.0.get("n") {
                        None => 100,
                        Some(v) => v.parse::<usize>().map_err(|_| {
                            ApiError::bad_field("n", format!("expected a count, found {v:?}"))
                                .into_response()
                        })?,
                    };
                    let tail = ctx.audit.read_tail(n.min(10_000)).map_err(|e| {
                        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
                            .into_response()
                    })?;
                    Ok::<_, Response>(json(tail))
                }
            }),
        )
        .fallback(not_found)
}

/// The tower's admin router.
pub fn tower_router(ctx: AdminCtx, node: TowerHandle) -> Router {
    let status = {
        let (ctx, node) = (ctx.clone(), node.clone());
        move |headers: HeaderMap| async move {
            ctx.caller(Role::Viewer, &headers)?;
            let (mut s, parked) = node
                .query(|t, now| {
                    let s = t.status();
                    let v = serde_json::json!({
                        "tower": t.config().id.to_string(),
                        "uptime_s": now.as_secs_f64(),
                        "active_link": s.active_link.map(|l| l.name()),
                        "links_up": s.links_up.iter().map(|l| l.name()).collect::<Vec<_>>(),
                        "power_mode": s.power_mode.name(),
                        "items_servable": s.items_servable,
                        "items_pending": s.items_pending,
                        "chunks_held": s.chunks_held,
                        "queued": { "P0": s.queued[0], "P1": s.queued[1], "P2": s.queued[2], "P3": s.queued[3] },
                        "in_flight": s.in_flight,
                        "outbox": s.outbox,
                        "window": s.window,
                        "failovers": s.failovers,
                        "breaker_openings": s.breaker_openings,
                        "servable": t.servable().into_iter().map(|(i, v)| (i.0, v)).collect::<BTreeMap<_, _>>(),
                        "origin": origin_status(t),
                    });
                    (v, t.parked(now))
                })
                .await
                .map_err(|e| ApiError::from(e).into_response())?;
            let mut degraded = parked_reasons(&parked);
            degraded.extend(ctx.storage.reasons());
            s["degraded"] = serde_json::json!(degraded);
            s["storage_free_bytes"] = serde_json::json!(ctx.storage.free_bytes());
            Ok::<_, Response>(json(s))
        }
    };
    let links = {
        let (ctx, node) = (ctx.clone(), node.clone());
        move |headers: HeaderMap| async move {
            ctx.caller(Role::Viewer, &headers)?;
            let v = node
                .query(|t, _| {
                    let f = t.failover();
                    f.links()
                        .into_iter()
                        .map(|l| {
                            let h = f.health(l);
                            serde_json::json!({
                                "link": l.name(),
                                "active": f.active() == Some(l),
                                "healthy": h.is_some_and(|h| h.is_up()),
                                "rtt_ms": h.and_then(|h| h.rtt_ewma()).map(|d| d.as_secs_f64() * 1000.0),
                                "loss_pct": h.map(|h| h.loss_pct()),
                                "last_change_s": h.and_then(|h| h.last_change()).map(|t| t.as_secs_f64()),
                            })
                        })
                        .collect::<Vec<_>>()
                })
                .await
                .map_err(|e| ApiError::from(e).into_response())?;
            Ok::<_, Response>(json(serde_json::json!({ "links": v })))
        }
    };
    let power_get = {
        let (ctx, node) = (ctx.clone(), node.clone());
        move |headers: HeaderMap| async move {
            ctx.caller(Role::Viewer, &headers)?;
            let v = node
                .query(|t, _| {
                    serde_json::json!({
                        "mode": t.power_mode().name(),
                        "reading": t.power_reading().as_ref().map(PowerReadingDto::from),
                    })
                })
                .await
                .map_err(|e| ApiError::from(e).into_response())?;
            Ok::<_, Response>(json(v))
        }
    };
    let power_post = {
        let (ctx, node) = (ctx.clone(), node.clone());
        move |headers: HeaderMap, body: Body| async move {
            let caller = ctx.caller(Role::Operator, &headers)?;
            let bytes = read_body(body, 4096)
                .await
                .map_err(IntoResponse::into_response)?;
            let dto: PowerReadingDto = sovereign_wire::from_json(&bytes)
                .map_err(|e| ApiError::from_wire("power reading", "", &e).into_response())?;
            let reading = dto
                .to_reading()
                .map_err(|e| ApiError::from_wire("power reading", "", &e).into_response())?;
            ctx.record(
                AuditEntry::new(&caller, "power.reading", "power-manager")
                    .detail(serde_json::to_value(&dto).unwrap_or_default())
                    .outcome("delivered"),
            )?;
            node.power(reading);
            Ok::<_, Response>((StatusCode::ACCEPTED, json(dto)).into_response())
        }
    };
    let outbox = {
        let (ctx, node) = (ctx.clone(), node.clone());
        move |headers: HeaderMap| async move {
            ctx.caller(Role::Viewer, &headers)?;
            let keys = node
                .query(|t, _| {
                    t.outbox_acked()
                        .into_iter()
                        .map(|k| k.0)
                        .collect::<Vec<_>>()
                })
                .await
                .map_err(|e| ApiError::from(e).into_response())?;
            Ok::<_, Response>(json(
                serde_json::json!({ "count": keys.len(), "keys": keys }),
            ))
        }
    };
    let rehome = {
        let (ctx, node) = (ctx.clone(), node.clone());
        move |headers: HeaderMap| async move {
            let caller = ctx.caller(Role::Operator, &headers)?;
            let before = node
                .query(|t, _| origin_status(t))
                .await
                .map_err(|e| ApiError::from(e).into_response())?;
            match node.rehome().await {
                Ok(credential) => {
                    ctx.record(
                        AuditEntry::new(&caller, "origin.rehome", "origin")
                            .detail(
                                serde_json::json!({ "before": before, "credential": credential }),
                            )
                            .outcome("started"),
                    )?;
                    tracing::warn!(
                        token = %caller.token_id,
                        ?before,
                        "re-home ordered: the next origin to answer will be trusted once its catalog is reconciled"
                    );
                    Ok::<_, Response>(
                        (
                            StatusCode::ACCEPTED,
                            json(serde_json::json!({
                                "rehoming": true,
                                "before": before,
                                "credential": credential,
                            })),
                        )
                            .into_response(),
                    )
                }
                Err(e) => {
                    ctx.record(
                        AuditEntry::new(&caller, "origin.rehome", "origin")
                            .detail(serde_json::json!({ "before": before }))
                            .outcome(format!("refused: {e}")),
                    )?;
                    let status = match e {
                        RehomeError::Credential(_) => StatusCode::UNPROCESSABLE_ENTITY,
                        RehomeError::Gone(_) => StatusCode::SERVICE_UNAVAILABLE,
                    };
                    Err(ApiError::new(status, e.to_string())
                        .field("credential")
                        .into_response())
                }
            }
        }
    };
    Router::new()
        .route("/admin/status", get(status))
        .route("/admin/rehome", axum::routing::post(rehome))
        .route("/admin/outbox", get(outbox))
        .route("/admin/links", get(links))
        .route("/admin/power", get(power_get).post(power_post))
        .merge(common_routes(ctx))
        .method_not_allowed_fallback(method_not_allowed)
}

/// The tower's relation to its origin, for the status and the audit trail.
fn origin_status(t: &sovereign_logic::tower::Tower) -> serde_json::Value {
    serde_json::json!({
        "trusted": t.trusted_origin().map(|o| o.to_string()),
        "mismatch": t.origin_mismatch().map(|(expected, found)| serde_json::json!({
            "expected": expected.to_string(),
            "found": found.map(|f| f.to_string()),
        })),
        "rehoming": t.rehoming(),
    })
}

/// The towers the origin's logic answers, from the credential table.
pub fn known_towers(credentials: &TowerCredentials) -> Option<std::collections::BTreeSet<TowerId>> {
    (!credentials.allows_unauthenticated()).then(|| credentials.towers())
}

fn tower_param(p: Result<PathParam, ApiError>) -> Result<TowerId, Response> {
    let PathParam(raw) = p.map_err(IntoResponse::into_response)?;
    raw.parse::<u32>().map(TowerId).map_err(|_| {
        ApiError::bad_field(
            "tower",
            format!(
                "expected a tower number (0..=4294967295), found {:?}",
                raw.chars().take(40).collect::<String>()
            ),
        )
        .into_response()
    })
}

/// The origin's admin router.
pub fn origin_router(
    ctx: AdminCtx,
    node: OriginHandle,
    metrics: Arc<OriginMetrics>,
    credentials: TowerCredentials,
) -> Router {
    let publish = {
        let (ctx, node, metrics) = (ctx.clone(), node.clone(), metrics.clone());
        move |headers: HeaderMap, q: Result<QueryParams, ApiError>, body: Body| async move {
            // Authenticate first: an unauthenticated caller learns nothing about the rest.
            let caller = ctx.caller(Role::Operator, &headers)?;
            let q = q.map_err(IntoResponse::into_response)?;
            q.only(&["item", "priority"])
                .map_err(IntoResponse::into_response)?;
            let q = q.0;
            let item = q
                .get("item")
                .filter(|s| !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control))
                .ok_or_else(|| {
                    ApiError::bad_field("item", "missing or invalid `item` (1..=256 characters)")
                        .into_response()
                })?
                .clone();
            let priority: Priority = q
                .get("priority")
                .ok_or_else(|| {
                    ApiError::bad_field("priority", "missing `priority` (P0..P3)").into_response()
                })?
                .parse()
                .map_err(|e: sovereign_logic::content::ParsePriorityError| {
                    ApiError::bad_field("priority", e.to_string()).into_response()
                })?;
            let bytes = read_body(body, ITEM_BYTES_MAX)
                .await
                .map_err(IntoResponse::into_response)?;
            let size = bytes.len();
            let r = node
                .publish(ItemId::new(item.clone()), priority, bytes)
                .await;
            let detail = serde_json::json!({ "item": item, "priority": priority.to_string(), "bytes": size });
            match r {
                Ok(entry) => {
                    metrics.published(priority, size as u64);
                    ctx.record(
                        AuditEntry::new(&caller, "publish", item.clone())
                            .detail(detail)
                            .outcome(format!("version {}", entry.manifest.version)),
                    )?;
                    Ok::<_, Response>(
                        (StatusCode::CREATED, json(CatalogEntryDto::from(&entry))).into_response(),
                    )
                }
                Err(e) => {
                    ctx.record(
                        AuditEntry::new(&caller, "publish", item.clone())
                            .detail(detail)
                            .outcome(format!("failed: {e}")),
                    )?;
                    let status = match e {
                        PublishError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
                        PublishError::Storage(_) | PublishError::Gone(_) => {
                            StatusCode::SERVICE_UNAVAILABLE
                        }
                    };
                    Err(ApiError::new(status, e.to_string()).into_response())
                }
            }
        }
    };
    let ledger = {
        let (ctx, node) = (ctx.clone(), node.clone());
        move |headers: HeaderMap| async move {
            ctx.caller(Role::Viewer, &headers)?;
            let v = node
                .query(|o, _| {
                    let l = o.ledger();
                    let mut communities = BTreeMap::new();
                    let mut nations = BTreeMap::new();
                    let mut reserve = 0u64;
                    for (acct, bal) in l.balances() {
                        match acct {
                            Account::Community(c) => {
                                communities.insert(c.clone(), *bal);
                            }
                            Account::Nation(n) => {
                                nations.insert(n.clone(), *bal);
                            }
                            Account::Reserve => reserve = *bal,
                        }
                    }
                    serde_json::json!({
                        "contributed_minor": l.contributed_minor().to_string(),
                        "held_minor": l.held_minor().to_string(),
                        "conserved": l.check_conserved().is_ok(),
                        "communities": communities,
                        "nations": nations,
                        "reserve": reserve,
                        "applied": o.applied_count(),
                    })
                })
                .await
                .map_err(|e| ApiError::from(e).into_response())?;
            Ok::<_, Response>(json(v))
        }
    };
    let status = {
        let (ctx, node, credentials) = (ctx.clone(), node.clone(), credentials.clone());
        move |headers: HeaderMap| async move {
            ctx.caller(Role::Viewer, &headers)?;
            let towers = credentials.towers().len();
            let unauthenticated = credentials.allows_unauthenticated();
            let mut v = node
                .query(move |o, now| {
                    serde_json::json!({
                        "uptime_s": now.as_secs_f64(),
                        "failed": o.is_failed(),
                        "items": o.catalog().len(),
                        "applied": o.applied_count(),
                        "pending_fsyncs": o.pending_fsyncs(),
                        "origin": o.identity().map(|i| i.to_string()),
                        "towers_credentialed": towers,
                        "allow_unauthenticated_towers": unauthenticated,
                    })
                })
                .await
                .map_err(|e| ApiError::from(e).into_response())?;
            let mut degraded = Vec::new();
            if v["failed"] == true {
                degraded.push("origin failed: rebuilding from its durable state".to_string());
            }
            degraded.extend(ctx.storage.reasons());
            v["degraded"] = serde_json::json!(degraded);
            v["storage_free_bytes"] = serde_json::json!(ctx.storage.free_bytes());
            Ok::<_, Response>(json(v))
        }
    };
    let op = {
        let (ctx, node) = (ctx.clone(), node.clone());
        move |headers: HeaderMap, key: Result<PathParam, ApiError>| async move {
            ctx.caller(Role::Viewer, &headers)?;
            let PathParam(key) = key.map_err(IntoResponse::into_response)?;
            let k = sovereign_wire::idem_key("key", &key)
                .map_err(|e| ApiError::bad_field("key", e.to_string()).into_response())?;
            let outcome = node
                .query(move |o, _| o.applied(&k).cloned().map(|a| (a, o.forwarded_by(&k))))
                .await
                .map_err(|e| ApiError::from(e).into_response())?;
            match outcome {
                Some((o, tower)) => Ok::<_, Response>(json(serde_json::json!({
                    "key": key,
                    "outcome": sovereign_wire::OpOutcomeDto::from(&o),
                    "tower": tower.map(|t| t.0),
                }))),
                None => Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("no operation {key:?} was applied"),
                )
                .into_response()),
            }
        }
    };
    let towers_list = {
        let (ctx, credentials) = (ctx.clone(), credentials.clone());
        move |headers: HeaderMap| async move {
            ctx.caller(Role::Viewer, &headers)?;
            Ok::<_, Response>(json(serde_json::json!({
                "towers": credentials.list(),
                "allow_unauthenticated": credentials.allows_unauthenticated(),
            })))
        }
    };
    let sync = {
        let (node, credentials, metrics) = (node.clone(), credentials.clone(), metrics.clone());
        move || {
            let (node, credentials, metrics) = (node.clone(), credentials.clone(), metrics.clone());
            async move {
                metrics.set_towers(
                    credentials.towers().len(),
                    credentials.allows_unauthenticated(),
                );
                node.set_towers(known_towers(&credentials)).await
            }
        }
    };
    let tower_issue = {
        let (ctx, credentials, sync) = (ctx.clone(), credentials.clone(), sync.clone());
        move |headers: HeaderMap, p: Result<PathParam, ApiError>| async move {
            let caller = ctx.caller(Role::Operator, &headers)?;
            let tower = tower_param(p)?;
            let issued = crate::tower_node::blocking(|| credentials.issue(tower)).map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
            })?;
            let audit = ctx.record(
                AuditEntry::new(&caller, "tower.credential.issue", tower.to_string())
                    .detail(serde_json::json!({
                        "credential_id": issued.credential_id,
                        "replaced": issued.replaced,
                    }))
                    .outcome("issued"),
            );
            if let Err(refusal) = audit {
                // Unaudited, so not made: the new credential must not work.
                let _ = crate::tower_node::blocking(|| credentials.revoke(tower));
                let _ = sync().await;
                return Err(refusal);
            }
            sync()
                .await
                .map_err(|e| ApiError::from(e).into_response())?;
            tracing::warn!(%tower, credential_id = %issued.credential_id, replaced = issued.replaced, token = %caller.token_id, "tower credential issued");
            Ok::<_, Response>(
                (
                    StatusCode::CREATED,
                    json(serde_json::json!({
                        "tower": tower.0,
                        "credential": issued.credential,
                        "credential_id": issued.credential_id,
                        "replaced": issued.replaced,
                    })),
                )
                    .into_response(),
            )
        }
    };
    let tower_revoke = {
        let (ctx, credentials, sync) = (ctx.clone(), credentials.clone(), sync.clone());
        move |headers: HeaderMap, p: Result<PathParam, ApiError>| async move {
            let caller = ctx.caller(Role::Operator, &headers)?;
            let tower = tower_param(p)?;
            let revoked =
                crate::tower_node::blocking(|| credentials.revoke(tower)).map_err(|e| {
                    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
                })?;
            sync()
                .await
                .map_err(|e| ApiError::from(e).into_response())?;
            ctx.record(
                AuditEntry::new(&caller, "tower.credential.revoke", tower.to_string())
                    .outcome(if revoked { "revoked" } else { "no credential" }),
            )?;
            if !revoked {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("{tower} holds no credential"),
                )
                .into_response());
            }
            tracing::warn!(%tower, token = %caller.token_id, "tower credential revoked");
            Ok::<_, Response>(json(
                serde_json::json!({ "tower": tower.0, "revoked": true }),
            ))
        }
    };
    Router::new()
        .route("/admin/status", get(status))
        .route("/admin/towers", get(towers_list))
        .route(
            "/admin/towers/{tower}",
            axum::routing::post(tower_issue).delete(tower_revoke),
        )
        .route("/admin/ops/{key}", get(op))
        .route("/admin/publish", axum::routing::post(publish))
        .route("/admin/ledger", get(ledger))
        .merge(common_routes(ctx))
        .method_not_allowed_fallback(method_not_allowed)
}
