//! The denoiser boundary: what a sampler needs from a trained network, `D(y, m, s)` and, for
//! reconstruction guidance, its vector-Jacobian product with respect to the input `y`.

use crate::error::CoreError;
use crate::tensor::Tensor;

/// A mask-aware denoiser `D(y, m, s)` as fixed by the spec: `y` is the masked noisy image,
/// `m` the mask the model is given (1 = observed), `sigma` the noise level (one for the whole
/// batch). Implemented by the hosts' networks and by the exact denoisers of the tests.
pub trait Denoiser<T: Tensor> {
    /// out <- D(y, mask, sigma).
    fn denoise(&mut self, y: &T, mask: &T, sigma: f32, out: &mut T) -> Result<(), CoreError>;

    /// grad_y <- (dD(y, mask, sigma)/dy)^T cotangent: the gradient of `<cotangent, D>` with
    /// respect to `y`. Needed by reconstruction guidance only.
    fn denoise_vjp(
        &mut self,
        y: &T,
        mask: &T,
        sigma: f32,
        cotangent: &T,
        grad_y: &mut T,
    ) -> Result<(), CoreError>;
}
