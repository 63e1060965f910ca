//! AmbientUNet v1 (docs/ambient-unet-spec.md, "Network F") over the device primitives of
//! [`Ops`]: the layer plan (parameter offsets in one flat buffer in `spec_layout` order, so
//! the same weight files load), the forward pass keeping a tape, and the backward pass to
//! every parameter and to `F_in`. Convolutions are im2col + SGEMM with `[W; G]` as one
//! [2 cout, cin k k] matrix (the spec layout stores a conv's weight and gate back to back).
//! The wiring follows host-cpu's `unet.rs` layer for layer.

use crate::ops::{Gemm, Ops, OpsError};
use ambient_cpu::config::UNetConfig;
use ambient_cpu::params::spec_layout;

/// A gated convolution: the stacked `[W; G]` at `w_off`, the bias at `bias_off`.
#[derive(Debug, Clone, Copy)]
pub struct ConvPlan {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub w_off: usize,
    pub bias_off: usize,
}

/// GroupNorm: gamma at `g_off`, beta right after it.
#[derive(Debug, Clone, Copy)]
pub struct NormPlan {
    pub c: usize,
    pub g_off: usize,
}

/// Linear [fout, fin]: weight at `w_off`, bias right after it.
#[derive(Debug, Clone, Copy)]
pub struct LinearPlan {
    pub fin: usize,
    pub fout: usize,
    pub w_off: usize,
}

/// One ResBlock.
#[derive(Debug, Clone, Copy)]
pub struct BlockPlan {
    pub cin: usize,
    pub cout: usize,
    norm1: NormPlan,
    conv1: ConvPlan,
    emb_proj: LinearPlan,
    norm2: NormPlan,
    conv2: ConvPlan,
    skip: Option<ConvPlan>,
}

/// The whole network's plan for one configuration.
#[derive(Debug, Clone)]
pub struct NetPlan {
    pub cfg: UNetConfig,
    /// (name, shape, offset) of every parameter, in `spec_layout` order.
    pub layout: Vec<(String, Vec<usize>, usize)>,
    /// Total number of parameters.
    pub total: usize,
    fc1: LinearPlan,
    fc2: LinearPlan,
    in_conv: ConvPlan,
    enc: Vec<Vec<BlockPlan>>,
    mid: BlockPlan,
    dec: Vec<Vec<BlockPlan>>,
    out_norm: NormPlan,
    out_conv: ConvPlan,
}

fn offset_of(
    layout: &[(String, Vec<usize>, usize)],
    name: &str,
    shape: &[usize],
) -> Result<usize, String> {
    let (_, s, off) = layout
        .iter()
        .find(|(n, _, _)| n == name)
        .ok_or_else(|| format!("parameter {name} missing"))?;
    if s != shape {
        return Err(format!(
            "parameter {name} has shape {s:?}, expected {shape:?}"
        ));
    }
    Ok(*off)
}

