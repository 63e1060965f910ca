//! `GatedConv(k)`: `out = conv(x, W) * sigmoid(conv(x, G)) + b`, stride 1, zero padding k/2,
//! ONE sigmoid, the bias on the main path only. Both convolutions are computed together with
//! `[W; G]` stacked as 2*cout output rows: for k = 3 on large enough images by Winograd
//! F(2x2, 3x3) (forward and input gradient, see `winograd::suits`), otherwise (and for the weight gradient) as one SGEMM per sample with the
//! im2col matrix of the input.

use super::gemm::{gemm_rows, gemm_rows_t, row_split, sgemm};
use super::im2col::{col2im, im2col};
use super::silu::sigmoid;
use super::winograd::{self, WinogradFilter};
use super::{accumulate, param_index};
use crate::params::ParamStore;
use ndarray::Array4;
use rayon::prelude::*;

/// A gated convolution and the indices of its `weight`, `gate` and `bias` in the store.
#[derive(Debug, Clone)]
pub struct GatedConv {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    weight: usize,
    gate: usize,
    bias: usize,
}

/// What the backward pass needs: the input, and per sample `conv(x, W)` stacked over
/// `sigmoid(conv(x, G))` ([N, 2 cout, H, W]).
#[derive(Debug, Clone)]
pub struct GatedConvCache {
    x: Array4<f32>,
    z: Array4<f32>,
}

impl GatedConv {
    /// The layer `{prefix}.weight/gate/bias` of `layout`; `k` must be odd.
    pub fn new(
        layout: &[(String, Vec<usize>)],
        prefix: &str,
        cin: usize,
        cout: usize,
        k: usize,
    ) -> Result<Self, String> {
        if k % 2 != 1 {
            return Err(format!("{prefix}: kernel size {k} must be odd"));
        }
        let w = [cout, cin, k, k];
        Ok(GatedConv {
            cin,
            cout,
            k,
            weight: param_index(layout, &format!("{prefix}.weight"), &w)?,
            gate: param_index(layout, &format!("{prefix}.gate"), &w)?,
            bias: param_index(layout, &format!("{prefix}.bias"), &[cout])?,
        })
    }

    fn kdim(&self) -> usize {
        self.cin * self.k * self.k
    }

    /// `[W; G]` as one row-major [2 cout, cin k k] matrix.
    fn stacked(&self, params: &ParamStore) -> Vec<f32> {
        let mut st = Vec::with_capacity(2 * self.cout * self.kdim());
        st.extend_from_slice(&params.params[self.weight].data);
        st.extend_from_slice(&params.params[self.gate].data);
        st
    }

    /// Forward pass; also returns what [`GatedConv::backward`] needs.
    pub fn forward(&self, params: &ParamStore, x: &Array4<f32>) -> (Array4<f32>, GatedConvCache) {
        self.forward_owned(params, x.as_standard_layout().into_owned())
    }

    /// [`GatedConv::forward`] taking ownership of the input (kept for the backward pass
    /// without a copy).
    pub fn forward_owned(
        &self,
        params: &ParamStore,
        x: Array4<f32>,
    ) -> (Array4<f32>, GatedConvCache) {
        let x = if x.is_standard_layout() {
            x
        } else {
            x.as_standard_layout().into_owned()
        };
        let (n, _, h, w) = x.dim();
        let mut z = Array4::<f32>::zeros((n, 2 * self.cout, h, w));
        let out = self.run(params, &x, Some(&mut z));
        (out, GatedConvCache { x, z })
    }

    /// The output alone (inference: nothing kept).
    pub fn forward_inference(&self, params: &ParamStore, x: &Array4<f32>) -> Array4<f32> {
        self.run(params, &x.as_standard_layout(), None)
    }

