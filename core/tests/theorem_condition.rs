//! Theorem 4.1's condition (Daras et al. 2023): the ambient objective identifies
//! `E[x0 | A~ x_t, A~]` when `E[A^T A | A~]` is full rank. Checked by Monte Carlo against its
//! closed form for random inpainting (full rank iff delta > 0) and Gaussian measurements with
//! one row deleted (full rank, while `A^T A` itself has rank m < n).
//!
//! `A^T A` is always computed through the operator's own `apply` and `adjoint` on the basis
//! vectors, so the test exercises the code's operators, not a re-derivation of them.

use ambient_core::corruption::{Corruption, GaussianMeasurements, RandomInpainting};
use ambient_core::AmbientRng;

/// `A^T A` (row-major, n x n, f64) through the family's apply and adjoint: column j is
/// `A^T (A e_j)`.
fn gram<C: Corruption>(family: &C, op: &[f32]) -> Vec<f64> {
    let n = family.image_len();
    let mut e = vec![0.0f32; n];
    let mut y = vec![0.0f32; family.measurement_len()];
    let mut col = vec![0.0f32; n];
    let mut g = vec![0.0f64; n * n];
    for j in 0..n {
        e.fill(0.0);
        e[j] = 1.0;
        family.apply(op, &e, &mut y).unwrap();
        family.adjoint(op, &y, &mut col).unwrap();
        for i in 0..n {
            g[i * n + j] = col[i] as f64;
        }
    }
    g
}

/// Eigenvalues of a symmetric n x n matrix (row-major), ascending, by cyclic Jacobi rotations
/// (Golub & Van Loan, Matrix Computations, 8.5): sweeps until the off-diagonal mass is below
/// 1e-15 of the Frobenius norm (2n^2 sweeps at most; quadratic convergence needs ~10).
fn symmetric_eigenvalues(a: &[f64], n: usize) -> Vec<f64> {
    let mut a = a.to_vec();
    let norm: f64 = a.iter().map(|v| v * v).sum::<f64>().sqrt();
    for _ in 0..2 * n * n {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-15 * norm {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                // The rotation (c, s) that zeroes a_pq: tan(2 theta) = 2 a_pq / (a_qq - a_pp),
                // taking the smaller root t = tan(theta) for stability.
                let tau = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = tau.signum() / (tau.abs() + (1.0 + tau * tau).sqrt());
                let t = if tau == 0.0 { 1.0 } else { t };
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
            }
        }
    }
    let mut eig: Vec<f64> = (0..n).map(|i| a[i * n + i]).collect();
    eig.sort_by(f64::total_cmp);
    eig
}

#[test]
fn jacobi_recovers_known_spectrum() {
    // Q diag(lambda) Q^T with Q a product of Givens rotations of known angles: the eigenvalues
    // are lambda exactly; Jacobi is backward stable, so it returns them to ~n u ||A|| (1e-14
    // here); 1e-10 is a loose bound that still catches any wrong rotation.
    let n = 6;
    let lambda = [3.0, 1.0, 0.5, 0.0, 2.0, 7.0];
    let mut q = vec![0.0f64; n * n];
    for i in 0..n {
        q[i * n + i] = 1.0;
    }
    for (k, (i, j)) in [(0, 1), (1, 2), (2, 4), (0, 5), (3, 4), (1, 5), (2, 3)]
        .into_iter()
        .enumerate()
    {
        let th = 0.3 + 0.7 * k as f64;
        let (c, s) = (th.cos(), th.sin());
        for r in 0..n {
            let (qi, qj) = (q[r * n + i], q[r * n + j]);
            q[r * n + i] = c * qi - s * qj;
            q[r * n + j] = s * qi + c * qj;
        }
    }
    let a: Vec<f64> = (0..n * n)
        .map(|ij| {
            let (i, j) = (ij / n, ij % n);
            (0..n)
                .map(|k| q[i * n + k] * lambda[k] * q[j * n + k])
                .sum()
        })
        .collect();
    let mut expect = lambda.to_vec();
    expect.sort_by(f64::total_cmp);
    for (got, want) in symmetric_eigenvalues(&a, n).iter().zip(&expect) {
        assert!((got - want).abs() < 1e-10, "{got} vs {want}");
    }
}

