//! Single-step restoration (NFE = 1) with a quantized model: `x_hat = D(y, A, s_r)` on int8
//! kernels, observed pixels then taken from `y` (docs/ambient-unet-spec.md, "Samplers").
//!
//! The graph (see [`super`] for how the spec maps onto the kernels) runs in one caller-provided
//! scratch of 32-bit words: GroupNorm's f32 statistics first, then a byte arena for the int8
//! activations. Each buffer is freed as soon as its last reader has run, so the peak is a few
//! feature maps, not the whole network: a ResBlock runs its skip GatedConv(1) and norm1 first,
//! frees its input, then conv1, norm2, conv2, and adds the residual into conv2's output. The
//! decoder's `concat[x, skip_l]` is read from the two buffers
//! ([`super::layout::Channels::concat`]). Buffers go where the blob's `plan` says (offsets a
//! host packed offline from [`buffer_events`]; each checked against the buffers live at the
//! time), or first fit without one. The same walk, without running kernels, checks every
//! layer's parameters and the plan when the model is loaded and measures the arena's peak
//! ([`super::model::Int8Model::scratch_words`]), so a run can never ask for more scratch than
//! the model reported.

use super::add::add_in_place;
use super::conv::ConvGeometry;
use super::layout::Channels;
use super::lut::apply_lut;
use super::model::{for_each_block, name, BlockShape, Int8Model, ModelError};
use super::resample::{avg_pool_2x2, upsample_nearest_2x};
use crate::error::CoreError;

/// The most activation buffers alive at once (the walk needs at most 4 + levels).
const MAX_LIVE: usize = 16;

/// A buffer of the arena: its allocation index in the walk, byte offset and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Buf {
    id: usize,
    at: usize,
    len: usize,
}

/// A block's input: one buffer, or a concatenation `[first, second]` of two.
#[derive(Debug, Clone, Copy)]
enum Input {
    One(Buf, usize),
    Concat(Buf, usize, Buf, usize),
}

/// What the walk does with the arena, in order: the `id`-th allocation of `len` bytes, or
/// the release of allocation `id` (after its last reader). [`buffer_events`] reports them so
/// that a host can plan offsets offline (`ambient_cpu::quantize` packs them greedily by
/// size, as TFLM's `GreedyMemoryPlanner` does, and stores them in the blob as `plan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferEvent {
    Alloc { id: usize, len: usize },
    Free { id: usize },
}

/// Placement of buffers in an arena of unbounded size, recording the peak: at the offsets of
/// a plan (each checked against the live buffers), or else first fit.
struct Arena<'p> {
    /// Live buffers, sorted by offset.
    live: heapless::Vec<Buf, MAX_LIVE>,
    peak: usize,
    count: usize,
    plan: Option<&'p [i32]>,
    events: Option<&'p mut dyn FnMut(BufferEvent)>,
}

fn too_many() -> ModelError {
    ModelError::Input(CoreError::InvalidParameter("too many live buffers"))
}

fn bad_plan(problem: &'static str) -> ModelError {
    ModelError::Tensor {
        name: name("", "plan"),
        problem,
    }
}

impl<'p> Arena<'p> {
    fn new(plan: Option<&'p [i32]>) -> Self {
        Arena {
            live: heapless::Vec::new(),
            peak: 0,
            count: 0,
            plan,
            events: None,
        }
    }

