//! Memorization statistics: top-1 cosine similarity by hand and against a brute-force f64
//! search across the block boundaries of the implementation (more than 64 queries, more than
//! 2048 references), quantiles and the fraction above a threshold by hand, the ink map, and
//! the histogram (bins by hand, bar heights and axes in the rendered PNG).

use ambient_core::AmbientRng;
use ambient_cpu::eval::histogram::{
    render_histogram, Histogram, AXIS, BAR, BAR_WIDTH, MARGIN, PLOT_HEIGHT, TICK,
};
use ambient_cpu::eval::memorization::{centred, column_mean, ink, similarity_stats, top1_cosine};

#[test]
fn top1_cosine_by_hand() {
    let refs = [1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0];
    let queries = [1.0f32, 0.1, 0.0, 2.0, 2.0, 0.0, 0.0, 0.0, 1.0];
    let got = top1_cosine(&queries, &refs, 3).unwrap();
    // (1, 0.1, 0): cos with e1 = 1 / sqrt(1.01) = 0.99504, with (1, 1, 0) 1.1 / sqrt(2.02).
    assert_eq!(got[0].1, 0);
    assert!((got[0].0 as f64 - 1.0 / 1.01f64.sqrt()).abs() < 1e-6);
    // (2, 2, 0) is a scaled copy of reference 2.
    assert_eq!(got[1].1, 2);
    assert!((got[1].0 - 1.0).abs() < 1e-6);
    // e3 is orthogonal to every reference.
    assert!(got[2].0.abs() < 1e-7);
    assert!(top1_cosine(&queries, &refs, 2).is_err());
    assert!(top1_cosine(&queries, &[], 3).is_err());
}

#[test]
fn top1_cosine_matches_brute_force_across_blocks() {
    let (nq, nr, d) = (70, 2100, 5);
    let mut rng = AmbientRng::new(7);
    let refs: Vec<f32> = (0..nr * d).map(|_| rng.normal()).collect();
    let mut queries: Vec<f32> = (0..nq * d).map(|_| rng.normal()).collect();
    // Query 66 copies reference 2090 (past the first reference block), scaled by 3.
    for k in 0..d {
        queries[66 * d + k] = 3.0 * refs[2090 * d + k];
    }
    let got = top1_cosine(&queries, &refs, d).unwrap();
    assert_eq!(got[66].1, 2090);
    let cos = |a: &[f32], b: &[f32]| {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        dot / (na * nb)
    };
    for (i, &(s, j)) in got.iter().enumerate() {
        let q = &queries[i * d..(i + 1) * d];
        let best = (0..nr)
            .map(|r| cos(q, &refs[r * d..(r + 1) * d]))
            .fold(f64::NEG_INFINITY, f64::max);
        // f32 dot products of 5 unit-vector terms: error a few 1e-7.
        assert!((s as f64 - best).abs() < 1e-5, "query {i}: {s} vs {best}");
        assert!((cos(q, &refs[j * d..(j + 1) * d]) - best).abs() < 1e-5);
    }
}

#[test]
fn quantiles_and_fraction_by_hand() {
    // Sorted 0.5, 0.9, 0.96, 0.97, 1.0: positions q (n - 1) = 0.2, 2, 3.8.
    let s = similarity_stats(&[1.0, 0.5, 0.97, 0.9, 0.96], 0.95).unwrap();
    assert!((s.q05 - (0.5 + 0.2 * 0.4)).abs() < 1e-7);
    assert!((s.q50 - 0.96).abs() < 1e-7);
    assert!((s.q95 - (0.97 + 0.8 * 0.03)).abs() < 1e-7);
    assert_eq!((s.count, s.max as f32), (5, 1.0));
    assert!((s.fraction_above - 0.6).abs() < 1e-12);
    assert!(similarity_stats(&[], 0.95).is_err());
    assert_eq!(ink(&[-1.0, 0.0, 1.0]), vec![0.0, 0.5, 1.0]);
}

#[test]
fn centring_by_hand() {
    // Rows (1, 2), (3, 6): column means (2, 4); centred rows (-1, -2), (1, 2).
    let rows = [1.0f32, 2.0, 3.0, 6.0];
    let mean = column_mean(&rows, 2).unwrap();
    assert_eq!(mean, vec![2.0, 4.0]);
    assert_eq!(centred(&rows, &mean), vec![-1.0, -2.0, 1.0, 2.0]);
    assert!(column_mean(&rows, 3).is_err());
    // Two positive vectors at cosine 0.98 become opposite once centred on their mean.
    let c = centred(&rows, &mean);
    let got = top1_cosine(&c[..2], &c[2..], 2).unwrap();
    assert!((got[0].0 + 1.0).abs() < 1e-6);
}

#[test]
fn histogram_bins_and_picture() {
    // 4 bins of [0, 1]: 0.1 | 0.3, 0.26, 0.4, 0.49 | - | 0.8, 1.0 (the end), -0.5 clamps low.
    let h = Histogram::new(&[0.1, 0.3, 0.26, 0.4, 0.49, 0.8, 1.0, -0.5], 0.0, 1.0, 4).unwrap();
    assert_eq!(h.counts, vec![2, 4, 0, 2]);
    assert_eq!(h.edges(), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    assert_eq!(h.legend("test")["max_count"], 4);
    let img = render_histogram(&h);
    assert_eq!(
        (img.width, img.height),
        (2 * MARGIN + 4 * BAR_WIDTH, 2 * MARGIN + PLOT_HEIGHT)
    );
    let at = |y: usize, x: usize| img.pixels[y * img.width + x];
    let axis = MARGIN + PLOT_HEIGHT;
    // Bar heights: count / 4 of the plot height: 80, 160, 0, 80 pixels.
    for (k, want) in [80usize, 160, 0, 80].into_iter().enumerate() {
        let x = MARGIN + k * BAR_WIDTH + 1;
        let tall = (0..axis).filter(|&y| at(y, x) == BAR).count();
        assert_eq!(tall, want, "bar {k}");
        if want > 0 {
            assert_eq!(at(axis - want, x), BAR);
            assert_ne!(at(axis - want - 1, x), BAR);
        }
        // The last column of each bar separates it from the next.
        assert_ne!(at(axis - 1, MARGIN + (k + 1) * BAR_WIDTH - 1), BAR);
    }
    // Axes and ticks.
    assert!((MARGIN..MARGIN + 4 * BAR_WIDTH).all(|x| at(axis, x) == AXIS));
    assert!((MARGIN..=axis).all(|y| at(y, MARGIN - 1) == AXIS));
    assert_eq!(at(axis + TICK, MARGIN), AXIS); // x tick at 0
    assert_eq!(at(axis + TICK, MARGIN + 2 * BAR_WIDTH), AXIS); // x tick at 0.5
    assert_eq!(at(axis - PLOT_HEIGHT / 2, MARGIN - 1 - TICK), AXIS); // y tick at half
    assert!(Histogram::new(&[0.5], 1.0, 0.0, 4).is_err());
    assert!(Histogram::new(&[f32::NAN], 0.0, 1.0, 4).is_err());
}
