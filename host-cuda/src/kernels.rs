//! Typed safe wrappers around the kernels of `kernels/elementwise.cu`: the only place in the
//! crate that launches a kernel. Each wrapper takes device slices, so lengths are known and
//! checked here, and the unsafe launch only ever sees pointers to `n` valid elements.
#![allow(unsafe_code)] // kernel launches (cust's launch! is unsafe); see each SAFETY note.

use crate::error::{driver, Result};
use cust::function::Function;
use cust::launch;
use cust::memory::{DeviceBuffer, DeviceSlice};
use cust::module::Module;
use cust::stream::Stream;

/// Threads per block of every launch; `DOT_THREADS` in elementwise.cu must equal it.
pub const BLOCK: u32 = 256;
/// Most blocks of an element-wise launch (grid-stride loops cover the rest).
const MAX_BLOCKS: u32 = 4096;
/// Most blocks (so partial sums) of the first stage of a reduction.
pub const MAX_DOT_BLOCKS: u32 = 1024;

/// Blocks for `n` elements at [`BLOCK`] threads, at least 1, at most `max`.
pub fn blocks_for(n: usize, max: u32) -> u32 {
    n.div_ceil(BLOCK as usize).clamp(1, max as usize) as u32
}

/// The loaded element-wise module and the reduction's scratch (partials and result).
pub struct ElementwiseKernels {
    module: Module,
    partials: DeviceBuffer<f64>,
    total: DeviceBuffer<f64>,
}

impl ElementwiseKernels {
    /// Loads the PTX into the current context.
    pub fn load(ptx: &str) -> Result<Self> {
        let module = Module::from_ptx(ptx, &[]).map_err(driver("cuModuleLoadData"))?;
        Ok(ElementwiseKernels {
            module,
            partials: DeviceBuffer::zeroed(MAX_DOT_BLOCKS as usize)
                .map_err(driver("cuMemAlloc"))?,
            total: DeviceBuffer::zeroed(1).map_err(driver("cuMemAlloc"))?,
        })
    }

