//! Which instruction set the fast int8 path runs on: the portable scalar kernels (any target;
//! also the reference the SIMD kernels are tested against) or the AVX2 kernels, on an x86-64
//! that has AVX2 (detected at run time, so one binary runs everywhere).

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
}
