//! Who talks to whom, and what they say.
//!
//! Messages between the origin, towers and devices, as plain data. The simulator passes
//! them between simulated hosts; the real servers map each onto an HTTP exchange (the
//! request/reply pairs below). Device operations carry an idempotency key so that
//! retries, duplicates and reordering never apply an effect twice.
//!
//! Identities: [`TowerId`], [`DeviceId`], and [`OriginId`] — the origin's own name,
//! drawn once at its first start and announced with every catalog reply, so that a tower
//! notices when a different origin answers at the address it syncs from.
//!
//! Not covered: encoding (the real servers use JSON/octet-stream over HTTP), probes
//! (the driver measures a link and hands the logic a `ProbeOutcome`), how a tower proves
//! who it is (the real servers' per-tower credentials; the logic only sees the
//! [`Peer`] the driver vouches for).

use crate::content::{ChunkHash, ItemId, Manifest, ManifestChanges};
use bytes::Bytes;
use std::fmt;
use std::str::FromStr;

/// A tower's identity within a deployment.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct TowerId(pub u32);

/// A device's identity: 128 bits, written as lower-case hex without leading zeros.
///
/// A real device derives it from a secret it generated on first use and keeps
/// ([`DeviceId::from_secret`]), so an identity cannot be guessed, and two devices share one
/// only if someone copies a device's state on purpose. The tower learns it from the secret
/// the device presents, never from what a request body claims. The simulator numbers its
/// devices (0, 1, 2, …): its devices cannot lie about who they are unless a workload option
/// makes them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct DeviceId(pub u128);

/// Bytes of a device secret (see [`DeviceId::from_secret`]).
pub const DEVICE_SECRET_BYTES: usize = 32;

impl DeviceId {
    /// The identity that belongs to `secret`: the first 128 bits of
    /// SHA-256(`"sovereign-device-id/1"` || secret). Knowing an identity does not tell
    /// the secret, so presenting the secret proves the identity.
    pub fn from_secret(secret: &[u8; DEVICE_SECRET_BYTES]) -> DeviceId {
        let mut buf = Vec::with_capacity(21 + DEVICE_SECRET_BYTES);
        buf.extend_from_slice(b"sovereign-device-id/1");
        buf.extend_from_slice(secret);
        let digest = ChunkHash::of(&buf).0;
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        DeviceId(u128::from_be_bytes(id))
    }

    /// The canonical text form: lower-case hex, no leading zeros (`0` for zero).
    pub fn hex(&self) -> String {
        format!("{:x}", self.0)
    }

    /// Parse the canonical text form; anything else (upper case, leading zeros, more than
    /// 32 digits, signs) is `None`, so one identity has exactly one spelling.
    pub fn parse_hex(s: &str) -> Option<DeviceId> {
        if s.is_empty()
            || s.len() > 32
            || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        if s.len() > 1 && s.starts_with('0') {
            return None;
        }
        u128::from_str_radix(s, 16).ok().map(DeviceId)
    }
}

/// The origin's identity: 128 random bits drawn once, when the origin first starts, and
/// kept durably with its data (`Record::Identity`). Two origins with different ids are
/// different origins, whatever address they answer at. Written as 32 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OriginId(pub u128);

impl fmt::Display for OriginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for OriginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OriginId({self})")
    }
}

/// Why an origin id was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("expected an origin id of 32 lower-case hex digits, found {0:?}")]
pub struct ParseOriginIdError(pub String);

impl FromStr for OriginId {
    type Err = ParseOriginIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !valid {
            return Err(ParseOriginIdError(s.chars().take(80).collect()));
        }
        u128::from_str_radix(s, 16)
            .map(OriginId)
            .map_err(|_| ParseOriginIdError(s.to_string()))
    }
}

impl fmt::Display for TowerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tower-{}", self.0)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "device-{:x}", self.0)
    }
}

/// The other end of a message.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Peer {
    /// The origin.
    Origin,
    /// A tower.
    Tower(TowerId),
    /// A device.
    Device(DeviceId),
}

