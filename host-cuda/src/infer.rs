//! Inference on the GPU: the trained network as the core's `Denoiser` over [`CudaTensor`]
//! (with its vector-Jacobian product), so that the core's own samplers (fixed-mask, paper
//! eq. 3.3; reconstruction guidance, eq. 3.4) and single-step restoration run on the device
//! unchanged; and the two host-side drivers the CLI calls, mirroring host-cpu's
//! `sample::generate` and `restore::restore_measurements`.

use crate::cuda_ops::{CudaOps, GpuBuf};
use crate::denoise::{denoise, denoise_vjp};
use crate::error::CudaHostError;
use crate::net::{Net, NetPlan};
use crate::ops::{Ops, OpsError};
use crate::tensor::CudaTensor;
use ambient_core::sampler::{restore_single_step, sample, StepInfo};
use ambient_core::tensor::{Shape, Tensor};
use ambient_core::{CoreError, Denoiser};
use ambient_cpu::config::ModelConfig;
use ambient_cpu::params::ParamStore;
use ambient_cpu::sample::{draw_sampler_start, SampleOptions};

/// The network with its weights on the device.
pub struct CudaDenoiser<'a> {
    pub ops: &'a CudaOps,
    pub plan: &'a NetPlan,
    pub params: GpuBuf,
    /// The last device error (the trait's errors are static strings).
    pub last_error: Option<OpsError>,
}

impl<'a> CudaDenoiser<'a> {
    /// Uploads `params` (checked against the plan's layout).
    pub fn new(ops: &'a CudaOps, plan: &'a NetPlan, params: &ParamStore) -> Result<Self, OpsError> {
        if params.params.len() != plan.layout.len()
            || params
                .params
                .iter()
                .zip(&plan.layout)
                .any(|(p, (n, s, _))| &p.name != n || &p.shape != s)
        {
            return Err(OpsError::Invalid(
                "the weights do not fit the network's layout".into(),
            ));
        }
        let flat: Vec<f32> = params
            .params
            .iter()
            .flat_map(|p| p.data.iter().copied())
            .collect();
        Ok(CudaDenoiser {
            ops,
            plan,
            params: ops.upload(&flat)?,
            last_error: None,
        })
    }

    /// Copies a tensor into a pooled buffer (device to device).
    fn to_buf(&self, t: &CudaTensor) -> Result<GpuBuf, OpsError> {
        let mut b = self.ops.zeros(t.shape().len())?;
        if let Some(src) = t.buffer() {
            let g = &self.ops.gpu;
            g.kernels.copy(&g.stream, b.device_mut(), src)?;
        }
        Ok(b)
    }

    /// `out <- D(y, mask, sigma)`, or with `cotangent`, `out <- (dD/dy)^T cotangent`.
    fn run(
        &mut self,
        y: &CudaTensor,
        mask: &CudaTensor,
        sigma: f32,
        cotangent: Option<&CudaTensor>,
        out: &mut CudaTensor,
    ) -> Result<(), OpsError> {
        let s = y.shape();
        let same = |t: &CudaTensor| t.shape() == s;
        if !same(mask)
            || !same(out)
            || !cotangent.is_none_or(same)
            || s.c != self.plan.cfg.img_channels
        {
            return Err(OpsError::Invalid(
                "y, mask, cotangent and out must share the network's shape".into(),
            ));
        }
        let (yb, mb) = (self.to_buf(y)?, self.to_buf(mask)?);
        let net = Net::new(self.ops, self.plan);
        let (d, tape) = denoise(&net, &self.params, &yb, &mb, &vec![sigma; s.n], s.h, s.w)?;
        let result = match cotangent {
            None => d,
            Some(c) => {
                let cb = self.to_buf(c)?;
                denoise_vjp(&net, &self.params, tape, &mb, &cb)?
            }
        };
        if let Some(dst) = out.buffer_mut() {
            let g = &self.ops.gpu;
            g.kernels
                .copy(&g.stream, dst, &result.device().index(..s.len()))?;
        }
        Ok(())
    }
}

impl CudaDenoiser<'_> {
    fn call(
        &mut self,
        y: &CudaTensor,
        mask: &CudaTensor,
        sigma: f32,
        cotangent: Option<&CudaTensor>,
        out: &mut CudaTensor,
    ) -> Result<(), CoreError> {
        if !(sigma.is_finite() && sigma > 0.0) {
            return Err(CoreError::InvalidParameter(
                "sigma must be positive and finite",
            ));
        }
        self.run(y, mask, sigma, cotangent, out).map_err(|e| {
            self.last_error = Some(e);
            CoreError::Denoiser("CUDA denoiser failed (see its last_error)")
        })
    }
}

impl Denoiser<CudaTensor> for CudaDenoiser<'_> {
    fn denoise(
        &mut self,
        y: &CudaTensor,
        mask: &CudaTensor,
        sigma: f32,
        out: &mut CudaTensor,
    ) -> Result<(), CoreError> {
        self.call(y, mask, sigma, None, out)
    }

    fn denoise_vjp(
        &mut self,
        y: &CudaTensor,
        mask: &CudaTensor,
        sigma: f32,
        cotangent: &CudaTensor,
        grad_y: &mut CudaTensor,
    ) -> Result<(), CoreError> {
        self.call(y, mask, sigma, Some(cotangent), grad_y)
    }
}