/// Monte Carlo estimate of `E[A^T A | A~]` for random inpainting of a 2x2 image, bucketed by
/// the 16 patterns of A~, against the closed form. Returns, per pattern that occurred, the
/// smallest eigenvalue of the estimate and the lower confidence bound of the closed form's.
fn random_inpainting_condition(p: f32, delta: f32, pairs: usize) -> Vec<(f64, f64)> {
    let family = RandomInpainting::new(1, 2, 2, p, delta).unwrap();
    let mut rng = AmbientRng::new(2023);
    let mut sums = vec![vec![0.0f64; 16]; 16];
    let mut counts = [0usize; 16];
    let (mut a, mut at) = ([0.0f32; 4], [0.0f32; 4]);
    for _ in 0..pairs {
        family.draw(&mut rng, &mut a).unwrap();
        family.further_corrupt(&a, &mut rng, &mut at).unwrap();
        let pattern = at
            .iter()
            .enumerate()
            .fold(0, |acc, (i, &v)| acc | ((v == 1.0) as usize) << i);
        counts[pattern] += 1;
        for (s, g) in sums[pattern].iter_mut().zip(gram(&family, &a)) {
            *s += g;
        }
    }
    // Closed form: pixels are independent, so given the whole pattern of A~ a pixel's A is
    // conditioned only on its own A~. A~ keeps => A keeps (1). A~ erased => A kept with
    // P(A keeps, B erases) / P(A~ erases) = (1 - p) delta / (1 - (1 - p)(1 - delta)) = q.
    // A^T A = diag(A) (0/1 entries), so E[A^T A | A~] = diag(1 where A~ keeps, q elsewhere).
    let (pf, df) = (p as f64, delta as f64);
    let q = (1.0 - pf) * df / (1.0 - (1.0 - pf) * (1.0 - df));
    let mut out = Vec::new();
    for pattern in 0..16 {
        let nb = counts[pattern];
        if nb == 0 {
            continue;
        }
        let est: Vec<f64> = sums[pattern].iter().map(|s| s / nb as f64).collect();
        // Per erased pixel the estimate is a mean of nb Bernoulli(q): 5 standard errors,
        // sqrt(q (1 - q) / nb). Kept pixels and off-diagonal entries are exact (every sample
        // has A = 1 there, resp. diag(A) has zero off-diagonals).
        let tol = 5.0 * (q * (1.0 - q) / nb as f64).sqrt();
        let mut lower = f64::INFINITY;
        for i in 0..4 {
            for j in 0..4 {
                let e = est[i * 4 + j];
                if i != j {
                    assert_eq!(e, 0.0, "pattern {pattern:04b} off-diagonal ({i}, {j})");
                } else if pattern >> i & 1 == 1 {
                    assert_eq!(e, 1.0, "pattern {pattern:04b} kept pixel {i}");
                    lower = lower.min(1.0);
                } else {
                    assert!(
                        (e - q).abs() <= tol,
                        "pattern {pattern:04b} pixel {i}: {e} vs q = {q} +- {tol}"
                    );
                    lower = lower.min(q - tol);
                }
            }
        }
        out.push((symmetric_eigenvalues(&est, 4)[0], lower));
    }
    out
}

#[test]
fn random_inpainting_condition_is_full_rank_iff_delta_positive() {
    // 200k pairs: the rarest pattern (all four kept by A~) has probability ((1-p)(1-delta))^4,
    // 0.3^4 = 0.0081 for (0.5, 0.4), so ~1600 samples; 0.72^4 = 0.27 for (0.2, 0.1).
    for &(p, delta) in &[(0.5f32, 0.4f32), (0.2, 0.1)] {
        let buckets = random_inpainting_condition(p, delta, 200_000);
        assert_eq!(buckets.len(), 16, "every A~ pattern occurred");
        for (min_eig, lower) in buckets {
            // The estimate is diagonal, so its smallest eigenvalue is its smallest diagonal
            // entry, which the per-entry bounds keep above q - 5 se > 0.
            assert!(
                lower > 0.0 && min_eig >= lower - 1e-12,
                "{min_eig} vs {lower}"
            );
        }
    }
    // delta = 0 (naive, A~ = A): q = 0, so every pattern that erases a pixel has an exactly
    // zero diagonal entry: E[A^T A | A~] is singular.
    let buckets = random_inpainting_condition(0.5, 0.0, 50_000);
    assert_eq!(buckets.len(), 16);
    let singular = buckets
        .iter()
        .filter(|(min_eig, _)| *min_eig == 0.0)
        .count();
    assert_eq!(singular, 15, "all patterns but all-kept are singular");
}

