//! The content-addressed chunk directory: one file per chunk, named by its SHA-256.
//!
//! Layout under the store's directory `DIR`:
//! - `DIR/chunks/<first 2 hex>/<64 hex>`: a chunk's bytes.
//! - `DIR/chunks/tmp/<64 hex>.<pid>.<n>`: a chunk being written (deleted by [`ChunkDir::scan`]).
//! - `DIR/quarantine/<64 hex>`: a chunk whose bytes failed verification at start-up.
//!
//! A put writes a temp file and leaves it *pending*; [`ChunkDir::sync`] (the record stores
//! call it before they commit) makes every pending file's bytes durable in one step —
//! one `syncfs(2)` of the filesystem for a batch of [`SYNCFS_MIN`] or more on Linux 5.15
//! or later (where it reports writeback errors), an fsync of each file otherwise — then renames each into place and makes the directories
//! touched since the last sync durable (a second `syncfs` for several, an fsync for one). So a file under its chunk name always holds bytes that
//! reached the disk (a crash mid-batch leaves only temp files, deleted at the next start,
//! never a torn chunk to quarantine), and a batch of thousands of chunks costs one flush,
//! not one per chunk. A pending chunk reads from its temp file. A delete removes the file
//! at once; it too is durable at the next sync. A batch of puts ([`ChunkDir::put_many`],
//! a publish's chunks) and a sync's renames are spread over [`WRITERS`] threads; a rename
//! is `renameat2(RENAME_NOREPLACE)` first, so whether it created the chunk's name is known
//! without looking before.
//!
//! A put whose sync creates a file (the chunk was not stored yet) is remembered as *fresh*
//! until the record store's commit succeeds ([`ChunkDir::committed`]). When the commit
//! fails, the logic has been told none of those writes is durable, so
//! [`ChunkDir::discard_fresh`] removes exactly the fresh files (and the pending temp
//! files): a failed publish or sync leaves no chunk behind, and a
//! chunk that was already stored (content addressing makes a second put of it harmless)
//! is never removed by someone else's failure.
//!
//! At start-up, after recovery, [`ChunkDir::collect_garbage`] removes every chunk file no
//! committed record names (left by a crash between a put and its commit, or by a discard
//! that could not finish): the caller passes the names to keep.
//!
//! Map: [`ChunkDir`] (`open`, `put`, `put_many`, `get`, `delete`, `sync`, `committed`,
//! `discard_fresh`, `scan`, `scan_index`, `collect_garbage`, `corrupt_one`), [`Scan`] (what
//! start-up found), [`Garbage`] (what garbage collection removed). `scan` keeps the
//! verified chunks' bytes, `scan_index` only their lengths (each file is read, hashed and
//! dropped in turn).
//!
//! `syncfs` flushes the whole filesystem the directory lives on, other programs' dirty
//! data included, and fails on a writeback error anywhere on it since the last sync (the
//! directory stays open for that): on a tower the filesystem is the tower's own, and a
//! failure there is one the tower should not commit past anyway.
//!
//! Not covered: S3 or any remote object store (another type with the same verbs would
//! slot in where the stores hold a `ChunkDir`); eviction while running (the logic deletes
//! what it evicts); several processes sharing one directory (one node owns its `DIR`;
//! `scan` deletes temp files it did not write, `collect_garbage` chunks it did not).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use sovereign_logic::content::{Chunk, ChunkHash, verify_chunk};

use crate::{StoreError, chunk_len, io_err};

/// Makes temp file names unique within this process (the pid makes them unique across
/// processes), also when two `ChunkDir`s point at one directory.
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// How many threads a start-up scan reads chunk files with ([`ChunkDir::scan`]).
pub const SCAN_READERS: usize = 8;

/// How many threads [`ChunkDir::put_many`] and [`ChunkDir::sync`] spread a batch's
/// file writes and renames over. Creating, writing and renaming a small file is mostly
/// system time on one core; a publish of 256 MiB makes ~30,000 of them. Measured with
/// `scripts/bench-ingest.sh` on 2 cores (docs/BENCHMARKS.md, "Ingest"): 2 threads
/// publish 1.1-1.3x faster than 1, 4 no faster than 2 (why 4 gain nothing was not
/// measured: 2 cores, and the threads share one temp directory).
pub const WRITERS: usize = 2;

/// Below this many files a batch is written on the calling thread: starting threads
/// costs more than it saves.
const WRITERS_MIN_BATCH: usize = 16;

/// How many threads a batch of `n` puts or renames is spread over.
pub(crate) fn writers_for(n: usize) -> usize {
    if n < WRITERS_MIN_BATCH { 1 } else { WRITERS }
}

