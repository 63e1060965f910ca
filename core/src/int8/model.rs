//! The quantized restoration graph as a blob describes it, read zero-copy: the tensor names the
//! host writes and this module looks up, the network's block structure (which layers exist,
//! with which channel counts and resolutions, docs/ambient-unet-spec.md "Network F"), and the
//! typed views that turn a layer's tensors into the kernels' parameter structs.
//!
//! Tensor names (`{L}` a gated convolution: `in_conv`, `{P}.conv1`, `{P}.conv2`, `{P}.skip`,
//! `out_conv`; `{N}` a GroupNorm: `{P}.norm1`, `{P}.norm2`, `out_norm`; `{P}` a ResBlock:
//! `enc.{l}.{b}`, `mid`, `dec.{l}.{b}`):
//! ```text
//! io          f32 [5]  y_scale (= s_in / c_in), s_in, zp_in, out_scale (= sigma_data s_F), zp_F
//! {L}.w       i8  [cout, k, k, cin]  main filters W, OHWI
//! {L}.g       i8  [cout, k, k, cin]  gate filters G, OHWI
//! {L}.c       i32 [5, cout]  main multiplier, main shift, gate multiplier, gate shift, bias
//! {L}.p       i32 [5]        input zp, gate zp, output multiplier, output shift, output zp
//! {L}.lut     i8  [256]      sigmoid of the gate's quantization
//! {N}.gb      f32 [2, c]     gamma, beta
//! {N}.q       f32 [4]        input scale, input zp, output scale, output zp
//! {N}.silu    i8  [256]      SiLU from the GroupNorm's output to the next conv's input
//! {P}.add     i32 [9]        offset 1, offset 2, mult 1, shift 1, mult 2, shift 2, output
//!                            mult, output shift, output offset: (h + skip) / sqrt 2
//! plan        i32 [n]        optional: the arena byte offset of each of the executor's n
//!                            buffers in allocation order (`super::restore::BufferEvent`)
//! ```
//! Each layer's parameters are stored where they are used, so consecutive layers repeat a
//! tensor's quantization (a conv's input zero point is the SiLU table's output zero point);
//! the host writes them consistently and every kernel validates its own.

use super::add::AddParams;
use super::blob::{Blob, BlobConfig, BlobError, DType};
use super::conv::ConvGeometry;
use super::gated::GatedConv2d;
use super::groupnorm::GroupNorm;
use super::quant::QuantParams;
use super::requant::Requant;
use crate::error::CoreError;
use core::fmt::{self, Write};

/// GroupNorm's epsilon (docs/ambient-unet-spec.md).
pub const GN_EPS: f32 = 1e-5;

/// A tensor name as the graph builds it (prefix and suffix).
pub type Name = heapless::String<48>;

/// What is wrong with a model blob or a restoration call.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelError {
    /// The blob itself (format, CRC, table).
    Blob(BlobError),
    /// The tensor `name` is missing or has the wrong dtype or shape.
    Tensor { name: Name, problem: &'static str },
    /// The parameters of layer `name` are rejected by its kernel.
    Layer { name: Name, error: CoreError },
    /// A restoration input (measurement, mask, scratch, output) is unusable.
    Input(CoreError),
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::Blob(e) => write!(f, "{e}"),
            ModelError::Tensor { name, problem } => write!(f, "tensor {name}: {problem}"),
            ModelError::Layer { name, error } => write!(f, "layer {name}: {error}"),
            ModelError::Input(e) => write!(f, "restoration input: {e}"),
        }
    }
}

impl core::error::Error for ModelError {}

impl From<BlobError> for ModelError {
    fn from(e: BlobError) -> Self {
        ModelError::Blob(e)
    }
}

/// `{prefix}.{suffix}` (or `suffix` alone for an empty prefix); names longer than [`Name`]
/// holds are cut, which only the config validation's limits could make happen and which then
/// fails the look-up instead of panicking.
pub fn name(prefix: &str, suffix: &str) -> Name {
    let mut n = Name::new();
    if prefix.is_empty() {
        let _ = n.push_str(suffix);
    } else {
        let _ = write!(n, "{prefix}.{suffix}");
    }
    n
}

/// Where a ResBlock sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockId {
    Enc { level: usize, index: usize },
    Mid,
    Dec { level: usize, index: usize },
}

