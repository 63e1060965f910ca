//! Total-variation inpainting: the missing pixels minimise the smoothed isotropic total
//! variation (Rudin, Osher and Fatemi's) `E(u) = sum_p sqrt(dx_p^2 + dy_p^2 + eps^2)`, with
//! forward differences `dx_p = u(x+1, y) - u(x, y)`, `dy_p = u(x, y+1) - u(x, y)` (0 past the
//! last column or row), observed pixels fixed. Unlike harmonic inpainting it keeps edges
//! sharp: an edge through a hole costs its jump times its length, a blur across it more. The
//! smoothing makes `E` differentiable; near an edge its minimiser departs from the sharp edge
//! by a few `eps` (where the unsmoothed energy's subgradient would balance the edge's pull,
//! the smoothed one needs differences of order `eps`).
//!
//! Solver: lagged diffusivity (iteratively reweighted least squares). From the harmonic fill,
//! repeat: weights `w_p = 1 / sqrt(dx_p^2 + dy_p^2 + eps^2)` from the current image, then
//! minimise `sum_p w_p (dx_p^2 + dy_p^2)` over the missing pixels (a weighted harmonic
//! problem, pixel `p`'s weight on its two forward edges) by the conjugate gradients of
//! [`super::inpaint`]. Each round minimises a quadratic that majorises `E` (up to a constant
//! and a factor 2) and touches it at the current image (`sqrt` is concave), so `E` never
//! increases. We stop when no missing pixel moves by more than [`TV_TOLERANCE`] in a round.
//! `eps` = [`TV_EPSILON`] (0.01, about 1.3 grey levels of 255 in [-1, 1] units).

use super::inpaint::{solve_on_missing, Convergence, SolverSettings};
use super::EvalError;

/// The smoothing of the absolute value, in [-1, 1] units.
pub const TV_EPSILON: f64 = 1e-2;
/// Stop when no missing pixel moves more than this in a reweighting round.
pub const TV_TOLERANCE: f64 = 1e-4;
/// Give up (an error) after this many reweighting rounds.
pub const TV_MAX_ROUNDS: usize = 500;

/// The squared forward-difference gradient `dx_p^2 + dy_p^2` of every pixel.
fn gradient_sq(u: &[f64], (h, w): (usize, usize)) -> Vec<f64> {
    (0..h * w)
        .map(|p| {
            let (y, x) = (p / w, p % w);
            let dx = if x + 1 < w { u[p + 1] - u[p] } else { 0.0 };
            let dy = if y + 1 < h { u[p + w] - u[p] } else { 0.0 };
            dx * dx + dy * dy
        })
        .collect()
}

/// `E(u) = sum_p sqrt(dx_p^2 + dy_p^2 + eps^2)` of an `h x w` plane.
pub fn tv_energy(u: &[f64], (h, w): (usize, usize), eps: f64) -> f64 {
    assert_eq!(u.len(), h * w, "tv_energy: plane size");
    gradient_sq(u, (h, w))
        .iter()
        .map(|g| (g + eps * eps).sqrt())
        .sum()
}

/// Total-variation inpainting of one plane from the filled plane `start` (observed pixels
/// equal to `known`, which is zero at the missing ones). Returns the plane and the
/// convergence: CG iterations summed over the rounds, the last round's relative residual and
/// the number of rounds.
pub(crate) fn total_variation(
    known: &[f64],
    missing: &[bool],
    start: Vec<f64>,
    (h, w): (usize, usize),
    settings: SolverSettings,
) -> Result<(Vec<f64>, Convergence), EvalError> {
    let mut u = start;
    let mut conv = Convergence::default();
    let eps2 = TV_EPSILON * TV_EPSILON;
    for round in 1..=TV_MAX_ROUNDS {
        // Pixel p's weight, on its edges p -- p + 1 and p -- p + w.
        let wp: Vec<f64> = gradient_sq(&u, (h, w))
            .iter()
            .map(|g| 1.0 / (g + eps2).sqrt())
            .collect();
        let (wh, wv) = (&wp, &wp);
        let mut apply = |v: &[f64], out: &mut [f64]| {
            out.iter_mut().for_each(|o| *o = 0.0);
            for y in 0..h {
                for x in 0..w {
                    let p = y * w + x;
                    if x + 1 < w {
                        let f = wh[p] * (v[p] - v[p + 1]);
                        out[p] += f;
                        out[p + 1] -= f;
                    }
                    if y + 1 < h {
                        let f = wv[p] * (v[p] - v[p + w]);
                        out[p] += f;
                        out[p + w] -= f;
                    }
                }
            }
        };
        let (v, c) = solve_on_missing(known, missing, &u, &mut apply, settings)?;
        let mut change = 0.0f64;
        for p in 0..h * w {
            if missing[p] {
                change = change.max((v[p] - u[p]).abs());
                u[p] = v[p];
            }
        }
        conv.iterations += c.iterations;
        conv.relative_residual = c.relative_residual;
        conv.outer_iterations = round;
        if change <= TV_TOLERANCE {
            return Ok((u, conv));
        }
    }
    Err(EvalError::NotConverged {
        what: "total-variation inpainting (reweighting rounds)",
        iterations: TV_MAX_ROUNDS,
        residual: f64::NAN,
        tolerance: TV_TOLERANCE,
    })
}
