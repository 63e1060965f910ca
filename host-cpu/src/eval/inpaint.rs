//! Classical inpainting baselines for the same measurements the models see: harmonic,
//! biharmonic and total-variation inpainting (the last in [`super::tv_inpaint`], built on the
//! solver here). Observed pixels are kept; the missing ones solve
//!
//! - harmonic: `(L u)_p = 0` at every missing pixel `p` (each missing pixel is the mean of its
//!   4-neighbours), the minimiser of the Dirichlet energy `sum_edges (u_p - u_q)^2`;
//! - biharmonic: `(L^2 u)_p = 0` at every missing pixel, the minimiser of `sum_p (L u)_p^2`,
//!
//! where `L` is the graph Laplacian of the image's 4-neighbour grid,
//! `(L u)_p = sum_{q in N(p)} (u_q - u_p)` over the neighbours inside the image (so the image
//! border carries the natural zero-normal-derivative condition). Both systems, restricted to
//! the missing pixels, are symmetric positive definite as soon as one pixel of the plane is
//! observed (the null space of `L` is the constants), and are solved by conjugate gradients in
//! f64 from the mean of the observed pixels until the residual is at most `tolerance` times the
//! right-hand side (relative residual). Away from the border (a missing pixel whose
//! neighbours, and for biharmonic their neighbours, all lie inside the image) harmonic
//! inpainting reproduces affine images and biharmonic inpainting quadratic ones exactly.
//! Each channel plane is inpainted on its own.

use super::tv_inpaint::total_variation;
use super::EvalError;

/// Which equation the missing pixels solve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inpainting {
    /// `L u = 0` on the missing pixels.
    Harmonic,
    /// `L^2 u = 0` on the missing pixels.
    Biharmonic,
    /// Total variation (see [`super::tv_inpaint`]), started from the harmonic fill.
    TotalVariation,
}

impl Inpainting {
    /// "harmonic" or "biharmonic".
    pub fn name(&self) -> &'static str {
        match self {
            Inpainting::Harmonic => "harmonic",
            Inpainting::Biharmonic => "biharmonic",
            Inpainting::TotalVariation => "tv",
        }
    }
}

/// When the conjugate-gradient solver stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolverSettings {
    /// Stop when `||b - A x|| <= tolerance * ||b||`.
    pub tolerance: f64,
    /// Give up (an error) after this many iterations.
    pub max_iterations: usize,
}

impl Default for SolverSettings {
    /// Relative residual 1e-6 (far below a `u8` grey level, 1/127.5, in the solution) within
    /// 10 000 iterations.
    fn default() -> Self {
        SolverSettings {
            tolerance: 1e-6,
            max_iterations: 10_000,
        }
    }
}

/// How the solver converged on one plane (or the worst over many).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Convergence {
    /// Conjugate-gradient iterations (over all of total variation's linear solves).
    pub iterations: usize,
    /// Final `||b - A x|| / ||b||` (0 when nothing was missing or `b = 0`).
    pub relative_residual: f64,
    /// Total variation's reweighting iterations (0 for the linear methods).
    pub outer_iterations: usize,
}

/// `out <- L u` on an `h x w` grid (graph Laplacian, neighbours inside the image).
fn laplacian(u: &[f64], h: usize, w: usize, out: &mut [f64]) {
    for y in 0..h {
        for x in 0..w {
            let p = y * w + x;
            let mut s = 0.0;
            if y > 0 {
                s += u[p - w] - u[p];
            }
            if y + 1 < h {
                s += u[p + w] - u[p];
            }
            if x > 0 {
                s += u[p - 1] - u[p];
            }
            if x + 1 < w {
                s += u[p + 1] - u[p];
            }
            out[p] = s;
        }
    }
}

/// The positive semi-definite operator of `method` on the full grid: `-L u` or `L^2 u`.
struct Operator {
    method: Inpainting,
    h: usize,
    w: usize,
    tmp: Vec<f64>,
}

