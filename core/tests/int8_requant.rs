//! TFLite's QuantizeMultiplier and TFLM's MultiplyByQuantizedMultiplier against hand-derived
//! values: ties of both roundings (gemmlowp's high-mul rounds ties towards +infinity, the
//! power-of-two division rounds them away from zero), positive and negative shifts, the
//! saturation edge, the mantissa-overflow and flush-to-zero cases of QuantizeMultiplier, and a
//! randomised bound on the total error against exact arithmetic.

use ambient_core::int8::requant::{
    multiply_by_quantized_multiplier, quantize_multiplier, rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul, Requant,
};
use ambient_core::{AmbientRng, CoreError};

const HALF_Q31: i32 = 1 << 30; // 0.5 in Q31
const THREE_QUARTERS_Q31: i32 = 3 << 29; // 0.75 in Q31 = 1_610_612_736

#[test]
fn rounding_divide_by_pot_rounds_ties_away_from_zero() {
    // (-3, 1): -1.5. mask 1, remainder -3 & 1 = 1 (...11101), threshold 0 + 1 = 1,
    // -3 >> 1 = -2, 1 > 1 false: -2 (away from zero).
    assert_eq!(rounding_divide_by_pot(-3, 1), -2);
    // (-5, 2): -1.25. mask 3, -5 & 3 = 3 (...11011), threshold 1 + 1 = 2, -5 >> 2 = -2,
    // 3 > 2: -2 + 1 = -1.
    assert_eq!(rounding_divide_by_pot(-5, 2), -1);
    // (5, 2): 1.25. 5 & 3 = 1, threshold 1, 5 >> 2 = 1, 1 > 1 false: 1.
    assert_eq!(rounding_divide_by_pot(5, 2), 1);
    // (6, 2): 1.5. 6 & 3 = 2 > threshold 1: 1 + 1 = 2.
    assert_eq!(rounding_divide_by_pot(6, 2), 2);
    // (-6, 2): -1.5. -6 & 3 = 2 (...11010), threshold 2, -6 >> 2 = -2, 2 > 2 false: -2.
    assert_eq!(rounding_divide_by_pot(-6, 2), -2);
    // (-7, 2): -1.75. -7 & 3 = 1 (...11001), threshold 2, -7 >> 2 = -2: -2.
    assert_eq!(rounding_divide_by_pot(-7, 2), -2);
    // exponent 0 is the identity.
    assert_eq!(rounding_divide_by_pot(-123, 0), -123);
    // (i32::MIN, 31) = -1 exactly: remainder 0, -2^31 >> 31 = -1.
    assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
    // (i32::MAX, 31) = 0.99999...: remainder 2^31 - 1 > threshold 2^30 - 1: 0 + 1 = 1.
    assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
    // Out-of-range exponents are clamped instead of panicking.
    assert_eq!(rounding_divide_by_pot(8, -3), 8);
    assert_eq!(rounding_divide_by_pot(i32::MIN, 40), -1);
}

#[test]
fn saturating_rounding_doubling_high_mul_by_hand() {
    // The one overflowing product saturates.
    assert_eq!(
        saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN),
        i32::MAX
    );
    // 0.5 * 0.5 = 0.25 = 2^29 in Q31: (2^60 + 2^30) / 2^31 = 2^29 (+ 0.5 truncated).
    assert_eq!(
        saturating_rounding_doubling_high_mul(HALF_Q31, HALF_Q31),
        1 << 29
    );
    // 3 * 0.5 = 1.5: (3 * 2^30 + 2^30) / 2^31 = 2 exactly.
    assert_eq!(saturating_rounding_doubling_high_mul(3, HALF_Q31), 2);
    // -3 * 0.5 = -1.5: (-3 * 2^30 + 1 - 2^30) / 2^31 = (-2^32 + 1) / 2^31 = -1.99..., truncated
    // to -1: a negative tie goes towards +infinity, not away from zero.
    assert_eq!(saturating_rounding_doubling_high_mul(-3, HALF_Q31), -1);
    // -1 * 0.5 = -0.5: (-2^30 + 1 - 2^30) / 2^31 = -0.99... -> 0.
    assert_eq!(saturating_rounding_doubling_high_mul(-1, HALF_Q31), 0);
    // -5 * 0.5 = -2.5 -> (-6 * 2^30 + 1) / 2^31 = -2.99... -> -2.
    assert_eq!(saturating_rounding_doubling_high_mul(-5, HALF_Q31), -2);
    // Not a tie: -7 * 0.75 = -5.25: (-21 * 2^29 + 1 - 2^30) / 2^31 = -5.75 + 2^-31 -> -5.
    assert_eq!(
        saturating_rounding_doubling_high_mul(-7, THREE_QUARTERS_Q31),
        -5
    );
    // MAX * MAX: (2^62 - 2^32 + 1 + 2^30) / 2^31 = 2^31 - 2 + (2^30 + 1) / 2^31 -> 2^31 - 2.
    assert_eq!(
        saturating_rounding_doubling_high_mul(i32::MAX, i32::MAX),
        i32::MAX - 1
    );
    // MIN * MAX = -2^62 + 2^31: (-2^62 + 2^31 + 1 - 2^30) / 2^31 = -2^31 + 1/2 + 2^-31,
    // truncated towards zero: -2^31 + 1.
    assert_eq!(
        saturating_rounding_doubling_high_mul(i32::MIN, i32::MAX),
        i32::MIN + 1
    );
}

