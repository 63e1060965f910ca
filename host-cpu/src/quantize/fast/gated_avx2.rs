//! The gated convolution on a padded map with AVX2: an implicit-im2col int16 GEMM
//! (`madd_epi16` of a broadcast input-channel pair with a packed filter row gives eight output
//! channels' partial sums, exact in i32: `|x - zp| <= 255`, `|w| <= 128`) over [`TILE`] output
//! pixels of a row at once, main and gate filters side by side, then the core's epilogue on
//! eight channels per instruction ([`super::requant_avx2`]; the sigmoid table by `gather`).
//! The integer sums are the core's, reordered (exact: no partial sum can overflow, see
//! `ambient_core::int8::conv::MAX_TAPS`), so the output equals the core's bit for bit.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::gated_layer::{GatedLayer, LANES};
use super::padded::{PaddedGeometry, TILE};

fn check(layer: &GatedLayer, pg: &PaddedGeometry, input: &[i16], out: &[i8]) {
    let g = &layer.geometry;
    assert!(pg.height == g.height && pg.width == g.width && pg.channels == g.in_channels);
    assert!(input.len() >= pg.len() && out.len() == g.output_len());
    assert_eq!(
        layer.packed.len(),
        layer.blocks * g.kernel * g.kernel * pg.stride / 2 * 4 * LANES
    );
}

/// `out` (HWC, `h * w * cout`) `<-` the gated convolution of the padded map `input`; `false`
/// (and nothing written) without AVX2.
pub fn run_avx2(layer: &GatedLayer, pg: &PaddedGeometry, input: &[i16], out: &mut [i8]) -> bool {
    check(layer, pg, input, out);
    #[cfg(target_arch = "x86_64")]
    if super::Isa::Avx2.available() {
        // SAFETY: AVX2 is available; the lengths were checked above.
        unsafe { run(layer, pg, input, out) };
        return true;
    }
    false
}

/// The same with the multiply-accumulate on AVX-512 VNNI; `false` (nothing written) without it.
pub fn run_vnni(layer: &GatedLayer, pg: &PaddedGeometry, input: &[i16], out: &mut [i8]) -> bool {
    check(layer, pg, input, out);
    #[cfg(target_arch = "x86_64")]
    if super::Isa::Avx512Vnni.available() {
        // SAFETY: AVX2, AVX-512F and VNNI are available; the lengths were checked above.
        unsafe { run_512(layer, pg, input, out) };
        return true;
    }
    false
}

/// Offsets (i16) of the taps of output pixel (0, 0) from padded pixel (0, 0) (`k * k` used).
fn tap_offsets(layer: &GatedLayer, pg: &PaddedGeometry) -> [usize; 9] {
    let k = layer.geometry.kernel;
    let first = 1 - k / 2;
    let mut tap_offset = [0usize; 9];
    for ky in 0..k {
        for kx in 0..k {
            tap_offset[ky * k + kx] = ((ky + first) * (pg.width + 2) + kx + first) * pg.stride;
        }
    }
    tap_offset
}

/// Writes the first `width` (at most 8) bytes of `bytes` at `dst`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store_channels(bytes: __m128i, dst: *mut i8, width: usize) {
    if width == LANES {
        _mm_storel_epi64(dst as *mut __m128i, bytes);
    } else {
        let mut tmp = [0i8; 16];
        _mm_storeu_si128(tmp.as_mut_ptr() as *mut __m128i, bytes);
        std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, width);
    }
}

