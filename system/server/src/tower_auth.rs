//! The trust boundary between towers and the origin (DESIGN.md §11): per-tower
//! credentials the origin checks, and the origin's identity the towers check.
//!
//! **Towers → origin.** Every tower has its own credential: a secret of 64 hex digits
//! (256 random bits from the OS) that the origin issues once
//! (`POST /admin/towers/{n}`, operator role, audited; `sovereign origin add-tower`).
//! The origin keeps only its SHA-256, in `DATA/towers.json` (mode 0600, replaced
//! atomically: temp file, fsync, rename, fsync of the directory). A tower sends
//! `x-sovereign-tower: N` and `Authorization: Bearer <credential>` on every catalog, chunk
//! and forward request; `/healthz` (the link probe) stays open. The origin hashes the
//! presented credential and compares it with every stored digest without an early exit
//! ([`TowerCredentials::authenticate`]): no match is 401 (with `WWW-Authenticate`), the
//! credential of another tower than the one claimed is 403. No credential provisioned at
//! all means every tower call is refused (fail closed, as the admin API without tokens),
//! unless the origin runs with `--allow-unauthenticated-towers` (local experiments only:
//! a request without a credential is then taken as the tower it claims; a presented
//! credential is still checked).
//!
//! **Origin → towers.** The origin announces its identity (`OriginId`) in the
//! [`ORIGIN_HEADER`] response header of every answer on its tower-facing listener (and as
//! `origin` in the catalog's JSON). A tower that trusts an origin sends its id in
//! [`EXPECT_ORIGIN_HEADER`]; an origin with another id answers 412 and does nothing, so a
//! batch of operations is never applied by a stranger that happens to know the tower.
//!
//! Map: [`TowerCredentials`] (the origin's table: [`TowerCredentials::open`],
//! [`TowerCredentials::issue`], [`TowerCredentials::revoke`],
//! [`TowerCredentials::authenticate`]), [`TowerAuthError`] (401/403/400 as an `ApiError`),
//! [`CredentialError`], [`Issued`], [`TowerInfo`]; the tower's side:
//! [`read_credential_file`], [`validate_credential`]; header names [`ORIGIN_HEADER`],
//! [`EXPECT_ORIGIN_HEADER`] (and `tower_node::TOWER_HEADER`).
//!
//! Not covered: TLS (a bearer credential over plain HTTP can be read on the path, and by
//! whatever answers at the origin's address: put the tower API behind TLS), rotation
//! without re-issuing (issue again: the old credential stops working at once), rate
//! limiting of failed attempts.

use crate::api::common::ApiError;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use sha2::{Digest, Sha256};
use sovereign_logic::protocol::TowerId;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// Response header: the answering origin's id (32 hex digits).
pub const ORIGIN_HEADER: &str = "x-sovereign-origin";
/// Request header: the origin id the tower trusts; another origin answers 412.
pub const EXPECT_ORIGIN_HEADER: &str = "x-sovereign-expect-origin";
/// Shortest credential accepted (issued ones are 64 hex digits).
pub const CREDENTIAL_CHARS_MIN: usize = 32;
/// Longest credential accepted (a bound on header size).
pub const CREDENTIAL_CHARS_MAX: usize = 1024;
/// Most towers one origin keeps credentials for.
pub const TOWERS_MAX: usize = 100_000;
/// Largest `towers.json` read at start-up.
pub const TOWERS_FILE_BYTES_MAX: u64 = 32 * 1024 * 1024;
/// Largest credential file a tower reads.
pub const CREDENTIAL_FILE_BYTES_MAX: u64 = 4096;
const _: () = assert!(CREDENTIAL_CHARS_MIN <= CREDENTIAL_CHARS_MAX);

/// `WWW-Authenticate` of a 401 on the tower-facing API.
const CHALLENGE: &str = "Bearer realm=\"sovereign-towers\"";

type Digest32 = [u8; 32];

fn digest(credential: &str) -> Digest32 {
    Sha256::digest(credential.as_bytes()).into()
}