impl BlockId {
    /// `enc.{l}.{b}`, `mid` or `dec.{l}.{b}`, the spec's parameter prefix.
    pub fn prefix(&self) -> Name {
        let mut n = Name::new();
        let _ = match self {
            BlockId::Enc { level, index } => write!(n, "enc.{level}.{index}"),
            BlockId::Mid => write!(n, "mid"),
            BlockId::Dec { level, index } => write!(n, "dec.{level}.{index}"),
        };
        n
    }
}

/// One ResBlock's shape: input and output channels, side of its (square) feature map, and,
/// for a decoder block reading `concat[x, skip_l]`, the channels of `x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockShape {
    pub id: BlockId,
    pub cin: usize,
    pub cout: usize,
    pub side: usize,
    pub concat_first: Option<usize>,
}

impl BlockShape {
    /// Whether the residual goes through a GatedConv(1) (`cin != cout`).
    pub fn has_skip(&self) -> bool {
        self.cin != self.cout
    }
}

/// Calls `f` with every ResBlock of `cfg` in execution order (encoder, mid, decoder), as
/// docs/ambient-unet-spec.md lays the network out.
pub fn for_each_block<E>(
    cfg: &BlobConfig,
    mut f: impl FnMut(BlockShape) -> Result<(), E>,
) -> Result<(), E> {
    let levels = cfg.levels as usize;
    let ch = cfg.ch as usize;
    let mut side = cfg.img_resolution as usize;
    let mut cur = ch;
    let mut skips = [0usize; 4];
    for (l, skip) in skips.iter_mut().enumerate().take(levels) {
        let cl = ch * cfg.mult[l] as usize;
        for b in 0..cfg.blocks as usize {
            f(BlockShape {
                id: BlockId::Enc { level: l, index: b },
                cin: cur,
                cout: cl,
                side,
                concat_first: None,
            })?;
            cur = cl;
        }
        *skip = cur;
        if l + 1 < levels {
            side /= 2;
        }
    }
    f(BlockShape {
        id: BlockId::Mid,
        cin: cur,
        cout: cur,
        side,
        concat_first: None,
    })?;
    for l in (0..levels).rev() {
        let cl = ch * cfg.mult[l] as usize;
        for b in 0..cfg.blocks as usize {
            let concat_first = (b == 0).then_some(cur);
            let cin = if b == 0 { cur + skips[l] } else { cur };
            f(BlockShape {
                id: BlockId::Dec { level: l, index: b },
                cin,
                cout: cl,
                side,
                concat_first,
            })?;
            cur = cl;
        }
        if l > 0 {
            side *= 2;
        }
    }
    Ok(())
}

/// The input and output quantization of the graph (`io`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IoParams {
    /// `y` is quantized with this scale (`s_in / c_in`: `c_in` folded) and `zp_in`.
    pub y: QuantParams,
    /// The mask channels' quantization (`s_in`, `zp_in`), shared with `y` (one concatenation).
    pub input: QuantParams,
    /// `F`'s output zero point and `sigma_data s_F`: `D = out_scale (q - zp)` at a missing pixel.
    pub output: QuantParams,
}

/// A model blob whose graph has been checked: every layer's tensors present, shaped for the
/// config, and accepted by its kernel.
#[derive(Debug, Clone, Copy)]
pub struct Int8Model<'a> {
    blob: Blob<'a>,
    io: IoParams,
    plan: Option<&'a [i32]>,
    scratch_bytes: usize,
    norm_channels: usize,
}

fn tensor_error(name: Name, problem: &'static str) -> ModelError {
    ModelError::Tensor { name, problem }
}

fn layer_error(name: Name) -> impl FnOnce(CoreError) -> ModelError {
    move |error| ModelError::Layer { name, error }
}

/// A zero point stored as f32: integral and an int8.
fn f32_zero_point(v: f32) -> Option<i32> {
    (v.is_finite() && libm::truncf(v) == v && (-128.0..=127.0).contains(&v)).then_some(v as i32)
}

