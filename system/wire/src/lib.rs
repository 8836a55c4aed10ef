//! Sovereign's JSON encodings: the bodies of the HTTP API and the records the stores keep.
//!
//! The logic crate's types carry no serialisation; this crate maps each onto a DTO with a
//! stable JSON shape (what the OpenAPI document describes) and back. Decoding validates:
//! a hash is 64 hex digits, a priority is `P0`..`P3`, a manifest's sizes add up, unknown
//! fields are refused. Every error names the field and what was expected.
//!
//! Map: [`ManifestDto`], [`CatalogEntryDto`], [`CatalogChangesDto`] / [`RunDto`],
//! [`OperationDto`] / [`OpKindDto`], [`OpOutcomeDto`], [`OpReceiptDto`], [`PowerReadingDto`], [`origin_id`]; records:
//! [`AppliedDto`] (with the forwarding tower, absent in records written before it was
//! kept), [`OriginDto`] (the origin's identity, a tower's trusted origin),
//! [`encode_record`], [`decode_record`]; [`event`]: the logic's events as the servers
//! stream them; errors: [`WireError`]; [`input`]: reading an
//! input file with a size cap before it is parsed (the crate's only I/O, shared by every
//! file reader).
//!
//! Every DTO of the HTTP APIs derives [`utoipa::ToSchema`]: the servers' OpenAPI documents
//! take their schemas from here (under the names given with `#[schema(as = …)]`), with the
//! limits decoding checks written as `pattern`, `minimum`, `maxLength`, so a document
//! cannot drift from what is serialized.
//!
//! Not covered: chunk bytes (octet streams on the wire, files in the stores).

pub mod event;
pub mod input;

use serde::{Deserialize, Serialize};
use sovereign_logic::content::{
    ChunkHash, ChunkRef, ItemId, Manifest, ManifestChanges, Priority, Run,
};
use sovereign_logic::io::{Key, Record};
use sovereign_logic::protocol::{
    CatalogEntry, DeviceId, IdemKey, OpKind, OpOutcome, OpReceipt, OpStatus, Operation, OriginId,
    TowerId,
};
use sovereign_logic::tower::power::{PowerReading, SOC_PERMILLE_MAX, UpsState};
use utoipa::ToSchema;

/// Declare `$ty`, a type for the OpenAPI documents only: a string schema named `$name`
/// whose values are `$names`, the names a logic type spells (so they are not restated).
#[macro_export]
macro_rules! names_schema {
    ($(#[$doc:meta])* $ty:ident as $name:literal, $description:literal, $names:expr) => {
        $(#[$doc])*
        pub struct $ty;

        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::Type::String)
                    .description(Some($description))
                    .enum_values(Some($names))
                    .into()
            }
        }

        impl utoipa::ToSchema for $ty {
            fn name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }
        }
    };
}

names_schema!(
    /// The names [`Priority`] displays and parses.
    PriorityName as "Priority",
    "Content class: P0 critical (alerts), P1 important, P2 normal, P3 bulk.",
    Priority::ALL.map(|p| p.to_string())
);

/// Why a body or record was refused: which field, and what was expected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// Not valid JSON for the expected shape (serde's message has line and column).
    #[error("{0}")]
    Json(String),
    /// A field had a value of the right type but an invalid content.
    #[error("field `{field}`: expected {expected}, found {found}")]
    Field {
        /// the JSON path of the field
        field: String,
        /// what a valid value looks like
        expected: String,
        /// what came (shortened)
        found: String,
    },
}

fn field_err(field: &str, expected: &str, found: impl std::fmt::Display) -> WireError {
    let found: String = found.to_string().chars().take(80).collect();
    WireError::Field {
        field: field.to_string(),
        expected: expected.to_string(),
        found,
    }
}

fn hash(field: &str, s: &str) -> Result<ChunkHash, WireError> {
    s.parse().map_err(|_| {
        field_err(
            field,
            "64 lower-case hex digits (SHA-256)",
            format!("{s:?}"),
        )
    })
}

fn priority(field: &str, s: &str) -> Result<Priority, WireError> {
    s.parse()
        .map_err(|_| field_err(field, "P0, P1, P2 or P3", format!("{s:?}")))
}

/// Parse JSON into `T`, mapping serde's error to [`WireError`]: the path of the field
/// (`op.amount_minor`) where serde can tell it, then serde's message with line and column.
pub fn from_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, WireError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            WireError::Json(inner.to_string())
        } else {
            WireError::Json(format!("field `{path}`: {inner}"))
        }
    })?;
    // Trailing bytes after the value are an error too.
    de.end().map_err(|e| WireError::Json(e.to_string()))?;
    Ok(value)
}