/// A tower uplink. The declaration order is the failover preference: fibre, then LTE,
/// then satellite.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum LinkKind {
    /// Primary: terrestrial fibre.
    Fibre,
    /// Secondary: cellular.
    Lte,
    /// Tertiary: satellite (GEO or LEO); metered.
    Satellite,
}

impl LinkKind {
    /// All kinds, most preferred first.
    pub const ALL: [LinkKind; 3] = [LinkKind::Fibre, LinkKind::Lte, LinkKind::Satellite];

    /// The lower-case name used in files, metrics and the console.
    pub const fn name(self) -> &'static str {
        match self {
            LinkKind::Fibre => "fibre",
            LinkKind::Lte => "lte",
            LinkKind::Satellite => "satellite",
        }
    }
}

impl fmt::Display for LinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a link name was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("expected a link kind fibre, lte or satellite, found {0:?}")]
pub struct ParseLinkError(pub String);

impl FromStr for LinkKind {
    type Err = ParseLinkError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fibre" | "fiber" => Ok(LinkKind::Fibre),
            "lte" => Ok(LinkKind::Lte),
            "satellite" => Ok(LinkKind::Satellite),
            other => Err(ParseLinkError(other.to_string())),
        }
    }
}

/// An idempotency key: the device's name for one operation, stable across retries.
///
/// Keys that devices make have three parts, `<device>:<n>:<nonce>`: the owner's identity
/// ([`DeviceId::hex`]), the device's running number (8 digits at least, so keys sort in
/// issue order) and 64 random bits (16 hex digits). The owner part lets a tower refuse a
/// key presented by anyone but its owner; the nonce keeps keys unique even when a
/// device's counter is rolled back (a restored backup) or two devices share an identity.
///
/// The text is shared (`Arc<str>`), not copied: one operation's key is held at once by
/// the device, the tower's outbox and confirmed memory, the origin's applied set, their
/// stores and the simulator's oracles, and a month of operations is hundreds of
/// thousands of keys. A clone is a reference count, not an allocation.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct IdemKey(pub std::sync::Arc<str>);

/// Longest idempotency key accepted anywhere, in bytes.
pub const IDEM_KEY_BYTES_MAX: usize = 256;

impl IdemKey {
    /// The key of a device's `n`-th operation with random part `nonce`.
    pub fn for_device(device: DeviceId, n: u64, nonce: u64) -> IdemKey {
        IdemKey(format!("{}:{n:08}:{nonce:016x}", device.hex()).into())
    }

    /// A key without the random part, `<device>:<n>` (what devices made before keys had
    /// one; the simulator's planted bug `sequential-keys`). Still owned by `device`.
    pub fn sequential(device: DeviceId, n: u64) -> IdemKey {
        IdemKey(format!("{}:{n:08}", device.hex()).into())
    }

    /// The device the key belongs to: its first part as a canonical [`DeviceId`]; `None`
    /// for a key of another shape.
    pub fn owner(&self) -> Option<DeviceId> {
        let (first, rest) = self.0.split_once(':')?;
        if rest.is_empty() {
            return None;
        }
        DeviceId::parse_hex(first)
    }

