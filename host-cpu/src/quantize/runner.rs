//! The host's int8 runner: restores a batch of measurements with a quantized model blob, images
//! in parallel, each worker with its own workspace. [`restore_int8`] runs the fast host
//! executor ([`super::fast`]), which gives the core executor's output bit for bit;
//! [`restore_int8_core`] runs the core executor itself (the code the firmware runs).

use ambient_core::int8::blob::BlobConfig;
use ambient_core::int8::model::{Int8Model, ModelError};
use ambient_core::int8::restore::restore;
use rayon::prelude::*;

use super::fast::{restore_fast, FastInt8Model, FastWorkspace};
use crate::io::dataset::CorruptedDataset;

/// Checks that `y` and `m` hold whole images of `len` and returns an output of their size.
fn output_for(len: usize, y: &[f32], m: &[f32]) -> Result<Vec<f32>, ModelError> {
    if !y.len().is_multiple_of(len) || m.len() != y.len() {
        return Err(ModelError::Input(ambient_core::CoreError::ShapeMismatch {
            what: "measurements and masks (whole images)",
            expected: y.len().div_ceil(len) * len,
            got: m.len(),
        }));
    }
    Ok(vec![0.0f32; y.len()])
}

/// Restores the `y.len() / image_len` measurements `y` with masks `m` (CHW images back to
/// back) on the fast executor; returns the restorations in the same layout.
pub fn restore_int8(model: &Int8Model, y: &[f32], m: &[f32]) -> Result<Vec<f32>, ModelError> {
    restore_int8_fast(&FastInt8Model::new(model)?, y, m)
}

/// [`restore_int8`] with a model prepared once ([`FastInt8Model::new`]).
pub fn restore_int8_fast(
    model: &FastInt8Model,
    y: &[f32],
    m: &[f32],
) -> Result<Vec<f32>, ModelError> {
    let len = model.image_len();
    let mut out = output_for(len, y, m)?;
    out.par_chunks_mut(len)
        .zip(y.par_chunks(len).zip(m.par_chunks(len)))
        .try_for_each_init(
            || FastWorkspace::new(model),
            |ws, (o, (yi, mi))| restore_fast(model, ws, yi, mi, o),
        )?;
    Ok(out)
}

/// The same restorations with the core executor (`ambient_core::int8::restore::restore`).
pub fn restore_int8_core(model: &Int8Model, y: &[f32], m: &[f32]) -> Result<Vec<f32>, ModelError> {
    let len = model.image_len();
    let mut out = output_for(len, y, m)?;
    out.par_chunks_mut(len)
        .zip(y.par_chunks(len).zip(m.par_chunks(len)))
        .try_for_each_init(
            || vec![0u32; model.scratch_words()],
            |scratch, (o, (yi, mi))| restore(model, yi, mi, scratch, o),
        )?;
    Ok(out)
}

/// The configuration (and folded sigma) of the model blob `bytes`, after checking the whole
/// blob as [`Int8Model::from_blob`] does.
pub fn blob_config(bytes: &[u8]) -> Result<BlobConfig, String> {
    let words = super::aligned_copy(bytes);
    let model = Int8Model::from_blob(&bytemuck::cast_slice(&words)[..bytes.len()])
        .map_err(|e| e.to_string())?;
    Ok(*model.config())
}

/// Restores every image of `ds` with the model blob `bytes` (as read from a file); returns the
/// sigma the blob was quantized for and the restorations (CHW images back to back).
pub fn restore_dataset(bytes: &[u8], ds: &CorruptedDataset) -> Result<(f32, Vec<f32>), String> {
    let words = super::aligned_copy(bytes);
    let model = Int8Model::from_blob(&bytemuck::cast_slice(&words)[..bytes.len()])
        .map_err(|e| e.to_string())?;
    let cfg = model.config();
    let (c, r) = (cfg.img_channels as usize, cfg.img_resolution as usize);
    if (ds.c, ds.h, ds.w) != (c, r, r) {
        return Err(format!(
            "images are {} x {} x {} but the model takes {c} x {r} x {r}",
            ds.c, ds.h, ds.w
        ));
    }
    let out = restore_int8(&model, &ds.measurements, &ds.masks).map_err(|e| e.to_string())?;
    Ok((cfg.sigma, out))
}
