//! The admin APIs (served on their own listener, never on the device API): status, links,
//! power, the audit log, and the fault-injection hooks the chaos tooling uses. Every call
//! needs a bearer token with a role ([`crate::auth`]); every change — each injected or
//! cleared fault, each publish, each power override — is appended to the audit log
//! before it is answered.
//!
//! `GET /admin/status` on both servers carries `degraded` (why the server is not ready:
//! storage failing, disk full or under its free-space minimum, a parked sync task; the
//! same reasons `/readyz` gives), `storage_free_bytes` and `storage_errors_total`.
//!
//! Tower: `GET /admin/status`, `GET /admin/outbox`, `GET /admin/links`,
//! `GET /admin/power` (viewer); `POST /admin/power` (operator: hand the power manager a
//! reading); `POST /admin/rehome` (operator: re-read the credential file and adopt the
//! origin that answers next, see `sovereign_logic::tower::trust`); `GET /admin/faults`
//! (viewer), `POST /admin/faults`, `DELETE /admin/faults` (chaos); `GET /admin/audit?n=`
//! (viewer); `GET /admin/events` (viewer: the logic's events as server-sent events,
//! `crate::events`). Origin: the same status/faults/audit/events routes,
//! `POST /admin/publish?item=&priority=` (operator), `GET /admin/ledger` and
//! `GET /admin/ops/{key}` (viewer; with the tower that forwarded the operation),
//! `GET /admin/towers` (viewer), `POST /admin/towers/{tower}` (operator: issue a new
//! credential, shown once) and `DELETE /admin/towers/{tower}` (operator: revoke). Errors are JSON (`api::common::ApiError`), 404 for
//! an unknown path and 405 for a known one with another method included; the token is
//! checked before the query or path parameters.
//!
//! Each handler carries `#[utoipa::path]` (its role is the scope of its `adminBearer`
//! requirement) and the routers are built from [`tower_routes`] and [`origin_routes`], the
//! lists the OpenAPI documents are made from (`crate::openapi`).
//!
//! Map: [`AdminCtx`], [`FaultRequest`], [`TowerAdmin`] / [`tower_routes`] /
//! [`tower_router`], [`OriginAdmin`] / [`origin_routes`] / [`origin_router`]; the bodies
//! ([`TowerStatus`], [`Links`], [`Power`], [`Outbox`], [`Rehome`], [`OriginStatus`],
//! [`Ledger`], [`OpRecord`], [`TowerList`], [`IssuedCredential`], [`RevokedCredential`]).

// Handlers return a finished `Response` as their error (401/403/4xx bodies); it is large,
// but it is the value axum sends, so boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

use crate::api::common::{
    ApiError, PathParam, Pieces, QueryParams, method_not_allowed, not_found, read_body,
};
use crate::audit::{AuditEntry, AuditLog, Tail};
use crate::auth::{Caller, Role, Tokens, require};
use crate::events::EventStream;
use crate::metrics::OriginMetrics;
use crate::openapi::{
    AdminRefusals, BadRequest, NotFound, OpKeyPath, PayloadTooLarge, TowerPath, Unavailable,
    Unprocessable,
};
use crate::origin_node::{OriginHandle, PublishError};
use crate::storage::{StorageHealth, parked_reasons};
use crate::tower_auth::{TowerCredentials, TowerInfo};
use crate::tower_node::{RehomeError, TowerHandle};
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use sovereign_logic::content::{ItemId, Priority};
use sovereign_logic::ledger::Account;
use sovereign_logic::origin::ITEM_BYTES_MAX;
use sovereign_logic::protocol::TowerId;
use sovereign_store::{Faults, FaultsSnapshot};
use sovereign_wire::event::EventRecordDto;
use sovereign_wire::{CatalogEntryDto, OpOutcomeDto, PowerReadingDto, PriorityName};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
    /// The logic's events, for `GET /admin/events`.
    pub events: EventStream,
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

/// A fault to inject into the node's store; `kind` selects it. A parameter the kind does
/// not take is refused (400).
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FaultRequest {
    /// The next `count` fsyncs fail; without `count`, every fsync fails until the faults
    /// are cleared.
    FsyncFailure {
        /// How many; 0 turns the fault off; values above 1000000 are taken as 1000000.
        count: Option<u32>,
    },
    /// Writes and deletes fail with an I/O error.
    WriteError,
    /// Writes fail as on a full disk.
    DiskFull,
    /// Fsync answers success without making anything durable, as a disk cache that ignores
    /// flushes does: what is acknowledged meanwhile is lost by a crash.
    LyingFsync,
    /// Every storage call takes `delay_ms` longer (0 turns it off).
    SlowDisk {
        /// added latency per call
        #[schema(maximum = 60_000)]
        delay_ms: u64,
    },
    /// Flip a byte in `count` stored chunks (bit rot), at the next storage call.
    Corrupt {
        /// how many chunks (default 1)
        #[schema(minimum = 1, maximum = 10_000)]
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

/// The answer when the node task is gone (503).
fn gone(e: crate::tower_node::NodeGone) -> Response {
    ApiError::from(e).into_response()
}

fn json(v: impl serde::Serialize) -> Response {
    axum::Json(v).into_response()
}

/// The faults and audit routes both servers share, each with its description.
fn common_routes<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    AdminCtx: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(faults_get, faults_inject, faults_clear))
        .routes(routes!(audit))
        .routes(routes!(events))
}

