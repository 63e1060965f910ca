//! Fréchet distance and its linear algebra: the Jacobi eigen-solver (a 2 x 2 by hand,
//! reconstruction and orthogonality on a random matrix), the PSD square root, the Gaussian
//! fit by hand, and the distance against closed forms: diagonal covariances
//! (`sum (sqrt a - sqrt b)^2 + |mu1 - mu2|^2`), the same rotated by a common orthogonal matrix
//! (commuting covariances: unchanged), a non-commuting 2 x 2 pair
//! (`Tr sqrt(S1^(1/2) S2 S1^(1/2)) = sqrt(Tr(S1 S2) + 2 sqrt(det S1 det S2))`, as the
//! eigenvalues l1, l2 of the 2 x 2 matrix have sqrt(l1) + sqrt(l2) = sqrt(l1 + l2 + 2 sqrt(l1 l2))),
//! identical sets (0), and large samples of two Gaussians (within their sampling error).
//!
//! Tolerances of the exact cases: everything is f64 and the eigen-solver stops at an
//! off-diagonal norm of 1e-14 of the matrix's; eigenvalues are then accurate to about
//! 1e-14 of the largest, their square roots (of O(1) values) likewise, so the distance of O(1)
//! inputs is accurate to about d * 1e-14; we allow 1e-10.

use ambient_core::AmbientRng;
use ambient_cpu::eval::frechet::{frechet_distance, GaussianFit};
use ambient_cpu::eval::linalg::{matmul, sqrt_psd, symmetric_eigen};

fn fit(mean: Vec<f64>, cov: Vec<f64>) -> GaussianFit {
    GaussianFit {
        dim: mean.len(),
        mean,
        cov,
    }
}

fn diag(v: &[f64]) -> Vec<f64> {
    let d = v.len();
    let mut m = vec![0.0; d * d];
    (0..d).for_each(|i| m[i * d + i] = v[i]);
    m
}

fn transpose(a: &[f64], d: usize) -> Vec<f64> {
    (0..d * d).map(|k| a[(k % d) * d + k / d]).collect()
}

/// The Householder reflection `I - 2 v v^T / v^T v` (orthogonal, independent of the code
/// under test).
fn householder(v: &[f64]) -> Vec<f64> {
    let d = v.len();
    let vv: f64 = v.iter().map(|x| x * x).sum();
    (0..d * d)
        .map(|k| (k / d == k % d) as u8 as f64 - 2.0 * v[k / d] * v[k % d] / vv)
        .collect()
}

#[test]
fn jacobi_by_hand_and_reconstruction() {
    // [[2, 1], [1, 2]] has eigenvalues 1 and 3.
    let (mut l, _) = symmetric_eigen(&[2.0, 1.0, 1.0, 2.0], 2).unwrap();
    l.sort_by(f64::total_cmp);
    assert!((l[0] - 1.0).abs() < 1e-14 && (l[1] - 3.0).abs() < 1e-14);
    // A random symmetric 7 x 7: V diag(l) V^T = A and V^T V = I.
    let d = 7;
    let mut rng = AmbientRng::new(4);
    let b: Vec<f64> = (0..d * d).map(|_| rng.normal() as f64).collect();
    let a: Vec<f64> = (0..d * d).map(|k| b[k] + b[(k % d) * d + k / d]).collect();
    let (l, v) = symmetric_eigen(&a, d).unwrap();
    let rec = matmul(&matmul(&v, &diag(&l), d), &transpose(&v, d), d);
    let vtv = matmul(&transpose(&v, d), &v, d);
    for k in 0..d * d {
        assert!((rec[k] - a[k]).abs() < 1e-12, "reconstruction at {k}");
        let id = (k / d == k % d) as u8 as f64;
        assert!((vtv[k] - id).abs() < 1e-12, "orthogonality at {k}");
    }
    // The square root of the SPD matrix A^T A squares back to it.
    let spd = matmul(&transpose(&a, d), &a, d);
    let r = sqrt_psd(&spd, d).unwrap();
    let rr = matmul(&r, &r, d);
    let scale = spd.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    for k in 0..d * d {
        assert!((rr[k] - spd[k]).abs() < 1e-11 * scale, "sqrt at {k}");
    }
}

#[test]
fn gaussian_fit_by_hand() {
    // The corners of a square of side 2: mean (1, 1), unbiased covariance 4/3 I.
    let f = GaussianFit::from_features(&[0.0, 0.0, 2.0, 0.0, 0.0, 2.0, 2.0, 2.0], 2).unwrap();
    assert_eq!(f.mean, vec![1.0, 1.0]);
    let want = [4.0 / 3.0, 0.0, 0.0, 4.0 / 3.0];
    for (g, w) in f.cov.iter().zip(want) {
        assert!((g - w).abs() < 1e-15);
    }
    assert!(GaussianFit::from_features(&[1.0, 2.0], 2).is_err());
    assert!(GaussianFit::from_features(&[1.0, 2.0, 3.0], 2).is_err());
}

