//! `ambient quickstart`: the README's first command. Corrupts bundled MNIST at p = 0.8 (random
//! inpainting), trains a small ambient run on the measurements only, then restores held-out test
//! measurements (NFE = 1, PSNR against the clean test images) and draws samples, leaving
//! pictures in the run directory.

use std::path::PathBuf;

use anyhow::Result;

use super::{corrupt, restore, sample, train};
use crate::data::DataArgs;

#[derive(clap::Args)]
pub struct Args {
    /// Run directory.
    #[arg(long, default_value = "runs/quickstart")]
    pub out: PathBuf,
    /// MNIST directory (IDX .gz files).
    #[arg(long, default_value = "data/mnist")]
    pub mnist: PathBuf,
    #[arg(long, default_value_t = 0.8)]
    pub p: f32,
    /// Training steps (about a minute per 100 on 2 cores at the default batch).
    #[arg(long, default_value_t = 400)]
    pub steps: u64,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Training images used.
    #[arg(long, default_value_t = 20000)]
    pub train_images: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(a: Args) -> Result<()> {
    std::fs::create_dir_all(&a.out)?;
    let train_dir = a.out.join("train_data");
    let test_dir = a.out.join("test_data");
    let test_images = a.mnist.join("t10k-images-idx3-ubyte.gz");
    for (input, dir, limit, seed) in [
        (
            a.mnist.join("train-images-idx3-ubyte.gz"),
            &train_dir,
            a.train_images,
            a.seed,
        ),
        (test_images.clone(), &test_dir, 256, a.seed + 1),
    ] {
        if dir.exists() {
            eprintln!("using existing {}", dir.display());
            continue;
        }
        corrupt::run(corrupt::Args {
            input,
            out: dir.clone(),
            kind: "random".into(),
            p: a.p,
            box_side: None,
            limit: Some(limit),
            seed,
        })?;
    }
    let run_dir = a.out.join("model");
    let weights = train::train(train::Args {
        input: DataArgs::all(train_dir),
        out: run_dir.clone(),
        mode: "ambient".into(),
        delta: 0.1,
        box_side: None,
        steps: a.steps,
        batch: a.batch,
        lr: 1e-3,
        warmup: 100,
        ema_halflife_kimg: 2.0,
        seed: a.seed,
        ch: 32,
        mult: vec![1, 2, 2],
        blocks: 1,
        groups: 8,
        checkpoint_every: 100,
        resume: true,
        preview: 0,
        backend: train::Backend::Cpu,
    })?;
    restore::run(restore::Args {
        weights: Some(weights.clone()),
        int8: None,
        input: DataArgs::all(test_dir),
        out: a.out.join("restore"),
        sigma: "auto".into(),
        holdout: 128,
        clean: Some(test_images),
        batch: 64,
        backend: train::Backend::Cpu,
    })?;
    sample::run(sample::Args {
        weights,
        out: a.out.join("samples"),
        n: 64,
        steps: 32,
        heun: false,
        guidance: None,
        w: 0.1,
        sigma_min: 0.002,
        sigma_max: 80.0,
        rho: 7.0,
        seed: a.seed,
        backend: train::Backend::Cpu,
    })?;
    eprintln!(
        "done: see {}/restore/pairs.png (measurement | restoration) and {}/samples/samples.png",
        a.out.display(),
        a.out.display()
    );
    Ok(())
}
