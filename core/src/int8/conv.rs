//! int8 2-D convolution, HWC activations and OHWI weights (`[cout][kh][kw][cin]`), kernel 1
//! or 3, stride 1, padding `k / 2` with the input's zero point, per-output-channel
//! requantization, output clamped to int8. As TFLM's reference kernel: the int32 accumulator
//! is `sum (x - zp_x) w` over the taps inside the image (a padded tap holds `zp_x`, so it
//! contributes exactly 0 and is skipped), plus the int32 bias, then
//! `zp_out + multiply_by_quantized_multiplier(acc, m_c, shift_c)`. Needs no scratch.

use super::layout::{feature_len, Channels};
use super::quant::check_len;
use super::requant::multiply_by_quantized_multiplier;
use crate::error::CoreError;

/// The most multiply-accumulates one output may have (`cin * k * k`): each term is at most
/// `255 * 128 = 32640` in magnitude, so 65536 of them stay below `2^31`.
pub const MAX_TAPS: usize = 1 << 16;

/// The shape of a stride-1, same-padded convolution on one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    pub height: usize,
    pub width: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    /// 1 or 3.
    pub kernel: usize,
}

impl ConvGeometry {
    /// Checks the kernel size, the dimensions and the accumulator headroom.
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.kernel != 1 && self.kernel != 3 {
            return Err(CoreError::InvalidParameter("kernel size must be 1 or 3"));
        }
        feature_len(self.height, self.width, self.in_channels)?;
        feature_len(self.height, self.width, self.out_channels)?;
        if self.in_channels * self.kernel * self.kernel > MAX_TAPS {
            return Err(CoreError::InvalidParameter(
                "too many taps for an int32 accumulator",
            ));
        }
        Ok(())
    }

    /// Pixels per image.
    pub fn pixels(&self) -> usize {
        self.height * self.width
    }

    /// Weights of one output channel: `k * k * cin`.
    pub fn filter_len(&self) -> usize {
        self.kernel * self.kernel * self.in_channels
    }

    /// Output elements: `h * w * cout`.
    pub fn output_len(&self) -> usize {
        self.pixels() * self.out_channels
    }
}

/// `sum (x - zp) w` over two equally long slices.
#[inline]
fn dot(x: &[i8], w: &[i8], zero_point: i32) -> i32 {
    x.iter()
        .zip(w)
        .map(|(&a, &b)| (a as i32 - zero_point) * b as i32)
        .sum()
}

/// The accumulators `sum (x - zp) w` of output pixel `(oy, ox)` for each of `N` filters of
/// `g.filter_len()` weights (several filters share the input reads: the gated convolution's
/// main and gate paths). The caller has validated `g` and the buffer lengths.
#[inline]
pub(crate) fn accumulate<const N: usize>(
    g: &ConvGeometry,
    input: &Channels,
    zero_point: i32,
    filters: [&[i8]; N],
    oy: usize,
    ox: usize,
) -> [i32; N] {
    let pad = g.kernel / 2;
    let cin = g.in_channels;
    let split = input.first_channels();
    let mut acc = [0i32; N];
    for ky in 0..g.kernel {
        let iy = oy + ky;
        if iy < pad || iy - pad >= g.height {
            continue;
        }
        for kx in 0..g.kernel {
            let ix = ox + kx;
            if ix < pad || ix - pad >= g.width {
                continue;
            }
            let (a, b) = input.pixel((iy - pad) * g.width + (ix - pad));
            let tap = (ky * g.kernel + kx) * cin;
            for (acc_n, filter) in acc.iter_mut().zip(filters) {
                let w = &filter[tap..tap + cin];
                *acc_n += dot(a, &w[..split], zero_point) + dot(b, &w[split..], zero_point);
            }
        }
    }
    acc
}

/// Checks that a zero point is an int8.
pub(crate) fn check_zero_point(zp: i32) -> Result<(), CoreError> {
    if (-128..=127).contains(&zp) {
        Ok(())
    } else {
        Err(CoreError::InvalidParameter(
            "zero point must be in [-128, 127]",
        ))
    }
}

/// A quantized convolution's parameters, borrowed (from a model blob in flash, say).
#[derive(Debug, Clone, Copy)]
pub struct Conv2d<'a> {
    pub geometry: ConvGeometry,
    pub input_zero_point: i32,
    /// OHWI, `cout * k * k * cin`, symmetric (zero point 0).
    pub weights: &'a [i8],
    /// `cout`, at scale `input_scale * weight_scale[c]`.
    pub bias: &'a [i32],
    /// `cout` Q31 multipliers and shifts for `input_scale * weight_scale[c] / output_scale`.
    pub multipliers: &'a [i32],
    pub shifts: &'a [i32],
    pub output_zero_point: i32,
}

impl Conv2d<'_> {
    /// Checks every length against the geometry and the zero points.
    pub fn validate(&self) -> Result<(), CoreError> {
        let g = &self.geometry;
        g.validate()?;
        check_len(
            "conv weights",
            g.out_channels * g.filter_len(),
            self.weights.len(),
        )?;
        check_len("conv bias", g.out_channels, self.bias.len())?;
        check_len("conv multipliers", g.out_channels, self.multipliers.len())?;
        check_len("conv shifts", g.out_channels, self.shifts.len())?;
        check_zero_point(self.input_zero_point)?;
        check_zero_point(self.output_zero_point)
    }

    /// `output` (HWC, `h * w * cout`) `<-` the convolution of `input` (HWC, `cin` channels,
    /// possibly a two-buffer concatenation).
    pub fn run(&self, input: Channels, output: &mut [i8]) -> Result<(), CoreError> {
        self.validate()?;
        let g = &self.geometry;
        input.check(g.pixels(), g.in_channels)?;
        check_len("conv output", g.output_len(), output.len())?;
        let flen = g.filter_len();
        for oy in 0..g.height {
            for ox in 0..g.width {
                let out = &mut output[(oy * g.width + ox) * g.out_channels..][..g.out_channels];
                for (c, o) in out.iter_mut().enumerate() {
                    let filter = &self.weights[c * flen..(c + 1) * flen];
                    let [acc] = accumulate(g, &input, self.input_zero_point, [filter], oy, ox);
                    let scaled = multiply_by_quantized_multiplier(
                        acc.saturating_add(self.bias[c]),
                        self.multipliers[c],
                        self.shifts[c],
                    );
                    *o = (scaled.saturating_add(self.output_zero_point)).clamp(-128, 127) as i8;
                }
            }
        }
        Ok(())
    }
}

/// Reorders PyTorch's OIHW weights `[cout][cin][k][k]` to OHWI `[cout][k][k][cin]`.
pub fn oihw_to_ohwi<T: Copy>(
    src: &[T],
    out_channels: usize,
    in_channels: usize,
    kernel: usize,
    dst: &mut [T],
) -> Result<(), CoreError> {
    let n = out_channels
        .checked_mul(in_channels)
        .and_then(|v| v.checked_mul(kernel * kernel))
        .ok_or(CoreError::InvalidParameter("weight shape overflows"))?;
    check_len("OIHW weights", n, src.len())?;
    check_len("OHWI weights", n, dst.len())?;
    let kk = kernel * kernel;
    for o in 0..out_channels {
        for i in 0..in_channels {
            for t in 0..kk {
                dst[(o * kk + t) * in_channels + i] = src[(o * in_channels + i) * kk + t];
            }
        }
    }
    Ok(())
}
