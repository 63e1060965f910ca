//! SSIM, the structural similarity index of Wang, Bovik, Sheikh and Simoncelli (2004), on
//! [-1, 1] images: data range L = 2, K1 = 0.01, K2 = 0.03, C1 = (K1 L)^2, C2 = (K2 L)^2.
//!
//! Default window ([`Ssim::gaussian`]): the paper's 11 x 11 Gaussian of sigma 1.5, normalised
//! to sum 1, with population (weighted, not N - 1) moments. This is skimage's
//! `structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
//! data_range=2)`, the setting skimage documents as matching Wang et al. The map is computed
//! only where the whole window lies inside the image (skimage filters the whole image and
//! then crops the same border of half a window, so the mean is the same), and SSIM is the mean
//! of the map; per channel, then over channels and images. [`Ssim::uniform`] gives the
//! uniform-window variant (e.g. 7 x 7, skimage's `gaussian_weights=False` default shape, but
//! with population moments).
//!
//! Per window, with weighted means mu, variances s^2 and covariance s_xy:
//! `SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))`.
//! Everything is accumulated in f64.

use super::EvalError;

/// K1 of Wang et al.
pub const K1: f64 = 0.01;
/// K2 of Wang et al.
pub const K2: f64 = 0.03;
/// Peak-to-peak range of [-1, 1] images.
pub const DATA_RANGE: f64 = 2.0;

/// An SSIM window and its constants.
#[derive(Debug, Clone, PartialEq)]
pub struct Ssim {
    /// Side of the square window (odd).
    side: usize,
    /// side * side weights, row-major, summing to 1.
    weights: Vec<f64>,
    c1: f64,
    c2: f64,
}

impl Ssim {
    /// The 11 x 11 Gaussian window of sigma 1.5 (Wang et al.; skimage with
    /// `gaussian_weights=True`: radius `int(3.5 * 1.5 + 0.5) = 5`).
    pub fn gaussian() -> Self {
        let (side, sigma) = (11usize, 1.5f64);
        let r = (side / 2) as f64;
        let g: Vec<f64> = (0..side)
            .map(|i| (-(i as f64 - r).powi(2) / (2.0 * sigma * sigma)).exp())
            .collect();
        let mut weights: Vec<f64> = (0..side * side)
            .map(|k| g[k / side] * g[k % side])
            .collect();
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        Self::with_weights(side, weights)
    }

    /// A uniform `side x side` window (`side` odd and at least 1).
    pub fn uniform(side: usize) -> Result<Self, EvalError> {
        if side == 0 || side.is_multiple_of(2) {
            return Err(EvalError::Invalid(format!(
                "SSIM window side {side} must be odd"
            )));
        }
        let w = 1.0 / (side * side) as f64;
        Ok(Self::with_weights(side, vec![w; side * side]))
    }

    fn with_weights(side: usize, weights: Vec<f64>) -> Self {
        Ssim {
            side,
            weights,
            c1: (K1 * DATA_RANGE).powi(2),
            c2: (K2 * DATA_RANGE).powi(2),
        }
    }

    /// The window's side.
    pub fn side(&self) -> usize {
        self.side
    }

    /// The window's weights, row-major.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Mean SSIM of one `h x w` plane `x` against `y` over every window position inside it.
    /// Panics if the lengths are not `h * w` or the plane is smaller than the window
    /// ([`Ssim::mean`] checks both).
    pub fn plane(&self, x: &[f32], y: &[f32], h: usize, w: usize) -> f64 {
        assert!(x.len() == h * w && y.len() == h * w, "ssim plane size");
        let s = self.side;
        assert!(h >= s && w >= s, "ssim plane smaller than the window");
        let mut total = 0.0;
        for oy in 0..=h - s {
            for ox in 0..=w - s {
                let (mut mx, mut my, mut xx, mut yy, mut xy) = (0.0, 0.0, 0.0, 0.0, 0.0);
                for dy in 0..s {
                    let row = (oy + dy) * w + ox;
                    let wrow = &self.weights[dy * s..(dy + 1) * s];
                    for (dx, &g) in wrow.iter().enumerate() {
                        let (a, b) = (x[row + dx] as f64, y[row + dx] as f64);
                        mx += g * a;
                        my += g * b;
                        xx += g * a * a;
                        yy += g * b * b;
                        xy += g * a * b;
                    }
                }
                let (vx, vy, cxy) = (xx - mx * mx, yy - my * my, xy - mx * my);
                total += (2.0 * mx * my + self.c1) * (2.0 * cxy + self.c2)
                    / ((mx * mx + my * my + self.c1) * (vx + vy + self.c2));
            }
        }
        total / ((h - s + 1) * (w - s + 1)) as f64
    }

    /// Mean SSIM over the `n` images (NCHW, `dims = (n, c, h, w)`) of `reference` and
    /// `estimate`: each plane's mean SSIM, averaged over channels and images.
    pub fn mean(
        &self,
        reference: &[f32],
        estimate: &[f32],
        (n, c, h, w): (usize, usize, usize, usize),
    ) -> Result<f64, EvalError> {
        let len = n * c * h * w;
        if n == 0 || c == 0 {
            return Err(EvalError::Shape("SSIM of no images".into()));
        }
        if reference.len() != len || estimate.len() != len {
            return Err(EvalError::Shape(format!(
                "SSIM: {} reference and {} estimate values for {n} images of {c} x {h} x {w}",
                reference.len(),
                estimate.len()
            )));
        }
        if h < self.side || w < self.side {
            return Err(EvalError::Shape(format!(
                "SSIM: images of {h} x {w} are smaller than the {0} x {0} window",
                self.side
            )));
        }
        if reference.iter().chain(estimate).any(|v| !v.is_finite()) {
            return Err(EvalError::NonFinite("SSIM input".into()));
        }
        let hw = h * w;
        let total: f64 = reference
            .chunks(hw)
            .zip(estimate.chunks(hw))
            .map(|(x, y)| self.plane(x, y, h, w))
            .sum();
        Ok(total / (n * c) as f64)
    }
}

impl Default for Ssim {
    fn default() -> Self {
        Self::gaussian()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_window_by_hand() {
        let s = Ssim::gaussian();
        assert_eq!(s.side(), 11);
        let w = s.weights();
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Neighbour of the centre: exp(-1 / (2 * 1.5^2)) of the centre weight.
        let centre = w[5 * 11 + 5];
        assert!((w[5 * 11 + 6] / centre - (-1.0f64 / 4.5).exp()).abs() < 1e-12);
        // Corner: exp(-(25 + 25) / 4.5).
        assert!((w[0] / centre - (-50.0f64 / 4.5).exp()).abs() < 1e-15);
        assert!(Ssim::uniform(4).is_err());
    }
}
