// The network's small kernels (formulas in host-cuda/src/ops.rs; RefOps is the reference):
// strided row copies (concat / split), per-plane and per-column sums, 2x2 average pooling and
// nearest upsampling with their adjoints, bias and embedding additions, SiLU. Grid-stride
// loops, one thread per output element; --fmad=false, so the arithmetic rounds as RefOps'
// (sums in the same order), except expf in SiLU.

typedef unsigned long long u64;

#define GRID_LOOP(i, n) for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < (n); i += (u64)gridDim.x * blockDim.x)

__device__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

extern "C" __global__ void copy_rows(u64 rows, u64 len, const float *src, u64 src_stride, float *dst, u64 dst_stride) {
    GRID_LOOP(t, rows * len) {
        u64 r = t / len, j = t % len;
        dst[r * dst_stride + j] = src[r * src_stride + j];
    }
}

// out[p] = sum_j x[p hw + j] in f64, in order.
extern "C" __global__ void sum_planes(const float *x, u64 planes, u64 hw, float *out) {
    GRID_LOOP(p, planes) {
        double s = 0.0;
        for (u64 j = 0; j < hw; j++) s += (double)x[p * hw + j];
        out[p] = (float)s;
    }
}

// acc[j] += sum_r x[r cols + j] (f64, in order of r).
extern "C" __global__ void add_column_sums(const float *x, u64 rows, u64 cols, float *acc) {
    GRID_LOOP(j, cols) {
        double s = 0.0;
        for (u64 r = 0; r < rows; r++) s += (double)x[r * cols + j];
        acc[j] = acc[j] + (float)s;
    }
}

extern "C" __global__ void avg_pool(const float *x, u64 planes, u64 h, u64 w, float *out) {
    u64 ho = h / 2, wo = w / 2;
    GRID_LOOP(t, planes * ho * wo) {
        u64 xx = t % wo, y = (t / wo) % ho, p = t / (ho * wo);
        const float *q = x + p * h * w + 2 * y * w + 2 * xx;
        out[t] = 0.25f * (((q[0] + q[1]) + q[w]) + q[w + 1]);
    }
}

// [h, w] is the pooled input's size.
extern "C" __global__ void avg_pool_backward(const float *d, u64 planes, u64 h, u64 w, float *dx) {
    u64 ho = h / 2, wo = w / 2;
    GRID_LOOP(t, planes * h * w) {
        u64 xx = t % w, y = (t / w) % h, p = t / (h * w);
        dx[t] = 0.25f * d[p * ho * wo + (y / 2) * wo + xx / 2];
    }
}

// [h, w] is the small size.
extern "C" __global__ void upsample(const float *x, u64 planes, u64 h, u64 w, float *out) {
    u64 ho = 2 * h, wo = 2 * w;
    GRID_LOOP(t, planes * ho * wo) {
        u64 xx = t % wo, y = (t / wo) % ho, p = t / (ho * wo);
        out[t] = x[p * h * w + (y / 2) * w + xx / 2];
    }
}

extern "C" __global__ void upsample_backward(const float *d, u64 planes, u64 h, u64 w, float *dx) {
    u64 wo = 2 * w;
    GRID_LOOP(t, planes * h * w) {
        u64 xx = t % w, y = (t / w) % h, p = t / (h * w);
        const float *q = d + p * 4 * h * w + 2 * y * wo + 2 * xx;
        dx[t] = ((q[0] + q[1]) + q[wo]) + q[wo + 1];
    }
}

extern "C" __global__ void add_row_bias(float *y, u64 rows, u64 cols, const float *bias) {
    GRID_LOOP(t, rows * cols) y[t] = y[t] + bias[t % cols];
}

extern "C" __global__ void add_per_plane(float *h, u64 planes, u64 hw, const float *e) {
    GRID_LOOP(t, planes * hw) h[t] = h[t] + e[t / hw];
}

extern "C" __global__ void silu(const float *x, u64 n, float *out) {
    GRID_LOOP(t, n) {
        float v = x[t];
        out[t] = v * sigmoidf_(v);
    }
}

extern "C" __global__ void silu_backward(const float *x, const float *d, u64 n, float *dx) {
    GRID_LOOP(t, n) {
        float v = x[t], s = sigmoidf_(v);
        dx[t] = d[t] * s * (1.0f + v * (1.0f - s));
    }
}
