//! Single-precision matrix products on row-major slices, through ndarray's `general_mat_mul`
//! (matrixmultiply's packed SGEMM kernels). Every convolution and linear layer reduces to this;
//! a single image's products are split by output rows across the workers.

use ndarray::linalg::general_mat_mul;
use ndarray::{s, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

/// `c <- alpha * op(a) op(b) + beta * c`, with `c` row-major [m, n], `op(a)` [m, k] and
/// `op(b)` [k, n]. `a` is stored row-major as [m, k], or as [k, m] when `ta`; likewise `b` is
/// [k, n], or [n, k] when `tb`.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    ta: bool,
    b: &[f32],
    tb: bool,
    beta: f32,
    c: &mut [f32],
) {
    let a = if ta {
        ArrayView2::from_shape((k, m), a)
            .expect("gemm: a")
            .reversed_axes()
    } else {
        ArrayView2::from_shape((m, k), a).expect("gemm: a")
    };
    let b = if tb {
        ArrayView2::from_shape((n, k), b)
            .expect("gemm: b")
            .reversed_axes()
    } else {
        ArrayView2::from_shape((k, n), b).expect("gemm: b")
    };
    let mut c = ArrayViewMut2::from_shape((m, n), c).expect("gemm: c");
    general_mat_mul(alpha, &a, &b, beta, &mut c);
}

/// How many blocks to split one sample's GEMM into: with fewer samples than workers
/// (single-image restoration), the output rows are shared out instead.
pub(crate) fn row_split(n: usize) -> usize {
    super::threads().div_ceil(n.max(1))
}

/// `c [m, n] = a [m, k] b [k, n]` (row-major slices), the rows of `c` in `parts` blocks
/// computed in parallel.
pub(crate) fn gemm_rows(m: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32], parts: usize) {
    let a = ArrayView2::from_shape((m, k), a).expect("gemm: a");
    gemm_rows_view(a, b, c, parts);
}

/// `c [k, n] = a^T b` with `a` stored [m, k] and `b` [m, n], rows of `c` split as in
/// [`gemm_rows`].
pub(crate) fn gemm_rows_t(m: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32], parts: usize) {
    let at = ArrayView2::from_shape((m, k), a)
        .expect("gemm: a")
        .reversed_axes();
    gemm_rows_view(at, b, c, parts);
}

fn gemm_rows_view(a: ArrayView2<'_, f32>, b: &[f32], c: &mut [f32], parts: usize) {
    let (m, k) = a.dim();
    let n = c.len() / m.max(1);
    let b = ArrayView2::from_shape((k, n), b).expect("gemm: b");
    // Blocks of at least 16 rows, so that each keeps the kernel's register tiles full, and
    // no split below 2^18 multiply-adds, where the fork would cost more than it saves.
    let step = m.div_ceil(parts).max(16);
    if step >= m || m * k * n < 1 << 18 {
        let mut cv = ArrayViewMut2::from_shape((m, n), c).expect("gemm: c");
        general_mat_mul(1.0, &a, &b, 0.0, &mut cv);
        return;
    }
    c.par_chunks_mut(step * n).enumerate().for_each(|(p, cc)| {
        let rows = cc.len() / n;
        let ab = a.slice(s![p * step..p * step + rows, ..]);
        let mut cv = ArrayViewMut2::from_shape((rows, n), cc).expect("gemm: c block");
        general_mat_mul(1.0, &ab, &b, 0.0, &mut cv);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2x3 times 3x2 product worked by hand, in all four transpositions.
    #[test]
    fn products_match_hand_computation() {
        // a = [[1,2,3],[4,5,6]], b = [[1,0],[0,1],[2,-1]]
        // a b = [[1+0+6, 0+2-3], [4+0+12, 0+5-6]] = [[7,-1],[16,-1]]
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let at = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
        let b = [1.0, 0.0, 0.0, 1.0, 2.0, -1.0];
        let bt = [1.0, 0.0, 2.0, 0.0, 1.0, -1.0];
        let want = [7.0, -1.0, 16.0, -1.0];
        for (aa, ta) in [(&a, false), (&at, true)] {
            for (bb, tb) in [(&b, false), (&bt, true)] {
                let mut c = [1.0f32; 4];
                sgemm(2, 3, 2, 1.0, aa, ta, bb, tb, 0.0, &mut c);
                assert_eq!(c, want);
                // beta = 1 accumulates.
                sgemm(2, 3, 2, 2.0, aa, ta, bb, tb, 1.0, &mut c);
                assert_eq!(c, want.map(|v| 3.0 * v));
            }
        }
    }
}
