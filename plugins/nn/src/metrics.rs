//! Image quality: PSNR and SSIM on 8-bit luma (0..=255), the usual
//! super-resolution convention (Y channel, a border of `scale` pixels left
//! out because no method can know what lies beyond the edge).

/// The `border`-trimmed interior of a `w`-wide plane.
pub fn trim(values: &[f64], w: usize, h: usize, border: usize) -> (Vec<f64>, usize, usize) {
    let (iw, ih) = (w.saturating_sub(2 * border), h.saturating_sub(2 * border));
    let mut out = Vec::with_capacity(iw * ih);
    for y in border..border + ih {
        out.extend_from_slice(&values[y * w + border..y * w + border + iw]);
    }
    (out, iw, ih)
}

/// Peak signal-to-noise ratio in dB (peak 255); infinite for equal inputs.
pub fn psnr(a: &[f64], b: &[f64]) -> f64 {
    let mse = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>() / a.len().max(1) as f64;
    10.0 * (255.0 * 255.0 / mse).log10()
}

/// A normalised 11-tap Gaussian with σ = 1.5.
fn gaussian() -> [f64; 11] {
    let mut k = [0.0; 11];
    for (i, v) in k.iter_mut().enumerate() {
        let d = i as f64 - 5.0;
        *v = (-d * d / (2.0 * 1.5 * 1.5)).exp();
    }
    let sum: f64 = k.iter().sum();
    k.map(|v| v / sum)
}

/// Separable 11×11 Gaussian filter, "valid" region only.
fn filter(x: &[f64], w: usize, h: usize) -> Vec<f64> {
    let k = gaussian();
    let (vw, vh) = (w - 10, h - 10);
    let mut rows = vec![0.0; vw * h];
    for y in 0..h {
        for x0 in 0..vw {
            rows[y * vw + x0] = (0..11).map(|j| k[j] * x[y * w + x0 + j]).sum();
        }
    }
    let mut out = vec![0.0; vw * vh];
    for y0 in 0..vh {
        for x in 0..vw {
            out[y0 * vw + x] = (0..11).map(|j| k[j] * rows[(y0 + j) * vw + x]).sum();
        }
    }
    out
}

/// Mean structural similarity (Wang et al. 2004: 11×11 Gaussian window,
/// σ 1.5, K1 0.01, K2 0.03, L 255) of two `w`×`h` planes (at least 11×11).
pub fn ssim(a: &[f64], b: &[f64], w: usize, h: usize) -> f64 {
    if w < 11 || h < 11 {
        return f64::NAN;
    }
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let prod = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(x, y)| x * y).collect::<Vec<_>>();
    let (mu_a, mu_b) = (filter(a, w, h), filter(b, w, h));
    let (aa, bb, ab) = (
        filter(&prod(a, a), w, h),
        filter(&prod(b, b), w, h),
        filter(&prod(a, b), w, h),
    );
    let n = mu_a.len();
    let mut total = 0.0;
    for i in 0..n {
        let (ma, mb) = (mu_a[i], mu_b[i]);
        let (va, vb, cov) = (aa[i] - ma * ma, bb[i] - mb * mb, ab[i] - ma * mb);
        total +=
            ((2.0 * ma * mb + c1) * (2.0 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
    }
    total / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Counter;

    fn noise(n: usize, seed: u64, amp: f64) -> Vec<f64> {
        let c = Counter::new(seed, 0);
        (0..n as u64).map(|i| (c.unit(i) - 0.5) * amp).collect()
    }

    #[test]
    fn psnr_of_a_known_error() {
        let a = vec![100.0; 64];
        let b = vec![110.0; 64];
        assert!((psnr(&a, &b) - 10.0 * (255.0f64 * 255.0 / 100.0).log10()).abs() < 1e-9);
        assert!(psnr(&a, &a).is_infinite());
    }

    #[test]
    fn ssim_is_one_for_equal_images_and_drops_with_noise() {
        let (w, h) = (32, 24);
        let base: Vec<f64> = (0..w * h).map(|i| ((i % w) * 8) as f64).collect();
        assert!((ssim(&base, &base, w, h) - 1.0).abs() < 1e-12);
        let light: Vec<f64> = base
            .iter()
            .zip(noise(w * h, 1, 10.0))
            .map(|(a, n)| a + n)
            .collect();
        let heavy: Vec<f64> = base
            .iter()
            .zip(noise(w * h, 2, 80.0))
            .map(|(a, n)| a + n)
            .collect();
        let (s1, s2) = (ssim(&base, &light, w, h), ssim(&base, &heavy, w, h));
        assert!(s1 < 1.0 && s2 < s1, "{s1} {s2}");
    }

    #[test]
    fn trim_keeps_the_interior() {
        let v: Vec<f64> = (0..20).map(f64::from).collect();
        let (t, w, h) = trim(&v, 5, 4, 1);
        assert_eq!((w, h), (3, 2));
        assert_eq!(t, vec![6.0, 7.0, 8.0, 11.0, 12.0, 13.0]);
    }
}
