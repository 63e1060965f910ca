//! Training checkpoints: a bit-exact round trip of every part (weights, EMA, Adam's moments
//! and step, RNG state, hyper-parameters, opaque options), a resumed RNG that continues the
//! same stream, and clear errors for another config, the wrong file kind and bad outputs.

mod io_util;

use std::fs;

use ambient_core::AmbientRng;
use ambient_cpu::config::{CorruptionMeta, ModelConfig, UNetConfig, PRECOND};
use ambient_cpu::error::HostError;
use ambient_cpu::io::checkpoint::{load_checkpoint, read_checkpoint, save_checkpoint, Checkpoint};
use ambient_cpu::io::weights::{describe, load_weights, save_weights, FileKind};
use ambient_cpu::optim::{Adam, AdamConfig, EmaSchedule};
use ambient_cpu::params::{spec_layout, ParamStore};
use io_util::{safetensors_header, Scratch};

fn small_config() -> ModelConfig {
    ModelConfig {
        unet: UNetConfig {
            img_channels: 1,
            img_resolution: 8,
            ch: 8,
            mult: vec![1, 2],
            blocks: 1,
            groups: 4,
            sigma_data: 0.5,
        },
        precond: PRECOND.into(),
        corruption: CorruptionMeta {
            kind: "random".into(),
            p: 0.8,
            delta: 0.1,
            r#box: None,
            mode: "ambient".into(),
        },
    }
}

/// Distinct values per store (`salt`), with -0.0 and a subnormal mixed in.
fn store(cfg: &ModelConfig, salt: f32) -> ParamStore {
    let mut s = ParamStore::zeros(&spec_layout(&cfg.unet));
    let mut k = 0u32;
    for p in &mut s.params {
        for v in &mut p.data {
            *v = match k % 53 {
                0 => -0.0,
                1 => f32::from_bits(3),
                _ => (k as f32 * 0.37 + salt).cos() * salt,
            };
            k += 1;
        }
    }
    s
}

fn checkpoint(cfg: &ModelConfig) -> Checkpoint {
    let mut rng = AmbientRng::new(1234);
    rng.normal(); // leaves a spare normal cached, the harder state to keep
    let mut adam = Adam::new(
        AdamConfig {
            lr: 0.1f32 + f32::EPSILON, // not a short decimal
            warmup_steps: 1000,
            max_grad_norm: Some(1.0 / 3.0),
            ..AdamConfig::new(2e-4)
        },
        &store(cfg, 1.0),
    )
    .unwrap();
    adam.m = store(cfg, 0.25);
    adam.v = store(cfg, 0.5);
    adam.t = 4321;
    Checkpoint {
        config: cfg.clone(),
        step: 4321,
        rng_state: rng.state(),
        weights: store(cfg, 1.0),
        ema: store(cfg, 2.0),
        ema_schedule: EmaSchedule::HalfLife {
            halflife_kimg: 0.5,
            rampup_ratio: Some(0.05),
        },
        adam,
        training_options: r#"{"batch": 64, "note": "données ✓"}"#.into(),
    }
}

fn bits(s: &ParamStore) -> Vec<Vec<u32>> {
    s.params
        .iter()
        .map(|p| p.data.iter().map(|v| v.to_bits()).collect())
        .collect()
}

#[test]
fn round_trip_is_bit_exact_and_the_rng_resumes_the_same_stream() {
    let dir = Scratch::new("ckpt-rt");
    let path = dir.path("ck.safetensors");
    let cfg = small_config();
    let ck = checkpoint(&cfg);
    save_checkpoint(&path, &ck).unwrap();
    let back = load_checkpoint(&path, &cfg).unwrap();
    assert_eq!(back, ck);
    for (a, b) in [
        (&back.weights, &ck.weights),
        (&back.ema, &ck.ema),
        (&back.adam.m, &ck.adam.m),
        (&back.adam.v, &ck.adam.v),
    ] {
        assert_eq!(bits(a), bits(b), "f32 == treats -0.0 as 0.0; compare bits");
    }
    assert_eq!(
        back.adam.config.lr.to_bits(),
        (0.1f32 + f32::EPSILON).to_bits()
    );
    assert_eq!(
        back.adam.config.max_grad_norm.unwrap().to_bits(),
        (1.0f32 / 3.0).to_bits()
    );
    assert!(ck.rng_state.1.is_some());
    // The original generator, continued, and one rebuilt from the checkpoint agree.
    let mut orig = AmbientRng::new(1234);
    orig.normal();
    let mut resumed = AmbientRng::from_state(back.rng_state.0, back.rng_state.1);
    for _ in 0..9 {
        assert_eq!(orig.normal().to_bits(), resumed.normal().to_bits());
    }
    // Layout: weights under spec names plus three prefixed copies; metadata as strings.
    let bytes = fs::read(&path).unwrap();
    let (h, _) = safetensors_header(&bytes);
    let n = spec_layout(&cfg.unet).len();
    assert_eq!(h.as_object().unwrap().len(), 4 * n + 1);
    for key in [
        "in_conv.weight",
        "ema.in_conv.weight",
        "adam_m.in_conv.weight",
        "adam_v.in_conv.weight",
    ] {
        assert_eq!(h[key]["dtype"], "F32", "{key}");
    }
    assert_eq!(h["__metadata__"]["step"], "4321");
    assert_eq!(
        h["__metadata__"]["training_options"],
        ck.training_options.as_str()
    );
    let d = describe(&path).unwrap();
    assert_eq!(
        (d.kind, d.step, d.tensors),
        (FileKind::Checkpoint, Some(4321), 4 * n)
    );
}

