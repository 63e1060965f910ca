//! Weight files: the golden files from the independent PyTorch implementation load, a saved
//! store reads back bit for bit and is a plain safetensors file another tool can parse, and
//! each kind of bad file is a clear error naming the file.

mod io_util;

use std::fs;
use std::path::{Path, PathBuf};

use ambient_cpu::config::{CorruptionMeta, ModelConfig, UNetConfig, PRECOND};
use ambient_cpu::error::{FormatProblem, HostError};
use ambient_cpu::io::weights::{describe, load_weights, save_weights, FileKind};
use ambient_cpu::params::{spec_layout, ParamStore};
use io_util::{f32_bytes, safetensors_bytes, safetensors_f32, safetensors_header, Scratch};

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden")
        .join(name)
}

/// The tiny config as tests/golden/README.md states it.
fn tiny_config() -> ModelConfig {
    ModelConfig {
        unet: UNetConfig {
            img_channels: 2,
            img_resolution: 8,
            ch: 8,
            mult: vec![1, 2],
            blocks: 2,
            groups: 4,
            sigma_data: 0.5,
        },
        precond: PRECOND.into(),
        corruption: CorruptionMeta {
            kind: "random".into(),
            p: 0.5,
            delta: 0.2,
            r#box: None,
            mode: "ambient".into(),
        },
    }
}

/// A store of `cfg` whose values are all distinct, with -0.0, a subnormal and extremes mixed
/// in, so a bit-exact round trip is a real check.
fn patterned_store(cfg: &ModelConfig) -> ParamStore {
    let mut s = ParamStore::zeros(&spec_layout(&cfg.unet));
    let mut k = 0u32;
    for p in &mut s.params {
        for v in &mut p.data {
            *v = match k % 97 {
                0 => -0.0,
                1 => f32::from_bits(1), // smallest subnormal
                2 => f32::MAX,
                3 => -f32::MIN_POSITIVE,
                _ => (k as f32 * 0.618_034).sin() * 3.0,
            };
            k += 1;
        }
    }
    s
}

fn bits(s: &ParamStore) -> Vec<(String, Vec<usize>, Vec<u32>)> {
    s.params
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.shape.clone(),
                p.data.iter().map(|v| v.to_bits()).collect(),
            )
        })
        .collect()
}

