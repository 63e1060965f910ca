//! Fixed-point requantization exactly as TFLite / TFLM compute it: a real multiplier as a Q31
//! mantissa and a power-of-two exponent (`quantize_multiplier`, TFLite's `QuantizeMultiplier`),
//! and its application to an int32 accumulator (`multiply_by_quantized_multiplier`, TFLM's
//! reference "double rounding" version built from gemmlowp's
//! `SaturatingRoundingDoublingHighMul` and `RoundingDivideByPOT`).
//!
//! Bit-exactness with TFLM is the point: a graph quantized here must give the same integers as
//! the same graph run by TFLM's reference kernels. Where TFLM has undefined behaviour (a left
//! shift that overflows int32) this code wraps, which is what TFLM compiled for x86-64 or
//! Cortex-M does in practice; where gemmlowp asserts (an exponent outside [0, 31]) this code
//! clamps, so that no input can panic.

use crate::error::CoreError;

/// TFLite's `QuantizeMultiplier`: `real = q * 2^(shift - 31)` with `q` a Q31 mantissa in
/// `[2^30, 2^31)` (or its negative), by `frexp` and rounding half away from zero. A mantissa
/// that rounds up to `2^31` becomes `2^30` with the exponent one higher; a multiplier below
/// about `2^-32` (exponent below -31) flushes to `(0, 0)`, as does `0.0`.
///
/// A non-finite `real` (where TFLite's checks abort) also gives `(0, 0)`; parameter preparation
/// goes through [`Requant::from_real`], which rejects it with a typed error instead.
pub fn quantize_multiplier(real: f64) -> (i32, i32) {
    if real == 0.0 || !real.is_finite() {
        return (0, 0);
    }
    let (q, mut shift) = libm::frexp(real);
    let mut q_fixed = libm::round(q * (1u64 << 31) as f64) as i64;
    if q_fixed == 1i64 << 31 {
        q_fixed /= 2;
        shift += 1;
    }
    if shift < -31 {
        shift = 0;
        q_fixed = 0;
    }
    // |q| < 1, so after the adjustment above |q_fixed| <= 2^31 with 2^31 excluded: fits i32
    // (the negative extreme -2^31 included).
    (q_fixed as i32, shift)
}

/// gemmlowp's `SaturatingRoundingDoublingHighMul`: the high 32 bits of `2 a b`, rounded by
/// adding `2^30` (or `1 - 2^30` when `a b < 0`) before a division by `2^31` that truncates
/// towards zero. In effect `a b / 2^31` rounded half towards +infinity. The one product that
/// does not fit, `i32::MIN * i32::MIN`, saturates to `i32::MAX`.
#[inline]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp's `RoundingDivideByPOT`: `x / 2^exponent` rounded half away from zero, with an
/// arithmetic shift and a remainder threshold. `exponent` is clamped to `[0, 31]` (gemmlowp
/// asserts that range).
#[inline]
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    let e = exponent.clamp(0, 31);
    let mask = ((1i64 << e) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> e) + i32::from(remainder > threshold)
}

/// TFLM's reference `MultiplyByQuantizedMultiplier(int32 x, int32 m, int shift)`:
/// a left shift by `shift` when it is positive, then `saturating_rounding_doubling_high_mul`
/// by `m`, then `rounding_divide_by_pot` by `-shift` when it is negative. Two roundings, so the
/// result can differ by one from `round(x * m * 2^(shift - 31))`; that is the reference
/// behaviour this reproduces.
#[inline]
pub fn multiply_by_quantized_multiplier(x: i32, m: i32, shift: i32) -> i32 {
    let left_shift = if shift > 0 { shift.min(31) } else { 0 };
    let right_shift = if shift > 0 { 0 } else { shift.saturating_neg() };
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x.wrapping_mul(1i32 << left_shift), m),
        right_shift,
    )
}

/// A validated requantization factor: a non-negative real multiplier below `2^30` as TFLite
/// stores it. Kernels take the two integers; this is how parameter preparation makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requant {
    /// Q31 mantissa, in `[2^30, 2^31)`, or 0.
    pub multiplier: i32,
    /// Power-of-two exponent, in `[-31, 30]`.
    pub shift: i32,
}

impl Requant {
    /// The factor `real`, which must be finite, non-negative and below `2^30` (so that the
    /// left shift of [`multiply_by_quantized_multiplier`] is at most 30 bits).
    pub fn from_real(real: f64) -> Result<Self, CoreError> {
        if !real.is_finite() {
            return Err(CoreError::NonFinite("requantization multiplier"));
        }
        if !(0.0..(1u64 << 30) as f64).contains(&real) {
            return Err(CoreError::InvalidParameter(
                "requantization multiplier must be in [0, 2^30)",
            ));
        }
        let (multiplier, shift) = quantize_multiplier(real);
        // Just below 2^30 the mantissa can round up to 2^31 and become 2^30 with shift 31.
        if shift > 30 {
            return Err(CoreError::InvalidParameter(
                "requantization multiplier must be in [0, 2^30)",
            ));
        }
        Ok(Requant { multiplier, shift })
    }

    /// `multiply_by_quantized_multiplier(x, self.multiplier, self.shift)`.
    #[inline]
    pub fn apply(self, x: i32) -> i32 {
        multiply_by_quantized_multiplier(x, self.multiplier, self.shift)
    }
}

/// Per-output-channel factors `input_scale * weight_scales[c] / output_scale` into
/// `multipliers[c], shifts[c]`: what a convolution's int32 accumulator of channel `c` is
/// multiplied by to reach the output's scale.
pub fn per_channel_requant(
    input_scale: f64,
    weight_scales: &[f32],
    output_scale: f64,
    multipliers: &mut [i32],
    shifts: &mut [i32],
) -> Result<(), CoreError> {
    if multipliers.len() != weight_scales.len() || shifts.len() != weight_scales.len() {
        return Err(CoreError::ShapeMismatch {
            what: "per-channel multipliers",
            expected: weight_scales.len(),
            got: multipliers.len().min(shifts.len()),
        });
    }
    for ((m, s), &ws) in multipliers
        .iter_mut()
        .zip(shifts.iter_mut())
        .zip(weight_scales)
    {
        let r = Requant::from_real(input_scale * ws as f64 / output_scale)?;
        *m = r.multiplier;
        *s = r.shift;
    }
    Ok(())
}
