//! `RefOps`: the [`Ops`] primitives as plain, serial Rust loops on host `Vec<f32>`, written to
//! say exactly what each CUDA kernel computes (the same formulas, the same f32 roundings
//! where the kernel fixes them: SGEMM's fused multiply-adds in k order, the element-wise
//! `_rn` arithmetic). Reductions that the kernels split across threads are summed here in
//! index order, so those agree to rounding, not bit for bit. Used to test the network without
//! a GPU and as the reference of every kernel on one.

use crate::ops::{AdamStep, Gemm, Ops, OpsError, SampleCoefs};

/// The reference implementation (stateless).
#[derive(Debug, Default, Clone, Copy)]
pub struct RefOps;

/// `1 / (1 + exp(-x))` in f32.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// GroupNorm's epsilon.
pub const GN_EPS: f64 = 1e-5;

impl Ops for RefOps {
    type Buf = Vec<f32>;

    fn zeros(&self, len: usize) -> Result<Vec<f32>, OpsError> {
        Ok(vec![0.0; len])
    }
    fn scratch(&self, len: usize) -> Result<Vec<f32>, OpsError> {
        Ok(vec![f32::NAN; len])
    }
    fn upload(&self, data: &[f32]) -> Result<Vec<f32>, OpsError> {
        Ok(data.to_vec())
    }
    fn download(&self, x: &Vec<f32>) -> Result<Vec<f32>, OpsError> {
        Ok(x.clone())
    }
    fn len(&self, x: &Vec<f32>) -> usize {
        x.len()
    }
    fn synchronize(&self) -> Result<(), OpsError> {
        Ok(())
    }

    fn fill(&self, x: &mut Vec<f32>, v: f32) -> Result<(), OpsError> {
        x.fill(v);
        Ok(())
    }
    fn scale(&self, x: &mut Vec<f32>, a: f32) -> Result<(), OpsError> {
        x.iter_mut().for_each(|v| *v *= a);
        Ok(())
    }
    fn axpby(&self, y: &mut Vec<f32>, a: f32, x: &Vec<f32>, b: f32) -> Result<(), OpsError> {
        assert_eq!(y.len(), x.len(), "axpby: lengths");
        y.iter_mut().zip(x).for_each(|(y, &x)| *y = a * x + b * *y);
        Ok(())
    }
    fn dot(&self, x: &Vec<f32>, y: &Vec<f32>) -> Result<f64, OpsError> {
        assert_eq!(y.len(), x.len(), "dot: lengths");
        Ok(x.iter().zip(y).map(|(&a, &b)| a as f64 * b as f64).sum())
    }
    fn copy_rows(
        &self,
        rows: usize,
        len: usize,
        src: &Vec<f32>,
        src_off: usize,
        src_stride: usize,
        dst: &mut Vec<f32>,
        dst_off: usize,
        dst_stride: usize,
    ) -> Result<(), OpsError> {
        for r in 0..rows {
            let s = src_off + r * src_stride;
            let d = dst_off + r * dst_stride;
            dst[d..d + len].copy_from_slice(&src[s..s + len]);
        }
        Ok(())
    }

    fn gemm(&self, g: &Gemm, a: &Vec<f32>, b: &Vec<f32>, c: &mut Vec<f32>) -> Result<(), OpsError> {
        let (ea, eb, ec) = g.extents();
        assert!(
            a.len() >= ea && b.len() >= eb && c.len() >= ec,
            "gemm: operands too short"
        );
        let at = |bi: usize, i: usize, kk: usize| {
            let base = g.a_off + bi * g.a_stride;
            if g.ta {
                a[base + kk * g.m + i]
            } else {
                a[base + i * g.k + kk]
            }
        };
        let bt = |bi: usize, kk: usize, j: usize| {
            let base = g.b_off + bi * g.b_stride;
            if g.tb {
                b[base + j * g.k + kk]
            } else {
                b[base + kk * g.n + j]
            }
        };
        let outputs = if g.sum_batch { 1 } else { g.batch };
        for o in 0..outputs {
            let cb = g.c_off + o * g.c_stride;
            let batches = if g.sum_batch { 0..g.batch } else { o..o + 1 };
            for i in 0..g.m {
                for j in 0..g.n {
                    let mut acc = 0.0f32;
                    for bi in batches.clone() {
                        for kk in 0..g.k {
                            acc = at(bi, i, kk).mul_add(bt(bi, kk, j), acc);
                        }
                    }
                    let idx = cb + i * g.n + j;
                    c[idx] = if g.beta == 0.0 {
                        g.alpha * acc
                    } else {
                        g.alpha * acc + g.beta * c[idx]
                    };
                }
            }
        }
        Ok(())
    }

