//! The int8 restoration executor (`int8::restore`) and the graph it reads from a blob
//! (`int8::model`): its planned arena against a reference that materialises every tensor and
//! the decoder's concatenations; the scratch size it reports is exactly what it needs; the
//! measurement's observed pixels come back unchanged and erased ones are never read; malformed
//! blobs and inputs give typed errors, never a panic.

use ambient_core::int8::blob::{BlobConfig, BlobError, DType};
use ambient_core::int8::blob_writer::{blob_len, write_blob, TensorSpec};
use ambient_core::int8::conv::ConvGeometry;
use ambient_core::int8::layout::Channels;
use ambient_core::int8::lut::apply_lut;
use ambient_core::int8::model::{for_each_block, name, Int8Model, ModelError};
use ambient_core::int8::requant::Requant;
use ambient_core::int8::resample::{avg_pool_2x2, upsample_nearest_2x};
use ambient_core::int8::restore::restore;
use ambient_core::AmbientRng;

/// A small config with every feature: two levels (a pool, an upsample, concatenations),
/// identity and GatedConv(1) residuals, two channels of image.
fn config() -> BlobConfig {
    BlobConfig {
        img_channels: 2,
        img_resolution: 4,
        ch: 4,
        blocks: 1,
        groups: 2,
        levels: 2,
        mult: [1, 2, 0, 0],
        sigma_data: 0.5,
        sigma: 0.1,
    }
}

struct T {
    name: String,
    dtype: DType,
    shape: Vec<u32>,
    data: Vec<u8>,
}

fn i8t(name: String, shape: Vec<u32>, v: Vec<i8>) -> T {
    T {
        name,
        dtype: DType::I8,
        shape,
        data: v.into_iter().map(|x| x as u8).collect(),
    }
}

