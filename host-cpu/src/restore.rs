//! Single-step restoration (NFE = 1) of a corrupted dataset on the CPU, and the choice of its
//! noise level `s_r` on held-out measurements.
//!
//! Choosing `s_r` needs no clean image: from held-out measurements we hide a further fraction of
//! the observed pixels, restore from what is left at each candidate sigma, and score each
//! sigma by the error on the pixels we hid (which the measurement does hold). The sigma with the
//! smallest error wins. This is the same self-supervision that ambient training uses.

use ambient_core::corruption::{Corruption, RandomInpainting};
use ambient_core::sampler::restore_single_step;
use ambient_core::{AmbientRng, CoreError};
use ndarray::Array4;

use crate::denoiser::CpuDenoiser;
use crate::frozen::FrozenParams;
use crate::io::dataset::CorruptedDataset;
use crate::params::ParamStore;
use crate::tensor_nd::NdTensor;
use crate::unet::UNet;

/// Candidate restoration sigmas tried by [`choose_restore_sigma`]. The spec suggests
/// s_r ≈ 0.1 for a well-trained model; short-trained models score best at larger sigmas (a
/// 2100-step spec-config model chose 1.0, the former top of this grid), so the grid reaches 2.
pub const SIGMA_CANDIDATES: [f32; 10] = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 1.5, 2.0];

