//! The whole network, training, sampling and restoration on the GPU against host-cpu's f32
//! reference, and (ignored unless asked for: `--include-ignored`, as device-check.sh does) the
//! batch-256 throughput, device memory and leak check. Skips ("no CUDA device") where there is
//! no GPU.

#![cfg(feature = "cuda")]

mod common;
mod support;

use ambient_core::AmbientRng;
use ambient_cpu::config::{ModelConfig, UNetConfig, PRECOND};
use ambient_cpu::init::init_params;
use ambient_cpu::params::ParamStore;
use ambient_cpu::sample::SampleOptions;
use ambient_cpu::unet::UNet;
use ambient_cuda::cuda_ops::CudaOps;
use ambient_cuda::net::NetPlan;
use ambient_cuda::ops::Ops;
use ambient_cuda::ptx_cache::PtxCache;
use ambient_cuda::train::DeviceTrainer;
use common::{gpu_or_skip, is_cpu_emulator};
use support::{ambient_trainer, blob_dataset, network_matches_host_cpu, rel_err};

fn cuda_or_skip(test: &str) -> Option<CudaOps> {
    let gpu = gpu_or_skip(test)?;
    Some(CudaOps::new(gpu, &PtxCache::default_location()).unwrap())
}

/// As net_ref.rs: two f32 implementations differing in summation order (and host-cpu's
/// Winograd convolutions at 28 x 28, whose transforms add a few roundings), dot products of
/// length K <= 864 (sqrt(K) u ~ 2e-6 per layer), ~30 layers deep: ~1e-5; 1e-4 is the issue's
/// bound and still 4 orders below a wiring mistake.
const TOL: f64 = 1e-4;

fn network_matches(test: &str, cfg: UNetConfig, n: usize) {
    let Some(ops) = cuda_or_skip(test) else {
        return;
    };
    network_matches_host_cpu(&ops, &cfg, n, 21, TOL, test);
}

#[test]
fn cuda_network_matches_host_cpu_spec_config() {
    network_matches(
        "cuda_network_matches_host_cpu_spec_config",
        UNetConfig::spec_mnist(),
        5,
    );
}

#[test]
fn cuda_network_matches_host_cpu_three_levels_two_blocks() {
    let cfg = UNetConfig {
        img_channels: 2,
        img_resolution: 12,
        ch: 8,
        mult: vec![1, 2, 2],
        blocks: 2,
        groups: 2,
        sigma_data: 0.5,
    };
    network_matches(
        "cuda_network_matches_host_cpu_three_levels_two_blocks",
        cfg,
        3,
    );
}

/// Training at the spec configuration from the same state as host-cpu's trainer (same
/// batches). The first 5 steps' losses agree to the network's rounding (1e-4, as the forward
/// pass). After that the trajectory is chaotic at rounding level: Adam turns rounding-level
/// differences in tiny gradient elements into differences of order lr, and they grow step by
/// step. So the later bound is measured, not guessed: a twin host-cpu trainer whose initial
/// weights and EMA moved by one rounding step (each element times 1 + eps or 1 - eps/2) shows
/// how far host-cpu departs from itself; the device may depart from host-cpu by at most that
/// much (the running maximum of the twin's relative loss difference up to the step, and of
/// its EMA's relative error after 30 steps), or by the rounding bound 1e-4 where the twin has
/// not yet moved. (Measured on the CPU emulator, 2026-11-28: the twin reaches 5e-4 at step 28
/// and 1.1e-2 at step 29; the device 7.7e-5 and 1.6e-3.)
#[test]
fn cuda_training_follows_host_cpu_trajectory() {
    let Some(ops) = cuda_or_skip("cuda_training_follows_host_cpu_trajectory") else {
        return;
    };
    let data = blob_dataset(32, 28, 9);
    let mut cpu = ambient_trainer(UNetConfig::spec_mnist(), 8, 4);
    let mut dev = DeviceTrainer::from_cpu(ops, &cpu).unwrap();
    let mut twin = ambient_trainer(UNetConfig::spec_mnist(), 8, 4);
    let mut i = 0usize;
    for t in twin
        .weights
        .params
        .iter_mut()
        .chain(twin.ema.params.iter_mut())
    {
        for v in t.data.iter_mut() {
            i += 1;
            *v *= if i.is_multiple_of(2) {
                1.0 + f32::EPSILON
            } else {
                1.0 - f32::EPSILON / 2.0
            };
        }
    }
    let (mut worst, mut twin_env) = (0.0f64, 0.0f64);
    for k in 0..30 {
        let a = cpu.train_step(&data).unwrap();
        let b = dev.train_step(&data).unwrap();
        let t = twin.train_step(&data).unwrap();
        let rel = |x: f32| ((a.loss - x) / a.loss).abs() as f64;
        let (e, d) = (rel(b.loss), rel(t.loss));
        twin_env = twin_env.max(d);
        let bound = if k < 5 { 1e-4 } else { twin_env.max(1e-4) };
        println!(
            "step {}: loss cpu {:.6} cuda {:.6} (rel {e:.1e}; twin {d:.1e}, bound {bound:.1e}), grad norm cpu {:.4} cuda {:.4}",
            a.step, a.loss, b.loss, a.grad_norm, b.grad_norm
        );
        assert!(
            e <= bound,
            "step {}: losses differ by {e:e} > {bound:e}",
            a.step
        );
        worst = worst.max(e);
    }
    println!("training: worst loss difference {worst:.2e}; twin's {twin_env:.2e}");
    let mut back = ambient_trainer(UNetConfig::spec_mnist(), 8, 4);
    dev.store_into(&mut back).unwrap();
    let flat =
        |p: &ParamStore| -> Vec<f32> { p.params.iter().flat_map(|t| t.data.clone()).collect() };
    let e = rel_err(&flat(&back.ema), &flat(&cpu.ema));
    let d = rel_err(&flat(&twin.ema), &flat(&cpu.ema));
    println!("EMA weights after 30 steps: relative error {e:.2e} (twin {d:.2e})");
    assert!(e <= d.max(1e-4), "EMA: {e:e} > twin's {d:e}");
}

