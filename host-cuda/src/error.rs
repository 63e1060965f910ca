//! The typed errors of the CUDA host: no device, a failing driver call, NVRTC missing or
//! rejecting a kernel, the PTX cache, and bad input at the host's boundary.

use std::path::PathBuf;

/// Everything that can go wrong in ambient-cuda.
#[derive(Debug, thiserror::Error)]
pub enum CudaHostError {
    /// The driver reports no usable device (also what the CI link-time stub answers).
    #[error("no CUDA device ({0})")]
    NoDevice(String),
    /// A driver call failed. The driver's error is kept by name: its `Display` asks the driver
    /// for a message, which a broken driver may not give.
    #[error("CUDA driver call {call} failed: {error:?}")]
    Driver {
        call: &'static str,
        error: cust::error::CudaError,
    },
    /// No libnvrtc could be loaded; `tried` lists the names and paths attempted.
    #[error("NVRTC not found (tried {tried}); set AMBIENT_NVRTC to the path of libnvrtc.so")]
    NvrtcNotFound { tried: String },
    /// libnvrtc was loaded but lacks an entry point we need.
    #[error("NVRTC library {library} lacks {symbol}")]
    NvrtcSymbol { library: String, symbol: String },
    /// An NVRTC call failed; `log` is the compiler's log when there is one.
    #[error("NVRTC {call} failed with status {status}: {log}")]
    Nvrtc {
        call: &'static str,
        status: i32,
        log: String,
    },
    /// Reading or writing the PTX cache failed.
    #[error("PTX cache {path}: {source}")]
    PtxCache {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A host slice does not match the tensor shape it is meant for.
    #[error("length mismatch: expected {expected} elements, got {got}")]
    LengthMismatch { expected: usize, got: usize },
}

/// Result of the CUDA host.
pub type Result<T> = std::result::Result<T, CudaHostError>;

/// Wraps a driver error of `call`, turning CUDA_ERROR_NO_DEVICE into [`CudaHostError::NoDevice`].
pub(crate) fn driver(call: &'static str) -> impl FnOnce(cust::error::CudaError) -> CudaHostError {
    move |error| match error {
        cust::error::CudaError::NoDevice => CudaHostError::NoDevice(format!("{call}: {error:?}")),
        _ => CudaHostError::Driver { call, error },
    }
}