    /// The running number (second part: `7:00000012:…` → 12); 0 when there is none.
    pub fn number(&self) -> u64 {
        self.0
            .split(':')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl fmt::Display for IdemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a device asks to be done.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum OpKind {
    /// A message to someone.
    Message {
        /// Recipient.
        to: String,
        /// Text.
        body: String,
    },
    /// A filled-in form.
    Form {
        /// Form name.
        name: String,
        /// Field name/value pairs in order.
        fields: Vec<(String, String)>,
    },
    /// Money into the ledger, in integer minor units (cents).
    Contribution {
        /// The community the contribution is for.
        community: String,
        /// The contributing nation.
        nation: String,
        /// Amount in minor units.
        amount_minor: u64,
    },
}

/// One device operation, as queued, forwarded and applied.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Operation {
    /// The idempotency key.
    pub key: IdemKey,
    /// The submitting device.
    pub device: DeviceId,
    /// What to do.
    pub kind: OpKind,
}

/// Why an operation is invalid: the field at fault and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct OpInvalid {
    /// The field at fault, as the HTTP body spells it (`key`, `op.amount_minor`, …).
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl Operation {
    /// The rules every node checks an operation against, the same everywhere: a tower
    /// refuses at the edge what the origin would reject, so that nothing is acknowledged
    /// that cannot be applied. (The one rule a tower cannot check is the origin's state: a
    /// balance that would overflow. The origin rejects that, and the device learns it
    /// through the operation's status.)
    pub fn validate(&self) -> Result<(), OpInvalid> {
        let bad = |field, reason: String| Err(OpInvalid { field, reason });
        if self.key.0.is_empty() || self.key.0.len() > IDEM_KEY_BYTES_MAX {
            return bad(
                "key",
                format!(
                    "idempotency key must be 1 to {IDEM_KEY_BYTES_MAX} bytes, got {}",
                    self.key.0.len()
                ),
            );
        }
        if let OpKind::Contribution {
            community,
            nation,
            amount_minor,
        } = &self.kind
        {
            if let Err(e) = crate::ledger::check_name(community) {
                return bad("op.community", e.to_string());
            }
            if let Err(e) = crate::ledger::check_name(nation) {
                return bad("op.nation", e.to_string());
            }
            if let Err(e) = crate::ledger::check_amount(*amount_minor) {
                return bad("op.amount_minor", e.to_string());
            }
        }
        Ok(())
    }

    /// SHA-256 over a canonical, length-prefixed encoding of the operation's body (device
    /// and kind, not the key). Two submissions with one key and different fingerprints are
    /// a conflict (HTTP 422), never a second effect.
    pub fn fingerprint(&self) -> ChunkHash {
        let mut buf = Vec::new();
        let mut put = |s: &[u8]| {
            buf.extend_from_slice(&(s.len() as u64).to_be_bytes());
            buf.extend_from_slice(s);
        };
        put(&self.device.0.to_be_bytes());
        match &self.kind {
            OpKind::Message { to, body } => {
                put(b"message");
                put(to.as_bytes());
                put(body.as_bytes());
            }
            OpKind::Form { name, fields } => {
                put(b"form");
                put(name.as_bytes());
                for (k, v) in fields {
                    put(k.as_bytes());
                    put(v.as_bytes());
                }
            }
            OpKind::Contribution {
                community,
                nation,
                amount_minor,
            } => {
                put(b"contribution");
                put(community.as_bytes());
                put(nation.as_bytes());
                put(&amount_minor.to_be_bytes());
            }
        }
        ChunkHash::of(&buf)
    }
}

/// The origin's verdict on one forwarded operation. Replays return the original verdict.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum OpOutcome {
    /// Applied; `seq` is its position in the origin's apply log.
    Applied {
        /// position in the apply log (1-based)
        seq: u64,
    },
    /// Valid key, but the body differs from the first submission under this key (HTTP 422).
    Conflict,
    /// The operation is invalid (e.g. a zero contribution); recorded so it is not retried.
    Rejected {
        /// why
        reason: String,
    },
}

/// The origin's answer for one key.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OpReceipt {
    /// The operation's key.
    pub key: IdemKey,
    /// What happened to it.
    pub outcome: OpOutcome,
}

/// A tower's answer to a device submitting an operation.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SubmitReply {
    /// Durable at the tower (written and fsynced); the tower will forward it.
    Accepted,
    /// Already durable from an earlier submission with the same key and body.
    Duplicate,
    /// The first submission with this key is still being made durable (HTTP 409).
    InFlight,
    /// The key was used before with a different body (HTTP 422).
    Conflict,
    /// Not durable; try again later (e.g. the disk failed the write).
    Retry {
        /// why
        reason: String,
    },
    /// The key does not belong to the device presenting it, or the operation names
    /// another device (HTTP 403). Nothing was stored.
    Forbidden {
        /// why
        reason: String,
    },
    /// The operation breaks a rule the origin would reject it for (HTTP 422 naming the
    /// field). Nothing was stored; sending it again cannot help.
    Invalid {
        /// what is wrong, and where
        invalid: OpInvalid,
    },
}

