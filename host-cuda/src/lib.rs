//! ambient-cuda: the CUDA host of ambient, on NVIDIA GPUs through the driver API (cust) and our
//! own kernels, written in CUDA C (`kernels/`) and compiled at run time with NVRTC.
//!
//! What is here: the device (driver initialisation, device 0, context, stream; typed errors
//! with [`CudaHostError::NoDevice`] when there is no GPU), NVRTC loaded dynamically with a PTX
//! cache keyed by architecture and source, typed safe wrappers of every kernel (`kernels.rs`,
//! `cuda_ops.rs`: the only launches in the crate), [`CudaTensor`], the core's `Tensor` on
//! device buffers, and AmbientUNet's forward and backward passes, loss, optimiser, sampler and
//! restoration written once over the device primitives of [`ops::Ops`], with a reference
//! implementation in plain Rust ([`ref_ops::RefOps`]) and the CUDA one (`cuda_ops::CudaOps`).
//!
//! Everything needing the driver is behind the feature `cuda` (it links libcuda.so.1); without
//! it the crate holds only the driver-free part (`ops`, `ref_ops`, `net`, `denoise`, `train`),
//! so `cargo test --workspace` builds on machines without CUDA. CI
//! builds it against a link-time stub of the driver (README.md, `stub/build-stub.sh`).
#![deny(unsafe_code)]

pub mod denoise;
pub mod net;
pub mod ops;
pub mod ref_ops;
pub mod train;

#[cfg(feature = "cuda")]
pub mod cuda_ops;
#[cfg(feature = "cuda")]
pub mod device;
#[cfg(feature = "cuda")]
pub mod error;
#[cfg(feature = "cuda")]
pub mod infer;
#[cfg(feature = "cuda")]
mod kernels;
#[cfg(feature = "cuda")]
pub mod nvrtc;
#[cfg(feature = "cuda")]
pub mod profile;
#[cfg(feature = "cuda")]
pub mod ptx_cache;
#[cfg(feature = "cuda")]
pub mod tensor;

#[cfg(feature = "cuda")]
pub use device::{ComputeCapability, DeviceInfo, Gpu};
#[cfg(feature = "cuda")]
pub use error::{CudaHostError, Result};
#[cfg(feature = "cuda")]
pub use tensor::CudaTensor;
