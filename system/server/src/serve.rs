//! Assembling and running the servers: `sovereign tower serve`, `sovereign origin serve`
//! and `sovereign origin publish`.
//!
//! [`tower_parts`] / [`origin_parts`] build a node and its routers from a store and a
//! transport — the turmoil tests call them with an in-memory store and simulated TCP
//! ([`tower_parts_watched`] / [`origin_parts_watched`] also watch the data directory's
//! free space); every store call goes through an [`ObservedStore`] that feeds the
//! storage health (`/readyz`, `/admin/status`, the storage metrics);
//! [`run_tower`] / [`run_origin`] open the real stores (SQLite by default, PostgreSQL
//! for the origin's records with `--postgres`), bind the public and admin listeners and
//! serve until Ctrl-C, SIGTERM or the power manager's power-off.
//!
//! Trust between towers and the origin ([`crate::tower_auth`]): the origin keeps its
//! towers' credential digests in `DATA/towers.json` and refuses every tower call while
//! none is provisioned (unless `--allow-unauthenticated-towers`, logged at ERROR); a
//! tower reads its credential from `--credential FILE` (warning loudly without one).
//! [`run_add_tower`] / [`run_revoke_tower`] / [`run_rehome`] are the operator commands.
//!
//! Map: [`TowerArgs`], [`OriginArgs`], [`PublishArgs`], [`AddTowerArgs`],
//! [`RevokeTowerArgs`], [`RehomeArgs`], [`TowerParts`], [`OriginParts`], [`tower_parts`],
//! [`tower_parts_watched`], [`origin_parts`], [`origin_parts_watched`], [`run_tower`],
//! [`run_origin`], [`run_publish`], [`run_add_tower`], [`run_revoke_tower`],
//! [`run_rehome`].
//!
//! Not covered: TLS termination (a reverse proxy's job), daemonising (systemd's).

use crate::admin::{self, AdminCtx};
use crate::api;
use crate::audit::AuditLog;
use crate::auth::Tokens;
use crate::cache::{CACHE_BYTES_DEFAULT, VerifiedCache};
use crate::metrics::{OriginMetrics, TowerMetrics};
use crate::origin_node::{self, OriginHandle};
use crate::storage::{DiskWatch, FREE_MIN_MIB_DEFAULT, ObservedStore};
use crate::tower_auth::TowerCredentials;
use crate::tower_node::{self, PowerSource, TowerCredential, TowerHandle, TowerNodeConfig};
use crate::transport::{HyperTransport, Request, Transport};
use anyhow::{Context, Result, anyhow, bail};
use axum::Router;
use axum::serve::ListenerExt;
use sovereign_logic::content::Priority;
use sovereign_logic::origin::OriginConfig;
use sovereign_logic::protocol::{LinkKind, TowerId};
use sovereign_logic::tower::TowerConfig;
use sovereign_store::{Faults, FaultyStore, Store};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
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
    /// Admin tokens.
    #[command(flatten)]
    pub tokens: TokenArgs,
    /// Plant a bug (tests only): `skip-verify` serves stored bytes without checking them;
    /// `no-origin-check` syncs from whatever origin answers (no identity check). The
    /// real-process tests use them to show that their checks can fail.
    #[arg(long, hide = true, value_parser = ["skip-verify", "no-origin-check"])]
    pub plant: Option<String>,
}

