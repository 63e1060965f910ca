//! Generating new images from a trained model on the CPU: the fixed-mask sampler (paper eq.
//! 3.3, Euler or Heun) and reconstruction guidance (eq. 3.4), over EDM time steps, with masks
//! drawn from the same distribution the model was trained with.

use ambient_core::corruption::{expand_pixel_mask, BoxInpainting, Corruption, RandomInpainting};
use ambient_core::sampler::{sample_fixed_mask, sample_guided, StepInfo};
use ambient_core::schedule::EdmSchedule;
use ambient_core::AmbientRng;
use ndarray::Array4;

use crate::config::ModelConfig;
use crate::denoiser::CpuDenoiser;
use crate::frozen::FrozenParams;
use crate::params::ParamStore;
use crate::tensor_nd::NdTensor;
use crate::unet::UNet;

/// How to sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleOptions {
    pub n: usize,
    pub steps: usize,
    pub sigma_min: f32,
    pub sigma_max: f32,
    pub rho: f32,
    pub heun: bool,
    /// Reconstruction guidance with K masks and weight w; `None` = fixed-mask sampler.
    pub guidance: Option<(usize, f32)>,
    pub seed: u64,
}

/// Draws one sampler mask per image, NCHW, with the training distribution of `A~` (ambient:
/// `A` then its further corruption; naive: `A`; clean: all ones).
pub fn draw_sampler_masks(
    cfg: &ModelConfig,
    n: usize,
    rng: &mut AmbientRng,
) -> Result<Array4<f32>, String> {
    let u = &cfg.unet;
    let (c, h, w) = (u.img_channels, u.img_resolution, u.img_resolution);
    let mut masks = Array4::<f32>::ones((n, c, h, w));
    let k = &cfg.corruption;
    if k.mode == "clean" {
        return Ok(masks);
    }
    let further = k.mode == "ambient";
    let op: Box<dyn Corruption> = match k.kind.as_str() {
        "random" => {
            Box::new(RandomInpainting::new(1, h, w, k.p, k.delta).map_err(|e| e.to_string())?)
        }
        "box" => {
            let side = k
                .r#box
                .ok_or("box model without a box side in its config")?;
            Box::new(BoxInpainting::new(1, h, w, side).map_err(|e| e.to_string())?)
        }
        other => return Err(format!("sampling masks of kind {other:?} is not supported")),
    };
    let mut a = vec![0.0f32; h * w];
    let mut at = vec![0.0f32; h * w];
    let ms = masks.as_slice_mut().expect("standard layout");
    for i in 0..n {
        op.draw(rng, &mut a).map_err(|e| e.to_string())?;
        if further {
            op.further_corrupt(&a, rng, &mut at)
                .map_err(|e| e.to_string())?;
        } else {
            at.copy_from_slice(&a);
        }
        expand_pixel_mask(c, &at, &mut ms[i * c * h * w..(i + 1) * c * h * w])
            .map_err(|e| e.to_string())?;
    }
    Ok(masks)
}

/// Generates `opts.n` images, NCHW in about [-1, 1]; `progress` sees every sampler step.
pub fn generate(
    net: &UNet,
    params: &ParamStore,
    cfg: &ModelConfig,
    opts: &SampleOptions,
    mut progress: impl FnMut(StepInfo),
) -> Result<Array4<f32>, String> {
    let u = &cfg.unet;
    let (n, c, h, w) = (opts.n, u.img_channels, u.img_resolution, u.img_resolution);
    let schedule = EdmSchedule::new(opts.steps, opts.sigma_min, opts.sigma_max, opts.rho)
        .map_err(|e| e.to_string())?;
    let mut rng = AmbientRng::new(opts.seed);
    let mut x = NdTensor(Array4::zeros((n, c, h, w)));
    rng.fill_normal(x.0.as_slice_mut().expect("standard layout"));
    x.0.mapv_inplace(|v| v * schedule.sigma_max());
    // Frozen: the Winograd filters are checked against the weights once, not every step.
    let frozen = FrozenParams::new(params);
    let mut den = CpuDenoiser {
        net,
        params: &frozen,
    };
    let z = || NdTensor(Array4::zeros((n, c, h, w)));
    match opts.guidance {
        None => {
            let mask = NdTensor(draw_sampler_masks(cfg, n, &mut rng)?);
            let mut scratch = [z(), z(), z()];
            sample_fixed_mask(
                &mut den,
                &mut x,
                &mask,
                &schedule,
                opts.heun,
                &mut scratch,
                &mut progress,
            )
            .map_err(|e| e.to_string())?;
        }
        Some((k, weight)) => {
            if k == 0 {
                return Err("reconstruction guidance needs K >= 1 masks".into());
            }
            let masks: Vec<NdTensor> = (0..k)
                .map(|_| draw_sampler_masks(cfg, n, &mut rng).map(NdTensor))
                .collect::<Result<_, _>>()?;
            let mut scratch = [z(), z(), z(), z(), z(), z()];
            sample_guided(
                &mut den,
                &mut x,
                &masks,
                &schedule,
                weight,
                &mut scratch,
                &mut progress,
            )
            .map_err(|e| e.to_string())?;
        }
    }
    Ok(x.0)
}
