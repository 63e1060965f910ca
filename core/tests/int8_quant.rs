//! Quantization parameters against hand-derived values (ranges whose scale is exact in binary,
//! so every expected zero point is derived without floating-point doubt), the round trip error
//! bound, symmetric per-channel weights and int32 biases, and typed errors.

use ambient_core::int8::quant::{
    quantize_bias, quantize_weights_per_channel, symmetric_scale, QuantParams,
};
use ambient_core::{AmbientRng, CoreError};

#[test]
fn choose_quantization_params_by_hand() {
    // [-64, 63.5]: scale 127.5 / 255 = 0.5; from min: -128 + 64 / 0.5 = 0 (error 128 + 128),
    // from max: 127 - 127 = 0 (error 127 + 127, smaller): zero point 0.
    assert_eq!(
        QuantParams::from_range(-64.0, 63.5).unwrap(),
        QuantParams {
            scale: 0.5,
            zero_point: 0
        }
    );
    // [-1, 126.5]: scale 0.5; from min: -128 + 2 = -126 (error 130), chosen; zero point -126.
    assert_eq!(
        QuantParams::from_range(-1.0, 126.5).unwrap(),
        QuantParams {
            scale: 0.5,
            zero_point: -126
        }
    );
    // [-63.75, 63.75]: scale 0.5; from max: 127 - 127.5 = -0.5 (error 254.5 < 255.5), a tie
    // rounded away from zero: -1.
    assert_eq!(
        QuantParams::from_range(-63.75, 63.75).unwrap(),
        QuantParams {
            scale: 0.5,
            zero_point: -1
        }
    );
    // [-2, 0]: from max: 127 - 0 = 127 (error 127, chosen).
    let q = QuantParams::from_range(-2.0, 0.0).unwrap();
    assert_eq!(q.zero_point, 127);
    assert_eq!(q.scale, (2.0f64 / 255.0) as f32);
    // [0.5, 2] is widened to [0, 2]: from min: -128 - 0 = -128 (error 128, chosen).
    let q = QuantParams::from_range(0.5, 2.0).unwrap();
    assert_eq!(q.zero_point, -128);
    assert_eq!(q.scale, (2.0f64 / 255.0) as f32);
    // The point range {0}: scale 1, zero point 0 (documented deviation from TFLite's scale 0).
    assert_eq!(
        QuantParams::from_range(0.0, 0.0).unwrap(),
        QuantParams {
            scale: 1.0,
            zero_point: 0
        }
    );
}

#[test]
fn choose_quantization_params_rejects_bad_ranges() {
    assert!(matches!(
        QuantParams::from_range(f32::NAN, 1.0),
        Err(CoreError::NonFinite(_))
    ));
    assert!(matches!(
        QuantParams::from_range(-1.0, f32::INFINITY),
        Err(CoreError::NonFinite(_))
    ));
    assert!(matches!(
        QuantParams::from_range(1.0, -1.0),
        Err(CoreError::InvalidParameter(_))
    ));
    assert!(QuantParams::new(0.0, 0).is_err());
    assert!(QuantParams::new(1.0, 128).is_err());
    assert!(QuantParams::new(f32::NAN, 0).is_err());
}

#[test]
fn quantize_and_dequantize_by_hand() {
    let q = QuantParams::new(0.5, 3).unwrap();
    // 1.25 / 0.5 = 2.5 -> 3 (half away from zero), + 3 = 6.
    assert_eq!(q.quantize(1.25), 6);
    // -1.25 / 0.5 = -2.5 -> -3, + 3 = 0.
    assert_eq!(q.quantize(-1.25), 0);
    assert_eq!(q.quantize(1000.0), 127);
    assert_eq!(q.quantize(-1000.0), -128);
    assert_eq!(q.dequantize(6), 1.5);
    assert_eq!(q.dequantize(-128), -65.5);
}

/// For a range [min, max] containing 0: the grid `scale (q - zp)` for q in [-128, 127] covers
/// [min, max] up to the zero point's nudge, at most half a step at either end. So a value in
/// the range quantizes to within half a step (nearest grid point) when it is inside the grid,
/// and to within a full step when it is in the half step the nudge cut off; 0 is exact.
#[test]
fn round_trip_error_within_half_a_step() {
    let mut rng = AmbientRng::new(5);
    for _ in 0..2000 {
        let min = -rng.uniform() * 10.0;
        let max = rng.uniform() * 10.0;
        let q = QuantParams::from_range(min, max).unwrap();
        assert_eq!(q.dequantize(q.zero_point as i8), 0.0);
        let lo = q.dequantize(-128);
        let hi = q.dequantize(127);
        for _ in 0..50 {
            let x = min + (max - min) * rng.uniform();
            let err = (q.dequantize(q.quantize(x)) - x).abs();
            // f32 rounding of x / scale and of the dequantization: a few ulps of 10.
            let tol = 1e-5;
            if x >= lo && x <= hi {
                assert!(err <= 0.5 * q.scale + tol, "x {x} err {err} {q:?}");
            } else {
                assert!(err <= q.scale + tol, "x {x} err {err} {q:?}");
            }
        }
    }
}

#[test]
fn symmetric_weights_per_channel_by_hand() {
    // Channel 0: max |w| = 1.27, scale 0.01, 0.5 / 0.01 = 50, -1.27 -> -127.
    // Channel 1: all zero: scale 1, all 0.
    let w = [0.5f32, -1.27, 0.0, 0.0, 0.0, 0.0];
    let mut q = [0i8; 6];
    let mut s = [0f32; 2];
    quantize_weights_per_channel(&w, 2, &mut q, &mut s).unwrap();
    assert_eq!(q, [50, -127, 0, 0, 0, 0]);
    assert_eq!(s, [1.27 / 127.0, 1.0]);
    assert_eq!(symmetric_scale(&[0.0, -2.54]).unwrap(), 2.54 / 127.0);
    assert!(quantize_weights_per_channel(&w, 4, &mut q, &mut s).is_err());
    assert!(quantize_weights_per_channel(&w, 2, &mut q[..5], &mut s).is_err());
    assert!(matches!(
        symmetric_scale(&[f32::NAN]),
        Err(CoreError::NonFinite(_))
    ));
}

#[test]
fn bias_by_hand() {
    // Scale 0.125 (exact): 0.3125 / 0.125 = 2.5 -> 3, -2.5 -> -3, 1 / 0.125 = 8.
    let mut q = [0i32; 3];
    quantize_bias(&[0.3125, -0.3125, 1.0], |_| 0.125, &mut q).unwrap();
    assert_eq!(q, [3, -3, 8]);
    // Per-channel scales: 1 / 0.5 = 2, 1 / 0.25 = 4, 1 / 2 = 0.5 -> 1.
    let scales = [0.5, 0.25, 2.0];
    quantize_bias(&[1.0, 1.0, 1.0], |c| scales[c], &mut q).unwrap();
    assert_eq!(q, [2, 4, 1]);
    // 2^28 / 0.125 = 2^31 > 2^30: rejected.
    assert!(quantize_bias(&[268_435_456.0, 0.0, 0.0], |_| 0.125, &mut q).is_err());
    assert!(quantize_bias(&[1.0, 1.0, 1.0], |_| 0.0, &mut q).is_err());
    assert!(quantize_bias(&[1.0], |_| 1.0, &mut q).is_err());
}
