//! Assembling and running the servers: `sovereign tower serve`, `sovereign origin serve`
//! and `sovereign origin publish`.
//!
//! [`tower_parts`] / [`origin_parts`] build a node and its routers from a store and a
//! transport — the turmoil tests call them with an in-memory store and simulated TCP
//! ([`tower_parts_watched`] / [`origin_parts_watched`] also watch the data directory's
//! free space); every store call goes through an [`ObservedStore`] that feeds the
//! storage health (`/readyz`, `/admin/status`, the storage metrics);
//! [`run_tower`] / [`run_origin`] raise the open-file limit, open the real stores (SQLite
//! by default, PostgreSQL for the origin's records with `--postgres`), bind the public
//! and admin listeners (plain HTTP, or TLS with `--tls-cert/--tls-key` and
//! `--admin-tls-cert/--admin-tls-key`) and serve them with `listener::serve` under the
//! limits of [`ListenArgs`] until Ctrl-C, SIGTERM or the power manager's power-off.
//!
//! Trust between towers and the origin ([`crate::tower_auth`]): the origin keeps its
//! towers' credential digests in `DATA/towers.json` and refuses every tower call while
//! none is provisioned (unless `--allow-unauthenticated-towers`, logged at ERROR); a
//! tower reads its credential from `--credential FILE` (warning loudly without one).
//! [`run_add_tower`] / [`run_revoke_tower`] / [`run_rehome`] are the operator commands.
//!
//! Map: [`ListenArgs`], [`TowerArgs`], [`OriginArgs`], [`PublishArgs`], [`AddTowerArgs`],
//! [`RevokeTowerArgs`], [`RehomeArgs`], [`TowerParts`], [`OriginParts`], [`tower_parts`],
//! [`tower_parts_watched`], [`origin_parts`], [`origin_parts_watched`], [`run_tower`],
//! [`run_origin`], [`run_publish`], [`run_add_tower`], [`run_revoke_tower`],
//! [`run_rehome`].
//!
//! Not covered: daemonising (systemd's), certificate issuance and rotation.

use crate::admin::{self, AdminCtx};
use crate::api;
use crate::audit::AuditLog;
use crate::auth::Tokens;
use crate::cache::{CACHE_BYTES_DEFAULT, VerifiedCache};
use crate::events::EventStream;
use crate::limit::{KEYS_MAX_DEFAULT, KeyedLimiter};
use crate::listener::{Limits, RateLimits};
use crate::metrics::{OriginMetrics, TowerMetrics};
use crate::origin_node::{self, OriginHandle};
use crate::storage::{DiskWatch, FREE_MIN_MIB_DEFAULT, ObservedStore};
use crate::tls::TlsFiles;
use crate::tower_auth::TowerCredentials;
use crate::tower_node::{self, PowerSource, TowerCredential, TowerHandle, TowerNodeConfig};
use crate::transport::{HyperTransport, Request, Transport};
use anyhow::{Context, Result, anyhow, bail};
use axum::Router;
use sovereign_logic::content::Priority;
use sovereign_logic::origin::OriginConfig;
use sovereign_logic::protocol::{LinkKind, TowerId};
use sovereign_logic::tower::TowerConfig;
use sovereign_store::{Faults, FaultyStore, Store};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Admin tokens, by flag or environment.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TokenArgs {
    /// Token of the `viewer` role (read-only admin calls).
    #[arg(long, env = "SOVEREIGN_ADMIN_TOKEN_VIEWER", hide_env_values = true)]
    pub admin_token_viewer: Option<String>,
    /// Token of the `operator` role (publish, power overrides; includes viewer).
    #[arg(long, env = "SOVEREIGN_ADMIN_TOKEN_OPERATOR", hide_env_values = true)]
    pub admin_token_operator: Option<String>,
    /// Token of the `chaos` role (fault injection; includes viewer).
    #[arg(long, env = "SOVEREIGN_ADMIN_TOKEN_CHAOS", hide_env_values = true)]
    pub admin_token_chaos: Option<String>,
}

impl TokenArgs {
    fn tokens(&self) -> Result<Tokens> {
        Tokens::new(
            self.admin_token_viewer.clone(),
            self.admin_token_operator.clone(),
            self.admin_token_chaos.clone(),
        )
        .map_err(|e| anyhow!("{e}"))
    }
}

/// What both servers' listeners allow a client, and their TLS.
#[derive(clap::Args, Debug, Clone)]
pub struct ListenArgs {
    /// A request head (and a TLS handshake) must arrive within this many seconds, also on
    /// an idle keep-alive connection; else the connection is closed.
    #[arg(long, default_value_t = 10, value_name = "S",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout_s: u64,
    /// A request body must arrive within this many seconds of its head, plus one per MiB
    /// it has brought (408 after).
    #[arg(long, default_value_t = 60, value_name = "S",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout_s: u64,
    /// Most connections open on each listener; more are closed at once (503).
    #[arg(long, default_value_t = 1024, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub connections_max: u64,
    /// Most connections open from one client address on each listener; more are closed
    /// at once (429).
    #[arg(long, default_value_t = 64, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub connections_per_client_max: u64,
    /// TLS on the public listener: its PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS on the public listener: its PEM private key (with --tls-cert).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// TLS on the admin listener: its PEM certificate chain (with --admin-tls-key).
    #[arg(long, value_name = "FILE", requires = "admin_tls_key")]
    pub admin_tls_cert: Option<PathBuf>,
    /// TLS on the admin listener: its PEM private key (with --admin-tls-cert).
    #[arg(long, value_name = "FILE", requires = "admin_tls_cert")]
    pub admin_tls_key: Option<PathBuf>,
}

