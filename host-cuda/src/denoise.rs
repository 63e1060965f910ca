//! The preconditioned mask-aware denoiser of the spec over [`Ops`]:
//! `F_in = [c_in y, m]`, `F = F(F_in, ln(s)/4)`, `D = m (c_skip y + c_out F) + (1 - m) sd F`,
//! and, for training, dL/dF from dL/dD (and dL/dy for reconstruction guidance). The per-sample coefficients are the core's functions,
//! computed on the host (one value per sample) and uploaded.

use crate::net::{Net, Tape};
use crate::ops::{Ops, OpsError, SampleCoefs};
use ambient_core::precond::{c_in, c_noise, c_out, c_skip};

/// The coefficients of `sigmas` on the device, and the c_noise values on the host.
pub fn sample_coefs<O: Ops>(
    ops: &O,
    sigmas: &[f32],
    sd: f32,
) -> Result<(SampleCoefs<O::Buf>, Vec<f32>), OpsError> {
    if let Some(s) = sigmas.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(OpsError::Invalid(format!(
            "sigma {s} is not positive and finite"
        )));
    }
    let map =
        |f: &dyn Fn(f32) -> f32| ops.upload(&sigmas.iter().map(|&s| f(s)).collect::<Vec<f32>>());
    let coefs = SampleCoefs {
        c_skip: map(&|s| c_skip(s, sd))?,
        c_out: map(&|s| c_out(s, sd))?,
        c_in: map(&|s| c_in(s, sd))?,
        inv_s2: map(&|s| 1.0 / (s * s))?,
    };
    Ok((coefs, sigmas.iter().map(|&s| c_noise(s)).collect()))
}

/// What [`denoise_backward`] needs.
pub struct DenoiseTape<B> {
    pub tape: Tape<B>,
    pub coefs: SampleCoefs<B>,
}

/// `D(y, m, s)` for a batch [n, C, h, w] (one sigma per sample) and its tape.
pub fn denoise<O: Ops>(
    net: &Net<'_, O>,
    params: &O::Buf,
    y: &O::Buf,
    m: &O::Buf,
    sigmas: &[f32],
    h: usize,
    w: usize,
) -> Result<(O::Buf, DenoiseTape<O::Buf>), OpsError> {
    let ops = net.ops;
    let cfg = &net.plan.cfg;
    let n = sigmas.len();
    let chw = cfg.img_channels * h * w;
    if ops.len(y) != n * chw || ops.len(m) != n * chw {
        return Err(OpsError::Invalid(format!(
            "y and mask must hold {n} x {chw} values"
        )));
    }
    let (coefs, cn) = sample_coefs(ops, sigmas, cfg.sigma_data)?;
    let mut f_in = ops.zeros(2 * n * chw)?;
    ops.network_input(y, m, &coefs.c_in, n, chw, &mut f_in)?;
    let (f, tape) = net.forward(params, f_in, n, h, w, &cn)?;
    let mut d = ops.zeros(n * chw)?;
    ops.precondition(y, m, &f, &coefs, cfg.sigma_data, n, chw, &mut d)?;
    Ok((d, DenoiseTape { tape, coefs }))
}

/// Given dL/dD: adds the parameter gradients into `grads` (dL/dy is not formed).
pub fn denoise_backward<O: Ops>(
    net: &Net<'_, O>,
    params: &O::Buf,
    t: DenoiseTape<O::Buf>,
    m: &O::Buf,
    d_d: &O::Buf,
    grads: &mut O::Buf,
) -> Result<(), OpsError> {
    let ops = net.ops;
    let len = ops.len(d_d);
    let n = ops.len(&t.coefs.c_out);
    let mut d_f = ops.zeros(len)?;
    ops.output_scale_mul(
        d_d,
        m,
        &t.coefs,
        net.plan.cfg.sigma_data,
        n,
        len / n,
        &mut d_f,
    )?;
    net.backward(params, t.tape, d_f, grads)?;
    Ok(())
}

/// The vector-Jacobian product of `D` with respect to `y` (reconstruction guidance): given
/// dL/dD, `dL/dy = m c_skip dL/dD + c_in dL/dF_in[:, :C]`, composed of the primitives (the
/// parameter gradients the backward pass also forms are discarded). `y` [n, chw].
pub fn denoise_vjp<O: Ops>(
    net: &Net<'_, O>,
    params: &O::Buf,
    t: DenoiseTape<O::Buf>,
    m: &O::Buf,
    d_d: &O::Buf,
) -> Result<O::Buf, OpsError> {
    let ops = net.ops;
    let len = ops.len(d_d);
    let n = ops.len(&t.coefs.c_out);
    let chw = len / n;
    let sd = net.plan.cfg.sigma_data;
    let mut d_f = ops.zeros(len)?;
    ops.output_scale_mul(d_d, m, &t.coefs, sd, n, chw, &mut d_f)?;
    let mut unused = ops.zeros(net.plan.total)?;
    let coefs = t.coefs;
    let d_fin = net.backward(params, t.tape, d_f, &mut unused)?;
    // c_in dF_in[:, :C]: the first half of each sample of F_in's gradient, through the
    // network_input kernel (which scales the first half by c_in), then taken out again.
    let mut d_fy = ops.zeros(len)?;
    ops.copy_rows(n, chw, &d_fin, 0, 2 * chw, &mut d_fy, 0, chw)?;
    let mut scaled = ops.zeros(2 * len)?;
    ops.network_input(&d_fy, m, &coefs.c_in, n, chw, &mut scaled)?;
    let mut grad_y = ops.zeros(len)?;
    ops.copy_rows(n, chw, &scaled, 0, 2 * chw, &mut grad_y, 0, chw)?;
    // m c_skip dL/dD: the preconditioning with F = 0.
    let zero = ops.zeros(len)?;
    let mut skip = ops.zeros(len)?;
    ops.precondition(d_d, m, &zero, &coefs, sd, n, chw, &mut skip)?;
    ops.axpby(&mut grad_y, 1.0, &skip, 1.0)?;
    Ok(grad_y)
}
