//! The PNG figures beside `results.md`: a grid of each model's first samples, a restoration
//! strip per corruption level (one row per method, same test images in every column), and the
//! memorization histograms copied from their evaluations.

use std::path::Path;

use ambient_cpu::io::dataset::CorruptedDataset;
use ambient_cpu::io::png_grid::render_grid;
use anyhow::{bail, Context, Result};

/// Images per row of the restoration strips; samples shown per grid.
pub const STRIP_COLS: usize = 8;
pub const GRID_SAMPLES: usize = 64;

/// The first `GRID_SAMPLES` samples of `samples_npy` as an 8-wide grid, enlarged 3x.
pub fn sample_grid(samples_npy: &Path, png: &Path) -> Result<()> {
    let ds = CorruptedDataset::load_npy(samples_npy, None)?;
    let n = ds.n.min(GRID_SAMPLES);
    let data = &ds.measurements[..n * ds.image_len()];
    render_grid(png, (n, ds.c, ds.h, ds.w), data, 8)?
        .upscale(3)
        .write_png(png)?;
    Ok(())
}

/// One row per `(label, images)` (each at least `cols` images of `c x h x w`), the first
/// `cols` of each, enlarged 3x. Returns the row labels in order, for the caption.
pub fn restoration_strip(
    png: &Path,
    rows: &[(String, Vec<f32>)],
    cols: usize,
    (c, h, w): (usize, usize, usize),
) -> Result<Vec<String>> {
    let l = c * h * w;
    let mut data = Vec::with_capacity(rows.len() * cols * l);
    for (label, images) in rows {
        if images.len() < cols * l {
            bail!(
                "{label}: {} images for a strip of {cols}",
                images.len() / l.max(1)
            );
        }
        data.extend_from_slice(&images[..cols * l]);
    }
    render_grid(png, (rows.len() * cols, c, h, w), &data, cols)?
        .upscale(3)
        .write_png(png)?;
    Ok(rows.iter().map(|r| r.0.clone()).collect())
}

/// Images of a `.npy` file written by `eval restore --out` (or any image `.npy`), in [-1, 1].
pub fn load_images(path: &Path) -> Result<Vec<f32>> {
    Ok(CorruptedDataset::load_npy(path, None)?.measurements)
}

/// Copies a figure made by an evaluation next to the report.
pub fn copy_figure(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("{} -> {}: cannot copy", from.display(), to.display()))?;
    Ok(())
}
