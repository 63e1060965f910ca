//! Weight files (docs/ambient-unet-spec.md, "Weight file"): safetensors, f32 little-endian,
//! the spec's tensor names in PyTorch layouts, and `__metadata__["config"]` = the JSON of the
//! [`ModelConfig`]. Loading validates everything against [`spec_layout`]: each tensor present
//! with its shape and dtype, no unknown names, finite values, a valid config. This module also
//! holds the safetensors plumbing that checkpoints share, and [`describe`] for `ambient info`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, View};

use crate::config::{ModelConfig, PRECOND};
use crate::error::{index_string, shape_string, FormatProblem, HostError};
use crate::io::atomic::write_bytes_atomic;
use crate::io::npy::describe_start;
use crate::params::{spec_layout, Param, ParamStore};

/// `__metadata__["format"]` of a weight file (files without it, e.g. from PyTorch, are read
/// as weight files too).
pub const WEIGHTS_FORMAT: &str = "ambient-weights-v1";
/// `__metadata__["format"]` of a training checkpoint.
pub const CHECKPOINT_FORMAT: &str = "ambient-checkpoint-v1";

/// Checks what the network and the samplers need of a config: the architecture
/// ([`crate::config::UNetConfig::validate`]), `precond`, and the corruption fields.
pub fn validate_model_config(cfg: &ModelConfig) -> Result<(), String> {
    cfg.unet.validate()?;
    if cfg.precond != PRECOND {
        return Err(format!(
            "precond = {:?}; only {PRECOND:?} is supported",
            cfg.precond
        ));
    }
    let c = &cfg.corruption;
    if !["random", "box", "gaussian"].contains(&c.kind.as_str()) {
        return Err(format!(
            "kind = {:?}; expected \"random\", \"box\" or \"gaussian\"",
            c.kind
        ));
    }
    if !["ambient", "naive", "clean"].contains(&c.mode.as_str()) {
        return Err(format!(
            "mode = {:?}; expected \"ambient\", \"naive\" or \"clean\"",
            c.mode
        ));
    }
    if !(0.0..=1.0).contains(&c.p) {
        return Err(format!("p = {} must be in [0, 1]", c.p));
    }
    if !(0.0..1.0).contains(&c.delta) {
        return Err(format!("delta = {} must be in [0, 1)", c.delta));
    }
    if c.kind == "box" {
        match c.r#box {
            Some(b) if b > 0 && b <= cfg.unet.img_resolution => {}
            other => {
                return Err(format!(
                "box = {other:?}; box inpainting needs a side between 1 and img_resolution = {}",
                cfg.unet.img_resolution
            ))
            }
        }
    }
    Ok(())
}

/// The fields in which `file` differs from `requested`, as "ch: file has 16, requested 32".
pub fn config_differences(file: &ModelConfig, requested: &ModelConfig) -> Vec<String> {
    let to_map = |c: &ModelConfig| -> BTreeMap<String, serde_json::Value> {
        match serde_json::to_value(c) {
            Ok(serde_json::Value::Object(m)) => m.into_iter().collect(),
            _ => BTreeMap::new(),
        }
    };
    let (a, b) = (to_map(file), to_map(requested));
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let show = |v: Option<&serde_json::Value>| v.map_or("nothing".to_string(), |v| v.to_string());
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            format!(
                "{k}: file has {}, requested {}",
                show(a.get(k)),
                show(b.get(k))
            )
        })
        .collect()
}

/// A `Param` as a safetensors tensor (f32 little-endian bytes).
struct F32View<'a>(&'a Param);

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.0.data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
    fn data_len(&self) -> usize {
        self.0.data.len() * 4
    }
}

/// Checks a store against the spec layout of `cfg` before it is written to `path`.
pub(crate) fn check_store_for_writing(
    path: &Path,
    what: &str,
    cfg: &ModelConfig,
    store: &ParamStore,
) -> Result<(), HostError> {
    let layout = spec_layout(&cfg.unet);
    if layout.len() != store.params.len() {
        return Err(HostError::unwritable(
            path,
            format!(
                "{what} has {} tensors but the config's network has {}",
                store.params.len(),
                layout.len()
            ),
        ));
    }
    for ((name, shape), p) in layout.iter().zip(&store.params) {
        if &p.name != name || &p.shape != shape || p.data.len() != shape.iter().product::<usize>() {
            return Err(HostError::unwritable(
                path,
                format!(
                    "{what}: tensor {} of shape {} ({} values) where the spec has {name} of shape {}",
                    p.name,
                    shape_string(&p.shape),
                    p.data.len(),
                    shape_string(shape)
                ),
            ));
        }
        if let Some(k) = p.data.iter().position(|v| !v.is_finite()) {
            return Err(HostError::NonFinite {
                path: path.to_path_buf(),
                what: format!("{what} tensor {} to write", p.name),
                index: index_string(&p.shape, k),
                value: p.data[k],
            });
        }
    }
    Ok(())
}

/// Serialises `(prefix, store)` groups and string metadata to safetensors bytes and writes
/// them to `path` atomically.
pub(crate) fn write_safetensors(
    path: &Path,
    groups: &[(&str, &ParamStore)],
    metadata: HashMap<String, String>,
) -> Result<(), HostError> {
    let views: Vec<(String, F32View<'_>)> = groups
        .iter()
        .flat_map(|(prefix, store)| {
            store
                .params
                .iter()
                .map(move |p| (format!("{prefix}{}", p.name), F32View(p)))
        })
        .collect();
    let bytes = safetensors::serialize(views, &Some(metadata))
        .map_err(|e| HostError::unwritable(path, format!("{e:?}")))?;
    write_bytes_atomic(path, &bytes)
}

/// Reads a whole file.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, HostError> {
    std::fs::read(path).map_err(|e| HostError::io(path, "read", e))
}

