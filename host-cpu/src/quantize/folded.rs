//! The f32 network folded for one restoration sigma, in the int8 graph's shape: HWC images,
//! OHWI filters, the noise embedding and `emb_proj` folded into each conv1's bias (at a fixed
//! sigma they are a per-channel constant), the input `[c_in y, m]` built explicitly. Its
//! forward pass reports every tensor the int8 graph quantizes to an observer, which is how
//! calibration sees the activations (`super::calibrate`); its output `F` equals the
//! unfolded network's (tested against `UNet::forward_inference`).

use std::collections::HashMap;

use ambient_core::int8::blob::BlobConfig;
use ambient_core::int8::conv::oihw_to_ohwi;
use ambient_core::int8::model::{for_each_block, name, BlockId, BlockShape, GN_EPS};
use ambient_core::precond::{c_in, c_noise};
use ndarray::Array2;

use crate::config::UNetConfig;
use crate::params::ParamStore;
use crate::unet::UNet;

/// One gated convolution: OHWI filters, bias (with any folded constant).
#[derive(Debug, Clone)]
pub struct FoldedConv {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub w: Vec<f32>,
    pub g: Vec<f32>,
    pub b: Vec<f32>,
}

/// One GroupNorm's affine parameters.
#[derive(Debug, Clone)]
pub struct FoldedNorm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

/// The folded network: layers by their int8 graph names (`in_conv`, `enc.0.0.conv1`, ...).
#[derive(Debug, Clone)]
pub struct FoldedNet {
    pub config: BlobConfig,
    pub convs: HashMap<String, FoldedConv>,
    pub norms: HashMap<String, FoldedNorm>,
}

/// The blob header's configuration of `cfg` at restoration sigma `sigma`.
pub fn blob_config(cfg: &UNetConfig, sigma: f32) -> Result<BlobConfig, String> {
    if cfg.mult.len() > 4 {
        return Err(format!(
            "{} levels; the int8 graph takes at most 4",
            cfg.mult.len()
        ));
    }
    let mut mult = [0u32; 4];
    for (m, &v) in mult.iter_mut().zip(&cfg.mult) {
        *m = v as u32;
    }
    let c = BlobConfig {
        img_channels: cfg.img_channels as u32,
        img_resolution: cfg.img_resolution as u32,
        ch: cfg.ch as u32,
        blocks: cfg.blocks as u32,
        groups: cfg.groups as u32,
        levels: cfg.mult.len() as u32,
        mult,
        sigma_data: cfg.sigma_data,
        sigma,
    };
    c.validate().map_err(|e| e.to_string())?;
    Ok(c)
}

fn param<'a>(params: &'a ParamStore, n: &str) -> Result<&'a [f32], String> {
    params
        .get(n)
        .map(|p| p.data.as_slice())
        .ok_or_else(|| format!("parameter {n} missing"))
}

fn fold_conv(
    params: &ParamStore,
    spec: &str,
    cin: usize,
    cout: usize,
    k: usize,
) -> Result<FoldedConv, String> {
    let n = cout * cin * k * k;
    let ohwi = |src: &[f32]| -> Result<Vec<f32>, String> {
        let mut dst = vec![0.0; n];
        oihw_to_ohwi(src, cout, cin, k, &mut dst).map_err(|e| format!("{spec}: {e}"))?;
        Ok(dst)
    };
    Ok(FoldedConv {
        cin,
        cout,
        k,
        w: ohwi(param(params, &format!("{spec}.weight"))?)?,
        g: ohwi(param(params, &format!("{spec}.gate"))?)?,
        b: param(params, &format!("{spec}.bias"))?.to_vec(),
    })
}

fn fold_norm(params: &ParamStore, spec: &str) -> Result<FoldedNorm, String> {
    Ok(FoldedNorm {
        gamma: param(params, &format!("{spec}.weight"))?.to_vec(),
        beta: param(params, &format!("{spec}.bias"))?.to_vec(),
    })
}

