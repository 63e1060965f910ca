//! DPS, diffusion posterior sampling (Chung et al., ICLR 2023), with a clean-trained model as
//! the baseline that solves the inverse problem `y = A x0` at sampling time. Each step of an
//! EDM schedule `s_0 > ... > s_N = 0` does
//!
//! ```text
//! x_hat0 = D(x, 1, s)                       (the model given every pixel: mask of ones)
//! r      = y - A x_hat0                     (per sample)
//! x     <- (s'/s) x + (1 - s'/s) x_hat0     (EDM's Euler step of the probability-flow ODE)
//!          - zeta grad_x ||r||              (the DPS correction)
//! ```
//!
//! Step size: like the DPS authors' code (`norm = linalg.norm(y - A x_hat0)`, then
//! `x -= scale * grad(norm)`) the gradient is of the norm, not the squared norm, with a constant
//! `zeta`. This is the paper's `zeta_i = zeta' / ||y - A x_hat0||` applied to the gradient of
//! the squared norm, `zeta grad ||r|| = (zeta / (2 ||r||)) grad ||r||^2`, i.e. `zeta' = zeta / 2`.
//! The norm is taken per sample, so a sample's path does not depend on the rest of its batch
//! (the authors' code takes it over the batch, the same thing at batch size 1). A sample whose
//! residual is exactly zero gets no correction. Our state is EDM's `x = x0 + s eps`, not DDPM's
//! `sqrt(abar) x0 + sqrt(1 - abar) eps`: a constant `zeta` on EDM's state is a step that
//! shrinks with the noise level compared with the paper's; [`DpsStepSize::VpEquivalent`]
//! (`zeta (1 + s^2)`) is the paper's step carried over exactly. Tune `zeta` on held-out data.
//!
//! The gradient is `grad_x ||r|| = J^T c` with cotangent `c = -A r / ||r||` and `J` the
//! denoiser's Jacobian, one `denoise_vjp` call. NFE counts both kinds of calls: a DPS sample
//! costs N forward and N vector-Jacobian evaluations, NFE = 2N (a vector-Jacobian product
//! costs about three forward passes on the CPU host).

use ambient_core::schedule::EdmSchedule;
use ambient_core::{Denoiser, Tensor};
use ndarray::{Array4, Axis};

use super::EvalError;
use crate::tensor_nd::NdTensor;

/// Denoiser calls made by a DPS run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DpsCalls {
    /// `denoise` calls.
    pub forward: usize,
    /// `denoise_vjp` calls.
    pub vjp: usize,
}

impl DpsCalls {
    /// Network function evaluations: forward plus vector-Jacobian calls.
    pub fn nfe(&self) -> usize {
        self.forward + self.vjp
    }
}

/// Per-sample Euclidean norms of an NCHW tensor.
fn sample_norms(t: &Array4<f32>) -> Vec<f64> {
    t.axis_iter(Axis(0))
        .map(|s| s.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt())
        .collect()
}

/// `x_hat <- D(x, 1, sigma)` and `grad <- grad_x sum_n ||y_n - A_n x_hat_n||`; returns the
/// per-sample residual norms `||y_n - A_n x_hat_n||`. `y` is the measurement (zero where `A`
/// is), `a` the mask `A` (0 or 1). Two denoiser calls.
pub fn dps_gradient<D: Denoiser<NdTensor>>(
    denoiser: &mut D,
    x: &NdTensor,
    y: &NdTensor,
    a: &NdTensor,
    sigma: f32,
    x_hat: &mut NdTensor,
    grad: &mut NdTensor,
) -> Result<Vec<f64>, EvalError> {
    let shape = x.shape();
    for (what, t) in [
        ("measurement", y),
        ("mask", a),
        ("x_hat", &*x_hat),
        ("grad", &*grad),
    ] {
        if t.shape() != shape {
            return Err(EvalError::Shape(format!(
                "DPS: {what} is {:?} but the state is {shape:?}",
                t.shape()
            )));
        }
    }
    let ones = NdTensor(Array4::ones(x.0.dim()));
    denoiser.denoise(x, &ones, sigma, x_hat)?;
    // cot <- A x_hat - y = -r (zero where A is zero, since y is too).
    let mut cot = NdTensor(x_hat.0.clone());
    cot.mul(a);
    cot.axpby(-1.0, y, 1.0);
    let norms = sample_norms(&cot.0);
    let inv: Vec<f32> = norms
        .iter()
        .map(|&n| if n > 0.0 { (1.0 / n) as f32 } else { 0.0 })
        .collect();
    cot.scale_per_sample(&inv);
    denoiser.denoise_vjp(x, &ones, sigma, &cot, grad)?;
    if !grad.sum_sq().is_finite() {
        return Err(EvalError::NonFinite("DPS gradient".into()));
    }
    Ok(norms)
}

