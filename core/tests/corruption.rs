//! The corruption families against their definitions: keep-rates within binomial bounds, box
//! geometry, row deletion, adjoint identities, the documented draw order, determinism, and
//! typed errors on bad input.

use ambient_core::corruption::{
    apply_pixel_mask, expand_pixel_mask, BoxInpainting, Corruption, GaussianMeasurements,
    MeasurementNoise, RandomInpainting,
};
use ambient_core::{AmbientRng, CoreError};

/// `|count - n q| <= 5 sqrt(n q (1 - q))`: a binomial count within 5 standard deviations of
/// its mean. For a single check the normal tail beyond 5 sigma is 5.7e-7; the file makes a
/// few hundred such checks, so a false failure has probability below 1e-3 (union bound), and
/// the seeds are fixed, so a pass is reproducible.
fn assert_binomial(what: &str, count: usize, n: usize, q: f64) {
    let mean = n as f64 * q;
    let sd = (n as f64 * q * (1.0 - q)).sqrt();
    let dev = (count as f64 - mean).abs();
    assert!(
        dev <= 5.0 * sd,
        "{what}: count {count} of {n}, expected {mean:.1} +- 5 * {sd:.1}"
    );
}

/// The erased pixels of a pixel mask (`H*W`, width `w`) that `keep` selects, as a bounding box
/// `(top, left, rows, cols)` and their count; `None` if there are none.
fn erased_box(
    mask: &[f32],
    w: usize,
    select: impl Fn(usize) -> bool,
) -> Option<((usize, usize, usize, usize), usize)> {
    let (mut top, mut left, mut bottom, mut right, mut count) = (usize::MAX, usize::MAX, 0, 0, 0);
    for (i, _) in mask.iter().enumerate().filter(|&(i, _)| select(i)) {
        let (r, c) = (i / w, i % w);
        top = top.min(r);
        left = left.min(c);
        bottom = bottom.max(r);
        right = right.max(c);
        count += 1;
    }
    (count > 0).then(|| ((top, left, bottom - top + 1, right - left + 1), count))
}

fn draw_pair<C: Corruption>(family: &C, rng: &mut AmbientRng) -> (Vec<f32>, Vec<f32>) {
    let mut a = vec![0.0; family.operator_len()];
    let mut a_tilde = vec![0.0; family.operator_len()];
    family.draw(rng, &mut a).unwrap();
    family.further_corrupt(&a, rng, &mut a_tilde).unwrap();
    (a, a_tilde)
}

// ---------------------------------------------------------------- random inpainting

#[test]
fn random_inpainting_keep_rates_within_binomial_bounds() {
    // Pixels are independent Bernoulli trials, so over N pixels the kept counts are binomial:
    // A keeps with 1 - p, A~ with (1 - p)(1 - delta), and among the pixels A keeps, A~ erases
    // with delta. (`bernoulli` rounds its probability to a multiple of 2^-32 and 1 - p is
    // rounded to f32: both shift the mean by < 1e-7 * N, far inside 5 sigma.)
    for &(p, delta) in &[(0.3f32, 0.4f32), (0.8, 0.1), (0.05, 0.9), (0.5, 0.5)] {
        let family = RandomInpainting::new(1, 32, 32, p, delta).unwrap();
        let mut rng = AmbientRng::new(11);
        let (mut n, mut kept_a, mut kept_at) = (0, 0, 0);
        for _ in 0..200 {
            let (a, at) = draw_pair(&family, &mut rng);
            for (&x, &y) in a.iter().zip(&at) {
                assert!(x == 0.0 || x == 1.0, "A is a 0/1 mask");
                assert!(y <= x, "A~ keeps only pixels that A keeps");
                kept_a += (x == 1.0) as usize;
                kept_at += (y == 1.0) as usize;
            }
            n += a.len();
        }
        let (p, delta) = (p as f64, delta as f64);
        assert_binomial("A keeps", kept_a, n, 1.0 - p);
        assert_binomial("A~ keeps", kept_at, n, (1.0 - p) * (1.0 - delta));
        assert_binomial("A~ erases of A's kept", kept_a - kept_at, kept_a, delta);
    }
}

