//! `ambient train`: trains AmbientUNet on measurements and masks, with checkpoints that resume
//! exactly, a CSV log, the EMA weights as a spec weight file, and a preview grid of samples.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ambient_cpu::config::{CorruptionMeta, ModelConfig, UNetConfig, PRECOND};
use ambient_cpu::io::atomic::write_bytes_atomic;
use ambient_cpu::io::dataset::CorruptedDataset;
use ambient_cpu::io::weights::save_weights;
use ambient_cpu::train::{Further, Mode, StepStats, TrainOptions, Trainer};
use anyhow::{anyhow, bail, Context, Result};

use crate::progress;

pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const LOG_FILE: &str = "train_log.csv";

#[derive(clap::Args, Clone)]
pub struct Args {
    #[command(flatten)]
    pub input: crate::data::DataArgs,
    /// Run directory: checkpoint, weights, log and preview go here.
    #[arg(long)]
    pub out: PathBuf,
    /// ambient (A~ = B A), naive (A~ = A) or clean (plain EDM on clean data).
    #[arg(long, default_value = "ambient")]
    pub mode: String,
    /// Further corruption for random inpainting: each observed pixel erased again with this probability.
    #[arg(long, default_value_t = 0.1)]
    pub delta: f32,
    /// Further corruption for box inpainting: side of the second box (default: the data's box side).
    #[arg(long)]
    pub box_side: Option<usize>,
    /// Total training steps (a resumed run continues up to this count).
    #[arg(long, default_value_t = 2000)]
    pub steps: u64,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Linear learning-rate warm-up, in steps.
    #[arg(long, default_value_t = 200)]
    pub warmup: u64,
    /// EMA half-life in thousands of images (EDM's ema_halflife_kimg).
    #[arg(long, default_value_t = 5.0)]
    pub ema_halflife_kimg: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Network width (channels at the first level).
    #[arg(long, default_value_t = 32)]
    pub ch: usize,
    /// Channel multipliers per level, comma separated.
    #[arg(long, default_value = "1,2,2", value_delimiter = ',')]
    pub mult: Vec<usize>,
    #[arg(long, default_value_t = 1)]
    pub blocks: usize,
    #[arg(long, default_value_t = 8)]
    pub groups: usize,
    /// Write a checkpoint every N steps (and always at the end).
    #[arg(long, default_value_t = 250)]
    pub checkpoint_every: u64,
    /// Continue from the run directory's checkpoint instead of refusing to overwrite it.
    #[arg(long)]
    pub resume: bool,
    /// Images in the preview sample grid written at the end (0 = none).
    #[arg(long, default_value_t = 64)]
    pub preview: usize,
    /// Where the network runs: cpu, or cuda (an NVIDIA GPU; needs a build with `--features cuda`).
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
}

/// Where the network runs (`--backend`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    #[default]
    Cpu,
    Cuda,
}

/// The message for `--backend cuda` in a build without the feature.
#[cfg(not(feature = "cuda"))]
pub const NO_CUDA_BUILD: &str = "--backend cuda: this ambient was built without CUDA support; rebuild it with `cargo build --release --features cuda`";

/// The GPU (device 0 with the network's kernels), or one clear error.
#[cfg(feature = "cuda")]
pub fn open_cuda() -> Result<ambient_cuda::cuda_ops::CudaOps> {
    ambient_cuda::cuda_ops::open_default().map_err(|e| anyhow!("--backend cuda: {e}"))
}

/// Takes the training steps: host-cpu's trainer itself, or the device trainer holding its state.
enum Stepper {
    Cpu,
    #[cfg(feature = "cuda")]
    Cuda(Box<ambient_cuda::train::DeviceTrainer<ambient_cuda::cuda_ops::CudaOps>>),
}

impl Stepper {
    fn new(backend: Backend, trainer: &Trainer) -> Result<Stepper> {
        match backend {
            Backend::Cpu => Ok(Stepper::Cpu),
            #[cfg(feature = "cuda")]
            Backend::Cuda => {
                let dev = ambient_cuda::train::DeviceTrainer::from_cpu(open_cuda()?, trainer)?;
                Ok(Stepper::Cuda(Box::new(dev)))
            }
            #[cfg(not(feature = "cuda"))]
            Backend::Cuda => {
                let _ = trainer;
                bail!(NO_CUDA_BUILD)
            }
        }
    }

