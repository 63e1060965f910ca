// The CPU emulator's own test (build-emu.sh builds it as DIR/bin/emu-selftest; .ci/run runs it
// with LD_LIBRARY_PATH=DIR/lib64). Through the driver API, on the kernels of selftest.cu:
// - the device says it is the emulator; fresh device memory and shared memory read as NaN;
// - PTX binds to the host kernels only when the entries are exactly one .cu file's kernels
//   with the same parameter sizes;
// - a barrier gives the exact rotation, and the same kernel without it does not (a missing
//   __syncthreads is caught);
// - in a child process each: an out-of-bounds write (canary), a read past the end (guard page),
//   a divergent barrier and a pointer into no allocation abort with a message naming the kernel;
// - copies outside an allocation are refused.
// Prints each check; exits 1 on the first failure.
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
int cuInit(unsigned);
int cuDeviceGet(int *, int);
int cuDeviceGetName(char *, int, int);
int cuDeviceGetAttribute(int *, int, int);
int cuDevicePrimaryCtxRetain(void **, int);
int cuCtxSetCurrent(void *);
int cuModuleLoadData(void **, const void *);
int cuModuleGetFunction(void **, void *, const char *);
int cuMemAlloc_v2(unsigned long long *, size_t);
int cuMemFree_v2(unsigned long long);
int cuMemcpyHtoD_v2(unsigned long long, const void *, size_t);
int cuMemcpyDtoH_v2(void *, unsigned long long, size_t);
int cuLaunchKernel(void *, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                   void *, void **, void **);
int cuStreamSynchronize(void *);
}

namespace {

constexpr int N = 64;  // threads of every launch (N in selftest.cu)

void check(bool ok, const char *what) {
    printf("%s: %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) exit(1);
}

void must(int r, const char *call) {
    if (r != 0) {
        printf("FAIL: %s returned %d\n", call, r);
        exit(1);
    }
}

// PTX of selftest.cu's entries as NVRTC declares them (the emulator reads only these lines).
std::string entry(const char *name, std::vector<const char *> types) {
    std::string s = std::string(".visible .entry ") + name + "(\n";
    for (size_t i = 0; i < types.size(); i++)
        s += std::string("\t.param .") + types[i] + " " + name + "_param_" + std::to_string(i) +
             (i + 1 < types.size() ? ",\n" : "\n");
    return s + ")\n{\n\tret;\n}\n";
}

std::string selftest_ptx(bool drop_last, const char *read_at_index_type) {
    std::string p = ".version 8.0\n.target sm_80\n.address_size 64\n";
    p += entry("rotate_with_barrier", {"u64", "u64"});
    p += entry("rotate_without_barrier", {"u64", "u64"});
    p += entry("read_unwritten_shared", {"u64"});
    p += entry("divergent_barrier", {"u64"});
    p += entry("write_n", {"u64", "u32"});
    if (!drop_last) p += entry("read_at", {"u64", read_at_index_type, "u64"});
    return p;
}

void *module;

void *function(const char *name) {
    void *f;
    must(cuModuleGetFunction(&f, module, name), name);
    return f;
}

unsigned long long alloc(size_t bytes) {
    unsigned long long p;
    must(cuMemAlloc_v2(&p, bytes), "cuMemAlloc");
    return p;
}

void launch(const char *name, std::vector<void *> args, unsigned blocks = 1) {
    must(cuLaunchKernel(function(name), blocks, 1, 1, N, 1, 1, 0, nullptr, args.data(), nullptr),
         name);
    must(cuStreamSynchronize(nullptr), "cuStreamSynchronize");
}

// Runs body in a child process; checks that it aborts and that its stderr holds `needle`
// and `kernel`.
template <class F>
void aborts_naming(const char *what, const char *kernel, const char *needle, F body) {
    int pipe_fd[2];
    if (pipe(pipe_fd) != 0) exit(2);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipe_fd[1], 2);
        close(pipe_fd[0]);
        body();
        _exit(0);  // not reached when the emulator aborts
    }
    close(pipe_fd[1]);
    std::string err;
    char buf[512];
    ssize_t n;
    while ((n = read(pipe_fd[0], buf, sizeof buf)) > 0) err.append(buf, static_cast<size_t>(n));
    close(pipe_fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    const bool aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    const bool named = err.find(kernel) != std::string::npos &&
                       err.find(needle) != std::string::npos;
    if (!aborted || !named) printf("child's stderr:\n%s", err.c_str());
    check(aborted && named, what);
}

}  // namespace

