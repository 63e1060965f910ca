//! `CudaOps`: the [`Ops`] primitives as CUDA kernels (`kernels/gemm.cu`, `conv.cu`,
//! `norm.cu`, `layers.cu`, `train.cu`, and the element-wise kernels of the [`Gpu`]). Each
//! method is the typed safe wrapper of its kernel: it checks the lengths and offsets of every
//! operand against the buffers, so the unsafe launch only sees pointers to enough valid
//! elements (the kernels' index ranges are stated in ops.rs).
//!
//! Buffers come from a pool: a dropped [`GpuBuf`] goes back to it and is reused by a later
//! request of the same length. Everything runs in order on the Gpu's one stream, so a reused
//! buffer is never written before the kernels that read it before are done, and nothing calls
//! cuMemFree (which would wait for the device) in the middle of a step. An upload into a
//! pooled buffer first waits for the stream (a synchronous copy could otherwise overtake a
//! queued kernel that still reads the buffer); downloads wait for the stream.
#![allow(unsafe_code)] // kernel launches (cust's launch! is unsafe); see the SAFETY notes.

use crate::device::Gpu;
use crate::error::{driver, CudaHostError, Result};
use crate::kernels::{blocks_for, BLOCK};
use crate::nvrtc::{Nvrtc, COMPILE_OPTIONS};
use crate::ops::{AdamStep, Gemm, Ops, OpsError, SampleCoefs};
use crate::ptx_cache::{PtxCache, PtxKey};
use cust::function::Function;
use cust::launch;
use cust::memory::{CopyDestination, DeviceBuffer, DevicePointer};
use cust::module::Module;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// The network's CUDA C modules: (name, source).
pub const NET_MODULES: [(&str, &str); 5] = [
    ("gemm", include_str!("../kernels/gemm.cu")),
    ("conv", include_str!("../kernels/conv.cu")),
    ("norm", include_str!("../kernels/norm.cu")),
    ("layers", include_str!("../kernels/layers.cu")),
    ("train", include_str!("../kernels/train.cu")),
];

/// Most blocks of a grid-stride launch.
const MAX_BLOCKS: u32 = 8192;
/// Threads of a GroupNorm block (`NORM_THREADS` in norm.cu).
const NORM_THREADS: u32 = 256;
/// Most partial sums of a split batch-summing SGEMM.
const MAX_SLICES: usize = 32;

/// The PTX of module `name` for `cc`, from the cache or compiled with NVRTC.
pub fn module_ptx(
    cache: &PtxCache,
    name: &str,
    source: &str,
    cc: crate::ComputeCapability,
) -> Result<String> {
    let key = PtxKey {
        name,
        source,
        options: COMPILE_OPTIONS,
        cc,
    };
    cache.get_or_compile(&key, || {
        Nvrtc::load()?.compile(source, &format!("{name}.cu"), cc)
    })
}

/// Device 0 with the network's kernels, PTX from the default cache (or compiled by NVRTC):
/// [`CudaHostError::NoDevice`] on a machine without a GPU.
pub fn open_default() -> Result<CudaOps> {
    let cache = PtxCache::default_location();
    CudaOps::new(Gpu::open(&cache)?, &cache)
}

impl From<CudaHostError> for OpsError {
    fn from(e: CudaHostError) -> Self {
        OpsError::Device(e.to_string())
    }
}

type Pool = Rc<RefCell<HashMap<usize, Vec<DeviceBuffer<f32>>>>>;

/// A device buffer of `len` f32 from a [`CudaOps`] pool (returned to it when dropped).
pub struct GpuBuf {
    buf: Option<DeviceBuffer<f32>>,
    len: usize,
    pool: Pool,
}

impl Drop for GpuBuf {
    fn drop(&mut self) {
        if let Some(b) = self.buf.take() {
            self.pool.borrow_mut().entry(self.len).or_default().push(b);
        }
    }
}

