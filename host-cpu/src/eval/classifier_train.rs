//! Training the MNIST classifier of [`super::classifier`] on clean labelled images (softmax
//! cross-entropy, Adam, shuffled mini-batches), and running it over a whole image set: class
//! predictions and accuracy, and penultimate-layer features.

use ambient_core::AmbientRng;
use ndarray::{Array2, Array4, ArrayView4};

use super::classifier::{cross_entropy, Classifier};
use super::EvalError;
use crate::optim::{Adam, AdamConfig};
use crate::params::ParamStore;

/// How to train.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierTraining {
    pub epochs: usize,
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f32,
    pub seed: u64,
}

impl Default for ClassifierTraining {
    /// Two epochs at batch 64 and learning rate 1e-3, seed 0.
    fn default() -> Self {
        ClassifierTraining {
            epochs: 2,
            batch: 64,
            lr: 1e-3,
            seed: 0,
        }
    }
}

/// Number of images in `images` for `clf`'s input size, checking the length.
fn image_count(clf: &Classifier, images: &[f32]) -> Result<usize, EvalError> {
    let c = clf.config();
    let len = c.img_channels * c.img_resolution * c.img_resolution;
    if !images.len().is_multiple_of(len) {
        return Err(EvalError::Shape(format!(
            "{} values are not whole {} x {r} x {r} images",
            images.len(),
            c.img_channels,
            r = c.img_resolution
        )));
    }
    Ok(images.len() / len)
}

fn view<'a>(clf: &Classifier, images: &'a [f32], n: usize) -> ArrayView4<'a, f32> {
    let c = clf.config();
    let r = c.img_resolution;
    ArrayView4::from_shape((n, c.img_channels, r, r), images).expect("checked length")
}

/// Trains from the initial weights drawn with `opts.seed`; `progress(epoch, step, loss)` sees
/// every optimiser step (0-based epoch, 1-based step within the run).
pub fn train_classifier(
    clf: &Classifier,
    images: &[f32],
    labels: &[u8],
    opts: &ClassifierTraining,
    mut progress: impl FnMut(usize, usize, f64),
) -> Result<ParamStore, EvalError> {
    let n = image_count(clf, images)?;
    if labels.len() != n || n == 0 {
        return Err(EvalError::Shape(format!(
            "{} labels for {n} images",
            labels.len()
        )));
    }
    if opts.batch == 0 || opts.epochs == 0 {
        return Err(EvalError::Invalid(
            "epochs and batch must be positive".into(),
        ));
    }
    let mut rng = AmbientRng::new(opts.seed);
    let mut params = clf.init_params(&mut rng);
    let mut grads = params.zeros_like();
    let mut adam = Adam::new(AdamConfig::new(opts.lr), &params)?;
    let len = images.len() / n;
    let all = view(clf, images, n);
    let mut order: Vec<usize> = (0..n).collect();
    let mut step = 0;
    for epoch in 0..opts.epochs {
        for i in (1..n).rev() {
            order.swap(i, rng.below(i as u32 + 1) as usize);
        }
        for chunk in order.chunks(opts.batch) {
            let mut x = Array4::<f32>::zeros((chunk.len(), all.dim().1, all.dim().2, all.dim().3));
            for (k, &i) in chunk.iter().enumerate() {
                x.as_slice_mut().expect("standard")[k * len..(k + 1) * len]
                    .copy_from_slice(&images[i * len..(i + 1) * len]);
            }
            let y: Vec<u8> = chunk.iter().map(|&i| labels[i]).collect();
            let (out, tape) = clf.forward(&params, &x)?;
            let (loss, d_logits) = cross_entropy(&out.logits, &y)?;
            grads.zero();
            clf.backward(&params, &tape, &d_logits, &mut grads);
            adam.step(&mut params, &mut grads)?;
            step += 1;
            progress(epoch, step, loss);
        }
    }
    Ok(params)
}

/// Features [N, hidden] and logits [N, classes] of every image, in batches of `batch`.
pub fn run_classifier(
    clf: &Classifier,
    params: &ParamStore,
    images: &[f32],
    batch: usize,
) -> Result<(Array2<f32>, Array2<f32>), EvalError> {
    let n = image_count(clf, images)?;
    let c = clf.config();
    let mut feats = Array2::<f32>::zeros((n, c.hidden));
    let mut logits = Array2::<f32>::zeros((n, c.classes));
    let all = view(clf, images, n);
    let mut start = 0;
    while start < n {
        let end = (start + batch.max(1)).min(n);
        let x = all.slice(ndarray::s![start..end, .., .., ..]).to_owned();
        let (out, _) = clf.forward(params, &x)?;
        feats
            .slice_mut(ndarray::s![start..end, ..])
            .assign(&out.features);
        logits
            .slice_mut(ndarray::s![start..end, ..])
            .assign(&out.logits);
        start = end;
    }
    Ok((feats, logits))
}

/// The predicted class (arg-max logit) of each row.
pub fn predictions(logits: &Array2<f32>) -> Vec<u8> {
    logits
        .rows()
        .into_iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .fold((0usize, f32::NEG_INFINITY), |b, (j, &v)| {
                    if v > b.1 {
                        (j, v)
                    } else {
                        b
                    }
                })
                .0 as u8
        })
        .collect()
}

/// Fraction of `labels` that the classifier predicts.
pub fn accuracy(
    clf: &Classifier,
    params: &ParamStore,
    images: &[f32],
    labels: &[u8],
    batch: usize,
) -> Result<f64, EvalError> {
    let (_, logits) = run_classifier(clf, params, images, batch)?;
    if labels.len() != logits.nrows() || labels.is_empty() {
        return Err(EvalError::Shape(format!(
            "{} labels for {} images",
            labels.len(),
            logits.nrows()
        )));
    }
    let right = predictions(&logits)
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count();
    Ok(right as f64 / labels.len() as f64)
}
