//! The samplers on a data distribution whose exact denoiser is known in closed form:
//! `x0 ~ N(mu, Sigma)` in three dimensions, for which
//! `E[x0 | M (x0 + s eta) = y] = mu + Sigma_{:,o} (Sigma_oo + s^2 I)^{-1} (y_o - mu_o)`
//! (o = the coordinates M keeps). With M = I the fixed-mask sampler must turn
//! `N(0, s_max^2 I)` into `N(mu, Sigma)`; reconstruction guidance's gradient must match finite
//! differences; restoration must keep the measured pixels and fill the rest with the
//! conditional mean.

// Index loops mirror the matrix formulas they implement.
#![allow(clippy::needless_range_loop)]

use ambient_core::sampler::{
    fixed_mask_heun_step, fixed_mask_step, guidance_gradient, reconstruction_guidance_step,
    restore_single_step, sample, sample_fixed_mask, sample_guided, Sampler, StepInfo,
};
use ambient_core::schedule::EdmSchedule;
use ambient_core::{AmbientRng, CoreError, Denoiser, Shape, SliceTensor};

const DIM: usize = 3;
const MU: [f64; DIM] = [0.5, -0.3, 0.2];
const SIGMA: [[f64; DIM]; DIM] = [[1.0, 0.5, 0.2], [0.5, 0.8, -0.3], [0.2, -0.3, 0.6]];
/// f32's unit roundoff.
const U: f64 = 1.0 / 16_777_216.0;

type Mat = [[f64; DIM]; DIM];

fn shape(n: usize) -> Shape {
    Shape::new(n, 1, 1, DIM)
}

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

/// `G = Sigma_{:,o} (Sigma_oo + s^2 I)^{-1}` as a DIM x |o| matrix, so that
/// `E[x0 | y] = mu + G (y_o - mu_o)`.
fn gain(obs: &[usize], s: f64) -> Vec<Vec<f64>> {
    let a: Vec<Vec<f64>> = obs
        .iter()
        .map(|&i| {
            obs.iter()
                .map(|&j| SIGMA[i][j] + if i == j { s * s } else { 0.0 })
                .collect()
        })
        .collect();
    // Row r of G solves (Sigma_oo + s^2 I) g = Sigma_{o, r} (the system is symmetric).
    (0..DIM)
        .map(|r| solve(a.clone(), obs.iter().map(|&j| SIGMA[j][r]).collect()))
        .collect()
}

/// The exact posterior mean in f64, for one sample: `mask` and `y` of length DIM.
fn posterior_mean(y: &[f64], mask: &[f64], s: f64) -> [f64; DIM] {
    let obs: Vec<usize> = (0..DIM).filter(|&i| mask[i] == 1.0).collect();
    let g = gain(&obs, s);
    core::array::from_fn(|r| {
        MU[r]
            + obs
                .iter()
                .enumerate()
                .map(|(k, &j)| g[r][k] * (y[j] - MU[j]))
                .sum::<f64>()
    })
}

/// The exact denoiser of `N(MU, SIGMA)` behind the core's `Denoiser` trait, in f64 inside,
/// plus `LEAK (1 - m) y`: a term that is 0 on every input the samplers may give it (they pass
/// `y = m x`), but that makes `D` read the hidden pixels of `y`, as a network does, so that
/// forgetting to mask `x` before the call, or to multiply the vector-Jacobian product by the
/// mask (the chain rule through `y = m x`), changes the results. `D` is affine in `y`: its
/// vector-Jacobian product is `G^T c` on the observed coordinates and `LEAK c` on the others.
struct Gaussian;

const LEAK: f64 = 0.5;

fn observed(mask: &[f32]) -> Vec<usize> {
    (0..DIM).filter(|&i| mask[i] == 1.0).collect()
}

