//! A content-addressed chunk store in pack files: chunks appended to a few large files,
//! with an index in memory rebuilt at start-up. Not used by the record stores yet: it is
//! the step after [`crate::ChunkDir`] for issue 16, which measured that creating,
//! writing and renaming one small file per chunk costs ~140 µs of system time per chunk
//! (15 s per GiB published) where appending the same bytes to one file costs ~2 s.
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
//!   chunk behind, and a chunk already held (a put of it appends nothing) is never removed
//!   by someone else's failure. After a failed `fdatasync` the pending bytes cannot be
//!   trusted (the kernel may have dropped them and marked them clean), so every later sync
//!   fails until they are discarded.
//! - A delete drops the chunk from the index at once; its bytes stay in the pack until
//!   [`PackDir::collect_garbage`] compacts it. A restart finds it again in the pack, and
//!   the start-up's garbage collection (which keeps only what committed records name)
//!   drops it again — as the chunk directory's start-up removes a file a crash left.
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
use sovereign_logic::content::{ChunkHash, verify_chunk};

use crate::chunks::Scan;
use crate::{Garbage, StoreError, chunk_len, io_err, lock};

/// The first four bytes of every record.
const MAGIC: [u8; 4] = *b"SVC1";

/// A record's head: magic, hash, length.
const HEAD: usize = 4 + 32 + 4;

/// The largest chunk a record holds: a longer length in a head is corruption, not an
/// allocation to make (the chunker's largest is 64 KiB by default).
pub const RECORD_BYTES_MAX: u32 = 16 * 1024 * 1024;

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
    /// Every open pack, by number.
    files: BTreeMap<u32, Arc<File>>,
    index: BTreeMap<ChunkHash, Loc>,
    /// The pack appended to, and where the next record goes.
    active: u32,
    end: u64,
    /// The pack and length the last commit (or the start-up) left.
    committed: (u32, u64),
    /// Packs written since the last sync (they need an fdatasync), and packs created since
    /// (the directory needs an fsync).
    unsynced: BTreeSet<u32>,
    created: bool,
    /// Chunks appended since the last commit.
    fresh: BTreeSet<ChunkHash>,
    /// A flush failed: the bytes since the commit are not to be trusted.
    failed: bool,
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
}