impl NetPlan {
    /// The plan of `cfg` (checked with `cfg.validate()`).
    pub fn new(cfg: &UNetConfig) -> Result<NetPlan, String> {
        cfg.validate()?;
        let mut layout = Vec::new();
        let mut total = 0;
        for (name, shape) in spec_layout(cfg) {
            let len: usize = shape.iter().product();
            layout.push((name, shape, total));
            total += len;
        }
        let l = &layout;
        let conv = |p: &str, cin: usize, cout: usize, k: usize| -> Result<ConvPlan, String> {
            let w = [cout, cin, k, k];
            let w_off = offset_of(l, &format!("{p}.weight"), &w)?;
            let g_off = offset_of(l, &format!("{p}.gate"), &w)?;
            if g_off != w_off + cout * cin * k * k {
                return Err(format!("{p}.gate does not follow {p}.weight"));
            }
            Ok(ConvPlan {
                cin,
                cout,
                k,
                w_off,
                bias_off: offset_of(l, &format!("{p}.bias"), &[cout])?,
            })
        };
        let norm = |p: &str, c: usize| -> Result<NormPlan, String> {
            if !c.is_multiple_of(cfg.groups) {
                return Err(format!(
                    "{p}: {c} channels not divisible into {} groups",
                    cfg.groups
                ));
            }
            let g_off = offset_of(l, &format!("{p}.weight"), &[c])?;
            if offset_of(l, &format!("{p}.bias"), &[c])? != g_off + c {
                return Err(format!("{p}.bias does not follow {p}.weight"));
            }
            Ok(NormPlan { c, g_off })
        };
        let linear = |p: &str, fin: usize, fout: usize| -> Result<LinearPlan, String> {
            let w_off = offset_of(l, &format!("{p}.weight"), &[fout, fin])?;
            if offset_of(l, &format!("{p}.bias"), &[fout])? != w_off + fin * fout {
                return Err(format!("{p}.bias does not follow {p}.weight"));
            }
            Ok(LinearPlan { fin, fout, w_off })
        };
        let e = 4 * cfg.ch;
        let block = |p: &str, cin: usize, cout: usize| -> Result<BlockPlan, String> {
            Ok(BlockPlan {
                cin,
                cout,
                norm1: norm(&format!("{p}.norm1"), cin)?,
                conv1: conv(&format!("{p}.conv1"), cin, cout, 3)?,
                emb_proj: linear(&format!("{p}.emb_proj"), e, cout)?,
                norm2: norm(&format!("{p}.norm2"), cout)?,
                conv2: conv(&format!("{p}.conv2"), cout, cout, 3)?,
                skip: if cin != cout {
                    Some(conv(&format!("{p}.skip"), cin, cout, 1)?)
                } else {
                    None
                },
            })
        };
        let levels = cfg.mult.len();
        let mut cur = cfg.ch;
        let mut enc = Vec::new();
        let mut skips = Vec::new();
        for lv in 0..levels {
            let cl = cfg.level_channels(lv);
            let mut blocks = Vec::new();
            for b in 0..cfg.blocks {
                blocks.push(block(&format!("enc.{lv}.{b}"), cur, cl)?);
                cur = cl;
            }
            enc.push(blocks);
            skips.push(cur);
        }
        let mid = block("mid", cur, cur)?;
        let mut dec = vec![Vec::new(); levels];
        for lv in (0..levels).rev() {
            let cl = cfg.level_channels(lv);
            for b in 0..cfg.blocks {
                let cin = if b == 0 { cur + skips[lv] } else { cur };
                dec[lv].push(block(&format!("dec.{lv}.{b}"), cin, cl)?);
                cur = cl;
            }
        }
        Ok(NetPlan {
            fc1: linear("emb.fc1", cfg.ch, e)?,
            fc2: linear("emb.fc2", e, e)?,
            in_conv: conv("in_conv", 2 * cfg.img_channels, cfg.ch, 3)?,
            enc,
            mid,
            dec,
            out_norm: norm("out_norm", cur)?,
            out_conv: conv("out_conv", cur, cfg.img_channels, 3)?,
            cfg: cfg.clone(),
            layout,
            total,
        })
    }

    /// Checks an input batch: n in 1..=MAX_BATCH, spatial size a positive multiple of
    /// 2^(L-1), one finite c_noise per sample.
    pub fn check_input(
        &self,
        n: usize,
        h: usize,
        w: usize,
        c_noise: &[f32],
    ) -> Result<(), OpsError> {
        let div = 1usize << (self.cfg.mult.len() - 1);
        let bad = |s: String| Err(OpsError::Invalid(s));
        if n == 0 || n > ambient_core::precond::MAX_BATCH {
            return bad(format!(
                "batch {n} not in 1..={}",
                ambient_core::precond::MAX_BATCH
            ));
        }
        if h == 0 || w == 0 || !h.is_multiple_of(div) || !w.is_multiple_of(div) {
            return bad(format!(
                "image size {h}x{w} is not a positive multiple of {div}"
            ));
        }
        if c_noise.len() != n || c_noise.iter().any(|v| !v.is_finite()) {
            return bad(format!(
                "need {n} finite noise levels, got {}",
                c_noise.len()
            ));
        }
        Ok(())
    }
}

