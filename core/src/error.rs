//! Typed errors of the core: everything that can go wrong without an allocator.

use core::fmt;

/// What went wrong in a core routine. Hosts wrap it with the file or command it concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreError {
    /// Two tensors or buffers that must agree in shape do not.
    ShapeMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// A parameter is outside its valid range (e.g. a probability outside [0, 1]).
    InvalidParameter(&'static str),
    /// A value is NaN or infinite where a finite one is required.
    NonFinite(&'static str),
    /// The host's denoiser failed; the host logs the detail.
    Denoiser(&'static str),
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::ShapeMismatch {
                what,
                expected,
                got,
            } => write!(f, "{what}: expected {expected} elements, got {got}"),
            CoreError::InvalidParameter(what) => write!(f, "invalid parameter: {what}"),
            CoreError::NonFinite(what) => write!(f, "non-finite value in {what}"),
            CoreError::Denoiser(what) => write!(f, "denoiser failed: {what}"),
        }
    }
}

impl core::error::Error for CoreError {}
