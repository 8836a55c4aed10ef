//! The world's random streams: one seeded ChaCha8 stream per component, each derived
//! from the run's seed and a label (`net`, `disk`, `workload`, `weather`, `nemesis`,
//! `misuse`, `identities`), so that a component drawing more or less does not shift
//! what the others draw.
//!
//! Map: [`Stream`].
//!
//! Not covered: the logic's own randomness (each tower and device gets a seed derived
//! the same way, and draws from its own generator).

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use sovereign_logic::entropy::{Entropy, SplitMix64};
use std::time::Duration;

/// A ChaCha8 stream used as the logic's `Entropy`.
pub(super) struct Stream(ChaCha8Rng);

impl Stream {
    /// The stream `label` of the run with `seed`.
    pub(super) fn new(seed: u64, label: &str) -> Stream {
        Stream(ChaCha8Rng::seed_from_u64(SplitMix64::derive(seed, label)))
    }

    /// An exponentially distributed wait with mean `mean_s` seconds (capped at 1e9 s).
    pub(super) fn exp(&mut self, mean_s: f64) -> Duration {
        let u = self.unit().max(1e-12);
        Duration::from_secs_f64((-u.ln() * mean_s).min(1e9))
    }

    /// `len` bytes: the stream of `len.div_ceil(8)` [`Entropy::next_u64`] words, each
    /// little-endian, cut to `len`. The generator fills them a block at a time (ChaCha's
    /// byte stream is its words in order, so the bytes and the draws after them are
    /// those of the word-by-word loop; `fill_is_the_word_stream` checks it).
    pub(super) fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0; len.next_multiple_of(8)];
        self.0.fill_bytes(&mut v);
        v.truncate(len);
        v
    }
}

impl Entropy for Stream {
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_is_the_word_stream() {
        // Goal: `bytes` draws exactly what a loop of `next_u64` would (same bytes, same
        // draws after), whatever the length and wherever the block boundary falls.
        for (skip, len) in [(0, 0), (0, 5), (1, 8), (3, 61), (7, 1000), (31, 4099)] {
            let (mut a, mut b) = (Stream::new(9, "workload"), Stream::new(9, "workload"));
            for _ in 0..skip {
                a.next_u64();
                b.next_u64();
            }
            let mut words = Vec::new();
            while words.len() < len {
                words.extend_from_slice(&a.next_u64().to_le_bytes());
            }
            words.truncate(len);
            assert_eq!(b.bytes(len), words, "skip {skip}, len {len}");
            assert_eq!(
                a.next_u64(),
                b.next_u64(),
                "the draw after, skip {skip}, len {len}"
            );
        }
    }
}