impl FoldedNet {
    /// Folds `params` (checked against `cfg`'s layout) for restoration at `sigma`.
    pub fn new(cfg: &UNetConfig, params: &ParamStore, sigma: f32) -> Result<FoldedNet, String> {
        if !(sigma.is_finite() && sigma > 0.0) {
            return Err(format!("sigma {sigma} must be positive and finite"));
        }
        let config = blob_config(cfg, sigma)?;
        let net = UNet::new(cfg)?;
        net.check_params(params)?;
        let emb: Array2<f32> = net.embedding(params, &[c_noise(sigma)]);
        let emb = emb.row(0).to_vec();
        let c = cfg.img_channels;
        let mut convs = HashMap::new();
        let mut norms = HashMap::new();
        convs.insert(
            "in_conv".into(),
            fold_conv(params, "in_conv", 2 * c, cfg.ch, 3)?,
        );
        for_each_block(&config, |s: BlockShape| -> Result<(), String> {
            let p = s.id.prefix().to_string();
            let (cin, cout) = (s.cin, s.cout);
            norms.insert(
                format!("{p}.norm1"),
                fold_norm(params, &format!("{p}.norm1"))?,
            );
            norms.insert(
                format!("{p}.norm2"),
                fold_norm(params, &format!("{p}.norm2"))?,
            );
            let mut conv1 = fold_conv(params, &format!("{p}.conv1"), cin, cout, 3)?;
            // h + emb_proj(emb): a constant per channel at this sigma, into the bias.
            let pw = param(params, &format!("{p}.emb_proj.weight"))?;
            let pb = param(params, &format!("{p}.emb_proj.bias"))?;
            for (o, b) in conv1.b.iter_mut().enumerate() {
                let e: f64 = pw[o * emb.len()..(o + 1) * emb.len()]
                    .iter()
                    .zip(&emb)
                    .map(|(&w, &v)| w as f64 * v as f64)
                    .sum::<f64>()
                    + pb[o] as f64;
                *b = (*b as f64 + e) as f32;
            }
            convs.insert(format!("{p}.conv1"), conv1);
            convs.insert(
                format!("{p}.conv2"),
                fold_conv(params, &format!("{p}.conv2"), cout, cout, 3)?,
            );
            if s.has_skip() {
                convs.insert(
                    format!("{p}.skip"),
                    fold_conv(params, &format!("{p}.skip"), cin, cout, 1)?,
                );
            }
            Ok(())
        })?;
        let last = cfg.ch * cfg.mult[0];
        norms.insert("out_norm".into(), fold_norm(params, "out_norm")?);
        convs.insert(
            "out_conv".into(),
            fold_conv(params, "out_conv", last, c, 3)?,
        );
        Ok(FoldedNet {
            config,
            convs,
            norms,
        })
    }

    fn conv(&self, n: &str) -> &FoldedConv {
        &self.convs[n]
    }

    /// `F(F_in, c_noise(sigma))` of one image: `y`, `m` CHW; returns `F` HWC. Calls
    /// `observe(tensor, values)` with every quantized tensor (names in `super::calibrate`).
    pub fn forward(
        &self,
        y: &[f32],
        m: &[f32],
        observe: &mut impl FnMut(&str, &[f32]),
    ) -> Vec<f32> {
        let cfg = &self.config;
        let c = cfg.img_channels as usize;
        let res = cfg.img_resolution as usize;
        let hw = res * res;
        let ci = c_in(cfg.sigma, cfg.sigma_data);
        let mut f_in = vec![0.0f32; hw * 2 * c];
        for p in 0..hw {
            for ch in 0..c {
                // A missing pixel's measurement is never read.
                let observed = m[ch * hw + p] != 0.0;
                f_in[p * 2 * c + ch] = if observed { ci * y[ch * hw + p] } else { 0.0 };
                f_in[p * 2 * c + c + ch] = m[ch * hw + p];
            }
        }
        let mut x = self.gated("in_conv", &f_in, res, observe);
        let mut side = res;
        let mut skips: Vec<Vec<f32>> = vec![Vec::new(); 4];
        for_each_block(cfg, |s| -> Result<(), ()> {
            let p = s.id.prefix().to_string();
            let input = match (s.id, s.concat_first) {
                (BlockId::Dec { level, .. }, Some(first)) => {
                    concat(&x, first, &skips[level], s.cin - first)
                }
                _ => x.clone(),
            };
            x = self.block(&p, &s, &input, observe);
            match s.id {
                BlockId::Enc { level, index } if index + 1 == cfg.blocks as usize => {
                    skips[level] = x.clone();
                    if level + 1 < cfg.levels as usize {
                        x = avg_pool(&x, side, s.cout);
                        side /= 2;
                    }
                }
                BlockId::Dec { level, index } if index + 1 == cfg.blocks as usize && level > 0 => {
                    x = upsample(&x, side, s.cout);
                    side *= 2;
                }
                _ => {}
            }
            Ok(())
        })
        .expect("infallible");
        let cur = self.conv("out_conv").cin;
        let t = self.norm_silu("out_norm", &x, side, cur, observe);
        self.gated("out_conv", &t, side, observe)
    }

    fn block(
        &self,
        p: &str,
        s: &BlockShape,
        x: &[f32],
        observe: &mut impl FnMut(&str, &[f32]),
    ) -> Vec<f32> {
        let side = s.side;
        let t1 = self.norm_silu(&format!("{p}.norm1"), x, side, s.cin, observe);
        let h = self.gated(&format!("{p}.conv1"), &t1, side, observe);
        let t2 = self.norm_silu(&format!("{p}.norm2"), &h, side, s.cout, observe);
        let h2 = self.gated(&format!("{p}.conv2"), &t2, side, observe);
        let skip = if s.has_skip() {
            self.gated(&format!("{p}.skip"), x, side, observe)
        } else {
            x.to_vec()
        };
        let r = std::f32::consts::FRAC_1_SQRT_2;
        let out: Vec<f32> = h2.iter().zip(&skip).map(|(a, b)| (a + b) * r).collect();
        observe(&name(p, "out"), &out);
        out
    }

