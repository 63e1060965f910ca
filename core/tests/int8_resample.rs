//! 2x2 average pooling (TFLM's rounding, by hand and against the exact mean for every 4-tuple
//! pattern) and 2x nearest upsampling, with their shape errors.

use ambient_core::int8::resample::{avg_pool_2x2, upsample_nearest_2x};
use ambient_core::AmbientRng;

#[test]
fn avg_pool_by_hand() {
    // One 4x2 image, 2 channels. Channel 0 windows: [1, 2, 3, 4] sum 10 -> 2.5 -> 3;
    // [-1, -2, -3, -4] sum -10 -> -2.5 -> -3. Channel 1: [1, 1, 1, 2] 5 -> 1.25 -> 1;
    // [-1, -1, -1, -2] -5 -> -1.25 -> -1. HWC order: pixel (y, x) channel c at (y*2 + x)*2 + c.
    let x: [i8; 16] = [
        1, 1, 2, 1, // row 0
        3, 1, 4, 2, // row 1
        -1, -1, -2, -1, // row 2
        -3, -1, -4, -2, // row 3
    ];
    let mut out = [0i8; 4];
    avg_pool_2x2(&x, 4, 2, 2, &mut out).unwrap();
    assert_eq!(out, [3, 1, -3, -1]);
    // Extremes stay in range: the mean of int8 values is an int8.
    let mut out1 = [0i8; 1];
    avg_pool_2x2(&[127; 4], 2, 2, 1, &mut out1).unwrap();
    assert_eq!(out1, [127]);
    avg_pool_2x2(&[-128; 4], 2, 2, 1, &mut out1).unwrap();
    assert_eq!(out1, [-128]);
}

/// The mean of four integers is a multiple of 1/4: rounding it to nearest, ties (x.5) away
/// from zero, is within 1/2, and exactly 1/2 only at a tie, where the sign decides.
#[test]
fn avg_pool_rounds_to_nearest_ties_away() {
    let mut rng = AmbientRng::new(3);
    for _ in 0..10_000 {
        let x: Vec<i8> = (0..4)
            .map(|_| (rng.below(256) as i32 - 128) as i8)
            .collect();
        let mut out = [0i8; 1];
        avg_pool_2x2(&x, 2, 2, 1, &mut out).unwrap();
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / 4.0;
        let err = out[0] as f64 - mean;
        assert!(err.abs() <= 0.5, "{x:?}: {} vs {mean}", out[0]);
        if err.abs() == 0.5 {
            assert_eq!(err.signum(), mean.signum(), "{x:?}: tie not away from zero");
        }
    }
}

#[test]
fn upsample_by_hand() {
    // 1x2 image, 2 channels: pixel 0 (1, 2), pixel 1 (3, 4) -> 2x4, each pixel repeated in a
    // 2x2 block.
    let x = [1i8, 2, 3, 4];
    let mut out = [0i8; 16];
    upsample_nearest_2x(&x, 1, 2, 2, &mut out).unwrap();
    let row = [1i8, 2, 1, 2, 3, 4, 3, 4];
    assert_eq!(&out[..8], &row);
    assert_eq!(&out[8..], &row);
}

#[test]
fn shape_errors() {
    let x = [0i8; 12];
    let mut out = [0i8; 48];
    assert!(avg_pool_2x2(&x, 3, 2, 2, &mut out[..3]).is_err()); // odd height
    assert!(avg_pool_2x2(&x, 2, 2, 3, &mut out[..2]).is_err()); // output too short
    assert!(avg_pool_2x2(&x[..11], 2, 2, 3, &mut out[..3]).is_err());
    assert!(avg_pool_2x2(&x, 2, 2, 3, &mut out[..3]).is_ok());
    assert!(upsample_nearest_2x(&x, 2, 2, 3, &mut out).is_ok());
    assert!(upsample_nearest_2x(&x, 2, 2, 3, &mut out[..47]).is_err());
    assert!(upsample_nearest_2x(&x, 0, 2, 3, &mut out).is_err());
}
