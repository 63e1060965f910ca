//! Shared by the integration tests: open the GPU or skip with "no CUDA device".
#![allow(dead_code)] // each test binary uses a part

use ambient_cuda::ptx_cache::PtxCache;
use ambient_cuda::{CudaHostError, Gpu};
use std::rc::Rc;

/// Device 0, or `None` after printing "no CUDA device: skipping TEST" when the machine has
/// none (CI links a stub driver that answers CUDA_ERROR_NO_DEVICE). Any other failure to open
/// a device that exists (a driver error, NVRTC missing) fails the test.
pub fn gpu_or_skip(test: &str) -> Option<Rc<Gpu>> {
    match Gpu::open(&PtxCache::default_location()) {
        Ok(gpu) => Some(gpu),
        Err(CudaHostError::NoDevice(why)) => {
            println!("no CUDA device: skipping {test} ({why})");
            None
        }
        Err(e) => panic!("{test}: opening the CUDA device failed: {e}"),
    }
}

/// The device name the CPU emulator of the driver reports (host-cuda/emu, README.md).
pub const CPU_EMULATOR: &str = "ambient CPU emulator";

/// Whether `gpu` is the CPU emulator: its kernels are the real ones, its timing and memory are
/// not a GPU's.
pub fn is_cpu_emulator(gpu: &Gpu) -> bool {
    gpu.info().name == CPU_EMULATOR
}