fn model_config() -> ModelConfig {
    ModelConfig {
        unet: UNetConfig::spec_mnist(),
        precond: PRECOND.into(),
        corruption: ambient_cpu::config::CorruptionMeta {
            kind: "random".into(),
            p: 0.5,
            delta: 0.2,
            r#box: None,
            mode: "ambient".into(),
        },
    }
}

/// Trained-looking weights: the initialisation (zero conv2 / out_conv) plus small noise.
fn perturbed_init(seed: u64) -> ParamStore {
    let cfg = UNetConfig::spec_mnist();
    let mut rng = AmbientRng::new(seed);
    let mut p = init_params(&cfg, &mut rng);
    for t in p.params.iter_mut() {
        t.data.iter_mut().for_each(|v| *v += 0.05 * rng.normal());
    }
    p
}

/// Restoration (one network call) agrees with host-cpu's to the network's rounding (1e-4);
/// the fixed-mask sampler (8 calls, each a convex step towards D) and reconstruction guidance
/// (4 steps) to 1e-3: each call adds ~1e-5 and a step's contraction does not amplify it.
#[test]
fn cuda_restoration_and_fixed_mask_sampler_match_host_cpu() {
    let Some(ops) = cuda_or_skip("cuda_restoration_and_fixed_mask_sampler_match_host_cpu") else {
        return;
    };
    let cfg = model_config();
    let params = perturbed_init(3);
    let data = blob_dataset(7, 28, 2);
    let dims = (data.n, 1, 28, 28);
    let cpu_net = UNet::new(&cfg.unet).unwrap();
    let want = ambient_cpu::restore::restore_measurements(
        &cpu_net,
        &params,
        dims,
        &data.measurements,
        &data.masks,
        0.1,
        4,
        |_| {},
    )
    .unwrap();
    let got = ambient_cuda::infer::restore_measurements(
        &ops,
        &params,
        &cfg,
        dims,
        &data.measurements,
        &data.masks,
        0.1,
        4,
        |_| {},
    )
    .unwrap();
    let e = rel_err(&got, &want);
    println!("restoration: relative error {e:.2e}");
    assert!(e < 1e-4);
    let opts = SampleOptions {
        n: 6,
        steps: 8,
        sigma_min: 0.002,
        sigma_max: 80.0,
        rho: 7.0,
        heun: false,
        guidance: None,
        seed: 5,
    };
    let want = ambient_cpu::sample::generate(&cpu_net, &params, &cfg, &opts, |_| {}).unwrap();
    let got = ambient_cuda::infer::generate(&ops, &params, &cfg, &opts, |_| {}).unwrap();
    let e = rel_err(&got, want.as_slice().unwrap());
    let fixed = got;
    println!("fixed-mask sampler (8 steps): relative error {e:.2e}");
    assert!(e < 1e-3);
    let guided = SampleOptions {
        steps: 4,
        guidance: Some((2, 0.1)),
        ..opts
    };
    let want = ambient_cpu::sample::generate(&cpu_net, &params, &cfg, &guided, |_| {}).unwrap();
    let got = ambient_cuda::infer::generate(&ops, &params, &cfg, &guided, |_| {}).unwrap();
    let e = rel_err(&got, want.as_slice().unwrap());
    println!("reconstruction guidance (4 steps): relative error {e:.2e}");
    assert!(e < 1e-3);
    // In runs of 4 (of 6 samples), each sample's trajectory is the same bits.
    for (o, whole) in [(&opts, &fixed), (&guided, &got)] {
        let mut seen = Vec::new();
        let parts = ambient_cuda::infer::generate_in_chunks(&ops, &params, &cfg, o, 4, |s| {
            seen.push((s.step, s.steps))
        })
        .unwrap();
        assert!(*whole == parts, "runs of 4, guidance {:?}", o.guidance);
        let want: Vec<_> = (0..2 * o.steps).map(|i| (i, 2 * o.steps)).collect();
        assert_eq!(seen, want, "2 runs of {} steps", o.steps);
    }
}

