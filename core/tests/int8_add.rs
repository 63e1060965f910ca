//! int8 ADD: two hand-computed elements through TFLite's arithmetic (left shift 20, per-input
//! multipliers, output multiplier), the folded `1 / sqrt(2)` of a residual sum against a float
//! reference over every pair of int8 inputs with a derived bound, the in-place form, and errors.

use ambient_core::int8::add::{add, add_in_place, AddParams};
use ambient_core::int8::quant::QuantParams;
use ambient_core::CoreError;

#[test]
fn two_elements_by_hand() {
    // in1 (0.5, 0), in2 (0.25, 10), out (1, -3), factor 1. twice_max = 1: input multipliers
    // 0.5 = (2^30, 0) and 0.25 = (2^30, -1); output 1 / 2^20 = (2^30, -19).
    let p = AddParams::new(
        QuantParams::new(0.5, 0).unwrap(),
        QuantParams::new(0.25, 10).unwrap(),
        QuantParams::new(1.0, -3).unwrap(),
        1.0,
    )
    .unwrap();
    assert_eq!((p.input1.multiplier, p.input1.shift), (1 << 30, 0));
    assert_eq!((p.input2.multiplier, p.input2.shift), (1 << 30, -1));
    assert_eq!((p.output.multiplier, p.output.shift), (1 << 30, -19));
    // a 7, b 14: 7 * 2^20 * 0.5 = 3.5 * 2^20 (exact); (14 - 10) * 2^20 * 0.5 = 2 * 2^20, / 2 =
    // 2^20; sum 4.5 * 2^20; * 0.5 = 2.25 * 2^20, / 2^19 = 4.5 -> 5 (away from zero); -3 + 5 = 2.
    // (Real: 3.5 + 1 = 4.5 -> 4.5 - 3 = 1.5 -> 2.)
    assert_eq!(p.add_one(7, 14), 2);
    // a -7, b 6: -3.5 * 2^20 and -2^20: -4.5 * 2^20 -> -2.25 * 2^20 -> -4.5 -> -5; -3 - 5 = -8.
    assert_eq!(p.add_one(-7, 6), -8);
    // Clamping: 127 * 0.5 + 117 * 0.25 = 92.75 -> 93 - 3 = 90; -128 * 0.5 - 138 * 0.25 =
    // -98.5 -> -99 - 3 = -102: inside. With output zero point 100 the first clamps to 127.
    let q = AddParams::new(
        QuantParams::new(0.5, 0).unwrap(),
        QuantParams::new(0.25, 10).unwrap(),
        QuantParams::new(1.0, 100).unwrap(),
        1.0,
    )
    .unwrap();
    assert_eq!(p.add_one(127, 127), 90);
    assert_eq!(p.add_one(-128, -128), -102);
    assert_eq!(q.add_one(127, 127), 127);
}

/// Every pair of int8 inputs against `r = f (s_1 (a - zp_1) + s_2 (b - zp_2)) / s_o + zp_o`.
/// With `u = 2 max(s_1, s_2) / 2^20` the unit of the scaled inputs, each scaled input is within
/// 1 + 2^-31 |value| of its exact value in units of u (requantization bound, int8_requant), so
/// the sum is within 2 (+ 2^-21 relative); the output multiplier `M = u f / s_o` carries that
/// into at most `2 M` output steps. The final requantization has right shift `e = -shift`: its
/// high-mul rounds to within 1/2 of a unit `2^-e` output steps, and the division by `2^e`
/// rounds to within 1/2 step, so it adds at most `1/2 + 2^-e / 2` (+ |r| 2^-31): with e = 19
/// here, the result is the nearest integer up to 1e-6 of a step.
#[test]
fn residual_sum_matches_float_reference() {
    let in1 = QuantParams::new(0.031, -7).unwrap();
    let in2 = QuantParams::new(0.047, 12).unwrap();
    let out = QuantParams::new(0.05, 3).unwrap();
    let f = core::f64::consts::FRAC_1_SQRT_2;
    let p = AddParams::new(in1, in2, out, f).unwrap();
    let u = 2.0 * 0.047f32 as f64 / (1u64 << 20) as f64;
    let m = u * f / out.scale as f64;
    assert_eq!(p.output.shift, -19);
    for a in -128..=127i32 {
        for b in -128..=127i32 {
            let v = f
                * (in1.scale as f64 * (a - in1.zero_point) as f64
                    + in2.scale as f64 * (b - in2.zero_point) as f64);
            let r = v / out.scale as f64 + out.zero_point as f64;
            let bound = 0.5
                + 0.5 * 2f64.powi(p.output.shift)
                + 2.0 * m * (1.0 + 1e-6)
                + r.abs() * 2f64.powi(-31)
                + 1e-9;
            let got = p.add_one(a as i8, b as i8) as f64;
            let err = (got - r.clamp(-128.0, 127.0)).abs();
            assert!(err <= bound, "a {a} b {b}: {got} vs {r}");
        }
    }
}

#[test]
fn slices_and_in_place_agree() {
    let q = QuantParams::new(0.1, 0).unwrap();
    let p = AddParams::new(q, q, q, 1.0).unwrap();
    let a = [1i8, -5, 100, 120];
    let b = [2i8, -5, 27, 120];
    let mut out = [0i8; 4];
    add(&p, &a, &b, &mut out).unwrap();
    // Equal quantizations and factor 1: the plain sum, clamped.
    assert_eq!(out, [3, -10, 127, 127]);
    let mut c = a;
    add_in_place(&p, &mut c, &b).unwrap();
    assert_eq!(c, out);
    assert!(matches!(
        add(&p, &a, &b[..3], &mut out),
        Err(CoreError::ShapeMismatch { .. })
    ));
    assert!(add(&p, &a, &b, &mut out[..3]).is_err());
    let mut bad = p;
    bad.output_offset = 300;
    assert!(add(&p, &a, &b, &mut out).is_ok());
    assert!(add_in_place(&bad, &mut c, &b).is_err());
}

#[test]
fn rejects_bad_parameters() {
    let q = QuantParams::new(0.1, 0).unwrap();
    assert!(AddParams::new(q, q, q, 0.0).is_err());
    assert!(AddParams::new(q, q, q, f64::NAN).is_err());
    // Output scale 2^-22 of the inputs': 2 * 0.1 / (2^20 * 0.1 * 2^-22) = 8 >= 1.
    let fine = QuantParams::new(0.1 / 4_194_304.0, 0).unwrap();
    assert!(matches!(
        AddParams::new(q, q, fine, 1.0),
        Err(CoreError::InvalidParameter(_))
    ));
    let bad = QuantParams {
        scale: -1.0,
        zero_point: 0,
    };
    assert!(AddParams::new(bad, q, q, 1.0).is_err());
}
