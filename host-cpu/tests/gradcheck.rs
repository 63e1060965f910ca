//! Finite-difference checks of every backward pass: each layer type (GatedConv k = 1 and 3,
//! GroupNorm, SiLU, Linear, avg pool, upsample, concat, the noise embedding, ResBlock with and
//! without skip) for its parameters and inputs, the whole network on a tiny configuration, and
//! `denoise_backward` with respect to y. All weights are random and non-zero (conv2 and
//! out_conv included), so that no gradient vanishes and every check can fail.
//!
//! Method: the scalar `L = sum_i R_i out_i` (R fixed standard-normal, L accumulated in f64) is
//! differentiated by central differences of step h on one element at a time, and compared with
//! the backward pass fed `dL/dout = R`.
//!
//! Tolerance, derived from two error sources of the central difference:
//! - rounding: the outputs are computed in f32; model each output as carrying an independent
//!   relative error of standard deviation `rho`. A reduction of K random-signed terms errs by
//!   about sqrt(K) ulps of a term, and its result is itself about sqrt(K) terms in size, so its
//!   relative error is a few ulps whatever K; rho = 4 * 2^-24 per layer (product, sum,
//!   activation), times the number of layers chained, as relative errors add up along a chain. L then errs by about rho * S with S = sqrt(sum (R_i out_i)^2); allowing
//!   4 standard deviations at each of the two evaluation points and dividing by the step gives
//!   `4 rho (S+ + S-) / (2h)`.
//! - truncation: `h^2 / 6 |L'''|`; with h = 1e-2 and third derivatives of the order of the
//!   first for these smooth layers on O(1) data, at most 1e-3 relative to the largest
//!   gradient of the tensor.
//!
//! A sign error, a missing factor or a wrong index gives errors of the order of the gradient
//! itself, far above both terms; each check also asserts that the largest gradient of each
//! tensor is at least 4 times the tolerance, so that it cannot pass on zeros.

use ambient_core::AmbientRng;
use ambient_cpu::config::UNetConfig;
use ambient_cpu::denoiser::{denoise_backward, denoise_train};
use ambient_cpu::nn::concat::{concat_channels, split_channels};
use ambient_cpu::nn::embedding::NoiseEmbedding;
use ambient_cpu::nn::gated_conv::GatedConv;
use ambient_cpu::nn::group_norm::GroupNorm;
use ambient_cpu::nn::linear::Linear;
use ambient_cpu::nn::resample::{
    avg_pool_2x2, avg_pool_2x2_backward, upsample_nearest_2x, upsample_nearest_2x_backward,
};
use ambient_cpu::nn::resblock::ResBlock;
use ambient_cpu::nn::silu::{silu, silu_backward};
use ambient_cpu::params::{spec_layout, ParamStore};
use ambient_cpu::unet::UNet;
use ndarray::{Array, Array2, Array4, Dimension};

const H: f64 = 1e-2;
/// Rounding model of one layer: 4 ulps of f32, relative.
const RHO_LAYER: f64 = 4.0 / 16_777_216.0;
/// Truncation: relative to the tensor's largest gradient.
const TRUNC: f64 = 1e-3;

type Layout = Vec<(String, Vec<usize>)>;

fn normal_vec(rng: &mut AmbientRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| scale * rng.normal()).collect()
}

fn normal4(rng: &mut AmbientRng, d: (usize, usize, usize, usize), scale: f32) -> Array4<f32> {
    Array4::from_shape_vec(d, normal_vec(rng, d.0 * d.1 * d.2 * d.3, scale)).unwrap()
}

fn normal2(rng: &mut AmbientRng, d: (usize, usize), scale: f32) -> Array2<f32> {
    Array2::from_shape_vec(d, normal_vec(rng, d.0 * d.1, scale)).unwrap()
}

/// Random non-zero parameters: weights N(0, 1/fan_in) so activations stay O(1); GroupNorm
/// weights 1 + N(0, 0.3^2), every bias N(0, 0.3^2).
fn random_params(layout: &[(String, Vec<usize>)], rng: &mut AmbientRng) -> ParamStore {
    let mut p = ParamStore::zeros(layout);
    for t in p.params.iter_mut() {
        let fan_in: usize = t.shape[1..].iter().product::<usize>().max(1);
        let norm = t.name.contains("norm");
        for v in t.data.iter_mut() {
            *v = if t.shape.len() == 1 {
                (if norm && t.name.ends_with("weight") {
                    1.0
                } else {
                    0.0
                }) + 0.3 * rng.normal()
            } else {
                rng.normal() / (fan_in as f32).sqrt()
            };
        }
    }
    p
}

