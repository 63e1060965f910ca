//! The `ambient` command end to end on bad input: each case exits non-zero with one error that
//! names the file and the problem, never a panic, and leaves no output behind. Plus one small
//! happy path (corrupt -> train -> info -> restore -> sample) on a tiny network.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ambient(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ambient"))
        .args(args)
        .output()
        .expect("run ambient")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ambient-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Fails with exit code 1, a message containing every `needles`, and no panic.
fn fails_with(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A valid `.npy` header for u8 or f32 data of `shape` (version 1.0, padded to 64 bytes).
fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(h.len() as u16).to_le_bytes());
    v.extend_from_slice(h.as_bytes());
    v.extend_from_slice(data);
    v
}

const TINY: &[&str] = &[
    "--ch",
    "8",
    "--mult",
    "1,2",
    "--groups",
    "4",
    "--batch",
    "4",
    "--preview",
    "4",
];

#[test]
fn truncated_npy_is_named() {
    let d = tmp("trunc");
    let f = d.join("x.npy");
    let mut bytes = npy("|u1", &[3, 8, 8, 1], &[0u8; 192]);
    bytes.truncate(bytes.len() - 100);
    std::fs::write(&f, bytes).unwrap();
    let out = d.join("run");
    let o = ambient(&["train", "--data", s(&f), "--out", s(&out), "--steps", "1"]);
    fails_with(&o, &["x.npy", "truncated"]);
    assert!(!out.exists(), "a failed train left {}", out.display());
}

#[test]
fn foreign_file_is_named() {
    let d = tmp("foreign");
    let f = d.join("pic.npy");
    std::fs::write(&f, b"\x89PNG\r\n\x1a\n not an npy file at all").unwrap();
    let o = ambient(&["corrupt", "--input", s(&f), "--out", s(&d.join("c"))]);
    fails_with(&o, &["pic.npy"]);
    assert!(!d.join("c").exists());
    let o = ambient(&["info", s(&f)]);
    fails_with(&o, &["pic.npy"]);
}

#[test]
fn mask_of_wrong_size_names_both_files() {
    let d = tmp("mask");
    let (x, m) = (d.join("x.npy"), d.join("m.npy"));
    std::fs::write(&x, npy("|u1", &[2, 8, 8, 1], &[100u8; 128])).unwrap();
    std::fs::write(&m, npy("|u1", &[2, 6, 6, 1], &[1u8; 72])).unwrap();
    let o = ambient(&[
        "train",
        "--data",
        s(&x),
        "--masks",
        s(&m),
        "--out",
        s(&d.join("run")),
        "--steps",
        "1",
    ]);
    fails_with(&o, &["m.npy", "x.npy"]);
    assert!(!d.join("run").exists());
}

#[test]
fn nan_pixels_are_rejected_with_their_index() {
    let d = tmp("nan");
    let x = d.join("x.npy");
    let mut vals = vec![0.0f32; 2 * 64];
    vals[70] = f32::NAN;
    let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&x, npy("<f4", &[2, 8, 8, 1], &bytes)).unwrap();
    let o = ambient(&["corrupt", "--input", s(&x), "--out", s(&d.join("c"))]);
    fails_with(&o, &["x.npy", "NaN"]);
    assert!(!d.join("c").exists());
}

#[test]
fn unwritable_output_folder_is_named() {
    let d = tmp("unwritable");
    let blocker = d.join("file");
    std::fs::write(&blocker, b"a regular file").unwrap();
    let out = blocker.join("sub");
    let o = ambient(&[
        "corrupt",
        "--input",
        "data/mnist/t10k-images-idx3-ubyte.gz",
        "--limit",
        "4",
        "--out",
        s(&out),
    ]);
    fails_with(&o, &["file"]);
    assert_eq!(std::fs::read(&blocker).unwrap(), b"a regular file");
}