impl GpuBuf {
    /// The device memory (the first `len` elements are the buffer's).
    pub(crate) fn device(&self) -> &DeviceBuffer<f32> {
        self.slice()
    }
    pub(crate) fn device_mut(&mut self) -> &mut DeviceBuffer<f32> {
        self.slice_mut()
    }
    fn slice(&self) -> &DeviceBuffer<f32> {
        self.buf.as_ref().expect("a live buffer")
    }
    fn slice_mut(&mut self) -> &mut DeviceBuffer<f32> {
        self.buf.as_mut().expect("a live buffer")
    }
    /// The device address of element `off`, checking that `off + len` elements exist.
    fn at(&self, off: usize, len: usize, what: &str) -> DevicePointer<f32> {
        assert!(
            off + len <= self.len,
            "{what}: {off} + {len} elements past a buffer of {}",
            self.len
        );
        self.slice().as_device_ptr().wrapping_offset(off as isize)
    }
    fn whole(&self, len: usize, what: &str) -> DevicePointer<f32> {
        assert_eq!(self.len, len, "{what}: buffer length");
        self.at(0, len, what)
    }
}

/// The CUDA primitives on one [`Gpu`]. Fields drop in order: the modules and the pool's
/// buffers before the Gpu (its context).
pub struct CudaOps {
    modules: HashMap<&'static str, Module>,
    pool: Pool,
    /// Bytes allocated with cuMemAlloc and not freed (live buffers and the pool's).
    allocated: std::cell::Cell<usize>,
    pub gpu: Rc<Gpu>,
}

impl CudaOps {
    /// Loads the network's kernels (from `cache`, or compiled with NVRTC) onto `gpu`.
    pub fn new(gpu: Rc<Gpu>, cache: &PtxCache) -> Result<CudaOps> {
        let cc = gpu.info().cc;
        let mut modules = HashMap::new();
        for (name, src) in NET_MODULES {
            let ptx = module_ptx(cache, name, src, cc)?;
            modules.insert(
                name,
                Module::from_ptx(&ptx, &[]).map_err(driver("cuModuleLoadData"))?,
            );
        }
        Ok(CudaOps {
            gpu,
            modules,
            pool: Pool::default(),
            allocated: Default::default(),
        })
    }

    fn function(&self, module: &str, name: &'static str) -> Result<Function<'_>> {
        self.modules[module]
            .get_function(name)
            .map_err(driver("cuModuleGetFunction"))
    }

    /// Bytes this CudaOps has allocated (buffers in use and pooled): its device footprint,
    /// which only grows when a step needs a buffer length it has not used before.
    pub fn allocated_bytes(&self) -> usize {
        self.allocated.get()
    }

    /// A fresh device allocation of `len` (at least 1) elements, zeroed or holding `upload`;
    /// counted in [`CudaOps::allocated_bytes`].
    fn allocate(
        &self,
        len: usize,
        upload: Option<&[f32]>,
    ) -> std::result::Result<DeviceBuffer<f32>, OpsError> {
        let buf = match upload {
            Some(d) if !d.is_empty() => {
                DeviceBuffer::from_slice(d).map_err(driver("cuMemcpyHtoD"))?
            }
            _ => DeviceBuffer::zeroed(len.max(1)).map_err(driver("cuMemAlloc"))?,
        };
        self.allocated.set(self.allocated.get() + 4 * len.max(1));
        Ok(buf)
    }

    /// (free, total) device memory in bytes.
    pub fn memory(&self) -> Result<(usize, usize)> {
        cust::memory::mem_get_info().map_err(driver("cuMemGetInfo"))
    }

    fn grid(n: usize) -> u32 {
        blocks_for(n, MAX_BLOCKS)
    }
}

/// Launches `f` on the stream with the given grid (x or (x, y, z)), 1-D blocks, arguments.
macro_rules! run {
    ($self:ident, $f:expr, $grid:expr, $block:expr, ($($arg:expr),* $(,)?)) => {{
        let f = $f?;
        let stream = &$self.gpu.stream;
        // SAFETY: every pointer argument was produced by GpuBuf::at/whole, which checked that
        // the buffer holds the elements the kernel indexes (ops.rs states the ranges), and
        // the scalar arguments have the kernel's C types (u64, i64, i32, f32) in order.
        unsafe { launch!(f<<<$grid, $block, 0, stream>>>($($arg),*)) }
            .map_err(driver("cuLaunchKernel"))
            .map_err(OpsError::from)
    }};
}

#[allow(clippy::too_many_arguments)]
impl Ops for CudaOps {
    type Buf = GpuBuf;

