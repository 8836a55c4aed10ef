//! `sovereign device fetch`: download an item, verify it against its manifest, and only
//! then put it where it was asked for.
//!
//! The manifest comes first (`GET /v1/items/{id}/manifest`, validated). The bytes follow in
//! windows of whole chunks (`GET /v1/items/{id}` with `Range`), each response carrying the
//! manifest's ETag (else the item changed under us), each chunk checked against its SHA-256
//! before it is appended to a partial file next to the output:
//! `.NAME.<sha256 prefix>.part`, so that a partial of one version is never resumed as
//! another. At the end the partial is read back from disk and checked again — every chunk,
//! the whole SHA-256 against the manifest and the ETag — then fsynced, renamed over the
//! output and the directory fsynced. A bad chunk or digest deletes the partial and names
//! what failed; a lost connection keeps the (verified) partial for `--resume`, which
//! re-checks it and continues with a `Range` from its length.
//!
//! Map: [`FetchOptions`], [`Fetched`], [`FetchError`], [`BadChunk`], [`fetch`], [`partial_path`],
//! [`verify_file`].
//!
//! Not covered: fetching by chunk (`/v1/chunks/{sha256}`, for deduplicating against
//! what the device holds), several towers, `If-None-Match` revalidation.

use super::http::{Client, ClientError, path_segment};
use super::outbox::fsync_dir;
use hyper::http::{HeaderValue, StatusCode, header};
use sha2::{Digest, Sha256};
use sovereign_logic::content::{ChunkHash, Manifest, verify_chunk};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Default bytes asked for in one range request (whole chunks; at least one).
pub const WINDOW_BYTES_DEFAULT: u64 = 1024 * 1024;

/// How to fetch.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Continue a partial download of this version, if one exists.
    pub resume: bool,
    /// Bytes per range request (rounded to whole chunks; at least one chunk).
    pub window_bytes: u64,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            resume: false,
            window_bytes: WINDOW_BYTES_DEFAULT,
        }
    }
}

/// A verified download.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The manifest the bytes verified against.
    pub manifest: Manifest,
    /// Where they were written.
    pub path: PathBuf,
    /// Verified bytes already on disk when the fetch started (`--resume`).
    pub resumed_from: u64,
    /// Range requests made.
    pub requests: u32,
}

/// A chunk that failed verification: which, where, and what its bytes hashed to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{item} v{version}: chunks[{index}] of {count} (bytes {start}..{end}, sha256 {expected}) failed verification: the bytes {source_} hash to {actual}; nothing was written"
)]
pub struct BadChunk {
    /// the item
    pub item: String,
    /// its version
    pub version: u64,
    /// 0-based index in the manifest
    pub index: usize,
    /// chunks in the manifest
    pub count: usize,
    /// first byte
    pub start: u64,
    /// one past the last byte
    pub end: u64,
    /// the manifest's hash for it
    pub expected: ChunkHash,
    /// what the bytes hash to
    pub actual: ChunkHash,
    /// "received from the tower" or "read back from disk"
    pub source_: &'static str,
}

/// Why a fetch wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The tower could not be asked, or refused.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A chunk's bytes do not hash to the manifest's address for it.
    #[error(transparent)]
    BadChunk(Box<BadChunk>),
    /// The whole content does not hash to the manifest's digest (or the ETag).
    #[error(
        "{item} v{version}: the whole content hashes to {actual}, but the {against} says {expected}; nothing was written"
    )]
    Digest {
        /// the item
        item: String,
        /// its version
        version: u64,
        /// what it should be
        expected: String,
        /// what it is
        actual: ChunkHash,
        /// "manifest" or "ETag"
        against: &'static str,
    },
    /// The tower's answer does not fit the manifest (ETag, range, length).
    #[error("{url}: {reason}")]
    Mismatch {
        /// the URL
        url: String,
        /// what did not fit
        reason: String,
    },
    /// The tower stopped answering part-way; what arrived (and verified) is kept.
    #[error(
        "{source}; {kept} bytes kept in {}: run the same fetch with --resume to continue",
        partial.display()
    )]
    Interrupted {
        /// why it stopped
        source: ClientError,
        /// the partial file
        partial: PathBuf,
        /// its length
        kept: u64,
    },
    /// A local file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// what was being done, to which path
        what: String,
        /// the OS error
        source: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> FetchError {
    let what = what.into();
    move |source| FetchError::Io { what, source }
}

