// Device memory of the CPU emulator: host pages, one mapping per allocation (memory.cpp).
//
// Each allocation's bytes start 256-byte aligned (as cuMemAlloc's) and end at most 255 bytes
// before an inaccessible guard page; another guard page lies below the page it starts in. The
// bytes between the guard pages and the allocation are canaries, checked after every launch
// that was passed a pointer into the allocation (naming that kernel), at cuMemFree and at
// every synchronisation. Fresh allocations hold 0xFF bytes, a NaN as f32 and as f64 (device
// memory is garbage until written). Accesses that reach a guard page fault, and the fault
// handler names the running kernel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace emu {
namespace memory {

// A new allocation of `bytes` (> 0); 0 when the host is out of memory.
uintptr_t alloc(size_t bytes);
// Checks the canaries and unmaps; false when `ptr` is not the start of an allocation.
bool free(uintptr_t ptr);
// Whether [ptr, ptr + bytes) lies inside one live allocation (empty ranges: ptr inside one or
// one past its end).
bool valid_range(uintptr_t ptr, size_t bytes);
// Records that kernel `name` was passed `ptr`; false when ptr is neither null nor inside (or
// one past the end of) a live allocation.
bool note_kernel_pointer(uintptr_t ptr, const char *name);
// Checks the canaries of the allocation holding ptr, if any (after a launch: `when` names it).
void check_canaries_at(uintptr_t ptr, const char *when);
// Checks the canaries of every live allocation (synchronisation, context teardown).
void check_all_canaries(const char *when);
// Bytes allocated and not freed.
size_t allocated_bytes();
// Installs the fault handler that names the kernel that touched a guard page.
void install_fault_handler();

}  // namespace memory
}  // namespace emu
