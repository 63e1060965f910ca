//! Training steps over `RefOps` (the device trainer's orchestration with the reference
//! primitives) against host-cpu's trainer from the same state: the same batches (same RNG
//! calls), the loss of every step, and the weights, EMA and Adam moments after the steps.
//! Needs no GPU.

use ambient_cuda::ref_ops::RefOps;
use ambient_cuda::train::DeviceTrainer;

mod support;
use support::{ambient_trainer, blob_dataset, rel_err, tiny_config};

/// Tolerances. The loss of a step: the two trainers draw identical batches, so the losses
/// differ only by the network's f32 rounding (normwise ~1e-6 on F, see net_ref.rs), well
/// inside 1e-4 relative. The state after 4 steps: Adam's update is
/// lr m / (sqrt(v) + eps), nearly lr sign(g) in early steps, so a gradient element near 0
/// whose sign differs by rounding moves a weight by up to 2 lr (6e-3 here at full lr, 3e-4 in
/// warm-up); such elements are rare, and the weights' norm is O(1) per element, so the
/// normwise error of the weights stays ~1e-5. 1e-4 still catches any real difference (a
/// wrong gradient, clip, bias correction or EMA gives errors of order lr / |w| ~ 1e-2).
const LOSS_TOL: f64 = 1e-4;
const STATE_TOL: f64 = 1e-4;

#[test]
fn ref_trainer_follows_host_cpu_trainer() {
    let data = blob_dataset(16, 8, 5);
    let mut cpu = ambient_trainer(tiny_config(), 6, 3);
    let mut dev = DeviceTrainer::from_cpu(RefOps, &cpu).unwrap();
    for _ in 0..4 {
        let a = cpu.train_step(&data).unwrap();
        let b = dev.train_step(&data).unwrap();
        println!(
            "step {}: loss cpu {} ref {}, grad norm cpu {} ref {}",
            a.step, a.loss, b.loss, a.grad_norm, b.grad_norm
        );
        assert_eq!(a.step, b.step);
        assert_eq!(a.lr, b.lr);
        let e = ((a.loss - b.loss) / a.loss).abs() as f64;
        assert!(e < LOSS_TOL, "loss differs at step {}: {e:e}", a.step);
        assert!(((a.grad_norm - b.grad_norm) / a.grad_norm).abs() < LOSS_TOL);
    }
    assert_eq!(cpu.rng, dev.rng, "the same random draws");
    let mut back = ambient_trainer(tiny_config(), 6, 3);
    dev.store_into(&mut back).unwrap();
    let flat = |p: &ambient_cpu::params::ParamStore| -> Vec<f32> {
        p.params.iter().flat_map(|t| t.data.clone()).collect()
    };
    for (what, a, b) in [
        ("weights", &back.weights, &cpu.weights),
        ("ema", &back.ema, &cpu.ema),
        ("adam m", &back.adam.m, &cpu.adam.m),
        ("adam v", &back.adam.v, &cpu.adam.v),
    ] {
        let e = rel_err(&flat(a), &flat(b));
        println!("{what}: relative error {e:.2e}");
        assert!(e < STATE_TOL, "{what} differ: {e:e}");
    }
    // The state moved: the comparison is not between two untouched initialisations.
    let init = ambient_trainer(tiny_config(), 6, 3);
    assert!(rel_err(&flat(&init.weights), &flat(&cpu.weights)) > 1e-3);
    assert_eq!((back.step, back.adam.t), (cpu.step, cpu.adam.t));
}

/// The device trainer draws each step's batch during the previous step; a step given another
/// dataset than that step's must draw afresh from the generator state a checkpoint would hold,
/// as host-cpu's trainer does.
#[test]
fn a_step_on_another_dataset_draws_its_own_batch() {
    let (first, second) = (blob_dataset(16, 8, 5), blob_dataset(16, 8, 6));
    let mut cpu = ambient_trainer(tiny_config(), 6, 3);
    let mut dev = DeviceTrainer::from_cpu(RefOps, &cpu).unwrap();
    for data in [&first, &second, &second, &first] {
        let a = cpu.train_step(data).unwrap();
        let b = dev.train_step(data).unwrap();
        let e = ((a.loss - b.loss) / a.loss).abs() as f64;
        assert!(e < LOSS_TOL, "loss differs at step {}: {e:e}", a.step);
        assert_eq!(cpu.rng, dev.rng, "generator state after step {}", a.step);
    }
}
