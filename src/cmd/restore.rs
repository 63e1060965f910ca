//! `ambient restore`: single-step restoration (NFE = 1) of corrupted measurements, at a sigma
//! given with --sigma or chosen on held-out measurements (no clean image needed; see
//! `ambient_cpu::restore`). Writes restorations.npy (uint8 N x H x W x C) and a PNG grid of
//! measurement / restoration pairs; with --clean, reports PSNR against the clean images.

use std::path::{Path, PathBuf};

use ambient_cpu::io::dataset::{write_images_npy, CorruptedDataset};
use ambient_cpu::io::png_grid::render_pairs_grid;
use ambient_cpu::io::weights::load_weights;
use ambient_cpu::metrics::psnr;
use ambient_cpu::quantize::runner::{blob_config, restore_dataset};
use ambient_cpu::restore::{
    choose_restore_sigma, restore_measurements, SigmaChoice, SIGMA_CANDIDATES,
};
use ambient_cpu::unet::UNet;
use anyhow::{anyhow, bail, Context, Result};

use crate::data;
use crate::progress;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, required_unless_present = "int8")]
    pub weights: Option<PathBuf>,
    /// Restore with this int8 model blob (from `ambient quantize`) instead of the f32 weights,
    /// at the sigma it was quantized for (--sigma must be auto or that sigma).
    #[arg(long, conflicts_with = "weights")]
    pub int8: Option<PathBuf>,
    #[command(flatten)]
    pub input: crate::data::DataArgs,
    /// Output directory: restorations.npy and pairs.png.
    #[arg(long)]
    pub out: PathBuf,
    /// Restoration noise level s_r, or "auto": chosen on up to --holdout of the measurements by
    /// hiding 20% of their observed pixels and predicting them.
    #[arg(long, default_value = "auto")]
    pub sigma: String,
    #[arg(long, default_value_t = 200)]
    pub holdout: usize,
    /// Clean images of the same measurements (IDX, .npy or PNG folder), to report PSNR.
    #[arg(long)]
    pub clean: Option<PathBuf>,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Where the restorations run: cpu, or cuda (needs `--features cuda`; `--sigma auto` is
    /// still chosen on the CPU).
    #[arg(long, value_enum, default_value_t = crate::cmd::train::Backend::Cpu)]
    pub backend: crate::cmd::train::Backend,
}

pub fn run(a: Args) -> Result<()> {
    if let Some(blob) = &a.int8 {
        let ds = a.input.load()?;
        let bytes =
            std::fs::read(blob).with_context(|| format!("{}: cannot read", blob.display()))?;
        let blob_sigma = blob_config(&bytes)
            .map_err(|e| anyhow!("{}: {e}", blob.display()))?
            .sigma;
        if a.sigma != "auto" && a.sigma.parse::<f32>().ok() != Some(blob_sigma) {
            bail!(
                "--sigma {}: {} was quantized for sigma {blob_sigma} (re-quantize for another)",
                a.sigma,
                blob.display()
            );
        }
        let (sigma, r) =
            restore_dataset(&bytes, &ds).map_err(|e| anyhow!("{}: {e}", blob.display()))?;
        return finish(&a, &ds, sigma, &r);
    }
    let weights = a
        .weights
        .as_ref()
        .expect("clap requires --weights without --int8");
    let cuda = open_backend(a.backend)?;
    let (cfg, params) = load_weights(weights)?;
    let net = UNet::new(&cfg.unet).map_err(|e| anyhow!("{}: {e}", weights.display()))?;
    let ds = a.input.load()?;
    let u = &cfg.unet;
    if (ds.c, ds.h, ds.w) != (u.img_channels, u.img_resolution, u.img_resolution) {
        bail!(
            "{}: images are {} x {} x {} but {} takes {} x {} x {}",
            a.input.data.display(),
            ds.c,
            ds.h,
            ds.w,
            weights.display(),
            u.img_channels,
            u.img_resolution,
            u.img_resolution
        );
    }
    let (sigma, choice) = resolve_sigma(&a.sigma, a.holdout, &net, &params, &ds, &a.input.data)?;
    if let Some(choice) = choice {
        eprintln!(
            "restoration sigma chosen on {} held-out measurements ({} hidden observed pixels):",
            choice.images, choice.hidden_pixels
        );
        for (s, mse) in &choice.scores {
            let mark = if *s == choice.sigma {
                "  <- chosen"
            } else {
                ""
            };
            eprintln!("  sigma {s:<5} held-out MSE {mse:.5}{mark}");
        }
    }
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("{}: cannot create", a.out.display()))?;
    let dims = (ds.n, ds.c, ds.h, ds.w);
    let pb = progress::bar(ds.n as u64, "restore");
    let done = |d: usize| pb.set_position(d as u64);
    let (y, m) = (&ds.measurements, &ds.masks);
    let r = match cuda.as_ref() {
        None => restore_measurements(&net, &params, dims, y, m, sigma, a.batch, done)
            .map_err(anyhow::Error::from),
        #[cfg(feature = "cuda")]
        Some(ops) => ambient_cuda::infer::restore_measurements(
            ops, &params, &cfg, dims, y, m, sigma, a.batch, done,
        )
        .map_err(|e| anyhow!(e)),
        #[cfg(not(feature = "cuda"))]
        Some(never) => match *never {},
    }
    .map_err(|e| anyhow!("{}: {e}", a.input.data.display()))?;
    pb.finish();
    finish(&a, &ds, sigma, &r)
}