/// Errors of the drivers below.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error(transparent)]
    Cuda(#[from] CudaHostError),
    #[error(transparent)]
    Ops(#[from] OpsError),
    #[error("{0}")]
    Other(String),
}

fn core(den: &mut CudaDenoiser<'_>, e: CoreError) -> InferError {
    match den.last_error.take() {
        Some(o) => InferError::Ops(o),
        None => InferError::Other(e.to_string()),
    }
}

/// The samplers on the GPU: `opts.n` images, NCHW, drawn exactly as host-cpu's `generate`
/// draws them (same initial noise and masks for the same seed): the fixed-mask sampler, or
/// reconstruction guidance with `opts.guidance = Some((K, w))`. Runs of at most
/// `ambient_core::precond::MAX_BATCH` samples (what the network takes at once), as
/// [`generate_in_chunks`]; `progress` numbers the steps across the runs.
pub fn generate(
    ops: &CudaOps,
    params: &ParamStore,
    cfg: &ModelConfig,
    opts: &SampleOptions,
    progress: impl FnMut(StepInfo),
) -> Result<Vec<f32>, InferError> {
    generate_in_chunks(
        ops,
        params,
        cfg,
        opts,
        ambient_core::precond::MAX_BATCH,
        progress,
    )
}

/// [`generate`] in runs of at most `chunk` samples. The draws (initial noise, then the masks:
/// K sets for guidance) are made for all `opts.n` samples first, so the split changes no
/// draw, and each sample's trajectory is its own.
pub fn generate_in_chunks(
    ops: &CudaOps,
    params: &ParamStore,
    cfg: &ModelConfig,
    opts: &SampleOptions,
    chunk: usize,
    mut progress: impl FnMut(StepInfo),
) -> Result<Vec<f32>, InferError> {
    let plan = NetPlan::new(&cfg.unet).map_err(InferError::Other)?;
    let u = &cfg.unet;
    let (n, c, h, w) = (opts.n, u.img_channels, u.img_resolution, u.img_resolution);
    let chw = c * h * w;
    let start = draw_sampler_start(cfg, opts).map_err(InferError::Other)?;
    let (schedule, sampler) = (start.schedule, start.sampler);
    let mut x = start.x.into_raw_vec_and_offset().0;
    let masks: Vec<Vec<f32>> = start
        .masks
        .into_iter()
        .map(|m| m.into_raw_vec_and_offset().0)
        .collect();
    let gpu = &ops.gpu;
    let mut den = CudaDenoiser::new(ops, &plan, params)?;
    let chunk = chunk.clamp(1, ambient_core::precond::MAX_BATCH);
    let runs = n.div_ceil(chunk);
    for r in 0..runs {
        let span = r * chunk * chw..n.min((r + 1) * chunk) * chw;
        let shape = Shape {
            n: span.len() / chw,
            c,
            h,
            w,
        };
        let mut xr = CudaTensor::from_host(gpu, shape, &x[span.clone()])?;
        let ms = masks
            .iter()
            .map(|m| CudaTensor::from_host(gpu, shape, &m[span.clone()]))
            .collect::<Result<Vec<_>, _>>()?;
        let z = || CudaTensor::zeros(gpu, shape);
        let mut scratch = [z()?, z()?, z()?, z()?, z()?, z()?];
        sample(
            &mut den,
            &mut xr,
            &ms,
            &schedule,
            sampler,
            &mut scratch,
            |s| progress(s.in_run(r, runs)),
        )
        .map_err(|e| core(&mut den, e))?;
        x[span].copy_from_slice(&xr.to_host()?);
    }
    Ok(x)
}

/// Single-step restoration on the GPU in batches of `batch`, as host-cpu's
/// `restore_measurements`: `A y + (1 - A) D(A y, A, sigma)`.
#[allow(clippy::too_many_arguments)]
pub fn restore_measurements(
    ops: &CudaOps,
    params: &ParamStore,
    cfg: &ModelConfig,
    dims: (usize, usize, usize, usize),
    y: &[f32],
    a: &[f32],
    sigma: f32,
    batch: usize,
    mut progress: impl FnMut(usize),
) -> Result<Vec<f32>, InferError> {
    let (n, c, h, w) = dims;
    let chw = c * h * w;
    if y.len() != n * chw || a.len() != n * chw {
        return Err(InferError::Other(format!(
            "restore: {} measurement and {} mask values for {n} images of {c} x {h} x {w}",
            y.len(),
            a.len()
        )));
    }
    let plan = NetPlan::new(&cfg.unet).map_err(InferError::Other)?;
    let mut den = CudaDenoiser::new(ops, &plan, params)?;
    let gpu = &ops.gpu;
    let mut out = vec![0.0f32; n * chw];
    let mut start = 0;
    while start < n {
        let b = batch.max(1).min(n - start);
        let shape = Shape { n: b, c, h, w };
        let range = start * chw..(start + b) * chw;
        let yt = CudaTensor::from_host(gpu, shape, &y[range.clone()])?;
        let at = CudaTensor::from_host(gpu, shape, &a[range.clone()])?;
        let (mut o, mut scratch) = (
            CudaTensor::zeros(gpu, shape)?,
            CudaTensor::zeros(gpu, shape)?,
        );
        restore_single_step(&mut den, &yt, &at, sigma, &mut o, &mut scratch).map_err(
            |e| match core(&mut den, e) {
                InferError::Other(m) => {
                    InferError::Other(format!("restoring images {start}..{}: {m}", start + b))
                }
                other => other,
            },
        )?;
        out[range].copy_from_slice(&o.to_host()?);
        start += b;
        progress(start);
    }
    Ok(out)
}
