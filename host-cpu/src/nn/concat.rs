//! Channel concatenation `[a, b]` of the decoder (and of `F_in`), and its backward: splitting
//! the gradient back into the two parts. Both copy each image's contiguous channel blocks
//! directly into a fresh standard-layout array, with one allocation and no zero fill.

use ndarray::{Array4, CowArray, Ix4};

/// The data of `x` in standard (NCHW, row-major) order, borrowed when it already is.
fn standard(x: &Array4<f32>) -> CowArray<'_, f32, Ix4> {
    x.as_standard_layout()
}

/// `[a, b]` along channels; batch and spatial sizes must agree.
pub fn concat_channels(a: &Array4<f32>, b: &Array4<f32>) -> Array4<f32> {
    let (n, ca, h, w) = a.dim();
    let (nb, cb, hb, wb) = b.dim();
    assert!(
        (n, h, w) == (nb, hb, wb),
        "concat_channels: batch and spatial sizes must agree ({:?} vs {:?})",
        a.dim(),
        b.dim()
    );
    let (sa, sb) = (standard(a), standard(b));
    let (sa, sb) = (
        sa.as_slice().expect("standard layout"),
        sb.as_slice().expect("standard layout"),
    );
    let (ka, kb) = (ca * h * w, cb * h * w);
    let mut out = Vec::with_capacity(n * (ka + kb));
    for i in 0..n {
        out.extend_from_slice(&sa[i * ka..(i + 1) * ka]);
        out.extend_from_slice(&sb[i * kb..(i + 1) * kb]);
    }
    Array4::from_shape_vec((n, ca + cb, h, w), out).expect("length is n (ca + cb) h w")
}

/// The gradients of the two parts of `[a, b]`, `a` having `ca` channels.
pub fn split_channels(d: &Array4<f32>, ca: usize) -> (Array4<f32>, Array4<f32>) {
    let (n, c, h, w) = d.dim();
    assert!(ca <= c, "split_channels: {ca} > channels");
    let cb = c - ca;
    let sd = standard(d);
    let sd = sd.as_slice().expect("standard layout");
    let (ka, kb) = (ca * h * w, cb * h * w);
    let (mut da, mut db) = (Vec::with_capacity(n * ka), Vec::with_capacity(n * kb));
    for i in 0..n {
        let img = &sd[i * (ka + kb)..(i + 1) * (ka + kb)];
        da.extend_from_slice(&img[..ka]);
        db.extend_from_slice(&img[ka..]);
    }
    (
        Array4::from_shape_vec((n, ca, h, w), da).expect("length is n ca h w"),
        Array4::from_shape_vec((n, cb, h, w), db).expect("length is n cb h w"),
    )
}