impl<'a> Denoiser<SliceTensor<'a>> for Gaussian {
    fn denoise(
        &mut self,
        y: &SliceTensor<'a>,
        mask: &SliceTensor<'a>,
        sigma: f32,
        out: &mut SliceTensor<'a>,
    ) -> Result<(), CoreError> {
        let mut cache: [Option<Vec<Vec<f64>>>; 1 << DIM] = Default::default();
        let (y, mask) = (y.data(), mask.data());
        for (n, o) in out.data_mut().chunks_mut(DIM).enumerate() {
            let (yn, mn) = (&y[n * DIM..][..DIM], &mask[n * DIM..][..DIM]);
            let obs = observed(mn);
            let key = obs.iter().map(|&i| 1 << i).sum::<usize>();
            let g = cache[key].get_or_insert_with(|| gain(&obs, sigma as f64));
            for r in 0..DIM {
                let v: f64 = obs
                    .iter()
                    .enumerate()
                    .map(|(k, &j)| g[r][k] * (yn[j] as f64 - MU[j]))
                    .sum();
                let leak = LEAK * (1.0 - mn[r] as f64) * yn[r] as f64;
                o[r] = (MU[r] + v + leak) as f32;
            }
        }
        Ok(())
    }

    fn denoise_vjp(
        &mut self,
        _y: &SliceTensor<'a>,
        mask: &SliceTensor<'a>,
        sigma: f32,
        cotangent: &SliceTensor<'a>,
        grad_y: &mut SliceTensor<'a>,
    ) -> Result<(), CoreError> {
        let (mask, c) = (mask.data(), cotangent.data());
        for (n, gy) in grad_y.data_mut().chunks_mut(DIM).enumerate() {
            let obs = observed(&mask[n * DIM..][..DIM]);
            let g = gain(&obs, sigma as f64);
            for r in 0..DIM {
                gy[r] = (LEAK * c[n * DIM + r] as f64) as f32;
            }
            for (k, &j) in obs.iter().enumerate() {
                gy[j] = (0..DIM)
                    .map(|r| g[r][k] * c[n * DIM + r] as f64)
                    .sum::<f64>() as f32;
            }
        }
        Ok(())
    }
}

fn matmul(a: &Mat, b: &Mat) -> Mat {
    core::array::from_fn(|i| core::array::from_fn(|j| (0..DIM).map(|k| a[i][k] * b[k][j]).sum()))
}

fn identity() -> Mat {
    core::array::from_fn(|i| core::array::from_fn(|j| (i == j) as u8 as f64))
}

/// `(I - P) / s` with `P = Sigma (Sigma + s^2 I)^{-1}`: with the exact denoiser,
/// `(x - D(x, s)) / s = ((I - P) / s) (x - mu)`.
fn slope_matrix(s: f64) -> Mat {
    let g = gain(&[0, 1, 2], s);
    core::array::from_fn(|i| core::array::from_fn(|j| ((i == j) as u8 as f64 - g[i][j]) / s))
}

/// The exact law of the discrete sampler's output. Each step is affine in `e = x - mu`
/// (Euler: `e <- (I + h G) e`; Heun: `e <- (I + h/2 (G + G' (I + h G))) e`, h = s' - s,
/// G = slope_matrix(s), G' = slope_matrix(s'); the last step is Euler), so from
/// `x_0 ~ N(0, s_max^2 I)` the output is `N(mu - Phi mu, s_max^2 Phi Phi^T)` with `Phi` the
/// product of the step matrices. Returns (mean, covariance).
fn discrete_law(schedule: &EdmSchedule, heun: bool) -> ([f64; DIM], Mat) {
    let mut phi = identity();
    for (_, s, s_next) in schedule.pairs() {
        let (s, s_next) = (s as f64, s_next as f64);
        let h = s_next - s;
        let g = slope_matrix(s);
        let euler: Mat =
            core::array::from_fn(|i| core::array::from_fn(|j| identity()[i][j] + h * g[i][j]));
        let step = if heun && s_next > 0.0 {
            let g2 = matmul(&slope_matrix(s_next), &euler);
            core::array::from_fn(|i| {
                core::array::from_fn(|j| identity()[i][j] + 0.5 * h * (g[i][j] + g2[i][j]))
            })
        } else {
            euler
        };
        phi = matmul(&step, &phi);
    }
    let smax2 = (schedule.sigma_max() as f64).powi(2);
    let mean = core::array::from_fn(|i| MU[i] - (0..DIM).map(|k| phi[i][k] * MU[k]).sum::<f64>());
    let cov = core::array::from_fn(|i| {
        core::array::from_fn(|j| smax2 * (0..DIM).map(|k| phi[i][k] * phi[j][k]).sum::<f64>())
    });
    (mean, cov)
}

