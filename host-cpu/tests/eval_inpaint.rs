//! Harmonic and biharmonic inpainting: the equations' exact solutions are reproduced (affine
//! images by harmonic inpainting, quadratic ones by biharmonic inpainting, where the missing
//! pixels are far enough from the border that the discrete operators are the interior
//! stencils), a quadratic is NOT reproduced by harmonic inpainting (so the exactness checks
//! can fail), the border's zero-normal-derivative condition by hand, and the solver's
//! convergence report and errors.
//!
//! Tolerance of the exactness checks: CG stops at relative residual 1e-10; the error of the
//! solution is at most cond(A) times that relative to the solution's size. On these 12-16
//! pixel planes cond is below 1e2 (harmonic, ~ (2 side / pi)^2) and 1e4 (biharmonic, its
//! square), so the solver's error is below 1e-6 of the O(1) values, then one f32 rounding
//! (6e-8). We allow 2e-6.

use ambient_core::AmbientRng;
use ambient_cpu::eval::inpaint::{inpaint_images, inpaint_plane, Inpainting, SolverSettings};
use ambient_cpu::eval::EvalError;

const TIGHT: SolverSettings = SolverSettings {
    tolerance: 1e-10,
    max_iterations: 100_000,
};

/// A mask of an `h x w` plane that hides each pixel with distance >= `margin` from the
/// border with probability 0.6 (seeded), and keeps every other pixel.
fn interior_mask(h: usize, w: usize, margin: usize, seed: u64) -> Vec<f32> {
    let mut rng = AmbientRng::new(seed);
    (0..h * w)
        .map(|p| {
            let (y, x) = (p / w, p % w);
            let inside = y >= margin && y + margin < h && x >= margin && x + margin < w;
            if inside && rng.bernoulli(0.6) {
                0.0
            } else {
                1.0
            }
        })
        .collect()
}

fn plane(h: usize, w: usize, f: impl Fn(f64, f64) -> f64) -> Vec<f32> {
    (0..h * w)
        .map(|p| f((p / w) as f64, (p % w) as f64) as f32)
        .collect()
}

/// Measurement: the image with missing pixels set to a wrong value (never to be read).
fn measure(img: &[f32], mask: &[f32]) -> Vec<f32> {
    img.iter()
        .zip(mask)
        .map(|(&v, &m)| if m == 1.0 { v } else { 7.0 })
        .collect()
}

