//! The int8 convolution: two exact hand-computed cases (zero-point padding of a 3x3 kernel;
//! a 1x1 kernel over a two-buffer channel concatenation with tie rounding and clamping), a
//! comparison with a float reference computed from the dequantized operands in f64 with a
//! derived error bound, the OIHW -> OHWI reorder, and typed errors.

mod int8_common;

use ambient_core::int8::conv::{oihw_to_ohwi, Conv2d, ConvGeometry};
use ambient_core::int8::layout::Channels;
use ambient_core::int8::quant::{quantize_bias, quantize_weights_per_channel, QuantParams};
use ambient_core::int8::requant::{per_channel_requant, Requant};
use ambient_core::{AmbientRng, CoreError};
use int8_common::{random_f32, random_i8, reference_accumulators, split_channels};

const ONE: Requant = Requant {
    multiplier: 1 << 30,
    shift: 1,
};
const HALF: Requant = Requant {
    multiplier: 1 << 30,
    shift: 0,
};

#[test]
fn three_by_three_pads_with_the_input_zero_point() {
    // x - zp_x (zp_x = 2) is [[1,2,3],[4,5,6],[7,8,9]]; an all-ones 3x3 kernel sums each
    // pixel's in-image neighbourhood: corners 1+2+4+5 = 12, 2+3+5+6 = 16, 4+5+7+8 = 24,
    // 5+6+8+9 = 28; edges 1+..+6 = 21, 1+2+4+5+7+8 = 27, 2+3+5+6+8+9 = 33, 4+..+9 = 39;
    // centre 45. Multiplier 1, output zero point -5. Had padding used raw 0 instead of the
    // zero point, each padded tap would add (0 - 2) * 1 and the corners would be 12 - 10 = 2.
    let x: Vec<i8> = (3..=11).collect();
    let w = [1i8; 9];
    let conv = Conv2d {
        geometry: ConvGeometry {
            height: 3,
            width: 3,
            in_channels: 1,
            out_channels: 1,
            kernel: 3,
        },
        input_zero_point: 2,
        weights: &w,
        bias: &[0],
        multipliers: &[ONE.multiplier],
        shifts: &[ONE.shift],
        output_zero_point: -5,
    };
    let mut out = [0i8; 9];
    conv.run(Channels::one(&x, 1), &mut out).unwrap();
    assert_eq!(out, [7, 16, 11, 22, 40, 28, 19, 34, 23]);
}

#[test]
fn one_by_one_over_a_concatenation() {
    // Two pixels, channel a from one buffer and b from another, zp 1: (x - zp) = (2, 1) and
    // (-3, -1). Filters [1, -1] and [2, 3], bias [0, 4], multiplier 0.5 (ties: positive up,
    // negative towards +inf, gemmlowp's high-mul):
    // pixel 0: 2 - 1 = 1 -> 0.5 -> 1;   4 + 3 + 4 = 11 -> 5.5 -> 6
    // pixel 1: -3 + 1 = -2 -> -1;       -6 - 3 + 4 = -5 -> -2.5 -> -2
    let a = [3i8, -2];
    let b = [2i8, 0];
    let w = [1i8, -1, 2, 3];
    let mut conv = Conv2d {
        geometry: ConvGeometry {
            height: 2,
            width: 1,
            in_channels: 2,
            out_channels: 2,
            kernel: 1,
        },
        input_zero_point: 1,
        weights: &w,
        bias: &[0, 4],
        multipliers: &[HALF.multiplier; 2],
        shifts: &[HALF.shift; 2],
        output_zero_point: 0,
    };
    let mut out = [0i8; 4];
    conv.run(Channels::concat(&a, 1, &b, 1), &mut out).unwrap();
    assert_eq!(out, [1, 6, -1, -2]);
    // Output zero point 120 and bias 20 on channel 1: pixel 0: 27 -> 13.5 -> 14, + 120 = 134,
    // clamped to 127; pixel 1: 11 -> 5.5 -> 6 -> 126. Channel 0: 121 and 119.
    conv.output_zero_point = 120;
    conv.bias = &[0, 20];
    conv.run(Channels::concat(&a, 1, &b, 1), &mut out).unwrap();
    assert_eq!(out, [121, 127, 119, 126]);
}

