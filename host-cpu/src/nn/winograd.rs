//! Winograd F(2x2, 3x3) for the 3x3 convolutions (stride 1, zero padding 1): each 2x2 output
//! tile is `A^T [(G g G^T) . (B^T d B)] A` for the 4x4 input tile `d` around it, so the sum over
//! input channels becomes 16 independent GEMMs ([rows, cin] x [cin, tiles], one per position
//! of the 4x4 transformed tile) with 16 multiplies per 4 outputs instead of 36 (2.25x fewer).
//! Used (on images large enough, [`suits`]) for the gated convolutions' forward pass and for
//! their input gradient (a 3x3 convolution with the kernels flipped and the channel axes
//! swapped); im2col remains the reference and serves the other convolutions and the weight
//! gradient.

use super::gemm::gemm_strided;
use rayon::prelude::*;

/// Positions in a transformed 4x4 tile.
const P: usize = 16;

/// Fewest 2x2 output tiles for which [`suits`] picks Winograd.
const MIN_TILES: usize = 100;

/// Whether a k x k convolution of an h x w image goes through Winograd: k = 3 and at least
/// [`MIN_TILES`] tiles. Smaller images (14 x 14 and 7 x 7 in the spec network) have GEMMs of
/// at most 49 columns, and 7 x 7 wastes 30% on partial tiles: there Winograd measured slower
/// than im2col for one image (split across the workers) and barely faster for a batch of 64
/// (CPU time, this 2-core Zen 4). The choice depends
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

    fn build(rows: usize, cin: usize, kernel: impl Fn(usize, usize) -> [f32; 9]) -> Self {
        // The tiles in (o, c) order, then regrouped by position.
        let tiles: Vec<[f32; P]> = (0..rows * cin)
            .map(|oc| filter_tile(&kernel(oc / cin, oc % cin)))
            .collect();
        let u = (0..P)
            .flat_map(|xi| tiles.iter().map(move |t| t[xi]))
            .collect();
        WinogradFilter { rows, cin, u }
    }
}

/// `G g G^T` for a 3x3 kernel `g` (row-major), G = [[1,0,0],[1/2,1/2,1/2],[1/2,-1/2,1/2],[0,0,1]].
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
    assert_eq!(x.len(), cin * h * w, "winograd: input size");
    assert_eq!(out.len(), rows * h * w, "winograd: output size");
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    let t = th * tw;
    let par = parts > 1;
    s.v.resize(P * cin * t, 0.0);
    s.m.resize(P * rows * t, 0.0);
    // Tile (ty, tx) reads input rows 2 ty - 1 .. 2 ty + 2 and columns 2 tx - 1 .. 2 tx + 2;
    // q holds 4 rows of width pw = 2 tw + 2 with x[.][x] at x + 1 and zeros around.
    let pw = 2 * tw + 2;
    let zeros = vec![0.0f32; w];
    for_chunks(
        &mut s.v,
        P * t,
        par,
        || vec![0.0f32; 4 * pw],
        |q, c, vc| {
            let xc = &x[c * h * w..(c + 1) * h * w];
            for ty in 0..th {
                let r: [&[f32]; 4] = std::array::from_fn(|i| match (2 * ty + i).checked_sub(1) {
                    Some(y) if y < h => &xc[y * w..(y + 1) * w],
                    _ => &zeros[..],
                });
                input_rows(r, pw, q);
                for (i, qi) in q.chunks_exact(pw).enumerate() {
                    let at = |xi: usize| xi * t + ty * tw..xi * t + (ty + 1) * tw;
                    let ev = |tx: usize, j: usize| qi[2 * tx + j];
                    for (tx, v) in vc[at(4 * i)].iter_mut().enumerate() {
                        *v = ev(tx, 0) - ev(tx, 2);
                    }
                    for (tx, v) in vc[at(4 * i + 1)].iter_mut().enumerate() {
                        *v = ev(tx, 1) + ev(tx, 2);
                    }
                    for (tx, v) in vc[at(4 * i + 2)].iter_mut().enumerate() {
                        *v = ev(tx, 2) - ev(tx, 1);
                    }
                    for (tx, v) in vc[at(4 * i + 3)].iter_mut().enumerate() {
                        *v = ev(tx, 1) - ev(tx, 3);
                    }
                }
            }
        },
    );
    // One GEMM per position: m[xi] [rows, t] = u[xi] [rows, cin] v[., xi] [cin, t] (rows of
    // v[., xi] 16 t apart).
    let v = &s.v;
    for_chunks(
        &mut s.m,
        rows * t,
        par,
        || (),
        |_, xi, mx| {
            let ux = &f.u[xi * rows * cin..(xi + 1) * rows * cin];
            gemm_strided(rows, cin, t, ux, &v[xi * t..], P * t, mx);
        },
    );
    let m = &s.m;
    for_chunks(
        out,
        h * w,
        par,
        || vec![0.0f32; 10 * tw],
        |buf, o, oc| {
            for ty in 0..th {
                let mx = |xi: usize| &m[(xi * rows + o) * t + ty * tw..][..tw];
                output_rows(mx, tw, buf, |p, y| {
                    let oy = 2 * ty + p;
                    if oy < h {
                        let row = &mut oc[oy * w..(oy + 1) * w];
                        for (pair, (&a, &b)) in row.chunks_exact_mut(2).zip(y[0].iter().zip(y[1])) {
                            pair[0] = a;
                            pair[1] = b;
                        }
                        if w % 2 == 1 {
                            row[w - 1] = y[0][tw - 1];
                        }
                    }
                });
            }
        },
    );
}

