//! The fast host int8 executor (`ambient_cpu::quantize::fast`) against the core executor
//! (`ambient_core::int8::restore`, the code the firmware runs): equal bit for bit, which is the
//! whole specification of the fast path, so every comparison here is exact (no tolerance).
//! - whole restorations: the shipped blobs on MNIST test measurements at p = 0.8 and on
//!   adversarial inputs, and blobs quantized from random networks of small configurations
//!   chosen to hit every kernel variant and ragged edge (odd channel counts, channel blocks
//!   that are not whole, odd feature-map sides, two blocks per level, 1 to 3 levels);
//! - each AVX2 kernel against its scalar reference (the core's own function where there is
//!   one) on random data including the int8 and int32 extremes and ragged sizes.
//!
//! The AVX2 half of each test is skipped (with a note on stderr) on a CPU without AVX2.

use std::path::Path;

use ambient_core::int8::add::{add_in_place, AddParams};
use ambient_core::int8::conv::ConvGeometry;
use ambient_core::int8::gated::GatedConv2d;
use ambient_core::int8::groupnorm::GroupNorm;
use ambient_core::int8::layout::Channels;
use ambient_core::int8::lut::apply_lut;
use ambient_core::int8::model::Int8Model;
use ambient_core::int8::quant::QuantParams;
use ambient_core::int8::requant::{multiply_by_quantized_multiplier, Requant};
use ambient_core::AmbientRng;
use ambient_cpu::config::UNetConfig;
use ambient_cpu::corrupt::{corrupt_dataset, CorruptionKind};
use ambient_cpu::init::init_params;
use ambient_cpu::io::dataset::CorruptedDataset;
use ambient_cpu::quantize::fast::gated_layer::GatedLayer;
use ambient_cpu::quantize::fast::norm::{norm_silu, NormLayer, NormScratch};
use ambient_cpu::quantize::fast::padded::{fill_from_int8, PaddedGeometry};
use ambient_cpu::quantize::fast::requant_avx2::lanes;
use ambient_cpu::quantize::fast::{
    gated_avx2, gated_portable, norm, norm_avx2, restore_fast, FastInt8Model, FastWorkspace, Isa,
};
use ambient_cpu::quantize::runner::{restore_int8, restore_int8_core};
use ambient_cpu::quantize::{aligned_copy, quantize};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn avx2() -> bool {
    let ok = Isa::Avx2.available();
    if !ok {
        eprintln!("no AVX2 on this CPU: only the portable kernels are compared");
    }
    ok
}

/// The ISAs this machine runs.
fn isas() -> Vec<Isa> {
    let mut v = vec![Isa::Portable];
    if avx2() {
        v.push(Isa::Avx2);
    }
    if Isa::Avx512Vnni.available() {
        v.push(Isa::Avx512Vnni);
    } else {
        eprintln!("no AVX-512 VNNI on this CPU: its GEMM is not compared");
    }
    v
}

/// `(model, words)`: a blob's bytes in an aligned buffer (the model borrows it).
fn words_of(bytes: &[u8]) -> Vec<u32> {
    aligned_copy(bytes)
}

fn model_of<'a>(words: &'a [u32], len: usize) -> Int8Model<'a> {
    Int8Model::from_blob(&bytemuck::cast_slice(words)[..len]).unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The core's restorations of `y`, `m` against the fast executor's on every ISA, exactly;
/// returns how many restored values came from the network (missing pixels).
fn assert_fast_equals_core(model: &Int8Model, y: &[f32], m: &[f32], what: &str) -> usize {
    let want = bits(&restore_int8_core(model, y, m).unwrap());
    for isa in isas() {
        let fast = FastInt8Model::with_isa(model, isa).unwrap();
        assert_eq!(fast.isa, isa);
        let mut ws = FastWorkspace::new(&fast);
        let len = fast.image_len();
        let mut got = vec![0.0f32; y.len()];
        for ((o, yi), mi) in got.chunks_mut(len).zip(y.chunks(len)).zip(m.chunks(len)) {
            restore_fast(&fast, &mut ws, yi, mi, o).unwrap();
        }
        let got = bits(&got);
        let first = got.iter().zip(&want).position(|(a, b)| a != b);
        assert!(
            first.is_none(),
            "{what}, {isa:?}: first difference at {first:?}"
        );
    }
    m.iter().filter(|&&v| v == 0.0).count()
}

