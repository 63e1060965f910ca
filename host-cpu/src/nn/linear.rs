//! `Linear`: `y = x W^T + b` on [N, in] rows, PyTorch layout W [out, in].

use super::gemm::sgemm;
use super::{accumulate, param_index};
use crate::params::ParamStore;
use ndarray::Array2;

/// A linear layer and the indices of its `weight` and `bias`.
#[derive(Debug, Clone)]
pub struct Linear {
    pub fin: usize,
    pub fout: usize,
    weight: usize,
    bias: usize,
}

impl Linear {
    /// The layer `{prefix}.weight/bias` of `layout`.
    pub fn new(
        layout: &[(String, Vec<usize>)],
        prefix: &str,
        fin: usize,
        fout: usize,
    ) -> Result<Self, String> {
        Ok(Linear {
            fin,
            fout,
            weight: param_index(layout, &format!("{prefix}.weight"), &[fout, fin])?,
            bias: param_index(layout, &format!("{prefix}.bias"), &[fout])?,
        })
    }

    /// `x W^T + b`; the input is all the backward pass needs, so the caller keeps it.
    pub fn forward(&self, params: &ParamStore, x: &Array2<f32>) -> Array2<f32> {
        let (n, fin) = x.dim();
        assert_eq!(fin, self.fin, "Linear: input features");
        let x = x.as_standard_layout();
        let b = &params.params[self.bias].data;
        let mut y = Array2::from_shape_fn((n, self.fout), |(_, j)| b[j]);
        let w = &params.params[self.weight].data;
        // One sample at a time, so that a sample's output does not depend on the rest of the
        // batch (the GEMM kernels' summation order may depend on the number of rows).
        let rows = x.as_slice().unwrap().chunks(fin);
        for (xr, yr) in rows.zip(y.as_slice_mut().unwrap().chunks_mut(self.fout)) {
            sgemm(1, fin, self.fout, 1.0, xr, false, w, true, 1.0, yr);
        }
        y
    }

    /// Adds dL/dW = dy^T x and dL/db = sum dy to `grads` (if given); returns dL/dx = dy W.
    pub fn backward(
        &self,
        params: &ParamStore,
        x: &Array2<f32>,
        d_out: &Array2<f32>,
        mut grads: Option<&mut ParamStore>,
    ) -> Array2<f32> {
        let (n, fin) = x.dim();
        assert_eq!(d_out.dim(), (n, self.fout), "Linear: d_out shape");
        let x = x.as_standard_layout();
        let d = d_out.as_standard_layout();
        let ds = d.as_slice().unwrap();
        if grads.is_some() {
            let mut dw = vec![0.0f32; self.fout * fin];
            sgemm(
                self.fout,
                n,
                fin,
                1.0,
                ds,
                true,
                x.as_slice().unwrap(),
                false,
                0.0,
                &mut dw,
            );
            let db: Vec<f32> = (0..self.fout)
                .map(|j| (0..n).map(|i| ds[i * self.fout + j] as f64).sum::<f64>() as f32)
                .collect();
            accumulate(&mut grads, self.weight, &dw);
            accumulate(&mut grads, self.bias, &db);
        }
        let mut dx = Array2::zeros((n, fin));
        let w = &params.params[self.weight].data;
        // One sample at a time, as in the forward pass.
        for (dr, xr) in ds
            .chunks(self.fout)
            .zip(dx.as_slice_mut().unwrap().chunks_mut(fin))
        {
            sgemm(1, self.fout, fin, 1.0, dr, false, w, false, 0.0, xr);
        }
        dx
    }
}
