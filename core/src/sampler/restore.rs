//! Single-step restoration (NFE = 1): given a measurement `y = A x0` and its mask `A`,
//! `x_hat = D(A y, A, s_r)` at a small noise level `s_r`, and the observed pixels then taken
//! from the measurement: `out = A y + (1 - A) x_hat`.

use super::check_finite;
use crate::denoiser::Denoiser;
use crate::error::CoreError;
use crate::tensor::Tensor;

/// `out <- A y + (1 - A) D(A y, A, s_r)`. `y` is multiplied by `A` before the call, so a
/// measurement that still carries values where `A = 0` is treated as if those were 0; with
/// 0/1 masks the observed pixels of `out` are exactly those of `y`. `sigma_r` positive and
/// finite. Needs one scratch tensor.
pub fn restore_single_step<T: Tensor, D: Denoiser<T>>(
    denoiser: &mut D,
    y: &T,
    a: &T,
    sigma_r: f32,
    out: &mut T,
    scratch: &mut T,
) -> Result<(), CoreError> {
    if !(sigma_r.is_finite() && sigma_r > 0.0) {
        return Err(CoreError::InvalidParameter(
            "restoration sigma must be positive and finite",
        ));
    }
    scratch.copy_from(y);
    scratch.mul(a);
    denoiser.denoise(scratch, a, sigma_r, out)?;
    // out <- (1 - A) x_hat + A y.
    scratch.copy_from(a);
    scratch.scale(-1.0);
    scratch.add_scalar(1.0);
    out.mul(scratch);
    scratch.copy_from(y);
    scratch.mul(a);
    out.axpby(1.0, scratch, 1.0);
    check_finite(out, "restoration")
}