impl Operator {
    fn apply(&mut self, u: &[f64], out: &mut [f64]) {
        match self.method {
            Inpainting::Harmonic => {
                laplacian(u, self.h, self.w, out);
                out.iter_mut().for_each(|v| *v = -*v);
            }
            Inpainting::Biharmonic => {
                laplacian(u, self.h, self.w, &mut self.tmp);
                laplacian(&self.tmp, self.h, self.w, out);
            }
            // Total variation starts from the harmonic fill.
            Inpainting::TotalVariation => {
                laplacian(u, self.h, self.w, out);
                out.iter_mut().for_each(|v| *v = -*v);
            }
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Inpaints one `h x w` plane: `image` holds the observed values where `mask` is 1 (values
/// elsewhere are never read), `mask` is 0 or 1. Returns the plane and how CG converged.
pub fn inpaint_plane(
    image: &[f32],
    mask: &[f32],
    (h, w): (usize, usize),
    method: Inpainting,
    settings: SolverSettings,
) -> Result<(Vec<f32>, Convergence), EvalError> {
    if image.len() != h * w || mask.len() != h * w {
        return Err(EvalError::Shape(format!(
            "inpainting: {} pixels and {} mask values for a {h} x {w} plane",
            image.len(),
            mask.len()
        )));
    }
    if !(settings.tolerance.is_finite() && settings.tolerance > 0.0) {
        return Err(EvalError::Invalid(format!(
            "solver tolerance {} must be positive",
            settings.tolerance
        )));
    }
    let missing: Vec<bool> = mask.iter().map(|&m| m == 0.0).collect();
    let observed = missing.iter().filter(|&&m| !m).count();
    if observed == 0 {
        return Err(EvalError::Invalid(
            "inpainting needs at least one observed pixel per plane".into(),
        ));
    }
    let known: Vec<f64> = image
        .iter()
        .zip(&missing)
        .map(|(&v, &m)| if m { 0.0 } else { v as f64 })
        .collect();
    if known.iter().any(|v| !v.is_finite()) {
        return Err(EvalError::NonFinite("observed pixels to inpaint".into()));
    }
    let mut op = Operator {
        method,
        h,
        w,
        tmp: vec![0.0; h * w],
    };
    let mean = known.iter().sum::<f64>() / observed as f64;
    let start: Vec<f64> = missing
        .iter()
        .map(|&m| if m { mean } else { 0.0 })
        .collect();
    let (v, mut conv) = solve_on_missing(
        &known,
        &missing,
        &start,
        &mut |u, out| op.apply(u, out),
        settings,
    )?;
    if method == Inpainting::TotalVariation {
        let filled: Vec<f64> = known.iter().zip(&v).map(|(k, x)| k + x).collect();
        let (u, tv) = total_variation(&known, &missing, filled, (h, w), settings)?;
        conv = tv;
        return Ok((u.iter().map(|&x| x as f32).collect(), conv));
    }
    let out = known
        .iter()
        .zip(&v)
        .map(|(&k, &x)| (k + x) as f32)
        .collect();
    Ok((out, conv))
}

/// Solves `(A v)_p = -(A known)_p` at the missing pixels `p` for `v` (zero at observed
/// pixels) by conjugate gradients from `start` (zero at observed pixels), where `apply` is a
/// symmetric positive semi-definite operator on the full grid that is definite on the missing
/// pixels. Returns `v` and the convergence.
pub(crate) fn solve_on_missing(
    known: &[f64],
    missing: &[bool],
    start: &[f64],
    apply: &mut dyn FnMut(&[f64], &mut [f64]),
    settings: SolverSettings,
) -> Result<(Vec<f64>, Convergence), EvalError> {
    let len = known.len();
    let restrict = |v: &mut [f64]| {
        v.iter_mut()
            .zip(missing)
            .for_each(|(x, &m)| *x = if m { *x } else { 0.0 })
    };
    let mut b = vec![0.0; len];
    apply(known, &mut b);
    b.iter_mut().for_each(|v| *v = -*v);
    restrict(&mut b);
    let b_norm = dot(&b, &b).sqrt();
    let mut conv = Convergence::default();
    if b_norm == 0.0 {
        return Ok((vec![0.0; len], conv));
    }
    let mut v = start.to_vec();
    restrict(&mut v);
    let mut ap = vec![0.0; len];
    apply(&v, &mut ap);
    restrict(&mut ap);
    let mut r: Vec<f64> = b.iter().zip(&ap).map(|(b, a)| b - a).collect();
    let mut p = r.clone();
    let mut rr = dot(&r, &r);
    let target = settings.tolerance * b_norm;
    while rr.sqrt() > target {
        if conv.iterations == settings.max_iterations {
            return Err(EvalError::NotConverged {
                what: "conjugate-gradient inpainting",
                iterations: conv.iterations,
                residual: rr.sqrt() / b_norm,
                tolerance: settings.tolerance,
            });
        }
        apply(&p, &mut ap);
        restrict(&mut ap);
        let alpha = rr / dot(&p, &ap);
        v.iter_mut().zip(&p).for_each(|(x, p)| *x += alpha * p);
        r.iter_mut().zip(&ap).for_each(|(r, a)| *r -= alpha * a);
        let rr_new = dot(&r, &r);
        let beta = rr_new / rr;
        p.iter_mut().zip(&r).for_each(|(p, r)| *p = r + beta * *p);
        rr = rr_new;
        conv.iterations += 1;
    }
    conv.relative_residual = rr.sqrt() / b_norm;
    Ok((v, conv))
}

/// Inpaints `n` NCHW images (`dims = (n, c, h, w)`), plane by plane; returns the images and
/// the worst convergence (most iterations, largest residual) over the planes.
pub fn inpaint_images(
    measurements: &[f32],
    masks: &[f32],
    (n, c, h, w): (usize, usize, usize, usize),
    method: Inpainting,
    settings: SolverSettings,
) -> Result<(Vec<f32>, Convergence), EvalError> {
    let len = n * c * h * w;
    if measurements.len() != len || masks.len() != len {
        return Err(EvalError::Shape(format!(
            "inpainting: {} measurement and {} mask values for {n} images of {c} x {h} x {w}",
            measurements.len(),
            masks.len()
        )));
    }
    let mut out = Vec::with_capacity(len);
    let mut worst = Convergence::default();
    for (k, (y, a)) in measurements
        .chunks(h * w)
        .zip(masks.chunks(h * w))
        .enumerate()
    {
        let (plane, conv) = inpaint_plane(y, a, (h, w), method, settings).map_err(|e| match e {
            EvalError::Invalid(m) => EvalError::Invalid(format!("image {}: {m}", k / c)),
            other => other,
        })?;
        out.extend_from_slice(&plane);
        worst.iterations = worst.iterations.max(conv.iterations);
        worst.relative_residual = worst.relative_residual.max(conv.relative_residual);
        worst.outer_iterations = worst.outer_iterations.max(conv.outer_iterations);
    }
    Ok((out, worst))
}
