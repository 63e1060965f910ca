//! The network over `RefOps` (the orchestration the CUDA backend runs, with the reference
//! primitives) against host-cpu's f32 AmbientUNet: the output F, dL/dF_in and every parameter
//! gradient, on small configurations (one with two blocks per level, C = 2 and three levels),
//! from the same ParamStore flattened in spec order. Needs no GPU.

use ambient_cpu::config::UNetConfig;
use ambient_cuda::ref_ops::RefOps;

mod support;
use support::network_matches_host_cpu;

/// Normwise relative tolerance for a tensor computed by two f32 implementations that differ
/// only in the order of additions and in the exp of the sigmoids: each dot product of length
/// K carries a relative error of order sqrt(K) u (u = 2^-24 ~ 6e-8) in either, K <= 432 here,
/// so ~1.3e-6 per layer; about 30 layers deep forward and back, errors that add up randomly
/// stay below ~1e-5. 1e-4 (the bound) leaves room for cancellation in the smallest
/// gradients while still catching any wiring mistake, which gives errors of order 1.
const TOL: f64 = 1e-4;

fn check(cfg: UNetConfig, n: usize, seed: u64) {
    network_matches_host_cpu(&RefOps, &cfg, n, seed, TOL, "RefOps");
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
/// Winograd F(4x4, 3x3) (other roundings than im2col + SGEMM): the same bound holds.
#[test]
fn ref_network_matches_host_cpu_spec_config() {
    check(UNetConfig::spec_mnist(), 2, 13);
}
