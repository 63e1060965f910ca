//! Training noise levels (docs/ambient-unet-spec.md, "Training objective"): EDM's log-normal
//! sigma distribution, `ln s ~ N(P_mean, P_std^2)`, and EDM's loss weight
//! `lambda(s) = (s^2 + sd^2) / (s sd)^2 = 1 / c_out(s)^2`.

use crate::error::CoreError;
use crate::rng::AmbientRng;

/// EDM's default `P_mean`.
pub const P_MEAN: f32 = -1.2;
/// EDM's default `P_std`.
pub const P_STD: f32 = 1.2;

/// The log-normal distribution of training noise levels: `ln s ~ N(p_mean, p_std^2)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogNormalSigma {
    p_mean: f32,
    p_std: f32,
}

impl Default for LogNormalSigma {
    /// EDM's `P_mean = -1.2`, `P_std = 1.2`.
    fn default() -> Self {
        LogNormalSigma {
            p_mean: P_MEAN,
            p_std: P_STD,
        }
    }
}

impl LogNormalSigma {
    /// `ln s ~ N(p_mean, p_std^2)`; both finite and `p_std >= 0`.
    pub fn new(p_mean: f32, p_std: f32) -> Result<Self, CoreError> {
        if !p_mean.is_finite() || !p_std.is_finite() {
            return Err(CoreError::NonFinite("log-normal sigma parameters"));
        }
        if p_std < 0.0 {
            return Err(CoreError::InvalidParameter("P_std must be >= 0"));
        }
        Ok(LogNormalSigma { p_mean, p_std })
    }

    pub fn p_mean(&self) -> f32 {
        self.p_mean
    }

    pub fn p_std(&self) -> f32 {
        self.p_std
    }

    /// One draw `s = exp(p_mean + p_std z)`, `z` from [`AmbientRng::normal`].
    pub fn sample(&self, rng: &mut AmbientRng) -> f32 {
        libm::expf(self.p_mean + self.p_std * rng.normal())
    }

    /// One independent draw per entry of `sigmas` (one per sample of a batch), in order.
    pub fn fill(&self, rng: &mut AmbientRng, sigmas: &mut [f32]) {
        sigmas.iter_mut().for_each(|s| *s = self.sample(rng));
    }
}

/// EDM's loss weight `lambda(s) = (s^2 + sd^2) / (s sd)^2`, which is `1 / c_out(s)^2`:
/// it makes the loss unit-variance in the units of the network's raw output.
/// Computed as `1 / s^2 + 1 / sd^2`, the same number with fewer roundings.
#[inline]
pub fn loss_weight(sigma: f32, sigma_data: f32) -> f32 {
    1.0 / (sigma * sigma) + 1.0 / (sigma_data * sigma_data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::precond::c_out;

    #[test]
    fn loss_weight_is_inverse_squared_output_scale() {
        // By hand: s = 1, sd = 0.5: (1 + 0.25) / 0.25 = 5; s = 0.5, sd = 0.5: 0.5 / 0.0625 = 8.
        assert_eq!(loss_weight(1.0, 0.5), 5.0);
        assert_eq!(loss_weight(0.5, 0.5), 8.0);
        for &s in &[0.002f32, 0.1, 1.0, 80.0] {
            let inv = 1.0 / (c_out(s, 0.5) * c_out(s, 0.5));
            // Both sides carry a few f32 roundings (2^-24 each): 1e-6 relative is ~16 of them.
            assert!((loss_weight(s, 0.5) / inv - 1.0).abs() < 1e-6, "s = {s}");
        }
    }

    #[test]
    fn log_sigma_has_the_requested_moments() {
        let dist = LogNormalSigma::default();
        let mut rng = AmbientRng::new(11);
        let n = 100_000;
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        let mut buf = [0.0f32; 100];
        for _ in 0..n / buf.len() {
            dist.fill(&mut rng, &mut buf);
            for &s in &buf {
                assert!(s > 0.0 && s.is_finite());
                let l = libm::log(s as f64);
                s1 += l;
                s2 += l * l;
            }
        }
        let mean = s1 / n as f64;
        let std = libm::sqrt(s2 / n as f64 - mean * mean);
        // ln s = -1.2 + 1.2 z: standard errors 1.2 / sqrt(n) = 0.0038 (mean) and
        // 1.2 / sqrt(2 n) = 0.0027 (std); 5 standard errors each.
        assert!((mean + 1.2).abs() < 5.0 * 0.0038, "mean of ln s {mean}");
        assert!((std - 1.2).abs() < 5.0 * 0.0027, "std of ln s {std}");
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        assert!(LogNormalSigma::new(0.0, -1.0).is_err());
        assert!(LogNormalSigma::new(f32::NAN, 1.0).is_err());
        assert_eq!(
            LogNormalSigma::new(-1.2, 1.2).unwrap(),
            LogNormalSigma::default()
        );
    }
}
