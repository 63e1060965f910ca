//! The core's fixed-point requantization (`ambient_core::int8::requant`) on eight i32 lanes
//! with AVX2, equal to it lane by lane for every input (tests/int8_fast.rs checks it against the
//! scalar on random and extreme values):
//! - `saturating_rounding_doubling_high_mul(a, b)` is `floor((a b + 2^30) / 2^31)` for every
//!   pair but `(i32::MIN, i32::MIN)`: for `a b >= 0` the core's nudge is `2^30` and its
//!   truncating division a floor; for `a b < 0` it truncates `v = a b + 1 - 2^30 < 0`, i.e.
//!   takes `ceil(v / 2^31) = floor((v + 2^31 - 1) / 2^31)`, the same expression. The low 32
//!   bits of the 64-bit floor are those of a logical shift. The one product whose result does
//!   not fit, `MIN * MIN = 2^62`, gives `2^31`, which wraps to `i32::MIN`, and the core
//!   saturates it to `i32::MAX`; no other pair can give `i32::MIN` (the most negative product,
//!   `MIN * MAX`, gives `MIN + 1`), so `MIN` lanes are flipped to `MAX`.
//! - `rounding_divide_by_pot` with per-lane exponents already clamped to `[0, 31]`.
//! - `multiply_by_quantized_multiplier` with its shift split once per channel
//!   ([`split_shift`]) into the left shift (a wrapping multiply by `2^left`, which `sllv` is)
//!   and the right shift.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// A requantization shift as `multiply_by_quantized_multiplier` uses it: the left shift
/// (`min(shift, 31)` when positive, else 0) and the right shift (`-shift`, saturating, when not
/// positive, else 0) clamped to `[0, 31]` as `rounding_divide_by_pot` clamps it.
pub fn split_shift(shift: i32) -> (i32, i32) {
    let left = if shift > 0 { shift.min(31) } else { 0 };
    let right = if shift > 0 { 0 } else { shift.saturating_neg() };
    (left, right.clamp(0, 31))
}

/// `saturating_rounding_doubling_high_mul` lane by lane.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn srdhm(a: __m256i, b: __m256i) -> __m256i {
    let nudge = _mm256_set1_epi64x(1 << 30);
    let even = _mm256_srli_epi64::<31>(_mm256_add_epi64(_mm256_mul_epi32(a, b), nudge));
    let odd_products = _mm256_mul_epi32(_mm256_srli_epi64::<32>(a), _mm256_srli_epi64::<32>(b));
    let odd = _mm256_srli_epi64::<31>(_mm256_add_epi64(odd_products, nudge));
    let r = _mm256_blend_epi32::<0b1010_1010>(even, _mm256_slli_epi64::<32>(odd));
    _mm256_xor_si256(r, _mm256_cmpeq_epi32(r, _mm256_set1_epi32(i32::MIN)))
}

/// `rounding_divide_by_pot(x, e)` lane by lane, `e` in `[0, 31]`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn rounding_divide(x: __m256i, e: __m256i) -> __m256i {
    let one = _mm256_set1_epi32(1);
    let mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, e), one);
    let remainder = _mm256_and_si256(x, mask);
    // (mask >> 1) + (x < 0): cmpgt gives -1 where true.
    let threshold = _mm256_sub_epi32(
        _mm256_srai_epi32::<1>(mask),
        _mm256_cmpgt_epi32(_mm256_setzero_si256(), x),
    );
    _mm256_sub_epi32(
        _mm256_srav_epi32(x, e),
        _mm256_cmpgt_epi32(remainder, threshold),
    )
}

/// `multiply_by_quantized_multiplier(x, m, shift)` lane by lane, with `(left, right) =
/// split_shift(shift)`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn mbqm(x: __m256i, m: __m256i, left: __m256i, right: __m256i) -> __m256i {
    rounding_divide(srdhm(_mm256_sllv_epi32(x, left), m), right)
}

