//! Prometheus metrics of a real tower and of the origin, under the names the dashboards
//! and the simulator's export use.
//!
//! Each server owns one metrics value with its own `prometheus::Registry` (no global
//! registry: tests run several servers in one process) and serves [`TowerMetrics::render`]
//! / [`OriginMetrics::render`] at `/metrics` with [`CONTENT_TYPE`]. Names follow
//! Prometheus conventions (`sovereign_` prefix, base units, `_total` on counters) and the
//! table in `dashboards/README.md`; every label set is bounded: `tower` (one per process,
//! a constant label), `link` (3), `class` (4), `mode` (6), `task` (3), `outcome` (fixed
//! lists), HTTP `route` (matched route templates, at most [`ROUTES_MAX`]), `method` (7 +
//! `OTHER`), `code`.
//!
//! The tower's metrics come from three feeds: the logic's [`Event`]s
//! ([`TowerMetrics::on_event`], counters and transitions), its [`TowerStatus`]
//! ([`TowerMetrics::set_status`], gauges) and power telemetry
//! ([`TowerMetrics::set_power`]); plus what only the HTTP layer sees (device reads,
//! devices, requests).
//!
//! Definitions shared with the simulator (so one dashboard panel means the same for a
//! simulated and a real tower):
//! - `sovereign_tower_up`: 1 unless the power mode is `shutting-down` or `off`.
//! - `sovereign_tower_steady`: 1 while up, in power mode `normal`, with an active uplink
//!   that is the most preferred of the links the probes consider up (fibre < lte <
//!   satellite), and not degraded: no sync task parked, no storage failing, the disk
//!   neither full nor under its free-space minimum ([`crate::storage`]). Queued sync work
//!   does not make a tower unsteady: the steady state is about service, the uplink and the
//!   ability to keep what arrives, as in the simulator's MTTR.
//! - `sovereign_storage_errors_total{op}` and `sovereign_storage_free_bytes` (both
//!   servers): see [`crate::storage::StorageHealth`]; the free space is read at each
//!   scrape.
//! - `sovereign_failovers_total`: every change of the active uplink (including losing the
//!   last one), as `tower::TowerStatus::failovers` counts.
//! - `sovereign_priority_inversions_total`: chunk requests of class P1–P3 issued while P0
//!   work waited (queued or in flight); only counted when the driver reports it with
//!   [`TowerMetrics::on_event_p0`] (from `Tower::p0_waiting`).
//! - `sovereign_devices`: distinct devices seen in the last [`DEVICE_WINDOW`].
//! - `sovereign_energy_joules_total`: the load's power integrated over time between
//!   telemetry readings (a gap longer than [`POWER_GAP_MAX`] is counted as that long).
//! - `sovereign_link_bytes_total`: bytes that crossed the link, as the driver reports
//!   them with [`TowerMetrics::link_traffic`]: every exchange with the origin (catalog
//!   polls, chunk fetches, forwards) and every probe, HTTP/1.1 heads and bodies as they
//!   travelled (compressed; a request that timed out counts, one whose connection was
//!   refused does not), not TCP or TLS framing.
//!
//! Map: [`TowerMetrics`], [`OriginMetrics`], [`HttpMetrics`] (shared by both; the storage
//! metrics come with [`crate::storage::StorageHealth`]),
//! [`READ_OUTCOMES`], [`CONTENT_TYPE`], [`DEVICE_WINDOW`], [`DEVICES_MAX`],
//! [`POWER_GAP_MAX`], [`ROUTES_MAX`].
//!
//! Not covered: the sim-only families (availability, MTTD/MTTR, freshness, RPO, faults,
//! sweeps: a real tower cannot see them — see the test's allow-list), process metrics
//! (the `process` feature is off), exemplars, OpenMetrics format.

use crate::storage::{DiskWatch, StorageHealth};
use prometheus::{
    Counter, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use sovereign_logic::content::Priority;
use sovereign_logic::io::{Event, PowerMode, TaskKind};
use sovereign_logic::ledger::Ledger;
use sovereign_logic::protocol::{DeviceId, LinkKind, OpOutcome};
use sovereign_logic::tower::TowerStatus;
use sovereign_logic::tower::power::PowerReading;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;
use tokio::time::Instant;

/// The `Content-Type` of [`TowerMetrics::render`] / [`OriginMetrics::render`] (Prometheus
/// text exposition format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// A device counts in `sovereign_devices` for this long after its last request.
pub const DEVICE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Most devices tracked for `sovereign_devices` (the least recently seen is dropped).
pub const DEVICES_MAX: usize = 100_000;
/// Longest gap between power readings integrated into `sovereign_energy_joules_total`.
pub const POWER_GAP_MAX: Duration = Duration::from_secs(300);
/// Most distinct HTTP route labels; further routes are counted as `other`.
pub const ROUTES_MAX: usize = 64;
/// The device-read outcomes a tower reports: served (200/206), not modified (304),
/// refused (not servable: unknown, incomplete, shed), corrupt (failed verification on
/// read). Anything else is counted as `other`. (`unreachable` is the simulator's: a real
/// tower never sees the reads that did not reach it.)
pub const READ_OUTCOMES: [&str; 4] = ["served", "not_modified", "refused", "corrupt"];
/// HTTP methods with their own label value; others are `OTHER`.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// A metric definition is a programmer's constant: failing to build or register one is a
/// bug (caught by the tests), not an operating error.
fn must<T>(r: prometheus::Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("metric definition rejected (programmer error): {e}"),
    }
}