/// An activation [n, c, h, w] on the device.
pub struct Act<B> {
    pub buf: B,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl<B> Act<B> {
    fn hw(&self) -> usize {
        self.h * self.w
    }
}

struct ConvTape<B> {
    x: Act<B>,
    z: B,
}

struct NormTape<B> {
    xhat: B,
    rstd: B,
}

struct BlockTape<B> {
    n1: NormTape<B>,
    c1: ConvTape<B>,
    n2: NormTape<B>,
    c2: ConvTape<B>,
    skip: Option<ConvTape<B>>,
}

struct EmbTape<B> {
    pos: B,
    h1: B,
    a1: B,
    h2: B,
}

/// A layer's output and its tape.
type WithTape<B, T> = Result<(Act<B>, T), OpsError>;

/// What the backward pass needs from a forward pass.
pub struct Tape<B> {
    n: usize,
    h: usize,
    w: usize,
    emb: B,
    emb_tape: EmbTape<B>,
    in_conv: ConvTape<B>,
    enc: Vec<Vec<BlockTape<B>>>,
    mid: BlockTape<B>,
    dec: Vec<Vec<BlockTape<B>>>,
    cat_channels: Vec<usize>,
    out_norm: NormTape<B>,
    out_conv: ConvTape<B>,
}

/// The network's passes over the primitives `O`.
pub struct Net<'a, O: Ops> {
    pub ops: &'a O,
    pub plan: &'a NetPlan,
}

const RSQRT2: f32 = std::f32::consts::FRAC_1_SQRT_2;

impl<'a, O: Ops> Net<'a, O> {
    pub fn new(ops: &'a O, plan: &'a NetPlan) -> Self {
        Net { ops, plan }
    }

    /// `F = F(F_in, c_noise)`: `f_in` [n, 2C, h, w], one c_noise per sample; `params` the flat
    /// parameter buffer. Returns F [n, C, h, w] and the tape.
    pub fn forward(
        &self,
        params: &O::Buf,
        f_in: O::Buf,
        n: usize,
        h: usize,
        w: usize,
        c_noise: &[f32],
    ) -> Result<(O::Buf, Tape<O::Buf>), OpsError> {
        let p = self.plan;
        p.check_input(n, h, w, c_noise)?;
        if self.ops.len(params) != p.total {
            return Err(OpsError::Invalid(format!(
                "{} parameters, the network has {}",
                self.ops.len(params),
                p.total
            )));
        }
        if self.ops.len(&f_in) != n * 2 * p.cfg.img_channels * h * w {
            return Err(OpsError::Invalid(
                "F_in length does not match its shape".into(),
            ));
        }
        let (emb, emb_tape) = self.embedding(params, c_noise)?;
        let x = Act {
            buf: f_in,
            c: 2 * p.cfg.img_channels,
            h,
            w,
        };
        let (mut x, in_conv) = self.conv_forward(&p.in_conv, params, x, n)?;
        let levels = p.cfg.mult.len();
        let mut enc = Vec::new();
        let mut skips = Vec::new();
        for l in 0..levels {
            let mut tapes = Vec::new();
            for b in &p.enc[l] {
                let (y, t) = self.block_forward(b, params, x, &emb, n)?;
                x = y;
                tapes.push(t);
            }
            enc.push(tapes);
            if l < levels - 1 {
                let mut pooled = self.ops.scratch(n * x.c * x.hw() / 4)?;
                self.ops.avg_pool(&x.buf, n * x.c, x.h, x.w, &mut pooled)?;
                let next = Act {
                    buf: pooled,
                    c: x.c,
                    h: x.h / 2,
                    w: x.w / 2,
                };
                skips.push(x);
                x = next;
            } else {
                let mut copy = self.ops.zeros(self.ops.len(&x.buf))?;
                self.ops.axpby(&mut copy, 1.0, &x.buf, 0.0)?;
                skips.push(Act {
                    buf: copy,
                    c: x.c,
                    h: x.h,
                    w: x.w,
                });
            }
        }
        let (y, mid) = self.block_forward(&p.mid, params, x, &emb, n)?;
        x = y;
        let mut dec: Vec<Vec<BlockTape<O::Buf>>> = (0..levels).map(|_| Vec::new()).collect();
        let mut cat_channels = vec![0; levels];
        for l in (0..levels).rev() {
            cat_channels[l] = x.c;
            let s = skips.pop().expect("one skip per level");
            x = self.concat(&x, &s, n)?;
            for b in &p.dec[l] {
                let (y, t) = self.block_forward(b, params, x, &emb, n)?;
                x = y;
                dec[l].push(t);
            }
            if l > 0 {
                let mut up = self.ops.scratch(4 * n * x.c * x.hw())?;
                self.ops.upsample(&x.buf, n * x.c, x.h, x.w, &mut up)?;
                x = Act {
                    buf: up,
                    c: x.c,
                    h: 2 * x.h,
                    w: 2 * x.w,
                };
            }
        }
        let (a, out_norm) = self.norm_forward(&p.out_norm, params, &x, n)?;
        let (f, out_conv) = self.conv_forward(&p.out_conv, params, a, n)?;
        let tape = Tape {
            n,
            h,
            w,
            emb,
            emb_tape,
            in_conv,
            enc,
            mid,
            dec,
            cat_channels,
            out_norm,
            out_conv,
        };
        Ok((f.buf, tape))
    }

