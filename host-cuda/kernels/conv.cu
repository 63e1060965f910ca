// The gated convolution's kernels besides the SGEMM (host-cuda/src/ops.rs states each
// formula; RefOps is the reference): im2col and its adjoint col2im (k x k window, zero padding
// k / 2, stride 1), and the epilogue out = zw * sigmoid(zg) + bias with its backward pass.
// One thread per output element, grid-stride loops; compiled with --fmad=false, so the
// arithmetic rounds as RefOps' does except sigmoid's expf (CUDA's, within 2 ulp).

typedef unsigned long long u64;

#define GRID_LOOP(i, n) for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < (n); i += (u64)gridDim.x * blockDim.x)

__device__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

// col[i][(ci k + ky) k + kx][y w + x] = x[i][ci][y + ky - k/2][x + kx - k/2] (0 outside).
extern "C" __global__ void im2col(const float *x, u64 n, u64 c, u64 h, u64 w, u64 k, float *col) {
    u64 hw = h * w, kk2 = k * k, total = n * c * kk2 * hw;
    long long p = k / 2;
    GRID_LOOP(t, total) {
        u64 pix = t % hw, row = (t / hw) % (c * kk2), i = t / (hw * c * kk2);
        u64 ci = row / kk2, ky = (row / k) % k, kx = row % k;
        long long y = pix / w, xx = pix % w;
        long long sy = y + (long long)ky - p, sx = xx + (long long)kx - p;
        float v = 0.0f;
        if (sy >= 0 && sy < (long long)h && sx >= 0 && sx < (long long)w)
            v = x[(i * c + ci) * hw + sy * w + sx];
        col[t] = v;
    }
}

// dx[i][ci][sy][sx] = sum over (ky, kx) in order of dcol[i][(ci k + ky) k + kx][y][x] with
// (y, x) = (sy - ky + k/2, sx - kx + k/2) inside the image.
extern "C" __global__ void col2im(const float *dcol, u64 n, u64 c, u64 h, u64 w, u64 k, float *dx) {
    u64 hw = h * w, kk2 = k * k, total = n * c * hw;
    long long p = k / 2;
    GRID_LOOP(t, total) {
        u64 pix = t % hw, ci = (t / hw) % c, i = t / (hw * c);
        long long sy = pix / w, sx = pix % w;
        float acc = 0.0f;
        for (u64 ky = 0; ky < k; ky++)
            for (u64 kx = 0; kx < k; kx++) {
                long long y = sy - (long long)ky + p, xx = sx - (long long)kx + p;
                if (y >= 0 && y < (long long)h && xx >= 0 && xx < (long long)w) {
                    u64 row = (ci * k + ky) * k + kx;
                    acc = acc + dcol[(i * c * kk2 + row) * hw + y * w + xx];
                }
            }
        dx[t] = acc;
    }
}

// out[i][c] = zw * sigmoid(zg) + bias[c] on z = [zw; zg] ([n, 2 cout, hw]); zg <- sigmoid(zg).
extern "C" __global__ void gated_forward(float *z, u64 n, u64 cout, u64 hw, const float *bias, float *out) {
    GRID_LOOP(t, n * cout * hw) {
        u64 j = t % hw, c = (t / hw) % cout, i = t / (hw * cout);
        u64 wi = (i * 2 * cout + c) * hw + j, gi = wi + cout * hw;
        float sg = sigmoidf_(z[gi]);
        z[gi] = sg;
        out[t] = z[wi] * sg + bias[c];
    }
}

// dz = [d sg; d zw sg (1 - sg)] from z = [zw; sg].
extern "C" __global__ void gated_backward(const float *d_out, const float *z, u64 n, u64 cout, u64 hw, float *dz) {
    GRID_LOOP(t, n * cout * hw) {
        u64 j = t % hw, c = (t / hw) % cout, i = t / (hw * cout);
        u64 wi = (i * 2 * cout + c) * hw + j, gi = wi + cout * hw;
        float d = d_out[t], zw = z[wi], sg = z[gi];
        dz[wi] = d * sg;
        dz[gi] = d * zw * sg * (1.0f - sg);
    }
}
