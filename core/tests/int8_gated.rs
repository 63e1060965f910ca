//! The gated convolution `conv(x, W) * sigmoid(conv(x, G)) + b`: an exact hand-computed case
//! through every stage (int16 main path, int8 gate, sigmoid table, product and bias requantized
//! once), and a comparison with the float reference computed from the dequantized operands in
//! f64 under an error bound derived stage by stage.

mod int8_common;

use ambient_core::int8::conv::ConvGeometry;
use ambient_core::int8::gated::{
    quantize_gated_conv, GatedConv2d, GatedConvBuffers, GatedConvScales, MAIN_MAX,
};
use ambient_core::int8::layout::Channels;
use ambient_core::int8::lut::{build_lut, sigmoid};
use ambient_core::int8::quant::{quantize_weights_per_channel, QuantParams, SIGMOID_OUTPUT};
use ambient_core::AmbientRng;
use int8_common::{random_f32, random_i8, reference_accumulators, split_channels};

#[test]
fn one_channel_by_hand() {
    // Two pixels, x - zp_x = 10 and -10; W = 3, G = 1 (k = 1); main and gate multipliers 1.
    // Main: m = 30, -30. Gate: g = 10, -10 (gate zp 0); at gate scale 0.1 these are x = 1 and
    // -1: sigmoid 0.731059 -> 256 * that = 187.15 -> 187 (entry 59, unit 187) and 0.268941 ->
    // 68.85 -> 69 (unit 69). Bias 256 (1.0 at scale s_m / 256 with s_m = 1). Output multiplier
    // 1/256 = (2^30, -7), output zero point 3:
    // pixel 0: 30 * 187 + 256 = 5866; high-mul by 0.5: 2933 exactly; 2933 / 128 = 22.9 -> 23;
    //          out 26.
    // pixel 1: -30 * 69 + 256 = -1814; high-mul: -907 exactly; -907 / 128 = -7.09 -> -7;
    //          out -4.
    let lut = build_lut(sigmoid, QuantParams::new(0.1, 0).unwrap(), SIGMOID_OUTPUT);
    assert_eq!((lut[138], lut[118]), (59, -59));
    let x = [12i8, -8];
    let conv = GatedConv2d {
        geometry: ConvGeometry {
            height: 1,
            width: 2,
            in_channels: 1,
            out_channels: 1,
            kernel: 1,
        },
        input_zero_point: 2,
        weights: &[3],
        gates: &[1],
        main_multipliers: &[1 << 30],
        main_shifts: &[1],
        gate_multipliers: &[1 << 30],
        gate_shifts: &[1],
        gate_zero_point: 0,
        sigmoid: &lut,
        bias: &[256],
        output_multiplier: 1 << 30,
        output_shift: -7,
        output_zero_point: 3,
    };
    let mut out = [0i8; 2];
    conv.run(Channels::one(&x, 1), &mut out).unwrap();
    assert_eq!(out, [26, -4]);
    // A wrongly sized gate filter is an error, not a panic.
    let mut bad = conv;
    bad.gates = &[];
    assert!(bad.run(Channels::one(&x, 1), &mut out).is_err());
}

