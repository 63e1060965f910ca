//! Single-step restoration on the fast kernels: the core executor's graph
//! (`ambient_core::int8::restore`), step for step, with the same input checks and errors, in
//! the buffers of a [`FastWorkspace`] instead of a planned arena. Each convolution reads a
//! padded i16 map that its producer writes directly: `SiLU(GN(.))` for conv1, conv2 and
//! out_conv, the quantized `[y, m]` for in_conv, the block input for the skip GatedConv(1).

use ambient_core::int8::model::ModelError;
use ambient_core::int8::resample::{avg_pool_2x2, upsample_nearest_2x};
use ambient_core::CoreError;

use super::gated_layer::GatedLayer;
use super::model::{FastBlock, FastInt8Model};
use super::norm::{norm_silu, NormLayer, NormScratch};
use super::padded::{fill_from_int8, PaddedGeometry};
use super::workspace::FastWorkspace;
use super::Isa;

fn input_error(e: CoreError) -> ModelError {
    ModelError::Input(e)
}

/// `out <- layer(padded)` on the model's kernels.
fn conv(isa: Isa, layer: &GatedLayer, padded: &[i16], out: &mut [i8]) {
    let g = &layer.geometry;
    let pg = PaddedGeometry::new(g.height, g.width, g.in_channels);
    let out = &mut out[..g.output_len()];
    let done = match isa {
        Isa::Avx512Vnni => super::gated_avx2::run_vnni(layer, &pg, padded, out),
        Isa::Avx2 => super::gated_avx2::run_avx2(layer, &pg, padded, out),
        Isa::Portable => false,
    };
    if !done {
        super::gated_portable::run_portable(layer, &pg, padded, out);
    }
}

/// `out <- conv(SiLU(GN([a, b])))`.
#[allow(clippy::too_many_arguments)]
fn norm_conv(
    isa: Isa,
    norm: &NormLayer,
    layer: &GatedLayer,
    a: &[i8],
    ca: usize,
    b: &[i8],
    cb: usize,
    scratch: &mut NormScratch,
    padded: &mut [i16],
    out: &mut [i8],
) {
    let g = &layer.geometry;
    let pg = PaddedGeometry::new(g.height, g.width, g.in_channels);
    norm_silu(
        norm,
        isa,
        &pg,
        a,
        ca,
        b,
        cb,
        layer.input_zero_point,
        scratch,
        padded,
    );
    conv(isa, layer, padded, out);
}

/// One ResBlock on the input `[a, b]` (`cb = 0` for a single map) into `out`.
#[allow(clippy::too_many_arguments)]
fn block(
    isa: Isa,
    blk: &FastBlock,
    a: &[i8],
    ca: usize,
    b: &[i8],
    cb: usize,
    ws_h: &mut [i8],
    ws_r: &mut [i8],
    padded: &mut [i16],
    scratch: &mut NormScratch,
    out: &mut [i8],
) -> Result<(), ModelError> {
    let s = &blk.shape;
    let pixels = s.side * s.side;
    let (a, b) = (&a[..pixels * ca], &b[..pixels * cb]);
    let len = pixels * s.cout;
    let (h, r, out) = (&mut ws_h[..len], &mut ws_r[..len], &mut out[..len]);
    if let Some(skip) = &blk.skip {
        let pg = PaddedGeometry::new(s.side, s.side, s.cin);
        fill_from_int8(&pg, a, ca, b, cb, skip.input_zero_point, padded);
        conv(isa, skip, padded, r);
    }
    norm_conv(
        isa, &blk.norm1, &blk.conv1, a, ca, b, cb, scratch, padded, h,
    );
    norm_conv(
        isa,
        &blk.norm2,
        &blk.conv2,
        h,
        s.cout,
        &[],
        0,
        scratch,
        padded,
        out,
    );
    let residual: &[i8] = match (&blk.skip, cb) {
        (Some(_), _) => r,
        (None, 0) => a,
        (None, _) => {
            return Err(input_error(CoreError::InvalidParameter(
                "identity residual of a concatenation",
            )))
        }
    };
    super::add::add_in_place(&blk.add, isa, out, residual);
    Ok(())
}