/// Training throughput at batch 256 of the spec configuration, inference throughput, device
/// memory, and no leak over the steps: the device's free memory and this backend's allocated
/// bytes are the same after the last step as after the warm-up (the buffer pool reaches its
/// steady state in the first step). Runs 1000 steps or 150 s, whichever comes first
/// (AMBIENT_BENCH_STEPS overrides the count), and says which.
#[test]
#[ignore]
fn bench_batch256_training_memory_and_leak() {
    let Some(gpu) = gpu_or_skip("bench_batch256_training_memory_and_leak") else {
        return;
    };
    if is_cpu_emulator(&gpu) {
        println!(
            "ambient CPU emulator: skipping bench_batch256_training_memory_and_leak (its \
             throughput and device memory would be the emulator's, not a GPU's)"
        );
        return;
    }
    let ops = CudaOps::new(gpu, &PtxCache::default_location()).unwrap();
    let steps: usize = std::env::var("AMBIENT_BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let data = blob_dataset(1024, 28, 1);
    let cpu = ambient_trainer(UNetConfig::spec_mnist(), 256, 1);
    let mut dev = DeviceTrainer::from_cpu(ops, &cpu).unwrap();
    let sync = |o: &CudaOps| o.synchronize().unwrap();
    for _ in 0..5 {
        dev.train_step(&data).unwrap();
    }
    sync(&dev.ops);
    let (free0, total) = dev.ops.memory().unwrap();
    let alloc0 = dev.ops.allocated_bytes();
    let mut min_free = free0;
    let t = std::time::Instant::now();
    let mut done = 0;
    let mut last_loss = 0.0;
    while done < steps && t.elapsed().as_secs_f64() < 150.0 {
        last_loss = dev.train_step(&data).unwrap().loss;
        done += 1;
        if done % 50 == 0 {
            min_free = min_free.min(dev.ops.memory().unwrap().0);
        }
    }
    sync(&dev.ops);
    let secs = t.elapsed().as_secs_f64();
    let (free1, _) = dev.ops.memory().unwrap();
    let alloc1 = dev.ops.allocated_bytes();
    println!(
        "BENCH cuda train batch 256 (spec config): {done} steps in {secs:.1} s = {:.0} images/s ({:.1} ms/step), last loss {last_loss:.4}{}",
        256.0 * done as f64 / secs,
        1e3 * secs / done as f64,
        if done < steps { format!(" (stopped at the 150 s cap, {steps} asked)") } else { String::new() }
    );
    println!(
        "BENCH cuda memory: device {:.1} GiB total, in use at the peak sample {:.2} GiB; this backend's buffers {:.2} GiB after warm-up, {:.2} GiB after {done} more steps; free {:.3} -> {:.3} GiB",
        total as f64 / 2f64.powi(30),
        (total - min_free) as f64 / 2f64.powi(30),
        alloc0 as f64 / 2f64.powi(30),
        alloc1 as f64 / 2f64.powi(30),
        free0 as f64 / 2f64.powi(30),
        free1 as f64 / 2f64.powi(30)
    );
    assert_eq!(
        alloc0, alloc1,
        "the backend allocated more buffers after the warm-up"
    );
    // The driver may keep a few MiB of its own (module loads, launch queues); 16 MiB is far
    // below one step's buffers (hundreds of MiB at batch 256).
    assert!(
        free1 + (16 << 20) >= free0,
        "free device memory fell from {free0} to {free1}"
    );

    // Inference: D at batch 256 (one network call, no tape kept past the call).
    let plan = NetPlan::new(&UNetConfig::spec_mnist()).unwrap();
    let mut den = ambient_cuda::infer::CudaDenoiser::new(&dev.ops, &plan, &cpu.weights).unwrap();
    let shape = ambient_core::tensor::Shape {
        n: 256,
        c: 1,
        h: 28,
        w: 28,
    };
    let y =
        ambient_cuda::CudaTensor::from_host(&dev.ops.gpu, shape, &data.measurements[..256 * 784])
            .unwrap();
    let m =
        ambient_cuda::CudaTensor::from_host(&dev.ops.gpu, shape, &data.masks[..256 * 784]).unwrap();
    let mut out = ambient_cuda::CudaTensor::zeros(&dev.ops.gpu, shape).unwrap();
    use ambient_core::Denoiser;
    den.denoise(&y, &m, 0.1, &mut out).unwrap();
    sync(&dev.ops);
    let t = std::time::Instant::now();
    let calls = 50;
    for _ in 0..calls {
        den.denoise(&y, &m, 0.1, &mut out).unwrap();
    }
    sync(&dev.ops);
    let secs = t.elapsed().as_secs_f64();
    println!(
        "BENCH cuda denoise batch 256: {:.0} images/s ({:.1} ms/call)",
        256.0 * calls as f64 / secs,
        1e3 * secs / calls as f64
    );
}

/// Where a training step and a network call spend their time (profile.rs): GPU time per kernel
/// and shape over a few steps at batch 256 of the spec configuration, the host's phases, and
/// the wall time against the GPU's busy time; then the host's batch drawing alone. Prints
/// only (a diagnosis, not a check); on the CPU emulator it runs at batch 4 so the profiler's
/// path is exercised in CI. Ignored unless asked for, like the bench.
#[test]
#[ignore]
fn profile_training_step_and_network_call() {
    let Some(gpu) = gpu_or_skip("profile_training_step_and_network_call") else {
        return;
    };
    let (batch, steps) = if is_cpu_emulator(&gpu) {
        (4, 1)
    } else {
        (256, 5)
    };
    let ops = CudaOps::new(gpu, &PtxCache::default_location()).unwrap();
    let data = blob_dataset(1024, 28, 1);
    let cpu = ambient_trainer(UNetConfig::spec_mnist(), batch, 1);
    let mut dev = DeviceTrainer::from_cpu(ops, &cpu).unwrap();
    for _ in 0..3 {
        dev.train_step(&data).unwrap();
    }
    dev.ops.synchronize().unwrap();
    ambient_cuda::profile::start();
    for _ in 0..steps {
        dev.train_step(&data).unwrap();
    }
    dev.ops.synchronize().unwrap();
    let report = ambient_cuda::profile::finish(40).expect("recording");
    println!("PROFILE {steps} training steps at batch {batch}:\n{report}");
    assert!(report.contains("sgemm"), "no GPU time recorded:\n{report}");

    let mut rng = dev.rng.clone();
    let t = std::time::Instant::now();
    for i in 0..steps {
        ambient_cpu::train::draw_batch(&mut rng, &dev.opts, &data, i as u64).unwrap();
    }
    println!(
        "PROFILE host draw_batch at batch {batch}: {:.3} ms per step",
        1e3 * t.elapsed().as_secs_f64() / steps as f64
    );

    let plan = NetPlan::new(&UNetConfig::spec_mnist()).unwrap();
    let mut den = ambient_cuda::infer::CudaDenoiser::new(&dev.ops, &plan, &cpu.weights).unwrap();
    let shape = ambient_core::tensor::Shape {
        n: batch,
        c: 1,
        h: 28,
        w: 28,
    };
    let y =
        ambient_cuda::CudaTensor::from_host(&dev.ops.gpu, shape, &data.measurements[..batch * 784])
            .unwrap();
    let m = ambient_cuda::CudaTensor::from_host(&dev.ops.gpu, shape, &data.masks[..batch * 784])
        .unwrap();
    let mut out = ambient_cuda::CudaTensor::zeros(&dev.ops.gpu, shape).unwrap();
    use ambient_core::Denoiser;
    den.denoise(&y, &m, 0.1, &mut out).unwrap();
    dev.ops.synchronize().unwrap();
    ambient_cuda::profile::start();
    for _ in 0..steps {
        den.denoise(&y, &m, 0.1, &mut out).unwrap();
    }
    dev.ops.synchronize().unwrap();
    let report = ambient_cuda::profile::finish(25).expect("recording");
    println!("PROFILE {steps} network calls at batch {batch}:\n{report}");
}
