//! The gated convolution on a padded map ([`super::padded`]) in plain Rust: the portable
//! path, and the reference the AVX2 kernel is tested against. Per output pixel and channel
//! the two int32 accumulators are the core's (`sum (x - zp) w` over the taps inside the image;
//! border taps hold 0 here), and the output is the core's formula
//! (`ambient_core::int8::gated`) with the core's own requantization function.

use ambient_core::int8::gated::MAIN_MAX;
use ambient_core::int8::lut::lookup;
use ambient_core::int8::quant::SIGMOID_OUTPUT;
use ambient_core::int8::requant::multiply_by_quantized_multiplier;

use super::gated_layer::GatedLayer;
use super::padded::PaddedGeometry;

/// The output of channel `c` from its accumulators, exactly as `GatedConv2d::run` computes it.
#[inline]
fn gated_output(layer: &GatedLayer, c: usize, acc_w: i32, acc_g: i32) -> i8 {
    let main =
        multiply_by_quantized_multiplier(acc_w, layer.main_multipliers[c], layer.main_shifts[c])
            .clamp(-MAIN_MAX, MAIN_MAX);
    let gate =
        multiply_by_quantized_multiplier(acc_g, layer.gate_multipliers[c], layer.gate_shifts[c])
            .saturating_add(layer.gate_zero_point)
            .clamp(-128, 127) as i8;
    let unit = lookup(&layer.sigmoid, gate) as i32 - SIGMOID_OUTPUT.zero_point;
    let scaled = multiply_by_quantized_multiplier(
        (main * unit).saturating_add(layer.bias[c]),
        layer.output_multiplier,
        layer.output_shift,
    );
    scaled
        .saturating_add(layer.output_zero_point)
        .clamp(-128, 127) as i8
}

/// `out` (HWC, `h * w * cout`) `<-` the gated convolution of the padded map `input`.
pub fn run_portable(layer: &GatedLayer, pg: &PaddedGeometry, input: &[i16], out: &mut [i8]) {
    let g = &layer.geometry;
    assert!(pg.height == g.height && pg.width == g.width && pg.channels == g.in_channels);
    assert!(input.len() >= pg.len() && out.len() == g.output_len());
    let (k, cin, cout) = (g.kernel, g.in_channels, g.out_channels);
    // Tap (ky, kx) of output pixel (y, x) reads padded pixel (y + ky + 1 - k/2, x + kx + 1 - k/2).
    let first = 1 - k / 2;
    let row = (g.width + 2) * pg.stride;
    let flen = g.filter_len();
    for y in 0..g.height {
        for x in 0..g.width {
            let o = &mut out[(y * g.width + x) * cout..][..cout];
            for (c, oc) in o.iter_mut().enumerate() {
                let (mut acc_w, mut acc_g) = (0i32, 0i32);
                for ky in 0..k {
                    for kx in 0..k {
                        let at = (y + ky + first) * row + (x + kx + first) * pg.stride;
                        let px = &input[at..at + cin];
                        let tap = c * flen + (ky * k + kx) * cin;
                        let (w, gt) = (&layer.weights[tap..][..cin], &layer.gates[tap..][..cin]);
                        for i in 0..cin {
                            acc_w = acc_w.wrapping_add(px[i] as i32 * w[i] as i32);
                            acc_g = acc_g.wrapping_add(px[i] as i32 * gt[i] as i32);
                        }
                    }
                }
                *oc = gated_output(layer, c, acc_w, acc_g);
            }
        }
    }
}