#[test]
fn quantize_multiplier_by_hand() {
    // 0.5 = 0.5 * 2^0: mantissa 0.5 * 2^31 = 2^30, shift 0.
    assert_eq!(quantize_multiplier(0.5), (HALF_Q31, 0));
    // 1.0 = 0.5 * 2^1.
    assert_eq!(quantize_multiplier(1.0), (HALF_Q31, 1));
    // 0.75 = 0.75 * 2^0: 0.75 * 2^31 = 1_610_612_736.
    assert_eq!(quantize_multiplier(0.75), (THREE_QUARTERS_Q31, 0));
    // 3 = 0.75 * 2^2.
    assert_eq!(quantize_multiplier(3.0), (THREE_QUARTERS_Q31, 2));
    // 0.1875 = 0.75 * 2^-2.
    assert_eq!(quantize_multiplier(0.1875), (THREE_QUARTERS_Q31, -2));
    // 1 - 2^-31 is its own frexp mantissa: (1 - 2^-31) 2^31 = 2^31 - 1 = i32::MAX.
    assert_eq!(quantize_multiplier(1.0 - 2f64.powi(-31)), (i32::MAX, 0));
    // 1 - 2^-33: mantissa * 2^31 = 2^31 - 1/4, rounds to 2^31, which does not fit: halved to
    // 2^30 with the shift raised to 1, i.e. exactly 1.0.
    assert_eq!(quantize_multiplier(1.0 - 2f64.powi(-33)), (HALF_Q31, 1));
    // 2^-32 = 0.5 * 2^-31: shift -31 is still kept.
    assert_eq!(quantize_multiplier(2f64.powi(-32)), (HALF_Q31, -31));
    // 2^-33 = 0.5 * 2^-32: shift -32 < -31 flushes to zero, as does anything tinier.
    assert_eq!(quantize_multiplier(2f64.powi(-33)), (0, 0));
    assert_eq!(quantize_multiplier(1e-300), (0, 0));
    assert_eq!(quantize_multiplier(0.0), (0, 0));
    // Negative: frexp(-0.5) = (-0.5, 0).
    assert_eq!(quantize_multiplier(-0.5), (-HALF_Q31, 0));
    // 1/3 = (2/3) 2^-1: (2/3) 2^31 = 1431655765.33 -> 1431655765.
    assert_eq!(quantize_multiplier(1.0 / 3.0), (1_431_655_765, -1));
    // Non-finite input gives (0, 0) rather than aborting.
    assert_eq!(quantize_multiplier(f64::NAN), (0, 0));
    assert_eq!(quantize_multiplier(f64::INFINITY), (0, 0));
}

