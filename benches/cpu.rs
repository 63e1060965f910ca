//! CPU speed of the spec config (C = 1, 28 x 28, ch 32, mult [1, 2, 2], blocks 1):
//! one ambient training step at batch 64 (images/s = 64 / median), and one single-image
//! restoration D(y, A, s_r) (latency). `benches/compare.sh` runs these beside PyTorch eager and
//! ONNX Runtime (benches/compare_pytorch.py) on the same cores.

use ambient_core::int8::model::Int8Model;
use ambient_cpu::config::{CorruptionMeta, UNetConfig};
use ambient_cpu::denoiser::denoise;
use ambient_cpu::frozen::FrozenParams;
use ambient_cpu::io::dataset::CorruptedDataset;
use ambient_cpu::io::weights::load_weights;
use ambient_cpu::quantize::aligned_copy;
use ambient_cpu::quantize::fast::{restore_fast, FastInt8Model, FastWorkspace};
use ambient_cpu::quantize::runner::restore_int8_core;
use ambient_cpu::train::{Further, Mode, TrainOptions, Trainer};
use ambient_cpu::unet::UNet;
use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::Array4;

mod fixtures;
use fixtures::{data, trained_like};

fn bench(c: &mut Criterion) {
    // As the `ambient` command runs (src/main.rs).
    ambient_cpu::malloc_tuning::keep_freed_memory();
    let cfg = UNetConfig::spec_mnist();
    let ds = data(512);
    let meta = CorruptionMeta {
        kind: "random".into(),
        p: 0.8,
        delta: 0.1,
        r#box: None,
        mode: "ambient".into(),
    };
    let mut opts = TrainOptions::defaults(Mode::Ambient, Further::Random { delta: 0.1 });
    opts.batch = 64;
    let mut trainer = Trainer::new(cfg.clone(), meta, opts).expect("trainer");
    trainer.weights = trained_like(&cfg);
    let mut g = c.benchmark_group("spec_config");
    g.sample_size(15);
    g.bench_function("train_step_batch64", |b| {
        b.iter(|| trainer.train_step(&ds).expect("step"))
    });
    let net = UNet::new(&cfg).expect("net");
    let params = trained_like(&cfg);
    // As `ambient restore` holds its weights: frozen, so the Winograd filters built from
    // them are not compared with them again on every call.
    let params = FrozenParams::new(&params);
    let (y, m) = ds.image(0);
    let y = Array4::from_shape_vec((1, 1, 28, 28), y.to_vec()).expect("y");
    let m = Array4::from_shape_vec((1, 1, 28, 28), m.to_vec()).expect("m");
    g.sample_size(100);
    g.bench_function("restore_single_image", |b| {
        b.iter(|| denoise(&net, &params, &y, &m, &[0.1]))
    });
    g.finish();
    int8_vs_f32(c, &ds);
}

/// Host int8 restoration against host f32 restoration of the same trained model (the firmware's
/// ch 8 model and its blob, both committed under firmware-demo/): one image, NFE = 1. `int8` is
/// the fast host executor (model prepared and workspace allocated once, as `restore_int8` does
/// per batch), `int8_core` the core executor the firmware runs (same output bit for bit).
fn int8_vs_f32(c: &mut Criterion, ds: &CorruptedDataset) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-demo");
    let (cfg, params) = load_weights(&root.join("model/ch8_p08.safetensors")).expect("ch 8 model");
    let net = UNet::new(&cfg.unet).expect("net");
    let bytes = std::fs::read(root.join("assets/model.blob")).expect("blob");
    let words = aligned_copy(&bytes);
    let model =
        Int8Model::from_blob(&bytemuck::cast_slice(&words)[..bytes.len()]).expect("blob parses");
    let fast = FastInt8Model::new(&model).expect("fast model");
    let mut ws = FastWorkspace::new(&fast);
    let sigma = model.config().sigma;
    let (y, m) = ds.image(0);
    let (y4, m4) = (
        Array4::from_shape_vec((1, 1, 28, 28), y.to_vec()).expect("y"),
        Array4::from_shape_vec((1, 1, 28, 28), m.to_vec()).expect("m"),
    );
    let mut g = c.benchmark_group("ch8_restore_one_image");
    g.sample_size(100);
    g.bench_function("f32", |b| {
        b.iter(|| denoise(&net, &params, &y4, &m4, &[sigma]))
    });
    let mut out = vec![0.0f32; y.len()];
    g.bench_function("int8", |b| {
        b.iter(|| restore_fast(&fast, &mut ws, y, m, &mut out).expect("int8"))
    });
    g.bench_function("int8_core", |b| {
        b.iter(|| restore_int8_core(&model, y, m).expect("int8 core"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
