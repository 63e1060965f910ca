//! ambient-cpu: the CPU host. AmbientUNet v1 (docs/ambient-unet-spec.md) in f32 on ndarray,
//! its weight files and checkpoints, corrupted datasets, training, sampling and restoration.

pub mod config;
pub mod denoiser;
pub mod init;
pub mod nn;
pub mod params;
pub mod tensor_nd;
pub mod unet;
