//! Single-precision matrix products on row-major slices, through the `gemm` crate's packed
//! SGEMM kernels (AVX-512 / AVX2+FMA chosen at run time, a portable fallback otherwise). Every convolution and linear layer reduces to this;
//! a single image's products are split by output rows across the workers.

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
        Mat::new(a, k, m).transposed()
    } else {
        Mat::new(a, m, k)
    };
    let b = if tb {
        Mat::new(b, n, k).transposed()
    } else {
        Mat::new(b, k, n)
    };
    product(alpha, a, b, beta, c);
}

/// A borrowed strided matrix: element (i, j) at `data[i rs + j cs]`.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major [rows, cols] view of `data`.
    fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols, "gemm: operand too short");
        Mat {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }
    fn transposed(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }
    /// Rows `r0..r0 + rows`.
    fn row_block(self, r0: usize, rows: usize) -> Self {
        assert!(r0 + rows <= self.rows, "gemm: row block");
        Mat {
            data: if rows == 0 {
                &[]
            } else {
                &self.data[r0 * self.rs..]
            },
            rows,
            ..self
        }
    }
    /// Columns `c0..c0 + cols`.
    fn col_block(self, c0: usize, cols: usize) -> Self {
        assert!(c0 + cols <= self.cols, "gemm: column block");
        Mat {
            data: if cols == 0 {
                &[]
            } else {
                &self.data[c0 * self.cs..]
            },
            cols,
            ..self
        }
    }
    /// Whether every element (i, j) lies inside `data` (i < rows, j < cols).
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// Longest stretch of the inner dimension given to the crate in one call.
const KC: usize = 512;

/// `c <- alpha a b + beta c`, `c` row-major [a.rows, b.cols], through the `gemm` crate's
/// packed kernels (single-threaded: the callers split the work). The inner dimension is cut
/// here into equal blocks of at most [`KC`], a split that depends on k alone: the crate picks
/// its own depth blocking from m and n as well, so without this a block of rows would not sum
/// in the same order as the whole product (and one image alone would not give what it gives
/// inside a batch).
fn product(alpha: f32, a: Mat<'_>, b: Mat<'_>, beta: f32, c: &mut [f32]) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "gemm: inner dimensions");
    assert!(a.in_bounds() && b.in_bounds(), "gemm: operand too short");
    assert_eq!(c.len(), m * n, "gemm: output size");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.iter_mut().for_each(|v| *v *= beta);
        return;
    }
    let kb = k.div_ceil(k.div_ceil(KC));
    for p0 in (0..k).step_by(kb) {
        let len = kb.min(k - p0);
        let beta = if p0 == 0 { beta } else { 1.0 };
        product_block(alpha, a.col_block(p0, len), b.row_block(p0, len), beta, c);
    }
}

/// One call of the crate: [`product`] with k <= [`KC`], so that its depth blocking is all of k.
fn product_block(alpha: f32, a: Mat<'_>, b: Mat<'_>, beta: f32, c: &mut [f32]) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    debug_assert!(a.in_bounds() && b.in_bounds() && c.len() == m * n && k <= KC);
    // SAFETY: every element the product reads, a (i < m, p < k), b (p < k, j < n), lies
    // inside its slice (`in_bounds`, checked in `product` for the whole operands, and a
    // column or row block of an in-bounds matrix is in bounds), and every element it writes,
    // c (i < m, j < n) at i n + j, inside `c` (length m n); `c` is borrowed mutably, so it
    // aliases neither input. With `read_dst` false the destination is written without being
    // read (beta = 0 must not turn stale NaNs into NaNs). The crate computes
    // dst = alpha_dst dst + beta_ab a b.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            beta != 0.0,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            beta,
            alpha,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// How many blocks to split one sample's GEMM into: with fewer samples than workers
/// (single-image restoration), the output rows are shared out instead.
pub(crate) fn row_split(n: usize) -> usize {
    super::threads().div_ceil(n.max(1))
}

/// `c [m, n] = a [m, k] b [k, n]` (row-major slices), the rows of `c` in `parts` blocks
/// computed in parallel (the tests' check of the row split that [`gemm_rows_t`] uses).
#[cfg(test)]
pub(crate) fn gemm_rows(m: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32], parts: usize) {
    gemm_rows_mat(Mat::new(a, m, k), b, c, parts);
}

/// `c [k, n] = a^T b` with `a` stored [m, k] and `b` [m, n], rows of `c` split as in
/// [`gemm_rows`].
pub(crate) fn gemm_rows_t(m: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32], parts: usize) {
    gemm_rows_mat(Mat::new(a, m, k).transposed(), b, c, parts);
}