    fn alloc(&mut self, len: usize) -> Result<Buf, ModelError> {
        let id = self.count;
        let at = match self.plan {
            Some(plan) => {
                let at = *plan.get(id).ok_or(bad_plan("fewer offsets than buffers"))?;
                let at = usize::try_from(at).map_err(|_| bad_plan("negative offset"))?;
                if at > 1 << 30 {
                    return Err(bad_plan("offset beyond 1 GiB"));
                }
                if self
                    .live
                    .iter()
                    .any(|b| at < b.at + b.len && b.at < at + len)
                {
                    return Err(bad_plan("overlaps a live buffer"));
                }
                at
            }
            None => {
                // The lowest offset where len bytes fit between live buffers.
                let mut at = 0;
                for b in self.live.iter() {
                    if b.at >= at + len {
                        break;
                    }
                    at = b.at + b.len;
                }
                at
            }
        };
        let buf = Buf { id, at, len };
        let index = self
            .live
            .iter()
            .position(|b| b.at > at)
            .unwrap_or(self.live.len());
        self.live.insert(index, buf).map_err(|_| too_many())?;
        self.peak = self.peak.max(at + len);
        self.count += 1;
        if let Some(f) = self.events.as_mut() {
            f(BufferEvent::Alloc { id, len });
        }
        Ok(buf)
    }

    fn free(&mut self, buf: Buf) {
        self.live.retain(|b| *b != buf);
        if let Some(f) = self.events.as_mut() {
            f(BufferEvent::Free { id: buf.id });
        }
    }

    /// After the walk: a plan must have had exactly one offset per buffer.
    fn finish(&self) -> Result<(), ModelError> {
        match self.plan {
            Some(plan) if plan.len() != self.count => Err(bad_plan("more offsets than buffers")),
            _ => Ok(()),
        }
    }
}

/// What [`plan`] finds: the arena's peak and the widest GroupNorm.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub arena_bytes: usize,
    pub norm_channels: usize,
}

/// The walk over the graph: with `data` it runs the kernels, without it only places buffers
/// and checks each layer's parameters.
struct Walk<'m, 'd> {
    model: &'m Int8Model<'m>,
    arena: Arena<'d>,
    data: Option<Data<'d>>,
    norm_channels: usize,
}

struct Data<'d> {
    bytes: &'d mut [i8],
    stats: &'d mut [f32],
}

fn input_error(e: CoreError) -> ModelError {
    ModelError::Input(e)
}

/// An arena split around one output buffer: the bytes before it, the output, the bytes after.
type Split<'s> = (&'s [i8], &'s mut [i8], &'s [i8]);

/// `bytes` split around `out`.
fn split_out(bytes: &mut [i8], out: Buf) -> Result<Split<'_>, ModelError> {
    let end = out.at + out.len;
    if end > bytes.len() {
        return Err(input_error(CoreError::ShapeMismatch {
            what: "scratch arena",
            expected: end,
            got: bytes.len(),
        }));
    }
    let (left, rest) = bytes.split_at_mut(out.at);
    let (mid, right) = rest.split_at_mut(out.len);
    Ok((left, mid, right))
}

/// Two disjoint buffers of the arena, mutable.
fn two_mut(bytes: &mut [i8], a: Buf, b: Buf) -> Result<(&mut [i8], &mut [i8]), ModelError> {
    let (first, second, swap) = if a.at <= b.at {
        (a, b, false)
    } else {
        (b, a, true)
    };
    if first.at + first.len > second.at {
        return Err(input_error(CoreError::InvalidParameter("buffers overlap")));
    }
    if second.at + second.len > bytes.len() {
        return Err(input_error(CoreError::ShapeMismatch {
            what: "scratch arena",
            expected: second.at + second.len,
            got: bytes.len(),
        }));
    }
    let (lo, hi) = bytes.split_at_mut(second.at);
    let (x, y) = (
        &mut lo[first.at..first.at + first.len],
        &mut hi[..second.len],
    );
    Ok(if swap { (y, x) } else { (x, y) })
}

/// Buffer `b` of the arena, which must lie wholly before or after the output `out`.
fn view<'s>(left: &'s [i8], right: &'s [i8], out: Buf, b: Buf) -> Result<&'s [i8], ModelError> {
    let overlap = || input_error(CoreError::InvalidParameter("buffer overlaps its output"));
    if b.at + b.len <= out.at {
        Ok(&left[b.at..b.at + b.len])
    } else if b.at >= out.at + out.len {
        let s = b.at - out.at - out.len;
        right.get(s..s + b.len).ok_or_else(overlap)
    } else {
        Err(overlap())
    }
}

