//! Post-training int8 quantization of a trained AmbientUNet for single-step restoration at one
//! fixed sigma `s_r` (NFE = 1), into the blob that `ambient_core::int8::model` reads and
//! `ambient_core::int8::restore` runs on a host or a microcontroller.
//!
//! Steps: fold the network for `s_r` ([`folded`]: the noise embedding and `emb_proj` into
//! conv1 biases, `c_in` into the input's scale, `sigma_data` into the output's); run the folded
//! f32 network on corrupted measurements and record every quantized tensor's min / max
//! ([`calibrate`]); choose TFLite quantization parameters and quantize weights, biases,
//! multipliers and lookup tables ([`emit`]); write the blob (`ambient_core::int8::blob_writer`)
//! with the executor's activation arena packed offline ([`arena_plan`]). [`runner`] restores
//! with a blob on the host, with the same core code the firmware runs.
//! `c_skip` and `c_out` need no folding: the restoration keeps the observed pixels of `y`, so
//! only `D = sigma_data F` at missing pixels is ever used.

pub mod arena_plan;
pub mod calibrate;
pub mod emit;
pub mod fast;
pub mod folded;
pub mod runner;

use ambient_core::int8::blob_writer::{blob_len, write_blob, TensorSpec};
use ambient_core::int8::model::Int8Model;
use ambient_core::int8::restore::buffer_events;
use thiserror::Error;

use crate::config::UNetConfig;
use crate::params::ParamStore;

pub use calibrate::{calibrate, Range, Ranges};
pub use folded::FoldedNet;

/// Why a model could not be quantized.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum QuantizeError {
    /// The weights do not fit the config, or the config is outside what the int8 graph takes.
    #[error("model: {0}")]
    Model(String),
    /// The calibration data is empty, mis-sized, or drives an activation to a non-finite value.
    #[error("calibration: {0}")]
    Calibration(String),
    /// A parameter could not be quantized (e.g. a bias too large for its accumulator scale).
    #[error("quantization: {0}")]
    Quantization(String),
    /// The written blob failed to load back.
    #[error("blob: {0}")]
    Blob(String),
}

/// A quantized model and what went into it.
#[derive(Debug, Clone)]
pub struct Quantized {
    pub blob: Vec<u8>,
    pub ranges: Ranges,
    /// Tensors in the blob.
    pub tensors: usize,
    /// 32-bit words of scratch the model needs to run.
    pub scratch_words: usize,
    /// Of which bytes of activation arena (the rest: GroupNorm statistics).
    pub arena_bytes: usize,
}

/// Quantizes `params` (config `cfg`) for restoration at `sigma`, calibrated on the `n`
/// measurements `y` with masks `m` (CHW images back to back, `m` 0 or 1).
pub fn quantize(
    cfg: &UNetConfig,
    params: &ParamStore,
    sigma: f32,
    y: &[f32],
    m: &[f32],
    n: usize,
) -> Result<Quantized, QuantizeError> {
    let net = FoldedNet::new(cfg, params, sigma).map_err(QuantizeError::Model)?;
    let ranges = calibrate(&net, y, m, n).map_err(QuantizeError::Calibration)?;
    let tensors = emit::emit_tensors(&net, &ranges).map_err(QuantizeError::Quantization)?;
    let blob_err = |e: ambient_core::int8::blob::BlobError| QuantizeError::Blob(e.to_string());
    let model_err = |e: ambient_core::int8::model::ModelError| QuantizeError::Blob(e.to_string());
    let write = |tensors: &[emit::OwnedTensor]| -> Result<Vec<u8>, QuantizeError> {
        let specs: Vec<TensorSpec> = tensors
            .iter()
            .map(|t| TensorSpec {
                name: &t.name,
                dtype: t.dtype,
                shape: &t.shape,
                data: &t.data,
            })
            .collect();
        let mut blob = vec![0u8; blob_len(&specs).map_err(blob_err)?];
        write_blob(&net.config, &specs, &mut blob).map_err(blob_err)?;
        Ok(blob)
    };
    // Without a plan first, to record the executor's buffers; then with the packed offsets.
    let words = aligned_copy(&write(&tensors)?);
    let model = Int8Model::from_blob(bytemuck::cast_slice(&words)).map_err(model_err)?;
    let mut events = Vec::new();
    buffer_events(&model, &mut |e| events.push(e)).map_err(model_err)?;
    let (offsets, _) = arena_plan::greedy_plan(&events);
    let mut tensors = tensors;
    tensors.push(emit::OwnedTensor::i32(
        "plan".into(),
        vec![offsets.len() as u32],
        &offsets,
    ));
    let blob = write(&tensors)?;
    let (scratch_words, arena_bytes) = {
        // Parse from a 4-aligned copy: typed views need an aligned base.
        let words = aligned_copy(&blob);
        let model = Int8Model::from_blob(bytemuck::cast_slice(&words)).map_err(model_err)?;
        (model.scratch_words(), model.arena_bytes())
    };
    Ok(Quantized {
        blob,
        ranges,
        tensors: tensors.len(),
        scratch_words,
        arena_bytes,
    })
}

/// `bytes` in a `u32` buffer (zero-padded to a whole word), so that a blob read from a file
/// sits at an aligned address for its typed views.
pub fn aligned_copy(bytes: &[u8]) -> Vec<u32> {
    let mut words = vec![0u32; bytes.len().div_ceil(4)];
    bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
    words
}
