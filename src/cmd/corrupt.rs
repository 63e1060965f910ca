//! `ambient corrupt`: clean images in, a corrupted-dataset directory out (measurements.npy,
//! masks.npy, corruption.json recording how it was made).

use std::path::PathBuf;

use ambient_cpu::corrupt::{corrupt_dataset, CorruptionKind};
use ambient_cpu::io::corrupted_dir::{write_corrupted_dir, CorruptionRecord};
use anyhow::{anyhow, bail, Result};

use crate::data;

#[derive(clap::Args)]
pub struct Args {
    /// Clean images: IDX (.gz or raw), .npy (N x H x W [x C]) or a folder of PNG images.
    #[arg(long)]
    pub input: PathBuf,
    /// Output directory (must not exist).
    #[arg(long)]
    pub out: PathBuf,
    /// "random" (each pixel erased with probability --p) or "box" (one --box-side square erased).
    #[arg(long, default_value = "random")]
    pub kind: String,
    /// Erasure probability for random inpainting.
    #[arg(long, default_value_t = 0.8)]
    pub p: f32,
    /// Side of the erased square for box inpainting, in pixels.
    #[arg(long)]
    pub box_side: Option<usize>,
    /// Use only the first N images.
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(a: Args) -> Result<()> {
    let clean = data::take(data::load(&a.input, None)?, a.limit);
    let kind = match a.kind.as_str() {
        "random" => CorruptionKind::Random { p: a.p },
        "box" => CorruptionKind::Box {
            side: a
                .box_side
                .ok_or_else(|| anyhow!("--kind box needs --box-side"))?,
        },
        other => bail!("--kind {other:?}: expected \"random\" or \"box\""),
    };
    let ds =
        corrupt_dataset(&clean, kind, a.seed).map_err(|e| anyhow!("{}: {e}", a.input.display()))?;
    let record = CorruptionRecord {
        kind: a.kind.clone(),
        p: match kind {
            CorruptionKind::Random { p } => p,
            CorruptionKind::Box { .. } => 0.0,
        },
        r#box: a.box_side.filter(|_| a.kind == "box"),
        seed: a.seed,
        source: a.input.display().to_string(),
        count: ds.n,
        created_by: format!("ambient {}", env!("CARGO_PKG_VERSION")),
    };
    if let Some(parent) = a.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            anyhow!(
                "{}: cannot create the output's folder: {e}",
                a.out.display()
            )
        })?;
    }
    write_corrupted_dir(&a.out, &ds, &record)?;
    eprintln!(
        "wrote {}: {} images of {} x {} x {}, {:.1}% of pixels observed",
        a.out.display(),
        ds.n,
        ds.c,
        ds.h,
        ds.w,
        100.0 * ds.observed_fraction()
    );
    Ok(())
}
