//! Lookup tables: every entry of the sigmoid and SiLU tables against the function computed in
//! f64 (within half an output step, except where the output clamps), a few entries by hand,
//! and `apply_lut`.

use ambient_core::int8::lut::{apply_lut, build_lut, sigmoid, silu};
use ambient_core::int8::quant::{QuantParams, SIGMOID_OUTPUT};

fn sigmoid64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `|lut[q] - r(q)| <= 1/2 + tol` where `r` is the exact real-valued output in output steps,
/// or `lut[q]` is the clamp bound when `r` lies beyond it. `tol` = 1e-3 steps covers f32's
/// `expf` and division (relative errors ~1e-7 on values of at most a few hundred steps).
fn check_table(lut: &[i8; 256], in_q: QuantParams, out_q: QuantParams, f: impl Fn(f64) -> f64) {
    for (i, &entry) in lut.iter().enumerate() {
        let q = (i as i32 - 128) as i8;
        let x = in_q.scale as f64 * (q as i32 - in_q.zero_point) as f64;
        let r = f(x) / out_q.scale as f64 + out_q.zero_point as f64;
        let got = entry as f64;
        if r > 127.5 {
            assert_eq!(got, 127.0, "q {q}");
        } else if r < -128.5 {
            assert_eq!(got, -128.0, "q {q}");
        } else {
            assert!((got - r).abs() <= 0.5 + 1e-3, "q {q}: {got} vs {r}");
        }
    }
}

#[test]
fn sigmoid_table() {
    let in_q = QuantParams::new(1.0 / 16.0, 0).unwrap();
    let lut = build_lut(sigmoid, in_q, SIGMOID_OUTPUT);
    // q 0 -> x 0 -> 0.5 -> 128 / 256 -> 128 - 128 = 0.
    assert_eq!(lut[128], 0);
    // q 127 -> x 7.9375 -> 0.99964 -> 255.9 -> 256 -> 128 clamps to 127.
    assert_eq!(lut[255], 127);
    // q -128 -> x -8 -> 3.35e-4 -> 0.086 -> 0 -> -128.
    assert_eq!(lut[0], -128);
    // q 16 -> x 1 -> 0.731059 -> 187.15 -> 187 -> 59.
    assert_eq!(lut[128 + 16], 59);
    check_table(&lut, in_q, SIGMOID_OUTPUT, sigmoid64);
    let in_q = QuantParams::from_range(-3.0, 11.0).unwrap();
    check_table(
        &build_lut(sigmoid, in_q, SIGMOID_OUTPUT),
        in_q,
        SIGMOID_OUTPUT,
        sigmoid64,
    );
}

#[test]
fn silu_table() {
    let in_q = QuantParams::from_range(-6.0, 4.0).unwrap();
    // SiLU's minimum is -0.2785 near x = -1.278.
    let out_q = QuantParams::from_range(-0.2785, 4.0).unwrap();
    let lut = build_lut(silu, in_q, out_q);
    check_table(&lut, in_q, out_q, |x| x * sigmoid64(x));
    // The input's zero point maps to SiLU(0) = 0, exactly the output's zero point.
    assert_eq!(
        lut[(in_q.zero_point + 128) as usize] as i32,
        out_q.zero_point
    );
}

#[test]
fn apply_lut_maps_every_element() {
    // The identity table on equal quantizations, then a negating one.
    let q = QuantParams::new(0.5, 0).unwrap();
    let identity = build_lut(|x| x, q, q);
    for (i, &v) in identity.iter().enumerate() {
        assert_eq!(v as i32, i as i32 - 128);
    }
    let negate = build_lut(|x| -x, q, q);
    let mut data = [-128i8, -1, 0, 5, 127];
    apply_lut(&negate, &mut data);
    // -(-128) = 128 clamps to 127.
    assert_eq!(data, [127, 1, 0, -5, -127]);
}