    fn zeros(&self, len: usize) -> std::result::Result<GpuBuf, OpsError> {
        let reused = self.pool.borrow_mut().get_mut(&len).and_then(|v| v.pop());
        let mut b = match reused {
            Some(b) => GpuBuf {
                buf: Some(b),
                len,
                pool: self.pool.clone(),
            },
            None => {
                let buf = self.allocate(len, None)?;
                return Ok(GpuBuf {
                    buf: Some(buf),
                    len,
                    pool: self.pool.clone(),
                });
            }
        };
        self.fill(&mut b, 0.0)?;
        Ok(b)
    }

    fn upload(&self, data: &[f32]) -> std::result::Result<GpuBuf, OpsError> {
        let reused = self
            .pool
            .borrow_mut()
            .get_mut(&data.len())
            .and_then(|v| v.pop());
        let buf = match reused {
            Some(b) if !data.is_empty() => {
                // A synchronous copy does not wait for our (non-blocking) stream, whose queued
                // kernels may still read this buffer: wait for them first.
                self.gpu
                    .stream
                    .synchronize()
                    .map_err(driver("cuStreamSynchronize"))?;
                b.index(..data.len())
                    .copy_from(data)
                    .map_err(driver("cuMemcpyHtoD"))?;
                b
            }
            Some(b) => b,
            None => self.allocate(data.len(), Some(data))?,
        };
        Ok(GpuBuf {
            buf: Some(buf),
            len: data.len(),
            pool: self.pool.clone(),
        })
    }

    fn download(&self, x: &GpuBuf) -> std::result::Result<Vec<f32>, OpsError> {
        self.synchronize()?;
        let mut out = vec![0.0f32; x.len];
        if x.len > 0 {
            x.slice()
                .index(..x.len)
                .copy_to(&mut out[..])
                .map_err(driver("cuMemcpyDtoH"))?;
        }
        Ok(out)
    }

    fn len(&self, x: &GpuBuf) -> usize {
        x.len
    }

    fn synchronize(&self) -> std::result::Result<(), OpsError> {
        Ok(self.gpu.synchronize()?)
    }

    fn fill(&self, x: &mut GpuBuf, v: f32) -> std::result::Result<(), OpsError> {
        if x.len > 0 {
            self.gpu.kernels.fill(&self.gpu.stream, x.slice_mut(), v)?;
        }
        Ok(())
    }

    fn scale(&self, x: &mut GpuBuf, a: f32) -> std::result::Result<(), OpsError> {
        if x.len > 0 {
            self.gpu.kernels.scale(&self.gpu.stream, x.slice_mut(), a)?;
        }
        Ok(())
    }

    fn axpby(
        &self,
        y: &mut GpuBuf,
        a: f32,
        x: &GpuBuf,
        b: f32,
    ) -> std::result::Result<(), OpsError> {
        assert_eq!(y.len, x.len, "axpby: lengths");
        if x.len > 0 {
            self.gpu
                .kernels
                .axpby(&self.gpu.stream, y.slice_mut(), a, x.slice(), b)?;
        }
        Ok(())
    }

    fn dot(&self, x: &GpuBuf, y: &GpuBuf) -> std::result::Result<f64, OpsError> {
        assert_eq!(y.len, x.len, "dot: lengths");
        if x.len == 0 {
            return Ok(0.0);
        }
        Ok(self
            .gpu
            .kernels
            .dot(&self.gpu.stream, x.slice(), y.slice())?)
    }

    fn copy_rows(
        &self,
        rows: usize,
        len: usize,
        src: &GpuBuf,
        src_off: usize,
        src_stride: usize,
        dst: &mut GpuBuf,
        dst_off: usize,
        dst_stride: usize,
    ) -> std::result::Result<(), OpsError> {
        if rows == 0 || len == 0 {
            return Ok(());
        }
        let s = src.at(src_off, (rows - 1) * src_stride + len, "copy_rows src");
        let d = dst.at(dst_off, (rows - 1) * dst_stride + len, "copy_rows dst");
        run!(
            self,
            self.function("layers", "copy_rows"),
            Self::grid(rows * len),
            BLOCK,
            (
                rows as u64,
                len as u64,
                s,
                src_stride as u64,
                d,
                dst_stride as u64
            )
        )
    }