/// `c [m, n] = a [m, k] b [k, n]`, all row-major (one worker).
pub(crate) fn gemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    product(1.0, Mat::new(a, m, k), Mat::new(b, k, n), 0.0, c);
}

fn gemm_rows_mat(a: Mat<'_>, b: &[f32], c: &mut [f32], parts: usize) {
    let (m, k) = (a.rows, a.cols);
    let n = c.len() / m.max(1);
    let b = Mat::new(b, k, n);
    // Blocks of at least 16 rows, so that each keeps the kernel's register tiles full, and
    // no split below 2^18 multiply-adds, where the fork would cost more than it saves.
    let step = m.div_ceil(parts).max(16);
    if step >= m || m * k * n < 1 << 18 {
        product(1.0, a, b, 0.0, c);
        return;
    }
    c.par_chunks_mut(step * n).enumerate().for_each(|(p, cc)| {
        let rows = cc.len() / n;
        product(1.0, a.row_block(p * step, rows), b, 0.0, cc);
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

    /// Row-split products (in parallel blocks, and transposed) against a plain f64 triple
    /// loop: 64 x 64 times 64 x 70 (over 2^18 multiply-adds, so the split happens), on
    /// values with small integer numerators, so that every product and partial sum is exact
    /// in f32 (|sum| <= 64 * 4 * 5, far below 2^24) and the comparison can be exact.
    #[test]
    fn row_split_products_match_naive() {
        let (m, k, n) = (64, 64, 70);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 9) as f32 - 4.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 11) as f32 - 5.0).collect();
        let bt: Vec<f32> = (0..m * n).map(|i| ((i * 3) % 7) as f32 - 3.0).collect();
        let naive = |rows: usize,
                     inner: usize,
                     cols: usize,
                     at: &dyn Fn(usize, usize) -> f32,
                     bb: &[f32]| {
            let mut c = vec![0.0f32; rows * cols];
            for i in 0..rows {
                for j in 0..cols {
                    let s: f64 = (0..inner)
                        .map(|p| at(i, p) as f64 * bb[p * cols + j] as f64)
                        .sum();
                    c[i * cols + j] = s as f32;
                }
            }
            c
        };
        for parts in [1, 2, 3] {
            let mut c = vec![f32::NAN; m * n];
            gemm_rows(m, k, &a, &b, &mut c, parts);
            assert_eq!(
                c,
                naive(m, k, n, &|i, p| a[i * k + p], &b),
                "a b, {parts} parts"
            );
            // c [k, n] = a^T bt with a [m, k], bt [m, n].
            let mut ct = vec![f32::NAN; k * n];
            gemm_rows_t(m, k, &a, &bt, &mut ct, parts);
            assert_eq!(
                ct,
                naive(k, m, n, &|i, p| a[p * k + i], &bt),
                "a^T b, {parts} parts"
            );
        }
    }

    /// A block of rows sums in the same order as the whole product (what lets one image
    /// alone give the bits it gives inside a batch): row-split products, plain and
    /// transposed, equal the unsplit ones exactly on random data, for shapes of the spec
    /// network (among them k > 512, cut into depth blocks, and n = 49, where the crate's own
    /// depth blocking would depend on the number of rows).
    #[test]
    fn row_blocks_sum_in_the_same_order() {
        let mut rng = ambient_core::AmbientRng::new(3);
        for &(m, k, n) in &[
            (128, 576, 49),
            (128, 1152, 49),
            (64, 864, 784),
            (576, 128, 196),
        ] {
            let mut a = vec![0.0f32; m * k];
            let mut b = vec![0.0f32; k * n];
            let mut bt = vec![0.0f32; m * n];
            rng.fill_normal(&mut a);
            rng.fill_normal(&mut b);
            rng.fill_normal(&mut bt);
            let (mut c1, mut c2) = (vec![0.0f32; m * n], vec![0.0f32; m * n]);
            gemm_rows(m, k, &a, &b, &mut c1, 1);
            gemm_rows(m, k, &a, &b, &mut c2, 3);
            assert!(c1 == c2, "{m}x{k}x{n}: split differs");
            let (mut t1, mut t2) = (vec![0.0f32; k * n], vec![0.0f32; k * n]);
            gemm_rows_t(m, k, &a, &bt, &mut t1, 1);
            gemm_rows_t(m, k, &a, &bt, &mut t2, 3);
            assert!(t1 == t2, "{m}x{k}x{n} transposed: split differs");
        }
    }
}