#[test]
fn gaussian_row_deletion_condition_is_full_rank() {
    // n = 6, m = 4. Given A~ (A with row r zeroed), A = A~ + e_r a^T with the deleted row
    // a ~ N(0, I_n) independent of A~, and A^T A = A~^T A~ + a a^T, so
    // E[A^T A | A~] = A~^T A~ + I. A~^T A~ has rank <= m - 1 < n, so the smallest eigenvalue
    // of the closed form is exactly 1.
    let (n, m) = (6usize, 4usize);
    let family = GaussianMeasurements::new(n, m).unwrap();
    let samples = 20_000;
    // u = 2^-24; gram's adjoint sums m products in f32: each entry is off by at most
    // gamma_m sum_k |A_ki A_kj| (Higham 3.1), accumulated below per sample and averaged.
    let gamma_m = {
        let mu = m as f64 * f64::powi(2.0, -24);
        mu / (1.0 - mu)
    };
    let mut rng = AmbientRng::new(41);
    for _ in 0..5 {
        let (mut a, mut at) = (vec![0.0f32; n * m], vec![0.0f32; n * m]);
        family.draw(&mut rng, &mut a).unwrap();
        family.further_corrupt(&a, &mut rng, &mut at).unwrap();
        let r = (0..m)
            .find(|&i| at[i * n..(i + 1) * n].iter().all(|&v| v == 0.0))
            .unwrap();

        // Without further corruption A^T A has rank m < n. Its Gram matrix computed in f64
        // from A's entries has errors ~m u_64 ||A||^2 and Jacobi adds ~n u_64 ||A||^2, so its
        // smallest eigenvalue is within 1e-13 lambda_max of 0; a full-rank Gram of a random
        // Gaussian matrix would be further from singular than 1e-9 with overwhelming
        // probability.
        let exact_gram: Vec<f64> = (0..n * n)
            .map(|ij| {
                let (i, j) = (ij / n, ij % n);
                (0..m)
                    .map(|k| a[k * n + i] as f64 * a[k * n + j] as f64)
                    .sum()
            })
            .collect();
        let eig = symmetric_eigenvalues(&exact_gram, n);
        assert!(eig[0].abs() <= 1e-9 * eig[n - 1], "A^T A singular: {eig:?}");

        let mut sum = vec![0.0f64; n * n];
        let mut rounding = 0.0f64;
        let mut sample = at.clone();
        for _ in 0..samples {
            rng.fill_normal(&mut sample[r * n..(r + 1) * n]);
            for (s, g) in sum.iter_mut().zip(gram(&family, &sample)) {
                *s += g;
            }
            let worst = (0..n * n)
                .map(|ij| {
                    let (i, j) = (ij / n, ij % n);
                    (0..m)
                        .map(|k| (sample[k * n + i] as f64 * sample[k * n + j] as f64).abs())
                        .sum::<f64>()
                })
                .fold(0.0, f64::max);
            rounding += gamma_m * worst;
        }
        let k = samples as f64;
        let rounding = rounding / k;
        let est: Vec<f64> = sum.iter().map(|s| s / k).collect();

        // Entry-wise: est - closed = mean of a a^T - I (plus rounding). Var(a_i^2) = 2 and
        // Var(a_i a_j) = 1, so 5 standard errors are 5 sqrt(2 / K) on the diagonal and
        // 5 / sqrt(K) off it.
        let mut frob2 = 0.0;
        for i in 0..n {
            for j in 0..n {
                let closed: f64 = (0..m)
                    .map(|k| at[k * n + i] as f64 * at[k * n + j] as f64)
                    .sum::<f64>()
                    + (i == j) as u8 as f64;
                let tol =
                    5.0 * if i == j {
                        (2.0 / k).sqrt()
                    } else {
                        1.0 / k.sqrt()
                    } + rounding;
                let e = est[i * n + j];
                assert!(
                    (e - closed).abs() <= tol,
                    "({i}, {j}): {e} vs {closed} +- {tol}"
                );
                frob2 += tol * tol;
            }
        }
        // Weyl: |lambda_min(est) - lambda_min(closed)| <= ||est - closed||_2 <= ||.||_F, and
        // the entry bounds give ||.||_F <= sqrt(sum tol^2) (~0.16 here), so the smallest
        // eigenvalue is 1 +- 0.16: bounded away from 0.
        let bound = frob2.sqrt();
        assert!(bound < 0.5);
        let lambda_min = symmetric_eigenvalues(&est, n)[0];
        assert!(
            (lambda_min - 1.0).abs() <= bound,
            "lambda_min {lambda_min}, expected 1 +- {bound}"
        );
    }
}
