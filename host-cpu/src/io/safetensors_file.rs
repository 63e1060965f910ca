//! The safetensors plumbing that weight files and checkpoints share: writing groups of
//! parameter stores under name prefixes with string metadata (atomically), parsing a file with
//! messages that name it, and reading a store back against the spec layout.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, View};

use crate::config::ModelConfig;
use crate::error::{index_string, shape_string, FormatProblem, HostError};
use crate::io::atomic::write_bytes_atomic;
use crate::io::npy::describe_start;
use crate::params::{spec_layout, Param, ParamStore};

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
    if bytes.len() < 9 || bytes[8] != b'{' {
        return Err(foreign());
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    if n > (bytes.len() - 8) as u64 {
        return Err(HostError::format(
            path,
            FormatProblem::Truncated {
                header_says: format!("a JSON header of {n} bytes"),
                data_bytes: (bytes.len() - 8) as u64,
            },
        ));
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