    /// Adds dL/dparams to `grads` (flat, like the parameters) and returns dL/dF_in, given
    /// dL/dF.
    pub fn backward(
        &self,
        params: &O::Buf,
        tape: Tape<O::Buf>,
        d_f: O::Buf,
        grads: &mut O::Buf,
    ) -> Result<O::Buf, OpsError> {
        let p = self.plan;
        let n = tape.n;
        let levels = p.cfg.mult.len();
        let size = |l: usize| (tape.h >> l, tape.w >> l);
        let d_a = self.conv_backward(&p.out_conv, params, tape.out_conv, &d_f, n, grads)?;
        let mut d = self.norm_backward(&p.out_norm, params, &tape.out_norm, &d_a, n, grads)?;
        let mut d_emb = self.ops.zeros(n * 4 * p.cfg.ch)?;
        let mut d_skips = Vec::new();
        let mut dec = tape.dec;
        #[allow(clippy::needless_range_loop)] // l indexes the plan, the tapes and the sizes
        for l in 0..levels {
            let (h, w) = size(l);
            if l > 0 {
                // d is at level l-1's size; the block before the upsampling had cout channels.
                let c = p.dec[l].last().expect("blocks >= 1").cout;
                let mut small = self.ops.scratch(n * c * h * w)?;
                self.ops.upsample_backward(&d, n * c, h, w, &mut small)?;
                d = small;
            }
            let blocks = std::mem::take(&mut dec[l]);
            for (b, t) in p.dec[l].iter().zip(blocks).rev() {
                d =
                    self.block_backward(b, params, t, &d, n, h * w, &tape.emb, &mut d_emb, grads)?;
            }
            let cx = tape.cat_channels[l];
            let ctot = p.dec[l][0].cin;
            let (dx, ds) = self.split(&d, n, cx, ctot - cx, h * w)?;
            d = dx;
            d_skips.push(ds);
        }
        let (h, w) = size(levels - 1);
        let mut dh = h * w;
        d = self.block_backward(
            &p.mid, params, tape.mid, &d, n, dh, &tape.emb, &mut d_emb, grads,
        )?;
        let mut enc = tape.enc;
        for l in (0..levels).rev() {
            let c = p.enc[l].last().expect("blocks >= 1").cout;
            if l < levels - 1 {
                let (h, w) = size(l);
                let mut big = self.ops.scratch(n * c * h * w)?;
                self.ops.avg_pool_backward(&d, n * c, h, w, &mut big)?;
                d = big;
                dh = h * w;
            }
            let ds = d_skips.pop().expect("every level has a skip");
            self.ops.axpby(&mut d, 1.0, &ds, 1.0)?;
            let blocks = std::mem::take(&mut enc[l]);
            for (b, t) in p.enc[l].iter().zip(blocks).rev() {
                d = self.block_backward(b, params, t, &d, n, dh, &tape.emb, &mut d_emb, grads)?;
            }
        }
        let d_in = self.conv_backward(&p.in_conv, params, tape.in_conv, &d, n, grads)?;
        self.embedding_backward(params, tape.emb_tape, &d_emb, n, grads)?;
        Ok(d_in)
    }

