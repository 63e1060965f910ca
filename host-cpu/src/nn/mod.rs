//! The layers of AmbientUNet v1 (docs/ambient-unet-spec.md, "Network F"), each with a forward
//! pass that keeps what its backward pass needs and a backward pass that accumulates parameter
//! gradients and returns the input gradient. Activations are NCHW `Array4<f32>` in standard
//! layout; a layer finds its parameters in a `ParamStore` by index, resolved once from names.

pub mod concat;
pub(crate) mod direct_conv;
pub mod embedding;
pub mod exp;
pub(crate) mod filter_cache;
pub mod gated_conv;
pub mod gemm;
pub mod group_norm;
pub mod im2col;
pub mod linear;
pub(crate) mod recycle;
pub mod resample;
pub mod resblock;
pub mod silu;
pub(crate) mod simd;
pub(crate) mod team;
pub(crate) mod transpose;
pub mod winograd;

use crate::params::ParamStore;

/// Index of `name` in a parameter layout, checking that its shape is `shape`.
pub fn param_index(
    layout: &[(String, Vec<usize>)],
    name: &str,
    shape: &[usize],
) -> Result<usize, String> {
    let i = layout
        .iter()
        .position(|(n, _)| n == name)
        .ok_or_else(|| format!("parameter {name} missing"))?;
    if layout[i].1 != shape {
        return Err(format!(
            "parameter {name} has shape {:?}, expected {shape:?}",
            layout[i].1
        ));
    }
    Ok(i)
}

/// `grads[idx] += delta`, if gradients are wanted.
pub(crate) fn accumulate(grads: &mut Option<&mut ParamStore>, idx: usize, delta: &[f32]) {
    if let Some(g) = grads.as_deref_mut() {
        let dst = &mut g.params[idx].data;
        assert_eq!(dst.len(), delta.len(), "gradient length");
        dst.iter_mut().zip(delta).for_each(|(d, &s)| *d += s);
    }
}

/// Number of rayon worker threads: how many pieces a batch is split into.
pub(crate) fn threads() -> usize {
    rayon::current_num_threads().max(1)
}
