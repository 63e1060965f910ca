//! Direct k x k convolution (stride 1, zero padding k/2) for layers with few output rows,
//! where im2col would write a [cin k k, H W] matrix (900 KB for `out_conv` of the spec network)
//! to multiply it by one or two rows. The input is laid out once with its zero border
//! ([cin, h + 2p, w + 2p]); each output plane is then accumulated at the padded row stride,
//! one fused multiply-add per weight and position, so that every kernel tap is one long
//! contiguous loop over the plane (the loops vectorise), the input channels and then the
//! kernel positions in order.

use super::simd;

/// `out[o] = sum_{c, ky, kx} w[o, c, ky, kx] x[c, y + ky - k/2, x + kx - k/2]` (0 outside the
/// image) for the `rows` kernels `w` [rows, cin, k, k] over one sample `x` [cin, h, w];
/// `out` [rows, h, w]. Each value is one chain of `mul_add` over (c, ky, kx) in order, the
/// taps on the zero border included (they add exact zeros). `scratch` (grown when shorter,
/// kept by the caller between calls) holds the padded input and one accumulator plane,
/// [`scratch_len`] values.
pub(crate) fn conv_direct(
    x: &[f32],
    cin: usize,
    (h, w): (usize, usize),
    k: usize,
    wts: &[f32],
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let (hw, kk) = (h * w, k * k);
    assert_eq!(x.len(), cin * hw, "direct conv: input size");
    assert!(
        k % 2 == 1 && wts.len().is_multiple_of(cin * kk),
        "direct conv: kernel"
    );
    let rows = wts.len() / (cin * kk);
    assert_eq!(out.len(), rows * hw, "direct conv: output size");
    if hw == 0 {
        return;
    }
    let p = k / 2;
    let (hp, wp) = (h + 2 * p, w + 2 * p);
    // Output (y, x) sits at y wp + x of the accumulator; its tap (ky, kx) reads the padded
    // input at that index plus ky wp + kx.
    let span = (h - 1) * wp + w;
    let len = scratch_len(cin, (h, w), k);
    if scratch.len() < len {
        scratch.resize(len, 0.0);
    }
    let (xp, acc) = scratch[..len].split_at_mut(cin * hp * wp);
    xp.fill(0.0);
    for (xpc, xc) in xp.chunks_exact_mut(hp * wp).zip(x.chunks_exact(hw)) {
        for (y, row) in xc.chunks_exact(w).enumerate() {
            xpc[(y + p) * wp + p..][..w].copy_from_slice(row);
        }
    }
    simd::dispatch(
        #[inline(always)]
        || {
            for (o, wo) in out.chunks_exact_mut(hw).zip(wts.chunks_exact(cin * kk)) {
                acc.fill(0.0);
                for (xpc, wc) in xp.chunks_exact(hp * wp).zip(wo.chunks_exact(kk)) {
                    for ky in 0..k {
                        for kx in 0..k {
                            let wv = wc[ky * k + kx];
                            let src = &xpc[ky * wp + kx..][..span];
                            for (a, &s) in acc.iter_mut().zip(src) {
                                *a = wv.mul_add(s, *a);
                            }
                        }
                    }
                }
                for (y, orow) in o.chunks_exact_mut(w).enumerate() {
                    orow.copy_from_slice(&acc[y * wp..y * wp + w]);
                }
            }
        },
    )
}

/// Scratch values [`conv_direct`] needs: the padded input and one accumulator plane.
pub(crate) fn scratch_len(cin: usize, (h, w): (usize, usize), k: usize) -> usize {
    let (hp, wp) = (h + k - 1, w + k - 1);
    cin * hp * wp + h.saturating_sub(1) * wp + w
}

#[cfg(test)]
mod tests {
    use super::*;
    use ambient_core::AmbientRng;

    /// Against the convolution in f64 on odd sizes (border rows and columns on every side),
    /// within the chain's bound: cin k k fused multiply-adds, each rounding once, so at most
    /// (cin k k) 2^-24 times the sum of |w x| (plus f64's own error, negligible); and on the
    /// portable path the same bits.
    #[test]
    fn matches_f64_convolution_within_the_chain_bound() {
        let mut rng = AmbientRng::new(21);
        for &(cin, rows, k, h, w) in &[
            (3, 2, 3, 7, 5),
            (5, 1, 3, 1, 9),
            (2, 3, 1, 4, 4),
            (4, 2, 5, 6, 6),
        ] {
            let mut x = vec![0.0f32; cin * h * w];
            let mut wts = vec![0.0f32; rows * cin * k * k];
            x.iter_mut().for_each(|v| *v = rng.normal());
            wts.iter_mut().for_each(|v| *v = rng.normal());
            let mut out = vec![0.0f32; rows * h * w];
            // Scratch left dirty by a larger call: every value is rewritten before use.
            let mut scratch = vec![f32::NAN; 2 * scratch_len(cin, (h, w), k)];
            conv_direct(&x, cin, (h, w), k, &wts, &mut out, &mut scratch);
            let p = (k / 2) as isize;
            for o in 0..rows {
                for y in 0..h {
                    for xx in 0..w {
                        let (mut sum, mut abs) = (0.0f64, 0.0f64);
                        for c in 0..cin {
                            for ky in 0..k {
                                for kx in 0..k {
                                    let (iy, ix) = (
                                        y as isize + ky as isize - p,
                                        xx as isize + kx as isize - p,
                                    );
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                        continue;
                                    }
                                    let t = wts[((o * cin + c) * k + ky) * k + kx] as f64
                                        * x[(c * h + iy as usize) * w + ix as usize] as f64;
                                    sum += t;
                                    abs += t.abs();
                                }
                            }
                        }
                        let got = out[(o * h + y) * w + xx] as f64;
                        let bound = (cin * k * k) as f64 * abs / 16_777_216.0 + 1e-30;
                        assert!(
                            (got - sum).abs() <= bound,
                            "{cin} {rows} {k} {h}x{w}: {got} vs {sum}"
                        );
                    }
                }
            }
            let mut portable = vec![0.0f32; rows * h * w];
            simd::portable(|| {
                conv_direct(&x, cin, (h, w), k, &wts, &mut portable, &mut Vec::new())
            });
            assert_eq!(portable, out);
        }
    }
}
