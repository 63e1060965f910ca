//! The resumable stages of the experiment: each makes one artefact (a corrupted dataset, a
//! trained model, a set of samples, an evaluation JSON) only if it is not already there, so a
//! stopped run picks up where it was. Training resumes from its checkpoint; every other
//! artefact is written atomically by the command function it calls. Wall time per stage is
//! accumulated in `timings.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use serde_json::Value;

use super::plan::{ModelSpec, Plan, DELTA};
use crate::cmd::eval::{restore as eval_restore, samples as eval_samples};
use crate::cmd::{corrupt, sample, train};
use crate::data::DataArgs;

/// The experiment's directories and inputs.
pub struct Layout {
    pub out: PathBuf,
    pub mnist: PathBuf,
    pub classifier: PathBuf,
}

impl Layout {
    pub fn train_idx(&self) -> PathBuf {
        self.mnist.join("train-images-idx3-ubyte.gz")
    }
    pub fn test_idx(&self) -> PathBuf {
        self.mnist.join("t10k-images-idx3-ubyte.gz")
    }
    fn dir(&self, sub: &str) -> PathBuf {
        self.out.join(sub)
    }
}

/// Seconds spent per stage, summed over every invocation (`timings.json` in the run directory).
pub struct Timings {
    path: PathBuf,
    pub seconds: BTreeMap<String, f64>,
}

impl Timings {
    pub fn load(out: &Path) -> Result<Self> {
        let path = out.join("timings.json");
        let seconds = match std::fs::read_to_string(&path) {
            Ok(t) => serde_json::from_str(&t)
                .with_context(|| format!("{}: not a timings file", path.display()))?,
            Err(_) => BTreeMap::new(),
        };
        Ok(Timings { path, seconds })
    }

    fn set(&mut self, key: &str, secs: f64) -> Result<()> {
        self.seconds.insert(key.to_string(), secs);
        let text = serde_json::to_string_pretty(&self.seconds).context("JSON")?;
        ambient_cpu::io::atomic::write_bytes_atomic(&self.path, text.as_bytes())?;
        Ok(())
    }

    pub fn total(&self) -> f64 {
        self.seconds.values().sum()
    }
}

/// Runs `f` as stage `key` unless `done` already exists; prints a line per stage.
fn stage(t: &mut Timings, key: &str, done: &Path, f: impl FnOnce() -> Result<()>) -> Result<()> {
    if done.exists() {
        eprintln!("[experiment] {key}: cached ({})", done.display());
        return Ok(());
    }
    eprintln!("[experiment] {key}: running");
    let t0 = Instant::now();
    f()?;
    let s = t0.elapsed().as_secs_f64();
    // A stage runs to its end in one invocation; a re-run (its output deleted) replaces it.
    t.set(key, s)?;
    eprintln!("[experiment] {key}: done in {s:.1} s");
    Ok(())
}

/// Corrupts the first `n` images of `input` at `p` into `dir` (once).
fn corrupted(t: &mut Timings, input: &Path, dir: &Path, p: f32, n: usize, seed: u64) -> Result<()> {
    let key = format!(
        "data/{}",
        dir.file_name().unwrap_or_default().to_string_lossy()
    );
    stage(t, &key, &dir.join("corruption.json"), || {
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("{}: cannot create", parent.display()))?;
        }
        corrupt::run(corrupt::Args {
            input: input.to_path_buf(),
            out: dir.to_path_buf(),
            kind: "random".into(),
            p,
            box_side: None,
            limit: Some(n),
            seed,
        })
    })
}

/// The corrupted training data of `m` (its directory), or the clean IDX file for clean models.
pub fn training_data(t: &mut Timings, l: &Layout, plan: &Plan, m: &ModelSpec) -> Result<DataArgs> {
    if m.mode == "clean" {
        return Ok(DataArgs {
            data: l.train_idx(),
            masks: None,
            limit: Some(m.images),
        });
    }
    let seed = plan.seeds().train_data;
    let dir = l
        .dir("data")
        .join(format!("train-p{}-n{}-seed{seed}", m.p, m.images));
    corrupted(t, &l.train_idx(), &dir, m.p, m.images, seed)?;
    Ok(DataArgs::all(dir))
}

