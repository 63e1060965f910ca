//! Winograd F(2x2, 3x3) for the 3x3 convolutions (stride 1, zero padding 1): each 2x2 output
//! tile is `A^T [(G g G^T) . (B^T d B)] A` for the 4x4 input tile `d` around it, so the sum over
//! input channels becomes 16 independent GEMMs ([rows, cin] x [cin, tiles], one per position
//! of the 4x4 transformed tile) with 16 multiplies per 4 outputs instead of 36 (2.25x fewer).
//! Used (on images large enough, [`suits`]) for the gated convolutions' forward pass and for
//! their input gradient (a 3x3 convolution with the kernels flipped and the channel axes
//! swapped); im2col remains the reference and serves the other convolutions and the weight
//! gradient.

use super::gemm::gemm_strided;
use super::simd;
use rayon::prelude::*;

/// Positions in a transformed 4x4 tile.
const P: usize = 16;

/// Fewest 2x2 output tiles for which [`suits`] picks Winograd.
const MIN_TILES: usize = 100;

/// Whether a k x k convolution of an h x w image goes through Winograd: k = 3 and at least
/// [`MIN_TILES`] tiles. Smaller images (14 x 14 and 7 x 7 in the spec network) have GEMMs of
/// at most 49 columns, and 7 x 7 wastes 30% on partial tiles: there Winograd measured slower
/// than im2col for one image (split across the workers) and barely faster for a batch of 64
/// (CPU time, this 2-core Zen 4); measured again with the faster transforms, a threshold of
/// 49 tiles (14 x 14 through Winograd) changed neither within the noise. The choice depends
/// on the layer and image size only, never on the batch, so one image alone computes what it
/// computes inside a batch.
pub(crate) fn suits(k: usize, h: usize, w: usize) -> bool {
    k == 3 && h.div_ceil(2) * w.div_ceil(2) >= MIN_TILES
}

/// The filters in the Winograd domain: `u[(xi rows + o) cin + c] = (G g_oc G^T)[xi]`.
#[derive(Debug, Clone)]
pub(crate) struct WinogradFilter {
    rows: usize,
    cin: usize,
    u: Vec<f32>,
}

impl WinogradFilter {
    /// The transform of `w` [rows, cin, 3, 3] (row-major).
    #[cfg(test)]
    pub(crate) fn new(w: &[f32], rows: usize, cin: usize) -> Self {
        Self::build(rows, cin, |o, c| {
            let g = &w[(o * cin + c) * 9..][..9];
            std::array::from_fn(|i| g[i])
        })
    }

    /// The transform of the adjoint convolution's kernels, `w'[c, o, a, b] = w[o, c, 2-a, 2-b]`
    /// for `w` [rows, cin, 3, 3]: a filter from `rows` channels to `cin` channels that maps
    /// dL/dout to dL/dx.
    pub(crate) fn adjoint(w: &[f32], rows: usize, cin: usize) -> Self {
        Self::build(cin, rows, |c, o| {
            let g = &w[(o * cin + c) * 9..][..9];
            std::array::from_fn(|i| g[8 - i])
        })
    }

    /// The transform of a gated convolution's stacked kernels `[w; g]`, each [cout, cin, 3,
    /// 3] (row-major): rows 0..cout are `w`'s output channels, cout..2 cout `g`'s.
    /// Rows in groups of [`gated_group`] channels, each group's main rows followed by its
    /// gate rows ([`gated_row`]), so that a block of whole groups is one run of rows.
    pub(crate) fn gated(w: &[f32], g: &[f32], cout: usize, cin: usize) -> Self {
        assert_eq!(w.len(), cout * cin * 9, "winograd: main kernel size");
        assert_eq!(g.len(), cout * cin * 9, "winograd: gate kernel size");
        let grp = gated_group(cout);
        Self::build(2 * cout, cin, |row, c| {
            let within = row % (2 * grp);
            let (src, ch) = if within < grp {
                (w, row / (2 * grp) * grp + within)
            } else {
                (g, row / (2 * grp) * grp + within - grp)
            };
            let k = &src[(ch * cin + c) * 9..][..9];
            std::array::from_fn(|i| k[i])
        })
    }

