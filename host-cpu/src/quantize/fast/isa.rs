//! Which instruction set the fast int8 path runs on: the portable scalar kernels (any target;
//! also the reference the SIMD kernels are tested against) or the AVX2 kernels, on an x86-64
//! that has AVX2 (detected at run time, so one binary runs everywhere). (An AVX-512 VNNI GEMM,
//! `vpdpwssd` on the same packed rows, was 15% faster overall on a Zen 4, but its intrinsics
//! need Rust 1.89 and the workspace's MSRV is 1.87.)

/// The kernels a [`super::FastInt8Model`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust loops.
    Portable,
    /// `std::arch` AVX2 intrinsics (x86-64 only).
    Avx2,
}

impl Isa {
    /// The fastest one this machine runs.
    pub fn detect() -> Self {
        if Isa::Avx2.available() {
            Isa::Avx2
        } else {
            Isa::Portable
        }
    }

    /// Whether this machine can run it.
    pub fn available(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 => false,
        }
    }

    /// Whether it uses the AVX2 kernels (GroupNorm, ADD, the convolutions' epilogue).
    pub fn uses_avx2(self) -> bool {
        self != Isa::Portable
    }
}
