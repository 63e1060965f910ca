//! Random inpainting: `A` keeps each pixel (all channels together) with probability `1 - p`;
//! further corruption erases each pixel that `A` kept with probability `delta`, so `A~` keeps
//! a pixel with probability `(1 - p)(1 - delta)`.
//!
//! Operator: a pixel mask of `H*W` entries (1 = observed, 0 = missing); `y = A x` is the
//! masked image (C*H*W, zeros where missing), and `A^T = A`.
//!
//! Draw order (what every host must reproduce, with [`AmbientRng::bernoulli`]):
//! - [`draw`](Corruption::draw): for each pixel `i = row * W + col` in raster order (row-major
//!   over `h`, then `w`), one `rng.bernoulli(1.0 - p)` with `1.0 - p` computed in `f32`;
//!   `true` keeps the pixel (`op[i] = 1`), `false` erases it (`op[i] = 0`). Exactly `H*W` draws.
//! - [`further_corrupt`](Corruption::further_corrupt): for each pixel `i` in the same raster
//!   order, one `rng.bernoulli(delta)`, drawn whether or not `A` kept the pixel (so pixel `i`
//!   always consumes the `i`-th `u32` of the stream); `a_tilde[i] = 1` iff `a[i] = 1` and the
//!   draw is `false`. Exactly `H*W` draws.

use super::mask::{apply_pixel_mask, check_binary, image_sizes};
use super::{check_len, check_probability, Corruption};
use crate::error::CoreError;
use crate::rng::AmbientRng;

/// Random inpainting of `c x h x w` images with erasure probability `p` and further-corruption
/// probability `delta` (0 gives the naive baseline `A~ = A`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomInpainting {
    c: usize,
    h: usize,
    w: usize,
    p: f32,
    delta: f32,
    image_len: usize,
    pixels: usize,
}

impl RandomInpainting {
    /// Rejects zero image sizes, sizes that overflow, and `p` or `delta` outside [0, 1] (or NaN).
    pub fn new(c: usize, h: usize, w: usize, p: f32, delta: f32) -> Result<Self, CoreError> {
        let (image_len, pixels) = image_sizes(c, h, w)?;
        check_probability("random inpainting p must be in [0, 1]", p)?;
        check_probability("random inpainting delta must be in [0, 1]", delta)?;
        Ok(RandomInpainting {
            c,
            h,
            w,
            p,
            delta,
            image_len,
            pixels,
        })
    }

    /// Channels.
    pub fn c(&self) -> usize {
        self.c
    }
    /// Height in pixels.
    pub fn h(&self) -> usize {
        self.h
    }
    /// Width in pixels.
    pub fn w(&self) -> usize {
        self.w
    }
    /// Probability that `A` erases a pixel.
    pub fn p(&self) -> f32 {
        self.p
    }
    /// Probability that further corruption erases a pixel that `A` kept.
    pub fn delta(&self) -> f32 {
        self.delta
    }
}

impl Corruption for RandomInpainting {
    fn image_len(&self) -> usize {
        self.image_len
    }

    fn operator_len(&self) -> usize {
        self.pixels
    }

    fn measurement_len(&self) -> usize {
        self.image_len
    }

    fn draw(&self, rng: &mut AmbientRng, op: &mut [f32]) -> Result<(), CoreError> {
        check_len("random inpainting operator", self.pixels, op.len())?;
        let keep = 1.0 - self.p;
        for v in op.iter_mut() {
            *v = if rng.bernoulli(keep) { 1.0 } else { 0.0 };
        }
        Ok(())
    }

    fn further_corrupt(
        &self,
        a: &[f32],
        rng: &mut AmbientRng,
        a_tilde: &mut [f32],
    ) -> Result<(), CoreError> {
        check_len("random inpainting operator A", self.pixels, a.len())?;
        check_len("random inpainting operator A~", self.pixels, a_tilde.len())?;
        check_binary(a)?;
        for (t, &kept) in a_tilde.iter_mut().zip(a) {
            let erase = rng.bernoulli(self.delta);
            *t = if kept == 1.0 && !erase { 1.0 } else { 0.0 };
        }
        Ok(())
    }

    fn apply(&self, op: &[f32], x: &[f32], y: &mut [f32]) -> Result<(), CoreError> {
        check_len("random inpainting operator", self.pixels, op.len())?;
        apply_pixel_mask(self.c, op, x, y)
    }

    fn adjoint(&self, op: &[f32], y: &[f32], x: &mut [f32]) -> Result<(), CoreError> {
        check_len("random inpainting operator", self.pixels, op.len())?;
        apply_pixel_mask(self.c, op, y, x)
    }
}