/// `f` of every item, on up to `threads` scoped threads, each taking the next item not
/// yet taken (a slow item holds up one thread, not a share of the batch); the results
/// in the items' order, whatever the threads did. One thread (or one item) runs on the
/// calling thread. A panic in `f` is raised again here.
pub(crate) fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = threads.min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut found: Vec<(usize, R)> = Vec::with_capacity(items.len());
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else {
                            break;
                        };
                        mine.push((i, f(item)));
                    }
                    mine
                })
            })
            .collect();
        for worker in workers {
            match worker.join() {
                Ok(mine) => found.extend(mine),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    found.sort_by_key(|(i, _)| *i);
    found.into_iter().map(|(_, r)| r).collect()
}

/// What one prefix directory of a start-up scan found.
struct PrefixScan<T> {
    kept: Vec<(ChunkHash, T)>,
    quarantined: Vec<ChunkHash>,
    warnings: Vec<String>,
}

/// What [`ChunkDir::scan`] found at start-up.
#[derive(Debug, Default)]
pub struct Scan {
    /// Chunks whose bytes hash to their name, in hash order ([`ChunkDir::scan`] only).
    pub chunks: Vec<Chunk>,
    /// Lengths of the chunks whose bytes hash to their name ([`ChunkDir::scan_index`]
    /// only; their bytes were dropped once verified).
    pub lengths: BTreeMap<ChunkHash, u32>,
    /// Chunks whose bytes did not; their files now live in `DIR/quarantine/`.
    pub quarantined: Vec<ChunkHash>,
    /// Files and directories that are not chunks, left alone, one sentence each.
    pub warnings: Vec<String>,
    /// Temp files of interrupted puts that were deleted.
    pub tmp_deleted: usize,
}

/// What [`ChunkDir::collect_garbage`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Garbage {
    /// Chunks removed (chunk files, or records marked dead in pack files).
    pub chunks: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// A content-addressed chunk directory (see the module doc for the layout).
#[derive(Debug)]
pub struct ChunkDir {
    /// `DIR/chunks`
    chunks: PathBuf,
    /// `DIR/chunks/tmp`
    tmp: PathBuf,
    /// `DIR/quarantine`
    quarantine: PathBuf,
    /// Directories whose entries changed since the last [`ChunkDir::sync`]. A std `Mutex`:
    /// it is held only to insert or take the set, never across I/O.
    dirty: Mutex<BTreeSet<PathBuf>>,
    /// Chunks whose files a sync renamed into place (where none was) since the last
    /// [`ChunkDir::committed`]: what [`ChunkDir::discard_fresh`] removes when the commit
    /// that would have made them part of the state fails.
    fresh: Mutex<BTreeSet<ChunkHash>>,
    /// Chunks put since the last [`ChunkDir::sync`]: their temp files (not yet flushed or
    /// renamed). A std `Mutex`, never held across I/O but a rename's.
    pending: Mutex<BTreeMap<ChunkHash, PathBuf>>,
    /// `DIR/chunks`, open for the life of the directory: `syncfs` reports a writeback
    /// error since the last call made through the same open file, so it must stay open.
    #[cfg(target_os = "linux")]
    root: File,
}

/// Rename `tmp` to `final_path`, replacing a file there; `true` when it created the
/// name (no file stood there), `false` when it replaced one (then the rename created
/// nothing a failed commit must take back). One `renameat2(RENAME_NOREPLACE)` in the
/// usual case, so the put need not look first.
fn rename_into_place(tmp: &Path, final_path: &Path) -> std::io::Result<bool> {
    // Without RENAME_NOREPLACE (another OS, or a filesystem that lacks it): look, then
    // rename.
    let look_then_rename = || {
        let existed = fs::symlink_metadata(final_path).is_ok();
        fs::rename(tmp, final_path)?;
        Ok(!existed)
    };
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, tmp, CWD, final_path, RenameFlags::NOREPLACE) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::EXIST) => {
                fs::rename(tmp, final_path)?;
                Ok(false)
            }
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => look_then_rename(),
            Err(e) => Err(e.into()),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        look_then_rename()
    }
}

/// From this many pending chunks (or dirty directories) up, [`ChunkDir::sync`] flushes
/// with one `syncfs(2)` instead of one fsync per file or directory (Linux only). Measured
/// on this project's machines (ext4, 10 KiB chunks, renamed into random prefix
/// directories): an fsync of each file and directory costs 0.3 ms per chunk, two syncfs
/// per batch (data, then the renames) 0.5 ms plus 0.06 ms per chunk; at one chunk they
/// cost the same, and the fsyncs flush nothing else.
pub const SYNCFS_MIN: usize = 2;

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// fsync a directory, so that the creations, renames and removals in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("fsync directory {}", dir.display())))
}

/// Whether this kernel's `syncfs(2)` reports writeback errors (Linux 5.8 added that;
/// overlayfs and FUSE passed them up only from 5.15, so 5.15 is asked for). Before, a
/// batch whose bytes failed to reach the disk would be committed: such kernels get an
/// fsync per file and directory instead.
#[cfg(target_os = "linux")]
fn syncfs_reports_errors() -> bool {
    static KNOWN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *KNOWN.get_or_init(|| {
        let uname = rustix::system::uname();
        let release = uname.release().to_string_lossy();
        kernel_at_least(&release, (5, 15))
    })
}

/// Whether a kernel release string (`6.1.0-18-amd64`) is at least `(major, minor)`.
#[cfg(any(target_os = "linux", test))]
fn kernel_at_least(release: &str, want: (u32, u32)) -> bool {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    matches!((major, minor), (Some(a), Some(b)) if (a, b) >= want)
}

impl ChunkDir {
    /// Open (creating if needed) the chunk directory under `dir`: `dir/chunks`,
    /// `dir/chunks/tmp` and `dir/quarantine`.
    pub fn open(dir: &Path) -> Result<ChunkDir, StoreError> {
        let chunks = dir.join("chunks");
        let tmp = chunks.join("tmp");
        let quarantine = dir.join("quarantine");
        for d in [&tmp, &quarantine] {
            fs::create_dir_all(d).map_err(io_err(format!("create directory {}", d.display())))?;
        }
        // The directories themselves must survive a power cut before anything is renamed
        // into them.
        sync_dir(dir)?;
        sync_dir(&chunks)?;
        #[cfg(target_os = "linux")]
        let root = File::open(&chunks).map_err(io_err(format!("open {}", chunks.display())))?;
        Ok(ChunkDir {
            chunks,
            tmp,
            quarantine,
            dirty: Mutex::new(BTreeSet::new()),
            fresh: Mutex::new(BTreeSet::new()),
            pending: Mutex::new(BTreeMap::new()),
            #[cfg(target_os = "linux")]
            root,
        })
    }

    /// Where the chunk named `hash` lives.
    pub fn path_of(&self, hash: &ChunkHash) -> PathBuf {
        let hex = hash.to_hex();
        self.chunks.join(&hex[..2]).join(hex)
    }

    /// The quarantine directory (`DIR/quarantine`).
    pub fn quarantine_dir(&self) -> &Path {
        &self.quarantine
    }

