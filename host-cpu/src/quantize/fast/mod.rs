//! A host-only int8 executor that computes exactly the integers of the core's executor
//! (`ambient_core::int8::restore`, which the Cortex-M4 firmware runs) for every blob the core
//! accepts, several times faster:
//! - each convolution reads a padded i16 copy of its input (`x - zp`, zero border), written
//!   directly by its producer ([`padded`], [`norm`]), and multiplies it with filters packed
//!   once per model ([`gated_layer`]) in an int16 `madd` GEMM over a tile of pixels
//!   ([`gated_avx2`]); the integer sums are the core's, reordered, which is exact;
//! - the requantization, the sigmoid and SiLU tables, the ResBlock ADD and GroupNorm's f32
//!   steps are the core's operations, vectorised on eight lanes with equality argued in each
//!   module ([`requant_avx2`], [`norm_avx2`], [`add`]) and tested against the core;
//! - the model is prepared once ([`FastInt8Model`]) and every buffer lives in a reusable
//!   [`FastWorkspace`], so a restoration allocates nothing.
//!
//! The AVX2 kernels run where the CPU has AVX2 ([`Isa::detect`]); the portable kernels
//! ([`gated_portable`], [`norm::apply_portable`]) run everywhere else and are the reference
//! the AVX2 ones are tested against (tests/int8_fast.rs).

pub mod add;
pub mod gated_avx2;
pub mod gated_layer;
pub mod gated_portable;
pub mod isa;
pub mod model;
pub mod norm;
pub mod norm_avx2;
pub mod padded;
pub mod requant_avx2;
pub mod restore;
pub mod workspace;

pub use isa::Isa;
pub use model::FastInt8Model;
pub use restore::restore_fast;
pub use workspace::FastWorkspace;
