//! `ambient eval`: offline evaluation for the paper-claims report. `restore` compares NFE = 1
//! ambient restoration with classical inpainting and DPS by PSNR and SSIM; `classifier-train`
//! trains the MNIST classifier whose features `samples` uses for the Fréchet distance to the
//! clean test set and for memorization statistics.

pub mod classifier_train;
pub mod restore;
pub mod samples;

use std::path::Path;

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// PSNR / SSIM (and NFE) of ambient restoration, classical inpainting and DPS.
    Restore(restore::Args),
    /// Train the MNIST classifier (features for the Fréchet distance and memorization).
    ClassifierTrain(classifier_train::Args),
    /// Fréchet distance of samples to the clean test set, and memorization statistics.
    Samples(samples::Args),
}

pub fn run(a: Args) -> Result<()> {
    match a.command {
        Command::Restore(a) => restore::run(a),
        Command::ClassifierTrain(a) => classifier_train::run(a),
        Command::Samples(a) => samples::run(a),
    }
}

/// Writes `value` as pretty JSON to `path`, atomically.
pub(crate) fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).context("JSON")?;
    ambient_cpu::io::atomic::write_bytes_atomic(path, text.as_bytes())?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