    /// `emb = SiLU(fc2(SiLU(fc1(pos))))`, [n, 4ch]; the sinusoidal features are host-cpu's,
    /// computed on the host (n x ch values).
    fn embedding(
        &self,
        params: &O::Buf,
        c_noise: &[f32],
    ) -> Result<(O::Buf, EmbTape<O::Buf>), OpsError> {
        let (p, o) = (self.plan, self.ops);
        let n = c_noise.len();
        let pos_host = ambient_cpu::nn::embedding::positional(c_noise, p.cfg.ch);
        let pos = o.upload(pos_host.as_slice().expect("standard layout"))?;
        let h1 = self.linear(&p.fc1, params, &pos, n)?;
        let mut a1 = o.scratch(o.len(&h1))?;
        o.silu(&h1, &mut a1)?;
        let h2 = self.linear(&p.fc2, params, &a1, n)?;
        let mut emb = o.scratch(o.len(&h2))?;
        o.silu(&h2, &mut emb)?;
        Ok((emb, EmbTape { pos, h1, a1, h2 }))
    }

    fn embedding_backward(
        &self,
        params: &O::Buf,
        t: EmbTape<O::Buf>,
        d_emb: &O::Buf,
        n: usize,
        grads: &mut O::Buf,
    ) -> Result<(), OpsError> {
        let (p, o) = (self.plan, self.ops);
        let mut d_h2 = o.scratch(o.len(d_emb))?;
        o.silu_backward(&t.h2, d_emb, &mut d_h2)?;
        let d_a1 = self.linear_backward(&p.fc2, params, &t.a1, &d_h2, n, grads, true)?;
        let mut d_h1 = o.scratch(o.len(&d_a1))?;
        o.silu_backward(&t.h1, &d_a1, &mut d_h1)?;
        self.linear_backward(&p.fc1, params, &t.pos, &d_h1, n, grads, false)?;
        Ok(())
    }

    /// `x W^T + b` on [n, fin] rows.
    fn linear(
        &self,
        l: &LinearPlan,
        params: &O::Buf,
        x: &O::Buf,
        n: usize,
    ) -> Result<O::Buf, OpsError> {
        let mut y = self.ops.scratch(n * l.fout)?;
        let g = Gemm {
            b_off: l.w_off,
            ..Gemm::new(n, l.fout, l.fin, false, true)
        };
        self.ops.gemm(&g, x, params, &mut y)?;
        self.ops
            .add_row_bias(&mut y, n, l.fout, params, l.w_off + l.fin * l.fout)?;
        Ok(y)
    }