/// `a.saturating_add(b)` lane by lane.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn saturating_add(a: __m256i, b: __m256i) -> __m256i {
    let s = _mm256_add_epi32(a, b);
    // Overflow: a and b share a sign that s does not have.
    let overflow = _mm256_srai_epi32::<31>(_mm256_and_si256(
        _mm256_xor_si256(a, s),
        _mm256_xor_si256(b, s),
    ));
    let saturated = _mm256_xor_si256(_mm256_srai_epi32::<31>(b), _mm256_set1_epi32(i32::MAX));
    _mm256_blendv_epi8(s, saturated, overflow)
}

/// `r.saturating_add(zp).clamp(-128, 127)` lane by lane for an int8 zero point `zp`: equal to
/// `clamp(clamp(r, -1024, 1024) + zp, -128, 127)`, since any `|r| > 1024` lands beyond the
/// int8 range either way, and the sum of two values this small cannot overflow.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn add_zero_point_to_int8(r: __m256i, zp: __m256i) -> __m256i {
    let r = _mm256_max_epi32(
        _mm256_min_epi32(r, _mm256_set1_epi32(1024)),
        _mm256_set1_epi32(-1024),
    );
    let v = _mm256_add_epi32(r, zp);
    _mm256_max_epi32(
        _mm256_min_epi32(v, _mm256_set1_epi32(127)),
        _mm256_set1_epi32(-128),
    )
}

/// Eight i32 lanes already in `[-128, 127]` as eight bytes in the low half of the result.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn pack_i8(v: __m256i) -> __m128i {
    let words = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    _mm_packs_epi16(words, words)
}

/// Test access to the lane functions on plain arrays (`tests/int8_fast.rs`): `f(x, m, shift)`
/// for eight lanes, or `None` without AVX2.
pub mod lanes {
    /// `multiply_by_quantized_multiplier` on eight lanes.
    pub fn multiply_by_quantized_multiplier(
        x: [i32; 8],
        m: [i32; 8],
        shift: [i32; 8],
    ) -> Option<[i32; 8]> {
        #[cfg(target_arch = "x86_64")]
        if super::super::Isa::Avx2.available() {
            let (left, right) = (
                shift.map(|s| super::split_shift(s).0),
                shift.map(|s| super::split_shift(s).1),
            );
            // SAFETY: AVX2 is available (checked above).
            return Some(unsafe { super::mbqm_arrays(x, m, left, right) });
        }
        let _ = (x, m, shift);
        None
    }

    /// `a.saturating_add(b)` on eight lanes.
    pub fn saturating_add(a: [i32; 8], b: [i32; 8]) -> Option<[i32; 8]> {
        #[cfg(target_arch = "x86_64")]
        if super::super::Isa::Avx2.available() {
            // SAFETY: AVX2 is available (checked above).
            return Some(unsafe { super::saturating_add_arrays(a, b) });
        }
        let _ = (a, b);
        None
    }

    /// `r.saturating_add(zp).clamp(-128, 127)` on eight lanes.
    pub fn add_zero_point_to_int8(r: [i32; 8], zp: i32) -> Option<[i32; 8]> {
        #[cfg(target_arch = "x86_64")]
        if super::super::Isa::Avx2.available() {
            // SAFETY: AVX2 is available (checked above).
            return Some(unsafe { super::add_zero_point_arrays(r, zp) });
        }
        let _ = (r, zp);
        None
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn load(v: [i32; 8]) -> __m256i {
    // SAFETY: reads the 32 bytes of `v`.
    unsafe { _mm256_loadu_si256(v.as_ptr() as *const __m256i) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn store(v: __m256i) -> [i32; 8] {
    let mut out = [0i32; 8];
    // SAFETY: writes the 32 bytes of `out`.
    unsafe { _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, v) };
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn mbqm_arrays(x: [i32; 8], m: [i32; 8], left: [i32; 8], right: [i32; 8]) -> [i32; 8] {
    store(mbqm(load(x), load(m), load(left), load(right)))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn saturating_add_arrays(a: [i32; 8], b: [i32; 8]) -> [i32; 8] {
    store(saturating_add(load(a), load(b)))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn add_zero_point_arrays(r: [i32; 8], zp: i32) -> [i32; 8] {
    store(add_zero_point_to_int8(load(r), _mm256_set1_epi32(zp)))
}
