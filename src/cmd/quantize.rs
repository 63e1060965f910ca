//! `ambient quantize`: post-training int8 quantization of a trained model for single-step
//! restoration at a fixed sigma (see `ambient_cpu::quantize`). Calibrates on corrupted
//! measurements and writes the model blob that `ambient restore --int8` and the firmware run.

use std::path::PathBuf;

use ambient_cpu::io::atomic::write_bytes_atomic;
use ambient_cpu::io::weights::load_weights;
use ambient_cpu::quantize::quantize;
use anyhow::{anyhow, bail, Result};

use crate::data;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    pub weights: PathBuf,
    /// Calibration measurements and masks (same sources as `train`); use held-out ones.
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long)]
    pub masks: Option<PathBuf>,
    /// Calibration images: the first N of --data.
    #[arg(long, default_value_t = 256)]
    pub limit: usize,
    /// The restoration noise level s_r the graph is folded for.
    #[arg(long)]
    pub sigma: f32,
    /// The blob to write.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    if !(a.sigma.is_finite() && a.sigma > 0.0) {
        bail!("--sigma {}: must be positive and finite", a.sigma);
    }
    let (cfg, params) = load_weights(&a.weights)?;
    let ds = data::take(data::load(&a.data, a.masks.as_deref())?, Some(a.limit));
    let q = quantize(
        &cfg.unet,
        &params,
        a.sigma,
        &ds.measurements,
        &ds.masks,
        ds.n,
    )
    .map_err(|e| anyhow!("{}: {e}", a.weights.display()))?;
    write_bytes_atomic(&a.out, &q.blob)?;
    eprintln!(
        "quantized {} for sigma {} on {} calibration images: {} tensors, {} bytes; \
         runs in {} bytes of scratch ({} of them activation arena); wrote {}",
        a.weights.display(),
        a.sigma,
        q.ranges.images,
        q.tensors,
        q.blob.len(),
        4 * q.scratch_words,
        q.arena_bytes,
        a.out.display()
    );
    Ok(())
}
