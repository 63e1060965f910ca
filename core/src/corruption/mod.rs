//! Corruption operators `A ~ p(A)` and their further corruption `A~ = B A` (Ambient Diffusion,
//! Daras et al. 2023, section 3): one trait, [`Corruption`], for every family, and the
//! families the project trains with: random inpainting, box inpainting, Gaussian measurements,
//! plus the optional measurement noise that a measurement may carry.
//!
//! No allocator: a drawn operator lives in a caller-provided `f32` buffer of
//! [`Corruption::operator_len`] elements (a pixel mask `H*W` for the inpainting families, 1 =
//! observed, 0 = missing; an `m x n` row-major matrix for Gaussian measurements). Every draw
//! consumes the [`AmbientRng`] stream in the order documented on each family, so the CPU host,
//! the CUDA host and the firmware draw the same operators from the same seed.

mod box_inpaint;
mod gaussian;
mod mask;
mod measurement;
mod random_inpaint;

pub use box_inpaint::BoxInpainting;
pub use gaussian::GaussianMeasurements;
pub use mask::{apply_pixel_mask, expand_pixel_mask};
pub use measurement::MeasurementNoise;
pub use random_inpaint::RandomInpainting;

use crate::error::CoreError;
use crate::rng::AmbientRng;

/// A corruption family: the distribution `p(A)` of a linear measurement operator, the
/// distribution of its further corruption `A~ | A`, and the operator's action on images.
///
/// Buffers: an image has [`image_len`](Corruption::image_len) elements (C*H*W, NCHW order), an
/// operator [`operator_len`](Corruption::operator_len), a measurement `y = A x`
/// [`measurement_len`](Corruption::measurement_len). Every method checks the lengths it is given
/// and returns [`CoreError::ShapeMismatch`] on a wrong one; families reject invalid parameters
/// at construction with [`CoreError::InvalidParameter`].
pub trait Corruption {
    /// Elements of one image (C*H*W).
    fn image_len(&self) -> usize;
    /// Elements of the storage for one drawn operator.
    fn operator_len(&self) -> usize;
    /// Elements of one measurement `y = A x`.
    fn measurement_len(&self) -> usize;
    /// `op <- A ~ p(A)`.
    fn draw(&self, rng: &mut AmbientRng, op: &mut [f32]) -> Result<(), CoreError>;
    /// `a_tilde <- A~ ~ p(A~ | A = a)`, the further corruption of an operator `a`.
    fn further_corrupt(
        &self,
        a: &[f32],
        rng: &mut AmbientRng,
        a_tilde: &mut [f32],
    ) -> Result<(), CoreError>;
    /// `y <- A x`.
    fn apply(&self, op: &[f32], x: &[f32], y: &mut [f32]) -> Result<(), CoreError>;
    /// `x <- A^T y`.
    fn adjoint(&self, op: &[f32], y: &[f32], x: &mut [f32]) -> Result<(), CoreError>;
}

/// `Ok(())` when `got == expected`, else the shape mismatch naming `what`.
pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), CoreError> {
    if got == expected {
        Ok(())
    } else {
        Err(CoreError::ShapeMismatch {
            what,
            expected,
            got,
        })
    }
}

/// `Ok(())` when `p` is a probability (finite, in [0, 1]).
pub(crate) fn check_probability(what: &'static str, p: f32) -> Result<(), CoreError> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(CoreError::InvalidParameter(what))
    }
}
