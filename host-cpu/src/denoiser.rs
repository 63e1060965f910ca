//! The preconditioned mask-aware denoiser of the spec ("Preconditioning"):
//! `F_in = [c_in y, m]`, `F = F(F_in, ln(s)/4)`,
//! `D = m (c_skip y + c_out F) + (1 - m) sd F`, its backward pass for training (parameter
//! gradients and dL/dy) and the core's `Denoiser` trait on top of it.

use crate::params::ParamStore;
use crate::tensor_nd::NdTensor;
use crate::unet::{ForwardCache, UNet};
use ambient_core::precond::{c_in, c_noise, c_skip, output_scale, precondition_output};
use ambient_core::{CoreError, Denoiser};
use ndarray::{s, Array4, Axis, Zip};
use thiserror::Error;

/// Why a denoiser call was refused.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum DenoiseError {
    #[error("shape: {0}")]
    Shape(String),
    #[error("sigma: {0}")]
    Sigma(String),
    #[error("batch: {0}")]
    Batch(String),
    #[error("parameters: {0}")]
    Params(String),
}

/// What [`denoise_backward`] needs from [`denoise_train`].
#[derive(Debug, Clone)]
pub struct DenoiseTape {
    cache: ForwardCache,
    mask: Array4<f32>,
    sigmas: Vec<f32>,
}

/// Checks `y`, `mask` (same shape, C = img_channels, size the network takes) and one
/// positive finite sigma per sample, and the parameters.
pub fn check_denoise_input(
    net: &UNet,
    params: &ParamStore,
    y: &Array4<f32>,
    mask: &Array4<f32>,
    sigmas: &[f32],
) -> Result<(), DenoiseError> {
    net.check_params(params).map_err(DenoiseError::Params)?;
    if y.dim() != mask.dim() {
        return Err(DenoiseError::Shape(format!(
            "y {:?} and mask {:?} differ",
            y.dim(),
            mask.dim()
        )));
    }
    let (n, c, h, w) = y.dim();
    if c != net.config().img_channels {
        return Err(DenoiseError::Shape(format!(
            "{c} channels, the network takes {}",
            net.config().img_channels
        )));
    }
    if sigmas.len() != n || n > ambient_core::precond::MAX_BATCH {
        return Err(DenoiseError::Batch(format!(
            "{} sigmas for {n} samples (at most {})",
            sigmas.len(),
            ambient_core::precond::MAX_BATCH
        )));
    }
    if let Some(s) = sigmas.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(DenoiseError::Sigma(format!(
            "{s} is not positive and finite"
        )));
    }
    if n == 0 {
        return Err(DenoiseError::Shape("empty batch".into()));
    }
    // The network's own check of the spatial size, on a one-sample probe.
    let probe = Array4::<f32>::zeros((1, 2 * c, h, w));
    net.check_input(&probe, &[0.0]).map_err(DenoiseError::Shape)
}

fn assert_input(net: &UNet, params: &ParamStore, y: &Array4<f32>, m: &Array4<f32>, s: &[f32]) {
    if let Err(e) = check_denoise_input(net, params, y, m, s) {
        panic!("denoiser: {e} (check with check_denoise_input first)");
    }
}

/// `F_in = [c_in(s) y, m]` and `c_noise = ln(s) / 4`, per sample.
fn network_input(
    y: &Array4<f32>,
    mask: &Array4<f32>,
    sigmas: &[f32],
    sd: f32,
) -> (Array4<f32>, Vec<f32>) {
    let (n, c, h, w) = y.dim();
    let mut f_in = Array4::<f32>::zeros((n, 2 * c, h, w));
    for (i, &s) in sigmas.iter().enumerate() {
        let ci = c_in(s, sd);
        let mut fi = f_in.index_axis_mut(Axis(0), i);
        Zip::from(fi.slice_mut(s![..c, .., ..]))
            .and(y.index_axis(Axis(0), i))
            .for_each(|o, &v| *o = ci * v);
        fi.slice_mut(s![c.., .., ..])
            .assign(&mask.index_axis(Axis(0), i));
    }
    (f_in, sigmas.iter().map(|&s| c_noise(s)).collect())
}

/// `D = m (c_skip y + c_out F) + (1 - m) sd F`.
fn precondition(
    y: &Array4<f32>,
    mask: &Array4<f32>,
    f: Array4<f32>,
    sigmas: &[f32],
    sd: f32,
) -> Array4<f32> {
    let (y, m, f) = (NdTensor(y.clone()), NdTensor(mask.clone()), NdTensor(f));
    let mut out = NdTensor(Array4::zeros(y.0.dim()));
    let mut scratch = NdTensor(Array4::zeros(y.0.dim()));
    precondition_output(&y, &m, &f, sigmas, sd, &mut out, &mut scratch);
    out.0
}