/// Sample mean and covariance (divisor n) of rows of length DIM.
fn moments(x: &[f32]) -> ([f64; DIM], Mat) {
    let n = (x.len() / DIM) as f64;
    let mut mean = [0.0; DIM];
    for row in x.chunks(DIM) {
        for i in 0..DIM {
            mean[i] += row[i] as f64 / n;
        }
    }
    let mut cov = [[0.0; DIM]; DIM];
    for row in x.chunks(DIM) {
        for i in 0..DIM {
            for j in 0..DIM {
                cov[i][j] += (row[i] as f64 - mean[i]) * (row[j] as f64 - mean[j]) / n;
            }
        }
    }
    (mean, cov)
}

/// Runs the fixed-mask sampler with M = I from `s_max N(0, I)` and checks the samples'
/// moments against the sampler's exact discrete law and against `(mu, Sigma)`.
///
/// Tolerances. Sampling: with n samples the mean of coordinate i has standard error
/// `sqrt(C_ii / n)` and the covariance entry (i, j) `sqrt((C_ii C_jj + C_ij^2) / n)`
/// (Gaussian fourth moments); we allow 5 standard errors for each of the 9 statistics
/// (a false alarm for one seed has probability < 1e-5). f32 arithmetic in the sampler: the
/// state starts at |x| ~ 80 (u * 80 ~ 5e-6) and shrinks, far below those errors (~1e-2).
/// Discretisation: the law of the discrete sampler is computed exactly (`discrete_law`), so
/// its distance to (mu, Sigma) is known, not estimated. It has two parts: the start from
/// N(0, s_max^2 I) instead of N(mu, Sigma + s_max^2 I), which the exact ODE carries to a mean
/// bias of about |mu| sqrt(lambda) / s_max ~ 5e-3 and a covariance bias Sigma^2 / s_max^2
/// ~ 3e-4; and the Euler / Heun error, first / second order in the step (with 256 Euler or 40
/// Heun steps it is still 0.02 / 0.015 on Sigma_00, two standard errors). We take enough
/// steps (1024 Euler, 80 Heun) for the whole deviation to be below one standard error, assert
/// that, and add it to the tolerance against (mu, Sigma): at most 6 standard errors.
fn check_sampler(steps: usize, heun: bool, seed: u64) {
    let n = 20_000;
    let shape = shape(n);
    let schedule = EdmSchedule::with_steps(steps).unwrap();
    let mut x = vec![0.0f32; shape.len()];
    let mut rng = AmbientRng::new(seed);
    rng.fill_normal(&mut x);
    x.iter_mut().for_each(|v| *v *= schedule.sigma_max());
    let mut mask = vec![1.0f32; shape.len()];
    let mut bufs = vec![vec![0.0f32; shape.len()]; 3];
    let [b0, b1, b2] = &mut bufs[..] else {
        unreachable!()
    };
    let mut scratch = [t(shape, b0), t(shape, b1), t(shape, b2)];
    let mut seen = Vec::new();
    sample_fixed_mask(
        &mut Gaussian,
        &mut t(shape, &mut x),
        &t(shape, &mut mask),
        &schedule,
        heun,
        &mut scratch,
        |info: StepInfo| seen.push(info),
    )
    .unwrap();
    // The driver walked the schedule once, in order.
    assert_eq!(seen.len(), steps);
    for (info, (i, s, s_next)) in seen.iter().zip(schedule.pairs()) {
        assert_eq!(
            *info,
            StepInfo {
                step: i,
                steps,
                sigma: s,
                sigma_next: s_next
            }
        );
    }

    let (mean, cov) = moments(&x);
    let (law_mean, law_cov) = discrete_law(&schedule, heun);
    let nf = n as f64;
    for i in 0..DIM {
        let se = (law_cov[i][i] / nf).sqrt();
        let disc = (law_mean[i] - MU[i]).abs();
        assert!(
            disc < se,
            "mean {i}: law deviation {disc} vs standard error {se}"
        );
        let err = (mean[i] - law_mean[i]).abs();
        assert!(
            err < 5.0 * se,
            "mean {i}: {} vs exact law {} (se {se})",
            mean[i],
            law_mean[i]
        );
        let err = (mean[i] - MU[i]).abs();
        assert!(
            err < 5.0 * se + disc,
            "mean {i}: {} vs mu {}",
            mean[i],
            MU[i]
        );
        for j in 0..DIM {
            let se = ((law_cov[i][i] * law_cov[j][j] + law_cov[i][j].powi(2)) / nf).sqrt();
            let disc = (law_cov[i][j] - SIGMA[i][j]).abs();
            assert!(
                disc < se,
                "cov {i}{j}: law deviation {disc} vs standard error {se}"
            );
            let err = (cov[i][j] - law_cov[i][j]).abs();
            assert!(
                err < 5.0 * se,
                "cov {i}{j}: {} vs exact law {} (se {se})",
                cov[i][j],
                law_cov[i][j]
            );
            let err = (cov[i][j] - SIGMA[i][j]).abs();
            assert!(
                err < 5.0 * se + disc,
                "cov {i}{j}: {} vs Sigma {}",
                cov[i][j],
                SIGMA[i][j]
            );
        }
    }
}

