//! The ResBlock's residual `(h + skip) / sqrt(2)`, TFLite's int8 ADD in place, as the core's
//! `ambient_core::int8::add::add_in_place`: element by element with the core's own
//! `AddParams::add_one` (portable), or eight at a time with AVX2 (the same steps with the
//! lane requantization of [`super::requant_avx2`]: the offsets and the wrapping `<< 20`, two
//! input rescales, their saturating sum, the output rescale and the output offset).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use ambient_core::int8::add::AddParams;

/// `a[i] <- add_one(a[i], b[i])` (`a`, `b` equally long).
pub fn add_in_place(p: &AddParams, isa: super::Isa, a: &mut [i8], b: &[i8]) {
    assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if isa.uses_avx2() && super::Isa::Avx2.available() {
        // SAFETY: AVX2 is available; the lengths are equal.
        unsafe { run(p, a, b) };
        return;
    }
    let _ = isa;
    for (x, &y) in a.iter_mut().zip(b) {
        *x = p.add_one(*x, y);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn run(p: &AddParams, a: &mut [i8], b: &[i8]) {
    use super::requant_avx2::{add_zero_point_to_int8, mbqm, pack_i8, saturating_add, split_shift};
    use ambient_core::int8::add::ADD_LEFT_SHIFT;
    let requant = |r: ambient_core::int8::requant::Requant| {
        let (left, right) = split_shift(r.shift);
        (
            _mm256_set1_epi32(r.multiplier),
            _mm256_set1_epi32(left),
            _mm256_set1_epi32(right),
        )
    };
    let (m1, l1, r1) = requant(p.input1);
    let (m2, l2, r2) = requant(p.input2);
    let (mo, lo, ro) = requant(p.output);
    let (off1, off2) = (
        _mm256_set1_epi32(p.input1_offset),
        _mm256_set1_epi32(p.input2_offset),
    );
    let out_offset = _mm256_set1_epi32(p.output_offset);
    let n = a.len();
    let whole = n - n % 8;
    for i in (0..whole).step_by(8) {
        let pa = a.as_mut_ptr().add(i);
        let x = _mm256_cvtepi8_epi32(_mm_loadl_epi64(pa as *const __m128i));
        let y = _mm256_cvtepi8_epi32(_mm_loadl_epi64(b.as_ptr().add(i) as *const __m128i));
        let s1 = _mm256_slli_epi32::<ADD_LEFT_SHIFT>(_mm256_add_epi32(off1, x));
        let s2 = _mm256_slli_epi32::<ADD_LEFT_SHIFT>(_mm256_add_epi32(off2, y));
        let sum = saturating_add(mbqm(s1, m1, l1, r1), mbqm(s2, m2, l2, r2));
        let raw = mbqm(sum, mo, lo, ro);
        _mm_storel_epi64(
            pa as *mut __m128i,
            pack_i8(add_zero_point_to_int8(raw, out_offset)),
        );
    }
    for (x, &y) in a[whole..].iter_mut().zip(&b[whole..]) {
        *x = p.add_one(*x, y);
    }
}
