//! Single-image restoration latency measured as benches/compare_pytorch.py measures PyTorch's
//! and ONNX Runtime's: after 20 warm-up calls, the median of each of 5 blocks of 150 timed
//! calls (BLOCKS sets how many blocks), printed as one JSON object (seconds). On this project's 2-core VMs every runtime's
//! latency, ours included, switches between a fast and a slow mode from block to block;
//! benches/compare.sh compares the fastest blocks. Same inputs as benches/cpu.rs.
//! Run: cargo bench --bench restore_latency

use ambient_cpu::config::UNetConfig;
use ambient_cpu::denoiser::denoise;
use ambient_cpu::frozen::FrozenParams;
use ambient_cpu::unet::UNet;
use ndarray::Array4;

mod fixtures;
use fixtures::{data, trained_like};

fn main() {
    // As the `ambient` command runs (src/main.rs).
    ambient_cpu::malloc_tuning::keep_freed_memory();
    // `cargo bench` passes --bench (and any filter); the block count comes from BLOCKS.
    let n_blocks: usize = std::env::var("BLOCKS")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(5);
    let cfg = UNetConfig::spec_mnist();
    let net = UNet::new(&cfg).expect("net");
    let params = trained_like(&cfg);
    let params = FrozenParams::new(&params);
    let ds = data(1);
    let (y, m) = ds.image(0);
    let y = Array4::from_shape_vec((1, 1, 28, 28), y.to_vec()).expect("y");
    let m = Array4::from_shape_vec((1, 1, 28, 28), m.to_vec()).expect("m");
    let call = || std::hint::black_box(denoise(&net, &params, &y, &m, &[0.1]));
    for _ in 0..20 {
        call();
    }
    let blocks: Vec<f64> = (0..n_blocks)
        .map(|_| {
            let mut t: Vec<f64> = (0..150)
                .map(|_| {
                    let start = std::time::Instant::now();
                    call();
                    start.elapsed().as_secs_f64()
                })
                .collect();
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect();
    println!(
        "{{\"ambient_restore_blocks_s\": [{}]}}",
        blocks
            .iter()
            .map(|b| format!("{b:.7}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