/// (L, S) = (sum R out, sqrt(sum (R out)^2)) in f64.
fn pair<D: Dimension>(r: &Array<f32, D>, out: &Array<f32, D>) -> (f64, f64) {
    assert_eq!(r.shape(), out.shape());
    let (l, s2) = r
        .iter()
        .zip(out.iter())
        .fold((0.0, 0.0), |(l, s), (&a, &b)| {
            let t = a as f64 * b as f64;
            (l + t, s + t * t)
        });
    (l, s2.sqrt())
}

/// One differentiable variable: its current value and the backward pass's gradient.
struct Var {
    name: String,
    value: Vec<f32>,
    grad: Vec<f32>,
}

fn var(name: &str, value: &[f32], grad: &[f32]) -> Var {
    assert_eq!(value.len(), grad.len(), "{name}");
    Var {
        name: name.into(),
        value: value.to_vec(),
        grad: grad.to_vec(),
    }
}

/// Checks up to `sample` elements of every variable (all of them if fewer):
/// `eval(k, v)` is (L, S) with variable k replaced by v. `layers` chained layers scale rho.
fn check(
    vars: &[Var],
    sample: usize,
    layers: usize,
    rng: &mut AmbientRng,
    eval: impl Fn(usize, &[f32]) -> (f64, f64),
) {
    let rho = RHO_LAYER * layers as f64;
    for (k, v) in vars.iter().enumerate() {
        let n = v.value.len();
        let idx: Vec<usize> = if n <= sample {
            (0..n).collect()
        } else {
            (0..sample).map(|_| rng.below(n as u32) as usize).collect()
        };
        let gmax = v.grad.iter().fold(0.0f64, |m, &g| m.max(g.abs() as f64));
        let (mut worst_tol, mut worst_ratio) = (0.0f64, 0.0f64);
        for &i in &idx {
            let mut xp = v.value.clone();
            let mut xm = v.value.clone();
            xp[i] = (v.value[i] as f64 + H) as f32;
            xm[i] = (v.value[i] as f64 - H) as f32;
            let step = xp[i] as f64 - xm[i] as f64;
            let (lp, sp) = eval(k, &xp);
            let (lm, sm) = eval(k, &xm);
            let fd = (lp - lm) / step;
            let tol = 4.0 * rho * (sp + sm) / (2.0 * step) + TRUNC * gmax;
            worst_tol = worst_tol.max(tol);
            let g = v.grad[i] as f64;
            worst_ratio = worst_ratio.max((fd - g).abs() / tol);
            assert!(
                (fd - g).abs() <= tol,
                "{}[{i}]: backward {g:.6e}, finite difference {fd:.6e}, tolerance {tol:.2e}",
                v.name
            );
        }
        eprintln!(
            "{}: {} elements, largest |error| / tolerance {worst_ratio:.2}, tolerance <= {worst_tol:.1e}, max |grad| {gmax:.1e}",
            v.name,
            idx.len()
        );
        // The check could have failed: a wrong gradient errs by the order of the gradient
        // itself, and the largest is well above what the check tolerates.
        assert!(
            gmax > 4.0 * worst_tol,
            "{}: gradients ({gmax:.2e}) not above the tolerance ({worst_tol:.2e})",
            v.name
        );
    }
}

/// Variables of every tensor of `params` (value and gradient from `grads`).
fn param_vars(params: &ParamStore, grads: &ParamStore) -> Vec<Var> {
    params
        .params
        .iter()
        .zip(&grads.params)
        .map(|(p, g)| var(&p.name, &p.data, &g.data))
        .collect()
}

fn with_param(params: &ParamStore, k: usize, v: &[f32]) -> ParamStore {
    let mut p = params.clone();
    p.params[k].data.copy_from_slice(v);
    p
}

fn arr4(like: &Array4<f32>, v: &[f32]) -> Array4<f32> {
    Array4::from_shape_vec(like.dim(), v.to_vec()).unwrap()
}

fn conv_layout(p: &str, cin: usize, cout: usize, k: usize) -> Layout {
    vec![
        (format!("{p}.weight"), vec![cout, cin, k, k]),
        (format!("{p}.gate"), vec![cout, cin, k, k]),
        (format!("{p}.bias"), vec![cout]),
    ]
}