/// A measurement value drawn per pixel.
type Value = dyn Fn(&mut AmbientRng) -> f32;

/// Adversarial measurements of `len` pixels: all zero (random mask), all at the top of the
/// range and far beyond it, random beyond the range, everything masked, nothing masked.
fn adversarial(len: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = AmbientRng::new(seed);
    let mut y = Vec::new();
    let mut m = Vec::new();
    let random_mask = |rng: &mut AmbientRng| -> Vec<f32> {
        (0..len)
            .map(|_| f32::from(!rng.bernoulli(0.8) as u8))
            .collect()
    };
    let cases: [(&Value, Option<f32>); 6] = [
        (&|_| 0.0, None),
        (&|_| 1.0, None),
        (&|_| 1e6, None),
        (&|r| r.uniform() * 8.0 - 4.0, None),
        (&|r| r.uniform() * 2.0 - 1.0, Some(0.0)),
        (&|r| r.uniform() * 2.0 - 1.0, Some(1.0)),
    ];
    for (value, fixed_mask) in cases {
        let mask = match fixed_mask {
            Some(v) => vec![v; len],
            None => random_mask(&mut rng),
        };
        y.extend(mask.iter().map(|&k| k * value(&mut rng)));
        m.extend(mask);
    }
    (y, m)
}

/// The first `n` MNIST test images from `from`, corrupted at p = 0.8.
fn mnist_measurements(from: usize, n: usize, seed: u64) -> CorruptedDataset {
    let clean =
        CorruptedDataset::load_idx(&root().join("data/mnist/t10k-images-idx3-ubyte.gz")).unwrap();
    let l = clean.image_len();
    let part = CorruptedDataset {
        n,
        measurements: clean.measurements[from * l..(from + n) * l].to_vec(),
        masks: clean.masks[from * l..(from + n) * l].to_vec(),
        meta: None,
        ..clean
    };
    corrupt_dataset(&part, CorruptionKind::Random { p: 0.8 }, seed).unwrap()
}

fn shipped_blob_equals_core(path: &str, images: usize) {
    let bytes = std::fs::read(root().join(path)).unwrap();
    let words = words_of(&bytes);
    let model = model_of(&words, bytes.len());
    let ds = mnist_measurements(100, images, 21);
    let missing = assert_fast_equals_core(&model, &ds.measurements, &ds.masks, path);
    assert!(
        missing > images * 784 / 2,
        "most pixels come from the network"
    );
    let (y, m) = adversarial(model.image_len(), 5);
    assert_fast_equals_core(&model, &y, &m, &format!("{path}, adversarial"));
}

#[test]
fn firmware_blob_equals_core() {
    shipped_blob_equals_core("firmware-demo/assets/model.blob", 8);
}

#[test]
fn shipped_mnist_blob_equals_core() {
    shipped_blob_equals_core("models/ambient-mnist-p0.8.int8.blob", 3);
}

