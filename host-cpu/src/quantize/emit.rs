//! From the folded network and its calibrated ranges to the blob's tensors
//! (`ambient_core::int8::model` names them): every activation's int8 quantization, each
//! layer's quantized weights and requantization parameters, with TFLite's conventions as the
//! core kernels implement them.
//!
//! Activation quantization: `QuantParams::from_range` of the calibrated range, except
//! - the input `[c_in y, m]`, whose range is known: `[-c_in, max(c_in, 1)]` (|y| <= 1);
//! - each decoder concatenation's two operands, which must share one quantization: the output
//!   of encoder level l's last block (`skip_l`) and the tensor it is concatenated with (the
//!   mid block's output for the deepest level, else the last block of decoder level l + 1)
//!   both get the union of their ranges, as TFLite's converter does for CONCATENATION.
//!   Pooling and upsampling keep their input's quantization.
//!
//! The int16 main path of every gated convolution gets `s_m = max |conv(x, W)| / 32767`.

use std::collections::HashMap;

use ambient_core::int8::add::AddParams;
use ambient_core::int8::blob::DType;
use ambient_core::int8::conv::ConvGeometry;
use ambient_core::int8::gated::{quantize_gated_conv, GatedConvBuffers, GatedConvScales, MAIN_MAX};
use ambient_core::int8::lut::{build_lut, silu};
use ambient_core::int8::model::{for_each_block, name, BlockId};
use ambient_core::int8::quant::QuantParams;
use ambient_core::precond::c_in;

use super::calibrate::Ranges;
use super::folded::FoldedNet;

/// One tensor of the blob, owned.
#[derive(Debug, Clone)]
pub struct OwnedTensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<u32>,
    pub data: Vec<u8>,
}

impl OwnedTensor {
    fn i8(name: String, shape: Vec<u32>, v: &[i8]) -> Self {
        OwnedTensor {
            name,
            dtype: DType::I8,
            shape,
            data: v.iter().map(|&x| x as u8).collect(),
        }
    }

