//! [`FastInt8Model`]: every layer of an [`Int8Model`] copied out of the blob once and prepared
//! for the fast kernels (packed filters, split shifts), in the executor's order, with the
//! sizes its workspace needs. The layers are looked up with the core's own accessors, so a blob
//! the core accepts is accepted here with the same parameters.

use ambient_core::int8::add::AddParams;
use ambient_core::int8::blob::BlobConfig;
use ambient_core::int8::conv::ConvGeometry;
use ambient_core::int8::model::{
    for_each_block, name, BlockShape, Int8Model, IoParams, ModelError,
};

use super::gated_layer::GatedLayer;
use super::norm::NormLayer;
use super::padded::PaddedGeometry;
use super::Isa;

/// One ResBlock's layers.
#[derive(Debug, Clone)]
pub struct FastBlock {
    pub shape: BlockShape,
    pub skip: Option<GatedLayer>,
    pub norm1: NormLayer,
    pub conv1: GatedLayer,
    pub norm2: NormLayer,
    pub conv2: GatedLayer,
    pub add: AddParams,
}

/// A quantized model ready for [`super::restore_fast`].
#[derive(Debug, Clone)]
pub struct FastInt8Model {
    pub isa: Isa,
    pub config: BlobConfig,
    pub io: IoParams,
    pub in_conv: GatedLayer,
    pub blocks: Vec<FastBlock>,
    pub out_norm: NormLayer,
    pub out_conv: GatedLayer,
    /// The largest int8 feature map (elements) and padded map (i16), and the widest GroupNorm.
    pub max_map: usize,
    pub max_padded: usize,
    pub max_norm: usize,
}

struct Sizes {
    map: usize,
    padded: usize,
    norm: usize,
}

impl Sizes {
    fn conv(&mut self, g: &ConvGeometry) {
        self.map = self.map.max(g.pixels() * g.in_channels).max(g.output_len());
        self.padded = self
            .padded
            .max(PaddedGeometry::new(g.height, g.width, g.in_channels).len());
    }
}

fn gated(
    model: &Int8Model,
    layer: &str,
    cin: usize,
    cout: usize,
    side: usize,
    kernel: usize,
    sizes: &mut Sizes,
) -> Result<GatedLayer, ModelError> {
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
    sizes.conv(&geometry);
    Ok(GatedLayer::new(&model.gated(layer, geometry)?))
}

fn norm(
    model: &Int8Model,
    layer: &str,
    side: usize,
    channels: usize,
    sizes: &mut Sizes,
) -> Result<NormLayer, ModelError> {
    let (n, silu) = model.norm(layer, side, channels)?;
    sizes.norm = sizes.norm.max(channels);
    Ok(NormLayer::new(&n, silu))
}

impl FastInt8Model {
    /// The model on the fastest kernels this machine runs ([`Isa::detect`]).
    pub fn new(model: &Int8Model) -> Result<Self, ModelError> {
        Self::with_isa(model, Isa::detect())
    }

    /// The model on the kernels of `isa`, or the portable ones where `isa` is not available.
    pub fn with_isa(model: &Int8Model, isa: Isa) -> Result<Self, ModelError> {
        let isa = if isa.available() { isa } else { Isa::Portable };
        let cfg = *model.config();
        let (c, ch, res) = (
            cfg.img_channels as usize,
            cfg.ch as usize,
            cfg.img_resolution as usize,
        );
        let mut sizes = Sizes {
            map: 0,
            padded: 0,
            norm: 0,
        };
        let in_conv = gated(model, "in_conv", 2 * c, ch, res, 3, &mut sizes)?;
        let mut blocks = Vec::new();
        let mut last = (ch, res);
        for_each_block(&cfg, |s| -> Result<(), ModelError> {
            let p = s.id.prefix();
            let skip = if s.has_skip() {
                Some(gated(
                    model,
                    &name(&p, "skip"),
                    s.cin,
                    s.cout,
                    s.side,
                    1,
                    &mut sizes,
                )?)
            } else {
                None
            };
            blocks.push(FastBlock {
                shape: s,
                skip,
                norm1: norm(model, &name(&p, "norm1"), s.side, s.cin, &mut sizes)?,
                conv1: gated(
                    model,
                    &name(&p, "conv1"),
                    s.cin,
                    s.cout,
                    s.side,
                    3,
                    &mut sizes,
                )?,
                norm2: norm(model, &name(&p, "norm2"), s.side, s.cout, &mut sizes)?,
                conv2: gated(
                    model,
                    &name(&p, "conv2"),
                    s.cout,
                    s.cout,
                    s.side,
                    3,
                    &mut sizes,
                )?,
                add: model.add(&p)?,
            });
            last = (s.cout, s.side);
            Ok(())
        })?;
        // After the last decoder block the map is back at full resolution.
        let (cur, _) = last;
        let out_norm = norm(model, "out_norm", res, cur, &mut sizes)?;
        let out_conv = gated(model, "out_conv", cur, c, res, 3, &mut sizes)?;
        Ok(FastInt8Model {
            isa,
            config: cfg,
            io: *model.io(),
            in_conv,
            blocks,
            out_norm,
            out_conv,
            max_map: sizes.map,
            max_padded: sizes.padded,
            max_norm: sizes.norm,
        })
    }

    /// `C * H * W`: the length of a measurement, a mask and a restoration.
    pub fn image_len(&self) -> usize {
        let c = &self.config;
        (c.img_channels * c.img_resolution * c.img_resolution) as usize
    }
}
