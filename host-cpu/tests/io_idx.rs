//! IDX files: the bundled MNIST reads with its published statistics, raw and gzip files
//! agree, a dataset from IDX is clean (all observed) with the spec's pixel map, and bad files
//! are named.

mod io_util;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use ambient_cpu::error::{FormatProblem, HostError};
use ambient_cpu::io::dataset::CorruptedDataset;
use ambient_cpu::io::idx::{read_idx_images, read_idx_labels};
use io_util::{npy_bytes, Scratch};

fn mnist(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/mnist")
        .join(name)
}

/// A hand-made IDX image file: magic 0x00000803, then N, H, W as big-endian u32, then pixels.
fn idx_images(n: u32, h: u32, w: u32, pixels: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3];
    for d in [n, h, w] {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(pixels);
    b
}

#[test]
fn mnist_train_has_its_published_mean_and_first_labels() {
    let imgs = read_idx_images(&mnist("train-images-idx3-ubyte.gz")).unwrap();
    assert_eq!((imgs.n, imgs.h, imgs.w), (60000, 28, 28));
    // torchvision's Normalize((0.1307,), ...) for MNIST train: the mean of u8 / 255, published
    // to 4 decimals, so it holds to 5e-5.
    let mean =
        imgs.pixels.iter().map(|&p| p as f64).sum::<f64>() / imgs.pixels.len() as f64 / 255.0;
    assert!((mean - 0.1307).abs() < 5e-5, "mean {mean}");
    let labels = read_idx_labels(&mnist("train-labels-idx1-ubyte.gz")).unwrap();
    assert_eq!(labels.len(), 60000);
    assert_eq!(&labels[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    let test_labels = read_idx_labels(&mnist("t10k-labels-idx1-ubyte.gz")).unwrap();
    assert_eq!(&test_labels[..5], &[7, 2, 1, 0, 4]);
}

#[test]
fn dataset_from_idx_is_clean_and_mapped_by_the_spec() {
    let path = mnist("t10k-images-idx3-ubyte.gz");
    let imgs = read_idx_images(&path).unwrap();
    let ds = CorruptedDataset::load_idx(&path).unwrap();
    assert_eq!((ds.n, ds.c, ds.h, ds.w), (10000, 1, 28, 28));
    assert!(ds.masks.iter().all(|&m| m == 1.0));
    for (k, (&u, &x)) in imgs
        .pixels
        .iter()
        .zip(&ds.measurements)
        .enumerate()
        .step_by(997)
    {
        assert_eq!(x, u as f32 / 127.5 - 1.0, "pixel {k}");
    }
}

#[test]
fn raw_and_gzip_files_agree() {
    let dir = Scratch::new("idx-raw");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&fs::read(mnist("t10k-labels-idx1-ubyte.gz")).unwrap()[..])
        .read_to_end(&mut raw)
        .unwrap();
    let p = dir.path("labels-idx1-ubyte");
    fs::write(&p, &raw).unwrap();
    assert_eq!(
        read_idx_labels(&p).unwrap(),
        read_idx_labels(&mnist("t10k-labels-idx1-ubyte.gz")).unwrap()
    );
    let p = dir.path("imgs-idx3-ubyte");
    fs::write(&p, idx_images(2, 1, 2, &[0, 255, 10, 20])).unwrap();
    let ds = CorruptedDataset::load_idx(&p).unwrap();
    assert_eq!((ds.n, ds.h, ds.w), (2, 1, 2));
    assert_eq!(
        ds.measurements,
        vec![-1.0, 1.0, 10.0 / 127.5 - 1.0, 20.0 / 127.5 - 1.0]
    );
}

#[test]
fn truncated_foreign_and_mismatched_idx_files_are_named() {
    let dir = Scratch::new("idx-bad");
    let p = dir.path("x-idx3-ubyte");
    fs::write(&p, idx_images(60000, 28, 28, &[0; 1234])).unwrap();
    let e = read_idx_images(&p).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}: truncated: header says 60000 x 28 x 28 u8 (47040000 bytes) but the file holds 1234 bytes of data", p.display())
    );
    // A label file where images are expected.
    let e = read_idx_images(&mnist("t10k-labels-idx1-ubyte.gz")).unwrap_err();
    assert!(
        matches!(
            &e,
            HostError::Format {
                problem: FormatProblem::Foreign { .. },
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("t10k-labels-idx1-ubyte.gz")
            && e.to_string().contains("1 dimensions"),
        "{e}"
    );
    // An .npy passed as IDX.
    fs::write(&p, npy_bytes("|u1", &[1, 2, 2], &[0; 4])).unwrap();
    let e = read_idx_images(&p).unwrap_err().to_string();
    assert!(
        e.contains("not a u8 IDX image (magic 0x00000803) file"),
        "{e}"
    );
    assert!(e.contains("NumPy"), "{e}");
    // Non-u8 element type (0x0D = float).
    let mut f = idx_images(1, 1, 1, &[0; 4]);
    f[2] = 0x0d;
    fs::write(&p, &f).unwrap();
    assert!(matches!(
        read_idx_images(&p).unwrap_err(),
        HostError::Format {
            problem: FormatProblem::WrongDtype { .. },
            ..
        }
    ));
    // A gzip file cut in the middle.
    let gz = fs::read(mnist("t10k-labels-idx1-ubyte.gz")).unwrap();
    let cut = dir.path("cut.gz");
    fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
    let e = read_idx_labels(&cut).unwrap_err().to_string();
    assert!(e.contains("cut.gz") && e.contains("gzip"), "{e}");
}
