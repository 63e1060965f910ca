// SGEMM of the network's convolutions and linear layers (host-cuda/src/ops.rs, `Gemm`):
// row-major C_z = alpha * sum_{b in batches of z} op(A_b) op(B_b) + beta * C_z, with
// op(A_b) [M, K] stored [M, K] or (ta) [K, M], op(B_b) [K, N] stored [K, N] or (tb) [N, K].
// blockIdx.z = z covers the batches [z * chunk, min((z + 1) * chunk, batch)) and writes C at
// C + z * c_stride: chunk = 1 is the plain batched product, chunk = batch (one z) sums the
// whole batch, anything between writes partial sums that sum_slices adds up in order.
//
// Tiling: a 256-thread block computes a 64 x 64 tile of C, each thread a 4 x 4 register block
// (rows ty + 16 i, columns tx + 16 j), stepping through K in shared-memory tiles of 16. Each
// output is accumulated with explicit fused multiply-adds (__fmaf_rn) in the order b, then
// k = 0..K-1, like RefOps' mul_add loop; out-of-range elements load as 0, which adds exactly 0.
// The epilogue is alpha * acc (+ beta * C when beta != 0: C is not read otherwise), two
// rounded products and a rounded sum (the module compiles with --fmad=false).

#define BM 64
#define BN 64
#define BK 16

typedef long long i64;

extern "C" __global__ void sgemm(const float *A, const float *B, float *C, int M, int N, int K,
                                 int ta, int tb, float alpha, float beta, i64 a_stride,
                                 i64 b_stride, i64 c_stride, int batch, int chunk) {
    __shared__ float As[BK][BM + 4];
    __shared__ float Bs[BK][BN + 4];
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
    const int z = blockIdx.z;
    const int b_begin = z * chunk;
    const int b_end = min(batch, b_begin + chunk);
    float acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            acc[i][j] = 0.0f;
    for (int b = b_begin; b < b_end; b++) {
        const float *Ab = A + b * a_stride;
        const float *Bb = B + b * b_stride;
        for (int k0 = 0; k0 < K; k0 += BK) {
            // A tile: As[kk][i] = op(A)[row0 + i][k0 + kk].
            for (int r = 0; r < 4; r++) {
                int i, kk;
                if (ta) { i = tid % 64; kk = tid / 64 + 4 * r; }
                else { kk = tid % 16; i = tid / 16 + 16 * r; }
                int gi = row0 + i, gk = k0 + kk;
                float v = 0.0f;
                if (gi < M && gk < K)
                    v = ta ? Ab[(i64)gk * M + gi] : Ab[(i64)gi * K + gk];
                As[kk][i] = v;
            }
            // B tile: Bs[kk][j] = op(B)[k0 + kk][col0 + j].
            for (int r = 0; r < 4; r++) {
                int j, kk;
                if (tb) { kk = tid % 16; j = tid / 16 + 16 * r; }
                else { j = tid % 64; kk = tid / 64 + 4 * r; }
                int gj = col0 + j, gk = k0 + kk;
                float v = 0.0f;
                if (gj < N && gk < K)
                    v = tb ? Bb[(i64)gj * K + gk] : Bb[(i64)gk * N + gj];
                Bs[kk][j] = v;
            }
            __syncthreads();
            for (int kk = 0; kk < BK; kk++) {
                float a[4], bv[4];
                for (int i = 0; i < 4; i++) a[i] = As[kk][ty + 16 * i];
                for (int j = 0; j < 4; j++) bv[j] = Bs[kk][tx + 16 * j];
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++)
                        acc[i][j] = __fmaf_rn(a[i], bv[j], acc[i][j]);
            }
            __syncthreads();
        }
    }
    float *Cz = C + z * c_stride;
    for (int i = 0; i < 4; i++) {
        int gi = row0 + ty + 16 * i;
        if (gi >= M) continue;
        for (int j = 0; j < 4; j++) {
            int gj = col0 + tx + 16 * j;
            if (gj >= N) continue;
            i64 idx = (i64)gi * N + gj;
            float v = alpha * acc[i][j];
            if (beta != 0.0f) v = v + beta * Cz[idx];
            Cz[idx] = v;
        }
    }
}

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