fn channels<'s>(
    left: &'s [i8],
    right: &'s [i8],
    out: Buf,
    input: Input,
) -> Result<Channels<'s>, ModelError> {
    Ok(match input {
        Input::One(b, c) => Channels::one(view(left, right, out, b)?, c),
        Input::Concat(a, ca, b, cb) => Channels::concat(
            view(left, right, out, a)?,
            ca,
            view(left, right, out, b)?,
            cb,
        ),
    })
}

impl<'m> Walk<'m, '_> {
    fn alloc(&mut self, len: usize) -> Result<Buf, ModelError> {
        self.arena.alloc(len)
    }

    fn free_input(&mut self, input: Input) {
        match input {
            Input::One(b, _) => self.arena.free(b),
            Input::Concat(a, _, b, _) => {
                self.arena.free(a);
                self.arena.free(b);
            }
        }
    }

    /// `out <- layer(input)`, a gated convolution of kernel `k` on a `side x side` map.
    fn gated(
        &mut self,
        layer: &str,
        input: Input,
        cin: usize,
        cout: usize,
        side: usize,
        kernel: usize,
    ) -> Result<Buf, ModelError> {
        let geometry = ConvGeometry {
            height: side,
            width: side,
            in_channels: cin,
            out_channels: cout,
            kernel,
        };
        geometry.validate().map_err(|error| ModelError::Layer {
            name: name("", layer),
            error,
        })?;
        let conv = self.model.gated(layer, geometry)?;
        let out = self.alloc(geometry.output_len())?;
        if let Some(d) = &mut self.data {
            let (left, o, right) = split_out(d.bytes, out)?;
            conv.run(channels(left, right, out, input)?, o)
                .map_err(input_error)?;
        }
        Ok(out)
    }

    /// `out <- SiLU(GN(input))`: the GroupNorm `layer` and its SiLU table, in a new buffer.
    fn norm_silu(
        &mut self,
        layer: &str,
        input: Input,
        channels_in: usize,
        side: usize,
    ) -> Result<Buf, ModelError> {
        let (norm, silu) = self.model.norm(layer, side, channels_in)?;
        self.norm_channels = self.norm_channels.max(channels_in);
        let out = self.alloc(side * side * channels_in)?;
        if let Some(d) = &mut self.data {
            let (left, o, right) = split_out(d.bytes, out)?;
            norm.run(channels(left, right, out, input)?, d.stats, o)
                .map_err(input_error)?;
            apply_lut(silu, o);
        }
        Ok(out)
    }

    /// One ResBlock; frees its input buffers when `consume`. Returns its output.
    fn block(&mut self, s: BlockShape, input: Input, consume: bool) -> Result<Buf, ModelError> {
        let p = s.id.prefix();
        let (cin, cout, side) = (s.cin, s.cout, s.side);
        let skip = if s.has_skip() {
            Some(self.gated(&name(&p, "skip"), input, cin, cout, side, 1)?)
        } else {
            None
        };
        let t1 = self.norm_silu(&name(&p, "norm1"), input, cin, side)?;
        if skip.is_some() && consume {
            self.free_input(input);
        }
        let h = self.gated(&name(&p, "conv1"), Input::One(t1, cin), cin, cout, side, 3)?;
        self.arena.free(t1);
        let t2 = self.norm_silu(&name(&p, "norm2"), Input::One(h, cout), cout, side)?;
        self.arena.free(h);
        let h2 = self.gated(
            &name(&p, "conv2"),
            Input::One(t2, cout),
            cout,
            cout,
            side,
            3,
        )?;
        self.arena.free(t2);
        let residual = match (skip, input) {
            (Some(b), _) => b,
            (None, Input::One(b, _)) => b,
            (None, Input::Concat(..)) => {
                return Err(input_error(CoreError::InvalidParameter(
                    "identity residual of a concatenation",
                )))
            }
        };
        let add = self.model.add(&p)?;
        if let Some(d) = &mut self.data {
            let (left, o, right) = split_out(d.bytes, h2)?;
            add_in_place(&add, o, view(left, right, h2, residual)?).map_err(input_error)?;
        }
        if let Some(b) = skip {
            self.arena.free(b);
        } else if consume {
            self.free_input(input);
        }
        Ok(h2)
    }

    /// `dst <- f(src)` for a pooling or upsampling step (new buffer of `len`), freeing `src`.
    fn resample(
        &mut self,
        src: Buf,
        len: usize,
        f: impl FnOnce(&[i8], &mut [i8]) -> Result<(), CoreError>,
    ) -> Result<Buf, ModelError> {
        let dst = self.alloc(len)?;
        if let Some(d) = &mut self.data {
            let (left, o, right) = split_out(d.bytes, dst)?;
            f(view(left, right, dst, src)?, o).map_err(input_error)?;
        }
        self.arena.free(src);
        Ok(dst)
    }

    /// The whole graph from the quantized input `[y, m]` to the quantized `F`; `fill` writes
    /// the input buffers (HWC, `C` channels each). Returns `F`'s buffer.
    fn network(&mut self, fill: impl FnOnce(&mut [i8], &mut [i8])) -> Result<Buf, ModelError> {
        let cfg = *self.model.config();
        let c = cfg.img_channels as usize;
        let ch = cfg.ch as usize;
        let res = cfg.img_resolution as usize;
        let levels = cfg.levels as usize;
        let yq = self.alloc(res * res * c)?;
        let mq = self.alloc(res * res * c)?;
        if let Some(d) = &mut self.data {
            let (yb, mb) = two_mut(d.bytes, yq, mq)?;
            fill(yb, mb);
        }
        let mut x = self.gated("in_conv", Input::Concat(yq, c, mq, c), 2 * c, ch, res, 3)?;
        self.arena.free(yq);
        self.arena.free(mq);

        let mut skips = [Buf {
            id: 0,
            at: 0,
            len: 0,
        }; 4];
        let mut skip_channels = [0usize; 4];
        let mut cur = ch;
        let mut side = res;
        for_each_block(&cfg, |s| -> Result<(), ModelError> {
            match s.id {
                super::model::BlockId::Enc { level, index } => {
                    x = self.block(s, Input::One(x, s.cin), true)?;
                    cur = s.cout;
                    if index + 1 == cfg.blocks as usize {
                        skips[level] = x;
                        skip_channels[level] = cur;
                        if level + 1 < levels {
                            // The skip stays; the pooled copy goes on.
                            let pooled = self.alloc(side / 2 * (side / 2) * cur)?;
                            if let Some(d) = &mut self.data {
                                let (left, o, right) = split_out(d.bytes, pooled)?;
                                avg_pool_2x2(view(left, right, pooled, x)?, side, side, cur, o)
                                    .map_err(input_error)?;
                            }
                            x = pooled;
                            side /= 2;
                        }
                    }
                }
                super::model::BlockId::Mid => {
                    // x is also skip_{L-1}: keep it.
                    x = self.block(s, Input::One(x, s.cin), false)?;
                }
                super::model::BlockId::Dec { level, index } => {
                    let input = match s.concat_first {
                        Some(first) if index == 0 => {
                            Input::Concat(x, first, skips[level], skip_channels[level])
                        }
                        _ => Input::One(x, s.cin),
                    };
                    x = self.block(s, input, true)?;
                    cur = s.cout;
                    if index + 1 == cfg.blocks as usize && level > 0 {
                        let len = 4 * side * side * cur;
                        let (h, c) = (side, cur);
                        x = self.resample(x, len, |a, b| upsample_nearest_2x(a, h, h, c, b))?;
                        side *= 2;
                    }
                }
            }
            Ok(())
        })?;
        let t = self.norm_silu("out_norm", Input::One(x, cur), cur, side)?;
        self.arena.free(x);
        let f = self.gated("out_conv", Input::One(t, cur), cur, c, side, 3)?;
        self.arena.free(t);
        Ok(f)
    }
}