    fn gemm(
        &self,
        g: &Gemm,
        a: &GpuBuf,
        b: &GpuBuf,
        c: &mut GpuBuf,
    ) -> std::result::Result<(), OpsError> {
        if g.m == 0 || g.n == 0 || g.batch == 0 {
            return Ok(());
        }
        let (ea, eb, ec) = g.extents();
        let pa = a.at(g.a_off, ea - g.a_off, "gemm A");
        let pb = b.at(g.b_off, eb - g.b_off, "gemm B");
        let pc = c.at(g.c_off, ec - g.c_off, "gemm C");
        let tiles = |rows: usize, cols: usize| (cols.div_ceil(64) as u32, rows.div_ceil(64) as u32);
        let (gx, gy) = tiles(g.m, g.n);
        let args = |alpha: f32, beta: f32, c_stride: usize, chunk: usize| {
            (
                g.m as i32,
                g.n as i32,
                g.k as i32,
                g.ta as i32,
                g.tb as i32,
                alpha,
                beta,
                g.a_stride as i64,
                g.b_stride as i64,
                c_stride as i64,
                g.batch as i32,
                chunk as i32,
            )
        };
        if !g.sum_batch || g.batch == 1 {
            let (m, n, k, ta, tb, al, be, sa, sb, sc, bt, ch) =
                args(g.alpha, g.beta, g.c_stride, 1);
            let z = if g.sum_batch { 1 } else { g.batch as u32 };
            return run!(
                self,
                self.function("gemm", "sgemm"),
                (gx, gy, z),
                256u32,
                (pa, pb, pc, m, n, k, ta, tb, al, be, sa, sb, sc, bt, ch)
            );
        }
        // A batch sum: partial sums over `chunk` samples each, then their sum in order.
        let chunk = g.batch.div_ceil(MAX_SLICES.min(g.batch));
        let slices = g.batch.div_ceil(chunk);
        let len = g.m * g.n;
        let part = self.zeros(slices * len)?;
        let pp = part.whole(slices * len, "gemm partial sums");
        let (m, n, k, ta, tb, al, be, sa, sb, sc, bt, ch) = args(1.0, 0.0, len, chunk);
        run!(
            self,
            self.function("gemm", "sgemm"),
            (gx, gy, slices as u32),
            256u32,
            (pa, pb, pp, m, n, k, ta, tb, al, be, sa, sb, sc, bt, ch)
        )?;
        run!(
            self,
            self.function("gemm", "sum_slices"),
            Self::grid(len),
            BLOCK,
            (pp, slices as i32, len as i64, pc, g.alpha, g.beta)
        )
    }

    fn im2col(
        &self,
        x: &GpuBuf,
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        k: usize,
        col: &mut GpuBuf,
    ) -> std::result::Result<(), OpsError> {
        let hw = h * w;
        let px = x.whole(n * c * hw, "im2col x");
        let pc = col.whole(n * c * k * k * hw, "im2col col");
        run!(
            self,
            self.function("conv", "im2col"),
            Self::grid(n * c * k * k * hw),
            BLOCK,
            (px, n as u64, c as u64, h as u64, w as u64, k as u64, pc)
        )
    }

    fn col2im(
        &self,
        dcol: &GpuBuf,
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        k: usize,
        dx: &mut GpuBuf,
    ) -> std::result::Result<(), OpsError> {
        let hw = h * w;
        let pc = dcol.whole(n * c * k * k * hw, "col2im dcol");
        let px = dx.whole(n * c * hw, "col2im dx");
        run!(
            self,
            self.function("conv", "col2im"),
            Self::grid(n * c * hw),
            BLOCK,
            (pc, n as u64, c as u64, h as u64, w as u64, k as u64, px)
        )
    }

    fn gated_forward(
        &self,
        z: &mut GpuBuf,
        n: usize,
        cout: usize,
        hw: usize,
        params: &GpuBuf,
        bias_off: usize,
        out: &mut GpuBuf,
    ) -> std::result::Result<(), OpsError> {
        let pz = z.whole(n * 2 * cout * hw, "gated_forward z");
        let pb = params.at(bias_off, cout, "gated_forward bias");
        let po = out.whole(n * cout * hw, "gated_forward out");
        run!(
            self,
            self.function("conv", "gated_forward"),
            Self::grid(n * cout * hw),
            BLOCK,
            (pz, n as u64, cout as u64, hw as u64, pb, po)
        )
    }

