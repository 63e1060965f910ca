// The block scheduler of the CPU emulator: runs every block of a launch, one after another, on
// the launching OS thread. A kernel that never reaches __syncthreads (gen_kernels.py's call
// graph says which) runs its threads as plain calls; one that does runs each CUDA thread as a
// fiber (fiber.h): a thread reaching __syncthreads (or its end) switches to the next thread of
// the phase, and after the last one the scheduler checks that every live thread waits at the
// same barrier (anything else is a divergent barrier: fatal) and starts the next phase.
//
// Missing barriers show up as wrong results because the threads of each phase (the stretch
// between two barriers) run one after another in an order that changes from phase to phase
// and block to block: one of 8 fixed pseudo-random permutations (so runs are reproducible).
// Plain kernels run each block's threads forwards or backwards, alternating between blocks.
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "emu.h"
#include "fiber.h"

__thread uint3 emu_threadIdx __attribute__((tls_model("initial-exec")));
__thread uint3 emu_blockIdx __attribute__((tls_model("initial-exec")));
__thread dim3 emu_blockDim __attribute__((tls_model("initial-exec")));
__thread dim3 emu_gridDim __attribute__((tls_model("initial-exec")));

namespace emu {

namespace {

std::vector<Kernel> &registry() {
    static std::vector<Kernel> kernels;
    return kernels;
}

enum class State { Ready, AtBarrier, Done };

struct Thread {
    fiber::Context ctx;
    State state;
    const void *barrier_site;
    unsigned index;  // linear index in the block
    uint3 idx;       // threadIdx
};

// Distinct thread orders a launch's phases cycle through.
constexpr unsigned ORDERS = 8;

// This OS thread's scheduler state.
struct Scheduler {
    const Launch *launch = nullptr;
    bool in_fiber_mode = false;
    unsigned current = 0;  // linear thread index in the block
    fiber::Context main;
    std::vector<Thread> threads;
    std::vector<unsigned> orders[ORDERS];
    const std::vector<unsigned> *order = nullptr;  // the running phase's order
    size_t pos = 0;                                // next position in it
    dim3 shape{0, 0, 0};  // the block shape that threads[].idx and orders are for
    fiber::Stacks stacks;
    uint64_t block_serial = 0;  // counts the blocks run on this thread
    // The __shared__ arrays seen so far and the block that last filled each with NaN bytes.
    std::vector<std::pair<void *, uint64_t>> shared;
};

// This thread's scheduler, constructed by the first launch on the thread; kernels reach it
// through a plain TLS pointer (a C++ thread_local object costs an init check per access).
thread_local Scheduler sched_storage;
__thread Scheduler *sched_ptr __attribute__((tls_model("initial-exec")));
#define sched (*sched_ptr)

uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

void set_thread_index(unsigned t) {
    emu_threadIdx = sched.threads[t].idx;
    sched.current = t;
}

// Fills sched.threads[t].idx for blocks of shape `b` and the phase orders for their `nthreads`
// threads: ORDERS seeded permutations (Fisher-Yates), one of which each phase of a block uses.
// Kept while the launches on this thread have blocks of the same shape.
void prepare_block_shape(const dim3 &b, unsigned nthreads) {
    const dim3 &p = sched.shape;
    if (p.x == b.x && p.y == b.y && p.z == b.z) return;
    sched.shape = b;
    std::vector<Thread> &ts = sched.threads;
    ts.resize(nthreads);
    for (unsigned t = 0; t < nthreads; t++) {
        ts[t].idx = {t % b.x, (t / b.x) % b.y, t / (b.x * b.y)};
        ts[t].index = t;
    }
    for (unsigned k = 0; k < ORDERS; k++) {
        std::vector<unsigned> &order = sched.orders[k];
        order.resize(nthreads);
        for (unsigned t = 0; t < nthreads; t++) order[t] = t;
        uint64_t r = mix(k + 1);
        for (unsigned t = nthreads; t > 1; t--) {
            r = mix(r + t);
            std::swap(order[t - 1], order[r % t]);
        }
    }
}

// The next thread of the running phase's order that is ready, with threadIdx set; null when
// the phase has run every thread.
Thread *next_ready() {
    const std::vector<unsigned> &o = *sched.order;
    while (sched.pos < o.size()) {
        Thread &th = sched.threads[o[sched.pos++]];
        if (th.state == State::Ready) {
            set_thread_index(th.index);
            return &th;
        }
    }
    return nullptr;
}

// Leaves the running thread `th` (at a barrier or finished) for the phase's next thread, or
// for the scheduler after the last one: one switch per thread and phase.
void leave(Thread &th) {
    Thread *next = next_ready();
    fiber::switch_to(&th.ctx, next ? &next->ctx : &sched.main);
}

void fiber_main(void *arg) {
    Thread *th = static_cast<Thread *>(arg);
    const Launch &l = *sched.launch;
    l.kernel->thunk(l.kernel->fn, l.args);
    th->state = State::Done;
    leave(*th);
    fatal("a finished CUDA thread was resumed");
}

void run_block_plain(const Launch &l, unsigned nthreads, bool backwards) {
    for (unsigned i = 0; i < nthreads; i++) {
        set_thread_index(backwards ? nthreads - 1 - i : i);
        l.kernel->thunk(l.kernel->fn, l.args);
    }
}

void run_block_fibers(unsigned nthreads, uint64_t block) {
    std::vector<Thread> &ts = sched.threads;
    for (unsigned t = 0; t < nthreads; t++) {
        ts[t].state = State::Ready;
        ts[t].barrier_site = nullptr;
        fiber::make(&ts[t].ctx, sched.stacks.stack(t), &fiber_main, &ts[t]);
    }
    for (uint64_t phase = 0;; phase++) {
        sched.order = &sched.orders[(block * 3 + phase) % ORDERS];
        sched.pos = 0;
        if (Thread *first = next_ready()) fiber::switch_to(&sched.main, &first->ctx);
        unsigned waiting = 0, done = 0;
        const void *site = nullptr;
        for (const Thread &th : ts) {
            if (th.state == State::Done) {
                done++;
            } else {
                if (waiting == 0) site = th.barrier_site;
                if (th.barrier_site != site) {
                    sched.current = th.index;
                    fatal("divergent __syncthreads: threads of one block wait at different "
                          "barriers (%p and %p)", site, th.barrier_site);
                }
                waiting++;
            }
        }
        if (waiting == 0) return;
        if (done > 0) {
            fatal("divergent __syncthreads: %u threads of the block finished while %u wait at a "
                  "barrier", done, waiting);
        }
        for (Thread &th : ts) th.state = State::Ready;
    }
}

}  // namespace

void add_kernel(Kernel k) {
    for (const Kernel &e : registry())
        if (e.name == k.name)
            fatal("kernel %s is defined in both %s.cu and %s.cu", k.name.c_str(),
                  e.module.c_str(), k.module.c_str());
    registry().push_back(std::move(k));
}

const Kernel *find_kernel(const std::string &name) {
    for (const Kernel &k : registry())
        if (k.name == name) return &k;
    return nullptr;
}

const std::vector<Kernel> &all_kernels() { return registry(); }

void run_launch(const Launch &l) {
    if (!sched_ptr) sched_ptr = &sched_storage;
    const Launch *outer = sched.launch;
    if (outer) fatal("a kernel launch from inside kernel %s", outer->kernel->name.c_str());
    sched.launch = &l;
    sched.in_fiber_mode = l.kernel->uses_barrier;
    emu_gridDim = l.grid;
    emu_blockDim = l.block;
    const unsigned nthreads = l.block.x * l.block.y * l.block.z;
    prepare_block_shape(l.block, nthreads);
    uint64_t linear = 0;
    for (unsigned z = 0; z < l.grid.z; z++)
        for (unsigned y = 0; y < l.grid.y; y++)
            for (unsigned x = 0; x < l.grid.x; x++, linear++) {
                emu_blockIdx = {x, y, z};
                sched.block_serial++;
                if (sched.in_fiber_mode)
                    run_block_fibers(nthreads, linear);
                else
                    run_block_plain(l, nthreads, linear % 2 == 1);
            }
    sched.launch = nullptr;
}

const Launch *current_launch() { return sched_ptr ? sched.launch : nullptr; }

std::string launch_description() {
    const Launch *l = current_launch();
    if (!l) return "";
    char buf[512];
    const uint3 t = emu_threadIdx, b = emu_blockIdx;
    snprintf(buf, sizeof buf,
             "kernel %s (%s.cu) <<<(%u, %u, %u), (%u, %u, %u)>>>, block (%u, %u, %u), thread "
             "(%u, %u, %u)",
             l->kernel->name.c_str(), l->kernel->module.c_str(), l->grid.x, l->grid.y, l->grid.z,
             l->block.x, l->block.y, l->block.z, b.x, b.y, b.z, t.x, t.y, t.z);
    return buf;
}

void fatal(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    std::string where = launch_description();
    fprintf(stderr, "ambient CUDA emulator: %s%s%s\n", msg, where.empty() ? "" : "\n  in ",
            where.c_str());
    fflush(stderr);
    abort();
}

void warn(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "ambient CUDA emulator: %s\n", msg);
}

}  // namespace emu

void emu_shared(void *array, unsigned long bytes) {
    using namespace emu;
    for (auto &[p, block] : sched.shared)
        if (p == array) {
            if (block != sched.block_serial) {
                block = sched.block_serial;
                std::memset(array, 0xFF, bytes);
            }
            return;
        }
    sched.shared.emplace_back(array, sched.block_serial);
    std::memset(array, 0xFF, bytes);
}

void __syncthreads() {
    using namespace emu;
    if (!current_launch()) fatal("__syncthreads outside a kernel");
    if (!sched.in_fiber_mode)
        fatal("__syncthreads in a kernel that gen_kernels.py classified barrier-free");
    Thread &th = sched.threads[sched.current];
    th.state = State::AtBarrier;
    th.barrier_site = __builtin_return_address(0);
    leave(th);
}
