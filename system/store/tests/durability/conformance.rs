//! Checks every backend must pass: the write/fsync contract as the logic relies on it.
//!
//! Verifies: staged writes and deletes are not durable until fsync, and are after it;
//! changes within one fsync apply in order; every record kind round-trips exactly;
//! chunks are readable at once and survive a crash once fsynced; the lean start-up
//! (`recover_index`) hands over the same chunks as lengths, quarantining the same way;
//! and, for backends whose commits can be made to fail ([`Failing`]), that a failed fsync
//! leaves nothing a later fsync or a restart would bring back (the logic was told those
//! writes are not durable).
//! Does not verify: what survives a power cut (see the binary's doc), concurrency, a
//! failed commit that reached the disk anyway (an fsync error after the WAL write: no
//! backend here can produce one on demand; the servers answer it as "outcome unknown").

use sovereign_logic::io::{Key, Record};
use sovereign_store::Store;
use sovereign_store::fixtures::{applied, chunk, entry, outbox};

use crate::common::{Backend, Failing};

fn durable<B: Backend>(b: &B) -> Vec<Record> {
    let s = b.open();
    let rec = s.recover().expect("recover");
    assert!(
        rec.quarantined.is_empty(),
        "unexpected quarantine: {:?}",
        rec.quarantined
    );
    let out = rec.durable.into_values().collect();
    b.crash(s);
    out
}

fn sorted(mut v: Vec<Record>) -> Vec<Record> {
    v.sort_by_key(Record::key);
    v
}

/// Goal: a crash before fsync loses staged writes; after fsync they are all there.
pub fn staged_writes_are_durable_only_after_fsync<B: Backend>(b: &B) {
    let records = vec![entry("a", 1), outbox("7:1"), applied("7:2"), entry("b", 2)];
    let s = b.open();
    for r in &records {
        s.write(r).unwrap();
    }
    b.crash(s);
    assert_eq!(durable(b), vec![], "writes without fsync survived a crash");
    // Nor does the restarted store's first fsync bring them back.
    let s = b.open();
    s.fsync().unwrap();
    b.crash(s);
    assert_eq!(
        durable(b),
        vec![],
        "a crash kept staged writes for a later fsync"
    );

    let s = b.open();
    for r in &records {
        s.write(r).unwrap();
    }
    s.fsync().unwrap();
    // Staged after the fsync: lost again.
    s.write(&outbox("7:3")).unwrap();
    b.crash(s);
    assert_eq!(durable(b), sorted(records));
}

/// Goal: a staged delete is lost by a crash and applied by fsync.
pub fn staged_deletes_are_durable_only_after_fsync<B: Backend>(b: &B) {
    let s = b.open();
    for r in [entry("a", 1), outbox("7:1"), applied("7:2")] {
        s.write(&r).unwrap();
    }
    s.fsync().unwrap();
    s.delete(&outbox("7:1").key()).unwrap();
    b.crash(s);
    assert_eq!(durable(b).len(), 3, "an unsynced delete took effect");

    let s = b.open();
    s.delete(&outbox("7:1").key()).unwrap();
    s.delete(&applied("7:2").key()).unwrap();
    s.delete(&entry("nope", 1).key()).unwrap(); // absent: fine
    s.fsync().unwrap();
    b.crash(s);
    assert_eq!(durable(b), vec![entry("a", 1)]);
}

/// Goal: changes within one fsync apply in the order they were made.
pub fn changes_apply_in_order<B: Backend>(b: &B) {
    let s = b.open();
    s.write(&entry("a", 1)).unwrap();
    s.write(&entry("a", 2)).unwrap(); // overwrite
    s.write(&outbox("7:1")).unwrap();
    s.delete(&outbox("7:1").key()).unwrap(); // write then delete: gone
    s.delete(&applied("7:9").key()).unwrap();
    s.write(&applied("7:9")).unwrap(); // delete then write: there
    s.fsync().unwrap();
    b.crash(s);
    assert_eq!(durable(b), vec![entry("a", 2), applied("7:9")]);
}

/// Goal: chunks are readable at once, durable after fsync, and recovered verified.
pub fn chunks_round_trip<B: Backend>(b: &B) {
    let s = b.open();
    let c = chunk(1);
    let Record::Chunk(ch) = &c else {
        unreachable!()
    };
    s.write(&c).unwrap();
    assert_eq!(s.chunk(&ch.hash).unwrap(), Some(ch.bytes.clone()));
    s.write(&entry("a", 1)).unwrap();
    s.fsync().unwrap();
    b.crash(s);
    assert_eq!(durable(b), sorted(vec![c.clone(), entry("a", 1)]));
    let s = b.open();
    assert_eq!(s.chunk(&ch.hash).unwrap(), Some(ch.bytes.clone()));
    s.delete(&c.key()).unwrap();
    s.fsync().unwrap();
    assert_eq!(s.chunk(&ch.hash).unwrap(), None);
    b.crash(s);
    assert_eq!(durable(b), vec![entry("a", 1)]);
}