    pub(crate) fn i32(name: String, shape: Vec<u32>, v: &[i32]) -> Self {
        OwnedTensor {
            name,
            dtype: DType::I32,
            shape,
            data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    fn f32(name: String, shape: Vec<u32>, v: &[f32]) -> Self {
        OwnedTensor {
            name,
            dtype: DType::F32,
            shape,
            data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

fn qp(r: super::calibrate::Range) -> Result<QuantParams, String> {
    QuantParams::from_range(r.min, r.max).map_err(|e| e.to_string())
}

/// The activation quantizations that are decided by ties, not by one tensor's range: block
/// outputs (`{P}.out`) and `in_conv.out`.
fn activation_params(
    net: &FoldedNet,
    ranges: &Ranges,
) -> Result<HashMap<String, QuantParams>, String> {
    let cfg = &net.config;
    let levels = cfg.levels as usize;
    let last = cfg.blocks as usize - 1;
    let mut out_ranges: HashMap<String, super::calibrate::Range> = HashMap::new();
    for_each_block(cfg, |s| -> Result<(), String> {
        let p = s.id.prefix().to_string();
        out_ranges.insert(p.clone(), ranges.get(&name(&p, "out"))?);
        Ok(())
    })?;
    let prefix = |id: BlockId| id.prefix().to_string();
    for l in 0..levels {
        let skip = prefix(BlockId::Enc {
            level: l,
            index: last,
        });
        let partner = if l + 1 == levels {
            prefix(BlockId::Mid)
        } else {
            prefix(BlockId::Dec {
                level: l + 1,
                index: last,
            })
        };
        let u = out_ranges[&skip].union(out_ranges[&partner]);
        out_ranges.insert(skip, u);
        out_ranges.insert(partner, u);
    }
    let mut q = HashMap::new();
    for (k, r) in out_ranges {
        q.insert(k, qp(r)?);
    }
    q.insert("in_conv".into(), qp(ranges.get("in_conv.out")?)?);
    Ok(q)
}

struct Emitter<'a> {
    net: &'a FoldedNet,
    ranges: &'a Ranges,
    tensors: Vec<OwnedTensor>,
}

impl Emitter<'_> {
    /// Gated convolution `layer` on a `side x side` map from `input` to `output`.
    fn gated(
        &mut self,
        layer: &str,
        side: usize,
        input: QuantParams,
        output: QuantParams,
    ) -> Result<(), String> {
        let conv = &self.net.convs[layer];
        let (cin, cout, k) = (conv.cin, conv.cout, conv.k);
        let geometry = ConvGeometry {
            height: side,
            width: side,
            in_channels: cin,
            out_channels: cout,
            kernel: k,
        };
        let main_max = self.ranges.get(&name(layer, "main"))?.abs_max();
        // An all-zero main path (e.g. a zero-initialised conv2) has any scale; 1 / 32767.
        let main_scale = if main_max > 0.0 {
            main_max / MAIN_MAX as f32
        } else {
            1.0 / MAIN_MAX as f32
        };
        let scales = GatedConvScales {
            input,
            main_scale,
            gate: qp(self.ranges.get(&name(layer, "gate"))?)?,
            output,
        };
        let n = conv.w.len();
        let (mut w, mut g) = (vec![0i8; n], vec![0i8; n]);
        let (mut ws, mut gs) = (vec![0f32; cout], vec![0f32; cout]);
        let mut c = vec![0i32; 5 * cout];
        let (mm, rest) = c.split_at_mut(cout);
        let (ms, rest) = rest.split_at_mut(cout);
        let (gm, rest) = rest.split_at_mut(cout);
        let (gsh, bias) = rest.split_at_mut(cout);
        let scalars = quantize_gated_conv(
            &geometry,
            &conv.w,
            &conv.g,
            &conv.b,
            &scales,
            GatedConvBuffers {
                weights: &mut w,
                gates: &mut g,
                weight_scales: &mut ws,
                gate_scales: &mut gs,
                main_multipliers: mm,
                main_shifts: ms,
                gate_multipliers: gm,
                gate_shifts: gsh,
                bias,
            },
        )
        .map_err(|e| format!("{layer}: {e}"))?;
        let filters = vec![cout as u32, k as u32, k as u32, cin as u32];
        self.tensors.push(OwnedTensor::i8(
            name(layer, "w").to_string(),
            filters.clone(),
            &w,
        ));
        self.tensors
            .push(OwnedTensor::i8(name(layer, "g").to_string(), filters, &g));
        self.tensors.push(OwnedTensor::i32(
            name(layer, "c").to_string(),
            vec![5, cout as u32],
            &c,
        ));
        let p = [
            input.zero_point,
            scales.gate.zero_point,
            scalars.output.multiplier,
            scalars.output.shift,
            output.zero_point,
        ];
        self.tensors
            .push(OwnedTensor::i32(name(layer, "p").to_string(), vec![5], &p));
        self.tensors.push(OwnedTensor::i8(
            name(layer, "lut").to_string(),
            vec![256],
            &scalars.sigmoid,
        ));
        Ok(())
    }

    /// GroupNorm `layer` reading `input`; returns the SiLU output's quantization.
    fn norm(&mut self, layer: &str, input: QuantParams) -> Result<QuantParams, String> {
        let norm = &self.net.norms[layer];
        let gn = qp(self.ranges.get(&name(layer, "gn"))?)?;
        let act = qp(self.ranges.get(&name(layer, "silu"))?)?;
        let c = norm.gamma.len() as u32;
        let gb: Vec<f32> = norm.gamma.iter().chain(&norm.beta).copied().collect();
        self.tensors.push(OwnedTensor::f32(
            name(layer, "gb").to_string(),
            vec![2, c],
            &gb,
        ));
        let q = [
            input.scale,
            input.zero_point as f32,
            gn.scale,
            gn.zero_point as f32,
        ];
        self.tensors
            .push(OwnedTensor::f32(name(layer, "q").to_string(), vec![4], &q));
        let lut = build_lut(silu, gn, act);
        self.tensors.push(OwnedTensor::i8(
            name(layer, "silu").to_string(),
            vec![256],
            &lut,
        ));
        Ok(act)
    }
}

/// The blob's tensors for `net` calibrated with `ranges`, in execution order.
pub fn emit_tensors(net: &FoldedNet, ranges: &Ranges) -> Result<Vec<OwnedTensor>, String> {
    let cfg = net.config;
    let act = activation_params(net, ranges)?;
    let mut e = Emitter {
        net,
        ranges,
        tensors: Vec::new(),
    };
    let res = cfg.img_resolution as usize;
    let ci = c_in(cfg.sigma, cfg.sigma_data);
    let input = QuantParams::from_range(-ci, ci.max(1.0)).map_err(|e| e.to_string())?;
    let f_q = qp(ranges.get("out_conv.out")?)?;
    let io = [
        (input.scale as f64 / ci as f64) as f32,
        input.scale,
        input.zero_point as f32,
        (cfg.sigma_data as f64 * f_q.scale as f64) as f32,
        f_q.zero_point as f32,
    ];
    e.tensors.push(OwnedTensor::f32("io".into(), vec![5], &io));
    let mut x = act["in_conv"];
    e.gated("in_conv", res, input, x)?;
    for_each_block(&cfg, |s| -> Result<(), String> {
        let p = s.id.prefix().to_string();
        let out = act[&p];
        let skip = if s.has_skip() {
            let q = qp(ranges.get(&name(&p, "skip.out"))?)?;
            e.gated(&name(&p, "skip"), s.side, x, q)?;
            q
        } else {
            x
        };
        let a1 = e.norm(&name(&p, "norm1"), x)?;
        let h = qp(ranges.get(&name(&p, "conv1.out"))?)?;
        e.gated(&name(&p, "conv1"), s.side, a1, h)?;
        let a2 = e.norm(&name(&p, "norm2"), h)?;
        let h2 = qp(ranges.get(&name(&p, "conv2.out"))?)?;
        e.gated(&name(&p, "conv2"), s.side, a2, h2)?;
        let add = AddParams::new(h2, skip, out, std::f64::consts::FRAC_1_SQRT_2)
            .map_err(|err| format!("{p}.add: {err}"))?;
        let v = [
            add.input1_offset,
            add.input2_offset,
            add.input1.multiplier,
            add.input1.shift,
            add.input2.multiplier,
            add.input2.shift,
            add.output.multiplier,
            add.output.shift,
            add.output_offset,
        ];
        e.tensors
            .push(OwnedTensor::i32(name(&p, "add").to_string(), vec![9], &v));
        x = out;
        Ok(())
    })?;
    let a = e.norm("out_norm", x)?;
    e.gated("out_conv", res, a, f_q)?;
    Ok(e.tensors)
}