    fn gated_backward(
        &self,
        d_out: &GpuBuf,
        z: &GpuBuf,
        n: usize,
        cout: usize,
        hw: usize,
        dz: &mut GpuBuf,
    ) -> std::result::Result<(), OpsError> {
        let pd = d_out.whole(n * cout * hw, "gated_backward d_out");
        let pz = z.whole(n * 2 * cout * hw, "gated_backward z");
        let pdz = dz.whole(n * 2 * cout * hw, "gated_backward dz");
        run!(
            self,
            self.function("conv", "gated_backward"),
            Self::grid(n * cout * hw),
            BLOCK,
            (pd, pz, n as u64, cout as u64, hw as u64, pdz)
        )
    }

    fn sum_planes(
        &self,
        x: &GpuBuf,
        planes: usize,
        hw: usize,
        out: &mut GpuBuf,
    ) -> std::result::Result<(), OpsError> {
        let px = x.whole(planes * hw, "sum_planes x");
        let po = out.whole(planes, "sum_planes out");
        run!(
            self,
            self.function("layers", "sum_planes"),
            Self::grid(planes),
            BLOCK,
            (px, planes as u64, hw as u64, po)
        )
    }

    fn add_column_sums(
        &self,
        x: &GpuBuf,
        rows: usize,
        cols: usize,
        acc: &mut GpuBuf,
        acc_off: usize,
    ) -> std::result::Result<(), OpsError> {
        let px = x.whole(rows * cols, "add_column_sums x");
        let pa = acc.at(acc_off, cols, "add_column_sums acc");
        run!(
            self,
            self.function("layers", "add_column_sums"),
            Self::grid(cols),
            BLOCK,
            (px, rows as u64, cols as u64, pa)
        )
    }

    fn group_norm_forward(
        &self,
        x: &GpuBuf,
        n: usize,
        c: usize,
        hw: usize,
        groups: usize,
        params: &GpuBuf,
        g_off: usize,
        b_off: usize,
        silu: bool,
        out: &mut GpuBuf,
        xhat: &mut GpuBuf,
        rstd: &mut GpuBuf,
    ) -> std::result::Result<(), OpsError> {
        assert!(
            groups > 0 && c.is_multiple_of(groups),
            "group_norm_forward: groups"
        );
        let len = n * c * hw;
        let (px, po, pxh) = (
            x.whole(len, "gn x"),
            out.whole(len, "gn out"),
            xhat.whole(len, "gn xhat"),
        );
        let pr = rstd.whole(n * groups, "gn rstd");
        let (pg, pb) = (
            params.at(g_off, c, "gn gamma"),
            params.at(b_off, c, "gn beta"),
        );
        run!(
            self,
            self.function("norm", "group_norm_forward"),
            (n * groups) as u32,
            NORM_THREADS,
            (
                px,
                c as u64,
                hw as u64,
                groups as u64,
                pg,
                pb,
                silu as i32,
                po,
                pxh,
                pr
            )
        )
    }

    fn group_norm_backward(
        &self,
        d_out: &GpuBuf,
        xhat: &GpuBuf,
        rstd: &GpuBuf,
        n: usize,
        c: usize,
        hw: usize,
        groups: usize,
        params: &GpuBuf,
        g_off: usize,
        b_off: usize,
        silu: bool,
        dx: &mut GpuBuf,
        sums: &mut GpuBuf,
    ) -> std::result::Result<(), OpsError> {
        assert!(
            groups > 0 && c.is_multiple_of(groups),
            "group_norm_backward: groups"
        );
        let len = n * c * hw;
        let (pd, pxh, pdx) = (
            d_out.whole(len, "gn d_out"),
            xhat.whole(len, "gn xhat"),
            dx.whole(len, "gn dx"),
        );
        let pr = rstd.whole(n * groups, "gn rstd");
        let ps = sums.whole(2 * n * c, "gn sums");
        let (pg, pb) = (
            params.at(g_off, c, "gn gamma"),
            params.at(b_off, c, "gn beta"),
        );
        run!(
            self,
            self.function("norm", "group_norm_backward"),
            (n * groups) as u32,
            NORM_THREADS,
            (
                pd,
                pxh,
                pr,
                c as u64,
                hw as u64,
                groups as u64,
                pg,
                pb,
                silu as i32,
                pdx,
                ps
            )
        )
    }

