//! The Fréchet distance between Gaussian fits of two feature sets (the "FID" formula on this
//! project's classifier features):
//! `d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`,
//! with the trace of the cross term computed stably in its symmetric form
//! `Tr (S1^(1/2) S2 S1^(1/2))^(1/2)` = the sum of square roots of the eigenvalues of the
//! symmetric positive semi-definite `S1^(1/2) S2 S1^(1/2)` (which has the eigenvalues of
//! `S1 S2`), all in f64 with the Jacobi eigen-solver. Covariances are the unbiased (N - 1)
//! sample covariances, as numpy's `cov` and the usual FID code compute them.

use super::linalg::{matmul, sqrt_psd, symmetric_eigen, symmetrize};
use super::EvalError;

/// Mean and covariance of a feature set.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianFit {
    pub dim: usize,
    pub mean: Vec<f64>,
    /// Row-major `dim x dim`.
    pub cov: Vec<f64>,
}

impl GaussianFit {
    /// Fits `n = features.len() / dim` feature vectors (row-major `n x dim`), `n >= 2`.
    pub fn from_features(features: &[f32], dim: usize) -> Result<Self, EvalError> {
        if dim == 0 || !features.len().is_multiple_of(dim) {
            return Err(EvalError::Shape(format!(
                "{} feature values are not whole vectors of {dim}",
                features.len()
            )));
        }
        let n = features.len() / dim;
        if n < 2 {
            return Err(EvalError::Shape(format!(
                "a covariance needs at least 2 feature vectors, got {n}"
            )));
        }
        if features.iter().any(|v| !v.is_finite()) {
            return Err(EvalError::NonFinite("features".into()));
        }
        let mut mean = vec![0.0f64; dim];
        for row in features.chunks(dim) {
            mean.iter_mut().zip(row).for_each(|(m, &x)| *m += x as f64);
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut cov = vec![0.0f64; dim * dim];
        let mut centred = vec![0.0f64; dim];
        for row in features.chunks(dim) {
            centred
                .iter_mut()
                .zip(row.iter().zip(&mean))
                .for_each(|(c, (&x, m))| *c = x as f64 - m);
            for i in 0..dim {
                let ci = centred[i];
                cov[i * dim..(i + 1) * dim]
                    .iter_mut()
                    .zip(&centred)
                    .for_each(|(s, &cj)| *s += ci * cj);
            }
        }
        cov.iter_mut().for_each(|s| *s /= (n - 1) as f64);
        Ok(GaussianFit { dim, mean, cov })
    }
}

/// The Fréchet distance `d^2` between two Gaussians (see the module doc). Rounding can make
/// it a tiny negative number for identical inputs; it is returned as computed.
pub fn frechet_distance(a: &GaussianFit, b: &GaussianFit) -> Result<f64, EvalError> {
    let d = a.dim;
    if b.dim != d || a.mean.len() != d || b.mean.len() != d {
        return Err(EvalError::Shape(format!(
            "Fréchet distance between {d}- and {}-dimensional features",
            b.dim
        )));
    }
    if a.cov.len() != d * d || b.cov.len() != d * d {
        return Err(EvalError::Shape("covariance is not dim x dim".into()));
    }
    let mean_term: f64 = a
        .mean
        .iter()
        .zip(&b.mean)
        .map(|(x, y)| (x - y).powi(2))
        .sum();
    let trace = |m: &[f64]| (0..d).map(|i| m[i * d + i]).sum::<f64>();
    let r1 = sqrt_psd(&a.cov, d)?;
    let mut m = matmul(&matmul(&r1, &b.cov, d), &r1, d);
    symmetrize(&mut m, d);
    let (lambda, _) = symmetric_eigen(&m, d)?;
    let cross: f64 = lambda.iter().map(|&l| l.max(0.0).sqrt()).sum();
    Ok(mean_term + trace(&a.cov) + trace(&b.cov) - 2.0 * cross)
}