    fn function(&self, name: &'static str) -> Result<Function<'_>> {
        self.module
            .get_function(name)
            .map_err(driver("cuModuleGetFunction"))
    }

    /// Grid for an element-wise launch over `n` elements.
    fn grid(n: usize) -> u32 {
        blocks_for(n, MAX_BLOCKS)
    }

    /// x <- v.
    pub fn fill(&self, stream: &Stream, x: &mut DeviceSlice<f32>, v: f32) -> Result<()> {
        let (p, n) = (x.as_device_ptr(), x.len() as u64);
        // SAFETY: fill(float*, float, u64) over x's n elements.
        let k = self.function("fill")?;
        crate::profile::launch(
            stream,
            || format!("fill n {n}"),
            || unsafe { launch!(k<<<Self::grid(x.len()), BLOCK, 0, stream>>>(p, v, n)) },
        )
        .map_err(driver("cuLaunchKernel"))
    }

    /// dst <- src (equal lengths).
    pub fn copy(
        &self,
        stream: &Stream,
        dst: &mut DeviceSlice<f32>,
        src: &DeviceSlice<f32>,
    ) -> Result<()> {
        assert_eq!(dst.len(), src.len(), "copy: length mismatch");
        let (d, s, n) = (dst.as_device_ptr(), src.as_device_ptr(), dst.len() as u64);
        // SAFETY: copy(float*, const float*, u64), both of n elements.
        let k = self.function("copy")?;
        crate::profile::launch(
            stream,
            || format!("copy n {n}"),
            || unsafe { launch!(k<<<Self::grid(dst.len()), BLOCK, 0, stream>>>(d, s, n)) },
        )
        .map_err(driver("cuLaunchKernel"))
    }

    /// x <- a x.
    pub fn scale(&self, stream: &Stream, x: &mut DeviceSlice<f32>, a: f32) -> Result<()> {
        let (p, n) = (x.as_device_ptr(), x.len() as u64);
        // SAFETY: scale(float*, float, u64) over x's n elements.
        let k = self.function("scale")?;
        crate::profile::launch(
            stream,
            || format!("scale n {n}"),
            || unsafe { launch!(k<<<Self::grid(x.len()), BLOCK, 0, stream>>>(p, a, n)) },
        )
        .map_err(driver("cuLaunchKernel"))
    }

    /// `x[s * sample_len + j] <- a[s] x[...]`; `x.len() == a.len() * sample_len`, sample_len > 0.
    pub fn scale_per_sample(
        &self,
        stream: &Stream,
        x: &mut DeviceSlice<f32>,
        a: &DeviceSlice<f32>,
        sample_len: usize,
    ) -> Result<()> {
        assert!(sample_len > 0, "scale_per_sample: empty samples");
        assert_eq!(
            x.len(),
            a.len() * sample_len,
            "scale_per_sample: one factor per sample"
        );
        let (p, f, s, n) = (
            x.as_device_ptr(),
            a.as_device_ptr(),
            sample_len as u64,
            x.len() as u64,
        );
        // SAFETY: scale_per_sample(float*, const float*, u64, u64): x has n elements and a has
        // n / sample_len, the largest index i / sample_len reads.
        let k = self.function("scale_per_sample")?;
        crate::profile::launch(
            stream,
            || format!("scale_per_sample n {n}"),
            || unsafe { launch!(k<<<Self::grid(x.len()), BLOCK, 0, stream>>>(p, f, s, n)) },
        )
        .map_err(driver("cuLaunchKernel"))
    }

    /// x <- x + a.
    pub fn add_scalar(&self, stream: &Stream, x: &mut DeviceSlice<f32>, a: f32) -> Result<()> {
        let (p, n) = (x.as_device_ptr(), x.len() as u64);
        // SAFETY: add_scalar(float*, float, u64) over x's n elements.
        let k = self.function("add_scalar")?;
        crate::profile::launch(
            stream,
            || format!("add_scalar n {n}"),
            || unsafe { launch!(k<<<Self::grid(x.len()), BLOCK, 0, stream>>>(p, a, n)) },
        )
        .map_err(driver("cuLaunchKernel"))
    }

    /// y <- a x + b y (equal lengths).
    pub fn axpby(
        &self,
        stream: &Stream,
        y: &mut DeviceSlice<f32>,
        a: f32,
        x: &DeviceSlice<f32>,
        b: f32,
    ) -> Result<()> {
        assert_eq!(y.len(), x.len(), "axpby: length mismatch");
        let (py, px, n) = (y.as_device_ptr(), x.as_device_ptr(), y.len() as u64);
        // SAFETY: axpby(float*, const float*, float, float, u64), both of n elements.
        let k = self.function("axpby")?;
        crate::profile::launch(
            stream,
            || format!("axpby n {n}"),
            || unsafe { launch!(k<<<Self::grid(y.len()), BLOCK, 0, stream>>>(py, px, a, b, n)) },
        )
        .map_err(driver("cuLaunchKernel"))
    }

    /// y <- y * x element-wise (equal lengths).
    pub fn mul(
        &self,
        stream: &Stream,
        y: &mut DeviceSlice<f32>,
        x: &DeviceSlice<f32>,
    ) -> Result<()> {
        assert_eq!(y.len(), x.len(), "mul: length mismatch");
        let (py, px, n) = (y.as_device_ptr(), x.as_device_ptr(), y.len() as u64);
        // SAFETY: mul(float*, const float*, u64), both of n elements.
        let k = self.function("mul")?;
        crate::profile::launch(
            stream,
            || format!("mul n {n}"),
            || unsafe { launch!(k<<<Self::grid(y.len()), BLOCK, 0, stream>>>(py, px, n)) },
        )
        .map_err(driver("cuLaunchKernel"))
    }

    /// Sum of x * y in f64 by the deterministic two-stage reduction; waits for the stream.
    pub fn dot(&self, stream: &Stream, x: &DeviceSlice<f32>, y: &DeviceSlice<f32>) -> Result<f64> {
        assert_eq!(x.len(), y.len(), "dot: length mismatch");
        let blocks = blocks_for(x.len(), MAX_DOT_BLOCKS);
        let (px, py, n) = (x.as_device_ptr(), y.as_device_ptr(), x.len() as u64);
        let (partials, count, total) = (
            self.partials.as_device_ptr(),
            blocks as u64,
            self.total.as_device_ptr(),
        );
        let stage1 = self.function("dot_partial")?;
        let stage2 = self.function("sum_partials")?;
        // SAFETY: dot_partial(const float*, const float*, u64, double*) with x and y of n
        // elements and one partial per block (blocks <= MAX_DOT_BLOCKS = partials' length);
        // sum_partials(const double*, u64, double*) reads those `blocks` partials and writes
        // total[0]. Both use BLOCK == DOT_THREADS threads, as their shared arrays require.
        crate::profile::launch(
            stream,
            || format!("dot_partial n {n}"),
            || unsafe { launch!(stage1<<<blocks, BLOCK, 0, stream>>>(px, py, n, partials)) },
        )
        .map_err(driver("cuLaunchKernel"))?;
        crate::profile::launch(
            stream,
            || "sum_partials".into(),
            || unsafe { launch!(stage2<<<1u32, BLOCK, 0, stream>>>(partials, count, total)) },
        )
        .map_err(driver("cuLaunchKernel"))?;
        crate::profile::phase("wait for the stream (dot)", || stream.synchronize())
            .map_err(driver("cuStreamSynchronize"))?;
        let mut out = [0.0f64];
        cust::memory::CopyDestination::copy_to(&*self.total, &mut out[..])
            .map_err(driver("cuMemcpyDtoH"))?;
        Ok(out[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_n_within_the_caps() {
        assert_eq!(blocks_for(0, MAX_BLOCKS), 1);
        assert_eq!(blocks_for(1, MAX_BLOCKS), 1);
        assert_eq!(blocks_for(256, MAX_BLOCKS), 1);
        assert_eq!(blocks_for(257, MAX_BLOCKS), 2);
        assert_eq!(blocks_for(10_000_000, MAX_BLOCKS), MAX_BLOCKS);
        assert_eq!(blocks_for(10_000_000, MAX_DOT_BLOCKS), MAX_DOT_BLOCKS);
    }

    #[test]
    fn block_size_matches_the_kernel_source() {
        let define = format!("#define DOT_THREADS {BLOCK}");
        assert!(crate::device::ELEMENTWISE_CU.contains(&define), "{define}");
    }
}
