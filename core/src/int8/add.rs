//! Elementwise int8 ADD with rescale, as TFLite's int8 ADD: both inputs offset by their zero
//! points and shifted left by 20 bits, each scaled by `s_i / (2 max(s_1, s_2))`, summed, and the
//! sum scaled by `2 max(s_1, s_2) / (2^20 s_out)`. An extra constant factor on the output
//! folds into that last multiplier: `(h + skip) / sqrt(2)` of a ResBlock is an ADD with
//! `output_factor = 1 / sqrt(2)` at no extra cost or rounding. Needs no scratch.

use super::conv::check_zero_point;
use super::quant::{check_len, QuantParams};
use super::requant::{multiply_by_quantized_multiplier, Requant};
use crate::error::CoreError;

/// TFLite's left shift for int8 ADD: 20 bits of headroom below the 31 an int32 has, for an
/// 8-bit difference (`|x - zp| <= 255 < 2^8`) and a carry.
pub const ADD_LEFT_SHIFT: i32 = 20;

/// Prepared parameters of `out = output_factor * (in1 + in2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddParams {
    pub input1_offset: i32,
    pub input2_offset: i32,
    pub input1: Requant,
    pub input2: Requant,
    pub output: Requant,
    pub output_offset: i32,
}

impl AddParams {
    /// TFLite's preparation; `output_factor` (positive, finite) multiplies the sum. The output
    /// multiplier `2 max(s_1, s_2) output_factor / (2^20 s_out)` must be below 1, as TFLite
    /// requires (an output scale more than ~2^19 times finer than the inputs' is an error).
    pub fn new(
        in1: QuantParams,
        in2: QuantParams,
        out: QuantParams,
        output_factor: f64,
    ) -> Result<Self, CoreError> {
        for q in [in1, in2, out] {
            QuantParams::new(q.scale, q.zero_point)?;
        }
        if !output_factor.is_finite() || output_factor <= 0.0 {
            return Err(CoreError::InvalidParameter(
                "add output factor must be positive and finite",
            ));
        }
        let twice_max = 2.0 * (in1.scale.max(in2.scale) as f64);
        let real_output =
            twice_max * output_factor / ((1u32 << ADD_LEFT_SHIFT) as f64 * out.scale as f64);
        if real_output >= 1.0 {
            return Err(CoreError::InvalidParameter(
                "add output scale too fine for its inputs",
            ));
        }
        Ok(AddParams {
            input1_offset: -in1.zero_point,
            input2_offset: -in2.zero_point,
            input1: Requant::from_real(in1.scale as f64 / twice_max)?,
            input2: Requant::from_real(in2.scale as f64 / twice_max)?,
            output: Requant::from_real(real_output)?,
            output_offset: out.zero_point,
        })
    }

    /// One element, exactly as TFLite's reference `AddElementwise` for int8.
    #[inline]
    pub fn add_one(&self, a: i8, b: i8) -> i8 {
        // Exact for validated offsets (|x - zp| <= 255, times 2^20 < 2^28); wrapping only keeps
        // hand-made parameters from panicking.
        let shifted1 =
            (self.input1_offset.wrapping_add(a as i32)).wrapping_mul(1 << ADD_LEFT_SHIFT);
        let shifted2 =
            (self.input2_offset.wrapping_add(b as i32)).wrapping_mul(1 << ADD_LEFT_SHIFT);
        let scaled1 =
            multiply_by_quantized_multiplier(shifted1, self.input1.multiplier, self.input1.shift);
        let scaled2 =
            multiply_by_quantized_multiplier(shifted2, self.input2.multiplier, self.input2.shift);
        let raw = multiply_by_quantized_multiplier(
            scaled1.saturating_add(scaled2),
            self.output.multiplier,
            self.output.shift,
        );
        raw.saturating_add(self.output_offset).clamp(-128, 127) as i8
    }

    fn validate(&self) -> Result<(), CoreError> {
        // The input offsets are negated zero points: in [-127, 128].
        for offset in [self.input1_offset, self.input2_offset] {
            check_zero_point(offset.saturating_neg())?;
        }
        check_zero_point(self.output_offset)
    }
}

/// `out[i] = add_one(a[i], b[i])`.
pub fn add(p: &AddParams, a: &[i8], b: &[i8], out: &mut [i8]) -> Result<(), CoreError> {
    p.validate()?;
    check_len("add second input", a.len(), b.len())?;
    check_len("add output", a.len(), out.len())?;
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = p.add_one(x, y);
    }
    Ok(())
}

/// `a[i] = add_one(a[i], b[i])`: the residual sum written over one of its operands, so a
/// ResBlock needs no third buffer.
pub fn add_in_place(p: &AddParams, a: &mut [i8], b: &[i8]) -> Result<(), CoreError> {
    p.validate()?;
    check_len("add second input", a.len(), b.len())?;
    for (x, &y) in a.iter_mut().zip(b) {
        *x = p.add_one(*x, y);
    }
    Ok(())
}
