//! The corrupted-dataset directory that `ambient corrupt` writes and training reads:
//! `measurements.npy` (`u8` N x H x W x C, missing pixels stored as 0), `masks.npy` (`u8`
//! N x H x W x 1, 1 = observed) and `corruption.json` (how it was made). The directory is
//! written under a temporary name and renamed when complete, so no half-written dataset exists.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{index_string, HostError};
use crate::io::atomic::{write_bytes_atomic, write_dir_atomic};
use crate::io::dataset::{
    image_dims, nchw_to_nhwc_u8, read_pixel_masks, CorruptedDataset, NhwcPixels,
};
use crate::io::npy::{read_npy, write_npy_u8, NpyData};

pub const MEASUREMENTS_FILE: &str = "measurements.npy";
pub const MASKS_FILE: &str = "masks.npy";
pub const RECORD_FILE: &str = "corruption.json";

/// `corruption.json`: how a corrupted dataset was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorruptionRecord {
    /// "random", "box" or "gaussian".
    pub kind: String,
    /// Erasure probability (random inpainting).
    pub p: f32,
    /// Box side in pixels (box inpainting only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#box: Option<usize>,
    pub seed: u64,
    /// Where the clean images came from, e.g. "data/mnist/train-images-idx3-ubyte.gz".
    pub source: String,
    /// Number of images.
    pub count: usize,
    /// The program and version that wrote it, e.g. "ambient 0.1.0".
    pub created_by: String,
}

/// Checks that `ds` is a well-formed corrupted dataset before it is written to `dir`.
fn check_dataset(
    dir: &Path,
    ds: &CorruptedDataset,
    record: &CorruptionRecord,
) -> Result<(), HostError> {
    let len = ds.n * ds.image_len();
    if ds.measurements.len() != len || ds.masks.len() != len {
        return Err(HostError::unwritable(
            dir,
            format!(
                "dataset of {} x {} x {} x {} needs {len} measurement and mask values, got {} and {}",
                ds.n, ds.c, ds.h, ds.w, ds.measurements.len(), ds.masks.len()
            ),
        ));
    }
    if record.count != ds.n {
        return Err(HostError::unwritable(
            dir,
            format!(
                "the record says count = {} but the dataset holds {} images",
                record.count, ds.n
            ),
        ));
    }
    let hw = ds.h * ds.w;
    let shape = [ds.n, ds.c, ds.h, ds.w];
    for (k, &m) in ds.masks.iter().enumerate() {
        if m != 0.0 && m != 1.0 {
            return Err(HostError::unwritable(
                dir,
                format!(
                    "mask value {m} at {} (N x C x H x W) is not 0 or 1",
                    index_string(&shape, k)
                ),
            ));
        }
        let first = ds.masks[(k / (ds.c * hw)) * ds.c * hw + k % hw];
        if m != first {
            return Err(HostError::unwritable(
                dir,
                format!(
                    "mask differs between the channels of the pixel at {}",
                    index_string(&shape, k)
                ),
            ));
        }
    }
    Ok(())
}

/// Writes `ds` and `record` as a corrupted-dataset directory `dir`, which must not exist yet.
/// Missing pixels are stored as 0 in `measurements.npy` whatever `ds` holds there; observed
/// pixels by the spec's `u8` rounding. `ds.meta` is not written: `record` is.
pub fn write_corrupted_dir(
    dir: &Path,
    ds: &CorruptedDataset,
    record: &CorruptionRecord,
) -> Result<(), HostError> {
    check_dataset(dir, ds, record)?;
    let hw = ds.h * ds.w;
    let chw = ds.c * hw;
    // Missing pixels are stored as 0 whatever the dataset holds there (NaN included).
    let observed: Vec<f32> = ds
        .measurements
        .iter()
        .enumerate()
        .map(|(k, &x)| {
            if ds.masks[(k / chw) * chw + k % hw] == 1.0 {
                x
            } else {
                -1.0
            }
        })
        .collect();
    let measurements = nchw_to_nhwc_u8(
        &dir.join(MEASUREMENTS_FILE),
        "measurements",
        (ds.n, ds.c, ds.h, ds.w),
        &observed,
    )?;
    let masks: Vec<u8> = (0..ds.n * hw)
        .map(|k| (ds.masks[(k / hw) * chw + k % hw] == 1.0) as u8)
        .collect();
    let json = serde_json::to_string_pretty(record).map_err(|e| HostError::unwritable(dir, e))?;
    write_dir_atomic(dir, |tmp| {
        write_npy_u8(
            &tmp.join(MEASUREMENTS_FILE),
            &[ds.n, ds.h, ds.w, ds.c],
            &measurements,
        )?;
        write_npy_u8(&tmp.join(MASKS_FILE), &[ds.n, ds.h, ds.w, 1], &masks)?;
        write_bytes_atomic(&tmp.join(RECORD_FILE), format!("{json}\n").as_bytes())
    })
}

/// Reads a corrupted-dataset directory; `meta` holds `corruption.json` as written (unknown
/// fields kept). Its `count` must match the number of images.
pub fn load_corrupted_dir(dir: &Path) -> Result<CorruptedDataset, HostError> {
    let mpath = dir.join(MEASUREMENTS_FILE);
    let kpath = dir.join(MASKS_FILE);
    let rpath = dir.join(RECORD_FILE);
    let text = std::fs::read_to_string(&rpath).map_err(|e| HostError::io(&rpath, "read", e))?;
    let meta: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| HostError::invalid(&rpath, format!("not valid JSON: {e}")))?;
    let record: CorruptionRecord = serde_json::from_value(meta.clone())
        .map_err(|e| HostError::invalid(&rpath, format!("not a corruption record: {e}")))?;
    let arr = read_npy(&mpath)?;
    let dims = image_dims(&mpath, &arr)?;
    if record.count != dims.0 {
        return Err(HostError::invalid(
            &rpath,
            format!(
                "count = {} but {} holds {} images",
                record.count,
                mpath.display(),
                dims.0
            ),
        ));
    }
    let pixel_masks = read_pixel_masks(&kpath, &mpath, dims)?;
    let pixels = match &arr.data {
        NpyData::U8(v) => NhwcPixels::U8(v),
        NpyData::F32(v) => NhwcPixels::F32(v),
    };
    let mut ds = CorruptedDataset::from_nhwc(&mpath, dims, pixels, Some(&pixel_masks))?;
    ds.meta = Some(meta);
    Ok(ds)
}