#[test]
fn loads_golden_tiny_weights_with_the_readme_config() {
    let path = golden("tiny.weights.safetensors");
    let (cfg, store) = load_weights(&path).unwrap();
    assert_eq!(cfg, tiny_config());
    let layout = spec_layout(&cfg.unet);
    let names: Vec<(String, Vec<usize>)> = store
        .params
        .iter()
        .map(|p| (p.name.clone(), p.shape.clone()))
        .collect();
    assert_eq!(names, layout, "spec order and shapes");
    // Compare every tensor with the bytes read by hand from the file.
    let bytes = fs::read(&path).unwrap();
    let (header, _) = safetensors_header(&bytes);
    assert_eq!(
        header.as_object().unwrap().len() - 1,
        store.params.len(),
        "no tensor left out"
    );
    for p in &store.params {
        let (shape, data) = safetensors_f32(&bytes, &p.name);
        assert_eq!(shape, p.shape);
        assert_eq!(
            data.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            p.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
    // README: every tensor is non-zero in the golden weights, the zero-initialised ones too.
    assert!(store
        .get("out_conv.weight")
        .unwrap()
        .data
        .iter()
        .any(|&v| v != 0.0));
}

#[test]
fn loads_golden_spec_weights_and_describes_them() {
    let path = golden("spec.weights.safetensors");
    let (cfg, store) = load_weights(&path).unwrap();
    assert_eq!(cfg.unet, UNetConfig::spec_mnist());
    assert_eq!((cfg.corruption.p, cfg.corruption.delta), (0.8, 0.1));
    let bytes = fs::read(&path).unwrap();
    let (header, _) = safetensors_header(&bytes);
    let total: usize = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(_, t)| {
            t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .product::<usize>()
        })
        .sum();
    assert_eq!(store.num_scalars(), total);
    let d = describe(&path).unwrap();
    assert_eq!(d.kind, FileKind::Weights);
    assert_eq!(d.tensors, 108);
    assert_eq!(d.parameters, total);
    assert_eq!(d.step, None);
    let text = d.to_string();
    assert!(
        text.contains("ch 32")
            && text.contains("p = 0.8")
            && text.contains(&format!("parameters: {total}")),
        "{text}"
    );
}

#[test]
fn save_then_load_is_bit_exact_and_readable_by_hand() {
    let dir = Scratch::new("weights-rt");
    let path = dir.path("w.safetensors");
    let mut cfg = tiny_config();
    cfg.corruption = CorruptionMeta {
        kind: "box".into(),
        p: 0.0,
        delta: 0.0,
        r#box: Some(3),
        mode: "naive".into(),
    };
    let store = patterned_store(&cfg);
    save_weights(&path, &cfg, &store).unwrap();
    let (cfg2, store2) = load_weights(&path).unwrap();
    assert_eq!(cfg2, cfg);
    assert_eq!(bits(&store2), bits(&store));
    // Independent parse: spec names, F32 little-endian, config keys of the spec.
    let bytes = fs::read(&path).unwrap();
    let (header, _) = safetensors_header(&bytes);
    let meta: serde_json::Value =
        serde_json::from_str(header["__metadata__"]["config"].as_str().unwrap()).unwrap();
    for key in [
        "img_channels",
        "img_resolution",
        "ch",
        "mult",
        "blocks",
        "groups",
        "sigma_data",
        "precond",
        "kind",
        "p",
        "delta",
        "box",
        "mode",
    ] {
        assert!(meta.get(key).is_some(), "config key {key} missing: {meta}");
    }
    assert_eq!(meta["box"], 3);
    assert_eq!(meta["precond"], "mask-aware-edm");
    let (shape, data) = safetensors_f32(&bytes, "in_conv.weight");
    assert_eq!(shape, vec![8, 4, 3, 3]);
    assert_eq!(
        data.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        bits(&store)[4].2
    );
    assert_eq!(
        dir.entries(),
        vec!["w.safetensors".to_string()],
        "no temporary left"
    );
}

/// Writes the tiny golden file's tensors and config by hand, with `edit` applied.
fn edited_golden(
    dir: &Scratch,
    edit: impl FnOnce(&mut Vec<(String, &'static str, Vec<usize>, Vec<u8>)>, &mut String),
) -> PathBuf {
    let (cfg, store) = load_weights(&golden("tiny.weights.safetensors")).unwrap();
    let mut tensors: Vec<(String, &'static str, Vec<usize>, Vec<u8>)> = store
        .params
        .iter()
        .map(|p| (p.name.clone(), "F32", p.shape.clone(), f32_bytes(&p.data)))
        .collect();
    let mut config = serde_json::to_string(&cfg).unwrap();
    edit(&mut tensors, &mut config);
    let path = dir.path("edited.safetensors");
    fs::write(&path, safetensors_bytes(&[("config", config)], &tensors)).unwrap();
    path
}

fn message(e: &HostError) -> String {
    e.to_string()
}

#[test]
fn missing_unknown_misshapen_wrong_dtype_and_nan_tensors_are_named() {
    let dir = Scratch::new("weights-bad");
    let p = edited_golden(&dir, |t, _| {
        t.retain(|x| x.0 != "mid.conv2.gate");
    });
    let e = message(&load_weights(&p).unwrap_err());
    assert!(
        e.contains("edited.safetensors") && e.contains("mid.conv2.gate") && e.contains("missing"),
        "{e}"
    );

    let p = edited_golden(&dir, |t, _| {
        t.push(("mid.extra.weight".into(), "F32", vec![1], f32_bytes(&[1.0])))
    });
    let e = message(&load_weights(&p).unwrap_err());
    assert!(e.contains("mid.extra.weight"), "{e}");

    let p = edited_golden(&dir, |t, _| {
        let x = t.iter_mut().find(|x| x.0 == "emb.fc1.bias").unwrap();
        x.2 = vec![2, x.2[0] / 2];
    });
    let e = load_weights(&p).unwrap_err();
    assert!(
        matches!(
            &e,
            HostError::Format {
                problem: FormatProblem::WrongShape { .. },
                ..
            }
        ),
        "{e}"
    );
    assert!(
        message(&e).contains("emb.fc1.bias") && message(&e).contains("2 x 16"),
        "{e}"
    );

    let p = edited_golden(&dir, |t, _| {
        let x = t.iter_mut().find(|x| x.0 == "emb.fc1.bias").unwrap();
        x.1 = "F16";
        x.3.truncate(x.3.len() / 2);
    });
    let e = load_weights(&p).unwrap_err();
    assert!(
        matches!(
            &e,
            HostError::Format {
                problem: FormatProblem::WrongDtype { .. },
                ..
            }
        ),
        "{e}"
    );
    assert!(
        message(&e).contains("F16") && message(&e).contains("emb.fc1.bias"),
        "{e}"
    );

    let p = edited_golden(&dir, |t, _| {
        let x = t.iter_mut().find(|x| x.0 == "out_conv.bias").unwrap();
        x.3[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    let e = load_weights(&p).unwrap_err();
    assert!(matches!(&e, HostError::NonFinite { .. }), "{e}");
    assert!(
        message(&e).contains("out_conv.bias") && message(&e).contains("[1]"),
        "{e}"
    );

    let p = edited_golden(&dir, |_, c| *c = c.replace("\"ch\":8", "\"ch\":16"));
    let e = message(&load_weights(&p).unwrap_err());
    assert!(e.contains("edited.safetensors"), "{e}");

    let p = edited_golden(&dir, |_, c| *c = c.replace("mask-aware-edm", "edm"));
    let e = message(&load_weights(&p).unwrap_err());
    assert!(e.contains("precond"), "{e}");
}

#[test]
fn truncated_and_foreign_files_are_rejected() {
    let dir = Scratch::new("weights-trunc");
    let bytes = fs::read(golden("tiny.weights.safetensors")).unwrap();
    let cut = dir.path("cut.safetensors");
    fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let e = load_weights(&cut).unwrap_err();
    assert!(
        matches!(
            &e,
            HostError::Format {
                problem: FormatProblem::Truncated { .. },
                ..
            }
        ),
        "{e}"
    );
    assert!(
        message(&e).starts_with(&format!("{}: truncated", cut.display())),
        "{e}"
    );

    fs::write(&cut, &bytes[..200]).unwrap();
    let e = load_weights(&cut).unwrap_err();
    assert!(
        matches!(
            &e,
            HostError::Format {
                problem: FormatProblem::Truncated { .. },
                ..
            }
        ),
        "{e}"
    );
    assert!(message(&e).contains("header says a JSON header of"), "{e}");

    let png = dir.path("image.png");
    fs::write(&png, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap();
    let e = message(&load_weights(&png).unwrap_err());
    assert!(
        e.contains("image.png") && e.contains("not a safetensors file") && e.contains("PNG"),
        "{e}"
    );

    let empty = dir.path("empty.safetensors");
    fs::write(&empty, b"").unwrap();
    assert!(message(&load_weights(&empty).unwrap_err()).contains("empty"));

    let e = message(&load_weights(&dir.path("absent.safetensors")).unwrap_err());
    assert!(
        e.contains("absent.safetensors") && e.contains("cannot read"),
        "{e}"
    );
}

#[test]
fn unwritable_destination_is_an_error_and_leaves_nothing() {
    let dir = Scratch::new("weights-unwritable");
    let cfg = tiny_config();
    let store = patterned_store(&cfg);
    fs::write(dir.path("file"), b"x").unwrap();
    let dest = dir.path("file").join("w.safetensors");
    let e = save_weights(&dest, &cfg, &store).unwrap_err();
    assert!(matches!(e, HostError::Unwritable { .. }), "{e}");
    assert!(
        message(&e).contains("w.safetensors") && message(&e).contains("is a file"),
        "{e}"
    );
    assert_eq!(dir.entries(), vec!["file".to_string()]);

    // A store that does not match the config is refused before anything is written.
    let mut wrong = store.clone();
    wrong.params.pop();
    let e = save_weights(&dir.path("w.safetensors"), &cfg, &wrong).unwrap_err();
    assert!(message(&e).contains("tensors"), "{e}");
    let mut nan = store;
    nan.params[3].data[2] = f32::NAN;
    let e = save_weights(&dir.path("w.safetensors"), &cfg, &nan).unwrap_err();
    assert!(matches!(e, HostError::NonFinite { .. }), "{e}");
    assert_eq!(dir.entries(), vec!["file".to_string()]);
}