#[test]
fn euler_sampler_reproduces_the_gaussian() {
    check_sampler(1024, false, 1);
}

#[test]
fn heun_sampler_reproduces_the_gaussian() {
    check_sampler(80, true, 2);
}

/// A batch of random states and per-sample masks (each coordinate kept with probability 0.6).
fn random_state(seed: u64, n: usize, scale: f32) -> (Vec<f32>, Vec<f32>) {
    let mut rng = AmbientRng::new(seed);
    let mut x = vec![0.0f32; n * DIM];
    rng.fill_normal(&mut x);
    x.iter_mut().for_each(|v| *v *= scale);
    let m = (0..n * DIM)
        .map(|_| rng.bernoulli(0.6) as u8 as f32)
        .collect();
    (x, m)
}

/// `sum over the batch and k of || D(M_0 x) - D(M_k x) ||^2` in f64 with the exact
/// posterior mean, written independently of the core.
fn guidance_objective(x: &[f64], masks: &[Vec<f32>], s: f64) -> f64 {
    let mut total = 0.0;
    for (n, xn) in x.chunks(DIM).enumerate() {
        let den = |m: &[f32]| {
            let m: Vec<f64> = m[n * DIM..][..DIM].iter().map(|&v| v as f64).collect();
            let y: Vec<f64> = xn.iter().zip(&m).map(|(a, b)| a * b).collect();
            posterior_mean(&y, &m, s)
        };
        let d0 = den(&masks[0]);
        for mk in &masks[1..] {
            let dk = den(mk);
            total += (0..DIM).map(|i| (d0[i] - dk[i]).powi(2)).sum::<f64>();
        }
    }
    total
}

/// One reconstruction-guidance step on a copy of `x`.
fn guided_step(x: &[f32], masks: &mut [Vec<f32>], s: f32, s_next: f32, w: f32) -> Vec<f32> {
    let n = x.len() / DIM;
    let shape = shape(n);
    let mut x = x.to_vec();
    let mut bufs = vec![vec![0.0f32; shape.len()]; 6];
    let mut scratch: [SliceTensor; 6] = {
        let mut it = bufs.iter_mut().map(|b| t(shape, b));
        core::array::from_fn(|_| it.next().unwrap())
    };
    let masks: Vec<SliceTensor> = masks.iter_mut().map(|m| t(shape, m)).collect();
    reconstruction_guidance_step(
        &mut Gaussian,
        &mut t(shape, &mut x),
        &masks,
        s,
        s_next,
        w,
        &mut scratch,
    )
    .unwrap();
    x
}

fn euler_step(x: &[f32], mask: &mut [f32], s: f32, s_next: f32) -> Vec<f32> {
    let shape = shape(x.len() / DIM);
    let mut x = x.to_vec();
    let (mut b0, mut b1) = (vec![0.0f32; shape.len()], vec![0.0f32; shape.len()]);
    let mut scratch = [t(shape, &mut b0), t(shape, &mut b1)];
    fixed_mask_step(
        &mut Gaussian,
        &mut t(shape, &mut x),
        &t(shape, mask),
        s,
        s_next,
        &mut scratch,
    )
    .unwrap();
    x
}

