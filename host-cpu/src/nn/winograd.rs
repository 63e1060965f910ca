//! Winograd F(4x4, 3x3) for the 3x3 convolutions (stride 1, zero padding 1): each 4x4 output
//! tile is `A^T [(G g G^T) . (B^T d B)] A` for the 6x6 input tile `d` around it (Lavin's
//! interpolation points 0, 1, -1, 2, -2 and infinity), so the sum over input channels becomes
//! 36 independent products ([rows, cin] x [cin, tiles], one per position of the 6x6
//! transformed tile) with 36 multiplies per 16 outputs instead of 144 (4x fewer). Used (on
//! images large enough, [`suits`]) for the gated convolutions' forward pass and for their
//! input gradient (a 3x3 convolution with the kernels flipped and the channel axes swapped);
//! im2col remains the reference and serves the other convolutions and the weight gradient.
//!
//! The products have few columns (4 to 49 tiles for one image of the spec network), where a
//! packing GEMM spends as long packing the filter as multiplying; they run instead on a
//! register-blocked kernel of this module that reads the filter in the panel layout it was
//! transformed into (kept between calls, `filter_cache`) and the transformed input
//! channels-last.
//!
//! Rounding: every output is a chain of at most 3 roundings per one-dimensional transform
//! (two per tile transform, in each of the filter, input and output stages), one per product
//! and the channel sum; the tests bound the error by that count times the same algorithm run
//! on absolute values.

use super::group_norm::{norm_silu, SiluNormConstants};
use super::silu::sigmoid;
use super::{simd, team, transpose};

/// Side of a transformed tile.
const S: usize = 6;
/// Positions in a transformed 6x6 tile.
const P: usize = S * S;
/// Side of an output tile.
const TILE: usize = 4;

/// Smallest image side that goes through Winograd.
const MIN_SIDE: usize = 7;

/// Whether a k x k convolution of an h x w image to `rows` output rows (a gated convolution's
/// forward pass: 2 cout; its input gradient: cin), summing over `depth` channels (cin;
/// 2 cout), goes through Winograd: k = 3, both sides at least [`MIN_SIDE`] (every 3x3
/// convolution of the spec network: 28, 14 and 7), at least [`MIN_DEPTH`] channels and at
/// least one whole panel of rows. Fewer rows would be mostly padding rows in the kernel (`out_conv`,
/// 2 rows for one image channel, would cost twice im2col's multiplies), and the last layer
/// then keeps im2col's smaller rounding error, which reaches F undamped. Measured
/// on this 2-core Zen 4, CPU time of one thread, the spec network against im2col
/// everywhere: Winograd down to 28 x 28 0.92, to 14 x 14 0.83, to 7 x 7 0.84 for one image
/// (7 x 7 has 2 x 2 tiles of which a quarter of the outputs are padding), and a training
/// step's forward and backward pass at batch 64 0.92, 0.83, 0.77. The choice depends on the
/// layer and image size only, never on the batch, so one image alone computes what it
/// computes inside a batch.
pub(crate) fn suits(k: usize, h: usize, w: usize, rows: usize, depth: usize) -> bool {
    k == 3 && h.min(w) >= MIN_SIDE && rows >= PANEL && depth >= MIN_DEPTH
}

/// Fewest channels summed over (the convolution's input channels) for Winograd: its
/// products save multiplies in proportion to them, while the output transform costs as much
/// per output whatever they are. `in_conv` (2 C = 2 channels for gray images) at 28 x 28, one
/// image on this 2-core Zen 4 (medians of 21 x 100 calls, three alternating runs): 104-107 us
/// through Winograd and 43-44 us through im2col on one thread, 117-132 and 37-38 us on two.
const MIN_DEPTH: usize = 8;

/// A 3x3 convolution's filters for Winograd's products: the kernels' taps in panels of
/// [`PANEL`] rows (the rows padded with zero kernels to a whole panel), tap e of row o and
/// input channel c at `taps[((o / PANEL cin + c) 9 + e) PANEL + o % PANEL]`, and for
/// [`WinogradFilter::product`] (one position at a time) also their transforms
/// `(G g_oc G^T)[xi]` at `u[((xi panels + o / PANEL) cin + c) PANEL + o % PANEL]`.
///
/// [`WinogradFilter::products`] transforms one panel at a time (two with AVX-512, whose
/// products take panels in pairs) into a scratch of its thread (295 KB a panel at most, 36 x
/// 128 channels x 16 rows) and runs every position's products on it
/// before the next: the transformed filters of the spec network are 15.3 MB, four times its
/// 3x3 kernels, and do not stay in this 2-core VM's share of the last-level cache from one
/// pass to the next; the taps are a quarter of that (3.8 MB). Measured for 128 rows, 128 channels and 16
/// tiles (a 14 x 14 layer), one thread: 179 us a product when the transformed filters of
/// at most 4 such layers take turns (9.4 MB), 310-375 us when 8 to 24 do (19-57 MB).
#[derive(Debug, Clone)]
pub(crate) struct WinogradFilter {
    rows: usize,
    cin: usize,
    taps: Vec<f32>,
    /// The whole transform, for [`WinogradFilter::product`] (empty unless built `whole`).
    u: Vec<f32>,
}

/// Layers of at most this many tiles (7 x 7 and smaller) keep their whole transform even for
/// one image, when the products would otherwise transform their panels on the fly: over
/// 4 tiles, a panel's transform (about 3 ns a row and channel) costs as much as its
/// products (36 x 4 multiply-adds), and the spec network's 7 x 7 layers hold 8.3 MB of
/// transformed filters, which a pass reads once. Interleaved pairs of 150-call restorations,
/// taps everywhere against whole at 7 x 7: median ratio 1.04-1.07 in the second's favour
/// (10 and 12 pairs, both in the VM's slow mode, 3.2-3.5 ms); whole at 14 x 14 as well
/// (another 5.3 MB): 0.95 (8 pairs, fast mode), worse; whole at 28 x 28 as well: 0.98.
pub(crate) const WHOLE_TILES: usize = 4;

