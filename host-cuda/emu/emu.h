// The CPU emulator's internal interfaces: the registry of host-compiled kernels (filled by the
// generated module files, gen_kernels.py), the block scheduler (exec.cpp), device memory
// (memory.cpp) and fatal error reports.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "shim.h"

namespace emu {

// Runs one CUDA thread of a launch: the kernel on its unpacked arguments.
using Thunk = void (*)(const void *fn, const void *args);
// Unpacks cuLaunchKernel's kernelParams into a buffer that the thunk reads.
using Unpack = void (*)(void **params, void *args);

// A kernel compiled for the host, bound by name to the PTX entry of the same name.
struct Kernel {
    std::string module;  // the .cu file's stem
    std::string name;
    const void *fn;
    std::vector<size_t> param_sizes;
    std::vector<bool> param_is_pointer;
    size_t args_size;  // bytes of the unpacked argument tuple
    bool uses_barrier;  // some path of the kernel reaches __syncthreads (gen_kernels.py)
    Unpack unpack;
    Thunk thunk;
};

void add_kernel(Kernel k);
const Kernel *find_kernel(const std::string &name);
const std::vector<Kernel> &all_kernels();

template <class... A>
struct Launcher {
    using Args = std::tuple<std::decay_t<A>...>;
    template <size_t... I>
    static void unpack_(void **params, void *out, std::index_sequence<I...>) {
        Args *args = new (out) Args();
        // memcpy: kernelParams[i] points to an argument of the kernel's type, maybe unaligned.
        (std::memcpy(&std::get<I>(*args), params[I], sizeof(std::get<I>(*args))), ...);
    }
    static void unpack(void **params, void *out) {
        unpack_(params, out, std::index_sequence_for<A...>{});
    }
    static void thunk(const void *fn, const void *args) {
        auto f = reinterpret_cast<void (*)(A...)>(const_cast<void *>(fn));
        std::apply(f, *static_cast<const Args *>(args));
    }
};

// Registers `f` (called by the generated module files).
template <class... A>
void register_kernel(const char *module, const char *name, void (*f)(A...), bool uses_barrier) {
    static_assert((std::is_trivially_copyable_v<std::decay_t<A>> && ...),
                  "kernel arguments must be trivially copyable");
    Kernel k;
    k.module = module;
    k.name = name;
    k.fn = reinterpret_cast<const void *>(f);
    k.param_sizes = {sizeof(std::decay_t<A>)...};
    k.param_is_pointer = {std::is_pointer_v<std::decay_t<A>>...};
    k.args_size = sizeof(typename Launcher<A...>::Args);
    k.uses_barrier = uses_barrier;
    k.unpack = &Launcher<A...>::unpack;
    k.thunk = &Launcher<A...>::thunk;
    add_kernel(std::move(k));
}

// Every kernel of every module (generated: modules_gen.cpp).
void register_all_kernels();

// One kernel launch as the block scheduler sees it.
struct Launch {
    const Kernel *kernel;
    dim3 grid, block;
    const void *args;
};

// Runs every block of `l` on the calling thread (exec.cpp); fatal on a divergent barrier.
void run_launch(const Launch &l);

// The launch running on this thread (null outside kernels), for error messages.
const Launch *current_launch();
// "kernel NAME<<<(gx,gy,gz), (bx,by,bz)>>>" and, inside a kernel, the block and thread.
std::string launch_description();

// Prints "ambient CUDA emulator: MESSAGE" (with the running launch, if any) and aborts.
[[noreturn]] void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Prints "ambient CUDA emulator: MESSAGE" to stderr.
void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace emu