#[test]
fn random_inpainting_extreme_probabilities_are_exact() {
    let mut rng = AmbientRng::new(5);
    let all = RandomInpainting::new(2, 5, 7, 0.0, 0.0).unwrap();
    let (a, at) = draw_pair(&all, &mut rng);
    assert!(
        a.iter().chain(&at).all(|&v| v == 1.0),
        "p = 0, delta = 0 keeps all"
    );
    let none = RandomInpainting::new(2, 5, 7, 1.0, 0.5).unwrap();
    let (a, at) = draw_pair(&none, &mut rng);
    assert!(a.iter().chain(&at).all(|&v| v == 0.0), "p = 1 erases all");
    let naive = RandomInpainting::new(1, 9, 9, 0.5, 0.0).unwrap();
    let (a, at) = draw_pair(&naive, &mut rng);
    assert_eq!(a, at, "delta = 0 is the naive baseline A~ = A");
    let total = RandomInpainting::new(1, 9, 9, 0.5, 1.0).unwrap();
    let (_, at) = draw_pair(&total, &mut rng);
    assert!(
        at.iter().all(|&v| v == 0.0),
        "delta = 1 erases every survivor"
    );
}

#[test]
fn random_inpainting_follows_documented_draw_order() {
    // The module doc: A: one bernoulli(1 - p) per pixel in raster order, true = keep;
    // A~: one bernoulli(delta) per pixel whether or not A kept it, true = erase.
    let family = RandomInpainting::new(3, 6, 5, 0.35, 0.6).unwrap();
    let mut rng = AmbientRng::new(2024);
    let mut reference = rng.clone();
    let (a, at) = draw_pair(&family, &mut rng);
    let expect_a: Vec<f32> = (0..30)
        .map(|_| reference.bernoulli(1.0 - 0.35) as u8 as f32)
        .collect();
    let expect_at: Vec<f32> = expect_a
        .iter()
        .map(|&k| {
            let erase = reference.bernoulli(0.6);
            (k == 1.0 && !erase) as u8 as f32
        })
        .collect();
    assert_eq!(a, expect_a);
    assert_eq!(at, expect_at);
    assert_eq!(rng, reference, "exactly 2 H W draws consumed");
}

#[test]
fn pixel_masks_act_on_every_channel() {
    // 2 x 3 image, 2 channels, mask keeps pixels 0, 2, 5.
    let mask = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0];
    let mut image_mask = [9.0f32; 12];
    expand_pixel_mask(2, &mask, &mut image_mask).unwrap();
    assert_eq!(image_mask, [1., 0., 1., 0., 0., 1., 1., 0., 1., 0., 0., 1.]);
    let x: Vec<f32> = (1..=12).map(|v| v as f32).collect();
    let family = RandomInpainting::new(2, 2, 3, 0.5, 0.5).unwrap();
    let mut y = [f32::NAN; 12];
    family.apply(&mask, &x, &mut y).unwrap();
    assert_eq!(y, [1., 0., 3., 0., 0., 6., 7., 0., 9., 0., 0., 12.]);
    let mut back = [f32::NAN; 12];
    family.adjoint(&mask, &y, &mut back).unwrap();
    assert_eq!(
        back, y,
        "a 0/1 mask is an orthogonal projection: A^T A x = A x"
    );
    assert_eq!(
        expand_pixel_mask(3, &mask, &mut image_mask),
        Err(CoreError::ShapeMismatch {
            what: "image-shaped mask",
            expected: 18,
            got: 12
        })
    );
    assert!(matches!(
        apply_pixel_mask(2, &mask, &x[..11], &mut y),
        Err(CoreError::ShapeMismatch { .. })
    ));
}

// ---------------------------------------------------------------- box inpainting

