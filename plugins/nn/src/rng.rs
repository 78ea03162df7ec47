//! A counter-based random number generator: each draw is a hash of
//! (seed, stream, index), so any batch of any step can be drawn again
//! without replaying the steps before it.

/// SplitMix64's finaliser: a bijective 64-bit mix with good avalanche.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Random numbers for one (seed, stream) pair, drawn by index.
#[derive(Debug, Clone, Copy)]
pub struct Counter {
    key: u64,
}

impl Counter {
    /// The generator of `stream` under `seed`.
    pub fn new(seed: u64, stream: u64) -> Self {
        Counter {
            key: mix(mix(seed) ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93)),
        }
    }

    /// The `index`-th 64-bit draw.
    pub fn u64(&self, index: u64) -> u64 {
        mix(self.key ^ mix(index))
    }

    /// The `index`-th draw, uniform in `0..n` (`n` > 0; bias ≤ n / 2^64).
    pub fn below(&self, index: u64, n: u64) -> u64 {
        ((u128::from(self.u64(index)) * u128::from(n)) >> 64) as u64
    }

    /// The `index`-th draw, uniform in [0, 1).
    pub fn unit(&self, index: u64) -> f64 {
        (self.u64(index) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_depend_on_seed_stream_and_index_only() {
        let a = Counter::new(7, 3);
        assert_eq!(a.u64(10), Counter::new(7, 3).u64(10));
        assert_ne!(a.u64(10), a.u64(11));
        assert_ne!(a.u64(10), Counter::new(8, 3).u64(10));
        assert_ne!(a.u64(10), Counter::new(7, 4).u64(10));
    }

    #[test]
    fn below_and_unit_stay_in_range_and_spread() {
        let c = Counter::new(1, 0);
        let mut hist = [0u32; 10];
        for i in 0..10_000 {
            let v = c.below(i, 10);
            hist[v as usize] += 1;
            let u = c.unit(i);
            assert!((0.0..1.0).contains(&u));
        }
        assert!(hist.iter().all(|&h| (850..1150).contains(&h)), "{hist:?}");
    }
}