impl ListenArgs {
    /// The limits of one listener, with `rates` (public listeners only).
    fn limits(&self, rates: Option<RateLimits>) -> Limits {
        Limits {
            header_timeout: Duration::from_secs(self.header_timeout_s),
            body_timeout: Duration::from_secs(self.body_timeout_s),
            connections_max: self.connections_max as usize,
            connections_per_client_max: self.connections_per_client_max as usize,
            rates: rates.map(Arc::new),
            refusal_headers: Vec::new(),
        }
    }

    /// The public and the admin listener's TLS (`None`: plain HTTP).
    fn tls(
        &self,
    ) -> Result<(
        Option<tokio_rustls::TlsAcceptor>,
        Option<tokio_rustls::TlsAcceptor>,
    )> {
        let acceptor =
            |cert: &Option<PathBuf>, key: &Option<PathBuf>, flags: (&'static str, &'static str)| {
                match (cert, key) {
                    (Some(cert), Some(key)) => crate::tls::acceptor(&TlsFiles {
                        cert: cert.clone(),
                        key: key.clone(),
                        cert_flag: flags.0,
                        key_flag: flags.1,
                    })
                    .map(Some)
                    .map_err(anyhow::Error::from),
                    // clap makes each flag require the other.
                    _ => Ok(None),
                }
            };
        Ok((
            acceptor(&self.tls_cert, &self.tls_key, ("--tls-cert", "--tls-key"))?,
            acceptor(
                &self.admin_tls_cert,
                &self.admin_tls_key,
                ("--admin-tls-cert", "--admin-tls-key"),
            )?,
        ))
    }
}

/// A per-address rate: `rate` per second with bursts of `burst`; `None` when `rate` is 0.
fn limiter(rate_per_s: f64, burst: u32) -> Option<KeyedLimiter> {
    (rate_per_s > 0.0).then(|| KeyedLimiter::new(rate_per_s, burst.max(1), KEYS_MAX_DEFAULT))
}

fn rate(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .parse()
        .map_err(|_| format!("expected a number of requests per second, found {s:?}"))?;
    if !(0.0..=1_000_000.0).contains(&r) {
        return Err(format!("{r} is out of range; expected 0 (off) to 1000000"));
    }
    Ok(r)
}

/// `sovereign tower serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct TowerArgs {
    /// Data directory (SQLite database, chunk files, audit log).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Device API address.
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Admin API address (keep it on loopback or a management network).
    #[arg(long, default_value = "127.0.0.1:8180", value_name = "ADDR")]
    pub admin_listen: SocketAddr,
    /// This tower's number.
    #[arg(long, default_value_t = 1)]
    pub id: u32,
    /// An uplink to the origin: `fibre=URL`, `lte=URL` or `satellite=URL` (repeat).
    #[arg(long = "uplink", value_name = "KIND=URL", required = true, value_parser = parse_uplink)]
    pub uplinks: Vec<(LinkKind, String)>,
    /// Power telemetry: a JSON file the charge controller rewrites, or an http:// URL.
    #[arg(long, value_name = "FILE|URL")]
    pub power_telemetry: Option<PowerSource>,
    /// How often power telemetry is read, seconds.
    #[arg(long, default_value_t = 5)]
    pub power_interval_s: u64,
    /// How often the origin's catalog is polled, seconds.
    #[arg(long, default_value_t = 30)]
    pub catalog_interval_s: u64,
    /// Deadline of a request to the origin, seconds.
    #[arg(long, default_value_t = 20)]
    pub request_timeout_s: u64,
    /// Time between two probes of each uplink, seconds (1..=3600). A link goes down after
    /// 3 failed probes and is trusted again after 8 good ones.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub probe_interval_s: u64,
    /// Memory for verified content served to devices, MiB.
    #[arg(long, default_value_t = (CACHE_BYTES_DEFAULT / (1024 * 1024)) as u64)]
    pub cache_mib: u64,
    /// Below this much free space on the data directory's file system the tower is
    /// degraded (not ready), MiB; 0: no minimum.
    #[arg(long, default_value_t = FREE_MIN_MIB_DEFAULT)]
    pub storage_free_min_mib: u64,
    /// The tower's credential for the origin: a file holding the secret the origin issued
    /// (`sovereign origin add-tower`); keep it mode 0600. Re-read on `POST /admin/rehome`.
    #[arg(long, env = "SOVEREIGN_TOWER_CREDENTIAL_FILE", value_name = "FILE")]
    pub credential: Option<PathBuf>,
    /// Reads (GET, HEAD) per second from one client address on the device API; 0: no
    /// limit. Beyond it: 429 with Retry-After.
    #[arg(long, default_value = "50", value_name = "N", value_parser = rate)]
    pub read_rate_per_s: f64,
    /// Reads one client address may make at once before --read-rate-per-s applies.
    #[arg(long, default_value_t = 200, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub read_burst: u32,
    /// Operations (POST /v1/ops) per second from one client address; 0: no limit.
    #[arg(long, default_value = "10", value_name = "N", value_parser = rate)]
    pub ops_rate_per_s: f64,
    /// Operations one client address may send at once before --ops-rate-per-s applies.
    #[arg(long, default_value_t = 100, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub ops_burst: u32,
    /// Operations (POST /v1/ops) per second from one device identity, whatever address
    /// it uses; 0: no limit. Beyond it: 429 with Retry-After.
    #[arg(long, default_value = "2", value_name = "N", value_parser = rate)]
    pub device_ops_rate_per_s: f64,
    /// Operations one device may send at once before --device-ops-rate-per-s applies (a
    /// device flushing its offline outbox sends them back to back).
    #[arg(long, default_value_t = 50, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub device_ops_burst: u32,
    /// Trust only the CA certificates in this PEM file for https:// uplinks and power
    /// telemetry (default: the system's roots).
    #[arg(long, value_name = "FILE")]
    pub origin_ca: Option<PathBuf>,
    /// Listener limits and TLS.
    #[command(flatten)]
    pub net: ListenArgs,
    /// Admin tokens.
    #[command(flatten)]
    pub tokens: TokenArgs,
    /// Plant a bug (tests only): `skip-verify` serves stored bytes without checking them;
    /// `no-origin-check` syncs from whatever origin answers (no identity check);
    /// `no-failover` stays on the first uplink when it goes down; `no-failback` never
    /// returns to a more preferred uplink once it has left it; `ack-before-fsync`
    /// acknowledges a device's operation when it is written, before the fsync that makes
    /// it durable (a crash in between loses it); `ignore-battery` runs the tower on until
    /// its battery is empty (no load shedding, no clean shutdown). The real-process tests (and
    /// scripts/chaostoolkit.sh) use them to show that their checks can fail.
    #[arg(
        long,
        hide = true,
        value_parser = clap::builder::PossibleValuesParser::new(TOWER_PLANTS.map(|p| p.0))
    )]
    pub plant: Option<String>,
}