/// One DPS step from `sigma` to `sigma_next` (see the module doc); returns the per-sample
/// residual norms at `x_hat0`.
pub fn dps_step<D: Denoiser<NdTensor>>(
    denoiser: &mut D,
    x: &mut NdTensor,
    y: &NdTensor,
    a: &NdTensor,
    (sigma, sigma_next): (f32, f32),
    zeta: f32,
) -> Result<Vec<f64>, EvalError> {
    if !(sigma.is_finite() && sigma > 0.0 && sigma_next.is_finite() && sigma_next >= 0.0) {
        return Err(EvalError::Invalid(format!(
            "DPS step from sigma {sigma} to {sigma_next}"
        )));
    }
    if !zeta.is_finite() {
        return Err(EvalError::Invalid(format!(
            "DPS zeta {zeta} must be finite"
        )));
    }
    let mut x_hat = NdTensor(Array4::zeros(x.0.dim()));
    let mut grad = NdTensor(Array4::zeros(x.0.dim()));
    let norms = dps_gradient(denoiser, x, y, a, sigma, &mut x_hat, &mut grad)?;
    let ratio = sigma_next / sigma;
    x.axpby(1.0 - ratio, &x_hat, ratio);
    x.axpby(-zeta, &grad, 1.0);
    if !x.sum_sq().is_finite() {
        return Err(EvalError::NonFinite("DPS state".into()));
    }
    Ok(norms)
}

/// How the DPS step size varies along the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpsStepSize {
    /// `zeta` at every step, as written for EDM's state.
    Constant,
    /// `zeta (1 + s^2)`: DPS's step `zeta` on the variance-preserving state carried over to
    /// EDM's. With `x_vp = sqrt(abar) x` and `s^2 = (1 - abar) / abar`, a step
    /// `dx_vp = -zeta grad_{x_vp}` is `dx = -zeta (1 / abar) grad_x = -zeta (1 + s^2) grad_x`,
    /// so the paper's `zeta` values apply unchanged.
    VpEquivalent,
}

impl DpsStepSize {
    /// The step size at noise level `sigma`.
    pub fn at(&self, zeta: f32, sigma: f32) -> f32 {
        match self {
            DpsStepSize::Constant => zeta,
            DpsStepSize::VpEquivalent => zeta * (1.0 + sigma * sigma),
        }
    }
}

/// Runs DPS over `schedule` from `x` (the caller draws `x = s_max * N(0, I)`), leaving the
/// posterior samples in `x`, with step size `step_size.at(zeta, s_i)` at step `i`;
/// `progress(step, mean residual norm)` after each step. Returns the denoiser calls made
/// (NFE = 2N).
#[allow(clippy::too_many_arguments)]
pub fn dps_sample<D: Denoiser<NdTensor>>(
    denoiser: &mut D,
    x: &mut NdTensor,
    y: &NdTensor,
    a: &NdTensor,
    schedule: &EdmSchedule,
    zeta: f32,
    step_size: DpsStepSize,
    mut progress: impl FnMut(usize, f64),
) -> Result<DpsCalls, EvalError> {
    let mut calls = DpsCalls::default();
    for (step, sigma, sigma_next) in schedule.pairs() {
        let z = step_size.at(zeta, sigma);
        let norms = dps_step(denoiser, x, y, a, (sigma, sigma_next), z)?;
        calls.forward += 1;
        calls.vjp += 1;
        progress(step, norms.iter().sum::<f64>() / norms.len().max(1) as f64);
    }
    Ok(calls)
}