fn max_err(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn harmonic_reproduces_an_affine_image() {
    let (h, w) = (12, 12);
    let img = plane(h, w, |y, x| 0.1 * x - 0.05 * y + 0.2);
    let mask = interior_mask(h, w, 1, 1);
    assert!(mask.iter().filter(|&&m| m == 0.0).count() > 40);
    let (out, conv) = inpaint_plane(
        &measure(&img, &mask),
        &mask,
        (h, w),
        Inpainting::Harmonic,
        TIGHT,
    )
    .unwrap();
    assert!(max_err(&out, &img) < 2e-6, "{}", max_err(&out, &img));
    assert!(conv.iterations > 0 && conv.relative_residual <= 1e-10);
}

#[test]
fn biharmonic_reproduces_a_quadratic_and_harmonic_does_not() {
    let (h, w) = (16, 16);
    let img = plane(h, w, |y, x| {
        0.01 * (x - 5.0).powi(2) - 0.008 * x * y + 0.005 * (y - 6.0).powi(2) - 0.6
    });
    let mask = interior_mask(h, w, 2, 2);
    let y = measure(&img, &mask);
    let (bi, conv) = inpaint_plane(&y, &mask, (h, w), Inpainting::Biharmonic, TIGHT).unwrap();
    assert!(max_err(&bi, &img) < 2e-6, "{}", max_err(&bi, &img));
    assert!(conv.iterations > 0 && conv.relative_residual <= 1e-10);
    eprintln!(
        "biharmonic 16x16: {} CG iterations, relative residual {:.2e}",
        conv.iterations, conv.relative_residual
    );
    // The Laplacian of this quadratic is 2 (0.01 + 0.005) = 0.03 per pixel^2, not 0: the
    // harmonic fill sags by O(0.03 * d^2) over gaps of d pixels, far above 2e-6.
    let (harm, _) = inpaint_plane(&y, &mask, (h, w), Inpainting::Harmonic, TIGHT).unwrap();
    assert!(max_err(&harm, &img) > 1e-3, "{}", max_err(&harm, &img));
}

#[test]
fn border_pixels_have_zero_normal_derivative() {
    // The left column is missing but for its two corners. A ramp along y is harmonic at a
    // left-border pixel that has both vertical neighbours (they average to it and the
    // horizontal difference is 0), so it is reproduced. (At a corner it is not: the corner
    // has one vertical neighbour, which is why the corners are observed here.)
    let (h, w) = (8, 9);
    let mask: Vec<f32> = (0..h * w)
        .map(|p| (p % w != 0 || p == 0 || p == (h - 1) * w) as u8 as f32)
        .collect();
    let ramp_y = plane(h, w, |y, _| 0.1 * y - 0.3);
    let (out, _) = inpaint_plane(
        &measure(&ramp_y, &mask),
        &mask,
        (h, w),
        Inpainting::Harmonic,
        TIGHT,
    )
    .unwrap();
    assert!(max_err(&out, &ramp_y) < 2e-6);
    // The whole left column missing and a ramp along x: the column takes the values of
    // column 1 (u(0, y) = f(1, y) solves every equation there, corners included).
    let mask: Vec<f32> = (0..h * w).map(|p| (p % w != 0) as u8 as f32).collect();
    let ramp_x = plane(h, w, |_, x| 0.1 * x - 0.3);
    let (out, _) = inpaint_plane(
        &measure(&ramp_x, &mask),
        &mask,
        (h, w),
        Inpainting::Harmonic,
        TIGHT,
    )
    .unwrap();
    for y in 0..h {
        assert!((out[y * w] - ramp_x[y * w + 1]).abs() < 2e-6, "row {y}");
    }
}

#[test]
fn convergence_is_reported_and_enforced() {
    let (h, w) = (12, 12);
    let img = plane(h, w, |y, x| (0.3 * x).sin() + 0.1 * y - 0.5);
    let mask = interior_mask(h, w, 0, 3);
    let y = measure(&img, &mask);
    let few = SolverSettings {
        tolerance: 1e-10,
        max_iterations: 2,
    };
    match inpaint_plane(&y, &mask, (h, w), Inpainting::Biharmonic, few) {
        Err(EvalError::NotConverged {
            iterations,
            residual,
            ..
        }) => assert!(iterations == 2 && residual > 1e-10),
        other => panic!("expected NotConverged, got {other:?}"),
    }
    // Default settings converge; observed pixels are kept exactly.
    let (out, conv) = inpaint_plane(
        &y,
        &mask,
        (h, w),
        Inpainting::Biharmonic,
        SolverSettings::default(),
    )
    .unwrap();
    assert!(conv.relative_residual <= 1e-6 && conv.iterations > 2);
    for p in 0..h * w {
        if mask[p] == 1.0 {
            assert_eq!(out[p], img[p]);
        }
    }
    // Nothing missing: no iteration, the image itself.
    let all = vec![1.0f32; h * w];
    let (out, conv) = inpaint_plane(&img, &all, (h, w), Inpainting::Harmonic, TIGHT).unwrap();
    assert_eq!((out, conv.iterations), (img.clone(), 0));
    // Nothing observed: an error, not a guess.
    let none = vec![0.0f32; h * w];
    assert!(matches!(
        inpaint_plane(&img, &none, (h, w), Inpainting::Harmonic, TIGHT),
        Err(EvalError::Invalid(_))
    ));
    assert!(matches!(
        inpaint_plane(&img[1..], &all, (h, w), Inpainting::Harmonic, TIGHT),
        Err(EvalError::Shape(_))
    ));
}

#[test]
fn images_are_inpainted_plane_by_plane() {
    // 2 images x 2 channels: the batch function equals the plane function on each plane.
    let (h, w) = (10, 10);
    let mut ys = Vec::new();
    let mut ms = Vec::new();
    for k in 0..4u64 {
        let img = plane(h, w, |y, x| ((k as f64 + 1.0) * 0.2 * x).cos() * 0.1 * y);
        let m = interior_mask(h, w, 0, 10 + k);
        ys.extend(measure(&img, &m));
        ms.extend(m);
    }
    let (all, worst) =
        inpaint_images(&ys, &ms, (2, 2, h, w), Inpainting::Biharmonic, TIGHT).unwrap();
    let mut most = 0;
    for k in 0..4 {
        let r = k * h * w..(k + 1) * h * w;
        let (one, conv) = inpaint_plane(
            &ys[r.clone()],
            &ms[r.clone()],
            (h, w),
            Inpainting::Biharmonic,
            TIGHT,
        )
        .unwrap();
        assert_eq!(&all[r], &one[..]);
        most = most.max(conv.iterations);
    }
    assert_eq!(worst.iterations, most);
}
