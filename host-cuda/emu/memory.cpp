// Device memory of the CPU emulator (memory.h): guarded host mappings, canaries, the fault
// handler.
#include "memory.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>

#include "emu.h"
#include "fiber.h"

namespace emu {
namespace memory {

namespace {

constexpr unsigned char CANARY = 0xA5;
constexpr unsigned char FRESH = 0xFF;
constexpr size_t ALIGN = 256;

struct Allocation {
    char *map;        // the mapping: guard page, data pages, guard page
    size_t map_len;
    size_t size;      // bytes asked for
    size_t lead;      // canary bytes from the first data page to the allocation
    size_t tail;      // canary bytes from the allocation's end to the upper guard page
    std::string last_kernel;  // the last kernel that was passed a pointer into it
};

std::mutex mu;
std::map<uintptr_t, Allocation> live;  // by start address
size_t total_bytes = 0;

size_t page_size() {
    static const size_t p = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return p;
}

// The allocation holding [p, p + bytes) (one past the end allowed for empty ranges), or null.
// Caller holds mu.
std::pair<const uintptr_t, Allocation> *holding(uintptr_t p, size_t bytes) {
    auto it = live.upper_bound(p);
    if (it == live.begin()) return nullptr;
    --it;
    const uintptr_t start = it->first, end = start + it->second.size;
    if (p < start || p > end || bytes > end - p) return nullptr;
    if (bytes > 0 && p == end) return nullptr;
    return &*it;
}

// First clobbered canary byte of a, as an offset from its start (negative before it), or
// false when all are intact.
bool clobbered(uintptr_t start, const Allocation &a, long long *offset) {
    const unsigned char *lead = reinterpret_cast<const unsigned char *>(start - a.lead);
    for (size_t i = 0; i < a.lead; i++)
        if (lead[i] != CANARY) {
            *offset = static_cast<long long>(i) - static_cast<long long>(a.lead);
            return true;
        }
    const unsigned char *tail = reinterpret_cast<const unsigned char *>(start + a.size);
    for (size_t i = 0; i < a.tail; i++)
        if (tail[i] != CANARY) {
            *offset = static_cast<long long>(a.size + i);
            return true;
        }
    return false;
}

// Caller holds mu.
void check(uintptr_t start, const Allocation &a, const char *when) {
    long long off;
    if (!clobbered(start, a, &off)) return;
    fatal("out-of-bounds write: byte %lld of the %zu-byte allocation at 0x%lx was overwritten "
          "(found %s; the last kernel passed a pointer into it: %s)",
          off, a.size, static_cast<unsigned long>(start), when,
          a.last_kernel.empty() ? "none" : a.last_kernel.c_str());
}

struct sigaction previous_segv, previous_bus;

void on_fault(int sig, siginfo_t *info, void *uctx) {
    const Launch *l = current_launch();
    if (!l) {
        // Not a kernel's access: whoever handled the signal before us handles it (Rust's
        // runtime reports stack overflows so); with no handler, the default action.
        const struct sigaction &prev = sig == SIGSEGV ? previous_segv : previous_bus;
        if ((prev.sa_flags & SA_SIGINFO) && prev.sa_sigaction) {
            prev.sa_sigaction(sig, info, uctx);
        } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
            prev.sa_handler(sig);
        } else {
            signal(sig, SIG_DFL);  // the access faults again and ends the process
        }
        return;
    }
    const void *addr = info->si_addr;
    const char *what = "an address outside every allocation";
    char detail[160] = "";
    if (fiber::in_stack_guard(addr)) {
        what = "the guard page of its own stack (stack overflow)";
    } else if (mu.try_lock()) {
        const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
        for (const auto &[start, al] : live) {
            const uintptr_t lo = reinterpret_cast<uintptr_t>(al.map),
                            hi = lo + al.map_len;
            if (a >= lo && a < hi) {
                what = "a guard page";
                snprintf(detail, sizeof detail,
                         " (byte %lld of the %zu-byte allocation at 0x%lx)",
                         static_cast<long long>(a) - static_cast<long long>(start), al.size,
                         static_cast<unsigned long>(start));
            }
        }
        mu.unlock();
    }
    fatal("invalid memory access at %p: %s%s", addr, what, detail);
}

}  // namespace

uintptr_t alloc(size_t bytes) {
    const size_t page = page_size();
    const size_t padded = (bytes + ALIGN - 1) / ALIGN * ALIGN;
    const size_t data_pages = (padded + page - 1) / page * page;
    const size_t map_len = data_pages + 2 * page;
    void *m = mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return 0;
    char *map = static_cast<char *>(m);
    if (mprotect(map, page, PROT_NONE) != 0 ||
        mprotect(map + page + data_pages, page, PROT_NONE) != 0) {
        munmap(m, map_len);
        return 0;
    }
    char *data = map + page;
    const size_t lead = data_pages - padded;
    std::memset(data, CANARY, lead);
    std::memset(data + lead, FRESH, bytes);
    std::memset(data + lead + bytes, CANARY, padded - bytes);
    const uintptr_t start = reinterpret_cast<uintptr_t>(data + lead);
    std::lock_guard<std::mutex> g(mu);
    live[start] = Allocation{map, map_len, bytes, lead, padded - bytes, {}};
    total_bytes += bytes;
    return start;
}

bool free(uintptr_t ptr) {
    std::lock_guard<std::mutex> g(mu);
    auto it = live.find(ptr);
    if (it == live.end()) return false;
    check(it->first, it->second, "at cuMemFree");
    munmap(it->second.map, it->second.map_len);
    total_bytes -= it->second.size;
    live.erase(it);
    return true;
}

bool valid_range(uintptr_t ptr, size_t bytes) {
    std::lock_guard<std::mutex> g(mu);
    return holding(ptr, bytes) != nullptr;
}

bool note_kernel_pointer(uintptr_t ptr, const char *name) {
    if (ptr == 0) return true;
    std::lock_guard<std::mutex> g(mu);
    auto *a = holding(ptr, 0);
    if (!a) return false;
    a->second.last_kernel = name;
    return true;
}

void check_canaries_at(uintptr_t ptr, const char *when) {
    std::lock_guard<std::mutex> g(mu);
    if (auto *a = holding(ptr, 0)) check(a->first, a->second, when);
}

void check_all_canaries(const char *when) {
    std::lock_guard<std::mutex> g(mu);
    for (const auto &[start, a] : live) check(start, a, when);
}

size_t allocated_bytes() {
    std::lock_guard<std::mutex> g(mu);
    return total_bytes;
}

void install_fault_handler() {
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction sa;
        std::memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = &on_fault;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, &previous_segv);
        sigaction(SIGBUS, &sa, &previous_bus);
    });
}

}  // namespace memory
}  // namespace emu