/// The happy path on a tiny network, then a resume with another config (refused, naming the
/// field), and restoration of data of the wrong size (refused).
#[test]
fn corrupt_train_info_restore_sample_and_config_mismatch() {
    let d = tmp("happy");
    // The output's parent folder does not exist yet: corrupt creates it.
    let data = d.join("new").join("data");
    let o = ambient(&[
        "corrupt",
        "--input",
        "data/mnist/t10k-images-idx3-ubyte.gz",
        "--limit",
        "16",
        "--p",
        "0.6",
        "--out",
        s(&data),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // 28 x 28 needs mult with 2^(L-1) dividing 28: [1, 2] works.
    let run = d.join("run");
    let mut args = vec![
        "train",
        "--data",
        s(&data),
        "--out",
        s(&run),
        "--steps",
        "3",
    ];
    args.extend_from_slice(TINY);
    let o = ambient(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "model.safetensors",
        "checkpoint.safetensors",
        "train_log.csv",
        "preview_samples.png",
    ] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    let log = std::fs::read_to_string(run.join("train_log.csv")).unwrap();
    assert_eq!(log.lines().count(), 4, "header + 3 steps: {log}");
    let o = ambient(&["info", s(&run.join("model.safetensors"))]);
    let info = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && info.contains("ch 8"), "{info}");
    // Resume with another width: refused, naming the field; the checkpoint is untouched.
    let before = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    let o = ambient(&[
        "train",
        "--data",
        s(&data),
        "--out",
        s(&run),
        "--steps",
        "4",
        "--resume",
        "--ch",
        "16",
        "--mult",
        "1,2",
        "--groups",
        "4",
        "--batch",
        "4",
    ]);
    fails_with(&o, &["checkpoint.safetensors", "ch"]);
    assert_eq!(
        std::fs::read(run.join("checkpoint.safetensors")).unwrap(),
        before
    );
    // Restore and sample.
    let r = d.join("restored");
    let o = ambient(&[
        "restore",
        "--weights",
        s(&run.join("model.safetensors")),
        "--data",
        s(&data),
        "--out",
        s(&r),
        "--clean",
        "data/mnist/t10k-images-idx3-ubyte.gz",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(r.join("restorations.npy").exists() && r.join("pairs.png").exists());
    assert!(String::from_utf8_lossy(&o.stdout).contains("PSNR"));
    let sdir = d.join("samples");
    let o = ambient(&[
        "sample",
        "--weights",
        s(&run.join("model.safetensors")),
        "--out",
        s(&sdir),
        "--n",
        "4",
        "--steps",
        "3",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(sdir.join("samples.png").exists() && sdir.join("samples.npy").exists());
    // Evaluation against the clean images with a classical baseline and DPS (the tiny model
    // stands in for a clean-trained one: this checks the plumbing, not the numbers).
    let o = ambient(&[
        "eval",
        "restore",
        "--weights",
        s(&run.join("model.safetensors")),
        "--data",
        s(&data),
        "--clean",
        "data/mnist/t10k-images-idx3-ubyte.gz",
        "--baseline",
        "biharmonic",
        "--dps",
        s(&run.join("model.safetensors")),
        "--dps-steps",
        "2",
        "--dps-limit",
        "2",
        "--json",
        s(&d.join("eval.json")),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json = std::fs::read_to_string(d.join("eval.json")).unwrap();
    for method in ["biharmonic", "DPS"] {
        assert!(
            json.to_lowercase().contains(&method.to_lowercase()),
            "{method} missing from {json}"
        );
    }
    // Data of another size than the model's.
    let x = d.join("small.npy");
    std::fs::write(&x, npy("|u1", &[2, 8, 8, 1], &[100u8; 128])).unwrap();
    let o = ambient(&[
        "restore",
        "--weights",
        s(&run.join("model.safetensors")),
        "--data",
        s(&x),
        "--out",
        s(&d.join("r2")),
    ]);
    fails_with(&o, &["small.npy", "28"]);
    assert!(!d.join("r2").exists());
    std::fs::remove_dir_all(&d).ok();
}
