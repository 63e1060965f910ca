//! `GN`: GroupNorm with `groups` groups, eps 1e-5, affine (per-channel weight and bias). Group
//! statistics (biased variance, as PyTorch) are accumulated in f64. The network always follows
//! a GroupNorm with a SiLU, so both passes also come fused with it (`*_silu`), which saves a
//! pass over the activations each way and the pre-activation's storage (it is recomputed from
//! `xhat`).

use super::silu::sigmoid;
use super::simd;
use super::{accumulate, param_index, recycle, team};
use crate::params::ParamStore;
use ndarray::Array4;
use rayon::prelude::*;

pub const GN_EPS: f64 = 1e-5;

/// A GroupNorm layer and the indices of its `weight` and `bias`.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    pub channels: usize,
    pub groups: usize,
    weight: usize,
    bias: usize,
}

/// What the backward pass needs: the normalised input `xhat` and `1/sqrt(var + eps)` per
/// (sample, group), and whether a SiLU followed.
#[derive(Debug, Clone)]
pub struct GroupNormCache {
    xhat: Array4<f32>,
    rstd: Vec<f32>,
    silu: bool,
}

/// `sum f(x_i)` in f32 over 8 interleaved partial sums, which the compiler can keep in one
/// vector register (a single running sum is a serial dependency it may not reorder).
#[inline(always)]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    acc.iter().sum::<f32>() + rest.iter().map(|&v| f(v)).sum::<f32>()
}

