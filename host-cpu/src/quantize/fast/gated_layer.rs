//! One gated convolution's parameters, copied once from the model blob and prepared for the
//! fast kernels: the OHWI filters as the core stores them (read by the portable kernel), the
//! same filters packed for the AVX2 kernel, and the per-channel requantization constants
//! padded to whole blocks of eight lanes with their shifts split ([`super::requant_avx2`]).
//!
//! AVX2 packing: output channels go in blocks of [`LANES`]; per block, tap and input-channel
//! pair `(2i, 2i + 1)` one 32-i16 row, the main filters then the gate filters, each as
//! `[w(c, 2i), w(c, 2i + 1)]` for the block's eight channels `c` (zero past `cout` and for
//! the pad channel of an odd `cin`). `madd_epi16` of a broadcast input pair with one half gives
//! the eight channels' partial sums for that pair.

use ambient_core::int8::conv::ConvGeometry;
use ambient_core::int8::gated::GatedConv2d;
use ambient_core::int8::quant::SIGMOID_OUTPUT;

use super::requant_avx2::split_shift;

/// Output channels per AVX2 block (i32 lanes of a 256-bit register).
pub const LANES: usize = 8;

/// Per-channel constants, `blocks * LANES` long (the pad lanes repeat channel 0's values; their
/// results are discarded).
#[derive(Debug, Clone)]
pub struct LaneConstants {
    pub main_multiplier: Vec<i32>,
    pub main_left: Vec<i32>,
    pub main_right: Vec<i32>,
    pub gate_multiplier: Vec<i32>,
    pub gate_left: Vec<i32>,
    pub gate_right: Vec<i32>,
    pub bias: Vec<i32>,
}

/// A gated convolution ready to run.
#[derive(Debug, Clone)]
pub struct GatedLayer {
    pub geometry: ConvGeometry,
    pub input_zero_point: i32,
    /// OHWI main and gate filters.
    pub weights: Vec<i8>,
    pub gates: Vec<i8>,
    pub main_multipliers: Vec<i32>,
    pub main_shifts: Vec<i32>,
    pub gate_multipliers: Vec<i32>,
    pub gate_shifts: Vec<i32>,
    pub gate_zero_point: i32,
    pub sigmoid: [i8; 256],
    pub bias: Vec<i32>,
    pub output_multiplier: i32,
    pub output_shift: i32,
    pub output_zero_point: i32,
    /// `lut[g + 128] - SIGMOID_OUTPUT.zero_point`: the gate in units of 1/256, by gate value.
    pub unit: [i32; 256],
    /// Blocks of [`LANES`] output channels.
    pub blocks: usize,
    /// The AVX2 filters: `blocks * k * k * (stride / 2) * 32` i16.
    pub packed: Vec<i16>,
    pub lanes: LaneConstants,
}

impl GatedLayer {
    /// Copies and packs `conv` (already validated by the model).
    pub fn new(conv: &GatedConv2d) -> Self {
        let g = conv.geometry;
        let (cin, cout, taps) = (g.in_channels, g.out_channels, g.kernel * g.kernel);
        let pairs = cin.div_ceil(2);
        let blocks = cout.div_ceil(LANES);
        let mut packed = vec![0i16; blocks * taps * pairs * 4 * LANES];
        let flen = g.filter_len();
        for c in 0..cout {
            let (block, lane) = (c / LANES, c % LANES);
            for tap in 0..taps {
                for i in 0..cin {
                    let row = ((block * taps + tap) * pairs + i / 2) * 4 * LANES;
                    let at = 2 * lane + i % 2;
                    let w = c * flen + tap * cin + i;
                    packed[row + at] = conv.weights[w] as i16;
                    packed[row + 2 * LANES + at] = conv.gates[w] as i16;
                }
            }
        }
        let padded = |v: &[i32], f: &dyn Fn(i32) -> i32| -> Vec<i32> {
            (0..blocks * LANES)
                .map(|c| f(v[if c < cout { c } else { 0 }]))
                .collect()
        };
        let lanes = LaneConstants {
            main_multiplier: padded(conv.main_multipliers, &|m| m),
            main_left: padded(conv.main_shifts, &|s| split_shift(s).0),
            main_right: padded(conv.main_shifts, &|s| split_shift(s).1),
            gate_multiplier: padded(conv.gate_multipliers, &|m| m),
            gate_left: padded(conv.gate_shifts, &|s| split_shift(s).0),
            gate_right: padded(conv.gate_shifts, &|s| split_shift(s).1),
            bias: padded(conv.bias, &|b| b),
        };
        let mut unit = [0i32; 256];
        for (u, &s) in unit.iter_mut().zip(conv.sigmoid.iter()) {
            *u = s as i32 - SIGMOID_OUTPUT.zero_point;
        }
        GatedLayer {
            geometry: g,
            input_zero_point: conv.input_zero_point,
            weights: conv.weights.to_vec(),
            gates: conv.gates.to_vec(),
            main_multipliers: conv.main_multipliers.to_vec(),
            main_shifts: conv.main_shifts.to_vec(),
            gate_multipliers: conv.gate_multipliers.to_vec(),
            gate_shifts: conv.gate_shifts.to_vec(),
            gate_zero_point: conv.gate_zero_point,
            sigmoid: *conv.sigmoid,
            bias: conv.bias.to_vec(),
            output_multiplier: conv.output_multiplier,
            output_shift: conv.output_shift,
            output_zero_point: conv.output_zero_point,
            unit,
            blocks,
            packed,
            lanes,
        }
    }
}
