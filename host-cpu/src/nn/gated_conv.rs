//! `GatedConv(k)`: `out = conv(x, W) * sigmoid(conv(x, G)) + b`, stride 1, zero padding k/2,
//! ONE sigmoid, the bias on the main path only. Forward: per sample, the input stage (im2col,
//! or for k = 3 on large enough images Winograd F(4x4, 3x3)'s input transform, see
//! `winograd::suits`), then blocks of output channels, each its rows of W and G (GEMMs on the
//! parameters in place, or the Winograd products with the filter in block-interleaved row
//! order) and the gate, with an optional fused epilogue (per-channel addend, scaled
//! residual). Backward: dz per sample, the weight gradient as SGEMMs of dz with the im2col
//! matrices (several small images per product), and the input gradient by the adjoint
//! Winograd convolution or `[W; G]^T dz` and col2im.

use super::direct_conv::conv_direct;
use super::filter_cache::FilterCache;
use super::gemm::{gemm, gemm_rows_t, row_split, sgemm};
use super::group_norm::{norm_silu, SiluNormConstants};
use super::im2col::{col2im, im2col};
use super::silu::sigmoid;
use super::simd;
use super::winograd::{self, WinogradFilter};
use super::{accumulate, param_index, recycle, team};
use crate::frozen::frozen_id;
use crate::params::ParamStore;
use ndarray::Array4;
use rayon::prelude::*;
use std::cell::RefCell;

/// A gated convolution and the indices of its `weight`, `gate` and `bias` in the store.
#[derive(Debug, Clone)]
pub struct GatedConv {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    weight: usize,
    gate: usize,
    bias: usize,
    /// The forward pass's Winograd filters, [`WinogradFilter::gated`] of the parameters:
    /// taps only, for fewer samples than workers (a restoration, whose products transform
    /// them panel by panel) ...
    forward_filters: FilterCache,
    /// ... and with their whole transform, for batches.
    forward_whole: FilterCache,
    /// The input gradient's, [`WinogradFilter::adjoint`] of the stacked parameters.
    adjoint_filters: FilterCache,
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
            forward_filters: FilterCache::default(),
            forward_whole: FilterCache::default(),
            adjoint_filters: FilterCache::default(),
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

    /// [`GatedConv::forward_owned`] followed by `out += add[n, c]` (a value per sample and
    /// output channel) and then, if given, `out = (out + residual) * scale`, fused into the
    /// gate's pass (the same operations in the same order as done after it).
    pub fn forward_owned_with(
        &self,
        params: &ParamStore,
        x: Array4<f32>,
        epilogue: &Epilogue<'_>,
    ) -> (Array4<f32>, GatedConvCache) {
        let x = if x.is_standard_layout() {
            x
        } else {
            x.as_standard_layout().into_owned()
        };
        let (n, _, h, w) = x.dim();
        let mut z = Array4::<f32>::zeros((n, 2 * self.cout, h, w));
        let out = self.run(params, &x, Some(&mut z), epilogue);
        (out, GatedConvCache { x, z })
    }

    /// [`GatedConv::forward_inference`] with an [`Epilogue`] as in
    /// [`GatedConv::forward_owned_with`].
    pub fn forward_inference_with(
        &self,
        params: &ParamStore,
        x: &Array4<f32>,
        epilogue: &Epilogue<'_>,
    ) -> Array4<f32> {
        self.run(params, &x.as_standard_layout(), None, epilogue)
    }

    /// `GatedConv(SiLU(GN(x)))` for inference with an [`Epilogue`], the normalisation
    /// applied as the input stage reads `x` (Winograd's input transform, else a buffer of
    /// this thread): `norm` holds per sample and input channel the constants of
    /// [`GroupNorm::silu_constants`](super::group_norm::GroupNorm::silu_constants), applied by
    /// [`norm_silu`], so the output is the bits of the two layers one after the other without
    /// the normalised tensor ever being written out.
    pub fn forward_inference_normed(
        &self,
        params: &ParamStore,
        x: &Array4<f32>,
        norm: &[SiluNormConstants],
        epilogue: &Epilogue<'_>,
    ) -> Array4<f32> {
        let (n, c, _, _) = x.dim();
        assert_eq!(norm.len(), n * c, "GatedConv: normalisation constants");
        self.run_with(params, &x.as_standard_layout(), None, epilogue, Some(norm))
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
        let out = self.run(params, &x, Some(&mut z), &Epilogue::default());
        (out, GatedConvCache { x, z })
    }

    /// The output alone (inference: nothing kept).
    pub fn forward_inference(&self, params: &ParamStore, x: &Array4<f32>) -> Array4<f32> {
        self.run(params, &x.as_standard_layout(), None, &Epilogue::default())
    }

    /// out = zw * sigmoid(zg) + b with [zw; zg] = [W; G] im2col(x) per sample. With `keep`,
    /// [zw; sigmoid(zg)] is left there ([N, 2 cout, H, W]) for the backward pass.
    ///
    /// Per sample (per group of samples for Winograd on small images): the input stage
    /// (im2col, or Winograd's input transform) for all output channels, then blocks of output
    /// channels, each its rows of W and of G (GEMMs, or Winograd products over the group's
    /// tiles and output transforms) and the gate. With fewer samples than workers both stages
    /// are shared out across the workers (by input channel or tile, then by block), so a
    /// single image has two parallel regions per convolution. Every output value is computed
    /// the same way for any block split or group (a block of GEMM rows sums in the order of
    /// the whole product; a Winograd product is one chain over the input channels), so one
    /// image gives the bits it gives inside a batch.
    fn run(
        &self,
        params: &ParamStore,
        x: &ndarray::ArrayBase<impl ndarray::Data<Elem = f32>, ndarray::Ix4>,
        keep: Option<&mut Array4<f32>>,
        epilogue: &Epilogue<'_>,
    ) -> Array4<f32> {
        self.run_with(params, x, keep, epilogue, None)
    }

