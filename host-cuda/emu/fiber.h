// Fibers for the CUDA threads of a block (exec.cpp): a context switch that saves the
// callee-saved registers on the running stack and swaps stack pointers (x86-64; elsewhere, or
// with -DEMU_UCONTEXT, the C library's ucontext), and the stacks, one per thread of a block,
// each with a guard page below it so that a kernel's stack overflow faults.
#pragma once

#include <cstddef>
#include <cstdint>

#if !defined(__x86_64__) && !defined(EMU_UCONTEXT)
#define EMU_UCONTEXT 1
#endif
#ifdef EMU_UCONTEXT
#include <ucontext.h>
#endif

namespace emu {
namespace fiber {

#ifdef EMU_UCONTEXT
struct Context {
    ucontext_t uc;
};
#else
struct Context {
    void *sp;
};
#endif

// Bytes of each CUDA thread's stack (the kernels' frames are small).
constexpr size_t STACK_BYTES = 64 * 1024;

struct Stack {
    void *base;  // lowest usable address
    size_t size;
};

// Prepares `c` to run fn(arg) on `stack` when first switched to; fn must never return.
void make(Context *c, Stack stack, void (*fn)(void *), void *arg);
// Saves the running context in `from` and resumes `to`.
void switch_to(Context *from, Context *to);

// The stacks of one OS thread's block scheduler, mapped on first use and kept.
class Stacks {
  public:
    Stacks() = default;
    Stacks(const Stacks &) = delete;
    Stacks &operator=(const Stacks &) = delete;
    ~Stacks();
    // Stack of thread t (t < 1024, the most threads of a block).
    Stack stack(unsigned t);

  private:
    char *region_ = nullptr;
    size_t slot_ = 0;
};

// Whether `addr` lies in the guard page of some fiber stack (a kernel's stack overflow).
bool in_stack_guard(const void *addr);

}  // namespace fiber
}  // namespace emu
