//! What `ambient experiment paper` runs at a given `--budget`: step counts, batch, image and
//! sample counts, the corruption levels and the models each claim needs, and the seeds, all in
//! one place so the report can print exactly what produced its numbers.

use std::fmt;

/// Steps per model at budget 1.0 (the issue's minimum), at batch [`FULL_BATCH`].
pub const FULL_STEPS: f64 = 4000.0;
pub const FULL_BATCH: usize = 64;
/// Below this budget the run is a smoke test: batch 8, 2000 training images, few samples.
pub const SMOKE_BELOW: f64 = 0.1;
/// Corruption levels of Table 1 (ambient models trained at each, restoring at the same p).
pub const TABLE1_PS: [f32; 3] = [0.6, 0.8, 0.9];
/// The order Table 1's ambient models are trained in: p = 0.8 first, since it is the model
/// `models/` ships; the report lists the levels in [`TABLE1_PS`] order whatever this is.
pub const TABLE1_TRAIN_ORDER: [f32; 3] = [0.8, 0.6, 0.9];
/// Corruption level and training-subset size of the memorization comparison.
pub const MEMO_P: f32 = 0.8;
pub const MEMO_SUBSET: usize = 300;
/// Similarity above which a sample counts as a near copy of a training image.
pub const MEMO_THRESHOLD: f64 = 0.95;
/// Ambient training's further corruption: each observed pixel erased again with this probability.
pub const DELTA: f32 = 0.1;

/// The network (AmbientUNet config) every model of the experiment uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub ch: usize,
    pub mult: Vec<usize>,
    pub blocks: usize,
    pub groups: usize,
}

impl Network {
    /// The spec config of `docs/ambient-unet-spec.md`.
    pub fn spec() -> Self {
        Network {
            ch: 32,
            mult: vec![1, 2, 2],
            blocks: 1,
            groups: 8,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mult: Vec<String> = self.mult.iter().map(|m| m.to_string()).collect();
        write!(
            f,
            "ch {}, mult {}, blocks {}, groups {}",
            self.ch,
            mult.join(","),
            self.blocks,
            self.groups
        )
    }
}

/// How a model is trained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelSpec {
    /// "ambient", "naive" or "clean".
    pub mode: &'static str,
    /// Corruption probability of its training data (0 for clean).
    pub p: f32,
    /// Training images (the first N of the MNIST training set).
    pub images: usize,
}

impl ModelSpec {
    pub fn clean(images: usize) -> Self {
        ModelSpec {
            mode: "clean",
            p: 0.0,
            images,
        }
    }

    /// A short label for tables: "ambient p=0.8", "clean".
    pub fn label(&self) -> String {
        if self.mode == "clean" {
            "clean".into()
        } else {
            format!("{} p={}", self.mode, self.p)
        }
    }
}

/// Every count the experiment uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub budget: f64,
    pub smoke: bool,
    pub steps: u64,
    pub batch: usize,
    pub checkpoint_every: u64,
    pub net: Network,
    /// Training images of the full-data models.
    pub train_images: usize,
    /// Held-out test measurements restored per corruption level (Table 1).
    pub restore_images: usize,
    /// Of those, how many DPS restores (it costs 2 x `dps_steps` network calls per image).
    pub dps_images: usize,
    pub dps_steps: usize,
    /// Corruption levels of Figure 3 (besides clean).
    pub fig3_ps: Vec<f32>,
    /// Samples per model for the Fréchet distance.
    pub fd_samples: usize,
    /// Test images the Fréchet distance compares against.
    pub fd_test_images: usize,
    /// Samples per model for memorization.
    pub memo_samples: usize,
    /// Fixed-mask sampler steps.
    pub sampler_steps: usize,
    /// Base seed; the others are derived from it (see [`Seeds`]).
    pub seed: u64,
}