/// Builds metrics into one registry, each with the same constant labels.
struct Builder<'a> {
    registry: &'a Registry,
    constant: Vec<(&'static str, String)>,
}

impl Builder<'_> {
    fn opts(&self, name: &str, help: &str) -> Opts {
        let mut o = Opts::new(name, help);
        for (k, v) in &self.constant {
            o = o.const_label(*k, v.clone());
        }
        o
    }
    fn reg<C: prometheus::core::Collector + Clone + 'static>(&self, c: C) -> C {
        must(self.registry.register(Box::new(c.clone())));
        c
    }
    fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.reg(must(IntCounter::with_opts(self.opts(name, help))))
    }
    fn counter_f(&self, name: &str, help: &str) -> Counter {
        self.reg(must(Counter::with_opts(self.opts(name, help))))
    }
    fn counters(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.reg(must(IntCounterVec::new(self.opts(name, help), labels)))
    }
    fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.reg(must(IntGauge::with_opts(self.opts(name, help))))
    }
    /// The storage health and its two metrics, registered here.
    fn storage(&self, watch: DiskWatch) -> Arc<StorageHealth> {
        Arc::new(StorageHealth::new(
            watch,
            self.counters(
                "sovereign_storage_errors_total",
                "Store calls that failed, by operation (write, fsync, delete, read).",
                &["op"],
            ),
            self.gauge(
                "sovereign_storage_free_bytes",
                "Free bytes on the data directory's file system (for an unprivileged writer).",
            ),
        ))
    }
    fn gauge_f(&self, name: &str, help: &str) -> Gauge {
        self.reg(must(Gauge::with_opts(self.opts(name, help))))
    }
    fn gauges(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.reg(must(IntGaugeVec::new(self.opts(name, help), labels)))
    }
    fn histograms(&self, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
        let mut o = HistogramOpts::new(name, help);
        for (k, v) in &self.constant {
            o = o.const_label(*k, v.clone());
        }
        self.reg(must(HistogramVec::new(o, labels)))
    }
}

fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    if let Err(e) = TextEncoder::new().encode_utf8(&registry.gather(), &mut out) {
        // Only reachable with invalid metric data; say so in the exposition itself.
        out.push_str(&format!("# encoding error: {e}\n"));
    }
    out
}

fn class_name(p: Priority) -> String {
    p.to_string()
}

fn outcome_name(o: &OpOutcome) -> &'static str {
    match o {
        OpOutcome::Applied { .. } => "applied",
        OpOutcome::Conflict => "conflict",
        OpOutcome::Rejected { .. } => "rejected",
    }
}

const OP_OUTCOMES: [&str; 3] = ["applied", "conflict", "rejected"];

/// HTTP request counts and latencies by route template.
///
/// Every request is counted, so the label lookups are cached: a route's histogram and its
/// counters per (method, code) are resolved once and then found under read locks (no
/// label hashing, no allocation on the hot path).
#[derive(Debug)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    /// Route labels handed out so far (bounded by [`ROUTES_MAX`]), with their handles.
    routes: RwLock<BTreeMap<String, Arc<RouteMetrics>>>,
    /// Handles of the `other` route (past [`ROUTES_MAX`]), made on first use.
    other: OnceLock<Arc<RouteMetrics>>,
}