/// `restore_int8` (what `ambient restore --int8` runs) is the fast path and agrees with the
/// core, batch and rayon included; bad input gives the core's errors.
#[test]
fn runner_is_the_fast_path_and_keeps_the_core_errors() {
    let bytes = std::fs::read(root().join("firmware-demo/assets/model.blob")).unwrap();
    let words = words_of(&bytes);
    let model = model_of(&words, bytes.len());
    let ds = mnist_measurements(300, 5, 4);
    assert_eq!(
        bits(&restore_int8(&model, &ds.measurements, &ds.masks).unwrap()),
        bits(&restore_int8_core(&model, &ds.measurements, &ds.masks).unwrap())
    );
    let fast = FastInt8Model::new(&model).unwrap();
    let mut ws = FastWorkspace::new(&fast);
    let n = model.image_len();
    let mut scratch = vec![0u32; model.scratch_words()];
    let (y, mut m) = (vec![0.5f32; n], vec![1.0f32; n]);
    let mut out = vec![0.0f32; n];
    let mut out_core = vec![0.0f32; n];
    let mut both = |y: &[f32], m: &[f32], out: &mut [f32], out_core: &mut [f32]| {
        let a = restore_fast(&fast, &mut ws, y, m, out);
        let b = ambient_core::int8::restore::restore(&model, y, m, &mut scratch, out_core);
        assert!(a.is_err(), "bad input is rejected");
        assert_eq!(a, b);
    };
    both(&y[1..], &m, &mut out, &mut out_core);
    both(&y, &m, &mut out[1..], &mut out_core[1..]);
    m[7] = 0.5;
    both(&y, &m, &mut out, &mut out_core);
    m[7] = 1.0;
    let mut y_bad = y.clone();
    y_bad[9] = f32::NAN;
    both(&y_bad, &m, &mut out, &mut out_core);
    // A workspace sized for another model is an error, not a panic.
    let other = std::fs::read(root().join("models/ambient-mnist-p0.8.int8.blob")).unwrap();
    let other_words = words_of(&other);
    let other = FastInt8Model::new(&model_of(&other_words, other.len())).unwrap();
    let mut small = FastWorkspace::new(&fast);
    assert!(!small.fits(&other));
    assert!(restore_fast(&other, &mut small, &y, &m, &mut out).is_err());
}

/// Random parameters with every layer active (zero-initialised layers perturbed).
fn random_params(cfg: &UNetConfig, seed: u64) -> ambient_cpu::params::ParamStore {
    let mut rng = AmbientRng::new(seed);
    let mut p = init_params(cfg, &mut rng);
    for t in p.params.iter_mut() {
        t.data.iter_mut().for_each(|v| *v += 0.2 * rng.normal());
    }
    p
}

/// Models quantized from random networks; each config aims at kernel variants and edges:
/// channel counts that are not multiples of 8 (6, 10, 12, 14, 20, 30, 42: partial blocks of 8
/// output channels; 3 output channels for C = 3), odd sides (5 and 3: partial pixel tiles),
/// concatenations, two blocks per level, one and three levels. (The network's `ch` must be
/// even, so odd input channel counts, the pad channel of the AVX2 pairs, only occur in the
/// kernel tests below.)
#[test]
fn random_networks_equal_core() {
    let configs = [
        (1, 8, 10, vec![1, 2], 2, 5),
        (3, 10, 6, vec![1, 2], 1, 3),
        (2, 12, 14, vec![1, 2, 1], 1, 7),
        (1, 6, 12, vec![1, 2], 1, 4),
        (1, 5, 4, vec![1], 2, 2),
        (1, 12, 4, vec![1, 3, 2], 2, 2),
    ];
    for (i, (c, res, ch, mult, blocks, groups)) in configs.into_iter().enumerate() {
        let cfg = UNetConfig {
            img_channels: c,
            img_resolution: res,
            ch,
            mult,
            blocks,
            groups,
            sigma_data: 0.5,
        };
        let params = random_params(&cfg, 100 + i as u64);
        let len = c * res * res;
        let mut rng = AmbientRng::new(200 + i as u64);
        let calib = 8;
        let m: Vec<f32> = (0..calib * len)
            .map(|_| f32::from(rng.bernoulli(0.5) as u8))
            .collect();
        let y: Vec<f32> = m.iter().map(|&k| k * (rng.uniform() * 2.0 - 1.0)).collect();
        let sigma = 0.05 + 0.5 * rng.uniform();
        let q = quantize(&cfg, &params, sigma, &y, &m, calib)
            .unwrap_or_else(|e| panic!("config {i}: {e}"));
        let words = words_of(&q.blob);
        let model = model_of(&words, q.blob.len());
        // Fresh measurements at p = 0.8 plus the adversarial ones.
        let mut ty: Vec<f32> = Vec::new();
        let mut tm: Vec<f32> = Vec::new();
        for _ in 0..4 {
            for _ in 0..len {
                let keep = !rng.bernoulli(0.8);
                tm.push(f32::from(keep as u8));
                ty.push(if keep { rng.uniform() * 2.0 - 1.0 } else { 0.0 });
            }
        }
        let (ay, am) = adversarial(len, 300 + i as u64);
        ty.extend(ay);
        tm.extend(am);
        assert_fast_equals_core(&model, &ty, &tm, &format!("config {i}"));
    }
}

