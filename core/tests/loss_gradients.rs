//! The training losses against an independent f64 reference of the spec's formula
//! (docs/ambient-unet-spec.md, "Training objective"): values, gradients by central finite
//! differences of that reference, the weight by hand, the loss's blindness to `x0` where `A`
//! erased a pixel, and the typed errors.

use ambient_core::loss::{ambient_loss, ambient_weight, clean_loss, naive_loss};
use ambient_core::sigma::LogNormalSigma;
use ambient_core::{AmbientRng, CoreError, Shape, SliceTensor};

const SD: f32 = 0.5;

fn t(shape: Shape, data: &mut [f32]) -> SliceTensor<'_> {
    SliceTensor::new(shape, data).unwrap()
}

/// A random batch: denoiser output `d`, clean `x0`, data mask `a` (keep 0.6), further
/// corrupted `at` (each kept pixel erased again with probability 0.3), per-sample sigmas.
/// Masks are per pixel, shared by the channels, as in the spec.
struct Batch {
    d: Vec<f32>,
    x0: Vec<f32>,
    a: Vec<f32>,
    at: Vec<f32>,
    sigmas: Vec<f32>,
}

impl Batch {
    fn random(seed: u64, shape: Shape) -> Batch {
        let mut rng = AmbientRng::new(seed);
        let len = shape.len();
        let mut d = vec![0.0; len];
        let mut x0 = vec![0.0; len];
        rng.fill_normal(&mut d);
        rng.fill_normal(&mut x0);
        let (mut a, mut at) = (vec![0.0; len], vec![0.0; len]);
        let plane = shape.h * shape.w;
        for n in 0..shape.n {
            for p in 0..plane {
                let keep = rng.bernoulli(0.6);
                let keep_tilde = keep && !rng.bernoulli(0.3);
                for c in 0..shape.c {
                    let i = n * shape.sample_len() + c * plane + p;
                    a[i] = keep as u8 as f32;
                    at[i] = keep_tilde as u8 as f32;
                }
            }
        }
        let mut sigmas = vec![0.0; shape.n];
        LogNormalSigma::default().fill(&mut rng, &mut sigmas);
        Batch {
            d,
            x0,
            a,
            at,
            sigmas,
        }
    }

    /// `A x0`: what the training data holds.
    fn x0_measured(&self) -> Vec<f32> {
        self.x0.iter().zip(&self.a).map(|(x, a)| x * a).collect()
    }
}

/// The spec's loss in f64, written from the formula, not from the code under test:
/// `mean_n sum w (D - x0)^2` with `w = A~ / c_out(s)^2 + (A - A~) / sd^2`.
fn reference_loss(shape: Shape, d: &[f64], x0: &[f32], a: &[f32], at: &[f32], sig: &[f32]) -> f64 {
    let sd = SD as f64;
    let mut sum = 0.0;
    for j in 0..shape.len() {
        let s = sig[j / shape.sample_len()] as f64;
        let c_out = s * sd / (s * s + sd * sd).sqrt();
        let w = at[j] as f64 / (c_out * c_out) + (a[j] - at[j]) as f64 / (sd * sd);
        sum += w * (d[j] - x0[j] as f64).powi(2);
    }
    sum / shape.n as f64
}

/// Checks `(value, grad)` from the core against the f64 reference and its central finite
/// differences in every element of `D`.
///
/// The loss is quadratic in each `D_j`, so a central difference has no truncation error; with
/// h = 0.25 its f64 rounding is ~ 1e-16 * L / h < 1e-11 for the weights here (L < 1e5).
/// The core works in f32: the weight takes at most 4 roundings, `D - x0` one, the product and
/// the factor `2 / B` three more, so the gradient is within 8 u = 4.8e-7 relative; the value
/// (a sum of positive terms) within ~10 u = 6e-7 relative. We allow 2e-6 relative (a 3-4x
/// margin) plus 1e-9 absolute for the finite-difference rounding.
fn check_against_reference(
    shape: Shape,
    core: (f32, &[f32]),
    d: &[f32],
    x0: &[f32],
    a: &[f32],
    at: &[f32],
    sigmas: &[f32],
) {
    let (value, grad) = core;
    let mut d64: Vec<f64> = d.iter().map(|&v| v as f64).collect();
    let want = reference_loss(shape, &d64, x0, a, at, sigmas);
    assert!(
        (value as f64 - want).abs() <= 2e-6 * want,
        "value {value} vs reference {want}"
    );
    let h = 0.25;
    for j in 0..shape.len() {
        let keep = d64[j];
        d64[j] = keep + h;
        let up = reference_loss(shape, &d64, x0, a, at, sigmas);
        d64[j] = keep - h;
        let down = reference_loss(shape, &d64, x0, a, at, sigmas);
        d64[j] = keep;
        let fd = (up - down) / (2.0 * h);
        let g = grad[j] as f64;
        assert!(
            (g - fd).abs() <= 2e-6 * fd.abs() + 1e-9,
            "element {j}: core {g} vs finite difference {fd}"
        );
    }
    // The bound above is meaningful only if the gradient is not trivially zero.
    assert!(grad.iter().any(|&g| g.abs() > 1e-3));
}

