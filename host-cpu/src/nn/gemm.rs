//! Single-precision matrix products on row-major slices, through ndarray's `general_mat_mul`
//! (matrixmultiply's packed SGEMM kernels). Every convolution and linear layer reduces to this.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

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
