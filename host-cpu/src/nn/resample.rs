//! Resolution changes of the U-Net: `avg_pool_2x2` (mean of each 2x2 block) going down and
//! `upsample_nearest_2x` (each pixel copied to a 2x2 block) going up. The two are adjoint up
//! to the factor 4, which is how their backward passes are written. Planes (sample, channel)
//! are processed in parallel.

use super::{recycle, team};
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
    let mut out = recycle::overwritten((n, c, ho, wo));
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

/// `o[y, x] = f(p[y / 2, x / 2])` for one plane `p` of width `w`: each source row into the
/// even output row, pair by pair, then copied to the odd one.
#[inline(always)]
fn expand_plane(o: &mut [f32], p: &[f32], w: usize, f: impl Fn(f32) -> f32) {
    for (rows, src) in o.chunks_exact_mut(4 * w).zip(p.chunks_exact(w)) {
        let (even, odd) = rows.split_at_mut(2 * w);
        for (pair, &v) in even.chunks_exact_mut(2).zip(src) {
            let v = f(v);
            pair[0] = v;
            pair[1] = v;
        }
        odd.copy_from_slice(even);
    }
}

/// `out[y, x] = f(x[y / 2, x / 2])` for every plane.
fn expand_2x2(x: &Array4<f32>, f: impl Fn(f32) -> f32 + Sync) -> Array4<f32> {
    let (n, c, h, w) = x.dim();
    let x = x.as_standard_layout();
    let xs = x.as_slice().unwrap();
    let (ho, wo) = (2 * h, 2 * w);
    let mut out = recycle::overwritten((n, c, ho, wo));
    let planes = out
        .as_slice_mut()
        .unwrap()
        .chunks_mut(ho * wo)
        .zip(xs.chunks(h * w));
    team::for_each(planes.collect(), |(o, p)| expand_plane(o, p, w, &f));
    out
}

/// `[upsample_nearest_2x(a), b]` along channels, in one pass (the decoder's step up and
/// concatenation with the encoder's skip): the same values as the two steps, without the
/// upsampled array between them, every plane on the workers.
pub fn upsample_concat(a: &Array4<f32>, b: &Array4<f32>) -> Array4<f32> {
    let (n, ca, h, w) = a.dim();
    let (nb, cb, ho, wo) = b.dim();
    assert!(
        (n, 2 * h, 2 * w) == (nb, ho, wo),
        "upsample_concat: b must be a at twice the size ({:?} vs {:?})",
        a.dim(),
        b.dim()
    );
    let (a, b) = (a.as_standard_layout(), b.as_standard_layout());
    let (sa, sb) = (a.as_slice().unwrap(), b.as_slice().unwrap());
    let (hw, ohw) = (h * w, ho * wo);
    let mut out = recycle::overwritten((n, ca + cb, ho, wo));
    // Each output plane with its source: a plane of `a` to expand, or one of `b` to copy.
    let planes = out.as_slice_mut().unwrap().chunks_mut(ohw).enumerate();
    let planes = planes.map(|(k, o)| {
        let (i, c) = (k / (ca + cb), k % (ca + cb));
        match c < ca {
            true => (o, &sa[(i * ca + c) * hw..][..hw], true),
            false => (o, &sb[(i * cb + c - ca) * ohw..][..ohw], false),
        }
    });
    team::for_each(planes.collect(), |(o, p, expand)| match expand {
        true => expand_plane(o, p, w, |v| v),
        false => o.copy_from_slice(p),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::concat::concat_channels;

    /// The fused step is the two it replaces, for a batch of two images (planes of both
    /// sources interleaved per image), on one and two workers; and a plane by hand.
    #[test]
    fn upsample_concat_is_upsample_then_concat() {
        let a = Array4::from_shape_fn((2, 3, 3, 2), |(i, c, y, x)| {
            (i * 100 + c * 10 + y * 2 + x) as f32
        });
        let b = Array4::from_shape_fn((2, 2, 6, 4), |(i, c, y, x)| {
            -((i * 1000 + c * 100 + y * 4 + x) as f32)
        });
        let want = concat_channels(&upsample_nearest_2x(&a), &b);
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let got = pool.install(|| upsample_concat(&a, &b));
            assert_eq!(got, want, "{threads} workers");
            assert_eq!(got[(1, 2, 5, 3)], a[(1, 2, 2, 1)]);
            assert_eq!(got[(1, 4, 5, 3)], b[(1, 1, 5, 3)]);
        }
    }
}