/// First 8 hex digits of a digest: names a credential in logs, listings and the audit
/// trail without revealing it.
fn credential_id(d: &Digest32) -> String {
    d[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a credential, the credential table or its file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// A credential of the wrong length or with characters a header cannot carry.
    #[error(
        "{what}: expected a credential of {CREDENTIAL_CHARS_MIN} to {CREDENTIAL_CHARS_MAX} visible ASCII characters, found {found}"
    )]
    Invalid {
        /// which credential (file or field)
        what: String,
        /// what was wrong with it
        found: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// the file
        path: String,
        /// the OS error
        source: std::io::Error,
    },
    /// `towers.json` does not have the expected shape.
    #[error("{path}: {reason}")]
    Corrupt {
        /// the file
        path: String,
        /// what is wrong, with the field
        reason: String,
    },
    /// Too many towers.
    #[error("at most {TOWERS_MAX} towers can hold credentials")]
    Full,
    /// The OS's random source failed.
    #[error("drawing a random credential: {0}")]
    Random(String),
}

/// Check a credential's shape (length, visible ASCII); `what` names it in the error.
pub fn validate_credential(what: &str, credential: &str) -> Result<(), CredentialError> {
    let chars = credential.chars().count();
    let found = if !(CREDENTIAL_CHARS_MIN..=CREDENTIAL_CHARS_MAX).contains(&chars) {
        format!("{chars} characters")
    } else if let Some(p) = credential.chars().position(|c| !c.is_ascii_graphic()) {
        format!("a character outside visible ASCII at position {p}")
    } else {
        return Ok(());
    };
    Err(CredentialError::Invalid {
        what: what.to_string(),
        found,
    })
}

/// Read a tower's credential file (`--credential FILE`): one line, the credential.
/// Warns when the file can be read by others than its owner.
pub fn read_credential_file(path: &Path) -> Result<String, CredentialError> {
    let io = |source| CredentialError::Io {
        path: path.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > CREDENTIAL_FILE_BYTES_MAX {
        return Err(CredentialError::Invalid {
            what: path.display().to_string(),
            found: format!("a file of {} bytes", meta.len()),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                mode = format!("{mode:o}"),
                "the tower credential file can be read by other users; chmod 600 it"
            );
        }
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let credential = text.trim().to_string();
    validate_credential(&path.display().to_string(), &credential)?;
    Ok(credential)
}

/// Write `credential` to `path` with mode 0600 (created or truncated), fsynced.
pub fn write_credential_file(path: &Path, credential: &str) -> Result<(), CredentialError> {
    let io = |source| CredentialError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io)?;
    #[cfg(unix)]
    {
        // An existing file keeps its mode on open: tighten it.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
    }
    f.write_all(format!("{credential}\n").as_bytes())
        .map_err(io)?;
    f.sync_all().map_err(io)
}

/// One tower's stored credential.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    /// SHA-256 of the credential, 64 hex digits.
    sha256: String,
    /// When it was issued (RFC 3339 UTC).
    issued: String,
}

/// `DATA/towers.json`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TowersFile {
    version: u32,
    towers: BTreeMap<String, Stored>,
}

#[derive(Clone, Debug)]
struct Entry {
    digest: Digest32,
    issued: String,
}

/// A tower with a credential, as listed (never the credential or its full digest).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct TowerInfo {
    /// The tower's number.
    pub tower: u32,
    /// First 8 hex digits of the credential's SHA-256 (never the credential).
    #[schema(pattern = "^[0-9a-f]{8}$")]
    pub credential_id: String,
    /// When it was issued (RFC 3339 UTC).
    #[schema(format = DateTime)]
    pub issued: String,
}

/// A credential just issued: shown once, never stored.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The tower.
    pub tower: TowerId,
    /// The secret (64 hex digits).
    pub credential: String,
    /// Its id (first 8 hex digits of its SHA-256).
    pub credential_id: String,
    /// Whether it replaced an earlier credential of the tower (which stops working).
    pub replaced: bool,
}

struct Inner {
    table: RwLock<BTreeMap<TowerId, Entry>>,
    /// Serialises changes (file write, then table swap).
    change: Mutex<()>,
    /// Where the table is kept (`None`: in memory, for tests).
    path: Option<PathBuf>,
    allow_unauthenticated: bool,
}

/// The origin's table of tower credentials (SHA-256 digests only). Cheap to clone.
#[derive(Clone)]
pub struct TowerCredentials {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TowerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Ids only, never digests in full.
        let mut l = f.debug_list();
        for i in self.list() {
            l.entry(&format_args!("tower-{}:{}", i.tower, i.credential_id));
        }
        l.finish()
    }
}

