//! The training losses (docs/ambient-unet-spec.md, "Training objective"): the ambient loss of
//! Daras et al. (2023), its naive baseline and clean EDM training, each as a value and its
//! gradient with respect to the denoiser output `D`.
//!
//! ```text
//! w    = A~ / c_out(s)^2 + (A - A~) / sd^2          per pixel
//! loss = mean over batch of  sum over pixels and channels of  w (D - x0)^2
//! grad = 2 w (D - x0) / batch
//! ```
//! `w` is 0 wherever `A` erased a pixel, so the loss only needs `A x0`, which is all that the
//! training data holds: callers pass `x0_measured = A x0`, and the value and the gradient do
//! not depend on `x0_measured` where `A = 0` (for finite values there). Masks are 0/1.
//!
//! Every loss needs ONE scratch tensor of the batch's shape; `grad` is overwritten. On an
//! error the contents of `grad` and `scratch` are unspecified.

use crate::error::CoreError;
use crate::precond::{scale_per_sample_by, MAX_BATCH};
use crate::sigma::loss_weight;
use crate::tensor::Tensor;

/// `w <- A~ / c_out(s)^2 + (A - A~) / sd^2`, one sigma per sample: the per-pixel ambient
/// weight, which is `1 / (that pixel's output scale)^2` for the model that is given `A~`.
///
/// Since `1 / c_out(s)^2 = 1 / s^2 + 1 / sd^2`, this is computed as `A~ / s^2 + A / sd^2`.
/// Errors: `sigmas.len()` is not the batch size (or exceeds [`MAX_BATCH`]), a sigma or
/// `sigma_data` is not positive and finite, or `A~` keeps a pixel that `A` erased (`A~` must
/// be a further corruption of `A`: with 0/1 masks, `<A, A~> = <A~, A~>`).
pub fn ambient_weight<T: Tensor>(
    a: &T,
    a_tilde: &T,
    sigmas: &[f32],
    sigma_data: f32,
    w: &mut T,
) -> Result<(), CoreError> {
    check_sigmas(w.shape().n, sigmas, sigma_data)?;
    if a.dot(a_tilde) != a_tilde.sum_sq() {
        return Err(CoreError::InvalidParameter(
            "A~ keeps a pixel that A erased (A~ must be B A)",
        ));
    }
    w.copy_from(a_tilde);
    scale_per_sample_by(w, sigmas, |s| 1.0 / (s * s));
    w.axpby(1.0 / (sigma_data * sigma_data), a, 1.0);
    Ok(())
}

/// `w <- lambda(s) = 1 / c_out(s)^2` everywhere: the ambient weight with `A = A~ = 1`, i.e.
/// plain EDM's weight. Same errors as [`ambient_weight`] about sigmas.
pub fn clean_weight<T: Tensor>(
    sigmas: &[f32],
    sigma_data: f32,
    w: &mut T,
) -> Result<(), CoreError> {
    check_sigmas(w.shape().n, sigmas, sigma_data)?;
    w.fill(1.0);
    scale_per_sample_by(w, sigmas, |s| loss_weight(s, sigma_data));
    Ok(())
}

/// The ambient loss `mean_batch sum_pixels w (D - x0)^2` with the weight of
/// [`ambient_weight`]; writes `grad <- 2 w (D - x0) / batch`. `d` is the denoiser output
/// `D(A~ (x0 + s eta), A~, s)`, `x0_measured` is `A x0`. Needs one `scratch`.
#[allow(clippy::too_many_arguments)]
pub fn ambient_loss<T: Tensor>(
    d: &T,
    x0_measured: &T,
    a: &T,
    a_tilde: &T,
    sigmas: &[f32],
    sigma_data: f32,
    grad: &mut T,
    scratch: &mut T,
) -> Result<f32, CoreError> {
    ambient_weight(a, a_tilde, sigmas, sigma_data, scratch)?;
    weighted_squared_error(d, x0_measured, scratch, grad)
}

/// The naive baseline: the ambient loss with `A~ = A` (the model is given the data's own mask
/// and is trained on the pixels it sees). `d` is `D(A (x0 + s eta), A, s)`. Needs one
/// `scratch`.
pub fn naive_loss<T: Tensor>(
    d: &T,
    x0_measured: &T,
    a: &T,
    sigmas: &[f32],
    sigma_data: f32,
    grad: &mut T,
    scratch: &mut T,
) -> Result<f32, CoreError> {
    ambient_loss(d, x0_measured, a, a, sigmas, sigma_data, grad, scratch)
}

/// Clean training, plain EDM: the ambient loss with `A = A~ = 1`, weight `lambda(s)`.
/// `d` is `D(x0 + s eta, 1, s)`. Needs one `scratch`.
pub fn clean_loss<T: Tensor>(
    d: &T,
    x0: &T,
    sigmas: &[f32],
    sigma_data: f32,
    grad: &mut T,
    scratch: &mut T,
) -> Result<f32, CoreError> {
    clean_weight(sigmas, sigma_data, scratch)?;
    weighted_squared_error(d, x0, scratch, grad)
}

/// `mean_batch sum w (D - x0)^2` and `grad <- 2 w (D - x0) / batch`, with the weight in `w`,
/// which is overwritten (it ends holding `w (D - x0)`). `NonFinite` if the value is not
/// finite.
pub fn weighted_squared_error<T: Tensor>(
    d: &T,
    x0: &T,
    w: &mut T,
    grad: &mut T,
) -> Result<f32, CoreError> {
    let batch = d.shape().n;
    if batch == 0 {
        return Err(CoreError::InvalidParameter("empty batch"));
    }
    // grad <- r = D - x0; w <- w r; value = <w r, r>.
    grad.copy_from(d);
    grad.axpby(-1.0, x0, 1.0);
    w.mul(grad);
    let value = (w.dot(grad) / batch as f64) as f32;
    if !value.is_finite() {
        return Err(CoreError::NonFinite("loss value"));
    }
    grad.copy_from(w);
    grad.scale(2.0 / batch as f32);
    Ok(value)
}

/// One positive, finite sigma per sample, a positive, finite `sigma_data`, and a batch that
/// [`scale_per_sample_by`] can take.
fn check_sigmas(batch: usize, sigmas: &[f32], sigma_data: f32) -> Result<(), CoreError> {
    if sigmas.len() != batch {
        return Err(CoreError::ShapeMismatch {
            what: "sigmas (one per sample)",
            expected: batch,
            got: sigmas.len(),
        });
    }
    if batch > MAX_BATCH {
        return Err(CoreError::InvalidParameter("batch larger than MAX_BATCH"));
    }
    if !(sigma_data.is_finite() && sigma_data > 0.0) {
        return Err(CoreError::InvalidParameter(
            "sigma_data must be positive and finite",
        ));
    }
    if sigmas.iter().any(|&s| !(s.is_finite() && s > 0.0)) {
        return Err(CoreError::InvalidParameter(
            "sigma must be positive and finite",
        ));
    }
    Ok(())
}