/// The tower's planted bugs (`tower serve --plant`): name, what it does (logged at
/// start), and the switch of the logic's configuration it turns off.
const TOWER_PLANTS: [Plant<TowerConfig>; 6] = [
    ("skip-verify", "stored bytes are served unverified", |t| {
        t.verify = false
    }),
    (
        "no-origin-check",
        "any origin at the uplinks' address is synced from",
        |t| t.check_origin = false,
    ),
    (
        "no-failover",
        "the tower stays on its first uplink when that link goes down",
        |t| t.failover = false,
    ),
    (
        "no-failback",
        "the tower never returns to a more preferred uplink once it has failed over",
        |t| t.failback = false,
    ),
    (
        "ack-before-fsync",
        "device operations are acknowledged before the fsync that makes them durable",
        |t| t.ack_after_fsync = false,
    ),
    (
        "ignore-battery",
        "the tower runs on until its battery is empty (no load shedding, no clean shutdown)",
        |t| t.power_managed = false,
    ),
];

fn parse_uplink(s: &str) -> Result<(LinkKind, String), String> {
    let (kind, url) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KIND=URL (e.g. fibre=http://origin:8090), found {s:?}"))?;
    let kind: LinkKind = kind.parse().map_err(|e| format!("{e}"))?;
    let url = url.trim_end_matches('/');
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(format!(
            "uplink URL must start with http:// or https://, found {url:?}"
        ));
    }
    url.parse::<hyper::Uri>()
        .map_err(|e| format!("uplink URL {url:?}: {e}"))?;
    Ok((kind, url.to_string()))
}

/// `sovereign origin serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct OriginArgs {
    /// Data directory (chunk files, SQLite database unless --postgres, audit log).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Tower-facing API address.
    #[arg(long, default_value = "0.0.0.0:8090", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Admin API address (publishing goes here).
    #[arg(long, default_value = "127.0.0.1:8190", value_name = "ADDR")]
    pub admin_listen: SocketAddr,
    /// Keep the catalog and the apply log (the ledger's source) in PostgreSQL instead of
    /// SQLite: a libpq connection string (`host=… user=… dbname=…`).
    #[arg(
        long,
        env = "SOVEREIGN_POSTGRES",
        value_name = "CONNINFO",
        hide_env_values = true
    )]
    pub postgres: Option<String>,
    /// Below this much free space on the data directory's file system the origin is
    /// degraded (not ready), MiB; 0: no minimum.
    #[arg(long, default_value_t = FREE_MIN_MIB_DEFAULT)]
    pub storage_free_min_mib: u64,
    /// Answer towers that present no credential, as the tower they claim to be (local
    /// experiments only: anyone who can reach the listener can then forward operations).
    /// A credential that is presented is still checked.
    #[arg(long)]
    pub allow_unauthenticated_towers: bool,
    /// Reads (GET, HEAD) per second from one client address on the tower API; 0 (the
    /// default): no limit, for a tower syncing fetches many chunks at once.
    #[arg(long, default_value = "0", value_name = "N", value_parser = rate)]
    pub read_rate_per_s: f64,
    /// Reads one client address may make at once before --read-rate-per-s applies.
    #[arg(long, default_value_t = 1000, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub read_burst: u32,
    /// Listener limits and TLS.
    #[command(flatten)]
    pub net: ListenArgs,
    /// Admin tokens.
    #[command(flatten)]
    pub tokens: TokenArgs,
    /// Plant a bug (tests only): `reply-before-fsync` answers a tower's forward batch
    /// before the commit that makes its applies durable (a storage failure in between
    /// loses operations the tower was told are applied). The lab's `--plant` uses it to
    /// show that the durability oracle catches it.
    #[arg(
        long,
        hide = true,
        value_parser = clap::builder::PossibleValuesParser::new(ORIGIN_PLANTS.map(|p| p.0))
    )]
    pub plant: Option<String>,
}

/// A planted bug: its name, what it does (logged at start), and the switch of the
/// logic's configuration `C` it turns off.
type Plant<C> = (&'static str, &'static str, fn(&mut C));

/// Switch on the planted bug `chosen` of `plants` in `config`, saying so loudly in the
/// log.
fn plant<C>(plants: &[Plant<C>], chosen: Option<&str>, config: &mut C) {
    if let Some((name, what, switch)) = plants.iter().find(|p| Some(p.0) == chosen) {
        tracing::error!("PLANTED BUG {name}: {what}");
        switch(config);
    }
}