    fn step(&mut self, trainer: &mut Trainer, ds: &CorruptedDataset) -> Result<StepStats, String> {
        match self {
            Stepper::Cpu => trainer.train_step(ds),
            #[cfg(feature = "cuda")]
            Stepper::Cuda(dev) => {
                let s = dev.train_step(ds).map_err(|e| e.to_string())?;
                trainer.step = s.step;
                Ok(s)
            }
        }
    }

    /// Brings the device's state into `trainer` (before a checkpoint).
    fn store(&self, _trainer: &mut Trainer) -> Result<()> {
        match self {
            Stepper::Cpu => Ok(()),
            #[cfg(feature = "cuda")]
            Stepper::Cuda(dev) => Ok(dev.store_into(_trainer)?),
        }
    }
}

fn further_for(a: &Args, ds: &CorruptedDataset) -> Result<(String, Further, Option<usize>)> {
    let meta_kind = ds
        .meta
        .as_ref()
        .and_then(|m| m.get("kind"))
        .and_then(|k| k.as_str())
        .unwrap_or("random")
        .to_string();
    let meta_box = ds
        .meta
        .as_ref()
        .and_then(|m| m.get("box"))
        .and_then(|b| b.as_u64())
        .map(|b| b as usize);
    match meta_kind.as_str() {
        "box" => {
            let side = a.box_side.or(meta_box).ok_or_else(|| {
                anyhow!("box-inpainted data needs --box-side (its record names none)")
            })?;
            Ok((meta_kind, Further::Box { side }, Some(side)))
        }
        "random" => Ok((meta_kind, Further::Random { delta: a.delta }, None)),
        other => bail!(
            "{}: corruption kind {other:?} cannot be trained on images",
            a.input.data.display()
        ),
    }
}

pub fn run(a: Args) -> Result<()> {
    train(a).map(|_| ())
}