fn parse_uplink(s: &str) -> Result<(LinkKind, String), String> {
    let (kind, url) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KIND=URL (e.g. fibre=http://origin:8090), found {s:?}"))?;
    let kind: LinkKind = kind.parse().map_err(|e| format!("{e}"))?;
    let url = url.trim_end_matches('/');
    if !url.starts_with("http://") {
        return Err(format!("uplink URL must start with http://, found {url:?}"));
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
    /// Admin tokens.
    #[command(flatten)]
    pub tokens: TokenArgs,
}

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
}

/// Feeds the tower's metrics and drops quarantined chunks from the serving cache.
struct TowerObserver {
    metrics: Arc<TowerMetrics>,
    cache: Arc<VerifiedCache>,
}

impl tower_node::Observer for TowerObserver {
    fn event(&self, event: &sovereign_logic::io::Event, tower: &sovereign_logic::tower::Tower) {
        if let sovereign_logic::io::Event::ChunkQuarantined { hash } = event {
            self.cache.remove(hash);
        }
        self.metrics.on_event_p0(event, tower.p0_waiting());
        self.metrics.set_status(&tower.status());
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
    let observer = Arc::new(TowerObserver {
        metrics: metrics.clone(),
        cache: cache.clone(),
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
        openapi: Arc::new(crate::openapi::tower_openapi()),
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
    let sink = {
        let m = metrics.clone();
        Arc::new(
            move |e: &sovereign_logic::io::Event, o: &sovereign_logic::origin::Origin| {
                m.on_event(e);
                m.set_ledger(o.ledger());
                m.set_catalog(o.catalog().len() as u64);
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
        openapi: Arc::new(crate::openapi::origin_openapi()),
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

/// Serve `public` and `admin` until `stop` resolves.
async fn serve_both(
    public: (tokio::net::TcpListener, Router),
    admin: (tokio::net::TcpListener, Router),
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    // TCP_NODELAY on every accepted connection, as nginx does on keep-alive connections:
    // a response's last segment must not wait for the peer's delayed ACK.
    let nodelay = |s: &mut tokio::net::TcpStream| {
        if let Err(e) = s.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    };
    let p =
        axum::serve(public.0.tap_io(nodelay), public.1).with_graceful_shutdown(wait(rx.clone()));
    let a = axum::serve(admin.0.tap_io(nodelay), admin.1).with_graceful_shutdown(wait(rx));
    let stopper = tokio::spawn(async move {
        stop.await;
        let _ = tx.send(true);
    });
    let (p, a) = tokio::join!(p, a);
    stopper.abort();
    p.context("device API")?;
    a.context("admin API")?;
    Ok(())
}

fn prepare_data(dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// `sovereign tower serve`.
pub async fn run_tower(args: TowerArgs) -> Result<()> {
    prepare_data(&args.data)?;
    let tokens = args.tokens.tokens()?;
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
    if args.plant.as_deref() == Some("skip-verify") {
        tracing::error!("PLANTED BUG skip-verify: stored bytes are served unverified");
        tower.verify = false;
    }
    if args.plant.as_deref() == Some("no-origin-check") {
        tracing::error!(
            "PLANTED BUG no-origin-check: any origin at the uplinks' address is synced from"
        );
        tower.check_origin = false;
    }
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
    let transport: Arc<dyn Transport> = Arc::new(HyperTransport::tcp());
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
        admin = %admin.local_addr()?,
        "tower {} serving",
        args.id
    );
    let handle = parts.handle.clone();
    let stop = async move {
        tokio::select! {
            () = shutdown_signal() => tracing::info!("signal: shutting down"),
            clean = handle.powered_off() => tracing::warn!(clean, "powered off by the power manager"),
        }
    };
    serve_both((public, parts.public), (admin, parts.admin), stop).await
}

/// `sovereign origin serve`.
pub async fn run_origin(args: OriginArgs) -> Result<()> {
    prepare_data(&args.data)?;
    let tokens = args.tokens.tokens()?;
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
    let parts = origin_parts_watched(
        OriginConfig::default(),
        store,
        faults,
        tokens,
        audit,
        credentials,
        watch,
    )?;
    let public = bind(args.listen, "tower API").await?;
    let admin = bind(args.admin_listen, "admin API").await?;
    tracing::info!(
        listen = %public.local_addr()?,
        admin = %admin.local_addr()?,
        backend = if args.postgres.is_some() { "postgres" } else { "sqlite" },
        origin = %parts.handle.identity(),
        "origin serving"
    );
    serve_both(
        (public, parts.public),
        (admin, parts.admin),
        shutdown_signal(),
    )
    .await
}

/// `sovereign origin publish`: send FILE to the origin's admin API.
pub async fn run_publish(args: PublishArgs) -> Result<()> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let transport = HyperTransport::tcp();
    let base = args.origin.trim_end_matches('/');
    let url = format!(
        "{base}/admin/publish?item={}&priority={}",
        percent_encode(&args.id),
        args.priority
    );
    let auth = hyper::http::HeaderValue::from_str(&format!("Bearer {}", args.token))
        .map_err(|_| anyhow!("the token contains characters a header cannot carry"))?;
    let mut req = Request::get(url, Duration::from_secs(120))
        .header(hyper::http::header::AUTHORIZATION, auth)
        .header(
            hyper::http::header::CONTENT_TYPE,
            hyper::http::HeaderValue::from_static("application/octet-stream"),
        );
    req.method = hyper::http::Method::POST;
    req.body = bytes.into();
    let resp = transport.send(req).await?;
    let body = String::from_utf8_lossy(&resp.body);
    if !resp.status.is_success() {
        bail!("the origin answered {}: {}", resp.status, body.trim());
    }
    println!("{}", body.trim());
    Ok(())
}

/// Send an admin request with an operator token; the JSON answer, or the error.
async fn admin_call(
    method: hyper::http::Method,
    url: String,
    token: &str,
) -> Result<serde_json::Value> {
    let transport = HyperTransport::tcp();
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
