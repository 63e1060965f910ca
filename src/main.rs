//! `ambient`: learn a clean image distribution from corrupted measurements (Ambient Diffusion),
//! then restore measurements (NFE = 1) or generate new images. This file only parses the
//! command line; each subcommand lives in `cmd/`.

mod cmd;
mod data;
mod progress;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ambient",
    version,
    about = "Ambient Diffusion: learn clean distributions from corrupted data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a corrupted dataset (measurements + masks) from clean images.
    Corrupt(cmd::corrupt::Args),
    /// Train AmbientUNet on measurements and masks (modes: ambient, naive, clean).
    Train(cmd::train::Args),
    /// Generate images with a trained model (fixed-mask sampler or reconstruction guidance).
    Sample(cmd::sample::Args),
    /// Restore corrupted measurements in one network call (NFE = 1).
    Restore(cmd::restore::Args),
    /// Quantize a trained model to int8 for single-step restoration at a fixed sigma.
    Quantize(cmd::quantize::Args),
    /// Show what a weight file or checkpoint holds.
    Info(cmd::info::Args),
    /// Corrupt MNIST at p = 0.8, train a small run, restore and sample: the README's first command.
    Quickstart(cmd::quickstart::Args),
    /// Evaluation for the report: PSNR/SSIM of restorations vs baselines, classifier, samples.
    Eval(cmd::eval::Args),
    /// Reproducible experiments: `paper` regenerates docs/results.md (Table 1, Figure 3, memorization).
    Experiment(cmd::experiment::Args),
}

fn main() {
    // Training frees and reallocates the same large buffers every step: keep them (about 10%
    // faster steps; host-cpu malloc_tuning.rs).
    ambient_cpu::malloc_tuning::keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Corrupt(a) => cmd::corrupt::run(a),
        Command::Train(a) => cmd::train::run(a),
        Command::Sample(a) => cmd::sample::run(a),
        Command::Restore(a) => cmd::restore::run(a),
        Command::Quantize(a) => cmd::quantize::run(a),
        Command::Info(a) => cmd::info::run(a),
        Command::Quickstart(a) => cmd::quickstart::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Experiment(a) => cmd::experiment::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
