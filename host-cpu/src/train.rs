//! Training AmbientUNet on a corrupted dataset (spec "Training objective"): ambient, naive or
//! clean. One step draws a batch of measurements and their masks `A`, further-corrupts each
//! mask to `A~` (ambient), draws sigma and noise, computes `D(A~ (x0 + s eta), A~, s)`, the loss
//! on every pixel `A` kept, the backward pass, then Adam and the EMA of the weights.
//!
//! Every random draw comes from one `AmbientRng` whose state goes into the checkpoint, and the
//! arithmetic is reduced in a fixed order, so training 2k steps equals training k, saving,
//! resuming and training k more, bit for bit. The trainer never reads a measurement at a pixel
//! its mask erased: the dataset holds exactly 0 there, and the loss weight is 0 there.

use std::path::Path;

use ambient_core::corruption::{BoxInpainting, Corruption, RandomInpainting};
use ambient_core::loss::{ambient_loss, clean_loss};
use ambient_core::sigma::LogNormalSigma;
use ambient_core::AmbientRng;
use ndarray::Array4;
use serde::{Deserialize, Serialize};

use crate::config::{CorruptionMeta, ModelConfig, UNetConfig, PRECOND};
use crate::denoiser::{denoise_backward, denoise_train, DenoiseTape};
use crate::error::HostError;
use crate::init::init_params;
use crate::io::checkpoint::{load_checkpoint, save_checkpoint, Checkpoint};
use crate::io::dataset::CorruptedDataset;
use crate::optim::{ema_update, Adam, AdamConfig, EmaSchedule};
use crate::params::ParamStore;
use crate::tensor_nd::NdTensor;
use crate::unet::UNet;

/// What the loss trains for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Ambient Diffusion: the model sees `A~ = B A`, the loss covers every pixel of `A`.
    Ambient,
    /// The naive baseline: `A~ = A`.
    Naive,
    /// Plain EDM on clean data: `A = A~ = 1`.
    Clean,
}

impl Mode {
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Ambient => "ambient",
            Mode::Naive => "naive",
            Mode::Clean => "clean",
        }
    }
}

/// The further corruption `A~ | A` that ambient training applies to each mask.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Further {
    /// Erase each observed pixel again with probability `delta`.
    Random { delta: f32 },
    /// Erase a second square of side `side` that does not overlap the first.
    Box { side: usize },
}

/// Everything a training run is configured by, stored in the checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    pub mode: Mode,
    pub further: Further,
    pub batch: usize,
    pub adam: AdamConfig,
    pub ema: EmaSchedule,
    pub p_mean: f32,
    pub p_std: f32,
    pub seed: u64,
}