/// One chunk of a manifest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ChunkRef)]
pub struct ChunkRefDto {
    /// SHA-256 of the chunk's bytes, lower-case hex.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub sha256: String,
    /// Length in bytes.
    #[schema(minimum = 1)]
    pub len: u32,
}

/// A published version of an item: its chunks in order.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Manifest)]
pub struct ManifestDto {
    /// The item's id.
    #[schema(min_length = 1)]
    pub item: String,
    /// Version (1, 2, …).
    #[schema(minimum = 1)]
    pub version: u64,
    /// `P0`..`P3`.
    #[schema(value_type = PriorityName)]
    pub priority: String,
    /// Total bytes: the sum of the chunk lengths.
    pub size: u64,
    /// SHA-256 of the whole content, hex; also the item's ETag.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub sha256: String,
    /// The chunks in order.
    pub chunks: Vec<ChunkRefDto>,
}

impl From<&Manifest> for ManifestDto {
    fn from(m: &Manifest) -> Self {
        ManifestDto {
            item: m.item.0.clone(),
            version: m.version,
            priority: m.priority.to_string(),
            size: m.size,
            sha256: m.digest.to_hex(),
            chunks: chunk_refs(&m.chunks),
        }
    }
}

/// Chunk references in their wire form.
fn chunk_refs(refs: &[ChunkRef]) -> Vec<ChunkRefDto> {
    refs.iter()
        .map(|c| ChunkRefDto {
            sha256: c.hash.to_hex(),
            len: c.len,
        })
        .collect()
}

impl ManifestDto {
    /// The manifest, validated (hashes, priority, sizes adding up, no empty chunk).
    pub fn to_manifest(&self) -> Result<Manifest, WireError> {
        if self.item.is_empty() {
            return Err(field_err("item", "a non-empty item id", "\"\""));
        }
        let priority = priority("priority", &self.priority)?;
        let mut chunks = Vec::with_capacity(self.chunks.len());
        for (i, c) in self.chunks.iter().enumerate() {
            chunks.push(ChunkRef {
                hash: hash(&format!("chunks[{i}].sha256"), &c.sha256)?,
                len: c.len,
            });
        }
        let m = Manifest {
            item: ItemId(self.item.clone()),
            version: self.version,
            priority,
            size: self.size,
            digest: hash("sha256", &self.sha256)?,
            chunks,
        };
        if !m.is_consistent() {
            return Err(field_err(
                "size",
                "the sum of the chunk lengths, and no empty chunk",
                self.size,
            ));
        }
        Ok(m)
    }
}

/// A catalog entry: a manifest and its position in the origin's publish log.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CatalogEntry)]
pub struct CatalogEntryDto {
    /// Position in the origin's publish log.
    #[schema(minimum = 1)]
    pub seq: u64,
    /// The version.
    pub manifest: ManifestDto,
}

impl From<&CatalogEntry> for CatalogEntryDto {
    fn from(e: &CatalogEntry) -> Self {
        CatalogEntryDto {
            seq: e.seq,
            manifest: ManifestDto::from(&e.manifest),
        }
    }
}

impl CatalogEntryDto {
    /// The entry, validated.
    pub fn to_entry(&self) -> Result<CatalogEntry, WireError> {
        Ok(CatalogEntry {
            seq: self.seq,
            manifest: self.manifest.to_manifest()?,
        })
    }
}

/// One run of a manifest sent as changes: `{"keep": {"start": 0, "len": 12}}` (the held
/// version's chunks `start..start + len`) or `{"new": [chunk, ...]}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
#[schema(as = ManifestRun)]
pub enum RunDto {
    /// Chunks of the held version, in order.
    Keep {
        /// index of the first chunk in the held version's list
        start: u32,
        /// how many
        len: u32,
    },
    /// Chunk references the held version does not list here.
    New(Vec<ChunkRefDto>),
}

/// A catalog entry sent as the changes from the version of the item the tower holds
/// (`base_version`): the tower rebuilds the chunk list and keeps it only if its digest is
/// `list_sha256`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CatalogChanges)]
pub struct CatalogChangesDto {
    /// Position in the origin's publish log.
    #[schema(minimum = 1)]
    pub seq: u64,
    /// The item's id.
    #[schema(min_length = 1)]
    pub item: String,
    /// The new version.
    #[schema(minimum = 1)]
    pub version: u64,
    /// `P0`..`P3`.
    #[schema(value_type = PriorityName)]
    pub priority: String,
    /// Total bytes of the new version.
    pub size: u64,
    /// SHA-256 of the new version's whole content, hex.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub sha256: String,
    /// The version the runs refer to.
    #[schema(minimum = 1)]
    pub base_version: u64,
    /// SHA-256 of the rebuilt manifest (item, version, class, size, digest and chunk
    /// list), hex.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub list_sha256: String,
    /// The new chunk list, run by run.
    pub runs: Vec<RunDto>,
}

impl CatalogChangesDto {
    /// The wire form of an entry sent as changes.
    pub fn new(seq: u64, c: &ManifestChanges) -> Self {
        CatalogChangesDto {
            seq,
            item: c.item.0.clone(),
            version: c.version,
            priority: c.priority.to_string(),
            size: c.size,
            sha256: c.digest.to_hex(),
            base_version: c.base_version,
            list_sha256: c.list_digest.to_hex(),
            runs: (c.runs.iter())
                .map(|r| match r {
                    Run::Keep { start, len } => RunDto::Keep {
                        start: *start,
                        len: *len,
                    },
                    Run::New(r) => RunDto::New(chunk_refs(r)),
                })
                .collect(),
        }
    }

    /// `(seq, changes)`, validated field by field (what the runs rebuild is checked by
    /// [`ManifestChanges::apply`] against the held version).
    pub fn to_changes(&self) -> Result<(u64, ManifestChanges), WireError> {
        if self.item.is_empty() {
            return Err(field_err("item", "a non-empty item id", "\"\""));
        }
        let mut runs = Vec::with_capacity(self.runs.len());
        for (i, r) in self.runs.iter().enumerate() {
            runs.push(match r {
                RunDto::Keep { start, len } => Run::Keep {
                    start: *start,
                    len: *len,
                },
                RunDto::New(refs) => {
                    let mut out = Vec::with_capacity(refs.len());
                    for (j, c) in refs.iter().enumerate() {
                        out.push(ChunkRef {
                            hash: hash(&format!("runs[{i}].new[{j}].sha256"), &c.sha256)?,
                            len: c.len,
                        });
                    }
                    Run::New(out)
                }
            });
        }
        let changes = ManifestChanges {
            item: ItemId(self.item.clone()),
            version: self.version,
            priority: priority("priority", &self.priority)?,
            size: self.size,
            digest: hash("sha256", &self.sha256)?,
            base_version: self.base_version,
            runs,
            list_digest: hash("list_sha256", &self.list_sha256)?,
        };
        Ok((self.seq, changes))
    }
}

/// What a device asks to be done (`"type"` selects the variant).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
#[schema(as = OpKind)]
pub enum OpKindDto {
    /// A message to someone.
    Message {
        /// recipient
        to: String,
        /// text
        body: String,
    },
    /// A filled-in form: fields as `[name, value]` pairs in order.
    Form {
        /// form name
        name: String,
        /// fields
        fields: Vec<(String, String)>,
    },
    /// Money for the ledger, in integer minor units.
    Contribution {
        /// the community
        #[schema(min_length = 1, max_length = 128)]
        community: String,
        /// the contributing nation
        #[schema(min_length = 1, max_length = 128)]
        nation: String,
        /// amount in minor units (cents); split 50/30/20 community/nation/reserve
        #[schema(minimum = 1)]
        amount_minor: u64,
    },
}

impl From<&OpKind> for OpKindDto {
    fn from(k: &OpKind) -> Self {
        match k {
            OpKind::Message { to, body } => OpKindDto::Message {
                to: to.clone(),
                body: body.clone(),
            },
            OpKind::Form { name, fields } => OpKindDto::Form {
                name: name.clone(),
                fields: fields.clone(),
            },
            OpKind::Contribution {
                community,
                nation,
                amount_minor,
            } => OpKindDto::Contribution {
                community: community.clone(),
                nation: nation.clone(),
                amount_minor: *amount_minor,
            },
        }
    }
}

impl From<OpKindDto> for OpKind {
    fn from(k: OpKindDto) -> Self {
        match k {
            OpKindDto::Message { to, body } => OpKind::Message { to, body },
            OpKindDto::Form { name, fields } => OpKind::Form { name, fields },
            OpKindDto::Contribution {
                community,
                nation,
                amount_minor,
            } => OpKind::Contribution {
                community,
                nation,
                amount_minor,
            },
        }
    }
}

/// Longest idempotency key accepted on the wire, in bytes.
pub const IDEM_KEY_MAX: usize = 256;

/// Check an idempotency key: 1..=256 visible ASCII characters.
pub fn idem_key(field: &str, s: &str) -> Result<IdemKey, WireError> {
    if s.is_empty() || s.len() > IDEM_KEY_MAX || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(field_err(
            field,
            "1 to 256 visible ASCII characters",
            format!("{s:?}"),
        ));
    }
    Ok(IdemKey(s.into()))
}