/// Rows per panel of the filter: two AVX2 registers, one AVX-512 register.
const PANEL: usize = 16;

/// Tiles per register block of the products' kernel (2 x 6 accumulators).
const TB: usize = 6;

/// `rows` rounded up to whole panels: the row stride of the products.
pub(crate) fn padded(rows: usize) -> usize {
    rows.div_ceil(PANEL) * PANEL
}

/// 1/6 and 1/24 rounded to f32 (the filter transform's only inexact coefficients).
const SIXTH: f32 = 1.0 / 6.0;
const TWENTYFOURTH: f32 = 1.0 / 24.0;

/// `f` lane by lane over N lanes (a loop the compiler turns into one vector operation: 8
/// lanes an AVX2 register, 16 an AVX-512 one).
#[inline(always)]
fn lanes<const N: usize>(f: impl Fn(usize) -> f32) -> [f32; N] {
    let mut o = [0.0f32; N];
    for (l, ol) in o.iter_mut().enumerate() {
        *ol = f(l);
    }
    o
}

/// `G (a, b, c)^T` with G = [[1/4, 0, 0], [-1/6, -1/6, -1/6], [-1/6, 1/6, -1/6],
/// [1/24, 1/12, 1/6], [1/24, -1/12, 1/6], [0, 0, 1]] across N lanes, each step one vector
/// operation (the same operations on every lane, whatever the path: the same bits). The
/// values are those of `a + 4 c`, `-(s + b) / 6`, `(t + 2 b) / 24` with one rounding per
/// step; 4 c and 2 b are exact, so the fused multiply-adds round as the separate additions
/// would (unless 4 c overflows), and `x (-1/6)` is `-(x / 6)` exactly.
#[inline(always)]
fn g_lanes<const N: usize>(a: [f32; N], b: [f32; N], c: [f32; N]) -> [[f32; N]; S] {
    let s: [f32; N] = lanes(|l| a[l] + c[l]);
    let t: [f32; N] = lanes(|l| c[l].mul_add(4.0, a[l]));
    [
        lanes(|l| 0.25 * a[l]),
        lanes(|l| (s[l] + b[l]) * -SIXTH),
        lanes(|l| (s[l] - b[l]) * -SIXTH),
        lanes(|l| b[l].mul_add(2.0, t[l]) * TWENTYFOURTH),
        lanes(|l| b[l].mul_add(-2.0, t[l]) * TWENTYFOURTH),
        c,
    ]
}

/// [`WinogradFilter::panel_transform`] of one panel's `taps` (`[cin][9][PANEL]`), N of its
/// rows at a time, each value one register: G down each column of a kernel, then along each
/// row of the result.
#[inline(always)]
fn panel_lanes<const N: usize>(taps: &[f32], u: &mut [f32], stride: usize) {
    for (c, k) in taps.chunks_exact(9 * PANEL).enumerate() {
        for part in 0..PANEL / N {
            let tap = |e: usize| -> [f32; N] {
                let at = e * PANEL + N * part;
                k[at..at + N].try_into().expect("N lanes")
            };
            // cols[b][i] = (G g)[i][b].
            let c0 = g_lanes(tap(0), tap(3), tap(6));
            let c1 = g_lanes(tap(1), tap(4), tap(7));
            let c2 = g_lanes(tap(2), tap(5), tap(8));
            let at = c * PANEL + N * part;
            for i in 0..S {
                let r = g_lanes(c0[i], c1[i], c2[i]);
                for (jj, rv) in r.iter().enumerate() {
                    let o = (S * i + jj) * stride + at;
                    u[o..o + N].copy_from_slice(rv);
                }
            }
        }
    }
}

/// `B^T d` with B^T = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
/// [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]].
#[inline(always)]
fn bt_col(d: [f32; S]) -> [f32; S] {
    let [d0, d1, d2, d3, d4, d5] = d;
    let (e, f) = (d4 - d2, d3 - d1);
    [
        (4.0 * d0 - 5.0 * d2) + d4,
        (d3 + d4) - 4.0 * (d1 + d2),
        (d4 - d3) + 4.0 * (d1 - d2),
        e + 2.0 * f,
        e - 2.0 * f,
        (4.0 * d1 - 5.0 * d3) + d5,
    ]
}

/// The six stretches `src[b ss..b ss + n]`, b < 6 (an array literal, and the destinations
/// below split by hand: no library closure, which, not inlined, would be compiled without
/// AVX2).
#[inline(always)]
fn six(src: &[f32], ss: usize, n: usize) -> [&[f32]; S] {
    [
        &src[..n],
        &src[ss..ss + n],
        &src[2 * ss..2 * ss + n],
        &src[3 * ss..3 * ss + n],
        &src[4 * ss..4 * ss + n],
        &src[5 * ss..5 * ss + n],
    ]
}

/// [`bt_col`] across `n` channels: `dst[k ds + c] = (B^T d)[k]` with `d[b] = src[b ss + c]`.
#[inline(always)]
fn bt_pass(src: &[f32], ss: usize, n: usize, dst: &mut [f32], ds: usize) {
    let [s0, s1, s2, s3, s4, s5] = six(src, ss, n);
    let (d0, rest) = dst.split_at_mut(ds);
    let (d1, rest) = rest.split_at_mut(ds);
    let (d2, rest) = rest.split_at_mut(ds);
    let (d3, rest) = rest.split_at_mut(ds);
    let (d4, d5) = rest.split_at_mut(ds);
    let (d0, d1, d2) = (&mut d0[..n], &mut d1[..n], &mut d2[..n]);
    let (d3, d4, d5) = (&mut d3[..n], &mut d4[..n], &mut d5[..n]);
    for c in 0..n {
        let r = bt_col([s0[c], s1[c], s2[c], s3[c], s4[c], s5[c]]);
        d0[c] = r[0];
        d1[c] = r[1];
        d2[c] = r[2];
        d3[c] = r[3];
        d4[c] = r[4];
        d5[c] = r[5];
    }
}