/// (h, w, side) for which every first square leaves room for a second (h or w >= 3 side - 1).
const BOX_SIZES: [(usize, usize, usize); 6] = [
    (8, 8, 2),
    (28, 28, 9),
    (10, 6, 3),
    (6, 17, 4),
    (5, 5, 1),
    (32, 32, 11),
];

#[test]
fn boxes_stay_inside_never_overlap_and_erase_side_squared() {
    for &(h, w, side) in &BOX_SIZES {
        let family = BoxInpainting::new(2, h, w, side).unwrap();
        assert!(family.further_corruption_always_possible());
        for seed in 0..300 {
            let mut rng = AmbientRng::new(seed);
            let (a, at) = draw_pair(&family, &mut rng);
            // First square: its zeros span exactly side x side (in row/column coordinates,
            // so a square wrapping around a row end would fail) and number side^2.
            let (bbox, count) = erased_box(&a, w, |i| a[i] == 0.0).unwrap();
            assert_eq!(count, side * side, "{h}x{w} side {side} seed {seed}");
            assert_eq!((bbox.2, bbox.3), (side, side));
            assert!(bbox.0 + side <= h && bbox.1 + side <= w);
            // Second square: the pixels A~ erases that A kept; if it overlapped the first it
            // would contribute fewer than side^2 new zeros.
            assert!(
                at.iter().zip(&a).all(|(&t, &x)| t <= x),
                "A~ erases all A erases"
            );
            let (bbox2, count2) = erased_box(&at, w, |i| a[i] == 1.0 && at[i] == 0.0).unwrap();
            assert_eq!(count2, side * side, "{h}x{w} side {side} seed {seed}");
            assert_eq!((bbox2.2, bbox2.3), (side, side));
            assert!(bbox2.0 + side <= h && bbox2.1 + side <= w);
            assert!(at.iter().all(|&v| v == 0.0 || v == 1.0));
        }
    }
}

#[test]
fn box_placements_are_uniform() {
    // First square, 4x4 image, side 2: 3 x 3 = 9 placements, each with probability 1/9.
    let family = BoxInpainting::new(1, 4, 4, 2).unwrap();
    let mut rng = AmbientRng::new(77);
    let mut counts = [0usize; 9];
    let n = 18_000;
    let mut a = [0.0f32; 16];
    for _ in 0..n {
        family.draw(&mut rng, &mut a).unwrap();
        let first = a.iter().position(|&v| v == 0.0).unwrap();
        counts[(first / 4) * 3 + first % 4] += 1;
    }
    for (k, &c) in counts.iter().enumerate() {
        assert_binomial(&format!("placement {k}"), c, n, 1.0 / 9.0);
    }

    // Second square given the first at (0, 0), 5x5 image, side 2: tops and lefts 0..=3, 16
    // placements; those with top < 2 and left < 2 overlap (|t - 0| < 2 and |l - 0| < 2), so
    // 12 remain, each with probability 1/12.
    let family = BoxInpainting::new(1, 5, 5, 2).unwrap();
    let mut a = [1.0f32; 25];
    for i in [0, 1, 5, 6] {
        a[i] = 0.0;
    }
    let mut at = [0.0f32; 25];
    let mut counts = [0usize; 16];
    let n = 24_000;
    for _ in 0..n {
        family.further_corrupt(&a, &mut rng, &mut at).unwrap();
        let second = (0..25).find(|&i| a[i] == 1.0 && at[i] == 0.0).unwrap();
        let (t, l) = (second / 5, second % 5);
        // The first new zero in raster order is the top-left corner unless the square's top
        // row is hidden by the first square, which cannot happen for a non-overlapping one.
        counts[t * 4 + l] += 1;
    }
    for (k, &c) in counts.iter().enumerate() {
        if k / 4 < 2 && k % 4 < 2 {
            assert_eq!(c, 0, "placement {k} overlaps the first square");
        } else {
            assert_binomial(&format!("second placement {k}"), c, n, 1.0 / 12.0);
        }
    }
}

