//! The device primitives that AmbientUNet's forward and backward passes, the loss and the
//! optimiser are written in (`net.rs`, `train.rs`): one trait, [`Ops`], with two
//! implementations, `RefOps` (plain Rust loops on host vectors, which state exactly what each
//! kernel computes) and `CudaOps` (the CUDA kernels). The network over `RefOps` is checked
//! against host-cpu's f32 network without a GPU; each `CudaOps` kernel is checked against
//! `RefOps` on a GPU.
//!
//! Conventions: buffers are flat f32 arrays; activations are NCHW; `planes` counts (sample,
//! channel) pairs; parameters and gradients live in one flat buffer each, in `spec_layout`
//! order, addressed by offsets. Every method checks its lengths and panics on a mismatch
//! (a bug of the caller in this crate, never bad user input, which `net.rs` checks first).

/// Why a device operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The device (driver, allocation, launch) failed.
    #[error("device: {0}")]
    Device(String),
    /// Input the network cannot take (shape, configuration, parameters).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A value that must be finite is not (loss, gradient norm).
    #[error("non-finite {0}")]
    NonFinite(&'static str),
}

/// One (batched) row-major SGEMM: for b in 0..batch,
/// `C_b <- alpha op(A_b) op(B_b) + beta C_b`, `op(A_b)` [m, k], `op(B_b)` [k, n], `C_b` [m, n],
/// with `A_b` at `a_off + b a_stride` stored [m, k] (or [k, m] if `ta`), `B_b` at
/// `b_off + b b_stride` stored [k, n] (or [n, k] if `tb`), `C_b` at `c_off + b c_stride`.
/// With `sum_batch`, `C <- alpha sum_b op(A_b) op(B_b) + beta C` (one C at `c_off`).
/// Each output is accumulated in f32 with fused multiply-adds in the order b = 0.., then
/// kk = 0..k; `beta == 0` does not read C.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub ta: bool,
    pub tb: bool,
    pub alpha: f32,
    pub beta: f32,
    pub batch: usize,
    pub a_off: usize,
    pub a_stride: usize,
    pub b_off: usize,
    pub b_stride: usize,
    pub c_off: usize,
    pub c_stride: usize,
    pub sum_batch: bool,
}

impl Gemm {
    /// A single product `C <- op(A) op(B)` of whole buffers (alpha 1, beta 0, batch 1).
    pub fn new(m: usize, n: usize, k: usize, ta: bool, tb: bool) -> Gemm {
        Gemm {
            m,
            n,
            k,
            ta,
            tb,
            alpha: 1.0,
            beta: 0.0,
            batch: 1,
            a_off: 0,
            a_stride: 0,
            b_off: 0,
            b_stride: 0,
            c_off: 0,
            c_stride: 0,
            sum_batch: false,
        }
    }

    /// The elements each operand must hold: (A, B, C).
    pub fn extents(&self) -> (usize, usize, usize) {
        let last = self.batch.saturating_sub(1);
        let c_last = if self.sum_batch { 0 } else { last };
        (
            self.a_off + last * self.a_stride + self.m * self.k,
            self.b_off + last * self.b_stride + self.k * self.n,
            self.c_off + c_last * self.c_stride + self.m * self.n,
        )
    }
}

/// Per-sample coefficients of the preconditioning and the loss, one value per sample
/// (uploaded once per call).
pub struct SampleCoefs<B> {
    pub c_skip: B,
    pub c_out: B,
    pub c_in: B,
    /// `1 / s^2` (the loss weight of pixels the model sees, less `1 / sd^2`).
    pub inv_s2: B,
}

/// The device primitives. `Buf` is a flat f32 buffer of the implementation.
#[allow(clippy::too_many_arguments)]
pub trait Ops {
    type Buf;

    /// A zero-filled buffer of `len` elements.
    fn zeros(&self, len: usize) -> Result<Self::Buf, OpsError>;
    /// A buffer of `len` elements whose values are unspecified: only for an output that the
    /// next operation writes in full (a SGEMM with beta = 0, im2col, an epilogue). RefOps fills
    /// it with NaN, so a use that reads an unwritten element shows in every RefOps test.
    fn scratch(&self, len: usize) -> Result<Self::Buf, OpsError>;
    /// A buffer holding `data`.
    fn upload(&self, data: &[f32]) -> Result<Self::Buf, OpsError>;
    /// The buffer's values (after every queued operation).
    fn download(&self, x: &Self::Buf) -> Result<Vec<f32>, OpsError>;
    /// Its length.
    fn len(&self, x: &Self::Buf) -> usize;
    /// Waits for every queued operation, returning the first error of one.
    fn synchronize(&self) -> Result<(), OpsError>;

