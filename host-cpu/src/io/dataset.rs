//! The in-memory corrupted dataset and its readers for IDX and `.npy` images.
//!
//! A user of Ambient Diffusion holds only corrupted data `y = A x0` and the masks `A`, so that
//! is what a dataset is: measurements and masks, NCHW. Every reader multiplies each measurement
//! by its mask as it loads (after the `u8 -> [-1, 1]` map), so no code path after loading can
//! see a value at a pixel the mask erased; a missing pixel is exactly 0.0. A file's values at
//! missing pixels are never read: they may be anything, NaN included. At observed pixels,
//! non-finite values are rejected.
//!
//! Element types: `u8` images map by `x = u8 / 127.5 - 1`; `f32` images are taken as already
//! in [-1, 1] (values outside it are rejected: rescale them first). Masks are `u8` 0/1 or
//! 0/255, or `f32` 0/1, one value per pixel (N x H x W or N x H x W x 1) or per channel
//! (N x H x W x C, all channels of a pixel equal). Clean data (IDX, or `.npy` without masks)
//! loads with every mask value 1.

use std::path::Path;

use crate::error::{index_string, shape_string, FormatProblem, HostError};
use crate::io::corrupted_dir::{load_corrupted_dir, RECORD_FILE};
use crate::io::idx::read_idx_images;
use crate::io::npy::{read_npy, write_npy_u8, NpyArray, NpyData};
use crate::io::pixels::{u8_to_unit, unit_to_u8};

/// Measurements `A x0` and masks `A` of N images, NCHW.
#[derive(Debug, Clone, PartialEq)]
pub struct CorruptedDataset {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// NCHW in [-1, 1]; exactly 0 where the mask is 0.
    pub measurements: Vec<f32>,
    /// NCHW, 0 or 1, the same for every channel of a pixel.
    pub masks: Vec<f32>,
    /// How the data was made (`corruption.json` of a corrupted-dataset directory), if known.
    pub meta: Option<serde_json::Value>,
}

