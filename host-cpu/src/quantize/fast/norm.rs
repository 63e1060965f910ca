//! `SiLU(GN(x))` written straight into the next convolution's padded input ([`super::padded`]):
//! the core's GroupNorm (`ambient_core::int8::groupnorm`) followed by its SiLU table and the
//! subtraction of the convolution's input zero point, in one pass.
//!
//! The statistics are exact integer sums (per channel here, then per group: the same integers
//! as the core's per-group sums, added in another order). The per-group f32 steps are the
//! core's, operation for operation (`sqrt` is IEEE-754's correctly rounded square root, as
//! `libm::sqrtf` is). The per-element step `round((d - mean) k_c + o_c)` is three single f32
//! operations (Rust never fuses them) and a rounding half away from zero, in plain Rust
//! ([`apply_portable`]) or on eight channels with AVX2 ([`super::norm_avx2`]).

use ambient_core::int8::groupnorm::GroupNorm;
use ambient_core::int8::quant::QuantParams;

use super::padded::PaddedGeometry;

/// A GroupNorm and the SiLU table after it.
#[derive(Debug, Clone)]
pub struct NormLayer {
    pub channels: usize,
    pub groups: usize,
    pub eps: f32,
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub input: QuantParams,
    pub output: QuantParams,
    pub silu: [i8; 256],
}

impl NormLayer {
    pub fn new(norm: &GroupNorm, silu: &[i8; 256]) -> Self {
        NormLayer {
            channels: norm.channels,
            groups: norm.groups,
            eps: norm.eps,
            gamma: norm.gamma.to_vec(),
            beta: norm.beta.to_vec(),
            input: norm.input,
            output: norm.output,
            silu: *silu,
        }
    }
}

/// Per-channel working space for the widest GroupNorm of a model.
#[derive(Debug, Clone)]
pub struct NormScratch {
    sum: Vec<i64>,
    sum_sq: Vec<i64>,
    /// Per channel: its group's mean, the scale `k_c` and the offset `o_c`.
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
    pub offset: Vec<f32>,
}

impl NormScratch {
    pub fn new(channels: usize) -> Self {
        NormScratch {
            sum: vec![0; channels],
            sum_sq: vec![0; channels],
            mean: vec![0.0; channels],
            scale: vec![0.0; channels],
            offset: vec![0.0; channels],
        }
    }
}

/// Pixels per run of i32 partial sums: `255^2 * 32768 < 2^31`.
const CHUNK: usize = 1 << 15;

/// `sum (q - zp)` and `sum (q - zp)^2` of each channel of the HWC map `data` (`c` channels),
/// added to `sum[..c]`, `sum_sq[..c]`.
fn channel_sums(data: &[i8], c: usize, zp: i32, sum: &mut [i64], sum_sq: &mut [i64]) {
    for chunk in data.chunks(CHUNK * c) {
        let mut part = [0i32; 64];
        let mut part_sq = [0i32; 64];
        // Channels in runs of 64 (the stack arrays), each run over the chunk's pixels.
        for c0 in (0..c).step_by(64) {
            let width = (c - c0).min(64);
            part[..width].fill(0);
            part_sq[..width].fill(0);
            for px in chunk.chunks_exact(c) {
                for ((p, p2), &q) in part[..width]
                    .iter_mut()
                    .zip(part_sq[..width].iter_mut())
                    .zip(&px[c0..c0 + width])
                {
                    let d = q as i32 - zp;
                    *p += d;
                    *p2 += d * d;
                }
            }
            for i in 0..width {
                sum[c0 + i] += part[i] as i64;
                sum_sq[c0 + i] += part_sq[i] as i64;
            }
        }
    }
}