    /// `GN` then `SiLU` on an HWC map; observes `{n}.gn` and `{n}.silu`.
    fn norm_silu(
        &self,
        n: &str,
        x: &[f32],
        side: usize,
        channels: usize,
        observe: &mut impl FnMut(&str, &[f32]),
    ) -> Vec<f32> {
        let norm = &self.norms[n];
        let groups = self.config.groups as usize;
        let per = channels / groups;
        let pixels = side * side;
        let mut out = vec![0.0f32; x.len()];
        for g in 0..groups {
            let cs = g * per..(g + 1) * per;
            let vals = || (0..pixels).flat_map(|p| cs.clone().map(move |c| p * channels + c));
            let cnt = (pixels * per) as f64;
            let mean = vals().map(|i| x[i] as f64).sum::<f64>() / cnt;
            let var = vals().map(|i| (x[i] as f64 - mean).powi(2)).sum::<f64>() / cnt;
            let rstd = 1.0 / (var + GN_EPS as f64).sqrt();
            for i in vals() {
                let c = i % channels;
                out[i] = ((x[i] as f64 - mean) * rstd * norm.gamma[c] as f64 + norm.beta[c] as f64)
                    as f32;
            }
        }
        observe(&name(n, "gn"), &out);
        for v in out.iter_mut() {
            *v *= 1.0 / (1.0 + (-*v).exp());
        }
        observe(&name(n, "silu"), &out);
        out
    }

    /// `conv(x, W) * sigmoid(conv(x, G)) + b`, same padding; observes `{n}.main`,
    /// `{n}.gate` and `{n}.out`.
    fn gated(
        &self,
        n: &str,
        x: &[f32],
        side: usize,
        observe: &mut impl FnMut(&str, &[f32]),
    ) -> Vec<f32> {
        let conv = self.conv(n);
        let (cin, cout, k) = (conv.cin, conv.cout, conv.k);
        let pad = k / 2;
        let pixels = side * side;
        let mut main = vec![0.0f32; pixels * cout];
        let mut gate = vec![0.0f32; pixels * cout];
        for oy in 0..side {
            for ox in 0..side {
                let o = (oy * side + ox) * cout;
                for ky in 0..k {
                    let iy = oy + ky;
                    if iy < pad || iy - pad >= side {
                        continue;
                    }
                    for kx in 0..k {
                        let ix = ox + kx;
                        if ix < pad || ix - pad >= side {
                            continue;
                        }
                        let xp = &x[((iy - pad) * side + ix - pad) * cin..][..cin];
                        let tap = (ky * k + kx) * cin;
                        for co in 0..cout {
                            let f = co * k * k * cin + tap;
                            let (w, g) = (&conv.w[f..f + cin], &conv.g[f..f + cin]);
                            let mut aw = 0.0f32;
                            let mut ag = 0.0f32;
                            for i in 0..cin {
                                aw += xp[i] * w[i];
                                ag += xp[i] * g[i];
                            }
                            main[o + co] += aw;
                            gate[o + co] += ag;
                        }
                    }
                }
            }
        }
        observe(&name(n, "main"), &main);
        observe(&name(n, "gate"), &gate);
        let out: Vec<f32> = main
            .iter()
            .zip(&gate)
            .enumerate()
            .map(|(i, (&a, &g))| a / (1.0 + (-g).exp()) + conv.b[i % cout])
            .collect();
        observe(&name(n, "out"), &out);
        out
    }
}

/// `[a, b]` along channels of two HWC maps with the same pixels.
fn concat(a: &[f32], ca: usize, b: &[f32], cb: usize) -> Vec<f32> {
    let pixels = a.len() / ca;
    let mut out = Vec::with_capacity(pixels * (ca + cb));
    for p in 0..pixels {
        out.extend_from_slice(&a[p * ca..(p + 1) * ca]);
        out.extend_from_slice(&b[p * cb..(p + 1) * cb]);
    }
    out
}

fn avg_pool(x: &[f32], side: usize, c: usize) -> Vec<f32> {
    let h = side / 2;
    let mut out = vec![0.0f32; h * h * c];
    for y in 0..h {
        for xx in 0..h {
            for ch in 0..c {
                let at = |a: usize, b: usize| x[(a * side + b) * c + ch];
                out[(y * h + xx) * c + ch] = 0.25
                    * (at(2 * y, 2 * xx)
                        + at(2 * y, 2 * xx + 1)
                        + at(2 * y + 1, 2 * xx)
                        + at(2 * y + 1, 2 * xx + 1));
            }
        }
    }
    out
}

fn upsample(x: &[f32], side: usize, c: usize) -> Vec<f32> {
    let s2 = 2 * side;
    let mut out = vec![0.0f32; s2 * s2 * c];
    for y in 0..s2 {
        for xx in 0..s2 {
            let src = ((y / 2) * side + xx / 2) * c;
            out[(y * s2 + xx) * c..][..c].copy_from_slice(&x[src..src + c]);
        }
    }
    out
}