/// `D(y, mask, s)` for a batch, one sigma per sample (inference: nothing kept). Panics on
/// inputs that [`check_denoise_input`] rejects.
pub fn denoise(
    net: &UNet,
    params: &ParamStore,
    y: &Array4<f32>,
    mask: &Array4<f32>,
    sigmas: &[f32],
) -> Array4<f32> {
    assert_input(net, params, y, mask, sigmas);
    let sd = net.config().sigma_data;
    let (f_in, cn) = network_input(y, mask, sigmas, sd);
    let f = net.forward_inference(params, &f_in, &cn);
    precondition(y, mask, f, sigmas, sd)
}

/// `D(y, mask, s)` and the tape for [`denoise_backward`].
pub fn denoise_train(
    net: &UNet,
    params: &ParamStore,
    y: &Array4<f32>,
    mask: &Array4<f32>,
    sigmas: &[f32],
) -> (Array4<f32>, DenoiseTape) {
    assert_input(net, params, y, mask, sigmas);
    let sd = net.config().sigma_data;
    let (f_in, cn) = network_input(y, mask, sigmas, sd);
    let (f, cache) = net.forward(params, &f_in, &cn);
    let d = precondition(y, mask, f, sigmas, sd);
    let tape = DenoiseTape {
        cache,
        mask: mask.clone(),
        sigmas: sigmas.to_vec(),
    };
    (d, tape)
}

/// Given dL/dD: accumulates the parameter gradients into `grads` and returns dL/dy.
pub fn denoise_backward(
    net: &UNet,
    params: &ParamStore,
    tape: &DenoiseTape,
    d_d: &Array4<f32>,
    grads: &mut ParamStore,
) -> Array4<f32> {
    backward(net, params, tape, d_d, Some(grads))
}

/// dL/dy = m c_skip dL/dD + c_in dL/dF_in[:, :C], with dL/dF = (c_out m + sd (1 - m)) dL/dD.
fn backward(
    net: &UNet,
    params: &ParamStore,
    tape: &DenoiseTape,
    d_d: &Array4<f32>,
    grads: Option<&mut ParamStore>,
) -> Array4<f32> {
    assert_eq!(d_d.dim(), tape.mask.dim(), "denoise_backward: dL/dD shape");
    let sd = net.config().sigma_data;
    let m = NdTensor(tape.mask.clone());
    let mut d_f = NdTensor(Array4::zeros(d_d.dim()));
    output_scale(&m, &tape.sigmas, sd, &mut d_f);
    d_f.0 *= d_d;
    let d_fin = match grads {
        Some(g) => net.backward(params, &tape.cache, &d_f.0, g),
        None => net.backward_input(params, &tape.cache, &d_f.0),
    };
    let c = d_d.dim().1;
    let mut d_y = Array4::<f32>::zeros(d_d.dim());
    for (i, &s) in tape.sigmas.iter().enumerate() {
        let (ck, ci) = (c_skip(s, sd), c_in(s, sd));
        Zip::from(d_y.index_axis_mut(Axis(0), i))
            .and(d_d.index_axis(Axis(0), i))
            .and(tape.mask.index_axis(Axis(0), i))
            .and(d_fin.slice(s![i, ..c, .., ..]))
            .for_each(|o, &dd, &mm, &df| *o = mm * ck * dd + ci * df);
    }
    d_y
}

/// The trained network as the core's `Denoiser` (one sigma for the whole batch).
pub struct CpuDenoiser<'a> {
    pub net: &'a UNet,
    pub params: &'a ParamStore,
}

// The message below names MAX_BATCH's value.
const _: () = assert!(ambient_core::precond::MAX_BATCH == 1024);

fn core_error(e: DenoiseError) -> CoreError {
    match e {
        DenoiseError::Shape(_) => CoreError::Denoiser("input shape does not fit the network"),
        DenoiseError::Sigma(_) => CoreError::InvalidParameter("sigma must be positive and finite"),
        DenoiseError::Batch(_) => CoreError::InvalidParameter(
            "batch larger than the denoiser takes at once (MAX_BATCH = 1024)",
        ),
        DenoiseError::Params(_) => CoreError::Denoiser("parameters do not fit the network"),
    }
}

impl CpuDenoiser<'_> {
    fn sigmas(&self, y: &NdTensor, mask: &NdTensor, sigma: f32) -> Result<Vec<f32>, CoreError> {
        let sigmas = vec![sigma; y.0.dim().0];
        check_denoise_input(self.net, self.params, &y.0, &mask.0, &sigmas).map_err(core_error)?;
        Ok(sigmas)
    }
}

