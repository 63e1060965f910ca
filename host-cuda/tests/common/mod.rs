//! Shared by the integration tests: open the GPU or skip with "no CUDA device".

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
