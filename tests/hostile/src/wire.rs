//! The wire decoders under hostile bytes: every DTO of `sovereign-wire` that an API or a
//! store reads, `decode_record` and `idem_key`.
//!
//! The first byte of the input picks the decoder ([`DECODERS`]); the rest is what it
//! reads. A decoder may refuse (its error must say something); what it accepts must come
//! back unchanged when encoded again and decoded again (so the server never stores or
//! forwards something it would later read differently).
//!
//! Not covered: the server-local bodies (`POST /v1/ops`, `/v1/forward`, `/admin/faults`):
//! the [`crate::http`] target reaches them through the routers.

use crate::Verdict;
use sovereign_logic::io::Record;
use sovereign_logic::protocol::OpKind;
use sovereign_wire::{
    CatalogEntryDto, ManifestDto, OpKindDto, OpReceiptDto, OperationDto, PowerReadingDto,
    WireError, decode_record, encode_record, from_json, idem_key, key_kind,
};
use std::fmt::Debug;

/// What each value of the first byte (modulo their number) decodes.
pub const DECODERS: [&str; 9] = [
    "ManifestDto",
    "CatalogEntryDto",
    "OperationDto",
    "OpReceiptDto",
    "PowerReadingDto",
    "OpKindDto",
    "decode_record(entry|outbox|applied)",
    "idem_key",
    "decode_record(any kind)",
];

/// Decode `data` with the decoder its first byte picks; panic on a broken round trip.
pub fn check(data: &[u8]) -> Verdict {
    let Some((&pick, rest)) = data.split_first() else {
        return Verdict::Skipped;
    };
    match usize::from(pick) % DECODERS.len() {
        0 => round_trip::<ManifestDto, _>(rest, ManifestDto::to_manifest, |m| ManifestDto::from(m)),
        1 => round_trip::<CatalogEntryDto, _>(rest, CatalogEntryDto::to_entry, |e| {
            CatalogEntryDto::from(e)
        }),
        2 => round_trip::<OperationDto, _>(rest, OperationDto::to_operation, |o| {
            OperationDto::from(o)
        }),
        3 => {
            round_trip::<OpReceiptDto, _>(rest, OpReceiptDto::to_receipt, |r| OpReceiptDto::from(r))
        }
        4 => round_trip::<PowerReadingDto, _>(rest, PowerReadingDto::to_reading, |r| {
            PowerReadingDto::from(r)
        }),
        5 => round_trip::<OpKindDto, _>(
            rest,
            |d| Ok::<OpKind, WireError>(d.clone().into()),
            |k| OpKindDto::from(k),
        ),
        6 => {
            let Some((&k, bytes)) = rest.split_first() else {
                return Verdict::Skipped;
            };
            let kind = ["entry", "outbox", "applied"][usize::from(k) % 3];
            record(kind, bytes)
        }
        7 => {
            let Ok(s) = std::str::from_utf8(rest) else {
                return Verdict::Skipped;
            };
            match idem_key("key", s) {
                Ok(k) => {
                    assert_eq!(&*k.0, s, "idem_key changed the key");
                    assert!(
                        (1..=sovereign_wire::IDEM_KEY_MAX).contains(&s.len())
                            && s.bytes().all(|b| b.is_ascii_graphic()),
                        "idem_key accepted {s:?}"
                    );
                    Verdict::Accepted
                }
                Err(e) => refused(&e),
            }
        }
        _ => {
            let (kind, bytes) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            record(&String::from_utf8_lossy(kind), bytes)
        }
    }
}

/// Decode `bytes` as `D`, validate it into `T`; if both succeed, encode `T` again and
/// require the same `T` back.
fn round_trip<D, T>(
    bytes: &[u8],
    validate: impl Fn(&D) -> Result<T, WireError>,
    encode: impl Fn(&T) -> D,
) -> Verdict
where
    D: serde::de::DeserializeOwned + serde::Serialize,
    T: PartialEq + Debug,
{
    let dto: D = match from_json(bytes) {
        Ok(d) => d,
        Err(e) => return refused(&e),
    };
    let value = match validate(&dto) {
        Ok(v) => v,
        Err(e) => return refused(&e),
    };
    let again = serde_json::to_vec(&encode(&value)).expect("a DTO always serialises");
    let dto2: D = from_json(&again).unwrap_or_else(|e| {
        panic!(
            "re-encoded value does not decode: {e}\n{}",
            String::from_utf8_lossy(&again)
        )
    });
    let value2 = validate(&dto2).unwrap_or_else(|e| {
        panic!(
            "re-encoded value does not validate: {e}\n{}",
            String::from_utf8_lossy(&again)
        )
    });
    assert_eq!(value2, value, "round trip changed the value");
    Verdict::Accepted
}

/// `decode_record(kind, bytes)`; what it accepts must encode and decode to itself, under
/// the kind the record's key names.
fn record(kind: &str, bytes: &[u8]) -> Verdict {
    let r = match decode_record(kind, bytes) {
        Ok(r) => r,
        Err(e) => return refused(&e),
    };
    assert_eq!(key_kind(&r.key()), kind, "decoded a {kind} as {r:?}");
    assert!(!matches!(r, Record::Chunk(_)), "decoded a chunk record");
    let again = encode_record(&r).expect("a non-chunk record encodes");
    let back = decode_record(kind, &again).unwrap_or_else(|e| {
        panic!(
            "re-encoded {kind} record does not decode: {e}\n{}",
            String::from_utf8_lossy(&again)
        )
    });
    assert_eq!(back, r, "record round trip changed it");
    Verdict::Accepted
}

/// A refusal must say what is wrong.
fn refused(e: &WireError) -> Verdict {
    assert!(!e.to_string().trim().is_empty(), "empty error: {e:?}");
    Verdict::Refused
}
