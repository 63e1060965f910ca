//! Mask-aware EDM preconditioning (docs/ambient-unet-spec.md, "Preconditioning"):
//! the scalar coefficients, and `D = m (c_skip y + c_out F) + (1 - m) sd F` with its
//! derivatives, generic over the tensor trait.
//!
//! A pixel that the model's mask hides carries no information, which is EDM's s -> infinity
//! limit there: skip 0 and output scale sigma_data.

use crate::tensor::Tensor;

/// `c_skip = sd^2 / (s^2 + sd^2)`.
#[inline]
pub fn c_skip(sigma: f32, sigma_data: f32) -> f32 {
    let sd2 = sigma_data * sigma_data;
    sd2 / (sigma * sigma + sd2)
}

/// `c_out = s sd / sqrt(s^2 + sd^2)`.
#[inline]
pub fn c_out(sigma: f32, sigma_data: f32) -> f32 {
    sigma * sigma_data / libm::sqrtf(sigma * sigma + sigma_data * sigma_data)
}

/// `c_in = 1 / sqrt(s^2 + sd^2)`.
#[inline]
pub fn c_in(sigma: f32, sigma_data: f32) -> f32 {
    1.0 / libm::sqrtf(sigma * sigma + sigma_data * sigma_data)
}

/// `c_noise = ln(s) / 4`.
#[inline]
pub fn c_noise(sigma: f32) -> f32 {
    libm::logf(sigma) / 4.0
}

/// The largest batch the per-sample functions take (their coefficients live on the stack:
/// 4 KiB). Hosts check their batch size against it up front.
pub const MAX_BATCH: usize = 1024;

/// `out <- D(y, m, s)` from the raw network output `f`, one sigma per sample:
/// `out = c_skip m y + (c_out m + sd (1 - m)) F`. `scratch` has the same shape.
pub fn precondition_output<T: Tensor>(
    y: &T,
    mask: &T,
    f: &T,
    sigmas: &[f32],
    sigma_data: f32,
    out: &mut T,
    scratch: &mut T,
) {
    output_scale(mask, sigmas, sigma_data, out);
    out.mul(f);
    scratch.copy_from(y);
    scratch.mul(mask);
    scale_per_sample_by(scratch, sigmas, |s| c_skip(s, sigma_data));
    out.axpby(1.0, scratch, 1.0);
}

/// `out <- c_out m + sd (1 - m)` per pixel: the factor by which `F` enters `D`, which is also
/// `dD/dF`.
pub fn output_scale<T: Tensor>(mask: &T, sigmas: &[f32], sigma_data: f32, out: &mut T) {
    out.copy_from(mask);
    scale_per_sample_by(out, sigmas, |s| c_out(s, sigma_data) - sigma_data);
    out.add_scalar(sigma_data);
}

/// `t[n] *= f(sigmas[n])` for every sample `n`.
pub fn scale_per_sample_by<T: Tensor>(t: &mut T, sigmas: &[f32], f: impl Fn(f32) -> f32) {
    assert!(
        sigmas.len() <= MAX_BATCH,
        "batch larger than MAX_BATCH = {MAX_BATCH}"
    );
    let mut buf = [0.0f32; MAX_BATCH];
    for (b, &s) in buf.iter_mut().zip(sigmas) {
        *b = f(s);
    }
    t.scale_per_sample(&buf[..sigmas.len()]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{Shape, SliceTensor};

    #[test]
    fn coefficients_satisfy_edm_identities() {
        let sd = 0.5f32;
        for &s in &[0.002f32, 0.1, 1.0, 80.0] {
            // c_skip + c_out^2 / sd^2 = 1 (EDM's unit-variance training target).
            let lhs = c_skip(s, sd) + c_out(s, sd).powi(2) / (sd * sd);
            assert!((lhs - 1.0).abs() < 1e-5, "s = {s}: {lhs}");
            // c_in^2 (s^2 + sd^2) = 1: unit-variance input.
            let v = c_in(s, sd).powi(2) * (s * s + sd * sd);
            assert!((v - 1.0).abs() < 1e-5);
        }
        assert_eq!(c_noise(1.0), 0.0);
        assert!((c_noise(core::f32::consts::E) - 0.25).abs() < 1e-6);
    }

    #[test]
    fn precondition_output_matches_formula_per_pixel() {
        let sd = 0.5;
        let shape = Shape::new(2, 1, 1, 2);
        let mut y = [0.3f32, -0.7, 1.1, 0.0];
        let mut m = [1.0f32, 0.0, 1.0, 0.0];
        let mut f = [0.2f32, -0.4, 0.9, 1.5];
        let mut out = [0.0f32; 4];
        let mut scratch = [0.0f32; 4];
        let sigmas = [0.1f32, 3.0];
        precondition_output(
            &SliceTensor::new(shape, &mut y).unwrap(),
            &SliceTensor::new(shape, &mut m).unwrap(),
            &SliceTensor::new(shape, &mut f).unwrap(),
            &sigmas,
            sd,
            &mut SliceTensor::new(shape, &mut out).unwrap(),
            &mut SliceTensor::new(shape, &mut scratch).unwrap(),
        );
        for i in 0..4 {
            let s = sigmas[i / 2];
            let want =
                m[i] * (c_skip(s, sd) * y[i] + c_out(s, sd) * f[i]) + (1.0 - m[i]) * sd * f[i];
            assert!(
                (out[i] - want).abs() < 1e-6,
                "pixel {i}: {} vs {want}",
                out[i]
            );
        }
    }
}
