//! The proxies: their configuration, listeners, connections, toxic chains and counters,
//! and every operation the API offers on them (without HTTP).
//!
//! Map: [`Registry`] holds the proxies by name behind one async lock (changes are rare
//! and serialised); each [`Proxy`] owns its accept loop (a task whose `JoinSet` owns the
//! connections, so stopping the loop closes them all) and one `watch` channel per stream
//! carrying the current toxic chain to the live connections (`pump`). Every change is
//! validated in full before anything is touched, and logged as an audit line
//! (`target: "audit"`).
//!
//! Not here: routing, auth and JSON errors (`api`), the byte pipeline (`pump`).

use crate::pump::{self, Active, Chain, Links};
use crate::toxic::{Stream, Toxic, check_name};
use crate::{ApiError, Limits};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Mutex, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{info, warn};

/// How long dialling the upstream may take before the client's connection is closed.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// A proxy's counters (read by `/metrics`).
#[derive(Default)]
struct Counters {
    bytes_up: Arc<AtomicU64>,
    bytes_down: Arc<AtomicU64>,
    connections: AtomicU64,
    active: AtomicU64,
    refused: AtomicU64,
}

/// A proxy as a client configures it.
#[derive(Clone, Debug, PartialEq)]
struct Spec {
    name: String,
    listen: String,
    upstream: String,
    enabled: bool,
    seed: Option<u64>,
}

struct Proxy {
    spec: Spec,
    /// The seed its connections draw from (`seed`, or derived from the server's seed and
    /// the name).
    seed: u64,
    toxics: Vec<Active>,
    upstream_chain: watch::Sender<Chain>,
    downstream_chain: watch::Sender<Chain>,
    accept: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl Proxy {
    fn to_json(&self) -> Value {
        json!({
            "name": self.spec.name,
            "listen": self.spec.listen,
            "upstream": self.spec.upstream,
            "enabled": self.spec.enabled,
            "toxics": self.toxics.iter().map(|a| a.toxic.to_json()).collect::<Vec<_>>(),
            "seed": self.seed,
        })
    }

    fn publish(&self) {
        for (stream, tx) in [
            (Stream::Upstream, &self.upstream_chain),
            (Stream::Downstream, &self.downstream_chain),
        ] {
            let chain: Vec<Active> = self
                .toxics
                .iter()
                .filter(|a| a.toxic.stream == stream)
                .cloned()
                .collect();
            tx.send_replace(Arc::new(chain));
        }
    }

    async fn stop(&mut self) {
        if let Some(task) = self.accept.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Binds the listen address and starts accepting; `listen` becomes the bound address.
    async fn start(&mut self, limits: &Limits) -> Result<(), ApiError> {
        let listener = bind(&self.spec.listen).await?;
        if let Ok(addr) = listener.local_addr() {
            self.spec.listen = addr.to_string();
        }
        let links = (
            self.upstream_chain.subscribe(),
            self.downstream_chain.subscribe(),
        );
        self.accept = Some(tokio::spawn(accept_loop(
            listener,
            self.spec.clone(),
            self.seed,
            links,
            self.counters.clone(),
            limits.max_connections,
        )));
        Ok(())
    }
}

async fn bind(listen: &str) -> Result<TcpListener, ApiError> {
    let addr = tokio::net::lookup_host(listen)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ApiError::bad(format!("listen address {listen:?} does not resolve")))?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| ApiError::internal(format!("socket: {e}")))?;
    let _ = socket.set_reuseaddr(true);
    socket
        .bind(addr)
        .map_err(|e| ApiError::conflict(format!("cannot listen on {listen}: {e}")))?;
    socket
        .listen(1024)
        .map_err(|e| ApiError::conflict(format!("cannot listen on {listen}: {e}")))
}

/// Decrements the active-connection gauge when a connection ends, however it ends.
struct Gauge(Arc<Counters>);

