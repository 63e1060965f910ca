//! Runs a hot element-wise loop compiled for AVX2 + FMA when the CPU has them (the crate
//! itself is built for baseline x86-64, whose loops vectorise 4 lanes wide with SSE2). This
//! changes the instructions, never the arithmetic: Rust does not fuse a multiply and an add
//! unless asked (`mul_add`), so every lane rounds as the portable code does and the results
//! are the same bits on either path (tested here and by every test that runs the layers).
//! [`dispatch_wide`] compiles a loop for AVX-512 instead, where the CPU has it, with the same
//! guarantee: for the element-wise loops whose sigmoids are long chains of dependent
//! operations (the gates, SiLU(GroupNorm), the Winograd transform passes), twice the lanes
//! per instruction. A loop of SiLU(GroupNorm) values took 1.06 ns a value with AVX2 and 0.55
//! with AVX-512 on this project's Zen 4 VM. Loops written for 8-lane registers stay on
//! [`dispatch`] (with every loop on AVX-512 a restoration took 2.5 ms against 2.0); the
//! Winograd products and filter transform have variants written for 16 lanes, taken where
//! [`wide`] holds.
//! With `nn::transpose`'s AVX block, the only `unsafe` outside the GEMM call.

/// Whether the AVX2 + FMA path is taken (checked once; `std` caches the CPUID answer).
#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// Whether AVX moves may be used (`nn::transpose`): the CPU has AVX and no test forces the
/// portable path.
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx() -> bool {
    std::is_x86_feature_detected!("avx") && !portable_forced()
}

/// `f()`, compiled for AVX2 + FMA where the CPU supports them. `f` and what it inlines are
/// compiled inside [`with_avx2`] (a closure called once is inlined into its caller); helpers
/// meant to benefit are `#[inline(always)]`.
#[inline(always)]
pub(crate) fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() && !portable_forced() {
        // SAFETY: `with_avx2` is compiled for AVX2 and FMA, and the CPU has both (checked
        // at run time just above); it does nothing else than call `f`.
        return unsafe { with_avx2(f) };
    }
    f()
}

/// `f()` as [`dispatch`] runs it, but compiled for AVX-512 (F) where the CPU has it, else
/// for AVX2 + FMA where it has those.
#[inline(always)]
pub(crate) fn dispatch_wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() && !portable_forced() {
        // SAFETY: as in `dispatch`, for AVX-512.
        return unsafe { with_avx512(f) };
    }
    dispatch(f)
}

/// [`dispatch_wide`] when `wide`, else [`dispatch`] (a loop whose shape, fixed at compile
/// time, suits one width or the other).
#[inline(always)]
pub(crate) fn dispatch_wide_if<R>(wide: bool, f: impl FnOnce() -> R) -> R {
    match wide {
        true => dispatch_wide(f),
        false => dispatch(f),
    }
}

/// Whether [`dispatch_wide`] takes its AVX-512 path (for loops written for its width).
pub(crate) fn wide() -> bool {
    #[cfg(target_arch = "x86_64")]
    return has_avx512() && !portable_forced();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    std::is_x86_feature_detected!("avx512f") && has_avx2()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
static PORTABLE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[cfg(not(test))]
#[inline(always)]
fn portable_forced() -> bool {
    false
}

#[cfg(test)]
fn portable_forced() -> bool {
    PORTABLE.load(std::sync::atomic::Ordering::Relaxed) > 0
}

/// `f()` with every [`dispatch`] taking the portable path (tests). Process-wide, so a test
/// running at the same time may take the portable path too, which changes no result.
#[cfg(test)]
pub(crate) fn portable<R>(f: impl FnOnce() -> R) -> R {
    use std::sync::atomic::Ordering::Relaxed;
    PORTABLE.fetch_add(1, Relaxed);
    let r = f();
    PORTABLE.fetch_sub(1, Relaxed);
    r
}
