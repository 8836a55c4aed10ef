//! A content-addressed chunk store in pack files: chunks appended to a few large files,
//! with an index in memory rebuilt at start-up; the layout of a new store
//! ([`crate::ChunkStore`]). It followed [`crate::ChunkDir`] (a file per chunk) for issue
//! 16, which measured that creating, writing and renaming one small file per chunk costs
//! ~140 µs of system time per chunk (15 s per GiB published) where appending the same
//! bytes to one file costs ~2 s.
//!
//! Layout under the store's directory `DIR`:
//! - `DIR/packs/<8 decimal digits>.pack`: records `[magic "SVC1"][SHA-256, 32 bytes]
//!   [length, u32 little-endian][the chunk's bytes]`, appended; the highest-numbered pack
//!   is the one appended to, and a new one is started once it holds [`PackDir::target`]
//!   bytes.
//! - `DIR/quarantine/<64 hex>`: a chunk whose bytes failed verification at start-up (a copy:
//!   the pack keeps its bytes until it is compacted).
//!
//! The same promises as the chunk directory, kept another way:
//! - A put appends (pending); [`PackDir::sync`] makes every pending record durable with one
//!   `fdatasync` per pack written (and an fsync of `DIR/packs` for a pack created). A crash
//!   mid-append leaves a torn last record, which the start-up scan cuts off.
//! - Records appended since the last [`PackDir::committed`] are *fresh*; when the record
//!   store's commit fails, [`PackDir::discard_fresh`] truncates the pack back to its
//!   committed length (and removes packs started since), so a failed publish leaves no
//!   chunk behind. A chunk held before and put again is appended again (the put may be
//!   replacing bytes that rotted), and a discard goes back to its earlier record: it is
//!   never removed by someone else's failure. After a failed `fdatasync` the pending bytes cannot be
//!   trusted (the kernel may have dropped them and marked them clean), so every later sync
//!   fails until they are discarded.
//! - A delete marks the chunk's record dead in place (its first four bytes) at the next
//!   sync, and a later scan steps over it. Once the mark is durable, the blocks of the
//!   record's bytes go back to the file system (a hole punched with `fallocate`: the pack
//!   keeps its length, the bytes read as zeros), so a running server's deletes free disk
//!   space as removing chunk files did; a file system that cannot punch holes keeps them
//!   until [`PackDir::collect_garbage`] compacts a pack that is mostly dead. The heads stay
//!   until that compaction.
//! - Every record is read and verified at start-up ([`PackDir::scan_index`]), as every
//!   chunk file is today; a record whose bytes do not hash to its name is copied to the
//!   quarantine and left out.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use sovereign_logic::content::{Chunk, ChunkHash, verify_chunk};

use crate::chunks::{Scan, read_dir_sorted, sync_dir};
use crate::{Garbage, StoreError, chunk_len, io_err, lock};

/// The first four bytes of every record.
const MAGIC: [u8; 4] = *b"SVC1";

/// What a record's first four bytes become once its bytes were found rotten and copied
/// to the quarantine: later scans step over it without reporting it again.
const DEAD: [u8; 4] = *b"SVCX";

/// A record's head: magic, hash, length.
const HEAD: usize = 4 + 32 + 4;

/// The largest chunk a record holds: a longer length in a head is corruption, not an
/// allocation to make (the chunker's largest is 64 KiB by default).
pub const RECORD_BYTES_MAX: u32 = 16 * 1024 * 1024;

/// At most this many packs are open at once for reads (besides the active one and those
/// awaiting a flush): a large store has thousands of packs, and a server's open-file
/// budget is shared with its connections.
pub const OPEN_PACKS_MAX: usize = 16;

/// A batch's records are written this many bytes at a time (at least).
const WRITE_BYTES: usize = 4 << 20;

/// Bytes after which a new pack is started (a batch is never split: a pack may exceed
/// it by one batch).
pub const PACK_TARGET: u64 = 64 * 1024 * 1024;

/// Where a chunk's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Loc {
    pack: u32,
    /// Offset of the chunk's bytes (after the head).
    at: u64,
    len: u32,
}

#[derive(Debug)]
struct State {
    /// Every pack, by number.
    packs: BTreeSet<u32>,
    /// The packs open now: the active one and those written since the last sync always
    /// (a flush must go through the descriptor the writes went through, to hear of their
    /// errors), others as reads need them, at most [`OPEN_PACKS_MAX`] in all.
    files: BTreeMap<u32, Arc<File>>,
    index: BTreeMap<ChunkHash, Loc>,
    /// The pack appended to, and where the next record goes.
    active: u32,
    end: u64,
    /// The pack and length the last commit (or the start-up) left.
    committed: (u32, u64),
    /// Where the appends the last successful sync made durable end: what a commit after
    /// it takes in (an append racing in between stays fresh, for the next sync).
    synced: (u32, u64),
    /// The packs were read (by [`PackDir::scan_index`]): the index is whole.
    scanned: bool,
    /// Packs written since the last sync (they need an fdatasync), and packs created since
    /// (the directory needs an fsync).
    unsynced: BTreeSet<u32>,
    created: bool,
    /// Chunks appended since the last commit, each with the record it superseded (a
    /// chunk held before and put again: a discard goes back to it).
    fresh: BTreeMap<ChunkHash, Option<Loc>>,
    /// A flush failed: the bytes since the commit are not to be trusted.
    failed: bool,
    /// Records to mark dead at the next sync, by pack: each record's start, and the length
    /// of its bytes (from the index, never from the disk: the hole punched over them
    /// must not reach the next record). Deleted chunks, and records a committed put
    /// superseded. Written at every sync until one succeeds (a failed flush may drop the
    /// pages that held them).
    marks: BTreeMap<u32, BTreeMap<u64, u32>>,
    /// Packs whose reading at start-up stopped early (records after the damage could not
    /// be found): never compacted, so nothing in them is thrown away.
    damaged: BTreeSet<u32>,
}

/// A content-addressed chunk store in pack files (see the module doc).
#[derive(Debug)]
pub struct PackDir {
    /// `DIR/packs`
    packs: PathBuf,
    /// `DIR/quarantine`
    quarantine: PathBuf,
    target: u64,
    state: Mutex<State>,
    /// Held while a first use reads the packs ([`PackDir::ensure_scanned`]).
    scanning: Mutex<()>,
    /// Held across a sync, a commit and a discard: one at a time, whoever calls (the record
    /// stores already serialise them; this keeps `PackDir` safe on its own).
    syncing: Mutex<()>,
}

/// Add pack `n` to the open ones, closing others past [`OPEN_PACKS_MAX`] (never the
/// active one nor one awaiting a flush).
fn keep_open(st: &mut State, n: u32, file: Arc<File>) {
    while st.files.len() >= OPEN_PACKS_MAX {
        let victim = (st.files.keys())
            .find(|k| **k != st.active && **k != n && !st.unsynced.contains(k))
            .copied();
        match victim {
            Some(v) => st.files.remove(&v),
            None => break,
        };
    }
    st.files.insert(n, file);
}

/// Take `hash` out of the index and note its record (and a record it superseded since
/// the last commit, which would otherwise come back at a restart) to be marked dead at
/// the next sync.
fn mark_dead(st: &mut State, hash: &ChunkHash) {
    let Some(loc) = st.index.remove(hash) else {
        return;
    };
    note_dead(&mut st.marks, loc);
    if let Some(Some(before)) = st.fresh.remove(hash) {
        note_dead(&mut st.marks, before);
    }
}

/// Pack `pack` was cut to `len` bytes: forget the marks of the records it cut off. No
/// mark may outlive the bytes it named, since later appends start at the cut (a stale one
/// would mark dead, and punch, the record appended there).
fn drop_marks_from(st: &mut State, pack: u32, len: u64) {
    if let Some(m) = st.marks.get_mut(&pack) {
        m.retain(|at, _| *at < len);
    }
}

/// Queue the record at `loc` to be marked dead at the next sync.
fn note_dead(marks: &mut BTreeMap<u32, BTreeMap<u64, u32>>, loc: Loc) {
    (marks.entry(loc.pack).or_default()).insert(loc.at - HEAD as u64, loc.len);
}

fn pack_name(n: u32) -> String {
    format!("{n:08}.pack")
}

