//! int8 GroupNorm: a hand-computed case, a float reference (dequantized input, f64 statistics,
//! quantized output) that the kernel must meet to within half a step plus f32 noise, including
//! a concatenated input whose group straddles the two buffers, and typed errors.

mod int8_common;

use ambient_core::int8::groupnorm::{group_norm_scratch_len, GroupNorm};
use ambient_core::int8::layout::Channels;
use ambient_core::int8::quant::QuantParams;
use ambient_core::{AmbientRng, CoreError};
use int8_common::{random_f32, random_i8, split_channels};

#[test]
fn one_group_by_hand() {
    // 2x2 image, 1 channel, zp 5: d = x - 5 = [-3, -1, 1, 3]: mean 0, variance (9+1+1+9)/4 = 5.
    // s_x = 1, eps 1e-5, gamma 2, beta 0.5, output (0.25, 1):
    // y / s_o = 8 d / sqrt(5.00001) + 2 = 3.5777 d + 2 -> -8.733, -1.578, 5.578, 12.733
    // -> rounded -9, -2, 6, 13 -> plus zp 1: -8, -1, 7, 14.
    let gn = GroupNorm {
        height: 2,
        width: 2,
        channels: 1,
        groups: 1,
        eps: 1e-5,
        gamma: &[2.0],
        beta: &[0.5],
        input: QuantParams::new(1.0, 5).unwrap(),
        output: QuantParams::new(0.25, 1).unwrap(),
    };
    let x = [2i8, 4, 6, 8];
    let mut scratch = [0f32; 2];
    let mut out = [0i8; 4];
    gn.run(Channels::one(&x, 1), &mut scratch, &mut out)
        .unwrap();
    assert_eq!(out, [-8, -1, 7, 14]);
    // A constant group has variance 0: every element maps to beta exactly (d - mean = 0),
    // 0.5 / 0.25 + 1 = 3.
    gn.run(Channels::one(&[9; 4], 1), &mut scratch, &mut out)
        .unwrap();
    assert_eq!(out, [3; 4]);
}

/// The reference: `y = gamma_c (v - mean_g) / sqrt(var_g + eps) + beta_c` with `v` the
/// dequantized input and the statistics in f64, then `r = y / s_o + zp_o`. The kernel's
/// statistics are exact integers; its f32 steps (mean, variance, rsqrt, the coefficients, one
/// multiply and one add per element) each add a relative error of at most 2^-24, a few times
/// 1e-7 of values below ~300 steps: 1e-3 steps covers them. So `|out - clamp(r)| <= 1/2 + 1e-3`.
#[test]
fn matches_float_reference() {
    let mut rng = AmbientRng::new(23);
    for &(h, w, ca, cb, groups) in &[
        (4, 4, 8, 0, 4),
        (5, 3, 2, 4, 2), // group 0 = channels 0, 1 (first buffer) and 2 (second): straddles
        (7, 7, 6, 0, 1),
        (2, 6, 3, 3, 3),
    ] {
        let c = ca + cb;
        let in_q = QuantParams::from_range(-2.0, 5.0).unwrap();
        // Narrow the input in some channels so that groups have different variances.
        let mut x = random_i8(&mut rng, h * w * c);
        for (i, v) in x.iter_mut().enumerate() {
            if i % c % 2 == 1 {
                *v /= 8;
            }
        }
        let gamma: Vec<f32> = random_f32(&mut rng, c, 1.5);
        let beta: Vec<f32> = random_f32(&mut rng, c, 0.5);
        let out_q = QuantParams::from_range(-3.0, 3.0).unwrap();
        let gn = GroupNorm {
            height: h,
            width: w,
            channels: c,
            groups,
            eps: 1e-5,
            gamma: &gamma,
            beta: &beta,
            input: in_q,
            output: out_q,
        };
        let (xa, xb) = split_channels(&x, ca, cb);
        let input = if cb == 0 {
            Channels::one(&x, c)
        } else {
            Channels::concat(&xa, ca, &xb, cb)
        };
        let mut scratch = vec![0f32; group_norm_scratch_len(c)];
        let mut out = vec![0i8; h * w * c];
        gn.run(input, &mut scratch, &mut out).unwrap();

        let cg = c / groups;
        let v: Vec<f64> = x
            .iter()
            .map(|&q| in_q.scale as f64 * (q as i32 - in_q.zero_point) as f64)
            .collect();
        for g in 0..groups {
            let members: Vec<usize> = (0..h * w * c).filter(|i| i % c / cg == g).collect();
            let n = members.len() as f64;
            let mean = members.iter().map(|&i| v[i]).sum::<f64>() / n;
            let var = members.iter().map(|&i| (v[i] - mean).powi(2)).sum::<f64>() / n;
            for &i in &members {
                let ch = i % c;
                let y = gamma[ch] as f64 * (v[i] - mean) / (var + 1e-5f32 as f64).sqrt()
                    + beta[ch] as f64;
                let r = y / out_q.scale as f64 + out_q.zero_point as f64;
                let err = (out[i] as f64 - r.clamp(-128.0, 127.0)).abs();
                assert!(
                    err <= 0.5 + 1e-3,
                    "element {i} group {g}: {} vs {r}",
                    out[i]
                );
            }
        }
    }
}

#[test]
fn rejects_bad_parameters() {
    let x = [0i8; 8];
    let good = GroupNorm {
        height: 2,
        width: 2,
        channels: 2,
        groups: 2,
        eps: 1e-5,
        gamma: &[1.0, 1.0],
        beta: &[0.0, 0.0],
        input: QuantParams::new(0.1, 0).unwrap(),
        output: QuantParams::new(0.1, 0).unwrap(),
    };
    let mut scratch = [0f32; 4];
    let mut out = [0i8; 8];
    assert!(good
        .run(Channels::one(&x, 2), &mut scratch, &mut out)
        .is_ok());
    let mut bad = good;
    bad.groups = 3;
    assert!(matches!(
        bad.run(Channels::one(&x, 2), &mut scratch, &mut out),
        Err(CoreError::InvalidParameter(_))
    ));
    let mut bad = good;
    bad.eps = 0.0;
    assert!(bad
        .run(Channels::one(&x, 2), &mut scratch, &mut out)
        .is_err());
    let mut bad = good;
    bad.gamma = &[1.0];
    assert!(bad
        .run(Channels::one(&x, 2), &mut scratch, &mut out)
        .is_err());
    let mut bad = good;
    bad.beta = &[f32::NAN, 0.0];
    assert!(matches!(
        bad.run(Channels::one(&x, 2), &mut scratch, &mut out),
        Err(CoreError::NonFinite(_))
    ));
    assert!(good
        .run(Channels::one(&x, 2), &mut scratch[..3], &mut out)
        .is_err());
    assert!(good
        .run(Channels::one(&x[..6], 2), &mut scratch, &mut out)
        .is_err());
    assert!(good
        .run(Channels::one(&x, 2), &mut scratch, &mut out[..7])
        .is_err());
}
