//! The directional albedo of the GGX coat, tabulated, so that the layer
//! under it gets exactly the energy the coat does not reflect (albedo
//! scaling, as in Kulla & Conty 2017 and Cycles' Principled v2): a white
//! coated surface then reflects all it receives.
//!
//! With Schlick's Fresnel F = f0 + (1 − f0)(1 − v·h)⁵ the coat's albedo at
//! view cosine μ and roughness r splits into two integrals that do not
//! depend on f0: E(μ, r) = f0·A(μ, r) + (1 − f0)·B(μ, r), with
//! A = ∫ D·G / (4 n·v) dω and B = ∫ (1 − v·h)⁵ D·G / (4 n·v) dω over the
//! upper hemisphere. Both tracers read them with the same bilinear lookup.
//!
//! A (the lobe's albedo with F = 1) also gives metals their multiple
//! scattering (Kulla & Conty 2017): a lobe f_ms = (1 − A(μo))(1 − A(μi)) /
//! (π (1 − A_avg)), tinted by F_ms = F_avg² A_avg / (1 − F_avg (1 − A_avg)),
//! returns what single scattering loses between microfacets, so a white
//! rough metal reflects all it receives. A_avg(r) = 2 ∫ A(μ, r) μ dμ is a
//! third table, one entry per roughness.

use crate::math::v3;
use crate::trace::{sample_ggx, smith_g1};

/// Cells per side of each table (μ and perceptual roughness, 0 to 1).
pub const SIZE: usize = 32;

/// Stratified samples per side per cell.
const STRATA: u32 = 16;

/// `A` then `B`, each `SIZE`×`SIZE`, row-major by roughness then μ.
pub fn tables() -> Vec<f32> {
    let mut a = vec![0.0f32; SIZE * SIZE];
    let mut b = vec![0.0f32; SIZE * SIZE];
    let n = v3(0.0, 0.0, 1.0);
    for ri in 0..SIZE {
        let roughness = ri as f32 / (SIZE - 1) as f32;
        let alpha = (roughness * roughness).max(1e-3);
        let alpha2 = alpha * alpha;
        for mi in 0..SIZE {
            // μ = 0 exactly has no albedo to speak of; sample just above.
            let mu = (mi as f32 / (SIZE - 1) as f32).max(1e-3);
            let view = v3((1.0 - mu * mu).max(0.0).sqrt(), 0.0, mu);
            let (mut sa, mut sb) = (0.0f64, 0.0f64);
            for i in 0..STRATA {
                for j in 0..STRATA {
                    let xi1 = (i as f32 + 0.5) / STRATA as f32;
                    let xi2 = (j as f32 + 0.5) / STRATA as f32;
                    let h = sample_ggx(n, alpha2, xi1, xi2);
                    let vh = view.dot(h);
                    let l = h * (2.0 * vh) - view;
                    if l.z <= 0.0 || vh <= 0.0 {
                        continue;
                    }
                    // value / pdf of the coat without its Fresnel factor.
                    let g = smith_g1(alpha2, mu) * smith_g1(alpha2, l.z);
                    let w = f64::from(g * vh / (mu * h.z));
                    sa += w;
                    sb += w * f64::from((1.0 - vh).powi(5));
                }
            }
            let count = f64::from(STRATA * STRATA);
            a[ri * SIZE + mi] = (sa / count).min(1.0) as f32;
            b[ri * SIZE + mi] = (sb / count).min(1.0) as f32;
        }
    }
    // A_avg per roughness, by the trapezoid rule over the table's μ.
    let mut avg = vec![0.0f32; SIZE];
    for (ri, slot) in avg.iter_mut().enumerate() {
        let f = |mi: usize| {
            let mu = mi as f64 / (SIZE - 1) as f64;
            f64::from(a[ri * SIZE + mi]) * mu
        };
        let h = 1.0 / (SIZE - 1) as f64;
        let sum: f64 = (0..SIZE - 1).map(|mi| 0.5 * h * (f(mi) + f(mi + 1))).sum();
        *slot = (2.0 * sum).min(1.0) as f32;
    }
    a.extend_from_slice(&b);
    a.extend_from_slice(&avg);
    a
}

/// Linear lookup of the A_avg table (`SIZE` entries from `tables[offset]`)
/// at perceptual `roughness`.
pub fn lookup_average(tables: &[f32], offset: usize, roughness: f32) -> f32 {
    let last = (SIZE - 1) as f32;
    let x = (roughness.clamp(0.0, 1.0) * last).min(last);
    let x0 = x.floor().min(last - 1.0);
    let f = x - x0;
    tables[offset + x0 as usize] * (1.0 - f) + tables[offset + x0 as usize + 1] * f
}

/// Bilinear lookup of table `t` (`SIZE`×`SIZE`, the first of which starts
/// at `tables[offset]`) at view cosine `mu` and perceptual `roughness`.
pub fn lookup(tables: &[f32], offset: usize, mu: f32, roughness: f32) -> f32 {
    let last = (SIZE - 1) as f32;
    let x = (mu.clamp(0.0, 1.0) * last).min(last);
    let y = (roughness.clamp(0.0, 1.0) * last).min(last);
    let (x0, y0) = (x.floor().min(last - 1.0), y.floor().min(last - 1.0));
    let (fx, fy) = (x - x0, y - y0);
    let at = |xi: f32, yi: f32| tables[offset + yi as usize * SIZE + xi as usize];
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
    let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
    top * (1.0 - fy) + bottom * fy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_average_albedo_is_one_when_smooth_and_less_when_rough() {
        let t = tables();
        let avg = 2 * SIZE * SIZE;
        assert!((lookup_average(&t, avg, 0.0) - 1.0).abs() < 0.02);
        assert!(lookup_average(&t, avg, 1.0) < 0.9);
    }

    #[test]
    fn a_smooth_coat_reflects_what_fresnel_says_and_rough_ones_lose_some() {
        let t = tables();
        let b = SIZE * SIZE;
        // Smooth: A ≈ 1 (every microfacet is the normal), B ≈ (1 − μ)⁵.
        for mu in [0.2f32, 0.5, 1.0] {
            let a = lookup(&t, 0, mu, 0.0);
            let bb = lookup(&t, b, mu, 0.0);
            assert!((a - 1.0).abs() < 0.02, "A({mu}, 0) = {a}");
            assert!((bb - (1.0 - mu).powi(5)).abs() < 0.02, "B({mu}, 0) = {bb}");
        }
        // Rough and grazing: single scattering loses energy, never gains.
        assert!(lookup(&t, 0, 0.1, 1.0) < 0.8);
        assert!(t.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}
