//! glibc malloc settings for long runs of same-sized steps. A training step frees and
//! allocates the same large activation and workspace buffers every step; by default glibc hands
//! buffers above its (dynamic) mmap threshold back to the OS on free and maps fresh pages on the
//! next allocation (a page fault and a kernel zero-fill per 4 KiB), and trims the heap's top.
//! Keeping them instead made a spec-config training step at batch 64 about 10% faster on the
//! project's 2-core VM (criterion `train_step_batch64`: 452 / 458 ms against 407 / 412 ms,
//! alternating, 2026-11-28; page faults over 6 s of steps 498k against 136k). The cost: the
//! process keeps the memory it has freed, up to its peak use, plus a 256 MiB heap pad.
//! Hosts call [`keep_freed_memory`] once at start (the `ambient` command and the benches do).

/// mmap only allocations above 32 MiB (glibc's upper limit for this threshold on 64-bit).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Never trim the heap's top below 2 GiB - 1 of free memory (mallopt takes an int).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: i32 = i32::MAX;
/// Grow the heap 256 MiB beyond each request, so that growth is rare.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TOP_PAD: i32 = 256 << 20;

/// Applies the settings above; true when glibc accepted all three (false on other platforms,
/// where nothing changes).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn keep_freed_memory() -> bool {
    // SAFETY: mallopt only sets allocator parameters; each call passes a documented parameter
    // with a value in its accepted range, and no allocation is in progress on this thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
            && libc::mallopt(libc::M_TOP_PAD, TOP_PAD) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_freed_memory() -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_settings() {
        assert!(super::keep_freed_memory());
    }
}