/// Finish an admin router: the JSON 405 and 404 fallbacks, then bind `state`.
fn admin_router<S: Clone + Send + Sync + 'static>(routes: OpenApiRouter<S>, state: S) -> Router {
    let (routes, _) = routes.split_for_parts();
    routes
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .with_state(state)
}

/// The store faults active now.
#[utoipa::path(get, path = "/admin/faults", tag = "admin", security(("adminBearer" = ["viewer"])),
    responses(AdminRefusals, (status = 200, description = "The faults.", body = FaultsSnapshot)))]
async fn faults_get(State(ctx): State<AdminCtx>, headers: HeaderMap) -> Result<Response, Response> {
    ctx.caller(Role::Viewer, &headers)?;
    Ok(json(ctx.faults.snapshot()))
}

/// Inject a store fault (audited, refusals too).
#[utoipa::path(post, path = "/admin/faults", tag = "admin", security(("adminBearer" = ["chaos"])),
    request_body = FaultRequest,
    responses(AdminRefusals, (status = 201, description = "Injected: the faults now active.", body = FaultsSnapshot),
        (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge)))]
async fn faults_inject(
    State(ctx): State<AdminCtx>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Response> {
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
            Ok((StatusCode::CREATED, json(state)).into_response())
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

/// Clear every injected fault (audited).
#[utoipa::path(delete, path = "/admin/faults", tag = "admin", security(("adminBearer" = ["chaos"])),
    responses(AdminRefusals, (status = 200, description = "Cleared: the faults now (all off).", body = FaultsSnapshot)))]
async fn faults_clear(
    State(ctx): State<AdminCtx>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let caller = ctx.caller(Role::Chaos, &headers)?;
    ctx.faults.clear();
    (ctx.on_fault)();
    ctx.record(AuditEntry::new(&caller, "fault.clear", "store").outcome("cleared"))?;
    tracing::warn!(token = %caller.token_id, "faults cleared");
    Ok(json(ctx.faults.snapshot()))
}

/// The last entries of the audit trail. `n` is the only query parameter; another is 400.
#[utoipa::path(get, path = "/admin/audit", tag = "admin", security(("adminBearer" = ["viewer"])),
    params(("n" = Option<u64>, Query, description = "How many of the last entries (default 100; at most 10000 are returned).")),
    responses(AdminRefusals, (status = 200, description = "Oldest first.", body = Tail),
        (status = 400, response = BadRequest)))]
async fn audit(
    State(ctx): State<AdminCtx>,
    headers: HeaderMap,
    q: Result<QueryParams, ApiError>,
) -> Result<Response, Response> {
    ctx.caller(Role::Viewer, &headers)?;
    let q = q.map_err(IntoResponse::into_response)?;
    q.only(&["n"]).map_err(IntoResponse::into_response)?;
    let n = match q.0.get("n") {
        None => 100,
        Some(v) => v.parse::<usize>().map_err(|_| {
            ApiError::bad_field("n", format!("expected a count, found {v:?}")).into_response()
        })?,
    };
    let tail = ctx.audit.read_tail(n.min(10_000)).map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
    })?;
    Ok(json(tail))
}

/// The logic's events as they happen (server-sent events; `crate::events`): one
/// `event: event` message per event, its data an `EventRecord`; `event: lagged` with the
/// count a slow reader missed. At most 8 readers at once.
#[utoipa::path(get, path = "/admin/events", tag = "admin", security(("adminBearer" = ["viewer"])),
    responses(AdminRefusals,
        (status = 200, description = "A text/event-stream of the logic's events; each message's data is an EventRecord (JSON).", content_type = "text/event-stream", body = EventRecordDto),
        (status = 503, response = Unavailable)))]
