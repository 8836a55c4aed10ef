//! A bounded in-memory cache of *verified* content: chunk bytes by their SHA-256, and
//! whole item versions by their digest (a single-chunk item shares its entry with its
//! chunk — the same hash means the same bytes).
//!
//! Bytes enter only after they were checked against their hash, so a hit can be served
//! without hashing again; a chunk found corrupt on disk is removed at once. Eviction is
//! least-recently-used by bytes.
//!
//! Not covered: memory corruption after verification (ECC RAM's job), persistence.

use bytes::Bytes;
use sovereign_logic::content::ChunkHash;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Default capacity: 256 MiB.
pub const CACHE_BYTES_DEFAULT: usize = 256 * 1024 * 1024;

#[derive(Default)]
struct Inner {
    entries: BTreeMap<ChunkHash, (Bytes, u64)>,
    by_use: BTreeMap<u64, ChunkHash>,
    tick: u64,
    bytes: usize,
}

/// The cache. Share it behind an `Arc`.
pub struct VerifiedCache {
    inner: Mutex<Inner>,
    max_bytes: usize,
}

impl VerifiedCache {
    /// A cache holding at most `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        VerifiedCache {
            inner: Mutex::new(Inner::default()),
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent maps (every update is a few
        // infallible inserts); keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The verified bytes under `hash`, if cached.
    pub fn get(&self, hash: &ChunkHash) -> Option<Bytes> {
        let mut g = self.lock();
        let inner = &mut *g;
        inner.tick += 1;
        let tick = inner.tick;
        let (bytes, used) = inner.entries.get_mut(hash)?;
        inner.by_use.remove(used);
        *used = tick;
        inner.by_use.insert(tick, *hash);
        Some(bytes.clone())
    }

    /// Remember bytes the caller has verified against `hash`.
    pub fn insert_verified(&self, hash: ChunkHash, bytes: Bytes) {
        if bytes.len() > self.max_bytes {
            return;
        }
        let mut g = self.lock();
        let inner = &mut *g;
        if let Some((old, used)) = inner.entries.remove(&hash) {
            inner.by_use.remove(&used);
            inner.bytes -= old.len();
        }
        while inner.bytes + bytes.len() > self.max_bytes {
            let Some((_, victim)) = inner.by_use.pop_first() else {
                break;
            };
            if let Some((b, _)) = inner.entries.remove(&victim) {
                inner.bytes -= b.len();
            }
        }
        inner.tick += 1;
        let tick = inner.tick;
        inner.bytes += bytes.len();
        inner.by_use.insert(tick, hash);
        inner.entries.insert(hash, (bytes, tick));
    }

    /// Forget `hash` (its stored copy turned out corrupt, or it was deleted).
    pub fn remove(&self, hash: &ChunkHash) {
        let mut g = self.lock();
        if let Some((b, used)) = g.entries.remove(hash) {
            g.by_use.remove(&used);
            g.bytes -= b.len();
        }
    }

    /// Forget everything (a fault was injected into the store).
    pub fn clear(&self) {
        *self.lock() = Inner::default();
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, len: usize) -> (ChunkHash, Bytes) {
        let b = Bytes::from(vec![n; len]);
        (ChunkHash::of(&b), b)
    }

    #[test]
    fn evicts_least_recently_used_by_bytes() {
        let c = VerifiedCache::new(300);
        let (a, ab) = entry(1, 100);
        let (b, bb) = entry(2, 100);
        let (d, db) = entry(3, 150);
        c.insert_verified(a, ab);
        c.insert_verified(b, bb);
        assert!(c.get(&a).is_some()); // a is now more recent than b
        c.insert_verified(d, db);
        assert!(c.get(&b).is_none(), "b was least recently used");
        assert!(c.get(&a).is_some() && c.get(&d).is_some());
        assert_eq!(c.bytes(), 250);
        c.remove(&a);
        assert_eq!(c.bytes(), 150);
        let (big, bigb) = entry(4, 301);
        c.insert_verified(big, bigb);
        assert!(c.get(&big).is_none(), "larger than the whole cache");
    }
}
