//! EDM's sampler time steps (docs/ambient-unet-spec.md, "Samplers"):
//! `s_i = (s_max^(1/rho) + i/(N-1) (s_min^(1/rho) - s_max^(1/rho)))^rho` for `i = 0..N-1`,
//! and `s_N = 0`, so a sampler with `N` steps calls the denoiser at `N` noise levels and
//! ends on its last output.

use crate::error::CoreError;

/// EDM's default largest noise level.
pub const SIGMA_MAX: f32 = 80.0;
/// EDM's default smallest nonzero noise level.
pub const SIGMA_MIN: f32 = 0.002;
/// EDM's default schedule exponent.
pub const RHO: f32 = 7.0;

/// The noise levels `s_0 > s_1 > ... > s_{N-1} > s_N = 0` of an `N`-step sampler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdmSchedule {
    steps: usize,
    sigma_min: f32,
    sigma_max: f32,
    rho: f32,
}

impl EdmSchedule {
    /// `steps = N >= 2` noise levels from `sigma_max` down to `sigma_min`
    /// (`0 < sigma_min < sigma_max`, finite), spaced uniformly in `s^(1/rho)` (`rho > 0`).
    pub fn new(steps: usize, sigma_min: f32, sigma_max: f32, rho: f32) -> Result<Self, CoreError> {
        if steps < 2 {
            return Err(CoreError::InvalidParameter("a schedule needs N >= 2 steps"));
        }
        if !(sigma_min.is_finite() && sigma_max.is_finite() && rho.is_finite()) {
            return Err(CoreError::NonFinite("schedule parameters"));
        }
        if !(sigma_min > 0.0 && sigma_min < sigma_max) {
            return Err(CoreError::InvalidParameter(
                "schedule needs 0 < sigma_min < sigma_max",
            ));
        }
        if rho <= 0.0 {
            return Err(CoreError::InvalidParameter("schedule needs rho > 0"));
        }
        Ok(EdmSchedule {
            steps,
            sigma_min,
            sigma_max,
            rho,
        })
    }

    /// `N` steps with EDM's defaults: `s_min = 0.002`, `s_max = 80`, `rho = 7`.
    pub fn with_steps(steps: usize) -> Result<Self, CoreError> {
        EdmSchedule::new(steps, SIGMA_MIN, SIGMA_MAX, RHO)
    }

    /// The number of steps `N` (denoiser evaluations of an Euler sampler).
    pub fn steps(&self) -> usize {
        self.steps
    }

    pub fn sigma_min(&self) -> f32 {
        self.sigma_min
    }

    pub fn sigma_max(&self) -> f32 {
        self.sigma_max
    }

    pub fn rho(&self) -> f32 {
        self.rho
    }

    /// `s_i` for `i` in `0..=N` (`s_N = 0`); `None` past the end. The endpoints are exactly
    /// `s_max` and `s_min`; the levels between are computed in f64 and rounded once.
    pub fn sigma_at(&self, i: usize) -> Option<f32> {
        let last = self.steps - 1;
        match i {
            0 => Some(self.sigma_max),
            _ if i < last => {
                let inv_rho = 1.0 / self.rho as f64;
                let hi = libm::pow(self.sigma_max as f64, inv_rho);
                let lo = libm::pow(self.sigma_min as f64, inv_rho);
                let t = i as f64 / last as f64;
                Some(libm::pow(hi + t * (lo - hi), self.rho as f64) as f32)
            }
            _ if i == last => Some(self.sigma_min),
            _ if i == self.steps => Some(0.0),
            _ => None,
        }
    }

    /// The `N` steps in order, each as `(i, s_i, s_{i+1})`.
    pub fn pairs(&self) -> impl Iterator<Item = (usize, f32, f32)> + '_ {
        (0..self.steps).filter_map(move |i| Some((i, self.sigma_at(i)?, self.sigma_at(i + 1)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_by_hand() {
        // rho = 2 from 9 to 1 in 3 steps: square roots 3, 2, 1, so levels 9, 4, 1, then 0.
        let s = EdmSchedule::new(3, 1.0, 9.0, 2.0).unwrap();
        let got: [f32; 4] = core::array::from_fn(|i| s.sigma_at(i).unwrap());
        assert_eq!(got, [9.0, 4.0, 1.0, 0.0]);
        assert_eq!(s.sigma_at(4), None);
        // rho = 1 is linear: the middle of 5 steps from 80 to 0.002 is 40.001.
        let lin = EdmSchedule::new(5, 0.002, 80.0, 1.0).unwrap();
        assert!((lin.sigma_at(2).unwrap() - 40.001).abs() < 4e-6); // one f32 rounding at 40
    }

    #[test]
    fn default_schedule_endpoints_and_order() {
        let s = EdmSchedule::with_steps(18).unwrap();
        assert_eq!(s.sigma_at(0), Some(80.0));
        assert_eq!(s.sigma_at(17), Some(0.002));
        assert_eq!(s.sigma_at(18), Some(0.0));
        let mut n = 0;
        for (i, a, b) in s.pairs() {
            assert_eq!(i, n);
            assert!(a > b, "step {i}: {a} -> {b}");
            n += 1;
        }
        assert_eq!(n, 18);
        // Two steps: only the endpoints.
        let two = EdmSchedule::with_steps(2).unwrap();
        let mut p = two.pairs();
        assert_eq!(p.next(), Some((0, 80.0, 0.002)));
        assert_eq!(p.next(), Some((1, 0.002, 0.0)));
        assert_eq!(p.next(), None);
    }

    #[test]
    fn invalid_schedules_are_rejected() {
        assert!(EdmSchedule::with_steps(1).is_err());
        assert!(EdmSchedule::new(10, 1.0, 1.0, 7.0).is_err());
        assert!(EdmSchedule::new(10, 0.0, 1.0, 7.0).is_err());
        assert!(EdmSchedule::new(10, 0.1, f32::INFINITY, 7.0).is_err());
        assert!(EdmSchedule::new(10, 0.1, 1.0, 0.0).is_err());
    }
}