#[test]
fn guidance_with_one_mask_is_the_euler_step() {
    let (x, m0) = random_state(5, 64, 2.0);
    let (s, s_next, w) = (1.3, 0.9, 0.7);
    let euler = euler_step(&x, &mut m0.clone(), s, s_next);
    assert_eq!(guided_step(&x, &mut [m0.clone()], s, s_next, w), euler);
    // A second mask equal to the first has a zero guidance term too.
    assert_eq!(
        guided_step(&x, &mut [m0.clone(), m0.clone()], s, s_next, w),
        euler
    );
    // The Euler step is the recurrence: x' = (s'/s) x + (1 - s'/s) D(M x) (f64 reference,
    // tolerance: the core takes ~4 f32 roundings of numbers below ~10, so 4 * 10 u = 2.4e-6).
    let r = (s_next / s) as f64;
    for (n, xn) in x.chunks(DIM).enumerate() {
        let m: Vec<f64> = m0[n * DIM..][..DIM].iter().map(|&v| v as f64).collect();
        let y: Vec<f64> = xn.iter().zip(&m).map(|(&a, b)| a as f64 * b).collect();
        let d = posterior_mean(&y, &m, s as f64);
        for i in 0..DIM {
            let want = r * xn[i] as f64 + (1.0 - r) * d[i];
            assert!(
                (euler[n * DIM + i] as f64 - want).abs() < 40.0 * U,
                "{n},{i}"
            );
        }
    }
    // With s' = 0 the step returns x_hat = D(M x, M, s).
    let last = euler_step(&x, &mut m0.clone(), s, 0.0);
    for (n, xn) in x.chunks(DIM).enumerate() {
        let m: Vec<f64> = m0[n * DIM..][..DIM].iter().map(|&v| v as f64).collect();
        let y: Vec<f64> = xn.iter().zip(&m).map(|(&a, b)| a as f64 * b).collect();
        let d = posterior_mean(&y, &m, s as f64);
        for i in 0..DIM {
            assert!((last[n * DIM + i] as f64 - d[i]).abs() < 40.0 * U);
        }
    }
}

/// The guided driver walks the schedule once, in order, and with one mask (guidance term
/// zero, see `guidance_with_one_mask_is_the_euler_step`) gives the fixed-mask Euler sampler's
/// samples bit for bit; with a second, different mask it moves them.
#[test]
fn guided_driver_with_one_mask_is_the_euler_sampler() {
    let (x0, mut m0) = random_state(9, 32, 3.0);
    let (_, mut m1) = random_state(10, 32, 1.0);
    let shape = shape(32);
    let schedule = EdmSchedule::with_steps(6).unwrap();
    let guided = |masks: &mut [Vec<f32>]| {
        let mut x = x0.clone();
        let mut bufs = vec![vec![0.0f32; shape.len()]; 6];
        let mut scratch: [SliceTensor; 6] = {
            let mut it = bufs.iter_mut().map(|b| t(shape, b));
            core::array::from_fn(|_| it.next().unwrap())
        };
        let masks: Vec<SliceTensor> = masks.iter_mut().map(|m| t(shape, m)).collect();
        let mut seen = Vec::new();
        sample_guided(
            &mut Gaussian,
            &mut t(shape, &mut x),
            &masks,
            &schedule,
            0.5,
            &mut scratch,
            |info: StepInfo| seen.push(info),
        )
        .unwrap();
        (x, seen)
    };
    let (got, seen) = guided(&mut [m0.clone()]);
    let want: Vec<StepInfo> = schedule
        .pairs()
        .map(|(step, sigma, sigma_next)| StepInfo {
            step,
            steps: 6,
            sigma,
            sigma_next,
        })
        .collect();
    assert_eq!(seen, want);
    let mut euler = x0.clone();
    for (_, s, s_next) in schedule.pairs() {
        euler = euler_step(&euler, &mut m0, s, s_next);
    }
    assert_eq!(got, euler);
    let (two, _) = guided(&mut [m0.clone(), std::mem::take(&mut m1)]);
    assert_ne!(two, euler);
}