/// Goal: a corrupted chunk is quarantined at recovery, the rest kept.
pub fn corrupted_chunks_are_quarantined<B: Backend>(b: &B) {
    let s = b.open();
    for i in 0..3 {
        s.write(&chunk(i)).unwrap();
    }
    s.fsync().unwrap();
    let bad = s.corrupt_one().unwrap().expect("a chunk to corrupt");
    b.crash(s);
    let s = b.open();
    let rec = s.recover().unwrap();
    assert_eq!(rec.quarantined, vec![bad]);
    assert_eq!(rec.durable.len(), 2);
    assert!(!rec.durable.contains_key(&Key::Chunk(bad)));
}

/// Goal: the lean start-up returns every verified chunk as its length and no chunk
/// record (no bytes), the other records as full recovery does, and still quarantines a
/// corrupted chunk.
pub fn index_recovery_gives_lengths_and_quarantines<B: Backend>(b: &B) {
    let s = b.open();
    let chunks: Vec<_> = (0..3)
        .map(|i| match chunk(i) {
            Record::Chunk(c) => c,
            _ => unreachable!(),
        })
        .collect();
    for c in &chunks {
        s.write(&Record::Chunk(c.clone())).unwrap();
    }
    s.write(&entry("a", 1)).unwrap();
    s.write(&outbox("7:1")).unwrap();
    s.fsync().unwrap();
    b.crash(s);
    let s = b.open();
    let rec = s.recover_index().unwrap();
    let want: std::collections::BTreeMap<_, _> = chunks
        .iter()
        .map(|c| (c.hash, c.bytes.len() as u32))
        .collect();
    assert_eq!(rec.chunks, want);
    assert!(rec.quarantined.is_empty());
    assert_eq!(
        rec.durable.into_values().collect::<Vec<_>>(),
        sorted(vec![entry("a", 1), outbox("7:1")]),
        "records but no chunk records"
    );
    let bad = s.corrupt_one().unwrap().expect("a chunk to corrupt");
    b.crash(s);
    let s = b.open();
    let rec = s.recover_index().unwrap();
    assert_eq!(rec.quarantined, vec![bad]);
    assert_eq!(rec.chunks.len(), 2);
    assert!(!rec.chunks.contains_key(&bad));
    assert_eq!(rec.durable.len(), 2);
    assert_eq!(s.chunk(&bad).unwrap(), None, "quarantined away");
    // Full recovery agrees: the chunk is gone, nothing more to quarantine.
    let full = s.recover().unwrap();
    assert!(full.quarantined.is_empty());
    assert!(full.chunks.is_empty(), "full recovery fills no lengths");
    assert_eq!(full.durable.len(), 4);
    b.crash(s);
}

/// Goal: a failed fsync discards what it covered: neither a later successful fsync nor a
/// restart brings back its records, the chunk file it created is gone at once, and a
/// chunk that was durable before (written again in the failed batch) stays.
pub fn a_failed_fsync_leaves_nothing_to_recover<B: Failing>(b: &B) {
    let s = b.open();
    s.write(&chunk(1)).unwrap();
    s.write(&entry("a", 1)).unwrap();
    s.fsync().unwrap();
    let (Record::Chunk(old), Record::Chunk(new)) = (chunk(1), chunk(2)) else {
        unreachable!()
    };

    b.break_commits(&s);
    s.write(&chunk(2)).unwrap(); // created by this batch
    s.write(&chunk(1)).unwrap(); // stored before: the batch does not own it
    s.write(&outbox("7:1")).unwrap();
    s.delete(&entry("a", 1).key()).unwrap();
    assert!(s.fsync().is_err(), "the broken commit succeeded");
    assert_eq!(
        s.chunk(&new.hash).unwrap(),
        None,
        "a chunk written for the failed fsync is still there"
    );
    assert_eq!(s.chunk(&old.hash).unwrap(), Some(old.bytes.clone()));
    // Nothing to commit now, so nothing fails.
    b.mend_commits(&s);
    s.write(&outbox("7:2")).unwrap();
    s.fsync().unwrap();
    b.crash(s);
    assert_eq!(
        durable(b),
        sorted(vec![chunk(1), entry("a", 1), outbox("7:2")]),
        "the failed fsync's changes came back (or the later one's are missing)"
    );
    let s = b.open();
    let rec = s.recover_index().unwrap();
    assert_eq!(
        rec.chunks.keys().copied().collect::<Vec<_>>(),
        vec![old.hash],
        "lean start-up found the failed fsync's chunk"
    );
    b.crash(s);
}

