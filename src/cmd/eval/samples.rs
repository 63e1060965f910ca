//! `ambient eval samples`: the Fréchet distance between the classifier features of generated
//! samples and of the clean test set (with the same distance for as many clean training images
//! as there are samples, the floor a perfect generator would reach at this sample size), the
//! predicted-class counts, and memorization: each sample's top-1 cosine similarity to the
//! training set in classifier features (centred on the training mean) and in pixels (ink,
//! `(x + 1) / 2`), with quantiles, the fraction above 0.95 and histogram PNGs with JSON
//! legends, beside the same statistics of as many held-out test images (what a generator that
//! memorizes nothing would score).

use std::path::{Path, PathBuf};

use ambient_cpu::eval::classifier::Classifier;
use ambient_cpu::eval::classifier_file::load_classifier;
use ambient_cpu::eval::classifier_train::{predictions, run_classifier};
use ambient_cpu::eval::frechet::{frechet_distance, GaussianFit};
use ambient_cpu::eval::histogram::{render_histogram, Histogram};
use ambient_cpu::eval::memorization::{
    centred, column_mean, ink, similarity_stats, top1_cosine, SimilarityStats,
};
use ambient_cpu::io::dataset::CorruptedDataset;
use anyhow::{bail, Context, Result};
use ndarray::Array2;
use serde_json::json;

/// Histogram bins over [0, 1].
const BINS: usize = 50;

#[derive(clap::Args)]
pub struct Args {
    /// Generated samples: .npy (uint8 or f32 in [-1, 1], N x H x W [x C]).
    #[arg(long)]
    pub samples: PathBuf,
    /// Classifier weight file (`ambient eval classifier-train`).
    #[arg(long, default_value = "models/mnist_classifier.safetensors")]
    pub classifier: PathBuf,
    #[arg(long, default_value = "data/mnist/train-images-idx3-ubyte.gz")]
    pub train_images: PathBuf,
    #[arg(long, default_value = "data/mnist/t10k-images-idx3-ubyte.gz")]
    pub test_images: PathBuf,
    /// Use the first N training images for memorization (all by default).
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Use the first N test images as the Fréchet reference (all by default).
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Directory for the histograms and memorization.json (default: `eval/` beside the samples).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Cosine similarity above which a sample counts as a near copy.
    #[arg(long, default_value_t = 0.95)]
    pub threshold: f64,
    /// Also write the summary as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn load(path: &Path, limit: Option<usize>) -> Result<CorruptedDataset> {
    let ds = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
    {
        CorruptedDataset::load_npy(path, None)?
    } else {
        CorruptedDataset::load_idx(path)?
    };
    Ok(crate::data::take(ds, limit))
}

fn features(
    clf: &Classifier,
    params: &ambient_cpu::params::ParamStore,
    ds: &CorruptedDataset,
) -> Result<(Array2<f32>, Array2<f32>)> {
    Ok(run_classifier(clf, params, &ds.measurements, 256)?)
}

fn stats_json(s: &SimilarityStats) -> serde_json::Value {
    serde_json::to_value(s).expect("plain struct")
}

