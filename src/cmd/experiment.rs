//! `ambient experiment paper`: reproduces the paper's three claims at MNIST scale in one
//! resumable command and writes `docs/results.md` with its figures. Table 1 analogue (NFE = 1
//! restoration by ambient models vs classical inpainting, DPS and the clean model at NFE = 1),
//! Figure 3 analogue (Fréchet distance of ambient vs naive training against corruption) and
//! the memorization comparison (clean vs ambient training on a 300-image subset). `--budget`
//! scales the steps (1.0 = 4000 steps at batch 64 per model); every training run resumes from
//! its checkpoint and every finished evaluation is cached as JSON, so a rerun skips them.

mod figures;
mod plan;
mod report;
mod stages;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Result};

use self::plan::{Plan, MEMO_SUBSET, MEMO_THRESHOLD, TABLE1_PS, TABLE1_TRAIN_ORDER};
use self::report::{Fig3Row, MemoRow, Report, Table1Level};
use self::stages::{Layout, Timings};
use super::eval::classifier_train;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Table 1, Figure 3 and memorization analogues at MNIST scale; writes docs/results.md.
    Paper(PaperArgs),
}

#[derive(clap::Args)]
pub struct PaperArgs {
    /// Scales the training steps: 1.0 = 4000 steps at batch 64 per model; below 0.1 a smoke
    /// test (batch 8, 2000 training images, few samples) whose numbers mean nothing.
    #[arg(long, default_value_t = 1.0)]
    pub budget: f64,
    /// Run directory: data, models, samples, cached evaluations, timings.
    #[arg(long, default_value = "runs/paper")]
    pub out: PathBuf,
    /// Where results.md goes (its figures in results/ beside it).
    #[arg(long, default_value = "docs")]
    pub docs: PathBuf,
    #[arg(long, default_value = "data/mnist")]
    pub mnist: PathBuf,
    /// The evaluation classifier (trained first if missing).
    #[arg(long, default_value = "models/mnist_classifier.safetensors")]
    pub classifier: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Override the budget's network width (the spec config otherwise).
    #[arg(long)]
    pub ch: Option<usize>,
    #[arg(long, value_delimiter = ',')]
    pub mult: Option<Vec<usize>>,
    #[arg(long)]
    pub blocks: Option<usize>,
    #[arg(long)]
    pub groups: Option<usize>,
    /// Override the budget's training images of the full-data models.
    #[arg(long)]
    pub train_images: Option<usize>,
    /// Override the budget's test measurements restored per corruption level.
    #[arg(long)]
    pub restore_images: Option<usize>,
    /// Override the budget's DPS images and steps.
    #[arg(long)]
    pub dps_images: Option<usize>,
    #[arg(long)]
    pub dps_steps: Option<usize>,
    /// Override the budget's samples for the Fréchet distance and for memorization.
    #[arg(long)]
    pub fd_samples: Option<usize>,
    #[arg(long)]
    pub fd_test_images: Option<usize>,
    #[arg(long)]
    pub memo_samples: Option<usize>,
    #[arg(long)]
    pub sampler_steps: Option<usize>,
}

pub fn run(a: Args) -> Result<()> {
    match a.command {
        Command::Paper(a) => paper(a),
    }
}

fn plan_of(a: &PaperArgs) -> Result<Plan> {
    let mut p = Plan::from_budget(a.budget, a.seed).map_err(|e| anyhow!(e))?;
    let set = |v: &mut usize, o: Option<usize>| *v = o.unwrap_or(*v);
    set(&mut p.net.ch, a.ch);
    set(&mut p.net.blocks, a.blocks);
    set(&mut p.net.groups, a.groups);
    if let Some(m) = &a.mult {
        p.net.mult = m.clone();
    }
    set(&mut p.train_images, a.train_images);
    set(&mut p.restore_images, a.restore_images);
    set(&mut p.dps_images, a.dps_images);
    set(&mut p.dps_steps, a.dps_steps);
    set(&mut p.fd_samples, a.fd_samples);
    set(&mut p.fd_test_images, a.fd_test_images);
    set(&mut p.memo_samples, a.memo_samples);
    set(&mut p.sampler_steps, a.sampler_steps);
    p.dps_images = p.dps_images.min(p.restore_images);
    if p.train_images < MEMO_SUBSET {
        return Err(anyhow!(
            "--train-images {}: at least the {MEMO_SUBSET} of the memorization subset",
            p.train_images
        ));
    }
    if p.fd_samples < 2 || p.memo_samples < 2 || p.restore_images == 0 {
        return Err(anyhow!(
            "need at least 2 samples per model and 1 test measurement"
        ));
    }
    Ok(p)
}