impl<'a> Int8Model<'a> {
    /// Parses `bytes` (see [`Blob::parse`]) and checks the whole graph: every layer's tensors
    /// and parameters, and the arena plan if there is one; also measures the scratch the
    /// executor needs (`super::restore`).
    pub fn from_blob(bytes: &'a [u8]) -> Result<Self, ModelError> {
        let blob = Blob::parse(bytes)?;
        let io_name = name("", "io");
        let io = Self::tensor_in(&blob, &io_name, DType::F32, &[5])?;
        let v = io.as_f32()?;
        let bad_io = || tensor_error(name("", "io"), "scales must be positive, zero points int8");
        let zp_in = f32_zero_point(v[2]).ok_or_else(bad_io)?;
        let zp_out = f32_zero_point(v[4]).ok_or_else(bad_io)?;
        let io = IoParams {
            y: QuantParams::new(v[0], zp_in).map_err(|_| bad_io())?,
            input: QuantParams::new(v[1], zp_in).map_err(|_| bad_io())?,
            output: QuantParams::new(v[3], zp_out).map_err(|_| bad_io())?,
        };
        let plan = match blob.find("plan") {
            Ok(t) if t.shape().len() == 1 => Some(t.as_i32().map_err(|e| match e {
                BlobError::WrongDtype => tensor_error(name("", "plan"), "wrong dtype"),
                e => ModelError::Blob(e),
            })?),
            Ok(_) => return Err(tensor_error(name("", "plan"), "must have rank 1")),
            Err(BlobError::NotFound) => None,
            Err(e) => return Err(ModelError::Blob(e)),
        };
        let mut model = Int8Model {
            blob,
            io,
            plan,
            scratch_bytes: 0,
            norm_channels: 0,
        };
        let plan = super::restore::plan(&model)?;
        model.scratch_bytes = plan.arena_bytes;
        model.norm_channels = plan.norm_channels;
        Ok(model)
    }

    /// The network configuration and the folded sigma.
    pub fn config(&self) -> &BlobConfig {
        &self.blob.config
    }

