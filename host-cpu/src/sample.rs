//! Generating new images from a trained model on the CPU: the fixed-mask sampler (paper eq.
//! 3.3, Euler or Heun) and reconstruction guidance (eq. 3.4), over EDM time steps, with masks
//! drawn from the same distribution the model was trained with.

use ambient_core::corruption::{expand_pixel_mask, BoxInpainting, Corruption, RandomInpainting};
use ambient_core::sampler::{sample, Sampler, StepInfo};
use ambient_core::schedule::EdmSchedule;
use ambient_core::AmbientRng;
use ndarray::{s, Array4};

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

/// What a sampling run of [`SampleOptions`] starts from, drawn for all its samples.
#[derive(Debug, Clone)]
pub struct SamplerStart {
    /// `s_max N(0, I)`, NCHW.
    pub x: Array4<f32>,
    /// The mask sets, NCHW each: one for the fixed-mask sampler, K for guidance.
    pub masks: Vec<Array4<f32>>,
    pub sampler: Sampler,
    pub schedule: EdmSchedule,
}

/// The draws of a sampling run of `opts` for all `opts.n` samples, in their order: the
/// initial noise from `opts.seed`, then the mask sets ([`draw_sampler_masks`]). Every host
/// starts from these, so a seed gives the same samples' starting points on any backend and
/// for any split into runs.
pub fn draw_sampler_start(cfg: &ModelConfig, opts: &SampleOptions) -> Result<SamplerStart, String> {
    let u = &cfg.unet;
    let (n, c, h, w) = (opts.n, u.img_channels, u.img_resolution, u.img_resolution);
    let schedule = EdmSchedule::new(opts.steps, opts.sigma_min, opts.sigma_max, opts.rho)
        .map_err(|e| e.to_string())?;
    let (sets, sampler) = match opts.guidance {
        None => (1, Sampler::FixedMask { heun: opts.heun }),
        Some((0, _)) => return Err("reconstruction guidance needs K >= 1 masks".into()),
        Some((k, weight)) => (k, Sampler::Guided { weight }),
    };
    let mut rng = AmbientRng::new(opts.seed);
    let mut x = Array4::zeros((n, c, h, w));
    rng.fill_normal(x.as_slice_mut().expect("standard layout"));
    x.mapv_inplace(|v| v * schedule.sigma_max());
    let masks = (0..sets)
        .map(|_| draw_sampler_masks(cfg, n, &mut rng))
        .collect::<Result<_, _>>()?;
    Ok(SamplerStart {
        x,
        masks,
        sampler,
        schedule,
    })
}

/// Samples per sampler run of [`generate`]: the denoiser takes at most
/// `ambient_core::precond::MAX_BATCH` (1024) at once, and 256 keeps a run's activations
/// (about 50 MB per tensor of the spec network) small. Every sample's trajectory is its own
/// (the network computes each image as it would alone), so the split changes no value.
pub const SAMPLE_CHUNK: usize = 256;

/// Generates `opts.n` images, NCHW in about [-1, 1]; `progress` sees every sampler step of
/// every chunk of [`SAMPLE_CHUNK`] samples, numbered across them (`steps` = steps x chunks).
pub fn generate(
    net: &UNet,
    params: &ParamStore,
    cfg: &ModelConfig,
    opts: &SampleOptions,
    progress: impl FnMut(StepInfo),
) -> Result<Array4<f32>, String> {
    generate_in_chunks(net, params, cfg, opts, SAMPLE_CHUNK, progress)
}

/// [`generate`] in runs of at most `chunk` samples. The draws (initial noise, then the
/// masks: K sets for guidance) are made for all `opts.n` samples first, in one order
/// whatever `chunk` is.
fn generate_in_chunks(
    net: &UNet,
    params: &ParamStore,
    cfg: &ModelConfig,
    opts: &SampleOptions,
    chunk: usize,
    mut progress: impl FnMut(StepInfo),
) -> Result<Array4<f32>, String> {
    let u = &cfg.unet;
    let (n, c, h, w) = (opts.n, u.img_channels, u.img_resolution, u.img_resolution);
    let SamplerStart {
        mut x,
        masks,
        sampler,
        schedule,
    } = draw_sampler_start(cfg, opts)?;
    // Frozen: the Winograd filters are checked against the weights once, not every step.
    let frozen = FrozenParams::new(params);
    let mut den = CpuDenoiser {
        net,
        params: &frozen,
    };
    let chunk = chunk.clamp(1, ambient_core::precond::MAX_BATCH);
    let runs = n.div_ceil(chunk);
    for r in 0..runs {
        let span = r * chunk..n.min((r + 1) * chunk);
        let b = span.len();
        let part = |a: &Array4<f32>| NdTensor(a.slice(s![span.clone(), .., .., ..]).to_owned());
        let mut xr = part(&x);
        let z = || NdTensor(Array4::zeros((b, c, h, w)));
        let ms: Vec<NdTensor> = masks.iter().map(part).collect();
        let mut scratch = [z(), z(), z(), z(), z(), z()];
        sample(
            &mut den,
            &mut xr,
            &ms,
            &schedule,
            sampler,
            &mut scratch,
            |s| progress(s.in_run(r, runs)),
        )
        .map_err(|e| e.to_string())?;
        x.slice_mut(s![span, .., .., ..]).assign(&xr.0);
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CorruptionMeta, UNetConfig};
    use crate::params::spec_layout;

    /// Runs of 2 samples give the bits of one run of all 5 (fixed mask and guided), and the
    /// progress counts every step of every run once, in order.
    #[test]
    fn chunks_change_no_sample() {
        let mut unet = UNetConfig::spec_mnist();
        unet.ch = 8;
        unet.img_resolution = 8;
        let cfg = ModelConfig {
            unet: unet.clone(),
            precond: crate::config::PRECOND.into(),
            corruption: CorruptionMeta {
                kind: "random".into(),
                p: 0.5,
                delta: 0.1,
                r#box: None,
                mode: "ambient".into(),
            },
        };
        let net = UNet::new(&unet).unwrap();
        // Every weight random (none at its zero initialisation), so that the network's
        // output depends on its input everywhere.
        let mut params = ParamStore::zeros(&spec_layout(&unet));
        let mut rng = AmbientRng::new(3);
        for p in params.params.iter_mut() {
            p.data.iter_mut().for_each(|v| *v = 0.2 * rng.normal());
        }
        for guidance in [None, Some((2, 0.5))] {
            let opts = SampleOptions {
                n: 5,
                steps: 4,
                sigma_min: 0.002,
                sigma_max: 80.0,
                rho: 7.0,
                heun: false,
                guidance,
                seed: 9,
            };
            let whole = generate_in_chunks(&net, &params, &cfg, &opts, 5, |_| {}).unwrap();
            let mut seen = Vec::new();
            let parts = generate_in_chunks(&net, &params, &cfg, &opts, 2, |s| {
                seen.push((s.step, s.steps))
            })
            .unwrap();
            assert!(whole == parts, "guidance {guidance:?}");
            assert!(whole.iter().all(|v| v.is_finite()));
            let want: Vec<_> = (0..12).map(|i| (i, 12)).collect();
            assert_eq!(seen, want, "3 runs of 4 steps");
        }
    }
}
