// The gated convolution's kernels besides the SGEMM (host-cuda/src/ops.rs states each
// formula; RefOps is the reference): im2col and its adjoint col2im (k x k window, zero padding
// k / 2, stride 1), and the epilogue out = zw * sigmoid(zg) + bias with its backward pass.
// Grid-stride loops, one thread per output element (im2col: per input element); compiled with
// --fmad=false, so the arithmetic rounds as RefOps' does except sigmoid's expf (CUDA's, within
// 2 ulp). Indices are 32-bit (a 64-bit division costs tens of instructions): the host
// launches each kernel on runs of whole images of fewer than 2^31 elements (`image_runs`).

#define GRID_LOOP32(i, n) for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += gridDim.x * blockDim.x)

__device__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

// col[i][(ci k + ky) k + kx][y w + x] = x[i][ci][y + ky - k/2][x + kx - k/2] (0 outside).
// One thread per input plane element (plane = i c + ci, pixel y w + x) writes its k k column
// entries, so consecutive threads write consecutive addresses.
extern "C" __global__ void im2col(const float *x, unsigned planes, unsigned h, unsigned w, unsigned k, float *col) {
    unsigned hw = h * w, kk2 = k * k;
    int p = k / 2;
    GRID_LOOP32(t, planes * hw) {
        unsigned plane = t / hw, pix = t - plane * hw;
        int y = pix / w, xx = pix - y * w;
        const float *xp = x + plane * hw;
        float *cp = col + plane * kk2 * hw + pix;
        for (unsigned ky = 0; ky < k; ky++) {
            int sy = y + (int)ky - p;
            bool row_in = sy >= 0 && sy < (int)h;
            for (unsigned kx = 0; kx < k; kx++) {
                int sx = xx + (int)kx - p;
                float v = 0.0f;
                if (row_in && sx >= 0 && sx < (int)w)
                    v = xp[sy * (int)w + sx];
                cp[(ky * k + kx) * hw] = v;
            }
        }
    }
}

// dx[i][ci][sy][sx] = sum over (ky, kx) in order of dcol[i][(ci k + ky) k + kx][y][x] with
// (y, x) = (sy - ky + k/2, sx - kx + k/2) inside the image.
extern "C" __global__ void col2im(const float *dcol, unsigned planes, unsigned h, unsigned w, unsigned k, float *dx) {
    unsigned hw = h * w, kk2 = k * k;
    int p = k / 2;
    GRID_LOOP32(t, planes * hw) {
        unsigned plane = t / hw, pix = t - plane * hw;
        int sy = pix / w, sx = pix - sy * w;
        const float *cp = dcol + plane * kk2 * hw;
        float acc = 0.0f;
        for (unsigned ky = 0; ky < k; ky++)
            for (unsigned kx = 0; kx < k; kx++) {
                int y = sy - (int)ky + p, xx = sx - (int)kx + p;
                if (y >= 0 && y < (int)h && xx >= 0 && xx < (int)w)
                    acc = acc + cp[(ky * k + kx) * hw + y * (int)w + xx];
            }
        dx[t] = acc;
    }
}

// out[i][c] = zw * sigmoid(zg) + bias[c] on z = [zw; zg] ([n, 2 cout, hw]); zg <- sigmoid(zg).
extern "C" __global__ void gated_forward(float *z, unsigned n, unsigned cout, unsigned hw, const float *bias, float *out) {
    GRID_LOOP32(t, n * cout * hw) {
        unsigned plane = t / hw, j = t - plane * hw, i = plane / cout, c = plane - i * cout;
        unsigned wi = (i * 2 * cout + c) * hw + j, gi = wi + cout * hw;
        float sg = sigmoidf_(z[gi]);
        z[gi] = sg;
        out[t] = z[wi] * sg + bias[c];
    }
}

// dz = [d sg; d zw sg (1 - sg)] from z = [zw; sg].
extern "C" __global__ void gated_backward(const float *d_out, const float *z, unsigned n, unsigned cout, unsigned hw, float *dz) {
    GRID_LOOP32(t, n * cout * hw) {
        unsigned plane = t / hw, j = t - plane * hw, i = plane / cout, c = plane - i * cout;
        unsigned wi = (i * 2 * cout + c) * hw + j, gi = wi + cout * hw;
        float d = d_out[t], zw = z[wi], sg = z[gi];
        dz[wi] = d * sg;
        dz[gi] = d * zw * sg * (1.0f - sg);
    }
}
