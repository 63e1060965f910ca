//! Shared by the tests that compare with host-cpu: the normwise relative error, random
//! parameters, the network against host-cpu's over any `Ops`, a tiny corrupted dataset and a
//! host-cpu trainer on it.
#![allow(dead_code)] // each test binary uses a part

use ambient_core::AmbientRng;
use ambient_cpu::config::{CorruptionMeta, UNetConfig};
use ambient_cpu::corrupt::{corrupt_dataset, CorruptionKind};
use ambient_cpu::io::dataset::CorruptedDataset;
use ambient_cpu::params::ParamStore;
use ambient_cpu::train::{Further, Mode, TrainOptions, Trainer};
use ambient_cpu::unet::UNet;
use ambient_cuda::net::{Net, NetPlan};
use ambient_cuda::ops::Ops;
use ndarray::Array4;

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

/// The network over `ops` against host-cpu's f32 AmbientUNet at `cfg` on a batch of `n`, from
/// random parameters (seed `seed`) flattened in spec order: the output F, dL/dF_in and every
/// parameter gradient each within the normwise relative error `tol`. Prints the errors under
/// `label`.
pub fn network_matches_host_cpu<O: Ops>(
    ops: &O,
    cfg: &UNetConfig,
    n: usize,
    seed: u64,
    tol: f64,
    label: &str,
) {
    let cpu = UNet::new(cfg).unwrap();
    let mut rng = AmbientRng::new(seed);
    let params = random_store(cpu.layout(), &mut rng);
    let (c, r) = (cfg.img_channels, cfg.img_resolution);
    let mut f_in = Array4::<f32>::zeros((n, 2 * c, r, r));
    f_in.iter_mut().for_each(|v| *v = rng.normal());
    let c_noise: Vec<f32> = (0..n).map(|i| 0.4 * i as f32 - 0.6).collect();
    let (f_cpu, cache) = cpu.forward(&params, &f_in, &c_noise);
    let mut d_f = Array4::<f32>::zeros(f_cpu.dim());
    d_f.iter_mut().for_each(|v| *v = rng.normal());
    let mut g_cpu = params.zeros_like();
    let d_in_cpu = cpu.backward(&params, &cache, &d_f, &mut g_cpu);

    let plan = NetPlan::new(cfg).unwrap();
    let net = Net::new(ops, &plan);
    let flat: Vec<f32> = params
        .params
        .iter()
        .flat_map(|p| p.data.iter().copied())
        .collect();
    assert_eq!(flat.len(), plan.total);
    let pbuf = ops.upload(&flat).unwrap();
    let input = ops.upload(f_in.as_slice().unwrap()).unwrap();
    let (f, tape) = net.forward(&pbuf, input, n, r, r, &c_noise).unwrap();
    let e = rel_err(&ops.download(&f).unwrap(), f_cpu.as_slice().unwrap());
    println!("{label}: F relative error {e:.2e}");
    assert!(e < tol, "F differs: {e:e}");
    let mut grads = ops.zeros(plan.total).unwrap();
    let d_f_buf = ops.upload(d_f.as_slice().unwrap()).unwrap();
    let d_in = net.backward(&pbuf, tape, d_f_buf, &mut grads).unwrap();
    let e = rel_err(&ops.download(&d_in).unwrap(), d_in_cpu.as_slice().unwrap());
    println!("{label}: dF_in relative error {e:.2e}");
    assert!(e < tol, "dF_in differs: {e:e}");
    let grads = ops.download(&grads).unwrap();
    let mut worst = (0.0f64, String::new());
    for ((name, _, off), p) in plan.layout.iter().zip(&g_cpu.params) {
        assert_eq!(name, &p.name);
        let gn: f64 = p.data.iter().map(|&v| (v as f64).powi(2)).sum();
        assert!(gn > 0.0, "{name}: zero gradient in the reference");
        let e = rel_err(&grads[*off..off + p.data.len()], &p.data);
        if e > worst.0 {
            worst = (e, name.clone());
        }
        assert!(e < tol, "gradient of {name} differs: {e:e}");
    }
    println!(
        "{label}: worst parameter gradient {} at {:.2e}",
        worst.1, worst.0
    );
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