/// What a tower knows of one operation, for the device that owns it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum OpStatus {
    /// Held durably at the tower, not yet confirmed by the origin.
    Pending,
    /// The origin's verdict on the operation it received under this key, and that
    /// operation's [`Operation::fingerprint`]: a device whose own operation has another
    /// fingerprint learns that its operation was not the one applied (a conflict).
    Done {
        /// the origin's verdict
        outcome: OpOutcome,
        /// the fingerprint of the operation the verdict is about
        fingerprint: ChunkHash,
    },
    /// The tower holds nothing under this key for this device: never received (or not
    /// acknowledged), or confirmed longer ago than the tower remembers.
    Unknown,
}

/// One entry of the origin's catalog: a manifest and its position in the publish log.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CatalogEntry {
    /// Position in the origin's publish log (1-based, increasing).
    pub seq: u64,
    /// The published version.
    pub manifest: Manifest,
}

/// A catalog entry as a reply carries it: whole, or as the changes from the version of
/// the item the tower holds (see [`ManifestChanges`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SentEntry {
    /// The entry with its whole manifest.
    Whole(CatalogEntry),
    /// The entry's manifest as runs over an earlier version of the item.
    Changes {
        /// position in the origin's publish log
        seq: u64,
        /// the manifest, as changes
        changes: ManifestChanges,
    },
}

impl SentEntry {
    /// The entry's position in the publish log.
    pub fn seq(&self) -> u64 {
        match self {
            SentEntry::Whole(e) => e.seq,
            SentEntry::Changes { seq, .. } => *seq,
        }
    }

    /// The chunk references it lists: a whole manifest's chunks, or the changes' new
    /// references and keep runs (each run is one reference's worth of text). What a
    /// catalog page is bounded by ([`crate::origin::CATALOG_REPLY_REFS_MAX`]).
    pub fn refs(&self) -> usize {
        match self {
            SentEntry::Whole(e) => e.manifest.chunks.len(),
            SentEntry::Changes { changes, .. } => {
                let (refs, keeps) = changes.counts();
                refs + keeps
            }
        }
    }

    /// Bytes on the wire (the model every driver charges).
    pub fn wire_size(&self) -> u64 {
        8 + match self {
            SentEntry::Whole(e) => manifest_wire_size(&e.manifest),
            SentEntry::Changes { changes, .. } => {
                let (refs, keeps) = changes.counts();
                // The manifest's fixed fields, the base version, the list digest.
                96 + changes.item.0.len() as u64
                    + 40
                    + 36 * refs as u64
                    + 8 * keeps as u64
                    + 4 * changes.runs.len() as u64
            }
        }
    }
}

/// The largest answer from the origin a tower reads (its decoded body): the real tower's
/// HTTP client refuses longer ones, and the simulator's towers drop a message the link
/// model charges more for. What the origin sends must fit: see [`catalog_page_refs`].
pub const ANSWER_BYTES_MAX: u64 = 64 << 20;

/// How many chunk references a catalog page may list for it to fit an answer of
/// `answer_bytes_max` bytes: one per 256 bytes. A reference costs at most ~95 bytes of
/// JSON (a server test checks the largest page against [`ANSWER_BYTES_MAX`]), and 36 in
/// the simulator's byte model; the rest covers each entry's other fields.
pub const fn catalog_page_refs(answer_bytes_max: u64) -> usize {
    (answer_bytes_max / 256) as usize
}

/// Bytes charged for an HTTP/1.1 head: see [`Message::wire_size`].
pub const HTTP_HEAD: u64 = 300;

