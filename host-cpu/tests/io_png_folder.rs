//! A folder of PNG images with masks beside them: values, masks and order as written by the
//! png crate directly, and clear errors for a missing mask, a mask of the wrong size, images
//! of different sizes, alpha or 16-bit images and foreign files.

mod io_util;

use std::fs;
use std::path::Path;

use ambient_cpu::error::HostError;
use ambient_cpu::io::dataset::CorruptedDataset;
use io_util::Scratch;

fn write_png(
    path: &Path,
    w: u32,
    h: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
) {
    let mut enc = png::Encoder::new(fs::File::create(path).unwrap(), w, h);
    enc.set_color(color);
    enc.set_depth(depth);
    enc.write_header().unwrap().write_image_data(data).unwrap();
}

fn gray(path: &Path, w: u32, h: u32, data: &[u8]) {
    write_png(
        path,
        w,
        h,
        png::ColorType::Grayscale,
        png::BitDepth::Eight,
        data,
    );
}

fn u(v: u8) -> f32 {
    v as f32 / 127.5 - 1.0
}

#[test]
fn gray_and_rgb_folders_load_in_name_order_with_their_masks() {
    let dir = Scratch::new("pngf-gray");
    // b before a in creation, a first in name order; 2 x 1 images (w 2, h 1).
    gray(&dir.path("b.png"), 2, 1, &[100, 200]);
    gray(&dir.path("b.mask.png"), 2, 1, &[0, 7]);
    gray(&dir.path("a.png"), 2, 1, &[0, 255]);
    gray(&dir.path("a.mask.png"), 2, 1, &[255, 255]);
    fs::write(dir.path("notes.txt"), b"ignored").unwrap();
    let ds = CorruptedDataset::load_png_folder(&dir.0).unwrap();
    assert_eq!((ds.n, ds.c, ds.h, ds.w), (2, 1, 1, 2));
    assert_eq!(ds.measurements, vec![-1.0, 1.0, 0.0, u(200)]);
    assert_eq!(ds.masks, vec![1.0, 1.0, 0.0, 1.0]);

    let dir = Scratch::new("pngf-rgb");
    // One RGB 1 x 2 image; the RGB mask hides pixel 0 (all channels 0).
    write_png(
        &dir.path("x.png"),
        2,
        1,
        png::ColorType::Rgb,
        png::BitDepth::Eight,
        &[1, 2, 3, 4, 5, 6],
    );
    write_png(
        &dir.path("x.mask.png"),
        2,
        1,
        png::ColorType::Rgb,
        png::BitDepth::Eight,
        &[0, 0, 0, 0, 9, 0],
    );
    let ds = CorruptedDataset::load_png_folder(&dir.0).unwrap();
    assert_eq!((ds.n, ds.c, ds.h, ds.w), (1, 3, 1, 2));
    assert_eq!(ds.measurements, vec![0.0, u(4), 0.0, u(5), 0.0, u(6)]);
    assert_eq!(ds.masks, vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
}

#[test]
fn missing_or_misfit_masks_and_unsupported_images_are_named() {
    let dir = Scratch::new("pngf-bad");
    gray(&dir.path("a.png"), 2, 2, &[0; 4]);
    let e = CorruptedDataset::load_png_folder(&dir.0)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("a.png") && e.contains("a.mask.png is missing"),
        "{e}"
    );

    gray(&dir.path("a.mask.png"), 3, 2, &[1; 6]);
    let e = CorruptedDataset::load_png_folder(&dir.0).unwrap_err();
    assert!(matches!(e, HostError::MaskShape { .. }), "{e}");
    assert!(
        e.to_string().contains("a.mask.png is 2 x 3") && e.to_string().contains("a.png is 2 x 2"),
        "{e}"
    );

    gray(&dir.path("a.mask.png"), 2, 2, &[1; 4]);
    gray(&dir.path("b.png"), 2, 3, &[0; 6]);
    gray(&dir.path("b.mask.png"), 2, 3, &[1; 6]);
    let e = CorruptedDataset::load_png_folder(&dir.0)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("b.png") && e.contains("3 x 2 x 1") && e.contains("a.png"),
        "{e}"
    );

    fs::remove_file(dir.path("b.png")).unwrap();
    let e = CorruptedDataset::load_png_folder(&dir.0)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("b.mask.png") && e.contains("mask without an image"),
        "{e}"
    );
    fs::remove_file(dir.path("b.mask.png")).unwrap();

    write_png(
        &dir.path("a.png"),
        2,
        2,
        png::ColorType::Rgba,
        png::BitDepth::Eight,
        &[0; 16],
    );
    let e = CorruptedDataset::load_png_folder(&dir.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("a.png") && e.contains("Rgba"), "{e}");

    write_png(
        &dir.path("a.png"),
        2,
        2,
        png::ColorType::Grayscale,
        png::BitDepth::Sixteen,
        &[0; 8],
    );
    let e = CorruptedDataset::load_png_folder(&dir.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("a.png") && e.contains("Sixteen"), "{e}");

    fs::write(dir.path("a.png"), b"\x93NUMPY not a png").unwrap();
    let e = CorruptedDataset::load_png_folder(&dir.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("a.png: not a PNG file"), "{e}");

    let empty = Scratch::new("pngf-empty");
    assert!(CorruptedDataset::load_png_folder(&empty.0)
        .unwrap_err()
        .to_string()
        .contains("no NAME.png"));
}
