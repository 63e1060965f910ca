//! Shared by the tests that compare with host-cpu: the normwise relative error, random
//! parameters, a tiny corrupted dataset and a host-cpu trainer on it.
#![allow(dead_code)] // each test binary uses a part

use ambient_core::AmbientRng;
use ambient_cpu::config::{CorruptionMeta, UNetConfig};
use ambient_cpu::corrupt::{corrupt_dataset, CorruptionKind};
use ambient_cpu::io::dataset::CorruptedDataset;
use ambient_cpu::params::ParamStore;
use ambient_cpu::train::{Further, Mode, TrainOptions, Trainer};

/// ||a - b|| / ||b|| (in f64).
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "rel_err: lengths");
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum();
    let den: f64 = b.iter().map(|&y| (y as f64).powi(2)).sum();
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}

/// Every parameter drawn as 0.3 N(0, 1) (no zero conv2 / out_conv, so every path matters).
pub fn random_store(layout: &[(String, Vec<usize>)], rng: &mut AmbientRng) -> ParamStore {
    let mut params = ParamStore::zeros(layout);
    for p in params.params.iter_mut() {
        p.data.iter_mut().for_each(|v| *v = 0.3 * rng.normal());
    }
    params
}

/// `n` smooth "images" (a blob at a random place) of `res` x `res`, corrupted at p = 0.5.
pub fn blob_dataset(n: usize, res: usize, seed: u64) -> CorruptedDataset {
    let mut rng = AmbientRng::new(seed);
    let mut px = Vec::with_capacity(n * res * res);
    let r = res as f32;
    for _ in 0..n {
        let (cy, cx) = (
            r * (0.25 + 0.5 * rng.uniform()),
            r * (0.25 + 0.5 * rng.uniform()),
        );
        for y in 0..res {
            for x in 0..res {
                let d2 = (y as f32 - cy).powi(2) + (x as f32 - cx).powi(2);
                px.push(2.0 * (-d2 / (r * r / 16.0)).exp() - 1.0);
            }
        }
    }
    let clean = CorruptedDataset {
        n,
        c: 1,
        h: res,
        w: res,
        measurements: px,
        masks: vec![1.0; n * res * res],
        meta: None,
    };
    corrupt_dataset(&clean, CorruptionKind::Random { p: 0.5 }, seed + 1).unwrap()
}

/// A fresh ambient trainer (delta 0.2, clipping at 1, warm-up 10) for `cfg`.
pub fn ambient_trainer(cfg: UNetConfig, batch: usize, seed: u64) -> Trainer {
    let meta = CorruptionMeta {
        kind: "random".into(),
        p: 0.5,
        delta: 0.2,
        r#box: None,
        mode: "ambient".into(),
    };
    let mut opts = TrainOptions::defaults(Mode::Ambient, Further::Random { delta: 0.2 });
    opts.batch = batch;
    opts.adam.lr = 3e-3;
    opts.adam.warmup_steps = 10;
    opts.seed = seed;
    Trainer::new(cfg, meta, opts).unwrap()
}

/// The small configuration of the host-cpu tests: 8 x 8, ch 8, two levels.
pub fn tiny_config() -> UNetConfig {
    UNetConfig {
        img_channels: 1,
        img_resolution: 8,
        ch: 8,
        mult: vec![1, 2],
        blocks: 1,
        groups: 4,
        sigma_data: 0.5,
    }
}