async fn events(State(ctx): State<AdminCtx>, headers: HeaderMap) -> Result<Response, Response> {
    ctx.caller(Role::Viewer, &headers)?;
    let Some(sub) = ctx.events.subscribe() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} event readers already connected",
                crate::events::SUBSCRIBERS_MAX
            ),
        )
        .into_response());
    };
    let stream = futures_util::stream::unfold(sub, |mut sub| async move {
        use tokio::sync::broadcast::error::RecvError;
        let msg = match sub.rx.recv().await {
            Ok(text) => SseEvent::default().event("event").data(&*text),
            Err(RecvError::Lagged(n)) => SseEvent::default().event("lagged").data(n.to_string()),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok::<_, std::convert::Infallible>(msg), sub))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// What the tower's admin handlers share.
#[derive(Clone)]
pub struct TowerAdmin {
    ctx: AdminCtx,
    node: TowerHandle,
}

impl FromRef<TowerAdmin> for AdminCtx {
    fn from_ref(s: &TowerAdmin) -> AdminCtx {
        s.ctx.clone()
    }
}

/// The tower's admin routes, each with its description.
pub fn tower_routes() -> OpenApiRouter<TowerAdmin> {
    OpenApiRouter::new()
        .routes(routes!(tower_status))
        .routes(routes!(rehome))
        .routes(routes!(outbox))
        .routes(routes!(links))
        .routes(routes!(power_get, power_post))
        .merge(common_routes())
}

/// The tower's admin router.
pub fn tower_router(ctx: AdminCtx, node: TowerHandle) -> Router {
    admin_router(tower_routes(), TowerAdmin { ctx, node })
}

sovereign_wire::names_schema!(
    /// The names of [`PowerMode`](sovereign_logic::io::PowerMode).
    PowerModeName as "PowerMode",
    "The power manager's mode, from full service to off.",
    sovereign_logic::io::PowerMode::ALL.map(|m| m.name())
);

sovereign_wire::names_schema!(
    /// The names of [`LinkKind`](sovereign_logic::protocol::LinkKind).
    LinkName as "LinkKind",
    "An uplink's kind.",
    sovereign_logic::protocol::LinkKind::ALL.map(|l| l.name())
);

/// Storage health in both servers' status: the reasons `/readyz` gives.
#[derive(serde::Serialize, ToSchema)]
pub struct StorageStatus {
    /// Why the server is not ready, one sentence each (empty: it is).
    pub degraded: Vec<String>,
    /// Free bytes on the data directory's file system (null: not watched).
    pub storage_free_bytes: Option<u64>,
    /// Store calls that failed since the server started, every operation (the sum of
    /// `sovereign_storage_errors_total`): a count that grew between two reads is a
    /// storage failure between them, where `degraded` says only that no call has
    /// succeeded since the last one.
    pub storage_errors_total: u64,
}

impl StorageStatus {
    /// `degraded` (the node's own reasons) and what the storage health adds.
    fn of(ctx: &AdminCtx, mut degraded: Vec<String>) -> StorageStatus {
        degraded.extend(ctx.storage.reasons());
        let storage_free_bytes = ctx.storage.free_bytes();
        StorageStatus {
            degraded,
            storage_free_bytes,
            storage_errors_total: ctx.storage.errors_total(),
        }
    }
}

/// Chunk requests queued per class.
#[derive(serde::Serialize, ToSchema)]
#[allow(non_snake_case)]
pub struct Queued {
    /// critical
    pub P0: u64,
    /// important
    pub P1: u64,
    /// normal
    pub P2: u64,
    /// bulk
    pub P3: u64,
}

/// The tower's state machine status.
#[derive(serde::Serialize, ToSchema)]
pub struct TowerStatus {
    /// `tower-N`.
    pub tower: String,
    /// Seconds since start.
    pub uptime_s: f64,
    /// The uplink in use.
    #[schema(value_type = Option<LinkName>)]
    pub active_link: Option<&'static str>,
    /// The uplinks that are up.
    #[schema(value_type = Vec<LinkName>)]
    pub links_up: Vec<&'static str>,
    /// The power manager's mode.
    #[schema(value_type = PowerModeName)]
    pub power_mode: &'static str,
    /// Items servable now.
    pub items_servable: u64,
    /// Items being synced.
    pub items_pending: u64,
    /// Chunks held.
    pub chunks_held: u64,
    /// Chunk requests queued per class.
    pub queued: Queued,
    /// Chunk requests in flight.
    pub in_flight: u64,
    /// Device operations not yet confirmed by the origin.
    pub outbox: u64,
    /// The fetch window.
    pub window: u32,
    /// Failovers since start.
    pub failovers: u64,
    /// Circuit breaker openings since start.
    pub breaker_openings: u64,
    /// Servable items: id -> version.
    pub servable: BTreeMap<String, u64>,
    /// The origin this tower trusts.
    pub origin: OriginTrust,
    /// Storage health.
    #[serde(flatten)]
    pub storage: StorageStatus,
}

/// The tower's status.
#[utoipa::path(get, path = "/admin/status", tag = "admin", security(("adminBearer" = ["viewer"])),
    responses(AdminRefusals, (status = 200, description = "Status.", body = TowerStatus)))]