/// Pixel values in the source file's NHWC order, before masking.
pub(crate) enum NhwcPixels<'a> {
    U8(&'a [u8]),
    /// Already in [-1, 1].
    F32(&'a [f32]),
}

impl CorruptedDataset {
    /// Values per image: C * H * W.
    pub fn image_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Measurement and mask of image `i`, CHW.
    pub fn image(&self, i: usize) -> (&[f32], &[f32]) {
        let l = self.image_len();
        (
            &self.measurements[i * l..(i + 1) * l],
            &self.masks[i * l..(i + 1) * l],
        )
    }

    /// Fraction of pixels observed over the whole dataset.
    pub fn observed_fraction(&self) -> f64 {
        if self.masks.is_empty() {
            return 0.0;
        }
        self.masks.iter().map(|&m| m as f64).sum::<f64>() / self.masks.len() as f64
    }

    /// Builds a dataset from NHWC pixels and per-pixel masks (N x H x W, 0 or 1; `None` = all
    /// observed). Masked pixels become 0.0 without being read; observed `f32` pixels must be
    /// finite and in [-1, 1]. `path` names the image file in messages.
    pub(crate) fn from_nhwc(
        path: &Path,
        (n, h, w, c): (usize, usize, usize, usize),
        pixels: NhwcPixels<'_>,
        pixel_masks: Option<&[bool]>,
    ) -> Result<Self, HostError> {
        let hw = h * w;
        let chw = c * hw;
        let mut measurements = vec![0.0f32; n * chw];
        let mut masks = vec![0.0f32; n * chw];
        let file_shape = [n, h, w, c];
        for i in 0..n {
            for p in 0..hw {
                if let Some(m) = pixel_masks {
                    if !m[i * hw + p] {
                        continue;
                    }
                }
                for ch in 0..c {
                    let src = (i * hw + p) * c + ch;
                    let x = match pixels {
                        NhwcPixels::U8(v) => u8_to_unit(v[src]),
                        NhwcPixels::F32(v) => {
                            let x = v[src];
                            if !x.is_finite() {
                                return Err(HostError::NonFinite {
                                    path: path.to_path_buf(),
                                    what: "images (N x H x W x C)".into(),
                                    index: index_string(&file_shape, src),
                                    value: x,
                                });
                            }
                            if !(-1.0..=1.0).contains(&x) {
                                return Err(HostError::invalid(
                                    path,
                                    format!(
                                        "f32 pixel {} at {} (N x H x W x C) is outside [-1, 1]; \
                                         f32 images must already be scaled to [-1, 1]",
                                        x,
                                        index_string(&file_shape, src)
                                    ),
                                ));
                            }
                            x
                        }
                    };
                    let dst = i * chw + ch * hw + p;
                    measurements[dst] = x;
                    masks[dst] = 1.0;
                }
            }
        }
        Ok(CorruptedDataset {
            n,
            c,
            h,
            w,
            measurements,
            masks,
            meta: None,
        })
    }

    /// Clean MNIST-style images from an IDX file (`.gz` or raw): C = 1, every pixel observed.
    pub fn load_idx(path: &Path) -> Result<Self, HostError> {
        let imgs = read_idx_images(path)?;
        if imgs.n == 0 {
            return Err(HostError::invalid(path, "the file holds no images"));
        }
        Self::from_nhwc(
            path,
            (imgs.n, imgs.h, imgs.w, 1),
            NhwcPixels::U8(&imgs.pixels),
            None,
        )
    }

    /// Reads whatever `path` is: a corrupted-dataset directory (it holds `corruption.json`),
    /// another directory (a PNG folder), a `.npy` file (clean images), or else an IDX file.
    pub fn load(path: &Path) -> Result<Self, HostError> {
        if path.is_dir() {
            if path.join(RECORD_FILE).exists() {
                load_corrupted_dir(path)
            } else {
                Self::load_png_folder(path)
            }
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
        {
            Self::load_npy(path, None)
        } else {
            Self::load_idx(path)
        }
    }

    /// Images from a `.npy` file (N x H x W x C or N x H x W, `u8` or `f32`), with masks from a
    /// second `.npy` file if given (otherwise every pixel is observed).
    pub fn load_npy(images: &Path, masks: Option<&Path>) -> Result<Self, HostError> {
        let arr = read_npy(images)?;
        let dims = image_dims(images, &arr)?;
        let pixel_masks = match masks {
            Some(mp) => Some(read_pixel_masks(mp, images, dims)?),
            None => None,
        };
        let pixels = match &arr.data {
            NpyData::U8(v) => NhwcPixels::U8(v),
            NpyData::F32(v) => NhwcPixels::F32(v),
        };
        Self::from_nhwc(images, dims, pixels, pixel_masks.as_deref())
    }
}

/// (N, H, W, C) of an image array: N x H x W x C, or N x H x W as C = 1.
pub(crate) fn image_dims(
    path: &Path,
    arr: &NpyArray,
) -> Result<(usize, usize, usize, usize), HostError> {
    let (n, h, w, c) = match arr.shape[..] {
        [n, h, w] => (n, h, w, 1),
        [n, h, w, c] => (n, h, w, c),
        _ => {
            return Err(HostError::format(
                path,
                FormatProblem::WrongShape {
                    found: shape_string(&arr.shape),
                    expected: "N x H x W x C or N x H x W images".into(),
                },
            ))
        }
    };
    if n == 0 || h == 0 || w == 0 || c == 0 {
        return Err(HostError::format(
            path,
            FormatProblem::WrongShape {
                found: shape_string(&arr.shape),
                expected: "at least one image of at least one pixel".into(),
            },
        ));
    }
    Ok((n, h, w, c))
}

/// Reads a mask file for images of `dims` (N, H, W, C) in `data_path`, as one observed flag
/// per pixel (N x H x W).
pub(crate) fn read_pixel_masks(
    mask_path: &Path,
    data_path: &Path,
    (n, h, w, c): (usize, usize, usize, usize),
) -> Result<Vec<bool>, HostError> {
    let arr = read_npy(mask_path)?;
    let mc = match arr.shape[..] {
        [mn, mh, mw] if (mn, mh, mw) == (n, h, w) => 1,
        [mn, mh, mw, mc] if (mn, mh, mw) == (n, h, w) && (mc == 1 || mc == c) => mc,
        _ => {
            return Err(HostError::MaskShape {
                mask_path: mask_path.to_path_buf(),
                mask_shape: shape_string(&arr.shape),
                data_path: data_path.to_path_buf(),
                data_shape: format!(
                    "{} (masks must be {} or {} x 1)",
                    shape_string(&[n, h, w, c]),
                    shape_string(&[n, h, w]),
                    shape_string(&[n, h, w])
                ),
            })
        }
    };
    let shape = arr.shape.clone();
    let value = |k: usize| -> Result<bool, HostError> {
        match &arr.data {
            NpyData::U8(v) => match v[k] {
                0 => Ok(false),
                1 | 255 => Ok(true),
                x => Err(HostError::invalid(
                    mask_path,
                    format!(
                        "mask value {x} at {} is not 0, 1 or 255",
                        index_string(&shape, k)
                    ),
                )),
            },
            NpyData::F32(v) => {
                let x = v[k];
                if !x.is_finite() {
                    Err(HostError::NonFinite {
                        path: mask_path.to_path_buf(),
                        what: "masks".into(),
                        index: index_string(&shape, k),
                        value: x,
                    })
                } else if x == 0.0 {
                    Ok(false)
                } else if x == 1.0 {
                    Ok(true)
                } else {
                    Err(HostError::invalid(
                        mask_path,
                        format!(
                            "mask value {x} at {} is not 0 or 1",
                            index_string(&shape, k)
                        ),
                    ))
                }
            }
        }
    };
    let mut out = Vec::with_capacity(n * h * w);
    for p in 0..n * h * w {
        let first = value(p * mc)?;
        for ch in 1..mc {
            if value(p * mc + ch)? != first {
                return Err(HostError::invalid(
                    mask_path,
                    format!(
                        "mask differs between the channels of pixel {}; a pixel is observed in \
                         all its channels or in none",
                        index_string(&[n, h, w], p)
                    ),
                ));
            }
        }
        out.push(first);
    }
    Ok(out)
}

/// Converts NCHW images in [-1, 1] to NHWC `u8` by the spec's rounding; NaN is an error
/// naming `path` (the output) and the first NCHW index.
pub(crate) fn nchw_to_nhwc_u8(
    path: &Path,
    what: &str,
    (n, c, h, w): (usize, usize, usize, usize),
    images: &[f32],
) -> Result<Vec<u8>, HostError> {
    if images.len() != n * c * h * w {
        return Err(HostError::unwritable(
            path,
            format!(
                "{what}: shape {} needs {} values but {} were given",
                shape_string(&[n, c, h, w]),
                n * c * h * w,
                images.len()
            ),
        ));
    }
    if let Some(k) = images.iter().position(|x| x.is_nan()) {
        return Err(HostError::NonFinite {
            path: path.to_path_buf(),
            what: format!("{what} to write (N x C x H x W)"),
            index: index_string(&[n, c, h, w], k),
            value: images[k],
        });
    }
    let hw = h * w;
    let mut out = vec![0u8; images.len()];
    for i in 0..n {
        for ch in 0..c {
            for p in 0..hw {
                out[(i * hw + p) * c + ch] = unit_to_u8(images[(i * c + ch) * hw + p]);
            }
        }
    }
    Ok(out)
}

/// Writes N images (NCHW in [-1, 1]) as a `u8` N x H x W x C `.npy` (samples, restorations).
pub fn write_images_npy(
    path: &Path,
    (n, c, h, w): (usize, usize, usize, usize),
    images: &[f32],
) -> Result<(), HostError> {
    let bytes = nchw_to_nhwc_u8(path, "images", (n, c, h, w), images)?;
    write_npy_u8(path, &[n, h, w, c], &bytes)
}