/// The GPU for `--backend cuda` (opened first, so that a machine without one fails at once).
#[cfg(feature = "cuda")]
fn open_backend(b: crate::cmd::train::Backend) -> Result<Option<ambient_cuda::cuda_ops::CudaOps>> {
    match b {
        crate::cmd::train::Backend::Cpu => Ok(None),
        crate::cmd::train::Backend::Cuda => crate::cmd::train::open_cuda().map(Some),
    }
}

#[cfg(not(feature = "cuda"))]
fn open_backend(b: crate::cmd::train::Backend) -> Result<Option<std::convert::Infallible>> {
    match b {
        crate::cmd::train::Backend::Cpu => Ok(None),
        crate::cmd::train::Backend::Cuda => bail!(crate::cmd::train::NO_CUDA_BUILD),
    }
}

/// Writes restorations.npy and pairs.png, and reports PSNR if clean images are given.
fn finish(a: &Args, ds: &CorruptedDataset, sigma: f32, r: &[f32]) -> Result<()> {
    let dims = (ds.n, ds.c, ds.h, ds.w);
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("{}: cannot create", a.out.display()))?;
    write_images_npy(&a.out.join("restorations.npy"), dims, r)?;
    let show = ds.n.min(32);
    let l = show * ds.image_len();
    let pairs = a.out.join("pairs.png");
    render_pairs_grid(
        &pairs,
        (show, ds.c, ds.h, ds.w),
        &ds.measurements[..l],
        &ds.masks[..l],
        &r[..l],
        8,
    )?
    .upscale(3)
    .write_png(&pairs)?;
    eprintln!(
        "restored {} images at sigma {sigma}; wrote {}",
        ds.n,
        a.out.display()
    );
    if let Some(clean) = &a.clean {
        report_psnr(clean, ds, r)?;
    }
    Ok(())
}

fn report_psnr(clean: &Path, ds: &CorruptedDataset, r: &[f32]) -> Result<()> {
    let c = data::take(data::load(clean, None)?, Some(ds.n));
    if (c.n, c.c, c.h, c.w) != (ds.n, ds.c, ds.h, ds.w) {
        bail!(
            "{}: {} clean images of {} x {} x {} do not match the {} measurements",
            clean.display(),
            c.n,
            c.c,
            c.h,
            c.w,
            ds.n
        );
    }
    let p = psnr(&c.measurements, r, ds.image_len());
    let z = psnr(&c.measurements, &ds.measurements, ds.image_len());
    println!(
        "PSNR (mean over {} images, dB): restoration {p:.2}, measurement with zeros {z:.2}",
        ds.n
    );
    Ok(())
}

/// `--sigma`: a positive number, or "auto", chosen on the first `holdout` measurements of `ds`
/// (no clean image needed; see `ambient_cpu::restore`). Returns the sigma and, for "auto", the
/// candidates' scores. `data` names the measurements in errors.
pub fn resolve_sigma(
    spec: &str,
    holdout: usize,
    net: &UNet,
    params: &ambient_cpu::params::ParamStore,
    ds: &CorruptedDataset,
    data: &Path,
) -> Result<(f32, Option<SigmaChoice>)> {
    if spec == "auto" {
        let held = data::take(ds.clone(), Some(holdout));
        let choice = choose_restore_sigma(net, params, &held, &SIGMA_CANDIDATES, 0.2, 1)
            .map_err(|e| anyhow!("{}: {e}", data.display()))?;
        let (lo, hi) = (
            SIGMA_CANDIDATES[0],
            SIGMA_CANDIDATES[SIGMA_CANDIDATES.len() - 1],
        );
        if choice.sigma == lo || choice.sigma == hi {
            eprintln!(
                "warning: --sigma auto chose {}, the edge of its candidates {lo}..{hi}: the best \
                 sigma may lie outside them; try --sigma with a value beyond it",
                choice.sigma
            );
        }
        return Ok((choice.sigma, Some(choice)));
    }
    let s: f32 = spec
        .parse()
        .map_err(|_| anyhow!("--sigma {spec:?}: a number or \"auto\""))?;
    if !(s.is_finite() && s > 0.0) {
        bail!("--sigma {s}: must be positive and finite");
    }
    Ok((s, None))
}