    /// out = zw * sigmoid(zg) + b with [zw; zg] = [W; G] im2col(x) per sample. With `keep`,
    /// [zw; sigmoid(zg)] is left there ([N, 2 cout, H, W]) for the backward pass.
    fn run(
        &self,
        params: &ParamStore,
        x: &ndarray::ArrayBase<impl ndarray::Data<Elem = f32>, ndarray::Ix4>,
        keep: Option<&mut Array4<f32>>,
    ) -> Array4<f32> {
        let (n, cin, h, w) = x.dim();
        assert_eq!(cin, self.cin, "GatedConv: input channels");
        let hw = h * w;
        let (cout, kd, k) = (self.cout, self.kdim(), self.k);
        let st = self.stacked(params);
        let wino = winograd::suits(k, h, w).then(|| WinogradFilter::new(&st, 2 * cout, cin));
        let bias = &params.params[self.bias].data;
        let xs = x.as_slice().expect("standard layout");
        let split = row_split(n);
        let mut out = Array4::<f32>::zeros((n, cout, h, w));
        let outs = out.as_slice_mut().unwrap().par_chunks_mut(cout * hw);
        // One sample: GEMM into z, then the gate in place and the output.
        let sample = |i: usize, o: &mut [f32], z: &mut [f32], buf: &mut Buffers| {
            let xi = &xs[i * cin * hw..(i + 1) * cin * hw];
            if let Some(f) = &wino {
                winograd::conv3x3(f, xi, h, w, z, split, &mut buf.wino);
            } else if k == 1 {
                gemm_rows(2 * cout, kd, &st, xi, z, split);
            } else {
                buf.col.resize(kd * hw, 0.0);
                im2col(xi, cin, h, w, k, &mut buf.col);
                gemm_rows(2 * cout, kd, &st, &buf.col, z, split);
            }
            let (zw, zg) = z.split_at_mut(cout * hw);
            for (c, &b) in bias.iter().enumerate() {
                let r = c * hw..(c + 1) * hw;
                for ((o, &a), g) in o[r.clone()].iter_mut().zip(&zw[r.clone()]).zip(&mut zg[r]) {
                    let sg = sigmoid(*g);
                    *g = sg;
                    *o = a * sg + b;
                }
            }
        };
        match keep {
            Some(z) => {
                assert_eq!(z.dim(), (n, 2 * cout, h, w), "GatedConv: cache shape");
                outs.zip(z.as_slice_mut().unwrap().par_chunks_mut(2 * cout * hw))
                    .enumerate()
                    .for_each_init(Buffers::default, |buf, (i, (o, zi))| sample(i, o, zi, buf));
            }
            None => outs.enumerate().for_each_init(
                || (Buffers::default(), vec![0.0f32; 2 * cout * hw]),
                |(buf, zi), (i, o)| sample(i, o, zi, buf),
            ),
        }
        out
    }

