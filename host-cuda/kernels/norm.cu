// GroupNorm (eps 1e-5, biased variance) fused with SiLU, forward and backward (formulas in
// host-cuda/src/ops.rs; RefOps is the reference). One 256-thread block per (sample, group);
// its statistics are summed in f64, each thread over a strided slice, then in a fixed tree,
// so results are deterministic and agree with RefOps' serial f64 sums to rounding.

typedef unsigned long long u64;
#define NORM_THREADS 256
#define GN_EPS 1e-5

__device__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

// Sums s[0..NORM_THREADS) into s[0] in a fixed tree; all threads see the result after it.
__device__ double tree_sum(double *s, double v) {
    s[threadIdx.x] = v;
    for (unsigned stride = NORM_THREADS / 2; stride > 0; stride >>= 1) {
        __syncthreads();
        if (threadIdx.x < stride) s[threadIdx.x] = s[threadIdx.x] + s[threadIdx.x + stride];
    }
    __syncthreads();
    double r = s[0];
    __syncthreads();
    return r;
}

extern "C" __global__ void group_norm_forward(const float *x, u64 c, u64 hw, u64 groups,
                                              const float *gamma, const float *beta, int silu,
                                              float *out, float *xhat, float *rstd) {
    __shared__ double s[NORM_THREADS];
    u64 gi = blockIdx.x, cpg = c / groups, glen = cpg * hw;
    const float *src = x + gi * glen;
    double acc = 0.0;
    for (u64 j = threadIdx.x; j < glen; j += NORM_THREADS) acc += (double)src[j];
    float m = (float)(tree_sum(s, acc) / (double)glen);
    acc = 0.0;
    for (u64 j = threadIdx.x; j < glen; j += NORM_THREADS) {
        double d = (double)(src[j] - m);
        acc += d * d;
    }
    double var = tree_sum(s, acc) / (double)glen;
    float r = (float)(1.0 / sqrt(var + GN_EPS));
    if (threadIdx.x == 0) rstd[gi] = r;
    u64 c0 = (gi % groups) * cpg;
    for (u64 j = threadIdx.x; j < glen; j += NORM_THREADS) {
        u64 ch = c0 + j / hw;
        float v = (src[j] - m) * r;
        xhat[gi * glen + j] = v;
        float pre = v * gamma[ch] + beta[ch];
        out[gi * glen + j] = silu ? pre * sigmoidf_(pre) : pre;
    }
}

// dy = d_out (* SiLU'(pre)); per channel of the group: a = sum dy, b = sum dy xhat (f64),
// stored in sums[i][2c] as (b at ch, a at c + ch); dx = rstd (dy gamma - mean(dy gamma) -
// xhat mean(dy gamma xhat)). dx holds dy between the two passes.
extern "C" __global__ void group_norm_backward(const float *d_out, const float *xhat, const float *rstd,
                                               u64 c, u64 hw, u64 groups, const float *gamma,
                                               const float *beta, int silu, float *dx, float *sums) {
    __shared__ double s[NORM_THREADS];
    u64 gi = blockIdx.x, cpg = c / groups, glen = cpg * hw;
    u64 c0 = (gi % groups) * cpg, i = gi / groups;
    const float *dg = d_out + gi * glen;
    const float *xg = xhat + gi * glen;
    float *dxg = dx + gi * glen;
    for (u64 j = threadIdx.x; j < glen; j += NORM_THREADS) {
        float d = dg[j];
        if (silu) {
            u64 ch = c0 + j / hw;
            float pre = xg[j] * gamma[ch] + beta[ch];
            float sg = sigmoidf_(pre);
            d = d * sg * (1.0f + pre * (1.0f - sg));
        }
        dxg[j] = d;
    }
    __syncthreads();
    double sg_tot = 0.0, sgx_tot = 0.0;
    for (u64 cc = 0; cc < cpg; cc++) {
        double a = 0.0, b = 0.0;
        for (u64 j = threadIdx.x; j < hw; j += NORM_THREADS) {
            float d = dxg[cc * hw + j];
            a += (double)d;
            b += (double)d * (double)xg[cc * hw + j];
        }
        a = tree_sum(s, a);
        b = tree_sum(s, b);
        if (threadIdx.x == 0) {
            sums[i * 2 * c + c0 + cc] = (float)b;
            sums[i * 2 * c + c + c0 + cc] = (float)a;
        }
        double gm = (double)gamma[c0 + cc];
        sg_tot += a * gm;
        sgx_tot += b * gm;
    }
    float mg = (float)(sg_tot / (double)glen), mgx = (float)(sgx_tot / (double)glen);
    float rs = rstd[gi];
    for (u64 j = threadIdx.x; j < glen; j += NORM_THREADS) {
        float gm = gamma[c0 + j / hw];
        dxg[j] = rs * (dxg[j] * gm - mg - xg[j] * mgx);
    }
}
