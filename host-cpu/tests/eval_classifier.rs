//! The MNIST classifier: cross-entropy by hand, the whole network's backward pass against
//! central differences, training that separates a synthetic 3-class problem perfectly,
//! features of the right size, and the weight file (exact round trip, foreign and wrong-config
//! files rejected).
//!
//! Finite-difference tolerance: the loss is a mean cross-entropy of O(1) accumulated in f64
//! from f32 logits after 6 chained f32 layers; model each layer's relative rounding as 4 ulps
//! (4 * 2^-24), so the loss errs by about 6 * 4 * 6e-8 * |L| ~ 2e-6 at each evaluation point,
//! i.e. 2 * 2e-6 / (2h) = 2e-4 in the difference quotient with h = 1e-2. Truncation
//! h^2/6 |L'''| is about 1e-5 of the gradient's scale for these smooth layers. We allow
//! 3e-4 + 1e-3 max|g| per tensor and require the largest gradient of each tensor to exceed 4
//! times that, so that no check passes on zeros.

use ambient_core::AmbientRng;
use ambient_cpu::eval::classifier::{cross_entropy, Classifier, ClassifierConfig};
use ambient_cpu::eval::classifier_file::{load_classifier, save_classifier};
use ambient_cpu::eval::classifier_train::{
    accuracy, run_classifier, train_classifier, ClassifierTraining,
};
use ndarray::{Array2, Array4};

fn tiny() -> ClassifierConfig {
    ClassifierConfig {
        img_channels: 1,
        img_resolution: 8,
        ch1: 3,
        ch2: 4,
        hidden: 6,
        classes: 3,
    }
}

#[test]
fn cross_entropy_by_hand() {
    // Logits (0, ln 2): softmax (1/3, 2/3). Label 0: loss ln 3, gradient (1/3 - 1, 2/3).
    // Label 1 on (0, 0): loss ln 2, gradient (1/2, -1/2). Mean over the 2 rows.
    let logits = Array2::from_shape_vec((2, 2), vec![0.0, 2f32.ln(), 0.0, 0.0]).unwrap();
    let (loss, g) = cross_entropy(&logits, &[0, 1]).unwrap();
    assert!((loss - (3f64.ln() + 2f64.ln()) / 2.0).abs() < 1e-7);
    let want = [(-2.0 / 3.0) / 2.0, (2.0 / 3.0) / 2.0, 0.25, -0.25];
    for (a, b) in g.iter().zip(want) {
        assert!((*a as f64 - b).abs() < 1e-7);
    }
    assert!(cross_entropy(&logits, &[0, 2]).is_err());
    assert!(cross_entropy(&logits, &[0]).is_err());
}

#[test]
fn backward_matches_finite_differences() {
    let cfg = tiny();
    let clf = Classifier::new(&cfg).unwrap();
    let mut rng = AmbientRng::new(11);
    let mut params = clf.init_params(&mut rng);
    // Non-zero biases too, so that their gradients are tested through every path.
    for p in params.params.iter_mut() {
        p.data.iter_mut().for_each(|v| *v += 0.2 * rng.normal());
    }
    let x = Array4::from_shape_fn((2, 1, 8, 8), |_| rng.normal().clamp(-1.0, 1.0));
    let labels = [2u8, 0];
    let loss = |p: &ambient_cpu::params::ParamStore| {
        let (out, _) = clf.forward(p, &x).unwrap();
        cross_entropy(&out.logits, &labels).unwrap().0
    };
    let (out, tape) = clf.forward(&params, &x).unwrap();
    let (_, d_logits) = cross_entropy(&out.logits, &labels).unwrap();
    let mut grads = params.zeros_like();
    clf.backward(&params, &tape, &d_logits, &mut grads);
    let h = 1e-2f32;
    for (t, g) in grads.params.iter().enumerate() {
        let largest = g.data.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
        let tol = 3e-4 + 1e-3 * largest;
        assert!(
            largest > 4.0 * tol,
            "{}: largest gradient {largest}",
            g.name
        );
        // Every element of small tensors, every 7th of large ones.
        let stride = if g.data.len() > 40 { 7 } else { 1 };
        for i in (0..g.data.len()).step_by(stride) {
            let mut p = params.clone();
            p.params[t].data[i] += h;
            let up = loss(&p);
            p.params[t].data[i] -= 2.0 * h;
            let down = loss(&p);
            let fd = (up - down) / (2.0 * h as f64);
            assert!(
                (fd - g.data[i] as f64).abs() < tol,
                "{}[{i}]: backward {} vs difference {fd}",
                g.name,
                g.data[i]
            );
        }
    }
}

