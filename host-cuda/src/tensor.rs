//! `CudaTensor`: an NCHW f32 tensor in device memory implementing the core's
//! [`ambient_core::Tensor`] through the kernels of `kernels/elementwise.cu`, with the
//! semantics of the core's `SliceTensor`: the element-wise operations give the same f32 values
//! bit for bit, `dot` and `sum_sq` the same f64 sum up to the order of additions.
//!
//! Errors: the trait's methods cannot return one, so a failing driver call inside them is kept
//! by the [`Gpu`] (the first one) and reported by [`Gpu::synchronize`] and by
//! [`CudaTensor::to_host`]; `dot` and `sum_sq` then return NaN. Shape mismatches between the
//! tensors of one operation panic, as the trait documents, and so do tensors of two `Gpu`s.
//!
//! Operations run in order on the Gpu's stream; `dot`, `sum_sq`, `scale_per_sample` and
//! `to_host` wait for it.

use crate::device::Gpu;
use crate::error::{driver, CudaHostError, Result};
use ambient_core::tensor::{Shape, Tensor};
use cust::memory::{CopyDestination, DeviceBuffer};
use std::rc::Rc;

/// An NCHW f32 tensor on the device.
pub struct CudaTensor {
    gpu: Rc<Gpu>,
    shape: Shape,
    /// `None` for an empty tensor (the driver allocates no zero-byte buffers).
    buf: Option<DeviceBuffer<f32>>,
}

impl CudaTensor {
    /// A tensor of `shape` filled with zeros.
    pub fn zeros(gpu: &Rc<Gpu>, shape: Shape) -> Result<CudaTensor> {
        let buf = match shape.len() {
            0 => None,
            n => Some(DeviceBuffer::zeroed(n).map_err(driver("cuMemAlloc"))?),
        };
        Ok(CudaTensor {
            gpu: Rc::clone(gpu),
            shape,
            buf,
        })
    }

    /// A tensor of `shape` holding `data` (NCHW order).
    pub fn from_host(gpu: &Rc<Gpu>, shape: Shape, data: &[f32]) -> Result<CudaTensor> {
        if data.len() != shape.len() {
            return Err(CudaHostError::LengthMismatch {
                expected: shape.len(),
                got: data.len(),
            });
        }
        let buf = match shape.len() {
            0 => None,
            _ => Some(DeviceBuffer::from_slice(data).map_err(driver("cuMemcpyHtoD"))?),
        };
        Ok(CudaTensor {
            gpu: Rc::clone(gpu),
            shape,
            buf,
        })
    }

    /// The tensor's values (NCHW order), after every queued operation; the first error of an
    /// earlier operation, if any.
    pub fn to_host(&self) -> Result<Vec<f32>> {
        self.gpu.synchronize()?;
        let mut out = vec![0.0f32; self.shape.len()];
        if let Some(buf) = &self.buf {
            buf.copy_to(&mut out[..]).map_err(driver("cuMemcpyDtoH"))?;
        }
        Ok(out)
    }

    pub fn gpu(&self) -> &Rc<Gpu> {
        &self.gpu
    }

    /// The device buffer (`None` for an empty tensor).
    pub(crate) fn buffer(&self) -> Option<&DeviceBuffer<f32>> {
        self.buf.as_ref()
    }

    pub(crate) fn buffer_mut(&mut self) -> Option<&mut DeviceBuffer<f32>> {
        self.buf.as_mut()
    }

    /// Runs `op` on the buffer unless the tensor is empty, keeping its error in the Gpu.
    fn run(&mut self, op: impl FnOnce(&Gpu, &mut DeviceBuffer<f32>) -> Result<()>) {
        if let Some(buf) = &mut self.buf {
            let result = op(&self.gpu, buf);
            self.gpu.record(result);
        }
    }

    /// Runs `op` on this buffer and `x`'s (equal shapes, else panics with `what`).
    fn run_with(
        &mut self,
        x: &CudaTensor,
        what: &str,
        op: impl FnOnce(&Gpu, &mut DeviceBuffer<f32>, &DeviceBuffer<f32>) -> Result<()>,
    ) {
        self.assert_compatible(x, what);
        if let (Some(buf), Some(xb)) = (&mut self.buf, &x.buf) {
            let result = op(&self.gpu, buf, xb);
            self.gpu.record(result);
        }
    }

    /// Panics unless `x` has this shape and lives on this tensor's Gpu.
    fn assert_compatible(&self, x: &CudaTensor, what: &str) {
        assert_eq!(self.shape, x.shape, "{what}: shape mismatch");
        assert!(
            Rc::ptr_eq(&self.gpu, &x.gpu),
            "{what}: tensors on different Gpus"
        );
    }

    /// The f64 sum of self * x, or NaN after recording an error.
    fn reduce(&self, x: &CudaTensor) -> f64 {
        match (&self.buf, &x.buf) {
            (Some(a), Some(b)) => match self.gpu.kernels.dot(&self.gpu.stream, a, b) {
                Ok(v) => v,
                Err(e) => {
                    self.gpu.record(Err(e));
                    f64::NAN
                }
            },
            _ => 0.0,
        }
    }
}

impl Tensor for CudaTensor {
    fn shape(&self) -> Shape {
        self.shape
    }
    fn fill(&mut self, v: f32) {
        self.run(|g, b| g.kernels.fill(&g.stream, b, v));
    }
    fn copy_from(&mut self, src: &Self) {
        self.run_with(src, "copy_from", |g, b, s| g.kernels.copy(&g.stream, b, s));
    }
    fn scale(&mut self, a: f32) {
        self.run(|g, b| g.kernels.scale(&g.stream, b, a));
    }
    fn scale_per_sample(&mut self, a: &[f32]) {
        assert_eq!(
            a.len(),
            self.shape.n,
            "scale_per_sample: one factor per sample"
        );
        let sample_len = self.shape.sample_len();
        self.run(|g, b| {
            let factors = DeviceBuffer::from_slice(a).map_err(driver("cuMemcpyHtoD"))?;
            g.kernels
                .scale_per_sample(&g.stream, b, &factors, sample_len)?;
            // The factors are freed on return: the kernel must be done with them.
            g.stream
                .synchronize()
                .map_err(driver("cuStreamSynchronize"))
        });
    }
    fn add_scalar(&mut self, a: f32) {
        self.run(|g, b| g.kernels.add_scalar(&g.stream, b, a));
    }
    fn axpby(&mut self, a: f32, x: &Self, b: f32) {
        self.run_with(x, "axpby", |g, y, x| g.kernels.axpby(&g.stream, y, a, x, b));
    }
    fn mul(&mut self, x: &Self) {
        self.run_with(x, "mul", |g, y, x| g.kernels.mul(&g.stream, y, x));
    }
    fn dot(&self, x: &Self) -> f64 {
        self.assert_compatible(x, "dot");
        self.reduce(x)
    }
    fn sum_sq(&self) -> f64 {
        self.reduce(self)
    }
}
