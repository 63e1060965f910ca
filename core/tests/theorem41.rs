//! Theorem 4.1 of Daras et al. (2023), numerically: the minimiser of the ambient loss is the
//! conditional mean `E[x0 | A~ x_t, A~]` on every pixel, including those that `A~` hides,
//! although the loss only ever sees `A x0`; the naive loss (`A~ = A`) gets no training signal
//! on the pixels its input mask hides and so cannot learn them.
//!
//! Toy: four pixels, `x0 ~ N(mu, Sigma)` with correlations, random inpainting keeping each
//! pixel with probability 1 - p = 0.6, further corruption erasing each kept pixel with
//! probability delta = 0.3, one noise level s = 0.5. For a Gaussian the conditional mean given
//! the observed coordinates o of `y = A~ (x0 + s eta)` is affine in `y_o`:
//! `E[x0 | y, A~] = mu + Sigma_{:,o} (Sigma_oo + s^2 I)^{-1} (y_o - mu_o)`,
//! so the estimator family "one affine map of `y_o` per mask pattern" contains it. The
//! ambient loss with that family is, per pattern and output pixel, a weighted least-squares
//! problem; we solve its normal equations with the per-pixel weights from the core
//! (`ambient_weight`), then check with the core's `ambient_loss` gradient that the fit is a
//! stationary point of the core's loss over the data.

// Index loops mirror the matrix formulas they implement.
#![allow(clippy::needless_range_loop)]

use ambient_core::loss::{ambient_loss, ambient_weight, naive_loss};
use ambient_core::{AmbientRng, Shape, SliceTensor};

const PIX: usize = 4;
const PATTERNS: usize = 1 << PIX;
const MU: [f64; PIX] = [0.6, -0.5, 0.8, -0.7];
const SIGMA: [[f64; PIX]; PIX] = [
    [0.50, 0.30, 0.20, 0.10],
    [0.30, 0.60, 0.15, 0.25],
    [0.20, 0.15, 0.40, 0.20],
    [0.10, 0.25, 0.20, 0.55],
];
const P: f32 = 0.4;
const DELTA: f32 = 0.3;
const S: f32 = 0.5;
const SD: f32 = 0.5;
const BATCH: usize = 1000;
const BATCHES: usize = 200;
/// f32's unit roundoff.
const U: f64 = 1.0 / 16_777_216.0;

fn t(shape: Shape, data: &mut [f32]) -> SliceTensor<'_> {
    SliceTensor::new(shape, data).unwrap()
}

/// Solves `a x = b` (small, non-singular) by Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for col in 0..n {
        let piv = (col..n)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap();
        a.swap(col, piv);
        b.swap(col, piv);
        assert!(a[col][col].abs() > 1e-12, "singular system");
        for row in col + 1..n {
            let f = a[row][col] / a[col][col];
            for k in col..n {
                a[row][k] -= f * a[col][k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    x
}

/// Lower Cholesky factor of SIGMA (asserting it is positive definite).
fn cholesky() -> [[f64; PIX]; PIX] {
    let mut l = [[0.0; PIX]; PIX];
    for i in 0..PIX {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = SIGMA[i][i] - s;
                assert!(d > 0.0, "Sigma must be positive definite");
                l[i][i] = d.sqrt();
            } else {
                l[i][j] = (SIGMA[i][j] - s) / l[j][j];
            }
        }
    }
    l
}

/// The pixels a pattern keeps, in order.
fn observed(pattern: usize) -> Vec<usize> {
    (0..PIX).filter(|&i| pattern >> i & 1 == 1).collect()
}

/// Features of the affine estimator for a pattern: the observed pixels of `y`, then 1.
fn features(y: &[f32], obs: &[usize]) -> Vec<f64> {
    obs.iter().map(|&j| y[j] as f64).chain([1.0]).collect()
}

/// Closed form, for pattern `pattern` and output pixel `i`: the coefficients `theta*` of
/// `E[x0_i | y_o] = theta* . (y_o, 1)`, and the residual variance `Var[x0_i | y_o]`.
fn conditional_mean(pattern: usize, i: usize) -> (Vec<f64>, f64) {
    let obs = observed(pattern);
    let s2 = (S as f64).powi(2);
    let c: Vec<Vec<f64>> = obs
        .iter()
        .map(|&a| {
            obs.iter()
                .map(|&b| SIGMA[a][b] + if a == b { s2 } else { 0.0 })
                .collect()
        })
        .collect();
    let sigma_oi: Vec<f64> = obs.iter().map(|&j| SIGMA[j][i]).collect();
    let k = if obs.is_empty() {
        vec![]
    } else {
        solve(c, sigma_oi.clone())
    };
    let bias = MU[i] - obs.iter().zip(&k).map(|(&j, kj)| kj * MU[j]).sum::<f64>();
    let resid = SIGMA[i][i] - k.iter().zip(&sigma_oi).map(|(a, b)| a * b).sum::<f64>();
    (k.into_iter().chain([bias]).collect(), resid)
}

