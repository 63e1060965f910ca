//! DPS with denoisers whose answers are known in closed form:
//! - the exact posterior-mean denoiser of a Gaussian prior N(mu, c^2 I) per pixel,
//!   `D(x, 1, s) = (c^2 x + s^2 mu) / (c^2 + s^2)`, whose Jacobian is `k I`,
//!   `k = c^2 / (c^2 + s^2)`: one DPS step by hand, zeta = 0 is the plain Euler sampler, the
//!   per-sample norm makes samples independent of their batch, NFE = 2N, and the correction
//!   pulls the samples towards the measurement;
//! - a nonlinear denoiser `D(x)_i = tanh(x_i) + 0.3 mean(x)` (per sample) for a
//!   finite-difference check of the DPS gradient `grad_x sum_n ||y_n - A_n D(x)_n||`.

use ambient_core::sampler::sample_fixed_mask;
use ambient_core::schedule::EdmSchedule;
use ambient_core::AmbientRng;
use ambient_core::{CoreError, Denoiser};
use ambient_cpu::eval::dps::{dps_gradient, dps_sample, dps_step, DpsStepSize};
use ambient_cpu::tensor_nd::NdTensor;
use ndarray::{Array4, Axis};

const MU: f32 = 0.2;
const C2: f32 = 0.25;

/// The exact denoiser of the prior N(MU, C2 I); counts its calls.
#[derive(Default)]
struct GaussianPrior {
    forward: usize,
    vjp: usize,
}

impl Denoiser<NdTensor> for GaussianPrior {
    fn denoise(
        &mut self,
        y: &NdTensor,
        m: &NdTensor,
        s: f32,
        out: &mut NdTensor,
    ) -> Result<(), CoreError> {
        assert!(
            m.0.iter().all(|&v| v == 1.0),
            "DPS gives the model every pixel"
        );
        self.forward += 1;
        out.0 = y.0.mapv(|v| (C2 * v + s * s * MU) / (C2 + s * s));
        Ok(())
    }
    fn denoise_vjp(
        &mut self,
        _y: &NdTensor,
        _m: &NdTensor,
        s: f32,
        c: &NdTensor,
        g: &mut NdTensor,
    ) -> Result<(), CoreError> {
        self.vjp += 1;
        g.0 = c.0.mapv(|v| v * C2 / (C2 + s * s));
        Ok(())
    }
}

/// `D(x)_i = tanh(x_i) + 0.3 mean_j(x_j)` over each sample.
struct Nonlinear;

impl Denoiser<NdTensor> for Nonlinear {
    fn denoise(
        &mut self,
        y: &NdTensor,
        _m: &NdTensor,
        _s: f32,
        out: &mut NdTensor,
    ) -> Result<(), CoreError> {
        let mut o = y.0.mapv(f32::tanh);
        for (mut os, ys) in o.axis_iter_mut(Axis(0)).zip(y.0.axis_iter(Axis(0))) {
            let mean = ys.mean().unwrap();
            os.mapv_inplace(|v| v + 0.3 * mean);
        }
        out.0 = o;
        Ok(())
    }
    fn denoise_vjp(
        &mut self,
        y: &NdTensor,
        _m: &NdTensor,
        _s: f32,
        c: &NdTensor,
        g: &mut NdTensor,
    ) -> Result<(), CoreError> {
        let mut out = Array4::zeros(y.0.dim());
        for ((mut gs, ys), cs) in out
            .axis_iter_mut(Axis(0))
            .zip(y.0.axis_iter(Axis(0)))
            .zip(c.0.axis_iter(Axis(0)))
        {
            let csum: f32 = cs.sum();
            let p = ys.len() as f32;
            ndarray::Zip::from(&mut gs)
                .and(&ys)
                .and(&cs)
                .for_each(|g, &x, &c| {
                    let t = x.tanh();
                    *g = c * (1.0 - t * t) + 0.3 * csum / p;
                });
        }
        g.0 = out;
        Ok(())
    }
}

fn random(d: (usize, usize, usize, usize), scale: f32, seed: u64) -> NdTensor {
    let mut rng = AmbientRng::new(seed);
    NdTensor(Array4::from_shape_fn(d, |_| scale * rng.normal()))
}

/// A measurement `y = A x0` and its mask (about half the pixels observed).
fn measurement(d: (usize, usize, usize, usize), seed: u64) -> (NdTensor, NdTensor) {
    let mut rng = AmbientRng::new(seed);
    let a = Array4::from_shape_fn(d, |_| rng.bernoulli(0.5) as u8 as f32);
    let x0 = Array4::from_shape_fn(d, |_| (0.7 * rng.normal()).clamp(-1.0, 1.0));
    (NdTensor(&x0 * &a), NdTensor(a))
}