/// The partial file of `manifest`'s version for output `out`: hidden, next to it (a rename
/// must not cross file systems), named after the version's digest.
pub fn partial_path(out: &Path, manifest: &Manifest) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "item".to_string());
    let hex = manifest.digest.to_hex();
    parent_dir(out).join(format!(".{name}.{}.part", &hex[..16]))
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Byte offsets: `starts[i]` is where chunk `i` begins; `starts[n]` is the size.
fn chunk_starts(m: &Manifest) -> Vec<u64> {
    let mut starts = Vec::with_capacity(m.chunks.len() + 1);
    let mut at = 0u64;
    starts.push(0);
    for c in &m.chunks {
        at += u64::from(c.len);
        starts.push(at);
    }
    starts
}

fn bad_chunk(
    m: &Manifest,
    starts: &[u64],
    i: usize,
    bytes: &[u8],
    source_: &'static str,
) -> FetchError {
    FetchError::BadChunk(Box::new(BadChunk {
        item: m.item.to_string(),
        version: m.version,
        index: i,
        count: m.chunks.len(),
        start: starts[i],
        end: starts[i + 1],
        expected: m.chunks[i].hash,
        actual: ChunkHash::of(bytes),
        source_,
    }))
}

/// Verify the file at `path` against `m`: every chunk (the first bad one is named), then the
/// whole SHA-256. Streams: memory stays at one chunk.
pub fn verify_file(path: &Path, m: &Manifest) -> Result<(), FetchError> {
    let starts = chunk_starts(m);
    let mut f = File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    let len = f
        .metadata()
        .map_err(io_err(format!("reading {}", path.display())))?
        .len();
    if len != m.size {
        return Err(FetchError::Mismatch {
            url: path.display().to_string(),
            reason: format!("{len} bytes on disk, the manifest says {}", m.size),
        });
    }
    let mut whole = Sha256::new();
    let mut buf = Vec::new();
    for (i, c) in m.chunks.iter().enumerate() {
        buf.resize(c.len as usize, 0);
        f.read_exact(&mut buf)
            .map_err(io_err(format!("reading {}", path.display())))?;
        if !verify_chunk(&c.hash, &buf) {
            return Err(bad_chunk(m, &starts, i, &buf, "read back from disk"));
        }
        whole.update(&buf);
    }
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&whole.finalize());
    let actual = ChunkHash(digest);
    if actual != m.digest {
        return Err(FetchError::Digest {
            item: m.item.to_string(),
            version: m.version,
            expected: m.digest.to_hex(),
            actual,
            against: "manifest",
        });
    }
    Ok(())
}

/// What a partial file holds: verified whole chunks, then perhaps the start of the next.
struct Partial {
    file: File,
    /// Bytes kept (verified chunks plus `carry`).
    len: u64,
    /// The first chunk not yet complete.
    next: usize,
    /// The bytes of chunk `next` already on disk.
    carry: Vec<u8>,
}

/// Open `tmp` for `m`: fresh (truncated), or — resuming — keep its verified whole chunks and
/// the start of the next one, cutting off everything from the first chunk that fails.
fn open_partial(tmp: &Path, m: &Manifest, resume: bool) -> Result<Partial, FetchError> {
    let what = || format!("opening the partial file {}", tmp.display());
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(tmp)
        .map_err(io_err(what()))?;
    let starts = chunk_starts(m);
    let mut keep = 0u64;
    let mut next = 0usize;
    let mut carry = Vec::new();
    if resume {
        let mut buf = Vec::new();
        for (i, c) in m.chunks.iter().enumerate() {
            buf.clear();
            (&mut file)
                .take(u64::from(c.len))
                .read_to_end(&mut buf)
                .map_err(io_err(what()))?;
            next = i;
            if buf.len() < c.len as usize {
                // The start of a chunk: kept, checked once the rest arrives.
                carry = std::mem::take(&mut buf);
                break;
            }
            if !verify_chunk(&c.hash, &buf) {
                // Bytes on disk that do not verify are dropped, never built upon.
                break;
            }
            keep = starts[i + 1];
            next = i + 1;
        }
        keep += carry.len() as u64;
    }
    file.set_len(keep).map_err(io_err(what()))?;
    file.seek(SeekFrom::End(0)).map_err(io_err(what()))?;
    Ok(Partial {
        file,
        len: keep,
        next,
        carry,
    })
}

/// Parse `Content-Range: bytes FIRST-LAST/LEN`.
fn content_range(v: &HeaderValue) -> Option<(u64, u64, u64)> {
    let s = v.to_str().ok()?.strip_prefix("bytes ")?;
    let (range, len) = s.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?, len.parse().ok()?))
}