/// Walks the graph without data: checks every layer and measures the arena (used by
/// [`Int8Model::from_blob`]).
pub(crate) fn plan(model: &Int8Model) -> Result<Plan, ModelError> {
    let mut walk = Walk {
        model,
        arena: Arena::new(model.plan()),
        data: None,
        norm_channels: 0,
    };
    walk.network(|_, _| {})?;
    walk.arena.finish()?;
    Ok(Plan {
        arena_bytes: walk.arena.peak,
        norm_channels: walk.norm_channels,
    })
}

/// Reports every allocation and release of the walk, in order, to `f` (for a host that plans
/// the arena offline; the events do not depend on where buffers are placed).
pub fn buffer_events(model: &Int8Model, f: &mut dyn FnMut(BufferEvent)) -> Result<(), ModelError> {
    let mut arena = Arena::new(None);
    arena.events = Some(f);
    let mut walk = Walk {
        model,
        arena,
        data: None,
        norm_channels: 0,
    };
    walk.network(|_, _| {})?;
    Ok(())
}

/// Restores one measurement: `out <- m y + (1 - m) D(y, m, s_r)` with `D`'s missing pixels
/// from the int8 network (`sigma_data F`, dequantized), every array CHW of
/// [`Int8Model::image_len`] f32, `m` exactly 0 or 1 per element. Pixels the mask erases are
/// never read. `scratch` holds at least [`Int8Model::scratch_words`] words.
pub fn restore(
    model: &Int8Model,
    measurement: &[f32],
    mask: &[f32],
    scratch: &mut [u32],
    out: &mut [f32],
) -> Result<(), ModelError> {
    let n = model.image_len();
    let check = |what, got| {
        if got == n {
            Ok(())
        } else {
            Err(input_error(CoreError::ShapeMismatch {
                what,
                expected: n,
                got,
            }))
        }
    };
    check("measurement", measurement.len())?;
    check("mask", mask.len())?;
    check("restoration", out.len())?;
    if scratch.len() < model.scratch_words() {
        return Err(input_error(CoreError::ShapeMismatch {
            what: "scratch words",
            expected: model.scratch_words(),
            got: scratch.len(),
        }));
    }
    for (&y, &m) in measurement.iter().zip(mask) {
        if m != 0.0 && m != 1.0 {
            return Err(input_error(CoreError::InvalidParameter(
                "mask values must be 0 or 1",
            )));
        }
        if m == 1.0 && !y.is_finite() {
            return Err(input_error(CoreError::NonFinite("measurement")));
        }
    }
    let (stats, bytes) = scratch.split_at_mut(model.norm_words());
    let stats: &mut [f32] = bytemuck::cast_slice_mut(stats);
    let bytes: &mut [i8] = bytemuck::cast_slice_mut(bytes);
    let cfg = model.config();
    let c = cfg.img_channels as usize;
    let hw = (cfg.img_resolution * cfg.img_resolution) as usize;
    let io = *model.io();
    let mut walk = Walk {
        model,
        arena: Arena::new(model.plan()),
        data: Some(Data { bytes, stats }),
        norm_channels: 0,
    };
    let f = walk.network(|yq, mq| {
        for p in 0..hw {
            for ch in 0..c {
                let k = ch * hw + p;
                let observed = mask[k] == 1.0;
                yq[p * c + ch] = io.y.quantize(if observed { measurement[k] } else { 0.0 });
                mq[p * c + ch] = io.input.quantize(if observed { 1.0 } else { 0.0 });
            }
        }
    })?;
    let data = walk.data.as_ref().map(|d| &d.bytes[f.at..f.at + f.len]);
    let fq = data.ok_or_else(|| input_error(CoreError::InvalidParameter("no output")))?;
    for p in 0..hw {
        for ch in 0..c {
            let k = ch * hw + p;
            out[k] = if mask[k] == 1.0 {
                measurement[k]
            } else {
                io.output.dequantize(fq[p * c + ch])
            };
        }
    }
    Ok(())
}