fn gated_conv_case(k: usize) {
    let mut rng = AmbientRng::new(10 + k as u64);
    let (cin, cout) = (3, 4);
    let layout = conv_layout("c", cin, cout, k);
    let conv = GatedConv::new(&layout, "c", cin, cout, k).unwrap();
    let params = random_params(&layout, &mut rng);
    let x = normal4(&mut rng, (2, cin, 5, 6), 1.0);
    let (out, cache) = conv.forward(&params, &x);
    let r = normal4(&mut rng, out.dim(), 1.0);
    let mut grads = params.zeros_like();
    let dx = conv.backward(&params, &cache, &r, Some(&mut grads));
    let mut vars = param_vars(&params, &grads);
    vars.push(var("x", x.as_slice().unwrap(), dx.as_slice().unwrap()));
    let np = params.params.len();
    check(&vars, 40, 1, &mut rng, |k, v| {
        let (p, xx) = if k < np {
            (with_param(&params, k, v), x.clone())
        } else {
            (params.clone(), arr4(&x, v))
        };
        pair(&r, &conv.forward(&p, &xx).0)
    });
    // Without parameter gradients the input gradient is the same.
    assert_eq!(conv.backward(&params, &cache, &r, None), dx);
}

#[test]
fn gated_conv_k3() {
    gated_conv_case(3);
}

#[test]
fn gated_conv_k1() {
    gated_conv_case(1);
}

/// GroupNorm alone (`silu` false) and fused with the SiLU that follows it in the network.
fn group_norm_case(silu: bool) {
    let mut rng = AmbientRng::new(20 + silu as u64);
    let layout: Layout = vec![("g.weight".into(), vec![6]), ("g.bias".into(), vec![6])];
    let gn = GroupNorm::new(&layout, "g", 6, 3).unwrap();
    let params = random_params(&layout, &mut rng);
    // A non-zero mean and a non-unit spread, so the normalisation does something.
    let x = normal4(&mut rng, (2, 6, 3, 4), 2.0).mapv(|v| v + 0.7);
    let fwd = |p: &ParamStore, xx: &Array4<f32>| {
        if silu {
            gn.forward_silu(p, xx)
        } else {
            gn.forward(p, xx)
        }
    };
    let (out, cache) = fwd(&params, &x);
    let r = normal4(&mut rng, out.dim(), 1.0);
    let mut grads = params.zeros_like();
    let dx = if silu {
        gn.backward_silu(&params, &cache, &r, Some(&mut grads))
    } else {
        gn.backward(&params, &cache, &r, Some(&mut grads))
    };
    let mut vars = param_vars(&params, &grads);
    vars.push(var("x", x.as_slice().unwrap(), dx.as_slice().unwrap()));
    check(&vars, 1000, 2, &mut rng, |k, v| {
        let (p, xx) = if k < 2 {
            (with_param(&params, k, v), x.clone())
        } else {
            (params.clone(), arr4(&x, v))
        };
        pair(&r, &fwd(&p, &xx).0)
    });
    if silu {
        // The fused inference pass gives the same output.
        assert_eq!(gn.forward_silu_inference(&params, &x), out);
    }
}

#[test]
fn group_norm() {
    group_norm_case(false);
}

#[test]
fn group_norm_silu() {
    group_norm_case(true);
}

#[test]
fn silu_layer() {
    let mut rng = AmbientRng::new(30);
    let x = normal4(&mut rng, (2, 3, 2, 2), 2.0);
    let r = normal4(&mut rng, x.dim(), 1.0);
    let dx = silu_backward(&x, &r);
    let vars = [var("x", x.as_slice().unwrap(), dx.as_slice().unwrap())];
    check(&vars, 1000, 1, &mut rng, |_, v| {
        pair(&r, &silu(&arr4(&x, v)))
    });
}

#[test]
fn linear_layer() {
    let mut rng = AmbientRng::new(40);
    let layout: Layout = vec![("l.weight".into(), vec![5, 7]), ("l.bias".into(), vec![5])];
    let lin = Linear::new(&layout, "l", 7, 5).unwrap();
    let params = random_params(&layout, &mut rng);
    let x = normal2(&mut rng, (3, 7), 1.0);
    let out = lin.forward(&params, &x);
    let r = normal2(&mut rng, out.dim(), 1.0);
    let mut grads = params.zeros_like();
    let dx = lin.backward(&params, &x, &r, Some(&mut grads));
    let mut vars = param_vars(&params, &grads);
    vars.push(var("x", x.as_slice().unwrap(), dx.as_slice().unwrap()));
    check(&vars, 1000, 1, &mut rng, |k, v| {
        let (p, xx) = if k < 2 {
            (with_param(&params, k, v), x.clone())
        } else {
            (
                params.clone(),
                Array2::from_shape_vec(x.dim(), v.to_vec()).unwrap(),
            )
        };
        pair(&r, &lin.forward(&p, &xx))
    });
}