#[test]
fn box_follows_documented_draw_order() {
    // draw: k = below(rows * cols), square at (k / cols, k % cols). further: k = below(F), the
    // k-th non-overlapping placement in raster order.
    let (h, w, side) = (9, 7, 3);
    let family = BoxInpainting::new(1, h, w, side).unwrap();
    let (rows, cols) = (h - side + 1, w - side + 1);
    for seed in 0..50 {
        let mut rng = AmbientRng::new(seed);
        let mut reference = rng.clone();
        let (a, at) = draw_pair(&family, &mut rng);
        let k = reference.below((rows * cols) as u32) as usize;
        let first = (k / cols, k % cols);
        let free: Vec<(usize, usize)> = (0..rows)
            .flat_map(|t| (0..cols).map(move |l| (t, l)))
            .filter(|&(t, l)| t.abs_diff(first.0) >= side || l.abs_diff(first.1) >= side)
            .collect();
        let second = free[reference.below(free.len() as u32) as usize];
        let inside = |(t, l): (usize, usize), i: usize| {
            (t..t + side).contains(&(i / w)) && (l..l + side).contains(&(i % w))
        };
        for i in 0..h * w {
            assert_eq!(a[i] == 0.0, inside(first, i), "A pixel {i} seed {seed}");
            assert_eq!(
                at[i] == 0.0,
                inside(first, i) || inside(second, i),
                "A~ pixel {i} seed {seed}"
            );
        }
        assert_eq!(rng, reference);
    }
}

#[test]
fn box_error_when_no_second_placement_exists() {
    // 3x3, side 2: every 2x2 square contains the centre pixel, so no two are disjoint.
    let family = BoxInpainting::new(1, 3, 3, 2).unwrap();
    assert!(!family.further_corruption_always_possible());
    for seed in 0..20 {
        let mut rng = AmbientRng::new(seed);
        let mut a = [0.0f32; 9];
        family.draw(&mut rng, &mut a).unwrap();
        let before = rng.clone();
        let mut at = [0.0f32; 9];
        assert!(matches!(
            family.further_corrupt(&a, &mut rng, &mut at),
            Err(CoreError::InvalidParameter(_))
        ));
        assert_eq!(rng, before, "a failed further corruption draws nothing");
    }
    // 4x4, side 2: a square at (1, 1) overlaps all 9 placements (|t - 1| <= 1 for t in 0..=2);
    // a square at (0, 0) leaves 5 placements (top 2 or left 2), so A~ erases 8 pixels.
    let family = BoxInpainting::new(1, 4, 4, 2).unwrap();
    let square = |t: usize, l: usize| -> Vec<f32> {
        (0..16)
            .map(|i| !((t..t + 2).contains(&(i / 4)) && (l..l + 2).contains(&(i % 4))) as u8 as f32)
            .collect()
    };
    let mut rng = AmbientRng::new(1);
    let mut at = [0.0f32; 16];
    assert!(family
        .further_corrupt(&square(1, 1), &mut rng, &mut at)
        .is_err());
    family
        .further_corrupt(&square(0, 0), &mut rng, &mut at)
        .unwrap();
    assert_eq!(at.iter().filter(|&&v| v == 0.0).count(), 8);
}

#[test]
fn further_corruption_always_possible_matches_exhaustive_search() {
    // For every small image and side, try every first square: further corruption succeeds for
    // all of them exactly when `further_corruption_always_possible` says so.
    for h in 1..=8 {
        for w in 1..=8 {
            for side in 1..=h.min(w) {
                let family = BoxInpainting::new(1, h, w, side).unwrap();
                let mut all_ok = true;
                for t in 0..=h - side {
                    for l in 0..=w - side {
                        let mut a = vec![1.0f32; h * w];
                        for r in t..t + side {
                            a[r * w + l..r * w + l + side].fill(0.0);
                        }
                        let mut at = vec![0.0f32; h * w];
                        let mut rng = AmbientRng::new((t * 8 + l) as u64);
                        all_ok &= family.further_corrupt(&a, &mut rng, &mut at).is_ok();
                    }
                }
                assert_eq!(
                    family.further_corruption_always_possible(),
                    all_ok,
                    "h {h} w {w} side {side}"
                );
            }
        }
    }
}

