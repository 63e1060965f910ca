//! 8 x 8 blocks of values transposed, for the moves between a planar image (`[channel][pixel]`)
//! and the channels-last layouts of the Winograd stages (its input stage's padded image, its
//! output stage's tiles). A move changes no value, so the results are the same bits on either
//! path. With AVX, one block is eight loads, 24 shuffles and eight stores; a scalar loop of
//! single stores to eight different cache lines took about twice as long (32 channels of a
//! 28 x 28 image laid out channels-last: 7.7 us against 3.7 us on this project's Zen 4 VM).

/// `dst[j ds + i] = src[i ss + j]` for i, j < 8.
#[inline]
pub(crate) fn block8(src: &[f32], ss: usize, dst: &mut [f32], ds: usize) {
    assert!(
        ss >= 8 && src.len() >= 7 * ss + 8,
        "transpose: source block"
    );
    assert!(
        ds >= 8 && dst.len() >= 7 * ds + 8,
        "transpose: destination block"
    );
    #[cfg(target_arch = "x86_64")]
    if super::simd::has_avx() {
        // SAFETY: `block8_avx` needs AVX, which the CPU has (checked just above), and reads
        // and writes only inside the two blocks, whose extents the asserts above check.
        unsafe { block8_avx(src.as_ptr(), ss, dst.as_mut_ptr(), ds) };
        return;
    }
    for i in 0..8 {
        for j in 0..8 {
            dst[j * ds + i] = src[i * ss + j];
        }
    }
}

/// [`block8`] on raw pointers: rows of eight at `src + i ss`, written to `dst + j ds`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn block8_avx(src: *const f32, ss: usize, dst: *mut f32, ds: usize) {
    use std::arch::x86_64::*;
    // SAFETY (every load and store): within the blocks, as the caller guarantees.
    let r: [__m256; 8] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(src.add(i * ss)) });
    // Pairs of rows interleaved, then pairs of pairs, then the 128-bit halves exchanged.
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    let o = [
        _mm256_permute2f128_ps::<0x20>(s0, s4),
        _mm256_permute2f128_ps::<0x20>(s1, s5),
        _mm256_permute2f128_ps::<0x20>(s2, s6),
        _mm256_permute2f128_ps::<0x20>(s3, s7),
        _mm256_permute2f128_ps::<0x31>(s0, s4),
        _mm256_permute2f128_ps::<0x31>(s1, s5),
        _mm256_permute2f128_ps::<0x31>(s2, s6),
        _mm256_permute2f128_ps::<0x31>(s3, s7),
    ];
    for (j, oj) in o.into_iter().enumerate() {
        // SAFETY: as above.
        unsafe { _mm256_storeu_ps(dst.add(j * ds), oj) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each value lands where the definition puts it, on the AVX and the portable path, with
    /// strides larger than the block and values around it left alone.
    #[test]
    fn block_is_the_transpose() {
        let (ss, ds) = (11, 9);
        let src: Vec<f32> = (0..7 * ss + 8).map(|v| v as f32).collect();
        for portable in [false, true] {
            let mut dst = vec![-1.0f32; 7 * ds + 8 + 3];
            if portable {
                crate::nn::simd::portable(|| block8(&src, ss, &mut dst, ds));
            } else {
                block8(&src, ss, &mut dst, ds);
            }
            for (at, &v) in dst.iter().enumerate() {
                let (j, i) = (at / ds, at % ds);
                let want = if i < 8 && j < 8 {
                    (i * ss + j) as f32
                } else {
                    -1.0
                };
                assert_eq!(v, want, "dst[{at}], portable {portable}");
            }
        }
    }
}