/// A record head's magic, hash and length (the inverse of [`record_head`]).
fn parse_head(h: &[u8]) -> ([u8; 4], ChunkHash, u32) {
    let mut magic = [0u8; 4];
    magic.copy_from_slice(&h[..4]);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&h[4..36]);
    (
        magic,
        ChunkHash(hash),
        u32::from_le_bytes([h[36], h[37], h[38], h[39]]),
    )
}

/// Every result in `results` at `which` that is still `Ok` becomes an I/O error: `what`,
/// and why.
fn fail_pending(
    results: &mut [Result<(), StoreError>],
    which: impl IntoIterator<Item = usize>,
    what: &str,
    why: &str,
) {
    for i in which {
        if results[i].is_ok() {
            results[i] = Err(StoreError::Io {
                what: what.to_string(),
                source: std::io::Error::other(why.to_string()),
            });
        }
    }
}

/// Mark the records starting at `starts` dead in `file` and flush it.
fn write_marks(
    file: &File,
    starts: impl IntoIterator<Item = u64>,
    what: &str,
) -> Result<(), StoreError> {
    for at in starts {
        file.write_all_at(&DEAD, at).map_err(io_err(what))?;
    }
    file.sync_data().map_err(io_err(what))
}

/// Give the file system back the blocks of dead records' bytes, `(start of the record,
/// length of its bytes)` each: a hole punched over the bytes (`fallocate`), the head and
/// the pack's length kept. Only once their marks are durable, so that no restart meets a
/// record that looks alive and reads as zeros. Best effort: where the file system cannot
/// punch holes (or the call fails) the bytes stay until a compaction; nothing depends on
/// them. Linux only (elsewhere the bytes stay until a compaction).
#[cfg(target_os = "linux")]
fn punch_holes(file: &File, records: impl IntoIterator<Item = (u64, u32)>) {
    use rustix::fs::{FallocateFlags, fallocate};
    for (start, len) in records {
        let flags = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
        if fallocate(file, flags, start + HEAD as u64, u64::from(len))
            == Err(rustix::io::Errno::OPNOTSUPP)
        {
            return;
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn punch_holes(_file: &File, _records: impl IntoIterator<Item = (u64, u32)>) {}

/// The bytes a file takes on disk.
fn allocated(m: &fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    m.blocks().saturating_mul(512)
}

fn record_head(hash: &ChunkHash, len: u32) -> [u8; HEAD] {
    let mut head = [0u8; HEAD];
    head[..4].copy_from_slice(&MAGIC);
    head[4..36].copy_from_slice(&hash.0);
    head[36..].copy_from_slice(&len.to_le_bytes());
    head
}

fn open_pack(path: &Path, create: bool) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(create)
        .open(path)
        .map_err(io_err(format!("open {}", path.display())))
}

impl PackDir {
    /// Open (creating) the pack store under `dir`. Nothing is indexed until
    /// [`PackDir::scan_index`].
    pub fn open(dir: &Path) -> Result<PackDir, StoreError> {
        PackDir::open_with_target(dir, PACK_TARGET)
    }

    /// [`PackDir::open`] starting a new pack after `target` bytes (tests use small ones).
    pub fn open_with_target(dir: &Path, target: u64) -> Result<PackDir, StoreError> {
        let packs = dir.join("packs");
        let quarantine = dir.join("quarantine");
        for d in [&packs, &quarantine] {
            fs::create_dir_all(d).map_err(io_err(format!("create directory {}", d.display())))?;
        }
        Ok(PackDir {
            packs,
            quarantine,
            target: target.max(1),
            scanning: Mutex::new(()),
            syncing: Mutex::new(()),
            state: Mutex::new(State {
                packs: BTreeSet::new(),
                files: BTreeMap::new(),
                index: BTreeMap::new(),
                active: 0,
                end: 0,
                committed: (0, 0),
                synced: (0, 0),
                scanned: false,
                unsynced: BTreeSet::new(),
                created: false,
                fresh: BTreeMap::new(),
                failed: false,
                marks: BTreeMap::new(),
                damaged: BTreeSet::new(),
            }),
        })
    }

    /// Bytes after which a new pack is started.
    pub fn target(&self) -> u64 {
        self.target
    }

    /// `DIR/quarantine`.
    pub fn quarantine_dir(&self) -> &Path {
        &self.quarantine
    }

    fn path_of_pack(&self, n: u32) -> PathBuf {
        self.packs.join(pack_name(n))
    }

    /// Pack `n`, open (opened now if it is not, closing another one past
    /// [`OPEN_PACKS_MAX`]: never the active one nor one awaiting a flush).
    fn file_of(&self, st: &mut State, n: u32) -> Result<Arc<File>, StoreError> {
        if let Some(f) = st.files.get(&n) {
            return Ok(Arc::clone(f));
        }
        let file = Arc::new(open_pack(&self.path_of_pack(n), false)?);
        keep_open(st, n, Arc::clone(&file));
        Ok(file)
    }

    /// A store used before its start-up scan (tools, tests) reads the packs first: the
    /// index is built only by reading them, and an append must follow the last whole
    /// record.
    fn ensure_scanned(&self) -> Result<(), StoreError> {
        let _one = lock(&self.scanning);
        if !lock(&self.state).scanned {
            self.scan_index()?;
        }
        Ok(())
    }

    /// Store `bytes` as the chunk `hash` (see [`PackDir::put_many`]).
    pub fn put(&self, hash: &ChunkHash, bytes: &[u8]) -> Result<(), StoreError> {
        self.put_many(&[(*hash, bytes)]).remove(0)
    }

    /// Append every chunk not held yet to the active pack in one write, pending until
    /// the next [`PackDir::sync`]; one result per chunk, in order. Refuses bytes that do
    /// not hash to their name, or longer than [`RECORD_BYTES_MAX`]; a chunk appended since
    /// the last commit (or twice in the batch) is appended once.
    pub fn put_many(&self, chunks: &[(ChunkHash, &[u8])]) -> Vec<Result<(), StoreError>> {
        let mut results: Vec<Result<(), StoreError>> = crate::chunks::in_parallel(
            chunks,
            crate::chunks::writers_for(chunks.len()),
            |(hash, bytes)| check(hash, bytes),
        );
        let all = 0..chunks.len();
        if let Err(e) = self.ensure_scanned() {
            fail_pending(
                &mut results,
                all,
                &e.to_string(),
                "reading the packs failed",
            );
            return results;
        }
        let mut st = lock(&self.state);
        if let Err(e) = self.roll_if_full(&mut st) {
            fail_pending(
                &mut results,
                all,
                &e.to_string(),
                "starting a new pack failed",
            );
            return results;
        }
        // Which chunks to append: not appended since the last commit already (the same
        // bytes: both verified), nor earlier in this batch. A chunk held from before is
        // appended again: a put must be able to replace bytes that rotted (the chunk
        // directory's put replaced the file).
        let mut seen = BTreeSet::new();
        let todo: Vec<usize> = (0..chunks.len())
            .filter(|&i| {
                let hash = &chunks[i].0;
                results[i].is_ok() && !st.fresh.contains_key(hash) && seen.insert(*hash)
            })
            .collect();
        if todo.is_empty() {
            return results;
        }
        // Written a few MiB at a time: a publish's batch is not copied whole.
        let active = st.active;
        let file = match self.file_of(&mut st, active) {
            Ok(f) => f,
            Err(e) => {
                let why = "the active pack could not be opened";
                fail_pending(&mut results, todo, &e.to_string(), why);
                return results;
            }
        };
        let start = st.end;
        let mut pos = start;
        let total: usize = todo.iter().map(|&i| HEAD + chunks[i].1.len()).sum();
        let mut buf = Vec::with_capacity(total.min(WRITE_BYTES + 64 * 1024));
        let mut new: Vec<(ChunkHash, Loc)> = Vec::with_capacity(todo.len());
        let mut written = Ok(());
        for (k, &i) in todo.iter().enumerate() {
            let (hash, bytes) = &chunks[i];
            let len = chunk_len(bytes.len());
            buf.extend_from_slice(&record_head(hash, len));
            let at = pos + buf.len() as u64;
            buf.extend_from_slice(bytes);
            new.push((
                *hash,
                Loc {
                    pack: st.active,
                    at,
                    len,
                },
            ));
            if buf.len() >= WRITE_BYTES || k + 1 == todo.len() {
                written = file.write_all_at(&buf, pos);
                if written.is_err() {
                    break;
                }
                pos += buf.len() as u64;
                buf.clear();
            }
        }
        if let Err(e) = written {
            // Nothing of it is indexed; cut off what reached the file (best effort: the
            // next append overwrites it, a start-up cuts a torn tail).
            let _ = file.set_len(start);
            let what = format!("append to {}", self.path_of_pack(st.active).display());
            fail_pending(&mut results, todo, &what, &e.to_string());
            return results;
        }
        st.end = pos;
        st.unsynced.insert(active);
        for (hash, loc) in new {
            let before = st.index.insert(hash, loc);
            st.fresh.insert(hash, before);
        }
        results
    }

    /// Start a new pack when the active one holds [`PackDir::target`] bytes.
    fn roll_if_full(&self, st: &mut State) -> Result<(), StoreError> {
        if st.end < self.target {
            return Ok(());
        }
        let next = st.active + 1;
        let file = open_pack(&self.path_of_pack(next), true)?;
        st.active = next;
        keep_open(st, next, Arc::new(file));
        st.packs.insert(next);
        st.end = 0;
        st.created = true;
        Ok(())
    }

    /// The bytes stored under `hash`, unverified; `None` if there is no such chunk.
    ///
    /// The index is asked again after the read: a chunk deleted while it was read (its
    /// bytes may be a punched hole by then) is not held, and one put again elsewhere is
    /// read from there.
    pub fn get(&self, hash: &ChunkHash) -> Result<Option<Bytes>, StoreError> {
        self.ensure_scanned()?;
        for _ in 0..3 {
            let (loc, file) = {
                let mut st = lock(&self.state);
                let Some(loc) = st.index.get(hash).copied() else {
                    return Ok(None);
                };
                (loc, self.file_of(&mut st, loc.pack)?)
            };
            let mut bytes = vec![0u8; loc.len as usize];
            file.read_exact_at(&mut bytes, loc.at)
                .map_err(io_err(format!(
                    "read {} bytes at {} of {}",
                    loc.len,
                    loc.at,
                    self.path_of_pack(loc.pack).display()
                )))?;
            if lock(&self.state).index.get(hash) == Some(&loc) {
                return Ok(Some(Bytes::from(bytes)));
            }
        }
        // Not a verdict on the chunk: the caller asks again.
        Err(StoreError::Io {
            what: format!("read chunk {hash} from {}", self.packs.display()),
            source: std::io::Error::other("it was deleted or put again during each of 3 reads"),
        })
    }

    /// The chunks held and their lengths.
    pub fn lengths(&self) -> BTreeMap<ChunkHash, u32> {
        (lock(&self.state).index.iter())
            .map(|(h, l)| (*h, l.len))
            .collect()
    }

    /// Remove the chunk `hash` (no error if it is absent): its record is marked dead in
    /// place at the next sync, and its bytes given back to the file system then (see
    /// the module doc).
    pub fn delete(&self, hash: &ChunkHash) -> Result<(), StoreError> {
        self.ensure_scanned()?;
        let mut st = lock(&self.state);
        mark_dead(&mut st, hash);
        Ok(())
    }

    /// Make every put and delete since the last sync durable: each pack appended to and
    /// each pack with records to mark dead is written and flushed (`fdatasync`), one pack
    /// at a time, and `DIR/packs` fsynced if a pack was started. Reads go on meanwhile:
    /// the state's lock is not held across the flushes. After a failure, every later sync
    /// fails until [`PackDir::discard_fresh`].
    pub fn sync(&self) -> Result<(), StoreError> {
        let _one = lock(&self.syncing);
        let (appended, marks, created, upto) = {
            let mut st = lock(&self.state);
            if st.failed {
                return Err(StoreError::Io {
                    what: format!(
                        "sync {}: an earlier flush failed; its bytes must be discarded first",
                        self.packs.display()
                    ),
                    source: std::io::Error::other("earlier flush failed"),
                });
            }
            // The descriptors the appends went through (kept open until now).
            let mut appended: Vec<(u32, Arc<File>)> = Vec::new();
            // (Never closed while awaiting a flush: `file_of` finds them open.)
            for n in st.unsynced.clone() {
                match self.file_of(&mut st, n) {
                    Ok(f) => appended.push((n, f)),
                    Err(e) => {
                        st.failed = true;
                        return Err(e);
                    }
                }
            }
            st.unsynced.clear();
            let created = std::mem::take(&mut st.created);
            (appended, st.marks.clone(), created, (st.active, st.end))
        };
        let result = self.flush(&appended, &marks, created);
        let mut st = lock(&self.state);
        match result {
            Ok(()) => {
                for (n, done) in &marks {
                    if let Some(left) = st.marks.get_mut(n) {
                        left.retain(|at, _| !done.contains_key(at));
                        if left.is_empty() {
                            st.marks.remove(n);
                        }
                    }
                }
                st.synced = upto.max(st.synced);
                Ok(())
            }
            Err(e) => {
                st.failed = true;
                st.unsynced.extend(appended.iter().map(|(n, _)| *n));
                st.created |= created;
                Err(e)
            }
        }
    }

    /// The flushes of [`PackDir::sync`], outside the state's lock.
    fn flush(
        &self,
        appended: &[(u32, Arc<File>)],
        marks: &BTreeMap<u32, BTreeMap<u64, u32>>,
        created: bool,
    ) -> Result<(), StoreError> {
        for (n, file) in appended {
            if !marks.contains_key(n) {
                file.sync_data().map_err(io_err(format!(
                    "fdatasync {}",
                    self.path_of_pack(*n).display()
                )))?;
            }
        }
        // One pack at a time: a delete in every pack of a large store does not open them
        // all at once.
        for (n, records) in marks {
            let what = format!("mark records dead in {}", self.path_of_pack(*n).display());
            let file = match appended.iter().find(|(m, _)| m == n) {
                Some((_, f)) => Arc::clone(f),
                None => self.file_of(&mut lock(&self.state), *n)?,
            };
            write_marks(&file, records.keys().copied(), &what)?;
            punch_holes(&file, records.iter().map(|(at, len)| (*at, *len)));
        }
        if created {
            sync_dir(&self.packs)?;
        }
        Ok(())
    }

    /// The record store committed what the last sync made durable: it is part of the
    /// state now, and the records its puts superseded are marked dead at the next sync.
    pub fn committed(&self) {
        let _one = lock(&self.syncing);
        let mut st = lock(&self.state);
        let synced = st.synced;
        let State {
            fresh,
            index,
            marks,
            ..
        } = &mut *st;
        fresh.retain(|h, before| {
            let later = index.get(h).is_some_and(|l| (l.pack, l.at) > synced);
            if !later && let Some(b) = before {
                note_dead(marks, *b);
            }
            later
        });
        st.committed = synced;
    }

    /// The record store's commit failed: take back every chunk appended since the last
    /// commit (truncate the committed pack to its committed length, remove packs started
    /// since; a chunk held before goes back to its earlier record). Deletes stay done
    /// (their marks are written at the next sync). Returns how many chunks were taken
    /// back.
    pub fn discard_fresh(&self) -> Result<u64, StoreError> {
        let _one = lock(&self.syncing);
        let mut st = lock(&self.state);
        if !st.scanned {
            // Nothing was put or deleted yet (both read the packs first): nothing to take
            // back, and no pack to truncate.
            return Ok(0);
        }
        let fresh = std::mem::take(&mut st.fresh);
        let mut taken_back = 0;
        for (h, before) in fresh {
            match before {
                Some(loc) => {
                    st.index.insert(h, loc);
                }
                None => {
                    st.index.remove(&h);
                    taken_back += 1;
                }
            }
        }
        let (pack, len) = st.committed;
        let later: Vec<u32> = st.packs.range(pack + 1..).copied().collect();
        let mut first_error = None;
        for n in later {
            st.files.remove(&n);
            st.marks.remove(&n);
            let path = self.path_of_pack(n);
            match fs::remove_file(&path) {
                Ok(()) => {
                    st.packs.remove(&n);
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    st.packs.remove(&n);
                }
                // Still listed: the next discard tries again (and no roll makes a pack of
                // its name meanwhile: a failed discard leaves the store failed).
                Err(e) => {
                    first_error.get_or_insert(io_err(format!("remove {}", path.display()))(e));
                }
            }
        }
        drop_marks_from(&mut st, pack, len);
        st.active = pack;
        if let Err(e) = self.file_of(&mut st, pack).and_then(|f| {
            f.set_len(len).map_err(io_err(format!(
                "truncate {}",
                self.path_of_pack(pack).display()
            )))
        }) {
            first_error.get_or_insert(e);
        }
        st.end = len;
        st.synced = (pack, len);
        st.unsynced.clear();
        st.created = false;
        st.failed = first_error.is_some();
        match first_error {
            Some(e) => Err(e),
            None => Ok(taken_back),
        }
    }

    /// Start-up: read every pack in order and verify each record, indexing the good ones
    /// (a chunk's last good record wins), copying the bad ones to the quarantine, and
    /// cutting a torn or unreadable tail off the last pack (a crash mid-append). An
    /// unreadable record in an earlier pack ends that pack's reading with a warning (the
    /// records after it are not found). Files that are not packs are left alone with a
    /// warning. The verified chunks' lengths are in [`Scan::lengths`].
    pub fn scan_index(&self) -> Result<Scan, StoreError> {
        let mut scan = Scan::default();
        let mut numbers = Vec::new();
        for name in read_dir_sorted(&self.packs)? {
            match name.strip_suffix(".pack").and_then(|n| {
                (n.len() == 8 && n.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| n.parse::<u32>().ok())
                    .flatten()
            }) {
                Some(n) => numbers.push(n),
                None => scan.warnings.push(format!(
                    "ignoring {}: expected a pack named by 8 decimal digits and .pack",
                    self.packs.join(&name).display()
                )),
            }
        }
        let mut st = lock(&self.state);
        st.index.clear();
        st.files.clear();
        st.packs.clear();
        if numbers.is_empty() {
            numbers.push(1);
            open_pack(&self.path_of_pack(1), true)?;
            sync_dir(&self.packs)?;
        }
        let last = numbers[numbers.len() - 1];
        let mut rotten: Vec<(u32, Vec<u64>)> = Vec::new();
        let mut damaged = BTreeSet::new();
        for &n in &numbers {
            let path = self.path_of_pack(n);
            let file = open_pack(&path, false)?;
            let size = file
                .metadata()
                .map_err(io_err(format!("stat {}", path.display())))?
                .len();
            let (good_end, dead) = self.read_pack(n, &file, size, &mut st.index, &mut scan)?;
            if !dead.is_empty() {
                rotten.push((n, dead));
            }
            if good_end < size {
                if n == last {
                    // Kept in the quarantine first: a tail that is no record may still
                    // be a committed record whose head rotted.
                    let q = self.quarantine.join(format!("pack-{n:08}-at-{good_end}"));
                    copy_range(&file, good_end, size, &q)?;
                    sync_dir(&self.quarantine)?;
                    file.set_len(good_end)
                        .and_then(|()| file.sync_all())
                        .map_err(io_err(format!("truncate {}", path.display())))?;
                    scan.warnings.push(format!(
                        "cut {} bytes that are no whole record (an append a crash cut short, or a damaged head) off the end of {} (copied to {})",
                        size - good_end,
                        path.display(),
                        q.display()
                    ));
                } else {
                    scan.warnings.push(format!(
                        "{}: unreadable from byte {good_end} of {size}; no record found after it (the pack is kept as it is, never compacted)",
                        path.display()
                    ));
                    damaged.insert(n);
                }
            }
            if n == last {
                st.end = good_end;
                st.files.insert(n, Arc::new(file));
            }
            st.packs.insert(n);
        }
        if !rotten.is_empty() {
            // The copies are durable before their records are marked dead.
            sync_dir(&self.quarantine)?;
            for (n, records) in rotten {
                let what = format!("mark a rotten record of {}", self.path_of_pack(n).display());
                let file = self.file_of(&mut st, n)?;
                write_marks(&file, records, &what)?;
            }
        }
        st.active = last;
        st.committed = (last, st.end);
        st.synced = st.committed;
        st.scanned = true;
        st.fresh.clear();
        st.unsynced.clear();
        st.created = false;
        st.failed = false;
        st.marks.clear();
        st.damaged = damaged;
        scan.lengths = (st.index.iter()).map(|(h, l)| (*h, l.len)).collect();
        Ok(scan)
    }

    /// [`PackDir::scan_index`], and the verified chunks' bytes read back in
    /// [`Scan::chunks`] (in hash order) for the stores that keep them in memory.
    pub fn scan(&self) -> Result<Scan, StoreError> {
        let mut scan = self.scan_index()?;
        for hash in std::mem::take(&mut scan.lengths).into_keys() {
            if let Some(bytes) = self.get(&hash)? {
                scan.chunks.push(Chunk { hash, bytes });
            }
        }
        Ok(scan)
    }

    /// Read pack `n` (`size` bytes) from its start; returns where the reading ended (the
    /// end of its last whole record: `size` unless what follows holds no record that can be
    /// found), and where the records it quarantined begin (to be marked dead). Bytes that
    /// are not a record (a rotten head) followed by a record that verifies are copied to
    /// the quarantine and stepped over.
    fn read_pack(
        &self,
        n: u32,
        file: &File,
        size: u64,
        index: &mut BTreeMap<ChunkHash, Loc>,
        scan: &mut Scan,
    ) -> Result<(u64, Vec<u64>), StoreError> {
        let mut dead = Vec::new();
        let path = self.path_of_pack(n);
        let read_err = || io_err(format!("read {}", path.display()));
        let mut r = BufReader::with_capacity(1 << 20, file);
        let mut at = 0u64;
        let mut head = [0u8; HEAD];
        loop {
            if at == size {
                return Ok((at, dead));
            }
            let whole = read_full(&mut r, &mut head).map_err(read_err())?;
            let (magic, hash, len) = parse_head(&head);
            let gone = magic == DEAD;
            let fits = at + HEAD as u64 + u64::from(len) <= size;
            let mut record = None;
            if whole && (gone || magic == MAGIC) && len <= RECORD_BYTES_MAX && fits {
                let mut bytes = vec![0u8; len as usize];
                r.read_exact(&mut bytes).map_err(read_err())?;
                let next = at + HEAD as u64 + u64::from(len);
                let good = !gone && verify_chunk(&hash, &bytes);
                // A record that verifies had its length right. One that is dead or does
                // not verify may have a rotten length: it is believed only if another
                // record (or the end) starts where it says it ends, and no record that
                // verifies starts inside it.
                if good
                    || (self.starts_record(file, next, size)?
                        && self.find_record(n, file, at + 1, next, size)?.is_none())
                {
                    record = Some((hash, bytes, good, next));
                }
            }
            let Some((hash, bytes, good, next)) = record else {
                // Not a record here (or one whose length cannot be trusted): a torn tail,
                // or damage with records after it.
                let Some(next) = self.find_record(n, file, at + 1, size, size)? else {
                    return Ok((at, dead));
                };
                let q = self.quarantine.join(format!("pack-{n:08}-at-{at}"));
                copy_range(file, at, next, &q)?;
                sync_dir(&self.quarantine)?;
                scan.warnings.push(format!(
                    "{}: bytes {at}..{next} are not a record (copied to {}); reading goes on at {next}",
                    path.display(),
                    q.display()
                ));
                at = next;
                std::io::Seek::seek(&mut r, std::io::SeekFrom::Start(at)).map_err(read_err())?;
                continue;
            };
            let start = at;
            at = next;
            if gone {
                continue;
            }
            if good {
                // A later good record of a chunk supersedes an earlier one.
                index.insert(
                    hash,
                    Loc {
                        pack: n,
                        at: start + HEAD as u64,
                        len,
                    },
                );
            } else {
                let q = self.quarantine.join(hash.to_hex());
                File::create(&q)
                    .and_then(|mut f| {
                        std::io::Write::write_all(&mut f, &bytes)?;
                        f.sync_all()
                    })
                    .map_err(io_err(format!("write {}", q.display())))?;
                dead.push(start);
                scan.quarantined.push(hash);
            }
        }
    }

    /// Whether a record head (live or dead) starts at `at` of `file`, or `at` is its end.
    fn starts_record(&self, file: &File, at: u64, size: u64) -> Result<bool, StoreError> {
        if at == size {
            return Ok(true);
        }
        if at + HEAD as u64 > size {
            return Ok(false);
        }
        let mut magic = [0u8; 4];
        file.read_exact_at(&mut magic, at)
            .map_err(io_err(format!("read a pack at {at}")))?;
        Ok(magic == MAGIC || magic == DEAD)
    }

    /// The first offset in `from..until` of `file` (`size` bytes) where a record starts
    /// whose bytes verify, read a window at a time; `None` if there is none.
    fn find_record(
        &self,
        n: u32,
        file: &File,
        from: u64,
        until: u64,
        size: u64,
    ) -> Result<Option<u64>, StoreError> {
        const WINDOW: usize = 1 << 20;
        let what = || {
            io_err(format!(
                "search {} for a record",
                self.path_of_pack(n).display()
            ))
        };
        let mut window = vec![0u8; WINDOW + HEAD];
        let mut base = from;
        while base < until.min(size) {
            // A head that starts before `until` ends before `until + HEAD`: no more is
            // read (a dead record's check reads its own bytes, not a window).
            let want =
                (size.min(until + HEAD as u64 - 1) - base).min((WINDOW + HEAD) as u64) as usize;
            file.read_exact_at(&mut window[..want], base)
                .map_err(what())?;
            let last_start = want.saturating_sub(HEAD - 1).min(WINDOW);
            for i in 0..last_start {
                if window[i..i + 4] != MAGIC {
                    continue;
                }
                let o = base + i as u64;
                if o >= until {
                    return Ok(None);
                }
                let (_, hash, len) = parse_head(&window[i..i + HEAD]);
                if len > RECORD_BYTES_MAX || o + HEAD as u64 + u64::from(len) > size {
                    continue;
                }
                let mut bytes = vec![0u8; len as usize];
                file.read_exact_at(&mut bytes, o + HEAD as u64)
                    .map_err(what())?;
                if verify_chunk(&hash, &bytes) {
                    return Ok(Some(o));
                }
            }
            base += WINDOW as u64;
        }
        Ok(None)
    }

    /// Start-up, after recovery: drop every chunk whose name is not in `keep`, then
    /// compact each pack but the active one in which less than half the bytes are still
    /// held: its held records are appended to the active pack, made durable, and the old
    /// pack removed. Run it only with the complete set of names the committed state
    /// refers to.
    pub fn collect_garbage(&self, keep: &BTreeSet<ChunkHash>) -> Result<Garbage, StoreError> {
        self.ensure_scanned()?;
        let mut garbage = Garbage::default();
        let sparse: Vec<u32> = {
            let mut st = lock(&self.state);
            let drop: Vec<ChunkHash> = (st.index.keys())
                .filter(|h| !keep.contains(h))
                .copied()
                .collect();
            for h in drop {
                let len = st.index[&h].len;
                mark_dead(&mut st, &h);
                garbage.chunks += 1;
                garbage.bytes += u64::from(len);
            }
            let mut live: BTreeMap<u32, u64> = BTreeMap::new();
            for loc in st.index.values() {
                *live.entry(loc.pack).or_default() += HEAD as u64 + u64::from(loc.len);
            }
            let mut sparse = Vec::new();
            for n in &st.packs {
                if *n == st.active || st.damaged.contains(n) {
                    continue;
                }
                // The bytes the pack takes on disk: dead records whose bytes were given
                // back (punched) cost only their heads, and are no reason to rewrite it.
                let size =
                    fs::metadata(self.path_of_pack(*n)).map_or(0, |m| m.len().min(allocated(&m)));
                if live.get(n).copied().unwrap_or(0) * 2 < size {
                    sparse.push(*n);
                }
            }
            sparse
        };
        // The dead marks are durable before any compaction moves records. A failed flush
        // is discarded (the marks stay queued for the next sync), so the store is not left
        // refusing every later sync.
        if let Err(e) = self.sync() {
            let _ = self.discard_fresh();
            return Err(e);
        }
        self.trim_dead_tail()?;
        for n in sparse {
            // Copied into the active pack as puts of held chunks (each new record
            // supersedes the old one); on any failure the discard goes back to the old
            // records, which are still where they were.
            let moving: Vec<ChunkHash> = (lock(&self.state).index.iter())
                .filter(|(_, l)| l.pack == n)
                .map(|(h, _)| *h)
                .collect();
            let moved = (|| {
                let mut batch = Vec::with_capacity(moving.len());
                for h in &moving {
                    if let Some(bytes) = self.get(h)? {
                        batch.push((*h, bytes));
                    }
                }
                let refs: Vec<(ChunkHash, &[u8])> =
                    batch.iter().map(|(h, b)| (*h, b.as_ref())).collect();
                for r in self.put_many(&refs) {
                    match r {
                        // Refused by the put's check (it no longer verifies): it stays,
                        // and keeps its pack.
                        Err(StoreError::Corrupt { .. }) | Ok(()) => {}
                        Err(e) => return Err(e),
                    }
                }
                self.sync()
            })();
            if let Err(e) = moved {
                let _ = self.discard_fresh();
                return Err(e);
            }
            self.committed();
            {
                let mut st = lock(&self.state);
                if st.index.values().any(|l| l.pack == n) {
                    // Not everything moved (a chunk that no longer verified, say): kept.
                    continue;
                }
                st.files.remove(&n);
                st.packs.remove(&n);
                st.marks.remove(&n);
            }
            let path = self.path_of_pack(n);
            fs::remove_file(&path).map_err(io_err(format!("remove {}", path.display())))?;
            sync_dir(&self.packs)?;
        }
        Ok(garbage)
    }

    /// Cut the dead records off the end of the active pack (what a crash between puts
    /// and their commit leaves, once the collection marked it dead): the disk gets its
    /// bytes back at once, not at a compaction. Only with nothing appended since the
    /// last commit.
    fn trim_dead_tail(&self) -> Result<(), StoreError> {
        let mut st = lock(&self.state);
        if !st.fresh.is_empty() || st.synced != (st.active, st.end) {
            return Ok(());
        }
        let active = st.active;
        let live_end = (st.index.values())
            .filter(|l| l.pack == active)
            .map(|l| l.at + u64::from(l.len))
            .max()
            .unwrap_or(0);
        if live_end >= st.end {
            return Ok(());
        }
        let path = self.path_of_pack(active);
        let file = self.file_of(&mut st, active)?;
        file.set_len(live_end)
            .and_then(|()| file.sync_all())
            .map_err(io_err(format!("truncate {} to {live_end}", path.display())))?;
        st.end = live_end;
        st.committed = (active, live_end);
        st.synced = st.committed;
        drop_marks_from(&mut st, active, live_end);
        Ok(())
    }

    /// Chaos hook: flip one byte in the middle of the first (in hash order) held chunk
    /// that is non-empty and still verifies, and flush it, as the chunk directory's does.
    /// Returns the chunk's hash, or `None` if no chunk is left intact.
    pub fn corrupt_one(&self) -> Result<Option<ChunkHash>, StoreError> {
        self.ensure_scanned()?;
        let held: Vec<(ChunkHash, Loc)> = (lock(&self.state).index.iter())
            .filter(|(_, l)| l.len > 0)
            .map(|(h, l)| (*h, *l))
            .collect();
        for (hash, loc) in held {
            let Some(bytes) = self.get(&hash)? else {
                continue;
            };
            if !verify_chunk(&hash, &bytes) {
                continue;
            }
            let file = self.file_of(&mut lock(&self.state), loc.pack)?;
            let what = format!(
                "corrupt a record of {}",
                self.path_of_pack(loc.pack).display()
            );
            let mid = bytes.len() / 2;
            file.write_all_at(&[bytes[mid] ^ 0xff], loc.at + mid as u64)
                .and_then(|()| file.sync_data())
                .map_err(io_err(what))?;
            return Ok(Some(hash));
        }
        Ok(None)
    }
}

/// Refuse bytes that are not the chunk `hash` or too long for a record.
fn check(hash: &ChunkHash, bytes: &[u8]) -> Result<(), StoreError> {
    let reason = if bytes.len() > RECORD_BYTES_MAX as usize {
        format!(
            "refusing to store {} bytes: a record holds at most {RECORD_BYTES_MAX}",
            bytes.len()
        )
    } else {
        return crate::refuse_unless_chunk(hash, bytes);
    };
    Err(StoreError::Corrupt {
        kind: "chunk".into(),
        name: hash.to_hex(),
        reason,
    })
}

/// Copy bytes `from..to` of `file` to a new file `dest`, flushed.
fn copy_range(file: &File, from: u64, to: u64, dest: &Path) -> Result<(), StoreError> {
    let what = || io_err(format!("copy bytes {from}..{to} to {}", dest.display()));
    let mut out = File::create(dest).map_err(what())?;
    let mut buf = vec![0u8; (to - from).min(1 << 20) as usize];
    let mut at = from;
    while at < to {
        let k = (to - at).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..k], at).map_err(what())?;
        std::io::Write::write_all(&mut out, &buf[..k]).map_err(what())?;
        at += k as u64;
    }
    out.sync_all().map_err(what())
}