    fn build(rows: usize, cin: usize, kernel: impl Fn(usize, usize) -> [f32; 9]) -> Self {
        // Tiles in runs of CHUNK (o, c) pairs, each run then written position by position
        // (16 contiguous stretches rather than 16 scattered values per tile).
        const CHUNK: usize = 64;
        let stride = rows * cin;
        let mut u = vec![0.0f32; P * stride];
        let mut tiles = [[0.0f32; P]; CHUNK];
        simd::dispatch(
            #[inline(always)]
            || {
                for start in (0..stride).step_by(CHUNK) {
                    let len = CHUNK.min(stride - start);
                    for (j, t) in tiles[..len].iter_mut().enumerate() {
                        let oc = start + j;
                        *t = filter_tile(&kernel(oc / cin, oc % cin));
                    }
                    for xi in 0..P {
                        let dst = &mut u[xi * stride + start..][..len];
                        for (d, t) in dst.iter_mut().zip(&tiles[..len]) {
                            *d = t[xi];
                        }
                    }
                }
            },
        );
        WinogradFilter { rows, cin, u }
    }
}

/// Channels per group in the row order of [`WinogradFilter::gated`]: 8 (whole register tiles
/// of the GEMM kernels), or all `cout` when 8 does not divide it.
pub(crate) fn gated_group(cout: usize) -> usize {
    if cout.is_multiple_of(8) {
        8
    } else {
        cout
    }
}

/// The row of [`WinogradFilter::gated`] holding channel `ch` of the main (`gate` false) or
/// the gate convolution.
pub(crate) fn gated_row(cout: usize, ch: usize, gate: bool) -> usize {
    let grp = gated_group(cout);
    ch / grp * 2 * grp + ch % grp + if gate { grp } else { 0 }
}

/// `G g G^T` for a 3x3 kernel `g` (row-major), G = [[1,0,0],[1/2,1/2,1/2],[1/2,-1/2,1/2],[0,0,1]].
#[inline(always)]
fn filter_tile(g: &[f32; 9]) -> [f32; P] {
    let gcol = |a: f32, b: f32, c: f32| [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
    // Rows of G g (4 x 3), column by column.
    let cols: [[f32; 4]; 3] = std::array::from_fn(|j| gcol(g[j], g[3 + j], g[6 + j]));
    let mut t = [0.0f32; P];
    for i in 0..4 {
        let r = gcol(cols[0][i], cols[1][i], cols[2][i]);
        t[4 * i..4 * i + 4].copy_from_slice(&r);
    }
    t
}

/// Reusable buffers of one worker: the transformed input `v` [cin, 16, tiles] and the
/// products `m` [16, rows, tiles].
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    v: Vec<f32>,
    m: Vec<f32>,
}

/// `f(i, chunk)` on the `len`-long chunks of `data` in order, shared out across the workers
/// when `par`; `init` makes each worker's buffer.
fn for_chunks<B>(
    data: &mut [f32],
    len: usize,
    par: bool,
    init: impl Fn() -> B + Sync + Send,
    f: impl Fn(&mut B, usize, &mut [f32]) + Sync + Send,
) {
    if par {
        data.par_chunks_mut(len)
            .enumerate()
            .for_each_init(init, |b, (i, c)| f(b, i, c));
    } else {
        let mut b = init();
        data.chunks_mut(len)
            .enumerate()
            .for_each(|(i, c)| f(&mut b, i, c));
    }
}