fn paper(a: PaperArgs) -> Result<()> {
    let t0 = Instant::now();
    let plan = plan_of(&a)?;
    std::fs::create_dir_all(&a.out)
        .map_err(|e| anyhow!("{}: cannot create: {e}", a.out.display()))?;
    eprintln!(
        "[experiment] budget {}: {} steps at batch {} per model ({}){}",
        plan.budget,
        plan.steps,
        plan.batch,
        plan.net,
        if plan.smoke { "; SMOKE TEST" } else { "" }
    );
    let l = Layout {
        out: a.out.clone(),
        mnist: a.mnist.clone(),
        classifier: a.classifier.clone(),
    };
    let mut t = Timings::load(&a.out)?;
    if !a.classifier.exists() {
        eprintln!(
            "[experiment] classifier: training {}",
            a.classifier.display()
        );
        classifier_train::run(classifier_train::Args {
            out: a.classifier.clone(),
            train_images: l.train_idx(),
            train_labels: a.mnist.join("train-labels-idx1-ubyte.gz"),
            test_images: l.test_idx(),
            test_labels: a.mnist.join("t10k-labels-idx1-ubyte.gz"),
            limit: None,
            epochs: 2,
            batch: 64,
            lr: 1e-3,
            seed: 0,
        })?;
    }

    // Table 1: NFE = 1 restoration at each p against baselines, DPS and the clean model.
    let clean = plan.clean_model();
    let clean_w = stages::trained(&mut t, &l, &plan, &clean)?;
    let mut table1 = Vec::new();
    for p in TABLE1_TRAIN_ORDER {
        let m = plan.ambient_model(p);
        let w = stages::trained(&mut t, &l, &plan, &m)?;
        let data = stages::test_data(&mut t, &l, &plan, p)?;
        let tag = format!(
            "s{}-n{}-dps{}x{}",
            plan.steps, plan.restore_images, plan.dps_images, plan.dps_steps
        );
        let ambient = stages::restore_eval(
            &mut t,
            &l,
            &plan,
            &format!("table1-{}-{tag}", plan.model_key(&m)),
            &data,
            &w,
            true,
            Some(&clean_w),
        )?;
        let clean_nfe1 = stages::restore_eval(
            &mut t,
            &l,
            &plan,
            &format!("table1-p{p}-{}-{tag}", plan.model_key(&clean)),
            &data,
            &clean_w,
            false,
            None,
        )?;
        table1.push(Table1Level {
            p,
            data,
            ambient,
            clean: clean_nfe1,
        });
    }

    table1.sort_by_key(|l| TABLE1_PS.iter().position(|&q| q == l.p));

    // Figure 3: generation quality against corruption, ambient vs naive.
    let mut fig3 = Vec::new();
    for m in plan.fig3_models() {
        let w = stages::trained(&mut t, &l, &plan, &m)?;
        let dir = stages::samples(&mut t, &l, &plan, &m, &w, plan.fd_samples)?;
        let json = stages::samples_eval(
            &mut t,
            &l,
            &plan,
            &format!(
                "fig3-{}-s{}-n{}-k{}-t{}",
                plan.model_key(&m),
                plan.steps,
                plan.fd_samples,
                plan.sampler_steps,
                plan.fd_test_images
            ),
            &dir,
            m.images,
            MEMO_THRESHOLD,
        )?;
        fig3.push(Fig3Row {
            model: m,
            samples: dir,
            json,
        });
    }

    // Memorization: clean vs ambient on a small subset, the same budget.
    let mut memo = Vec::new();
    for m in plan.memo_models() {
        let w = stages::trained(&mut t, &l, &plan, &m)?;
        let dir = stages::samples(&mut t, &l, &plan, &m, &w, plan.memo_samples)?;
        let json = stages::samples_eval(
            &mut t,
            &l,
            &plan,
            &format!(
                "memo-{}-s{}-n{}-k{}-t{}",
                plan.model_key(&m),
                plan.steps,
                plan.memo_samples,
                plan.sampler_steps,
                plan.fd_test_images
            ),
            &dir,
            MEMO_SUBSET,
            MEMO_THRESHOLD,
        )?;
        memo.push(MemoRow {
            model: m,
            samples: dir,
            json,
        });
    }

    let r = Report {
        plan: &plan,
        layout: &l,
        timings: &t,
        invocation_seconds: t0.elapsed().as_secs_f64(),
        table1,
        fig3,
        memo,
    };
    let path = r.write(&a.docs)?;
    eprintln!(
        "[experiment] wrote {} in {:.1} s",
        path.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