const SHAPE: Shape = Shape::new(3, 2, 2, 3);

#[test]
fn ambient_loss_matches_reference_and_finite_differences() {
    for seed in 0..8 {
        let b = Batch::random(seed, SHAPE);
        let (mut d, mut x0m, mut a, mut at) =
            (b.d.clone(), b.x0_measured(), b.a.clone(), b.at.clone());
        let (mut grad, mut scratch) = (vec![0.0; SHAPE.len()], vec![0.0; SHAPE.len()]);
        let value = ambient_loss(
            &t(SHAPE, &mut d),
            &t(SHAPE, &mut x0m),
            &t(SHAPE, &mut a),
            &t(SHAPE, &mut at),
            &b.sigmas,
            SD,
            &mut t(SHAPE, &mut grad),
            &mut t(SHAPE, &mut scratch),
        )
        .unwrap();
        // The reference reads the full x0: its terms where A = 0 have weight 0.
        check_against_reference(SHAPE, (value, &grad), &b.d, &b.x0, &b.a, &b.at, &b.sigmas);
        // Hidden-by-A~ but measured pixels carry weight (the ambient training signal).
        assert!(b.a.iter().zip(&b.at).any(|(&a, &at)| a == 1.0 && at == 0.0));
    }
}

#[test]
fn naive_loss_is_the_ambient_loss_with_a_tilde_equal_to_a() {
    for seed in 10..14 {
        let b = Batch::random(seed, SHAPE);
        let (mut d, mut x0m, mut a) = (b.d.clone(), b.x0_measured(), b.a.clone());
        let (mut grad, mut scratch) = (vec![0.0; SHAPE.len()], vec![0.0; SHAPE.len()]);
        let value = naive_loss(
            &t(SHAPE, &mut d),
            &t(SHAPE, &mut x0m),
            &t(SHAPE, &mut a),
            &b.sigmas,
            SD,
            &mut t(SHAPE, &mut grad),
            &mut t(SHAPE, &mut scratch),
        )
        .unwrap();
        check_against_reference(SHAPE, (value, &grad), &b.d, &b.x0, &b.a, &b.a, &b.sigmas);
        // No training signal where A erased a pixel.
        for (g, a) in grad.iter().zip(&b.a) {
            if *a == 0.0 {
                assert_eq!(*g, 0.0);
            }
        }
    }
}

#[test]
fn clean_loss_is_plain_edm() {
    for seed in 20..24 {
        let b = Batch::random(seed, SHAPE);
        let ones = vec![1.0f32; SHAPE.len()];
        let (mut d, mut x0) = (b.d.clone(), b.x0.clone());
        let (mut grad, mut scratch) = (vec![0.0; SHAPE.len()], vec![0.0; SHAPE.len()]);
        let value = clean_loss(
            &t(SHAPE, &mut d),
            &t(SHAPE, &mut x0),
            &b.sigmas,
            SD,
            &mut t(SHAPE, &mut grad),
            &mut t(SHAPE, &mut scratch),
        )
        .unwrap();
        check_against_reference(SHAPE, (value, &grad), &b.d, &b.x0, &ones, &ones, &b.sigmas);
    }
}

