// The denoiser's preconditioning, the ambient loss's weighted residual and Adam (formulas in
// host-cuda/src/ops.rs; RefOps is the reference, and it writes each formula in the order of
// the core's Tensor operations, so that these agree with the CPU trainer bit for bit).
// Per-sample coefficients come as arrays of n values computed on the host with the core's
// functions. --fmad=false: every product and sum is rounded separately.

typedef unsigned long long u64;

#define GRID_LOOP(i, n) for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < (n); i += (u64)gridDim.x * blockDim.x)

// F_in[i] = [c_in[i] y[i], m[i]].
extern "C" __global__ void network_input(const float *y, const float *m, const float *c_in, u64 n, u64 chw, float *f_in) {
    GRID_LOOP(t, n * chw) {
        u64 i = t / chw, j = t % chw;
        f_in[2 * i * chw + j] = c_in[i] * y[t];
        f_in[(2 * i + 1) * chw + j] = m[t];
    }
}

// D = 1 ((y m) c_skip) + 1 ((m (c_out - sd) + sd) F).
extern "C" __global__ void precondition(const float *y, const float *m, const float *f, const float *c_skip,
                                        const float *c_out, float sd, u64 n, u64 chw, float *out) {
    GRID_LOOP(t, n * chw) {
        u64 i = t / chw;
        float scale = m[t] * (c_out[i] - sd) + sd;
        out[t] = 1.0f * ((y[t] * m[t]) * c_skip[i]) + 1.0f * (scale * f[t]);
    }
}

// dF = (m (c_out - sd) + sd) dD.
extern "C" __global__ void output_scale_mul(const float *d_d, const float *m, const float *c_out, float sd,
                                            u64 n, u64 chw, float *d_f) {
    GRID_LOOP(t, n * chw) {
        u64 i = t / chw;
        d_f[t] = (m[t] * (c_out[i] - sd) + sd) * d_d[t];
    }
}

// w = (1/sd^2) a + 1 (a~ inv_s2); r = (-1) x + 1 D; resid = r, grad = w r.
extern "C" __global__ void weighted_residual(const float *d, const float *x, const float *a, const float *at,
                                             const float *inv_s2, float inv_sd2, u64 n, u64 chw,
                                             float *grad, float *resid) {
    GRID_LOOP(t, n * chw) {
        u64 i = t / chw;
        float w = inv_sd2 * a[t] + 1.0f * (at[t] * inv_s2[i]);
        float r = -x[t] + 1.0f * d[t];
        resid[t] = r;
        grad[t] = w * r;
    }
}

extern "C" __global__ void adam(float *w, float *g, float *m, float *v, u64 n, float clip, float lr, float b1,
                                float b2, float eps, float bc1, float bc2) {
    GRID_LOOP(t, n) {
        float gt = g[t];
        if (clip != 1.0f) {
            gt = gt * clip;
            g[t] = gt;
        }
        float mt = b1 * m[t] + (1.0f - b1) * gt;
        float vt = b2 * v[t] + (1.0f - b2) * gt * gt;
        m[t] = mt;
        v[t] = vt;
        w[t] = w[t] - lr * (mt / bc1) / (sqrtf(vt / bc2) + eps);
    }
}
