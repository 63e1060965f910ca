//! Resolution changes of the U-Net: `avg_pool_2x2` (mean of each 2x2 block) going down and
//! `upsample_nearest_2x` (each pixel copied to a 2x2 block) going up. The two are adjoint up
//! to the factor 4, which is how their backward passes are written. Planes (sample, channel)
//! are processed in parallel.

use super::team;
use ndarray::Array4;

/// `out[y, x] = f(x[2y, 2x], x[2y, 2x+1], x[2y+1, 2x], x[2y+1, 2x+1])` for every plane.
fn reduce_2x2(x: &Array4<f32>, f: impl Fn(f32, f32, f32, f32) -> f32 + Sync) -> Array4<f32> {
    let (n, c, h, w) = x.dim();
    assert!(
        h % 2 == 0 && w % 2 == 0,
        "2x2 reduction of odd size {h}x{w}"
    );
    let x = x.as_standard_layout();
    let xs = x.as_slice().unwrap();
    let (ho, wo) = (h / 2, w / 2);
    let mut out = Array4::<f32>::zeros((n, c, ho, wo));
    let planes = out
        .as_slice_mut()
        .unwrap()
        .chunks_mut(ho * wo)
        .zip(xs.chunks(h * w));
    team::for_each(planes.collect(), |(o, p)| {
        for y in 0..ho {
            let (r0, r1) = (&p[2 * y * w..][..w], &p[(2 * y + 1) * w..][..w]);
            for (xo, ov) in o[y * wo..(y + 1) * wo].iter_mut().enumerate() {
                *ov = f(r0[2 * xo], r0[2 * xo + 1], r1[2 * xo], r1[2 * xo + 1]);
            }
        }
    });
    out
}

/// `out[y, x] = f(x[y / 2, x / 2])` for every plane.
fn expand_2x2(x: &Array4<f32>, f: impl Fn(f32) -> f32 + Sync) -> Array4<f32> {
    let (n, c, h, w) = x.dim();
    let x = x.as_standard_layout();
    let xs = x.as_slice().unwrap();
    let (ho, wo) = (2 * h, 2 * w);
    let mut out = Array4::<f32>::zeros((n, c, ho, wo));
    let planes = out
        .as_slice_mut()
        .unwrap()
        .chunks_mut(ho * wo)
        .zip(xs.chunks(h * w));
    team::for_each(planes.collect(), |(o, p)| {
        for (yo, row) in o.chunks_mut(wo).enumerate() {
            let src = &p[(yo / 2) * w..][..w];
            for (xo, ov) in row.iter_mut().enumerate() {
                *ov = f(src[xo / 2]);
            }
        }
    });
    out
}

/// Mean over each 2x2 block; H and W must be even.
pub fn avg_pool_2x2(x: &Array4<f32>) -> Array4<f32> {
    reduce_2x2(x, |a, b, c, d| 0.25 * (a + b + c + d))
}

/// dL/dx of [`avg_pool_2x2`]: each input pixel receives a quarter of its block's gradient.
pub fn avg_pool_2x2_backward(d_out: &Array4<f32>) -> Array4<f32> {
    expand_2x2(d_out, |v| 0.25 * v)
}

/// Nearest-neighbour upsampling by 2: `out[y, x] = x[y / 2, x / 2]`.
pub fn upsample_nearest_2x(x: &Array4<f32>) -> Array4<f32> {
    expand_2x2(x, |v| v)
}

/// dL/dx of [`upsample_nearest_2x`]: the sum of each 2x2 block of the output gradient.
pub fn upsample_nearest_2x_backward(d_out: &Array4<f32>) -> Array4<f32> {
    reduce_2x2(d_out, |a, b, c, d| a + b + c + d)
}