/// `E[phi phi^T]` for `phi = (y_o, 1)`, `y_o ~ N(mu_o, Sigma_oo + s^2 I)`.
fn feature_second_moment(pattern: usize) -> Vec<Vec<f64>> {
    let obs = observed(pattern);
    let s2 = (S as f64).powi(2);
    let mean: Vec<f64> = obs.iter().map(|&j| MU[j]).chain([1.0]).collect();
    let q = obs.len() + 1;
    (0..q)
        .map(|a| {
            (0..q)
                .map(|b| {
                    let cov = if a < obs.len() && b < obs.len() {
                        SIGMA[obs[a]][obs[b]] + if a == b { s2 } else { 0.0 }
                    } else {
                        0.0
                    };
                    cov + mean[a] * mean[b]
                })
                .collect()
        })
        .collect()
}

/// One batch of the toy: clean `x0`, `A`, `A~`, the noise `eta`.
struct Batch {
    x0: Vec<f32>,
    a: Vec<f32>,
    at: Vec<f32>,
    eta: Vec<f32>,
}

fn draw(rng: &mut AmbientRng, l: &[[f64; PIX]; PIX]) -> Batch {
    let len = BATCH * PIX;
    let mut z = vec![0.0f32; len];
    let mut eta = vec![0.0f32; len];
    rng.fill_normal(&mut z);
    rng.fill_normal(&mut eta);
    let mut x0 = vec![0.0f32; len];
    let (mut a, mut at) = (vec![0.0f32; len], vec![0.0f32; len]);
    for n in 0..BATCH {
        for i in 0..PIX {
            let v: f64 = MU[i]
                + (0..=i)
                    .map(|k| l[i][k] * z[n * PIX + k] as f64)
                    .sum::<f64>();
            x0[n * PIX + i] = v as f32;
            let keep = rng.bernoulli(1.0 - P);
            let keep_tilde = keep && !rng.bernoulli(DELTA);
            a[n * PIX + i] = keep as u8 as f32;
            at[n * PIX + i] = keep_tilde as u8 as f32;
        }
    }
    Batch { x0, a, at, eta }
}

/// `m (x0 + s eta)`, the model's input.
fn noisy_input(b: &Batch, m: &[f32]) -> Vec<f32> {
    (0..b.x0.len())
        .map(|k| m[k] * (b.x0[k] + S * b.eta[k]))
        .collect()
}

fn pattern_of(m: &[f32]) -> usize {
    (0..PIX).filter(|&i| m[i] == 1.0).map(|i| 1 << i).sum()
}

/// Weighted normal equations per (pattern, output pixel), and how many samples carried a
/// positive weight.
struct NormalEquations {
    m: Vec<Vec<Vec<f64>>>,
    b: Vec<Vec<f64>>,
    count: Vec<usize>,
}

impl NormalEquations {
    fn new() -> Self {
        let q = |idx: usize| observed(idx / PIX).len() + 1;
        NormalEquations {
            m: (0..PATTERNS * PIX)
                .map(|idx| vec![vec![0.0; q(idx)]; q(idx)])
                .collect(),
            b: (0..PATTERNS * PIX).map(|idx| vec![0.0; q(idx)]).collect(),
            count: vec![0; PATTERNS * PIX],
        }
    }

    /// Adds one batch: `y` the model's input, `mask` the model's mask, `w` the loss weight
    /// from the core, `target` = `A x0` (read only where `w > 0`).
    fn add(&mut self, y: &[f32], mask: &[f32], w: &[f32], target: &[f32]) {
        for n in 0..BATCH {
            let pattern = pattern_of(&mask[n * PIX..][..PIX]);
            let phi = features(&y[n * PIX..][..PIX], &observed(pattern));
            for i in 0..PIX {
                let wi = w[n * PIX + i] as f64;
                if wi == 0.0 {
                    continue;
                }
                let idx = pattern * PIX + i;
                self.count[idx] += 1;
                for a in 0..phi.len() {
                    for c in 0..phi.len() {
                        self.m[idx][a][c] += wi * phi[a] * phi[c];
                    }
                    self.b[idx][a] += wi * phi[a] * target[n * PIX + i] as f64;
                }
            }
        }
    }

    /// The weighted least-squares coefficients; where no sample carried weight the loss does
    /// not depend on them, and we take the minimum-norm minimiser, 0 (which is also where
    /// gradient descent from a zero initialisation stays).
    fn solve(&self) -> Vec<Vec<f64>> {
        (0..PATTERNS * PIX)
            .map(|idx| {
                if self.count[idx] == 0 {
                    vec![0.0; self.b[idx].len()]
                } else {
                    solve(self.m[idx].clone(), self.b[idx].clone())
                }
            })
            .collect()
    }
}