/// Fetch `item` from the tower into `out` (see the module doc). Nothing appears at `out`
/// unless every chunk and the whole digest verified.
pub fn fetch(
    client: &Client,
    item: &str,
    out: &Path,
    opts: &FetchOptions,
) -> Result<Fetched, FetchError> {
    let m = client.manifest(item)?;
    let tmp = partial_path(out, &m);
    let result = download(client, item, &m, &tmp, opts);
    match result {
        Ok((resumed_from, requests)) => {
            let dir = parent_dir(out);
            std::fs::rename(&tmp, out).map_err(io_err(format!(
                "renaming {} to {}",
                tmp.display(),
                out.display()
            )))?;
            fsync_dir(&dir).map_err(io_err(format!("fsync {}", dir.display())))?;
            Ok(Fetched {
                manifest: m,
                path: out.to_path_buf(),
                resumed_from,
                requests,
            })
        }
        Err(FetchError::Client(source @ ClientError::Unreachable(_))) => {
            // The tower or the path failed, not the bytes: keep what verified, for --resume.
            let kept = std::fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
            if kept == 0 {
                let _ = std::fs::remove_file(&tmp);
                return Err(FetchError::Client(source));
            }
            Err(FetchError::Interrupted {
                source,
                partial: tmp,
                kept,
            })
        }
        Err(e) => {
            // Bytes that failed verification, or a tower that answered wrongly: keep nothing.
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Fill `tmp` with `m`'s verified bytes and check it once more from disk. Returns the
/// bytes resumed from and the requests made.
fn download(
    client: &Client,
    item: &str,
    m: &Manifest,
    tmp: &Path,
    opts: &FetchOptions,
) -> Result<(u64, u32), FetchError> {
    let starts = chunk_starts(m);
    let n = m.chunks.len();
    let etag = m.etag();
    let path = format!("/v1/items/{}", path_segment(item));
    let url = client.url(&path);
    let mismatch = |reason: String| FetchError::Mismatch {
        url: url.clone(),
        reason,
    };
    let mut p = open_partial(tmp, m, opts.resume)?;
    let resumed_from = p.len;
    let mut requests = 0u32;
    let check_etag = |resp: &crate::transport::Response| -> Result<(), FetchError> {
        match resp.headers.get(header::ETAG) {
            Some(v) if v.as_bytes() == etag.as_bytes() => Ok(()),
            Some(v) => Err(mismatch(format!(
                "ETag {v:?}, but the manifest's sha256 is {etag}: the item changed while fetching, or the tower is inconsistent; run the fetch again"
            ))),
            None => Err(mismatch("no ETag on the item's bytes".to_string())),
        }
    };

    if n == 0 {
        // An empty item: nothing to range over, but the tower must still vouch for it.
        let resp = client.get(&path, Vec::new())?;
        requests += 1;
        if resp.status != StatusCode::OK {
            return Err(client.status_error(&path, &resp).into());
        }
        check_etag(&resp)?;
        if !resp.body.is_empty() {
            return Err(mismatch(format!(
                "{} bytes for an empty item",
                resp.body.len()
            )));
        }
    }

    while p.next < n {
        let first = p.next;
        let from = p.len;
        // Whole chunks up to the window, at least one.
        let mut j = first + 1;
        while j < n && starts[j + 1] - from <= opts.window_bytes.max(1) {
            j += 1;
        }
        let to = starts[j]; // exclusive
        let range = HeaderValue::from_str(&format!("bytes={from}-{}", to - 1))
            .map_err(|e| mismatch(e.to_string()))?;
        let resp = client.get(&path, vec![(header::RANGE, range)])?;
        requests += 1;
        let data = match resp.status {
            StatusCode::PARTIAL_CONTENT => {
                check_etag(&resp)?;
                let got = resp
                    .headers
                    .get(header::CONTENT_RANGE)
                    .and_then(content_range);
                if got != Some((from, to - 1, m.size)) {
                    return Err(mismatch(format!(
                        "asked for bytes {from}-{} of {}, got Content-Range {:?}",
                        to - 1,
                        m.size,
                        resp.headers.get(header::CONTENT_RANGE)
                    )));
                }
                resp.body.clone()
            }
            StatusCode::OK => {
                // The tower ignored the range and sent everything: use the rest of it.
                check_etag(&resp)?;
                if resp.body.len() as u64 != m.size {
                    return Err(mismatch(format!(
                        "{} bytes, the manifest says {}",
                        resp.body.len(),
                        m.size
                    )));
                }
                j = n;
                resp.body.slice(from as usize..)
            }
            _ => return Err(client.status_error(&path, &resp).into()),
        };
        let want = (starts[j] - from) as usize;
        if data.len() != want {
            return Err(mismatch(format!(
                "{} bytes for a range of {want}",
                data.len()
            )));
        }
        // Check chunk by chunk, the carried start of chunk `first` included.
        let mut at = 0usize;
        for i in first..j {
            let len = m.chunks[i].len as usize;
            let joined: Vec<u8>;
            let piece: &[u8] = if i == first && !p.carry.is_empty() {
                let mut whole = std::mem::take(&mut p.carry);
                let rest = len - whole.len();
                whole.extend_from_slice(&data[..rest]);
                at = rest;
                joined = whole;
                &joined
            } else {
                at += len;
                &data[at - len..at]
            };
            if !verify_chunk(&m.chunks[i].hash, piece) {
                return Err(bad_chunk(m, &starts, i, piece, "received from the tower"));
            }
        }
        debug_assert_eq!(at, data.len());
        p.file
            .write_all(&data)
            .map_err(io_err(format!("writing {}", tmp.display())))?;
        p.len = starts[j];
        p.next = j;
    }
    p.file
        .sync_all()
        .map_err(io_err(format!("fsync {}", tmp.display())))?;
    drop(p);
    // Once more from disk: what gets renamed is what was verified.
    verify_file(tmp, m)?;
    // The ETag is the whole content's SHA-256 too; it matched the manifest above.
    debug_assert_eq!(etag, format!("\"{}\"", m.digest));
    Ok((resumed_from, requests))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sovereign_logic::content::{ChunkParams, ItemId, Priority, publish};

    fn manifest(data: &[u8]) -> Manifest {
        publish(
            ItemId::new("a"),
            1,
            Priority::P1,
            data,
            ChunkParams::default(),
        )
        .unwrap()
        .0
    }

    fn data() -> Vec<u8> {
        (0..100_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect()
    }

    #[test]
    fn a_resumed_partial_keeps_verified_chunks_and_the_start_of_the_next() {
        // Goal: resuming builds only on bytes that verify.
        let dir = tempfile::tempdir().unwrap();
        let d = data();
        let m = manifest(&d);
        assert!(m.chunks.len() > 3);
        let tmp = dir.path().join("p");
        let cut = m.chunks[0].len as usize + m.chunks[1].len as usize + 10;
        std::fs::write(&tmp, &d[..cut]).unwrap();
        let p = open_partial(&tmp, &m, true).unwrap();
        assert_eq!((p.len, p.next, p.carry.len()), (cut as u64, 2, 10));
        // A flipped byte in chunk 1 drops chunk 1 and everything after it.
        let mut bad = d[..cut].to_vec();
        bad[m.chunks[0].len as usize + 3] ^= 1;
        std::fs::write(&tmp, &bad).unwrap();
        let p = open_partial(&tmp, &m, true).unwrap();
        assert_eq!(
            (p.len, p.next, p.carry.len()),
            (u64::from(m.chunks[0].len), 1, 0)
        );
        assert_eq!(
            std::fs::metadata(&tmp).unwrap().len(),
            u64::from(m.chunks[0].len)
        );
        // Not resuming: start over.
        let p = open_partial(&tmp, &m, false).unwrap();
        assert_eq!(p.len, 0);
    }

    #[test]
    fn verify_file_names_the_first_bad_chunk() {
        // Goal: the error says which chunk, where, and what it hashed to.
        let dir = tempfile::tempdir().unwrap();
        let mut d = data();
        let m = manifest(&d);
        let f = dir.path().join("f");
        std::fs::write(&f, &d).unwrap();
        verify_file(&f, &m).unwrap();
        let at = m.chunks[0].len as usize + m.chunks[1].len as usize + 1;
        d[at] ^= 0x80;
        std::fs::write(&f, &d).unwrap();
        match verify_file(&f, &m) {
            Err(FetchError::BadChunk(b)) => assert_eq!(b.index, 2),
            other => panic!("expected chunks[2] to fail, got {other:?}"),
        }
    }

    #[test]
    fn content_range_parses() {
        assert_eq!(
            content_range(&HeaderValue::from_static("bytes 5-9/100")),
            Some((5, 9, 100))
        );
        assert_eq!(
            content_range(&HeaderValue::from_static("bytes */100")),
            None
        );
    }
}