/// `A^T m` with A^T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
/// [0, 1, -1, 8, -8, 1]].
#[inline(always)]
fn at_col(m: [f32; S]) -> [f32; TILE] {
    let (a, b) = (m[1] + m[2], m[1] - m[2]);
    let (c, d) = (m[3] + m[4], m[3] - m[4]);
    [
        (m[0] + a) + c,
        b + 2.0 * d,
        a + 4.0 * c,
        (b + 8.0 * d) + m[5],
    ]
}

impl WinogradFilter {
    /// The transform of `w` [rows, cin, 3, 3] (row-major).
    #[cfg(test)]
    pub(crate) fn new(w: &[f32], rows: usize, cin: usize) -> Self {
        Self::build(rows, cin, true, |o, c| {
            let g = &w[(o * cin + c) * 9..][..9];
            std::array::from_fn(|i| g[i])
        })
    }

    /// The transform of the adjoint convolution's kernels, `w'[c, o, a, b] = w[o, c, 2-a, 2-b]`
    /// for `w` [rows, cin, 3, 3]: a filter from `rows` channels to `cin` channels that maps
    /// dL/dout to dL/dx (for [`conv3x3`], whole).
    pub(crate) fn adjoint(w: &[f32], rows: usize, cin: usize) -> Self {
        Self::build(cin, rows, true, |c, o| {
            let g = &w[(o * cin + c) * 9..][..9];
            std::array::from_fn(|i| g[8 - i])
        })
    }