/// A device identity on the wire: its canonical hex form (`"7"`, `"3fa2…"`, see
/// [`DeviceId::hex`]). Records stored before identities were 128-bit hold a number, which
/// still decodes; nothing writes one any more.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(untagged)]
#[schema(as = Device)]
pub enum DeviceDto {
    /// The canonical hex form.
    #[schema(value_type = DeviceHex)]
    Hex(String),
    /// A device number from before (decoded as that number).
    Legacy(u32),
}

/// A device identity's canonical hex form in the documents (schema `DeviceId`):
/// [`DeviceDto::Hex`] holds it as a `String`.
pub struct DeviceHex;

impl utoipa::PartialSchema for DeviceHex {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some("^(0|[1-9a-f][0-9a-f]{0,31})$"))
            .description(Some(
                "A device's identity: 128 bits as lower-case hex without leading zeros, derived \
                 from the secret the device presents (the first 16 bytes of \
                 SHA-256(\"sovereign-device-id/1\" || secret)).",
            ))
            .into()
    }
}

impl ToSchema for DeviceHex {
    fn name() -> std::borrow::Cow<'static, str> {
        "DeviceId".into()
    }
}

impl From<DeviceId> for DeviceDto {
    fn from(d: DeviceId) -> Self {
        DeviceDto::Hex(d.hex())
    }
}

impl DeviceDto {
    /// The identity, validated (`field` names it in the error).
    pub fn to_device(&self, field: &str) -> Result<DeviceId, WireError> {
        match self {
            DeviceDto::Legacy(n) => Ok(DeviceId(u128::from(*n))),
            DeviceDto::Hex(s) => device_id(field, s),
        }
    }
}

/// Check a device identity in its canonical form: 1 to 32 lower-case hex digits without
/// leading zeros.
pub fn device_id(field: &str, s: &str) -> Result<DeviceId, WireError> {
    DeviceId::parse_hex(s).ok_or_else(|| {
        field_err(
            field,
            "a device identity: 1 to 32 lower-case hex digits without leading zeros",
            format!("{s:?}"),
        )
    })
}

/// One device operation as forwarded and stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Operation)]
pub struct OperationDto {
    /// The idempotency key.
    #[schema(pattern = "^[\\x21-\\x7e]{1,256}$")]
    pub key: String,
    /// The submitting device.
    pub device: DeviceDto,
    /// What to do.
    pub op: OpKindDto,
}

impl From<&Operation> for OperationDto {
    fn from(o: &Operation) -> Self {
        OperationDto {
            key: o.key.0.to_string(),
            device: DeviceDto::from(o.device),
            op: OpKindDto::from(&o.kind),
        }
    }
}

impl OperationDto {
    /// The operation, validated.
    pub fn to_operation(&self) -> Result<Operation, WireError> {
        Ok(Operation {
            key: idem_key("key", &self.key)?,
            device: self.device.to_device("device")?,
            kind: self.op.clone().into(),
        })
    }
}

/// What a tower knows of one operation, for its owner (`GET /v1/ops/{key}`;
/// `"status"` selects the variant).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(tag = "status", rename_all = "kebab-case", deny_unknown_fields)]
#[schema(as = OpStatus)]
pub enum OpStatusDto {
    /// Held durably at the tower, not yet confirmed by the origin.
    Pending {
        /// the key
        #[schema(pattern = "^[\\x21-\\x7e]{1,256}$")]
        key: String,
    },
    /// The origin's verdict on the operation it received under the key, whose
    /// fingerprint is `fingerprint`: if it is not the device's own operation's, its
    /// operation was not the one applied.
    Done {
        /// the key
        #[schema(pattern = "^[\\x21-\\x7e]{1,256}$")]
        key: String,
        /// the verdict
        outcome: OpOutcomeDto,
        /// SHA-256 fingerprint of the operation the verdict is about (its device and body,
        /// not its key)
        #[schema(pattern = "^[0-9a-f]{64}$")]
        fingerprint: String,
    },
    /// Nothing held under the key for this device: never acknowledged, another device's
    /// key, or confirmed longer ago than the tower remembers (30 days by default).
    Unknown {
        /// the key
        #[schema(pattern = "^[\\x21-\\x7e]{1,256}$")]
        key: String,
    },
}

impl OpStatusDto {
    /// The DTO of `status` for `key`.
    pub fn new(key: &IdemKey, status: &OpStatus) -> Self {
        let key = key.0.to_string();
        match status {
            OpStatus::Pending => OpStatusDto::Pending { key },
            OpStatus::Done {
                outcome,
                fingerprint,
            } => OpStatusDto::Done {
                key,
                outcome: OpOutcomeDto::from(outcome),
                fingerprint: fingerprint.to_hex(),
            },
            OpStatus::Unknown => OpStatusDto::Unknown { key },
        }
    }