/// Goal: start-up garbage collection removes exactly the chunks no committed entry names
/// (from the store and from the recovered state), counts their files and bytes, and keeps
/// every chunk an entry names, on both start-up paths.
pub fn garbage_collection_keeps_what_entries_name<B: Backend>(b: &B) {
    use sovereign_logic::content::{ChunkParams, ItemId, Priority, publish};
    use sovereign_logic::protocol::CatalogEntry;
    let bytes = sovereign_store::fixtures::noise(60_000);
    let (manifest, chunks) = publish(
        ItemId::new("kept"),
        1,
        Priority::P1,
        &bytes,
        ChunkParams::default(),
    )
    .unwrap();
    assert!(chunks.len() > 1, "the item needs several chunks");
    let s = b.open();
    for c in &chunks {
        s.write(&Record::Chunk(c.clone())).unwrap();
    }
    s.write(&Record::Entry(CatalogEntry { seq: 1, manifest }))
        .unwrap();
    let (stray_a, stray_b) = (chunk(90), chunk(91));
    s.write(&stray_a).unwrap();
    s.write(&stray_b).unwrap();
    s.fsync().unwrap();
    b.crash(s);

    let s = b.open();
    let mut rec = s.recover().unwrap();
    let garbage = sovereign_store::collect_garbage(&s, &mut rec).unwrap();
    let stray_bytes: u64 = [&stray_a, &stray_b]
        .iter()
        .map(|r| match r {
            Record::Chunk(c) => c.bytes.len() as u64,
            _ => 0,
        })
        .sum();
    assert_eq!((garbage.chunks, garbage.bytes), (2, stray_bytes));
    assert!(!rec.durable.contains_key(&stray_a.key()));
    assert_eq!(
        rec.durable.len(),
        chunks.len() + 1,
        "entry and its chunks kept"
    );
    b.crash(s);
    let s = b.open();
    let mut rec = s.recover_index().unwrap();
    assert_eq!(rec.chunks.len(), chunks.len(), "the strays' files are gone");
    let again = sovereign_store::collect_garbage(&s, &mut rec).unwrap();
    assert_eq!(
        (again.chunks, again.bytes),
        (0, 0),
        "nothing left to collect"
    );
    for c in &chunks {
        assert_eq!(s.chunk(&c.hash).unwrap(), Some(c.bytes.clone()));
    }
    b.crash(s);
}

/// The failure check, for backends that implement [`Failing`].
macro_rules! failing_tests {
    ($backend:expr) => {
        #[test]
        fn a_failed_fsync_leaves_nothing_to_recover() {
            if let Some(b) = $backend("failed_fsync") {
                crate::conformance::a_failed_fsync_leaves_nothing_to_recover(&b);
            }
        }
    };
}
pub(crate) use failing_tests;

/// Every check, for backends that pass them all.
macro_rules! conformance_tests {
    ($backend:expr) => {
        #[test]
        fn staged_writes_are_durable_only_after_fsync() {
            if let Some(b) = $backend("staged_writes") {
                crate::conformance::staged_writes_are_durable_only_after_fsync(&b);
            }
        }
        #[test]
        fn staged_deletes_are_durable_only_after_fsync() {
            if let Some(b) = $backend("staged_deletes") {
                crate::conformance::staged_deletes_are_durable_only_after_fsync(&b);
            }
        }
        #[test]
        fn changes_apply_in_order() {
            if let Some(b) = $backend("in_order") {
                crate::conformance::changes_apply_in_order(&b);
            }
        }
        #[test]
        fn chunks_round_trip() {
            if let Some(b) = $backend("chunks") {
                crate::conformance::chunks_round_trip(&b);
            }
        }
        #[test]
        fn index_recovery_gives_lengths_and_quarantines() {
            if let Some(b) = $backend("index_recovery") {
                crate::conformance::index_recovery_gives_lengths_and_quarantines(&b);
            }
        }
        #[test]
        fn garbage_collection_keeps_what_entries_name() {
            if let Some(b) = $backend("garbage") {
                crate::conformance::garbage_collection_keeps_what_entries_name(&b);
            }
        }
        #[test]
        fn corrupted_chunks_are_quarantined() {
            if let Some(b) = $backend("quarantine") {
                crate::conformance::corrupted_chunks_are_quarantined(&b);
            }
        }
    };
}
pub(crate) use conformance_tests;