#[test]
fn box_rejects_operators_that_are_not_one_square() {
    let family = BoxInpainting::new(1, 6, 6, 2).unwrap();
    let mut rng = AmbientRng::new(3);
    let mut at = [0.0f32; 36];
    let mut bad = [1.0f32; 36];
    assert!(
        family.further_corrupt(&bad, &mut rng, &mut at).is_err(),
        "no square"
    );
    for i in [0, 1, 6, 7, 20] {
        bad[i] = 0.0;
    }
    assert!(
        family.further_corrupt(&bad, &mut rng, &mut at).is_err(),
        "extra zero"
    );
    bad[20] = 1.0;
    bad[3] = 0.5;
    assert!(
        family.further_corrupt(&bad, &mut rng, &mut at).is_err(),
        "not 0/1"
    );
    // A square at the right edge, (0, 4), is fine; four zeros at (0, 5), (1, 0), (1, 5),
    // (2, 0) are side^2 zeros in raster positions 5, 6, 11, 12 but a square wrapping a row end.
    let mut wrapped = [1.0f32; 36];
    for i in [4, 5, 10, 11] {
        wrapped[i] = 0.0;
    }
    family.further_corrupt(&wrapped, &mut rng, &mut at).unwrap();
    let mut wrapping = [1.0f32; 36];
    for i in [5, 6, 11, 12] {
        wrapping[i] = 0.0;
    }
    assert!(
        family
            .further_corrupt(&wrapping, &mut rng, &mut at)
            .is_err(),
        "wraps a row"
    );
}

// ---------------------------------------------------------------- Gaussian measurements

#[test]
fn row_deletion_zeroes_exactly_one_uniform_row() {
    let (n, m) = (7, 5);
    let family = GaussianMeasurements::new(n, m).unwrap();
    let mut rng = AmbientRng::new(99);
    let trials = 20_000;
    let mut counts = [0usize; 5];
    for _ in 0..trials {
        let (a, at) = draw_pair(&family, &mut rng);
        let mut deleted = None;
        for (i, (ra, rt)) in a.chunks(n).zip(at.chunks(n)).enumerate() {
            if rt.iter().all(|&v| v == 0.0) {
                // A's entries are continuous, so a row of A is zero with probability 0.
                assert!(ra.iter().any(|&v| v != 0.0));
                assert!(deleted.replace(i).is_none(), "two rows deleted");
            } else {
                assert_eq!(ra, rt, "kept rows are A's rows");
            }
        }
        counts[deleted.expect("one row deleted")] += 1;
    }
    for (r, &c) in counts.iter().enumerate() {
        assert_binomial(&format!("row {r}"), c, trials, 1.0 / m as f64);
    }
}

#[test]
fn gaussian_follows_documented_draw_order() {
    let family = GaussianMeasurements::new(5, 3).unwrap();
    let mut rng = AmbientRng::new(8);
    let mut reference = rng.clone();
    let (a, at) = draw_pair(&family, &mut rng);
    let expect: Vec<f32> = (0..15).map(|_| reference.normal()).collect();
    assert_eq!(a, expect);
    let r = reference.below(3) as usize;
    let mut expect_t = expect.clone();
    expect_t[r * 5..r * 5 + 5].fill(0.0);
    assert_eq!(at, expect_t);
    assert_eq!(rng, reference);
}

