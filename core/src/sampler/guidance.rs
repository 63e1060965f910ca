//! Reconstruction guidance (paper eq. 3.4): K masks `M_0..M_{K-1}`, the Euler step with the
//! model given `M_0`, pulled towards agreement of the model's reconstructions under the other
//! masks:
//! ```text
//! x <- (s'/s) x + (1 - s'/s) D(M_0 x, M_0, s) - w grad_x sum_k || D(M_0 x, M_0, s) - D(M_k x, M_k, s) ||^2
//! ```
//! The gradient goes through the denoiser's vector-Jacobian product and the mask multiply
//! (`grad_x <c, D(M x)> = M * vjp(c)`):
//! `grad = M_0 vjp_0(2 sum_k (D_0 - D_k)) - sum_k M_k vjp_k(2 (D_0 - D_k))`,
//! K forward and K vector-Jacobian evaluations (none of the latter when K = 1).

use super::fixed_mask::masked_denoise;
use super::{check_finite, check_step};
use crate::denoiser::Denoiser;
use crate::error::CoreError;
use crate::tensor::Tensor;

/// `grad <- grad_x sum_k || D(M_0 x, M_0, s) - D(M_k x, M_k, s) ||^2`; returns that sum.
/// `masks` holds `M_0..M_{K-1}`, `K >= 1`. Needs five scratch tensors.
pub fn guidance_gradient<T: Tensor, D: Denoiser<T>>(
    denoiser: &mut D,
    x: &T,
    masks: &[T],
    sigma: f32,
    grad: &mut T,
    scratch: &mut [T; 5],
) -> Result<f64, CoreError> {
    check_step(sigma, 0.0)?;
    let [y, d0, dk, cot, vjp] = scratch;
    gradient_into(denoiser, x, masks, sigma, grad, [y, d0, dk, cot, vjp])
}

/// One reconstruction-guidance step from `sigma` to `sigma_next` with guidance weight
/// `weight` (finite): the Euler step of [`super::fixed_mask_step`] with mask `M_0`, minus
/// `weight` times [`guidance_gradient`]. With K = 1 it is exactly that Euler step.
/// Needs six scratch tensors.
#[allow(clippy::too_many_arguments)]
pub fn reconstruction_guidance_step<T: Tensor, D: Denoiser<T>>(
    denoiser: &mut D,
    x: &mut T,
    masks: &[T],
    sigma: f32,
    sigma_next: f32,
    weight: f32,
    scratch: &mut [T; 6],
) -> Result<(), CoreError> {
    check_step(sigma, sigma_next)?;
    if !weight.is_finite() {
        return Err(CoreError::InvalidParameter(
            "guidance weight must be finite",
        ));
    }
    let [y, d0, dk, cot, vjp, grad] = scratch;
    gradient_into(denoiser, x, masks, sigma, grad, [y, &mut *d0, dk, cot, vjp])?;
    let ratio = sigma_next / sigma;
    x.axpby(1.0 - ratio, d0, ratio);
    x.axpby(-weight, grad, 1.0);
    check_finite(x, "sampler state")
}

/// The gradient of [`guidance_gradient`], leaving `D(M_0 x, M_0, s)` in `d0`.
fn gradient_into<T: Tensor, D: Denoiser<T>>(
    denoiser: &mut D,
    x: &T,
    masks: &[T],
    sigma: f32,
    grad: &mut T,
    [y, d0, dk, cot, vjp]: [&mut T; 5],
) -> Result<f64, CoreError> {
    let Some((m0, others)) = masks.split_first() else {
        return Err(CoreError::InvalidParameter(
            "reconstruction guidance needs at least one mask",
        ));
    };
    masked_denoise(denoiser, x, m0, sigma, y, d0)?;
    grad.fill(0.0);
    cot.fill(0.0);
    let mut value = 0.0f64;
    for mk in others {
        // dk <- 2 (D_0 - D_k), the cotangent of both terms of || D_0 - D_k ||^2.
        masked_denoise(denoiser, x, mk, sigma, y, dk)?;
        dk.axpby(2.0, d0, -2.0);
        value += dk.sum_sq() / 4.0;
        cot.axpby(1.0, dk, 1.0);
        // grad -= M_k vjp_k(2 (D_0 - D_k)), with y = M_k x still in place.
        denoiser.denoise_vjp(y, mk, sigma, dk, vjp)?;
        vjp.mul(mk);
        grad.axpby(-1.0, vjp, 1.0);
    }
    if !others.is_empty() {
        // grad += M_0 vjp_0(2 sum_k (D_0 - D_k)).
        y.copy_from(x);
        y.mul(m0);
        denoiser.denoise_vjp(y, m0, sigma, cot, vjp)?;
        vjp.mul(m0);
        grad.axpby(1.0, vjp, 1.0);
    }
    check_finite(grad, "guidance gradient")?;
    Ok(value)
}