async fn tower_status(
    State(s): State<TowerAdmin>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    s.ctx.caller(Role::Viewer, &headers)?;
    let mut status = s
        .node
        .query(move |t, now| {
            let st = t.status();
            TowerStatus {
                tower: t.config().id.to_string(),
                uptime_s: now.as_secs_f64(),
                active_link: st.active_link.map(|l| l.name()),
                links_up: st.links_up.iter().map(|l| l.name()).collect(),
                power_mode: st.power_mode.name(),
                items_servable: st.items_servable,
                items_pending: st.items_pending,
                chunks_held: st.chunks_held,
                queued: Queued {
                    P0: st.queued[0],
                    P1: st.queued[1],
                    P2: st.queued[2],
                    P3: st.queued[3],
                },
                in_flight: st.in_flight,
                outbox: st.outbox,
                window: st.window,
                failovers: st.failovers,
                breaker_openings: st.breaker_openings,
                servable: t.servable().into_iter().map(|(i, v)| (i.0, v)).collect(),
                origin: origin_status(t),
                storage: StorageStatus {
                    degraded: parked_reasons(&t.parked(now)),
                    storage_free_bytes: None,
                    storage_errors_total: 0,
                },
            }
        })
        .await
        .map_err(gone)?;
    status.storage = StorageStatus::of(&s.ctx, status.storage.degraded);
    Ok(json(status))
}

/// One uplink's probe state.
#[derive(serde::Serialize, ToSchema)]
pub struct Link {
    /// The uplink.
    #[schema(value_type = LinkName)]
    pub link: &'static str,
    /// Whether it is the one in use.
    pub active: bool,
    /// Whether its probes say it is up.
    pub healthy: bool,
    /// Smoothed probe round trip.
    pub rtt_ms: Option<f64>,
    /// Probe loss.
    pub loss_pct: Option<u8>,
    /// Seconds since start at the last up/down change.
    pub last_change_s: Option<f64>,
}

/// Uplinks: which are healthy, which is active, and per-link probe state.
#[derive(serde::Serialize, ToSchema)]
pub struct Links {
    /// Each uplink.
    pub links: Vec<Link>,
}

/// Uplink health and the active uplink.
#[utoipa::path(get, path = "/admin/links", tag = "admin", security(("adminBearer" = ["viewer"])),
    responses(AdminRefusals, (status = 200, description = "Links.", body = Links)))]
async fn links(State(s): State<TowerAdmin>, headers: HeaderMap) -> Result<Response, Response> {
    s.ctx.caller(Role::Viewer, &headers)?;
    let links = s
        .node
        .query(|t, _| {
            let f = t.failover();
            f.links()
                .into_iter()
                .map(|l| {
                    let h = f.health(l);
                    Link {
                        link: l.name(),
                        active: f.active() == Some(l),
                        healthy: h.is_some_and(|h| h.is_up()),
                        rtt_ms: h
                            .and_then(|h| h.rtt_ewma())
                            .map(|d| d.as_secs_f64() * 1000.0),
                        loss_pct: h.map(|h| h.loss_pct()),
                        last_change_s: h.and_then(|h| h.last_change()).map(|t| t.as_secs_f64()),
                    }
                })
                .collect()
        })
        .await
        .map_err(gone)?;
    Ok(json(Links { links }))
}

/// The last power reading and the power mode.
#[derive(serde::Serialize, ToSchema)]
pub struct Power {
    /// The power manager's mode.
    #[schema(value_type = PowerModeName)]
    pub mode: &'static str,
    /// The last reading, if any.
    pub reading: Option<PowerReadingDto>,
}

/// Power mode and the last reading.
#[utoipa::path(get, path = "/admin/power", tag = "admin", security(("adminBearer" = ["viewer"])),
    responses(AdminRefusals, (status = 200, description = "Power.", body = Power)))]
async fn power_get(State(s): State<TowerAdmin>, headers: HeaderMap) -> Result<Response, Response> {
    s.ctx.caller(Role::Viewer, &headers)?;
    let power = s
        .node
        .query(|t, _| Power {
            mode: t.power_mode().name(),
            reading: t.power_reading().as_ref().map(PowerReadingDto::from),
        })
        .await
        .map_err(gone)?;
    Ok(json(power))
}

/// Hand the power manager a reading, as telemetry would (audited).
#[utoipa::path(post, path = "/admin/power", tag = "admin", security(("adminBearer" = ["operator"])),
    request_body = PowerReadingDto,
    responses(AdminRefusals, (status = 202, description = "Delivered to the power manager: the reading.", body = PowerReadingDto),
        (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge)))]
