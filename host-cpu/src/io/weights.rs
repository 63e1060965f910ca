//! Weight files (docs/ambient-unet-spec.md, "Weight file"): safetensors, f32 little-endian,
//! the spec's tensor names in PyTorch layouts, and `__metadata__["config"]` = the JSON of the
//! [`ModelConfig`]. Loading validates everything against [`spec_layout`]: each tensor present
//! with its shape and dtype, no unknown names, finite values, a valid config. [`describe`]
//! summarises a weight file or checkpoint for `ambient info`.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use crate::config::ModelConfig;
use crate::error::HostError;
use crate::io::model_config::{config_from_metadata, validate_model_config};
use crate::io::safetensors_file::{
    check_store_for_writing, parse_safetensors, read_file, read_store, reject_unknown,
    write_safetensors,
};
use crate::params::{spec_layout, ParamStore};

/// `__metadata__["format"]` of a weight file (files without it, e.g. from PyTorch, are read
/// as weight files too).
pub const WEIGHTS_FORMAT: &str = "ambient-weights-v1";
/// `__metadata__["format"]` of a training checkpoint.
pub const CHECKPOINT_FORMAT: &str = "ambient-checkpoint-v1";

/// Saves EMA (or any) weights with their config; the store must match `spec_layout(cfg)`.
pub fn save_weights(path: &Path, cfg: &ModelConfig, store: &ParamStore) -> Result<(), HostError> {
    validate_model_config(cfg)
        .map_err(|e| HostError::unwritable(path, format!("invalid config: {e}")))?;
    check_store_for_writing(path, "weights", cfg, store)?;
    let json = serde_json::to_string(cfg).map_err(|e| HostError::unwritable(path, e))?;
    let meta = HashMap::from([
        ("config".to_string(), json),
        ("format".to_string(), WEIGHTS_FORMAT.to_string()),
    ]);
    write_safetensors(path, &[("", store)], meta)
}

/// Loads a weight file: its config and its tensors in spec order.
pub fn load_weights(path: &Path) -> Result<(ModelConfig, ParamStore), HostError> {
    let bytes = read_file(path)?;
    let (st, meta) = parse_safetensors(path, &bytes)?;
    if let Some(f) = meta.get("format") {
        if f != WEIGHTS_FORMAT {
            return Err(HostError::invalid(
                path,
                format!("this is a {f} file, not a weight file (format {WEIGHTS_FORMAT})"),
            ));
        }
    }
    let cfg = config_from_metadata(path, &meta)?;
    let layout = spec_layout(&cfg.unet);
    reject_unknown(path, &st, &[""], &layout)?;
    let store = read_store(path, &st, "", &layout)?;
    Ok((cfg, store))
}

/// What kind of ambient file a safetensors file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Weights,
    Checkpoint,
}

/// A summary of a weight file or checkpoint, for `ambient info`.
#[derive(Debug, Clone, PartialEq)]
pub struct FileDescription {
    pub kind: FileKind,
    pub config: ModelConfig,
    /// Tensors in the file (a checkpoint holds four per parameter tensor).
    pub tensors: usize,
    /// Scalars of one copy of the network's weights.
    pub parameters: usize,
    /// Training step (checkpoints only).
    pub step: Option<u64>,
}

impl fmt::Display for FileDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            FileKind::Weights => "weights (safetensors)",
            FileKind::Checkpoint => "training checkpoint (safetensors)",
        };
        writeln!(f, "kind:       {kind}")?;
        let u = &self.config.unet;
        writeln!(
            f,
            "network:    AmbientUNet v1, C = {}, {} x {}, ch {}, mult {:?}, blocks {}, groups {}, sigma_data {}",
            u.img_channels, u.img_resolution, u.img_resolution, u.ch, u.mult, u.blocks, u.groups, u.sigma_data
        )?;
        let c = &self.config.corruption;
        let side = c.r#box.map_or(String::new(), |b| format!(", box {b}"));
        writeln!(
            f,
            "corruption: {} p = {}, delta = {}{side}, mode {}",
            c.kind, c.p, c.delta, c.mode
        )?;
        writeln!(f, "tensors:    {}", self.tensors)?;
        write!(f, "parameters: {}", self.parameters)?;
        if let Some(s) = self.step {
            write!(f, "\nstep:       {s}")?;
        }
        Ok(())
    }
}

/// Reads the header of a weight file or checkpoint and summarises it (tensor data is not
/// validated beyond the header; use the loaders for that).
pub fn describe(path: &Path) -> Result<FileDescription, HostError> {
    let bytes = read_file(path)?;
    let (st, meta) = parse_safetensors(path, &bytes)?;
    let kind = match meta.get("format").map(String::as_str) {
        None | Some(WEIGHTS_FORMAT) => FileKind::Weights,
        Some(CHECKPOINT_FORMAT) => FileKind::Checkpoint,
        Some(other) => {
            return Err(HostError::invalid(
                path,
                format!("unknown file format {other:?}"),
            ))
        }
    };
    let config = config_from_metadata(path, &meta)?;
    let parameters = spec_layout(&config.unet)
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    let step = match kind {
        FileKind::Checkpoint => Some(
            meta.get("step")
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| HostError::invalid(path, "checkpoint without a valid step"))?,
        ),
        FileKind::Weights => None,
    };
    Ok(FileDescription {
        kind,
        config,
        tensors: st.len(),
        parameters,
        step,
    })
}