#[test]
fn gaussian_apply_matches_hand_computed_product() {
    // A = [[1, 2, 3], [-1, 0, 0.5]], x = [1, -1, 2]: A x = [1 - 2 + 6, -1 + 1] = [5, 0];
    // A^T [1, 2] = [1 - 2, 2, 3 + 1] = [-1, 2, 4]. Small integers and halves: exact in f32.
    let family = GaussianMeasurements::new(3, 2).unwrap();
    let a = [1.0, 2.0, 3.0, -1.0, 0.0, 0.5];
    let mut y = [0.0f32; 2];
    family.apply(&a, &[1.0, -1.0, 2.0], &mut y).unwrap();
    assert_eq!(y, [5.0, 0.0]);
    let mut x = [f32::NAN; 3];
    family.adjoint(&a, &[1.0, 2.0], &mut x).unwrap();
    assert_eq!(x, [-1.0, 2.0, 4.0]);
}

// ---------------------------------------------------------------- adjoint identities

/// `<A x, y>` and `<x, A^T y>` in f64 from the f32 results of `apply` and `adjoint`.
fn adjoint_sides<C: Corruption>(family: &C, op: &[f32], x: &[f32], y: &[f32]) -> (f64, f64) {
    let mut ax = vec![0.0f32; family.measurement_len()];
    let mut aty = vec![0.0f32; family.image_len()];
    family.apply(op, x, &mut ax).unwrap();
    family.adjoint(op, y, &mut aty).unwrap();
    let dot = |u: &[f32], v: &[f32]| u.iter().zip(v).map(|(&a, &b)| a as f64 * b as f64).sum();
    (dot(&ax, y), dot(x, &aty))
}

fn random_vec(rng: &mut AmbientRng, len: usize) -> Vec<f32> {
    let mut v = vec![0.0; len];
    rng.fill_normal(&mut v);
    v
}

#[test]
fn adjoint_identity_holds_for_masks_exactly() {
    // A pixel mask multiplies by 0 or 1, which is exact in f32, and the f64 products of f32
    // values are exact, so both sides sum the same terms in the same order: equal bit for bit.
    let mut rng = AmbientRng::new(4);
    let random = RandomInpainting::new(3, 9, 11, 0.4, 0.3).unwrap();
    let boxes = BoxInpainting::new(3, 9, 11, 3).unwrap();
    for _ in 0..20 {
        let x = random_vec(&mut rng, random.image_len());
        let y = random_vec(&mut rng, random.measurement_len());
        let (a, at) = draw_pair(&random, &mut rng);
        for op in [&a, &at] {
            let (l, r) = adjoint_sides(&random, op, &x, &y);
            assert_eq!(l, r);
        }
        let (a, at) = draw_pair(&boxes, &mut rng);
        for op in [&a, &at] {
            let (l, r) = adjoint_sides(&boxes, op, &x, &y);
            assert_eq!(l, r);
        }
    }
}

