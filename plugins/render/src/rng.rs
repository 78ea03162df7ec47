//! The counter-based random numbers shared by the CPU and GPU tracers.
//!
//! Every number is a pure function of (seed, pixel, sample, dimension):
//! no state flows between pixels or samples, so a pixel's value does not
//! depend on tiling, pass sizes or thread scheduling, and the WGSL kernel
//! (`rand` in `render.wgsl`) draws bit-identical numbers.

/// The PCG-based integer hash of Jarzynski & Olano (JCGT 2020), on `u32`
/// (WGSL has no 64-bit integers).
///
/// ```
/// assert_ne!(render::rng::pcg(1), render::rng::pcg(2));
/// ```
pub fn pcg(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// The random stream of one sample of one pixel.
///
/// ```
/// use render::rng::SampleRng;
/// let a = SampleRng::new(7, 12, 3);
/// assert_eq!(a.get(0), SampleRng::new(7, 12, 3).get(0));
/// assert!((0.0..1.0).contains(&a.get(5)));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SampleRng {
    key: u32,
}

impl SampleRng {
    /// The stream for `sample` of pixel `pixel` (`y * frame_width + x` in
    /// the full frame) under `seed`.
    pub fn new(seed: u64, pixel: u32, sample: u32) -> Self {
        let (lo, hi) = (seed as u32, (seed >> 32) as u32);
        SampleRng {
            key: pcg(pcg(pcg(pcg(lo) ^ hi) ^ pixel) ^ sample),
        }
    }

    /// Number `dim` of the stream, uniform in [0, 1) with 24 bits.
    /// Dimensions 0–1 jitter the camera ray, bounce `b` uses
    /// `2 + 8b ..` (see [`crate::trace::DIMS_PER_BOUNCE`]).
    pub fn get(&self, dim: u32) -> f32 {
        (pcg(self.key ^ pcg(dim)) >> 8) as f32 * (1.0 / 16_777_216.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_pin_the_hash_shared_with_wgsl() {
        // If these change, `render.wgsl` must change the same way.
        assert_eq!(pcg(0), 129_708_002);
        assert_eq!(pcg(1), 2_831_084_092);
    }

    #[test]
    fn streams_are_deterministic_uniform_and_independent() {
        let n = 20_000;
        let mut sum = 0.0f64;
        let mut buckets = [0u32; 10];
        for i in 0..n {
            let x = SampleRng::new(42, i, 0).get(3);
            assert_eq!(x, SampleRng::new(42, i, 0).get(3));
            assert!((0.0..1.0).contains(&x));
            sum += f64::from(x);
            buckets[(x * 10.0) as usize] += 1;
        }
        assert!(
            (sum / f64::from(n) - 0.5).abs() < 0.01,
            "mean {}",
            sum / f64::from(n)
        );
        assert!(
            buckets.iter().all(|&b| (1700..2300).contains(&b)),
            "{buckets:?}"
        );
        // Neighbouring seeds, pixels, samples and dimensions differ.
        let base = SampleRng::new(1, 1, 1).get(1);
        assert_ne!(base, SampleRng::new(2, 1, 1).get(1));
        assert_ne!(base, SampleRng::new(1, 2, 1).get(1));
        assert_ne!(base, SampleRng::new(1, 1, 2).get(1));
        assert_ne!(base, SampleRng::new(1, 1, 1).get(2));
        assert_ne!(base, SampleRng::new(1 << 32 | 1, 1, 1).get(1));
    }
}
