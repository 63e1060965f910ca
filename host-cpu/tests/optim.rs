//! The optimiser against hand computation: Adam's first three steps, the warm-up schedule,
//! clipping to exactly max_norm, the EMA recurrence and its half-life, and a rejected
//! non-finite gradient that changes nothing.

use ambient_cpu::optim::{
    clip_grad_norm, ema_update, global_norm, Adam, AdamConfig, EmaSchedule, OptimError,
};
use ambient_cpu::params::{Param, ParamStore};

fn store(values: &[&[f32]]) -> ParamStore {
    ParamStore {
        params: values
            .iter()
            .enumerate()
            .map(|(i, v)| Param {
                name: format!("t{i}"),
                shape: vec![v.len()],
                data: v.to_vec(),
            })
            .collect(),
    }
}

/// f32 arithmetic: each of the ~10 operations of an Adam update rounds with relative error
/// 2^-24 ~ 6e-8, on values of order 1, so 1e-6 bounds the accumulated error of `w` with margin.
const TOL: f64 = 1e-6;

/// `got` is within [`TOL`] of the exact value `want`.
fn close_w(got: f32, want: f64) -> bool {
    (got as f64 - want).abs() < TOL
}
/// The moments carry the representation error of the betas in f32: 1 - 0.9f32 is 0.1 with
/// relative error 2.4e-7, and 1 - 0.999f32 is 0.001 with relative error 1.3e-5 (0.999f32 =
/// 0.99900001287). (The bias corrections use the same f32 betas, so in `w` this cancels to
/// first order.) Relative bounds with margin:
const M_REL: f32 = 5e-7;
const V_REL: f32 = 2e-5;

fn close_rel(got: f32, want: f32, rel: f32) -> bool {
    (got - want).abs() <= rel * want.abs()
}

#[test]
fn adam_first_steps_match_hand_computation() {
    // One scalar weight w = 1, lr 0.1, gradients 0.5, -1, 0.25.
    let mut w = store(&[&[1.0]]);
    let mut adam = Adam::new(AdamConfig::new(0.1), &w).unwrap();
    // Step 1: m = 0.1 * 0.5 = 0.05, v = 0.001 * 0.25 = 2.5e-4; m^ = 0.05 / 0.1 = 0.5,
    // v^ = 2.5e-4 / 0.001 = 0.25; w = 1 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.900000002.
    let r = adam.step(&mut w, &mut store(&[&[0.5]])).unwrap();
    assert_eq!((r.lr, r.grad_norm, r.clip_scale), (0.1, 0.5, 1.0));
    assert!(close_rel(adam.m.params[0].data[0], 0.05, M_REL));
    assert!(close_rel(adam.v.params[0].data[0], 2.5e-4, V_REL));
    assert!(close_w(w.params[0].data[0], 0.900_000_002));
    // Step 2: m = 0.9 * 0.05 - 0.1 = -0.055, v = 0.999 * 2.5e-4 + 0.001 = 1.24975e-3;
    // m^ = -0.055 / 0.19, v^ = 1.24975e-3 / 0.001999; w = 0.9 + 0.1 * 0.289474 / 0.790688
    // = 0.93661035.
    adam.step(&mut w, &mut store(&[&[-1.0]])).unwrap();
    assert!(close_rel(adam.m.params[0].data[0], -0.055, M_REL));
    assert!(close_rel(adam.v.params[0].data[0], 1.24975e-3, V_REL));
    assert!(close_w(w.params[0].data[0], 0.936_610_35));
    // Step 3: m = -0.0495 + 0.025 = -0.0245, v = 1.24850025e-3 + 6.25e-5 = 1.31100025e-3;
    // m^ = -0.0245 / 0.271, v^ = 1.31100025e-3 / 2.997001e-3; w = 0.95027942.
    adam.step(&mut w, &mut store(&[&[0.25]])).unwrap();
    assert!(close_w(w.params[0].data[0], 0.950_279_42));
    assert_eq!(adam.t, 3);
}