    /// The filter of a gated convolution's stacked kernels `[w; g]`, each [cout, cin, 3, 3]
    /// (row-major): rows 0..cout are `w`'s output channels, cout..2 cout `g`'s.
    /// Rows in groups of [`gated_group`] channels, each group's main rows followed by its
    /// gate rows ([`gated_row`]), so that a block of whole groups is one run of rows. Built
    /// `whole` for products over many tiles (a batch: each value of the transform then
    /// serves every group of images), else taps only.
    pub(crate) fn gated(w: &[f32], g: &[f32], cout: usize, cin: usize, whole: bool) -> Self {
        assert_eq!(w.len(), cout * cin * 9, "winograd: main kernel size");
        assert_eq!(g.len(), cout * cin * 9, "winograd: gate kernel size");
        let grp = gated_group(cout);
        Self::build(2 * cout, cin, whole, |row, c| {
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

    /// The taps of `kernel(row, input channel)` in panels and, when `whole`, every panel's
    /// transform.
    fn build(
        rows: usize,
        cin: usize,
        whole: bool,
        kernel: impl Fn(usize, usize) -> [f32; 9],
    ) -> Self {
        let panels = padded(rows) / PANEL;
        let mut taps = vec![0.0f32; panels * cin * 9 * PANEL];
        for o in 0..rows {
            for c in 0..cin {
                let k = kernel(o, c);
                let at = (o / PANEL * cin + c) * 9 * PANEL + o % PANEL;
                for (e, &v) in k.iter().enumerate() {
                    taps[at + e * PANEL] = v;
                }
            }
        }
        let mut f = WinogradFilter {
            rows,
            cin,
            taps,
            u: Vec::new(),
        };
        if whole {
            let plen = panels * cin * PANEL;
            let mut u = vec![0.0f32; P * plen];
            for p in 0..panels {
                f.panel_transform(p, &mut u[p * cin * PANEL..], plen);
            }
            f.u = u;
        }
        f
    }

    /// `(G g G^T)[xi]` of panel `p`'s kernels into `u[xi stride + c PANEL + l]` (row
    /// p PANEL + l, input channel c): G down each column of the kernel, then along each row
    /// of the result, every step across the panel's rows at once (vector lanes).
    fn panel_transform(&self, p: usize, u: &mut [f32], stride: usize) {
        let cin = self.cin;
        let taps = &self.taps[p * cin * 9 * PANEL..][..cin * 9 * PANEL];
        assert!(
            u.len() >= (P - 1) * stride + cin * PANEL,
            "winograd: panel scratch"
        );
        // A whole panel per register where the CPU has AVX-512 (half the instructions),
        // else half a panel.
        if simd::wide() {
            simd::dispatch_wide(
                #[inline(always)]
                || panel_lanes::<PANEL>(taps, u, stride),
            )
        } else {
            simd::dispatch(
                #[inline(always)]
                || panel_lanes::<8>(taps, u, stride),
            )
        }
    }

    /// The products of the output channels `rows` (a range of this filter's rows starting
    /// at a whole panel) at every position: `m[xi]` [rows.len(), t] `= u[xi][rows]` [., cin]
    /// `v[., xi, .]^T` [cin, t], with `v` [t, 36, cin] the transformed input
    /// ([`input_transform`], `t` tiles),
    /// stored column-major with the rows padded to whole panels: the value of row o and tile
    /// k at `m[(xi t + k) padded + o]` ([`product_len`] values). Each value is one chain of
    /// fused multiply-adds over the input channels in order, whatever the block of rows or
    /// tiles it is computed in. From the whole transform where built, else panel by panel:
    /// its transform into this thread's scratch, then every position's products on it.
    pub(crate) fn products(
        &self,
        rows: std::ops::Range<usize>,
        v: &[f32],
        t: usize,
        m: &mut [f32],
    ) {
        let (rp, cin) = (padded(rows.len()), self.cin);
        assert!(
            rows.start.is_multiple_of(PANEL) && rows.end <= self.rows,
            "winograd: rows"
        );
        assert_eq!(m.len(), P * rp * t, "winograd: products size");
        assert_eq!(v.len(), P * t * cin, "winograd: transformed input size");
        if !self.u.is_empty() {
            for (xi, mx) in m.chunks_exact_mut(rp * t).enumerate() {
                self.product(xi, rows.clone(), v, t, mx);
            }
            return;
        }
        PANEL_U.with_borrow_mut(|u| {
            // One cache line more than a position's values between positions: with exactly
            // cin lines (a power of 2), the transform's 36 stores of one channel would all
            // fall into one set of the first-level cache. Two panels' transforms where the
            // products take panels in pairs, the second P stride on.
            let stride = (cin + 1) * PANEL;
            let (panels, pairs) = (rp / PANEL, simd::wide());
            grow(u, if pairs { 2 } else { 1 } * P * stride);
            let mut pp = 0;
            while pp < panels {
                let two = pairs && pp + 1 < panels;
                self.panel_transform(rows.start / PANEL + pp, u, stride);
                if two {
                    let second = &mut u[P * stride..];
                    self.panel_transform(rows.start / PANEL + pp + 1, second, stride);
                }
                for (xi, mx) in m.chunks_exact_mut(rp * t).enumerate() {
                    let up = &u[xi * stride..][..cin * PANEL];
                    if two {
                        let up2 = &u[(P + xi) * stride..][..cin * PANEL];
                        panel_products([up, up2], v, xi, cin, t, mx, rp, pp * PANEL);
                    } else {
                        panel_products([up], v, xi, cin, t, mx, rp, pp * PANEL);
                    }
                }
                pp += if two { 2 } else { 1 };
            }
        });
    }

    /// Position `xi` of [`WinogradFilter::products`] from the whole transform (a filter
    /// built `whole`), panel by panel (in pairs with AVX-512).
    fn product(&self, xi: usize, rows: std::ops::Range<usize>, v: &[f32], t: usize, m: &mut [f32]) {
        let cin = self.cin;
        let plen = padded(self.rows) * cin;
        let rp = padded(rows.len());
        assert_eq!(self.u.len(), P * plen, "winograd: a whole transform");
        assert_eq!(v.len(), P * t * cin, "winograd: transformed input size");
        let (panels, pairs) = (rp / PANEL, simd::wide());
        let at = |p: usize| xi * plen + (rows.start / PANEL + p) * cin * PANEL;
        let mut p = 0;
        while p < panels {
            let up = &self.u[at(p)..][..cin * PANEL];
            if pairs && p + 1 < panels {
                let up2 = &self.u[at(p + 1)..][..cin * PANEL];
                panel_products([up, up2], v, xi, cin, t, m, rp, p * PANEL);
                p += 2;
            } else {
                panel_products([up], v, xi, cin, t, m, rp, p * PANEL);
                p += 1;
            }
        }
    }
}

/// The products of `PANELS` consecutive panels at position `xi` (`ups` their transformed
/// filters, [cin, PANEL] each), rows r0..r0 + PANELS PANEL, all `t` tiles, into
/// `m[k rs + r0 + l]`, in blocks of tiles ([`tile_blocks`]). Two panels at once only with
/// AVX-512 ([`simd::wide`]): each tile's 32 accumulators are then two registers, and each
/// value of `v` loaded serves twice the rows.
#[allow(clippy::too_many_arguments)]
fn panel_products<const PANELS: usize>(
    ups: [&[f32]; PANELS],
    v: &[f32],
    xi: usize,
    cin: usize,
    t: usize,
    m: &mut [f32],
    rs: usize,
    r0: usize,
) {
    simd::dispatch_wide_if(
        PANELS > 1,
        #[inline(always)]
        || {
            tile_blocks(
                t,
                #[inline(always)]
                |k0, nt| {
                    let args = (ups, v, xi, cin, k0, &mut *m, rs, r0);
                    match nt {
                        6 => panel_block::<6, PANELS>(args),
                        5 => panel_block::<5, PANELS>(args),
                        4 => panel_block::<4, PANELS>(args),
                        3 => panel_block::<3, PANELS>(args),
                        2 => panel_block::<2, PANELS>(args),
                        _ => panel_block::<1, PANELS>(args),
                    }
                },
            )
        },
    )
}

/// `f(k0, nt)` for the blocks of the products' tiles 0..t: at most [`TB`] tiles each, as even
/// as possible (49 tiles: 4 of 6 and 5 of 5, not 8 of 6 and 1 of 1, whose 2 accumulators
/// would wait on the FMA latency). Inlined with `f` into its caller's SIMD dispatch.
#[inline(always)]
fn tile_blocks(t: usize, mut f: impl FnMut(usize, usize)) {
    let blocks = t.div_ceil(TB);
    let mut k0 = 0;
    for b in 0..blocks {
        let nt = t / blocks + usize::from(b < t % blocks);
        f(k0, nt);
        k0 += nt;
    }
}

thread_local! {
    /// [`WinogradFilter::products`]' transformed panels, kept between calls.
    static PANEL_U: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `m[(k0 + j) rs + r0 + p PANEL + l] = sum_c ups[p][c PANEL + l] v[((k0 + j) 36 + xi) cin + c]`
/// for the NT tiles k0.. and `PANELS` panels of rows (l < PANEL): NT x PANELS x 16 register
/// lanes of accumulators, fused multiply-adds over c in order (the same bits on the SIMD
/// paths as `mul_add` gives on any other, for any number of panels at once).
#[inline(always)]
#[allow(clippy::type_complexity)]
fn panel_block<const NT: usize, const PANELS: usize>(
    (ups, v, xi, cin, k0, m, rs, r0): (
        [&[f32]; PANELS],
        &[f32],
        usize,
        usize,
        usize,
        &mut [f32],
        usize,
        usize,
    ),
) {
    let vt: [&[f32]; NT] = std::array::from_fn(|j| &v[((k0 + j) * P + xi) * cin..][..cin]);
    let ups: [&[f32]; PANELS] = ups.map(|u| &u[..cin * PANEL]);
    let mut acc = [[[0.0f32; PANEL]; PANELS]; NT];
    for c in 0..cin {
        let mut u = [[0.0f32; PANEL]; PANELS];
        for (ur, up) in u.iter_mut().zip(&ups) {
            ur.copy_from_slice(&up[c * PANEL..(c + 1) * PANEL]);
        }
        for (a, vj) in acc.iter_mut().zip(&vt) {
            let b = vj[c];
            for (ap, up) in a.iter_mut().zip(&u) {
                for (al, &ul) in ap.iter_mut().zip(up) {
                    *al = ul.mul_add(b, *al);
                }
            }
        }
    }
    for (j, a) in acc.iter().enumerate() {
        for (p, ap) in a.iter().enumerate() {
            m[(k0 + j) * rs + r0 + p * PANEL..][..PANEL].copy_from_slice(ap);
        }
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

/// Reusable buffers of one worker: the transformed input `v` [tiles, 36, cin] and the
/// products `m` [36, tiles, padded rows].
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
        let chunks = data.chunks_mut(len).enumerate().collect();
        team::for_each_init(chunks, init, |b, (i, c)| f(b, i, c));
    } else {
        let mut b = init();
        data.chunks_mut(len)
            .enumerate()
            .for_each(|(i, c)| f(&mut b, i, c));
    }
}

/// `out [rows, h, w] = conv3x3(x [cin, h, w], filter)` for one sample, zero padding 1. With
/// `parts > 1` each stage (input transform by channel, the 36 GEMMs, output transform by
/// blocks of channels) is shared out across the workers.
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
    let rp = padded(rows);
    grow(&mut s.m, P * rp * t);
    input_transform(x, cin, h, w, &mut s.v[..P * cin * t], par, None);
    let v = &s.v[..P * cin * t];
    for_chunks(
        &mut s.m[..P * rp * t],
        rp * t,
        par,
        || (),
        |_, xi, mx| f.product(xi, 0..rows, v, t, mx),
    );
    let m = &s.m[..P * rp * t];
    let hw = h * w;
    let blk = rows.div_ceil(parts.max(1));
    for_chunks(
        out,
        blk * hw,
        par,
        || vec![0.0f32; output_buf_len(blk)],
        |buf, j, ob| {
            let mut outs: Vec<&mut [f32]> = ob.chunks_exact_mut(hw).collect();
            let r0 = j * blk;
            output_transform(m, rp, r0..r0 + outs.len(), 0..t, t, h, w, &mut outs, buf);
        },
    );
}

/// Number of 4x4 output tiles of an h x w image.
pub(crate) fn tiles(h: usize, w: usize) -> usize {
    h.div_ceil(TILE) * w.div_ceil(TILE)
}

/// Length of the transformed input of `cin` channels, [`input_transform`]'s `v`.
pub(crate) fn input_len(cin: usize, h: usize, w: usize) -> usize {
    P * cin * tiles(h, w)
}

/// Length of the products of `rows` output channels, [`WinogradFilter::products`]'s `m`.
pub(crate) fn product_len(rows: usize, h: usize, w: usize) -> usize {
    P * padded(rows) * tiles(h, w)
}

/// `buf.len() >= len`, growing (zero-filled) only when it is shorter.
pub(crate) fn grow(buf: &mut Vec<f32>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
}

/// `B^T d B` of every 6x6 input tile of `x` [cin, h, w] (zero padding 1) into `v` [tiles,
/// 36, cin], tiles shared out across the workers when `par`.
///
/// The image is first laid out channels-last with its zero border (`xp` [4 th + 2, 4 tw + 2,
/// cin]), so that every value of a tile is a stretch of `cin` channels: both passes of B^T
/// (along the tile's rows, then down its columns) run across the channels at once, and each
/// position of a transformed tile is written as one stretch.
pub(crate) fn input_transform(
    x: &[f32],
    cin: usize,
    h: usize,
    w: usize,
    v: &mut [f32],
    par: bool,
    norm: Option<&[SiluNormConstants]>,
) {
    assert!(
        norm.is_none_or(|k| k.len() == cin),
        "winograd: normalisation constants"
    );
    assert_eq!(x.len(), cin * h * w, "winograd: input size");
    assert_eq!(
        v.len(),
        input_len(cin, h, w),
        "winograd: transformed input size"
    );
    // The normalisation's constants channel by channel, one array each.
    let soa: Option<[Vec<f32>; 4]> =
        norm.map(|k| std::array::from_fn(|i| k.iter().map(|kc| kc[i]).collect()));
    let (th, tw) = (h.div_ceil(TILE), w.div_ceil(TILE));
    let wp = TILE * tw + 2;
    let len = (TILE * th + 2) * wp * cin;
    let mut xp = PADDED.with_borrow_mut(std::mem::take);
    grow(&mut xp, len);
    // Row by row of the padded image (shared out across the workers when `par`).
    for_chunks(
        &mut xp[..len],
        wp * cin,
        par,
        || (),
        |_, yp, dst| {
            simd::dispatch_wide(
                #[inline(always)]
                || {
                    dst.fill(0.0);
                    if (1..=h).contains(&yp) {
                        let y = yp - 1;
                        lay_out_row(x, cin, h, w, y, &mut dst[cin..(w + 1) * cin]);
                        // Normalised where laid out, across the channels (a loop that
                        // vectorises, where a row of one channel is short).
                        if let Some([m, r, g, b]) = &soa {
                            for px in dst[cin..(w + 1) * cin].chunks_exact_mut(cin) {
                                let ks = m.iter().zip(r).zip(g).zip(b);
                                for (v, (((&m, &r), &g), &b)) in px.iter_mut().zip(ks) {
                                    *v = norm_silu(*v, &[m, r, g, b]);
                                }
                            }
                        }
                    }
                },
            )
        },
    );
    let xp_ref = &xp[..len];
    for_chunks(
        v,
        P * cin,
        par,
        || vec![0.0f32; P * cin],
        |tmp, k, vk| {
            let (ty, tx) = (k / tw, k % tw);
            simd::dispatch_wide(
                #[inline(always)]
                || {
                    // Along the rows: tmp[(6 a + j) cin + c] = (d_a B)[j].
                    // (Through `bt_pass`, whose loop calls no library closure: one not
                    // inlined would be compiled without AVX2.)
                    for a in 0..S {
                        let base = ((TILE * ty + a) * wp + TILE * tx) * cin;
                        let src = &xp_ref[base..base + S * cin];
                        let out = &mut tmp[S * a * cin..S * (a + 1) * cin];
                        bt_pass(src, cin, cin, out, cin);
                    }
                    // Down the columns: v[(6 i + j) cin + c] = (B^T tmp_j)[i].
                    for j in 0..S {
                        bt_pass(&tmp[j * cin..], S * cin, cin, &mut vk[j * cin..], S * cin);
                    }
                },
            )
        },
    );
    PADDED.with_borrow_mut(|slot| {
        if slot.len() < xp.len() {
            *slot = xp;
        }
    });
}

/// Row `y` of `x` [cin, h, w] channels-last: `dst[xx cin + c] = x[c][y][xx]`, in 8 x 8
/// blocks (channels by pixels) where whole, one value at a time at the edges.
#[inline(always)]
fn lay_out_row(x: &[f32], cin: usize, h: usize, w: usize, y: usize, dst: &mut [f32]) {
    let hw = h * w;
    let (cb, xb) = (cin / 8 * 8, w / 8 * 8);
    for c0 in (0..cb).step_by(8) {
        for x0 in (0..xb).step_by(8) {
            let src = &x[c0 * hw + y * w + x0..];
            transpose::block8(src, hw, &mut dst[x0 * cin + c0..], cin);
        }
    }
    for (c, xc) in x.chunks_exact(hw).enumerate() {
        let row = &xc[y * w..(y + 1) * w];
        let xs = if c < cb { xb } else { 0 };
        for (xx, &val) in row.iter().enumerate().skip(xs) {
            dst[xx * cin + c] = val;
        }
    }
}

thread_local! {
    /// [`input_transform`]'s channels-last padded image, kept between calls.
    static PADDED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Length of [`output_transform`]'s scratch for blocks of `rows` output channels.
pub(crate) fn output_buf_len(rows: usize) -> usize {
    (4 * S + TILE * TILE) * rows
}

/// `A^T m A` of the tiles `k` of one image (of the `tt` tiles in `m`) for the output
/// channels `r` of the products `m` [36, tt, rs] (column-major with row stride `rs`,
/// [`WinogradFilter::products`]), channel `r.start + o` into `outs[o]` [h, w];
/// `buf` holds [`output_buf_len`]`(r.len())` values. Tile by tile ([`tile_values`]), then
/// the 4x4 tile is written out.
#[allow(clippy::too_many_arguments)]
pub(crate) fn output_transform(
    m: &[f32],
    rs: usize,
    r: std::ops::Range<usize>,
    k: std::ops::Range<usize>,
    tt: usize,
    h: usize,
    w: usize,
    outs: &mut [&mut [f32]],
    buf: &mut [f32],
) {
    let (th, tw) = (h.div_ceil(TILE), w.div_ceil(TILE));
    assert!(k.len() == th * tw && k.end <= tt, "winograd: tiles");
    assert_eq!(m.len(), P * tt * rs, "winograd: products size");
    let nr = r.len();
    assert_eq!(outs.len(), nr, "winograd: output channels");
    assert!(buf.len() >= output_buf_len(nr), "winograd: output scratch");
    simd::dispatch(
        #[inline(always)]
        || {
            let (s, y) = buf.split_at_mut(4 * S * nr);
            for ty in 0..th {
                for tx in 0..tw {
                    let kk = k.start + ty * tw + tx;
                    tile_values(m, rs, r.start, nr, kk, tt, s, y);
                    for p in 0..TILE {
                        let oy = TILE * ty + p;
                        if oy >= h {
                            break;
                        }
                        for q in 0..TILE {
                            let ox = TILE * tx + q;
                            if ox >= w {
                                break;
                            }
                            let yv = &y[(TILE * p + q) * nr..][..nr];
                            for (o, dst) in outs.iter_mut().enumerate() {
                                dst[oy * w + ox] = yv[o];
                            }
                        }
                    }
                }
            }
        },
    )
}

/// `y[(4 p + q) nr + o] = (A^T m A)[p][q]` of tile `kk` for the `nr` rows from `r0` of the
/// products `m` ([`output_transform`]); `s` holds 24 nr values. A^T is applied down the
/// columns then along the rows, each across the rows at once (contiguous stretches).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile_values(
    m: &[f32],
    rs: usize,
    r0: usize,
    nr: usize,
    kk: usize,
    tt: usize,
    s: &mut [f32],
    y: &mut [f32],
) {
    // s[(6 q + i) nr + o] = (m A)[i][q], position 6 i + j of tile kk at (6 i + j) tt rs.
    for i in 0..S {
        let base = (S * i * tt + kk) * rs + r0;
        at_pass(&m[base..], tt * rs, nr, &mut s[i * nr..], S * nr);
    }
    // y[(4 p + q) nr + o] = (A^T (m A))[p][q].
    for q in 0..TILE {
        at_pass(&s[S * q * nr..], nr, nr, &mut y[q * nr..], TILE * nr);
    }
}

/// [`at_col`] across `n` rows: `dst[k ds + o] = (A^T m)[k]` with `m[j] = src[j ss + o]`.
#[inline(always)]
fn at_pass(src: &[f32], ss: usize, n: usize, dst: &mut [f32], ds: usize) {
    let [s0, s1, s2, s3, s4, s5] = six(src, ss, n);
    let (d0, rest) = dst.split_at_mut(ds);
    let (d1, rest) = rest.split_at_mut(ds);
    let (d2, d3) = rest.split_at_mut(ds);
    let (d0, d1, d2, d3) = (&mut d0[..n], &mut d1[..n], &mut d2[..n], &mut d3[..n]);
    for o in 0..n {
        let a = at_col([s0[o], s1[o], s2[o], s3[o], s4[o], s5[o]]);
        d0[o] = a[0];
        d1[o] = a[1];
        d2[o] = a[2];
        d3[o] = a[3];
    }
}

/// Length of [`output_transform_gated`]'s scratch for `cout` output channels.
pub(crate) fn gated_buf_len(cout: usize) -> usize {
    output_buf_len(2 * cout) + 2 * TILE * TILE * cout
}

/// The output stage of a gated convolution when nothing is kept (inference), fused: per
/// tile of one image, `y = A^T m A` of the run's main and gate rows (`grp` main rows then
/// `grp` gate rows per group of channels, [`WinogradFilter::gated`]'s order), then
/// `out = y_main * sigmoid(y_gate) + bias`, `+ add` when given, for the `bias.len()` output
/// channels `out` [cout, h, w]; `buf` holds [`gated_buf_len`] values. These are the
/// operations, in the same order, of [`output_transform`] into zw and zg followed by the
/// gate, so the values are the same bits; zw and zg are never written out.
#[allow(clippy::too_many_arguments)]
pub(crate) fn output_transform_gated(
    m: &[f32],
    rs: usize,
    grp: usize,
    k: std::ops::Range<usize>,
    tt: usize,
    h: usize,
    w: usize,
    out: &mut [f32],
    bias: &[f32],
    add: Option<&[f32]>,
    buf: &mut [f32],
) {
    let (th, tw) = (h.div_ceil(TILE), w.div_ceil(TILE));
    let (cout, hw) = (bias.len(), h * w);
    let nr = 2 * cout;
    assert!(k.len() == th * tw && k.end <= tt, "winograd: tiles");
    assert_eq!(m.len(), P * tt * rs, "winograd: products size");
    assert!(
        grp > 0 && cout.is_multiple_of(grp),
        "winograd: gated groups"
    );
    assert_eq!(out.len(), cout * hw, "winograd: output size");
    assert!(add.is_none_or(|a| a.len() == cout), "winograd: addend size");
    assert!(buf.len() >= gated_buf_len(cout), "winograd: output scratch");
    simd::dispatch_wide(
        #[inline(always)]
        || {
            let (s, rest) = buf.split_at_mut(4 * S * nr);
            let (y, rest) = rest.split_at_mut(TILE * TILE * nr);
            let (a, g) = rest.split_at_mut(TILE * TILE * cout);
            let g = &mut g[..TILE * TILE * cout];
            let bias = &bias[..cout];
            let groups = cout / grp;
            for ty in 0..th {
                for tx in 0..tw {
                    tile_values(m, rs, 0, nr, k.start + ty * tw + tx, tt, s, y);
                    // a and g [(4 p + q) cout + c]: channel c's main and gate values at
                    // (p, q) of the tile, out of the rows' groups into channel order; the
                    // sigmoids then run over all the tile's gate values at once (one long
                    // loop of whole vectors), and the gating over each position's channels.
                    for pos in 0..TILE * TILE {
                        let yv = &y[pos * nr..][..nr];
                        let ap = &mut a[pos * cout..][..cout];
                        let gp = &mut g[pos * cout..][..cout];
                        for gi in 0..groups {
                            let (c0, r0) = (gi * grp, 2 * gi * grp);
                            ap[c0..c0 + grp].copy_from_slice(&yv[r0..r0 + grp]);
                            gp[c0..c0 + grp].copy_from_slice(&yv[r0 + grp..r0 + 2 * grp]);
                        }
                    }
                    for v in g.iter_mut() {
                        *v = sigmoid(*v);
                    }
                    for (ap, gp) in a.chunks_exact_mut(cout).zip(g.chunks_exact(cout)) {
                        for ((d, &gv), &bv) in ap.iter_mut().zip(gp).zip(bias) {
                            *d = *d * gv + bv;
                        }
                        if let Some(add) = add {
                            ap.iter_mut().zip(add).for_each(|(d, &v)| *d += v);
                        }
                    }
                    let ox = TILE * tx;
                    let nq = TILE.min(w - ox);
                    let np = TILE.min(h - TILE * ty);
                    if np == TILE && nq == TILE && cout.is_multiple_of(8) {
                        // Whole tiles: 8 positions (two rows of the tile) by 8 channels at
                        // a time, each channel's two rows of 4 then stored.
                        let mut t8 = [0.0f32; 64];
                        for c0 in (0..cout).step_by(8) {
                            for half in 0..2 {
                                transpose::block8(&a[8 * half * cout + c0..], cout, &mut t8, 8);
                                let r0 = (TILE * ty + 2 * half) * w + ox;
                                for (j, tj) in t8.chunks_exact(8).enumerate() {
                                    let oc = &mut out[(c0 + j) * hw..(c0 + j + 1) * hw];
                                    oc[r0..r0 + TILE].copy_from_slice(&tj[..TILE]);
                                    oc[r0 + w..r0 + w + TILE].copy_from_slice(&tj[TILE..]);
                                }
                            }
                        }
                        continue;
                    }
                    for (c, oc) in out.chunks_exact_mut(hw).enumerate() {
                        for p in 0..np {
                            let row = (TILE * ty + p) * w + ox;
                            let dst = &mut oc[row..row + nq];
                            for (q, d) in dst.iter_mut().enumerate() {
                                *d = a[(TILE * p + q) * cout + c];
                            }
                        }
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

    /// The transforms on their own, by hand: a kernel with a single 144 at the centre is 144
    /// times the identity convolution, so every output is 144 times the input; a kernel of
    /// 144s is 144 times the sum of the 3x3 neighbourhood (worked for a 2x2 image of 1, 2, 3,
    /// 4: every output sees all four, 1440). 144 = 6 * 24 makes every step exact: G's 1/6
    /// and 1/24 then give integers or quarters (e.g. the box kernel's (G g G^T) holds 9,
    /// -18, 10.5, 12.25, 5.25, ...), and the rest adds and scales small integers and quarters
    /// by 1, 2, 4, 5 and 8, all exact in f32, so equality is exact.
    #[test]
    fn identity_and_box_kernels_by_hand() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let mut out = [9.0f32; 4];
        let mut s = Scratch::default();
        let mut centre = [0.0f32; 9];
        centre[4] = 144.0;
        conv3x3(
            &WinogradFilter::new(&centre, 1, 1),
            &x,
            2,
            2,
            &mut out,
            1,
            &mut s,
        );
        assert_eq!(out, x.map(|v| 144.0 * v));
        conv3x3(
            &WinogradFilter::new(&[144.0; 9], 1, 1),
            &x,
            2,
            2,
            &mut out,
            1,
            &mut s,
        );
        assert_eq!(out, [1440.0; 4]);
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
        let (s6, s12, s24) = (1.0 / 6.0, 1.0 / 12.0, 1.0 / 24.0);
        let ga = [
            [0.25, 0.0, 0.0],
            [s6, s6, s6],
            [s6, s6, s6],
            [s24, s12, s6],
            [s24, s12, s6],
            [0.0, 0.0, 1.0],
        ];
        let ba = [
            [4.0, 0.0, 5.0, 0.0, 1.0, 0.0],
            [0.0, 4.0, 4.0, 1.0, 1.0, 0.0],
            [0.0, 4.0, 4.0, 1.0, 1.0, 0.0],
            [0.0, 2.0, 1.0, 2.0, 1.0, 0.0],
            [0.0, 2.0, 1.0, 2.0, 1.0, 0.0],
            [0.0, 4.0, 0.0, 5.0, 0.0, 1.0],
        ];
        let aa = [
            [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
            [0.0, 1.0, 1.0, 2.0, 2.0, 0.0],
            [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
            [0.0, 1.0, 1.0, 8.0, 8.0, 1.0],
        ];
        let (th, tw) = (h.div_ceil(4), wd.div_ceil(4));
        let mut out = vec![0.0f64; rows * h * wd];
        for o in 0..rows {
            for c in 0..cin {
                let g = |a: usize, b: usize| w[((o * cin + c) * 3 + a) * 3 + b].abs() as f64;
                let mut u = [[0.0f64; 6]; 6];
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
                            let (iy, ix) = (4 * ty + a, 4 * tx + b);
                            if iy < 1 || ix < 1 || iy > h || ix > wd {
                                0.0
                            } else {
                                x[(c * h + iy - 1) * wd + ix - 1].abs() as f64
                            }
                        };
                        let mut m = [[0.0f64; 6]; 6];
                        for (i, mi) in m.iter_mut().enumerate() {
                            for (j, mij) in mi.iter_mut().enumerate() {
                                let mut vv = 0.0;
                                for a in 0..6 {
                                    for b in 0..6 {
                                        vv += ba[i][a] * d(a, b) * ba[j][b];
                                    }
                                }
                                *mij = u[i][j] * vv;
                            }
                        }
                        for (p, ap) in aa.iter().enumerate() {
                            for (q, aq) in aa.iter().enumerate() {
                                let (y, xx) = (4 * ty + p, 4 * tx + q);
                                if y >= h || xx >= wd {
                                    continue;
                                }
                                let mut s = 0.0;
                                for i in 0..6 {
                                    for j in 0..6 {
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

    /// Forward and adjoint against the direct f64 convolution on random data, sizes with
    /// partial tiles of every width, one worker and several. Tolerance (first-order forward
    /// error analysis): every computed quantity is a sum of terms whose magnitudes are bounded
    /// by the abs-value evaluation S, and it passes through a chain of at most cin + 21
    /// roundings, each relative 2^-24: the filter transform 8 (per pass of G: two additions,
    /// the product by 1/6 or 1/24 and that coefficient's own rounding), the input transform 6
    /// (per pass of B^T at most three: e.g. 5 d2, 4 d0 - 5 d2, + d4), the product 1, the
    /// channel sum cin (cin - 1 additions, one spare), the output transform 6 (per pass of
    /// A^T at most three). So |err| <= (cin + 21) 2^-24 S.
    #[test]
    fn matches_direct_convolution_within_derived_bound() {
        let mut rng = AmbientRng::new(17);
        for &(rows, cin, h, wd) in &[(5, 3, 7, 7), (4, 6, 8, 6), (3, 2, 5, 9), (9, 4, 14, 11)] {
            let mut w = vec![0.0f32; rows * cin * 9];
            let mut x = vec![0.0f32; cin * h * wd];
            rng.fill_normal(&mut w);
            rng.fill_normal(&mut x);
            let want = direct(&w, &x, rows, cin, h, wd);
            let scale = abs_scale(&w, &x, rows, cin, h, wd);
            let tol = (cin + 21) as f64 * 2f64.powi(-24);
            let mut s = Scratch::default();
            for parts in [1, 2, 3] {
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
                    .map(|(&s, &b)| (rows + 21) as f64 * 2f64.powi(-24) * s * b.abs() as f64)
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
                    err <= (rows + 21) as f64 * 2f64.powi(-24) * sb[k],
                    "dx[{k}] {o} vs {e}"
                );
            }
        }
    }

    /// The products from taps (each panel transformed on the fly into the scratch) are the
    /// bits of the products from the whole transform, which `conv3x3` and the tests above
    /// check against a direct convolution: for the gated row order and a plain filter, row
    /// ranges from the first and a later panel, a part panel of rows, channel counts whose
    /// scratch stride is and is not a power of 2 plus one line, and 1, 5 and 49 tiles.
    #[test]
    fn products_from_taps_are_the_bits_of_the_whole_transform() {
        let mut rng = AmbientRng::new(17);
        for (cout, cin, t) in [(8, 3, 1), (24, 16, 5), (32, 32, 49), (4, 9, 5)] {
            let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal()).collect() };
            let (w, g) = (draw(cout * cin * 9), draw(cout * cin * 9));
            let v = draw(P * t * cin);
            let taps = WinogradFilter::gated(&w, &g, cout, cin, false);
            let whole = WinogradFilter::gated(&w, &g, cout, cin, true);
            assert!(taps.u.is_empty() && !whole.u.is_empty());
            let plain = (
                WinogradFilter::new(&w, cout, cin),
                WinogradFilter {
                    u: Vec::new(),
                    ..WinogradFilter::new(&w, cout, cin)
                },
            );
            let bits = |m: &[f32]| m.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let check = |a: &WinogradFilter, b: &WinogradFilter, r: std::ops::Range<usize>| {
                let len = P * padded(r.len()) * t;
                let (mut ma, mut mb) = (vec![f32::NAN; len], vec![f32::NAN; len]);
                a.products(r.clone(), &v, t, &mut ma);
                b.products(r.clone(), &v, t, &mut mb);
                assert_eq!(
                    bits(&ma),
                    bits(&mb),
                    "{cout} x {cin}, {t} tiles, rows {r:?}"
                );
            };
            check(&whole, &taps, 0..2 * cout);
            check(&plain.0, &plain.1, 0..cout);
            if cout > PANEL {
                check(&whole, &taps, PANEL..2 * cout);
                check(&plain.0, &plain.1, PANEL..cout);
            }
        }
    }
}
