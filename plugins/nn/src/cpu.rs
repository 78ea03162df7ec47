//! The CPU reference of every GPU kernel, in f64, NCHW layout, with the
//! same conventions (stride 1, zero "same" padding, odd kernel sizes).
//! It is what the GPU is checked against, and it is checked itself by
//! finite differences (see the tests).

use crate::model::Activation;

/// Batch, height and width of a stack of feature maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Images in the batch.
    pub n: usize,
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
}

impl Dims {
    /// Pixels of one plane.
    pub fn plane(&self) -> usize {
        self.h * self.w
    }
}

/// A convolution's shape: `cin` → `cout` channels, `k`×`k` kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel side (odd).
    pub k: usize,
}

/// Calls `f(y_index, x_index, w_index)` for every product of a
/// convolution: each output element [b, co, yy, xx] with each kernel tap
/// whose source pixel lies inside the image (zero padding elsewhere).
fn for_each_product(d: Dims, s: ConvShape, mut f: impl FnMut(usize, usize, usize)) {
    let pad = (s.k / 2) as isize;
    for b in 0..d.n {
        for co in 0..s.cout {
            for yy in 0..d.h {
                for xx in 0..d.w {
                    let yi = ((b * s.cout + co) * d.h + yy) * d.w + xx;
                    for ci in 0..s.cin {
                        for ky in 0..s.k {
                            let sy = yy as isize + ky as isize - pad;
                            if sy < 0 || sy >= d.h as isize {
                                continue;
                            }
                            for kx in 0..s.k {
                                let sx = xx as isize + kx as isize - pad;
                                if sx < 0 || sx >= d.w as isize {
                                    continue;
                                }
                                let xi = ((b * s.cin + ci) * d.h + sy as usize) * d.w + sx as usize;
                                f(yi, xi, ((co * s.cin + ci) * s.k + ky) * s.k + kx);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `y = conv(x, weight) + bias`; x is `[n, cin, h, w]`, weight
/// `[cout, cin, k, k]`, bias `[cout]`; y is `[n, cout, h, w]`.
pub fn conv2d(x: &[f64], d: Dims, s: ConvShape, weight: &[f64], bias: &[f64]) -> Vec<f64> {
    let plane = d.plane();
    let mut y: Vec<f64> = (0..d.n * s.cout * plane)
        .map(|i| bias[(i / plane) % s.cout])
        .collect();
    for_each_product(d, s, |yi, xi, wi| y[yi] += weight[wi] * x[xi]);
    y
}

/// dL/dx of [`conv2d`] from dL/dy.
pub fn conv2d_grad_input(dy: &[f64], d: Dims, s: ConvShape, weight: &[f64]) -> Vec<f64> {
    let mut dx = vec![0.0; d.n * s.cin * d.plane()];
    for_each_product(d, s, |yi, xi, wi| dx[xi] += dy[yi] * weight[wi]);
    dx
}

/// dL/dweight and dL/dbias of [`conv2d`] from dL/dy and x.
pub fn conv2d_grad_params(dy: &[f64], x: &[f64], d: Dims, s: ConvShape) -> (Vec<f64>, Vec<f64>) {
    let mut dw = vec![0.0; s.cout * s.cin * s.k * s.k];
    let mut db = vec![0.0; s.cout];
    for (i, g) in dy.iter().enumerate() {
        db[(i / d.plane()) % s.cout] += g;
    }
    for_each_product(d, s, |yi, xi, wi| dw[wi] += dy[yi] * x[xi]);
    (dw, db)
}

/// The activation of every value.
pub fn activate(act: Activation, values: &[f64]) -> Vec<f64> {
    values
        .iter()
        .map(|&v| match act {
            Activation::Identity => v,
            Activation::Relu => v.max(0.0),
            Activation::Tanh => v.tanh(),
        })
        .collect()
}

/// dL/dz from dL/da and the activation's output a = act(z).
pub fn activate_grad(act: Activation, out: &[f64], grad: &[f64]) -> Vec<f64> {
    out.iter()
        .zip(grad)
        .map(|(&a, &g)| match act {
            Activation::Identity => g,
            Activation::Relu => {
                if a > 0.0 {
                    g
                } else {
                    0.0
                }
            }
            Activation::Tanh => g * (1.0 - a * a),
        })
        .collect()
}

/// Pixel shuffle by `r`: `[n, c·r², h, w]` → `[n, c, h·r, w·r]` (`d` is
/// the small side).
pub fn pixel_shuffle(x: &[f64], d: Dims, c: usize, r: usize) -> Vec<f64> {
    let (bh, bw) = (d.h * r, d.w * r);
    let mut out = vec![0.0; d.n * c * bh * bw];
    for b in 0..d.n {
        for ch in 0..c {
            for by in 0..bh {
                for bx in 0..bw {
                    let sc = ch * r * r + (by % r) * r + bx % r;
                    out[((b * c + ch) * bh + by) * bw + bx] =
                        x[((b * c * r * r + sc) * d.h + by / r) * d.w + bx / r];
                }
            }
        }
    }
    out
}

/// The inverse of [`pixel_shuffle`] (and so its gradient).
pub fn pixel_unshuffle(x: &[f64], d: Dims, c: usize, r: usize) -> Vec<f64> {
    let (bh, bw) = (d.h * r, d.w * r);
    let mut out = vec![0.0; d.n * c * r * r * d.plane()];
    for b in 0..d.n {
        for ch in 0..c {
            for by in 0..bh {
                for bx in 0..bw {
                    let sc = ch * r * r + (by % r) * r + bx % r;
                    out[((b * c * r * r + sc) * d.h + by / r) * d.w + bx / r] =
                        x[((b * c + ch) * bh + by) * bw + bx];
                }
            }
        }
    }
    out
}

/// Mean squared error of `pred + base` against `target`, and dL/dpred.
pub fn mse(pred: &[f64], base: &[f64], target: &[f64]) -> (f64, Vec<f64>) {
    let m = pred.len() as f64;
    let mut loss = 0.0;
    let grad = pred
        .iter()
        .zip(base)
        .zip(target)
        .map(|((&p, &b), &t)| {
            let d = p + b - t;
            loss += d * d;
            2.0 * d / m
        })
        .collect();
    (loss / m, grad)
}

/// Adam's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adam {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator floor.
    pub eps: f64,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl Adam {
    /// `[lr_t, β1, β2, ε_t]` for step `t` (from 1), as the GPU kernel takes
    /// them: the bias corrections folded into the rate and ε.
    pub fn hyper(&self, lr: f64, t: u64) -> [f32; 4] {
        let c1 = 1.0 - self.beta1.powf(t as f64);
        let c2 = (1.0 - self.beta2.powf(t as f64)).sqrt();
        [
            (lr * c2 / c1) as f32,
            self.beta1 as f32,
            self.beta2 as f32,
            (self.eps * c2) as f32,
        ]
    }

    /// One Adam update at step `t` (from 1) with rate `lr`.
    pub fn step(
        &self,
        lr: f64,
        t: u64,
        params: &mut [f64],
        grads: &[f64],
        m: &mut [f64],
        v: &mut [f64],
    ) {
        let c1 = 1.0 - self.beta1.powf(t as f64);
        let c2 = 1.0 - self.beta2.powf(t as f64);
        for i in 0..params.len() {
            m[i] = self.beta1 * m[i] + (1.0 - self.beta1) * grads[i];
            v[i] = self.beta2 * v[i] + (1.0 - self.beta2) * grads[i] * grads[i];
            params[i] -= lr * (m[i] / c1) / ((v[i] / c2).sqrt() + self.eps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Counter;

    fn random(n: usize, stream: u64) -> Vec<f64> {
        let c = Counter::new(42, stream);
        (0..n as u64).map(|i| c.unit(i) * 2.0 - 1.0).collect()
    }

    /// Central differences of the scalar `f` at `x` along each coordinate.
    fn numeric_grad(x: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
        let h = 1e-6;
        (0..x.len())
            .map(|i| {
                let mut up = x.to_vec();
                let mut down = x.to_vec();
                up[i] += h;
                down[i] -= h;
                (f(&up) - f(&down)) / (2.0 * h)
            })
            .collect()
    }

    fn assert_close(analytic: &[f64], numeric: &[f64], what: &str) {
        for (i, (a, n)) in analytic.iter().zip(numeric).enumerate() {
            assert!(
                (a - n).abs() <= 1e-6 * (1.0 + n.abs()),
                "{what}[{i}]: analytic {a} vs numeric {n}"
            );
        }
    }

    /// A scalar of a tensor with fixed random weights, so its gradient is
    /// the weights: L = Σ y·u.
    fn dot(y: &[f64], u: &[f64]) -> f64 {
        y.iter().zip(u).map(|(a, b)| a * b).sum()
    }

    #[test]
    fn conv2d_gradients_match_finite_differences() {
        let d = Dims { n: 2, h: 5, w: 4 };
        let s = ConvShape {
            cin: 3,
            cout: 2,
            k: 3,
        };
        let x = random(d.n * s.cin * d.plane(), 1);
        let w = random(s.cout * s.cin * 9, 2);
        let b = random(s.cout, 3);
        let u = random(d.n * s.cout * d.plane(), 4);
        let dx = conv2d_grad_input(&u, d, s, &w);
        let (dw, db) = conv2d_grad_params(&u, &x, d, s);
        assert_close(
            &dx,
            &numeric_grad(&x, |x| dot(&conv2d(x, d, s, &w, &b), &u)),
            "dx",
        );
        assert_close(
            &dw,
            &numeric_grad(&w, |w| dot(&conv2d(&x, d, s, w, &b), &u)),
            "dw",
        );
        assert_close(
            &db,
            &numeric_grad(&b, |b| dot(&conv2d(&x, d, s, &w, b), &u)),
            "db",
        );
    }

    #[test]
    fn conv2d_with_a_5x5_kernel_pads_with_zeros() {
        // One input pixel of 1 at the corner: the output is the kernel
        // mirrored and clipped by the border.
        let d = Dims { n: 1, h: 3, w: 3 };
        let s = ConvShape {
            cin: 1,
            cout: 1,
            k: 5,
        };
        let mut x = vec![0.0; 9];
        x[0] = 1.0;
        let w: Vec<f64> = (0..25).map(f64::from).collect();
        let y = conv2d(&x, d, s, &w, &[0.5]);
        // y[yy][xx] = w[ky = 2 - yy][kx = 2 - xx] + 0.5
        assert_eq!(y[0], 12.5);
        assert_eq!(y[1], 11.5);
        assert_eq!(y[3], 7.5);
        assert_eq!(y[8], 0.5);
    }

    #[test]
    fn activation_gradients_match_finite_differences() {
        let z = random(50, 5);
        let u = random(50, 6);
        for act in [Activation::Identity, Activation::Relu, Activation::Tanh] {
            let a = activate(act, &z);
            let dz = activate_grad(act, &a, &u);
            assert_close(
                &dz,
                &numeric_grad(&z, |z| dot(&activate(act, z), &u)),
                act.name(),
            );
        }
    }

    #[test]
    fn pixel_shuffle_moves_channels_to_subpixels_and_back() {
        let d = Dims { n: 2, h: 3, w: 2 };
        let x = random(d.n * 2 * 4 * d.plane(), 7);
        let y = pixel_shuffle(&x, d, 2, 2);
        // Channel 1 of image 0, sub-pixel (1, 0) of cell (2, 1) is input channel 1·4 + 1·2 + 0.
        assert_eq!(y[(6 + 2 * 2 + 1) * 4 + 2], x[((4 + 2) * 3 + 2) * 2 + 1]);
        assert_eq!(pixel_unshuffle(&y, d, 2, 2), x);
        let u = random(y.len(), 8);
        assert_close(
            &pixel_unshuffle(&u, d, 2, 2),
            &numeric_grad(&x, |x| dot(&pixel_shuffle(x, d, 2, 2), &u)),
            "shuffle",
        );
    }

    #[test]
    fn mse_gradient_matches_finite_differences() {
        let (p, b, t) = (random(40, 9), random(40, 10), random(40, 11));
        let (_, g) = mse(&p, &b, &t);
        assert_close(&g, &numeric_grad(&p, |p| mse(p, &b, &t).0), "mse");
    }

    #[test]
    fn adam_hyper_folds_bias_correction_into_the_same_update() {
        let adam = Adam::default();
        let g = random(10, 12);
        let (mut p, mut m, mut v) = (random(10, 13), vec![0.0; 10], vec![0.0; 10]);
        let (p0, mut m2, mut v2) = (p.clone(), vec![0.0; 10], vec![0.0; 10]);
        adam.step(0.01, 1, &mut p, &g, &mut m, &mut v);
        // The folded form, as the kernel computes it (in f64 here).
        let [lr_t, b1, b2, eps_t] = adam.hyper(0.01, 1).map(f64::from);
        for i in 0..10 {
            m2[i] = b1 * m2[i] + (1.0 - b1) * g[i];
            v2[i] = b2 * v2[i] + (1.0 - b2) * g[i] * g[i];
            let folded = p0[i] - lr_t * m2[i] / (v2[i].sqrt() + eps_t);
            assert!((folded - p[i]).abs() < 1e-7, "{folded} vs {}", p[i]);
        }
        // The first step moves each parameter by about lr against its gradient.
        for i in 0..10 {
            assert!(((p0[i] - p[i]) - 0.01 * g[i].signum()).abs() < 1e-4);
        }
    }
}