#[test]
fn weight_value_and_gradient_by_hand() {
    // One sample of three pixels at s = 1, sd = 0.5, so c_out^2 = 0.25 / 1.25 = 0.2:
    // pixel 0 seen by the model (A~ = 1): w = 1 / 0.2 = 5;
    // pixel 1 measured but hidden from the model (A = 1, A~ = 0): w = 1 / sd^2 = 4;
    // pixel 2 erased by A: w = 0.
    // A second sample at s = 0.5: c_out^2 = 0.0625 / 0.5 = 0.125, so w = 8, 4, 0.
    let shape = Shape::new(2, 1, 1, 3);
    let mut a = [1.0, 1.0, 0.0, 1.0, 1.0, 0.0];
    let mut at = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
    let sigmas = [1.0, 0.5];
    let mut w = [0.0f32; 6];
    ambient_weight(
        &t(shape, &mut a),
        &t(shape, &mut at),
        &sigmas,
        SD,
        &mut t(shape, &mut w),
    )
    .unwrap();
    assert_eq!(w, [5.0, 4.0, 0.0, 8.0, 4.0, 0.0]);

    // D - A x0 = (1, 1, 7) and (0.5, -2, 3): per-sample sums 5 + 4 = 9 and 8/4 + 16 = 18,
    // batch mean 13.5; gradient 2 w r / 2 = w r = (5, 4, 0, 4, -8, 0).
    let mut d = [1.0, 2.0, 7.0, 0.5, -1.0, 3.0];
    let mut x0m = [0.0, 1.0, 0.0, 0.0, 1.0, 0.0];
    let (mut grad, mut scratch) = ([0.0f32; 6], [0.0f32; 6]);
    let value = ambient_loss(
        &t(shape, &mut d),
        &t(shape, &mut x0m),
        &t(shape, &mut a),
        &t(shape, &mut at),
        &sigmas,
        SD,
        &mut t(shape, &mut grad),
        &mut t(shape, &mut scratch),
    )
    .unwrap();
    assert_eq!(value, 13.5);
    assert_eq!(grad, [5.0, 4.0, 0.0, 4.0, -8.0, 0.0]);
}

#[test]
fn loss_never_reads_x0_where_a_erased_it() {
    let b = Batch::random(31, SHAPE);
    let run = |x0: &[f32]| {
        let (mut d, mut x0, mut a, mut at) = (b.d.clone(), x0.to_vec(), b.a.clone(), b.at.clone());
        let (mut grad, mut scratch) = (vec![0.0; SHAPE.len()], vec![0.0; SHAPE.len()]);
        let value = ambient_loss(
            &t(SHAPE, &mut d),
            &t(SHAPE, &mut x0),
            &t(SHAPE, &mut a),
            &t(SHAPE, &mut at),
            &b.sigmas,
            SD,
            &mut t(SHAPE, &mut grad),
            &mut t(SHAPE, &mut scratch),
        )
        .unwrap();
        (value, grad)
    };
    let measured = run(&b.x0_measured());
    let full = run(&b.x0);
    // Arbitrary (finite) values where A = 0, including large ones.
    let mut rng = AmbientRng::new(99);
    let junk: Vec<f32> =
        b.x0.iter()
            .zip(&b.a)
            .map(|(&x, &a)| if a == 1.0 { x } else { 1e6 * rng.normal() })
            .collect();
    let garbage = run(&junk);
    assert!(b.a.contains(&0.0));
    // Exactly equal: every term where A = 0 is 0 * (D - x0) = 0, whatever x0 holds there.
    assert_eq!(measured, full);
    assert_eq!(measured, garbage);
}

#[test]
fn bad_inputs_are_typed_errors() {
    let b = Batch::random(41, SHAPE);
    let run = |d: &[f32], at: &[f32], sigmas: &[f32]| {
        let (mut d, mut x0m, mut a, mut at) =
            (d.to_vec(), b.x0_measured(), b.a.clone(), at.to_vec());
        let (mut grad, mut scratch) = (vec![0.0; SHAPE.len()], vec![0.0; SHAPE.len()]);
        ambient_loss(
            &t(SHAPE, &mut d),
            &t(SHAPE, &mut x0m),
            &t(SHAPE, &mut a),
            &t(SHAPE, &mut at),
            sigmas,
            SD,
            &mut t(SHAPE, &mut grad),
            &mut t(SHAPE, &mut scratch),
        )
    };
    assert!(run(&b.d, &b.at, &b.sigmas).is_ok());
    for bad in [0.0, -0.1, f32::NAN, f32::INFINITY] {
        let mut sigmas = b.sigmas.clone();
        sigmas[1] = bad;
        assert!(
            matches!(
                run(&b.d, &b.at, &sigmas),
                Err(CoreError::InvalidParameter(_))
            ),
            "sigma {bad}"
        );
    }
    assert!(matches!(
        run(&b.d, &b.at, &b.sigmas[..2]),
        Err(CoreError::ShapeMismatch {
            expected: 3,
            got: 2,
            ..
        })
    ));
    // A NaN or an infinity in D where the weight is positive.
    let seen = b.at.iter().position(|&v| v == 1.0).unwrap();
    for bad in [f32::NAN, f32::INFINITY] {
        let mut d = b.d.clone();
        d[seen] = bad;
        assert_eq!(
            run(&d, &b.at, &b.sigmas),
            Err(CoreError::NonFinite("loss value"))
        );
    }
    // A~ keeping a pixel that A erased is not a further corruption of A.
    let erased = b.a.iter().position(|&v| v == 0.0).unwrap();
    let mut at = b.at.clone();
    at[erased] = 1.0;
    assert!(matches!(
        run(&b.d, &at, &b.sigmas),
        Err(CoreError::InvalidParameter(_))
    ));
}