    /// `x <- v`.
    fn fill(&self, x: &mut Self::Buf, v: f32) -> Result<(), OpsError>;
    /// `x <- a x` (rounded product).
    fn scale(&self, x: &mut Self::Buf, a: f32) -> Result<(), OpsError>;
    /// `y <- a x + b y` (two rounded products, a rounded sum), equal lengths.
    fn axpby(&self, y: &mut Self::Buf, a: f32, x: &Self::Buf, b: f32) -> Result<(), OpsError>;
    /// `sum x y` in f64 (products exact; the order of additions is the implementation's).
    fn dot(&self, x: &Self::Buf, y: &Self::Buf) -> Result<f64, OpsError>;
    /// For r in 0..rows: `dst[dst_off + r dst_stride ..][..len] <- src[src_off + r src_stride ..][..len]`.
    fn copy_rows(
        &self,
        rows: usize,
        len: usize,
        src: &Self::Buf,
        src_off: usize,
        src_stride: usize,
        dst: &mut Self::Buf,
        dst_off: usize,
        dst_stride: usize,
    ) -> Result<(), OpsError>;

    /// The SGEMM of [`Gemm`].
    fn gemm(
        &self,
        g: &Gemm,
        a: &Self::Buf,
        b: &Self::Buf,
        c: &mut Self::Buf,
    ) -> Result<(), OpsError>;

    /// im2col of n images [c, h, w] with a k x k window, zero padding k / 2, stride 1:
    /// `col[i][(ci k + ky) k + kx][y w + x] = x[i][ci][y + ky - k/2][x + kx - k/2]` (0 outside).
    fn im2col(
        &self,
        x: &Self::Buf,
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        k: usize,
        col: &mut Self::Buf,
    ) -> Result<(), OpsError>;
    /// The adjoint of [`Ops::im2col`]: `dx <- sum of dcol over the window positions that read
    /// each pixel` (overwrites dx; sums in the order (ci fixed) ky, kx).
    fn col2im(
        &self,
        dcol: &Self::Buf,
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        k: usize,
        dx: &mut Self::Buf,
    ) -> Result<(), OpsError>;

    /// The gated convolution's epilogue on `z` [n, 2 cout, hw] = [conv(x, W); conv(x, G)]:
    /// `out[i][c] = zw * sigmoid(zg) + bias[c]`, with `bias = params[bias_off..][..cout]`; the
    /// gate half of z is replaced by `sigmoid(zg)` (what the backward pass needs).
    fn gated_forward(
        &self,
        z: &mut Self::Buf,
        n: usize,
        cout: usize,
        hw: usize,
        params: &Self::Buf,
        bias_off: usize,
        out: &mut Self::Buf,
    ) -> Result<(), OpsError>;
    /// Backward of the epilogue: `dz = [d sg; d zw sg (1 - sg)]` from `z = [zw; sg]`.
    fn gated_backward(
        &self,
        d_out: &Self::Buf,
        z: &Self::Buf,
        n: usize,
        cout: usize,
        hw: usize,
        dz: &mut Self::Buf,
    ) -> Result<(), OpsError>;

    /// `out[p] = sum_j x[p hw + j]` for p in 0..planes (summed in f64, rounded once).
    fn sum_planes(
        &self,
        x: &Self::Buf,
        planes: usize,
        hw: usize,
        out: &mut Self::Buf,
    ) -> Result<(), OpsError>;
    /// `acc[acc_off + j] += sum_r x[r cols + j]` (the column sums in f64, then one rounded
    /// addition): bias and norm gradients summed over the batch.
    fn add_column_sums(
        &self,
        x: &Self::Buf,
        rows: usize,
        cols: usize,
        acc: &mut Self::Buf,
        acc_off: usize,
    ) -> Result<(), OpsError>;

    /// GroupNorm (eps 1e-5, biased variance, statistics in f64) with the affine
    /// `gamma = params[g_off..][..c]`, `beta = params[b_off..][..c]`, then SiLU if `silu`:
    /// `out = act(xhat gamma + beta)`; keeps `xhat` [n c hw] and `rstd` [n groups].
    fn group_norm_forward(
        &self,
        x: &Self::Buf,
        n: usize,
        c: usize,
        hw: usize,
        groups: usize,
        params: &Self::Buf,
        g_off: usize,
        b_off: usize,
        silu: bool,
        out: &mut Self::Buf,
        xhat: &mut Self::Buf,
        rstd: &mut Self::Buf,
    ) -> Result<(), OpsError>;
    /// Backward of [`Ops::group_norm_forward`]: with `dy = d_out` (times SiLU'(pre) if
    /// `silu`, `pre = xhat gamma + beta`), `dx = rstd (dy gamma - mean(dy gamma) - xhat
    /// mean(dy gamma xhat))` per group; `sums` [n, 2c] gets, per sample, `sum_hw dy xhat` of
    /// each channel, then `sum_hw dy` of each channel (summed in f64, rounded once): the
    /// gamma and beta gradients of that sample, in the parameters' order.
    fn group_norm_backward(
        &self,
        d_out: &Self::Buf,
        xhat: &Self::Buf,
        rstd: &Self::Buf,
        n: usize,
        c: usize,
        hw: usize,
        groups: usize,
        params: &Self::Buf,
        g_off: usize,
        b_off: usize,
        silu: bool,
        dx: &mut Self::Buf,
        sums: &mut Self::Buf,
    ) -> Result<(), OpsError>;