    /// The underlying blob.
    pub fn blob(&self) -> &Blob<'a> {
        &self.blob
    }

    /// The arena offset of each buffer in allocation order (tensor `plan`), if the blob has
    /// one; without it buffers are placed first fit.
    pub fn plan(&self) -> Option<&'a [i32]> {
        self.plan
    }

    /// Input and output quantization.
    pub fn io(&self) -> &IoParams {
        &self.io
    }

    /// `C * H * W`: the length of a measurement, a mask and a restoration.
    pub fn image_len(&self) -> usize {
        let c = &self.blob.config;
        (c.img_channels * c.img_resolution * c.img_resolution) as usize
    }

    /// Bytes of activation arena the planned execution needs at its peak.
    pub fn arena_bytes(&self) -> usize {
        self.scratch_bytes
    }

    /// The 32-bit words of scratch [`super::restore::restore`] needs: GroupNorm's f32
    /// statistics (`2 * widest GroupNorm`) followed by the activation arena.
    pub fn scratch_words(&self) -> usize {
        2 * self.norm_channels + self.scratch_bytes.div_ceil(4)
    }

    /// Words of GroupNorm statistics at the start of the scratch.
    pub(crate) fn norm_words(&self) -> usize {
        2 * self.norm_channels
    }

    fn tensor_in(
        blob: &Blob<'a>,
        n: &Name,
        dtype: DType,
        shape: &[u32],
    ) -> Result<super::blob::TensorRef<'a>, ModelError> {
        let t = blob.find(n).map_err(|e| match e {
            BlobError::NotFound => tensor_error(n.clone(), "missing"),
            e => ModelError::Blob(e),
        })?;
        if t.dtype != dtype {
            return Err(tensor_error(n.clone(), "wrong dtype"));
        }
        if t.shape() != shape {
            return Err(tensor_error(n.clone(), "wrong shape for the config"));
        }
        Ok(t)
    }

    fn i8s(&self, n: &Name, shape: &[u32]) -> Result<&'a [i8], ModelError> {
        Ok(Self::tensor_in(&self.blob, n, DType::I8, shape)?.as_i8()?)
    }

    fn i32s(&self, n: &Name, shape: &[u32]) -> Result<&'a [i32], ModelError> {
        Ok(Self::tensor_in(&self.blob, n, DType::I32, shape)?.as_i32()?)
    }

    fn f32s(&self, n: &Name, shape: &[u32]) -> Result<&'a [f32], ModelError> {
        Ok(Self::tensor_in(&self.blob, n, DType::F32, shape)?.as_f32()?)
    }

    fn table(&self, n: &Name) -> Result<&'a [i8; 256], ModelError> {
        self.i8s(n, &[256])?
            .try_into()
            .map_err(|_| tensor_error(n.clone(), "wrong shape for the config"))
    }

    /// The gated convolution `layer` (e.g. `enc.0.0.conv1`) for `geometry`, validated.
    pub fn gated(
        &self,
        layer: &str,
        geometry: ConvGeometry,
    ) -> Result<GatedConv2d<'a>, ModelError> {
        let g = &geometry;
        let (cout, k, cin) = (g.out_channels as u32, g.kernel as u32, g.in_channels as u32);
        let filters = [cout, k, k, cin];
        let c = self.i32s(&name(layer, "c"), &[5, cout])?;
        let p = self.i32s(&name(layer, "p"), &[5])?;
        let n = cout as usize;
        let conv = GatedConv2d {
            geometry,
            input_zero_point: p[0],
            weights: self.i8s(&name(layer, "w"), &filters)?,
            gates: self.i8s(&name(layer, "g"), &filters)?,
            main_multipliers: &c[..n],
            main_shifts: &c[n..2 * n],
            gate_multipliers: &c[2 * n..3 * n],
            gate_shifts: &c[3 * n..4 * n],
            gate_zero_point: p[1],
            sigmoid: self.table(&name(layer, "lut"))?,
            bias: &c[4 * n..],
            output_multiplier: p[2],
            output_shift: p[3],
            output_zero_point: p[4],
        };
        conv.validate().map_err(layer_error(name("", layer)))?;
        Ok(conv)
    }

    /// The GroupNorm `layer` (e.g. `enc.0.0.norm1`) over a `side x side x channels` map,
    /// groups from the config, and its SiLU table.
    pub fn norm(
        &self,
        layer: &str,
        side: usize,
        channels: usize,
    ) -> Result<(GroupNorm<'a>, &'a [i8; 256]), ModelError> {
        let gb = self.f32s(&name(layer, "gb"), &[2, channels as u32])?;
        let q = self.f32s(&name(layer, "q"), &[4])?;
        let qn = name(layer, "q");
        let bad = || tensor_error(qn.clone(), "scales must be positive, zero points int8");
        let input = QuantParams::new(q[0], f32_zero_point(q[1]).ok_or_else(bad)?);
        let output = QuantParams::new(q[2], f32_zero_point(q[3]).ok_or_else(bad)?);
        let norm = GroupNorm {
            height: side,
            width: side,
            channels,
            groups: self.blob.config.groups as usize,
            eps: GN_EPS,
            gamma: &gb[..channels],
            beta: &gb[channels..],
            input: input.map_err(|_| bad())?,
            output: output.map_err(|_| bad())?,
        };
        // The parameter checks GroupNorm::run makes, made once here (at load) as well.
        if norm.gamma.iter().chain(norm.beta).any(|v| !v.is_finite()) {
            return Err(ModelError::Layer {
                name: name("", layer),
                error: CoreError::NonFinite("GroupNorm gamma or beta"),
            });
        }
        if !channels.is_multiple_of(norm.groups) || norm.groups > super::groupnorm::MAX_GROUPS {
            return Err(ModelError::Layer {
                name: name("", layer),
                error: CoreError::InvalidParameter("groups must divide channels and be <= 64"),
            });
        }
        Ok((norm, self.table(&name(layer, "silu"))?))
    }

    /// The residual ADD of block `prefix`.
    pub fn add(&self, prefix: &str) -> Result<AddParams, ModelError> {
        let n = name(prefix, "add");
        let v = self.i32s(&n, &[9])?;
        let r = |m: i32, s: i32| Requant {
            multiplier: m,
            shift: s,
        };
        let p = AddParams {
            input1_offset: v[0],
            input2_offset: v[1],
            input1: r(v[2], v[3]),
            input2: r(v[4], v[5]),
            output: r(v[6], v[7]),
            output_offset: v[8],
        };
        for zp in [
            p.input1_offset.saturating_neg(),
            p.input2_offset.saturating_neg(),
            p.output_offset,
        ] {
            if !(-128..=127).contains(&zp) {
                return Err(ModelError::Layer {
                    name: n,
                    error: CoreError::InvalidParameter("zero point must be in [-128, 127]"),
                });
            }
        }
        Ok(p)
    }
}
