//! NumPy `.npy` arrays (format versions 1, 2 and 3): the reader accepts C-order `u8` and
//! little-endian `f32`, the two element types datasets and samples come in; the writer writes
//! `u8` (images) and `f32` arrays. Everything else is rejected with a message naming the file.

use std::io::Write;
use std::path::Path;

use crate::error::{shape_string, FormatProblem, HostError};
use crate::io::atomic::write_file_atomic;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The elements of an array, in C order.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    U8(Vec<u8>),
    F32(Vec<f32>),
}

/// A C-order array read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: NpyData,
}

/// Reads a `.npy` file.
pub fn read_npy(path: &Path) -> Result<NpyArray, HostError> {
    let bytes = std::fs::read(path).map_err(|e| HostError::io(path, "read", e))?;
    parse_npy(path, &bytes)
}

/// Parses the bytes of a `.npy` file; `path` is only used in messages.
pub fn parse_npy(path: &Path, bytes: &[u8]) -> Result<NpyArray, HostError> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(HostError::format(
            path,
            FormatProblem::Foreign {
                expected: "NumPy .npy",
                found: describe_start(bytes),
            },
        ));
    }
    let major = bytes[6];
    let (header_len, header_start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(HostError::invalid(path, "truncated .npy header"));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => {
            return Err(HostError::invalid(
                path,
                format!(".npy format version {v} is not supported (1, 2 or 3 are)"),
            ))
        }
    };
    let data_start = header_start + header_len;
    if bytes.len() < data_start {
        return Err(HostError::invalid(
            path,
            format!(
                "truncated .npy header: it says {header_len} bytes but the file has {}",
                bytes.len() - header_start
            ),
        ));
    }
    let header = std::str::from_utf8(&bytes[header_start..data_start])
        .map_err(|_| HostError::invalid(path, ".npy header is not text"))?;
    let descr = dict_value(header, "descr")
        .and_then(quoted)
        .ok_or_else(|| HostError::invalid(path, format!(".npy header has no 'descr': {header}")))?;
    let fortran = dict_value(header, "fortran_order").ok_or_else(|| {
        HostError::invalid(
            path,
            format!(".npy header has no 'fortran_order': {header}"),
        )
    })?;
    if fortran.starts_with("True") {
        return Err(HostError::invalid(
            path,
            "array is in Fortran order; save it in C order (numpy.ascontiguousarray)",
        ));
    }
    let shape = dict_value(header, "shape")
        .and_then(parse_shape)
        .ok_or_else(|| {
            HostError::invalid(path, format!(".npy header has no valid 'shape': {header}"))
        })?;
    let (dtype, size) = match descr {
        "|u1" | "<u1" | "u1" | "=u1" => ("u8", 1usize),
        "<f4" => ("f32", 4),
        other => {
            return Err(HostError::format(
                path,
                FormatProblem::WrongDtype {
                    found: format!("'{other}'"),
                    accepted: "u8 ('|u1') or little-endian f32 ('<f4')",
                },
            ))
        }
    };
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .and_then(|c| c.checked_mul(size))
        .ok_or_else(|| HostError::invalid(path, "shape in the .npy header overflows"))?;
    let data = &bytes[data_start..];
    if data.len() < count {
        return Err(HostError::format(
            path,
            FormatProblem::Truncated {
                header_says: format!("{} {dtype} ({count} bytes)", shape_string(&shape)),
                data_bytes: data.len() as u64,
            },
        ));
    }
    if data.len() > count {
        return Err(HostError::invalid(
            path,
            format!(
                "header says {} {dtype} ({count} bytes) but the file holds {} bytes of data",
                shape_string(&shape),
                data.len()
            ),
        ));
    }
    let data = if size == 1 {
        NpyData::U8(data.to_vec())
    } else {
        NpyData::F32(
            data.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        )
    };
    Ok(NpyArray { shape, data })
}