#[test]
fn avg_pool_and_upsample() {
    let mut rng = AmbientRng::new(50);
    let x = normal4(&mut rng, (2, 2, 4, 6), 1.0);
    let r = normal4(&mut rng, (2, 2, 2, 3), 1.0);
    let dx = avg_pool_2x2_backward(&r);
    let vars = [var("pool.x", x.as_slice().unwrap(), dx.as_slice().unwrap())];
    check(&vars, 1000, 1, &mut rng, |_, v| {
        pair(&r, &avg_pool_2x2(&arr4(&x, v)))
    });

    let x = normal4(&mut rng, (2, 2, 2, 3), 1.0);
    let r = normal4(&mut rng, (2, 2, 4, 6), 1.0);
    let dx = upsample_nearest_2x_backward(&r);
    let vars = [var("up.x", x.as_slice().unwrap(), dx.as_slice().unwrap())];
    check(&vars, 1000, 1, &mut rng, |_, v| {
        pair(&r, &upsample_nearest_2x(&arr4(&x, v)))
    });
}

#[test]
fn concat_layer() {
    let mut rng = AmbientRng::new(60);
    let a = normal4(&mut rng, (2, 3, 2, 2), 1.0);
    let b = normal4(&mut rng, (2, 2, 2, 2), 1.0);
    let r = normal4(&mut rng, (2, 5, 2, 2), 1.0);
    let (da, db) = split_channels(&r, 3);
    let vars = [
        var("a", a.as_slice().unwrap(), da.as_slice().unwrap()),
        var("b", b.as_slice().unwrap(), db.as_slice().unwrap()),
    ];
    check(&vars, 1000, 1, &mut rng, |k, v| {
        let out = if k == 0 {
            concat_channels(&arr4(&a, v), &b)
        } else {
            concat_channels(&a, &arr4(&b, v))
        };
        pair(&r, &out)
    });
}

#[test]
fn noise_embedding() {
    let mut rng = AmbientRng::new(70);
    let ch = 6;
    let layout: Layout = vec![
        ("emb.fc1.weight".into(), vec![4 * ch, ch]),
        ("emb.fc1.bias".into(), vec![4 * ch]),
        ("emb.fc2.weight".into(), vec![4 * ch, 4 * ch]),
        ("emb.fc2.bias".into(), vec![4 * ch]),
    ];
    let emb = NoiseEmbedding::new(&layout, ch).unwrap();
    let params = random_params(&layout, &mut rng);
    // c_noise = ln(s)/4 for s = 0.002, 0.3, 80: the range the sampler uses.
    let c_noise = [-1.554f32, -0.301, 1.096];
    let (out, cache) = emb.forward(&params, &c_noise);
    let r = normal2(&mut rng, out.dim(), 1.0);
    let mut grads = params.zeros_like();
    let dc = emb.backward(&params, &cache, &r, Some(&mut grads));
    let mut vars = param_vars(&params, &grads);
    vars.push(var("c_noise", &c_noise, &dc));
    check(&vars, 60, 4, &mut rng, |k, v| {
        if k < 4 {
            pair(&r, &emb.forward(&with_param(&params, k, v), &c_noise).0)
        } else {
            pair(&r, &emb.forward(&params, v).0)
        }
    });
}

