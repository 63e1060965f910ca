//! The preconditioned denoiser over `RefOps` against host-cpu's: `D(y, m, s)` and its
//! vector-Jacobian product dL/dy (reconstruction guidance), with masks hiding pixels and one
//! sigma per sample spanning small to large noise. Needs no GPU.

use ambient_core::AmbientRng;
use ambient_cpu::denoiser::{denoise_backward, denoise_train};
use ambient_cpu::unet::UNet;
use ambient_cuda::denoise::{denoise, denoise_vjp};
use ambient_cuda::net::{Net, NetPlan};
use ambient_cuda::ref_ops::RefOps;
use ndarray::Array4;

mod support;
use support::{random_store, rel_err, tiny_config};

/// As net_ref.rs: the network's f32 rounding (~1e-6 normwise here), plus a few roundings of
/// the preconditioning written in another order; 1e-4 catches any wrong coefficient or mask
/// (errors of order 1).
const TOL: f64 = 1e-4;

#[test]
fn ref_denoiser_and_its_vjp_match_host_cpu() {
    let cfg = tiny_config();
    let cpu = UNet::new(&cfg).unwrap();
    let mut rng = AmbientRng::new(31);
    let params = random_store(cpu.layout(), &mut rng);
    let n = 3;
    let m = Array4::from_shape_fn((n, 1, 8, 8), |(i, _, y, x)| {
        ((i + 2 * y + x) % 4 != 0) as u8 as f32
    });
    let mut y = Array4::<f32>::zeros((n, 1, 8, 8));
    y.iter_mut().for_each(|v| *v = rng.normal());
    let y = y * &m;
    let sigmas = [0.01f32, 0.4, 20.0];
    let (d_cpu, tape) = denoise_train(&cpu, &params, &y, &m, &sigmas);
    let mut cot = Array4::<f32>::zeros(y.dim());
    cot.iter_mut().for_each(|v| *v = rng.normal());
    let mut unused = params.zeros_like();
    let gy_cpu = denoise_backward(&cpu, &params, &tape, &cot, &mut unused);

    let plan = NetPlan::new(&cfg).unwrap();
    let net = Net::new(&RefOps, &plan);
    let flat: Vec<f32> = params
        .params
        .iter()
        .flat_map(|p| p.data.iter().copied())
        .collect();
    let (ys, ms) = (
        y.as_slice().unwrap().to_vec(),
        m.as_slice().unwrap().to_vec(),
    );
    let (d, t) = denoise(&net, &flat, &ys, &ms, &sigmas, 8, 8).unwrap();
    let e = rel_err(&d, d_cpu.as_slice().unwrap());
    println!("D: relative error {e:.2e}");
    assert!(e < TOL, "D differs: {e:e}");
    let gy = denoise_vjp(&net, &flat, t, &ms, &cot.as_slice().unwrap().to_vec()).unwrap();
    let e = rel_err(&gy, gy_cpu.as_slice().unwrap());
    println!("dL/dy: relative error {e:.2e}");
    assert!(e < TOL, "dL/dy differs: {e:e}");
    // Both terms matter: hidden pixels get only the network's path, seen ones also c_skip's.
    assert!(gy_cpu
        .iter()
        .zip(m.iter())
        .any(|(&g, &k)| k == 0.0 && g != 0.0));
}