    /// Adds dW = dy^T x and db = sum dy to `grads`; returns dx = dy W when `want_dx`.
    #[allow(clippy::too_many_arguments)]
    fn linear_backward(
        &self,
        l: &LinearPlan,
        params: &O::Buf,
        x: &O::Buf,
        dy: &O::Buf,
        n: usize,
        grads: &mut O::Buf,
        want_dx: bool,
    ) -> Result<O::Buf, OpsError> {
        let o = self.ops;
        let gw = Gemm {
            c_off: l.w_off,
            beta: 1.0,
            ..Gemm::new(l.fout, l.fin, n, true, false)
        };
        o.gemm(&gw, dy, x, grads)?;
        o.add_column_sums(dy, n, l.fout, grads, l.w_off + l.fin * l.fout)?;
        if !want_dx {
            return o.zeros(0);
        }
        let mut dx = o.scratch(n * l.fin)?;
        let gx = Gemm {
            b_off: l.w_off,
            ..Gemm::new(n, l.fin, l.fout, false, false)
        };
        o.gemm(&gx, dy, params, &mut dx)?;
        Ok(dx)
    }

    /// `SiLU(GN(x))` and its tape.
    fn norm_forward(
        &self,
        nm: &NormPlan,
        params: &O::Buf,
        x: &Act<O::Buf>,
        n: usize,
    ) -> WithTape<O::Buf, NormTape<O::Buf>> {
        let o = self.ops;
        let g = self.plan.cfg.groups;
        let len = n * x.c * x.hw();
        let (mut out, mut xhat, mut rstd) = (o.scratch(len)?, o.scratch(len)?, o.scratch(n * g)?);
        o.group_norm_forward(
            &x.buf,
            n,
            x.c,
            x.hw(),
            g,
            params,
            nm.g_off,
            nm.g_off + nm.c,
            true,
            &mut out,
            &mut xhat,
            &mut rstd,
        )?;
        Ok((
            Act {
                buf: out,
                c: x.c,
                h: x.h,
                w: x.w,
            },
            NormTape { xhat, rstd },
        ))
    }

    fn norm_backward(
        &self,
        nm: &NormPlan,
        params: &O::Buf,
        t: &NormTape<O::Buf>,
        d: &O::Buf,
        n: usize,
        grads: &mut O::Buf,
    ) -> Result<O::Buf, OpsError> {
        let o = self.ops;
        let g = self.plan.cfg.groups;
        let len = o.len(d);
        let hw = len / (n * nm.c);
        let (mut dx, mut sums) = (o.scratch(len)?, o.scratch(2 * n * nm.c)?);
        o.group_norm_backward(
            d,
            &t.xhat,
            &t.rstd,
            n,
            nm.c,
            hw,
            g,
            params,
            nm.g_off,
            nm.g_off + nm.c,
            true,
            &mut dx,
            &mut sums,
        )?;
        o.add_column_sums(&sums, n, 2 * nm.c, grads, nm.g_off)?;
        Ok(dx)
    }

    /// `conv(x, W) * sigmoid(conv(x, G)) + b`; the tape keeps x and `[zw; sigmoid(zg)]`.
    fn conv_forward(
        &self,
        cv: &ConvPlan,
        params: &O::Buf,
        x: Act<O::Buf>,
        n: usize,
    ) -> WithTape<O::Buf, ConvTape<O::Buf>> {
        let o = self.ops;
        let hw = x.hw();
        let kd = cv.cin * cv.k * cv.k;
        let mut z = o.scratch(n * 2 * cv.cout * hw)?;
        let g = Gemm {
            batch: n,
            a_off: cv.w_off,
            b_stride: kd * hw,
            c_stride: 2 * cv.cout * hw,
            ..Gemm::new(2 * cv.cout, hw, kd, false, false)
        };
        if cv.k == 1 {
            o.gemm(&g, params, &x.buf, &mut z)?;
        } else {
            let mut col = o.scratch(n * kd * hw)?;
            o.im2col(&x.buf, n, cv.cin, x.h, x.w, cv.k, &mut col)?;
            o.gemm(&g, params, &col, &mut z)?;
        }
        let mut out = o.scratch(n * cv.cout * hw)?;
        o.gated_forward(&mut z, n, cv.cout, hw, params, cv.bias_off, &mut out)?;
        let (h, w) = (x.h, x.w);
        Ok((
            Act {
                buf: out,
                c: cv.cout,
                h,
                w,
            },
            ConvTape { x, z },
        ))
    }

