//! IDX files (LeCun's MNIST format), gzip-compressed or raw: `u8` images (magic 0x00000803,
//! N x H x W) and `u8` labels (magic 0x00000801, N). Dimensions are big-endian `u32`.

use std::io::Read;
use std::path::Path;

use crate::error::{shape_string, FormatProblem, HostError};
use crate::io::npy::describe_start;

/// Grayscale `u8` images, N x H x W, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxImages {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub pixels: Vec<u8>,
}

/// Reads a file, gunzipping it when it starts with the gzip magic.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, HostError> {
    let raw = std::fs::read(path).map_err(|e| HostError::io(path, "read", e))?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .map_err(|e| HostError::invalid(path, format!("gzip data is corrupt or truncated: {e}")))?;
    Ok(out)
}

/// Checks the magic and returns the dimensions and the data after the header.
fn parse<'a>(
    path: &Path,
    bytes: &'a [u8],
    ndim: usize,
) -> Result<(Vec<usize>, &'a [u8]), HostError> {
    let kind = if ndim == 3 {
        "u8 IDX image (magic 0x00000803)"
    } else {
        "u8 IDX label (magic 0x00000801)"
    };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(HostError::format(
            path,
            FormatProblem::Foreign {
                expected: kind,
                found: describe_start(bytes),
            },
        ));
    }
    if bytes[2] != 0x08 {
        return Err(HostError::format(
            path,
            FormatProblem::WrongDtype {
                found: format!("IDX type code 0x{:02x}", bytes[2]),
                accepted: "u8 (0x08)",
            },
        ));
    }
    if bytes[3] as usize != ndim {
        return Err(HostError::format(
            path,
            FormatProblem::Foreign {
                expected: kind,
                found: format!("it has {} dimensions", bytes[3]),
            },
        ));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(HostError::invalid(path, "truncated IDX header"));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| HostError::invalid(path, "IDX dimensions overflow"))?;
    let data = &bytes[header..];
    if data.len() < count {
        return Err(HostError::format(
            path,
            FormatProblem::Truncated {
                header_says: format!("{} u8 ({count} bytes)", shape_string(&dims)),
                data_bytes: data.len() as u64,
            },
        ));
    }
    if data.len() > count {
        return Err(HostError::invalid(
            path,
            format!(
                "header says {} u8 ({count} bytes) but the file holds {} bytes of data",
                shape_string(&dims),
                data.len()
            ),
        ));
    }
    Ok((dims, data))
}

/// Reads an IDX image file (`.gz` or raw).
pub fn read_idx_images(path: &Path) -> Result<IdxImages, HostError> {
    let bytes = read_maybe_gz(path)?;
    let (dims, data) = parse(path, &bytes, 3)?;
    Ok(IdxImages {
        n: dims[0],
        h: dims[1],
        w: dims[2],
        pixels: data.to_vec(),
    })
}

/// Reads an IDX label file (`.gz` or raw).
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, HostError> {
    let bytes = read_maybe_gz(path)?;
    let (_, data) = parse(path, &bytes, 1)?;
    Ok(data.to_vec())
}
