//! `ResBlock(cin, cout)`:
//! ```text
//! h = conv1(SiLU(norm1(x)))  + emb_proj(emb)[:, :, None, None]
//! h = conv2(SiLU(norm2(h)))
//! out = (h + skip) / sqrt(2),  skip = x if cin == cout else GatedConv(1)(x)
//! ```

use super::gated_conv::{Epilogue, GatedConv, GatedConvCache};
use super::group_norm::{GroupNorm, GroupNormCache};
use super::linear::Linear;
use super::recycle::recycle;
use crate::params::ParamStore;
use ndarray::{Array2, Array4, Zip};
use rayon::prelude::*;
use std::f32::consts::FRAC_1_SQRT_2;

/// One residual block and its parameters `{prefix}.*`.
#[derive(Debug, Clone)]
pub struct ResBlock {
    pub cin: usize,
    pub cout: usize,
    norm1: GroupNorm,
    conv1: GatedConv,
    emb_proj: Linear,
    norm2: GroupNorm,
    conv2: GatedConv,
    skip: Option<GatedConv>,
}

/// What the backward pass needs.
#[derive(Debug, Clone)]
pub struct ResBlockCache {
    n1: GroupNormCache,
    c1: GatedConvCache,
    emb: Array2<f32>,
    n2: GroupNormCache,
    c2: GatedConvCache,
    skip: Option<GatedConvCache>,
}

impl ResBlock {
    /// The block `{prefix}` of `layout`: cin -> cout, `groups` GroupNorm groups, embedding
    /// width `emb_dim`.
    pub fn new(
        layout: &[(String, Vec<usize>)],
        prefix: &str,
        cin: usize,
        cout: usize,
        groups: usize,
        emb_dim: usize,
    ) -> Result<Self, String> {
        let skip = if cin != cout {
            Some(GatedConv::new(
                layout,
                &format!("{prefix}.skip"),
                cin,
                cout,
                1,
            )?)
        } else {
            None
        };
        Ok(ResBlock {
            cin,
            cout,
            norm1: GroupNorm::new(layout, &format!("{prefix}.norm1"), cin, groups)?,
            conv1: GatedConv::new(layout, &format!("{prefix}.conv1"), cin, cout, 3)?,
            emb_proj: Linear::new(layout, &format!("{prefix}.emb_proj"), emb_dim, cout)?,
            norm2: GroupNorm::new(layout, &format!("{prefix}.norm2"), cout, groups)?,
            conv2: GatedConv::new(layout, &format!("{prefix}.conv2"), cout, cout, 3)?,
            skip,
        })
    }

    /// x [N, cin, H, W], emb [N, emb_dim] -> [N, cout, H, W].
    pub fn forward(
        &self,
        params: &ParamStore,
        x: &Array4<f32>,
        emb: &Array2<f32>,
    ) -> (Array4<f32>, ResBlockCache) {
        let (a1, n1) = self.norm1.forward_silu(params, x);
        let e = self.emb_proj.forward(params, emb);
        let add = Epilogue {
            add: Some(&e),
            residual: None,
        };
        let (h, c1) = self.conv1.forward_owned_with(params, a1, &add);
        let (a2, n2) = self.norm2.forward_silu(params, &h);
        drop(h);
        let (s, skip) = match &self.skip {
            Some(conv) => {
                let (s, sc) = conv.forward(params, x);
                (Some(s), Some(sc))
            }
            None => (None, None),
        };
        let residual = Epilogue {
            add: None,
            residual: Some((s.as_ref().unwrap_or(x), FRAC_1_SQRT_2)),
        };
        let (out, c2) = self.conv2.forward_owned_with(params, a2, &residual);
        let cache = ResBlockCache {
            n1,
            c1,
            emb: emb.clone(),
            n2,
            c2,
            skip,
        };
        (out, cache)
    }

    /// The output alone (inference: nothing kept).
    pub fn forward_inference(
        &self,
        params: &ParamStore,
        x: &Array4<f32>,
        emb: &Array2<f32>,
    ) -> Array4<f32> {
        // SiLU(GN(.)) fused into each convolution's input stage: only the statistics are
        // computed here, and the normalised tensors are never written out.
        let k1 = self.norm1.silu_constants(params, x);
        let e = self.emb_proj.forward(params, emb);
        let add = Epilogue {
            add: Some(&e),
            residual: None,
        };
        let h = self.conv1.forward_inference_normed(params, x, &k1, &add);
        let k2 = self.norm2.silu_constants(params, &h);
        let s = self
            .skip
            .as_ref()
            .map(|conv| conv.forward_inference(params, x));
        let residual = Epilogue {
            add: None,
            residual: Some((s.as_ref().unwrap_or(x), FRAC_1_SQRT_2)),
        };
        let out = self
            .conv2
            .forward_inference_normed(params, &h, &k2, &residual);
        recycle(h);
        if let Some(s) = s {
            recycle(s);
        }
        out
    }

    /// Adds the block's parameter gradients to `grads` (if given); returns (dL/dx, dL/demb).
    pub fn backward(
        &self,
        params: &ParamStore,
        cache: &ResBlockCache,
        d_out: &Array4<f32>,
        mut grads: Option<&mut ParamStore>,
    ) -> (Array4<f32>, Array2<f32>) {
        let mut d = Array4::<f32>::zeros(d_out.dim());
        Zip::from(&mut d)
            .and(d_out)
            .par_for_each(|o, &v| *o = v * std::f32::consts::FRAC_1_SQRT_2);
        let d_a2 = self
            .conv2
            .backward(params, &cache.c2, &d, grads.as_deref_mut());
        let d_h = self
            .norm2
            .backward_silu(params, &cache.n2, &d_a2, grads.as_deref_mut());
        drop(d_a2);
        let (n, c, h, w) = d_h.dim();
        let d_e = Array2::from_shape_vec(
            (n, c),
            d_h.as_standard_layout()
                .as_slice()
                .unwrap()
                .par_chunks(h * w)
                .map(|p| p.iter().sum::<f32>())
                .collect(),
        )
        .unwrap();
        let d_emb = self
            .emb_proj
            .backward(params, &cache.emb, &d_e, grads.as_deref_mut());
        let d_a1 = self
            .conv1
            .backward(params, &cache.c1, &d_h, grads.as_deref_mut());
        drop(d_h);
        let mut dx = self
            .norm1
            .backward_silu(params, &cache.n1, &d_a1, grads.as_deref_mut());
        drop(d_a1);
        match (&self.skip, &cache.skip) {
            (Some(conv), Some(sc)) => {
                let ds = conv.backward(params, sc, &d, grads);
                Zip::from(&mut dx).and(&ds).par_for_each(|a, &b| *a += b);
            }
            _ => Zip::from(&mut dx).and(&d).par_for_each(|a, &b| *a += b),
        }
        (dx, d_emb)
    }
}
