//! `SiLU(x) = x sigmoid(x)` and its derivative `sigmoid(x) (1 + x (1 - sigmoid(x)))`; the
//! sigmoid itself (also the gate of `GatedConv`).

use super::exp::exp_f32;
use super::simd;
use ndarray::{Array, Dimension};
use rayon::prelude::*;

/// The logistic function `1 / (1 + exp(-x))` (exactly 0 or 1 only where f32 rounds it so).
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

/// SiLU element-wise, on the calling thread (the noise embedding's few values: a parallel
/// loop would cost more than it saves). Inside `simd::dispatch`, as every loop over
/// [`sigmoid`] is: there its fused multiply-adds are single instructions.
pub fn silu<D: Dimension>(x: &Array<f32, D>) -> Array<f32, D> {
    let mut y = x.as_standard_layout().into_owned();
    let ys = y.as_slice_mut().expect("standard layout");
    simd::dispatch(
        #[inline(always)]
        || {
            for v in ys.iter_mut() {
                let s = sigmoid(*v);
                *v *= s;
            }
        },
    );
    y
}

/// dL/dx of `SiLU` at the pre-activation `x`, given dL/dSiLU(x).
pub fn silu_backward<D: Dimension>(x: &Array<f32, D>, d_out: &Array<f32, D>) -> Array<f32, D> {
    assert_eq!(x.shape(), d_out.shape(), "silu_backward: shapes");
    let (x, d_out) = (x.as_standard_layout(), d_out.as_standard_layout());
    let (xs, ds) = (
        x.as_slice().expect("standard"),
        d_out.as_slice().expect("standard"),
    );
    let mut dx = Array::zeros(x.raw_dim());
    const CHUNK: usize = 4096;
    let parts = dx.as_slice_mut().expect("standard").par_chunks_mut(CHUNK);
    parts
        .zip(xs.par_chunks(CHUNK).zip(ds.par_chunks(CHUNK)))
        .for_each(|(o, (xc, dc))| {
            simd::dispatch(
                #[inline(always)]
                || {
                    for ((o, &v), &d) in o.iter_mut().zip(xc).zip(dc) {
                        let s = sigmoid(v);
                        *o = d * s * (1.0 + v * (1.0 - s));
                    }
                },
            )
        });
    dx
}