    fn im2col(
        &self,
        x: &Vec<f32>,
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        k: usize,
        col: &mut Vec<f32>,
    ) -> Result<(), OpsError> {
        let (hw, kd, p) = (h * w, c * k * k, (k / 2) as isize);
        assert_eq!(x.len(), n * c * hw, "im2col: input");
        assert_eq!(col.len(), n * kd * hw, "im2col: col");
        for i in 0..n {
            for ci in 0..c {
                for ky in 0..k {
                    for kx in 0..k {
                        let row = (ci * k + ky) * k + kx;
                        for y in 0..h {
                            for xx in 0..w {
                                let (sy, sx) =
                                    (y as isize + ky as isize - p, xx as isize + kx as isize - p);
                                let v = if sy >= 0 && sy < h as isize && sx >= 0 && sx < w as isize
                                {
                                    x[(i * c + ci) * hw + sy as usize * w + sx as usize]
                                } else {
                                    0.0
                                };
                                col[(i * kd + row) * hw + y * w + xx] = v;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn col2im(
        &self,
        dcol: &Vec<f32>,
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        k: usize,
        dx: &mut Vec<f32>,
    ) -> Result<(), OpsError> {
        let (hw, kd, p) = (h * w, c * k * k, (k / 2) as isize);
        assert_eq!(dx.len(), n * c * hw, "col2im: dx");
        assert_eq!(dcol.len(), n * kd * hw, "col2im: dcol");
        // Gather form: input pixel (sy, sx) is read by output (y, x) = (sy - ky + p, sx - kx + p).
        for i in 0..n {
            for ci in 0..c {
                for sy in 0..h {
                    for sx in 0..w {
                        let mut acc = 0.0f32;
                        for ky in 0..k {
                            for kx in 0..k {
                                let (y, xx) =
                                    (sy as isize - ky as isize + p, sx as isize - kx as isize + p);
                                if y >= 0 && y < h as isize && xx >= 0 && xx < w as isize {
                                    let row = (ci * k + ky) * k + kx;
                                    acc += dcol[(i * kd + row) * hw + y as usize * w + xx as usize];
                                }
                            }
                        }
                        dx[(i * c + ci) * hw + sy * w + sx] = acc;
                    }
                }
            }
        }
        Ok(())
    }

    fn gated_forward(
        &self,
        z: &mut Vec<f32>,
        n: usize,
        cout: usize,
        hw: usize,
        params: &Vec<f32>,
        bias_off: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), OpsError> {
        assert_eq!(z.len(), n * 2 * cout * hw, "gated_forward: z");
        assert_eq!(out.len(), n * cout * hw, "gated_forward: out");
        for i in 0..n {
            for c in 0..cout {
                let b = params[bias_off + c];
                for j in 0..hw {
                    let zw = z[(i * 2 * cout + c) * hw + j];
                    let g = &mut z[(i * 2 * cout + cout + c) * hw + j];
                    let sg = sigmoid(*g);
                    *g = sg;
                    out[(i * cout + c) * hw + j] = zw * sg + b;
                }
            }
        }
        Ok(())
    }

    fn gated_backward(
        &self,
        d_out: &Vec<f32>,
        z: &Vec<f32>,
        n: usize,
        cout: usize,
        hw: usize,
        dz: &mut Vec<f32>,
    ) -> Result<(), OpsError> {
        assert_eq!(z.len(), n * 2 * cout * hw, "gated_backward: z");
        assert_eq!(dz.len(), z.len(), "gated_backward: dz");
        assert_eq!(d_out.len(), n * cout * hw, "gated_backward: d_out");
        for i in 0..n {
            for c in 0..cout {
                for j in 0..hw {
                    let (wi, gi) = (
                        (i * 2 * cout + c) * hw + j,
                        (i * 2 * cout + cout + c) * hw + j,
                    );
                    let d = d_out[(i * cout + c) * hw + j];
                    let (zw, sg) = (z[wi], z[gi]);
                    dz[wi] = d * sg;
                    dz[gi] = d * zw * sg * (1.0 - sg);
                }
            }
        }
        Ok(())
    }

    fn sum_planes(
        &self,
        x: &Vec<f32>,
        planes: usize,
        hw: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), OpsError> {
        assert_eq!(x.len(), planes * hw, "sum_planes: x");
        assert_eq!(out.len(), planes, "sum_planes: out");
        for (o, p) in out.iter_mut().zip(x.chunks(hw.max(1))) {
            *o = p.iter().map(|&v| v as f64).sum::<f64>() as f32;
        }
        Ok(())
    }

    fn add_column_sums(
        &self,
        x: &Vec<f32>,
        rows: usize,
        cols: usize,
        acc: &mut Vec<f32>,
        acc_off: usize,
    ) -> Result<(), OpsError> {
        assert_eq!(x.len(), rows * cols, "add_column_sums: x");
        for j in 0..cols {
            let s: f64 = (0..rows).map(|r| x[r * cols + j] as f64).sum();
            acc[acc_off + j] += s as f32;
        }
        Ok(())
    }

    fn group_norm_forward(
        &self,
        x: &Vec<f32>,
        n: usize,
        c: usize,
        hw: usize,
        groups: usize,
        params: &Vec<f32>,
        g_off: usize,
        b_off: usize,
        silu: bool,
        out: &mut Vec<f32>,
        xhat: &mut Vec<f32>,
        rstd: &mut Vec<f32>,
    ) -> Result<(), OpsError> {
        let glen = c / groups * hw;
        assert_eq!(x.len(), n * c * hw, "group_norm_forward: x");
        assert_eq!(out.len(), x.len(), "group_norm_forward: out");
        assert_eq!(xhat.len(), x.len(), "group_norm_forward: xhat");
        assert_eq!(rstd.len(), n * groups, "group_norm_forward: rstd");
        for gi in 0..n * groups {
            let src = &x[gi * glen..(gi + 1) * glen];
            let mean = src.iter().map(|&v| v as f64).sum::<f64>() / glen as f64;
            let m = mean as f32;
            let var = src
                .iter()
                .map(|&v| {
                    let d = (v - m) as f64;
                    d * d
                })
                .sum::<f64>()
                / glen as f64;
            let r = (1.0 / (var + GN_EPS).sqrt()) as f32;
            rstd[gi] = r;
            let c0 = (gi % groups) * (c / groups);
            for j in 0..glen {
                let ch = c0 + j / hw;
                let v = (src[j] - m) * r;
                xhat[gi * glen + j] = v;
                let pre = v * params[g_off + ch] + params[b_off + ch];
                out[gi * glen + j] = if silu { pre * sigmoid(pre) } else { pre };
            }
        }
        Ok(())
    }

    fn group_norm_backward(
        &self,
        d_out: &Vec<f32>,
        xhat: &Vec<f32>,
        rstd: &Vec<f32>,
        n: usize,
        c: usize,
        hw: usize,
        groups: usize,
        params: &Vec<f32>,
        g_off: usize,
        b_off: usize,
        silu: bool,
        dx: &mut Vec<f32>,
        sums: &mut Vec<f32>,
    ) -> Result<(), OpsError> {
        let cpg = c / groups;
        let glen = cpg * hw;
        assert_eq!(d_out.len(), n * c * hw, "group_norm_backward: d_out");
        assert_eq!(dx.len(), d_out.len(), "group_norm_backward: dx");
        assert_eq!(sums.len(), 2 * n * c, "group_norm_backward: sums");
        for gi in 0..n * groups {
            let c0 = (gi % groups) * cpg;
            let (mut sg, mut sgx) = (0.0f64, 0.0f64);
            let mut dy = vec![0.0f32; glen];
            for j in 0..glen {
                let ch = c0 + j / hw;
                let (x, d) = (xhat[gi * glen + j], d_out[gi * glen + j]);
                dy[j] = if silu {
                    let pre = x * params[g_off + ch] + params[b_off + ch];
                    let s = sigmoid(pre);
                    d * s * (1.0 + pre * (1.0 - s))
                } else {
                    d
                };
            }
            for cc in 0..cpg {
                let r = cc * hw..(cc + 1) * hw;
                let a: f64 = dy[r.clone()].iter().map(|&v| v as f64).sum();
                let b: f64 = dy[r.clone()]
                    .iter()
                    .zip(&xhat[gi * glen + r.start..gi * glen + r.end])
                    .map(|(&d, &x)| d as f64 * x as f64)
                    .sum();
                let i = gi / groups;
                sums[i * 2 * c + c0 + cc] = b as f32;
                sums[i * 2 * c + c + c0 + cc] = a as f32;
                let gm = params[g_off + c0 + cc] as f64;
                sg += a * gm;
                sgx += b * gm;
            }
            let (mg, mgx) = ((sg / glen as f64) as f32, (sgx / glen as f64) as f32);
            let rs = rstd[gi];
            for j in 0..glen {
                let gm = params[g_off + c0 + j / hw];
                dx[gi * glen + j] = rs * (dy[j] * gm - mg - xhat[gi * glen + j] * mgx);
            }
        }
        Ok(())
    }

    fn avg_pool(
        &self,
        x: &Vec<f32>,
        planes: usize,
        h: usize,
        w: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), OpsError> {
        let (ho, wo) = (h / 2, w / 2);
        assert_eq!(x.len(), planes * h * w, "avg_pool: x");
        assert_eq!(out.len(), planes * ho * wo, "avg_pool: out");
        for p in 0..planes {
            for y in 0..ho {
                for xx in 0..wo {
                    let at = |dy: usize, dx: usize| x[p * h * w + (2 * y + dy) * w + 2 * xx + dx];
                    out[p * ho * wo + y * wo + xx] =
                        0.25 * (at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1));
                }
            }
        }
        Ok(())
    }

    fn avg_pool_backward(
        &self,
        d: &Vec<f32>,
        planes: usize,
        h: usize,
        w: usize,
        dx: &mut Vec<f32>,
    ) -> Result<(), OpsError> {
        let (ho, wo) = (h / 2, w / 2);
        assert_eq!(d.len(), planes * ho * wo, "avg_pool_backward: d");
        assert_eq!(dx.len(), planes * h * w, "avg_pool_backward: dx");
        for p in 0..planes {
            for y in 0..h {
                for xx in 0..w {
                    dx[p * h * w + y * w + xx] = 0.25 * d[p * ho * wo + (y / 2) * wo + xx / 2];
                }
            }
        }
        Ok(())
    }

    fn upsample(
        &self,
        x: &Vec<f32>,
        planes: usize,
        h: usize,
        w: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), OpsError> {
        let (ho, wo) = (2 * h, 2 * w);
        assert_eq!(x.len(), planes * h * w, "upsample: x");
        assert_eq!(out.len(), planes * ho * wo, "upsample: out");
        for p in 0..planes {
            for y in 0..ho {
                for xx in 0..wo {
                    out[p * ho * wo + y * wo + xx] = x[p * h * w + (y / 2) * w + xx / 2];
                }
            }
        }
        Ok(())
    }

    fn upsample_backward(
        &self,
        d: &Vec<f32>,
        planes: usize,
        h: usize,
        w: usize,
        dx: &mut Vec<f32>,
    ) -> Result<(), OpsError> {
        let (ho, wo) = (2 * h, 2 * w);
        assert_eq!(d.len(), planes * ho * wo, "upsample_backward: d");
        assert_eq!(dx.len(), planes * h * w, "upsample_backward: dx");
        for p in 0..planes {
            for y in 0..h {
                for xx in 0..w {
                    let at =
                        |dy: usize, dxx: usize| d[p * ho * wo + (2 * y + dy) * wo + 2 * xx + dxx];
                    dx[p * h * w + y * w + xx] = at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1);
                }
            }
        }
        Ok(())
    }

    fn add_row_bias(
        &self,
        y: &mut Vec<f32>,
        rows: usize,
        cols: usize,
        params: &Vec<f32>,
        off: usize,
    ) -> Result<(), OpsError> {
        assert_eq!(y.len(), rows * cols, "add_row_bias: y");
        for (j, v) in y.iter_mut().enumerate() {
            *v += params[off + j % cols];
        }
        Ok(())
    }

    fn add_per_plane(
        &self,
        h: &mut Vec<f32>,
        planes: usize,
        hw: usize,
        e: &Vec<f32>,
    ) -> Result<(), OpsError> {
        assert_eq!(h.len(), planes * hw, "add_per_plane: h");
        assert_eq!(e.len(), planes, "add_per_plane: e");
        for (j, v) in h.iter_mut().enumerate() {
            *v += e[j / hw];
        }
        Ok(())
    }

    fn silu(&self, x: &Vec<f32>, out: &mut Vec<f32>) -> Result<(), OpsError> {
        assert_eq!(x.len(), out.len(), "silu: lengths");
        out.iter_mut()
            .zip(x)
            .for_each(|(o, &v)| *o = v * sigmoid(v));
        Ok(())
    }

    fn silu_backward(&self, x: &Vec<f32>, d: &Vec<f32>, dx: &mut Vec<f32>) -> Result<(), OpsError> {
        assert!(
            x.len() == d.len() && d.len() == dx.len(),
            "silu_backward: lengths"
        );
        for ((o, &v), &g) in dx.iter_mut().zip(x).zip(d) {
            let s = sigmoid(v);
            *o = g * s * (1.0 + v * (1.0 - s));
        }
        Ok(())
    }

    fn network_input(
        &self,
        y: &Vec<f32>,
        m: &Vec<f32>,
        c_in: &Vec<f32>,
        n: usize,
        chw: usize,
        f_in: &mut Vec<f32>,
    ) -> Result<(), OpsError> {
        assert!(
            y.len() == n * chw && m.len() == n * chw,
            "network_input: y, m"
        );
        assert_eq!(f_in.len(), 2 * n * chw, "network_input: f_in");
        for i in 0..n {
            for j in 0..chw {
                f_in[2 * i * chw + j] = c_in[i] * y[i * chw + j];
                f_in[(2 * i + 1) * chw + j] = m[i * chw + j];
            }
        }
        Ok(())
    }

    fn precondition(
        &self,
        y: &Vec<f32>,
        m: &Vec<f32>,
        f: &Vec<f32>,
        coefs: &SampleCoefs<Vec<f32>>,
        sd: f32,
        n: usize,
        chw: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), OpsError> {
        assert!(y.len() == n * chw && m.len() == n * chw && f.len() == n * chw);
        assert_eq!(out.len(), n * chw, "precondition: out");
        for i in 0..n {
            let (ck, co) = (coefs.c_skip[i], coefs.c_out[i] - sd);
            for j in 0..chw {
                let k = i * chw + j;
                // As precondition_output: out = (m (c_out - sd) + sd) F, then + c_skip (y m).
                let scale = m[k] * co + sd;
                out[k] = 1.0 * ((y[k] * m[k]) * ck) + 1.0 * (scale * f[k]);
            }
        }
        Ok(())
    }

    fn output_scale_mul(
        &self,
        d_d: &Vec<f32>,
        m: &Vec<f32>,
        coefs: &SampleCoefs<Vec<f32>>,
        sd: f32,
        n: usize,
        chw: usize,
        d_f: &mut Vec<f32>,
    ) -> Result<(), OpsError> {
        assert!(d_d.len() == n * chw && m.len() == n * chw && d_f.len() == n * chw);
        for i in 0..n {
            let co = coefs.c_out[i] - sd;
            for j in 0..chw {
                let k = i * chw + j;
                d_f[k] = (m[k] * co + sd) * d_d[k];
            }
        }
        Ok(())
    }

    fn weighted_residual(
        &self,
        d: &Vec<f32>,
        x: &Vec<f32>,
        a: &Vec<f32>,
        a_tilde: &Vec<f32>,
        coefs: &SampleCoefs<Vec<f32>>,
        sd: f32,
        n: usize,
        chw: usize,
        grad: &mut Vec<f32>,
        resid: &mut Vec<f32>,
    ) -> Result<(), OpsError> {
        for v in [d, x, a, a_tilde, &*grad, &*resid] {
            assert_eq!(v.len(), n * chw, "weighted_residual: lengths");
        }
        let inv_sd2 = 1.0 / (sd * sd);
        for i in 0..n {
            let is2 = coefs.inv_s2[i];
            for j in 0..chw {
                let k = i * chw + j;
                // As ambient_weight then weighted_squared_error: w = (1/sd^2) a + (a~ / s^2);
                // r = (-1) x + 1 D; w r.
                let w = inv_sd2 * a[k] + 1.0 * (a_tilde[k] * is2);
                let r = -x[k] + 1.0 * d[k];
                resid[k] = r;
                grad[k] = w * r;
            }
        }
        Ok(())
    }

    fn adam(
        &self,
        w: &mut Vec<f32>,
        g: &mut Vec<f32>,
        m: &mut Vec<f32>,
        v: &mut Vec<f32>,
        h: &AdamStep,
    ) -> Result<(), OpsError> {
        assert!(
            w.len() == g.len() && g.len() == m.len() && m.len() == v.len(),
            "adam: lengths"
        );
        for (((w, g), m), v) in w
            .iter_mut()
            .zip(g.iter_mut())
            .zip(m.iter_mut())
            .zip(v.iter_mut())
        {
            if h.clip != 1.0 {
                *g *= h.clip;
            }
            *m = h.beta1 * *m + (1.0 - h.beta1) * *g;
            *v = h.beta2 * *v + (1.0 - h.beta2) * *g * *g;
            *w -= h.lr * (*m / h.bc1) / ((*v / h.bc2).sqrt() + h.eps);
        }
        Ok(())
    }
}