fn read_lock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

impl TowerCredentials {
    fn with(table: BTreeMap<TowerId, Entry>, path: Option<PathBuf>, allow: bool) -> Self {
        TowerCredentials {
            inner: Arc::new(Inner {
                table: RwLock::new(table),
                change: Mutex::new(()),
                path,
                allow_unauthenticated: allow,
            }),
        }
    }

    /// An empty table kept in memory only (tests).
    pub fn in_memory() -> Self {
        Self::with(BTreeMap::new(), None, false)
    }

    /// The table kept in `path` (`DATA/towers.json`); empty if the file does not exist.
    /// `allow_unauthenticated` is `--allow-unauthenticated-towers`.
    pub fn open(path: PathBuf, allow_unauthenticated: bool) -> Result<Self, CredentialError> {
        let shown = path.display().to_string();
        let corrupt = |reason: String| CredentialError::Corrupt {
            path: shown.clone(),
            reason,
        };
        let table = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => {
                return Err(CredentialError::Io {
                    path: shown,
                    source,
                });
            }
            Ok(meta) if meta.len() > TOWERS_FILE_BYTES_MAX => {
                return Err(corrupt(format!(
                    "{} bytes, more than the {TOWERS_FILE_BYTES_MAX} accepted",
                    meta.len()
                )));
            }
            Ok(_) => {
                let bytes = std::fs::read(&path).map_err(|source| CredentialError::Io {
                    path: shown.clone(),
                    source,
                })?;
                let file: TowersFile =
                    sovereign_wire::from_json(&bytes).map_err(|e| corrupt(e.to_string()))?;
                if file.version != 1 {
                    return Err(corrupt(format!(
                        "field `version`: expected 1, found {}",
                        file.version
                    )));
                }
                if file.towers.len() > TOWERS_MAX {
                    return Err(corrupt(format!("more than {TOWERS_MAX} towers")));
                }
                let mut table = BTreeMap::new();
                for (n, stored) in file.towers {
                    let tower: u32 = n.parse().map_err(|_| {
                        corrupt(format!(
                            "field `towers`: expected tower numbers as keys, found {n:?}"
                        ))
                    })?;
                    let digest = parse_digest(&stored.sha256).ok_or_else(|| {
                        corrupt(format!(
                            "field `towers.{n}.sha256`: expected 64 lower-case hex digits"
                        ))
                    })?;
                    table.insert(
                        TowerId(tower),
                        Entry {
                            digest,
                            issued: stored.issued,
                        },
                    );
                }
                table
            }
        };
        Ok(Self::with(table, Some(path), allow_unauthenticated))
    }

    /// Whether `--allow-unauthenticated-towers` is on.
    pub fn allows_unauthenticated(&self) -> bool {
        self.inner.allow_unauthenticated
    }

    /// The towers holding a credential.
    pub fn towers(&self) -> BTreeSet<TowerId> {
        read_lock(&self.inner.table).keys().copied().collect()
    }

    /// Every tower with its credential's id, in tower order.
    pub fn list(&self) -> Vec<TowerInfo> {
        read_lock(&self.inner.table)
            .iter()
            .map(|(t, e)| TowerInfo {
                tower: t.0,
                credential_id: credential_id(&e.digest),
                issued: e.issued.clone(),
            })
            .collect()
    }

    /// Issue a new random credential for `tower` (replacing its old one, which stops
    /// working at once); kept durably before it is returned.
    pub fn issue(&self, tower: TowerId) -> Result<Issued, CredentialError> {
        let mut secret = [0u8; 32];
        secret_bytes(&mut secret).map_err(CredentialError::Random)?;
        let credential: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        self.register(tower, &credential)
    }

    /// Keep `credential` (validated) as `tower`'s, replacing any earlier one.
    pub fn register(&self, tower: TowerId, credential: &str) -> Result<Issued, CredentialError> {
        validate_credential("credential", credential)?;
        let d = digest(credential);
        let replaced = self.change(|table| {
            if !table.contains_key(&tower) && table.len() >= TOWERS_MAX {
                return Err(CredentialError::Full);
            }
            let issued = crate::audit::rfc3339_utc(std::time::SystemTime::now());
            Ok(table.insert(tower, Entry { digest: d, issued }).is_some())
        })?;
        Ok(Issued {
            tower,
            credential: credential.to_string(),
            credential_id: credential_id(&d),
            replaced,
        })
    }

    /// Revoke `tower`'s credential; whether it had one.
    pub fn revoke(&self, tower: TowerId) -> Result<bool, CredentialError> {
        self.change(|table| Ok(table.remove(&tower).is_some()))
    }

    /// Apply `f` to a copy of the table, persist the copy, then swap it in.
    fn change<R>(
        &self,
        f: impl FnOnce(&mut BTreeMap<TowerId, Entry>) -> Result<R, CredentialError>,
    ) -> Result<R, CredentialError> {
        let _serial = self.inner.change.lock().unwrap_or_else(|p| p.into_inner());
        let mut table = read_lock(&self.inner.table).clone();
        let r = f(&mut table)?;
        if let Some(path) = &self.inner.path {
            persist(path, &table)?;
        }
        *self.inner.table.write().unwrap_or_else(|p| p.into_inner()) = table;
        Ok(r)
    }

    /// Who is calling: the tower named by the `x-sovereign-tower` header, if the
    /// `Authorization: Bearer` credential is that tower's (see the module doc).
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<TowerId, TowerAuthError> {
        let tower = claimed_tower(headers)?;
        let presented = match bearer(headers)? {
            Some(c) => c,
            None if self.inner.allow_unauthenticated => return Ok(tower),
            None => return Err(TowerAuthError::Missing),
        };
        let table = read_lock(&self.inner.table);
        if table.is_empty() && !self.inner.allow_unauthenticated {
            return Err(TowerAuthError::NotConfigured);
        }
        let d = digest(presented);
        let mut found: Option<TowerId> = None;
        for (t, e) in table.iter() {
            let mut diff = 0u8;
            for (a, b) in e.digest.iter().zip(d.iter()) {
                diff |= a ^ b;
            }
            // `black_box`: no early-exit comparison; the branch depends on the whole digest.
            if std::hint::black_box(diff) == 0 {
                found = Some(*t);
            }
        }
        match found {
            None => Err(TowerAuthError::Unknown),
            Some(t) if t == tower => Ok(tower),
            Some(holder) => Err(TowerAuthError::WrongTower {
                claimed: tower,
                holder,
            }),
        }
    }
}