/// `out [rows, h, w] = conv3x3(x [cin, h, w], filter)` for one sample, zero padding 1. With
/// `parts > 1` each stage (input transform by channel, the 16 GEMMs, output transform by
/// channel) is shared out across the workers.
pub(crate) fn conv3x3(
    f: &WinogradFilter,
    x: &[f32],
    h: usize,
    w: usize,
    out: &mut [f32],
    parts: usize,
    s: &mut Scratch,
) {
    let (rows, cin) = (f.rows, f.cin);
    assert_eq!(out.len(), rows * h * w, "winograd: output size");
    let t = tiles(h, w);
    let par = parts > 1;
    grow(&mut s.v, P * cin * t);
    grow(&mut s.m, P * rows * t);
    input_transform(x, cin, h, w, &mut s.v[..P * cin * t], par);
    // One GEMM per position: m[xi] [rows, t] = u[xi] [rows, cin] v[., xi] [cin, t].
    let v = &s.v[..P * cin * t];
    for_chunks(
        &mut s.m[..P * rows * t],
        rows * t,
        par,
        || (),
        |_, xi, mx| f.product(xi, 0..rows, v, t, mx),
    );
    let m = &s.m[..P * rows * t];
    for_chunks(
        out,
        h * w,
        par,
        || vec![0.0f32; output_buf_len(h, w)],
        |buf, o, oc| output_transform(m, rows, o, t, h, w, oc, buf),
    );
}

/// Number of 2x2 output tiles of an h x w image.
pub(crate) fn tiles(h: usize, w: usize) -> usize {
    h.div_ceil(2) * w.div_ceil(2)
}

/// Length of the transformed input of `cin` channels, [`input_transform`]'s `v`.
pub(crate) fn input_len(cin: usize, h: usize, w: usize) -> usize {
    P * cin * tiles(h, w)
}

/// Length of the products of `rows` output channels, [`WinogradFilter::product`]'s `m`.
pub(crate) fn product_len(rows: usize, h: usize, w: usize) -> usize {
    P * rows * tiles(h, w)
}

/// `buf.len() >= len`, growing (zero-filled) only when it is shorter.
pub(crate) fn grow(buf: &mut Vec<f32>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
}

