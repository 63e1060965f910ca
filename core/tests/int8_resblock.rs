//! The kernels composed as the first half of a ResBlock with an identity skip,
//! `(GatedConv3(SiLU(GN(x))) + x) / sqrt(2)`, each stage's output quantization feeding the
//! next stage's input, against the same network in f64 on the dequantized input and weights.
//! The per-element tolerance propagates each kernel's own bound (derived in its test file)
//! through the stages after it with their Lipschitz constants. What it catches that the kernel
//! tests cannot: the wiring of quantization parameters between stages.

mod int8_common;

use ambient_core::int8::add::{add, AddParams};
use ambient_core::int8::conv::ConvGeometry;
use ambient_core::int8::gated::{
    quantize_gated_conv, GatedConv2d, GatedConvBuffers, GatedConvScales, MAIN_MAX,
};
use ambient_core::int8::groupnorm::{group_norm_scratch_len, GroupNorm};
use ambient_core::int8::layout::Channels;
use ambient_core::int8::lut::{apply_lut, build_lut, silu};
use ambient_core::int8::quant::{quantize_weights_per_channel, QuantParams};
use ambient_core::AmbientRng;
use int8_common::{random_f32, random_i8};

const H: usize = 6;
const W: usize = 6;
const C: usize = 4;
const GROUPS: usize = 2;
const K: usize = 3;
const EPS: f32 = 1e-5;
/// `max |d/dx x sigmoid(x)|` = 1.0998 (at x = 2.3994); rounded up.
const SILU_LIPSCHITZ: f64 = 1.1;

fn params_of(v: &[f64]) -> QuantParams {
    let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    QuantParams::from_range(lo as f32, hi as f32).unwrap()
}

fn dequantize(q: &[i8], p: QuantParams) -> Vec<f64> {
    q.iter()
        .map(|&v| p.scale as f64 * (v as i32 - p.zero_point) as f64)
        .collect()
}

/// Same-padded (with real zeros) k x k convolution in f64, HWC input, OHWI weights.
fn conv_f64(x: &[f64], w: &[f64]) -> Vec<f64> {
    let pad = K / 2;
    let mut out = vec![0f64; H * W * C];
    for y in 0..H {
        for xx in 0..W {
            for o in 0..C {
                let mut s = 0f64;
                for ky in 0..K {
                    for kx in 0..K {
                        let (iy, ix) = (y + ky, xx + kx);
                        if iy < pad || ix < pad || iy - pad >= H || ix - pad >= W {
                            continue;
                        }
                        for c in 0..C {
                            s += x[((iy - pad) * W + ix - pad) * C + c]
                                * w[((o * K + ky) * K + kx) * C + c];
                        }
                    }
                }
                out[(y * W + xx) * C + o] = s;
            }
        }
    }
    out
}

fn group_norm_f64(v: &[f64], gamma: &[f32], beta: &[f32]) -> Vec<f64> {
    let cg = C / GROUPS;
    let mut out = vec![0f64; v.len()];
    for g in 0..GROUPS {
        let idx: Vec<usize> = (0..v.len()).filter(|i| i % C / cg == g).collect();
        let n = idx.len() as f64;
        let mean = idx.iter().map(|&i| v[i]).sum::<f64>() / n;
        let var = idx.iter().map(|&i| (v[i] - mean).powi(2)).sum::<f64>() / n;
        for &i in &idx {
            out[i] = gamma[i % C] as f64 * (v[i] - mean) / (var + EPS as f64).sqrt()
                + beta[i % C] as f64;
        }
    }
    out
}

