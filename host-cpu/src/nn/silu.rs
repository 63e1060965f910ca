//! `SiLU(x) = x sigmoid(x)` and its derivative `sigmoid(x) (1 + x (1 - sigmoid(x)))`; the
//! sigmoid itself (also the gate of `GatedConv`).

use super::exp::exp_f32;
use ndarray::{Array, Dimension, Zip};

/// The logistic function `1 / (1 + exp(-x))` (exactly 0 or 1 only where f32 rounds it so).
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

/// SiLU element-wise, on the calling thread (the noise embedding's few values: a parallel
/// loop would cost more than it saves).
pub fn silu<D: Dimension>(x: &Array<f32, D>) -> Array<f32, D> {
    x.mapv(|v| v * sigmoid(v))
}

/// dL/dx of `SiLU` at the pre-activation `x`, given dL/dSiLU(x).
pub fn silu_backward<D: Dimension>(x: &Array<f32, D>, d_out: &Array<f32, D>) -> Array<f32, D> {
    assert_eq!(x.shape(), d_out.shape(), "silu_backward: shapes");
    let mut dx = Array::zeros(x.raw_dim());
    Zip::from(&mut dx)
        .and(x)
        .and(d_out)
        .par_for_each(|o, &v, &d| {
            let s = sigmoid(v);
            *o = d * s * (1.0 + v * (1.0 - s));
        });
    dx
}