    /// Backward pass: adds dL/dW, dL/dG, dL/db to `grads` (if given), returns dL/dx.
    pub fn backward(
        &self,
        params: &ParamStore,
        cache: &GatedConvCache,
        d_out: &Array4<f32>,
        mut grads: Option<&mut ParamStore>,
    ) -> Array4<f32> {
        let (n, cin, h, w) = cache.x.dim();
        assert_eq!(d_out.dim(), (n, self.cout, h, w), "GatedConv: d_out shape");
        let d_out = d_out.as_standard_layout();
        let hw = h * w;
        let (cout, kd, k) = (self.cout, self.kdim(), self.k);
        let st = self.stacked(params);
        let wino = winograd::suits(k, h, w).then(|| WinogradFilter::adjoint(&st, 2 * cout, cin));
        let want_grads = grads.is_some();
        let xs = cache.x.as_slice().unwrap();
        let zs = cache.z.as_slice().unwrap();
        let ds = d_out.as_slice().unwrap();
        let mut dx = Array4::<f32>::zeros((n, cin, h, w));
        let split = row_split(n);
        // One sample: dz = [dL/dzw; dL/dzg], the parameter gradients, dx.
        let one = |acc: &mut Accum, i: usize, dxi: &mut [f32]| {
            let r = i * cout * hw..(i + 1) * cout * hw;
            let (zw, sg) = zs[2 * r.start..2 * r.end].split_at(cout * hw);
            let (dzw, dzg) = acc.dz_for(2 * cout * hw).split_at_mut(cout * hw);
            for (((dw, dg), &d), (&a, &s)) in dzw
                .iter_mut()
                .zip(dzg.iter_mut())
                .zip(&ds[r.clone()])
                .zip(zw.iter().zip(sg))
            {
                *dw = d * s;
                *dg = d * a * s * (1.0 - s);
            }
            if want_grads {
                for c in 0..cout {
                    let row = &ds[r.start + c * hw..r.start + (c + 1) * hw];
                    acc.db[c] += row.iter().map(|&v| v as f64).sum::<f64>();
                }
                let xi = &xs[i * cin * hw..(i + 1) * cin * hw];
                let col: &[f32] = if k == 1 {
                    xi
                } else {
                    im2col(xi, cin, h, w, k, acc.col_for(kd * hw));
                    &acc.col
                };
                // dWst += dz col^T: [2cout, hw] x [hw, kd].
                sgemm(
                    2 * cout,
                    hw,
                    kd,
                    1.0,
                    &acc.dz,
                    false,
                    col,
                    true,
                    1.0,
                    &mut acc.dw,
                );
            }
            if let Some(f) = &wino {
                // dx = the adjoint 3x3 convolution of dz.
                winograd::conv3x3(f, &acc.dz, h, w, dxi, split, &mut acc.wino);
            } else if k == 1 {
                // dx = Wst^T dz: [kd = cin, 2cout] x [2cout, hw].
                gemm_rows_t(2 * cout, kd, &st, &acc.dz, dxi, split);
            } else {
                let mut dcol = std::mem::take(&mut acc.dcol);
                dcol.resize(kd * hw, 0.0);
                gemm_rows_t(2 * cout, kd, &st, &acc.dz, &mut dcol, split);
                col2im(&dcol, cin, h, w, k, dxi);
                acc.dcol = dcol;
            }
        };
        // A fixed split of the batch (it depends on N only), each part summed in sample
        // order and the parts in order: the gradients are the same bits on every run and
        // for any number of threads.
        let chunk = n.div_ceil(GRAD_PARTS).max(1);
        let parts: Vec<Accum> = dx
            .as_slice_mut()
            .unwrap()
            .par_chunks_mut(chunk * cin * hw)
            .enumerate()
            .map(|(p, dxc)| {
                let mut acc = Accum::new(want_grads, 2 * cout * kd, cout);
                for (j, dxi) in dxc.chunks_mut(cin * hw).enumerate() {
                    one(&mut acc, p * chunk + j, dxi);
                }
                acc
            })
            .collect();
        let mut parts = parts.into_iter().map(|a| (a.dw, a.db));
        let acc = parts.next().map(|first| {
            parts.fold(first, |(mut a, mut ab), (b, bb)| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                ab.iter_mut().zip(&bb).for_each(|(x, y)| *x += y);
                (a, ab)
            })
        });
        let acc = acc.unwrap_or_default();
        if want_grads && !acc.0.is_empty() {
            let half = cout * kd;
            accumulate(&mut grads, self.weight, &acc.0[..half]);
            accumulate(&mut grads, self.gate, &acc.0[half..]);
            let db: Vec<f32> = acc.1.iter().map(|&v| v as f32).collect();
            accumulate(&mut grads, self.bias, &db);
        }
        dx
    }
}

/// Parts the batch is split into for the parameter gradients of the backward pass (at most
/// this many workers share a convolution's backward pass; each part holds one copy of dW).
const GRAD_PARTS: usize = 8;

/// Scratch and gradient sums of one part of the batch in the backward pass.
struct Accum {
    dw: Vec<f32>,
    db: Vec<f64>,
    dz: Vec<f32>,
    col: Vec<f32>,
    dcol: Vec<f32>,
    wino: winograd::Scratch,
}

/// Reusable per-worker buffers of the forward pass.
#[derive(Default)]
struct Buffers {
    col: Vec<f32>,
    wino: winograd::Scratch,
}

impl Accum {
    fn new(want_grads: bool, wlen: usize, cout: usize) -> Self {
        let (dw, db) = if want_grads {
            (vec![0.0; wlen], vec![0.0; cout])
        } else {
            (Vec::new(), Vec::new())
        };
        Accum {
            dw,
            db,
            dz: Vec::new(),
            col: Vec::new(),
            dcol: Vec::new(),
            wino: winograd::Scratch::default(),
        }
    }
    fn dz_for(&mut self, len: usize) -> &mut [f32] {
        self.dz.resize(len, 0.0);
        &mut self.dz
    }
    fn col_for(&mut self, len: usize) -> &mut [f32] {
        self.col.resize(len, 0.0);
        &mut self.col
    }
}