/// The guidance gradient against central finite differences of `guidance_objective`, and the
/// guidance step against the Euler step minus `w` times that finite-difference gradient.
///
/// The objective is quadratic in x (the exact denoiser is affine), so a central difference
/// has no truncation error; its f64 rounding is ~1e-16 * objective / h ~ 1e-12 here.
/// The core works in f32: each denoiser output carries u relative error, each cotangent
/// `2 (D_0 - D_k)` about 6 u * max|D| absolute, the vector-Jacobian products multiply it by the
/// gain (row sums of |G| <= ~2 for this Sigma), and the K = 3 terms and their accumulation add a
/// few roundings of partial sums below ~4 K max|D|: overall below ~100 u * max|D| ~ 1e-5 for
/// max|D| ~ 2. We allow 2e-5 * max(1, max|D|).
#[test]
fn guidance_gradient_matches_finite_differences() {
    let n = 16;
    let (x, m0) = random_state(7, n, 1.5);
    let (_, m1) = random_state(8, n, 1.0);
    let (_, m2) = random_state(9, n, 1.0);
    let mut masks = vec![m0, m1, m2];
    let s = 0.7f32;
    let shape = shape(n);

    let mut grad = vec![0.0f32; shape.len()];
    let value = {
        let mut xs = x.clone();
        let mut bufs = vec![vec![0.0f32; shape.len()]; 5];
        let mut scratch: [SliceTensor; 5] = {
            let mut it = bufs.iter_mut().map(|b| t(shape, b));
            core::array::from_fn(|_| it.next().unwrap())
        };
        let mt: Vec<SliceTensor> = masks.iter_mut().map(|m| t(shape, m)).collect();
        guidance_gradient(
            &mut Gaussian,
            &t(shape, &mut xs),
            &mt,
            s,
            &mut t(shape, &mut grad),
            &mut scratch,
        )
        .unwrap()
    };

    let mut x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let objective = guidance_objective(&x64, &masks, s as f64);
    assert!(
        objective > 1.0,
        "the masks must disagree: objective {objective}"
    );
    // The returned value: a sum of positive squares of differences, each with ~6 u * max|D|
    // absolute error as above; 1e-5 relative is ample and still tests the value.
    assert!(
        (value - objective).abs() < 1e-5 * objective,
        "{value} vs {objective}"
    );

    let h = 0.01;
    let mut fd = vec![0.0f64; x.len()];
    for j in 0..x.len() {
        let keep = x64[j];
        x64[j] = keep + h;
        let up = guidance_objective(&x64, &masks, s as f64);
        x64[j] = keep - h;
        let down = guidance_objective(&x64, &masks, s as f64);
        x64[j] = keep;
        fd[j] = (up - down) / (2.0 * h);
    }
    let d_max = 2.0f64;
    let tol = 2e-5 * d_max;
    for j in 0..x.len() {
        assert!(
            (grad[j] as f64 - fd[j]).abs() < tol,
            "element {j}: {} vs {}",
            grad[j],
            fd[j]
        );
    }
    assert!(
        fd.iter().any(|g| g.abs() > 0.1),
        "the gradient must not be trivially small"
    );

    // The full step: Euler with M_0 minus w times the gradient.
    let (s_next, w) = (0.5f32, 0.3f32);
    let guided = guided_step(&x, &mut masks, s, s_next, w);
    let euler = euler_step(&x, &mut masks[0].clone(), s, s_next);
    for j in 0..x.len() {
        let want = euler[j] as f64 - w as f64 * fd[j];
        // The gradient's tolerance times w, plus two roundings of numbers below ~5.
        assert!(
            (guided[j] as f64 - want).abs() < w as f64 * tol + 10.0 * U,
            "element {j}"
        );
    }
}

#[test]
fn heun_step_matches_the_edm_recurrence() {
    // One Heun step with the exact affine denoiser: e' = (I + h/2 (G + G' (I + h G))) e,
    // e = x - mu (the same matrices as `discrete_law`); f32 roundings of numbers ~ 5: 1e-5.
    let (x, _) = random_state(3, 32, 3.0);
    let shape = shape(32);
    let (s, s_next) = (2.0f32, 1.2f32);
    let mut xs = x.clone();
    let mut mask = vec![1.0f32; shape.len()];
    let mut bufs = vec![vec![0.0f32; shape.len()]; 3];
    let [b0, b1, b2] = &mut bufs[..] else {
        unreachable!()
    };
    let mut scratch = [t(shape, b0), t(shape, b1), t(shape, b2)];
    fixed_mask_heun_step(
        &mut Gaussian,
        &mut t(shape, &mut xs),
        &t(shape, &mut mask),
        s,
        s_next,
        &mut scratch,
    )
    .unwrap();
    let (s, s_next) = (s as f64, s_next as f64);
    let h = s_next - s;
    let g = slope_matrix(s);
    let g2 = slope_matrix(s_next);
    for (n, xn) in x.chunks(DIM).enumerate() {
        let e: Vec<f64> = (0..DIM).map(|i| xn[i] as f64 - MU[i]).collect();
        let d: Vec<f64> = (0..DIM)
            .map(|i| (0..DIM).map(|k| g[i][k] * e[k]).sum())
            .collect();
        let ee: Vec<f64> = (0..DIM).map(|i| e[i] + h * d[i]).collect();
        let d2: Vec<f64> = (0..DIM)
            .map(|i| (0..DIM).map(|k| g2[i][k] * ee[k]).sum())
            .collect();
        for i in 0..DIM {
            let want = MU[i] + e[i] + 0.5 * h * (d[i] + d2[i]);
            assert!((xs[n * DIM + i] as f64 - want).abs() < 1e-5, "{n},{i}");
        }
    }
}

