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
}

impl Entropy for Stream {
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}
