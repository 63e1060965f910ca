//! Training on the device (spec "Training objective"): the state of a host-cpu `Trainer`
//! (weights, EMA, Adam moments, RNG, step, options) moved into device buffers, and the same
//! step: draw the batch on the host with the same RNG calls (so the same images, masks A~,
//! sigmas and noise as the CPU run), `D(A~ (x0 + s eta), A~, s)`, the ambient loss over every
//! pixel A kept and its gradient, the backward pass, global-norm clipping, Adam and the EMA,
//! all as [`Ops`] primitives. [`DeviceTrainer::store_into`] brings the state back into the
//! host-cpu `Trainer`, whose checkpoints and weight files it then writes.

use crate::denoise::{denoise, denoise_backward};
use crate::net::{Net, NetPlan};
use crate::ops::{AdamStep, Ops, OpsError};
use ambient_core::AmbientRng;
use ambient_cpu::io::dataset::CorruptedDataset;
use ambient_cpu::params::ParamStore;
use ambient_cpu::train::{draw_batch, Batch, StepStats, TrainOptions, Trainer};

/// A batch drawn ahead of its step.
struct Prefetched {
    batch: Batch,
    rng_after: AmbientRng,
    data: DataId,
}

/// Which dataset a batch came from: its address and its measurements' (a step given another
/// dataset draws afresh).
type DataId = (usize, usize, usize);

fn data_id(data: &CorruptedDataset) -> DataId {
    (
        data as *const CorruptedDataset as usize,
        data.measurements.as_ptr() as usize,
        data.measurements.len(),
    )
}

/// A training run whose tensors live in `O`'s buffers (dropped before `ops`, declared last).
pub struct DeviceTrainer<O: Ops> {
    pub plan: NetPlan,
    pub opts: TrainOptions,
    /// The generator's state before the next step's batch: what a checkpoint stores (a batch
    /// drawn ahead of time keeps its own state in `next`).
    pub rng: AmbientRng,
    /// The next step's batch, drawn on the host while the device runs this step's backward
    /// pass, with the generator's state after drawing it and the dataset it was drawn from.
    next: Option<Prefetched>,
    pub step: u64,
    /// Adam's step count.
    pub t: u64,
    pub weights: O::Buf,
    pub ema: O::Buf,
    m: O::Buf,
    v: O::Buf,
    grads: O::Buf,
    pub ops: O,
}

fn flatten(p: &ParamStore) -> Vec<f32> {
    p.params
        .iter()
        .flat_map(|t| t.data.iter().copied())
        .collect()
}

fn unflatten(into: &mut ParamStore, flat: &[f32]) {
    let mut off = 0;
    for t in into.params.iter_mut() {
        let len = t.data.len();
        t.data.copy_from_slice(&flat[off..off + len]);
        off += len;
    }
}

impl<O: Ops> DeviceTrainer<O> {
    /// Takes over the state of `cpu` (fresh or resumed).
    pub fn from_cpu(ops: O, cpu: &Trainer) -> Result<Self, OpsError> {
        let plan = NetPlan::new(&cpu.config.unet).map_err(OpsError::Invalid)?;
        let up = |p: &ParamStore| ops.upload(&flatten(p));
        let (weights, ema, m, v) = (
            up(&cpu.weights)?,
            up(&cpu.ema)?,
            up(&cpu.adam.m)?,
            up(&cpu.adam.v)?,
        );
        let grads = ops.zeros(plan.total)?;
        Ok(DeviceTrainer {
            ops,
            opts: cpu.opts.clone(),
            rng: cpu.rng.clone(),
            next: None,
            step: cpu.step,
            t: cpu.adam.t,
            weights,
            ema,
            m,
            v,
            grads,
            plan,
        })
    }