/// The AVX-512 kernel: each packed row (32 i16: main then gate filters of 8 channels) is one
/// 512-bit register, and `vpdpwssd` adds the two products of a broadcast input pair to each
/// of its 16 i32 lanes (main sums in lanes 0..8, gate sums in 8..16), without saturation:
/// the same exact sums as `madd` then `add`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f,avx512vnni")]
unsafe fn run_512(layer: &GatedLayer, pg: &PaddedGeometry, input: &[i16], out: &mut [i8]) {
    let g = &layer.geometry;
    let (cout, stride) = (g.out_channels, pg.stride);
    let pairs = stride / 2;
    let taps = g.kernel * g.kernel;
    let tap_offset = tap_offsets(layer, pg);
    let block_len = taps * pairs * 4 * LANES;
    let ip = input.as_ptr();
    for y in 0..g.height {
        let mut x = 0;
        while x < g.width {
            let n = (g.width - x).min(TILE);
            let base = (y * (g.width + 2) + x) * stride;
            for block in 0..layer.blocks {
                let mut acc = [_mm512_setzero_si512(); TILE];
                let wb = layer.packed.as_ptr().add(block * block_len);
                for (t, &offset) in tap_offset[..taps].iter().enumerate() {
                    let px = ip.add(base + offset);
                    let wt = wb.add(t * pairs * 4 * LANES);
                    for pair in 0..pairs {
                        let w = _mm512_loadu_si512(wt.add(pair * 4 * LANES) as *const _);
                        for (i, a) in acc.iter_mut().enumerate() {
                            let xp = (px.add(i * stride + 2 * pair) as *const i32).read_unaligned();
                            *a = _mm512_dpwssd_epi32(*a, _mm512_set1_epi32(xp), w);
                        }
                    }
                }
                let c0 = block * LANES;
                let width = (cout - c0).min(LANES);
                for (i, a) in acc[..n].iter().enumerate() {
                    let main = _mm512_castsi512_si256(*a);
                    let gate = _mm512_extracti64x4_epi64::<1>(*a);
                    let bytes = epilogue(layer, c0, main, gate);
                    store_channels(
                        bytes,
                        out.as_mut_ptr().add((y * g.width + x + i) * cout + c0),
                        width,
                    );
                }
            }
            x += TILE;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn run(layer: &GatedLayer, pg: &PaddedGeometry, input: &[i16], out: &mut [i8]) {
    let g = &layer.geometry;
    let (cout, stride) = (g.out_channels, pg.stride);
    let pairs = stride / 2;
    let taps = g.kernel * g.kernel;
    let tap_offset = tap_offsets(layer, pg);
    let block_len = taps * pairs * 4 * LANES;
    let ip = input.as_ptr();
    for y in 0..g.height {
        let mut x = 0;
        while x < g.width {
            let n = (g.width - x).min(TILE);
            // Padded pixel (y, x): tap t of output pixel (y, x + i) is at base + offset[t] + i stride.
            let base = (y * (g.width + 2) + x) * stride;
            for block in 0..layer.blocks {
                let mut main = [_mm256_setzero_si256(); TILE];
                let mut gate = [_mm256_setzero_si256(); TILE];
                let wb = layer.packed.as_ptr().add(block * block_len);
                for (t, &offset) in tap_offset[..taps].iter().enumerate() {
                    let px = ip.add(base + offset);
                    let wt = wb.add(t * pairs * 4 * LANES);
                    for pair in 0..pairs {
                        let wm = _mm256_loadu_si256(wt.add(pair * 4 * LANES) as *const __m256i);
                        let wg = _mm256_loadu_si256(
                            wt.add(pair * 4 * LANES + 2 * LANES) as *const __m256i
                        );
                        for i in 0..TILE {
                            let xp = (px.add(i * stride + 2 * pair) as *const i32).read_unaligned();
                            let b = _mm256_set1_epi32(xp);
                            main[i] = _mm256_add_epi32(main[i], _mm256_madd_epi16(b, wm));
                            gate[i] = _mm256_add_epi32(gate[i], _mm256_madd_epi16(b, wg));
                        }
                    }
                }
                let c0 = block * LANES;
                let width = (cout - c0).min(LANES);
                for i in 0..n {
                    let bytes = epilogue(layer, c0, main[i], gate[i]);
                    store_channels(
                        bytes,
                        out.as_mut_ptr().add((y * g.width + x + i) * cout + c0),
                        width,
                    );
                }
            }
            x += TILE;
        }
    }
}

/// The core's gated output for channels `c0..c0 + 8` from their accumulators, as eight bytes.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn epilogue(layer: &GatedLayer, c0: usize, acc_w: __m256i, acc_g: __m256i) -> __m128i {
    use super::requant_avx2::{add_zero_point_to_int8, mbqm, pack_i8, saturating_add};
    let l = &layer.lanes;
    let ld = |v: &Vec<i32>| _mm256_loadu_si256(v.as_ptr().add(c0) as *const __m256i);
    let main = mbqm(
        acc_w,
        ld(&l.main_multiplier),
        ld(&l.main_left),
        ld(&l.main_right),
    );
    let main = _mm256_max_epi32(
        _mm256_min_epi32(main, _mm256_set1_epi32(ambient_core::int8::gated::MAIN_MAX)),
        _mm256_set1_epi32(-ambient_core::int8::gated::MAIN_MAX),
    );
    let gate = mbqm(
        acc_g,
        ld(&l.gate_multiplier),
        ld(&l.gate_left),
        ld(&l.gate_right),
    );
    let gate = add_zero_point_to_int8(gate, _mm256_set1_epi32(layer.gate_zero_point));
    let unit = _mm256_i32gather_epi32::<4>(
        layer.unit.as_ptr(),
        _mm256_add_epi32(gate, _mm256_set1_epi32(128)),
    );
    let product = saturating_add(_mm256_mullo_epi32(main, unit), ld(&l.bias));
    let (left, right) = super::requant_avx2::split_shift(layer.output_shift);
    let scaled = mbqm(
        product,
        _mm256_set1_epi32(layer.output_multiplier),
        _mm256_set1_epi32(left),
        _mm256_set1_epi32(right),
    );
    pack_i8(add_zero_point_to_int8(
        scaled,
        _mm256_set1_epi32(layer.output_zero_point),
    ))
}