/// Bytes a link probe moves: `GET /healthz` with no credential (about 60 bytes), and
/// the answer's head and `ok` (about 170) when it comes. Links count them as the real
/// towers do.
pub fn probe_wire_size(answered: bool) -> u64 {
    60 + if answered { 170 } else { 0 }
}

/// Bytes a whole manifest costs on the wire.
fn manifest_wire_size(m: &Manifest) -> u64 {
    96 + m.item.0.len() as u64 + 36 * m.chunks.len() as u64
}

/// Everything that crosses a link.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message {
    /// Tower → origin: catalog entries published after `since_seq`.
    CatalogRequest {
        /// the highest publish seq the tower holds durably
        since_seq: u64,
        /// Whether entries may come as changes from a version the tower holds (with a
        /// seq at most `since_seq`); `false` asks for whole manifests only.
        changes: bool,
    },
    /// Origin → tower: the entries after `since_seq`, latest version per item.
    CatalogReply {
        /// entries in seq order
        entries: Vec<SentEntry>,
        /// The answering origin's identity (`None`: an origin that announces none, e.g.
        /// an older build). A tower compares it with the origin it trusts.
        origin: Option<OriginId>,
        /// The origin holds entries after these: the page was cut (at
        /// [`crate::origin::CATALOG_REPLY_ENTRIES_MAX`] entries or
        /// [`crate::origin::CATALOG_REPLY_REFS_MAX`] chunk references). An older origin
        /// says `false` and cuts only at the entry count, which a tower also reads as
        /// "more".
        more: bool,
    },
    /// Tower → origin: one chunk.
    ChunkRequest {
        /// the chunk's address
        hash: ChunkHash,
    },
    /// Origin → tower: the chunk's bytes, or `None` if the origin has no such chunk.
    ChunkReply {
        /// the chunk's address
        hash: ChunkHash,
        /// its bytes (which the tower verifies before keeping)
        bytes: Option<Bytes>,
    },
    /// Tower → origin: a batch of queued device operations.
    ForwardOps {
        /// the operations, oldest first
        ops: Vec<Operation>,
    },
    /// Origin → tower: one receipt per forwarded operation, after they are durable.
    ForwardReply {
        /// receipts
        receipts: Vec<OpReceipt>,
    },
    /// Device → tower: queue this operation.
    SubmitOp {
        /// the operation
        op: Operation,
    },
    /// Tower → device: the answer to `SubmitOp`.
    SubmitReply {
        /// the operation's key
        key: IdemKey,
        /// the answer
        reply: SubmitReply,
    },
    /// Device → tower: what became of these operations (keys the device owns).
    StatusRequest {
        /// the keys asked about
        keys: Vec<IdemKey>,
    },
    /// Tower → device: one status per key asked about, in the same order.
    StatusReply {
        /// key and status
        statuses: Vec<(IdemKey, OpStatus)>,
    },
    /// Device → tower: read the latest version of an item.
    ReadItem {
        /// the item
        item: ItemId,
    },
    /// Tower → device: the item's manifest and bytes.
    ItemData {
        /// the manifest the bytes verify against
        manifest: Manifest,
        /// the whole content
        bytes: Bytes,
    },
    /// Tower → device: the item cannot be served now.
    Unavailable {
        /// the item
        item: ItemId,
        /// why
        reason: String,
    },
    /// Origin → tower: the request was refused without effect (the tower is not one the
    /// origin knows). Nothing was read or applied; the tower's request times out as if
    /// unanswered.
    Refused {
        /// why
        reason: String,
    },
}