    /// Writes the state back into `cpu` (to save a checkpoint or weights with host-cpu).
    pub fn store_into(&self, cpu: &mut Trainer) -> Result<(), OpsError> {
        unflatten(&mut cpu.weights, &self.ops.download(&self.weights)?);
        unflatten(&mut cpu.ema, &self.ops.download(&self.ema)?);
        unflatten(&mut cpu.adam.m, &self.ops.download(&self.m)?);
        unflatten(&mut cpu.adam.v, &self.ops.download(&self.v)?);
        cpu.adam.t = self.t;
        cpu.rng = self.rng.clone();
        cpu.step = self.step;
        Ok(())
    }

    /// One training step on a batch drawn from `data` (checked with host-cpu's
    /// `Trainer::check_data`).
    pub fn train_step(&mut self, data: &CorruptedDataset) -> Result<StepStats, OpsError> {
        // host-cpu's batch drawing, call for call, so a seed gives the CPU's batches and masks;
        // drawn during the previous step when that step had the same dataset.
        let b = match self.next.take() {
            Some(p) if p.data == data_id(data) => {
                self.rng = p.rng_after;
                p.batch
            }
            _ => {
                draw_batch(&mut self.rng, &self.opts, data, self.step).map_err(OpsError::Invalid)?
            }
        };
        let o = &self.ops;
        let (n, h, w) = (self.opts.batch, data.h, data.w);
        let chw = data.image_len();
        let sd = self.plan.cfg.sigma_data;
        let (x, a, at, y) = (
            o.upload(b.x_meas.as_slice().expect("standard layout"))?,
            o.upload(b.a.as_slice().expect("standard layout"))?,
            o.upload(b.a_tilde.as_slice().expect("standard layout"))?,
            o.upload(b.y.as_slice().expect("standard layout"))?,
        );
        let net = Net::new(o, &self.plan);
        let (d, tape) = denoise(&net, &self.weights, &y, &at, &b.sigmas, h, w)?;
        let (mut grad, mut resid) = (o.zeros(n * chw)?, o.zeros(n * chw)?);
        o.weighted_residual(
            &d,
            &x,
            &a,
            &at,
            &tape.coefs,
            sd,
            n,
            chw,
            &mut grad,
            &mut resid,
        )?;
        let loss = (o.dot(&grad, &resid)? / n as f64) as f32;
        if !loss.is_finite() {
            return Err(OpsError::NonFinite("loss value"));
        }
        o.scale(&mut grad, 2.0 / n as f32)?;
        o.fill(&mut self.grads, 0.0)?;
        denoise_backward(&net, &self.weights, tape, &at, &grad, &mut self.grads)?;
        // The backward pass is queued: draw the next batch while the device runs it. A failed
        // draw is left for the next step to make and report.
        let mut rng_after = self.rng.clone();
        self.next = draw_batch(&mut rng_after, &self.opts, data, self.step + 1)
            .ok()
            .map(|batch| Prefetched {
                batch,
                rng_after,
                data: data_id(data),
            });
        let grad_norm = o.dot(&self.grads, &self.grads)?.sqrt();
        if !grad_norm.is_finite() {
            return Err(OpsError::NonFinite("gradient; the step was skipped"));
        }
        let adam = &self.opts.adam;
        let clip = match adam.max_grad_norm {
            Some(c) if grad_norm > c as f64 => (c as f64 / grad_norm) as f32,
            _ => 1.0,
        };
        self.t += 1;
        let lr = adam.learning_rate(self.t);
        let step = AdamStep {
            clip,
            lr,
            beta1: adam.beta1,
            beta2: adam.beta2,
            eps: adam.eps,
            bc1: (1.0 - (adam.beta1 as f64).powf(self.t as f64)) as f32,
            bc2: (1.0 - (adam.beta2 as f64).powf(self.t as f64)) as f32,
        };
        o.adam(
            &mut self.weights,
            &mut self.grads,
            &mut self.m,
            &mut self.v,
            &step,
        )?;
        let beta = self.opts.ema.beta(n, self.step * n as u64);
        o.axpby(
            &mut self.ema,
            (1.0 - beta) as f32,
            &self.weights,
            beta as f32,
        )?;
        self.step += 1;
        Ok(StepStats {
            step: self.step,
            loss,
            grad_norm,
            lr,
        })
    }
}