/// The first bytes of a foreign file, named where the format is a common one.
pub(crate) fn describe_start(bytes: &[u8]) -> String {
    let known: [(&[u8], &str); 5] = [
        (b"\x89PNG", "it is a PNG image"),
        (b"\x1f\x8b", "it is gzip-compressed"),
        (b"PK\x03\x04", "it is a zip archive, e.g. an .npz"),
        (b"\x93NUMPY", "it is a NumPy .npy array"),
        (b"\x00\x00\x08", "it is an IDX file"),
    ];
    for (magic, what) in known {
        if bytes.starts_with(magic) {
            return what.into();
        }
    }
    if bytes.is_empty() {
        return "the file is empty".into();
    }
    if bytes.len() > 9 && bytes[8] == b'{' {
        return "it looks like a safetensors file".into();
    }
    let head = &bytes[..bytes.len().min(24)];
    if head
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        return format!("it is text: {:?}", String::from_utf8_lossy(head));
    }
    let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("it starts with bytes {}", head.join(" "))
}

/// The text after `'key':` in a Python dict literal, up to the end of the header.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("'{key}'");
    let at = header.find(&pat)? + pat.len();
    let rest = header[at..].trim_start().strip_prefix(':')?;
    Some(rest.trim_start())
}

/// The content of a leading quoted string.
fn quoted(s: &str) -> Option<&str> {
    let q = s.chars().next()?;
    if q != '\'' && q != '"' {
        return None;
    }
    let end = s[1..].find(q)?;
    Some(&s[1..1 + end])
}

/// A leading Python tuple of integers: "(3, 28, 28)", "(5,)", "()".
fn parse_shape(s: &str) -> Option<Vec<usize>> {
    let inner = s.strip_prefix('(')?;
    let inner = &inner[..inner.find(')')?];
    inner
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.trim_end_matches('L').parse().ok())
        .collect()
}

/// The bytes of a version-1 `.npy` header for `descr` and `shape`, padded to 64 bytes.
fn header_bytes(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if shape.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    let unpadded = MAGIC.len() + 2 + 2 + dict.len() + 1;
    dict.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

fn check_len(path: &Path, shape: &[usize], len: usize) -> Result<(), HostError> {
    let want: usize = shape.iter().product();
    if want != len {
        return Err(HostError::unwritable(
            path,
            format!(
                "shape {} needs {want} values but {len} were given",
                shape_string(shape)
            ),
        ));
    }
    Ok(())
}

/// Writes a C-order `u8` array atomically.
pub fn write_npy_u8(path: &Path, shape: &[usize], data: &[u8]) -> Result<(), HostError> {
    check_len(path, shape, data.len())?;
    let header = header_bytes("|u1", shape);
    write_file_atomic(path, |w| {
        w.write_all(&header)?;
        w.write_all(data)
    })
}

/// Writes a C-order little-endian `f32` array atomically.
pub fn write_npy_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), HostError> {
    check_len(path, shape, data.len())?;
    let header = header_bytes("<f4", shape);
    write_file_atomic(path, |w| {
        w.write_all(&header)?;
        for v in data {
            w.write_all(&v.to_le_bytes())?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_64_aligned_and_parses() {
        for shape in [vec![3usize, 28, 28, 1], vec![5], vec![]] {
            let h = header_bytes("|u1", &shape);
            assert_eq!(h.len() % 64, 0);
            assert_eq!(*h.last().unwrap(), b'\n');
            let n: usize = shape.iter().product();
            let mut bytes = h.clone();
            bytes.extend(vec![7u8; n]);
            let a = parse_npy(Path::new("x.npy"), &bytes).unwrap();
            assert_eq!(a.shape, shape);
            assert_eq!(a.data, NpyData::U8(vec![7; n]));
        }
    }

    /// A header exactly as numpy 1.x writes it for `np.zeros((2, 3), np.float32)`.
    #[test]
    fn reads_numpy_written_header() {
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let mut h = Vec::from(&MAGIC[..]);
        h.extend_from_slice(&[1, 0]);
        let pad = 64 - (10 + dict.len() + 1) % 64;
        let text = format!("{dict}{}\n", " ".repeat(pad));
        h.extend_from_slice(&(text.len() as u16).to_le_bytes());
        h.extend_from_slice(text.as_bytes());
        for i in 0..6 {
            h.extend_from_slice(&(i as f32 * 0.5).to_le_bytes());
        }
        let a = parse_npy(Path::new("x.npy"), &h).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, NpyData::F32(vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5]));
    }
}
