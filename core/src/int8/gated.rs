//! The spec's gated convolution `out = conv(x, W) * sigmoid(conv(x, G)) + b` in integers.
//!
//! Per output pixel and channel `c`, with `acc_w`, `acc_g` the int32 accumulators of the two
//! convolutions (one pass over the input, see [`super::conv`]):
//! 1. main path to an int16 intermediate, symmetric (zero point 0) at a scale `s_m` the host
//!    calibrates: `m = clamp(mbqm(acc_w, s_x s_w[c] / s_m), -32767, 32767)`;
//! 2. gate path to int8 as TFLite would feed a LOGISTIC:
//!    `g = clamp(zp_g + mbqm(acc_g, s_x s_g[c] / s_gate), -128, 127)`, then the sigmoid from a
//!    256-entry table whose output quantization is TFLite's `(1/256, -128)`, so that
//!    `u = lut[g] + 128` in `[0, 255]` is the sigmoid in units of `1/256`;
//! 3. the product and the bias in one int32, requantized once (TFLite's MUL with the bias
//!    ADD folded in): `out = clamp(zp_out + mbqm(m u + B[c], s_m / (256 s_out)), -128, 127)`
//!    with `B[c] = round(256 b[c] / s_m)`.
//!
//! Why int16 for the main path, not int8 as a TFLite graph (CONV, CONV, LOGISTIC, MUL, ADD)
//! would have it: the main path's value is multiplied by a gate in `[0, 1]`, so rounding it to
//! 8 bits adds an error of up to half an output-range LSB to every output, and requantizing the
//! product and then adding the bias adds a further rounding. With 16 bits the main path's
//! rounding is 1/256 of that, the bias rides in the product's accumulator, and the only
//! roundings left are the gate's (inherent in a 256-entry table) and the final one. The cost is
//! nothing: `|m u| <= 32767 * 255 < 2^23`, so the product and bias fit an int32, and a 16 x 16
//! multiply is one instruction on a Cortex-M4. The noise embedding's per-channel projection,
//! constant at a fixed sigma, folds into `b` exactly (`h + e = conv * sigmoid + (b + e)`).
//! Needs no scratch.

use super::conv::{accumulate, check_zero_point, ConvGeometry};
use super::layout::Channels;
use super::lut::{build_lut, lookup, sigmoid};
use super::quant::{
    check_len, quantize_bias, quantize_weights_per_channel, QuantParams, SIGMOID_OUTPUT,
};
use super::requant::{multiply_by_quantized_multiplier, per_channel_requant, Requant};
use crate::error::CoreError;

/// The int16 intermediate's largest magnitude (symmetric: -32768 is not used).
pub const MAIN_MAX: i32 = 32767;

/// A quantized gated convolution's parameters, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct GatedConv2d<'a> {
    pub geometry: ConvGeometry,
    pub input_zero_point: i32,
    /// Main filters W, OHWI, symmetric per output channel.
    pub weights: &'a [i8],
    /// Gate filters G, OHWI, symmetric per output channel.
    pub gates: &'a [i8],
    /// `cout` multipliers and shifts for `s_x s_w[c] / s_m` (main path to int16).
    pub main_multipliers: &'a [i32],
    pub main_shifts: &'a [i32],
    /// `cout` multipliers and shifts for `s_x s_g[c] / s_gate` (gate path to int8).
    pub gate_multipliers: &'a [i32],
    pub gate_shifts: &'a [i32],
    pub gate_zero_point: i32,
    /// Sigmoid from the gate's quantization to [`SIGMOID_OUTPUT`].
    pub sigmoid: &'a [i8; 256],
    /// `cout` biases at scale `s_m / 256`.
    pub bias: &'a [i32],
    /// `s_m / (256 s_out)`.
    pub output_multiplier: i32,
    pub output_shift: i32,
    pub output_zero_point: i32,
}

