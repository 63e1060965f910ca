// SGEMM of the network's convolutions and linear layers (host-cuda/src/ops.rs, `Gemm`):
// row-major C_z = alpha * sum_{b in batches of z} op(A_b) op(B_b) + beta * C_z, with
// op(A_b) [M, K] stored [M, K] or (ta) [K, M], op(B_b) [K, N] stored [K, N] or (tb) [N, K].
// blockIdx.z = z covers the batches [z * chunk, min((z + 1) * chunk, batch)) and writes C at
// C + z * c_stride: chunk = 1 is the plain batched product, chunk = batch (one z) sums the
// whole batch, anything between writes partial sums that sum_slices adds up in order.
//
// Tiling: a 256-thread block computes a BM x BN tile of C, each thread a TM x TN register
// block (rows TM ty + i, columns TN tx + j, so that it reads its values of A and of B for one k
// with 16-byte shared-memory loads), stepping through K in shared-memory tiles of BK = 16.
// Two shapes, one entry point each (the host picks one per product, cuda_ops.rs `gemm_tile`):
// sgemm (64 x 64, 4 x 4 per thread) and sgemm_128x128 (8 x 8).
// The tile changes which thread computes an output, never how: each output is accumulated
// with explicit fused multiply-adds (__fmaf_rn) in the order b, then k = 0..K-1, like RefOps'
// mul_add loop; out-of-range elements load as 0, which adds exactly 0. The epilogue is
// alpha * acc (+ beta * C when beta != 0: C is not read otherwise), two rounded products and a
// rounded sum (the module compiles with --fmad=false).

#define BK 16
#define THREADS 256

typedef long long i64;

