//! A small MNIST classifier CNN whose penultimate features feed the Fréchet distance and the
//! memorization statistics. Built from the U-Net's own layers (each with a backward pass
//! checked by finite differences):
//!
//! ```text
//! x [N, C, R, R] -> GatedConv3(C -> ch1) -> SiLU -> avg pool 2x2
//!                -> GatedConv3(ch1 -> ch2) -> SiLU -> avg pool 2x2 -> flatten [N, ch2 (R/4)^2]
//!                -> Linear(-> hidden) -> SiLU = features -> Linear(-> classes) = logits
//! ```
//!
//! Tensor names: `conv1.{weight,gate,bias}`, `conv2.{weight,gate,bias}`, `fc1.{weight,bias}`,
//! `fc2.{weight,bias}` (PyTorch layouts). Inputs are images in [-1, 1].

use ambient_core::AmbientRng;
use ndarray::{Array2, Array4, Axis};
use serde::{Deserialize, Serialize};

use super::EvalError;
use crate::nn::gated_conv::{GatedConv, GatedConvCache};
use crate::nn::linear::Linear;
use crate::nn::resample::{avg_pool_2x2, avg_pool_2x2_backward};
use crate::nn::silu::{silu, silu_backward};
use crate::params::ParamStore;

/// The classifier's sizes (stored in its weight file's metadata).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassifierConfig {
    pub img_channels: usize,
    /// Side of the square input; a multiple of 4.
    pub img_resolution: usize,
    pub ch1: usize,
    pub ch2: usize,
    /// Width of the penultimate layer: the feature dimension.
    pub hidden: usize,
    pub classes: usize,
}

impl ClassifierConfig {
    /// MNIST: 1 x 28 x 28, 16 and 32 channels, 128 features, 10 classes.
    pub fn mnist() -> Self {
        ClassifierConfig {
            img_channels: 1,
            img_resolution: 28,
            ch1: 16,
            ch2: 32,
            hidden: 128,
            classes: 10,
        }
    }

    /// Every size positive, the resolution a multiple of 4, at least 2 classes.
    pub fn validate(&self) -> Result<(), EvalError> {
        let sizes = [self.img_channels, self.ch1, self.ch2, self.hidden];
        if sizes.contains(&0) || self.classes < 2 {
            return Err(EvalError::Invalid(format!(
                "classifier sizes must be positive with at least 2 classes: {self:?}"
            )));
        }
        if self.img_resolution == 0 || !self.img_resolution.is_multiple_of(4) {
            return Err(EvalError::Invalid(format!(
                "classifier resolution {} must be a positive multiple of 4",
                self.img_resolution
            )));
        }
        Ok(())
    }

    /// Inputs to `fc1`: `ch2 (R/4)^2`.
    pub fn flat_features(&self) -> usize {
        self.ch2 * (self.img_resolution / 4).pow(2)
    }

    /// Whether `params` holds exactly [`ClassifierConfig::layout`]'s tensors, in order.
    pub fn fits(&self, params: &ParamStore) -> bool {
        let layout = self.layout();
        params.params.len() == layout.len()
            && params.params.iter().zip(&layout).all(|(p, (n, s))| {
                &p.name == n && &p.shape == s && p.data.len() == s.iter().product::<usize>()
            })
    }

    /// Names and shapes of every tensor, in file order.
    pub fn layout(&self) -> Vec<(String, Vec<usize>)> {
        let mut l = Vec::new();
        for (name, cin, cout) in [
            ("conv1", self.img_channels, self.ch1),
            ("conv2", self.ch1, self.ch2),
        ] {
            l.push((format!("{name}.weight"), vec![cout, cin, 3, 3]));
            l.push((format!("{name}.gate"), vec![cout, cin, 3, 3]));
            l.push((format!("{name}.bias"), vec![cout]));
        }
        for (name, fin, fout) in [
            ("fc1", self.flat_features(), self.hidden),
            ("fc2", self.hidden, self.classes),
        ] {
            l.push((format!("{name}.weight"), vec![fout, fin]));
            l.push((format!("{name}.bias"), vec![fout]));
        }
        l
    }
}

/// The network's layers, resolved against [`ClassifierConfig::layout`].
#[derive(Debug, Clone)]
pub struct Classifier {
    cfg: ClassifierConfig,
    conv1: GatedConv,
    conv2: GatedConv,
    fc1: Linear,
    fc2: Linear,
}

/// What the backward pass needs from a forward pass.
#[derive(Debug, Clone)]
pub struct ClassifierTape {
    c1: GatedConvCache,
    z1: Array4<f32>,
    c2: GatedConvCache,
    z2: Array4<f32>,
    flat: Array2<f32>,
    h: Array2<f32>,
    features: Array2<f32>,
}

/// The outputs of a forward pass.
#[derive(Debug, Clone)]
pub struct ClassifierOutput {
    /// [N, hidden], the penultimate layer after its SiLU.
    pub features: Array2<f32>,
    /// [N, classes].
    pub logits: Array2<f32>,
}

impl Classifier {
    pub fn new(cfg: &ClassifierConfig) -> Result<Self, EvalError> {
        cfg.validate()?;
        let l = cfg.layout();
        let e = EvalError::Invalid;
        Ok(Classifier {
            cfg: cfg.clone(),
            conv1: GatedConv::new(&l, "conv1", cfg.img_channels, cfg.ch1, 3).map_err(e)?,
            conv2: GatedConv::new(&l, "conv2", cfg.ch1, cfg.ch2, 3).map_err(e)?,
            fc1: Linear::new(&l, "fc1", cfg.flat_features(), cfg.hidden).map_err(e)?,
            fc2: Linear::new(&l, "fc2", cfg.hidden, cfg.classes).map_err(e)?,
        })
    }