/// `B^T d B` of every 4x4 input tile of `x` [cin, h, w] (zero padding 1) into `v` [cin, 16,
/// tiles], channels shared out across the workers when `par`.
///
/// With B^T = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]], per channel: first along the
/// rows, for every padded input row y (input row y - 1) and tile column tx, the 4 values
/// `H_j[y][tx] = (d_y B)[j]` of the 4 columns 2 tx .. 2 tx + 4; stored for even and odd y
/// apart, so that the rows 2 ty, 2 ty + 1, 2 ty + 2, 2 ty + 3 of tile row ty are rows ty
/// and ty + 1 of the two halves, and the column combinations `v[4 i + j] = (B^T H_j)[i]`
/// run over all tiles at once (contiguous stretches of `t` values).
pub(crate) fn input_transform(x: &[f32], cin: usize, h: usize, w: usize, v: &mut [f32], par: bool) {
    assert_eq!(x.len(), cin * h * w, "winograd: input size");
    assert_eq!(
        v.len(),
        input_len(cin, h, w),
        "winograd: transformed input size"
    );
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    let t = th * tw;
    let n1 = tw + 1;
    // Per worker: a padded row split into even and odd halves (2 n1), and H: 4 j x 2
    // parities x (th + 1) rows x tw.
    let hlen = (th + 1) * tw;
    for_chunks(
        v,
        P * t,
        par,
        || vec![0.0f32; 2 * n1 + 8 * hlen],
        |buf, c, vc| {
            simd::dispatch(
                #[inline(always)]
                || {
                    let xc = &x[c * h * w..(c + 1) * h * w];
                    let (eo, hb) = buf.split_at_mut(2 * n1);
                    let (e, o) = eo.split_at_mut(n1);
                    // Padded rows y = 0 ..= 2 th + 1: input row y - 1, zeros outside.
                    for y in 0..2 * th + 2 {
                        match y.checked_sub(1).filter(|&r| r < h) {
                            Some(r) => split_row(&xc[r * w..(r + 1) * w], e, o),
                            None => {
                                e.fill(0.0);
                                o.fill(0.0);
                            }
                        }
                        // The tile's columns are (e[tx], o[tx], e[tx + 1], o[tx + 1]).
                        let (e0, e1, o0, o1) = (&e[..tw], &e[1..], &o[..tw], &o[1..]);
                        let at = |j: usize| (2 * j + y % 2) * hlen + y / 2 * tw;
                        for (k, hv) in hb[at(0)..at(0) + tw].iter_mut().enumerate() {
                            *hv = e0[k] - e1[k];
                        }
                        for (k, hv) in hb[at(1)..at(1) + tw].iter_mut().enumerate() {
                            *hv = o0[k] + e1[k];
                        }
                        for (k, hv) in hb[at(2)..at(2) + tw].iter_mut().enumerate() {
                            *hv = e1[k] - o0[k];
                        }
                        for (k, hv) in hb[at(3)..at(3) + tw].iter_mut().enumerate() {
                            *hv = o0[k] - o1[k];
                        }
                    }
                    // Row 2 ty + a of H_j: the even (a = 0, 2) or odd (a = 1, 3) half, its
                    // row ty (a < 2) or ty + 1.
                    let (v0, rest) = vc.split_at_mut(4 * t);
                    let (v1, rest) = rest.split_at_mut(4 * t);
                    let (v2, v3) = rest.split_at_mut(4 * t);
                    for j in 0..4 {
                        let half = |odd: usize, next: usize| {
                            let s = (2 * j + odd) * hlen + next * tw;
                            &hb[s..s + t]
                        };
                        let (r0, r1, r2, r3) = (half(0, 0), half(1, 0), half(0, 1), half(1, 1));
                        let out = j * t..(j + 1) * t;
                        for (k, vv) in v0[out.clone()].iter_mut().enumerate() {
                            *vv = r0[k] - r2[k];
                        }
                        for (k, vv) in v1[out.clone()].iter_mut().enumerate() {
                            *vv = r1[k] + r2[k];
                        }
                        for (k, vv) in v2[out.clone()].iter_mut().enumerate() {
                            *vv = r2[k] - r1[k];
                        }
                        for (k, vv) in v3[out].iter_mut().enumerate() {
                            *vv = r1[k] - r3[k];
                        }
                    }
                },
            )
        },
    );
}

/// A row `r` (w values) padded with one zero each side, as q[x + 1] = r[x], split into its
/// even half `e[k] = q[2 k]` and odd half `o[k] = q[2 k + 1]` (zeros past the row).
#[inline(always)]
fn split_row(r: &[f32], e: &mut [f32], o: &mut [f32]) {
    let w = r.len();
    e[0] = 0.0;
    for k in 1..e.len() {
        e[k] = if 2 * k - 1 < w { r[2 * k - 1] } else { 0.0 };
    }
    for (k, v) in o.iter_mut().enumerate() {
        *v = if 2 * k < w { r[2 * k] } else { 0.0 };
    }
}

impl WinogradFilter {
    /// The products of position `xi` for the output channels `rows` (a range of this
    /// filter's rows): `m [rows.len(), t] = u[xi][rows] [., cin] v[., xi] [cin, t]`, with `v`
    /// the transformed input ([`input_transform`], `t` tiles).
    pub(crate) fn product(
        &self,
        xi: usize,
        rows: std::ops::Range<usize>,
        v: &[f32],
        t: usize,
        m: &mut [f32],
    ) {
        let cin = self.cin;
        let ux = &self.u[(xi * self.rows + rows.start) * cin..(xi * self.rows + rows.end) * cin];
        gemm_strided(rows.len(), cin, t, ux, &v[xi * t..], P * t, m);
    }
}

