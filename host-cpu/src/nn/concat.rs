//! Channel concatenation `[a, b]` of the decoder (and of `F_in`), and its backward: splitting
//! the gradient back into the two parts.

use ndarray::{concatenate, s, Array4, Axis};

/// `[a, b]` along channels; batch and spatial sizes must agree.
pub fn concat_channels(a: &Array4<f32>, b: &Array4<f32>) -> Array4<f32> {
    concatenate(Axis(1), &[a.view(), b.view()])
        .expect("concat_channels: batch and spatial sizes must agree")
        .as_standard_layout()
        .into_owned()
}

/// The gradients of the two parts of `[a, b]`, `a` having `ca` channels.
pub fn split_channels(d: &Array4<f32>, ca: usize) -> (Array4<f32>, Array4<f32>) {
    assert!(ca <= d.dim().1, "split_channels: {ca} > channels");
    (
        d.slice(s![.., ..ca, .., ..]).to_owned(),
        d.slice(s![.., ca.., .., ..]).to_owned(),
    )
}
