//! The CUDA device: driver initialisation, device 0, its context and stream, and the compiled
//! element-wise kernels, with the first error of an operation that could not return one.
//!
//! A [`Gpu`] is bound to the thread that opened it (its context is current there), so it is
//! shared as `Rc<Gpu>` and is neither `Send` nor `Sync`.

use crate::error::{driver, CudaHostError, Result};
use crate::kernels::ElementwiseKernels;
use crate::nvrtc::{Nvrtc, COMPILE_OPTIONS};
use crate::ptx_cache::{PtxCache, PtxKey};
use cust::context::Context;
use cust::device::{Device, DeviceAttribute};
use cust::stream::{Stream, StreamFlags};
use std::cell::RefCell;
use std::rc::Rc;

/// A device's compute capability (major.minor), e.g. 9.0 for an H100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComputeCapability {
    pub major: u32,
    pub minor: u32,
}

impl ComputeCapability {
    /// NVRTC's option selecting the matching virtual architecture: `--gpu-architecture=compute_XY`.
    pub fn nvrtc_arch_option(&self) -> String {
        format!("--gpu-architecture=compute_{}{}", self.major, self.minor)
    }
}

/// What the driver says about the device in use.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    pub name: String,
    pub cc: ComputeCapability,
    pub total_memory: usize,
    /// The newest CUDA version the driver supports, (major, minor), e.g. (12, 4).
    pub driver_version: (i32, i32),
}

/// Device 0 with its context, one in-order stream and the element-wise kernels.
pub struct Gpu {
    // Fields drop in order: kernels (module) and stream before the context they live in.
    pub(crate) kernels: ElementwiseKernels,
    pub(crate) stream: Stream,
    info: DeviceInfo,
    error: FirstError,
    _context: Context,
}

impl Gpu {
    /// Initialises the driver, opens device 0 and compiles (or reads from `cache`) the kernels.
    /// [`CudaHostError::NoDevice`] when the machine has no CUDA device or driver.
    pub fn open(cache: &PtxCache) -> Result<Rc<Gpu>> {
        cust::init(cust::CudaFlags::empty()).map_err(driver("cuInit"))?;
        if Device::num_devices().map_err(driver("cuDeviceGetCount"))? == 0 {
            return Err(CudaHostError::NoDevice("cuDeviceGetCount: 0".into()));
        }
        let device = Device::get_device(0).map_err(driver("cuDeviceGet"))?;
        let attr = |a| {
            device
                .get_attribute(a)
                .map_err(driver("cuDeviceGetAttribute"))
        };
        let cc = ComputeCapability {
            major: attr(DeviceAttribute::ComputeCapabilityMajor)? as u32,
            minor: attr(DeviceAttribute::ComputeCapabilityMinor)? as u32,
        };
        let info = DeviceInfo {
            name: device.name().map_err(driver("cuDeviceGetName"))?,
            cc,
            total_memory: device.total_memory().map_err(driver("cuDeviceTotalMem"))?,
            driver_version: {
                let v = cust::CudaApiVersion::get().map_err(driver("cuDriverGetVersion"))?;
                (v.major(), v.minor())
            },
        };
        let context = Context::new(device).map_err(driver("cuCtxCreate"))?;
        let stream =
            Stream::new(StreamFlags::NON_BLOCKING, None).map_err(driver("cuStreamCreate"))?;
        let ptx = elementwise_ptx(cache, cc)?;
        let kernels = ElementwiseKernels::load(&ptx)?;
        Ok(Rc::new(Gpu {
            kernels,
            stream,
            info,
            error: FirstError::default(),
            _context: context,
        }))
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Waits for every operation queued so far, then returns (and clears) the first error of
    /// an operation that could not return one (the `Tensor` methods).
    pub fn synchronize(&self) -> Result<()> {
        let sync = self
            .stream
            .synchronize()
            .map_err(driver("cuStreamSynchronize"));
        self.error.take().and(sync)
    }

    /// Keeps the first error of a `Tensor` method; [`Gpu::synchronize`] reports it.
    pub(crate) fn record(&self, result: Result<()>) {
        self.error.record(result);
    }

    /// Whether an error is waiting for [`Gpu::synchronize`].
    pub fn has_error(&self) -> bool {
        self.error.is_set()
    }
}

/// The first error of a sequence of operations that cannot return one.
#[derive(Debug, Default)]
struct FirstError(RefCell<Option<CudaHostError>>);

impl FirstError {
    /// Keeps `result`'s error unless one is already kept.
    fn record(&self, result: Result<()>) {
        if let Err(e) = result {
            self.0.borrow_mut().get_or_insert(e);
        }
    }
    /// The kept error (now cleared), or Ok.
    fn take(&self) -> Result<()> {
        self.0.borrow_mut().take().map_or(Ok(()), Err)
    }
    fn is_set(&self) -> bool {
        self.0.borrow().is_some()
    }
}

/// The element-wise kernels' PTX for `cc`, from the cache or compiled with NVRTC (loaded only
/// then, so a cache filled elsewhere serves a machine without NVRTC).
pub fn elementwise_ptx(cache: &PtxCache, cc: ComputeCapability) -> Result<String> {
    let key = PtxKey {
        name: "elementwise",
        source: ELEMENTWISE_CU,
        options: COMPILE_OPTIONS,
        cc,
    };
    cache.get_or_compile(&key, || {
        Nvrtc::load()?.compile(ELEMENTWISE_CU, "elementwise.cu", cc)
    })
}

/// The CUDA C of the element-wise kernels (`kernels/elementwise.cu`).
pub const ELEMENTWISE_CU: &str = include_str!("../kernels/elementwise.cu");

#[cfg(test)]
mod tests {
    use super::*;

    fn length_error(got: usize) -> Result<()> {
        Err(CudaHostError::LengthMismatch { expected: 4, got })
    }

    #[test]
    fn the_first_error_is_kept_reported_once_then_cleared() {
        let slot = FirstError::default();
        slot.record(Ok(()));
        assert!(!slot.is_set());
        slot.record(length_error(1));
        slot.record(Ok(()));
        slot.record(length_error(2));
        assert!(slot.is_set());
        assert!(matches!(
            slot.take(),
            Err(CudaHostError::LengthMismatch { got: 1, .. })
        ));
        assert!(slot.take().is_ok());
        assert!(!slot.is_set());
    }

    #[test]
    fn arch_option_names_the_virtual_architecture() {
        let cc = ComputeCapability { major: 8, minor: 6 };
        assert_eq!(cc.nvrtc_arch_option(), "--gpu-architecture=compute_86");
    }
}