#[test]
fn half_resblock_matches_float() {
    let mut rng = AmbientRng::new(77);
    let n = H * W * C;
    let in_q = QuantParams::from_range(-2.0, 2.0).unwrap();
    let x = random_i8(&mut rng, n);
    let gamma = random_f32(&mut rng, C, 1.5);
    let beta = random_f32(&mut rng, C, 0.5);
    let wf = random_f32(&mut rng, C * K * K * C, 0.3);
    let gf = random_f32(&mut rng, C * K * K * C, 0.5);
    let bf = random_f32(&mut rng, C, 0.2);

    // The float network on the dequantized input and (below) the dequantized weights.
    let v0 = dequantize(&x, in_q);
    let v1 = group_norm_f64(&v0, &gamma, &beta);
    let v2: Vec<f64> = v1.iter().map(|&t| t / (1.0 + (-t).exp())).collect();
    let (mut wq, mut gq) = (vec![0i8; wf.len()], vec![0i8; gf.len()]);
    let (mut ws, mut gs) = (vec![0f32; C], vec![0f32; C]);
    quantize_weights_per_channel(&wf, C, &mut wq, &mut ws).unwrap();
    quantize_weights_per_channel(&gf, C, &mut gq, &mut gs).unwrap();
    let flen = K * K * C;
    let w_hat: Vec<f64> = (0..wq.len())
        .map(|i| wq[i] as f64 * ws[i / flen] as f64)
        .collect();
    let g_hat: Vec<f64> = (0..gq.len())
        .map(|i| gq[i] as f64 * gs[i / flen] as f64)
        .collect();
    let a = conv_f64(&v2, &w_hat);
    let g = conv_f64(&v2, &g_hat);
    let v3: Vec<f64> = (0..n)
        .map(|i| a[i] / (1.0 + (-g[i]).exp()) + bf[i % C] as f64)
        .collect();
    let v4: Vec<f64> = (0..n)
        .map(|i| (v3[i] + v0[i]) * core::f64::consts::FRAC_1_SQRT_2)
        .collect();

    // The int8 pipeline, each stage's output quantization calibrated on the float values.
    let q1p = params_of(&v1);
    let gn = GroupNorm {
        height: H,
        width: W,
        channels: C,
        groups: GROUPS,
        eps: EPS,
        gamma: &gamma,
        beta: &beta,
        input: in_q,
        output: q1p,
    };
    let mut q12 = vec![0i8; n];
    let mut scratch = vec![0f32; group_norm_scratch_len(C)];
    gn.run(Channels::one(&x, C), &mut scratch, &mut q12)
        .unwrap();
    let q2p = params_of(&v2);
    apply_lut(&build_lut(silu, q1p, q2p), &mut q12);

    let geometry = ConvGeometry {
        height: H,
        width: W,
        in_channels: C,
        out_channels: C,
        kernel: K,
    };
    let main_max = a.iter().fold(0f64, |m, &t| m.max(t.abs()));
    let q3p = params_of(&v3);
    let scales = GatedConvScales {
        input: q2p,
        main_scale: (main_max / MAIN_MAX as f64) as f32,
        gate: params_of(&g),
        output: q3p,
    };
    let (mut bw, mut bg) = (vec![0i8; wq.len()], vec![0i8; gq.len()]);
    let (mut sw, mut sg) = (vec![0f32; C], vec![0f32; C]);
    let mut ints = vec![vec![0i32; C]; 5];
    let [mm, ms, gm, gsh, bias] = &mut ints[..] else {
        unreachable!()
    };
    let scalars = quantize_gated_conv(
        &geometry,
        &wf,
        &gf,
        &bf,
        &scales,
        GatedConvBuffers {
            weights: &mut bw,
            gates: &mut bg,
            weight_scales: &mut sw,
            gate_scales: &mut sg,
            main_multipliers: mm,
            main_shifts: ms,
            gate_multipliers: gm,
            gate_shifts: gsh,
            bias,
        },
    )
    .unwrap();
    let conv = GatedConv2d {
        geometry,
        input_zero_point: q2p.zero_point,
        weights: &bw,
        gates: &bg,
        main_multipliers: mm,
        main_shifts: ms,
        gate_multipliers: gm,
        gate_shifts: gsh,
        gate_zero_point: scales.gate.zero_point,
        sigmoid: &scalars.sigmoid,
        bias,
        output_multiplier: scalars.output.multiplier,
        output_shift: scalars.output.shift,
        output_zero_point: q3p.zero_point,
    };
    let mut q3 = vec![0i8; n];
    conv.run(Channels::one(&q12, C), &mut q3).unwrap();

    let q4p = params_of(&v4);
    let add_params = AddParams::new(q3p, in_q, q4p, core::f64::consts::FRAC_1_SQRT_2).unwrap();
    let mut q4 = vec![0i8; n];
    add(&add_params, &q3, &x, &mut q4).unwrap();

    // The tolerance, in real units per stage (each kernel's own bound from its test file; a
    // clamp at a calibrated range edge moves towards the float value, which lies inside it up
    // to the zero point's half-step nudge, so each quantized stage is within one step plus its
    // arithmetic error of the float value):
    // e1 GroupNorm: one step (half a step of rounding, half a step of nudge) + 1e-3.
    let e1 = q1p.scale as f64 * (1.0 + 1e-3);
    // e2 SiLU table: the table is exact on its grid up to one output step; the input error
    // passes through SiLU's Lipschitz constant.
    let e2 = SILU_LIPSCHITZ * e1 + q2p.scale as f64 * (1.0 + 1e-3);
    // e3 gated conv: the input error moves the main path by at most e2 sum|w_c| and the gate
    // by e2 sum|g_c|; then the bound of int8_gated, with those shifts added to its main-path
    // and gate errors: |s_m m - a| <= s_m (1 + 2^-16) + da, |u / 256 - sigmoid(g)| <= 1/256
    // + (s_gate (1 + 2^-16) + dg) / 4, bias s_m / 512, final rounding one step (+1e-4).
    let l1 = |f: &[f64], c: usize| {
        f[c * flen..(c + 1) * flen]
            .iter()
            .map(|t| t.abs())
            .sum::<f64>()
    };
    let (s_m, s_gate, s3) = (
        scales.main_scale as f64,
        scales.gate.scale as f64,
        q3p.scale as f64,
    );
    let e3: Vec<f64> = (0..n)
        .map(|i| {
            let (da, dg) = (e2 * l1(&w_hat, i % C), e2 * l1(&g_hat, i % C));
            let em = s_m * (1.0 + 2f64.powi(-16)) + da;
            let es = 1.0 / 256.0 + (s_gate * (1.0 + 2f64.powi(-16)) + dg) / 4.0;
            em + a[i].abs() * es + s_m / 512.0 + s3 * (1.0 + 1e-4)
        })
        .collect();
    // e4 ADD (1/sqrt 2): the first input's error scaled by 1/sqrt 2, the skip exact, then
    // ADD's own bound (int8_add): 1/2 + 2^shift / 2 + 2M steps, and the nudge's half step.
    let s4 = q4p.scale as f64;
    let m_out = 2.0 * (q3p.scale.max(in_q.scale) as f64) * core::f64::consts::FRAC_1_SQRT_2
        / ((1u64 << 20) as f64 * s4);
    let add_own = 1.0 + 0.5 * 2f64.powi(add_params.output.shift) + 2.0 * m_out + 1e-6;
    let mut worst = 0f64;
    let mut mean_bound = 0f64;
    let (mut mean_signed, mut mean_abs) = (0f64, 0f64);
    for i in 0..n {
        let bound = e3[i] * core::f64::consts::FRAC_1_SQRT_2 / s4 + add_own;
        let r = v4[i] / s4 + q4p.zero_point as f64;
        let err = (q4[i] as f64 - r).abs();
        assert!(
            err <= bound,
            "element {i}: {} vs {r} (bound {bound})",
            q4[i]
        );
        worst = worst.max(err);
        mean_signed += (q4[i] as f64 - r) / n as f64;
        mean_abs += err / n as f64;
        mean_bound += bound / n as f64;
    }
    // The worst-case bound adds every stage's error in L1 through the convolution, so it is
    // loose (about 12 steps on average here) and would let a wiring slip of a step or two
    // pass. The actual errors are sums of many independent roundings, zero-mean, each stage's
    // at most one step: their mean absolute value is about the final rounding's 1/4 step, and
    // their signed mean has a standard error of at most 0.5 / sqrt(144) = 0.04. A zero point or
    // scale wired to the wrong stage shifts or stretches every output; the fixed seed makes
    // the check reproducible. So: mean |error| below 1/2 step, |signed mean| below 0.2
    // (5 standard errors).
    assert!(mean_abs < 0.5, "mean error {mean_abs} steps");
    assert!(
        mean_signed.abs() < 0.2,
        "signed mean error {mean_signed} steps"
    );
    eprintln!(
        "half ResBlock: worst error {worst:.3} steps, mean {mean_abs:.3}, signed mean \
         {mean_signed:.3}; mean bound {mean_bound:.3} steps"
    );
}