    /// The key and status, validated.
    pub fn to_status(&self) -> Result<(IdemKey, OpStatus), WireError> {
        Ok(match self {
            OpStatusDto::Pending { key } => (idem_key("key", key)?, OpStatus::Pending),
            OpStatusDto::Unknown { key } => (idem_key("key", key)?, OpStatus::Unknown),
            OpStatusDto::Done {
                key,
                outcome,
                fingerprint,
            } => (
                idem_key("key", key)?,
                OpStatus::Done {
                    outcome: outcome.clone().into(),
                    fingerprint: hash("fingerprint", fingerprint)?,
                },
            ),
        })
    }
}

/// The origin's verdict on an operation (`"result"` selects the variant).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(tag = "result", rename_all = "kebab-case", deny_unknown_fields)]
#[schema(as = OpOutcome)]
pub enum OpOutcomeDto {
    /// Applied at position `seq` of the apply log.
    Applied {
        /// position (1-based)
        #[schema(minimum = 1)]
        seq: u64,
    },
    /// Same key, different body.
    Conflict,
    /// Invalid, recorded so it is not retried.
    Rejected {
        /// why
        reason: String,
    },
}

impl From<&OpOutcome> for OpOutcomeDto {
    fn from(o: &OpOutcome) -> Self {
        match o {
            OpOutcome::Applied { seq } => OpOutcomeDto::Applied { seq: *seq },
            OpOutcome::Conflict => OpOutcomeDto::Conflict,
            OpOutcome::Rejected { reason } => OpOutcomeDto::Rejected {
                reason: reason.clone(),
            },
        }
    }
}

impl From<OpOutcomeDto> for OpOutcome {
    fn from(o: OpOutcomeDto) -> Self {
        match o {
            OpOutcomeDto::Applied { seq } => OpOutcome::Applied { seq },
            OpOutcomeDto::Conflict => OpOutcome::Conflict,
            OpOutcomeDto::Rejected { reason } => OpOutcome::Rejected { reason },
        }
    }
}

/// The origin's answer for one forwarded key.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OpReceipt)]
pub struct OpReceiptDto {
    /// The key.
    #[schema(pattern = "^[\\x21-\\x7e]{1,256}$")]
    pub key: String,
    /// The outcome.
    pub outcome: OpOutcomeDto,
}

impl From<&OpReceipt> for OpReceiptDto {
    fn from(r: &OpReceipt) -> Self {
        OpReceiptDto {
            key: r.key.0.to_string(),
            outcome: OpOutcomeDto::from(&r.outcome),
        }
    }
}

impl OpReceiptDto {
    /// The receipt, validated.
    pub fn to_receipt(&self) -> Result<OpReceipt, WireError> {
        Ok(OpReceipt {
            key: idem_key("key", &self.key)?,
            outcome: self.outcome.clone().into(),
        })
    }
}

/// One reading of the charge controller / UPS, as a telemetry file or endpoint gives it:
/// `{"battery_soc": 0.82, "solar_w": 120.5, "load_w": 40, "ups": "online"}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PowerReading)]
pub struct PowerReadingDto {
    /// Battery state of charge, 0.0..=1.0.
    #[schema(minimum = 0, maximum = 1)]
    pub battery_soc: f64,
    /// Solar output in watts.
    #[schema(minimum = 0, maximum = 4_000_000)]
    pub solar_w: f64,
    /// The tower's load in watts.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 4_000_000)]
    pub load_w: f64,
    /// `online`, `on-battery` or `failed`.
    #[schema(value_type = UpsName)]
    pub ups: String,
}

/// The UPS's state in a power reading (documentation only: [`PowerReadingDto::ups`] is
/// checked when it is decoded).
#[derive(ToSchema)]
#[schema(as = Ups, rename_all = "kebab-case")]
pub enum UpsName {
    /// on mains
    Online,
    /// on battery
    OnBattery,
    /// failed
    Failed,
}

impl From<&PowerReading> for PowerReadingDto {
    fn from(r: &PowerReading) -> Self {
        PowerReadingDto {
            battery_soc: f64::from(r.soc_permille) / 1000.0,
            solar_w: f64::from(r.solar_mw) / 1000.0,
            load_w: f64::from(r.load_mw) / 1000.0,
            ups: match r.ups {
                UpsState::Online => "online",
                UpsState::OnBattery => "on-battery",
                UpsState::Failed => "failed",
            }
            .to_string(),
        }
    }
}