async fn power_post(
    State(s): State<TowerAdmin>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Response> {
    let caller = s.ctx.caller(Role::Operator, &headers)?;
    let bytes = read_body(body, 4096)
        .await
        .map_err(IntoResponse::into_response)?;
    let dto: PowerReadingDto = sovereign_wire::from_json(&bytes)
        .map_err(|e| ApiError::from_wire("power reading", "", &e).into_response())?;
    let reading = dto
        .to_reading()
        .map_err(|e| ApiError::from_wire("power reading", "", &e).into_response())?;
    s.ctx.record(
        AuditEntry::new(&caller, "power.reading", "power-manager")
            .detail(serde_json::to_value(&dto).unwrap_or_default())
            .outcome("delivered"),
    )?;
    s.node.power(reading);
    Ok((StatusCode::ACCEPTED, json(dto)).into_response())
}

/// Device operations accepted (durable) and not yet acknowledged by the origin.
#[derive(serde::Serialize, ToSchema)]
pub struct Outbox {
    /// How many.
    pub count: usize,
    /// Their keys.
    pub keys: Vec<String>,
}

/// Accepted device operations the origin has not acknowledged yet.
#[utoipa::path(get, path = "/admin/outbox", tag = "admin", security(("adminBearer" = ["viewer"])),
    responses(AdminRefusals, (status = 200, description = "The outbox.", body = Outbox)))]
async fn outbox(State(s): State<TowerAdmin>, headers: HeaderMap) -> Result<Response, Response> {
    s.ctx.caller(Role::Viewer, &headers)?;
    let keys: Vec<String> = s
        .node
        .query(|t, _| {
            t.outbox_acked()
                .into_iter()
                .map(|k| k.0.to_string())
                .collect()
        })
        .await
        .map_err(gone)?;
    Ok(json(Outbox {
        count: keys.len(),
        keys,
    }))
}

/// The re-home was ordered: the next origin to answer is trusted once everything held is
/// reconciled with its catalog.
#[derive(serde::Serialize, ToSchema)]
pub struct Rehome {
    /// Always `true`.
    pub rehoming: bool,
    /// The trust before the re-home.
    pub before: OriginTrust,
    /// What re-reading --credential FILE did: `reloaded`, `unchanged` or `none`.
    pub credential: &'static str,
}

/// Re-home the tower (audited): re-read --credential FILE, then trust the origin that
/// answers next once everything held is reconciled with its catalog (identical items kept,
/// others replaced, missing ones withdrawn).
#[utoipa::path(post, path = "/admin/rehome", tag = "admin", security(("adminBearer" = ["operator"])),
    responses(AdminRefusals, (status = 202, description = "Ordered.", body = Rehome),
        (status = 422, response = Unprocessable), (status = 503, response = Unavailable)))]
