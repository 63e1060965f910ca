//! Loads a dataset from any supported source: a corrupted-dataset directory (as written by
//! `ambient corrupt`), a folder of PNG images with masks beside them, `.npy` images (with an
//! optional `.npy` of masks), or IDX images (`.gz` or raw).

use std::path::{Path, PathBuf};

use ambient_cpu::io::corrupted_dir::{load_corrupted_dir, RECORD_FILE};
use ambient_cpu::io::dataset::CorruptedDataset;
use anyhow::{bail, Result};

/// Reads `path` (and `masks`, for `.npy` sources) into a dataset.
pub fn load(path: &Path, masks: Option<&Path>) -> Result<CorruptedDataset> {
    if !path.exists() {
        bail!("{}: no such file or directory", path.display());
    }
    let name = path.to_string_lossy().to_lowercase();
    let ds = if path.is_dir() {
        if masks.is_some() {
            bail!(
                "--masks is for .npy sources; {} is a directory",
                path.display()
            );
        }
        if path.join(RECORD_FILE).exists() {
            load_corrupted_dir(path)?
        } else {
            CorruptedDataset::load_png_folder(path)?
        }
    } else if name.ends_with(".npy") {
        CorruptedDataset::load_npy(path, masks)?
    } else {
        if masks.is_some() {
            bail!("--masks is for .npy sources; {} is IDX", path.display());
        }
        CorruptedDataset::load_idx(path)?
    };
    Ok(ds)
}

/// The first `limit` images of `ds` (all if `None`).
pub fn take(mut ds: CorruptedDataset, limit: Option<usize>) -> CorruptedDataset {
    if let Some(l) = limit {
        if l < ds.n {
            let len = l * ds.image_len();
            ds.n = l;
            ds.measurements.truncate(len);
            ds.masks.truncate(len);
        }
    }
    ds
}

/// The data options that `train` and `restore` share.
#[derive(clap::Args, Clone, Debug)]
pub struct DataArgs {
    /// Measurements and masks: a directory from `ambient corrupt`, a PNG folder with
    /// NAME.mask.png beside each NAME.png, or .npy images (with --masks).
    #[arg(long)]
    pub data: PathBuf,
    /// Masks for .npy measurements (N x H x W [x 1], 1 = observed).
    #[arg(long)]
    pub masks: Option<PathBuf>,
    /// Use only the first N images.
    #[arg(long)]
    pub limit: Option<usize>,
}

impl DataArgs {
    /// `--data` alone, every image.
    pub fn all(data: PathBuf) -> Self {
        DataArgs {
            data,
            masks: None,
            limit: None,
        }
    }

    /// Loads the dataset these options name.
    pub fn load(&self) -> Result<CorruptedDataset> {
        Ok(take(load(&self.data, self.masks.as_deref())?, self.limit))
    }
}