#[test]
fn restoration_keeps_measurements_and_fills_the_conditional_mean() {
    let n = 32;
    let shape = shape(n);
    let (x0, a) = random_state(11, n, 1.0);
    // The measurement carries junk where A = 0: restoration must not look at it.
    let mut y: Vec<f32> = x0
        .iter()
        .zip(&a)
        .map(|(&v, &m)| if m == 1.0 { v } else { 1e3 })
        .collect();
    let s_r = 0.1f32;
    let (mut out, mut scratch) = (vec![0.0f32; shape.len()], vec![0.0f32; shape.len()]);
    let mut a_t = a.clone();
    restore_single_step(
        &mut Gaussian,
        &t(shape, &mut y),
        &t(shape, &mut a_t),
        s_r,
        &mut t(shape, &mut out),
        &mut t(shape, &mut scratch),
    )
    .unwrap();
    for i in 0..n {
        let m: Vec<f64> = a[i * DIM..][..DIM].iter().map(|&v| v as f64).collect();
        let yo: Vec<f64> = x0[i * DIM..][..DIM]
            .iter()
            .zip(&m)
            .map(|(&v, b)| v as f64 * b)
            .collect();
        let want = posterior_mean(&yo, &m, s_r as f64);
        for j in 0..DIM {
            let k = i * DIM + j;
            if a[k] == 1.0 {
                assert_eq!(out[k], y[k], "measured pixel {k} must be kept exactly");
            } else {
                // One f32 rounding of a number below ~5 (5 u), plus f64 noise: 10 u.
                assert!((out[k] as f64 - want[j]).abs() < 10.0 * U, "pixel {k}");
            }
        }
    }
    assert!(a.contains(&0.0) && a.contains(&1.0));
}

#[test]
fn bad_sampler_inputs_are_typed_errors() {
    let shape = shape(4);
    let (mut x, mut m) = random_state(13, 4, 1.0);
    let (mut b0, mut b1) = (vec![0.0f32; shape.len()], vec![0.0f32; shape.len()]);
    let mut step = |x: &mut [f32], s: f32, s_next: f32| {
        let mut scratch = [t(shape, &mut b0), t(shape, &mut b1)];
        fixed_mask_step(
            &mut Gaussian,
            &mut t(shape, x),
            &t(shape, &mut m),
            s,
            s_next,
            &mut scratch,
        )
    };
    for (s, s_next) in [
        (0.0, 0.0),
        (-1.0, 0.5),
        (f32::NAN, 0.5),
        (1.0, -0.1),
        (1.0, f32::INFINITY),
    ] {
        assert!(
            matches!(step(&mut x, s, s_next), Err(CoreError::InvalidParameter(_))),
            "{s} {s_next}"
        );
    }
    x[2] = f32::NAN;
    assert_eq!(
        step(&mut x, 1.0, 0.5),
        Err(CoreError::NonFinite("sampler state"))
    );

    // Guidance needs at least one mask and a finite weight.
    let (mut x, _) = random_state(14, 4, 1.0);
    let mut bufs = vec![vec![0.0f32; shape.len()]; 6];
    let mut scratch: [SliceTensor; 6] = {
        let mut it = bufs.iter_mut().map(|b| t(shape, b));
        core::array::from_fn(|_| it.next().unwrap())
    };
    let mut xt = t(shape, &mut x);
    let none: [SliceTensor; 0] = [];
    assert!(matches!(
        reconstruction_guidance_step(&mut Gaussian, &mut xt, &none, 1.0, 0.5, 0.1, &mut scratch),
        Err(CoreError::InvalidParameter(_))
    ));
    let mut m1 = vec![1.0f32; shape.len()];
    let one = [t(shape, &mut m1)];
    assert!(matches!(
        reconstruction_guidance_step(
            &mut Gaussian,
            &mut xt,
            &one,
            1.0,
            0.5,
            f32::NAN,
            &mut scratch
        ),
        Err(CoreError::InvalidParameter(_))
    ));

    // Restoration needs a positive sigma.
    let (mut y, mut a) = random_state(15, 4, 1.0);
    let (mut out, mut sc) = (vec![0.0f32; shape.len()], vec![0.0f32; shape.len()]);
    assert!(matches!(
        restore_single_step(
            &mut Gaussian,
            &t(shape, &mut y),
            &t(shape, &mut a),
            0.0,
            &mut t(shape, &mut out),
            &mut t(shape, &mut sc)
        ),
        Err(CoreError::InvalidParameter(_))
    ));
}

