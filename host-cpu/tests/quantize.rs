//! The quantizer: its folded f32 network equals the unfolded one; a trained model quantized
//! for single-step restoration restores MNIST measurements at p = 0.8 almost as well as in
//! f32; bad input gives typed errors.

use std::path::Path;

use ambient_core::precond::{c_in, c_noise};
use ambient_core::AmbientRng;
use ambient_cpu::config::UNetConfig;
use ambient_cpu::corrupt::{corrupt_dataset, CorruptionKind};
use ambient_cpu::init::init_params;
use ambient_cpu::io::dataset::CorruptedDataset;
use ambient_cpu::io::weights::load_weights;
use ambient_cpu::metrics::psnr;
use ambient_cpu::quantize::runner::restore_int8;
use ambient_cpu::quantize::{quantize, FoldedNet, QuantizeError};
use ambient_cpu::restore::restore_measurements;
use ambient_cpu::unet::UNet;
use ndarray::Array4;

fn small_config() -> UNetConfig {
    UNetConfig {
        img_channels: 1,
        img_resolution: 8,
        ch: 8,
        mult: vec![1, 2],
        blocks: 1,
        groups: 4,
        sigma_data: 0.5,
    }
}

/// Random parameters with every layer active (the zero-initialised conv2 / out_conv weights
/// perturbed, so that every path contributes).
fn random_params(cfg: &UNetConfig, seed: u64) -> ambient_cpu::params::ParamStore {
    let mut rng = AmbientRng::new(seed);
    let mut p = init_params(cfg, &mut rng);
    for t in p.params.iter_mut() {
        t.data.iter_mut().for_each(|v| *v += 0.1 * rng.normal());
    }
    p
}

/// The folded network (embedding in conv1's bias, HWC, OHWI, explicit `[c_in y, m]`) against
/// `UNet::forward_inference` on the same input. Both are f32 with different summation orders
/// over at most 9 * 24 terms per output and ~20 layers; differences of a few 1e-6 relative
/// to the activations' size are expected, 1e-4 of max |F| leaves room and still catches any
/// wiring or folding error (those change outputs by O(1)).
#[test]
fn folded_network_equals_the_unfolded_one() {
    let cfg = small_config();
    let params = random_params(&cfg, 1);
    let net = UNet::new(&cfg).unwrap();
    let sigma = 0.3f32;
    let folded = FoldedNet::new(&cfg, &params, sigma).unwrap();
    let mut rng = AmbientRng::new(2);
    let n = 64;
    let m: Vec<f32> = (0..n)
        .map(|_| f32::from(rng.bernoulli(0.6) as u8))
        .collect();
    let y: Vec<f32> = m.iter().map(|&k| k * (rng.uniform() * 2.0 - 1.0)).collect();
    let mut seen = Vec::new();
    let f_hwc = folded.forward(&y, &m, &mut |name, _| seen.push(name.to_string()));
    let ci = c_in(sigma, 0.5);
    let mut f_in = Array4::<f32>::zeros((1, 2, 8, 8));
    for p in 0..n {
        f_in[[0, 0, p / 8, p % 8]] = ci * y[p];
        f_in[[0, 1, p / 8, p % 8]] = m[p];
    }
    let f = net.forward_inference(&params, &f_in, &[c_noise(sigma)]);
    let max = f.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
    assert!(
        max > 0.1,
        "a network with every layer active has a sizeable output"
    );
    for p in 0..n {
        let d = (f[[0, 0, p / 8, p % 8]] - f_hwc[p]).abs();
        assert!(d <= 1e-4 * max, "pixel {p}: {d}");
    }
    // Calibration sees each quantized tensor: 3 per gated conv, 2 per GroupNorm, 1 per block.
    // Here: in_conv, out_conv, 5 blocks x (conv1, conv2) and 3 skips (enc.1, dec.1, dec.0):
    // 15 convs; 5 x 2 + 1 GroupNorms; 5 blocks: 45 + 22 + 5 = 72.
    assert_eq!(seen.len(), 72);
}

#[test]
fn bad_input_gives_typed_errors() {
    let cfg = small_config();
    let params = random_params(&cfg, 3);
    let y = vec![0.0f32; 64];
    let m = vec![1.0f32; 64];
    assert!(matches!(
        quantize(&cfg, &params, 0.1, &[], &[], 0),
        Err(QuantizeError::Calibration(_))
    ));
    assert!(matches!(
        quantize(&cfg, &params, 0.1, &y, &m[..10], 1),
        Err(QuantizeError::Calibration(_))
    ));
    assert!(matches!(
        quantize(&cfg, &params, f32::NAN, &y, &m, 1),
        Err(QuantizeError::Model(_))
    ));
    let mut other = cfg.clone();
    other.ch = 16;
    assert!(matches!(
        quantize(&other, &params, 0.1, &y, &m, 1),
        Err(QuantizeError::Model(_))
    ));
    let mut deep = cfg.clone();
    deep.mult = vec![1, 1, 1, 1, 1];
    deep.img_resolution = 16;
    let deep_params = random_params(&deep, 4);
    let y16 = vec![0.0f32; 256];
    let m16 = vec![1.0f32; 256];
    assert!(matches!(
        quantize(&deep, &deep_params, 0.1, &y16, &m16, 1),
        Err(QuantizeError::Model(_))
    ));
}

