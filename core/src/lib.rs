//! ambient-core: the mathematics of Ambient Diffusion (Daras et al., NeurIPS 2023), stated once.
//!
//! `no_std`, no allocator: every function works in buffers the caller owns. Hosts (CPU, CUDA,
//! firmware) bring memory, parallelism and I/O; they share from here the corruption operators,
//! the losses, the noise schedules and the sampler recurrences, so the same seed gives the same
//! masks and the same recurrences everywhere. See `docs/ambient-unet-spec.md` for the network
//! and conventions this crate implements.
#![no_std]
#![forbid(unsafe_code)]

pub mod corruption;
pub mod denoiser;
pub mod error;
pub mod int8;
pub mod loss;
pub mod precond;
pub mod rng;
pub mod sampler;
pub mod schedule;
pub mod sigma;
pub mod tensor;

pub use denoiser::Denoiser;
pub use error::CoreError;
pub use rng::AmbientRng;
pub use tensor::{Shape, SliceTensor, Tensor};
