//! Box inpainting: `A` erases one axis-aligned `side x side` square placed uniformly inside the
//! image; further corruption erases a second square of the same side, placed uniformly among
//! the placements that do not overlap the first.
//!
//! Operator: a pixel mask of `H*W` entries (1 = observed, 0 = missing); `y = A x` is the
//! masked image (C*H*W, zeros where missing), and `A^T = A`.
//!
//! A placement is the top-left corner `(top, left)` with `top <= H - side`, `left <= W - side`;
//! placements are numbered in raster order, `k = top * (W - side + 1) + left`. Two squares at
//! `(t1, l1)` and `(t2, l2)` overlap iff `|t1 - t2| < side` and `|l1 - l2| < side`.
//!
//! Draw order (what every host must reproduce, with [`AmbientRng::below`]):
//! - [`draw`](Corruption::draw): one `k = rng.below((H - side + 1) * (W - side + 1))`; the square
//!   is placement `k`.
//! - [`further_corrupt`](Corruption::further_corrupt): the first square is read back from `a`
//!   (its first zero in raster order is its top-left corner). With `F` the number of placements
//!   that do not overlap it, one `k = rng.below(F)`; the second square is the `k`-th (from 0)
//!   non-overlapping placement in raster order. This is exactly the distribution of rejection
//!   sampling, with one draw and no loop. When `F = 0` it returns an error and draws nothing;
//!   [`BoxInpainting::further_corruption_always_possible`] says whether that can happen.

use super::mask::{apply_pixel_mask, check_binary, image_sizes};
use super::{check_len, Corruption};
use crate::error::CoreError;
use crate::rng::AmbientRng;

/// Box inpainting of `c x h x w` images with squares of `side` pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxInpainting {
    c: usize,
    h: usize,
    w: usize,
    side: usize,
    image_len: usize,
    pixels: usize,
}

impl BoxInpainting {
    /// Rejects zero image sizes, sizes that overflow, and a side of 0 or larger than `h` or `w`.
    pub fn new(c: usize, h: usize, w: usize, side: usize) -> Result<Self, CoreError> {
        let (image_len, pixels) = image_sizes(c, h, w)?;
        if side == 0 || side > h || side > w {
            return Err(CoreError::InvalidParameter(
                "box side must be in 1..=min(h, w)",
            ));
        }
        Ok(BoxInpainting {
            c,
            h,
            w,
            side,
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
    /// Side of the square in pixels.
    pub fn side(&self) -> usize {
        self.side
    }

    /// Whether every square `A` can draw leaves room for a second, non-overlapping one, so that
    /// [`further_corrupt`](Corruption::further_corrupt) never fails on an `a` from
    /// [`draw`](Corruption::draw). Along an axis of length `L` a top `t` has a partner at
    /// distance `>= side` iff `t >= side` or `t <= L - 2 side`; every `t` in `0..=L - side`
    /// has one iff `L - side >= 2 side - 1`. Every square has a partner iff one axis has that
    /// property: `h >= 3 side - 1` or `w >= 3 side - 1`.
    pub fn further_corruption_always_possible(&self) -> bool {
        let need = 3 * self.side - 1;
        self.h >= need || self.w >= need
    }

    /// Placements along the rows and the columns.
    fn placement_counts(&self) -> (usize, usize) {
        (self.h - self.side + 1, self.w - self.side + 1)
    }

    /// Sets the square at `(top, left)` to 0 in a pixel mask.
    fn erase_square(&self, mask: &mut [f32], top: usize, left: usize) {
        for row in mask[top * self.w..(top + self.side) * self.w].chunks_exact_mut(self.w) {
            row[left..left + self.side].fill(0.0);
        }
    }

    /// The top-left corner of the one square that `a` erases, checking that `a` erases exactly
    /// that square.
    fn locate_square(&self, a: &[f32]) -> Result<(usize, usize), CoreError> {
        const NOT_ONE_SQUARE: CoreError = CoreError::InvalidParameter(
            "box inpainting A must erase exactly one side x side square",
        );
        check_binary(a)?;
        let first = a.iter().position(|&v| v == 0.0).ok_or(NOT_ONE_SQUARE)?;
        let (top, left) = (first / self.w, first % self.w);
        if top + self.side > self.h || left + self.side > self.w {
            return Err(NOT_ONE_SQUARE);
        }
        let erased = a.iter().filter(|&&v| v == 0.0).count();
        let square_erased = a[top * self.w..(top + self.side) * self.w]
            .chunks_exact(self.w)
            .all(|row| row[left..left + self.side].iter().all(|&v| v == 0.0));
        if erased != self.side * self.side || !square_erased {
            return Err(NOT_ONE_SQUARE);
        }
        Ok((top, left))
    }

    /// Whether squares with top-left corners `(t1, l1)` and `(t2, l2)` overlap.
    fn overlaps(&self, (t1, l1): (usize, usize), (t2, l2): (usize, usize)) -> bool {
        t1.abs_diff(t2) < self.side && l1.abs_diff(l2) < self.side
    }

    /// Placements along one axis (`0..placements`) within distance `< side` of `t`.
    fn overlapping_along(&self, t: usize, placements: usize) -> usize {
        let lo = t.saturating_sub(self.side - 1);
        let hi = (t + self.side - 1).min(placements - 1);
        hi - lo + 1
    }
}

impl Corruption for BoxInpainting {
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
        check_len("box inpainting operator", self.pixels, op.len())?;
        let (rows, cols) = self.placement_counts();
        // rows * cols <= h * w, which the constructor checked fits in u32.
        let k = rng.below((rows * cols) as u32) as usize;
        op.fill(1.0);
        self.erase_square(op, k / cols, k % cols);
        Ok(())
    }

    fn further_corrupt(
        &self,
        a: &[f32],
        rng: &mut AmbientRng,
        a_tilde: &mut [f32],
    ) -> Result<(), CoreError> {
        check_len("box inpainting operator A", self.pixels, a.len())?;
        check_len("box inpainting operator A~", self.pixels, a_tilde.len())?;
        let first = self.locate_square(a)?;
        let (rows, cols) = self.placement_counts();
        let overlapping =
            self.overlapping_along(first.0, rows) * self.overlapping_along(first.1, cols);
        let free = rows * cols - overlapping;
        if free == 0 {
            return Err(CoreError::InvalidParameter(
                "no second box fits without overlapping the first",
            ));
        }
        let mut k = rng.below(free as u32) as usize;
        a_tilde.copy_from_slice(a);
        for top in 0..rows {
            for left in 0..cols {
                if self.overlaps(first, (top, left)) {
                    continue;
                }
                if k == 0 {
                    self.erase_square(a_tilde, top, left);
                    return Ok(());
                }
                k -= 1;
            }
        }
        unreachable!("k < free, the number of non-overlapping placements enumerated")
    }

    fn apply(&self, op: &[f32], x: &[f32], y: &mut [f32]) -> Result<(), CoreError> {
        check_len("box inpainting operator", self.pixels, op.len())?;
        apply_pixel_mask(self.c, op, x, y)
    }

    fn adjoint(&self, op: &[f32], y: &[f32], x: &mut [f32]) -> Result<(), CoreError> {
        check_len("box inpainting operator", self.pixels, op.len())?;
        apply_pixel_mask(self.c, op, y, x)
    }
}