int main() {
    setvbuf(stdout, nullptr, _IOLBF, 0);  // keep our lines in order with the emulator's stderr
    must(cuInit(0), "cuInit");
    int dev;
    must(cuDeviceGet(&dev, 0), "cuDeviceGet");
    char name[64];
    must(cuDeviceGetName(name, sizeof name, dev), "cuDeviceGetName");
    int major, minor;
    must(cuDeviceGetAttribute(&major, 75, dev), "cuDeviceGetAttribute");
    must(cuDeviceGetAttribute(&minor, 76, dev), "cuDeviceGetAttribute");
    check(std::string(name) == "ambient CPU emulator" && major == 8 && minor == 0,
          "device 0 is the ambient CPU emulator, compute capability 8.0");
    void *ctx;
    must(cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain");
    must(cuCtxSetCurrent(ctx), "cuCtxSetCurrent");

    printf("      (the emulator's messages on stderr are expected: each refusal and abort below "
           "is one checked here)\n");
    void *m;
    check(cuModuleLoadData(&m, selftest_ptx(true, "u64").c_str()) != 0,
          "PTX lacking a kernel of the host's selftest.cu is refused");
    check(cuModuleLoadData(&m, selftest_ptx(false, "u32").c_str()) != 0,
          "PTX whose parameter sizes differ from the host kernel's is refused");
    check(cuModuleLoadData(&m, (selftest_ptx(false, "u64") + entry("nowhere", {"u64"})).c_str()) != 0,
          "PTX with an entry that has no host kernel is refused");
    must(cuModuleLoadData(&module, selftest_ptx(false, "u64").c_str()), "cuModuleLoadData");

    const size_t bytes = N * sizeof(float);
    unsigned long long in = alloc(bytes), out = alloc(4 * bytes);
    std::vector<float> host(4 * N);
    must(cuMemcpyDtoH_v2(host.data(), out, 4 * bytes), "cuMemcpyDtoH");
    bool all_nan = true;
    for (float v : host) all_nan = all_nan && std::isnan(v);
    check(all_nan, "fresh device memory reads as NaN");

    launch("read_unwritten_shared", {&out}, 4);
    must(cuMemcpyDtoH_v2(host.data(), out, 4 * bytes), "cuMemcpyDtoH");
    all_nan = true;
    for (float v : host) all_nan = all_nan && std::isnan(v);
    check(all_nan, "shared memory reads as NaN in every block until written");

    // in[t] = t + 1; the rotation is out[t] = (t + 1) % N + 1.
    std::vector<float> x(N), y(N);
    for (int t = 0; t < N; t++) x[t] = static_cast<float>(t + 1);
    must(cuMemcpyHtoD_v2(in, x.data(), bytes), "cuMemcpyHtoD");
    launch("rotate_with_barrier", {&in, &out});
    must(cuMemcpyDtoH_v2(y.data(), out, bytes), "cuMemcpyDtoH");
    bool exact = true;
    for (int t = 0; t < N; t++) exact = exact && y[t] == static_cast<float>((t + 1) % N + 1);
    check(exact, "with __syncthreads, every thread reads its neighbour's value");
    launch("rotate_without_barrier", {&in, &out});
    must(cuMemcpyDtoH_v2(y.data(), out, bytes), "cuMemcpyDtoH");
    int wrong = 0;
    for (int t = 0; t < N; t++) wrong += y[t] != static_cast<float>((t + 1) % N + 1);
    printf("      (without it, %d of %d threads read a value not yet written)\n", wrong, N);
    check(wrong > 0, "without __syncthreads, the race gives wrong values (missing barrier caught)");

    check(cuMemcpyHtoD_v2(in, x.data(), bytes + 4) != 0 &&
              cuMemcpyDtoH_v2(y.data(), in + 4, bytes) != 0,
          "copies that leave the allocation are refused");

    // 60 floats (240 bytes): x[60] is the first canary byte before the guard page.
    unsigned long long small = alloc(60 * sizeof(float));
    int n_over = 61;
    aborts_naming("an out-of-bounds write aborts, naming the kernel", "write_n",
                  "out-of-bounds write", [&] { launch("write_n", {&small, &n_over}); });
    // `in` is 256 bytes, a multiple of the 256-byte alignment: x[N] lies in the guard page.
    long long past = N;
    aborts_naming("a read past the end faults in the guard page, naming the kernel", "read_at",
                  "invalid memory access", [&] { launch("read_at", {&in, &past, &out}); });
    aborts_naming("a divergent barrier aborts, naming the kernel", "divergent_barrier",
                  "divergent __syncthreads", [&] { launch("divergent_barrier", {&out}); });
    unsigned long long freed = alloc(bytes);
    must(cuMemFree_v2(freed), "cuMemFree");
    aborts_naming("a pointer into no allocation aborts, naming the kernel", "write_n",
                  "points into no live allocation", [&] { launch("write_n", {&freed, &n_over}); });

    must(cuMemFree_v2(small), "cuMemFree");
    must(cuMemFree_v2(in), "cuMemFree");
    must(cuMemFree_v2(out), "cuMemFree");
    printf("emu-selftest: all checks passed\n");
    return 0;
}