#[test]
fn adam_first_step_moves_each_weight_by_lr_against_its_gradient_sign() {
    // With bias correction, step 1 is w -= lr * g / (|g| + eps): magnitude lr whatever |g|.
    let mut w = store(&[&[0.0, 0.0], &[0.0]]);
    let mut adam = Adam::new(AdamConfig::new(0.01), &w).unwrap();
    adam.step(&mut w, &mut store(&[&[3.0, -1e-3], &[0.0]]))
        .unwrap();
    assert!((w.params[0].data[0] + 0.01).abs() < 1e-8);
    // |g| = 1e-3: 0.01 * 1e-3 / (1e-3 + 1e-8) = 0.01 * (1 - 1e-5).
    assert!((w.params[0].data[1] - 0.01 * (1.0 - 1e-5)).abs() < 1e-8);
    assert_eq!(w.params[1].data[0], 0.0, "zero gradient, no move");
}

#[test]
fn warmup_is_linear_then_constant() {
    let c = AdamConfig {
        warmup_steps: 4,
        ..AdamConfig::new(0.2)
    };
    let lrs: Vec<f32> = (1..=6).map(|k| c.learning_rate(k)).collect();
    assert_eq!(lrs, vec![0.05, 0.1, 0.15, 0.2, 0.2, 0.2]);
    assert_eq!(AdamConfig::new(0.2).learning_rate(1), 0.2, "no warm-up");
    // Adam uses the scheduled rate: step 1 moves a weight by lr / 4 = 0.05.
    let mut w = store(&[&[0.0]]);
    let mut adam = Adam::new(c, &w).unwrap();
    let r = adam.step(&mut w, &mut store(&[&[1.0]])).unwrap();
    assert_eq!(r.lr, 0.05);
    assert!((w.params[0].data[0] + 0.05).abs() < 1e-8);
}

#[test]
fn clipping_scales_to_exactly_max_norm() {
    // Global norm over two tensors: sqrt(3^2 + 4^2 + 12^2) = 13.
    let mut g = store(&[&[3.0, 4.0], &[12.0]]);
    assert_eq!(global_norm(&g), 13.0);
    let (norm, scale) = clip_grad_norm(&mut g, 2.6);
    assert_eq!(norm, 13.0);
    assert!((scale - 0.2).abs() < 1e-7);
    // Each element rounds once (relative 6e-8), so the new norm is 2.6 to ~1e-7 relative.
    assert!(
        (global_norm(&g) - 2.6).abs() < 2.6 * 2e-7,
        "{}",
        global_norm(&g)
    );
    assert!((g.params[0].data[0] - 0.6).abs() < 1e-7 && (g.params[1].data[0] - 2.4).abs() < 1e-6);
    // Within the bound nothing changes.
    let mut g = store(&[&[3.0, 4.0]]);
    assert_eq!(clip_grad_norm(&mut g, 5.0), (5.0, 1.0));
    assert_eq!(g.params[0].data, vec![3.0, 4.0]);
    // Inside Adam the report carries the norm before clipping and the factor.
    let mut w = store(&[&[0.0, 0.0]]);
    let mut adam = Adam::new(
        AdamConfig {
            max_grad_norm: Some(1.0),
            ..AdamConfig::new(0.1)
        },
        &w,
    )
    .unwrap();
    let mut g = store(&[&[3.0, 4.0]]);
    let r = adam.step(&mut w, &mut g).unwrap();
    assert_eq!(r.grad_norm, 5.0);
    assert!((r.clip_scale - 0.2).abs() < 1e-7);
    // m after step 1 is 0.1 * clipped g = (0.06, 0.08).
    assert!(
        close_rel(adam.m.params[0].data[0], 0.06, M_REL)
            && close_rel(adam.m.params[0].data[1], 0.08, M_REL)
    );
}