impl Plan {
    /// The plan at `budget` (1.0 = 4000 steps at batch 64 per model).
    pub fn from_budget(budget: f64, seed: u64) -> Result<Self, String> {
        if !(budget.is_finite() && budget > 0.0) {
            return Err(format!("--budget {budget}: must be positive and finite"));
        }
        let smoke = budget < SMOKE_BELOW;
        let steps = ((FULL_STEPS * budget).round() as u64).max(1);
        let mut fig3_ps = vec![0.6, 0.8];
        if budget >= 0.5 {
            fig3_ps.push(0.9);
        }
        Ok(Plan {
            budget,
            smoke,
            steps,
            batch: if smoke { 8 } else { FULL_BATCH },
            checkpoint_every: 250.min(steps),
            net: Network::spec(),
            train_images: if smoke { 2000 } else { 60000 },
            restore_images: if smoke { 32 } else { 1000 },
            dps_images: if smoke { 4 } else { 100 },
            dps_steps: if smoke { 4 } else { 50 },
            fig3_ps,
            fd_samples: if smoke { 32 } else { 2000 },
            fd_test_images: if smoke { 1000 } else { 10000 },
            memo_samples: if smoke { 32 } else { 1000 },
            sampler_steps: if smoke { 16 } else { 32 },
            seed,
        })
    }

    pub fn seeds(&self) -> Seeds {
        Seeds {
            train: self.seed,
            train_data: self.seed + 1,
            test_data: self.seed + 2,
            sample: self.seed + 3,
            dps: self.seed + 4,
        }
    }

    /// The clean-trained model on the full training set (Table 1's DPS and NFE = 1 rows,
    /// Figure 3's p = 0).
    pub fn clean_model(&self) -> ModelSpec {
        ModelSpec::clean(self.train_images)
    }

    pub fn ambient_model(&self, p: f32) -> ModelSpec {
        ModelSpec {
            mode: "ambient",
            p,
            images: self.train_images,
        }
    }

    /// Figure 3's models: clean, then ambient and naive at each level.
    pub fn fig3_models(&self) -> Vec<ModelSpec> {
        let mut v = vec![self.clean_model()];
        for &p in &self.fig3_ps {
            v.push(self.ambient_model(p));
            v.push(ModelSpec {
                mode: "naive",
                p,
                images: self.train_images,
            });
        }
        v
    }

    /// The memorization comparison's two models, on the same small subset.
    pub fn memo_models(&self) -> [ModelSpec; 2] {
        [
            ModelSpec::clean(MEMO_SUBSET),
            ModelSpec {
                mode: "ambient",
                p: MEMO_P,
                images: MEMO_SUBSET,
            },
        ]
    }

    /// The run directory name of `m`: everything that changes its training except the step
    /// count (a larger budget resumes the same run).
    pub fn model_key(&self, m: &ModelSpec) -> String {
        format!(
            "{}-p{}-n{}-b{}-ch{}-seed{}",
            m.mode, m.p, m.images, self.batch, self.net.ch, self.seed
        )
    }
}

/// The seed of every random draw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seeds {
    /// Weight initialisation and training draws (batches, further masks, sigmas, noise).
    pub train: u64,
    /// Corruption of the training images.
    pub train_data: u64,
    /// Corruption of the held-out test images.
    pub test_data: u64,
    /// Sampler noise and masks.
    pub sample: u64,
    /// DPS initial noise.
    pub dps: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_one_is_the_issues_minimum() {
        let p = Plan::from_budget(1.0, 0).unwrap();
        assert_eq!((p.steps, p.batch, p.smoke), (4000, 64, false));
        assert_eq!(p.fd_samples, 2000);
        assert_eq!(p.memo_samples, 1000);
        assert_eq!(p.fig3_ps, vec![0.6, 0.8, 0.9]);
        assert_eq!(p.net, Network::spec());
    }

    #[test]
    fn table1_train_order_is_a_permutation_of_the_levels() {
        let mut order = TABLE1_TRAIN_ORDER;
        order.sort_by(f32::total_cmp);
        assert_eq!(order, TABLE1_PS);
    }

    #[test]
    fn smoke_budget_is_flagged_and_small() {
        let p = Plan::from_budget(0.01, 0).unwrap();
        assert!(p.smoke);
        assert_eq!((p.steps, p.batch), (40, 8));
        assert_eq!(p.fig3_ps, vec![0.6, 0.8]);
        assert_eq!(Plan::from_budget(1e-9, 0).unwrap().steps, 1);
        assert!(Plan::from_budget(0.0, 0).is_err());
        assert!(Plan::from_budget(f64::NAN, 0).is_err());
    }

    #[test]
    fn model_keys_differ_by_mode_level_and_subset() {
        let p = Plan::from_budget(1.0, 0).unwrap();
        let mut keys: Vec<String> = p
            .fig3_models()
            .iter()
            .chain(p.memo_models().iter())
            .map(|m| p.model_key(m))
            .collect();
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n);
    }
}