/// Per element, with `a = s_x s_w[c] acc_w` and `g = s_x s_g[c] acc_g` exact and
/// `v = a sigmoid(g) + b` the float reference:
/// - main path: `|s_m m - a| <= s_m (1 + 2^-16)` (requantization within one int16 step, see
///   int8_requant; the relative term `|a / s_m| 2^-31 <= 2^-16`; clamping at +-32767 moves
///   towards `a`, which is within that range by the choice of `s_m`);
/// - gate: `|g^ - g| <= s_gate (1 + 2^-16)` likewise (int8 clamping moves towards `g`);
/// - table: `|u / 256 - sigmoid(g^)| <= 1/256` (half a step of rounding, or a full step where
///   256 clamps to 255), and sigmoid is 1/4-Lipschitz: `|u / 256 - sigmoid(g)| <= e_s =
///   s_gate (1 + 2^-16) / 4 + 1/256`;
/// - product: `|s_m m u / 256 - a sigmoid(g)| <= e_m * 1 + |a| e_s`;
/// - bias: `round(256 b / s_m)` is within half a step, `s_m / 512`;
/// - final requantization: one output step (plus `|r| 2^-31`).
///
/// In output steps: `(e_m + |a| e_s + s_m / 512) / s_o + 1 + 1e-4` (1e-4 for the f32 table
/// evaluation and f64 rounding), compared with `r = v / s_o + zp_o` clamped to the int8 range.
#[test]
fn matches_float_reference() {
    let mut rng = AmbientRng::new(11);
    let mut max_err = 0f64;
    let mut sum_err = 0f64;
    let mut count = 0usize;
    for &(h, w, ca, cb, cout, k) in &[
        (5, 4, 3, 0, 4, 3),
        (6, 5, 2, 3, 5, 3),
        (4, 7, 4, 0, 3, 1),
        (3, 5, 2, 2, 6, 1),
    ] {
        let cin = ca + cb;
        let g = ConvGeometry {
            height: h,
            width: w,
            in_channels: cin,
            out_channels: cout,
            kernel: k,
        };
        let flen = k * k * cin;
        let in_q = QuantParams::from_range(-1.0, 3.0).unwrap();
        let x = random_i8(&mut rng, h * w * cin);
        let wf = random_f32(&mut rng, cout * flen, 0.3);
        let gf = random_f32(&mut rng, cout * flen, 0.5);
        let bf = random_f32(&mut rng, cout, 0.5);
        // Calibrate on the quantized model (the weights quantize the same way inside
        // quantize_gated_conv): exact accumulators, then the real values.
        let mut wq = vec![0i8; wf.len()];
        let mut gq = vec![0i8; gf.len()];
        let mut ws = vec![0f32; cout];
        let mut gs = vec![0f32; cout];
        quantize_weights_per_channel(&wf, cout, &mut wq, &mut ws).unwrap();
        quantize_weights_per_channel(&gf, cout, &mut gq, &mut gs).unwrap();
        let s_x = in_q.scale as f64;
        let acc_w = reference_accumulators(&g, &x, in_q.zero_point, &wq);
        let acc_g = reference_accumulators(&g, &x, in_q.zero_point, &gq);
        let n = h * w * cout;
        let a: Vec<f64> = (0..n)
            .map(|i| s_x * ws[i % cout] as f64 * acc_w[i] as f64)
            .collect();
        let gv: Vec<f64> = (0..n)
            .map(|i| s_x * gs[i % cout] as f64 * acc_g[i] as f64)
            .collect();
        let v: Vec<f64> = (0..n)
            .map(|i| a[i] / (1.0 + (-gv[i]).exp()) + bf[i % cout] as f64)
            .collect();
        let range = |s: &[f64]| {
            let lo = s.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            QuantParams::from_range(lo as f32, hi as f32).unwrap()
        };
        let main_max = a.iter().fold(0f64, |m, &t| m.max(t.abs()));
        let scales = GatedConvScales {
            input: in_q,
            main_scale: (main_max / MAIN_MAX as f64) as f32,
            gate: range(&gv),
            output: range(&v),
        };
        let mut bufs_w = vec![0i8; wf.len()];
        let mut bufs_g = vec![0i8; gf.len()];
        let (mut sw, mut sg) = (vec![0f32; cout], vec![0f32; cout]);
        let (mut mm, mut ms, mut gm, mut gsh, mut bias) = (
            vec![0i32; cout],
            vec![0i32; cout],
            vec![0i32; cout],
            vec![0i32; cout],
            vec![0i32; cout],
        );
        let scalars = quantize_gated_conv(
            &g,
            &wf,
            &gf,
            &bf,
            &scales,
            GatedConvBuffers {
                weights: &mut bufs_w,
                gates: &mut bufs_g,
                weight_scales: &mut sw,
                gate_scales: &mut sg,
                main_multipliers: &mut mm,
                main_shifts: &mut ms,
                gate_multipliers: &mut gm,
                gate_shifts: &mut gsh,
                bias: &mut bias,
            },
        )
        .unwrap();
        assert_eq!(bufs_w, wq);
        assert_eq!(sg, gs);
        let conv = GatedConv2d {
            geometry: g,
            input_zero_point: in_q.zero_point,
            weights: &bufs_w,
            gates: &bufs_g,
            main_multipliers: &mm,
            main_shifts: &ms,
            gate_multipliers: &gm,
            gate_shifts: &gsh,
            gate_zero_point: scales.gate.zero_point,
            sigmoid: &scalars.sigmoid,
            bias: &bias,
            output_multiplier: scalars.output.multiplier,
            output_shift: scalars.output.shift,
            output_zero_point: scales.output.zero_point,
        };
        let (xa, xb) = split_channels(&x, ca, cb);
        let input = if cb == 0 {
            Channels::one(&x, cin)
        } else {
            Channels::concat(&xa, ca, &xb, cb)
        };
        let mut out = vec![0i8; n];
        conv.run(input, &mut out).unwrap();
        let s_m = scales.main_scale as f64;
        let s_o = scales.output.scale as f64;
        let e_m = s_m * (1.0 + 2f64.powi(-16));
        let e_s = scales.gate.scale as f64 * (1.0 + 2f64.powi(-16)) / 4.0 + 1.0 / 256.0;
        for i in 0..n {
            let r = v[i] / s_o + scales.output.zero_point as f64;
            let bound = (e_m + a[i].abs() * e_s + s_m / 512.0) / s_o + 1.0 + 1e-4;
            let err = (out[i] as f64 - r.clamp(-128.0, 127.0)).abs();
            assert!(
                err <= bound,
                "geometry {g:?} element {i}: {} vs {r} (bound {bound})",
                out[i]
            );
            max_err = max_err.max(err);
            sum_err += err;
            count += 1;
        }
    }
    // The per-element bound is worst case (up to ~3 steps where |a| is large) and would let a
    // systematic one-step offset (a zero point off by one) pass. On average a correct kernel's
    // error is the final rounding's, uniform with mean 1/4 step, plus the smaller average of
    // the gate's error; an offset of one step would make the mean at least 3/4. So: below 1/2.
    let mean = sum_err / count as f64;
    eprintln!("gated conv: mean error {mean:.3} steps, max {max_err:.3}, over {count}");
    assert!(mean < 0.5, "mean error {mean} steps (max {max_err})");
}