/// Why a restoration or the choice of its sigma failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Measurements and masks do not hold `n` images of the stated size.
    #[error("restore: {y} measurement and {a} mask values for {n} images of {c} x {h} x {w}")]
    Shape {
        y: usize,
        a: usize,
        n: usize,
        c: usize,
        h: usize,
        w: usize,
    },
    /// The network or the sampler rejected a batch (non-finite values, bad sigma, ...).
    #[error("restoring images {start}..{end}: {source}")]
    Batch {
        start: usize,
        end: usize,
        #[source]
        source: CoreError,
    },
    /// The held-out fraction or seed could not build the further corruption.
    #[error("choosing the restoration sigma: {0}")]
    Corruption(#[source] CoreError),
    /// Every observed pixel stayed observed, so no sigma can be scored.
    #[error("no observed pixel could be held out to choose the restoration sigma")]
    NothingHeldOut,
    /// The candidate list was empty.
    #[error("no candidate sigma to choose from")]
    NoCandidates,
}

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
) -> Result<Vec<f32>, RestoreError> {
    let (n, c, h, w) = dims;
    let chw = c * h * w;
    if y.len() != n * chw || a.len() != n * chw {
        return Err(RestoreError::Shape {
            y: y.len(),
            a: a.len(),
            n,
            c,
            h,
            w,
        });
    }
    let mut out = vec![0.0f32; n * chw];
    // Frozen: the Winograd filters are checked against the weights once, not every batch.
    let frozen = FrozenParams::new(params);
    let mut den = CpuDenoiser {
        net,
        params: &frozen,
    };
    let mut start = 0;
    while start < n {
        let b = batch.max(1).min(n - start);
        let range = start * chw..(start + b) * chw;
        let t =
            |v: &[f32]| NdTensor(Array4::from_shape_vec((b, c, h, w), v.to_vec()).expect("shape"));
        let (yt, at) = (t(&y[range.clone()]), t(&a[range.clone()]));
        let mut o = NdTensor(Array4::zeros((b, c, h, w)));
        let mut scratch = NdTensor(Array4::zeros((b, c, h, w)));
        restore_single_step(&mut den, &yt, &at, sigma, &mut o, &mut scratch).map_err(|source| {
            RestoreError::Batch {
                start,
                end: start + b,
                source,
            }
        })?;
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

/// Fork index of [`choose_restore_sigma`]'s hiding draws ("hold" in ASCII).
const HOLDOUT_STREAM: u64 = 0x686f_6c64;

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
) -> Result<SigmaChoice, RestoreError> {
    let (n, c, h, w) = (data.n, data.c, data.h, data.w);
    let chw = data.image_len();
    let hw = h * w;
    if candidates.is_empty() {
        return Err(RestoreError::NoCandidates);
    }
    let op = RandomInpainting::new(1, h, w, 0.0, hide).map_err(RestoreError::Corruption)?;
    // A fork, not `AmbientRng::new(seed)`: `corrupt_dataset` draws one Bernoulli per pixel from
    // `AmbientRng::new(its seed)` in this same order, so with equal seeds the hiding lined up
    // with the corruption and hid every observed pixel (and scored sigma on nothing seen).
    let mut rng = AmbientRng::new(seed).fork(HOLDOUT_STREAM);
    let mut a2 = vec![0.0f32; n * chw];
    let mut y2 = vec![0.0f32; n * chw];
    let mut pa = vec![0.0f32; hw];
    let mut pa2 = vec![0.0f32; hw];
    for i in 0..n {
        let (y, a) = data.image(i);
        pa.copy_from_slice(&a[..hw]);
        op.further_corrupt(&pa, &mut rng, &mut pa2)
            .map_err(RestoreError::Corruption)?;
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
        return Err(RestoreError::NothingHeldOut);
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
        .ok_or(RestoreError::NoCandidates)?;
    Ok(SigmaChoice {
        sigma: best.0,
        scores,
        images: n,
        hidden_pixels: hidden,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UNetConfig;
    use crate::init::init_params;

    fn tiny() -> (UNet, ParamStore) {
        let cfg = UNetConfig {
            img_channels: 1,
            img_resolution: 4,
            ch: 4,
            mult: vec![1],
            blocks: 1,
            groups: 2,
            sigma_data: 0.5,
        };
        let params = init_params(&cfg, &mut AmbientRng::new(3));
        (UNet::new(&cfg).unwrap(), params)
    }

    fn data(mask: f32) -> CorruptedDataset {
        CorruptedDataset {
            n: 2,
            c: 1,
            h: 4,
            w: 4,
            measurements: vec![0.25 * mask; 32],
            masks: vec![mask; 32],
            meta: None,
        }
    }

    /// The hiding must be independent of how the data were corrupted, whatever seed made
    /// them: each observed pixel is hidden with probability `hide` = 0.2. Over 24 images of
    /// 4 x 4 at p = 0.5 (about 192 observed pixels) the hidden fraction has a standard
    /// deviation of sqrt(0.2 * 0.8 / 192) = 0.029, so [0.05, 0.35] is 5 of them either side.
    /// (With the hiding drawn from `AmbientRng::new(seed)`, corruption seed 1 hid all of them.)
    #[test]
    fn hiding_is_independent_of_the_corruption_seed() {
        use crate::corrupt::{corrupt_dataset, CorruptionKind};
        let (net, params) = tiny();
        let clean = CorruptedDataset {
            n: 24,
            c: 1,
            h: 4,
            w: 4,
            measurements: (0..384).map(|i| (i % 7) as f32 / 7.0 - 0.5).collect(),
            masks: vec![1.0; 384],
            meta: None,
        };
        for corruption_seed in 0..6 {
            let data = corrupt_dataset(&clean, CorruptionKind::Random { p: 0.5 }, corruption_seed)
                .unwrap();
            let observed = data.masks.iter().filter(|&&m| m == 1.0).count();
            let c = choose_restore_sigma(&net, &params, &data, &[0.1], 0.2, 1).unwrap();
            let f = c.hidden_pixels as f64 / observed as f64;
            assert!(
                (0.05..=0.35).contains(&f),
                "corruption seed {corruption_seed}: hid {} of {observed} observed pixels",
                c.hidden_pixels
            );
        }
    }

    #[test]
    fn wrong_lengths_are_a_shape_error() {
        let (net, params) = tiny();
        let e = restore_measurements(
            &net,
            &params,
            (2, 1, 4, 4),
            &[0.0; 31],
            &[1.0; 32],
            0.1,
            2,
            |_| {},
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                RestoreError::Shape {
                    y: 31,
                    a: 32,
                    n: 2,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn non_finite_measurements_name_the_batch() {
        let (net, params) = tiny();
        let mut y = vec![0.0f32; 32];
        y[20] = f32::NAN;
        let e = restore_measurements(&net, &params, (2, 1, 4, 4), &y, &[1.0; 32], 0.1, 1, |_| {})
            .unwrap_err();
        // Image 1 holds index 20; batches of one image, so the error names images 1..2.
        assert!(
            matches!(
                e,
                RestoreError::Batch {
                    start: 1,
                    end: 2,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn sigma_choice_needs_candidates_and_observed_pixels() {
        let (net, params) = tiny();
        let e = choose_restore_sigma(&net, &params, &data(1.0), &[], 0.2, 1).unwrap_err();
        assert!(matches!(e, RestoreError::NoCandidates), "{e}");
        // Nothing observed: nothing can be held out.
        let e = choose_restore_sigma(&net, &params, &data(0.0), &[0.1], 0.2, 1).unwrap_err();
        assert!(matches!(e, RestoreError::NothingHeldOut), "{e}");
        let c = choose_restore_sigma(&net, &params, &data(1.0), &[0.1, 0.5], 0.5, 1).unwrap();
        assert_eq!(c.scores.len(), 2);
        assert!(c.hidden_pixels > 0 && c.hidden_pixels < 32);
        let best = c.scores.iter().map(|s| s.1).fold(f64::INFINITY, f64::min);
        assert_eq!(c.scores.iter().find(|s| s.0 == c.sigma).unwrap().1, best);
    }
}