/// Fill `buf` from the OS's cryptographic random source. Secrets (tower credentials, the
/// origin's identity, device identities, key nonces) must be unpredictable: the logic's
/// injected `Entropy` (a seeded SplitMix64, which the workspace's lint steers randomness
/// to) is for jitter, not for secrets, so this is the one place the servers read the OS's
/// randomness.
#[allow(clippy::disallowed_methods)]
pub fn secret_bytes(buf: &mut [u8]) -> Result<(), String> {
    getrandom::fill(buf).map_err(|e| e.to_string())
}

fn parse_digest(hex: &str) -> Option<Digest32> {
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut d = [0u8; 32];
    for (i, byte) in d.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(d)
}

/// Write the table to `path` atomically, readable by the owner only.
fn persist(path: &Path, table: &BTreeMap<TowerId, Entry>) -> Result<(), CredentialError> {
    let file = TowersFile {
        version: 1,
        towers: table
            .iter()
            .map(|(t, e)| {
                let hex: String = e.digest.iter().map(|b| format!("{b:02x}")).collect();
                (
                    t.0.to_string(),
                    Stored {
                        sha256: hex,
                        issued: e.issued.clone(),
                    },
                )
            })
            .collect(),
    };
    let bytes = serde_json::to_vec_pretty(&file).map_err(|e| CredentialError::Corrupt {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let tmp = path.with_extension("json.tmp");
    write_credential_file(&tmp, &String::from_utf8_lossy(&bytes))?;
    let io = |source| CredentialError::Io {
        path: path.display().to_string(),
        source,
    };
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

/// The tower number claimed by the `x-sovereign-tower` header.
fn claimed_tower(headers: &HeaderMap) -> Result<TowerId, TowerAuthError> {
    let h = crate::tower_node::TOWER_HEADER;
    let mut values = headers.get_all(h).iter();
    let value = values.next().ok_or(TowerAuthError::MissingTower)?;
    if values.next().is_some() {
        return Err(TowerAuthError::BadTowerHeader);
    }
    value
        .to_str()
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .map(TowerId)
        .ok_or(TowerAuthError::BadTowerHeader)
}

/// The bearer credential, `None` without an Authorization header.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, TowerAuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(TowerAuthError::Malformed(
            "more than one Authorization header",
        ));
    }
    let text = value
        .to_str()
        .map_err(|_| TowerAuthError::Malformed("not visible ASCII"))?;
    let (scheme, rest) = text
        .split_once(' ')
        .ok_or(TowerAuthError::Malformed("no scheme"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(TowerAuthError::Malformed("scheme is not Bearer"));
    }
    let credential = rest.trim_matches(' ');
    if credential.is_empty() {
        return Err(TowerAuthError::Malformed("empty credential"));
    }
    Ok(Some(credential))
}