/// `sum x_i y_i` in f32 over 8 interleaved partial sums, as [`lane_sum`].
#[inline(always)]
fn lane_dot(x: &[f32], y: &[f32]) -> f32 {
    assert_eq!(x.len(), y.len(), "lane_dot: lengths");
    let mut acc = [0.0f32; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let rest: f32 = xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a8, b8) in xc.zip(yc) {
        for ((s, &a), &b) in acc.iter_mut().zip(a8).zip(b8) {
            *s += a * b;
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// A group's mean and `1 / sqrt(var + eps)` (`src`: its channels of `hw` values each): two
/// passes, per channel in f32 ([`lane_sum`]), across channels in f64.
#[inline(always)]
fn group_statistics(src: &[f32], hw: usize) -> (f32, f32) {
    let glen = src.len() as f64;
    let mean = src
        .chunks(hw)
        .map(|c| lane_sum(c, |v| v) as f64)
        .sum::<f64>()
        / glen;
    let m = mean as f32;
    let var = src
        .chunks(hw)
        .map(|c| lane_sum(c, |v| (v - m) * (v - m)) as f64)
        .sum::<f64>()
        / glen;
    (m, (1.0 / (var + GN_EPS).sqrt()) as f32)
}

/// What `SiLU(GN(x))` applies to each value of one channel of one sample: the group's mean
/// and `1 / sqrt(var + eps)`, the channel's weight and bias ([`GroupNorm::silu_constants`]).
pub type SiluNormConstants = [f32; 4];

/// `SiLU(GN(x))` of one value `s` given its channel's constants: the operations of
/// [`GroupNorm::forward_silu_inference`], in its order, so the same bits.
#[inline(always)]
pub fn norm_silu(s: f32, k: &SiluNormConstants) -> f32 {
    let [m, r, g, b] = *k;
    let pre = ((s - m) * r) * g + b;
    pre * sigmoid(pre)
}

impl GroupNorm {
    /// The layer `{prefix}.weight/bias` of `layout`; `groups` must divide `channels`.
    pub fn new(
        layout: &[(String, Vec<usize>)],
        prefix: &str,
        channels: usize,
        groups: usize,
    ) -> Result<Self, String> {
        if groups == 0 || channels / groups * groups != channels {
            return Err(format!(
                "{prefix}: {channels} channels not divisible into {groups} groups"
            ));
        }
        Ok(GroupNorm {
            channels,
            groups,
            weight: param_index(layout, &format!("{prefix}.weight"), &[channels])?,
            bias: param_index(layout, &format!("{prefix}.bias"), &[channels])?,
        })
    }

    /// `GN(x)`; also returns what [`GroupNorm::backward`] needs.
    pub fn forward(&self, params: &ParamStore, x: &Array4<f32>) -> (Array4<f32>, GroupNormCache) {
        let (out, cache) = self.run(params, x, true, false);
        (out, cache.expect("kept"))
    }

    /// `SiLU(GN(x))`; also returns what [`GroupNorm::backward_silu`] needs.
    pub fn forward_silu(
        &self,
        params: &ParamStore,
        x: &Array4<f32>,
    ) -> (Array4<f32>, GroupNormCache) {
        let (out, cache) = self.run(params, x, true, true);
        (out, cache.expect("kept"))
    }

    /// `SiLU(GN(x))` alone (inference: nothing kept).
    pub fn forward_silu_inference(&self, params: &ParamStore, x: &Array4<f32>) -> Array4<f32> {
        self.run(params, x, false, true).0
    }

    /// The statistics of [`GroupNorm::forward_silu_inference`] without its pass over the
    /// values: per sample and channel ([N C], sample-major) the constants [`norm_silu`] applies,
    /// for a layer that applies them as it reads `x` (`GatedConv::forward_inference_normed`).
    /// Groups in parallel.
    pub fn silu_constants(&self, params: &ParamStore, x: &Array4<f32>) -> Vec<SiluNormConstants> {
        let (n, c, h, w) = x.dim();
        assert_eq!(c, self.channels, "GroupNorm: channels");
        let x = x.as_standard_layout();
        let xs = x.as_slice().unwrap();
        let gamma = &params.params[self.weight].data;
        let beta = &params.params[self.bias].data;
        let cpg = c / self.groups;
        let mut k = vec![[0.0f32; 4]; n * c];
        let items = k.chunks_mut(cpg).zip(xs.chunks(cpg * h * w)).enumerate();
        team::for_each(items.collect(), |(gi, (kg, src))| {
            let (m, r) = simd::dispatch(
                #[inline(always)]
                || group_statistics(src, h * w),
            );
            let c0 = (gi % self.groups) * cpg;
            for (j, kc) in kg.iter_mut().enumerate() {
                *kc = [m, r, gamma[c0 + j], beta[c0 + j]];
            }
        });
        k
    }

    fn run(
        &self,
        params: &ParamStore,
        x: &Array4<f32>,
        keep: bool,
        silu: bool,
    ) -> (Array4<f32>, Option<GroupNormCache>) {
        let (n, c, h, w) = x.dim();
        assert_eq!(c, self.channels, "GroupNorm: channels");
        let x = x.as_standard_layout();
        let xs = x.as_slice().unwrap();
        let gamma = &params.params[self.weight].data;
        let beta = &params.params[self.bias].data;
        let glen = c / self.groups * h * w;
        let hw = h * w;
        let mut out = recycle::overwritten((n, c, h, w));
        let mut rstd = vec![0.0f32; n * self.groups];
        // One group: statistics, then out (and xhat when kept); returns 1/sqrt(var + eps).
        let group = |gi: usize, o: &mut [f32], mut xh: Option<&mut [f32]>| -> f32 {
            simd::dispatch_wide(
                #[inline(always)]
                || {
                    let src = &xs[gi * glen..(gi + 1) * glen];
                    let (m, r) = group_statistics(src, hw);
                    let c0 = (gi % self.groups) * (c / self.groups);
                    for (j, (oc, sc)) in o.chunks_mut(hw).zip(src.chunks(hw)).enumerate() {
                        let (g, b) = (gamma[c0 + j], beta[c0 + j]);
                        let act = |v: f32| {
                            let pre = v * g + b;
                            if silu {
                                pre * sigmoid(pre)
                            } else {
                                pre
                            }
                        };
                        match xh.as_deref_mut() {
                            Some(xh) => {
                                let xc = &mut xh[j * hw..(j + 1) * hw];
                                for ((xv, ov), &s) in xc.iter_mut().zip(oc.iter_mut()).zip(sc) {
                                    let v = (s - m) * r;
                                    *xv = v;
                                    *ov = act(v);
                                }
                            }
                            None => {
                                for (ov, &s) in oc.iter_mut().zip(sc) {
                                    *ov = act((s - m) * r);
                                }
                            }
                        }
                    }
                    r
                },
            )
        };
        let outs = out.as_slice_mut().unwrap().chunks_mut(glen);
        if keep {
            let mut xhat = Array4::<f32>::zeros((n, c, h, w));
            let xhs = xhat.as_slice_mut().unwrap().chunks_mut(glen);
            let items = outs.zip(xhs).zip(rstd.iter_mut()).enumerate();
            team::for_each(items.collect(), |(gi, ((o, xh), r))| {
                *r = group(gi, o, Some(xh))
            });
            (out, Some(GroupNormCache { xhat, rstd, silu }))
        } else {
            team::for_each(outs.enumerate().collect(), |(gi, o)| {
                group(gi, o, None);
            });
            (out, None)
        }
    }

    /// Backward pass of [`GroupNorm::forward`]: adds dL/dweight and dL/dbias to `grads` (if
    /// given), returns dL/dx: `dx = rstd (g - mean(g) - xhat mean(g xhat))` per group, with
    /// `g = dy * weight`.
    pub fn backward(
        &self,
        params: &ParamStore,
        cache: &GroupNormCache,
        d_out: &Array4<f32>,
        grads: Option<&mut ParamStore>,
    ) -> Array4<f32> {
        assert!(!cache.silu, "GroupNorm::backward of a forward_silu cache");
        self.backward_impl(params, cache, d_out, grads)
    }

    /// Backward pass of [`GroupNorm::forward_silu`]: as [`GroupNorm::backward`], with
    /// `dy = d_out * SiLU'(pre)` and `pre = xhat * weight + bias` recomputed.
    pub fn backward_silu(
        &self,
        params: &ParamStore,
        cache: &GroupNormCache,
        d_out: &Array4<f32>,
        grads: Option<&mut ParamStore>,
    ) -> Array4<f32> {
        assert!(cache.silu, "GroupNorm::backward_silu of a forward cache");
        self.backward_impl(params, cache, d_out, grads)
    }

    fn backward_impl(
        &self,
        params: &ParamStore,
        cache: &GroupNormCache,
        d_out: &Array4<f32>,
        mut grads: Option<&mut ParamStore>,
    ) -> Array4<f32> {
        let (n, c, h, w) = cache.xhat.dim();
        assert_eq!(d_out.dim(), (n, c, h, w), "GroupNorm: d_out shape");
        let d_out = d_out.as_standard_layout();
        let ds = d_out.as_slice().unwrap();
        let xh = cache.xhat.as_slice().unwrap();
        let gamma = &params.params[self.weight].data;
        let beta = &params.params[self.bias].data;
        let silu = cache.silu;
        let hw = h * w;
        let cpg = c / self.groups;
        let glen = cpg * hw;
        let mut dx = Array4::<f32>::zeros((n, c, h, w));
        // Per (sample, channel): sum dy and sum dy xhat, for the parameter gradients.
        let mut sums = vec![(0.0f32, 0.0f32); n * c];
        dx.as_slice_mut()
            .unwrap()
            .par_chunks_mut(glen)
            .zip(sums.par_chunks_mut(cpg))
            .enumerate()
            .for_each(|(gi, (dxg, sums_g))| {
                simd::dispatch(
                    #[inline(always)]
                    || {
                        let c0 = (gi % self.groups) * cpg;
                        let dy = &ds[gi * glen..(gi + 1) * glen];
                        let xg = &xh[gi * glen..(gi + 1) * glen];
                        let (mut sg, mut sgx) = (0.0f64, 0.0f64);
                        // First pass: dL/dGN(x) into dx, and its sums per channel.
                        for (j, ((oc, dc), xc)) in dxg
                            .chunks_mut(hw)
                            .zip(dy.chunks(hw))
                            .zip(xg.chunks(hw))
                            .enumerate()
                        {
                            let (gm, bt) = (gamma[c0 + j], beta[c0 + j]);
                            if silu {
                                for ((o, &d), &x) in oc.iter_mut().zip(dc).zip(xc) {
                                    let pre = x * gm + bt;
                                    let s = sigmoid(pre);
                                    *o = d * s * (1.0 + pre * (1.0 - s));
                                }
                            } else {
                                oc.copy_from_slice(dc);
                            }
                            // Per channel in f32 (hw terms, in separate passes so that the loop
                            // above has no running sum and vectorises), across channels in f64.
                            let (a, b) = (lane_sum(oc, |v| v), lane_dot(oc, xc));
                            sums_g[j] = (a, b);
                            sg += (a * gamma[c0 + j]) as f64;
                            sgx += (b * gamma[c0 + j]) as f64;
                        }
                        let (mg, mgx) = ((sg / glen as f64) as f32, (sgx / glen as f64) as f32);
                        let rs = cache.rstd[gi];
                        for (j, (oc, xc)) in dxg.chunks_mut(hw).zip(xg.chunks(hw)).enumerate() {
                            let gm = gamma[c0 + j];
                            for (o, &x) in oc.iter_mut().zip(xc) {
                                *o = rs * (*o * gm - mg - x * mgx);
                            }
                        }
                    },
                )
            });
        if grads.is_some() {
            let mut dg = vec![0.0f64; c];
            let mut db = vec![0.0f64; c];
            for (k, &(a, b)) in sums.iter().enumerate() {
                db[k % c] += a as f64;
                dg[k % c] += b as f64;
            }
            let dg: Vec<f32> = dg.iter().map(|&v| v as f32).collect();
            let db: Vec<f32> = db.iter().map(|&v| v as f32).collect();
            accumulate(&mut grads, self.weight, &dg);
            accumulate(&mut grads, self.bias, &db);
        }
        dx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::simd;
    use ambient_core::AmbientRng;

    /// The SIMD path of the fused GroupNorm + SiLU passes gives the portable path's bits
    /// (same operations, only wider registers), on channels of 37 values (not a multiple of
    /// any vector width) and of 64. The values themselves are checked by the gradient and
    /// golden tests.
    #[test]
    fn simd_path_is_the_portable_bits() {
        let mut rng = AmbientRng::new(4);
        for (c, h, w) in [(6, 1, 37), (4, 8, 8)] {
            let layout = vec![
                ("n.weight".to_string(), vec![c]),
                ("n.bias".to_string(), vec![c]),
            ];
            let mut params = ParamStore::zeros(&layout);
            for p in params.params.iter_mut() {
                p.data
                    .iter_mut()
                    .for_each(|v| *v = 1.0 + 0.5 * rng.normal());
            }
            let gn = GroupNorm::new(&layout, "n", c, 2).unwrap();
            let mut x = Array4::<f32>::zeros((2, c, h, w));
            x.iter_mut().for_each(|v| *v = 2.0 * rng.normal() + 0.5);
            let mut d = Array4::<f32>::zeros((2, c, h, w));
            d.iter_mut().for_each(|v| *v = rng.normal());
            let run = || {
                let (y, cache) = gn.forward_silu(&params, &x);
                let mut grads = params.zeros_like();
                let dx = gn.backward_silu(&params, &cache, &d, Some(&mut grads));
                (y, gn.forward_silu_inference(&params, &x), dx, grads)
            };
            let fast = run();
            let portable = simd::portable(run);
            assert!(fast == portable, "{c} x {h} x {w}");
            assert!(fast.0 == fast.1, "inference equals the kept forward pass");
        }
    }
}