/// Fills `scratch.mean`, `.scale`, `.offset` for the map `[a, b]` (`ca + cb` channels, `pixels`
/// pixels): the core's per-group arithmetic on the exact sums.
fn affine(
    layer: &NormLayer,
    pixels: usize,
    a: &[i8],
    ca: usize,
    b: &[i8],
    cb: usize,
    scratch: &mut NormScratch,
) {
    let channels = layer.channels;
    assert_eq!(ca + cb, channels);
    let zp = layer.input.zero_point;
    scratch.sum[..channels].fill(0);
    scratch.sum_sq[..channels].fill(0);
    let (sa, sb) = scratch.sum[..channels].split_at_mut(ca);
    let (qa, qb) = scratch.sum_sq[..channels].split_at_mut(ca);
    channel_sums(a, ca, zp, sa, qa);
    if cb > 0 {
        channel_sums(b, cb, zp, sb, qb);
    }
    let per_group = channels / layer.groups;
    let n = (pixels * per_group) as i64;
    let s_x = layer.input.scale;
    for g in 0..layer.groups {
        let range = g * per_group..(g + 1) * per_group;
        let sum: i64 = scratch.sum[range.clone()].iter().sum();
        let sum_sq: i64 = scratch.sum_sq[range.clone()].iter().sum();
        // The core's steps, in its order (ambient_core::int8::groupnorm).
        let var_num = n as i128 * sum_sq as i128 - sum as i128 * sum as i128;
        let nf = n as f32;
        let mean = sum as f32 / nf;
        let var_q = var_num as f32 / (nf * nf);
        let inv_std = 1.0 / (s_x * s_x * var_q + layer.eps).sqrt();
        for c in range {
            scratch.mean[c] = mean;
            scratch.scale[c] = layer.gamma[c] * s_x * inv_std / layer.output.scale;
            scratch.offset[c] = layer.beta[c] / layer.output.scale + layer.output.zero_point as f32;
        }
    }
}

/// The SiLU table shifted by the next convolution's input zero point, by int8 value + 128.
fn silu_table(layer: &NormLayer, next_zero_point: i32) -> [i32; 256] {
    let mut t = [0i32; 256];
    for (v, &s) in t.iter_mut().zip(layer.silu.iter()) {
        *v = s as i32 - next_zero_point;
    }
    t
}

/// One element: the core's GroupNorm output for `q` in a channel with `mean`, `scale`, `offset`.
#[inline]
fn normalize(q: i8, zp: i32, mean: f32, scale: f32, offset: f32) -> i8 {
    let d = (q as i32 - zp) as f32;
    let t = ((d - mean) * scale + offset).round();
    t.clamp(-128.0, 127.0) as i8
}

/// `dst[i] <- table[normalize(src[i]) + 128]` for the channels `c0..c0 + src.len()` of one pixel.
pub fn apply_portable(
    src: &[i8],
    c0: usize,
    zp: i32,
    scratch: &NormScratch,
    table: &[i32; 256],
    dst: &mut [i16],
) {
    for (i, (&q, d)) in src.iter().zip(dst.iter_mut()).enumerate() {
        let c = c0 + i;
        let v = normalize(q, zp, scratch.mean[c], scratch.scale[c], scratch.offset[c]);
        *d = table[(v as i32 + 128) as usize] as i16;
    }
}

/// `dst` (padded, border cleared) `<- SiLU(GN([a, b])) - next_zero_point`.
#[allow(clippy::too_many_arguments)]
pub fn norm_silu(
    layer: &NormLayer,
    isa: super::Isa,
    pg: &PaddedGeometry,
    a: &[i8],
    ca: usize,
    b: &[i8],
    cb: usize,
    next_zero_point: i32,
    scratch: &mut NormScratch,
    dst: &mut [i16],
) {
    let pixels = pg.height * pg.width;
    assert!(pg.channels == layer.channels && a.len() == pixels * ca && b.len() == pixels * cb);
    assert!(dst.len() >= pg.len());
    affine(layer, pixels, a, ca, b, cb, scratch);
    let table = silu_table(layer, next_zero_point);
    pg.clear_border(dst);
    let zp = layer.input.zero_point;
    let parts = Parts { a, ca, b, cb };
    if isa.uses_avx2() && super::norm_avx2::apply_map(pg, &parts, zp, scratch, &table, dst) {
        return;
    }
    for y in 0..pg.height {
        for x in 0..pg.width {
            let p = y * pg.width + x;
            let out = &mut dst[pg.pixel(y, x)..][..ca + cb];
            let (oa, ob) = out.split_at_mut(ca);
            apply_portable(&a[p * ca..(p + 1) * ca], 0, zp, scratch, &table, oa);
            apply_portable(&b[p * cb..(p + 1) * cb], ca, zp, scratch, &table, ob);
        }
    }
}

/// An int8 HWC map whose channels are `a`'s (`ca` per pixel) then `b`'s (`cb`, maybe 0).
#[derive(Debug, Clone, Copy)]
pub struct Parts<'a> {
    pub a: &'a [i8],
    pub ca: usize,
    pub b: &'a [i8],
    pub cb: usize,
}
