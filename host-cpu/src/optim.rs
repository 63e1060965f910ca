//! The optimiser of training: Adam (Kingma & Ba 2015, bias-corrected) on a [`ParamStore`],
//! with a linear learning-rate warm-up, clipping of the global gradient norm, and an
//! exponential moving average (EMA) of the weights, whose result is what a weight file holds.
//! Everything is serial f32 arithmetic in a fixed order (norms in f64), so a run is
//! bit-for-bit reproducible and resumes exactly from a checkpoint.

use serde::{Deserialize, Serialize};

use crate::params::ParamStore;

/// What can go wrong in an optimiser step; a failed step changes nothing.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OptimError {
    #[error("invalid optimiser setting: {0}")]
    InvalidConfig(String),
    #[error("{what} does not match the parameters: {detail}")]
    Layout { what: &'static str, detail: String },
    #[error("non-finite gradient {value} in {name} at flat index {index}; the step was skipped")]
    NonFiniteGradient {
        name: String,
        index: usize,
        value: f32,
    },
}

/// Adam's hyper-parameters and the schedule around it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// Peak learning rate.
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Linear warm-up: step k (1-based) uses `lr * min(1, k / warmup_steps)`; 0 = none.
    pub warmup_steps: u64,
    /// Clip the global L2 norm of the gradient to this value; `None` = no clipping.
    pub max_grad_norm: Option<f32>,
}

impl AdamConfig {
    /// Adam's usual constants (beta1 0.9, beta2 0.999, eps 1e-8), no warm-up, no clipping.
    pub fn new(lr: f32) -> Self {
        AdamConfig {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            warmup_steps: 0,
            max_grad_norm: None,
        }
    }

    /// Checks ranges: lr >= 0, betas in [0, 1), eps > 0, max_grad_norm > 0; all finite.
    pub fn validate(&self) -> Result<(), OptimError> {
        let bad = |s: String| Err(OptimError::InvalidConfig(s));
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return bad(format!("lr = {} must be finite and >= 0", self.lr));
        }
        for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return bad(format!("{name} = {b} must be in [0, 1)"));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad(format!("eps = {} must be finite and > 0", self.eps));
        }
        if let Some(c) = self.max_grad_norm {
            if !(c.is_finite() && c > 0.0) {
                return bad(format!("max_grad_norm = {c} must be finite and > 0"));
            }
        }
        Ok(())
    }

    /// The learning rate of step `step` (1-based) under the linear warm-up.
    pub fn learning_rate(&self, step: u64) -> f32 {
        if self.warmup_steps == 0 || step >= self.warmup_steps {
            self.lr
        } else {
            (self.lr as f64 * step as f64 / self.warmup_steps as f64) as f32
        }
    }
}

/// Adam's state: first and second moments of every parameter and the number of steps taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Adam {
    pub config: AdamConfig,
    pub m: ParamStore,
    pub v: ParamStore,
    /// Steps taken so far (the `t` of the bias corrections).
    pub t: u64,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// Learning rate used.
    pub lr: f32,
    /// Global L2 norm of the gradient before clipping.
    pub grad_norm: f64,
    /// Factor the gradient was multiplied by (1 when not clipped).
    pub clip_scale: f32,
}

/// Checks that `other` has `params`' names and sizes.
fn check_layout(
    what: &'static str,
    params: &ParamStore,
    other: &ParamStore,
) -> Result<(), OptimError> {
    if params.params.len() != other.params.len() {
        return Err(OptimError::Layout {
            what,
            detail: format!(
                "{} tensors instead of {}",
                other.params.len(),
                params.params.len()
            ),
        });
    }
    for (p, o) in params.params.iter().zip(&other.params) {
        if p.name != o.name || p.data.len() != o.data.len() {
            return Err(OptimError::Layout {
                what,
                detail: format!(
                    "{} ({} values) where {} ({} values) was expected",
                    o.name,
                    o.data.len(),
                    p.name,
                    p.data.len()
                ),
            });
        }
    }
    Ok(())
}

/// The global L2 norm over all tensors, summed in f64 in store order.
pub fn global_norm(grads: &ParamStore) -> f64 {
    grads
        .params
        .iter()
        .flat_map(|p| p.data.iter())
        .map(|&g| g as f64 * g as f64)
        .sum::<f64>()
        .sqrt()
}

/// Scales `grads` so that their global norm is at most `max_norm`; returns the norm before
/// clipping and the factor applied (1 when the norm was already within the bound).
pub fn clip_grad_norm(grads: &mut ParamStore, max_norm: f32) -> (f64, f32) {
    let norm = global_norm(grads);
    if norm <= max_norm as f64 || norm == 0.0 {
        return (norm, 1.0);
    }
    let scale = (max_norm as f64 / norm) as f32;
    grads
        .params
        .iter_mut()
        .for_each(|p| p.data.iter_mut().for_each(|g| *g *= scale));
    (norm, scale)
}

