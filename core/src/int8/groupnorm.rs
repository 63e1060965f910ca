//! GroupNorm on int8 HWC input producing int8 output, the spec's `GN` (affine, eps):
//! `y = gamma_c (x - mean_g) / sqrt(var_g + eps) + beta_c`.
//!
//! Statistics are exact integers: per group, `S = sum (q - zp)` and `Q = sum (q - zp)^2` in
//! i64 over the group's `n` elements, and `n^2 var / s_x^2 = n Q - S^2` in i128 (per group, not
//! per element). The normalisation is f32, chosen over a fixed-point rsqrt because the M4F has
//! a single-precision FPU and because f32 here is deterministic: every step is one IEEE-754
//! single operation (Rust never contracts `a * b + c` into an FMA), integer-to-f32 conversions
//! round to nearest, and the square root is `libm::sqrtf` (software, correctly rounded), so
//! x86-64 and Cortex-M4F produce the same bits. Per channel `c` of group `g`:
//! `k_c = gamma_c s_x / (s_out sqrt(s_x^2 var_q + eps))`, `o_c = beta_c / s_out + zp_out`;
//! per element `out = clamp(roundf((d - mean_q) k_c + o_c))`, with `d = q - zp` and `mean_q`
//! `= S / n`, all in f32. Scratch: `2 * channels` f32 for `k` and `o` ([`group_norm_scratch_len`]).

use super::layout::{feature_len, Channels};
use super::quant::{check_len, QuantParams};
use crate::error::CoreError;

/// The most groups one GroupNorm may have (its per-group sums live on the stack).
pub const MAX_GROUPS: usize = 64;

/// f32 scratch that [`GroupNorm::run`] needs for `channels` channels.
pub fn group_norm_scratch_len(channels: usize) -> usize {
    2 * channels
}

/// A quantized GroupNorm's parameters, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct GroupNorm<'a> {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    /// Divides `channels`; at most [`MAX_GROUPS`].
    pub groups: usize,
    /// Positive.
    pub eps: f32,
    /// `channels` affine weights and biases.
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    pub input: QuantParams,
    pub output: QuantParams,
}

impl GroupNorm<'_> {
    fn validate(&self) -> Result<usize, CoreError> {
        let n = feature_len(self.height, self.width, self.channels)?;
        if self.groups > MAX_GROUPS || self.channels.checked_rem(self.groups) != Some(0) {
            return Err(CoreError::InvalidParameter(
                "groups must divide channels and be at most 64",
            ));
        }
        if !self.eps.is_finite() || self.eps <= 0.0 {
            return Err(CoreError::InvalidParameter(
                "GroupNorm eps must be positive and finite",
            ));
        }
        check_len("GroupNorm gamma", self.channels, self.gamma.len())?;
        check_len("GroupNorm beta", self.channels, self.beta.len())?;
        if self.gamma.iter().chain(self.beta).any(|v| !v.is_finite()) {
            return Err(CoreError::NonFinite("GroupNorm gamma or beta"));
        }
        QuantParams::new(self.input.scale, self.input.zero_point)?;
        QuantParams::new(self.output.scale, self.output.zero_point)?;
        Ok(n)
    }

    /// `output` (HWC, a single buffer) `<-` GroupNorm of `input` (possibly a two-buffer
    /// concatenation; a group may straddle the two parts).
    pub fn run(
        &self,
        input: Channels,
        scratch: &mut [f32],
        output: &mut [i8],
    ) -> Result<(), CoreError> {
        let len = self.validate()?;
        let pixels = self.height * self.width;
        input.check(pixels, self.channels)?;
        check_len("GroupNorm output", len, output.len())?;
        if scratch.len() < group_norm_scratch_len(self.channels) {
            return Err(CoreError::ShapeMismatch {
                what: "GroupNorm scratch",
                expected: group_norm_scratch_len(self.channels),
                got: scratch.len(),
            });
        }
        let per_group = self.channels / self.groups;
        let zp = self.input.zero_point;

        let split = input.first_channels();
        // Channel c of a pixel, from whichever buffer holds it.
        let channel = |a: &[i8], b: &[i8], c: usize| if c < split { a[c] } else { b[c - split] };

        let mut sum = [0i64; MAX_GROUPS];
        let mut sum_sq = [0i64; MAX_GROUPS];
        for p in 0..pixels {
            let (a, b) = input.pixel(p);
            for g in 0..self.groups {
                let (mut s, mut s2) = (0i32, 0i32);
                for c in g * per_group..(g + 1) * per_group {
                    // |d| <= 255 and per_group <= 2^15: s < 2^23, s2 < 2^31.
                    let d = channel(a, b, c) as i32 - zp;
                    s += d;
                    s2 += d * d;
                }
                sum[g] += s as i64;
                sum_sq[g] += s2 as i64;
            }
        }

        let n = (pixels * per_group) as i64;
        let s_x = self.input.scale;
        let mut mean = [0f32; MAX_GROUPS];
        let (k, o) = scratch[..2 * self.channels].split_at_mut(self.channels);
        for g in 0..self.groups {
            // n^2 var_q, exact: |S| < 2^39 and Q < 2^47 for n < 2^31.
            let var_num = n as i128 * sum_sq[g] as i128 - sum[g] as i128 * sum[g] as i128;
            let nf = n as f32;
            mean[g] = sum[g] as f32 / nf;
            let var_q = var_num as f32 / (nf * nf);
            let inv_std = 1.0 / libm::sqrtf(s_x * s_x * var_q + self.eps);
            for c in g * per_group..(g + 1) * per_group {
                k[c] = self.gamma[c] * s_x * inv_std / self.output.scale;
                o[c] = self.beta[c] / self.output.scale + self.output.zero_point as f32;
            }
        }

        for (p, out) in output.chunks_exact_mut(self.channels).enumerate() {
            let (a, b) = input.pixel(p);
            for (g, &m) in mean[..self.groups].iter().enumerate() {
                for c in g * per_group..(g + 1) * per_group {
                    let d = (channel(a, b, c) as i32 - zp) as f32;
                    let t = libm::roundf((d - m) * k[c] + o[c]);
                    out[c] = t.clamp(-128.0, 127.0) as i8;
                }
            }
        }
        Ok(())
    }
}