impl TrainOptions {
    /// Defaults for MNIST-sized data, as documented in README.md.
    pub fn defaults(mode: Mode, further: Further) -> Self {
        let mut adam = AdamConfig::new(1e-3);
        adam.warmup_steps = 200;
        adam.max_grad_norm = Some(1.0);
        TrainOptions {
            mode,
            further,
            batch: 64,
            adam,
            ema: EmaSchedule::HalfLife {
                halflife_kimg: 5.0,
                rampup_ratio: Some(0.05),
            },
            p_mean: ambient_core::sigma::P_MEAN,
            p_std: ambient_core::sigma::P_STD,
            seed: 0,
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    pub step: u64,
    pub loss: f32,
    pub grad_norm: f64,
    pub lr: f32,
}

/// A training run in memory: network, weights, EMA, optimiser, RNG and options.
pub struct Trainer {
    pub net: UNet,
    pub config: ModelConfig,
    pub opts: TrainOptions,
    pub weights: ParamStore,
    pub ema: ParamStore,
    pub adam: Adam,
    pub rng: AmbientRng,
    pub step: u64,
    grads: ParamStore,
}

fn bad(path: &Path, what: impl Into<String>) -> HostError {
    HostError::invalid(path, what)
}

impl Trainer {
    /// A fresh run: weights initialised from `opts.seed`.
    pub fn new(
        unet: UNetConfig,
        corruption: CorruptionMeta,
        opts: TrainOptions,
    ) -> Result<Self, String> {
        let net = UNet::new(&unet)?;
        opts.adam.validate().map_err(|e| e.to_string())?;
        opts.ema.validate().map_err(|e| e.to_string())?;
        if opts.batch == 0 || opts.batch > ambient_core::precond::MAX_BATCH {
            return Err(format!(
                "batch = {} must be in 1..={}",
                opts.batch,
                ambient_core::precond::MAX_BATCH
            ));
        }
        LogNormalSigma::new(opts.p_mean, opts.p_std).map_err(|e| e.to_string())?;
        let mut rng = AmbientRng::new(opts.seed);
        let weights = init_params(&unet, &mut rng.fork(0));
        let adam = Adam::new(opts.adam.clone(), &weights).map_err(|e| e.to_string())?;
        Ok(Trainer {
            net,
            config: ModelConfig {
                unet,
                precond: PRECOND.into(),
                corruption,
            },
            ema: weights.clone(),
            grads: weights.zeros_like(),
            weights,
            adam,
            rng,
            step: 0,
            opts,
        })
    }

    /// Resumes from a checkpoint; `expected` (if given) must match its model config.
    pub fn resume(path: &Path, expected: Option<&ModelConfig>) -> Result<Self, HostError> {
        let ck = match expected {
            Some(cfg) => load_checkpoint(path, cfg)?,
            None => crate::io::checkpoint::read_checkpoint(path)?,
        };
        let opts: TrainOptions = serde_json::from_str(&ck.training_options)
            .map_err(|e| bad(path, format!("training options in the checkpoint: {e}")))?;
        let net = UNet::new(&ck.config.unet).map_err(|e| bad(path, e))?;
        Ok(Trainer {
            net,
            grads: ck.weights.zeros_like(),
            config: ck.config,
            opts,
            weights: ck.weights,
            ema: ck.ema,
            adam: ck.adam,
            rng: AmbientRng::from_state(ck.rng_state.0, ck.rng_state.1),
            step: ck.step,
        })
    }

    /// Writes a checkpoint atomically.
    pub fn save_checkpoint(&self, path: &Path) -> Result<(), HostError> {
        let ck = Checkpoint {
            config: self.config.clone(),
            step: self.step,
            rng_state: self.rng.state(),
            weights: self.weights.clone(),
            ema: self.ema.clone(),
            ema_schedule: self.opts.ema.clone(),
            adam: self.adam.clone(),
            training_options: serde_json::to_string(&self.opts).expect("options serialise"),
        };
        save_checkpoint(path, &ck)
    }

    /// Checks that `data` fits the network and the mode; `path` names the data in errors.
    pub fn check_data(&self, data: &CorruptedDataset, path: &Path) -> Result<(), HostError> {
        let u = &self.config.unet;
        if data.n == 0 {
            return Err(bad(path, "the dataset holds no images"));
        }
        if data.c != u.img_channels || data.h != u.img_resolution || data.w != u.img_resolution {
            return Err(bad(
                path,
                format!(
                    "images are {} x {} x {} (C x H x W) but the model takes {} x {} x {}",
                    data.c, data.h, data.w, u.img_channels, u.img_resolution, u.img_resolution
                ),
            ));
        }
        if self.opts.mode == Mode::Clean && data.masks.iter().any(|&m| m != 1.0) {
            return Err(bad(
                path,
                "clean training needs fully observed images, but this dataset has missing pixels",
            ));
        }
        if let (Mode::Ambient, Further::Box { side }) = (self.opts.mode, self.opts.further) {
            let op = BoxInpainting::new(1, data.h, data.w, side)
                .map_err(|e| bad(path, e.to_string()))?;
            if !op.further_corruption_always_possible() {
                return Err(bad(
                    path,
                    format!(
                        "box side {side} leaves no room for a second, non-overlapping box in every {} x {} image; use a side of at most {}",
                        data.h,
                        data.w,
                        (data.h.max(data.w) + 1) / 3
                    ),
                ));
            }
        }
        Ok(())
    }

    /// One training step on a batch drawn from `data` (checked with [`Trainer::check_data`]).
    pub fn train_step(&mut self, data: &CorruptedDataset) -> Result<StepStats, String> {
        let batch = draw_batch(&mut self.rng, &self.opts, data, self.step)?;
        let (loss, tape) = self.loss(&batch, self.step)?;
        self.grads.zero();
        denoise_backward(&self.net, &self.weights, &tape.0, &tape.1, &mut self.grads);
        let report = self
            .adam
            .step(&mut self.weights, &mut self.grads)
            .map_err(|e| format!("step {}: {e}", self.step + 1))?;
        let b = self.opts.batch;
        let beta = self.opts.ema.beta(b, self.step * b as u64);
        ema_update(&mut self.ema, &self.weights, beta).map_err(|e| e.to_string())?;
        self.step += 1;
        Ok(StepStats {
            step: self.step,
            loss,
            grad_norm: report.grad_norm,
            lr: report.lr,
        })
    }

    /// The training loss of the current weights on a batch drawn with its own generator
    /// seeded by `seed` (the same batch, masks, sigmas and noise for the same seed), without
    /// changing anything: a fixed yardstick for tests and monitoring.
    pub fn eval_loss(&self, data: &CorruptedDataset, seed: u64) -> Result<f32, String> {
        let mut rng = AmbientRng::new(seed);
        let batch = draw_batch(&mut rng, &self.opts, data, self.step)?;
        self.loss(&batch, self.step).map(|(l, _)| l)
    }

    /// Forward pass and loss; returns the loss and what the backward pass needs (the tape and
    /// dL/dD).
    fn loss(&self, batch: &Batch, step: u64) -> Result<(f32, (DenoiseTape, Array4<f32>)), String> {
        let (d, tape) = denoise_train(
            &self.net,
            &self.weights,
            &batch.y,
            &batch.a_tilde,
            &batch.sigmas,
        );
        let sd = self.config.unet.sigma_data;
        let dim = d.dim();
        let d = NdTensor(d);
        let mut grad_d = NdTensor(Array4::zeros(dim));
        let mut scratch = NdTensor(Array4::zeros(dim));
        let x = NdTensor(batch.x_meas.clone());
        let loss = match self.opts.mode {
            Mode::Clean => clean_loss(&d, &x, &batch.sigmas, sd, &mut grad_d, &mut scratch),
            Mode::Ambient | Mode::Naive => ambient_loss(
                &d,
                &x,
                &NdTensor(batch.a.clone()),
                &NdTensor(batch.a_tilde.clone()),
                &batch.sigmas,
                sd,
                &mut grad_d,
                &mut scratch,
            ),
        }
        .map_err(|e| format!("loss at step {}: {e}", step + 1))?;
        Ok((loss, (tape, grad_d.0)))
    }
}

/// One training batch: measurements `A x0`, masks `A` and `A~`, sigmas, and the model input
/// `y = A~ (x0 + s eta)`.
/// One training batch (NCHW): the measurements `A x0` (0 where A erased), the masks `A` and
/// `A~`, the per-image sigmas and the network input `y = A~ (x0 + s eta)`. Every backend
/// trains on these, so a seed gives the same batches on every host.
pub struct Batch {
    pub x_meas: Array4<f32>,
    pub a: Array4<f32>,
    pub a_tilde: Array4<f32>,
    pub sigmas: Vec<f32>,
    pub y: Array4<f32>,
}

/// Draws a batch from `rng`: image indices, further corruptions, sigmas, then noise, in that
/// order. A measurement is copied only where its mask keeps the pixel (0 elsewhere, whatever
/// the dataset holds there), so no value at a pixel `A` erased can reach the model or the loss.
/// `step` (steps taken so far) only labels errors.
pub fn draw_batch(
    rng: &mut AmbientRng,
    opts: &TrainOptions,
    data: &CorruptedDataset,
    step: u64,
) -> Result<Batch, String> {
    let b = opts.batch;
    let (c, h, w) = (data.c, data.h, data.w);
    let chw = data.image_len();
    let hw = h * w;
    let mut x_meas = Array4::<f32>::zeros((b, c, h, w));
    let mut a = Array4::<f32>::zeros((b, c, h, w));
    let mut a_tilde = Array4::<f32>::zeros((b, c, h, w));
    let mut pixel_at = vec![0.0f32; hw];
    {
        let xs = x_meas.as_slice_mut().expect("standard layout");
        let as_ = a.as_slice_mut().expect("standard layout");
        let ats = a_tilde.as_slice_mut().expect("standard layout");
        for i in 0..b {
            let idx = rng.below(data.n as u32) as usize;
            let (meas, mask) = data.image(idx);
            let range = i * chw..(i + 1) * chw;
            for ((x, m), (&v, &k)) in xs[range.clone()]
                .iter_mut()
                .zip(as_[range.clone()].iter_mut())
                .zip(meas.iter().zip(mask))
            {
                *m = k;
                *x = if k != 0.0 { v } else { 0.0 };
            }
            let pixel_a = &as_[range.start..range.start + hw];
            match opts.mode {
                Mode::Ambient => {
                    further_corrupt(opts.further, h, w, pixel_a, rng, &mut pixel_at)
                        .map_err(|e| format!("further corruption at step {}: {e}", step + 1))?
                }
                Mode::Naive | Mode::Clean => pixel_at.copy_from_slice(pixel_a),
            }
            ambient_core::corruption::expand_pixel_mask(c, &pixel_at, &mut ats[range])
                .map_err(|e| e.to_string())?;
        }
    }
    let mut sigmas = vec![0.0f32; b];
    LogNormalSigma::new(opts.p_mean, opts.p_std)
        .map_err(|e| e.to_string())?
        .fill(rng, &mut sigmas);
    let mut eta = vec![0.0f32; b * chw];
    rng.fill_normal(&mut eta);
    // y = A~ (A x0 + s eta): A~ keeps only pixels A kept, so this is A~ (x0 + s eta).
    let mut y = Array4::<f32>::zeros((b, c, h, w));
    {
        let ys = y.as_slice_mut().expect("standard layout");
        let xs = x_meas.as_slice().expect("standard layout");
        let ats = a_tilde.as_slice().expect("standard layout");
        for (i, &s) in sigmas.iter().enumerate() {
            for k in i * chw..(i + 1) * chw {
                ys[k] = ats[k] * (xs[k] + s * eta[k]);
            }
        }
    }
    Ok(Batch {
        x_meas,
        a,
        a_tilde,
        sigmas,
        y,
    })
}

/// `A~ | A` for one image's pixel mask.
fn further_corrupt(
    further: Further,
    h: usize,
    w: usize,
    a: &[f32],
    rng: &mut AmbientRng,
    a_tilde: &mut [f32],
) -> Result<(), ambient_core::CoreError> {
    match further {
        Further::Random { delta } => RandomInpainting::new(1, h, w, 0.0, delta)
            .and_then(|op| op.further_corrupt(a, rng, a_tilde)),
        Further::Box { side } => {
            BoxInpainting::new(1, h, w, side).and_then(|op| op.further_corrupt(a, rng, a_tilde))
        }
    }
}