#[test]
fn adjoint_identity_holds_for_gaussian_within_rounding() {
    // apply sums n products in f32: each entry of the computed A x differs from the exact one
    // by at most gamma_n sum_j |A_ij x_j| (Higham, Accuracy and Stability, 3.1), with
    // gamma_k = k u / (1 - k u), u = 2^-24; adjoint likewise with gamma_m. The dots are taken
    // in f64 from f32 values (error ~1e-16 relative, bounded by the slack term), so
    // |<A x, y> - <x, A^T y>| <= (gamma_n + gamma_m) S + 1e-12 S, S = sum_ij |y_i A_ij x_j|.
    let gamma = |k: usize| {
        let ku = k as f64 * f64::powi(2.0, -24);
        ku / (1.0 - ku)
    };
    let mut rng = AmbientRng::new(31);
    for &(n, m) in &[(5usize, 5usize), (64, 32), (784, 200), (100, 1)] {
        let family = GaussianMeasurements::new(n, m).unwrap();
        for _ in 0..5 {
            let (a, at) = draw_pair(&family, &mut rng);
            let x = random_vec(&mut rng, n);
            let y = random_vec(&mut rng, m);
            for op in [&a, &at] {
                let (l, r) = adjoint_sides(&family, op, &x, &y);
                let s: f64 = (0..m)
                    .flat_map(|i| (0..n).map(move |j| (i, j)))
                    .map(|(i, j)| (y[i] as f64 * op[i * n + j] as f64 * x[j] as f64).abs())
                    .sum();
                let bound = (gamma(n) + gamma(m) + 1e-12) * s;
                assert!(
                    (l - r).abs() <= bound,
                    "n {n} m {m}: {l} vs {r}, bound {bound}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------- determinism

fn assert_deterministic<C: Corruption>(make: impl Fn() -> C) {
    let (f1, f2) = (make(), make());
    let pair = |f: &C, seed| draw_pair(f, &mut AmbientRng::new(seed));
    assert_eq!(pair(&f1, 5), pair(&f2, 5), "operators built alike agree");
    assert_eq!(pair(&f1, 5), pair(&f1, 5), "same seed, same operators");
    assert_ne!(pair(&f1, 5), pair(&f1, 6), "different seeds differ");
}

#[test]
fn same_seed_same_operators_different_seeds_differ() {
    // Two different seeds could draw equal operators by chance: for 28x28 random inpainting at
    // p = 0.5 with probability 2^-784; for 28x28 boxes of side 5 (576 placements, then a
    // second draw) well under 1/576 for the chosen pair (checked once, fixed seeds); for a
    // Gaussian matrix never (continuous).
    assert_deterministic(|| RandomInpainting::new(1, 28, 28, 0.5, 0.3).unwrap());
    assert_deterministic(|| BoxInpainting::new(3, 28, 28, 5).unwrap());
    assert_deterministic(|| GaussianMeasurements::new(50, 20).unwrap());
}

// ---------------------------------------------------------------- errors

#[test]
fn invalid_parameters_are_rejected() {
    let invalid = |r: Result<(), CoreError>| matches!(r, Err(CoreError::InvalidParameter(_)));
    let ri = |c, h, w, p, d| RandomInpainting::new(c, h, w, p, d).map(|_| ());
    assert!(invalid(ri(1, 4, 4, -0.1, 0.2)));
    assert!(invalid(ri(1, 4, 4, 1.1, 0.2)));
    assert!(invalid(ri(1, 4, 4, f32::NAN, 0.2)));
    assert!(invalid(ri(1, 4, 4, 0.5, 1.5)));
    assert!(invalid(ri(1, 4, 4, 0.5, f32::INFINITY)));
    assert!(invalid(ri(0, 4, 4, 0.5, 0.5)));
    assert!(invalid(ri(1, 0, 4, 0.5, 0.5)));
    assert!(
        invalid(ri(1, 1 << 20, 1 << 20, 0.5, 0.5)),
        "h * w beyond u32"
    );
    assert!(ri(1, 4, 4, 0.0, 1.0).is_ok());
    let bi = |h, w, s| BoxInpainting::new(1, h, w, s).map(|_| ());
    assert!(invalid(bi(8, 8, 0)));
    assert!(invalid(bi(8, 8, 9)));
    assert!(invalid(bi(8, 4, 5)), "box wider than the image");
    assert!(bi(8, 4, 4).is_ok());
    let gm = |n, m| GaussianMeasurements::new(n, m).map(|_| ());
    assert!(invalid(gm(4, 5)), "m > n");
    assert!(invalid(gm(0, 0)));
    assert!(invalid(gm(4, 0)));
    assert!(gm(4, 4).is_ok());
    assert!(invalid(MeasurementNoise::new(Some(-1.0)).map(|_| ())));
    assert!(matches!(
        MeasurementNoise::new(Some(f32::NAN)),
        Err(CoreError::NonFinite(_))
    ));
    let mut rng = AmbientRng::new(0);
    let family = RandomInpainting::new(1, 2, 2, 0.5, 0.5).unwrap();
    let mut at = [0.0f32; 4];
    assert!(invalid(family.further_corrupt(
        &[1.0, 0.0, 2.0, 1.0],
        &mut rng,
        &mut at
    )));
}

#[test]
fn wrong_buffer_lengths_are_shape_mismatches() {
    fn check<C: Corruption>(f: &C) {
        let mismatch = |r: Result<(), CoreError>| matches!(r, Err(CoreError::ShapeMismatch { .. }));
        let mut rng = AmbientRng::new(0);
        let (ol, il, ml) = (f.operator_len(), f.image_len(), f.measurement_len());
        let (mut op, mut img, mut meas) = (vec![1.0; ol], vec![0.0; il], vec![0.0; ml]);
        let mut short = vec![1.0; ol - 1];
        assert!(mismatch(f.draw(&mut rng, &mut short)));
        assert!(mismatch(f.further_corrupt(
            &short,
            &mut rng,
            &mut op.clone()
        )));
        assert!(mismatch(f.further_corrupt(
            &op.clone(),
            &mut rng,
            &mut short
        )));
        assert!(mismatch(f.apply(&short, &img, &mut meas)));
        assert!(mismatch(f.apply(&op, &img[..il - 1], &mut meas)));
        assert!(mismatch(f.apply(&op, &img, &mut meas[..ml - 1])));
        assert!(mismatch(f.adjoint(&op, &meas[..ml - 1], &mut img)));
        assert!(mismatch(f.adjoint(&op, &meas, &mut img[..il - 1])));
        f.draw(&mut rng, &mut op).unwrap();
        f.apply(&op, &img, &mut meas).unwrap();
    }
    check(&RandomInpainting::new(2, 3, 4, 0.5, 0.5).unwrap());
    check(&BoxInpainting::new(2, 3, 4, 2).unwrap());
    check(&GaussianMeasurements::new(6, 4).unwrap());
    let family = RandomInpainting::new(2, 3, 4, 0.5, 0.5).unwrap();
    assert_eq!(
        (
            family.image_len(),
            family.operator_len(),
            family.measurement_len()
        ),
        (24, 12, 24)
    );
    let family = GaussianMeasurements::new(6, 4).unwrap();
    assert_eq!(
        (
            family.image_len(),
            family.operator_len(),
            family.measurement_len()
        ),
        (6, 24, 4)
    );
}

// ---------------------------------------------------------------- measurement noise

#[test]
fn measurement_noise_adds_sigma_n_times_the_documented_normals() {
    let y0 = [1.0f32, -2.0, 0.0, 0.5, 3.0];
    let mut rng = AmbientRng::new(12);
    let mut y = y0;
    MeasurementNoise::noiseless().add_noise(&mut rng, &mut y);
    assert_eq!(y, y0);
    assert_eq!(rng, AmbientRng::new(12), "noiseless draws nothing");

    let noise = MeasurementNoise::new(Some(0.25)).unwrap();
    assert_eq!(noise.sigma_n(), Some(0.25));
    let mut reference = rng.clone();
    noise.add_noise(&mut rng, &mut y);
    for (k, (&v, &v0)) in y.iter().zip(&y0).enumerate() {
        assert_eq!(v, v0 + 0.25 * reference.normal(), "entry {k}");
    }

    // Masked: entries where the mask is 0 stay as they were (0 for a missing pixel); the
    // normals for them are drawn and discarded.
    let mask = [1.0f32, 0.0, 0.0, 1.0, 1.0];
    let mut y = [1.0f32, 0.0, 0.0, 0.5, 3.0];
    let mut reference = rng.clone();
    noise.add_noise_masked(&mut rng, &mask, &mut y).unwrap();
    let expect: Vec<f32> = [1.0f32, 0.0, 0.0, 0.5, 3.0]
        .iter()
        .zip(&mask)
        .map(|(&v, &m)| {
            let eta = reference.normal();
            if m != 0.0 {
                v + 0.25 * eta
            } else {
                v
            }
        })
        .collect();
    assert_eq!(y.to_vec(), expect);
    assert_eq!(rng, reference);
    assert!(noise
        .add_noise_masked(&mut rng, &mask[..4], &mut y)
        .is_err());
}