/// Trains and returns the run directory's weight file path.
pub fn train(a: Args) -> Result<PathBuf> {
    let mode = match a.mode.as_str() {
        "ambient" => Mode::Ambient,
        "naive" => Mode::Naive,
        "clean" => Mode::Clean,
        other => bail!("--mode {other:?}: expected ambient, naive or clean"),
    };
    let ds = a.input.load()?;
    let (kind, further, box_side) = further_for(&a, &ds)?;
    let p = ds
        .meta
        .as_ref()
        .and_then(|m| m.get("p"))
        .and_then(|p| p.as_f64())
        .map(|p| p as f32)
        .unwrap_or((1.0 - ds.observed_fraction()) as f32);
    let ck_path = a.out.join(CHECKPOINT_FILE);
    if ds.h != ds.w {
        bail!(
            "{}: images are {} x {}; the network takes square images",
            a.input.data.display(),
            ds.h,
            ds.w
        );
    }
    let requested = ModelConfig {
        unet: UNetConfig {
            img_channels: ds.c,
            img_resolution: ds.h,
            ch: a.ch,
            mult: a.mult.clone(),
            blocks: a.blocks,
            groups: a.groups,
            sigma_data: 0.5,
        },
        precond: PRECOND.into(),
        corruption: CorruptionMeta {
            kind,
            p: if mode == Mode::Clean { 0.0 } else { p },
            delta: match (mode, further) {
                (Mode::Ambient, Further::Random { delta }) => delta,
                _ => 0.0,
            },
            r#box: box_side,
            mode: mode.as_str().into(),
        },
    };
    requested
        .unet
        .validate()
        .map_err(|e| anyhow!("network config: {e}"))?;
    let mut trainer = if ck_path.exists() {
        if !a.resume {
            bail!(
                "{}: a checkpoint is already there; pass --resume to continue it or choose another --out",
                ck_path.display()
            );
        }
        let t = Trainer::resume(&ck_path, Some(&requested))?;
        eprintln!("resuming {} at step {}", ck_path.display(), t.step);
        t
    } else {
        let mut opts = TrainOptions::defaults(mode, further);
        opts.batch = a.batch;
        opts.adam.lr = a.lr;
        opts.adam.warmup_steps = a.warmup;
        opts.ema = ambient_cpu::optim::EmaSchedule::HalfLife {
            halflife_kimg: a.ema_halflife_kimg,
            rampup_ratio: Some(0.05),
        };
        opts.seed = a.seed;
        Trainer::new(requested.unet, requested.corruption, opts).map_err(|e| anyhow!("{e}"))?
    };
    trainer.check_data(&ds, &a.input.data)?;
    let mut stepper = Stepper::new(a.backend, &trainer)?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("{}: cannot create the run directory", a.out.display()))?;
    let log_path = a.out.join(LOG_FILE);
    let mut log = open_log(&log_path, trainer.step)?;
    let total = a.steps;
    let pb = progress::bar(total, "train");
    pb.set_position(trainer.step);
    let t0 = Instant::now();
    let start_step = trainer.step;
    let mut recent = Vec::new();
    while trainer.step < total {
        let s = stepper
            .step(&mut trainer, &ds)
            .map_err(|e| anyhow!("{}: {e}", a.input.data.display()))?;
        recent.push(s.loss);
        writeln!(
            log,
            "{},{},{},{},{:.3}",
            s.step,
            s.loss,
            s.grad_norm,
            s.lr,
            t0.elapsed().as_secs_f64()
        )
        .with_context(|| format!("{}: cannot append", log_path.display()))?;
        if s.step % 10 == 0 || s.step == total {
            let mean = recent.iter().sum::<f32>() / recent.len() as f32;
            pb.set_message(format!("loss {mean:.4}"));
            recent.clear();
            if pb.is_hidden() && (s.step % 100 == 0 || s.step == total) {
                // No terminal (a log file, CI): a plain line every 100 steps instead of the bar.
                let done = (s.step - start_step) as f64;
                let rate = done / t0.elapsed().as_secs_f64();
                let eta = (total - s.step) as f64 / rate.max(1e-9);
                eprintln!(
                    "step {}/{total}  loss {mean:.4}  {rate:.2} steps/s  ETA {:.0} min",
                    s.step,
                    eta / 60.0
                );
            }
        }
        pb.set_position(s.step);
        if s.step % a.checkpoint_every.max(1) == 0 || s.step == total {
            log.flush().ok();
            stepper.store(&mut trainer)?;
            trainer.save_checkpoint(&ck_path)?;
            save_weights(&a.out.join(WEIGHTS_FILE), &trainer.config, &trainer.ema)?;
        }
    }
    pb.finish();
    if trainer.step == total && !a.out.join(WEIGHTS_FILE).exists() {
        save_weights(&a.out.join(WEIGHTS_FILE), &trainer.config, &trainer.ema)?;
    }
    eprintln!(
        "trained {} steps in {:.1} s; weights (EMA) in {}",
        total,
        t0.elapsed().as_secs_f64(),
        a.out.join(WEIGHTS_FILE).display()
    );
    if a.preview > 0 {
        let path = a.out.join("preview_samples.png");
        crate::cmd::sample::sample_to(
            &a.out.join(WEIGHTS_FILE),
            &crate::cmd::sample::quick_options(a.preview, a.seed),
            &path,
            None,
        )?;
    }
    Ok(a.out.join(WEIGHTS_FILE))
}

/// Opens the CSV log for appending (writing the header when new). Lines after `step` (from a
/// run that stopped after its last checkpoint) are dropped, so a resumed log has no duplicates.
fn open_log(path: &Path, step: u64) -> Result<std::fs::File> {
    let header = "step,loss,grad_norm,lr,elapsed_s\n";
    let mut text = std::fs::read_to_string(path).unwrap_or_default();
    if text.is_empty() || step == 0 {
        text = header.to_string();
    } else {
        let keep: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.split(',')
                    .next()
                    .and_then(|s| s.parse::<u64>().ok())
                    .is_none_or(|s| s <= step)
            })
            .collect();
        text = keep.join("\n") + "\n";
    }
    write_bytes_atomic(path, text.as_bytes())?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("{}: cannot open the log", path.display()))
}
