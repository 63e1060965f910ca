//! `ambient corrupt`: makes a corrupted dataset `y = A x0` from clean images, with the core's
//! operators (random inpainting with p, or box inpainting with a side), seeded, so that users and
//! tests can start from the same data a scientist would hold.

use ambient_core::corruption::{expand_pixel_mask, BoxInpainting, Corruption, RandomInpainting};
use ambient_core::AmbientRng;

use crate::io::dataset::CorruptedDataset;

/// Which measurement operator to apply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CorruptionKind {
    /// Each pixel erased with probability `p`.
    Random { p: f32 },
    /// One `side` x `side` square erased.
    Box { side: usize },
}

/// Applies a freshly drawn `A` to every image of `clean` (which must be fully observed).
/// The draws come from `AmbientRng::new(seed)`, one operator per image in order.
pub fn corrupt_dataset(
    clean: &CorruptedDataset,
    kind: CorruptionKind,
    seed: u64,
) -> Result<CorruptedDataset, String> {
    if clean.masks.iter().any(|&m| m != 1.0) {
        return Err(
            "the source images already have missing pixels; corrupt needs clean images".into(),
        );
    }
    let (c, h, w) = (clean.c, clean.h, clean.w);
    let op: Box<dyn Corruption> = match kind {
        CorruptionKind::Random { p } => {
            Box::new(RandomInpainting::new(1, h, w, p, 0.0).map_err(|e| e.to_string())?)
        }
        CorruptionKind::Box { side } => {
            Box::new(BoxInpainting::new(1, h, w, side).map_err(|e| e.to_string())?)
        }
    };
    let mut rng = AmbientRng::new(seed);
    let chw = clean.image_len();
    let mut pixel_mask = vec![0.0f32; op.operator_len()];
    let mut measurements = clean.measurements.clone();
    let mut masks = vec![0.0f32; clean.masks.len()];
    for i in 0..clean.n {
        op.draw(&mut rng, &mut pixel_mask)
            .map_err(|e| e.to_string())?;
        let m = &mut masks[i * chw..(i + 1) * chw];
        expand_pixel_mask(c, &pixel_mask, m).map_err(|e| e.to_string())?;
        for (x, &k) in measurements[i * chw..(i + 1) * chw]
            .iter_mut()
            .zip(m.iter())
        {
            *x *= k;
        }
    }
    Ok(CorruptedDataset {
        n: clean.n,
        c,
        h,
        w,
        measurements,
        masks,
        meta: None,
    })
}