/// The held-out test measurements at `p` (Table 1).
pub fn test_data(t: &mut Timings, l: &Layout, plan: &Plan, p: f32) -> Result<PathBuf> {
    let seed = plan.seeds().test_data;
    let dir = l
        .dir("data")
        .join(format!("test-p{p}-n{}-seed{seed}", plan.restore_images));
    corrupted(t, &l.test_idx(), &dir, p, plan.restore_images, seed)?;
    Ok(dir)
}

/// Trains `m` up to the plan's step count (resuming its checkpoint) and returns its weights.
/// Not cached by file existence: `train` itself returns at once when the checkpoint is at
/// the step count, and continues it when the budget grew.
pub fn trained(t: &mut Timings, l: &Layout, plan: &Plan, m: &ModelSpec) -> Result<PathBuf> {
    let input = training_data(t, l, plan, m)?;
    let key = plan.model_key(m);
    let out = l.dir("models").join(&key);
    let weights = out.join(train::WEIGHTS_FILE);
    let log = out.join(train::LOG_FILE);
    if weights.exists() && checkpoint_step(&out)? >= Some(plan.steps) {
        eprintln!("[experiment] train/{key}: cached ({})", weights.display());
    } else {
        eprintln!("[experiment] train/{key}: {} steps", plan.steps);
        train::train(train::Args {
            input,
            out,
            mode: m.mode.into(),
            delta: DELTA,
            box_side: None,
            steps: plan.steps,
            batch: plan.batch,
            lr: 1e-3,
            warmup: 200.min(plan.steps / 4),
            ema_halflife_kimg: 5.0,
            seed: plan.seeds().train,
            ch: plan.net.ch,
            mult: plan.net.mult.clone(),
            blocks: plan.net.blocks,
            groups: plan.net.groups,
            checkpoint_every: plan.checkpoint_every,
            resume: true,
            preview: 0,
            backend: train::Backend::Cpu,
        })?;
    }
    // The training log, not this invocation's clock: a model trained over several resumed
    // invocations has spent the sum of their segments.
    t.set(&format!("train/{key}"), training_wall_seconds(&log)?)?;
    Ok(weights)
}

/// Wall seconds a training run spent on the steps its log keeps, summed over the invocations
/// that resumed it: `elapsed_s` restarts from zero at each resume (the log is cut back to the
/// checkpoint's step first), so each drop ends a segment whose last value is that segment's time.
pub fn training_wall_seconds(log: &Path) -> Result<f64> {
    let text =
        std::fs::read_to_string(log).with_context(|| format!("{}: cannot read", log.display()))?;
    let mut lines = text.lines();
    let col = lines
        .next()
        .and_then(|h| h.split(',').position(|c| c == "elapsed_s"))
        .ok_or_else(|| anyhow!("{}: no elapsed_s column", log.display()))?;
    let (mut total, mut last) = (0.0, 0.0);
    for (i, line) in lines.enumerate() {
        let e: f64 = line
            .split(',')
            .nth(col)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("{}: line {}: no elapsed_s value", log.display(), i + 2))?;
        if e < last {
            total += last;
        }
        last = e;
    }
    Ok(total + last)
}

/// The step a run directory's checkpoint reached, if it has one.
pub fn checkpoint_step(run: &Path) -> Result<Option<u64>> {
    let ck = run.join(train::CHECKPOINT_FILE);
    if !ck.exists() {
        return Ok(None);
    }
    Ok(Some(
        ambient_cpu::io::checkpoint::read_checkpoint(&ck)?.step,
    ))
}

