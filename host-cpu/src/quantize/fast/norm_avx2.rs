//! The per-element step of [`super::norm`] on eight channels with AVX2: `d = q - zp` to f32
//! (exact), `(d - mean) k + o` as three single IEEE-754 operations in the core's order,
//! then the core's `roundf(t).clamp(-128, 127) as i8`, rebuilt exactly:
//! - NaN (possible only with extreme parameters) becomes 0, as `NaN as i8` is 0;
//! - clamping before rounding gives the same result as after it (rounding is monotone and
//!   keeps the integers -128 and 127);
//! - rounding half away from zero of `c` in `[-128, 127]` is `trunc(c)` plus the sign of `c`
//!   where `|c - trunc(c)| >= 0.5`; `c - trunc(c)` and the sum are exact in f32 at this size.
//!
//! Then the SiLU table (minus the next convolution's zero point) by `gather`.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::norm::{NormScratch, Parts};
use super::padded::PaddedGeometry;

/// `dst` (padded; border already cleared) `<- table[GN(parts) + 128]`, every pixel; `false`
/// (nothing written) without AVX2.
pub fn apply_map(
    pg: &PaddedGeometry,
    parts: &Parts,
    zp: i32,
    scratch: &NormScratch,
    table: &[i32; 256],
    dst: &mut [i16],
) -> bool {
    let pixels = pg.height * pg.width;
    assert!(parts.a.len() == pixels * parts.ca && parts.b.len() == pixels * parts.cb);
    assert!(dst.len() >= pg.len() && scratch.mean.len() >= parts.ca + parts.cb);
    #[cfg(target_arch = "x86_64")]
    if super::Isa::Avx2.available() {
        // SAFETY: AVX2 is available; lengths checked above.
        unsafe { run(pg, parts, zp, scratch, table, dst) };
        return true;
    }
    let _ = (zp, table);
    false
}

/// The same on one pixel's run of channels `c0..c0 + src.len()` (`dst` as long as `src`);
/// `false` without AVX2.
pub fn apply_run(
    src: &[i8],
    c0: usize,
    zp: i32,
    scratch: &NormScratch,
    table: &[i32; 256],
    dst: &mut [i16],
) -> bool {
    assert!(dst.len() == src.len() && scratch.mean.len() >= c0 + src.len());
    #[cfg(target_arch = "x86_64")]
    if super::Isa::Avx2.available() {
        // SAFETY: AVX2 is available; lengths checked above.
        unsafe { run_channels(src, c0, zp, scratch, table, dst) };
        return true;
    }
    let _ = (zp, table);
    false
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn run(
    pg: &PaddedGeometry,
    parts: &Parts,
    zp: i32,
    scratch: &NormScratch,
    table: &[i32; 256],
    dst: &mut [i16],
) {
    let (ca, cb) = (parts.ca, parts.cb);
    for y in 0..pg.height {
        for x in 0..pg.width {
            let p = y * pg.width + x;
            let out = &mut dst[pg.pixel(y, x)..][..ca + cb];
            let (oa, ob) = out.split_at_mut(ca);
            run_channels(&parts.a[p * ca..(p + 1) * ca], 0, zp, scratch, table, oa);
            if cb > 0 {
                run_channels(&parts.b[p * cb..(p + 1) * cb], ca, zp, scratch, table, ob);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn run_channels(
    src: &[i8],
    c0: usize,
    zp: i32,
    scratch: &NormScratch,
    table: &[i32; 256],
    dst: &mut [i16],
) {
    let n = src.len();
    let whole = n - n % 8;
    let zpv = _mm256_set1_epi32(zp);
    let sign = _mm256_set1_ps(-0.0);
    let half = _mm256_set1_ps(0.5);
    let one = _mm256_set1_ps(1.0);
    let (lo, hi) = (_mm256_set1_ps(-128.0), _mm256_set1_ps(127.0));
    for i in (0..whole).step_by(8) {
        let q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(src.as_ptr().add(i) as *const __m128i));
        let d = _mm256_cvtepi32_ps(_mm256_sub_epi32(q, zpv));
        let c = c0 + i;
        let mean = _mm256_loadu_ps(scratch.mean.as_ptr().add(c));
        let k = _mm256_loadu_ps(scratch.scale.as_ptr().add(c));
        let o = _mm256_loadu_ps(scratch.offset.as_ptr().add(c));
        let t = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(d, mean), k), o);
        let t = _mm256_and_ps(t, _mm256_cmp_ps::<_CMP_ORD_Q>(t, t));
        let t = _mm256_min_ps(_mm256_max_ps(t, lo), hi);
        let whole_part = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(t);
        let frac = _mm256_andnot_ps(sign, _mm256_sub_ps(t, whole_part));
        let step = _mm256_or_ps(_mm256_and_ps(t, sign), one);
        let rounded = _mm256_add_ps(
            whole_part,
            _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(frac, half), step),
        );
        let v = _mm256_cvttps_epi32(rounded);
        let s = _mm256_i32gather_epi32::<4>(
            table.as_ptr(),
            _mm256_add_epi32(v, _mm256_set1_epi32(128)),
        );
        let words = _mm_packs_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
        _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut __m128i, words);
    }
    super::norm::apply_portable(
        &src[whole..],
        c0 + whole,
        zp,
        scratch,
        table,
        &mut dst[whole..],
    );
}
