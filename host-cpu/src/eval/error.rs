//! Typed errors of the evaluation tools.

use ambient_core::CoreError;

use crate::error::HostError;
use crate::optim::OptimError;

/// What went wrong in an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Inputs whose sizes do not fit together (image counts, lengths, feature dimensions).
    #[error("shape: {0}")]
    Shape(String),
    /// A setting outside its valid range.
    #[error("invalid setting: {0}")]
    Invalid(String),
    /// A NaN or infinite value where a finite one is needed.
    #[error("non-finite value in {0}")]
    NonFinite(String),
    /// An iterative solver stopped before reaching its tolerance.
    #[error("{what} did not converge: relative residual {residual:.3e} after {iterations} iterations (tolerance {tolerance:.1e})")]
    NotConverged {
        what: &'static str,
        iterations: usize,
        residual: f64,
        tolerance: f64,
    },
    /// The denoiser or a core routine refused.
    #[error("{0}")]
    Core(#[from] CoreError),
    /// A file could not be read or written.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The optimiser refused a step.
    #[error(transparent)]
    Optim(#[from] OptimError),
}