#[test]
fn non_finite_gradient_is_rejected_and_changes_nothing() {
    let mut w = store(&[&[1.0, 2.0], &[3.0]]);
    let mut adam = Adam::new(
        AdamConfig {
            max_grad_norm: Some(1.0),
            ..AdamConfig::new(0.1)
        },
        &w,
    )
    .unwrap();
    adam.step(&mut w, &mut store(&[&[0.1, 0.2], &[0.3]]))
        .unwrap();
    let (w0, a0) = (w.clone(), adam.clone());
    let mut g = store(&[&[0.1, 0.2], &[f32::NAN]]);
    let e = adam.step(&mut w, &mut g).unwrap_err();
    assert!(
        matches!(&e, OptimError::NonFiniteGradient { name, index: 0, .. } if name == "t1"),
        "{e}"
    );
    assert_eq!((w, adam), (w0, a0));
    assert_eq!(
        g.params[0].data,
        vec![0.1, 0.2],
        "gradient not clipped either"
    );
}

#[test]
fn mismatched_layouts_and_bad_settings_are_errors() {
    let mut w = store(&[&[1.0, 2.0]]);
    let mut adam = Adam::new(AdamConfig::new(0.1), &w).unwrap();
    assert!(matches!(
        adam.step(&mut w, &mut store(&[&[1.0]])),
        Err(OptimError::Layout { .. })
    ));
    assert!(Adam::new(
        AdamConfig {
            beta2: 1.0,
            ..AdamConfig::new(0.1)
        },
        &w
    )
    .is_err());
    assert!(Adam::new(
        AdamConfig {
            max_grad_norm: Some(0.0),
            ..AdamConfig::new(0.1)
        },
        &w
    )
    .is_err());
    assert!(Adam::new(AdamConfig::new(f32::NAN), &w).is_err());
    assert!(ema_update(&mut store(&[&[1.0]]), &w, 0.5).is_err());
    assert!(EmaSchedule::Decay { beta: 1.5 }.validate().is_err());
    assert!(EmaSchedule::HalfLife {
        halflife_kimg: 0.0,
        rampup_ratio: None
    }
    .validate()
    .is_err());
}

#[test]
fn ema_follows_its_recurrence() {
    // beta 0.75: ema 1 -> 0.75 * 1 + 0.25 * 3 = 1.5 -> 0.75 * 1.5 + 0.25 * 3 = 1.875.
    let w = store(&[&[3.0, -4.0]]);
    let mut ema = store(&[&[1.0, 0.0]]);
    ema_update(&mut ema, &w, 0.75).unwrap();
    assert_eq!(ema.params[0].data, vec![1.5, -1.0]);
    ema_update(&mut ema, &w, 0.75).unwrap();
    assert_eq!(ema.params[0].data, vec![1.875, -1.75]);
    // beta 0 copies the weights.
    ema_update(&mut ema, &w, 0.0).unwrap();
    assert_eq!(ema.params[0].data, vec![3.0, -4.0]);
}

#[test]
fn ema_beta_from_half_life_in_images() {
    // Half-life 500 images: a batch of 500 halves the old weight's share, 250 takes sqrt(1/2).
    let s = EmaSchedule::HalfLife {
        halflife_kimg: 0.5,
        rampup_ratio: None,
    };
    assert_eq!(s.beta(500, 0), 0.5);
    assert!((s.beta(250, 0) - 0.5f64.sqrt()).abs() < 1e-15);
    // After k steps the old weights' share is beta^k = 0.5^(k * batch / 500): 4 x 125 = 1/2.
    assert!((s.beta(125, 0).powi(4) - 0.5).abs() < 1e-15);
    // Ramp-up (EDM, ratio 0.05): the half-life is min(500, 0.05 * images seen).
    let r = EmaSchedule::HalfLife {
        halflife_kimg: 0.5,
        rampup_ratio: Some(0.05),
    };
    assert_eq!(r.beta(100, 0), 0.0, "first step: the EMA takes the weights");
    assert_eq!(r.beta(100, 2000), 0.5, "half-life 0.05 * 2000 = 100 images");
    assert_eq!(r.beta(500, 1_000_000), 0.5, "capped at 500");
    assert_eq!(EmaSchedule::Decay { beta: 0.999 }.beta(64, 123), 0.999);
}
