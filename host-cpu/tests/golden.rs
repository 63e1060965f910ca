//! Cross-check against the golden vectors of an independent PyTorch implementation of the spec
//! (tests/golden/README.md): the noise embedding, F, D, the ambient loss computed here from its
//! formula, dL/dy and every parameter gradient, for the "tiny" and the "spec" configurations.
//!
//! Tolerances (README): emb, F and D to about 1e-5 relative to their scale; gradients to about
//! 1e-3 relative (summation order differs). "Relative to scale" is measured as
//! max |ours - theirs| / max |theirs| over a tensor, so that near-zero entries of a tensor do
//! not demand more than f32 can deliver.

use ambient_core::precond::c_out;
use ambient_cpu::config::UNetConfig;
use ambient_cpu::denoiser::{denoise, denoise_backward, denoise_train};
use ambient_cpu::params::ParamStore;
use ambient_cpu::unet::UNet;
use ndarray::{Array2, Array4, ArrayD, IxDyn};
use safetensors::SafeTensors;
use std::path::PathBuf;

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden")
        .join(name)
}

fn to_f32(view: &safetensors::tensor::TensorView<'_>) -> Vec<f32> {
    assert_eq!(view.dtype(), safetensors::Dtype::F32);
    view.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

struct Golden {
    cfg: UNetConfig,
    params: ParamStore,
    vectors: Vec<u8>,
}

impl Golden {
    fn load(which: &str) -> Golden {
        let wbytes = std::fs::read(golden_path(&format!("{which}.weights.safetensors"))).unwrap();
        let vectors = std::fs::read(golden_path(&format!("{which}.vectors.safetensors"))).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&wbytes).unwrap();
        let cfg_json = meta.metadata().as_ref().unwrap()["config"].clone();
        let cfg: UNetConfig = serde_json::from_str(&cfg_json).unwrap();
        let st = SafeTensors::deserialize(&wbytes).unwrap();
        let net = UNet::new(&cfg).unwrap();
        let mut params = ParamStore::zeros(net.layout());
        for p in params.params.iter_mut() {
            let v = st
                .tensor(&p.name)
                .unwrap_or_else(|_| panic!("{} missing", p.name));
            assert_eq!(v.shape(), &p.shape[..], "{}", p.name);
            p.data = to_f32(&v);
        }
        assert_eq!(st.names().len(), params.params.len(), "no extra tensors");
        Golden {
            cfg,
            params,
            vectors,
        }
    }

    fn tensor(&self, name: &str) -> ArrayD<f32> {
        let st = SafeTensors::deserialize(&self.vectors).unwrap();
        let v = st.tensor(name).unwrap_or_else(|_| panic!("{name} missing"));
        ArrayD::from_shape_vec(IxDyn(v.shape()), to_f32(&v)).unwrap()
    }

    fn image(&self, name: &str) -> Array4<f32> {
        self.tensor(name).into_dimensionality().unwrap()
    }
}

/// max |a - b| / max |b|.
fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64));
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f64, |m, (&x, &y)| m.max((x as f64 - y as f64).abs()));
    diff / scale.max(f64::MIN_POSITIVE)
}

fn check(what: &str, ours: &[f32], theirs: &[f32], tol: f64) -> f64 {
    let e = rel_err(ours, theirs);
    assert!(e <= tol, "{what}: relative error {e:.3e} > {tol:.0e}");
    e
}