    /// Adds dW, dG, db to `grads`; returns dx.
    fn conv_backward(
        &self,
        cv: &ConvPlan,
        params: &O::Buf,
        t: ConvTape<O::Buf>,
        d_out: &O::Buf,
        n: usize,
        grads: &mut O::Buf,
    ) -> Result<O::Buf, OpsError> {
        let o = self.ops;
        let (hw, cout) = (t.x.hw(), cv.cout);
        let kd = cv.cin * cv.k * cv.k;
        let mut dz = o.scratch(n * 2 * cout * hw)?;
        o.gated_backward(d_out, &t.z, n, cout, hw, &mut dz)?;
        drop(t.z);
        let mut db = o.scratch(n * cout)?;
        o.sum_planes(d_out, n * cout, hw, &mut db)?;
        o.add_column_sums(&db, n, cout, grads, cv.bias_off)?;
        // dWst += sum_i dz_i col_i^T: [2cout, hw] x [hw, kd].
        let gw = Gemm {
            batch: n,
            a_stride: 2 * cout * hw,
            b_stride: kd * hw,
            c_off: cv.w_off,
            beta: 1.0,
            sum_batch: true,
            ..Gemm::new(2 * cout, kd, hw, false, true)
        };
        // dcol_i = Wst^T dz_i: [kd, 2cout] x [2cout, hw].
        let gx = Gemm {
            batch: n,
            a_off: cv.w_off,
            b_stride: 2 * cout * hw,
            c_stride: kd * hw,
            ..Gemm::new(kd, hw, 2 * cout, true, false)
        };
        let mut dcol = o.scratch(n * kd * hw)?;
        o.gemm(&gx, params, &dz, &mut dcol)?;
        if cv.k == 1 {
            o.gemm(&gw, &dz, &t.x.buf, grads)?;
            return Ok(dcol);
        }
        let mut col = o.scratch(n * kd * hw)?;
        o.im2col(&t.x.buf, n, cv.cin, t.x.h, t.x.w, cv.k, &mut col)?;
        o.gemm(&gw, &dz, &col, grads)?;
        drop(col);
        let mut dx = o.scratch(n * cv.cin * hw)?;
        o.col2im(&dcol, n, cv.cin, t.x.h, t.x.w, cv.k, &mut dx)?;
        Ok(dx)
    }

    /// One ResBlock, taking its input by value (kept on the tape where needed).
    fn block_forward(
        &self,
        b: &BlockPlan,
        params: &O::Buf,
        x: Act<O::Buf>,
        emb: &O::Buf,
        n: usize,
    ) -> WithTape<O::Buf, BlockTape<O::Buf>> {
        let o = self.ops;
        let (a1, n1) = self.norm_forward(&b.norm1, params, &x, n)?;
        let (mut h, c1) = self.conv_forward(&b.conv1, params, a1, n)?;
        let e = self.linear(&b.emb_proj, params, emb, n)?;
        let hw = h.hw();
        o.add_per_plane(&mut h.buf, n * b.cout, hw, &e)?;
        let (a2, n2) = self.norm_forward(&b.norm2, params, &h, n)?;
        drop(h);
        let (mut out, c2) = self.conv_forward(&b.conv2, params, a2, n)?;
        let skip = match &b.skip {
            Some(cv) => {
                let (s, st) = self.conv_forward(cv, params, x, n)?;
                o.axpby(&mut out.buf, RSQRT2, &s.buf, RSQRT2)?;
                Some(st)
            }
            None => {
                o.axpby(&mut out.buf, RSQRT2, &x.buf, RSQRT2)?;
                None
            }
        };
        Ok((
            out,
            BlockTape {
                n1,
                c1,
                n2,
                c2,
                skip,
            },
        ))
    }

