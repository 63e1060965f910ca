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
//!
//! How single-step restoration at a fixed sigma maps onto these kernels (the host quantizes,
//! the firmware runs; docs/ambient-unet-spec.md for the network):
//! - Input `F_in = concat[c_in y, m]`: `c_in` folds into the input's scale (quantize `y` with
//!   scale `s / c_in`); `y` and `m` are the two parts of a [`layout::Channels`] and therefore
//!   share one quantization, whose range covers both (`[-c_in, max(c_in, 1)]`).
//! - `GatedConv` is [`gated::GatedConv2d`]; `SiLU(GN(x))` is [`groupnorm::GroupNorm`] then
//!   [`lut::apply_lut`] with a SiLU table in place.
//! - `h + emb_proj(emb)`: at a fixed sigma the embedding is a constant vector, so its
//!   projection is a per-channel constant and folds exactly into conv1's bias (no ADD).
//! - `(h + skip) / sqrt(2)` is [`add::add_in_place`] with `output_factor = 1 / sqrt(2)`.
//! - `avg_pool_2x2` and `upsample_nearest_2x` are in [`resample`] and keep their input's
//!   quantization.
//! - The decoder's `concat[x, skip_l]` is never built: norm1 and the skip GatedConv(1) read it
//!   as `Channels::concat(x, skip_l)`, which requires the host to give `x` (after upsampling)
//!   and `skip_l` the same quantization parameters, as TFLite's converter does for
//!   CONCATENATION operands (the union of their calibrated ranges).
//! - Output: single-step restoration keeps the observed pixels of `y`, so only `D = sd F` at
//!   missing pixels is needed; `sd` folds into the dequantization scale of `out_conv`'s output.

pub mod add;
pub mod blob;
pub mod blob_writer;
pub mod conv;
pub mod crc32;
pub mod gated;
pub mod groupnorm;
pub mod layout;
pub mod lut;
pub mod model;
pub mod quant;
pub mod requant;
pub mod resample;
pub mod restore;