    fn mark_dirty(&self, dir: PathBuf) {
        self.dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dir);
    }

    fn fresh(&self) -> std::sync::MutexGuard<'_, BTreeSet<ChunkHash>> {
        self.fresh.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, BTreeMap<ChunkHash, PathBuf>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Store `bytes` as the chunk `hash`: written to a temp file, pending until the next
    /// [`ChunkDir::sync`] flushes it and renames it into place. Refuses bytes that do not
    /// hash to `hash` (the chunk would be quarantined at the next start anyway). A second
    /// put of a pending chunk replaces the first's temp file.
    pub fn put(&self, hash: &ChunkHash, bytes: &[u8]) -> Result<(), StoreError> {
        crate::refuse_unless_chunk(hash, bytes)?;
        let final_path = self.path_of(hash);
        let Some(prefix_dir) = final_path.parent().map(Path::to_path_buf) else {
            unreachable!("a chunk path always has its prefix directory as parent");
        };
        match fs::create_dir(&prefix_dir) {
            Ok(()) => self.mark_dirty(self.chunks.clone()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(io_err(format!("create directory {}", prefix_dir.display()))(e));
            }
        }
        let tmp_path = self.tmp.join(format!(
            "{}.{}.{}",
            hash.to_hex(),
            std::process::id(),
            TMP_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let written = File::create(&tmp_path).and_then(|mut f| f.write_all(bytes));
        if let Err(e) = written {
            // Best effort: a leftover temp file is deleted by the next scan anyway.
            let _ = fs::remove_file(&tmp_path);
            return Err(io_err(format!("write {}", tmp_path.display()))(e));
        }
        let replaced = self.pending().insert(*hash, tmp_path);
        if let Some(old) = replaced {
            let _ = fs::remove_file(&old);
        }
        Ok(())
    }

    /// [`ChunkDir::put`] of each chunk, spread over [`WRITERS`] threads; one result per
    /// chunk, in order. Two puts of one hash in a batch leave one of them pending (the
    /// same bytes: each is verified against the name).
    pub fn put_many(&self, chunks: &[(ChunkHash, &[u8])]) -> Vec<Result<(), StoreError>> {
        in_parallel(chunks, writers_for(chunks.len()), |(hash, bytes)| {
            self.put(hash, bytes)
        })
    }

    /// The bytes stored under `hash` (a pending chunk's from its temp file), unverified;
    /// `None` if there is no such chunk.
    pub fn get(&self, hash: &ChunkHash) -> Result<Option<Bytes>, StoreError> {
        let tmp = self.pending().get(hash).cloned();
        if let Some(tmp) = tmp {
            match fs::read(&tmp) {
                Ok(b) => return Ok(Some(Bytes::from(b))),
                // Renamed into place by a sync since: read it there.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(format!("read {}", tmp.display()))(e)),
            }
        }
        let path = self.path_of(hash);
        match fs::read(&path) {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(format!("read {}", path.display()))(e)),
        }
    }

    /// Remove the chunk `hash`, pending or in place (no error if it is absent). Durable at
    /// the next sync.
    pub fn delete(&self, hash: &ChunkHash) -> Result<(), StoreError> {
        if let Some(p) = self.pending().remove(hash) {
            let _ = fs::remove_file(&p);
        }
        let path = self.path_of(hash);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(format!("remove {}", path.display()))(e)),
        }
        if let Some(parent) = path.parent() {
            self.mark_dirty(parent.to_path_buf());
        }
        Ok(())
    }

    /// Make every put and delete since the last sync durable: flush the pending chunks'
    /// bytes (see the module doc), rename them into place, and fsync every directory
    /// touched. On failure what is not done stays pending or marked for the next call
    /// (or for [`ChunkDir::discard_fresh`]).
    pub fn sync(&self) -> Result<(), StoreError> {
        // Each chunk stays in the pending map (readable from its temp file) until its
        // rename is done: a reader on another thread never finds it in neither place.
        let batch: Vec<(ChunkHash, PathBuf)> = (self.pending().iter())
            .map(|(h, p)| (*h, p.clone()))
            .collect();
        self.flush(batch.iter().map(|(_, tmp)| tmp.as_path()), batch.len())?;
        // Renamed on several threads; each rename done is booked, whatever happened to
        // the others (a failed one stays pending for the next call or a discard).
        let renamed = in_parallel(&batch, writers_for(batch.len()), |(hash, tmp)| {
            let final_path = self.path_of(hash);
            rename_into_place(tmp, &final_path).map_err(io_err(format!(
                "rename {} to {}",
                tmp.display(),
                final_path.display()
            )))
        });
        let mut failed = None;
        for ((hash, tmp), result) in batch.into_iter().zip(renamed) {
            let created = match result {
                Ok(created) => created,
                Err(e) => {
                    failed.get_or_insert(e);
                    continue;
                }
            };
            {
                let mut pending = self.pending();
                if pending.get(&hash).is_some_and(|p| *p == tmp) {
                    pending.remove(&hash);
                }
            }
            if created {
                self.fresh().insert(hash);
            }
            if let Some(parent) = self.path_of(&hash).parent() {
                self.mark_dirty(parent.to_path_buf());
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        // A batch's chunks land in many of the 256 prefix directories: the same flush
        // (one syncfs for several). On failure every one stays marked.
        let dirs = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|p| p.into_inner()));
        match self.flush(dirs.iter().map(PathBuf::as_path), dirs.len()) {
            Ok(()) => Ok(()),
            Err(e) => {
                (self.dirty.lock().unwrap_or_else(|p| p.into_inner())).extend(dirs);
                Err(e)
            }
        }
    }

    /// `syncfs(2)` of the filesystem the directory lives on.
    #[cfg(target_os = "linux")]
    fn syncfs(&self) -> Result<(), StoreError> {
        rustix::fs::syncfs(&self.root).map_err(|e| {
            io_err(format!(
                "syncfs of the filesystem of {}",
                self.chunks.display()
            ))(std::io::Error::from(e))
        })
    }

    /// `paths` (files or directories, `count` of them) on disk: one `syncfs` for a batch
    /// (where it reports writeback errors: [`syncfs_reports_errors`]), or an fsync of
    /// each.
    fn flush<'a>(
        &self,
        paths: impl Iterator<Item = &'a Path>,
        count: usize,
    ) -> Result<(), StoreError> {
        #[cfg(target_os = "linux")]
        if count >= SYNCFS_MIN && syncfs_reports_errors() {
            return self.syncfs();
        }
        let _ = count;
        for path in paths {
            File::open(path)
                .and_then(|f| f.sync_all())
                .map_err(io_err(format!("fsync {}", path.display())))?;
        }
        Ok(())
    }

    /// The record store committed: every chunk synced so far is part of the durable state
    /// (flushed and its directory synced before the commit), none is fresh any more.
    pub fn committed(&self) {
        self.fresh().clear();
    }

    /// The commit that would have made the fresh chunks part of the state failed: remove
    /// their files (a chunk that existed before its put is not fresh and stays). Goes on
    /// past a file it cannot remove and returns the first such error; what is left is
    /// garbage that [`ChunkDir::collect_garbage`] removes at the next start. Returns how
    /// many files were removed.
    pub fn discard_fresh(&self) -> Result<u64, StoreError> {
        let fresh = std::mem::take(&mut *self.fresh());
        let mut removed = 0;
        let mut first_error = None;
        // Still pending (the sync failed before renaming them): only temp files.
        for (hash, p) in std::mem::take(&mut *self.pending()) {
            match fs::remove_file(&p) {
                // Counted when no chunk file stands under its name.
                Ok(()) => removed += u64::from(fs::symlink_metadata(self.path_of(&hash)).is_err()),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    first_error.get_or_insert(io_err(format!("remove {}", p.display()))(e));
                }
            }
        }
        for hash in fresh {
            let path = self.path_of(&hash);
            match fs::remove_file(&path) {
                Ok(()) => {
                    removed += 1;
                    if let Some(parent) = path.parent() {
                        self.mark_dirty(parent.to_path_buf());
                    }
                }
                // Deleted since (quarantined): nothing to do.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    first_error.get_or_insert(io_err(format!("remove {}", path.display()))(e));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }

    /// Start-up, after recovery: remove every chunk file whose name is not in `keep` (the
    /// chunks the committed records name), and sync the directories touched. Files not
    /// named like chunks, temp files and the quarantine are left alone (`scan` deals with
    /// them). Run it only with the complete set of names the committed state refers to.
    pub fn collect_garbage(&self, keep: &BTreeSet<ChunkHash>) -> Result<Garbage, StoreError> {
        let mut garbage = Garbage::default();
        let mut touched = BTreeSet::new();
        for prefix in read_dir_sorted(&self.chunks)? {
            if prefix.len() != 2 || !is_lower_hex(&prefix) {
                continue;
            }
            let prefix_dir = self.chunks.join(&prefix);
            if !prefix_dir.is_dir() {
                continue;
            }
            for name in read_dir_sorted(&prefix_dir)? {
                let hash = match name.parse::<ChunkHash>() {
                    Ok(h) if h.to_hex() == name && name.starts_with(&prefix) => h,
                    _ => continue,
                };
                if keep.contains(&hash) {
                    continue;
                }
                let path = prefix_dir.join(&name);
                let meta = match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_file() => m,
                    Ok(_) => continue,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err(format!("stat {}", path.display()))(e)),
                };
                fs::remove_file(&path).map_err(io_err(format!("remove {}", path.display())))?;
                garbage.chunks += 1;
                garbage.bytes += meta.len();
                touched.insert(prefix_dir.clone());
            }
        }
        self.fresh().retain(|h| keep.contains(h));
        for dir in &touched {
            sync_dir(dir)?;
        }
        Ok(garbage)
    }

    /// Start-up: delete temp files of interrupted puts, read every chunk file and verify
    /// it against its name, move the failures to `DIR/quarantine/` (fsyncing both
    /// directories). Files that are not named like chunks are left alone with a warning.
    /// The verified chunks' bytes are returned in [`Scan::chunks`].
    pub fn scan(&self) -> Result<Scan, StoreError> {
        let (mut scan, kept) = self.scan_each(Bytes::from)?;
        scan.chunks = (kept.into_iter())
            .map(|(hash, bytes)| Chunk { hash, bytes })
            .collect();
        debug_assert!(scan.chunks.windows(2).all(|w| w[0].hash < w[1].hash));
        Ok(scan)
    }

    /// [`ChunkDir::scan`] that keeps only the verified chunks' lengths
    /// ([`Scan::lengths`]): a chunk file's bytes are dropped once verified, so memory
    /// holds at most one file per reader, whatever the directory holds. Quarantine, temp
    /// files and warnings are exactly as `scan`'s.
    pub fn scan_index(&self) -> Result<Scan, StoreError> {
        let (mut scan, kept) = self.scan_each(|bytes| chunk_len(bytes.len()))?;
        scan.lengths = kept.into_iter().collect();
        Ok(scan)
    }

    /// The scan both start-ups share: `keep` makes what is kept of each verified chunk's
    /// bytes; returned in hash order. The prefix directories are read by
    /// [`SCAN_READERS`] threads at once: a start-up reads every chunk file, small reads
    /// spread over the disk, and a disk serves several at a time much faster than one
    /// after another (a cold restart of an origin holding 4 GiB, 430,000 files, took 74 s
    /// with one reader). What it finds does not depend on the threads: each directory's
    /// findings are merged in name order.
    fn scan_each<T: Send>(
        &self,
        keep: impl Fn(Vec<u8>) -> T + Sync,
    ) -> Result<(Scan, Vec<(ChunkHash, T)>), StoreError> {
        let mut scan = Scan::default();
        // Interrupted puts: never renamed, so never part of any durable state.
        for entry in read_dir_sorted(&self.tmp)? {
            let path = self.tmp.join(&entry);
            match fs::remove_file(&path) {
                Ok(()) => scan.tmp_deleted += 1,
                Err(e) => scan.warnings.push(format!(
                    "could not delete temp file {}: {e}",
                    path.display()
                )),
            }
        }
        let mut prefixes = Vec::new();
        for prefix in read_dir_sorted(&self.chunks)? {
            let prefix_dir = self.chunks.join(&prefix);
            if prefix == "tmp" {
                continue;
            }
            if prefix.len() != 2 || !is_lower_hex(&prefix) || !prefix_dir.is_dir() {
                scan.warnings.push(format!(
                    "ignoring {}: expected a directory named by two lower-case hex digits",
                    prefix_dir.display()
                ));
                continue;
            }
            prefixes.push((prefix, prefix_dir));
        }
        let found = in_parallel(&prefixes, SCAN_READERS, |(prefix, dir)| {
            self.scan_prefix(prefix, dir, &keep)
        });
        let mut kept = Vec::new();
        let mut touched = BTreeSet::new();
        for (i, prefix_scan) in found.into_iter().enumerate() {
            let p = prefix_scan?;
            kept.extend(p.kept);
            if !p.quarantined.is_empty() {
                touched.insert(prefixes[i].1.clone());
            }
            scan.quarantined.extend(p.quarantined);
            scan.warnings.extend(p.warnings);
        }
        if !scan.quarantined.is_empty() {
            touched.insert(self.quarantine.clone());
        }
        for dir in &touched {
            sync_dir(dir)?;
        }
        Ok((scan, kept))
    }

    /// One prefix directory of [`ChunkDir::scan_each`]: every chunk file in it read and
    /// verified, the failures moved to the quarantine directory (not yet fsynced).
    fn scan_prefix<T>(
        &self,
        prefix: &str,
        prefix_dir: &Path,
        keep: &impl Fn(Vec<u8>) -> T,
    ) -> Result<PrefixScan<T>, StoreError> {
        let mut out = PrefixScan {
            kept: Vec::new(),
            quarantined: Vec::new(),
            warnings: Vec::new(),
        };
        for name in read_dir_sorted(prefix_dir)? {
            let path = prefix_dir.join(&name);
            let hash = match name.parse::<ChunkHash>() {
                Ok(h) if h.to_hex() == name && name.starts_with(prefix) && path.is_file() => h,
                _ => {
                    out.warnings.push(format!(
                        "ignoring {}: expected a file named by 64 lower-case hex digits \
                         starting with {prefix}",
                        path.display()
                    ));
                    continue;
                }
            };
            let bytes = fs::read(&path).map_err(io_err(format!("read {}", path.display())))?;
            if verify_chunk(&hash, &bytes) {
                out.kept.push((hash, keep(bytes)));
            } else {
                let to = self.quarantine.join(&name);
                fs::rename(&path, &to).map_err(io_err(format!(
                    "quarantine {} to {}",
                    path.display(),
                    to.display()
                )))?;
                out.quarantined.push(hash);
            }
        }
        Ok(out)
    }

    /// Chaos hook: flip one byte in the middle of the first (in hash order) chunk file
    /// that is non-empty and still verifies, and fsync it. Returns the chunk's hash, or
    /// `None` if no chunk is left intact.
    pub fn corrupt_one(&self) -> Result<Option<ChunkHash>, StoreError> {
        for prefix in read_dir_sorted(&self.chunks)? {
            if prefix.len() != 2 || !is_lower_hex(&prefix) {
                continue;
            }
            let prefix_dir = self.chunks.join(&prefix);
            for name in read_dir_sorted(&prefix_dir)? {
                let Ok(hash) = name.parse::<ChunkHash>() else {
                    continue;
                };
                let path = prefix_dir.join(&name);
                let mut f = match OpenOptions::new().read(true).write(true).open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err(format!("open {}", path.display()))(e)),
                };
                let what = format!("corrupt {}", path.display());
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes).map_err(io_err(what.clone()))?;
                if bytes.is_empty() || !verify_chunk(&hash, &bytes) {
                    continue;
                }
                let at = bytes.len() / 2;
                (|| {
                    f.seek(SeekFrom::Start(at as u64))?;
                    f.write_all(&[bytes[at] ^ 0xff])?;
                    f.sync_all()
                })()
                .map_err(io_err(what))?;
                return Ok(Some(hash));
            }
        }
        Ok(None)
    }
}