/// One route's cached metric handles.
#[derive(Debug)]
struct RouteMetrics {
    label: String,
    duration: Histogram,
    /// By (method label, status code).
    requests: RwLock<BTreeMap<(&'static str, u16), IntCounter>>,
}

impl RouteMetrics {
    fn new(http: &HttpMetrics, label: &str) -> RouteMetrics {
        RouteMetrics {
            label: label.to_string(),
            duration: http.duration.with_label_values(&[label]),
            requests: RwLock::new(BTreeMap::new()),
        }
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // Poisoning only means a panic elsewhere; the maps only ever gain entries.
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl HttpMetrics {
    fn new(b: &Builder<'_>) -> HttpMetrics {
        HttpMetrics {
            requests: b.counters(
                "sovereign_http_requests_total",
                "HTTP requests answered, by route template, method and status code.",
                &["route", "method", "code"],
            ),
            duration: b.histograms(
                "sovereign_http_request_duration_seconds",
                "Time from request to response head, by route template.",
                &["route"],
            ),
            routes: RwLock::new(BTreeMap::new()),
            other: OnceLock::new(),
        }
    }

    /// The handles of `route`, or of `other` past [`ROUTES_MAX`] distinct routes.
    fn route(&self, route: &str) -> Arc<RouteMetrics> {
        if let Some(r) = read(&self.routes).get(route) {
            return r.clone();
        }
        let mut routes = write(&self.routes);
        if let Some(r) = routes.get(route) {
            return r.clone();
        }
        if routes.len() < ROUTES_MAX {
            let r = Arc::new(RouteMetrics::new(self, route));
            routes.insert(route.to_string(), r.clone());
            return r;
        }
        drop(routes);
        self.other
            .get_or_init(|| Arc::new(RouteMetrics::new(self, "other")))
            .clone()
    }

    /// Count one request. `route` must be the matched route template (axum's
    /// `MatchedPath`, e.g. `/v1/chunks/{sha256}`), never the raw path; unmatched requests
    /// should pass `unmatched`. Past [`ROUTES_MAX`] distinct routes, new ones count as
    /// `other`.
    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let r = self.route(route);
        let method = METHODS
            .iter()
            .find(|m| m.eq_ignore_ascii_case(method))
            .copied()
            .unwrap_or("OTHER");
        // Codes outside 100..=599 share one label, `invalid` (key 0).
        let code = if (100..=599).contains(&status) {
            status
        } else {
            0
        };
        let counter = read(&r.requests).get(&(method, code)).cloned();
        let counter = counter.unwrap_or_else(|| {
            write(&r.requests)
                .entry((method, code))
                .or_insert_with(|| {
                    let code = if code == 0 {
                        "invalid".to_string()
                    } else {
                        code.to_string()
                    };
                    self.requests
                        .with_label_values(&[r.label.as_str(), method, code.as_str()])
                })
                .clone()
        });
        counter.inc();
        let seconds = if seconds.is_finite() && seconds >= 0.0 {
            seconds
        } else {
            0.0
        };
        r.duration.observe(seconds);
    }
}

/// Mutable bookkeeping behind the tower's gauges.
#[derive(Debug, Default)]
struct TowerState {
    /// Device → last seen.
    device_last: BTreeMap<DeviceId, Instant>,
    /// (last seen, device): the same set ordered by time, for expiry.
    device_by_time: BTreeSet<(Instant, DeviceId)>,
    /// The previous power reading: when, and the load in watts.
    last_power: Option<(Instant, f64)>,
    /// Links that have series (configured or seen).
    links: BTreeSet<LinkKind>,
    /// The active link as last reported.
    active: Option<LinkKind>,
    /// The steady state as the last status said, before degradation is considered.
    steady_status: bool,
    /// The sync tasks parked as last reported.
    parked: Vec<TaskKind>,
}

/// A tower's metrics. Thread-safe (`&self` everywhere): share it in an `Arc`.
#[derive(Debug)]
pub struct TowerMetrics {
    registry: Registry,
    link_healthy: IntGaugeVec,
    link_active: IntGaugeVec,
    link_bytes: IntCounterVec,
    failovers: IntCounter,
    breaker_openings: IntCounter,
    breaker_open: IntGauge,
    priority_inversions: IntCounter,
    sync_servable: IntCounterVec,
    sync_requested_bytes: IntCounterVec,
    sync_queued: IntGaugeVec,
    sync_in_flight: IntGauge,
    sync_window: IntGauge,
    chunks_verified: IntCounterVec,
    chunks_verified_bytes: IntCounterVec,
    chunks_rejected: IntCounterVec,
    chunks_quarantined: IntCounter,
    chunks_held: IntGauge,
    items_servable: IntGauge,
    items_pending: IntGauge,
    ops_acked: IntCounter,
    ops_confirmed: IntCounterVec,
    ops_refused: IntCounterVec,
    outbox_operations: IntGauge,
    power_mode: IntGaugeVec,
    battery_soc: Gauge,
    solar_watts: Gauge,
    load_watts: Gauge,
    energy_joules: Counter,
    task_restarts: IntCounterVec,
    task_parks: IntCounterVec,
    reads: IntCounterVec,
    /// `reads` per [`READ_OUTCOMES`] entry.
    read_counters: Vec<IntCounter>,
    devices: IntGauge,
    tower_up: IntGauge,
    tower_steady: IntGauge,
    origin_mismatch: IntGauge,
    origin_refusals: IntCounterVec,
    http: HttpMetrics,
    storage: Arc<StorageHealth>,
    state: Mutex<TowerState>,
}

impl TowerMetrics {
    /// Metrics for the tower named `tower` (the `tower` label on every series, e.g.
    /// `tower-1`). Counters with bounded labels start at 0 so that dashboards see them
    /// before the first event.
    pub fn new(tower: &str) -> TowerMetrics {
        TowerMetrics::with_storage(tower, DiskWatch::default())
    }

