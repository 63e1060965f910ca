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
/// Blocks a split batch-summing SGEMM aims for (several per multiprocessor on any current GPU):
/// it takes as many partial sums as its tiles need to reach this many, at most one per sample.
/// A constant, not the device's multiprocessor count, so every GPU sums in the same order.
const SUM_BLOCKS: usize = 1024;

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
    /// A SGEMM tile (index into [`GEMM_TILES`]) used for every product instead of
    /// [`gemm_tile`]'s choice: for tests and the tile benchmark.
    forced_tile: std::cell::Cell<Option<usize>>,
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
            forced_tile: Default::default(),
        })
    }

    fn function(&self, module: &str, name: &'static str) -> Result<Function<'_>> {
        self.modules[module]
            .get_function(name)
            .map_err(driver("cuModuleGetFunction"))
    }

    /// Makes every SGEMM use tile `GEMM_TILES[i]` (None: each product's own choice).
    pub fn force_gemm_tile(&self, i: Option<usize>) {
        assert!(
            i.is_none_or(|i| i < GEMM_TILES.len()),
            "no SGEMM tile {i:?}"
        );
        self.forced_tile.set(i);
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

    /// A buffer of `len` elements from the pool (true: its values are a former user's) or
    /// freshly allocated (false: zeroed).
    fn take(&self, len: usize) -> std::result::Result<(GpuBuf, bool), OpsError> {
        let reused = self.pool.borrow_mut().get_mut(&len).and_then(|v| v.pop());
        let fresh = reused.is_none();
        let buf = match reused {
            Some(b) => b,
            None => self.allocate(len, None)?,
        };
        let b = GpuBuf {
            buf: Some(buf),
            len,
            pool: self.pool.clone(),
        };
        Ok((b, !fresh))
    }
}

/// One SGEMM tile of gemm.cu: its entry point and the rows and columns of C a block computes.
pub struct GemmTile {
    pub entry: &'static str,
    pub rows: usize,
    pub cols: usize,
}

/// gemm.cu's tiles; both compute each output the same way (bit for bit), so the choice changes
/// speed only (and, for batch sums, the number of partial sums).
pub const GEMM_TILES: [GemmTile; 2] = [
    GemmTile {
        entry: "sgemm",
        rows: 64,
        cols: 64,
    },
    GemmTile {
        entry: "sgemm_128x128",
        rows: 128,
        cols: 128,
    },
];

/// The tile for an M x N x K product: 128 x 128 where it pads M and N no more than 64 x 64
/// does and K > 128, else 64 x 64. Measured on an H200 over the spec network's products at
/// batch 256 (ops_device.rs, `bench_sgemm_tiles_on_the_network_products`, which also timed
/// 64 x 128 and 128 x 64 tiles, never clearly faster, since removed): 128 x 128 was 7-14%
/// faster on 128 x 196 (K 576, 1152) and 128 x 1152 (K 196), and 6-29% slower everywhere else
/// it pads no more, all with K <= 128; 64 x 64 was the fastest tile on every other product.
pub fn gemm_tile(m: usize, n: usize, k: usize) -> usize {
    let padded = |t: &GemmTile| m.div_ceil(t.rows) * t.rows * n.div_ceil(t.cols) * t.cols;
    usize::from(k > 128 && padded(&GEMM_TILES[1]) <= padded(&GEMM_TILES[0]))
}

/// Most elements one launch of a 32-bit-indexed kernel may address (conv.cu).
const MAX_ELEMS_32: usize = (1 << 31) - 1;

/// Splits `n` images of `per_image` elements each into runs (first image, count) of whole
/// images of at most [`MAX_ELEMS_32`] elements, for the kernels that index in 32 bits; an
/// error when one image alone is larger.
fn image_runs(n: usize, per_image: usize) -> std::result::Result<Vec<(usize, usize)>, OpsError> {
    if per_image > MAX_ELEMS_32 {
        return Err(OpsError::Invalid(format!(
            "one image's {per_image} column elements exceed the 2^31 a convolution kernel indexes"
        )));
    }
    let per_run = (MAX_ELEMS_32 / per_image.max(1)).max(1);
    Ok((0..n)
        .step_by(per_run)
        .map(|i0| (i0, per_run.min(n - i0)))
        .collect())
}

/// Launches kernel `name` of `module` on the stream with the given grid (x or (x, y, z)),
/// 1-D blocks and arguments; under the profiler (profile.rs) its time goes to `key` (the
/// kernel's name and grid when no key is given).
macro_rules! run {
    ($self:ident, $module:literal / $name:literal, $grid:expr, $block:expr, ($($arg:expr),* $(,)?)) => {{
        let grid = $grid;
        run!($self, $module / $name, key = format!("{} grid {:?}", $name, grid), grid, $block, ($($arg),*))
    }};
    ($self:ident, $module:literal / $name:literal, key = $key:expr, $grid:expr, $block:expr, ($($arg:expr),* $(,)?)) => {{
        run!($self, $module / ($name), key = $key, $grid, $block, ($($arg),*))
    }};
    ($self:ident, $module:literal / ($name:expr), key = $key:expr, $grid:expr, $block:expr, ($($arg:expr),* $(,)?)) => {{
        let f = $self.function($module, $name)?;
        let stream = &$self.gpu.stream;
        crate::profile::launch(stream, || $key, || {
            // SAFETY: every pointer argument was produced by GpuBuf::at/whole, which checked
            // that the buffer holds the elements the kernel indexes (ops.rs states the ranges),
            // and the scalar arguments have the kernel's C types (u64, i64, i32, f32) in order.
            unsafe { launch!(f<<<$grid, $block, 0, stream>>>($($arg),*)) }
        })
        .map_err(driver("cuLaunchKernel"))
        .map_err(OpsError::from)
    }};
}

impl CudaOps {
    /// im2col (x -> col) or col2im (col -> x) of n images of c planes of h x w pixels with a
    /// k x k window, launched on runs of whole images (`image_runs`): the two kernels take the
    /// same arguments, (source, planes, h, w, k, destination).
    #[allow(clippy::too_many_arguments)]
    fn window_pass(
        &self,
        name: &'static str,
        src: &GpuBuf,
        dst: &mut GpuBuf,
        n: usize,
        c: usize,
        (h, w): (usize, usize),
        k: usize,
    ) -> std::result::Result<(), OpsError> {
        let (image, col) = (c * h * w, c * k * k * h * w);
        let (src_per, dst_per) = if name == "im2col" {
            (image, col)
        } else {
            (col, image)
        };
        src.whole(n * src_per, name);
        dst.whole(n * dst_per, name);
        for (i0, count) in image_runs(n, col)? {
            let ps = src.at(i0 * src_per, count * src_per, name);
            let pd = dst.at(i0 * dst_per, count * dst_per, name);
            let planes = (count * c) as u32;
            run!(
                self,
                "conv" / (name),
                key = format!("{name} {n}x{c}x{h}x{w} k{k}"),
                Self::grid(count * c * h * w),
                BLOCK,
                (ps, planes, h as u32, w as u32, k as u32, pd)
            )?;
        }
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
impl Ops for CudaOps {
    type Buf = GpuBuf;

    fn zeros(&self, len: usize) -> std::result::Result<GpuBuf, OpsError> {
        let (mut b, reused) = self.take(len)?;
        if reused {
            self.fill(&mut b, 0.0)?;
        }
        Ok(b)
    }

    fn scratch(&self, len: usize) -> std::result::Result<GpuBuf, OpsError> {
        Ok(self.take(len)?.0)
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
                crate::profile::phase("wait for the stream (upload)", || {
                    self.gpu.stream.synchronize()
                })
                .map_err(driver("cuStreamSynchronize"))?;
                crate::profile::phase("copy host to device (upload)", || {
                    b.index(..data.len()).copy_from(data)
                })
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
            "layers" / "copy_rows",
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
        let tile = &GEMM_TILES[self
            .forced_tile
            .get()
            .unwrap_or_else(|| gemm_tile(g.m, g.n, g.k))];
        let (gx, gy) = (
            g.n.div_ceil(tile.cols) as u32,
            g.m.div_ceil(tile.rows) as u32,
        );
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
        // The profiler's name for this product (profile.rs).
        let shape = || {
            let t = |on: bool, s: &'static str| if on { s } else { "" };
            format!(
                "{} m{} n{} k{}{}{}",
                tile.entry,
                g.m,
                g.n,
                g.k,
                t(g.ta, " ta"),
                t(g.tb, " tb")
            )
        };
        if !g.sum_batch || g.batch == 1 {
            let (m, n, k, ta, tb, al, be, sa, sb, sc, bt, ch) =
                args(g.alpha, g.beta, g.c_stride, 1);
            let z = if g.sum_batch { 1 } else { g.batch as u32 };
            return run!(
                self,
                "gemm" / (tile.entry),
                key = format!("{} batch {}", shape(), g.batch),
                (gx, gy, z),
                256u32,
                (pa, pb, pc, m, n, k, ta, tb, al, be, sa, sb, sc, bt, ch)
            );
        }
        // A batch sum: partial sums over `chunk` samples each, then their sum in order.
        let want = SUM_BLOCKS.div_ceil((gx * gy) as usize).clamp(1, g.batch);
        let chunk = g.batch.div_ceil(want);
        let slices = g.batch.div_ceil(chunk);
        let len = g.m * g.n;
        let part = self.scratch(slices * len)?;
        let pp = part.whole(slices * len, "gemm partial sums");
        let (m, n, k, ta, tb, al, be, sa, sb, sc, bt, ch) = args(1.0, 0.0, len, chunk);
        run!(
            self,
            "gemm" / (tile.entry),
            key = format!("{} batch-sum {} in {slices}", shape(), g.batch),
            (gx, gy, slices as u32),
            256u32,
            (pa, pb, pp, m, n, k, ta, tb, al, be, sa, sb, sc, bt, ch)
        )?;
        run!(
            self,
            "gemm" / "sum_slices",
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
        self.window_pass("im2col", x, col, n, c, (h, w), k)
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
        self.window_pass("col2im", dcol, dx, n, c, (h, w), k)
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
        z.whole(n * 2 * cout * hw, "gated_forward z");
        out.whole(n * cout * hw, "gated_forward out");
        let pb = params.at(bias_off, cout, "gated_forward bias");
        for (i0, count) in image_runs(n, 2 * cout * hw)? {
            let pz = z.at(i0 * 2 * cout * hw, count * 2 * cout * hw, "gated_forward z");
            let po = out.at(i0 * cout * hw, count * cout * hw, "gated_forward out");
            run!(
                self,
                "conv" / "gated_forward",
                Self::grid(count * cout * hw),
                BLOCK,
                (pz, count as u32, cout as u32, hw as u32, pb, po)
            )?;
        }
        Ok(())
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
        d_out.whole(n * cout * hw, "gated_backward d_out");
        z.whole(n * 2 * cout * hw, "gated_backward z");
        dz.whole(n * 2 * cout * hw, "gated_backward dz");
        for (i0, count) in image_runs(n, 2 * cout * hw)? {
            let (len, zlen) = (count * cout * hw, count * 2 * cout * hw);
            let pd = d_out.at(i0 * cout * hw, len, "gated_backward d_out");
            let pz = z.at(i0 * 2 * cout * hw, zlen, "gated_backward z");
            let pdz = dz.at(i0 * 2 * cout * hw, zlen, "gated_backward dz");
            run!(
                self,
                "conv" / "gated_backward",
                Self::grid(len),
                BLOCK,
                (pd, pz, count as u32, cout as u32, hw as u32, pdz)
            )?;
        }
        Ok(())
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
            "layers" / "sum_planes",
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
            "layers" / "add_column_sums",
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
            "norm" / "group_norm_forward",
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
            "norm" / "group_norm_backward",
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
            "layers" / "avg_pool",
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
            "layers" / "avg_pool_backward",
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
            "layers" / "upsample",
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
            "layers" / "upsample_backward",
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
            "layers" / "add_row_bias",
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
            "layers" / "add_per_plane",
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
            "layers" / "silu",
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
            "layers" / "silu_backward",
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
            "train" / "network_input",
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
            "train" / "precondition",
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
            "train" / "output_scale_mul",
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
            "train" / "weighted_residual",
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
            "train" / "adam",
            Self::grid(n),
            BLOCK,
            (pw, pg, pm, pv, n as u64, h.clip, h.lr, h.beta1, h.beta2, h.eps, h.bc1, h.bc2)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_tile_takes_128x128_where_it_pads_no_more_and_k_is_deep() {
        let entry = |m, n, k| GEMM_TILES[gemm_tile(m, n, k)].entry;
        // 128 x 196: both tiles pad to 128 x 256.
        assert_eq!(entry(128, 196, 576), "sgemm_128x128");
        assert_eq!(entry(128, 196, 128), "sgemm");
        // 64 x 784: 128 x 128 pads to 128 x 896, 64 x 64 to 64 x 832.
        assert_eq!(entry(64, 784, 864), "sgemm");
        // 128 x 49: 128 columns against 64.
        assert_eq!(entry(128, 49, 1152), "sgemm");
        assert_eq!(entry(1, 1, 1000), "sgemm");
    }

    #[test]
    fn image_runs_cover_every_image_once_within_the_32_bit_range() {
        assert_eq!(image_runs(5, 10).unwrap(), vec![(0, 5)]);
        assert_eq!(image_runs(0, 10).unwrap(), vec![]);
        // 2^31 - 1 = 3 * 715827882 + 1: three images of 715827882 elements fit a run, four don't.
        let per = 715_827_882;
        assert_eq!(image_runs(7, per).unwrap(), vec![(0, 3), (3, 3), (6, 1)]);
        assert_eq!(image_runs(2, MAX_ELEMS_32).unwrap(), vec![(0, 1), (1, 1)]);
        assert!(image_runs(1, MAX_ELEMS_32 + 1).is_err());
    }
}