template <int BM, int BN, int TM, int TN>
__device__ __forceinline__ void sgemm_tiled(const float *A, const float *B, float *C, int M, int N,
                                            int K, int ta, int tb, float alpha, float beta,
                                            i64 a_stride, i64 b_stride, i64 c_stride, int batch,
                                            int chunk) {
    // Shared rows padded by 4 floats (against bank conflicts on the stores), in float4 units
    // so that every row starts 16-byte aligned.
    __shared__ float4 As4[BK][(BM + 4) / 4];
    __shared__ float4 Bs4[BK][(BN + 4) / 4];
    float (*As)[BM + 4] = reinterpret_cast<float (*)[BM + 4]>(As4);
    float (*Bs)[BN + 4] = reinterpret_cast<float (*)[BN + 4]>(Bs4);
    const int tid = threadIdx.x;
    const int tx = tid % (BN / TN), ty = tid / (BN / TN);
    const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
    const int z = blockIdx.z;
    const int b_begin = z * chunk;
    const int b_end = min(batch, b_begin + chunk);
    float acc[TM][TN];
    for (int i = 0; i < TM; i++)
        for (int j = 0; j < TN; j++)
            acc[i][j] = 0.0f;
    // The (b, k0) tiles in order, t = (b - b_begin) * k_tiles + k0 / BK. The next tile's
    // elements are loaded into registers while this one's products run (software pipelining:
    // the global loads' latency hides behind the arithmetic), then stored to shared memory.
    constexpr int RA = BM * BK / THREADS, RB = BN * BK / THREADS;
    const int k_tiles = (K + BK - 1) / BK;
    const int tiles = max(b_end - b_begin, 0) * k_tiles;
    float ra[RA], rb[RB];
    auto load = [&](int t) {
        const int b = b_begin + t / k_tiles, k0 = (t % k_tiles) * BK;
        const float *Ab = A + b * a_stride;
        const float *Bb = B + b * b_stride;
        // A tile: As[kk][i] = op(A)[row0 + i][k0 + kk], element e = tid + THREADS r.
        for (int r = 0; r < RA; r++) {
            const int e = tid + THREADS * r;
            int i, kk;
            if (ta) { i = e % BM; kk = e / BM; }
            else { kk = e % BK; i = e / BK; }
            int gi = row0 + i, gk = k0 + kk;
            float v = 0.0f;
            if (gi < M && gk < K)
                v = ta ? Ab[(i64)gk * M + gi] : Ab[(i64)gi * K + gk];
            ra[r] = v;
        }
        // B tile: Bs[kk][j] = op(B)[k0 + kk][col0 + j].
        for (int r = 0; r < RB; r++) {
            const int e = tid + THREADS * r;
            int j, kk;
            if (tb) { kk = e % BK; j = e / BK; }
            else { j = e % BN; kk = e / BN; }
            int gj = col0 + j, gk = k0 + kk;
            float v = 0.0f;
            if (gj < N && gk < K)
                v = tb ? Bb[(i64)gj * K + gk] : Bb[(i64)gk * N + gj];
            rb[r] = v;
        }
    };
    if (tiles > 0) load(0);
    for (int t = 0; t < tiles; t++) {
        for (int r = 0; r < RA; r++) {
            const int e = tid + THREADS * r;
            if (ta) As[e / BM][e % BM] = ra[r];
            else As[e % BK][e / BK] = ra[r];
        }
        for (int r = 0; r < RB; r++) {
            const int e = tid + THREADS * r;
            if (tb) Bs[e % BK][e / BK] = rb[r];
            else Bs[e / BN][e % BN] = rb[r];
        }
        __syncthreads();
        if (t + 1 < tiles) load(t + 1);
        for (int kk = 0; kk < BK; kk++) {
            float a[TM], bv[TN];
            for (int q = 0; q < TM / 4; q++) {
                const float4 v = As4[kk][ty * (TM / 4) + q];
                a[4 * q] = v.x; a[4 * q + 1] = v.y; a[4 * q + 2] = v.z; a[4 * q + 3] = v.w;
            }
            for (int q = 0; q < TN / 4; q++) {
                const float4 v = Bs4[kk][tx * (TN / 4) + q];
                bv[4 * q] = v.x; bv[4 * q + 1] = v.y; bv[4 * q + 2] = v.z; bv[4 * q + 3] = v.w;
            }
            for (int i = 0; i < TM; i++)
                for (int j = 0; j < TN; j++)
                    acc[i][j] = __fmaf_rn(a[i], bv[j], acc[i][j]);
        }
        __syncthreads();
    }
    float *Cz = C + z * c_stride;
    for (int i = 0; i < TM; i++) {
        int gi = row0 + TM * ty + i;
        if (gi >= M) continue;
        for (int j = 0; j < TN; j++) {
            int gj = col0 + TN * tx + j;
            if (gj >= N) continue;
            i64 idx = (i64)gi * N + gj;
            float v = alpha * acc[i][j];
            if (beta != 0.0f) v = v + beta * Cz[idx];
            Cz[idx] = v;
        }
    }
}

#define SGEMM_ARGS                                                                          \
    const float *A, const float *B, float *C, int M, int N, int K, int ta, int tb,         \
        float alpha, float beta, i64 a_stride, i64 b_stride, i64 c_stride, int batch, int chunk
#define SGEMM_PASS A, B, C, M, N, K, ta, tb, alpha, beta, a_stride, b_stride, c_stride, batch, chunk

extern "C" __global__ void sgemm(SGEMM_ARGS) { sgemm_tiled<64, 64, 4, 4>(SGEMM_PASS); }
extern "C" __global__ void sgemm_128x128(SGEMM_ARGS) { sgemm_tiled<128, 128, 8, 8>(SGEMM_PASS); }

// C[i] = alpha * (sum over s = 0..slices-1 of P[s * len + i], in order) + beta * C[i]
// (C not read when beta == 0): the second stage of a split batch sum.
extern "C" __global__ void sum_slices(const float *P, int slices, i64 len, float *C, float alpha,
                                      float beta) {
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < len; i += (i64)gridDim.x * blockDim.x) {
        float s = 0.0f;
        for (int k = 0; k < slices; k++) s = s + P[k * len + i];
        float v = alpha * s;
        if (beta != 0.0f) v = v + beta * C[i];
        C[i] = v;
    }
}