impl PowerReadingDto {
    /// The reading, validated (SoC within 0..=1, watts finite and not negative).
    pub fn to_reading(&self) -> Result<PowerReading, WireError> {
        if !(0.0..=1.0).contains(&self.battery_soc) {
            return Err(field_err(
                "battery_soc",
                "a ratio from 0.0 to 1.0",
                self.battery_soc,
            ));
        }
        let watts = |field: &str, w: f64| -> Result<u32, WireError> {
            if !w.is_finite() || !(0.0..=4_000_000.0).contains(&w) {
                return Err(field_err(field, "watts from 0 to 4000000", w));
            }
            Ok((w * 1000.0).round() as u32)
        };
        let ups = match self.ups.as_str() {
            "online" => UpsState::Online,
            "on-battery" => UpsState::OnBattery,
            "failed" => UpsState::Failed,
            other => {
                return Err(field_err(
                    "ups",
                    "online, on-battery or failed",
                    format!("{other:?}"),
                ));
            }
        };
        Ok(PowerReading {
            soc_permille: ((self.battery_soc * f64::from(SOC_PERMILLE_MAX)).round() as u16)
                .min(SOC_PERMILLE_MAX),
            solar_mw: watts("solar_w", self.solar_w)?,
            load_mw: watts("load_w", self.load_w)?,
            ups,
        })
    }
}

/// A stored operation outcome (origin side): the operation as first received, what
/// applying it did, and which tower forwarded it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AppliedDto {
    /// The operation.
    pub op: OperationDto,
    /// Its outcome.
    pub outcome: OpOutcomeDto,
    /// The number of the tower that forwarded it first; absent in records written before
    /// the origin kept it (they decode with `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tower: Option<u32>,
}

/// Check an origin id: 32 lower-case hex digits.
pub fn origin_id(field: &str, s: &str) -> Result<OriginId, WireError> {
    s.parse().map_err(|_| {
        field_err(
            field,
            "32 lower-case hex digits (an origin id)",
            format!("{s:?}"),
        )
    })
}

/// An origin identity as stored: the origin's own (`{"origin": "…"}`), or the one a
/// tower trusts (`{"origin": null}` while a re-home is pending).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OriginDto {
    /// 32 hex digits, or null.
    pub origin: Option<String>,
}

impl OriginDto {
    fn of(id: Option<OriginId>) -> OriginDto {
        OriginDto {
            origin: id.map(|i| i.to_string()),
        }
    }

    fn id(&self) -> Result<Option<OriginId>, WireError> {
        self.origin
            .as_deref()
            .map(|s| origin_id("origin", s))
            .transpose()
    }
}

/// A tower's stored memory of a confirmed operation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConfirmedDto {
    /// The key.
    pub key: String,
    /// The fingerprint of the operation forwarded under it (hex SHA-256).
    pub fingerprint: String,
    /// The origin's verdict.
    pub outcome: OpOutcomeDto,
    /// Confirmation order at the tower.
    pub seq: u64,
}

/// The kind of a record's key, as stores name it (a table name, a file suffix).
pub fn key_kind(key: &Key) -> &'static str {
    match key {
        Key::Chunk(_) => "chunk",
        Key::Entry(_) => "entry",
        Key::Outbox(_) => "outbox",
        Key::Applied(_) => "applied",
        Key::Confirmed(_) => "confirmed",
        Key::Awaiting(_) => "awaiting",
        Key::Identity => "identity",
        Key::TrustedOrigin => "trust",
    }
}

/// The string form of a key within its kind (hash hex, item id, idempotency key).
pub fn key_name(key: &Key) -> String {
    match key {
        Key::Chunk(h) => h.to_hex(),
        Key::Entry(i) => i.0.clone(),
        Key::Outbox(k) | Key::Applied(k) | Key::Confirmed(k) | Key::Awaiting(k) => k.0.to_string(),
        Key::Identity | Key::TrustedOrigin => "origin".to_string(),
    }
}

/// Encode a non-chunk record as JSON (chunks are stored as files, not encoded). Returns
/// `None` for a chunk.
pub fn encode_record(record: &Record) -> Option<Vec<u8>> {
    let v = match record {
        Record::Chunk(_) => return None,
        Record::Entry(e) => serde_json::to_vec(&CatalogEntryDto::from(e)),
        Record::Outbox(op) => serde_json::to_vec(&OperationDto::from(op)),
        Record::Applied { op, outcome, tower } => serde_json::to_vec(&AppliedDto {
            op: OperationDto::from(op),
            outcome: OpOutcomeDto::from(outcome),
            tower: tower.map(|t| t.0),
        }),
        Record::Confirmed(c) => serde_json::to_vec(&ConfirmedDto {
            key: c.key.0.to_string(),
            fingerprint: c.fingerprint.to_hex(),
            outcome: OpOutcomeDto::from(&c.outcome),
            seq: c.seq,
        }),
        Record::Awaiting(op) => serde_json::to_vec(&OperationDto::from(op)),
        Record::Identity(id) => serde_json::to_vec(&OriginDto::of(Some(*id))),
        Record::TrustedOrigin(id) => serde_json::to_vec(&OriginDto::of(*id)),
    };
    // Serialising these plain structs cannot fail (no maps with non-string keys).
    v.ok()
}

