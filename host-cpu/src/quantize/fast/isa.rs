//! Which instruction set the fast int8 path runs on: the portable scalar kernels (any target;
//! also the reference the SIMD kernels are tested against), the AVX2 kernels, or the AVX2
//! kernels with the convolutions' GEMM on AVX-512 VNNI (`vpdpwssd`, 16 lanes) on an x86-64
//! that has it. Detected at run time, so one binary runs everywhere.

/// The kernels a [`super::FastInt8Model`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust loops.
    Portable,
    /// `std::arch` AVX2 intrinsics (x86-64 only).
    Avx2,
    /// AVX2, and AVX-512F + VNNI for the convolutions' multiply-accumulate.
    Avx512Vnni,
}

impl Isa {
    /// The fastest one this machine runs.
    pub fn detect() -> Self {
        [Isa::Avx512Vnni, Isa::Avx2]
            .into_iter()
            .find(|isa| isa.available())
            .unwrap_or(Isa::Portable)
    }

    /// Whether this machine can run it.
    pub fn available(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512Vnni => false,
        }
    }

    /// Whether it uses the AVX2 kernels (GroupNorm, ADD, the convolutions' epilogue).
    pub fn uses_avx2(self) -> bool {
        self != Isa::Portable
    }
}