async fn rehome(State(s): State<TowerAdmin>, headers: HeaderMap) -> Result<Response, Response> {
    let caller = s.ctx.caller(Role::Operator, &headers)?;
    let before = s.node.query(|t, _| origin_status(t)).await.map_err(gone)?;
    match s.node.rehome().await {
        Ok(credential) => {
            s.ctx.record(
                AuditEntry::new(&caller, "origin.rehome", "origin")
                    .detail(serde_json::json!({ "before": before, "credential": credential }))
                    .outcome("started"),
            )?;
            tracing::warn!(
                token = %caller.token_id,
                ?before,
                "re-home ordered: the next origin to answer will be trusted once its catalog is reconciled"
            );
            let rehome = Rehome {
                rehoming: true,
                before,
                credential,
            };
            Ok((StatusCode::ACCEPTED, json(rehome)).into_response())
        }
        Err(e) => {
            s.ctx.record(
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

/// Another origin answers where the trusted one should.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Mismatch {
    /// The trusted origin's id.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub expected: String,
    /// The id the answering origin announced, or null.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub found: Option<String>,
}

/// The origin this tower trusts. `mismatch`: another origin (or one announcing no id)
/// answers at the uplinks' address; syncing is stopped until the trusted one returns or an
/// operator re-homes the tower. `rehoming`: a re-home is reconciling with the next
/// origin's catalog.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct OriginTrust {
    /// An origin id (32 hex digits), or null.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub trusted: Option<String>,
    /// Null unless another origin answers.
    pub mismatch: Option<Mismatch>,
    /// Whether a re-home is under way.
    pub rehoming: bool,
}

/// The tower's relation to its origin, for the status and the audit trail.
fn origin_status(t: &sovereign_logic::tower::Tower) -> OriginTrust {
    OriginTrust {
        trusted: t.trusted_origin().map(|o| o.to_string()),
        mismatch: t.origin_mismatch().map(|(expected, found)| Mismatch {
            expected: expected.to_string(),
            found: found.map(|f| f.to_string()),
        }),
        rehoming: t.rehoming(),
    }
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

/// What the origin's admin handlers share.
#[derive(Clone)]
pub struct OriginAdmin {
    ctx: AdminCtx,
    node: OriginHandle,
    metrics: Arc<OriginMetrics>,
    credentials: TowerCredentials,
}

impl FromRef<OriginAdmin> for AdminCtx {
    fn from_ref(s: &OriginAdmin) -> AdminCtx {
        s.ctx.clone()
    }
}

impl OriginAdmin {
    /// Hand the logic the towers holding a credential now.
    async fn sync_towers(&self) -> Result<(), crate::tower_node::NodeGone> {
        let credentials = &self.credentials;
        self.metrics.set_towers(
            credentials.towers().len(),
            credentials.allows_unauthenticated(),
        );
        self.node.set_towers(known_towers(credentials)).await
    }
}

/// The origin's admin routes, each with its description.
pub fn origin_routes() -> OpenApiRouter<OriginAdmin> {
    OpenApiRouter::new()
        .routes(routes!(origin_status_route))
        .routes(routes!(towers_list))
        .routes(routes!(tower_issue, tower_revoke))
        .routes(routes!(op))
        .routes(routes!(publish))
        .routes(routes!(ledger))
        .merge(common_routes())
}

/// The origin's admin router.
pub fn origin_router(
    ctx: AdminCtx,
    node: OriginHandle,
    metrics: Arc<OriginMetrics>,
    credentials: TowerCredentials,
) -> Router {
    let state = OriginAdmin {
        ctx,
        node,
        metrics,
        credentials,
    };
    admin_router(origin_routes(), state)
}

/// The pieces a streamed publish hands the origin: its chunks are written a piece at a
/// time, and at most about one piece of the body is held.
const PUBLISH_PIECE_BYTES: usize = 4 << 20;

/// Publish a new version of an item (audited): the body is the content.
#[utoipa::path(post, path = "/admin/publish", tag = "admin", security(("adminBearer" = ["operator"])),
    params(
        ("item" = String, Query, min_length = 1, max_length = 256, description = "The item's id (no control characters)."),
        ("priority" = PriorityName, Query, description = "The item's class.")),
    request_body(content = String, content_type = "application/octet-stream"),
    responses(AdminRefusals, (status = 201, description = "Published: the new catalog entry.", body = CatalogEntryDto),
        (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable), (status = 503, response = Unavailable)))]
async fn publish(
    State(s): State<OriginAdmin>,
    headers: HeaderMap,
    q: Result<QueryParams, ApiError>,
    body: Body,
) -> Result<Response, Response> {
    // Authenticate first: an unauthenticated caller learns nothing about the rest.
    let caller = s.ctx.caller(Role::Operator, &headers)?;
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
    // Streamed: the body goes to the origin in pieces as it arrives, never whole. The
    // upload is aborted when dropped unfinished: on an error here, and when the client
    // goes away mid-body (this future is dropped).
    let mut pieces = Pieces::new(body, ITEM_BYTES_MAX, PUBLISH_PIECE_BYTES);
    let mut size = 0usize;
    let r = match s
        .node
        .begin_upload(ItemId::new(item.clone()), priority)
        .await
    {
        Ok(upload) => loop {
            match pieces.next().await {
                Ok(Some(piece)) => {
                    size += piece.len();
                    if let Err(e) = upload.bytes(piece).await {
                        break Err(e);
                    }
                }
                Ok(None) => break upload.finish().await,
                Err(unread) => return Err(unread.into_response()),
            }
        },
        Err(e) => Err(e),
    };
    let detail =
        serde_json::json!({ "item": item, "priority": priority.to_string(), "bytes": size });
    match r {
        Ok(entry) => {
            s.metrics.published(priority, size as u64);
            s.ctx.record(
                AuditEntry::new(&caller, "publish", item.clone())
                    .detail(detail)
                    .outcome(format!("version {}", entry.manifest.version)),
            )?;
            Ok((StatusCode::CREATED, json(CatalogEntryDto::from(&entry))).into_response())
        }
        Err(e) => {
            s.ctx.record(
                AuditEntry::new(&caller, "publish", item.clone())
                    .detail(detail)
                    .outcome(format!("failed: {e}")),
            )?;
            let e = match e {
                PublishError::Refused(_) => {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
                }
                PublishError::TooLarge(_) => {
                    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
                }
                PublishError::Busy(_) => ApiError::unavailable(e.to_string(), 5),
                PublishError::Storage(_) | PublishError::Gone(_) => {
                    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                }
            };
            Err(e.into_response())
        }
    }
}

/// Ledger totals and balances in integer minor units; `conserved` is the check that the
/// balances add up to what was contributed.
#[derive(serde::Serialize, ToSchema)]
pub struct Ledger {
    /// A decimal string: the total can exceed 2^53.
    #[schema(pattern = "^[0-9]+$")]
    pub contributed_minor: String,
    /// The sum of the balances, a decimal string.
    #[schema(pattern = "^[0-9]+$")]
    pub held_minor: String,
    /// Whether the balances add up.
    pub conserved: bool,
    /// Community -> balance.
    pub communities: BTreeMap<String, u64>,
    /// Nation -> balance.
    pub nations: BTreeMap<String, u64>,
    /// The reserve's balance.
    pub reserve: u64,
    /// Operations in the apply log.
    pub applied: u64,
}

/// Ledger totals and balances.
#[utoipa::path(get, path = "/admin/ledger", tag = "admin", security(("adminBearer" = ["viewer"])),
    responses(AdminRefusals, (status = 200, description = "The ledger.", body = Ledger)))]
