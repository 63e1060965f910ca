// Kernels of the CPU emulator's own test (selftest.cpp), not of ambient: a barrier used
// correctly and the same kernel without it, shared memory read before it is written, a
// divergent barrier, and accesses out of bounds. Launched with one block of N threads.

#define N 64

// out[t] = in[(t + 1) % N] through shared memory, with the barrier between writes and reads.
extern "C" __global__ void rotate_with_barrier(const float *in, float *out) {
    __shared__ float s[N];
    s[threadIdx.x] = in[threadIdx.x];
    __syncthreads();
    out[threadIdx.x] = s[(threadIdx.x + 1) % N];
}

// The same without the barrier: a data race, which the emulator must expose.
extern "C" __global__ void rotate_without_barrier(const float *in, float *out) {
    __shared__ float s[N];
    s[threadIdx.x] = in[threadIdx.x];
    out[threadIdx.x] = s[(threadIdx.x + 1) % N];
}

// out[block][t] = s[t], never written.
extern "C" __global__ void read_unwritten_shared(float *out) {
    __shared__ float s[N];
    out[blockIdx.x * blockDim.x + threadIdx.x] = s[threadIdx.x];
}

// Thread 0 returns while the others wait at the barrier.
extern "C" __global__ void divergent_barrier(float *out) {
    if (threadIdx.x == 0) return;
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}

// x[i] = 1 for i < n.
extern "C" __global__ void write_n(float *x, int n) {
    for (int i = threadIdx.x; i < n; i += blockDim.x) x[i] = 1.0f;
}

// out[0] = x[i].
extern "C" __global__ void read_at(const float *x, long long i, float *out) {
    if (threadIdx.x == 0) out[0] = x[i];
}