    /// [`GatedConv::run`] of `norm_silu(x)` when `pre` holds the constants (inference).
    fn run_with(
        &self,
        params: &ParamStore,
        x: &ndarray::ArrayBase<impl ndarray::Data<Elem = f32>, ndarray::Ix4>,
        keep: Option<&mut Array4<f32>>,
        epilogue: &Epilogue<'_>,
        pre: Option<&[SiluNormConstants]>,
    ) -> Array4<f32> {
        let (n, cin, h, w) = x.dim();
        assert!(
            pre.is_none() || keep.is_none(),
            "GatedConv: a kept input is never fused"
        );
        assert_eq!(cin, self.cin, "GatedConv: input channels");
        if let Some(a) = epilogue.add {
            assert_eq!(
                a.dim(),
                (n, self.cout),
                "GatedConv: per-channel addend shape"
            );
        }
        if let Some((r, _)) = epilogue.residual {
            assert_eq!(r.dim(), (n, self.cout, h, w), "GatedConv: residual shape");
        }
        let add = epilogue.add.map(|a| a.as_standard_layout().into_owned());
        let add = add.as_ref().map(|a| a.as_slice().unwrap());
        let residual = epilogue.residual.map(|(r, s)| (r.as_standard_layout(), s));
        let residual = residual.as_ref().map(|(r, s)| (r.as_slice().unwrap(), *s));
        let hw = h * w;
        let (cout, kd, k) = (self.cout, self.kdim(), self.k);
        let (wt, gt) = (
            &params.params[self.weight].data,
            &params.params[self.gate].data,
        );
        let wino = winograd::suits(k, h, w, 2 * cout, cin).then(|| {
            // Either gives the same products; the whole transform pays off over many tiles
            // (a batch), and on small layers ([`winograd::WHOLE_TILES`]).
            let whole = n >= super::threads() || winograd::tiles(h, w) <= winograd::WHOLE_TILES;
            let cache = match whole {
                true => &self.forward_whole,
                false => &self.forward_filters,
            };
            cache.get(&[wt, gt], frozen_id(params), || {
                WinogradFilter::gated(wt, gt, cout, cin, whole)
            })
        });
        // A few output rows, and no Winograd: the direct convolution, not im2col.
        let direct = wino.is_none() && k > 1 && 2 * cout < DIRECT_ROWS;
        let bias = &params.params[self.bias].data;
        let xs = x.as_slice().expect("standard layout");
        let parts = row_split(n);
        let par = parts > 1;
        // Blocks of whole groups of the gated Winograd filter's row order (8 channels, whole
        // register tiles of the GEMM kernels, where 8 divides cout).
        let grp = winograd::gated_group(cout);
        let blk = cout.div_ceil(parts.min(cout / grp)).div_ceil(grp) * grp;
        let blocks = cout.div_ceil(blk);
        // Samples per group: Winograd's products run over the tiles of several small images
        // at once (each filter panel then serves them all from the first-level cache), as
        // many groups as a multiple of the workers. Each product value is the same chain over
        // the input channels in any group, so the grouping changes no bits.
        let per_group = match &wino {
            Some(_) => {
                let most = (GROUP_TILES / winograd::tiles(h, w)).max(1);
                let threads = super::threads();
                n.div_ceil(n.div_ceil(most).div_ceil(threads) * threads)
            }
            None => 1,
        };
        // Every value is written below, on every path.
        let mut out = recycle::overwritten((n, cout, h, w));
        // Samples i0.. (o.len() / (cout hw) of them).
        let group = |i0: usize, o: &mut [f32], z: Option<&mut [f32]>| {
            let gs = o.len() / (cout * hw);
            let xg = &xs[i0 * cin * hw..(i0 + gs) * cin * hw];
            // The input stage, into a buffer of this thread (taken out, so that a job this
            // thread runs while waiting below finds its own).
            let mut input = INPUT.with_borrow_mut(std::mem::take);
            // With `pre`: Winograd's input transform normalises as it reads; the other paths
            // read the normalised samples from a buffer of this thread.
            let mut normed = NORMED.with_borrow_mut(std::mem::take);
            let pre_of = |si: usize| pre.map(|k| &k[(i0 + si) * cin..][..cin]);
            let xg: &[f32] = match pre {
                Some(_) if wino.is_none() => {
                    winograd::grow(&mut normed, xg.len());
                    let dst = normed[..xg.len()].chunks_exact_mut(cin * hw);
                    for (si, (xi, di)) in xg.chunks_exact(cin * hw).zip(dst).enumerate() {
                        let k = pre_of(si).expect("constants");
                        simd::dispatch_wide(
                            #[inline(always)]
                            || {
                                let planes = xi.chunks_exact(hw).zip(di.chunks_exact_mut(hw));
                                for ((xc, dc), kc) in planes.zip(k) {
                                    for (d, &v) in dc.iter_mut().zip(xc) {
                                        *d = norm_silu(v, kc);
                                    }
                                }
                            },
                        );
                    }
                    &normed[..xg.len()]
                }
                _ => xg,
            };
            let b: &[f32] = match &wino {
                Some(_) => {
                    let len = winograd::input_len(cin, h, w);
                    winograd::grow(&mut input, gs * len);
                    let vs = input[..gs * len].chunks_exact_mut(len);
                    for (si, (xi, v)) in xg.chunks_exact(cin * hw).zip(vs).enumerate() {
                        winograd::input_transform(xi, cin, h, w, v, par, pre_of(si));
                    }
                    &input[..gs * len]
                }
                None if k == 1 || direct => xg,
                None => {
                    winograd::grow(&mut input, kd * hw);
                    im2col_par(xg, cin, h, w, k, &mut input[..kd * hw], par);
                    &input[..kd * hw]
                }
            };
            // One block: channels c0..c0 + rows of every sample of the group, each sample's
            // output channels and its rows of [zw; sigmoid(zg)].
            // The epilogue of sample `si` of the group, channels c0..c0 + rows.
            let epilogue_of = |si: usize, c0: usize, rows: usize| {
                let i = i0 + si;
                let chans = i * cout + c0..i * cout + c0 + rows;
                BlockEpilogue {
                    add: add.map(|a| &a[chans.clone()]),
                    residual: residual.map(|(r, s)| (&r[chans.start * hw..chans.end * hw], s)),
                }
            };
            // Without the cache (`kept` false) Winograd's output stage is fused with the
            // gate (`winograd::output_transform_gated`), and zw and zg are left empty.
            let block = |c0: usize,
                         rows: usize,
                         per: &mut [(&mut [f32], &mut [f32], &mut [f32])],
                         kept: bool| {
                match &wino {
                    Some(f) if !kept => {
                        let t = winograd::tiles(h, w);
                        BLOCK.with_borrow_mut(|m| {
                            let len = gs * winograd::product_len(2 * rows, h, w);
                            winograd::grow(m, len);
                            let m = &mut m[..len];
                            f.products(2 * c0..2 * (c0 + rows), b, gs * t, m);
                            let mut buf = vec![0.0f32; winograd::gated_buf_len(rows)];
                            for (si, (o, _, _)) in per.iter_mut().enumerate() {
                                let epi = epilogue_of(si, c0, rows);
                                winograd::output_transform_gated(
                                    m,
                                    winograd::padded(2 * rows),
                                    grp,
                                    si * t..(si + 1) * t,
                                    gs * t,
                                    h,
                                    w,
                                    o,
                                    &bias[c0..c0 + rows],
                                    epi.add,
                                    &mut buf,
                                );
                                if let Some((res, scale)) = epi.residual {
                                    simd::dispatch(
                                        #[inline(always)]
                                        || scaled_residual(o, res, scale),
                                    );
                                }
                            }
                        });
                        return;
                    }
                    Some(f) => {
                        let t = winograd::tiles(h, w);
                        let rows2 = 2 * rows;
                        BLOCK.with_borrow_mut(|m| {
                            let len = gs * winograd::product_len(rows2, h, w);
                            winograd::grow(m, len);
                            let m = &mut m[..len];
                            // The block's main and gate rows are one run (c0 and rows are
                            // whole groups), over the tiles of all the group's samples.
                            f.products(2 * c0..2 * (c0 + rows), b, gs * t, m);
                            let mut buf = vec![0.0f32; winograd::output_buf_len(rows2)];
                            for (si, (_, zw, zg)) in per.iter_mut().enumerate() {
                                // Each of the run's rows goes to its channel of zw or of zg.
                                let mut dst: Vec<Option<&mut [f32]>> =
                                    (0..rows2).map(|_| None).collect();
                                let zs = zw.chunks_exact_mut(hw).zip(zg.chunks_exact_mut(hw));
                                for (r, (zwr, zgr)) in zs.enumerate() {
                                    let row =
                                        |gate| winograd::gated_row(cout, c0 + r, gate) - 2 * c0;
                                    dst[row(false)] = Some(zwr);
                                    dst[row(true)] = Some(zgr);
                                }
                                let mut outs: Vec<&mut [f32]> =
                                    dst.into_iter().map(|d| d.expect("every row")).collect();
                                winograd::output_transform(
                                    m,
                                    winograd::padded(rows2),
                                    0..rows2,
                                    si * t..(si + 1) * t,
                                    gs * t,
                                    h,
                                    w,
                                    &mut outs,
                                    &mut buf,
                                );
                            }
                        });
                    }
                    None if direct => {
                        let (_, zw, zg) = &mut per[0];
                        let ws = c0 * kd..(c0 + rows) * kd;
                        let conv = |kern: &[f32], z: &mut [f32]| {
                            BLOCK.with_borrow_mut(|sc| conv_direct(b, cin, (h, w), k, kern, z, sc))
                        };
                        if par && blocks == 1 {
                            // A single block (`out_conv`: one channel): the main and the gate
                            // convolution on two workers.
                            let pair =
                                vec![(&wt[ws.clone()], &mut **zw), (&gt[ws.clone()], &mut **zg)];
                            team::for_each(pair, |(kern, z)| conv(kern, z));
                        } else {
                            conv(&wt[ws.clone()], zw);
                            conv(&gt[ws], zg);
                        }
                    }
                    None => {
                        let (_, zw, zg) = &mut per[0];
                        gemm(rows, kd, hw, &wt[c0 * kd..(c0 + rows) * kd], b, zw);
                        gemm(rows, kd, hw, &gt[c0 * kd..(c0 + rows) * kd], b, zg);
                    }
                }
                for (si, (o, zw, zg)) in per.iter_mut().enumerate() {
                    gate(
                        o,
                        zw,
                        zg,
                        &bias[c0..c0 + rows],
                        &epilogue_of(si, c0, rows),
                        hw,
                    );
                }
            };
            // Block j: per sample its output channels and, when kept, its rows of
            // [zw; sigmoid(zg)] (else this thread's scratch).
            let run_block = |(j, items): (usize, Vec<BlockOut<'_>>)| {
                let rows = items[0].0.len() / hw;
                match items[0].1 {
                    Some(_) => {
                        let mut per: Vec<_> = items
                            .into_iter()
                            .map(|(o, z)| {
                                let (zw, zg) = z.expect("all kept");
                                (o, zw, zg)
                            })
                            .collect();
                        block(j * blk, rows, &mut per, true)
                    }
                    None if wino.is_some() => {
                        let mut per: Vec<_> = items
                            .into_iter()
                            .map(|(o, _)| (o, &mut [][..], &mut [][..]))
                            .collect();
                        block(j * blk, rows, &mut per, false)
                    }
                    None => Z.with_borrow_mut(|zb| {
                        let len = 2 * rows * hw;
                        winograd::grow(zb, items.len() * len);
                        let mut per: Vec<_> = items
                            .into_iter()
                            .zip(zb.chunks_exact_mut(len))
                            .map(|((o, _), zs)| {
                                let (zw, zg) = zs.split_at_mut(len / 2);
                                (o, zw, zg)
                            })
                            .collect();
                        block(j * blk, rows, &mut per, false)
                    }),
                }
            };
            let mut items: Vec<(usize, Vec<BlockOut<'_>>)> =
                (0..blocks).map(|j| (j, Vec::with_capacity(gs))).collect();
            let os = o.chunks_mut(cout * hw);
            match z {
                Some(z) => {
                    for (oi, zi) in os.zip(z.chunks_mut(2 * cout * hw)) {
                        let (zw, zg) = zi.split_at_mut(cout * hw);
                        let zs = zw.chunks_mut(blk * hw).zip(zg.chunks_mut(blk * hw));
                        for ((ob, zb), it) in oi.chunks_mut(blk * hw).zip(zs).zip(&mut items) {
                            it.1.push((ob, Some(zb)));
                        }
                    }
                }
                None => {
                    for oi in os {
                        for (ob, it) in oi.chunks_mut(blk * hw).zip(&mut items) {
                            it.1.push((ob, None));
                        }
                    }
                }
            }
            if par {
                team::for_each(items, run_block);
            } else {
                items.into_iter().for_each(run_block);
            }
            INPUT.with_borrow_mut(|slot| {
                if slot.len() < input.len() {
                    *slot = input;
                }
            });
            NORMED.with_borrow_mut(|slot| {
                if slot.len() < normed.len() {
                    *slot = normed;
                }
            });
        };
        let stride = per_group * cout * hw;
        let outs = out.as_slice_mut().unwrap().chunks_mut(stride);
        match keep {
            Some(z) => {
                assert_eq!(z.dim(), (n, 2 * cout, h, w), "GatedConv: cache shape");
                let zs = z.as_slice_mut().unwrap().chunks_mut(2 * stride);
                team::for_each(outs.zip(zs).enumerate().collect(), |(g, (o, zi))| {
                    group(g * per_group, o, Some(zi))
                });
            }
            None => team::for_each(outs.enumerate().collect(), |(g, o)| {
                group(g * per_group, o, None)
            }),
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
        let wino = winograd::suits(k, h, w, cin, 2 * cout).then(|| {
            let (wt, gt) = st.split_at(cout * kd);
            self.adjoint_filters.get(&[wt, gt], frozen_id(params), || {
                WinogradFilter::adjoint(&st, 2 * cout, cin)
            })
        });
        let want_grads = grads.is_some();
        let xs = cache.x.as_slice().unwrap();
        let zs = cache.z.as_slice().unwrap();
        let ds = d_out.as_slice().unwrap();
        let mut dx = Array4::<f32>::zeros((n, cin, h, w));
        let split = row_split(n);
        // Samples per weight-gradient product: on small images several samples' dz and
        // im2col matrices side by side, so that dW is read and written once per DW_DEPTH
        // pixels rather than once per sample (with 49 or 196 pixels the update is
        // memory-bound). Winograd images are large (one sample each).
        let per = if wino.is_some() {
            1
        } else {
            (DW_DEPTH / hw).max(1)
        };
        // One group of samples i0..i0 + s: dz = [dL/dzw; dL/dzg] as [2 cout, s hw] (sample
        // j's pixels at columns j hw..), the parameter gradients, dx.
        let group = |acc: &mut Accum, i0: usize, dxg: &mut [f32]| {
            let s = dxg.len() / (cin * hw);
            let l = s * hw;
            let (dzw, dzg) = acc.dz_for(2 * cout * l).split_at_mut(cout * l);
            for j in 0..s {
                let r = (i0 + j) * cout * hw..(i0 + j + 1) * cout * hw;
                let (zw, sg) = zs[2 * r.start..2 * r.end].split_at(cout * hw);
                let d = &ds[r];
                simd::dispatch(
                    #[inline(always)]
                    || {
                        for c in 0..cout {
                            let px = c * hw..(c + 1) * hw;
                            let dw = &mut dzw[c * l + j * hw..][..hw];
                            let dg = &mut dzg[c * l + j * hw..][..hw];
                            let (d, zw, sg) = (&d[px.clone()], &zw[px.clone()], &sg[px]);
                            for p in 0..hw {
                                let (d, a, s) = (d[p], zw[p], sg[p]);
                                dw[p] = d * s;
                                dg[p] = d * a * s * (1.0 - s);
                            }
                        }
                    },
                );
            }
            let dz = 0..2 * cout * l;
            if want_grads {
                for j in 0..s {
                    let r = (i0 + j) * cout * hw;
                    for c in 0..cout {
                        let row = &ds[r + c * hw..r + (c + 1) * hw];
                        acc.db[c] += row.iter().map(|&v| v as f64).sum::<f64>();
                    }
                }
                let xg = &xs[i0 * cin * hw..(i0 + s) * cin * hw];
                let col: &[f32] = if k == 1 && s == 1 {
                    xg
                } else {
                    let col = acc.col_for(kd * l);
                    for (j, xi) in xg.chunks_exact(cin * hw).enumerate() {
                        if k == 1 {
                            for (c, xc) in xi.chunks_exact(hw).enumerate() {
                                col[c * l + j * hw..][..hw].copy_from_slice(xc);
                            }
                        } else {
                            im2col(xi, cin, h, w, k, &mut col[j * hw..], l);
                        }
                    }
                    &acc.s.col[..kd * l]
                };
                // dWst += dz col^T: [2cout, s hw] x [s hw, kd].
                sgemm(
                    2 * cout,
                    l,
                    kd,
                    1.0,
                    &acc.s.dz[dz.clone()],
                    false,
                    col,
                    true,
                    1.0,
                    &mut acc.dw,
                );
            }
            if let Some(f) = &wino {
                // dx = the adjoint 3x3 convolution of dz (one sample: l = hw).
                winograd::conv3x3(f, &acc.s.dz[dz], h, w, dxg, split, &mut acc.s.wino);
            } else if k == 1 && s == 1 {
                // dx = Wst^T dz: [kd = cin, 2cout] x [2cout, hw].
                gemm_rows_t(2 * cout, kd, &st, &acc.s.dz[dz], dxg, split);
            } else {
                // dcol = Wst^T dz [kd, s hw], then per sample (col2im, or its rows for 1x1).
                let sc = &mut acc.s;
                winograd::grow(&mut sc.dcol, kd * l);
                let dcol = &mut sc.dcol[..kd * l];
                gemm_rows_t(2 * cout, kd, &st, &sc.dz[dz], dcol, split);
                for (j, dxi) in dxg.chunks_exact_mut(cin * hw).enumerate() {
                    if k == 1 {
                        for (c, dc) in dxi.chunks_exact_mut(hw).enumerate() {
                            dc.copy_from_slice(&dcol[c * l + j * hw..][..hw]);
                        }
                    } else {
                        col2im(&dcol[j * hw..], cin, h, w, k, dxi, l);
                    }
                }
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
                for (g, dxg) in dxc.chunks_mut(per * cin * hw).enumerate() {
                    group(&mut acc, p * chunk + g * per, dxg);
                }
                acc.give_back();
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

/// Most Winograd tiles (summed over a group's samples) per product in the forward pass.
const GROUP_TILES: usize = 48;

/// Below this many rows of [W; G] (2 cout) a k x k convolution that Winograd does not take is
/// computed directly (`direct_conv`) instead of through im2col and a GEMM of those few rows:
/// `out_conv` of the spec network (32 -> 1 channel, 28 x 28, one image) took 72 us through
/// im2col on one thread of this 2-core Zen 4 (80-83 us on two) and 37-43 us directly (37 on
/// two), medians of 21 x 100 calls in two alternating runs.
const DIRECT_ROWS: usize = 16;

/// Pixels (summed over samples) per weight-gradient product on small images: gemm's depth
/// block, so that one product is one pass over dW.
const DW_DEPTH: usize = 512;

/// Scratch and gradient sums of one part of the batch in the backward pass.
struct Accum {
    dw: Vec<f32>,
    db: Vec<f64>,
    s: BackwardScratch,
}

/// The backward pass's buffers of one worker (kept between calls in [`BACKWARD`]; only a
/// prefix of each is used).
#[derive(Default)]
struct BackwardScratch {
    dz: Vec<f32>,
    col: Vec<f32>,
    dcol: Vec<f32>,
    wino: winograd::Scratch,
}

/// A block's output channels and, when the cache is kept, its rows of zw and of zg.
type BlockOut<'a> = (&'a mut [f32], Option<(&'a mut [f32], &'a mut [f32])>);

thread_local! {
    /// The forward pass's input stage (im2col matrix or Winograd-transformed input) of the
    /// sample this thread works on, kept between calls.
    static INPUT: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// The normalised samples of [`GatedConv::forward_inference_normed`] where no Winograd
    /// input transform applies the normalisation.
    static NORMED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// A block's Winograd products (or the direct convolution's scratch).
    static BLOCK: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// A block's [zw; zg] when the forward pass keeps nothing.
    static Z: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// The backward pass's scratch.
    static BACKWARD: RefCell<BackwardScratch> = RefCell::new(BackwardScratch::default());
}

/// What [`GatedConv::forward_owned_with`] and [`GatedConv::forward_inference_with`] apply
/// after the gate: `out += add[n, c]`, then `out = (out + residual) * scale`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Epilogue<'a> {
    /// A value per sample and output channel, [N, cout].
    pub add: Option<&'a ndarray::Array2<f32>>,
    /// A tensor of the output's shape and the scale applied after adding it.
    pub residual: Option<(&'a Array4<f32>, f32)>,
}

/// [`Epilogue`] for one block of channels of one sample.
struct BlockEpilogue<'a> {
    add: Option<&'a [f32]>,
    residual: Option<(&'a [f32], f32)>,
}

/// `o = zw * sigmoid(zg) + b` per channel (`hw` values each), leaving `sigmoid(zg)` in `zg`,
/// then the epilogue.
fn gate(o: &mut [f32], zw: &[f32], zg: &mut [f32], bias: &[f32], e: &BlockEpilogue, hw: usize) {
    simd::dispatch_wide(
        #[inline(always)]
        || gate_portable(o, zw, zg, bias, e, hw),
    )
}

#[inline(always)]
fn gate_portable(
    o: &mut [f32],
    zw: &[f32],
    zg: &mut [f32],
    bias: &[f32],
    e: &BlockEpilogue,
    hw: usize,
) {
    for (c, &b) in bias.iter().enumerate() {
        let r = c * hw..(c + 1) * hw;
        let (oc, zwc, zgc) = (&mut o[r.clone()], &zw[r.clone()], &mut zg[r.clone()]);
        for ((o, &a), g) in oc.iter_mut().zip(zwc).zip(zgc.iter_mut()) {
            let sg = sigmoid(*g);
            *g = sg;
            *o = a * sg + b;
        }
        if let Some(add) = e.add {
            let ac = add[c];
            oc.iter_mut().for_each(|o| *o += ac);
        }
        if let Some((res, scale)) = e.residual {
            scaled_residual(oc, &res[r], scale);
        }
    }
}

/// `o = (o + res) * scale`, the epilogue's last step.
#[inline(always)]
fn scaled_residual(o: &mut [f32], res: &[f32], scale: f32) {
    assert_eq!(o.len(), res.len(), "GatedConv: residual length");
    for (o, &v) in o.iter_mut().zip(res) {
        *o = (*o + v) * scale;
    }
}

/// [`im2col`], its channels shared out across the workers when `par`.
fn im2col_par(x: &[f32], cin: usize, h: usize, w: usize, k: usize, col: &mut [f32], par: bool) {
    if !par {
        return im2col(x, cin, h, w, k, col, h * w);
    }
    let hw = h * w;
    let planes = col.chunks_mut(k * k * hw).zip(x.chunks(hw));
    team::for_each(planes.collect(), |(cc, xc)| im2col(xc, 1, h, w, k, cc, hw));
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
            s: BACKWARD.with_borrow_mut(std::mem::take),
        }
    }
    /// Returns the scratch to this thread's slot (unless a job run meanwhile left its own).
    fn give_back(&mut self) {
        let s = std::mem::take(&mut self.s);
        BACKWARD.with_borrow_mut(|slot| {
            if slot.dz.is_empty() {
                *slot = s;
            }
        });
    }
    fn dz_for(&mut self, len: usize) -> &mut [f32] {
        winograd::grow(&mut self.s.dz, len);
        &mut self.s.dz[..len]
    }
    fn col_for(&mut self, len: usize) -> &mut [f32] {
        winograd::grow(&mut self.s.col, len);
        &mut self.s.col[..len]
    }
}

#[cfg(test)]
mod tests_support {
    use super::*;
    use ambient_core::AmbientRng;

    /// A layer with `N(0, 0.3^2)` weights, gates and biases.
    pub(super) fn layer(
        cin: usize,
        cout: usize,
        k: usize,
        rng: &mut AmbientRng,
    ) -> (GatedConv, ParamStore) {
        let w = vec![cout, cin, k, k];
        let layout = vec![
            ("c.weight".to_string(), w.clone()),
            ("c.gate".to_string(), w),
            ("c.bias".to_string(), vec![cout]),
        ];
        let mut params = ParamStore::zeros(&layout);
        for p in params.params.iter_mut() {
            p.data.iter_mut().for_each(|v| *v = 0.3 * rng.normal());
        }
        (GatedConv::new(&layout, "c", cin, cout, k).unwrap(), params)
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::layer;
    use super::*;
    use crate::nn::simd;
    use ambient_core::AmbientRng;

    /// The forward pass against the same computation assembled from separately tested
    /// parts: conv(x, W) and conv(x, G) each by `winograd::conv3x3` (own filter transform, its
    /// own test against a direct convolution) or by one SGEMM of the whole im2col matrix,
    /// then `zw sigmoid(zg) + b`. A block of GEMM rows sums in the order of the whole product
    /// (gemm's tests), and the Winograd transforms act per tile, so the output is the same
    /// bits whatever the block split: checked for the batch and each image alone, on 1 and 2
    /// workers (one image on 2 workers is split into channel blocks), on the portable and the
    /// SIMD path, and for the forward pass that keeps its cache. Shapes: Winograd with
    /// ragged tiles (9 x 16 at 11 x 9: Winograd takes at least 8 input channels, so the 3-
    /// and 5-channel layers go through the direct convolution or im2col; one image on 2
    /// workers transforms its filter panels on the fly, a batch uses the whole transform),
    /// a single output channel, 1x1 with a channel count 8 does not divide.
    #[test]
    fn forward_is_the_reference_bits_for_any_split_and_path() {
        let mut rng = AmbientRng::new(11);
        for &(cin, cout, k, h, w) in &[
            (3, 16, 3, 21, 19),
            (5, 24, 3, 9, 7),
            (9, 16, 3, 11, 9),
            (4, 1, 3, 20, 20),
            (6, 12, 1, 5, 6),
        ] {
            let (conv, params) = layer(cin, cout, k, &mut rng);
            let n = 3;
            let mut x = Array4::<f32>::zeros((n, cin, h, w));
            x.iter_mut().for_each(|v| *v = rng.normal());
            let hw = h * w;
            let (wt, gt, bias) = (
                &params.params[0].data,
                &params.params[1].data,
                &params.params[2].data,
            );
            let mut want = Array4::<f32>::zeros((n, cout, h, w));
            let mut want_z = Array4::<f32>::zeros((n, 2 * cout, h, w));
            for i in 0..n {
                let xi = &x.as_slice().unwrap()[i * cin * hw..(i + 1) * cin * hw];
                let conv_of = |kern: &[f32]| {
                    let mut z = vec![0.0f32; cout * hw];
                    if winograd::suits(k, h, w, 2 * cout, cin) {
                        let f = WinogradFilter::new(kern, cout, cin);
                        let mut s = winograd::Scratch::default();
                        winograd::conv3x3(&f, xi, h, w, &mut z, 1, &mut s);
                    } else if k > 1 && 2 * cout < DIRECT_ROWS {
                        conv_direct(xi, cin, (h, w), k, kern, &mut z, &mut Vec::new());
                    } else {
                        let kd = cin * k * k;
                        let mut col = vec![0.0f32; kd * hw];
                        im2col(xi, cin, h, w, k, &mut col, hw);
                        sgemm(cout, kd, hw, 1.0, kern, false, &col, false, 0.0, &mut z);
                    }
                    z
                };
                let (zw, zg) = (conv_of(wt), conv_of(gt));
                let o = &mut want.as_slice_mut().unwrap()[i * cout * hw..(i + 1) * cout * hw];
                let zk = &mut want_z.as_slice_mut().unwrap()[i * 2 * cout * hw..][..2 * cout * hw];
                for c in 0..cout {
                    for p in 0..hw {
                        let s = sigmoid(zg[c * hw + p]);
                        o[c * hw + p] = zw[c * hw + p] * s + bias[c];
                        zk[c * hw + p] = zw[c * hw + p];
                        zk[(cout + c) * hw + p] = s;
                    }
                }
            }
            let what = format!("cin {cin} cout {cout} k {k} {h}x{w}");
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| {
                    let all = conv.forward_inference(&params, &x);
                    assert!(all == want, "{what}: batch, {threads} workers");
                    let portable = simd::portable(|| conv.forward_inference(&params, &x));
                    assert!(portable == want, "{what}: portable, {threads} workers");
                    let (kept, cache) = conv.forward(&params, &x);
                    assert!(kept == want && cache.z == want_z, "{what}: kept");
                    for i in 0..n {
                        let xi = x.slice(ndarray::s![i..i + 1, .., .., ..]).to_owned();
                        let one = conv.forward_inference(&params, &xi);
                        let wi = want.slice(ndarray::s![i..i + 1, .., .., ..]);
                        assert!(one == wi, "{what}: image {i} alone, {threads} workers");
                    }
                });
            }
        }
    }

    /// The fused epilogue is the separate passes it replaces, bit for bit: `out + add[n, c]`,
    /// then `(out + residual) / sqrt(2)`, for the batch and one image on 2 workers (blocks).
    /// Frozen weights give the bits of unfrozen ones, and once the guard is gone a change
    /// of the weights is seen again: the output is then that of a fresh layer (no filter
    /// trusted past its guard), on the forward pass and on the input gradient.
    #[test]
    fn frozen_weights_are_trusted_only_while_frozen() {
        let mut rng = AmbientRng::new(13);
        // 16 in and out: Winograd on the forward pass and on the input gradient.
        let (conv, mut params) = layer(16, 16, 3, &mut rng);
        let mut x = Array4::<f32>::zeros((1, 16, 12, 12));
        x.iter_mut().for_each(|v| *v = rng.normal());
        let mut d = Array4::<f32>::zeros((1, 16, 12, 12));
        d.iter_mut().for_each(|v| *v = rng.normal());
        let run = |conv: &GatedConv, p: &ParamStore| {
            let (out, cache) = conv.forward(p, &x);
            (
                conv.forward_inference(p, &x),
                out,
                conv.backward(p, &cache, &d, None),
            )
        };
        let plain = run(&conv.clone(), &params);
        {
            let frozen = crate::frozen::FrozenParams::new(&params);
            assert!(run(&conv, &frozen) == plain && run(&conv, &frozen) == plain);
        }
        params.params[0].data[5] += 0.25;
        params.params[1].data[7] -= 0.25;
        let changed = run(&conv, &params);
        assert!(changed.0 != plain.0, "the change matters");
        assert!(
            changed == run(&conv.clone(), &params),
            "a fresh layer's bits"
        );
    }

    #[test]
    fn epilogue_is_the_separate_passes() {
        let mut rng = AmbientRng::new(12);
        for &(cin, cout, k, h, w) in &[(3, 16, 3, 20, 20), (5, 24, 3, 7, 7)] {
            let (conv, params) = layer(cin, cout, k, &mut rng);
            let n = 2;
            let mut x = Array4::<f32>::zeros((n, cin, h, w));
            x.iter_mut().for_each(|v| *v = rng.normal());
            let mut add = ndarray::Array2::<f32>::zeros((n, cout));
            add.iter_mut().for_each(|v| *v = rng.normal());
            let mut res = Array4::<f32>::zeros((n, cout, h, w));
            res.iter_mut().for_each(|v| *v = rng.normal());
            let scale = std::f32::consts::FRAC_1_SQRT_2;
            let plain = conv.forward_inference(&params, &x);
            let mut want_add = plain.clone();
            for ((i, c, _, _), v) in want_add.indexed_iter_mut() {
                *v += add[[i, c]];
            }
            let want_res = ndarray::Zip::from(&plain)
                .and(&res)
                .map_collect(|&o, &r| (o + r) * scale);
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap();
            pool.install(|| {
                let e_add = Epilogue {
                    add: Some(&add),
                    residual: None,
                };
                let e_res = Epilogue {
                    add: None,
                    residual: Some((&res, scale)),
                };
                assert!(conv.forward_inference_with(&params, &x, &e_add) == want_add);
                assert!(conv.forward_inference_with(&params, &x, &e_res) == want_res);
                let (kept, _) = conv.forward_owned_with(&params, x.clone(), &e_res);
                assert!(kept == want_res);
                let x0 = x.slice(ndarray::s![0..1, .., .., ..]).to_owned();
                let r0 = res.slice(ndarray::s![0..1, .., .., ..]).to_owned();
                let e0 = Epilogue {
                    add: None,
                    residual: Some((&r0, scale)),
                };
                let one = conv.forward_inference_with(&params, &x0, &e0);
                assert!(one == want_res.slice(ndarray::s![0..1, .., .., ..]));
                let a0 = add.slice(ndarray::s![0..1, ..]).to_owned();
                let e0 = Epilogue {
                    add: Some(&a0),
                    residual: None,
                };
                let one = conv.forward_inference_with(&params, &x0, &e0);
                assert!(one == want_add.slice(ndarray::s![0..1, .., .., ..]));
            });
        }
    }
}

#[cfg(test)]
mod backward_tests {
    use super::tests_support::layer;
    use super::*;
    use ambient_core::AmbientRng;

    /// The weight gradient with several samples per product (7 x 7 images: 10 per product,
    /// here groups of 5 in each of the 8 parts of a batch of 40) against an f64 sum over
    /// samples and pixels of dz col^T, dz recomputed in f32 as the layer does and col by
    /// `im2col` (tested on its own). Tolerance: any order of summing n = N hw products in
    /// f32 errs by at most (n + 1) 2^-24 sum |dz| |col| (first-order bound of recursive
    /// summation, and the blocked sums and the final addition of the 8 parts are one more
    /// level each: n + 3 used). dx: each pixel's sum over the 2 cout rows is the same
    /// sequence whatever the number of columns of the product, so it equals each sample's
    /// own backward pass bit for bit. 3x3 and 1x1.
    #[test]
    fn grouped_weight_gradient_matches_f64_and_dx_matches_single_samples() {
        let mut rng = AmbientRng::new(21);
        for k in [3usize, 1] {
            let (cin, cout, h, w, n) = (3, 8, 7, 7, 40);
            let (conv, params) = layer(cin, cout, k, &mut rng);
            let mut x = Array4::<f32>::zeros((n, cin, h, w));
            x.iter_mut().for_each(|v| *v = rng.normal());
            let mut d = Array4::<f32>::zeros((n, cout, h, w));
            d.iter_mut().for_each(|v| *v = rng.normal());
            let (_, cache) = conv.forward(&params, &x);
            let mut grads = params.zeros_like();
            let dx = conv.backward(&params, &cache, &d, Some(&mut grads));
            let (hw, kd) = (h * w, cin * k * k);
            let (zs, ds) = (cache.z.as_slice().unwrap(), d.as_slice().unwrap());
            let mut want = vec![0.0f64; 2 * cout * kd];
            let mut scale = vec![0.0f64; 2 * cout * kd];
            let mut col = vec![0.0f32; kd * hw];
            for i in 0..n {
                let xi = &x.as_slice().unwrap()[i * cin * hw..(i + 1) * cin * hw];
                im2col(xi, cin, h, w, k, &mut col, hw);
                for o in 0..cout {
                    for p in 0..hw {
                        let dv = ds[(i * cout + o) * hw + p];
                        let a = zs[(i * 2 * cout + o) * hw + p];
                        let s = zs[(i * 2 * cout + cout + o) * hw + p];
                        let (dzw, dzg) = (dv * s, dv * a * s * (1.0 - s));
                        for (row, dz) in [(o, dzw), (cout + o, dzg)] {
                            for q in 0..kd {
                                let t = dz as f64 * col[q * hw + p] as f64;
                                want[row * kd + q] += t;
                                scale[row * kd + q] += t.abs();
                            }
                        }
                    }
                }
            }
            let tol = (n * hw + 3) as f64 * 2f64.powi(-24);
            let got: Vec<f32> = grads.params[0]
                .data
                .iter()
                .chain(&grads.params[1].data)
                .copied()
                .collect();
            for (j, &g) in got.iter().enumerate() {
                let err = (g as f64 - want[j]).abs();
                assert!(err <= tol * scale[j], "k {k} dW[{j}] {g} vs {}", want[j]);
            }
            for i in 0..n {
                let xi = x.slice(ndarray::s![i..i + 1, .., .., ..]).to_owned();
                let di = d.slice(ndarray::s![i..i + 1, .., .., ..]).to_owned();
                let (_, ci) = conv.forward(&params, &xi);
                let dxi = conv.backward(&params, &ci, &di, None);
                assert!(
                    dxi == dx.slice(ndarray::s![i..i + 1, .., .., ..]),
                    "k {k} dx {i}"
                );
            }
        }
    }
}
