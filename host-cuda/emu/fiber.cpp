// Fibers of the block scheduler (fiber.h): stacks with guard pages and the context switch.
#include "fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "emu.h"

namespace emu {
namespace fiber {

namespace {

constexpr unsigned MAX_THREADS = 1024;

size_t page_size() {
    static const size_t p = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return p;
}

// Mapped stack regions, for in_stack_guard (read by the fault handler: lock-free slots).
constexpr int MAX_REGIONS = 256;
std::atomic<char *> regions[MAX_REGIONS];

}  // namespace

Stacks::~Stacks() {
    if (!region_) return;
    for (auto &r : regions) {
        char *expected = region_;
        if (r.compare_exchange_strong(expected, nullptr)) break;
    }
    munmap(region_, slot_ * MAX_THREADS);
}

Stack Stacks::stack(unsigned t) {
    if (t >= MAX_THREADS) fatal("a block of more than %u threads", MAX_THREADS);
    if (!region_) {
        slot_ = STACK_BYTES + page_size();
        void *p = mmap(nullptr, slot_ * MAX_THREADS, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) fatal("cannot map the fibers' stacks");
        region_ = static_cast<char *>(p);
        for (unsigned i = 0; i < MAX_THREADS; i++)
            if (mprotect(region_ + i * slot_, page_size(), PROT_NONE) != 0)
                fatal("cannot protect a fiber stack's guard page");
        for (auto &r : regions) {
            char *expected = nullptr;
            if (r.compare_exchange_strong(expected, region_)) break;
        }
    }
    // The stacks' tops are staggered (cache colouring): tops 68 KiB apart would all fall in the
    // same L1 sets, and a block's fibers would evict each other's frames.
    const size_t colour = (t * 336) % 4032;
    return Stack{region_ + t * slot_ + page_size(), STACK_BYTES - colour};
}

bool in_stack_guard(const void *addr) {
    const char *a = static_cast<const char *>(addr);
    const size_t slot = STACK_BYTES + page_size();
    for (auto &r : regions) {
        const char *base = r.load();
        if (base && a >= base && a < base + slot * MAX_THREADS &&
            static_cast<size_t>(a - base) % slot < page_size())
            return true;
    }
    return false;
}

#ifdef EMU_UCONTEXT

void make(Context *c, Stack stack, void (*fn)(void *), void *arg) {
    if (getcontext(&c->uc) != 0) fatal("getcontext failed");
    c->uc.uc_stack.ss_sp = stack.base;
    c->uc.uc_stack.ss_size = stack.size;
    c->uc.uc_link = nullptr;
    // makecontext passes int arguments: the pointer travels as two 32-bit halves.
    const uintptr_t p = reinterpret_cast<uintptr_t>(arg), f = reinterpret_cast<uintptr_t>(fn);
    makecontext(&c->uc,
                reinterpret_cast<void (*)()>(+[](unsigned flo, unsigned fhi, unsigned alo,
                                                 unsigned ahi) {
                    auto g = reinterpret_cast<void (*)(void *)>(
                        (static_cast<uintptr_t>(fhi) << 32) | flo);
                    g(reinterpret_cast<void *>((static_cast<uintptr_t>(ahi) << 32) | alo));
                }),
                4, static_cast<unsigned>(f), static_cast<unsigned>(f >> 32),
                static_cast<unsigned>(p), static_cast<unsigned>(p >> 32));
}

void switch_to(Context *from, Context *to) {
    if (swapcontext(&from->uc, &to->uc) != 0) fatal("swapcontext failed");
}

#else

extern "C" void emu_fiber_switch(void **save_sp, void *sp);
extern "C" void emu_fiber_start();

// emu_fiber_switch(save, sp): pushes the callee-saved registers, stores the stack pointer in
// *save, loads sp and pops the same frame from it. MXCSR and the x87 control word are not
// switched: no kernel changes the floating-point environment.
// emu_fiber_start: where a new fiber's first switch returns to; calls r13(r12).
asm(R"(
    .text
    .globl emu_fiber_switch
    .hidden emu_fiber_switch
    .type emu_fiber_switch, @function
emu_fiber_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_fiber_switch, .-emu_fiber_switch

    .globl emu_fiber_start
    .hidden emu_fiber_start
    .type emu_fiber_start, @function
emu_fiber_start:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size emu_fiber_start, .-emu_fiber_start
)");

void make(Context *c, Stack stack, void (*fn)(void *), void *arg) {
    // Top of the stack, 16-byte aligned; the frame emu_fiber_switch pops, from the top down:
    // return address (emu_fiber_start), rbp, rbx, r12 = arg, r13 = fn, r14, r15.
    // After its `ret`, rsp = top (16-aligned), as the call in emu_fiber_start needs.
    uintptr_t top = (reinterpret_cast<uintptr_t>(stack.base) + stack.size) & ~uintptr_t(15);
    uint64_t *s = reinterpret_cast<uint64_t *>(top);
    s[-1] = reinterpret_cast<uint64_t>(&emu_fiber_start);
    s[-2] = 0;                                   // rbp
    s[-3] = 0;                                   // rbx
    s[-4] = reinterpret_cast<uint64_t>(arg);     // r12
    s[-5] = reinterpret_cast<uint64_t>(fn);      // r13
    s[-6] = 0;                                   // r14
    s[-7] = 0;                                   // r15
    c->sp = &s[-7];
}

void switch_to(Context *from, Context *to) { emu_fiber_switch(&from->sp, to->sp); }

#endif

}  // namespace fiber
}  // namespace emu
