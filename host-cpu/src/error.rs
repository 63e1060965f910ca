//! Typed errors of the CPU host's files: every message names the file and says what is wrong
//! with it, so that a user who passed the wrong file, a truncated download or a dataset with
//! NaN pixels sees which file and why, not a bare "invalid data".

use std::fmt;
use std::path::{Path, PathBuf};

/// What went wrong reading or writing one of the host's files.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The operating system refused or failed a read (missing file, permission, ...).
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        /// What was being done, e.g. "read", "open the directory".
        action: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// The file is not what it should be: foreign, truncated, wrong dtype or shape, bad header.
    #[error("{}: {problem}", path.display())]
    Format {
        path: PathBuf,
        problem: FormatProblem,
    },

    /// A weight file or checkpoint was made for another model configuration.
    #[error(
        "{}: made for another model configuration; differing fields: {}",
        path.display(),
        differences.join("; ")
    )]
    ConfigMismatch {
        path: PathBuf,
        /// One entry per field, e.g. "ch: file has 16, requested 32".
        differences: Vec<String>,
    },

    /// A value that must be finite is NaN or infinite.
    #[error("{}: non-finite value {value} in {what} at {index}", path.display())]
    NonFinite {
        path: PathBuf,
        /// Which array, e.g. "images", "tensor enc.0.0.conv1.weight".
        what: String,
        /// The first offending position, in the file's own layout.
        index: String,
        value: f32,
    },

    /// A mask file's shape does not fit the images it belongs to.
    #[error(
        "mask shape mismatch: {} is {mask_shape} but {} is {data_shape}",
        mask_path.display(),
        data_path.display()
    )]
    MaskShape {
        mask_path: PathBuf,
        mask_shape: String,
        data_path: PathBuf,
        data_shape: String,
    },

    /// An output could not be written; the destination is left as it was.
    #[error("{}: cannot write output: {reason}", path.display())]
    Unwritable { path: PathBuf, reason: String },
}

/// The ways a file's contents can be wrong.
#[derive(Debug, Clone, PartialEq)]
pub enum FormatProblem {
    /// The file starts like something else, or has none of the format's marks.
    Foreign {
        expected: &'static str,
        found: String,
    },
    /// The header promises more data than the file holds.
    Truncated {
        header_says: String,
        data_bytes: u64,
    },
    /// The element type is not one this reader accepts.
    WrongDtype {
        found: String,
        accepted: &'static str,
    },
    /// The array has a shape this reader cannot use.
    WrongShape { found: String, expected: String },
    /// Anything else about the contents (bad header field, invalid mask value, ...).
    Invalid(String),
}

impl fmt::Display for FormatProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatProblem::Foreign { expected, found } => {
                write!(f, "not a {expected} file ({found})")
            }
            FormatProblem::Truncated {
                header_says,
                data_bytes,
            } => write!(
                f,
                "truncated: header says {header_says} but the file holds {data_bytes} bytes of data"
            ),
            FormatProblem::WrongDtype { found, accepted } => {
                write!(f, "unsupported element type {found}; accepted: {accepted}")
            }
            FormatProblem::WrongShape { found, expected } => {
                write!(f, "wrong shape {found}; expected {expected}")
            }
            FormatProblem::Invalid(what) => f.write_str(what),
        }
    }
}

impl HostError {
    /// A read-side I/O error on `path`.
    pub fn io(path: &Path, action: &'static str, source: std::io::Error) -> Self {
        HostError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    /// A format problem with `path`.
    pub fn format(path: &Path, problem: FormatProblem) -> Self {
        HostError::Format {
            path: path.to_path_buf(),
            problem,
        }
    }

    /// A free-form format problem with `path`.
    pub fn invalid(path: &Path, what: impl Into<String>) -> Self {
        Self::format(path, FormatProblem::Invalid(what.into()))
    }

    /// An output that cannot be written.
    pub fn unwritable(path: &Path, reason: impl fmt::Display) -> Self {
        HostError::Unwritable {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

/// `[60000, 28, 28]` as "60000 x 28 x 28", the way messages print shapes.
pub fn shape_string(shape: &[usize]) -> String {
    if shape.is_empty() {
        return "a scalar".into();
    }
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(" x ")
}

/// The multi-index of flat position `flat` in a C-order array of `shape`, as "[i, j, k]".
pub fn index_string(shape: &[usize], flat: usize) -> String {
    let mut idx = vec![0usize; shape.len()];
    let mut rest = flat;
    for (i, &d) in shape.iter().enumerate().rev() {
        if d > 0 {
            idx[i] = rest % d;
            rest /= d;
        }
    }
    format!(
        "[{}]",
        idx.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_message_names_file_and_sizes() {
        let e = HostError::format(
            Path::new("data/x.npy"),
            FormatProblem::Truncated {
                header_says: "60000 x 28 x 28 x 1 u8".into(),
                data_bytes: 1234,
            },
        );
        assert_eq!(
            e.to_string(),
            "data/x.npy: truncated: header says 60000 x 28 x 28 x 1 u8 but the file holds 1234 bytes of data"
        );
    }

    #[test]
    fn index_string_is_c_order() {
        // 2 x 3 x 4: flat 23 = 1*12 + 2*4 + 3.
        assert_eq!(index_string(&[2, 3, 4], 23), "[1, 2, 3]");
        assert_eq!(index_string(&[2, 3, 4], 5), "[0, 1, 1]");
        assert_eq!(shape_string(&[60000, 28, 28]), "60000 x 28 x 28");
    }
}
