//! Quantization parameters as TFLite chooses them: asymmetric per-tensor int8 activations from
//! a float range (`ChooseQuantizationParams`), symmetric per-output-channel int8 weights
//! (zero point 0, scale `max|w| / 127`), int32 biases at the accumulator's scale
//! (`input_scale * weight_scale[c]`), and the per-element quantize / dequantize maps.
//!
//! Everything here except [`QuantParams::quantize`] and [`QuantParams::dequantize`] is
//! parameter preparation and may use f64.

use crate::error::CoreError;

/// Asymmetric int8 quantization of one tensor: `real = scale * (q - zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantParams {
    /// Positive, finite.
    pub scale: f32,
    /// In `[-128, 127]`.
    pub zero_point: i32,
}

/// The output quantization TFLite fixes for an int8 logistic: `1/256`, zero point -128, so
/// that `[0, 1)` covers the whole int8 range.
pub const SIGMOID_OUTPUT: QuantParams = QuantParams {
    scale: 1.0 / 256.0,
    zero_point: -128,
};

impl QuantParams {
    /// Checked construction: `scale` finite and positive, `zero_point` an int8.
    pub fn new(scale: f32, zero_point: i32) -> Result<Self, CoreError> {
        if !scale.is_finite() {
            return Err(CoreError::NonFinite("quantization scale"));
        }
        if scale <= 0.0 {
            return Err(CoreError::InvalidParameter(
                "quantization scale must be positive",
            ));
        }
        if !(-128..=127).contains(&zero_point) {
            return Err(CoreError::InvalidParameter(
                "zero point must be in [-128, 127]",
            ));
        }
        Ok(QuantParams { scale, zero_point })
    }

    /// TFLite's `ChooseQuantizationParams<int8>` (not narrow range): scale
    /// `(max - min) / 255`, zero point from whichever of `(min, -128)` and `(max, 127)` gives
    /// the smaller rounding error, nudged to an integer in `[-128, 127]` so that 0.0 is exactly
    /// representable. The range is first widened to contain 0 (TFLite requires it to). A range
    /// that is the single point 0 (a tensor that is identically zero, such as a zero-initialised
    /// layer's output) gets scale 1 and zero point 0, where TFLite would give scale 0, which no
    /// multiplier can divide by; any scale represents that tensor exactly.
    pub fn from_range(min: f32, max: f32) -> Result<Self, CoreError> {
        if !min.is_finite() || !max.is_finite() {
            return Err(CoreError::NonFinite("quantization range"));
        }
        if min > max {
            return Err(CoreError::InvalidParameter(
                "quantization range has min > max",
            ));
        }
        let rmin = (min as f64).min(0.0);
        let rmax = (max as f64).max(0.0);
        if rmin == rmax {
            return Ok(QuantParams {
                scale: 1.0,
                zero_point: 0,
            });
        }
        let (qmin, qmax) = (-128.0f64, 127.0f64);
        let scale = (rmax - rmin) / (qmax - qmin);
        let zero_point_from_min = qmin - rmin / scale;
        let zero_point_from_max = qmax - rmax / scale;
        let zero_point_from_min_error = qmin.abs() + (rmin / scale).abs();
        let zero_point_from_max_error = qmax.abs() + (rmax / scale).abs();
        let zero_point = if zero_point_from_min_error < zero_point_from_max_error {
            zero_point_from_min
        } else {
            zero_point_from_max
        };
        let nudged = if zero_point < qmin {
            qmin
        } else if zero_point > qmax {
            qmax
        } else {
            libm::round(zero_point)
        };
        // The f32 scale of a range of finite f32 is a positive finite f32 unless the range is
        // so small that it underflows.
        QuantParams::new(scale as f32, nudged as i32)
    }

    /// `clamp(round(x / scale) + zero_point, -128, 127)`, rounding half away from zero.
    #[inline]
    pub fn quantize(&self, x: f32) -> i8 {
        let q = libm::roundf(x / self.scale) + self.zero_point as f32;
        q.clamp(-128.0, 127.0) as i8
    }

    /// `scale * (q - zero_point)`.
    #[inline]
    pub fn dequantize(&self, q: i8) -> f32 {
        self.scale * (q as i32 - self.zero_point) as f32
    }
}

/// The symmetric int8 scale of a set of weights: `max|w| / 127`, or 1 when every weight is 0
/// (as TFLite does, so that a zero-initialised layer still has a usable scale).
pub fn symmetric_scale(weights: &[f32]) -> Result<f32, CoreError> {
    let mut max_abs = 0.0f32;
    for &w in weights {
        if !w.is_finite() {
            return Err(CoreError::NonFinite("weights"));
        }
        max_abs = max_abs.max(w.abs());
    }
    Ok(if max_abs == 0.0 { 1.0 } else { max_abs / 127.0 })
}

/// Quantizes weights `[cout][..]` (any layout with the output channel outermost, OHWI here)
/// symmetrically per output channel: `scales[c] = max|w_c| / 127`,
/// `q = clamp(round(w * (1 / scales[c])), -127, 127)` in f32, as TFLite's
/// `SymmetricPerChannelQuantizeValues` computes it (by the inverse scale).
pub fn quantize_weights_per_channel(
    weights: &[f32],
    out_channels: usize,
    quantized: &mut [i8],
    scales: &mut [f32],
) -> Result<(), CoreError> {
    if weights.len().checked_rem(out_channels) != Some(0) {
        return Err(CoreError::InvalidParameter(
            "weight count is not a multiple of the output channels",
        ));
    }
    check_len("quantized weights", weights.len(), quantized.len())?;
    check_len("weight scales", out_channels, scales.len())?;
    let per_channel = weights.len() / out_channels;
    for (c, (w, q)) in weights
        .chunks_exact(per_channel)
        .zip(quantized.chunks_exact_mut(per_channel))
        .enumerate()
    {
        let scale = symmetric_scale(w)?;
        scales[c] = scale;
        let inverse = 1.0 / scale;
        for (qi, &wi) in q.iter_mut().zip(w) {
            *qi = libm::roundf(wi * inverse).clamp(-127.0, 127.0) as i8;
        }
    }
    Ok(())
}

/// Quantizes biases to int32 at the scale of the accumulator they are added to:
/// `q[c] = round(b[c] / scale_of(c))`, the scale positive. A bias that does not fit in
/// `[-2^30, 2^30]` (leaving headroom for the accumulator it is added to) is an error.
pub fn quantize_bias(
    bias: &[f32],
    scale_of: impl Fn(usize) -> f64,
    quantized: &mut [i32],
) -> Result<(), CoreError> {
    check_len("quantized bias", bias.len(), quantized.len())?;
    for (c, (q, &b)) in quantized.iter_mut().zip(bias).enumerate() {
        let scale = scale_of(c);
        if !b.is_finite() || !scale.is_finite() {
            return Err(CoreError::NonFinite("bias or its scale"));
        }
        if scale <= 0.0 {
            return Err(CoreError::InvalidParameter("bias scale must be positive"));
        }
        let v = libm::round(b as f64 / scale);
        if v.abs() > (1u64 << 30) as f64 {
            return Err(CoreError::InvalidParameter(
                "bias too large for its accumulator scale",
            ));
        }
        *q = v as i32;
    }
    Ok(())
}

pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), CoreError> {
    if expected == got {
        Ok(())
    } else {
        Err(CoreError::ShapeMismatch {
            what,
            expected,
            got,
        })
    }
}
