//! `ambient sample`: generates images with a trained model (fixed-mask sampler, Euler or Heun,
//! or reconstruction guidance with K masks) and writes a PNG grid and a uint8 `.npy`.

use std::path::{Path, PathBuf};

use ambient_cpu::io::dataset::write_images_npy;
use ambient_cpu::io::png_grid::render_grid;
use ambient_cpu::io::weights::load_weights;
use ambient_cpu::sample::{generate, SampleOptions};
use ambient_cpu::unet::UNet;
use anyhow::{anyhow, Context, Result};

use crate::cmd::train::Backend;
use crate::progress;

#[derive(clap::Args)]
pub struct Args {
    /// Weight file (.safetensors, spec names, config in its metadata).
    #[arg(long)]
    pub weights: PathBuf,
    /// Output directory: samples.png and samples.npy (uint8 N x H x W x C).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 64)]
    pub n: usize,
    /// Sampler steps N (EDM time steps).
    #[arg(long, default_value_t = 32)]
    pub steps: usize,
    /// Use Heun's second-order correction (about twice the network calls).
    #[arg(long)]
    pub heun: bool,
    /// Reconstruction guidance with K masks (eq. 3.4) instead of the fixed-mask sampler.
    #[arg(long)]
    pub guidance: Option<usize>,
    /// Guidance weight w.
    #[arg(long, default_value_t = 0.1)]
    pub w: f32,
    #[arg(long, default_value_t = 0.002)]
    pub sigma_min: f32,
    #[arg(long, default_value_t = 80.0)]
    pub sigma_max: f32,
    #[arg(long, default_value_t = 7.0)]
    pub rho: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where the network runs: cpu, or cuda (an NVIDIA GPU; needs a build with `--features cuda`).
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
}

/// The options `train` uses for its preview grid.
pub fn quick_options(n: usize, seed: u64) -> SampleOptions {
    SampleOptions {
        n,
        steps: 32,
        sigma_min: 0.002,
        sigma_max: 80.0,
        rho: 7.0,
        heun: false,
        guidance: None,
        seed,
    }
}

/// Samples with `opts` from `weights` into a PNG grid (and a `.npy` if asked), on the CPU.
pub fn sample_to(
    weights: &Path,
    opts: &SampleOptions,
    png: &Path,
    npy: Option<&Path>,
) -> Result<()> {
    sample_on(Backend::Cpu, weights, opts, png, npy)
}

/// [`sample_to`] on `backend`.
pub fn sample_on(
    backend: Backend,
    weights: &Path,
    opts: &SampleOptions,
    png: &Path,
    npy: Option<&Path>,
) -> Result<()> {
    let (cfg, params) = load_weights(weights)?;
    let net = UNet::new(&cfg.unet).map_err(|e| anyhow!("{}: {e}", weights.display()))?;
    let pb = progress::bar(opts.steps as u64, "sample");
    // Steps of every run of samples (host-cpu's generate runs at most SAMPLE_CHUNK at once).
    let step = |s: ambient_core::sampler::StepInfo| {
        pb.set_length(s.steps as u64);
        pb.set_position(s.step as u64 + 1)
    };
    let u = &cfg.unet;
    let dims = (opts.n, u.img_channels, u.img_resolution, u.img_resolution);
    let x = match backend {
        Backend::Cpu => generate(&net, &params, &cfg, opts, step)
            .map(|x| x.into_raw_vec_and_offset().0)
            .map_err(|e| anyhow!("{}: {e}", weights.display()))?,
        #[cfg(feature = "cuda")]
        Backend::Cuda => {
            let ops = crate::cmd::train::open_cuda()?;
            ambient_cuda::infer::generate(&ops, &params, &cfg, opts, step)
                .map_err(|e| anyhow!("{}: {e}", weights.display()))?
        }
        #[cfg(not(feature = "cuda"))]
        Backend::Cuda => anyhow::bail!(crate::cmd::train::NO_CUDA_BUILD),
    };
    pb.finish();
    let data = &x[..];
    let cols = (opts.n as f64).sqrt().ceil() as usize;
    render_grid(png, dims, data, cols.max(1))?
        .upscale(3)
        .write_png(png)?;
    if let Some(npy) = npy {
        write_images_npy(npy, dims, data)?;
    }
    eprintln!("wrote {}", png.display());
    Ok(())
}

pub fn run(a: Args) -> Result<()> {
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("{}: cannot create", a.out.display()))?;
    let opts = SampleOptions {
        n: a.n,
        steps: a.steps,
        sigma_min: a.sigma_min,
        sigma_max: a.sigma_max,
        rho: a.rho,
        heun: a.heun,
        guidance: a.guidance.map(|k| (k, a.w)),
        seed: a.seed,
    };
    sample_on(
        a.backend,
        &a.weights,
        &opts,
        &a.out.join("samples.png"),
        Some(&a.out.join("samples.npy")),
    )
}
