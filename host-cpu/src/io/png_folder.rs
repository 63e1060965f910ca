//! A corrupted dataset as a folder of PNG images: `NAME.png` (8-bit gray or RGB) with its mask
//! `NAME.mask.png` beside it (any 8-bit PNG of the same size; a pixel is observed where any of
//! the mask's colour channels is nonzero). Images load in file-name order; every image needs a
//! mask, every mask an image, and all images share one size and colour type.

use std::path::{Path, PathBuf};

use crate::error::{shape_string, FormatProblem, HostError};
use crate::io::dataset::{CorruptedDataset, NhwcPixels};
use crate::io::npy::describe_start;

/// An 8-bit PNG's pixels: height, width, channels (alpha dropped) and the HWC bytes.
struct Decoded {
    h: usize,
    w: usize,
    c: usize,
    pixels: Vec<u8>,
}

/// Decodes an 8-bit gray, gray+alpha, RGB or RGBA PNG (palettes and low bit depths expanded);
/// `allow_alpha` keeps gray or RGB only for images, whose alpha has no meaning here.
fn decode(path: &Path, allow_alpha: bool) -> Result<Decoded, HostError> {
    let bytes = std::fs::read(path).map_err(|e| HostError::io(path, "read", e))?;
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err(HostError::format(
            path,
            FormatProblem::Foreign {
                expected: "PNG",
                found: describe_start(&bytes),
            },
        ));
    }
    let mut decoder = png::Decoder::new(&bytes[..]);
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder
        .read_info()
        .map_err(|e| HostError::invalid(path, format!("unreadable PNG: {e}")))?;
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).map_err(|e| {
        HostError::invalid(path, format!("unreadable PNG (truncated or corrupt): {e}"))
    })?;
    if info.bit_depth != png::BitDepth::Eight {
        return Err(HostError::format(
            path,
            FormatProblem::WrongDtype {
                found: format!("{:?}-bit PNG", info.bit_depth),
                accepted: "8-bit PNG",
            },
        ));
    }
    let (stride, c) = match info.color_type {
        png::ColorType::Grayscale => (1, 1),
        png::ColorType::Rgb => (3, 3),
        png::ColorType::GrayscaleAlpha if allow_alpha => (2, 1),
        png::ColorType::Rgba if allow_alpha => (4, 3),
        other => {
            return Err(HostError::format(
                path,
                FormatProblem::WrongDtype {
                    found: format!("{other:?} PNG"),
                    accepted: "8-bit gray or RGB PNG",
                },
            ))
        }
    };
    let (h, w) = (info.height as usize, info.width as usize);
    let mut pixels = Vec::with_capacity(h * w * c);
    for row in buf[..h * info.line_size].chunks_exact(info.line_size) {
        for px in row[..w * stride].chunks_exact(stride) {
            pixels.extend_from_slice(&px[..c]);
        }
    }
    Ok(Decoded { h, w, c, pixels })
}

/// The image files of `dir` (`*.png` but not `*.mask.png`), sorted by name, each with its mask.
fn list_pairs(dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>, HostError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| HostError::io(dir, "list the directory", e))?;
    let mut images = Vec::new();
    let mut masks = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| HostError::io(dir, "list the directory", e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".mask.png") {
            masks.push(stem.to_string());
        } else if let Some(stem) = name.strip_suffix(".png") {
            images.push(stem.to_string());
        }
    }
    images.sort();
    masks.sort();
    if images.is_empty() {
        return Err(HostError::invalid(
            dir,
            "the folder holds no NAME.png images",
        ));
    }
    for m in &masks {
        if images.binary_search(m).is_err() {
            return Err(HostError::invalid(
                &dir.join(format!("{m}.mask.png")),
                format!("mask without an image: {m}.png is missing"),
            ));
        }
    }
    let mut pairs = Vec::with_capacity(images.len());
    for stem in images {
        let img = dir.join(format!("{stem}.png"));
        if masks.binary_search(&stem).is_err() {
            return Err(HostError::invalid(
                &img,
                format!("image without a mask: {stem}.mask.png is missing beside it"),
            ));
        }
        pairs.push((img, dir.join(format!("{stem}.mask.png"))));
    }
    Ok(pairs)
}

impl CorruptedDataset {
    /// Reads a folder of `NAME.png` images with `NAME.mask.png` masks (see the module docs).
    pub fn load_png_folder(dir: &Path) -> Result<Self, HostError> {
        let pairs = list_pairs(dir)?;
        let mut dims: Option<(usize, usize, usize, PathBuf)> = None;
        let mut pixels = Vec::new();
        let mut observed = Vec::new();
        for (img_path, mask_path) in &pairs {
            let img = decode(img_path, false)?;
            match &dims {
                None => dims = Some((img.h, img.w, img.c, img_path.clone())),
                Some((h, w, c, first)) if (img.h, img.w, img.c) != (*h, *w, *c) => {
                    return Err(HostError::format(
                        img_path,
                        FormatProblem::WrongShape {
                            found: format!("{} (H x W x C)", shape_string(&[img.h, img.w, img.c])),
                            expected: format!(
                                "{} like {}",
                                shape_string(&[*h, *w, *c]),
                                first.display()
                            ),
                        },
                    ))
                }
                Some(_) => {}
            }
            let mask = decode(mask_path, true)?;
            if (mask.h, mask.w) != (img.h, img.w) {
                return Err(HostError::MaskShape {
                    mask_path: mask_path.clone(),
                    mask_shape: shape_string(&[mask.h, mask.w]),
                    data_path: img_path.clone(),
                    data_shape: shape_string(&[img.h, img.w]),
                });
            }
            observed.extend(
                mask.pixels
                    .chunks_exact(mask.c)
                    .map(|px| px.iter().any(|&v| v != 0)),
            );
            pixels.extend_from_slice(&img.pixels);
        }
        let (h, w, c, _) = dims.expect("list_pairs returns at least one image");
        CorruptedDataset::from_nhwc(
            dir,
            (pairs.len(), h, w, c),
            NhwcPixels::U8(&pixels),
            Some(&observed),
        )
    }
}