impl Drop for Gauge {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn accept_loop(
    listener: TcpListener,
    spec: Spec,
    seed: u64,
    chains: (watch::Receiver<Chain>, watch::Receiver<Chain>),
    counters: Arc<Counters>,
    max_connections: usize,
) {
    let mut conns = JoinSet::new();
    let mut index = 0u64;
    loop {
        tokio::select! {
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            r = listener.accept() => {
                let client = match r {
                    Ok((c, _)) => c,
                    Err(e) => {
                        warn!(proxy = %spec.name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if conns.len() >= max_connections {
                    counters.refused.fetch_add(1, Ordering::Relaxed);
                    warn!(proxy = %spec.name, max_connections, "connection limit reached: closing a new connection");
                    continue;
                }
                index += 1;
                counters.connections.fetch_add(1, Ordering::Relaxed);
                counters.active.fetch_add(1, Ordering::Relaxed);
                let gauge = Gauge(counters.clone());
                let links = Links {
                    upstream: chains.0.clone(),
                    downstream: chains.1.clone(),
                    seed,
                    index,
                    bytes_up: counters.bytes_up.clone(),
                    bytes_down: counters.bytes_down.clone(),
                };
                let (name, target) = (spec.name.clone(), spec.upstream.clone());
                conns.spawn(async move {
                    let _gauge = gauge;
                    let upstream = match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(target.as_str())).await {
                        Ok(Ok(u)) => u,
                        Ok(Err(e)) => {
                            warn!(proxy = %name, upstream = %target, error = %e, "upstream refused");
                            return;
                        }
                        Err(_) => {
                            warn!(proxy = %name, upstream = %target, "upstream dial timed out");
                            return;
                        }
                    };
                    let _ = client.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    pump::connection(client, upstream, links).await;
                });
            }
        }
    }
}

fn object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object()
        .ok_or_else(|| ApiError::bad(format!("expected a JSON object, got {body}")))
}

fn string_field(body: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::bad(format!(
            "{key} must be a string, not {other}"
        ))),
    }
}

fn check_address(what: &str, a: &str) -> Result<(), ApiError> {
    let ok = a.len() <= 256
        && a.rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad(format!("{what} {a:?} must be host:port")))
    }
}

/// Checks the fields a proxy body may carry; `toxics` is accepted only empty (toxics are
/// added through `/proxies/{name}/toxics`).
fn check_fields(body: &Map<String, Value>) -> Result<(), ApiError> {
    const FIELDS: [&str; 6] = ["name", "listen", "upstream", "enabled", "toxics", "seed"];
    if let Some(k) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::bad(format!(
            "unknown proxy field {k:?}; expected {FIELDS:?}"
        )));
    }
    match body.get("toxics") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(a)) if a.is_empty() => Ok(()),
        Some(_) => Err(ApiError::bad(
            "toxics cannot be set with a proxy; POST them to /proxies/{name}/toxics",
        )),
    }
}

fn enabled_field(body: &Map<String, Value>) -> Result<Option<bool>, ApiError> {
    match body.get("enabled") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ApiError::bad(format!(
            "enabled must be true or false, not {other}"
        ))),
    }
}

fn seed_field(body: &Map<String, Value>) -> Result<Option<u64>, ApiError> {
    match body.get("seed") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| ApiError::bad(format!("seed must be a non-negative integer, not {v}"))),
    }
}

impl Spec {
    /// Parses a create (or populate) body: `name` and `upstream` required, `listen`
    /// default `127.0.0.1:0`, `enabled` default true.
    fn from_json(body: &Value) -> Result<Spec, ApiError> {
        let body = object(body)?;
        check_fields(body)?;
        let name = string_field(body, "name")?
            .ok_or_else(|| ApiError::bad("missing required field: name"))?;
        check_name("proxy", &name)?;
        let upstream = string_field(body, "upstream")?
            .ok_or_else(|| ApiError::bad("missing required field: upstream"))?;
        check_address("upstream", &upstream)?;
        let listen = string_field(body, "listen")?.unwrap_or_else(|| "127.0.0.1:0".to_owned());
        check_address("listen", &listen)?;
        Ok(Spec {
            name,
            listen,
            upstream,
            enabled: enabled_field(body)?.unwrap_or(true),
            seed: seed_field(body)?,
        })
    }