/// Parses safetensors bytes, turning the library's errors into messages about `path`.
pub(crate) fn parse_safetensors<'a>(
    path: &Path,
    bytes: &'a [u8],
) -> Result<(SafeTensors<'a>, HashMap<String, String>), HostError> {
    let foreign = || {
        HostError::format(
            path,
            FormatProblem::Foreign {
                expected: "safetensors",
                found: describe_start(bytes),
            },
        )
    };
    if bytes.len() < 9 {
        return Err(foreign());
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    if n > (bytes.len() - 8) as u64 || bytes[8] != b'{' {
        return Err(foreign());
    }
    match SafeTensors::deserialize(bytes) {
        Ok(st) => {
            let (_, meta) = SafeTensors::read_metadata(bytes)
                .map_err(|e| HostError::invalid(path, format!("{e:?}")))?;
            Ok((st, meta.metadata().clone().unwrap_or_default()))
        }
        Err(SafeTensorError::MetadataIncompleteBuffer) => {
            let header: serde_json::Value =
                serde_json::from_slice(&bytes[8..8 + n as usize]).unwrap_or_default();
            let end = header
                .as_object()
                .map(|m| {
                    m.values()
                        .filter_map(|t| t.get("data_offsets")?.get(1)?.as_u64())
                        .max()
                        .unwrap_or(0)
                })
                .unwrap_or(0);
            let held = bytes.len() as u64 - 8 - n;
            if held < end {
                Err(HostError::format(
                    path,
                    FormatProblem::Truncated {
                        header_says: format!("{end} bytes of tensors"),
                        data_bytes: held,
                    },
                ))
            } else {
                Err(HostError::invalid(path, format!("header says {end} bytes of tensors but the file holds {held} bytes of data")))
            }
        }
        Err(SafeTensorError::InvalidHeaderDeserialization)
        | Err(SafeTensorError::InvalidHeader) => Err(HostError::invalid(
            path,
            "the safetensors header is not valid JSON of tensors",
        )),
        Err(e) => Err(HostError::invalid(
            path,
            format!("invalid safetensors file: {e:?}"),
        )),
    }
}

/// The `config` metadata entry, parsed and validated.
pub(crate) fn config_from_metadata(
    path: &Path,
    meta: &HashMap<String, String>,
) -> Result<ModelConfig, HostError> {
    let text = meta.get("config").ok_or_else(|| {
        HostError::invalid(
            path,
            "no __metadata__[\"config\"]: not an ambient weight file",
        )
    })?;
    let cfg: ModelConfig = serde_json::from_str(text).map_err(|e| {
        HostError::invalid(
            path,
            format!("__metadata__[\"config\"] is not a model config: {e}"),
        )
    })?;
    validate_model_config(&cfg)
        .map_err(|e| HostError::invalid(path, format!("invalid config: {e}")))?;
    Ok(cfg)
}

/// Reads the tensors `prefix + name` of `layout` from `st` as a store in layout order,
/// checking dtype, shape and finiteness.
pub(crate) fn read_store(
    path: &Path,
    st: &SafeTensors<'_>,
    prefix: &str,
    layout: &[(String, Vec<usize>)],
) -> Result<ParamStore, HostError> {
    let mut params = Vec::with_capacity(layout.len());
    for (name, shape) in layout {
        let full = format!("{prefix}{name}");
        let view = st.tensor(&full).map_err(|_| {
            HostError::invalid(
                path,
                format!("tensor {full} (shape {}) is missing", shape_string(shape)),
            )
        })?;
        if view.dtype() != Dtype::F32 {
            return Err(HostError::format(
                path,
                FormatProblem::WrongDtype {
                    found: format!("{:?} for tensor {full}", view.dtype()),
                    accepted: "F32",
                },
            ));
        }
        if view.shape() != shape.as_slice() {
            return Err(HostError::format(
                path,
                FormatProblem::WrongShape {
                    found: format!("{} for tensor {full}", shape_string(view.shape())),
                    expected: shape_string(shape),
                },
            ));
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(k) = data.iter().position(|v| !v.is_finite()) {
            return Err(HostError::NonFinite {
                path: path.to_path_buf(),
                what: format!("tensor {full}"),
                index: index_string(shape, k),
                value: data[k],
            });
        }
        params.push(Param {
            name: name.clone(),
            shape: shape.clone(),
            data,
        });
    }
    Ok(ParamStore { params })
}

/// Rejects tensors whose names are not `prefix + name` for one of `prefixes` and `layout`.
pub(crate) fn reject_unknown(
    path: &Path,
    st: &SafeTensors<'_>,
    prefixes: &[&str],
    layout: &[(String, Vec<usize>)],
) -> Result<(), HostError> {
    let known: HashSet<String> = prefixes
        .iter()
        .flat_map(|p| layout.iter().map(move |(n, _)| format!("{p}{n}")))
        .collect();
    let mut unknown: Vec<&String> = st
        .names()
        .into_iter()
        .filter(|n| !known.contains(*n))
        .collect();
    unknown.sort();
    if let Some(first) = unknown.first() {
        return Err(HostError::invalid(
            path,
            format!(
                "{} tensor(s) not in the spec for this config, e.g. {first}",
                unknown.len()
            ),
        ));
    }
    Ok(())
}

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