fn i32t(name: String, shape: Vec<u32>, v: Vec<i32>) -> T {
    T {
        name,
        dtype: DType::I32,
        shape,
        data: v.into_iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

fn f32t(name: String, shape: Vec<u32>, v: Vec<f32>) -> T {
    T {
        name,
        dtype: DType::F32,
        shape,
        data: v.into_iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

fn rand_i8(rng: &mut AmbientRng, n: usize, a: i32) -> Vec<i8> {
    (0..n)
        .map(|_| (rng.below(2 * a as u32 + 1) as i32 - a) as i8)
        .collect()
}

fn zp(rng: &mut AmbientRng) -> i32 {
    rng.below(41) as i32 - 20
}

/// Random but valid parameters for every layer: moderate multipliers so that activations
/// stay away from saturation and the comparison exercises real values.
fn random_tensors(cfg: &BlobConfig, seed: u64) -> Vec<T> {
    let mut rng = AmbientRng::new(seed);
    let mut out = vec![f32t(
        "io".into(),
        vec![5],
        vec![0.01, 0.02, -3.0, 0.004, 5.0],
    )];
    let gated =
        |out: &mut Vec<T>, rng: &mut AmbientRng, l: &str, cin: usize, cout: usize, k: usize| {
            let n = cout * k * k * cin;
            let shape = vec![cout as u32, k as u32, k as u32, cin as u32];
            out.push(i8t(
                name(l, "w").to_string(),
                shape.clone(),
                rand_i8(rng, n, 127),
            ));
            out.push(i8t(name(l, "g").to_string(), shape, rand_i8(rng, n, 127)));
            let mut c = Vec::new();
            for _ in 0..cout {
                c.push(
                    Requant::from_real(0.002 + 0.002 * rng.uniform() as f64)
                        .unwrap()
                        .multiplier,
                );
            }
            for _ in 0..cout {
                c.push(
                    Requant::from_real(0.002 + 0.002 * rng.uniform() as f64)
                        .unwrap()
                        .shift,
                );
            }
            let gates: Vec<Requant> = (0..cout)
                .map(|_| Requant::from_real(0.0005 + 0.0005 * rng.uniform() as f64).unwrap())
                .collect();
            c.extend(gates.iter().map(|r| r.multiplier));
            c.extend(gates.iter().map(|r| r.shift));
            c.extend((0..cout).map(|_| rng.below(20001) as i32 - 10000));
            out.push(i32t(name(l, "c").to_string(), vec![5, cout as u32], c));
            let o = Requant::from_real(0.0015).unwrap();
            let p = vec![zp(rng), zp(rng), o.multiplier, o.shift, zp(rng)];
            out.push(i32t(name(l, "p").to_string(), vec![5], p));
            out.push(i8t(
                name(l, "lut").to_string(),
                vec![256],
                rand_i8(rng, 256, 128),
            ));
        };
    let norm = |out: &mut Vec<T>, rng: &mut AmbientRng, l: &str, c: usize| {
        let gb: Vec<f32> = (0..2 * c).map(|_| rng.uniform() * 2.0 - 0.5).collect();
        out.push(f32t(name(l, "gb").to_string(), vec![2, c as u32], gb));
        let q = vec![0.05, zp(rng) as f32, 0.03, zp(rng) as f32];
        out.push(f32t(name(l, "q").to_string(), vec![4], q));
        out.push(i8t(
            name(l, "silu").to_string(),
            vec![256],
            rand_i8(rng, 256, 128),
        ));
    };
    let c = cfg.img_channels as usize;
    gated(&mut out, &mut rng, "in_conv", 2 * c, cfg.ch as usize, 3);
    for_each_block(cfg, |s| -> Result<(), ()> {
        let p = s.id.prefix();
        if s.has_skip() {
            gated(&mut out, &mut rng, &name(&p, "skip"), s.cin, s.cout, 1);
        }
        norm(&mut out, &mut rng, &name(&p, "norm1"), s.cin);
        gated(&mut out, &mut rng, &name(&p, "conv1"), s.cin, s.cout, 3);
        norm(&mut out, &mut rng, &name(&p, "norm2"), s.cout);
        gated(&mut out, &mut rng, &name(&p, "conv2"), s.cout, s.cout, 3);
        let r = |x: f64| Requant::from_real(x).unwrap();
        let (a, b, o) = (r(0.4), r(0.5), r(0.6 / (1 << 20) as f64));
        let v = vec![
            -zp(&mut rng),
            -zp(&mut rng),
            a.multiplier,
            a.shift,
            b.multiplier,
            b.shift,
            o.multiplier,
            o.shift,
            zp(&mut rng),
        ];
        out.push(i32t(name(&p, "add").to_string(), vec![9], v));
        Ok(())
    })
    .unwrap();
    norm(&mut out, &mut rng, "out_norm", cfg.ch as usize);
    gated(&mut out, &mut rng, "out_conv", cfg.ch as usize, c, 3);
    out
}

/// The blob of `tensors`, in a word buffer (aligned for typed views).
fn blob(cfg: &BlobConfig, tensors: &[T]) -> Vec<u32> {
    let specs: Vec<TensorSpec> = tensors
        .iter()
        .map(|t| TensorSpec {
            name: &t.name,
            dtype: t.dtype,
            shape: &t.shape,
            data: &t.data,
        })
        .collect();
    let len = blob_len(&specs).unwrap();
    let mut words = vec![0u32; len / 4];
    write_blob(cfg, &specs, bytemuck::cast_slice_mut(&mut words)).unwrap();
    words
}

fn bytes(words: &[u32]) -> &[u8] {
    bytemuck::cast_slice(words)
}

/// A measurement (values in [-1, 1] where observed, 0 elsewhere) and a mask, CHW.
fn measurement(rng: &mut AmbientRng, n: usize) -> (Vec<f32>, Vec<f32>) {
    let m: Vec<f32> = (0..n)
        .map(|_| f32::from(rng.bernoulli(0.5) as u8))
        .collect();
    let y: Vec<f32> = m.iter().map(|&k| k * (rng.uniform() * 2.0 - 1.0)).collect();
    (y, m)
}

/// The restoration graph written out by hand from docs/ambient-unet-spec.md for `config()`
/// (two levels, one block each), every tensor its own Vec and each concatenation copied into
/// one, with the model's layer parameters.
fn reference(model: &Int8Model, y: &[f32], m: &[f32]) -> Vec<f32> {
    let (c, r, ch) = (2usize, 4usize, 4usize);
    let hw = r * r;
    let io = *model.io();
    let mut x_in = vec![0i8; hw * 2 * c];
    for p in 0..hw {
        for k in 0..c {
            x_in[p * 2 * c + k] = io.y.quantize(y[k * hw + p]);
            x_in[p * 2 * c + c + k] = io.input.quantize(m[k * hw + p]);
        }
    }
    let geo = |side: usize, cin: usize, cout: usize, kernel: usize| ConvGeometry {
        height: side,
        width: side,
        in_channels: cin,
        out_channels: cout,
        kernel,
    };
    let gated = |l: &str, x: &[i8], side: usize, cin: usize, cout: usize, k: usize| {
        let conv = model.gated(l, geo(side, cin, cout, k)).unwrap();
        let mut o = vec![0i8; side * side * cout];
        conv.run(Channels::one(x, cin), &mut o).unwrap();
        o
    };
    let norm_silu = |l: &str, x: &[i8], side: usize, cin: usize| {
        let (n, silu) = model.norm(l, side, cin).unwrap();
        let mut o = vec![0i8; x.len()];
        n.run(Channels::one(x, cin), &mut vec![0f32; 2 * cin], &mut o)
            .unwrap();
        apply_lut(silu, &mut o);
        o
    };
    let block = |p: &str, x: &[i8], side: usize, cin: usize, cout: usize| {
        let t1 = norm_silu(&format!("{p}.norm1"), x, side, cin);
        let h = gated(&format!("{p}.conv1"), &t1, side, cin, cout, 3);
        let t2 = norm_silu(&format!("{p}.norm2"), &h, side, cout);
        let h2 = gated(&format!("{p}.conv2"), &t2, side, cout, cout, 3);
        let skip = if cin != cout {
            gated(&format!("{p}.skip"), x, side, cin, cout, 1)
        } else {
            x.to_vec()
        };
        let add = model.add(p).unwrap();
        h2.iter()
            .zip(&skip)
            .map(|(&a, &b)| add.add_one(a, b))
            .collect::<Vec<i8>>()
    };
    let concat = |a: &[i8], ca: usize, b: &[i8], cb: usize| {
        let mut o = Vec::new();
        for p in 0..a.len() / ca {
            o.extend_from_slice(&a[p * ca..(p + 1) * ca]);
            o.extend_from_slice(&b[p * cb..(p + 1) * cb]);
        }
        o
    };
    let x0 = gated("in_conv", &x_in, r, 2 * c, ch, 3);
    let s0 = block("enc.0.0", &x0, r, ch, ch);
    let mut pooled = vec![0i8; s0.len() / 4];
    avg_pool_2x2(&s0, r, r, ch, &mut pooled).unwrap();
    let s1 = block("enc.1.0", &pooled, r / 2, ch, 2 * ch);
    let mid = block("mid", &s1, r / 2, 2 * ch, 2 * ch);
    let d1 = block(
        "dec.1.0",
        &concat(&mid, 2 * ch, &s1, 2 * ch),
        r / 2,
        4 * ch,
        2 * ch,
    );
    let mut up = vec![0i8; d1.len() * 4];
    upsample_nearest_2x(&d1, r / 2, r / 2, 2 * ch, &mut up).unwrap();
    let d0 = block("dec.0.0", &concat(&up, 2 * ch, &s0, ch), r, 3 * ch, ch);
    let t = norm_silu("out_norm", &d0, r, ch);
    let f = gated("out_conv", &t, r, ch, c, 3);
    let mut out = vec![0f32; hw * c];
    for p in 0..hw {
        for k in 0..c {
            let i = k * hw + p;
            out[i] = if m[i] == 1.0 {
                y[i]
            } else {
                io.output.dequantize(f[p * c + k])
            };
        }
    }
    out
}

#[test]
fn planned_arena_matches_materialised_reference() {
    let cfg = config();
    for seed in 0..4 {
        let words = blob(&cfg, &random_tensors(&cfg, seed));
        let model = Int8Model::from_blob(bytes(&words)).unwrap();
        let mut rng = AmbientRng::new(100 + seed);
        let (y, m) = measurement(&mut rng, model.image_len());
        let want = reference(&model, &y, &m);
        // A scratch full of garbage: the executor must not read what it did not write.
        let mut scratch: Vec<u32> = (0..model.scratch_words()).map(|_| rng.next_u32()).collect();
        let mut out = vec![0f32; model.image_len()];
        restore(&model, &y, &m, &mut scratch, &mut out).unwrap();
        assert_eq!(
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "seed {seed}"
        );
        // The output is not trivially constant (the comparison has something to compare).
        let missing: Vec<f32> = (0..out.len())
            .filter(|&i| m[i] == 0.0)
            .map(|i| out[i])
            .collect();
        assert!(missing.iter().any(|&v| v != missing[0]), "seed {seed}");
    }
}

use rand_core::RngCore;

#[test]
fn scratch_words_is_exactly_enough() {
    let cfg = config();
    let words = blob(&cfg, &random_tensors(&cfg, 7));
    let model = Int8Model::from_blob(bytes(&words)).unwrap();
    let mut rng = AmbientRng::new(3);
    let (y, m) = measurement(&mut rng, model.image_len());
    let mut out = vec![0f32; model.image_len()];
    // By hand for this config: the widest GroupNorm is dec.1.0's norm1 over concat[mid,
    // skip_1] = 8 + 8 = 16 channels, whose statistics take 2 * 16 = 32 f32 words.
    assert_eq!(model.scratch_words(), 32 + model.arena_bytes().div_ceil(4));
    // The arena is far below the sum of all activations (the plan frees as it goes) and at
    // least the largest single step: dec.0.0's norm1 writes 4x4x12 = 192 bytes while the
    // 4x4x8 upsample (128), skip_0 (4x4x4 = 64) and the skip conv's output (64) are alive.
    assert!(model.arena_bytes() >= 448, "{}", model.arena_bytes());
    let mut scratch = vec![0u32; model.scratch_words()];
    restore(&model, &y, &m, &mut scratch, &mut out).unwrap();
    let mut short = vec![0u32; model.scratch_words() - 1];
    assert!(matches!(
        restore(&model, &y, &m, &mut short, &mut out),
        Err(ModelError::Input(_))
    ));
}

#[test]
fn observed_pixels_pass_through_and_erased_ones_are_never_read() {
    let cfg = config();
    let words = blob(&cfg, &random_tensors(&cfg, 11));
    let model = Int8Model::from_blob(bytes(&words)).unwrap();
    let mut rng = AmbientRng::new(5);
    let (y, m) = measurement(&mut rng, model.image_len());
    let mut scratch = vec![0u32; model.scratch_words()];
    let mut out = vec![0f32; model.image_len()];
    restore(&model, &y, &m, &mut scratch, &mut out).unwrap();
    for i in 0..y.len() {
        if m[i] == 1.0 {
            assert_eq!(out[i].to_bits(), y[i].to_bits());
        }
    }
    let mut poisoned = y.clone();
    for i in 0..y.len() {
        if m[i] == 0.0 {
            poisoned[i] = f32::NAN;
        }
    }
    let mut out2 = vec![0f32; model.image_len()];
    restore(&model, &poisoned, &m, &mut scratch, &mut out2).unwrap();
    assert_eq!(
        out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        out2.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}

#[test]
fn bad_inputs_give_typed_errors() {
    let cfg = config();
    let words = blob(&cfg, &random_tensors(&cfg, 2));
    let model = Int8Model::from_blob(bytes(&words)).unwrap();
    let n = model.image_len();
    let mut scratch = vec![0u32; model.scratch_words()];
    let mut out = vec![0f32; n];
    let (y, mut m) = (vec![0.0f32; n], vec![1.0f32; n]);
    let short = vec![0.0f32; n - 1];
    assert!(matches!(
        restore(&model, &short, &m, &mut scratch, &mut out),
        Err(ModelError::Input(_))
    ));
    let mut y_nan = y.clone();
    y_nan[3] = f32::NAN;
    assert!(matches!(
        restore(&model, &y_nan, &m, &mut scratch, &mut out),
        Err(ModelError::Input(_))
    ));
    m[0] = 0.5;
    assert!(matches!(
        restore(&model, &y, &m, &mut scratch, &mut out),
        Err(ModelError::Input(_))
    ));
}

#[test]
fn malformed_blobs_give_typed_errors() {
    let cfg = config();
    let good = random_tensors(&cfg, 9);
    let with = |edit: &dyn Fn(&mut Vec<T>)| {
        let mut t = random_tensors(&cfg, 9);
        edit(&mut t);
        blob(&cfg, &t)
    };
    let err = |words: &[u32]| Int8Model::from_blob(bytes(words)).unwrap_err();
    let find = |t: &Vec<T>, n: &str| t.iter().position(|x| x.name == n).unwrap();

    // A missing tensor, named.
    let e = err(&with(&|t| {
        let i = find(t, "mid.conv2.g");
        t.remove(i);
    }));
    assert!(matches!(&e, ModelError::Tensor { name, problem: "missing" } if name == "mid.conv2.g"));
    // A tensor shaped for another config.
    let e = err(&with(&|t| {
        let i = find(t, "enc.1.0.skip.w");
        t[i].shape = vec![4, 1, 1, 8];
    }));
    assert!(matches!(
        &e,
        ModelError::Tensor {
            problem: "wrong shape for the config",
            ..
        }
    ));
    // The wrong dtype.
    let e = err(&with(&|t| {
        let i = find(t, "out_norm.gb");
        t[i].dtype = DType::I32;
    }));
    assert!(matches!(
        &e,
        ModelError::Tensor {
            problem: "wrong dtype",
            ..
        }
    ));
    // A zero point outside int8 in a conv's scalars.
    let e = err(&with(&|t| {
        let i = find(t, "dec.0.0.conv1.p");
        t[i].data[..4].copy_from_slice(&300i32.to_le_bytes());
    }));
    assert!(matches!(&e, ModelError::Layer { name, .. } if name == "dec.0.0.conv1"));
    // A non-integral zero point in io.
    let e = err(&with(&|t| {
        let i = find(t, "io");
        t[i].data[8..12].copy_from_slice(&0.5f32.to_le_bytes());
    }));
    assert!(matches!(&e, ModelError::Tensor { .. }));
    // A NaN GroupNorm weight.
    let e = err(&with(&|t| {
        let i = find(t, "enc.0.0.norm2.gb");
        t[i].data[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    }));
    assert!(matches!(&e, ModelError::Layer { .. }));
    // Blob-level damage: a flipped payload byte (CRC) and a cut.
    let mut words = blob(&cfg, &good);
    words[40] ^= 1;
    assert!(matches!(
        err(&words),
        ModelError::Blob(BlobError::BadCrc { .. })
    ));
    let words = blob(&cfg, &good);
    let b = bytes(&words);
    assert!(matches!(
        Int8Model::from_blob(&b[..b.len() - 16]).unwrap_err(),
        ModelError::Blob(BlobError::Truncated { .. })
    ));
}

/// Random byte changes to a valid blob, the CRC then fixed so that the parser and the graph
/// checks see them: every outcome is a typed error or a model that runs without panicking.
#[test]
fn mutated_blobs_never_panic() {
    let cfg = config();
    let words = blob(&cfg, &random_tensors(&cfg, 13));
    let len = bytes(&words).len();
    let mut rng = AmbientRng::new(21);
    let (y, m) = measurement(&mut rng, 2 * 4 * 4);
    let mut loaded = 0;
    for _ in 0..300 {
        let mut w = words.clone();
        let b: &mut [u8] = bytemuck::cast_slice_mut(&mut w);
        for _ in 0..1 + rng.below(4) {
            let at = 16 + rng.below((len - 16) as u32) as usize;
            b[at] = rng.next_u32() as u8;
        }
        let crc = ambient_core::int8::crc32::crc32(&b[16..len]);
        b[12..16].copy_from_slice(&crc.to_le_bytes());
        if let Ok(model) = Int8Model::from_blob(bytes(&w)) {
            loaded += 1;
            if model.image_len() == y.len() && model.scratch_words() < 1 << 16 {
                let mut scratch = vec![0u32; model.scratch_words()];
                let mut out = vec![0f32; y.len()];
                let _ = restore(&model, &y, &m, &mut scratch, &mut out);
            }
        }
    }
    // Most single-byte changes land in weights and still load: the loop ran real models.
    assert!(loaded > 50, "{loaded}");
}

/// A blob may carry the arena offsets (`plan`): any plan without overlapping live buffers
/// gives the same restoration as first fit, bit for bit; a plan that overlaps, or has too
/// few or too many offsets, is refused at load.
#[test]
fn arena_plans_are_honoured_and_checked() {
    use ambient_core::int8::restore::{buffer_events, BufferEvent};
    let cfg = config();
    let tensors = random_tensors(&cfg, 17);
    let words = blob(&cfg, &tensors);
    let model = Int8Model::from_blob(bytes(&words)).unwrap();
    let mut events = Vec::new();
    buffer_events(&model, &mut |e| events.push(e)).unwrap();
    let lens: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            BufferEvent::Alloc { len, .. } => Some(*len),
            BufferEvent::Free { .. } => None,
        })
        .collect();
    // Every buffer freed once, except the output F.
    let frees = events.len() - lens.len();
    assert_eq!(frees, lens.len() - 1);
    // Every buffer at its own place, back to back from the end (no reuse at all): valid.
    let total: usize = lens.iter().sum();
    let mut at = total;
    let spread: Vec<i32> = lens
        .iter()
        .map(|&l| {
            at -= l;
            at as i32
        })
        .collect();
    let with_plan = |plan: Vec<i32>| {
        let mut t = random_tensors(&cfg, 17);
        let n = plan.len() as u32;
        t.push(i32t("plan".into(), vec![n], plan));
        blob(&cfg, &t)
    };
    let planned_words = with_plan(spread.clone());
    let planned = Int8Model::from_blob(bytes(&planned_words)).unwrap();
    assert_eq!(planned.arena_bytes(), total);
    assert!(model.arena_bytes() < total, "first fit reuses memory");
    let mut rng = AmbientRng::new(8);
    let (y, m) = measurement(&mut rng, model.image_len());
    let run = |model: &Int8Model| {
        let mut scratch = vec![0u32; model.scratch_words()];
        let mut out = vec![0f32; model.image_len()];
        restore(model, &y, &m, &mut scratch, &mut out).unwrap();
        out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    };
    assert_eq!(run(&model), run(&planned));

    let refused = |plan: Vec<i32>| match Int8Model::from_blob(bytes(&with_plan(plan))) {
        Err(ModelError::Tensor { name, problem }) if name == "plan" => problem,
        other => panic!("{other:?}"),
    };
    assert_eq!(refused(vec![0; lens.len()]), "overlaps a live buffer");
    assert_eq!(
        refused(spread[..lens.len() - 1].to_vec()),
        "fewer offsets than buffers"
    );
    let mut long = spread.clone();
    long.push(0);
    assert_eq!(refused(long), "more offsets than buffers");
    let mut negative = spread;
    negative[3] = -1;
    assert_eq!(refused(negative), "negative offset");
}