/// `n` fixed-mask samples of the model at `weights` (`samples.npy` in the returned directory).
pub fn samples(
    t: &mut Timings,
    l: &Layout,
    plan: &Plan,
    m: &ModelSpec,
    weights: &Path,
    n: usize,
) -> Result<PathBuf> {
    let name = format!(
        "{}-s{}-n{n}-k{}",
        plan.model_key(m),
        plan.steps,
        plan.sampler_steps
    );
    let dir = l.dir("samples").join(&name);
    let npy = dir.join("samples.npy");
    stage(t, &format!("sample/{name}"), &npy, || {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
        let mut opts = sample::quick_options(n, plan.seeds().sample);
        opts.steps = plan.sampler_steps;
        sample::sample_to(weights, &opts, &dir.join("samples.png"), Some(&npy))
    })?;
    Ok(dir)
}

/// Reads a cached evaluation JSON.
pub fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))
}

/// Table 1 at `p` with `weights` (NFE = 1), and the baselines and DPS if `dps` is given;
/// returns the JSON path and the directory of the restorations (`METHOD.npy`).
#[allow(clippy::too_many_arguments)]
pub fn restore_eval(
    t: &mut Timings,
    l: &Layout,
    plan: &Plan,
    name: &str,
    data: &Path,
    weights: &Path,
    baselines: bool,
    dps: Option<&Path>,
) -> Result<(PathBuf, PathBuf)> {
    let dir = l.dir("evals").join(name);
    let json = l.dir("evals").join(format!("{name}.json"));
    stage(t, &format!("eval/{name}"), &json, || {
        eval_restore::run(eval_restore::Args {
            weights: weights.to_path_buf(),
            data: data.to_path_buf(),
            masks: None,
            clean: l.test_idx(),
            limit: None,
            sigma: "auto".into(),
            holdout: 200,
            baseline: if baselines {
                vec!["biharmonic".into(), "tv".into()]
            } else {
                vec![]
            },
            dps: dps.map(Path::to_path_buf),
            dps_steps: plan.dps_steps,
            zeta: 1.0,
            dps_step_size: "vp".into(),
            dps_limit: Some(plan.dps_images),
            seed: plan.seeds().dps,
            batch: 64,
            json: Some(json.clone()),
            out: Some(dir.clone()),
        })
    })?;
    Ok((json, dir))
}

/// Fréchet distance and memorization of the samples in `dir` against the first `train_limit`
/// training images; returns the JSON path (histograms beside it in `NAME/`).
pub fn samples_eval(
    t: &mut Timings,
    l: &Layout,
    plan: &Plan,
    name: &str,
    dir: &Path,
    train_limit: usize,
    threshold: f64,
) -> Result<PathBuf> {
    let json = l.dir("evals").join(format!("{name}.json"));
    stage(t, &format!("eval/{name}"), &json, || {
        eval_samples::run(eval_samples::Args {
            samples: dir.join("samples.npy"),
            classifier: l.classifier.clone(),
            train_images: l.train_idx(),
            test_images: l.test_idx(),
            train_limit: Some(train_limit),
            test_limit: Some(plan.fd_test_images),
            out: Some(l.dir("evals").join(name)),
            threshold,
            json: Some(json.clone()),
        })
    })?;
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_wall_time_sums_the_resumed_segments() {
        // Three invocations: steps 1-2 (10, 20 s; the log was cut back to the checkpoint at
        // step 2), then 3-4 (5, 9 s), then 5 (7 s): the kept steps cost 20 + 9 + 7 s.
        let dir = std::env::temp_dir().join(format!("ambient-wall-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("train_log.csv");
        std::fs::write(
            &log,
            "step,loss,grad_norm,lr,elapsed_s\n1,9,1,0.1,10\n2,9,1,0.1,20\n\
             3,9,1,0.1,5\n4,9,1,0.1,9\n5,9,1,0.1,7\n",
        )
        .unwrap();
        assert_eq!(training_wall_seconds(&log).unwrap(), 36.0);
        std::fs::write(&log, "step,loss\n1,9\n").unwrap();
        let e = training_wall_seconds(&log).unwrap_err().to_string();
        assert!(e.contains("no elapsed_s column"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
