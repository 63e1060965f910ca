//! Small dense symmetric linear algebra in f64 for the Fréchet distance: the cyclic Jacobi
//! eigen-solver and the square root of a positive semi-definite matrix. Matrices are row-major
//! `d x d` slices.

use super::EvalError;

/// Eigen-decomposition `A = V diag(lambda) V^T` of the symmetric `d x d` matrix `a` by cyclic
/// Jacobi rotations (each zeroes one off-diagonal pair; sweeps repeat until the off-diagonal
/// Frobenius norm is at most 1e-14 of the whole matrix's, which Jacobi reaches in about ten
/// sweeps). Returns the eigenvalues and `V` (row-major; column `k` is the eigenvector of
/// `lambda[k]`). Only the upper triangle's symmetry is assumed, not checked: callers pass
/// `(A + A^T) / 2`.
pub fn symmetric_eigen(a: &[f64], d: usize) -> Result<(Vec<f64>, Vec<f64>), EvalError> {
    if a.len() != d * d {
        return Err(EvalError::Shape(format!(
            "eigen-solver: {} values for a {d} x {d} matrix",
            a.len()
        )));
    }
    if a.iter().any(|v| !v.is_finite()) {
        return Err(EvalError::NonFinite("matrix to decompose".into()));
    }
    let mut m = a.to_vec();
    let mut v = vec![0.0; d * d];
    (0..d).for_each(|i| v[i * d + i] = 1.0);
    let total: f64 = m.iter().map(|x| x * x).sum();
    const MAX_SWEEPS: usize = 100;
    for _ in 0..MAX_SWEEPS {
        let off: f64 = (0..d)
            .flat_map(|i| (i + 1..d).map(move |j| (i, j)))
            .map(|(i, j)| 2.0 * m[i * d + j] * m[i * d + j])
            .sum();
        if off <= 1e-28 * total {
            let lambda = (0..d).map(|i| m[i * d + i]).collect();
            return Ok((lambda, v));
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = m[p * d + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (m[q * d + q] - m[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // A <- A P, then A <- P^T A, with P_pp = P_qq = c, P_pq = s, P_qp = -s.
                for k in 0..d {
                    let (kp, kq) = (m[k * d + p], m[k * d + q]);
                    m[k * d + p] = c * kp - s * kq;
                    m[k * d + q] = s * kp + c * kq;
                }
                for k in 0..d {
                    let (pk, qk) = (m[p * d + k], m[q * d + k]);
                    m[p * d + k] = c * pk - s * qk;
                    m[q * d + k] = s * pk + c * qk;
                }
                for k in 0..d {
                    let (kp, kq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * kp - s * kq;
                    v[k * d + q] = s * kp + c * kq;
                }
            }
        }
    }
    Err(EvalError::NotConverged {
        what: "Jacobi eigen-solver",
        iterations: MAX_SWEEPS,
        residual: f64::NAN,
        tolerance: 1e-14,
    })
}

/// `(A + A^T) / 2` of a row-major `d x d` matrix.
pub fn symmetrize(a: &mut [f64], d: usize) {
    for i in 0..d {
        for j in i + 1..d {
            let s = 0.5 * (a[i * d + j] + a[j * d + i]);
            a[i * d + j] = s;
            a[j * d + i] = s;
        }
    }
}

/// `C = A B` for row-major `d x d` matrices.
pub fn matmul(a: &[f64], b: &[f64], d: usize) -> Vec<f64> {
    let mut c = vec![0.0; d * d];
    for i in 0..d {
        for k in 0..d {
            let aik = a[i * d + k];
            let (ci, bk) = (&mut c[i * d..(i + 1) * d], &b[k * d..(k + 1) * d]);
            ci.iter_mut().zip(bk).for_each(|(c, b)| *c += aik * b);
        }
    }
    c
}

/// The symmetric square root `V diag(sqrt(max(lambda, 0))) V^T` of a symmetric positive
/// semi-definite matrix (eigenvalues below zero, which rounding can produce for a singular
/// matrix, count as zero).
pub fn sqrt_psd(a: &[f64], d: usize) -> Result<Vec<f64>, EvalError> {
    let mut s = a.to_vec();
    symmetrize(&mut s, d);
    let (lambda, v) = symmetric_eigen(&s, d)?;
    let root: Vec<f64> = lambda.iter().map(|&l| l.max(0.0).sqrt()).collect();
    let mut out = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            out[i * d + j] = (0..d).map(|k| v[i * d + k] * root[k] * v[j * d + k]).sum();
        }
    }
    Ok(out)
}