impl GatedConv2d<'_> {
    /// Checks every length against the geometry and the zero points.
    pub fn validate(&self) -> Result<(), CoreError> {
        let g = &self.geometry;
        g.validate()?;
        let cout = g.out_channels;
        check_len("gated weights", cout * g.filter_len(), self.weights.len())?;
        check_len("gated gates", cout * g.filter_len(), self.gates.len())?;
        for (what, s) in [
            ("main multipliers", self.main_multipliers),
            ("main shifts", self.main_shifts),
            ("gate multipliers", self.gate_multipliers),
            ("gate shifts", self.gate_shifts),
            ("gated bias", self.bias),
        ] {
            check_len(what, cout, s.len())?;
        }
        check_zero_point(self.input_zero_point)?;
        check_zero_point(self.gate_zero_point)?;
        check_zero_point(self.output_zero_point)
    }

    /// `output` (HWC, `h * w * cout`) `<-` the gated convolution of `input`.
    pub fn run(&self, input: Channels, output: &mut [i8]) -> Result<(), CoreError> {
        self.validate()?;
        let g = &self.geometry;
        input.check(g.pixels(), g.in_channels)?;
        check_len("gated output", g.output_len(), output.len())?;
        let flen = g.filter_len();
        for oy in 0..g.height {
            for ox in 0..g.width {
                let out = &mut output[(oy * g.width + ox) * g.out_channels..][..g.out_channels];
                for (c, o) in out.iter_mut().enumerate() {
                    let [acc_w, acc_g] = accumulate(
                        g,
                        &input,
                        self.input_zero_point,
                        [
                            &self.weights[c * flen..(c + 1) * flen],
                            &self.gates[c * flen..(c + 1) * flen],
                        ],
                        oy,
                        ox,
                    );
                    let main = multiply_by_quantized_multiplier(
                        acc_w,
                        self.main_multipliers[c],
                        self.main_shifts[c],
                    )
                    .clamp(-MAIN_MAX, MAIN_MAX);
                    let gate = multiply_by_quantized_multiplier(
                        acc_g,
                        self.gate_multipliers[c],
                        self.gate_shifts[c],
                    )
                    .saturating_add(self.gate_zero_point)
                    .clamp(-128, 127) as i8;
                    let unit = lookup(self.sigmoid, gate) as i32 - SIGMOID_OUTPUT.zero_point;
                    let scaled = multiply_by_quantized_multiplier(
                        (main * unit).saturating_add(self.bias[c]),
                        self.output_multiplier,
                        self.output_shift,
                    );
                    *o = scaled
                        .saturating_add(self.output_zero_point)
                        .clamp(-128, 127) as i8;
                }
            }
        }
        Ok(())
    }
}

/// The scales a host chooses for one gated convolution (from calibration).
#[derive(Debug, Clone, Copy)]
pub struct GatedConvScales {
    /// The input activation.
    pub input: QuantParams,
    /// `s_m`: the int16 main path's scale, e.g. `max |conv(x, W)| / 32767` over calibration data.
    pub main_scale: f32,
    /// The gate pre-activation `conv(x, G)`.
    pub gate: QuantParams,
    /// The output.
    pub output: QuantParams,
}

/// Buffers that [`quantize_gated_conv`] fills, sized for the geometry (`cout` per-channel
/// entries, `cout * k * k * cin` weights).
#[derive(Debug)]
pub struct GatedConvBuffers<'a> {
    pub weights: &'a mut [i8],
    pub gates: &'a mut [i8],
    pub weight_scales: &'a mut [f32],
    pub gate_scales: &'a mut [f32],
    pub main_multipliers: &'a mut [i32],
    pub main_shifts: &'a mut [i32],
    pub gate_multipliers: &'a mut [i32],
    pub gate_shifts: &'a mut [i32],
    pub bias: &'a mut [i32],
}

/// The scalar parameters [`quantize_gated_conv`] returns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GatedConvScalars {
    pub output: Requant,
    pub sigmoid: [i8; 256],
}

/// Parameter preparation: quantizes float OHWI filters `w`, `g` and bias `b` (with any constant
/// per-channel addend such as the noise embedding's projection already added) for
/// [`GatedConv2d`] at the given scales.
pub fn quantize_gated_conv(
    geometry: &ConvGeometry,
    w: &[f32],
    g: &[f32],
    b: &[f32],
    scales: &GatedConvScales,
    out: GatedConvBuffers,
) -> Result<GatedConvScalars, CoreError> {
    geometry.validate()?;
    let cout = geometry.out_channels;
    if !scales.main_scale.is_finite() || scales.main_scale <= 0.0 {
        return Err(CoreError::InvalidParameter(
            "main-path scale must be positive and finite",
        ));
    }
    check_len("gated float weights", cout * geometry.filter_len(), w.len())?;
    check_len("gated float gates", w.len(), g.len())?;
    quantize_weights_per_channel(w, cout, out.weights, out.weight_scales)?;
    quantize_weights_per_channel(g, cout, out.gates, out.gate_scales)?;
    let s_x = scales.input.scale as f64;
    let s_m = scales.main_scale as f64;
    per_channel_requant(
        s_x,
        out.weight_scales,
        s_m,
        out.main_multipliers,
        out.main_shifts,
    )?;
    per_channel_requant(
        s_x,
        out.gate_scales,
        scales.gate.scale as f64,
        out.gate_multipliers,
        out.gate_shifts,
    )?;
    quantize_bias(b, |_| s_m / 256.0, out.bias)?;
    Ok(GatedConvScalars {
        output: Requant::from_real(s_m / (256.0 * scales.output.scale as f64))?,
        sigmoid: build_lut(sigmoid, scales.gate, SIGMOID_OUTPUT),
    })
}
