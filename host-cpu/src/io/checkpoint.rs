//! Training checkpoints: one safetensors file holding the weights (spec names), the EMA
//! weights (`ema.`), Adam's moments (`adam_m.`, `adam_v.`), and in `__metadata__` the config,
//! the step, the RNG state, Adam's hyper-parameters and step count, the EMA schedule and the
//! trainer's options (an opaque JSON string). A checkpoint round-trips bit for bit, so a
//! resumed run continues exactly as if it had not stopped.

use std::collections::HashMap;
use std::path::Path;

use crate::config::ModelConfig;
use crate::error::HostError;
use crate::io::model_config::{config_differences, config_from_metadata, validate_model_config};
use crate::io::safetensors_file::{
    check_store_for_writing, parse_safetensors, read_file, read_store, reject_unknown,
    write_safetensors,
};
use crate::io::weights::{CHECKPOINT_FORMAT, WEIGHTS_FORMAT};
use crate::optim::{Adam, AdamConfig, EmaSchedule};
use crate::params::{spec_layout, ParamStore};

pub const EMA_PREFIX: &str = "ema.";
pub const ADAM_M_PREFIX: &str = "adam_m.";
pub const ADAM_V_PREFIX: &str = "adam_v.";

/// Everything needed to resume training.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub config: ModelConfig,
    /// Training steps taken.
    pub step: u64,
    /// `AmbientRng::state()`: the PCG state and the cached spare normal's bits.
    pub rng_state: (u64, Option<u32>),
    pub weights: ParamStore,
    pub ema: ParamStore,
    pub ema_schedule: EmaSchedule,
    /// Adam's hyper-parameters, moments and step count.
    pub adam: Adam,
    /// The trainer's options as JSON, stored and returned unchanged.
    pub training_options: String,
}

fn meta_get<'a>(
    path: &Path,
    meta: &'a HashMap<String, String>,
    key: &str,
) -> Result<&'a str, HostError> {
    meta.get(key)
        .map(String::as_str)
        .ok_or_else(|| HostError::invalid(path, format!("checkpoint metadata has no {key:?}")))
}

fn meta_parse<T: std::str::FromStr>(
    path: &Path,
    meta: &HashMap<String, String>,
    key: &str,
) -> Result<T, HostError> {
    let s = meta_get(path, meta, key)?;
    s.parse().map_err(|_| {
        HostError::invalid(
            path,
            format!("checkpoint metadata {key:?} = {s:?} is not a valid value"),
        )
    })
}

fn meta_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    meta: &HashMap<String, String>,
    key: &str,
) -> Result<T, HostError> {
    let s = meta_get(path, meta, key)?;
    serde_json::from_str(s)
        .map_err(|e| HostError::invalid(path, format!("checkpoint metadata {key:?}: {e}")))
}

/// Writes a checkpoint atomically. All four stores must match `spec_layout(config)`.
pub fn save_checkpoint(path: &Path, ck: &Checkpoint) -> Result<(), HostError> {
    validate_model_config(&ck.config)
        .map_err(|e| HostError::unwritable(path, format!("invalid config: {e}")))?;
    for (what, store) in [
        ("weights", &ck.weights),
        ("EMA weights", &ck.ema),
        ("Adam m", &ck.adam.m),
        ("Adam v", &ck.adam.v),
    ] {
        check_store_for_writing(path, what, &ck.config, store)?;
    }
    let (state, spare) = ck.rng_state;
    let meta = HashMap::from([
        ("format".to_string(), CHECKPOINT_FORMAT.to_string()),
        ("config".to_string(), to_json(path, &ck.config)?),
        ("step".to_string(), ck.step.to_string()),
        ("rng_state".to_string(), state.to_string()),
        (
            "rng_spare_normal".to_string(),
            spare.map_or("none".to_string(), |b| b.to_string()),
        ),
        ("adam".to_string(), to_json(path, &ck.adam.config)?),
        ("adam_t".to_string(), ck.adam.t.to_string()),
        ("ema_schedule".to_string(), to_json(path, &ck.ema_schedule)?),
        ("training_options".to_string(), ck.training_options.clone()),
    ]);
    write_safetensors(
        path,
        &[
            ("", &ck.weights),
            (EMA_PREFIX, &ck.ema),
            (ADAM_M_PREFIX, &ck.adam.m),
            (ADAM_V_PREFIX, &ck.adam.v),
        ],
        meta,
    )
}

/// `v` as JSON for the metadata.
fn to_json<T: serde::Serialize>(path: &Path, v: &T) -> Result<String, HostError> {
    serde_json::to_string(v).map_err(|e| HostError::unwritable(path, e))
}

/// Reads a checkpoint whatever its config.
pub fn read_checkpoint(path: &Path) -> Result<Checkpoint, HostError> {
    read(path, None)
}

/// Reads a checkpoint made for `requested`; any other config is an error naming the fields
/// that differ (checked before the tensors are read).
pub fn load_checkpoint(path: &Path, requested: &ModelConfig) -> Result<Checkpoint, HostError> {
    read(path, Some(requested))
}

fn read(path: &Path, requested: Option<&ModelConfig>) -> Result<Checkpoint, HostError> {
    let bytes = read_file(path)?;
    let (st, meta) = parse_safetensors(path, &bytes)?;
    match meta.get("format").map(String::as_str) {
        Some(CHECKPOINT_FORMAT) => {}
        None | Some(WEIGHTS_FORMAT) => {
            return Err(HostError::invalid(
                path,
                "this is a weight file, not a training checkpoint; it cannot resume training",
            ))
        }
        Some(other) => {
            return Err(HostError::invalid(
                path,
                format!(
                    "not a training checkpoint (format {other:?}, expected {CHECKPOINT_FORMAT:?})"
                ),
            ))
        }
    }
    let config = config_from_metadata(path, &meta)?;
    if let Some(req) = requested {
        let differences = config_differences(&config, req);
        if !differences.is_empty() {
            return Err(HostError::ConfigMismatch {
                path: path.to_path_buf(),
                differences,
            });
        }
    }
    let spare = match meta_get(path, &meta, "rng_spare_normal")? {
        "none" => None,
        _ => Some(meta_parse::<u32>(path, &meta, "rng_spare_normal")?),
    };
    let adam_config: AdamConfig = meta_json(path, &meta, "adam")?;
    adam_config
        .validate()
        .map_err(|e| HostError::invalid(path, e.to_string()))?;
    let ema_schedule: EmaSchedule = meta_json(path, &meta, "ema_schedule")?;
    ema_schedule
        .validate()
        .map_err(|e| HostError::invalid(path, e.to_string()))?;
    let layout = spec_layout(&config.unet);
    reject_unknown(
        path,
        &st,
        &["", EMA_PREFIX, ADAM_M_PREFIX, ADAM_V_PREFIX],
        &layout,
    )?;
    Ok(Checkpoint {
        step: meta_parse(path, &meta, "step")?,
        rng_state: (meta_parse(path, &meta, "rng_state")?, spare),
        weights: read_store(path, &st, "", &layout)?,
        ema: read_store(path, &st, EMA_PREFIX, &layout)?,
        ema_schedule,
        adam: Adam {
            config: adam_config,
            m: read_store(path, &st, ADAM_M_PREFIX, &layout)?,
            v: read_store(path, &st, ADAM_V_PREFIX, &layout)?,
            t: meta_parse(path, &meta, "adam_t")?,
        },
        training_options: meta_get(path, &meta, "training_options")?.to_string(),
        config,
    })
}
