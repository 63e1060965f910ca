// Element-wise kernels behind CudaTensor (host-cuda/src/tensor.rs): the operations of
// ambient_core::tensor::Tensor on f32 device buffers of n elements.
//
// Every f32 operation is written with the round-to-nearest intrinsics (__fmul_rn, __fadd_rn),
// which the compiler never contracts into a fused multiply-add: each result is then the same
// correctly rounded IEEE-754 value that the CPU's SliceTensor computes, bit for bit.
//
// dot is a deterministic two-stage reduction accumulated in f64: stage 1 (dot_partial) runs a
// fixed number of blocks, each thread summing a grid-stride slice and each block reducing its
// threads in a fixed tree into one partial; stage 2 (sum_partials) reduces the partials in one
// block with the same tree. The order of additions depends only on n and the launch shape
// (DOT_THREADS, the block count the host picks from n), never on scheduling, so the same input
// gives the same sum on every run. Products of two f32 are exact in f64.
//
// Launch shape: 1-D blocks, any grid for the element-wise kernels (grid-stride loops);
// dot_partial and sum_partials need blockDim.x == DOT_THREADS.

#define DOT_THREADS 256

typedef unsigned long long u64;

extern "C" __global__ void fill(float *x, float v, u64 n) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        x[i] = v;
}

extern "C" __global__ void copy(float *dst, const float *src, u64 n) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        dst[i] = src[i];
}

extern "C" __global__ void scale(float *x, float a, u64 n) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        x[i] = __fmul_rn(x[i], a);
}

// x[s * sample_len + j] *= a[s]; n is a multiple of sample_len (sample_len > 0).
extern "C" __global__ void scale_per_sample(float *x, const float *a, u64 sample_len, u64 n) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        x[i] = __fmul_rn(x[i], a[i / sample_len]);
}

extern "C" __global__ void add_scalar(float *x, float a, u64 n) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        x[i] = __fadd_rn(x[i], a);
}

// y <- a * x + b * y, as SliceTensor::axpby: two rounded products, then a rounded sum.
extern "C" __global__ void axpby(float *y, const float *x, float a, float b, u64 n) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        y[i] = __fadd_rn(__fmul_rn(a, x[i]), __fmul_rn(b, y[i]));
}

extern "C" __global__ void mul(float *y, const float *x, u64 n) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        y[i] = __fmul_rn(y[i], x[i]);
}

// Sums the DOT_THREADS values of `s` into s[0] along a fixed binary tree.
__device__ void block_tree_sum(double *s) {
    for (unsigned stride = DOT_THREADS / 2; stride > 0; stride >>= 1) {
        __syncthreads();
        if (threadIdx.x < stride)
            s[threadIdx.x] = __dadd_rn(s[threadIdx.x], s[threadIdx.x + stride]);
    }
    __syncthreads();
}

// partials[blockIdx.x] <- sum over this block's grid-stride slice of x[i] * y[i], in f64.
extern "C" __global__ void dot_partial(const float *x, const float *y, u64 n, double *partials) {
    __shared__ double s[DOT_THREADS];
    double acc = 0.0;
    for (u64 i = blockIdx.x * (u64)DOT_THREADS + threadIdx.x; i < n; i += (u64)gridDim.x * DOT_THREADS)
        acc = __dadd_rn(acc, __dmul_rn((double)x[i], (double)y[i]));
    s[threadIdx.x] = acc;
    block_tree_sum(s);
    if (threadIdx.x == 0)
        partials[blockIdx.x] = s[0];
}

// out[0] <- sum of partials[0..count], launched as one block.
extern "C" __global__ void sum_partials(const double *partials, u64 count, double *out) {
    __shared__ double s[DOT_THREADS];
    double acc = 0.0;
    for (u64 i = threadIdx.x; i < count; i += DOT_THREADS)
        acc = __dadd_rn(acc, partials[i]);
    s[threadIdx.x] = acc;
    block_tree_sum(s);
    if (threadIdx.x == 0)
        out[0] = s[0];
}