/// Fill `buf` from `r`: `false` if the input ended first (a torn record).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => return Ok(false),
            Ok(k) => got += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(i: u32) -> (ChunkHash, Vec<u8>) {
        let bytes: Vec<u8> = (0..(100 + i * 37)).map(|k| (k ^ i) as u8).collect();
        (ChunkHash::of(&bytes), bytes)
    }

    fn open(dir: &Path, target: u64) -> PackDir {
        let p = PackDir::open_with_target(dir, target).unwrap();
        p.scan_index().unwrap();
        p
    }

    /// Put `chunks`, sync and commit: what a record store's successful fsync does.
    fn commit_all(p: &PackDir, chunks: &[(ChunkHash, Vec<u8>)]) {
        put_all(p, chunks);
        p.sync().unwrap();
        p.committed();
    }

    fn put_all(p: &PackDir, chunks: &[(ChunkHash, Vec<u8>)]) {
        let refs: Vec<(ChunkHash, &[u8])> = chunks.iter().map(|(h, b)| (*h, &b[..])).collect();
        for r in p.put_many(&refs) {
            r.unwrap();
        }
    }

    #[test]
    fn committed_chunks_are_found_again_after_a_restart_and_a_second_put_before_the_commit_appends_nothing()
     {
        // Goal: what was put, synced and committed reads back, also from a new process's
        // scan; a chunk put again (or twice in one batch) takes no more room; bytes that
        // are not their chunk are refused at their own place in the batch.
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), PACK_TARGET);
        let chunks: Vec<_> = (0..50).map(chunk).collect();
        put_all(&p, &chunks);
        let size = fs::metadata(p.path_of_pack(1)).unwrap().len();
        let (h0, b0) = &chunks[0];
        let (h1, b1) = &chunks[1];
        let results = p.put_many(&[(*h0, &b0[..]), (*h1, &b0[..]), (*h1, &b1[..])]);
        assert!(results[0].is_ok() && results[1].is_err() && results[2].is_ok());
        assert_eq!(fs::metadata(p.path_of_pack(1)).unwrap().len(), size);
        p.sync().unwrap();
        p.committed();
        drop(p);
        let p = PackDir::open(dir.path()).unwrap();
        let scan = p.scan_index().unwrap();
        assert_eq!(scan.lengths.len(), 50);
        assert!(scan.warnings.is_empty() && scan.quarantined.is_empty());
        for (h, b) in &chunks {
            assert_eq!(p.get(h).unwrap().as_deref(), Some(&b[..]));
            assert_eq!(scan.lengths[h] as usize, b.len());
        }
    }

    #[test]
    fn a_rotten_chunk_put_again_is_replaced_and_a_failed_commit_goes_back_to_the_old_record() {
        // Goal: as the chunk directory's put replaced a rotten file, putting a held chunk
        // again makes it read right (now and after a restart); a failed commit of such a
        // put takes back nothing that was held before it.
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), PACK_TARGET);
        let chunks: Vec<_> = (0..4).map(chunk).collect();
        commit_all(&p, &chunks);
        let rotten = p.corrupt_one().unwrap().unwrap();
        let good = &chunks.iter().find(|(h, _)| *h == rotten).unwrap().1;
        assert_ne!(p.get(&rotten).unwrap().as_deref(), Some(&good[..]));
        // Put again, not committed: the discard goes back to the old record.
        p.put(&rotten, good).unwrap();
        assert_eq!(p.get(&rotten).unwrap().as_deref(), Some(&good[..]));
        assert_eq!(p.discard_fresh().unwrap(), 0);
        assert!(p.lengths().contains_key(&rotten));
        // Put again and committed: replaced, also for a restart's scan.
        p.put(&rotten, good).unwrap();
        p.sync().unwrap();
        p.committed();
        assert_eq!(p.get(&rotten).unwrap().as_deref(), Some(&good[..]));
        drop(p);
        let p = PackDir::open(dir.path()).unwrap();
        let scan = p.scan_index().unwrap();
        assert_eq!(scan.quarantined, vec![rotten], "the old record, copied out");
        assert_eq!(scan.lengths.len(), 4);
        assert_eq!(p.get(&rotten).unwrap().as_deref(), Some(&good[..]));
        // Deleted: gone for good, the old rotten record too (marked dead at the scan).
        p.delete(&rotten).unwrap();
        p.sync().unwrap();
        drop(p);
        let p = PackDir::open(dir.path()).unwrap();
        let scan = p.scan_index().unwrap();
        assert!(scan.quarantined.is_empty());
        assert_eq!(scan.lengths.len(), 3);
        assert_eq!(p.get(&rotten).unwrap(), None);
    }

    #[test]
    fn a_batch_larger_than_one_write_lands_whole_and_in_place() {
        // Goal: a publish-sized batch, written a few MiB at a time, puts every chunk where
        // the index says, read back now and after a restart.
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), PACK_TARGET);
        let chunks: Vec<(ChunkHash, Vec<u8>)> = (0..600u32)
            .map(|i| {
                let b: Vec<u8> = (0..10_000u32)
                    .map(|k| (k.wrapping_mul(i + 7) >> 3) as u8)
                    .collect();
                (ChunkHash::of(&b), b)
            })
            .collect();
        assert!(chunks.iter().map(|(_, b)| b.len()).sum::<usize>() > 1 + WRITE_BYTES);
        commit_all(&p, &chunks);
        for (h, b) in &chunks {
            assert_eq!(p.get(h).unwrap().as_deref(), Some(&b[..]));
        }
        drop(p);
        let p = PackDir::open(dir.path()).unwrap();
        let scan = p.scan_index().unwrap();
        assert!(scan.warnings.is_empty() && scan.quarantined.is_empty());
        assert_eq!(scan.lengths.len(), 600);
        for (h, b) in &chunks {
            assert_eq!(p.get(h).unwrap().as_deref(), Some(&b[..]));
        }
    }

    #[test]
    fn a_store_of_many_packs_keeps_few_open_and_reads_them_all() {
        // Goal: the open descriptors stay bounded however many packs a store has, and
        // every chunk still reads (packs reopened as needed), before and after a restart.
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), 1);
        let chunks: Vec<_> = (0..3 * OPEN_PACKS_MAX as u32).map(chunk).collect();
        for c in &chunks {
            commit_all(&p, std::slice::from_ref(c));
        }
        assert!(lock(&p.state).packs.len() >= chunks.len());
        for _ in 0..2 {
            for (h, b) in chunks.iter().rev() {
                assert_eq!(p.get(h).unwrap().as_deref(), Some(&b[..]));
                assert!(lock(&p.state).files.len() <= OPEN_PACKS_MAX);
            }
        }
        drop(p);
        let p = open(dir.path(), 1);
        assert!(lock(&p.state).files.len() <= OPEN_PACKS_MAX);
        for (h, b) in &chunks {
            assert_eq!(p.get(h).unwrap().as_deref(), Some(&b[..]));
        }
        assert!(lock(&p.state).files.len() <= OPEN_PACKS_MAX);
    }

    /// Record starts in pack `n` of `p`, in order.
    fn record_starts(p: &PackDir, n: u32) -> Vec<u64> {
        let mut starts: Vec<u64> = (lock(&p.state).index.values())
            .filter(|l| l.pack == n)
            .map(|l| l.at - HEAD as u64)
            .collect();
        starts.sort();
        starts
    }

    /// Flip the first byte of the record starting at `at` in pack `n` (its magic).
    fn rot_head(p: &PackDir, n: u32, at: u64) {
        let f = OpenOptions::new()
            .write(true)
            .read(true)
            .open(p.path_of_pack(n))
            .unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).unwrap();
        f.write_all_at(&[b[0] ^ 0x55], at).unwrap();
    }

    #[test]
    fn a_rotten_head_loses_its_own_record_only_in_the_last_pack_and_in_an_earlier_one() {
        // Goal: one damaged record head (not a torn tail) costs that record alone: the
        // scan steps over the bytes that are no record (copied to the quarantine) and
        // finds the records after them; nothing is cut off, and the start-up's collection
        // does not throw the earlier pack away.
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), 700);
        let chunks: Vec<_> = (0..12).map(chunk).collect();
        for c in chunks.chunks(3) {
            commit_all(&p, c);
        }
        let last = *lock(&p.state).packs.last().unwrap();
        assert!(last > 1, "several packs");
        let (first_starts, last_starts) = (record_starts(&p, 1), record_starts(&p, last));
        assert!(first_starts.len() >= 3 && last_starts.len() >= 2);
        let lost: Vec<ChunkHash> = {
            let st = lock(&p.state);
            [(1, first_starts[1]), (last, last_starts[0])]
                .iter()
                .map(|(n, at)| {
                    *st.index
                        .iter()
                        .find(|(_, l)| l.pack == *n && l.at - HEAD as u64 == *at)
                        .unwrap()
                        .0
                })
                .collect()
        };
        let sizes: Vec<u64> = [1, last]
            .iter()
            .map(|n| fs::metadata(p.path_of_pack(*n)).unwrap().len())
            .collect();
        rot_head(&p, 1, first_starts[1]);
        rot_head(&p, last, last_starts[0]);
        drop(p);
        let p = PackDir::open_with_target(dir.path(), 700).unwrap();
        let scan = p.scan_index().unwrap();
        assert_eq!(scan.lengths.len(), chunks.len() - 2, "{:?}", scan.warnings);
        for h in &lost {
            assert!(!scan.lengths.contains_key(h));
        }
        assert_eq!(scan.warnings.len(), 2, "{:?}", scan.warnings);
        for (n, size) in [1, last].iter().zip(&sizes) {
            assert_eq!(
                fs::metadata(p.path_of_pack(*n)).unwrap().len(),
                *size,
                "pack {n} cut"
            );
        }
        let keep: BTreeSet<ChunkHash> = scan.lengths.keys().copied().collect();
        p.collect_garbage(&keep).unwrap();
        drop(p);
        let p = open(dir.path(), 700);
        for (h, b) in chunks.iter().filter(|(h, _)| !lost.contains(h)) {
            assert_eq!(p.get(h).unwrap().as_deref(), Some(&b[..]));
        }
    }

    #[test]
    fn a_compaction_that_cannot_append_keeps_every_chunk_where_it_was() {
        // Goal: when the collection's copy of a sparse pack fails (here the next pack
        // cannot be created), it fails without losing a kept chunk: each still reads, now
        // and after a restart.
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), 1);
        let chunks: Vec<_> = (0..20).map(chunk).collect();
        for c in chunks.chunks(2) {
            commit_all(&p, c);
        }
        let next = *lock(&p.state).packs.last().unwrap() + 1;
        fs::create_dir(p.path_of_pack(next)).unwrap();
        let keep: BTreeSet<ChunkHash> = chunks.iter().step_by(4).map(|(h, _)| *h).collect();
        assert!(p.collect_garbage(&keep).is_err());
        for (h, b) in chunks.iter().filter(|(h, _)| keep.contains(h)) {
            assert_eq!(p.get(h).unwrap().as_deref(), Some(&b[..]));
        }
        fs::remove_dir(p.path_of_pack(next)).unwrap();
        drop(p);
        let p = open(dir.path(), 1);
        p.collect_garbage(&keep).unwrap();
        assert_eq!(p.lengths().keys().copied().collect::<BTreeSet<_>>(), keep);
        for (h, b) in chunks.iter().filter(|(h, _)| keep.contains(h)) {
            assert_eq!(p.get(h).unwrap().as_deref(), Some(&b[..]));
        }
    }

    #[test]
    fn a_compaction_leaves_a_chunk_that_rotted_where_it_is_and_moves_the_rest() {
        // Goal: a kept chunk whose bytes rotted after the start-up scan is not copied
        // (the put refuses it) and does not stop the collection: its pack stays, and
        // every other kept chunk still reads.
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), 1);
        let chunks: Vec<_> = (0..16).map(chunk).collect();
        for c in chunks.chunks(4) {
            commit_all(&p, c);
        }
        let rotten = p.corrupt_one().unwrap().unwrap();
        let pack = lock(&p.state).index[&rotten].pack;
        // The active pack is never compacted: one more, so the rotten chunk's is not it.
        commit_all(&p, &[chunk(99)]);
        assert_ne!(lock(&p.state).active, pack);
        // Of the rotten chunk's pack only it is kept (the pack is sparse); of the others,
        // one chunk in two.
        let in_pack = |h: &ChunkHash| lock(&p.state).index[h].pack == pack;
        let others: Vec<ChunkHash> = chunks
            .iter()
            .map(|(h, _)| *h)
            .filter(|h| !in_pack(h))
            .collect();
        let keep: BTreeSet<ChunkHash> = [rotten]
            .into_iter()
            .chain(others.into_iter().step_by(2))
            .collect();
        p.collect_garbage(&keep).unwrap();
        assert!(
            p.path_of_pack(pack).is_file(),
            "the rotten chunk's pack was removed"
        );
        for (h, b) in chunks
            .iter()
            .filter(|(h, _)| keep.contains(h) && *h != rotten)
        {
            assert_eq!(p.get(h).unwrap().as_deref(), Some(&b[..]));
        }
    }

    #[test]
    fn a_delete_gives_its_disk_space_back_at_the_next_sync_and_leaves_the_rest_whole() {
        // Goal: a running server's deletes free disk space (a hole punched over each dead
        // record's bytes once its mark is durable), not only at the next start-up's
        // compaction; the records around the holes read back, a restart's scan finds
        // exactly them with no warning, and a deleted chunk put again is whole.
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), PACK_TARGET);
        let big = |i: u32| {
            let b = crate::fixtures::noise_from(u64::from(i) + 1, 64 * 1024 + i as usize * 7);
            (ChunkHash::of(&b), b)
        };
        let chunks: Vec<_> = (0..64).map(big).collect();
        commit_all(&p, &chunks);
        let pack = p.path_of_pack(1);
        let size = fs::metadata(&pack).unwrap().len();
        let on_disk = || allocated(&fs::metadata(&pack).unwrap());
        let before = on_disk();
        assert!(
            before >= size,
            "{before} bytes allocated for a pack of {size}"
        );
        let (gone, kept) = chunks.split_at(48);
        for (h, _) in gone {
            p.delete(h).unwrap();
        }
        assert_eq!(
            on_disk(),
            before,
            "space freed before the deletes were durable"
        );
        p.sync().unwrap();
        p.committed();
        let deleted: u64 = gone.iter().map(|(_, b)| b.len() as u64).sum();
        let freed = before - on_disk();
        assert!(
            freed >= deleted * 9 / 10,
            "{freed} bytes freed by deleting {deleted}"
        );
        assert_eq!(fs::metadata(&pack).unwrap().len(), size);
        for (h, b) in kept {
            assert_eq!(p.get(h).unwrap().as_deref(), Some(&b[..]));
        }
        for (h, _) in gone {
            assert_eq!(p.get(h).unwrap(), None);
        }
        drop(p);
        let p = PackDir::open(dir.path()).unwrap();
        let scan = p.scan_index().unwrap();
        assert!(scan.warnings.is_empty(), "{:?}", scan.warnings);
        assert!(scan.quarantined.is_empty());
        let held: BTreeSet<ChunkHash> = scan.lengths.keys().copied().collect();
        assert_eq!(held, kept.iter().map(|(h, _)| *h).collect());
        commit_all(&p, &gone[..1]);
        drop(p);
        let p = open(dir.path(), PACK_TARGET);
        for (h, b) in kept.iter().chain(&gone[..1]) {
            assert_eq!(p.get(h).unwrap().as_deref(), Some(&b[..]));
        }
        assert_eq!(p.lengths().len(), kept.len() + 1);
    }

    #[test]
    fn a_cut_dead_tail_takes_its_marks_with_it() {
        // Goal: a delete queued when the dead tail of the active pack is cut (a delete
        // landing inside the start-up collection) does not mark dead, or punch, the
        // record appended later where the cut one was.
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), PACK_TARGET);
        let chunks: Vec<_> = (0..4).map(chunk).collect();
        commit_all(&p, &chunks[..3]);
        p.delete(&chunks[2].0).unwrap();
        p.trim_dead_tail().unwrap();
        commit_all(&p, &chunks[3..]);
        let (h, b) = &chunks[3];
        assert_eq!(p.get(h).unwrap().as_deref(), Some(&b[..]));
        drop(p);
        let p = open(dir.path(), PACK_TARGET);
        assert_eq!(p.get(h).unwrap().as_deref(), Some(&b[..]));
        assert_eq!(p.lengths().len(), 3);
    }

    #[test]
    fn a_deleted_chunk_stays_deleted_however_often_it_was_put() {
        // Goal: a chunk put, committed, put again and committed, then deleted, does not
        // come back at a restart (its earlier record is marked dead too), and a delete
        // whose sync was followed by a discard is still written at the next sync.
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), PACK_TARGET);
        let chunks: Vec<_> = (0..3).map(chunk).collect();
        commit_all(&p, &chunks);
        let (h, b) = &chunks[0];
        p.put(h, b).unwrap();
        p.sync().unwrap();
        p.committed();
        p.delete(h).unwrap();
        p.discard_fresh().unwrap();
        let (h2, _) = &chunks[1];
        p.delete(h2).unwrap();
        p.sync().unwrap();
        drop(p);
        let p = open(dir.path(), PACK_TARGET);
        assert_eq!(p.get(h).unwrap(), None);
        assert_eq!(p.get(h2).unwrap(), None);
        assert_eq!(p.lengths().len(), 1);
    }

    #[test]
    fn a_rotten_length_costs_its_own_record_only_even_when_it_lands_on_another() {
        // Goal: a record whose length field rotted (here grown by exactly the next
        // record's size, so it seems to end where a record starts) does not hide the
        // records it now seems to cover: the scan finds them, and the collection keeps
        // them.
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), PACK_TARGET);
        let chunks: Vec<_> = (0..6).map(chunk).collect();
        commit_all(&p, &chunks);
        let starts = record_starts(&p, 1);
        let grow = starts[3] - starts[2];
        let f = OpenOptions::new()
            .write(true)
            .read(true)
            .open(p.path_of_pack(1))
            .unwrap();
        let mut len = [0u8; 4];
        f.read_exact_at(&mut len, starts[1] + 36).unwrap();
        let rotten = u32::from_le_bytes(len) + grow as u32;
        f.write_all_at(&rotten.to_le_bytes(), starts[1] + 36)
            .unwrap();
        let lost = *(lock(&p.state).index.iter())
            .find(|(_, l)| l.at - HEAD as u64 == starts[1])
            .unwrap()
            .0;
        drop(p);
        for _ in 0..2 {
            let p = PackDir::open(dir.path()).unwrap();
            let scan = p.scan_index().unwrap();
            assert_eq!(scan.lengths.len(), 5, "{:?}", scan.warnings);
            assert!(!scan.lengths.contains_key(&lost));
            let keep: BTreeSet<ChunkHash> = scan.lengths.keys().copied().collect();
            p.collect_garbage(&keep).unwrap();
            for (h, b) in chunks.iter().filter(|(h, _)| *h != lost) {
                assert_eq!(p.get(h).unwrap().as_deref(), Some(&b[..]));
            }
        }
    }

    #[test]
    fn a_store_that_failed_a_commit_before_any_chunk_goes_on() {
        // Goal: a record store whose first commit fails before it touched a chunk (a
        // dropped database connection) discards without error, and its next sync works.
        let dir = tempfile::tempdir().unwrap();
        let p = PackDir::open(dir.path()).unwrap();
        p.sync().unwrap();
        assert_eq!(p.discard_fresh().unwrap(), 0);
        p.sync().unwrap();
        p.committed();
        let (h, b) = chunk(1);
        p.put(&h, &b).unwrap();
        p.sync().unwrap();
        p.committed();
        drop(p);
        assert_eq!(
            open(dir.path(), PACK_TARGET).get(&h).unwrap().as_deref(),
            Some(&b[..])
        );
    }

    #[test]
    fn a_torn_last_record_is_cut_off_at_start_up_and_the_records_before_it_kept() {
        // Goal: a crash in the middle of an append (here: half a record at the end of the
        // last pack) loses only that record: the start-up cuts it off, says so, and the
        // next append goes where it began.
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), PACK_TARGET);
        let chunks: Vec<_> = (0..5).map(chunk).collect();
        commit_all(&p, &chunks);
        let whole = fs::metadata(p.path_of_pack(1)).unwrap().len();
        let (h, b) = chunk(99);
        let mut torn = record_head(&h, b.len() as u32).to_vec();
        torn.extend_from_slice(&b[..b.len() / 2]);
        let f = OpenOptions::new()
            .append(true)
            .open(p.path_of_pack(1))
            .unwrap();
        std::io::Write::write_all(&mut &f, &torn).unwrap();
        drop(p);
        let p = PackDir::open(dir.path()).unwrap();
        let scan = p.scan_index().unwrap();
        assert_eq!(scan.lengths.len(), 5);
        assert!(
            scan.warnings.iter().any(|w| w.contains("no whole record")),
            "{:?}",
            scan.warnings
        );
        assert_eq!(fs::metadata(p.path_of_pack(1)).unwrap().len(), whole);
        assert_eq!(p.get(&h).unwrap(), None);
        p.put(&h, &b).unwrap();
        p.sync().unwrap();
        p.committed();
        drop(p);
        let p = open(dir.path(), PACK_TARGET);
        assert_eq!(p.get(&h).unwrap().as_deref(), Some(&b[..]));
    }

    #[test]
    fn a_failed_commit_takes_back_exactly_what_was_appended_since_the_last_one() {
        // Goal: chunks appended (and even synced, and spilling into new packs) after the
        // last commit are gone after a discard — from the index, from the files, and after
        // a restart; the committed ones stay; a chunk held before is not taken back by a
        // failed put of it.
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), 2_000);
        let kept: Vec<_> = (0..10).map(chunk).collect();
        commit_all(&p, &kept);
        let packs_before = fs::read_dir(&p.packs).unwrap().count();
        let fresh: Vec<_> = (10..40).map(chunk).collect();
        for c in fresh.chunks(3) {
            put_all(&p, c);
        }
        put_all(&p, &kept[..2]);
        p.sync().unwrap();
        assert!(fs::read_dir(&p.packs).unwrap().count() > packs_before);
        assert_eq!(p.discard_fresh().unwrap(), 30);
        assert_eq!(fs::read_dir(&p.packs).unwrap().count(), packs_before);
        for (h, _) in &fresh {
            assert_eq!(p.get(h).unwrap(), None);
        }
        drop(p);
        let p = open(dir.path(), 2_000);
        assert_eq!(p.lengths().len(), 10);
        for (h, b) in &kept {
            assert_eq!(p.get(h).unwrap().as_deref(), Some(&b[..]));
        }
    }

    #[test]
    fn a_rotten_record_is_quarantined_at_start_up_and_the_others_are_kept() {
        // Goal: bytes that changed on the disk are never indexed: the start-up finds the
        // record that no longer hashes to its name, copies it out, and keeps the rest.
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), PACK_TARGET);
        let chunks: Vec<_> = (0..8).map(chunk).collect();
        commit_all(&p, &chunks);
        let rotten = p.corrupt_one().unwrap().unwrap();
        drop(p);
        let p = PackDir::open(dir.path()).unwrap();
        let scan = p.scan_index().unwrap();
        assert_eq!(scan.quarantined, vec![rotten]);
        assert_eq!(scan.lengths.len(), 7);
        assert!(p.quarantine_dir().join(rotten.to_hex()).is_file());
        assert_eq!(p.get(&rotten).unwrap(), None);
    }

    #[test]
    fn garbage_collection_drops_what_no_record_names_and_compacts_sparse_packs() {
        // Goal: after the start-up's collection only the named chunks are held, a pack
        // that was mostly garbage is gone, and what it held is still readable, also after
        // a restart.
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), 3_000);
        let chunks: Vec<_> = (0..40).map(chunk).collect();
        for c in chunks.chunks(4) {
            put_all(&p, c);
        }
        p.sync().unwrap();
        p.committed();
        let first = p.path_of_pack(1);
        assert!(first.is_file());
        let keep: BTreeSet<ChunkHash> = chunks.iter().skip(1).step_by(3).map(|(h, _)| *h).collect();
        let g = p.collect_garbage(&keep).unwrap();
        assert_eq!(g.chunks as usize, chunks.len() - keep.len());
        assert!(!first.exists(), "pack 1 held one chunk in three: compacted");
        drop(p);
        let p = open(dir.path(), 3_000);
        assert_eq!(p.lengths().keys().copied().collect::<BTreeSet<_>>(), keep);
        for (h, b) in chunks.iter().filter(|(h, _)| keep.contains(h)) {
            assert_eq!(p.get(h).unwrap().as_deref(), Some(&b[..]));
        }
    }
}