#[test]
fn one_step_by_hand() {
    let d = (2, 1, 3, 3);
    let x = random(d, 2.0, 1);
    let (y, a) = measurement(d, 2);
    let (s, s_next, zeta) = (2.0f32, 1.2f32, 0.7f32);
    let mut got = x.clone();
    let norms = dps_step(
        &mut GaussianPrior::default(),
        &mut got,
        &y,
        &a,
        (s, s_next),
        zeta,
    )
    .unwrap();
    let k = C2 as f64 / (C2 as f64 + (s as f64).powi(2));
    let ratio = s_next as f64 / s as f64;
    assert_eq!(norms.len(), 2);
    for (n, &got_norm) in norms.iter().enumerate() {
        let xs = x.0.index_axis(Axis(0), n);
        let x_hat: Vec<f64> = xs
            .iter()
            .map(|&v| k * v as f64 + (1.0 - k) * MU as f64)
            .collect();
        let r: Vec<f64> =
            y.0.index_axis(Axis(0), n)
                .iter()
                .zip(a.0.index_axis(Axis(0), n).iter())
                .zip(&x_hat)
                .map(|((&y, &a), &xh)| y as f64 - a as f64 * xh)
                .collect();
        let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((got_norm - norm).abs() < 1e-5 * norm);
        for (i, (&xv, &xh)) in xs.iter().zip(&x_hat).enumerate() {
            // grad ||r|| = J^T (-A r / ||r||) = -k A r / ||r||; A r = r (r is 0 off A).
            let grad = -k * r[i] / norm;
            let want = ratio * xv as f64 + (1.0 - ratio) * xh - zeta as f64 * grad;
            let g = got.0.index_axis(Axis(0), n).iter().nth(i).copied().unwrap() as f64;
            // f32 arithmetic on O(2) values: a few ulps, 1e-5 is ample.
            assert!(
                (g - want).abs() < 1e-5,
                "sample {n} pixel {i}: {g} vs {want}"
            );
        }
    }
}

#[test]
fn zeta_zero_is_the_euler_sampler_and_nfe_is_2n() {
    let d = (3, 1, 4, 4);
    let schedule = EdmSchedule::with_steps(6).unwrap();
    let x0 = random(d, 80.0, 3);
    let (y, a) = measurement(d, 4);
    let mut den = GaussianPrior::default();
    let mut x = x0.clone();
    let calls = dps_sample(
        &mut den,
        &mut x,
        &y,
        &a,
        &schedule,
        0.0,
        DpsStepSize::VpEquivalent,
        |_, _| {},
    )
    .unwrap();
    assert_eq!((calls.forward, calls.vjp, calls.nfe()), (6, 6, 12));
    assert_eq!((den.forward, den.vjp), (6, 6));
    let mut euler = x0.clone();
    let ones = NdTensor(Array4::ones(d));
    let z = || NdTensor(Array4::zeros(d));
    let mut scratch = [z(), z(), z()];
    sample_fixed_mask(
        &mut GaussianPrior::default(),
        &mut euler,
        &ones,
        &schedule,
        false,
        &mut scratch,
        |_| {},
    )
    .unwrap();
    assert_eq!(x.0, euler.0);
}

#[test]
fn samples_do_not_depend_on_their_batch() {
    let d = (2, 1, 4, 4);
    let schedule = EdmSchedule::with_steps(5).unwrap();
    let x0 = random(d, 80.0, 5);
    let (y, a) = measurement(d, 6);
    let mut both = x0.clone();
    dps_sample(
        &mut GaussianPrior::default(),
        &mut both,
        &y,
        &a,
        &schedule,
        0.5,
        DpsStepSize::VpEquivalent,
        |_, _| {},
    )
    .unwrap();
    for n in 0..2 {
        let one = |t: &NdTensor| NdTensor(t.0.slice(ndarray::s![n..n + 1, .., .., ..]).to_owned());
        let mut alone = one(&x0);
        dps_sample(
            &mut GaussianPrior::default(),
            &mut alone,
            &one(&y),
            &one(&a),
            &schedule,
            0.5,
            DpsStepSize::VpEquivalent,
            |_, _| {},
        )
        .unwrap();
        assert_eq!(alone.0, one(&both).0, "sample {n}");
    }
}

