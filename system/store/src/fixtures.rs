//! Sample records for tests of stores: this crate's own, and the servers' tests that need
//! something to write. Small, deterministic, and each valid for `sovereign_wire`.
//!
//! Map: [`chunk`], [`entry`], [`outbox`], [`applied`], [`noise`].
//!
//! Not covered: anything resembling production data sizes.

use bytes::Bytes;
use sovereign_logic::content::{Chunk, ChunkHash, ChunkParams, ItemId, Priority, publish};
use sovereign_logic::io::Record;
use sovereign_logic::protocol::{CatalogEntry, DeviceId, IdemKey, OpKind, OpOutcome, Operation};

/// `len` pseudo-random bytes (xorshift64 from a fixed seed): content that chunks into
/// many chunks and does not compress.
pub fn noise(len: usize) -> Vec<u8> {
    noise_from(0x9E37_79B9_7F4A_7C15, len)
}

/// [`noise`] from another xorshift64 state (0, where xorshift would stay, is taken as 1):
/// other content of the same kind.
pub fn noise_from(state: u64, len: usize) -> Vec<u8> {
    let mut x = state.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The `i`-th sample chunk: a few hundred bytes that differ per `i`.
pub fn chunk(i: u32) -> Record {
    let bytes = Bytes::from(format!("sample chunk {i}; ").repeat(40).into_bytes());
    Record::Chunk(Chunk {
        hash: ChunkHash::of(&bytes),
        bytes,
    })
}

/// A catalog entry for item `item` at publish position `seq` (version `seq`).
pub fn entry(item: &str, seq: u64) -> Record {
    let bytes: Vec<u8> = (0..5_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let (manifest, _) = publish(
        ItemId::new(item),
        seq,
        Priority::P1,
        &bytes,
        ChunkParams::default(),
    )
    .expect("the default chunk parameters are valid");
    Record::Entry(CatalogEntry { seq, manifest })
}

fn op(key: &str) -> Operation {
    Operation {
        key: IdemKey(key.into()),
        device: DeviceId(7),
        kind: OpKind::Message {
            to: "clinic".into(),
            body: format!("hello from {key}"),
        },
    }
}

/// A queued device operation under idempotency key `key`.
pub fn outbox(key: &str) -> Record {
    Record::Outbox(op(key))
}

/// An applied operation under idempotency key `key`.
pub fn applied(key: &str) -> Record {
    Record::Applied {
        op: op(key),
        outcome: OpOutcome::Applied { seq: 1 },
        tower: Some(sovereign_logic::protocol::TowerId(1)),
    }
}