#[test]
fn multiply_by_quantized_multiplier_by_hand() {
    // x 3 times 0.5: high-mul gives 1.5 -> 2, no right shift: 2.
    assert_eq!(multiply_by_quantized_multiplier(3, HALF_Q31, 0), 2);
    // x -3 times 0.5: high-mul gives -1.5 -> -1 (tie towards +inf).
    assert_eq!(multiply_by_quantized_multiplier(-3, HALF_Q31, 0), -1);
    // x 100 times 0.1875 = 18.75: high-mul 100 * 0.75 = 75 exactly, then 75 / 4 = 18.75 -> 19.
    assert_eq!(
        multiply_by_quantized_multiplier(100, THREE_QUARTERS_Q31, -2),
        19
    );
    // x -100 times 0.1875 = -18.75: high-mul -75 exactly, -75 / 4 = -18.75 -> -19.
    assert_eq!(
        multiply_by_quantized_multiplier(-100, THREE_QUARTERS_Q31, -2),
        -19
    );
    // Double rounding: x 5 times 0.25 (0.5, shift -1) = 1.25 exactly, but the high-mul rounds
    // 2.5 up to 3 and the division rounds 1.5 away from zero to 2. TFLM returns 2, not 1.
    assert_eq!(multiply_by_quantized_multiplier(5, HALF_Q31, -1), 2);
    // Positive shift: 3 times 2.0 (0.5, shift 2): 3 * 4 = 12, high-mul 12 * 0.5 = 6.
    assert_eq!(multiply_by_quantized_multiplier(3, HALF_Q31, 2), 6);
    // And -7 times 3.0 (0.75, shift 2): -28 * 0.75 = -21 exactly.
    assert_eq!(
        multiply_by_quantized_multiplier(-7, THREE_QUARTERS_Q31, 2),
        -21
    );
    // Saturation edge: MIN * MIN in the high-mul gives MAX; no shift.
    assert_eq!(
        multiply_by_quantized_multiplier(i32::MIN, i32::MIN, 0),
        i32::MAX
    );
    // Multiplier 1 - 2^-31 (i32::MAX, 0) on i32::MAX: 2^31 - 2 (derived in the high-mul test).
    assert_eq!(
        multiply_by_quantized_multiplier(i32::MAX, i32::MAX, 0),
        i32::MAX - 1
    );
    // Tiny multiplier 2^-32 (2^30, -31): 2^30 * 2^-32 = 0.25 -> high-mul 2^30 * 0.5 = 2^29,
    // then 2^29 / 2^31 = 0.25 -> 0. And i32::MAX * 2^-32 = 0.4999... -> high-mul
    // (2^61 - 2^30 + 2^30) / 2^31 = 2^30, then 2^30 / 2^31 = 0.5 -> 1 (double rounding again).
    assert_eq!(multiply_by_quantized_multiplier(1 << 30, HALF_Q31, -31), 0);
    assert_eq!(multiply_by_quantized_multiplier(i32::MAX, HALF_Q31, -31), 1);
    // A zero multiplier (the flushed case) gives zero.
    assert_eq!(multiply_by_quantized_multiplier(i32::MAX, 0, 0), 0);
}

#[test]
fn requant_validates() {
    assert_eq!(
        Requant::from_real(0.75),
        Ok(Requant {
            multiplier: THREE_QUARTERS_Q31,
            shift: 0
        })
    );
    assert!(matches!(
        Requant::from_real(f64::NAN),
        Err(CoreError::NonFinite(_))
    ));
    assert!(matches!(
        Requant::from_real(-0.1),
        Err(CoreError::InvalidParameter(_))
    ));
    assert!(matches!(
        Requant::from_real(2f64.powi(30)),
        Err(CoreError::InvalidParameter(_))
    ));
    // 2^30 (1 - 2^-40) is below 2^30, but its mantissa (1 - 2^-40) 2^31 rounds to 2^31, which
    // becomes 2^30 with shift 31: a left shift no int32 survives, so it is rejected too.
    assert_eq!(
        quantize_multiplier(2f64.powi(30) * (1.0 - 2f64.powi(-40))),
        (1 << 30, 31)
    );
    assert!(Requant::from_real(2f64.powi(30) * (1.0 - 2f64.powi(-40))).is_err());
    // 2^29 = 0.5 * 2^30: shift 30, accepted.
    assert_eq!(
        Requant::from_real(2f64.powi(29)),
        Ok(Requant {
            multiplier: HALF_Q31,
            shift: 30
        })
    );
}

/// For any real multiplier `r` in the valid range and any `x` with `|x r| < 2^30`:
/// `q 2^(s-31)` represents `r` with relative error at most `2^-31` (the mantissa is at least
/// `2^30` and is rounded to the nearest integer), the high-mul rounds to within 1/2 of the
/// pre-shift value and the power-of-two division adds at most another 1/2 (plus the first
/// error scaled down by `2^-e`). So `|result - x r| <= 1 + |x r| 2^-31`.
#[test]
fn requantization_error_is_within_one() {
    let mut rng = AmbientRng::new(31);
    for _ in 0..200_000 {
        // log-uniform multiplier in [2^-24, 2^6).
        let r = 2f64.powf(-24.0 + 30.0 * rng.uniform() as f64);
        let limit = ((1u64 << 30) as f64 / r).min(i32::MAX as f64);
        let x = ((rng.uniform() as f64 * 2.0 - 1.0) * limit) as i32;
        let req = Requant::from_real(r).unwrap();
        let got = req.apply(x) as f64;
        let exact = x as f64 * r;
        let bound = 1.0 + exact.abs() * 2f64.powi(-31);
        assert!(
            (got - exact).abs() <= bound,
            "x {x} r {r}: got {got}, exact {exact}"
        );
    }
}
