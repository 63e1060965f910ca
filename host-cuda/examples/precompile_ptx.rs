//! Compiles the kernels to PTX for the given compute capabilities (e.g. `90 80`) into the PTX
//! cache (`AMBIENT_PTX_CACHE`, see ptx_cache.rs), so that a GPU machine without NVRTC can run
//! them: used by prepare-device-check.sh. Needs NVRTC here (`AMBIENT_NVRTC`), no GPU.

use ambient_cuda::cuda_ops::{module_ptx, NET_MODULES};
use ambient_cuda::device::elementwise_ptx;
use ambient_cuda::ptx_cache::PtxCache;
use ambient_cuda::ComputeCapability;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = PtxCache::default_location();
    let archs: Vec<String> = std::env::args().skip(1).collect();
    if archs.is_empty() {
        return Err("usage: precompile_ptx XY [XY ...] (compute capabilities, e.g. 90 80)".into());
    }
    for a in &archs {
        let v: u32 = a
            .parse()
            .map_err(|_| format!("not a compute capability: {a}"))?;
        let cc = ComputeCapability {
            major: v / 10,
            minor: v % 10,
        };
        let mut sizes = vec![("elementwise", elementwise_ptx(&cache, cc)?)];
        for (name, src) in NET_MODULES {
            sizes.push((name, module_ptx(&cache, name, src, cc)?));
        }
        for (name, ptx) in sizes {
            let version = ptx
                .lines()
                .find(|l| l.starts_with(".version"))
                .unwrap_or("?");
            println!(
                "compute_{a} {name}: {} bytes of PTX ({version}) in {}",
                ptx.len(),
                cache.dir().display()
            );
        }
    }
    Ok(())
}