    pub fn config(&self) -> &ClassifierConfig {
        &self.cfg
    }

    /// Random initial weights: main-path convolution weights N(0, 2 / fan_in) (the gate's
    /// sigmoid halves the path), gates and linear weights N(0, 1 / fan_in), biases 0.
    pub fn init_params(&self, rng: &mut AmbientRng) -> ParamStore {
        let mut p = ParamStore::zeros(&self.cfg.layout());
        for t in p.params.iter_mut() {
            if t.shape.len() == 1 {
                continue;
            }
            let fan_in: usize = t.shape[1..].iter().product();
            let gain = if t.name.starts_with("conv") && t.name.ends_with(".weight") {
                2.0
            } else {
                1.0
            };
            let sd = (gain / fan_in as f32).sqrt();
            t.data.iter_mut().for_each(|v| *v = sd * rng.normal());
        }
        p
    }

    /// Checks that `params` has this network's layout and `x` its input size.
    pub fn check(&self, params: &ParamStore, x: &Array4<f32>) -> Result<(), EvalError> {
        if !self.cfg.fits(params) {
            return Err(EvalError::Shape(
                "parameters do not fit the classifier's layout".into(),
            ));
        }
        let (_, c, h, w) = x.dim();
        let r = self.cfg.img_resolution;
        if (c, h, w) != (self.cfg.img_channels, r, r) {
            return Err(EvalError::Shape(format!(
                "classifier input is {c} x {h} x {w}, expected {} x {r} x {r}",
                self.cfg.img_channels
            )));
        }
        Ok(())
    }

    /// Features and logits of a batch, and the tape for [`Classifier::backward`].
    pub fn forward(
        &self,
        params: &ParamStore,
        x: &Array4<f32>,
    ) -> Result<(ClassifierOutput, ClassifierTape), EvalError> {
        self.check(params, x)?;
        let n = x.dim().0;
        let (z1, c1) = self.conv1.forward(params, x);
        let p1 = avg_pool_2x2(&silu(&z1));
        let (z2, c2) = self.conv2.forward_owned(params, p1);
        let p2 = avg_pool_2x2(&silu(&z2));
        let flat = p2
            .into_shape_with_order((n, self.cfg.flat_features()))
            .expect("standard layout");
        let h = self.fc1.forward(params, &flat);
        let features = silu(&h);
        let logits = self.fc2.forward(params, &features);
        let out = ClassifierOutput {
            features: features.clone(),
            logits,
        };
        let tape = ClassifierTape {
            c1,
            z1,
            c2,
            z2,
            flat,
            h,
            features,
        };
        Ok((out, tape))
    }

    /// Penultimate-layer features [N, hidden] of `x`.
    pub fn features(&self, params: &ParamStore, x: &Array4<f32>) -> Result<Array2<f32>, EvalError> {
        Ok(self.forward(params, x)?.0.features)
    }

    /// Given dL/dlogits, adds every parameter's gradient to `grads`.
    pub fn backward(
        &self,
        params: &ParamStore,
        tape: &ClassifierTape,
        d_logits: &Array2<f32>,
        grads: &mut ParamStore,
    ) {
        let d_feat = self
            .fc2
            .backward(params, &tape.features, d_logits, Some(grads));
        let d_h = silu_backward(&tape.h, &d_feat);
        let d_flat = self.fc1.backward(params, &tape.flat, &d_h, Some(grads));
        let (n, c2, h2, w2) = tape.z2.dim();
        let d_p2 = d_flat
            .into_shape_with_order((n, c2, h2 / 2, w2 / 2))
            .expect("standard layout");
        let d_z2 = silu_backward(&tape.z2, &avg_pool_2x2_backward(&d_p2));
        let d_p1 = self.conv2.backward(params, &tape.c2, &d_z2, Some(grads));
        let d_z1 = silu_backward(&tape.z1, &avg_pool_2x2_backward(&d_p1));
        self.conv1.backward(params, &tape.c1, &d_z1, Some(grads));
    }
}

/// Mean softmax cross-entropy of `logits` [N, K] against `labels` (each below K), computed in
/// f64 with the log-sum-exp shift, and its gradient `(softmax - onehot) / N`.
pub fn cross_entropy(logits: &Array2<f32>, labels: &[u8]) -> Result<(f64, Array2<f32>), EvalError> {
    let (n, k) = logits.dim();
    if labels.len() != n || n == 0 {
        return Err(EvalError::Shape(format!(
            "{} labels for {n} logit rows",
            labels.len()
        )));
    }
    if let Some(&l) = labels.iter().find(|&&l| l as usize >= k) {
        return Err(EvalError::Invalid(format!("label {l} for {k} classes")));
    }
    let mut grad = Array2::<f32>::zeros((n, k));
    let mut loss = 0.0f64;
    for ((row, &label), mut g) in logits
        .axis_iter(Axis(0))
        .zip(labels)
        .zip(grad.axis_iter_mut(Axis(0)))
    {
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        let lse = max + sum.ln();
        loss += lse - row[label as usize] as f64;
        for (j, (gj, &v)) in g.iter_mut().zip(row.iter()).enumerate() {
            let p = (v as f64 - lse).exp();
            *gj = ((p - (j == label as usize) as u8 as f64) / n as f64) as f32;
        }
    }
    if !loss.is_finite() {
        return Err(EvalError::NonFinite("classifier logits".into()));
    }
    Ok((loss / n as f64, grad))
}
