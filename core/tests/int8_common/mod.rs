//! Shared helpers of the int8 tests: random operands and an independent reference
//! convolution (explicitly padded image, plain loops over OHWI weights) in i64.
#![allow(dead_code)] // each test file uses a different subset

use ambient_core::int8::conv::ConvGeometry;
use ambient_core::AmbientRng;

pub fn random_i8(rng: &mut AmbientRng, n: usize) -> Vec<i8> {
    (0..n)
        .map(|_| (rng.below(256) as i32 - 128) as i8)
        .collect()
}

/// Uniform in `[-a, a)`.
pub fn random_f32(rng: &mut AmbientRng, n: usize, a: f32) -> Vec<f32> {
    (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) * a).collect()
}

/// `acc[p][c] = sum over taps of (x - zp) w`, with the image first padded by `k / 2` pixels of
/// value `zp` on every side (so a padded tap contributes `(zp - zp) w = 0` by construction, not
/// by a skipped index), `x` HWC with `cin` channels, `w` OHWI.
pub fn reference_accumulators(g: &ConvGeometry, x: &[i8], zp: i32, w: &[i8]) -> Vec<i64> {
    let (h, wd, cin, cout, k) = (g.height, g.width, g.in_channels, g.out_channels, g.kernel);
    let pad = k / 2;
    let (ph, pw) = (h + 2 * pad, wd + 2 * pad);
    let mut padded = vec![zp as i64; ph * pw * cin];
    for y in 0..h {
        for xx in 0..wd {
            for c in 0..cin {
                padded[((y + pad) * pw + xx + pad) * cin + c] = x[(y * wd + xx) * cin + c] as i64;
            }
        }
    }
    let mut acc = vec![0i64; h * wd * cout];
    for y in 0..h {
        for xx in 0..wd {
            for o in 0..cout {
                let mut s = 0i64;
                for ky in 0..k {
                    for kx in 0..k {
                        for c in 0..cin {
                            let xv = padded[((y + ky) * pw + xx + kx) * cin + c];
                            let wv = w[((o * k + ky) * k + kx) * cin + c] as i64;
                            s += (xv - zp as i64) * wv;
                        }
                    }
                }
                acc[(y * wd + xx) * cout + o] = s;
            }
        }
    }
    acc
}

/// Splits an HWC buffer of `ca + cb` channels into two HWC buffers of `ca` and `cb` channels.
pub fn split_channels(x: &[i8], ca: usize, cb: usize) -> (Vec<i8>, Vec<i8>) {
    let c = ca + cb;
    let mut a = Vec::new();
    let mut b = Vec::new();
    for px in x.chunks_exact(c) {
        a.extend_from_slice(&px[..ca]);
        b.extend_from_slice(&px[ca..]);
    }
    (a, b)
}