/// `B^T d` for a row of tiles: the 4 input rows `r` (zeros for padding), B^T =
/// [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]] applied down the columns, into the 4 rows of
/// `q` at offset 1 (the padding columns of `q` stay zero).
fn input_rows(r: [&[f32]; 4], pw: usize, q: &mut [f32]) {
    let w = r[0].len();
    let (q0, rest) = q.split_at_mut(pw);
    let (q1, rest) = rest.split_at_mut(pw);
    let (q2, q3) = rest.split_at_mut(pw);
    let (q0, q1, q2, q3) = (
        &mut q0[1..=w],
        &mut q1[1..=w],
        &mut q2[1..=w],
        &mut q3[1..=w],
    );
    for x in 0..w {
        q0[x] = r[0][x] - r[2][x];
        q1[x] = r[1][x] + r[2][x];
        q2[x] = r[2][x] - r[1][x];
        q3[x] = r[1][x] - r[3][x];
    }
}

/// `A^T m A` for a row of tiles, `m(xi)` position `xi` of every tile (`tw` values), with
/// A^T = [[1,1,1,0],[0,1,-1,-1]] applied down the columns, then along the rows; `put(p, y)`
/// receives output row p of the tiles as (even columns, odd columns).
fn output_rows<'a>(
    m: impl Fn(usize) -> &'a [f32],
    tw: usize,
    buf: &mut [f32],
    mut put: impl FnMut(usize, [&[f32]; 2]),
) {
    // s[p][j] = (A^T m)[p][j] for every tile.
    let (s, y) = buf.split_at_mut(8 * tw);
    for j in 0..4 {
        let (m0, m1, m2, m3) = (m(j), m(4 + j), m(8 + j), m(12 + j));
        let (s0, s1) = s[2 * j * tw..(2 * j + 2) * tw].split_at_mut(tw);
        for tx in 0..tw {
            s0[tx] = m0[tx] + m1[tx] + m2[tx];
            s1[tx] = m1[tx] - m2[tx] - m3[tx];
        }
    }
    let (y0, y1) = y[..2 * tw].split_at_mut(tw);
    for p in 0..2 {
        let sj = |j: usize| &s[(2 * j + p) * tw..(2 * j + p + 1) * tw];
        let (a0, a1, a2, a3) = (sj(0), sj(1), sj(2), sj(3));
        for tx in 0..tw {
            y0[tx] = a0[tx] + a1[tx] + a2[tx];
            y1[tx] = a1[tx] - a2[tx] - a3[tx];
        }
        put(p, [y0, y1]);
    }
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