/// `E[(theta . phi - theta* . phi)^2]` over the input distribution of the pattern: the mean
/// squared distance between the fitted estimator and the conditional mean.
fn excess_risk(theta: &[f64], pattern: usize, i: usize) -> f64 {
    let (star, _) = conditional_mean(pattern, i);
    let e = feature_second_moment(pattern);
    let d: Vec<f64> = theta.iter().zip(&star).map(|(a, b)| a - b).collect();
    (0..d.len())
        .map(|a| (0..d.len()).map(|c| d[a] * e[a][c] * d[c]).sum::<f64>())
        .sum()
}

/// Statistical tolerance on `excess_risk` for a fit from `count` samples.
///
/// Within one (pattern, pixel) the weight is constant where positive (`1 / c_out^2` where
/// `A~` keeps the pixel, `1 / sd^2` where only `A` does), so the fit is ordinary least squares
/// on the samples with positive weight, and which samples those are does not depend on
/// `(x0, eta)`. The model is well specified with Gaussian residuals of variance
/// `v = Var[x0_i | y_o]` independent of the features, so `count * excess_risk / v` is
/// asymptotically chi-square with q = |o| + 1 <= 5 degrees of freedom (and `count` >= 1000
/// here). `P(chi2_5 > 40) ~ 1.5e-7`, ~1e-5 over the 64 fits.
fn tolerance(pattern: usize, i: usize, count: usize) -> f64 {
    let (_, resid) = conditional_mean(pattern, i);
    40.0 * resid / count as f64
}

/// Model input, mask, and loss weight for one batch, for the ambient and the naive setting.
fn batch_weights(b: &Batch, shape: Shape, ambient: bool) -> (Vec<f32>, Vec<f32>) {
    let mask = if ambient { b.at.clone() } else { b.a.clone() };
    let mut w = vec![0.0f32; shape.len()];
    let (mut a, mut m) = (b.a.clone(), mask.clone());
    ambient_weight(
        &t(shape, &mut a),
        &t(shape, &mut m),
        &[S; BATCH],
        SD,
        &mut t(shape, &mut w),
    )
    .unwrap();
    (mask, w)
}