fn resblock_case(cin: usize, cout: usize, seed: u64) {
    let mut rng = AmbientRng::new(seed);
    let emb_dim = 8;
    let mut layout: Layout = vec![
        ("b.norm1.weight".into(), vec![cin]),
        ("b.norm1.bias".into(), vec![cin]),
    ];
    layout.extend(conv_layout("b.conv1", cin, cout, 3));
    layout.push(("b.emb_proj.weight".into(), vec![cout, emb_dim]));
    layout.push(("b.emb_proj.bias".into(), vec![cout]));
    layout.push(("b.norm2.weight".into(), vec![cout]));
    layout.push(("b.norm2.bias".into(), vec![cout]));
    layout.extend(conv_layout("b.conv2", cout, cout, 3));
    if cin != cout {
        layout.extend(conv_layout("b.skip", cin, cout, 1));
    }
    let block = ResBlock::new(&layout, "b", cin, cout, 2, emb_dim).unwrap();
    let params = random_params(&layout, &mut rng);
    let x = normal4(&mut rng, (2, cin, 4, 4), 1.0);
    let e = normal2(&mut rng, (2, emb_dim), 1.0);
    let (out, cache) = block.forward(&params, &x, &e);
    let r = normal4(&mut rng, out.dim(), 1.0);
    let mut grads = params.zeros_like();
    let (dx, de) = block.backward(&params, &cache, &r, Some(&mut grads));
    let mut vars = param_vars(&params, &grads);
    vars.push(var("x", x.as_slice().unwrap(), dx.as_slice().unwrap()));
    vars.push(var("emb", e.as_slice().unwrap(), de.as_slice().unwrap()));
    let np = params.params.len();
    check(&vars, 12, 8, &mut rng, |k, v| {
        let (mut p, mut xx, mut ee) = (params.clone(), x.clone(), e.clone());
        if k < np {
            p = with_param(&params, k, v);
        } else if k == np {
            xx = arr4(&x, v);
        } else {
            ee = Array2::from_shape_vec(e.dim(), v.to_vec()).unwrap();
        }
        pair(&r, &block.forward(&p, &xx, &ee).0)
    });
}

#[test]
fn resblock_with_skip() {
    resblock_case(4, 6, 80);
}

#[test]
fn resblock_without_skip() {
    resblock_case(4, 4, 81);
}

fn tiny_config() -> UNetConfig {
    UNetConfig {
        img_channels: 1,
        img_resolution: 8,
        ch: 8,
        mult: vec![1, 2],
        blocks: 1,
        groups: 4,
        sigma_data: 0.5,
    }
}

/// The whole network: a random sample of elements of every parameter tensor, and of F_in.
#[test]
fn whole_network() {
    let mut rng = AmbientRng::new(90);
    let cfg = tiny_config();
    let net = UNet::new(&cfg).unwrap();
    let params = random_params(&spec_layout(&cfg), &mut rng);
    let f_in = normal4(&mut rng, (2, 2, 8, 8), 1.0);
    let c_noise = [-0.9f32, 0.4];
    let (f, cache) = net.forward(&params, &f_in, &c_noise);
    let r = normal4(&mut rng, f.dim(), 1.0);
    let mut grads = params.zeros_like();
    let d_in = net.backward(&params, &cache, &r, &mut grads);
    let mut vars = param_vars(&params, &grads);
    vars.push(var(
        "F_in",
        f_in.as_slice().unwrap(),
        d_in.as_slice().unwrap(),
    ));
    let np = params.params.len();
    // About 35 layers in a chain from F_in to F.
    check(&vars, 3, 35, &mut rng, |k, v| {
        let out = if k < np {
            net.forward_inference(&with_param(&params, k, v), &f_in, &c_noise)
        } else {
            net.forward_inference(&params, &arr4(&f_in, v), &c_noise)
        };
        pair(&r, &out)
    });
    // The input-only backward pass agrees with the full one.
    assert_eq!(net.backward_input(&params, &cache, &r), d_in);
}

/// The preconditioned denoiser: dL/dy through c_skip, c_in and the network, for sigmas
/// where each path dominates, with a mask hiding some pixels.
#[test]
fn denoiser_backward_wrt_y() {
    let mut rng = AmbientRng::new(100);
    let cfg = tiny_config();
    let net = UNet::new(&cfg).unwrap();
    let params = random_params(&spec_layout(&cfg), &mut rng);
    let mask = Array4::from_shape_fn((3, 1, 8, 8), |(i, _, y, x)| {
        ((i + y * 3 + x) % 4 != 0) as u8 as f32
    });
    let y = normal4(&mut rng, (3, 1, 8, 8), 1.0) * &mask;
    let sigmas = [0.05f32, 0.7, 5.0];
    let (d, tape) = denoise_train(&net, &params, &y, &mask, &sigmas);
    let r = normal4(&mut rng, d.dim(), 1.0);
    let mut grads = params.zeros_like();
    let dy = denoise_backward(&net, &params, &tape, &r, &mut grads);
    let vars = [var("y", y.as_slice().unwrap(), dy.as_slice().unwrap())];
    check(&vars, 40, 36, &mut rng, |_, v| {
        pair(
            &r,
            &denoise_train(&net, &params, &arr4(&y, v), &mask, &sigmas).0,
        )
    });
}
