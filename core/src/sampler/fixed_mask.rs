//! The fixed-mask sampler's step (paper eq. 3.3): the model is always given the same mask
//! `M`, `x_hat = D(M x, M, s_i)`, and the probability-flow ODE is stepped with EDM's Euler
//! update `x <- (s_{i+1}/s_i) x + (1 - s_{i+1}/s_i) x_hat`, optionally with EDM's Heun
//! correction.

use super::{check_finite, check_step};
use crate::denoiser::Denoiser;
use crate::error::CoreError;
use crate::tensor::Tensor;

/// One Euler step from `sigma` to `sigma_next`:
/// `x <- (s'/s) x + (1 - s'/s) D(M x, M, s)`; with `s' = 0` it returns `x_hat` exactly.
/// Needs two scratch tensors.
pub fn fixed_mask_step<T: Tensor, D: Denoiser<T>>(
    denoiser: &mut D,
    x: &mut T,
    mask: &T,
    sigma: f32,
    sigma_next: f32,
    scratch: &mut [T; 2],
) -> Result<(), CoreError> {
    let [y, x_hat] = scratch;
    euler(denoiser, x, mask, sigma, sigma_next, y, x_hat)
}

/// [`fixed_mask_step`] on named scratch tensors; leaves `x_hat = D(M x, M, s)`.
pub(super) fn euler<T: Tensor, D: Denoiser<T>>(
    denoiser: &mut D,
    x: &mut T,
    mask: &T,
    sigma: f32,
    sigma_next: f32,
    y: &mut T,
    x_hat: &mut T,
) -> Result<(), CoreError> {
    check_step(sigma, sigma_next)?;
    masked_denoise(denoiser, x, mask, sigma, y, x_hat)?;
    let ratio = sigma_next / sigma;
    x.axpby(1.0 - ratio, x_hat, ratio);
    check_finite(x, "sampler state")
}

/// One Heun step (EDM's Algorithm 2): the Euler step `x_e = x + h d` with slope
/// `d = (x - D(M x, M, s)) / s` and `h = s' - s`; then, if `s' > 0`, the slope `d'` at
/// `(x_e, s')` and `x <- x + h (d + d') / 2`. With `s' = 0` it is the Euler step.
/// Needs three scratch tensors.
pub fn fixed_mask_heun_step<T: Tensor, D: Denoiser<T>>(
    denoiser: &mut D,
    x: &mut T,
    mask: &T,
    sigma: f32,
    sigma_next: f32,
    scratch: &mut [T; 3],
) -> Result<(), CoreError> {
    let [y, slope, x_euler] = scratch;
    if sigma_next == 0.0 {
        return euler(denoiser, x, mask, sigma, sigma_next, y, slope);
    }
    check_step(sigma, sigma_next)?;
    let h = sigma_next - sigma;
    // slope <- d = (x - x_hat) / s.
    masked_denoise(denoiser, x, mask, sigma, y, slope)?;
    slope.axpby(1.0 / sigma, x, -1.0 / sigma);
    // x_euler <- x + h d; x <- x + (h/2) d (the first half of the averaged update).
    x_euler.copy_from(x);
    x_euler.axpby(h, slope, 1.0);
    x.axpby(0.5 * h, slope, 1.0);
    // slope <- d' = (x_euler - D(M x_euler, M, s')) / s'; x <- x + (h/2) d'.
    masked_denoise(denoiser, x_euler, mask, sigma_next, y, slope)?;
    slope.axpby(1.0 / sigma_next, x_euler, -1.0 / sigma_next);
    x.axpby(0.5 * h, slope, 1.0);
    check_finite(x, "sampler state")
}

/// `out <- D(M x, M, s)`, with `y` holding `M x`.
pub(super) fn masked_denoise<T: Tensor, D: Denoiser<T>>(
    denoiser: &mut D,
    x: &T,
    mask: &T,
    sigma: f32,
    y: &mut T,
    out: &mut T,
) -> Result<(), CoreError> {
    y.copy_from(x);
    y.mul(mask);
    denoiser.denoise(y, mask, sigma, out)
}
