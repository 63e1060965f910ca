//! The sampler recurrences of Ambient Diffusion (docs/ambient-unet-spec.md, "Samplers"),
//! generic over a [`Denoiser`]: the fixed-mask sampler (paper eq. 3.3) with EDM's Euler step
//! and its Heun correction, reconstruction guidance (eq. 3.4), single-step restoration, and
//! drivers that run the fixed-mask and the guided sampler over an [`EdmSchedule`].
//!
//! One sigma serves the whole batch. Scratch tensors have the batch's shape; each function
//! says how many it needs. After every step the state is checked to be finite.

mod fixed_mask;
mod guidance;
mod restore;

pub use fixed_mask::{fixed_mask_heun_step, fixed_mask_step};
pub use guidance::{guidance_gradient, reconstruction_guidance_step};
pub use restore::restore_single_step;

use crate::denoiser::Denoiser;
use crate::error::CoreError;
use crate::schedule::EdmSchedule;
use crate::tensor::Tensor;

/// What the driver reports after each step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    /// The step just taken, `0..steps`.
    pub step: usize,
    /// The schedule's number of steps `N`.
    pub steps: usize,
    /// The noise level the step started from, `s_i`.
    pub sigma: f32,
    /// The noise level the step ended at, `s_{i+1}` (0 after the last step).
    pub sigma_next: f32,
}

impl StepInfo {
    /// This step numbered across `runs` runs of the same schedule (a sample set sampled in
    /// parts), this one being run `run`: step `run N + step` of `runs N`.
    pub fn in_run(self, run: usize, runs: usize) -> StepInfo {
        StepInfo {
            step: run * self.steps + self.step,
            steps: runs * self.steps,
            ..self
        }
    }
}

/// The fixed-mask sampler: for every step of `schedule`, [`fixed_mask_step`] (or
/// [`fixed_mask_heun_step`] when `heun`) with the same `mask`, then `progress`. The caller
/// initialises `x` with `s_max * N(0, I)` (`schedule.sigma_max()`); on return `x` holds the
/// samples. Denoiser calls: N (Euler) or 2N - 1 (Heun; its last step is Euler). Needs three
/// scratch tensors (Euler uses the first two).
pub fn sample_fixed_mask<T: Tensor, D: Denoiser<T>>(
    denoiser: &mut D,
    x: &mut T,
    mask: &T,
    schedule: &EdmSchedule,
    heun: bool,
    scratch: &mut [T; 3],
    mut progress: impl FnMut(StepInfo),
) -> Result<(), CoreError> {
    for (step, sigma, sigma_next) in schedule.pairs() {
        if heun {
            fixed_mask_heun_step(denoiser, x, mask, sigma, sigma_next, scratch)?;
        } else {
            let [y, x_hat, _] = scratch;
            fixed_mask::euler(denoiser, x, mask, sigma, sigma_next, y, x_hat)?;
        }
        progress(StepInfo {
            step,
            steps: schedule.steps(),
            sigma,
            sigma_next,
        });
    }
    Ok(())
}

/// The reconstruction-guidance sampler: for every step of `schedule`,
/// [`reconstruction_guidance_step`] with `masks` and `weight`, then `progress`. The caller
/// initialises `x` with `s_max * N(0, I)`; on return `x` holds the samples. Needs six scratch
/// tensors. With one mask it is [`sample_fixed_mask`]'s Euler sampler.
pub fn sample_guided<T: Tensor, D: Denoiser<T>>(
    denoiser: &mut D,
    x: &mut T,
    masks: &[T],
    schedule: &EdmSchedule,
    weight: f32,
    scratch: &mut [T; 6],
    mut progress: impl FnMut(StepInfo),
) -> Result<(), CoreError> {
    for (step, sigma, sigma_next) in schedule.pairs() {
        reconstruction_guidance_step(denoiser, x, masks, sigma, sigma_next, weight, scratch)?;
        progress(StepInfo {
            step,
            steps: schedule.steps(),
            sigma,
            sigma_next,
        });
    }
    Ok(())
}

/// Which sampler [`sample`] runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    /// [`sample_fixed_mask`] (Euler, or Heun's correction when `heun`).
    FixedMask { heun: bool },
    /// [`sample_guided`] with guidance weight `weight`.
    Guided { weight: f32 },
}

/// `sampler` on `x`: [`sample_fixed_mask`] with `masks[0]`, or [`sample_guided`] with all
/// `masks`. Six scratch tensors (the fixed-mask sampler uses the first three). Errors: no mask.
#[allow(clippy::too_many_arguments)]
pub fn sample<T: Tensor, D: Denoiser<T>>(
    denoiser: &mut D,
    x: &mut T,
    masks: &[T],
    schedule: &EdmSchedule,
    sampler: Sampler,
    scratch: &mut [T; 6],
    progress: impl FnMut(StepInfo),
) -> Result<(), CoreError> {
    let Some(first) = masks.first() else {
        return Err(CoreError::InvalidParameter("the sampler needs a mask"));
    };
    match sampler {
        Sampler::FixedMask { heun } => {
            let three: &mut [T; 3] = (&mut scratch[..3]).try_into().expect("3 of 6");
            sample_fixed_mask(denoiser, x, first, schedule, heun, three, progress)
        }
        Sampler::Guided { weight } => {
            sample_guided(denoiser, x, masks, schedule, weight, scratch, progress)
        }
    }
}

/// `sigma` positive and finite, `sigma_next` non-negative and finite.
fn check_step(sigma: f32, sigma_next: f32) -> Result<(), CoreError> {
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(CoreError::InvalidParameter(
            "sampler sigma must be positive and finite",
        ));
    }
    if !(sigma_next.is_finite() && sigma_next >= 0.0) {
        return Err(CoreError::InvalidParameter(
            "next sigma must be non-negative and finite",
        ));
    }
    Ok(())
}

/// `NonFinite` if any element of `x` is NaN or infinite.
fn check_finite<T: Tensor>(x: &T, what: &'static str) -> Result<(), CoreError> {
    if x.sum_sq().is_finite() {
        Ok(())
    } else {
        Err(CoreError::NonFinite(what))
    }
}
