//! Gaussian measurements: `A` is an `m x n` matrix (`m <= n`) with i.i.d. N(0, 1) entries, and
//! `y = A x` has `m` entries. Further corruption deletes one row of `A`, chosen uniformly.
//!
//! Storage: an operator is `m * n` floats, row-major (`A[i][j] = op[i * n + j]`). `A~` keeps the
//! same `m x n` storage with the deleted row set to zero: that is `B A` for `B` the
//! `(m - 1) x m` row-deletion matrix, padded with a zero row in place of the deleted one, so
//! `A~ x` is `B A x` with a 0 at the deleted index and `A~^T A~ = (B A)^T (B A)`.
//!
//! Draw order (what every host must reproduce):
//! - [`draw`](Corruption::draw): `op[k] = ` the `k`-th successive [`AmbientRng::normal`] call,
//!   `k = 0 .. m * n` (row-major). When `m * n` is odd the generator keeps Box-Muller's spare
//!   normal for its next `normal` call.
//! - [`further_corrupt`](Corruption::further_corrupt): one `r = rng.below(m)`; row `r` is zeroed.
//!
//! `apply` and `adjoint` accumulate in `f32` in index order (`j` for `A x`, `i` for `A^T y`).

use super::{check_len, Corruption};
use crate::error::CoreError;
use crate::rng::AmbientRng;

/// Gaussian measurements of an `n`-dimensional signal with `m` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GaussianMeasurements {
    n: usize,
    m: usize,
    operator_len: usize,
}

impl GaussianMeasurements {
    /// Rejects `n = 0`, `m = 0`, `m > n`, and `m` or `m * n` beyond what the draws address
    /// (`m` fits a `u32`, `m * n` a `usize`).
    pub fn new(n: usize, m: usize) -> Result<Self, CoreError> {
        if n == 0 || m == 0 {
            return Err(CoreError::InvalidParameter(
                "Gaussian measurements need n > 0 and m > 0",
            ));
        }
        if m > n {
            return Err(CoreError::InvalidParameter(
                "Gaussian measurements need m <= n",
            ));
        }
        if u32::try_from(m).is_err() {
            return Err(CoreError::InvalidParameter("m must fit in u32"));
        }
        let operator_len = m
            .checked_mul(n)
            .ok_or(CoreError::InvalidParameter("m * n overflows usize"))?;
        Ok(GaussianMeasurements { n, m, operator_len })
    }

    /// Signal dimension (columns of `A`).
    pub fn n(&self) -> usize {
        self.n
    }
    /// Number of measurements (rows of `A`).
    pub fn m(&self) -> usize {
        self.m
    }
}

impl Corruption for GaussianMeasurements {
    fn image_len(&self) -> usize {
        self.n
    }

    fn operator_len(&self) -> usize {
        self.operator_len
    }

    fn measurement_len(&self) -> usize {
        self.m
    }

    fn draw(&self, rng: &mut AmbientRng, op: &mut [f32]) -> Result<(), CoreError> {
        check_len("Gaussian measurement matrix", self.operator_len, op.len())?;
        rng.fill_normal(op);
        Ok(())
    }

    fn further_corrupt(
        &self,
        a: &[f32],
        rng: &mut AmbientRng,
        a_tilde: &mut [f32],
    ) -> Result<(), CoreError> {
        check_len("Gaussian measurement matrix A", self.operator_len, a.len())?;
        check_len(
            "Gaussian measurement matrix A~",
            self.operator_len,
            a_tilde.len(),
        )?;
        // The constructor checked that m fits in u32.
        let r = rng.below(self.m as u32) as usize;
        a_tilde.copy_from_slice(a);
        a_tilde[r * self.n..(r + 1) * self.n].fill(0.0);
        Ok(())
    }

    fn apply(&self, op: &[f32], x: &[f32], y: &mut [f32]) -> Result<(), CoreError> {
        check_len("Gaussian measurement matrix", self.operator_len, op.len())?;
        check_len("signal", self.n, x.len())?;
        check_len("measurement", self.m, y.len())?;
        for (yi, row) in y.iter_mut().zip(op.chunks_exact(self.n)) {
            *yi = row
                .iter()
                .zip(x)
                .fold(0.0f32, |acc, (&a, &xv)| acc + a * xv);
        }
        Ok(())
    }

    fn adjoint(&self, op: &[f32], y: &[f32], x: &mut [f32]) -> Result<(), CoreError> {
        check_len("Gaussian measurement matrix", self.operator_len, op.len())?;
        check_len("measurement", self.m, y.len())?;
        check_len("signal", self.n, x.len())?;
        x.fill(0.0);
        for (&yi, row) in y.iter().zip(op.chunks_exact(self.n)) {
            for (xj, &a) in x.iter_mut().zip(row) {
                *xj += a * yi;
            }
        }
        Ok(())
    }
}