#[test]
fn the_correction_pulls_towards_the_measurement() {
    // With zeta = 0 the sample ignores y; with zeta > 0 its observed pixels must end much
    // closer to y: the check asks for at least half of the residual to go.
    let d = (4, 1, 6, 6);
    let schedule = EdmSchedule::with_steps(20).unwrap();
    let x0 = random(d, 80.0, 7);
    let (y, a) = measurement(d, 8);
    let residual = |x: &NdTensor| ((&x.0 * &a.0) - &y.0).mapv(|v| v * v).sum().sqrt();
    let mut free = x0.clone();
    dps_sample(
        &mut GaussianPrior::default(),
        &mut free,
        &y,
        &a,
        &schedule,
        0.0,
        DpsStepSize::VpEquivalent,
        |_, _| {},
    )
    .unwrap();
    let mut guided = x0.clone();
    dps_sample(
        &mut GaussianPrior::default(),
        &mut guided,
        &y,
        &a,
        &schedule,
        0.3,
        DpsStepSize::Constant,
        |_, _| {},
    )
    .unwrap();
    let (rf, rg) = (residual(&free), residual(&guided));
    eprintln!("residual ||y - A x||: zeta 0 -> {rf:.4}, zeta 0.3 -> {rg:.4}");
    assert!(rg < 0.5 * rf, "{rg} vs {rf}");
}

#[test]
fn gradient_matches_finite_differences() {
    // F(x) = sum_n ||y_n - A_n D(x)_n||, evaluated in f64 by the test's own formula; central
    // differences with h = 1e-3 err by h^2/6 |F'''| ~ 1e-7 (F is smooth away from r = 0); the
    // analytic gradient comes through f32 arithmetic (relative 1e-6 of O(1) values). We allow
    // 1e-4.
    let d = (2, 1, 3, 3);
    let x = random(d, 0.8, 9);
    let (y, a) = measurement(d, 10);
    let f = |x: &Array4<f64>| -> f64 {
        let mut total = 0.0;
        for n in 0..2 {
            let xs = x.index_axis(Axis(0), n);
            let mean = xs.mean().unwrap();
            let r2: f64 = xs
                .iter()
                .zip(y.0.index_axis(Axis(0), n).iter())
                .zip(a.0.index_axis(Axis(0), n).iter())
                .map(|((&xv, &yv), &av)| {
                    let dv = xv.tanh() + 0.3 * mean;
                    (yv as f64 - av as f64 * dv).powi(2)
                })
                .sum();
            total += r2.sqrt();
        }
        total
    };
    let mut x_hat = NdTensor(Array4::zeros(d));
    let mut grad = NdTensor(Array4::zeros(d));
    dps_gradient(&mut Nonlinear, &x, &y, &a, 1.0, &mut x_hat, &mut grad).unwrap();
    let x64 = x.0.mapv(|v| v as f64);
    let h = 1e-3;
    let mut largest = 0.0f64;
    for (idx, &g) in grad.0.indexed_iter() {
        let (mut p, mut m) = (x64.clone(), x64.clone());
        p[idx] += h;
        m[idx] -= h;
        let fd = (f(&p) - f(&m)) / (2.0 * h);
        assert!((g as f64 - fd).abs() < 1e-4, "{idx:?}: {g} vs {fd}");
        largest = largest.max(fd.abs());
    }
    assert!(largest > 0.1, "gradient too small to test: {largest}");
}

#[test]
fn vp_equivalent_step_size_is_zeta_times_one_plus_sigma_squared() {
    // dps_sample with the VP-equivalent size equals dps_step by hand with zeta (1 + s_i^2).
    let d = (2, 1, 3, 3);
    let schedule = EdmSchedule::new(3, 0.5, 4.0, 7.0).unwrap();
    let x0 = random(d, 4.0, 11);
    let (y, a) = measurement(d, 12);
    let zeta = 0.05f32;
    let mut got = x0.clone();
    dps_sample(
        &mut GaussianPrior::default(),
        &mut got,
        &y,
        &a,
        &schedule,
        zeta,
        DpsStepSize::VpEquivalent,
        |_, _| {},
    )
    .unwrap();
    let mut want = x0.clone();
    for (_, s, s_next) in schedule.pairs() {
        dps_step(
            &mut GaussianPrior::default(),
            &mut want,
            &y,
            &a,
            (s, s_next),
            zeta * (1.0 + s * s),
        )
        .unwrap();
    }
    assert_eq!(got.0, want.0);
    // And it is not the constant size (the check can fail).
    let mut constant = x0.clone();
    dps_sample(
        &mut GaussianPrior::default(),
        &mut constant,
        &y,
        &a,
        &schedule,
        zeta,
        DpsStepSize::Constant,
        |_, _| {},
    )
    .unwrap();
    assert_ne!(constant.0, want.0);
}
