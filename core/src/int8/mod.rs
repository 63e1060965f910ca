//! Integer kernels for running a quantized AmbientUNet on a microcontroller, following
//! TFLite / TFLM's int8 conventions to the bit: asymmetric int8 activations, symmetric
//! per-output-channel int8 weights, int32 accumulators, fixed-point requantization.
//!
//! Layout: every activation is one image in HWC order (`[h][w][c]`, channels contiguous), the
//! TFLM habit: a convolution's inner loop is then a dot product over contiguous input channels
//! against contiguous weights (OHWI, `[cout][kh][kw][cin]`), and a channel concatenation can
//! be read from two buffers without being materialised ([`layout::Channels`]). Kernels write
//! into caller-provided buffers and allocate nothing; the few that need scratch say how much.
//!
//! Parameter preparation (choosing scales, quantizing weights, computing multipliers) uses f64
//! and lives here too, so that the host that quantizes a model and the firmware that runs it
//! agree; the per-element paths use integers only, except GroupNorm's normalisation, which is
//! f32 single operations (deterministic across x86-64 and Cortex-M4F, see [`groupnorm`]).

pub mod add;
pub mod blob;
pub mod blob_writer;
pub mod conv;
pub mod crc32;
pub mod gated;
pub mod groupnorm;
pub mod layout;
pub mod lut;
pub mod quant;
pub mod requant;
pub mod resample;