/// Reads one F32 tensor (data and shape) from a safetensors file: an 8-byte little-endian
/// header length, a JSON header `{"name":{"dtype":"F32","shape":[..],"data_offsets":[a,b]},..}`
/// and the data. Just enough parsing for the golden files.
fn read_tensor(bytes: &[u8], name: &str) -> (Vec<usize>, Vec<f32>) {
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
    let entry = &header[header.find(&format!("\"{name}\":{{")).expect(name)..];
    let entry = &entry[..entry.find('}').unwrap()];
    assert!(entry.contains("\"dtype\":\"F32\""), "{name}: {entry}");
    let list = |key: &str| -> Vec<usize> {
        let start = entry.find(&format!("\"{key}\":[")).unwrap() + key.len() + 4;
        let end = start + entry[start..].find(']').unwrap();
        entry[start..end]
            .split(',')
            .map(|v| v.trim().parse().unwrap())
            .collect()
    };
    let (shape, offsets) = (list("shape"), list("data_offsets"));
    let data = bytes[8 + header_len + offsets[0]..8 + header_len + offsets[1]]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (shape, data)
}

/// Cross-check of the reading of the spec against the independent PyTorch implementation's
/// golden vectors (tests/golden/README.md): its per-pixel `weight` and its `loss`, at
/// sigma = 0.002, 0.1, 1 and 80, from its own `D`, `x0`, `A` and `A_tilde`.
/// Tolerances: the weight is one formula per pixel evaluated in f32 by both sides (a few
/// roundings each: 1e-6 relative); the loss is a sum of positive terms in different orders
/// (the README's 1e-5 relative for values computed from D).
#[test]
fn weight_and_loss_match_the_golden_vectors() {
    for file in ["tiny", "spec"] {
        let path = format!(
            "{}/../tests/golden/{file}.vectors.safetensors",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(&path).expect(&path);
        let (dims, mut d) = read_tensor(&bytes, "D");
        let shape = Shape::new(dims[0], dims[1], dims[2], dims[3]);
        let (_, x0) = read_tensor(&bytes, "x0");
        let (_, mut a) = read_tensor(&bytes, "A");
        let (_, mut at) = read_tensor(&bytes, "A_tilde");
        let (_, sigmas) = read_tensor(&bytes, "sigma");
        let (_, weight) = read_tensor(&bytes, "weight");
        let (_, loss) = read_tensor(&bytes, "loss");
        assert_eq!(sigmas, [0.002, 0.1, 1.0, 80.0]);

        let mut w = vec![0.0f32; shape.len()];
        ambient_weight(
            &t(shape, &mut a),
            &t(shape, &mut at),
            &sigmas,
            SD,
            &mut t(shape, &mut w),
        )
        .unwrap();
        for (k, (&ours, &theirs)) in w.iter().zip(&weight).enumerate() {
            assert!(
                (ours - theirs).abs() <= 1e-6 * theirs.abs(),
                "{file} weight {k}: {ours} vs {theirs}"
            );
        }

        let mut x0m: Vec<f32> = x0.iter().zip(&a).map(|(x, m)| x * m).collect();
        let (mut grad, mut scratch) = (vec![0.0; shape.len()], vec![0.0; shape.len()]);
        let value = ambient_loss(
            &t(shape, &mut d),
            &t(shape, &mut x0m),
            &t(shape, &mut a),
            &t(shape, &mut at),
            &sigmas,
            SD,
            &mut t(shape, &mut grad),
            &mut t(shape, &mut scratch),
        )
        .unwrap();
        assert!(
            (value - loss[0]).abs() <= 1e-5 * loss[0],
            "{file} loss: {value} vs {}",
            loss[0]
        );
    }
}
