//! Measurement noise: a measurement `y = A x0 + sigma_n * eta`, `eta ~ N(0, I)`, may carry a
//! known noise level `sigma_n` (none means noiseless). Not used in training yet; hosts carry it
//! with a measurement and add the noise with the functions here.
//!
//! Draw order: one [`AmbientRng::normal`] per entry of `y`, in index order, whenever a noise
//! level is set (also in [`MeasurementNoise::add_noise_masked`], where masked entries discard
//! theirs); none when it is not.

use super::check_len;
use crate::error::CoreError;
use crate::rng::AmbientRng;

/// The known noise level of a measurement, if any.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MeasurementNoise {
    sigma_n: Option<f32>,
}

impl MeasurementNoise {
    /// Rejects a negative or non-finite `sigma_n`.
    pub fn new(sigma_n: Option<f32>) -> Result<Self, CoreError> {
        match sigma_n {
            Some(s) if !s.is_finite() => Err(CoreError::NonFinite("measurement noise sigma_n")),
            Some(s) if s < 0.0 => Err(CoreError::InvalidParameter(
                "measurement noise sigma_n must be >= 0",
            )),
            _ => Ok(MeasurementNoise { sigma_n }),
        }
    }

    /// A noiseless measurement.
    pub fn noiseless() -> Self {
        MeasurementNoise { sigma_n: None }
    }

    /// The noise level, if known.
    pub fn sigma_n(&self) -> Option<f32> {
        self.sigma_n
    }

    /// `y <- y + sigma_n * eta` with `eta ~ N(0, I)`; nothing (and no draws) when noiseless.
    pub fn add_noise(&self, rng: &mut AmbientRng, y: &mut [f32]) {
        if let Some(s) = self.sigma_n {
            for v in y.iter_mut() {
                *v += s * rng.normal();
            }
        }
    }

    /// Like [`add_noise`](Self::add_noise), but only where `mask` is non-zero, so that a
    /// missing pixel of an inpainted measurement keeps the value 0 (the spec's convention).
    /// `mask` has the length of `y` (an image-shaped mask for the inpainting families).
    pub fn add_noise_masked(
        &self,
        rng: &mut AmbientRng,
        mask: &[f32],
        y: &mut [f32],
    ) -> Result<(), CoreError> {
        check_len("measurement noise mask", y.len(), mask.len())?;
        if let Some(s) = self.sigma_n {
            for (v, &m) in y.iter_mut().zip(mask) {
                let eta = rng.normal();
                if m != 0.0 {
                    *v += s * eta;
                }
            }
        }
        Ok(())
    }
}