#[test]
fn ambient_loss_minimiser_is_the_conditional_mean_and_naive_is_not() {
    let shape = Shape::new(BATCH, 1, 2, 2);
    let l = cholesky();
    let seed = 2023;

    // Pass 1: accumulate the normal equations of both losses over the same data. The target
    // is A x0: the fit never sees x0 where A erased it.
    let (mut ambient, mut naive) = (NormalEquations::new(), NormalEquations::new());
    let mut rng = AmbientRng::new(seed);
    for _ in 0..BATCHES {
        let b = draw(&mut rng, &l);
        let x0m: Vec<f32> = b.x0.iter().zip(&b.a).map(|(x, a)| x * a).collect();
        for (eqs, is_ambient) in [(&mut ambient, true), (&mut naive, false)] {
            let (mask, w) = batch_weights(&b, shape, is_ambient);
            eqs.add(&noisy_input(&b, &mask), &mask, &w, &x0m);
        }
    }
    let (theta, theta_naive) = (ambient.solve(), naive.solve());

    // The ambient fit matches the conditional mean on every pixel of every pattern.
    let mut worst = 0.0f64;
    for pattern in 0..PATTERNS {
        for i in 0..PIX {
            let idx = pattern * PIX + i;
            let count = ambient.count[idx];
            assert!(
                count >= 1000,
                "pattern {pattern:04b}, pixel {i}: {count} samples"
            );
            let risk = excess_risk(&theta[idx], pattern, i);
            let tol = tolerance(pattern, i, count);
            worst = worst.max(risk / tol);
            assert!(
                risk < tol,
                "ambient, pattern {pattern:04b}, pixel {i}: excess risk {risk:.3e} > {tol:.3e}"
            );
        }
    }
    eprintln!("ambient fit: largest excess risk / tolerance = {worst:.3}");

    // The naive fit: where its input mask keeps the pixel it denoises correctly (a positive
    // control); where the mask hides it there is no signal at all, and the fit is far from the
    // conditional mean: beyond 20 times the tolerance within which the ambient fit agrees
    // (sampling error would need a chi-square of 800 on at most 5 degrees of freedom).
    let mut closest = f64::INFINITY;
    for pattern in 0..PATTERNS {
        for i in 0..PIX {
            let idx = pattern * PIX + i;
            let risk = excess_risk(&theta_naive[idx], pattern, i);
            if pattern >> i & 1 == 1 {
                let tol = tolerance(pattern, i, naive.count[idx]);
                assert!(
                    risk < tol,
                    "naive, pattern {pattern:04b}, seen pixel {i}: {risk:.3e} > {tol:.3e}"
                );
            } else {
                assert_eq!(
                    naive.count[idx], 0,
                    "the naive loss has no weight on hidden pixels"
                );
                let tol = tolerance(pattern, i, ambient.count[idx]);
                closest = closest.min(risk / tol);
                assert!(
                    risk > 20.0 * tol,
                    "naive, pattern {pattern:04b}, hidden pixel {i}: {risk:.3e} vs tolerance {tol:.3e}"
                );
            }
        }
    }
    eprintln!("naive fit on hidden pixels: smallest excess risk / tolerance = {closest:.0}");

    // Pass 2, over the same data: the core's gradients at the fits. The ambient gradient,
    // contracted with the features and summed over the data, is the gradient of the core's
    // loss in the estimator's coefficients: it must vanish up to f32 rounding. Bound: the core
    // gradient 2 w (D - x0) / B is within 8 u of its value (as in loss_gradients.rs), and
    // rounding D to f32 moves it by at most 2 w u |D| / B; summed in absolute value with the
    // features' magnitudes, times 2 for the f64 accumulation and solve (~1e-12 relative).
    // The naive gradient must be exactly 0 wherever A hides a pixel.
    let mut grad_sum = vec![vec![0.0f64; PIX + 1]; PATTERNS * PIX];
    let mut grad_bound = vec![vec![0.0f64; PIX + 1]; PATTERNS * PIX];
    let mut rng = AmbientRng::new(seed);
    for _ in 0..BATCHES {
        let b = draw(&mut rng, &l);
        let mut x0m: Vec<f32> = b.x0.iter().zip(&b.a).map(|(x, a)| x * a).collect();
        for is_ambient in [true, false] {
            let (mask, w) = batch_weights(&b, shape, is_ambient);
            let y = noisy_input(&b, &mask);
            let fit = if is_ambient { &theta } else { &theta_naive };
            let mut d = vec![0.0f32; shape.len()];
            for n in 0..BATCH {
                let pattern = pattern_of(&mask[n * PIX..][..PIX]);
                let phi = features(&y[n * PIX..][..PIX], &observed(pattern));
                for i in 0..PIX {
                    let th = &fit[pattern * PIX + i];
                    d[n * PIX + i] = th.iter().zip(&phi).map(|(a, b)| a * b).sum::<f64>() as f32;
                }
            }
            let (mut grad, mut scratch) = (vec![0.0f32; shape.len()], vec![0.0f32; shape.len()]);
            let (mut a, mut m) = (b.a.clone(), mask.clone());
            let args = (&mut t(shape, &mut grad), &mut t(shape, &mut scratch));
            if is_ambient {
                ambient_loss(
                    &t(shape, &mut d),
                    &t(shape, &mut x0m),
                    &t(shape, &mut a),
                    &t(shape, &mut m),
                    &[S; BATCH],
                    SD,
                    args.0,
                    args.1,
                )
                .unwrap();
            } else {
                naive_loss(
                    &t(shape, &mut d),
                    &t(shape, &mut x0m),
                    &t(shape, &mut a),
                    &[S; BATCH],
                    SD,
                    args.0,
                    args.1,
                )
                .unwrap();
                for k in 0..shape.len() {
                    if b.a[k] == 0.0 {
                        assert_eq!(grad[k], 0.0, "naive gradient where A hides the pixel");
                    }
                }
                continue;
            }
            for n in 0..BATCH {
                let pattern = pattern_of(&mask[n * PIX..][..PIX]);
                let phi = features(&y[n * PIX..][..PIX], &observed(pattern));
                for i in 0..PIX {
                    let k = n * PIX + i;
                    let g = grad[k] as f64;
                    let err = 8.0 * U * g.abs()
                        + 2.0 * w[k] as f64 * U * (d[k] as f64).abs() / BATCH as f64;
                    for (c, &f) in phi.iter().enumerate() {
                        grad_sum[pattern * PIX + i][c] += g * f;
                        grad_bound[pattern * PIX + i][c] += 2.0 * err * f.abs();
                    }
                }
            }
        }
    }
    for idx in 0..PATTERNS * PIX {
        for c in 0..theta[idx].len() {
            let (g, bound) = (grad_sum[idx][c], grad_bound[idx][c]);
            assert!(
                g.abs() <= bound,
                "pattern {:04b} pixel {} coefficient {c}: core gradient {g:.3e} > {bound:.3e}",
                idx / PIX,
                idx % PIX
            );
        }
    }
}