/// Decode a record of kind `kind` (`entry`, `outbox`, `applied`, `confirmed`, `awaiting`,
/// `identity`, `trust`) stored by [`encode_record`].
pub fn decode_record(kind: &str, bytes: &[u8]) -> Result<Record, WireError> {
    match kind {
        "entry" => Ok(Record::Entry(
            from_json::<CatalogEntryDto>(bytes)?.to_entry()?,
        )),
        "outbox" => Ok(Record::Outbox(
            from_json::<OperationDto>(bytes)?.to_operation()?,
        )),
        "applied" => {
            let a: AppliedDto = from_json(bytes)?;
            Ok(Record::Applied {
                op: a.op.to_operation()?,
                outcome: a.outcome.into(),
                tower: a.tower.map(TowerId),
            })
        }
        "confirmed" => {
            let c: ConfirmedDto = from_json(bytes)?;
            Ok(Record::Confirmed(sovereign_logic::io::ConfirmedOp {
                key: idem_key("key", &c.key)?,
                fingerprint: hash("fingerprint", &c.fingerprint)?,
                outcome: c.outcome.into(),
                seq: c.seq,
            }))
        }
        "awaiting" => Ok(Record::Awaiting(
            from_json::<OperationDto>(bytes)?.to_operation()?,
        )),
        "identity" => match from_json::<OriginDto>(bytes)?.id()? {
            Some(id) => Ok(Record::Identity(id)),
            None => Err(field_err("origin", "the origin's id", "null")),
        },
        "trust" => Ok(Record::TrustedOrigin(from_json::<OriginDto>(bytes)?.id()?)),
        other => Err(field_err(
            "kind",
            "entry, outbox, applied, confirmed, awaiting, identity or trust",
            format!("{other:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sovereign_logic::content::{ChunkParams, publish};

    fn manifest() -> Manifest {
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        publish(
            ItemId::new("alert"),
            3,
            Priority::P1,
            &bytes,
            ChunkParams::default(),
        )
        .unwrap()
        .0
    }

    #[test]
    fn records_round_trip() {
        let op = Operation {
            key: IdemKey("7:00000001:00000000000000ab".into()),
            device: DeviceId(0x3fa2_0000_0000_0000_0000_0000_0000_0007),
            kind: OpKind::Form {
                name: "census".into(),
                fields: vec![("a".into(), "1".into())],
            },
        };
        let records = [
            Record::Entry(CatalogEntry {
                seq: 9,
                manifest: manifest(),
            }),
            Record::Outbox(op.clone()),
            Record::Applied {
                op: op.clone(),
                outcome: OpOutcome::Rejected {
                    reason: "zero".into(),
                },
                tower: None,
            },
            Record::Confirmed(sovereign_logic::io::ConfirmedOp {
                key: op.key.clone(),
                fingerprint: op.fingerprint(),
                outcome: OpOutcome::Applied { seq: 4 },
                seq: 12,
            }),
            Record::Awaiting(op.clone()),
            Record::Applied {
                op,
                outcome: OpOutcome::Applied { seq: 4 },
                tower: Some(TowerId(3)),
            },
            Record::Identity(OriginId(0xabc)),
            Record::TrustedOrigin(Some(OriginId(u128::MAX))),
            Record::TrustedOrigin(None),
        ];
        for r in records {
            let kind = key_kind(&r.key());
            let bytes = encode_record(&r).unwrap();
            assert_eq!(decode_record(kind, &bytes).unwrap(), r);
        }
    }

    #[test]
    fn applied_records_written_before_the_tower_was_kept_still_decode() {
        // Goal: an apply record of the previous shape (no `tower`) decodes, with no tower.
        let old = br#"{"op":{"key":"7:00000001","device":7,"op":{"type":"message","to":"a","body":"b"}},"outcome":{"result":"applied","seq":1}}"#;
        match decode_record("applied", old).unwrap() {
            Record::Applied { tower, outcome, .. } => {
                assert_eq!(tower, None);
                assert_eq!(outcome, OpOutcome::Applied { seq: 1 });
            }
            other => panic!("{other:?}"),
        }
        let err = decode_record("identity", br#"{"origin":"xyz"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`origin`") && err.contains("32"), "{err}");
        assert!(decode_record("identity", br#"{"origin":null}"#).is_err());
    }

    #[test]
    fn bad_manifests_name_the_field() {
        let mut dto = ManifestDto::from(&manifest());
        dto.chunks[1].sha256 = "zz".into();
        let err = dto.to_manifest().unwrap_err().to_string();
        assert!(
            err.contains("chunks[1].sha256") && err.contains("64"),
            "{err}"
        );
        let mut dto = ManifestDto::from(&manifest());
        dto.size += 1;
        assert!(
            dto.to_manifest()
                .unwrap_err()
                .to_string()
                .contains("`size`")
        );
        let mut dto = ManifestDto::from(&manifest());
        dto.priority = "P9".into();
        assert!(
            dto.to_manifest()
                .unwrap_err()
                .to_string()
                .contains("P0, P1")
        );
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_refused_with_a_position() {
        let err = from_json::<OpKindDto>(br#"{"type":"message","to":"a","body":"b","x":1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `x`"), "{err}");
        let err = from_json::<OperationDto>(br#"{"key":"k","device":true,"op":{}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("field `device`"), "{err}");
        let dto: OperationDto = from_json(
            br#"{"key":"k","device":"seven","op":{"type":"message","to":"a","body":"b"}}"#,
        )
        .unwrap();
        let err = dto.to_operation().unwrap_err().to_string();
        assert!(
            err.contains("field `device`") && err.contains("hex digits"),
            "{err}"
        );
        let err = from_json::<OperationDto>(br#"{"key":"k","device":1,"op":{"type":"x"}} "#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("field `op.type`") && err.contains("unknown variant"),
            "{err}"
        );
    }

    #[test]
    fn power_readings_validate() {
        let ok: PowerReadingDto =
            from_json(br#"{"battery_soc":0.5,"solar_w":120.5,"ups":"on-battery"}"#).unwrap();
        let r = ok.to_reading().unwrap();
        assert_eq!(
            (r.soc_permille, r.solar_mw, r.ups),
            (500, 120_500, UpsState::OnBattery)
        );
        let bad: PowerReadingDto =
            from_json(br#"{"battery_soc":1.5,"solar_w":1,"ups":"online"}"#).unwrap();
        assert!(
            bad.to_reading()
                .unwrap_err()
                .to_string()
                .contains("battery_soc")
        );
        let bad: PowerReadingDto =
            from_json(br#"{"battery_soc":0.5,"solar_w":1,"ups":"maybe"}"#).unwrap();
        assert!(
            bad.to_reading()
                .unwrap_err()
                .to_string()
                .contains("on-battery")
        );
    }

    #[test]
    fn device_identities_are_canonical_hex_and_old_numbers_still_decode() {
        // Goal: one spelling per identity (no leading zeros, lower case), and outbox
        // records written before identities were 128-bit still load.
        let op = |device: &str| {
            format!(
                r#"{{"key":"k","device":{device},"op":{{"type":"message","to":"a","body":"b"}}}}"#
            )
        };
        let decode = |device: &str| {
            from_json::<OperationDto>(op(device).as_bytes())
                .unwrap()
                .to_operation()
                .map(|o| o.device)
        };
        assert_eq!(decode("7"), Ok(DeviceId(7)));
        assert_eq!(decode(r#""ff""#), Ok(DeviceId(255)));
        for bad in [
            r#""0ff""#,
            r#""FF""#,
            r#""""#,
            &format!("\"{}\"", "f".repeat(33)),
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
        let written = serde_json::to_string(&OperationDto::from(&Operation {
            key: IdemKey("k".into()),
            device: DeviceId(255),
            kind: OpKind::Message {
                to: "a".into(),
                body: "b".into(),
            },
        }))
        .unwrap();
        assert!(written.contains(r#""device":"ff""#), "{written}");
    }

    #[test]
    fn op_statuses_round_trip() {
        let key = IdemKey("7:00000001:00000000000000ab".into());
        for status in [
            OpStatus::Pending,
            OpStatus::Unknown,
            OpStatus::Done {
                outcome: OpOutcome::Rejected {
                    reason: "overflow".into(),
                },
                fingerprint: ChunkHash::of(b"x"),
            },
        ] {
            let json = serde_json::to_vec(&OpStatusDto::new(&key, &status)).unwrap();
            let back: OpStatusDto = from_json(&json).unwrap();
            assert_eq!(back.to_status().unwrap(), (key.clone(), status));
        }
    }

    #[test]
    fn idempotency_keys_are_bounded_visible_ascii() {
        assert!(idem_key("k", "abc:1").is_ok());
        assert!(idem_key("k", "").is_err());
        assert!(idem_key("k", "a b").is_err());
        assert!(idem_key("k", &"x".repeat(257)).is_err());
    }
}
