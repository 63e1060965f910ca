//! `ambient eval classifier-train`: trains the MNIST classifier on the clean labelled training
//! images, reports its accuracy on the test set and the training time, and saves its weights.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ambient_cpu::eval::classifier::{Classifier, ClassifierConfig};
use ambient_cpu::eval::classifier_file::save_classifier;
use ambient_cpu::eval::classifier_train::{accuracy, train_classifier, ClassifierTraining};
use ambient_cpu::io::dataset::CorruptedDataset;
use ambient_cpu::io::idx::read_idx_labels;
use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::progress;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "models/mnist_classifier.safetensors")]
    pub out: PathBuf,
    #[arg(long, default_value = "data/mnist/train-images-idx3-ubyte.gz")]
    pub train_images: PathBuf,
    #[arg(long, default_value = "data/mnist/train-labels-idx1-ubyte.gz")]
    pub train_labels: PathBuf,
    #[arg(long, default_value = "data/mnist/t10k-images-idx3-ubyte.gz")]
    pub test_images: PathBuf,
    #[arg(long, default_value = "data/mnist/t10k-labels-idx1-ubyte.gz")]
    pub test_labels: PathBuf,
    /// Train on the first N training images only.
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Clean IDX images in [-1, 1] (NCHW) and their labels, the first `limit` if given.
pub fn labelled(
    images: &Path,
    labels: &Path,
    limit: Option<usize>,
) -> Result<(CorruptedDataset, Vec<u8>)> {
    let mut ds = CorruptedDataset::load_idx(images)?;
    let mut l = read_idx_labels(labels)?;
    if l.len() != ds.n {
        bail!(
            "{}: {} labels for the {} images of {}",
            labels.display(),
            l.len(),
            ds.n,
            images.display()
        );
    }
    if let Some(k) = limit.filter(|&k| k < ds.n) {
        ds.n = k;
        ds.measurements.truncate(k * ds.image_len());
        ds.masks.truncate(k * ds.image_len());
        l.truncate(k);
    }
    Ok((ds, l))
}

pub fn run(a: Args) -> Result<()> {
    let (train, train_labels) = labelled(&a.train_images, &a.train_labels, a.limit)?;
    let (test, test_labels) = labelled(&a.test_images, &a.test_labels, None)?;
    let mut cfg = ClassifierConfig::mnist();
    cfg.img_channels = train.c;
    cfg.img_resolution = train.h;
    if train.h != train.w || (test.c, test.h, test.w) != (train.c, train.h, train.w) {
        bail!("train and test images must be square and of one size");
    }
    let clf = Classifier::new(&cfg)?;
    let opts = ClassifierTraining {
        epochs: a.epochs,
        batch: a.batch,
        lr: a.lr,
        seed: a.seed,
    };
    let steps = a.epochs * train.n.div_ceil(a.batch.max(1));
    let pb = progress::bar(steps as u64, "classifier");
    let t0 = Instant::now();
    let mut avg = None::<f64>;
    let params = train_classifier(
        &clf,
        &train.measurements,
        &train_labels,
        &opts,
        |epoch, step, loss| {
            let m = avg.map_or(loss, |m| 0.98 * m + 0.02 * loss);
            avg = Some(m);
            pb.set_position(step as u64);
            pb.set_message(format!("epoch {} loss {m:.4}", epoch + 1));
        },
    )?;
    pb.finish();
    let secs = t0.elapsed().as_secs_f64();
    let acc = accuracy(&clf, &params, &test.measurements, &test_labels, 256)?;
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    save_classifier(&a.out, &cfg, &params)?;
    println!(
        "classifier: {} training images, {} epochs in {secs:.1} s; test accuracy {:.2}% on {} images; wrote {}",
        train.n, a.epochs, 100.0 * acc, test.n, a.out.display()
    );
    super::write_json(
        &a.out.with_extension("json"),
        &json!({
            "config": cfg,
            "train_images": train.n,
            "epochs": a.epochs, "batch": a.batch, "lr": a.lr.to_string().parse::<f64>().unwrap_or(f64::NAN), "seed": a.seed,
            "train_seconds": secs,
            "test_accuracy": acc,
            "test_images": test.n,
        }),
    )
}