impl Denoiser<NdTensor> for CpuDenoiser<'_> {
    fn denoise(
        &mut self,
        y: &NdTensor,
        mask: &NdTensor,
        sigma: f32,
        out: &mut NdTensor,
    ) -> Result<(), CoreError> {
        let sigmas = self.sigmas(y, mask, sigma)?;
        if out.0.dim() != y.0.dim() {
            return Err(CoreError::ShapeMismatch {
                what: "denoise output",
                expected: y.0.len(),
                got: out.0.len(),
            });
        }
        out.0 = denoise(self.net, self.params, &y.0, &mask.0, &sigmas);
        Ok(())
    }

    fn denoise_vjp(
        &mut self,
        y: &NdTensor,
        mask: &NdTensor,
        sigma: f32,
        cotangent: &NdTensor,
        grad_y: &mut NdTensor,
    ) -> Result<(), CoreError> {
        let sigmas = self.sigmas(y, mask, sigma)?;
        for (what, t) in [("cotangent", &cotangent.0), ("grad_y", &grad_y.0)] {
            if t.dim() != y.0.dim() {
                return Err(CoreError::ShapeMismatch {
                    what,
                    expected: y.0.len(),
                    got: t.len(),
                });
            }
        }
        let (_, tape) = denoise_train(self.net, self.params, &y.0, &mask.0, &sigmas);
        grad_y.0 = backward(self.net, self.params, &tape, &cotangent.0, None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UNetConfig;
    use crate::init::init_params;
    use ambient_core::AmbientRng;

    fn setup() -> (UNet, ParamStore, Array4<f32>, Array4<f32>) {
        let cfg = UNetConfig {
            img_channels: 1,
            img_resolution: 4,
            ch: 4,
            mult: vec![1, 1],
            blocks: 1,
            groups: 2,
            sigma_data: 0.5,
        };
        let net = UNet::new(&cfg).unwrap();
        let mut rng = AmbientRng::new(3);
        let mut params = init_params(&cfg, &mut rng);
        // Non-zero conv2 / out_conv weights, so that D depends on y through the network.
        for p in params.params.iter_mut() {
            p.data.iter_mut().for_each(|v| *v += 0.1 * rng.normal());
        }
        let m = Array4::from_shape_fn((2, 1, 4, 4), |(i, _, y, x)| {
            ((i + y + 2 * x) % 3 != 0) as u8 as f32
        });
        let y = Array4::from_shape_fn((2, 1, 4, 4), |(i, _, r, c)| {
            (i as f32 - 0.5) * (r as f32 - c as f32) * 0.3
        }) * &m;
        (net, params, y, m)
    }

    /// The trait's denoise and vjp are the functions of this module with one sigma repeated.
    #[test]
    fn cpu_denoiser_matches_the_functions() {
        let (net, params, y, m) = setup();
        let sigma = 0.4;
        let mut den = CpuDenoiser {
            net: &net,
            params: &params,
        };
        let mut out = NdTensor(Array4::zeros(y.dim()));
        den.denoise(&NdTensor(y.clone()), &NdTensor(m.clone()), sigma, &mut out)
            .unwrap();
        assert_eq!(out.0, denoise(&net, &params, &y, &m, &[sigma, sigma]));
        let cot = y.mapv(|v| v + 0.25);
        let mut gy = NdTensor(Array4::zeros(y.dim()));
        den.denoise_vjp(
            &NdTensor(y.clone()),
            &NdTensor(m.clone()),
            sigma,
            &NdTensor(cot.clone()),
            &mut gy,
        )
        .unwrap();
        let (_, tape) = denoise_train(&net, &params, &y, &m, &[sigma, sigma]);
        let mut grads = params.zeros_like();
        let want = denoise_backward(&net, &params, &tape, &cot, &mut grads);
        assert_eq!(gy.0, want);
        assert!(want.iter().any(|&v| v != 0.0));
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let (net, params, y, m) = setup();
        let mut den = CpuDenoiser {
            net: &net,
            params: &params,
        };
        let (yt, mt) = (NdTensor(y.clone()), NdTensor(m.clone()));
        let mut out = NdTensor(Array4::zeros(y.dim()));
        for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert_eq!(
                den.denoise(&yt, &mt, bad, &mut out),
                Err(CoreError::InvalidParameter(
                    "sigma must be positive and finite"
                ))
            );
        }
        let empty = NdTensor(Array4::zeros((0, 1, 4, 4)));
        assert!(den.denoise(&empty, &empty, 1.0, &mut out).is_err());
        let small = NdTensor(Array4::zeros((2, 1, 3, 3)));
        assert!(den.denoise(&small, &small, 1.0, &mut out).is_err());
        let mut wrong_out = NdTensor(Array4::zeros((1, 1, 4, 4)));
        assert!(matches!(
            den.denoise(&yt, &mt, 1.0, &mut wrong_out),
            Err(CoreError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            check_denoise_input(&net, &params, &y, &m, &[1.0]),
            Err(DenoiseError::Batch(_))
        ));
        // More samples than the denoiser takes at once: said so, not blamed on sigma.
        let (_, c, h, w) = y.dim();
        let big = NdTensor(Array4::zeros((
            ambient_core::precond::MAX_BATCH + 1,
            c,
            h,
            w,
        )));
        let mut big_out = big.clone();
        assert_eq!(
            den.denoise(&big, &big, 1.0, &mut big_out),
            Err(CoreError::InvalidParameter(
                "batch larger than the denoiser takes at once (MAX_BATCH = 1024)"
            ))
        );
        let mut short = params.clone();
        short.params.pop();
        assert!(matches!(
            check_denoise_input(&net, &short, &y, &m, &[1.0, 1.0]),
            Err(DenoiseError::Params(_))
        ));
        let mut cfg = net.config().clone();
        cfg.groups = 3;
        assert!(UNet::new(&cfg).is_err());
    }
}
