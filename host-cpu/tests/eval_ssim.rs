//! SSIM: identical images score 1, hand-computed windows (uniform 3 x 3 on a 3 x 3 image; any
//! window on constant images, where SSIM reduces to the luminance term), a constant shift
//! lowers it monotonically, the mean over images, and typed errors.
//!
//! Tolerances: SSIM is accumulated in f64 from f32 pixels; the only error against the
//! hand values is that of representing pixels such as 0.9 in f32 (relative 6e-8), which
//! moves an SSIM of O(1) by well under 1e-6.

use ambient_core::AmbientRng;
use ambient_cpu::eval::ssim::Ssim;
use ambient_cpu::eval::EvalError;

const C1: f64 = 0.0004; // (0.01 * 2)^2
const C2: f64 = 0.0036; // (0.03 * 2)^2

fn random_images(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = AmbientRng::new(seed);
    (0..n)
        .map(|_| (0.5 * rng.normal()).clamp(-1.0, 1.0))
        .collect()
}

#[test]
fn identical_images_score_one() {
    let x = random_images(2 * 16 * 16, 1);
    let s = Ssim::gaussian().mean(&x, &x, (2, 1, 16, 16)).unwrap();
    assert!((s - 1.0).abs() < 1e-12, "{s}");
    let u = Ssim::uniform(7)
        .unwrap()
        .mean(&x, &x, (1, 2, 16, 16))
        .unwrap();
    assert!((u - 1.0).abs() < 1e-12, "{u}");
}

#[test]
fn uniform_window_by_hand() {
    // x: 0.9 in the centre of a 3 x 3 image, 0 elsewhere: mean 0.1, variance 0.81/9 - 0.01 =
    // 0.08. Against y = 0: (C1 / (0.01 + C1)) * (C2 / (0.08 + C2)).
    let mut x = vec![0.0f32; 9];
    x[4] = 0.9;
    let zero = vec![0.0f32; 9];
    let w = Ssim::uniform(3).unwrap();
    let want = (C1 / (0.01 + C1)) * (C2 / (0.08 + C2));
    let got = w.mean(&x, &zero, (1, 1, 3, 3)).unwrap();
    assert!((got - want).abs() < 1e-6 * want + 1e-9, "{got} vs {want}");
    // y = x + 0.2: the same variance and covariance 0.08 (structure term 1); means 0.1, 0.3:
    // (2 * 0.1 * 0.3 + C1) / (0.01 + 0.09 + C1).
    let y: Vec<f32> = x.iter().map(|v| v + 0.2).collect();
    let want = (0.06 + C1) / (0.1 + C1);
    let got = w.mean(&x, &y, (1, 1, 3, 3)).unwrap();
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    // Symmetric in its arguments.
    assert!((w.mean(&y, &x, (1, 1, 3, 3)).unwrap() - got).abs() < 1e-15);
}

#[test]
fn constant_images_reduce_to_the_luminance_term() {
    // Zero variances: SSIM = (2ab + C1) / (a^2 + b^2 + C1) at every window, any weights.
    let (a, b) = (0.3f64, -0.1f64);
    let want = (2.0 * a * b + C1) / (a * a + b * b + C1);
    for (h, w) in [(11, 11), (12, 13)] {
        let x = vec![a as f32; h * w];
        let y = vec![b as f32; h * w];
        let got = Ssim::gaussian().mean(&x, &y, (1, 1, h, w)).unwrap();
        assert!((got - want).abs() < 1e-6, "{h}x{w}: {got} vs {want}");
    }
}

#[test]
fn a_constant_shift_lowers_ssim_monotonically() {
    let x = random_images(20 * 20, 2);
    let ssim = Ssim::gaussian();
    let mut last = 1.0;
    for shift in [0.05f32, 0.1, 0.2, 0.4] {
        let y: Vec<f32> = x.iter().map(|v| v + shift).collect();
        let s = ssim.mean(&x, &y, (1, 1, 20, 20)).unwrap();
        assert!(s < last, "shift {shift}: {s} not below {last}");
        last = s;
    }
}

#[test]
fn mean_over_images() {
    // Image 0 identical (SSIM 1), image 1 constant 0.3 vs -0.1 (closed form above).
    let (h, w) = (11, 11);
    let mut x = random_images(h * w, 3);
    let mut y = x.clone();
    x.extend(std::iter::repeat_n(0.3f32, h * w));
    y.extend(std::iter::repeat_n(-0.1f32, h * w));
    let lum = (2.0 * 0.3 * -0.1 + C1) / (0.09 + 0.01 + C1);
    let got = Ssim::gaussian().mean(&x, &y, (2, 1, h, w)).unwrap();
    assert!((got - (1.0 + lum) / 2.0).abs() < 1e-6, "{got}");
}

#[test]
fn bad_inputs_are_typed_errors() {
    let s = Ssim::gaussian();
    let small = vec![0.0f32; 100];
    assert!(matches!(
        s.mean(&small, &small, (1, 1, 10, 10)),
        Err(EvalError::Shape(_))
    ));
    let x = vec![0.0f32; 144];
    assert!(matches!(
        s.mean(&x, &x[..143], (1, 1, 12, 12)),
        Err(EvalError::Shape(_))
    ));
    let mut bad = x.clone();
    bad[5] = f32::NAN;
    assert!(matches!(
        s.mean(&x, &bad, (1, 1, 12, 12)),
        Err(EvalError::NonFinite(_))
    ));
    assert!(Ssim::uniform(0).is_err());
}
