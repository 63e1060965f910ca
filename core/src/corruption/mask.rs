//! Pixel masks, the operators of the inpainting families: a mask of `H*W` entries (1 =
//! observed, 0 = missing) acts on every channel of a pixel alike. The network is fed
//! image-shaped masks (C*H*W, NCHW), which [`expand_pixel_mask`] builds.

use super::check_len;
use crate::error::CoreError;

/// `out <- the pixel mask repeated over channels`: `out[ch*H*W + i] = pixel_mask[i]` for every
/// channel `ch < channels`. `out` has `channels * pixel_mask.len()` elements.
pub fn expand_pixel_mask(
    channels: usize,
    pixel_mask: &[f32],
    out: &mut [f32],
) -> Result<(), CoreError> {
    let expected = channels
        .checked_mul(pixel_mask.len())
        .ok_or(CoreError::InvalidParameter(
            "channels * pixels overflows usize",
        ))?;
    check_len("image-shaped mask", expected, out.len())?;
    if pixel_mask.is_empty() {
        return Ok(());
    }
    for plane in out.chunks_exact_mut(pixel_mask.len()) {
        plane.copy_from_slice(pixel_mask);
    }
    Ok(())
}

/// `y <- m x` for an image `x` of `channels * pixel_mask.len()` elements: every channel of
/// pixel `i` is multiplied by `pixel_mask[i]`. A pixel mask is diagonal, so this is also its
/// adjoint.
pub fn apply_pixel_mask(
    channels: usize,
    pixel_mask: &[f32],
    x: &[f32],
    y: &mut [f32],
) -> Result<(), CoreError> {
    let expected = channels
        .checked_mul(pixel_mask.len())
        .ok_or(CoreError::InvalidParameter(
            "channels * pixels overflows usize",
        ))?;
    check_len("image", expected, x.len())?;
    check_len("masked image", expected, y.len())?;
    if pixel_mask.is_empty() {
        return Ok(());
    }
    for (y_plane, x_plane) in y
        .chunks_exact_mut(pixel_mask.len())
        .zip(x.chunks_exact(pixel_mask.len()))
    {
        for ((yv, &xv), &mv) in y_plane.iter_mut().zip(x_plane).zip(pixel_mask) {
            *yv = mv * xv;
        }
    }
    Ok(())
}

/// `Ok(())` when every entry of `mask` is exactly 0 or 1: further corruption reads a mask as
/// the set of pixels it keeps, which is only defined for a 0/1 mask.
pub(crate) fn check_binary(mask: &[f32]) -> Result<(), CoreError> {
    if mask.iter().all(|&v| v == 0.0 || v == 1.0) {
        Ok(())
    } else {
        Err(CoreError::InvalidParameter("mask entries must be 0 or 1"))
    }
}

/// `c * h * w` and `h * w` for an image shape, rejecting zero sizes and sizes whose pixel count
/// does not fit a `u32` (the range of [`crate::AmbientRng::below`]) or whose element count does
/// not fit a `usize` (32 bits on firmware).
pub(crate) fn image_sizes(c: usize, h: usize, w: usize) -> Result<(usize, usize), CoreError> {
    if c == 0 || h == 0 || w == 0 {
        return Err(CoreError::InvalidParameter("image sizes must be positive"));
    }
    let pixels = h
        .checked_mul(w)
        .filter(|&n| u32::try_from(n).is_ok())
        .ok_or(CoreError::InvalidParameter("h * w must fit in u32"))?;
    let elements = pixels
        .checked_mul(c)
        .ok_or(CoreError::InvalidParameter("c * h * w overflows usize"))?;
    Ok((elements, pixels))
}