/// The names in `dir`, sorted (so scans are deterministic). Names that are not UTF-8
/// are returned lossily; they never parse as chunk names.
pub(crate) fn read_dir_sorted(dir: &Path) -> Result<Vec<String>, StoreError> {
    let what = || format!("list directory {}", dir.display());
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(what()))? {
        let entry = entry.map_err(io_err(what()))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(i: u32) -> (ChunkHash, Vec<u8>) {
        let bytes: Vec<u8> = format!("chunk number {i} ").repeat(50).into_bytes();
        (ChunkHash::of(&bytes), bytes)
    }

    #[test]
    fn put_renames_into_place_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let cd = ChunkDir::open(dir.path()).unwrap();
        let (h, b) = chunk(1);
        cd.put(&h, &b).unwrap();
        cd.sync().unwrap();
        let hex = h.to_hex();
        let path = dir.path().join("chunks").join(&hex[..2]).join(&hex);
        assert_eq!(fs::read(&path).unwrap(), b);
        assert_eq!(cd.path_of(&h), path);
        assert!(
            read_dir_sorted(&dir.path().join("chunks/tmp"))
                .unwrap()
                .is_empty()
        );
        assert!(
            cd.dirty.lock().unwrap().is_empty(),
            "sync left directories dirty"
        );
        assert_eq!(cd.get(&h).unwrap().as_deref(), Some(&b[..]));
        // Writing it again is harmless (content-addressed).
        cd.put(&h, &b).unwrap();
        assert_eq!(cd.get(&h).unwrap().as_deref(), Some(&b[..]));
    }

    #[test]
    fn a_put_is_pending_until_sync_and_a_crash_before_it_leaves_no_torn_chunk() {
        // Goal: a file under a chunk's name only ever holds flushed bytes. Before the sync
        // the chunk reads from its temp file; a "crash" (reopening without a sync) leaves
        // temp files only, which the scan deletes: nothing to quarantine.
        let dir = tempfile::tempdir().unwrap();
        let cd = ChunkDir::open(dir.path()).unwrap();
        let batch: Vec<_> = (0..SYNCFS_MIN as u32 + 4).map(chunk).collect();
        for (h, b) in &batch {
            cd.put(h, b).unwrap();
            assert!(!cd.path_of(h).exists(), "renamed before the sync");
            assert_eq!(cd.get(h).unwrap().as_deref(), Some(&b[..]));
        }
        drop(cd);
        let reopened = ChunkDir::open(dir.path()).unwrap();
        let scan = reopened.scan().unwrap();
        assert_eq!(scan.tmp_deleted, batch.len());
        assert!(scan.quarantined.is_empty() && scan.chunks.is_empty());
        // A batch past SYNCFS_MIN (one syncfs) and one chunk (an fsync) both land.
        const { assert!(1 < SYNCFS_MIN) };
        for n in [batch.len(), 1] {
            for (h, b) in &batch[..n] {
                reopened.put(h, b).unwrap();
            }
            reopened.sync().unwrap();
            for (h, b) in &batch[..n] {
                assert_eq!(fs::read(reopened.path_of(h)).unwrap(), *b);
            }
            assert!(
                read_dir_sorted(&dir.path().join("chunks/tmp"))
                    .unwrap()
                    .is_empty()
            );
            assert!(reopened.pending().is_empty());
        }
    }

    /// A chunk directory holding chunk 1 (synced, committed) and, since, chunk 2 put
    /// and chunk 1 put again.
    #[allow(clippy::type_complexity)]
    fn one_stored_one_fresh() -> (
        tempfile::TempDir,
        ChunkDir,
        (ChunkHash, Vec<u8>),
        (ChunkHash, Vec<u8>),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cd = ChunkDir::open(dir.path()).unwrap();
        let (old, old_b) = chunk(1);
        cd.put(&old, &old_b).unwrap();
        cd.sync().unwrap();
        cd.committed();
        let (new, new_b) = chunk(2);
        cd.put(&new, &new_b).unwrap();
        cd.put(&old, &old_b).unwrap();
        (dir, cd, (old, old_b), (new, new_b))
    }

    #[test]
    fn a_failed_sync_keeps_its_chunks_pending_and_a_discard_takes_them_back() {
        // Goal: a sync that cannot rename leaves the chunks readable and pending (no
        // chunk half-committed), and discarding then removes their temp files, counting
        // only the chunks that were not stored before.
        let (dir, cd, (old, old_b), (new, new_b)) = one_stored_one_fresh();
        // Make the rename fail: the new chunk's prefix directory is gone.
        fs::remove_dir(cd.path_of(&new).parent().unwrap()).unwrap();
        assert!(cd.sync().unwrap_err().to_string().contains("rename"));
        // (`old` is renamed first or stays pending, as the batch's order has it.)
        assert!(
            cd.pending().contains_key(&new),
            "the chunk not renamed stays pending"
        );
        assert_eq!(cd.get(&new).unwrap().as_deref(), Some(&new_b[..]));
        assert_eq!(cd.discard_fresh().unwrap(), 1);
        assert_eq!(cd.get(&new).unwrap(), None);
        assert_eq!(cd.get(&old).unwrap().as_deref(), Some(&old_b[..]));
        assert!(
            read_dir_sorted(&dir.path().join("chunks/tmp"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn in_parallel_answers_in_the_items_order_whatever_the_threads_take() {
        // Goal: items of uneven cost, taken by whichever thread is free, come back as
        // results in the items' order, on one thread or several, and every item is done
        // once.
        let items: Vec<u32> = (0..200).collect();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let work = |i: &u32| {
            calls.fetch_add(1, Ordering::Relaxed);
            if i % 7 == 0 {
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            i * 3
        };
        let want: Vec<u32> = items.iter().map(|i| i * 3).collect();
        for threads in [0, 1, 2, 8, 500] {
            assert_eq!(
                in_parallel(&items, threads, work),
                want,
                "{threads} threads"
            );
        }
        assert_eq!(calls.load(Ordering::Relaxed), 5 * items.len());
        assert!(in_parallel(&[] as &[u32], 4, work).is_empty());
    }

    #[test]
    fn put_many_answers_each_chunk_in_order_across_its_threads() {
        // Goal: a batch large enough to be spread over the writer threads stores every
        // chunk, answers one result per chunk in the batch's order (a bad one fails at
        // its own place, the rest still land), and a sync renames them all into place,
        // each created file counted fresh.
        let dir = tempfile::tempdir().unwrap();
        let cd = ChunkDir::open(dir.path()).unwrap();
        let n = WRITERS_MIN_BATCH as u32 * 3;
        let chunks: Vec<(ChunkHash, Vec<u8>)> = (0..n).map(chunk).collect();
        let bad_at = n as usize / 2 + 1;
        let batch: Vec<(ChunkHash, &[u8])> = (chunks.iter().enumerate())
            .map(|(i, (h, b))| match i == bad_at {
                true => (*h, &b[1..]),
                false => (*h, &b[..]),
            })
            .collect();
        let results = cd.put_many(&batch);
        assert_eq!(results.len(), batch.len());
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r.is_err(), i == bad_at, "result {i}: {r:?}");
        }
        cd.sync().unwrap();
        for (i, (h, b)) in chunks.iter().enumerate() {
            let want = (i != bad_at).then_some(&b[..]);
            assert_eq!(cd.get(h).unwrap().as_deref(), want, "chunk {i}");
            assert_eq!(cd.path_of(h).is_file(), i != bad_at);
        }
        assert_eq!(cd.fresh().len(), chunks.len() - 1);
        assert!(read_dir_sorted(&cd.tmp).unwrap().is_empty());
    }

    #[test]
    fn a_rename_over_a_stored_chunk_replaces_it_and_creates_nothing() {
        // Goal: `rename_into_place` says whether it created the name, so a second put of
        // a stored chunk is never taken back by a failed commit, and its bytes replace
        // what stood there (the put verified them; the old file may have rotted).
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&a, b"new").unwrap();
        assert!(rename_into_place(&a, &b).unwrap(), "created");
        fs::write(&a, b"newer").unwrap();
        assert!(!rename_into_place(&a, &b).unwrap(), "replaced");
        assert_eq!(fs::read(&b).unwrap(), b"newer");
        assert!(!a.exists());
    }

    #[test]
    fn kernel_releases_compare_by_major_and_minor() {
        assert!(kernel_at_least("6.1.0-18-amd64", (5, 15)));
        assert!(kernel_at_least("5.15.0", (5, 15)));
        assert!(!kernel_at_least("5.10.209-198.858.amzn2.x86_64", (5, 15)));
        assert!(!kernel_at_least("4.19.0", (5, 15)));
        assert!(!kernel_at_least("garbage", (5, 15)));
    }

    #[test]
    fn discard_removes_only_the_files_puts_created_since_the_commit() {
        // Goal: a failed commit takes back the chunk files its batch created, never one
        // that was stored before (a second put of it changes nothing it owns).
        let (_dir, cd, (old, old_b), (new, new_b)) = one_stored_one_fresh();
        assert_eq!(cd.discard_fresh().unwrap(), 1);
        assert_eq!(cd.get(&new).unwrap(), None);
        assert_eq!(cd.get(&old).unwrap().as_deref(), Some(&old_b[..]));
        assert_eq!(cd.discard_fresh().unwrap(), 0, "nothing fresh any more");
        // After a commit, what was put is no longer fresh.
        cd.put(&new, &new_b).unwrap();
        cd.sync().unwrap();
        cd.committed();
        assert_eq!(cd.discard_fresh().unwrap(), 0);
        assert!(cd.get(&new).unwrap().is_some());
        // A fresh chunk deleted before the discard (quarantined) is no error.
        let (third, third_b) = chunk(3);
        cd.put(&third, &third_b).unwrap();
        cd.delete(&third).unwrap();
        assert_eq!(cd.discard_fresh().unwrap(), 0);
    }

    #[test]
    fn garbage_collection_removes_unnamed_chunks_and_nothing_else() {
        // Goal: every chunk file not in `keep` goes (counted with its bytes), the kept
        // ones, temp files, strangers and the quarantine stay.
        let dir = tempfile::tempdir().unwrap();
        let cd = ChunkDir::open(dir.path()).unwrap();
        let chunks: Vec<_> = (0..4).map(chunk).collect();
        for (h, b) in &chunks {
            cd.put(h, b).unwrap();
        }
        cd.sync().unwrap();
        let stranger = dir.path().join("chunks").join("README");
        fs::write(&stranger, b"hi").unwrap();
        let tmp = dir.path().join("chunks/tmp/x.1.1");
        fs::write(&tmp, b"half").unwrap();
        let quarantined = dir.path().join("quarantine").join(chunks[3].0.to_hex());
        fs::write(&quarantined, b"rotten").unwrap();
        let keep: BTreeSet<ChunkHash> = [chunks[0].0, chunks[2].0].into();
        let g = cd.collect_garbage(&keep).unwrap();
        let want_bytes = (chunks[1].1.len() + chunks[3].1.len()) as u64;
        assert_eq!(
            g,
            Garbage {
                chunks: 2,
                bytes: want_bytes
            }
        );
        for (i, (h, b)) in chunks.iter().enumerate() {
            let kept = i == 0 || i == 2;
            assert_eq!(cd.get(h).unwrap().is_some(), kept, "chunk {i}");
            if kept {
                assert_eq!(cd.get(h).unwrap().as_deref(), Some(&b[..]));
            }
        }
        assert!(stranger.exists() && tmp.exists() && quarantined.exists());
        assert_eq!(cd.collect_garbage(&keep).unwrap(), Garbage::default());
    }

    #[test]
    fn put_refuses_bytes_that_do_not_match_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let cd = ChunkDir::open(dir.path()).unwrap();
        let (h, _) = chunk(1);
        let err = cd.put(&h, b"something else").unwrap_err().to_string();
        assert!(
            err.contains(&h.to_hex()) && err.contains("do not hash"),
            "{err}"
        );
        assert_eq!(cd.get(&h).unwrap(), None);
    }

    #[test]
    fn delete_removes_and_marks_the_directory_for_sync() {
        let dir = tempfile::tempdir().unwrap();
        let cd = ChunkDir::open(dir.path()).unwrap();
        let (h, b) = chunk(2);
        cd.put(&h, &b).unwrap();
        cd.sync().unwrap();
        cd.delete(&h).unwrap();
        assert!(
            cd.dirty
                .lock()
                .unwrap()
                .contains(cd.path_of(&h).parent().unwrap())
        );
        assert_eq!(cd.get(&h).unwrap(), None);
        cd.delete(&h).unwrap(); // absent: fine
        cd.sync().unwrap();
        assert!(cd.scan().unwrap().chunks.is_empty());
    }

    #[test]
    fn a_scan_over_many_directories_finds_in_hash_order_what_its_readers_each_found() {
        // Goal: the readers share the prefix directories between them, yet the scan's
        // findings are one sorted list, the same from both start-ups: every intact chunk
        // once, every flipped one quarantined (in hash order), warnings for strays.
        let dir = tempfile::tempdir().unwrap();
        let cd = ChunkDir::open(dir.path()).unwrap();
        let chunks: Vec<_> = (0..600).map(chunk).collect();
        for (h, b) in &chunks {
            cd.put(h, b).unwrap();
        }
        cd.sync().unwrap();
        let mut bad: Vec<ChunkHash> = chunks.iter().step_by(97).map(|c| c.0).collect();
        for h in &bad {
            let path = cd.path_of(h);
            let mut bytes = fs::read(&path).unwrap();
            bytes[0] ^= 0x80;
            fs::write(&path, &bytes).unwrap();
        }
        bad.sort();
        let prefixes = BTreeSet::from_iter(chunks.iter().map(|c| c.0.to_hex()[..2].to_string()));
        assert!(
            prefixes.len() > 4 * SCAN_READERS,
            "{} directories",
            prefixes.len()
        );
        fs::write(dir.path().join("chunks/ab/stray"), b"x").unwrap_or_else(|_| {
            fs::create_dir_all(dir.path().join("chunks/ab")).unwrap();
            fs::write(dir.path().join("chunks/ab/stray"), b"x").unwrap();
        });
        let mut want: Vec<(ChunkHash, u32)> = (chunks.iter())
            .filter(|c| !bad.contains(&c.0))
            .map(|c| (c.0, c.1.len() as u32))
            .collect();
        want.sort();
        let index = ChunkDir::open(dir.path()).unwrap().scan_index().unwrap();
        assert_eq!(index.quarantined, bad);
        assert_eq!(index.lengths.into_iter().collect::<Vec<_>>(), want);
        assert_eq!(index.warnings.len(), 1, "{:?}", index.warnings);
        for h in &bad {
            assert!(dir.path().join("quarantine").join(h.to_hex()).exists());
        }
        let scan = ChunkDir::open(dir.path()).unwrap().scan().unwrap();
        assert!(scan.quarantined.is_empty(), "quarantined once");
        let got: Vec<(ChunkHash, u32)> = (scan.chunks.iter())
            .map(|c| (c.hash, c.bytes.len() as u32))
            .collect();
        assert_eq!(got, want, "in hash order, as the index found them");
    }

    #[test]
    fn scan_quarantines_a_flipped_byte_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let cd = ChunkDir::open(dir.path()).unwrap();
        let chunks: Vec<_> = (0..5).map(chunk).collect();
        for (h, b) in &chunks {
            cd.put(h, b).unwrap();
        }
        cd.sync().unwrap();
        // Flip one byte of chunk 3 by hand, as bit rot would.
        let bad = chunks[3].0;
        let path = cd.path_of(&bad);
        let mut bytes = fs::read(&path).unwrap();
        bytes[10] ^= 0x01;
        fs::write(&path, &bytes).unwrap();

        let scan = ChunkDir::open(dir.path()).unwrap().scan().unwrap();
        assert_eq!(scan.quarantined, vec![bad]);
        let mut kept: Vec<_> = scan.chunks.iter().map(|c| c.hash).collect();
        let mut want: Vec<_> = chunks.iter().map(|c| c.0).filter(|h| *h != bad).collect();
        kept.sort();
        want.sort();
        assert_eq!(kept, want);
        for c in &scan.chunks {
            assert!(verify_chunk(&c.hash, &c.bytes));
        }
        assert!(!path.exists());
        assert_eq!(
            fs::read(dir.path().join("quarantine").join(bad.to_hex())).unwrap(),
            bytes
        );
        // A second scan finds nothing more to quarantine.
        let again = cd.scan().unwrap();
        assert!(again.quarantined.is_empty());
        assert_eq!(again.chunks.len(), 4);
    }

    #[test]
    fn scan_index_keeps_lengths_only_and_quarantines_like_scan() {
        // Goal: the lean scan finds the same chunks as `scan` (as lengths, no bytes),
        // quarantines a flipped byte the same way, and deletes temp files too.
        let dir = tempfile::tempdir().unwrap();
        let cd = ChunkDir::open(dir.path()).unwrap();
        let chunks: Vec<_> = (0..4).map(chunk).collect();
        for (h, b) in &chunks {
            cd.put(h, b).unwrap();
        }
        cd.sync().unwrap();
        let bad = chunks[1].0;
        let path = cd.path_of(&bad);
        let mut bytes = fs::read(&path).unwrap();
        bytes[3] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        fs::write(dir.path().join("chunks/tmp/x.1.1"), b"half").unwrap();

        let scan = cd.scan_index().unwrap();
        assert!(scan.chunks.is_empty(), "no bytes kept");
        let want: BTreeMap<ChunkHash, u32> = chunks
            .iter()
            .filter(|(h, _)| *h != bad)
            .map(|(h, b)| (*h, b.len() as u32))
            .collect();
        assert_eq!(scan.lengths, want);
        assert_eq!(scan.quarantined, vec![bad]);
        assert_eq!(scan.tmp_deleted, 1);
        assert!(!path.exists());
        assert!(dir.path().join("quarantine").join(bad.to_hex()).exists());
        let full = cd.scan().unwrap();
        assert!(full.lengths.is_empty());
        let hashes: Vec<_> = full.chunks.iter().map(|c| c.hash).collect();
        assert_eq!(hashes, want.keys().copied().collect::<Vec<_>>());
    }

    #[test]
    fn scan_deletes_temp_files_and_warns_about_strangers() {
        let dir = tempfile::tempdir().unwrap();
        let cd = ChunkDir::open(dir.path()).unwrap();
        let (h, b) = chunk(7);
        cd.put(&h, &b).unwrap();
        cd.sync().unwrap();
        let chunks = dir.path().join("chunks");
        fs::write(
            chunks.join("tmp").join(format!("{}.1.1", h.to_hex())),
            b"half",
        )
        .unwrap();
        fs::write(chunks.join("README"), b"hi").unwrap();
        fs::create_dir(chunks.join("zz")).unwrap();
        let prefix = chunks.join(&h.to_hex()[..2]);
        fs::write(prefix.join("not-a-hash"), b"x").unwrap();
        fs::write(prefix.join(h.to_hex().to_uppercase()), b"x").unwrap();
        // A well-formed name under the wrong prefix directory.
        let (h2, b2) = chunk(8);
        let wrong = if h2.to_hex().starts_with("00") {
            "01"
        } else {
            "00"
        };
        fs::create_dir_all(chunks.join(wrong)).unwrap();
        fs::write(chunks.join(wrong).join(h2.to_hex()), &b2).unwrap();

        let scan = cd.scan().unwrap();
        assert_eq!(scan.tmp_deleted, 1);
        assert!(read_dir_sorted(&chunks.join("tmp")).unwrap().is_empty());
        assert_eq!(scan.chunks.len(), 1);
        assert_eq!(scan.chunks[0].hash, h);
        assert!(scan.quarantined.is_empty());
        assert_eq!(scan.warnings.len(), 5, "{:#?}", scan.warnings);
        for needle in [
            "README",
            "zz",
            "not-a-hash",
            &h.to_hex().to_uppercase(),
            &h2.to_hex(),
        ] {
            assert!(
                scan.warnings.iter().any(|w| w.contains(needle)),
                "no warning names {needle}: {:#?}",
                scan.warnings
            );
        }
    }

    #[test]
    fn corrupt_one_picks_a_different_intact_chunk_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let cd = ChunkDir::open(dir.path()).unwrap();
        for i in 0..3 {
            let (h, b) = chunk(i);
            cd.put(&h, &b).unwrap();
        }
        cd.sync().unwrap();
        let a = cd.corrupt_one().unwrap().unwrap();
        let b = cd.corrupt_one().unwrap().unwrap();
        assert_ne!(a, b);
        let c = cd.corrupt_one().unwrap().unwrap();
        assert_eq!(
            cd.corrupt_one().unwrap(),
            None,
            "all three are corrupt already"
        );
        let scan = cd.scan().unwrap();
        let mut want = vec![a, b, c];
        want.sort();
        assert_eq!(scan.quarantined, want);
        assert!(scan.chunks.is_empty());
    }
}
