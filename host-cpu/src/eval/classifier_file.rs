//! The classifier's weight file: safetensors, f32, the tensor names of
//! [`ClassifierConfig::layout`], `__metadata__["format"] = "ambient-classifier-v1"` and
//! `__metadata__["config"]` = the JSON of its [`ClassifierConfig`]. Loading checks the format
//! mark, the config, every tensor's presence, dtype, shape and finiteness, and that no other
//! tensor is present.

use std::collections::HashMap;
use std::path::Path;

use super::classifier::ClassifierConfig;
use super::EvalError;
use crate::error::HostError;
use crate::io::safetensors_file::{
    parse_safetensors, read_file, read_store, reject_unknown, write_safetensors,
};
use crate::params::ParamStore;

/// `__metadata__["format"]` of a classifier weight file.
pub const CLASSIFIER_FORMAT: &str = "ambient-classifier-v1";

/// Saves the classifier's weights with its config.
pub fn save_classifier(
    path: &Path,
    cfg: &ClassifierConfig,
    params: &ParamStore,
) -> Result<(), EvalError> {
    cfg.validate()?;
    if !cfg.fits(params) {
        return Err(
            HostError::unwritable(path, "parameters do not fit the classifier's layout").into(),
        );
    }
    if params
        .params
        .iter()
        .flat_map(|p| &p.data)
        .any(|v| !v.is_finite())
    {
        return Err(HostError::unwritable(path, "non-finite classifier weights").into());
    }
    let json = serde_json::to_string(cfg).map_err(|e| HostError::unwritable(path, e))?;
    let meta = HashMap::from([
        ("config".to_string(), json),
        ("format".to_string(), CLASSIFIER_FORMAT.to_string()),
    ]);
    Ok(write_safetensors(path, &[("", params)], meta)?)
}

/// Loads a classifier weight file: its config and its tensors in layout order.
pub fn load_classifier(path: &Path) -> Result<(ClassifierConfig, ParamStore), EvalError> {
    let bytes = read_file(path)?;
    let (st, meta) = parse_safetensors(path, &bytes)?;
    match meta.get("format") {
        Some(f) if f == CLASSIFIER_FORMAT => {}
        other => {
            return Err(HostError::invalid(
                path,
                format!(
                    "not a classifier weight file: format {:?}, expected {CLASSIFIER_FORMAT}",
                    other.map(String::as_str).unwrap_or("missing")
                ),
            )
            .into())
        }
    }
    let cfg: ClassifierConfig = meta
        .get("config")
        .ok_or_else(|| HostError::invalid(path, "no classifier config in the metadata"))
        .and_then(|j| {
            serde_json::from_str(j)
                .map_err(|e| HostError::invalid(path, format!("classifier config: {e}")))
        })?;
    cfg.validate()
        .map_err(|e| HostError::invalid(path, format!("classifier config: {e}")))?;
    let layout = cfg.layout();
    reject_unknown(path, &st, &[""], &layout)?;
    let params = read_store(path, &st, "", &layout)?;
    Ok((cfg, params))
}
