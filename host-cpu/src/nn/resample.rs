//! Resolution changes of the U-Net: `avg_pool_2x2` (mean of each 2x2 block) going down and
//! `upsample_nearest_2x` (each pixel copied to a 2x2 block) going up. The two are adjoint up
//! to the factor 4, which is how their backward passes are written.

use ndarray::Array4;

/// Mean over each 2x2 block; H and W must be even.
pub fn avg_pool_2x2(x: &Array4<f32>) -> Array4<f32> {
    let (n, c, h, w) = x.dim();
    assert!(h % 2 == 0 && w % 2 == 0, "avg_pool_2x2: odd size {h}x{w}");
    Array4::from_shape_fn((n, c, h / 2, w / 2), |(i, ch, y, xx)| {
        0.25 * (x[[i, ch, 2 * y, 2 * xx]]
            + x[[i, ch, 2 * y, 2 * xx + 1]]
            + x[[i, ch, 2 * y + 1, 2 * xx]]
            + x[[i, ch, 2 * y + 1, 2 * xx + 1]])
    })
}

/// dL/dx of [`avg_pool_2x2`]: each input pixel receives a quarter of its block's gradient.
pub fn avg_pool_2x2_backward(d_out: &Array4<f32>) -> Array4<f32> {
    let (n, c, h, w) = d_out.dim();
    Array4::from_shape_fn((n, c, 2 * h, 2 * w), |(i, ch, y, x)| {
        0.25 * d_out[[i, ch, y / 2, x / 2]]
    })
}

/// Nearest-neighbour upsampling by 2: `out[y, x] = x[y / 2, x / 2]`.
pub fn upsample_nearest_2x(x: &Array4<f32>) -> Array4<f32> {
    let (n, c, h, w) = x.dim();
    Array4::from_shape_fn((n, c, 2 * h, 2 * w), |(i, ch, y, xx)| {
        x[[i, ch, y / 2, xx / 2]]
    })
}

/// dL/dx of [`upsample_nearest_2x`]: the sum of each 2x2 block of the output gradient.
pub fn upsample_nearest_2x_backward(d_out: &Array4<f32>) -> Array4<f32> {
    let (n, c, h, w) = d_out.dim();
    assert!(
        h % 2 == 0 && w % 2 == 0,
        "upsample backward: odd size {h}x{w}"
    );
    Array4::from_shape_fn((n, c, h / 2, w / 2), |(i, ch, y, x)| {
        d_out[[i, ch, 2 * y, 2 * x]]
            + d_out[[i, ch, 2 * y, 2 * x + 1]]
            + d_out[[i, ch, 2 * y + 1, 2 * x]]
            + d_out[[i, ch, 2 * y + 1, 2 * x + 1]]
    })
}