/// Length of [`output_transform`]'s scratch for an h x w image.
pub(crate) fn output_buf_len(h: usize, w: usize) -> usize {
    12 * tiles(h, w)
}

/// `A^T m A` for output channel `o` of the products `m` [16, rows, t] into `oc` [h, w];
/// `buf` holds [`output_buf_len`] values. A^T = [[1,1,1,0],[0,1,-1,-1]] is applied down the
/// columns, then along the rows, each over all tiles at once (contiguous stretches of `t`);
/// then the 2x2 tiles are written out.
#[allow(clippy::too_many_arguments)]
pub(crate) fn output_transform(
    m: &[f32],
    rows: usize,
    o: usize,
    t: usize,
    h: usize,
    w: usize,
    oc: &mut [f32],
    buf: &mut [f32],
) {
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    debug_assert_eq!(t, th * tw);
    assert!(buf.len() >= 12 * t, "winograd: output scratch");
    simd::dispatch(
        #[inline(always)]
        || {
            let mx = |xi: usize| &m[(xi * rows + o) * t..][..t];
            // s[2 j + p] = (A^T m)[p][j] for every tile, y[2 p + q] = (A^T m A)[p][q].
            let (s, y) = buf.split_at_mut(8 * t);
            for j in 0..4 {
                let (m0, m1, m2, m3) = (mx(j), mx(4 + j), mx(8 + j), mx(12 + j));
                let (s0, s1) = s[2 * j * t..(2 * j + 2) * t].split_at_mut(t);
                for k in 0..t {
                    s0[k] = m0[k] + m1[k] + m2[k];
                    s1[k] = m1[k] - m2[k] - m3[k];
                }
            }
            for p in 0..2 {
                let sj = |j: usize| &s[(2 * j + p) * t..(2 * j + p + 1) * t];
                let (a0, a1, a2, a3) = (sj(0), sj(1), sj(2), sj(3));
                let (y0, y1) = y[2 * p * t..(2 * p + 2) * t].split_at_mut(t);
                for k in 0..t {
                    y0[k] = a0[k] + a1[k] + a2[k];
                    y1[k] = a1[k] - a2[k] - a3[k];
                }
            }
            for ty in 0..th {
                for p in 0..2 {
                    let oy = 2 * ty + p;
                    if oy >= h {
                        continue;
                    }
                    let tiles = ty * tw..(ty + 1) * tw;
                    let y0 = &y[2 * p * t..][tiles.clone()];
                    let y1 = &y[(2 * p + 1) * t..][tiles];
                    let row = &mut oc[oy * w..(oy + 1) * w];
                    for (pair, (&a, &b)) in row.chunks_exact_mut(2).zip(y0.iter().zip(y1)) {
                        pair[0] = a;
                        pair[1] = b;
                    }
                    if w % 2 == 1 {
                        row[w - 1] = y0[tw - 1];
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ambient_core::AmbientRng;

    /// The transforms on their own, by hand: a kernel with a single 1 at the centre is the
    /// identity convolution, so every output equals the input; a kernel of ones sums the
    /// 3x3 neighbourhood (worked for a 2x2 image of 1, 2, 3, 4: every output sees all four).
    #[test]
    fn identity_and_box_kernels_by_hand() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let mut out = [9.0f32; 4];
        let mut s = Scratch::default();
        let mut centre = [0.0f32; 9];
        centre[4] = 1.0;
        conv3x3(
            &WinogradFilter::new(&centre, 1, 1),
            &x,
            2,
            2,
            &mut out,
            1,
            &mut s,
        );
        assert_eq!(out, x);
        conv3x3(
            &WinogradFilter::new(&[1.0; 9], 1, 1),
            &x,
            2,
            2,
            &mut out,
            1,
            &mut s,
        );
        assert_eq!(out, [10.0; 4]);
    }

    /// Direct convolution in f64 and, per output, `sum |w| |x|` over its terms.
    fn direct(w: &[f32], x: &[f32], rows: usize, cin: usize, h: usize, wd: usize) -> Vec<f64> {
        let mut out = vec![0.0f64; rows * h * wd];
        for o in 0..rows {
            for c in 0..cin {
                for y in 0..h {
                    for xx in 0..wd {
                        for a in 0..3 {
                            for b in 0..3 {
                                let (iy, ix) = (y + a, xx + b);
                                if iy < 1 || ix < 1 || iy > h || ix > wd {
                                    continue;
                                }
                                let xv = x[(c * h + iy - 1) * wd + ix - 1] as f64;
                                out[(o * h + y) * wd + xx] +=
                                    w[((o * cin + c) * 3 + a) * 3 + b] as f64 * xv;
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// The rounding-error scale of the Winograd evaluation of every output: the same
    /// algorithm run in f64 on absolute values (|A^T| (|G| |g| |G^T| . |B^T| |d| |B|) |A|,
    /// summed over channels), which bounds the magnitude of every intermediate term.
    fn abs_scale(w: &[f32], x: &[f32], rows: usize, cin: usize, h: usize, wd: usize) -> Vec<f64> {
        let ga = [
            [1.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
            [0.5, 0.5, 0.5],
            [0.0, 0.0, 1.0],
        ];
        let ba = [
            [1.0, 0.0, 1.0, 0.0],
            [0.0, 1.0, 1.0, 0.0],
            [0.0, 1.0, 1.0, 0.0],
            [0.0, 1.0, 0.0, 1.0],
        ];
        let aa = [[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0]];
        let (th, tw) = (h.div_ceil(2), wd.div_ceil(2));
        let mut out = vec![0.0f64; rows * h * wd];
        for o in 0..rows {
            for c in 0..cin {
                let g = |a: usize, b: usize| w[((o * cin + c) * 3 + a) * 3 + b].abs() as f64;
                let mut u = [[0.0f64; 4]; 4];
                for (i, ui) in u.iter_mut().enumerate() {
                    for (j, uij) in ui.iter_mut().enumerate() {
                        for a in 0..3 {
                            for b in 0..3 {
                                *uij += ga[i][a] * g(a, b) * ga[j][b];
                            }
                        }
                    }
                }
                for ty in 0..th {
                    for tx in 0..tw {
                        let d = |a: usize, b: usize| {
                            let (iy, ix) = (2 * ty + a, 2 * tx + b);
                            if iy < 1 || ix < 1 || iy > h || ix > wd {
                                0.0
                            } else {
                                x[(c * h + iy - 1) * wd + ix - 1].abs() as f64
                            }
                        };
                        let mut m = [[0.0f64; 4]; 4];
                        for (i, mi) in m.iter_mut().enumerate() {
                            for (j, mij) in mi.iter_mut().enumerate() {
                                let mut vv = 0.0;
                                for a in 0..4 {
                                    for b in 0..4 {
                                        vv += ba[i][a] * d(a, b) * ba[j][b];
                                    }
                                }
                                *mij = u[i][j] * vv;
                            }
                        }
                        for (p, ap) in aa.iter().enumerate() {
                            for (q, aq) in aa.iter().enumerate() {
                                let (y, xx) = (2 * ty + p, 2 * tx + q);
                                if y >= h || xx >= wd {
                                    continue;
                                }
                                let mut s = 0.0;
                                for i in 0..4 {
                                    for j in 0..4 {
                                        s += ap[i] * m[i][j] * aq[j];
                                    }
                                }
                                out[(o * h + y) * wd + xx] += s;
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Forward and adjoint against the direct f64 convolution on random data, odd and even
    /// sizes (partial tiles), one worker and several. Tolerance (first-order forward error
    /// analysis): every computed quantity is a sum of terms whose magnitudes are bounded by
    /// the abs-value evaluation S, and it passes through at most cin + 12 roundings (filter
    /// transform 4, input transform 2, product 1, channel sum cin, output transform 4, and
    /// one spare), each relative 2^-24: |err| <= (cin + 12) 2^-24 S.
    #[test]
    fn matches_direct_convolution_within_derived_bound() {
        let mut rng = AmbientRng::new(17);
        for &(rows, cin, h, wd) in &[(5, 3, 7, 7), (4, 6, 8, 6), (3, 2, 5, 9)] {
            let mut w = vec![0.0f32; rows * cin * 9];
            let mut x = vec![0.0f32; cin * h * wd];
            rng.fill_normal(&mut w);
            rng.fill_normal(&mut x);
            let want = direct(&w, &x, rows, cin, h, wd);
            let scale = abs_scale(&w, &x, rows, cin, h, wd);
            let tol = (cin + 12) as f64 * 2f64.powi(-24);
            let mut s = Scratch::default();
            for parts in [1, 2] {
                let mut out = vec![f32::NAN; rows * h * wd];
                conv3x3(
                    &WinogradFilter::new(&w, rows, cin),
                    &x,
                    h,
                    wd,
                    &mut out,
                    parts,
                    &mut s,
                );
                for (k, (&o, &e)) in out.iter().zip(&want).enumerate() {
                    let err = (o as f64 - e).abs();
                    assert!(
                        err <= tol * scale[k],
                        "out[{k}] {o} vs {e}: {err:e} > {:e}",
                        tol * scale[k]
                    );
                }
            }
            // The adjoint: <conv(x), z> = <x, adjoint(z)> for a random z, each side in f64
            // from the f32 outputs; the discrepancy is bounded by the two error bounds.
            let mut z = vec![0.0f32; rows * h * wd];
            rng.fill_normal(&mut z);
            let mut out = vec![0.0f32; rows * h * wd];
            conv3x3(
                &WinogradFilter::new(&w, rows, cin),
                &x,
                h,
                wd,
                &mut out,
                1,
                &mut s,
            );
            let mut dx = vec![0.0f32; cin * h * wd];
            conv3x3(
                &WinogradFilter::adjoint(&w, rows, cin),
                &z,
                h,
                wd,
                &mut dx,
                1,
                &mut s,
            );
            let lhs: f64 = out.iter().zip(&z).map(|(&a, &b)| a as f64 * b as f64).sum();
            let rhs: f64 = dx.iter().zip(&x).map(|(&a, &b)| a as f64 * b as f64).sum();
            // Build the adjoint's kernels explicitly to get its error scale.
            let mut wt = vec![0.0f32; rows * cin * 9];
            for o in 0..rows {
                for c in 0..cin {
                    for i in 0..9 {
                        wt[(c * rows + o) * 9 + i] = w[(o * cin + c) * 9 + 8 - i];
                    }
                }
            }
            let sa = abs_scale(&w, &x, rows, cin, h, wd);
            let sb = abs_scale(&wt, &z, cin, rows, h, wd);
            let bound: f64 = sa
                .iter()
                .zip(&z)
                .map(|(&s, &b)| tol * s * b.abs() as f64)
                .sum::<f64>()
                + sb.iter()
                    .zip(&x)
                    .map(|(&s, &b)| (rows + 12) as f64 * 2f64.powi(-24) * s * b.abs() as f64)
                    .sum::<f64>();
            assert!(
                (lhs - rhs).abs() <= bound,
                "adjoint: {lhs} vs {rhs}, bound {bound:e}"
            );
            // And the adjoint is not trivially consistent: it matches the direct transpose.
            let want_dx = direct(&wt, &z, cin, rows, h, wd);
            for (k, (&o, &e)) in dx.iter().zip(&want_dx).enumerate() {
                let err = (o as f64 - e).abs();
                assert!(
                    err <= (rows + 12) as f64 * 2f64.powi(-24) * sb[k],
                    "dx[{k}] {o} vs {e}"
                );
            }
        }
    }
}