    /// Backward of one ResBlock: adds its parameter gradients and dL/demb (into `d_emb`);
    /// returns dL/dx. `hw` is the block's spatial size.
    #[allow(clippy::too_many_arguments)]
    fn block_backward(
        &self,
        b: &BlockPlan,
        params: &O::Buf,
        t: BlockTape<O::Buf>,
        d_out: &O::Buf,
        n: usize,
        hw: usize,
        emb: &O::Buf,
        d_emb: &mut O::Buf,
        grads: &mut O::Buf,
    ) -> Result<O::Buf, OpsError> {
        let o = self.ops;
        let mut d = o.zeros(o.len(d_out))?;
        o.axpby(&mut d, RSQRT2, d_out, 0.0)?;
        let d_a2 = self.conv_backward(&b.conv2, params, t.c2, &d, n, grads)?;
        let d_h = self.norm_backward(&b.norm2, params, &t.n2, &d_a2, n, grads)?;
        drop(d_a2);
        let mut d_e = o.scratch(n * b.cout)?;
        o.sum_planes(&d_h, n * b.cout, hw, &mut d_e)?;
        let ep = &b.emb_proj;
        let gw = Gemm {
            c_off: ep.w_off,
            beta: 1.0,
            ..Gemm::new(ep.fout, ep.fin, n, true, false)
        };
        o.gemm(&gw, &d_e, emb, grads)?;
        o.add_column_sums(&d_e, n, ep.fout, grads, ep.w_off + ep.fin * ep.fout)?;
        let gx = Gemm {
            b_off: ep.w_off,
            beta: 1.0,
            ..Gemm::new(n, ep.fin, ep.fout, false, false)
        };
        o.gemm(&gx, &d_e, params, d_emb)?;
        let d_a1 = self.conv_backward(&b.conv1, params, t.c1, &d_h, n, grads)?;
        drop(d_h);
        let mut dx = self.norm_backward(&b.norm1, params, &t.n1, &d_a1, n, grads)?;
        drop(d_a1);
        match (&b.skip, t.skip) {
            (Some(cv), Some(st)) => {
                let ds = self.conv_backward(cv, params, st, &d, n, grads)?;
                o.axpby(&mut dx, 1.0, &ds, 1.0)?;
            }
            _ => o.axpby(&mut dx, 1.0, &d, 1.0)?,
        }
        Ok(dx)
    }

    /// `[a, b]` along channels.
    fn concat(&self, a: &Act<O::Buf>, b: &Act<O::Buf>, n: usize) -> Result<Act<O::Buf>, OpsError> {
        let o = self.ops;
        let hw = a.hw();
        let c = a.c + b.c;
        let mut out = o.scratch(n * c * hw)?;
        o.copy_rows(n, a.c * hw, &a.buf, 0, a.c * hw, &mut out, 0, c * hw)?;
        o.copy_rows(n, b.c * hw, &b.buf, 0, b.c * hw, &mut out, a.c * hw, c * hw)?;
        Ok(Act {
            buf: out,
            c,
            h: a.h,
            w: a.w,
        })
    }

    /// The two parts of a gradient of `[a, b]` (`ca` and `cb` channels of `hw` pixels).
    fn split(
        &self,
        d: &O::Buf,
        n: usize,
        ca: usize,
        cb: usize,
        hw: usize,
    ) -> Result<(O::Buf, O::Buf), OpsError> {
        let o = self.ops;
        let c = ca + cb;
        let (mut da, mut db) = (o.scratch(n * ca * hw)?, o.scratch(n * cb * hw)?);
        o.copy_rows(n, ca * hw, d, 0, c * hw, &mut da, 0, ca * hw)?;
        o.copy_rows(n, cb * hw, d, ca * hw, c * hw, &mut db, 0, cb * hw)?;
        Ok((da, db))
    }
}