/// The origin's planted bugs (`origin serve --plant`): name, what it does (logged at
/// start), and the switch of the logic's configuration it turns off.
const ORIGIN_PLANTS: [Plant<OriginConfig>; 1] = [(
    "reply-before-fsync",
    "forward batches are answered before the commit that makes their applies durable",
    |o| o.reply_after_fsync = false,
)];

/// `sovereign origin add-tower`: issue a tower's credential through the admin API.
#[derive(clap::Args, Debug, Clone)]
pub struct AddTowerArgs {
    /// The origin's admin URL.
    #[arg(long, default_value = "http://127.0.0.1:8190", value_name = "URL")]
    pub origin: String,
    /// The tower's number.
    #[arg(long)]
    pub tower: u32,
    /// Write the credential to FILE (mode 0600) instead of printing it.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// An operator token.
    #[arg(long, env = "SOVEREIGN_ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Trust only the CA certificates in this PEM file for an https:// admin URL (default:
    /// the system's roots).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

/// `sovereign origin revoke-tower`: revoke a tower's credential through the admin API.
#[derive(clap::Args, Debug, Clone)]
pub struct RevokeTowerArgs {
    /// The origin's admin URL.
    #[arg(long, default_value = "http://127.0.0.1:8190", value_name = "URL")]
    pub origin: String,
    /// The tower's number.
    #[arg(long)]
    pub tower: u32,
    /// An operator token.
    #[arg(long, env = "SOVEREIGN_ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Trust only the CA certificates in this PEM file for an https:// admin URL (default:
    /// the system's roots).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

/// `sovereign tower rehome`: order a re-home through the tower's admin API.
#[derive(clap::Args, Debug, Clone)]
pub struct RehomeArgs {
    /// The tower's admin URL.
    #[arg(long, default_value = "http://127.0.0.1:8180", value_name = "URL")]
    pub tower: String,
    /// An operator token.
    #[arg(long, env = "SOVEREIGN_ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Trust only the CA certificates in this PEM file for an https:// admin URL (default:
    /// the system's roots).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

/// `sovereign origin publish`.
#[derive(clap::Args, Debug, Clone)]
pub struct PublishArgs {
    /// The origin's admin URL.
    #[arg(long, default_value = "http://127.0.0.1:8190", value_name = "URL")]
    pub origin: String,
    /// The item's id.
    #[arg(long)]
    pub id: String,
    /// Its class.
    #[arg(long, value_parser = |s: &str| s.parse::<Priority>().map_err(|e| e.to_string()))]
    pub priority: Priority,
    /// The content.
    pub file: PathBuf,
    /// An operator token.
    #[arg(long, env = "SOVEREIGN_ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Trust only the CA certificates in this PEM file for an https:// --origin (default:
    /// the system's roots).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

/// Feeds the tower's metrics and drops quarantined chunks from the serving cache.
struct TowerObserver {
    metrics: Arc<TowerMetrics>,
    cache: Arc<VerifiedCache>,
    events: EventStream,
}

impl tower_node::Observer for TowerObserver {
    fn event(&self, event: &sovereign_logic::io::Event, tower: &sovereign_logic::tower::Tower) {
        if let sovereign_logic::io::Event::ChunkQuarantined { hash } = event {
            self.cache.remove(hash);
        }
        self.metrics.on_event_p0(event, tower.p0_waiting());
        self.metrics.set_status(&tower.status());
        self.events.publish(event);
    }
    fn power(&self, reading: &sovereign_logic::tower::power::PowerReading) {
        self.metrics.set_power(reading);
    }
    fn traffic(&self, link: LinkKind, bytes: u64) {
        self.metrics.link_traffic(link, bytes);
    }
    fn parked(&self, tasks: &[sovereign_logic::io::TaskKind]) {
        self.metrics.set_parked(tasks);
    }
    fn refused(&self, status: u16) {
        self.metrics.origin_refused(status);
    }
}

/// A tower node and its routers.
pub struct TowerParts {
    /// The node task.
    pub handle: TowerHandle,
    /// The device API.
    pub public: Router,
    /// The admin API.
    pub admin: Router,
    /// Its metrics.
    pub metrics: Arc<TowerMetrics>,
}

/// Build a tower: recover from `store`, start the node, make the routers. No data
/// directory is watched for free space (see [`tower_parts_watched`]).
pub fn tower_parts(
    config: TowerNodeConfig,
    store: Arc<dyn Store>,
    faults: Faults,
    transport: Arc<dyn Transport>,
    tokens: Tokens,
    audit: Arc<AuditLog>,
    cache_bytes: usize,
) -> Result<TowerParts> {
    tower_parts_watched(
        config,
        store,
        faults,
        transport,
        tokens,
        audit,
        cache_bytes,
        DiskWatch::default(),
    )
}

/// [`tower_parts`] for a store in the directory `watch` names: its free space is
/// reported and judged against the minimum.
#[allow(clippy::too_many_arguments)]
pub fn tower_parts_watched(
    config: TowerNodeConfig,
    store: Arc<dyn Store>,
    faults: Faults,
    transport: Arc<dyn Transport>,
    tokens: Tokens,
    audit: Arc<AuditLog>,
    cache_bytes: usize,
    watch: DiskWatch,
) -> Result<TowerParts> {
    let name = config.tower.id.to_string();
    let verify = config.tower.verify;
    let metrics = Arc::new(TowerMetrics::with_storage(&name, watch));
    let store: Arc<dyn Store> = Arc::new(ObservedStore::new(store, metrics.storage().clone()));
    metrics.set_links(&config.uplinks.keys().copied().collect::<Vec<_>>());
    let cache = Arc::new(VerifiedCache::new(cache_bytes));
    let events = EventStream::new(&name);
    let observer = Arc::new(TowerObserver {
        metrics: metrics.clone(),
        cache: cache.clone(),
        events: events.clone(),
    });
    let handle = tower_node::spawn(config, store.clone(), transport, observer)
        .context("recovering the tower from its store")?;
    let api = Arc::new(api::tower::TowerApi {
        node: handle.clone(),
        store,
        cache: cache.clone(),
        name,
        verify,
        metrics: metrics.clone(),
        openapi: crate::openapi::serialized(&crate::openapi::tower_openapi()),
        whole_checked: Default::default(),
        large_judges: tokio::sync::Semaphore::new(api::tower::LARGE_JUDGES_MAX),
    });
    let public = api::tower::router(api);
    let admin = admin::tower_router(
        AdminCtx {
            tokens,
            audit,
            faults,
            on_fault: {
                let cache = cache.clone();
                Arc::new(move || cache.clear())
            },
            storage: metrics.storage().clone(),
            events,
        },
        handle.clone(),
    );
    Ok(TowerParts {
        handle,
        public,
        admin,
        metrics,
    })
}

/// An origin node and its routers.
pub struct OriginParts {
    /// The node task.
    pub handle: OriginHandle,
    /// The tower-facing API.
    pub public: Router,
    /// The admin API.
    pub admin: Router,
}

/// Build an origin: recover from `store`, start the node, make the routers. The logic
/// answers the towers holding a credential in `credentials` (any tower with
/// `--allow-unauthenticated-towers`), whatever `config.towers` says. No data directory is
/// watched for free space (see [`origin_parts_watched`]).
pub fn origin_parts(
    config: OriginConfig,
    store: Arc<dyn Store>,
    faults: Faults,
    tokens: Tokens,
    audit: Arc<AuditLog>,
    credentials: TowerCredentials,
) -> Result<OriginParts> {
    origin_parts_watched(
        config,
        store,
        faults,
        tokens,
        audit,
        credentials,
        DiskWatch::default(),
    )
}

/// [`origin_parts`] for a store in the directory `watch` names.
pub fn origin_parts_watched(
    mut config: OriginConfig,
    store: Arc<dyn Store>,
    faults: Faults,
    tokens: Tokens,
    audit: Arc<AuditLog>,
    credentials: TowerCredentials,
    watch: DiskWatch,
) -> Result<OriginParts> {
    config.towers = admin::known_towers(&credentials);
    let metrics = Arc::new(OriginMetrics::with_storage(watch));
    let store: Arc<dyn Store> = Arc::new(ObservedStore::new(store, metrics.storage().clone()));
    let events = EventStream::new("origin");
    let sink = {
        let m = metrics.clone();
        let events = events.clone();
        Arc::new(
            move |e: &sovereign_logic::io::Event, o: &sovereign_logic::origin::Origin| {
                m.on_event(e);
                m.set_ledger(o.ledger());
                m.set_catalog(o.catalog_len() as u64);
                events.publish(e);
            },
        )
    };
    let handle =
        origin_node::spawn(config, store, sink).context("recovering the origin from its store")?;
    metrics.set_towers(
        credentials.towers().len(),
        credentials.allows_unauthenticated(),
    );
    let api = Arc::new(api::origin::OriginApi {
        node: handle.clone(),
        metrics: metrics.clone(),
        openapi: crate::openapi::serialized(&crate::openapi::origin_openapi()),
        credentials: credentials.clone(),
        identity: handle.identity(),
    });
    let public = api::origin::router(api);
    let admin = admin::origin_router(
        AdminCtx {
            tokens,
            audit,
            faults,
            on_fault: Arc::new(|| {}),
            storage: metrics.storage().clone(),
            events,
        },
        handle.clone(),
        metrics,
        credentials,
    );
    Ok(OriginParts {
        handle,
        public,
        admin,
    })
}

/// A seed for the logic's jitter, drawn once from the OS's clock (the logic itself never
/// reads one).
fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id()) << 32
}

async fn bind(addr: SocketAddr, what: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {what} listener on {addr}"))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// One listener to serve: its socket, router, TLS (`None`: plain HTTP) and limits.
struct Served {
    what: &'static str,
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
}

/// Serve `public` and `admin` until `stop` resolves.
async fn serve_both(
    public: Served,
    admin: Served,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let serve = |s: Served, rx| async move {
        crate::listener::serve(s.listener, s.router, s.tls, s.limits, wait(rx))
            .await
            .with_context(|| s.what)
    };
    let p = serve(public, rx.clone());
    let a = serve(admin, rx);
    let stopper = tokio::spawn(async move {
        stop.await;
        let _ = tx.send(true);
    });
    let (p, a) = tokio::join!(p, a);
    stopper.abort();
    p?;
    a?;
    Ok(())
}

/// Open files a server keeps besides its connections: the store, chunk files, uplinks,
/// logs.
const FILES_RESERVED: u64 = 256;

/// Raise the open-file limit to the hard limit and log it; when the two listeners'
/// `--connections-max` does not fit in it (with [`FILES_RESERVED`]), lower it to what
/// fits, so that the server refuses connections instead of running out of descriptors.
fn raise_file_limit(listen: &mut ListenArgs) {
    let needed = 2 * listen.connections_max + FILES_RESERVED;
    match crate::listener::raise_nofile_limit() {
        Ok(Some(limit)) => {
            tracing::info!(
                open_files_max = limit,
                "open-file limit raised to the hard limit"
            );
            if limit < needed {
                let fits = (limit.saturating_sub(FILES_RESERVED) / 2).max(1);
                tracing::warn!(
                    open_files_max = limit,
                    connections_max = listen.connections_max,
                    lowered_to = fits,
                    "--connections-max does not fit in the open-file limit (2 listeners + {FILES_RESERVED} files); lowered; raise the hard limit (ulimit -Hn) to allow more"
                );
                listen.connections_max = fits;
                listen.connections_per_client_max = listen.connections_per_client_max.min(fits);
            }
        }
        Ok(None) => tracing::info!("open-file limit: unlimited"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
}

/// "TLS" or "plain HTTP", for the start-up log.
fn scheme(tls: &Option<tokio_rustls::TlsAcceptor>) -> &'static str {
    if tls.is_some() {
        "https (TLS)"
    } else {
        "http (plain)"
    }
}

fn prepare_data(dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// `sovereign tower serve`.
pub async fn run_tower(mut args: TowerArgs) -> Result<()> {
    raise_file_limit(&mut args.net);
    prepare_data(&args.data)?;
    let tokens = args.tokens.tokens()?;
    let (public_tls, admin_tls) = args.net.tls()?;
    let https_used = args.uplinks.iter().any(|(_, u)| u.starts_with("https://"))
        || matches!(&args.power_telemetry, Some(PowerSource::Url(u)) if u.starts_with("https://"));
    let client_tls =
        crate::tls::client_config(args.origin_ca.as_deref(), "--origin-ca", https_used)?;
    let mut uplinks = BTreeMap::new();
    for (kind, url) in &args.uplinks {
        if uplinks.insert(*kind, url.clone()).is_some() {
            bail!("--uplink {kind}=… given twice");
        }
    }
    let mut tower = TowerConfig::new(
        TowerId(args.id),
        &uplinks.keys().copied().collect::<Vec<_>>(),
    );
    tower.catalog_interval = Duration::from_secs(args.catalog_interval_s.max(1));
    tower.request_timeout = Duration::from_secs(args.request_timeout_s.max(1));
    tower.probe.interval = Duration::from_secs(args.probe_interval_s);
    tower.probe_satellite.interval = Duration::from_secs(args.probe_interval_s);
    plant(&TOWER_PLANTS, args.plant.as_deref(), &mut tower);
    let credential = match &args.credential {
        Some(path) => Some(
            TowerCredential::from_file(path.clone())
                .with_context(|| format!("reading the tower credential {}", path.display()))?,
        ),
        None => {
            tracing::warn!(
                "no --credential: the origin will refuse this tower's catalog, chunk and forward requests (it still serves devices what it holds); issue one with `sovereign origin add-tower --tower {} --out FILE`",
                args.id
            );
            None
        }
    };
    let config = TowerNodeConfig {
        tower,
        uplinks,
        power: args.power_telemetry.clone(),
        power_interval: Duration::from_secs(args.power_interval_s.max(1)),
        seed: seed(),
        credential,
    };
    let faults = Faults::default();
    let sqlite = sovereign_store::SqliteStore::open(&args.data)
        .with_context(|| format!("opening the store in {}", args.data.display()))?;
    let store: Arc<dyn Store> = Arc::new(FaultyStore::new(sqlite, faults.clone()));
    let audit = Arc::new(AuditLog::open(args.data.join("audit.jsonl"))?);
    let transport: Arc<dyn Transport> = Arc::new(HyperTransport::tcp_tls(client_tls));
    let watch = DiskWatch {
        dir: Some(args.data.clone()),
        free_min_bytes: args.storage_free_min_mib.saturating_mul(1024 * 1024),
    };
    let parts = tower_parts_watched(
        config,
        store,
        faults,
        transport,
        tokens,
        audit,
        (args.cache_mib as usize).saturating_mul(1024 * 1024),
        watch,
    )?;
    let public = bind(args.listen, "device API").await?;
    let admin = bind(args.admin_listen, "admin API").await?;
    tracing::info!(
        listen = %public.local_addr()?,
        listen_scheme = scheme(&public_tls),
        admin = %admin.local_addr()?,
        admin_scheme = scheme(&admin_tls),
        header_timeout_s = args.net.header_timeout_s,
        body_timeout_s = args.net.body_timeout_s,
        connections_max = args.net.connections_max,
        connections_per_client_max = args.net.connections_per_client_max,
        read_rate_per_s = args.read_rate_per_s,
        ops_rate_per_s = args.ops_rate_per_s,
        device_ops_rate_per_s = args.device_ops_rate_per_s,
        "tower {} serving",
        args.id
    );
    let rates = RateLimits {
        reads: limiter(args.read_rate_per_s, args.read_burst),
        ops: limiter(args.ops_rate_per_s, args.ops_burst),
        device_ops: limiter(args.device_ops_rate_per_s, args.device_ops_burst),
    };
    let public = Served {
        what: "device API",
        listener: public,
        router: parts.public,
        tls: public_tls,
        limits: args.net.limits(Some(rates)),
    };
    let admin = Served {
        what: "admin API",
        listener: admin,
        router: parts.admin,
        tls: admin_tls,
        limits: args.net.limits(None),
    };
    let handle = parts.handle.clone();
    let stop = async move {
        tokio::select! {
            () = shutdown_signal() => tracing::info!("signal: shutting down"),
            clean = handle.powered_off() => tracing::warn!(clean, "powered off by the power manager"),
        }
    };
    serve_both(public, admin, stop).await
}

/// `sovereign origin serve`.
pub async fn run_origin(mut args: OriginArgs) -> Result<()> {
    raise_file_limit(&mut args.net);
    prepare_data(&args.data)?;
    let tokens = args.tokens.tokens()?;
    let (public_tls, admin_tls) = args.net.tls()?;
    let faults = Faults::default();
    let store: Arc<dyn Store> = match &args.postgres {
        Some(conninfo) => {
            let pg = sovereign_store::PgStore::connect(conninfo, &args.data)
                .context("connecting to PostgreSQL")?;
            Arc::new(FaultyStore::new(pg, faults.clone()))
        }
        None => {
            let sqlite = sovereign_store::SqliteStore::open(&args.data)
                .with_context(|| format!("opening the store in {}", args.data.display()))?;
            Arc::new(FaultyStore::new(sqlite, faults.clone()))
        }
    };
    let audit = Arc::new(AuditLog::open(args.data.join("audit.jsonl"))?);
    let watch = DiskWatch {
        dir: Some(args.data.clone()),
        free_min_bytes: args.storage_free_min_mib.saturating_mul(1024 * 1024),
    };
    let credentials = TowerCredentials::open(
        args.data.join("towers.json"),
        args.allow_unauthenticated_towers,
    )
    .context("reading the tower credentials")?;
    if args.allow_unauthenticated_towers {
        tracing::error!(
            "--allow-unauthenticated-towers: anyone who reaches the tower API can read the catalog and forward operations as any tower; for local experiments only"
        );
    } else if credentials.towers().is_empty() {
        tracing::warn!(
            "no tower credential provisioned: every tower is refused until one is issued (`sovereign origin add-tower --tower N`, or POST /admin/towers/N)"
        );
    } else {
        tracing::info!(towers = ?credentials.towers().iter().map(|t| t.0).collect::<Vec<_>>(), "towers with a credential");
    }
    let mut config = OriginConfig::default();
    plant(&ORIGIN_PLANTS, args.plant.as_deref(), &mut config);
    let parts = origin_parts_watched(config, store, faults, tokens, audit, credentials, watch)?;
    let public = bind(args.listen, "tower API").await?;
    let admin = bind(args.admin_listen, "admin API").await?;
    tracing::info!(
        listen = %public.local_addr()?,
        listen_scheme = scheme(&public_tls),
        admin = %admin.local_addr()?,
        admin_scheme = scheme(&admin_tls),
        header_timeout_s = args.net.header_timeout_s,
        body_timeout_s = args.net.body_timeout_s,
        connections_max = args.net.connections_max,
        connections_per_client_max = args.net.connections_per_client_max,
        read_rate_per_s = args.read_rate_per_s,
        backend = if args.postgres.is_some() { "postgres" } else { "sqlite" },
        origin = %parts.handle.identity(),
        "origin serving"
    );
    let rates = RateLimits {
        reads: limiter(args.read_rate_per_s, args.read_burst),
        ops: None,
        device_ops: None,
    };
    let mut limits = args.net.limits(Some(rates));
    // A tower refused for its connections still learns it was its origin that refused.
    limits.refusal_headers = vec![(
        crate::tower_auth::ORIGIN_HEADER.to_string(),
        parts.handle.identity().to_string(),
    )];
    let public = Served {
        what: "tower API",
        listener: public,
        router: parts.public,
        tls: public_tls,
        limits,
    };
    let admin = Served {
        what: "admin API",
        listener: admin,
        router: parts.admin,
        tls: admin_tls,
        limits: args.net.limits(None),
    };
    serve_both(public, admin, shutdown_signal()).await
}

/// How much of FILE `sovereign origin publish` reads at a time: each piece is sent as it
/// is read, so the command holds about this much of the content, not all of it.
const PUBLISH_READ_BYTES: usize = 1 << 20;

/// `sovereign origin publish`: send FILE to the origin's admin API, streamed as it is read;
/// print the new catalog entry, its chunks counted rather than listed.
pub async fn run_publish(args: PublishArgs) -> Result<()> {
    let cap = sovereign_logic::origin::ITEM_BYTES_MAX as u64;
    let name = args.file.display().to_string();
    let file = tokio::fs::File::open(&args.file)
        .await
        .with_context(|| format!("{name}: cannot open the content to publish (FILE)"))?;
    let meta = (file.metadata().await)
        .with_context(|| format!("{name}: cannot read the content to publish (FILE)"))?;
    if meta.is_dir() {
        bail!("{name}: a directory, not the content to publish (FILE)");
    }
    // A regular file's length is known: refuse before sending anything. Others (a pipe)
    // are counted as they are read.
    if meta.is_file() && meta.len() > cap {
        bail!(
            "{name}: {} bytes, over the {cap} bytes an origin takes in one publish",
            meta.len()
        );
    }
    let tls = crate::tls::client_config(
        args.ca.as_deref(),
        "--ca",
        args.origin.starts_with("https://"),
    )?;
    let base = args.origin.trim_end_matches('/');
    let url = format!(
        "{base}/admin/publish?item={}&priority={}",
        percent_encode(&args.id),
        args.priority
    );
    let auth = hyper::http::HeaderValue::from_str(&format!("Bearer {}", args.token))
        .map_err(|_| anyhow!("the token contains characters a header cannot carry"))?;
    // Two minutes for the answer, and a second per MiB to send (1 MiB/s at least, what
    // the origin's listener allows too); from a pipe, the length is not known: as long as
    // the largest item takes.
    let len = if meta.is_file() { meta.len() } else { cap };
    let timeout = Duration::from_secs(120 + len / (1 << 20));
    let mut req = Request::get(url, timeout)
        .header(hyper::http::header::AUTHORIZATION, auth)
        .header(
            hyper::http::header::CONTENT_TYPE,
            hyper::http::HeaderValue::from_static("application/octet-stream"),
        );
    req.method = hyper::http::Method::POST;
    let resp = crate::transport::send_streamed(&tls, req, file_body(file, name.clone(), cap))
        .await
        .with_context(|| format!("publishing {name}"))?;
    let body = String::from_utf8_lossy(&resp.body);
    if !resp.status.is_success() {
        bail!("the origin answered {}: {}", resp.status, body.trim());
    }
    // The catalog entry without its chunk list (a GiB's is ~12 MB of JSON, ten times that
    // as a JSON tree): the list is `GET /v1/items/{id}/manifest` at a tower.
    #[derive(serde::Deserialize)]
    struct Entry {
        seq: u64,
        manifest: Manifest,
    }
    #[derive(serde::Deserialize)]
    struct Manifest {
        item: String,
        version: u64,
        priority: String,
        size: u64,
        sha256: String,
        chunks: Vec<serde::de::IgnoredAny>,
    }
    let Entry { seq, manifest: m } = serde_json::from_slice(&resp.body).with_context(|| {
        format!(
            "the origin's answer is not a catalog entry: {}",
            body.trim()
        )
    })?;
    let summary = serde_json::json!({
        "seq": seq,
        "item": m.item,
        "version": m.version,
        "priority": m.priority,
        "size": m.size,
        "sha256": m.sha256,
        "chunks": m.chunks.len(),
    });
    println!("{summary}");
    Ok(())
}

/// `file`'s bytes from where it stands, [`PUBLISH_READ_BYTES`] at a time; a read error,
/// or more than `cap` bytes in all, ends it with an error naming `name`.
fn file_body(file: tokio::fs::File, name: String, cap: u64) -> crate::transport::StreamedBody {
    use tokio::io::AsyncReadExt;
    let pieces = futures_util::stream::unfold((Some(file), 0u64), move |(file, sent)| {
        let name = name.clone();
        async move {
            let mut file = file?;
            let mut buf = bytes::BytesMut::with_capacity(PUBLISH_READ_BYTES);
            let (piece, next) = match file.read_buf(&mut buf).await {
                Ok(0) => return None,
                Ok(n) if sent + n as u64 > cap => (
                    Err(std::io::Error::other(format!(
                        "{name}: more than the {cap} bytes an origin takes in one publish"
                    ))),
                    (None, sent),
                ),
                Ok(n) => (
                    Ok(hyper::body::Frame::data(buf.freeze())),
                    (Some(file), sent + n as u64),
                ),
                Err(e) => (
                    Err(std::io::Error::new(
                        e.kind(),
                        format!("{name}: reading the content to publish: {e}"),
                    )),
                    (None, sent),
                ),
            };
            Some((piece, next))
        }
    });
    http_body_util::StreamBody::new(Box::pin(pieces))
}

/// Send an admin request with an operator token; the JSON answer, or the error.
async fn admin_call(
    method: hyper::http::Method,
    url: String,
    token: &str,
    ca: Option<&Path>,
) -> Result<serde_json::Value> {
    let tls = crate::tls::client_config(ca, "--ca", url.starts_with("https://"))?;
    let transport = HyperTransport::tcp_tls(tls);
    let auth = hyper::http::HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| anyhow!("the token contains characters a header cannot carry"))?;
    let mut req =
        Request::get(url, Duration::from_secs(30)).header(hyper::http::header::AUTHORIZATION, auth);
    req.method = method;
    let resp = transport.send(req).await?;
    let body = String::from_utf8_lossy(&resp.body);
    if !resp.status.is_success() {
        bail!("answered {}: {}", resp.status, body.trim());
    }
    serde_json::from_slice(&resp.body).with_context(|| format!("not JSON: {}", body.trim()))
}

/// `sovereign origin add-tower`: issue tower N's credential; write it to `--out` (mode
/// 0600) or print it. It is shown once: the origin keeps only its SHA-256.
pub async fn run_add_tower(args: AddTowerArgs) -> Result<()> {
    let base = args.origin.trim_end_matches('/');
    let v = admin_call(
        hyper::http::Method::POST,
        format!("{base}/admin/towers/{}", args.tower),
        &args.token,
        args.ca.as_deref(),
    )
    .await
    .context("issuing the credential")?;
    let credential = v["credential"]
        .as_str()
        .ok_or_else(|| anyhow!("the origin's answer has no credential: {v}"))?;
    let id = v["credential_id"].as_str().unwrap_or("?");
    match &args.out {
        Some(path) => {
            crate::tower_auth::write_credential_file(path, credential)
                .map_err(|e| anyhow!("{e}"))?;
            eprintln!(
                "tower-{} credential {id} written to {} (mode 0600){}",
                args.tower,
                path.display(),
                if v["replaced"].as_bool() == Some(true) {
                    "; the previous credential no longer works"
                } else {
                    ""
                }
            );
        }
        None => println!("{credential}"),
    }
    Ok(())
}

/// `sovereign origin revoke-tower`.
pub async fn run_revoke_tower(args: RevokeTowerArgs) -> Result<()> {
    let base = args.origin.trim_end_matches('/');
    admin_call(
        hyper::http::Method::DELETE,
        format!("{base}/admin/towers/{}", args.tower),
        &args.token,
        args.ca.as_deref(),
    )
    .await
    .context("revoking the credential")?;
    eprintln!("tower-{} credential revoked", args.tower);
    Ok(())
}

/// `sovereign tower rehome`.
pub async fn run_rehome(args: RehomeArgs) -> Result<()> {
    let base = args.tower.trim_end_matches('/');
    let v = admin_call(
        hyper::http::Method::POST,
        format!("{base}/admin/rehome"),
        &args.token,
        args.ca.as_deref(),
    )
    .await
    .context("ordering the re-home")?;
    println!("{v}");
    Ok(())
}

/// Percent-encode a query value (RFC 3986 unreserved characters pass).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