/// Against the float reference `v = s_x s_w[c] acc + b[c]` (acc exact, from the reference
/// accumulators in i64; the float bias unquantized), in output steps `r = v / s_o + zp_o`.
/// The kernel's errors: the bias rounded to the accumulator's step (1/2 of it, times the
/// multiplier M_c = s_x s_w[c] / s_o), and the requantization (at most 1 + |r| 2^-31, see
/// int8_requant). Clamping moves the result towards the range the output covers, which the
/// true value lies within up to the zero point's half-step nudge, so it never adds error
/// beyond that bound. Tolerance 1e-6 for f64 rounding in the reference.
#[test]
fn matches_float_reference() {
    let mut rng = AmbientRng::new(7);
    for &(h, w, ca, cb, cout, k) in &[
        (5, 4, 3, 0, 4, 3),
        (6, 6, 2, 3, 5, 3),
        (4, 7, 4, 0, 3, 1),
        (3, 5, 1, 2, 6, 1),
        (1, 1, 5, 0, 2, 3),
    ] {
        let cin = ca + cb;
        let g = ConvGeometry {
            height: h,
            width: w,
            in_channels: cin,
            out_channels: cout,
            kernel: k,
        };
        let in_q = QuantParams::from_range(-1.5, 2.5).unwrap();
        let x = random_i8(&mut rng, h * w * cin);
        let wf = random_f32(&mut rng, cout * k * k * cin, 0.4);
        let bf = random_f32(&mut rng, cout, 0.7);
        let mut wq = vec![0i8; wf.len()];
        let mut ws = vec![0f32; cout];
        quantize_weights_per_channel(&wf, cout, &mut wq, &mut ws).unwrap();
        let acc = reference_accumulators(&g, &x, in_q.zero_point, &wq);
        let s_x = in_q.scale as f64;
        let real: Vec<f64> = acc
            .iter()
            .enumerate()
            .map(|(i, &a)| s_x * ws[i % cout] as f64 * a as f64 + bf[i % cout] as f64)
            .collect();
        let lo = real.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = real.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let out_q = QuantParams::from_range(lo as f32, hi as f32).unwrap();
        let mut bias = vec![0i32; cout];
        quantize_bias(&bf, |c| s_x * ws[c] as f64, &mut bias).unwrap();
        let mut mults = vec![0i32; cout];
        let mut shifts = vec![0i32; cout];
        per_channel_requant(s_x, &ws, out_q.scale as f64, &mut mults, &mut shifts).unwrap();
        let conv = Conv2d {
            geometry: g,
            input_zero_point: in_q.zero_point,
            weights: &wq,
            bias: &bias,
            multipliers: &mults,
            shifts: &shifts,
            output_zero_point: out_q.zero_point,
        };
        let mut out = vec![0i8; h * w * cout];
        let (xa, xb) = split_channels(&x, ca, cb);
        let input = if cb == 0 {
            Channels::one(&x, cin)
        } else {
            Channels::concat(&xa, ca, &xb, cb)
        };
        conv.run(input, &mut out).unwrap();
        for (i, (&q, &v)) in out.iter().zip(&real).enumerate() {
            let m = s_x * ws[i % cout] as f64 / out_q.scale as f64;
            let r = v / out_q.scale as f64 + out_q.zero_point as f64;
            let bound = 1.0 + 0.5 * m + r.abs() * 2f64.powi(-31) + 1e-6;
            let clamped_r = r.clamp(-128.0, 127.0);
            assert!(
                (q as f64 - clamped_r).abs() <= bound,
                "geometry {g:?} element {i}: {q} vs {r} (bound {bound})"
            );
        }
    }
}

#[test]
fn oihw_to_ohwi_moves_each_weight() {
    // src[o][i][ky][kx] = 1000 o + 100 i + 10 ky + kx must land at dst[o][ky][kx][i].
    let (cout, cin, k) = (2, 3, 3);
    let mut src = vec![0i32; cout * cin * k * k];
    for o in 0..cout {
        for i in 0..cin {
            for ky in 0..k {
                for kx in 0..k {
                    src[((o * cin + i) * k + ky) * k + kx] =
                        (1000 * o + 100 * i + 10 * ky + kx) as i32;
                }
            }
        }
    }
    let mut dst = vec![0i32; src.len()];
    oihw_to_ohwi(&src, cout, cin, k, &mut dst).unwrap();
    for o in 0..cout {
        for ky in 0..k {
            for kx in 0..k {
                for i in 0..cin {
                    assert_eq!(
                        dst[((o * k + ky) * k + kx) * cin + i],
                        (1000 * o + 100 * i + 10 * ky + kx) as i32
                    );
                }
            }
        }
    }
    assert!(oihw_to_ohwi(&src, cout, cin, k, &mut dst[1..]).is_err());
}

#[test]
fn rejects_bad_shapes() {
    let x = [0i8; 9];
    let w = [1i8; 9];
    let good = Conv2d {
        geometry: ConvGeometry {
            height: 3,
            width: 3,
            in_channels: 1,
            out_channels: 1,
            kernel: 3,
        },
        input_zero_point: 0,
        weights: &w,
        bias: &[0],
        multipliers: &[ONE.multiplier],
        shifts: &[ONE.shift],
        output_zero_point: 0,
    };
    let mut out = [0i8; 9];
    assert!(good.run(Channels::one(&x, 1), &mut out).is_ok());
    let mut bad = good;
    bad.geometry.kernel = 2;
    assert!(matches!(
        bad.run(Channels::one(&x, 1), &mut out),
        Err(CoreError::InvalidParameter(_))
    ));
    let mut bad = good;
    bad.weights = &w[..8];
    assert!(matches!(
        bad.run(Channels::one(&x, 1), &mut out),
        Err(CoreError::ShapeMismatch { .. })
    ));
    let mut bad = good;
    bad.input_zero_point = 128;
    assert!(bad.run(Channels::one(&x, 1), &mut out).is_err());
    let mut bad = good;
    bad.bias = &[];
    assert!(bad.run(Channels::one(&x, 1), &mut out).is_err());
    assert!(good.run(Channels::one(&x[..8], 1), &mut out).is_err());
    assert!(good.run(Channels::one(&x, 1), &mut out[..8]).is_err());
    assert!(good.run(Channels::concat(&x, 1, &x, 1), &mut out).is_err());
    let mut bad = good;
    bad.geometry.in_channels = 8000; // 72000 taps > 65536
    assert!(matches!(
        bad.run(Channels::one(&x, 1), &mut out),
        Err(CoreError::InvalidParameter(_))
    ));
    let mut bad = good;
    bad.geometry.height = 0;
    assert!(bad.run(Channels::one(&x, 1), &mut out).is_err());
}
