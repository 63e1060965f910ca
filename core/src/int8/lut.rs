//! 256-entry lookup tables for pointwise nonlinearities on int8 (sigmoid, SiLU), built from
//! the input and output quantization with `libm` in f32 (software `expf`, correctly rounded
//! single operations), so that host and firmware build the same table bit for bit.

use super::quant::QuantParams;

/// `1 / (1 + exp(-x))` in f32 with `libm::expf`.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + libm::expf(-x))
}

/// `x * sigmoid(x)`.
pub fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// The table of `f` from `in_q` to `out_q`, as TFLite's `PopulateLookupTable` computes it:
/// entry `q + 128` is `clamp(round(f(s_in (q - zp_in)) * (1 / s_out)) + zp_out)` in f32 for
/// every int8 `q` (TFLite multiplies by the inverse scale; the two differ from a division by at
/// most one ulp, which matters only at a rounding tie). TFLite stores the same entries indexed
/// by `q as u8` instead of `q + 128`.
pub fn build_lut(f: fn(f32) -> f32, in_q: QuantParams, out_q: QuantParams) -> [i8; 256] {
    let inverse_scale = 1.0 / out_q.scale;
    let mut lut = [0i8; 256];
    for (i, entry) in lut.iter_mut().enumerate() {
        let q = (i as i32 - 128) as i8;
        let rescaled = libm::roundf(f(in_q.dequantize(q)) * inverse_scale);
        *entry = (rescaled + out_q.zero_point as f32).clamp(-128.0, 127.0) as i8;
    }
    lut
}

/// `lut[q + 128]` for one int8 value.
#[inline]
pub fn lookup(lut: &[i8; 256], q: i8) -> i8 {
    lut[(q as i32 + 128) as usize]
}

/// Applies a table in place to every element.
pub fn apply_lut(lut: &[i8; 256], data: &mut [i8]) {
    for q in data {
        *q = lookup(lut, *q);
    }
}