fn run(which: &str) {
    let g = Golden::load(which);
    let net = UNet::new(&g.cfg).unwrap();
    let sd = g.cfg.sigma_data;
    let sigmas: Vec<f32> = g.tensor("sigma").iter().copied().collect();
    let (x0, a, at, eta, y) = (
        g.image("x0"),
        g.image("A"),
        g.image("A_tilde"),
        g.image("eta"),
        g.image("y"),
    );
    let n = sigmas.len();

    // The measurement as the README defines it, y = A~ (A x0 + s eta): a check of our reading
    // of the vectors file before anything is compared.
    let mut y_ours = Array4::<f32>::zeros(y.dim());
    for (i, &s) in sigmas.iter().enumerate() {
        let yi = (&at.index_axis(ndarray::Axis(0), i))
            * &(&(&a.index_axis(ndarray::Axis(0), i) * &x0.index_axis(ndarray::Axis(0), i))
                + &eta.index_axis(ndarray::Axis(0), i).mapv(|v| v * s));
        y_ours.index_axis_mut(ndarray::Axis(0), i).assign(&yi);
    }
    check("y", y_ours.as_slice().unwrap(), y.as_slice().unwrap(), 1e-6);

    // Noise embedding.
    let c_noise: Vec<f32> = sigmas.iter().map(|&s| s.ln() / 4.0).collect();
    let emb: Array2<f32> = net.embedding(&g.params, &c_noise);
    let e_emb = check(
        "emb",
        emb.as_slice().unwrap(),
        g.tensor("emb").as_slice().unwrap(),
        1e-5,
    );

    // Denoiser and raw network output: F = (D - m c_skip y) / (m c_out + (1 - m) sd), so F
    // is compared through the network directly.
    let (d, tape) = denoise_train(&net, &g.params, &y, &at, &sigmas);
    let d_inf = denoise(&net, &g.params, &y, &at, &sigmas);
    assert_eq!(d, d_inf, "inference and training forward agree exactly");
    let e_d = check(
        "D",
        d.as_slice().unwrap(),
        g.tensor("D").as_slice().unwrap(),
        1e-5,
    );
    let mut f_in = Array4::<f32>::zeros((n, 2 * g.cfg.img_channels, y.dim().2, y.dim().3));
    let c = g.cfg.img_channels;
    for i in 0..n {
        let ci = 1.0 / (sigmas[i] * sigmas[i] + sd * sd).sqrt();
        for ch in 0..c {
            for yy in 0..y.dim().2 {
                for xx in 0..y.dim().3 {
                    f_in[[i, ch, yy, xx]] = ci * y[[i, ch, yy, xx]];
                    f_in[[i, c + ch, yy, xx]] = at[[i, ch, yy, xx]];
                }
            }
        }
    }
    let f = net.forward_inference(&g.params, &f_in, &c_noise);
    let e_f = check(
        "F",
        f.as_slice().unwrap(),
        g.tensor("F").as_slice().unwrap(),
        1e-5,
    );

    // The ambient loss from the spec's formula: w = A~ / c_out^2 + (A - A~) / sd^2, loss =
    // mean over images of sum w (D - A x0)^2; dL/dD = 2 w (D - A x0) / N.
    let mut w = Array4::<f32>::zeros(y.dim());
    let mut loss = 0.0f64;
    let mut d_d = Array4::<f32>::zeros(y.dim());
    for ((i, ch, yy, xx), wv) in w.indexed_iter_mut() {
        let co = c_out(sigmas[i], sd);
        let (av, atv) = (a[[i, ch, yy, xx]], at[[i, ch, yy, xx]]);
        *wv = atv / (co * co) + (av - atv) / (sd * sd);
        let r = d[[i, ch, yy, xx]] - av * x0[[i, ch, yy, xx]];
        loss += (*wv * r * r) as f64 / n as f64;
        d_d[[i, ch, yy, xx]] = 2.0 * *wv * r / n as f32;
    }
    check(
        "weight",
        w.as_slice().unwrap(),
        g.tensor("weight").as_slice().unwrap(),
        1e-6,
    );
    let loss_theirs = g.tensor("loss")[[0]] as f64;
    let e_loss = (loss - loss_theirs).abs() / loss_theirs.abs();
    assert!(e_loss < 1e-4, "loss {loss} vs {loss_theirs}");

    let mut grads = g.params.zeros_like();
    let dy = denoise_backward(&net, &g.params, &tape, &d_d, &mut grads);
    let e_gi = check(
        "grad_input",
        dy.as_slice().unwrap(),
        g.tensor("grad_input").as_slice().unwrap(),
        1e-3,
    );
    let mut worst = (0.0f64, String::new());
    for p in &grads.params {
        let theirs = g.tensor(&format!("grad.{}", p.name));
        let e = check(
            &format!("grad.{}", p.name),
            &p.data,
            theirs.as_slice().unwrap(),
            1e-3,
        );
        if e > worst.0 {
            worst = (e, p.name.clone());
        }
    }
    eprintln!(
        "{which}: emb {e_emb:.1e}, F {e_f:.1e}, D {e_d:.1e}, loss {e_loss:.1e}, \
         grad_input {e_gi:.1e}, worst parameter gradient {:.1e} ({})",
        worst.0, worst.1
    );
}

#[test]
fn golden_tiny() {
    run("tiny");
}

#[test]
fn golden_spec() {
    run("spec");
}

/// One image alone (where the convolutions split their GEMMs by rows across the workers)
/// gives what it gives inside the batch (one GEMM per image): D and dL/dy, on the spec
/// configuration (28 x 28, large enough to split). Both compute every output element with
/// the same products in the same order, so they agree to rounding (1e-6 relative).
#[test]
fn single_image_matches_batch() {
    let g = Golden::load("spec");
    let net = UNet::new(&g.cfg).unwrap();
    let sigmas: Vec<f32> = g.tensor("sigma").iter().copied().collect();
    let (y, at) = (g.image("y"), g.image("A_tilde"));
    let (d, tape) = denoise_train(&net, &g.params, &y, &at, &sigmas);
    // An arbitrary cotangent: dL/dD = y + 0.5 A~.
    let d_d = &y + &at.mapv(|v| 0.5 * v);
    let mut grads = g.params.zeros_like();
    let dy = denoise_backward(&net, &g.params, &tape, &d_d, &mut grads);
    for i in 0..sigmas.len() {
        let one = |a: &Array4<f32>| a.slice(ndarray::s![i..i + 1, .., .., ..]).to_owned();
        let (d1, tape1) = denoise_train(&net, &g.params, &one(&y), &one(&at), &sigmas[i..i + 1]);
        check(
            "D (single)",
            d1.as_slice().unwrap(),
            one(&d).as_slice().unwrap(),
            1e-6,
        );
        let mut g1 = g.params.zeros_like();
        let dy1 = denoise_backward(&net, &g.params, &tape1, &one(&d_d), &mut g1);
        check(
            "dL/dy (single)",
            dy1.as_slice().unwrap(),
            one(&dy).as_slice().unwrap(),
            1e-6,
        );
    }
}
