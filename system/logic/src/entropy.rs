//! Randomness as an input.
//!
//! The logic never asks the OS for randomness. Anything random (backoff jitter, probe
//! spreading) draws from an [`Entropy`] the driver passes in: the simulator hands out a
//! per-component stream derived from the run's seed; a real server seeds one from the OS
//! once, outside the logic.
//!
//! [`SplitMix64`] is a tiny, well-known generator used by tests and as a sub-seed mixer.
//! Not covered: cryptographic randomness (nothing here needs it).

/// A source of random 64-bit words, injected by the driver.
pub trait Entropy {
    /// The next uniformly distributed 64-bit word.
    fn next_u64(&mut self) -> u64;

    /// A uniform draw in `0..n` (`n > 0`), by Lemire's multiply-shift (bias < 2^-64 · n).
    fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0) has no valid result");
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A uniform draw in `[0, 1)` with 53 bits of precision.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `true` with probability `p` (clamped to `[0, 1]`).
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p.clamp(0.0, 1.0)
    }
}

impl<E: Entropy + ?Sized> Entropy for &mut E {
    fn next_u64(&mut self) -> u64 {
        (**self).next_u64()
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a fast 64-bit generator with a 64-bit state.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub const fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// Derive an independent sub-seed for component `label` (stable across builds).
    pub fn derive(seed: u64, label: &str) -> u64 {
        let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
        for b in label.bytes() {
            h = mix(h ^ u64::from(b));
        }
        mix(h)
    }
}

const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Entropy for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_different_seed_different_stream() {
        let a: Vec<u64> = {
            let mut r = SplitMix64::new(7);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = SplitMix64::new(7);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let c: Vec<u64> = {
            let mut r = SplitMix64::new(8);
            (0..8).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(
            SplitMix64::derive(1, "tower-0"),
            SplitMix64::derive(1, "tower-1")
        );
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = SplitMix64::new(1);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let x = r.below(10);
            assert!(x < 10);
            seen[x as usize] = true;
        }
        assert!(seen.iter().all(|s| *s), "every bucket drawn at least once");
        let u = r.unit();
        assert!((0.0..1.0).contains(&u));
    }
}
