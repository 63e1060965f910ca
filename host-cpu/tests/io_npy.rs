//! `.npy` images and masks: hand-written files load with the spec's pixel map, masks erase
//! what they hide (garbage there never reaches the dataset), and every bad input is a clear
//! error naming the file: truncated, foreign, wrong dtype, wrong mask size, NaN, bad masks.

mod io_util;

use std::fs;

use ambient_cpu::error::{FormatProblem, HostError};
use ambient_cpu::io::dataset::{write_images_npy, CorruptedDataset};
use ambient_cpu::io::npy::{read_npy, write_npy_f32, NpyData};
use io_util::{f32_bytes, npy_bytes, Scratch};

#[test]
fn u8_images_without_masks_map_by_the_spec() {
    let dir = Scratch::new("npy-u8");
    let p = dir.path("x.npy");
    // 2 images, 1 x 3 pixels, C = 2, NHWC.
    let data: Vec<u8> = vec![0, 255, 51, 102, 127, 128, 1, 2, 3, 4, 5, 6];
    fs::write(&p, npy_bytes("|u1", &[2, 1, 3, 2], &data)).unwrap();
    let ds = CorruptedDataset::load_npy(&p, None).unwrap();
    assert_eq!((ds.n, ds.c, ds.h, ds.w), (2, 2, 1, 3));
    // NCHW of image 0: channel 0 = [0, 51, 127], channel 1 = [255, 102, 128].
    let u = |v: u8| v as f32 / 127.5 - 1.0;
    assert_eq!(
        &ds.measurements[..6],
        &[u(0), u(51), u(127), u(255), u(102), u(128)]
    );
    assert_eq!(ds.measurements[0], -1.0);
    assert_eq!(ds.measurements[3], 1.0);
    assert!(ds.masks.iter().all(|&m| m == 1.0));
    assert_eq!(ds.meta, None);
}

#[test]
fn n_h_w_arrays_are_one_channel_and_f32_is_taken_as_is() {
    let dir = Scratch::new("npy-f32");
    let p = dir.path("x.npy");
    let v = [-1.0f32, -0.25, 0.0, 0.5, 1.0, 0.75];
    fs::write(&p, npy_bytes("<f4", &[1, 2, 3], &f32_bytes(&v))).unwrap();
    let ds = CorruptedDataset::load_npy(&p, None).unwrap();
    assert_eq!((ds.n, ds.c, ds.h, ds.w), (1, 1, 2, 3));
    assert_eq!(ds.measurements, v);
}

