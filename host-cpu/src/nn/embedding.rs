//! The noise embedding: `pos = [cos(c_noise f_i), sin(c_noise f_i)]` with
//! `f_i = 10000^(-i / half)`, `half = ch / 2`, then `emb = SiLU(fc2(SiLU(fc1(pos))))`
//! (fc1: ch -> 4ch, fc2: 4ch -> 4ch).

use super::linear::Linear;
use super::silu::{silu, silu_backward};
use crate::params::ParamStore;
use ndarray::Array2;

/// The embedding MLP `emb.fc1`, `emb.fc2`.
#[derive(Debug, Clone)]
pub struct NoiseEmbedding {
    pub ch: usize,
    fc1: Linear,
    fc2: Linear,
}

/// What the backward pass needs.
#[derive(Debug, Clone)]
pub struct EmbeddingCache {
    c_noise: Vec<f32>,
    pos: Array2<f32>,
    h1: Array2<f32>,
    a1: Array2<f32>,
    h2: Array2<f32>,
}

/// The frequencies `f_i = 10000^(-i / half)`, i in 0..half (computed in f64).
fn frequencies(half: usize) -> Vec<f64> {
    (0..half)
        .map(|i| 10000f64.powf(-(i as f64) / half as f64))
        .collect()
}

/// The sinusoidal features `[cos(c f_0..), sin(c f_0..)]`, [N, ch].
pub fn positional(c_noise: &[f32], ch: usize) -> Array2<f32> {
    let half = ch / 2;
    let f = frequencies(half);
    Array2::from_shape_fn((c_noise.len(), ch), |(i, j)| {
        let a = c_noise[i] as f64 * f[j % half];
        (if j < half { a.cos() } else { a.sin() }) as f32
    })
}

impl NoiseEmbedding {
    /// `emb.fc1` and `emb.fc2` of `layout` for base width `ch` (even).
    pub fn new(layout: &[(String, Vec<usize>)], ch: usize) -> Result<Self, String> {
        if ch % 2 == 1 {
            return Err(format!("ch = {ch} must be even"));
        }
        Ok(NoiseEmbedding {
            ch,
            fc1: Linear::new(layout, "emb.fc1", ch, 4 * ch)?,
            fc2: Linear::new(layout, "emb.fc2", 4 * ch, 4 * ch)?,
        })
    }

    /// emb [N, 4ch], one row per noise level.
    pub fn forward(&self, params: &ParamStore, c_noise: &[f32]) -> (Array2<f32>, EmbeddingCache) {
        let pos = positional(c_noise, self.ch);
        let h1 = self.fc1.forward(params, &pos);
        let a1 = silu(&h1);
        let h2 = self.fc2.forward(params, &a1);
        let emb = silu(&h2);
        let cache = EmbeddingCache {
            c_noise: c_noise.to_vec(),
            pos,
            h1,
            a1,
            h2,
        };
        (emb, cache)
    }

    /// Adds the MLP's parameter gradients to `grads` (if given); returns dL/dc_noise.
    pub fn backward(
        &self,
        params: &ParamStore,
        cache: &EmbeddingCache,
        d_emb: &Array2<f32>,
        mut grads: Option<&mut ParamStore>,
    ) -> Vec<f32> {
        let d_h2 = silu_backward(&cache.h2, d_emb);
        let d_a1 = self
            .fc2
            .backward(params, &cache.a1, &d_h2, grads.as_deref_mut());
        let d_h1 = silu_backward(&cache.h1, &d_a1);
        let d_pos = self.fc1.backward(params, &cache.pos, &d_h1, grads);
        // d cos(c f)/dc = -f sin(c f), d sin(c f)/dc = f cos(c f).
        let half = self.ch / 2;
        let f = frequencies(half);
        cache
            .c_noise
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                (0..half)
                    .map(|j| {
                        let a = c as f64 * f[j];
                        f[j] * (-(d_pos[[i, j]] as f64) * a.sin()
                            + d_pos[[i, j + half]] as f64 * a.cos())
                    })
                    .sum::<f64>() as f32
            })
            .collect()
    }
}