async fn ledger(State(s): State<OriginAdmin>, headers: HeaderMap) -> Result<Response, Response> {
    s.ctx.caller(Role::Viewer, &headers)?;
    let ledger = s
        .node
        .query(|o, _| {
            let l = o.ledger();
            let mut out = Ledger {
                contributed_minor: l.contributed_minor().to_string(),
                held_minor: l.held_minor().to_string(),
                conserved: l.check_conserved().is_ok(),
                communities: BTreeMap::new(),
                nations: BTreeMap::new(),
                reserve: 0,
                applied: o.applied_count(),
            };
            for (acct, bal) in l.balances() {
                match acct {
                    Account::Community(c) => {
                        out.communities.insert(c.clone(), *bal);
                    }
                    Account::Nation(n) => {
                        out.nations.insert(n.clone(), *bal);
                    }
                    Account::Reserve => out.reserve = *bal,
                }
            }
            out
        })
        .await
        .map_err(gone)?;
    Ok(json(ledger))
}

/// The origin's status.
#[derive(serde::Serialize, ToSchema)]
pub struct OriginStatus {
    /// Seconds since start.
    pub uptime_s: f64,
    /// Storage failed; the origin is recovering.
    pub failed: bool,
    /// Items in the catalog.
    pub items: usize,
    /// Operations in the apply log.
    pub applied: u64,
    /// Writes waiting for an fsync.
    pub pending_fsyncs: usize,
    /// This origin's id (32 hex digits).
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub origin: Option<String>,
    /// Towers holding a credential.
    pub towers_credentialed: usize,
    /// --allow-unauthenticated-towers.
    pub allow_unauthenticated_towers: bool,
    /// Storage health.
    #[serde(flatten)]
    pub storage: StorageStatus,
}

/// The origin's status.
#[utoipa::path(get, path = "/admin/status", tag = "admin", security(("adminBearer" = ["viewer"])),
    responses(AdminRefusals, (status = 200, description = "Status.", body = OriginStatus)))]
async fn origin_status_route(
    State(s): State<OriginAdmin>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    s.ctx.caller(Role::Viewer, &headers)?;
    let towers_credentialed = s.credentials.towers().len();
    let allow_unauthenticated_towers = s.credentials.allows_unauthenticated();
    let mut status = s
        .node
        .query(move |o, now| {
            let failed = o.is_failed();
            let degraded = failed
                .then(|| "origin failed: rebuilding from its durable state".to_string())
                .into_iter()
                .collect();
            OriginStatus {
                uptime_s: now.as_secs_f64(),
                failed,
                items: o.catalog_len(),
                applied: o.applied_count(),
                pending_fsyncs: o.pending_fsyncs(),
                origin: o.identity().map(|i| i.to_string()),
                towers_credentialed,
                allow_unauthenticated_towers,
                storage: StorageStatus {
                    degraded,
                    storage_free_bytes: None,
                    storage_errors_total: 0,
                },
            }
        })
        .await
        .map_err(gone)?;
    status.storage = StorageStatus::of(&s.ctx, status.storage.degraded);
    Ok(json(status))
}

/// The recorded outcome of a device operation.
#[derive(serde::Serialize, ToSchema)]
pub struct OpRecord {
    /// The key.
    #[schema(pattern = "^[\\x21-\\x7e]{1,256}$")]
    pub key: String,
    /// What applying it did.
    pub outcome: OpOutcomeDto,
    /// The tower that forwarded it first (null: recorded before the origin kept it).
    pub tower: Option<u32>,
    /// Committed: `false` while the commit of its record is pending, or after that
    /// commit failed (the origin then rebuilds from its store without it).
    pub durable: bool,
}

/// The recorded outcome of a device operation, by its idempotency key.
#[utoipa::path(get, path = "/admin/ops/{key}", tag = "admin", security(("adminBearer" = ["viewer"])),
    params(OpKeyPath),
    responses(AdminRefusals, (status = 200, description = "The outcome.", body = OpRecord),
        (status = 400, response = BadRequest), (status = 404, response = NotFound)))]