#[test]
fn diagonal_and_commuting_covariances_match_the_closed_form() {
    let a = [1.0, 0.25, 4.0, 0.5];
    let b = [0.5, 1.0, 1.0, 0.5];
    let mu1 = vec![0.0, 1.0, -1.0, 0.5];
    let mu2 = vec![0.5, 1.0, 0.0, 0.5];
    let want: f64 = a
        .iter()
        .zip(&b)
        .map(|(x, y): (&f64, &f64)| (x.sqrt() - y.sqrt()).powi(2))
        .sum::<f64>()
        + 0.25
        + 1.0;
    let got = frechet_distance(&fit(mu1.clone(), diag(&a)), &fit(mu2.clone(), diag(&b))).unwrap();
    assert!((got - want).abs() < 1e-10, "{got} vs {want}");
    // Rotating both covariances by one orthogonal Q keeps them commuting and the distance.
    let q = householder(&[1.0, -2.0, 0.5, 3.0]);
    let rot = |m: &[f64]| matmul(&matmul(&q, m, 4), &transpose(&q, 4), 4);
    let got = frechet_distance(&fit(mu1, rot(&diag(&a))), &fit(mu2, rot(&diag(&b)))).unwrap();
    assert!((got - want).abs() < 1e-10, "{got} vs {want}");
}

#[test]
fn non_commuting_two_by_two_matches_the_closed_form() {
    let s1 = vec![2.0, 0.5, 0.5, 1.0];
    let s2 = vec![1.0, -0.3, -0.3, 0.5];
    let s1s2 = matmul(&s1, &s2, 2);
    let det = |m: &[f64]| m[0] * m[3] - m[1] * m[2];
    let cross = (s1s2[0] + s1s2[3] + 2.0 * (det(&s1) * det(&s2)).sqrt()).sqrt();
    let want = 1.0 + (2.0 + 1.0 + 1.0 + 0.5) - 2.0 * cross;
    let got = frechet_distance(&fit(vec![1.0, 0.0], s1), &fit(vec![0.0, 0.0], s2)).unwrap();
    assert!((got - want).abs() < 1e-10, "{got} vs {want}");
}

#[test]
fn identical_sets_are_at_distance_zero() {
    let mut rng = AmbientRng::new(5);
    let d = 16;
    let feats: Vec<f32> = (0..200 * d).map(|_| rng.normal()).collect();
    let f = GaussianFit::from_features(&feats, d).unwrap();
    let got = frechet_distance(&f, &f).unwrap();
    // Trace of the covariance is about d = 16; allow 1e-10 of it.
    assert!(got.abs() < 16.0 * 1e-10, "{got}");
}

#[test]
fn samples_of_two_gaussians_are_at_their_distance() {
    // N = 40 000 draws from N(mu_k, diag(var_k)) in 3 dimensions. Sampling error: each
    // mean component errs by sqrt(var / N) <= 0.01, moving |mu1 - mu2|^2 (|diff| = 1) by
    // about 2 * 0.01 * 1; each variance errs by var sqrt(2 / N) <= 0.014, moving the trace
    // terms by about 0.014 * |1 - sqrt(var_other / var)| per dimension. The total standard
    // deviation is below 0.04; we allow 0.12 (3 of them). Mean-free error: E|dmu|^2 ~ 1e-4.
    let n = 40_000;
    let (v1, v2) = ([1.0f64, 0.25, 2.0], [0.5f64, 1.0, 2.0]);
    let (m1, m2) = ([0.0f64, 1.0, 0.0], [0.0f64, 1.0, 1.0]);
    let mut rng = AmbientRng::new(6);
    let mut draw = |m: &[f64; 3], v: &[f64; 3]| -> Vec<f32> {
        (0..n * 3)
            .map(|k| (m[k % 3] + v[k % 3].sqrt() * rng.normal() as f64) as f32)
            .collect()
    };
    let a = GaussianFit::from_features(&draw(&m1, &v1), 3).unwrap();
    let b = GaussianFit::from_features(&draw(&m2, &v2), 3).unwrap();
    let want: f64 = v1
        .iter()
        .zip(&v2)
        .map(|(x, y)| (x.sqrt() - y.sqrt()).powi(2))
        .sum::<f64>()
        + 1.0;
    let got = frechet_distance(&a, &b).unwrap();
    assert!((got - want).abs() < 0.12, "{got} vs {want}");
}