    fn avg_pool(
        &self,
        x: &GpuBuf,
        planes: usize,
        h: usize,
        w: usize,
        out: &mut GpuBuf,
    ) -> std::result::Result<(), OpsError> {
        assert!(
            h.is_multiple_of(2) && w.is_multiple_of(2),
            "avg_pool: odd size"
        );
        let px = x.whole(planes * h * w, "avg_pool x");
        let po = out.whole(planes * h * w / 4, "avg_pool out");
        run!(
            self,
            self.function("layers", "avg_pool"),
            Self::grid(planes * h * w / 4),
            BLOCK,
            (px, planes as u64, h as u64, w as u64, po)
        )
    }

    fn avg_pool_backward(
        &self,
        d: &GpuBuf,
        planes: usize,
        h: usize,
        w: usize,
        dx: &mut GpuBuf,
    ) -> std::result::Result<(), OpsError> {
        assert!(
            h.is_multiple_of(2) && w.is_multiple_of(2),
            "avg_pool_backward: odd size"
        );
        let pd = d.whole(planes * h * w / 4, "avg_pool_backward d");
        let px = dx.whole(planes * h * w, "avg_pool_backward dx");
        run!(
            self,
            self.function("layers", "avg_pool_backward"),
            Self::grid(planes * h * w),
            BLOCK,
            (pd, planes as u64, h as u64, w as u64, px)
        )
    }

    fn upsample(
        &self,
        x: &GpuBuf,
        planes: usize,
        h: usize,
        w: usize,
        out: &mut GpuBuf,
    ) -> std::result::Result<(), OpsError> {
        let px = x.whole(planes * h * w, "upsample x");
        let po = out.whole(4 * planes * h * w, "upsample out");
        run!(
            self,
            self.function("layers", "upsample"),
            Self::grid(4 * planes * h * w),
            BLOCK,
            (px, planes as u64, h as u64, w as u64, po)
        )
    }

    fn upsample_backward(
        &self,
        d: &GpuBuf,
        planes: usize,
        h: usize,
        w: usize,
        dx: &mut GpuBuf,
    ) -> std::result::Result<(), OpsError> {
        let pd = d.whole(4 * planes * h * w, "upsample_backward d");
        let px = dx.whole(planes * h * w, "upsample_backward dx");
        run!(
            self,
            self.function("layers", "upsample_backward"),
            Self::grid(planes * h * w),
            BLOCK,
            (pd, planes as u64, h as u64, w as u64, px)
        )
    }

    fn add_row_bias(
        &self,
        y: &mut GpuBuf,
        rows: usize,
        cols: usize,
        params: &GpuBuf,
        off: usize,
    ) -> std::result::Result<(), OpsError> {
        let py = y.whole(rows * cols, "add_row_bias y");
        let pb = params.at(off, cols, "add_row_bias bias");
        run!(
            self,
            self.function("layers", "add_row_bias"),
            Self::grid(rows * cols),
            BLOCK,
            (py, rows as u64, cols as u64, pb)
        )
    }

    fn add_per_plane(
        &self,
        h: &mut GpuBuf,
        planes: usize,
        hw: usize,
        e: &GpuBuf,
    ) -> std::result::Result<(), OpsError> {
        let ph = h.whole(planes * hw, "add_per_plane h");
        let pe = e.whole(planes, "add_per_plane e");
        run!(
            self,
            self.function("layers", "add_per_plane"),
            Self::grid(planes * hw),
            BLOCK,
            (ph, planes as u64, hw as u64, pe)
        )
    }

    fn silu(&self, x: &GpuBuf, out: &mut GpuBuf) -> std::result::Result<(), OpsError> {
        let n = x.len;
        let (px, po) = (x.whole(n, "silu x"), out.whole(n, "silu out"));
        run!(
            self,
            self.function("layers", "silu"),
            Self::grid(n),
            BLOCK,
            (px, n as u64, po)
        )
    }

    fn silu_backward(
        &self,
        x: &GpuBuf,
        d: &GpuBuf,
        dx: &mut GpuBuf,
    ) -> std::result::Result<(), OpsError> {
        let n = x.len;
        let (px, pd, pdx) = (
            x.whole(n, "silu_backward x"),
            d.whole(n, "silu_backward d"),
            dx.whole(n, "silu_backward dx"),
        );
        run!(
            self,
            self.function("layers", "silu_backward"),
            Self::grid(n),
            BLOCK,
            (px, pd, n as u64, pdx)
        )
    }