    /// This spec updated by a body (listen, upstream, enabled, seed; the name may be
    /// repeated but not changed).
    fn merged(&self, body: &Value) -> Result<Spec, ApiError> {
        let body = object(body)?;
        check_fields(body)?;
        if let Some(n) = string_field(body, "name")? {
            if n != self.name {
                return Err(ApiError::bad(format!(
                    "a proxy's name cannot change (it is {})",
                    self.name
                )));
            }
        }
        let mut s = self.clone();
        if let Some(l) = string_field(body, "listen")? {
            check_address("listen", &l)?;
            s.listen = l;
        }
        if let Some(u) = string_field(body, "upstream")? {
            check_address("upstream", &u)?;
            s.upstream = u;
        }
        if let Some(e) = enabled_field(body)? {
            s.enabled = e;
        }
        if let Some(seed) = seed_field(body)? {
            s.seed = Some(seed);
        }
        Ok(s)
    }
}

/// FNV-1a of a name: a proxy without its own seed draws from the server's seed mixed
/// with its name.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// All proxies.
pub struct Registry {
    inner: Mutex<Inner>,
    seed: u64,
    limits: Limits,
}

struct Inner {
    proxies: BTreeMap<String, Proxy>,
    next_toxic_id: u64,
}

impl Inner {
    fn proxy(&mut self, name: &str) -> Result<&mut Proxy, ApiError> {
        self.proxies
            .get_mut(name)
            .ok_or_else(|| ApiError::not_found("proxy not found"))
    }
}

impl Registry {
    pub fn new(seed: u64, limits: Limits) -> Registry {
        Registry {
            inner: Mutex::new(Inner {
                proxies: BTreeMap::new(),
                next_toxic_id: 0,
            }),
            seed,
            limits,
        }
    }

    pub async fn list(&self) -> Value {
        let inner = self.inner.lock().await;
        Value::Object(
            inner
                .proxies
                .iter()
                .map(|(k, p)| (k.clone(), p.to_json()))
                .collect(),
        )
    }

    pub async fn get(&self, name: &str) -> Result<Value, ApiError> {
        Ok(self.inner.lock().await.proxy(name)?.to_json())
    }

    async fn create_locked(&self, inner: &mut Inner, spec: Spec) -> Result<Value, ApiError> {
        if inner.proxies.contains_key(&spec.name) {
            return Err(ApiError::conflict("proxy already exists"));
        }
        if inner.proxies.len() >= self.limits.max_proxies {
            return Err(ApiError::conflict(format!(
                "at most {} proxies",
                self.limits.max_proxies
            )));
        }
        let seed = spec
            .seed
            .unwrap_or_else(|| self.seed ^ name_hash(&spec.name));
        let mut p = Proxy {
            spec,
            seed,
            toxics: Vec::new(),
            upstream_chain: watch::channel(Arc::new(Vec::new())).0,
            downstream_chain: watch::channel(Arc::new(Vec::new())).0,
            accept: None,
            counters: Arc::new(Counters::default()),
        };
        if p.spec.enabled {
            p.start(&self.limits).await?;
        }
        info!(target: "audit", action = "proxy_created", proxy = %p.spec.name, listen = %p.spec.listen,
            upstream = %p.spec.upstream, enabled = p.spec.enabled, seed = p.seed);
        let json = p.to_json();
        inner.proxies.insert(p.spec.name.clone(), p);
        Ok(json)
    }

    pub async fn create(&self, body: &Value) -> Result<Value, ApiError> {
        let spec = Spec::from_json(body)?;
        let mut inner = self.inner.lock().await;
        self.create_locked(&mut inner, spec).await
    }