impl Message {
    /// Approximate bytes on the wire: what bandwidth models and byte counters charge.
    /// Every message is an HTTP/1.1 request or response on the real servers, whose head
    /// (request or status line, host, the tower's number and credential, the origin's
    /// id, content type and length, validators) measures 200–350 bytes there
    /// (`sovereign_link_bytes_total`, scripts/bench-sync-bytes.sh): 300 is charged for it.
    pub fn wire_size(&self) -> u64 {
        const HDR: u64 = HTTP_HEAD;
        let manifest = manifest_wire_size;
        let op = |o: &Operation| {
            48 + o.key.0.len() as u64
                + match &o.kind {
                    OpKind::Message { to, body } => (to.len() + body.len()) as u64,
                    OpKind::Form { name, fields } => {
                        name.len() as u64
                            + fields
                                .iter()
                                .map(|(k, v)| (k.len() + v.len()) as u64)
                                .sum::<u64>()
                    }
                    OpKind::Contribution {
                        community, nation, ..
                    } => (community.len() + nation.len() + 8) as u64,
                }
        };
        HDR + match self {
            Message::CatalogRequest { .. } => 8,
            // The origin's id travels in a header, within HDR.
            Message::CatalogReply { entries, .. } => entries.iter().map(SentEntry::wire_size).sum(),
            Message::ChunkRequest { .. } => 32,
            Message::ChunkReply { bytes, .. } => 32 + bytes.as_ref().map_or(0, |b| b.len() as u64),
            Message::ForwardOps { ops } => ops.iter().map(op).sum(),
            Message::ForwardReply { receipts } => {
                receipts.iter().map(|r| 16 + r.key.0.len() as u64).sum()
            }
            Message::SubmitOp { op: o } => op(o),
            Message::SubmitReply { key, .. } => 16 + key.0.len() as u64,
            Message::StatusRequest { keys } => keys.iter().map(|k| 8 + k.0.len() as u64).sum(),
            Message::StatusReply { statuses } => {
                statuses.iter().map(|(k, _)| 48 + k.0.len() as u64).sum()
            }
            Message::ReadItem { item } => item.0.len() as u64,
            Message::ItemData { manifest: m, bytes } => manifest(m) + bytes.len() as u64,
            Message::Unavailable { item, reason } => (item.0.len() + reason.len()) as u64,
            Message::Refused { reason } => reason.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contribution(amount: u64) -> Operation {
        Operation {
            key: IdemKey::for_device(DeviceId(1), 1, 0),
            device: DeviceId(1),
            kind: OpKind::Contribution {
                community: "kibera".into(),
                nation: "ke".into(),
                amount_minor: amount,
            },
        }
    }

    #[test]
    fn fingerprint_depends_on_body_not_key() {
        let a = contribution(100);
        let mut b = a.clone();
        b.key = IdemKey("other".into());
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), contribution(101).fingerprint());
    }

    #[test]
    fn link_kinds_parse_and_prefer_fibre() {
        assert_eq!("lte".parse::<LinkKind>(), Ok(LinkKind::Lte));
        assert!("wifi".parse::<LinkKind>().is_err());
        assert!(LinkKind::Fibre < LinkKind::Lte && LinkKind::Lte < LinkKind::Satellite);
    }

    #[test]
    fn origin_ids_are_32_hex_digits_both_ways() {
        // Goal: an origin id prints as 32 lower-case hex digits and parses back; anything
        // else is refused.
        let id = OriginId(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let s = id.to_string();
        assert_eq!(s, "0123456789abcdef0011223344556677");
        assert_eq!(s.parse::<OriginId>(), Ok(id));
        assert_eq!(OriginId(1).to_string().len(), 32);
        for bad in [
            "",
            "0123",
            &s.to_uppercase(),
            &format!("{s}0"),
            "+123456789abcdef0011223344556677",
        ] {
            assert!(bad.parse::<OriginId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn wire_size_charges_payload_bytes() {
        let small = Message::ChunkReply {
            hash: ChunkHash::of(b""),
            bytes: Some(Bytes::from(vec![0u8; 10])),
        };
        let big = Message::ChunkReply {
            hash: ChunkHash::of(b""),
            bytes: Some(Bytes::from(vec![0u8; 10_000])),
        };
        assert_eq!(big.wire_size() - small.wire_size(), 9_990);
    }
}