/// Why a tower's request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TowerAuthError {
    /// No `x-sovereign-tower` header: the caller did not say which tower it is.
    #[error("missing x-sovereign-tower header; a tower names itself by number")]
    MissingTower,
    /// The `x-sovereign-tower` header is not one tower number.
    #[error("expected the tower's number (0..=4294967295) in one x-sovereign-tower header")]
    BadTowerHeader,
    /// No credential presented.
    #[error(
        "missing tower credential; expected `Authorization: Bearer <credential>` (issued with `sovereign origin add-tower`)"
    )]
    Missing,
    /// The Authorization header is not a bearer credential.
    #[error("malformed Authorization header: {0}; expected `Authorization: Bearer <credential>`")]
    Malformed(&'static str),
    /// No tower credential is provisioned at this origin.
    #[error(
        "no tower credential is provisioned at this origin: every tower is refused; issue one with `sovereign origin add-tower --tower N` (or POST /admin/towers/N)"
    )]
    NotConfigured,
    /// The credential is no tower's.
    #[error("unknown tower credential")]
    Unknown,
    /// The credential belongs to another tower than the one claimed.
    #[error("the credential presented is not {claimed}'s")]
    WrongTower {
        /// the tower named in the header
        claimed: TowerId,
        /// the tower the credential belongs to (not revealed to the caller)
        holder: TowerId,
    },
}

impl TowerAuthError {
    /// The metric label of the refusal (`sovereign_tower_auth_refusals_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            TowerAuthError::MissingTower | TowerAuthError::BadTowerHeader => "tower_header",
            TowerAuthError::Missing | TowerAuthError::Malformed(_) => "missing",
            TowerAuthError::NotConfigured => "not_configured",
            TowerAuthError::Unknown => "unknown",
            TowerAuthError::WrongTower { .. } => "wrong_tower",
        }
    }

    /// Every label [`TowerAuthError::reason`] gives.
    pub const REASONS: [&'static str; 5] = [
        "tower_header",
        "missing",
        "not_configured",
        "unknown",
        "wrong_tower",
    ];
}

