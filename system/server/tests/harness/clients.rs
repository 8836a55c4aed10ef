//! The simulation's clients: the operator (publishes through the origin's admin API),
//! devices (submit operations to a tower), readers (read everything a tower lists and check
//! the bytes), a chaos client (injects a fault through an admin API) and the checker
//! (waits for convergence after the heal and writes the [`Report`]).
//!
//! Map: [`Http`], [`content`], [`Publish`] / [`operator`], [`Device`] / [`device`],
//! [`reader`], [`checker`], and `Net`'s methods that add them.

use super::simnet::{SimConnector, sim_transport};
use super::{
    CHAOS, Net, OPERATOR, ORIGIN_ADMIN_PORT, ORIGIN_PORT, OpRecord, ReadRecord, Report, Shared,
    TOWER_ADMIN_PORT, TOWER_PORT, TOWERS, VIEWER, note, now_ms,
};
use bytes::Bytes;
use hyper::http::{HeaderValue, Method, StatusCode, header};
use sovereign_logic::content::ChunkHash;
use sovereign_server::transport::{HyperTransport, Request, Response, Transport};
use std::collections::BTreeMap;
use std::time::Duration;

/// A small HTTP client over simulated TCP (the servers' own hyper transport).
pub struct Http(HyperTransport<SimConnector>);

impl Http {
    /// A client with its own connection pool.
    pub fn new() -> Http {
        Http(sim_transport())
    }

