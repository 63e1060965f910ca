//! Total-variation inpainting minimises the smoothed TV energy: no higher than the sharp edge's
//! or harmonic inpainting's, and not lowered by small random changes of the missing pixels;
//! a diagonal edge through a hole, which harmonic inpainting blurs, stays sharp.

use ambient_core::AmbientRng;
use ambient_cpu::eval::inpaint::{inpaint_plane, Inpainting, SolverSettings};
use ambient_cpu::eval::tv_inpaint::{tv_energy, TV_EPSILON};

const TIGHT: SolverSettings = SolverSettings {
    tolerance: 1e-10,
    max_iterations: 100_000,
};

/// Energy the early stop may leave per missing pixel. Model: the result is within the last
/// round's largest move (the stopping rule's 1e-4) of the minimiser at every pixel, and
/// `|dE/du_p| <= 2 + sqrt 2 < 4` (pixel p enters its own term, with derivative at most
/// sqrt 2, and its left and upper neighbours' terms, at most 1 each), so at most 4e-4 per
/// pixel; plus the f32 rounding of the result (6e-8 of O(1) values, times the same 4).
const SLACK_PER_PIXEL: f64 = 4.0 * 1e-4 + 4.0 * 6e-8;

fn as_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[test]
fn no_higher_energy_than_the_sharp_edge() {
    // Top half -0.8, bottom half 0.8; columns 5..9 missing from top to bottom. The sharp
    // step is one candidate fill, so the minimiser's energy is at most the step's (up to the
    // stopping slack, as below); it is not the step itself (the smoothing moves it by some
    // eps next to the edge, see the module doc of tv_inpaint) but stays close to it.
    let (h, w) = (12, 14);
    let img: Vec<f32> = (0..h * w)
        .map(|p| if p / w < 6 { -0.8 } else { 0.8 })
        .collect();
    let mask: Vec<f32> = (0..h * w)
        .map(|p| !(5..9).contains(&(p % w)) as u8 as f32)
        .collect();
    let missing = mask.iter().filter(|&&m| m == 0.0).count() as f64;
    let (tv, conv) = inpaint_plane(&img, &mask, (h, w), Inpainting::TotalVariation, TIGHT).unwrap();
    let err = tv
        .iter()
        .zip(&img)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    eprintln!(
        "TV: {} rounds, {} CG iterations, max deviation from the step {err}",
        conv.outer_iterations, conv.iterations
    );
    let e_tv = tv_energy(&as_f64(&tv), (h, w), TV_EPSILON);
    let e_step = tv_energy(&as_f64(&img), (h, w), TV_EPSILON);
    assert!(
        e_tv <= e_step + SLACK_PER_PIXEL * missing,
        "{e_tv} > {e_step}"
    );
    // The edge stays in place: had it moved by a row, a pixel would be off by the jump 1.6.
    assert!(err < 0.5, "{err}");
}

#[test]
fn a_diagonal_edge_through_a_hole() {
    // Edge along x + y = 13 through a 6 x 6 hole in the middle: TV keeps the edge far
    // sharper than harmonic inpainting, measured by the energy and by the error.
    let (h, w) = (16, 16);
    let img: Vec<f32> = (0..h * w)
        .map(|p| if p / w + p % w < 16 { -0.8 } else { 0.8 })
        .collect();
    let mask: Vec<f32> = (0..h * w)
        .map(|p| !((5..11).contains(&(p / w)) && (5..11).contains(&(p % w))) as u8 as f32)
        .collect();
    let (tv, _) = inpaint_plane(&img, &mask, (h, w), Inpainting::TotalVariation, TIGHT).unwrap();
    let (harm, _) = inpaint_plane(&img, &mask, (h, w), Inpainting::Harmonic, TIGHT).unwrap();
    let e_tv = tv_energy(&as_f64(&tv), (h, w), TV_EPSILON);
    let e_harm = tv_energy(&as_f64(&harm), (h, w), TV_EPSILON);
    let mse = |u: &[f32]| {
        u.iter()
            .zip(&img)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
    };
    eprintln!(
        "energy TV {e_tv} harmonic {e_harm}; squared error TV {} harmonic {}",
        mse(&tv),
        mse(&harm)
    );
    assert!(e_tv < e_harm);
    // Harmonic inpainting blurs the edge across the hole; TV must remove most of that error.
    assert!(mse(&tv) < 0.25 * mse(&harm));
}

#[test]
fn the_result_is_a_local_minimum_of_the_energy() {
    // Random image, 40% missing. Small random changes of the missing pixels (size 1e-2)
    // must not lower the energy by more than the slack the early stop may leave.
    let (h, w) = (10, 10);
    let mut rng = AmbientRng::new(21);
    let img: Vec<f32> = (0..h * w)
        .map(|_| (0.5 * rng.normal()).clamp(-1.0, 1.0))
        .collect();
    let mask: Vec<f32> = (0..h * w)
        .map(|_| (!rng.bernoulli(0.4)) as u8 as f32)
        .collect();
    let missing = mask.iter().filter(|&&m| m == 0.0).count();
    let (tv, _) = inpaint_plane(&img, &mask, (h, w), Inpainting::TotalVariation, TIGHT).unwrap();
    let u = as_f64(&tv);
    let e0 = tv_energy(&u, (h, w), TV_EPSILON);
    let slack = SLACK_PER_PIXEL * missing as f64;
    for trial in 0..20 {
        let mut v = u.clone();
        for p in 0..h * w {
            if mask[p] == 0.0 {
                v[p] += 1e-2 * rng.normal() as f64;
            }
        }
        let e = tv_energy(&v, (h, w), TV_EPSILON);
        assert!(e > e0 - slack, "trial {trial}: {e} < {e0}");
    }
}