/// The core's checks of a restoration's inputs (`ambient_core::int8::restore::restore`), in its
/// order and with its errors.
fn check_inputs(
    n: usize,
    measurement: &[f32],
    mask: &[f32],
    out: &[f32],
) -> Result<(), ModelError> {
    for (what, got) in [
        ("measurement", measurement.len()),
        ("mask", mask.len()),
        ("restoration", out.len()),
    ] {
        if got != n {
            return Err(input_error(CoreError::ShapeMismatch {
                what,
                expected: n,
                got,
            }));
        }
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
    Ok(())
}

/// Restores one measurement exactly as `ambient_core::int8::restore::restore` does (the same
/// output bit for bit, the same errors): `out <- m y + (1 - m) D(y, m, s_r)`, every array CHW
/// of [`FastInt8Model::image_len`] f32, `m` 0 or 1. `ws` comes from [`FastWorkspace::new`]
/// for this model (one of another shape is an error).
pub fn restore_fast(
    model: &FastInt8Model,
    ws: &mut FastWorkspace,
    measurement: &[f32],
    mask: &[f32],
    out: &mut [f32],
) -> Result<(), ModelError> {
    let n = model.image_len();
    check_inputs(n, measurement, mask, out)?;
    if !ws.fits(model) {
        return Err(input_error(CoreError::InvalidParameter(
            "workspace made for another model",
        )));
    }
    let isa = model.isa;
    let cfg = &model.config;
    let c = cfg.img_channels as usize;
    let res = cfg.img_resolution as usize;
    let hw = res * res;
    let levels = cfg.levels as usize;
    let io = model.io;
    for p in 0..hw {
        for ch in 0..c {
            let k = ch * hw + p;
            let observed = mask[k] == 1.0;
            ws.yq[p * c + ch] = io.y.quantize(if observed { measurement[k] } else { 0.0 });
            ws.mq[p * c + ch] = io.input.quantize(if observed { 1.0 } else { 0.0 });
        }
    }
    let pg = PaddedGeometry::new(res, res, 2 * c);
    let zp = model.in_conv.input_zero_point;
    fill_from_int8(&pg, &ws.yq, c, &ws.mq, c, zp, &mut ws.padded);
    conv(isa, &model.in_conv, &ws.padded, &mut ws.x);

    let mut side = res;
    for blk in &model.blocks {
        let s = blk.shape;
        use ambient_core::int8::model::BlockId;
        let concat = match s.id {
            BlockId::Dec { level, index: 0 } => s.concat_first.map(|first| (level, first)),
            _ => None,
        };
        let pixels = side * side;
        match concat {
            Some((level, first)) => {
                let skip_c = s.cin - first;
                block(
                    isa,
                    blk,
                    &ws.x[..pixels * first],
                    first,
                    &ws.skips[level][..pixels * skip_c],
                    skip_c,
                    &mut ws.h,
                    &mut ws.r,
                    &mut ws.padded,
                    &mut ws.norm,
                    &mut ws.next,
                )?;
            }
            None => block(
                isa,
                blk,
                &ws.x,
                s.cin,
                &[],
                0,
                &mut ws.h,
                &mut ws.r,
                &mut ws.padded,
                &mut ws.norm,
                &mut ws.next,
            )?,
        }
        std::mem::swap(&mut ws.x, &mut ws.next);
        let len = pixels * s.cout;
        let last_of_level = |index: usize| index + 1 == cfg.blocks as usize;
        match s.id {
            BlockId::Enc { level, index } if last_of_level(index) => {
                ws.skips[level][..len].copy_from_slice(&ws.x[..len]);
                if level + 1 < levels {
                    avg_pool_2x2(&ws.x[..len], side, side, s.cout, &mut ws.next[..len / 4])
                        .map_err(input_error)?;
                    std::mem::swap(&mut ws.x, &mut ws.next);
                    side /= 2;
                }
            }
            BlockId::Dec { level, index } if last_of_level(index) && level > 0 => {
                upsample_nearest_2x(&ws.x[..len], side, side, s.cout, &mut ws.next[..4 * len])
                    .map_err(input_error)?;
                std::mem::swap(&mut ws.x, &mut ws.next);
                side *= 2;
            }
            _ => {}
        }
    }
    let cur = model.out_norm.channels;
    norm_conv(
        isa,
        &model.out_norm,
        &model.out_conv,
        &ws.x[..hw * cur],
        cur,
        &[],
        0,
        &mut ws.norm,
        &mut ws.padded,
        &mut ws.next,
    );
    let fq = &ws.next[..hw * c];
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