    /// One exchange; `Err` when nothing answered within `timeout`.
    pub async fn call(
        &self,
        method: Method,
        url: String,
        headers: &[(&'static str, String)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<Response, String> {
        let mut req = Request::get(url, timeout);
        req.method = method;
        req.body = body;
        for (name, value) in headers {
            let value = HeaderValue::from_str(value).map_err(|e| e.to_string())?;
            req = req.header(header::HeaderName::from_static(name), value);
        }
        self.0.send(req).await.map_err(|e| e.to_string())
    }

    /// GET with a 3 s deadline.
    pub async fn get(
        &self,
        url: String,
        headers: &[(&'static str, String)],
    ) -> Result<Response, String> {
        self.call(
            Method::GET,
            url,
            headers,
            Bytes::new(),
            Duration::from_secs(3),
        )
        .await
    }
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

/// Sleep until virtual time `at`.
pub async fn sleep_until(at: Duration) {
    let now = Duration::from_millis(now_ms());
    if at > now {
        tokio::time::sleep(at - now).await;
    }
}

/// Deterministic, incompressible content.
pub fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        // splitmix64
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha_hex(bytes: &[u8]) -> String {
    ChunkHash::of(bytes).to_hex()
}

/// Something the operator publishes.
#[derive(Clone, Debug)]
pub struct Publish {
    /// Virtual time to publish at.
    pub at: Duration,
    /// Item id.
    pub item: &'static str,
    /// `P0`..`P3`.
    pub priority: &'static str,
    /// Bytes.
    pub size: usize,
    /// Content seed (a new seed makes a new version's bytes).
    pub seed: u64,
}

/// The operator: publishes through the origin's admin API with an operator token,
/// retrying each publish every second until the origin answers 201.
pub async fn operator(obs: Shared, plan: Vec<Publish>) -> turmoil::Result {
    let http = Http::new();
    for p in plan {
        sleep_until(p.at).await;
        let bytes = Bytes::from(content(p.seed, p.size));
        loop {
            let url = format!(
                "http://origin:{ORIGIN_ADMIN_PORT}/admin/publish?item={}&priority={}",
                p.item, p.priority
            );
            let r = http
                .call(
                    Method::POST,
                    url,
                    &[
                        bearer(OPERATOR),
                        ("content-type", "application/octet-stream".into()),
                    ],
                    bytes.clone(),
                    Duration::from_secs(5),
                )
                .await;
            match r {
                Ok(resp) if resp.status == StatusCode::CREATED => {
                    let e: sovereign_wire::CatalogEntryDto =
                        serde_json::from_slice(&resp.body).map_err(|e| e.to_string())?;
                    if e.manifest.sha256 != sha_hex(&bytes) {
                        obs.borrow_mut().corrupt.push(format!(
                            "origin answered publish of {} with sha256 {} for other bytes",
                            p.item, e.manifest.sha256
                        ));
                    }
                    note(
                        &obs,
                        format!("published {} v{}", p.item, e.manifest.version),
                    );
                    obs.borrow_mut()
                        .published
                        .entry(p.item.to_string())
                        .or_default()
                        .push((e.manifest.version, e.manifest.sha256));
                    break;
                }
                Ok(resp) => note(
                    &obs,
                    format!("publish {}: {}", p.item, resp.status.as_u16()),
                ),
                Err(_) => note(&obs, format!("publish {}: no answer", p.item)),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Ok(())
}

/// A device's work: `count` contributions to `tower`, one every `every` from `start`, each
/// retried (same key, same body) every second until the tower answers 202 or `give_up`.
#[derive(Clone, Debug)]
pub struct Device {
    /// Device number (also the key prefix).
    pub id: u32,
    /// The tower it talks to.
    pub tower: &'static str,
    /// Operations to submit.
    pub count: u32,
    /// First submission.
    pub start: Duration,
    /// Between submissions.
    pub every: Duration,
    /// Stop retrying after this virtual time.
    pub give_up: Duration,
}

/// Device `id`'s secret: 32 bytes of `id`.
fn device_secret(id: u32) -> [u8; 32] {
    [id as u8; 32]
}

/// Device `id`'s `n`-th idempotency key (owned by its identity; random part fixed, so a
/// run is reproducible).
pub fn device_key(id: u32, n: u32) -> String {
    let device = sovereign_logic::protocol::DeviceId::from_secret(&device_secret(id));
    sovereign_logic::protocol::IdemKey::for_device(device, u64::from(n), u64::from(id))
        .0
        .to_string()
}

/// `Authorization: Device <secret>` of device `id`.
fn device_auth(id: u32) -> String {
    let hex: String = device_secret(id)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("Device {hex}")
}

/// The amount device `id` contributes with its `n`th operation (distinct per key).
pub fn amount(id: u32, n: u32) -> u64 {
    u64::from(id) * 1000 + u64::from(n)
}

/// Run a [`Device`].
pub async fn device(obs: Shared, d: Device) -> turmoil::Result {
    let http = Http::new();
    for n in 1..=d.count {
        sleep_until(d.start + d.every * (n - 1)).await;
        let key = device_key(d.id, n);
        let amount = amount(d.id, n);
        obs.borrow_mut().ops.insert(
            key.clone(),
            OpRecord {
                tower: d.tower.to_string(),
                amount,
                acked_at: None,
                attempts: 0,
            },
        );
        let body = serde_json::json!({
            "op": {"type": "contribution", "community": "kibera", "nation": "ke", "amount_minor": amount},
        });
        let body = Bytes::from(serde_json::to_vec(&body)?);
        loop {
            if let Some(o) = obs.borrow_mut().ops.get_mut(&key) {
                o.attempts += 1;
            }
            let r = http
                .call(
                    Method::POST,
                    format!("http://{}:{TOWER_PORT}/v1/ops", d.tower),
                    &[
                        ("idempotency-key", key.clone()),
                        ("authorization", device_auth(d.id)),
                        ("content-type", "application/json".into()),
                    ],
                    body.clone(),
                    Duration::from_secs(3),
                )
                .await;
            match r {
                Ok(resp) if resp.status == StatusCode::ACCEPTED => {
                    let at = now_ms();
                    if let Some(o) = obs.borrow_mut().ops.get_mut(&key) {
                        o.acked_at = Some(at);
                    }
                    note(&obs, format!("{} acked {key}", d.tower));
                    break;
                }
                Ok(resp) => note(
                    &obs,
                    format!("{} op {key}: {}", d.tower, resp.status.as_u16()),
                ),
                Err(_) => note(&obs, format!("{} op {key}: no answer", d.tower)),
            }
            if Duration::from_millis(now_ms()) > d.give_up {
                note(&obs, format!("{} gave up {key}", d.tower));
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct TowerCatalog {
    items: Vec<sovereign_wire::ManifestDto>,
}

/// Read every item a tower lists (and every item it listed before) every `every` until
/// `until`, checking each 200 body against its ETag and the listed manifest.
pub async fn reader(
    obs: Shared,
    tower: &'static str,
    every: Duration,
    until: Duration,
) -> turmoil::Result {
    let http = Http::new();
    let mut known: BTreeMap<String, BTreeMap<u64, String>> = BTreeMap::new();
    let mut last_served: BTreeMap<String, u64> = BTreeMap::new();
    while Duration::from_millis(now_ms()) < until {
        if let Ok(resp) = http
            .get(format!("http://{tower}:{TOWER_PORT}/v1/catalog"), &[])
            .await
        {
            if resp.status == StatusCode::OK {
                let cat: TowerCatalog = serde_json::from_slice(&resp.body)?;
                let at = now_ms();
                let mut o = obs.borrow_mut();
                for m in cat.items {
                    o.first_seen
                        .entry((tower.to_string(), m.item.clone(), m.version))
                        .or_insert(at);
                    known.entry(m.item).or_default().insert(m.version, m.sha256);
                }
            }
        }
        for (item, versions) in &known {
            let r = http
                .get(format!("http://{tower}:{TOWER_PORT}/v1/items/{item}"), &[])
                .await;
            let at = now_ms();
            let (status, version) = match r {
                Err(_) => (0, None),
                Ok(resp) => {
                    let version = version_of(&resp);
                    if resp.status == StatusCode::OK {
                        check_body(&obs, tower, item, &resp, version, versions);
                        // A tower never goes back to an older version (not even after
                        // a crash: it serves only what is durable).
                        let v = version.unwrap_or(0);
                        let last = last_served.entry(item.clone()).or_insert(0);
                        if v < *last {
                            obs.borrow_mut()
                                .regressions
                                .push(format!("{tower} served {item} v{v} after v{last}"));
                        }
                        *last = v.max(*last);
                    }
                    (resp.status.as_u16(), version)
                }
            };
            obs.borrow_mut().reads.push(ReadRecord {
                at,
                tower: tower.to_string(),
                item: item.clone(),
                status,
                version,
            });
        }
        tokio::time::sleep(every).await;
    }
    Ok(())
}

/// The `x-sovereign-version` of an item response.
fn version_of(resp: &Response) -> Option<u64> {
    resp.headers
        .get("x-sovereign-version")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

fn check_body(
    obs: &Shared,
    tower: &str,
    item: &str,
    resp: &Response,
    version: Option<u64>,
    versions: &BTreeMap<u64, String>,
) {
    let sha = sha_hex(&resp.body);
    let etag = resp
        .headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim_matches('"')
        .to_string();
    let listed = version.and_then(|v| versions.get(&v));
    let bad = if etag != sha {
        Some(format!("ETag {etag}"))
    } else if listed.is_some_and(|l| *l != sha) {
        Some(format!("manifest says {listed:?}"))
    } else {
        None
    };
    if let Some(why) = bad {
        obs.borrow_mut().corrupt.push(format!(
            "{tower} served {item} v{}: {} bytes hashing to {sha}, {why}",
            version.map_or("?".to_string(), |v| v.to_string()),
            resp.body.len()
        ));
    }
}

#[derive(serde::Deserialize)]
struct OriginCatalog {
    entries: Vec<sovereign_wire::CatalogEntryDto>,
}

/// After `start` (and once every other client is done), wait until `deadline` for the
/// towers to converge on the origin's catalog and for every acknowledged operation to be
/// applied; then record the [`Report`].
pub async fn checker(obs: Shared, start: Duration, deadline: Duration) -> turmoil::Result {
    let http = Http::new();
    sleep_until(start).await;
    let past = |d: Duration| Duration::from_millis(now_ms()) > d;
    while obs.borrow().workers_done < obs.borrow().workers && !past(deadline) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    note(&obs, "checker: workers done");
    let mut report = Report::default();

    // What the origin holds: the latest version of each item.
    loop {
        if let Ok(resp) = http
            .get(
                format!("http://origin:{ORIGIN_PORT}/v1/catalog?since=0"),
                // The origin answers known towers only: the checker reads as tower 1.
                &[
                    ("x-sovereign-tower", "1".to_string()),
                    (
                        "authorization",
                        format!("Bearer {}", super::tower_credential(1)),
                    ),
                ],
            )
            .await
        {
            if resp.status == StatusCode::OK {
                let cat: OriginCatalog = serde_json::from_slice(&resp.body)?;
                for e in cat.entries {
                    let slot = report
                        .expected
                        .entry(e.manifest.item.clone())
                        .or_insert((0, String::new()));
                    if e.manifest.version > slot.0 {
                        *slot = (e.manifest.version, e.manifest.sha256);
                    }
                }
                break;
            }
        }
        if past(deadline) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Each tower serves every latest version, with bytes that hash to it (the towers are
    // checked in turns, each until it converges).
    let mut pending: Vec<&str> = TOWERS.to_vec();
    loop {
        for tower in std::mem::take(&mut pending) {
            let mut served = BTreeMap::new();
            for (item, (version, sha)) in &report.expected {
                if let Ok(resp) = http
                    .get(format!("http://{tower}:{TOWER_PORT}/v1/items/{item}"), &[])
                    .await
                {
                    if resp.status == StatusCode::OK {
                        let v = version_of(&resp).unwrap_or(0);
                        let ok = v != *version || sha_hex(&resp.body) == *sha;
                        served.insert(item.clone(), (v, ok));
                    }
                }
            }
            let done = report
                .expected
                .iter()
                .all(|(item, (version, _))| served.get(item) == Some(&(*version, true)));
            report.served.insert(tower.to_string(), served);
            if done {
                note(&obs, format!("checker: {tower} converged"));
                report
                    .converged_at
                    .insert(tower.to_string(), Some(now_ms()));
            } else {
                pending.push(tower);
            }
        }
        if pending.is_empty() || past(deadline) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for tower in pending {
        note(&obs, format!("checker: {tower} did not converge"));
        report.converged_at.insert(tower.to_string(), None);
    }

    // Every submitted key's fate at the origin; wait for the acknowledged ones.
    let keys: Vec<(String, bool)> = obs
        .borrow()
        .ops
        .iter()
        .map(|(k, o)| (k.clone(), o.acked_at.is_some()))
        .collect();
    loop {
        for (key, _) in &keys {
            let url = format!("http://origin:{ORIGIN_ADMIN_PORT}/admin/ops/{key}");
            let outcome = match http.get(url, &[bearer(VIEWER)]).await {
                Ok(resp) if resp.status == StatusCode::OK => {
                    let v: serde_json::Value = serde_json::from_slice(&resp.body)?;
                    Some(v["outcome"].to_string())
                }
                _ => None,
            };
            report.outcomes.insert(key.clone(), outcome);
        }
        let all_acked_known = keys
            .iter()
            .all(|(k, acked)| !acked || report.outcomes.get(k).is_some_and(Option::is_some));
        if all_acked_known || past(deadline) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // The towers' outboxes drain.
    for tower in TOWERS {
        loop {
            let url = format!("http://{tower}:{TOWER_ADMIN_PORT}/admin/outbox");
            let count = match http.get(url, &[bearer(VIEWER)]).await {
                Ok(resp) if resp.status == StatusCode::OK => {
                    let v: serde_json::Value = serde_json::from_slice(&resp.body)?;
                    v["count"].as_u64()
                }
                _ => None,
            };
            if count == Some(0) || past(deadline) {
                report
                    .outbox
                    .insert(tower.to_string(), count.unwrap_or(u64::MAX));
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    // The ledger.
    loop {
        let url = format!("http://origin:{ORIGIN_ADMIN_PORT}/admin/ledger");
        if let Ok(resp) = http.get(url, &[bearer(VIEWER)]).await {
            if resp.status == StatusCode::OK {
                let v: serde_json::Value = serde_json::from_slice(&resp.body)?;
                report.contributed_minor = v["contributed_minor"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(u128::MAX);
                report.applied = v["applied"].as_u64().unwrap_or(u64::MAX);
                report.conserved = v["conserved"].as_bool().unwrap_or(false);
                break;
            }
        }
        if past(deadline) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    note(&obs, "checker: done");
    obs.borrow_mut().report = Some(report);
    Ok(())
}

impl Net {
    /// Add a device client (the checker waits for it to finish).
    pub fn device(&mut self, name: &'static str, d: Device) {
        let obs = self.obs.clone();
        self.obs.borrow_mut().workers += 1;
        self.sim.client(name, async move {
            let r = device(obs.clone(), d).await;
            obs.borrow_mut().workers_done += 1;
            r
        });
    }

    /// Add the operator.
    pub fn operator(&mut self, plan: Vec<Publish>) {
        let obs = self.obs.clone();
        self.obs.borrow_mut().workers += 1;
        self.sim.client("operator", async move {
            let r = operator(obs.clone(), plan).await;
            obs.borrow_mut().workers_done += 1;
            r
        });
    }

    /// Add a reader of `tower`.
    pub fn reader(
        &mut self,
        name: &'static str,
        tower: &'static str,
        every: Duration,
        until: Duration,
    ) {
        self.sim
            .client(name, reader(self.obs.clone(), tower, every, until));
    }

    /// Add an auditor: at `at`, ask the origin's admin API which of the operations
    /// submitted to `tower` so far it has applied (into [`super::Obs::applied_early`]).
    pub fn auditor(&mut self, name: &'static str, at: Duration, tower: &'static str) {
        let obs = self.obs.clone();
        self.sim.client(name, async move {
            let http = Http::new();
            sleep_until(at).await;
            let keys: Vec<String> = obs
                .borrow()
                .ops
                .iter()
                .filter(|(_, o)| o.tower == tower)
                .map(|(k, _)| k.clone())
                .collect();
            for key in keys {
                let url = format!("http://origin:{ORIGIN_ADMIN_PORT}/admin/ops/{key}");
                if let Ok(resp) = http.get(url, &[bearer(VIEWER)]).await {
                    if resp.status == StatusCode::OK {
                        note(&obs, format!("auditor: {key} applied"));
                        obs.borrow_mut().applied_early.push(key);
                    }
                }
            }
            Ok(())
        });
    }

    /// Add a chaos client: at `at`, POST `fault` to `host`'s `/admin/faults` with the
    /// chaos token (retried every second until the host answers 201).
    pub fn chaos(
        &mut self,
        name: &'static str,
        at: Duration,
        host: &'static str,
        fault: serde_json::Value,
    ) {
        let obs = self.obs.clone();
        self.sim.client(name, async move {
            let http = Http::new();
            sleep_until(at).await;
            let port = if host == "origin" {
                ORIGIN_ADMIN_PORT
            } else {
                TOWER_ADMIN_PORT
            };
            loop {
                let r = http
                    .call(
                        Method::POST,
                        format!("http://{host}:{port}/admin/faults"),
                        &[bearer(CHAOS), ("content-type", "application/json".into())],
                        Bytes::from(serde_json::to_vec(&fault)?),
                        Duration::from_secs(3),
                    )
                    .await;
                match r {
                    Ok(resp) if resp.status == StatusCode::CREATED => {
                        note(&obs, format!("fault injected on {host}: {fault}"));
                        return Ok(());
                    }
                    Ok(resp) => note(&obs, format!("fault on {host}: {}", resp.status.as_u16())),
                    Err(_) => note(&obs, format!("fault on {host}: no answer")),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// Add the checker.
    pub fn checker(&mut self, start: Duration, deadline: Duration) {
        self.sim
            .client("checker", checker(self.obs.clone(), start, deadline));
    }
}