#[test]
fn a_fresh_rng_without_spare_normal_round_trips_too() {
    let dir = Scratch::new("ckpt-rng");
    let path = dir.path("ck.safetensors");
    let cfg = small_config();
    let mut ck = checkpoint(&cfg);
    ck.rng_state = (u64::MAX - 5, None);
    ck.ema_schedule = EmaSchedule::Decay { beta: 0.999 };
    save_checkpoint(&path, &ck).unwrap();
    let back = read_checkpoint(&path).unwrap();
    assert_eq!(back.rng_state, (u64::MAX - 5, None));
    assert_eq!(back.ema_schedule, EmaSchedule::Decay { beta: 0.999 });
}

#[test]
fn checkpoint_of_another_config_names_the_differing_fields() {
    let dir = Scratch::new("ckpt-cfg");
    let path = dir.path("ck.safetensors");
    let cfg = small_config();
    save_checkpoint(&path, &checkpoint(&cfg)).unwrap();
    let mut other = cfg.clone();
    other.unet.ch = 16;
    other.corruption.p = 0.5;
    let e = load_checkpoint(&path, &other).unwrap_err();
    match &e {
        HostError::ConfigMismatch { differences, .. } => {
            assert_eq!(differences.len(), 2, "{differences:?}");
            assert_eq!(differences[0], "ch: file has 8, requested 16");
            assert!(
                differences[1].starts_with("p: file has 0.8"),
                "{differences:?}"
            );
        }
        other => panic!("expected ConfigMismatch, got {other}"),
    }
    assert!(
        e.to_string().starts_with(&path.display().to_string()),
        "{e}"
    );
}

#[test]
fn weight_files_and_checkpoints_are_not_interchangeable() {
    let dir = Scratch::new("ckpt-kind");
    let cfg = small_config();
    let ck = checkpoint(&cfg);
    let wpath = dir.path("w.safetensors");
    save_weights(&wpath, &cfg, &ck.ema).unwrap();
    let e = read_checkpoint(&wpath).unwrap_err().to_string();
    assert!(
        e.contains("w.safetensors")
            && e.contains("this is a weight file, not a training checkpoint"),
        "{e}"
    );
    let cpath = dir.path("ck.safetensors");
    save_checkpoint(&cpath, &ck).unwrap();
    let e = load_weights(&cpath).unwrap_err().to_string();
    assert!(
        e.contains("ck.safetensors") && e.contains("not a weight file"),
        "{e}"
    );
}

#[test]
fn truncated_checkpoint_and_unwritable_output_are_errors() {
    let dir = Scratch::new("ckpt-bad");
    let cfg = small_config();
    let ck = checkpoint(&cfg);
    let path = dir.path("ck.safetensors");
    save_checkpoint(&path, &ck).unwrap();
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let e = read_checkpoint(&path).unwrap_err().to_string();
    assert!(e.contains("ck.safetensors: truncated"), "{e}");

    fs::write(dir.path("plain"), b"x").unwrap();
    let dest = dir.path("plain").join("ck.safetensors");
    let e = save_checkpoint(&dest, &ck).unwrap_err();
    assert!(matches!(e, HostError::Unwritable { .. }), "{e}");
    // An old checkpoint survives a failed overwrite (here: Adam v of the wrong layout).
    let good = dir.path("good.safetensors");
    save_checkpoint(&good, &ck).unwrap();
    let before = fs::read(&good).unwrap();
    let mut bad = ck.clone();
    bad.adam.v.params.pop();
    assert!(save_checkpoint(&good, &bad).is_err());
    assert_eq!(fs::read(&good).unwrap(), before);
    assert_eq!(
        dir.entries(),
        vec!["ck.safetensors", "good.safetensors", "plain"]
    );
}
