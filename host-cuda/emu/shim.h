// The CUDA C dialect of host-cuda/kernels/*.cu as plain C++ for the CPU emulator: each .cu is
// compiled unchanged with this header in front (generated module files, gen_kernels.py).
//
// - threadIdx, blockIdx, blockDim, gridDim: per OS thread variables that the block scheduler
//   (exec.cpp) sets before it runs (or resumes) each CUDA thread;
// - __shared__: per OS thread storage; the blocks of a launch run one after another on the
//   launching thread, so all CUDA threads of a block see the same array, which emu_shared
//   fills with NaN bytes at the start of each block;
// - __syncthreads: a yield to the block scheduler (exec.cpp), which resumes the block's threads
//   once every live one has reached it;
// - math: the IEEE-754 operations the kernels name. The emulator is compiled with
//   -ffp-contract=off and without -ffast-math, so a * b + c rounds twice as under NVRTC's
//   --fmad=false, and __fmaf_rn is a true fused multiply-add. expf is the C library's
//   (CUDA's is within 2 ulp of the exact value, so the two may differ in the last bits).
#pragma once

#include <cmath>
#include <cstdint>

// CUDA's float4 (16-byte aligned, as the kernels' 16-byte shared-memory loads assume).
struct __attribute__((aligned(16))) float4 {
    float x, y, z, w;
};
struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
};

extern __thread uint3 emu_threadIdx __attribute__((tls_model("initial-exec")));
extern __thread uint3 emu_blockIdx __attribute__((tls_model("initial-exec")));
extern __thread dim3 emu_blockDim __attribute__((tls_model("initial-exec")));
extern __thread dim3 emu_gridDim __attribute__((tls_model("initial-exec")));

#define threadIdx emu_threadIdx
#define blockIdx emu_blockIdx
#define blockDim emu_blockDim
#define gridDim emu_gridDim

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict
#define __shared__ static __thread __attribute__((tls_model("initial-exec")))

// Waits until every live thread of the block has reached a __syncthreads (exec.cpp). Never
// inlined: the kernel must reload every variable after it, as after any opaque call.
void __syncthreads() __attribute__((noinline));

// Called after each __shared__ declaration (gen_kernels.py): fills the array with 0xFF bytes
// (NaN) the first time a thread of the running block reaches it.
void emu_shared(void *array, unsigned long bytes);

// Round-to-nearest intrinsics: single IEEE operations (no contraction: -ffp-contract=off).
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fmaf_rn(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dsub_rn(double a, double b) { return a - b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __ddiv_rn(double a, double b) { return a / b; }
static inline double __fma_rn(double a, double b, double c) { return __builtin_fma(a, b, c); }
// __expf: glibc declares it (its expf).
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }

// CUDA's min / max overloads (device functions in the global namespace).
#define EMU_MINMAX(T)                                      \
    static inline T min(T a, T b) { return a < b ? a : b; } \
    static inline T max(T a, T b) { return a > b ? a : b; }
EMU_MINMAX(int)
EMU_MINMAX(unsigned int)
EMU_MINMAX(long long)
EMU_MINMAX(unsigned long long)
#undef EMU_MINMAX
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }
