//! PNG grids for people to look at: samples as a grid of tiles, and measurement / restoration
//! pairs with the missing pixels of each measurement painted [`MISSING_RGB`] (mid-blue), so a
//! viewer sees what the model had to fill in. Pixels map to `u8` by the spec's
//! `clamp(round((x + 1) * 127.5), 0, 255)`; tiles are separated and framed by [`PAD`] pixels of
//! [`PAD_VALUE`] (white). Images are NCHW with C = 1 (gray) or 3 (RGB); the pairs grid is
//! always RGB.

use std::path::Path;

use crate::error::{index_string, shape_string, HostError};
use crate::io::atomic::write_file_atomic;
use crate::io::pixels::unit_to_u8;

/// Padding between tiles and around the grid, in pixels.
pub const PAD: usize = 2;
/// Colour of the padding (every channel).
pub const PAD_VALUE: u8 = 255;
/// Colour of a missing pixel in a measurement.
pub const MISSING_RGB: [u8; 3] = [40, 90, 200];

/// An 8-bit image in row-major HWC order, C = 1 or 3.
#[derive(Debug, Clone, PartialEq)]
pub struct GridImage {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub pixels: Vec<u8>,
}

impl GridImage {
    fn new(cols: usize, rows: usize, h: usize, w: usize, channels: usize) -> Self {
        let width = cols * w + (cols + 1) * PAD;
        let height = rows * h + (rows + 1) * PAD;
        GridImage {
            width,
            height,
            channels,
            pixels: vec![PAD_VALUE; width * height * channels],
        }
    }

    /// Top-left corner of tile (row, col).
    fn origin(row: usize, col: usize, h: usize, w: usize) -> (usize, usize) {
        (PAD + row * (h + PAD), PAD + col * (w + PAD))
    }

    fn set(&mut self, y: usize, x: usize, rgb: &[u8]) {
        let o = (y * self.width + x) * self.channels;
        self.pixels[o..o + self.channels].copy_from_slice(rgb);
    }

    /// The image enlarged `k` times by pixel replication (nearest neighbour), so that 28 x 28
    /// digits are comfortable to look at; `k` = 0 is treated as 1.
    pub fn upscale(&self, k: usize) -> GridImage {
        let k = k.max(1);
        let (w, c) = (self.width * k, self.channels);
        let mut pixels = Vec::with_capacity(self.pixels.len() * k * k);
        for row in self.pixels.chunks(self.width * c) {
            let mut wide = Vec::with_capacity(w * c);
            for px in row.chunks(c) {
                for _ in 0..k {
                    wide.extend_from_slice(px);
                }
            }
            for _ in 0..k {
                pixels.extend_from_slice(&wide);
            }
        }
        GridImage {
            width: w,
            height: self.height * k,
            channels: c,
            pixels,
        }
    }

    /// Writes the image as a PNG, atomically.
    pub fn write_png(&self, path: &Path) -> Result<(), HostError> {
        let color = if self.channels == 1 {
            png::ColorType::Grayscale
        } else {
            png::ColorType::Rgb
        };
        write_file_atomic(path, |w| {
            let mut enc = png::Encoder::new(w, self.width as u32, self.height as u32);
            enc.set_color(color);
            enc.set_depth(png::BitDepth::Eight);
            let mut writer = enc.write_header().map_err(std::io::Error::other)?;
            writer
                .write_image_data(&self.pixels)
                .map_err(std::io::Error::other)?;
            writer.finish().map_err(std::io::Error::other)
        })
    }
}

/// Checks an NCHW batch that is to be drawn: C = 1 or 3, the right length, no NaN.
fn check(
    path: &Path,
    what: &str,
    (n, c, h, w): (usize, usize, usize, usize),
    v: &[f32],
) -> Result<(), HostError> {
    if c != 1 && c != 3 {
        return Err(HostError::unwritable(
            path,
            format!("{what}: a grid needs 1 or 3 channels, got {c}"),
        ));
    }
    if n == 0 || h == 0 || w == 0 {
        return Err(HostError::unwritable(
            path,
            format!("{what}: nothing to draw ({})", shape_string(&[n, c, h, w])),
        ));
    }
    if v.len() != n * c * h * w {
        return Err(HostError::unwritable(
            path,
            format!(
                "{what}: shape {} needs {} values, got {}",
                shape_string(&[n, c, h, w]),
                n * c * h * w,
                v.len()
            ),
        ));
    }
    if let Some(k) = v.iter().position(|x| x.is_nan()) {
        return Err(HostError::NonFinite {
            path: path.to_path_buf(),
            what: format!("{what} to draw (N x C x H x W)"),
            index: index_string(&[n, c, h, w], k),
            value: v[k],
        });
    }
    Ok(())
}

/// The `u8` colour of pixel (y, x) of image `i` as RGB (gray replicated to three channels).
fn pixel(
    images: &[f32],
    (c, h, w): (usize, usize, usize),
    i: usize,
    y: usize,
    x: usize,
) -> [u8; 3] {
    let at = |ch: usize| unit_to_u8(images[((i * c + ch) * h + y) * w + x]);
    if c == 1 {
        [at(0); 3]
    } else {
        [at(0), at(1), at(2)]
    }
}

/// Lays out N images in a grid of `cols` columns (gray for C = 1, RGB for C = 3).
pub fn render_grid(
    path: &Path,
    (n, c, h, w): (usize, usize, usize, usize),
    images: &[f32],
    cols: usize,
) -> Result<GridImage, HostError> {
    check(path, "images", (n, c, h, w), images)?;
    if cols == 0 {
        return Err(HostError::unwritable(
            path,
            "a grid needs at least one column",
        ));
    }
    let cols = cols.min(n);
    let mut g = GridImage::new(cols, n.div_ceil(cols), h, w, c);
    for i in 0..n {
        let (oy, ox) = GridImage::origin(i / cols, i % cols, h, w);
        for y in 0..h {
            for x in 0..w {
                let px = pixel(images, (c, h, w), i, y, x);
                g.set(oy + y, ox + x, &px[..c]);
            }
        }
    }
    Ok(g)
}

/// Lays out N (measurement, restoration) pairs side by side, `cols` pairs per row, as RGB;
/// where `masks` is 0 the measurement's pixel is drawn [`MISSING_RGB`].
pub fn render_pairs_grid(
    path: &Path,
    (n, c, h, w): (usize, usize, usize, usize),
    measurements: &[f32],
    masks: &[f32],
    restorations: &[f32],
    cols: usize,
) -> Result<GridImage, HostError> {
    let dims = (n, c, h, w);
    check(path, "measurements", dims, measurements)?;
    check(path, "masks", dims, masks)?;
    check(path, "restorations", dims, restorations)?;
    if cols == 0 {
        return Err(HostError::unwritable(
            path,
            "a grid needs at least one column",
        ));
    }
    let cols = cols.min(n);
    let mut g = GridImage::new(2 * cols, n.div_ceil(cols), h, w, 3);
    for i in 0..n {
        let (oy, mx) = GridImage::origin(i / cols, 2 * (i % cols), h, w);
        let (_, rx) = GridImage::origin(i / cols, 2 * (i % cols) + 1, h, w);
        for y in 0..h {
            for x in 0..w {
                let missing = masks[(i * c * h + y) * w + x] == 0.0;
                let m = if missing {
                    MISSING_RGB
                } else {
                    pixel(measurements, (c, h, w), i, y, x)
                };
                g.set(oy + y, mx + x, &m);
                g.set(oy + y, rx + x, &pixel(restorations, (c, h, w), i, y, x));
            }
        }
    }
    Ok(g)
}

/// Writes N images (NCHW in [-1, 1]) as a PNG grid of `cols` columns.
pub fn write_grid(
    path: &Path,
    dims: (usize, usize, usize, usize),
    images: &[f32],
    cols: usize,
) -> Result<(), HostError> {
    render_grid(path, dims, images, cols)?.write_png(path)
}

/// Writes measurement / restoration pairs as an RGB PNG grid, `cols` pairs per row.
pub fn write_pairs_grid(
    path: &Path,
    dims: (usize, usize, usize, usize),
    measurements: &[f32],
    masks: &[f32],
    restorations: &[f32],
    cols: usize,
) -> Result<(), HostError> {
    render_pairs_grid(path, dims, measurements, masks, restorations, cols)?.write_png(path)
}

#[cfg(test)]
mod upscale_tests {
    use super::*;

    #[test]
    fn upscale_replicates_pixels() {
        let g = GridImage {
            width: 2,
            height: 1,
            channels: 1,
            pixels: vec![10, 20],
        };
        let u = g.upscale(2);
        assert_eq!((u.width, u.height), (4, 2));
        assert_eq!(u.pixels, vec![10, 10, 20, 20, 10, 10, 20, 20]);
        let rgb = GridImage {
            width: 1,
            height: 1,
            channels: 3,
            pixels: vec![1, 2, 3],
        };
        assert_eq!(rgb.upscale(2).pixels, [1, 2, 3].repeat(4));
        assert_eq!(g.upscale(0), g);
    }
}