/// `n` 8 x 8 images of 3 classes: a bright left half, right half or top half, plus noise.
fn synthetic(n: usize, seed: u64) -> (Vec<f32>, Vec<u8>) {
    let mut rng = AmbientRng::new(seed);
    let mut px = Vec::with_capacity(n * 64);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = (i % 3) as u8;
        for p in 0..64 {
            let (y, x) = (p / 8, p % 8);
            let on = match c {
                0 => x < 4,
                1 => x >= 4,
                _ => y < 4,
            };
            px.push(if on { 0.8 } else { -0.8 } + 0.3 * rng.normal());
        }
        labels.push(c);
    }
    (px, labels)
}

#[test]
fn training_separates_a_synthetic_problem() {
    let clf = Classifier::new(&tiny()).unwrap();
    let (x, y) = synthetic(96, 12);
    let opts = ClassifierTraining {
        epochs: 6,
        batch: 16,
        lr: 1e-2,
        seed: 3,
    };
    let mut losses = Vec::new();
    let params = train_classifier(&clf, &x, &y, &opts, |_, _, l| losses.push(l)).unwrap();
    assert_eq!(losses.len(), 6 * 6);
    // Chance level is ln 3 = 1.1; the classes differ by 16 pixels of +-0.8 against noise 0.3,
    // so a trained network must get every held-out image right.
    let (xt, yt) = synthetic(60, 13);
    let acc = accuracy(&clf, &params, &xt, &yt, 32).unwrap();
    assert_eq!(acc, 1.0, "losses {:?}", &losses[losses.len() - 3..]);
    let first: f64 = losses[..3].iter().sum::<f64>() / 3.0;
    let last: f64 = losses[losses.len() - 3..].iter().sum::<f64>() / 3.0;
    assert!(last < 0.25 * first, "{first} -> {last}");
    // Features: [N, hidden], in batches equal to one forward pass.
    let (f, logits) = run_classifier(&clf, &params, &xt, 7).unwrap();
    assert_eq!((f.dim(), logits.dim()), ((60, 6), (60, 3)));
    let whole = Array4::from_shape_vec((60, 1, 8, 8), xt.clone()).unwrap();
    assert_eq!(clf.features(&params, &whole).unwrap(), f);
}

#[test]
fn weight_file_round_trip_and_rejections() {
    let dir = std::env::temp_dir().join(format!("ambient_eval_clf_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = tiny();
    let clf = Classifier::new(&cfg).unwrap();
    let params = clf.init_params(&mut AmbientRng::new(1));
    let path = dir.join("c.safetensors");
    save_classifier(&path, &cfg, &params).unwrap();
    let (cfg2, params2) = load_classifier(&path).unwrap();
    assert_eq!((cfg2, params2), (cfg.clone(), params.clone()));
    // A store for another config is refused on writing.
    let mut other = cfg.clone();
    other.hidden = 7;
    assert!(save_classifier(&dir.join("x.safetensors"), &other, &params).is_err());
    // A truncated file and a U-Net weight file are refused on reading.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(dir.join("cut.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    assert!(load_classifier(&dir.join("cut.safetensors")).is_err());
    let ucfg = ambient_cpu::config::ModelConfig {
        unet: ambient_cpu::config::UNetConfig {
            img_channels: 1,
            img_resolution: 4,
            ch: 4,
            mult: vec![1, 1],
            blocks: 1,
            groups: 2,
            sigma_data: 0.5,
        },
        precond: ambient_cpu::config::PRECOND.into(),
        corruption: ambient_cpu::config::CorruptionMeta {
            kind: "random".into(),
            p: 0.5,
            delta: 0.1,
            r#box: None,
            mode: "ambient".into(),
        },
    };
    let up = ambient_cpu::init::init_params(&ucfg.unet, &mut AmbientRng::new(2));
    ambient_cpu::io::weights::save_weights(&dir.join("u.safetensors"), &ucfg, &up).unwrap();
    let err = load_classifier(&dir.join("u.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a classifier weight file"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
