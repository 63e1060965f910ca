//! Memorization statistics: for each generated sample, the cosine similarity to its nearest
//! training image (top-1 over the whole training set), in any vector space (classifier
//! features, or pixels), and the summary the report quotes: quantiles and the fraction above
//! a threshold (0.95). A sample that copies a training image scores 1.
//!
//! For classifier features use [`centred`]: features after a SiLU are mostly positive, so
//! raw cosines of any two digits are high (held-out MNIST test digits score a median of 0.99
//! against the training set); centring both sets on the training features' mean makes the
//! cosine compare what distinguishes digits. For pixels use [`ink`]: images in [-1, 1] mapped to `(x + 1) / 2`, so the background is 0
//! and the cosine measures the overlap of the strokes; on raw [-1, 1] MNIST the shared -1
//! background makes every pair look similar.

use rayon::prelude::*;

use super::EvalError;
use crate::nn::gemm::sgemm;

/// Query rows per parallel task, and reference rows per matrix product.
const QUERY_BLOCK: usize = 64;
const REFERENCE_BLOCK: usize = 2048;

/// `(x + 1) / 2` of every value: [-1, 1] images as ink in [0, 1].
pub fn ink(images: &[f32]) -> Vec<f32> {
    images.iter().map(|&x| 0.5 * (x + 1.0)).collect()
}

/// The mean of each column of row-major `rows` (`dim` values per row), in f64.
pub fn column_mean(rows: &[f32], dim: usize) -> Result<Vec<f64>, EvalError> {
    if dim == 0 || rows.is_empty() || !rows.len().is_multiple_of(dim) {
        return Err(EvalError::Shape(format!(
            "{} values are not a non-empty set of vectors of {dim}",
            rows.len()
        )));
    }
    let mut mean = vec![0.0f64; dim];
    for r in rows.chunks(dim) {
        mean.iter_mut().zip(r).for_each(|(m, &v)| *m += v as f64);
    }
    let n = (rows.len() / dim) as f64;
    mean.iter_mut().for_each(|m| *m /= n);
    Ok(mean)
}

/// `rows` with `mean` subtracted from every row (`mean.len()` values per row).
pub fn centred(rows: &[f32], mean: &[f64]) -> Vec<f32> {
    assert!(
        !mean.is_empty() && rows.len().is_multiple_of(mean.len()),
        "centred: whole rows"
    );
    rows.chunks(mean.len())
        .flat_map(|r| r.iter().zip(mean).map(|(&v, &m)| (v as f64 - m) as f32))
        .collect()
}

/// Rows scaled to unit length (a zero row stays zero, so its cosine with anything is 0).
fn normalized(rows: &[f32], dim: usize) -> Vec<f32> {
    let mut out = rows.to_vec();
    for r in out.chunks_mut(dim) {
        let n = r.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
        if n > 0.0 {
            r.iter_mut().for_each(|v| *v = (*v as f64 / n) as f32);
        }
    }
    out
}

/// For every row of `queries` (row-major, `dim` values each), the largest cosine similarity
/// to a row of `references` and that row's index.
pub fn top1_cosine(
    queries: &[f32],
    references: &[f32],
    dim: usize,
) -> Result<Vec<(f32, usize)>, EvalError> {
    if dim == 0 || !queries.len().is_multiple_of(dim) || !references.len().is_multiple_of(dim) {
        return Err(EvalError::Shape(format!(
            "{} query and {} reference values are not whole vectors of {dim}",
            queries.len(),
            references.len()
        )));
    }
    if references.is_empty() {
        return Err(EvalError::Shape("no reference vectors".into()));
    }
    if queries.iter().chain(references).any(|v| !v.is_finite()) {
        return Err(EvalError::NonFinite("vectors to compare".into()));
    }
    let (q, r) = (normalized(queries, dim), normalized(references, dim));
    let nr = r.len() / dim;
    let best: Vec<Vec<(f32, usize)>> = q
        .par_chunks(QUERY_BLOCK * dim)
        .map(|qb| {
            let nq = qb.len() / dim;
            let mut best = vec![(f32::NEG_INFINITY, 0usize); nq];
            let mut sim = vec![0.0f32; nq * REFERENCE_BLOCK];
            for start in (0..nr).step_by(REFERENCE_BLOCK) {
                let nb = REFERENCE_BLOCK.min(nr - start);
                let rb = &r[start * dim..(start + nb) * dim];
                sgemm(
                    nq,
                    dim,
                    nb,
                    1.0,
                    qb,
                    false,
                    rb,
                    true,
                    0.0,
                    &mut sim[..nq * nb],
                );
                for (i, row) in sim[..nq * nb].chunks(nb).enumerate() {
                    for (j, &s) in row.iter().enumerate() {
                        if s > best[i].0 {
                            best[i] = (s, start + j);
                        }
                    }
                }
            }
            best
        })
        .collect();
    Ok(best.into_iter().flatten().collect())
}

/// The `q`-quantile of sorted values by linear interpolation between order statistics
/// (numpy's default): position `q (n - 1)`.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty() && (0.0..=1.0).contains(&q), "quantile");
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, frac) = (pos.floor() as usize, pos - pos.floor());
    if lo + 1 < sorted.len() {
        sorted[lo] + frac * (sorted[lo + 1] - sorted[lo])
    } else {
        sorted[lo]
    }
}

/// The summary of a set of top-1 similarities.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SimilarityStats {
    pub count: usize,
    pub q05: f64,
    pub q50: f64,
    pub q95: f64,
    pub max: f64,
    /// The threshold of `fraction_above`.
    pub threshold: f64,
    /// Fraction of values strictly above `threshold`.
    pub fraction_above: f64,
}

/// Quantiles (5, 50, 95 %), maximum and the fraction above `threshold` of `values`.
pub fn similarity_stats(values: &[f32], threshold: f64) -> Result<SimilarityStats, EvalError> {
    if values.is_empty() {
        return Err(EvalError::Shape("no similarities to summarise".into()));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(EvalError::NonFinite("similarities".into()));
    }
    let mut s: Vec<f64> = values.iter().map(|&v| v as f64).collect();
    s.sort_by(f64::total_cmp);
    let above = s.iter().filter(|&&v| v > threshold).count();
    Ok(SimilarityStats {
        count: s.len(),
        q05: quantile(&s, 0.05),
        q50: quantile(&s, 0.5),
        q95: quantile(&s, 0.95),
        max: s[s.len() - 1],
        threshold,
        fraction_above: above as f64 / s.len() as f64,
    })
}