impl From<TowerAuthError> for ApiError {
    fn from(e: TowerAuthError) -> ApiError {
        let status = match &e {
            TowerAuthError::BadTowerHeader => StatusCode::BAD_REQUEST,
            TowerAuthError::WrongTower { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        let field = match &e {
            TowerAuthError::MissingTower | TowerAuthError::BadTowerHeader => {
                crate::tower_node::TOWER_HEADER
            }
            _ => "authorization",
        };
        let mut err = ApiError::new(status, e.to_string()).field(field);
        if status == StatusCode::UNAUTHORIZED {
            err = err.header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(CHALLENGE),
            );
        }
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "tower-one-credential-0123456789abcdef";
    const B: &str = "tower-two-credential-0123456789abcdef";

    fn headers(tower: Option<&str>, credential: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(t) = tower {
            h.insert(
                crate::tower_node::TOWER_HEADER,
                HeaderValue::from_str(t).unwrap(),
            );
        }
        if let Some(c) = credential {
            h.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {c}")).unwrap(),
            );
        }
        h
    }

    fn two() -> TowerCredentials {
        let c = TowerCredentials::in_memory();
        c.register(TowerId(1), A).unwrap();
        c.register(TowerId(2), B).unwrap();
        c
    }

    #[test]
    fn a_tower_is_who_its_credential_says() {
        // Goal: the right credential authenticates its tower; another tower's is 403;
        // an unknown or missing one is 401 with a challenge; a bad header is 400.
        let c = two();
        assert_eq!(c.authenticate(&headers(Some("1"), Some(A))), Ok(TowerId(1)));
        assert_eq!(c.authenticate(&headers(Some("2"), Some(B))), Ok(TowerId(2)));
        let e = c.authenticate(&headers(Some("2"), Some(A))).unwrap_err();
        assert_eq!(
            e,
            TowerAuthError::WrongTower {
                claimed: TowerId(2),
                holder: TowerId(1)
            }
        );
        assert_eq!(ApiError::from(e).status, StatusCode::FORBIDDEN);
        for (h, want) in [
            (headers(Some("1"), None), TowerAuthError::Missing),
            (
                headers(Some("1"), Some(&A[..A.len() - 1])),
                TowerAuthError::Unknown,
            ),
            (headers(None, Some(A)), TowerAuthError::MissingTower),
            (
                headers(Some("one"), Some(A)),
                TowerAuthError::BadTowerHeader,
            ),
        ] {
            assert_eq!(c.authenticate(&h), Err(want.clone()));
            let api = ApiError::from(want.clone());
            let challenged = api
                .headers
                .iter()
                .any(|(k, _)| k == header::WWW_AUTHENTICATE);
            assert_eq!(
                challenged,
                api.status == StatusCode::UNAUTHORIZED,
                "{want:?}"
            );
        }
        // Revoked: unknown from then on.
        assert!(c.revoke(TowerId(1)).unwrap());
        assert_eq!(
            c.authenticate(&headers(Some("1"), Some(A))),
            Err(TowerAuthError::Unknown)
        );
        assert!(!c.revoke(TowerId(1)).unwrap());
    }

    #[test]
    fn nothing_provisioned_refuses_everyone_unless_explicitly_allowed() {
        // Goal: fail closed without credentials; --allow-unauthenticated-towers takes a
        // tower without a credential at its word but still checks a presented one.
        let c = TowerCredentials::in_memory();
        assert_eq!(
            c.authenticate(&headers(Some("1"), Some(A))),
            Err(TowerAuthError::NotConfigured)
        );
        assert_eq!(
            c.authenticate(&headers(Some("1"), None)),
            Err(TowerAuthError::Missing)
        );
        let open = TowerCredentials::with(BTreeMap::new(), None, true);
        assert_eq!(open.authenticate(&headers(Some("7"), None)), Ok(TowerId(7)));
        assert_eq!(
            open.authenticate(&headers(Some("7"), Some(A))),
            Err(TowerAuthError::Unknown)
        );
    }

    #[test]
    fn the_table_keeps_digests_only_and_survives_a_restart() {
        // Goal: towers.json holds SHA-256 digests (never a credential), mode 0600, and a
        // reopened table authenticates the same towers; a damaged file names the field.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("towers.json");
        let c = TowerCredentials::open(path.clone(), false).unwrap();
        let issued = c.issue(TowerId(4)).unwrap();
        assert_eq!(issued.credential.len(), 64);
        assert!(!issued.replaced);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&issued.credential), "{text}");
        assert!(text.contains(&issued.credential_id));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let again = TowerCredentials::open(path.clone(), false).unwrap();
        assert_eq!(
            again.authenticate(&headers(Some("4"), Some(&issued.credential))),
            Ok(TowerId(4))
        );
        // Re-issuing replaces: the old credential stops working.
        let second = again.issue(TowerId(4)).unwrap();
        assert!(second.replaced);
        assert_eq!(
            again.authenticate(&headers(Some("4"), Some(&issued.credential))),
            Err(TowerAuthError::Unknown)
        );
        std::fs::write(
            &path,
            br#"{"version":1,"towers":{"4":{"sha256":"zz","issued":"x"}}}"#,
        )
        .unwrap();
        let err = TowerCredentials::open(path, false).unwrap_err().to_string();
        assert!(err.contains("towers.4.sha256"), "{err}");
    }

    #[test]
    fn credential_files_are_checked_and_private() {
        // Goal: a credential file is trimmed and validated; one written here is 0600.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tower.credential");
        write_credential_file(&path, A).unwrap();
        assert_eq!(read_credential_file(&path).unwrap(), A);
        std::fs::write(&path, "short\n").unwrap();
        let err = read_credential_file(&path).unwrap_err().to_string();
        assert!(err.contains("5 characters"), "{err}");
        assert!(read_credential_file(&dir.path().join("none")).is_err());
    }
}