async fn op(
    State(s): State<OriginAdmin>,
    headers: HeaderMap,
    key: Result<PathParam, ApiError>,
) -> Result<Response, Response> {
    s.ctx.caller(Role::Viewer, &headers)?;
    let PathParam(key) = key.map_err(IntoResponse::into_response)?;
    let k = sovereign_wire::idem_key("key", &key)
        .map_err(|e| ApiError::bad_field("key", e.to_string()).into_response())?;
    let outcome = s
        .node
        .query(move |o, _| {
            o.applied(&k)
                .cloned()
                .map(|a| (a, o.forwarded_by(&k), o.applied_durably(&k)))
        })
        .await
        .map_err(gone)?;
    match outcome {
        Some((o, tower, durable)) => Ok(json(OpRecord {
            key,
            outcome: OpOutcomeDto::from(&o),
            tower: tower.map(|t| t.0),
            durable,
        })),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no operation {key:?} was applied"),
        )
        .into_response()),
    }
}

/// The towers holding a credential.
#[derive(serde::Serialize, ToSchema)]
pub struct TowerList {
    /// Each tower (ids of the credentials, never the secrets).
    pub towers: Vec<TowerInfo>,
    /// --allow-unauthenticated-towers.
    pub allow_unauthenticated: bool,
}

/// The towers holding a credential (ids of the credentials, never the secrets).
#[utoipa::path(get, path = "/admin/towers", tag = "admin", security(("adminBearer" = ["viewer"])),
    responses(AdminRefusals, (status = 200, description = "The towers.", body = TowerList)))]
async fn towers_list(
    State(s): State<OriginAdmin>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    s.ctx.caller(Role::Viewer, &headers)?;
    Ok(json(TowerList {
        towers: s.credentials.list(),
        allow_unauthenticated: s.credentials.allows_unauthenticated(),
    }))
}

/// A tower's new credential: shown this once (the origin keeps its SHA-256 only). An
/// earlier credential of the tower stops working.
#[derive(serde::Serialize, ToSchema)]
pub struct IssuedCredential {
    /// The tower's number.
    pub tower: u32,
    /// The credential, 64 hex digits.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub credential: String,
    /// First 8 hex digits of the credential's SHA-256.
    #[schema(pattern = "^[0-9a-f]{8}$")]
    pub credential_id: String,
    /// Whether an earlier credential was replaced.
    pub replaced: bool,
}

/// Issue a new random credential for the tower (audited); shown once. An earlier one stops
/// working.
#[utoipa::path(post, path = "/admin/towers/{tower}", tag = "admin", security(("adminBearer" = ["operator"])),
    params(TowerPath),
    responses(AdminRefusals, (status = 201, description = "The credential.", body = IssuedCredential),
        (status = 400, response = BadRequest)))]
async fn tower_issue(
    State(s): State<OriginAdmin>,
    headers: HeaderMap,
    p: Result<PathParam, ApiError>,
) -> Result<Response, Response> {
    let caller = s.ctx.caller(Role::Operator, &headers)?;
    let tower = tower_param(p)?;
    let issued = crate::tower_node::blocking(|| s.credentials.issue(tower)).map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
    })?;
    let audit = s.ctx.record(
        AuditEntry::new(&caller, "tower.credential.issue", tower.to_string())
            .detail(serde_json::json!({
                "credential_id": issued.credential_id,
                "replaced": issued.replaced,
            }))
            .outcome("issued"),
    );
    if let Err(refusal) = audit {
        // Unaudited, so not made: the new credential must not work.
        let _ = crate::tower_node::blocking(|| s.credentials.revoke(tower));
        let _ = s.sync_towers().await;
        return Err(refusal);
    }
    s.sync_towers().await.map_err(gone)?;
    tracing::warn!(%tower, credential_id = %issued.credential_id, replaced = issued.replaced, token = %caller.token_id, "tower credential issued");
    let body = IssuedCredential {
        tower: tower.0,
        credential: issued.credential,
        credential_id: issued.credential_id,
        replaced: issued.replaced,
    };
    Ok((StatusCode::CREATED, json(body)).into_response())
}

/// A revoked credential.
#[derive(serde::Serialize, ToSchema)]
pub struct RevokedCredential {
    /// The tower's number.
    pub tower: u32,
    /// Always `true`.
    pub revoked: bool,
}

/// Revoke the tower's credential (audited): its requests are refused from now on.
#[utoipa::path(delete, path = "/admin/towers/{tower}", tag = "admin", security(("adminBearer" = ["operator"])),
    params(TowerPath),
    responses(AdminRefusals, (status = 200, description = "Revoked.", body = RevokedCredential),
        (status = 400, response = BadRequest), (status = 404, response = NotFound)))]
async fn tower_revoke(
    State(s): State<OriginAdmin>,
    headers: HeaderMap,
    p: Result<PathParam, ApiError>,
) -> Result<Response, Response> {
    let caller = s.ctx.caller(Role::Operator, &headers)?;
    let tower = tower_param(p)?;
    let revoked = crate::tower_node::blocking(|| s.credentials.revoke(tower)).map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
    })?;
    s.sync_towers().await.map_err(gone)?;
    s.ctx.record(
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
    Ok(json(RevokedCredential {
        tower: tower.0,
        revoked: true,
    }))
}
