//! Calibration: the range of every tensor the int8 graph quantizes, as the folded f32 network
//! produces it on corrupted measurements at the restoration sigma (the inputs the quantized
//! model will see). Ranges are the plain min / max over all calibration images, TFLite's
//! post-training default: no value seen in calibration is clipped, at the price of a coarser
//! scale when a tensor has rare outliers.
//!
//! Tensor names: `{L}.main` (`conv(x, W)`, used as `max |.|` for the int16 main path),
//! `{L}.gate` (`conv(x, G)`), `{L}.out` (the gated convolution's output) for every gated
//! convolution `{L}`; `{N}.gn` and `{N}.silu` for every GroupNorm `{N}`; `{P}.out` for every
//! ResBlock `{P}` (`(h + skip) / sqrt 2`).

use std::collections::HashMap;

use rayon::prelude::*;

use super::folded::FoldedNet;

/// A closed range `[min, max]` of observed values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub min: f32,
    pub max: f32,
}

impl Range {
    fn of(values: &[f32]) -> Range {
        values.iter().fold(
            Range {
                min: f32::INFINITY,
                max: f32::NEG_INFINITY,
            },
            |r, &v| Range {
                min: r.min.min(v),
                max: r.max.max(v),
            },
        )
    }

    /// The smallest range containing both.
    pub fn union(self, o: Range) -> Range {
        Range {
            min: self.min.min(o.min),
            max: self.max.max(o.max),
        }
    }

    /// `max(|min|, |max|)`.
    pub fn abs_max(&self) -> f32 {
        self.min.abs().max(self.max.abs())
    }
}

/// Observed ranges by tensor name.
#[derive(Debug, Clone, Default)]
pub struct Ranges {
    pub by_name: HashMap<String, Range>,
    /// Calibration images seen.
    pub images: usize,
}

impl Ranges {
    fn observe(&mut self, name: &str, values: &[f32]) {
        let r = Range::of(values);
        self.by_name
            .entry(name.to_string())
            .and_modify(|e| *e = e.union(r))
            .or_insert(r);
    }

    fn merge(mut self, o: Ranges) -> Ranges {
        for (k, r) in o.by_name {
            self.by_name
                .entry(k)
                .and_modify(|e| *e = e.union(r))
                .or_insert(r);
        }
        self.images += o.images;
        self
    }

    /// The range of `name`, or an error naming it.
    pub fn get(&self, name: &str) -> Result<Range, String> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| format!("calibration saw no tensor {name}"))
    }
}

/// Runs the folded network on each of the `n` measurements `y` with masks `m` (CHW images
/// back to back) and records every tensor's range. Non-finite activations are an error.
pub fn calibrate(net: &FoldedNet, y: &[f32], m: &[f32], n: usize) -> Result<Ranges, String> {
    let len = y.len().checked_div(n).unwrap_or(0);
    if n == 0 || y.len() != n * len || m.len() != y.len() {
        return Err(format!(
            "calibration needs at least one image: {} measurement and {} mask values for {n}",
            y.len(),
            m.len()
        ));
    }
    let ranges = (0..n)
        .into_par_iter()
        .fold(Ranges::default, |mut r, i| {
            let s = i * len..(i + 1) * len;
            net.forward(&y[s.clone()], &m[s], &mut |name, v| r.observe(name, v));
            r.images += 1;
            r
        })
        .reduce(Ranges::default, Ranges::merge);
    if let Some((k, _)) = ranges
        .by_name
        .iter()
        .find(|(_, r)| !(r.min.is_finite() && r.max.is_finite()))
    {
        return Err(format!("calibration: tensor {k} is not finite"));
    }
    Ok(ranges)
}