    /// [`TowerMetrics::new`] for a tower whose store lives where `watch` says (its free
    /// space is reported and judged).
    pub fn with_storage(tower: &str, watch: DiskWatch) -> TowerMetrics {
        let registry = Registry::new();
        let b = Builder {
            registry: &registry,
            constant: vec![("tower", tower.to_string())],
        };
        let reads = b.counters(
            "sovereign_reads_total",
            "Device reads by outcome (served, not_modified, refused, corrupt).",
            &["outcome"],
        );
        let m = TowerMetrics {
            link_healthy: b.gauges(
                "sovereign_link_healthy",
                "1 while the tower's probes consider the uplink healthy.",
                &["link"],
            ),
            link_active: b.gauges(
                "sovereign_link_active",
                "1 on the uplink the tower uses now.",
                &["link"],
            ),
            link_bytes: b.counters(
                "sovereign_link_bytes_total",
                "Bytes that crossed an uplink: every exchange with the origin and every probe, HTTP heads and bodies as sent (compressed).",
                &["link"],
            ),
            failovers: b.counter(
                "sovereign_failovers_total",
                "Changes of the tower's active uplink.",
            ),
            breaker_openings: b.counter(
                "sovereign_breaker_openings_total",
                "Circuit-breaker openings at the tower.",
            ),
            breaker_open: b.gauge(
                "sovereign_breaker_open",
                "1 while the origin circuit breaker is open.",
            ),
            priority_inversions: b.counter(
                "sovereign_priority_inversions_total",
                "Lower-class chunk requests issued while P0 work waited at the tower.",
            ),
            sync_servable: b.counters(
                "sovereign_sync_servable_total",
                "Item versions that became servable at the tower, per priority class.",
                &["class"],
            ),
            sync_requested_bytes: b.counters(
                "sovereign_sync_requested_bytes_total",
                "Chunk bytes the tower requested, per priority class.",
                &["class"],
            ),
            sync_queued: b.gauges(
                "sovereign_sync_queued",
                "Chunk requests queued, per priority class.",
                &["class"],
            ),
            sync_in_flight: b.gauge("sovereign_sync_in_flight", "Chunk requests in flight."),
            sync_window: b.gauge(
                "sovereign_sync_window",
                "The adaptive throttle's window, in chunk requests in flight.",
            ),
            chunks_verified: b.counters(
                "sovereign_chunks_verified_total",
                "Chunks whose bytes passed verification, per priority class.",
                &["class"],
            ),
            chunks_verified_bytes: b.counters(
                "sovereign_chunks_verified_bytes_total",
                "Bytes of chunks that passed verification, per priority class.",
                &["class"],
            ),
            chunks_rejected: b.counters(
                "sovereign_chunks_rejected_total",
                "Chunks whose bytes failed verification and were dropped, per uplink.",
                &["link"],
            ),
            chunks_quarantined: b.counter(
                "sovereign_chunks_quarantined_total",
                "Stored chunks that failed verification on read or at start-up.",
            ),
            chunks_held: b.gauge("sovereign_chunks_held", "Verified, durable chunks held."),
            items_servable: b.gauge("sovereign_items_servable", "Items servable now."),
            items_pending: b.gauge(
                "sovereign_items_pending",
                "Items known but not yet complete.",
            ),
            ops_acked: b.counter(
                "sovereign_ops_acked_total",
                "Device operations made durable and acknowledged by the tower.",
            ),
            ops_confirmed: b.counters(
                "sovereign_ops_confirmed_total",
                "Forwarded operations the origin confirmed, by outcome.",
                &["outcome"],
            ),
            ops_refused: b.counters(
                "sovereign_ops_refused_total",
                "Device operations refused at the edge (nothing stored), by reason: not-owner (another device's key), invalid (the origin would reject it), conflict (key reused with another body).",
                &["reason"],
            ),
            outbox_operations: b.gauge(
                "sovereign_outbox_operations",
                "Operations held in the tower's outbox (acknowledged to devices, not yet applied).",
            ),
            power_mode: b.gauges(
                "sovereign_power_mode",
                "1 for the tower's current power mode, 0 for the others.",
                &["mode"],
            ),
            battery_soc: b.gauge_f(
                "sovereign_battery_soc_ratio",
                "Battery state of charge, 0 to 1.",
            ),
            solar_watts: b.gauge_f("sovereign_solar_power_watts", "Solar power now."),
            load_watts: b.gauge_f("sovereign_load_power_watts", "The tower's load now."),
            energy_joules: b.counter_f(
                "sovereign_energy_joules_total",
                "Energy drawn by the tower's load since the process started.",
            ),
            task_restarts: b.counters(
                "sovereign_task_restarts_total",
                "Restarts of a supervised sync task.",
                &["task"],
            ),
            task_parks: b.counters(
                "sovereign_task_parks_total",
                "Times a supervised sync task exceeded its restart budget and was parked.",
                &["task"],
            ),
            reads: reads.clone(),
            read_counters: READ_OUTCOMES
                .iter()
                .map(|o| reads.with_label_values(&[o]))
                .collect(),
            devices: b.gauge(
                "sovereign_devices",
                "Distinct devices seen by the tower in the last 15 minutes.",
            ),
            tower_up: b.gauge(
                "sovereign_tower_up",
                "1 while the tower runs and serves (not shutting down or off).",
            ),
            tower_steady: b.gauge(
                "sovereign_tower_steady",
                "1 while the tower is steady: running, Normal power, on its preferred healthy uplink.",
            ),
            origin_mismatch: b.gauge(
                "sovereign_origin_mismatch",
                "1 while an origin other than the trusted one answers at the uplinks' address: syncing is stopped until it returns or an operator re-homes the tower.",
            ),
            origin_refusals: b.counters(
                "sovereign_origin_refusals_total",
                "Requests to the origin it refused, by status: 401, 403, 412 (trust), 429 (over the origin's connection or rate limits).",
                &["code"],
            ),
            http: HttpMetrics::new(&b),
            storage: b.storage(watch),
            state: Mutex::new(TowerState::default()),
            registry,
        };
        for p in Priority::ALL {
            let c = class_name(p);
            m.sync_servable.with_label_values(&[&c]);
            m.sync_requested_bytes.with_label_values(&[&c]);
            m.sync_queued.with_label_values(&[&c]);
            m.chunks_verified.with_label_values(&[&c]);
            m.chunks_verified_bytes.with_label_values(&[&c]);
        }
        for o in OP_OUTCOMES {
            m.ops_confirmed.with_label_values(&[o]);
        }
        for r in sovereign_logic::io::OpRefusal::ALL {
            m.ops_refused.with_label_values(&[r.name()]);
        }
        for o in READ_OUTCOMES {
            m.reads.with_label_values(&[o]);
        }
        for t in TaskKind::ALL {
            m.task_restarts.with_label_values(&[t.name()]);
            m.task_parks.with_label_values(&[t.name()]);
        }
        for mode in PowerMode::ALL {
            m.power_mode.with_label_values(&[mode.name()]);
        }
        for code in ["401", "403", "412", "429"] {
            m.origin_refusals.with_label_values(&[code]);
        }
        m
    }