// ---------- kernels ----------

/// Interesting i32 values: the extremes, around zero and powers of two, then random.
fn i32_values(rng: &mut AmbientRng, n: usize) -> Vec<i32> {
    let mut v = vec![
        i32::MIN,
        i32::MIN + 1,
        i32::MAX,
        i32::MAX - 1,
        0,
        1,
        -1,
        1 << 30,
        -(1 << 30),
    ];
    v.extend([
        (1 << 30) + 1,
        i32::MAX - 2,
        255,
        -255,
        32767,
        -32767,
        1 << 20,
    ]);
    while v.len() < n {
        let r = rng.next_u32() as i32;
        let shift = rng.below(32);
        v.push(match rng.below(3) {
            0 => r,
            1 => r >> shift,
            _ => (r >> 20) << shift.min(11),
        });
    }
    v
}

use rand_core::RngCore;

/// The AVX2 requantization lanes against the core's scalar function: every pair of a list of
/// interesting and random values, with shifts from -40 to 40 and the i32 extremes.
#[test]
fn lane_requantization_equals_core() {
    if !avx2() {
        return;
    }
    let mut rng = AmbientRng::new(1);
    let xs = i32_values(&mut rng, 64);
    let ms = i32_values(&mut rng, 64);
    let mut shifts: Vec<i32> = (-40..=40).collect();
    shifts.extend([i32::MIN, i32::MAX, i32::MIN + 1]);
    let mut checked = 0;
    for &m in &ms {
        for &s in &shifts {
            for chunk in xs.chunks(8) {
                let mut x = [0i32; 8];
                x[..chunk.len()].copy_from_slice(chunk);
                // Different multipliers and shifts per lane too.
                let mm = [m, m, m, m, m ^ 1, m, i32::MIN, m];
                let ss = [s, s, s, s, s, -s.saturating_neg(), s, 3];
                let got = lanes::multiply_by_quantized_multiplier(x, mm, ss).unwrap();
                for l in 0..8 {
                    assert_eq!(
                        got[l],
                        multiply_by_quantized_multiplier(x[l], mm[l], ss[l]),
                        "x {} m {} shift {}",
                        x[l],
                        mm[l],
                        ss[l]
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 300_000);
    for a in xs.chunks(8) {
        for b in ms.chunks(8) {
            let (a, b): ([i32; 8], [i32; 8]) = (a.try_into().unwrap(), b.try_into().unwrap());
            let got = lanes::saturating_add(a, b).unwrap();
            for l in 0..8 {
                assert_eq!(got[l], a[l].saturating_add(b[l]));
            }
            for zp in [-128, -127, -1, 0, 1, 126, 127] {
                let got = lanes::add_zero_point_to_int8(a, zp).unwrap();
                for l in 0..8 {
                    assert_eq!(got[l], a[l].saturating_add(zp).clamp(-128, 127));
                }
            }
        }
    }
}

fn random_i8(rng: &mut AmbientRng, n: usize) -> Vec<i8> {
    (0..n)
        .map(|_| match rng.below(8) {
            0 => -128,
            1 => 127,
            _ => rng.next_u32() as i8,
        })
        .collect()
}

/// Requantization parameters as a quantizer makes them (multiplier in `[2^30, 2^31)`, shift
/// around 0) or, one time in four, anything at all.
fn random_requant(rng: &mut AmbientRng) -> (i32, i32) {
    if rng.below(4) == 0 {
        (rng.next_u32() as i32, rng.below(80) as i32 - 40)
    } else {
        (
            (1 << 30) + (rng.next_u32() >> 2) as i32,
            rng.below(24) as i32 - 16,
        )
    }
}

/// A random gated convolution, and its input as two parts (the second empty when `split ==
/// cin`).
struct GatedCase {
    geometry: ConvGeometry,
    weights: Vec<i8>,
    gates: Vec<i8>,
    c: Vec<i32>,
    lut: [i8; 256],
    p: [i32; 5],
    a: Vec<i8>,
    b: Vec<i8>,
    split: usize,
}

impl GatedCase {
    fn new(rng: &mut AmbientRng, h: usize, w: usize, cin: usize, cout: usize, k: usize) -> Self {
        let geometry = ConvGeometry {
            height: h,
            width: w,
            in_channels: cin,
            out_channels: cout,
            kernel: k,
        };
        let n = cout * k * k * cin;
        let mut c = vec![0i32; 5 * cout];
        for ch in 0..cout {
            let (mm, ms) = random_requant(rng);
            let (gm, gs) = random_requant(rng);
            c[ch] = mm;
            c[cout + ch] = ms;
            c[2 * cout + ch] = gm;
            c[3 * cout + ch] = gs;
            c[4 * cout + ch] = match rng.below(6) {
                0 => i32::MAX,
                1 => i32::MIN,
                _ => (rng.next_u32() as i32) >> rng.below(31),
            };
        }
        let mut lut = [0i8; 256];
        lut.copy_from_slice(&random_i8(rng, 256));
        let (om, os) = random_requant(rng);
        let zp = |rng: &mut AmbientRng| rng.next_u32() as i8 as i32;
        let p = [zp(rng), zp(rng), om, os, zp(rng)];
        let split = if rng.below(2) == 0 || cin == 1 {
            cin
        } else {
            1 + rng.below(cin as u32 - 1) as usize
        };
        GatedCase {
            geometry,
            weights: random_i8(rng, n),
            gates: random_i8(rng, n),
            c,
            lut,
            p,
            a: random_i8(rng, h * w * split),
            b: random_i8(rng, h * w * (cin - split)),
            split,
        }
    }

    fn conv(&self) -> GatedConv2d<'_> {
        let n = self.geometry.out_channels;
        GatedConv2d {
            geometry: self.geometry,
            input_zero_point: self.p[0],
            weights: &self.weights,
            gates: &self.gates,
            main_multipliers: &self.c[..n],
            main_shifts: &self.c[n..2 * n],
            gate_multipliers: &self.c[2 * n..3 * n],
            gate_shifts: &self.c[3 * n..4 * n],
            gate_zero_point: self.p[1],
            sigmoid: &self.lut,
            bias: &self.c[4 * n..],
            output_multiplier: self.p[2],
            output_shift: self.p[3],
            output_zero_point: self.p[4],
        }
    }
}

/// The gated convolution kernels (portable, AVX2 and AVX-512 VNNI, on the padded map) against the core's
/// `GatedConv2d::run`, over ragged shapes: sides 1 to 7 (partial pixel tiles), input channels
/// 1 to 13 (odd: the pad channel; split into two parts), output channels 1 to 17 (partial
/// blocks of 8), kernels 1 and 3, int8 extremes in inputs and filters, any requantization.
#[test]
fn gated_kernels_equal_core() {
    let mut rng = AmbientRng::new(7);
    let has_avx2 = avx2();
    let has_vnni = isas().contains(&Isa::Avx512Vnni);
    let mut cases = 0;
    for &(h, w) in &[(1, 1), (3, 5), (7, 7), (4, 6), (2, 9)] {
        for &cin in &[1, 2, 3, 5, 8, 13] {
            for &cout in &[1, 3, 8, 9, 17] {
                for &k in &[1, 3] {
                    let case = GatedCase::new(&mut rng, h, w, cin, cout, k);
                    let conv = case.conv();
                    let mut want = vec![0i8; h * w * cout];
                    let input = if case.split == cin {
                        Channels::one(&case.a, cin)
                    } else {
                        Channels::concat(&case.a, case.split, &case.b, cin - case.split)
                    };
                    conv.run(input, &mut want).unwrap();
                    let layer = GatedLayer::new(&conv);
                    let pg = PaddedGeometry::new(h, w, cin);
                    // Garbage in the buffer: the fill must clear whatever the kernels read.
                    let mut padded: Vec<i16> = (0..pg.len()).map(|i| i as i16 ^ 0x5a5a).collect();
                    fill_from_int8(
                        &pg,
                        &case.a,
                        case.split,
                        &case.b,
                        cin - case.split,
                        case.p[0],
                        &mut padded,
                    );
                    let mut got = vec![0i8; h * w * cout];
                    gated_portable::run_portable(&layer, &pg, &padded, &mut got);
                    assert_eq!(got, want, "portable {h}x{w} {cin}->{cout} k{k}");
                    if has_avx2 {
                        let mut got = vec![0i8; h * w * cout];
                        assert!(gated_avx2::run_avx2(&layer, &pg, &padded, &mut got));
                        assert_eq!(got, want, "avx2 {h}x{w} {cin}->{cout} k{k}");
                    }
                    if has_vnni {
                        let mut got = vec![0i8; h * w * cout];
                        assert!(gated_avx2::run_vnni(&layer, &pg, &padded, &mut got));
                        assert_eq!(got, want, "avx-512 vnni {h}x{w} {cin}->{cout} k{k}");
                    }
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 300);
}

/// `SiLU(GN(.)) - zp` into a padded map, portable and AVX2, against the core's
/// `GroupNorm::run`, `apply_lut` and the subtraction: ragged channel counts (runs of 8 and a
/// scalar tail, two-part inputs), int8 extremes, and parameters that overflow the f32 scale
/// (an infinite `k`, so NaN at `d = mean`, which the core turns into 0).
#[test]
fn norm_kernels_equal_core() {
    let mut rng = AmbientRng::new(8);
    let mut cases = 0;
    for &(side, channels, groups) in &[
        (1, 3, 1),
        (5, 6, 3),
        (7, 13, 13),
        (4, 24, 8),
        (3, 40, 5),
        (6, 17, 1),
    ] {
        for extreme in [false, true] {
            let gamma: Vec<f32> = (0..channels)
                .map(|c| {
                    if extreme && c % 2 == 0 {
                        3e38
                    } else {
                        rng.normal() * 2.0
                    }
                })
                .collect();
            let beta: Vec<f32> = (0..channels).map(|_| rng.normal() * 3.0).collect();
            let input =
                QuantParams::new(0.01 + rng.uniform(), rng.next_u32() as i8 as i32).unwrap();
            let out_scale = if extreme {
                1e-30
            } else {
                0.02 + 0.1 * rng.uniform()
            };
            let output = QuantParams::new(out_scale, rng.next_u32() as i8 as i32).unwrap();
            let gn = GroupNorm {
                height: side,
                width: side,
                channels,
                groups,
                eps: 1e-5,
                gamma: &gamma,
                beta: &beta,
                input,
                output,
            };
            let mut silu = [0i8; 256];
            silu.copy_from_slice(&random_i8(&mut rng, 256));
            let split = if channels > 1 {
                1 + rng.below(channels as u32 - 1) as usize
            } else {
                1
            };
            let pixels = side * side;
            let mut a = random_i8(&mut rng, pixels * split);
            let mut b = random_i8(&mut rng, pixels * (channels - split));
            if extreme {
                // A constant map: d equals the mean everywhere, 0 times an infinite k, the
                // NaN case, in the AVX2 lanes as well as the scalar tails.
                a.fill(5);
                b.fill(5);
            }
            let next_zp = rng.next_u32() as i8 as i32;
            let mut want = vec![0i8; pixels * channels];
            let mut core_scratch = vec![0f32; 2 * channels];
            gn.run(
                Channels::concat(&a, split, &b, channels - split),
                &mut core_scratch,
                &mut want,
            )
            .unwrap();
            apply_lut(&silu, &mut want);
            let layer = NormLayer::new(&gn, &silu);
            let pg = PaddedGeometry::new(side, side, channels);
            for isa in isas() {
                let mut scratch = NormScratch::new(channels);
                let mut padded = vec![77i16; pg.len()];
                norm_silu(
                    &layer,
                    isa,
                    &pg,
                    &a,
                    split,
                    &b,
                    channels - split,
                    next_zp,
                    &mut scratch,
                    &mut padded,
                );
                for p in 0..pixels {
                    let at = pg.pixel(p / side, p % side);
                    for c in 0..channels {
                        assert_eq!(
                            padded[at + c] as i32,
                            want[p * channels + c] as i32 - next_zp,
                            "{isa:?} side {side} channels {channels} pixel {p} channel {c}"
                        );
                    }
                }
                // The border is zero.
                assert!(padded[..pg.pixel(0, 0)].iter().all(|&v| v == 0));
                cases += 1;
            }
        }
    }
    assert!(cases >= 12);
}

/// The AVX2 rounding step alone, against the scalar one (`f32::round`, IEEE round half away
/// from zero as `libm::roundf`), on values built to land on and around every half-integer of
/// the int8 range and far outside it.
#[test]
fn norm_rounding_equals_scalar() {
    if !avx2() {
        return;
    }
    let mut rng = AmbientRng::new(9);
    let table: [i32; 256] = core::array::from_fn(|i| i as i32 * 3 - 400);
    let n = 64;
    let mut scratch = NormScratch::new(n);
    for trial in 0..4000 {
        for c in 0..n {
            scratch.mean[c] = 0.0;
            // scale 1 and offset t - d make the pre-rounding value t exactly (for |t| well
            // inside the f32 range); every fourth trial uses random scales.
            let half = (rng.below(600) as f32 - 300.0) * 0.5;
            let nudge =
                [0.0, f32::EPSILON * 64.0, -f32::EPSILON * 64.0, 1e-3][rng.below(4) as usize];
            scratch.scale[c] = if trial % 4 == 0 {
                rng.normal() * 50.0
            } else {
                1.0
            };
            scratch.offset[c] = half + nudge;
        }
        let src = random_i8(&mut rng, n);
        let zp = rng.next_u32() as i8 as i32;
        for start in [0usize, 3] {
            let len = n - start - (trial % 9);
            let mut want = vec![0i16; len];
            let mut got = vec![0i16; len];
            norm::apply_portable(
                &src[start..start + len],
                start,
                zp,
                &scratch,
                &table,
                &mut want,
            );
            assert!(norm_avx2::apply_run(
                &src[start..start + len],
                start,
                zp,
                &scratch,
                &table,
                &mut got
            ));
            assert_eq!(got, want, "trial {trial}");
        }
    }
}

/// The residual ADD, AVX2 (through the fast model's `add`) against the core's `add_in_place`:
/// parameters from `AddParams::new` over a range of scales and hand-made ones with any
/// multiplier and shift, int8 extremes, lengths with a scalar tail.
#[test]
fn add_kernel_equals_core() {
    if !avx2() {
        return;
    }
    let mut rng = AmbientRng::new(10);
    for trial in 0..400 {
        let q = |rng: &mut AmbientRng| {
            QuantParams::new(0.001 + rng.uniform() * 0.2, rng.next_u32() as i8 as i32).unwrap()
        };
        let p = if trial % 3 == 0 {
            let r = |rng: &mut AmbientRng| {
                let (multiplier, shift) = random_requant(rng);
                Requant { multiplier, shift }
            };
            AddParams {
                input1_offset: -(rng.next_u32() as i8 as i32),
                input2_offset: -(rng.next_u32() as i8 as i32),
                input1: r(&mut rng),
                input2: r(&mut rng),
                output: r(&mut rng),
                output_offset: rng.next_u32() as i8 as i32,
            }
        } else {
            let (a, b, o) = (q(&mut rng), q(&mut rng), q(&mut rng));
            AddParams::new(a, b, o, std::f64::consts::FRAC_1_SQRT_2).unwrap()
        };
        let len = 1 + rng.below(70) as usize;
        let a = random_i8(&mut rng, len);
        let b = random_i8(&mut rng, len);
        let mut want = a.clone();
        add_in_place(&p, &mut want, &b).unwrap();
        let mut got = a.clone();
        ambient_cpu::quantize::fast::add::add_in_place(&p, Isa::Avx2, &mut got, &b);
        assert_eq!(got, want, "trial {trial}");
    }
}

/// This thread's CPU time in ns (Linux: the first field of /proc/thread-self/schedstat).
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Not a test: CPU time per restoration of one image with the firmware's ch 8 blob and the
/// shipped ch 32 blob, fast (each ISA) and core executor, interleaved in one process so that
/// load from other processes affects both alike. Run with
/// `cargo test --release -p ambient-cpu --test int8_fast -- --ignored --nocapture`.
#[test]
#[ignore]
fn cpu_time_per_restoration() {
    for (path, rounds) in [
        ("firmware-demo/assets/model.blob", 20),
        ("models/ambient-mnist-p0.8.int8.blob", 2),
    ] {
        let bytes = std::fs::read(root().join(path)).unwrap();
        let words = words_of(&bytes);
        let model = model_of(&words, bytes.len());
        let ds = mnist_measurements(0, 1, 3);
        let (y, m) = ds.image(0);
        let mut out = vec![0.0f32; y.len()];
        let mut scratch = vec![0u32; model.scratch_words()];
        let fast: Vec<FastInt8Model> = isas()
            .into_iter()
            .map(|isa| FastInt8Model::with_isa(&model, isa).unwrap())
            .collect();
        let mut ws: Vec<FastWorkspace> = fast.iter().map(FastWorkspace::new).collect();
        let mut totals = vec![0u64; fast.len() + 1];
        for _ in 0..rounds {
            for (i, f) in fast.iter().enumerate() {
                let t = thread_cpu_ns().unwrap();
                for _ in 0..50 {
                    restore_fast(f, &mut ws[i], y, m, &mut out).unwrap();
                }
                totals[i] += thread_cpu_ns().unwrap() - t;
            }
            let t = thread_cpu_ns().unwrap();
            for _ in 0..5 {
                ambient_core::int8::restore::restore(&model, y, m, &mut scratch, &mut out).unwrap();
            }
            totals[fast.len()] += thread_cpu_ns().unwrap() - t;
        }
        eprintln!("{path}:");
        for (i, f) in fast.iter().enumerate() {
            let per = totals[i] as f64 / (rounds * 50) as f64 / 1e3;
            eprintln!("  fast {:?}: {per:.1} us CPU per restoration", f.isa);
        }
        let core = totals[fast.len()] as f64 / (rounds * 5) as f64 / 1e3;
        eprintln!("  core executor: {core:.1} us CPU per restoration");
        let t = thread_cpu_ns().unwrap();
        for _ in 0..20 {
            FastInt8Model::new(&model).unwrap();
        }
        let prep = (thread_cpu_ns().unwrap() - t) as f64 / 20.0 / 1e3;
        eprintln!("  FastInt8Model::new: {prep:.1} us CPU");
    }
}
