//! Exponential backoff with jitter between tries of one request.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Delays between tries: `base × 2^(try-1)`, capped, with "equal jitter" (half fixed, half random)
/// so that requests failing together do not come back together.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    rng: ChaCha8Rng,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        // No OS entropy feature is enabled for rand; the std hasher's random keys are enough for jitter.
        let seed = RandomState::new().hash_one(std::process::id());
        Backoff::seeded(base, max, seed)
    }

    pub fn seeded(base: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            base,
            max: max.max(base),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The wait after the `failed_tries`-th failed try (1 for the first failure).
    pub fn delay(&mut self, failed_tries: u32) -> Duration {
        let exp = failed_tries.saturating_sub(1).min(30);
        let full = self.base.saturating_mul(1u32 << exp).min(self.max);
        let half = full / 2;
        let jitter_ns = self
            .rng
            .random_range(0..=half.as_nanos().min(u64::MAX as u128) as u64);
        half + Duration::from_nanos(jitter_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_stops_at_the_cap() {
        let base = Duration::from_millis(100);
        let mut b = Backoff::seeded(base, Duration::from_secs(1), 7);
        for (failed, full_ms) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (20, 1000),
        ] {
            let d = b.delay(failed);
            let full = Duration::from_millis(full_ms);
            assert!(
                d >= full / 2 && d <= full,
                "try {failed}: {d:?} not in [{:?}, {full:?}]",
                full / 2
            );
        }
    }

    #[test]
    fn backoff_jitter_spreads_retries() {
        let mut b = Backoff::seeded(Duration::from_secs(1), Duration::from_secs(8), 1);
        let delays: std::collections::HashSet<_> = (0..20).map(|_| b.delay(3)).collect();
        assert!(delays.len() > 10);
    }
}
