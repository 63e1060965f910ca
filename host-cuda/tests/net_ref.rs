//! The network over `RefOps` (the orchestration the CUDA backend runs, with the reference
//! primitives) against host-cpu's f32 AmbientUNet: the output F, dL/dF_in and every parameter
//! gradient, on small configurations (one with two blocks per level, C = 2 and three levels),
//! from the same ParamStore flattened in spec order. Needs no GPU.

use ambient_core::AmbientRng;
use ambient_cpu::config::UNetConfig;
use ambient_cpu::unet::UNet;
use ambient_cuda::net::{Net, NetPlan};
use ambient_cuda::ref_ops::RefOps;
use ndarray::Array4;

mod support;
use support::{random_store, rel_err};

/// Normwise relative tolerance for a tensor computed by two f32 implementations that differ
/// only in the order of additions and in the exp of the sigmoids: each dot product of length
/// K carries a relative error of order sqrt(K) u (u = 2^-24 ~ 6e-8) in either, K <= 432 here,
/// so ~1.3e-6 per layer; about 30 layers deep forward and back, errors that add up randomly
/// stay below ~1e-5. 1e-4 (the bound) leaves room for cancellation in the smallest
/// gradients while still catching any wiring mistake, which gives errors of order 1.
const TOL: f64 = 1e-4;

fn check(cfg: UNetConfig, n: usize, seed: u64) {
    let cpu = UNet::new(&cfg).unwrap();
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

    let plan = NetPlan::new(&cfg).unwrap();
    let ops = RefOps;
    let net = Net::new(&ops, &plan);
    let flat: Vec<f32> = params
        .params
        .iter()
        .flat_map(|p| p.data.iter().copied())
        .collect();
    assert_eq!(flat.len(), plan.total);
    let (f, tape) = net
        .forward(&flat, f_in.as_slice().unwrap().to_vec(), n, r, r, &c_noise)
        .unwrap();
    let e = rel_err(&f, f_cpu.as_slice().unwrap());
    println!("F: relative error {e:.2e}");
    assert!(e < TOL, "F differs: {e:e}");
    let mut grads = vec![0.0f32; plan.total];
    let d_in = net
        .backward(&flat, tape, d_f.as_slice().unwrap().to_vec(), &mut grads)
        .unwrap();
    let e = rel_err(&d_in, d_in_cpu.as_slice().unwrap());
    println!("dF_in: relative error {e:.2e}");
    assert!(e < TOL, "dF_in differs: {e:e}");
    let mut worst = (0.0f64, String::new());
    for ((name, _, off), p) in plan.layout.iter().zip(&g_cpu.params) {
        assert_eq!(name, &p.name);
        let g = &grads[*off..off + p.data.len()];
        let gn: f64 = p.data.iter().map(|&v| (v as f64).powi(2)).sum();
        assert!(gn > 0.0, "{name}: zero gradient in the reference");
        let e = rel_err(g, &p.data);
        if e > worst.0 {
            worst = (e, name.clone());
        }
        assert!(e < TOL, "gradient of {name} differs: {e:e}");
    }
    println!("worst parameter gradient: {} at {:.2e}", worst.1, worst.0);
}

#[test]
fn ref_network_matches_host_cpu_two_levels() {
    let cfg = UNetConfig {
        img_channels: 1,
        img_resolution: 8,
        ch: 8,
        mult: vec![1, 2],
        blocks: 1,
        groups: 4,
        sigma_data: 0.5,
    };
    check(cfg, 3, 11);
}

#[test]
fn ref_network_matches_host_cpu_three_levels_two_blocks() {
    let cfg = UNetConfig {
        img_channels: 2,
        img_resolution: 8,
        ch: 8,
        mult: vec![1, 2, 2],
        blocks: 2,
        groups: 2,
        sigma_data: 0.5,
    };
    check(cfg, 2, 12);
}

/// The spec configuration at 28 x 28, where host-cpu computes the 3 x 3 convolutions by
/// Winograd F(2x2, 3x3) (other roundings than im2col + SGEMM): the same bound holds.
#[test]
fn ref_network_matches_host_cpu_spec_config() {
    check(UNetConfig::spec_mnist(), 2, 13);
}
