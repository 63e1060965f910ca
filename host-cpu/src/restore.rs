//! Single-step restoration (NFE = 1) of a corrupted dataset on the CPU, and the choice of its
//! noise level `s_r` on held-out measurements.
//!
//! Choosing `s_r` needs no clean image: from held-out measurements we hide a further fraction of
//! the observed pixels, restore from what is left at each candidate sigma, and score each
//! sigma by the error on the pixels we hid (which the measurement does hold). The sigma with the
//! smallest error wins. This is the same self-supervision that ambient training uses.

use ambient_core::corruption::{Corruption, RandomInpainting};
use ambient_core::sampler::restore_single_step;
use ambient_core::AmbientRng;
use ndarray::Array4;

use crate::denoiser::CpuDenoiser;
use crate::io::dataset::CorruptedDataset;
use crate::params::ParamStore;
use crate::tensor_nd::NdTensor;
use crate::unet::UNet;

/// Candidate restoration sigmas tried by [`choose_restore_sigma`].
pub const SIGMA_CANDIDATES: [f32; 8] = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0];

/// Restores measurements `y` with masks `a` (NCHW, `dims` = (n, c, h, w)) at `sigma`, in
/// batches of `batch`, calling `progress(done)` after each batch.
#[allow(clippy::too_many_arguments)]
pub fn restore_measurements(
    net: &UNet,
    params: &ParamStore,
    dims: (usize, usize, usize, usize),
    y: &[f32],
    a: &[f32],
    sigma: f32,
    batch: usize,
    mut progress: impl FnMut(usize),
) -> Result<Vec<f32>, String> {
    let (n, c, h, w) = dims;
    let chw = c * h * w;
    if y.len() != n * chw || a.len() != n * chw {
        return Err(format!(
            "restore: {} measurement and {} mask values for {n} images of {c} x {h} x {w}",
            y.len(),
            a.len()
        ));
    }
    let mut out = vec![0.0f32; n * chw];
    let mut den = CpuDenoiser { net, params };
    let mut start = 0;
    while start < n {
        let b = batch.max(1).min(n - start);
        let range = start * chw..(start + b) * chw;
        let t =
            |v: &[f32]| NdTensor(Array4::from_shape_vec((b, c, h, w), v.to_vec()).expect("shape"));
        let (yt, at) = (t(&y[range.clone()]), t(&a[range.clone()]));
        let mut o = NdTensor(Array4::zeros((b, c, h, w)));
        let mut scratch = NdTensor(Array4::zeros((b, c, h, w)));
        restore_single_step(&mut den, &yt, &at, sigma, &mut o, &mut scratch)
            .map_err(|e| format!("restoring images {start}..{}: {e}", start + b))?;
        out[range].copy_from_slice(o.0.as_slice().expect("standard layout"));
        start += b;
        progress(start);
    }
    Ok(out)
}

/// The outcome of [`choose_restore_sigma`]: the chosen sigma and every candidate's score.
#[derive(Debug, Clone, PartialEq)]
pub struct SigmaChoice {
    pub sigma: f32,
    /// (sigma, mean squared error on the hidden observed pixels, in [-1, 1] units).
    pub scores: Vec<(f32, f64)>,
    /// Images and hidden pixels the scores are over.
    pub images: usize,
    pub hidden_pixels: usize,
}

/// Chooses the restoration sigma on the held-out measurements `data` (use images that were
/// not trained on): hides a further `hide` fraction of each image's observed pixels (seeded),
/// restores at each of `candidates` and scores by the squared error on the hidden pixels.
pub fn choose_restore_sigma(
    net: &UNet,
    params: &ParamStore,
    data: &CorruptedDataset,
    candidates: &[f32],
    hide: f32,
    seed: u64,
) -> Result<SigmaChoice, String> {
    let (n, c, h, w) = (data.n, data.c, data.h, data.w);
    let chw = data.image_len();
    let hw = h * w;
    let op = RandomInpainting::new(1, h, w, 0.0, hide).map_err(|e| e.to_string())?;
    let mut rng = AmbientRng::new(seed);
    let mut a2 = vec![0.0f32; n * chw];
    let mut y2 = vec![0.0f32; n * chw];
    let mut pa = vec![0.0f32; hw];
    let mut pa2 = vec![0.0f32; hw];
    for i in 0..n {
        let (y, a) = data.image(i);
        pa.copy_from_slice(&a[..hw]);
        op.further_corrupt(&pa, &mut rng, &mut pa2)
            .map_err(|e| e.to_string())?;
        for ch in 0..c {
            for p in 0..hw {
                let k = i * chw + ch * hw + p;
                a2[k] = pa2[p];
                y2[k] = y[ch * hw + p] * pa2[p];
            }
        }
    }
    let hidden: usize = data
        .masks
        .iter()
        .zip(&a2)
        .filter(|(&a, &b)| a == 1.0 && b == 0.0)
        .count();
    if hidden == 0 {
        return Err("no observed pixel could be held out to choose the restoration sigma".into());
    }
    let mut scores = Vec::new();
    for &s in candidates {
        let r = restore_measurements(net, params, (n, c, h, w), &y2, &a2, s, 64, |_| {})?;
        let mut se = 0.0f64;
        for k in 0..n * chw {
            if data.masks[k] == 1.0 && a2[k] == 0.0 {
                let d = (r[k] - data.measurements[k]) as f64;
                se += d * d;
            }
        }
        scores.push((s, se / hidden as f64));
    }
    let best = scores
        .iter()
        .copied()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .ok_or("no candidate sigma")?;
    Ok(SigmaChoice {
        sigma: best.0,
        scores,
        images: n,
        hidden_pixels: hidden,
    })
}