    /// Creates the proxies of an array, or updates those that exist (their toxics stay).
    /// The whole array is validated first: one bad entry changes nothing.
    pub async fn populate(&self, body: &Value) -> Result<Value, ApiError> {
        let items = body
            .as_array()
            .ok_or_else(|| ApiError::bad("expected a JSON array of proxies"))?;
        let specs = items
            .iter()
            .enumerate()
            .map(|(i, v)| Spec::from_json(v).map_err(|e| e.context(&format!("proxy {i}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let mut names = std::collections::BTreeSet::new();
        if let Some(s) = specs.iter().find(|s| !names.insert(s.name.clone())) {
            return Err(ApiError::bad(format!("proxy {:?} appears twice", s.name)));
        }
        let mut inner = self.inner.lock().await;
        let new = specs
            .iter()
            .filter(|s| !inner.proxies.contains_key(&s.name))
            .count();
        if inner.proxies.len() + new > self.limits.max_proxies {
            return Err(ApiError::conflict(format!(
                "at most {} proxies",
                self.limits.max_proxies
            )));
        }
        let mut out = Vec::new();
        for spec in specs {
            let json = if inner.proxies.contains_key(&spec.name) {
                let body = json!({"listen": spec.listen, "upstream": spec.upstream, "enabled": spec.enabled, "seed": spec.seed});
                self.update_locked(&mut inner, &spec.name.clone(), &body)
                    .await?
            } else {
                self.create_locked(&mut inner, spec).await?
            };
            out.push(json);
        }
        Ok(json!({ "proxies": out }))
    }

    async fn update_locked(
        &self,
        inner: &mut Inner,
        name: &str,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let limits = &self.limits;
        let p = inner.proxy(name)?;
        let new = p.spec.merged(body)?;
        if new == p.spec {
            return Ok(p.to_json());
        }
        let old = p.spec.clone();
        let restart =
            new.listen != old.listen || new.upstream != old.upstream || new.seed != old.seed;
        if let Some(s) = new.seed {
            p.seed = s;
        }
        if !new.enabled || restart {
            p.stop().await;
        }
        p.spec = new;
        if p.spec.enabled && p.accept.is_none() {
            if let Err(e) = p.start(limits).await {
                // Put the old configuration back (and running, if it was).
                p.spec = old;
                if p.spec.enabled {
                    let _ = p.start(limits).await;
                }
                return Err(e);
            }
        }
        info!(target: "audit", action = "proxy_updated", proxy = %name, listen = %p.spec.listen,
            upstream = %p.spec.upstream, enabled = p.spec.enabled);
        Ok(p.to_json())
    }

    pub async fn update(&self, name: &str, body: &Value) -> Result<Value, ApiError> {
        let mut inner = self.inner.lock().await;
        self.update_locked(&mut inner, name, body).await
    }

    pub async fn delete(&self, name: &str) -> Result<(), ApiError> {
        let mut inner = self.inner.lock().await;
        let mut p = inner
            .proxies
            .remove(name)
            .ok_or_else(|| ApiError::not_found("proxy not found"))?;
        p.stop().await;
        info!(target: "audit", action = "proxy_deleted", proxy = %name);
        Ok(())
    }

    pub async fn toxics(&self, name: &str) -> Result<Value, ApiError> {
        let mut inner = self.inner.lock().await;
        let p = inner.proxy(name)?;
        Ok(Value::Array(
            p.toxics.iter().map(|a| a.toxic.to_json()).collect(),
        ))
    }

    pub async fn toxic(&self, name: &str, toxic: &str) -> Result<Value, ApiError> {
        let mut inner = self.inner.lock().await;
        let p = inner.proxy(name)?;
        p.toxics
            .iter()
            .find(|a| a.toxic.name == toxic)
            .map(|a| a.toxic.to_json())
            .ok_or_else(|| ApiError::not_found("toxic not found"))
    }

    pub async fn add_toxic(&self, name: &str, body: &Value) -> Result<Value, ApiError> {
        let toxic = Toxic::from_json(body)?;
        let mut inner = self.inner.lock().await;
        inner.next_toxic_id += 1;
        let id = inner.next_toxic_id;
        let max = self.limits.max_toxics;
        let p = inner.proxy(name)?;
        if p.toxics.iter().any(|a| a.toxic.name == toxic.name) {
            return Err(ApiError::conflict("toxic already exists"));
        }
        if p.toxics.len() >= max {
            return Err(ApiError::conflict(format!(
                "at most {max} toxics per proxy"
            )));
        }
        let json = toxic.to_json();
        info!(target: "audit", action = "toxic_added", proxy = %name, toxic = %toxic.name, r#type = toxic.kind.type_name(),
            stream = toxic.stream.name(), toxicity = toxic.toxicity, attributes = %json["attributes"]);
        p.toxics.push(Active { id, toxic });
        p.publish();
        Ok(json)
    }

    pub async fn update_toxic(
        &self,
        name: &str,
        toxic: &str,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let mut inner = self.inner.lock().await;
        inner.next_toxic_id += 1;
        let id = inner.next_toxic_id;
        let p = inner.proxy(name)?;
        let slot = p
            .toxics
            .iter_mut()
            .find(|a| a.toxic.name == toxic)
            .ok_or_else(|| ApiError::not_found("toxic not found"))?;
        let new = slot.toxic.merged(body)?;
        let json = new.to_json();
        *slot = Active { id, toxic: new };
        info!(target: "audit", action = "toxic_updated", proxy = %name, toxic = %toxic,
            toxicity = json["toxicity"].as_f64().unwrap_or(0.0), attributes = %json["attributes"]);
        p.publish();
        Ok(json)
    }

    pub async fn remove_toxic(&self, name: &str, toxic: &str) -> Result<(), ApiError> {
        let mut inner = self.inner.lock().await;
        let p = inner.proxy(name)?;
        let before = p.toxics.len();
        p.toxics.retain(|a| a.toxic.name != toxic);
        if p.toxics.len() == before {
            return Err(ApiError::not_found("toxic not found"));
        }
        info!(target: "audit", action = "toxic_removed", proxy = %name, toxic = %toxic);
        p.publish();
        Ok(())
    }

    /// Enables every proxy and removes every toxic.
    pub async fn reset(&self) -> Result<(), ApiError> {
        let mut inner = self.inner.lock().await;
        let mut failed = Vec::new();
        for p in inner.proxies.values_mut() {
            p.toxics.clear();
            p.publish();
            if !p.spec.enabled || p.accept.is_none() {
                p.spec.enabled = true;
                if let Err(e) = p.start(&self.limits).await {
                    p.spec.enabled = false;
                    failed.push(format!("{}: {}", p.spec.name, e.message));
                }
            }
        }
        info!(target: "audit", action = "reset", proxies = inner.proxies.len(), failed = failed.len());
        if failed.is_empty() {
            Ok(())
        } else {
            Err(ApiError::internal(format!(
                "reset could not re-enable: {}",
                failed.join("; ")
            )))
        }
    }

    /// The counters in Prometheus' text format.
    pub async fn metrics(&self) -> String {
        let inner = self.inner.lock().await;
        let mut out = String::new();
        let mut family =
            |name: &str, kind: &str, help: &str, rows: &mut dyn Iterator<Item = (String, u64)>| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for (labels, v) in rows {
                    let _ = writeln!(out, "{name}{{{labels}}} {v}");
                }
            };
        let ps = &inner.proxies;
        family(
            "sovereign_proxy_bytes_total",
            "counter",
            "Bytes written through the proxy, by direction (upstream: client to server).",
            &mut ps.values().flat_map(|p| {
                [
                    ("upstream", &p.counters.bytes_up),
                    ("downstream", &p.counters.bytes_down),
                ]
                .map(|(d, c)| {
                    (
                        format!("proxy=\"{}\",direction=\"{d}\"", p.spec.name),
                        c.load(Ordering::Relaxed),
                    )
                })
            }),
        );
        family(
            "sovereign_proxy_connections_total",
            "counter",
            "Client connections accepted.",
            &mut ps.values().map(|p| {
                (
                    format!("proxy=\"{}\"", p.spec.name),
                    p.counters.connections.load(Ordering::Relaxed),
                )
            }),
        );
        family(
            "sovereign_proxy_connections_active",
            "gauge",
            "Client connections open now.",
            &mut ps.values().map(|p| {
                (
                    format!("proxy=\"{}\"", p.spec.name),
                    p.counters.active.load(Ordering::Relaxed),
                )
            }),
        );
        family(
            "sovereign_proxy_connections_refused_total",
            "counter",
            "Client connections closed at once because the proxy's connection limit was reached.",
            &mut ps.values().map(|p| {
                (
                    format!("proxy=\"{}\"", p.spec.name),
                    p.counters.refused.load(Ordering::Relaxed),
                )
            }),
        );
        family(
            "sovereign_proxy_enabled",
            "gauge",
            "1 if the proxy listens, 0 if it is disabled (link down).",
            &mut ps.values().map(|p| {
                (
                    format!("proxy=\"{}\"", p.spec.name),
                    u64::from(p.spec.enabled),
                )
            }),
        );
        family(
            "sovereign_proxy_toxics_active",
            "gauge",
            "Toxics configured, by stream.",
            &mut ps.values().flat_map(|p| {
                [Stream::Upstream, Stream::Downstream].map(|s| {
                    let n = p.toxics.iter().filter(|a| a.toxic.stream == s).count() as u64;
                    (
                        format!("proxy=\"{}\",stream=\"{}\"", p.spec.name, s.name()),
                        n,
                    )
                })
            }),
        );
        out
    }
}