pub fn run(a: Args) -> Result<()> {
    let (cfg, params) = load_classifier(&a.classifier)?;
    let clf = Classifier::new(&cfg)?;
    let samples = load(&a.samples, None)?;
    let test = load(&a.test_images, a.test_limit)?;
    let train = load(&a.train_images, a.train_limit)?;
    for (what, d) in [
        ("samples", &samples),
        ("test images", &test),
        ("training images", &train),
    ] {
        if (d.c, d.h, d.w) != (cfg.img_channels, cfg.img_resolution, cfg.img_resolution) {
            bail!(
                "{what} are {} x {} x {} but the classifier takes {} x {r} x {r}",
                d.c,
                d.h,
                d.w,
                cfg.img_channels,
                r = cfg.img_resolution
            );
        }
    }
    if samples.n < 2 {
        bail!(
            "{}: need at least 2 samples for a covariance",
            a.samples.display()
        );
    }
    let out = a.out.clone().unwrap_or_else(|| {
        a.samples
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("eval")
    });
    std::fs::create_dir_all(&out).with_context(|| format!("{}: cannot create", out.display()))?;
    eprintln!(
        "features of {} samples, {} test and {} training images",
        samples.n, test.n, train.n
    );
    let (fs, ls) = features(&clf, &params, &samples)?;
    let (ft, _) = features(&clf, &params, &test)?;
    let (fr, _) = features(&clf, &params, &train)?;
    let d = cfg.hidden;
    let slice = |f: &Array2<f32>| f.as_slice().expect("standard layout").to_vec();
    let (vs, vt, vr) = (slice(&fs), slice(&ft), slice(&fr));
    let fit_t = GaussianFit::from_features(&vt, d)?;
    let fd = frechet_distance(&GaussianFit::from_features(&vs, d)?, &fit_t)?;
    let floor_n = samples.n.min(train.n);
    let fd_floor = frechet_distance(&GaussianFit::from_features(&vr[..floor_n * d], d)?, &fit_t)?;
    let mut classes = vec![0usize; cfg.classes];
    predictions(&ls)
        .iter()
        .for_each(|&c| classes[c as usize] += 1);

    // Reference: as many held-out test images as samples, which no model has memorized.
    let n_ref = samples.n.min(test.n);
    let mean = column_mean(&vr, d)?;
    let train_feat = centred(&vr, &mean);
    let train_ink = ink(&train.measurements);
    let l = samples.image_len();
    let spaces = [
        (
            "features",
            centred(&vs, &mean),
            centred(&vt[..n_ref * d], &mean),
            &train_feat,
            d,
        ),
        (
            "pixels",
            ink(&samples.measurements),
            ink(&test.measurements[..n_ref * l]),
            &train_ink,
            l,
        ),
    ];
    let mut report = serde_json::Map::new();
    for (name, queries, reference, train_rows, dim) in spaces {
        let top1 = top1_cosine(&queries, train_rows, dim)?;
        let v: Vec<f32> = top1.iter().map(|t| t.0).collect();
        let s = similarity_stats(&v, a.threshold)?;
        let rv: Vec<f32> = top1_cosine(&reference, train_rows, dim)?
            .iter()
            .map(|t| t.0)
            .collect();
        let rs = similarity_stats(&rv, a.threshold)?;
        let h = Histogram::new(&v, 0.0, 1.0, BINS)?;
        let png = out.join(format!("memorization_{name}.png"));
        render_histogram(&h).write_png(&png)?;
        for (who, st) in [("samples", &s), ("test ref", &rs)] {
            println!(
                "memorization ({name}, {who}): top-1 cosine to {} training images: 5% {:.4}, median {:.4}, 95% {:.4}, max {:.4}; above {}: {:.2}%",
                train.n, st.q05, st.q50, st.q95, st.max, st.threshold, 100.0 * st.fraction_above
            );
        }
        let nearest: Vec<usize> = top1.iter().map(|t| t.1).collect();
        report.insert(
            name.into(),
            json!({
                "stats": stats_json(&s),
                "reference_test_images": n_ref,
                "reference_stats": stats_json(&rs),
                "histogram_png": png.display().to_string(),
                "histogram": h.legend(&format!("top-1 cosine similarity of each sample to the training set ({name}); values below 0 count in the first bin")),
                "nearest_training_index": nearest,
            }),
        );
    }
    println!(
        "Fréchet distance (classifier features, {d}-d) of {} samples to {} test images: {fd:.4} (floor: {floor_n} clean training images give {fd_floor:.4})",
        samples.n, test.n
    );
    println!("predicted classes of the samples: {classes:?}");
    let summary = json!({
        "samples": a.samples.display().to_string(),
        "classifier": a.classifier.display().to_string(),
        "n_samples": samples.n,
        "n_test": test.n,
        "n_train": train.n,
        "frechet_distance": fd,
        "frechet_floor_train_vs_test": fd_floor,
        "predicted_classes": classes,
        "memorization": report,
        "pixel_space": "ink = (x + 1) / 2 of [-1, 1] images",
        "feature_space": "classifier features centred on the training features' mean",
    });
    super::write_json(&out.join("memorization.json"), &summary)?;
    if let Some(p) = &a.json {
        super::write_json(p, &summary)?;
    }
    Ok(())
}
