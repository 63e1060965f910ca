//! ambient-cpu: the CPU host. AmbientUNet v1 (docs/ambient-unet-spec.md) in f32 on ndarray,
//! its weight files and checkpoints, corrupted datasets, training, sampling and restoration.

pub mod config;
pub mod corrupt;
pub mod denoiser;
pub mod error;
pub mod eval;
pub mod frozen;
pub mod init;
pub mod io;
pub mod malloc_tuning;
pub mod metrics;
pub mod nn;
pub mod optim;
pub mod params;
pub mod quantize;
pub mod restore;
pub mod sample;
pub mod tensor_nd;
pub mod train;
pub mod unet;

pub use error::HostError;