/// The committed small model (ch 8, mult [1, 2, 2], groups 4, trained by `ambient train` on
/// MNIST measurements at p = 0.8; see firmware-demo/README.md) restores held-out test
/// measurements at s_r = 0.2 (chosen by `ambient restore --sigma auto`) in f32 and in int8. Calibration uses other measurements than
/// the evaluation. Bounds:
/// - int8 vs f32 output: the int8 network's error is a few output LSBs (sd * s_F, about
///   0.01 here) at the missing pixels and 0 at observed ones, i.e. an RMS around 0.02 or
///   below, a PSNR (range 2) of 10 log10(4 / 4e-4) = 40 dB; we require 30 dB, which an error in
///   the graph (a wrong zero point, a mis-tied concatenation) misses by far.
/// - the target is a PSNR drop of at most 0.3 dB against the clean images on 500
///   measurements; with 200 here the sampling noise of a mean difference of two paired
///   PSNRs is small (their per-image difference has a spread of ~0.2 dB), so the same 0.3 dB
///   is asserted.
#[test]
fn int8_restoration_tracks_f32_on_the_committed_model() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let (cfg, params) =
        load_weights(&root.join("firmware-demo/model/ch8_p08.safetensors")).unwrap();
    let clean =
        CorruptedDataset::load_idx(&root.join("data/mnist/t10k-images-idx3-ubyte.gz")).unwrap();
    let take = |ds: &CorruptedDataset, from: usize, n: usize| {
        let l = ds.image_len();
        CorruptedDataset {
            n,
            measurements: ds.measurements[from * l..(from + n) * l].to_vec(),
            masks: ds.masks[from * l..(from + n) * l].to_vec(),
            meta: None,
            ..ds.clone()
        }
    };
    let eval_clean = take(&clean, 0, 200);
    let eval = corrupt_dataset(&eval_clean, CorruptionKind::Random { p: 0.8 }, 11).unwrap();
    let calib = corrupt_dataset(
        &take(&clean, 5000, 128),
        CorruptionKind::Random { p: 0.8 },
        12,
    )
    .unwrap();
    let sigma = 0.2;
    let q = quantize(
        &cfg.unet,
        &params,
        sigma,
        &calib.measurements,
        &calib.masks,
        calib.n,
    )
    .unwrap();
    let words = ambient_cpu::quantize::aligned_copy(&q.blob);
    let model = ambient_core::int8::model::Int8Model::from_blob(
        &bytemuck::cast_slice(&words)[..q.blob.len()],
    )
    .unwrap();
    let net = UNet::new(&cfg.unet).unwrap();
    let dims = (eval.n, eval.c, eval.h, eval.w);
    let r32 = restore_measurements(
        &net,
        &params,
        dims,
        &eval.measurements,
        &eval.masks,
        sigma,
        64,
        |_| {},
    )
    .unwrap();
    let r8 = restore_int8(&model, &eval.measurements, &eval.masks).unwrap();
    let len = eval.image_len();
    let agree = psnr(&r32, &r8, len);
    let p32 = psnr(&eval_clean.measurements, &r32, len);
    let p8 = psnr(&eval_clean.measurements, &r8, len);
    let zeros = psnr(&eval_clean.measurements, &eval.measurements, len);
    eprintln!(
        "200 test measurements, p = 0.8, s_r = {sigma}: PSNR vs clean f32 {p32:.3} dB, \
         int8 {p8:.3} dB (drop {:.3} dB; measurement {zeros:.2} dB); int8 vs f32 {agree:.2} dB; \
         blob {} bytes, scratch {} bytes",
        p32 - p8,
        q.blob.len(),
        4 * q.scratch_words
    );
    // The blob's arena plan packs the executor's buffers into the largest total that is ever
    // live at once (a lower bound for any placement); greedy by size reaches it on this graph.
    let mut live = 0usize;
    let mut bound = 0usize;
    let mut lens = Vec::new();
    ambient_core::int8::restore::buffer_events(&model, &mut |e| match e {
        ambient_core::int8::restore::BufferEvent::Alloc { len, .. } => {
            lens.push(len);
            live += len;
            bound = bound.max(live);
        }
        ambient_core::int8::restore::BufferEvent::Free { id } => live -= lens[id],
    })
    .unwrap();
    assert_eq!(model.arena_bytes(), bound);
    assert!(p32 > zeros + 5.0, "the model restores: {p32} vs {zeros}");
    assert!(agree >= 30.0, "int8 vs f32 {agree} dB");
    assert!(p32 - p8 <= 0.3, "drop {} dB", p32 - p8);
}
