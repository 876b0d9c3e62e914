//! The randomness of the SRE throttle, injectable so its tests are deterministic.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

/// A source of uniform numbers in `[0, 1)`, shared by all clones of a breaker.
///
/// Any `Fn() -> f64 + Send + Sync` is one, e.g. `|| 0.0` to drop every call the throttle may drop.
pub trait RandomSource: Send + Sync + 'static {
    /// The next number, uniform in `[0, 1)`.
    fn next_f64(&self) -> f64;
}

impl<F> RandomSource for F
where
    F: Fn() -> f64 + Send + Sync + 'static,
{
    fn next_f64(&self) -> f64 {
        self()
    }
}

/// SplitMix64 (Steele, Lea and Flood), lock-free: its whole state is one counter advanced with
/// `fetch_add`, so concurrent callers never wait on each other. Statistically good enough for
/// drop decisions; not for anything secret.
#[derive(Debug)]
pub struct SplitMix64 {
    state: AtomicU64,
}

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

impl SplitMix64 {
    /// A generator whose sequence is fixed by `seed` (for tests).
    pub fn seeded(seed: u64) -> Self {
        SplitMix64 {
            state: AtomicU64::new(seed),
        }
    }

    /// A generator seeded from the standard library's per-process hash keys (which come from
    /// the operating system), so two processes do not drop the same calls.
    pub fn from_entropy() -> Self {
        SplitMix64::seeded(RandomState::new().hash_one(0x5eed_u64))
    }

    /// The next 64 random bits.
    pub fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
            .wrapping_add(GOLDEN_GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl RandomSource for SplitMix64 {
    fn next_f64(&self) -> f64 {
        // The top 53 bits, scaled: every value is a multiple of 2^-53 in [0, 1).
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_sequences_repeat_and_match_the_reference() {
        // First outputs of SplitMix64 seeded with 0 (the reference implementation's values).
        let g = SplitMix64::seeded(0);
        assert_eq!(g.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(g.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        let (a, b) = (SplitMix64::seeded(42), SplitMix64::seeded(42));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn floats_are_in_the_unit_interval_and_roughly_uniform() {
        let g = SplitMix64::seeded(7);
        let n = 100_000;
        let mut below_half = 0;
        for _ in 0..n {
            let x = g.next_f64();
            assert!((0.0..1.0).contains(&x));
            if x < 0.5 {
                below_half += 1;
            }
        }
        // Binomial(100000, 0.5) has sd 158: 1000 is over 6 sd.
        assert!((below_half - n / 2_i32).abs() < 1000, "{below_half}");
    }
}