    /// Mean of each 2x2 block of `planes` planes [h, w] (h, w even) into [h/2, w/2].
    fn avg_pool(
        &self,
        x: &Self::Buf,
        planes: usize,
        h: usize,
        w: usize,
        out: &mut Self::Buf,
    ) -> Result<(), OpsError>;
    /// Backward of [`Ops::avg_pool`] ([h, w] are the pooled input's size): `dx = d / 4` on
    /// each block.
    fn avg_pool_backward(
        &self,
        d: &Self::Buf,
        planes: usize,
        h: usize,
        w: usize,
        dx: &mut Self::Buf,
    ) -> Result<(), OpsError>;
    /// Nearest upsampling of planes [h, w] into [2h, 2w].
    fn upsample(
        &self,
        x: &Self::Buf,
        planes: usize,
        h: usize,
        w: usize,
        out: &mut Self::Buf,
    ) -> Result<(), OpsError>;
    /// Backward of [`Ops::upsample`] ([h, w] the small size): `dx` = sum of each 2x2 block,
    /// added in the order (0,0), (0,1), (1,0), (1,1).
    fn upsample_backward(
        &self,
        d: &Self::Buf,
        planes: usize,
        h: usize,
        w: usize,
        dx: &mut Self::Buf,
    ) -> Result<(), OpsError>;

    /// `y[r][j] += params[off + j]` on rows [rows, cols].
    fn add_row_bias(
        &self,
        y: &mut Self::Buf,
        rows: usize,
        cols: usize,
        params: &Self::Buf,
        off: usize,
    ) -> Result<(), OpsError>;
    /// `h[i][c][..] += e[i c]` on [n, c, hw].
    fn add_per_plane(
        &self,
        h: &mut Self::Buf,
        planes: usize,
        hw: usize,
        e: &Self::Buf,
    ) -> Result<(), OpsError>;
    /// `out = x sigmoid(x)`.
    fn silu(&self, x: &Self::Buf, out: &mut Self::Buf) -> Result<(), OpsError>;
    /// `dx = d sigmoid(x) (1 + x (1 - sigmoid(x)))`.
    fn silu_backward(
        &self,
        x: &Self::Buf,
        d: &Self::Buf,
        dx: &mut Self::Buf,
    ) -> Result<(), OpsError>;

    /// The network input `F_in[i] = [c_in[i] y[i], m[i]]` ([n, 2c, hw] from [n, c, hw]).
    fn network_input(
        &self,
        y: &Self::Buf,
        m: &Self::Buf,
        c_in: &Self::Buf,
        n: usize,
        chw: usize,
        f_in: &mut Self::Buf,
    ) -> Result<(), OpsError>;
    /// `D = c_skip[i] m y + ((c_out[i] - sd) m + sd) F` (the core's `precondition_output`).
    fn precondition(
        &self,
        y: &Self::Buf,
        m: &Self::Buf,
        f: &Self::Buf,
        coefs: &SampleCoefs<Self::Buf>,
        sd: f32,
        n: usize,
        chw: usize,
        out: &mut Self::Buf,
    ) -> Result<(), OpsError>;
    /// `dF = ((c_out[i] - sd) m + sd) dD`.
    fn output_scale_mul(
        &self,
        d_d: &Self::Buf,
        m: &Self::Buf,
        coefs: &SampleCoefs<Self::Buf>,
        sd: f32,
        n: usize,
        chw: usize,
        d_f: &mut Self::Buf,
    ) -> Result<(), OpsError>;
    /// The ambient loss's weighted residual: `grad = (inv_s2[i] a~ + a / sd^2) (D - x)` and
    /// `resid = D - x` (the core's `ambient_weight` and `weighted_squared_error` before the
    /// final dot and scale).
    fn weighted_residual(
        &self,
        d: &Self::Buf,
        x: &Self::Buf,
        a: &Self::Buf,
        a_tilde: &Self::Buf,
        coefs: &SampleCoefs<Self::Buf>,
        sd: f32,
        n: usize,
        chw: usize,
        grad: &mut Self::Buf,
        resid: &mut Self::Buf,
    ) -> Result<(), OpsError>;

    /// One Adam step on flat buffers: `g <- clip g`, `m <- b1 m + (1-b1) g`,
    /// `v <- b2 v + (1-b2) g g`, `w <- w - lr (m / bc1) / (sqrt(v / bc2) + eps)`.
    fn adam(
        &self,
        w: &mut Self::Buf,
        g: &mut Self::Buf,
        m: &mut Self::Buf,
        v: &mut Self::Buf,
        h: &AdamStep,
    ) -> Result<(), OpsError>;
}

/// The scalars of one Adam step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    pub clip: f32,
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// `1 - beta1^t`, `1 - beta2^t`.
    pub bc1: f32,
    pub bc2: f32,
}
