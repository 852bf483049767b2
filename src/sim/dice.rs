//! Lock-free per-request randomness: request ids, fault draws and latency draws from one atomic counter.

use std::sync::atomic::{AtomicU64, Ordering};

/// A counter hashed through SplitMix64: every call gives a fresh, well-mixed 64-bit value without a lock.
#[derive(Debug)]
pub struct Dice {
    salt: u64,
    counter: AtomicU64,
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Dice {
    pub fn new(salt: u64) -> Dice {
        Dice {
            salt: splitmix64(salt ^ 0x5eed_5eed_5eed_5eed),
            counter: AtomicU64::new(0),
        }
    }

    pub fn next_u64(&self) -> u64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        splitmix64(self.salt ^ splitmix64(n))
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A UUID-shaped request id (version 4 layout), unique per server run.
    pub fn request_id(&self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            ((b >> 48) & 0x3fff) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_uuid_shaped_and_distinct() {
        let dice = Dice::new(7);
        let a = dice.request_id();
        let b = dice.request_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
    }

    #[test]
    fn unit_draws_stay_in_range() {
        let dice = Dice::new(1);
        for _ in 0..10_000 {
            let u = dice.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
