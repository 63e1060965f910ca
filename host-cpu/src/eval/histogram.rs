//! Histograms of values in a fixed range and their rendering as a bar chart PNG without text:
//! grey bars on white, a black x axis with a tick at every tenth of the range (every
//! `bins / 10` bins when that divides) and a black y axis with ticks at 0, 1/4, 1/2, 3/4 and 1
//! of the tallest bar. The legend (range, bin counts, what the ticks mean) belongs in a
//! sidecar JSON next to the image (see [`Histogram::legend`]).

use serde_json::json;

use super::EvalError;
use crate::io::png_grid::GridImage;

/// Pixels of the plot: bar width, plot height, margins, tick length.
pub const BAR_WIDTH: usize = 8;
pub const PLOT_HEIGHT: usize = 160;
pub const MARGIN: usize = 12;
pub const TICK: usize = 4;
/// Grey levels.
pub const BACKGROUND: u8 = 255;
pub const BAR: u8 = 110;
pub const AXIS: u8 = 0;

/// Counts of values in `bins` equal bins over `[lo, hi]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub lo: f64,
    pub hi: f64,
    pub counts: Vec<usize>,
}

impl Histogram {
    /// Bins `values` into `bins` bins of `[lo, hi]` (bin `k` holds `[lo + k w, lo + (k+1) w)`,
    /// the last also `hi`); values below `lo` count in the first bin, above `hi` in the last.
    pub fn new(values: &[f32], lo: f64, hi: f64, bins: usize) -> Result<Self, EvalError> {
        if bins == 0 || !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(EvalError::Invalid(format!(
                "histogram of {bins} bins over [{lo}, {hi}]"
            )));
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(EvalError::NonFinite("histogram values".into()));
        }
        let mut counts = vec![0usize; bins];
        for &v in values {
            let k = ((v as f64 - lo) / (hi - lo) * bins as f64).floor();
            counts[(k.max(0.0) as usize).min(bins - 1)] += 1;
        }
        Ok(Histogram { lo, hi, counts })
    }

    /// The bins' edges, `bins + 1` values from `lo` to `hi`.
    pub fn edges(&self) -> Vec<f64> {
        let b = self.counts.len();
        (0..=b)
            .map(|k| self.lo + (self.hi - self.lo) * k as f64 / b as f64)
            .collect()
    }

    /// The JSON legend of [`render_histogram`]'s image.
    pub fn legend(&self, what: &str) -> serde_json::Value {
        let max = self.counts.iter().copied().max().unwrap_or(0);
        json!({
            "what": what,
            "range": [self.lo, self.hi],
            "bin_edges": self.edges(),
            "counts": self.counts,
            "max_count": max,
            "x_ticks": "every tenth of the range, from its low end",
            "y_ticks": format!("0, 1/4, 1/2, 3/4 and 1 of the max count {max}"),
        })
    }
}

/// The bar chart of `h` as a grey image (see the module doc). Bar `k` occupies columns
/// `MARGIN + k BAR_WIDTH ..` (the last column of each bar left as background to separate
/// them) and is `round(count / max * PLOT_HEIGHT)` pixels tall, standing on the x axis at row
/// `MARGIN + PLOT_HEIGHT`.
pub fn render_histogram(h: &Histogram) -> GridImage {
    let bins = h.counts.len();
    let width = 2 * MARGIN + bins * BAR_WIDTH;
    let height = 2 * MARGIN + PLOT_HEIGHT;
    let mut px = vec![BACKGROUND; width * height];
    let axis_row = MARGIN + PLOT_HEIGHT;
    let max = h.counts.iter().copied().max().unwrap_or(0).max(1);
    let mut set = |y: usize, x: usize, v: u8| px[y * width + x] = v;
    for (k, &c) in h.counts.iter().enumerate() {
        let bar = ((c as f64 / max as f64) * PLOT_HEIGHT as f64).round() as usize;
        for x in MARGIN + k * BAR_WIDTH..MARGIN + (k + 1) * BAR_WIDTH - 1 {
            for y in axis_row - bar..axis_row {
                set(y, x, BAR);
            }
        }
    }
    // Axes: x along the bottom of the plot, y just left of the first bar.
    for x in MARGIN - 1..MARGIN + bins * BAR_WIDTH {
        set(axis_row, x, AXIS);
    }
    for y in MARGIN..=axis_row {
        set(y, MARGIN - 1, AXIS);
    }
    // x ticks at every tenth of the range.
    for t in 0..=10 {
        let x = MARGIN + (t * bins * BAR_WIDTH) / 10;
        let x = x.min(MARGIN + bins * BAR_WIDTH - 1);
        for y in axis_row + 1..=axis_row + TICK {
            set(y, x, AXIS);
        }
    }
    // y ticks at quarters of the tallest bar.
    for q in 0..=4 {
        let y = axis_row - (q * PLOT_HEIGHT) / 4;
        for x in MARGIN - 1 - TICK..MARGIN - 1 {
            set(y, x, AXIS);
        }
    }
    GridImage {
        width,
        height,
        channels: 1,
        pixels: px,
    }
}