impl Adam {
    /// Fresh state (zero moments, t = 0) for `params`.
    pub fn new(config: AdamConfig, params: &ParamStore) -> Result<Self, OptimError> {
        config.validate()?;
        Ok(Adam {
            config,
            m: params.zeros_like(),
            v: params.zeros_like(),
            t: 0,
        })
    }

    /// One step: rejects a non-finite gradient (nothing changes), clips `grads` in place if
    /// configured, then `m <- b1 m + (1-b1) g`, `v <- b2 v + (1-b2) g^2`,
    /// `w <- w - lr_t * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)`.
    pub fn step(
        &mut self,
        params: &mut ParamStore,
        grads: &mut ParamStore,
    ) -> Result<StepReport, OptimError> {
        check_layout("gradient", params, grads)?;
        check_layout("Adam first moment", params, &self.m)?;
        check_layout("Adam second moment", params, &self.v)?;
        for p in &grads.params {
            if let Some(i) = p.data.iter().position(|g| !g.is_finite()) {
                return Err(OptimError::NonFiniteGradient {
                    name: p.name.clone(),
                    index: i,
                    value: p.data[i],
                });
            }
        }
        let (grad_norm, clip_scale) = match self.config.max_grad_norm {
            Some(c) => clip_grad_norm(grads, c),
            None => (global_norm(grads), 1.0),
        };
        self.t += 1;
        let lr = self.config.learning_rate(self.t);
        let (b1, b2, eps) = (self.config.beta1, self.config.beta2, self.config.eps);
        let bc1 = (1.0 - (b1 as f64).powf(self.t as f64)) as f32;
        let bc2 = (1.0 - (b2 as f64).powf(self.t as f64)) as f32;
        let tensors = params
            .params
            .iter_mut()
            .zip(&grads.params)
            .zip(self.m.params.iter_mut().zip(self.v.params.iter_mut()));
        for ((w, g), (m, v)) in tensors {
            for (((w, &g), m), v) in w
                .data
                .iter_mut()
                .zip(&g.data)
                .zip(m.data.iter_mut())
                .zip(v.data.iter_mut())
            {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *w -= lr * (*m / bc1) / ((*v / bc2).sqrt() + eps);
            }
        }
        Ok(StepReport {
            lr,
            grad_norm,
            clip_scale,
        })
    }
}

/// How the EMA's decay `beta` is chosen each step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EmaSchedule {
    /// EDM's: the EMA halves a weight's influence every `halflife_kimg * 1000` training
    /// images, `beta = 0.5^(batch / halflife_images)`. With `rampup_ratio` r, the half-life is
    /// at most `r * images_seen` (short early on, so the EMA follows the fast-moving first
    /// weights; EDM uses r = 0.05).
    HalfLife {
        halflife_kimg: f64,
        rampup_ratio: Option<f64>,
    },
    /// A constant `beta`.
    Decay { beta: f64 },
}

impl EmaSchedule {
    /// `beta` for a step of `batch_size` images taken after `images_seen` images (EDM counts
    /// the images before the step, so the first step gives beta = 0 under a ramp-up).
    pub fn beta(&self, batch_size: usize, images_seen: u64) -> f64 {
        match *self {
            EmaSchedule::Decay { beta } => beta,
            EmaSchedule::HalfLife {
                halflife_kimg,
                rampup_ratio,
            } => {
                let mut halflife = halflife_kimg * 1000.0;
                if let Some(r) = rampup_ratio {
                    halflife = halflife.min(images_seen as f64 * r);
                }
                0.5f64.powf(batch_size as f64 / halflife.max(1e-8))
            }
        }
    }

    /// Checks ranges: half-life > 0, ramp-up ratio > 0, beta in [0, 1]; all finite.
    pub fn validate(&self) -> Result<(), OptimError> {
        let ok = match *self {
            EmaSchedule::HalfLife {
                halflife_kimg,
                rampup_ratio,
            } => {
                halflife_kimg.is_finite()
                    && halflife_kimg > 0.0
                    && !matches!(rampup_ratio, Some(r) if !(r.is_finite() && r > 0.0))
            }
            EmaSchedule::Decay { beta } => (0.0..=1.0).contains(&beta),
        };
        if ok {
            Ok(())
        } else {
            Err(OptimError::InvalidConfig(format!(
                "EMA schedule {self:?} out of range"
            )))
        }
    }
}

/// `ema <- beta * ema + (1 - beta) * w`, elementwise in f32.
pub fn ema_update(ema: &mut ParamStore, weights: &ParamStore, beta: f64) -> Result<(), OptimError> {
    check_layout("EMA", weights, ema)?;
    let b = beta as f32;
    let a = (1.0 - beta) as f32;
    for (e, w) in ema.params.iter_mut().zip(&weights.params) {
        for (e, &w) in e.data.iter_mut().zip(&w.data) {
            *e = b * *e + a * w;
        }
    }
    Ok(())
}
