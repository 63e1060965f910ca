//! Image quality metrics on [-1, 1] images: PSNR (peak-to-peak range 2, i.e. 255 in u8 units).

/// Mean over images of each image's PSNR in dB; `len` values per image. An exact match counts
/// as 100 dB so that the mean stays finite.
pub fn psnr(reference: &[f32], estimate: &[f32], len: usize) -> f64 {
    assert_eq!(reference.len(), estimate.len(), "psnr: lengths differ");
    assert!(
        len > 0 && reference.len().is_multiple_of(len),
        "psnr: whole images"
    );
    let n = reference.len() / len;
    let mut total = 0.0;
    for i in 0..n {
        let r = &reference[i * len..(i + 1) * len];
        let e = &estimate[i * len..(i + 1) * len];
        let mse = r
            .iter()
            .zip(e)
            .map(|(&a, &b)| {
                let d = (a.clamp(-1.0, 1.0) - b.clamp(-1.0, 1.0)) as f64;
                d * d
            })
            .sum::<f64>()
            / len as f64;
        total += if mse == 0.0 {
            100.0
        } else {
            10.0 * (4.0 / mse).log10()
        };
    }
    total / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_by_hand() {
        // One image, every pixel off by 0.2: MSE 0.04, PSNR = 10 log10(4 / 0.04) = 20 dB.
        let r = [0.0f32, 0.5, -0.5, 1.0];
        let e = [0.2f32, 0.3, -0.3, 0.8];
        assert!((psnr(&r, &e, 4) - 20.0).abs() < 1e-4);
        // Two images: 20 dB and exact (100) average to 60.
        let r2 = [0.0f32, 0.5, -0.5, 1.0, 0.1, 0.1, 0.1, 0.1];
        let e2 = [0.2f32, 0.3, -0.3, 0.8, 0.1, 0.1, 0.1, 0.1];
        assert!((psnr(&r2, &e2, 4) - 60.0).abs() < 1e-4);
    }
}