    fn network_input(
        &self,
        y: &GpuBuf,
        m: &GpuBuf,
        c_in: &GpuBuf,
        n: usize,
        chw: usize,
        f_in: &mut GpuBuf,
    ) -> std::result::Result<(), OpsError> {
        let (py, pm) = (
            y.whole(n * chw, "network_input y"),
            m.whole(n * chw, "network_input m"),
        );
        let pc = c_in.whole(n, "network_input c_in");
        let pf = f_in.whole(2 * n * chw, "network_input f_in");
        run!(
            self,
            self.function("train", "network_input"),
            Self::grid(n * chw),
            BLOCK,
            (py, pm, pc, n as u64, chw as u64, pf)
        )
    }

    fn precondition(
        &self,
        y: &GpuBuf,
        m: &GpuBuf,
        f: &GpuBuf,
        coefs: &SampleCoefs<GpuBuf>,
        sd: f32,
        n: usize,
        chw: usize,
        out: &mut GpuBuf,
    ) -> std::result::Result<(), OpsError> {
        let len = n * chw;
        let (py, pm, pf) = (
            y.whole(len, "precondition y"),
            m.whole(len, "precondition m"),
            f.whole(len, "precondition f"),
        );
        let (ck, co) = (
            coefs.c_skip.whole(n, "c_skip"),
            coefs.c_out.whole(n, "c_out"),
        );
        let po = out.whole(len, "precondition out");
        run!(
            self,
            self.function("train", "precondition"),
            Self::grid(len),
            BLOCK,
            (py, pm, pf, ck, co, sd, n as u64, chw as u64, po)
        )
    }

    fn output_scale_mul(
        &self,
        d_d: &GpuBuf,
        m: &GpuBuf,
        coefs: &SampleCoefs<GpuBuf>,
        sd: f32,
        n: usize,
        chw: usize,
        d_f: &mut GpuBuf,
    ) -> std::result::Result<(), OpsError> {
        let len = n * chw;
        let (pd, pm) = (
            d_d.whole(len, "output_scale_mul d_d"),
            m.whole(len, "output_scale_mul m"),
        );
        let co = coefs.c_out.whole(n, "c_out");
        let pf = d_f.whole(len, "output_scale_mul d_f");
        run!(
            self,
            self.function("train", "output_scale_mul"),
            Self::grid(len),
            BLOCK,
            (pd, pm, co, sd, n as u64, chw as u64, pf)
        )
    }

    fn weighted_residual(
        &self,
        d: &GpuBuf,
        x: &GpuBuf,
        a: &GpuBuf,
        a_tilde: &GpuBuf,
        coefs: &SampleCoefs<GpuBuf>,
        sd: f32,
        n: usize,
        chw: usize,
        grad: &mut GpuBuf,
        resid: &mut GpuBuf,
    ) -> std::result::Result<(), OpsError> {
        let len = n * chw;
        let (pd, px) = (d.whole(len, "loss d"), x.whole(len, "loss x"));
        let (pa, pat) = (a.whole(len, "loss a"), a_tilde.whole(len, "loss a~"));
        let pi = coefs.inv_s2.whole(n, "inv_s2");
        let (pg, pr) = (grad.whole(len, "loss grad"), resid.whole(len, "loss resid"));
        let inv_sd2 = 1.0 / (sd * sd);
        run!(
            self,
            self.function("train", "weighted_residual"),
            Self::grid(len),
            BLOCK,
            (pd, px, pa, pat, pi, inv_sd2, n as u64, chw as u64, pg, pr)
        )
    }

    fn adam(
        &self,
        w: &mut GpuBuf,
        g: &mut GpuBuf,
        m: &mut GpuBuf,
        v: &mut GpuBuf,
        h: &AdamStep,
    ) -> std::result::Result<(), OpsError> {
        let n = w.len;
        let (pw, pg) = (w.whole(n, "adam w"), g.whole(n, "adam g"));
        let (pm, pv) = (m.whole(n, "adam m"), v.whole(n, "adam v"));
        run!(
            self,
            self.function("train", "adam"),
            Self::grid(n),
            BLOCK,
            (pw, pg, pm, pv, n as u64, h.clip, h.lr, h.beta1, h.beta2, h.eps, h.bc1, h.bc2)
        )
    }
}