/// `sample` runs the sampler it is given: the fixed-mask sampler (Euler and Heun) on the first
/// mask, guidance on all of them, bit for bit as the drivers called directly; no mask is an
/// error. `StepInfo::in_run` numbers a run's steps after the runs before it.
#[test]
fn sample_dispatches_to_the_drivers() {
    let (x0, m0) = random_state(11, 16, 3.0);
    let (_, m1) = random_state(12, 16, 1.0);
    let shape = shape(16);
    let schedule = EdmSchedule::with_steps(5).unwrap();
    // Runs `f` on a copy of x0, the masks and six scratch tensors; returns x.
    type Body<'f> =
        dyn for<'a> FnMut(&mut SliceTensor<'a>, &[SliceTensor<'a>], &mut [SliceTensor<'a>; 6]) + 'f;
    let with = |masks: &[Vec<f32>], f: &mut Body| {
        let mut x = x0.clone();
        let mut bufs = vec![vec![0.0f32; shape.len()]; 6];
        let mut it = bufs.iter_mut().map(|b| t(shape, b));
        let mut scratch: [SliceTensor; 6] = core::array::from_fn(|_| it.next().unwrap());
        let mut mbufs = masks.to_vec();
        let masks: Vec<SliceTensor> = mbufs.iter_mut().map(|m| t(shape, m)).collect();
        f(&mut t(shape, &mut x), &masks, &mut scratch);
        x
    };
    let both = [m0.clone(), m1.clone()];
    for heun in [false, true] {
        let mut steps = 0;
        let got = with(&both, &mut |x, masks, scratch| {
            let sampler = Sampler::FixedMask { heun };
            sample(&mut Gaussian, x, masks, &schedule, sampler, scratch, |_| {
                steps += 1
            })
            .unwrap()
        });
        let want = with(&both, &mut |x, masks, scratch| {
            let three: &mut [SliceTensor; 3] = (&mut scratch[..3]).try_into().unwrap();
            sample_fixed_mask(&mut Gaussian, x, &masks[0], &schedule, heun, three, |_| {}).unwrap()
        });
        assert_eq!(got, want, "heun {heun}: the first mask only");
        assert_eq!(steps, 5);
    }
    let got = with(&both, &mut |x, masks, scratch| {
        let sampler = Sampler::Guided { weight: 0.5 };
        sample(&mut Gaussian, x, masks, &schedule, sampler, scratch, |_| {}).unwrap()
    });
    let want = with(&both, &mut |x, masks, scratch| {
        sample_guided(&mut Gaussian, x, masks, &schedule, 0.5, scratch, |_| {}).unwrap()
    });
    assert_eq!(got, want, "guidance with both masks");
    with(&[], &mut |x, masks, scratch| {
        let sampler = Sampler::FixedMask { heun: false };
        assert_eq!(
            sample(&mut Gaussian, x, masks, &schedule, sampler, scratch, |_| {}),
            Err(CoreError::InvalidParameter("the sampler needs a mask"))
        );
    });
    let info = StepInfo {
        step: 3,
        steps: 5,
        sigma: 1.0,
        sigma_next: 0.5,
    };
    let want = StepInfo {
        step: 13,
        steps: 20,
        ..info
    };
    assert_eq!(info.in_run(2, 4), want);
}