    /// The origin refused a request with `status` (401, 403, 412 or 429; others are
    /// ignored).
    pub fn origin_refused(&self, status: u16) {
        if matches!(status, 401 | 403 | 412 | 429) {
            self.origin_refusals
                .with_label_values(&[&status.to_string()])
                .inc();
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, TowerState> {
        // Poisoning only means a panic elsewhere; the bookkeeping is still consistent
        // enough for metrics.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Declare the tower's configured uplinks, so that their series exist (at 0) before
    /// the first probe.
    pub fn set_links(&self, links: &[LinkKind]) {
        let mut st = self.state();
        for &l in links {
            st.links.insert(l);
            self.link_healthy.with_label_values(&[l.name()]);
            self.link_active.with_label_values(&[l.name()]);
            self.link_bytes.with_label_values(&[l.name()]);
            self.chunks_rejected.with_label_values(&[l.name()]);
        }
    }

    fn touch_link(&self, st: &mut TowerState, l: LinkKind) {
        if st.links.insert(l) {
            self.link_healthy.with_label_values(&[l.name()]);
            self.link_active
                .with_label_values(&[l.name()])
                .set(i64::from(st.active == Some(l)));
            self.link_bytes.with_label_values(&[l.name()]);
            self.chunks_rejected.with_label_values(&[l.name()]);
        }
    }

    fn set_active(&self, st: &mut TowerState, active: Option<LinkKind>) {
        if let Some(a) = active {
            self.touch_link(st, a);
        }
        st.active = active;
        for &l in &st.links {
            self.link_active
                .with_label_values(&[l.name()])
                .set(i64::from(active == Some(l)));
        }
    }

    fn set_mode(&self, mode: PowerMode) {
        for m in PowerMode::ALL {
            self.power_mode
                .with_label_values(&[m.name()])
                .set(i64::from(m == mode));
        }
        let up = !matches!(mode, PowerMode::ShuttingDown | PowerMode::Off);
        self.tower_up.set(i64::from(up));
        if !up {
            self.state().steady_status = false;
            self.tower_steady.set(0);
        }
    }

    /// The storage health this tower's store reports to (readiness reads it too).
    pub fn storage(&self) -> &Arc<StorageHealth> {
        &self.storage
    }

    /// The sync tasks the supervisor has parked now (the node reports after each step).
    pub fn set_parked(&self, parked: &[TaskKind]) {
        let mut st = self.state();
        if st.parked != parked {
            st.parked = parked.to_vec();
            self.refresh_steady(&st, false);
        }
    }

    /// Set the steady gauge: the status's steady state, unless degraded (readiness and
    /// `/admin/status` name the same reasons). `fresh`: read the free space now (a
    /// scrape); otherwise the last reading is used, since this runs on every event.
    fn refresh_steady(&self, st: &TowerState, fresh: bool) {
        let steady =
            st.steady_status && st.parked.is_empty() && self.storage.reasons_with(fresh).is_empty();
        self.tower_steady.set(i64::from(steady));
    }

    /// Account for one event the tower's logic emitted. Priority inversions are not
    /// detected here (use [`TowerMetrics::on_event_p0`]).
    pub fn on_event(&self, event: &Event) {
        self.on_event_p0(event, false);
    }

    /// [`TowerMetrics::on_event`], with whether P0 work was waiting when the event was
    /// emitted (`Tower::p0_waiting()` after the call that emitted it): a `ChunkRequested`
    /// of class P1–P3 while P0 waits counts as a priority inversion.
    pub fn on_event_p0(&self, event: &Event, p0_waiting: bool) {
        match event {
            Event::LinkHealth { link, up } => {
                let mut st = self.state();
                self.touch_link(&mut st, *link);
                self.link_healthy
                    .with_label_values(&[link.name()])
                    .set(i64::from(*up));
            }
            Event::ActiveLink { to, .. } => {
                let mut st = self.state();
                self.set_active(&mut st, *to);
                self.failovers.inc();
            }
            Event::ContentServable { priority, .. } => {
                self.sync_servable
                    .with_label_values(&[&class_name(*priority)])
                    .inc();
            }
            Event::ChunkVerified {
                priority, bytes, ..
            } => {
                let c = class_name(*priority);
                self.chunks_verified.with_label_values(&[&c]).inc();
                self.chunks_verified_bytes
                    .with_label_values(&[&c])
                    .inc_by(*bytes);
            }
            Event::ChunkRejected { link, .. } => {
                let mut st = self.state();
                self.touch_link(&mut st, *link);
                self.chunks_rejected.with_label_values(&[link.name()]).inc();
            }
            Event::ChunkQuarantined { .. } => self.chunks_quarantined.inc(),
            Event::ChunkRequested {
                priority,
                bytes,
                link,
                ..
            } => {
                self.sync_requested_bytes
                    .with_label_values(&[&class_name(*priority)])
                    .inc_by(*bytes);
                {
                    let mut st = self.state();
                    self.touch_link(&mut st, *link);
                }
                // The link's bytes are counted as they cross ([`TowerMetrics::link_traffic`]),
                // compressed and with their HTTP heads, not as requested here.
                if p0_waiting && *priority > Priority::P0 {
                    self.priority_inversions.inc();
                }
            }
            Event::OpAcked { .. } => self.ops_acked.inc(),
            Event::OpRefused { reason, .. } => {
                self.ops_refused.with_label_values(&[reason.name()]).inc();
            }
            Event::OpConfirmed { outcome, .. } => {
                self.ops_confirmed
                    .with_label_values(&[outcome_name(outcome)])
                    .inc();
            }
            Event::PowerMode { to, .. } => self.set_mode(*to),
            Event::BreakerOpened => {
                self.breaker_openings.inc();
                self.breaker_open.set(1);
            }
            Event::BreakerClosed => self.breaker_open.set(0),
            Event::TaskRestarted { task, .. } => {
                self.task_restarts.with_label_values(&[task.name()]).inc();
            }
            Event::TaskParked { task } => {
                self.task_parks.with_label_values(&[task.name()]).inc();
            }
            Event::Throttle { window } => self.sync_window.set(i64::from(*window)),
            Event::OriginMismatch { .. } => self.origin_mismatch.set(1),
            Event::OriginRestored { .. }
            | Event::OriginAdopted { .. }
            | Event::RehomeStarted { .. } => self.origin_mismatch.set(0),
            // Origin-side, or carried by other metrics (Recovered: the quarantined chunks
            // come as ChunkQuarantined events, the rest is in the status gauges).
            Event::OpApplied { .. } | Event::Recovered { .. } | Event::ContentWithdrawn { .. } => {}
        }
    }

    /// Set the gauges from the tower's status (call after each batch of events, or
    /// before rendering).
    pub fn set_status(&self, s: &TowerStatus) {
        let mut st = self.state();
        for &l in &s.links_up {
            self.touch_link(&mut st, l);
        }
        let known: Vec<LinkKind> = st.links.iter().copied().collect();
        for l in known {
            self.link_healthy
                .with_label_values(&[l.name()])
                .set(i64::from(s.links_up.contains(&l)));
        }
        self.set_active(&mut st, s.active_link);
        drop(st);
        self.set_mode(s.power_mode);
        let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.items_servable.set(to_i64(s.items_servable));
        self.items_pending.set(to_i64(s.items_pending));
        self.chunks_held.set(to_i64(s.chunks_held));
        for p in Priority::ALL {
            self.sync_queued
                .with_label_values(&[&class_name(p)])
                .set(to_i64(s.queued[p.index()]));
        }
        self.sync_in_flight.set(to_i64(s.in_flight));
        self.outbox_operations.set(to_i64(s.outbox));
        self.sync_window.set(i64::from(s.window));
        let mut st = self.state();
        st.steady_status = is_steady(s);
        self.refresh_steady(&st, false);
    }

    /// Record a power reading taken now.
    pub fn set_power(&self, r: &PowerReading) {
        self.set_power_at(r, Instant::now());
    }

    /// Record a power reading taken at `now`: the gauges, and the energy the load drew
    /// since the previous reading (at the previous reading's load).
    pub fn set_power_at(&self, r: &PowerReading, now: Instant) {
        let soc = f64::from(r.soc_permille.min(1000)) / 1000.0;
        let solar_w = f64::from(r.solar_mw) / 1000.0;
        let load_w = f64::from(r.load_mw) / 1000.0;
        self.battery_soc.set(soc);
        self.solar_watts.set(solar_w);
        self.load_watts.set(load_w);
        let mut st = self.state();
        if let Some((then, prev_w)) = st.last_power {
            let dt = now.saturating_duration_since(then).min(POWER_GAP_MAX);
            self.energy_joules.inc_by(prev_w * dt.as_secs_f64());
        }
        // A reading older than the last one (out of order) does not move time back.
        if st.last_power.is_none_or(|(then, _)| now >= then) {
            st.last_power = Some((now, load_w));
        }
    }

    /// Count one device read by outcome (see [`READ_OUTCOMES`]; others count as `other`).
    pub fn device_read(&self, outcome: &str) {
        // The listed outcomes' handles are resolved once (this runs on every device read);
        // `other` is made on first use, so that its series appears only then.
        match READ_OUTCOMES.iter().position(|o| *o == outcome) {
            Some(i) => self.read_counters[i].inc(),
            None => self.reads.with_label_values(&["other"]).inc(),
        }
    }

    /// A device made a request at `now`.
    pub fn device_seen(&self, device: DeviceId, now: Instant) {
        let mut st = self.state();
        if let Some(prev) = st.device_last.insert(device, now) {
            st.device_by_time.remove(&(prev, device));
        }
        st.device_by_time.insert((now, device));
        while st.device_last.len() > DEVICES_MAX {
            let Some((t, d)) = st.device_by_time.pop_first() else {
                break;
            };
            debug_assert_eq!(st.device_last.get(&d), Some(&t));
            st.device_last.remove(&d);
        }
        self.expire_devices(&mut st, now);
    }

    fn expire_devices(&self, st: &mut TowerState, now: Instant) {
        while let Some(&(t, d)) = st.device_by_time.first() {
            if now.saturating_duration_since(t) <= DEVICE_WINDOW {
                break;
            }
            st.device_by_time.pop_first();
            st.device_last.remove(&d);
        }
        debug_assert_eq!(st.device_by_time.len(), st.device_last.len());
        self.devices
            .set(i64::try_from(st.device_last.len()).unwrap_or(i64::MAX));
    }

    /// Bytes that crossed `link` (an exchange with the origin or a probe, heads and
    /// bodies as sent), for `sovereign_link_bytes_total`.
    pub fn link_traffic(&self, link: LinkKind, bytes: u64) {
        {
            let mut st = self.state();
            self.touch_link(&mut st, link);
        }
        self.link_bytes
            .with_label_values(&[link.name()])
            .inc_by(bytes);
    }

    /// Count one HTTP request (see [`HttpMetrics::observe`]).
    pub fn http_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.http.observe(route, method, status, seconds);
    }

    /// The exposition text, devices expired as of now.
    pub fn render(&self) -> String {
        self.render_at(Instant::now())
    }

    /// The exposition text, devices expired as of `now`.
    pub fn render_at(&self, now: Instant) -> String {
        {
            let mut st = self.state();
            self.expire_devices(&mut st, now);
            // Reads the free space (the gauge) and ages storage errors out.
            self.refresh_steady(&st, true);
        }
        encode(&self.registry)
    }
}

/// The steady state (see the module doc): up, normal power, on the most preferred healthy
/// uplink.
fn is_steady(s: &TowerStatus) -> bool {
    let best = s.links_up.iter().min().copied();
    s.power_mode == PowerMode::Normal && s.active_link.is_some() && s.active_link == best
}

/// The origin's metrics. Thread-safe: share it in an `Arc`.
#[derive(Debug)]
pub struct OriginMetrics {
    registry: Registry,
    origin_up: IntGauge,
    publishes: IntCounterVec,
    published_bytes: IntCounterVec,
    catalog_entries: IntGauge,
    catalog_requests: IntCounter,
    catalog_sent: IntCounterVec,
    chunk_requests: IntCounterVec,
    chunk_served_bytes: IntCounter,
    chunks_lost: IntCounter,
    ops_applied: IntCounterVec,
    forward_batches: IntCounter,
    forward_operations: IntCounter,
    ledger_contributed: IntCounter,
    ledger_withdrawn: IntCounter,
    ledger_held: Gauge,
    ledger_conserved: IntGauge,
    tower_refusals: IntCounterVec,
    towers_credentialed: IntGauge,
    towers_unauthenticated: IntGauge,
    http: HttpMetrics,
    storage: Arc<StorageHealth>,
    /// Ledger totals already counted (contributed, withdrawn): counters move by deltas.
    ledger_seen: Mutex<(u128, u128)>,
}

impl Default for OriginMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl OriginMetrics {
    /// The origin's metrics, at 0.
    pub fn new() -> OriginMetrics {
        OriginMetrics::with_storage(DiskWatch::default())
    }

    /// [`OriginMetrics::new`] for an origin whose store lives where `watch` says.
    pub fn with_storage(watch: DiskWatch) -> OriginMetrics {
        let registry = Registry::new();
        let b = Builder {
            registry: &registry,
            constant: Vec::new(),
        };
        let m = OriginMetrics {
            origin_up: b.gauge("sovereign_origin_up", "1 while the origin runs."),
            publishes: b.counters(
                "sovereign_publishes_total",
                "Item versions published, per priority class.",
                &["class"],
            ),
            published_bytes: b.counters(
                "sovereign_published_bytes_total",
                "Content bytes published, per priority class.",
                &["class"],
            ),
            catalog_entries: b.gauge(
                "sovereign_catalog_entries",
                "Items in the origin's catalog (latest versions).",
            ),
            catalog_requests: b.counter(
                "sovereign_catalog_requests_total",
                "Catalog requests from towers.",
            ),
            catalog_sent: b.counters(
                "sovereign_catalog_entries_sent_total",
                "Catalog entries sent to towers, by form (whole: the manifest; changes: runs over the version the tower holds).",
                &["form"],
            ),
            chunk_requests: b.counters(
                "sovereign_chunk_requests_total",
                "Chunk requests from towers, by outcome (served, missing).",
                &["outcome"],
            ),
            chunk_served_bytes: b.counter(
                "sovereign_chunk_served_bytes_total",
                "Chunk bytes served to towers.",
            ),
            chunks_lost: b.counter(
                "sovereign_origin_chunks_lost_total",
                "Chunks the origin held whose stored bytes a tower's request found missing or failing their hash: never served (the tower is told the chunk is not held), written again by the next publish of the same bytes.",
            ),
            ops_applied: b.counters(
                "sovereign_ops_applied_total",
                "Operations the origin recorded, by outcome (applied, conflict, rejected).",
                &["outcome"],
            ),
            forward_batches: b.counter(
                "sovereign_forward_batches_total",
                "Forward requests (batches of operations) from towers.",
            ),
            forward_operations: b.counter(
                "sovereign_forward_operations_total",
                "Operations received in forward batches (duplicates included).",
            ),
            ledger_contributed: b.counter(
                "sovereign_ledger_contributed_minor_total",
                "Contributions accepted by the ledger, in minor currency units.",
            ),
            ledger_withdrawn: b.counter(
                "sovereign_ledger_withdrawn_minor_total",
                "Withdrawals from the ledger, in minor currency units.",
            ),
            ledger_held: b.gauge_f(
                "sovereign_ledger_held_minor",
                "The sum of all ledger balances, in minor currency units.",
            ),
            ledger_conserved: b.gauge(
                "sovereign_ledger_conserved",
                "1 while the ledger's balances equal contributions minus withdrawals.",
            ),
            tower_refusals: b.counters(
                "sovereign_tower_auth_refusals_total",
                "Tower requests refused, by reason (tower_header, missing, not_configured, unknown, wrong_tower, other_origin).",
                &["reason"],
            ),
            towers_credentialed: b.gauge(
                "sovereign_towers_credentialed",
                "Towers holding a credential at this origin.",
            ),
            towers_unauthenticated: b.gauge(
                "sovereign_towers_unauthenticated_allowed",
                "1 when the origin runs with --allow-unauthenticated-towers (local experiments only).",
            ),
            http: HttpMetrics::new(&b),
            storage: b.storage(watch),
            ledger_seen: Mutex::new((0, 0)),
            registry,
        };
        for r in crate::tower_auth::TowerAuthError::REASONS
            .into_iter()
            .chain(["other_origin"])
        {
            m.tower_refusals.with_label_values(&[r]);
        }
        m.origin_up.set(1);
        m.ledger_conserved.set(1);
        for p in Priority::ALL {
            m.publishes.with_label_values(&[&class_name(p)]);
            m.published_bytes.with_label_values(&[&class_name(p)]);
        }
        for o in ["served", "missing"] {
            m.chunk_requests.with_label_values(&[o]);
        }
        for o in OP_OUTCOMES {
            m.ops_applied.with_label_values(&[o]);
        }
        m
    }

    /// An item version of `class` and `bytes` was published.
    pub fn published(&self, class: Priority, bytes: u64) {
        let c = class_name(class);
        self.publishes.with_label_values(&[&c]).inc();
        self.published_bytes.with_label_values(&[&c]).inc_by(bytes);
    }

    /// The catalog holds `entries` items.
    pub fn set_catalog(&self, entries: u64) {
        self.catalog_entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    /// A tower asked for the catalog.
    pub fn catalog_request(&self) {
        self.catalog_requests.inc();
    }

    /// A catalog page went out with `whole` entries sent whole and `changes` as changes.
    pub fn catalog_sent(&self, whole: usize, changes: usize) {
        for (form, n) in [("whole", whole), ("changes", changes)] {
            (self.catalog_sent.with_label_values(&[form])).inc_by(n as u64);
        }
    }

    /// A chunk of `bytes` was served.
    pub fn chunk_served(&self, bytes: u64) {
        self.chunk_requests.with_label_values(&["served"]).inc();
        self.chunk_served_bytes.inc_by(bytes);
    }

    /// A tower request was refused for `reason` (a `TowerAuthError::reason`, or
    /// `other_origin` for a 412).
    pub fn tower_refused(&self, reason: &str) {
        self.tower_refusals.with_label_values(&[reason]).inc();
    }

    /// `towers` hold a credential; `unauthenticated`: `--allow-unauthenticated-towers`.
    pub fn set_towers(&self, towers: usize, unauthenticated: bool) {
        self.towers_credentialed
            .set(i64::try_from(towers).unwrap_or(i64::MAX));
        self.towers_unauthenticated.set(i64::from(unauthenticated));
    }

    /// A requested chunk was not found.
    pub fn chunk_missing(&self) {
        self.chunk_requests.with_label_values(&["missing"]).inc();
    }

    /// A tower forwarded a batch of `ops` operations.
    pub fn forward_batch(&self, ops: usize) {
        self.forward_batches.inc();
        self.forward_operations
            .inc_by(u64::try_from(ops).unwrap_or(u64::MAX));
    }

    /// Account for one event the origin's logic emitted (`OpApplied`, `ChunkQuarantined`;
    /// others are ignored).
    pub fn on_event(&self, event: &Event) {
        match event {
            Event::OpApplied { outcome, .. } => self
                .ops_applied
                .with_label_values(&[outcome_name(outcome)])
                .inc(),
            Event::ChunkQuarantined { .. } => self.chunks_lost.inc(),
            _ => {}
        }
    }

    /// Set the ledger metrics from the ledger's totals. The counters advance by what was
    /// added since the last call (a ledger rebuilt smaller, which cannot happen within a
    /// process, would leave them unchanged).
    pub fn set_ledger(&self, ledger: &Ledger) {
        let mut seen = self.ledger_seen.lock().unwrap_or_else(|p| p.into_inner());
        let (c, w) = (ledger.contributed_minor(), ledger.withdrawn_minor());
        let delta =
            |now: u128, before: u128| u64::try_from(now.saturating_sub(before)).unwrap_or(u64::MAX);
        self.ledger_contributed.inc_by(delta(c, seen.0));
        self.ledger_withdrawn.inc_by(delta(w, seen.1));
        *seen = (seen.0.max(c), seen.1.max(w));
        // f64: exact below 2^53 minor units (90 trillion at two decimals).
        self.ledger_held.set(ledger.held_minor() as f64);
        self.ledger_conserved
            .set(i64::from(ledger.check_conserved().is_ok()));
    }

    /// Count one HTTP request (see [`HttpMetrics::observe`]).
    pub fn http_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.http.observe(route, method, status, seconds);
    }

    /// The storage health this origin's store reports to (readiness reads it too).
    pub fn storage(&self) -> &Arc<StorageHealth> {
        &self.storage
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        // Reads the free space into its gauge.
        self.storage.free_bytes();
        encode(&self.registry)
    }
}

#[cfg(test)]
mod tests;