#[test]
fn garbage_at_masked_pixels_never_reaches_the_dataset() {
    let dir = Scratch::new("npy-garbage");
    let img = dir.path("img.npy");
    let mask = dir.path("mask.npy");
    // 1 image, 2 x 2, C = 1: pixels 1 and 2 are hidden and hold NaN and 1e30 in the file.
    let v = [0.5f32, f32::NAN, 1e30, -0.5];
    fs::write(&img, npy_bytes("<f4", &[1, 2, 2, 1], &f32_bytes(&v))).unwrap();
    fs::write(&mask, npy_bytes("|u1", &[1, 2, 2, 1], &[1, 0, 0, 255])).unwrap();
    let ds = CorruptedDataset::load_npy(&img, Some(&mask)).unwrap();
    assert_eq!(ds.masks, vec![1.0, 0.0, 0.0, 1.0], "255 counts as observed");
    assert_eq!(
        ds.measurements
            .iter()
            .map(|x| x.to_bits())
            .collect::<Vec<_>>(),
        [0.5f32, 0.0, 0.0, -0.5]
            .iter()
            .map(|x| x.to_bits())
            .collect::<Vec<_>>()
    );
    // u8 images with 255 under the mask, and a per-channel f32 mask for C = 3.
    let img3 = dir.path("img3.npy");
    let mask3 = dir.path("mask3.npy");
    fs::write(
        &img3,
        npy_bytes("|u1", &[1, 1, 2, 3], &[255, 255, 255, 0, 0, 0]),
    )
    .unwrap();
    fs::write(
        &mask3,
        npy_bytes(
            "<f4",
            &[1, 1, 2, 3],
            &f32_bytes(&[0.0, 0.0, 0.0, 1.0, 1.0, 1.0]),
        ),
    )
    .unwrap();
    let ds = CorruptedDataset::load_npy(&img3, Some(&mask3)).unwrap();
    // NCHW: each channel = [pixel 0 (hidden), pixel 1 (u8 0 -> -1)].
    assert_eq!(ds.measurements, vec![0.0, -1.0, 0.0, -1.0, 0.0, -1.0]);
    assert_eq!(ds.masks, vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
    assert_eq!(ds.observed_fraction(), 0.5);
}

#[test]
fn written_images_read_back_as_u8_nhwc() {
    let dir = Scratch::new("npy-write");
    let p = dir.path("samples.npy");
    // 1 image, C = 2, 1 x 2 (NCHW): channel 0 = [-1, 1], channel 1 = [0, 0.5].
    write_images_npy(&p, (1, 2, 1, 2), &[-1.0, 1.0, 0.0, 0.5]).unwrap();
    let a = read_npy(&p).unwrap();
    assert_eq!(a.shape, vec![1, 1, 2, 2]);
    // (0 + 1) * 127.5 = 127.5 rounds to 128; (0.5 + 1) * 127.5 = 191.25 rounds to 191.
    assert_eq!(a.data, NpyData::U8(vec![0, 128, 255, 191]));
    // The header is numpy's: 64-byte aligned, version 1.
    let bytes = fs::read(&p).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    assert_eq!((bytes.len() - 4) % 64, 0);
    let f = dir.path("f.npy");
    write_npy_f32(&f, &[3], &[1.5, -0.0, 7.0]).unwrap();
    assert_eq!(
        fs::read(&f).unwrap(),
        npy_bytes("<f4", &[3], &f32_bytes(&[1.5, -0.0, 7.0]))
    );
    let e = write_images_npy(&dir.path("nan.npy"), (1, 1, 1, 2), &[0.0, f32::NAN]).unwrap_err();
    assert!(
        matches!(e, HostError::NonFinite { .. }) && e.to_string().contains("nan.npy"),
        "{e}"
    );
    assert_eq!(dir.entries(), vec!["f.npy", "samples.npy"]);
}

#[test]
fn truncated_foreign_and_wrong_dtype_files_are_named() {
    let dir = Scratch::new("npy-bad");
    let p = dir.path("x.npy");
    let mut bytes = npy_bytes("|u1", &[3, 28, 28, 1], &[0; 100]);
    fs::write(&p, &bytes).unwrap();
    let e = CorruptedDataset::load_npy(&p, None).unwrap_err();
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
    assert_eq!(
        e.to_string(),
        format!("{}: truncated: header says 3 x 28 x 28 x 1 u8 (2352 bytes) but the file holds 100 bytes of data", p.display())
    );
    bytes.truncate(20);
    fs::write(&p, &bytes).unwrap();
    assert!(CorruptedDataset::load_npy(&p, None)
        .unwrap_err()
        .to_string()
        .contains("truncated .npy header"));

    fs::write(&p, b"\x89PNG\r\n\x1a\n0000000000").unwrap();
    let e = CorruptedDataset::load_npy(&p, None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!("{}: not a NumPy .npy file (it is a PNG image)", p.display())
    );

    let st = io_util::safetensors_bytes(&[], &[]);
    fs::write(&p, &st).unwrap();
    let e = CorruptedDataset::load_npy(&p, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with("not a NumPy .npy file (it looks like a safetensors file)"),
        "{e}"
    );
    fs::write(&p, "# a text file\n").unwrap();
    let e = CorruptedDataset::load_npy(&p, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("it is text: \"# a text file"), "{e}");

    fs::write(&p, npy_bytes("<f8", &[1, 1, 1], &[0; 8])).unwrap();
    let e = CorruptedDataset::load_npy(&p, None).unwrap_err();
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
    assert!(e.to_string().contains("'<f8'"), "{e}");

    fs::write(&p, npy_bytes(">f4", &[1, 1, 1], &[0; 4])).unwrap();
    assert!(CorruptedDataset::load_npy(&p, None)
        .unwrap_err()
        .to_string()
        .contains("'>f4'"));

    let mut fortran = npy_bytes("|u1", &[1, 1, 2], &[0, 0]);
    let at = fortran.windows(5).position(|w| w == b"False").unwrap();
    fortran[at..at + 5].copy_from_slice(b"True ");
    fs::write(&p, &fortran).unwrap();
    assert!(CorruptedDataset::load_npy(&p, None)
        .unwrap_err()
        .to_string()
        .contains("Fortran"));

    fs::write(&p, npy_bytes("|u1", &[4, 4], &[0; 16])).unwrap();
    let e = CorruptedDataset::load_npy(&p, None).unwrap_err();
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

    fs::write(&p, npy_bytes("|u1", &[1, 1, 2], &[0, 0, 9])).unwrap();
    assert!(CorruptedDataset::load_npy(&p, None)
        .unwrap_err()
        .to_string()
        .contains("3 bytes of data"));
}

#[test]
fn nan_and_out_of_range_pixels_are_named_by_index() {
    let dir = Scratch::new("npy-nan");
    let p = dir.path("x.npy");
    let mut v = vec![0.0f32; 2 * 3 * 4];
    // NHWC [1, 2, 3, 0] of shape 2 x 3 x 4 x 1 is flat 12 + 8 + 3 = 23.
    v[23] = f32::NAN;
    v[22] = f32::INFINITY;
    fs::write(&p, npy_bytes("<f4", &[2, 3, 4, 1], &f32_bytes(&v))).unwrap();
    let e = CorruptedDataset::load_npy(&p, None).unwrap_err();
    match &e {
        HostError::NonFinite { index, value, .. } => {
            assert_eq!(
                index, "[1, 2, 2, 0]",
                "the first non-finite value is the infinity at flat 22"
            );
            assert_eq!(*value, f32::INFINITY);
        }
        other => panic!("expected NonFinite, got {other}"),
    }
    assert!(e.to_string().starts_with(&p.display().to_string()));
    v[22] = 0.0;
    fs::write(&p, npy_bytes("<f4", &[2, 3, 4, 1], &f32_bytes(&v))).unwrap();
    assert!(CorruptedDataset::load_npy(&p, None)
        .unwrap_err()
        .to_string()
        .contains("[1, 2, 3, 0]"));
    v[23] = 1.5;
    fs::write(&p, npy_bytes("<f4", &[2, 3, 4, 1], &f32_bytes(&v))).unwrap();
    let e = CorruptedDataset::load_npy(&p, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("outside [-1, 1]") && e.contains("[1, 2, 3, 0]"),
        "{e}"
    );
}

#[test]
fn masks_of_the_wrong_size_or_values_are_rejected() {
    let dir = Scratch::new("npy-mask");
    let img = dir.path("img.npy");
    let mask = dir.path("mask.npy");
    fs::write(&img, npy_bytes("|u1", &[2, 2, 2, 3], &[9; 24])).unwrap();
    fs::write(&mask, npy_bytes("|u1", &[2, 2, 3, 1], &[1; 12])).unwrap();
    let e = CorruptedDataset::load_npy(&img, Some(&mask)).unwrap_err();
    assert!(matches!(e, HostError::MaskShape { .. }), "{e}");
    let m = e.to_string();
    assert!(
        m.starts_with(&format!(
            "mask shape mismatch: {} is 2 x 2 x 3 x 1 but {} is 2 x 2 x 2 x 3",
            mask.display(),
            img.display()
        )),
        "{m}"
    );

    // C = 2 masks for C = 3 images.
    fs::write(&mask, npy_bytes("|u1", &[2, 2, 2, 2], &[1; 16])).unwrap();
    assert!(matches!(
        CorruptedDataset::load_npy(&img, Some(&mask)).unwrap_err(),
        HostError::MaskShape { .. }
    ));

    let mut vals = vec![1u8; 8];
    vals[5] = 2;
    fs::write(&mask, npy_bytes("|u1", &[2, 2, 2], &vals)).unwrap();
    let e = CorruptedDataset::load_npy(&img, Some(&mask))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("mask.npy") && e.contains("mask value 2 at [1, 0, 1]"),
        "{e}"
    );

    let mut f = vec![1.0f32; 8];
    f[0] = 0.5;
    fs::write(&mask, npy_bytes("<f4", &[2, 2, 2, 1], &f32_bytes(&f))).unwrap();
    assert!(CorruptedDataset::load_npy(&img, Some(&mask))
        .unwrap_err()
        .to_string()
        .contains("mask value 0.5"));
    f[0] = f32::NAN;
    fs::write(&mask, npy_bytes("<f4", &[2, 2, 2, 1], &f32_bytes(&f))).unwrap();
    assert!(matches!(
        CorruptedDataset::load_npy(&img, Some(&mask)).unwrap_err(),
        HostError::NonFinite { .. }
    ));

    // Per-channel masks must agree across the channels of a pixel.
    let mut c3 = vec![1u8; 24];
    c3[4] = 0; // pixel [0, 0, 1], channel 1
    fs::write(&mask, npy_bytes("|u1", &[2, 2, 2, 3], &c3)).unwrap();
    let e = CorruptedDataset::load_npy(&img, Some(&mask))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("differs between the channels of pixel [0, 0, 1]"),
        "{e}"
    );
}