fn pack_name(n: u32) -> String {
    format!("{n:08}.pack")
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

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("fsync directory {}", dir.display())))
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
            state: Mutex::new(State {
                files: BTreeMap::new(),
                index: BTreeMap::new(),
                active: 0,
                end: 0,
                committed: (0, 0),
                unsynced: BTreeSet::new(),
                created: false,
                fresh: BTreeSet::new(),
                failed: false,
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

    /// Store `bytes` as the chunk `hash` (see [`PackDir::put_many`]).
    pub fn put(&self, hash: &ChunkHash, bytes: &[u8]) -> Result<(), StoreError> {
        self.put_many(&[(*hash, bytes)]).remove(0)
    }

    /// Append every chunk not held yet to the active pack in one write, pending until
    /// the next [`PackDir::sync`]; one result per chunk, in order. Refuses bytes that do
    /// not hash to their name, or longer than [`RECORD_BYTES_MAX`]; a chunk held already
    /// (or twice in the batch) is appended once.
    pub fn put_many(&self, chunks: &[(ChunkHash, &[u8])]) -> Vec<Result<(), StoreError>> {
        let mut results: Vec<Result<(), StoreError>> = (chunks.iter())
            .map(|(hash, bytes)| check(hash, bytes))
            .collect();
        let mut st = lock(&self.state);
        if st.files.is_empty() {
            // Not scanned: there is no pack to append to yet.
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(not_open());
            }
            return results;
        }
        if let Err(e) = self.roll_if_full(&mut st) {
            let msg = e.to_string();
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(StoreError::Io {
                    what: msg.clone(),
                    source: std::io::Error::other("starting a new pack failed"),
                });
            }
            return results;
        }
        let mut buf = Vec::new();
        let mut new: Vec<(ChunkHash, Loc)> = Vec::new();
        let mut seen = BTreeSet::new();
        for ((hash, bytes), r) in chunks.iter().zip(&results) {
            if r.is_err() || st.index.contains_key(hash) || !seen.insert(*hash) {
                continue;
            }
            let len = chunk_len(bytes.len());
            buf.extend_from_slice(&record_head(hash, len));
            let at = st.end + buf.len() as u64;
            buf.extend_from_slice(bytes);
            new.push((
                *hash,
                Loc {
                    pack: st.active,
                    at,
                    len,
                },
            ));
        }
        if buf.is_empty() {
            return results;
        }
        let file = Arc::clone(&st.files[&st.active]);
        if let Err(e) = file.write_all_at(&buf, st.end) {
            // Nothing of it is indexed; cut off what reached the file (best effort: the
            // next append overwrites it, a start-up cuts a torn tail).
            let _ = file.set_len(st.end);
            let what = format!("append to {}", self.path_of_pack(st.active).display());
            for ((hash, _), r) in chunks.iter().zip(results.iter_mut()) {
                if r.is_ok() && new.iter().any(|(h, _)| h == hash) {
                    *r = Err(StoreError::Io {
                        what: what.clone(),
                        source: std::io::Error::new(e.kind(), e.to_string()),
                    });
                }
            }
            return results;
        }
        st.end += buf.len() as u64;
        let active = st.active;
        st.unsynced.insert(active);
        for (hash, loc) in new {
            st.index.insert(hash, loc);
            st.fresh.insert(hash);
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
        st.files.insert(next, Arc::new(file));
        st.active = next;
        st.end = 0;
        st.created = true;
        Ok(())
    }

    /// The bytes stored under `hash`, unverified; `None` if there is no such chunk.
    pub fn get(&self, hash: &ChunkHash) -> Result<Option<Bytes>, StoreError> {
        let (loc, file) = {
            let st = lock(&self.state);
            let Some(loc) = st.index.get(hash).copied() else {
                return Ok(None);
            };
            (loc, Arc::clone(&st.files[&loc.pack]))
        };
        let mut bytes = vec![0u8; loc.len as usize];
        file.read_exact_at(&mut bytes, loc.at)
            .map_err(io_err(format!(
                "read {} bytes at {} of {}",
                loc.len,
                loc.at,
                self.path_of_pack(loc.pack).display()
            )))?;
        Ok(Some(Bytes::from(bytes)))
    }

    /// The chunks held and their lengths.
    pub fn lengths(&self) -> BTreeMap<ChunkHash, u32> {
        (lock(&self.state).index.iter())
            .map(|(h, l)| (*h, l.len))
            .collect()
    }

    /// Drop `hash` from the index (see the module doc: its bytes go at compaction).
    pub fn delete(&self, hash: &ChunkHash) -> Result<(), StoreError> {
        let mut st = lock(&self.state);
        st.index.remove(hash);
        st.fresh.remove(hash);
        Ok(())
    }

    /// Make every put since the last sync durable: an `fdatasync` of each pack written,
    /// an fsync of `DIR/packs` if a pack was started. After a failure, every later sync
    /// fails until [`PackDir::discard_fresh`].
    pub fn sync(&self) -> Result<(), StoreError> {
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
        for n in std::mem::take(&mut st.unsynced) {
            if let Err(e) = st.files[&n].sync_data() {
                st.failed = true;
                return Err(io_err(format!(
                    "fdatasync {}",
                    self.path_of_pack(n).display()
                ))(e));
            }
        }
        if std::mem::take(&mut st.created)
            && let Err(e) = sync_dir(&self.packs)
        {
            st.failed = true;
            return Err(e);
        }
        Ok(())
    }

    /// The record store committed: what was appended is part of the state now.
    pub fn committed(&self) {
        let mut st = lock(&self.state);
        st.fresh.clear();
        st.committed = (st.active, st.end);
    }

    /// The record store's commit failed: take back every chunk appended since the last
    /// commit (truncate the committed pack to its committed length, remove packs started
    /// since). Returns how many chunks were taken back.
    pub fn discard_fresh(&self) -> Result<u64, StoreError> {
        let mut st = lock(&self.state);
        let fresh = std::mem::take(&mut st.fresh);
        for h in &fresh {
            st.index.remove(h);
        }
        let (pack, len) = st.committed;
        let later: Vec<u32> = st.files.range(pack + 1..).map(|(n, _)| *n).collect();
        let mut first_error = None;
        for n in later {
            st.files.remove(&n);
            let path = self.path_of_pack(n);
            if let Err(e) = fs::remove_file(&path) {
                first_error.get_or_insert(io_err(format!("remove {}", path.display()))(e));
            }
        }
        if let Some(f) = st.files.get(&pack)
            && let Err(e) = f.set_len(len)
        {
            first_error.get_or_insert(io_err(format!(
                "truncate {} to {len}",
                self.path_of_pack(pack).display()
            ))(e));
        }
        st.active = pack;
        st.end = len;
        st.unsynced.clear();
        st.created = false;
        st.failed = first_error.is_some();
        match first_error {
            Some(e) => Err(e),
            None => Ok(fresh.len() as u64),
        }
    }

    /// Start-up: read every pack in order and verify each record, indexing the good ones
    /// (a chunk's first good record wins), copying the bad ones to the quarantine, and
    /// cutting a torn or unreadable tail off the last pack (a crash mid-append). An
    /// unreadable record in an earlier pack ends that pack's reading with a warning (the
    /// records after it are not found). Files that are not packs are left alone with a
    /// warning. The verified chunks' lengths are in [`Scan::lengths`].
    pub fn scan_index(&self) -> Result<Scan, StoreError> {
        let mut scan = Scan::default();
        let mut numbers = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for entry in fs::read_dir(&self.packs)
            .map_err(io_err(format!("read directory {}", self.packs.display())))?
        {
            let entry = entry.map_err(io_err(format!("read {}", self.packs.display())))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        for name in names {
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
        if numbers.is_empty() {
            numbers.push(1);
            open_pack(&self.path_of_pack(1), true)?;
            sync_dir(&self.packs)?;
        }
        let last = numbers[numbers.len() - 1];
        let mut quarantined_any = false;
        for &n in &numbers {
            let path = self.path_of_pack(n);
            let file = open_pack(&path, false)?;
            let good_end =
                self.read_pack(n, &file, &mut st.index, &mut scan, &mut quarantined_any)?;
            let size = file
                .metadata()
                .map_err(io_err(format!("stat {}", path.display())))?
                .len();
            if good_end < size {
                if n == last {
                    file.set_len(good_end)
                        .and_then(|()| file.sync_all())
                        .map_err(io_err(format!("truncate {}", path.display())))?;
                    scan.warnings.push(format!(
                        "cut {} bytes of an unfinished record off the end of {}",
                        size - good_end,
                        path.display()
                    ));
                } else {
                    scan.warnings.push(format!(
                        "{}: unreadable from byte {good_end} of {size}; the records after it are not found",
                        path.display()
                    ));
                }
            }
            if n == last {
                st.end = good_end;
            }
            st.files.insert(n, Arc::new(file));
        }
        if quarantined_any {
            sync_dir(&self.quarantine)?;
        }
        st.active = last;
        st.committed = (last, st.end);
        st.fresh.clear();
        st.unsynced.clear();
        st.created = false;
        st.failed = false;
        scan.lengths = (st.index.iter()).map(|(h, l)| (*h, l.len)).collect();
        Ok(scan)
    }

    /// Read pack `n` from its start; returns where its last whole record ends.
    fn read_pack(
        &self,
        n: u32,
        file: &File,
        index: &mut BTreeMap<ChunkHash, Loc>,
        scan: &mut Scan,
        quarantined_any: &mut bool,
    ) -> Result<u64, StoreError> {
        let path = self.path_of_pack(n);
        let mut r = BufReader::with_capacity(1 << 20, file);
        let mut at = 0u64;
        let mut head = [0u8; HEAD];
        loop {
            if !read_full(&mut r, &mut head).map_err(io_err(format!("read {}", path.display())))? {
                return Ok(at);
            }
            let len = u32::from_le_bytes([head[36], head[37], head[38], head[39]]);
            if head[..4] != MAGIC || len > RECORD_BYTES_MAX {
                return Ok(at);
            }
            let mut hash = [0u8; 32];
            hash.copy_from_slice(&head[4..36]);
            let hash = ChunkHash(hash);
            let mut bytes = vec![0u8; len as usize];
            if !read_full(&mut r, &mut bytes).map_err(io_err(format!("read {}", path.display())))? {
                return Ok(at);
            }
            let loc = Loc {
                pack: n,
                at: at + HEAD as u64,
                len,
            };
            at = loc.at + u64::from(len);
            if verify_chunk(&hash, &bytes) {
                index.entry(hash).or_insert(loc);
            } else {
                let q = self.quarantine.join(hash.to_hex());
                fs::write(&q, &bytes).map_err(io_err(format!("write {}", q.display())))?;
                *quarantined_any = true;
                scan.quarantined.push(hash);
            }
        }
    }

    /// Start-up, after recovery: drop every chunk whose name is not in `keep`, then
    /// compact each pack but the active one in which less than half the bytes are still
    /// held: its held records are appended to the active pack, made durable, and the old
    /// pack removed. Run it only with the complete set of names the committed state
    /// refers to.
    pub fn collect_garbage(&self, keep: &BTreeSet<ChunkHash>) -> Result<Garbage, StoreError> {
        let mut garbage = Garbage::default();
        let sparse: Vec<u32> = {
            let mut st = lock(&self.state);
            let drop: Vec<ChunkHash> = (st.index.keys())
                .filter(|h| !keep.contains(h))
                .copied()
                .collect();
            for h in drop {
                if let Some(loc) = st.index.remove(&h) {
                    garbage.files += 1;
                    garbage.bytes += u64::from(loc.len);
                }
                st.fresh.remove(&h);
            }
            let mut live: BTreeMap<u32, u64> = BTreeMap::new();
            for loc in st.index.values() {
                *live.entry(loc.pack).or_default() += HEAD as u64 + u64::from(loc.len);
            }
            let mut sparse = Vec::new();
            for (n, f) in &st.files {
                if *n == st.active {
                    continue;
                }
                let size = f.metadata().map(|m| m.len()).unwrap_or(0);
                if live.get(n).copied().unwrap_or(0) * 2 < size {
                    sparse.push(*n);
                }
            }
            sparse
        };
        for n in sparse {
            let moving: Vec<ChunkHash> = (lock(&self.state).index.iter())
                .filter(|(_, l)| l.pack == n)
                .map(|(h, _)| *h)
                .collect();
            let mut batch = Vec::with_capacity(moving.len());
            for h in &moving {
                if let Some(bytes) = self.get(h)? {
                    batch.push((*h, bytes));
                }
            }
            {
                // Out of the index first, so the append writes them anew.
                let mut st = lock(&self.state);
                for h in &moving {
                    st.index.remove(h);
                }
            }
            let refs: Vec<(ChunkHash, &[u8])> =
                batch.iter().map(|(h, b)| (*h, b.as_ref())).collect();
            for r in self.put_many(&refs) {
                r?;
            }
            self.sync()?;
            self.committed();
            let path = self.path_of_pack(n);
            lock(&self.state).files.remove(&n);
            fs::remove_file(&path).map_err(io_err(format!("remove {}", path.display())))?;
            sync_dir(&self.packs)?;
        }
        Ok(garbage)
    }

    /// For fault injection and tests: flip one byte of one held chunk (the first by
    /// hash), so that the next read or start-up finds it rotten. `None` when none is held.
    pub fn corrupt_one(&self) -> Result<Option<ChunkHash>, StoreError> {
        let (hash, loc, file) = {
            let st = lock(&self.state);
            let Some((h, l)) = st.index.iter().find(|(_, l)| l.len > 0) else {
                return Ok(None);
            };
            (*h, *l, Arc::clone(&st.files[&l.pack]))
        };
        let what = format!("flip a byte of {}", self.path_of_pack(loc.pack).display());
        let mut b = [0u8; 1];
        file.read_exact_at(&mut b, loc.at)
            .and_then(|()| file.write_all_at(&[b[0] ^ 0xff], loc.at))
            .and_then(|()| file.sync_data())
            .map_err(io_err(what))?;
        Ok(Some(hash))
    }
}

/// Refuse bytes that are not the chunk `hash` or too long for a record.
fn check(hash: &ChunkHash, bytes: &[u8]) -> Result<(), StoreError> {
    let reason = if bytes.len() > RECORD_BYTES_MAX as usize {
        format!(
            "refusing to store {} bytes: a record holds at most {RECORD_BYTES_MAX}",
            bytes.len()
        )
    } else if !verify_chunk(hash, bytes) {
        format!(
            "refusing to store {} bytes that do not hash to their name",
            bytes.len()
        )
    } else {
        return Ok(());
    };
    Err(StoreError::Corrupt {
        kind: "chunk".into(),
        name: hash.to_hex(),
        reason,
    })
}

fn not_open() -> StoreError {
    StoreError::Io {
        what: "append to the pack store before its start-up scan".into(),
        source: std::io::Error::other("not scanned"),
    }
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

    fn put_all(p: &PackDir, chunks: &[(ChunkHash, Vec<u8>)]) {
        let refs: Vec<(ChunkHash, &[u8])> = chunks.iter().map(|(h, b)| (*h, &b[..])).collect();
        for r in p.put_many(&refs) {
            r.unwrap();
        }
    }

    #[test]
    fn committed_chunks_are_found_again_after_a_restart_and_a_second_put_appends_nothing() {
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
    fn a_torn_last_record_is_cut_off_at_start_up_and_the_records_before_it_kept() {
        // Goal: a crash in the middle of an append (here: half a record at the end of the
        // last pack) loses only that record: the start-up cuts it off, says so, and the
        // next append goes where it began.
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), PACK_TARGET);
        let chunks: Vec<_> = (0..5).map(chunk).collect();
        put_all(&p, &chunks);
        p.sync().unwrap();
        p.committed();
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
            scan.warnings
                .iter()
                .any(|w| w.contains("unfinished record")),
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
        put_all(&p, &kept);
        p.sync().unwrap();
        p.committed();
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
        put_all(&p, &chunks);
        p.sync().unwrap();
        p.committed();
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
        // a restart and its collection.
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
        assert_eq!(g.files as usize, chunks.len() - keep.len());
        assert!(!first.exists(), "pack 1 held one chunk in three: compacted");
        drop(p);
        // A restart finds the dropped chunks of the packs not compacted again; its own
        // collection (every start-up runs one) drops them again.
        let p = open(dir.path(), 3_000);
        p.collect_garbage(&keep).unwrap();
        assert_eq!(p.lengths().keys().copied().collect::<BTreeSet<_>>(), keep);
        for (h, b) in chunks.iter().filter(|(h, _)| keep.contains(h)) {
            assert_eq!(p.get(h).unwrap().as_deref(), Some(&b[..]));
        }
    }
}
